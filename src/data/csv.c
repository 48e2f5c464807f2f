/* CSV datasets: a header line, one label column (by name, index or guess), every other column a
 * float32 feature. Integer labels are class indices, other numbers regression targets, anything
 * else class names (sorted). Quoted fields, CRLF and a UTF-8 BOM are handled; a bad cell is
 * reported with its line and column. */
#include "data-impl.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DC__CSV_MAX_FILE ((size_t)1 << 34)
#define DC__CSV_MAX_COLS 1000000

typedef struct csv_field {
  size_t s, e; /* byte range [s, e) without the quotes */
  bool quoted;
} csv_field;

typedef struct csv_reader {
  const char *b;
  size_t n, pos;
  int64_t line; /* 1-based line of the current row */
  char delim;
} csv_reader;

/* Next field of the current row; *eol set when it ended the row. False at end of input. */
static bool csv_next(csv_reader *r, csv_field *f, bool *eol) {
  if (r->pos >= r->n) return false;
  const char *b = r->b;
  size_t i = r->pos;
  f->quoted = false;
  if (b[i] == '"') {
    f->quoted = true;
    f->s = ++i;
    while (i < r->n && !(b[i] == '"' && (i + 1 >= r->n || b[i + 1] != '"'))) {
      if (b[i] == '"')
        i++; /* "" escape */
      else if (b[i] == '\n')
        r->line++;
      i++;
    }
    f->e = i;
    if (i < r->n) i++;
    while (i < r->n && b[i] != r->delim && b[i] != '\n') i++;
  } else {
    f->s = i;
    while (i < r->n && b[i] != r->delim && b[i] != '\n') i++;
    f->e = i;
    if (f->e > f->s && b[f->e - 1] == '\r') f->e--;
  }
  *eol = i >= r->n || b[i] == '\n';
  r->pos = i < r->n ? i + 1 : i;
  if (*eol) r->line++;
  return true;
}

/* Copies a field (unescaping "") into out (at most n-1 chars); returns its length, or SIZE_MAX
 * when it did not fit (out then holds its head). */
static size_t csv_text(const csv_reader *r, const csv_field *f, char *out, size_t n) {
  size_t k = 0, i = f->s;
  for (; i < f->e && k + 1 < n; i++) {
    if (f->quoted && r->b[i] == '"' && i + 1 < f->e && r->b[i + 1] == '"') i++;
    out[k++] = r->b[i];
  }
  out[k] = '\0';
  return i < f->e ? SIZE_MAX : k;
}

static bool blank_line(const csv_reader *r) {
  size_t i = r->pos;
  while (i < r->n && (r->b[i] == ' ' || r->b[i] == '\t' || r->b[i] == '\r')) i++;
  return i >= r->n || r->b[i] == '\n';
}

static void skip_line(csv_reader *r) {
  while (r->pos < r->n && r->b[r->pos] != '\n') r->pos++;
  if (r->pos < r->n) r->pos++;
  r->line++;
}

static char guess_delimiter(const char *b, size_t n) {
  size_t counts[3] = {0};
  const char cand[3] = {',', ';', '\t'};
  bool q = false;
  for (size_t i = 0; i < n && b[i] != '\n'; i++) {
    if (b[i] == '"') q = !q;
    for (int k = 0; k < 3 && !q; k++) counts[k] += b[i] == cand[k];
  }
  int best = 0;
  for (int k = 1; k < 3; k++)
    if (counts[k] > counts[best]) best = k;
  return cand[best];
}

static bool parse_number(const char *s, double *v) {
  while (isspace((unsigned char)*s)) s++;
  /* decimal only, as Python's float(): no C99 hex floats ("0x1p3") */
  if (!*s || strpbrk(s, "xX")) return false;
  char *end;
  *v = strtod(s, &end);
  while (isspace((unsigned char)*end)) end++;
  return *end == '\0';
}

static int cmp_cstr(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Label cells: [N] copies of the text, then resolved into targets. */
typedef struct csv_labels {
  char **text;
  int64_t n;
} csv_labels;

static void labels_free(csv_labels *l) {
  for (int64_t i = 0; i < l->n; i++) dc__free(l->text[i]);
  dc__free(l->text);
}

/* Integers >= 0: class indices; numbers: float targets; else names sorted into classes. */
static dc_tensor *resolve_labels(const csv_labels *l, char ***names, int64_t *nnames) {
  bool all_int = true, all_num = true;
  for (int64_t i = 0; i < l->n && all_num; i++) {
    double v;
    all_num = parse_number(l->text[i], &v);
    all_int = all_int && all_num && v >= 0 && v == floor(v) && v < 1e9 &&
              strpbrk(l->text[i], ".eE") == NULL;
  }
  *names = NULL;
  *nnames = 0;
  if (all_num) {
    dc_tensor *t = dc__new(DC_SHAPE(l->n), all_int ? DC_I64 : DC_F32, DC_CPU);
    if (!t) return NULL;
    for (int64_t i = 0; i < l->n; i++) {
      double v = strtod(l->text[i], NULL);
      if (all_int)
        ((int64_t *)dc_data(t))[i] = (int64_t)v;
      else
        ((float *)dc_data(t))[i] = (float)v;
    }
    return t;
  }
  char **sorted = dc__malloc(sizeof *sorted * (size_t)(l->n ? l->n : 1));
  if (!sorted) return NULL;
  memcpy(sorted, l->text, sizeof *sorted * (size_t)l->n);
  qsort(sorted, (size_t)l->n, sizeof *sorted, cmp_cstr);
  int64_t u = 0;
  for (int64_t i = 0; i < l->n; i++)
    if (u == 0 || strcmp(sorted[u - 1], sorted[i]) != 0) sorted[u++] = sorted[i];
  dc_tensor *t = dc__new(DC_SHAPE(l->n), DC_I64, DC_CPU);
  if (!t) {
    dc__free(sorted);
    return NULL;
  }
  for (int64_t i = 0; i < l->n; i++) {
    char **hit = bsearch(&l->text[i], sorted, (size_t)u, sizeof *sorted, cmp_cstr);
    ((int64_t *)dc_data(t))[i] = hit - sorted;
  }
  *names = sorted;
  *nnames = u;
  return t;
}

dc_dataset *dc_csv_dataset_opt(const char *path, dc_csv_opts o) {
  if (!path) return dc__err(DC_ERR_ARG, "csv_dataset: path is NULL");
  uint8_t *mem;
  size_t n;
  if (dc__read_file(path, DC__CSV_MAX_FILE, &mem, &n)) return NULL;
  csv_reader r = {(const char *)mem, n, 0, 1, 0};
  if (n >= 3 && memcmp(mem, "\xEF\xBB\xBF", 3) == 0) r.pos = 3;
  r.delim = o.delimiter ? o.delimiter : guess_delimiter(r.b + r.pos, n - r.pos);
  float *feat = NULL;
  csv_labels lab = {0};
  char **header = NULL, **names = NULL;
  int64_t ncols = 0, nnames = 0, rows = 0, label_col = -1;
  dc_tensor *x = NULL, *y = NULL;
  dc_dataset *ds = NULL;
  char cell[256];
  while (r.pos < n && blank_line(&r)) skip_line(&r);
  /* first row: column count (and names) */
  size_t first = r.pos;
  csv_field f;
  bool eol = false;
  while (!eol && csv_next(&r, &f, &eol)) {
    if (ncols >= DC__CSV_MAX_COLS) {
      dc__err(DC_ERR_FORMAT, "%s: line 1 has more than %d columns", path, DC__CSV_MAX_COLS);
      goto done;
    }
    ncols++;
  }
  if (ncols == 0) {
    dc__err(DC_ERR_FORMAT, "%s: empty CSV file", path);
    goto done;
  }
  if (!(header = dc__calloc((size_t)ncols, sizeof *header))) goto done;
  r.pos = first;
  r.line = 1;
  for (int64_t c = 0; c < ncols; c++) {
    csv_next(&r, &f, &eol);
    if (o.no_header)
      snprintf(cell, sizeof cell, "%lld", (long long)c);
    else
      csv_text(&r, &f, cell, sizeof cell);
    if (!(header[c] = dc__strdup(cell))) goto done;
  }
  if (o.no_header) {
    r.pos = first;
    r.line = 1;
  }
  if (!o.no_label) {
    if (o.label_column) {
      for (int64_t c = 0; c < ncols && label_col < 0; c++)
        if (strcmp(header[c], o.label_column) == 0) label_col = c;
      if (label_col < 0) {
        dc__err(DC_ERR_ARG, "%s: no column named '%s' in the header (first column '%s')", path,
                o.label_column, header[0]);
        goto done;
      }
    } else if (o.label_first || o.label_index > 0) {
      label_col = o.label_first ? 0 : o.label_index;
      if (label_col >= ncols) {
        dc__err(DC_ERR_ARG, "%s: label column %lld but the file has %lld columns", path,
                (long long)label_col, (long long)ncols);
        goto done;
      }
    } else {
      static const char *const guess[] = {"label", "labels", "target", "class", "y"};
      for (size_t k = 0; k < sizeof guess / sizeof *guess && label_col < 0 && !o.no_header; k++)
        for (int64_t c = 0; c < ncols && label_col < 0; c++)
          if (strcasecmp(header[c], guess[k]) == 0) label_col = c;
      if (label_col < 0) label_col = ncols - 1;
    }
  }
  int64_t nf = ncols - (label_col >= 0 ? 1 : 0);
  if (nf < 1) {
    dc__err(DC_ERR_FORMAT,
            "%s: no feature columns besides the label (column %lld, '%s'), so every sample "
            "would be empty; a CSV dataset needs at least one feature column",
            path, (long long)label_col + 1, header[label_col]);
    goto done;
  }
  /* rows to hold: one per line, and no more than the bytes allow (a row of ncols cells takes at
   * least ncols bytes: delimiters and the newline), so a wide header over many short lines
   * cannot ask for rows x columns floats the file does not hold */
  int64_t max_rows = 1;
  for (size_t i = r.pos; i < n; i++) max_rows += mem[i] == '\n';
  if (max_rows > (int64_t)((n - r.pos) / (size_t)ncols) + 1)
    max_rows = (int64_t)((n - r.pos) / (size_t)ncols) + 1;
  if (!(feat = dc__malloc(sizeof(float) * (size_t)(max_rows * nf))) ||
      (label_col >= 0 && !(lab.text = dc__calloc((size_t)max_rows, sizeof *lab.text))))
    goto done;
  while (r.pos < n) {
    if (blank_line(&r)) {
      skip_line(&r);
      continue;
    }
    int64_t line = r.line, c = 0, fi = 0;
    eol = false;
    while (!eol && csv_next(&r, &f, &eol)) {
      if (c >= ncols) {
        dc__err(DC_ERR_FORMAT, "%s: line %lld has more than the %lld columns of the header", path,
                (long long)line, (long long)ncols);
        goto done;
      }
      if (csv_text(&r, &f, cell, sizeof cell) == SIZE_MAX || memchr(r.b + f.s, 0, f.e - f.s)) {
        dc__err(DC_ERR_FORMAT,
                "%s: line %lld, column %lld ('%s'): a cell of %zu bytes (at most %zu, no NUL "
                "bytes)",
                path, (long long)line, (long long)c + 1, header[c], f.e - f.s, sizeof cell - 1);
        goto done;
      }
      if (c == label_col) {
        if (!(lab.text[rows] = dc__strdup(cell))) goto done;
        lab.n = rows + 1;
      } else {
        double v;
        if (!parse_number(cell, &v)) {
          dc__err(DC_ERR_FORMAT, "%s: line %lld, column %lld ('%s'): '%.40s' is not a number%s",
                  path, (long long)line, (long long)c + 1, header[c], cell,
                  cell[0] ? "" : " (missing value)");
          goto done;
        }
        feat[rows * nf + fi++] = (float)v;
      }
      c++;
    }
    if (c != ncols) {
      dc__err(DC_ERR_FORMAT, "%s: line %lld has %lld columns, the header has %lld", path,
              (long long)line, (long long)c, (long long)ncols);
      goto done;
    }
    rows++;
  }
  if (rows == 0) {
    dc__err(DC_ERR_FORMAT, "%s: the CSV has a header but no data rows", path);
    goto done;
  }
  if (!(x = dc_from_data(feat, DC_SHAPE(rows, nf), DC_F32))) goto done;
  if (label_col >= 0 && !(y = resolve_labels(&lab, &names, &nnames))) goto done;
  ds = dc__xy_dataset(x, y, "CSV", path);
  if (ds && nnames && dc__dataset_set_classes(ds, nnames, (const char *const *)names) != DC_OK) {
    dc_dataset_free(ds);
    ds = NULL;
  }
done:
  dc__free(names); /* the strings belong to lab */
  labels_free(&lab);
  for (int64_t c = 0; header && c < ncols; c++) dc__free(header[c]);
  dc__free(header);
  dc__free(feat);
  dc_free(x);
  dc_free(y);
  dc__free(mem);
  return ds;
}
