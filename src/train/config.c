/* Configuration files of `deepc train`: an INI reader (sections, key = value, # comments,
 * indented continuation lines, ${var} substitution from [vars]) that parses every value once
 * into the typed run spec of spec.h's table, naming file, line and column (or the --set
 * override) of a wrong one. Building a run from the spec is build.c's job. */
#include "spec.h"
#include "train-impl.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The keys, their types, defaults and ranges: spec.h's table. */
#define SCHEMA dc__spec_keys
enum { NKEYS = DC__K_COUNT, NSECTIONS = 6 };
#define SECTIONS dc__spec_sections

struct dc_config {
  char *name;            /* file name for messages */
  char *values[NKEYS];   /* raw values as written; NULL = default */
  int lines[NKEYS];      /* where each value came from (0: --set) */
  int cols[NKEYS];       /* the column of the value on that line */
  char *origin[NKEYS];   /* the --set assignment that gave it (lines[k] == 0) */
  char *resolved[NKEYS]; /* values with ${vars} replaced, or the default */
  dc__run_spec spec;     /* the resolved values, typed and checked */
  int nvars;
  char **var_names, **var_values; /* [nvars] */
  int *var_lines;
};

/* ---- "did you mean" ---- */
/* Writes " (did you mean 'x'?)" for the closest key of the section, or of any section
 * (then as "section.key"), into buf; "" when nothing is close. */
static void suggest_key(const char *section, const char *key, char *buf, size_t n) {
  buf[0] = 0;
  int best = 99;
  const dc__spec_key *bk = NULL;
  for (int i = 0; i < NKEYS; i++) {
    int d = dc__edit_distance(key, SCHEMA[i].key) + (strcmp(SCHEMA[i].section, section) ? 1 : 0);
    if (d < best) best = d, bk = &SCHEMA[i];
  }
  if (!bk || !dc__close_enough(key, bk->key, best - (strcmp(bk->section, section) ? 1 : 0))) return;
  if (strcmp(bk->section, section) == 0)
    snprintf(buf, n, "; did you mean '%s'?", bk->key);
  else
    snprintf(buf, n, "; did you mean '%s' in [%s] (%s.%s)?", bk->key, bk->section, bk->section,
             bk->key);
}

static void suggest_section(const char *sec, char *buf, size_t n) {
  buf[0] = 0;
  int best = 99, bi = -1;
  for (int i = 0; i < NSECTIONS; i++) {
    int d = dc__edit_distance(sec, SECTIONS[i]);
    if (d < best) best = d, bi = i;
  }
  if (bi >= 0 && dc__close_enough(sec, SECTIONS[bi], best))
    snprintf(buf, n, "; did you mean [%s]?", SECTIONS[bi]);
}

static int find_key(const char *section, const char *key) {
  for (int i = 0; i < NKEYS; i++)
    if (strcmp(SCHEMA[i].section, section) == 0 && strcmp(SCHEMA[i].key, key) == 0) return i;
  return -1;
}

static bool known_section(const char *s) {
  for (int i = 0; i < NSECTIONS; i++)
    if (strcmp(SECTIONS[i], s) == 0) return true;
  return false;
}

/* "file:12:5: " for a place in the file, "--set key=value: " for an override. */
static void where(const dc_config *c, int line, int col, const char *origin, char *buf, size_t n) {
  if (line > 0)
    snprintf(buf, n, "%s:%d:%d: ", c->name, line, col);
  else if (origin)
    snprintf(buf, n, "--set %s: ", origin);
  else
    snprintf(buf, n, "%s: default: ", c->name);
}

/* Where the value of key k came from. */
static void where_key(const dc_config *c, int k, char *buf, size_t n) {
  where(c, c->lines[k], c->cols[k], c->origin[k], buf, n);
}

/* model.arch: cnn, mlp, layers or a zoo model. */
static int check_arch(const char *at, const char *v) {
  if (!*v || strcmp(v, "cnn") == 0 || strcmp(v, "mlp") == 0 || strcmp(v, "layers") == 0 ||
      dc_zoo_has(v) || strncmp(v, "onnx:", 5) == 0)
    return DC_OK;
  const char *const *names = dc_zoo_names();
  static const char *const OWN[] = {"cnn", "mlp", "layers"};
  const char *best = NULL;
  int bd = 99;
  for (int i = 0; i < 3; i++) {
    int d = dc__edit_distance(v, OWN[i]);
    if (d < bd) bd = d, best = OWN[i];
  }
  for (int i = 0; names && names[i]; i++) {
    int d = dc__edit_distance(v, names[i]);
    if (d < bd) bd = d, best = names[i];
  }
  char hint[96] = "";
  if (best && dc__close_enough(v, best, bd))
    snprintf(hint, sizeof hint, "; did you mean '%s'?", best);
  char list[512] = "";
  size_t at_list = 0;
  for (int i = 0; names && names[i] && at_list + 32 < sizeof list; i++)
    at_list +=
        (size_t)snprintf(list + at_list, sizeof list - at_list, "%s%s", i ? ", " : "", names[i]);
  return dc__errs(DC_ERR_ARG, "%smodel.arch: '%s' is not cnn, mlp, layers or a zoo model (%s)%s",
                  at, v, list, hint);
}

/* Parses the resolved value of key k into c->spec (model.arch also against the zoo). */
static int check_value(dc_config *c, int k, const char *v) {
  char at[1200];
  where_key(c, k, at, sizeof at);
  if (k == DC__K_model_arch) {
    int rc = check_arch(at, v);
    if (rc != DC_OK) return rc;
  }
  return dc__spec_parse_value(&c->spec, (dc__spec_id)k, v, at);
}

/* ---- ${var} substitution ---- */
static int var_index(const dc_config *c, const char *name, size_t len) {
  for (int i = 0; i < c->nvars; i++)
    if (strlen(c->var_names[i]) == len && strncmp(c->var_names[i], name, len) == 0) return i;
  return -1;
}

/* A new string with every ${name} replaced; NULL + error naming the unknown variable. */
static char *substitute(const dc_config *c, int k, const char *v) {
  size_t cap = strlen(v) + 1, n = 0;
  for (int i = 0; i < c->nvars; i++) cap += strlen(c->var_values[i]) * 4;
  char *out = dc__malloc(cap + 64);
  if (!out) return NULL;
  for (const char *p = v; *p;) {
    if (p[0] == '$' && p[1] == '{') {
      const char *end = strchr(p + 2, '}');
      int vi = end ? var_index(c, p + 2, (size_t)(end - p - 2)) : -1;
      if (vi < 0) {
        char at[1200], name[64], hint[96] = "";
        where_key(c, k, at, sizeof at);
        snprintf(name, sizeof name, "%.*s", end ? (int)(end - p - 2) : (int)strlen(p + 2), p + 2);
        int bd = 99, bi = -1;
        for (int i = 0; i < c->nvars; i++) {
          int d = dc__edit_distance(name, c->var_names[i]);
          if (d < bd) bd = d, bi = i;
        }
        if (bi >= 0 && dc__close_enough(name, c->var_names[bi], bd))
          snprintf(hint, sizeof hint, "; did you mean '%s'?", c->var_names[bi]);
        dc__free(out);
        return dc__err(DC_ERR_ARG, "%s%s.%s: ${%s} is not defined in [vars]%s", at,
                       SCHEMA[k].section, SCHEMA[k].key, name, hint);
      }
      size_t lv = strlen(c->var_values[vi]);
      if (n + lv + 1 > cap + 63) {
        dc__free(out);
        char at[1200];
        where_key(c, k, at, sizeof at);
        return dc__err(DC_ERR_ARG, "%s%s.%s: ${...} expands too far (nested or repeated vars)", at,
                       SCHEMA[k].section, SCHEMA[k].key);
      }
      memcpy(out + n, c->var_values[vi], lv);
      n += lv;
      p = end + 1;
    } else {
      if (n + 2 > cap + 63) break;
      out[n++] = *p++;
    }
  }
  out[n] = 0;
  return out;
}

/* Recomputes every resolved value and checks its type. */
static int refresh(dc_config *c) {
  for (int k = 0; k < NKEYS; k++) {
    const char *raw = c->values[k] ? c->values[k] : SCHEMA[k].def;
    char *r = substitute(c, k, raw);
    if (!r) return dc_last_status();
    int rc = check_value(c, k, r);
    if (rc != DC_OK) {
      dc__free(r);
      return rc;
    }
    dc__free(c->resolved[k]);
    c->resolved[k] = r;
    c->spec.set[k] = c->values[k] != NULL;
  }
  return DC_OK;
}

const dc__run_spec *dc__config_spec(const dc_config *c) { return &c->spec; }

/* ---- building ---- */
static dc_config *config_new(const char *name) {
  dc_config *c = dc__calloc(1, sizeof *c);
  if (!c) return NULL;
  c->name = dc__strdup(name ? name : "config");
  if (!c->name) {
    dc__free(c);
    return NULL;
  }
  return c;
}

void dc_config_free(dc_config *c) {
  if (!c) return;
  for (int k = 0; k < NKEYS; k++) {
    dc__free(c->values[k]);
    dc__free(c->resolved[k]);
    dc__free(c->origin[k]);
  }
  for (int i = 0; i < c->nvars; i++) {
    dc__free(c->var_names[i]);
    dc__free(c->var_values[i]);
  }
  dc__free(c->var_names);
  dc__free(c->var_values);
  dc__free(c->var_lines);
  dc__free(c->name);
  dc__free(c);
}

static int set_var(dc_config *c, const char *name, const char *value, int line) {
  for (int i = 0; i < c->nvars; i++)
    if (strcmp(c->var_names[i], name) == 0) {
      char *v = dc__strdup(value);
      if (!v) return DC_ERR_NOMEM;
      dc__free(c->var_values[i]);
      c->var_values[i] = v;
      c->var_lines[i] = line;
      return DC_OK;
    }
  size_t n = (size_t)c->nvars;
  char **nn = dc__realloc(c->var_names, n * sizeof *nn, (n + 1) * sizeof *nn);
  if (!nn) return DC_ERR_NOMEM;
  c->var_names = nn;
  char **nv = dc__realloc(c->var_values, n * sizeof *nv, (n + 1) * sizeof *nv);
  if (!nv) return DC_ERR_NOMEM;
  c->var_values = nv;
  int *nl = dc__realloc(c->var_lines, n * sizeof *nl, (n + 1) * sizeof *nl);
  if (!nl) return DC_ERR_NOMEM;
  c->var_lines = nl;
  char *a = dc__strdup(name), *b = dc__strdup(value);
  if (!a || !b) {
    dc__free(a);
    dc__free(b);
    return DC_ERR_NOMEM;
  }
  c->var_names[n] = a;
  c->var_values[n] = b;
  c->var_lines[n] = line;
  c->nvars++;
  return DC_OK;
}

static bool valid_name(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_') return false;
  return true;
}

/* Where an assignment is: a line of the file (line > 0, columns of its key and value) or the
 * text of a --set override (line 0). */
typedef struct place {
  int line, key_col, value_col;
  const char *origin;
} place;

/* Records the value of key k and where it came from. */
static int store(dc_config *c, int k, const char *value, const place *p) {
  char *v = dc__strdup(value), *o = p->origin ? dc__strdup(p->origin) : NULL;
  if (!v || (p->origin && !o)) {
    dc__free(v);
    dc__free(o);
    return DC_ERR_NOMEM;
  }
  dc__free(c->values[k]);
  dc__free(c->origin[k]);
  c->values[k] = v;
  c->origin[k] = o;
  c->lines[k] = p->line;
  c->cols[k] = p->value_col;
  return DC_OK;
}

/* Sets section.key from a file line or --set; no refresh. */
static int assign(dc_config *c, const char *section, const char *key, const char *value,
                  const place *p) {
  char at[1200];
  bool from_file = p->line > 0;
  where(c, p->line, p->key_col, p->origin, at, sizeof at);
  if (strcmp(section, "vars") == 0) {
    if (!valid_name(key))
      return dc__errs(DC_ERR_ARG, "%svariable name '%s' may hold only letters, digits and _", at,
                      key);
    if (from_file)
      for (int i = 0; i < c->nvars; i++)
        if (strcmp(c->var_names[i], key) == 0)
          return dc__errs(DC_ERR_ARG, "%svars.%s is already set on line %d", at, key,
                          c->var_lines[i]);
    return set_var(c, key, value, p->line);
  }
  int k = find_key(section, key);
  if (k < 0) {
    char hint[160];
    suggest_key(section, key, hint, sizeof hint);
    return dc__errs(DC_ERR_ARG,
                    "%sunknown key '%s' in [%s]%s (`deepc train --help-keys` lists the keys)", at,
                    key, section, hint);
  }
  if (from_file && c->values[k])
    return dc__errs(DC_ERR_ARG, "%s%s.%s is already set on line %d", at, section, key, c->lines[k]);
  return store(c, k, value, p);
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  size_t n = strlen(s);
  while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = 0;
  return s;
}

static void lower(char *s) {
  for (; *s; s++) *s = (char)(*s == '-' ? '_' : tolower((unsigned char)*s));
}

/* Removes a trailing " # comment" / " ; comment" and surrounding quotes. */
static char *clean_value(char *v) {
  for (char *p = v; *p; p++)
    if ((*p == '#' || *p == ';') && (p == v || isspace((unsigned char)p[-1]))) {
      *p = 0;
      break;
    }
  v = trim(v);
  size_t n = strlen(v);
  if (n >= 2 && ((v[0] == '"' && v[n - 1] == '"') || (v[0] == '\'' && v[n - 1] == '\''))) {
    v[n - 1] = 0;
    v++;
  }
  return v;
}

/* Appends a continuation line to the value last assigned. */
static int append_value(dc_config *c, const char *section, const char *key, const char *more) {
  char **slot = NULL;
  if (strcmp(section, "vars") == 0) {
    for (int i = 0; i < c->nvars; i++)
      if (strcmp(c->var_names[i], key) == 0) slot = &c->var_values[i];
  } else {
    int k = find_key(section, key);
    if (k >= 0) slot = &c->values[k];
  }
  if (!slot) return DC_OK;
  size_t a = strlen(*slot), b = strlen(more);
  char *v = dc__malloc(a + b + 2);
  if (!v) return DC_ERR_NOMEM;
  memcpy(v, *slot, a);
  v[a] = a ? ' ' : 0;
  memcpy(v + a + (a ? 1 : 0), more, b + 1);
  dc__free(*slot);
  *slot = v;
  return DC_OK;
}

/* Where the reader is: the line number, the open section and the key a continuation line
 * belongs to. */
typedef struct ini_state {
  int line;
  char section[64], lastkey[64];
} ini_state;

/* "[name]" at column col. */
static int section_header(dc_config *c, ini_state *st, char *s, int col) {
  char *end = strchr(s, ']');
  if (!end || *trim(end + 1))
    return dc__errs(DC_ERR_FORMAT, "%s:%d:%d: malformed section header '%s' (write [name])",
                    c->name, st->line, col, s);
  *end = 0;
  char *name = trim(s + 1);
  lower(name);
  if (!known_section(name)) {
    char hint[64];
    suggest_section(name, hint, sizeof hint);
    return dc__errs(DC_ERR_ARG,
                    "%s:%d:%d: unknown section [%s]%s (sections: [model] [data] [train] "
                    "[optim] [schedule] [vars])",
                    c->name, st->line, col, name, hint);
  }
  snprintf(st->section, sizeof st->section, "%s", name);
  st->lastkey[0] = 0;
  return DC_OK;
}

/* "key = value" (or "key: value"), or an indented continuation of the last value; s is the
 * trimmed line inside buf. */
static int key_line(dc_config *c, ini_state *st, char *buf, char *s, bool indented) {
  int col = (int)(s - buf) + 1;
  char *eq = strpbrk(s, "=:");
  bool continued = indented && st->lastkey[0] &&
                   (!eq || (strchr(s, '(') && strchr(s, '(') < eq)); /* "  conv2d(32, 64, 5)," */
  if (continued) return append_value(c, st->section, st->lastkey, clean_value(s));
  if (!eq)
    return dc__errs(DC_ERR_FORMAT, "%s:%d:%d: expected 'key = value', got '%s'", c->name, st->line,
                    col, s);
  *eq = 0;
  char *key = trim(s);
  lower(key);
  char *value = clean_value(eq + 1);
  if (!st->section[0])
    return dc__errs(DC_ERR_FORMAT,
                    "%s:%d:%d: '%s' comes before any [section] header (start with [model], "
                    "[data], [train], [optim] or [schedule])",
                    c->name, st->line, col, key);
  place at = {st->line, col, (int)(value - buf) + 1, NULL};
  int rc = assign(c, st->section, key, value, &at);
  if (rc == DC_OK) snprintf(st->lastkey, sizeof st->lastkey, "%s", key);
  return rc;
}

static int parse_into(dc_config *c, const char *text) {
  ini_state st = {0};
  char buf[4096];
  for (const char *p = text; *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    st.line++;
    if (len >= sizeof buf)
      return dc__errs(DC_ERR_FORMAT, "%s:%d: line longer than %zu characters", c->name, st.line,
                      sizeof buf - 1);
    memcpy(buf, p, len);
    buf[len] = 0;
    p += len + (nl ? 1 : 0);
    if (len && buf[len - 1] == '\r') buf[--len] = 0;
    bool indented = len > 0 && (buf[0] == ' ' || buf[0] == '\t');
    char *s = trim(buf);
    int rc = DC_OK;
    if (!*s)
      st.lastkey[0] = 0; /* a blank line ends a value */
    else if (*s == '[')
      rc = section_header(c, &st, s, (int)(s - buf) + 1);
    else if (*s != '#' && *s != ';')
      rc = key_line(c, &st, buf, s, indented);
    if (rc != DC_OK) return rc;
  }
  return DC_OK;
}

dc_config *dc_config_parse(const char *text, const char *name) {
  if (!text) return dc__err(DC_ERR_ARG, "config_parse: text is NULL");
  dc_config *c = config_new(name);
  if (!c) return NULL;
  if (parse_into(c, text) != DC_OK || refresh(c) != DC_OK) {
    dc_config_free(c);
    return NULL;
  }
  return c;
}

dc_config *dc_config_default(void) { return dc_config_parse("", "defaults"); }

dc_config *dc_config_load(const char *path) {
  if (!path) return dc__err(DC_ERR_ARG, "config_load: path is NULL");
  FILE *f = fopen(path, "rb");
  if (!f)
    return dc__err(DC_ERR_IO, "%s: cannot open the configuration file (%s)", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  if (n < 0 || n > (1 << 22)) {
    fclose(f);
    return dc__err(DC_ERR_FORMAT, "%s: not a configuration file (size %ld)", path, n);
  }
  char *text = dc__malloc((size_t)n + 1);
  if (!text) {
    fclose(f);
    return NULL;
  }
  size_t got = fread(text, 1, (size_t)n, f);
  fclose(f);
  text[got] = 0;
  const char *nul = memchr(text, 0, got);
  if (nul) {
    int line = 1;
    for (const char *q = text; q < nul; q++) line += *q == '\n';
    size_t off = (size_t)(nul - text);
    dc__free(text);
    return dc__err(DC_ERR_FORMAT,
                   "%s:%d: binary data in a configuration file (a NUL byte at offset %zu)", path,
                   line, off);
  }
  dc_config *c = dc_config_parse(text, path);
  dc__free(text);
  return c;
}

dc_config *dc_config_clone(const dc_config *src) {
  if (!src) return dc__err(DC_ERR_ARG, "config_clone: NULL");
  dc_config *c = config_new(src->name);
  if (!c) return NULL;
  for (int k = 0; k < NKEYS; k++) {
    c->lines[k] = src->lines[k];
    c->cols[k] = src->cols[k];
    if (src->values[k] && !(c->values[k] = dc__strdup(src->values[k]))) goto fail;
    if (src->origin[k] && !(c->origin[k] = dc__strdup(src->origin[k]))) goto fail;
  }
  for (int i = 0; i < src->nvars; i++)
    if (set_var(c, src->var_names[i], src->var_values[i], src->var_lines[i]) != DC_OK) goto fail;
  if (refresh(c) != DC_OK) goto fail;
  return c;
fail:
  dc_config_free(c);
  return NULL;
}

/* Splits "section.key" into its parts (lower-cased); at names the override. */
static int split_key(const char *at, const char *full, char *section, size_t ns, char *key,
                     size_t nk) {
  const char *dot = strchr(full, '.');
  if (!dot || dot == full || !dot[1])
    return dc__errs(DC_ERR_ARG, "%s'%s' is not of the form section.key (e.g. optim.lr=0.01)", at,
                    full);
  snprintf(section, ns, "%.*s", (int)(dot - full), full);
  snprintf(key, nk, "%s", dot + 1);
  char *s = trim(section), *k = trim(key);
  memmove(section, s, strlen(s) + 1);
  memmove(key, k, strlen(k) + 1);
  lower(section);
  lower(key);
  if (!known_section(section)) {
    char hint[64];
    suggest_section(section, hint, sizeof hint);
    return dc__errs(DC_ERR_ARG, "%sunknown section '%s' in '%s'%s", at, section, full, hint);
  }
  return DC_OK;
}

/* A bare key that exists in exactly one section: the message names it as section.key. */
static int bare_key(const char *at, const char *full, const char *value) {
  char lk[128];
  snprintf(lk, sizeof lk, "%s", full);
  lower(lk);
  int found = -1, count = 0;
  for (int k = 0; k < NKEYS; k++)
    if (strcmp(SCHEMA[k].key, lk) == 0) found = k, count++;
  if (count != 1) return DC_OK;
  return dc__errs(DC_ERR_ARG, "%swrite %s.%s=%s (keys are section.key)", at, SCHEMA[found].section,
                  lk, value);
}

/* Sets one key from an override; on error nothing changes. origin: the override's text. */
static int set_from(dc_config *c, const char *full, const char *value, const char *origin) {
  char section[64], key[128], at[1200];
  snprintf(at, sizeof at, "--set %s: ", origin);
  int rc = strchr(full, '.') ? DC_OK : bare_key(at, full, value);
  if (rc == DC_OK) rc = split_key(at, full, section, sizeof section, key, sizeof key);
  if (rc != DC_OK) return rc;
  dc_config *backup = dc_config_clone(c);
  if (!backup) return dc_last_status();
  rc = assign(c, section, key, value, &(place){0, 0, 0, origin});
  if (rc == DC_OK) rc = refresh(c);
  if (rc != DC_OK) {
    /* restore the previous values: nothing changes on error */
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", dc_last_error());
    dc_config tmp = *c;
    *c = *backup;
    *backup = tmp;
    dc_config_free(backup);
    return dc__errs((dc_status)rc, "%s", msg);
  }
  dc_config_free(backup);
  return DC_OK;
}

int dc_config_set_value(dc_config *c, const char *full, const char *value) {
  if (!c || !full || !value) return dc__errs(DC_ERR_ARG, "config_set: NULL argument");
  size_t n = strlen(full) + strlen(value) + 2;
  char *origin = dc__malloc(n);
  if (!origin) return DC_ERR_NOMEM;
  snprintf(origin, n, "%s=%s", full, value);
  int rc = set_from(c, full, value, origin);
  dc__free(origin);
  return rc;
}

int dc_config_set(dc_config *c, const char *assignment) {
  if (!c || !assignment) return dc__errs(DC_ERR_ARG, "config_set: NULL argument");
  const char *eq = strchr(assignment, '=');
  if (!eq) return dc__errs(DC_ERR_ARG, "--set %s: no '=' (write section.key=value)", assignment);
  char key[192];
  snprintf(key, sizeof key, "%.*s", (int)(eq - assignment), assignment);
  char *v = dc__strdup(eq + 1);
  if (!v) return DC_ERR_NOMEM;
  int rc = set_from(c, key, clean_value(v), assignment);
  dc__free(v);
  return rc;
}

const char *dc_config_get(const dc_config *c, const char *full) {
  if (!c || !full) return dc__err(DC_ERR_ARG, "config_get: NULL argument");
  const char *dot = strchr(full, '.');
  if (dot && strncmp(full, "vars.", 5) == 0) {
    for (int i = 0; i < c->nvars; i++)
      if (strcmp(c->var_names[i], dot + 1) == 0) return c->var_values[i];
    return dc__err(DC_ERR_ARG, "config: vars.%s is not defined", dot + 1);
  }
  for (int k = 0; k < NKEYS; k++) {
    size_t ls = strlen(SCHEMA[k].section);
    if (dot && (size_t)(dot - full) == ls && strncmp(full, SCHEMA[k].section, ls) == 0 &&
        strcmp(dot + 1, SCHEMA[k].key) == 0)
      return c->resolved[k];
  }
  return dc__err(DC_ERR_ARG, "config: unknown key '%s'", full);
}

bool dc_config_is_set(const dc_config *c, const char *full) {
  if (!c || !full) return false;
  const char *dot = strchr(full, '.');
  if (!dot) return false;
  for (int k = 0; k < NKEYS; k++) {
    size_t ls = strlen(SCHEMA[k].section);
    if ((size_t)(dot - full) == ls && strncmp(full, SCHEMA[k].section, ls) == 0 &&
        strcmp(dot + 1, SCHEMA[k].key) == 0)
      return c->values[k] != NULL;
  }
  return false;
}

/* ---- writing ---- */
typedef struct sbuf {
  char *s;
  size_t n, cap;
  bool failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) DC__PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
  if (b->failed) return;
  va_list ap;
  va_start(ap, fmt);
  int need = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (b->n + (size_t)need + 1 > b->cap) {
    size_t cap = (b->cap + (size_t)need + 1) * 2;
    char *s = realloc(b->s, cap);
    if (!s) {
      b->failed = true;
      return;
    }
    b->s = s;
    b->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
  va_end(ap);
  b->n += (size_t)need;
}

char *dc_config_to_string(const dc_config *c, bool only_set) {
  if (!c) return dc__err(DC_ERR_ARG, "config_to_string: NULL");
  sbuf b = {0};
  sb_printf(&b, "%s", "");
  if (c->nvars) {
    sb_printf(&b, "[vars]\n");
    for (int i = 0; i < c->nvars; i++)
      sb_printf(&b, "%s = %s\n", c->var_names[i], c->var_values[i]);
    sb_printf(&b, "\n");
  }
  for (int s = 0; s < NSECTIONS - 1; s++) {
    bool header = false;
    for (int k = 0; k < NKEYS; k++) {
      if (strcmp(SCHEMA[k].section, SECTIONS[s]) != 0) continue;
      if (only_set && !c->values[k]) continue;
      if (!header) sb_printf(&b, "%s[%s]\n", b.n > 0 ? "\n" : "", SECTIONS[s]), header = true;
      sb_printf(&b, "%s = %s\n", SCHEMA[k].key, c->values[k] ? c->values[k] : SCHEMA[k].def);
    }
  }
  if (b.failed) {
    free(b.s);
    return dc__err(DC_ERR_NOMEM, "config_to_string: out of memory");
  }
  return b.s;
}

const char *dc__config_name(const dc_config *c) { return c->name; }

/* Keys whose resolved values differ between a and b, as "section.key" separated by ", "
 * (written into buf; "" when none). */
void dc__config_diff(const dc_config *a, const dc_config *b, char *buf, size_t n) {
  buf[0] = 0;
  size_t at = 0;
  for (int k = 0; k < NKEYS && at < n; k++)
    if (strcmp(a->resolved[k], b->resolved[k]) != 0)
      at += (size_t)snprintf(buf + at, n - at, "%s%s.%s", at ? ", " : "", SCHEMA[k].section,
                             SCHEMA[k].key);
}

/* dc__errs for messages that quote dc_last_error(): formats into a local buffer first, since
 * dc__errs writes into the very buffer dc_last_error() returns. */
int dc__rewrap(dc_status s, const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return dc__errs(s, "%s", msg);
}

int dc__status_or_nomem(void) { return dc_last_status() ? dc_last_status() : DC_ERR_NOMEM; }
