/* fern's record format (include/fern/record.h): write/read round trips of
 * every field type over several shards and pages, random access, index
 * lookups and queries, the data-engine source through shuffle/map/batch
 * (1 and 2 workers) and shard, corruption / truncation / bad magic /
 * schema mismatch errors, atomic writes, the `fern record` command
 * (tools/cmd_record.c, compiled into this test) and the real
 * Fashion-MNIST training set converted and compared with the IDX source. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/internal.h"
#include "data/record_internal.h"
#include "fern/data.h"
#include "fern/record.h"

/* the command's logic, to test `fern record convert/info/dump` in-process */
#include "../../tools/cmd_record.c"

static char g_dir[256];

static const char *tpath(const char *name)
{
    static char buf[8][512];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", g_dir, name);
    return b;
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/fern-record-test-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

#define EXPECT_ERR(substr)                                                                          \
    do {                                                                                            \
        const char *m_ = fern_last_error();                                                         \
        if (!strstr(m_, (substr)))                                                                  \
            fail_msg("error \"%s\" does not contain \"%s\"", m_, (substr));                         \
    } while (0)

/* ---- the all-types schema and its deterministic rows ------------------------------------------- */

enum { F_I32, F_I64, F_F32, F_F64, F_NAME, F_BLOB, F_MAT, F_PIX, F_H, F_FLAGS, F_EMPTY, F_S8, F_LABEL, NF };

typedef struct {
    int32_t i32;
    int64_t i64;
    float f32;
    double f64;
    char name[1200];
    size_t name_len;
    unsigned char blob[8];
    size_t blob_len;
    float mat[6];
    uint8_t pix[4];
    uint16_t h[3];
    uint8_t flags[2];
    int8_t s8;
    int64_t label;
} erow;

static fern_record_schema *all_schema_label(fern_rec_type label_type)
{
    fern_record_schema *s = fern_record_schema_new();
    assert_non_null(s);
    int64_t mat[2] = {2, 3}, pix[1] = {4}, h[1] = {3}, fl[1] = {2}, em[2] = {0, 2};
    assert_int_equal(fern_record_schema_add(s, "i32", FERN_REC_INT32), FERN_OK);
    assert_int_equal(fern_record_schema_add(s, "i64", FERN_REC_INT64), FERN_OK);
    assert_int_equal(fern_record_schema_add(s, "f32", FERN_REC_FLOAT32), FERN_OK);
    assert_int_equal(fern_record_schema_add(s, "f64", FERN_REC_FLOAT64), FERN_OK);
    assert_int_equal(fern_record_schema_add(s, "name", FERN_REC_STRING), FERN_OK);
    assert_int_equal(fern_record_schema_add(s, "blob", FERN_REC_BYTES), FERN_OK);
    assert_int_equal(fern_record_schema_add_array(s, "mat", FERN_F32, 2, mat), FERN_OK);
    assert_int_equal(fern_record_schema_add_array(s, "pix", FERN_U8, 1, pix), FERN_OK);
    assert_int_equal(fern_record_schema_add_array(s, "h", FERN_F16, 1, h), FERN_OK);
    assert_int_equal(fern_record_schema_add_array(s, "flags", FERN_BOOL, 1, fl), FERN_OK);
    assert_int_equal(fern_record_schema_add_array(s, "empty", FERN_F64, 2, em), FERN_OK);
    assert_int_equal(fern_record_schema_add_array(s, "s8", FERN_I8, 0, NULL), FERN_OK);
    assert_int_equal(fern_record_schema_add(s, "label", label_type), FERN_OK);
    assert_int_equal(fern_record_schema_nfields(s), NF);
    return s;
}

static fern_record_schema *all_schema(void) { return all_schema_label(FERN_REC_INT64); }

static void gen(int64_t g, erow *e)
{
    memset(e, 0, sizeof *e);
    e->i32 = (int32_t)(g * 7 - 50);
    e->i64 = g == 0 ? INT64_MIN : g == 1 ? INT64_MAX : (int64_t)(g * 1000003) - 500000000000ll;
    if (g % 10 == 0) {
        uint32_t nan = 0x7FC00000u | (uint32_t)(g + 1); /* NaN with a payload */
        memcpy(&e->f32, &nan, 4);
    } else {
        e->f32 = (float)g * 0.25f - 3.0f;
    }
    e->f64 = g % 7 == 0 ? -0.0 : sqrt((double)g) * (g % 2 ? -1 : 1);
    if (g == 17) {
        for (int i = 0; i < 1100; i++)
            e->name[i] = (char)('a' + i % 26);
        e->name_len = 1100; /* larger than a page: a page of its own */
    } else if (g % 13 != 0) {
        int n = snprintf(e->name, sizeof e->name, "row-%lld", (long long)(g % 9));
        e->name_len = (size_t)n;
    }
    e->blob_len = (size_t)(g % 5);
    for (size_t i = 0; i < e->blob_len; i++)
        e->blob[i] = (unsigned char)(i == 0 ? 0 : g * 31 + i);
    for (int i = 0; i < 6; i++)
        e->mat[i] = (float)(g * 10 + i) / 3.0f;
    for (int i = 0; i < 4; i++)
        e->pix[i] = (uint8_t)(g + 60 * i);
    for (int i = 0; i < 3; i++)
        e->h[i] = fern_f32_to_f16((float)g - 1.5f * (float)i);
    e->flags[0] = (uint8_t)(g & 1);
    e->flags[1] = (uint8_t)((g >> 1) & 1);
    e->s8 = (int8_t)(-g);
    e->label = g % 10;
}

static void to_values(const erow *e, fern_record_value *v)
{
    memset(v, 0, sizeof(fern_record_value) * NF);
    v[F_I32].i = e->i32;
    v[F_I64].i = e->i64;
    v[F_F32].f = e->f32;
    v[F_F64].f = e->f64;
    v[F_NAME].data = e->name;
    v[F_NAME].size = e->name_len;
    v[F_BLOB].data = e->blob;
    v[F_BLOB].size = e->blob_len;
    v[F_MAT].data = e->mat;
    v[F_PIX].data = e->pix;
    v[F_H].data = e->h;
    v[F_FLAGS].data = e->flags;
    v[F_EMPTY].data = NULL;
    v[F_S8].data = &e->s8;
    v[F_LABEL].i = e->label;
}

static void set_col(fern_row *r, const char *name, fern_tensor *t)
{
    assert_non_null(t);
    assert_int_equal(fern_row_set(r, name, t), FERN_OK);
    fern_release(t);
}

/* The same row as a fern_row, with a transposed (non-contiguous) "mat". */
static void to_row(const erow *e, fern_row *r)
{
    fern_row_clear(r);
    int64_t n;
    set_col(r, "i32", fern_from_data(FERN_I32, 0, NULL, &e->i32));
    set_col(r, "i64", fern_from_data(FERN_I64, 0, NULL, &e->i64));
    set_col(r, "f32", fern_from_data(FERN_F32, 0, NULL, &e->f32));
    set_col(r, "f64", fern_from_data(FERN_F64, 0, NULL, &e->f64));
    n = (int64_t)e->name_len;
    set_col(r, "name", fern_from_data(FERN_U8, 1, &n, e->name));
    n = (int64_t)e->blob_len;
    set_col(r, "blob", fern_from_data(FERN_U8, 1, &n, e->blob));
    float mt[6];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            mt[j * 2 + i] = e->mat[i * 3 + j];
    int64_t s32[2] = {3, 2}, s23[2] = {2, 3}, st[2] = {1, 2};
    fern_tensor *base = fern_from_data(FERN_F32, 2, s32, mt);
    fern_tensor *view = fern__tensor_view(base, 2, s23, st, 0);
    fern_release(base);
    assert_false(fern_tensor_is_contiguous(view));
    set_col(r, "mat", view);
    int64_t p4 = 4, h3 = 3, f2 = 2, em[2] = {0, 2};
    set_col(r, "pix", fern_from_data(FERN_U8, 1, &p4, e->pix));
    set_col(r, "h", fern_from_data(FERN_F16, 1, &h3, e->h));
    set_col(r, "flags", fern_from_data(FERN_BOOL, 1, &f2, e->flags));
    set_col(r, "empty", fern_empty(FERN_F64, 2, em));
    set_col(r, "s8", fern_from_data(FERN_I8, 0, NULL, &e->s8));
    set_col(r, "label", fern_from_data(FERN_I64, 0, NULL, &e->label));
    set_col(r, "extra", fern_scalar(FERN_F32, 1.0)); /* ignored by the writer */
}

static void expect_col(const fern_row *r, int i, const char *name, fern_dtype dt, int ndim, const int64_t *shape,
                       const void *bytes, size_t n, int64_t g)
{
    fern_tensor *t = fern_row_at(r, i);
    assert_non_null(t);
    assert_string_equal(fern_row_name(r, i), name);
    if (fern_tensor_dtype(t) != dt || fern_tensor_ndim(t) != ndim)
        fail_msg("row %lld column %s: dtype/ndim %d/%d, expected %d/%d", (long long)g, name, fern_tensor_dtype(t),
                 fern_tensor_ndim(t), dt, ndim);
    for (int d = 0; d < ndim; d++)
        assert_int_equal(fern_tensor_shape(t)[d], shape[d]);
    assert_int_equal(fern_tensor_nbytes(t), n);
    if (n && memcmp(fern_tensor_data(t), bytes, n) != 0)
        fail_msg("row %lld column %s: bytes differ", (long long)g, name);
}

static void check_row(const fern_row *r, int64_t g)
{
    erow e;
    gen(g, &e);
    assert_int_equal(fern_row_ncols(r), NF);
    int64_t nl = (int64_t)e.name_len, bl = (int64_t)e.blob_len, mat[2] = {2, 3}, p4 = 4, h3 = 3, f2 = 2,
            em[2] = {0, 2};
    expect_col(r, F_I32, "i32", FERN_I32, 0, NULL, &e.i32, 4, g);
    expect_col(r, F_I64, "i64", FERN_I64, 0, NULL, &e.i64, 8, g);
    expect_col(r, F_F32, "f32", FERN_F32, 0, NULL, &e.f32, 4, g);
    expect_col(r, F_F64, "f64", FERN_F64, 0, NULL, &e.f64, 8, g);
    expect_col(r, F_NAME, "name", FERN_U8, 1, &nl, e.name, e.name_len, g);
    expect_col(r, F_BLOB, "blob", FERN_U8, 1, &bl, e.blob, e.blob_len, g);
    expect_col(r, F_MAT, "mat", FERN_F32, 2, mat, e.mat, 24, g);
    expect_col(r, F_PIX, "pix", FERN_U8, 1, &p4, e.pix, 4, g);
    expect_col(r, F_H, "h", FERN_F16, 1, &h3, e.h, 6, g);
    expect_col(r, F_FLAGS, "flags", FERN_BOOL, 1, &f2, e.flags, 2, g);
    expect_col(r, F_EMPTY, "empty", FERN_F64, 2, em, NULL, 0, g);
    expect_col(r, F_S8, "s8", FERN_I8, 0, NULL, &e.s8, 1, g);
    expect_col(r, F_LABEL, "label", FERN_I64, 0, NULL, &e.label, 8, g);
}

/* Write `n` rows of the all-types schema to `path` (odd rows through
 * write_row, even ones through write_values). */
static void write_set(const char *path, int64_t n, int shards, int64_t rows_per_shard, size_t page)
{
    fern_record_schema *s = all_schema();
    const char *idx[] = {"label", "name", "f64", "blob"};
    fern_record_writer_opts o = {shards, rows_per_shard, page, 4, idx};
    fern_record_writer *w = fern_record_writer_open(path, s, &o);
    if (!w)
        fail_msg("writer_open: %s", fern_last_error());
    fern_row *row = fern_row_new();
    erow e;
    fern_record_value v[NF];
    for (int64_t g = 0; g < n; g++) {
        gen(g, &e);
        fern_status st;
        if (g % 2) {
            to_row(&e, row);
            st = fern_record_write_row(w, row);
        } else {
            to_values(&e, v);
            st = fern_record_write_values(w, v);
        }
        if (st != FERN_OK)
            fail_msg("write row %lld: %s", (long long)g, fern_last_error());
    }
    assert_int_equal(fern_record_writer_rows(w), n);
    assert_int_equal(fern_record_writer_set_meta(w, "note", "hello\nworld"), FERN_OK);
    if (fern_record_writer_close(w) != FERN_OK)
        fail_msg("writer_close: %s", fern_last_error());
    fern_row_free(row);
    fern_record_schema_free(s);
}

static fern_record_reader *open_ok(const char *path)
{
    fern_record_reader *r = fern_record_open(path, NULL);
    if (!r)
        fail_msg("open %s: %s", path, fern_last_error());
    return r;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_roundtrip(void **state)
{
    (void)state;
    const int64_t N = 203;
    write_set(tpath("all.frec"), N, 3, 0, 512);
    fern_record_reader *r = open_ok(tpath("all.frec"));
    assert_int_equal(fern_record_rows(r), N);
    assert_int_equal(fern_record_num_shards(r), 3);
    fern_record_info in;
    assert_int_equal(fern_record_get_info(r, &in), FERN_OK);
    assert_int_equal(in.n_index, 4);
    assert_string_equal(in.index_fields[0], "label");
    assert_int_equal(in.by_count, 0);
    assert_true(in.pages > 10); /* small pages: many of them */
    int64_t sum = 0;
    for (int i = 0; i < 3; i++) {
        fern_record_shard_info si;
        assert_int_equal(fern_record_shard(r, i, &si), FERN_OK);
        assert_int_equal(si.rows, N / 3 + (i < N % 3));
        sum += si.rows;
        assert_int_equal(access(si.file, R_OK), 0);
    }
    assert_int_equal(sum, N);
    assert_string_equal(fern_record_meta(r, "note"), "hello\nworld");
    assert_int_equal(fern_record_meta_count(r), 1);
    char sb[1024];
    fern_record_schema_str(fern_record_get_schema(r), sb, sizeof sb);
    assert_non_null(strstr(sb, "mat: f32[2,3]"));
    assert_non_null(strstr(sb, "name: string"));
    fern_row *row = fern_row_new();
    for (int64_t g = 0; g < N; g++) {
        if (fern_record_read(r, g, row) != FERN_OK)
            fail_msg("read %lld: %s", (long long)g, fern_last_error());
        check_row(row, g);
    }
    assert_int_equal(fern_record_verify(r), FERN_OK);
    /* out of range */
    fern_clear_error();
    assert_int_not_equal(fern_record_read(r, N, row), FERN_OK);
    EXPECT_ERR("out of range");
    fern_clear_error();
    fern_row_free(row);
    fern_record_close(r);
    /* files: PATH.00000..2 and PATH.db, no temporaries left */
    assert_int_equal(access(tpath("all.frec.00002"), R_OK), 0);
    assert_int_equal(access(tpath("all.frec.db"), R_OK), 0);
    assert_int_not_equal(access(tpath("all.frec"), F_OK), 0);
}

static void test_by_count_and_open_names(void **state)
{
    (void)state;
    write_set(tpath("cnt.frec"), 50, 0, 16, 0);
    /* open by the database name and by a shard's name */
    fern_record_reader *r = open_ok(tpath("cnt.frec.db"));
    fern_record_info in;
    fern_record_get_info(r, &in);
    assert_int_equal(in.by_count, 1);
    assert_int_equal(in.num_shards, 4); /* 16 + 16 + 16 + 2 */
    fern_record_shard_info si;
    fern_record_shard(r, 3, &si);
    assert_int_equal(si.rows, 2);
    fern_record_close(r);
    r = open_ok(tpath("cnt.frec.00002"));
    fern_row *row = fern_row_new();
    for (int64_t g = 49; g >= 0; g -= 3) {
        assert_int_equal(fern_record_read(r, g, row), FERN_OK);
        check_row(row, g);
    }
    fern_record_loc loc;
    assert_int_equal(fern_record_locate(r, 33, &loc), FERN_OK);
    assert_int_equal(loc.shard, 2);
    fern_row_free(row);
    fern_record_close(r);
    /* one shard: the data file is PATH itself */
    write_set(tpath("one.frec"), 5, 1, 0, 0);
    r = open_ok(tpath("one.frec"));
    fern_record_shard(r, 0, &si);
    assert_string_equal(si.file, tpath("one.frec"));
    fern_record_close(r);
    /* rewriting a path with fewer shards removes the stale ones */
    write_set(tpath("cnt.frec"), 20, 2, 0, 0);
    assert_int_equal(access(tpath("cnt.frec.00001"), F_OK), 0);
    assert_int_not_equal(access(tpath("cnt.frec.00002"), F_OK), 0);
    assert_int_not_equal(access(tpath("cnt.frec.00003"), F_OK), 0);
    write_set(tpath("one.frec"), 4, 2, 0, 0); /* 1 shard -> 2: the old single file goes */
    assert_int_not_equal(access(tpath("one.frec"), F_OK), 0);
    r = open_ok(tpath("one.frec"));
    assert_int_equal(fern_record_rows(r), 4);
    fern_record_close(r);
    write_set(tpath("one.frec"), 3, 1, 0, 0); /* 2 -> 1: the numbered ones go */
    assert_int_not_equal(access(tpath("one.frec.00000"), F_OK), 0);
    assert_int_not_equal(access(tpath("one.frec.00001"), F_OK), 0);
    r = open_ok(tpath("one.frec"));
    assert_int_equal(fern_record_rows(r), 3);
    fern_record_close(r);
    /* an empty set */
    fern_record_schema *s = all_schema();
    fern_record_writer *w = fern_record_writer_open(tpath("empty.frec"), s, NULL);
    assert_non_null(w);
    assert_int_equal(fern_record_writer_close(w), FERN_OK);
    r = open_ok(tpath("empty.frec"));
    assert_int_equal(fern_record_rows(r), 0);
    fern_dataset *ds = fern_dataset_record_reader(r);
    assert_int_equal(fern_dataset_size(ds), 0);
    fern_dataset_release(ds);
    fern_record_close(r);
    fern_record_schema_free(s);
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t xorshift(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_random_access(void **state)
{
    (void)state;
    const int64_t N = 203;
    /* a cache of 1 byte: every page is evicted at once, reads still work */
    fern_record_reader_opts ro = {1};
    fern_record_reader *r = fern_record_open(tpath("all.frec"), &ro);
    assert_non_null(r);
    fern_row *row = fern_row_new();
    for (int k = 0; k < 500; k++) {
        int64_t g = (int64_t)(xorshift() % (uint64_t)N);
        assert_int_equal(fern_record_read(r, g, row), FERN_OK);
        check_row(row, g);
        fern_record_loc loc;
        assert_int_equal(fern_record_locate(r, g, &loc), FERN_OK);
        assert_int_equal(loc.shard, g % 3);
        assert_true(loc.size > 0);
        assert_true(loc.file_offset > 0);
    }
    fern_row_free(row);
    fern_record_close(r);
}

/* Several threads reading random rows through a cache of about two pages
 * (rows come from the cache, from verified pages that left it, or from
 * fresh page loads, concurrently). */
typedef struct {
    fern_record_reader *r;
    uint64_t seed;
    int bad;
} reader_job;

static int row_matches(const fern_row *r, int64_t g)
{
    erow e;
    gen(g, &e);
    fern_tensor *t = fern_row_get(r, "i64"), *m = fern_row_get(r, "mat"), *nm = fern_row_get(r, "name");
    return t && m && nm && *(int64_t *)fern_tensor_data(t) == e.i64 &&
           memcmp(fern_tensor_data(m), e.mat, 24) == 0 && (size_t)fern_tensor_numel(nm) == e.name_len &&
           (e.name_len == 0 || memcmp(fern_tensor_data(nm), e.name, e.name_len) == 0);
}

static void *reader_thread(void *arg)
{
    reader_job *j = arg;
    fern_row *row = fern_row_new();
    uint64_t x = j->seed;
    for (int k = 0; k < 3000; k++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int64_t g = (int64_t)((x >> 33) % 203);
        if (fern_record_read(j->r, g, row) != FERN_OK || !row_matches(row, g))
            j->bad++;
    }
    fern_row_free(row);
    return NULL;
}

static void test_concurrent_reads(void **state)
{
    (void)state;
    fern_record_reader_opts ro = {1200};
    fern_record_reader *r = fern_record_open(tpath("all.frec"), &ro);
    assert_non_null(r);
    pthread_t th[4];
    reader_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (reader_job){r, (uint64_t)i + 1, 0};
        assert_int_equal(pthread_create(&th[i], NULL, reader_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].bad, 0);
    }
    fern_record_close(r);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_index_lookup(void **state)
{
    (void)state;
    const int64_t N = 203;
    fern_record_reader *r = open_ok(tpath("all.frec"));
    int64_t *rows = NULL;
    erow e;
    for (int label = 0; label < 11; label++) {
        int64_t n = fern_record_lookup_int(r, "label", label, &rows);
        assert_true(n >= 0);
        int64_t k = 0;
        for (int64_t g = 0; g < N; g++)
            if (g % 10 == label) {
                assert_true(k < n);
                assert_int_equal(rows[k], g);
                k++;
            }
        assert_int_equal(k, n);
        free(rows);
    }
    /* strings */
    int64_t n = fern_record_lookup_str(r, "name", "row-4", &rows);
    int64_t want = 0;
    for (int64_t g = 0; g < N; g++) {
        gen(g, &e);
        if (e.name_len == 5 && memcmp(e.name, "row-4", 5) == 0)
            want++;
    }
    assert_true(want > 0);
    assert_int_equal(n, want);
    for (int64_t i = 0; i < n; i++) {
        gen(rows[i], &e);
        assert_memory_equal(e.name, "row-4", 5);
    }
    free(rows);
    n = fern_record_lookup_str(r, "name", "", &rows); /* empty strings: g % 13 == 0 */
    assert_int_equal(n, (N + 12) / 13);
    free(rows);
    /* floats and bytes */
    fern_record_value v = {.f = sqrt(9.0) * -1};
    n = fern_record_lookup(r, "f64", &v, &rows);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0], 9);
    free(rows);
    gen(38, &e);
    fern_record_value bv = {.data = e.blob, .size = e.blob_len};
    n = fern_record_lookup(r, "blob", &bv, &rows);
    assert_true(n >= 1);
    int found = 0;
    for (int64_t i = 0; i < n; i++)
        found |= rows[i] == 38;
    assert_true(found);
    free(rows);
    /* an expression */
    n = fern_record_query(r, "label IN (1, 3) AND __row < 100", &rows);
    assert_int_equal(n, 20);
    qsort(rows, (size_t)n, sizeof *rows, cmp_i64);
    for (int64_t i = 0; i < n; i++)
        assert_true(rows[i] % 10 == 1 || rows[i] % 10 == 3);
    free(rows);
    /* errors */
    fern_clear_error();
    assert_int_equal(fern_record_lookup_int(r, "i32", 3, &rows), -1);
    EXPECT_ERR("not indexed");
    assert_null(rows);
    fern_clear_error();
    assert_int_equal(fern_record_query(r, "label = 1; DROP TABLE rows", &rows), -1);
    fern_clear_error();
    assert_int_equal(fern_record_query(r, "label = (SELECT 1) OR nosuchcolumn = 2", &rows), -1);
    EXPECT_ERR("bad expression");
    fern_clear_error();
    fern_record_close(r);
}

/* ---- data-engine source ------------------------------------------------------------------------ */

static int double_mat(void *ctx, fern_row *row, uint64_t seed)
{
    (void)ctx;
    fern_tensor *m = fern_row_get(row, "mat");
    if (!m)
        return FERN_ERR_INVALID;
    int64_t sh[2] = {2, 3};
    fern_tensor *o = fern_empty(FERN_F32, 2, sh);
    float *po = fern_tensor_data(o);
    const float *pm = fern_tensor_data(m);
    for (int i = 0; i < 6; i++)
        po[i] = pm[i] * 2 + (float)(seed % 3);
    fern_row_set(row, "mat", o);
    fern_release(o);
    return FERN_OK;
}

/* All batches of one epoch of record -> shuffle -> map_fn(workers) -> batch(7). */
static int collect_batches(int workers, uint64_t seed, fern_tensor **ids, fern_tensor **mats, int max)
{
    fern_dataset *ds = fern_dataset_record(tpath("all.frec"), NULL);
    assert_non_null(ds);
    assert_true(fern_dataset_is_random_access(ds));
    const char *keep[] = {"i32", "mat", "label"};
    ds = fern_dataset_project(ds, 3, keep);
    ds = fern_dataset_shuffle(ds, 1000);
    ds = fern_dataset_map_fn(ds, double_mat, NULL, NULL, workers, 0, NULL);
    ds = fern_dataset_batch(ds, 7, 0);
    if (!ds)
        fail_msg("pipeline: %s", fern_last_error());
    fern_data_iter_opts o = {seed, 0, 4};
    fern_data_iter *it = fern_data_iter_new(ds, &o);
    assert_non_null(it);
    fern_row *b = fern_row_new();
    int n = 0, st;
    while ((st = fern_data_iter_next(it, b)) == FERN_OK) {
        assert_true(n < max);
        ids[n] = fern_retain(fern_row_get(b, "i32"));
        mats[n] = fern_retain(fern_row_get(b, "mat"));
        n++;
    }
    if (st != FERN_DATA_END)
        fail_msg("iterate: %s", fern_last_error());
    fern_row_free(b);
    fern_data_iter_free(it);
    fern_dataset_release(ds);
    return n;
}

static void test_dataset_shuffle_workers(void **state)
{
    (void)state;
    enum { MAXB = 64 };
    fern_tensor *id1[MAXB], *m1[MAXB], *id2[MAXB], *m2[MAXB], *id3[MAXB], *m3[MAXB], *id0[MAXB], *m0[MAXB];
    int n1 = collect_batches(1, 42, id1, m1, MAXB);
    int n2 = collect_batches(2, 42, id2, m2, MAXB);
    int n0 = collect_batches(0, 42, id0, m0, MAXB); /* in the pulling thread */
    int n3 = collect_batches(1, 7, id3, m3, MAXB);
    assert_int_equal(n0, n1);
    assert_int_equal(n1, (203 + 6) / 7);
    assert_int_equal(n1, n2);
    assert_int_equal(n1, n3);
    int seen[203] = {0}, differs = 0, identity = 1, pos = 0;
    for (int b = 0; b < n1; b++) {
        assert_int_equal(fern_tensor_nbytes(id1[b]), fern_tensor_nbytes(id2[b]));
        assert_memory_equal(fern_tensor_data(id1[b]), fern_tensor_data(id2[b]), fern_tensor_nbytes(id1[b]));
        assert_memory_equal(fern_tensor_data(m1[b]), fern_tensor_data(m2[b]), fern_tensor_nbytes(m1[b]));
        assert_memory_equal(fern_tensor_data(id1[b]), fern_tensor_data(id0[b]), fern_tensor_nbytes(id1[b]));
        assert_memory_equal(fern_tensor_data(m1[b]), fern_tensor_data(m0[b]), fern_tensor_nbytes(m1[b]));
        const int32_t *ids = fern_tensor_data(id1[b]);
        const float *mt = fern_tensor_data(m1[b]);
        for (int64_t k = 0; k < fern_tensor_dim(id1[b], 0); k++, pos++) {
            int g = (ids[k] + 50) / 7;
            assert_true(g >= 0 && g < 203);
            seen[g]++;
            identity &= g == pos;
            erow e;
            gen(g, &e);
            double d = (double)mt[k * 6] - (double)e.mat[0] * 2; /* + seed % 3 of the row */
            assert_true(fabs(d - round(d)) < 1e-5 && round(d) >= 0 && round(d) <= 2);
        }
        differs |= fern_tensor_nbytes(id1[b]) != fern_tensor_nbytes(id3[b]) ||
                   memcmp(fern_tensor_data(id1[b]), fern_tensor_data(id3[b]), fern_tensor_nbytes(id1[b])) != 0;
    }
    for (int g = 0; g < 203; g++)
        assert_int_equal(seen[g], 1); /* a permutation */
    assert_false(identity);
    assert_true(differs); /* another seed, another order */
    for (int b = 0; b < n1; b++) {
        fern_release(id1[b]), fern_release(m1[b]);
        fern_release(id2[b]), fern_release(m2[b]);
        fern_release(id3[b]), fern_release(m3[b]);
        fern_release(id0[b]), fern_release(m0[b]);
    }
}

static void test_dataset_sharding(void **state)
{
    (void)state;
    int seen[203] = {0};
    for (int k = 0; k < 3; k++) {
        fern_dataset *ds = fern_dataset_shard(fern_dataset_record(tpath("all.frec"), NULL), 3, k);
        assert_non_null(ds);
        assert_int_equal(fern_dataset_size(ds), 203 / 3 + (k < 203 % 3));
        fern_data_iter_opts o = {1, 0, -1};
        fern_data_iter *it = fern_data_iter_new(ds, &o);
        fern_row *r = fern_row_new();
        int64_t i = 0;
        int st;
        while ((st = fern_data_iter_next(it, r)) == FERN_OK) {
            int64_t g = 3 * i + k;
            check_row(r, g);
            seen[g]++;
            i++;
        }
        assert_int_equal(st, FERN_DATA_END);
        assert_int_equal(i, fern_dataset_size(ds));
        fern_row_free(r);
        fern_data_iter_free(it);
        fern_dataset_release(ds);
    }
    for (int g = 0; g < 203; g++)
        assert_int_equal(seen[g], 1);
    /* a sequential pass (next without get) in row order, twice */
    fern_dataset *ds = fern_dataset_record(tpath("all.frec"), NULL);
    assert_string_equal(fern_dataset_name(ds), "record");
    fern_data_iter *it = fern_data_iter_new(ds, NULL);
    fern_row *r = fern_row_new();
    for (int ep = 0; ep < 2; ep++) {
        int64_t g = 0;
        while (fern_data_iter_next(it, r) == FERN_OK)
            check_row(r, g++);
        assert_int_equal(g, 203);
        fern_data_iter_reset(it);
    }
    fern_row_free(r);
    fern_data_iter_free(it);
    fern_dataset_release(ds);
}

/* ---- corruption ------------------------------------------------------------------------------------ */

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        assert_int_equal(fwrite(buf, 1, n, b), n);
    fclose(a);
    fclose(b);
}

static void poke(const char *path, long off, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, off, SEEK_SET), 0);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

static long file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

/* A fresh single-shard copy of the set "c.frec". */
static void fresh_copy(void)
{
    write_set(tpath("c.frec"), 40, 1, 0, 256);
}

static void test_corrupt_page(void **state)
{
    (void)state;
    fresh_copy();
    fern_record_reader *r = open_ok(tpath("c.frec"));
    fern_record_loc loc;
    assert_int_equal(fern_record_locate(r, 21, &loc), FERN_OK);
    fern_record_close(r);
    unsigned char x = 0xA5;
    poke(tpath("c.frec"), (long)loc.file_offset + 2, &x, 1);
    r = open_ok(tpath("c.frec")); /* header and footer are intact */
    fern_row *row = fern_row_new();
    fern_clear_error();
    assert_int_equal(fern_record_read(r, 0, row), FERN_OK); /* other pages still read */
    assert_int_not_equal(fern_record_read(r, 21, row), FERN_OK);
    char want[600];
    snprintf(want, sizeof want, "%s: corrupt page %lld at byte offset %lld", tpath("c.frec"), (long long)loc.page,
             (long long)(loc.file_offset - loc.offset));
    EXPECT_ERR(want);
    EXPECT_ERR("CRC-32");
    fern_clear_error();
    assert_int_not_equal(fern_record_verify(r), FERN_OK);
    EXPECT_ERR("corrupt page");
    fern_clear_error();
    /* through the data engine: next() reports it */
    fern_dataset *ds = fern_dataset_record_reader(r);
    fern_data_iter *it = fern_data_iter_new(ds, NULL);
    int st;
    int64_t n = 0;
    while ((st = fern_data_iter_next(it, row)) == FERN_OK)
        n++;
    assert_true(st > 0);
    assert_true(n <= 21);
    EXPECT_ERR("corrupt page");
    fern_clear_error();
    fern_data_iter_free(it);
    fern_dataset_release(ds);
    fern_record_close(r);
    fern_row_free(row);
}

static void test_corrupt_header_footer(void **state)
{
    (void)state;
    /* a schema byte in the header */
    fresh_copy();
    unsigned char x = 'Z';
    poke(tpath("c.frec"), 50, &x, 1);
    fern_clear_error();
    assert_null(fern_record_open(tpath("c.frec"), NULL));
    EXPECT_ERR("corrupt header");
    EXPECT_ERR(tpath("c.frec"));
    fern_clear_error();
    /* a byte of the page table */
    fresh_copy();
    long sz = file_size(tpath("c.frec"));
    poke(tpath("c.frec"), sz - 32 - 20, &x, 1);
    assert_null(fern_record_open(tpath("c.frec"), NULL));
    EXPECT_ERR("corrupt footer");
    EXPECT_ERR("byte offset");
    fern_clear_error();
}

static void test_truncated(void **state)
{
    (void)state;
    fresh_copy();
    long sz = file_size(tpath("c.frec"));
    long cuts[] = {sz - 1, sz - 40, sz / 2, 40, 10, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        fresh_copy();
        assert_int_equal(truncate(tpath("c.frec"), cuts[i]), 0);
        fern_clear_error();
        assert_null(fern_record_open(tpath("c.frec"), NULL));
        EXPECT_ERR("truncated");
        EXPECT_ERR(tpath("c.frec"));
        fern_clear_error();
    }
}

static void test_bad_magic(void **state)
{
    (void)state;
    fresh_copy();
    poke(tpath("c.frec"), 0, "NOTREC!!", 8);
    fern_clear_error();
    assert_null(fern_record_open(tpath("c.frec"), NULL));
    EXPECT_ERR("bad magic at byte offset 0");
    EXPECT_ERR(tpath("c.frec"));
    fern_clear_error();
    /* not a record file and no .db */
    FILE *f = fopen(tpath("junk.bin"), "wb");
    fputs("hello, this is not a record file at all", f);
    fclose(f);
    assert_null(fern_record_open(tpath("junk.bin"), NULL));
    EXPECT_ERR("bad magic");
    fern_clear_error();
    assert_null(fern_record_open(tpath("nothing-here"), NULL));
    EXPECT_ERR("cannot open");
    fern_clear_error();
    /* a database that is not SQLite */
    f = fopen(tpath("junk.db"), "wb");
    fputs("this is not sqlite either, just some text bytes, long enough to look like a page", f);
    fclose(f);
    assert_null(fern_record_open(tpath("junk.db"), NULL));
    EXPECT_ERR("index database");
    fern_clear_error();
}

static void db_exec_sql(const char *db, const char *sql)
{
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    char *err = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
    sqlite3_close(h);
}

static void test_schema_mismatch(void **state)
{
    (void)state;
    /* the database's schema differs from the shard's */
    fresh_copy();
    fern_record_schema *s = all_schema_label(FERN_REC_INT32);
    unsigned char enc[2048];
    size_t n = fern__rec_schema_encode(s, enc);
    char sql[6000], *p = sql;
    p += sprintf(p, "UPDATE meta SET value = x'");
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%02x", enc[i]);
    sprintf(p, "' WHERE key = 'schema'");
    db_exec_sql(tpath("c.frec.db"), sql);
    fern_clear_error();
    assert_null(fern_record_open(tpath("c.frec"), NULL));
    EXPECT_ERR("schema mismatch");
    EXPECT_ERR("label: int32");
    fern_clear_error();
    fern_record_schema_free(s);
    /* a shard of another set under this set's name */
    write_set(tpath("a.frec"), 10, 2, 0, 0);
    write_set(tpath("b.frec"), 10, 2, 0, 0);
    copy_file(tpath("b.frec.00001"), tpath("a.frec.00001"));
    assert_null(fern_record_open(tpath("a.frec"), NULL));
    EXPECT_ERR("another record set");
    fern_clear_error();
    /* the database disagreeing with the shards */
    write_set(tpath("d.frec"), 30, 2, 0, 0);
    db_exec_sql(tpath("d.frec.db"), "UPDATE shards SET rows = 14 WHERE id = 0");
    assert_null(fern_record_open(tpath("d.frec"), NULL));
    EXPECT_ERR("index database");
    fern_clear_error();
    write_set(tpath("d.frec"), 30, 2, 0, 0);
    db_exec_sql(tpath("d.frec.db"), "UPDATE rows SET __shard = 1 - __shard WHERE __row = 5");
    fern_record_reader *r = open_ok(tpath("d.frec"));
    int64_t *rows;
    assert_int_equal(fern_record_lookup_int(r, "label", 5, &rows), -1);
    EXPECT_ERR("shard files hold it");
    fern_clear_error();
    fern_record_close(r);
    write_set(tpath("d.frec"), 30, 2, 0, 0);
    db_exec_sql(tpath("d.frec.db"), "UPDATE shards SET file = '../etc/passwd' WHERE id = 1");
    assert_null(fern_record_open(tpath("d.frec"), NULL));
    EXPECT_ERR("plain names");
    fern_clear_error();
}

static void test_writer_errors(void **state)
{
    (void)state;
    fern_record_schema *s = all_schema();
    fern_clear_error();
    assert_int_not_equal(fern_record_schema_add(s, "label", FERN_REC_INT32), FERN_OK);
    EXPECT_ERR("duplicate");
    fern_clear_error();
    assert_int_not_equal(fern_record_schema_add(s, "__row", FERN_REC_INT32), FERN_OK);
    fern_clear_error();
    assert_int_not_equal(fern_record_schema_add(s, "x", FERN_REC_ARRAY), FERN_OK);
    fern_clear_error();
    int64_t neg = -1;
    assert_int_not_equal(fern_record_schema_add_array(s, "y", FERN_F32, 1, &neg), FERN_OK);
    fern_clear_error();
    const char *bad_idx[] = {"mat"};
    fern_record_writer_opts o = {0, 0, 0, 1, bad_idx};
    assert_null(fern_record_writer_open(tpath("e.frec"), s, &o));
    EXPECT_ERR("arrays cannot be indexed");
    fern_clear_error();
    const char *no_idx[] = {"nope"};
    o.index_fields = no_idx;
    assert_null(fern_record_writer_open(tpath("e.frec"), s, &o));
    EXPECT_ERR("no such field");
    fern_clear_error();
    fern_record_writer_opts both = {2, 10, 0, 0, NULL};
    assert_null(fern_record_writer_open(tpath("e.frec"), s, &both));
    fern_clear_error();
    assert_null(fern_record_writer_open(tpath("no-such-dir/e.frec"), s, NULL));
    EXPECT_ERR("no-such-dir");
    fern_clear_error();

    /* rows that do not match the schema are refused; the writer goes on */
    fern_record_writer *w = fern_record_writer_open(tpath("e.frec"), s, NULL);
    assert_non_null(w);
    fern_row *row = fern_row_new();
    erow e;
    gen(3, &e);
    to_row(&e, row);
    set_col(row, "mat", fern_scalar(FERN_F32, 1)); /* wrong shape */
    assert_int_not_equal(fern_record_write_row(w, row), FERN_OK);
    EXPECT_ERR("mat: f32[2,3]");
    fern_clear_error();
    to_row(&e, row);
    int64_t sh[2] = {2, 3};
    set_col(row, "mat", fern_empty(FERN_F64, 2, sh)); /* wrong dtype */
    assert_int_not_equal(fern_record_write_row(w, row), FERN_OK);
    fern_clear_error();
    to_row(&e, row);
    set_col(row, "label", fern_scalar(FERN_F32, 2)); /* float for an int field */
    assert_int_not_equal(fern_record_write_row(w, row), FERN_OK);
    fern_clear_error();
    to_row(&e, row);
    fern_row *partial = fern_row_new();
    set_col(partial, "i32", fern_scalar(FERN_I32, 1));
    assert_int_not_equal(fern_record_write_row(w, partial), FERN_OK);
    EXPECT_ERR("no column");
    fern_clear_error();
    fern_record_value v[NF];
    to_values(&e, v);
    v[F_I32].i = (int64_t)1 << 40;
    assert_int_not_equal(fern_record_write_values(w, v), FERN_OK);
    EXPECT_ERR("out of range");
    fern_clear_error();
    assert_int_equal(fern_record_write_row(w, row), FERN_OK);
    assert_int_equal(fern_record_writer_rows(w), 1);
    to_values(&e, v);
    v[F_F32].f = 1e300; /* saturates to +inf */
    assert_int_equal(fern_record_write_values(w, v), FERN_OK);
    /* nothing is visible before close */
    assert_int_not_equal(access(tpath("e.frec"), F_OK), 0);
    assert_int_not_equal(access(tpath("e.frec.db"), F_OK), 0);
    assert_int_equal(fern_record_writer_close(w), FERN_OK);
    fern_record_reader *r = open_ok(tpath("e.frec"));
    assert_int_equal(fern_record_read(r, 0, row), FERN_OK);
    check_row(row, 3);
    assert_int_equal(fern_record_read(r, 1, row), FERN_OK);
    assert_true(isinf(*(float *)fern_tensor_data(fern_row_get(row, "f32"))));
    fern_record_close(r);

    /* abort keeps the previous set and leaves no temporaries */
    w = fern_record_writer_open(tpath("e.frec"), s, NULL);
    to_values(&e, v);
    assert_int_equal(fern_record_write_values(w, v), FERN_OK);
    assert_int_equal(fern_record_write_values(w, v), FERN_OK);
    fern_record_writer_abort(w);
    r = open_ok(tpath("e.frec"));
    assert_int_equal(fern_record_rows(r), 2);
    fern_record_close(r);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q '\\.tmp\\.'", g_dir);
    assert_int_not_equal(system(cmd), 0);
    fern_row_free(row);
    fern_row_free(partial);
    fern_record_schema_free(s);
}

static void test_write_dataset(void **state)
{
    (void)state;
    int64_t shape[3] = {10, 2, 2}, n = 10;
    float x[40];
    int64_t y[10];
    for (int i = 0; i < 40; i++)
        x[i] = (float)i * 0.5f;
    for (int i = 0; i < 10; i++)
        y[i] = 9 - i;
    fern_tensor *tx = fern_from_data(FERN_F32, 3, shape, x), *ty = fern_from_data(FERN_I64, 1, &n, y);
    const char *names[] = {"x", "y"};
    fern_tensor *ts[] = {tx, ty};
    fern_dataset *ds = fern_dataset_from_tensors(2, names, ts);
    const char *idx[] = {"y"};
    fern_record_writer_opts o = {2, 0, 0, 1, idx};
    assert_int_equal(fern_record_write_dataset(tpath("wd.frec"), ds, NULL, &o, NULL, NULL), FERN_OK);
    fern_record_reader *r = open_ok(tpath("wd.frec"));
    const fern_record_field *f = fern_record_schema_field(fern_record_get_schema(r), 0);
    assert_int_equal(f->type, FERN_REC_ARRAY);
    assert_int_equal(f->ndim, 2);
    assert_int_equal(fern_record_schema_field(fern_record_get_schema(r), 1)->type, FERN_REC_INT64);
    fern_row *row = fern_row_new();
    for (int i = 0; i < 10; i++) {
        assert_int_equal(fern_record_read(r, i, row), FERN_OK);
        assert_memory_equal(fern_tensor_data(fern_row_get(row, "x")), x + 4 * i, 16);
        assert_int_equal(*(int64_t *)fern_tensor_data(fern_row_get(row, "y")), 9 - i);
    }
    int64_t *rows;
    assert_int_equal(fern_record_lookup_int(r, "y", 2, &rows), 1);
    assert_int_equal(rows[0], 7);
    free(rows);
    fern_record_close(r);
    fern_row_free(row);
    fern_release(tx);
    fern_release(ty);
}

/* ---- the command --------------------------------------------------------------------------------- */

static int run_cmd(const char *a0, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    fflush(stdout);
    return fern_cmd_record(argc, argv);
}

static void test_cli(void **state)
{
    (void)state;
    assert_int_equal(run_cmd("record", "--help", NULL), 0);
    assert_int_equal(run_cmd("record", "info", "--help", NULL), 0);
    assert_int_equal(run_cmd("record", "dump", "--help", NULL), 0);
    assert_int_equal(run_cmd("record", "convert", "--help", NULL), 0);
    assert_int_equal(run_cmd("record", NULL), 2);
    assert_int_equal(run_cmd("record", "frobnicate", NULL), 2);
    assert_int_equal(run_cmd("record", "info", NULL), 2);
    assert_int_equal(run_cmd("record", "info", "--bogus", tpath("all.frec"), NULL), 2);
    assert_int_equal(run_cmd("record", "dump", tpath("all.frec"), "--limit", "x", NULL), 2);
    assert_int_equal(run_cmd("record", "convert", "--from", "idx", NULL), 2);
    assert_int_equal(run_cmd("record", "convert", "--from", "nope", "--input", "x", "--output", "y", NULL), 2);
    assert_int_equal(run_cmd("record", "info", tpath("all.frec"), "--verify", NULL), 0);
    assert_int_equal(run_cmd("record", "dump", tpath("all.frec"), "--limit", "3", "--start", "16", NULL), 0);
    assert_int_equal(run_cmd("record", "info", tpath("nothing"), NULL), 1);
    /* csv */
    FILE *f = fopen(tpath("t.csv"), "w");
    fputs("a,b,species\n1.5,2,0\n3,4.25,1\n-1,0,1\n", f);
    fclose(f);
    assert_int_equal(run_cmd("record", "convert", "--from", "csv", "--input", tpath("t.csv"), "--output",
                             tpath("csv.frec"), "--label-column", "species", "--index", "label", "--quiet", NULL),
                     0);
    fern_record_reader *r = open_ok(tpath("csv.frec"));
    assert_int_equal(fern_record_rows(r), 3);
    fern_row *row = fern_row_new();
    assert_int_equal(fern_record_read(r, 1, row), FERN_OK);
    assert_true(fern_tensor_get_flat(fern_row_get(row, "b"), 0) == 4.25);
    assert_int_equal(*(int64_t *)fern_tensor_data(fern_row_get(row, "label")), 1);
    assert_non_null(fern_record_meta(r, "source"));
    assert_int_equal(strncmp(fern_record_meta(r, "source"), "csv:", 4), 0);
    fern_row_free(row);
    fern_record_close(r);
    assert_int_equal(run_cmd("record", "dump", tpath("csv.frec"), NULL), 0);
}

static void test_cli_cifar_folder(void **state)
{
    (void)state;
    /* CIFAR-10: 5 train batches of 2 records each (label, R, G, B planes) */
    assert_int_equal(mkdir(tpath("cifar"), 0755), 0);
    static unsigned char rec[2][3073];
    for (int b = 1; b <= 5; b++) {
        char name[64];
        snprintf(name, sizeof name, "cifar/data_batch_%d.bin", b);
        FILE *f = fopen(tpath(name), "wb");
        assert_non_null(f);
        for (int k = 0; k < 2; k++) {
            rec[k][0] = (unsigned char)((b * 2 + k) % 10);
            for (int i = 0; i < 3072; i++)
                rec[k][1 + i] = (unsigned char)(i * 7 + b * 13 + k);
            assert_int_equal(fwrite(rec[k], 1, 3073, f), 3073);
        }
        fclose(f);
    }
    assert_int_equal(run_cmd("record", "convert", "--from", "cifar10", "--input", tpath("cifar"), "--output",
                             tpath("cifar.frec"), "--shard-rows", "3", "--index", "label", "--quiet", NULL),
                     0);
    fern_record_reader *r = open_ok(tpath("cifar.frec"));
    assert_int_equal(fern_record_rows(r), 10);
    assert_int_equal(fern_record_num_shards(r), 4);
    fern_row *row = fern_row_new();
    assert_int_equal(fern_record_read(r, 9, row), FERN_OK); /* batch 5, record 1 */
    fern_tensor *im = fern_row_get(row, "image");
    assert_int_equal(fern_tensor_ndim(im), 3);
    assert_int_equal(fern_tensor_dim(im, 2), 3);
    const unsigned char *px = fern_tensor_data(im);
    for (int y = 0; y < 32; y += 5)
        for (int x = 0; x < 32; x += 3)
            for (int c = 0; c < 3; c++)
                assert_int_equal(px[(y * 32 + x) * 3 + c], (unsigned char)((c * 1024 + y * 32 + x) * 7 + 5 * 13 + 1));
    assert_int_equal(*(int64_t *)fern_tensor_data(fern_row_get(row, "label")), 1);
    fern_record_close(r);

    /* image folder: encoded files stored as bytes, class names in the metadata */
    assert_int_equal(mkdir(tpath("imgs"), 0755), 0);
    assert_int_equal(mkdir(tpath("imgs/cat"), 0755), 0);
    assert_int_equal(mkdir(tpath("imgs/dog"), 0755), 0);
    int64_t sh[3] = {4, 5, 3};
    unsigned char pix[60];
    for (int i = 0; i < 60; i++)
        pix[i] = (unsigned char)(i * 4);
    fern_tensor *img = fern_from_data(FERN_U8, 3, sh, pix);
    assert_int_equal(fern_image_write(tpath("imgs/cat/a.png"), img), FERN_OK);
    assert_int_equal(fern_image_write(tpath("imgs/dog/b.png"), img), FERN_OK);
    assert_int_equal(fern_image_write(tpath("imgs/dog/c.png"), img), FERN_OK);
    fern_release(img);
    assert_int_equal(run_cmd("record", "convert", "--from", "image-folder", "--input", tpath("imgs"), "--output",
                             tpath("imgs.frec"), "--index", "label", "--quiet", NULL),
                     0);
    r = open_ok(tpath("imgs.frec"));
    assert_int_equal(fern_record_rows(r), 3);
    assert_int_equal(fern_record_schema_field(fern_record_get_schema(r), 0)->type, FERN_REC_BYTES);
    assert_string_equal(fern_record_meta(r, "classes"), "cat\ndog");
    int64_t *rows;
    assert_int_equal(fern_record_lookup_int(r, "label", 1, &rows), 2);
    assert_int_equal(rows[0], 1);
    free(rows);
    assert_int_equal(fern_record_read(r, 2, row), FERN_OK);
    fern_tensor *enc = fern_row_get(row, "image");
    FILE *f = fopen(tpath("imgs/dog/c.png"), "rb");
    assert_non_null(f);
    static unsigned char file[4096];
    size_t n = fread(file, 1, sizeof file, f);
    fclose(f);
    assert_int_equal((size_t)fern_tensor_numel(enc), n);
    assert_memory_equal(fern_tensor_data(enc), file, n);
    fern_tensor *dec = fern_image_decode(fern_tensor_data(enc), n, "c.png", NULL);
    assert_non_null(dec);
    assert_memory_equal(fern_tensor_data(dec), pix, 60);
    fern_release(dec);
    assert_int_equal(run_cmd("record", "dump", tpath("imgs.frec"), NULL), 0);
    fern_record_close(r);
    fern_row_free(row);
}

/* ---- real Fashion-MNIST ----------------------------------------------------------------------------- */

#define FMNIST "/usr/share/datasets/fashion-mnist"

static void test_fashion_mnist(void **state)
{
    (void)state;
    if (access(FMNIST "/train-images-idx3-ubyte.gz", R_OK) != 0 && access(FMNIST "/train-images-idx3-ubyte", R_OK) != 0)
        skip();
    assert_int_equal(run_cmd("record", "convert", "--from", "idx", "--input", FMNIST, "--output", tpath("fm.frec"),
                             "--shards", "2", "--index", "label", NULL),
                     0);
    fern_record_reader *r = open_ok(tpath("fm.frec"));
    assert_int_equal(fern_record_rows(r), 60000);
    assert_int_equal(fern_record_num_shards(r), 2);
    fern_dataset *idx = fern_dataset_mnist(FMNIST, "train");
    assert_non_null(idx);
    int64_t picks[] = {0, 1, 2, 777, 12345, 30000, 45001, 59998, 59999};
    int np = (int)(sizeof picks / sizeof picks[0]);
    fern_dataset *sub = fern_dataset_subset(idx, np, picks);
    fern_data_iter_opts o = {0, 0, -1};
    fern_data_iter *it = fern_data_iter_new(sub, &o);
    fern_row *a = fern_row_new(), *b = fern_row_new();
    for (int i = 0; i < np; i++) {
        assert_int_equal(fern_data_iter_next(it, a), FERN_OK);
        assert_int_equal(fern_record_read(r, picks[i], b), FERN_OK);
        fern_tensor *ia = fern_row_get(a, "image"), *ib = fern_row_get(b, "image");
        assert_int_equal(fern_tensor_ndim(ib), 3);
        assert_int_equal(fern_tensor_dim(ib, 0), 28);
        assert_int_equal(fern_tensor_dim(ib, 2), 1);
        assert_int_equal(fern_tensor_dtype(ib), FERN_U8);
        unsigned char buf[784];
        assert_int_equal(fern_tensor_copy_to(ia, buf, sizeof buf), FERN_OK);
        assert_memory_equal(buf, fern_tensor_data(ib), 784);
        assert_int_equal((int64_t)fern_tensor_get_flat(fern_row_get(a, "label"), 0),
                         *(int64_t *)fern_tensor_data(fern_row_get(b, "label")));
    }
    /* label lookups: Fashion-MNIST has 6000 of each class */
    int64_t *rows;
    assert_int_equal(fern_record_lookup_int(r, "label", 3, &rows), 6000);
    for (int k = 0; k < 6000; k += 997) {
        assert_int_equal(fern_record_read(r, rows[k], b), FERN_OK);
        assert_int_equal(*(int64_t *)fern_tensor_data(fern_row_get(b, "label")), 3);
    }
    free(rows);
    assert_int_equal(run_cmd("record", "info", tpath("fm.frec"), NULL), 0);
    fern_row_free(a);
    fern_row_free(b);
    fern_data_iter_free(it);
    fern_dataset_release(sub);
    fern_record_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_by_count_and_open_names),
        cmocka_unit_test(test_random_access),
        cmocka_unit_test(test_concurrent_reads),
        cmocka_unit_test(test_index_lookup),
        cmocka_unit_test(test_dataset_shuffle_workers),
        cmocka_unit_test(test_dataset_sharding),
        cmocka_unit_test(test_corrupt_page),
        cmocka_unit_test(test_corrupt_header_footer),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_schema_mismatch),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_write_dataset),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_cli_cifar_folder),
        cmocka_unit_test(test_fashion_mnist),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
