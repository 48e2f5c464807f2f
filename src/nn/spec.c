/* Layer specs: a compact text form of a layer stack ("conv2d(1,32,5,padding=2), relu, flatten,
 * linear(6272,10)") parsed into a Sequential. Arguments follow PyTorch's constructors (order and
 * keyword names); errors print the spec with a caret under the column and suggest a close name.
 * Grammar: spec := layer (',' layer)*; layer := NAME ['(' [arg (',' arg)*] ')'];
 * arg := [NAME '='] value; value := number | NAME | 'string' | '(' value (',' value)* ')'. */
#include "nn-impl.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors with a caret ---- */
typedef struct parser {
  const char *src;
  size_t pos;
  dc_spec_opts opts;
} parser;

static void *spec_err(const parser *p, size_t at, const char *fmt, ...) DC__PRINTF(3, 4);
static void *spec_err(const parser *p, size_t at, const char *fmt, ...) {
  char what[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  size_t ls = at, le = at;
  while (ls > 0 && p->src[ls - 1] != '\n') ls--;
  while (p->src[le] && p->src[le] != '\n') le++;
  int col = (int)(at - ls);
  return dc__err(DC_ERR_ARG, "layer spec, column %d: %s\n  %.*s\n  %*s^", col + 1, what,
                 (int)(le - ls), p->src + ls, col, "");
}

/* ---- tokens ---- */
typedef enum tok_kind { T_END, T_NAME, T_NUM, T_STR, T_PUNCT } tok_kind;
typedef struct token {
  tok_kind kind;
  size_t at; /* offset in the spec */
  char text[64];
  double num;
  bool is_int;
  char ch; /* T_PUNCT: one of ( ) , = */
} token;

static bool next_token(parser *p, token *t) {
  const char *s = p->src;
  while (isspace((unsigned char)s[p->pos])) p->pos++;
  *t = (token){.at = p->pos};
  char c = s[p->pos];
  if (!c) return true;
  if (isalpha((unsigned char)c) || c == '_') {
    size_t k = 0;
    while (isalnum((unsigned char)s[p->pos]) || s[p->pos] == '_') {
      if (k < sizeof t->text - 1) t->text[k++] = s[p->pos];
      p->pos++;
    }
    t->kind = T_NAME;
    return true;
  }
  if (isdigit((unsigned char)c) || c == '.' ||
      ((c == '-' || c == '+') && (isdigit((unsigned char)s[p->pos + 1]) || s[p->pos + 1] == '.'))) {
    char *end;
    t->num = strtod(s + p->pos, &end);
    size_t len = (size_t)(end - (s + p->pos));
    if (len == 0) {
      spec_err(p, p->pos, "malformed number");
      return false;
    }
    t->is_int = !memchr(s + p->pos, '.', len) && !memchr(s + p->pos, 'e', len) &&
                !memchr(s + p->pos, 'E', len);
    snprintf(t->text, sizeof t->text, "%.*s", (int)(len < 63 ? len : 63), s + p->pos);
    p->pos += len;
    if (isalpha((unsigned char)s[p->pos]) || s[p->pos] == '_') {
      spec_err(p, t->at, "malformed number '%s%c...'", t->text, s[p->pos]);
      return false;
    }
    t->kind = T_NUM;
    return true;
  }
  if (c == '\'' || c == '"') {
    size_t k = 0, start = p->pos++;
    while (s[p->pos] && s[p->pos] != c) {
      if (k < sizeof t->text - 1) t->text[k++] = s[p->pos];
      p->pos++;
    }
    if (!s[p->pos]) {
      spec_err(p, start, "unterminated string");
      return false;
    }
    p->pos++;
    t->kind = T_STR;
    return true;
  }
  if (strchr("(),=", c)) {
    t->kind = T_PUNCT;
    t->ch = c;
    t->text[0] = c;
    p->pos++;
    return true;
  }
  spec_err(p, p->pos, "unexpected character '%c'", c);
  return false;
}

static bool peek_token(parser *p, token *t) {
  size_t save = p->pos;
  bool ok = next_token(p, t);
  p->pos = save;
  return ok;
}

static bool is_punct(const token *t, char c) { return t->kind == T_PUNCT && t->ch == c; }

/* ---- values ---- */
enum { MAX_TUPLE = 4, MAX_ARGS = 10 };
typedef struct value {
  bool given;
  size_t at;
  enum { V_NUM, V_BOOL, V_NONE, V_STR, V_TUPLE } kind;
  double num;
  bool is_int;
  char str[64];
  int n; /* tuple length */
  double tup[MAX_TUPLE];
  bool tup_none[MAX_TUPLE];
  bool tup_int[MAX_TUPLE];
} value;

static bool name_is(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return false;
  return !*a && !*b;
}

/* A bare name as a value: True/False/None, `classes`, or a word like same/tanh. */
static bool name_value(parser *p, const token *t, value *v) {
  if (name_is(t->text, "true") || name_is(t->text, "false")) {
    v->kind = V_BOOL;
    v->num = name_is(t->text, "true");
  } else if (name_is(t->text, "none")) {
    v->kind = V_NONE;
  } else if (name_is(t->text, "classes") || name_is(t->text, "num_classes")) {
    if (p->opts.classes <= 0) {
      spec_err(p, t->at, "'%s' is used but no number of classes was given (--classes N)", t->text);
      return false;
    }
    v->kind = V_NUM;
    v->num = (double)p->opts.classes;
    v->is_int = true;
  } else {
    v->kind = V_STR;
    snprintf(v->str, sizeof v->str, "%s", t->text);
  }
  return true;
}

static bool parse_value(parser *p, value *v) {
  token t;
  if (!next_token(p, &t)) return false;
  *v = (value){.given = true, .at = t.at};
  switch (t.kind) {
  case T_NUM:
    v->kind = V_NUM;
    v->num = t.num;
    v->is_int = t.is_int;
    return true;
  case T_STR:
    v->kind = V_STR;
    snprintf(v->str, sizeof v->str, "%s", t.text);
    return true;
  case T_NAME:
    return name_value(p, &t, v);
  case T_PUNCT:
    if (t.ch != '(') break;
    v->kind = V_TUPLE;
    for (;;) {
      token e;
      if (!peek_token(p, &e)) return false;
      if (is_punct(&e, ')') && v->n > 0) {
        next_token(p, &e);
        return true;
      }
      if (is_punct(&e, '(')) /* before recursing: "((((..." a million deep stays flat */
        return spec_err(p, e.at, "a tuple holds numbers (or None)"), false;
      value el;
      if (!parse_value(p, &el)) return false;
      if (el.kind != V_NUM && el.kind != V_NONE)
        return spec_err(p, el.at, "a tuple holds numbers (or None)"), false;
      if (v->n == MAX_TUPLE)
        return spec_err(p, el.at, "tuple too long: at most %d values", MAX_TUPLE), false;
      v->tup[v->n] = el.num;
      v->tup_none[v->n] = el.kind == V_NONE;
      v->tup_int[v->n++] = el.is_int;
      if (!next_token(p, &e)) return false;
      if (is_punct(&e, ')')) return true;
      if (!is_punct(&e, ',')) return spec_err(p, e.at, "expected ',' or ')' in a tuple"), false;
    }
  case T_END:
    break;
  }
  spec_err(p, t.at,
           t.kind == T_END ? "expected a value, got the end of the spec"
                           : "expected a value (number, name or tuple), got '%s'",
           t.text);
  return false;
}

/* ---- layer table ---- */
typedef enum arg_kind {
  A_INT,     /* integer */
  A_PAIR,    /* int or (h, w) */
  A_OPTPAIR, /* int, (h, w) or None */
  A_PADDING, /* int, (h, w), 'same' or 'valid' */
  A_OUTSIZE, /* int or (h, w) with None entries */
  A_FLOAT,
  A_OPTFLOAT, /* float or None */
  A_OPTINT,
  A_BOOL,
  A_DIM, /* int or None */
  A_STR
} arg_kind;

typedef struct argdef {
  const char *name;
  arg_kind kind;
  bool required;
} argdef;

typedef struct layerdef layerdef;
typedef dc_module *(*builder)(parser *p, const layerdef *L, const value *v, size_t at);
struct layerdef {
  const char *name; /* PyTorch's class name */
  builder build;
  argdef args[MAX_ARGS];
};

static int ival(const value *v, int dflt) {
  return v->given && v->kind == V_NUM ? (int)v->num : dflt;
}
static double fval(const value *v, double dflt) {
  return v->given && v->kind == V_NUM ? v->num : dflt;
}
static bool bval(const value *v, bool dflt) {
  return v->given && v->kind == V_BOOL ? v->num != 0 : dflt;
}
static bool is_tuple(const value *v) { return v->given && v->kind == V_TUPLE; }

/* Square value or (h, w) override from an int-or-pair argument. */
static void pair_arg(const value *v, int *square, int hw[2]) {
  if (!v->given) return;
  if (v->kind == V_TUPLE) {
    hw[0] = (int)v->tup[0];
    hw[1] = (int)v->tup[1];
  } else if (v->kind == V_NUM) {
    *square = (int)v->num;
  }
}

static void mark_pair(dc__pair *pr, const value *v) {
  if (is_tuple(v)) pr->is_pair = true;
}

/* Specs come from files and command lines: a layer beyond 2^31 parameters (8 GiB of float32,
 * 20x VGG's largest), or beyond the caller's max_params, is refused before anything is
 * allocated. */
#define SPEC_MAX_PARAMS 2147483648.0
static bool params_ok(parser *p, size_t at, const char *name, double n) {
  double cap = p->opts.max_params > 0 && (double)p->opts.max_params < SPEC_MAX_PARAMS
                   ? (double)p->opts.max_params
                   : SPEC_MAX_PARAMS;
  if (n <= cap) return true;
  if (cap < SPEC_MAX_PARAMS)
    spec_err(p, at, "%s with %.3g parameters: more than the limit of %lld (max_params)", name, n,
             (long long)p->opts.max_params);
  else
    spec_err(p, at, "%s with %.3g parameters: more than 2^31 (8 GiB of float32); a typo in a size?",
             name, n);
  return false;
}

static dc_module *build_linear(parser *p, const layerdef *L, const value *v, size_t at) {
  (void)L;
  if (!params_ok(p, at, "Linear", v[0].num * v[1].num + v[1].num)) return NULL;
  return dc_nn_linear((int64_t)v[0].num, (int64_t)v[1].num, .no_bias = !bval(&v[2], true));
}

static dc_module *build_conv2d(parser *p, const layerdef *L, const value *v, size_t at) {
  (void)L;
  dc_nn_conv2d_opts o = {.groups = ival(&v[6], 1), .no_bias = !bval(&v[7], true)};
  int k = 0;
  pair_arg(&v[2], &k, o.kernel_hw);
  pair_arg(&v[3], &o.stride, o.stride_hw);
  if (v[4].given && v[4].kind == V_STR)
    o.padding_same = name_is(v[4].str, "same");
  else
    pair_arg(&v[4], &o.padding, o.padding_hw);
  pair_arg(&v[5], &o.dilation, o.dilation_hw);
  double kh = is_tuple(&v[2]) ? o.kernel_hw[0] : k, kw = is_tuple(&v[2]) ? o.kernel_hw[1] : k;
  if (!params_ok(p, at, "Conv2d",
                 v[0].num / (o.groups > 0 ? o.groups : 1) * v[1].num * kh * kw + v[1].num))
    return NULL;
  if (v[8].given && !name_is(v[8].str, "zeros"))
    return spec_err(p, v[8].at, "padding_mode='%s' is not supported (only 'zeros')", v[8].str);
  return dc_nn_conv2d_opt((int64_t)v[0].num, (int64_t)v[1].num, k, o);
}

static dc_module *build_pool(parser *p, const layerdef *L, const value *v, size_t at, bool max) {
  (void)L, (void)at;
  dc_nn_pool2d_opts o = {0};
  int k = 0;
  pair_arg(&v[0], &k, o.kernel_hw);
  if (v[1].given && v[1].kind != V_NONE) pair_arg(&v[1], &o.stride, o.stride_hw);
  pair_arg(&v[2], &o.padding, o.padding_hw);
  if (max) {
    pair_arg(&v[3], &o.dilation, o.dilation_hw);
    if (bval(&v[4], false))
      return spec_err(p, v[4].at, "return_indices=True is not supported in a layer stack");
    o.ceil_mode = bval(&v[5], false);
  } else {
    o.ceil_mode = bval(&v[3], false);
    o.exclude_pad = !bval(&v[4], true);
    o.divisor_override = v[5].given && v[5].kind == V_NUM ? (int)v[5].num : 0;
  }
  dc_module *m = max ? dc_nn_maxpool2d_opt(k, o) : dc_nn_avgpool2d_opt(k, o);
  if (m) {
    dc__pool_state *s = m->state;
    mark_pair(&s->kernel, &v[0]);
    if (v[1].given && v[1].kind != V_NONE)
      mark_pair(&s->stride, &v[1]);
    else
      s->stride.is_pair = s->kernel.is_pair;
    mark_pair(&s->padding, &v[2]);
    if (max) mark_pair(&s->dilation, &v[3]);
  }
  return m;
}
static dc_module *build_maxpool(parser *p, const layerdef *L, const value *v, size_t at) {
  return build_pool(p, L, v, at, true);
}
static dc_module *build_avgpool(parser *p, const layerdef *L, const value *v, size_t at) {
  return build_pool(p, L, v, at, false);
}

static dc_module *build_adaptive(parser *p, const layerdef *L, const value *v, size_t at) {
  (void)at;
  int64_t oh, ow;
  if (is_tuple(&v[0])) {
    oh = v[0].tup_none[0] ? 0 : (int64_t)v[0].tup[0];
    ow = v[0].tup_none[1] ? 0 : (int64_t)v[0].tup[1];
  } else {
    oh = ow = (int64_t)v[0].num;
  }
  bool avg = strcmp(L->name, "AdaptiveAvgPool2d") == 0;
  if (!avg && bval(&v[1], false))
    return spec_err(p, v[1].at, "return_indices=True is not supported in a layer stack");
  dc_module *m = avg ? dc_nn_adaptive_avgpool2d(oh, ow) : dc_nn_adaptive_maxpool2d(oh, ow);
  if (m) ((dc__adaptive_state *)m->state)->is_pair = is_tuple(&v[0]);
  return m;
}

static dc_module *build_bn(parser *p, const layerdef *L, const value *v, size_t at) {
  dc_nn_batchnorm_opts o = {.cumulative = v[2].given && v[2].kind == V_NONE,
                            .no_affine = !bval(&v[3], true),
                            .no_running_stats = !bval(&v[4], true)};
  if (!params_ok(p, at, L->name, 4 * v[0].num)) return NULL;
  int64_t c = (int64_t)v[0].num;
  dc_module *m = strcmp(L->name, "BatchNorm1d") == 0 ? dc_nn_batchnorm1d_opt(c, o)
                                                     : dc_nn_batchnorm2d_opt(c, o);
  if (m) { /* exact values, 0 included (the C options read 0 as "default") */
    dc__bn_state *s = m->state;
    s->eps = fval(&v[1], 1e-5);
    if (!o.cumulative) s->momentum = fval(&v[2], 0.1);
    if (s->eps < 0 || s->momentum < 0 || s->momentum > 1) {
      dc_module_free(m);
      return spec_err(p, v[1].given ? v[1].at : v[2].at, "eps must be >= 0 and momentum in [0, 1]");
    }
  }
  return m;
}

/* Activations and dropout: the first two float arguments (with their int-ness for the repr). */
static dc_module *with_flags(dc_module *m, const value *a, const value *b, bool a_int, bool b_int) {
  if (m) {
    dc__act_state *s = m->state;
    s->a_is_int = a && a->given ? a->kind == V_NUM && a->is_int : a_int;
    s->b_is_int = b && b->given ? b->kind == V_NUM && b->is_int : b_int;
  }
  return m;
}

static dc_module *build_act(parser *p, const layerdef *L, const value *v, size_t at) {
  const char *n = L->name;
  (void)at;
  if (!strcmp(n, "ReLU")) return dc_nn_relu();
  if (!strcmp(n, "SELU")) return dc_nn_selu();
  if (!strcmp(n, "Sigmoid")) return dc_nn_sigmoid();
  if (!strcmp(n, "Tanh")) return dc_nn_tanh();
  if (!strcmp(n, "Identity")) return dc_nn_identity();
  if (!strcmp(n, "LeakyReLU"))
    return with_flags(dc_nn_leaky_relu(fval(&v[0], 0.01)), &v[0], NULL, false, false);
  if (!strcmp(n, "ELU")) return with_flags(dc_nn_elu(fval(&v[0], 1.0)), &v[0], NULL, false, false);
  if (!strcmp(n, "Softplus"))
    return with_flags(dc_nn_softplus(fval(&v[0], 1), fval(&v[1], 20)), &v[0], &v[1], true, true);
  if (!strcmp(n, "Hardtanh"))
    return with_flags(dc_nn_hardtanh(fval(&v[0], -1.0), fval(&v[1], 1.0)), &v[0], &v[1], false,
                      false);
  if (!strcmp(n, "Dropout") || !strcmp(n, "Dropout2d")) {
    double pr = fval(&v[0], 0.5);
    dc_module *m = n[7] ? dc_nn_dropout2d(pr) : dc_nn_dropout(pr);
    return with_flags(m, &v[0], NULL, false, false);
  }
  if (!strcmp(n, "GELU")) {
    bool tanh_approx = v[0].given && name_is(v[0].str, "tanh");
    if (v[0].given && !tanh_approx && !name_is(v[0].str, "none"))
      return spec_err(p, v[0].at, "GELU: approximate must be 'none' or 'tanh', got '%s'", v[0].str);
    return dc_nn_gelu(tanh_approx);
  }
  if (!strcmp(n, "Softmax") || !strcmp(n, "LogSoftmax")) {
    int dim = v[0].given && v[0].kind == V_NUM ? (int)v[0].num : DC_NN_DIM_NONE;
    return n[0] == 'S' ? dc_nn_softmax(dim) : dc_nn_log_softmax(dim);
  }
  if (!strcmp(n, "Flatten")) return dc_nn_flatten(ival(&v[0], 1), ival(&v[1], -1));
  return spec_err(p, at, "internal: no builder for %s", n);
}

/* clang-format off */
#define INPLACE {"inplace", A_BOOL, false}
/* BatchNorm1d's and BatchNorm2d's arguments */
#define BN_ARGS                                                                                   \
  {{"num_features", A_INT, true}, {"eps", A_FLOAT, false}, {"momentum", A_OPTFLOAT, false},     \
   {"affine", A_BOOL, false}, {"track_running_stats", A_BOOL, false}}
/* clang-format on */
static const layerdef LAYERS[] = {
    {"Linear",
     build_linear,
     {{"in_features", A_INT, true}, {"out_features", A_INT, true}, {"bias", A_BOOL, false}}},
    {"Conv2d",
     build_conv2d,
     {{"in_channels", A_INT, true},
      {"out_channels", A_INT, true},
      {"kernel_size", A_PAIR, true},
      {"stride", A_PAIR, false},
      {"padding", A_PADDING, false},
      {"dilation", A_PAIR, false},
      {"groups", A_INT, false},
      {"bias", A_BOOL, false},
      {"padding_mode", A_STR, false}}},
    {"MaxPool2d",
     build_maxpool,
     {{"kernel_size", A_PAIR, true},
      {"stride", A_OPTPAIR, false},
      {"padding", A_PAIR, false},
      {"dilation", A_PAIR, false},
      {"return_indices", A_BOOL, false},
      {"ceil_mode", A_BOOL, false}}},
    {"AvgPool2d",
     build_avgpool,
     {{"kernel_size", A_PAIR, true},
      {"stride", A_OPTPAIR, false},
      {"padding", A_PAIR, false},
      {"ceil_mode", A_BOOL, false},
      {"count_include_pad", A_BOOL, false},
      {"divisor_override", A_OPTINT, false}}},
    {"AdaptiveAvgPool2d", build_adaptive, {{"output_size", A_OUTSIZE, true}}},
    {"AdaptiveMaxPool2d",
     build_adaptive,
     {{"output_size", A_OUTSIZE, true}, {"return_indices", A_BOOL, false}}},
    {"BatchNorm1d", build_bn, BN_ARGS},
    {"BatchNorm2d", build_bn, BN_ARGS},
    {"Dropout", build_act, {{"p", A_FLOAT, false}, INPLACE}},
    {"Dropout2d", build_act, {{"p", A_FLOAT, false}, INPLACE}},
    {"Flatten", build_act, {{"start_dim", A_INT, false}, {"end_dim", A_INT, false}}},
    {"Identity", build_act, {{0}}},
    {"ReLU", build_act, {INPLACE}},
    {"LeakyReLU", build_act, {{"negative_slope", A_FLOAT, false}, INPLACE}},
    {"ELU", build_act, {{"alpha", A_FLOAT, false}, INPLACE}},
    {"SELU", build_act, {INPLACE}},
    {"GELU", build_act, {{"approximate", A_STR, false}}},
    {"Sigmoid", build_act, {{0}}},
    {"Tanh", build_act, {{0}}},
    {"Softmax", build_act, {{"dim", A_DIM, false}}},
    {"LogSoftmax", build_act, {{"dim", A_DIM, false}}},
    {"Softplus", build_act, {{"beta", A_FLOAT, false}, {"threshold", A_FLOAT, false}}},
    {"Hardtanh", build_act, {{"min_val", A_FLOAT, false}, {"max_val", A_FLOAT, false}, INPLACE}},
};
#undef INPLACE
#undef BN_ARGS
enum { NLAYERS = (int)(sizeof LAYERS / sizeof LAYERS[0]) };

static int nargs(const layerdef *L) {
  int n = 0;
  while (n < MAX_ARGS && L->args[n].name) n++;
  return n;
}

static const layerdef *find_layer(const char *name) {
  for (int i = 0; i < NLAYERS; i++)
    if (dc__name_distance(name, LAYERS[i].name) == 0) return &LAYERS[i];
  return NULL;
}

/* ---- argument checks ---- */
static bool is_integral(double x) { return x == floor(x) && fabs(x) < 2147483648.0; }

static const char *kind_text(arg_kind k) {
  switch (k) {
  case A_INT:
    return "an integer";
  case A_PAIR:
    return "an integer or a tuple (h, w)";
  case A_OPTPAIR:
    return "an integer, a tuple (h, w) or None";
  case A_PADDING:
    return "an integer, a tuple (h, w), 'same' or 'valid'";
  case A_OUTSIZE:
    return "an integer or a tuple (h, w) (None keeps the input size)";
  case A_FLOAT:
    return "a number";
  case A_OPTFLOAT:
    return "a number or None";
  case A_OPTINT:
    return "an integer or None";
  case A_BOOL:
    return "True or False";
  case A_DIM:
    return "an integer dim or None";
  case A_STR:
    return "a name";
  }
  return "a value";
}

static bool int_tuple(const value *v, bool allow_none) {
  if (v->kind != V_TUPLE || v->n != 2) return false;
  for (int i = 0; i < 2; i++) {
    if (v->tup_none[i] && allow_none) continue;
    if (v->tup_none[i] || !v->tup_int[i] || !is_integral(v->tup[i])) return false;
  }
  return true;
}

static bool check_arg(parser *p, const layerdef *L, const argdef *a, value *v) {
  bool num_int = v->kind == V_NUM && v->is_int && is_integral(v->num);
  bool ok;
  switch (a->kind) {
  case A_INT:
    ok = num_int;
    break;
  case A_PAIR:
    ok = num_int || int_tuple(v, false);
    break;
  case A_OPTPAIR:
    ok = num_int || int_tuple(v, false) || v->kind == V_NONE;
    break;
  case A_PADDING:
    ok = num_int || int_tuple(v, false) ||
         (v->kind == V_STR && (name_is(v->str, "same") || name_is(v->str, "valid")));
    if (ok && v->kind == V_STR && name_is(v->str, "valid"))
      *v = (value){.given = true, .at = v->at, .kind = V_NUM, .num = 0, .is_int = true};
    break;
  case A_OUTSIZE:
    ok = num_int || int_tuple(v, true);
    break;
  case A_FLOAT:
    ok = v->kind == V_NUM;
    break;
  case A_OPTFLOAT:
    ok = v->kind == V_NUM || v->kind == V_NONE;
    break;
  case A_OPTINT:
    ok = num_int || v->kind == V_NONE;
    break;
  case A_BOOL:
    ok = v->kind == V_BOOL;
    break;
  case A_DIM:
    ok = num_int || v->kind == V_NONE;
    break;
  case A_STR:
    ok = v->kind == V_STR;
    break;
  default:
    ok = false;
  }
  if (!ok) spec_err(p, v->at, "%s: %s must be %s", L->name, a->name, kind_text(a->kind));
  return ok;
}

/* Parses "(args)" after a layer name into v[] by position and keyword. */
static bool parse_args(parser *p, const layerdef *L, value *v) {
  int na = nargs(L), npos = 0;
  bool seen_kw = false;
  token t;
  if (!peek_token(p, &t)) return false;
  if (!is_punct(&t, '(')) return true;
  next_token(p, &t);
  for (;;) {
    token a, b;
    if (!peek_token(p, &a)) return false;
    if (is_punct(&a, ')')) {
      next_token(p, &a);
      return true;
    }
    int slot = -1;
    size_t at = a.at;
    if (a.kind == T_NAME) { /* keyword? */
      size_t save = p->pos;
      next_token(p, &a);
      if (!peek_token(p, &b)) return false;
      if (is_punct(&b, '=')) {
        next_token(p, &b);
        for (int i = 0; i < na; i++)
          if (strcmp(L->args[i].name, a.text) == 0) slot = i;
        if (slot < 0) {
          const char *best = NULL;
          int bd = 4;
          for (int i = 0; i < na; i++) {
            int d = dc__name_distance(a.text, L->args[i].name);
            if (d < bd) bd = d, best = L->args[i].name;
          }
          char args[512] = "";
          for (int i = 0; i < na; i++)
            dc__appendf(args, sizeof args, "%s%s", i ? ", " : "", L->args[i].name);
          if (best)
            return spec_err(p, at, "%s has no argument '%s' (did you mean '%s'?)", L->name, a.text,
                            best),
                   false;
          return spec_err(p, at, "%s has no argument '%s'; its arguments are: %s", L->name, a.text,
                          na ? args : "(none)"),
                 false;
        }
        seen_kw = true;
      } else {
        p->pos = save;
      }
    }
    if (slot < 0) {
      if (seen_kw) return spec_err(p, at, "positional argument after a keyword argument"), false;
      if (npos >= na)
        return spec_err(p, at, "%s takes at most %d argument%s", L->name, na, na == 1 ? "" : "s"),
               false;
      slot = npos++;
    }
    if (v[slot].given)
      return spec_err(p, at, "%s got multiple values for argument '%s'", L->name,
                      L->args[slot].name),
             false;
    if (!parse_value(p, &v[slot]) || !check_arg(p, L, &L->args[slot], &v[slot])) return false;
    if (!next_token(p, &b)) return false;
    if (is_punct(&b, ')')) return true;
    if (!is_punct(&b, ','))
      return spec_err(p, b.at, "expected ',' or ')' after an argument of %s", L->name), false;
  }
}

static dc_module *parse_layer(parser *p) {
  token t;
  if (!next_token(p, &t)) return NULL;
  if (t.kind != T_NAME)
    return spec_err(p, t.at,
                    t.kind == T_END ? "expected a layer name, got the end of the spec"
                                    : "expected a layer name, got '%s'",
                    t.text);
  const layerdef *L = find_layer(t.text);
  if (!L) {
    const char *best = NULL;
    int bd = 1 << 20;
    for (int i = 0; i < NLAYERS; i++) {
      int d = dc__name_distance(t.text, LAYERS[i].name);
      if (d < bd) bd = d, best = LAYERS[i].name;
    }
    if (bd <= 3 || bd * 2 <= (int)strlen(t.text))
      return spec_err(p, t.at, "unknown layer '%s' (did you mean '%s'?)", t.text, best);
    char all[1024] = "";
    for (int i = 0; i < NLAYERS; i++)
      dc__appendf(all, sizeof all, "%s%s", i ? ", " : "", LAYERS[i].name);
    return spec_err(p, t.at, "unknown layer '%s'; known layers: %s", t.text, all);
  }
  value v[MAX_ARGS] = {0};
  if (!parse_args(p, L, v)) return NULL;
  int na = nargs(L);
  for (int i = 0; i < na; i++)
    if (L->args[i].required && !v[i].given)
      return spec_err(p, t.at, "%s is missing the required argument '%s' (%s)", L->name,
                      L->args[i].name, kind_text(L->args[i].kind));
  dc_module *m = L->build(p, L, v, t.at);
  if (!m && strncmp(dc_last_error(), "layer spec", 10) != 0) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", dc_last_error());
    return spec_err(p, t.at, "%s", msg);
  }
  return m;
}

dc_module *dc_nn_from_spec_opt(const char *spec, dc_spec_opts o) {
  if (!spec) return dc__err(DC_ERR_ARG, "layer spec: NULL string");
  parser p = {.src = spec, .opts = o};
  token t;
  if (!peek_token(&p, &t)) return NULL;
  if (t.kind == T_END)
    return spec_err(&p, 0, "empty spec: give layers like \"linear(4, 2), relu\"");
  dc_module *seq = dc_module_new(&dc__type_sequential, 0);
  if (!seq) return NULL;
  for (;;) {
    dc_module *layer = parse_layer(&p);
    if (!layer || !dc_nn_sequential_append(seq, layer)) {
      dc_module_free(seq);
      return NULL;
    }
    if (!next_token(&p, &t)) {
      dc_module_free(seq);
      return NULL;
    }
    if (t.kind == T_END) return seq;
    if (!is_punct(&t, ',')) {
      dc_module_free(seq);
      return spec_err(&p, t.at, "expected ',' between layers, got '%s'", t.text);
    }
    if (!peek_token(&p, &t)) {
      dc_module_free(seq);
      return NULL;
    }
    if (t.kind == T_END) return seq; /* a trailing comma */
  }
}
