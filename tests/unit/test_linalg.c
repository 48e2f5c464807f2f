/* Linear algebra tests: the GEMM kernel (oneDNN and blocked paths) against the naive reference
 * on odd sizes, transposed/strided/broadcast operands and alpha/beta; dc_matmul/dc_bmm/dc_linear
 * shapes and values for every torch.matmul case; bad input; float64 gradchecks of all three. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "backend/cpu/cpu-impl.h"

/* max |a - b| over all elements (same shapes) */
static double max_diff(const dc_tensor *a, const dc_tensor *b) {
  cr_assert(dc_shape_equal(dc_shape_of(a), dc_shape_of(b)), "shapes differ");
  double m = 0;
  for (int64_t i = 0, n = dc_numel(a); i < n; i++) {
    double d = fabs(dc_item_at(a, i) - dc_item_at(b, i));
    if (!(d <= m)) m = d; /* NaN propagates */
  }
  return m;
}

/* ---- the kernel against the reference ---- */

/* out [B, M, N] from a (logical [B|1, M, K]) and b, through the kernel path `path` and through
 * the reference; returns the max difference. */
static double kernel_vs_ref(int path, dc_tensor *a, dc_tensor *b, bool ta, bool tb, int64_t B,
                            int64_t M, int64_t N, float alpha, float beta) {
  dc_tensor *o1 = dc_randn(DC_SHAPE(B, M, N), a->dtype);
  dc_tensor *o2 = dc_clone(o1);
  dc__cpu_gemm_force = path;
  int rc = dc__cpu_linalg.gemm_batched(o1, a, b, ta, tb, alpha, beta);
  dc__cpu_gemm_force = DC__GEMM_AUTO;
  cr_assert_eq(rc, DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc__cpu_gemm_ref(o2, a, b, ta, tb, alpha, beta), DC_OK, "%s", dc_last_error());
  return max_diff(o1, o2);
}

Test(gemm, odd_sizes_all_paths_match_reference) {
  dc_scope_begin();
  dc_manual_seed(3);
  const int64_t sz[] = {1, 7, 63, 129};
  const int paths[] = {DC__GEMM_ONEDNN, DC__GEMM_BLOCKED}; /* AUTO picks one of these */
  for (int im = 0; im < 4; im++)
    for (int in = 0; in < 4; in++)
      for (int ik = 0; ik < 4; ik++) {
        int64_t M = sz[im], N = sz[in], K = sz[ik];
        dc_tensor *a = dc_randn(DC_SHAPE(1, M, K), DC_F32),
                  *b = dc_randn(DC_SHAPE(1, K, N), DC_F32);
        for (int p = 0; p < 2; p++) {
          double d = kernel_vs_ref(paths[p], a, b, false, false, 1, M, N, 1.0f, 0.0f);
          cr_assert(d < 1e-4 * sqrt((double)K), "M=%lld N=%lld K=%lld path %d: diff %g",
                    (long long)M, (long long)N, (long long)K, paths[p], d);
        }
      }
  dc_scope_end();
}

Test(gemm, transposes_strides_broadcast_alpha_beta) {
  dc_scope_begin();
  dc_manual_seed(4);
  const int paths[] = {DC__GEMM_ONEDNN, DC__GEMM_BLOCKED};
  int64_t B = 3, M = 37, N = 29, K = 65;
  for (int p = 0; p < 2; p++)
    for (int dt = 0; dt < 2; dt++) {
      dc_dtype t = dt ? DC_F64 : DC_F32;
      double tol = dt ? 1e-10 : 1e-3;
      /* ta/tb flags on stored [B, K, M] and [B, N, K] */
      dc_tensor *at = dc_randn(DC_SHAPE(B, K, M), t), *bt = dc_randn(DC_SHAPE(B, N, K), t);
      dc_tensor *a = dc_randn(DC_SHAPE(B, M, K), t), *b = dc_randn(DC_SHAPE(B, K, N), t);
      cr_assert_lt(kernel_vs_ref(paths[p], at, bt, true, true, B, M, N, 1, 0), tol);
      cr_assert_lt(kernel_vs_ref(paths[p], at, b, true, false, B, M, N, 0.5f, 2.0f), tol);
      cr_assert_lt(kernel_vs_ref(paths[p], a, bt, false, true, B, M, N, -1.5f, 1.0f), tol);
      /* the same transposes as strided views */
      dc_tensor *av = dc_transpose(at, 1, 2), *bv = dc_transpose(bt, 1, 2);
      cr_assert_lt(kernel_vs_ref(paths[p], av, bv, false, false, B, M, N, 1, 0), tol);
      /* leading dims larger than the matrix (narrowed), and a step-2 slice (packed) */
      dc_tensor *wide = dc_randn(DC_SHAPE(B, M, K + 9), t);
      dc_tensor *an = dc_narrow(wide, 2, 3, K);
      cr_assert_lt(kernel_vs_ref(paths[p], an, b, false, false, B, M, N, 1, 0), tol);
      dc_tensor *tall = dc_randn(DC_SHAPE(B, 2 * K, N), t);
      dc_tensor *bs = dc_slice(tall, 1, 0, 2 * K, 2);
      cr_assert_lt(kernel_vs_ref(paths[p], a, bs, false, false, B, M, N, 1, 0), tol);
      /* broadcast batches: a batch of 1, b expanded with batch stride 0, and a permuted batch */
      dc_tensor *a1 = dc_randn(DC_SHAPE(1, M, K), t);
      cr_assert_lt(kernel_vs_ref(paths[p], a1, b, false, false, B, M, N, 1, 0), tol);
      dc_tensor *b1 = dc_expand(dc_randn(DC_SHAPE(1, K, N), t), DC_SHAPE(B, K, N));
      cr_assert_lt(kernel_vs_ref(paths[p], a, b1, false, false, B, M, N, 1, 0), tol);
      dc_tensor *ap = dc_permute(dc_randn(DC_SHAPE(M, B, K), t), (int[]){1, 0, 2}, 3);
      cr_assert_lt(kernel_vs_ref(paths[p], ap, b1, false, false, B, M, N, 1, 0), tol);
      /* 2-D operands */
      dc_tensor *a2 = dc_randn(DC_SHAPE(M, K), t), *b2 = dc_randn(DC_SHAPE(K, N), t);
      cr_assert_lt(kernel_vs_ref(paths[p], a2, b2, false, false, 1, M, N, 1, 0), tol);
    }
  dc_scope_end();
}

Test(gemm, large_k_blocks_and_float64) {
  dc_scope_begin();
  dc_manual_seed(5);
  /* K spans three KC slices, N three NC panels, M two MR tiles */
  dc_tensor *a = dc_randn(DC_SHAPE(2, 9, 600), DC_F64),
            *b = dc_randn(DC_SHAPE(2, 600, 530), DC_F64);
  double d = kernel_vs_ref(DC__GEMM_AUTO, a, b, false, false, 2, 9, 530, 1.0f, 0.5f);
  cr_assert_lt(d, 1e-10);
  dc_tensor *af = dc_to_dtype(a, DC_F32), *bf = dc_to_dtype(b, DC_F32);
  cr_assert_lt(kernel_vs_ref(DC__GEMM_AUTO, af, bf, false, false, 2, 9, 530, 1, 0), 5e-3);
  cr_assert_lt(kernel_vs_ref(DC__GEMM_BLOCKED, af, bf, false, false, 2, 9, 530, 2, 1), 5e-3);
  dc_scope_end();
}

Test(gemm, fused_linear_entry_matches_reference) {
  dc_scope_begin();
  dc_manual_seed(14);
  const int paths[] = {DC__GEMM_ONEDNN, DC__GEMM_BLOCKED};
  const int64_t shapes[][3] = {{70, 50, 33}, {3, 5, 4}, {64, 0, 7}}; /* M, K, N */
  for (int p = 0; p < 2; p++)
    for (int s = 0; s < 3; s++)
      for (int dt = 0; dt < 2; dt++) {
        dc_dtype t = dt ? DC_F64 : DC_F32;
        int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        dc_tensor *x = dc_randn(DC_SHAPE(M, K), t), *w = dc_randn(DC_SHAPE(N, K), t);
        dc_tensor *bias = dc_slice(dc_randn(DC_SHAPE(2 * N), t), 0, 0, 2 * N, 2); /* strided */
        dc_tensor *o1 = dc_empty(DC_SHAPE(M, N), t), *o2 = dc_empty(DC_SHAPE(M, N), t);
        dc__cpu_gemm_force = paths[p];
        int rc = dc__cpu_linalg.linear(o1, x, w, bias);
        dc__cpu_gemm_force = DC__GEMM_AUTO;
        cr_assert_eq(rc, DC_OK, "%s", dc_last_error());
        cr_assert_eq(dc_copy_(o2, bias), DC_OK);
        cr_assert_eq(dc__cpu_gemm_ref(o2, x, w, false, true, 1, 1), DC_OK);
        cr_assert_lt(max_diff(o1, o2), dt ? 1e-12 : 1e-4, "path %d shape %d", paths[p], s);
        cr_assert_eq(dc__cpu_linalg.linear(o1, x, w, NULL), DC_OK);
        cr_assert_eq(dc__cpu_gemm_ref(o2, x, w, false, true, 1, 0), DC_OK);
        cr_assert_lt(max_diff(o1, o2), dt ? 1e-12 : 1e-4, "no bias: path %d shape %d", paths[p], s);
      }
  dc_scope_end();
}

Test(gemm, empty_dims_and_k_zero) {
  dc_scope_begin();
  dc_tensor *a = dc_ones(DC_SHAPE(1, 4, 0), DC_F32), *b = dc_ones(DC_SHAPE(1, 0, 3), DC_F32);
  dc_tensor *o = dc_full(DC_SHAPE(1, 4, 3), 2.0, DC_F32);
  cr_assert_eq(dc__cpu_linalg.gemm_batched(o, a, b, false, false, 1, 0.5f), DC_OK);
  cr_assert_float_eq(dc_item_at(o, 5), 1.0, 1e-7); /* beta * out, no crash on K = 0 */
  cr_assert_eq(dc__cpu_linalg.gemm_batched(o, a, b, false, false, 1, 0), DC_OK);
  cr_assert_float_eq(dc_item_at(o, 0), 0.0, 1e-7);
  dc_tensor *m = dc_matmul(dc_ones(DC_SHAPE(0, 5), DC_F32), dc_ones(DC_SHAPE(5, 3), DC_F32));
  cr_assert_not_null(m, "%s", dc_last_error());
  cr_assert_eq(m->shape[0], 0);
  dc_tensor *z = dc_matmul(dc_ones(DC_SHAPE(2, 0), DC_F64), dc_ones(DC_SHAPE(0, 3), DC_F64));
  cr_assert_not_null(z);
  cr_assert_float_eq(dc_item_at(z, 5), 0.0, 1e-12);
  dc_scope_end();
}

Test(gemm, kernel_rejects_bad_arguments) {
  dc_scope_begin();
  dc_tensor *a = dc_ones(DC_SHAPE(2, 3), DC_F32), *b = dc_ones(DC_SHAPE(4, 5), DC_F32);
  dc_tensor *o = dc_empty(DC_SHAPE(2, 5), DC_F32);
  cr_assert_eq(dc__cpu_linalg.gemm_batched(o, a, b, false, false, 1, 0), DC_ERR_ARG);
  cr_assert(strstr(dc_last_error(), "[2, 3]") && strstr(dc_last_error(), "[4, 5]"), "%s",
            dc_last_error());
  dc_tensor *bd = dc_ones(DC_SHAPE(3, 5), DC_F64);
  cr_assert_eq(dc__cpu_linalg.gemm_batched(o, a, bd, false, false, 1, 0), DC_ERR_ARG);
  dc_scope_end();
}

Test(gemm, results_do_not_depend_on_the_thread_count) {
  dc_scope_begin();
  dc_manual_seed(15);
  const int64_t shapes[][3] = {{1, 100000, 1}, {16, 65536, 16}, {64, 1024, 256},
                               {7, 63, 129},   {2, 3000, 600},  {300, 200, 100}};
  for (int s = 0; s < 6; s++)
    for (int dt = 0; dt < 2; dt++) {
      dc_tensor *a = dc_randn(DC_SHAPE(shapes[s][0], shapes[s][1]), dt ? DC_F64 : DC_F32);
      dc_tensor *b = dc_randn(DC_SHAPE(shapes[s][1], shapes[s][2]), dt ? DC_F64 : DC_F32);
      omp_set_num_threads(1);
      dc_tensor *r1 = dc_matmul(a, b);
      omp_set_num_threads(2);
      dc_tensor *r2 = dc_matmul(a, b);
      cr_assert(r1 && r2, "%s", dc_last_error());
      cr_assert_eq(
          memcmp(dc_data(r1), dc_data(r2), (size_t)dc_numel(r1) * dc_dtype_size(r1->dtype)), 0,
          "shape %d dtype %d differs between 1 and 2 threads", s, dt);
    }
  dc_scope_end();
}

/* Products of 2^27 multiply-adds and more run on oneDNN's sgemm, which may split K between
 * threads: the same at a fixed thread count, within float32 rounding of each other and of a
 * float64 product across thread counts, for every transpose. */
Test(gemm, large_products_match_float64_and_repeat_exactly) {
  dc_scope_begin();
  dc_manual_seed(16);
  const int64_t m = 256, k = 2048, n = 512;
  for (int t = 0; t < 4; t++) {
    dc_tensor *a = dc_randn(t & 1 ? DC_SHAPE(k, m) : DC_SHAPE(m, k), DC_F32);
    dc_tensor *b = dc_randn(t & 2 ? DC_SHAPE(n, k) : DC_SHAPE(k, n), DC_F32);
    dc_tensor *at = t & 1 ? dc_transpose(a, 0, 1) : a, *bt = t & 2 ? dc_transpose(b, 0, 1) : b;
    dc_tensor *ref = dc_matmul(dc_to_dtype(at, DC_F64), dc_to_dtype(bt, DC_F64));
    for (int th = 1; th <= 2; th++) {
      omp_set_num_threads(th);
      dc_tensor *r1 = dc_matmul(at, bt), *r2 = dc_matmul(at, bt);
      cr_assert(r1 && r2 && ref, "%s", dc_last_error());
      cr_assert_eq(memcmp(dc_data(r1), dc_data(r2), (size_t)dc_numel(r1) * sizeof(float)), 0,
                   "transpose case %d, %d threads: two runs differ", t, th);
      const float *p = dc_data(r1);
      const double *q = dc_data(ref);
      double worst = 0;
      for (int64_t i = 0; i < m * n; i++) {
        double e = fabs((double)p[i] - q[i]) / (1.0 + fabs(q[i]));
        worst = e > worst ? e : worst;
      }
      /* sums of 2048 products of unit normals: float32 rounding adds up to ~1e-4 */
      cr_assert_lt(worst, 5e-4, "transpose case %d, %d threads: off by %g", t, th, worst);
    }
  }
  omp_set_num_threads(2);
  dc_scope_end();
}

/* ---- matmul: every torch.matmul case against a naive product ---- */

/* Reference: r[i] = sum_k a[..., i, k] b[..., k, j] computed by the kernel reference on
 * materialised [B, M, K] / [B, K, N] copies made with deepc views (expand + reshape). */
static dc_tensor *ref_matmul(dc_tensor *a, dc_tensor *b, dc_shape out_shape) {
  dc_tensor *a2 = a->ndim == 1 ? dc_unsqueeze(a, 0) : a,
            *b2 = b->ndim == 1 ? dc_unsqueeze(b, 1) : b;
  dc_shape ba = {0}, bb = {0}, bc = {0};
  ba.ndim = a2->ndim - 2;
  bb.ndim = b2->ndim - 2;
  memcpy(ba.d, a2->shape, sizeof(int64_t) * (size_t)ba.ndim);
  memcpy(bb.d, b2->shape, sizeof(int64_t) * (size_t)bb.ndim);
  bc.ndim = ba.ndim > bb.ndim ? ba.ndim : bb.ndim;
  int64_t B = 1;
  for (int d = 0; d < bc.ndim; d++) {
    int da = d - (bc.ndim - ba.ndim), db = d - (bc.ndim - bb.ndim);
    int64_t x = da >= 0 ? ba.d[da] : 1, y = db >= 0 ? bb.d[db] : 1;
    bc.d[d] = x > y ? x : y;
    B *= bc.d[d];
  }
  int64_t M = a2->shape[a2->ndim - 2], K = a2->shape[a2->ndim - 1], N = b2->shape[b2->ndim - 1];
  dc_shape ea = bc, eb = bc;
  ea.d[ea.ndim++] = M;
  ea.d[ea.ndim++] = K;
  eb.d[eb.ndim++] = K;
  eb.d[eb.ndim++] = N;
  dc_tensor *a3 = dc_reshape(dc_contiguous(dc_expand(a2, ea)), DC_SHAPE(B, M, K));
  dc_tensor *b3 = dc_reshape(dc_contiguous(dc_expand(b2, eb)), DC_SHAPE(B, K, N));
  dc_tensor *o = dc_empty(DC_SHAPE(B, M, N), a->dtype);
  cr_assert_eq(dc__cpu_gemm_ref(o, a3, b3, false, false, 1, 0), DC_OK, "%s", dc_last_error());
  return dc_reshape(o, out_shape);
}

typedef struct mm_case {
  dc_shape a, b, out;
} mm_case;

static const mm_case MM_CASES[] = {
    {DC_SHAPE(5), DC_SHAPE(5), DC_SCALAR_SHAPE},
    {DC_SHAPE(3, 5), DC_SHAPE(5), DC_SHAPE(3)},
    {DC_SHAPE(5), DC_SHAPE(5, 4), DC_SHAPE(4)},
    {DC_SHAPE(3, 5), DC_SHAPE(5, 4), DC_SHAPE(3, 4)},
    {DC_SHAPE(2, 3, 5), DC_SHAPE(5), DC_SHAPE(2, 3)},
    {DC_SHAPE(2, 3, 3, 5), DC_SHAPE(5, 4), DC_SHAPE(2, 3, 3, 4)},
    {DC_SHAPE(5), DC_SHAPE(2, 5, 4), DC_SHAPE(2, 4)},
    {DC_SHAPE(3, 5), DC_SHAPE(2, 5, 4), DC_SHAPE(2, 3, 4)},
    {DC_SHAPE(2, 3, 5), DC_SHAPE(2, 5, 4), DC_SHAPE(2, 3, 4)},
    {DC_SHAPE(2, 1, 3, 5), DC_SHAPE(4, 5, 2), DC_SHAPE(2, 4, 3, 2)},
    {DC_SHAPE(1, 3, 5), DC_SHAPE(2, 1, 5, 4), DC_SHAPE(2, 1, 3, 4)},
};
#define N_MM_CASES (int)(sizeof MM_CASES / sizeof MM_CASES[0])

Test(matmul, shapes_and_values_of_every_case) {
  dc_scope_begin();
  dc_manual_seed(6);
  for (int c = 0; c < N_MM_CASES; c++)
    for (int dt = 0; dt < 2; dt++) {
      dc_dtype t = dt ? DC_F64 : DC_F32;
      dc_tensor *a = dc_randn(MM_CASES[c].a, t), *b = dc_randn(MM_CASES[c].b, t);
      dc_tensor *r = dc_matmul(a, b);
      cr_assert_not_null(r, "case %d: %s", c, dc_last_error());
      char s1[64], s2[64];
      cr_assert(dc_shape_equal(dc_shape_of(r), MM_CASES[c].out), "case %d: got %s want %s", c,
                dc_shape_str(dc_shape_of(r), s1, sizeof s1),
                dc_shape_str(MM_CASES[c].out, s2, sizeof s2));
      cr_assert_eq(r->dtype, t);
      cr_assert_lt(max_diff(r, ref_matmul(a, b, MM_CASES[c].out)), dt ? 1e-12 : 1e-5, "case %d", c);
    }
  dc_scope_end();
}

Test(matmul, non_contiguous_operands) {
  dc_scope_begin();
  dc_manual_seed(7);
  dc_tensor *a = dc_transpose(dc_randn(DC_SHAPE(2, 5, 3), DC_F32), 1, 2); /* [2, 3, 5] */
  dc_tensor *b = dc_transpose(dc_randn(DC_SHAPE(4, 5), DC_F32), 0, 1);    /* [5, 4] */
  dc_tensor *r = dc_matmul(a, b);
  cr_assert_not_null(r, "%s", dc_last_error());
  cr_assert_lt(max_diff(r, ref_matmul(a, b, DC_SHAPE(2, 3, 4))), 1e-5);
  dc_tensor *a4 = dc_permute(dc_randn(DC_SHAPE(3, 2, 5, 4), DC_F64), (int[]){1, 0, 2, 3}, 4);
  dc_tensor *b4 = dc_slice(dc_randn(DC_SHAPE(8, 6), DC_F64), 1, 0, 6, 2); /* [8, 3], stride 2 */
  cr_assert_null(dc_matmul(a4, b4));                                      /* 4 != 8 */
  dc_tensor *b5 = dc_slice(dc_randn(DC_SHAPE(4, 6), DC_F64), 1, 0, 6, 2); /* [4, 3] */
  dc_tensor *r5 = dc_matmul(a4, b5);
  cr_assert_not_null(r5, "%s", dc_last_error());
  cr_assert_lt(max_diff(r5, ref_matmul(a4, b5, DC_SHAPE(2, 3, 5, 3))), 1e-12);
  dc_scope_end();
}

Test(matmul, bad_input) {
  dc_scope_begin();
  dc_tensor *a = dc_ones(DC_SHAPE(2, 3), DC_F32), *b = dc_ones(DC_SHAPE(4, 5), DC_F32);
  cr_assert_null(dc_matmul(a, b));
  const char *e = dc_last_error();
  cr_assert(strstr(e, "matmul") && strstr(e, "[2, 3]") && strstr(e, "[4, 5]") &&
                strstr(e, "transpose"),
            "%s", e);
  cr_assert_null(dc_matmul(a, dc_ones(DC_SHAPE(3, 2), DC_F64)));
  cr_assert(strstr(dc_last_error(), "float32") && strstr(dc_last_error(), "float64"), "%s",
            dc_last_error());
  cr_assert_null(dc_matmul(dc_ones(DC_SHAPE(2, 2), DC_I64), dc_ones(DC_SHAPE(2, 2), DC_I64)));
  cr_assert(strstr(dc_last_error(), "float"), "%s", dc_last_error());
  cr_assert_null(dc_matmul(dc_scalar(1, DC_F32), a));
  cr_assert(strstr(dc_last_error(), "at least 1 dim"), "%s", dc_last_error());
  dc_clear_error();
  cr_assert_null(dc_matmul(NULL, a));
  cr_assert_neq(dc_last_status(), DC_OK);
  cr_assert_null(dc_matmul(dc_ones(DC_SHAPE(2, 3, 4), DC_F32), dc_ones(DC_SHAPE(3, 4, 5), DC_F32)));
  cr_assert(strstr(dc_last_error(), "batch"), "%s", dc_last_error());
  /* bmm */
  cr_assert_null(dc_bmm(a, a));
  cr_assert(strstr(dc_last_error(), "3-D"), "%s", dc_last_error());
  cr_assert_null(dc_bmm(dc_ones(DC_SHAPE(2, 3, 4), DC_F32), dc_ones(DC_SHAPE(3, 4, 5), DC_F32)));
  cr_assert(strstr(dc_last_error(), "batch sizes differ"), "%s", dc_last_error());
  cr_assert_null(dc_bmm(dc_ones(DC_SHAPE(2, 3, 4), DC_F32), dc_ones(DC_SHAPE(2, 3, 5), DC_F32)));
  cr_assert(strstr(dc_last_error(), "[2, 3, 4]"), "%s", dc_last_error());
  /* linear */
  dc_tensor *w = dc_ones(DC_SHAPE(6, 4), DC_F32);
  cr_assert_null(dc_linear(a, w, NULL));
  cr_assert(strstr(dc_last_error(), "in_features"), "%s", dc_last_error());
  cr_assert_null(dc_linear(dc_ones(DC_SHAPE(2, 4), DC_F32), w, dc_ones(DC_SHAPE(5), DC_F32)));
  cr_assert(strstr(dc_last_error(), "bias"), "%s", dc_last_error());
  cr_assert_null(dc_linear(dc_ones(DC_SHAPE(2, 4), DC_F32), dc_ones(DC_SHAPE(4), DC_F32), NULL));
  cr_assert_null(dc_linear(dc_ones(DC_SHAPE(2, 4), DC_F64), w, NULL));
  dc_scope_end();
}

Test(linear, values_shapes_and_bias) {
  dc_scope_begin();
  dc_manual_seed(8);
  dc_tensor *x = dc_randn(DC_SHAPE(2, 3, 5), DC_F32), *w = dc_randn(DC_SHAPE(4, 5), DC_F32);
  dc_tensor *b = dc_randn(DC_SHAPE(4), DC_F32);
  dc_tensor *y = dc_linear(x, w, b);
  cr_assert_not_null(y, "%s", dc_last_error());
  cr_assert(dc_shape_equal(dc_shape_of(y), DC_SHAPE(2, 3, 4)));
  dc_tensor *ref = ref_matmul(x, dc_transpose(w, 0, 1), DC_SHAPE(2, 3, 4));
  for (int64_t i = 0; i < 24; i++)
    cr_assert_float_eq(dc_item_at(y, i), dc_item_at(ref, i) + dc_item_at(b, i % 4), 1e-5);
  cr_assert_str_eq(dc_grad_fn_name(dc_linear(dc_requires_grad_(x, true), w, b)), "linear");
  /* a transposed (non-foldable) input and a 1-D input */
  dc_tensor *xt = dc_transpose(dc_randn(DC_SHAPE(3, 2, 5), DC_F32), 0, 1);
  dc_tensor *yt = dc_linear(xt, w, NULL);
  cr_assert_lt(max_diff(yt, ref_matmul(xt, dc_transpose(w, 0, 1), DC_SHAPE(2, 3, 4))), 1e-5);
  dc_tensor *x1 = dc_randn(DC_SHAPE(5), DC_F32);
  dc_tensor *y1 = dc_linear(x1, w, b);
  cr_assert(dc_shape_equal(dc_shape_of(y1), DC_SHAPE(4)));
  /* K = 0: the bias alone */
  dc_tensor *y0 = dc_linear(dc_ones(DC_SHAPE(3, 0), DC_F32), dc_ones(DC_SHAPE(4, 0), DC_F32), b);
  cr_assert_not_null(y0, "%s", dc_last_error());
  cr_assert_float_eq(dc_item_at(y0, 6), dc_item_at(b, 2), 1e-7);
  dc_scope_end();
}

Test(linear, empty_inner_dim_backward) {
  dc_scope_begin();
  /* K = 0: y is the bias alone; the gradients of x and w are empty, the bias's counts rows */
  dc_tensor *x = dc_requires_grad_(dc_ones(DC_SHAPE(3, 0), DC_F64), true);
  dc_tensor *w = dc_requires_grad_(dc_ones(DC_SHAPE(4, 0), DC_F64), true);
  dc_tensor *b = dc_requires_grad_(dc_ones(DC_SHAPE(4), DC_F64), true);
  dc_tensor *y = dc_linear(x, w, b);
  cr_assert_not_null(y, "%s", dc_last_error());
  cr_assert_eq(dc_backward(dc_sum_all(y)), DC_OK, "%s", dc_last_error());
  cr_assert(dc_shape_equal(dc_shape_of(x->grad), DC_SHAPE(3, 0)));
  cr_assert(dc_shape_equal(dc_shape_of(w->grad), DC_SHAPE(4, 0)));
  cr_assert_float_eq(dc_item_at(b->grad, 1), 3.0, 1e-12);
  dc_scope_end();
}

/* ---- float64 gradchecks ---- */

static dc_tensor *mm_fn(dc_tensor *const *in, int n, void *ud) { return dc_matmul(in[0], in[1]); }
static dc_tensor *bmm_fn(dc_tensor *const *in, int n, void *ud) { return dc_bmm(in[0], in[1]); }
static dc_tensor *linear_fn(dc_tensor *const *in, int n, void *ud) {
  return dc_linear(in[0], in[1], n > 2 ? in[2] : NULL);
}
static dc_tensor *mm_t_fn(dc_tensor *const *in, int n, void *ud) { /* transposed operands */
  return dc_matmul(dc_transpose(in[0], -1, -2), dc_transpose(in[1], -1, -2));
}

static dc_tensor *leaf(dc_shape s) { return dc_requires_grad_(dc_randn(s, DC_F64), true); }

Test(gradcheck, matmul_every_case) {
  dc_scope_begin();
  dc_manual_seed(9);
  for (int c = 0; c < N_MM_CASES; c++) {
    dc_tensor *in[2] = {leaf(MM_CASES[c].a), leaf(MM_CASES[c].b)};
    cr_assert(dc_gradcheck(mm_fn, in, 2, NULL), "case %d: %s", c, dc_last_error());
  }
  dc_tensor *t[2] = {leaf(DC_SHAPE(2, 5, 3)), leaf(DC_SHAPE(4, 5))}; /* [2,3,5] . [5,4] */
  cr_assert(dc_gradcheck(mm_t_fn, t, 2, NULL), "%s", dc_last_error());
  dc_tensor *u[2] = {leaf(DC_SHAPE(3, 1, 4, 2)), leaf(DC_SHAPE(2, 3, 4))}; /* broadcast + T */
  cr_assert(dc_gradcheck(mm_t_fn, u, 2, NULL), "%s", dc_last_error());
  dc_scope_end();
}

Test(gradcheck, bmm_and_linear) {
  dc_scope_begin();
  dc_manual_seed(10);
  dc_tensor *b[2] = {leaf(DC_SHAPE(3, 2, 4)), leaf(DC_SHAPE(3, 4, 5))};
  cr_assert(dc_gradcheck(bmm_fn, b, 2, NULL), "%s", dc_last_error());
  dc_tensor *l[3] = {leaf(DC_SHAPE(2, 3, 4)), leaf(DC_SHAPE(5, 4)), leaf(DC_SHAPE(5))};
  cr_assert(dc_gradcheck(linear_fn, l, 3, NULL), "%s", dc_last_error());
  cr_assert(dc_gradcheck(linear_fn, l, 2, NULL), "%s", dc_last_error());
  dc_tensor *l1[3] = {leaf(DC_SHAPE(4)), l[1], l[2]};
  cr_assert(dc_gradcheck(linear_fn, l1, 3, NULL), "%s", dc_last_error());
  dc_tensor *lt[3] = {dc_requires_grad_(dc_contiguous(dc_detach(dc_transpose(l[0], 0, 1))), true),
                      l[1], l[2]};
  cr_assert(dc_gradcheck(linear_fn, lt, 3, NULL), "%s", dc_last_error());
  dc_scope_end();
}

Test(gradcheck, second_order_through_matmul) {
  dc_scope_begin();
  dc_manual_seed(11);
  /* d/dx sum((x W)^2) = 2 x W W^T: differentiate again with create_graph */
  dc_tensor *x = leaf(DC_SHAPE(2, 3)), *w = dc_randn(DC_SHAPE(3, 3), DC_F64);
  dc_tensor *y = dc_sum_all(dc_square(dc_matmul(x, w)));
  cr_assert_eq(dc_backward(y, .create_graph = true), DC_OK, "%s", dc_last_error());
  dc_tensor *gx = x->grad;
  cr_assert_not_null(gx);
  cr_assert_not_null(gx->grad_fn, "first gradient should carry a graph");
  dc_tensor *ref = dc_mul_scalar(dc_matmul(dc_matmul(x, w), dc_transpose(w, 0, 1)), 2.0);
  cr_assert_lt(max_diff(gx, ref), 1e-12);
  dc_zero_grad(x); /* x.grad's graph refers back to x: break the cycle */
  dc_scope_end();
}

/* ---- bfloat16 (the CPU's DC_BF16_GEMM entries) ---- */

/* Every element of o within one bfloat16 rounding step (2^-8 relative, so 2^-7 for two
 * roundings apart) of the reference r. */
static void assert_bf16_close(const dc_tensor *o, const dc_tensor *r, const char *what) {
  for (int64_t i = 0, n = dc_numel(o); i < n; i++) {
    double g = dc_item_at(o, i), w = dc_item_at(r, i);
    cr_assert(fabs(g - w) <= ldexp(fabs(w), -7) + 1e-6, "%s: element %lld: %.9g vs reference %.9g",
              what, (long long)i, g, w);
  }
}

Test(gemm, bfloat16_paths_match_reference) {
  dc_scope_begin();
  dc_manual_seed(8);
  const int64_t sz[] = {7, 63, 129};
  const int paths[] = {DC__GEMM_ONEDNN, DC__GEMM_BLOCKED, DC__GEMM_AUTO};
  for (int is = 0; is < 3; is++)
    for (int t = 0; t < 4; t++) {
      bool ta = t & 1, tb = t & 2;
      int64_t M = sz[is], N = sz[2 - is], K = sz[(is + 1) % 3], B = 2;
      dc_tensor *a =
          dc_to_dtype(dc_randn(ta ? DC_SHAPE(B, K, M) : DC_SHAPE(B, M, K), DC_F32), DC_BF16);
      dc_tensor *b =
          dc_to_dtype(dc_randn(tb ? DC_SHAPE(1, N, K) : DC_SHAPE(1, K, N), DC_F32), DC_BF16);
      for (int p = 0; p < 3; p++) {
        float alpha = p == 2 ? 0.5f : 1.0f, beta = p == 1 ? 1.0f : 0.0f;
        dc_tensor *o1 = dc_to_dtype(dc_randn(DC_SHAPE(B, M, N), DC_F32), DC_BF16);
        dc_tensor *o2 = dc_clone(o1);
        dc__cpu_gemm_force = paths[p];
        int rc = dc__cpu_linalg.gemm_batched(o1, a, b, ta, tb, alpha, beta);
        dc__cpu_gemm_force = DC__GEMM_AUTO;
        cr_assert_eq(rc, DC_OK, "%s", dc_last_error());
        cr_assert_eq(dc__cpu_gemm_ref(o2, a, b, ta, tb, alpha, beta), DC_OK, "%s", dc_last_error());
        cr_assert_eq(o1->dtype, DC_BF16);
        assert_bf16_close(o1, o2, "gemm_batched");
      }
    }
  /* fused bias (linear): x [M, K] . w [N, K]^T + bias [N], all bfloat16 */
  dc_tensor *x = dc_to_dtype(dc_randn(DC_SHAPE(70, 90), DC_F32), DC_BF16);
  dc_tensor *w = dc_to_dtype(dc_randn(DC_SHAPE(50, 90), DC_F32), DC_BF16);
  dc_tensor *bias = dc_to_dtype(dc_randn(DC_SHAPE(50), DC_F32), DC_BF16);
  dc_tensor *o = dc_empty(DC_SHAPE(70, 50), DC_BF16), *r = dc_empty(DC_SHAPE(70, 50), DC_BF16);
  cr_assert_eq(dc__cpu_linalg.linear(o, x, w, bias), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_copy_(r, dc_expand(bias, DC_SHAPE(70, 50))), DC_OK);
  cr_assert_eq(dc__cpu_gemm_ref(r, x, w, false, true, 1.0f, 1.0f), DC_OK);
  /* the reference adds the bias after one rounding: within two steps */
  assert_bf16_close(o, r, "linear");
  /* mixed dtypes are refused, naming them */
  dc_tensor *f = dc_randn(DC_SHAPE(90, 50), DC_F32);
  cr_assert_neq(dc__cpu_linalg.gemm_batched(dc_empty(DC_SHAPE(70, 50), DC_BF16), x, f, false, false,
                                            1.0f, 0.0f),
                DC_OK);
  cr_assert(strstr(dc_last_error(), "bfloat16"), "%s", dc_last_error());
  dc_scope_end();
}
