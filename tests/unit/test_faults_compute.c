/* Allocation failures injected at every allocation of a forward pass (eval and train mode), a
 * backward pass (fresh graph and retained graph), an optimizer step (SGD with momentum, Adam,
 * AdamW with amsgrad), gradient clipping and a whole trainer epoch: each failure is a clean
 * error with nothing leaked, and the same call then succeeds with the fault-free result. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <stdlib.h>
#include <string.h>

#include "../fault/faults.h"

/* ---- a model, its input and saved copies of tensors ---- */
typedef struct saved {
  int n;
  dc_tensor **t;  /* borrowed */
  void **bytes;   /* [n] plain malloc copies */
  size_t *nbytes; /* [n] */
} saved;

static void save_tensors(saved *s, dc_named_tensor *list, int n) {
  s->n = n;
  s->t = calloc((size_t)n, sizeof *s->t);
  s->bytes = calloc((size_t)n, sizeof *s->bytes);
  s->nbytes = calloc((size_t)n, sizeof *s->nbytes);
  for (int i = 0; i < n; i++) {
    dc_tensor *t = list[i].tensor;
    s->t[i] = t;
    s->nbytes[i] = (size_t)dc_numel(t) * dc_dtype_size(t->dtype);
    s->bytes[i] = malloc(s->nbytes[i] ? s->nbytes[i] : 1);
    memcpy(s->bytes[i], dc_data(t), s->nbytes[i]);
  }
}
static void restore_tensors(const saved *s) {
  for (int i = 0; i < s->n; i++) memcpy(dc_data(s->t[i]), s->bytes[i], s->nbytes[i]);
}
static void expect_tensors(const char *what, const saved *s) {
  for (int i = 0; i < s->n; i++) fault_expect_bytes(what, s->t[i], s->bytes[i], s->nbytes[i]);
}
static void saved_free(saved *s) {
  for (int i = 0; i < s->n; i++) free(s->bytes[i]);
  free(s->t);
  free(s->bytes);
  free(s->nbytes);
}

typedef struct model_case {
  dc_module *m;
  dc_tensor *x, *y;   /* input [B, ...] and class targets [B] */
  dc_tensor **params; /* [np] */
  int np;
  saved init_params, bufs; /* values before the operation */
  uint64_t seed, ctr;      /* RNG state before the operation */
  bool have_ref;
  float out_ref[4096]; /* fault-free output */
  size_t out_n;
  saved grads_ref; /* fault-free gradients */
  float out[4096];
  dc_optim *opt;
  dc_optim_kind kind;
  dc_tensor *graph_loss; /* retained graph */
  double clip_ref;
} model_case;

static void model_init(model_case *c, const char *zoo, dc_shape in) {
  memset(c, 0, sizeof *c);
  dc_manual_seed(3);
  if (strcmp(zoo, "resnet18") == 0)
    c->m = dc_zoo_create(zoo, .num_classes = 10, .in_channels = 1, .width = 4, .small_input = true);
  else
    c->m = dc_zoo_create(zoo);
  cr_assert_not_null(c->m, "%s", dc_last_error());
  c->x = dc_randn(in, DC_F32);
  int64_t yv[8] = {1, 7, 3, 0, 9, 2, 5, 5};
  c->y = dc_from_data(yv, DC_SHAPE(in.d[0]), DC_I64);
  cr_assert(c->x && c->y);
  dc_named_tensor *ps = dc_module_parameters(c->m, &c->np);
  c->params = calloc((size_t)c->np, sizeof *c->params);
  for (int i = 0; i < c->np; i++) c->params[i] = ps[i].tensor;
  save_tensors(&c->init_params, ps, c->np);
  dc_named_tensors_free(ps, c->np);
  int nb = 0;
  dc_named_tensor *bs = dc_module_buffers(c->m, &nb);
  save_tensors(&c->bufs, bs, nb);
  dc_named_tensors_free(bs, nb);
  c->seed = dc_rng_get_state(&c->ctr);
}

static void model_free(model_case *c) {
  saved_free(&c->init_params);
  saved_free(&c->bufs);
  saved_free(&c->grads_ref);
  free(c->params);
  dc_free(c->x);
  dc_free(c->y);
  dc_module_free(c->m);
}

/* the state a forward starts from: parameters, running statistics and the RNG (dropout) */
static void reset_state(void *ud) {
  model_case *c = ud;
  restore_tensors(&c->init_params);
  restore_tensors(&c->bufs);
  dc_rng_set_state(c->seed, c->ctr);
  dc_module_zero_grad(c->m);
}

/* ---- forward ---- */
static int run_forward(void *ud) {
  model_case *c = ud;
  int rc = dc_scope_begin();
  if (rc != DC_OK) return rc;
  dc_tensor *out = dc_module_forward(c->m, c->x);
  rc = out ? DC_OK : dc_last_status();
  if (out) {
    c->out_n = (size_t)dc_numel(out);
    cr_assert(c->out_n <= 4096);
    rc = dc_copy_to_buffer(out, c->out, c->out_n * sizeof(float));
  }
  dc_scope_end();
  return rc;
}
static void check_forward(void *ud) {
  model_case *c = ud;
  if (!c->have_ref) memcpy(c->out_ref, c->out, c->out_n * sizeof(float));
  c->have_ref = true;
  cr_assert(memcmp(c->out, c->out_ref, c->out_n * sizeof(float)) == 0,
            "forward output differs from the fault-free run");
}

static void forward_sweep(const char *zoo, dc_shape in, bool train, int64_t stride) {
  model_case c;
  model_init(&c, zoo, in);
  dc_module_train(c.m, train);
  fault_case fc = {.what = train ? "forward (train mode)" : "forward (eval mode)",
                   .prepare = reset_state,
                   .run = run_forward,
                   .check = check_forward,
                   .stride = stride};
  bool prev = dc_set_grad_enabled(train);
  fault_report r = fault_sweep(&fc, &c);
  dc_set_grad_enabled(prev);
  cr_assert_gt(r.failures, 0, "no allocation failure was ever reported");
  model_free(&c);
}

/* The ResNet sweeps test every 5th / 13th allocation by default (every one with
 * DEEPC_FAULTS_FULL=1): its 40 convolutions make a backward take a while on a loaded machine. */
Test(faults, forward_cnn_eval) { forward_sweep("cnn_fashion", DC_SHAPE(4, 1, 28, 28), false, 1); }
Test(faults, forward_cnn_train) { forward_sweep("cnn_fashion", DC_SHAPE(4, 1, 28, 28), true, 1); }
Test(faults, forward_resnet_train) { forward_sweep("resnet18", DC_SHAPE(2, 1, 8, 8), true, 5); }
Test(faults, forward_mlp_train) { forward_sweep("mlp", DC_SHAPE(4, 784), true, 1); }

/* ---- backward ---- */
static void save_grads(model_case *c, saved *s) {
  dc_named_tensor *gs = calloc((size_t)(c->np > 0 ? c->np : 1), sizeof *gs);
  for (int i = 0; i < c->np; i++) gs[i].tensor = c->params[i]->grad;
  save_tensors(s, gs, c->np);
  free(gs);
}
static void check_grads(void *ud) {
  model_case *c = ud;
  if (!c->grads_ref.n) save_grads(c, &c->grads_ref);
  for (int i = 0; i < c->np; i++) {
    cr_assert_not_null(c->params[i]->grad, "parameter %d has no gradient", i);
    fault_expect_bytes("gradient", c->params[i]->grad, c->grads_ref.bytes[i],
                       c->grads_ref.nbytes[i]);
  }
}
/* Forward without faults, then backward with allocation fault_armed_n failing (0: none). */
static int64_t fault_armed_n;
static int run_backward(void *ud) {
  model_case *c = ud;
  int rc = dc_scope_begin();
  if (rc != DC_OK) return rc;
  dc_rng_set_state(c->seed, c->ctr);
  dc_tensor *out = dc_module_forward(c->m, c->x);
  dc_tensor *loss = out ? dc_cross_entropy(out, c->y) : NULL;
  cr_assert_not_null(loss, "%s", dc_last_error());
  dc_alloc_fail_at(fault_armed_n);
  rc = dc_backward(loss);
  dc_alloc_fail_at(0);
  dc_scope_end();
  return rc;
}

static void drop_grads(void *ud) { dc_module_zero_grad(((model_case *)ud)->m); }
static void cleanup_grads(void *ud) { dc_module_zero_grad(((model_case *)ud)->m); }

/* The backward's own sweep (fault_sweep would fault the forward too): every allocation of the
 * backward fails once; then the next backward, on a new graph, gives the fault-free gradients. */
static void backward_sweep(const char *zoo, dc_shape in, int64_t stride) {
  model_case c;
  model_init(&c, zoo, in);
  dc_module_train(c.m, true);
  /* count the backward's allocations */
  reset_state(&c);
  fault_armed_n = 0;
  int64_t a0 = dc_alloc_get_stats().total_allocs;
  cr_assert_eq(run_backward(&c), DC_OK, "%s", dc_last_error());
  int64_t total = dc_alloc_get_stats().total_allocs - a0;
  check_grads(&c);
  int64_t failures = 0;
  stride = fault_stride(stride);
  for (int64_t n = 1; n <= total; n += stride) {
    reset_state(&c);
    dc_alloc_stats s0 = dc_alloc_get_stats();
    fault_armed_n = n;
    dc_clear_error();
    int rc = run_backward(&c);
    if (rc == DC_OK) { /* n past the backward's allocations (total counted the forward's too) */
      check_grads(&c);
      drop_grads(&c);
      continue;
    }
    failures++;
    cr_assert(strstr(dc_last_error(), "memory"), "backward, allocation %lld: '%s'", (long long)n,
              dc_last_error());
    drop_grads(&c); /* leaves may hold partial sums, as in PyTorch: zero_grad drops them */
    fault_expect_same_stats("backward", n, "after the failure and zero_grad", s0,
                            dc_alloc_get_stats());
    /* usable: the next backward (a new graph) gives the fault-free gradients */
    reset_state(&c);
    fault_armed_n = 0;
    cr_assert_eq(run_backward(&c), DC_OK, "%s", dc_last_error());
    check_grads(&c);
    cleanup_grads(&c);
  }
  cr_assert_gt(failures, 0);
  cr_log_info("backward %s: %lld failures", zoo, (long long)failures);
  model_free(&c);
}

Test(faults, backward_cnn) { backward_sweep("cnn_fashion", DC_SHAPE(4, 1, 28, 28), 1); }
Test(faults, backward_resnet) { backward_sweep("resnet18", DC_SHAPE(2, 1, 8, 8), 13); }
Test(faults, backward_mlp) { backward_sweep("mlp", DC_SHAPE(4, 784), 1); }

/* A retained graph survives a failed backward: the same graph differentiates again. */
static int run_backward_retained(void *ud) {
  model_case *c = ud;
  return dc_backward(c->graph_loss, .retain_graph = true);
}
Test(faults, backward_retained_graph) {
  model_case c;
  model_init(&c, "cnn_fashion", DC_SHAPE(4, 1, 28, 28));
  dc_module_train(c.m, true);
  reset_state(&c);
  dc_scope_begin();
  dc_tensor *out = dc_module_forward(c.m, c.x);
  c.graph_loss = dc_keep(out ? dc_cross_entropy(out, c.y) : NULL);
  dc_scope_end();
  cr_assert_not_null(c.graph_loss, "%s", dc_last_error());
  fault_case fc = {.what = "backward (retain_graph)",
                   .prepare = drop_grads,
                   .run = run_backward_retained,
                   .check = check_grads,
                   .after_fail = drop_grads,
                   .cleanup = cleanup_grads};
  fault_report r = fault_sweep(&fc, &c);
  cr_assert_gt(r.failures, 0);
  dc_free(c.graph_loss);
  model_free(&c);
}

/* ---- optimizer step ---- */
static void opt_prepare(void *ud) {
  model_case *c = ud;
  restore_tensors(&c->init_params);
  dc_optim_hparams hp = dc_optim_defaults(c->kind);
  hp.lr = 0.01;
  if (c->kind == DC_OPTIM_SGD) hp.momentum = 0.9, hp.nesterov = true;
  if (c->kind == DC_OPTIM_ADAMW) hp.amsgrad = true;
  dc_param_group g = {c->params, c->np, hp};
  c->opt = dc_optim_new(c->kind, &g, 1);
  cr_assert_not_null(c->opt, "%s", dc_last_error());
}
static int opt_run(void *ud) { return dc_optim_step(((model_case *)ud)->opt); }
static void opt_after_fail(void *ud) {
  expect_tensors("parameters after a failed step", &((model_case *)ud)->init_params);
}
static void opt_check(void *ud) {
  model_case *c = ud;
  if (!c->grads_ref.n) { /* the fault-free run: keep the updated parameters */
    dc_named_tensor *ps = calloc((size_t)(c->np > 0 ? c->np : 1), sizeof *ps);
    for (int i = 0; i < c->np; i++) ps[i].tensor = c->params[i];
    save_tensors(&c->grads_ref, ps, c->np);
    free(ps);
  }
  expect_tensors("parameters after the step", &c->grads_ref);
}
static void opt_cleanup(void *ud) {
  model_case *c = ud;
  dc_optim_free(c->opt);
  c->opt = NULL;
}

static void optim_sweep(dc_optim_kind kind) {
  model_case c;
  model_init(&c, "cnn_fashion", DC_SHAPE(2, 1, 28, 28));
  c.kind = kind;
  for (int i = 0; i < c.np; i++) {
    dc_tensor *g = dc_full(dc_shape_of(c.params[i]), 0.01 * (i + 1), DC_F32);
    cr_assert_not_null(g);
    c.params[i]->grad = g; /* outside any scope: the parameter owns it */
  }
  fault_case fc = {.what = dc_optim_kind_name(kind),
                   .prepare = opt_prepare,
                   .run = opt_run,
                   .check = opt_check,
                   .after_fail = opt_after_fail,
                   .cleanup = opt_cleanup,
                   .may_keep = true};
  fault_report r = fault_sweep(&fc, &c);
  cr_assert_gt(r.failures, 0);
  model_free(&c);
}

Test(faults, step_sgd_nesterov) { optim_sweep(DC_OPTIM_SGD); }
Test(faults, step_adam) { optim_sweep(DC_OPTIM_ADAM); }
Test(faults, step_adamw_amsgrad) { optim_sweep(DC_OPTIM_ADAMW); }

/* ---- gradient clipping: a failure leaves the gradients as they were ---- */
static void clip_prepare(void *ud) { restore_tensors(&((model_case *)ud)->bufs); }
static int clip_run(void *ud) {
  model_case *c = ud;
  double total = 0;
  int rc = dc_clip_grad_norm_(c->params, c->np, 0.5, 2.0, false, &total);
  if (rc == DC_OK && c->clip_ref == 0) c->clip_ref = total;
  if (rc == DC_OK)
    cr_assert_eq(total, c->clip_ref, "total norm %.17g vs %.17g", total, c->clip_ref);
  return rc;
}
static void clip_after_fail(void *ud) {
  expect_tensors("gradients after a failed clip", &((model_case *)ud)->bufs);
}
static void clip_check(void *ud) {
  model_case *c = ud;
  if (!c->grads_ref.n) save_grads(c, &c->grads_ref);
  for (int i = 0; i < c->np; i++)
    fault_expect_bytes("clipped gradient", c->params[i]->grad, c->grads_ref.bytes[i],
                       c->grads_ref.nbytes[i]);
}
Test(faults, clip_grad_norm) {
  model_case c;
  model_init(&c, "cnn_fashion", DC_SHAPE(2, 1, 28, 28));
  saved_free(&c.bufs); /* bufs holds the gradients here */
  for (int i = 0; i < c.np; i++) {
    c.params[i]->grad = dc_full(dc_shape_of(c.params[i]), 0.01 * (i + 1), DC_F32);
    cr_assert_not_null(c.params[i]->grad);
  }
  save_grads(&c, &c.bufs);
  fault_case fc = {.what = "clip_grad_norm_",
                   .prepare = clip_prepare,
                   .run = clip_run,
                   .check = clip_check,
                   .after_fail = clip_after_fail};
  fault_sweep(&fc, &c);
  model_free(&c);
}

/* ---- a whole trainer epoch (loader, forward, loss, backward, step, metrics, validation) ----
 * A failed epoch is not counted (epochs_done stays 0); deepc train then stops and --resume
 * restarts from the last checkpoint. Every allocation of the epoch fails once. */
typedef struct epoch_case {
  dc_tensor *x, *y;
  dc_dataset *ds;
  dc_loader *tl, *vl;
  dc_module *m;
  dc_optim *opt;
  dc_trainer *t;
  bool have_ref;
  saved ref;
  double loss_ref, loss;
} epoch_case;

static void epoch_prepare(void *ud) {
  epoch_case *e = ud;
  dc_manual_seed(11);
  e->m = dc_zoo_create("mlp", .in_features = 16, .hidden = (int64_t[]){8}, .nhidden = 1,
                       .num_classes = 3);
  dc_named_tensor *ps = NULL;
  int np = 0;
  ps = dc_module_parameters(e->m, &np);
  dc_tensor *params[8];
  cr_assert(np <= 8);
  for (int i = 0; i < np; i++) params[i] = ps[i].tensor;
  dc_named_tensors_free(ps, np);
  e->opt = dc_optim_adam(params, np, 0.01);
  e->ds = dc_tensor_dataset(e->x, e->y);
  e->tl = dc_loader_new(e->ds, .batch_size = 4, .shuffle = true, .seed = 5);
  e->vl = dc_loader_new(e->ds, .batch_size = 6);
  e->t = dc_trainer_new(e->m, e->opt, e->tl, (dc_trainer_opts){.epochs = 1, .val = e->vl});
  cr_assert(e->m && e->opt && e->ds && e->tl && e->vl && e->t, "%s", dc_last_error());
}
static int epoch_run(void *ud) {
  epoch_case *e = ud;
  dc_epoch_stats st;
  int rc = dc_trainer_epoch(e->t, &st);
  if (rc == DC_OK) e->loss = st.train_loss;
  return rc;
}
static void epoch_check(void *ud) {
  epoch_case *e = ud;
  int np = 0;
  dc_named_tensor *ps = dc_module_parameters(e->m, &np);
  if (!e->have_ref) {
    save_tensors(&e->ref, ps, np);
    e->loss_ref = e->loss;
    e->have_ref = true;
  }
  for (int i = 0; i < np; i++)
    fault_expect_bytes("parameter after the epoch", ps[i].tensor, e->ref.bytes[i],
                       e->ref.nbytes[i]);
  dc_named_tensors_free(ps, np);
  cr_assert_eq(e->loss, e->loss_ref);
  cr_assert_eq(dc_trainer_epochs_done(e->t), 1);
}
static void epoch_after_fail(void *ud) {
  cr_assert_eq(dc_trainer_epochs_done(((epoch_case *)ud)->t), 0);
}
static void epoch_cleanup(void *ud) {
  epoch_case *e = ud;
  dc_trainer_free(e->t);
  dc_loader_free(e->tl);
  dc_loader_free(e->vl);
  dc_dataset_free(e->ds);
  dc_optim_free(e->opt);
  dc_module_free(e->m);
}
Test(faults, trainer_epoch) {
  epoch_case e = {0};
  dc_manual_seed(2);
  e.x = dc_randn(DC_SHAPE(12, 16), DC_F32);
  int64_t yv[12] = {0, 1, 2, 0, 1, 2, 2, 1, 0, 0, 1, 2};
  e.y = dc_from_data(yv, DC_SHAPE(12), DC_I64);
  fault_case fc = {.what = "trainer epoch",
                   .prepare = epoch_prepare,
                   .run = epoch_run,
                   .check = epoch_check,
                   .after_fail = epoch_after_fail,
                   .cleanup = epoch_cleanup,
                   .may_keep = true};
  fault_report r = fault_sweep(&fc, &e);
  cr_assert_gt(r.failures, 0);
  saved_free(&e.ref);
  dc_free(e.x);
  dc_free(e.y);
}
