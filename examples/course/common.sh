# Sourced by every examples/course/<NN_name>/run.sh: parses the shared arguments
#   --quick      a few batches / tiny sizes (the CI check, tests/cli/test_exercises.sh)
#   --build DIR  a build directory holding deepc and examples/ (default: configure and build ./build)
#   --out DIR    where the outputs go (default: runs/course/<NN_name>)
# and sets: here (the exercise's folder), root, quick (0/1), build, deepc, bin (the course
# programs), out, plus step "text" (a numbered heading with the elapsed seconds).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
quick=0
build=""
out="$root/runs/course/$(basename "$here")"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --build) build=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,/^set -/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "$(basename "$here")/run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$build" ]; then
  build="$root/build"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" >/dev/null
fi
build=$(cd "$build" && pwd)
deepc="$build/deepc"
bin="$build/examples/course"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
mkdir -p "$out"
out=$(cd "$out" && pwd)
course_start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - course_start )) s)"; }
