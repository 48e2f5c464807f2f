/* The job and its collectives: init from the MPI environment (a job of one rank without
 * mpirun), rank/size/local rank, barrier, all-reduce and broadcast of tensors and buffers, and
 * abort. Every collective is started non-blocking and polled against a deadline, so a rank that
 * died or hangs turns into an error message on the others instead of a hang. CPU buffers are
 * reduced in place; CUDA tensors go to nccl.c when the build has NCCL; any other device's
 * memory is staged through a host copy (the host never reads device memory itself). */
#include "dist-impl.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sched.h>
#include <unistd.h>

#ifdef DC_HAVE_MPI
#include <mpi.h>
_Static_assert(sizeof(MPI_Request) <= sizeof(((dc__dist_req *)0)->handle),
               "MPI_Request must fit dc__dist_req.handle");
static MPI_Comm g_comm = MPI_COMM_NULL; /* a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN */
#endif

dc__dist_state dc__dist = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};

double dc__dist_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the job ---- */

/* Launched by an MPI starter (Open MPI, MPICH/Hydra, Slurm with PMIx)? */
static bool under_mpirun(void) {
  static const char *const VARS[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                                     "MPI_LOCALNRANKS"};
  for (size_t i = 0; i < sizeof VARS / sizeof *VARS; i++)
    if (getenv(VARS[i])) return true;
  return false;
}

static char g_term_msg[160];
static size_t g_term_len;

/* SIGTERM from mpirun after another rank aborted: say why this rank stops, then stop. */
static void on_sigterm(int sig) {
  if (g_term_len) {
    ssize_t w = write(STDERR_FILENO, g_term_msg, g_term_len);
    (void)w;
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

static void install_sigterm(void) {
  struct sigaction old;
  if (sigaction(SIGTERM, NULL, &old) != 0 || old.sa_handler != SIG_DFL) return; /* the program's */
  int n = snprintf(g_term_msg, sizeof g_term_msg,
                   "deepc [rank %d/%d]: stopped: the job was ended (another rank failed, see its "
                   "message, or mpirun was interrupted)\n",
                   dc__dist.rank, dc__dist.size);
  g_term_len = n > 0 && (size_t)n < sizeof g_term_msg ? (size_t)n : 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigterm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
}

static double env_timeout(void) {
  const char *v = getenv("DEEPC_DIST_TIMEOUT");
  char *end = NULL;
  double t = v ? strtod(v, &end) : 0;
  return v && end != v && t > 0 ? t : 600.0;
}

#ifdef DC_HAVE_MPI
static int mpi_fail(int code, const char *what) {
  char msg[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string(code, msg, &len);
  return dc__errs(DC_ERR_BACKEND, "dist: %s failed on rank %d of %d: %s", what, dc__dist.rank,
                  dc__dist.size, msg);
}

static int mpi_init(void) {
  int inited = 0, rc;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    /* only the calling thread talks to MPI (loader threads and OpenMP never do) */
    if ((rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided)) != MPI_SUCCESS)
      return dc__errs(DC_ERR_BACKEND,
                      "dist_init: MPI_Init failed (error %d); is this program "
                      "started by a working mpirun?",
                      rc);
    dc__dist.owns_mpi = true;
  }
  if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &g_comm)) != MPI_SUCCESS) return mpi_fail(rc, "init");
  MPI_Comm_set_errhandler(g_comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(g_comm, &dc__dist.rank);
  MPI_Comm_size(g_comm, &dc__dist.size);
  MPI_Comm local;
  if ((rc = MPI_Comm_split_type(g_comm, MPI_COMM_TYPE_SHARED, dc__dist.rank, MPI_INFO_NULL,
                                &local)) != MPI_SUCCESS)
    return mpi_fail(rc, "init (ranks of this host)");
  MPI_Comm_rank(local, &dc__dist.local_rank);
  MPI_Comm_size(local, &dc__dist.local_size);
  MPI_Comm_free(&local);
  dc__dist.mpi = true;
  return DC_OK;
}
#endif

int dc_dist_init_opt(dc_dist_opts o) {
  if (dc__dist.initialized) return DC_OK;
  if (o.timeout_s < 0) return dc__errs(DC_ERR_ARG, "dist_init: timeout_s must be >= 0");
  dc__dist.timeout_s = o.timeout_s > 0 ? o.timeout_s : env_timeout();
  dc__dist.rank = dc__dist.local_rank = 0;
  dc__dist.size = dc__dist.local_size = 1;
  if (!o.no_mpi && under_mpirun()) {
#ifdef DC_HAVE_MPI
    int rc = mpi_init();
    if (rc != DC_OK) return rc;
#else
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (!n) n = getenv("PMI_SIZE");
    if (n && atoi(n) > 1)
      return dc__errs(DC_ERR_UNSUPPORTED,
                      "dist_init: started by mpirun with %s ranks, but this deepc was built "
                      "without MPI; install libopenmpi-dev and rebuild (cmake finds it), or run "
                      "one process",
                      n);
#endif
  }
  dc__dist.initialized = true;
#ifdef DC_HAVE_NCCL
  if (dc__dist.mpi) dc__nccl_setup_device(dc__dist.local_rank);
#endif
  if (dc__dist.size > 1 && !o.no_signal_handler) install_sigterm();
  return DC_OK;
}

int dc_dist_finalize(void) {
  if (!dc__dist.initialized) return DC_OK;
  int rc = DC_OK;
#ifdef DC_HAVE_NCCL
  dc__nccl_finalize();
#endif
#ifdef DC_HAVE_MPI
  if (dc__dist.mpi) {
    rc = dc_dist_barrier();
    MPI_Comm_free(&g_comm);
    g_comm = MPI_COMM_NULL;
    if (dc__dist.owns_mpi) MPI_Finalize();
  }
#endif
  dc__dist = (dc__dist_state){.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};
  return rc;
}

bool dc_dist_is_initialized(void) { return dc__dist.initialized; }
bool dc_dist_has_mpi(void) {
#ifdef DC_HAVE_MPI
  return true;
#else
  return false;
#endif
}
bool dc_dist_has_nccl(void) {
#ifdef DC_HAVE_NCCL
  return true;
#else
  return false;
#endif
}
const char *dc_dist_backend_name(void) {
  if (!dc__dist.mpi) return "none";
  return dc_dist_has_nccl() ? "mpi+nccl" : "mpi";
}
int dc_dist_rank(void) { return dc__dist.rank; }
int dc_dist_size(void) { return dc__dist.size; }
int dc_dist_local_rank(void) { return dc__dist.local_rank; }
int dc_dist_local_size(void) { return dc__dist.local_size; }
bool dc_dist_is_main(void) { return dc__dist.rank == 0; }
double dc_dist_timeout(void) { return dc__dist.timeout_s > 0 ? dc__dist.timeout_s : env_timeout(); }
void dc_dist_set_timeout(double seconds) {
  if (seconds > 0) dc__dist.timeout_s = seconds;
}

void dc_dist_abort(int code, const char *fmt, ...) {
  (void)code; /* MPI_Abort's exit code (a build without MPI only prints) */
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (dc__dist.size <= 1) {
    fprintf(stderr, "deepc: %s\n", msg);
    fflush(stderr);
    return;
  }
  fprintf(stderr, "deepc [rank %d/%d]: %s; ending the job on every rank\n", dc__dist.rank,
          dc__dist.size, msg);
  fflush(stderr);
  g_term_len = 0; /* this rank said why already */
#ifdef DC_HAVE_NCCL
  dc__nccl_abort();
#endif
#ifdef DC_HAVE_MPI
  MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
#endif
}

/* ---- collectives on raw buffers ---- */

void *dc__dist_ptr(const dc_tensor *t) {
  return (char *)t->storage->data + (size_t)t->offset * dc_dtype_size(t->dtype);
}

#ifdef DC_HAVE_MPI
static const char *const OP_NAMES[DC_DIST_OP_COUNT] = {"sum", "average", "max", "min"};

static bool mpi_type(dc_dtype dt, dc_dist_op op, MPI_Datatype *out) {
  switch (dt) {
  case DC_F32:
    *out = MPI_FLOAT;
    return true;
  case DC_F64:
    *out = MPI_DOUBLE;
    return true;
  case DC_I64:
    *out = MPI_INT64_T;
    return true;
  case DC_I32:
    *out = MPI_INT32_T;
    return true;
  case DC_U8:
    *out = MPI_UINT8_T;
    return true;
  case DC_BOOL: /* max = any, min = all */
    *out = MPI_UINT8_T;
    return op == DC_DIST_MAX || op == DC_DIST_MIN;
  case DC_BF16:
  case DC_F16:
  case DC_DTYPE_COUNT:
    return false;
  }
  return false;
}

static MPI_Op mpi_op(dc_dist_op op) {
  switch (op) {
  case DC_DIST_SUM:
  case DC_DIST_AVG:
    return MPI_SUM;
  case DC_DIST_MAX:
    return MPI_MAX;
  case DC_DIST_MIN:
    return MPI_MIN;
  case DC_DIST_OP_COUNT:
    break;
  }
  return MPI_SUM;
}
#endif

static int check_args(const char *what, int64_t n, dc_dtype dt, dc_dist_op op) {
  if ((int)op < 0 || op >= DC_DIST_OP_COUNT)
    return dc__errs(DC_ERR_ARG, "dist %s: unknown reduction %d", what, (int)op);
  if (op == DC_DIST_AVG && !dc_dtype_is_float(dt))
    return dc__errs(DC_ERR_ARG, "dist %s: average of %s data; use DC_DIST_SUM for integers", what,
                    dc_dtype_name(dt));
  if (n < 0 || n > 0x7fffffff)
    return dc__errs(DC_ERR_ARG,
                    "dist %s: %lld elements; one collective takes at most 2^31 - 1 "
                    "(split the buffer)",
                    what, (long long)n);
  return DC_OK;
}

static void divide(void *data, int64_t n, dc_dtype dt, int by) {
  if (dt == DC_F32) {
    float *p = data;
    for (int64_t i = 0; i < n; i++) p[i] /= (float)by;
  } else if (dt == DC_F64) {
    double *p = data;
    for (int64_t i = 0; i < n; i++) p[i] /= by;
  }
}

/* Device buffers NCCL takes directly (CUDA ones in a build with NCCL). */
static bool nccl_device(dc_device dev) {
#ifdef DC_HAVE_NCCL
  return dev == DC_CUDA;
#else
  (void)dev;
  return false;
#endif
}

#ifdef DC_HAVE_MPI
/* MPI on device memory: req->data (device) becomes a host copy, read from the device when
 * copy_in (an all-reduce, a broadcast's root), the device pointer kept in req->dev_data. */
static int stage_in(dc__dist_req *req, bool copy_in) {
  const dc_device_mem *m = dc__device_mem(req->dev);
  if (!m) return dc_last_status();
  size_t nb = (size_t)req->n * dc_dtype_size(req->dt);
  void *host = dc__malloc(nb ? nb : 1);
  if (!host) return DC_ERR_NOMEM;
  int rc = copy_in && nb ? m->to_host(host, req->data, nb) : DC_OK;
  if (rc != DC_OK) {
    dc__free(host);
    return rc;
  }
  req->dev_data = req->data;
  req->data = host;
  req->stage_back = true;
  return DC_OK;
}
#endif

/* Ends the staging of a finished (or failed: write_back false) collective: the host copy back
 * into device memory, then freed. */
static int stage_out(dc__dist_req *req, bool write_back) {
  if (!req->dev_data) return DC_OK;
  int rc = DC_OK;
  size_t nb = (size_t)req->n * dc_dtype_size(req->dt);
  if (write_back && req->stage_back && nb) {
    const dc_device_mem *m = dc__device_mem(req->dev);
    rc = m ? m->from_host(req->dev_data, req->data, nb) : (int)dc_last_status();
  }
  dc__free(req->data);
  req->data = req->dev_data;
  req->dev_data = NULL;
  return rc;
}

int dc__dist_iallreduce(void *data, int64_t n, dc_dtype dt, dc_device dev, dc_dist_op op,
                        const char *what, dc__dist_req *req) {
  *req = (dc__dist_req){.kind = DC__DIST_NONE,
                        .what = what,
                        .data = data,
                        .n = n,
                        .dt = dt,
                        .dev = dev,
                        .avg = op == DC_DIST_AVG};
  int rc = check_args(what, n, dt, op);
  if (rc != DC_OK || dc__dist.size == 1) {
    req->avg = false;
    return rc;
  }
  if (nccl_device(dev)) {
#ifdef DC_HAVE_NCCL
    req->avg = false; /* ncclAvg */
    return dc__nccl_start(data, n, dt, (int)op, false, req);
#endif
  }
#ifdef DC_HAVE_MPI
  MPI_Datatype mt;
  if (!mpi_type(dt, op, &mt))
    return dc__errs(DC_ERR_UNSUPPORTED,
                    "dist %s: %s of %s data over MPI is not supported; convert "
                    "to float32 first",
                    what, OP_NAMES[op], dc_dtype_name(dt));
  if (dev != DC_CPU && (rc = stage_in(req, true)) != DC_OK) return rc;
  MPI_Request *r = (MPI_Request *)req->handle;
  int e = MPI_Iallreduce(MPI_IN_PLACE, req->data, (int)n, mt, mpi_op(op), g_comm, r);
  if (e != MPI_SUCCESS) {
    stage_out(req, false);
    return mpi_fail(e, what);
  }
  req->kind = DC__DIST_MPI;
  return DC_OK;
#else
  return dc__errs(DC_ERR_STATE, "dist %s: %d ranks without MPI", what, dc__dist.size);
#endif
}

int dc__dist_ibroadcast(void *data, int64_t n, dc_dtype dt, dc_device dev, int root,
                        const char *what, dc__dist_req *req) {
  *req = (dc__dist_req){
      .kind = DC__DIST_NONE, .what = what, .data = data, .n = n, .dt = dt, .dev = dev};
  int rc = check_args(what, n, dt, DC_DIST_SUM);
  if (rc != DC_OK) return rc;
  if (root < 0 || root >= dc__dist.size)
    return dc__errs(DC_ERR_ARG, "dist %s: root %d is not a rank (size %d)", what, root,
                    dc__dist.size);
  if (dc__dist.size == 1) return DC_OK;
  if (nccl_device(dev)) {
#ifdef DC_HAVE_NCCL
    return dc__nccl_start(data, n, dt, root, true, req);
#endif
  }
#ifdef DC_HAVE_MPI
  bool root_here = dc__dist.rank == root;
  if (dev != DC_CPU && (rc = stage_in(req, root_here)) != DC_OK) return rc;
  req->stage_back = !root_here;
  int e = MPI_Ibcast(req->data, (int)((size_t)n * dc_dtype_size(dt)), MPI_BYTE, root, g_comm,
                     (MPI_Request *)req->handle);
  if (e != MPI_SUCCESS) {
    stage_out(req, false);
    return mpi_fail(e, what);
  }
  req->kind = DC__DIST_MPI;
  return DC_OK;
#else
  return dc__errs(DC_ERR_STATE, "dist %s: %d ranks without MPI", what, dc__dist.size);
#endif
}

int dc__dist_test(dc__dist_req *req, bool *done) {
  *done = true;
  int rc = DC_OK;
  switch (req->kind) {
  case DC__DIST_NONE:
    return DC_OK;
  case DC__DIST_MPI: {
#ifdef DC_HAVE_MPI
    int flag = 0;
    int e = MPI_Test((MPI_Request *)req->handle, &flag, MPI_STATUS_IGNORE);
    if (e != MPI_SUCCESS) {
      req->kind = DC__DIST_NONE;
      stage_out(req, false);
      return mpi_fail(e, req->what);
    }
    *done = flag != 0;
#endif
    break;
  }
  case DC__DIST_NCCL:
#ifdef DC_HAVE_NCCL
    rc = dc__nccl_test(req, done);
#endif
    break;
  }
  if (rc == DC_OK && *done) {
    if (req->avg) divide(req->data, req->n, req->dt, dc__dist.size);
    req->kind = DC__DIST_NONE;
    rc = stage_out(req, true);
  }
  return rc;
}

/* How long a wait polls without sleeping (microseconds): $DEEPC_DIST_SPIN_US, default 200. */
static double spin_budget(void) {
  static double us = -1;
  if (us < 0) {
    const char *v = getenv("DEEPC_DIST_SPIN_US");
    us = v && atof(v) >= 0 ? atof(v) : 200;
  }
  return us * 1e-6;
}

/* Polls (MPI progresses only inside MPI calls) with the core yielded between polls; once the
 * wait is longer than the spin budget, i.e. another rank is still computing, it sleeps between
 * polls (20 us doubling to 1 ms), so a waiting rank does not take CPU time from busy ones on a
 * shared machine. Checks the deadline as it goes. */
int dc__dist_wait(dc__dist_req *req) {
  double start = 0, deadline = 0, spin = spin_budget();
  long nap_ns = 20000;
  for (long polls = 0;; polls++) {
    bool done;
    int rc = dc__dist_test(req, &done);
    if (rc != DC_OK || done) return rc;
    if (polls < 16) continue;
    double now = dc__dist_now();
    if (start == 0) {
      start = now;
      deadline = now + dc_dist_timeout();
    } else if (now > deadline) {
      return dc__errs(DC_ERR_STATE,
                      "dist: %s timed out after %.0f s on rank %d of %d: another rank did not "
                      "join it (it failed, hangs, or runs different code); set the limit with "
                      "DEEPC_DIST_TIMEOUT",
                      req->what, dc_dist_timeout(), dc__dist.rank, dc__dist.size);
    }
    if (now - start < spin) {
      sched_yield();
    } else {
      struct timespec ts = {0, nap_ns};
      nanosleep(&ts, NULL);
      if (nap_ns < 1000000) nap_ns *= 2;
    }
  }
}

/* ---- public collectives ---- */

int dc_dist_barrier(void) {
  if (dc__dist.size == 1) return DC_OK;
#ifdef DC_HAVE_MPI
  dc__dist_req req = {.kind = DC__DIST_MPI, .what = "barrier"};
  int e = MPI_Ibarrier(g_comm, (MPI_Request *)req.handle);
  if (e != MPI_SUCCESS) return mpi_fail(e, "barrier");
  return dc__dist_wait(&req);
#else
  return DC_OK;
#endif
}

/* Runs a buffer collective in chunks of at most 2^30 elements. */
static int buffer_collective(void *data, int64_t n, dc_dtype dt, dc_device dev, bool bcast,
                             int op_or_root, const char *what) {
  const int64_t chunk = (int64_t)1 << 30;
  size_t es = dc_dtype_size(dt);
  int rc = DC_OK;
  for (int64_t at = 0; rc == DC_OK && (at < n || at == 0); at += chunk) {
    int64_t len = n - at < chunk ? n - at : chunk;
    void *p = (char *)data + (size_t)at * es;
    dc__dist_req req;
    rc = bcast ? dc__dist_ibroadcast(p, len, dt, dev, op_or_root, what, &req)
               : dc__dist_iallreduce(p, len, dt, dev, (dc_dist_op)op_or_root, what, &req);
    if (rc == DC_OK) rc = dc__dist_wait(&req);
    if (n == 0) break;
  }
  return rc;
}

int dc_dist_all_reduce_buffer(void *data, int64_t n, dc_dtype dt, dc_dist_op op) {
  if (!data && n > 0) return dc__errs(DC_ERR_ARG, "dist all_reduce: NULL buffer");
  return buffer_collective(data, n, dt, DC_CPU, false, (int)op, "all-reduce");
}

int dc_dist_broadcast_buffer(void *data, int64_t n, dc_dtype dt, int root) {
  if (!data && n > 0) return dc__errs(DC_ERR_ARG, "dist broadcast: NULL buffer");
  return buffer_collective(data, n, dt, DC_CPU, true, root, "broadcast");
}

static int check_tensor(const char *what, const dc_tensor *t) {
  if (!t) return dc__errs(DC_ERR_ARG, "dist %s: tensor is NULL", what);
  if (!dc_is_contiguous(t)) {
    char b[128];
    return dc__errs(DC_ERR_ARG,
                    "dist %s: the tensor %s is not contiguous; pass "
                    "dc_contiguous(t) and copy the result back",
                    what, dc_shape_str(dc_shape_of(t), b, sizeof b));
  }
  return DC_OK;
}

int dc_dist_all_reduce_(dc_tensor *t, dc_dist_op op) {
  int rc = check_tensor("all_reduce", t);
  if (rc != DC_OK) return rc;
  rc = buffer_collective(dc__dist_ptr(t), dc_numel(t), t->dtype, t->device, false, (int)op,
                         "all-reduce");
  if (rc == DC_OK) t->storage->version++;
  return rc;
}

int dc_dist_broadcast_(dc_tensor *t, int root) {
  int rc = check_tensor("broadcast", t);
  if (rc != DC_OK) return rc;
  rc =
      buffer_collective(dc__dist_ptr(t), dc_numel(t), t->dtype, t->device, true, root, "broadcast");
  if (rc == DC_OK) t->storage->version++;
  return rc;
}

static int broadcast_list(dc_named_tensor *list, int n, int root, const char *kind) {
  int rc = DC_OK;
  for (int i = 0; rc == DC_OK && i < n; i++) {
    rc = dc_dist_broadcast_(list[i].tensor, root);
    if (rc != DC_OK)
      rc = dc__errs((dc_status)rc, "dist broadcast_module: %s '%s': %s", kind, list[i].name,
                    dc_last_error());
  }
  return rc;
}

int dc_dist_broadcast_module(dc_module *m, int root) {
  if (!m) return dc__errs(DC_ERR_ARG, "dist broadcast_module: module is NULL");
  if (dc__dist.size == 1) return DC_OK;
  int np = 0, nb = 0;
  dc_named_tensor *p = dc_module_parameters(m, &np);
  if (!p && np == 0 && dc_last_status() == DC_ERR_NOMEM) return DC_ERR_NOMEM;
  dc_named_tensor *b = dc_module_buffers(m, &nb);
  int rc = broadcast_list(p, np, root, "parameter");
  if (rc == DC_OK) rc = broadcast_list(b, nb, root, "buffer");
  dc_named_tensors_free(p, np);
  dc_named_tensors_free(b, nb);
  return rc;
}
