/* A batch source over in-memory tensors, shuffled per epoch with a private
 * Philox stream (seed, epoch): the order is reproducible and independent of
 * fern's global generator, so resuming training repeats it exactly. */
#include <stdlib.h>

#include "../core/internal.h"
#include "fern/train.h"

typedef struct {
    fern_tensor *x, *y;
    int64_t n, batch, at;
    int shuffle, drop_last;
    uint64_t seed;
    int64_t *order;
} tensor_src;

static fern_status ts_reset(void *ud, int64_t epoch)
{
    tensor_src *s = ud;
    s->at = 0;
    for (int64_t i = 0; i < s->n; i++)
        s->order[i] = i;
    if (s->shuffle)
        for (int64_t i = s->n - 1; i > 0; i--) { /* Fisher-Yates */
            uint32_t r[4];
            fern__philox(s->seed, (uint64_t)epoch, (uint64_t)i, r);
            uint64_t v = ((uint64_t)r[0] << 32 | r[1]) % (uint64_t)(i + 1);
            int64_t t = s->order[i];
            s->order[i] = s->order[v];
            s->order[v] = t;
        }
    return FERN_OK;
}

static fern_status ts_next(void *ud, fern_tensor **x, fern_tensor **y, int *end)
{
    tensor_src *s = ud;
    int64_t left = s->n - s->at;
    int64_t b = left < s->batch ? left : s->batch;
    *x = *y = NULL;
    *end = b <= 0 || (s->drop_last && b < s->batch);
    if (*end)
        return FERN_OK;
    fern_scope_begin();
    fern_tensor *idx = fern_from_data(FERN_I64, 1, &b, s->order + s->at);
    fern_tensor *bx = fern_index_select(s->x, 0, idx), *by = fern_index_select(s->y, 0, idx);
    if (bx && by) {
        *x = fern_retain(bx);
        *y = fern_retain(by);
    }
    fern_scope_end();
    s->at += b;
    if (!*x)
        return fern_last_status();
    fern__scope_register(*x);
    fern__scope_register(*y);
    return FERN_OK;
}

static int64_t ts_count(void *ud)
{
    tensor_src *s = ud;
    return s->drop_last ? s->n / s->batch : (s->n + s->batch - 1) / s->batch;
}

static void ts_free(void *ud)
{
    tensor_src *s = ud;
    fern_release(s->x);
    fern_release(s->y);
    free(s->order);
    free(s);
}

fern_batch_source fern_tensor_batches(fern_tensor *x, fern_tensor *y, int64_t batch, int shuffle,
                                      uint64_t seed, int drop_last)
{
    fern_batch_source src = {0};
    if (!x || !y || batch <= 0 || fern_tensor_ndim(x) < 1 || fern_tensor_ndim(y) < 1 ||
        fern_tensor_dim(x, 0) != fern_tensor_dim(y, 0)) {
        fern_set_error(FERN_ERR_INVALID, "tensor_batches: need x and y with the same leading size and batch > 0");
        return src;
    }
    tensor_src *s = calloc(1, sizeof *s);
    int64_t n = fern_tensor_dim(x, 0);
    if (!s || !(s->order = malloc((size_t)(n ? n : 1) * sizeof *s->order))) {
        free(s);
        fern_set_error(FERN_ERR_NOMEM, "tensor_batches: out of memory");
        return src;
    }
    s->x = fern_retain(x);
    s->y = fern_retain(y);
    s->n = n;
    s->batch = batch;
    s->shuffle = shuffle;
    s->seed = seed;
    s->drop_last = drop_last;
    ts_reset(s, 0);
    src.ud = s;
    src.reset = ts_reset;
    src.next = ts_next;
    src.batches_per_epoch = ts_count;
    src.free = ts_free;
    return src;
}

void fern_batch_source_free(fern_batch_source *s)
{
    if (s && s->free && s->ud)
        s->free(s->ud);
    if (s)
        s->ud = NULL;
}
