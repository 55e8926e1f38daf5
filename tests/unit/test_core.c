/* Unit tests of the core layer: dtypes, half conversions, tensors and views,
 * reference counting, scopes, errors, the allocator and the thread pool. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fern/fern.h"

static void test_dtypes(void **state)
{
    (void)state;
    assert_int_equal(fern_dtype_size(FERN_F32), 4);
    assert_int_equal(fern_dtype_size(FERN_BF16), 2);
    assert_int_equal(fern_dtype_size(FERN_BOOL), 1);
    assert_string_equal(fern_dtype_name(FERN_I64), "i64");
    fern_dtype d;
    assert_int_equal(fern_dtype_from_name("bf16", &d), 0);
    assert_int_equal(d, FERN_BF16);
    assert_int_not_equal(fern_dtype_from_name("f128", &d), 0);
    assert_int_equal(fern_dtype_promote(FERN_I32, FERN_F16), FERN_F16);
    assert_int_equal(fern_dtype_promote(FERN_BOOL, FERN_U8), FERN_U8);
    assert_int_equal(fern_dtype_promote(FERN_F32, FERN_F64), FERN_F64);
    assert_int_equal(fern_dtype_promote(FERN_I8, FERN_U8), FERN_I32);
    assert_int_equal(fern_dtype_promote(FERN_F16, FERN_BF16), FERN_F32);
}

/* Known encodings (IEEE binary16 and bfloat16 tables). */
static void test_half_conversion(void **state)
{
    (void)state;
    assert_int_equal(fern_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(fern_f32_to_f16(-2.0f), 0xc000);
    assert_int_equal(fern_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(fern_f32_to_f16(65520.0f), 0x7c00);     /* rounds to inf */
    assert_int_equal(fern_f32_to_f16(5.9604645e-8f), 0x0001); /* smallest subnormal */
    assert_int_equal(fern_f32_to_f16(1.0009765625f), 0x3c01);
    assert_int_equal(fern_f32_to_f16(1.00048828125f), 0x3c00); /* tie to even */
    assert_true(isnan(fern_f16_to_f32(fern_f32_to_f16(NAN))));
    assert_true(fern_f16_to_f32(0x0001) == 5.9604645e-8f);
    for (uint32_t h = 0; h < 0x7c00; h++) /* every finite positive half round-trips */
        assert_int_equal(fern_f32_to_f16(fern_f16_to_f32((uint16_t)h)), h);
    assert_int_equal(fern_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(fern_f32_to_bf16(3.14159265f), 0x4049);
    assert_true(fern_bf16_to_f32(0x4049) == 3.140625f);
    assert_true(isnan(fern_bf16_to_f32(fern_f32_to_bf16(NAN))));
}

static int deleter_calls;
static void count_deleter(void *data, void *ctx)
{
    (void)data;
    *(int *)ctx += 1;
}

static void test_tensor_basics(void **state)
{
    (void)state;
    float buf[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    fern_tensor *t = fern_from_data(FERN_F32, 2, shape, buf);
    assert_non_null(t);
    assert_int_equal(fern_tensor_ndim(t), 2);
    assert_int_equal(fern_tensor_numel(t), 6);
    assert_int_equal(fern_tensor_nbytes(t), 24);
    assert_int_equal(fern_tensor_dim(t, -1), 3);
    assert_true(fern_tensor_is_contiguous(t));
    assert_int_equal(((uintptr_t)fern_tensor_data(t)) % 64, 0);
    int64_t idx[2] = {1, 2};
    assert_true(fern_tensor_get(t, idx) == 6.0);
    assert_int_equal(fern_tensor_set(t, idx, 7.5), 0);
    assert_true(fern_tensor_get_flat(t, 5) == 7.5);
    buf[0] = 100; /* from_data copied */
    assert_true(fern_tensor_get_flat(t, 0) == 1.0);
    char d[64];
    assert_string_equal(fern_tensor_desc(t, d, sizeof d), "f32[2,3]");

    fern_tensor *r = fern_retain(t);
    assert_int_equal(fern_tensor_refcount(t), 2);
    fern_release(r);
    assert_int_equal(fern_tensor_refcount(t), 1);
    fern_release(t);

    deleter_calls = 0;
    fern_tensor *b = fern_from_buffer(FERN_F32, 2, shape, buf, count_deleter, &deleter_calls);
    assert_ptr_equal(fern_tensor_data(b), buf);
    fern_tensor *v = fern_transpose(b, 0, 1); /* a view keeps the storage alive */
    fern_release(b);
    assert_int_equal(deleter_calls, 0);
    assert_true(fern_tensor_get_flat(v, 1) == 4.0);
    fern_release(v);
    assert_int_equal(deleter_calls, 1);

    fern_tensor *s = fern_scalar(FERN_I64, 42);
    assert_int_equal(fern_tensor_ndim(s), 0);
    assert_int_equal(fern_tensor_numel(s), 1);
    assert_true(fern_tensor_get_flat(s, 0) == 42.0);
    fern_release(s);

    int64_t zshape[2] = {0, 5};
    fern_tensor *z = fern_empty(FERN_F64, 2, zshape);
    assert_non_null(z);
    assert_int_equal(fern_tensor_numel(z), 0);
    fern_release(z);
}

static void test_views_share_storage(void **state)
{
    (void)state;
    fern_scope_begin();
    int64_t shape[3] = {2, 3, 4};
    fern_tensor *x = fern_empty(FERN_F32, 3, shape);
    for (int64_t i = 0; i < 24; i++) {
        int64_t idx[3] = {i / 12, (i / 4) % 3, i % 4};
        fern_tensor_set(x, idx, (double)i);
    }
    fern_tensor *p = fern_permute(x, (const int[]){2, 0, 1});
    assert_true(fern_tensor_shares_storage(x, p));
    assert_false(fern_tensor_is_contiguous(p));
    assert_int_equal(fern_tensor_strides(p)[0], 1);
    int64_t idx[3] = {3, 1, 2};
    assert_true(fern_tensor_get(p, idx) == 23.0);

    fern_tensor *s = fern_slice(x, 2, 1, 4, 2); /* x[:, :, 1::2] */
    assert_true(fern_tensor_shares_storage(x, s));
    assert_int_equal(fern_tensor_dim(s, 2), 2);
    assert_true(fern_tensor_get_flat(s, 1) == 3.0);

    fern_tensor *r = fern_reshape(x, 2, (const int64_t[]){6, 4});
    assert_true(fern_tensor_shares_storage(x, r));
    fern_tensor *rp = fern_reshape(p, 1, (const int64_t[]){24}); /* needs a copy */
    fern_tensor *rv = fern_reshape(p, 2, (const int64_t[]){4, 6}); /* merges (2,3): a view */
    assert_true(fern_tensor_shares_storage(x, rv));
    assert_false(fern_tensor_shares_storage(x, rp));
    assert_true(fern_tensor_get_flat(rp, 1) == 4.0);
    fern_tensor *u = fern_unsqueeze(p, 1); /* a view even though p is permuted */
    assert_true(fern_tensor_shares_storage(x, u));
    assert_int_equal(fern_tensor_ndim(u), 4);
    fern_tensor *q = fern_squeeze(u, NULL, 0);
    assert_int_equal(fern_tensor_ndim(q), 3);
    fern_tensor *f = fern_flatten(x, 1, -1);
    assert_int_equal(fern_tensor_dim(f, 1), 12);

    fern_tensor *col = fern_slice(x, 1, 0, 1, 1);
    fern_tensor *e = fern_expand(col, 4, (const int64_t[]){5, 2, 3, 4});
    assert_true(fern_tensor_shares_storage(x, e));
    assert_int_equal(fern_tensor_strides(e)[0], 0);
    assert_int_equal(fern_tensor_strides(e)[2], 0);

    fern_tensor *c = fern_contiguous(p);
    assert_true(fern_tensor_is_contiguous(c));
    assert_false(fern_tensor_shares_storage(c, x));
    fern_tensor *same = fern_contiguous(x);
    assert_ptr_equal(same, x);
    fern_tensor *cl = fern_clone(x);
    assert_false(fern_tensor_shares_storage(cl, x));

    fern_tensor *parts[3];
    assert_int_equal(fern_split(x, (const int64_t[]){1, 2, 1}, 3, -1, parts), FERN_OK);
    assert_int_equal(fern_tensor_dim(parts[1], 2), 2);
    assert_true(fern_tensor_get_flat(parts[1], 0) == 1.0);
    fern_scope_end();
}

static void test_copy_and_assign(void **state)
{
    (void)state;
    fern_scope_begin();
    int64_t shape[2] = {3, 2};
    fern_tensor *x = fern_from_data(FERN_I32, 2, shape, (const int32_t[]){1, 2, 3, 4, 5, 6});
    fern_tensor *t = fern_transpose(x, 0, 1);
    int32_t out[6];
    assert_int_equal(fern_tensor_copy_to(t, out, sizeof out), FERN_OK);
    const int32_t want[6] = {1, 3, 5, 2, 4, 6};
    assert_memory_equal(out, want, sizeof want);
    assert_int_not_equal(fern_tensor_copy_to(t, out, 4), FERN_OK);
    fern_clear_error();

    fern_tensor *dst = fern_empty(FERN_F64, 2, (const int64_t[]){2, 3});
    assert_int_equal(fern_tensor_assign(dst, t), FERN_OK);
    assert_true(fern_tensor_get_flat(dst, 3) == 2.0);
    assert_int_not_equal(fern_tensor_assign(dst, x), FERN_OK);
    assert_non_null(strstr(fern_last_error(), "shape"));
    fern_clear_error();
    fern_scope_end();
}

static void test_scopes(void **state)
{
    (void)state;
    size_t base = fern_alloc_get_stats(FERN_CPU).current_bytes;
    int64_t shape[1] = {1000};
    fern_tensor *kept;
    fern_scope_begin();
    assert_int_equal(fern_scope_depth(), 1);
    fern_empty(FERN_F32, 1, shape);
    fern_scope_begin();
    fern_tensor *inner = fern_empty(FERN_F32, 1, shape);
    fern_empty(FERN_F32, 1, shape);
    kept = fern_keep(inner); /* moves to the outer scope */
    fern_scope_end();
    assert_int_equal(fern_tensor_refcount(kept), 1);
    fern_tensor *mine = fern_keep(fern_empty(FERN_F32, 1, shape)); /* out to the caller */
    fern_scope_end();
    assert_int_equal(fern_scope_depth(), 0);
    assert_int_equal(fern_tensor_refcount(mine), 1);
    fern_release(mine);
    assert_int_equal(fern_alloc_get_stats(FERN_CPU).current_bytes, base);
    fern_scope_end(); /* unbalanced end is harmless */
}

static void test_errors(void **state)
{
    (void)state;
    fern_clear_error();
    assert_string_equal(fern_last_error(), "");
    int64_t shape[2] = {2, 3};
    fern_tensor *x = fern_empty(FERN_F32, 2, shape);
    fern_tensor *bad = fern_reshape(x, 2, (const int64_t[]){4, 4});
    assert_null(bad);
    assert_int_equal(fern_last_status(), FERN_ERR_INVALID);
    assert_non_null(strstr(fern_last_error(), "reshape"));
    assert_non_null(strstr(fern_last_error(), "f32[2,3]"));
    /* the chain keeps the first error */
    fern_tensor *chain = fern_transpose(fern_slice(bad, 0, 0, 1, 1), 0, 1);
    assert_null(chain);
    assert_non_null(strstr(fern_last_error(), "reshape"));
    fern_clear_error();
    assert_null(fern_permute(x, (const int[]){0, 0}));
    assert_non_null(strstr(fern_last_error(), "permutation"));
    fern_clear_error();
    assert_null(fern_empty(FERN_F32, 9, (const int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}));
    assert_non_null(strstr(fern_last_error(), "ndim"));
    fern_clear_error();
    assert_null(fern_empty(FERN_F32, 1, (const int64_t[]){-3}));
    assert_non_null(strstr(fern_last_error(), "negative"));
    fern_clear_error();
    assert_null(fern_from_buffer(FERN_F32, 1, (const int64_t[]){3}, NULL, NULL, NULL));
    fern_clear_error();
    assert_int_not_equal(fern_op_invoke("no_such_op", 0, NULL, 0, NULL, NULL, 0, NULL), FERN_OK);
    assert_non_null(strstr(fern_last_error(), "no_such_op"));
    fern_clear_error();
    fern_release(x);
}

static void test_allocator(void **state)
{
    (void)state;
    fern_alloc_reset_peak(FERN_CPU);
    fern_alloc_stats s0 = fern_alloc_get_stats(FERN_CPU);
    void *p = fern_alloc(FERN_CPU, 1 << 20);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    fern_alloc_stats s1 = fern_alloc_get_stats(FERN_CPU);
    assert_true(s1.current_bytes >= s0.current_bytes + (1 << 20));
    assert_true(s1.peak_bytes >= s1.current_bytes);
    fern_free(FERN_CPU, p, 1 << 20);
    void *q = fern_alloc(FERN_CPU, (1 << 20) - 100); /* same size class: cached */
    fern_alloc_stats s2 = fern_alloc_get_stats(FERN_CPU);
    assert_ptr_equal(p, q);
    assert_true(s2.n_cache_hits > s1.n_cache_hits);
    fern_free(FERN_CPU, q, (1 << 20) - 100);
    assert_int_equal(fern_alloc_get_stats(FERN_CPU).current_bytes, s0.current_bytes);
    fern_alloc_empty_cache(FERN_CPU);
    assert_int_equal(fern_alloc_get_stats(FERN_CPU).cached_bytes, 0);
    assert_null(fern_alloc(FERN_CUDA, 16));
    assert_non_null(strstr(fern_last_error(), "cuda"));
    fern_clear_error();
}

typedef struct {
    int *hits;
} pf_ctx;

static void mark(void *ctx, int64_t b, int64_t e)
{
    pf_ctx *c = ctx;
    for (int64_t i = b; i < e; i++)
        c->hits[i]++;
}

static void nested(void *ctx, int64_t b, int64_t e)
{
    pf_ctx *c = ctx;
    for (int64_t i = b; i < e; i++) {
        int h[3] = {0};
        pf_ctx inner = {h};
        fern_parallel_for(3, 1, mark, &inner); /* nested: runs inline */
        c->hits[i] += h[0] + h[1] + h[2];
    }
}

static void test_parallel_for(void **state)
{
    (void)state;
    int n = 100003;
    int *hits = calloc((size_t)n, sizeof *hits);
    pf_ctx c = {hits};
    for (int threads = 1; threads <= 3; threads++) {
        fern_set_num_threads(threads);
        assert_int_equal(fern_num_threads(), threads);
        memset(hits, 0, (size_t)n * sizeof *hits);
        fern_parallel_for(n, 1000, mark, &c);
        for (int i = 0; i < n; i++)
            assert_int_equal(hits[i], 1);
        memset(hits, 0, (size_t)n * sizeof *hits);
        fern_parallel_for(64, 1, nested, &c);
        for (int i = 0; i < 64; i++)
            assert_int_equal(hits[i], 3);
    }
    fern_set_num_threads(0);
    free(hits);
}

static void test_rng_state(void **state)
{
    (void)state;
    fern_seed(123);
    assert_int_equal(fern_get_seed(), 123);
    assert_int_equal(fern_rng_offset(), 0);
    fern_rng_set_offset(17);
    assert_int_equal(fern_rng_offset(), 17);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtypes),          cmocka_unit_test(test_half_conversion),
        cmocka_unit_test(test_tensor_basics),   cmocka_unit_test(test_views_share_storage),
        cmocka_unit_test(test_copy_and_assign), cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_errors),          cmocka_unit_test(test_allocator),
        cmocka_unit_test(test_parallel_for),    cmocka_unit_test(test_rng_state),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
