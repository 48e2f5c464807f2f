/* Files a training run reads and writes: checkpoints (named tensors + string metadata in the
 * safetensors layout, saved atomically), the per-epoch history and its CSV form, TensorBoard
 * event files (scalars) and loss/accuracy curves drawn with cairo (PNG and SVG).
 * Every function returns DC_OK / a pointer, or an error status / NULL with dc_last_error()
 * naming the file and what is wrong. */
#ifndef DEEPC_IO_H
#define DEEPC_IO_H

#include "tensor.h"
#include "nn.h"
#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================= history of a run ======================= */
/* One row per finished epoch; NaN where a value is unknown (no validation set). */
typedef struct dc_epoch_stats {
  int epoch;         /* 1-based */
  double train_loss; /* mean over the epoch's samples */
  double train_acc;  /* fraction in [0, 1] */
  double val_loss;
  double val_acc;
  double lr;      /* learning rate of group 0 during the epoch (at its start) */
  double seconds; /* wall time of the epoch (training and validation) */
} dc_epoch_stats;

typedef struct dc_history {
  int n;
  dc_epoch_stats *rows; /* [n] */
  int cap;              /* internal */
} dc_history;

DC_API int dc_history_append(dc_history *h, const dc_epoch_stats *row);
DC_API void dc_history_clear(dc_history *h); /* frees the rows; h can be reused */
/* metrics.csv: header "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds", one line per
 * epoch, numbers in %.9g (empty field for NaN). */
DC_API int dc_history_write_csv(const dc_history *h, const char *path);
/* Reads such a file back (columns found by header name, any order; missing ones are NaN). */
DC_API int dc_history_read_csv(const char *path, dc_history *out);

/* ======================= checkpoints =======================
 * A checkpoint is an ordered list of named tensors plus string metadata, stored in the
 * safetensors layout (8-byte little-endian header length, a JSON header with dtype, shape and
 * data_offsets of each tensor and a "__metadata__" map of strings, then the raw little-endian
 * data), so any safetensors reader opens it. deepc's training runs name their entries
 * "model.<state dict key>", "optim.<optimizer state key>", "sched.<schedule state key>" and
 * "trainer.*" (see docs/training.md). */
typedef struct dc_ckpt dc_ckpt;

DC_API dc_ckpt *dc_ckpt_new(void);
DC_API void dc_ckpt_free(dc_ckpt *c);
/* Adds (or replaces) an entry. The checkpoint keeps its own reference to t: for a saved
 * checkpoint the values are those at dc_ckpt_save time. */
DC_API int dc_ckpt_set_tensor(dc_ckpt *c, const char *name, dc_tensor *t);
DC_API dc_tensor *dc_ckpt_tensor(const dc_ckpt *c, const char *name); /* borrowed; NULL if absent */
DC_API int dc_ckpt_num_tensors(const dc_ckpt *c);
DC_API const char *dc_ckpt_name_at(const dc_ckpt *c, int i);
DC_API dc_tensor *dc_ckpt_tensor_at(const dc_ckpt *c, int i);
/* String metadata (copied). */
DC_API int dc_ckpt_set_meta(dc_ckpt *c, const char *key, const char *value);
DC_API const char *dc_ckpt_meta(const dc_ckpt *c, const char *key); /* NULL if absent */

/* Writes the checkpoint atomically: to "<path>.tmp-<pid>" in the same folder, fsync, rename
 * over path, fsync of the folder. On any failure (a full disk included) the temporary file is
 * removed and an existing file at path is left as it was. */
DC_API int dc_ckpt_save(const dc_ckpt *c, const char *path);
/* Reads and checks a checkpoint (header size, dtypes, shapes against offsets, offsets tiling
 * the data exactly). Tensors are unscoped and owned by the checkpoint. */
DC_API dc_ckpt *dc_ckpt_load(const char *path);

/* Entries "<prefix><key>" for every state-dict entry (a copy of each value is taken). */
DC_API int dc_ckpt_add_state_dict(dc_ckpt *c, const char *prefix, const dc_state_dict *sd);
/* A state dict of the entries whose name starts with prefix (the prefix removed). Free with
 * dc_state_dict_free. */
DC_API dc_state_dict *dc_ckpt_get_state_dict(const dc_ckpt *c, const char *prefix);
/* Same for an optimizer's or schedule's state (dc_optim_state). */
DC_API int dc_ckpt_add_optim_state(dc_ckpt *c, const char *prefix, const dc_optim_state *st);
DC_API int dc_ckpt_get_optim_state(const dc_ckpt *c, const char *prefix, dc_optim_state *out);

/* ======================= TensorBoard event files =======================
 * events.out.tfevents.<unix time>.<host> in a folder: TFRecord framing (length, masked CRC32C
 * of the length, Event protobuf, masked CRC32C of the data), first record "brain.Event:2",
 * then one Event with a Summary of simple_value scalars per call. */
typedef struct dc_tb_writer dc_tb_writer;
DC_API dc_tb_writer *dc_tb_open(const char *dir); /* creates dir if needed */
DC_API int dc_tb_add_scalar(dc_tb_writer *w, const char *tag, int64_t step, double value);
DC_API int dc_tb_flush(dc_tb_writer *w);
DC_API const char *dc_tb_path(const dc_tb_writer *w);
DC_API int dc_tb_close(dc_tb_writer *w); /* flushes and frees; NULL is ignored */
/* CRC32C (Castagnoli) of n bytes and TensorBoard's masked form of a CRC. */
DC_API uint32_t dc_crc32c(const void *data, size_t n);
DC_API uint32_t dc_crc32c_mask(uint32_t crc);

/* ======================= curves ======================= */
/* Draws loss (left) and accuracy (right) against epoch for one or several runs: train solid,
 * validation dashed, one colour per run, axes with ticks, labels and a legend. The format
 * follows the file name's extension: .png or .svg. labels may be NULL (one run: "train"/"val";
 * several: "run 1", ...). */
DC_API int dc_plot_curves(const char *path, const dc_history *const *runs,
                          const char *const *labels, int nruns, const char *title);

#ifdef __cplusplus
}
#endif
#endif
