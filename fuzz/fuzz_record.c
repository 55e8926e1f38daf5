/* Fuzz target: the record reader (src/data/record_reader.c) on damaged
 * shard files and index databases. Must never crash, hang or leak.
 *
 * A valid template set (2 shards, every field type, small pages, indexes
 * on "label" and "name") is written once into a private temp directory.
 * Each input then rebuilds the set from the template and damages one file:
 *   byte 0, bits 0-1: the file: 0 shard 0, 1 the index database, 2 shard 1
 *           bit 2:    skip CRC comparisons (so the parsers behind them run)
 *           bit 3:    raw: the rest of the input is the whole file;
 *                     else patch: u32 offset, u16 truncation, then bytes
 *                     written over the template at offset % size (the file
 *                     is cut to that many bytes when truncation is nonzero)
 * and opens it, reads every row, verifies, looks values up, runs a query
 * and iterates it as a dataset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "data/record_internal.h"

static char g_dir[64];
static unsigned char *g_tpl[3]; /* shard 0, db, shard 1 */
static size_t g_tpl_n[3];
static char g_path[3][160];
static char g_set[128];

static int slurp(const char *path, unsigned char **b, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = *b ? fread(*b, 1, (size_t)sz, f) : 0;
    fclose(f);
    return *b && *n == (size_t)sz ? 0 : -1;
}

static int spit(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = n ? fwrite(b, 1, n, f) : 0;
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

static void cleanup(void)
{
    for (int i = 0; i < 3; i++)
        unlink(g_path[i]);
    rmdir(g_dir);
}

static int make_template(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/fern-fuzz-record-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_set, sizeof g_set, "%s/t.frec", g_dir);
    snprintf(g_path[0], sizeof g_path[0], "%s.00000", g_set);
    snprintf(g_path[1], sizeof g_path[1], "%s.db", g_set);
    snprintf(g_path[2], sizeof g_path[2], "%s.00001", g_set);
    fern_record_schema *s = fern_record_schema_new();
    int64_t a3 = 3, a2[2] = {1, 2};
    fern_record_schema_add(s, "i32", FERN_REC_INT32);
    fern_record_schema_add(s, "label", FERN_REC_INT64);
    fern_record_schema_add(s, "f32", FERN_REC_FLOAT32);
    fern_record_schema_add(s, "f64", FERN_REC_FLOAT64);
    fern_record_schema_add(s, "name", FERN_REC_STRING);
    fern_record_schema_add(s, "blob", FERN_REC_BYTES);
    fern_record_schema_add_array(s, "pix", FERN_U8, 1, &a3);
    fern_record_schema_add_array(s, "m", FERN_F32, 2, a2);
    const char *idx[] = {"label", "name"};
    fern_record_writer_opts o = {2, 0, 96, 2, idx};
    fern_record_writer *w = fern_record_writer_open(g_set, s, &o);
    fern_record_schema_free(s);
    if (!w)
        return -1;
    for (int g = 0; g < 20; g++) {
        char name[16];
        unsigned char pix[3] = {(unsigned char)g, 7, (unsigned char)(255 - g)}, blob[5] = {1, 2, 3, 4, 5};
        float m[2] = {(float)g, -1.5f};
        snprintf(name, sizeof name, "n%d", g % 4);
        fern_record_value v[8] = {{.i = g - 5},          {.i = g % 3},
                                  {.f = g * 0.5},         {.f = -g * 0.25},
                                  {.data = name, .size = (size_t)-1}, {.data = blob, .size = (size_t)(g % 6)},
                                  {.data = pix},          {.data = m}};
        if (fern_record_write_values(w, v) != FERN_OK) {
            fern_record_writer_abort(w);
            return -1;
        }
    }
    if (fern_record_writer_set_meta(w, "classes", "a\nb") != FERN_OK || fern_record_writer_close(w) != FERN_OK)
        return -1;
    for (int i = 0; i < 3; i++)
        if (slurp(g_path[i], &g_tpl[i], &g_tpl_n[i]))
            return -1;
    atexit(cleanup);
    return 0;
}

static void exercise(void)
{
    fern_clear_error();
    fern_record_reader_opts ro = {64}; /* tiny cache: rows of evicted verified pages too */
    fern_record_reader *r = fern_record_open(g_set, &ro);
    if (!r)
        return;
    fern_row *row = fern_row_new();
    for (int64_t g = 0; g < fern_record_rows(r) && g < 64; g++) {
        fern_clear_error();
        fern_record_read(r, g, row);
        fern_clear_error();
        fern_record_read(r, g, row);
        fern_record_loc loc;
        fern_record_locate(r, g, &loc);
    }
    fern_clear_error();
    fern_record_verify(r);
    int64_t *rows = NULL;
    for (int l = 0; l < 3; l++) {
        fern_clear_error();
        if (fern_record_lookup_int(r, "label", l, &rows) >= 0)
            free(rows);
    }
    fern_clear_error();
    if (fern_record_lookup_str(r, "name", "n1", &rows) >= 0)
        free(rows);
    fern_clear_error();
    if (fern_record_query(r, "label > 0 AND name <> 'n2'", &rows) >= 0)
        free(rows);
    fern_record_info info;
    fern_record_get_info(r, &info);
    for (int i = 0; i < fern_record_meta_count(r); i++) {
        const char *k, *v;
        fern_record_meta_at(r, i, &k, &v);
        fern_record_meta(r, k);
    }
    for (int shuffled = 0; shuffled < 2; shuffled++) { /* next() and get() paths */
        fern_dataset *ds = fern_dataset_record_reader(r);
        if (shuffled)
            ds = fern_dataset_shuffle(ds, 64);
        if (!ds)
            continue;
        fern_data_iter_opts io = {1, 0, -1};
        fern_data_iter *it = fern_data_iter_new(ds, &io);
        for (int k = 0; it && k < 64 && fern_data_iter_next(it, row) == FERN_OK; k++)
            ;
        fern_data_iter_free(it);
        fern_dataset_release(ds);
    }
    fern_row_free(row);
    fern_record_close(r);
    fern_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready = -1;
    if (ready < 0)
        ready = make_template();
    if (ready != 0 || size < 1)
        return 0;
    int which = data[0] & 3, nocrc = (data[0] >> 2) & 1, raw = (data[0] >> 3) & 1;
    if (which == 3)
        which = 0;
    for (int i = 0; i < 3; i++)
        if (i != which && spit(g_path[i], g_tpl[i], g_tpl_n[i]))
            return 0;
    const unsigned char *out;
    unsigned char *buf = NULL;
    size_t n;
    if (raw) {
        out = data + 1;
        n = size - 1;
    } else {
        n = g_tpl_n[which];
        buf = malloc(n + 1);
        if (!buf)
            return 0;
        memcpy(buf, g_tpl[which], n);
        if (size >= 7) {
            uint32_t off = rec_get32(data + 1) % (uint32_t)(n ? n : 1);
            uint16_t cut = rec_get16(data + 5);
            size_t pl = size - 7;
            if (pl > n - off)
                pl = n - off;
            memcpy(buf + off, data + 7, pl);
            if (cut && cut < n)
                n = cut;
        }
        out = buf;
    }
    int ok = spit(g_path[which], out, n) == 0;
    free(buf);
    if (!ok)
        return 0;
    if (which != 1 && n != g_tpl_n[which]) { /* let the database agree on the size */
        sqlite3 *db;
        if (sqlite3_open(g_path[1], &db) == SQLITE_OK) {
            char sql[160];
            snprintf(sql, sizeof sql, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; "
                     "UPDATE shards SET bytes = %zu WHERE id = %d", n, which == 0 ? 0 : 1);
            sqlite3_exec(db, sql, NULL, NULL, NULL);
        }
        sqlite3_close(db);
    }
    fern__rec_check_crc = !nocrc;
    exercise();
    fern__rec_check_crc = 1;
    return 0;
}
