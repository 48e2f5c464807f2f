/* The arithmetic of the CUDA optimizer kernels checked on the host, where no GPU is needed: the
 * per-element functions of src/backend/cuda/optim-rules.cuh, driven the way optim.cu's launches
 * drive them (every chunk of every slot through the owner search; the norms' nine lanes per
 * chunk, combined in the kernel's order), against the CPU backend's fused kernels on the same
 * inputs, bit for bit (NaN with NaN), for every rule and option, several steps, float32 and
 * float64. What this leaves to tests/gpu/test_gpu_optim.c: the launches and nvcc's code. */
#pragma GCC optimize("fp-contract=off") /* as optim.cu's -fmad=false and the CPU's kernels */

#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/optim-rules.cuh"

#define NS 5
#define STEPS 6
/* slot sizes: short ones, one over two launch chunks, one empty */
static const int64_t SIZES[NS] = {7, 15, 0, 2 * DC__CU_OPTK_CHUNK + 33, 12};

static const struct dc_optim_kernels *cpu_optim(void) {
  const dc_backend *be = dc__backend(DC_CPU);
  cr_assert(be && be->optim, "%s", dc_last_error());
  return be->optim;
}

static size_t esize(dc_dtype dt) { return dt == DC_F32 ? sizeof(float) : sizeof(double); }

static double get(const void *x, dc_dtype dt, int64_t i) {
  return dt == DC_F32 ? (double)((const float *)x)[i] : ((const double *)x)[i];
}

static void set(void *x, dc_dtype dt, int64_t i, double v) {
  if (dt == DC_F32)
    ((float *)x)[i] = (float)v;
  else
    ((double *)x)[i] = v;
}

/* a and b hold the same bits, or both a NaN at every element */
static void expect_same(const void *a, const void *b, dc_dtype dt, int64_t n, const char *what) {
  int64_t bad = 0;
  size_t z = esize(dt);
  for (int64_t i = 0; i < n; i++) {
    double x = get(a, dt, i), y = get(b, dt, i);
    bool ok = memcmp((const char *)a + (size_t)i * z, (const char *)b + (size_t)i * z, z) == 0 ||
              (isnan(x) && isnan(y));
    if (!ok && bad++ < 3)
      cr_log_error("%s: element %lld: cpu %.17g, rules %.17g", what, (long long)i, x, y);
  }
  cr_expect_eq(bad, 0, "%s (%s): %lld of %lld elements differ", what, dc_dtype_name(dt),
               (long long)bad, (long long)n);
}

/* ---- the step ---- */

typedef struct config {
  const char *name;
  dc_optk_rule rule;
  dc_optk_hparams hp;
  double lr_decay;      /* Adagrad */
  bool bias_correction; /* Adam */
} config;

static int configs(config *c) {
  int n = 0;
  dc_optk_hparams h;
#define ADD(nm, r, ...)                                                                            \
  do {                                                                                             \
    h = (dc_optk_hparams){.lr = 0.05, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .alpha = 0.99};   \
    config cf = {nm, r, h, 0, true};                                                               \
    __VA_ARGS__;                                                                                   \
    c[n++] = cf;                                                                                   \
  } while (0)
  ADD("SGD", DC_OPTK_SGD, );
  ADD("SGD momentum", DC_OPTK_SGD, cf.hp.momentum = 0.9);
  ADD("SGD momentum dampening wd", DC_OPTK_SGD, cf.hp.momentum = 0.8, cf.hp.dampening = 0.1,
      cf.hp.weight_decay = 1e-2);
  ADD("SGD nesterov wd maximize", DC_OPTK_SGD, cf.hp.momentum = 0.9, cf.hp.nesterov = true,
      cf.hp.weight_decay = 1e-3, cf.hp.maximize = true);
  ADD("Adam", DC_OPTK_ADAM, cf.hp.lr = 1e-2);
  ADD("Adam amsgrad wd maximize", DC_OPTK_ADAM, cf.hp.amsgrad = true, cf.hp.weight_decay = 1e-2,
      cf.hp.maximize = true);
  ADD("Adam no bias correction", DC_OPTK_ADAM, cf.bias_correction = false);
  ADD("AdamW", DC_OPTK_ADAM, cf.hp.decoupled_wd = true, cf.hp.weight_decay = 1e-2);
  ADD("AdamW amsgrad", DC_OPTK_ADAM, cf.hp.decoupled_wd = true, cf.hp.weight_decay = 0.1,
      cf.hp.amsgrad = true);
  ADD("RMSprop", DC_OPTK_RMSPROP, cf.hp.lr = 1e-2);
  ADD("RMSprop momentum centered wd", DC_OPTK_RMSPROP, cf.hp.momentum = 0.9, cf.hp.centered = true,
      cf.hp.weight_decay = 1e-2);
  ADD("RMSprop momentum maximize", DC_OPTK_RMSPROP, cf.hp.momentum = 0.5, cf.hp.alpha = 0.9,
      cf.hp.maximize = true);
  ADD("Adagrad", DC_OPTK_ADAGRAD, cf.hp.lr = 0.1);
  ADD("Adagrad lr_decay wd maximize", DC_OPTK_ADAGRAD, cf.hp.lr = 0.1, cf.lr_decay = 1e-2,
      cf.hp.weight_decay = 1e-2, cf.hp.maximize = true);
#undef ADD
  return n;
}

/* The arrays of one side: NS slots of param, grad and three buffers. */
typedef struct side {
  void *p[NS], *g[NS], *b[NS][3];
} side;

static void side_alloc(side *s, dc_dtype dt, bool adagrad) {
  for (int k = 0; k < NS; k++) {
    size_t bytes = esize(dt) * (size_t)(SIZES[k] + 1);
    s->p[k] = malloc(bytes);
    s->g[k] = malloc(bytes);
    for (int j = 0; j < 3; j++) s->b[k][j] = calloc(1, bytes);
    cr_assert(s->p[k] && s->g[k] && s->b[k][0] && s->b[k][1] && s->b[k][2]);
    for (int64_t i = 0; i < SIZES[k]; i++) {
      set(s->p[k], dt, i, sin(0.7 * (double)i + k) * 2);
      if (adagrad) set(s->b[k][0], dt, i, 0.1); /* initial_accumulator_value */
    }
  }
}

static void side_free(side *s) {
  for (int k = 0; k < NS; k++) {
    free(s->p[k]);
    free(s->g[k]);
    for (int j = 0; j < 3; j++) free(s->b[k][j]);
  }
}

/* A gradient of (step, slot, element) with a zero, a huge and a tiny value in it. */
static void set_grads(side *s, dc_dtype dt, int step) {
  for (int k = 0; k < NS; k++)
    for (int64_t i = 0; i < SIZES[k]; i++) {
      double v = sin(0.37 * (double)i + 1.3 * step + k) * (1 + (step + (int)i) % 4);
      if (i == 3) v = 0;
      if (i == 4) v = 1e30;
      if (i == 5) v = -1e-30;
      set(s->g[k], dt, i, v);
    }
}

/* The slots of side s at step t (1-based), as src/optim/step.c makes them. */
static void make_slots(dc_optk_slot *sl, side *s, const config *c, dc_dtype dt, int t) {
  for (int k = 0; k < NS; k++) {
    sl[k] = (dc_optk_slot){.hp = &c->hp,
                           .dtype = dt,
                           .n = SIZES[k],
                           .param = s->p[k],
                           .grad = s->g[k],
                           .bias2_sqrt = 1.0,
                           .init_buf = t == 1};
    bool need[3] = {c->rule != DC_OPTK_SGD || c->hp.momentum != 0, c->rule == DC_OPTK_ADAM,
                    c->rule == DC_OPTK_ADAM && c->hp.amsgrad};
    if (c->rule == DC_OPTK_RMSPROP) {
      need[1] = c->hp.momentum > 0;
      need[2] = c->hp.centered;
    }
    for (int j = 0; j < 3; j++) sl[k].buf[j] = need[j] ? s->b[k][j] : NULL;
    if (c->rule == DC_OPTK_ADAM) {
      sl[k].step_size = c->hp.lr;
      if (c->bias_correction) {
        sl[k].step_size = c->hp.lr / (1 - pow(c->hp.beta1, t));
        sl[k].bias2_sqrt = sqrt(1 - pow(c->hp.beta2, t));
      }
    } else if (c->rule == DC_OPTK_ADAGRAD) {
      sl[k].step_size = c->hp.lr / (1 + (t - 1) * c->lr_decay);
    }
  }
}

/* optim.cu's step on the host: the device table, then every block (chunk) of the grid in turn,
 * each finding its slot by the owner search and running its threads' elements. */
static void rules_step(dc_optk_rule rule, const dc_optk_slot *slots, int nslots) {
  dc__cu_optk_slot table[NS];
  int64_t nchunks = 0;
  for (int k = 0; k < nslots; k++) {
    table[k] = dc__cu_optk_slot_of(&slots[k], nchunks);
    nchunks += dc__cu_optk_chunks(slots[k].n, DC__CU_OPTK_CHUNK);
  }
  for (int64_t c = 0; c < nchunks; c++) {
    int k = dc__cu_optk_owner((const char *)table, sizeof table[0],
                              offsetof(dc__cu_optk_slot, first), nslots, c);
    const dc__cu_optk_slot *s = &table[k];
    int64_t off = (c - s->first) * DC__CU_OPTK_CHUNK;
    int64_t end = s->n - off < DC__CU_OPTK_CHUNK ? s->n : off + DC__CU_OPTK_CHUNK;
    cr_assert(off >= 0 && off < s->n, "chunk %lld given to slot %d of %lld elements", (long long)c,
              k, (long long)s->n);
    for (int64_t i = off; i < end; i++) {
      if (s->dtype == DC_F32)
        dc__cu_optk_update_f32(rule, s, i);
      else
        dc__cu_optk_update_f64(rule, s, i);
    }
  }
}

static void check_config(const config *c, dc_dtype dt) {
  side a, b;
  side_alloc(&a, dt, c->rule == DC_OPTK_ADAGRAD);
  side_alloc(&b, dt, c->rule == DC_OPTK_ADAGRAD);
  for (int t = 1; t <= STEPS; t++) {
    set_grads(&a, dt, t);
    set_grads(&b, dt, t);
    dc_optk_slot sa[NS], sb[NS];
    make_slots(sa, &a, c, dt, t);
    make_slots(sb, &b, c, dt, t);
    cr_assert_eq(cpu_optim()->step(c->rule, sa, NS), DC_OK, "%s", dc_last_error());
    rules_step(c->rule, sb, NS);
  }
  for (int k = 0; k < NS; k++) {
    char what[160];
    snprintf(what, sizeof what, "%s, %d steps: slot %d param", c->name, STEPS, k);
    expect_same(a.p[k], b.p[k], dt, SIZES[k], what);
    for (int j = 0; j < 3; j++) {
      snprintf(what, sizeof what, "%s, %d steps: slot %d buf[%d]", c->name, STEPS, k, j);
      expect_same(a.b[k][j], b.b[k][j], dt, SIZES[k], what);
    }
  }
  side_free(&a);
  side_free(&b);
}

Test(cuda_optim_rules, every_rule_has_the_cpu_bits) {
  config c[32];
  int n = configs(c);
  for (int i = 0; i < n; i++) {
    check_config(&c[i], DC_F32);
    check_config(&c[i], DC_F64);
  }
}

/* The updates moved the parameters (the comparison above is not of two untouched copies). */
Test(cuda_optim_rules, a_step_changes_the_parameters) {
  config c[32];
  int n = configs(c);
  for (int i = 0; i < n; i++) {
    side s;
    side_alloc(&s, DC_F32, c[i].rule == DC_OPTK_ADAGRAD);
    float before = ((float *)s.p[3])[100];
    set_grads(&s, DC_F32, 1);
    dc_optk_slot sl[NS];
    make_slots(sl, &s, &c[i], DC_F32, 1);
    rules_step(c[i].rule, sl, NS);
    cr_expect_neq(((float *)s.p[3])[100], before, "%s left the parameter at %g", c[i].name,
                  (double)before);
    side_free(&s);
  }
}

/* ---- the clipping passes ---- */

#define NB 5
static const int64_t BSIZES[NB] = {7, DC__CU_NORM_CHUNK, 0, 2 * DC__CU_NORM_CHUNK + 13, 5};

static void make_bufs(dc_optk_buf *bf, dc_dtype dt, bool special) {
  static const double SPECIAL[] = {0.0, -0.0, 1e30, -1e-30, -3.5};
  for (int k = 0; k < NB; k++) {
    bf[k] = (dc_optk_buf){malloc(esize(dt) * (size_t)(BSIZES[k] + 1)), BSIZES[k], dt};
    cr_assert(bf[k].data);
    for (int64_t i = 0; i < BSIZES[k]; i++)
      set(bf[k].data, dt, i, i < 5 && special ? SPECIAL[i] : 3 * cos(1.1 * (double)i + k));
  }
}

static void free_bufs(dc_optk_buf *bf) {
  for (int k = 0; k < NB; k++) free(bf[k].data);
}

/* optim.cu's norms on the host: each chunk's nine lanes, combined as its lane 0 does, then each
 * buffer's partials in chunk order, as its host code does. */
static void rules_norms(const dc_optk_buf *bf, int n, double p, double *norms) {
  dc__cu_norm_kind kind = dc__cu_norm_kind_of(p);
  for (int k = 0; k < n; k++) {
    double acc = dc__cu_norm_init(kind);
    for (int64_t off = 0; off < bf[k].n; off += DC__CU_NORM_CHUNK) {
      int64_t len = bf[k].n - off < DC__CU_NORM_CHUNK ? bf[k].n - off : DC__CU_NORM_CHUNK;
      double lanes[DC__CU_NORM_LANES];
      for (int j = 0; j < DC__CU_NORM_LANES; j++)
        lanes[j] = bf[k].dtype == DC_F32
                       ? dc__cu_norm_lane_f32((const float *)bf[k].data + off, len, j, kind, p)
                       : dc__cu_norm_lane_f64((const double *)bf[k].data + off, len, j, kind, p);
      acc = dc__cu_norm_combine(acc, dc__cu_norm_lanes_combine(lanes, kind), kind);
    }
    norms[k] = dc__cu_norm_finish(acc, kind, p);
  }
}

Test(cuda_optim_rules, norms_have_the_cpu_bits) {
  static const double PS[] = {2, 1, INFINITY, -INFINITY, 0, 3, 0.5};
  for (int d = 0; d < 2; d++)
    for (int sp = 0; sp < 2; sp++) {
      dc_dtype dt = d ? DC_F64 : DC_F32;
      dc_optk_buf bf[NB];
      make_bufs(bf, dt, sp);
      for (size_t q = 0; q < sizeof PS / sizeof PS[0]; q++) {
        double a[NB], b[NB];
        cr_assert_eq(cpu_optim()->norms(bf, NB, PS[q], a), DC_OK, "%s", dc_last_error());
        rules_norms(bf, NB, PS[q], b);
        for (int k = 0; k < NB; k++)
          cr_expect(memcmp(&a[k], &b[k], sizeof a[k]) == 0 || (isnan(a[k]) && isnan(b[k])),
                    "%s p=%g buffer %d (%lld elements%s): cpu %.17g, rules %.17g",
                    dc_dtype_name(dt), PS[q], k, (long long)BSIZES[k], sp ? ", special" : "", a[k],
                    b[k]);
      }
      free_bufs(bf);
    }
}

Test(cuda_optim_rules, a_nan_wins_the_norm) {
  dc_optk_buf bf[NB];
  make_bufs(bf, DC_F32, true);
  ((float *)bf[3].data)[DC__CU_NORM_CHUNK + 3] = NAN;
  static const double PS[] = {2, INFINITY, -INFINITY, 3};
  for (size_t q = 0; q < sizeof PS / sizeof PS[0]; q++) {
    double a[NB], b[NB];
    cr_assert_eq(cpu_optim()->norms(bf, NB, PS[q], a), DC_OK);
    rules_norms(bf, NB, PS[q], b);
    cr_expect(isnan(a[3]) && isnan(b[3]), "p=%g: cpu %g, rules %g", PS[q], a[3], b[3]);
    cr_expect_eq(a[0], b[0], "p=%g: the other buffers keep their norms", PS[q]);
  }
  free_bufs(bf);
}

Test(cuda_optim_rules, scale_and_clamp_have_the_cpu_bits) {
  for (int d = 0; d < 2; d++) {
    dc_dtype dt = d ? DC_F64 : DC_F32;
    dc_optk_buf a[NB], b[NB];
    make_bufs(a, dt, true);
    make_bufs(b, dt, true);
    set(a[0].data, dt, 6, NAN);
    set(b[0].data, dt, 6, NAN);
    cr_assert_eq(cpu_optim()->scale(a, NB, 0.3), DC_OK);
    cr_assert_eq(cpu_optim()->clamp(a, NB, -0.7, 0.9), DC_OK);
    for (int k = 0; k < NB; k++)
      for (int64_t i = 0; i < BSIZES[k]; i++) {
        if (dt == DC_F32) {
          dc__cu_optk_scale_f32(b[k].data, i, 0.3);
          dc__cu_optk_clamp_f32(b[k].data, i, -0.7, 0.9);
        } else {
          dc__cu_optk_scale_f64(b[k].data, i, 0.3);
          dc__cu_optk_clamp_f64(b[k].data, i, -0.7, 0.9);
        }
      }
    for (int k = 0; k < NB; k++) expect_same(a[k].data, b[k].data, dt, BSIZES[k], "scale, clamp");
    cr_expect(isnan(get(b[0].data, dt, 6)), "clamp keeps NaN");
    free_bufs(a);
    free_bufs(b);
  }
}
