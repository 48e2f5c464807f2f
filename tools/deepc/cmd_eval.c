/* `deepc eval CHECKPOINT [--data NAME|PATH] [--train] [--limit N] [--markdown]`: rebuilds the
 * model from the configuration stored in a checkpoint of `deepc train` and prints accuracy,
 * per-class accuracy and the confusion matrix (src/train/eval.c does the work). */
#include "commands.h"
#include "train-cli.h"

#include <deepc/deepc.h>
#include <deepc/train.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: deepc eval CHECKPOINT|MODEL.onnx [--data NAME|PATH] [--train] [--limit N]\n"
    "                  [--markdown] [--device D]\n"
    "Scores a checkpoint written by `deepc train` (best.ckpt, last.ckpt) on the test split of\n"
    "its dataset: accuracy, top-5, loss, per-class precision/accuracy/F1 and the confusion\n"
    "matrix. MODEL.onnx (an ONNX model, docs/onnx.md) is scored on the dataset of --data.\n"
    "  --data D     another dataset with the same classes: mnist, fashion-mnist, cifar10,\n"
    "               cifar100 or a path (IDX, CIFAR .bin, image folder, .npz, .csv)\n"
    "  --train      score the training split instead of the test split\n"
    "  --limit N    only the first N samples\n"
    "  --markdown   tables in markdown\n"
    "  --device D   run the model on cpu (default), cuda or testdev\n";

int dc_cmd_eval(int argc, char **argv) {
  dc_cli_prefer_passive_omp(argc, argv);
  dc_cli_keep_freed_memory();
  const char *ckpt = NULL, *v = NULL;
  dc_eval_opts o = {0};
  for (int i = 1; i < argc; i++) {
    if (dc_cli_is_help(argv[i])) {
      fputs(USAGE, stdout);
      return DC_CLI_OK;
    }
    if (argv[i][0] != '-') {
      if (ckpt) return dc_cli_usage_error("eval", "more than one CHECKPOINT");
      ckpt = argv[i];
    } else if (dc_cli_opt(argc, argv, &i, "--data", &v)) {
      if (!v) return dc_cli_usage_error("eval", "--data needs a dataset name or path");
      o.data = v;
    } else if (dc_cli_opt(argc, argv, &i, "--limit", &v)) {
      char *end;
      long long n = v ? strtoll(v, &end, 10) : 0;
      if (!v || *end || n < 1) return dc_cli_usage_error("eval", "--limit needs a number >= 1");
      o.limit = n;
    } else if (dc_cli_opt(argc, argv, &i, "--device", &v)) {
      dc_device dev;
      int drc = dc_cli_device("eval", v, &dev);
      if (drc != DC_CLI_OK) return drc;
      o.device = v;
    } else if (strcmp(argv[i], "--train") == 0) {
      o.train_split = true;
    } else if (strcmp(argv[i], "--markdown") == 0) {
      o.markdown = true;
    } else {
      return dc_cli_usage_error("eval", "unknown option '%s'", argv[i]);
    }
  }
  if (!ckpt)
    return dc_cli_usage_error("eval", "missing CHECKPOINT (e.g. runs/fashion_cnn/best.ckpt)");
  return dc_eval_checkpoint(ckpt, &o, NULL) == DC_OK ? DC_CLI_OK : dc_cli_lib_error("eval");
}
