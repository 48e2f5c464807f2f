/* Data-parallel training across processes and hosts (MPI) and GPUs (NCCL), PyTorch's
 * torch.distributed + DistributedDataParallel + DistributedSampler + SyncBatchNorm in C.
 * One process per CPU socket, node or GPU, all running the same program under mpirun: each
 * rank trains the same model on its shard of every batch and the gradients are averaged with
 * all-reduce, so the ranks stay identical. Without MPI (or not launched by mpirun) every call
 * works as a job of one rank, so single-process code needs no change. See docs/distributed.md. */
#ifndef DEEPC_DIST_H
#define DEEPC_DIST_H

#include "nn.h"
#include "tensor.h"
#include "train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================= the job =======================
 * Call dc_dist_init once at the start of main (it reads the rank and size that mpirun gives;
 * without mpirun the job is one rank), dc_dist_finalize at the end. Collectives must be called
 * by every rank in the same order. A collective that waits longer than the timeout for the
 * other ranks fails with DC_ERR_STATE naming the operation and the rank; a failing rank should
 * then end the whole job with dc_dist_abort, so no rank hangs. */
typedef struct dc_dist_opts {
  double timeout_s;       /* 0: $DEEPC_DIST_TIMEOUT, else 600 seconds */
  bool no_mpi;            /* stay a job of one rank even under mpirun */
  bool no_signal_handler; /* do not install the SIGTERM handler that tells a rank stopped by
                           * another rank's failure to say so before it ends */
} dc_dist_opts;
DC_API int dc_dist_init_opt(dc_dist_opts o);
#define dc_dist_init(...) dc_dist_init_opt((dc_dist_opts){__VA_ARGS__})
/* Waits for every rank (barrier) and shuts MPI/NCCL down. Safe to call without init. */
DC_API int dc_dist_finalize(void);
DC_API bool dc_dist_is_initialized(void);
/* Whether this build has the MPI path / the NCCL path (CUDA tensors). */
DC_API bool dc_dist_has_mpi(void);
DC_API bool dc_dist_has_nccl(void);
/* "mpi", "mpi+nccl" or "none" (one process). */
DC_API const char *dc_dist_backend_name(void);

DC_API int dc_dist_rank(void);       /* 0 .. size-1; 0 before init */
DC_API int dc_dist_size(void);       /* number of ranks; 1 before init */
DC_API int dc_dist_local_rank(void); /* rank among the processes of this host (picks the GPU) */
DC_API int dc_dist_local_size(void);
DC_API bool dc_dist_is_main(void); /* rank 0: the one that writes logs and checkpoints */
DC_API double dc_dist_timeout(void);
DC_API void dc_dist_set_timeout(double seconds);

/* Prints "deepc [rank r/R]: <message>; ending the job on every rank" to stderr and ends every
 * rank (MPI_Abort with code). In a job of one rank it only prints and returns: the caller exits. */
DC_API void dc_dist_abort(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ======================= collectives ======================= */
typedef enum dc_dist_op {
  DC_DIST_SUM = 0,
  DC_DIST_AVG, /* sum / size (floating-point data only) */
  DC_DIST_MAX,
  DC_DIST_MIN,
  DC_DIST_OP_COUNT
} dc_dist_op;

DC_API int dc_dist_barrier(void);
/* In place over the whole tensor on every rank (contiguous; same shape and dtype everywhere).
 * CPU tensors go through MPI in place, CUDA tensors through NCCL (in a build with it), tensors
 * on other devices through MPI on a host copy written back to the device (synchronises). */
DC_API int dc_dist_all_reduce_(dc_tensor *t, dc_dist_op op);
/* Copies root's values into t on every other rank. */
DC_API int dc_dist_broadcast_(dc_tensor *t, int root);
/* The same on a host buffer of n elements of dtype dt. */
DC_API int dc_dist_all_reduce_buffer(void *data, int64_t n, dc_dtype dt, dc_dist_op op);
DC_API int dc_dist_broadcast_buffer(void *data, int64_t n, dc_dtype dt, int root);
/* Every parameter and buffer of m takes root's values (the start of data-parallel training). */
DC_API int dc_dist_broadcast_module(dc_module *m, int root);

/* ======================= gradient all-reduce (DistributedDataParallel) =======================
 * dc_dist_ddp_new broadcasts the model from rank 0 and groups the trainable parameters, in
 * reverse order, into buckets of about bucket_mb megabytes. After dc_backward, before the
 * optimizer step, dc_dist_ddp_sync averages every gradient over the ranks, one all-reduce per
 * bucket on a flat buffer. A parameter without a gradient on this rank counts as zeros; it
 * gets a gradient when any rank produced one and stays NULL when none did.
 *   dc_dist_ddp *ddp = dc_dist_ddp_new(model);
 *   loop: forward, loss, dc_backward(loss), dc_dist_ddp_sync(ddp), dc_optim_step(opt)
 * Overlap: when the autograd engine reports each gradient as it is accumulated (the hook below),
 * a bucket's all-reduce starts as soon as its gradients are complete, while the backward pass
 * goes on with earlier layers; dc_dist_ddp_sync then only waits. Without reports, every bucket
 * starts in dc_dist_ddp_sync. */
typedef struct dc_dist_ddp dc_dist_ddp;
typedef struct dc_dist_ddp_opts {
  double bucket_mb;          /* 0: 25 (PyTorch's bucket_cap_mb) */
  bool sum;                  /* sum the gradients instead of averaging them */
  bool no_broadcast;         /* do not broadcast parameters and buffers from rank 0 at creation */
  bool no_broadcast_buffers; /* do not copy rank 0's buffers (batch-norm running statistics)
                              * to every rank at each sync (PyTorch's broadcast_buffers) */
  bool no_overlap;           /* ignore gradient-ready reports; all-reduce in dc_dist_ddp_sync */
} dc_dist_ddp_opts;
DC_API dc_dist_ddp *dc_dist_ddp_new_opt(dc_module *m, dc_dist_ddp_opts o);
#define dc_dist_ddp_new(m, ...) dc_dist_ddp_new_opt((m), (dc_dist_ddp_opts){__VA_ARGS__})
DC_API int dc_dist_ddp_sync(dc_dist_ddp *d);
DC_API void dc_dist_ddp_free(dc_dist_ddp *d);
DC_API int dc_dist_ddp_num_buckets(const dc_dist_ddp *d);
/* Parameters in bucket b (in the order they sit in the flat buffer) and its size in bytes. */
DC_API int dc_dist_ddp_bucket_params(const dc_dist_ddp *d, int b, int64_t *bytes);
/* Buckets whose all-reduce started during the backward pass at the last sync (overlap). */
DC_API int dc_dist_ddp_overlapped(const dc_dist_ddp *d);

/* Gradient-ready reports. The autograd engine calls dc__grad_ready_hook(t, ud) (when set) right
 * after it has accumulated a gradient into the leaf t's .grad; dc_dist_ddp_new installs
 * dc_dist_grad_ready there. A program with its own backward can call dc_dist_grad_ready itself. */
typedef void (*dc_grad_ready_fn)(dc_tensor *leaf, void *ud);
DC_API void dc_set_grad_ready_hook(dc_grad_ready_fn fn, void *ud);
DC_API void dc_dist_grad_ready(dc_tensor *leaf, void *ud);

/* ======================= distributed sampler =======================
 * PyTorch's DistributedSampler: an epoch's order of n indices (shuffled or not) is padded by
 * repeating its head to a multiple of the number of ranks, and rank r takes positions r, r + R,
 * r + 2R, ... so every rank gets the same count and no sample is used twice unless padding needs
 * it. uneven: no padding, shards differ by at most one (for evaluation, where the counts are
 * summed afterwards). The loader does this itself with .num_replicas and .rank (data.h). */
DC_API int64_t dc_dist_shard_len(int64_t n, int num_replicas, int rank, bool uneven);
/* out[dc_dist_shard_len(...)] = order[rank + k * num_replicas] (wrapping); order NULL: 0..n-1. */
DC_API int dc_dist_shard(const int64_t *order, int64_t n, int num_replicas, int rank, bool uneven,
                         int64_t *out);
/* The shard of epoch `epoch` with the loader's shuffle for seed (same permutation as
 * dc_loader_new(ds, .shuffle = true, .seed = seed) at that epoch). */
DC_API int dc_dist_sampler_indices(int64_t n, int num_replicas, int rank, bool shuffle,
                                   uint64_t seed, int64_t epoch, bool uneven, int64_t *out);

/* ======================= synchronised batch norm =======================
 * Replaces, in place, every BatchNorm1d/2d of the tree by SyncBatchNorm (the same parameters,
 * buffers and state-dict keys): in training mode the mean and variance are computed over the
 * samples of all ranks (all-reduce of per-channel sums), so 2 ranks with batch 32 normalise
 * exactly like 1 rank with batch 64. Eval mode uses the running statistics as before. Default
 * (without this call): each rank normalises with its own batch, like PyTorch's DDP. */
DC_API int dc_dist_convert_sync_batchnorm(dc_module *m);
/* y = sum over ranks of x, differentiable (its backward all-reduces the gradient). */
DC_API dc_tensor *dc_dist_all_reduce_sum(dc_tensor *x);

/* ======================= with the trainer (train.h) =======================
 * The trainer's data-parallel hooks for a model wrapped in d: the batch loss is averaged over
 * the ranks, the gradients are synchronised with dc_dist_ddp_sync after each backward, and each
 * epoch's metrics are summed over the ranks, so every rank logs the numbers of the whole job.
 *   to.dist = dc_dist_trainer_hooks(ddp); t = dc_trainer_new(model, opt, sharded_loader, to); */
DC_API dc_trainer_dist dc_dist_trainer_hooks(dc_dist_ddp *d);
/* Sums m over the ranks (confusion matrix, counts, top-k hits, loss sum) and *loss_sum (may be
 * NULL). Every rank must have the same number of classes. */
DC_API int dc_dist_metrics_all_reduce(dc_metrics *m, double *loss_sum);

#ifdef __cplusplus
}
#endif
#endif
