/* ONNX import (dc_onnx_load): the file read and unpacked by protobuf-c, then checked before use:
 * opset, counts of nodes and initializers, names, one graph input and output, every node's op
 * (an unknown op is an error naming the node and the op), its input count and attributes, and
 * the order (each input made before it is read, each value made once: no cycles). The result is
 * an OnnxGraph module (onnx_module.c). */
#include "onnx-impl.h"

#include "../nn/nn-impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ---- value names: an open-addressing table name -> value index ---- */
typedef struct vmap {
  int cap, n;
  int *slot;         /* [cap] value index + 1; 0 empty */
  dc__onnx_graph *g; /* names[], consts[] grow with it */
  int max;           /* capacity of names / consts */
} vmap;

static uint64_t hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static int vfind(const vmap *v, const char *name) {
  for (uint64_t i = hash(name) & (uint64_t)(v->cap - 1);; i = (i + 1) & (uint64_t)(v->cap - 1)) {
    int k = v->slot[i];
    if (!k) return -1;
    if (!strcmp(v->g->names[k - 1], name)) return k - 1;
  }
}

/* A new value name -> its index; -1 + error when it exists (or no memory). */
static int vadd(vmap *v, const char *name, const char *file, const char *what) {
  if (vfind(v, name) >= 0)
    return dc__errs(DC_ERR_FORMAT, "%s: %s '%.200s' is defined twice (a graph value is made once)",
                    file, what, name),
           -1;
  if (v->n >= v->max) return dc__errs(DC_ERR_STATE, "%s: value table full", file), -1;
  char *s = dc__strdup(name);
  if (!s) return -1;
  v->g->names[v->n] = s;
  uint64_t i = hash(name) & (uint64_t)(v->cap - 1);
  while (v->slot[i]) i = (i + 1) & (uint64_t)(v->cap - 1);
  v->slot[i] = ++v->n;
  return v->n - 1;
}

/* ---- checks of the model ---- */
typedef struct ictx {
  const char *file;
  char dir[4096];
  const Onnx__ModelProto *mp;
  const Onnx__GraphProto *gp;
  int opset;
  dc_module *m;
  dc__onnx_graph *g;
  vmap v;
} ictx;

static bool name_ok(const char *s) { return s && strlen(s) < DC__ONNX_MAX_NAME; }

static int check_model(ictx *c) {
  const Onnx__ModelProto *mp = c->mp;
  if (!mp->graph) return dc__errs(DC_ERR_FORMAT, "%s: the model has no graph", c->file);
  c->gp = mp->graph;
  c->opset = -1;
  for (size_t i = 0; i < mp->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
    if (!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx")) c->opset = (int)o->version;
  }
  if (c->opset < 7 || c->opset > 22)
    return dc__errs(DC_ERR_UNSUPPORTED,
                    "%s: opset_import: default-domain opset %d is not supported (7 to 22)", c->file,
                    c->opset);
  const Onnx__GraphProto *g = c->gp;
  if (g->n_node > DC__ONNX_MAX_NODES || g->n_initializer > DC__ONNX_MAX_INITS)
    return dc__errs(DC_ERR_FORMAT,
                    "%s: graph: %zu nodes and %zu initializers; deepc reads at most %d of each",
                    c->file, g->n_node, g->n_initializer, DC__ONNX_MAX_NODES);
  if (g->n_output != 1)
    return dc__errs(DC_ERR_UNSUPPORTED, "%s: graph.output: %zu outputs; deepc models have one",
                    c->file, g->n_output);
  if (g->n_sparse_initializer)
    return dc__errs(DC_ERR_UNSUPPORTED, "%s: graph.sparse_initializer is not supported", c->file);
  return DC_OK;
}

/* Is initializer i read as a batch norm's running mean / variance (a buffer, not trained)? */
static bool is_running_stat(const Onnx__GraphProto *g, const char *name) {
  for (size_t k = 0; k < g->n_node; k++) {
    const Onnx__NodeProto *n = g->node[k];
    if (!n->op_type || strcmp(n->op_type, "BatchNormalization") || n->n_input < 5) continue;
    if (!strcmp(n->input[3], name) || !strcmp(n->input[4], name)) return true;
  }
  return false;
}

/* The module's name for a value: '.' -> '_' (module names have no dots), made unique. */
static void param_name(const dc_module *m, const char *name, char *buf, size_t n) {
  snprintf(buf, n, "%s", *name ? name : "_");
  for (char *p = buf; *p; p++)
    if (*p == '.') *p = '_';
  size_t len = strlen(buf);
  for (int k = 1; (dc__own_param(m, buf) || dc__own_buffer(m, buf)) && k < 1000000; k++)
    snprintf(buf + len, n - len, "_%d", k);
}

/* A tensor read from the file as the value `name`: a parameter (float, trained) or buffer. */
static int add_const(ictx *c, const char *name, dc_tensor *t, bool buffer) {
  if (!t) return dc_last_status() ? dc_last_status() : DC_ERR_NOMEM;
  int k = vadd(&c->v, name, c->file, "initializer");
  if (k < 0) return dc_free(t), dc_last_status();
  char pn[DC__ONNX_MAX_NAME + 16];
  param_name(c->m, name, pn, sizeof pn);
  bool buf = buffer || t->dtype != DC_F32;
  dc_tensor *r =
      buf ? dc_module_add_buffer(c->m, pn, t, buffer) : dc_module_add_parameter(c->m, pn, t);
  if (!r) return dc_last_status() ? dc_last_status() : DC_ERR_NOMEM;
  c->g->consts[k] = r;
  return DC_OK;
}

static int read_initializers(ictx *c) {
  const Onnx__GraphProto *g = c->gp;
  for (size_t i = 0; i < g->n_initializer; i++) {
    const Onnx__TensorProto *t = g->initializer[i];
    if (!name_ok(t->name) || !*t->name)
      return dc__errs(DC_ERR_FORMAT, "%s: graph.initializer[%zu]: missing or over-long name",
                      c->file, i);
    int rc =
        add_const(c, t->name, dc__onnx_tensor(t, c->file, c->dir), is_running_stat(g, t->name));
    if (rc != DC_OK) return rc;
  }
  return DC_OK;
}

/* The one graph input that is not an initializer: float, its sizes after the batch kept. */
static int read_input(ictx *c) {
  const Onnx__GraphProto *g = c->gp;
  const Onnx__ValueInfoProto *in = NULL;
  int count = 0;
  for (size_t i = 0; i < g->n_input; i++) {
    if (!name_ok(g->input[i]->name))
      return dc__errs(DC_ERR_FORMAT, "%s: graph.input[%zu]: bad name", c->file, i);
    if (vfind(&c->v, g->input[i]->name) < 0) in = g->input[i], count++;
  }
  if (count != 1)
    return dc__errs(DC_ERR_UNSUPPORTED,
                    "%s: graph.input: %d inputs besides the initializers; deepc models take one",
                    c->file, count);
  const Onnx__TypeProto *tp = in->type;
  const Onnx__TypeProto__Tensor *tt =
      tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ? tp->tensor_type : NULL;
  if (!tt || (tt->has_elem_type && tt->elem_type != 1))
    return dc__errs(DC_ERR_UNSUPPORTED, "%s: graph.input '%s': not a float32 tensor", c->file,
                    in->name);
  const Onnx__TensorShapeProto *sh = tt->shape;
  if (sh && sh->n_dim >= 2 && sh->n_dim <= DC_MAX_DIMS) {
    dc_shape one = {.ndim = (int)sh->n_dim - 1};
    for (size_t i = 1; i < sh->n_dim && one.ndim; i++) {
      const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
      bool fixed = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                   d->dim_value > 0 && d->dim_value < (1 << 24);
      if (fixed)
        one.d[i - 1] = d->dim_value;
      else
        one = (dc_shape){0};
    }
    c->g->input_one = one;
  }
  c->g->input = vadd(&c->v, in->name, c->file, "graph input");
  return c->g->input < 0 ? dc_last_status() : DC_OK;
}

/* A Constant node: its value becomes a buffer, no node runs. */
static int read_constant(ictx *c, const Onnx__NodeProto *n, const char *nm) {
  const Onnx__AttributeProto *a = n->n_attribute == 1 ? n->attribute[0] : NULL;
  if (!a || !a->name || strcmp(a->name, "value") || !a->t)
    return dc__errs(DC_ERR_UNSUPPORTED,
                    "%s: node %s (Constant): only a 'value' tensor attribute is supported", c->file,
                    nm);
  return add_const(c, n->output[0], dc__onnx_tensor(a->t, c->file, c->dir), true);
}

/* Input k of node n as a value index (-1: an optional input left out). */
static int node_input(ictx *c, const Onnx__NodeProto *n, size_t k, const char *nm, int *out) {
  const char *s = n->input[k];
  if (!name_ok(s)) return dc__errs(DC_ERR_FORMAT, "%s: node %s: bad input name", c->file, nm);
  *out = *s ? vfind(&c->v, s) : -1;
  if (*s && *out < 0)
    return dc__errs(DC_ERR_FORMAT,
                    "%s: node %s reads '%.200s' before any node makes it (the graph has a cycle, "
                    "is not sorted, or the value does not exist)",
                    c->file, nm, s);
  return DC_OK;
}

static int read_node(ictx *c, size_t idx) {
  const Onnx__NodeProto *n = c->gp->node[idx];
  char nm[300];
  snprintf(nm, sizeof nm, "%.200s", n->name && *n->name ? n->name : "");
  if (!*nm) snprintf(nm, sizeof nm, "#%zu (%.64s)", idx, n->op_type ? n->op_type : "?");
  if (!n->op_type || !name_ok(n->op_type) || n->n_output < 1 || !name_ok(n->output[0]) ||
      !*n->output[0])
    return dc__errs(DC_ERR_FORMAT, "%s: node %s: missing op_type or output", c->file, nm);
  if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx"))
    return dc__errs(DC_ERR_UNSUPPORTED, "%s: node %s: op %.64s of domain '%.64s' is not supported",
                    c->file, nm, n->op_type, n->domain);
  if (!strcmp(n->op_type, "Constant")) return read_constant(c, n, nm);
  int lo, hi, op = dc__onnx_op_find(n->op_type, &lo, &hi);
  if (op < 0)
    return dc__errs(DC_ERR_UNSUPPORTED,
                    "%s: node %s: op '%.64s' is not supported by deepc's ONNX import "
                    "(docs/onnx.md lists the ops)",
                    c->file, nm, n->op_type);
  if (n->n_input < (size_t)lo || n->n_input > (size_t)hi)
    return dc__errs(DC_ERR_FORMAT, "%s: node %s (%s): %zu inputs; it takes %d to %d", c->file, nm,
                    n->op_type, n->n_input, lo, hi);
  dc__onnx_gnode *g = &c->g->nodes[c->g->nnodes];
  *g = (dc__onnx_gnode){.op = (dc__onnx_op)op, .nin = (int)n->n_input};
  if (!(g->name = dc__strdup(nm))) return DC_ERR_NOMEM;
  c->g->nnodes++;
  for (size_t k = 0; k < n->n_input; k++) {
    int rc = node_input(c, n, k, nm, &g->in[k]);
    if (rc != DC_OK) return rc;
    if ((int)k < lo && g->in[k] < 0)
      return dc__errs(DC_ERR_FORMAT, "%s: node %s (%s): input %zu is required but empty", c->file,
                      nm, n->op_type, k);
  }
  int rc = dc__onnx_node_attrs(g, n, c->opset, c->g->consts, c->file);
  if (rc != DC_OK) return rc;
  g->out = vadd(&c->v, n->output[0], c->file, "node output");
  return g->out < 0 ? dc_last_status() : DC_OK;
}

/* Allocates the value table for every name the graph can define. */
static int alloc_tables(ictx *c) {
  const Onnx__GraphProto *g = c->gp;
  size_t max = g->n_initializer + g->n_input + g->n_node + 1;
  int cap = 16;
  while ((size_t)cap < 2 * max) cap *= 2;
  c->g->names = dc__calloc(max, sizeof *c->g->names);
  c->g->consts = dc__calloc(max, sizeof *c->g->consts);
  c->g->nodes = dc__calloc(g->n_node + 1, sizeof *c->g->nodes);
  c->v =
      (vmap){.cap = cap, .slot = dc__calloc((size_t)cap, sizeof(int)), .g = c->g, .max = (int)max};
  return c->g->names && c->g->consts && c->g->nodes && c->v.slot ? DC_OK : DC_ERR_NOMEM;
}

static int build(ictx *c) {
  int rc = check_model(c);
  if (rc == DC_OK) rc = alloc_tables(c);
  if (rc == DC_OK) rc = read_initializers(c);
  if (rc == DC_OK) rc = read_input(c);
  for (size_t i = 0; rc == DC_OK && i < c->gp->n_node; i++) rc = read_node(c, i);
  c->g->nvalues = c->v.n;
  if (rc != DC_OK) return rc;
  const char *out = c->gp->output[0]->name;
  c->g->output = name_ok(out) ? vfind(&c->v, out) : -1;
  if (c->g->output < 0)
    return dc__errs(DC_ERR_FORMAT, "%s: graph.output '%.200s' is made by no node", c->file,
                    out ? out : "(null)");
  return DC_OK;
}

dc_module *dc_onnx_load_buffer(const void *data, size_t size, const char *what) {
  if (!data && size) return dc__err(DC_ERR_ARG, "dc_onnx_load_buffer: NULL data");
  ictx c = {.file = what ? what : "(buffer)"};
  snprintf(c.dir, sizeof c.dir, ".");
  const char *slash = what ? strrchr(what, '/') : NULL;
  if (slash) snprintf(c.dir, sizeof c.dir, "%.*s", (int)(slash - what), what);
  if (slash == what) snprintf(c.dir, sizeof c.dir, "/");
  if (size > DC__ONNX_MAX_BYTES)
    return dc__err(DC_ERR_FORMAT, "%s: %zu bytes, over protobuf's 2 GiB limit", c.file, size);
  Onnx__ModelProto *mp = dc__onnx_unpack(data, size, c.file);
  if (!mp) return NULL;
  c.mp = mp;
  c.m = dc_module_new(&dc__type_onnx_graph, sizeof(dc__onnx_graph));
  c.g = c.m ? c.m->state : NULL;
  int rc = c.m && (c.g->file = dc__strdup(c.file)) ? build(&c) : DC_ERR_NOMEM;
  dc__free(c.v.slot);
  protobuf_c_message_free_unpacked(&mp->base, &dc__onnx_alloc);
  if (rc != DC_OK) {
    dc_module_free(c.m);
    return NULL;
  }
  return c.m;
}

dc_module *dc_onnx_load(const char *path) {
  if (!path) return dc__err(DC_ERR_ARG, "dc_onnx_load: NULL path");
  FILE *f = fopen(path, "rb");
  if (!f) return dc__err(DC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  off_t n = fseeko(f, 0, SEEK_END) == 0 ? ftello(f) : -1;
  if (n < 0 || (uint64_t)n > DC__ONNX_MAX_BYTES || fseeko(f, 0, SEEK_SET) != 0) {
    fclose(f);
    return dc__err(DC_ERR_FORMAT, "%s: unreadable, or over protobuf's 2 GiB limit", path);
  }
  uint8_t *buf = dc__malloc((size_t)n ? (size_t)n : 1);
  bool ok = buf && fread(buf, 1, (size_t)n, f) == (size_t)n;
  fclose(f);
  dc_module *m = ok ? dc_onnx_load_buffer(buf, (size_t)n, path)
                    : dc__err(buf ? DC_ERR_IO : DC_ERR_NOMEM, "%s: read failed", path);
  dc__free(buf);
  return m;
}
