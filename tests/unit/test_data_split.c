/* Unit tests of datasets built from others and of per-sample transforms: Subset, random_split
 * (lengths and PyTorch 1.13's fraction rule, disjoint and covering, reproducible by seed),
 * ConcatDataset, tensor datasets, and transforms applied through dc_dataset_get with a seed. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>

#include <string.h>

static dc_dataset *numbered(int64_t n) {
  float *x = malloc(sizeof(float) * (size_t)n * 2);
  int64_t *y = malloc(sizeof(int64_t) * (size_t)n);
  for (int64_t i = 0; i < n; i++) {
    x[2 * i] = (float)i;
    x[2 * i + 1] = -(float)i;
    y[i] = i % 4;
  }
  dc_tensor *tx = dc_from_data(x, DC_SHAPE(n, 2), DC_F32),
            *ty = dc_from_data(y, DC_SHAPE(n), DC_I64);
  dc_dataset *ds = dc_tensor_dataset(tx, ty);
  dc_free(tx);
  dc_free(ty);
  free(x);
  free(y);
  cr_assert_not_null(ds, "%s", dc_last_error());
  return ds;
}

static int64_t id_of(dc_dataset *ds, int64_t i) {
  dc_tensor *x;
  cr_assert_eq(dc_dataset_get(ds, i, 0, &x, NULL), DC_OK, "%s", dc_last_error());
  int64_t v = (int64_t)((float *)dc_data(x))[0];
  dc_free(x);
  return v;
}

Test(split, tensor_dataset_classes_and_get) {
  dc_dataset *ds = numbered(10);
  cr_assert_eq(dc_dataset_len(ds), 10);
  cr_assert_eq(dc_dataset_num_classes(ds), 4);
  cr_assert_str_eq(dc_dataset_class_name(ds, 2), "2");
  cr_assert_eq(dc_dataset_label(ds, 7), 3);
  dc_tensor *x, *y;
  cr_assert_eq(dc_dataset_get(ds, 7, 0, &x, &y), DC_OK);
  cr_assert(x->ndim == 1 && x->shape[0] == 2 && ((float *)dc_data(x))[1] == -7.0f);
  cr_assert(y->ndim == 0 && dc_item(y) == 3.0);
  dc_free(x);
  dc_free(y);
  cr_assert_neq(dc_dataset_get(ds, 10, 0, &x, &y), DC_OK);
  cr_assert(strstr(dc_last_error(), "index 10 out of range"));
  cr_assert_null(x);
  dc_dataset_free(ds);
  dc_tensor *a = dc_zeros(DC_SHAPE(3, 2), DC_F32), *b = dc_zeros(DC_SHAPE(4), DC_I64);
  cr_assert_null(dc_tensor_dataset(a, b));
  cr_assert(strstr(dc_last_error(), "disagree"), "%s", dc_last_error());
  dc_free(a);
  dc_free(b);
}

Test(split, random_split_lengths) {
  dc_dataset *ds = numbered(100);
  dc_dataset *parts[3], *again[3];
  int64_t len[3] = {50, 25, 25};
  cr_assert_eq(dc_random_split(ds, len, 3, 11, parts), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_random_split(ds, len, 3, 11, again), DC_OK);
  int seen[100] = {0};
  for (int k = 0; k < 3; k++) {
    cr_assert_eq(dc_dataset_len(parts[k]), len[k]);
    for (int64_t i = 0; i < len[k]; i++) {
      int64_t v = id_of(parts[k], i);
      seen[v]++;
      cr_assert_eq(v, id_of(again[k], i), "same seed, different split");
      cr_assert_eq(dc_dataset_label(parts[k], i), v % 4);
    }
  }
  for (int i = 0; i < 100; i++) cr_assert_eq(seen[i], 1, "sample %d in %d parts", i, seen[i]);
  bool in_order = true;
  for (int64_t i = 0; i < 50; i++) in_order = in_order && id_of(parts[0], i) == i;
  cr_assert(!in_order, "random_split did not shuffle");
  cr_assert_eq(dc_dataset_num_classes(parts[1]), 4);
  for (int k = 0; k < 3; k++) {
    dc_dataset_free(parts[k]);
    dc_dataset_free(again[k]);
  }
  int64_t bad[2] = {50, 49};
  cr_assert_neq(dc_random_split(ds, bad, 2, 1, parts), DC_OK);
  cr_assert(strstr(dc_last_error(), "sum to 99"), "%s", dc_last_error());
  dc_dataset_free(ds);
}

Test(split, fractions_follow_pytorch) {
  dc_dataset *ds = numbered(10);
  dc_dataset *parts[3];
  double f[3] = {0.33, 0.33, 0.34};
  cr_assert_eq(dc_random_split_fractions(ds, f, 3, 5, parts), DC_OK, "%s", dc_last_error());
  /* floor: 3, 3, 3; the remaining 1 goes to the first */
  cr_assert_eq(dc_dataset_len(parts[0]), 4);
  cr_assert_eq(dc_dataset_len(parts[1]), 3);
  cr_assert_eq(dc_dataset_len(parts[2]), 3);
  for (int k = 0; k < 3; k++) dc_dataset_free(parts[k]);
  double g[2] = {0.9, 0.2};
  cr_assert_neq(dc_random_split_fractions(ds, g, 2, 5, parts), DC_OK);
  cr_assert(strstr(dc_last_error(), "sum to 1.1"), "%s", dc_last_error());
  dc_dataset_free(ds);
}

Test(split, subsets_outlive_parents_and_concat) {
  dc_dataset *ds = numbered(20);
  int64_t idx[3] = {19, 0, 5};
  dc_dataset *s = dc_subset(ds, idx, 3);
  cr_assert_not_null(s);
  dc_dataset_free(ds); /* the subset keeps it alive */
  cr_assert_eq(id_of(s, 0), 19);
  cr_assert_eq(dc_dataset_label(s, 2), 1);
  int64_t out[1] = {3};
  cr_assert_null(dc_subset(s, out, 1));
  cr_assert(strstr(dc_last_error(), "index 3 (position 0) is out of range"), "%s", dc_last_error());
  dc_dataset *other = numbered(5);
  dc_dataset *parts[2] = {s, other};
  dc_dataset *cat = dc_concat_dataset(parts, 2);
  cr_assert_not_null(cat, "%s", dc_last_error());
  cr_assert_eq(dc_dataset_len(cat), 8);
  int64_t want[8] = {19, 0, 5, 0, 1, 2, 3, 4};
  for (int i = 0; i < 8; i++) cr_assert_eq(id_of(cat, i), want[i]);
  cr_assert_eq(dc_dataset_label(cat, 7), 0);
  dc_dataset_free(s);
  dc_dataset_free(other);
  cr_assert_eq(id_of(cat, 2), 5);
  dc_dataset_free(cat);
}

Test(split, transforms_by_seed_and_on_subsets) {
  uint8_t px[4 * 8 * 8];
  for (int i = 0; i < 4 * 64; i++) px[i] = (uint8_t)(i * 13);
  dc_tensor *x = dc_from_data(px, DC_SHAPE(4, 8, 8), DC_U8);
  dc_dataset *ds = dc_tensor_dataset(x, NULL);
  dc_free(x);
  cr_assert_not_null(ds, "%s", dc_last_error());
  cr_assert_eq(dc_dataset_set_transform(
                   ds, DC_TF_COMPOSE(dc_tf_random_crop(6, 6, .padding = 1), dc_tf_to_tensor())),
               DC_OK);
  dc_tensor *a, *b, *c, *y = (dc_tensor *)1;
  cr_assert_eq(dc_dataset_get(ds, 2, 123, &a, &y), DC_OK);
  cr_assert_null(y, "a dataset without targets gave a target");
  cr_assert_eq(dc_dataset_get(ds, 2, 123, &b, NULL), DC_OK);
  cr_assert(a->dtype == DC_F32 && a->ndim == 3 && a->shape[0] == 1 && a->shape[1] == 6);
  cr_assert_eq(memcmp(dc_data(a), dc_data(b), 36 * 4), 0, "same seed, different augmentation");
  bool differs = false;
  for (uint64_t seed = 1; seed < 20 && !differs; seed++) {
    cr_assert_eq(dc_dataset_get(ds, 2, seed, &c, NULL), DC_OK);
    differs = memcmp(dc_data(a), dc_data(c), 36 * 4) != 0;
    dc_free(c);
  }
  cr_assert(differs, "the seed does not change the augmentation");
  /* a subset's transform runs after the parent's */
  int64_t idx[1] = {2};
  dc_dataset *s = dc_subset(ds, idx, 1);
  double m[1] = {0.5}, sd[1] = {0.25};
  cr_assert_eq(dc_dataset_set_transform(s, dc_tf_normalize(m, sd, 1)), DC_OK);
  cr_assert_eq(dc_dataset_get(s, 0, 5, &c, NULL), DC_OK);
  cr_assert_eq(c->shape[1], 6);
  float v = ((float *)dc_data(c))[7];
  cr_assert(v >= -2.0f && v <= 2.0f);
  dc_free(a);
  dc_free(b);
  dc_free(c);
  dc_dataset_free(s);
  /* transforms that cannot apply say why */
  cr_assert_eq(dc_dataset_set_transform(ds, dc_tf_normalize(m, sd, 1)), DC_OK);
  cr_assert_neq(dc_dataset_get(ds, 0, 1, &a, NULL), DC_OK);
  cr_assert(strstr(dc_last_error(), "apply to_tensor first"), "%s", dc_last_error());
  dc_dataset_free(ds);
}

Test(split, compose_owns_and_frees) {
  int64_t before = dc_alloc_get_stats().live_blocks;
  dc_transform *t = DC_TF_COMPOSE(dc_tf_resize(10, 0), dc_tf_center_crop(8, 8), dc_tf_to_tensor());
  cr_assert_not_null(t);
  dc_transform_free(t);
  cr_assert_null(DC_TF_COMPOSE(dc_tf_to_tensor(), dc_tf_grayscale(2), dc_tf_random_hflip(0.5)));
  cr_assert(strstr(dc_last_error(), "1 or 3"), "%s", dc_last_error());
  cr_assert_eq(dc_alloc_get_stats().live_blocks, before, "compose leaked on failure");
}
