/* Why Adam corrects its moments: on a stationary gradient g ~ N(mu, sigma^2) the running mean
 * m_t = beta1 m_{t-1} + (1 - beta1) g_t starts at 0, so E[m_t] = (1 - beta1^t) mu: biased towards
 * 0 early on. Adam divides by (1 - beta1^t) and gets E[m_hat_t] = mu. Two deepc Adam optimizers
 * (bias correction on, and switched off) see the same gradients; the first moment each one's
 * update used is read back from its parameter step, averaged over N independent coordinates
 * (the estimate of the expectation), and printed for t = 2, 10, 100 with beta1 = 0.9 and
 * E[g] = G = 2 (the course's Adam question: E(m_hat_t) with and without bias correction).
 * Exit status 0 only when both agree with the formulas. */
#include <deepc/deepc.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { N = 100000 };             /* coordinates: independent runs of the same experiment */
static const double MU = 2.0;    /* E[g] = G, as in the course's question (G = 2) */
static const double SIGMA = 1.0; /* std of g */
static const double BETA1 = 0.9, BETA2 = 0.999, LR = 1e-3, EPS = 1e-8;
static const int REPORT[] = {2, 10, 100};

/* The first moment an Adam step used, recovered from the step itself:
 * dtheta = -lr * m / (sqrt(v) / c2 + eps) gives m = -dtheta / lr * (sqrt(v) / c2 + eps), with
 * c2 = sqrt(1 - beta2^t) when bias correction is on (and m is then the corrected m_hat), else 1.
 * Returns the mean over the coordinates. */
static double moment_used(const double *before, const dc_tensor *p, dc_optim *o, int t,
                          bool corrected) {
  dc_optim_state st;
  if (dc_optim_state_dict(o, &st) != DC_OK) return NAN;
  const double *v = dc_data(dc_optim_state_get(&st, "state.0.exp_avg_sq"));
  const double *now = dc_data(p);
  double c2 = corrected ? sqrt(1 - pow(BETA2, t)) : 1.0, sum = 0;
  for (int i = 0; i < N; i++) sum += -(now[i] - before[i]) / LR * (sqrt(v[i]) / c2 + EPS);
  dc_optim_state_free(&st);
  return sum / N;
}

int main(void) {
  dc_manual_seed(2024);
  dc_tensor *p[2];
  dc_optim *o[2]; /* [0]: Adam as published (bias-corrected), [1]: correction switched off */
  for (int k = 0; k < 2; k++) {
    p[k] = dc_requires_grad_(dc_zeros(DC_SHAPE(N), DC_F64), true);
    dc_optim_hparams h = dc_optim_defaults(DC_OPTIM_ADAM);
    h.lr = LR;
    h.betas[0] = BETA1;
    h.betas[1] = BETA2;
    h.eps = EPS;
    h.no_bias_correction = k == 1;
    o[k] = dc_optim_create(DC_OPTIM_ADAM, &p[k], 1, h);
    if (!o[k]) {
      fprintf(stderr, "adam_bias_correction: %s\n", dc_last_error());
      return 1;
    }
  }
  static double before[2][N];
  printf("Adam's first moment on a stationary gradient g ~ N(%.1f, %.1f^2), beta1 = %.1f\n", MU,
         SIGMA, BETA1);
  printf("(means over %d independent coordinates; m_t read back from each optimizer's step)\n\n",
         N);
  printf("%5s  %12s  %14s  %12s  %16s  %8s\n", "t", "1 - beta1^t", "E[m_t] no corr", "(1-b1^t)*G",
         "E[m_hat_t] corr", "G");
  int ok = 1, r = 0;
  for (int t = 1; t <= REPORT[2]; t++) {
    dc_tensor *g = dc_empty(DC_SHAPE(N), DC_F64);
    dc_normal_(g, MU, SIGMA);
    for (int k = 0; k < 2; k++) {
      memcpy(before[k], dc_data(p[k]), sizeof before[k]);
      dc_optim_zero_grad(o[k]);
      if (dc_backward(p[k], .grad = g) != DC_OK || dc_optim_step(o[k]) != DC_OK) {
        fprintf(stderr, "adam_bias_correction: %s\n", dc_last_error());
        return 1;
      }
    }
    dc_free(g);
    if (t != REPORT[r]) continue;
    r++;
    double bias = 1 - pow(BETA1, t);
    double m_hat = moment_used(before[0], p[0], o[0], t, true);
    double m = moment_used(before[1], p[1], o[1], t, false);
    printf("%5d  %12.4f  %14.4f  %12.4f  %16.4f  %8.4f\n", t, bias, m, bias * MU, m_hat, MU);
    /* sampling error of the means: about 0.001 (t = 2) .. 0.0005; allow 0.01 after correction */
    if (fabs(m - bias * MU) > 0.005 || fabs(m_hat - MU) > 0.01) ok = 0;
  }
  printf("\n%s: without correction E[m_t] = (1 - beta1^t) E[g], biased towards 0 (by 81%% at "
         "t = 2);\n    with it E[m_hat_t] = E[g] from the first step on.\n",
         ok ? "ok" : "MISMATCH");
  for (int k = 0; k < 2; k++) {
    dc_optim_free(o[k]);
    dc_free(p[k]);
  }
  return ok ? 0 : 1;
}
