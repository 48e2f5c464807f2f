/* ONNX export (dc_onnx_export): walks the module tree in forward order, the containers here
 * (Sequential, torchvision's ResNet with its BasicBlock/Bottleneck residual joins, VGG) and the
 * leaves through onnx_emit.c, running each leaf's forward on an example batch of one so that
 * every emitter knows its input's rank and sizes, then writes the model (onnx_graph.c).
 * Shapes: N batch, C channels, H/W height/width, K outputs. */
#include "onnx-impl.h"

#include "../nn/nn-impl.h"

#include <stdio.h>
#include <string.h>

/* A value of the graph being built: its name there and an example tensor (batch of one). */
typedef struct value {
  const char *name;
  dc_tensor *t; /* scoped in the export's scope */
} value;

static value walk(dc__onnx_builder *b, dc_module *m, const char *path, value x);

static char *child_path(char *buf, size_t n, const char *path, const char *leaf) {
  snprintf(buf, n, "%s%s%s", path, *path ? "." : "", leaf);
  return buf;
}

static value fail(void) { return (value){NULL, NULL}; }

/* The child called name of m, run on x (x itself when m has no such child and optional). */
static value run_child(dc__onnx_builder *b, dc_module *m, const char *path, const char *name,
                       value x, bool optional) {
  dc_module *c = dc_module_child(m, name);
  if (!c) {
    if (optional) return x;
    dc__err(DC_ERR_ARG, "onnx export: %s (%s) has no child '%s'", *path ? path : "the model",
            m->type->name, name);
    return fail();
  }
  char p[1024];
  return walk(b, c, child_path(p, sizeof p, path, name), x);
}

/* A node op over the values a and b (b.name NULL: unary) whose example output is t. */
static value node2(dc__onnx_builder *b, const char *op, const char *name, value x, value y,
                   dc_tensor *t) {
  if (!t) return fail();
  const char *in[2] = {x.name, y.name};
  Onnx__NodeProto *n = dc__onnx_node(b, op, name, y.name ? 2 : 1, in);
  return n ? (value){dc__onnx_out(n), t} : fail();
}

static value flatten1(dc__onnx_builder *b, const char *path, value x) {
  char p[1024];
  value y = node2(b, "Flatten", child_path(p, sizeof p, path, "flatten"), x, (value){0},
                  x.t ? dc_flatten(x.t, 1, -1) : NULL);
  if (y.name && !dc__onnx_attr_int(b->last, "axis", 1)) return fail();
  return y;
}

/* BasicBlock / Bottleneck: relu(bn_k(conv_k(... relu(bn1(conv1(x))))) + downsample(x)). */
static value residual(dc__onnx_builder *b, dc_module *m, const char *path, value x,
                      bool bottleneck) {
  static const char *const BASIC[] = {"conv1", "bn1", "conv2", "bn2"};
  static const char *const BOTTLE[] = {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3"};
  const char *const *br = bottleneck ? BOTTLE : BASIC;
  int nb = bottleneck ? 6 : 4;
  value h = x;
  for (int i = 0; i < nb && h.name; i++) {
    h = run_child(b, m, path, br[i], h, false);
    if (i % 2 == 1 && i + 1 < nb) h = run_child(b, m, path, "relu", h, false);
  }
  if (!h.name) return fail();
  value id = run_child(b, m, path, "downsample", x, true);
  if (!id.name) return fail();
  char p[1024];
  value s = node2(b, "Add", child_path(p, sizeof p, path, "add"), h, id, dc_add(h.t, id.t));
  return s.name ? run_child(b, m, path, "relu", s, false) : fail();
}

static value resnet(dc__onnx_builder *b, dc_module *m, const char *path, value x) {
  static const char *const STAGES[] = {"conv1",  "bn1",    "relu",   "maxpool", "layer1",
                                       "layer2", "layer3", "layer4", "avgpool"};
  for (size_t i = 0; i < sizeof STAGES / sizeof STAGES[0] && x.name; i++)
    x = run_child(b, m, path, STAGES[i], x, true);
  if (x.name) x = flatten1(b, path, x);
  return x.name ? run_child(b, m, path, "fc", x, false) : fail();
}

static value vgg(dc__onnx_builder *b, dc_module *m, const char *path, value x) {
  x = run_child(b, m, path, "features", x, false);
  if (x.name) x = run_child(b, m, path, "avgpool", x, false);
  if (x.name) x = flatten1(b, path, x);
  return x.name ? run_child(b, m, path, "classifier", x, false) : fail();
}

static value walk(dc__onnx_builder *b, dc_module *m, const char *path, value x) {
  if (!x.name) return fail();
  const char *t = m->type->name;
  if (m->type == &dc__type_sequential) {
    for (int i = 0; i < m->children.n && x.name; i++)
      x = run_child(b, m, path, m->children.items[i].name, x, false);
    return x;
  }
  if (!strcmp(t, "ResNet")) return resnet(b, m, path, x);
  if (!strcmp(t, "BasicBlock") || !strcmp(t, "Bottleneck"))
    return residual(b, m, path, x, !strcmp(t, "Bottleneck"));
  if (!strcmp(t, "VGG")) return vgg(b, m, path, x);
  if (m->children.n > 0) {
    dc__err(DC_ERR_UNSUPPORTED,
            "onnx export: %s (%s) is a container whose forward deepc cannot write as ONNX "
            "(known: Sequential, ResNet, BasicBlock, Bottleneck, VGG)",
            *path ? path : "the model", t);
    return fail();
  }
  const char *name = dc__onnx_emit_leaf(b, m, path, x.name, x.t);
  dc_tensor *y = name ? dc_module_forward(m, x.t) : NULL; /* the sizes the next layer sees */
  return y ? (value){name, y} : fail();
}

/* Renames the value `from` (made by the last nodes) to "output"; Identity when it is the input. */
static bool name_output(dc__onnx_builder *b, const char *from) {
  if (!strcmp(from, "input"))
    return dc__onnx_node(b, "Identity", "output", 1, (const char *[]){from}) != NULL;
  for (size_t i = b->graph->n_node; i-- > 0;) {
    Onnx__NodeProto *n = b->graph->node[i];
    if (strcmp(n->output[0], from) != 0) continue;
    char *s = dc__strdup("output");
    if (!s) return false;
    dc__free(n->output[0]);
    n->output[0] = s;
    return true;
  }
  return false;
}

static char *join_names(const char *const *names, int64_t n) {
  size_t len = 1;
  for (int64_t i = 0; i < n; i++) len += strlen(names[i] ? names[i] : "") + 1;
  char *s = dc__malloc(len), *p = s;
  if (!s) return NULL;
  for (int64_t i = 0; i < n; i++) p += sprintf(p, "%s%s", i ? "\n" : "", names[i] ? names[i] : "");
  *p = '\0';
  return s;
}

static int add_meta(dc__onnx_builder *b, const dc_onnx_export_opts *o, const char *model) {
  bool ok = dc__onnx_meta(b, "deepc.model", model);
  if (ok && o->class_names && o->num_class_names > 0) {
    char *s = join_names(o->class_names, o->num_class_names);
    ok = s && dc__onnx_meta(b, "classes", s);
    dc__free(s);
  }
  return ok ? DC_OK : DC_ERR_NOMEM;
}

/* The device of the model's first parameter (the cpu without parameters). */
static dc_device model_device(const dc_module *m) {
  int n = 0;
  dc_named_tensor *l = dc__module_list(m, DC__LIST_PARAMS, &n);
  dc_device dev = l && n > 0 ? l[0].tensor->device : DC_CPU;
  dc_named_tensors_free(l, n);
  return dev;
}

/* The whole export inside the caller's scope: example input, walk, output, metadata, file. */
static int export_graph(dc_module *m, const char *path, const dc_onnx_export_opts *o, int opset) {
  const char *model = o->model_name ? o->model_name : m->type->name;
  dc__onnx_builder b;
  int rc = dc__onnx_builder_init(&b, model, opset);
  if (rc != DC_OK) return rc;
  dc_shape xs = {.ndim = o->input.ndim + 1, .d = {1}};
  for (int i = 0; i < o->input.ndim; i++) xs.d[i + 1] = o->input.d[i];
  dc_tensor *x = dc_zeros_on(xs, DC_F32, model_device(m));
  value y = x && dc__onnx_io(&b, false, "input", o->input) ? walk(&b, m, "", (value){"input", x})
                                                           : fail();
  if (!y.name) {
    rc = dc_last_status() ? dc_last_status() : DC_ERR_NOMEM;
  } else {
    dc_shape ys = dc_shape_of(y.t);
    dc_shape one = {.ndim = ys.ndim - 1};
    for (int i = 1; i < ys.ndim; i++) one.d[i - 1] = ys.d[i];
    rc = ys.ndim >= 1 && name_output(&b, y.name) && dc__onnx_io(&b, true, "output", one)
             ? add_meta(&b, o, model)
             : DC_ERR_NOMEM;
    if (rc == DC_OK) rc = dc__onnx_builder_write(&b, path);
  }
  dc__onnx_builder_free(&b);
  return rc;
}

int dc_onnx_export(dc_module *m, const char *path, const dc_onnx_export_opts *o) {
  if (!m || !path || !o) return dc__errs(DC_ERR_ARG, "dc_onnx_export: NULL argument");
  int opset = o->opset ? o->opset : 17;
  if (opset < 13 || opset > 21)
    return dc__errs(DC_ERR_ARG, "onnx export: opset %d is not supported (13 to 21; default 17)",
                    opset);
  if (o->input.ndim < 1 || o->input.ndim >= DC_MAX_DIMS)
    return dc__errs(DC_ERR_ARG, "onnx export: give the shape of one input without the batch "
                                "(CxHxW for images, F for vectors)");
  for (int i = 0; i < o->input.ndim; i++)
    if (o->input.d[i] < 1)
      return dc__errs(DC_ERR_ARG, "onnx export: input size %d is %lld; sizes must be >= 1", i,
                      (long long)o->input.d[i]);
  bool was_training = dc_module_is_training(m), grad = dc_set_grad_enabled(false);
  dc_module_eval(m);
  dc_scope_begin();
  int rc = export_graph(m, path, o, opset);
  dc_scope_end();
  dc_module_train(m, was_training);
  dc_set_grad_enabled(grad);
  return rc;
}
