/* Internal to the CPU backend: the kernel tables and shared helpers (threading thresholds). */
#ifndef DC_CPU_IMPL_H
#define DC_CPU_IMPL_H

#include "../backend.h"

extern const dc_elementwise_kernels dc__cpu_ew;
extern const dc_reduce_kernels dc__cpu_red;
extern const dc_linalg_kernels dc__cpu_linalg;
extern const dc_index_kernels dc__cpu_index;
extern const dc_random_kernels dc__cpu_rand;

/* Elementwise kernels (unary.c, binary.c), collected into dc__cpu_ew by copy.c. */
int dc__cpu_unary(dc_unary_op op, dc_tensor *out, const dc_tensor *x, const double *p);
int dc__cpu_binary(dc_binary_op op, dc_tensor *out, const dc_tensor *a, const dc_tensor *b);
int dc__cpu_where(dc_tensor *out, const dc_tensor *c, const dc_tensor *a, const dc_tensor *b);
int dc__cpu_axpy(dc_tensor *out, const dc_tensor *a, double alpha, const dc_tensor *b);
/* Naive references (scalar loops in double over dc__loop, libm): the test oracle, and the path
 * for dtype combinations that have no fast kernel. Same contracts as the kernels above. */
int dc__cpu_unary_ref(dc_unary_op op, dc_tensor *out, const dc_tensor *x, const double *p);
int dc__cpu_binary_ref(dc_binary_op op, dc_tensor *out, const dc_tensor *a, const dc_tensor *b);
int dc__cpu_where_ref(dc_tensor *out, const dc_tensor *c, const dc_tensor *a, const dc_tensor *b);
int dc__cpu_axpy_ref(dc_tensor *out, const dc_tensor *a, double alpha, const dc_tensor *b);

/* Elementwise driver (binary.c): calls kern on contiguous pieces of out (ptr[0]) and nin <= 3
 * inputs (ptr[1..], broadcast to out's shape) of any layout; operands whose last dim is not
 * contiguous are gathered into / scattered from per-thread tiles. Work is cut into fixed blocks
 * run by OpenMP above DC__PAR_MIN elements, so results do not depend on the thread count.
 * Unless in_place_ok (kern reads each element before writing it, without restrict), inputs
 * that share out's storage are read through tiles, so the unary/binary kernels may be called
 * in place (out == x). */
typedef void (*dc__ew_kernel)(const void *ctx, int64_t n, char *const *ptr);
void dc__cpu_ew_apply(dc__ew_kernel kern, const void *ctx, dc_tensor *out, int nin,
                      const dc_tensor *const *in, bool in_place_ok);

/* GEMM (gemm.c): the naive reference (double accumulation; the test oracle), same contract as
 * dc__cpu_linalg.gemm_batched, and a switch tests use to force one path of the fast kernel. */
int dc__cpu_gemm_ref(dc_tensor *out, const dc_tensor *a, const dc_tensor *b, bool ta, bool tb,
                     float alpha, float beta);
enum { DC__GEMM_AUTO, DC__GEMM_ONEDNN, DC__GEMM_BLOCKED };
extern int dc__cpu_gemm_force;

/* The nn and optim kernel families (nn/, optim/). */
extern const struct dc_nn_kernels dc__cpu_nn;
extern const struct dc_optim_kernels dc__cpu_optim;

/* Work below this many elements runs on one thread (thread start-up costs more). */
#define DC__PAR_MIN 32768

/* Typed element pointer of operand k at element offset off. */
#define DC__PTR(t, off) ((char *)(t)->storage->data + (size_t)(off)*dc_dtype_size((t)->dtype))

#endif
