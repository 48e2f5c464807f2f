/* Graph nodes: recording an op's inputs and saved tensors, grad mode, and releasing nodes. */
#include "autograd-impl.h"

#include <string.h>

static _Thread_local bool g_no_grad; /* false = grad mode on (the default) */

bool dc_set_grad_enabled(bool on) {
  bool prev = !g_no_grad;
  g_no_grad = !on;
  return prev;
}
bool dc_is_grad_enabled(void) { return !g_no_grad; }
bool dc__grad_mode(void) { return !g_no_grad; }

bool dc__any_requires_grad(int n, dc_tensor *const *ts) {
  for (int k = 0; k < n; k++)
    if (ts[k] && ts[k]->requires_grad) return true;
  return false;
}

/* The entries core calls on a tensor's grad_fn (core-impl.h's dc__node_head). */
static void grad_fn_release(dc_node *n, const dc_tensor *t) {
  if (n->out == t) n->out = NULL;
  dc__node_release(n);
}
static const char *grad_fn_name(const dc_node *n) { return dc__op_name(n->op); }
static const dc__node_vt g_node_vt = {.release = grad_fn_release, .name = grad_fn_name};

bool dc__record(const dc_opdef *op, dc_tensor *out, int n, dc_tensor *const *inputs,
                dc_node **node) {
  *node = NULL;
  if (DC__UNLIKELY(dc__anomaly_on) && !dc__anomaly_forward(dc__op_name(op), out, n, inputs))
    return false;
  if (g_no_grad || !dc__any_requires_grad(n, inputs)) return true;
  dc_node *nd = dc__calloc(1, sizeof *nd);
  if (!nd) return false;
  nd->head.vt = &g_node_vt;
  nd->inputs = nd->inline_inputs;
  if (n > 3) {
    nd->inputs = dc__calloc((size_t)n, sizeof *nd->inputs);
    if (!nd->inputs) {
      dc__free(nd);
      return false;
    }
  }
  nd->op = op;
  nd->refcount = 1;
  nd->ninputs = n;
  for (int k = 0; k < n; k++) nd->inputs[k] = dc__ref(inputs[k]);
  nd->out_shape = dc_shape_of(out);
  nd->out_dtype = out->dtype;
  nd->out = out;
  out->grad_fn = nd;
  out->requires_grad = true;
  *node = nd;
  return true;
}

void dc__save(dc_node *n, int k, dc_tensor *t) {
  DC__CHECK(k >= 0 && k < DC_NODE_MAX_SAVED && !n->saved[k], );
  n->saved[k] = dc__ref(t);
}

bool dc__save_output(dc_node *n, int k, const dc_tensor *out) {
  dc_tensor *y = dc__alias_same(out);
  if (!y) return false;
  dc__save(n, k, y);
  dc_free(y);
  return true;
}

bool dc__needs_grad(const dc_node *n, int k) {
  return k < n->ninputs && n->inputs[k] && n->inputs[k]->requires_grad;
}

void dc__node_release(dc_node *n) {
  if (!n || --n->refcount > 0) return;
  for (int k = 0; k < n->ninputs; k++) dc__unref(n->inputs[k]);
  for (int k = 0; k < DC_NODE_MAX_SAVED; k++) dc__unref(n->saved[k]);
  if (n->ctx_free) n->ctx_free(n->ctx);
  dc__unref(n->gacc);
  if (n->inputs != n->inline_inputs) dc__free(n->inputs);
  dc__free(n);
}

int dc_retain_grad(dc_tensor *t) {
  if (!t) return dc__errs(DC_ERR_ARG, "retain_grad: tensor is NULL");
  if (!t->requires_grad)
    return dc__errs(DC_ERR_ARG, "retain_grad: this tensor does not require grad, so it will never "
                                "have a gradient; build it from tensors that require grad");
  t->retains_grad = true;
  return DC_OK;
}

void dc_zero_grad(dc_tensor *t) {
  if (!t) return;
  dc_free(t->grad);
  t->grad = NULL;
}
