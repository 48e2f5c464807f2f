/* Bounded file access for the readers: whole-file reads with a size cap, a byte stream that
 * gunzips transparently (zlib), path helpers, and the gunzip / tar extraction used by
 * `deepc data fetch`. Everything reports the file name and offset of what it rejects. */
#include "data-impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>

#ifdef DC_HAVE_ZLIB
#include <zlib.h>
#endif

/* ---- growable buffers ---- */

bool dc__arr_reserve(dc__arr *a, size_t nbytes) {
  if (nbytes <= a->cap && a->data) return true;
  size_t cap = a->cap ? a->cap : 256;
  while (cap < nbytes) cap = cap > SIZE_MAX / 2 ? nbytes : cap * 2;
  void *p = dc__malloc(cap);
  if (!p) return false;
  dc__free(a->data);
  a->data = p;
  a->cap = cap;
  return true;
}

int64_t dc__arr_numel(const dc__arr *a) {
  int64_t n = 1;
  for (int d = 0; d < a->ndim; d++) n *= a->shape[d];
  return n;
}

size_t dc__arr_nbytes(const dc__arr *a) {
  return (size_t)dc__arr_numel(a) * dc_dtype_size(a->dtype);
}

void dc__arr_free(dc__arr *a) {
  dc__free(a->data);
  a->data = NULL;
  a->cap = 0;
}

void dc__arr_swap(dc__arr *a, dc__arr *b) {
  dc__arr t = *a;
  *a = *b;
  *b = t;
}

void dc__sample_free(dc__sample *s) {
  dc__arr_free(&s->x);
  dc__arr_free(&s->y);
  dc__arr_free(&s->tmp);
  dc__arr_free(&s->aux);
}

/* ---- files and paths ---- */

char *dc__path_join(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  bool slash = na > 0 && a[na - 1] != '/';
  char *p = dc__malloc(na + nb + 2);
  if (!p) return NULL;
  memcpy(p, a, na);
  if (slash) p[na++] = '/';
  memcpy(p + na, b, nb + 1);
  return p;
}

const char *dc__path_ext(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(slash ? slash : path, '.');
  return dot && dot != (slash ? slash + 1 : path) ? dot : "";
}

bool dc__ends_with_ci(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static int read_open(const char *path, size_t max, FILE **f, size_t *size) {
  *f = fopen(path, "rb");
  if (!*f) return dc__errs(DC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(*f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(*f);
    return dc__errs(DC_ERR_IO, "%s: not a regular file", path);
  }
  if ((uint64_t)st.st_size > (uint64_t)max) {
    fclose(*f);
    return dc__errs(DC_ERR_FORMAT,
                    "%s: the file is %lld bytes, more than the %zu bytes this "
                    "reader accepts",
                    path, (long long)st.st_size, max);
  }
  *size = (size_t)st.st_size;
  return DC_OK;
}

static int read_all(FILE *f, const char *path, void *buf, size_t size) {
  size_t got = size ? fread(buf, 1, size, f) : 0;
  if (got != size)
    return dc__errs(DC_ERR_IO, "%s: read %zu of %zu bytes (%s)", path, got, size,
                    ferror(f) ? strerror(errno) : "file shrank while reading");
  return DC_OK;
}

int dc__read_file(const char *path, size_t max, uint8_t **buf, size_t *n) {
  FILE *f;
  size_t size = 0;
  *buf = NULL;
  *n = 0;
  int rc = read_open(path, max, &f, &size);
  if (rc) return rc;
  uint8_t *b = dc__malloc(size ? size : 1);
  if (!b) {
    fclose(f);
    return DC_ERR_NOMEM;
  }
  rc = read_all(f, path, b, size);
  fclose(f);
  if (rc) {
    dc__free(b);
    return rc;
  }
  *buf = b;
  *n = size;
  return DC_OK;
}

int dc__read_file_arr(const char *path, size_t max, dc__arr *buf, size_t *n) {
  FILE *f;
  size_t size = 0;
  *n = 0;
  int rc = read_open(path, max, &f, &size);
  if (rc) return rc;
  if (!dc__arr_reserve(buf, size ? size : 1)) {
    fclose(f);
    return DC_ERR_NOMEM;
  }
  rc = read_all(f, path, buf->data, size);
  fclose(f);
  if (!rc) *n = size;
  return rc;
}

/* ---- byte stream, gunzipping when the data is gzip ---- */

int dc__src_open(dc__src *s, const uint8_t *mem, size_t n, const char *what) {
  memset(s, 0, sizeof *s);
  s->mem = mem;
  s->n = n;
  s->what = what;
  if (n < 2 || mem[0] != 0x1f || mem[1] != 0x8b) return DC_OK;
#ifdef DC_HAVE_ZLIB
  z_stream *z = dc__calloc(1, sizeof *z);
  if (!z) return DC_ERR_NOMEM;
  if (inflateInit2(z, 16 + MAX_WBITS) != Z_OK) {
    dc__free(z);
    return dc__errs(DC_ERR_NOMEM, "%s: cannot start gzip decompression", what);
  }
  s->z = z;
  s->gz = true;
  return DC_OK;
#else
  return dc__errs(DC_ERR_UNSUPPORTED,
                  "%s: gzip-compressed, but deepc was built without zlib; "
                  "gunzip the file first",
                  what);
#endif
}

uint64_t dc__src_max_size(const dc__src *s) {
  /* deflate cannot expand beyond 1032:1; a small constant covers headers of tiny streams */
  return s->gz ? (uint64_t)s->n * 1032u + 1024u : (uint64_t)s->n;
}

int dc__src_read(dc__src *s, void *buf, size_t k, size_t *got) {
  *got = 0;
  if (!s->gz) {
    size_t m = s->n - s->pos < k ? s->n - s->pos : k;
    if (m) memcpy(buf, s->mem + s->pos, m);
    s->pos += m;
    s->out_pos += m;
    *got = m;
    return DC_OK;
  }
#ifdef DC_HAVE_ZLIB
  z_stream *z = s->z;
  uint8_t *out = buf;
  size_t done = 0;
  while (done < k && s->z) {
    if (z->avail_in == 0 && s->pos < s->n) {
      size_t chunk = s->n - s->pos < (1u << 30) ? s->n - s->pos : (1u << 30);
      z->next_in = (Bytef *)(uintptr_t)(s->mem + s->pos);
      z->avail_in = (uInt)chunk;
      s->pos += chunk;
    }
    size_t want = k - done < (1u << 30) ? k - done : (1u << 30);
    z->next_out = out + done;
    z->avail_out = (uInt)want;
    int r = inflate(z, Z_NO_FLUSH);
    size_t made = want - z->avail_out;
    done += made;
    s->out_pos += made;
    if (r == Z_STREAM_END) {
      /* another gzip member may follow (concatenated .gz files) */
      const uint8_t *next = z->next_in;
      size_t left = z->avail_in + (s->n - s->pos);
      if (left >= 2 && next[0] == 0x1f && next[1] == 0x8b && inflateReset(z) == Z_OK) continue;
      inflateEnd(z);
      dc__free(z);
      s->z = NULL;
      break;
    }
    if (r == Z_BUF_ERROR && z->avail_in == 0 && s->pos >= s->n)
      return dc__errs(DC_ERR_FORMAT,
                      "%s: the compressed data ends early, after %llu "
                      "decompressed bytes: the file is truncated (download it "
                      "again)",
                      s->what, (unsigned long long)s->out_pos);
    if (r != Z_OK && r != Z_BUF_ERROR)
      return dc__errs(DC_ERR_FORMAT, "%s: corrupt gzip data near decompressed offset %llu (%s)",
                      s->what, (unsigned long long)s->out_pos, z->msg ? z->msg : "zlib error");
  }
  *got = done;
  return DC_OK;
#else
  return dc__errs(DC_ERR_UNSUPPORTED, "%s: built without zlib", s->what);
#endif
}

void dc__src_close(dc__src *s) {
#ifdef DC_HAVE_ZLIB
  if (s->z) {
    inflateEnd(s->z);
    dc__free(s->z);
  }
#endif
  s->z = NULL;
}

/* ---- gunzip and tar (fetch) ---- */

#define DC__ARCHIVE_MAX ((size_t)1 << 34) /* 16 GiB: far above every dataset archive */

/* The decompressed stream into f (a dc__write_atomic fill). */
static int write_stream(FILE *f, const char *tmp, void *ctx) {
  (void)tmp;
  dc__src *src = ctx;
  enum { CHUNK = 1 << 20 };
  uint8_t *buf = dc__malloc(CHUNK);
  int rc = buf ? DC_OK : DC_ERR_NOMEM;
  for (size_t got = CHUNK; rc == DC_OK && got == CHUNK;) {
    rc = dc__src_read(src, buf, CHUNK, &got);
    if (rc == DC_OK && got && fwrite(buf, 1, got, f) != got) rc = DC__WRITE_FAILED;
  }
  dc__free(buf);
  return rc;
}

int dc__gunzip_file(const char *srcpath, const char *dst) {
  uint8_t *mem;
  size_t n;
  int rc = dc__read_file(srcpath, DC__ARCHIVE_MAX, &mem, &n);
  if (rc) return rc;
  dc__src src;
  rc = dc__src_open(&src, mem, n, srcpath);
  if (rc == DC_OK && !src.gz)
    rc = dc__errs(DC_ERR_FORMAT, "%s: not gzip data (no 1f 8b magic at offset 0)", srcpath);
  if (rc == DC_OK) rc = dc__write_atomic(dst, "the unpacked file", write_stream, &src);
  dc__src_close(&src);
  dc__free(mem);
  return rc;
}

/* Octal (or GNU base-256) number field of a tar header. */
static bool tar_number(const uint8_t *p, int len, uint64_t *out) {
  uint64_t v = 0;
  if (p[0] & 0x80) { /* base-256 */
    for (int i = 1; i < len; i++) {
      if (v >> 55) return false;
      v = (v << 8) | p[i];
    }
    *out = v;
    return !(p[0] & 0x40); /* negative sizes are invalid */
  }
  int i = 0;
  while (i < len && (p[i] == ' ' || p[i] == 0)) i++;
  for (; i < len && p[i] >= '0' && p[i] <= '7'; i++) {
    if (v >> 60) return false;
    v = v * 8 + (uint64_t)(p[i] - '0');
  }
  *out = v;
  return true;
}

/* A member name is safe when relative, without ".." components, not empty. */
static bool tar_safe_name(const char *name) {
  if (!name[0] || name[0] == '/') return false;
  const char *p = name;
  while (*p) {
    const char *e = strchr(p, '/');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == 2 && p[0] == '.' && p[1] == '.') return false;
    p += len;
    if (*p == '/') p++;
  }
  return true;
}

static int tar_skip(dc__src *s, uint64_t n, const char *archive) {
  uint8_t buf[4096];
  while (n > 0) {
    size_t want = n < sizeof buf ? (size_t)n : sizeof buf, got;
    int rc = dc__src_read(s, buf, want, &got);
    if (rc) return rc;
    if (got != want)
      return dc__errs(DC_ERR_FORMAT, "%s: archive ends inside a member at offset %llu", archive,
                      (unsigned long long)s->out_pos);
    n -= got;
  }
  return DC_OK;
}

/* mkdir -p of dir/rel */
static int mkdirs_in(const char *dir, const char *rel) {
  char *path = dc__path_join(dir, rel);
  if (!path) return DC_ERR_NOMEM;
  int rc = dc__mkdirs(path);
  dc__free(path);
  return rc;
}

static int tar_extract_file(dc__src *s, const char *dir, const char *name, uint64_t size,
                            const char *archive) {
  char *path = dc__path_join(dir, name);
  if (!path) return DC_ERR_NOMEM;
  int rc = dc__mkdirs_for(path);
  if (rc) {
    dc__free(path);
    return rc;
  }
  FILE *f = fopen(path, "wb");
  if (!f) {
    rc = dc__errs(DC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    dc__free(path);
    return rc;
  }
  uint8_t buf[65536];
  uint64_t left = size;
  while (rc == DC_OK && left > 0) {
    size_t want = left < sizeof buf ? (size_t)left : sizeof buf, got;
    rc = dc__src_read(s, buf, want, &got);
    if (rc == DC_OK && got != want)
      rc = dc__errs(DC_ERR_FORMAT, "%s: archive ends inside member '%s' at offset %llu", archive,
                    name, (unsigned long long)s->out_pos);
    if (rc == DC_OK && fwrite(buf, 1, got, f) != got)
      rc = dc__errs(DC_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    left -= got;
  }
  if (fclose(f) != 0 && rc == DC_OK) rc = dc__errs(DC_ERR_IO, "%s: write failed", path);
  dc__free(path);
  if (rc) return rc;
  return tar_skip(s, (512 - size % 512) % 512, archive);
}

/* Reads a member's data (long names, pax headers) into a NUL-terminated buffer. */
static int tar_read_text(dc__src *s, uint64_t size, char **out, const char *archive) {
  if (size > 65536)
    return dc__errs(DC_ERR_FORMAT,
                    "%s: extended header of %llu bytes at offset %llu is too "
                    "long",
                    archive, (unsigned long long)size, (unsigned long long)s->out_pos);
  char *t = dc__malloc((size_t)size + 1);
  if (!t) return DC_ERR_NOMEM;
  size_t got;
  int rc = dc__src_read(s, t, (size_t)size, &got);
  if (rc == DC_OK && got != size)
    rc = dc__errs(DC_ERR_FORMAT, "%s: archive ends inside an extended header", archive);
  if (rc == DC_OK) rc = tar_skip(s, (512 - size % 512) % 512, archive);
  if (rc) {
    dc__free(t);
    return rc;
  }
  t[size] = '\0';
  *out = t;
  return DC_OK;
}

/* "path=" record of a pax header, or NULL. */
static char *pax_path(const char *pax, uint64_t size) {
  const char *p = pax, *end = pax + size;
  while (p < end) {
    char *e;
    long len = strtol(p, &e, 10);
    if (len <= 0 || e >= end || *e != ' ' || len > end - p) return NULL;
    const char *kv = e + 1, *rec_end = p + len;
    if (rec_end - kv > 5 && strncmp(kv, "path=", 5) == 0) {
      size_t n = (size_t)(rec_end - kv - 5);
      if (n && kv[5 + n - 1] == '\n') n--;
      char *r = dc__malloc(n + 1);
      if (!r) return NULL;
      memcpy(r, kv + 5, n);
      r[n] = '\0';
      return r;
    }
    p = rec_end;
  }
  return NULL;
}

/* The checksum and size fields of the tar header h (at offset at): *size, or a format error. */
static int tar_check_header(const uint8_t *h, uint64_t at, uint64_t max, const char *archive,
                            uint64_t *size) {
  uint64_t sum = 0, want;
  for (int i = 0; i < 512; i++) sum += (i >= 148 && i < 156) ? ' ' : h[i];
  if (!tar_number(h + 148, 8, &want) || want != sum || !tar_number(h + 124, 12, size))
    return dc__errs(DC_ERR_FORMAT,
                    "%s: offset %llu: not a tar header (bad checksum or size "
                    "field); is this a .tar.gz archive?",
                    archive, (unsigned long long)at);
  if (*size > max)
    return dc__errs(DC_ERR_FORMAT,
                    "%s: offset %llu: member size %llu exceeds what the archive "
                    "can hold",
                    archive, (unsigned long long)at, (unsigned long long)*size);
  return DC_OK;
}

/* The member's path: the pending long name (GNU 'L' or pax 'x', taken and freed) or the
 * header's ustar prefix and name; without trailing '/' and leading "./". */
static void tar_member_name(const uint8_t *h, char **long_name, char *name, size_t cap) {
  if (*long_name) {
    snprintf(name, cap, "%s", *long_name);
    dc__free(*long_name);
    *long_name = NULL;
  } else if (memcmp(h + 257, "ustar", 5) == 0 && h[345]) {
    snprintf(name, cap, "%.155s/%.100s", (const char *)h + 345, (const char *)h);
  } else {
    snprintf(name, cap, "%.100s", (const char *)h);
  }
  size_t nl = strlen(name);
  while (nl > 0 && name[nl - 1] == '/') name[--nl] = '\0';
  while (strncmp(name, "./", 2) == 0) memmove(name, name + 2, strlen(name + 2) + 1);
}

/* One member of type type and size bytes: a file written under dir (counted in *files), a
 * folder made, anything else (links, devices, global headers) skipped. */
static int tar_member(dc__src *s, const char *dir, const char *name, char type, uint64_t size,
                      uint64_t at, const char *archive, int64_t *files) {
  bool regular = type == '0' || type == '\0' || type == '7';
  if ((regular || type == '5') && strcmp(name, ".") != 0 && !tar_safe_name(name))
    return dc__errs(DC_ERR_FORMAT,
                    "%s: offset %llu: refusing member '%s' (absolute path or "
                    "'..' would write outside %s)",
                    archive, (unsigned long long)at, name, dir);
  if (regular) {
    (*files)++;
    return tar_extract_file(s, dir, name, size, archive);
  }
  int rc = type == '5' && strcmp(name, ".") != 0 ? mkdirs_in(dir, name) : DC_OK;
  return rc == DC_OK ? tar_skip(s, (size + 511) / 512 * 512, archive) : rc;
}

int dc__untar(const char *archive, const char *dir, int64_t *nfiles) {
  uint8_t *mem;
  size_t n;
  int rc = dc__read_file(archive, DC__ARCHIVE_MAX, &mem, &n);
  if (rc) return rc;
  dc__src s;
  rc = dc__src_open(&s, mem, n, archive);
  int64_t files = 0;
  char *long_name = NULL;
  while (rc == DC_OK) {
    uint8_t h[512];
    size_t got;
    uint64_t at = s.out_pos, size = 0;
    rc = dc__src_read(&s, h, sizeof h, &got);
    if (rc || got == 0) break; /* got == 0: tolerate a missing end-of-archive marker */
    if (got != sizeof h) {
      rc = dc__errs(DC_ERR_FORMAT, "%s: truncated tar header at offset %llu", archive,
                    (unsigned long long)at);
      break;
    }
    bool zero = true;
    for (int i = 0; i < 512 && zero; i++) zero = h[i] == 0;
    if (zero) break;
    if ((rc = tar_check_header(h, at, dc__src_max_size(&s), archive, &size)) != DC_OK) break;
    char type = (char)h[156];
    if (type == 'L' || type == 'x') {
      char *text = NULL;
      if ((rc = tar_read_text(&s, size, &text, archive)) != DC_OK) break;
      dc__free(long_name);
      long_name = type == 'L' ? text : pax_path(text, size);
      if (type == 'x') dc__free(text);
      continue;
    }
    char name[256 + 2];
    tar_member_name(h, &long_name, name, sizeof name);
    rc = tar_member(&s, dir, name, type, size, at, archive, &files);
  }
  dc__free(long_name);
  dc__src_close(&s);
  dc__free(mem);
  if (nfiles) *nfiles = files;
  return rc;
}
