/* `deepc graph`: builds a computational graph from an arithmetic expression over scalar float64
 * variables, runs forward and backward, prints every node's value and d out / d node, and writes
 * the graph as Graphviz DOT (and SVG through Graphviz's `dot` program). */
#include "commands.h"
#include "expr.h"

#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define GRAPH_MAX_VARS 256
#define CMD "graph"

static void usage(FILE *f) {
  fprintf(f,
          "usage: deepc graph EXPR --set NAME=VALUE [--set ...] [--wrt all|NAME,...]\n"
          "                   [--dot FILE|-] [--svg FILE] [--format table|tsv]\n\n"
          "Builds the computational graph of EXPR from scalar float64 variables, runs the\n"
          "forward pass and backward from the result, and prints every node's value and the\n"
          "partial derivative d out / d node (intermediate nodes keep their gradients, as with\n"
          "retain_grad).\n\n"
          "  EXPR              numbers, variables, + - * / ^ (or **), unary minus, parentheses\n"
          "                    and the functions %s\n"
          "  --set NAME=VALUE  value of a variable (repeat, or NAME=VALUE,NAME=VALUE); every\n"
          "                    variable needs one\n"
          "  --wrt all|NAMES   variables that require grad (default all); the others are\n"
          "                    constants\n"
          "  --dot FILE        write the graph as Graphviz DOT ('-': to stdout, no table)\n"
          "  --svg FILE        render the graph as SVG with Graphviz's `dot` program\n"
          "  --format FMT      table (default) or tsv: node, op, value, grad separated by tabs\n\n"
          "example:\n"
          "  deepc graph \"sigmoid(w1*x1 + w2*x2) * w3\" --set x1=1,x2=2 \\\n"
          "      --set w1=0.5,w2=-0.25,w3=2 --svg graph.svg\n",
          dc_expr_functions());
}

typedef struct graph_var {
  const char *name;
  double value;
  bool set;
  bool wrt;
  dc_tensor *t;
} graph_var;

typedef struct graph_set {
  char name[64];
  double value;
  bool used;
} graph_set;

typedef struct graph_row {
  const dc_expr *e;
  dc_tensor *t;
} graph_row;

typedef struct graph_ctx {
  graph_var vars[GRAPH_MAX_VARS];
  int nvars;
  graph_row *rows;
  int nrows, caprows;
  bool oom;
} graph_ctx;

/* ---- arguments ---- */

typedef struct graph_args {
  const char *expr;
  graph_set sets[GRAPH_MAX_VARS];
  int nsets;
  const char *wrt; /* NULL or "all": every variable */
  const char *dot;
  const char *svg;
  bool tsv;
} graph_args;

static bool is_name(const char *s, size_t n) {
  if (n == 0 || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
    return false;
  for (size_t k = 1; k < n; k++) {
    char c = s[k];
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return false;
  }
  return true;
}

/* One --set value: NAME=VALUE[,NAME=VALUE...]. */
static int add_sets(graph_args *a, const char *spec) {
  const char *p = spec;
  for (;;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    if (!eq)
      return dc_cli_usage_error(CMD, "--set %.*s: expected NAME=VALUE, e.g. --set x=1.5", (int)len,
                                p);
    size_t nlen = (size_t)(eq - p);
    if (!is_name(p, nlen) || nlen >= sizeof a->sets[0].name)
      return dc_cli_usage_error(CMD,
                                "--set %.*s: '%.*s' is not a variable name (letters, digits, "
                                "'_'; not starting with a digit)",
                                (int)len, p, (int)nlen, p);
    char num[64];
    size_t vlen = len - nlen - 1;
    char *vend = NULL;
    double v = 0;
    if (vlen > 0 && vlen < sizeof num) {
      memcpy(num, eq + 1, vlen);
      num[vlen] = '\0';
      v = strtod(num, &vend);
    }
    if (!vend || vend == num || *vend)
      return dc_cli_usage_error(CMD, "--set %.*s: '%.*s' is not a number", (int)len, p, (int)vlen,
                                eq + 1);
    for (int k = 0; k < a->nsets; k++)
      if (strlen(a->sets[k].name) == nlen && strncmp(a->sets[k].name, p, nlen) == 0)
        return dc_cli_usage_error(CMD, "--set: %.*s is given twice", (int)nlen, p);
    if (a->nsets == GRAPH_MAX_VARS)
      return dc_cli_usage_error(CMD, "--set: more than %d variables", GRAPH_MAX_VARS);
    graph_set *s = &a->sets[a->nsets++];
    memcpy(s->name, p, nlen);
    s->name[nlen] = '\0';
    s->value = v;
    if (!end) return DC_CLI_OK;
    p = end + 1;
  }
}

/* DC_CLI_OK, or an exit status; -1 after printing help. */
static int parse_args(int argc, char **argv, graph_args *a) {
  bool options = true; /* false after "--": what follows is the expression */
  for (int i = 1; i < argc; i++) {
    const char *v = NULL;
    int rc = DC_CLI_OK;
    bool is_opt = options && argv[i][0] == '-' && argv[i][1] == '-';
    if (options && dc_cli_is_help(argv[i])) {
      usage(stdout);
      return -1;
    } else if (is_opt && argv[i][2] == '\0') {
      options = false;
    } else if (is_opt && dc_cli_opt(argc, argv, &i, "--set", &v)) {
      rc = v ? add_sets(a, v) : dc_cli_usage_error(CMD, "--set needs NAME=VALUE");
    } else if (is_opt && dc_cli_opt(argc, argv, &i, "--wrt", &v)) {
      if (!v || !*v) rc = dc_cli_usage_error(CMD, "--wrt needs 'all' or a list of variables");
      a->wrt = v;
    } else if (is_opt && dc_cli_opt(argc, argv, &i, "--dot", &v)) {
      if (!v || !*v) rc = dc_cli_usage_error(CMD, "--dot needs a file name (or - for stdout)");
      a->dot = v;
    } else if (is_opt && dc_cli_opt(argc, argv, &i, "--svg", &v)) {
      if (!v || !*v) rc = dc_cli_usage_error(CMD, "--svg needs a file name");
      a->svg = v;
    } else if (is_opt && dc_cli_opt(argc, argv, &i, "--format", &v)) {
      if (!v || (strcmp(v, "table") != 0 && strcmp(v, "tsv") != 0))
        rc = dc_cli_usage_error(CMD, "--format is 'table' or 'tsv'");
      a->tsv = v && strcmp(v, "tsv") == 0;
    } else if (is_opt) {
      rc = dc_cli_usage_error(CMD,
                              "unknown option '%s' (an expression that starts with '--' "
                              "goes after a '--' argument)",
                              argv[i]);
    } else if (a->expr) {
      rc = dc_cli_usage_error(CMD,
                              "one expression expected, got '%s' and '%s' (quote the "
                              "expression if it has spaces)",
                              a->expr, argv[i]);
    } else {
      a->expr = argv[i];
    }
    if (rc != DC_CLI_OK) return rc;
  }
  if (!a->expr)
    return dc_cli_usage_error(CMD,
                              "no expression given, e.g. deepc graph \"x*y + 1\" --set x=2,y=3");
  return DC_CLI_OK;
}

/* ---- variables ---- */

static int print_parse_error(const char *src, const dc_expr_error *err) {
  fprintf(stderr, "deepc %s: column %d: %s\n  %s\n  %*s^\n", CMD, err->column, err->msg, src,
          err->column - 1, "");
  return DC_CLI_FAIL;
}

static bool in_list(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && strncmp(p, name, n) == 0) return true;
    p = end ? end + 1 : NULL;
  }
  return false;
}

/* Matches variables to --set values and --wrt names; reports every missing value at once. */
static int bind_vars(graph_ctx *g, graph_args *a, const dc_expr *e) {
  const char *names[GRAPH_MAX_VARS];
  int n = dc_expr_vars(e, names, GRAPH_MAX_VARS);
  if (n > GRAPH_MAX_VARS) return dc_cli_error(CMD, "more than %d variables", GRAPH_MAX_VARS);
  bool all = !a->wrt || strcmp(a->wrt, "all") == 0;
  char missing[1024] = "";
  size_t nm = 0;
  for (int k = 0; k < n; k++) {
    graph_var *v = &g->vars[k];
    v->name = names[k];
    v->wrt = all || in_list(a->wrt, names[k]);
    for (int s = 0; s < a->nsets; s++)
      if (strcmp(a->sets[s].name, names[k]) == 0) {
        v->set = a->sets[s].used = true;
        v->value = a->sets[s].value;
      }
    if (!v->set && nm < sizeof missing)
      nm += (size_t)snprintf(missing + nm, sizeof missing - nm, "%s%s", nm ? ", " : "", names[k]);
  }
  g->nvars = n;
  if (nm)
    return dc_cli_error(CMD, "no value for %s; give %s with --set NAME=VALUE", missing,
                        strchr(missing, ',') ? "them" : "it");
  if (!all)
    for (const char *p = a->wrt; p;) {
      const char *end = strchr(p, ',');
      size_t len = end ? (size_t)(end - p) : strlen(p);
      bool found = false;
      for (int k = 0; k < n; k++)
        found |= strlen(names[k]) == len && strncmp(names[k], p, len) == 0;
      if (!found)
        return dc_cli_error(CMD, "--wrt: '%.*s' is not a variable of the expression", (int)len, p);
      p = end ? end + 1 : NULL;
    }
  for (int s = 0; s < a->nsets; s++)
    if (!a->sets[s].used)
      fprintf(stderr, "deepc %s: warning: --set %s: no variable %s in the expression\n", CMD,
              a->sets[s].name, a->sets[s].name);
  return DC_CLI_OK;
}

static dc_tensor *lookup(const char *name, void *ud) {
  graph_ctx *g = ud;
  for (int k = 0; k < g->nvars; k++)
    if (strcmp(g->vars[k].name, name) == 0) return g->vars[k].t;
  return NULL;
}

/* Rows of the table in forward order: each variable once (first use), every operation. */
static void visit(const dc_expr *e, dc_tensor *t, void *ud) {
  graph_ctx *g = ud;
  if (e->kind == DC_EXPR_NUM) return;
  for (int k = 0; e->kind == DC_EXPR_VAR && k < g->nrows; k++)
    if (g->rows[k].t == t) return;
  if (g->nrows == g->caprows) {
    int cap = g->caprows ? g->caprows * 2 : 32;
    graph_row *r = realloc(g->rows, (size_t)cap * sizeof *r);
    if (!r) {
      g->oom = true;
      return;
    }
    g->rows = r;
    g->caprows = cap;
  }
  g->rows[g->nrows++] = (graph_row){e, t};
}

/* ---- output ---- */

static void fmt_num(char *buf, size_t n, const dc_tensor *t) {
  if (!t)
    snprintf(buf, n, "-");
  else
    snprintf(buf, n, "%.10g", dc_item(t));
}

/* The node column of the table: longer labels are shortened with "..." (the TSV format always
 * has them whole). */
#define TABLE_MAX_LABEL 48

static void print_table(const graph_ctx *g, bool tsv) {
  int w = 4;
  for (int k = 0; k < g->nrows; k++) {
    int len = (int)strlen(g->rows[k].e->text);
    w = len > w ? len : w;
  }
  w = w > TABLE_MAX_LABEL ? TABLE_MAX_LABEL : w;
  if (tsv)
    printf("node\top\tvalue\tgrad\n");
  else
    printf("%-*s  %-10s  %-18s  %s\n", w, "node", "op", "value", "grad (d out / d node)");
  for (int k = 0; k < g->nrows; k++) {
    const graph_row *r = &g->rows[k];
    const char *op = r->e->kind == DC_EXPR_VAR ? "leaf" : dc_grad_fn_name(r->t);
    if (!op) op = dc_expr_op_name(r->e);
    char val[64], grad[64];
    fmt_num(val, sizeof val, r->t);
    fmt_num(grad, sizeof grad, r->t->requires_grad ? r->t->grad : NULL);
    const char *text = r->e->text;
    if (tsv)
      printf("%s\t%s\t%s\t%s\n", text, op, val, grad);
    else if ((int)strlen(text) <= w)
      printf("%-*s  %-10s  %-18s  %s\n", w, text, op, val, grad);
    else
      printf("%.*s...  %-10s  %-18s  %s\n", w - 3, text, op, val, grad);
  }
}

static int write_dot(const char *path, dc_tensor *out) {
  FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
  if (!f) return dc_cli_error(CMD, "cannot write %s", path);
  int rc = dc_graph_dot(f, out, (dc_dot_opts){.values = true, .grads = true});
  if (f != stdout && fclose(f) != 0 && rc == DC_OK)
    return dc_cli_error(CMD, "writing %s failed", path);
  return rc == DC_OK ? DC_CLI_OK : dc_cli_lib_error(CMD);
}

/* Full path of a program on PATH, or false. */
static bool find_program(const char *name, char *out, size_t n) {
  const char *path = getenv("PATH");
  for (const char *p = path; p && *p;) {
    const char *end = strchr(p, ':');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    snprintf(out, n, "%.*s/%s", (int)(len ? len : 1), len ? p : ".", name);
    if (access(out, X_OK) == 0) return true;
    p = end ? end + 1 : NULL;
  }
  return false;
}

static int write_svg(const char *path, dc_tensor *out) {
  char dot[4096];
  if (!find_program("dot", dot, sizeof dot))
    return dc_cli_error(CMD,
                        "--svg needs Graphviz's `dot` program, which is not on PATH; install "
                        "Graphviz (apt-get install graphviz), or write DOT with --dot FILE and "
                        "render it elsewhere");
  char tmp[] = "/tmp/deepc-graph-XXXXXX";
  int fd = mkstemp(tmp);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) {
    if (fd >= 0) close(fd);
    return dc_cli_error(CMD, "cannot create a temporary file for the DOT text");
  }
  int rc = dc_graph_dot(f, out, (dc_dot_opts){.values = true, .grads = true});
  if (fclose(f) != 0 && rc == DC_OK) rc = DC_ERR_IO;
  if (rc != DC_OK) {
    unlink(tmp);
    return dc_cli_lib_error(CMD);
  }
  char *args[] = {dot, "-Tsvg", "-o", (char *)path, tmp, NULL};
  pid_t pid;
  int status = 0;
  int err = posix_spawn(&pid, dot, NULL, NULL, args, environ);
  if (err == 0 && waitpid(pid, &status, 0) < 0) err = 1;
  unlink(tmp);
  if (err != 0) return dc_cli_error(CMD, "could not run %s", dot);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return dc_cli_error(CMD, "%s failed to render %s (its message is above)", dot, path);
  return DC_CLI_OK;
}

/* ---- the command ---- */

/* Forward, backward, table and files, inside the caller's scope. */
static int run_graph(graph_ctx *g, const graph_args *a, const dc_expr *e) {
  for (int k = 0; k < g->nvars; k++) {
    graph_var *v = &g->vars[k];
    v->t = dc_scalar(v->value, DC_F64);
    if (!v->t || (v->wrt && !dc_requires_grad_(v->t, true))) return dc_cli_lib_error(CMD);
    v->t->name = v->name;
  }
  dc_tensor *out = dc_expr_eval(e, lookup, visit, g);
  if (g->oom) return dc_cli_error(CMD, "out of memory");
  if (!out) return dc_cli_lib_error(CMD);
  for (int k = 0; k < g->nrows; k++) {
    dc_tensor *t = g->rows[k].t;
    if (t->grad_fn && dc_retain_grad(t) != DC_OK) return dc_cli_lib_error(CMD);
  }
  if (out->requires_grad && dc_backward(out) != DC_OK) return dc_cli_lib_error(CMD);
  bool dot_stdout = a->dot && strcmp(a->dot, "-") == 0;
  if (!dot_stdout) {
    print_table(g, a->tsv);
    if (!out->requires_grad)
      fprintf(stderr, "deepc %s: note: no variable requires grad, so there are no gradients\n",
              CMD);
  }
  int rc = DC_CLI_OK;
  if (a->dot) rc = write_dot(a->dot, out);
  if (rc == DC_CLI_OK && a->svg) rc = write_svg(a->svg, out);
  return rc;
}

int dc_cmd_graph(int argc, char **argv) {
  graph_args *a = calloc(1, sizeof *a);
  graph_ctx *g = calloc(1, sizeof *g);
  int rc = a && g ? parse_args(argc, argv, a) : dc_cli_error(CMD, "out of memory");
  dc_expr *e = NULL;
  if (rc == DC_CLI_OK) {
    dc_expr_error err;
    e = dc_expr_parse(a->expr, &err);
    rc = e ? bind_vars(g, a, e) : print_parse_error(a->expr, &err);
  }
  if (rc == DC_CLI_OK) {
    if (dc_scope_begin() != DC_OK) {
      rc = dc_cli_lib_error(CMD);
    } else {
      rc = run_graph(g, a, e);
      dc_scope_end();
    }
  }
  dc_expr_free(e);
  if (g) free(g->rows);
  free(g);
  free(a);
  return rc < 0 ? DC_CLI_OK : rc;
}
