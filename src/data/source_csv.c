/* CSV files of numbers (RFC 4180 quoting, optional header, CRLF, UTF-8
 * BOM). The whole file is parsed when the dataset is made; errors name the
 * file, the line, the field and the byte offset. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"

#define CSV_MAX_FIELD 512
#define CSV_MAX_COLS 4096

typedef struct {
    const char *s;
    size_t n, pos;
    int64_t line;       /* 1-based line of pos                 */
    char delim;
    const char *name;
} csv_lexer;

typedef struct {
    char text[CSV_MAX_FIELD];
    size_t len;
    size_t offset; /* byte offset of the field's first byte */
    int64_t line;
    int quoted;
} csv_field;

/* Read one field. Returns 1 if a field was read and more follow on the
 * record, 2 if it ended the record, 0 at end of input (no field), -1 on
 * error. */
static int csv_field_read(csv_lexer *L, csv_field *f)
{
    if (L->pos >= L->n)
        return 0;
    f->len = 0;
    f->offset = L->pos;
    f->line = L->line;
    f->quoted = 0;
    size_t p = L->pos;
    /* leading spaces */
    while (p < L->n && (L->s[p] == ' ' || L->s[p] == '\t') && L->s[p] != L->delim)
        p++;
    if (p < L->n && L->s[p] == '"') {
        f->quoted = 1;
        size_t qstart = p;
        p++;
        for (;;) {
            if (p >= L->n) {
                fern_set_error(FERN_ERR_IO, "csv: %s: line %lld: unterminated quoted field starting at "
                               "byte offset %zu",
                               L->name, (long long)f->line, qstart);
                return -1;
            }
            char c = L->s[p];
            if (c == '"') {
                if (p + 1 < L->n && L->s[p + 1] == '"') {
                    c = '"';
                    p++;
                } else {
                    p++;
                    break;
                }
            } else if (c == '\n') {
                L->line++;
            }
            if (f->len + 1 >= CSV_MAX_FIELD) {
                fern_set_error(FERN_ERR_IO, "csv: %s: line %lld: field at byte offset %zu is longer than %d bytes",
                               L->name, (long long)f->line, f->offset, CSV_MAX_FIELD - 1);
                return -1;
            }
            f->text[f->len++] = c;
            p++;
        }
        while (p < L->n && (L->s[p] == ' ' || L->s[p] == '\t') && L->s[p] != L->delim)
            p++;
        if (p < L->n && L->s[p] != L->delim && L->s[p] != '\n' && L->s[p] != '\r') {
            fern_set_error(FERN_ERR_IO, "csv: %s: line %lld: unexpected character '%c' after a quoted field "
                           "at byte offset %zu",
                           L->name, (long long)f->line, L->s[p], p);
            return -1;
        }
    } else {
        while (p < L->n && L->s[p] != L->delim && L->s[p] != '\n' && L->s[p] != '\r') {
            if (L->s[p] == '"') {
                fern_set_error(FERN_ERR_IO, "csv: %s: line %lld: stray quote inside a field at byte offset %zu",
                               L->name, (long long)f->line, p);
                return -1;
            }
            if (L->s[p] == '\0') {
                fern_set_error(FERN_ERR_IO, "csv: %s: line %lld: NUL byte at byte offset %zu", L->name,
                               (long long)f->line, p);
                return -1;
            }
            if (f->len + 1 >= CSV_MAX_FIELD) {
                fern_set_error(FERN_ERR_IO, "csv: %s: line %lld: field at byte offset %zu is longer than %d bytes",
                               L->name, (long long)f->line, f->offset, CSV_MAX_FIELD - 1);
                return -1;
            }
            f->text[f->len++] = L->s[p++];
        }
        while (f->len > 0 && (f->text[f->len - 1] == ' ' || f->text[f->len - 1] == '\t'))
            f->len--;
    }
    f->text[f->len] = 0;
    if (p < L->n && L->s[p] == L->delim) {
        L->pos = p + 1;
        if (L->pos >= L->n)
            return 1; /* trailing delimiter at EOF: an empty last field follows */
        return 1;
    }
    /* end of record */
    if (p < L->n && L->s[p] == '\r')
        p++;
    if (p < L->n && L->s[p] == '\n')
        p++;
    L->line++;
    L->pos = p;
    return 2;
}

/* Skip empty lines (only whitespace). */
static void csv_skip_blank(csv_lexer *L)
{
    for (;;) {
        size_t p = L->pos;
        while (p < L->n && (L->s[p] == ' ' || L->s[p] == '\t'))
            p++;
        if (p < L->n && L->s[p] == '\r')
            p++;
        if (p < L->n && L->s[p] == '\n') {
            L->pos = p + 1;
            L->line++;
            continue;
        }
        if (p >= L->n)
            L->pos = p;
        return;
    }
}

static int parse_number(const csv_field *f, double *v)
{
    if (f->len == 0)
        return -1;
    errno = 0;
    char *end;
    *v = strtod(f->text, &end);
    if (end == f->text || *end != 0)
        return -1;
    return 0;
}

typedef struct {
    csv_field *f;
    int n, cap;
} field_list;

/* Read a record into list; returns number of fields, 0 at EOF, -1 error. */
static int read_record(csv_lexer *L, field_list *list)
{
    csv_skip_blank(L);
    list->n = 0;
    for (;;) {
        if (list->n == list->cap) {
            if (list->cap >= CSV_MAX_COLS) {
                fern_set_error(FERN_ERR_IO, "csv: %s: line %lld has more than %d fields", L->name,
                               (long long)L->line, CSV_MAX_COLS);
                return -1;
            }
            int cap = list->cap ? list->cap * 2 : 16;
            csv_field *nf = realloc(list->f, (size_t)cap * sizeof *nf);
            if (!nf) {
                fern_set_error(FERN_ERR_NOMEM, "csv: out of memory");
                return -1;
            }
            list->f = nf;
            list->cap = cap;
        }
        int at_end = L->pos >= L->n;
        int r = at_end ? 0 : csv_field_read(L, &list->f[list->n]);
        if (r < 0)
            return -1;
        if (r == 0) {
            if (list->n > 0) { /* "a,b," at EOF: an empty last field */
                csv_field *f = &list->f[list->n++];
                f->len = 0;
                f->text[0] = 0;
                f->offset = L->n;
                f->line = L->line;
                f->quoted = 0;
            }
            return list->n;
        }
        list->n++;
        if (r == 2)
            return list->n;
    }
}

void fern__csv_table_free(fern__csv_table *t)
{
    if (!t)
        return;
    for (int i = 0; t->names && i < t->ncols; i++)
        free(t->names[i]);
    free(t->names);
    free(t->values);
    memset(t, 0, sizeof *t);
}

int fern__csv_parse(const char *text, size_t n, const char *name, char delim, int header,
                    fern__csv_table *out)
{
    memset(out, 0, sizeof *out);
    if (!name)
        name = "<memory>";
    if (!text && n) {
        fern_set_error(FERN_ERR_INVALID, "csv: %s: text is NULL", name);
        return FERN_ERR_INVALID;
    }
    if (delim == '"' || delim == '\n' || delim == '\r') {
        fern_set_error(FERN_ERR_INVALID, "csv: delimiter 0x%02x is not allowed", (unsigned char)delim);
        return FERN_ERR_INVALID;
    }
    csv_lexer L = {text, n, 0, 1, delim ? delim : ',', name};
    if (n >= 3 && (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
        (unsigned char)text[2] == 0xBF)
        L.pos = 3;
    field_list fl = {0};
    size_t vcap = 0;
    int nf = read_record(&L, &fl);
    if (nf < 0)
        goto fail;
    if (nf == 0) {
        fern_set_error(FERN_ERR_IO, "csv: %s: no records (the file is empty)", name);
        goto fail;
    }
    int is_header = header;
    if (header < 0) {
        is_header = 0;
        for (int i = 0; i < nf; i++) {
            double v;
            if (parse_number(&fl.f[i], &v))
                is_header = 1;
        }
    }
    out->ncols = nf;
    out->names = calloc((size_t)nf, sizeof *out->names);
    if (!out->names) {
        fern_set_error(FERN_ERR_NOMEM, "csv: out of memory");
        goto fail;
    }
    for (int i = 0; i < nf; i++) {
        char buf[32];
        const char *nm = buf;
        if (is_header) {
            nm = fl.f[i].text;
            if (fl.f[i].len == 0) {
                fern_set_error(FERN_ERR_IO, "csv: %s: line %lld: header field %d (byte offset %zu) is empty",
                               name, (long long)fl.f[i].line, i, fl.f[i].offset);
                goto fail;
            }
        } else {
            snprintf(buf, sizeof buf, "c%d", i);
        }
        out->names[i] = strdup(nm);
        if (!out->names[i]) {
            fern_set_error(FERN_ERR_NOMEM, "csv: out of memory");
            goto fail;
        }
    }
    int first = !is_header;
    for (;;) {
        if (!first) {
            nf = read_record(&L, &fl);
            if (nf < 0)
                goto fail;
            if (nf == 0)
                break;
        }
        first = 0;
        if (nf != out->ncols) {
            fern_set_error(FERN_ERR_IO, "csv: %s: line %lld (byte offset %zu) has %d fields, expected %d",
                           name, (long long)fl.f[0].line, fl.f[0].offset, nf, out->ncols);
            goto fail;
        }
        if ((size_t)(out->nrows + 1) * (size_t)out->ncols > vcap) {
            size_t cap = vcap ? vcap * 2 : (size_t)out->ncols * 64;
            double *nv = realloc(out->values, cap * sizeof *nv);
            if (!nv) {
                fern_set_error(FERN_ERR_NOMEM, "csv: out of memory");
                goto fail;
            }
            out->values = nv;
            vcap = cap;
        }
        double *row = out->values + (size_t)out->nrows * (size_t)out->ncols;
        for (int i = 0; i < nf; i++)
            if (parse_number(&fl.f[i], &row[i])) {
                if (fl.f[i].len == 0)
                    fern_set_error(FERN_ERR_IO, "csv: %s: line %lld, field %d (byte offset %zu): empty field",
                                   name, (long long)fl.f[i].line, i + 1, fl.f[i].offset);
                else
                    fern_set_error(FERN_ERR_IO,
                                   "csv: %s: line %lld, field %d (byte offset %zu): '%.40s' is not a number",
                                   name, (long long)fl.f[i].line, i + 1, fl.f[i].offset, fl.f[i].text);
                goto fail;
            }
        out->nrows++;
    }
    free(fl.f);
    return FERN_OK;
fail:
    free(fl.f);
    fern__csv_table_free(out);
    return fern_last_status() ? fern_last_status() : FERN_ERR_IO;
}

/* ---- the CSV source ------------------------------------------------------------------- */

typedef struct {
    fern_dataset base;
    fern_tensor *cols[FERN_ROW_MAX_COLS]; /* [N] per column, or [N,k] features + [N] label */
} csv_node;

static int csv_get(fern__dstate *st, int64_t i, fern_row *out)
{
    const csv_node *n = (const csv_node *)st->ds;
    for (int c = 0; c < n->base.ncols; c++) {
        fern_tensor *v = fern__slice0(n->cols[c], i);
        if (!v) {
            fern_row_clear(out);
            return fern_last_status();
        }
        fern__row_push(out, n->base.cols[c], v);
    }
    return FERN_OK;
}

static void state_free(fern__dstate *st) { free(st); }
static const fern__dstate_vt csv_vt = {fern__next_by_get, csv_get, state_free};

static fern__dstate *csv_open(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    return fern__state_new(sizeof(fern__dstate), &csv_vt, ds, ctx, salt, pass);
}

static void csv_destroy(fern_dataset *ds)
{
    csv_node *n = (csv_node *)ds;
    for (int c = 0; c < FERN_ROW_MAX_COLS; c++)
        fern_release(n->cols[c]);
}

static const fern__dnode_vt csv_node_vt = {"csv", csv_open, csv_destroy};

fern_dataset *fern_dataset_csv(const char *path, const fern_csv_opts *opts)
{
    fern_csv_opts o = {0};
    if (opts)
        o = *opts;
    else
        o.header = -1;
    if (o.dtype != FERN_F32 && o.dtype != FERN_F64) {
        fern_set_error(FERN_ERR_INVALID, "csv: dtype must be f32 or f64, not %s", fern_dtype_name(o.dtype));
        return NULL;
    }
    unsigned char *buf;
    size_t n;
    if (fern__read_file(path, "csv", &buf, &n))
        return NULL;
    fern__csv_table t;
    int r = fern__csv_parse((const char *)buf, n, path, o.delimiter, o.header, &t);
    free(buf);
    if (r)
        return NULL;
    int label = -1;
    if (o.label_column) {
        if (o.label_column[0] == '#') {
            char *end;
            long k = strtol(o.label_column + 1, &end, 10);
            if (*end == 0 && end != o.label_column + 1 && k >= 0 && k < t.ncols)
                label = (int)k;
        } else {
            for (int i = 0; i < t.ncols; i++)
                if (strcmp(t.names[i], o.label_column) == 0)
                    label = i;
        }
        if (label < 0) {
            fern_set_error(FERN_ERR_INVALID, "csv: %s: no column '%s' for the label", path, o.label_column);
            fern__csv_table_free(&t);
            return NULL;
        }
    }
    int nval = t.ncols - (label >= 0);
    int nout = (o.pack ? (nval > 0) : nval) + (label >= 0);
    if (nout > FERN_ROW_MAX_COLS || nout < 1) {
        fern_set_error(FERN_ERR_INVALID, "csv: %s: %d columns; a row holds at most %d (use pack = 1)", path,
                       nout, FERN_ROW_MAX_COLS);
        fern__csv_table_free(&t);
        return NULL;
    }
    csv_node *nd = (csv_node *)fern__dataset_new(sizeof *nd, &csv_node_vt, 0, NULL);
    if (!nd) {
        fern__csv_table_free(&t);
        return NULL;
    }
    const char *names[FERN_ROW_MAX_COLS];
    int k = 0;
    int64_t N = t.nrows;
    size_t esz = fern_dtype_size(o.dtype);
    if (o.pack && nval > 0) {
        int64_t shape[2] = {N, nval};
        fern_tensor *f = fern__tensor_alloc(o.dtype, 2, shape, FERN_CPU);
        if (!f)
            goto fail;
        char *d = fern_tensor_data(f);
        for (int64_t r2 = 0; r2 < N; r2++)
            for (int c = 0, j = 0; c < t.ncols; c++)
                if (c != label)
                    fern__store(d + ((size_t)r2 * (size_t)nval + (size_t)j++) * esz, o.dtype,
                                t.values[(size_t)r2 * (size_t)t.ncols + (size_t)c]);
        nd->cols[k] = f;
        names[k++] = "features";
    } else {
        for (int c = 0; c < t.ncols; c++) {
            if (c == label)
                continue;
            fern_tensor *f = fern__tensor_alloc(o.dtype, 1, &N, FERN_CPU);
            if (!f)
                goto fail;
            char *d = fern_tensor_data(f);
            for (int64_t r2 = 0; r2 < N; r2++)
                fern__store(d + (size_t)r2 * esz, o.dtype, t.values[(size_t)r2 * (size_t)t.ncols + (size_t)c]);
            nd->cols[k] = f;
            names[k++] = t.names[c];
        }
    }
    if (label >= 0) {
        fern_tensor *f = fern__tensor_alloc(FERN_I64, 1, &N, FERN_CPU);
        if (!f)
            goto fail;
        int64_t *d = fern_tensor_data(f);
        for (int64_t r2 = 0; r2 < N; r2++) {
            double v = t.values[(size_t)r2 * (size_t)t.ncols + (size_t)label];
            if (!(v == floor(v)) || fabs(v) > 9.0e15) {
                fern_set_error(FERN_ERR_IO, "csv: %s: data row %lld: label %g in column '%s' is not an integer",
                               path, (long long)r2 + 1, v, t.names[label]);
                fern_release(f);
                goto fail;
            }
            d[r2] = (int64_t)v;
        }
        nd->cols[k] = f;
        names[k++] = "label";
    }
    if (fern__dataset_set_cols(&nd->base, k, names, "csv"))
        goto fail;
    nd->base.size = N;
    nd->base.random_access = 1;
    fern__csv_table_free(&t);
    return &nd->base;
fail:
    fern__csv_table_free(&t);
    fern_dataset_release(&nd->base);
    return NULL;
}
