/* MD5 (RFC 1321) and SHA-256 (FIPS 180-4) for checking downloaded dataset files, streaming over
 * files in 1 MiB chunks. Small reference implementations: speed is bounded by the network. */
#include "data-impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ---- MD5 ---- */
typedef struct md5_ctx {
  uint32_t s[4];
  uint64_t len;
  uint8_t buf[64];
} md5_ctx;

static const uint32_t MD5_K[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
static const uint8_t MD5_R[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                  5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                  4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                  6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

static uint32_t rotl(uint32_t x, int c) { return x << c | x >> (32 - c); }

static void md5_block(md5_ctx *c, const uint8_t *p) {
  uint32_t m[16], a = c->s[0], b = c->s[1], cc = c->s[2], d = c->s[3];
  for (int i = 0; i < 16; i++)
    m[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
           (uint32_t)p[4 * i + 3] << 24;
  for (int i = 0; i < 64; i++) {
    uint32_t f;
    int g;
    if (i < 16)
      f = (b & cc) | (~b & d), g = i;
    else if (i < 32)
      f = (d & b) | (~d & cc), g = (5 * i + 1) % 16;
    else if (i < 48)
      f = b ^ cc ^ d, g = (3 * i + 5) % 16;
    else
      f = cc ^ (b | ~d), g = (7 * i) % 16;
    uint32_t t = d;
    d = cc;
    cc = b;
    b = b + rotl(a + f + MD5_K[i] + m[g], MD5_R[i]);
    a = t;
  }
  c->s[0] += a;
  c->s[1] += b;
  c->s[2] += cc;
  c->s[3] += d;
}

static void md5_init(md5_ctx *c) {
  *c = (md5_ctx){{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476}, 0, {0}};
}

static void md5_update(md5_ctx *c, const uint8_t *p, size_t n) {
  size_t have = (size_t)(c->len % 64);
  c->len += n;
  if (have) {
    size_t take = 64 - have < n ? 64 - have : n;
    memcpy(c->buf + have, p, take);
    p += take;
    n -= take;
    if (have + take < 64) return;
    md5_block(c, c->buf);
  }
  for (; n >= 64; p += 64, n -= 64) md5_block(c, p);
  memcpy(c->buf, p, n);
}

static void md5_final(md5_ctx *c, uint8_t out[16]) {
  uint64_t bits = c->len * 8;
  uint8_t pad[72] = {0x80};
  size_t have = (size_t)(c->len % 64), padn = have < 56 ? 56 - have : 120 - have;
  md5_update(c, pad, padn);
  uint8_t l[8];
  for (int i = 0; i < 8; i++) l[i] = (uint8_t)(bits >> (8 * i));
  md5_update(c, l, 8);
  for (int i = 0; i < 4; i++)
    for (int k = 0; k < 4; k++) out[4 * i + k] = (uint8_t)(c->s[i] >> (8 * k));
}

void dc__md5(const void *data, size_t n, uint8_t out[16]) {
  md5_ctx c;
  md5_init(&c);
  md5_update(&c, data, n);
  md5_final(&c, out);
}

/* ---- SHA-256 ---- */
typedef struct sha_ctx {
  uint32_t s[8];
  uint64_t len;
  uint8_t buf[64];
} sha_ctx;

static const uint32_t SHA_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t rotr(uint32_t x, int c) { return x >> c | x << (32 - c); }

static void sha_block(sha_ctx *c, const uint8_t *p) {
  uint32_t w[64], v[8];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
           p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  memcpy(v, c->s, sizeof v);
  for (int i = 0; i < 64; i++) {
    uint32_t s1 = rotr(v[4], 6) ^ rotr(v[4], 11) ^ rotr(v[4], 25);
    uint32_t ch = (v[4] & v[5]) ^ (~v[4] & v[6]);
    uint32_t t1 = v[7] + s1 + ch + SHA_K[i] + w[i];
    uint32_t s0 = rotr(v[0], 2) ^ rotr(v[0], 13) ^ rotr(v[0], 22);
    uint32_t maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
    memmove(v + 1, v, 7 * sizeof *v);
    v[4] += t1;
    v[0] = t1 + s0 + maj;
  }
  for (int i = 0; i < 8; i++) c->s[i] += v[i];
}

static void sha_init(sha_ctx *c) {
  *c = (sha_ctx){{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c,
                  0x1f83d9ab, 0x5be0cd19},
                 0,
                 {0}};
}

static void sha_update(sha_ctx *c, const uint8_t *p, size_t n) {
  size_t have = (size_t)(c->len % 64);
  c->len += n;
  if (have) {
    size_t take = 64 - have < n ? 64 - have : n;
    memcpy(c->buf + have, p, take);
    p += take;
    n -= take;
    if (have + take < 64) return;
    sha_block(c, c->buf);
  }
  for (; n >= 64; p += 64, n -= 64) sha_block(c, p);
  memcpy(c->buf, p, n);
}

static void sha_final(sha_ctx *c, uint8_t out[32]) {
  uint64_t bits = c->len * 8;
  uint8_t pad[72] = {0x80};
  size_t have = (size_t)(c->len % 64), padn = have < 56 ? 56 - have : 120 - have;
  sha_update(c, pad, padn);
  uint8_t l[8];
  for (int i = 0; i < 8; i++) l[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha_update(c, l, 8);
  for (int i = 0; i < 8; i++)
    for (int k = 0; k < 4; k++) out[4 * i + k] = (uint8_t)(c->s[i] >> (24 - 8 * k));
}

void dc__sha256(const void *data, size_t n, uint8_t out[32]) {
  sha_ctx c;
  sha_init(&c);
  sha_update(&c, data, n);
  sha_final(&c, out);
}

int dc__file_digest(const char *path, bool sha256, char *hex) {
  FILE *f = fopen(path, "rb");
  if (!f) return dc__errs(DC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  enum { CHUNK = 1 << 20 };
  uint8_t *buf = dc__malloc(CHUNK);
  if (!buf) {
    fclose(f);
    return DC_ERR_NOMEM;
  }
  md5_ctx m;
  sha_ctx s;
  md5_init(&m);
  sha_init(&s);
  size_t got;
  while ((got = fread(buf, 1, CHUNK, f)) > 0) {
    if (sha256)
      sha_update(&s, buf, got);
    else
      md5_update(&m, buf, got);
  }
  int rc = ferror(f) ? dc__errs(DC_ERR_IO, "%s: read error", path) : DC_OK;
  fclose(f);
  dc__free(buf);
  uint8_t d[32];
  int len = sha256 ? 32 : 16;
  if (sha256)
    sha_final(&s, d);
  else
    md5_final(&m, d);
  for (int i = 0; i < len; i++) sprintf(hex + 2 * i, "%02x", d[i]);
  hex[2 * len] = '\0';
  return rc;
}
