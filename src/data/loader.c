/* The threaded DataLoader: a pthreads pool decodes and transforms batches ahead of the training
 * loop into a ring of slots, woken when half the ring is free; the caller receives batch k only
 * after batch k-1, so the order is fixed. Shuffling and every random transform are seeded by
 * (seed, epoch, position), never by the thread that happens to run them, so any worker count
 * gives the same batches. Batch buffers come from a recycling pool and become tensors without a
 * copy; with a device in the options, each is copied to it when it is handed out. With
 * pin_memory and a device that copies asynchronously (cuda, testdev), the pool's buffers are
 * page-locked and batch k + 1's copy is queued (on the device's copy stream) when batch k is
 * handed out, so it overlaps batch k's compute; a buffer goes back to the pool only once the
 * device says its copy finished reading it. */
#include "data-impl.h"

#include <deepc/dist.h>
#include <pthread.h>
#include <string.h>

#define DC__LOADER_MAX_WORKERS 256
#define DC__STREAM_SHUFFLE 0x5F1Eull
#define DC__STREAM_AUGMENT 0xA06ull
#define DC__STREAM_SEED 0x10ADull

/* ---- recycling buffer pool (shared with the tensors it backs, so it outlives the loader) */
typedef struct buf_pool {
  pthread_mutex_t mu;
  int32_t refs;  /* the loader + one per buffer out in a tensor */
  void **bufs;   /* [n] free buffers */
  size_t *sizes; /* [n] their sizes */
  int n, cap;
  bool pinned;   /* page-locked buffers for copies to dev (dc__host_alloc_pinned) */
  dc_device dev; /* the loader's device */
} buf_pool;

static void *buf_alloc(const buf_pool *p, size_t bytes) {
  return p->pinned ? dc__host_alloc_pinned(p->dev, bytes) : dc__malloc(bytes);
}

static void buf_free(const buf_pool *p, void *b) {
  if (p->pinned)
    dc__host_free_pinned(p->dev, b);
  else
    dc__free(b);
}

static buf_pool *pool_new(int cap, bool pinned, dc_device dev) {
  buf_pool *p = dc__calloc(1, sizeof *p);
  if (!p) return NULL;
  p->bufs = dc__calloc((size_t)cap, sizeof *p->bufs);
  p->sizes = dc__calloc((size_t)cap, sizeof *p->sizes);
  if (!p->bufs || !p->sizes || pthread_mutex_init(&p->mu, NULL) != 0) {
    dc__free(p->bufs);
    dc__free(p->sizes);
    dc__free(p);
    return NULL;
  }
  p->cap = cap;
  p->refs = 1;
  p->pinned = pinned;
  p->dev = dev;
  return p;
}

static void pool_unref(buf_pool *p) {
  pthread_mutex_lock(&p->mu);
  bool last = --p->refs == 0;
  pthread_mutex_unlock(&p->mu);
  if (!last) return;
  for (int i = 0; i < p->n; i++) buf_free(p, p->bufs[i]);
  dc__free(p->bufs);
  dc__free(p->sizes);
  pthread_mutex_destroy(&p->mu);
  dc__free(p);
}

/* A buffer of exactly `bytes` (reused when one is free). */
static void *pool_get(buf_pool *p, size_t bytes) {
  pthread_mutex_lock(&p->mu);
  for (int i = 0; i < p->n; i++)
    if (p->sizes[i] == bytes) {
      void *b = p->bufs[i];
      p->bufs[i] = p->bufs[--p->n];
      p->sizes[i] = p->sizes[p->n];
      pthread_mutex_unlock(&p->mu);
      return b;
    }
  pthread_mutex_unlock(&p->mu);
  return buf_alloc(p, bytes ? bytes : 1);
}

static void pool_put(buf_pool *p, void *b, size_t bytes) {
  if (!b) return;
  pthread_mutex_lock(&p->mu);
  if (p->n < p->cap) {
    p->bufs[p->n] = b;
    p->sizes[p->n++] = bytes;
    b = NULL;
  }
  pthread_mutex_unlock(&p->mu);
  if (b) buf_free(p, b);
}

/* Storage free hook: the buffer goes back to the pool. The size rides in front of the data. */
static void pool_release(void *data, void *ud) {
  buf_pool *p = ud;
  size_t bytes;
  memcpy(&bytes, (char *)data - 64, sizeof bytes);
  pool_put(p, (char *)data - 64, bytes + 64);
  pool_unref(p);
}

/* ---- the loader ---- */

typedef enum slot_state { SLOT_FREE = 0, SLOT_BUSY, SLOT_READY } slot_state;

typedef struct batch_arr {
  void *buf; /* pool buffer: 64-byte header holding its size, then the data */
  size_t bytes;
  dc_dtype dt;
  int ndim;
  int64_t shape[DC_MAX_DIMS]; /* [B, ...] */
} batch_arr;

typedef struct batch_slot {
  slot_state state;
  int64_t index; /* batch number in the epoch */
  batch_arr x, y;
  bool has_y;
  int status; /* DC_OK or the error of the batch */
  char *msg;
} batch_slot;

/* The asynchronous path (pin_memory on a device with from_host_async): a batch whose copies
 * are queued, waiting to be handed out, and the pinned buffers whose copies may still read them. */
typedef struct staged_batch {
  bool valid;
  int64_t index;
  int status; /* DC_OK or the batch's error (msg) */
  char *msg;
  bool has_y;
  batch_arr x, y;      /* layouts only (buf NULL) */
  dc_storage *sx, *sy; /* device storage the copies fill */
} staged_batch;

#define DC__LOADER_MAX_PENDING 32
typedef struct pending_copy {
  void *buf; /* pool buffer (header + data) */
  size_t bytes;
  dc__copy_ticket *ticket;
} pending_copy;

struct dc_loader {
  dc_dataset *ds;
  dc_loader_opts o;
  uint64_t seed;
  int64_t n, nbatches, epoch;
  int64_t *perm;  /* [n] this epoch's order, NULL without shuffle or sharding */
  int64_t *order; /* [ds->n] the whole epoch's order when sharded (dist.h), else NULL */
  pthread_mutex_t mu;
  pthread_cond_t work_cv, done_cv;
  pthread_t *threads;
  int nthreads, depth;
  batch_slot *slots; /* [depth] ring, batch k in slot k % depth */
  int64_t next_claim, next_deliver;
  int inflight;
  int idle; /* workers asleep on work_cv */
  bool started, stop;
  uint64_t aug_seed; /* this epoch's augmentation seed */
  dc__sample inline_sample;
  buf_pool *pool;
  /* the asynchronous path; next_out: the next batch handed out (next_deliver is then the next
   * one taken out of the ring, at most one ahead) */
  bool async;
  int64_t next_out;
  staged_batch staged;
  pending_copy pend[DC__LOADER_MAX_PENDING];
  int npend;
};

static void arr_release(buf_pool *p, batch_arr *a) {
  if (a->buf) pool_put(p, a->buf, a->bytes + 64);
  a->buf = NULL;
}

static void slot_clear(dc_loader *l, batch_slot *s) {
  arr_release(l->pool, &s->x);
  arr_release(l->pool, &s->y);
  dc__free(s->msg);
  s->msg = NULL;
  s->status = DC_OK;
  s->state = SLOT_FREE;
}

static bool arr_alloc(buf_pool *p, batch_arr *a, const dc__arr *row, int64_t b) {
  a->dt = row->dtype;
  a->ndim = row->ndim + 1;
  a->shape[0] = b;
  memcpy(a->shape + 1, row->shape, sizeof(int64_t) * (size_t)row->ndim);
  a->bytes = dc__arr_nbytes(row) * (size_t)b;
  a->buf = pool_get(p, a->bytes + 64);
  if (a->buf) memcpy(a->buf, &a->bytes, sizeof a->bytes);
  return a->buf != NULL;
}

static bool same_layout(const batch_arr *a, const dc__arr *row) {
  if (a->dt != row->dtype || a->ndim != row->ndim + 1) return false;
  for (int d = 0; d < row->ndim; d++)
    if (a->shape[d + 1] != row->shape[d]) return false;
  return true;
}

static char *layout_str(dc_dtype dt, int ndim, const int64_t *shape, char *buf, size_t n) {
  dc_shape s = {.ndim = ndim};
  memcpy(s.d, shape, sizeof(int64_t) * (size_t)ndim);
  char b[96];
  snprintf(buf, n, "%s %s", dc_dtype_name(dt), dc_shape_str(s, b, sizeof b));
  return buf;
}

/* Decodes, transforms and collates batch b into slot (any thread). */
static void produce(dc_loader *l, int64_t b, batch_slot *slot, dc__sample *s) {
  int64_t bs = l->o.batch_size, start = b * bs, end = start + bs < l->n ? start + bs : l->n;
  int rc = DC_OK;
  int64_t k = start, idx = 0;
  for (; k < end && rc == DC_OK; k++) {
    idx = l->perm ? l->perm[k] : k;
    int64_t pos = l->order ? k * l->o.num_replicas + l->o.rank : k; /* in the whole epoch */
    rc = dc__dataset_fetch(l->ds, idx, s, dc__mix_seed(l->aug_seed, 0, (uint64_t)pos));
    if (rc) break;
    if (k == start) {
      slot->has_y = s->has_y;
      if (!arr_alloc(l->pool, &slot->x, &s->x, end - start) ||
          (s->has_y && !arr_alloc(l->pool, &slot->y, &s->y, end - start))) {
        rc = DC_ERR_NOMEM;
        break;
      }
    } else if (!same_layout(&slot->x, &s->x) || s->has_y != slot->has_y ||
               (s->has_y && !same_layout(&slot->y, &s->y))) {
      char a[128], c[128];
      const dc__arr *row = same_layout(&slot->x, &s->x) ? &s->y : &s->x;
      const batch_arr *first = row == &s->x ? &slot->x : &slot->y;
      rc = dc__errs(DC_ERR_ARG,
                    "sample is %s but the batch's first sample is %s; add a "
                    "Resize/CenterCrop so every sample has one size",
                    layout_str(row->dtype, row->ndim, row->shape, a, sizeof a),
                    layout_str(first->dt, first->ndim - 1, first->shape + 1, c, sizeof c));
      break;
    }
    size_t xr = dc__arr_nbytes(&s->x);
    memcpy((char *)slot->x.buf + 64 + (size_t)(k - start) * xr, s->x.data, xr);
    if (s->has_y) {
      size_t yr = dc__arr_nbytes(&s->y);
      memcpy((char *)slot->y.buf + 64 + (size_t)(k - start) * yr, s->y.data, yr);
    }
  }
  if (rc) {
    char msg[2300];
    snprintf(msg, sizeof msg,
             "loader: batch %lld, sample %lld of the epoch (dataset index "
             "%lld): %s",
             (long long)b, (long long)k, (long long)idx,
             dc_last_error()[0] ? dc_last_error() : dc_strerror((dc_status)rc));
    slot->status = rc;
    slot->msg = dc__strdup(msg);
    arr_release(l->pool, &slot->x);
    arr_release(l->pool, &slot->y);
  }
}

static void *worker_main(void *arg) {
  dc_loader *l = arg;
  dc__sample s = {0};
  pthread_mutex_lock(&l->mu);
  for (;;) {
    while (!l->stop && !(l->started && l->next_claim < l->nbatches &&
                         l->next_claim < l->next_deliver + l->depth)) {
      l->idle++;
      pthread_cond_wait(&l->work_cv, &l->mu);
      l->idle--;
    }
    if (l->stop) break;
    int64_t b = l->next_claim++;
    batch_slot *slot = &l->slots[b % l->depth];
    slot->state = SLOT_BUSY;
    slot->index = b;
    l->inflight++;
    pthread_mutex_unlock(&l->mu);
    produce(l, b, slot, &s);
    pthread_mutex_lock(&l->mu);
    slot->state = SLOT_READY;
    l->inflight--;
    pthread_cond_broadcast(&l->done_cv);
  }
  pthread_mutex_unlock(&l->mu);
  dc__sample_free(&s);
  return NULL;
}

/* ---- the asynchronous path ---- */

/* Returns to the pool the pinned buffers whose copies finished (all of them, waiting, with
 * wait_all). A failed copy's buffer is freed, not reused; the first failure's status is
 * returned with its message. */
static int recycle(dc_loader *l, bool wait_all) {
  int rc = DC_OK, kept = 0;
  for (int i = 0; i < l->npend; i++) {
    pending_copy *pc = &l->pend[i];
    int done = dc__copy_ticket_done(l->o.device, pc->ticket, wait_all);
    if (done == 0) {
      l->pend[kept++] = *pc;
      continue;
    }
    dc__copy_ticket_free(l->o.device, pc->ticket);
    if (done == 1) {
      pool_put(l->pool, pc->buf, pc->bytes);
    } else {
      buf_free(l->pool, pc->buf);
      if (rc == DC_OK) rc = done;
    }
  }
  l->npend = kept;
  return rc;
}

static void staged_drop(staged_batch *st) {
  dc__storage_release(st->sx);
  dc__storage_release(st->sy);
  dc__free(st->msg);
  *st = (staged_batch){0};
}

/* Queues the copy of one taken array into new device storage *out; its buffer goes to the
 * pending list (or back to the pool when the copy was synchronous). */
static int stage_arr(dc_loader *l, batch_arr *a, dc_storage **out) {
  if (l->npend == DC__LOADER_MAX_PENDING) { /* wait for the oldest copies */
    int rc = recycle(l, true);
    if (rc != DC_OK) return rc;
  }
  dc_storage *st = dc__storage_new(a->bytes, l->o.device);
  if (!st) return dc_last_status() ? dc_last_status() : DC_ERR_NOMEM;
  dc__copy_ticket *t = NULL;
  int rc = dc__storage_write_async(st, 0, (char *)a->buf + 64, a->bytes, &t);
  if (rc != DC_OK) {
    dc__storage_release(st);
    return rc;
  }
  if (t)
    l->pend[l->npend++] = (pending_copy){.buf = a->buf, .bytes = a->bytes + 64, .ticket = t};
  else
    pool_put(l->pool, a->buf, a->bytes + 64);
  a->buf = NULL;
  *out = st;
  return DC_OK;
}

/* Turns a batch taken out of the ring into l->staged: device storage with its copies queued, or
 * the batch's error. */
static void stage(dc_loader *l, batch_slot *got) {
  staged_batch *st = &l->staged;
  *st = (staged_batch){.valid = true,
                       .index = got->index,
                       .status = got->status,
                       .msg = got->msg,
                       .has_y = got->has_y,
                       .x = got->x,
                       .y = got->y};
  got->msg = NULL;
  st->x.buf = st->y.buf = NULL;
  if (st->status == DC_OK) {
    int rc = stage_arr(l, &got->x, &st->sx);
    if (rc == DC_OK && got->has_y) rc = stage_arr(l, &got->y, &st->sy);
    if (rc != DC_OK) {
      char msg[2300];
      snprintf(msg, sizeof msg, "loader: batch %lld: copying it to %s: %s", (long long)got->index,
               dc_device_name(l->o.device),
               dc_last_error()[0] ? dc_last_error() : dc_strerror((dc_status)rc));
      st->status = rc;
      st->msg = dc__strdup(msg);
    }
  }
  arr_release(l->pool, &got->x);
  arr_release(l->pool, &got->y);
}

/* A tensor over device storage st with a's layout, in the caller's scope (st's reference moves
 * into it). */
static dc_tensor *wrap_device(dc_storage *st, const batch_arr *a) {
  dc_tensor tmpl;
  memset(&tmpl, 0, sizeof tmpl);
  tmpl.storage = st;
  tmpl.dtype = a->dt;
  tmpl.device = st->device;
  int64_t stride[DC_MAX_DIMS];
  dc__contiguous_strides(a->ndim, a->shape, stride);
  dc_tensor *t = dc__alias(&tmpl, a->ndim, a->shape, stride, 0);
  dc__storage_release(st);
  return t;
}

/* Hands out the staged batch (which is cleared): 1, or -1 with its error. */
static int hand_out(dc_loader *l, dc_tensor **x, dc_tensor **y) {
  staged_batch st = l->staged;
  l->staged = (staged_batch){0};
  if (st.status != DC_OK) {
    dc__err((dc_status)st.status, "%s", st.msg ? st.msg : "loader: batch failed");
    staged_drop(&st);
    return -1;
  }
  *x = wrap_device(st.sx, &st.x);
  st.sx = NULL;
  if (st.has_y && y) {
    *y = wrap_device(st.sy, &st.y);
    st.sy = NULL;
  }
  bool ok = *x && (!st.has_y || !y || *y);
  staged_drop(&st);
  if (ok) return 1;
  if (*x) dc_free(*x);
  if (y && *y) dc_free(*y);
  *x = NULL;
  if (y) *y = NULL;
  return -1;
}

/* Waits until no worker is producing, with no new claims (lock held); drops a staged batch and
 * waits for the copies in flight. */
static void quiesce(dc_loader *l) {
  l->started = false;
  while (l->inflight > 0) pthread_cond_wait(&l->done_cv, &l->mu);
  for (int i = 0; i < l->depth; i++) slot_clear(l, &l->slots[i]);
  staged_drop(&l->staged);
  recycle(l, true);
}

static void start_epoch(dc_loader *l) {
  int64_t *p = l->order ? l->order : l->perm, n = l->order ? l->ds->n : l->n;
  if (l->o.shuffle)
    dc__permutation(p, n, dc__mix_seed(l->seed, DC__STREAM_SHUFFLE, (uint64_t)l->epoch));
  if (l->order)
    dc_dist_shard(l->o.shuffle ? l->order : NULL, n, l->o.num_replicas, l->o.rank,
                  l->o.shard_uneven, l->perm);
  l->aug_seed = dc__mix_seed(l->seed, DC__STREAM_AUGMENT, (uint64_t)l->epoch);
  l->next_claim = l->next_deliver = l->next_out = 0;
  l->started = true;
}

void dc_loader_free(dc_loader *l) {
  if (!l) return;
  if (l->nthreads) {
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->work_cv);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->nthreads; i++) pthread_join(l->threads[i], NULL);
  }
  for (int i = 0; l->slots && i < l->depth; i++) slot_clear(l, &l->slots[i]);
  staged_drop(&l->staged);
  if (l->pool) recycle(l, true);
  dc__sample_free(&l->inline_sample);
  pthread_cond_destroy(&l->work_cv);
  pthread_cond_destroy(&l->done_cv);
  pthread_mutex_destroy(&l->mu);
  if (l->pool) pool_unref(l->pool);
  dc_dataset_free(l->ds);
  dc__free(l->threads);
  dc__free(l->slots);
  dc__free(l->perm);
  dc__free(l->order);
  dc__free(l);
}

dc_loader *dc_loader_opt(dc_dataset *ds, dc_loader_opts o) {
  if (!ds) return dc__err(DC_ERR_ARG, "loader: dataset is NULL");
  if (o.batch_size == 0) o.batch_size = 1;
  if (o.prefetch == 0) o.prefetch = 2;
  if (o.num_replicas == 1) o.num_replicas = 0;
  if (o.num_replicas < 0 || o.rank < 0 || (o.num_replicas ? o.rank >= o.num_replicas : o.rank > 0))
    return dc__err(DC_ERR_ARG, "loader: need 0 <= rank < num_replicas (got rank %d of %d)", o.rank,
                   o.num_replicas);
  if (o.batch_size < 0 || o.num_workers < 0 || o.num_workers > DC__LOADER_MAX_WORKERS ||
      o.prefetch < 0 || o.prefetch > 64)
    return dc__err(DC_ERR_ARG,
                   "loader: need batch_size >= 1, 0 <= num_workers <= %d and "
                   "0 <= prefetch <= 64 (got %lld, %d, %d)",
                   DC__LOADER_MAX_WORKERS, (long long)o.batch_size, o.num_workers, o.prefetch);
  if ((unsigned)o.device >= DC_DEVICE_COUNT || !dc_device_available(o.device)) {
    char has[128];
    return dc__err(DC_ERR_ARG, "loader: device %s is not in this build of deepc, which has: %s",
                   dc_device_name(o.device), dc_devices_available(has, sizeof has));
  }
  dc_loader *l = dc__calloc(1, sizeof *l);
  if (!l) return NULL;
  l->o = o;
  l->n = o.num_replicas ? dc_dist_shard_len(ds->n, o.num_replicas, o.rank, o.shard_uneven) : ds->n;
  l->nbatches = o.drop_last ? l->n / o.batch_size : (l->n + o.batch_size - 1) / o.batch_size;
  if (o.seed) {
    l->seed = o.seed;
  } else { /* one draw from the global generator */
    uint64_t ctr, s = dc_rng_get_state(&ctr);
    l->seed = dc__mix_seed(s, DC__STREAM_SEED, ctr);
    dc_rng_set_state(s, ctr + 1);
  }
  l->depth = o.num_workers ? o.num_workers * o.prefetch : 1;
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->work_cv, NULL);
  pthread_cond_init(&l->done_cv, NULL);
  l->ds = dc__dataset_retain(ds);
  l->slots = dc__calloc((size_t)l->depth, sizeof *l->slots);
  l->async = o.pin_memory && o.device != DC_CPU && dc__device_async_copies(o.device);
  l->pool = pool_new(2 * l->depth + 4, l->async, o.device);
  bool sharded = o.num_replicas > 0;
  if (!l->slots || !l->pool ||
      ((o.shuffle || sharded) &&
       !(l->perm = dc__malloc(sizeof *l->perm * (size_t)(l->n ? l->n : 1)))) ||
      (sharded && !(l->order = dc__malloc(sizeof *l->order * (size_t)(ds->n ? ds->n : 1))))) {
    dc_loader_free(l);
    return NULL;
  }
  if (o.num_workers) {
    if (!(l->threads = dc__calloc((size_t)o.num_workers, sizeof *l->threads))) {
      dc_loader_free(l);
      return NULL;
    }
    for (int i = 0; i < o.num_workers; i++) {
      if (pthread_create(&l->threads[i], NULL, worker_main, l) != 0) {
        dc_loader_free(l);
        return dc__err(DC_ERR_STATE, "loader: cannot start worker thread %d of %d", i,
                       o.num_workers);
      }
      l->nthreads++;
    }
  }
  return l;
}

/* A tensor over a pool buffer (no copy); the buffer returns to the pool with the storage. */
static dc_tensor *wrap(dc_loader *l, batch_arr *a) {
  dc_storage *st = dc__malloc(sizeof *st);
  if (!st) return NULL;
  *st = (dc_storage){.data = (char *)a->buf + 64,
                     .nbytes = a->bytes,
                     .device = DC_CPU,
                     .refcount = 1,
                     .free_fn = pool_release,
                     .free_ud = l->pool};
  a->buf = NULL; /* owned by the storage now */
  pthread_mutex_lock(&l->pool->mu);
  l->pool->refs++;
  pthread_mutex_unlock(&l->pool->mu);
  dc_tensor tmpl;
  memset(&tmpl, 0, sizeof tmpl);
  tmpl.storage = st;
  tmpl.dtype = a->dt;
  tmpl.device = DC_CPU;
  int64_t stride[DC_MAX_DIMS];
  dc__contiguous_strides(a->ndim, a->shape, stride);
  dc_tensor *t = dc__alias(&tmpl, a->ndim, a->shape, stride, 0);
  dc__storage_release(st); /* the tensor holds it (or, on failure, it goes back) */
  return t;
}

/* The host batch t handed to the loader's device: a copy there (t is freed), or t itself on
 * the cpu. NULL (t freed) when the copy fails. */
static dc_tensor *to_loader_device(const dc_loader *l, dc_tensor *t) {
  if (!t || l->o.device == DC_CPU) return t;
  dc_tensor *d = dc_to_device(t, l->o.device);
  dc_free(t);
  return d;
}

/* Batches that idle workers could claim now (lock held). */
static int64_t claimable(const dc_loader *l) {
  if (!l->started || l->idle == 0) return 0;
  int64_t end = l->next_deliver + l->depth;
  return (end < l->nbatches ? end : l->nbatches) - l->next_claim;
}

/* Whether to wake the idle workers after a delivery (lock held): only once half the ring is free
 * (or all the epoch's remaining batches fit), so that a worker produces batches in runs instead
 * of being woken once per batch; every wake-up can preempt the training thread. */
static bool refill_due(const dc_loader *l) {
  int64_t c = claimable(l), half = (l->depth + 1) / 2, left = l->nbatches - l->next_claim;
  return c > 0 && c >= (half < left ? half : left);
}

/* Takes batch next_deliver out of the ring into *got (lock held; it is dropped while the batch
 * is produced in the calling thread without workers): the slot goes back to the workers.
 * Returns whether to wake the idle workers once the lock is released. */
static bool take(dc_loader *l, batch_slot *got) {
  int64_t b = l->next_deliver;
  batch_slot *slot = &l->slots[b % l->depth];
  if (l->nthreads == 0) {
    pthread_mutex_unlock(&l->mu);
    slot->index = b;
    produce(l, b, slot, &l->inline_sample);
    pthread_mutex_lock(&l->mu);
  } else if (!(slot->state == SLOT_READY && slot->index == b)) {
    if (claimable(l) > 0) pthread_cond_broadcast(&l->work_cv); /* batch b may be unclaimed */
    while (!(slot->state == SLOT_READY && slot->index == b)) pthread_cond_wait(&l->done_cv, &l->mu);
  }
  *got = *slot;
  got->index = b;
  slot->x.buf = slot->y.buf = NULL;
  slot->msg = NULL;
  slot_clear(l, slot);
  l->next_deliver++;
  return refill_due(l);
}

/* The synchronous hand-out: the host batch as tensors, copied to the device if there is one. */
static int deliver_host(dc_loader *l, batch_slot *got, dc_tensor **x, dc_tensor **y) {
  int rc = got->status;
  if (rc) {
    dc__err((dc_status)rc, "%s", got->msg ? got->msg : "loader: batch failed");
  } else {
    *x = to_loader_device(l, wrap(l, &got->x));
    if (*x && got->has_y && y && !(*y = to_loader_device(l, wrap(l, &got->y)))) {
      dc_free(*x);
      *x = NULL;
    }
    if (!*x) rc = dc_last_status() ? dc_last_status() : DC_ERR_NOMEM;
  }
  arr_release(l->pool, &got->x);
  arr_release(l->pool, &got->y);
  dc__free(got->msg);
  return rc ? -1 : 1;
}

/* The asynchronous hand-out (lock held on entry, released on return): batch next_out, staged
 * by the previous call or now, then batch next_out + 1 staged when it is ready (always without
 * workers), so that its copy runs while the caller computes on this one. */
static int deliver_async(dc_loader *l, dc_tensor **x, dc_tensor **y) {
  bool wake = false;
  if (!l->staged.valid) {
    batch_slot got;
    wake = take(l, &got);
    pthread_mutex_unlock(&l->mu);
    stage(l, &got);
    pthread_mutex_lock(&l->mu);
  }
  l->next_out++;
  batch_slot nx;
  bool more = l->next_deliver < l->nbatches &&
              (l->nthreads == 0 || (l->slots[l->next_deliver % l->depth].state == SLOT_READY &&
                                    l->slots[l->next_deliver % l->depth].index == l->next_deliver));
  if (more) wake = take(l, &nx) || wake;
  pthread_mutex_unlock(&l->mu);
  if (wake) pthread_cond_broadcast(&l->work_cv);
  int rc = hand_out(l, x, y);
  if (more) stage(l, &nx);
  int rrc = recycle(l, false);
  if (rc == 1 && rrc != DC_OK) { /* a finished copy failed (its batch is handed out already) */
    dc_free(*x);
    if (y) dc_free(*y);
    *x = NULL;
    if (y) *y = NULL;
    return -1;
  }
  return rc;
}

int dc_loader_next(dc_loader *l, dc_tensor **x, dc_tensor **y) {
  if (x) *x = NULL;
  if (y) *y = NULL;
  if (!l || !x) {
    dc__err(DC_ERR_ARG, "loader_next: loader or output is NULL");
    return -1;
  }
  pthread_mutex_lock(&l->mu);
  if (!l->started) start_epoch(l);
  if ((l->async ? l->next_out : l->next_deliver) >= l->nbatches) {
    l->started = false;
    l->epoch++;
    pthread_mutex_unlock(&l->mu);
    return 0;
  }
  if (l->async) return deliver_async(l, x, y);
  batch_slot got;
  bool wake = take(l, &got);
  pthread_mutex_unlock(&l->mu);
  /* woken after the unlock, a worker does not block on the mutex the caller still holds */
  if (wake) pthread_cond_broadcast(&l->work_cv);
  return deliver_host(l, &got, x, y);
}

int64_t dc_loader_len(const dc_loader *l) { return l ? l->nbatches : 0; }
int64_t dc_loader_epoch(const dc_loader *l) { return l ? l->epoch : 0; }

int dc_loader_set_epoch(dc_loader *l, int64_t epoch) {
  if (!l || epoch < 0)
    return dc__errs(DC_ERR_ARG, "loader_set_epoch: need a loader and epoch >= 0");
  pthread_mutex_lock(&l->mu);
  quiesce(l);
  l->epoch = epoch;
  pthread_mutex_unlock(&l->mu);
  return DC_OK;
}
