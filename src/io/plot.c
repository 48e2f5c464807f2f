/* Loss and accuracy curves drawn with cairo into PNG or SVG: two panels (loss, accuracy)
 * against epoch, axes with "nice" ticks, grid, labels and a legend; one colour per run, train
 * solid and validation dashed. Used by `deepc train` (curves.png/svg) and `deepc plot`. */
#include <deepc/io.h>

#include "../core/core-impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#ifdef DC_HAVE_CAIRO
#include <cairo-svg.h>
#include <cairo.h>

enum { W = 1200, H = 500, ML = 72, MR = 24, MT = 64, MB = 58, GAP = 40 };

typedef struct rgb {
  double r, g, b;
} rgb;

/* matplotlib's tab10 */
static const rgb PALETTE[] = {{0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173},
                              {0.839, 0.153, 0.157}, {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294},
                              {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498}, {0.737, 0.741, 0.133},
                              {0.090, 0.745, 0.812}};
enum { NPAL = (int)(sizeof PALETTE / sizeof PALETTE[0]) };

/* A round step near x: 1, 2, 2.5 or 5 times a power of ten. */
static double nice_step(double x) {
  if (!(x > 0)) return 1;
  double e = floor(log10(x)), f = x / pow(10, e);
  double nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
  return nf * pow(10, e);
}

typedef struct axis {
  double lo, hi, step;
} axis;

static axis nice_axis(double lo, double hi, int nticks) {
  if (!isfinite(lo) || !isfinite(hi)) lo = 0, hi = 1;
  if (hi - lo < 1e-12) {
    double d = fabs(hi) > 1e-12 ? fabs(hi) * 0.05 : 0.5;
    lo -= d, hi += d;
  }
  double pad = (hi - lo) * 0.04;
  lo -= pad, hi += pad;
  double step = nice_step((hi - lo) / (nticks - 1));
  return (axis){floor(lo / step) * step, ceil(hi / step) * step, step};
}

/* One panel: which metric, its data range, where it is drawn. */
typedef struct panel {
  double x0, y0, w, h; /* plot area in device units */
  axis xa, ya;         /* tick ranges */
  double xlo, xhi;     /* x data range shown (the ticks plus a margin for the markers) */
  int metric;          /* 0 loss, 1 accuracy (percent) */
} panel;

static double value(const dc_epoch_stats *r, int metric, bool val) {
  if (metric == 0) return val ? r->val_loss : r->train_loss;
  double a = val ? r->val_acc : r->train_acc;
  return 100 * a;
}

static double px(const panel *p, double x) {
  return p->x0 + (x - p->xlo) / (p->xhi - p->xlo) * p->w;
}
static double py(const panel *p, double y) {
  return p->y0 + p->h - (y - p->ya.lo) / (p->ya.hi - p->ya.lo) * p->h;
}

static void text_at(cairo_t *cr, double x, double y, const char *s, double ax, double ay) {
  cairo_text_extents_t te;
  cairo_text_extents(cr, s, &te);
  cairo_move_to(cr, x - te.width * ax - te.x_bearing,
                y + te.height * ay - (te.height + te.y_bearing));
  cairo_show_text(cr, s);
}

static void fmt_tick(char *buf, size_t n, double v, double step) {
  int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
  if (step < 1 && fabs(step * pow(10, dec) - round(step * pow(10, dec))) > 1e-6) dec++;
  if (dec > 6) dec = 6;
  if (fabs(v) < step * 1e-6) v = 0;
  snprintf(buf, n, "%.*f", dec, v);
}

static void draw_axes(cairo_t *cr, const panel *p, const char *title, const char *ylabel) {
  char buf[64];
  cairo_set_line_width(cr, 1);
  /* grid and ticks */
  cairo_set_font_size(cr, 12);
  for (double y = p->ya.lo; y <= p->ya.hi + p->ya.step * 1e-6; y += p->ya.step) {
    double yy = round(py(p, y)) + 0.5;
    cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
    cairo_move_to(cr, p->x0, yy);
    cairo_line_to(cr, p->x0 + p->w, yy);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_move_to(cr, p->x0 - 5, yy);
    cairo_line_to(cr, p->x0, yy);
    cairo_stroke(cr);
    fmt_tick(buf, sizeof buf, y, p->ya.step);
    text_at(cr, p->x0 - 8, yy, buf, 1.0, 0.5);
  }
  for (double x = p->xa.lo; x <= p->xa.hi + 1e-9; x += p->xa.step) {
    double xx = round(px(p, x)) + 0.5;
    cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
    cairo_move_to(cr, xx, p->y0);
    cairo_line_to(cr, xx, p->y0 + p->h);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_move_to(cr, xx, p->y0 + p->h);
    cairo_line_to(cr, xx, p->y0 + p->h + 5);
    cairo_stroke(cr);
    fmt_tick(buf, sizeof buf, x, p->xa.step);
    text_at(cr, xx, p->y0 + p->h + 9, buf, 0.5, 1.0);
  }
  /* frame */
  cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
  cairo_rectangle(cr, p->x0 + 0.5, p->y0 + 0.5, p->w, p->h);
  cairo_stroke(cr);
  /* labels */
  cairo_set_font_size(cr, 14);
  text_at(cr, p->x0 + p->w / 2, p->y0 + p->h + 30, "epoch", 0.5, 1.0);
  cairo_save(cr);
  cairo_translate(cr, p->x0 - 54, p->y0 + p->h / 2);
  cairo_rotate(cr, -M_PI / 2);
  text_at(cr, 0, 0, ylabel, 0.5, 0.5);
  cairo_restore(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size(cr, 15);
  text_at(cr, p->x0 + p->w / 2, p->y0 - 10, title, 0.5, 0.0);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
}

static void set_style(cairo_t *cr, int run, bool val, int nruns) {
  rgb c = nruns == 1 ? PALETTE[val ? 1 : 0] : PALETTE[run % NPAL];
  cairo_set_source_rgb(cr, c.r, c.g, c.b);
  cairo_set_line_width(cr, 2);
  static const double dash[] = {7, 4};
  cairo_set_dash(cr, val ? dash : NULL, val ? 2 : 0, 0);
}

static void draw_series(cairo_t *cr, const panel *p, const dc_history *h, int run, bool val,
                        int nruns) {
  set_style(cr, run, val, nruns);
  bool pen = false;
  for (int i = 0; i < h->n; i++) {
    double v = value(&h->rows[i], p->metric, val);
    if (!isfinite(v)) {
      pen = false;
      continue;
    }
    double x = px(p, h->rows[i].epoch), y = py(p, v);
    if (pen)
      cairo_line_to(cr, x, y);
    else
      cairo_move_to(cr, x, y);
    pen = true;
  }
  cairo_stroke(cr);
  cairo_set_dash(cr, NULL, 0, 0);
  if (h->n <= 40)
    for (int i = 0; i < h->n; i++) {
      double v = value(&h->rows[i], p->metric, val);
      if (!isfinite(v)) continue;
      cairo_new_sub_path(cr);
      cairo_arc(cr, px(p, h->rows[i].epoch), py(p, v), val ? 2.5 : 3, 0, 2 * M_PI);
      cairo_fill(cr);
    }
}

static bool has_series(const dc_history *h, int metric, bool val) {
  for (int i = 0; i < h->n; i++)
    if (isfinite(value(&h->rows[i], metric, val))) return true;
  return false;
}

static void draw_legend(cairo_t *cr, const panel *p, const dc_history *const *runs,
                        const char *const *labels, int nruns, bool top) {
  char items[64][96];
  int style[64][2], n = 0;
  for (int r = 0; r < nruns && n < 62; r++)
    for (int v = 0; v < 2; v++) {
      if (!has_series(runs[r], p->metric, v)) continue;
      if (nruns == 1)
        snprintf(items[n], sizeof items[n], "%s", v ? "validation" : "train");
      else if (labels && labels[r])
        snprintf(items[n], sizeof items[n], "%.80s %s", labels[r], v ? "val" : "train");
      else
        snprintf(items[n], sizeof items[n], "run %d %s", r + 1, v ? "val" : "train");
      style[n][0] = r, style[n][1] = v, n++;
    }
  if (!n) return;
  cairo_set_font_size(cr, 12);
  double tw = 0;
  for (int i = 0; i < n; i++) {
    cairo_text_extents_t te;
    cairo_text_extents(cr, items[i], &te);
    if (te.x_advance > tw) tw = te.x_advance;
  }
  double lh = 18, bw = tw + 52, bh = n * lh + 10;
  double bx = p->x0 + p->w - bw - 10, by = top ? p->y0 + 10 : p->y0 + p->h - bh - 10;
  cairo_set_source_rgba(cr, 1, 1, 1, 0.88);
  cairo_rectangle(cr, bx, by, bw, bh);
  cairo_fill_preserve(cr);
  cairo_set_source_rgb(cr, 0.7, 0.7, 0.7);
  cairo_set_line_width(cr, 1);
  cairo_stroke(cr);
  for (int i = 0; i < n; i++) {
    double y = by + 5 + lh * i + lh / 2;
    set_style(cr, style[i][0], style[i][1], nruns);
    cairo_move_to(cr, bx + 8, y);
    cairo_line_to(cr, bx + 38, y);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, bx + 44, y, items[i], 0.0, 0.5);
  }
}

/* Data ranges over every run for one metric. */
static void ranges(const dc_history *const *runs, int nruns, int metric, double *lo, double *hi,
                   int *emax) {
  *lo = INFINITY, *hi = -INFINITY;
  for (int r = 0; r < nruns; r++)
    for (int i = 0; i < runs[r]->n; i++) {
      if (runs[r]->rows[i].epoch > *emax) *emax = runs[r]->rows[i].epoch;
      for (int v = 0; v < 2; v++) {
        double x = value(&runs[r]->rows[i], metric, v);
        if (!isfinite(x)) continue;
        if (x < *lo) *lo = x;
        if (x > *hi) *hi = x;
      }
    }
}

static void draw(cairo_t *cr, const dc_history *const *runs, const char *const *labels, int nruns,
                 const char *title) {
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  if (title && *title) {
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    cairo_set_font_size(cr, 16);
    text_at(cr, W / 2.0, 12, title, 0.5, 1.0);
  }
  double pw = (W - 2 * (ML + MR) - GAP) / 2.0;
  for (int m = 0; m < 2; m++) {
    panel p = {
        .x0 = ML + m * (pw + ML + MR + GAP), .y0 = MT, .w = pw, .h = H - MT - MB, .metric = m};
    double lo, hi;
    int emax = 1;
    ranges(runs, nruns, m, &lo, &hi, &emax);
    if (m == 0 && isfinite(lo) && lo > 0 && lo < 0.25 * hi) lo = 0; /* losses: start at 0 */
    if (m == 1 && isfinite(hi) && hi > 100) hi = 100;
    p.ya = nice_axis(lo, hi, 7);
    if (isfinite(lo) && lo >= 0 && p.ya.lo < 0) p.ya.lo = 0; /* no negative losses */
    if (m == 1 && p.ya.hi > 100 && hi <= 100) p.ya.hi = 100;
    if (m == 1 && p.ya.lo < 0) p.ya.lo = 0;
    double xs = emax <= 10 ? 1 : ceil(nice_step(emax / 8.0));
    p.xa = (axis){emax <= 10 ? 1 : 0, emax <= 1 ? 2 : ceil(emax / xs) * xs, xs};
    double margin = 0.03 * (p.xa.hi - p.xa.lo);
    p.xlo = p.xa.lo - margin, p.xhi = p.xa.hi + margin;
    draw_axes(cr, &p, m == 0 ? "Loss" : "Accuracy", m == 0 ? "cross-entropy loss" : "accuracy (%)");
    cairo_save(cr);
    cairo_rectangle(cr, p.x0, p.y0, p.w, p.h);
    cairo_clip(cr);
    for (int r = 0; r < nruns; r++)
      for (int v = 0; v < 2; v++) draw_series(cr, &p, runs[r], r, v, nruns);
    cairo_restore(cr);
    draw_legend(cr, &p, runs, labels, nruns, m == 0);
  }
}

int dc_plot_curves(const char *path, const dc_history *const *runs, const char *const *labels,
                   int nruns, const char *title) {
  if (!path || !runs || nruns < 1) return dc__errs(DC_ERR_ARG, "plot_curves: no runs to draw");
  for (int r = 0; r < nruns; r++)
    if (!runs[r]) return dc__errs(DC_ERR_ARG, "plot_curves: run %d is NULL", r);
  size_t n = strlen(path);
  bool svg = n > 4 && strcasecmp(path + n - 4, ".svg") == 0;
  bool png = n > 4 && strcasecmp(path + n - 4, ".png") == 0;
  if (!svg && !png)
    return dc__errs(DC_ERR_ARG, "plot_curves: %s: the file name must end in .png or .svg", path);
  cairo_surface_t *s = svg ? cairo_svg_surface_create(path, W, H)
                           : cairo_image_surface_create(CAIRO_FORMAT_ARGB32, W, H);
  if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
    int rc = dc__errs(DC_ERR_IO, "%s: cannot create the image (%s)", path,
                      cairo_status_to_string(cairo_surface_status(s)));
    cairo_surface_destroy(s);
    return rc;
  }
  cairo_t *cr = cairo_create(s);
  draw(cr, runs, labels, nruns, title);
  cairo_status_t st = cairo_status(cr);
  cairo_destroy(cr);
  if (st == CAIRO_STATUS_SUCCESS && png) st = cairo_surface_write_to_png(s, path);
  cairo_surface_finish(s);
  if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_status(s);
  cairo_surface_destroy(s);
  if (st != CAIRO_STATUS_SUCCESS)
    return dc__errs(DC_ERR_IO, "%s: drawing the curves failed (%s)", path,
                    cairo_status_to_string(st));
  return DC_OK;
}

#else

int dc_plot_curves(const char *path, const dc_history *const *runs, const char *const *labels,
                   int nruns, const char *title) {
  (void)runs, (void)labels, (void)nruns, (void)title;
  return dc__errs(DC_ERR_UNSUPPORTED,
                  "plot_curves: %s: deepc was built without cairo (install libcairo2-dev: "
                  "scripts/install-deps.sh) ",
                  path ? path : "");
}

#endif
