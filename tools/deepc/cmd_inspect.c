/* `deepc inspect FILE`: the tensors of a weight file (PyTorch .pth/.pt, safetensors, deepc
 * checkpoint) with dtype, shape and CRC-32 of the raw little-endian bytes (Python's zlib.crc32
 * of t.contiguous().numpy().tobytes()), then the file's metadata. Reading is dc_weights_load. */
#include "commands.h"

#include <deepc/deepc.h>
#include <deepc/io.h>

#include <stdio.h>
#include <string.h>

static const char USAGE[] =
    "usage: deepc inspect FILE [--meta] [--prefix P]\n"
    "Lists every tensor of a weight file: name, dtype, shape and the CRC-32 of its raw bytes\n"
    "(little-endian, row-major: Python's zlib.crc32(t.contiguous().numpy().tobytes())), then the\n"
    "totals and the metadata. Reads PyTorch .pth/.pt (torch.save), .safetensors and deepc .ckpt.\n"
    "  --meta        print metadata values in full (default: cut at 100 characters)\n"
    "  --prefix P    only the tensors whose name starts with P\n";

static const char *format_long(dc_weights_format f) {
  switch (f) {
  case DC_WEIGHTS_PTH:
    return "PyTorch torch.save archive";
  case DC_WEIGHTS_SAFETENSORS:
    return "safetensors";
  case DC_WEIGHTS_CKPT:
    return "deepc checkpoint (safetensors layout)";
  case DC_WEIGHTS_AUTO:
    break;
  }
  return "weights";
}

static void human_bytes(double b, char *buf, size_t n) {
  const char *units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, u++;
  snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

int dc_cmd_inspect(int argc, char **argv) {
  const char *path = NULL, *prefix = NULL, *v;
  bool full_meta = false;
  for (int i = 1; i < argc; i++) {
    if (dc_cli_is_help(argv[i])) {
      fputs(USAGE, stdout);
      return DC_CLI_OK;
    }
    if (strcmp(argv[i], "--meta") == 0) {
      full_meta = true;
    } else if (dc_cli_opt(argc, argv, &i, "--prefix", &v)) {
      if (!v) return dc_cli_usage_error("inspect", "--prefix needs a value");
      prefix = v;
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      return dc_cli_usage_error("inspect", "unknown option '%s'", argv[i]);
    } else if (path) {
      return dc_cli_usage_error("inspect", "one FILE only (got '%s' and '%s')", path, argv[i]);
    } else {
      path = argv[i];
    }
  }
  if (!path) return dc_cli_usage_error("inspect", "missing the FILE to inspect");
  dc_weights *w = dc_weights_load(path);
  if (!w) return dc_cli_lib_error("inspect");
  int n = dc_weights_count(w), wname = 4, wdt = 5, wsh = 5;
  size_t pl = prefix ? strlen(prefix) : 0;
  char shape[160];
  for (int i = 0; i < n; i++) {
    if (pl && strncmp(dc_weights_name(w, i), prefix, pl) != 0) continue;
    int a = (int)strlen(dc_weights_name(w, i)), b = (int)strlen(dc_weights_dtype_name(w, i));
    int c = (int)strlen(dc_shape_str(dc_weights_shape(w, i), shape, sizeof shape));
    wname = a > wname ? a : wname, wdt = b > wdt ? b : wdt, wsh = c > wsh ? c : wsh;
  }
  printf("%-*s  %-*s  %-*s  %s\n", wname, "name", wdt, "dtype", wsh, "shape", "crc32");
  int64_t values = 0, shown = 0;
  double bytes = 0;
  for (int i = 0; i < n; i++) {
    if (pl && strncmp(dc_weights_name(w, i), prefix, pl) != 0) continue;
    dc_shape s = dc_weights_shape(w, i);
    int64_t numel = 1;
    for (int d = 0; d < s.ndim; d++) numel *= s.d[d];
    size_t nb;
    dc_weights_data(w, i, &nb);
    values += numel, bytes += (double)nb, shown++;
    printf("%-*s  %-*s  %-*s  %08x\n", wname, dc_weights_name(w, i), wdt,
           dc_weights_dtype_name(w, i), wsh, dc_shape_str(s, shape, sizeof shape),
           (unsigned)dc_weights_crc32(w, i));
  }
  char cnt[32], hb[32];
  human_bytes(bytes, hb, sizeof hb);
  printf("%s: %s, %lld tensors, %s values, %s\n", path, format_long(dc_weights_get_format(w)),
         (long long)shown, dc_format_count(values, cnt, sizeof cnt), hb);
  if (dc_weights_meta_count(w)) printf("metadata:\n");
  for (int i = 0; i < dc_weights_meta_count(w); i++) {
    const char *val = dc_weights_meta_value(w, i);
    size_t len = strlen(val), shown_len = !full_meta && len > 100 ? 97 : len;
    printf("  %s = ", dc_weights_meta_key(w, i));
    for (size_t k = 0; k < shown_len; k++) { /* one line per item: newlines shown as \n */
      if (val[k] == '\n')
        fputs("\\n", stdout);
      else
        putchar(val[k]);
    }
    if (shown_len < len) printf("... (%zu chars; --meta shows all)", len);
    putchar('\n');
  }
  dc_weights_free(w);
  return DC_CLI_OK;
}
