/* The backend registry: one table per device. Each backend registers its table (the builtin ones
 * on first use of any device); registration checks versions, mandatory entries and that the
 * capabilities a table declares match its optional entries, so a backend built against another
 * layout, or one that claims a fused op it lacks, is refused with a message instead of crashing
 * later in a kernel call. */
#include "nn-kernels.h"
#include "optim-kernels.h"

#include <pthread.h>

static const dc_backend *g_table[DC_DEVICE_COUNT];

static const char *const g_cap_names[DC_CAP_COUNT] = {
#define DC_X(n) #n,
    DC_CAP_LIST(DC_X)
#undef DC_X
};

const char *dc__backend_cap_name(dc_backend_cap cap) {
  return (int)cap >= 0 && cap < DC_CAP_COUNT ? g_cap_names[cap] : "unknown";
}

/* Which optional entries a table has, as capability bits. */
static uint32_t caps_present(const dc_backend *be) {
  uint32_t c = 0;
  if (be->linalg->linear) c |= DC_CAP_BIT(DC_CAP_LINEAR);
  if (be->nn->batch_norm_relu_forward && be->nn->batch_norm_relu_backward)
    c |= DC_CAP_BIT(DC_CAP_BATCH_NORM_RELU);
  if (be->nn->conv_block_plan && be->nn->conv_block_forward && be->nn->conv_block_backward)
    c |= DC_CAP_BIT(DC_CAP_CONV_BLOCK);
  if (be->optim && be->optim->step && be->optim->step_ref && be->optim->norms && be->optim->scale &&
      be->optim->clamp)
    c |= DC_CAP_BIT(DC_CAP_FUSED_OPTIM);
  return c;
}

/* Every entry a table must have; returns the first missing one's name, or NULL. */
static const char *missing_entry(const dc_backend *be) {
#define NEED(p, name)                                                                              \
  if (!(p)) return name
  NEED(be->ew, "ew");
  NEED(be->red, "red");
  NEED(be->linalg, "linalg");
  NEED(be->index, "index");
  NEED(be->rand, "rand");
  NEED(be->nn, "nn");
  const dc_elementwise_kernels *e = be->ew;
  NEED(e->copy, "ew.copy");
  NEED(e->fill, "ew.fill");
  NEED(e->unary, "ew.unary");
  NEED(e->binary, "ew.binary");
  NEED(e->where, "ew.where");
  NEED(e->axpy, "ew.axpy");
  NEED(be->red->reduce, "red.reduce");
  NEED(be->red->arg_reduce, "red.arg_reduce");
  NEED(be->red->softmax, "red.softmax");
  NEED(be->linalg->gemm_batched, "linalg.gemm_batched");
  NEED(be->index->gather, "index.gather");
  NEED(be->index->scatter_add, "index.scatter_add");
  NEED(be->index->index_select, "index.index_select");
  NEED(be->index->index_add, "index.index_add");
  NEED(be->rand->uniform, "rand.uniform");
  NEED(be->rand->normal, "rand.normal");
  const struct dc_nn_kernels *n = be->nn;
  NEED(n->conv2d_forward, "nn.conv2d_forward");
  NEED(n->conv2d_backward, "nn.conv2d_backward");
  NEED(n->max_pool2d_forward, "nn.max_pool2d_forward");
  NEED(n->max_pool2d_backward, "nn.max_pool2d_backward");
  NEED(n->avg_pool2d_forward, "nn.avg_pool2d_forward");
  NEED(n->avg_pool2d_backward, "nn.avg_pool2d_backward");
  NEED(n->adaptive_avg_pool2d_forward, "nn.adaptive_avg_pool2d_forward");
  NEED(n->adaptive_avg_pool2d_backward, "nn.adaptive_avg_pool2d_backward");
  NEED(n->adaptive_max_pool2d_forward, "nn.adaptive_max_pool2d_forward");
  NEED(n->batch_norm_forward, "nn.batch_norm_forward");
  NEED(n->batch_norm_backward, "nn.batch_norm_backward");
  NEED(n->dropout_mask, "nn.dropout_mask");
  NEED(n->apply_mask, "nn.apply_mask");
  NEED(n->hardtanh_forward, "nn.hardtanh_forward");
  NEED(n->hardtanh_backward, "nn.hardtanh_backward");
  NEED(n->pointwise_loss_forward, "nn.pointwise_loss_forward");
  NEED(n->pointwise_loss_backward, "nn.pointwise_loss_backward");
  NEED(n->xent_forward, "nn.xent_forward");
  NEED(n->xent_backward, "nn.xent_backward");
  NEED(n->multi_margin_forward, "nn.multi_margin_forward");
  NEED(n->multi_margin_backward, "nn.multi_margin_backward");
#undef NEED
  return NULL;
}

static int install(const dc_backend *be) {
  if (!be) return dc__errs(DC_ERR_ARG, "backend registration: NULL table");
  const char *name = be->name ? be->name : "?";
  if ((int)be->device < 0 || be->device >= DC_DEVICE_COUNT)
    return dc__errs(DC_ERR_ARG, "backend '%s': device %d is not a device of this deepc", name,
                    (int)be->device);
  const char *dev = dc_device_name(be->device);
  if (be->version != DC_BACKEND_VERSION)
    return dc__errs(DC_ERR_STATE,
                    "backend '%s' (%s): table version %d, this deepc needs %d; "
                    "rebuild the backend against this deepc",
                    name, dev, be->version, DC_BACKEND_VERSION);
  const char *miss = missing_entry(be);
  if (miss)
    return dc__errs(DC_ERR_STATE, "backend '%s' (%s): mandatory entry %s is missing", name, dev,
                    miss);
  if (be->nn->version != DC_NN_KERNELS_VERSION)
    return dc__errs(DC_ERR_STATE, "backend '%s' (%s): nn kernels version %d, this deepc needs %d",
                    name, dev, be->nn->version, DC_NN_KERNELS_VERSION);
  if (be->optim && be->optim->version != DC_OPTIM_KERNELS_VERSION)
    return dc__errs(DC_ERR_STATE,
                    "backend '%s' (%s): optim kernels version %d, this deepc needs "
                    "%d",
                    name, dev, be->optim->version, DC_OPTIM_KERNELS_VERSION);
  uint32_t have = caps_present(be);
  for (int c = 0; c < DC_CAP_COUNT; c++) {
    bool declared = be->caps & DC_CAP_BIT(c), present = have & DC_CAP_BIT(c);
    if (declared != present)
      return dc__errs(DC_ERR_STATE,
                      "backend '%s' (%s): capability %s is %s but its entries are "
                      "%s",
                      name, dev, g_cap_names[c], declared ? "declared" : "not declared",
                      present ? "there" : "missing");
  }
  if (be->caps >> DC_CAP_COUNT)
    return dc__errs(DC_ERR_STATE, "backend '%s' (%s): unknown capability bits 0x%x", name, dev,
                    (unsigned)(be->caps >> DC_CAP_COUNT << DC_CAP_COUNT));
  int rc = dc__device_mem_register(be->device, be->mem); /* checks the memory entries */
  if (rc != DC_OK) return rc;
  __atomic_store_n(&g_table[be->device], be, __ATOMIC_RELEASE);
  return DC_OK;
}

#ifdef DC_WITH_TESTDEV
extern const dc_backend dc__testdev_backend;
#endif
#ifdef DC_WITH_CUDA
const dc_backend *dc__cuda_probe(void); /* the table when a GPU answers, else NULL */
#endif

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void register_builtins(void) {
  install(&dc__cpu_backend);
#ifdef DC_WITH_TESTDEV
  install(&dc__testdev_backend);
#endif
#ifdef DC_WITH_CUDA
  const dc_backend *cuda = dc__cuda_probe(); /* NULL: no GPU, and core knows why */
  if (cuda) install(cuda);
#endif
  dc_clear_error(); /* a builtin that refuses leaves its device out; asking for it says so */
}

void dc__backends_init(void) { pthread_once(&g_once, register_builtins); }

/* Core, below the registry, registers the builtins through this pointer, handed down when the
 * library loads (every program that runs an op links this file; the cpu needs no registration). */
__attribute__((constructor)) static void hand_down_registrar(void) {
  dc__device_set_registrar(dc__backends_init);
}

/* The builtins go in first, so that a table registered later replaces theirs (and is not
 * replaced by them on the first lookup). */
int dc__backend_register(const dc_backend *be) {
  dc__backends_init();
  return install(be);
}

const dc_backend *dc__backend(dc_device dev) {
  if (dev == DC_CPU) return &dc__cpu_backend; /* the hot path: no registry lookup */
  dc__backends_init();
  const dc_backend *be = (int)dev >= 0 && dev < DC_DEVICE_COUNT
                             ? __atomic_load_n(&g_table[dev], __ATOMIC_ACQUIRE)
                             : NULL;
  if (be) return be;
  return dc__err(DC_ERR_UNSUPPORTED, "device %s is not in this build of deepc, which has: %s%s",
                 dc_device_name(dev), dc__devices_str(), dc__device_absent_note(dev));
}

bool dc__backend_supports(dc_device dev, dc_backend_cap cap) {
  if ((int)cap < 0 || cap >= DC_CAP_COUNT) return false;
  if (dev == DC_CPU) return dc__cpu_backend.caps & DC_CAP_BIT(cap);
  dc__backends_init();
  const dc_backend *be = (int)dev >= 0 && dev < DC_DEVICE_COUNT
                             ? __atomic_load_n(&g_table[dev], __ATOMIC_ACQUIRE)
                             : NULL;
  return be && (be->caps & DC_CAP_BIT(cap));
}
