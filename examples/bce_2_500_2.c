/* Worked example: a 2 -> 500 -> 2 network (tanh hidden layer, sigmoid outputs) with the binary
 * cross-entropy loss written in deepc ops, seeded; prints the loss and the gradients of W1, b1,
 * W2, b2. With --dump DIR it writes inputs, weights and gradients as .npy files, which
 * tests/parity/test_examples.py checks against PyTorch.
 * Shapes: N batch, D = 2 inputs, H = 500 hidden units, O = 2 outputs.
 * usage: bce_2_500_2 [--seed S] [--batch N] [--float32] [--dump DIR] */
#include <deepc/deepc.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { D = 2, H = 500, O = 2 };

typedef struct net {
  dc_tensor *W1; /* [H, D] */
  dc_tensor *b1; /* [H] */
  dc_tensor *W2; /* [O, H] */
  dc_tensor *b2; /* [O] */
} net;

/* PyTorch's nn.Linear default: weights and biases from U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
static dc_tensor *uniform_param(dc_shape s, int64_t fan_in, dc_dtype dt) {
  dc_tensor *p = dc_empty(s, dt);
  double bound = 1.0 / sqrt((double)fan_in);
  if (!p || dc_uniform_(p, -bound, bound) != DC_OK || !dc_requires_grad_(p, true)) {
    dc_free(p);
    return NULL;
  }
  return p;
}

/* BCE(p, t) = -mean(t log p + (1 - t) log(1 - p)), p and t [N, O] */
static dc_tensor *binary_cross_entropy(dc_tensor *p, dc_tensor *t) {
  dc_tensor *pos = dc_mul(t, dc_log(p));
  dc_tensor *neg = dc_mul(dc_rsub_scalar(t, 1.0), dc_log(dc_rsub_scalar(p, 1.0)));
  return dc_neg(dc_mean_all(dc_add(pos, neg)));
}

/* loss of the network on x [N, D] with targets t [N, O] */
static dc_tensor *forward(const net *m, dc_tensor *x, dc_tensor *t) {
  dc_tensor *h = dc_tanh(dc_linear(x, m->W1, m->b1));    /* [N, H] */
  dc_tensor *p = dc_sigmoid(dc_linear(h, m->W2, m->b2)); /* [N, O] */
  return binary_cross_entropy(p, t);
}

/* Targets [N, O] from x [N, D]: t0 = (x0 > 0), t1 = (x0 * x1 > 0). */
static dc_tensor *make_targets(dc_tensor *x) {
  int64_t n = x->shape[0];
  double *t = malloc((size_t)n * O * sizeof *t);
  if (!t) return NULL;
  for (int64_t i = 0; i < n; i++) {
    double x0 = dc_item_at(x, i * D), x1 = dc_item_at(x, i * D + 1);
    t[i * O] = x0 > 0;
    t[i * O + 1] = x0 * x1 > 0;
  }
  dc_tensor *r = dc_to_dtype(dc_from_data(t, DC_SHAPE(n, O), DC_F64), x->dtype);
  free(t);
  return r;
}

/* ---- .npy output (NumPy format version 1.0, little-endian, C order) ---- */
static int save_npy(const char *dir, const char *name, dc_tensor *t) {
  char path[1024], header[256], shape[160] = "";
  snprintf(path, sizeof path, "%s/%s.npy", dir, name);
  size_t n = 0;
  for (int d = 0; d < t->ndim; d++)
    n += (size_t)snprintf(shape + n, sizeof shape - n, "%lld%s", (long long)t->shape[d],
                          t->ndim == 1      ? ","
                          : d + 1 < t->ndim ? ", "
                                            : "");
  int len = snprintf(header, sizeof header,
                     "{'descr': '<%s', 'fortran_order': False, "
                     "'shape': (%s), }",
                     t->dtype == DC_F64 ? "f8" : "f4", shape);
  int total = (10 + len + 1 + 63) / 64 * 64; /* magic + header + '\n', padded to 64 bytes */
  memset(header + len, ' ', (size_t)(total - 10 - len - 1));
  header[total - 10 - 1] = '\n';
  size_t bytes = (size_t)dc_numel(t) * dc_dtype_size(t->dtype);
  void *data = malloc(bytes ? bytes : 1);
  FILE *f = fopen(path, "wb");
  bool ok = f && data && dc_copy_to_buffer(t, data, bytes) == DC_OK;
  unsigned char pre[10] = {0x93,
                           'N',
                           'U',
                           'M',
                           'P',
                           'Y',
                           1,
                           0,
                           (unsigned char)((total - 10) & 0xff),
                           (unsigned char)((total - 10) >> 8)};
  ok = ok && fwrite(pre, 1, 10, f) == 10 &&
       fwrite(header, 1, (size_t)(total - 10), f) == (size_t)(total - 10) &&
       fwrite(data, 1, bytes, f) == bytes;
  if (f && fclose(f) != 0) ok = false;
  free(data);
  if (!ok) fprintf(stderr, "bce_2_500_2: could not write %s\n", path);
  return ok ? 0 : 1;
}

static void summary(const char *name, dc_tensor *g) {
  char s[64];
  double sum = 0, sq = 0;
  for (int64_t k = 0, n = dc_numel(g); k < n; k++) {
    double v = dc_item_at(g, k);
    sum += v;
    sq += v * v;
  }
  printf("%-8s %-9s sum %+.10e  norm %.10e  first:", name,
         dc_shape_str(dc_shape_of(g), s, sizeof s), sum, sqrt(sq));
  for (int64_t k = 0; k < 4 && k < dc_numel(g); k++) printf(" %+.6e", dc_item_at(g, k));
  printf("\n");
}

typedef struct options {
  uint64_t seed;
  int64_t batch;
  dc_dtype dtype;
  const char *dump;
} options;

static int parse(int argc, char **argv, options *o) {
  *o = (options){.seed = 0, .batch = 16, .dtype = DC_F64};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    char *end = NULL;
    if (strcmp(a, "--float32") == 0) {
      o->dtype = DC_F32;
      continue;
    }
    if (!v || (strcmp(a, "--seed") && strcmp(a, "--batch") && strcmp(a, "--dump"))) {
      fprintf(stderr, "usage: bce_2_500_2 [--seed S] [--batch N] [--float32] [--dump DIR]\n");
      return 2;
    }
    i++;
    if (strcmp(a, "--dump") == 0)
      o->dump = v;
    else if (strcmp(a, "--seed") == 0)
      o->seed = strtoull(v, &end, 10);
    else
      o->batch = strtoll(v, &end, 10);
    if (end && (*end || end == v || (strcmp(a, "--batch") == 0 && o->batch <= 0))) {
      fprintf(stderr, "bce_2_500_2: bad value '%s' for %s\n", v, a);
      return 2;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  options o;
  int rc = parse(argc, argv, &o);
  if (rc) return rc;

  dc_manual_seed(o.seed);
  net m = {uniform_param(DC_SHAPE(H, D), D, o.dtype), uniform_param(DC_SHAPE(H), D, o.dtype),
           uniform_param(DC_SHAPE(O, H), H, o.dtype), uniform_param(DC_SHAPE(O), H, o.dtype)};
  dc_tensor *params[] = {m.W1, m.b1, m.W2, m.b2};
  const char *names[] = {"W1", "b1", "W2", "b2"};

  dc_scope_begin(); /* the batch, the forward graph and temporaries go at dc_scope_end */
  dc_tensor *x = dc_randn(DC_SHAPE(o.batch, D), o.dtype);
  dc_tensor *t = x ? make_targets(x) : NULL;
  dc_tensor *loss = m.W1 && m.b1 && m.W2 && m.b2 && t ? forward(&m, x, t) : NULL;
  if (!loss || dc_backward(loss) != DC_OK) {
    fprintf(stderr, "bce_2_500_2: %s\n", dc_last_error());
    rc = 1;
  } else {
    printf("2-500-2 network, tanh hidden, sigmoid output, binary cross-entropy\n");
    printf("seed %llu, batch %lld, %s\n", (unsigned long long)o.seed, (long long)o.batch,
           dc_dtype_name(o.dtype));
    printf("loss %.12f\n", dc_item(loss));
    for (int k = 0; k < 4; k++) summary(names[k], params[k]->grad);
    if (o.dump) {
      dc_tensor *files[] = {x,    t,          loss,       m.W1,       m.b1,      m.W2,
                            m.b2, m.W1->grad, m.b1->grad, m.W2->grad, m.b2->grad};
      const char *fnames[] = {"x",  "t",       "loss",    "W1",      "b1",     "W2",
                              "b2", "W1_grad", "b1_grad", "W2_grad", "b2_grad"};
      for (int k = 0; k < 11; k++) rc |= save_npy(o.dump, fnames[k], files[k]);
      if (!rc) printf("wrote %s/{x,t,loss,W1,b1,W2,b2,*_grad}.npy\n", o.dump);
    }
  }
  dc_scope_end();
  for (int k = 0; k < 4; k++) dc_free(params[k]);
  return rc;
}
