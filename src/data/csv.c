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

/* One CSV load: the file, its header, the label column and the parsed rows. */
typedef struct csv_load {
  const char *path;
  uint8_t *mem;
  csv_reader r;
  char **header;                /* [ncols] column names (their indices without a header) */
  int64_t ncols, label_col, nf; /* label_col -1 without labels; nf feature columns */
  float *feat;                  /* [max_rows, nf] features */
  int64_t rows, max_rows;
  csv_labels lab; /* [rows] label cells */
  char cell[256];
} csv_load;

/* Counts the first row's columns and takes their names (or indices); r stays at the first data
 * row. */
static bool csv_read_header(csv_load *L, bool no_header) {
  csv_reader *r = &L->r;
  while (r->pos < r->n && blank_line(r)) skip_line(r);
  size_t first = r->pos;
  csv_field f;
  bool eol = false;
  while (!eol && csv_next(r, &f, &eol)) {
    if (L->ncols >= DC__CSV_MAX_COLS) {
      dc__err(DC_ERR_FORMAT, "%s: line 1 has more than %d columns", L->path, DC__CSV_MAX_COLS);
      return false;
    }
    L->ncols++;
  }
  if (L->ncols == 0) {
    dc__err(DC_ERR_FORMAT, "%s: empty CSV file", L->path);
    return false;
  }
  if (!(L->header = dc__calloc((size_t)L->ncols, sizeof *L->header))) return false;
  r->pos = first;
  r->line = 1;
  for (int64_t c = 0; c < L->ncols; c++) {
    csv_next(r, &f, &eol);
    if (no_header)
      snprintf(L->cell, sizeof L->cell, "%lld", (long long)c);
    else
      csv_text(r, &f, L->cell, sizeof L->cell);
    if (!(L->header[c] = dc__strdup(L->cell))) return false;
  }
  if (no_header) {
    r->pos = first;
    r->line = 1;
  }
  return true;
}

/* The label column: by name, by index, or guessed from the header (else the last column). */
static bool csv_pick_label(csv_load *L, const dc_csv_opts *o) {
  L->label_col = -1;
  if (o->no_label) return true;
  if (o->label_column) {
    for (int64_t c = 0; c < L->ncols && L->label_col < 0; c++)
      if (strcmp(L->header[c], o->label_column) == 0) L->label_col = c;
    if (L->label_col < 0) {
      dc__err(DC_ERR_ARG, "%s: no column named '%s' in the header (first column '%s')", L->path,
              o->label_column, L->header[0]);
      return false;
    }
  } else if (o->label_first || o->label_index > 0) {
    L->label_col = o->label_first ? 0 : o->label_index;
    if (L->label_col >= L->ncols) {
      dc__err(DC_ERR_ARG, "%s: label column %lld but the file has %lld columns", L->path,
              (long long)L->label_col, (long long)L->ncols);
      return false;
    }
  } else {
    static const char *const guess[] = {"label", "labels", "target", "class", "y"};
    for (size_t k = 0; k < sizeof guess / sizeof *guess && L->label_col < 0 && !o->no_header; k++)
      for (int64_t c = 0; c < L->ncols && L->label_col < 0; c++)
        if (strcasecmp(L->header[c], guess[k]) == 0) L->label_col = c;
    if (L->label_col < 0) L->label_col = L->ncols - 1;
  }
  return true;
}

/* Room for the rows: one per line, and no more than the bytes allow (a row of ncols cells takes
 * at least ncols bytes: delimiters and the newline), so a wide header over many short lines
 * cannot ask for rows x columns floats the file does not hold. */
static bool csv_alloc_rows(csv_load *L) {
  L->nf = L->ncols - (L->label_col >= 0 ? 1 : 0);
  if (L->nf < 1) {
    dc__err(DC_ERR_FORMAT,
            "%s: no feature columns besides the label (column %lld, '%s'), so every sample "
            "would be empty; a CSV dataset needs at least one feature column",
            L->path, (long long)L->label_col + 1, L->header[L->label_col]);
    return false;
  }
  const csv_reader *r = &L->r;
  size_t left = r->n - r->pos;
  L->max_rows = 1;
  for (size_t i = r->pos; i < r->n; i++) L->max_rows += r->b[i] == '\n';
  if (L->max_rows > (int64_t)(left / (size_t)L->ncols) + 1)
    L->max_rows = (int64_t)(left / (size_t)L->ncols) + 1;
  return (L->feat = dc__malloc(sizeof(float) * (size_t)(L->max_rows * L->nf))) &&
         (L->label_col < 0 || (L->lab.text = dc__calloc((size_t)L->max_rows, sizeof *L->lab.text)));
}

/* One cell c of the row at line: the label's text or a feature. */
static bool csv_cell(csv_load *L, const csv_field *f, int64_t line, int64_t c, int64_t *fi) {
  const char *path = L->path, *cell = L->cell;
  if (csv_text(&L->r, f, L->cell, sizeof L->cell) == SIZE_MAX ||
      memchr(L->r.b + f->s, 0, f->e - f->s)) {
    dc__err(DC_ERR_FORMAT,
            "%s: line %lld, column %lld ('%s'): a cell of %zu bytes (at most %zu, no NUL bytes)",
            path, (long long)line, (long long)c + 1, L->header[c], f->e - f->s, sizeof L->cell - 1);
    return false;
  }
  if (c == L->label_col) {
    if (!(L->lab.text[L->rows] = dc__strdup(cell))) return false;
    L->lab.n = L->rows + 1;
    return true;
  }
  double v;
  if (!parse_number(cell, &v)) {
    dc__err(DC_ERR_FORMAT, "%s: line %lld, column %lld ('%s'): '%.40s' is not a number%s", path,
            (long long)line, (long long)c + 1, L->header[c], cell,
            cell[0] ? "" : " (missing value)");
    return false;
  }
  L->feat[L->rows * L->nf + (*fi)++] = (float)v;
  return true;
}

/* Every data row, blank lines skipped; each must have the header's column count. */
static bool csv_read_rows(csv_load *L) {
  csv_reader *r = &L->r;
  while (r->pos < r->n) {
    if (blank_line(r)) {
      skip_line(r);
      continue;
    }
    int64_t line = r->line, c = 0, fi = 0;
    csv_field f;
    bool eol = false;
    while (!eol && csv_next(r, &f, &eol)) {
      if (c >= L->ncols) {
        dc__err(DC_ERR_FORMAT, "%s: line %lld has more than the %lld columns of the header",
                L->path, (long long)line, (long long)L->ncols);
        return false;
      }
      if (!csv_cell(L, &f, line, c++, &fi)) return false;
    }
    if (c != L->ncols) {
      dc__err(DC_ERR_FORMAT, "%s: line %lld has %lld columns, the header has %lld", L->path,
              (long long)line, (long long)c, (long long)L->ncols);
      return false;
    }
    L->rows++;
  }
  if (L->rows == 0) {
    dc__err(DC_ERR_FORMAT, "%s: the CSV has a header but no data rows", L->path);
    return false;
  }
  return true;
}

/* The dataset of the parsed rows: x [rows, nf] float32, y [rows] (classes named when text). */
static dc_dataset *csv_make_dataset(csv_load *L) {
  char **names = NULL;
  int64_t nnames = 0;
  dc_tensor *y = NULL, *x = dc_from_data(L->feat, DC_SHAPE(L->rows, L->nf), DC_F32);
  dc_dataset *ds = NULL;
  if (x && (L->label_col < 0 || (y = resolve_labels(&L->lab, &names, &nnames))))
    ds = dc__xy_dataset(x, y, "CSV", L->path);
  if (ds && nnames && dc__dataset_set_classes(ds, nnames, (const char *const *)names) != DC_OK) {
    dc_dataset_free(ds);
    ds = NULL;
  }
  dc__free(names); /* the strings belong to lab */
  dc_free(x);
  dc_free(y);
  return ds;
}

dc_dataset *dc_csv_dataset_opt(const char *path, dc_csv_opts o) {
  if (!path) return dc__err(DC_ERR_ARG, "csv_dataset: path is NULL");
  csv_load L = {.path = path};
  size_t n;
  if (dc__read_file(path, DC__CSV_MAX_FILE, &L.mem, &n)) return NULL;
  L.r = (csv_reader){(const char *)L.mem, n, 0, 1, 0};
  if (n >= 3 && memcmp(L.mem, "\xEF\xBB\xBF", 3) == 0) L.r.pos = 3;
  L.r.delim = o.delimiter ? o.delimiter : guess_delimiter(L.r.b + L.r.pos, n - L.r.pos);
  dc_dataset *ds = NULL;
  if (csv_read_header(&L, o.no_header) && csv_pick_label(&L, &o) && csv_alloc_rows(&L) &&
      csv_read_rows(&L))
    ds = csv_make_dataset(&L);
  labels_free(&L.lab);
  for (int64_t c = 0; L.header && c < L.ncols; c++) dc__free(L.header[c]);
  dc__free(L.header);
  dc__free(L.feat);
  dc__free(L.mem);
  return ds;
}
