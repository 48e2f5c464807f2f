/* NaN and infinity: anomaly mode (dc_set_detect_anomaly) names the first op that produces one,
 * forward or backward, with shapes; the trainer names the step, skips steps with non-finite
 * gradients when on_nan = skip, and never saves a checkpoint of non-finite weights. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <string.h>

static void anomaly_off(void) { dc_set_detect_anomaly(false); }

#define EXPECT_MSG(text)                                                                           \
  cr_assert(strstr(dc_last_error(), (text)) != NULL, "message lacks '%s': %s", (text),             \
            dc_last_error())

Test(anomaly, mode_switch, .fini = anomaly_off) {
  cr_assert_not(dc_is_anomaly_enabled());
  cr_assert_not(dc_set_detect_anomaly(true));
  cr_assert(dc_is_anomaly_enabled());
  cr_assert(dc_set_detect_anomaly(false));
  cr_assert_not(dc_is_anomaly_enabled());
}

Test(anomaly, off_lets_nan_through) {
  dc_scope_begin();
  dc_tensor *x = dc_from_data((float[]){1, -1}, DC_SHAPE(2), DC_F32);
  dc_tensor *y = dc_log(dc_requires_grad_(x, true));
  cr_assert_not_null(y);
  cr_assert(isnan(dc_item_at(y, 1)));
  dc_scope_end();
}

Test(anomaly, forward_names_the_op, .fini = anomaly_off) {
  dc_set_detect_anomaly(true);
  dc_scope_begin();
  dc_tensor *x =
      dc_requires_grad_(dc_from_data((float[]){1, 2, -1, 4, 5, 6}, DC_SHAPE(2, 3), DC_F32), true);
  dc_tensor *a = dc_mul_scalar(x, 2.0); /* finite: goes through */
  cr_assert_not_null(a, "%s", dc_last_error());
  dc_tensor *y = dc_log(a);
  cr_assert_null(y);
  cr_assert_eq(dc_last_status(), DC_ERR_STATE);
  EXPECT_MSG("anomaly: forward of 'log' produced NaN at element 2 of its output [2, 3] float32");
  /* grad mode off (evaluation) is checked too; division by zero gives an infinity */
  bool prev = dc_set_grad_enabled(false);
  dc_tensor *z = dc_div(dc_scalar(1.0, DC_F64), dc_scalar(0.0, DC_F64));
  dc_set_grad_enabled(prev);
  cr_assert_null(z);
  EXPECT_MSG("'div' produced +infinity");
  dc_scope_end();
}

Test(anomaly, marks_inputs_already_non_finite, .fini = anomaly_off) {
  dc_scope_begin();
  dc_tensor *x = dc_requires_grad_(dc_from_data((double[]){1, NAN, 3}, DC_SHAPE(3), DC_F64), true);
  dc_set_detect_anomaly(true);
  dc_tensor *y = dc_add(x, dc_scalar(1.0, DC_F64));
  cr_assert_null(y);
  EXPECT_MSG("forward of 'add' produced NaN at element 1");
  EXPECT_MSG("[3] float64 (already non-finite)");
  dc_scope_end();
}

Test(anomaly, backward_names_the_node, .fini = anomaly_off) {
  dc_scope_begin();
  /* sqrt(0) is finite, its gradient 1 / (2 sqrt(0)) is not */
  dc_tensor *x = dc_requires_grad_(dc_from_data((float[]){4, 0, 1}, DC_SHAPE(3), DC_F32), true);
  dc_set_detect_anomaly(true);
  dc_tensor *loss = dc_sum(dc_sqrt(x), NULL, 0, false);
  cr_assert_not_null(loss, "%s", dc_last_error());
  int rc = dc_backward(loss);
  cr_assert_eq(rc, DC_ERR_STATE);
  EXPECT_MSG("anomaly: backward of 'sqrt' produced +infinity at element 1 of the gradient of its "
             "input 0 [3]");
  /* off: the same backward fills .grad with the infinity, as PyTorch does */
  dc_set_detect_anomaly(false);
  dc_tensor *loss2 = dc_sum(dc_sqrt(x), NULL, 0, false);
  cr_assert_eq(dc_backward(loss2), DC_OK, "%s", dc_last_error());
  cr_assert(isinf(dc_item_at(x->grad, 1)));
  dc_scope_end();
}

/* ---- the trainer ---- */
typedef struct net {
  dc_tensor *x, *y;
  dc_dataset *ds;
  dc_loader *l;
  dc_module *m;
  dc_optim *opt;
  dc_trainer *t;
  dc_tensor *params[8];
  int np;
} net;

/* cross-entropy plus mean(sqrt(0 * out)): a finite loss whose gradient is NaN (inf * 0) */
static dc_tensor *poisoned_loss(dc_tensor *out, dc_tensor *target, void *ud) {
  (void)ud;
  dc_tensor *z = dc_sqrt(dc_mul_scalar(out, 0.0));
  return dc_add(dc_cross_entropy(out, target), dc_mean(z, NULL, 0, false));
}

static void net_init(net *n, dc_nan_policy policy) {
  memset(n, 0, sizeof *n);
  dc_manual_seed(1);
  n->x = dc_randn(DC_SHAPE(8, 4), DC_F32);
  n->y = dc_from_data((int64_t[]){0, 1, 0, 1, 1, 0, 1, 0}, DC_SHAPE(8), DC_I64);
  n->m = dc_zoo_create("mlp", .in_features = 4, .hidden = (int64_t[]){4}, .nhidden = 1,
                       .num_classes = 2);
  dc_named_tensor *ps = dc_module_parameters(n->m, &n->np);
  for (int i = 0; i < n->np; i++) n->params[i] = ps[i].tensor;
  dc_named_tensors_free(ps, n->np);
  n->opt = dc_optim_sgd(n->params, n->np, 0.1, 0.0);
  n->ds = dc_tensor_dataset(n->x, n->y);
  n->l = dc_loader_new(n->ds, .batch_size = 4);
  n->t = dc_trainer_new(n->m, n->opt, n->l,
                        (dc_trainer_opts){.epochs = 1, .loss = poisoned_loss, .on_nan = policy});
  cr_assert(n->t, "%s", dc_last_error());
}
static void net_free(net *n) {
  dc_trainer_free(n->t);
  dc_loader_free(n->l);
  dc_dataset_free(n->ds);
  dc_optim_free(n->opt);
  dc_module_free(n->m);
  dc_free(n->x);
  dc_free(n->y);
}

Test(anomaly, trainer_names_the_step, .fini = anomaly_off) {
  net n;
  net_init(&n, DC_NAN_STOP);
  dc_set_detect_anomaly(true);
  cr_assert_eq(dc_trainer_fit(n.t), DC_ERR_STATE);
  EXPECT_MSG("training stopped at epoch 1, batch 1 (step 1): anomaly: backward of 'sqrt' produced "
             "+infinity");
  net_free(&n);
}

Test(anomaly, skip_steps_with_nonfinite_gradients) {
  net n;
  net_init(&n, DC_NAN_SKIP);
  float before[64];
  cr_assert_eq(dc_copy_to_buffer(n.params[0], before, sizeof before), DC_OK);
  cr_assert_eq(dc_trainer_fit(n.t), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_trainer_skipped_steps(n.t), 2);
  cr_assert_eq(dc_trainer_steps_done(n.t), 0);
  cr_assert(memcmp(dc_data(n.params[0]), before, (size_t)dc_numel(n.params[0]) * 4) == 0,
            "a skipped step changed the weights");
  net_free(&n);
}

Test(anomaly, no_checkpoint_of_nonfinite_weights) {
  net n;
  net_init(&n, DC_NAN_STOP);
  dc_trainer_free(n.t); /* a plain loss this time */
  n.t = dc_trainer_new(n.m, n.opt, n.l, (dc_trainer_opts){.epochs = 1});
  cr_assert_eq(dc_trainer_fit(n.t), DC_OK, "%s", dc_last_error());
  dc_ckpt *c = dc_ckpt_new();
  cr_assert_eq(dc_trainer_save_state(n.t, c), DC_OK, "%s", dc_last_error());
  dc_ckpt_free(c);
  ((float *)dc_data(n.params[2]))[1] = INFINITY; /* weights that diverged at the last step */
  c = dc_ckpt_new();
  cr_assert_eq(dc_trainer_save_state(n.t, c), DC_ERR_STATE);
  EXPECT_MSG("the model's '3.weight' holds NaN or infinity after 2 steps (epoch 1)");
  EXPECT_MSG("no checkpoint is written");
  dc_ckpt_free(c);
  net_free(&n);
}
