/* CPU binary elementwise kernels (arithmetic, comparisons, fused activation gradients), where,
 * axpy, and the elementwise driver that feeds every such kernel contiguous pieces whatever the
 * operands' layout. Arguments are checked and dtypes promoted by the ops (src/ops); a naive
 * reference (double, scalar) sits beside each fast kernel as test oracle and generic fallback.
 * Shapes: every operand is broadcast to out's shape; n = elements in one contiguous piece. */
#include "cpu-impl.h"
#include "vmath.h"

#include <string.h>

/* ---- the driver ---- */

#define EW_BLOCK 16384 /* elements per work item: fixed, so results never depend on threads */
#define EW_TILE 1024   /* elements per gathered tile */

/* How an item's rows are run: all operands contiguous along the row; short rows fused with a
 * broadcast row replicated into a tile (a bias: [R, N] + [N]); or through gathered tiles. */
typedef enum ew_mode { EW_DIRECT, EW_FUSED_ROWS, EW_TILED } ew_mode;

typedef struct ew_plan {
  dc__ew_kernel kern;
  const void *ctx;
  int nops; /* out + inputs */
  const dc_tensor *t[DC__LOOP_MAX_OPS];
  size_t z[DC__LOOP_MAX_OPS]; /* element sizes */
  dc__loop L;
  ew_mode mode;
  bool copy_in[DC__LOOP_MAX_OPS];        /* input shares out's storage: read it through a tile */
  int64_t rows_per_item, blocks_per_row; /* one of them is 1 */
} ew_plan;

/* dst[0..n) = src[k * stride] for elements of z bytes. */
static void gather(char *dst, const char *src, int64_t stride, int64_t n, size_t z) {
  switch (z) {
  case 1:
    for (int64_t k = 0; k < n; k++) dst[k] = src[k * stride];
    break;
  case 2:
    for (int64_t k = 0; k < n; k++) ((uint16_t *)dst)[k] = ((const uint16_t *)src)[k * stride];
    break;
  case 4:
    for (int64_t k = 0; k < n; k++) ((uint32_t *)dst)[k] = ((const uint32_t *)src)[k * stride];
    break;
  default:
    for (int64_t k = 0; k < n; k++) ((uint64_t *)dst)[k] = ((const uint64_t *)src)[k * stride];
    break;
  }
}

/* dst[0..n) = *src (a broadcast value) */
static void fill_value(char *dst, const char *src, int64_t n, size_t z) {
  switch (z) {
  case 1:
    memset(dst, *src, (size_t)n);
    break;
  case 2: {
    uint16_t v;
    memcpy(&v, src, 2);
    for (int64_t k = 0; k < n; k++) ((uint16_t *)dst)[k] = v;
    break;
  }
  case 4: {
    uint32_t v;
    memcpy(&v, src, 4);
    for (int64_t k = 0; k < n; k++) ((uint32_t *)dst)[k] = v;
    break;
  }
  default: {
    uint64_t v;
    memcpy(&v, src, 8);
    for (int64_t k = 0; k < n; k++) ((uint64_t *)dst)[k] = v;
    break;
  }
  }
}

static void scatter(char *dst, int64_t stride, const char *src, int64_t n, size_t z) {
  switch (z) {
  case 1:
    for (int64_t k = 0; k < n; k++) dst[k * stride] = src[k];
    break;
  case 2:
    for (int64_t k = 0; k < n; k++) ((uint16_t *)dst)[k * stride] = ((const uint16_t *)src)[k];
    break;
  case 4:
    for (int64_t k = 0; k < n; k++) ((uint32_t *)dst)[k * stride] = ((const uint32_t *)src)[k];
    break;
  default:
    for (int64_t k = 0; k < n; k++) ((uint64_t *)dst)[k * stride] = ((const uint64_t *)src)[k];
    break;
  }
}

/* Element offsets and odometer position of row r0. */
static void first_row(const dc__loop *L, int64_t r0, int64_t *off, int64_t *idx) {
  dc__loop_row(L, r0, off);
  for (int d = L->ndim - 2; d >= 0; d--) {
    idx[d] = r0 % L->shape[d];
    r0 /= L->shape[d];
  }
}

static void next_row(const dc__loop *L, int64_t *off, int64_t *idx) {
  for (int d = L->ndim - 2; d >= 0; d--) {
    for (int k = 0; k < L->nops; k++) off[k] += L->stride[k][d];
    if (++idx[d] < L->shape[d]) return;
    for (int k = 0; k < L->nops; k++) off[k] -= L->shape[d] * L->stride[k][d];
    idx[d] = 0;
  }
}

/* Rows [r0, r1), columns [c0, c1), every operand contiguous along the row. */
static void run_direct(const ew_plan *P, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  int64_t off[DC__LOOP_MAX_OPS], idx[DC_MAX_DIMS];
  char *ptr[DC__LOOP_MAX_OPS];
  first_row(&P->L, r0, off, idx);
  for (int64_t r = r0; r < r1; r++) {
    for (int k = 0; k < P->nops; k++) ptr[k] = DC__PTR(P->t[k], off[k] + c0);
    P->kern(P->ctx, c1 - c0, ptr);
    next_row(&P->L, off, idx);
  }
}

/* Rows [r0, r1) of a 2-D loop with short contiguous rows, where inputs are either contiguous
 * across rows or one row broadcast to all (outer stride 0): that row is replicated into a tile
 * once, so each kernel call covers many rows. */
static __attribute__((noinline)) void run_fused_rows(const ew_plan *P, int64_t r0, int64_t r1) {
  _Alignas(64) char buf[DC__LOOP_MAX_OPS][EW_TILE * 8];
  const dc__loop *L = &P->L;
  int64_t n = L->inner, g = EW_TILE / n < r1 - r0 ? EW_TILE / n : r1 - r0;
  char *ptr[DC__LOOP_MAX_OPS];
  for (int k = 1; k < P->nops; k++) {
    if (L->stride[k][0] != 0) continue;
    size_t row = (size_t)n * P->z[k], have = row; /* replicate by doubling */
    memcpy(buf[k], DC__PTR(P->t[k], L->base[k]), row);
    for (; have < (size_t)g * row; have *= 2)
      memcpy(buf[k] + have, buf[k], have * 2 <= (size_t)g * row ? have : (size_t)g * row - have);
  }
  for (int64_t r = r0; r < r1; r += g) {
    int64_t rows = r1 - r < g ? r1 - r : g;
    for (int k = 0; k < P->nops; k++)
      ptr[k] = k > 0 && L->stride[k][0] == 0 ? buf[k]
                                             : DC__PTR(P->t[k], L->base[k] + r * L->stride[k][0]);
    P->kern(P->ctx, rows * n, ptr);
  }
}

/* Rows [r0, r1), columns [c0, c1), some operand not contiguous along the row: tiles through
 * buffers. A stride-0 input is filled with its value once and refilled only when the value's
 * address changes (a column broadcast: once per row; a 0-d operand: once per item). */
static __attribute__((noinline)) void run_tiled(const ew_plan *P, int64_t r0, int64_t r1,
                                                int64_t c0, int64_t c1) {
  _Alignas(64) char buf[DC__LOOP_MAX_OPS][EW_TILE * 8];
  const char *filled[DC__LOOP_MAX_OPS] = {NULL};
  int64_t filled_n[DC__LOOP_MAX_OPS] = {0};
  int64_t off[DC__LOOP_MAX_OPS], idx[DC_MAX_DIMS];
  char *base[DC__LOOP_MAX_OPS], *ptr[DC__LOOP_MAX_OPS];
  const int64_t *is = P->L.istride;
  first_row(&P->L, r0, off, idx);
  for (int64_t r = r0; r < r1; r++) {
    for (int k = 0; k < P->nops; k++) base[k] = DC__PTR(P->t[k], off[k] + c0 * is[k]);
    for (int64_t t0 = 0; t0 < c1 - c0; t0 += EW_TILE) {
      int64_t n = c1 - c0 - t0 < EW_TILE ? c1 - c0 - t0 : EW_TILE;
      for (int k = 0; k < P->nops; k++) {
        char *src = base[k] + (size_t)(t0 * is[k]) * P->z[k];
        bool direct = is[k] == 1 && !P->copy_in[k];
        ptr[k] = direct ? src : buf[k];
        if (k == 0 || direct) continue;
        if (is[k] != 0) {
          gather(buf[k], src, is[k], n, P->z[k]);
        } else if (filled[k] != src || filled_n[k] < n) {
          fill_value(buf[k], src, n, P->z[k]);
          filled[k] = src;
          filled_n[k] = n;
        }
      }
      P->kern(P->ctx, n, ptr);
      if (is[0] != 1) scatter(base[0] + (size_t)(t0 * is[0]) * P->z[0], is[0], buf[0], n, P->z[0]);
    }
    next_row(&P->L, off, idx);
  }
}

/* Work item it: a block of one long row, or a run of whole short rows. */
static void run_item(const ew_plan *P, int64_t it) {
  const dc__loop *L = &P->L;
  int64_t r0 = it / P->blocks_per_row * P->rows_per_item;
  int64_t r1 = r0 + P->rows_per_item < L->rows ? r0 + P->rows_per_item : L->rows;
  int64_t c0 = it % P->blocks_per_row * EW_BLOCK;
  int64_t c1 = c0 + EW_BLOCK < L->inner ? c0 + EW_BLOCK : L->inner;
  switch (P->mode) {
  case EW_DIRECT:
    run_direct(P, r0, r1, c0, c1);
    break;
  case EW_FUSED_ROWS:
    run_fused_rows(P, r0, r1);
    break;
  case EW_TILED:
    run_tiled(P, r0, r1, c0, c1);
    break;
  }
}

static ew_mode pick_mode(const dc__loop *L, const bool *copy_in) {
  bool contig = true;
  for (int k = 0; k < L->nops; k++) contig &= L->istride[k] == 1 && !copy_in[k];
  if (!contig) return EW_TILED;
  if (L->ndim != 2 || L->inner > EW_TILE / 4 || L->stride[0][0] != L->inner) return EW_DIRECT;
  bool bcast = false;
  for (int k = 1; k < L->nops; k++) {
    if (L->stride[k][0] == 0)
      bcast = true;
    else if (L->stride[k][0] != L->inner)
      return EW_DIRECT;
  }
  return bcast ? EW_FUSED_ROWS : EW_DIRECT;
}

static bool same_layout_contiguous(const dc_tensor *out, int nin, const dc_tensor *const *in) {
  if (!dc_is_contiguous(out)) return false;
  for (int k = 0; k < nin; k++) {
    if (in[k]->ndim != out->ndim || !dc_is_contiguous(in[k])) return false;
    for (int d = 0; d < out->ndim; d++)
      if (in[k]->shape[d] != out->shape[d]) return false;
  }
  return true;
}

/* Flat fast path: all operands contiguous with out's shape. */
static void apply_flat(dc__ew_kernel kern, const void *ctx, dc_tensor *out, int nin,
                       const dc_tensor *const *in) {
  int64_t n = dc_numel(out);
  char *ptr[DC__LOOP_MAX_OPS];
  ptr[0] = DC__PTR(out, out->offset);
  for (int k = 0; k < nin; k++) ptr[k + 1] = DC__PTR(in[k], in[k]->offset);
  if (n < DC__PAR_MIN) {
    kern(ctx, n, ptr);
    return;
  }
  size_t z[DC__LOOP_MAX_OPS];
  z[0] = dc_dtype_size(out->dtype);
  for (int k = 0; k < nin; k++) z[k + 1] = dc_dtype_size(in[k]->dtype);
  int64_t nblk = (n + EW_BLOCK - 1) / EW_BLOCK;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < nblk; b++) {
    char *p[DC__LOOP_MAX_OPS];
    for (int k = 0; k <= nin; k++) p[k] = ptr[k] + (size_t)(b * EW_BLOCK) * z[k];
    kern(ctx, b == nblk - 1 ? n - b * EW_BLOCK : EW_BLOCK, p);
  }
}

void dc__cpu_ew_apply(dc__ew_kernel kern, const void *ctx, dc_tensor *out, int nin,
                      const dc_tensor *const *in, bool in_place_ok) {
  DC__CHECK(nin >= 0 && nin < DC__LOOP_MAX_OPS, );
  bool copy_in[DC__LOOP_MAX_OPS] = {false}, any_copy = false;
  for (int k = 0; k < nin && !in_place_ok; k++)
    any_copy |= copy_in[k + 1] = in[k]->storage == out->storage;
  if (!any_copy && same_layout_contiguous(out, nin, in)) {
    apply_flat(kern, ctx, out, nin, in);
    return;
  }
  ew_plan P = {.kern = kern, .ctx = ctx, .nops = nin + 1};
  memcpy(P.copy_in, copy_in, sizeof copy_in);
  P.t[0] = out;
  for (int k = 0; k < nin; k++) P.t[k + 1] = in[k];
  for (int k = 0; k < P.nops; k++) P.z[k] = dc_dtype_size(P.t[k]->dtype);
  dc__loop_setup(&P.L, dc_shape_of(out), P.nops, P.t);
  if (P.L.rows == 0 || P.L.inner == 0) return;
  P.mode = pick_mode(&P.L, P.copy_in);
  bool long_rows = P.L.inner >= EW_BLOCK;
  P.blocks_per_row = long_rows ? (P.L.inner + EW_BLOCK - 1) / EW_BLOCK : 1;
  P.rows_per_item = long_rows ? 1 : EW_BLOCK / P.L.inner;
  int64_t items =
      long_rows ? P.L.rows * P.blocks_per_row : (P.L.rows + P.rows_per_item - 1) / P.rows_per_item;
  if (P.L.rows * P.L.inner >= DC__PAR_MIN && items > 1) {
#pragma omp parallel for schedule(static)
    for (int64_t it = 0; it < items; it++) run_item(&P, it);
  } else {
    for (int64_t it = 0; it < items; it++) run_item(&P, it);
  }
}

/* ---- fast contiguous kernels: o[i] = a[i] op b[i] ---- */

static const float kSqrt1_2f = 0.70710678118654752f, kInvSqrt2Pif = 0.39894228040143268f;
static const float kBetaf = 0.79788456080286536f, kKappaf = 0.044715f; /* gelu tanh: sqrt(2/pi) */

/* gelu'(x) = Phi(x) + x phi(x), given erf(x / sqrt 2) */
static inline float gelu_grad_f32(float x, float erf_x) {
  return 0.5f * (1.0f + erf_x) + x * kInvSqrt2Pif * dc__expf(-0.5f * x * x);
}

/* PyTorch's tanh-approximation gradient: 0.5 (1 + th) + 0.5 x (1 - th^2) beta (1 + 3 kappa x^2) */
static inline float gelu_tanh_grad_f32(float x) {
  float th = tanhf(kBetaf * (x + kKappaf * x * x * x));
  float inner = kBetaf * (1.0f + 3.0f * kKappaf * x * x);
  return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * inner;
}

DC__CLONES static void bin_f32(dc_binary_op op, float *restrict o, const float *restrict a,
                               const float *restrict b, int64_t n) {
  switch (op) {
  case DC_BIN_ADD:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] + b[i];
    break;
  case DC_BIN_SUB:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] - b[i];
    break;
  case DC_BIN_MUL:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] * b[i];
    break;
  case DC_BIN_DIV:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] / b[i];
    break;
  case DC_BIN_POW:
    for (int64_t i = 0; i < n; i++) o[i] = powf(a[i], b[i]);
    break;
  case DC_BIN_MAXIMUM:
    for (int64_t i = 0; i < n; i++) { /* NaN propagates; loads before the select vectorise */
      float u = a[i], v = b[i];
      o[i] = u != u ? u : (u > v ? u : v);
    }
    break;
  case DC_BIN_MINIMUM:
    for (int64_t i = 0; i < n; i++) {
      float u = a[i], v = b[i];
      o[i] = u != u ? u : (u < v ? u : v);
    }
    break;
  case DC_BIN_RELU_BWD:
    for (int64_t i = 0; i < n; i++) {
      float g = a[i];
      o[i] = b[i] <= 0.0f ? 0.0f : g; /* NaN x passes g, as torch */
    }
    break;
  case DC_BIN_SIGMOID_BWD:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] * (b[i] * (1.0f - b[i]));
    break;
  case DC_BIN_TANH_BWD:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] * (1.0f - b[i] * b[i]);
    break;
  case DC_BIN_GELU_BWD: /* two passes: GCC 12 does not if-convert a loop that holds a call */
    for (int64_t i = 0; i < n; i++) o[i] = erff(b[i] * kSqrt1_2f);
    for (int64_t i = 0; i < n; i++) o[i] = a[i] * gelu_grad_f32(b[i], o[i]);
    break;
  case DC_BIN_GELU_TANH_BWD:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] * gelu_tanh_grad_f32(b[i]);
    break;
  case DC_BIN_ADD_RELU: /* NaN kept */
    for (int64_t i = 0; i < n; i++) {
      float v = a[i] + b[i];
      o[i] = v < 0.0f ? 0.0f : v;
    }
    break;
  case DC_BIN_EQ:
  case DC_BIN_NE:
  case DC_BIN_LT:
  case DC_BIN_LE:
  case DC_BIN_GT:
  case DC_BIN_GE:
  case DC_BINARY_COUNT:
    break;
  }
}

static inline double gelu_grad_f64(double x) {
  return 0.5 * (1.0 + erf(x * M_SQRT1_2)) + x * (0.5 * M_2_SQRTPI * M_SQRT1_2) * exp(-0.5 * x * x);
}
static inline double gelu_tanh_grad_f64(double x) {
  const double beta = M_SQRT2 * M_2_SQRTPI * 0.5, kappa = 0.044715;
  double th = tanh(beta * (x + kappa * x * x * x));
  return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * beta * (1.0 + 3.0 * kappa * x * x);
}

DC__CLONES static void bin_f64(dc_binary_op op, double *restrict o, const double *restrict a,
                               const double *restrict b, int64_t n) {
  switch (op) {
  case DC_BIN_ADD:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] + b[i];
    break;
  case DC_BIN_SUB:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] - b[i];
    break;
  case DC_BIN_MUL:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] * b[i];
    break;
  case DC_BIN_DIV:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] / b[i];
    break;
  case DC_BIN_POW:
    for (int64_t i = 0; i < n; i++) o[i] = pow(a[i], b[i]);
    break;
  case DC_BIN_MAXIMUM:
    for (int64_t i = 0; i < n; i++) {
      double u = a[i], v = b[i];
      o[i] = u != u ? u : (u > v ? u : v);
    }
    break;
  case DC_BIN_MINIMUM:
    for (int64_t i = 0; i < n; i++) {
      double u = a[i], v = b[i];
      o[i] = u != u ? u : (u < v ? u : v);
    }
    break;
  case DC_BIN_RELU_BWD:
    for (int64_t i = 0; i < n; i++) {
      double g = a[i];
      o[i] = b[i] <= 0.0 ? 0.0 : g;
    }
    break;
  case DC_BIN_SIGMOID_BWD:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] * (b[i] * (1.0 - b[i]));
    break;
  case DC_BIN_TANH_BWD:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] * (1.0 - b[i] * b[i]);
    break;
  case DC_BIN_GELU_BWD:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] * gelu_grad_f64(b[i]);
    break;
  case DC_BIN_GELU_TANH_BWD:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] * gelu_tanh_grad_f64(b[i]);
    break;
  case DC_BIN_ADD_RELU:
    for (int64_t i = 0; i < n; i++) {
      double v = a[i] + b[i];
      o[i] = v < 0.0 ? 0.0 : v;
    }
    break;
  case DC_BIN_EQ:
  case DC_BIN_NE:
  case DC_BIN_LT:
  case DC_BIN_LE:
  case DC_BIN_GT:
  case DC_BIN_GE:
  case DC_BINARY_COUNT:
    break;
  }
}

/* Integer add/sub/mul wrap around like PyTorch's (computed unsigned: no signed overflow). */
DC__CLONES static void bin_i64(dc_binary_op op, int64_t *restrict o, const int64_t *restrict a,
                               const int64_t *restrict b, int64_t n) {
  const uint64_t *ua = (const uint64_t *)a, *ub = (const uint64_t *)b;
  switch (op) {
  case DC_BIN_ADD:
    for (int64_t i = 0; i < n; i++) o[i] = (int64_t)(ua[i] + ub[i]);
    break;
  case DC_BIN_SUB:
    for (int64_t i = 0; i < n; i++) o[i] = (int64_t)(ua[i] - ub[i]);
    break;
  case DC_BIN_MUL:
    for (int64_t i = 0; i < n; i++) o[i] = (int64_t)(ua[i] * ub[i]);
    break;
  case DC_BIN_MAXIMUM:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] > b[i] ? a[i] : b[i];
    break;
  case DC_BIN_MINIMUM:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] < b[i] ? a[i] : b[i];
    break;
  default:
    break;
  }
}

DC__CLONES static void bin_i32(dc_binary_op op, int32_t *restrict o, const int32_t *restrict a,
                               const int32_t *restrict b, int64_t n) {
  const uint32_t *ua = (const uint32_t *)a, *ub = (const uint32_t *)b;
  switch (op) {
  case DC_BIN_ADD:
    for (int64_t i = 0; i < n; i++) o[i] = (int32_t)(ua[i] + ub[i]);
    break;
  case DC_BIN_SUB:
    for (int64_t i = 0; i < n; i++) o[i] = (int32_t)(ua[i] - ub[i]);
    break;
  case DC_BIN_MUL:
    for (int64_t i = 0; i < n; i++) o[i] = (int32_t)(ua[i] * ub[i]);
    break;
  case DC_BIN_MAXIMUM:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] > b[i] ? a[i] : b[i];
    break;
  case DC_BIN_MINIMUM:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] < b[i] ? a[i] : b[i];
    break;
  default:
    break;
  }
}

DC__CLONES static void bin_u8(dc_binary_op op, uint8_t *restrict o, const uint8_t *restrict a,
                              const uint8_t *restrict b, int64_t n) {
  switch (op) {
  case DC_BIN_ADD:
    for (int64_t i = 0; i < n; i++) o[i] = (uint8_t)(a[i] + b[i]);
    break;
  case DC_BIN_SUB:
    for (int64_t i = 0; i < n; i++) o[i] = (uint8_t)(a[i] - b[i]);
    break;
  case DC_BIN_MUL:
    for (int64_t i = 0; i < n; i++) o[i] = (uint8_t)(a[i] * b[i]);
    break;
  case DC_BIN_MAXIMUM:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] > b[i] ? a[i] : b[i];
    break;
  case DC_BIN_MINIMUM:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] < b[i] ? a[i] : b[i];
    break;
  default:
    break;
  }
}

/* Comparisons into bool (uint8 0/1). NaN compares false except for NE, as in IEEE. */
DC__CLONES static void cmp_f32(dc_binary_op op, uint8_t *restrict o, const float *restrict a,
                               const float *restrict b, int64_t n) {
  switch (op) {
  case DC_BIN_EQ:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] == b[i];
    break;
  case DC_BIN_NE:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] != b[i];
    break;
  case DC_BIN_LT:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] < b[i];
    break;
  case DC_BIN_LE:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] <= b[i];
    break;
  case DC_BIN_GT:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] > b[i];
    break;
  case DC_BIN_GE:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] >= b[i];
    break;
  default:
    break;
  }
}

DC__CLONES static void cmp_f64(dc_binary_op op, uint8_t *restrict o, const double *restrict a,
                               const double *restrict b, int64_t n) {
  switch (op) {
  case DC_BIN_EQ:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] == b[i];
    break;
  case DC_BIN_NE:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] != b[i];
    break;
  case DC_BIN_LT:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] < b[i];
    break;
  case DC_BIN_LE:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] <= b[i];
    break;
  case DC_BIN_GT:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] > b[i];
    break;
  case DC_BIN_GE:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] >= b[i];
    break;
  default:
    break;
  }
}

DC__CLONES static void cmp_i64(dc_binary_op op, uint8_t *restrict o, const int64_t *restrict a,
                               const int64_t *restrict b, int64_t n) {
  switch (op) {
  case DC_BIN_EQ:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] == b[i];
    break;
  case DC_BIN_NE:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] != b[i];
    break;
  case DC_BIN_LT:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] < b[i];
    break;
  case DC_BIN_LE:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] <= b[i];
    break;
  case DC_BIN_GT:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] > b[i];
    break;
  case DC_BIN_GE:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] >= b[i];
    break;
  default:
    break;
  }
}

DC__CLONES static void cmp_i32(dc_binary_op op, uint8_t *restrict o, const int32_t *restrict a,
                               const int32_t *restrict b, int64_t n) {
  switch (op) {
  case DC_BIN_EQ:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] == b[i];
    break;
  case DC_BIN_NE:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] != b[i];
    break;
  case DC_BIN_LT:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] < b[i];
    break;
  case DC_BIN_LE:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] <= b[i];
    break;
  case DC_BIN_GT:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] > b[i];
    break;
  case DC_BIN_GE:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] >= b[i];
    break;
  default:
    break;
  }
}

/* uint8 and bool (stored as 0/1 bytes) */
DC__CLONES static void cmp_u8(dc_binary_op op, uint8_t *restrict o, const uint8_t *restrict a,
                              const uint8_t *restrict b, int64_t n) {
  switch (op) {
  case DC_BIN_EQ:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] == b[i];
    break;
  case DC_BIN_NE:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] != b[i];
    break;
  case DC_BIN_LT:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] < b[i];
    break;
  case DC_BIN_LE:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] <= b[i];
    break;
  case DC_BIN_GT:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] > b[i];
    break;
  case DC_BIN_GE:
    for (int64_t i = 0; i < n; i++) o[i] = a[i] >= b[i];
    break;
  default:
    break;
  }
}

static bool is_cmp(dc_binary_op op) { return op >= DC_BIN_EQ && op <= DC_BIN_GE; }
static bool is_float_only(dc_binary_op op) {
  return op == DC_BIN_DIV || op == DC_BIN_POW || op >= DC_BIN_RELU_BWD;
}

typedef struct bin_ctx {
  dc_binary_op op;
  dc_dtype dt; /* dtype of a and b */
} bin_ctx;

static void bin_piece(const void *ctx, int64_t n, char *const *p) {
  const bin_ctx *c = ctx;
  if (is_cmp(c->op)) {
    uint8_t *o = (uint8_t *)p[0];
    switch (c->dt) {
    case DC_F32:
      cmp_f32(c->op, o, (const float *)p[1], (const float *)p[2], n);
      return;
    case DC_F64:
      cmp_f64(c->op, o, (const double *)p[1], (const double *)p[2], n);
      return;
    case DC_I64:
      cmp_i64(c->op, o, (const int64_t *)p[1], (const int64_t *)p[2], n);
      return;
    case DC_I32:
      cmp_i32(c->op, o, (const int32_t *)p[1], (const int32_t *)p[2], n);
      return;
    default:
      cmp_u8(c->op, o, (const uint8_t *)p[1], (const uint8_t *)p[2], n);
      return;
    }
  }
  switch (c->dt) {
  case DC_F32:
    bin_f32(c->op, (float *)p[0], (const float *)p[1], (const float *)p[2], n);
    return;
  case DC_F64:
    bin_f64(c->op, (double *)p[0], (const double *)p[1], (const double *)p[2], n);
    return;
  case DC_I64:
    bin_i64(c->op, (int64_t *)p[0], (const int64_t *)p[1], (const int64_t *)p[2], n);
    return;
  case DC_I32:
    bin_i32(c->op, (int32_t *)p[0], (const int32_t *)p[1], (const int32_t *)p[2], n);
    return;
  default:
    bin_u8(c->op, (uint8_t *)p[0], (const uint8_t *)p[1], (const uint8_t *)p[2], n);
    return;
  }
}

/* True when a fast kernel covers this op and dtype combination. */
static bool bin_fast_ok(dc_binary_op op, const dc_tensor *out, const dc_tensor *a,
                        const dc_tensor *b) {
  dc_dtype dt = a->dtype;
  if (b->dtype != dt) return false;
  if (is_cmp(op))
    return out->dtype == DC_BOOL && (dt == DC_F32 || dt == DC_F64 || dt == DC_I64 || dt == DC_I32 ||
                                     dt == DC_U8 || dt == DC_BOOL);
  if (out->dtype != dt) return false;
  if (dt == DC_F32 || dt == DC_F64) return true;
  return !is_float_only(op) && (dt == DC_I64 || dt == DC_I32 || dt == DC_U8);
}

int dc__cpu_binary(dc_binary_op op, dc_tensor *out, const dc_tensor *a, const dc_tensor *b) {
  if (!bin_fast_ok(op, out, a, b)) return dc__cpu_binary_ref(op, out, a, b);
  bin_ctx c = {op, a->dtype};
  const dc_tensor *in[2] = {a, b};
  dc__cpu_ew_apply(bin_piece, &c, out, 2, in, false);
  return DC_OK;
}

/* ---- where: o = c ? a : b, moved as raw elements of 1/2/4/8 bytes ---- */

DC__CLONES static void where_u8(uint8_t *restrict o, const uint8_t *restrict c,
                                const uint8_t *restrict a, const uint8_t *restrict b, int64_t n) {
  for (int64_t i = 0; i < n; i++) { /* both loads unconditional, so the select vectorises */
    uint8_t u = a[i], v = b[i];
    o[i] = c[i] ? u : v;
  }
}
DC__CLONES static void where_u16(uint16_t *restrict o, const uint8_t *restrict c,
                                 const uint16_t *restrict a, const uint16_t *restrict b,
                                 int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    uint16_t u = a[i], v = b[i];
    o[i] = c[i] ? u : v;
  }
}
DC__CLONES static void where_u32(uint32_t *restrict o, const uint8_t *restrict c,
                                 const uint32_t *restrict a, const uint32_t *restrict b,
                                 int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    uint32_t u = a[i], v = b[i];
    o[i] = c[i] ? u : v;
  }
}
DC__CLONES static void where_u64(uint64_t *restrict o, const uint8_t *restrict c,
                                 const uint64_t *restrict a, const uint64_t *restrict b,
                                 int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    uint64_t u = a[i], v = b[i];
    o[i] = c[i] ? u : v;
  }
}

static void where_piece(const void *ctx, int64_t n, char *const *p) {
  const uint8_t *c = (const uint8_t *)p[1];
  switch (*(const size_t *)ctx) {
  case 1:
    where_u8((uint8_t *)p[0], c, (const uint8_t *)p[2], (const uint8_t *)p[3], n);
    return;
  case 2:
    where_u16((uint16_t *)p[0], c, (const uint16_t *)p[2], (const uint16_t *)p[3], n);
    return;
  case 4:
    where_u32((uint32_t *)p[0], c, (const uint32_t *)p[2], (const uint32_t *)p[3], n);
    return;
  default:
    where_u64((uint64_t *)p[0], c, (const uint64_t *)p[2], (const uint64_t *)p[3], n);
    return;
  }
}

int dc__cpu_where(dc_tensor *out, const dc_tensor *c, const dc_tensor *a, const dc_tensor *b) {
  bool cond_ok = c->dtype == DC_BOOL || c->dtype == DC_U8;
  if (!cond_ok || a->dtype != out->dtype || b->dtype != out->dtype)
    return dc__cpu_where_ref(out, c, a, b);
  size_t z = dc_dtype_size(out->dtype);
  const dc_tensor *in[3] = {c, a, b};
  dc__cpu_ew_apply(where_piece, &z, out, 3, in, false);
  return DC_OK;
}

/* ---- axpy: o = a + alpha * b ---- */

DC__CLONES static void axpy_f32(float *o, const float *a, float alpha, const float *b, int64_t n) {
  for (int64_t i = 0; i < n; i++) o[i] = a[i] + alpha * b[i];
}
DC__CLONES static void axpy_f64(double *o, const double *a, double alpha, const double *b,
                                int64_t n) {
  for (int64_t i = 0; i < n; i++) o[i] = a[i] + alpha * b[i];
}
DC__CLONES static void axpy_i64(int64_t *o, const int64_t *a, int64_t alpha, const int64_t *b,
                                int64_t n) {
  for (int64_t i = 0; i < n; i++)
    o[i] = (int64_t)((uint64_t)a[i] + (uint64_t)alpha * (uint64_t)b[i]);
}

typedef struct axpy_ctx {
  dc_dtype dt;
  double alpha;
} axpy_ctx;

/* o may alias a (in-place accumulation), so these loops carry no restrict on o and a. */
static void axpy_piece(const void *ctx, int64_t n, char *const *p) {
  const axpy_ctx *c = ctx;
  switch (c->dt) {
  case DC_F32:
    axpy_f32((float *)p[0], (const float *)p[1], (float)c->alpha, (const float *)p[2], n);
    return;
  case DC_F64:
    axpy_f64((double *)p[0], (const double *)p[1], c->alpha, (const double *)p[2], n);
    return;
  default:
    axpy_i64((int64_t *)p[0], (const int64_t *)p[1], (int64_t)c->alpha, (const int64_t *)p[2], n);
    return;
  }
}

int dc__cpu_axpy(dc_tensor *out, const dc_tensor *a, double alpha, const dc_tensor *b) {
  dc_dtype dt = out->dtype;
  bool ok = a->dtype == dt && b->dtype == dt &&
            (dt == DC_F32 || dt == DC_F64 || (dt == DC_I64 && alpha == (double)(int64_t)alpha));
  if (!ok) return dc__cpu_axpy_ref(out, a, alpha, b);
  axpy_ctx c = {dt, alpha};
  const dc_tensor *in[2] = {a, b};
  dc__cpu_ew_apply(axpy_piece, &c, out, 2, in, true);
  return DC_OK;
}

/* ---- naive references: one element at a time in double ---- */

static double bin_ref(dc_binary_op op, double a, double b) {
  switch (op) {
  case DC_BIN_ADD:
    return a + b;
  case DC_BIN_SUB:
    return a - b;
  case DC_BIN_MUL:
    return a * b;
  case DC_BIN_DIV:
    return a / b;
  case DC_BIN_POW:
    return pow(a, b);
  case DC_BIN_MAXIMUM:
    return isnan(a) || isnan(b) ? NAN : (a > b ? a : b);
  case DC_BIN_MINIMUM:
    return isnan(a) || isnan(b) ? NAN : (a < b ? a : b);
  case DC_BIN_EQ:
    return a == b;
  case DC_BIN_NE:
    return a != b;
  case DC_BIN_LT:
    return a < b;
  case DC_BIN_LE:
    return a <= b;
  case DC_BIN_GT:
    return a > b;
  case DC_BIN_GE:
    return a >= b;
  case DC_BIN_RELU_BWD:
    return b <= 0 ? 0.0 : a;
  case DC_BIN_SIGMOID_BWD:
    return a * b * (1.0 - b);
  case DC_BIN_TANH_BWD:
    return a * (1.0 - b * b);
  case DC_BIN_GELU_BWD:
    return a * gelu_grad_f64(b);
  case DC_BIN_GELU_TANH_BWD:
    return a * gelu_tanh_grad_f64(b);
  case DC_BIN_ADD_RELU:
    return a + b < 0 ? 0.0 : a + b;
  case DC_BINARY_COUNT:
    break;
  }
  return NAN;
}

int dc__cpu_binary_ref(dc_binary_op op, dc_tensor *out, const dc_tensor *a, const dc_tensor *b) {
  const dc_tensor *ops[3] = {out, a, b};
  dc__loop L;
  dc__loop_setup(&L, dc_shape_of(out), 3, ops);
  for (int64_t r = 0; r < L.rows; r++) {
    int64_t off[3];
    dc__loop_row(&L, r, off);
    for (int64_t i = 0; i < L.inner; i++) {
      double va = dc__load(DC__PTR(a, off[1] + i * L.istride[1]), a->dtype);
      double vb = dc__load(DC__PTR(b, off[2] + i * L.istride[2]), b->dtype);
      dc__store(DC__PTR(out, off[0] + i * L.istride[0]), out->dtype, bin_ref(op, va, vb));
    }
  }
  return DC_OK;
}

int dc__cpu_where_ref(dc_tensor *out, const dc_tensor *c, const dc_tensor *a, const dc_tensor *b) {
  const dc_tensor *ops[4] = {out, c, a, b};
  dc__loop L;
  dc__loop_setup(&L, dc_shape_of(out), 4, ops);
  for (int64_t r = 0; r < L.rows; r++) {
    int64_t off[4];
    dc__loop_row(&L, r, off);
    for (int64_t i = 0; i < L.inner; i++) {
      bool cv = dc__load(DC__PTR(c, off[1] + i * L.istride[1]), c->dtype) != 0.0;
      const dc_tensor *src = cv ? a : b;
      int64_t so = cv ? off[2] + i * L.istride[2] : off[3] + i * L.istride[3];
      dc__store(DC__PTR(out, off[0] + i * L.istride[0]), out->dtype,
                dc__load(DC__PTR(src, so), src->dtype));
    }
  }
  return DC_OK;
}

int dc__cpu_axpy_ref(dc_tensor *out, const dc_tensor *a, double alpha, const dc_tensor *b) {
  const dc_tensor *ops[3] = {out, a, b};
  dc__loop L;
  dc__loop_setup(&L, dc_shape_of(out), 3, ops);
  for (int64_t r = 0; r < L.rows; r++) {
    int64_t off[3];
    dc__loop_row(&L, r, off);
    for (int64_t i = 0; i < L.inner; i++) {
      double va = dc__load(DC__PTR(a, off[1] + i * L.istride[1]), a->dtype);
      double vb = dc__load(DC__PTR(b, off[2] + i * L.istride[2]), b->dtype);
      dc__store(DC__PTR(out, off[0] + i * L.istride[0]), out->dtype, va + alpha * vb);
    }
  }
  return DC_OK;
}
