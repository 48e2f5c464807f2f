/* Line charts with cairo for the course exercises (lineplot.h): axes with round ticks, one
 * colour per series, a legend, optional log y axis. Deliberately small: no layout engine. */
#include "lineplot.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { W = 720, H = 440, ML = 80, MR = 170, MT = 40, MB = 56 };
static const double COLOURS[][3] = {{0.12, 0.47, 0.71}, {0.89, 0.10, 0.11}, {0.17, 0.63, 0.17},
                                    {1.00, 0.50, 0.05}, {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29}};
enum { NCOL = (int)(sizeof COLOURS / sizeof COLOURS[0]) };

static bool usable(double y, bool log_y) { return isfinite(y) && (!log_y || y > 0); }

/* A round tick step for the range [lo, hi] with about 6 ticks. */
static double tick_step(double lo, double hi) {
  double raw = (hi - lo) / 6, p = pow(10, floor(log10(raw))), m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void text(cairo_t *cr, double x, double y, const char *s, double ax, double ay) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, s, &e);
  cairo_move_to(cr, x - ax * e.width - e.x_bearing, y + ay * e.height);
  cairo_show_text(cr, s);
}

static void draw(cairo_t *cr, const lineplot_series *s, int ns, lineplot_opts o, double x0,
                 double x1, double y0, double y1) {
  double pw = W - ML - MR, ph = H - MT - MB;
#define PX(x) (ML + ((x)-x0) / (x1 - x0) * pw)
#define PY(y) (MT + ph - ((o.log_y ? log10(y) : (y)) - y0) / (y1 - y0) * ph)
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, 12);
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, ML, MT, pw, ph);
  cairo_stroke(cr);
  char buf[64];
  double st = tick_step(x0, x1);
  for (double t = ceil(x0 / st) * st; t <= x1 + 1e-9 * st; t += st) {
    cairo_move_to(cr, PX(t), MT + ph), cairo_line_to(cr, PX(t), MT + ph + 5), cairo_stroke(cr);
    snprintf(buf, sizeof buf, "%g", fabs(t) < 1e-12 * st ? 0.0 : t);
    text(cr, PX(t), MT + ph + 9, buf, 0.5, 1);
  }
  st = o.log_y ? 1 : tick_step(y0, y1);
  for (double t = ceil(y0 / st) * st; t <= y1 + 1e-9 * st; t += st) {
    double py = MT + ph - (t - y0) / (y1 - y0) * ph;
    cairo_move_to(cr, ML - 5, py), cairo_line_to(cr, ML, py), cairo_stroke(cr);
    snprintf(buf, sizeof buf, "%g", o.log_y ? pow(10, t) : (fabs(t) < 1e-12 * st ? 0.0 : t));
    text(cr, ML - 8, py, buf, 1, 0.5);
  }
  if (o.xlabel) text(cr, ML + pw / 2, H - 14, o.xlabel, 0.5, 0);
  if (o.ylabel) {
    cairo_save(cr);
    cairo_translate(cr, 18, MT + ph / 2);
    cairo_rotate(cr, -M_PI / 2);
    text(cr, 0, 0, o.ylabel, 0.5, 0.5);
    cairo_restore(cr);
  }
  if (o.title) {
    cairo_set_font_size(cr, 14);
    text(cr, ML + pw / 2, 14, o.title, 0.5, 1);
    cairo_set_font_size(cr, 12);
  }
  cairo_set_line_width(cr, 2);
  for (int k = 0; k < ns; k++) {
    const double *c = COLOURS[k % NCOL];
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
    bool pen = false;
    for (int i = 0; i < s[k].n; i++) {
      if (!usable(s[k].y[i], o.log_y)) {
        pen = false;
        continue;
      }
      double px = PX(s[k].x[i]), py = PY(s[k].y[i]);
      if (pen)
        cairo_line_to(cr, px, py);
      else
        cairo_move_to(cr, px, py);
      pen = true;
      if (s[k].n <= 40) cairo_arc(cr, px, py, 2.5, 0, 2 * M_PI), cairo_move_to(cr, px, py);
    }
    cairo_stroke(cr);
    double ly = MT + 12 + 20 * k;
    cairo_move_to(cr, W - MR + 12, ly), cairo_line_to(cr, W - MR + 36, ly), cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, W - MR + 42, ly, s[k].label ? s[k].label : "", 0, 0.5);
  }
#undef PX
#undef PY
}

int lineplot_write(const char *path, const lineplot_series *s, int ns, lineplot_opts o) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (int k = 0; k < ns; k++)
    for (int i = 0; i < s[k].n; i++) {
      if (!usable(s[k].y[i], o.log_y)) continue;
      double y = o.log_y ? log10(s[k].y[i]) : s[k].y[i];
      x0 = fmin(x0, s[k].x[i]), x1 = fmax(x1, s[k].x[i]), y0 = fmin(y0, y), y1 = fmax(y1, y);
    }
  if (!(x0 <= x1)) {
    fprintf(stderr, "lineplot: %s: no finite points to draw\n", path);
    return -1;
  }
  if (x1 == x0) x0 -= 0.5, x1 += 0.5;
  if (o.log_y)
    y0 = floor(y0), y1 = fmax(ceil(y1), y0 + 1);
  else if (y1 == y0)
    y0 -= 0.5, y1 += 0.5;
  else {
    double pad = 0.04 * (y1 - y0);
    y0 -= pad, y1 += pad;
  }
  const char *dot = strrchr(path, '.');
  bool svg = dot && strcmp(dot, ".svg") == 0;
  if (!svg && !(dot && strcmp(dot, ".png") == 0)) {
    fprintf(stderr, "lineplot: %s: the name must end in .png or .svg\n", path);
    return -1;
  }
  cairo_surface_t *sf = svg ? cairo_svg_surface_create(path, W, H)
                            : cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
  cairo_t *cr = cairo_create(sf);
  draw(cr, s, ns, o, x0, x1, y0, y1);
  cairo_destroy(cr);
  cairo_status_t st = svg ? CAIRO_STATUS_SUCCESS : cairo_surface_write_to_png(sf, path);
  cairo_surface_finish(sf);
  if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_status(sf);
  cairo_surface_destroy(sf);
  if (st != CAIRO_STATUS_SUCCESS) {
    fprintf(stderr, "lineplot: cannot write %s: %s\n", path, cairo_status_to_string(st));
    return -1;
  }
  return 0;
}
