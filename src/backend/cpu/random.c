/* CPU random kernels: element i of a draw uses Philox block (counter + i), so the values are the
 * same for any thread count and on every backend. Normals use Box-Muller on one block. */
#include "../../core/philox.h"
#include "cpu-impl.h"

#define TWO_PI 6.283185307179586

static double uniform_at(uint64_t seed, uint64_t c, int64_t i) {
  dc__u32x4 r = dc__philox(seed, 0, c + (uint64_t)i);
  return dc__u01d(r.v[0], r.v[1]);
}

static double normal_at(uint64_t seed, uint64_t c, int64_t i) {
  dc__u32x4 r = dc__philox(seed, 1, c + (uint64_t)i);
  double u1 = 1.0 - dc__u01d(r.v[0], r.v[1]); /* (0, 1] */
  double u2 = dc__u01d(r.v[2], r.v[3]);
  return sqrt(-2.0 * log(u1)) * cos(TWO_PI * u2);
}

static int fill_random(dc_tensor *t, uint64_t seed, uint64_t c, double a, double b, bool normal) {
  int64_t n = dc_numel(t);
  bool contig = dc_is_contiguous(t);
  size_t z = dc_dtype_size(t->dtype);
#pragma omp parallel for schedule(static) if (n >= DC__PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    double v = normal ? a + b * normal_at(seed, c, i) : a + (b - a) * uniform_at(seed, c, i);
    if (contig) {
      char *p = (char *)t->storage->data + (size_t)(t->offset + i) * z;
      if (t->dtype == DC_F32) *(float *)p = (float)v;
      else dc__store(p, t->dtype, v);
    } else {
      int64_t off = t->offset, r = i;
      for (int d = t->ndim - 1; d >= 0; d--) {
        off += (r % t->shape[d]) * t->stride[d];
        r /= t->shape[d];
      }
      dc__store((char *)t->storage->data + (size_t)off * z, t->dtype, v);
    }
  }
  return DC_OK;
}

static int cpu_uniform(dc_tensor *t, uint64_t seed, uint64_t c, double a, double b) {
  return fill_random(t, seed, c, a, b, false);
}

static int cpu_normal(dc_tensor *t, uint64_t seed, uint64_t c, double mean, double std) {
  return fill_random(t, seed, c, mean, std, true);
}

const dc_random_kernels dc__cpu_rand = {.uniform = cpu_uniform, .normal = cpu_normal};
