/* The one zip codec (zip-impl.h): reading through libzip from memory, for .npz datasets and .pth
 * weight files (consistency checks on, each entry's record checked against the file's length
 * before its bytes are read, every entry read to exactly its recorded size and its CRC-32
 * compared), and a small writer of stored entries whose data starts on 64-byte boundaries
 * (torch.save's layout: an "FB" padding extra field), with ZIP64 records when needed. */
#include "zip-impl.h"

#include <errno.h>
#include <string.h>
#include <zip.h>
#include <zlib.h>

/* ======================= reading ======================= */
#define ZIP_DEFLATE_MAX_RATIO 1032u /* deflate never expands a byte beyond 1032:1 */

struct dc__zipr {
  zip_t *za;
  int64_t n;
  size_t file_size;
  const char *what;
};

/* What libzip's refusal of an archive means, naming the part of the file at fault. */
static const char *zip_refusal(zip_error_t *ze) {
  switch (zip_error_code_zip(ze)) {
  case ZIP_ER_NOZIP:
    return "no end-of-central-directory record in the last 64 KiB (truncated, or not a zip "
           "archive)";
  case ZIP_ER_INCONS:
    return "the central directory disagrees with the entries' local headers (entries that "
           "overlap, lie past the end or claim other sizes)";
  case ZIP_ER_EXISTS:
    return "two entries of the central directory have the same name";
  case ZIP_ER_SEEK:
  case ZIP_ER_READ:
  case ZIP_ER_EOF:
    return "the central directory points past the end of the file (truncated)";
  default:
    return zip_error_strerror(ze);
  }
}

dc__zipr *dc__zipr_open(const uint8_t *mem, size_t n, const char *what, const char *kind) {
  dc__zipr *z = dc__calloc(1, sizeof *z);
  if (!z) return NULL;
  z->what = what;
  z->file_size = n;
  zip_error_t ze;
  zip_error_init(&ze);
  zip_source_t *src = zip_source_buffer_create(mem, n, 0, &ze);
  z->za = src ? zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze) : NULL;
  if (!z->za) {
    dc__err(DC_ERR_FORMAT, "%s: not a readable %s archive: zip directory: %s", what, kind,
            zip_refusal(&ze));
    if (src) zip_source_free(src);
    zip_error_fini(&ze);
    dc__free(z);
    return NULL;
  }
  zip_error_fini(&ze);
  zip_int64_t cnt = zip_get_num_entries(z->za, 0);
  z->n = cnt < 0 ? 0 : cnt;
  return z;
}

void dc__zipr_close(dc__zipr *z) {
  if (!z) return;
  if (z->za) zip_discard(z->za);
  dc__free(z);
}

int64_t dc__zipr_count(const dc__zipr *z) { return z->n; }

const char *dc__zipr_name(const dc__zipr *z, int64_t i) {
  const char *nm = zip_get_name(z->za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
  return nm ? nm : "";
}

int64_t dc__zipr_find(const dc__zipr *z, const char *name) {
  zip_int64_t i = zip_name_locate(z->za, name, ZIP_FL_ENC_RAW);
  return i < 0 ? -1 : i;
}

bool dc__zip_name_safe(const char *nm) {
  if (!*nm || nm[0] == '/' || strchr(nm, '\\')) return false;
  for (const char *p = nm; *p;) { /* no empty, "." or ".." component */
    const char *e = strchr(p, '/');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if ((len == 0 && e) || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
      return false;
    p += len + (e ? 1 : 0);
  }
  return true;
}

int dc__zipr_entry(const dc__zipr *z, int64_t i, dc__zip_entry *e) {
  zip_stat_t st;
  zip_stat_init(&st);
  const zip_uint64_t need =
      ZIP_STAT_NAME | ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD;
  if (i < 0 || i >= z->n || zip_stat_index(z->za, (zip_uint64_t)i, ZIP_FL_ENC_RAW, &st) != 0 ||
      (st.valid & need) != need)
    return dc__errs(DC_ERR_FORMAT, "%s: zip entry %lld: unreadable directory record (%s)", z->what,
                    (long long)i, zip_strerror(z->za));
  *e = (dc__zip_entry){
      .name = st.name, .size = st.size, .comp_size = st.comp_size, .method = st.comp_method};
  if (st.comp_method != ZIP_CM_STORE && st.comp_method != ZIP_CM_DEFLATE)
    return dc__errs(DC_ERR_UNSUPPORTED,
                    "%s: entry %s: compression method %d; deepc reads stored or deflated "
                    "entries (np.savez / savez_compressed, torch.save)",
                    z->what, st.name, (int)st.comp_method);
  uint64_t cap =
      st.comp_method == ZIP_CM_STORE ? st.comp_size : st.comp_size * ZIP_DEFLATE_MAX_RATIO + 1024u;
  if (st.size > cap || st.comp_size > z->file_size)
    return dc__errs(DC_ERR_FORMAT,
                    "%s: entry %s: size field declares %llu bytes from %llu compressed in a "
                    "%zu-byte file: impossible (corrupt or malicious archive)",
                    z->what, st.name, (unsigned long long)st.size, (unsigned long long)st.comp_size,
                    z->file_size);
  return DC_OK;
}

/* Reads exactly size bytes of an open entry, and makes sure nothing follows them. */
static int read_all(dc__zipr *z, zip_file_t *zf, const char *name, uint8_t *buf, uint64_t size) {
  uint64_t got = 0;
  while (got < size) {
    zip_uint64_t chunk = size - got > ((uint64_t)1 << 30) ? (uint64_t)1 << 30 : size - got;
    zip_int64_t r = zip_fread(zf, buf + got, chunk);
    if (r <= 0)
      return dc__errs(DC_ERR_FORMAT,
                      "%s: entry %s: %s after %llu of %llu bytes (truncated or corrupt "
                      "archive)",
                      z->what, name, r < 0 ? zip_file_strerror(zf) : "end of data",
                      (unsigned long long)got, (unsigned long long)size);
    got += (uint64_t)r;
  }
  uint8_t extra;
  if (zip_fread(zf, &extra, 1) != 0)
    return dc__errs(DC_ERR_FORMAT, "%s: entry %s: more data than its size field (%llu bytes)",
                    z->what, name, (unsigned long long)size);
  return DC_OK;
}

int dc__zipr_read(dc__zipr *z, int64_t i, uint8_t *buf, uint64_t size) {
  dc__zip_entry e;
  int rc = dc__zipr_entry(z, i, &e);
  if (rc != DC_OK) return rc;
  if (e.size != size)
    return dc__errs(DC_ERR_FORMAT, "%s: entry %s: size disagrees with its record", z->what, e.name);
  zip_file_t *zf = zip_fopen_index(z->za, (zip_uint64_t)i, 0);
  if (!zf)
    return dc__errs(DC_ERR_FORMAT, "%s: entry %s cannot be read: %s", z->what, e.name,
                    zip_strerror(z->za));
  rc = read_all(z, zf, e.name, buf, size);
  zip_fclose(zf);
  if (rc != DC_OK) return rc;
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(z->za, (zip_uint64_t)i, 0, &st) == 0 && (st.valid & ZIP_STAT_CRC)) {
    uint32_t crc = size ? (uint32_t)crc32_z(0, buf, (size_t)size) : 0;
    if (crc != st.crc)
      return dc__errs(DC_ERR_FORMAT,
                      "%s: entry %s: CRC-32 mismatch (recorded %08x, data %08x): the file is "
                      "corrupt",
                      z->what, e.name, (unsigned)st.crc, (unsigned)crc);
  }
  return DC_OK;
}

/* ======================= writing ======================= */
#define ZIP_LOCAL_SIG 0x04034b50u
#define ZIP_CENTRAL_SIG 0x02014b50u
#define ZIP_END_SIG 0x06054b50u
#define ZIP64_END_SIG 0x06064b50u
#define ZIP64_LOCATOR_SIG 0x07064b50u
#define ZIP_DOS_DATE 0x21 /* 1980-01-01: reproducible files */
#define ZIP_ALIGN 64

typedef struct zbuf {
  uint8_t b[256];
  size_t n;
} zbuf;

static void le(zbuf *z, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) z->b[z->n++] = (uint8_t)(v >> (8 * i));
}

static int put(dc__zipw *w, const void *p, size_t n) {
  if (n && fwrite(p, 1, n, w->f) != n)
    return dc__errs(DC_ERR_IO, "%s: write failed (%s)", w->what, strerror(errno));
  w->pos += n;
  return DC_OK;
}

static bool needs64(const dc__zipw *w, uint64_t v) { return w->force_zip64 || v >= 0xFFFFFFFFu; }

int dc__zipw_add(dc__zipw *w, const char *name, const void *data, uint64_t n) {
  size_t nl = strlen(name);
  if (nl > 200) return dc__errs(DC_ERR_ARG, "%s: zip entry name too long", w->what);
  if (w->n == w->cap) {
    int cap = w->cap ? 2 * w->cap : 64;
    dc__zipw_entry *e = dc__realloc(w->ents, sizeof *e * (size_t)w->cap, sizeof *e * (size_t)cap);
    if (!e) return DC_ERR_NOMEM;
    w->ents = e;
    w->cap = cap;
  }
  char *nm = dc__strdup(name);
  if (!nm) return DC_ERR_NOMEM;
  uint32_t crc = n ? (uint32_t)crc32_z(0, data, (size_t)n) : 0;
  bool z64 = needs64(w, n) || needs64(w, w->pos);
  w->ents[w->n++] = (dc__zipw_entry){.name = nm, .offset = w->pos, .size = n, .crc = crc};
  size_t x64 = z64 ? 20 : 0; /* ZIP64 extra: id, size, uncompressed, compressed */
  size_t pad = (ZIP_ALIGN - (size_t)((w->pos + 30 + nl + x64 + 4) % ZIP_ALIGN)) % ZIP_ALIGN;
  zbuf h = {.n = 0};
  le(&h, ZIP_LOCAL_SIG, 4);
  le(&h, z64 ? 45 : 20, 2); /* version needed */
  le(&h, 0, 2);             /* flags */
  le(&h, 0, 2);             /* stored */
  le(&h, 0, 2);             /* time */
  le(&h, ZIP_DOS_DATE, 2);
  le(&h, crc, 4);
  le(&h, z64 ? 0xFFFFFFFFu : n, 4);
  le(&h, z64 ? 0xFFFFFFFFu : n, 4);
  le(&h, nl, 2);
  le(&h, x64 + 4 + pad, 2);
  int rc = put(w, h.b, h.n);
  if (rc == DC_OK) rc = put(w, name, nl);
  h.n = 0;
  if (z64) {
    le(&h, 0x0001, 2);
    le(&h, 16, 2);
    le(&h, n, 8);
    le(&h, n, 8);
  }
  le(&h, 0x4246, 2); /* "FB": torch.save's padding field */
  le(&h, pad, 2);
  for (size_t i = 0; i < pad; i++) h.b[h.n++] = 'Z';
  if (rc == DC_OK) rc = put(w, h.b, h.n);
  if (rc == DC_OK) rc = put(w, data, (size_t)n);
  return rc;
}

static void free_entries(dc__zipw *w) {
  for (int i = 0; i < w->n; i++) dc__free(w->ents[i].name);
  dc__free(w->ents);
  w->ents = NULL;
  w->n = w->cap = 0;
}

void dc__zipw_discard(dc__zipw *w) { free_entries(w); }

int dc__zipw_finish(dc__zipw *w) {
  uint64_t cd_start = w->pos;
  int rc = DC_OK;
  for (int i = 0; i < w->n && rc == DC_OK; i++) {
    const dc__zipw_entry *e = &w->ents[i];
    bool z64 = needs64(w, e->size) || needs64(w, e->offset);
    size_t nl = strlen(e->name);
    zbuf h = {.n = 0};
    le(&h, ZIP_CENTRAL_SIG, 4);
    le(&h, z64 ? 45 : 20, 2); /* made by */
    le(&h, z64 ? 45 : 20, 2); /* needed */
    le(&h, 0, 2);
    le(&h, 0, 2);
    le(&h, 0, 2);
    le(&h, ZIP_DOS_DATE, 2);
    le(&h, e->crc, 4);
    le(&h, z64 ? 0xFFFFFFFFu : e->size, 4);
    le(&h, z64 ? 0xFFFFFFFFu : e->size, 4);
    le(&h, nl, 2);
    le(&h, z64 ? 28 : 0, 2); /* extra */
    le(&h, 0, 2);            /* comment */
    le(&h, 0, 2);            /* disk */
    le(&h, 0, 2);            /* internal attributes */
    le(&h, 0, 4);            /* external attributes */
    le(&h, z64 ? 0xFFFFFFFFu : e->offset, 4);
    rc = put(w, h.b, h.n);
    if (rc == DC_OK) rc = put(w, e->name, nl);
    if (rc == DC_OK && z64) {
      h.n = 0;
      le(&h, 0x0001, 2);
      le(&h, 24, 2);
      le(&h, e->size, 8);
      le(&h, e->size, 8);
      le(&h, e->offset, 8);
      rc = put(w, h.b, h.n);
    }
  }
  uint64_t cd_size = w->pos - cd_start, count = (uint64_t)w->n;
  bool z64 = needs64(w, cd_start) || needs64(w, cd_size) || count >= 0xFFFF;
  zbuf h = {.n = 0};
  if (rc == DC_OK && z64) {
    uint64_t end64 = w->pos;
    le(&h, ZIP64_END_SIG, 4);
    le(&h, 44, 8); /* size of the rest of this record */
    le(&h, 45, 2);
    le(&h, 45, 2);
    le(&h, 0, 4);
    le(&h, 0, 4);
    le(&h, count, 8);
    le(&h, count, 8);
    le(&h, cd_size, 8);
    le(&h, cd_start, 8);
    le(&h, ZIP64_LOCATOR_SIG, 4);
    le(&h, 0, 4);
    le(&h, end64, 8);
    le(&h, 1, 4);
  }
  le(&h, ZIP_END_SIG, 4);
  le(&h, 0, 2);
  le(&h, 0, 2);
  le(&h, z64 ? 0xFFFF : count, 2);
  le(&h, z64 ? 0xFFFF : count, 2);
  le(&h, z64 ? 0xFFFFFFFFu : cd_size, 4);
  le(&h, z64 ? 0xFFFFFFFFu : cd_start, 4);
  le(&h, 0, 2); /* comment */
  if (rc == DC_OK) rc = put(w, h.b, h.n);
  free_entries(w);
  return rc;
}
