/* The CUDA backend's registration and runtime state: the registry's builtin registration calls
 * dc__cuda_probe(), which returns the table for the registry to install when a GPU and its
 * driver answer, and otherwise leaves cuda out with the reason core repeats when cuda is asked for
 * ("no CUDA device: cudaGetDeviceCount: ..."). Also the error helpers every family uses and the
 * TF32 switch. */
#include "cuda-impl.h"

#include <stdlib.h>

static cudaStream_t g_stream;

cudaStream_t dc__cuda_stream(void) { return g_stream; }

/* the switch is core's public one (dc_allow_tf32: DEEPC_ALLOW_TF32=1 or a call) */
bool dc__cuda_allow_tf32(void) { return dc_allow_tf32(); }
void dc__cuda_set_allow_tf32(bool on) { dc_set_allow_tf32(on); }

int dc__cuda_fail(cudaError_t e, const char *what) {
  if (e == cudaSuccess) return DC_OK;
  cudaGetLastError(); /* clears a non-sticky error; a sticky one stays and will say so again */
  return dc__errs(DC_ERR_BACKEND, "cuda: %s failed: %s (%s)", what, cudaGetErrorName(e),
                  cudaGetErrorString(e));
}

int dc__cuda_launched(const char *what) { return dc__cuda_fail(cudaGetLastError(), what); }

int dc__cuda_unsupported(const char *op) {
  return dc__errs(DC_ERR_UNSUPPORTED,
                  "%s: not yet on cuda (docs/cuda.md lists the entries that are); run this op "
                  "on the cpu (dc_to_device) for now",
                  op);
}

/* This process's GPU: its local rank's among n (one process per GPU, as src/dist picks with
 * dc_dist_local_rank() % n), read from the launcher's environment (Open MPI, MPICH, Slurm,
 * torchrun-style LOCAL_RANK), else 0. Chosen here, before the stream is made, so that the
 * stream, the cache and NCCL's communicator are on one device whichever comes first. */
static int local_device(int n) {
  static const char *const VARS[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                                     "SLURM_LOCALID", "LOCAL_RANK"};
  for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++) {
    const char *v = getenv(VARS[i]);
    char *end = NULL;
    long r = v && *v ? strtol(v, &end, 10) : -1;
    if (r >= 0 && *end == '\0') return (int)(r % n);
  }
  return 0;
}

const dc_backend *dc__cuda_probe(void) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    dc__device_set_absent(DC_CUDA, "no CUDA device: cudaGetDeviceCount: %s (%s)",
                          cudaGetErrorName(e), cudaGetErrorString(e));
    return NULL;
  }
  if (n == 0) {
    dc__device_set_absent(DC_CUDA, "no CUDA device: cudaGetDeviceCount found none");
    return NULL;
  }
  int dev = local_device(n);
  e = cudaSetDevice(dev);
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking);
  if (e != cudaSuccess) {
    cudaGetLastError();
    dc__device_set_absent(DC_CUDA, "CUDA device %d unusable: %s (%s)", dev, cudaGetErrorName(e),
                          cudaGetErrorString(e));
    return NULL;
  }
  return &dc__cuda_backend;
}
