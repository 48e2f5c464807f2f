/* Internals of the data layer shared by the src/data files: the sample in flight, the dataset
 * object and its table of functions, the per-sample generator, bounded file reading (plain or
 * gzip), image decoders, resampling kernels and checksums. Letters: N samples, H/W height/width, C
 * channels, F features. Symbols carry the dc__ prefix and are not installed. */
#ifndef DC_DATA_IMPL_H
#define DC_DATA_IMPL_H

#include "../core/core-impl.h"

#include <deepc/data.h>

#include <stdbool.h>
#include <stdint.h>

/* ---- growable n-d buffer (reused from sample to sample, so steady state allocates nothing) */
typedef struct dc__arr {
  dc_dtype dtype;
  int ndim;
  int64_t shape[DC_MAX_DIMS];
  void *data; /* dc__malloc'ed, cap bytes */
  size_t cap;
} dc__arr;
bool dc__arr_reserve(dc__arr *a, size_t nbytes); /* keeps nothing: contents undefined after */
int64_t dc__arr_numel(const dc__arr *a);
size_t dc__arr_nbytes(const dc__arr *a);
void dc__arr_free(dc__arr *a);
void dc__arr_swap(dc__arr *a, dc__arr *b);

/* One sample on its way through the transforms. */
typedef struct dc__sample {
  dc__arr x; /* hwc: [H, W, C] uint8 (a PIL-like image); else float [..., C, H, W] or [F] */
  bool hwc;
  bool has_y;
  dc__arr y;   /* target: [] int64 for a class, else a row of the targets tensor */
  dc__arr tmp; /* scratch the transforms write into (then swap with x) */
  dc__arr aux; /* second scratch (separable resampling, file bytes) */
} dc__sample;
void dc__sample_free(dc__sample *s);

/* ---- per-sample generator: Philox keyed by a 64-bit seed, a counter per draw */
typedef struct dc__rng {
  uint64_t key, ctr;
} dc__rng;
double dc__rng_uniform(dc__rng *r);                          /* [0, 1), 53 bits */
int64_t dc__rng_randint(dc__rng *r, int64_t lo, int64_t hi); /* [lo, hi) */
/* A seed for (stream, index) derived from a base seed: independent streams per epoch/sample. */
uint64_t dc__mix_seed(uint64_t seed, uint64_t stream, uint64_t index);
/* Fisher-Yates permutation of 0..n-1 into perm from a seed. */
void dc__permutation(int64_t *perm, int64_t n, uint64_t seed);

/* ---- datasets */
typedef struct dc__dataset_vt {
  /* raw sample i into s (x, hwc, has_y, y); i is in range; seed for sets that wrap others */
  int (*get)(const dc_dataset *ds, int64_t i, dc__sample *s, uint64_t seed);
  /* class of sample i without decoding; NULL when the set has none */
  int64_t (*label)(const dc_dataset *ds, int64_t i);
  void (*destroy)(dc_dataset *ds); /* frees impl */
} dc__dataset_vt;

struct dc_dataset {
  const dc__dataset_vt *vt;
  int32_t refcount;
  int64_t n;        /* samples */
  char format[32];  /* "MNIST", "CIFAR-10", "ImageFolder", ... */
  char *path;       /* file or folder ("" for in-memory sets) */
  int64_t nclasses; /* 0: none */
  char **classes;   /* [nclasses] names, or NULL */
  int64_t skipped;  /* files passed over while scanning */
  dc_transform *tf; /* owned; applied after the parent's (subsets) */
  void *impl;
};
dc_dataset *dc__dataset_new(const dc__dataset_vt *vt, const char *format, const char *path,
                            int64_t n, void *impl);
dc_dataset *dc__dataset_retain(dc_dataset *ds);
/* Copies names (NULL: "0", "1", ...). */
int dc__dataset_set_classes(dc_dataset *ds, int64_t n, const char *const *names);
/* Sample i of ds with ds's transforms, seeded by seed. */
int dc__dataset_fetch(const dc_dataset *ds, int64_t i, dc__sample *s, uint64_t seed);
/* Dataset over contiguous tensors x [N, ...] and y [N, ...] (or NULL); keeps references. hwc:
 * x is uint8 [N, H, W] or [N, H, W, C] images. y int64 [N] gives class labels. */
dc_dataset *dc__array_dataset(dc_tensor *x, dc_tensor *y, bool hwc, const char *format,
                              const char *path);
/* The first sample dimension (1..ndim-1) of t [N, ...] that is 0, or 0 when there is none. */
int dc__empty_sample_dim(const dc_tensor *t);
/* DC_OK, or an error naming path and field ("array 'x'") when t's samples are empty. */
int dc__refuse_empty_samples(const dc_tensor *t, const char *path, const char *field);
/* IDX images or features [N, ...]: an error naming the header field of a 0 sample dimension. */
int dc__idx_refuse_empty_samples(const dc_tensor *t, const char *path);
/* Picks features and targets from a pickle/npz-like set of named arrays (see dc_npz_dataset). */
dc_dataset *dc__xy_dataset(dc_tensor *x, dc_tensor *y, const char *format, const char *path);

/* ---- transforms (transform.c) */
int dc__tf_apply(const dc_transform *tf, dc__sample *s, dc__rng *rng);

/* ---- files */
/* Reads a whole file (at most max bytes) into a dc__malloc'ed buffer; an error names the file. */
int dc__read_file(const char *path, size_t max, uint8_t **buf, size_t *n);
/* Same into a reusable buffer. */
int dc__read_file_arr(const char *path, size_t max, dc__arr *buf, size_t *n);
/* dc__is_dir, dc__is_file, dc__file_size, dc__mkdirs: src/core/fs.c (core-impl.h) */
char *dc__path_join(const char *a, const char *b); /* dc__malloc'ed */
const char *dc__path_ext(const char *path);        /* ".gz" or "" */
bool dc__ends_with_ci(const char *s, const char *suffix);
/* Most names read from a file that deepc will keep (class names, keys). */
#define DC__MAX_NAME 4096

/* A byte stream over memory, transparently gunzipping when the data starts with the gzip
 * magic. Reads report corrupt or truncated compressed data as errors naming `what`. */
typedef struct dc__src {
  const uint8_t *mem;
  size_t n, pos; /* compressed input and read position */
  bool gz;
  uint64_t out_pos; /* bytes delivered so far (offset in the decompressed stream) */
  void *z;          /* z_stream when gz */
  const char *what; /* file name for messages */
} dc__src;
int dc__src_open(dc__src *s, const uint8_t *mem, size_t n, const char *what);
/* Reads up to k bytes; *got < k only at the end of the stream. */
int dc__src_read(dc__src *s, void *buf, size_t k, size_t *got);
/* Upper bound on what the stream can decompress to (n for plain data, deflate's 1032:1 bound
 * otherwise); declared sizes above it are refused before allocating. */
uint64_t dc__src_max_size(const dc__src *s);
void dc__src_close(dc__src *s);
/* Gunzips a file to another (for `deepc data fetch`). */
int dc__gunzip_file(const char *src, const char *dst);
/* Extracts a .tar.gz (or .tar) into dir: regular files and folders only, no absolute paths or
 * "..". Returns the number of files through *nfiles (may be NULL). */
int dc__untar(const char *archive, const char *dir, int64_t *nfiles);

/* ---- dataset files (idx.c) */
extern const char *const dc__mnist_classes[10];   /* "0 - zero", ... (torchvision's) */
extern const char *const dc__fashion_classes[10]; /* "T-shirt/top", ... */
/* IDX bytes (plain or gzip) into a new tensor (caller's scope); `what` names them in errors. */
dc_tensor *dc__idx_parse(const uint8_t *mem, size_t n, const char *what);
/* Finds train-/t10k- images and labels IDX files (plain or .gz) in dir: 1 both found
 * (dc__malloc'ed paths), 0 not both, -1 out of memory (error set). */
int dc__idx_find_pair(const char *dir, bool train, char **images, char **labels);
/* Candidate folders for a dataset name in search order ($DEEPC_DATA/name,
 * $DEEPC_DATA/torch_name/raw, data/name, the project's data/name); returns the count. */
int dc__data_search_dirs(const char *name, const char *torch_name, char dirs[][1024], int max);
/* One CIFAR batch file (CIFAR-10 or -100 from its name and record size). */
dc_dataset *dc__cifar_file(const char *path);

/* Path of sample i of an ImageFolder dataset (NULL for other sets). */
const char *dc__image_folder_file(const dc_dataset *ds, int64_t i);

/* ---- NumPy (npy.c) */
/* An element type from a dtype string such as "<f4", "|u1", ">i8". */
typedef struct dc__npy_type {
  dc_dtype dt; /* deepc dtype the data becomes (int8/16 and uint16 widen to int32, uint32/64 to
                  int64) */
  int fsize;   /* element size in the file */
  char kind;   /* 'f', 'i', 'u', 'b' */
  bool swap;   /* big-endian data */
} dc__npy_type;
bool dc__npy_type_parse(const char *descr, dc__npy_type *t);
/* A tensor (caller's scope) from numel(shape) raw elements, C or Fortran order. */
dc_tensor *dc__npy_make(const dc__npy_type *t, dc_shape shape, bool fortran, const uint8_t *raw);
dc_tensor *dc__npy_parse(const uint8_t *mem, size_t n, const char *what);
dc_npz *dc__npz_parse(const uint8_t *mem, size_t n, const char *what);
/* Indices of the features / targets among n names (xk/yk given, or the usual pairs). */
int dc__pick_xy(int n, char *const *names, const char *xk, const char *yk, int *xi, int *yi);

/* ---- images (image.c) */
/* Decodes JPEG, PNG or binary PPM/PGM bytes into out = uint8 [H, W, C], C = 1 (gray) or 3.
 * The size is checked against max_pixels before any pixel buffer is allocated. */
int dc__image_decode(const uint8_t *buf, size_t n, bool gray, int64_t max_pixels, dc__arr *out,
                     const char *what);
/* Type from the first bytes: "JPEG", "PNG", "PNM" or NULL. */
const char *dc__image_kind(const uint8_t *buf, size_t n);
/* PIL's L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16 over npix pixels (in may equal out). */
void dc__rgb_to_l_u8(const uint8_t *rgb, uint8_t *l, int64_t npix);

/* ---- resampling (resample.c). Images are planes: uint8 interleaved [H, W, C] or float planar
 * [P, H, W] (P planes). */
/* PIL's bilinear resample (antialiased when shrinking, 22-bit fixed point): exact PIL output.
 * win = {y, x, h, w} computes only that window of the oh x ow result (NULL: all of it); the
 * pixels are the same as cropping the full result. out holds win's h x w x c bytes. */
int dc__resize_pil_u8(const uint8_t *in, int64_t h, int64_t w, int64_t c, uint8_t *out, int64_t oh,
                      int64_t ow, const int64_t *win, dc__arr *tmp);
/* torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=aa). */
int dc__resize_f32(const float *in, int64_t p, int64_t h, int64_t w, float *out, int64_t oh,
                   int64_t ow, bool aa, dc__arr *tmp);

/* ---- checksums (hash.c) */
void dc__md5(const void *data, size_t n, uint8_t out[16]);
void dc__sha256(const void *data, size_t n, uint8_t out[32]);
/* Hex digest of a file: md5 (32 chars) or sha256 (64 chars) into hex (>= 65 bytes). */
int dc__file_digest(const char *path, bool sha256, char *hex);

/* ---- download (fetch.c): url into dest (written to dest.part, renamed when the checksum
 * matches). md5 may be NULL (no check). */
int dc__download(const char *url, const char *dest, const char *md5, FILE *progress);
/* Checks dest's MD5; a mismatch is an error naming both digests. */
int dc__check_md5(const char *path, const char *md5);

#endif
