/* `deepc train CONFIG [--set key=value ...] [--out DIR] [--resume] [--device D]`: reads a
 * configuration file, applies the --set overrides and runs it (src/train/run.c): progress on
 * stderr, final test accuracy and per-class table on stdout, every output file in DIR. */
#include "commands.h"
#include "train-cli.h"

#include <deepc/deepc.h>
#include <deepc/dist.h>
#include <deepc/train.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: deepc train CONFIG [--set section.key=value ...] [--out DIR] [--resume]\n"
    "                   [--seed N] [--epochs N] [--device D] [--progress auto|bar|lines|none]\n"
    "                   [--amp]\n"
    "       deepc train --help-keys [--markdown]   every configuration key: type, default, range\n"
    "                                              and meaning (markdown: docs/training.md's "
    "tables)\n"
    "Trains the model described by the INI file CONFIG (see docs/training.md and configs/).\n"
    "  --set K=V      override a key, e.g. --set optim.lr=0.01 --set train.epochs=3\n"
    "  --out DIR      output folder (default runs/<CONFIG name>): metrics.csv, curves.png,\n"
    "                 curves.svg, report.md, config.ini, tb/ (TensorBoard), last.ckpt, best.ckpt\n"
    "  --resume       continue the run in DIR from last.ckpt (bit-identical to an\n"
    "                 uninterrupted run on the CPU)\n"
    "  --seed N       same as --set train.seed=N (initialisation, split, shuffling, dropout,\n"
    "                 augmentation)\n"
    "  --epochs N     same as --set train.epochs=N\n"
    "  --device D     where to train: cpu, cuda or testdev (a device this build lacks is an\n"
    "                 error naming those it has); overrides train.device without changing\n"
    "                 the configuration stored in the outputs, so the checkpoints are the\n"
    "                 same files as a run on another device that computes the same values\n"
    "  --allow-tf32   let float32 matrix products and convolutions on cuda use TF32 tensor\n"
    "                 cores (10-bit mantissa inputs; off by default, as PyTorch's; same as\n"
    "                 DEEPC_ALLOW_TF32=1)\n"
    "  --amp          same as --set train.amp=bf16: bfloat16 autocast for each step's forward\n"
    "                 and loss, float32 master weights (docs/autocast.md)\n"
    "  --stop-after N stop after N epochs of this call (as if interrupted; for --resume)\n"
    "  --progress M   a bar on a terminal, plain lines when piped (auto), or none\n"
    "Ctrl-C stops after the current batch; the last finished epoch can be resumed.\n"
    "Data-parallel: mpirun -np N deepc train CONFIG trains one model on N processes (batch_size\n"
    "is the whole job's; rank 0 writes the outputs; see docs/distributed.md).\n"
    "Environment: OMP_NUM_THREADS (threads), DEEPC_CONV_ALGO=auto|direct|winograd (how 3x3\n"
    "and 5x5 convolutions run; auto, the default, uses Winograd where it is faster),\n"
    "DEEPC_CONV_BLOCK=0 (run Conv2d-BatchNorm2d[-ReLU[-MaxPool2d]] blocks layer by\n"
    "layer instead of as one fused op; docs/nn.md).\n";

void dc_cli_keep_freed_memory(void) {
#ifdef M_MMAP_THRESHOLD
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

void dc_cli_prefer_passive_omp(int argc, char **argv) {
  if (getenv("OMP_WAIT_POLICY") || getenv("DEEPC_NO_REEXEC")) return;
  char **args = calloc((size_t)argc + 2, sizeof *args);
  if (!args) return;
  args[0] = (char *)"deepc";
  for (int i = 0; i < argc; i++) args[i + 1] = argv[i];
  setenv("OMP_WAIT_POLICY", "passive", 1);
  setenv("DEEPC_NO_REEXEC", "1", 1); /* never twice */
  fflush(NULL);
  execv("/proc/self/exe", args);
  free(args); /* exec failed: go on with the defaults */
}

static volatile int g_interrupt;
static void on_sigint(int sig) {
  (void)sig;
  g_interrupt = 1;
}

int dc_cmd_train(int argc, char **argv) {
  dc_cli_prefer_passive_omp(argc, argv);
  dc_cli_keep_freed_memory();
  const char *cfg_path = NULL, *out = NULL, *v = NULL, *device = NULL;
  bool resume = false;
  int stop_after = 0;
  dc_progress_mode mode = DC_PROGRESS_AUTO;
  /* first pass: the config path and help */
  for (int i = 1; i < argc; i++) {
    if (dc_cli_is_help(argv[i])) {
      fputs(USAGE, stdout);
      dc_config_print_keys(stdout, DC_KEYS_BRIEF);
      return DC_CLI_OK;
    }
    if (strcmp(argv[i], "--help-keys") == 0 || strcmp(argv[i], "--help-config") == 0) {
      bool md = false;
      for (int j = 1; j < argc; j++) md = md || strcmp(argv[j], "--markdown") == 0;
      dc_config_print_keys(stdout, md ? DC_KEYS_MARKDOWN : DC_KEYS_TEXT);
      return DC_CLI_OK;
    }
  }
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] != '-') {
      if (cfg_path)
        return dc_cli_usage_error("train", "more than one CONFIG ('%s', '%s')", cfg_path, argv[i]);
      cfg_path = argv[i];
    } else if (dc_cli_opt(argc, argv, &i, "--set", &v) ||
               dc_cli_opt(argc, argv, &i, "--seed", &v) ||
               dc_cli_opt(argc, argv, &i, "--epochs", &v)) {
      if (!v) return dc_cli_usage_error("train", "%s needs a value", argv[i]);
    } else if (dc_cli_opt(argc, argv, &i, "--out", &v)) {
      if (!v) return dc_cli_usage_error("train", "--out needs a folder");
      out = v;
    } else if (dc_cli_opt(argc, argv, &i, "--device", &v)) {
      dc_device dev;
      int drc = dc_cli_device("train", v, &dev); /* before any work */
      if (drc != DC_CLI_OK) return drc;
      device = v;
    } else if (dc_cli_opt(argc, argv, &i, "--stop-after", &v)) {
      if (!v || atoi(v) < 1) return dc_cli_usage_error("train", "--stop-after needs a number >= 1");
      stop_after = atoi(v);
    } else if (dc_cli_opt(argc, argv, &i, "--progress", &v)) {
      if (!v) return dc_cli_usage_error("train", "--progress needs auto, bar, lines or none");
      if (strcmp(v, "auto") == 0)
        mode = DC_PROGRESS_AUTO;
      else if (strcmp(v, "bar") == 0)
        mode = DC_PROGRESS_BAR;
      else if (strcmp(v, "lines") == 0)
        mode = DC_PROGRESS_LINES;
      else if (strcmp(v, "none") == 0)
        mode = DC_PROGRESS_QUIET;
      else
        return dc_cli_usage_error("train", "--progress %s: use auto, bar, lines or none", v);
    } else if (strcmp(argv[i], "--resume") == 0) {
      resume = true;
    } else if (strcmp(argv[i], "--allow-tf32") == 0) {
      dc_set_allow_tf32(true);
    } else if (strcmp(argv[i], "--amp") == 0) {
      /* applied in the second pass, in command-line order */
    } else {
      return dc_cli_usage_error("train", "unknown option '%s'", argv[i]);
    }
  }
  if (!cfg_path)
    return dc_cli_usage_error("train", "missing CONFIG (e.g. configs/fashion_cnn.ini)");
  dc_config *c = dc_config_load(cfg_path);
  if (!c) return dc_cli_lib_error("train");
  /* second pass: overrides in command-line order */
  for (int i = 1; i < argc; i++) {
    char buf[512];
    if (dc_cli_opt(argc, argv, &i, "--set", &v)) {
      if (dc_config_set(c, v) != DC_OK) goto fail;
    } else if (dc_cli_opt(argc, argv, &i, "--seed", &v)) {
      snprintf(buf, sizeof buf, "train.seed=%s", v);
      if (dc_config_set(c, buf) != DC_OK) goto fail;
    } else if (dc_cli_opt(argc, argv, &i, "--epochs", &v)) {
      snprintf(buf, sizeof buf, "train.epochs=%s", v);
      if (dc_config_set(c, buf) != DC_OK) goto fail;
    } else if (strcmp(argv[i], "--amp") == 0) {
      if (dc_config_set(c, "train.amp=bf16") != DC_OK) goto fail;
    } else if (dc_cli_opt(argc, argv, &i, "--out", &v) ||
               dc_cli_opt(argc, argv, &i, "--stop-after", &v) ||
               dc_cli_opt(argc, argv, &i, "--device", &v) ||
               dc_cli_opt(argc, argv, &i, "--progress", &v)) {
      /* handled above */
    }
  }
  /* under mpirun: one rank of a data-parallel job (docs/distributed.md); else one process */
  if (dc_dist_init() != DC_OK) goto fail;
  signal(SIGINT, on_sigint);
  dc_run_opts o = {.out_dir = out,
                   .resume = resume,
                   .progress = mode,
                   .stop_after_epochs = stop_after,
                   .interrupt = &g_interrupt,
                   .device = device,
                   .show_model = mode != DC_PROGRESS_QUIET};
  int rc = dc_run(c, &o, NULL);
  signal(SIGINT, SIG_DFL);
  if (rc != DC_OK && dc_dist_size() > 1) /* ends every rank, with this rank's message */
    dc_dist_abort(DC_CLI_FAIL, "train: %s", dc_last_error());
  int frc = dc_dist_finalize();
  if (rc == DC_OK) rc = frc;
  dc_config_free(c);
  return rc == DC_OK ? DC_CLI_OK : dc_cli_lib_error("train");
fail:
  dc_config_free(c);
  return dc_cli_lib_error("train");
}
