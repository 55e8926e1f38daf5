/*
 * fern/record.h — fern's record format: a dataset stored as a set of shard
 * files plus an SQLite index database (the design of MindSpore's
 * MindRecord), read back by random access, by indexed field value, or as
 * a data-engine source (fern_dataset_record).
 *
 *     fern_record_schema *s = fern_record_schema_new();
 *     int64_t shape[3] = {28, 28, 1};
 *     fern_record_schema_add_array(s, "image", FERN_U8, 3, shape);
 *     fern_record_schema_add(s, "label", FERN_REC_INT64);
 *     const char *idx[] = {"label"};
 *     fern_record_writer_opts o = {.num_shards = 4, .n_index = 1, .index_fields = idx};
 *     fern_record_writer *w = fern_record_writer_open("train.frec", s, &o);
 *     for (...) fern_record_write_row(w, row);      // or fern_record_write_values
 *     if (fern_record_writer_close(w) != FERN_OK) puts(fern_last_error());
 *     fern_record_schema_free(s);
 *
 *     fern_record_reader *r = fern_record_open("train.frec", NULL);
 *     int64_t *rows, n = fern_record_lookup_int(r, "label", 3, &rows); // rows with label == 3
 *     fern_record_read(r, rows[0], out_row);
 *     fern_dataset *ds = fern_dataset_record_reader(r);   // shuffle/map/batch/shard...
 *
 * FILES. Writing to PATH produces
 *   PATH.db                 the index database (SQLite 3), the entry point
 *   PATH                    the data when there is one shard, else
 *   PATH.00000, PATH.00001  one file per shard
 * Every file is written to a temporary name next to its final one, synced
 * (fsync) and renamed when the writer closes; the database is renamed last,
 * so an interrupted write never leaves a set that opens with wrong data:
 * readers see the old set, or a clear "belongs to another record set"
 * error if only some shards were replaced.
 *
 * SHARD FILE (little-endian):
 *   header  "FERNREC\0", u32 version (1), u32 header length, u64 set id,
 *           u32 shard index, u32 flags (0), u16 + set name (PATH's base
 *           name), the schema (u16 field count; per field: u8 name length,
 *           name, u8 type, u8 dtype, u8 ndim, i64 shape[ndim]), CRC-32 of
 *           all header bytes before it.
 *   pages   rows packed back to back: each row is its fields in schema
 *           order (int32/float32: 4 bytes, int64/float64: 8 bytes,
 *           string/bytes: u32 length + bytes, array: numel * dtype size raw
 *           elements, row major), then u32 offset of every row in the page,
 *           then u32 row count. A page holds whole rows, about page_size
 *           bytes (a larger row gets a page of its own).
 *   footer  "FRECPAGE", u64 rows, u64 pages, per page {u64 byte offset, u32
 *           length, u32 rows, u64 first row, u32 CRC-32 of the page, u32 0},
 *           CRC-32 of the footer bytes before it.
 *   tail    u64 footer offset, u64 footer length, u64 set id, "FRECEND\0"
 *           (the last 32 bytes of the file).
 * Readers check the header and footer CRCs and the layout when opening a
 * shard, and each page's CRC and row table before the first row of the
 * page is returned (a reader remembers the row tables of verified pages,
 * so a row of a verified page that has left its page cache is read by
 * itself); a mismatch, a truncated file or an inconsistent layout is an
 * error naming the file and the byte offset.
 *
 * INDEX DATABASE: tables meta(key, value) (format, version, set id, schema,
 * row and shard counts, sharding mode, page size, indexed fields, user
 * metadata under "user.KEY"), shards(id, file, rows, pages, bytes) and
 * rows(__row INTEGER PRIMARY KEY, __shard, __page, __offset, <one column
 * per indexed field, named like the field, with an SQL index>): every row
 * number maps to its shard, page and byte offset in the page, and indexed
 * values map to rows. It can be inspected with the sqlite3 shell.
 *
 * ROWS. A record row read back has one column per field, named like it:
 * int32 -> i32[], int64 -> i64[], float32 -> f32[], float64 -> f64[] (0-d
 * tensors), string and bytes -> u8[n], array -> its dtype and shape.
 * Global row numbers run 0..rows-1 in write order whatever the sharding:
 * round-robin puts row g in shard g % num_shards, by-count fills shard 0
 * with rows_per_shard rows, then shard 1, ...
 *
 * ERRORS follow fern's rules: NULL / an error status with fern_last_error()
 * naming the function ("record ...") and, for file problems, the file and
 * byte offset. Nothing aborts.
 */
#ifndef FERN_RECORD_H
#define FERN_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "fern/core.h"
#include "fern/data.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FERN_RECORD_VERSION 1
#define FERN_RECORD_MAX_FIELDS FERN_ROW_MAX_COLS
#define FERN_RECORD_MAX_SHARDS 1000

/* ---- schemas --------------------------------------------------------------- */

typedef enum {
    FERN_REC_INT32 = 0,
    FERN_REC_INT64,
    FERN_REC_FLOAT32,
    FERN_REC_FLOAT64,
    FERN_REC_STRING, /* UTF-8 text (not checked), no NUL stored     */
    FERN_REC_BYTES,  /* any bytes (encoded images, ...)             */
    FERN_REC_ARRAY,  /* fixed dtype and shape                       */
    FERN_REC_TYPE_COUNT
} fern_rec_type;

/* "int32", "int64", "float32", "float64", "string", "bytes", "array". */
const char *fern_rec_type_name(fern_rec_type t);

typedef struct {
    char name[FERN_COL_NAME_MAX];
    fern_rec_type type;
    fern_dtype dtype; /* ARRAY: element dtype; scalars: the column's dtype;
                         STRING/BYTES: FERN_U8                                */
    int ndim;         /* ARRAY: 0..FERN_MAX_DIMS; others 0                    */
    int64_t shape[FERN_MAX_DIMS];
} fern_record_field;

typedef struct fern_record_schema fern_record_schema;

fern_record_schema *fern_record_schema_new(void);
void fern_record_schema_free(fern_record_schema *s);
fern_record_schema *fern_record_schema_copy(const fern_record_schema *s);
/* A scalar, string or bytes field (not FERN_REC_ARRAY). Names: 1..47 bytes,
 * unique, not starting with "__". At most FERN_RECORD_MAX_FIELDS fields. */
fern_status fern_record_schema_add(fern_record_schema *s, const char *name, fern_rec_type type);
/* A fixed-shape array field (any fern dtype; ndim 0..FERN_MAX_DIMS, each
 * dimension >= 0). */
fern_status fern_record_schema_add_array(fern_record_schema *s, const char *name, fern_dtype dt,
                                         int ndim, const int64_t *shape);
int fern_record_schema_nfields(const fern_record_schema *s);
/* Field i (borrowed), NULL if out of range. */
const fern_record_field *fern_record_schema_field(const fern_record_schema *s, int i);
/* Index of field `name`, or -1. */
int fern_record_schema_find(const fern_record_schema *s, const char *name);
/* A schema for rows like `row`: 0-d i32/i64/f32/f64 columns become
 * INT32/INT64/FLOAT32/FLOAT64, anything else a fixed-shape ARRAY. */
fern_record_schema *fern_record_schema_from_row(const fern_row *row);
/* Printable form, e.g. "image: u8[28,28,1], label: int64", into buf. */
char *fern_record_schema_str(const fern_record_schema *s, char *buf, size_t n);

/* ---- writing ------------------------------------------------------------------ */

typedef struct {
    int num_shards;          /* shards, round-robin (0 -> 1; at most 1000)      */
    int64_t rows_per_shard;  /* > 0: by count instead: fill each shard with this
                                many rows, adding shards as needed
                                (num_shards must then be 0)                      */
    size_t page_size;        /* target page bytes (0 -> 256 KiB)                */
    int n_index;             /* fields indexed in the database                  */
    const char *const *index_fields; /* scalar, string or bytes fields          */
} fern_record_writer_opts;

typedef struct fern_record_writer fern_record_writer;

/* Start writing the set PATH (see FILES; existing files are replaced when
 * the writer closes). The schema is copied. opts may be NULL. */
fern_record_writer *fern_record_writer_open(const char *path, const fern_record_schema *schema,
                                            const fern_record_writer_opts *opts);

/* One field value of fern_record_write_values. */
typedef struct {
    int64_t i;        /* INT32 (must fit), INT64                               */
    double f;         /* FLOAT32 (rounded), FLOAT64                            */
    const void *data; /* STRING, BYTES: the bytes; ARRAY: the field's elements,
                         contiguous, row major, of its dtype                   */
    size_t size;      /* STRING, BYTES: length in bytes (STRING: (size_t)-1
                         means strlen(data)); ARRAY: ignored                    */
} fern_record_value;

/* Append a row given as vals[0..nfields-1] in schema order. */
fern_status fern_record_write_values(fern_record_writer *w, const fern_record_value *vals);
/* Append a row from a fern_row holding (at least) one column per field by
 * name: scalar fields take a one-element tensor (integer/bool for INT32 and
 * INT64, any real dtype for floats), STRING/BYTES a u8 or i8 tensor (its
 * bytes), ARRAY a tensor of exactly the field's dtype and shape (any
 * strides). Extra columns are ignored. */
fern_status fern_record_write_row(fern_record_writer *w, const fern_row *row);
/* Attach metadata (stored in the database as "user.KEY"). */
fern_status fern_record_writer_set_meta(fern_record_writer *w, const char *key, const char *value);
int64_t fern_record_writer_rows(const fern_record_writer *w);
/* Finish: flush pages, write footers and the database, sync, rename into
 * place. Frees w in every case; on error no final file was replaced and the
 * temporaries are removed. */
fern_status fern_record_writer_close(fern_record_writer *w);
/* Give up: remove the temporaries, free w. */
void fern_record_writer_abort(fern_record_writer *w);

/* Write every row of one pass of ds (consumed: released in every case).
 * schema NULL: fern_record_schema_from_row of the first row. opts may be
 * NULL. `progress` (may be NULL) is called every 4096 rows and at the end. */
fern_status fern_record_write_dataset(const char *path, fern_dataset *ds,
                                      const fern_record_schema *schema,
                                      const fern_record_writer_opts *opts,
                                      void (*progress)(void *ctx, int64_t rows), void *ctx);

/* ---- reading -------------------------------------------------------------------- */

typedef struct {
    size_t cache_bytes; /* verified pages kept in memory, shared by all threads
                           (0 -> 64 MiB); a reader also keeps 4 bytes per row
                           of every verified page                             */
} fern_record_reader_opts;

typedef struct fern_record_reader fern_record_reader;

/* Open a set by PATH (the path it was written to), PATH.db, or the name of
 * one of its shard files. Checks the database, every shard's header and
 * footer, and that they agree (set id, schema, row counts). opts may be NULL.
 * Thread-safe once open: reads and lookups may run on several threads. */
fern_record_reader *fern_record_open(const char *path, const fern_record_reader_opts *opts);
/* Drop the caller's reference (datasets made from it keep theirs). */
void fern_record_close(fern_record_reader *r);

int64_t fern_record_rows(const fern_record_reader *r);
int fern_record_num_shards(const fern_record_reader *r);
const fern_record_schema *fern_record_get_schema(const fern_record_reader *r); /* borrowed */

typedef struct {
    const char *file;   /* shard file path (borrowed)  */
    int64_t rows;
    int64_t pages;
    int64_t bytes;      /* file size                    */
} fern_record_shard_info;

typedef struct {
    int version;
    uint64_t set_id;
    int64_t rows;
    int num_shards;
    int by_count;            /* 1: rows_per_shard sharding, 0: round-robin */
    int64_t rows_per_shard;
    int64_t page_size;
    int64_t pages;           /* over all shards                              */
    int n_index;
    const char *index_fields[FERN_RECORD_MAX_FIELDS]; /* borrowed            */
    const char *db_path;     /* borrowed                                     */
} fern_record_info;

fern_status fern_record_get_info(const fern_record_reader *r, fern_record_info *info);
fern_status fern_record_shard(const fern_record_reader *r, int i, fern_record_shard_info *info);
/* User metadata: number of keys, and key/value i (borrowed). */
int fern_record_meta_count(const fern_record_reader *r);
fern_status fern_record_meta_at(const fern_record_reader *r, int i, const char **key,
                                const char **value);
/* Value of user metadata `key`, or NULL. */
const char *fern_record_meta(const fern_record_reader *r, const char *key);

/* Read row `row` (0 <= row < rows) into out (cleared first). */
fern_status fern_record_read(fern_record_reader *r, int64_t row, fern_row *out);

typedef struct {
    int shard;
    int64_t page;       /* page index in the shard                         */
    int64_t offset;     /* byte offset of the row in the page              */
    int64_t file_offset;/* byte offset of the row in the shard file        */
    int64_t size;       /* bytes of the encoded row                        */
} fern_record_loc;

/* Where row `row` is stored (reads and verifies its page). */
fern_status fern_record_locate(fern_record_reader *r, int64_t row, fern_record_loc *loc);

/* Rows whose indexed `field` equals the value (ascending row numbers).
 * Returns the count (>= 0) and sets *rows to a malloc'd array (free() it;
 * NULL when the count is 0), or -1 with an error (field not indexed, type
 * mismatch, database disagreeing with the shards). */
int64_t fern_record_lookup(fern_record_reader *r, const char *field, const fern_record_value *value,
                           int64_t **rows);
int64_t fern_record_lookup_int(fern_record_reader *r, const char *field, int64_t value, int64_t **rows);
int64_t fern_record_lookup_str(fern_record_reader *r, const char *field, const char *value,
                               int64_t **rows);
/* Rows matching an SQL expression over the indexed fields (read-only; one
 * expression, e.g. "label IN (1, 3) AND name LIKE 'a%'"). */
int64_t fern_record_query(fern_record_reader *r, const char *where, int64_t **rows);

/* Read every page of every shard and check its CRC and layout. */
fern_status fern_record_verify(fern_record_reader *r);

/* ---- data-engine source --------------------------------------------------------- */

/* A random-access dataset of the set's rows in row order (columns as in
 * ROWS), so fern_dataset_shuffle, fern_dataset_shard and map workers read
 * rows by index, exactly and cheaply. The reader is retained. */
fern_dataset *fern_dataset_record_reader(fern_record_reader *r);
/* The same, opening PATH (see fern_record_open). */
fern_dataset *fern_dataset_record(const char *path, const fern_record_reader_opts *opts);

#ifdef __cplusplus
}
#endif
#endif /* FERN_RECORD_H */
