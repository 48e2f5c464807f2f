/* Internal API of src/train: typed access to checked configuration values and the pieces a run
 * is built from (build.c), shared by run.c, eval.c and search.c. Not installed. */
#ifndef DC_TRAIN_IMPL_H
#define DC_TRAIN_IMPL_H

#include <deepc/deepc.h>
#include <deepc/train.h>

#include "../core/core-impl.h"
#include "spec.h"

/* ---- the configuration: typed values in spec.h (dc__config_spec), its name for messages ---- */
const char *dc__config_name(const dc_config *c);
/* Sets the error like dc__errs, for messages that quote dc_last_error() (which dc__errs would
 * overwrite while formatting); returns s. */
int dc__rewrap(dc_status s, const char *fmt, ...) DC__PRINTF(2, 3);
/* dc_last_status(), or DC_ERR_NOMEM when a call failed without setting one. */
int dc__status_or_nomem(void);
/* Keys whose values differ, "section.key, ..." into buf ("" when none). */
void dc__config_diff(const dc_config *a, const dc_config *b, char *buf, size_t n);

/* ---- what a configuration builds ---- */
typedef struct dc__data {
  dc_dataset *train, *val, *test; /* val may alias nothing (NULL) when val_split = 0 */
  bool val_is_test;               /* validation runs on the test set */
  int64_t num_classes;            /* K */
  char **class_names;             /* [K] (owned) */
  dc_shape sample_shape;          /* one input after the transforms: [C, H, W] or [F] */
} dc__data;

/* Opens the datasets with their transforms (split, limits, normalisation, augmentation). */
int dc__build_data(const dc__run_spec *s, dc__data *d, const char *data_override);
void dc__data_free(dc__data *d);
/* The model for these inputs, checked by a forward pass of one zero sample (a shape error
 * names the layer). */
dc_module *dc__build_model(const dc__run_spec *s, const dc__data *d);
/* The optimizer over the model's trainable parameters, and its schedule (NULL for none; *when
 * tells the trainer how to step it). */
dc_optim *dc__build_optim(const dc__run_spec *s, dc_module *m);
int dc__build_sched(const dc__run_spec *s, dc_optim *o, int64_t steps_per_epoch, dc_sched **out,
                    dc_sched_when *when);
/* The device of a run: override ("--device", may be NULL) or train.device, parsed; a device
 * this build lacks is DC_ERR_ARG naming the devices it has. */
int dc__run_device(const dc__run_spec *s, const char *override, dc_device *dev);
/* A non-zero seed for one purpose (stream) of a run, derived from the configured seed. */
uint64_t dc__seed_stream(uint64_t seed, uint64_t stream);
/* Loss function and its options (cross-entropy with label smoothing, multi-margin). */
typedef struct dc__loss_cfg {
  int kind; /* 0 cross-entropy, 1 multi-margin */
  double label_smoothing;
} dc__loss_cfg;
void dc__build_loss(const dc__run_spec *s, dc__loss_cfg *l);
dc_tensor *dc__loss_call(dc_tensor *out, dc_tensor *target, void *ud); /* ud: dc__loss_cfg */

/* ---- progress display (progress.c) ---- */
typedef struct dc__progress {
  FILE *f;
  bool bar; /* redraw one line with \r */
  bool quiet;
  int epochs;
  double last_draw;
  int last_pct;
  int width; /* terminal columns */
} dc__progress;
void dc__progress_init(dc__progress *p, FILE *f, dc_progress_mode mode, int epochs);
void dc__progress_step(dc__progress *p, const dc_step_info *s, int64_t batch_size);
void dc__progress_epoch(dc__progress *p, const dc_epoch_stats *e, bool best);
double dc__now(void); /* monotonic seconds */

/* ---- reports (report.c) ---- */
int dc__write_report(const char *path, const dc_config *c, const dc__data *d, const dc_history *h,
                     const dc_run_result *r, const dc_metrics *test, const char *model_repr,
                     int64_t nparams);

#endif
