/* The key table of the run configuration (generated from spec.h's X-macro list) and the parser
 * of one value into its typed field, with type, range and count checks. Reading the INI text and
 * ${var} substitution are config.c's; printing the key lists is spec_print.c's. */
#include "spec.h"
#include "train-impl.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define DC__CHOICE_NAME(E, name) #name,
static const char *const CH_activation[] = {DC__CHOICES_activation(DC__CHOICE_NAME) NULL};
static const char *const CH_amp[] = {DC__CHOICES_amp(DC__CHOICE_NAME) NULL};
static const char *const CH_device[] = {DC__CHOICES_device(DC__CHOICE_NAME) NULL};
static const char *const CH_loss[] = {DC__CHOICES_loss(DC__CHOICE_NAME) NULL};
static const char *const CH_monitor[] = {DC__CHOICES_monitor(DC__CHOICE_NAME) NULL};
static const char *const CH_on_nan[] = {DC__CHOICES_on_nan(DC__CHOICE_NAME) NULL};
static const char *const CH_optim[] = {DC__CHOICES_optim(DC__CHOICE_NAME) NULL};
static const char *const CH_sched[] = {DC__CHOICES_sched(DC__CHOICE_NAME) NULL};
#define CH__ NULL

#define DC__SPEC_ROW(sec, key, T, def, range, ch, nmin, nmax, help)                                \
  [DC__K_##sec##_##key] = {                                                                        \
      #sec, #key, DC__T_##T, def, range, CH_##ch, nmin, nmax, offsetof(dc__run_spec, sec.key),     \
      help},
const dc__spec_key dc__spec_keys[DC__K_COUNT] = {DC__SPEC_KEYS(DC__SPEC_ROW)};
const char *const dc__spec_sections[] = {"model",    "data", "train", "optim",
                                         "schedule", "vars", NULL};

const char *dc__spec_choice(dc__spec_id k, int value) {
  const char *const *ch = dc__spec_keys[k].choices;
  for (int i = 0; ch && ch[i]; i++)
    if (i == value) return ch[i];
  return "?";
}

/* ---- scalar readers: the whole text must be the value (spaces around allowed) ---- */
static bool parse_int(const char *s, int64_t *out) {
  while (isspace((unsigned char)*s)) s++;
  if (!*s) return false;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  while (isspace((unsigned char)*end)) end++;
  if (errno || *end || v < INT32_MIN || v > INT32_MAX) return false;
  *out = v;
  return true;
}

static bool parse_float(const char *s, double *out) {
  while (isspace((unsigned char)*s)) s++;
  if (!*s) return false;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  while (isspace((unsigned char)*end)) end++;
  if (errno == ERANGE || *end || !isfinite(v)) return false;
  *out = v;
  return true;
}

static int parse_bool(const char *s) {
  static const char *const T[] = {"true", "yes", "on", "1"};
  static const char *const F[] = {"false", "no", "off", "0"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, T[i]) == 0) return 1;
    if (strcasecmp(s, F[i]) == 0) return 0;
  }
  return -1;
}

/* ---- ranges: "", ">= a", "> a", "<= b", "< b", "[a, b]", "[a, b)", "(a, b]", "(a, b)" ---- */
typedef struct range {
  double lo, hi;
  bool lo_open, hi_open;
} range;

static bool parse_range(const char *s, range *r) {
  *r = (range){-INFINITY, INFINITY, false, false};
  char a[8], b[8];
  if (!*s) return true;
  if (sscanf(s, ">= %lf", &r->lo) == 1 && s[1] == '=') return true;
  if (sscanf(s, "<= %lf", &r->hi) == 1 && s[1] == '=') return true;
  if (sscanf(s, "> %lf", &r->lo) == 1) return r->lo_open = true;
  if (sscanf(s, "< %lf", &r->hi) == 1) return r->hi_open = true;
  if (sscanf(s, "%1[[(]%lf , %lf%1[])]", a, &r->lo, &r->hi, b) != 4) return false;
  r->lo_open = a[0] == '(', r->hi_open = b[0] == ')';
  return r->lo <= r->hi;
}

static bool in_range(const range *r, double v) {
  return (r->lo_open ? v > r->lo : v >= r->lo) && (r->hi_open ? v < r->hi : v <= r->hi);
}

static int out_of_range(const char *at, const dc__spec_key *e, const char *v) {
  const char *r = e->range;
  bool interval = r[0] == '[' || r[0] == '(';
  return dc__errs(DC_ERR_ARG, "%s%s.%s: must be %s%s, got %s", at, e->section, e->key,
                  interval ? "in " : "", r, v);
}

/* ---- one value ---- */
static int parse_enum(const char *at, const dc__spec_key *e, const char *v, int *out) {
  int best = -1, bd = 99;
  for (int i = 0; e->choices[i]; i++) {
    if (strcasecmp(e->choices[i], v) == 0) return *out = i, DC_OK;
    int d = dc__edit_distance(v, e->choices[i]);
    if (d < bd) bd = d, best = i;
  }
  char list[256] = "", hint[96] = "";
  size_t n = 0;
  for (int i = 0; e->choices[i] && n < sizeof list; i++)
    n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? "|" : "", e->choices[i]);
  if (best >= 0 && dc__close_enough(v, e->choices[best], bd))
    snprintf(hint, sizeof hint, "; did you mean '%s'?", e->choices[best]);
  return dc__errs(DC_ERR_ARG, "%s%s.%s: '%s' is not one of %s%s", at, e->section, e->key, v, list,
                  hint);
}

static int count_error(const char *at, const dc__spec_key *e, const char *v, int n) {
  int want = n < e->nmin ? e->nmin : e->nmax;
  const char *how = e->nmin == e->nmax ? "exactly" : n < e->nmin ? "at least" : "at most";
  return dc__errs(DC_ERR_ARG, "%s%s.%s: expected %s %d value%s, got '%s'", at, e->section, e->key,
                  how, want, want == 1 ? "" : "s", v);
}

/* A comma-separated list into out (a dc__spec_ints or dc__spec_floats); items checked against
 * the range, their number against nmin..nmax. */
static int parse_list(const char *at, const dc__spec_key *e, const char *v, void *out) {
  bool ints = e->type == DC__T_INTS;
  range r;
  parse_range(e->range, &r);
  int n = 0;
  for (const char *p = v; *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    char item[128];
    snprintf(item, sizeof item, "%.*s", (int)(len < sizeof item ? len : sizeof item - 1), p);
    p += len + (comma ? 1 : 0);
    int64_t iv = 0;
    double fv = 0;
    bool ok = len < sizeof item && (ints ? parse_int(item, &iv) : parse_float(item, &fv));
    if (!ok || (comma && !*p))
      return dc__errs(DC_ERR_ARG, "%s%s.%s: expected a comma-separated list of %s, got '%s'", at,
                      e->section, e->key, ints ? "integers" : "numbers", v);
    if (!in_range(&r, ints ? (double)iv : fv)) return out_of_range(at, e, item);
    if (n == e->nmax) return count_error(at, e, v, n + 1);
    if (ints)
      ((dc__spec_ints *)out)->v[n] = iv;
    else
      ((dc__spec_floats *)out)->v[n] = fv;
    n++;
  }
  if (n < e->nmin) return count_error(at, e, v, n);
  if (ints)
    ((dc__spec_ints *)out)->n = n;
  else
    ((dc__spec_floats *)out)->n = n;
  return DC_OK;
}

static int parse_number(const char *at, const dc__spec_key *e, const char *v, void *field) {
  bool is_int = e->type == DC__T_INT;
  int64_t iv = 0;
  double fv = NAN;
  if (is_int ? !parse_int(v, &iv) : !parse_float(v, &fv))
    return dc__errs(DC_ERR_ARG, "%s%s.%s: expected %s, got '%s'", at, e->section, e->key,
                    is_int ? "an integer" : "a number", v);
  range r;
  parse_range(e->range, &r);
  if (!in_range(&r, is_int ? (double)iv : fv)) return out_of_range(at, e, v);
  if (is_int)
    *(int64_t *)field = iv;
  else
    *(double *)field = fv;
  return DC_OK;
}

int dc__spec_parse_value(dc__run_spec *s, dc__spec_id k, const char *v, const char *at) {
  const dc__spec_key *e = &dc__spec_keys[k];
  void *field = (char *)s + e->offset;
  bool empty_ok = !*v && !e->def[0]; /* an automatic value left empty */
  switch (e->type) {
  case DC__T_INT:
  case DC__T_FLOAT:
    if (empty_ok && e->type == DC__T_FLOAT) return *(double *)field = NAN, DC_OK;
    return parse_number(at, e, v, field);
  case DC__T_BOOL: {
    int b = parse_bool(v);
    if (b < 0)
      return dc__errs(DC_ERR_ARG, "%s%s.%s: expected true or false, got '%s'", at, e->section,
                      e->key, v);
    return *(bool *)field = b == 1, DC_OK;
  }
  case DC__T_STR:
    return *(const char **)field = v, DC_OK;
  case DC__T_ENUM:
    return parse_enum(at, e, v, (int *)field);
  case DC__T_INTS:
  case DC__T_FLOATS:
    return parse_list(at, e, v, field);
  }
  return DC_OK;
}

/* ---- the table checks itself ---- */
int dc__spec_check_table(void) {
  static dc__run_spec s;
  for (int k = 0; k < DC__K_COUNT; k++) {
    const dc__spec_key *e = &dc__spec_keys[k];
    range r;
    if (!e->section || !parse_range(e->range, &r))
      return dc__errs(DC_ERR_STATE, "spec: row %d (%s.%s): unreadable range '%s'", k,
                      e->section ? e->section : "?", e->key ? e->key : "?", e->range);
    if ((e->type == DC__T_ENUM) != (e->choices != NULL))
      return dc__errs(DC_ERR_STATE, "spec: %s.%s: choices only for enums", e->section, e->key);
    bool list = e->type == DC__T_INTS || e->type == DC__T_FLOATS;
    if (list != (e->nmax > 0) || e->nmax > DC__SPEC_LIST_MAX || e->nmin > e->nmax)
      return dc__errs(DC_ERR_STATE, "spec: %s.%s: bad item counts", e->section, e->key);
    if (dc__spec_parse_value(&s, (dc__spec_id)k, e->def, "spec default: ") != DC_OK)
      return dc_last_status();
  }
  return DC_OK;
}
