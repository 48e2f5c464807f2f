/* Model summary (torchinfo's table): runs the model on a zero batch of one under no_grad in eval
 * mode without fusion (DC_FUSE_NONE), records every dc_module_forward call (path, type, depth,
 * output shape, own parameters, multiply-accumulates), then prints the table and the totals. */
#include "nn-impl.h"

#include <stdio.h>
#include <string.h>

struct dc__summary_rec {
  dc_model_summary *s;
  dc_named_module *mods; /* the tree's modules with their paths, to name each call */
  int nmods;
  int cap;
  int depth;
  bool failed;
};

_Thread_local dc__summary_rec *dc__summary_active;

char *dc_format_count(int64_t n, char *buf, size_t size) {
  char digits[32];
  snprintf(digits, sizeof digits, "%lld", (long long)(n < 0 ? -n : n));
  size_t len = strlen(digits), k = 0;
  char tmp[48];
  if (n < 0) tmp[k++] = '-';
  for (size_t i = 0; i < len; i++) {
    if (i && (len - i) % 3 == 0) tmp[k++] = ',';
    tmp[k++] = digits[i];
  }
  tmp[k] = '\0';
  snprintf(buf, size, "%s", tmp);
  return buf;
}

static int64_t own_params(const dc_module *m) {
  int64_t n = 0;
  for (int i = 0; i < m->params.n; i++) n += dc_numel(m->params.items[i].ptr);
  return n;
}

int dc__summary_enter(dc_module *m, dc_tensor *x) {
  dc__summary_rec *r = dc__summary_active;
  (void)x;
  dc_model_summary *s = r->s;
  if (s->nrows == r->cap) {
    int cap = r->cap ? r->cap * 2 : 32;
    dc_summary_row *rows =
        dc__realloc(s->rows, sizeof *rows * (size_t)r->cap, sizeof *rows * (size_t)cap);
    if (!rows) {
      r->failed = true;
      return -1;
    }
    s->rows = rows;
    r->cap = cap;
  }
  const char *path = "?";
  for (int i = 0; i < r->nmods; i++)
    if (r->mods[i].module == m) {
      path = r->mods[i].name;
      break;
    }
  char *name = dc__strdup(path);
  if (!name) {
    r->failed = true;
    return -1;
  }
  s->rows[s->nrows] = (dc_summary_row){.name = name,
                                       .type = m->type->name,
                                       .depth = r->depth,
                                       .is_leaf = m->children.n == 0,
                                       .params = own_params(m)};
  r->depth++;
  return s->nrows++;
}

void dc__summary_leave(int row, dc_module *m, dc_tensor *x, dc_tensor *y) {
  dc__summary_rec *r = dc__summary_active;
  dc_summary_row *w = &r->s->rows[row];
  r->depth--;
  w->out_shape = dc_shape_of(y);
  if (m->type->macs)
    w->macs = m->type->macs(m, dc_shape_of(x), w->out_shape);
  else
    w->macs = y->ndim > 0 ? y->shape[0] * w->params : w->params;
}

void dc_summary_free(dc_model_summary *s) {
  if (!s) return;
  for (int i = 0; i < s->nrows; i++) dc__free(s->rows[i].name);
  dc__free(s->rows);
  dc__free(s);
}

static int64_t tensor_bytes(const dc_named_tensor *l, int n) {
  int64_t b = 0;
  for (int i = 0; i < n; i++)
    b += dc_numel(l[i].tensor) * (int64_t)dc_dtype_size(l[i].tensor->dtype);
  return b;
}

static void totals(dc_model_summary *s, const dc_module *m) {
  s->total_params = dc_module_num_parameters(m, false);
  s->trainable_params = dc_module_num_parameters(m, true);
  s->non_trainable_params = s->total_params - s->trainable_params;
  s->input_bytes = dc__shape_numel(&s->input_shape) * 4;
  for (int i = 0; i < s->nrows; i++) {
    s->total_macs += s->rows[i].macs;
    if (s->rows[i].is_leaf) s->activation_bytes += dc__shape_numel(&s->rows[i].out_shape) * 4 * 2;
  }
  int n;
  dc_named_tensor *l = dc__module_list(m, DC__LIST_PARAMS, &n);
  s->param_bytes = tensor_bytes(l, n);
  dc_named_tensors_free(l, n);
  l = dc__module_list(m, DC__LIST_BUFFERS, &n);
  s->param_bytes += tensor_bytes(l, n);
  dc_named_tensors_free(l, n);
}

/* where the model's first parameter (or buffer) lives: the input batch is made there */
static dc_device model_device(const dc_module *m) {
  if (m->params.n) return ((const dc_tensor *)m->params.items[0].ptr)->device;
  if (m->buffers.n) return ((const dc_tensor *)m->buffers.items[0].ptr)->device;
  for (int i = 0; i < m->children.n; i++) {
    dc_device d = model_device(m->children.items[i].ptr);
    if (d != DC_CPU) return d;
  }
  return DC_CPU;
}

dc_model_summary *dc_summary(dc_module *m, dc_shape input_shape) {
  if (!m) return dc__err(DC_ERR_ARG, "summary: module is NULL");
  if (input_shape.ndim < 1 || input_shape.ndim >= DC_MAX_DIMS)
    return dc__err(DC_ERR_ARG,
                   "summary: the input shape (without the batch) needs 1 to %d dims, "
                   "got %d",
                   DC_MAX_DIMS - 1, input_shape.ndim);
  dc_shape in = {.ndim = input_shape.ndim + 1, .d = {1}};
  for (int i = 0; i < input_shape.ndim; i++) {
    if (input_shape.d[i] <= 0)
      return dc__err(DC_ERR_ARG, "summary: input sizes must be positive, got %lld in dim %d",
                     (long long)input_shape.d[i], i);
    in.d[i + 1] = input_shape.d[i];
  }
  if (dc__summary_active)
    return dc__err(DC_ERR_STATE, "summary: already summarising a model on this thread");
  dc_model_summary *s = dc__calloc(1, sizeof *s);
  dc__summary_rec r = {.s = s};
  if (!s || !(r.mods = dc_module_modules(m, &r.nmods))) {
    dc__free(s);
    return NULL;
  }
  s->input_shape = in;
  bool *mode = dc__calloc((size_t)r.nmods, sizeof *mode);
  unsigned *fusion = dc__calloc((size_t)r.nmods, sizeof *fusion);
  if (!mode || !fusion || dc_scope_begin() != DC_OK) {
    dc__free(mode);
    dc__free(fusion);
    dc_named_modules_free(r.mods, r.nmods);
    dc_summary_free(s);
    return NULL;
  }
  for (int i = 0; i < r.nmods; i++) {
    mode[i] = r.mods[i].module->training;
    fusion[i] = r.mods[i].module->fusion;
  }
  dc_module_eval(m);
  dc_module_set_fusion(m, DC_FUSE_NONE); /* every layer on its own, so each gets its row */
  bool prev = dc_set_grad_enabled(false);
  dc__summary_active = &r;
  dc_tensor *y = dc_module_forward(m, dc_zeros_on(in, DC_F32, model_device(m)));
  dc__summary_active = NULL;
  dc_set_grad_enabled(prev);
  if (y) s->output_shape = dc_shape_of(y);
  dc_scope_end();
  for (int i = 0; i < r.nmods; i++) {
    r.mods[i].module->training = mode[i];
    r.mods[i].module->fusion = fusion[i];
  }
  dc__free(mode);
  dc__free(fusion);
  dc_named_modules_free(r.mods, r.nmods);
  if (!y || r.failed) {
    if (y) dc__err(DC_ERR_NOMEM, "summary: out of memory");
    dc_summary_free(s);
    return NULL;
  }
  totals(s, m);
  return s;
}

/* ---- printing ---- */
/* Display width of UTF-8 text (the tree glyphs are one column each). */
static int text_width(const char *s) {
  int w = 0;
  for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
  return w;
}

static void pad_to(FILE *f, const char *s, int width) {
  fputs(s, f);
  for (int k = text_width(s); k < width; k++) fputc(' ', f);
}

static void row_label(const dc_summary_row *r, char *buf, size_t n) {
  buf[0] = '\0';
  if (r->depth == 1) dc__appendf(buf, n, "├─");
  for (int d = 1; d < r->depth; d++) dc__appendf(buf, n, "│    ");
  if (r->depth > 1) dc__appendf(buf, n, "└─");
  if (*r->name)
    dc__appendf(buf, n, "%s (%s)", r->name, r->type);
  else
    dc__appendf(buf, n, "%s", r->type);
}

enum { COL = 25 };

static void print_line(FILE *f, int width) {
  for (int i = 0; i < width; i++) fputc('=', f);
  fputc('\n', f);
}

int dc_summary_print(FILE *f, const dc_model_summary *s) {
  if (!f || !s) return dc__errs(DC_ERR_ARG, "summary_print: NULL argument");
  int name_w = 40;
  char label[1024], a[64], b[64], c[64];
  for (int i = 0; i < s->nrows; i++) {
    row_label(&s->rows[i], label, sizeof label);
    int w = text_width(label) + 1;
    if (w >= name_w) name_w = (w + 4) / 5 * 5;
  }
  int total_w = name_w + 3 * COL;
  print_line(f, total_w);
  pad_to(f, "Layer (type)", name_w + 1);
  pad_to(f, "Output Shape", COL + 1);
  pad_to(f, "Param #", COL + 1);
  fputs("Mult-Adds\n", f);
  print_line(f, total_w);
  for (int i = 0; i < s->nrows; i++) {
    const dc_summary_row *r = &s->rows[i];
    row_label(r, label, sizeof label);
    pad_to(f, label, name_w + 1);
    pad_to(f, dc_shape_str(r->out_shape, a, sizeof a), COL + 1);
    pad_to(f, r->params ? dc_format_count(r->params, b, sizeof b) : "--", COL + 1);
    fprintf(f, "%s\n", r->macs ? dc_format_count(r->macs, c, sizeof c) : "--");
  }
  print_line(f, total_w);
  fprintf(f, "Total params: %s\n", dc_format_count(s->total_params, a, sizeof a));
  fprintf(f, "Trainable params: %s\n", dc_format_count(s->trainable_params, a, sizeof a));
  fprintf(f, "Non-trainable params: %s\n", dc_format_count(s->non_trainable_params, a, sizeof a));
  bool giga = s->total_macs >= 1000000000;
  fprintf(f, "Total mult-adds (%s): %.2f\n", giga ? "G" : "M",
          (double)s->total_macs / (giga ? 1e9 : 1e6));
  print_line(f, total_w);
  fprintf(f, "Input size (MB): %.2f\n", (double)s->input_bytes / 1e6);
  fprintf(f, "Forward/backward pass size (MB): %.2f\n", (double)s->activation_bytes / 1e6);
  fprintf(f, "Params size (MB): %.2f\n", (double)s->param_bytes / 1e6);
  fprintf(f, "Estimated Total Size (MB): %.2f\n",
          (double)(s->input_bytes + s->activation_bytes + s->param_bytes) / 1e6);
  print_line(f, total_w);
  return ferror(f) ? dc__errs(DC_ERR_IO, "summary_print: write failed") : DC_OK;
}
