/* `deepc convert IN OUT`: converts weight files between PyTorch .pth, safetensors and deepc
 * checkpoints without loss (every dtype kept as it is). A deepc training checkpoint gives its
 * model's state dict ("model." entries) unless --all; a .ckpt output gets "model." names. */
#include "commands.h"

#include <deepc/deepc.h>
#include <deepc/io.h>

#include <stdio.h>
#include <string.h>

static const char USAGE[] =
    "usage: deepc convert IN OUT [--format pth|safetensors|ckpt] [--prefix P] [--all]\n"
    "Converts a weight file between PyTorch .pth/.pt (what torch.load reads), .safetensors and\n"
    "deepc checkpoints (.ckpt). Tensors keep their names, dtypes and values.\n"
    "  --format F    output format (default: from OUT's extension)\n"
    "  --prefix P    only the entries whose name starts with P, with P removed (e.g.\n"
    "                --prefix model_state_dict. for a training checkpoint saved as a dict)\n"
    "  --all         keep every entry of a deepc training checkpoint (optimizer state, ...);\n"
    "                by default only its model weights are converted, named as in the model's\n"
    "                state dict\n";

static bool parse_format(const char *s, dc_weights_format *f) {
  if (strcmp(s, "pth") == 0 || strcmp(s, "pt") == 0)
    *f = DC_WEIGHTS_PTH;
  else if (strcmp(s, "safetensors") == 0)
    *f = DC_WEIGHTS_SAFETENSORS;
  else if (strcmp(s, "ckpt") == 0)
    *f = DC_WEIGHTS_CKPT;
  else
    return false;
  return true;
}

static dc_weights_format format_of(const char *path) {
  const char *dot = strrchr(path, '.');
  dc_weights_format f = DC_WEIGHTS_AUTO;
  if (dot) parse_format(dot + 1, &f);
  if (dot && strcmp(dot, ".bin") == 0) f = DC_WEIGHTS_PTH;
  return f;
}

static bool any_prefixed(const dc_weights *w, const char *prefix) {
  for (int i = 0; i < dc_weights_count(w); i++)
    if (strncmp(dc_weights_name(w, i), prefix, strlen(prefix)) == 0) return true;
  return false;
}

int dc_cmd_convert(int argc, char **argv) {
  const char *in = NULL, *out = NULL, *prefix = NULL, *v;
  dc_weights_format fmt = DC_WEIGHTS_AUTO;
  bool all = false;
  for (int i = 1; i < argc; i++) {
    if (dc_cli_is_help(argv[i])) {
      fputs(USAGE, stdout);
      return DC_CLI_OK;
    }
    if (dc_cli_opt(argc, argv, &i, "--format", &v)) {
      if (!v || !parse_format(v, &fmt))
        return dc_cli_usage_error("convert", "--format needs pth, safetensors or ckpt");
    } else if (dc_cli_opt(argc, argv, &i, "--prefix", &v)) {
      if (!v) return dc_cli_usage_error("convert", "--prefix needs a value");
      prefix = v;
    } else if (strcmp(argv[i], "--all") == 0) {
      all = true;
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      return dc_cli_usage_error("convert", "unknown option '%s'", argv[i]);
    } else if (!in) {
      in = argv[i];
    } else if (!out) {
      out = argv[i];
    } else {
      return dc_cli_usage_error("convert", "too many files ('%s'): give IN and OUT", argv[i]);
    }
  }
  if (!in || !out) return dc_cli_usage_error("convert", "give the input and the output file");
  if (fmt == DC_WEIGHTS_AUTO) fmt = format_of(out);
  if (fmt == DC_WEIGHTS_AUTO)
    return dc_cli_usage_error("convert",
                              "cannot tell the format of '%s' from its extension; "
                              "use .pth, .safetensors or .ckpt, or --format",
                              out);
  dc_weights *w = dc_weights_load(in);
  if (!w) return dc_cli_lib_error("convert");
  dc_weights *sel = NULL;
  bool from_ckpt = dc_weights_get_format(w) == DC_WEIGHTS_CKPT;
  if (prefix)
    sel = dc_weights_select(w, prefix, fmt == DC_WEIGHTS_CKPT && !all ? "model." : NULL);
  else if (!all && from_ckpt && fmt != DC_WEIGHTS_CKPT && any_prefixed(w, "model."))
    sel = dc_weights_select(w, "model.", NULL);
  else if (!all && !from_ckpt && fmt == DC_WEIGHTS_CKPT)
    sel = dc_weights_select(w, NULL, "model.");
  else
    sel = dc_weights_select(w, NULL, NULL);
  dc_weights_free(w);
  if (!sel) return dc_cli_lib_error("convert");
  int rc = dc_weights_save(sel, out, fmt);
  if (rc == DC_OK)
    printf("%s -> %s: %d tensors (%s)\n", in, out, dc_weights_count(sel),
           dc_weights_format_name(fmt));
  dc_weights_free(sel);
  return rc == DC_OK ? DC_CLI_OK : dc_cli_lib_error("convert");
}
