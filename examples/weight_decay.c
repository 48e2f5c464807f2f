/* What SGD's weight decay does: with lr eta and weight_decay lambda, torch's (and deepc's) SGD
 * adds lambda * theta to the gradient, so one step is
 *     theta' = theta - eta (g + lambda theta) = (1 - eta lambda) theta - eta g:
 * the weights shrink by the factor (1 - eta lambda) before the gradient step. Runs deepc's SGD on
 * fixed float64 numbers, prints both sides, then shows k steps with a zero gradient give
 * (1 - eta lambda)^k theta. Exit status 0 only when deepc matches the formulas. */
#include <deepc/deepc.h>

#include <math.h>
#include <stdio.h>

enum { P = 4 };
static const double ETA = 0.1, LAMBDA = 0.05;
static const double THETA0[P] = {1.0, -2.0, 3.0, 0.5};
static const double GRAD[P] = {0.2, 0.1, -0.3, 0.0};

static int fail(void) {
  fprintf(stderr, "weight_decay: %s\n", dc_last_error());
  return 1;
}

/* One SGD step of p with gradient g (values [P]). */
static int step(dc_optim *o, dc_tensor *p, const double *g) {
  dc_tensor *gt = dc_from_data(g, DC_SHAPE(P), DC_F64);
  dc_optim_zero_grad(o);
  int rc = dc_backward(p, .grad = gt);
  if (rc == DC_OK) rc = dc_optim_step(o);
  dc_free(gt);
  return rc;
}

int main(void) {
  dc_tensor *p = dc_requires_grad_(dc_from_data(THETA0, DC_SHAPE(P), DC_F64), true);
  dc_optim_hparams h = dc_optim_defaults(DC_OPTIM_SGD);
  h.lr = ETA;
  h.weight_decay = LAMBDA;
  dc_optim *o = dc_optim_create(DC_OPTIM_SGD, &p, 1, h);
  if (!o || step(o, p, GRAD) != DC_OK) return fail();
  const double *theta = dc_data(p);
  double shrink = 1 - ETA * LAMBDA;
  int ok = 1;
  printf("SGD with lr eta = %g, weight_decay lambda = %g: shrink factor 1 - eta*lambda = %g\n\n",
         ETA, LAMBDA, shrink);
  printf("%9s %9s %16s %9s %20s %14s\n", "theta", "g", "(1-eta*l)*theta", "-eta*g",
         "(1-eta*l)*theta-eta*g", "deepc SGD step");
  for (int i = 0; i < P; i++) {
    double want = shrink * THETA0[i] - ETA * GRAD[i];
    printf("%9.4f %9.4f %16.6f %9.4f %20.6f %14.6f\n", THETA0[i], GRAD[i], shrink * THETA0[i],
           -ETA * GRAD[i], want, theta[i]);
    if (fabs(theta[i] - want) > 1e-12) ok = 0;
  }
  /* a fresh parameter and optimizer: only the decay acts when the gradient is zero */
  dc_tensor *q = dc_requires_grad_(dc_from_data(THETA0, DC_SHAPE(P), DC_F64), true);
  dc_optim *o2 = dc_optim_create(DC_OPTIM_SGD, &q, 1, h);
  if (!o2) return fail();
  printf("\nwith a zero gradient only the decay acts: theta_k = (1 - eta*lambda)^k theta_0\n");
  printf("%5s %14s %24s %24s\n", "k", "(1-eta*l)^k", "deepc theta_k[0], [2]", "formula [0], [2]");
  static const double ZERO[P] = {0};
  const double *th = dc_data(q);
  for (int k = 1; k <= 100; k++) {
    if (step(o2, q, ZERO) != DC_OK) return fail();
    if (k != 1 && k != 10 && k != 100) continue;
    double f = pow(shrink, k);
    printf("%5d %14.8f %11.8f %12.8f %11.8f %12.8f\n", k, f, th[0], th[2], f * THETA0[0],
           f * THETA0[2]);
    for (int i = 0; i < P; i++)
      if (fabs(th[i] - f * THETA0[i]) > 1e-12) ok = 0;
  }
  printf("\n%s: each step multiplies the weights by %g before subtracting eta * g\n",
         ok ? "ok" : "MISMATCH", shrink);
  dc_optim_free(o);
  dc_optim_free(o2);
  dc_free(p);
  dc_free(q);
  return ok ? 0 : 1;
}
