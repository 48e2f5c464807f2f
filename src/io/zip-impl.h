/* The one zip codec of deepc (zip.c): reading any archive through libzip (.npz datasets in
 * src/data, .pth weight files in src/io) with every entry checked before its bytes are trusted,
 * and writing torch.save's layout (stored entries, 64-byte-aligned data). Not installed. */
#ifndef DC_IO_ZIP_IMPL_H
#define DC_IO_ZIP_IMPL_H

#include "../core/core-impl.h"

#include <stdio.h>

/* ---- reading ----
 * dc__zipr_open opens an archive held in memory (not copied: mem must outlive the reader) with
 * libzip's consistency checks on (ZIP_CHECKCONS: the central directory must agree with every
 * local header, no entries overlapping or past the end) and read-only (ZIP_RDONLY). Every
 * message names `what` (the file), the entry and the field at fault. */
typedef struct dc__zipr dc__zipr;
typedef enum dc__zip_method { DC__ZIP_STORED = 0, DC__ZIP_DEFLATED = 8 } dc__zip_method;
typedef struct dc__zip_entry {
  const char *name;   /* as recorded (raw bytes), valid while the reader is open */
  uint64_t size;      /* uncompressed bytes */
  uint64_t comp_size; /* bytes in the archive */
  int method;         /* a dc__zip_method */
} dc__zip_entry;

/* kind names the format in a refusal: "not a readable <kind> archive" (".npz (zip)"). */
dc__zipr *dc__zipr_open(const uint8_t *mem, size_t n, const char *what, const char *kind);
void dc__zipr_close(dc__zipr *z);
int64_t dc__zipr_count(const dc__zipr *z);
const char *dc__zipr_name(const dc__zipr *z, int64_t i);    /* "" when unreadable */
int64_t dc__zipr_find(const dc__zipr *z, const char *name); /* -1 when absent */
/* Entry i's record, checked: stored or deflated, and sizes a file of this length can hold
 * (stored: size == comp_size; deflated: at most deflate's 1032:1; comp_size within the file).
 * DC_OK, or DC_ERR_FORMAT / DC_ERR_UNSUPPORTED naming the file, the entry and the field. */
int dc__zipr_entry(const dc__zipr *z, int64_t i, dc__zip_entry *e);
/* Reads entry i (exactly its size bytes, which the caller passes back) into buf, comparing the
 * CRC-32 of what was read with the recorded one. */
int dc__zipr_read(dc__zipr *z, int64_t i, uint8_t *buf, uint64_t size);
/* False for a name that could point outside the archive's folder when extracted: empty,
 * absolute, a backslash, or an empty, "." or ".." path component. */
bool dc__zip_name_safe(const char *name);

/* ---- writing: stored (uncompressed) entries, data aligned to 64 bytes as torch.save does ---- */
typedef struct dc__zipw_entry {
  char *name;
  uint64_t offset, size; /* local header offset, data bytes */
  uint32_t crc;
} dc__zipw_entry;
typedef struct dc__zipw {
  FILE *f;
  uint64_t pos;
  int n, cap;
  dc__zipw_entry *ents;
  bool force_zip64; /* write ZIP64 records even when not needed (tests) */
  const char *what;
} dc__zipw;
int dc__zipw_add(dc__zipw *w, const char *name, const void *data, uint64_t n);
/* Writes the central directory; frees the entry list either way. */
int dc__zipw_finish(dc__zipw *w);
void dc__zipw_discard(dc__zipw *w);

#endif
