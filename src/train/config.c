/* Configuration files of `deepc train`: an INI reader (sections, key = value, # comments,
 * indented continuation lines, ${var} substitution from [vars]) checked against one schema
 * table that also documents every key. Building a run from the values is build.c's job. */
#include "train-impl.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the schema: every section and key, its type, default and meaning ---- */
typedef enum cfg_type { CT_INT, CT_FLOAT, CT_BOOL, CT_STR, CT_ENUM, CT_INTS, CT_FLOATS } cfg_type;

typedef struct cfg_key {
  const char *section, *key;
  cfg_type type;
  const char *def;     /* default ("" = unset / automatic) */
  const char *choices; /* CT_ENUM: "a|b|c" */
  const char *help;
} cfg_key;

/* clang-format off */
static const cfg_key SCHEMA[] = {
  {"model", "arch", CT_STR, "", NULL,
   "cnn: conv blocks + FC head; mlp: hidden layers; layers: the 'layers' spec; or a zoo model "
   "(lenet5, cnn_fashion, vgg11_bn_cifar, resnet18, ...) or onnx:FILE (an ONNX graph). Empty: layers if given, else cnn"},
  {"model", "layers", CT_STR, "", NULL,
   "layer spec, e.g. conv2d(1,32,5,padding=2), relu, maxpool2d(2), flatten, linear(6272,classes)"},
  {"model", "channels", CT_INTS, "32,32,64", NULL, "cnn: output channels of each conv block"},
  {"model", "kernel", CT_INT, "5", NULL, "cnn: square kernel size (padding keeps the size)"},
  {"model", "pool", CT_INTS, "2", NULL, "cnn: max pooling after each block: size k, or k,stride,padding like MaxPool2d(4,3,1) (0 or 1: none)"},
  {"model", "batchnorm", CT_BOOL, "true", NULL, "cnn/mlp: batch norm after each conv / hidden layer"},
  {"model", "dropout", CT_FLOAT, "0.3", NULL, "cnn: dropout before the FC head; mlp: after each hidden layer (0: none)"},
  {"model", "hidden", CT_INTS, "", NULL, "widths of the hidden FC layers (cnn default 64; mlp default 256,128,64)"},
  {"model", "activation", CT_ENUM, "relu", "relu|leaky_relu|elu|gelu|tanh|sigmoid", "activation function"},
  {"model", "width", CT_INT, "0", NULL, "zoo resnet: channels of the first stage (0: 64)"},
  {"model", "small_input", CT_BOOL, "false", NULL, "zoo resnet: 3x3 stride-1 stem without max pooling (32x32 images)"},
  {"model", "pretrained", CT_STR, "", NULL, "weights to start from (.pth, .safetensors, .ckpt); a head of another shape is left fresh"},
  {"model", "freeze", CT_STR, "", NULL, "modules kept fixed: 'backbone' (all but the head) or paths such as 'conv1, layer1'"},
  {"data", "dataset", CT_STR, "fashion-mnist", NULL,
   "mnist, fashion-mnist, cifar10, cifar100, or a path (IDX, CIFAR .bin, image folder, .npz, .csv)"},
  {"data", "test", CT_STR, "", NULL, "when dataset is a path: the test set's path (empty: hold out 20% of the dataset)"},
  {"data", "dir", CT_STR, "", NULL, "folder holding the named dataset (empty: the usual places)"},
  {"data", "val_split", CT_FLOAT, "0.1", NULL, "fraction of the training set held out for validation (0: validate on the test set)"},
  {"data", "train_limit", CT_INT, "0", NULL, "use only this many training samples (0: all), picked at random with the seed"},
  {"data", "test_limit", CT_INT, "0", NULL, "use only the first n test samples (0: all)"},
  {"data", "normalize", CT_BOOL, "true", NULL, "subtract the mean and divide by the std per channel"},
  {"data", "mean", CT_FLOATS, "", NULL, "per-channel means (empty: the dataset's known values, else measured)"},
  {"data", "std", CT_FLOATS, "", NULL, "per-channel standard deviations (empty: as mean)"},
  {"data", "resize", CT_INT, "0", NULL, "resize the shorter side of every image to n pixels (0: off)"},
  {"data", "crop", CT_INT, "0", NULL, "n x n crop: at random for training, the centre for evaluation (0: off)"},
  {"data", "random_resized_crop", CT_BOOL, "false", NULL, "training: a random area and aspect ratio resized to crop x crop (Inception-style)"},
  {"data", "random_crop", CT_INT, "0", NULL, "augmentation: pad by n then crop back at random (0: off)"},
  {"data", "hflip", CT_BOOL, "false", NULL, "augmentation: random horizontal flips"},
  {"data", "rotation", CT_FLOAT, "0", NULL, "augmentation: random rotation within +-degrees (0: off)"},
  {"data", "workers", CT_INT, "1", NULL, "loader threads preparing batches ahead (0: in the training thread)"},
  {"train", "epochs", CT_INT, "5", NULL, "number of epochs"},
  {"train", "batch_size", CT_INT, "64", NULL, "training batch size"},
  {"train", "eval_batch_size", CT_INT, "500", NULL, "batch size for validation and test"},
  {"train", "seed", CT_INT, "0", NULL, "fixes initialisation, split, shuffling, dropout and augmentation"},
  {"train", "device", CT_ENUM, "cpu", "cpu|cuda|testdev", "where to train and evaluate (a device this build lacks is an error naming those it has; `--device` overrides it for one command)"},
  {"train", "loss", CT_ENUM, "cross_entropy", "cross_entropy|multi_margin", "loss function"},
  {"train", "label_smoothing", CT_FLOAT, "0", NULL, "cross-entropy label smoothing in [0, 1]"},
  {"train", "clip_grad_norm", CT_FLOAT, "0", NULL, "clip the global gradient norm to this (0: off)"},
  {"train", "early_stop", CT_INT, "0", NULL, "stop after this many epochs without improvement (0: off)"},
  {"train", "monitor", CT_ENUM, "val_acc", "val_acc|val_loss|train_loss", "metric for early stopping and best.ckpt"},
  {"train", "min_delta", CT_FLOAT, "0", NULL, "smallest change of the monitored metric that counts"},
  {"train", "on_nan", CT_ENUM, "stop", "stop|skip", "a non-finite loss stops training, or its step is skipped (skip: also a step with non-finite gradients)"},
  {"train", "detect_anomaly", CT_BOOL, "false", NULL, "stop at the first NaN/inf any op produces, forward or backward, naming the op, its shapes and the step (slower)"},
  {"train", "restore_best", CT_BOOL, "true", NULL, "evaluate the test set with the best epoch's weights"},
  {"train", "sync_batchnorm", CT_BOOL, "false", NULL, "data-parallel runs (mpirun -np N): batch-norm statistics over every rank's samples (default: each rank its own)"},
  {"optim", "name", CT_ENUM, "adam", "sgd|adam|adamw|rmsprop|adagrad", "optimizer"},
  {"optim", "lr", CT_FLOAT, "", NULL, "learning rate (empty: the optimizer's default; sgd needs one)"},
  {"optim", "backbone_lr", CT_FLOAT, "", NULL, "learning rate of everything but the final layer (fine-tuning: a second parameter group; empty: lr for all)"},
  {"optim", "momentum", CT_FLOAT, "0", NULL, "sgd / rmsprop momentum"},
  {"optim", "nesterov", CT_BOOL, "false", NULL, "sgd: Nesterov momentum"},
  {"optim", "dampening", CT_FLOAT, "0", NULL, "sgd: dampening of the momentum"},
  {"optim", "weight_decay", CT_FLOAT, "", NULL, "L2 penalty; adamw: decoupled weight decay (empty: 0, adamw 0.01)"},
  {"optim", "betas", CT_FLOATS, "0.9,0.999", NULL, "adam / adamw: beta1, beta2"},
  {"optim", "eps", CT_FLOAT, "", NULL, "adam / adamw / rmsprop / adagrad epsilon (empty: default)"},
  {"optim", "amsgrad", CT_BOOL, "false", NULL, "adam / adamw: AMSGrad"},
  {"optim", "alpha", CT_FLOAT, "0.99", NULL, "rmsprop smoothing constant"},
  {"schedule", "name", CT_ENUM, "none", "none|step|multistep|exponential|cosine|onecycle|plateau",
   "learning-rate schedule (onecycle steps per batch, the others per epoch)"},
  {"schedule", "step_size", CT_INT, "10", NULL, "step: epochs between decays"},
  {"schedule", "gamma", CT_FLOAT, "0.1", NULL, "step / multistep / exponential: decay factor"},
  {"schedule", "milestones", CT_INTS, "", NULL, "multistep: epochs at which the lr decays"},
  {"schedule", "t_max", CT_INT, "0", NULL, "cosine: epochs of the half period (0: all epochs)"},
  {"schedule", "eta_min", CT_FLOAT, "0", NULL, "cosine: lowest lr"},
  {"schedule", "max_lr", CT_FLOAT, "0", NULL, "onecycle: peak lr (0: ten times optim.lr)"},
  {"schedule", "pct_start", CT_FLOAT, "0.3", NULL, "onecycle: fraction of steps spent warming up"},
  {"schedule", "factor", CT_FLOAT, "0.1", NULL, "plateau: lr multiplier on a plateau of the validation loss"},
  {"schedule", "patience", CT_INT, "2", NULL, "plateau: epochs without improvement before decaying"},
  {"schedule", "warmup_epochs", CT_INT, "0", NULL, "linear warm-up from lr/10 over this many epochs, then the schedule"},
};
/* clang-format on */
enum { NKEYS = (int)(sizeof SCHEMA / sizeof SCHEMA[0]) };
static const char *const SECTIONS[] = {"model", "data", "train", "optim", "schedule", "vars"};
enum { NSECTIONS = (int)(sizeof SECTIONS / sizeof SECTIONS[0]) };

struct dc_config {
  char *name;            /* file name for messages */
  char *values[NKEYS];   /* raw values as written; NULL = default */
  int lines[NKEYS];      /* where each value came from (0: --set) */
  char *resolved[NKEYS]; /* values with ${vars} replaced, or the default */
  int nvars;
  char **var_names, **var_values; /* [nvars] */
  int *var_lines;
};

/* ---- "did you mean" ---- */
static int edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return 99;
  int d[64][64];
  for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      int c = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
      int v = d[i - 1][j - 1] + c;
      if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
        v = d[i - 2][j - 2] + 1; /* transposition */
      d[i][j] = v;
    }
  return d[la][lb];
}

static bool close_enough(const char *typed, const char *cand, int dist) {
  int len = (int)strlen(typed);
  int lim = len <= 3 ? 1 : len <= 6 ? 2 : 3;
  return dist <= lim || (len >= 3 && strstr(cand, typed) != NULL) ||
         (strlen(cand) >= 4 && strstr(typed, cand) != NULL);
}

/* Writes " (did you mean 'x'?)" for the closest key of the section, or of any section
 * (then as "section.key"), into buf; "" when nothing is close. */
static void suggest_key(const char *section, const char *key, char *buf, size_t n) {
  buf[0] = 0;
  int best = 99;
  const cfg_key *bk = NULL;
  for (int i = 0; i < NKEYS; i++) {
    int d = edit_distance(key, SCHEMA[i].key) + (strcmp(SCHEMA[i].section, section) ? 1 : 0);
    if (d < best) best = d, bk = &SCHEMA[i];
  }
  if (!bk || !close_enough(key, bk->key, best - (strcmp(bk->section, section) ? 1 : 0))) return;
  if (strcmp(bk->section, section) == 0)
    snprintf(buf, n, "; did you mean '%s'?", bk->key);
  else
    snprintf(buf, n, "; did you mean '%s' in [%s] (%s.%s)?", bk->key, bk->section, bk->section,
             bk->key);
}

static void suggest_section(const char *sec, char *buf, size_t n) {
  buf[0] = 0;
  int best = 99, bi = -1;
  for (int i = 0; i < NSECTIONS; i++) {
    int d = edit_distance(sec, SECTIONS[i]);
    if (d < best) best = d, bi = i;
  }
  if (bi >= 0 && close_enough(sec, SECTIONS[bi], best))
    snprintf(buf, n, "; did you mean [%s]?", SECTIONS[bi]);
}

static int find_key(const char *section, const char *key) {
  for (int i = 0; i < NKEYS; i++)
    if (strcmp(SCHEMA[i].section, section) == 0 && strcmp(SCHEMA[i].key, key) == 0) return i;
  return -1;
}

static bool known_section(const char *s) {
  for (int i = 0; i < NSECTIONS; i++)
    if (strcmp(SECTIONS[i], s) == 0) return true;
  return false;
}

/* "file:12: " or "--set: " */
static void where(const dc_config *c, int line, char *buf, size_t n) {
  if (line > 0)
    snprintf(buf, n, "%s:%d: ", c->name, line);
  else
    snprintf(buf, n, "--set: ");
}

/* ---- type checks of one (resolved) value ---- */
static bool parse_int(const char *s, int64_t *out) {
  while (isspace((unsigned char)*s)) s++;
  if (!*s) return false;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  while (isspace((unsigned char)*end)) end++;
  if (errno || *end) return false;
  *out = v;
  return true;
}

static bool parse_float(const char *s, double *out) {
  while (isspace((unsigned char)*s)) s++;
  if (!*s) return false;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  while (isspace((unsigned char)*end)) end++;
  if (errno == ERANGE || *end) return false;
  *out = v;
  return true;
}

static int parse_bool(const char *s) {
  static const char *const T[] = {"true", "yes", "on", "1"}, *const F[] = {"false", "no", "off",
                                                                           "0"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, T[i]) == 0) return 1;
    if (strcasecmp(s, F[i]) == 0) return 0;
  }
  return -1;
}

/* Checks every comma-separated item of a list with the element parser. */
static bool check_list(const char *s, bool ints) {
  char item[128];
  const char *p = s;
  while (*p) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len >= sizeof item) return false;
    memcpy(item, p, len);
    item[len] = 0;
    int64_t iv;
    double fv;
    if (ints ? !parse_int(item, &iv) : !parse_float(item, &fv)) return false;
    p += len + (comma ? 1 : 0);
    if (comma && !*p) return false;
  }
  return true;
}

/* model.arch: cnn, mlp, layers or a zoo model. */
static int check_arch(const char *at, const char *v) {
  if (!*v || strcmp(v, "cnn") == 0 || strcmp(v, "mlp") == 0 || strcmp(v, "layers") == 0 ||
      dc_zoo_has(v) || strncmp(v, "onnx:", 5) == 0)
    return DC_OK;
  const char *const *names = dc_zoo_names();
  static const char *const OWN[] = {"cnn", "mlp", "layers"};
  const char *best = NULL;
  int bd = 99;
  for (int i = 0; i < 3; i++) {
    int d = edit_distance(v, OWN[i]);
    if (d < bd) bd = d, best = OWN[i];
  }
  for (int i = 0; names && names[i]; i++) {
    int d = edit_distance(v, names[i]);
    if (d < bd) bd = d, best = names[i];
  }
  char hint[96] = "";
  if (best && close_enough(v, best, bd)) snprintf(hint, sizeof hint, "; did you mean '%s'?", best);
  char list[512] = "";
  size_t at_list = 0;
  for (int i = 0; names && names[i] && at_list + 32 < sizeof list; i++)
    at_list +=
        (size_t)snprintf(list + at_list, sizeof list - at_list, "%s%s", i ? ", " : "", names[i]);
  return dc__errs(DC_ERR_ARG, "%smodel.arch: '%s' is not cnn, mlp, layers or a zoo model (%s)%s",
                  at, v, list, hint);
}

static int check_value(const dc_config *c, int k, const char *v) {
  const cfg_key *s = &SCHEMA[k];
  char at[256];
  where(c, c->lines[k], at, sizeof at);
  if (strcmp(s->section, "model") == 0 && strcmp(s->key, "arch") == 0) return check_arch(at, v);
  if (!*v && s->def[0] == 0) return DC_OK; /* optional value left empty */
  int64_t iv;
  double fv;
  switch (s->type) {
  case CT_INT:
    if (!parse_int(v, &iv) || iv < INT32_MIN || iv > INT32_MAX)
      return dc__errs(DC_ERR_ARG, "%s%s.%s: expected an integer, got '%s'", at, s->section, s->key,
                      v);
    if (iv < 0)
      return dc__errs(DC_ERR_ARG, "%s%s.%s: must be >= 0, got %s", at, s->section, s->key, v);
    return DC_OK;
  case CT_FLOAT:
    if (!parse_float(v, &fv))
      return dc__errs(DC_ERR_ARG, "%s%s.%s: expected a number, got '%s'", at, s->section, s->key,
                      v);
    return DC_OK;
  case CT_BOOL:
    if (parse_bool(v) < 0)
      return dc__errs(DC_ERR_ARG, "%s%s.%s: expected true or false, got '%s'", at, s->section,
                      s->key, v);
    return DC_OK;
  case CT_STR:
    return DC_OK;
  case CT_ENUM: {
    const char *p = s->choices;
    size_t lv = strlen(v);
    while (p) {
      const char *bar = strchr(p, '|');
      size_t len = bar ? (size_t)(bar - p) : strlen(p);
      if (len == lv && strncasecmp(p, v, len) == 0) return DC_OK;
      p = bar ? bar + 1 : NULL;
    }
    /* closest choice */
    char best[64] = "";
    int bd = 99;
    p = s->choices;
    while (p) {
      const char *bar = strchr(p, '|');
      size_t len = bar ? (size_t)(bar - p) : strlen(p);
      char cand[64];
      snprintf(cand, sizeof cand, "%.*s", (int)len, p);
      int d = edit_distance(v, cand);
      if (d < bd) bd = d, snprintf(best, sizeof best, "%s", cand);
      p = bar ? bar + 1 : NULL;
    }
    char hint[96] = "";
    if (close_enough(v, best, bd)) snprintf(hint, sizeof hint, "; did you mean '%s'?", best);
    return dc__errs(DC_ERR_ARG, "%s%s.%s: '%s' is not one of %s%s", at, s->section, s->key, v,
                    s->choices, hint);
  }
  case CT_INTS:
  case CT_FLOATS:
    if (!check_list(v, s->type == CT_INTS))
      return dc__errs(DC_ERR_ARG, "%s%s.%s: expected a comma-separated list of %s, got '%s'", at,
                      s->section, s->key, s->type == CT_INTS ? "integers" : "numbers", v);
    return DC_OK;
  }
  return DC_OK;
}

/* ---- ${var} substitution ---- */
static int var_index(const dc_config *c, const char *name, size_t len) {
  for (int i = 0; i < c->nvars; i++)
    if (strlen(c->var_names[i]) == len && strncmp(c->var_names[i], name, len) == 0) return i;
  return -1;
}

/* A new string with every ${name} replaced; NULL + error naming the unknown variable. */
static char *substitute(const dc_config *c, int k, const char *v) {
  size_t cap = strlen(v) + 1, n = 0;
  for (int i = 0; i < c->nvars; i++) cap += strlen(c->var_values[i]) * 4;
  char *out = dc__malloc(cap + 64);
  if (!out) return NULL;
  for (const char *p = v; *p;) {
    if (p[0] == '$' && p[1] == '{') {
      const char *end = strchr(p + 2, '}');
      int vi = end ? var_index(c, p + 2, (size_t)(end - p - 2)) : -1;
      if (vi < 0) {
        char at[256], name[64], hint[96] = "";
        where(c, c->lines[k], at, sizeof at);
        snprintf(name, sizeof name, "%.*s", end ? (int)(end - p - 2) : (int)strlen(p + 2), p + 2);
        int bd = 99, bi = -1;
        for (int i = 0; i < c->nvars; i++) {
          int d = edit_distance(name, c->var_names[i]);
          if (d < bd) bd = d, bi = i;
        }
        if (bi >= 0 && close_enough(name, c->var_names[bi], bd))
          snprintf(hint, sizeof hint, "; did you mean '%s'?", c->var_names[bi]);
        dc__free(out);
        return dc__err(DC_ERR_ARG, "%s%s.%s: ${%s} is not defined in [vars]%s", at,
                       SCHEMA[k].section, SCHEMA[k].key, name, hint);
      }
      size_t lv = strlen(c->var_values[vi]);
      if (n + lv + 1 > cap + 63) {
        dc__free(out);
        char at[256];
        where(c, c->lines[k], at, sizeof at);
        return dc__err(DC_ERR_ARG, "%s%s.%s: ${...} expands too far (nested or repeated vars)", at,
                       SCHEMA[k].section, SCHEMA[k].key);
      }
      memcpy(out + n, c->var_values[vi], lv);
      n += lv;
      p = end + 1;
    } else {
      if (n + 2 > cap + 63) break;
      out[n++] = *p++;
    }
  }
  out[n] = 0;
  return out;
}

/* Recomputes every resolved value and checks its type. */
static int refresh(dc_config *c) {
  for (int k = 0; k < NKEYS; k++) {
    const char *raw = c->values[k] ? c->values[k] : SCHEMA[k].def;
    char *r = substitute(c, k, raw);
    if (!r) return dc_last_status();
    int rc = check_value(c, k, r);
    if (rc != DC_OK) {
      dc__free(r);
      return rc;
    }
    dc__free(c->resolved[k]);
    c->resolved[k] = r;
  }
  return DC_OK;
}

/* ---- building ---- */
static dc_config *config_new(const char *name) {
  dc_config *c = dc__calloc(1, sizeof *c);
  if (!c) return NULL;
  c->name = dc__strdup(name ? name : "config");
  if (!c->name) {
    dc__free(c);
    return NULL;
  }
  return c;
}

void dc_config_free(dc_config *c) {
  if (!c) return;
  for (int k = 0; k < NKEYS; k++) {
    dc__free(c->values[k]);
    dc__free(c->resolved[k]);
  }
  for (int i = 0; i < c->nvars; i++) {
    dc__free(c->var_names[i]);
    dc__free(c->var_values[i]);
  }
  dc__free(c->var_names);
  dc__free(c->var_values);
  dc__free(c->var_lines);
  dc__free(c->name);
  dc__free(c);
}

static int set_var(dc_config *c, const char *name, const char *value, int line) {
  for (int i = 0; i < c->nvars; i++)
    if (strcmp(c->var_names[i], name) == 0) {
      char *v = dc__strdup(value);
      if (!v) return DC_ERR_NOMEM;
      dc__free(c->var_values[i]);
      c->var_values[i] = v;
      c->var_lines[i] = line;
      return DC_OK;
    }
  size_t n = (size_t)c->nvars;
  char **nn = dc__realloc(c->var_names, n * sizeof *nn, (n + 1) * sizeof *nn);
  if (!nn) return DC_ERR_NOMEM;
  c->var_names = nn;
  char **nv = dc__realloc(c->var_values, n * sizeof *nv, (n + 1) * sizeof *nv);
  if (!nv) return DC_ERR_NOMEM;
  c->var_values = nv;
  int *nl = dc__realloc(c->var_lines, n * sizeof *nl, (n + 1) * sizeof *nl);
  if (!nl) return DC_ERR_NOMEM;
  c->var_lines = nl;
  char *a = dc__strdup(name), *b = dc__strdup(value);
  if (!a || !b) {
    dc__free(a);
    dc__free(b);
    return DC_ERR_NOMEM;
  }
  c->var_names[n] = a;
  c->var_values[n] = b;
  c->var_lines[n] = line;
  c->nvars++;
  return DC_OK;
}

static bool valid_name(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_') return false;
  return true;
}

/* Sets section.key from a file line (line > 0) or --set (line 0); no refresh. */
static int assign(dc_config *c, const char *section, const char *key, const char *value, int line,
                  bool from_file) {
  char at[256];
  where(c, line, at, sizeof at);
  if (strcmp(section, "vars") == 0) {
    if (!valid_name(key))
      return dc__errs(DC_ERR_ARG, "%svariable name '%s' may hold only letters, digits and _", at,
                      key);
    if (from_file)
      for (int i = 0; i < c->nvars; i++)
        if (strcmp(c->var_names[i], key) == 0)
          return dc__errs(DC_ERR_ARG, "%svars.%s is already set on line %d", at, key,
                          c->var_lines[i]);
    return set_var(c, key, value, line);
  }
  int k = find_key(section, key);
  if (k < 0) {
    char hint[160];
    suggest_key(section, key, hint, sizeof hint);
    return dc__errs(DC_ERR_ARG,
                    "%sunknown key '%s' in [%s]%s (`deepc train --help-config` lists the keys)", at,
                    key, section, hint);
  }
  if (from_file && c->values[k])
    return dc__errs(DC_ERR_ARG, "%s%s.%s is already set on line %d", at, section, key, c->lines[k]);
  char *v = dc__strdup(value);
  if (!v) return DC_ERR_NOMEM;
  dc__free(c->values[k]);
  c->values[k] = v;
  c->lines[k] = line;
  return DC_OK;
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  size_t n = strlen(s);
  while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = 0;
  return s;
}

static void lower(char *s) {
  for (; *s; s++) *s = (char)(*s == '-' ? '_' : tolower((unsigned char)*s));
}

/* Removes a trailing " # comment" / " ; comment" and surrounding quotes. */
static char *clean_value(char *v) {
  for (char *p = v; *p; p++)
    if ((*p == '#' || *p == ';') && (p == v || isspace((unsigned char)p[-1]))) {
      *p = 0;
      break;
    }
  v = trim(v);
  size_t n = strlen(v);
  if (n >= 2 && ((v[0] == '"' && v[n - 1] == '"') || (v[0] == '\'' && v[n - 1] == '\''))) {
    v[n - 1] = 0;
    v++;
  }
  return v;
}

/* Appends a continuation line to the value last assigned. */
static int append_value(dc_config *c, const char *section, const char *key, const char *more) {
  char **slot = NULL;
  if (strcmp(section, "vars") == 0) {
    for (int i = 0; i < c->nvars; i++)
      if (strcmp(c->var_names[i], key) == 0) slot = &c->var_values[i];
  } else {
    int k = find_key(section, key);
    if (k >= 0) slot = &c->values[k];
  }
  if (!slot) return DC_OK;
  size_t a = strlen(*slot), b = strlen(more);
  char *v = dc__malloc(a + b + 2);
  if (!v) return DC_ERR_NOMEM;
  memcpy(v, *slot, a);
  v[a] = a ? ' ' : 0;
  memcpy(v + a + (a ? 1 : 0), more, b + 1);
  dc__free(*slot);
  *slot = v;
  return DC_OK;
}

static int parse_into(dc_config *c, const char *text) {
  char section[64] = "", lastkey[64] = "";
  int line = 0;
  const char *p = text;
  char buf[4096];
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    line++;
    if (len >= sizeof buf)
      return dc__errs(DC_ERR_FORMAT, "%s:%d: line longer than %zu characters", c->name, line,
                      sizeof buf - 1);
    memcpy(buf, p, len);
    buf[len] = 0;
    p += len + (nl ? 1 : 0);
    if (len && buf[len - 1] == '\r') buf[--len] = 0;
    bool indented = len > 0 && (buf[0] == ' ' || buf[0] == '\t');
    char *s = trim(buf);
    if (!*s || *s == '#' || *s == ';') {
      if (!*s) lastkey[0] = 0;
      continue;
    }
    if (*s == '[') {
      char *end = strchr(s, ']');
      if (!end || *trim(end + 1))
        return dc__errs(DC_ERR_FORMAT, "%s:%d: malformed section header '%s' (write [name])",
                        c->name, line, s);
      *end = 0;
      char *name = trim(s + 1);
      lower(name);
      if (!known_section(name)) {
        char hint[64];
        suggest_section(name, hint, sizeof hint);
        return dc__errs(DC_ERR_ARG,
                        "%s:%d: unknown section [%s]%s (sections: [model] [data] [train] "
                        "[optim] [schedule] [vars])",
                        c->name, line, name, hint);
      }
      snprintf(section, sizeof section, "%s", name);
      lastkey[0] = 0;
      continue;
    }
    char *eq = strpbrk(s, "=:");
    if (!eq) {
      if (indented && lastkey[0]) {
        int rc = append_value(c, section, lastkey, clean_value(s));
        if (rc != DC_OK) return rc;
        continue;
      }
      return dc__errs(DC_ERR_FORMAT, "%s:%d: expected 'key = value', got '%s'", c->name, line, s);
    }
    if (indented && lastkey[0] && strchr(s, '(') && strchr(s, '(') < eq) {
      /* a continued layer list such as "  conv2d(32, 64, 5, padding=2)," */
      int rc = append_value(c, section, lastkey, clean_value(s));
      if (rc != DC_OK) return rc;
      continue;
    }
    *eq = 0;
    char *key = trim(s);
    lower(key);
    char *value = clean_value(eq + 1);
    if (!section[0])
      return dc__errs(DC_ERR_FORMAT,
                      "%s:%d: '%s' comes before any [section] header (start with [model], "
                      "[data], [train], [optim] or [schedule])",
                      c->name, line, key);
    int rc = assign(c, section, key, value, line, true);
    if (rc != DC_OK) return rc;
    snprintf(lastkey, sizeof lastkey, "%s", key);
  }
  return DC_OK;
}

dc_config *dc_config_parse(const char *text, const char *name) {
  if (!text) return dc__err(DC_ERR_ARG, "config_parse: text is NULL");
  dc_config *c = config_new(name);
  if (!c) return NULL;
  if (parse_into(c, text) != DC_OK || refresh(c) != DC_OK) {
    dc_config_free(c);
    return NULL;
  }
  return c;
}

dc_config *dc_config_default(void) { return dc_config_parse("", "defaults"); }

dc_config *dc_config_load(const char *path) {
  if (!path) return dc__err(DC_ERR_ARG, "config_load: path is NULL");
  FILE *f = fopen(path, "rb");
  if (!f)
    return dc__err(DC_ERR_IO, "%s: cannot open the configuration file (%s)", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  if (n < 0 || n > (1 << 22)) {
    fclose(f);
    return dc__err(DC_ERR_FORMAT, "%s: not a configuration file (size %ld)", path, n);
  }
  char *text = dc__malloc((size_t)n + 1);
  if (!text) {
    fclose(f);
    return NULL;
  }
  size_t got = fread(text, 1, (size_t)n, f);
  fclose(f);
  text[got] = 0;
  const char *nul = memchr(text, 0, got);
  if (nul) {
    int line = 1;
    for (const char *q = text; q < nul; q++) line += *q == '\n';
    size_t off = (size_t)(nul - text);
    dc__free(text);
    return dc__err(DC_ERR_FORMAT,
                   "%s:%d: binary data in a configuration file (a NUL byte at offset %zu)", path,
                   line, off);
  }
  dc_config *c = dc_config_parse(text, path);
  dc__free(text);
  return c;
}

dc_config *dc_config_clone(const dc_config *src) {
  if (!src) return dc__err(DC_ERR_ARG, "config_clone: NULL");
  dc_config *c = config_new(src->name);
  if (!c) return NULL;
  for (int k = 0; k < NKEYS; k++) {
    c->lines[k] = src->lines[k];
    if (src->values[k] && !(c->values[k] = dc__strdup(src->values[k]))) goto fail;
  }
  for (int i = 0; i < src->nvars; i++)
    if (set_var(c, src->var_names[i], src->var_values[i], src->var_lines[i]) != DC_OK) goto fail;
  if (refresh(c) != DC_OK) goto fail;
  return c;
fail:
  dc_config_free(c);
  return NULL;
}

/* Splits "section.key" into its parts (lower-cased). */
static int split_key(const char *full, char *section, size_t ns, char *key, size_t nk) {
  const char *dot = strchr(full, '.');
  if (!dot || dot == full || !dot[1])
    return dc__errs(DC_ERR_ARG, "--set: '%s' is not of the form section.key (e.g. optim.lr=0.01)",
                    full);
  snprintf(section, ns, "%.*s", (int)(dot - full), full);
  snprintf(key, nk, "%s", dot + 1);
  char *s = trim(section), *k = trim(key);
  memmove(section, s, strlen(s) + 1);
  memmove(key, k, strlen(k) + 1);
  lower(section);
  lower(key);
  if (!known_section(section)) {
    /* maybe a bare key: "lr" -> optim.lr */
    char hint[64];
    suggest_section(section, hint, sizeof hint);
    return dc__errs(DC_ERR_ARG, "--set: unknown section '%s' in '%s'%s", section, full, hint);
  }
  return DC_OK;
}

int dc_config_set_value(dc_config *c, const char *full, const char *value) {
  if (!c || !full || !value) return dc__errs(DC_ERR_ARG, "config_set: NULL argument");
  char section[64], key[128];
  if (!strchr(full, '.')) {
    /* a bare key that exists in exactly one section */
    char lk[128];
    snprintf(lk, sizeof lk, "%s", full);
    lower(lk);
    int found = -1, count = 0;
    for (int k = 0; k < NKEYS; k++)
      if (strcmp(SCHEMA[k].key, lk) == 0) found = k, count++;
    if (count == 1)
      return dc__errs(DC_ERR_ARG, "--set: write %s.%s=%s (keys are section.key)",
                      SCHEMA[found].section, lk, value);
  }
  int rc = split_key(full, section, sizeof section, key, sizeof key);
  if (rc != DC_OK) return rc;
  dc_config *backup = dc_config_clone(c);
  if (!backup) return dc_last_status();
  rc = assign(c, section, key, value, 0, false);
  if (rc == DC_OK) rc = refresh(c);
  if (rc != DC_OK) {
    /* restore the previous values: nothing changes on error */
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", dc_last_error());
    dc_config tmp = *c;
    *c = *backup;
    *backup = tmp;
    dc_config_free(backup);
    return dc__errs((dc_status)rc, "%s", msg);
  }
  dc_config_free(backup);
  return DC_OK;
}

int dc_config_set(dc_config *c, const char *assignment) {
  if (!c || !assignment) return dc__errs(DC_ERR_ARG, "config_set: NULL argument");
  const char *eq = strchr(assignment, '=');
  if (!eq)
    return dc__errs(DC_ERR_ARG, "--set: '%s' has no '=' (write section.key=value)", assignment);
  char key[192];
  snprintf(key, sizeof key, "%.*s", (int)(eq - assignment), assignment);
  char *v = dc__strdup(eq + 1);
  if (!v) return DC_ERR_NOMEM;
  int rc = dc_config_set_value(c, key, clean_value(v));
  dc__free(v);
  return rc;
}

const char *dc_config_get(const dc_config *c, const char *full) {
  if (!c || !full) return dc__err(DC_ERR_ARG, "config_get: NULL argument");
  const char *dot = strchr(full, '.');
  if (dot && strncmp(full, "vars.", 5) == 0) {
    for (int i = 0; i < c->nvars; i++)
      if (strcmp(c->var_names[i], dot + 1) == 0) return c->var_values[i];
    return dc__err(DC_ERR_ARG, "config: vars.%s is not defined", dot + 1);
  }
  for (int k = 0; k < NKEYS; k++) {
    size_t ls = strlen(SCHEMA[k].section);
    if (dot && (size_t)(dot - full) == ls && strncmp(full, SCHEMA[k].section, ls) == 0 &&
        strcmp(dot + 1, SCHEMA[k].key) == 0)
      return c->resolved[k];
  }
  return dc__err(DC_ERR_ARG, "config: unknown key '%s'", full);
}

bool dc_config_is_set(const dc_config *c, const char *full) {
  if (!c || !full) return false;
  const char *dot = strchr(full, '.');
  if (!dot) return false;
  for (int k = 0; k < NKEYS; k++) {
    size_t ls = strlen(SCHEMA[k].section);
    if ((size_t)(dot - full) == ls && strncmp(full, SCHEMA[k].section, ls) == 0 &&
        strcmp(dot + 1, SCHEMA[k].key) == 0)
      return c->values[k] != NULL;
  }
  return false;
}

/* ---- writing ---- */
typedef struct sbuf {
  char *s;
  size_t n, cap;
  bool failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) DC__PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
  if (b->failed) return;
  va_list ap;
  va_start(ap, fmt);
  int need = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (b->n + (size_t)need + 1 > b->cap) {
    size_t cap = (b->cap + (size_t)need + 1) * 2;
    char *s = realloc(b->s, cap);
    if (!s) {
      b->failed = true;
      return;
    }
    b->s = s;
    b->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
  va_end(ap);
  b->n += (size_t)need;
}

char *dc_config_to_string(const dc_config *c, bool only_set) {
  if (!c) return dc__err(DC_ERR_ARG, "config_to_string: NULL");
  sbuf b = {0};
  sb_printf(&b, "%s", "");
  if (c->nvars) {
    sb_printf(&b, "[vars]\n");
    for (int i = 0; i < c->nvars; i++)
      sb_printf(&b, "%s = %s\n", c->var_names[i], c->var_values[i]);
    sb_printf(&b, "\n");
  }
  for (int s = 0; s < NSECTIONS - 1; s++) {
    bool header = false;
    for (int k = 0; k < NKEYS; k++) {
      if (strcmp(SCHEMA[k].section, SECTIONS[s]) != 0) continue;
      if (only_set && !c->values[k]) continue;
      if (!header) sb_printf(&b, "%s[%s]\n", b.n > 0 ? "\n" : "", SECTIONS[s]), header = true;
      sb_printf(&b, "%s = %s\n", SCHEMA[k].key, c->values[k] ? c->values[k] : SCHEMA[k].def);
    }
  }
  if (b.failed) {
    free(b.s);
    return dc__err(DC_ERR_NOMEM, "config_to_string: out of memory");
  }
  return b.s;
}

void dc_config_print_schema(FILE *f) {
  static const char *const TYPE[] = {"int", "number", "bool", "text", "choice", "ints", "numbers"};
  for (int s = 0; s < NSECTIONS - 1; s++) {
    fprintf(f, "[%s]\n", SECTIONS[s]);
    for (int k = 0; k < NKEYS; k++) {
      const cfg_key *e = &SCHEMA[k];
      if (strcmp(e->section, SECTIONS[s]) != 0) continue;
      char def[64];
      snprintf(def, sizeof def, "%s", e->def[0] ? e->def : e->type == CT_STR ? "(none)" : "(auto)");
      fprintf(f, "  %-16s %-7s %-14s %s", e->key, TYPE[e->type], def, e->help);
      if (e->type == CT_ENUM) fprintf(f, " {%s}", e->choices);
      fprintf(f, "\n");
    }
  }
  fprintf(f, "[vars]\n  any name = value, used as ${name} in the values above\n");
}

/* ---- typed getters for build.c (values are already checked) ---- */
int64_t dc__config_int(const dc_config *c, const char *key) {
  const char *v = dc_config_get(c, key);
  int64_t x = 0;
  if (v) parse_int(v, &x);
  return x;
}

double dc__config_float(const dc_config *c, const char *key) {
  const char *v = dc_config_get(c, key);
  double x = NAN;
  if (v && *v) parse_float(v, &x);
  return x;
}

bool dc__config_bool(const dc_config *c, const char *key) {
  const char *v = dc_config_get(c, key);
  return v && parse_bool(v) == 1;
}

int dc__config_list(const dc_config *c, const char *key, double *out, int max) {
  const char *v = dc_config_get(c, key);
  if (!v) return -1;
  int n = 0;
  const char *p = v;
  while (*p && n < max) {
    char *end;
    out[n++] = strtod(p, &end);
    p = end;
    while (*p == ',' || isspace((unsigned char)*p)) p++;
  }
  return n;
}

int dc__config_line(const dc_config *c, const char *key) {
  const char *dot = strchr(key, '.');
  for (int k = 0; dot && k < NKEYS; k++) {
    size_t ls = strlen(SCHEMA[k].section);
    if ((size_t)(dot - key) == ls && strncmp(key, SCHEMA[k].section, ls) == 0 &&
        strcmp(dot + 1, SCHEMA[k].key) == 0)
      return c->lines[k];
  }
  return 0;
}

const char *dc__config_name(const dc_config *c) { return c->name; }

/* Keys whose resolved values differ between a and b, as "section.key" separated by ", "
 * (written into buf; "" when none). */
void dc__config_diff(const dc_config *a, const dc_config *b, char *buf, size_t n) {
  buf[0] = 0;
  size_t at = 0;
  for (int k = 0; k < NKEYS && at < n; k++)
    if (strcmp(a->resolved[k], b->resolved[k]) != 0)
      at += (size_t)snprintf(buf + at, n - at, "%s%s.%s", at ? ", " : "", SCHEMA[k].section,
                             SCHEMA[k].key);
}

/* dc__errs for messages that quote dc_last_error(): formats into a local buffer first, since
 * dc__errs writes into the very buffer dc_last_error() returns. */
int dc__rewrap(dc_status s, const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return dc__errs(s, "%s", msg);
}
