/* `deepc bench WORKLOAD`: training throughput of the reference workloads of
 * ../shared/bench/torch_workloads.py (same network, batch, loss, optimizer, hyper-parameters,
 * warm-up and timed steps on synthetic in-memory data); prints one JSON line with the script's
 * fields plus peak memory. bench/compare runs it beside PyTorch. */
#include "commands.h"

#include <deepc/deepc.h>
#include <omp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Peak bytes of tensor storage on the cpu since the start. */
static int64_t cpu_tensor_peak(void) {
  int64_t peak = 0;
  dc_device_memory(DC_CPU, NULL, &peak);
  return peak;
}

static const char USAGE[] =
    "usage: deepc bench WORKLOAD [--device cpu|cuda|testdev] [--steps N] [--batch B] [--losses]\n"
    "                   [--threads T] [--allow-tf32] [--amp]\n"
    "Times full training steps (forward, cross-entropy, backward, optimizer step) on synthetic\n"
    "data already in memory, like ../shared/bench/torch_workloads.py, and prints one JSON line:\n"
    "workload, device, batch, steps, threads, samples_per_s, ms_per_step, loss (of the last\n"
    "step), peak_rss_mb (the process's peak resident memory), tensor_peak_mb (the peak of\n"
    "tensor storage), alloc_peak_mb (the peak of all deepc allocations), gflop_per_step\n"
    "(6 x forward multiply-adds x batch: forward 2 FLOPs per multiply-add, backward about\n"
    "twice the forward), gflop_per_s and peak_mem_mb (on a device other than the cpu: the peak\n"
    "of tensor storage on it during the timed steps, like the script's\n"
    "torch.cuda.max_memory_allocated; null on the cpu), reserved_mb (the peak the device's\n"
    "caching allocator held, torch.cuda.max_memory_reserved; null on the cpu) and\n"
    "device_mallocs (driver allocations during the timed steps: 0 once the cache is warm),\n"
    "tf32 and amp_bf16.\n"
    "  WORKLOAD       mlp_cifar_gray     1024-256-128-64-10 MLP, batch 64, SGD lr 0.01\n"
    "                 cnn_fashion        the Fashion-MNIST baseline CNN, batch 64, Adam lr 1e-3\n"
    "                 vgg11_cifar        VGG11 with batch norm on 3x32x32, batch 128,\n"
    "                                    SGD lr 0.05 momentum 0.9 weight decay 5e-4\n"
    "                 resnet34_finetune  ResNet34 on 3x224x224, 2 classes, batch 32,\n"
    "                                    SGD lr 1e-3 momentum 0.9\n"
    "  --device D     cpu (default), cuda or testdev (the model, its optimizer and the data\n"
    "                 on that device; one this build lacks is an error naming those it has)\n"
    "  --steps N      timed steps (default 50), after max(3, N/10) warm-up steps\n"
    "  --batch B      batch size (default: the workload's)\n"
    "  --losses       also \"losses\": every step's loss, warm-up steps first (to compare\n"
    "                 devices: the data and the initial weights come from one seed)\n"
    "  --threads T    CPU threads (default: OMP_NUM_THREADS or every core)\n"
    "  --allow-tf32   TF32 tensor cores for float32 products and convolutions on cuda (off\n"
    "                 by default, as PyTorch's; same as DEEPC_ALLOW_TF32=1)\n"

    "  --amp          forward and loss under bfloat16 autocast, float32 master weights (the\n"
    "                 script's --amp: torch.autocast(dev, torch.bfloat16); docs/autocast.md)\n";

typedef struct bench_workload {
  const char *name;
  const char *zoo;     /* zoo model */
  int64_t in[3];       /* one input [C, H, W] */
  int64_t classes;     /* outputs */
  int batch;           /* default batch */
  dc_optim_kind optim; /* with lr, momentum, weight decay below */
  double lr, momentum, weight_decay;
} bench_workload;

static const bench_workload WORKLOADS[] = {
    {"mlp_cifar_gray", "mlp", {1, 32, 32}, 10, 64, DC_OPTIM_SGD, 0.01, 0, 0},
    {"cnn_fashion", "cnn_fashion", {1, 28, 28}, 10, 64, DC_OPTIM_ADAM, 1e-3, 0, 0},
    {"vgg11_cifar", "vgg11_bn_cifar", {3, 32, 32}, 10, 128, DC_OPTIM_SGD, 0.05, 0.9, 5e-4},
    {"resnet34_finetune", "resnet34", {3, 224, 224}, 2, 32, DC_OPTIM_SGD, 1e-3, 0.9, 0},
};
enum { NWORKLOADS = (int)(sizeof WORKLOADS / sizeof WORKLOADS[0]) };

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static bool parse_int(const char *s, long lo, long hi, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

static dc_module *build_model(const bench_workload *w) {
  static const int64_t MLP_HIDDEN[] = {256, 128, 64};
  dc_zoo_opts o = {.num_classes = w->classes};
  if (strcmp(w->zoo, "mlp") == 0) {
    o.in_features = w->in[0] * w->in[1] * w->in[2];
    o.hidden = MLP_HIDDEN;
    o.nhidden = 3;
  }
  return dc_zoo_create_opt(w->zoo, o);
}

static dc_optim *build_optim(const bench_workload *w, dc_module *m) {
  int n;
  dc_named_tensor *ps = dc_module_trainable_parameters(m, &n);
  if (!ps) return NULL;
  dc_tensor **t = malloc((size_t)n * sizeof *t);
  dc_optim *o = NULL;
  if (t) {
    for (int i = 0; i < n; i++) t[i] = ps[i].tensor;
    dc_optim_hparams hp = dc_optim_defaults(w->optim);
    hp.lr = w->lr;
    hp.momentum = w->momentum;
    hp.weight_decay = w->weight_decay;
    o = dc_optim_create(w->optim, t, n, hp);
  }
  free(t);
  dc_named_tensors_free(ps, n);
  return o;
}

/* One training step; *loss receives its value. */
static int train_step(dc_module *m, dc_optim *o, dc_tensor *x, dc_tensor *y, bool amp,
                      double *loss) {
  dc_optim_zero_grad(o);
  dc_scope_begin();
  if (amp && dc_autocast_push(x->device, DC_BF16, true) != DC_OK) {
    dc_scope_end();
    return dc_last_status();
  }
  dc_tensor *l = dc_cross_entropy(dc_module_forward(m, x), y);
  if (amp) dc_autocast_pop();
  int rc = l ? dc_backward(l) : (int)dc_last_status();
  if (rc == DC_OK) rc = dc_optim_step(o);
  if (rc == DC_OK) *loss = dc_item(l);
  dc_scope_end();
  return rc;
}

/* ", \"losses\": [a, b, ...]" of the n losses, or "" when not asked for; caller frees */
static char *losses_json(const double *l, int n) {
  size_t cap = 16 + (size_t)n * 18, used = 0;
  char *s = l ? malloc(cap) : NULL;
  if (!s) return l ? NULL : strdup("");
  used += (size_t)snprintf(s, cap, ", \"losses\": [");
  for (int i = 0; i < n; i++)
    used += (size_t)snprintf(s + used, cap - used, "%s%.9g", i ? ", " : "", l[i]);
  snprintf(s + used, cap - used, "]");
  return s;
}

static int run(const bench_workload *w, int batch, int steps, int threads, dc_device dev,
               bool all_losses, bool amp) {
  dc_manual_seed(0);
  dc_module *m = build_model(w);
  if (m && dev != DC_CPU && dc_module_to(m, dev) != DC_OK) { /* before the optimizer */
    dc_module_free(m);
    m = NULL;
  }
  dc_optim *o = m ? build_optim(w, m) : NULL;
  dc_tensor *x = dc_randn_on(DC_SHAPE(batch, w->in[0], w->in[1], w->in[2]), DC_F32, dev);
  dc_tensor *y = dc_randint_on(0, w->classes, DC_SHAPE(batch), DC_I64, dev);
  int rc = (m && o && x && y) ? DC_OK : DC_CLI_FAIL;
  double loss = 0, t0 = 0, dt = 0;
  int64_t mallocs0 = 0; /* device_mallocs after the warm-up */
  int warm = steps / 10 > 3 ? steps / 10 : 3;
  double *losses = all_losses ? calloc((size_t)(warm + steps), sizeof *losses) : NULL; /* [n] */
  if (all_losses && !losses) rc = DC_CLI_FAIL;
  for (int i = 0; rc == DC_OK && i < warm + steps; i++) {
    if (i == warm) { /* after the warm-up, like the script's torch.cuda.reset_peak_memory_stats */
      if (dev != DC_CPU) {
        dc_device_memory_reset_peak(dev);
        dc_memory_stats ms0;
        if (dc_device_memory_stats(dev, &ms0) == DC_OK) mallocs0 = ms0.device_mallocs;
      }
      t0 = now_s();
    }
    rc = train_step(m, o, x, y, amp, &loss);
    if (losses) losses[i] = loss;
  }
  dt = now_s() - t0;
  /* training FLOPs: forward multiply-adds x 2, backward about twice the forward */
  double gflop = 0;
  if (rc == DC_OK) {
    dc_model_summary *sum = dc_summary(m, DC_SHAPE(w->in[0], w->in[1], w->in[2]));
    if (!sum)
      rc = DC_CLI_FAIL;
    else
      gflop = 6.0 * (double)sum->total_macs * batch / 1e9;
    dc_summary_free(sum);
  }
  char *lj = rc == DC_OK ? losses_json(losses, warm + steps) : NULL;
  if (rc == DC_OK && !lj) rc = DC_CLI_FAIL;
  if (rc == DC_OK) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    dc_alloc_stats st = dc_alloc_get_stats();
    /* the script's peak_mem_mb: tensors on the device, timed steps; and what was reserved */
    char devpeak[48] = "null", reserved[48] = "null", mallocs[32] = "null";
    dc_memory_stats ms;
    if (dev != DC_CPU && dc_device_memory_stats(dev, &ms) == DC_OK) {
      snprintf(devpeak, sizeof devpeak, "%.1f",
               (double)ms.peak_allocated_bytes / (1024.0 * 1024.0));
      snprintf(reserved, sizeof reserved, "%.1f",
               (double)ms.peak_reserved_bytes / (1024.0 * 1024.0));
      snprintf(mallocs, sizeof mallocs, "%lld", (long long)(ms.device_mallocs - mallocs0));
    }
    printf(
        "{\"workload\": \"%s\", \"device\": \"%s\", \"deepc\": \"%s\", \"batch\": %d, "
        "\"steps\": %d, \"threads\": %d, \"samples_per_s\": %.1f, \"ms_per_step\": %.3f, "
        "\"loss\": %.6g, \"peak_rss_mb\": %.1f, \"tensor_peak_mb\": %.1f, \"alloc_peak_mb\": %.1f, "
        "\"gflop_per_step\": %.4g, \"gflop_per_s\": %.1f, \"conv_algo\": \"%s\", "
        "\"peak_mem_mb\": %s, \"reserved_mb\": %s, \"device_mallocs\": %s, \"tf32\": %s, "
        "\"amp_bf16\": %s%s}\n",
        w->name, dc_device_name(dev), DEEPC_VERSION, batch, steps, threads, batch * steps / dt,
        1000 * dt / steps, loss, (double)ru.ru_maxrss / 1024.0,
        (double)cpu_tensor_peak() / (1024.0 * 1024.0), (double)st.peak_bytes / (1024.0 * 1024.0),
        gflop, gflop * steps / dt, dc_conv_algo_name(dc_get_conv_algo()), devpeak, reserved,
        mallocs, dc_allow_tf32() ? "true" : "false", amp ? "true" : "false", lj);
    fflush(stdout);
  }
  free(lj);
  free(losses);
  dc_free(x);
  dc_free(y);
  dc_optim_free(o);
  dc_module_free(m);
  return rc == DC_OK ? DC_CLI_OK : dc_cli_lib_error("bench");
}

int dc_cmd_bench(int argc, char **argv) {
  const char *name = NULL, *device = "cpu", *v;
  long steps = 50, batch = 0, threads = 0;
  bool all_losses = false, amp = false;
  for (int i = 1; i < argc; i++) {
    if (dc_cli_is_help(argv[i])) {
      fputs(USAGE, stdout);
      return DC_CLI_OK;
    }
    if (dc_cli_opt(argc, argv, &i, "--device", &v)) {
      if (!v) return dc_cli_usage_error("bench", "--device needs cpu, cuda or testdev");
      device = v;
    } else if (dc_cli_opt(argc, argv, &i, "--steps", &v)) {
      if (!v || !parse_int(v, 1, 1000000, &steps))
        return dc_cli_usage_error("bench", "--steps needs a whole number from 1 to 1000000");
    } else if (strcmp(argv[i], "--losses") == 0) {
      all_losses = true;
    } else if (strcmp(argv[i], "--allow-tf32") == 0) {
      dc_set_allow_tf32(true);
    } else if (strcmp(argv[i], "--amp") == 0) {
      amp = true;
    } else if (dc_cli_opt(argc, argv, &i, "--batch", &v)) {
      if (!v || !parse_int(v, 1, 1000000, &batch))
        return dc_cli_usage_error("bench", "--batch needs a whole number from 1 to 1000000");
    } else if (dc_cli_opt(argc, argv, &i, "--threads", &v)) {
      if (!v || !parse_int(v, 1, 4096, &threads))
        return dc_cli_usage_error("bench", "--threads needs a whole number from 1 to 4096");
    } else if (argv[i][0] == '-') {
      return dc_cli_usage_error("bench", "unknown option '%s'", argv[i]);
    } else if (name) {
      return dc_cli_usage_error("bench", "one WORKLOAD only (got '%s' and '%s')", name, argv[i]);
    } else {
      name = argv[i];
    }
  }
  if (!name)
    return dc_cli_usage_error("bench", "missing the WORKLOAD (mlp_cifar_gray, cnn_fashion, "
                                       "vgg11_cifar or resnet34_finetune)");
  const bench_workload *w = NULL;
  for (int k = 0; k < NWORKLOADS; k++)
    if (strcmp(WORKLOADS[k].name, name) == 0) w = &WORKLOADS[k];
  if (!w)
    return dc_cli_usage_error("bench",
                              "unknown workload '%s' (mlp_cifar_gray, cnn_fashion, "
                              "vgg11_cifar or resnet34_finetune)",
                              name);
  dc_device dev;
  int drc = dc_cli_device("bench", device, &dev);
  if (drc != DC_CLI_OK) return drc;
  if (threads > 0) omp_set_num_threads((int)threads);
  return run(w, batch > 0 ? (int)batch : w->batch, (int)steps, omp_get_max_threads(), dev,
             all_losses, amp);
}
