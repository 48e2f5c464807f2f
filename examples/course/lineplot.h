/* Line charts for the course exercises (gradient norm against layer, weight norm against
 * iteration): several series on one pair of axes, written as PNG or SVG with cairo.
 * Loss/accuracy curves of training runs are deepc's own dc_plot_curves (io.h). */
#ifndef COURSE_LINEPLOT_H
#define COURSE_LINEPLOT_H

#include <stdbool.h>

typedef struct lineplot_series {
  const char *label; /* legend text */
  const double *x;   /* [n] */
  const double *y;   /* [n]; non-finite values (and y <= 0 on a log axis) are skipped */
  int n;
} lineplot_series;

typedef struct lineplot_opts {
  const char *title, *xlabel, *ylabel;
  bool log_y; /* logarithmic y axis */
} lineplot_opts;

/* Draws the series into path (.png or .svg, from the extension). Returns 0, or -1 with a
 * message on stderr (unknown extension, nothing to draw, cairo could not write the file). */
int lineplot_write(const char *path, const lineplot_series *s, int ns, lineplot_opts o);

#endif
