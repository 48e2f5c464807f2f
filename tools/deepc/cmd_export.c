/* `deepc export CHECKPOINT|MODEL [--weights FILE] [--input CxHxW] [--opset N] OUT.onnx`: writes
 * a checkpoint of `deepc train` (the model rebuilt from its stored configuration, its class
 * names in the metadata) or a zoo model (with a weight file, or its fresh initialisation) as an
 * ONNX model. The work is dc_onnx_export (src/io/onnx_export.c); this file parses the line. */
#include "commands.h"

#include <deepc/deepc.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: deepc export CHECKPOINT|MODEL [--weights FILE] [--input CxHxW] [--opset N]\n"
    "                    [--classes K] [--small-input] [--width W] OUT.onnx\n"
    "Writes a model as ONNX (opset 17 by default, a dynamic batch dimension, node and\n"
    "initializer names that follow the module tree, class names in the metadata), for ONNX\n"
    "Runtime and every other runtime that reads ONNX. docs/onnx.md lists the layers.\n"
    "  CHECKPOINT     a checkpoint of `deepc train` (best.ckpt, last.ckpt): the model is rebuilt\n"
    "                 from its configuration; --input defaults to its dataset's sample shape\n"
    "  MODEL          or a zoo model: resnet18/34/50, vgg11..19[_bn][_cifar], lenet5,\n"
    "                 cnn_fashion, mlp, with the weights of --weights (else freshly initialised)\n"
    "  --weights FILE .pth/.pt, .safetensors or deepc .ckpt weights for MODEL\n"
    "  --input SHAPE  one input without the batch: CxHxW for images (3x224x224), F for vectors\n"
    "                 (default: the zoo model's usual input)\n"
    "  --opset N      ONNX opset of the default domain, 13 to 21 (default 17)\n"
    "  --classes K    MODEL: outputs of the head (default: the head's rows in --weights)\n"
    "  --small-input  ResNet with the 3x3 stem and no max pooling (32x32 images)\n"
    "  --width W      ResNet base width (default 64)\n";

typedef struct export_args {
  const char *model, *weights, *input, *out;
  long long opset, classes, width;
  bool small;
} export_args;

/* Parses "3x32x32" (separators x, X or ',') into s. */
static bool parse_shape(const char *text, dc_shape *s) {
  *s = (dc_shape){0};
  for (const char *p = text;;) {
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno || v <= 0 || s->ndim == DC_MAX_DIMS - 1) return false;
    s->d[s->ndim++] = v;
    p = end;
    if (!*p) return true;
    if (*p != 'x' && *p != 'X' && *p != ',') return false;
    p++;
  }
}

static bool parse_int(const char *s, long long *v) {
  char *end;
  errno = 0;
  *v = strtoll(s, &end, 10);
  return end != s && !*end && !errno && *v > 0;
}

/* The arguments into a; DC_CLI_OK, or the exit status of a usage error (or -1 for --help). */
static int parse_args(int argc, char **argv, export_args *a) {
  const char *v;
  for (int i = 1; i < argc; i++) {
    if (dc_cli_is_help(argv[i])) return -1;
    long long *num = NULL;
    if (dc_cli_opt(argc, argv, &i, "--weights", &v)) {
      if (!(a->weights = v)) return dc_cli_usage_error("export", "--weights needs a file");
    } else if (dc_cli_opt(argc, argv, &i, "--input", &v)) {
      if (!(a->input = v)) return dc_cli_usage_error("export", "--input needs a shape (3x32x32)");
    } else if (dc_cli_opt(argc, argv, &i, "--opset", &v)) {
      num = &a->opset;
    } else if (dc_cli_opt(argc, argv, &i, "--classes", &v)) {
      num = &a->classes;
    } else if (dc_cli_opt(argc, argv, &i, "--width", &v)) {
      num = &a->width;
    } else if (strcmp(argv[i], "--small-input") == 0) {
      a->small = true;
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      return dc_cli_usage_error("export", "unknown option '%s'", argv[i]);
    } else if (!a->model) {
      a->model = argv[i];
    } else if (!a->out) {
      a->out = argv[i];
    } else {
      return dc_cli_usage_error("export", "unexpected argument '%s'", argv[i]);
    }
    if (num && (!v || !parse_int(v, num)))
      return dc_cli_usage_error("export", "%s needs a positive integer", argv[i]);
  }
  if (!a->model || !a->out)
    return dc_cli_usage_error("export", "expected CHECKPOINT|MODEL and OUT.onnx");
  return DC_CLI_OK;
}

/* A zoo model fitted to the input, with the weights of a->weights when given. */
static dc_module *zoo_model(const export_args *a, dc_shape *in) {
  dc_zoo_opts o = {.small_input = a->small, .width = a->width, .num_classes = a->classes};
  if (!in->ndim) *in = dc_zoo_input_shape(a->model, o);
  int64_t feats = 1;
  for (int i = 0; i < in->ndim; i++) feats *= in->d[i];
  o.in_channels = in->ndim == 3 ? in->d[0] : 0;
  o.in_features = feats;
  o.no_init = a->weights != NULL;
  dc_module *m = dc_zoo_create_opt(a->model, o);
  if (!m || !a->weights) return m;
  if (dc_zoo_load_pretrained_opt(m, a->weights, (dc_pretrained_opts){.keep_head = true}) != DC_OK) {
    dc_module_free(m);
    return NULL;
  }
  return m;
}

int dc_cmd_export(int argc, char **argv) {
  export_args a = {0};
  int rc = parse_args(argc, argv, &a);
  if (rc < 0) {
    fputs(USAGE, stdout);
    return DC_CLI_OK;
  }
  if (rc != DC_CLI_OK) return rc;
  dc_shape in = {0};
  if (a.input && !parse_shape(a.input, &in))
    return dc_cli_usage_error("export", "--input '%s' is not a shape like 3x32x32", a.input);
  char **names = NULL;
  int64_t nnames = 0;
  dc_module *m = NULL;
  if (dc_zoo_has(a.model)) {
    m = zoo_model(&a, &in);
  } else {
    if (a.weights || a.classes || a.small || a.width)
      return dc_cli_usage_error("export", "--weights, --classes, --small-input and --width go "
                                          "with a zoo MODEL, not a checkpoint");
    m = dc_checkpoint_model(a.model, &in, &names, &nnames);
  }
  if (!m) return dc_cli_lib_error("export");
  dc_onnx_export_opts o = {.input = in,
                           .opset = (int)a.opset,
                           .class_names = (const char *const *)names,
                           .num_class_names = nnames,
                           .model_name = dc_zoo_has(a.model) ? a.model : NULL};
  rc = dc_onnx_export(m, a.out, &o) == DC_OK ? DC_CLI_OK : dc_cli_lib_error("export");
  if (rc == DC_CLI_OK) {
    char shp[64];
    printf("%s -> %s (one input %s, batch dynamic, opset %d)\n", a.model, a.out,
           dc_shape_str(in, shp, sizeof shp), o.opset ? o.opset : 17);
  }
  dc_checkpoint_names_free(names, nnames);
  dc_module_free(m);
  return rc;
}
