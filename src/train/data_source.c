/* The data engine as a source of training batches: a fern_batch_source
 * over a data iterator, reading the input and label columns of each batch.
 * reset(epoch) starts that epoch of the pipeline, so a resumed run sees
 * the same (seeded) order as an uninterrupted one. */
#include <stdlib.h>
#include <string.h>

#include "fern/data.h"
#include "fern/train.h"

typedef struct {
    fern_dataset *ds;
    fern_data_iter *it;
    fern_row *row;
    char x_col[64], y_col[64];
    int64_t batches;
    uint64_t seed;
} data_src;

static fern_status ds_reset(void *ud, int64_t epoch)
{
    data_src *s = ud;
    return fern_data_iter_set_epoch(s->it, (uint64_t)epoch);
}

static fern_status ds_next(void *ud, fern_tensor **x, fern_tensor **y, int *end)
{
    data_src *s = ud;
    *x = *y = NULL;
    *end = 0;
    int st = fern_data_iter_next(s->it, s->row);
    if (st == FERN_DATA_END) {
        *end = 1;
        return FERN_OK;
    }
    if (st != FERN_OK)
        return (fern_status)st;
    fern_tensor *bx = fern_row_get(s->row, s->x_col), *by = fern_row_get(s->row, s->y_col);
    if (!bx || !by) {
        fern_set_error(FERN_ERR_INVALID, "data batches: the pipeline's rows have no '%s' or '%s' column",
                       s->x_col, s->y_col);
        return FERN_ERR_INVALID;
    }
    /* new references owned like op results (the row keeps its own) */
    *x = fern_contiguous(bx);
    *y = fern_contiguous(by);
    if (!*x || !*y)
        return fern_last_status();
    return FERN_OK;
}

static int64_t ds_count(void *ud) { return ((data_src *)ud)->batches; }

static void ds_free(void *ud)
{
    data_src *s = ud;
    fern_row_free(s->row);
    fern_data_iter_free(s->it);
    fern_dataset_release(s->ds);
    free(s);
}

fern_batch_source fern_data_batches(fern_dataset *batched, const char *x_col, const char *y_col,
                                    uint64_t seed)
{
    fern_batch_source src = {0};
    if (!batched)
        return src;
    data_src *s = calloc(1, sizeof *s);
    if (!s) {
        fern_dataset_release(batched);
        fern_set_error(FERN_ERR_NOMEM, "data batches: out of memory");
        return src;
    }
    s->ds = batched;
    snprintf(s->x_col, sizeof s->x_col, "%s", x_col ? x_col : "image");
    snprintf(s->y_col, sizeof s->y_col, "%s", y_col ? y_col : "label");
    s->seed = seed;
    s->batches = fern_dataset_size(batched);
    fern_data_iter_opts o = {.seed = seed, .epoch = 0, .prefetch = 4};
    s->it = fern_data_iter_new(batched, &o);
    s->row = fern_row_new();
    if (!s->it || !s->row) {
        ds_free(s);
        return src;
    }
    src.ud = s;
    src.reset = ds_reset;
    src.next = ds_next;
    src.batches_per_epoch = ds_count;
    src.free = ds_free;
    return src;
}
