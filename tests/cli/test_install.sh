#!/usr/bin/env bash
# Installs deepc into a temporary prefix with `cmake --install`, then builds a small program
# against it twice: through pkg-config (shared library) and through CMake's find_package.
set -euo pipefail
build=${DEEPC_BUILD:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cat > "$tmp/main.c" <<'C'
#include <deepc/deepc.h>
#include <stdio.h>
int main(void) {
  dc_tensor *x = dc_arange(0, 4, 1, DC_F32);
  if (!x) return 1;
  printf("%s %lld\n", DEEPC_VERSION, (long long)dc_numel(x));
  dc_free(x);
  return 0;
}
C
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -1)
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc "$tmp/main.c" -o "$tmp/app" $(pkg-config --cflags --libs deepc) -Wl,-rpath,"$libdir"
out=$("$tmp/app")
[ "$out" = "0.1.0 4" ] || { echo "pkg-config build printed '$out'"; exit 1; }

mkdir -p "$tmp/cm"
cat > "$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(app C)
find_package(deepc REQUIRED)
add_executable(app ../main.c)
target_link_libraries(app PRIVATE deepc::deepc)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm/b" >/dev/null
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/cm/b/app")
[ "$out" = "0.1.0 4" ] || { echo "find_package build printed '$out'"; exit 1; }
echo "install: pkg-config and find_package builds work"
