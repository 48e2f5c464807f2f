/* The global generator state (seed, counter) and the random tensor constructors on any device.
 * Each draw of n values consumes a fixed block of counters, so results never depend on thread
 * count or device: every backend's Philox kernels read the same stream. */
#include "../backend/backend.h"

#include <deepc/ops.h>

#include <math.h>

static uint64_t g_seed = 0x2545F4914F6CDD1Dull, g_counter;

void dc_manual_seed(uint64_t seed) {
  g_seed = seed;
  g_counter = 0;
}

uint64_t dc_rng_get_state(uint64_t *counter) {
  if (counter) *counter = g_counter;
  return g_seed;
}

void dc_rng_set_state(uint64_t seed, uint64_t counter) {
  g_seed = seed;
  g_counter = counter;
}

/* Reserves counters for n values (one Philox block per value). */
static uint64_t take(int64_t n) {
  uint64_t c = g_counter;
  g_counter += (uint64_t)(n > 0 ? n : 0);
  return c;
}

uint64_t dc__rng_take(int64_t n, uint64_t *seed) {
  if (seed) *seed = g_seed;
  return take(n);
}

static bool check_float(const char *op, dc_dtype dt) {
  if (dc_dtype_is_float(dt)) return true;
  dc__err(DC_ERR_ARG, "%s: dtype must be floating point, got %s", op, dc_dtype_name(dt));
  return false;
}

int dc_uniform_(dc_tensor *t, double a, double b) {
  if (!t) return dc__errs(DC_ERR_ARG, "uniform_: tensor is NULL");
  if (!check_float("uniform_", t->dtype)) return DC_ERR_ARG;
  if (!(a <= b)) return dc__errs(DC_ERR_ARG, "uniform_: expected a <= b, got a=%g b=%g", a, b);
  const dc_backend *be = dc__backend(t->device);
  return be ? be->rand->uniform(t, g_seed, take(dc_numel(t)), a, b) : (int)dc_last_status();
}

int dc_normal_(dc_tensor *t, double mean, double std) {
  if (!t) return dc__errs(DC_ERR_ARG, "normal_: tensor is NULL");
  if (!check_float("normal_", t->dtype)) return DC_ERR_ARG;
  if (!(std >= 0)) return dc__errs(DC_ERR_ARG, "normal_: std must be >= 0, got %g", std);
  const dc_backend *be = dc__backend(t->device);
  return be ? be->rand->normal(t, g_seed, take(dc_numel(t)), mean, std) : (int)dc_last_status();
}

dc_tensor *dc_rand_on(dc_shape s, dc_dtype dt, dc_device dev) {
  if (!check_float("rand", dt)) return NULL;
  dc_tensor *t = dc__new(s, dt, dev);
  if (t && dc_uniform_(t, 0.0, 1.0) != DC_OK) {
    dc_free(t);
    return NULL;
  }
  return t;
}

dc_tensor *dc_randn_on(dc_shape s, dc_dtype dt, dc_device dev) {
  if (!check_float("randn", dt)) return NULL;
  dc_tensor *t = dc__new(s, dt, dev);
  if (t && dc_normal_(t, 0.0, 1.0) != DC_OK) {
    dc_free(t);
    return NULL;
  }
  return t;
}

dc_tensor *dc_rand(dc_shape s, dc_dtype dt) { return dc_rand_on(s, dt, DC_CPU); }
dc_tensor *dc_randn(dc_shape s, dc_dtype dt) { return dc_randn_on(s, dt, DC_CPU); }
dc_tensor *dc_rand_like(const dc_tensor *t) {
  return t ? dc_rand_on(dc_shape_of(t), t->dtype, t->device)
           : dc__err(DC_ERR_ARG, "rand_like: NULL");
}
dc_tensor *dc_randn_like(const dc_tensor *t) {
  return t ? dc_randn_on(dc_shape_of(t), t->dtype, t->device)
           : dc__err(DC_ERR_ARG, "randn_like: NULL");
}

dc_tensor *dc_randint(int64_t low, int64_t high, dc_shape s, dc_dtype dt) {
  if (high <= low)
    return dc__err(DC_ERR_ARG, "randint: expected low < high, got low=%lld high=%lld",
                   (long long)low, (long long)high);
  dc_tensor *u = dc__new(s, DC_F64, DC_CPU);
  if (!u) return NULL;
  dc_tensor *t = NULL;
  if (dc_uniform_(u, 0.0, 1.0) == DC_OK && (t = dc__new(s, dt, DC_CPU))) {
    const double *pu = (const double *)u->storage->data;
    char *pt = t->storage->data;
    size_t z = dc_dtype_size(dt);
    double span = (double)(high - low);
    for (int64_t i = 0, n = dc_numel(t); i < n; i++) {
      int64_t v = low + (int64_t)floor(pu[i] * span);
      if (v >= high) v = high - 1;
      dc__store(pt + (size_t)i * z, dt, (double)v);
    }
  }
  dc_free(u);
  return t;
}

static dc_tensor *bernoulli_host(const dc_tensor *p);

dc_tensor *dc_bernoulli(const dc_tensor *p) {
  if (!p) return dc__err(DC_ERR_ARG, "bernoulli: p is NULL");
  if (!check_float("bernoulli", p->dtype)) return NULL;
  if (p->device == DC_CPU) return bernoulli_host(p);
  /* u < p compared in double on p's device, as the host path does */
  dc_tensor *u = dc__new(dc_shape_of(p), DC_F64, p->device);
  if (!u) return NULL;
  dc_tensor *lt = NULL, *t = NULL;
  if (dc_uniform_(u, 0.0, 1.0) == DC_OK && (lt = dc_lt(u, (dc_tensor *)p)))
    t = dc_to_dtype(lt, p->dtype);
  dc_free(lt);
  dc_free(u);
  return t;
}

dc_tensor *dc_randint_on(int64_t low, int64_t high, dc_shape s, dc_dtype dt, dc_device dev) {
  return dc__backend(dev) ? dc__host_to(dc_randint(low, high, s, dt), dev) : NULL;
}
dc_tensor *dc_randperm_on(int64_t n, dc_device dev) {
  return dc__backend(dev) ? dc__host_to(dc_randperm(n), dev) : NULL;
}

static dc_tensor *bernoulli_host(const dc_tensor *p) {
  dc_tensor *u = dc__new(dc_shape_of(p), DC_F64, DC_CPU);
  if (!u) return NULL;
  dc_tensor *t = NULL;
  if (dc_uniform_(u, 0.0, 1.0) == DC_OK && (t = dc__new(dc_shape_of(p), p->dtype, DC_CPU))) {
    const double *pu = (const double *)u->storage->data;
    char *pt = t->storage->data;
    size_t z = dc_dtype_size(p->dtype);
    for (int64_t i = 0, n = dc_numel(t); i < n; i++)
      dc__store(pt + (size_t)i * z, p->dtype, pu[i] < dc_item_at(p, i) ? 1.0 : 0.0);
  }
  dc_free(u);
  return t;
}

dc_tensor *dc_randperm(int64_t n) {
  if (n < 0) return dc__err(DC_ERR_ARG, "randperm: n must be >= 0, got %lld", (long long)n);
  dc_tensor *u = dc__new(DC_SHAPE(n), DC_F64, DC_CPU);
  dc_tensor *t = u ? dc__new(DC_SHAPE(n), DC_I64, DC_CPU) : NULL;
  if (!t || dc_uniform_(u, 0.0, 1.0) != DC_OK) {
    dc_free(u);
    dc_free(t);
    return NULL;
  }
  /* Fisher-Yates driven by the pre-drawn uniforms: deterministic for a seed. */
  int64_t *pt = t->storage->data;
  const double *pu = u->storage->data;
  for (int64_t i = 0; i < n; i++) pt[i] = i;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)(pu[i] * (double)(i + 1));
    if (j > i) j = i;
    int64_t tmp = pt[i];
    pt[i] = pt[j];
    pt[j] = tmp;
  }
  dc_free(u);
  return t;
}
