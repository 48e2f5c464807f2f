/* The exporter's graph builder: nodes with unique names that follow the module tree, their
 * attributes, float32 / int64 initializers, the graph's inputs and outputs with a symbolic
 * batch dimension, metadata, and packing the model into a file. Every message is allocated
 * through dc__onnx_alloc and freed at once with protobuf-c's free_unpacked. */
#include "onnx-impl.h"

#include <deepc/deepc.h>

#include <stdio.h>
#include <string.h>

int dc__onnx_builder_init(dc__onnx_builder *b, const char *graph_name, int opset) {
  *b = (dc__onnx_builder){.opset = opset};
  b->model = DC__ONNX_NEW(Onnx__ModelProto, onnx__model_proto__init);
  if (!b->model) return DC_ERR_NOMEM;
  Onnx__ModelProto *m = b->model;
  m->has_ir_version = true;
  m->ir_version = opset >= 19 ? 9 : 8; /* IR 8 goes with opsets up to 18 */
  m->producer_name = dc__strdup("deepc");
  m->producer_version = dc__strdup(DEEPC_VERSION);
  m->graph = b->graph = DC__ONNX_NEW(Onnx__GraphProto, onnx__graph_proto__init);
  Onnx__OperatorSetIdProto *os =
      DC__ONNX_NEW(Onnx__OperatorSetIdProto, onnx__operator_set_id_proto__init);
  if (os) {
    os->domain = dc__strdup("");
    os->has_version = true;
    os->version = opset;
  }
  bool ok = m->producer_name && m->producer_version && b->graph && os && os->domain &&
            dc__onnx_push((void ***)&m->opset_import, &m->n_opset_import, os);
  if (ok) ok = (b->graph->name = dc__strdup(graph_name)) != NULL;
  if (!ok) {
    if (os && !m->n_opset_import) protobuf_c_message_free_unpacked(&os->base, &dc__onnx_alloc);
    dc__onnx_builder_free(b);
    return DC_ERR_NOMEM;
  }
  return DC_OK;
}

void dc__onnx_builder_free(dc__onnx_builder *b) {
  if (b->model) protobuf_c_message_free_unpacked(&b->model->base, &dc__onnx_alloc);
  *b = (dc__onnx_builder){0};
}

/* Is name already a value of the graph (node output, initializer, input)? */
static bool taken(const Onnx__GraphProto *g, const char *name) {
  for (size_t i = 0; i < g->n_node; i++)
    if (strcmp(g->node[i]->output[0], name) == 0 || strcmp(g->node[i]->name, name) == 0)
      return true;
  for (size_t i = 0; i < g->n_initializer; i++)
    if (strcmp(g->initializer[i]->name, name) == 0) return true;
  for (size_t i = 0; i < g->n_input; i++)
    if (strcmp(g->input[i]->name, name) == 0) return true;
  return false;
}

/* base, or base_1, base_2, ... : the first name not in use, as a new string. */
static char *unique_name(const Onnx__GraphProto *g, const char *base) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", *base ? base : "node");
  for (int k = 1; taken(g, buf) && k < 1000000; k++)
    snprintf(buf, sizeof buf, "%s_%d", *base ? base : "node", k);
  return dc__strdup(buf);
}

Onnx__NodeProto *dc__onnx_node(dc__onnx_builder *b, const char *op, const char *base, int nin,
                               const char *const *inputs) {
  for (int i = 0; i < nin; i++)
    if (!inputs[i]) return NULL; /* an earlier step failed: keep its message */
  Onnx__NodeProto *n = DC__ONNX_NEW(Onnx__NodeProto, onnx__node_proto__init);
  if (!n) return NULL;
  bool ok = (n->op_type = dc__strdup(op)) && (n->name = unique_name(b->graph, base));
  char *out = ok ? dc__strdup(n->name) : NULL;
  ok = ok && dc__onnx_push((void ***)&n->output, &n->n_output, out);
  if (!ok) dc__free(out);
  for (int i = 0; ok && i < nin; i++) {
    char *s = dc__strdup(inputs[i]);
    ok = dc__onnx_push((void ***)&n->input, &n->n_input, s);
    if (!ok) dc__free(s);
  }
  if (!ok || !dc__onnx_push((void ***)&b->graph->node, &b->graph->n_node, n)) {
    protobuf_c_message_free_unpacked(&n->base, &dc__onnx_alloc);
    return dc__err(DC_ERR_NOMEM, "onnx export: out of memory adding node %s", base);
  }
  b->last = n;
  return n;
}

static Onnx__AttributeProto *new_attr(Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
  if (!n) return NULL;
  Onnx__AttributeProto *a = DC__ONNX_NEW(Onnx__AttributeProto, onnx__attribute_proto__init);
  if (!a) return NULL;
  a->has_type = true;
  a->type = type;
  if (!(a->name = dc__strdup(name)) ||
      !dc__onnx_push((void ***)&n->attribute, &n->n_attribute, a)) {
    protobuf_c_message_free_unpacked(&a->base, &dc__onnx_alloc);
    return NULL;
  }
  return a;
}

bool dc__onnx_attr_int(Onnx__NodeProto *n, const char *name, int64_t v) {
  Onnx__AttributeProto *a = new_attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
  if (a) a->has_i = true, a->i = v;
  return a != NULL;
}

bool dc__onnx_attr_float(Onnx__NodeProto *n, const char *name, float v) {
  Onnx__AttributeProto *a = new_attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
  if (a) a->has_f = true, a->f = v;
  return a != NULL;
}

bool dc__onnx_attr_ints(Onnx__NodeProto *n, const char *name, int k, const int64_t *v) {
  Onnx__AttributeProto *a = new_attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
  if (!a) return false;
  if (!(a->ints = dc__malloc(sizeof *v * (size_t)(k > 0 ? k : 1)))) return false;
  memcpy(a->ints, v, sizeof *v * (size_t)k);
  a->n_ints = (size_t)k;
  return true;
}

/* A tensor message named name (unique) of dims with data_type, its raw data of bytes to fill. */
static Onnx__TensorProto *new_init(dc__onnx_builder *b, const char *name, int32_t type,
                                   dc_shape dims, size_t bytes) {
  Onnx__TensorProto *t = DC__ONNX_NEW(Onnx__TensorProto, onnx__tensor_proto__init);
  if (!t) return NULL;
  t->has_data_type = true;
  t->data_type = type;
  t->has_raw_data = true;
  t->dims = dc__malloc(sizeof(int64_t) * (size_t)(dims.ndim ? dims.ndim : 1));
  t->raw_data.data = dc__malloc(bytes ? bytes : 1);
  t->raw_data.len = bytes;
  t->name = unique_name(b->graph, name);
  if (t->dims) {
    t->n_dims = (size_t)dims.ndim;
    memcpy(t->dims, dims.d, sizeof(int64_t) * (size_t)dims.ndim);
  }
  if (!t->dims || !t->raw_data.data || !t->name ||
      !dc__onnx_push((void ***)&b->graph->initializer, &b->graph->n_initializer, t)) {
    protobuf_c_message_free_unpacked(&t->base, &dc__onnx_alloc);
    return dc__err(DC_ERR_NOMEM, "onnx export: out of memory for initializer %s", name);
  }
  return t;
}

const char *dc__onnx_init_tensor(dc__onnx_builder *b, const char *name, dc_tensor *t) {
  if (!t) return NULL;
  dc_tensor *f = dc_to_dtype(dc_to_device(t, DC_CPU), DC_F32); /* scoped by the caller */
  if (!f) return NULL;
  size_t bytes = sizeof(float) * (size_t)dc_numel(f);
  Onnx__TensorProto *p =
      new_init(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, dc_shape_of(f), bytes);
  if (!p || dc_copy_to_buffer(f, p->raw_data.data, bytes) != DC_OK) return NULL;
  return p->name; /* little-endian hosts only (x86-64, aarch64): raw_data is little-endian */
}

const char *dc__onnx_init_i64(dc__onnx_builder *b, const char *name, int k, const int64_t *v) {
  Onnx__TensorProto *p = new_init(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, DC_SHAPE(k),
                                  sizeof(int64_t) * (size_t)k);
  if (!p) return NULL;
  memcpy(p->raw_data.data, v, sizeof(int64_t) * (size_t)k);
  return p->name;
}

const char *dc__onnx_init_fill(dc__onnx_builder *b, const char *name, dc_shape dims, float v) {
  int64_t n = 1;
  for (int i = 0; i < dims.ndim; i++) n *= dims.d[i];
  Onnx__TensorProto *p =
      new_init(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, dims, sizeof(float) * (size_t)n);
  if (!p) return NULL;
  for (int64_t i = 0; i < n; i++) ((float *)p->raw_data.data)[i] = v;
  return p->name;
}

/* A tensor type float32 [batch, one...]; each part is linked as soon as it is made, so one
 * free_unpacked of the root frees what was made. */
static Onnx__TypeProto *io_type(dc_shape one) {
  Onnx__TypeProto *tp = DC__ONNX_NEW(Onnx__TypeProto, onnx__type_proto__init);
  if (!tp) return NULL;
  Onnx__TypeProto__Tensor *tt =
      DC__ONNX_NEW(Onnx__TypeProto__Tensor, onnx__type_proto__tensor__init);
  if (tt) tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, tp->tensor_type = tt;
  Onnx__TensorShapeProto *sh =
      tt ? DC__ONNX_NEW(Onnx__TensorShapeProto, onnx__tensor_shape_proto__init) : NULL;
  if (sh) tt->has_elem_type = true, tt->elem_type = 1, tt->shape = sh;
  bool ok = sh != NULL;
  for (int i = -1; ok && i < one.ndim; i++) {
    Onnx__TensorShapeProto__Dimension *d =
        DC__ONNX_NEW(Onnx__TensorShapeProto__Dimension, onnx__tensor_shape_proto__dimension__init);
    ok = dc__onnx_push((void ***)&sh->dim, &sh->n_dim, d);
    if (!ok) {
      dc__free(d);
    } else if (i < 0) {
      ok = (d->dim_param = dc__strdup("batch")) != NULL;
      if (ok) d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    } else {
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      d->dim_value = one.d[i];
    }
  }
  if (!ok) {
    protobuf_c_message_free_unpacked(&tp->base, &dc__onnx_alloc);
    return NULL;
  }
  return tp;
}

bool dc__onnx_io(dc__onnx_builder *b, bool output, const char *name, dc_shape one) {
  Onnx__ValueInfoProto *v = DC__ONNX_NEW(Onnx__ValueInfoProto, onnx__value_info_proto__init);
  if (!v) return false;
  v->name = dc__strdup(name);
  v->type = io_type(one);
  Onnx__GraphProto *g = b->graph;
  if (!v->name || !v->type ||
      !(output ? dc__onnx_push((void ***)&g->output, &g->n_output, v)
               : dc__onnx_push((void ***)&g->input, &g->n_input, v))) {
    protobuf_c_message_free_unpacked(&v->base, &dc__onnx_alloc);
    dc__err(DC_ERR_NOMEM, "onnx export: out of memory for the graph's %s",
            output ? "output" : "input");
    return false;
  }
  return true;
}

bool dc__onnx_meta(dc__onnx_builder *b, const char *key, const char *value) {
  Onnx__StringStringEntryProto *e =
      DC__ONNX_NEW(Onnx__StringStringEntryProto, onnx__string_string_entry_proto__init);
  if (!e) return false;
  e->key = dc__strdup(key);
  e->value = dc__strdup(value);
  Onnx__ModelProto *m = b->model;
  if (!e->key || !e->value ||
      !dc__onnx_push((void ***)&m->metadata_props, &m->n_metadata_props, e)) {
    protobuf_c_message_free_unpacked(&e->base, &dc__onnx_alloc);
    return false;
  }
  return true;
}

int dc__onnx_builder_write(dc__onnx_builder *b, const char *path) {
  size_t n = onnx__model_proto__get_packed_size(b->model);
  if (n > DC__ONNX_MAX_BYTES)
    return dc__errs(DC_ERR_UNSUPPORTED,
                    "onnx export: the model needs %zu bytes, over protobuf's 2 GiB limit "
                    "(external data is not written)",
                    n);
  uint8_t *buf = dc__malloc(n ? n : 1);
  if (!buf) return DC_ERR_NOMEM;
  size_t k = onnx__model_proto__pack(b->model, buf);
  int rc = k == n ? dc__onnx_write_file(path, buf, n)
                  : dc__errs(DC_ERR_STATE, "onnx export: packed %zu of %zu bytes", k, n);
  dc__free(buf);
  return rc;
}
