/* `deepc search CONFIG --grid key=v1,v2 [--grid key2=a,b ...] [--set ...] [--out DIR]`: a grid
 * search over configuration values, one run folder per combination, ranked by validation
 * accuracy with the best configuration's test accuracy (src/train/search.c). */
#include "commands.h"
#include "train-cli.h"

#include <deepc/deepc.h>
#include <deepc/train.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: deepc search CONFIG --grid section.key=v1,v2,... [--grid ...] [--set K=V ...]\n"
    "                    [--out DIR] [--device D] [--progress auto|bar|lines|none]\n"
    "Trains one model per combination of the --grid values (e.g. --grid model.pool=2,3\n"
    "--grid model.dropout=0,0.3 --grid model.batchnorm=true,false: 8 runs), each in\n"
    "DIR/<key=value,...> (DIR default runs/search-<CONFIG name>), then prints the runs ranked\n"
    "by their best validation accuracy and the test accuracy of the best one. The table is\n"
    "also written to DIR/search.md and DIR/search.csv. Values holding commas (lists) are\n"
    "separated by ';' instead: --grid model.channels=16,32;32,64.\n"
    "  --device D   train on cpu, cuda or testdev (overrides train.device)\n";

enum { MAX_AXES = 16, MAX_VALUES = 64 };

static volatile int g_interrupt;
static void on_sigint(int sig) {
  (void)sig;
  g_interrupt = 1;
}

int dc_cmd_search(int argc, char **argv) {
  dc_cli_prefer_passive_omp(argc, argv);
  dc_cli_keep_freed_memory();
  const char *cfg_path = NULL, *out = NULL, *v = NULL, *device = NULL;
  dc_progress_mode mode = DC_PROGRESS_AUTO;
  static char *storage[MAX_AXES];
  static const char *values[MAX_AXES][MAX_VALUES];
  static char keys[MAX_AXES][128];
  dc_grid_axis axes[MAX_AXES];
  int naxes = 0, rc = DC_CLI_OK;
  for (int i = 1; i < argc; i++)
    if (dc_cli_is_help(argv[i])) {
      fputs(USAGE, stdout);
      return DC_CLI_OK;
    }
  for (int i = 1; i < argc && rc == DC_CLI_OK; i++) {
    if (argv[i][0] != '-') {
      if (cfg_path) rc = dc_cli_usage_error("search", "more than one CONFIG");
      cfg_path = argv[i];
    } else if (dc_cli_opt(argc, argv, &i, "--grid", &v)) {
      const char *eq = v ? strchr(v, '=') : NULL;
      if (!eq || eq == v || !eq[1]) {
        rc = dc_cli_usage_error("search", "--grid needs section.key=v1,v2,...");
        break;
      }
      if (naxes == MAX_AXES) {
        rc = dc_cli_usage_error("search", "at most %d --grid keys", MAX_AXES);
        break;
      }
      snprintf(keys[naxes], sizeof keys[0], "%.*s", (int)(eq - v), v);
      storage[naxes] = strdup(eq + 1);
      const char *sep = strchr(eq + 1, ';') ? ";" : ",";
      int nv = 0;
      char *save = NULL;
      for (char *tok = strtok_r(storage[naxes], sep, &save); tok;
           tok = strtok_r(NULL, sep, &save)) {
        if (nv == MAX_VALUES) break;
        values[naxes][nv++] = tok;
      }
      axes[naxes] = (dc_grid_axis){keys[naxes], values[naxes], nv};
      naxes++;
    } else if (dc_cli_opt(argc, argv, &i, "--set", &v)) {
      if (!v) rc = dc_cli_usage_error("search", "--set needs section.key=value");
    } else if (dc_cli_opt(argc, argv, &i, "--device", &v)) {
      dc_device dev;
      rc = dc_cli_device("search", v, &dev);
      device = v;
    } else if (dc_cli_opt(argc, argv, &i, "--out", &v)) {
      if (!v) rc = dc_cli_usage_error("search", "--out needs a folder");
      out = v;
    } else if (dc_cli_opt(argc, argv, &i, "--progress", &v)) {
      if (v && strcmp(v, "bar") == 0)
        mode = DC_PROGRESS_BAR;
      else if (v && strcmp(v, "lines") == 0)
        mode = DC_PROGRESS_LINES;
      else if (v && strcmp(v, "none") == 0)
        mode = DC_PROGRESS_QUIET;
      else if (!v || strcmp(v, "auto") != 0)
        rc = dc_cli_usage_error("search", "--progress needs auto, bar, lines or none");
    } else {
      rc = dc_cli_usage_error("search", "unknown option '%s'", argv[i]);
    }
  }
  if (rc == DC_CLI_OK && !cfg_path) rc = dc_cli_usage_error("search", "missing CONFIG");
  if (rc == DC_CLI_OK && naxes == 0)
    rc = dc_cli_usage_error("search", "give at least one --grid key=v1,v2");
  dc_config *c = rc == DC_CLI_OK ? dc_config_load(cfg_path) : NULL;
  if (rc == DC_CLI_OK && !c) rc = dc_cli_lib_error("search");
  for (int i = 1; i < argc && rc == DC_CLI_OK; i++)
    if (dc_cli_opt(argc, argv, &i, "--set", &v) && dc_config_set(c, v) != DC_OK)
      rc = dc_cli_lib_error("search");
  if (rc == DC_CLI_OK) {
    signal(SIGINT, on_sigint);
    dc_run_opts o = {.out_dir = out, .progress = mode, .interrupt = &g_interrupt, .device = device};
    if (dc_search(c, axes, naxes, &o, stdout) != DC_OK) rc = dc_cli_lib_error("search");
    signal(SIGINT, SIG_DFL);
  }
  dc_config_free(c);
  for (int a = 0; a < naxes; a++) free(storage[a]);
  return rc;
}
