/* The CUDA optimizer kernels (optim.cu) against the CPU's: every optimizer with its options
 * through dc_optim_step on the same parameters and gradients, several steps, parameters and
 * state bit for bit; the fused step against the reference loop on the device; a step of many
 * slots of both dtypes straight through the table; the clipping norms (bit for bit, except
 * p-norms other than 0, 1, 2 and +-inf, whose pow is CUDA's: TOL_POW) and the scaled or clamped
 * gradients; no cudaMalloc in a steady step. Skips without a GPU. */
#include "gpu.h"

#include "backend/cuda/cuda-impl.h"
#include "optim/optim-impl.h"
#include "../unit/optim_cases.h"

/* p-norms through CUDA's pow (at most 2 ulp from glibc's per element) */
#define TOL_POW 1e-12

#define STEPS 5

TestSuite(gpu_optim, .init = gpu_scope_in, .fini = gpu_scope_out);

/* the same bits, or both NaN (the GPU's NaN has another payload) */
static void expect_bits(const dc_tensor *a, const dc_tensor *b, const char *cfg, const char *what) {
  cr_assert(a && b, "%s: %s missing on one side", cfg, what);
  cr_assert_eq(a->dtype, b->dtype, "%s: %s dtype", cfg, what);
  size_t na, nb;
  char *pa = bytes_of(a, &na), *pb = bytes_of(b, &nb);
  size_t z = dc_dtype_size(a->dtype);
  int64_t bad = 0, n = dc_numel(a);
  for (int64_t i = 0; i < n; i++) {
    double x = dc__load(pa + (size_t)i * z, a->dtype), y = dc__load(pb + (size_t)i * z, b->dtype);
    if (memcmp(pa + (size_t)i * z, pb + (size_t)i * z, z) != 0 && !(isnan(x) && isnan(y)) &&
        bad++ < 3)
      cr_log_error("%s: %s element %lld: cpu %.17g, cuda %.17g", cfg, what, (long long)i, x, y);
  }
  cr_expect_eq(bad, 0, "%s: %s: %lld of %lld elements differ between cpu and cuda", cfg, what,
               (long long)bad, (long long)n);
  free(pa);
  free(pb);
}

/* The cpu against cuda through path, STEPS steps. */
static void check_config(const config *c, dc_dtype dt, dc__optim_path path) {
  check_config_on(c, dt, path, DC_CUDA, STEPS, expect_bits);
}

Test(gpu_optim, cuda_declares_fused_optim) {
  GPU_OR_SKIP();
  cr_expect(dc__backend_supports(DC_CUDA, DC_CAP_FUSED_OPTIM), "cuda lacks DC_CAP_FUSED_OPTIM");
  cr_expect_not_null(gpu_be()->optim);
}

Test(gpu_optim, every_optimizer_fused) {
  GPU_OR_SKIP();
  config c[32];
  int n = configs(c);
  for (int i = 0; i < n; i++) {
    check_config(&c[i], DC_F32, DC__OPTIM_PATH_FUSED);
    check_config(&c[i], DC_F64, DC__OPTIM_PATH_FUSED);
  }
}

Test(gpu_optim, every_optimizer_reference_loop) {
  GPU_OR_SKIP();
  config c[32];
  int n = configs(c);
  for (int i = 0; i < n; i++) {
    check_config(&c[i], DC_F32, DC__OPTIM_PATH_REFERENCE);
    check_config(&c[i], DC_F64, DC__OPTIM_PATH_REFERENCE);
  }
}

/* Straight through the table: 40 slots of both dtypes (empty ones, one over many chunks) in one
 * step call, against the CPU's kernel; and step against step_ref on the device. */
Test(gpu_optim, many_slots_of_both_dtypes_in_one_launch) {
  GPU_OR_SKIP();
  enum { NSL = 40 };
  dc_optk_hparams hp = {.lr = 0.01,
                        .beta1 = 0.9,
                        .beta2 = 0.999,
                        .eps = 1e-8,
                        .weight_decay = 0.1,
                        .amsgrad = true,
                        .decoupled_wd = true};
  dc_tensor *t[3][NSL][5]; /* side (cpu, cuda fused, cuda reference) x slot x {p, g, m, v, vmax} */
  dc_optk_slot sl[3][NSL];
  for (int k = 0; k < NSL; k++) {
    int64_t n = k % 7 == 3 ? 0 : k == 17 ? 100003 : 1 + 37 * k;
    dc_dtype dt = k % 3 == 1 ? DC_F64 : DC_F32;
    dc_tensor *base[5];
    for (int j = 0; j < 5; j++) {
      base[j] = inputs(DC_SHAPE(n), dt, 1000 + (uint64_t)(5 * k + j), false);
      if (j >= 2) cr_assert_eq(cpu_be()->ew->unary(DC_UN_ABS, base[j], base[j], NULL), DC_OK);
    }
    for (int s = 0; s < 3; s++) {
      for (int j = 0; j < 5; j++) t[s][k][j] = s == 0 ? dc_clone(base[j]) : to_gpu(base[j]);
      sl[s][k] = (dc_optk_slot){
          .hp = &hp,
          .dtype = dt,
          .n = n,
          .param = dc__cuda_ptr(t[s][k][0]),
          .grad = dc__cuda_ptr(t[s][k][1]),
          .buf = {dc__cuda_ptr(t[s][k][2]), dc__cuda_ptr(t[s][k][3]), dc__cuda_ptr(t[s][k][4])},
          .step_size = 0.01 / (1 - pow(0.9, 3)),
          .bias2_sqrt = sqrt(1 - pow(0.999, 3))};
    }
  }
  cr_assert_eq(cpu_be()->optim->step(DC_OPTK_ADAM, sl[0], NSL), DC_OK);
  cr_assert_eq(gpu_be()->optim->step(DC_OPTK_ADAM, sl[1], NSL), DC_OK, "%s", dc_last_error());
  cr_assert_eq(gpu_be()->optim->step_ref(DC_OPTK_ADAM, sl[2], NSL), DC_OK, "%s", dc_last_error());
  for (int k = 0; k < NSL; k++)
    for (int j = 0; j < 5; j++) {
      char what[48];
      snprintf(what, sizeof what, "slot %d tensor %d", k, j);
      expect_bits(t[0][k][j], t[1][k][j], "fused step", what);
      expect_bits(t[0][k][j], t[2][k][j], "step_ref", what);
    }
}

/* ---- clipping ---- */

static void check_clip_norm(double max_norm, double p, dc_dtype dt) {
  char cfg[96];
  snprintf(cfg, sizeof cfg, "clip_grad_norm_(max %g, p %g) %s", max_norm, p, dc_dtype_name(dt));
  dc_tensor *pa[NP], *pb[NP];
  make_params(pa, dt, DC_CPU);
  make_params(pb, dt, DC_CUDA);
  set_grads(pa, 1, 3.0);
  set_grads(pb, 1, 3.0);
  double na = -1, nb = -2;
  cr_assert_eq(dc_clip_grad_norm_(pa, NP, max_norm, p, false, &na), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_clip_grad_norm_(pb, NP, max_norm, p, false, &nb), DC_OK, "%s: %s", cfg,
               dc_last_error());
  bool exact = p == 0 || p == 1 || p == 2 || isinf(p);
  if (exact) {
    cr_expect(memcmp(&na, &nb, sizeof na) == 0, "%s: total norm cpu %.17g, cuda %.17g", cfg, na,
              nb);
    for (int k = 0; k < NP; k++) expect_bits(pa[k]->grad, pb[k]->grad, cfg, "clipped grad");
  } else {
    cr_expect(fabs(na - nb) <= TOL_POW * fabs(na), "%s: total norm cpu %.17g, cuda %.17g", cfg, na,
              nb);
    for (int k = 0; k < NP; k++) {
      if (dt == DC_F32) /* the coefficient rounded to float may land one ulp away */
        expect_close(pa[k]->grad, pb[k]->grad, TOL_F32, cfg);
      else
        expect_close(pa[k]->grad, pb[k]->grad, TOL_F64, cfg);
    }
  }
  free_params(pa);
  free_params(pb);
}

Test(gpu_optim, clip_grad_norm_matches_cpu) {
  GPU_OR_SKIP();
  static const double PS[] = {2, 1, INFINITY, -INFINITY, 0, 3, 0.5};
  for (size_t q = 0; q < sizeof PS / sizeof PS[0]; q++) {
    check_clip_norm(1.0, PS[q], DC_F32);
    check_clip_norm(1.0, PS[q], DC_F64);
    check_clip_norm(1e9, PS[q], DC_F32); /* no scaling */
  }
}

/* The kernel entries straight: norms of buffers with NaN, inf and zeros; scale; clamp. */
Test(gpu_optim, norms_scale_clamp_entries) {
  GPU_OR_SKIP();
  enum { NB = 4 };
  int64_t sizes[NB] = {9, 16384, 0, 2 * 16384 + 11};
  static const double PS[] = {2, 1, INFINITY, -INFINITY, 0, 3};
  for (int d = 0; d < 2; d++) {
    dc_dtype dt = d ? DC_F64 : DC_F32;
    dc_tensor *c[NB], *g[NB];
    dc_optk_buf bc[NB], bg[NB];
    for (int k = 0; k < NB; k++) {
      c[k] = inputs(DC_SHAPE(sizes[k]), dt, 50 + (uint64_t)k, k == 0);
      g[k] = to_gpu(c[k]);
      bc[k] = (dc_optk_buf){dc__cuda_ptr(c[k]), sizes[k], dt};
      bg[k] = (dc_optk_buf){dc__cuda_ptr(g[k]), sizes[k], dt};
    }
    for (size_t q = 0; q < sizeof PS / sizeof PS[0]; q++) {
      double a[NB], b[NB];
      cr_assert_eq(cpu_be()->optim->norms(bc, NB, PS[q], a), DC_OK);
      cr_assert_eq(gpu_be()->optim->norms(bg, NB, PS[q], b), DC_OK, "%s", dc_last_error());
      for (int k = 0; k < NB; k++) {
        bool ok = memcmp(&a[k], &b[k], sizeof a[k]) == 0 || (isnan(a[k]) && isnan(b[k])) ||
                  (PS[q] == 3 && fabs(a[k] - b[k]) <= TOL_POW * fabs(a[k]));
        cr_expect(ok, "%s p=%g buffer %d: cpu %.17g, cuda %.17g", dc_dtype_name(dt), PS[q], k, a[k],
                  b[k]);
      }
    }
    cr_assert_eq(cpu_be()->optim->scale(bc, NB, 0.37), DC_OK);
    cr_assert_eq(gpu_be()->optim->scale(bg, NB, 0.37), DC_OK, "%s", dc_last_error());
    cr_assert_eq(cpu_be()->optim->clamp(bc, NB, -0.5, 0.75), DC_OK);
    cr_assert_eq(gpu_be()->optim->clamp(bg, NB, -0.5, 0.75), DC_OK, "%s", dc_last_error());
    for (int k = 0; k < NB; k++) expect_bits(c[k], g[k], "scale then clamp", "buffer");
  }
}

Test(gpu_optim, clip_grad_value_matches_cpu) {
  GPU_OR_SKIP();
  dc_tensor *pa[NP], *pb[NP];
  make_params(pa, DC_F32, DC_CPU);
  make_params(pb, DC_F32, DC_CUDA);
  set_grads(pa, 1, 3.0);
  set_grads(pb, 1, 3.0);
  cr_assert_eq(dc_clip_grad_value_(pa, NP, 0.4), DC_OK);
  cr_assert_eq(dc_clip_grad_value_(pb, NP, 0.4), DC_OK, "%s", dc_last_error());
  for (int k = 0; k < NP; k++) expect_bits(pa[k]->grad, pb[k]->grad, "clip_grad_value_", "grad");
  free_params(pa);
  free_params(pb);
}

/* A steady step copies its slot table through the caching allocator: no cudaMalloc. */
Test(gpu_optim, a_steady_step_calls_no_cudamalloc) {
  GPU_OR_SKIP();
  dc_tensor *ps[NP];
  make_params(ps, DC_F32, DC_CUDA);
  dc_optim_hparams h = dc_optim_defaults(DC_OPTIM_ADAM);
  dc_optim *o = make_optim(DC_OPTIM_ADAM, h, ps);
  dc__cuda_mem_stats s0, s1;
  for (int s = 0; s < 8; s++) {
    if (s == 3) dc__cuda_mem_stats_get(&s0);
    set_grads(ps, s == 2 ? 3 : s, 1.0); /* every parameter has a gradient */
    cr_assert_eq(dc_optim_step(o), DC_OK, "%s", dc_last_error());
  }
  cr_assert_eq(dc_synchronize(DC_CUDA), DC_OK, "%s", dc_last_error());
  dc__cuda_mem_stats_get(&s1);
  cr_expect_eq(s1.device_mallocs, s0.device_mallocs, "%lld cudaMalloc calls in 5 steady steps",
               (long long)(s1.device_mallocs - s0.device_mallocs));
  dc_optim_free(o);
  free_params(ps);
}
