/* The CUDA batch norm (bnorm.cu) against the CPU's: forward (batch and running statistics, the
 * running-stat update, save_mean/save_invstd, NULL weight/bias/running stats), backward (training
 * and eval formulas, gx/gw/gb each optional), the fused ReLU entries and their capability, long
 * channels (many values per thread), determinism, and float64 gradient checks on the device
 * through dc_batch_norm. Skips without a GPU. */
#include "gpu.h"

#include "backend/nn-kernels.h"
#include "ops/nn_ops.h"

TestSuite(gpu_bnorm, .init = gpu_scope_in, .fini = gpu_scope_out);

/* float32 sums: the cpu's in float lanes, cuda's in double */
#define BN_TOL(dt) ((dt) == DC_F64 ? 1e-11 : 1e-4), ((dt) == DC_F64 ? 1e-12 : 1e-5)

static dc_tensor *on(dc_tensor *t, bool gpu) { return t && gpu ? to_gpu(t) : t; }

typedef struct bn_case {
  dc_dtype dt;
  bool train, relu, affine, running, special;
  int64_t n, c, s;
  double offset;
} bn_case;

/* forward then backward of one case on both devices; every output compared */
static void run_case(bn_case k) {
  char what[160];
  snprintf(what, sizeof what,
           "bn %s train=%d relu=%d affine=%d running=%d special=%d [%lld,%lld,%lld]",
           dc_dtype_name(k.dt), k.train, k.relu, k.affine, k.running, k.special, (long long)k.n,
           (long long)k.c, (long long)k.s);
  dc_tensor *x = inputs(DC_SHAPE(k.n, k.c, k.s), k.dt, 201, k.special);
  if (k.offset != 0) x = dc_add_scalar(x, k.offset);
  dc_tensor *w = k.affine ? inputs(DC_SHAPE(k.c), k.dt, 202, false) : NULL;
  dc_tensor *b = k.affine ? inputs(DC_SHAPE(k.c), k.dt, 203, false) : NULL;
  dc_tensor *rm = k.running ? inputs(DC_SHAPE(k.c), k.dt, 204, false) : NULL;
  dc_tensor *rv =
      k.running ? dc_add_scalar(dc_abs(inputs(DC_SHAPE(k.c), k.dt, 205, false)), 0.5) : NULL;
  bool bs = k.train || !k.running;
  dc_tensor *y[2], *mean[2], *inv[2], *rms[2], *rvs[2], *gx[2], *gw[2], *gb[2];
  dc_tensor *gy = inputs(DC_SHAPE(k.n, k.c, k.s), k.dt, 206, false);
  for (int d = 0; d < 2; d++) {
    bool g = d == 1;
    const struct dc_nn_kernels *nn = g ? gpu_be()->nn : cpu_be()->nn;
    dc_device dev = g ? DC_CUDA : DC_CPU;
    dc_tensor *xd = on(x, g), *wd = on(w, g), *bd = on(b, g), *gyd = on(gy, g);
    rms[d] = rm ? (g ? to_gpu(rm) : dc_clone(rm)) : NULL;
    rvs[d] = rv ? (g ? to_gpu(rv) : dc_clone(rv)) : NULL;
    y[d] = empty_like_on(x, k.dt, dev);
    mean[d] = dc__new(DC_SHAPE(k.c), k.dt, dev);
    inv[d] = dc__new(DC_SHAPE(k.c), k.dt, dev);
    int rc = (k.relu ? nn->batch_norm_relu_forward : nn->batch_norm_forward)(
        y[d], mean[d], inv[d], xd, wd, bd, rms[d], rvs[d], bs, 0.1, 1e-5);
    cr_assert_eq(rc, DC_OK, "%s: %s", what, dc_last_error());
    gx[d] = empty_like_on(x, k.dt, dev);
    gw[d] = dc__new(DC_SHAPE(k.c), k.dt, dev);
    gb[d] = dc__new(DC_SHAPE(k.c), k.dt, dev);
    rc = k.relu ? nn->batch_norm_relu_backward(gx[d], gw[d], gb[d], gyd, y[d], xd, wd, mean[d],
                                               inv[d], bs)
                : nn->batch_norm_backward(gx[d], gw[d], gb[d], gyd, xd, wd, mean[d], inv[d], bs);
    cr_assert_eq(rc, DC_OK, "%s backward: %s", what, dc_last_error());
  }
  expect_close(y[0], y[1], BN_TOL(k.dt), what);
  expect_close(mean[0], mean[1], BN_TOL(k.dt), "save_mean");
  expect_close(inv[0], inv[1], BN_TOL(k.dt), "save_invstd");
  if (k.running) {
    expect_close(rms[0], rms[1], BN_TOL(k.dt), "running_mean");
    expect_close(rvs[0], rvs[1], BN_TOL(k.dt), "running_var");
  }
  expect_close(gx[0], gx[1], BN_TOL(k.dt), "gx");
  expect_close(gw[0], gw[1], BN_TOL(k.dt), "gw");
  expect_close(gb[0], gb[1], BN_TOL(k.dt), "gb");
}

Test(gpu_bnorm, entries_match_cpu) {
  GPU_OR_SKIP();
  dc_dtype dts[2] = {DC_F32, DC_F64};
  for (int t = 0; t < 2; t++)
    for (int m = 0; m < 16; m++)
      run_case((bn_case){dts[t], m & 1, m & 2, m & 4, m & 8, false, 6, 5, 37, 0});
}

Test(gpu_bnorm, special_values_long_channels_and_offsets) {
  GPU_OR_SKIP();
  dc_dtype dts[2] = {DC_F32, DC_F64};
  for (int t = 0; t < 2; t++) {
    run_case((bn_case){dts[t], true, false, true, true, true, 4, 3, 9, 0});
    run_case((bn_case){dts[t], false, true, true, true, true, 4, 3, 9, 0});
    run_case((bn_case){dts[t], true, true, true, true, false, 16, 3, 2500, 0}); /* 40000/channel */
    run_case((bn_case){dts[t], true, false, false, false, false, 8, 2, 300, 1e3});
    run_case((bn_case){dts[t], true, false, true, true, false, 64, 70, 1, 0}); /* [N, C] */
  }
}

Test(gpu_bnorm, optional_outputs_and_determinism) {
  GPU_OR_SKIP();
  dc_tensor *x = to_gpu(inputs(DC_SHAPE(8, 4, 500), DC_F32, 211, false));
  dc_tensor *gy = to_gpu(inputs(DC_SHAPE(8, 4, 500), DC_F32, 212, false));
  const struct dc_nn_kernels *nn = gpu_be()->nn;
  dc_tensor *y[2], *gx[2];
  dc_tensor *mean = dc__new(DC_SHAPE(4), DC_F32, DC_CUDA),
            *inv = dc__new(DC_SHAPE(4), DC_F32, DC_CUDA);
  for (int r = 0; r < 2; r++) {
    y[r] = empty_like_on(x, DC_F32, DC_CUDA);
    gx[r] = empty_like_on(x, DC_F32, DC_CUDA);
    cr_assert_eq(
        nn->batch_norm_forward(y[r], mean, inv, x, NULL, NULL, NULL, NULL, true, 0.1, 1e-5), DC_OK,
        "%s", dc_last_error());
    /* gx alone: no gw, gb */
    cr_assert_eq(nn->batch_norm_backward(gx[r], NULL, NULL, gy, x, NULL, mean, inv, true), DC_OK,
                 "%s", dc_last_error());
  }
  expect_close(y[0], y[1], EXACT, "forward run twice");
  expect_close(gx[0], gx[1], EXACT, "backward run twice");
  dc_tensor *gb = dc__new(DC_SHAPE(4), DC_F32, DC_CUDA);
  cr_assert_eq(nn->batch_norm_backward(NULL, NULL, gb, gy, x, NULL, mean, inv, true), DC_OK);
  dc_tensor *ref = dc_sum(dc_to_device(gy, DC_CPU), DC_DIMS(0, 2), false);
  expect_close(ref, gb, 1e-5, 1e-5, "gb alone = sum of gy per channel");
}

Test(gpu_bnorm, fused_relu_capability_and_op) {
  GPU_OR_SKIP();
  cr_expect(dc__backend_supports(DC_CUDA, DC_CAP_BATCH_NORM_RELU));
  dc_tensor *x = inputs(DC_SHAPE(4, 3, 6, 5), DC_F32, 221, false);
  dc_tensor *rm = inputs(DC_SHAPE(3), DC_F32, 222, false), *rv = dc_add_scalar(rm, 4.0);
  dc_tensor *rmg = to_gpu(rm), *rvg = to_gpu(rv);
  dc_tensor *yc = dc__batch_norm_relu(x, rm, rv, NULL, NULL, true, 0.1, 1e-5);
  dc_tensor *yg = dc__batch_norm_relu(to_gpu(x), rmg, rvg, NULL, NULL, true, 0.1, 1e-5);
  cr_assert(yc && yg, "%s", dc_last_error());
  expect_close(yc, yg, BN_TOL(DC_F32), "batch_norm_relu op");
  expect_close(rm, rmg, BN_TOL(DC_F32), "running_mean after the fused op");
  expect_close(rv, rvg, BN_TOL(DC_F32), "running_var after the fused op");
}

/* ---- float64 gradient checks on the device ---- */

typedef struct bn_ud {
  dc_tensor *rm, *rv;
  bool train, relu;
} bn_ud;

static dc_tensor *f_bn(dc_tensor *const *in, int n, void *ud) {
  const bn_ud *u = ud;
  dc_tensor *y = u->relu
                     ? dc__batch_norm_relu(in[0], u->rm, u->rv, in[1], in[2], u->train, 0.0, 1e-5)
                     : dc_batch_norm(in[0], u->rm, u->rv, in[1], in[2], u->train, 0.0, 1e-5);
  return dc_mul(y, dc_tanh(in[0])); /* a nonlinear use of y */
}

static dc_tensor *leaf(dc_shape s, uint64_t seed, double add) {
  dc_tensor *t = to_gpu(dc_add_scalar(inputs(s, DC_F64, seed, false), add));
  return dc_requires_grad_(t, true);
}

Test(gpu_bnorm, gradcheck_on_device) {
  GPU_OR_SKIP();
  for (int m = 0; m < 4; m++) {
    bool train = m & 1, relu = m & 2;
    dc_tensor *in[3] = {leaf(DC_SHAPE(3, 2, 4), 231, 0.0), leaf(DC_SHAPE(2), 232, 4.0),
                        leaf(DC_SHAPE(2), 233, 0.0)};
    /* momentum 0: the running stats stay as they are while the differences are taken */
    bn_ud u = {to_gpu(inputs(DC_SHAPE(2), DC_F64, 234, false)),
               to_gpu(dc_add_scalar(inputs(DC_SHAPE(2), DC_F64, 235, false), 4.0)), train, relu};
    cr_expect(dc_gradcheck(f_bn, in, 3, &u), "batch_norm train=%d relu=%d: %s", train, relu,
              dc_last_error());
    cr_expect_eq(in[0]->device, DC_CUDA);
  }
}
