/* NCCL collectives for CUDA tensors (one process per GPU): the GPU is picked by the local rank
 * at init, the communicator is made at the first CUDA collective from an id that rank 0 sends
 * over MPI, and each collective runs on a dist stream ordered after the CUDA backend's stream and
 * is polled (event + async error) against the same deadline as the MPI path. Built only with
 * DC_HAVE_NCCL; untested on the project's CI machine, which has no GPU. */
#include "dist-impl.h"

#ifdef DC_HAVE_NCCL
#include <cuda_runtime.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes" /* nccl.h's f() declarations */
#include <nccl.h>
#pragma GCC diagnostic pop
#include <string.h>

static ncclComm_t g_nccl;
static cudaStream_t g_stream;
static bool g_ready, g_have_device;

static int cuda_fail(cudaError_t e, const char *what) {
  return dc__errs(DC_ERR_BACKEND, "dist (NCCL): %s failed on rank %d: %s", what, dc__dist.rank,
                  cudaGetErrorString(e));
}

static int nccl_fail(ncclResult_t e, const char *what) {
  return dc__errs(DC_ERR_BACKEND, "dist (NCCL): %s failed on rank %d: %s", what, dc__dist.rank,
                  ncclGetErrorString(e));
}

int dc__nccl_setup_device(int local_rank) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError(); /* no GPU: CPU tensors only */
    return DC_OK;
  }
  cudaError_t e = cudaSetDevice(local_rank % count);
  if (e != cudaSuccess) return cuda_fail(e, "cudaSetDevice(local rank)");
  g_have_device = true;
  return DC_OK;
}

/* The communicator, made collectively at the first CUDA collective. */
static int ensure_comm(void) {
  if (g_ready) return DC_OK;
  if (!g_have_device)
    return dc__errs(DC_ERR_STATE, "dist (NCCL): rank %d has no GPU for its CUDA tensors",
                    dc__dist.rank);
  ncclUniqueId id;
  memset(&id, 0, sizeof id);
  ncclResult_t r;
  if (dc__dist.rank == 0 && (r = ncclGetUniqueId(&id)) != ncclSuccess)
    return nccl_fail(r, "ncclGetUniqueId");
  int rc = dc_dist_broadcast_buffer(&id, (int64_t)sizeof id, DC_U8, 0);
  if (rc != DC_OK) return rc;
  cudaError_t e = cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking);
  if (e != cudaSuccess) return cuda_fail(e, "cudaStreamCreate");
  if ((r = ncclCommInitRank(&g_nccl, dc__dist.size, id, dc__dist.rank)) != ncclSuccess)
    return nccl_fail(r, "ncclCommInitRank");
  g_ready = true;
  return DC_OK;
}

static bool nccl_type(dc_dtype dt, ncclDataType_t *out) {
  switch (dt) {
  case DC_F32:
    *out = ncclFloat32;
    return true;
  case DC_F64:
    *out = ncclFloat64;
    return true;
  case DC_I64:
    *out = ncclInt64;
    return true;
  case DC_I32:
    *out = ncclInt32;
    return true;
  case DC_U8:
  case DC_BOOL:
    *out = ncclUint8;
    return true;
  case DC_F16:
    *out = ncclFloat16;
    return true;
  case DC_BF16:
    *out = ncclBfloat16;
    return true;
  case DC_DTYPE_COUNT:
    return false;
  }
  return false;
}

static ncclRedOp_t nccl_op(dc_dist_op op) {
  switch (op) {
  case DC_DIST_SUM:
    return ncclSum;
  case DC_DIST_AVG:
    return ncclAvg;
  case DC_DIST_MAX:
    return ncclMax;
  case DC_DIST_MIN:
    return ncclMin;
  case DC_DIST_OP_COUNT:
    break;
  }
  return ncclSum;
}

int dc__nccl_start(void *data, int64_t n, dc_dtype dt, int op_or_root, bool bcast,
                   dc__dist_req *req) {
  int rc = ensure_comm();
  if (rc != DC_OK) return rc;
  ncclDataType_t t;
  if (!nccl_type(dt, &t))
    return dc__errs(DC_ERR_UNSUPPORTED, "dist (NCCL): %s data", dc_dtype_name(dt));
  /* run after the work already queued on the CUDA backend's stream (the gradients' producers:
   * a non-blocking stream, which the legacy default stream does not order) */
  cudaEvent_t before, after;
  cudaError_t e = cudaEventCreateWithFlags(&before, cudaEventDisableTiming);
  if (e != cudaSuccess) return cuda_fail(e, "cudaEventCreate");
  const dc_device_mem *m = dc__device_mem(DC_CUDA);
  cudaStream_t producer =
      m && m->native_stream ? (cudaStream_t)m->native_stream() : cudaStreamLegacy;
  cudaEventRecord(before, producer);
  cudaStreamWaitEvent(g_stream, before, 0);
  cudaEventDestroy(before);
  ncclResult_t r = bcast ? ncclBroadcast(data, data, (size_t)n, t, op_or_root, g_nccl, g_stream)
                         : ncclAllReduce(data, data, (size_t)n, t, nccl_op((dc_dist_op)op_or_root),
                                         g_nccl, g_stream);
  if (r != ncclSuccess) return nccl_fail(r, req->what);
  if ((e = cudaEventCreateWithFlags(&after, cudaEventDisableTiming)) != cudaSuccess)
    return cuda_fail(e, "cudaEventCreate");
  cudaEventRecord(after, g_stream);
  memcpy(req->handle, &after, sizeof after);
  req->kind = DC__DIST_NCCL;
  return DC_OK;
}

int dc__nccl_test(dc__dist_req *req, bool *done) {
  cudaEvent_t ev;
  memcpy(&ev, req->handle, sizeof ev);
  cudaError_t e = cudaEventQuery(ev);
  ncclResult_t async = ncclSuccess;
  ncclCommGetAsyncError(g_nccl, &async);
  if (async != ncclSuccess) {
    cudaEventDestroy(ev);
    req->kind = DC__DIST_NONE;
    return nccl_fail(async, req->what);
  }
  *done = e == cudaSuccess;
  if (e != cudaSuccess && e != cudaErrorNotReady) {
    cudaEventDestroy(ev);
    req->kind = DC__DIST_NONE;
    return cuda_fail(e, req->what);
  }
  if (*done) cudaEventDestroy(ev);
  return DC_OK;
}

void dc__nccl_abort(void) {
  if (g_ready) ncclCommAbort(g_nccl);
  g_ready = false;
}

void dc__nccl_finalize(void) {
  if (g_ready) {
    cudaStreamSynchronize(g_stream);
    ncclCommDestroy(g_nccl);
    cudaStreamDestroy(g_stream);
  }
  g_ready = g_have_device = false;
}

#else
/* Without NCCL this file is empty; comm.c reports CUDA tensors as unsupported. */
typedef int dc__dist_no_nccl;
#endif
