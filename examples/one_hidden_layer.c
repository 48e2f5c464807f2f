/* Worked example: backpropagation through y = W2 sigmoid(W1 x) with the squared-error loss
 * L = 1/2 * sum((y - t)^2), on small fixed float64 numbers. Prints the forward values and every
 * gradient from deepc's autograd, then checks them against the hand-derived formulas and against
 * central finite differences (and dc_gradcheck). Exit status 0 only when all three agree.
 * Shapes: I = 3 inputs, H = 4 hidden units, O = 2 outputs; vectors are columns ([I, 1]...). */
#include <deepc/deepc.h>

#include <math.h>
#include <stdio.h>

enum { I = 3, H = 4, O = 2 };

static const double X[I] = {1.0, -2.0, 0.5};      /* input x [I] */
static const double T[O] = {0.5, -1.0};           /* target t [O] */
static const double W1[H][I] = {{0.1, -0.2, 0.3}, /* first layer [H, I] */
                                {0.4, 0.5, -0.6},
                                {-0.7, 0.8, 0.9},
                                {0.2, -0.1, 0.05}};
static const double W2[O][H] = {{0.3, -0.5, 0.2, 0.7}, /* second layer [O, H] */
                                {-0.4, 0.6, 0.1, -0.2}};

#define ATOL 1e-7 /* tolerances for comparing gradients (float64) */
#define RTOL 1e-6

/* The network and its loss, with deepc ops. in = {W1 [H, I], W2 [O, H], x [I, 1]}; t [O, 1]. */
static dc_tensor *loss_of(dc_tensor *const *in, dc_tensor *t, dc_tensor **z1, dc_tensor **h,
                          dc_tensor **y) {
  *z1 = dc_matmul(in[0], in[2]); /* [H, 1] */
  *h = dc_sigmoid(*z1);          /* [H, 1] */
  *y = dc_matmul(in[1], *h);     /* [O, 1] */
  dc_tensor *e = dc_sub(*y, t);  /* [O, 1] */
  return dc_mul_scalar(dc_sum_all(dc_square(e)), 0.5);
}

static dc_tensor *target(void) { return dc_from_data(T, DC_SHAPE(O, 1), DC_F64); }

/* For dc_gradcheck: the same loss as a function of the three inputs. */
static dc_tensor *loss_fn(dc_tensor *const *in, int n, void *ud) {
  (void)n;
  dc_tensor *z1, *h, *y;
  return loss_of(in, (dc_tensor *)ud, &z1, &h, &y);
}

static bool close_enough(double a, double b) { return fabs(a - b) <= ATOL + RTOL * fabs(b); }

/* Hand-derived backpropagation in plain C: the formulas a course asks for.
 * z1 = W1 x, h = s(z1), y = W2 h, e = y - t, L = 1/2 |e|^2
 * dL/dW2 = e h^T, dL/dh = W2^T e, dL/dz1 = dL/dh * h (1 - h), dL/dW1 = dL/dz1 x^T,
 * dL/dx = W1^T dL/dz1 */
static void by_hand(double dW1[H][I], double dW2[O][H], double dx[I]) {
  double h[H], e[O], dz1[H];
  for (int j = 0; j < H; j++) {
    double z = 0;
    for (int i = 0; i < I; i++) z += W1[j][i] * X[i];
    h[j] = 1.0 / (1.0 + exp(-z));
  }
  for (int o = 0; o < O; o++) {
    double y = 0;
    for (int j = 0; j < H; j++) y += W2[o][j] * h[j];
    e[o] = y - T[o];
  }
  for (int o = 0; o < O; o++)
    for (int j = 0; j < H; j++) dW2[o][j] = e[o] * h[j];
  for (int j = 0; j < H; j++) {
    double dh = 0;
    for (int o = 0; o < O; o++) dh += W2[o][j] * e[o];
    dz1[j] = dh * h[j] * (1.0 - h[j]);
  }
  for (int j = 0; j < H; j++)
    for (int i = 0; i < I; i++) dW1[j][i] = dz1[j] * X[i];
  for (int i = 0; i < I; i++) {
    dx[i] = 0;
    for (int j = 0; j < H; j++) dx[i] += W1[j][i] * dz1[j];
  }
}

/* Central difference of the loss for element k of input `which`: (L(p + eps) - L(p - eps)) / 2eps.
 */
static double finite_difference(dc_tensor *const *in, dc_tensor *t, int which, int64_t k) {
  const double eps = 1e-6;
  double *p = (double *)dc_data(in[which]) + k, saved = *p, lp, lm;
  dc_tensor *z1, *h, *y;
  dc_no_grad_begin();
  dc_scope_begin();
  *p = saved + eps;
  lp = dc_item(loss_of(in, t, &z1, &h, &y));
  *p = saved - eps;
  lm = dc_item(loss_of(in, t, &z1, &h, &y));
  dc_scope_end();
  dc_no_grad_end();
  *p = saved;
  return (lp - lm) / (2 * eps);
}

/* Prints one gradient's three versions side by side; returns the number of mismatches. */
static int compare(const char *name, dc_tensor *const *in, dc_tensor *t, int which,
                   const double *hand) {
  int bad = 0;
  dc_tensor *g = in[which]->grad;
  for (int64_t k = 0; k < dc_numel(in[which]); k++) {
    double a = dc_item_at(g, k), fd = finite_difference(in, t, which, k);
    bool ok = close_enough(a, hand[k]) && close_enough(a, fd);
    bad += !ok;
    char at[64];
    int64_t cols = in[which]->shape[1];
    snprintf(at, sizeof at, "%s[%lld,%lld]", name, (long long)(k / cols), (long long)(k % cols));
    printf("  %-10s autograd %+.10f  by hand %+.10f  finite diff %+.10f  %s\n", at, a, hand[k], fd,
           ok ? "ok" : "MISMATCH");
  }
  return bad;
}

static int run(dc_tensor *const *in, dc_tensor *t) {
  dc_tensor *z1, *h, *y;
  dc_tensor *loss = loss_of(in, t, &z1, &h, &y);
  if (!loss || dc_retain_grad(z1) || dc_retain_grad(h) || dc_retain_grad(y) || dc_backward(loss)) {
    fprintf(stderr, "one_hidden_layer: %s\n", dc_last_error());
    return 1;
  }
  printf("forward\n");
  const char *names[] = {"z1 = W1 x", "h = sigmoid(z1)", "y = W2 h"};
  dc_tensor *vals[] = {z1, h, y};
  for (int k = 0; k < 3; k++) {
    printf("%s:\n", names[k]);
    dc_print(vals[k]);
  }
  printf("loss = 1/2 |y - t|^2 = %.10f\n\nbackward (autograd)\n", dc_item(loss));
  const char *gnames[] = {"dL/dy", "dL/dh", "dL/dz1", "dL/dW2", "dL/dW1", "dL/dx"};
  dc_tensor *grads[] = {y->grad, h->grad, z1->grad, in[1]->grad, in[0]->grad, in[2]->grad};
  for (int k = 0; k < 6; k++) {
    printf("%s:\n", gnames[k]);
    dc_print(grads[k]);
  }

  double dW1[H][I], dW2[O][H], dx[I];
  by_hand(dW1, dW2, dx);
  printf("\nchecks (atol %g, rtol %g)\n", ATOL, RTOL);
  int bad = compare("dW1", in, t, 0, &dW1[0][0]) + compare("dW2", in, t, 1, &dW2[0][0]) +
            compare("dx", in, t, 2, dx);
  dc_tensor *gc_in[] = {in[0], in[1], in[2]};
  bool gc = dc_gradcheck(loss_fn, gc_in, 3, t);
  printf("dc_gradcheck: %s%s\n", gc ? "passed" : "FAILED: ", gc ? "" : dc_last_error());
  bad += !gc;
  if (bad)
    printf("%d gradient check(s) FAILED\n", bad);
  else
    printf("all gradients agree: autograd = by hand = finite differences\n");
  return bad ? 1 : 0;
}

int main(void) {
  /* leaves live outside any scope: we own them and free them at the end */
  dc_tensor *in[3] = {dc_from_data(W1, DC_SHAPE(H, I), DC_F64),
                      dc_from_data(W2, DC_SHAPE(O, H), DC_F64),
                      dc_from_data(X, DC_SHAPE(I, 1), DC_F64)};
  dc_tensor *t = target();
  for (int k = 0; k < 3; k++)
    if (!dc_requires_grad_(in[k], true)) {
      fprintf(stderr, "one_hidden_layer: %s\n", dc_last_error());
      return 1;
    }
  in[0]->name = "W1";
  in[1]->name = "W2";
  in[2]->name = "x";
  dc_scope_begin(); /* everything the forward and backward make is freed at dc_scope_end */
  int rc = run(in, t);
  dc_scope_end();
  for (int k = 0; k < 3; k++) dc_free(in[k]);
  dc_free(t);
  if (dc_live_tensors() != 0) {
    fprintf(stderr, "one_hidden_layer: %lld tensors leaked\n", (long long)dc_live_tensors());
    rc = 1;
  }
  return rc;
}
