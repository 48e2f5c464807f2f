/* Classification metrics against hand-computed values: accuracy, top-k, per-class precision,
 * recall and F1, confusion matrix, and their text / markdown tables. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <deepc/train.h>
#include <math.h>
#include <string.h>

/* 6 samples, 3 classes: predicted (argmax) 0,1,2,2,1,0 for true 0,1,2,1,1,2 */
static const float OUT[6][3] = {{3, 1, 0}, {0, 2, 1}, {0, 1, 4}, {0, 1, 2}, {1, 5, 0}, {2, 0, 1}};
static const int64_t TGT[6] = {0, 1, 2, 1, 1, 2};

static dc_metrics *filled(int topk) {
  dc_tensor *o = dc_from_data(OUT, DC_SHAPE(6, 3), DC_F32);
  dc_tensor *t = dc_from_data(TGT, DC_SHAPE(6), DC_I64);
  dc_metrics *m = dc_metrics_new(3, topk);
  cr_assert_eq(dc_metrics_update(m, o, t), DC_OK, "%s", dc_last_error());
  dc_free(o);
  dc_free(t);
  return m;
}

Test(metrics, confusion_and_rates) {
  dc_metrics *m = filled(2);
  const int64_t want[9] = {1, 0, 0, /**/ 0, 2, 1, /**/ 1, 0, 1};
  for (int i = 0; i < 9; i++) cr_assert_eq(m->confusion[i], want[i], "cell %d", i);
  cr_assert_float_eq(dc_metrics_accuracy(m), 4.0 / 6, 1e-12);
  /* top-2: sample 5 (true 2, scores 2,0,1) ranks 2nd -> hit; sample 3 (true 1: 0,1,2) 2nd */
  cr_assert_float_eq(dc_metrics_topk_accuracy(m), 6.0 / 6, 1e-12);
  cr_assert_float_eq(dc_metrics_precision(m, 0), 0.5, 1e-12);
  cr_assert_float_eq(dc_metrics_recall(m, 1), 2.0 / 3, 1e-12);
  cr_assert_float_eq(dc_metrics_precision(m, 2), 0.5, 1e-12);
  cr_assert_float_eq(dc_metrics_f1(m, 2), 0.5, 1e-12);
  cr_assert_float_eq(dc_metrics_f1(m, 1), 0.8, 1e-12);
  cr_assert_eq(dc_metrics_support(m, 1), 3);
  cr_assert_float_eq(dc_metrics_macro_recall(m), (1 + 2.0 / 3 + 0.5) / 3, 1e-12);
  dc_metrics_free(m);
}

Test(metrics, text_and_markdown) {
  dc_metrics *m = filled(1);
  const char *names[] = {"cat", "dog", "bird"};
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  cr_assert_eq(dc_metrics_print_classes(f, m, names, false), DC_OK);
  cr_assert_eq(dc_metrics_print_confusion(f, m, names, true), DC_OK);
  fclose(f);
  cr_assert(strstr(buf, "dog") && strstr(buf, "66.67"), "%s", buf);
  cr_assert(strstr(buf, "| **bird** | 1 | 0 | **1** |"), "%s", buf);
  free(buf);
  dc_metrics_free(m);
}

Test(metrics, undefined_and_errors) {
  dc_metrics *m = dc_metrics_new(4, 1);
  cr_assert(isnan(dc_metrics_accuracy(m)));
  cr_assert(isnan(dc_metrics_precision(m, 3)));
  dc_tensor *o = dc_from_data(OUT, DC_SHAPE(6, 3), DC_F32);
  dc_tensor *t = dc_from_data(TGT, DC_SHAPE(6), DC_I64);
  cr_assert_neq(dc_metrics_update(m, o, t), DC_OK); /* 3 outputs, 4 classes */
  cr_assert(strstr(dc_last_error(), "3 classes"), "%s", dc_last_error());
  dc_metrics_free(m);
  const int64_t bad[6] = {0, 1, 2, 1, 3, 2};
  dc_tensor *tb = dc_from_data(bad, DC_SHAPE(6), DC_I64);
  m = dc_metrics_new(3, 1);
  cr_assert_neq(dc_metrics_update(m, o, tb), DC_OK);
  cr_assert(strstr(dc_last_error(), "sample 4"), "%s", dc_last_error());
  cr_assert_eq(m->count, 0);
  cr_assert_float_eq(dc_accuracy(o, t), 4.0 / 6, 1e-12);
  cr_assert_float_eq(dc_topk_accuracy(o, t, 3), 1.0, 1e-12);
  dc_metrics_free(m);
  dc_free(o);
  dc_free(t);
  dc_free(tb);
  cr_assert_null(dc_metrics_new(0, 1));
}
