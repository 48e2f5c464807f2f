/* Typed partial norms and in-place passes for gradient clipping, included by clip.c once per
 * element type with T and FN(name) defined. x is [n] elements of one chunk. Sums run in double
 * over eight fixed lanes, so the result depends on neither the ISA clone nor the thread count. */

DC__OPTK_CLONES static double FN(sumsq)(const T *restrict x, int64_t n) {
  double acc[8] = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) acc[k] += (double)x[i + k] * (double)x[i + k];
  double tail = 0;
  for (; i < n; i++) tail += (double)x[i] * (double)x[i];
  return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + tail;
}

DC__OPTK_CLONES static double FN(sumabs)(const T *restrict x, int64_t n) {
  double acc[8] = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) acc[k] += fabs((double)x[i + k]);
  double tail = 0;
  for (; i < n; i++) tail += fabs((double)x[i]);
  return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + tail;
}

/* max |x| (is_max) or min |x|; NaN wins, like torch's max/min */
static double FN(extreme_abs)(const T *x, int64_t n, bool is_max) {
  double r = is_max ? 0.0 : INFINITY;
  for (int64_t i = 0; i < n; i++) {
    double a = fabs((double)x[i]);
    if (a != a) return a;
    if (is_max ? a > r : a < r) r = a;
  }
  return r;
}

static double FN(count_nonzero)(const T *x, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; i++) c += x[i] != 0;
  return (double)c;
}

static double FN(sumpow)(const T *x, int64_t n, double p) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += pow(fabs((double)x[i]), p);
  return s;
}

DC__OPTK_CLONES static void FN(scale)(T *restrict x, int64_t n, double coef) {
  T c = (T)coef;
  for (int64_t i = 0; i < n; i++) x[i] = x[i] * c;
}

DC__OPTK_CLONES static void FN(clamp)(T *restrict x, int64_t n, double lo, double hi) {
  T l = (T)lo, h = (T)hi;
  for (int64_t i = 0; i < n; i++) {
    T v = x[i] < l ? l : x[i];
    x[i] = v > h ? h : v;
  }
}
