/* Internals of src/dist shared by its files: the job state, non-blocking collectives on raw
 * buffers with a deadline (MPI for host memory, NCCL for device memory), and the gradient-ready
 * hook the autograd engine calls. Not installed; symbols carry the dc__dist_ prefix. */
#ifndef DC_DIST_IMPL_H
#define DC_DIST_IMPL_H

#include <deepc/dist.h>
#include "../core/core-impl.h"

/* The gradient-ready hook: the autograd engine calls it (when non-NULL) after accumulating a
 * gradient into a leaf. Defined in ddp.c. */
extern dc_grad_ready_fn dc__grad_ready_hook;
extern void *dc__grad_ready_ud;

/* ---- job state (comm.c) ---- */
typedef struct dc__dist_state {
  bool initialized;
  bool mpi;      /* MPI is in use (launched by mpirun with size > 1, or size 1 under mpirun) */
  bool owns_mpi; /* deepc called MPI_Init, so it calls MPI_Finalize */
  int rank, size, local_rank, local_size;
  double timeout_s;
} dc__dist_state;
extern dc__dist_state dc__dist;

double dc__dist_now(void);

/* ---- a collective in flight ---- */
typedef enum dc__dist_kind { DC__DIST_NONE = 0, DC__DIST_MPI, DC__DIST_NCCL } dc__dist_kind;
typedef struct dc__dist_req {
  dc__dist_kind kind;
  const char *what;   /* names the operation in timeout messages ("all-reduce of bucket 2") */
  uint64_t handle[2]; /* the MPI_Request, or the NCCL completion event */
  void *data;         /* what the collective works on (host memory, or a NCCL device buffer);
                       * AVG: divided by the size after completion */
  int64_t n;
  dc_dtype dt;
  dc_device dev;
  bool avg;
  /* MPI on device memory: data is a host copy (dc__malloc'ed) of the device's n elements at
   * dev_data, written back to dev_data when the collective completes, then freed */
  void *dev_data;
  bool stage_back; /* write the host copy back (a broadcast's root does not need to) */
} dc__dist_req;

/* Starts an all-reduce / broadcast of n elements at data: host memory for DC_CPU (MPI works on
 * it in place), device memory otherwise: a CUDA buffer goes to NCCL when the build has it, any
 * other device buffer is staged through host memory for MPI (copied to the host at the start,
 * back to the device at completion: data is never dereferenced by the host). n must fit an
 * int. In a job of one rank these complete at once. */
int dc__dist_iallreduce(void *data, int64_t n, dc_dtype dt, dc_device dev, dc_dist_op op,
                        const char *what, dc__dist_req *req);
int dc__dist_ibroadcast(void *data, int64_t n, dc_dtype dt, dc_device dev, int root,
                        const char *what, dc__dist_req *req);
/* Drives progress; *done tells whether it finished. */
int dc__dist_test(dc__dist_req *req, bool *done);
/* Waits until done or the timeout (DC_ERR_STATE naming req->what and this rank). */
int dc__dist_wait(dc__dist_req *req);

/* Pointer to a contiguous tensor's first element: device memory for a tensor on a device, only
 * for the collectives above (never dereferenced here). */
void *dc__dist_ptr(const dc_tensor *t);

/* ---- NCCL (nccl.c, built with DC_HAVE_NCCL) ---- */
#ifdef DC_HAVE_NCCL
int dc__nccl_setup_device(int local_rank);
int dc__nccl_start(void *data, int64_t n, dc_dtype dt, int op_or_root, bool bcast,
                   dc__dist_req *req);
int dc__nccl_test(dc__dist_req *req, bool *done);
void dc__nccl_abort(void);
void dc__nccl_finalize(void);
#endif

#endif
