/* Graph export: writes the graph that produced a tensor as Graphviz DOT (op nodes as boxes,
 * tensor nodes with name, shape, dtype and optionally values and .grad). Rendering is left to
 * Graphviz's `dot` program; the output depends only on the graph, never on pointer values. */
#include "autograd-impl.h"

#include <math.h>
#include <string.h>

#define DOT_MAX_VALUES 16 /* tensors with at most this many elements show their values */

/* An open-addressing map from a pointer (tensor or node) to its index in the export order. */
typedef struct ptr_map {
  const void **keys;
  int32_t *vals;
  size_t cap; /* power of two */
  size_t n;
} ptr_map;

static size_t ptr_hash(const void *p, size_t cap) {
  uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 17) & (cap - 1);
}

static bool map_grow(ptr_map *m) {
  size_t cap = m->cap ? m->cap * 2 : 64;
  const void **keys = dc__calloc(cap, sizeof *keys);
  int32_t *vals = dc__calloc(cap, sizeof *vals);
  if (!keys || !vals) {
    dc__free(keys);
    dc__free(vals);
    return false;
  }
  for (size_t k = 0; k < m->cap; k++) {
    if (!m->keys[k]) continue;
    size_t h = ptr_hash(m->keys[k], cap);
    while (keys[h]) h = (h + 1) & (cap - 1);
    keys[h] = m->keys[k];
    vals[h] = m->vals[k];
  }
  dc__free(m->keys);
  dc__free(m->vals);
  m->keys = keys;
  m->vals = vals;
  m->cap = cap;
  return true;
}

/* Index of p, or -1 when absent. */
static int32_t map_get(const ptr_map *m, const void *p) {
  if (!m->cap) return -1;
  for (size_t h = ptr_hash(p, m->cap);; h = (h + 1) & (m->cap - 1)) {
    if (!m->keys[h]) return -1;
    if (m->keys[h] == p) return m->vals[h];
  }
}

static bool map_put(ptr_map *m, const void *p, int32_t v) {
  if ((m->n + 1) * 2 > m->cap && !map_grow(m)) return false;
  size_t h = ptr_hash(p, m->cap);
  while (m->keys[h]) h = (h + 1) & (m->cap - 1);
  m->keys[h] = p;
  m->vals[h] = v;
  m->n++;
  return true;
}

static void map_free(ptr_map *m) {
  dc__free(m->keys);
  dc__free(m->vals);
}

/* The graph in export order: tensors and op nodes by breadth-first discovery from `out`. */
typedef struct dot_op {
  dc_node *node;
  int32_t out; /* index of the tensor the node produced */
} dot_op;

typedef struct dot_graph {
  dc_tensor **tensors; /* [nt] */
  size_t nt, capt;
  dot_op *ops; /* [nn] */
  size_t nn, capn;
  ptr_map tmap, nmap;
} dot_graph;

/* arr with room for n + 1 elements of elem bytes (arr itself when it has room), or NULL. */
static void *reserve(void *arr, size_t *cap, size_t n, size_t elem) {
  if (n < *cap) return arr;
  size_t c = *cap ? *cap * 2 : 32;
  void *q = dc__realloc(arr, *cap * elem, c * elem);
  if (q) *cap = c;
  return q;
}

static int32_t add_tensor(dot_graph *g, dc_tensor *t) {
  int32_t id = map_get(&g->tmap, t);
  if (id >= 0) return id;
  dc_tensor **v = reserve(g->tensors, &g->capt, g->nt, sizeof *v);
  if (!v) return -1;
  g->tensors = v;
  id = (int32_t)g->nt;
  if (!map_put(&g->tmap, t, id)) return -1;
  g->tensors[g->nt++] = t;
  return id;
}

static bool add_op(dot_graph *g, dc_node *n, int32_t out) {
  dot_op *v = reserve(g->ops, &g->capn, g->nn, sizeof *v);
  if (!v) return false;
  g->ops = v;
  if (!map_put(&g->nmap, n, (int32_t)g->nn)) return false;
  g->ops[g->nn++] = (dot_op){n, out};
  return true;
}

/* Breadth-first: tensors[k] is visited in order; its grad_fn and that node's inputs are added. */
static bool collect(dot_graph *g, dc_tensor *out) {
  if (add_tensor(g, out) < 0) return false;
  for (size_t k = 0; k < g->nt; k++) {
    dc_node *n = g->tensors[k]->grad_fn;
    if (!n || map_get(&g->nmap, n) >= 0) continue;
    if (!add_op(g, n, (int32_t)k)) return false;
    for (int i = 0; i < n->ninputs; i++)
      if (n->inputs[i] && add_tensor(g, n->inputs[i]) < 0) return false;
  }
  return true;
}

/* Writes s as the inside of a DOT string: quotes and backslashes escaped, control chars dropped. */
static void put_escaped(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', f);
    if ((unsigned char)*s >= 0x20) fputc(*s, f);
  }
}

static void put_number(FILE *f, double v) {
  if (isnan(v))
    fputs("nan", f);
  else if (isinf(v))
    fputs(v > 0 ? "inf" : "-inf", f);
  else
    fprintf(f, "%.6g", v);
}

/* Values of a small tensor: "0.5" for one element, "[1, 2, 3]" (row-major) otherwise, one line
 * per row of the last dim when there are several rows (on a device: explicit host reads). */
static void put_values(FILE *f, const char *what, const dc_tensor *t) {
  int64_t n = dc_numel(t);
  fprintf(f, "\\n%s ", what);
  if (n > DOT_MAX_VALUES) {
    fprintf(f, "(%lld elements)", (long long)n);
    return;
  }
  int64_t row = t->ndim > 0 ? t->shape[t->ndim - 1] : 1;
  if (t->ndim > 0) fputc('[', f);
  for (int64_t k = 0; k < n; k++) {
    if (k) fputs(k % row == 0 ? ",\\n" : ", ", f);
    put_number(f, dc_item_at(t, k));
  }
  if (t->ndim > 0) fputc(']', f);
}

static void put_tensor(FILE *f, int32_t id, const dc_tensor *t, bool is_out, dc_dot_opts o) {
  char shape[160];
  dc_shape_str(dc_shape_of(t), shape, sizeof shape);
  fprintf(f, "  t%d [label=\"", (int)id);
  if (t->name && t->name[0]) {
    put_escaped(f, t->name);
    fputs("\\n", f);
  }
  fprintf(f, "%s %s", shape, dc_dtype_name(t->dtype));
  if (o.values) put_values(f, "value", t);
  if (o.grads && t->grad) put_values(f, "grad", t->grad);
  fputs("\"", f);
  if (!t->grad_fn && t->requires_grad)
    fputs(", style=filled, fillcolor=\"#cfe2f3\"", f);
  else if (!t->requires_grad)
    fputs(", style=dashed", f);
  if (is_out) fputs(", peripheries=2", f);
  fputs("];\n", f);
}

static void write_graph(FILE *f, const dot_graph *g, dc_dot_opts o) {
  fputs("digraph deepc {\n"
        "  rankdir=LR;\n"
        "  node [fontname=\"Helvetica\", fontsize=10, shape=ellipse];\n"
        "  edge [fontname=\"Helvetica\", fontsize=8];\n",
        f);
  for (size_t k = 0; k < g->nt; k++) put_tensor(f, (int32_t)k, g->tensors[k], k == 0, o);
  for (size_t k = 0; k < g->nn; k++) {
    fprintf(f, "  op%zu [label=\"", k);
    put_escaped(f, dc__op_name(g->ops[k].node->op));
    fputs("\", shape=box, style=filled, fillcolor=\"#eeeeee\"];\n", f);
  }
  /* edges: each op's inputs (numbered when the op has several, as order matters for sub, div,
   * pow...), then the op to its output tensor */
  for (size_t k = 0; k < g->nn; k++) {
    const dc_node *n = g->ops[k].node;
    for (int i = 0; i < n->ninputs; i++) {
      if (!n->inputs[i]) continue;
      fprintf(f, "  t%d -> op%zu", (int)map_get(&g->tmap, n->inputs[i]), k);
      if (n->ninputs > 1) fprintf(f, " [label=\"%d\"]", i);
      fputs(";\n", f);
    }
    fprintf(f, "  op%zu -> t%d;\n", k, (int)g->ops[k].out);
  }
  fputs("}\n", f);
}

int dc_graph_dot(FILE *f, dc_tensor *out, dc_dot_opts opts) {
  if (!f)
    return dc__errs(DC_ERR_ARG, "graph_dot: FILE is NULL; pass an open stream (stdout, or "
                                "one from fopen(path, \"w\"))");
  if (!out) return dc__errs(DC_ERR_ARG, "graph_dot: tensor is NULL (an earlier op failed?)");
  dot_graph g = {0};
  int rc = DC_OK;
  if (!collect(&g, out))
    rc = dc__errs(DC_ERR_NOMEM, "graph_dot: out of memory walking the graph");
  else {
    write_graph(f, &g, opts);
    if (fflush(f) != 0 || ferror(f))
      rc = dc__errs(DC_ERR_IO, "graph_dot: writing the DOT text failed (disk full or closed "
                               "stream?)");
  }
  dc__free(g.tensors);
  dc__free(g.ops);
  map_free(&g.tmap);
  map_free(&g.nmap);
  return rc;
}
