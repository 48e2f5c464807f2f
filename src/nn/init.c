/* Weight initialisation (torch.nn.init): gains, fans, uniform/normal/constant, Xavier, Kaiming
 * and orthogonal (Householder QR, no LAPACK). Every draw comes from the deepc RNG
 * (dc_uniform_/dc_normal_), so dc_manual_seed reproduces a model's initial weights. */
#include "nn-impl.h"

#include <math.h>
#include <string.h>

double dc_init_calculate_gain(const char *nl, double param) {
  static const char *const ones[] = {"linear",           "conv1d",           "conv2d",
                                     "conv3d",           "conv_transpose1d", "conv_transpose2d",
                                     "conv_transpose3d", "sigmoid"};
  if (!nl) nl = "leaky_relu";
  for (size_t i = 0; i < sizeof ones / sizeof ones[0]; i++)
    if (strcmp(nl, ones[i]) == 0) return 1.0;
  if (strcmp(nl, "tanh") == 0) return 5.0 / 3.0;
  if (strcmp(nl, "relu") == 0) return sqrt(2.0);
  if (strcmp(nl, "leaky_relu") == 0) return sqrt(2.0 / (1.0 + param * param));
  if (strcmp(nl, "selu") == 0) return 3.0 / 4.0;
  dc__err(DC_ERR_ARG,
          "calculate_gain: unsupported nonlinearity '%s'; use linear, conv1d/2d/3d, "
          "sigmoid, tanh, relu, leaky_relu or selu",
          nl);
  return NAN;
}

int dc_init_calculate_fans(const dc_tensor *t, int64_t *fan_in, int64_t *fan_out) {
  if (!t) return dc__errs(DC_ERR_ARG, "calculate_fans: tensor is NULL");
  if (t->ndim < 2) {
    char s[128];
    return dc__errs(DC_ERR_ARG,
                    "calculate_fans: fan in and fan out cannot be computed for a "
                    "tensor with fewer than 2 dimensions (shape %s)",
                    dc_shape_str(dc_shape_of(t), s, sizeof s));
  }
  int64_t rf = 1;
  for (int d = 2; d < t->ndim; d++) rf *= t->shape[d];
  if (fan_in) *fan_in = t->shape[1] * rf;
  if (fan_out) *fan_out = t->shape[0] * rf;
  return DC_OK;
}

int dc_init_uniform_(dc_tensor *t, double a, double b) { return dc_uniform_(t, a, b); }
int dc_init_normal_(dc_tensor *t, double mean, double std) { return dc_normal_(t, mean, std); }

int dc_init_constant_(dc_tensor *t, double value) {
  if (!t) return dc__errs(DC_ERR_ARG, "init.constant_: tensor is NULL");
  return dc_fill_(t, value);
}

int dc_init_zeros_(dc_tensor *t) { return dc_init_constant_(t, 0.0); }
int dc_init_ones_(dc_tensor *t) { return dc_init_constant_(t, 1.0); }

static int xavier_std(const dc_tensor *t, double gain, double *std) {
  int64_t fi, fo;
  int rc = dc_init_calculate_fans(t, &fi, &fo);
  if (rc != DC_OK) return rc;
  *std = fi + fo > 0 ? gain * sqrt(2.0 / (double)(fi + fo)) : 0.0;
  return DC_OK;
}

int dc_init_xavier_uniform_(dc_tensor *t, double gain) {
  double std = 0;
  int rc = xavier_std(t, gain, &std);
  return rc != DC_OK ? rc : dc_uniform_((dc_tensor *)t, -sqrt(3.0) * std, sqrt(3.0) * std);
}

int dc_init_xavier_normal_(dc_tensor *t, double gain) {
  double std = 0;
  int rc = xavier_std(t, gain, &std);
  return rc != DC_OK ? rc : dc_normal_(t, 0.0, std);
}

static int kaiming_std(const dc_tensor *t, double a, dc_fan_mode mode, const char *nl,
                       double *std) {
  int64_t fi, fo;
  int rc = dc_init_calculate_fans(t, &fi, &fo);
  if (rc != DC_OK) return rc;
  double gain = dc_init_calculate_gain(nl, a);
  if (isnan(gain)) return dc_last_status();
  int64_t fan = mode == DC_FAN_OUT ? fo : fi;
  *std = fan > 0 ? gain / sqrt((double)fan) : 0.0;
  return DC_OK;
}

int dc_init_kaiming_uniform_(dc_tensor *t, double a, dc_fan_mode mode, const char *nonlinearity) {
  double std = 0;
  int rc = kaiming_std(t, a, mode, nonlinearity, &std);
  return rc != DC_OK ? rc : dc_uniform_(t, -sqrt(3.0) * std, sqrt(3.0) * std);
}

int dc_init_kaiming_normal_(dc_tensor *t, double a, dc_fan_mode mode, const char *nonlinearity) {
  double std = 0;
  int rc = kaiming_std(t, a, mode, nonlinearity, &std);
  return rc != DC_OK ? rc : dc_normal_(t, 0.0, std);
}

int dc__init_default_weight_bias(dc_tensor *w, dc_tensor *b) {
  int rc = dc_init_kaiming_uniform_(w, sqrt(5.0), DC_FAN_IN, "leaky_relu");
  if (rc != DC_OK || !b) return rc;
  int64_t fan_in;
  dc_init_calculate_fans(w, &fan_in, NULL);
  double bound = fan_in > 0 ? 1.0 / sqrt((double)fan_in) : 0.0;
  return dc_uniform_(b, -bound, bound);
}

/* Thin QR of a [M, N] row-major (M >= N) by Householder reflections: overwrites q [M, N] with Q,
 * its columns signed so that diag(R) > 0 (what PyTorch gets by multiplying by sign(diag(R))). */
static void householder_q(double *a, int64_t m, int64_t n, double *v, double *q) {
  double *sgn = v + m * n; /* N signs of diag(R), after the M*N reflectors */
  for (int64_t k = 0; k < n; k++) {
    double *vk = v + k * m; /* reflector k, entries k..M-1 */
    double norm = 0;
    for (int64_t i = k; i < m; i++) norm += a[i * n + k] * a[i * n + k];
    norm = sqrt(norm);
    double alpha = a[k * n + k] > 0 ? -norm : norm;
    sgn[k] = alpha < 0 ? -1.0 : 1.0;
    double vnorm = 0;
    for (int64_t i = k; i < m; i++) {
      vk[i] = a[i * n + k] - (i == k ? alpha : 0.0);
      vnorm += vk[i] * vk[i];
    }
    vnorm = sqrt(vnorm);
    for (int64_t i = k; i < m; i++) vk[i] = vnorm > 0 ? vk[i] / vnorm : 0.0;
    for (int64_t j = k; j < n; j++) { /* A[k:, k:] -= 2 v (v^T A[k:, k:]) */
      double dot = 0;
      for (int64_t i = k; i < m; i++) dot += vk[i] * a[i * n + j];
      for (int64_t i = k; i < m; i++) a[i * n + j] -= 2.0 * vk[i] * dot;
    }
  }
  memset(q, 0, sizeof(double) * (size_t)(m * n));
  for (int64_t j = 0; j < n; j++) q[j * n + j] = 1.0;
  for (int64_t k = n - 1; k >= 0; k--) { /* Q = H_0 ... H_{N-1} I[:, :N] */
    const double *vk = v + k * m;
    for (int64_t j = 0; j < n; j++) {
      double dot = 0;
      for (int64_t i = k; i < m; i++) dot += vk[i] * q[i * n + j];
      for (int64_t i = k; i < m; i++) q[i * n + j] -= 2.0 * vk[i] * dot;
    }
  }
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) q[i * n + j] *= sgn[j];
}

int dc_init_orthogonal_(dc_tensor *t, double gain) {
  if (!t) return dc__errs(DC_ERR_ARG, "init.orthogonal_: tensor is NULL");
  if (t->ndim < 2) {
    char s[128];
    return dc__errs(DC_ERR_ARG,
                    "init.orthogonal_: only tensors with 2 or more dimensions are "
                    "supported, got shape %s",
                    dc_shape_str(dc_shape_of(t), s, sizeof s));
  }
  int64_t numel = dc_numel(t);
  if (numel == 0) return DC_OK;
  int64_t rows = t->shape[0], cols = numel / rows;
  bool tr = rows < cols;
  int64_t m = tr ? cols : rows, n = tr ? rows : cols;
  int rc = DC_ERR_NOMEM;
  /* the normal draw and the QR on the host, then one copy into t on its device */
  dc_tensor *flat = dc__new(DC_SHAPE(rows, cols), DC_F64, DC_CPU), *out = NULL;
  double *a = dc__malloc(sizeof(double) * (size_t)(m * n));
  double *v = dc__malloc(sizeof(double) * (size_t)(m * n + n));
  double *q = dc__malloc(sizeof(double) * (size_t)(m * n));
  if (!flat || !a || !v || !q) goto done;
  if ((rc = dc_normal_(flat, 0.0, 1.0)) != DC_OK) goto done;
  const double *f = q; /* the draw, row-major [rows, cols], until householder_q writes q */
  if ((rc = dc_copy_to_buffer(flat, q, sizeof(double) * (size_t)(m * n))) != DC_OK) goto done;
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) {
      if (tr)
        a[j * n + i] = f[i * cols + j];
      else
        a[i * n + j] = f[i * cols + j];
    }
  householder_q(a, m, n, v, q);
  double *o = a; /* a is spent: the result [rows, cols] */
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) o[i * cols + j] = gain * (tr ? q[j * n + i] : q[i * n + j]);
  rc = DC_ERR_NOMEM;
  if (!(out = dc_from_data(o, dc_shape_of(t), DC_F64))) goto done;
  rc = dc_copy_(t, out);
done:
  dc_free(flat);
  dc_free(out);
  dc__free(a);
  dc__free(v);
  dc__free(q);
  return rc;
}
