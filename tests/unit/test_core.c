/* Core tensor tests: creation, dtypes, views, contiguity, RNG determinism, printing, scopes and
 * bad input. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <string.h>

#include "core/core-impl.h"

Test(core, zeros_ones_full_shapes) {
  dc_scope_begin();
  dc_tensor *z = dc_zeros(DC_SHAPE(2, 3), DC_F32);
  cr_assert_not_null(z);
  cr_assert_eq(z->ndim, 2);
  cr_assert_eq(dc_numel(z), 6);
  cr_assert_eq(z->stride[0], 3);
  cr_assert_eq(dc_item_at(z, 5), 0.0);
  dc_tensor *f = dc_full(DC_SHAPE(4), 2.5, DC_F64);
  cr_assert_eq(dc_item_at(f, 3), 2.5);
  dc_tensor *s = dc_scalar(7, DC_I64);
  cr_assert_eq(s->ndim, 0);
  cr_assert_eq(dc_item(s), 7.0);
  dc_scope_end();
}

Test(core, arange_linspace_eye) {
  dc_scope_begin();
  dc_tensor *a = dc_arange(0, 5, 1, DC_I64);
  cr_assert_eq(dc_numel(a), 5);
  cr_assert_eq(dc_item_at(a, 4), 4.0);
  dc_tensor *l = dc_linspace(0, 1, 5, DC_F32);
  cr_assert_float_eq(dc_item_at(l, 1), 0.25, 1e-7);
  cr_assert_float_eq(dc_item_at(l, 4), 1.0, 1e-7);
  dc_tensor *e = dc_eye(3, -1, DC_F32);
  cr_assert_eq(dc_item_at(e, 4), 1.0);
  cr_assert_eq(dc_item_at(e, 5), 0.0);
  cr_assert_null(dc_arange(0, 5, 0, DC_F32));
  cr_assert(strstr(dc_last_error(), "arange") != NULL);
  dc_scope_end();
}

Test(core, dtype_sizes_and_half_conversions) {
  cr_assert_eq(dc_dtype_size(DC_BF16), 2);
  cr_assert_eq(dc_dtype_size(DC_F16), 2);
  cr_assert_str_eq(dc_dtype_name(DC_I64), "int64");
  cr_assert_float_eq(dc__bf16_to_f32(dc__f32_to_bf16(1.5f)), 1.5f, 0);
  cr_assert_float_eq(dc__f16_to_f32(dc__f32_to_f16(-2.25f)), -2.25f, 0);
  dc_scope_begin();
  float v[3] = {1.0f, -3.5f, 1000.0f};
  dc_tensor *t = dc_from_data(v, DC_SHAPE(3), DC_F32);
  dc_tensor *h = dc_to_dtype(t, DC_BF16);
  dc_tensor *back = dc_to_dtype(h, DC_F32);
  cr_assert_float_eq(dc_item_at(back, 1), -3.5, 0);
  cr_assert_float_eq(dc_item_at(back, 2), 1000.0, 0);
  dc_scope_end();
}

Test(core, views_share_storage) {
  dc_scope_begin();
  dc_tensor *a = dc_arange(0, 24, 1, DC_F32);
  dc_tensor *v = dc_view(a, DC_SHAPE(2, 3, 4));
  cr_assert_not_null(v);
  cr_assert_eq(v->storage, a->storage);
  dc_tensor *p = dc_permute(v, (int[]){2, 0, 1}, 3);
  cr_assert_eq(p->shape[0], 4);
  cr_assert_eq(p->stride[0], 1);
  cr_assert_not(dc_is_contiguous(p));
  /* p[1][1][2] = v[1][2][1] = 1*12 + 2*4 + 1 = 21 */
  cr_assert_eq(dc_item_at(p, 1 * 6 + 1 * 3 + 2), 21.0);
  dc_tensor *c = dc_contiguous(p);
  cr_assert(dc_is_contiguous(c));
  cr_assert_eq(dc_item_at(c, 1 * 6 + 1 * 3 + 2), 21.0);
  dc_tensor *t = dc_transpose(v, 0, 2);
  cr_assert_eq(t->shape[0], 4);
  dc_tensor *n = dc_narrow(v, 2, 1, 2);
  cr_assert_eq(n->shape[2], 2);
  cr_assert_eq(dc_item_at(n, 0), 1.0);
  dc_tensor *s = dc_slice(a, 0, 1, 10, 3);
  cr_assert_eq(s->shape[0], 3);
  cr_assert_eq(dc_item_at(s, 2), 7.0);
  dc_tensor *sel = dc_select(v, 1, 2);
  cr_assert_eq(sel->ndim, 2);
  cr_assert_eq(dc_item_at(sel, 0), 8.0);
  dc_tensor *u = dc_unsqueeze(a, 0);
  cr_assert_eq(u->ndim, 2);
  cr_assert_eq(u->shape[0], 1);
  dc_tensor *sq = dc_squeeze(u, DC_ALL_DIMS);
  cr_assert_eq(sq->ndim, 1);
  dc_tensor *e = dc_expand(dc_view(a, DC_SHAPE(1, 24)), DC_SHAPE(5, -1));
  cr_assert_eq(e->stride[0], 0);
  cr_assert_eq(dc_item_at(e, 24 * 4 + 3), 3.0);
  dc_tensor *fl = dc_flatten(v, 1, -1);
  cr_assert_eq(fl->shape[1], 12);
  dc_tensor *r = dc_reshape(p, DC_SHAPE(-1)); /* needs a copy */
  cr_assert_eq(dc_numel(r), 24);
  cr_assert_neq(r->storage, a->storage);
  dc_scope_end();
}

Test(core, view_errors_name_the_op) {
  dc_scope_begin();
  dc_tensor *a = dc_zeros(DC_SHAPE(2, 3), DC_F32);
  cr_assert_null(dc_view(a, DC_SHAPE(4, 2)));
  cr_assert(strstr(dc_last_error(), "view") && strstr(dc_last_error(), "[4, 2]"));
  cr_assert_null(dc_view(dc_transpose(a, 0, 1), DC_SHAPE(6)));
  cr_assert(strstr(dc_last_error(), "dc_reshape"));
  cr_assert_null(dc_permute(a, (int[]){0, 0}, 2));
  cr_assert_null(dc_transpose(a, 0, 5));
  cr_assert(strstr(dc_last_error(), "out of range"));
  cr_assert_null(dc_narrow(a, 1, 2, 5));
  cr_assert_null(dc_select(a, 0, 9));
  cr_assert_null(dc_expand(a, DC_SHAPE(4, 3)));
  cr_assert_null(dc_view(NULL, DC_SHAPE(1)));
  cr_assert_null(dc_zeros(DC_SHAPE(-1, 2), DC_F32));
  cr_assert(strstr(dc_last_error(), "negative"));
  dc_scope_end();
}

Test(core, rng_is_seeded_and_thread_independent) {
  dc_scope_begin();
  dc_manual_seed(42);
  dc_tensor *a = dc_randn(DC_SHAPE(100000), DC_F32);
  dc_manual_seed(42);
  dc_tensor *b = dc_randn(DC_SHAPE(100000), DC_F32);
  cr_assert_eq(memcmp(dc_data(a), dc_data(b), 400000), 0);
  double s = 0, s2 = 0;
  for (int64_t i = 0; i < 100000; i++) {
    double v = dc_item_at(a, i);
    s += v;
    s2 += v * v;
  }
  cr_assert(fabs(s / 1e5) < 0.02, "mean %g", s / 1e5);
  cr_assert(fabs(s2 / 1e5 - 1) < 0.02, "var %g", s2 / 1e5);
  dc_tensor *u = dc_rand(DC_SHAPE(1000), DC_F64);
  for (int64_t i = 0; i < 1000; i++) cr_assert(dc_item_at(u, i) >= 0 && dc_item_at(u, i) < 1);
  dc_tensor *ri = dc_randint(3, 7, DC_SHAPE(1000), DC_I64);
  for (int64_t i = 0; i < 1000; i++) cr_assert(dc_item_at(ri, i) >= 3 && dc_item_at(ri, i) < 7);
  dc_tensor *perm = dc_randperm(50);
  int seen[50] = {0};
  for (int i = 0; i < 50; i++) seen[(int)dc_item_at(perm, i)]++;
  for (int i = 0; i < 50; i++) cr_assert_eq(seen[i], 1);
  dc_scope_end();
}

Test(core, print_like_pytorch) {
  dc_scope_begin();
  float v[4] = {1, 2.5f, -3, 0};
  char *s = dc_to_string(dc_from_data(v, DC_SHAPE(2, 2), DC_F32));
  cr_assert_str_eq(s, "tensor([[ 1.0000,  2.5000],\n        [-3.0000,  0.0000]])");
  free(s);
  s = dc_to_string(dc_arange(0, 3, 1, DC_I64));
  cr_assert_str_eq(s, "tensor([0, 1, 2])");
  free(s);
  s = dc_to_string(dc_ones(DC_SHAPE(2), DC_F64));
  cr_assert_str_eq(s, "tensor([1., 1.], dtype=torch.float64)");
  free(s);
  s = dc_to_string(dc_zeros(DC_SHAPE(2000), DC_F32));
  cr_assert(strstr(s, "...") != NULL);
  free(s);
  dc_scope_end();
}

Test(core, scopes_free_everything_but_kept) {
  int64_t before = dc_live_tensors();
  dc_scope_begin();
  dc_tensor *kept = NULL;
  dc_scope_begin();
  dc_zeros(DC_SHAPE(10), DC_F32);
  kept = dc_keep(dc_ones(DC_SHAPE(3), DC_F32));
  dc_scope_end();
  cr_assert_eq(dc_item_at(kept, 2), 1.0);
  dc_scope_end();
  cr_assert_eq(dc_live_tensors(), before);
  dc_tensor *owned = dc_zeros(DC_SHAPE(2), DC_F32); /* outside any scope: the caller's */
  cr_assert_eq(dc_live_tensors(), before + 1);
  dc_free(owned);
  cr_assert_eq(dc_live_tensors(), before);
}

Test(core, alloc_fault_injection_is_clean) {
  dc_scope_begin();
  dc_alloc_fail_at(1);
  cr_assert_null(dc_zeros(DC_SHAPE(8), DC_F32));
  cr_assert_eq(dc_last_status(), DC_ERR_NOMEM);
  cr_assert_not_null(dc_zeros(DC_SHAPE(8), DC_F32));
  dc_scope_end();
}

Test(core, empty_tensors_are_contiguous_and_reduce) {
  dc_scope_begin();
  dc_tensor *e = dc_zeros(DC_SHAPE(0, 4), DC_F32);
  cr_assert(dc_is_contiguous(e));
  dc_tensor *s = dc_sum_all(e);
  cr_assert_not_null(s, "%s", dc_last_error());
  cr_assert_eq(dc_item(s), 0.0);
  dc_scope_end();
}

/* An empty tensor whose other sizes multiply past int64 would overflow its strides (found by
 * fuzz_idx under UBSan: an IDX header 0 x 437138751570 x 1045220475): refused with a message. */
Test(core, empty_tensor_with_huge_sizes_is_refused) {
  dc_tensor *t = dc_zeros(DC_SHAPE(0, 437138751570LL, 1045220475LL), DC_U8);
  cr_assert_null(t);
  cr_assert(strstr(dc_last_error(), "too many elements"), "%s", dc_last_error());
  dc_clear_error();
  dc_tensor *ok = dc_zeros(DC_SHAPE(0, 1LL << 30, 1LL << 30), DC_U8); /* 2^60: strides fit */
  cr_assert_not_null(ok, "%s", dc_last_error());
  cr_assert_eq(ok->stride[0], 1LL << 60);
  dc_free(ok);
}
