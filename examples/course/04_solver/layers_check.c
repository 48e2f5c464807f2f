/* Exercise 4, the layer library: fully connected, ReLU, dropout, batch norm, conv and max-pool
 * layers, each run forward on a small float64 batch and its backward pass (every input and
 * parameter gradient) checked against central finite differences with dc_gradcheck. Dropout
 * draws its mask from the seeded generator, re-seeded before every evaluation, so the finite
 * differences see the same mask as the backward pass. Exit 1 if any check fails. */
#include <deepc/deepc.h>

#include <stdio.h>

/* inputs[0] is the layer's input, the rest its parameters */
static dc_tensor *fc(dc_tensor *const *in, int n, void *ud) {
  return dc_linear(in[0], in[1], in[2]);
}
static dc_tensor *relu(dc_tensor *const *in, int n, void *ud) { return dc_relu(in[0]); }
static dc_tensor *dropout(dc_tensor *const *in, int n, void *ud) {
  dc_manual_seed(7);
  return dc_dropout(in[0], 0.5, true);
}
static dc_tensor *batchnorm(dc_tensor *const *in, int n, void *ud) {
  return dc_batch_norm(in[0], NULL, NULL, in[1], in[2], true, 0.1, 1e-5);
}
static dc_tensor *conv(dc_tensor *const *in, int n, void *ud) {
  return dc_conv2d_f(in[0], in[1], in[2], .padding = {1, 1});
}
static dc_tensor *maxpool(dc_tensor *const *in, int n, void *ud) {
  return dc_max_pool2d_opt(in[0], (dc_pool2d_opts){.kernel = {2, 2}});
}

static dc_tensor *param(dc_shape s) { return dc_requires_grad_(dc_randn(s, DC_F64), true); }

static bool check(const char *name, dc_gradcheck_fn f, dc_tensor **in, int n) {
  char a[64], b[64];
  dc_tensor *y = f(in, n, NULL);
  bool ok = y && dc_gradcheck(f, in, n, NULL);
  printf("%-22s input %-14s -> output %-14s backward vs finite differences: %s\n", name,
         dc_shape_str(dc_shape_of(in[0]), a, sizeof a),
         y ? dc_shape_str(dc_shape_of(y), b, sizeof b) : "?", ok ? "ok" : "FAILED");
  if (!ok) printf("  %s\n", dc_last_error());
  return ok;
}

int main(void) {
  dc_manual_seed(0);
  dc_scope_begin();
  bool ok = true;
  ok &= check("Linear(6, 4)", fc,
              (dc_tensor *[]){param(DC_SHAPE(5, 6)), param(DC_SHAPE(4, 6)), param(DC_SHAPE(4))}, 3);
  ok &= check("ReLU", relu, (dc_tensor *[]){param(DC_SHAPE(5, 6))}, 1);
  ok &= check("Dropout(0.5)", dropout, (dc_tensor *[]){param(DC_SHAPE(5, 6))}, 1);
  ok &= check("BatchNorm1d(6), train", batchnorm,
              (dc_tensor *[]){param(DC_SHAPE(5, 6)), param(DC_SHAPE(6)), param(DC_SHAPE(6))}, 3);
  ok &= check("BatchNorm2d(3), train", batchnorm,
              (dc_tensor *[]){param(DC_SHAPE(2, 3, 4, 4)), param(DC_SHAPE(3)), param(DC_SHAPE(3))},
              3);
  ok &= check(
      "Conv2d(3, 4, 3, pad 1)", conv,
      (dc_tensor *[]){param(DC_SHAPE(2, 3, 5, 5)), param(DC_SHAPE(4, 3, 3, 3)), param(DC_SHAPE(4))},
      3);
  ok &= check("MaxPool2d(2)", maxpool, (dc_tensor *[]){param(DC_SHAPE(2, 3, 4, 4))}, 1);
  dc_scope_end();
  printf("%s\n", ok ? "ok: every layer's backward pass agrees with finite differences"
                    : "MISMATCH: a layer's backward pass disagrees with finite differences");
  return ok ? 0 : 1;
}
