/* The module an imported ONNX graph becomes ("OnnxGraph"): its initializers are the module's
 * parameters and buffers, its forward runs the nodes in their (checked) topological order on
 * deepc ops, so it trains like any module. Reading the file is onnx_import.c. */
#include "onnx-impl.h"

#include "../nn/nn-impl.h"

#include <math.h>
#include <stdio.h>

void dc__onnx_graph_free(void *state) {
  dc__onnx_graph *g = state;
  for (int i = 0; g->names && i < g->nvalues; i++) dc__free(g->names[i]);
  for (int i = 0; g->nodes && i < g->nnodes; i++) dc__free(g->nodes[i].name);
  dc__free(g->names);
  dc__free(g->consts);
  dc__free(g->nodes);
  dc__free(g->file);
}

/* x [N, ...] -> the graph's output; intermediate values are freed once the last node ran (the
 * autograd graph holds what backward needs). */
static dc_tensor *graph_forward(dc_module *m, dc_tensor *x) {
  const dc__onnx_graph *g = m->state;
  dc_tensor **v = dc__calloc((size_t)g->nvalues, sizeof *v);
  if (!v) return NULL;
  for (int i = 0; i < g->nvalues; i++) v[i] = g->consts[i];
  v[g->input] = x;
  dc_tensor *in[DC__ONNX_MAX_INPUTS];
  bool ok = true;
  for (int k = 0; k < g->nnodes && ok; k++) {
    const dc__onnx_gnode *n = &g->nodes[k];
    for (int i = 0; i < n->nin; i++) in[i] = n->in[i] >= 0 ? v[n->in[i]] : NULL;
    ok = (v[n->out] = dc__onnx_run_node(n, in, m->training)) != NULL;
    if (!ok) {
      char msg[2048];
      snprintf(msg, sizeof msg, "%s", dc_last_error());
      dc__err(dc_last_status() ? dc_last_status() : DC_ERR_ARG, "%s: %s", g->file, msg);
    }
  }
  dc_tensor *y = ok ? v[g->output] : NULL;
  if (y == x) y = dc_reshape(x, dc_shape_of(x));
  for (int i = 0; i < g->nvalues; i++)
    if (v[i] && v[i] != x && v[i] != y && !g->consts[i]) dc_free(v[i]);
  dc__free(v);
  return y;
}

static void graph_repr(const dc_module *m, char *buf, size_t n) {
  const dc__onnx_graph *g = m->state;
  snprintf(buf, n, "file='%s', nodes=%d", g->file, g->nnodes);
}

const dc_module_type dc__type_onnx_graph = {.name = "OnnxGraph",
                                            .forward = graph_forward,
                                            .extra_repr = graph_repr,
                                            .free_state = dc__onnx_graph_free};

dc_shape dc_onnx_input_shape(const dc_module *m) {
  if (!m || m->type != &dc__type_onnx_graph) return (dc_shape){0};
  return ((const dc__onnx_graph *)m->state)->input_one;
}

/* The last Gemm of the graph whose weight is a parameter: the classification head. */
static int head_node(const dc__onnx_graph *g) {
  for (int k = g->nnodes - 1; k >= 0; k--) {
    const dc__onnx_gnode *n = &g->nodes[k];
    dc_tensor *w = n->op == DC__ONNX_GEMM ? g->consts[n->in[1]] : NULL;
    if (w && w->ndim == 2 && w->requires_grad && !n->trans_a) return k;
  }
  return -1;
}

/* Puts t in place of the module's parameter old (same entry, same name); false on failure. */
static bool swap_param(dc_module *m, dc_tensor *old, dc_tensor *t) {
  for (int i = 0; i < m->params.n; i++)
    if (m->params.items[i].ptr == old) {
      t->requires_grad = true;
      m->params.items[i].ptr = t;
      dc__unref(old);
      return true;
    }
  return false;
}

int dc_onnx_replace_head(dc_module *m, int64_t num_classes) {
  if (!m || m->type != &dc__type_onnx_graph || num_classes < 1)
    return dc__errs(DC_ERR_ARG, "onnx replace_head: needs an OnnxGraph and num_classes >= 1");
  dc__onnx_graph *g = m->state;
  int k = head_node(g);
  if (k < 0)
    return dc__errs(DC_ERR_UNSUPPORTED,
                    "%s: no Gemm node with a weight initializer to act as "
                    "the head",
                    g->file);
  dc__onnx_gnode *n = &g->nodes[k];
  dc_tensor *w = g->consts[n->in[1]];
  dc_tensor *b = n->nin > 2 && n->in[2] >= 0 ? g->consts[n->in[2]] : NULL;
  int64_t f = n->trans_b ? w->shape[1] : w->shape[0];
  dc_tensor *nw =
      dc__nn_tensor(n->trans_b ? DC_SHAPE(num_classes, f) : DC_SHAPE(f, num_classes), DC_F32);
  dc_tensor *nb = b ? dc__nn_tensor(DC_SHAPE(num_classes), DC_F32) : NULL;
  int rc = nw && (!b || nb) ? dc__init_default_weight_bias(nw, nb) : DC_ERR_NOMEM;
  if (rc == DC_OK && n->trans_b == 0)
    rc = dc_init_kaiming_uniform_(nw, sqrt(5.0), DC_FAN_OUT, "leaky_relu");
  if (rc != DC_OK || !swap_param(m, w, nw) || (b && !swap_param(m, b, nb))) {
    dc__unref(nw), dc__unref(nb);
    return rc != DC_OK ? rc : dc__errs(DC_ERR_STATE, "%s: the head's weights are shared", g->file);
  }
  g->consts[n->in[1]] = nw;
  if (b) g->consts[n->in[2]] = nb;
  return DC_OK;
}
