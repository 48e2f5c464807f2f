/* CUDA random kernels: the CPU's streams (cpu/random.c, core/philox.h) element for element.
 * Element i of a draw uses Philox4x32-10 block (seed, key hi 0 for uniform / 1 for normal,
 * counter + i); uniform = a + (b - a) * u01d(w0, w1) in double without fused multiply-adds, so
 * a float32 or float64 uniform draw has the CPU's bits; normal is Box-Muller on one block with
 * CUDA's double sqrt/log/cos (within an ulp of glibc's, so the float32 values match but a rare
 * float64 last bit may differ). */
#include "kern.cuh"

struct u32x4 {
  uint32_t v[4];
};

/* core/philox.h's dc__philox, on the device */
__device__ inline u32x4 philox(uint64_t seed, uint64_t ctr_hi, uint64_t ctr_lo) {
  uint32_t c0 = (uint32_t)ctr_lo, c1 = (uint32_t)(ctr_lo >> 32);
  uint32_t c2 = (uint32_t)ctr_hi, c3 = (uint32_t)(ctr_hi >> 32);
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int r = 0; r < 10; r++) {
    uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c1 = lo1;
    c3 = lo0;
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  u32x4 r = {{c0, c1, c2, c3}};
  return r;
}

/* dc__u01d: 53 bits from two words, in [0, 1) */
__device__ inline double u01d(uint32_t a, uint32_t b) {
  uint64_t x = ((uint64_t)a << 21) ^ (uint64_t)(b >> 11);
  return __dmul_rn((double)(x & ((1ull << 53) - 1)), 1.0 / 9007199254740992.0);
}

__global__ void random_k(dc__cu_iter it, uint64_t seed, uint64_t c, double a, double b,
                         bool normal) {
  DC__CU_FOR(i, it.numel) {
    double v;
    if (normal) {
      u32x4 r = philox(seed, 1, c + (uint64_t)i);
      double u1 = __dsub_rn(1.0, u01d(r.v[0], r.v[1])); /* (0, 1] */
      double u2 = u01d(r.v[2], r.v[3]);
      double z = __dmul_rn(sqrt(__dmul_rn(-2.0, log(u1))), cos(__dmul_rn(6.283185307179586, u2)));
      v = __dadd_rn(a, __dmul_rn(b, z));
    } else {
      u32x4 r = philox(seed, 0, c + (uint64_t)i);
      v = __dadd_rn(a, __dmul_rn(__dsub_rn(b, a), u01d(r.v[0], r.v[1])));
    }
    char *p[1];
    dc__cu_iter_at(it, i, p);
    dc__cu_store<double>(p[0], it.dt[0], v);
  }
}

/* Element i is t's i-th element in row-major order whatever its strides, as on the CPU. */
static int fill_random(dc_tensor *t, uint64_t seed, uint64_t c, double a, double b, bool normal) {
  if (dc_numel(t) == 0) return DC_OK;
  dc__cu_iter it;
  it.ndim = t->ndim ? t->ndim : 1;
  it.nops = 1;
  it.numel = dc_numel(t);
  for (int d = 0; d < it.ndim; d++) {
    it.shape[d] = t->ndim ? t->shape[d] : 1;
    it.stride[0][d] = t->ndim ? t->stride[d] : 0;
  }
  it.dt[0] = (int)t->dtype;
  it.esize[0] = (int)dc_dtype_size(t->dtype);
  it.data[0] = dc__cuda_ptr(t);
  random_k<<<dc__cu_blocks(it.numel), DC__CU_THREADS, 0, dc__cuda_stream()>>>(it, seed, c, a, b,
                                                                              normal);
  return dc__cuda_launched("random kernel");
}

extern "C" int dc__cuda_uniform(dc_tensor *t, uint64_t seed, uint64_t c, double a, double b) {
  return fill_random(t, seed, c, a, b, false);
}

extern "C" int dc__cuda_normal(dc_tensor *t, uint64_t seed, uint64_t c, double mean, double std) {
  return fill_random(t, seed, c, mean, std, true);
}
