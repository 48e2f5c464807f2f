/* The test device's tensor kernel families (elementwise, reduce, linalg, index, random): each
 * entry opens a shadow frame, runs the CPU kernel on the host views of its arguments and closes
 * the frame (testdev-impl.h). The CPU kernels themselves stay the only implementation. */
#include "testdev-impl.h"

#define CPU (dc__cpu_backend)

/* ---- elementwise ---- */
static int ew_copy(dc_tensor *dst, const dc_tensor *src) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *d = dc__tdev_host(&f, dst);
  const dc_tensor *s = dc__tdev_host(&f, src);
  return dc__tdev_end(&f, dc__tdev_ok(&f) ? CPU.ew->copy(d, s) : DC_OK);
}

static int ew_fill(dc_tensor *t, double value) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *h = dc__tdev_host(&f, t);
  return dc__tdev_end(&f, dc__tdev_ok(&f) ? CPU.ew->fill(h, value) : DC_OK);
}

static int ew_unary(dc_unary_op op, dc_tensor *out, const dc_tensor *x, const double *p) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *o = dc__tdev_host(&f, out);
  const dc_tensor *hx = dc__tdev_host(&f, x);
  return dc__tdev_end(&f, dc__tdev_ok(&f) ? CPU.ew->unary(op, o, hx, p) : DC_OK);
}

static int ew_binary(dc_binary_op op, dc_tensor *out, const dc_tensor *a, const dc_tensor *b) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *o = dc__tdev_host(&f, out);
  const dc_tensor *ha = dc__tdev_host(&f, a), *hb = dc__tdev_host(&f, b);
  return dc__tdev_end(&f, dc__tdev_ok(&f) ? CPU.ew->binary(op, o, ha, hb) : DC_OK);
}

static int ew_where(dc_tensor *out, const dc_tensor *cond, const dc_tensor *a, const dc_tensor *b) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *o = dc__tdev_host(&f, out);
  const dc_tensor *hc = dc__tdev_host(&f, cond);
  const dc_tensor *ha = dc__tdev_host(&f, a), *hb = dc__tdev_host(&f, b);
  return dc__tdev_end(&f, dc__tdev_ok(&f) ? CPU.ew->where(o, hc, ha, hb) : DC_OK);
}

static int ew_axpy(dc_tensor *out, const dc_tensor *a, double alpha, const dc_tensor *b) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *o = dc__tdev_host(&f, out);
  const dc_tensor *ha = dc__tdev_host(&f, a), *hb = dc__tdev_host(&f, b);
  return dc__tdev_end(&f, dc__tdev_ok(&f) ? CPU.ew->axpy(o, ha, alpha, hb) : DC_OK);
}

const dc_elementwise_kernels dc__testdev_ew = {
    .copy = ew_copy,
    .fill = ew_fill,
    .unary = ew_unary,
    .binary = ew_binary,
    .where = ew_where,
    .axpy = ew_axpy,
};

/* ---- reductions ---- */
static int red_reduce(dc_reduce_op op, dc_tensor *out, const dc_tensor *x, uint32_t dim_mask) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *o = dc__tdev_host(&f, out);
  const dc_tensor *hx = dc__tdev_host(&f, x);
  return dc__tdev_end(&f, dc__tdev_ok(&f) ? CPU.red->reduce(op, o, hx, dim_mask) : DC_OK);
}

static int red_arg_reduce(bool is_max, dc_tensor *values, dc_tensor *indices, const dc_tensor *x,
                          int dim) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *v = dc__tdev_host(&f, values), *i = dc__tdev_host(&f, indices);
  const dc_tensor *hx = dc__tdev_host(&f, x);
  return dc__tdev_end(&f, dc__tdev_ok(&f) ? CPU.red->arg_reduce(is_max, v, i, hx, dim) : DC_OK);
}

static int red_softmax(dc_tensor *out, const dc_tensor *x, int dim, bool log) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *o = dc__tdev_host(&f, out);
  const dc_tensor *hx = dc__tdev_host(&f, x);
  return dc__tdev_end(&f, dc__tdev_ok(&f) ? CPU.red->softmax(o, hx, dim, log) : DC_OK);
}

const dc_reduce_kernels dc__testdev_red = {
    .reduce = red_reduce,
    .arg_reduce = red_arg_reduce,
    .softmax = red_softmax,
};

/* ---- linalg ---- */
static int la_gemm_batched(dc_tensor *out, const dc_tensor *a, const dc_tensor *b, bool ta, bool tb,
                           float alpha, float beta) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *o = dc__tdev_host(&f, out);
  const dc_tensor *ha = dc__tdev_host(&f, a), *hb = dc__tdev_host(&f, b);
  int rc = dc__tdev_ok(&f) ? CPU.linalg->gemm_batched(o, ha, hb, ta, tb, alpha, beta) : DC_OK;
  return dc__tdev_end(&f, rc);
}

static int la_linear(dc_tensor *out, const dc_tensor *x, const dc_tensor *w,
                     const dc_tensor *bias) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *o = dc__tdev_host(&f, out);
  const dc_tensor *hx = dc__tdev_host(&f, x), *hw = dc__tdev_host(&f, w);
  const dc_tensor *hb = dc__tdev_host(&f, bias);
  return dc__tdev_end(&f, dc__tdev_ok(&f) ? CPU.linalg->linear(o, hx, hw, hb) : DC_OK);
}

const dc_linalg_kernels dc__testdev_linalg = {
    .gemm_batched = la_gemm_batched,
    .linear = la_linear,
};

/* ---- index ---- */
static int ix_gather(dc_tensor *out, const dc_tensor *x, int dim, const dc_tensor *index) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *o = dc__tdev_host(&f, out);
  const dc_tensor *hx = dc__tdev_host(&f, x), *hi = dc__tdev_host(&f, index);
  return dc__tdev_end(&f, dc__tdev_ok(&f) ? CPU.index->gather(o, hx, dim, hi) : DC_OK);
}

static int ix_scatter_add(dc_tensor *out, int dim, const dc_tensor *index, const dc_tensor *src) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *o = dc__tdev_host(&f, out);
  const dc_tensor *hi = dc__tdev_host(&f, index), *hs = dc__tdev_host(&f, src);
  return dc__tdev_end(&f, dc__tdev_ok(&f) ? CPU.index->scatter_add(o, dim, hi, hs) : DC_OK);
}

static int ix_index_select(dc_tensor *out, const dc_tensor *x, int dim, const dc_tensor *index) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *o = dc__tdev_host(&f, out);
  const dc_tensor *hx = dc__tdev_host(&f, x), *hi = dc__tdev_host(&f, index);
  return dc__tdev_end(&f, dc__tdev_ok(&f) ? CPU.index->index_select(o, hx, dim, hi) : DC_OK);
}

static int ix_index_add(dc_tensor *out, int dim, const dc_tensor *index, const dc_tensor *src) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *o = dc__tdev_host(&f, out);
  const dc_tensor *hi = dc__tdev_host(&f, index), *hs = dc__tdev_host(&f, src);
  return dc__tdev_end(&f, dc__tdev_ok(&f) ? CPU.index->index_add(o, dim, hi, hs) : DC_OK);
}

const dc_index_kernels dc__testdev_index = {
    .gather = ix_gather,
    .scatter_add = ix_scatter_add,
    .index_select = ix_index_select,
    .index_add = ix_index_add,
};

/* ---- random: the CPU's Philox streams, so both devices draw the same values ---- */
static int rn_uniform(dc_tensor *t, uint64_t seed, uint64_t counter, double a, double b) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *h = dc__tdev_host(&f, t);
  return dc__tdev_end(&f, dc__tdev_ok(&f) ? CPU.rand->uniform(h, seed, counter, a, b) : DC_OK);
}

static int rn_normal(dc_tensor *t, uint64_t seed, uint64_t counter, double mean, double std) {
  dc__tdev_frame f;
  dc__tdev_begin(&f);
  dc_tensor *h = dc__tdev_host(&f, t);
  return dc__tdev_end(&f, dc__tdev_ok(&f) ? CPU.rand->normal(h, seed, counter, mean, std) : DC_OK);
}

const dc_random_kernels dc__testdev_rand = {
    .uniform = rn_uniform,
    .normal = rn_normal,
};
