/* The backend table: every device-specific kernel is reached through a dc_backend, so a CUDA
 * backend slots in without changes above this layer. Ops (src/ops) check arguments, allocate
 * outputs and record autograd nodes; backends only compute. Kernels return DC_OK or a status
 * (with dc__errs message). Each kernel family's entries are grouped in one sub-table. */
#ifndef DC_BACKEND_H
#define DC_BACKEND_H

#include "../core/core-impl.h"

/* A backend built against another layout of these tables is refused at registration. 2: the
 * registry (device, memory entries, capabilities) replaced alloc/free; 3: the bf16 mask. */
#define DC_BACKEND_VERSION 3

/* Fused ops a backend may have, each behind optional entries; layers above ask
 * dc__backend_supports() and run the unfused ops otherwise. The registry checks that a table's
 * caps and its optional entries agree.
 *   LINEAR          linalg->linear (x . w^T + bias in one product)
 *   BATCH_NORM_RELU nn->batch_norm_relu_forward/backward
 *   CONV_BLOCK      nn->conv_block_plan/forward/backward (conv -> bn [-> relu [-> pool]])
 *   FUSED_OPTIM     optim->step/step_ref/norms/scale/clamp (multi-tensor updates, clipping) */
/* clang-format off */
#define DC_CAP_LIST(X) X(LINEAR) X(BATCH_NORM_RELU) X(CONV_BLOCK) X(FUSED_OPTIM)
typedef enum dc_backend_cap {
#define DC_X(n) DC_CAP_##n,
  DC_CAP_LIST(DC_X)
#undef DC_X
  DC_CAP_COUNT
} dc_backend_cap;
#define DC_CAP_BIT(c) (1u << (c))

/* Entries a backend may declare bfloat16-native in its `bf16` mask (DC_BF16_BIT(DC_BF16_x)).
 * The contract of a declared entry: every floating operand is bfloat16 (bias included; batch
 * norm's float32 statistics aside, none of these have any), products accumulate in float32 (or
 * wider), and each output is rounded to bfloat16 once. An op whose inputs are bfloat16 passes
 * them straight to a declared entry; for an undeclared one it upcasts them to float32, runs the
 * float32 kernel and rounds the result to bfloat16 once (src/ops/autocast-impl.h), which is what
 * PyTorch's CPU kernels compute too.
 *   GEMM    linalg->gemm_batched and linalg->linear (when present)
 *   CONV    nn->conv2d_forward and conv2d_backward */
#define DC_BF16_LIST(X) X(GEMM) X(CONV)
typedef enum dc_bf16_entry {
#define DC_X(n) DC_BF16_##n,
  DC_BF16_LIST(DC_X)
#undef DC_X
  DC_BF16_COUNT
} dc_bf16_entry;
#define DC_BF16_BIT(e) (1u << (e))

/* Unary elementwise kernels: out = f(x; p[0], p[1]); out has x's shape and dtype (bool for the
 * *_SCALAR comparisons). Scalars p[] are already rounded to x's dtype by the op. */
#define DC_UNARY_LIST(X) \
  X(NEG) X(ABS) X(SIGN) X(EXP) X(LOG) X(SQRT) X(RSQRT) X(SQUARE) X(RECIPROCAL) \
  X(SIGMOID) X(TANH) X(RELU) X(LEAKY_RELU) X(ELU) X(SELU) X(GELU) X(GELU_TANH) \
  X(SOFTPLUS) X(CLAMP) X(ADD_SCALAR) X(MUL_SCALAR) X(POW_SCALAR) X(RSUB_SCALAR) \
  X(GT_SCALAR) X(LT_SCALAR) X(EQ_SCALAR) X(DIV_SCALAR) X(ERF)
typedef enum dc_unary_op {
#define DC_X(n) DC_UN_##n,
  DC_UNARY_LIST(DC_X)
#undef DC_X
  DC_UNARY_COUNT
} dc_unary_op;

/* Binary elementwise kernels with broadcasting: out = a op b (comparisons give bool). Ops pass a
 * and b in out's dtype (in the compute dtype for comparisons). The *_BWD entries are fused
 * activation gradients, a = gout: RELU_BWD (b = x) 0 where x <= 0, else a
 * (torch's threshold_backward: a NaN x passes a); SIGMOID_BWD (b = y) a * y(1 - y);
 * TANH_BWD (b = y) a * (1 - y^2); GELU_BWD, GELU_TANH_BWD (b = x) a * gelu'(x). */
#define DC_BINARY_LIST(X) \
  X(ADD) X(SUB) X(MUL) X(DIV) X(POW) X(MAXIMUM) X(MINIMUM) \
  X(EQ) X(NE) X(LT) X(LE) X(GT) X(GE) \
  X(RELU_BWD) X(SIGMOID_BWD) X(TANH_BWD) X(GELU_BWD) X(GELU_TANH_BWD) X(ADD_RELU)
typedef enum dc_binary_op {
#define DC_X(n) DC_BIN_##n,
  DC_BINARY_LIST(DC_X)
#undef DC_X
  DC_BINARY_COUNT
} dc_binary_op;

/* Reductions over the dims set in a bit mask; out keeps reduced dims as size 1. */
#define DC_REDUCE_LIST(X) X(SUM) X(MEAN) X(MAX) X(MIN) X(LOGSUMEXP)
typedef enum dc_reduce_op {
#define DC_X(n) DC_RED_##n,
  DC_REDUCE_LIST(DC_X)
#undef DC_X
  DC_REDUCE_COUNT
} dc_reduce_op;
/* clang-format on */

/* Unary ops with integer kernels (wrapping); the others need a float input, since converting a
 * float result (NaN, inf) to an integer is undefined in C. Every backend follows this list; the
 * *_SCALAR comparisons (bool output) are decided apart. */
static inline bool dc__unary_int_kernel(dc_unary_op op) {
  switch (op) {
  case DC_UN_NEG:
  case DC_UN_ABS:
  case DC_UN_SIGN:
  case DC_UN_SQUARE:
  case DC_UN_RELU:
  case DC_UN_CLAMP:
  case DC_UN_ADD_SCALAR:
  case DC_UN_MUL_SCALAR:
  case DC_UN_RSUB_SCALAR:
  case DC_UN_POW_SCALAR:
    return true;
  default:
    return false;
  }
}

typedef struct dc_elementwise_kernels {
  /* dst = src broadcast and converted to dst's dtype */
  int (*copy)(dc_tensor *dst, const dc_tensor *src);
  int (*fill)(dc_tensor *t, double value);
  int (*unary)(dc_unary_op op, dc_tensor *out, const dc_tensor *x, const double *p);
  int (*binary)(dc_binary_op op, dc_tensor *out, const dc_tensor *a, const dc_tensor *b);
  /* out = cond ? a : b */
  int (*where)(dc_tensor *out, const dc_tensor *cond, const dc_tensor *a, const dc_tensor *b);
  /* out = a + alpha * b (fused axpy, for gradient accumulation) */
  int (*axpy)(dc_tensor *out, const dc_tensor *a, double alpha, const dc_tensor *b);
} dc_elementwise_kernels;

typedef struct dc_reduce_kernels {
  /* out: x's shape with masked dims set to 1; deterministic whatever the thread count */
  int (*reduce)(dc_reduce_op op, dc_tensor *out, const dc_tensor *x, uint32_t dim_mask);
  /* values and int64 indices along one dim (first index on ties) */
  int (*arg_reduce)(bool is_max, dc_tensor *values, dc_tensor *indices, const dc_tensor *x,
                    int dim);
  /* softmax / log-softmax along dim */
  int (*softmax)(dc_tensor *out, const dc_tensor *x, int dim, bool log);
} dc_reduce_kernels;

typedef struct dc_linalg_kernels {
  /* out[b] = alpha * op(a[b]) op(b[b]) + beta * out[b]; contiguous 3-D [B, M, N], batch B may be
   * broadcast (batch stride 0 on a or b); ta/tb transpose the last two dims of a/b. */
  int (*gemm_batched)(dc_tensor *out, const dc_tensor *a, const dc_tensor *b, bool ta, bool tb,
                      float alpha, float beta);
  /* Optional (NULL: ops copy the bias into out and call gemm_batched with beta 1):
   * out [M, N] (contiguous) = x [M, K] . w [N, K]^T + bias [N] (bias may be NULL), fused. */
  int (*linear)(dc_tensor *out, const dc_tensor *x, const dc_tensor *w, const dc_tensor *bias);
} dc_linalg_kernels;

typedef struct dc_index_kernels {
  int (*gather)(dc_tensor *out, const dc_tensor *x, int dim, const dc_tensor *index);
  /* out += src scattered at index along dim (out already holds x) */
  int (*scatter_add)(dc_tensor *out, int dim, const dc_tensor *index, const dc_tensor *src);
  int (*index_select)(dc_tensor *out, const dc_tensor *x, int dim, const dc_tensor *index);
  /* out += src rows at index along dim (index_add, backward of index_select) */
  int (*index_add)(dc_tensor *out, int dim, const dc_tensor *index, const dc_tensor *src);
} dc_index_kernels;

typedef struct dc_random_kernels {
  /* fills t from the Philox stream (seed, counter); counter advances by what is consumed */
  int (*uniform)(dc_tensor *t, uint64_t seed, uint64_t counter, double a, double b);
  int (*normal)(dc_tensor *t, uint64_t seed, uint64_t counter, double mean, double std);
} dc_random_kernels;

struct dc_nn_kernels;    /* src/backend/nn-kernels.h: conv, pooling, batch norm */
struct dc_optim_kernels; /* src/backend/optim-kernels.h: fused optimizer updates */

/* One device's table. Mandatory: mem, ew, red, linalg (gemm_batched), index, rand, nn (every
 * entry but the optional fused ones). */
typedef struct dc_backend {
  int version; /* DC_BACKEND_VERSION */
  const char *name;
  dc_device device;
  /* allocation, transfers (host to device, device to host, device to device) and
   * synchronisation: core's contract (src/core/core-impl.h); the cpu's is core's host memory */
  const dc_device_mem *mem;
  uint32_t caps; /* DC_CAP_BIT(DC_CAP_x) for each fused op it has */
  uint32_t bf16; /* DC_BF16_BIT(DC_BF16_x) for each entry that takes bfloat16 (DC_BF16_LIST) */
  const dc_elementwise_kernels *ew;
  const dc_reduce_kernels *red;
  const dc_linalg_kernels *linalg;
  const dc_index_kernels *index;
  const dc_random_kernels *rand;
  const struct dc_nn_kernels *nn;
  const struct dc_optim_kernels *optim; /* with DC_CAP_FUSED_OPTIM, else NULL */
} dc_backend;

/* ---- the registry (registry.c): one table per device ----
 * Installs be for be->device after checking its versions (table, nn and optim families, memory
 * entries), its mandatory entries and that caps match its optional entries; a second
 * registration of a device replaces the first. The builtin backends (cpu, and testdev / cuda
 * where built) are registered by dc__backends_init, which this, dc__backend and the public
 * device lookups (devices.c) call first. */
int dc__backend_register(const dc_backend *be);
/* Registers the builtin backends, once: cpu, testdev where built, and cuda when
 * dc__cuda_probe() finds a GPU. */
void dc__backends_init(void);
/* The backend of a device, or NULL with an error naming the devices this build has. */
const dc_backend *dc__backend(dc_device dev);
/* Whether dev's backend has the fused op (false for a device not built in; no error). */
bool dc__backend_supports(dc_device dev, dc_backend_cap cap);
/* The name of a capability ("CONV_BLOCK"). */
const char *dc__backend_cap_name(dc_backend_cap cap);

extern const dc_backend dc__cpu_backend;

#endif
