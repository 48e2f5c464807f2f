/* Configuration files of `deepc train`: parsing, defaults, --set, ${vars}, continuation lines
 * and the error messages (unknown keys with a suggestion, wrong types, line numbers). */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <deepc/train.h>
#include <string.h>

static void expect_error(const char *text, const char *fragment) {
  dc_config *c = dc_config_parse(text, "t.ini");
  cr_assert_null(c, "parsing should fail for:\n%s", text);
  cr_assert(strstr(dc_last_error(), fragment), "error '%s' lacks '%s'", dc_last_error(), fragment);
}

Test(config, defaults_and_values) {
  dc_config *c = dc_config_parse("# comment\n[optim]\nname = sgd\nlr = 0.01  # inline\n"
                                 "[train]\nepochs: 3\n",
                                 "t.ini");
  cr_assert_not_null(c, "%s", dc_last_error());
  cr_assert_str_eq(dc_config_get(c, "optim.name"), "sgd");
  cr_assert_str_eq(dc_config_get(c, "optim.lr"), "0.01");
  cr_assert_str_eq(dc_config_get(c, "train.epochs"), "3");
  cr_assert_str_eq(dc_config_get(c, "train.batch_size"), "64"); /* default */
  cr_assert(dc_config_is_set(c, "optim.lr"));
  cr_assert(!dc_config_is_set(c, "train.batch_size"));
  cr_assert_null(dc_config_get(c, "train.nope"));
  dc_config_free(c);
}

Test(config, set_and_vars) {
  dc_config *c = dc_config_parse("[vars]\nw = 32\n[model]\narch = layers\n"
                                 "layers = conv2d(1,${w},3), relu,\n"
                                 "  flatten, linear(${w}, 10)\n",
                                 "t.ini");
  cr_assert_not_null(c, "%s", dc_last_error());
  cr_assert_str_eq(dc_config_get(c, "model.layers"),
                   "conv2d(1,32,3), relu, flatten, linear(32, 10)");
  cr_assert_eq(dc_config_set(c, "vars.w=8"), DC_OK, "%s", dc_last_error());
  cr_assert_str_eq(dc_config_get(c, "model.layers"), "conv2d(1,8,3), relu, flatten, linear(8, 10)");
  cr_assert_eq(dc_config_set(c, "optim.lr=0.5"), DC_OK);
  cr_assert_str_eq(dc_config_get(c, "optim.lr"), "0.5");
  /* a bad --set changes nothing and suggests */
  cr_assert_neq(dc_config_set(c, "optim.lrr=0.1"), DC_OK);
  cr_assert(strstr(dc_last_error(), "did you mean 'lr'"), "%s", dc_last_error());
  cr_assert_neq(dc_config_set(c, "optim.lr=fast"), DC_OK);
  cr_assert(strstr(dc_last_error(), "expected a number"), "%s", dc_last_error());
  cr_assert_str_eq(dc_config_get(c, "optim.lr"), "0.5");
  cr_assert_neq(dc_config_set(c, "lr=0.1"), DC_OK);
  cr_assert(strstr(dc_last_error(), "optim.lr"), "%s", dc_last_error());
  /* round trip through the text form */
  char *s = dc_config_to_string(c, true);
  dc_config *d = dc_config_parse(s, "again");
  cr_assert_not_null(d, "%s\n%s", dc_last_error(), s);
  cr_assert_str_eq(dc_config_get(d, "model.layers"), dc_config_get(c, "model.layers"));
  cr_assert_str_eq(dc_config_get(d, "optim.lr"), "0.5");
  free(s);
  dc_config_free(d);
  dc_config_free(c);
}

Test(config, errors) {
  expect_error("[optim]\nlerning_rate = 0.1\n", "t.ini:2:1: unknown key 'lerning_rate'");
  expect_error("[optim]\nlearning_rat = 0.1\n", "[optim]");
  expect_error("[optim]\nlrr = 0.1\n", "did you mean 'lr'");
  expect_error("[train]\nlr = 0.1\n", "did you mean 'lr' in [optim]");
  expect_error("[optimizer]\nlr = 0.1\n", "did you mean [optim]");
  expect_error("[train]\nepochs = three\n",
               "t.ini:2:10: train.epochs: expected an integer, got 'three'");
  expect_error("[train]\nepochs = -2\n", "must be >= 0");
  expect_error("[model]\nbatchnorm = maybe\n", "expected true or false");
  expect_error("[optim]\nname = adma\n", "did you mean 'adam'");
  expect_error("[model]\nchannels = 32,x\n", "comma-separated list of integers");
  expect_error("epochs = 3\n", "before any [section]");
  expect_error("[train]\nepochs = 3\nepochs = 4\n", "already set on line 2");
  expect_error("[model]\nlayers = linear(${widht}, 10)\n[vars]\nwidth = 4\n",
               "did you mean 'width'");
  expect_error("[train\n", "malformed section header");
  expect_error("[train]\njust words\n", "expected 'key = value'");
  cr_assert_null(dc_config_load("/nonexistent/x.ini"));
  cr_assert(strstr(dc_last_error(), "/nonexistent/x.ini"));
}

Test(config, schema_listing) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  dc_config_print_schema(f);
  fclose(f);
  cr_assert(strstr(buf, "[optim]") && strstr(buf, "weight_decay") && strstr(buf, "[vars]"));
  free(buf);
}
