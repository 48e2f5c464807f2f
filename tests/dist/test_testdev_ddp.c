/* Data-parallel training on the test device (memory the host cannot read) against the same run
 * on the cpu: the same program, seeds and batches, the model moved to testdev in one run; after
 * K steps every parameter and buffer holds the same bits on both devices, and the same on every
 * rank. Covered: the start broadcast (each rank initialises its model differently), gradient
 * buckets (one; many small ones started during backward by gradient-ready reports), SGD with
 * momentum and Adam, SyncBatchNorm, per-rank batch norm with rank 0's buffers, a parameter used
 * by rank 0 only, and the collectives on testdev tensors themselves.
 * Shapes: B global batch, b = B / R per rank, F features, K classes. */
#include "ddp_cases.h"

#include <string.h>

enum { B = DDP_B, F = DDP_F, STEPS = 4 };

typedef struct config {
  const char *name;
  bool cnn, sync_bn, adam, reports, unused;
  dc_dist_ddp_opts o;
} config;

/* Every state-dict tensor's bytes in order, as a host buffer (free()). */
static uint8_t *state_bytes(dc_module *m, size_t *n) {
  dc_state_dict *sd = dc_module_state_dict(m);
  size_t total = 0;
  for (int i = 0; i < dc_state_dict_size(sd); i++) {
    dc_tensor *t = dc_state_dict_tensor_at(sd, i);
    total += (size_t)dc_numel(t) * dc_dtype_size(t->dtype);
  }
  uint8_t *buf = malloc(total + 1);
  size_t at = 0;
  for (int i = 0; buf && i < dc_state_dict_size(sd); i++) {
    dc_tensor *t = dc_state_dict_tensor_at(sd, i);
    size_t nb = (size_t)dc_numel(t) * dc_dtype_size(t->dtype);
    CHECK_OK(dc_copy_to_buffer(t, buf + at, nb));
    at += nb;
  }
  dc_state_dict_free(sd);
  *n = total;
  return buf;
}

static uint64_t fnv1a(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/* Each rank starts from its own initialisation: the broadcast at the start must fix that. */
static dc_module *make_model(const config *c) {
  dc_manual_seed(7 + (uint64_t)dc_dist_rank());
  if (c->unused) return dc_nn_sequential(dc_nn_linear(F, 3), dc_nn_linear(F, 3));
  return c->cnn ? ddp_cnn() : ddp_mlp();
}

/* This rank's rows [r * b, (r + 1) * b) of a seeded global batch, on dev. */
static dc_tensor *my_rows(dc_tensor *t, dc_device dev) { return dc_to_device(ddp_rows(t), dev); }

/* One training run on dev; returns the final state's bytes. */
static uint8_t *train(const config *c, dc_device dev, size_t *n) {
  dc_module *net = make_model(c);
  CHECK(net != NULL, "%s", c->name);
  if (dev != DC_CPU) CHECK_OK(dc_module_to(net, dev));
  if (c->sync_bn) CHECK_OK(dc_dist_convert_sync_batchnorm(net));
  dc_dist_ddp *ddp = dc_dist_ddp_new_opt(net, c->o);
  CHECK(ddp != NULL, "%s: ddp_new", c->name);
  dc_optim *opt = ddp_make_opt(net, c->adam);
  for (int s = 0; ddp && s < STEPS; s++) {
    dc_scope_begin();
    dc_manual_seed(1000 + (uint64_t)s);
    dc_tensor *x =
        c->cnn ? dc_randn(DC_SHAPE(B, 1, 8, 8), DC_F32) : dc_randn(DC_SHAPE(B, F), DC_F32);
    dc_tensor *y = dc_randint(0, c->cnn || c->unused ? 3 : DDP_K, DC_SHAPE(B), DC_I64);
    dc_tensor *xr = my_rows(x, dev), *out;
    if (c->unused) { /* layer 1 on rank 0 only */
      out = dc_module_forward(dc_module_child_at(net, 0), xr);
      if (dc_dist_rank() == 0) out = dc_add(out, dc_module_forward(dc_module_child_at(net, 1), xr));
    } else {
      out = dc_module_forward(net, xr);
    }
    CHECK(out && out->device == dev, "%s: forward on %s (%s)", c->name, dc_device_name(dev),
          dc_last_error());
    dc_tensor *loss = dc_cross_entropy(out, my_rows(y, dev));
    /* the seed gradient on the loss's device (the engine's own ones are made on the cpu) */
    CHECK_OK(dc_backward(loss));
    if (c->reports) ddp_report_grads(net, false);
    CHECK_OK(dc_dist_ddp_sync(ddp));
    CHECK_OK(dc_optim_step(opt));
    dc_optim_zero_grad(opt);
    dc_scope_end();
  }
  uint8_t *bytes = state_bytes(net, n);
  dc_dist_ddp_free(ddp);
  dc_optim_free(opt);
  dc_module_free(net);
  return bytes;
}

static void check_config(const config *c) {
  size_t nc = 0, nd = 0;
  uint8_t *cpu = train(c, DC_CPU, &nc), *dev = train(c, DC_TESTDEV, &nd);
  CHECK(cpu && dev && nc == nd && memcmp(cpu, dev, nc) == 0,
        "%s: the testdev run's parameters and buffers differ from the cpu run's (%zu, %zu bytes)",
        c->name, nc, nd);
  /* the ranks agree: the same hash everywhere */
  int64_t h[2] = {(int64_t)(fnv1a(dev, nd) >> 1), -(int64_t)(fnv1a(dev, nd) >> 1)};
  CHECK_OK(dc_dist_all_reduce_buffer(h, 2, DC_I64, DC_DIST_MAX));
  CHECK(h[0] == -h[1], "%s: the ranks' models differ", c->name);
  free(cpu);
  free(dev);
}

/* Collectives on testdev tensors give the cpu's bits: float average, integer sum and max, a
 * broadcast from the last rank, a non-contiguous tensor refused. */
static void test_collectives(void) {
  int R = dc_dist_size(), r = dc_dist_rank();
  dc_scope_begin();
  dc_manual_seed(40 + (uint64_t)r);
  dc_tensor *f = dc_randn(DC_SHAPE(3, 5), DC_F32), *fd = dc_to_device(f, DC_TESTDEV);
  dc_tensor *i = dc_randint(-50, 50, DC_SHAPE(7), DC_I64), *id = dc_to_device(i, DC_TESTDEV);
  dc_tensor *im = dc_clone(i), *imd = dc_to_device(i, DC_TESTDEV);
  dc_tensor *b = dc_randn(DC_SHAPE(4), DC_F64), *bd = dc_to_device(b, DC_TESTDEV);
  CHECK_OK(dc_dist_all_reduce_(f, DC_DIST_AVG));
  CHECK_OK(dc_dist_all_reduce_(fd, DC_DIST_AVG));
  CHECK_OK(dc_dist_all_reduce_(i, DC_DIST_SUM));
  CHECK_OK(dc_dist_all_reduce_(id, DC_DIST_SUM));
  CHECK_OK(dc_dist_all_reduce_(im, DC_DIST_MAX));
  CHECK_OK(dc_dist_all_reduce_(imd, DC_DIST_MAX));
  CHECK_OK(dc_dist_broadcast_(b, R - 1));
  CHECK_OK(dc_dist_broadcast_(bd, R - 1));
  dc_tensor *pairs[4][2] = {{f, fd}, {i, id}, {im, imd}, {b, bd}};
  const char *names[4] = {"average", "sum", "max", "broadcast"};
  for (int k = 0; k < 4; k++) {
    CHECK(pairs[k][1]->device == DC_TESTDEV, "%s: left testdev", names[k]);
    size_t nb = (size_t)dc_numel(pairs[k][0]) * dc_dtype_size(pairs[k][0]->dtype);
    uint8_t x[256], y[256];
    CHECK_OK(dc_copy_to_buffer(pairs[k][0], x, nb));
    CHECK_OK(dc_copy_to_buffer(pairs[k][1], y, nb));
    CHECK(memcmp(x, y, nb) == 0, "%s of testdev tensors differs from the cpu's", names[k]);
  }
  /* a differentiable all-reduce (SyncBatchNorm's) keeps the device, forward and backward */
  dc_tensor *s = dc_dist_all_reduce_sum(fd);
  CHECK(s && s->device == DC_TESTDEV, "all_reduce_sum: %s", dc_last_error());
  dc_clear_error();
  CHECK(dc_dist_all_reduce_(dc_transpose(fd, 0, 1), DC_DIST_SUM) == DC_ERR_ARG, "%s",
        "a non-contiguous testdev tensor");
  dc_scope_end();
}

int main(void) {
  if (dc_dist_init(.timeout_s = 60) != DC_OK) {
    fprintf(stderr, "dist_init: %s\n", dc_last_error());
    return 1;
  }
  if (!dc_device_available(DC_TESTDEV)) {
    fprintf(stderr, "this build lacks the test device (cmake -DDC_TESTDEV=ON)\n");
    dc_dist_finalize();
    return 1;
  }
  int64_t live = dc_live_tensors();
  test_collectives();
  const double small = 200.0 / (1 << 20); /* 200-byte buckets */
  const config configs[] = {
      {"MLP, SGD with momentum, one bucket", .o = {0}},
      {"MLP, small buckets started by reports", .reports = true, .o = {.bucket_mb = small}},
      {"MLP, summed gradients", .o = {.sum = true}},
      {"CNN, SyncBatchNorm, Adam", .cnn = true, .sync_bn = true, .adam = true, .o = {0}},
      {"CNN, per-rank batch norm with rank 0's buffers, Adam", .cnn = true, .adam = true,
       .o = {.bucket_mb = small}},
      {"a layer used by rank 0 only", .unused = true, .o = {0}},
  };
  for (size_t k = 0; k < sizeof configs / sizeof *configs; k++) check_config(&configs[k]);
  CHECK(dc_live_tensors() == live, "%lld tensors leaked", (long long)(dc_live_tensors() - live));
  return dist_check_finish("dist testdev ddp");
}
