/* The models, batches and optimizers the data-parallel tests train (test_dist_ddp.c,
 * test_testdev_ddp.c, tests/gpu/nccl_ddp.c), so that the three run the same cases.
 * Shapes: DDP_B global batch, DDP_F features, DDP_K classes of the MLP; the CNN takes
 * [DDP_B, 1, 8, 8] images and has 3 classes. */
#ifndef DDP_CASES_H
#define DDP_CASES_H

#include "dist/dist-impl.h"
#include "dist_check.h"

enum { DDP_B = 8, DDP_F = 6, DDP_K = 4, DDP_CNN_K = 3 };

typedef struct ddp_batch {
  dc_tensor *x; /* [DDP_B, DDP_F] or [DDP_B, 1, 8, 8] */
  dc_tensor *y; /* [DDP_B] int64 */
} ddp_batch;

/* The same batch on every rank (seeded on the cpu). */
static inline ddp_batch ddp_make_batch(uint64_t seed, bool image) {
  dc_manual_seed(seed);
  ddp_batch bt;
  bt.x =
      image ? dc_randn(DC_SHAPE(DDP_B, 1, 8, 8), DC_F32) : dc_randn(DC_SHAPE(DDP_B, DDP_F), DC_F32);
  bt.y = dc_randint(0, image ? DDP_CNN_K : DDP_K, DC_SHAPE(DDP_B), DC_I64);
  return bt;
}

/* This rank's rows [r * b, (r + 1) * b) of a global batch, b = DDP_B / ranks (a view). */
static inline dc_tensor *ddp_rows(dc_tensor *t /* [DDP_B, ...] */) {
  int64_t b = DDP_B / dc_dist_size();
  return dc_narrow(t, 0, dc_dist_rank() * b, b);
}

static inline dc_module *ddp_mlp(void) {
  return dc_nn_sequential(dc_nn_linear(DDP_F, 16), dc_nn_tanh(), dc_nn_linear(16, DDP_K));
}

/* Smooth activation and average pooling: with ReLU and max pooling two float32 runs that only
 * round differently drift apart as soon as one value near a kink (0 for ReLU, a near-tie for max
 * pooling) lands on the other side, which a float32 run against a float64 one shows as well.
 * No bias before batch norm: its gradient is rounding noise that Adam would blow up. */
static inline dc_module *ddp_cnn(void) {
  return dc_nn_sequential(dc_nn_conv2d(1, 4, 3, .padding = 1, .no_bias = true),
                          dc_nn_batchnorm2d(4), dc_nn_tanh(), dc_nn_avgpool2d(2),
                          dc_nn_flatten(1, -1), dc_nn_linear(64, DDP_CNN_K));
}

/* Adam (lr 0.01) or SGD with momentum (lr 0.1, momentum 0.9) over m's trainable parameters. */
static inline dc_optim *ddp_make_opt(dc_module *m, bool adam) {
  int n = 0;
  dc_named_tensor *ps = dc_module_trainable_parameters(m, &n);
  dc_tensor *t[16];
  for (int i = 0; i < n && i < 16; i++) t[i] = ps[i].tensor;
  dc_optim *o = adam ? dc_optim_adam(t, n, 0.01) : dc_optim_sgd(t, n, 0.1, 0.9);
  dc_named_tensors_free(ps, n);
  return o;
}

/* Reports every parameter's gradient in reverse order, like the engine's hook would; with
 * repeat_first the first one reported comes once more at the end (a late report). */
static inline void ddp_report_grads(dc_module *m, bool repeat_first) {
  int n = 0;
  dc_named_tensor *ps = dc_module_trainable_parameters(m, &n);
  for (int i = n - 1; i >= 0; i--)
    if (dc__grad_ready_hook) dc__grad_ready_hook(ps[i].tensor, dc__grad_ready_ud);
  if (repeat_first && n > 0 && dc__grad_ready_hook)
    dc__grad_ready_hook(ps[n - 1].tensor, dc__grad_ready_ud);
  dc_named_tensors_free(ps, n);
}

#endif
