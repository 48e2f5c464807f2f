/* dtype facts, promotion and single-element conversion (including bfloat16/float16 storage). */
#include "core-impl.h"

#include <string.h>

size_t dc_dtype_size(dc_dtype dt) {
  switch (dt) {
#define DC_X(name, size, str)                                                                      \
  case name:                                                                                       \
    return size;
    DC_DTYPE_LIST(DC_X)
#undef DC_X
  case DC_DTYPE_COUNT:
    break;
  }
  return 0;
}

const char *dc_dtype_name(dc_dtype dt) {
  switch (dt) {
#define DC_X(name, size, str)                                                                      \
  case name:                                                                                       \
    return str;
    DC_DTYPE_LIST(DC_X)
#undef DC_X
  case DC_DTYPE_COUNT:
    break;
  }
  return "invalid";
}

bool dc_dtype_is_float(dc_dtype dt) {
  return dt == DC_F32 || dt == DC_F64 || dt == DC_BF16 || dt == DC_F16;
}

/* Promotion rank like PyTorch's for the dtypes we compute in: bool < uint8 < int32 < int64 <
 * float16/bfloat16 < float32 < float64. */
static int rank(dc_dtype dt) {
  switch (dt) {
  case DC_BOOL:
    return 0;
  case DC_U8:
    return 1;
  case DC_I32:
    return 2;
  case DC_I64:
    return 3;
  case DC_F16:
    return 4;
  case DC_BF16:
    return 4;
  case DC_F32:
    return 5;
  case DC_F64:
    return 6;
  case DC_DTYPE_COUNT:
    break;
  }
  return -1;
}

dc_dtype dc__promote(dc_dtype a, dc_dtype b) {
  if (a == b) return a;
  if ((a == DC_F16 && b == DC_BF16) || (a == DC_BF16 && b == DC_F16)) return DC_F32;
  return rank(a) >= rank(b) ? a : b;
}

uint16_t dc__f32_to_f16(float f) {
  _Float16 h = (_Float16)f;
  uint16_t u;
  memcpy(&u, &h, 2);
  return u;
}

float dc__f16_to_f32(uint16_t u) {
  _Float16 h;
  memcpy(&h, &u, 2);
  return (float)h;
}

double dc__load(const void *p, dc_dtype dt) {
  switch (dt) {
  case DC_F32:
    return *(const float *)p;
  case DC_F64:
    return *(const double *)p;
  case DC_I64:
    return (double)*(const int64_t *)p;
  case DC_I32:
    return *(const int32_t *)p;
  case DC_U8:
    return *(const uint8_t *)p;
  case DC_BOOL:
    return *(const uint8_t *)p ? 1.0 : 0.0;
  case DC_BF16:
    return dc__bf16_to_f32(*(const uint16_t *)p);
  case DC_F16:
    return dc__f16_to_f32(*(const uint16_t *)p);
  case DC_DTYPE_COUNT:
    break;
  }
  return 0.0;
}

void dc__store(void *p, dc_dtype dt, double v) {
  switch (dt) {
  case DC_F32:
    *(float *)p = (float)v;
    return;
  case DC_F64:
    *(double *)p = v;
    return;
  case DC_I64:
    *(int64_t *)p = (int64_t)v;
    return;
  case DC_I32:
    *(int32_t *)p = (int32_t)v;
    return;
  case DC_U8:
    *(uint8_t *)p = (uint8_t)(int64_t)v;
    return;
  case DC_BOOL:
    *(uint8_t *)p = v != 0.0;
    return;
  case DC_BF16:
    *(uint16_t *)p = dc__f32_to_bf16((float)v);
    return;
  case DC_F16:
    *(uint16_t *)p = dc__f32_to_f16((float)v);
    return;
  case DC_DTYPE_COUNT:
    break;
  }
}
