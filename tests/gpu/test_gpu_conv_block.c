/* The CUDA conv block (src/backend/cuda/conv_block.c: conv -> batch norm [-> ReLU [-> 2x2 max
 * pooling]]) against the CPU's conv_block entries on the same inputs: every mode, batch and
 * running statistics, with and without the convolution's bias and the batch norm's affine, odd
 * output sizes (the rows and columns floor-mode pooling leaves out); y, the pooling's argmaxes,
 * the statistics, the running statistics and every gradient. Then the layer on cuda through the
 * public API (which now takes the fused path) against the CPU's. Skips without a GPU, and the
 * entry comparisons skip where the CPU's plan refuses the layer (no AVX-512 on the host).
 * Tolerance TOL_CB: cuDNN and oneDNN sum the convolution in other orders, and the batch norm
 * divides by a small spread: float32 within 1e-4 relative plus 1e-3 absolute on inputs in
 * [-3, 3) (an estimate until it has run on a GPU). */
#include "gpu.h"

#include "backend/nn-kernels.h"
#include "ops/nn_ops.h"

#define TOL_CB 1e-4, 1e-3

TestSuite(gpu_conv_block, .init = gpu_scope_in, .fini = gpu_scope_out);

static dc_conv2d_geom geom3x3(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k) {
  dc_conv2d_geom g;
  memset(&g, 0, sizeof g);
  g.n = n, g.c = c, g.h = h, g.w = w, g.k = k, g.kh = g.kw = 3, g.groups = 1;
  for (int i = 0; i < 2; i++) g.stride[i] = g.dilation[i] = 1, g.pad_l[i] = g.pad_r[i] = 1;
  g.oh = h, g.ow = w;
  g.algo = DC_CONV_ALGO_DIRECT;
  return g;
}

typedef struct side {
  dc_tensor *x, *w, *b, *bn_w, *bn_b, *rm, *rv, *y, *yc, *idx, *stats;
} side;

static dc_tensor *on(dc_tensor *t, dc_device d) { return t && d == DC_CUDA ? to_gpu(t) : t; }

static bool make_side(side *s, const dc_tensor *const *in, dc_device d, const dc_conv2d_geom *g,
                      int mode, bool need_idx) {
  const struct dc_nn_kernels *nn = d == DC_CUDA ? gpu_be()->nn : cpu_be()->nn;
  size_t bytes = 0;
  if (nn->conv_block_plan(g, in[2] != NULL, &bytes) != DC_OK) return false;
  s->x = on((dc_tensor *)in[0], d), s->w = on((dc_tensor *)in[1], d),
  s->b = on((dc_tensor *)in[2], d);
  s->bn_w = on((dc_tensor *)in[3], d), s->bn_b = on((dc_tensor *)in[4], d);
  s->rm = on((dc_tensor *)in[5], d), s->rv = on((dc_tensor *)in[6], d);
  bool pool = mode & DC_CONV_BLOCK_POOL;
  int64_t ps = pool ? 2 : 1;
  s->y = dc__new(DC_SHAPE(g->n, g->k, g->oh / ps, g->ow / ps), DC_F32, d);
  s->yc = dc__new(DC_SHAPE((int64_t)(bytes / 4)), DC_F32, d);
  s->idx = pool && need_idx ? dc__new(dc_shape_of(s->y), DC_U8, d) : NULL;
  s->stats = dc__new(DC_SHAPE(4, g->k), DC_F32, d);
  cr_assert(s->y && s->yc && s->stats, "%s", dc_last_error());
  return true;
}

static void block_case(const dc_conv2d_geom *g, int mode, bool bias, bool affine, bool batch_stats,
                       uint64_t seed) {
  char what[160];
  snprintf(what, sizeof what, "conv_block N%lld C%lld %lldx%lld K%lld mode %d bias %d affine %d %s",
           (long long)g->n, (long long)g->c, (long long)g->h, (long long)g->w, (long long)g->k,
           mode, bias, affine, batch_stats ? "train" : "eval");
  dc_tensor *in[7] = {inputs(DC_SHAPE(g->n, g->c, g->h, g->w), DC_F32, seed, false),
                      inputs(DC_SHAPE(g->k, g->c, 3, 3), DC_F32, seed + 1, false),
                      bias ? inputs(DC_SHAPE(g->k), DC_F32, seed + 2, false) : NULL,
                      affine ? inputs(DC_SHAPE(g->k), DC_F32, seed + 3, false) : NULL,
                      affine ? inputs(DC_SHAPE(g->k), DC_F32, seed + 4, false) : NULL,
                      inputs(DC_SHAPE(g->k), DC_F32, seed + 5, false),
                      dc_add_scalar(inputs(DC_SHAPE(g->k), DC_F32, seed + 6, false), 4.0)};
  side c, q;
  if (!make_side(&c, (const dc_tensor *const *)in, DC_CPU, g, mode, true)) {
    cr_log_warn("%s: the CPU's plan refuses it (no AVX-512?): not compared", what);
    return;
  }
  cr_assert(make_side(&q, (const dc_tensor *const *)in, DC_CUDA, g, mode, true),
            "%s: cuda plan: %s", what, dc_last_error());
  side *sd[2] = {&c, &q};
  for (int i = 0; i < 2; i++) {
    const struct dc_nn_kernels *nn = i ? gpu_be()->nn : cpu_be()->nn;
    side *s = sd[i];
    cr_assert_eq(nn->conv_block_forward(s->y, s->yc, s->idx, s->stats, s->x, s->w, s->b, s->bn_w,
                                        s->bn_b, s->rm, s->rv, batch_stats, 0.1, 1e-5, g, mode),
                 DC_OK, "%s (%s): %s", what, i ? "cuda" : "cpu", dc_last_error());
  }
  char w2[200];
  snprintf(w2, sizeof w2, "%s: y", what);
  expect_close(c.y, q.y, TOL_CB, w2);
  if (c.idx) {
    snprintf(w2, sizeof w2, "%s: idx", what);
    expect_close(c.idx, q.idx, EXACT, w2);
  }
  int64_t ks[1] = {g->k}, k1[1] = {1};
  for (int r = 0; r < 2; r++) { /* mean, invstd */
    dc_tensor *a = dc__alias(c.stats, 1, ks, k1, r * g->k),
              *b = dc__alias(q.stats, 1, ks, k1, r * g->k);
    snprintf(w2, sizeof w2, "%s: stats row %d", what, r);
    expect_close(a, b, TOL_CB, w2);
  }
  snprintf(w2, sizeof w2, "%s: running mean", what);
  expect_close(c.rm, q.rm, TOL_CB, w2);
  snprintf(w2, sizeof w2, "%s: running var", what);
  expect_close(c.rv, q.rv, TOL_CB, w2);
  /* backward: every gradient */
  dc_tensor *gy = inputs(dc_shape_of(c.y), DC_F32, seed + 7, false), *gyg = to_gpu(gy);
  dc_tensor *gr[2][5];
  for (int i = 0; i < 2; i++) {
    dc_device d = i ? DC_CUDA : DC_CPU;
    side *s = sd[i];
    gr[i][0] = empty_like_on(s->x, DC_F32, d);
    gr[i][1] = empty_like_on(s->w, DC_F32, d);
    gr[i][2] = bias ? dc__new(DC_SHAPE(g->k), DC_F32, d) : NULL;
    gr[i][3] = affine ? dc__new(DC_SHAPE(g->k), DC_F32, d) : NULL;
    gr[i][4] = affine ? dc__new(DC_SHAPE(g->k), DC_F32, d) : NULL;
    const struct dc_nn_kernels *nn = i ? gpu_be()->nn : cpu_be()->nn;
    cr_assert_eq(nn->conv_block_backward(gr[i][0], gr[i][1], gr[i][2], gr[i][3], gr[i][4],
                                         i ? gyg : gy, s->x, s->w, s->yc, s->idx, s->bn_w, s->bn_b,
                                         s->stats, batch_stats, g, mode),
                 DC_OK, "%s backward (%s): %s", what, i ? "cuda" : "cpu", dc_last_error());
  }
  static const char *const names[5] = {"gx", "gw", "gb", "gbn_w", "gbn_b"};
  for (int k = 0; k < 5; k++) {
    if (!gr[0][k]) continue;
    snprintf(w2, sizeof w2, "%s: %s", what, names[k]);
    expect_close(gr[0][k], gr[1][k], TOL_CB, w2);
  }
}

Test(gpu_conv_block, entries_match_cpu) {
  GPU_OR_SKIP();
  cr_assert(dc__backend_supports(DC_CUDA, DC_CAP_CONV_BLOCK));
  static const int modes[3] = {0, DC_CONV_BLOCK_RELU, DC_CONV_BLOCK_RELU | DC_CONV_BLOCK_POOL};
  dc_conv2d_geom gs[2] = {geom3x3(2, 3, 8, 8, 16), geom3x3(3, 16, 9, 7, 32)}; /* 9x7: odd sizes */
  uint64_t seed = 900;
  for (int gi = 0; gi < 2; gi++)
    for (int m = 0; m < 3; m++)
      for (int v = 0; v < 4; v++, seed += 10)
        block_case(&gs[gi], modes[m], v & 1, v & 2, true, seed);
  block_case(&gs[1], modes[2], true, true, false, seed); /* running statistics (eval) */
  block_case(&gs[0], modes[1], false, true, false, seed + 10);
}

/* the layers on cuda through the public API (the fused path) against the CPU's */
Test(gpu_conv_block, sequential_layers_match_cpu) {
  GPU_OR_SKIP();
  dc_tensor *x = inputs(DC_SHAPE(4, 3, 12, 10), DC_F32, 950, false);
  dc_tensor *w = inputs(DC_SHAPE(16, 3, 3, 3), DC_F32, 951, false);
  dc_tensor *bw = inputs(DC_SHAPE(16), DC_F32, 952, false),
            *bb = inputs(DC_SHAPE(16), DC_F32, 953, false);
  dc_tensor *rm[2] = {dc_zeros(DC_SHAPE(16), DC_F32), to_gpu(dc_zeros(DC_SHAPE(16), DC_F32))};
  dc_tensor *rv[2] = {dc_ones(DC_SHAPE(16), DC_F32), to_gpu(dc_ones(DC_SHAPE(16), DC_F32))};
  dc_tensor *leaf[2][4] = {{x, w, bw, bb}, {to_gpu(x), to_gpu(w), to_gpu(bw), to_gpu(bb)}};
  dc_tensor *y[2];
  for (int d = 0; d < 2; d++) {
    for (int i = 0; i < 4; i++) dc_requires_grad_(leaf[d][i], true);
    bool fused = false;
    y[d] = dc__conv_block(leaf[d][0], leaf[d][1], NULL, (dc_conv2d_opts){.padding = {1, 1}}, rm[d],
                          rv[d], leaf[d][2], leaf[d][3], true, 0.1, 1e-5,
                          DC_CONV_BLOCK_RELU | DC_CONV_BLOCK_POOL, &fused);
    if (!fused) {
      cr_assert_eq(d, 0, "cuda did not fuse the block: %s", dc_last_error());
      cr_log_warn("the CPU does not fuse this block (no AVX-512?): not compared");
      return;
    }
    cr_assert(y[d], "%s", dc_last_error());
    cr_assert_eq(dc_backward(dc_sum_all(dc_mul(y[d], y[d]))), DC_OK, "%s", dc_last_error());
  }
  expect_close(y[0], y[1], TOL_CB, "conv_bn_relu_pool op: y");
  static const char *const names[4] = {"x.grad", "w.grad", "bn_w.grad", "bn_b.grad"};
  for (int i = 0; i < 4; i++) expect_close(leaf[0][i]->grad, leaf[1][i]->grad, TOL_CB, names[i]);
}
