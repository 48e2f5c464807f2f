/* `deepc predict MODEL --weights FILE --input X.npy --output Y.npy`: builds a zoo model, loads a
 * weight file (any format dc_weights_load reads) strictly, runs it in eval mode without
 * gradients over the batch in X.npy and writes the raw outputs, so they can be compared with
 * PyTorch's. The number of classes and input channels follow the weights and the input. */
#include "commands.h"

#include <deepc/deepc.h>
#include <deepc/io.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: deepc predict MODEL --weights FILE --input X.npy --output Y.npy [--batch B]\n"
    "       deepc predict FILE.onnx|onnx:FILE --input X.npy --output Y.npy [--batch B]\n"
    "                     [--classes K] [--prefix P] [--small-input] [--width W] [--device D]\n"
    "Runs a zoo model (resnet18/34/50, vgg11..19[_bn][_cifar], lenet5, cnn_fashion, mlp) with\n"
    "the weights of FILE (.pth/.pt, .safetensors, deepc .ckpt; names as torchvision's) in eval\n"
    "mode on the inputs of X.npy ([N, C, H, W] or [N, F], float) and writes the raw outputs\n"
    "(logits) [N, K] as float32 to Y.npy. An ONNX model (docs/onnx.md) brings its weights.\n"
    "  --batch B      samples per forward pass (default 32)\n"
    "  --classes K    outputs of the model (default: the first dimension of the head's weight\n"
    "                 in FILE)\n"
    "  --prefix P     the model's entries in FILE start with P (default: found automatically)\n"
    "  --small-input  ResNet with the 3x3 stem and no max pooling (as trained on 32x32 images)\n"
    "  --width W      ResNet base width (default 64)\n"
    "  --device D     run the model on cpu (default), cuda or testdev\n";

/* Outputs of the head in the weights file: first dimension of "<prefix><head>.weight". */
static int64_t classes_in(const dc_weights *w, const char *head, const char *prefix) {
  char want[512];
  snprintf(want, sizeof want, "%s.weight", head);
  size_t wl = strlen(want);
  for (int i = 0; i < dc_weights_count(w); i++) {
    const char *nm = dc_weights_name(w, i);
    size_t nl = strlen(nm);
    bool match =
        prefix
            ? (strncmp(nm, prefix, strlen(prefix)) == 0 && strcmp(nm + strlen(prefix), want) == 0)
            : (nl >= wl && strcmp(nm + nl - wl, want) == 0 && (nl == wl || nm[nl - wl - 1] == '.'));
    dc_shape s = dc_weights_shape(w, i);
    if (match && s.ndim == 2) return s.d[0];
  }
  return 0;
}

static bool parse_int(const char *s, long long *v) {
  char *end;
  *v = strtoll(s, &end, 10);
  return end != s && !*end && *v > 0;
}

/* y [N, K] = model(x) batch by batch (eval, no grad). */
static dc_tensor *run_batches(dc_module *m, dc_tensor *x, int64_t batch) {
  int64_t n = x->shape[0];
  dc_tensor *out = NULL;
  bool prev = dc_set_grad_enabled(false);
  for (int64_t s = 0; s < n; s += batch) {
    dc_scope_begin();
    int64_t len = n - s < batch ? n - s : batch;
    dc_tensor *y = dc_module_forward(m, dc_narrow(x, 0, s, len));
    bool ok = y != NULL;
    if (ok && !out) {
      dc_shape os = dc_shape_of(y);
      os.d[0] = n;
      out = dc_keep(dc_empty(os, DC_F32));
      ok = out != NULL;
    }
    if (ok) ok = dc_copy_(dc_narrow(out, 0, s, len), y) == DC_OK;
    dc_scope_end();
    if (!ok) {
      dc_free(out);
      out = NULL;
      break;
    }
  }
  dc_set_grad_enabled(prev);
  return out;
}

int dc_cmd_predict(int argc, char **argv) {
  const char *model = NULL, *weights = NULL, *input = NULL, *output = NULL, *prefix = NULL, *v;
  long long batch = 32, classes = 0, width = 0;
  bool small = false;
  dc_device dev = DC_CPU;
  for (int i = 1; i < argc; i++) {
    if (dc_cli_is_help(argv[i])) {
      fputs(USAGE, stdout);
      return DC_CLI_OK;
    }
    const char **dst = NULL;
    long long *num = NULL;
    if (dc_cli_opt(argc, argv, &i, "--weights", &v))
      dst = &weights;
    else if (dc_cli_opt(argc, argv, &i, "--input", &v))
      dst = &input;
    else if (dc_cli_opt(argc, argv, &i, "--output", &v))
      dst = &output;
    else if (dc_cli_opt(argc, argv, &i, "--prefix", &v))
      dst = &prefix;
    else if (dc_cli_opt(argc, argv, &i, "--batch", &v))
      num = &batch;
    else if (dc_cli_opt(argc, argv, &i, "--classes", &v))
      num = &classes;
    else if (dc_cli_opt(argc, argv, &i, "--width", &v))
      num = &width;
    else if (dc_cli_opt(argc, argv, &i, "--device", &v)) {
      int drc = dc_cli_device("predict", v, &dev);
      if (drc != DC_CLI_OK) return drc;
      continue;
    } else if (strcmp(argv[i], "--small-input") == 0) {
      small = true;
      continue;
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      return dc_cli_usage_error("predict", "unknown option '%s'", argv[i]);
    } else if (model) {
      return dc_cli_usage_error("predict", "one MODEL only (got '%s' and '%s')", model, argv[i]);
    } else {
      model = argv[i];
      continue;
    }
    if (!v) return dc_cli_usage_error("predict", "%s needs a value", argv[i]);
    if (dst) *dst = v;
    if (num && !parse_int(v, num))
      return dc_cli_usage_error("predict", "'%s' is not a positive integer", v);
  }
  if (!model) return dc_cli_usage_error("predict", "missing the MODEL (e.g. resnet18)");
  const char *onnx = dc_cli_onnx_path(model);
  if (onnx && (!input || !output))
    return dc_cli_usage_error("predict", "--input and --output are required");
  if (!onnx && !dc_zoo_has(model)) {
    dc_module *probe = dc_zoo_create(model);
    dc_module_free(probe);
    return dc_cli_lib_error("predict");
  }
  if (!onnx && (!weights || !input || !output))
    return dc_cli_usage_error("predict", "--weights, --input and --output are required");

  dc_tensor *x = dc_npy_load(input), *xf = NULL, *y = NULL;
  dc_weights *w = NULL;
  dc_module *m = NULL;
  int rc = -1; /* -1: failed, the library's message not printed yet */
  if (!x) goto done;
  if (x->ndim < 2) {
    rc =
        dc_cli_error("predict", "%s: expected a batch [N, ...], got %d dimensions", input, x->ndim);
    goto done;
  }
  if (!(xf = dc_to_dtype(x, DC_F32))) goto done;
  if (onnx && !(m = dc_onnx_load(onnx))) goto done;
  if (onnx) goto run; /* an ONNX graph brings its weights */
  int64_t feats = dc_numel(x) / (x->shape[0] ? x->shape[0] : 1);
  dc_zoo_opts o = {.in_channels = x->ndim == 4 ? x->shape[1] : 0,
                   .in_features = feats,
                   .small_input = small,
                   .width = width,
                   .num_classes = classes,
                   .no_init = true};
  if (!(w = dc_weights_load(weights)) || !(m = dc_zoo_create_opt(model, o))) goto done;
  if (!classes) { /* a head as wide as the head's weight in the file (a fine-tuned model) */
    char head[256], wname[300];
    int64_t k = dc_zoo_head_name(m, head, sizeof head) ? classes_in(w, head, prefix) : 0;
    snprintf(wname, sizeof wname, "%s.weight", head);
    dc_tensor *hw = k > 0 ? dc_module_get_parameter(m, wname) : NULL;
    if (hw && hw->shape[0] != k && dc_zoo_replace_head(m, k) != DC_OK) goto done;
    dc_clear_error();
  }
  if (dc_zoo_load_weights(m, w, weights,
                          (dc_pretrained_opts){.prefix = prefix, .keep_head = true}) != DC_OK)
    goto done;
run:
  dc_module_eval(m);
  if (dev != DC_CPU) { /* the model and the inputs on the device; the outputs come back */
    dc_tensor *xd = dc_module_to(m, dev) == DC_OK ? dc_to_device(xf, dev) : NULL;
    if (!xd) goto done;
    dc_free(xf);
    xf = xd;
  }
  if (!(y = run_batches(m, xf, batch))) goto done;
  if (dc_npy_save(output, y) != DC_OK) goto done;
  char shp[64];
  printf("%s: %s -> %s %s\n", model, input, output, dc_shape_str(dc_shape_of(y), shp, sizeof shp));
  rc = DC_CLI_OK;
done:
  if (rc < 0) rc = dc_cli_lib_error("predict");
  dc_free(y);
  dc_free(xf);
  dc_free(x);
  dc_weights_free(w);
  dc_module_free(m);
  return rc;
}
