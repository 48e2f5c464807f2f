/* The backward engine: walks the graph from an output in dependency order, runs each node's
 * rule (written in deepc ops) and accumulates gradients into leaves and retain_grad tensors. */
#include "../../backend/backend.h"
#include "../autograd-impl.h"

#include <string.h>

static uint32_t g_epoch;

typedef struct node_vec {
  dc_node **v;
  size_t n, cap;
} node_vec;

static bool vec_push(node_vec *a, dc_node *n) {
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 64;
    dc_node **v = dc__realloc(a->v, a->cap * sizeof *v, cap * sizeof *v);
    if (!v) return false;
    a->v = v;
    a->cap = cap;
  }
  a->v[a->n++] = n;
  return true;
}

/* g as an owned, unscoped gradient for tensor `like`: g itself if it is private to the current
 * rule (so no two leaves share a gradient buffer), else a fresh contiguous copy. */
static dc_tensor *own_grad(dc_tensor *g, const dc_tensor *like) {
  bool private = g->refcount == 1 && g->storage->refcount == 1 && dc_is_contiguous(g) &&
                 g->dtype == like->dtype && !g->grad_fn && dc__in_current_scope(g);
  if (private) return dc__take(g);
  dc_tensor *r = dc__new(dc_shape_of(like), like->dtype, like->device);
  if (!r) return NULL;
  if (dc__backend(r->device)->ew->copy(r, g) != DC_OK) {
    dc_free(r);
    return NULL;
  }
  return dc__take(r);
}

/* *slot += g, where *slot is an owned reference (NULL when empty). graph: keep it
 * differentiable (sums of intermediate gradients, create_graph). */
static int accumulate(dc_tensor **slot, dc_tensor *g, const dc_tensor *like, bool graph) {
  if (!*slot) {
    dc_tensor *r = graph ? dc__take(g) : own_grad(g, like);
    if (!r) return dc_last_status();
    *slot = r;
    return DC_OK;
  }
  if (graph || (*slot)->grad_fn) {
    dc_tensor *s = dc_add(*slot, g);
    if (!s) return dc_last_status();
    dc__unref(*slot);
    *slot = dc__take(s);
    return DC_OK;
  }
  return dc__backend((*slot)->device)->ew->axpy(*slot, *slot, 1.0, g);
}

static int collect(dc_node *root, node_vec *order) {
  uint32_t epoch = ++g_epoch;
  node_vec stack = {0};
  int rc = DC_OK;
  root->visit = epoch;
  root->deps = 0;
  if (!vec_push(&stack, root)) return DC_ERR_NOMEM;
  while (stack.n) {
    dc_node *n = stack.v[--stack.n];
    if (n->freed) {
      rc = dc__errs(DC_ERR_STATE,
                    "backward: trying to backward through the graph a second time (node '%s'); "
                    "its saved values were freed by the first backward. Pass .retain_graph = true "
                    "to the first dc_backward if you need to call it twice",
                    dc__op_name(n->op));
      break;
    }
    if (!vec_push(order, n)) {
      rc = DC_ERR_NOMEM;
      break;
    }
    for (int k = 0; k < n->ninputs; k++) {
      dc_node *c = n->inputs[k] ? n->inputs[k]->grad_fn : NULL;
      if (!c) continue;
      if (c->visit != epoch) {
        c->visit = epoch;
        c->deps = 0;
        if (!vec_push(&stack, c)) {
          rc = DC_ERR_NOMEM;
          break;
        }
      }
      c->deps++;
    }
    if (rc) break;
  }
  dc__free(stack.v);
  return rc;
}

static int run_node(dc_node *n, const dc_backward_opts *o, node_vec *ready) {
  int rc = DC_OK;
  dc_tensor *gin_inline[8] = {0};
  dc_tensor **gin = gin_inline;
  if (n->ninputs > 8 && !(gin = dc__calloc((size_t)n->ninputs, sizeof *gin))) return DC_ERR_NOMEM;
  if (n->out && n->out->retains_grad && n->gacc)
    rc = accumulate(&n->out->grad, n->gacc, n->out, o->create_graph);
  if (rc == DC_OK && (rc = dc_scope_begin()) == DC_OK) {
    bool prev = dc_set_grad_enabled(o->create_graph);
    if (n->gacc) /* anomaly mode: the rule runs with its ops unchecked, then gin is checked */
      rc = DC__UNLIKELY(dc__anomaly_on) ? dc__anomaly_backward(n, n->gacc, gin)
                                        : n->op->backward(n, n->gacc, gin);
    dc_set_grad_enabled(prev);
    for (int k = 0; rc == DC_OK && k < n->ninputs; k++) {
      dc_tensor *t = n->inputs[k];
      if (!gin[k] || !t->requires_grad) continue;
      if (!dc_shape_equal(dc_shape_of(gin[k]), dc_shape_of(t))) {
        char a[128], b[128];
        rc = dc__errs(DC_ERR_STATE,
                      "backward of '%s': gradient for input %d has shape %s, input "
                      "has %s (internal error in the op's backward rule)",
                      dc__op_name(n->op), k, dc_shape_str(dc_shape_of(gin[k]), a, sizeof a),
                      dc_shape_str(dc_shape_of(t), b, sizeof b));
        break;
      }
      if (t->grad_fn)
        rc = accumulate(&t->grad_fn->gacc, gin[k], t, true);
      else
        rc = accumulate(&t->grad, gin[k], t, o->create_graph);
    }
    dc_scope_end();
  }
  for (int k = 0; k < n->ninputs; k++) {
    dc_node *c = n->inputs[k] ? n->inputs[k]->grad_fn : NULL;
    if (c && --c->deps == 0 && rc == DC_OK && !vec_push(ready, c)) rc = DC_ERR_NOMEM;
  }
  dc__unref(n->gacc);
  n->gacc = NULL;
  if (!o->retain_graph) {
    n->freed = true;
    for (int k = 0; k < DC_NODE_MAX_SAVED; k++) {
      dc__unref(n->saved[k]);
      n->saved[k] = NULL;
    }
  }
  if (gin != gin_inline) dc__free(gin);
  return rc;
}

static int backward_scoped(dc_tensor *out, dc_backward_opts o);

int dc_backward_opt(dc_tensor *out, dc_backward_opts o) {
  if (!out) return dc__errs(DC_ERR_ARG, "backward: output tensor is NULL");
  if (!out->requires_grad)
    return dc__errs(DC_ERR_ARG, "backward: the output does not require grad and has no grad_fn; "
                                "mark an input with dc_requires_grad_(x, true) before the ops");
  if (dc_scope_begin() != DC_OK) return dc_last_status();
  int rc = backward_scoped(out, o);
  dc_scope_end();
  return rc;
}

static int backward_scoped(dc_tensor *out, dc_backward_opts o) {
  if (o.create_graph) o.retain_graph = true; /* as PyTorch: the new graph refers to the old one */
  dc_tensor *g = o.grad;
  if (!g) {
    if (dc_numel(out) != 1) {
      char b[128];
      return dc__errs(DC_ERR_ARG,
                      "backward: grad can be implicitly created only for one-element "
                      "outputs, this one has shape %s; pass .grad = a tensor of that shape",
                      dc_shape_str(dc_shape_of(out), b, sizeof b));
    }
    g = dc_full_on(dc_shape_of(out), 1.0, out->dtype, out->device);
    if (!g) return dc_last_status();
  } else if (!dc_shape_equal(dc_shape_of(g), dc_shape_of(out))) {
    char a[128], b[128];
    return dc__errs(DC_ERR_ARG, "backward: .grad has shape %s but the output has %s",
                    dc_shape_str(dc_shape_of(g), a, sizeof a),
                    dc_shape_str(dc_shape_of(out), b, sizeof b));
  }
  int rc;
  if (!out->grad_fn) { /* a leaf: its gradient is g itself */
    return accumulate(&out->grad, g, out, o.create_graph);
  }
  node_vec order = {0}, ready = {0};
  rc = collect(out->grad_fn, &order);
  if (rc == DC_OK) {
    dc_node *root = out->grad_fn;
    root->gacc = dc__ref(g);
    if (!vec_push(&ready, root)) rc = DC_ERR_NOMEM;
    while (rc == DC_OK && ready.n) {
      dc_node *n = ready.v[--ready.n];
      rc = run_node(n, &o, &ready);
    }
    if (rc != DC_OK) /* drop partial sums so a later backward starts clean */
      for (size_t k = 0; k < order.n; k++) {
        dc__unref(order.v[k]->gacc);
        order.v[k]->gacc = NULL;
      }
  }
  dc__free(order.v);
  dc__free(ready.v);
  if (rc == DC_ERR_NOMEM && dc_last_status() != DC_ERR_NOMEM)
    dc__errs(DC_ERR_NOMEM, "backward: out of memory");
  return rc;
}
