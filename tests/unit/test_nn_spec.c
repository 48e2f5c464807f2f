/* Unit tests of the layer-spec parser: PyTorch's argument order and keywords, tuples, strings,
 * case-insensitive names, the `classes` placeholder, and errors that point at the column and
 * suggest a close name. (Reprs are checked against torch in tests/parity/test_nn_module.py.) */
#include <criterion/criterion.h>
#include <deepc/deepc.h>

#include <string.h>

/* repr of the single layer of a one-layer spec */
static char *layer_repr(const char *spec) {
  dc_module *m = dc_nn_from_spec(spec);
  cr_assert_not_null(m, "%s: %s", spec, dc_last_error());
  cr_assert_eq(dc_module_num_children(m), 1);
  char *s = dc_module_repr(dc_module_child_at(m, 0));
  dc_module_free(m);
  return s;
}

static void expect_repr(const char *spec, const char *want) {
  char *s = layer_repr(spec);
  cr_assert_str_eq(s, want, "spec %s", spec);
  free(s);
}

static void expect_error(const char *spec, const char *part, int col) {
  dc_module *m = dc_nn_from_spec(spec);
  cr_assert_null(m, "spec %s parsed", spec);
  const char *e = dc_last_error();
  cr_assert(strstr(e, part), "spec %s: error '%s' lacks '%s'", spec, e, part);
  char c[32];
  snprintf(c, sizeof c, "column %d:", col);
  cr_assert(strstr(e, c), "spec %s: error '%s' lacks '%s'", spec, e, c);
  /* the caret line sits under that column */
  const char *caret = strrchr(e, '\n');
  cr_assert_not_null(caret);
  cr_assert_eq((int)strlen(caret + 1), 2 + col, "caret line '%s'", caret + 1);
  cr_assert_eq(caret[strlen(caret) - 1], '^');
}

Test(spec, the_issue_example) {
  dc_module *m = dc_nn_from_spec(
      "conv2d(1,32,5,padding=2), batchnorm2d(32), relu, maxpool2d(2), flatten, linear(6272,10)");
  cr_assert_not_null(m, "%s", dc_last_error());
  cr_assert_eq(dc_module_num_children(m), 6);
  cr_assert_str_eq(dc_module_child_name(m, 5), "5");
  cr_assert_eq(dc_module_num_parameters(m, false), 32 * 25 + 32 + 64 + 62720 + 10);
  dc_module_free(m);
}

Test(spec, positional_keyword_and_tuples) {
  expect_repr("Conv2d(3, 8, kernel_size=(3,5), stride=2, padding=(1, 2), bias=False)",
              "Conv2d(3, 8, kernel_size=(3, 5), stride=(2, 2), padding=(1, 2), bias=False)");
  expect_repr("conv2d(4,8,3,1,1,1,2)",
              "Conv2d(4, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=2)");
  expect_repr("conv2d(in_channels=2, out_channels=4, kernel_size=3, padding='same', dilation=2)",
              "Conv2d(2, 4, kernel_size=(3, 3), stride=(1, 1), padding=same, dilation=(2, 2))");
  expect_repr("conv2d(2, 4, 3, padding=valid)", "Conv2d(2, 4, kernel_size=(3, 3), stride=(1, 1))");
  expect_repr("MAX_POOL2D(3, stride=2, padding=1, ceil_mode=True)",
              "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=True)");
  expect_repr("maxpool2d((2, 3))",
              "MaxPool2d(kernel_size=(2, 3), stride=(2, 3), padding=0, dilation=1, "
              "ceil_mode=False)");
  expect_repr("avgpool2d(2)", "AvgPool2d(kernel_size=2, stride=2, padding=0)");
  expect_repr("adaptiveavgpool2d((None, 7))", "AdaptiveAvgPool2d(output_size=(None, 7))");
  expect_repr("adaptive_max_pool2d(1)", "AdaptiveMaxPool2d(output_size=1)");
  expect_repr("batchnorm2d(16, momentum=None, eps=1e-3)",
              "BatchNorm2d(16, eps=0.001, momentum=None, affine=True, track_running_stats=True)");
  expect_repr("BatchNorm1d(4, 1e-05, 0.0, False, False)",
              "BatchNorm1d(4, eps=1e-05, momentum=0.0, affine=False, track_running_stats=False)");
  expect_repr("linear(3, 4, bias=false)", "Linear(in_features=3, out_features=4, bias=False)");
  expect_repr("leakyrelu(0.2)", "LeakyReLU(negative_slope=0.2)");
  expect_repr("leaky_relu", "LeakyReLU(negative_slope=0.01)");
  expect_repr("elu(alpha=2)", "ELU(alpha=2)");
  expect_repr("gelu(approximate='tanh')", "GELU(approximate='tanh')");
  expect_repr("softmax(dim=-1)", "Softmax(dim=-1)");
  expect_repr("logsoftmax", "LogSoftmax(dim=None)");
  expect_repr("softplus", "Softplus(beta=1, threshold=20)");
  expect_repr("softplus(beta=0.5)", "Softplus(beta=0.5, threshold=20)");
  expect_repr("hardtanh(-2.0, 2.0)", "Hardtanh(min_val=-2.0, max_val=2.0)");
  expect_repr("dropout", "Dropout(p=0.5, inplace=False)");
  expect_repr("dropout2d(p=0.1, inplace=True)", "Dropout2d(p=0.1, inplace=False)");
  expect_repr("flatten(0)", "Flatten(start_dim=0, end_dim=-1)");
  expect_repr("identity()", "Identity()");
  expect_repr("relu(inplace=True)", "ReLU()");
}

Test(spec, classes_placeholder) {
  dc_module *m = dc_nn_from_spec("flatten, linear(12, classes)", .classes = 7);
  cr_assert_not_null(m, "%s", dc_last_error());
  cr_assert_eq(dc_module_get_parameter(m, "1.weight")->shape[0], 7);
  dc_module_free(m);
  expect_error("flatten, linear(12, num_classes)", "no number of classes was given", 21);
}

Test(spec, whitespace_newlines_and_trailing_comma) {
  dc_module *m = dc_nn_from_spec("  linear( 4 , 8 ),\n  relu ,\n  linear(8, 2),\n");
  cr_assert_not_null(m, "%s", dc_last_error());
  cr_assert_eq(dc_module_num_children(m), 3);
  dc_module_free(m);
}

Test(spec, errors_point_at_the_column) {
  expect_error("conv2d(1,32,5), relu, maxpol2d(2)",
               "unknown layer 'maxpol2d' (did you mean "
               "'MaxPool2d'?)",
               23);
  expect_error("convv2d(1,2,3)", "did you mean 'Conv2d'?", 1);
  expect_error("frobnicate(3)", "known layers: Linear, Conv2d", 1);
  expect_error("linear(3, 4, biass=False)",
               "Linear has no argument 'biass' (did you mean "
               "'bias'?)",
               14);
  expect_error("conv2d(1, 2)", "missing the required argument 'kernel_size'", 1);
  expect_error("linear(3, 4.5)", "out_features must be an integer", 11);
  expect_error("linear(3, 4, True, 5)", "takes at most 3 arguments", 20);
  expect_error("linear(3, out_features=4, 5)", "positional argument after a keyword", 27);
  expect_error("linear(3, 4, in_features=3)", "multiple values for argument 'in_features'", 14);
  expect_error("relu, , linear(1,2)", "expected a layer name, got ','", 7);
  expect_error("linear(3 4)", "expected ',' or ')'", 10);
  expect_error("linear(3, 4) relu", "expected ',' between layers", 14);
  expect_error("conv2d(1, 2, (3, 3, 3))", "kernel_size must be an integer or a tuple", 14);
  expect_error("conv2d(1, 2, 3, padding='full')", "padding must be", 25);
  expect_error("conv2d(1, 2, 3, stride=2, padding='same')",
               "padding='same' is not supported for "
               "strided",
               1);
  expect_error("conv2d(4, 6, 3, groups=4)", "divisible by groups", 1);
  expect_error("linear(3, 4", "expected ',' or ')' after an argument of Linear", 12);
  expect_error("dropout(1.5)", "between 0 and 1", 1);
  expect_error("batchnorm2d(8, momentum=2)", "momentum in [0, 1]", 25);
  expect_error("gelu(approximate='fast')", "approximate must be 'none' or 'tanh'", 18);
  expect_error("maxpool2d(2, return_indices=True)", "return_indices=True is not supported", 29);
  expect_error("linear(3, 4), relu(#)", "unexpected character '#'", 20);
  expect_error("", "empty spec", 1);
  expect_error("relu,\nlinear(3 4)", "expected ',' or ')'", 10);
}

Test(spec, max_params_refuses_larger_layers) {
  dc_module *m = dc_nn_from_spec("flatten, linear(1024, 1024), relu", .max_params = 1 << 20);
  cr_assert_null(m, "1,049,600 parameters passed a limit of 1,048,576");
  cr_assert(strstr(dc_last_error(), "more than the limit of 1048576"), "%s", dc_last_error());
  cr_assert(strstr(dc_last_error(), "Linear"), "%s", dc_last_error());
  m = dc_nn_from_spec("flatten, linear(1023, 1024, bias=False), relu", .max_params = 1 << 20);
  cr_assert_not_null(m, "%s", dc_last_error());
  dc_module_free(m);
}
