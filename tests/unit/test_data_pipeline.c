/* The pipeline: batch, shuffle, repeat, take/skip, zip, concat, project,
 * rename, shard, split, generators, map with worker threads. Determinism
 * across worker counts, exact sharding, error propagation from workers,
 * early shutdown and reference counting. Needs no reference files. */
#include <stdatomic.h>

#include "test_data_util.h"

static fern_tensor *iota_i64(int64_t n)
{
    fern_tensor *t = fern_empty(FERN_I64, 1, &n);
    for (int64_t i = 0; i < n; i++)
        ((int64_t *)fern_tensor_data(t))[i] = i;
    return t;
}

/* "x" f32 [n,3] (x[i][j] = 10 i + j), "y" i64 [n] (y[i] = i). */
static fern_dataset *xy(int64_t n)
{
    int64_t s[2] = {n, 3};
    fern_tensor *x = fern_empty(FERN_F32, 2, s), *y = iota_i64(n);
    for (int64_t i = 0; i < n * 3; i++)
        ((float *)fern_tensor_data(x))[i] = (float)(10 * (i / 3) + i % 3);
    const char *names[2] = {"x", "y"};
    fern_tensor *ts[2] = {x, y};
    fern_dataset *ds = fern_dataset_from_tensors(2, names, ts);
    fern_release(x);
    fern_release(y);
    return ds;
}

/* All values of column `col` (scalars or first elements), concatenated
 * over the epoch. Returns the count. */
static int64_t collect(fern_dataset *ds, const char *col, uint64_t seed, int prefetch, int64_t *out, int64_t cap)
{
    fern_data_iter_opts o = {seed, 0, prefetch};
    fern_data_iter *it = fern_data_iter_new(ds, &o);
    if (!it)
        fail_msg("iter: %s", fern_last_error());
    fern_row *r = fern_row_new();
    int64_t n = 0;
    int st;
    while ((st = fern_data_iter_next(it, r)) == FERN_OK) {
        fern_tensor *t = fern_row_get(r, col);
        assert_non_null(t);
        int64_t k = fern_tensor_ndim(t) == 0 ? 1 : fern_tensor_dim(t, 0);
        int64_t per = k ? fern_tensor_numel(t) / k : 0;
        for (int64_t i = 0; i < k; i++) {
            assert_true(n < cap);
            out[n++] = (int64_t)fern_tensor_get_flat(t, i * per);
        }
    }
    if (st != FERN_DATA_END)
        fail_msg("iteration failed: %s", fern_last_error());
    fern_row_free(r);
    fern_data_iter_free(it);
    return n;
}

static void test_basic_rows_and_batch(void **state)
{
    (void)state;
    fern_dataset *ds = xy(10);
    assert_int_equal(fern_dataset_size(ds), 10);
    assert_true(fern_dataset_is_random_access(ds));
    fern_data_iter *it = fern_data_iter_new(ds, NULL);
    fern_row *r = fern_row_new();
    for (int i = 0; i < 10; i++) {
        assert_int_equal(fern_data_iter_next(it, r), FERN_OK);
        assert_int_equal(fern_row_ncols(r), 2);
        assert_string_equal(fern_row_name(r, 0), "x");
        fern_tensor *x = fern_row_get(r, "x");
        assert_int_equal(fern_tensor_ndim(x), 1);
        assert_true(fern_tensor_get_flat(x, 2) == 10 * i + 2);
        assert_int_equal((int)fern_tensor_get_flat(fern_row_get(r, "y"), 0), i);
    }
    assert_int_equal(fern_data_iter_next(it, r), FERN_DATA_END);
    assert_int_equal(fern_data_iter_next(it, r), FERN_DATA_END);
    fern_clear_error();
    assert_null(fern_row_get(r, "x")); /* cleared at the end */
    EXPECT_ERR_CONTAINS("no column 'x'");
    fern_data_iter_free(it);
    /* batches of 4: 4, 4, 2 / drop remainder: 4, 4 */
    for (int drop = 0; drop < 2; drop++) {
        fern_dataset *b = fern_dataset_batch(fern_dataset_retain(ds), 4, drop);
        assert_int_equal(fern_dataset_size(b), drop ? 2 : 3);
        it = fern_data_iter_new(b, NULL);
        int64_t sizes[3] = {0};
        int nb = 0;
        while (fern_data_iter_next(it, r) == FERN_OK) {
            fern_tensor *x = fern_row_get(r, "x"), *y = fern_row_get(r, "y");
            assert_int_equal(fern_tensor_ndim(x), 2);
            assert_int_equal(fern_tensor_dim(x, 1), 3);
            assert_int_equal(fern_tensor_dtype(y), FERN_I64);
            for (int64_t i = 0; i < fern_tensor_dim(y, 0); i++)
                assert_int_equal((int)fern_tensor_get_flat(y, i), nb * 4 + i);
            sizes[nb++] = fern_tensor_dim(x, 0);
        }
        assert_int_equal(nb, drop ? 2 : 3);
        assert_int_equal(sizes[0], 4);
        if (!drop)
            assert_int_equal(sizes[2], 2);
        fern_data_iter_free(it);
        fern_dataset_release(b);
    }
    fern_row_free(r);
    fern_clear_error();
    assert_null(fern_dataset_batch(fern_dataset_retain(ds), 0, 0));
    EXPECT_ERR_CONTAINS("batch: batch_size 0");
    /* a chain with a NULL keeps the first error */
    fern_clear_error();
    fern_dataset *bad = fern_dataset_batch(fern_dataset_shuffle(fern_dataset_take(fern_dataset_retain(ds), -1), 4), 2, 0);
    assert_null(bad);
    EXPECT_ERR_CONTAINS("take: count -1");
    fern_dataset_release(ds);
}

static int gen_seq(void *ctx, uint64_t pass, int64_t index, fern_row *out)
{
    int64_t n = *(int64_t *)ctx;
    (void)pass;
    if (index >= n)
        return FERN_DATA_END;
    fern_tensor *y = fern_scalar(FERN_I64, (double)index);
    fern_status st = fern_row_set(out, "y", y);
    fern_release(y);
    return st;
}

static fern_dataset *seq_gen(int64_t n, int64_t size)
{
    int64_t *ctx = malloc(sizeof *ctx);
    *ctx = n;
    const char *names[1] = {"y"};
    return fern_dataset_generator(gen_seq, ctx, free, size, 1, names);
}

static void test_shuffle(void **state)
{
    (void)state;
    int64_t a[100], b[100], c[100];
    fern_dataset *ds = fern_dataset_shuffle(xy(100), 100);
    assert_int_equal(collect(ds, "y", 1, 0, a, 100), 100);
    assert_int_equal(collect(ds, "y", 1, -1, b, 100), 100);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(collect(ds, "y", 2, 0, c, 100), 100);
    assert_memory_not_equal(a, c, sizeof a);
    int seen[100] = {0};
    for (int i = 0; i < 100; i++)
        seen[a[i]]++;
    for (int i = 0; i < 100; i++)
        assert_int_equal(seen[i], 1);
    /* the stream mode (sequential generator) and the index mode give the
     * same order for every buffer size */
    int64_t sizes[4] = {1, 3, 17, 1000};
    for (int k = 0; k < 4; k++) {
        fern_dataset *s1 = fern_dataset_shuffle(xy(100), sizes[k]);
        fern_dataset *s2 = fern_dataset_shuffle(seq_gen(100, -1), sizes[k]);
        assert_false(fern_dataset_is_random_access(s2));
        assert_int_equal(collect(s1, "y", 9, 0, a, 100), 100);
        assert_int_equal(collect(s2, "y", 9, 0, b, 100), 100);
        assert_memory_equal(a, b, sizeof a);
        if (sizes[k] == 1)
            for (int i = 0; i < 100; i++)
                assert_int_equal(a[i], i);
        fern_dataset_release(s1);
        fern_dataset_release(s2);
    }
    /* epochs reshuffle; set_epoch replays */
    fern_data_iter_opts o = {5, 0, 0};
    fern_data_iter *it = fern_data_iter_new(ds, &o);
    fern_row *r = fern_row_new();
    int64_t e0[100], e1[100], e0b[100];
    for (int ep = 0; ep < 3; ep++) {
        int64_t *dst = ep == 0 ? e0 : ep == 1 ? e1 : e0b;
        if (ep == 1)
            assert_int_equal(fern_data_iter_reset(it), FERN_OK);
        if (ep == 2)
            assert_int_equal(fern_data_iter_set_epoch(it, 0), FERN_OK);
        for (int i = 0; i < 100; i++) {
            assert_int_equal(fern_data_iter_next(it, r), FERN_OK);
            dst[i] = (int64_t)fern_tensor_get_flat(fern_row_get(r, "y"), 0);
        }
        assert_int_equal(fern_data_iter_next(it, r), FERN_DATA_END);
    }
    assert_int_equal(fern_data_iter_epoch(it), 0);
    assert_memory_not_equal(e0, e1, sizeof e0);
    assert_memory_equal(e0, e0b, sizeof e0);
    fern_row_free(r);
    fern_data_iter_free(it);
    fern_dataset_release(ds);
}

static fern_dataset *image_pipeline(fern_dataset *src, int workers)
{
    double mean[1] = {0.5}, sd[1] = {0.25};
    fern_transform *tfs[] = {fern_tf_random_crop(8, 8, 2, 0), fern_tf_random_hflip(0.5), fern_tf_to_tensor(),
                             fern_tf_normalize(1, mean, sd), fern_tf_random_brightness(0.3)};
    fern_dataset *ds = fern_dataset_shuffle(src, 37);
    ds = fern_dataset_map(ds, "image", NULL, tfs, 5, workers);
    return fern_dataset_batch(ds, 16, 0);
}

static fern_dataset *images(int64_t n)
{
    int64_t s[4] = {n, 8, 8, 1};
    fern_tensor *im = fern_empty(FERN_U8, 4, s), *lb = iota_i64(n);
    for (int64_t i = 0; i < n * 64; i++)
        ((uint8_t *)fern_tensor_data(im))[i] = (uint8_t)(i * 7 + i / 64);
    const char *names[2] = {"image", "label"};
    fern_tensor *ts[2] = {im, lb};
    fern_dataset *ds = fern_dataset_from_tensors(2, names, ts);
    fern_release(im);
    fern_release(lb);
    return ds;
}

/* Concatenated bytes of every batch of an epoch. */
static size_t epoch_bytes(fern_dataset *ds, uint64_t seed, uint64_t epoch, int prefetch, unsigned char *buf, size_t cap)
{
    fern_data_iter_opts o = {seed, epoch, prefetch};
    fern_data_iter *it = fern_data_iter_new(ds, &o);
    assert_non_null(it);
    fern_row *r = fern_row_new();
    size_t n = 0;
    int st;
    while ((st = fern_data_iter_next(it, r)) == FERN_OK)
        for (int c = 0; c < fern_row_ncols(r); c++) {
            size_t nb = fern_tensor_nbytes(fern_row_at(r, c));
            assert_true(n + nb <= cap);
            memcpy(buf + n, fern_tensor_data(fern_row_at(r, c)), nb);
            n += nb;
        }
    if (st != FERN_DATA_END)
        fail_msg("%s", fern_last_error());
    fern_row_free(r);
    fern_data_iter_free(it);
    return n;
}

static void test_determinism_across_workers(void **state)
{
    (void)state;
    size_t cap = 1 << 20;
    unsigned char *ref = malloc(cap), *got = malloc(cap);
    for (int sequential = 0; sequential < 2; sequential++) {
        size_t nref = 0;
        int workers[5] = {0, 1, 2, 4, 7};
        for (int k = 0; k < 5; k++)
            for (int pf = -1; pf <= 2; pf += 3) {
                fern_dataset *src = images(203);
                if (sequential) /* the same rows through a sequential stage */
                    src = fern_dataset_concat(&src, 1), src = fern_dataset_repeat(src, 1);
                fern_dataset *ds = image_pipeline(src, workers[k]);
                assert_non_null(ds);
                size_t n = epoch_bytes(ds, 42, 3, pf, k == 0 && pf == -1 ? ref : got, cap);
                if (k == 0 && pf == -1)
                    nref = n;
                else {
                    assert_int_equal(n, nref);
                    assert_memory_equal(ref, got, n);
                }
                fern_dataset_release(ds);
            }
        /* another seed or epoch gives other batches */
        fern_dataset *ds = image_pipeline(images(203), 2);
        size_t n = epoch_bytes(ds, 43, 3, 0, got, cap);
        assert_int_equal(n, nref);
        assert_memory_not_equal(ref, got, n);
        n = epoch_bytes(ds, 42, 4, 0, got, cap);
        assert_memory_not_equal(ref, got, n);
        fern_dataset_release(ds);
    }
    free(ref);
    free(got);
}

/* A map function with uneven cost so workers finish out of order. */
static int slow_fn(void *ctx, fern_row *row, uint64_t seed)
{
    atomic_long *calls = ctx;
    atomic_fetch_add(calls, 1);
    fern_tensor *y = fern_row_get(row, "y");
    int64_t v = (int64_t)fern_tensor_get_flat(y, 0);
    volatile double s = 0;
    for (int i = 0; i < (int)((seed % 7) * 3000 + (v % 5) * 2000); i++)
        s += i * 0.5;
    fern_tensor *z = fern_scalar(FERN_I64, (double)(v * 4 + (int64_t)(seed % 3)));
    fern_status st = fern_row_set(row, "z", z);
    fern_release(z);
    return st;
}

static void test_map_fn_order(void **state)
{
    (void)state;
    int64_t a[3000], b[3000];
    const char *names[3] = {"x", "y", "z"};
    for (int seq = 0; seq < 2; seq++) {
        int64_t n0 = 0;
        for (int w = 0; w <= 4; w += 2) {
            atomic_long calls = 0;
            fern_dataset *src = seq ? fern_dataset_repeat(xy(1000), 3)
                                    : fern_dataset_take(fern_dataset_concat((fern_dataset *[]){xy(1000), xy(1000), xy(1000)}, 3), 3000);
            fern_dataset *ds = fern_dataset_map_fn(src, slow_fn, &calls, NULL, w, 3, names);
            assert_non_null(ds);
            int64_t n = collect(ds, "z", 77, 0, w == 0 ? a : b, 3000);
            assert_int_equal(n, 3000);
            assert_int_equal(atomic_load(&calls), 3000);
            if (w == 0)
                n0 = n;
            else
                assert_memory_equal(a, b, (size_t)n0 * sizeof a[0]);
            fern_dataset_release(ds);
        }
        for (int i = 0; i < 3000; i++)
            assert_int_equal(a[i] / 4, i % 1000);
    }
}

static void check_partition(int64_t n, int64_t shards, fern_dataset *(*make)(int64_t))
{
    int *seen = calloc((size_t)n, sizeof *seen);
    int64_t *vals = malloc((size_t)n * sizeof *vals);
    int64_t total = 0;
    for (int64_t k = 0; k < shards; k++) {
        fern_dataset *ds = fern_dataset_shard(make(n), shards, k);
        assert_non_null(ds);
        int64_t m = collect(ds, "y", 3, 0, vals, n);
        if (fern_dataset_size(ds) >= 0)
            assert_int_equal(fern_dataset_size(ds), m);
        for (int64_t i = 0; i < m; i++) {
            assert_true(vals[i] >= 0 && vals[i] < n);
            seen[vals[i]]++;
        }
        total += m;
        fern_dataset_release(ds);
    }
    assert_int_equal(total, n);
    for (int64_t i = 0; i < n; i++)
        assert_int_equal(seen[i], 1);
    free(seen);
    free(vals);
}

static fern_dataset *mk_plain(int64_t n) { return xy(n); }
static fern_dataset *mk_shuffled(int64_t n) { return fern_dataset_shuffle(xy(n), 13); }
static fern_dataset *mk_stream(int64_t n) { return fern_dataset_shuffle(seq_gen(n, -1), 7); }

static void test_shard_split_take_skip(void **state)
{
    (void)state;
    int64_t ns[3] = {10, 11, 97}, ks[3] = {1, 3, 8};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            check_partition(ns[a], ks[b], mk_plain);
            check_partition(ns[a], ks[b], mk_shuffled);
            check_partition(ns[a], ks[b], mk_stream);
        }
    fern_clear_error();
    assert_null(fern_dataset_shard(xy(5), 2, 2));
    EXPECT_ERR_CONTAINS("shard: shard_id 2");
    /* split */
    fern_dataset *tr, *va;
    assert_int_equal(fern_dataset_split(xy(10), 0.8, 42, &tr, &va), FERN_OK);
    assert_int_equal(fern_dataset_size(tr), 8);
    assert_int_equal(fern_dataset_size(va), 2);
    int64_t v1[10], v2[10], w1[10];
    assert_int_equal(collect(tr, "y", 0, 0, v1, 10), 8);
    assert_int_equal(collect(va, "y", 0, 0, v1 + 8, 10), 2);
    int seen[10] = {0};
    for (int i = 0; i < 10; i++)
        seen[v1[i]]++;
    for (int i = 0; i < 10; i++)
        assert_int_equal(seen[i], 1);
    fern_dataset *tr2, *va2;
    assert_int_equal(fern_dataset_split(xy(10), 0.8, 42, &tr2, &va2), FERN_OK);
    assert_int_equal(collect(tr2, "y", 99, 0, w1, 10), 8); /* independent of the iterator seed */
    assert_memory_equal(v1, w1, 8 * sizeof v1[0]);
    fern_dataset_release(tr);
    fern_dataset_release(va);
    fern_dataset_release(tr2);
    fern_dataset_release(va2);
    assert_int_equal(fern_dataset_split(xy(10), 0.3, 0, &tr, &va), FERN_OK);
    assert_int_equal(collect(va, "y", 0, 0, v2, 10), 7);
    for (int i = 0; i < 7; i++)
        assert_int_equal(v2[i], 3 + i);
    fern_dataset_release(tr);
    fern_dataset_release(va);
    fern_clear_error();
    assert_int_not_equal(fern_dataset_split(seq_gen(5, -1), 0.5, 1, &tr, &va), FERN_OK);
    EXPECT_ERR_CONTAINS("split: generator is not random access");
    assert_null(tr);
    /* take / skip, on random-access and streaming inputs */
    for (int s = 0; s < 2; s++) {
        fern_dataset *base = s ? seq_gen(10, -1) : xy(10);
        fern_dataset *t = fern_dataset_take(fern_dataset_retain(base), 4);
        fern_dataset *k = fern_dataset_skip(fern_dataset_retain(base), 7);
        fern_dataset *t2 = fern_dataset_take(fern_dataset_retain(base), 40);
        fern_dataset *k2 = fern_dataset_skip(base, 40);
        assert_int_equal(collect(t, "y", 0, 0, v1, 10), 4);
        assert_int_equal(v1[3], 3);
        assert_int_equal(collect(k, "y", 0, 0, v1, 10), 3);
        assert_int_equal(v1[0], 7);
        assert_int_equal(collect(t2, "y", 0, 0, v1, 10), 10);
        assert_int_equal(collect(k2, "y", 0, 0, v1, 10), 0);
        if (!s) {
            assert_int_equal(fern_dataset_size(t), 4);
            assert_int_equal(fern_dataset_size(k), 3);
            assert_int_equal(fern_dataset_size(k2), 0);
        }
        fern_dataset_release(t);
        fern_dataset_release(k);
        fern_dataset_release(t2);
        fern_dataset_release(k2);
    }
    /* subset */
    int64_t idx[4] = {9, 0, 9, 4};
    fern_dataset *sub = fern_dataset_subset(xy(10), 4, idx);
    assert_int_equal(collect(sub, "y", 0, 0, v1, 10), 4);
    assert_memory_equal(v1, idx, sizeof idx);
    fern_dataset_release(sub);
    fern_clear_error();
    int64_t badidx[1] = {10};
    assert_null(fern_dataset_subset(xy(10), 1, badidx));
    EXPECT_ERR_CONTAINS("subset: index 10");
}

static void test_zip_concat_project_rename_repeat(void **state)
{
    (void)state;
    int64_t v[200];
    const char *old[1] = {"y"}, *nw[1] = {"y2"};
    fern_dataset *b = fern_dataset_rename(fern_dataset_project(xy(7), 1, old), 1, old, nw);
    assert_non_null(b);
    assert_string_equal(fern_dataset_col_name(b, 0), "y2");
    fern_dataset *zs[2] = {xy(5), b};
    fern_dataset *z = fern_dataset_zip(zs, 2);
    assert_non_null(z);
    assert_int_equal(fern_dataset_ncols(z), 3);
    assert_int_equal(fern_dataset_size(z), 5);
    assert_int_equal(collect(z, "y2", 0, 0, v, 200), 5);
    assert_int_equal(v[4], 4);
    fern_dataset_release(z);
    fern_clear_error();
    fern_dataset *dup[2] = {xy(3), xy(3)};
    assert_null(fern_dataset_zip(dup, 2));
    EXPECT_ERR_CONTAINS("zip: column 'x' appears in more than one dataset");
    /* concat: columns in another order are matched by name */
    const char *order[2] = {"y", "x"};
    fern_dataset *cs[3] = {xy(3), fern_dataset_project(xy(4), 2, order), seq_gen(2, -1)};
    fern_clear_error();
    assert_null(fern_dataset_concat(cs, 3));
    EXPECT_ERR_CONTAINS("concat: dataset 2");
    fern_dataset *cs2[2] = {xy(3), fern_dataset_project(xy(4), 2, order)};
    fern_dataset *c = fern_dataset_concat(cs2, 2);
    assert_non_null(c);
    assert_int_equal(fern_dataset_size(c), 7);
    assert_string_equal(fern_dataset_col_name(c, 0), "x");
    int64_t cy[7];
    assert_int_equal(collect(c, "y", 0, 0, cy, 7), 7);
    assert_int_equal(cy[2], 2);
    assert_int_equal(cy[3], 0);
    assert_int_equal(cy[6], 3);
    fern_dataset *cb = fern_dataset_batch(fern_dataset_retain(c), 7, 0);
    assert_int_equal(collect(cb, "x", 0, 0, v, 200), 7); /* x[i][0] of the batch */
    for (int i = 0; i < 7; i++)
        assert_int_equal(v[i], 10 * cy[i]);
    fern_dataset_release(cb);
    fern_dataset_release(c);
    fern_clear_error();
    const char *nope[1] = {"nope"};
    assert_null(fern_dataset_project(xy(3), 1, nope));
    EXPECT_ERR_CONTAINS("project: tensors has no column 'nope'");
    /* repeat: each repetition is a pass with its own shuffle */
    fern_dataset *r = fern_dataset_repeat(fern_dataset_shuffle(xy(50), 50), 3);
    assert_int_equal(fern_dataset_size(r), 150);
    assert_int_equal(collect(r, "y", 1, 0, v, 200), 150);
    assert_memory_not_equal(v, v + 50, 50 * sizeof v[0]);
    int seen[50] = {0};
    for (int i = 100; i < 150; i++)
        seen[v[i]]++;
    for (int i = 0; i < 50; i++)
        assert_int_equal(seen[i], 1);
    fern_dataset_release(r);
    fern_dataset *inf = fern_dataset_take(fern_dataset_repeat(xy(3), -1), 10);
    assert_int_equal(collect(inf, "y", 0, 0, v, 200), 10);
    assert_int_equal(v[9], 0);
    fern_dataset_release(inf);
    fern_dataset *empty = fern_dataset_repeat(fern_dataset_take(xy(3), 0), -1);
    assert_int_equal(collect(empty, "y", 0, 0, v, 200), 0);
    fern_dataset_release(empty);
    /* pipeline names */
    fern_dataset *named = fern_dataset_batch(fern_dataset_shuffle(xy(3), 2), 2, 0);
    assert_string_equal(fern_dataset_name(named), "batch(shuffle(tensors))");
    fern_dataset_release(named);
}

static int gen_fail(void *ctx, uint64_t pass, int64_t index, fern_row *out)
{
    (void)ctx;
    (void)pass;
    if (index == 5) {
        fern_set_error(FERN_ERR_IO, "my generator: row %lld is broken", (long long)index);
        return FERN_ERR_IO;
    }
    if (index == 9)
        return FERN_DATA_END;
    fern_tensor *y = fern_scalar(FERN_I64, (double)index);
    fern_row_set(out, "y", y);
    fern_release(y);
    return FERN_OK;
}

static int gen_shape(void *ctx, uint64_t pass, int64_t index, fern_row *out)
{
    (void)ctx;
    (void)pass;
    int64_t s[3] = {2, 2, index == 3 ? 2 : 1};
    fern_tensor *t = fern_empty(FERN_U8, 3, s);
    memset(fern_tensor_data(t), (int)index, (size_t)(s[0] * s[1] * s[2]));
    fern_row_set(out, "image", t);
    fern_release(t);
    return FERN_OK;
}

static int gen_wrongcol(void *ctx, uint64_t pass, int64_t index, fern_row *out)
{
    (void)ctx;
    (void)pass;
    (void)index;
    fern_tensor *y = fern_scalar(FERN_I64, 1);
    fern_row_set(out, "oops", y);
    fern_release(y);
    return FERN_OK;
}

static void test_errors_propagate(void **state)
{
    (void)state;
    const char *y[1] = {"y"}, *im[1] = {"image"};
    for (int w = 0; w <= 3; w += 3) {
        /* generator error surfaces through a multi-worker map and the driver */
        fern_dataset *ds = fern_dataset_generator(gen_fail, NULL, NULL, -1, 1, y);
        fern_transform *tf[] = {fern_tf_cast(FERN_F32)};
        ds = fern_dataset_map(ds, "y", NULL, tf, 1, w);
        fern_data_iter *it = fern_data_iter_new(ds, NULL);
        fern_row *r = fern_row_new();
        for (int i = 0; i < 5; i++)
            assert_int_equal(fern_data_iter_next(it, r), FERN_OK);
        fern_clear_error();
        assert_int_equal(fern_data_iter_next(it, r), FERN_ERR_IO);
        EXPECT_ERR_CONTAINS("my generator: row 5 is broken");
        fern_clear_error();
        assert_int_equal(fern_data_iter_next(it, r), FERN_ERR_IO); /* sticky */
        assert_int_equal(fern_data_iter_reset(it), FERN_OK);     /* recovers */
        assert_int_equal(fern_data_iter_next(it, r), FERN_OK);
        fern_row_free(r);
        fern_data_iter_free(it);
        fern_dataset_release(ds);
        /* a transform failing on one row (wrong shape for the crop) */
        fern_dataset *g = fern_dataset_generator(gen_shape, NULL, NULL, 6, 1, im);
        fern_transform *crop[] = {fern_tf_adjust_saturation(0.5)};
        g = fern_dataset_map(g, "image", NULL, crop, 1, w);
        it = fern_data_iter_new(g, NULL);
        r = fern_row_new();
        fern_clear_error();
        int st, n = 0;
        while ((st = fern_data_iter_next(it, r)) == FERN_OK)
            n++;
        assert_int_equal(n, 3);
        assert_int_equal(st, FERN_ERR_INVALID);
        EXPECT_ERR_CONTAINS("adjust_saturation: saturation needs 1 or 3 channels, got u8[2,2,2]");
        fern_row_free(r);
        fern_data_iter_free(it);
        fern_dataset_release(g);
        /* batch of rows with different shapes */
        g = fern_dataset_batch(fern_dataset_generator(gen_shape, NULL, NULL, 6, 1, im), 6, 0);
        it = fern_data_iter_new(g, NULL);
        r = fern_row_new();
        fern_clear_error();
        assert_int_equal(fern_data_iter_next(it, r), FERN_ERR_INVALID);
        EXPECT_ERR_CONTAINS("batch: column 'image' of row 3 of the batch is u8[2,2,2] but row 0 is u8[2,2,1]");
        fern_row_free(r);
        fern_data_iter_free(it);
        fern_dataset_release(g);
    }
    /* a generator setting an undeclared column */
    fern_dataset *g = fern_dataset_generator(gen_wrongcol, NULL, NULL, 3, 1, y);
    fern_data_iter *it = fern_data_iter_new(g, NULL);
    fern_row *r = fern_row_new();
    fern_clear_error();
    assert_int_equal(fern_data_iter_next(it, r), FERN_ERR_INVALID);
    EXPECT_ERR_CONTAINS("generator: the row has no column 'y'");
    fern_row_free(r);
    fern_data_iter_free(it);
    fern_dataset_release(g);
    /* map on a missing column fails at construction */
    fern_clear_error();
    fern_transform *tf[] = {fern_tf_hflip()};
    assert_null(fern_dataset_map(xy(3), "image", NULL, tf, 1, 2));
    EXPECT_ERR_CONTAINS("map: tensors has no column 'image'");
    fern_clear_error();
    assert_null(fern_data_iter_new(NULL, NULL));
    EXPECT_ERR_CONTAINS("data_iter_new: dataset is NULL");
}

static void test_shutdown_scopes_and_leaks(void **state)
{
    (void)state;
    fern_alloc_stats a0 = fern_alloc_get_stats(FERN_CPU);
    /* free and reset in the middle of epochs, with busy workers */
    for (int k = 0; k < 20; k++) {
        fern_dataset *ds = image_pipeline(fern_dataset_repeat(images(500), -1), 3);
        fern_data_iter_opts o = {(uint64_t)k, 0, 2};
        fern_data_iter *it = fern_data_iter_new(ds, &o);
        fern_row *r = fern_row_new();
        for (int i = 0; i < k; i++)
            assert_int_equal(fern_data_iter_next(it, r), FERN_OK);
        if (k % 2)
            assert_int_equal(fern_data_iter_reset(it), FERN_OK);
        fern_row_free(r);
        fern_data_iter_free(it);
        fern_dataset_release(ds);
    }
    /* rows are not owned by the caller's scope */
    fern_dataset *ds = xy(4);
    fern_data_iter *it = fern_data_iter_new(ds, NULL);
    fern_row *r = fern_row_new();
    fern_scope_begin();
    assert_int_equal(fern_data_iter_next(it, r), FERN_OK);
    fern_scope_end();
    fern_tensor *x = fern_row_get(r, "x");
    assert_int_equal(fern_tensor_refcount(x), 1);
    assert_true(fern_tensor_get_flat(x, 1) == 1.0);
    /* fern_row_set replaces; retains */
    fern_tensor *t = fern_scalar(FERN_F32, 3);
    assert_int_equal(fern_row_set(r, "x", t), FERN_OK);
    assert_int_equal(fern_tensor_refcount(t), 2);
    assert_int_equal(fern_row_ncols(r), 2);
    fern_row_clear(r);
    assert_int_equal(fern_tensor_refcount(t), 1);
    fern_release(t);
    fern_row_free(r);
    fern_data_iter_free(it);
    fern_dataset_release(ds);
    fern_alloc_stats a1 = fern_alloc_get_stats(FERN_CPU);
    assert_int_equal(a0.current_bytes, a1.current_bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_rows_and_batch),
        cmocka_unit_test(test_shuffle),
        cmocka_unit_test(test_determinism_across_workers),
        cmocka_unit_test(test_map_fn_order),
        cmocka_unit_test(test_shard_split_take_skip),
        cmocka_unit_test(test_zip_concat_project_rename_repeat),
        cmocka_unit_test(test_errors_propagate),
        cmocka_unit_test(test_shutdown_scopes_and_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
