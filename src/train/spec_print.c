/* The key lists written from spec.h's table: `deepc train --help-keys` (text), the tables of
 * docs/training.md (`--help-keys --markdown`; a CLI test checks the file against it) and the
 * short list at the end of `deepc train --help`. */
#include "spec.h"

#include <string.h>

static const char *const SECTION_HELP[] = {
    "what to train",
    "the dataset, its split and transforms (augmentation applies to the training split only)",
    "the training loop",
    "the optimizer, with PyTorch's meaning and defaults",
    "the learning-rate schedule",
};

static const char *type_name(const dc__spec_key *e) {
  static const char *const NAMES[] = {
      [DC__T_INT] = "int",       [DC__T_FLOAT] = "number", [DC__T_BOOL] = "bool",
      [DC__T_STR] = "text",      [DC__T_ENUM] = "choice",  [DC__T_INTS] = "ints",
      [DC__T_FLOATS] = "numbers"};
  return NAMES[e->type];
}

/* The choices joined by sep, into buf. */
static const char *choices(const dc__spec_key *e, const char *sep, char *buf, size_t n) {
  size_t at = 0;
  buf[0] = 0;
  for (int i = 0; e->choices[i] && at < n; i++)
    at += (size_t)snprintf(buf + at, n - at, "%s%s", i ? sep : "", e->choices[i]);
  return buf;
}

/* The range with the item count of a list: "each >= 1; at most 32 values". */
static const char *range_text(const dc__spec_key *e, char *buf, size_t n) {
  bool list = e->type == DC__T_INTS || e->type == DC__T_FLOATS;
  if (!list) return snprintf(buf, n, "%s", e->range), buf;
  const char *each = e->range[0] ? "each " : "", *sep = e->range[0] ? "; " : "";
  if (e->nmin == e->nmax)
    snprintf(buf, n, "%s%s%s%d values", each, e->range, sep, e->nmin);
  else
    snprintf(buf, n, "%s%s%sat most %d values", each, e->range, sep, e->nmax);
  return buf;
}

/* Writes text wrapped at 100 columns, each line indented by `indent` spaces. */
static void wrapped(FILE *f, const char *text, int indent) {
  const int width = 100 - indent;
  while (*text) {
    int len = (int)strlen(text);
    if (len > width) {
      len = width;
      while (len > 0 && text[len] != ' ') len--;
      if (len == 0) len = width;
    }
    fprintf(f, "%*s%.*s\n", indent, "", len, text);
    text += len;
    while (*text == ' ') text++;
  }
}

static void print_text(FILE *f, int s) {
  char buf[256], rng[96];
  fprintf(f, "[%s]: %s\n", dc__spec_sections[s], SECTION_HELP[s]);
  for (int k = 0; k < DC__K_COUNT; k++) {
    const dc__spec_key *e = &dc__spec_keys[k];
    if (strcmp(e->section, dc__spec_sections[s]) != 0) continue;
    const char *t = e->type == DC__T_ENUM ? choices(e, "|", buf, sizeof buf) : type_name(e);
    const char *def = e->def[0] ? e->def : e->type == DC__T_STR ? "(none)" : "(auto)";
    range_text(e, rng, sizeof rng);
    fprintf(f, "  %-19s %-14s default %s%s%s\n", e->key, t, def, rng[0] ? "; " : "", rng);
    wrapped(f, e->help, 6);
  }
}

static void print_markdown(FILE *f, int s) {
  char buf[256], rng[96];
  fprintf(f, "**[%s]**: %s.\n\n", dc__spec_sections[s], SECTION_HELP[s]);
  fprintf(f, "| key | type | default | range | meaning |\n|---|---|---|---|---|\n");
  for (int k = 0; k < DC__K_COUNT; k++) {
    const dc__spec_key *e = &dc__spec_keys[k];
    if (strcmp(e->section, dc__spec_sections[s]) != 0) continue;
    const char *t = e->type == DC__T_ENUM ? choices(e, ", ", buf, sizeof buf) : type_name(e);
    const char *def = e->def[0] ? e->def : e->type == DC__T_STR ? "" : "(auto)";
    fprintf(f, "| %s | %s | %s | %s | %s |\n", e->key, t, def, range_text(e, rng, sizeof rng),
            e->help);
  }
  fprintf(f, "\n");
}

static void print_brief(FILE *f, int s) {
  char line[1024];
  size_t at = (size_t)snprintf(line, sizeof line, "  [%s]", dc__spec_sections[s]);
  for (int k = 0; k < DC__K_COUNT; k++) {
    const dc__spec_key *e = &dc__spec_keys[k];
    if (strcmp(e->section, dc__spec_sections[s]) != 0) continue;
    if (at + strlen(e->key) + 1 > 99)
      fprintf(f, "%s\n", line), at = (size_t)snprintf(line, sizeof line, "   ");
    at += (size_t)snprintf(line + at, sizeof line - at, " %s", e->key);
  }
  fprintf(f, "%s\n", line);
}

void dc_config_print_keys(FILE *f, dc_keys_format fmt) {
  if (!f) return;
  if (fmt == DC_KEYS_BRIEF)
    fprintf(f, "Configuration keys (deepc train --help-keys explains each):\n");
  for (int s = 0; dc__spec_sections[s] && strcmp(dc__spec_sections[s], "vars") != 0; s++) {
    if (fmt == DC_KEYS_TEXT) print_text(f, s);
    if (fmt == DC_KEYS_MARKDOWN) print_markdown(f, s);
    if (fmt == DC_KEYS_BRIEF) print_brief(f, s);
  }
  if (fmt != DC_KEYS_MARKDOWN) /* docs/training.md explains [vars] after the tables */
    fprintf(f, "%s[vars]%s any name = value, used as ${name} in the values above\n",
            fmt == DC_KEYS_BRIEF ? "  " : "", fmt == DC_KEYS_BRIEF ? "" : "\n ");
}

void dc_config_print_schema(FILE *f) { dc_config_print_keys(f, DC_KEYS_TEXT); }
