/* The typed run spec (src/train/spec.h): the key table checks itself, a configuration is parsed
 * once into typed fields, ranges and item counts are refused at load with file, line and column
 * (or the --set override), and the key lists printed from the table name every key. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <deepc/train.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/spec.h"
#include "train/train-impl.h"

static dc_config *parse_ok(const char *text) {
  dc_config *c = dc_config_parse(text, "t.ini");
  cr_assert_not_null(c, "parsing failed: %s\n%s", dc_last_error(), text);
  return c;
}

static void expect_error(const char *text, const char *fragment) {
  dc_config *c = dc_config_parse(text, "t.ini");
  cr_assert_null(c, "parsing should fail for:\n%s", text);
  cr_assert(strstr(dc_last_error(), fragment), "error '%s' lacks '%s'", dc_last_error(), fragment);
}

Test(spec, table_checks_itself) {
  cr_assert_eq(dc__spec_check_table(), DC_OK, "%s", dc_last_error());
  for (int k = 0; k < DC__K_COUNT; k++) {
    const dc__spec_key *e = &dc__spec_keys[k];
    cr_assert(e->help && *e->help, "%s.%s has no help", e->section, e->key);
  }
  cr_assert_str_eq(dc__spec_keys[DC__K_optim_lr].key, "lr");
  cr_assert_str_eq(dc__spec_choice(DC__K_optim_name, DC__OPT_ADAMW), "adamw");
  cr_assert_str_eq(dc__spec_choice(DC__K_train_device, DC__DEV_TESTDEV), "testdev");
}

Test(spec, defaults_are_typed) {
  dc_config *c = dc_config_default();
  cr_assert_not_null(c, "%s", dc_last_error());
  const dc__run_spec *s = dc__config_spec(c);
  cr_assert_eq(s->train.epochs, 5);
  cr_assert_eq(s->train.batch_size, 64);
  cr_assert_eq(s->optim.name, DC__OPT_ADAM);
  cr_assert(isnan(s->optim.lr), "an empty lr is NaN (the optimizer's default)");
  cr_assert_eq(s->model.channels.n, 3);
  cr_assert_eq(s->model.channels.v[2], 64);
  cr_assert_eq(s->model.hidden.n, 0);
  cr_assert_eq(s->optim.betas.n, 2);
  cr_assert_float_eq(s->optim.betas.v[1], 0.999, 1e-15);
  cr_assert(s->model.batchnorm && !s->data.hflip);
  cr_assert_str_eq(s->data.dataset, "fashion-mnist");
  cr_assert_eq(s->schedule.name, DC__SCHED_NONE);
  for (int k = 0; k < DC__K_COUNT; k++) cr_assert(!s->set[k], "%d set in the defaults", k);
  dc_config_free(c);
}

Test(spec, values_vars_and_set) {
  dc_config *c = parse_ok("[vars]\nw = 48\n[model]\narch = mlp\nhidden = ${w}, 16\n"
                          "activation = GELU\ndropout = 0\n[optim]\nname = sgd\nlr = 0.05\n"
                          "[schedule]\nname = multistep\nmilestones = 3,6\n");
  const dc__run_spec *s = dc__config_spec(c);
  cr_assert_eq(s->model.hidden.n, 2);
  cr_assert_eq(s->model.hidden.v[0], 48);
  cr_assert_eq(s->model.activation, DC__ACT_GELU, "choices are case-insensitive");
  cr_assert_eq(s->optim.name, DC__OPT_SGD);
  cr_assert_float_eq(s->optim.lr, 0.05, 1e-15);
  cr_assert_eq(s->schedule.milestones.n, 2);
  cr_assert(s->set[DC__K_model_dropout] && !s->set[DC__K_model_kernel]);
  cr_assert_str_eq(s->model.arch, "mlp");
  /* an override updates the typed values, ${vars} included */
  cr_assert_eq(dc_config_set(c, "vars.w=8"), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc__config_spec(c)->model.hidden.v[0], 8);
  cr_assert_eq(dc_config_set(c, "model.arch=layers"), DC_OK, "%s", dc_last_error());
  cr_assert_str_eq(dc__config_spec(c)->model.arch, "layers");
  cr_assert_str_eq(dc__config_spec(c)->model.arch, dc_config_get(c, "model.arch"));
  /* a refused override changes nothing */
  cr_assert_neq(dc_config_set(c, "train.epochs=ten"), DC_OK);
  cr_assert(strncmp(dc_last_error(), "--set train.epochs=ten: train.epochs:", 37) == 0, "%s",
            dc_last_error());
  cr_assert_eq(dc__config_spec(c)->train.epochs, 5);
  cr_assert_str_eq(dc__config_spec(c)->model.arch, "layers");
  /* a clone has its own values */
  dc_config *d = dc_config_clone(c);
  cr_assert_not_null(d);
  cr_assert_eq(dc_config_set(d, "train.epochs=2"), DC_OK);
  cr_assert_eq(dc__config_spec(d)->train.epochs, 2);
  cr_assert_eq(dc__config_spec(c)->train.epochs, 5);
  dc_config_free(d);
  dc_config_free(c);
}

Test(spec, ranges_and_counts_at_load) {
  expect_error("[data]\nval_split = 1\n", "t.ini:2:13: data.val_split: must be in [0, 1), got 1");
  expect_error("[train]\n  batch_size =   0\n",
               "t.ini:2:18: train.batch_size: must be >= 1, got 0");
  expect_error("[model]\ndropout = 1\n", "model.dropout: must be in [0, 1)");
  expect_error("[model]\nchannels = 32, 0\n", "t.ini:2:12: model.channels: must be >= 1, got");
  expect_error("[model]\npool = 4,3,1,1\n", "model.pool: expected at most 3 values");
  expect_error("[optim]\nbetas = 0.9\n", "t.ini:2:9: optim.betas: expected exactly 2 values");
  expect_error("[optim]\nbetas = 0.9, 1\n", "optim.betas: must be in [0, 1), got");
  expect_error("[optim]\nlr = -0.1\n", "optim.lr: must be >= 0");
  expect_error("[schedule]\nfactor = 1\n", "schedule.factor: must be in (0, 1)");
  expect_error("[data]\nmean = 1,2,3,4,5,6,7,8,9\nstd = 1\n", "data.mean: expected at most 8");
  expect_error("[optim]\nlr = nan\n", "optim.lr: expected a number, got 'nan'");
  expect_error("[train]\nmonitor = val_accuracy\n", "t.ini:2:11: train.monitor: 'val_accuracy'");
  expect_error("[vars]\nn = -3\n[train]\nepochs = ${n}\n",
               "t.ini:4:10: train.epochs: must be >= 0");
  /* the edges are accepted */
  dc_config *c =
      parse_ok("[data]\nval_split = 0\n[model]\ndropout = 0.999\n[optim]\nbetas=0,0.5\n");
  dc_config_free(c);
}

Test(spec, override_names_itself) {
  dc_config *c = dc_config_default();
  cr_assert_neq(dc_config_set(c, "data.val_split=2"), DC_OK);
  cr_assert_str_eq(dc_last_error(),
                   "--set data.val_split=2: data.val_split: must be in [0, 1), got 2");
  cr_assert_neq(dc_config_set_value(c, "model.kernel", "0"), DC_OK);
  cr_assert(strstr(dc_last_error(), "--set model.kernel=0: model.kernel: must be >= 1"), "%s",
            dc_last_error());
  cr_assert_neq(dc_config_set(c, "train.batch_sise=8"), DC_OK);
  cr_assert(strstr(dc_last_error(), "--set train.batch_sise=8: unknown key 'batch_sise'"), "%s",
            dc_last_error());
  dc_config_free(c);
}

static char *printed(dc_keys_format fmt) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  dc_config_print_keys(f, fmt);
  fclose(f);
  return buf;
}

Test(spec, key_lists_name_every_key) {
  char *md = printed(DC_KEYS_MARKDOWN), *brief = printed(DC_KEYS_BRIEF),
       *text = printed(DC_KEYS_TEXT);
  for (int k = 0; k < DC__K_COUNT; k++) {
    const dc__spec_key *e = &dc__spec_keys[k];
    char row[96];
    snprintf(row, sizeof row, "\n| %s | ", e->key);
    cr_assert(strstr(md, row), "markdown lacks a row for %s.%s", e->section, e->key);
    snprintf(row, sizeof row, " %s", e->key);
    cr_assert(strstr(brief, row), "the brief list lacks %s", e->key);
    snprintf(row, sizeof row, "\n  %-19s ", e->key);
    cr_assert(strstr(text, row), "the text list lacks %s", e->key);
  }
  cr_assert(strstr(md, "| val_split | number | 0.1 | [0, 1) |"), "%s", md);
  cr_assert(strstr(md, "| name | sgd, adam, adamw, rmsprop, adagrad | adam |"), "%s", md);
  free(md);
  free(brief);
  free(text);
}

/* ---- the schedule a spec builds equals the one built by hand from the same values ---- */
typedef dc_sched *(*make_sched)(dc_optim *o);
static dc_sched *by_hand_multistep_warm(dc_optim *o) { /* milestones 3,5 after 1 warm-up epoch */
  dc_sched *s[2] = {dc_sched_linear_lr(o, 0.1, 1.0, 1),
                    dc_sched_multistep_lr(o, (int[]){2, 4}, 2, 0.5)};
  return dc_sched_sequential_lr(o, s, 2, (int[]){1});
}
static dc_sched *by_hand_cosine_warm(dc_optim *o) { /* 8 epochs, 2 of warm-up: t_max 6 */
  dc_sched *s[2] = {dc_sched_linear_lr(o, 0.1, 1.0, 2), dc_sched_cosine_annealing_lr(o, 6, 0.001)};
  return dc_sched_sequential_lr(o, s, 2, (int[]){2});
}
static dc_sched *by_hand_step(dc_optim *o) { return dc_sched_step_lr(o, 2, 0.5); }
static dc_sched *by_hand_warm_only(dc_optim *o) { return dc_sched_linear_lr(o, 0.1, 1.0, 3); }

static void same_schedule(const char *text, make_sched by_hand, dc_sched_when want_when) {
  dc_config *c = parse_ok(text);
  dc_tensor *p1 = dc_requires_grad_(dc_zeros(DC_SHAPE(2), DC_F32), true),
            *p2 = dc_requires_grad_(dc_zeros(DC_SHAPE(2), DC_F32), true);
  dc_optim *o1 = dc_optim_sgd(&p1, 1, 0.1, 0), *o2 = dc_optim_sgd(&p2, 1, 0.1, 0);
  dc_sched *s1 = NULL, *s2 = by_hand(o2);
  dc_sched_when when;
  cr_assert_eq(dc__build_sched(dc__config_spec(c), o1, 10, &s1, &when), DC_OK, "%s",
               dc_last_error());
  cr_assert_not_null(s1, "%s: no schedule", text);
  cr_assert_eq(when, want_when);
  for (int e = 0; e < 8; e++) {
    cr_assert_float_eq(dc_optim_get_lr(o1, 0), dc_optim_get_lr(o2, 0), 1e-12, "%s: epoch %d", text,
                       e);
    dc_sched_step(s1);
    dc_sched_step(s2);
  }
  dc_sched_free(s1);
  dc_sched_free(s2);
  dc_optim_free(o1);
  dc_optim_free(o2);
  dc_free(p1);
  dc_free(p2);
  dc_config_free(c);
}

Test(spec, schedules_from_the_spec) {
  same_schedule("[schedule]\nname = step\nstep_size = 2\ngamma = 0.5\n", by_hand_step,
                DC_SCHED_PER_EPOCH);
  same_schedule("[schedule]\nname = multistep\nmilestones = 3, 5\ngamma = 0.5\nwarmup_epochs = 1\n",
                by_hand_multistep_warm, DC_SCHED_PER_EPOCH);
  same_schedule("[train]\nepochs = 8\n[schedule]\nname = cosine\neta_min = 0.001\n"
                "warmup_epochs = 2\n",
                by_hand_cosine_warm, DC_SCHED_PER_EPOCH);
  same_schedule("[schedule]\nwarmup_epochs = 3\n", by_hand_warm_only, DC_SCHED_PER_EPOCH);
  /* none: no schedule; onecycle with a warm-up: refused; multistep needs milestones */
  dc_config *c = parse_ok("[schedule]\nname = onecycle\nwarmup_epochs = 1\n");
  dc_tensor *p = dc_requires_grad_(dc_zeros(DC_SHAPE(2), DC_F32), true);
  dc_optim *o = dc_optim_sgd(&p, 1, 0.1, 0);
  dc_sched *s = NULL;
  dc_sched_when when;
  cr_assert_neq(dc__build_sched(dc__config_spec(c), o, 10, &s, &when), DC_OK);
  cr_assert(strstr(dc_last_error(), "onecycle has its own warm-up"), "%s", dc_last_error());
  dc_config_free(c);
  c = parse_ok("[schedule]\nname = onecycle\n");
  cr_assert_eq(dc__build_sched(dc__config_spec(c), o, 10, &s, &when), DC_OK, "%s", dc_last_error());
  cr_assert(s && when == DC_SCHED_PER_STEP);
  dc_sched_free(s);
  dc_config_free(c);
  c = parse_ok("[schedule]\nname = multistep\n");
  cr_assert_neq(dc__build_sched(dc__config_spec(c), o, 10, &s, &when), DC_OK);
  cr_assert(strstr(dc_last_error(), "multistep needs epochs"), "%s", dc_last_error());
  dc_config_free(c);
  c = dc_config_default();
  cr_assert_eq(dc__build_sched(dc__config_spec(c), o, 10, &s, &when), DC_OK);
  cr_assert_null(s);
  dc_config_free(c);
  dc_optim_free(o);
  dc_free(p);
}
