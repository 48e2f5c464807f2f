/* The `deepc` command: `deepc <command> [args]`, --help, --version and `deepc help <command>`.
 * Dispatches to the commands listed in commands.h and holds their shared helpers. The CLI is the
 * only place that turns deepc's error values into exit statuses. */
#include "commands.h"

#include <deepc/deepc.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cli_command {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
} cli_command;

#define DC_CLI_ENTRY(name, summary) {#name, summary, dc_cmd_##name},
static const cli_command g_commands[] = {DC_CLI_COMMANDS(DC_CLI_ENTRY)};
#undef DC_CLI_ENTRY
#define N_COMMANDS (sizeof g_commands / sizeof g_commands[0])

/* ---- helpers shared by the commands ---- */

int dc_cli_lib_error(const char *cmd) {
  const char *msg = dc_last_error();
  fprintf(stderr, "deepc %s: %s\n", cmd, msg && msg[0] ? msg : "failed (no error message)");
  return DC_CLI_FAIL;
}

static void vreport(const char *cmd, const char *fmt, va_list ap) {
  fprintf(stderr, "deepc %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

int dc_cli_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(cmd, fmt, ap);
  va_end(ap);
  return DC_CLI_FAIL;
}

int dc_cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(cmd, fmt, ap);
  va_end(ap);
  fprintf(stderr, "(see `deepc help %s`)\n", cmd);
  return DC_CLI_USAGE;
}

bool dc_cli_opt(int argc, char **argv, int *i, const char *name, const char **value) {
  const char *a = argv[*i];
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0) return false;
  if (a[n] == '=') {
    *value = a + n + 1;
    return true;
  }
  if (a[n] != '\0') return false;
  *value = *i + 1 < argc ? argv[++*i] : NULL;
  return true;
}

bool dc_cli_is_help(const char *arg) {
  return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

int dc_cli_device(const char *cmd, const char *name, dc_device *dev) {
  if (!name) return dc_cli_usage_error(cmd, "--device needs a device (cpu, cuda, testdev)");
  if (dc_device_parse(name, dev) == DC_OK) return DC_CLI_OK;
  /* a build with the CUDA backend says why cuda is absent ("cuda: no CUDA device: ...") */
  bool cuda = strncmp(name, "cuda", 4) == 0 && (!name[4] || name[4] == ':') &&
              !strstr(dc_last_error(), "(cuda: ");
  return dc_cli_error(cmd, "--device %s: %s%s", name, dc_last_error(),
                      cuda ? " (this deepc has no CUDA backend)" : "");
}

const char *dc_cli_onnx_path(const char *arg) {
  size_t n = arg ? strlen(arg) : 0;
  if (n > 5 && strncmp(arg, "onnx:", 5) == 0) return arg + 5;
  return n > 5 && strcmp(arg + n - 5, ".onnx") == 0 ? arg : NULL;
}

/* ---- dispatch ---- */

static void print_help(FILE *f) {
  fprintf(f, "usage: deepc <command> [args]\n"
             "       deepc help <command>     help for one command\n"
             "       deepc --version\n\n"
             "commands:\n");
  for (size_t k = 0; k < N_COMMANDS; k++)
    fprintf(f, "  %-12s %s\n", g_commands[k].name, g_commands[k].summary);
}

static void print_version(void) {
  printf("deepc %s (C11", DEEPC_VERSION);
#if defined(__VERSION__)
  printf(", built with %s", __VERSION__);
#endif
  printf(")\n");
}

static const cli_command *find_command(const char *name) {
  for (size_t k = 0; k < N_COMMANDS; k++)
    if (strcmp(g_commands[k].name, name) == 0) return &g_commands[k];
  return NULL;
}

/* Edit distance (insert, delete, substitute, swap of neighbours) between short strings. */
static size_t edit_distance(const char *a, const char *b) {
  enum { MAXLEN = 32 };
  size_t na = strlen(a), nb = strlen(b);
  if (na >= MAXLEN || nb >= MAXLEN) return (size_t)-1;
  size_t d[MAXLEN][MAXLEN];
  for (size_t i = 0; i <= na; i++) d[i][0] = i;
  for (size_t j = 0; j <= nb; j++) d[0][j] = j;
  for (size_t i = 1; i <= na; i++)
    for (size_t j = 1; j <= nb; j++) {
      size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
      size_t best = sub < del ? sub : del;
      best = best < ins ? best : ins;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  return d[na][nb];
}

static int unknown_command(const char *name) {
  const cli_command *best = NULL;
  size_t best_d = (size_t)-1;
  for (size_t k = 0; k < N_COMMANDS; k++) {
    size_t dist = edit_distance(name, g_commands[k].name);
    bool prefix = strlen(name) >= 2 && strncmp(g_commands[k].name, name, strlen(name)) == 0;
    if (prefix) dist = 1;
    if (dist < best_d) {
      best_d = dist;
      best = &g_commands[k];
    }
  }
  size_t limit = strlen(name) <= 4 ? 1 : 2;
  fprintf(stderr, "deepc: '%s' is not a deepc command.", name);
  if (best && best_d <= limit) fprintf(stderr, " Did you mean '%s'?", best->name);
  fprintf(stderr, "\nRun `deepc --help` for the list of commands.\n");
  return DC_CLI_USAGE;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    print_help(stderr);
    return DC_CLI_USAGE;
  }
  const char *cmd = argv[1];
  if (dc_cli_is_help(cmd) || (strcmp(cmd, "help") == 0 && argc == 2)) {
    print_help(stdout);
    return DC_CLI_OK;
  }
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    print_version();
    return DC_CLI_OK;
  }
  if (strcmp(cmd, "help") == 0) {
    const cli_command *c = find_command(argv[2]);
    if (!c) return unknown_command(argv[2]);
    static char help_opt[] = "--help";
    char *help_argv[] = {argv[2], help_opt, NULL};
    return c->run(2, help_argv);
  }
  if (cmd[0] == '-') {
    fprintf(stderr,
            "deepc: unknown option '%s'; options go after the command "
            "(deepc <command> [args]). Run `deepc --help`.\n",
            cmd);
    return DC_CLI_USAGE;
  }
  const cli_command *c = find_command(cmd);
  if (!c) return unknown_command(cmd);
  /* the library ignores a value it does not know; a command line says so */
  const char *algo = getenv("DEEPC_CONV_ALGO");
  if (algo && dc_conv_algo_parse(algo) < 0) {
    fprintf(stderr, "deepc %s: DEEPC_CONV_ALGO=%s: expected auto, direct or winograd\n", cmd, algo);
    return DC_CLI_USAGE;
  }
  return c->run(argc - 1, argv + 1);
}
