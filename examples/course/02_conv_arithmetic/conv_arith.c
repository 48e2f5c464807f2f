/* Exercise 2: convolution arithmetic. For each layer of the exercise: the output shape from the
 * formula out = floor((in + 2 pad - k) / stride) + 1, the parameter count (k k Cin Cout weights +
 * Cout biases) and the multiply-adds (out_h out_w Cout k k Cin), the shape confirmed by running
 * deepc's conv2d on a zero input of that size; the fully connected alternative counted the same
 * way; then the toy case: a 5x5 image with two 3x3 filters, stride 1, no padding, computed by
 * deepc (cross-correlation, as in PyTorch) and by a plain loop. Exit 1 if the two disagree. */
#include <deepc/deepc.h>

#include <stdio.h>

/* One conv layer: input H x W x Cin, Cout filters k x k. Prints one table row; returns false if
 * deepc's conv2d gives another output shape than the formula. */
static bool conv_row(const char *what, int64_t h, int64_t w, int64_t cin, int64_t cout, int k,
                     int stride, int pad) {
  int64_t ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
  int64_t params = (int64_t)k * k * cin * cout + cout, macs = ho * wo * cout * k * k * cin;
  dc_scope_begin();
  dc_tensor *x = dc_zeros(DC_SHAPE(1, cin, h, w), DC_F32);
  dc_tensor *wt = dc_zeros(DC_SHAPE(cout, cin, k, k), DC_F32),
            *b = dc_zeros(DC_SHAPE(cout), DC_F32);
  dc_tensor *y = dc_conv2d_f(x, wt, b, .stride = {stride, stride}, .padding = {pad, pad});
  dc_shape ys = y ? dc_shape_of(y) : (dc_shape){0};
  bool ok = y && ys.d[1] == cout && ys.d[2] == ho && ys.d[3] == wo;
  dc_scope_end();
  printf("| %s | %lld x %lld x %lld | %lld x %lld x %lld | %lld | %lld | %s |\n", what,
         (long long)h, (long long)w, (long long)cin, (long long)ho, (long long)wo, (long long)cout,
         (long long)params, (long long)macs, ok ? "yes" : "NO");
  return ok;
}

int main(void) {
  bool ok = true;
  printf("| layer | input H x W x C | output H x W x C | parameters | multiply-adds | deepc agrees "
         "|\n");
  printf("|---|---|---|---:|---:|---|\n");
  ok &= conv_row("3x3 conv, 20 filters, stride 1, no padding", 48, 64, 10, 20, 3, 1, 0);
  ok &= conv_row("6x6 conv, 64 filters, stride 4, padding 2", 98, 98, 16, 64, 6, 4, 2);
  /* fully connected: every one of the 99*99*3 inputs to every one of the 50*50*6 units */
  int64_t fin = 99 * 99 * 3, fout = 50 * 50 * 6;
  printf("| fully connected 99x99x3 -> 50x50x6 | 99 x 99 x 3 | 50 x 50 x 6 | %lld | %lld | "
         "(formula) |\n",
         (long long)(fin * fout + fout), (long long)(fin * fout));
  ok &= conv_row("3x3 conv, 6 filters, stride 2, padding 1", 99, 99, 3, 6, 3, 2, 1);

  /* the toy case */
  static const double IMG[5][5] = {
      {5, 7, 6, 0, 1}, {9, 2, 6, 3, 1}, {2, 8, 3, 6, 9}, {0, 3, 2, 8, 1}, {8, 5, 6, 1, 8}};
  static const double FILT[2][3][3] = {{{1, -4, 3}, {3, -4, -3}, {2, 0, 3}},
                                       {{0, 2, 1}, {-3, 4, -1}, {3, 1, 4}}};
  dc_scope_begin();
  dc_tensor *x = dc_from_data(IMG, DC_SHAPE(1, 1, 5, 5), DC_F64);
  dc_tensor *w = dc_from_data(FILT, DC_SHAPE(2, 1, 3, 3), DC_F64);
  dc_tensor *y = dc_conv2d_f(x, w, NULL);
  if (!y) {
    fprintf(stderr, "conv_arith: %s\n", dc_last_error());
    return 1;
  }
  printf("\ntoy case: 5x5 image, two 3x3 filters, stride 1, no padding -> 3 x 3 x 2\n");
  for (int f = 0; f < 2; f++) {
    printf("filter %d:\n", f + 1);
    for (int i = 0; i < 3; i++) {
      for (int j = 0; j < 3; j++) {
        double s = 0; /* the plain loop: sum over the 3x3 window */
        for (int u = 0; u < 3; u++)
          for (int v = 0; v < 3; v++) s += IMG[i + u][j + v] * FILT[f][u][v];
        double d = dc_item_at(y, (f * 3 + i) * 3 + j);
        ok &= d == s;
        printf(" %5g%s", d, d == s ? "" : "(MISMATCH)");
      }
      printf("\n");
    }
  }
  dc_scope_end();
  printf("\n%s\n", ok ? "ok: deepc's conv2d agrees with the formulas and the plain loop"
                      : "MISMATCH between deepc and the formulas");
  return ok ? 0 : 1;
}
