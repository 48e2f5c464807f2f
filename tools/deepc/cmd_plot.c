/* `deepc plot DIR... [--out FILE] [--labels a,b,...] [--title T]`: draws the loss and accuracy
 * curves of one or several runs (their metrics.csv) on the same axes, to compare them. */
#include "commands.h"

#include <deepc/deepc.h>
#include <deepc/io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char USAGE[] =
    "usage: deepc plot DIR|CSV... [--out FILE.png|FILE.svg] [--labels a,b,...] [--title T]\n"
    "Draws loss and accuracy against epoch for every run (a folder written by `deepc train`,\n"
    "or its metrics.csv) on the same axes: one colour per run, train solid, validation dashed.\n"
    "  --out F      image to write (default curves.png; .svg for a vector image)\n"
    "  --labels L   legend names, comma-separated (default: the folder names)\n"
    "  --title T    title above the plots\n";

enum { MAX_RUNS = 32 };

/* The run's name for the legend: the last component of its folder. */
static void run_label(const char *path, char *buf, size_t n) {
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s", path);
  size_t l = strlen(tmp);
  if (l > 12 && strcmp(tmp + l - 12, "/metrics.csv") == 0) tmp[l -= 12] = 0;
  while (l > 1 && tmp[l - 1] == '/') tmp[--l] = 0;
  const char *s = strrchr(tmp, '/');
  snprintf(buf, n, "%s", s ? s + 1 : tmp);
}

int dc_cmd_plot(int argc, char **argv) {
  const char *paths[MAX_RUNS], *out = "curves.png", *title = NULL, *labels_arg = NULL, *v = NULL;
  int n = 0;
  for (int i = 1; i < argc; i++) {
    if (dc_cli_is_help(argv[i])) {
      fputs(USAGE, stdout);
      return DC_CLI_OK;
    }
    if (argv[i][0] != '-') {
      if (n == MAX_RUNS) return dc_cli_usage_error("plot", "at most %d runs", MAX_RUNS);
      paths[n++] = argv[i];
    } else if (dc_cli_opt(argc, argv, &i, "--out", &v)) {
      if (!v) return dc_cli_usage_error("plot", "--out needs a file name");
      out = v;
    } else if (dc_cli_opt(argc, argv, &i, "--title", &v)) {
      if (!v) return dc_cli_usage_error("plot", "--title needs a text");
      title = v;
    } else if (dc_cli_opt(argc, argv, &i, "--labels", &v)) {
      if (!v) return dc_cli_usage_error("plot", "--labels needs names");
      labels_arg = v;
    } else {
      return dc_cli_usage_error("plot", "unknown option '%s'", argv[i]);
    }
  }
  if (n == 0)
    return dc_cli_usage_error("plot", "give at least one run folder (e.g. runs/fashion_cnn)");
  static dc_history hs[MAX_RUNS];
  static char names[MAX_RUNS][128];
  const dc_history *runs[MAX_RUNS];
  const char *labels[MAX_RUNS];
  int rc = DC_CLI_OK, loaded = 0;
  for (int r = 0; r < n; r++) {
    char csv[1100];
    struct stat st;
    if (stat(paths[r], &st) == 0 && S_ISDIR(st.st_mode))
      snprintf(csv, sizeof csv, "%s/metrics.csv", paths[r]);
    else
      snprintf(csv, sizeof csv, "%s", paths[r]);
    if (dc_history_read_csv(csv, &hs[r]) != DC_OK) {
      rc = dc_cli_lib_error("plot");
      break;
    }
    loaded++;
    if (hs[r].n == 0) {
      rc = dc_cli_error("plot", "%s: no epochs recorded yet", csv);
      break;
    }
    run_label(paths[r], names[r], sizeof names[r]);
    runs[r] = &hs[r];
    labels[r] = names[r];
  }
  if (rc == DC_CLI_OK && labels_arg) {
    char *copy = strdup(labels_arg), *save = NULL;
    int k = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && k < n; tok = strtok_r(NULL, ",", &save))
      snprintf(names[k++], sizeof names[0], "%s", tok);
    free(copy);
    if (k != n) rc = dc_cli_usage_error("plot", "--labels has %d names for %d runs", k, n);
  }
  if (rc == DC_CLI_OK) {
    if (dc_plot_curves(out, runs, labels, n, title) != DC_OK)
      rc = dc_cli_lib_error("plot");
    else
      printf("wrote %s (%d run%s)\n", out, n, n > 1 ? "s" : "");
  }
  for (int r = 0; r < loaded; r++) dc_history_clear(&hs[r]);
  return rc;
}
