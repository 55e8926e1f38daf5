/* Rows: a few named columns, each holding one tensor reference. */
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"

void fern__row_init(fern_row *row) { row->n = 0; }

fern_row *fern_row_new(void)
{
    fern_row *r = malloc(sizeof *r);
    if (!r) {
        fern_set_error(FERN_ERR_NOMEM, "row_new: out of memory");
        return NULL;
    }
    r->n = 0;
    return r;
}

void fern_row_clear(fern_row *row)
{
    if (!row)
        return;
    for (int i = 0; i < row->n; i++)
        fern_release(row->cols[i]);
    row->n = 0;
}

void fern_row_free(fern_row *row)
{
    if (!row)
        return;
    fern_row_clear(row);
    free(row);
}

int fern_row_ncols(const fern_row *row) { return row ? row->n : 0; }

const char *fern_row_name(const fern_row *row, int i)
{
    return row && i >= 0 && i < row->n ? row->names[i] : NULL;
}

fern_tensor *fern_row_at(const fern_row *row, int i)
{
    return row && i >= 0 && i < row->n ? row->cols[i] : NULL;
}

int fern_row_find(const fern_row *row, const char *name)
{
    if (!row || !name)
        return -1;
    for (int i = 0; i < row->n; i++)
        if (row->names[i] == name || strcmp(row->names[i], name) == 0)
            return i;
    return -1;
}

fern_tensor *fern_row_get(const fern_row *row, const char *name)
{
    if (!row) {
        fern_set_error(FERN_ERR_INVALID, "row_get: row is NULL");
        return NULL;
    }
    int i = fern_row_find(row, name);
    if (i < 0) {
        char cols[512];
        size_t k = 0;
        cols[0] = 0;
        for (int j = 0; j < row->n && k < sizeof cols - 1; j++)
            k += (size_t)snprintf(cols + k, sizeof cols - k, "%s%s", j ? ", " : "", row->names[j]);
        fern_set_error(FERN_ERR_INVALID, "row_get: no column '%s' (columns: %s)",
                       name ? name : "(null)", cols);
        return NULL;
    }
    return row->cols[i];
}

fern_status fern_row_set(fern_row *row, const char *name, fern_tensor *t)
{
    if (!row || !t) {
        if (!row)
            fern_set_error(FERN_ERR_INVALID, "row_set: row is NULL");
        else if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "row_set: tensor for column '%s' is NULL",
                           name ? name : "(null)");
        return fern_last_status();
    }
    const char *in = fern__intern(name);
    if (!in)
        return fern_last_status();
    int i = fern_row_find(row, in);
    if (i >= 0) {
        fern_retain(t);
        fern_release(row->cols[i]);
        row->cols[i] = t;
        return FERN_OK;
    }
    if (row->n >= FERN_ROW_MAX_COLS) {
        fern_set_error(FERN_ERR_INVALID, "row_set: a row holds at most %d columns (adding '%s')",
                       FERN_ROW_MAX_COLS, name);
        return FERN_ERR_INVALID;
    }
    row->names[row->n] = in;
    row->cols[row->n] = fern_retain(t);
    row->n++;
    return FERN_OK;
}

void fern__row_push(fern_row *row, const char *interned, fern_tensor *t)
{
    row->names[row->n] = interned;
    row->cols[row->n] = t;
    row->n++;
}

void fern__row_move(fern_row *dst, fern_row *src)
{
    fern_row_clear(dst);
    memcpy(dst->names, src->names, (size_t)src->n * sizeof src->names[0]);
    memcpy(dst->cols, src->cols, (size_t)src->n * sizeof src->cols[0]);
    dst->n = src->n;
    src->n = 0;
}
