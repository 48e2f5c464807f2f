/* Arithmetic expressions for `deepc graph`: a recursive-descent parser (numbers, variables,
 * + - * / ^, unary minus, parentheses, deepc's elementwise functions) whose errors point at a
 * column, and an evaluator that builds the expression as deepc ops. */
#ifndef DC_CLI_EXPR_H
#define DC_CLI_EXPR_H

#include <deepc/deepc.h>

typedef enum dc_expr_kind {
  DC_EXPR_NUM,    /* a number literal */
  DC_EXPR_VAR,    /* a variable */
  DC_EXPR_NEG,    /* -arg[0] */
  DC_EXPR_BINARY, /* arg[0] op arg[1] */
  DC_EXPR_CALL    /* fn(arg[0] [, arg[1]]) */
} dc_expr_kind;

typedef struct dc_expr {
  dc_expr_kind kind;
  char op;    /* BINARY: one of + - * / ^ */
  int fn;     /* CALL: index into the function table (dc_expr_fn_name) */
  double num; /* NUM */
  char *text; /* source text of this sub-expression (a VAR's name) */
  struct dc_expr *arg[2];
  int column; /* 1-based column where the sub-expression starts */
} dc_expr;

typedef struct dc_expr_error {
  int column; /* 1-based column of the problem */
  char msg[256];
} dc_expr_error;

/* Parses src. NULL on error, with err filled (the column and what is wrong). */
dc_expr *dc_expr_parse(const char *src, dc_expr_error *err);
void dc_expr_free(dc_expr *e);

/* Names of the functions the parser accepts, separated by ", " (for help and errors). */
const char *dc_expr_functions(void);

/* Short name of the operation at the root of e: "add", "sub", "mul", "div", "pow", "neg", a
 * function name, "const" for a number, "var" for a variable. */
const char *dc_expr_op_name(const dc_expr *e);

/* Distinct variable names in order of first appearance; returns how many (at most max are
 * written; the pointers stay valid while e lives). */
int dc_expr_vars(const dc_expr *e, const char **names, int max);

/* Builds the expression with deepc ops (float64; number literals become constant tensors named
 * by their text, every other result is named by its sub-expression text). lookup gives the
 * tensor of a variable; visit (may be NULL) sees each sub-expression's tensor after it is made,
 * children first. Tensors are made in the current scope. NULL + dc_last_error() on failure. */
typedef dc_tensor *(*dc_expr_lookup)(const char *name, void *ud);
typedef void (*dc_expr_visit)(const dc_expr *e, dc_tensor *t, void *ud);
dc_tensor *dc_expr_eval(const dc_expr *e, dc_expr_lookup lookup, dc_expr_visit visit, void *ud);

#endif
