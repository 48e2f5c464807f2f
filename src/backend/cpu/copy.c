/* CPU copy (broadcasting, strided, dtype-converting) and fill. Contiguous same-dtype copies are
 * memcpy; f32<->f64 and other pairs go through typed inner loops over dc__loop rows. */
#include "cpu-impl.h"

#include <string.h>

static void copy_row(char *d, dc_dtype dt, int64_t ds, const char *s, dc_dtype st, int64_t ss,
                     int64_t n) {
  size_t dz = dc_dtype_size(dt), sz = dc_dtype_size(st);
  if (dt == st) {
    if (ds == 1 && ss == 1) {
      memcpy(d, s, (size_t)n * dz);
      return;
    }
    if (dt == DC_F32) {
      float *o = (float *)d;
      const float *i = (const float *)s;
      for (int64_t k = 0; k < n; k++) o[k * ds] = i[k * ss];
      return;
    }
    for (int64_t k = 0; k < n; k++)
      memcpy(d + (size_t)(k * ds) * dz, s + (size_t)(k * ss) * sz, dz);
    return;
  }
  if (dt == DC_F64 && st == DC_F32) {
    double *o = (double *)d;
    const float *i = (const float *)s;
    for (int64_t k = 0; k < n; k++) o[k * ds] = i[k * ss];
    return;
  }
  if (dt == DC_F32 && st == DC_F64) {
    float *o = (float *)d;
    const double *i = (const double *)s;
    for (int64_t k = 0; k < n; k++) o[k * ds] = (float)i[k * ss];
    return;
  }
  if (dt == DC_BF16 && st == DC_F32) { /* autocast's casts: typed loops, same rounding */
    uint16_t *o = (uint16_t *)d;
    const float *i = (const float *)s;
    for (int64_t k = 0; k < n; k++) o[k * ds] = dc__f32_to_bf16(i[k * ss]);
    return;
  }
  if (dt == DC_F32 && st == DC_BF16) {
    float *o = (float *)d;
    const uint16_t *i = (const uint16_t *)s;
    for (int64_t k = 0; k < n; k++) o[k * ds] = dc__bf16_to_f32(i[k * ss]);
    return;
  }
  for (int64_t k = 0; k < n; k++)
    dc__store(d + (size_t)(k * ds) * dz, dt, dc__load(s + (size_t)(k * ss) * sz, st));
}

static int cpu_copy(dc_tensor *dst, const dc_tensor *src) {
  const dc_tensor *ops[2] = {dst, src};
  dc__loop L;
  dc__loop_setup(&L, dc_shape_of(dst), 2, ops);
  int64_t total = L.rows * L.inner;
#pragma omp parallel for schedule(static) if (total >= DC__PAR_MIN && L.rows > 1)
  for (int64_t r = 0; r < L.rows; r++) {
    int64_t off[2];
    dc__loop_row(&L, r, off);
    copy_row(DC__PTR(dst, off[0]), dst->dtype, L.istride[0], DC__PTR(src, off[1]), src->dtype,
             L.istride[1], L.inner);
  }
  return DC_OK;
}

static int cpu_fill(dc_tensor *t, double v) {
  const dc_tensor *ops[1] = {t};
  dc__loop L;
  dc__loop_setup(&L, dc_shape_of(t), 1, ops);
  size_t z = dc_dtype_size(t->dtype);
  char one[8];
  dc__store(one, t->dtype, v);
  for (int64_t r = 0; r < L.rows; r++) {
    int64_t off;
    dc__loop_row(&L, r, &off);
    char *p = DC__PTR(t, off);
    if (t->dtype == DC_F32) {
      float f = (float)v, *o = (float *)p;
      for (int64_t k = 0; k < L.inner; k++) o[k * L.istride[0]] = f;
    } else if (v == 0.0 && L.istride[0] == 1) {
      memset(p, 0, (size_t)L.inner * z);
    } else {
      for (int64_t k = 0; k < L.inner; k++) memcpy(p + (size_t)(k * L.istride[0]) * z, one, z);
    }
  }
  return DC_OK;
}

const dc_elementwise_kernels dc__cpu_ew = {
    .copy = cpu_copy,
    .fill = cpu_fill,
    .unary = dc__cpu_unary,
    .binary = dc__cpu_binary,
    .where = dc__cpu_where,
    .axpy = dc__cpu_axpy,
};
