/* `deepc summary SPEC --input CxHxW [--classes N]`: builds the model from a layer spec and prints
 * torchinfo's table (output shape, parameters and multiply-adds per layer, then the totals).
 * The work is dc_summary in src/nn/summary.c; this file parses the command line. */
#include "commands.h"

#include <deepc/deepc.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: deepc summary SPEC|MODEL|FILE.onnx --input CxHxW [--classes N] [--repr] [--device D]\n"
    "Builds a model from a layer spec and prints, like torchinfo, each layer's output shape,\n"
    "parameter count and multiply-adds (for a batch of one), then the totals.\n"
    "  SPEC           layers with PyTorch's arguments, e.g.\n"
    "                 \"conv2d(1,32,5,padding=2), relu, maxpool2d(2), flatten, linear(6272,10)\"\n"
    "  MODEL          or a zoo model: resnet18/34/50, vgg11..19[_bn][_cifar], lenet5,\n"
    "                 cnn_fashion, mlp (torchvision's layers and parameter names)\n"
    "  FILE.onnx      or an ONNX model (also onnx:FILE); --input defaults to its input's shape\n"
    "  --input SHAPE  one input without the batch: CxHxW for images (3x32x32), F for vectors;\n"
    "                 'x', ',' or the sign '\xc3\x97' separate the sizes\n"
    "  --classes N    value of the name `classes` in the spec (linear(128, classes)); the\n"
    "                 model must then give N outputs\n"
    "  --repr         also print the model as PyTorch prints it\n"
    "  --device D     run the shape-finding forward on cpu (default), cuda or testdev\n";

/* Parses "3x32x32" (separators x, X, ',' or U+00D7) into s; false on a malformed shape. */
static bool parse_shape(const char *text, dc_shape *s) {
  *s = (dc_shape){0};
  const char *p = text;
  for (;;) {
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno || v <= 0 || s->ndim == DC_MAX_DIMS - 1) return false;
    s->d[s->ndim++] = v;
    p = end;
    if (!*p) return true;
    if (*p == 'x' || *p == 'X' || *p == ',')
      p++;
    else if ((unsigned char)p[0] == 0xC3 && (unsigned char)p[1] == 0x97)
      p += 2;
    else
      return false;
  }
}

int dc_cmd_summary(int argc, char **argv) {
  const char *spec = NULL, *input = NULL, *classes = NULL, *v;
  dc_device dev = DC_CPU;
  bool repr = false;
  for (int i = 1; i < argc; i++) {
    if (dc_cli_is_help(argv[i])) {
      fputs(USAGE, stdout);
      return DC_CLI_OK;
    }
    if (dc_cli_opt(argc, argv, &i, "--input", &v)) {
      if (!v) return dc_cli_usage_error("summary", "--input needs a shape such as 3x32x32");
      input = v;
    } else if (dc_cli_opt(argc, argv, &i, "--classes", &v)) {
      if (!v) return dc_cli_usage_error("summary", "--classes needs a number");
      classes = v;
    } else if (dc_cli_opt(argc, argv, &i, "--device", &v)) {
      int drc = dc_cli_device("summary", v, &dev);
      if (drc != DC_CLI_OK) return drc;
    } else if (strcmp(argv[i], "--repr") == 0) {
      repr = true;
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      return dc_cli_usage_error("summary", "unknown option '%s'", argv[i]);
    } else if (spec) {
      return dc_cli_usage_error("summary", "one SPEC only (got '%s' and '%s'); quote the spec",
                                spec, argv[i]);
    } else {
      spec = argv[i];
    }
  }
  if (!spec) return dc_cli_usage_error("summary", "missing the model SPEC");
  const char *onnx = dc_cli_onnx_path(spec);
  dc_module *om = onnx ? dc_onnx_load(onnx) : NULL; /* its input shape is the default */
  if (onnx && !om) return dc_cli_lib_error("summary");
  dc_shape shape = om ? dc_onnx_input_shape(om) : (dc_shape){0};
  if (!input && !shape.ndim) {
    dc_module_free(om);
    return dc_cli_usage_error("summary", "missing --input CxHxW (one example's shape)");
  }
  if (input && !parse_shape(input, &shape)) {
    dc_module_free(om);
    return dc_cli_usage_error("summary", "--input '%s' is not a shape like 3x32x32", input);
  }
  long long ncls = 0;
  if (classes) {
    char *end;
    ncls = strtoll(classes, &end, 10);
    if (*end || end == classes || ncls <= 0) {
      dc_module_free(om);
      return dc_cli_usage_error("summary", "--classes '%s' is not a positive integer", classes);
    }
  }
  /* a zoo name (resnet34, vgg11_bn, ...) fitted to the input, or a layer spec */
  int64_t nfeat = 1;
  for (int d = 0; d < shape.ndim; d++) nfeat *= shape.d[d];
  dc_module *m = om                 ? om
                 : dc_zoo_has(spec) ? dc_zoo_create(spec, .num_classes = ncls, .in_features = nfeat,
                                                    .in_channels = shape.ndim == 3 ? shape.d[0] : 0)
                                    : dc_nn_from_spec(spec, .classes = ncls);
  if (!m) return dc_cli_lib_error("summary");
  if (dev != DC_CPU && dc_module_to(m, dev) != DC_OK) {
    dc_module_free(m);
    return dc_cli_lib_error("summary");
  }
  dc_model_summary *s = dc_summary(m, shape); /* the forward runs on the model's device */
  int rc = DC_CLI_OK;
  if (!s) {
    rc = dc_cli_lib_error("summary");
  } else if (ncls &&
             (s->output_shape.ndim < 1 || s->output_shape.d[s->output_shape.ndim - 1] != ncls)) {
    char buf[128];
    rc = dc_cli_error("summary",
                      "the model gives outputs of shape %s but --classes is %lld; "
                      "make the last layer give %lld values (e.g. linear(..., "
                      "classes))",
                      dc_shape_str(s->output_shape, buf, sizeof buf), ncls, ncls);
  } else {
    if (repr) dc_module_print(stdout, m);
    dc_summary_print(stdout, s);
  }
  dc_summary_free(s);
  dc_module_free(m);
  return rc;
}
