/* DistributedDataParallel: the trainable parameters, in reverse order, grouped into buckets
 * with one flat buffer each (the gradients, then one presence count per parameter); after the
 * backward pass every bucket is summed over the ranks with one all-reduce and the averaged
 * gradients are copied back. With gradient-ready reports from the autograd engine a bucket
 * starts as soon as its gradients are complete, in bucket order on every rank, while the backward
 * pass goes on. Rank 0's buffers (batch-norm statistics) are broadcast at each sync.
 * Shapes: E elements of a bucket's gradients, P parameters of a bucket. */
#include "../backend/backend.h"
#include "dist-impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dc_grad_ready_fn dc__grad_ready_hook;
void *dc__grad_ready_ud;

void dc_set_grad_ready_hook(dc_grad_ready_fn fn, void *ud) {
  dc__grad_ready_hook = fn;
  dc__grad_ready_ud = ud;
}

/* PyTorch's: a small first bucket starts the all-reduce early */
#define DDP_FIRST_BUCKET_BYTES ((int64_t)1 << 20)

typedef struct ddp_param {
  dc_tensor *t;    /* the parameter (a reference) [its shape] */
  dc_tensor *view; /* its slot in the bucket's flat buffer [its shape] */
  int bucket;
  int slot;     /* index within the bucket (its presence count) */
  int expected; /* gradient reports per backward, learned at the last sync (0: none) */
  int reports;  /* reports in this backward */
} ddp_param;

typedef struct ddp_bucket {
  dc_tensor *flat;     /* [E + P] gradients then presence counts */
  dc_tensor *presence; /* view [P] of the counts */
  int first, n;        /* parameters first .. first + n - 1 */
  int64_t bytes;       /* of the gradients (E elements) */
  int waiting;         /* parameters still expecting reports in this backward */
  bool launched, early, stale;
  dc__dist_req req;
  char what[48];
} ddp_bucket;

typedef struct ddp_group { /* buffers of one dtype and device, broadcast as one */
  dc_tensor *flat;         /* [sum of their sizes] */
  dc_tensor **views;       /* [n] slots in flat */
  dc_tensor **bufs;        /* [n] the module's buffers (references) */
  int n;
  dc__dist_req req;
} ddp_group;

typedef struct ddp_lookup {
  const dc_tensor *t;
  int index;
} ddp_lookup;

struct dc_dist_ddp {
  dc_module *model; /* borrowed */
  dc_dist_ddp_opts o;
  ddp_param *params; /* [nparams] in bucket order (reverse registration order) */
  int nparams;
  ddp_bucket *buckets;
  int nbuckets;
  ddp_lookup *lookup; /* [nparams] sorted by tensor address */
  ddp_group *groups;
  int ngroups;
  int next_launch; /* buckets start in index order on every rank */
  int64_t syncs;
  bool armed;     /* every rank reports gradients: buckets may start during backward */
  int overlapped; /* buckets started early at the last sync */
  int error;      /* first failure inside a report (returned by the next sync) */
  char errmsg[512];
};

/* ---- construction ---- */

/* A tensor just made becomes ours alone (out of whatever scope is open). */
static dc_tensor *own(dc_tensor *t) {
  dc__unscope(t);
  return t;
}

static dc_tensor *owned_view(dc_tensor *flat, const dc_tensor *like, int64_t offset) {
  int64_t stride[DC_MAX_DIMS];
  dc__contiguous_strides(like->ndim, like->shape, stride);
  return own(dc__alias(flat, like->ndim, like->shape, stride, offset));
}

static dc_tensor *owned_flat(int64_t n, dc_dtype dt, dc_device dev) {
  return own(dc__new(DC_SHAPE(n), dt, dev));
}

static int cmp_lookup(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const ddp_lookup *)a)->t, y = (uintptr_t)((const ddp_lookup *)b)->t;
  return x < y ? -1 : x > y;
}

/* Cuts params (already in bucket order) into buckets: a new one when the dtype or device
 * changes or the cap would be passed (the first bucket's cap is 1 MB). */
static int make_buckets(dc_dist_ddp *d) {
  int64_t cap = (int64_t)(d->o.bucket_mb * 1024 * 1024);
  d->buckets = dc__calloc((size_t)(d->nparams ? d->nparams : 1), sizeof *d->buckets);
  if (!d->buckets) return DC_ERR_NOMEM;
  for (int i = 0; i < d->nparams; i++) {
    dc_tensor *t = d->params[i].t;
    int64_t bytes = dc_numel(t) * (int64_t)dc_dtype_size(t->dtype);
    ddp_bucket *b = d->nbuckets ? &d->buckets[d->nbuckets - 1] : NULL;
    int64_t limit = d->nbuckets == 1 && cap > DDP_FIRST_BUCKET_BYTES ? DDP_FIRST_BUCKET_BYTES : cap;
    if (b) {
      dc_tensor *t0 = d->params[b->first].t;
      if (t0->dtype != t->dtype || t0->device != t->device || b->bytes + bytes > limit) b = NULL;
    }
    if (!b) {
      b = &d->buckets[d->nbuckets++];
      b->first = i;
      snprintf(b->what, sizeof b->what, "gradient all-reduce (bucket %d)", d->nbuckets - 1);
    }
    d->params[i].bucket = (int)(b - d->buckets);
    d->params[i].slot = b->n++;
    b->bytes += bytes;
  }
  for (int k = 0; k < d->nbuckets; k++) {
    ddp_bucket *b = &d->buckets[k];
    dc_tensor *t0 = d->params[b->first].t;
    int64_t e = b->bytes / (int64_t)dc_dtype_size(t0->dtype);
    if (e + b->n > 0x7fffffff)
      return dc__errs(DC_ERR_ARG,
                      "dist ddp: a parameter of %lld elements is larger than one "
                      "all-reduce can take (2^31 - 1)",
                      (long long)e);
    if (!(b->flat = owned_flat(e + b->n, t0->dtype, t0->device))) return dc_last_status();
    if (!(b->presence = own(dc__alias(b->flat, 1, (int64_t[]){b->n}, (int64_t[]){1}, e))))
      return dc_last_status();
    int64_t at = 0;
    for (int j = b->first; j < b->first + b->n; j++) {
      if (!(d->params[j].view = owned_view(b->flat, d->params[j].t, at))) return dc_last_status();
      at += dc_numel(d->params[j].t);
    }
  }
  return DC_OK;
}

/* Groups the module's buffers by dtype and device for the per-sync broadcast. */
static int make_groups(dc_dist_ddp *d) {
  int nb = 0;
  dc_named_tensor *bl = dc_module_buffers(d->model, &nb);
  if (nb == 0) {
    dc_named_tensors_free(bl, nb);
    return bl || dc_last_status() != DC_ERR_NOMEM ? DC_OK : DC_ERR_NOMEM;
  }
  int rc = DC_OK;
  d->groups = dc__calloc((size_t)nb, sizeof *d->groups);
  if (!d->groups) rc = DC_ERR_NOMEM;
  for (int pass = 0; rc == DC_OK && pass < nb; pass++) { /* one group per new (dtype, device) */
    dc_tensor *t = bl[pass].tensor;
    bool seen = false;
    for (int i = 0; i < pass && !seen; i++)
      seen = bl[i].tensor->dtype == t->dtype && bl[i].tensor->device == t->device;
    if (seen) continue;
    ddp_group *g = &d->groups[d->ngroups++];
    int64_t total = 0;
    for (int i = pass; i < nb; i++)
      if (bl[i].tensor->dtype == t->dtype && bl[i].tensor->device == t->device) {
        g->n++;
        total += dc_numel(bl[i].tensor);
      }
    g->views = dc__calloc((size_t)g->n, sizeof *g->views);
    g->bufs = dc__calloc((size_t)g->n, sizeof *g->bufs);
    if (!g->views || !g->bufs || !(g->flat = owned_flat(total, t->dtype, t->device))) {
      rc = dc_last_status() ? dc_last_status() : DC_ERR_NOMEM;
      break;
    }
    int k = 0;
    int64_t at = 0;
    for (int i = pass; i < nb && rc == DC_OK; i++) {
      dc_tensor *u = bl[i].tensor;
      if (u->dtype != t->dtype || u->device != t->device) continue;
      if (!dc_is_contiguous(u)) {
        rc = dc__errs(DC_ERR_ARG, "dist ddp: buffer '%s' is not contiguous", bl[i].name);
        break;
      }
      g->bufs[k] = dc__ref(u);
      if (!(g->views[k] = owned_view(g->flat, u, at))) rc = dc_last_status();
      at += dc_numel(u);
      k++;
    }
  }
  dc_named_tensors_free(bl, nb);
  return rc;
}

static void reset_backward(dc_dist_ddp *d) {
  for (int k = 0; k < d->nbuckets; k++) {
    ddp_bucket *b = &d->buckets[k];
    b->launched = b->early = b->stale = false;
    b->waiting = 0;
    for (int j = b->first; j < b->first + b->n; j++) b->waiting += d->params[j].expected > 0;
  }
  for (int i = 0; i < d->nparams; i++) d->params[i].reports = 0;
  d->next_launch = 0;
}

void dc_dist_ddp_free(dc_dist_ddp *d) {
  if (!d) return;
  if (dc__grad_ready_ud == d) dc_set_grad_ready_hook(NULL, NULL);
  for (int i = 0; i < d->nparams; i++) {
    dc__unref(d->params[i].view);
    dc__unref(d->params[i].t);
  }
  for (int k = 0; k < d->nbuckets; k++) {
    dc__unref(d->buckets[k].presence);
    dc__unref(d->buckets[k].flat);
  }
  for (int g = 0; g < d->ngroups; g++) {
    for (int i = 0; i < d->groups[g].n; i++) {
      dc__unref(d->groups[g].views ? d->groups[g].views[i] : NULL);
      dc__unref(d->groups[g].bufs ? d->groups[g].bufs[i] : NULL);
    }
    dc__free(d->groups[g].views);
    dc__free(d->groups[g].bufs);
    dc__unref(d->groups[g].flat);
  }
  dc__free(d->groups);
  dc__free(d->params);
  dc__free(d->buckets);
  dc__free(d->lookup);
  dc__free(d);
}

dc_dist_ddp *dc_dist_ddp_new_opt(dc_module *m, dc_dist_ddp_opts o) {
  if (!m) return dc__err(DC_ERR_ARG, "dist ddp: module is NULL");
  if (o.bucket_mb < 0) return dc__err(DC_ERR_ARG, "dist ddp: bucket_mb must be >= 0");
  if (o.bucket_mb == 0) o.bucket_mb = 25;
  if (!o.no_broadcast && dc_dist_broadcast_module(m, 0) != DC_OK) return NULL;
  dc_dist_ddp *d = dc__calloc(1, sizeof *d);
  if (!d) return NULL;
  d->model = m;
  d->o = o;
  int np = 0;
  dc_named_tensor *pl = dc_module_trainable_parameters(m, &np);
  int rc = pl || np == 0 ? DC_OK : DC_ERR_NOMEM;
  if (rc == DC_OK && np > 0) {
    d->params = dc__calloc((size_t)np, sizeof *d->params);
    d->lookup = dc__calloc((size_t)np, sizeof *d->lookup);
    if (!d->params || !d->lookup) rc = DC_ERR_NOMEM;
  }
  for (int i = 0; rc == DC_OK && i < np; i++) { /* reverse order: the last layer's come first */
    dc_tensor *t = pl[np - 1 - i].tensor;
    if (!dc_is_contiguous(t))
      rc = dc__errs(DC_ERR_ARG, "dist ddp: parameter '%s' is not contiguous", pl[np - 1 - i].name);
    d->params[i].t = dc__ref(t);
    d->lookup[i] = (ddp_lookup){t, i};
    d->nparams++;
  }
  dc_named_tensors_free(pl, np);
  if (rc == DC_OK) qsort(d->lookup, (size_t)d->nparams, sizeof *d->lookup, cmp_lookup);
  if (rc == DC_OK) rc = make_buckets(d);
  if (rc == DC_OK && !o.no_broadcast_buffers) rc = make_groups(d);
  if (rc != DC_OK) {
    if (dc_last_status() == DC_OK) dc__errs((dc_status)rc, "dist ddp: out of memory");
    dc_dist_ddp_free(d);
    return NULL;
  }
  reset_backward(d);
  if (!o.no_overlap) dc_set_grad_ready_hook(dc_dist_grad_ready, d);
  return d;
}

int dc_dist_ddp_num_buckets(const dc_dist_ddp *d) { return d ? d->nbuckets : 0; }
int dc_dist_ddp_overlapped(const dc_dist_ddp *d) { return d ? d->overlapped : 0; }

int dc_dist_ddp_bucket_params(const dc_dist_ddp *d, int b, int64_t *bytes) {
  if (!d || b < 0 || b >= d->nbuckets) {
    if (bytes) *bytes = 0;
    return 0;
  }
  if (bytes) *bytes = d->buckets[b].bytes;
  return d->buckets[b].n;
}

/* ---- the all-reduce of a bucket ---- */

static int pack(dc_dist_ddp *d, ddp_bucket *b) {
  int rc = DC_OK;
  for (int j = b->first; rc == DC_OK && j < b->first + b->n; j++) {
    ddp_param *p = &d->params[j];
    rc = p->t->grad ? dc_copy_(p->view, p->t->grad) : dc_fill_(p->view, 0.0);
  }
  if (rc != DC_OK) return rc;
  if (b->presence->device == DC_CPU) { /* one count per parameter that has a gradient here */
    for (int j = 0; j < b->n; j++)
      dc__store((char *)dc__dist_ptr(b->presence) + (size_t)j * dc_dtype_size(b->flat->dtype),
                b->flat->dtype, d->params[b->first + j].t->grad ? 1.0 : 0.0);
    return DC_OK;
  }
  for (int j = 0; rc == DC_OK && j < b->n; j++) {
    dc_tensor *one = dc_narrow(b->presence, 0, j, 1);
    rc = one ? dc_fill_(one, d->params[b->first + j].t->grad ? 1.0 : 0.0) : (int)dc_last_status();
    dc_free(one);
  }
  return rc;
}

static int launch(dc_dist_ddp *d, ddp_bucket *b) {
  int rc = dc_scope_begin();
  if (rc == DC_OK) {
    rc = pack(d, b);
    dc_scope_end();
  }
  if (rc == DC_OK)
    rc = dc__dist_iallreduce(dc__dist_ptr(b->flat), dc_numel(b->flat), b->flat->dtype,
                             b->flat->device, DC_DIST_SUM, b->what, &b->req);
  b->launched = true;
  return rc;
}

/* Starts, in order, every bucket whose gradients are complete. */
static int launch_ready(dc_dist_ddp *d, bool all) {
  int rc = DC_OK;
  while (rc == DC_OK && d->next_launch < d->nbuckets) {
    ddp_bucket *b = &d->buckets[d->next_launch];
    if (!all && b->waiting > 0) break;
    b->early = !all;
    rc = launch(d, b);
    d->next_launch++;
  }
  return rc;
}

/* Copies the reduced bucket back into the gradients (averaged unless opts.sum). */
static int unpack(dc_dist_ddp *d, ddp_bucket *b) {
  const dc_backend *be = dc__backend(b->flat->device);
  int rc = DC_OK;
  if (!d->o.sum && dc__dist.size > 1)
    rc = be->ew->unary(DC_UN_DIV_SCALAR, b->flat, b->flat, (double[]){dc__dist.size, 0});
  dc_tensor *pres = b->presence;
  if (rc == DC_OK && pres->device != DC_CPU) pres = dc_to_device(pres, DC_CPU);
  if (!pres) return dc_last_status();
  for (int j = 0; rc == DC_OK && j < b->n; j++) {
    ddp_param *p = &d->params[b->first + j];
    if (dc_item_at(pres, j) <= 0) continue; /* no rank had a gradient: stays NULL */
    if (!p->t->grad) {
      dc_tensor *g = dc__new(dc_shape_of(p->t), p->t->dtype, p->t->device);
      if (!g) return dc_last_status();
      p->t->grad = own(g);
    }
    rc = dc_copy_(p->t->grad, p->view);
  }
  if (pres != b->presence) dc_free(pres);
  return rc;
}

/* Ranks agree on the buckets to reduce again: those that got more gradient after they started
 * (a parameter used more often than in the backward the counts were learned from). */
static int redo_stale(dc_dist_ddp *d) {
  int32_t *flags = dc__calloc((size_t)d->nbuckets, sizeof *flags);
  if (!flags) return DC_ERR_NOMEM;
  for (int k = 0; k < d->nbuckets; k++) flags[k] = d->buckets[k].stale;
  int rc = dc_dist_all_reduce_buffer(flags, d->nbuckets, DC_I32, DC_DIST_MAX);
  for (int k = 0; rc == DC_OK && k < d->nbuckets; k++) {
    if (!flags[k]) continue;
    d->buckets[k].early = false;
    if ((rc = launch(d, &d->buckets[k])) == DC_OK) rc = dc__dist_wait(&d->buckets[k].req);
  }
  dc__free(flags);
  return rc;
}

static int buffers_start(dc_dist_ddp *d) {
  int rc = DC_OK;
  for (int g = 0; rc == DC_OK && g < d->ngroups; g++) {
    ddp_group *G = &d->groups[g];
    for (int i = 0; rc == DC_OK && dc__dist.rank == 0 && i < G->n; i++)
      rc = dc_copy_(G->views[i], G->bufs[i]);
    if (rc == DC_OK)
      rc = dc__dist_ibroadcast(dc__dist_ptr(G->flat), dc_numel(G->flat), G->flat->dtype,
                               G->flat->device, 0, "broadcast of buffers", &G->req);
  }
  return rc;
}

static int buffers_finish(dc_dist_ddp *d) {
  int rc = DC_OK;
  for (int g = 0; rc == DC_OK && g < d->ngroups; g++) {
    ddp_group *G = &d->groups[g];
    rc = dc__dist_wait(&G->req);
    for (int i = 0; rc == DC_OK && dc__dist.rank != 0 && i < G->n; i++)
      rc = dc_copy_(G->bufs[i], G->views[i]);
  }
  return rc;
}

/* Learns how many reports each parameter gets per backward; at the first sync the ranks agree
 * whether the engine reports at all (then buckets may start during backward). */
static int learn(dc_dist_ddp *d) {
  int32_t any = 0;
  for (int i = 0; i < d->nparams; i++) {
    d->params[i].expected = d->params[i].reports;
    any |= d->params[i].reports > 0;
  }
  if (d->syncs++ > 0 || d->o.no_overlap) return DC_OK;
  int rc = dc_dist_all_reduce_buffer(&any, 1, DC_I32, DC_DIST_MIN);
  d->armed = rc == DC_OK && any;
  return rc;
}

int dc_dist_ddp_sync(dc_dist_ddp *d) {
  if (!d) return dc__errs(DC_ERR_ARG, "dist ddp_sync: NULL");
  if (d->error) {
    int e = d->error;
    d->error = 0;
    reset_backward(d);
    return dc__errs((dc_status)e, "%s", d->errmsg);
  }
  if (dc__dist.size == 1) { /* one rank: the gradients are already the average */
    int rc = learn(d);
    reset_backward(d);
    return rc;
  }
  int rc = d->ngroups ? buffers_start(d) : DC_OK;
  if (rc == DC_OK) rc = launch_ready(d, true);
  d->overlapped = 0;
  for (int k = 0; rc == DC_OK && k < d->nbuckets; k++) {
    rc = dc__dist_wait(&d->buckets[k].req);
    d->overlapped += d->buckets[k].early;
  }
  if (rc == DC_OK && d->armed) rc = redo_stale(d);
  if (rc == DC_OK && (rc = dc_scope_begin()) == DC_OK) {
    for (int k = 0; rc == DC_OK && k < d->nbuckets; k++) rc = unpack(d, &d->buckets[k]);
    dc_scope_end();
  }
  if (rc == DC_OK && d->ngroups) rc = buffers_finish(d);
  if (rc == DC_OK) rc = learn(d);
  reset_backward(d);
  return rc;
}

/* ---- gradient-ready reports ---- */

void dc_dist_grad_ready(dc_tensor *leaf, void *ud) {
  dc_dist_ddp *d = ud;
  if (!d || !leaf || d->error) return;
  ddp_lookup key = {leaf, 0};
  ddp_lookup *hit = bsearch(&key, d->lookup, (size_t)d->nparams, sizeof key, cmp_lookup);
  if (!hit) return;
  ddp_param *p = &d->params[hit->index];
  ddp_bucket *b = &d->buckets[p->bucket];
  p->reports++;
  if (dc__dist.size == 1) return; /* counted, so a job of one rank learns like the others */
  if (b->launched) {
    b->stale = true;
    return;
  }
  if (!d->armed || p->reports != p->expected) return;
  b->waiting--;
  int rc = launch_ready(d, false);
  for (int k = 0; rc == DC_OK && k < d->next_launch; k++) { /* drive the ones in flight */
    bool done;
    rc = dc__dist_test(&d->buckets[k].req, &done);
  }
  if (rc != DC_OK) {
    d->error = rc;
    snprintf(d->errmsg, sizeof d->errmsg, "%s", dc_last_error());
  }
}
