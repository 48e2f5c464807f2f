/* Transfer learning on Fashion-MNIST, the C half of examples/transfer/run.sh (built as
 * build/examples/transfer_demo).
 *   transfer_demo folders OUT [--pretrain-per-class N] [--finetune-per-class N] [--test-per-class
 * N] writes image folders of PNG files: OUT/pretrain/{train,test}/<class>/ with eight classes and
 * OUT/finetune/{train,test}/{Shirt,T-shirt_top}/ with the two held-out ones. transfer_demo finetune
 * DATA WEIGHTS [--epochs N] [--lr X] [--backbone-lr X] [--curves CSV] fine-tunes a small ResNet-18
 * on DATA/train with the C API: the pretrained weights (any .pth / .safetensors / .ckpt) loaded
 * with dc_zoo_load_pretrained (the 8-class head is left out), a fresh 2-class head, and two
 * parameter groups (head at lr, backbone at backbone-lr); WEIGHTS "none" starts from random
 * weights. Prints test accuracy. The pretraining and the config-driven fine-tuning are `deepc
 * train` runs (see run.sh). */
#include <deepc/deepc.h>
#include <deepc/io.h>
#include <deepc/train.h>

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int HELD_OUT[2] = {0, 6}; /* T-shirt/top, Shirt (--held-out a,b) */

static int fail(const char *what) {
  fprintf(stderr, "transfer: %s: %s\n", what, dc_last_error());
  return 1;
}

static int mkdirs(const char *path) {
  char buf[1200];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
      *p = '/';
    }
  return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* A gray 8-bit PNG of h x w pixels. */
static int write_png(const char *path, const uint8_t *px, int h, int w) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    fclose(f);
    return -1;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int r = 0; r < h; r++) png_write_row(png, (png_const_bytep)(px + (size_t)r * (size_t)w));
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  return fclose(f);
}

/* Class name usable as a folder ("T-shirt/top" -> "T-shirt_top"). */
static void folder_of(const char *name, char *buf, size_t n) {
  snprintf(buf, n, "%s", name);
  for (char *p = buf; *p; p++)
    if (*p == '/' || *p == ' ') *p = '_';
}

/* The first per_class images of each class of ds into root/<class>/: the eight pretraining
 * classes or the two held-out ones. */
static int write_split(dc_dataset *ds, const char *root, bool held_out, int per_class) {
  int count[10] = {0};
  char dir[1100], file[1200], cls[64];
  for (int64_t i = 0; i < dc_dataset_len(ds); i++) {
    int64_t k = dc_dataset_label(ds, i);
    bool is_held = k == HELD_OUT[0] || k == HELD_OUT[1];
    if (k < 0 || k > 9 || is_held != held_out || count[k] >= per_class) continue;
    folder_of(dc_dataset_class_name(ds, k), cls, sizeof cls);
    snprintf(dir, sizeof dir, "%s/%s", root, cls);
    if (count[k] == 0 && mkdirs(dir) != 0) {
      fprintf(stderr, "transfer: cannot create %s (%s)\n", dir, strerror(errno));
      return 1;
    }
    dc_scope_begin();
    dc_tensor *x = NULL, *y = NULL;
    int rc = dc_dataset_get(ds, i, 0, &x, &y); /* uint8 [28, 28, 1] */
    snprintf(file, sizeof file, "%s/%05lld.png", dir, (long long)i);
    if (rc == DC_OK && write_png(file, dc_data(x), (int)x->shape[0], (int)x->shape[1]) != 0)
      rc = DC_ERR_IO, fprintf(stderr, "transfer: cannot write %s\n", file);
    dc_scope_end();
    if (rc != DC_OK) return rc == DC_ERR_IO ? 1 : fail("reading Fashion-MNIST");
    count[k]++;
  }
  return 0;
}

static int cmd_folders(int argc, char **argv) {
  const char *out = NULL;
  int pre = 1000, fine = 50, test = 500;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--pretrain-per-class") == 0 && i + 1 < argc)
      pre = atoi(argv[++i]);
    else if (strcmp(argv[i], "--finetune-per-class") == 0 && i + 1 < argc)
      fine = atoi(argv[++i]);
    else if (strcmp(argv[i], "--test-per-class") == 0 && i + 1 < argc)
      test = atoi(argv[++i]);
    else if (strcmp(argv[i], "--held-out") == 0 && i + 1 < argc)
      sscanf(argv[++i], "%d,%d", &HELD_OUT[0], &HELD_OUT[1]);
    else
      out = argv[i];
  }
  if (!out) return fprintf(stderr, "usage: transfer folders OUT [--...-per-class N]\n"), 2;
  dc_dataset *train = dc_fashion_mnist(NULL, true),
             *tst = train ? dc_fashion_mnist(NULL, false) : NULL;
  if (!tst) return fail("Fashion-MNIST");
  char root[1024];
  int rc = 0;
  struct {
    const char *sub;
    dc_dataset *ds;
    bool held;
    int n;
  } parts[] = {{"pretrain/train", train, false, pre},
               {"pretrain/test", tst, false, test / 2},
               {"finetune/train", train, true, fine},
               {"finetune/test", tst, true, test}};
  for (size_t p = 0; p < sizeof parts / sizeof parts[0] && rc == 0; p++) {
    snprintf(root, sizeof root, "%s/%s", out, parts[p].sub);
    rc = write_split(parts[p].ds, root, parts[p].held, parts[p].n);
    if (rc == 0) printf("%s: %d images per class\n", root, parts[p].n);
  }
  dc_dataset_free(train);
  dc_dataset_free(tst);
  return rc;
}

/* ---- fine-tuning with the C API ---- */
/* DATA/split as RGB images (torchvision's ImageFolder), [random flips,] ToTensor, Normalize. */
static dc_dataset *folder_set(const char *root, const char *split, bool augment) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", root, split);
  dc_dataset *ds = dc_image_folder(path);
  double mean[3] = {0.286, 0.286, 0.286}, std[3] = {0.353, 0.353, 0.353};
  dc_transform *tf[3] = {dc_tf_random_hflip(0.5), dc_tf_to_tensor(), dc_tf_normalize(mean, std, 3)};
  if (ds && dc_dataset_set_transform(ds, augment ? dc_tf_compose(tf, 3)
                                                 : dc_tf_compose(tf + 1, 2)) != DC_OK) {
    dc_dataset_free(ds);
    return NULL;
  }
  return ds;
}

static int cmd_finetune(int argc, char **argv) {
  if (argc < 4) return fprintf(stderr, "usage: transfer finetune DATA WEIGHTS|none [...]\n"), 2;
  const char *data = argv[2], *weights = argv[3], *curves = NULL;
  int epochs = 15;
  double lr = 0.01, backbone_lr = 0.001;
  for (int i = 4; i < argc; i++) {
    if (strcmp(argv[i], "--epochs") == 0 && i + 1 < argc)
      epochs = atoi(argv[++i]);
    else if (strcmp(argv[i], "--lr") == 0 && i + 1 < argc)
      lr = atof(argv[++i]);
    else if (strcmp(argv[i], "--backbone-lr") == 0 && i + 1 < argc)
      backbone_lr = atof(argv[++i]);
    else if (strcmp(argv[i], "--curves") == 0 && i + 1 < argc)
      curves = argv[++i];
  }
  bool pretrained = strcmp(weights, "none") != 0;
  dc_manual_seed(0);
  /* the network of the pretraining run, with its 8-class head... */
  dc_module *m = dc_zoo_create("resnet18", .num_classes = 8, .width = 16, .small_input = true);
  if (!m) return fail("model");
  /* ...its weights (PyTorch: model.load_state_dict(torch.load(path)))... */
  if (pretrained && dc_zoo_load_pretrained(m, weights, .log = stdout) != DC_OK)
    return fail(weights);
  /* ...and a new 2-class head (PyTorch: model.fc = nn.Linear(128, 2)) */
  if (dc_zoo_replace_head(m, 2) != DC_OK) return fail("head");
  /* head at lr, the rest at backbone_lr (PyTorch: SGD([{'params': fc}, {'params': rest, 'lr':
   * ..}])) */
  dc_optim_hparams hp = dc_optim_defaults(DC_OPTIM_SGD);
  hp.lr = lr;
  hp.momentum = 0.9;
  dc_param_group groups[2];
  int ng = 0;
  if (dc_zoo_param_groups(m, hp, pretrained ? backbone_lr : lr, groups, &ng) != DC_OK)
    return fail("groups");
  dc_optim *opt = dc_optim_new(DC_OPTIM_SGD, groups, ng);
  dc_zoo_param_groups_free(groups, ng);
  dc_dataset *tr = folder_set(data, "train", true), *te = folder_set(data, "test", false);
  dc_sched *cos = opt ? dc_sched_cosine_annealing_lr(opt, epochs, 0) : NULL;
  if (!cos || !tr || !te) return fail("setup");
  dc_loader *ltr = dc_loader_new(tr, .batch_size = 10, .shuffle = true, .seed = 1);
  dc_loader *lte = dc_loader_new(te, .batch_size = 250);
  if (!ltr || !lte) return fail("loaders");
  dc_trainer *t =
      dc_trainer_new(m, opt, ltr, (dc_trainer_opts){.epochs = epochs, .val = lte, .sched = cos});
  if (!t || dc_trainer_fit(t) != DC_OK) return fail("training");
  const dc_history *h = dc_trainer_history(t);
  printf("%s: test accuracy %.2f%% after %d epochs (best %.2f%%)\n",
         pretrained ? "pretrained" : "from scratch", 100 * h->rows[h->n - 1].val_acc, h->n,
         100 * h->rows[dc_trainer_best_epoch(t) - 1].val_acc);
  if (curves && dc_history_write_csv(h, curves) != DC_OK) return fail(curves);
  dc_trainer_free(t);
  dc_sched_free(cos);
  dc_loader_free(ltr);
  dc_loader_free(lte);
  dc_dataset_free(tr);
  dc_dataset_free(te);
  dc_optim_free(opt);
  dc_module_free(m);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "folders") == 0) return cmd_folders(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "finetune") == 0) return cmd_finetune(argc, argv);
  fprintf(stderr, "usage: transfer folders OUT ... | transfer finetune DATA WEIGHTS ...\n");
  return 2;
}
