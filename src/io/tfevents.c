/* TensorBoard event files: TFRecord framing with masked CRC32C and hand-encoded Event /
 * Summary protobufs (scalars only), so TensorBoard's reader shows a run's curves without any
 * protobuf library. Field numbers are those of tensorflow/core/util/event.proto and summary.proto.
 */
#include <deepc/io.h>

#include "../core/core-impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct dc_tb_writer {
  FILE *f;
  char path[4096];
};

/* ---- CRC32C (Castagnoli, reflected polynomial 0x82F63B78), byte table ---- */
static uint32_t crc_table[256];
static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    crc_table[i] = c;
  }
}

uint32_t dc_crc32c(const void *data, size_t n) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, crc_init);
  const unsigned char *p = data;
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t dc_crc32c_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

/* ---- protobuf encoding into a small buffer ---- */
typedef struct pbuf {
  unsigned char b[1024];
  size_t n;
  bool overflow;
} pbuf;

static void put(pbuf *p, const void *d, size_t n) {
  if (p->n + n > sizeof p->b) {
    p->overflow = true;
    return;
  }
  memcpy(p->b + p->n, d, n);
  p->n += n;
}
static void put_varint(pbuf *p, uint64_t v) {
  unsigned char t[10];
  size_t n = 0;
  do {
    t[n] = (unsigned char)(v & 0x7F);
    v >>= 7;
    if (v) t[n] |= 0x80;
    n++;
  } while (v);
  put(p, t, n);
}
static void put_tag(pbuf *p, unsigned field, unsigned wire) { put_varint(p, (field << 3) | wire); }
static void put_le(pbuf *p, uint64_t v, int bytes) {
  unsigned char t[8];
  for (int i = 0; i < bytes; i++) t[i] = (unsigned char)(v >> (8 * i));
  put(p, t, (size_t)bytes);
}
static void put_bytes(pbuf *p, unsigned field, const void *d, size_t n) {
  put_tag(p, field, 2);
  put_varint(p, n);
  put(p, d, n);
}

static double wall_time(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + tv.tv_usec * 1e-6;
}

/* Event header: wall_time = 1 (double), step = 2 (int64). */
static void event_head(pbuf *e, int64_t step) {
  double wt = wall_time();
  uint64_t bits;
  memcpy(&bits, &wt, 8);
  put_tag(e, 1, 1);
  put_le(e, bits, 8);
  put_tag(e, 2, 0);
  put_varint(e, (uint64_t)step);
}

static int write_record(dc_tb_writer *w, const pbuf *e) {
  if (e->overflow) return dc__errs(DC_ERR_ARG, "tb: event too large (tag over 900 bytes?)");
  unsigned char head[12];
  uint64_t len = e->n;
  for (int i = 0; i < 8; i++) head[i] = (unsigned char)(len >> (8 * i));
  uint32_t lc = dc_crc32c_mask(dc_crc32c(head, 8));
  for (int i = 0; i < 4; i++) head[8 + i] = (unsigned char)(lc >> (8 * i));
  uint32_t dc = dc_crc32c_mask(dc_crc32c(e->b, e->n));
  unsigned char tail[4];
  for (int i = 0; i < 4; i++) tail[i] = (unsigned char)(dc >> (8 * i));
  if (fwrite(head, 1, 12, w->f) != 12 || fwrite(e->b, 1, e->n, w->f) != e->n ||
      fwrite(tail, 1, 4, w->f) != 4)
    return dc__errs(DC_ERR_IO, "%s: write failed (%s)", w->path, strerror(errno));
  return DC_OK;
}

dc_tb_writer *dc_tb_open(const char *dir) {
  if (!dir) return dc__err(DC_ERR_ARG, "tb_open: dir is NULL");
  if (dc__mkdirs(dir) != DC_OK) return NULL;
  dc_tb_writer *w = dc__calloc(1, sizeof *w);
  if (!w) return NULL;
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = 0;
  /* a second writer in the same second gets another name (TensorBoard reads them all) */
  for (int k = 0; k < 1000; k++) {
    if (k == 0)
      snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%lld.%s", dir,
               (long long)time(NULL), host);
    else
      snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%lld.%s.%d", dir,
               (long long)time(NULL), host, k);
    if (!dc__path_exists(w->path)) break;
  }
  w->f = fopen(w->path, "wb");
  if (!w->f) {
    dc__err(DC_ERR_IO, "%s: cannot create (%s)", w->path, strerror(errno));
    dc__free(w);
    return NULL;
  }
  pbuf e = {0};
  event_head(&e, 0);
  static const char version[] = "brain.Event:2";
  put_bytes(&e, 3, version, sizeof version - 1);
  int rc = write_record(w, &e);
  if (rc == DC_OK && fflush(w->f) != 0) /* a full disk shows here (the record was buffered) */
    rc = dc__errs(DC_ERR_IO, "%s: write failed (%s)", w->path, strerror(errno));
  if (rc != DC_OK) {
    fclose(w->f);
    remove(w->path); /* no empty event file left behind */
    dc__free(w);
    return NULL;
  }
  return w;
}

int dc_tb_add_scalar(dc_tb_writer *w, const char *tag, int64_t step, double value) {
  if (!w || !tag) return dc__errs(DC_ERR_ARG, "tb_add_scalar: NULL argument");
  size_t lt = strlen(tag);
  if (lt > 900) return dc__errs(DC_ERR_ARG, "tb_add_scalar: tag longer than 900 bytes");
  pbuf v = {0}, s = {0}, e = {0};
  put_bytes(&v, 1, tag, lt); /* Summary.Value.tag = 1 */
  float fv = (float)value;
  uint32_t bits;
  memcpy(&bits, &fv, 4);
  put_tag(&v, 2, 5); /* simple_value = 2 (float) */
  put_le(&v, bits, 4);
  put_bytes(&s, 1, v.b, v.n); /* Summary.value = 1 */
  event_head(&e, step);
  put_bytes(&e, 5, s.b, s.n); /* Event.summary = 5 */
  return write_record(w, &e);
}

int dc_tb_flush(dc_tb_writer *w) {
  if (!w) return dc__errs(DC_ERR_ARG, "tb_flush: NULL");
  if (fflush(w->f) != 0)
    return dc__errs(DC_ERR_IO, "%s: flush failed (%s)", w->path, strerror(errno));
  return DC_OK;
}

const char *dc_tb_path(const dc_tb_writer *w) { return w ? w->path : NULL; }

int dc_tb_close(dc_tb_writer *w) {
  if (!w) return DC_OK;
  int rc = DC_OK;
  if (fclose(w->f) != 0)
    rc = dc__errs(DC_ERR_IO, "%s: close failed (%s)", w->path, strerror(errno));
  dc__free(w);
  return rc;
}
