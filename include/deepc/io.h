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
 * checkpoint the values are those at dc_ckpt_save time. t may be on any device: saving reads it
 * to the host (dc_copy_to_buffer), so the file is the same byte for byte as for a cpu tensor. */
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
 * the data exactly). Tensors are cpu tensors, unscoped and owned by the checkpoint; loading
 * them into a module or optimizer on a device (dc_module_load_state_dict,
 * dc_optim_load_state_dict) copies them there with dc_copy_. */
DC_API dc_ckpt *dc_ckpt_load(const char *path);

/* Entries "<prefix><key>" for every state-dict entry (a cpu copy of each value is taken, from
 * any device). */
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

/* ======================= weight files: PyTorch .pth, safetensors, deepc checkpoints
 * ======================= A dc_weights is the ordered list of named tensors of one file, kept as
 * raw little-endian bytes in the file's own element type (int16, complex64, float8 ... included, so
 * files convert without loss), plus string metadata. Readers check everything (see docs/zoo.md):
 *  - .pth / .pt (torch.save's zip archive): a restricted unpickler that accepts only what state
 *    dicts use (collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter,
 *    torch.*Storage, persistent ids) and refuses any other opcode or global naming it and its
 *    offset; entry names, sizes and CRC-32s; views (offset, strides) within their storage.
 *    Nested dicts are flattened with dots ("model_state_dict.fc.weight"); plain values (epoch,
 *    lr) and each dict's _metadata become metadata. Legacy (pre-1.6) and TorchScript files are
 *    refused with a message saying how to re-save them.
 *  - safetensors: header length <= 100,000,000, a JSON object, known dtypes, shapes matching
 *    data_offsets, tensors tiling the data exactly, no duplicate names, string metadata.
 *  - deepc checkpoints (dc_ckpt_save): read as safetensors; format DC_WEIGHTS_CKPT. */
typedef enum dc_weights_format {
  DC_WEIGHTS_AUTO = 0,    /* reading: from the content; writing: from the extension */
  DC_WEIGHTS_PTH,         /* .pth .pt .bin: torch.save zip archive (protocol 2 pickle) */
  DC_WEIGHTS_SAFETENSORS, /* .safetensors */
  DC_WEIGHTS_CKPT         /* .ckpt: deepc checkpoint (safetensors layout, "model.<key>" names) */
} dc_weights_format;

typedef struct dc_weights dc_weights;

DC_API dc_weights *dc_weights_new(void);
DC_API void dc_weights_free(dc_weights *w);
/* Reads any of the formats (detected from the content). */
DC_API dc_weights *dc_weights_load(const char *path);
/* Same from memory; what names the data in messages. */
DC_API dc_weights *dc_weights_parse(const void *data, size_t n, const char *what);
/* Writes atomically (temporary file + rename). DC_WEIGHTS_AUTO picks the format from the
 * extension (.pth/.pt/.bin, .safetensors, .ckpt). A .ckpt gets the metadata
 * format=deepc-checkpoint. .pth files hold the tensors and the "_metadata" entry only. */
DC_API int dc_weights_save(const dc_weights *w, const char *path, dc_weights_format fmt);
DC_API dc_weights_format dc_weights_get_format(const dc_weights *w);
DC_API const char *dc_weights_format_name(dc_weights_format f); /* "pth", "safetensors", ... */

DC_API int dc_weights_count(const dc_weights *w);
DC_API int dc_weights_find(const dc_weights *w, const char *name); /* index or -1 */
DC_API const char *dc_weights_name(const dc_weights *w, int i);
/* PyTorch's dtype name ("float32", "int16", "complex64", "float8_e4m3fn"). */
DC_API const char *dc_weights_dtype_name(const dc_weights *w, int i);
DC_API dc_shape dc_weights_shape(const dc_weights *w, int i);
/* The raw bytes (little-endian, row-major, numel * element size). */
DC_API const void *dc_weights_data(const dc_weights *w, int i, size_t *nbytes);
/* CRC-32 (zlib's, as Python's zlib.crc32) of those bytes. */
DC_API uint32_t dc_weights_crc32(const dc_weights *w, int i);
/* A new cpu tensor (caller's scope) with entry i's values: int8/int16/uint16 become int32 and
 * uint32/uint64 int64; complex and float8 entries are errors naming the key. */
DC_API dc_tensor *dc_weights_tensor(const dc_weights *w, int i);
/* Appends (or replaces) an entry holding a copy of t's values (t on any device). */
DC_API int dc_weights_add(dc_weights *w, const char *name, dc_tensor *t);

DC_API int dc_weights_meta_count(const dc_weights *w);
DC_API const char *dc_weights_meta_key(const dc_weights *w, int i);
DC_API const char *dc_weights_meta_value(const dc_weights *w, int i);
DC_API const char *dc_weights_meta(const dc_weights *w, const char *key); /* NULL if absent */
DC_API int dc_weights_set_meta(dc_weights *w, const char *key, const char *value);

/* A new list of the entries whose name starts with prefix (NULL/"": all), the prefix replaced
 * by new_prefix (NULL: removed); metadata is copied. NULL + error when nothing matches. */
DC_API dc_weights *dc_weights_select(const dc_weights *w, const char *prefix,
                                     const char *new_prefix);
/* A state dict of the entries under prefix (prefix removed), as tensors (dc_weights_tensor). */
DC_API dc_state_dict *dc_weights_state_dict(const dc_weights *w, const char *prefix);
/* The state dict's tensors (copies), names prefixed with prefix (NULL: none). */
DC_API dc_weights *dc_weights_from_state_dict(const dc_state_dict *sd, const char *prefix);

/* Shortcuts for state dicts. dc_pth_save writes what torch.load + load_state_dict read. */
DC_API dc_state_dict *dc_pth_load(const char *path);
DC_API int dc_pth_save(const dc_state_dict *sd, const char *path);
DC_API dc_state_dict *dc_safetensors_load(const char *path);
DC_API int dc_safetensors_save(const dc_state_dict *sd, const char *path);

#ifdef __cplusplus
}
#endif
#endif
