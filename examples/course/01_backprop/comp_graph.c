/* Exercise 1: a small computational graph of sums, products and a sigmoid,
 *     f = sigmoid(w0 x0 + w1 x1 + w2)        (a = w0 x0, b = w1 x1, s = a + b, z = s + w2)
 * given numeric inputs: the forward value of every node, every partial derivative df/dnode from
 * deepc's backward pass (intermediate nodes keep theirs with dc_retain_grad), each checked
 * against a central finite difference (the node's value nudged by +-h, the rest recomputed),
 * and the graph written as Graphviz DOT with values and gradients.
 * usage: comp_graph [--dot FILE] [w0 w1 w2 x0 x1]   (default 2 -3 -3 -1 -2). Exit 1 on mismatch. */
#include <deepc/deepc.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { W0, W1, W2, X0, X1, A, B, S, Z, F, NNODES }; /* leaves first, then the ops in order */
static const char *const NAME[NNODES] = {
    "w0",        "w1",        "w2",        "x0",         "x1",
    "a = w0*x0", "b = w1*x1", "s = a + b", "z = s + w2", "f = sigmoid(z)"};

/* Builds the graph from the five leaf values; node `bump` (or none: -1) has h added to its
 * value, as if that node's output were perturbed. node[] receives every node (0-d float64). */
static void forward(const double leaf[5], int bump, double h, bool grad, dc_tensor *node[NNODES]) {
  for (int i = 0; i < 5; i++) {
    node[i] = dc_scalar(leaf[i] + (bump == i ? h : 0), DC_F64);
    if (grad) dc_requires_grad_(node[i], true);
  }
#define OUT(k, expr) node[k] = bump == (k) ? dc_add_scalar((expr), h) : (expr)
  OUT(A, dc_mul(node[W0], node[X0]));
  OUT(B, dc_mul(node[W1], node[X1]));
  OUT(S, dc_add(node[A], node[B]));
  OUT(Z, dc_add(node[S], node[W2]));
  OUT(F, dc_sigmoid(node[Z]));
#undef OUT
}

int main(int argc, char **argv) {
  double leaf[5] = {2, -3, -3, -1, -2};
  const char *dot = NULL;
  int nleaf = 0;
  for (int i = 1; i < argc; i++) {
    char *end;
    if (!strcmp(argv[i], "--dot") && i + 1 < argc)
      dot = argv[++i];
    else if (nleaf < 5 && (leaf[nleaf] = strtod(argv[i], &end), end != argv[i] && !*end))
      nleaf++;
    else {
      fprintf(stderr, "usage: comp_graph [--dot FILE] [w0 w1 w2 x0 x1]\n");
      return 2;
    }
  }
  if (nleaf != 0 && nleaf != 5) {
    fprintf(stderr, "comp_graph: give all five values w0 w1 w2 x0 x1 (got %d)\n", nleaf);
    return 2;
  }
  dc_scope_begin();
  dc_tensor *node[NNODES];
  forward(leaf, -1, 0, true, node);
  for (int k = A; k < F; k++) dc_retain_grad(node[k]);
  if (dc_backward(node[F]) != DC_OK) {
    fprintf(stderr, "comp_graph: %s\n", dc_last_error());
    return 1;
  }
  /* finite differences: df/dnode ~ (f(node + h) - f(node - h)) / 2h, everything else recomputed */
  const double h = 1e-6;
  int bad = 0;
  printf("%-16s %12s %14s %14s %10s\n", "node", "value", "df/dnode", "finite diff", "check");
  dc_set_grad_enabled(false);
  for (int k = 0; k < NNODES; k++) {
    dc_tensor *plus[NNODES], *minus[NNODES];
    forward(leaf, k, h, false, plus);
    forward(leaf, k, -h, false, minus);
    double fd = (dc_item(plus[F]) - dc_item(minus[F])) / (2 * h);
    double g = k == F ? 1.0 : dc_item(node[k]->grad);
    bool ok = fabs(g - fd) <= 1e-8 + 1e-6 * fabs(fd);
    bad += !ok;
    printf("%-16s %12.6f %14.8f %14.8f %10s\n", NAME[k], dc_item(node[k]), g, fd,
           ok ? "ok" : "MISMATCH");
  }
  dc_set_grad_enabled(true);
  /* the chain rule by hand, for the record: sigma'(z) = f (1 - f), and d(uv)/du = v */
  double f = dc_item(node[F]), dz = f * (1 - f);
  printf("\nby hand: df/dz = f(1-f) = %.8f; df/dw0 = df/dz * x0 = %.8f; df/dx0 = df/dz * w0 = "
         "%.8f\n",
         dz, dz * leaf[X0], dz * leaf[W0]);
  if (dot) {
    FILE *fp = fopen(dot, "w");
    if (!fp || dc_graph_dot(fp, node[F], (dc_dot_opts){.values = true, .grads = true}) != DC_OK) {
      fprintf(stderr, "comp_graph: cannot write %s: %s\n", dot, fp ? dc_last_error() : "fopen");
      if (fp) fclose(fp);
      return 1;
    }
    fclose(fp);
    printf("graph: %s (render with: dot -Tpng %s -o graph.png)\n", dot, dot);
  }
  dc_scope_end();
  if (bad) {
    printf("%d partial derivative(s) disagree with finite differences\n", bad);
    return 1;
  }
  printf("all %d partial derivatives agree with central finite differences (h = %g)\n", NNODES, h);
  return 0;
}
