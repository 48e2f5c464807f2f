/* The run configuration as typed values: one X-macro table lists every key of `deepc train`'s
 * configuration (section, name, type, default, range, help). It generates the typed struct the
 * builders read (dc__run_spec), the key ids, the parser's table (spec.c) and the key lists of
 * `deepc train --help` and docs/training.md. Reading INI text is config.c's job. Not installed. */
#ifndef DC_TRAIN_SPEC_H
#define DC_TRAIN_SPEC_H

#include <deepc/train.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* ---- the choices of the enum keys: X(CONSTANT, name) in the order of their constants ---- */
/* clang-format off */
#define DC__CHOICES_activation(X) \
  X(ACT_RELU, relu) X(ACT_LEAKY_RELU, leaky_relu) X(ACT_ELU, elu) X(ACT_GELU, gelu) \
  X(ACT_TANH, tanh) X(ACT_SIGMOID, sigmoid)
#define DC__CHOICES_amp(X) X(AMP_NONE, none) X(AMP_BF16, bf16)
#define DC__CHOICES_device(X) X(DEV_CPU, cpu) X(DEV_CUDA, cuda) X(DEV_TESTDEV, testdev)
#define DC__CHOICES_loss(X) X(LOSS_CROSS_ENTROPY, cross_entropy) X(LOSS_MULTI_MARGIN, multi_margin)
#define DC__CHOICES_monitor(X) \
  X(MON_VAL_ACC, val_acc) X(MON_VAL_LOSS, val_loss) X(MON_TRAIN_LOSS, train_loss)
#define DC__CHOICES_on_nan(X) X(NAN_STOP, stop) X(NAN_SKIP, skip)
#define DC__CHOICES_optim(X) \
  X(OPT_SGD, sgd) X(OPT_ADAM, adam) X(OPT_ADAMW, adamw) X(OPT_RMSPROP, rmsprop) \
  X(OPT_ADAGRAD, adagrad)
#define DC__CHOICES_sched(X) \
  X(SCHED_NONE, none) X(SCHED_STEP, step) X(SCHED_MULTISTEP, multistep) \
  X(SCHED_EXPONENTIAL, exponential) X(SCHED_COSINE, cosine) X(SCHED_ONECYCLE, onecycle) \
  X(SCHED_PLATEAU, plateau)
/* clang-format on */

#define DC__ENUM_CONST(E, name) DC__##E,
typedef enum dc__activation { DC__CHOICES_activation(DC__ENUM_CONST) } dc__activation;
typedef enum dc__amp { DC__CHOICES_amp(DC__ENUM_CONST) } dc__amp;
typedef enum dc__device { DC__CHOICES_device(DC__ENUM_CONST) } dc__device;
typedef enum dc__loss { DC__CHOICES_loss(DC__ENUM_CONST) } dc__loss;
typedef enum dc__monitor { DC__CHOICES_monitor(DC__ENUM_CONST) } dc__monitor;
typedef enum dc__on_nan { DC__CHOICES_on_nan(DC__ENUM_CONST) } dc__on_nan;
typedef enum dc__optim { DC__CHOICES_optim(DC__ENUM_CONST) } dc__optim;
typedef enum dc__sched { DC__CHOICES_sched(DC__ENUM_CONST) } dc__sched;

/* ---- the keys: X(section, key, TYPE, default, range, choices, min count, max count, help) ----
 * TYPE: INT (int64_t), FLOAT (double; NaN when an empty default is left empty), BOOL, STR,
 * ENUM (the choice list named by `choices`: the field has type dc__<choices>), INTS / FLOATS
 * (lists of min..max count). A default "" means automatic (see the help). range: "" (any),
 * ">= a", "> a", "<= b", "[a, b]", "[a, b)", "(a, b]" or "(a, b)"; for lists, of each item. */
#define DC__SPEC_MODEL(X)                                                                          \
  X(model, arch, STR, "", "", _, 0, 0,                                                             \
    "`cnn`: conv blocks and a fully-connected head; `mlp`: hidden layers; `layers`: the `layers` " \
    "list; a model of the zoo ([zoo.md](zoo.md)): `lenet5`, `cnn_fashion`, `vgg11_bn_cifar`, "     \
    "`resnet18`, ... built for the dataset's classes and channels; or `onnx:FILE`, an ONNX "       \
    "graph. Empty: `layers` if given, else `cnn`")                                                 \
  X(model, layers, STR, "", "", _, 0, 0,                                                           \
    "a layer list with PyTorch's constructor arguments: `conv2d(1,32,5,padding=2), "               \
    "batchnorm2d(32), relu, maxpool2d(2), flatten, linear(6272, classes)`; the name `classes` is " \
    "the dataset's number of classes (see [nn.md](nn.md) for the layers)")                         \
  X(model, channels, INTS, "32,32,64", ">= 1", _, 0, 32,                                           \
    "cnn: output channels of each conv block (conv k x k with padding k/2, batch norm, "           \
    "activation, max-pool)")                                                                       \
  X(model, kernel, INT, "5", ">= 1", _, 0, 0, "cnn: kernel size")                                  \
  X(model, pool, INTS, "2", ">= 0", _, 0, 3,                                                       \
    "cnn: max pooling after each block: a size k, or `k, stride, padding` as in "                  \
    "`MaxPool2d(4, 3, 1)` (0 or 1: none)")                                                         \
  X(model, batchnorm, BOOL, "true", "", _, 0, 0, "batch norm after each conv and hidden layer")    \
  X(model, dropout, FLOAT, "0.3", "[0, 1)", _, 0, 0,                                               \
    "cnn: dropout before the head; mlp: after each hidden layer")                                  \
  X(model, hidden, INTS, "", ">= 1", _, 0, 32,                                                     \
    "widths of the hidden fully-connected layers (empty: cnn 64, mlp 256,128,64)")                 \
  X(model, activation, ENUM, "relu", "", activation, 0, 0, "activation function")                  \
  X(model, width, INT, "0", ">= 0", _, 0, 0, "zoo ResNets: channels of the first stage (0: 64)")   \
  X(model, small_input, BOOL, "false", "", _, 0, 0,                                                \
    "zoo ResNets: 3x3 stride-1 stem without max pooling, for 32x32 images")                        \
  X(model, pretrained, STR, "", "", _, 0, 0,                                                       \
    "weights to start from (`.pth`, `.safetensors`, `.ckpt`); a final layer of another shape "     \
    "(1000 ImageNet classes) is left freshly initialised, as after `model.fc = nn.Linear(512, "    \
    "k)`")                                                                                         \
  X(model, freeze, STR, "", "", _, 0, 0,                                                           \
    "parameters kept fixed: `backbone` (everything but the final layer) or module paths "          \
    "(`conv1, bn1, layer1`)")

#define DC__SPEC_DATA(X)                                                                           \
  X(data, dataset, STR, "fashion-mnist", "", _, 0, 0,                                              \
    "`mnist`, `fashion-mnist`, `cifar10`, `cifar100` (found in `dir`, `$DEEPC_DATA`, `./data`, "   \
    "Debian's `/usr/share/datasets`), or a path to an IDX file, CIFAR batch, image folder, "       \
    "`.npz` or `.csv` (a path has no test part: 20% of it is held out as the test set, with the "  \
    "seed)")                                                                                       \
  X(data, test, STR, "", "", _, 0, 0,                                                              \
    "when `dataset` is a path: the path of the test set (empty: 20% of `dataset` is held out)")    \
  X(data, dir, STR, "", "", _, 0, 0, "folder of the named dataset (empty: the usual places)")      \
  X(data, val_split, FLOAT, "0.1", "[0, 1)", _, 0, 0,                                              \
    "fraction of the training set held out (at random, with the seed) for validation. 0: "         \
    "validate on the test set")                                                                    \
  X(data, train_limit, INT, "0", ">= 0", _, 0, 0,                                                  \
    "train on a random subset of this many samples (0: all); quick experiments and tests")         \
  X(data, test_limit, INT, "0", ">= 0", _, 0, 0, "the first n test samples only (0: all)")         \
  X(data, normalize, BOOL, "true", "", _, 0, 0, "per-channel normalisation (after ToTensor)")      \
  X(data, mean, FLOATS, "", "", _, 0, 8,                                                           \
    "per-channel means (empty: the published values for the four named datasets, otherwise "       \
    "measured on 2000 training samples)")                                                          \
  X(data, std, FLOATS, "", "> 0", _, 0, 8, "per-channel standard deviations (empty: as `mean`)")   \
  X(data, resize, INT, "0", ">= 0", _, 0, 0,                                                       \
    "resize the shorter side of each image to n pixels (torchvision's `Resize(n)`; 0: off)")       \
  X(data, crop, INT, "0", ">= 0", _, 0, 0,                                                         \
    "an n x n crop: at a random place for training (`RandomCrop`), the centre for validation and " \
    "test (`CenterCrop`); images of different sizes need it (0: off)")                             \
  X(data, random_resized_crop, BOOL, "false", "", _, 0, 0,                                         \
    "training: `RandomResizedCrop(crop)` instead of resize + random crop")                         \
  X(data, random_crop, INT, "0", ">= 0", _, 0, 0,                                                  \
    "augmentation: pad by n, crop back at a random place (with `crop`: the padding of the random " \
    "crop)")                                                                                       \
  X(data, hflip, BOOL, "false", "", _, 0, 0, "augmentation: random horizontal flip")               \
  X(data, rotation, FLOAT, "0", "[0, 180]", _, 0, 0,                                               \
    "augmentation: random rotation within +- degrees (0: off)")                                    \
  X(data, workers, INT, "1", "[0, 256]", _, 0, 0,                                                  \
    "loader threads preparing batches ahead of the training thread (0: in the training thread)")

#define DC__SPEC_TRAIN(X)                                                                          \
  X(train, epochs, INT, "5", ">= 0", _, 0, 0, "number of epochs")                                  \
  X(train, batch_size, INT, "64", ">= 1", _, 0, 0,                                                 \
    "training batch size (a last batch of a single sample is dropped: batch norm cannot train on " \
    "it)")                                                                                         \
  X(train, eval_batch_size, INT, "500", ">= 1", _, 0, 0, "validation and test batches")            \
  X(train, seed, INT, "0", ">= 0", _, 0, 0,                                                        \
    "the one seed of the run: initialisation, split, shuffling, dropout, augmentation")            \
  X(train, device, ENUM, "cpu", "", device, 0, 0,                                                  \
    "where to train and evaluate (testdev: test builds only; a device this build lacks is an "     \
    "error naming those it has; `--device` overrides it for one command)")                         \
  X(train, loss, ENUM, "cross_entropy", "", loss, 0, 0, "loss function")                           \
  X(train, label_smoothing, FLOAT, "0", "[0, 1]", _, 0, 0, "cross-entropy label smoothing")        \
  X(train, clip_grad_norm, FLOAT, "0", ">= 0", _, 0, 0,                                            \
    "clip the global L2 norm of the gradients (0: off)")                                           \
  X(train, early_stop, INT, "0", ">= 0", _, 0, 0,                                                  \
    "stop after this many epochs without improvement of `monitor` (0: off)")                       \
  X(train, monitor, ENUM, "val_acc", "", monitor, 0, 0,                                            \
    "for early stopping and `best.ckpt` (`train_loss`: stop when the training loss flattens, "     \
    "with `min_delta`)")                                                                           \
  X(train, min_delta, FLOAT, "0", ">= 0", _, 0, 0,                                                 \
    "smallest change of the monitored metric that counts as an improvement")                       \
  X(train, on_nan, ENUM, "stop", "", on_nan, 0, 0,                                                 \
    "a non-finite loss stops training with a message naming the epoch, batch and step, or "        \
    "(skip) the step is skipped (no optimizer update), as is a step whose loss is finite but "     \
    "whose gradients are not")                                                                     \
  X(train, amp, ENUM, "none", "", amp, 0, 0,                                                       \
    "mixed precision ([autocast.md](autocast.md)): `bf16` runs each step's forward and loss "      \
    "under bfloat16 autocast (products and convolutions in bfloat16, float32 master weights, "     \
    "gradients and optimizer; `deepc train --amp`)")                                               \
  X(train, detect_anomaly, BOOL, "false", "", _, 0, 0,                                             \
    "anomaly mode ([autograd.md](autograd.md#anomaly-detection-the-first-nan)): the first NaN or " \
    "infinity any op produces, forward or backward, stops the run with the step, the op and its "  \
    "shapes (slower)")                                                                             \
  X(train, restore_best, BOOL, "true", "", _, 0, 0,                                                \
    "the test set is scored with the weights of the best epoch")                                   \
  X(train, sync_batchnorm, BOOL, "false", "", _, 0, 0,                                             \
    "data-parallel runs (`mpirun -np N`): batch-norm statistics over every rank's samples "        \
    "(default: each rank its own)")

#define DC__SPEC_OPTIM(X)                                                                          \
  X(optim, name, ENUM, "adam", "", optim, 0, 0, "optimizer")                                       \
  X(optim, lr, FLOAT, "", ">= 0", _, 0, 0,                                                         \
    "learning rate (empty: the optimizer's default; sgd needs one)")                               \
  X(optim, backbone_lr, FLOAT, "", ">= 0", _, 0, 0,                                                \
    "fine-tuning: everything but the final layer learns at this rate in a second parameter "       \
    "group, the final layer at `lr` ([zoo.md](zoo.md); empty: `lr` for all)")                      \
  X(optim, momentum, FLOAT, "0", ">= 0", _, 0, 0, "sgd / rmsprop momentum")                        \
  X(optim, nesterov, BOOL, "false", "", _, 0, 0, "sgd: Nesterov momentum")                         \
  X(optim, dampening, FLOAT, "0", "", _, 0, 0, "sgd: dampening of the momentum")                   \
  X(optim, weight_decay, FLOAT, "", ">= 0", _, 0, 0,                                               \
    "L2 penalty; adamw: decoupled weight decay (empty: 0, adamw 0.01)")                            \
  X(optim, betas, FLOATS, "0.9,0.999", "[0, 1)", _, 2, 2, "adam / adamw: beta1, beta2")            \
  X(optim, eps, FLOAT, "", ">= 0", _, 0, 0,                                                        \
    "adam / adamw / rmsprop / adagrad epsilon (empty: PyTorch's default)")                         \
  X(optim, amsgrad, BOOL, "false", "", _, 0, 0, "adam / adamw: AMSGrad")                           \
  X(optim, alpha, FLOAT, "0.99", ">= 0", _, 0, 0, "rmsprop smoothing constant")

#define DC__SPEC_SCHEDULE(X)                                                                       \
  X(schedule, name, ENUM, "none", "", sched, 0, 0,                                                 \
    "learning-rate schedule (onecycle steps after every batch, plateau on the validation loss, "   \
    "the others after every epoch)")                                                               \
  X(schedule, step_size, INT, "10", ">= 1", _, 0, 0, "step: epochs between decays")                \
  X(schedule, gamma, FLOAT, "0.1", "> 0", _, 0, 0, "step / multistep / exponential: decay factor") \
  X(schedule, milestones, INTS, "", ">= 0", _, 0, 64, "multistep: epochs at which the lr decays")  \
  X(schedule, t_max, INT, "0", ">= 0", _, 0, 0,                                                    \
    "cosine: epochs of the half period (0: all epochs)")                                           \
  X(schedule, eta_min, FLOAT, "0", ">= 0", _, 0, 0, "cosine: lowest lr")                           \
  X(schedule, max_lr, FLOAT, "0", ">= 0", _, 0, 0, "onecycle: peak lr (0: ten times `optim.lr`)")  \
  X(schedule, pct_start, FLOAT, "0.3", "[0, 1]", _, 0, 0,                                          \
    "onecycle: fraction of the steps spent warming up")                                            \
  X(schedule, factor, FLOAT, "0.1", "(0, 1)", _, 0, 0,                                             \
    "plateau: lr multiplier on a plateau of the validation loss")                                  \
  X(schedule, patience, INT, "2", ">= 0", _, 0, 0,                                                 \
    "plateau: epochs without improvement before decaying")                                         \
  X(schedule, warmup_epochs, INT, "0", ">= 0", _, 0, 0,                                            \
    "a linear warm-up from lr/10 over this many epochs before step, multistep, exponential and "   \
    "cosine")

#define DC__SPEC_KEYS(X)                                                                           \
  DC__SPEC_MODEL(X) DC__SPEC_DATA(X) DC__SPEC_TRAIN(X) DC__SPEC_OPTIM(X) DC__SPEC_SCHEDULE(X)

/* ---- the typed values ---- */
enum { DC__SPEC_LIST_MAX = 64 };
typedef struct dc__spec_ints {
  int n;
  int64_t v[DC__SPEC_LIST_MAX]; /* [n] */
} dc__spec_ints;
typedef struct dc__spec_floats {
  int n;
  double v[DC__SPEC_LIST_MAX]; /* [n] */
} dc__spec_floats;

#define DC__FTYPE_INT(ch) int64_t
#define DC__FTYPE_FLOAT(ch) double
#define DC__FTYPE_BOOL(ch) bool
#define DC__FTYPE_STR(ch) const char *
#define DC__FTYPE_ENUM(ch) dc__##ch
#define DC__FTYPE_INTS(ch) dc__spec_ints
#define DC__FTYPE_FLOATS(ch) dc__spec_floats
#define DC__SPEC_FIELD(sec, key, T, def, range, ch, nmin, nmax, help) DC__FTYPE_##T(ch) key;

typedef struct dc__spec_model {
  DC__SPEC_MODEL(DC__SPEC_FIELD)
} dc__spec_model;
typedef struct dc__spec_data {
  DC__SPEC_DATA(DC__SPEC_FIELD)
} dc__spec_data;
typedef struct dc__spec_train {
  DC__SPEC_TRAIN(DC__SPEC_FIELD)
} dc__spec_train;
typedef struct dc__spec_optim {
  DC__SPEC_OPTIM(DC__SPEC_FIELD)
} dc__spec_optim;
typedef struct dc__spec_schedule {
  DC__SPEC_SCHEDULE(DC__SPEC_FIELD)
} dc__spec_schedule;

/* Key ids: DC__K_model_arch, ..., DC__K_COUNT. */
#define DC__SPEC_ID(sec, key, T, def, range, ch, nmin, nmax, help) DC__K_##sec##_##key,
typedef enum dc__spec_id { DC__SPEC_KEYS(DC__SPEC_ID) DC__K_COUNT } dc__spec_id;

/* The whole configuration of a run, every value checked. Strings point into the dc_config it
 * was parsed from (valid while that lives and is not changed). */
typedef struct dc__run_spec {
  dc__spec_model model;
  dc__spec_data data;
  dc__spec_train train;
  dc__spec_optim optim;
  dc__spec_schedule schedule;
  bool set[DC__K_COUNT]; /* given in the file or by --set (not the default) */
} dc__run_spec;

/* ---- the table (spec.c) ---- */
typedef enum dc__spec_type {
  DC__T_INT,
  DC__T_FLOAT,
  DC__T_BOOL,
  DC__T_STR,
  DC__T_ENUM,
  DC__T_INTS,
  DC__T_FLOATS
} dc__spec_type;

typedef struct dc__spec_key {
  const char *section, *key;
  dc__spec_type type;
  const char *def;            /* "" = empty / automatic */
  const char *range;          /* "" = any; of each item for lists */
  const char *const *choices; /* DC__T_ENUM: NULL-terminated names in constant order */
  int nmin, nmax;             /* lists: how many items */
  size_t offset;              /* of the field in dc__run_spec */
  const char *help;           /* markdown (backticks, links) */
} dc__spec_key;

extern const dc__spec_key dc__spec_keys[DC__K_COUNT];
extern const char *const dc__spec_sections[]; /* "model", ..., "schedule", "vars", NULL */

/* Parses the (${var}-resolved) value of key k into s, checking type, range and count; at is the
 * message prefix ("file:line:col: " or "--set key=value: "). DC_OK or DC_ERR_ARG. */
int dc__spec_parse_value(dc__run_spec *s, dc__spec_id k, const char *v, const char *at);
/* The name of an enum key's value (its choice), e.g. dc__spec_choice(DC__K_optim_name, 1). */
const char *dc__spec_choice(dc__spec_id k, int value);
/* Checks the table itself (every range readable, every default valid); DC_OK or the first
 * broken row. The unit tests call it. */
int dc__spec_check_table(void);
/* Parsed values of a dc_config (config.c). */
const dc__run_spec *dc__config_spec(const dc_config *c);

/* Edit distance and "close enough for a suggestion", shared by config.c and spec.c. */
int dc__edit_distance(const char *a, const char *b);
bool dc__close_enough(const char *typed, const char *cand, int dist);

#endif
