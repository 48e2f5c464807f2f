/* The `deepc` command's table of sub-commands and the helpers they share (error reporting,
 * option parsing). main.c dispatches; each command lives in its own cmd_<name>.c. */
#ifndef DC_CLI_COMMANDS_H
#define DC_CLI_COMMANDS_H

#include <deepc/tensor.h>
#include <stdbool.h>

/* Adding a command: one line in the list below, X(name, "one-line summary") \, and a file
 * cmd_<name>.c that defines int dc_cmd_<name>(int argc, char **argv). argv[0] is the command
 * name; the function returns the process exit status (DC_CLI_OK, DC_CLI_FAIL, DC_CLI_USAGE) and
 * never exits. It must answer -h/--help with its usage on stdout (that is what
 * `deepc help <name>` runs). Keep the list in alphabetical order; it is also the order of
 * `deepc --help`. */
/* clang-format off */
#define DC_CLI_COMMANDS(X) \
  X(bench, "training steps per second of a reference workload (PyTorch's bench script)") \
  X(convert, "convert weights between PyTorch .pth, safetensors and deepc checkpoints") \
  X(data, "what a dataset holds (info), download one (fetch), loader speed (bench)") \
  X(eval, "score a checkpoint of `deepc train`: accuracy, per-class table, confusion matrix") \
  X(export, "write a checkpoint or zoo model as ONNX (opset 17, dynamic batch) for any runtime") \
  X(graph, "build a graph from an expression; print values and gradients; export DOT/SVG") \
  X(inspect, "list the tensors of a .pth / safetensors / checkpoint file: dtype, shape, CRC") \
  X(plot, "draw loss/accuracy curves of one or several runs on the same axes (PNG/SVG)") \
  X(predict, "run a zoo model with a weight file on a .npy batch; write the raw outputs") \
  X(search, "grid search over configuration values, ranked by validation accuracy") \
  X(summary, "print a model's layers, output shapes, parameters and multiply-adds") \
  X(train, "train a model from a configuration file: progress, curves, checkpoints, report") \
  /* end of the command list */
/* clang-format on */

#define DC_CLI_DECLARE(name, summary) int dc_cmd_##name(int argc, char **argv);
DC_CLI_COMMANDS(DC_CLI_DECLARE)
#undef DC_CLI_DECLARE

/* Exit statuses. */
enum { DC_CLI_OK = 0, DC_CLI_FAIL = 1, DC_CLI_USAGE = 2 };

/* Prints "deepc <cmd>: <dc_last_error()>" to stderr; returns DC_CLI_FAIL. */
int dc_cli_lib_error(const char *cmd);
/* Prints "deepc <cmd>: <message>" to stderr; returns DC_CLI_FAIL. */
int dc_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, followed by "(see `deepc help <cmd>`)"; returns DC_CLI_USAGE. */
int dc_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Option matching for "--name VALUE" and "--name=VALUE" at argv[*i]. Returns true when argv[*i]
 * is this option; then *value is its value (NULL when the value is missing, which the caller
 * reports) and *i is advanced past a separate value. */
bool dc_cli_opt(int argc, char **argv, int *i, const char *name, const char **value);
/* True when argv[i] is -h or --help. */
bool dc_cli_is_help(const char *arg);
/* The file of an ONNX model argument: "onnx:FILE" or a name ending in ".onnx"; NULL otherwise. */
const char *dc_cli_onnx_path(const char *arg);
/* Parses the value of --device into *dev: DC_CLI_OK, or the error printed (a device this build
 * lacks names the devices it has) and DC_CLI_FAIL (DC_CLI_USAGE for a missing value). */
int dc_cli_device(const char *cmd, const char *name, dc_device *dev);

#endif
