/* Devices and the backend registry: names and parsing, the checks registration makes, and the
 * transfer paths (constructors on a device, dc_to_device and its gradient, copies across
 * devices, moving a tensor in place, reads that synchronise). The transfers run on a "mirror"
 * device this test registers for DC_TESTDEV: the CPU's kernels on separately counted host
 * memory, so every value can be compared with the CPU's bit for bit. Its kernels (the few the
 * tests use) hand the CPU's kernels host views of the tensors. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu-impl.h"
#include "backend/nn-kernels.h"
#include "backend/optim-kernels.h"

static int g_transfers; /* to_host + from_host calls on the mirror device */

static void *m_alloc(size_t n) { return aligned_alloc(64, (n + 63) / 64 * 64); }
static void m_free(void *p) { free(p); }
static int m_move(void *d, const void *s, size_t n) {
  g_transfers++;
  memcpy(d, s, n);
  return DC_OK;
}
static int m_copy(void *d, const void *s, size_t n) {
  memcpy(d, s, n);
  return DC_OK;
}
static int m_sync(void) { return DC_OK; }

static const dc_device_mem g_mirror_mem = {
    .version = DC_DEVICE_MEM_VERSION,
    .alloc = m_alloc,
    .free = m_free,
    .to_host = m_move,
    .from_host = m_move,
    .copy = m_copy,
    .synchronize = m_sync,
};

/* Host views of up to 4 tensors for one kernel call: the same tensor, or the same storage, gets
 * the same view (kernels compare them to detect in-place calls). */
typedef struct frame {
  dc_tensor t[4];
  dc_storage s[4];
  const dc_tensor *orig[4];
  int n;
} frame;

static dc_tensor *view(frame *f, const dc_tensor *x) {
  if (!x) return NULL;
  for (int k = 0; k < f->n; k++)
    if (f->orig[k] == x) return &f->t[k];
  int k = f->n++;
  f->orig[k] = x;
  f->t[k] = *x;
  f->t[k].device = DC_CPU;
  f->t[k].storage = &f->s[k];
  for (int j = 0; j < k; j++)
    if (f->orig[j]->storage == x->storage) f->t[k].storage = &f->s[j];
  if (f->t[k].storage == &f->s[k]) {
    f->s[k] = *x->storage;
    f->s[k].device = DC_CPU;
  }
  return &f->t[k];
}

static int done(frame *f, int rc) {
  for (int k = 0; k < f->n; k++)
    ((dc_tensor *)f->orig[k])->storage->version = f->t[k].storage->version;
  return rc;
}

static int w_copy(dc_tensor *d, const dc_tensor *s) {
  frame f = {.n = 0};
  return done(&f, dc__cpu_ew.copy(view(&f, d), view(&f, s)));
}
static int w_fill(dc_tensor *t, double v) {
  frame f = {.n = 0};
  return done(&f, dc__cpu_ew.fill(view(&f, t), v));
}
static int w_unary(dc_unary_op op, dc_tensor *o, const dc_tensor *x, const double *p) {
  frame f = {.n = 0};
  return done(&f, dc__cpu_ew.unary(op, view(&f, o), view(&f, x), p));
}
static int w_binary(dc_binary_op op, dc_tensor *o, const dc_tensor *a, const dc_tensor *b) {
  frame f = {.n = 0};
  return done(&f, dc__cpu_ew.binary(op, view(&f, o), view(&f, a), view(&f, b)));
}
static int w_where(dc_tensor *o, const dc_tensor *c, const dc_tensor *a, const dc_tensor *b) {
  frame f = {.n = 0};
  return done(&f, dc__cpu_ew.where(view(&f, o), view(&f, c), view(&f, a), view(&f, b)));
}
static int w_axpy(dc_tensor *o, const dc_tensor *a, double al, const dc_tensor *b) {
  frame f = {.n = 0};
  return done(&f, dc__cpu_ew.axpy(view(&f, o), view(&f, a), al, view(&f, b)));
}
static int w_reduce(dc_reduce_op op, dc_tensor *o, const dc_tensor *x, uint32_t mask) {
  frame f = {.n = 0};
  return done(&f, dc__cpu_red.reduce(op, view(&f, o), view(&f, x), mask));
}
static int w_uniform(dc_tensor *t, uint64_t s, uint64_t c, double a, double b) {
  frame f = {.n = 0};
  return done(&f, dc__cpu_rand.uniform(view(&f, t), s, c, a, b));
}
static int w_normal(dc_tensor *t, uint64_t s, uint64_t c, double m, double sd) {
  frame f = {.n = 0};
  return done(&f, dc__cpu_rand.normal(view(&f, t), s, c, m, sd));
}

static dc_elementwise_kernels g_ew = {.copy = w_copy,
                                      .fill = w_fill,
                                      .unary = w_unary,
                                      .binary = w_binary,
                                      .where = w_where,
                                      .axpy = w_axpy};
static dc_reduce_kernels g_red;
static dc_random_kernels g_rand = {.uniform = w_uniform, .normal = w_normal};

static dc_backend mirror_table(void) {
  g_red = dc__cpu_red;
  g_red.reduce = w_reduce;
  dc_backend be = dc__cpu_backend;
  be.ew = &g_ew;
  be.red = &g_red;
  be.rand = &g_rand;
  be.name = "mirror";
  be.device = DC_TESTDEV;
  be.mem = &g_mirror_mem;
  return be;
}

static dc_backend g_mirror;

static void register_mirror(void) {
  if (dc__backend_register(&g_mirror) != DC_OK) /* g_mirror outlives the test */
    cr_assert_fail("mirror registration: %s", dc_last_error());
}

static void setup(void) {
  g_mirror = mirror_table();
  register_mirror();
}

Test(device, names_and_parse) {
  cr_assert_str_eq(dc_device_name(DC_CPU), "cpu");
  cr_assert_str_eq(dc_device_name(DC_CUDA), "cuda");
  cr_assert_str_eq(dc_device_name((dc_device)99), "unknown");
  dc_device d = DC_CUDA;
  cr_assert_eq(dc_device_parse("cpu", &d), DC_OK);
  cr_assert_eq(d, DC_CPU);
  cr_assert_eq(dc_device_parse("cpu:0", &d), DC_OK);
  cr_assert_eq(dc_device_parse("tpu", &d), DC_ERR_ARG);
  cr_assert(strstr(dc_last_error(), "unknown device 'tpu'"), "%s", dc_last_error());
  cr_assert(strstr(dc_last_error(), "cpu"), "names the devices it has: %s", dc_last_error());
  cr_assert_eq(dc_device_parse("cpu:1", &d), DC_ERR_ARG);
  cr_assert(dc_device_available(DC_CPU));
  if (!dc_device_available(DC_CUDA)) {
    cr_assert_eq(dc_device_parse("cuda", &d), DC_ERR_ARG);
    /* a build without the backend, or one with it on a machine without a GPU (which says why) */
    cr_assert(strstr(dc_last_error(), "not in this build") ||
                  (strstr(dc_last_error(), "not available to this deepc") &&
                   strstr(dc_last_error(), "(cuda: no CUDA device")),
              "%s", dc_last_error());
    cr_assert_null(dc_zeros_on(DC_SHAPE(2), DC_F32, DC_CUDA));
    cr_assert(strstr(dc_last_error(), "cuda"), "%s", dc_last_error());
  }
  char buf[64];
  cr_assert(strstr(dc_devices_available(buf, sizeof buf), "cpu"));
}

Test(device, cpu_registry_caps) {
  cr_assert_not_null(dc__backend(DC_CPU));
  for (int c = 0; c < DC_CAP_COUNT; c++)
    cr_assert(dc__backend_supports(DC_CPU, (dc_backend_cap)c), "cpu has %s",
              dc__backend_cap_name((dc_backend_cap)c));
  cr_assert(!dc__backend_supports((dc_device)99, DC_CAP_LINEAR));
}

/* Each broken copy of the table is refused with a message naming what is wrong. */
Test(device, registration_checks) {
  static dc_backend be; /* the registry keeps the one it accepts */
  be = mirror_table();
  be.version = 1;
  cr_assert_neq(dc__backend_register(&be), DC_OK);
  cr_assert(strstr(dc_last_error(), "table version 1"), "%s", dc_last_error());

  be = mirror_table();
  dc_elementwise_kernels ew = *be.ew;
  ew.where = NULL;
  be.ew = &ew;
  cr_assert_neq(dc__backend_register(&be), DC_OK);
  cr_assert(strstr(dc_last_error(), "ew.where"), "%s", dc_last_error());

  be = mirror_table();
  dc_linalg_kernels la = *be.linalg;
  la.linear = NULL; /* LINEAR still declared */
  be.linalg = &la;
  cr_assert_neq(dc__backend_register(&be), DC_OK);
  cr_assert(strstr(dc_last_error(), "LINEAR is declared"), "%s", dc_last_error());
  be.caps &= ~DC_CAP_BIT(DC_CAP_LINEAR); /* consistent: refused no more */
  cr_assert_eq(dc__backend_register(&be), DC_OK, "%s", dc_last_error());
  cr_assert(!dc__backend_supports(DC_TESTDEV, DC_CAP_LINEAR));

  be = mirror_table();
  struct dc_nn_kernels nn = *be.nn;
  nn.version = 7;
  be.nn = &nn;
  cr_assert_neq(dc__backend_register(&be), DC_OK);
  cr_assert(strstr(dc_last_error(), "nn kernels version 7"), "%s", dc_last_error());

  be = mirror_table();
  dc_device_mem mem = g_mirror_mem;
  mem.version = 0;
  be.mem = &mem;
  cr_assert_neq(dc__backend_register(&be), DC_OK);
  cr_assert(strstr(dc_last_error(), "memory entries are version 0"), "%s", dc_last_error());
  mem = g_mirror_mem;
  mem.synchronize = NULL;
  cr_assert_neq(dc__backend_register(&be), DC_OK);
  cr_assert(strstr(dc_last_error(), "synchronize"), "%s", dc_last_error());
}

static void assert_bits_equal(dc_tensor *a, dc_tensor *b) {
  cr_assert(dc_shape_equal(dc_shape_of(a), dc_shape_of(b)));
  cr_assert_eq(a->dtype, b->dtype);
  size_t n = (size_t)dc_numel(a) * dc_dtype_size(a->dtype);
  char *x = malloc(n + 1), *y = malloc(n + 1);
  cr_assert_eq(dc_copy_to_buffer(a, x, n), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_copy_to_buffer(b, y, n), DC_OK, "%s", dc_last_error());
  cr_assert_eq(memcmp(x, y, n), 0);
  free(x);
  free(y);
}

Test(device, constructors_on_device_match_cpu, .init = setup) {
  dc_scope_begin();
  assert_bits_equal(dc_zeros_on(DC_SHAPE(3, 4), DC_F32, DC_TESTDEV),
                    dc_zeros(DC_SHAPE(3, 4), DC_F32));
  assert_bits_equal(dc_full_on(DC_SHAPE(5), 2.5, DC_F64, DC_TESTDEV),
                    dc_full(DC_SHAPE(5), 2.5, DC_F64));
  assert_bits_equal(dc_arange_on(0, 7, 2, DC_I64, DC_TESTDEV), dc_arange(0, 7, 2, DC_I64));
  assert_bits_equal(dc_linspace_on(-1, 1, 9, DC_F32, DC_TESTDEV), dc_linspace(-1, 1, 9, DC_F32));
  assert_bits_equal(dc_eye_on(3, 4, DC_F32, DC_TESTDEV), dc_eye(3, 4, DC_F32));
  float d[4] = {1, -2, 3.5f, 4};
  assert_bits_equal(dc_from_data_on(d, DC_SHAPE(2, 2), DC_F32, DC_TESTDEV),
                    dc_from_data(d, DC_SHAPE(2, 2), DC_F32));
  /* the same generator stream feeds every device */
  dc_manual_seed(5);
  dc_tensor *rd = dc_randn_on(DC_SHAPE(64), DC_F32, DC_TESTDEV);
  dc_tensor *ud = dc_rand_on(DC_SHAPE(7, 3), DC_F64, DC_TESTDEV);
  dc_tensor *id = dc_randint_on(-3, 9, DC_SHAPE(20), DC_I64, DC_TESTDEV);
  dc_tensor *pd = dc_randperm_on(17, DC_TESTDEV);
  dc_tensor *bd = dc_bernoulli(dc_full_on(DC_SHAPE(50), 0.3, DC_F32, DC_TESTDEV));
  dc_manual_seed(5);
  assert_bits_equal(rd, dc_randn(DC_SHAPE(64), DC_F32));
  assert_bits_equal(ud, dc_rand(DC_SHAPE(7, 3), DC_F64));
  assert_bits_equal(id, dc_randint(-3, 9, DC_SHAPE(20), DC_I64));
  assert_bits_equal(pd, dc_randperm(17));
  assert_bits_equal(bd, dc_bernoulli(dc_full(DC_SHAPE(50), 0.3, DC_F32)));
  cr_assert_eq(rd->device, DC_TESTDEV);
  cr_assert_eq(bd->device, DC_TESTDEV);
  cr_assert_eq(dc_rand_like(rd)->device, DC_TESTDEV);
  dc_scope_end();
}

Test(device, to_device_and_back_with_gradient, .init = setup) {
  dc_scope_begin();
  dc_manual_seed(1);
  dc_tensor *x = dc_requires_grad_(dc_randn(DC_SHAPE(4, 3), DC_F64), true);
  dc_tensor *xt = dc_transpose(x, 0, 1); /* strided source */
  int before = g_transfers;
  dc_tensor *y = dc_to_device(xt, DC_TESTDEV);
  cr_assert_not_null(y, "%s", dc_last_error());
  cr_assert_eq(y->device, DC_TESTDEV);
  cr_assert(dc_is_contiguous(y));
  cr_assert_eq(g_transfers, before + 1, "one transfer");
  assert_bits_equal(y, xt);
  dc_tensor *z = dc_mul(y, y);
  dc_tensor *back = dc_to_device(dc_sum(z, NULL, 0, false), DC_CPU);
  cr_assert_eq(back->device, DC_CPU);
  cr_assert_eq(dc_backward(back, NULL), DC_OK, "%s", dc_last_error());
  cr_assert_not_null(x->grad);
  cr_assert_eq(x->grad->device, DC_CPU);
  assert_bits_equal(x->grad, dc_mul_scalar(x, 2.0));
  cr_assert_float_eq(dc_item(back), dc_item(dc_sum(dc_mul(x, x), NULL, 0, false)), 1e-12);
  /* a device op mixing devices is refused by name */
  cr_assert_null(dc_add(x, y));
  cr_assert(strstr(dc_last_error(), "cpu and testdev"), "%s", dc_last_error());
  dc_scope_end();
}

Test(device, copy_across_devices_and_move, .init = setup) {
  dc_scope_begin();
  dc_tensor *src = dc_arange(0, 6, 1, DC_F32);
  dc_tensor *dst = dc_zeros_on(DC_SHAPE(2, 6), DC_F64, DC_TESTDEV);
  cr_assert_eq(dc_copy_(dst, src), DC_OK, "%s", dc_last_error()); /* broadcast + convert */
  cr_assert_eq(dc_item_at(dst, 7), 1.0);
  dc_tensor *dt = dc_transpose(dc_zeros_on(DC_SHAPE(6, 2), DC_F32, DC_TESTDEV), 0, 1);
  cr_assert_eq(dc_copy_(dt, dst), DC_OK, "%s", dc_last_error()); /* same device, strided */
  dc_tensor *host = dc_zeros(DC_SHAPE(2, 6), DC_F32);
  cr_assert_eq(dc_copy_(host, dt), DC_OK, "%s", dc_last_error());
  assert_bits_equal(host, dc_to_dtype(dst, DC_F32));
  cr_assert_eq(dc_item(dc_sum(host, NULL, 0, false)), 30.0);

  dc_tensor *p = dc_randn(DC_SHAPE(3, 5), DC_F32);
  dc_tensor *keep = dc_clone(p);
  dc_tensor *view = dc_select(p, 0, 1);
  cr_assert_eq(dc_move_to_device_(p, DC_TESTDEV), DC_OK, "%s", dc_last_error());
  cr_assert_eq(p->device, DC_TESTDEV);
  cr_assert_null(dc_data(p), "no host pointer to device memory");
  cr_assert_eq(view->device, DC_CPU, "other views keep the old storage");
  assert_bits_equal(p, keep);
  cr_assert_eq(dc_move_to_device_(p, DC_CPU), DC_OK);
  assert_bits_equal(p, keep);
  int64_t live = -1;
  cr_assert_eq(dc_device_memory(DC_TESTDEV, &live, NULL), DC_OK);
  cr_assert_geq(live, 0);
  cr_assert_eq(dc_synchronize(DC_TESTDEV), DC_OK);
  dc_scope_end();
}
