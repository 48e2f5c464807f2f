/* Expressions for `deepc graph`: tokenizer-free recursive-descent parser with column-precise
 * errors, and an evaluator that turns the tree into deepc ops (so autograd records the graph).
 * Grammar (lowest precedence first; ^ is right-associative and binds tighter than unary minus):
 *   expr := term (('+' | '-') term)*       term := unary (('*' | '/') unary)*
 *   unary := ('-' | '+') unary | power      power := primary (('^' | '**') unary)?
 *   primary := NUMBER | NAME | NAME '(' expr [',' expr] ')' | '(' expr ')'            */
#include "expr.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* limits, so hostile input cannot overflow the stack (parsing, evaluation and freeing recurse) */
#define EXPR_MAX_DEPTH 400
#define EXPR_MAX_LEN 4096

static dc_tensor *fn_gelu(dc_tensor *x) { return dc_gelu(x, false); }
static dc_tensor *fn_softplus(dc_tensor *x) { return dc_softplus(x, 1.0, 20.0); }

typedef struct expr_fn {
  const char *name;
  int arity;
  dc_tensor *(*f1)(dc_tensor *);
  dc_tensor *(*f2)(dc_tensor *, dc_tensor *);
} expr_fn;

static const expr_fn g_fns[] = {
    {"abs", 1, dc_abs, NULL},           {"exp", 1, dc_exp, NULL},
    {"gelu", 1, fn_gelu, NULL},         {"log", 1, dc_log, NULL},
    {"max", 2, NULL, dc_maximum},       {"min", 2, NULL, dc_minimum},
    {"pow", 2, NULL, dc_pow},           {"reciprocal", 1, dc_reciprocal, NULL},
    {"relu", 1, dc_relu, NULL},         {"rsqrt", 1, dc_rsqrt, NULL},
    {"selu", 1, dc_selu, NULL},         {"sigmoid", 1, dc_sigmoid, NULL},
    {"softplus", 1, fn_softplus, NULL}, {"sqrt", 1, dc_sqrt, NULL},
    {"square", 1, dc_square, NULL},     {"tanh", 1, dc_tanh, NULL},
};
#define N_FNS ((int)(sizeof g_fns / sizeof g_fns[0]))

const char *dc_expr_functions(void) {
  static char list[512];
  if (!list[0]) {
    size_t n = 0;
    for (int k = 0; k < N_FNS; k++)
      n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", k ? ", " : "", g_fns[k].name);
  }
  return list;
}

static int find_fn(const char *name, size_t len) {
  for (int k = 0; k < N_FNS; k++)
    if (strlen(g_fns[k].name) == len && strncmp(g_fns[k].name, name, len) == 0) return k;
  return -1;
}

/* ---- parser ---- */

typedef struct parser {
  const char *src;
  size_t pos;
  int depth;
  dc_expr_error *err;
  bool failed;
} parser;

static void fail_at(parser *p, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_at(parser *p, size_t pos, const char *fmt, ...) {
  if (p->failed) return; /* keep the first (innermost) error */
  p->failed = true;
  p->err->column = (int)pos + 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
  va_end(ap);
}

static void skip_space(parser *p) {
  while (isspace((unsigned char)p->src[p->pos])) p->pos++;
}

/* What is at pos, for messages: "end of expression" or 'c'. */
static const char *describe(const parser *p, size_t pos, char *buf, size_t n) {
  if (!p->src[pos]) return "the end of the expression";
  snprintf(buf, n, "'%c'", p->src[pos]);
  return buf;
}

static dc_expr *new_node(parser *p, dc_expr_kind kind, size_t begin, size_t end) {
  dc_expr *e = calloc(1, sizeof *e);
  while (end > begin && isspace((unsigned char)p->src[end - 1])) end--;
  char *text = malloc(end - begin + 1);
  if (!e || !text) {
    free(e);
    free(text);
    fail_at(p, begin, "out of memory");
    return NULL;
  }
  memcpy(text, p->src + begin, end - begin);
  text[end - begin] = '\0';
  e->kind = kind;
  e->text = text;
  e->column = (int)begin + 1;
  return e;
}

static dc_expr *parse_expr(parser *p);
static dc_expr *parse_unary(parser *p);

static dc_expr *parse_number(parser *p) {
  size_t begin = p->pos, i = p->pos;
  bool digits = false;
  while (isdigit((unsigned char)p->src[i])) i++, digits = true;
  if (p->src[i] == '.') {
    i++;
    while (isdigit((unsigned char)p->src[i])) i++, digits = true;
  }
  if (digits && (p->src[i] == 'e' || p->src[i] == 'E')) {
    size_t j = i + 1;
    if (p->src[j] == '+' || p->src[j] == '-') j++;
    if (isdigit((unsigned char)p->src[j])) {
      while (isdigit((unsigned char)p->src[j])) j++;
      i = j;
    }
  }
  if (!digits) {
    fail_at(p, begin, "'.' must be part of a number such as 0.5");
    return NULL;
  }
  if (isalpha((unsigned char)p->src[i]) || p->src[i] == '_' || p->src[i] == '.') {
    size_t j = i;
    while (isalnum((unsigned char)p->src[j]) || p->src[j] == '_' || p->src[j] == '.') j++;
    if (p->src[i] == '.')
      fail_at(p, i, "malformed number '%.*s'", (int)(j - begin), p->src + begin);
    else
      fail_at(p, i, "a number followed by a name ('%.*s'); write %.*s*%.*s for a product",
              (int)(j - begin), p->src + begin, (int)(i - begin), p->src + begin, (int)(j - i),
              p->src + i);
    return NULL;
  }
  dc_expr *e = new_node(p, DC_EXPR_NUM, begin, i);
  if (!e) return NULL;
  e->num = strtod(e->text, NULL);
  p->pos = i;
  return e;
}

/* After NAME '(' at column open+1: the arguments and ')'. */
static dc_expr *parse_call(parser *p, size_t begin, int fn, size_t open) {
  dc_expr *args[2] = {NULL, NULL};
  int nargs = 0;
  p->pos = open + 1;
  skip_space(p);
  while (!p->failed && p->src[p->pos] != ')') {
    if (nargs == 2) {
      fail_at(p, p->pos, "%s takes %d argument%s, not more", g_fns[fn].name, g_fns[fn].arity,
              g_fns[fn].arity == 1 ? "" : "s");
      break;
    }
    if (!(args[nargs++] = parse_expr(p))) break;
    skip_space(p);
    if (p->src[p->pos] == ',') {
      p->pos++;
      skip_space(p);
      if (p->src[p->pos] == ')') fail_at(p, p->pos, "expected an argument after ','");
    } else if (p->src[p->pos] != ')') {
      char buf[8];
      fail_at(p, p->pos, "expected ',' or ')' in the call of %s (opened at column %zu), found %s",
              g_fns[fn].name, open + 1, describe(p, p->pos, buf, sizeof buf));
    }
  }
  if (!p->failed && nargs != g_fns[fn].arity)
    fail_at(p, p->pos, "%s takes %d argument%s, got %d", g_fns[fn].name, g_fns[fn].arity,
            g_fns[fn].arity == 1 ? "" : "s", nargs);
  dc_expr *e = NULL;
  if (!p->failed) {
    p->pos++; /* the ')' */
    e = new_node(p, DC_EXPR_CALL, begin, p->pos);
  }
  if (!e) {
    dc_expr_free(args[0]);
    dc_expr_free(args[1]);
    return NULL;
  }
  e->fn = fn;
  e->arg[0] = args[0];
  e->arg[1] = args[1];
  return e;
}

static dc_expr *parse_name(parser *p) {
  size_t begin = p->pos, i = p->pos;
  while (isalnum((unsigned char)p->src[i]) || p->src[i] == '_') i++;
  size_t len = i - begin;
  int fn = find_fn(p->src + begin, len);
  size_t j = i;
  while (isspace((unsigned char)p->src[j])) j++;
  if (p->src[j] == '(') {
    if (fn < 0) {
      fail_at(p, begin, "unknown function '%.*s'; the functions are: %s", (int)len, p->src + begin,
              dc_expr_functions());
      return NULL;
    }
    return parse_call(p, begin, fn, j);
  }
  if (fn >= 0) {
    fail_at(p, begin, "'%s' is a function: write %s(...)", g_fns[fn].name, g_fns[fn].name);
    return NULL;
  }
  p->pos = i;
  return new_node(p, DC_EXPR_VAR, begin, i);
}

static dc_expr *parse_primary(parser *p) {
  skip_space(p);
  char c = p->src[p->pos];
  if (isdigit((unsigned char)c) || c == '.') return parse_number(p);
  if (isalpha((unsigned char)c) || c == '_') return parse_name(p);
  if (c == '(') {
    size_t open = p->pos++;
    dc_expr *e = parse_expr(p);
    if (!e) return NULL;
    skip_space(p);
    if (p->src[p->pos] != ')') {
      char buf[8];
      fail_at(p, p->pos, "expected ')' to close the '(' at column %zu, found %s", open + 1,
              describe(p, p->pos, buf, sizeof buf));
      dc_expr_free(e);
      return NULL;
    }
    p->pos++;
    return e;
  }
  char buf[8];
  if (c && !strchr("+-*/^),", c) && !isspace((unsigned char)c))
    fail_at(p, p->pos,
            "unexpected character %s; expressions use numbers, names, + - * / ^, "
            "parentheses and functions",
            describe(p, p->pos, buf, sizeof buf));
  else
    fail_at(p, p->pos, "expected a number, a variable, a function call or '(' but found %s",
            describe(p, p->pos, buf, sizeof buf));
  return NULL;
}

static dc_expr *make_binary(parser *p, char op, dc_expr *a, dc_expr *b, size_t begin) {
  if (!b) {
    dc_expr_free(a);
    return NULL;
  }
  dc_expr *e = new_node(p, DC_EXPR_BINARY, begin, p->pos);
  if (!e) {
    dc_expr_free(a);
    dc_expr_free(b);
    return NULL;
  }
  e->op = op;
  e->arg[0] = a;
  e->arg[1] = b;
  return e;
}

static dc_expr *parse_power(parser *p) {
  skip_space(p);
  size_t begin = p->pos;
  dc_expr *base = parse_primary(p);
  if (!base) return NULL;
  skip_space(p);
  const char *s = p->src + p->pos;
  if (*s == '^' || (s[0] == '*' && s[1] == '*')) {
    p->pos += *s == '^' ? 1 : 2;
    return make_binary(p, '^', base, parse_unary(p), begin);
  }
  return base;
}

static dc_expr *parse_unary_inner(parser *p) {
  skip_space(p);
  size_t begin = p->pos;
  char c = p->src[p->pos];
  if (c != '-' && c != '+') return parse_power(p);
  p->pos++;
  dc_expr *a = parse_unary(p);
  if (!a || c == '+') return a;
  if (a->kind == DC_EXPR_NUM) { /* fold -2 into a constant */
    dc_expr *e = new_node(p, DC_EXPR_NUM, begin, p->pos);
    if (e) e->num = -a->num;
    dc_expr_free(a);
    return e;
  }
  dc_expr *e = new_node(p, DC_EXPR_NEG, begin, p->pos);
  if (!e) {
    dc_expr_free(a);
    return NULL;
  }
  e->arg[0] = a;
  return e;
}

/* Every recursion path (parentheses, calls, signs, exponents) passes here: count the depth. */
static dc_expr *parse_unary(parser *p) {
  if (++p->depth > EXPR_MAX_DEPTH) {
    fail_at(p, p->pos, "expression nested too deeply (more than %d levels)", EXPR_MAX_DEPTH);
    return NULL;
  }
  dc_expr *e = parse_unary_inner(p);
  p->depth--;
  return e;
}

static dc_expr *parse_term(parser *p) {
  skip_space(p);
  size_t begin = p->pos;
  dc_expr *e = parse_unary(p);
  for (;;) {
    if (!e) return NULL;
    skip_space(p);
    const char *s = p->src + p->pos;
    if ((*s != '*' && *s != '/') || (s[0] == '*' && s[1] == '*')) return e;
    p->pos++;
    e = make_binary(p, *s, e, parse_unary(p), begin);
  }
}

static dc_expr *parse_expr(parser *p) {
  skip_space(p);
  size_t begin = p->pos;
  dc_expr *e = parse_term(p);
  for (;;) {
    if (!e) return NULL;
    skip_space(p);
    char c = p->src[p->pos];
    if (c != '+' && c != '-') return e;
    p->pos++;
    e = make_binary(p, c, e, parse_term(p), begin);
  }
}

dc_expr *dc_expr_parse(const char *src, dc_expr_error *err) {
  parser p = {.src = src, .err = err};
  err->column = 0;
  err->msg[0] = '\0';
  size_t len = strlen(src);
  if (len > EXPR_MAX_LEN) {
    fail_at(&p, EXPR_MAX_LEN, "the expression is longer than %d characters", EXPR_MAX_LEN);
    return NULL;
  }
  skip_space(&p);
  if (!src[p.pos]) {
    fail_at(&p, p.pos, "the expression is empty");
    return NULL;
  }
  dc_expr *e = parse_expr(&p);
  if (!e) return NULL;
  skip_space(&p);
  if (src[p.pos]) {
    char buf[8];
    char c = src[p.pos];
    if (c == ')')
      fail_at(&p, p.pos, "unmatched ')'");
    else if (!isalnum((unsigned char)c) && !strchr("_.(", c))
      fail_at(&p, p.pos,
              "unexpected character %s; expressions use numbers, names, + - * / ^, "
              "parentheses and functions",
              describe(&p, p.pos, buf, sizeof buf));
    else
      fail_at(&p, p.pos, "unexpected %s after a complete expression (missing operator?)",
              describe(&p, p.pos, buf, sizeof buf));
    dc_expr_free(e);
    return NULL;
  }
  return e;
}

void dc_expr_free(dc_expr *e) {
  if (!e) return;
  dc_expr_free(e->arg[0]);
  dc_expr_free(e->arg[1]);
  free(e->text);
  free(e);
}

const char *dc_expr_op_name(const dc_expr *e) {
  switch (e->kind) {
  case DC_EXPR_NUM:
    return "const";
  case DC_EXPR_VAR:
    return "var";
  case DC_EXPR_NEG:
    return "neg";
  case DC_EXPR_CALL:
    return g_fns[e->fn].name;
  case DC_EXPR_BINARY:
    switch (e->op) {
    case '+':
      return "add";
    case '-':
      return "sub";
    case '*':
      return "mul";
    case '/':
      return "div";
    case '^':
      return "pow";
    }
  }
  return "?";
}

static int collect_vars(const dc_expr *e, const char **names, int n, int max) {
  if (!e) return n;
  if (e->kind == DC_EXPR_VAR) {
    for (int k = 0; k < n && k < max; k++)
      if (strcmp(names[k], e->text) == 0) return n;
    if (n < max) names[n] = e->text;
    return n + 1;
  }
  n = collect_vars(e->arg[0], names, n, max);
  return collect_vars(e->arg[1], names, n, max);
}

int dc_expr_vars(const dc_expr *e, const char **names, int max) {
  return collect_vars(e, names, 0, max);
}

/* ---- evaluation ---- */

static dc_tensor *binary_op(char op, dc_tensor *a, dc_tensor *b) {
  switch (op) {
  case '+':
    return dc_add(a, b);
  case '-':
    return dc_sub(a, b);
  case '*':
    return dc_mul(a, b);
  case '/':
    return dc_div(a, b);
  case '^':
    return dc_pow(a, b);
  }
  return NULL;
}

dc_tensor *dc_expr_eval(const dc_expr *e, dc_expr_lookup lookup, dc_expr_visit visit, void *ud) {
  dc_tensor *t = NULL, *a = NULL, *b = NULL;
  switch (e->kind) {
  case DC_EXPR_NUM:
    t = dc_scalar(e->num, DC_F64);
    break;
  case DC_EXPR_VAR:
    t = lookup(e->text, ud);
    break;
  case DC_EXPR_NEG:
    a = dc_expr_eval(e->arg[0], lookup, visit, ud);
    t = dc_neg(a);
    break;
  case DC_EXPR_BINARY:
    a = dc_expr_eval(e->arg[0], lookup, visit, ud);
    b = a ? dc_expr_eval(e->arg[1], lookup, visit, ud) : NULL;
    t = binary_op(e->op, a, b);
    break;
  case DC_EXPR_CALL:
    a = dc_expr_eval(e->arg[0], lookup, visit, ud);
    if (g_fns[e->fn].arity == 1) {
      t = g_fns[e->fn].f1(a);
    } else {
      b = a ? dc_expr_eval(e->arg[1], lookup, visit, ud) : NULL;
      t = g_fns[e->fn].f2(a, b);
    }
    break;
  }
  if (!t) return NULL;
  if (e->kind != DC_EXPR_VAR) t->name = e->text;
  if (visit) visit(e, t, ud);
  return t;
}
