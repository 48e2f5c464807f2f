/* Define-by-run reverse-mode autograd: backward, grad mode, retain_grad, gradcheck and graph
 * export. Backward rules are written in deepc ops, so they run on every backend. */
#ifndef DEEPC_AUTOGRAD_H
#define DEEPC_AUTOGRAD_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dc_backward_opts {
  dc_tensor *grad;   /* gradient of the output; NULL = ones for a one-element output */
  bool retain_graph; /* keep the graph for another backward */
  bool create_graph; /* record the backward pass itself (higher-order gradients) */
} dc_backward_opts;

/* Fills .grad of every leaf that requires grad (accumulating) and of retain_grad tensors.
 * Returns DC_OK or an error status (message in dc_last_error()). */
DC_API int dc_backward_opt(dc_tensor *out, dc_backward_opts opts);
#define dc_backward(out, ...) dc_backward_opt((out), (dc_backward_opts){__VA_ARGS__})

/* Keep .grad of this non-leaf tensor after backward (PyTorch's retain_grad()). */
DC_API int dc_retain_grad(dc_tensor *t);
/* Sets .grad to NULL (set_to_none) for one tensor. */
DC_API void dc_zero_grad(dc_tensor *t);
/* A new tensor sharing storage, cut from the graph, requires_grad false. */
DC_API dc_tensor *dc_detach(dc_tensor *t);

/* Grad mode (thread-local). dc_set_grad_enabled returns the previous mode. */
DC_API bool dc_set_grad_enabled(bool on);
DC_API bool dc_is_grad_enabled(void);
#define dc_no_grad_begin() bool dc__prev_grad_mode = dc_set_grad_enabled(false)
#define dc_no_grad_end() dc_set_grad_enabled(dc__prev_grad_mode)

/* Anomaly detection (torch.autograd.set_detect_anomaly), for the whole process, off by default.
 * When on, every op that records a node checks its floating-point output (grad mode on or off)
 * and every backward node the gradients it returns: the first NaN or infinity makes the op
 * return NULL (dc_backward an error status) with a DC_ERR_STATE message naming the op, forward
 * or backward, the element, and the shapes and dtypes of its inputs (marking those already
 * non-finite). Costs one pass over each output while on. Returns the previous mode. */
DC_API bool dc_set_detect_anomaly(bool on);
DC_API bool dc_is_anomaly_enabled(void);

/* Name of the op that produced t ("mul", "sigmoid", ...), or NULL for a leaf. */
DC_API const char *dc_grad_fn_name(const dc_tensor *t);

/* ---- gradient checking ---- */
typedef dc_tensor *(*dc_gradcheck_fn)(dc_tensor *const *inputs, int n, void *ud);
typedef struct dc_gradcheck_opts {
  double eps;  /* central-difference step (default 1e-6) */
  double atol; /* default 1e-5 */
  double rtol; /* default 1e-3 */
  bool verbose;
} dc_gradcheck_opts;
/* inputs must be float64; checks d(sum(f * r))/d input for a fixed random r against central
 * differences for every input that requires grad. Returns true when all match; on failure
 * dc_last_error() names the input, the element and both values. */
DC_API bool dc_gradcheck_opt(dc_gradcheck_fn f, dc_tensor *const *inputs, int n, void *ud,
                             dc_gradcheck_opts opts);
#define dc_gradcheck(f, inputs, n, ud, ...)                                                        \
  dc_gradcheck_opt((f), (inputs), (n), (ud), (dc_gradcheck_opts){__VA_ARGS__})

/* ---- graph export ---- */
typedef struct dc_dot_opts {
  bool values; /* print each tensor's values (small tensors) */
  bool grads;  /* print each tensor's .grad where present */
} dc_dot_opts;
/* Writes the graph that produced `out` as Graphviz DOT: op nodes and tensor nodes with shapes. */
DC_API int dc_graph_dot(FILE *f, dc_tensor *out, dc_dot_opts opts);

#ifdef __cplusplus
}
#endif
#endif
