/* Helpers shared by the functional nn ops (src/ops/nn_*.c): reaching the nn kernels, argument
 * checks with messages that name the op, shapes and fix, and the guard for double backward
 * (the fused backward kernels are not themselves differentiable). */
#ifndef DC_NN_OPS_H
#define DC_NN_OPS_H

#include <deepc/nn_functional.h>

#include "../autograd/autograd-impl.h"
#include "../backend/nn-kernels.h"

/* The nn kernels of t's device, or NULL with an error naming op. */
const struct dc_nn_kernels *dc__nn_kernels(const char *op, const dc_tensor *t);
/* t is float32 or float64, else an error naming op and what t is ("input", "weight"). */
bool dc__nn_check_float(const char *op, const char *what, const dc_tensor *t);
/* t (may be NULL) is on the input x's device, else an error naming op, what t is and both. */
bool dc__nn_check_device(const char *op, const char *what, const dc_tensor *t, const dc_tensor *x);
/* b is on a's device and has a's dtype, else an error naming both. */
bool dc__nn_check_same_dtype(const char *op, const char *what_a, const dc_tensor *a,
                             const char *what_b, const dc_tensor *b);
/* t is 1-D [n], else an error naming op, what t is and the expected shape. */
bool dc__nn_check_vector(const char *op, const char *what, const dc_tensor *t, int64_t n);
/* reduction is one of dc_reduction. */
bool dc__nn_check_reduction(const char *op, dc_reduction r);
/* An owned reference (release with dc__unref) to a contiguous tensor with t's values in dtype dt:
 * t itself when it already is one (no view node in between, so its gradient arrives without a
 * copy), else a differentiable copy. */
dc_tensor *dc__nn_prepare(dc_tensor *t, dc_dtype dt);
/* Inside a backward rule: false (with an error) when the rule is asked to build a graph
 * (create_graph), which the fused kernels cannot. */
bool dc__nn_no_double_backward(const char *op);
/* relu(batch_norm(...)) as one op (nn_batchnorm.c; declared for src/nn in nn-impl.h too). */
dc_tensor *dc__batch_norm_relu(dc_tensor *x, dc_tensor *running_mean, dc_tensor *running_var,
                               dc_tensor *weight, dc_tensor *bias, bool training, double momentum,
                               double eps);
/* conv2d's geometry for x [N, C, H, W] and w (4-D): sizes, padding ("same" resolved) and the
 * algorithm in force; false with an error naming the problem (nn_conv.c). */
bool dc__conv_geom(dc_conv2d_geom *g, const dc_tensor *x, const dc_tensor *w, dc_conv2d_opts o);
/* batch_norm(conv2d(x)), then by mode (DC_CONV_BLOCK_RELU, | DC_CONV_BLOCK_POOL: nn-kernels.h)
 * relu and max_pool2d with a 2x2 window, stride 2, as one op (nn_conv_block.c; declared for
 * src/nn in nn-impl.h too). */
dc_tensor *dc__conv_block(dc_tensor *x, dc_tensor *w, dc_tensor *b, dc_conv2d_opts o,
                          dc_tensor *running_mean, dc_tensor *running_var, dc_tensor *bn_w,
                          dc_tensor *bn_b, bool training, double momentum, double eps, int mode,
                          bool *fused);
/* relu(a + b) as one op (unary.c, beside relu; declared for src/nn in nn-impl.h too): one pass,
 * the output saved for the backward; other shapes or dtypes run dc_add then dc_relu. */
dc_tensor *dc__add_relu(dc_tensor *a, dc_tensor *b);
/* Backward rule result: DC_OK, or the current error status (DC_ERR_NOMEM when none is set). */
int dc__nn_status(void);

#endif
