/* Exercise 1: what the backward pass costs against the forward pass. For a network of linear
 * layers the forward pass does one matrix product per layer (Y = X W^T: 2 B in out flops); the
 * backward pass does two (dX = dY W and dW = dY^T X), except dX of the first layer, which nobody
 * needs: about twice the forward work. Times both on a 784-1024-1024-10 MLP (batch 256) and on
 * the course's Fashion-MNIST CNN (batch 64) and prints medians and ratios.
 * usage: backward_cost [--reps N] (default 15) */
#include <deepc/deepc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median forward and backward seconds of model on input x [B, ...] with labels y [B]. */
static int time_model(dc_module *m, dc_tensor *x, dc_tensor *y, int reps, double *fwd,
                      double *bwd) {
  double *tf = malloc(sizeof(double) * reps), *tb = malloc(sizeof(double) * reps);
  if (!tf || !tb) return free(tf), free(tb), DC_ERR_NOMEM;
  int rc = DC_OK;
  for (int r = -2; r < reps && rc == DC_OK; r++) { /* two warm-up rounds */
    dc_scope_begin();
    dc_module_zero_grad(m);
    double t0 = now();
    dc_tensor *loss = dc_cross_entropy(dc_module_forward(m, x), y);
    double t1 = now();
    rc = loss ? dc_backward(loss) : (int)dc_last_status();
    double t2 = now();
    dc_scope_end();
    if (r >= 0) tf[r] = t1 - t0, tb[r] = t2 - t1;
  }
  qsort(tf, reps, sizeof(double), cmp);
  qsort(tb, reps, sizeof(double), cmp);
  *fwd = tf[reps / 2], *bwd = tb[reps / 2];
  free(tf), free(tb);
  return rc;
}

static int report(const char *name, const char *spec, dc_shape in, int reps, double flop_ratio) {
  dc_module *m = dc_nn_from_spec(spec);
  if (!m) return dc_last_status();
  dc_tensor *x = dc_randn(in, DC_F32), *y = dc_randint(0, 10, DC_SHAPE(in.d[0]), DC_I64);
  double f = 0, b = 0;
  int rc = time_model(m, x, y, reps, &f, &b);
  if (rc == DC_OK)
    printf("%-30s forward %8.2f ms   backward %8.2f ms   backward/forward %.2f   (flops %.2f)\n",
           name, 1e3 * f, 1e3 * b, b / f, flop_ratio);
  dc_free(x), dc_free(y);
  dc_module_free(m);
  return rc;
}

int main(int argc, char **argv) {
  int reps = 15;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--reps") && i + 1 < argc && (reps = atoi(argv[++i])) > 0) continue;
    fprintf(stderr, "usage: backward_cost [--reps N]\n");
    return 2;
  }
  dc_manual_seed(0);
  /* flops: forward sum 2B in out; backward 2x that minus the first layer's dX */
  double l1 = 784.0 * 1024, l2 = 1024.0 * 1024, l3 = 1024.0 * 10;
  double mlp_ratio = (2 * (l1 + l2 + l3) - l1) / (l1 + l2 + l3);
  int rc = report("MLP 784-1024-1024-10, B=256",
                  "flatten, linear(784,1024), relu, linear(1024,1024), relu, linear(1024,10)",
                  DC_SHAPE(256, 1, 28, 28), reps, mlp_ratio);
  /* conv: the first conv's input gradient is not needed either (1 input channel: cheap) */
  if (rc == DC_OK)
    rc = report("CNN 3 conv blocks, B=64",
                "conv2d(1,32,5,padding=2), batchnorm2d(32), relu, maxpool2d(2), "
                "conv2d(32,32,5,padding=2), batchnorm2d(32), relu, maxpool2d(2), "
                "conv2d(32,64,5,padding=2), batchnorm2d(64), relu, maxpool2d(2), flatten, "
                "linear(576,64), relu, linear(64,10)",
                DC_SHAPE(64, 1, 28, 28), reps, 2.0);
  if (rc != DC_OK) {
    fprintf(stderr, "backward_cost: %s\n", dc_last_error());
    return 1;
  }
  printf("medians of %d runs each; 'flops' is the ratio of multiply-adds the two passes do\n",
         reps);
  return 0;
}
