/* Course text 004, Q1: a two-layer network, x -> ReLU(W_H x + b_H) -> W_O h + b_O -> softmax,
 * cross-entropy against a one-hot y. Forward pass: y_hat and l(y_hat, y); backward pass:
 * dl/dW_O, dl/db_O, dl/dW_H, dl/db_H, from deepc's autograd and from the hand-derived formulas,
 * both checked against central finite differences (dc_gradcheck), and the zero derivatives
 * named with their reason. The text's figure (with its values) did not survive, so the values
 * below are a stated reading (examples/course/01_backprop/README.md); any others can be given.
 * Shapes: I = 2 inputs, H = 2 hidden units, K = 2 classes.
 * usage: two_layer_xent [x1 x2]   (default 1 2). Exit status 0 only when all checks agree. */
#include <deepc/deepc.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { I = 2, H = 2, K = 2 };

static double X[I] = {1.0, 2.0};                          /* x [I] */
static const int Y = 0;                                   /* the true class (one-hot y = (1, 0)) */
static const double WH[H][I] = {{1.0, -1.0}, {0.5, 1.0}}; /* W_H [H, I] */
static const double BH[H] = {0.0, 0.0};                   /* b_H [H] */
static const double WO[K][H] = {{1.0, 2.0}, {-1.0, 1.0}}; /* W_O [K, H] */
static const double BO[K] = {0.0, 0.0};                   /* b_O [K] */

/* in: W_H [H, I], b_H [H], W_O [K, H], b_O [K]; ud: x [1, I]. Returns the loss (0-d); *h gets
 * the hidden activations [1, H] and *p the softmax output y_hat [1, K] when not NULL. */
static dc_tensor *loss_of(dc_tensor *const *in, dc_tensor *x, dc_tensor **h, dc_tensor **p) {
  dc_tensor *hid = dc_relu(dc_linear(x, in[0], in[1]));        /* [1, H] */
  dc_tensor *logits = dc_linear(hid, in[2], in[3]);            /* [1, K] */
  dc_tensor *target = dc_full(DC_SHAPE(1), (double)Y, DC_I64); /* [1] */
  if (h) *h = hid;
  if (p) *p = dc_softmax(logits, 1);
  return dc_cross_entropy(logits, target);
}

static dc_tensor *loss_fn(dc_tensor *const *in, int n, void *ud) {
  (void)n;
  return loss_of(in, (dc_tensor *)ud, NULL, NULL);
}

static void print_matrix(const char *name, const double *autograd, const double *hand, int r,
                         int c) {
  printf("%s [%d, %d]:\n", name, r, c);
  for (int i = 0; i < r; i++) {
    printf("   ");
    for (int j = 0; j < c; j++) printf(" %12.8f", autograd[i * c + j] + 0.0);
    printf("     by hand:");
    for (int j = 0; j < c; j++) printf(" %12.8f", hand[i * c + j] + 0.0);
    printf("\n");
  }
}

/* The hand derivation: dl/do = y_hat - y; dl/dW_O = (y_hat - y) h^T; dl/db_O = y_hat - y;
 * dl/dh = W_O^T (y_hat - y); dl/dz = dl/dh * [z > 0]; dl/dW_H = dl/dz x^T; dl/db_H = dl/dz. */
static void by_hand(const double *h, const double *yhat, double gwo[K][H], double gbo[K],
                    double gwh[H][I], double gbh[H]) {
  double d_o[K], d_z[H];
  for (int k = 0; k < K; k++) d_o[k] = yhat[k] - (k == Y);
  for (int k = 0; k < K; k++) {
    gbo[k] = d_o[k];
    for (int j = 0; j < H; j++) gwo[k][j] = d_o[k] * h[j];
  }
  for (int j = 0; j < H; j++) {
    double d_h = 0;
    for (int k = 0; k < K; k++) d_h += WO[k][j] * d_o[k];
    d_z[j] = h[j] > 0 ? d_h : 0.0; /* ReLU: h = z where z > 0, else 0 */
    gbh[j] = d_z[j];
    for (int i = 0; i < I; i++) gwh[j][i] = d_z[j] * X[i];
  }
}

static int agree(const double *a, const double *b, int n) {
  int bad = 0;
  for (int i = 0; i < n; i++) bad += fabs(a[i] - b[i]) > 1e-12 + 1e-9 * fabs(b[i]);
  return bad;
}

int main(int argc, char **argv) {
  if (argc != 1 && argc != 3) {
    fprintf(stderr, "usage: two_layer_xent [x1 x2]\n");
    return 2;
  }
  for (int i = 0; argc == 3 && i < I; i++) X[i] = strtod(argv[i + 1], NULL);
  dc_tensor *in[4] = {
      dc_requires_grad_(dc_from_data(WH, DC_SHAPE(H, I), DC_F64), true),
      dc_requires_grad_(dc_from_data(BH, DC_SHAPE(H), DC_F64), true),
      dc_requires_grad_(dc_from_data(WO, DC_SHAPE(K, H), DC_F64), true),
      dc_requires_grad_(dc_from_data(BO, DC_SHAPE(K), DC_F64), true),
  };
  dc_tensor *x = dc_from_data(X, DC_SHAPE(1, I), DC_F64);
  dc_scope_begin();
  dc_tensor *h, *p, *l = loss_of(in, x, &h, &p);
  if (!l || dc_backward(l) != DC_OK) {
    fprintf(stderr, "two_layer_xent: %s\n", dc_last_error());
    return 1;
  }
  const double *hd = dc_data(dc_contiguous(h)), *pd = dc_data(dc_contiguous(p));
  printf("x = (%g, %g), y = one-hot class %d\n", X[0], X[1], Y + 1);
  printf("forward: h = ReLU(W_H x + b_H) = (%.8f, %.8f)\n", hd[0], hd[1]);
  printf("         y_hat = softmax(W_O h + b_O) = (%.8f, %.8f)\n", pd[0], pd[1]);
  printf("         l(y_hat, y) = -log y_hat[%d] = %.8f\n\n", Y + 1, dc_item(l));
  double gwo[K][H], gbo[K], gwh[H][I], gbh[H];
  by_hand(hd, pd, gwo, gbo, gwh, gbh);
  const double *g[4];
  for (int k = 0; k < 4; k++) g[k] = dc_data(in[k]->grad);
  printf("backward (autograd, and the hand formulas):\n");
  print_matrix("dl/dW_O", g[2], &gwo[0][0], K, H);
  print_matrix("dl/db_O", g[3], gbo, 1, K);
  print_matrix("dl/dW_H", g[0], &gwh[0][0], H, I);
  print_matrix("dl/db_H", g[1], gbh, 1, H);
  int bad = agree(g[2], &gwo[0][0], K * H) + agree(g[3], gbo, K) + agree(g[0], &gwh[0][0], H * I) +
            agree(g[1], gbh, H);
  bool gc = dc_gradcheck(loss_fn, in, 4, x);
  printf("\ndc_gradcheck (central differences): %s%s\n",
         gc ? "passed" : "FAILED: ", gc ? "" : dc_last_error());
  printf("zero derivatives:\n");
  for (int j = 0; j < H; j++)
    if (hd[j] == 0)
      printf(
          "  hidden unit %d is off (W_H row %d . x + b_H = %g <= 0): its ReLU passes no gradient,"
          "\n  so row %d of dl/dW_H and dl/db_H[%d] are 0, and so is column %d of dl/dW_O "
          "(h_%d = 0)\n",
          j + 1, j + 1, WH[j][0] * X[0] + WH[j][1] * X[1] + BH[j], j + 1, j + 1, j + 1, j + 1);
  dc_scope_end();
  for (int k = 0; k < 4; k++) dc_free(in[k]);
  dc_free(x);
  bad += !gc;
  printf("%s\n", bad ? "MISMATCH" : "ok: autograd = by hand = finite differences");
  return bad ? 1 : 0;
}
