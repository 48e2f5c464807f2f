/* The pointwise losses' arithmetic, one element at a time (MSE, L1, smooth L1, BCE, BCE with
 * logits and pos_weight, hinge: DC_PWLOSS_LIST), in double: the one formula of the CPU's
 * kernels (cpu/nn/loss.c) and the CUDA ones (cuda/loss-math.h, loss.cu). Plain C, and
 * __host__ __device__ functions when nvcc compiles it. */
#ifndef DC_PWLOSS_MATH_H
#define DC_PWLOSS_MATH_H

#include <math.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "nn-kernels.h"
#ifdef __cplusplus
}
#endif

#include "hd.h"

DC__HD double dc__pwloss_softplus_neg(double x) { /* log(1 + e^-x), stable */
  return (x < 0 ? -x : 0.0) + log1p(exp(-fabs(x)));
}

/* The loss of one element (before the weight); pw: pos_weight (BCE_LOGITS, NAN when none). */
DC__HD double dc__pwloss_value(dc_pwloss_op op, double x, double t, double p, double pw) {
  double d = x - t;
  switch (op) {
  case DC_PWLOSS_MSE:
    return d * d;
  case DC_PWLOSS_L1:
    return fabs(d);
  case DC_PWLOSS_SMOOTH_L1:
    if (p == 0) return fabs(d);
    return fabs(d) < p ? 0.5 * d * d / p : fabs(d) - 0.5 * p;
  case DC_PWLOSS_BCE: {
    double lx = log(x), l1x = log1p(-x);
    if (lx < -100) lx = -100;
    if (l1x < -100) l1x = -100;
    return -(t * lx + (1 - t) * l1x);
  }
  case DC_PWLOSS_BCE_LOGITS: {
    double lw = isnan(pw) ? 1.0 : 1.0 + (pw - 1.0) * t;
    return (1 - t) * x + lw * dc__pwloss_softplus_neg(x);
  }
  case DC_PWLOSS_HINGE: {
    double z = p - t * x;
    return z > 0 ? z : 0.0;
  }
  case DC_PWLOSS_COUNT:
    break;
  }
  return NAN;
}

/* d loss / d x and d loss / d t of one element (before the weight). */
DC__HD void dc__pwloss_grad(dc_pwloss_op op, double x, double t, double p, double pw, double *gx,
                            double *gt) {
  double d = x - t, s = (double)((d > 0) - (d < 0));
  switch (op) {
  case DC_PWLOSS_MSE:
    *gx = 2 * d, *gt = -2 * d;
    return;
  case DC_PWLOSS_L1:
    *gx = s, *gt = -s;
    return;
  case DC_PWLOSS_SMOOTH_L1: {
    /* torch 1.13's branches: beta = 0 gives -1 at d = 0 and NaN at a NaN d (0 from sign) */
    double g = d <= -p ? -1.0 : d >= p ? 1.0 : d / p;
    *gx = g, *gt = -g;
    return;
  }
  case DC_PWLOSS_BCE: { /* PyTorch: (x - t) / max(x (1 - x), 1e-12); d/dt = -logit(x) */
    const double eps = (double)1e-12f; /* torch's clamp is a float constant: 1e-12 * (1 - 4e-9) */
    double den = x * (1 - x);
    *gx = (x - t) / (den > eps ? den : eps);
    *gt = log1p(-x) - log(x);
    return;
  }
  case DC_PWLOSS_BCE_LOGITS: {
    double sig = 1.0 / (1.0 + exp(-x));
    if (isnan(pw)) {
      *gx = sig - t, *gt = -x;
    } else {
      *gx = (pw * t + 1 - t) * sig - pw * t;
      *gt = -x + (pw - 1) * dc__pwloss_softplus_neg(x);
    }
    return;
  }
  case DC_PWLOSS_HINGE: {
    bool on = p - t * x > 0;
    *gx = on ? -t : 0.0, *gt = on ? -x : 0.0;
    return;
  }
  case DC_PWLOSS_COUNT:
    break;
  }
  *gx = *gt = NAN;
}

#endif
