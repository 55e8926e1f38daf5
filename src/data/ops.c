/* Pipeline operations other than map: batch, shuffle, repeat, take, skip,
 * zip, concat, project/rename, shard, subset, split. Each is a node type
 * (creation validates the schema) and a state type (one pass). */
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"

/* Close a state with one input stored right after the base. */
typedef struct {
    fern__dstate base;
    fern__dstate *in;
} unary_state;

static void unary_close(fern__dstate *st)
{
    fern__close(((unary_state *)st)->in);
    free(st);
}

static int in_next(unary_state *s, fern_row *out) { return s->in->vt->next(s->in, out); }

/* Open the single input and copy its size / preference into the state. */
static unary_state *unary_open(size_t bytes, const fern__dstate_vt *vt, fern_dataset *ds,
                               fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    fern__dstate *in = fern__open_input(ds, 0, ctx, salt, pass);
    if (!in)
        return NULL;
    unary_state *s = (unary_state *)fern__state_new(bytes, vt, ds, ctx, salt, pass);
    if (!s) {
        fern__close(in);
        return NULL;
    }
    s->in = in;
    s->base.prefer_next = in->prefer_next;
    return s;
}

static fern_dataset *unary_node(size_t bytes, const fern__dnode_vt *vt, fern_dataset *ds)
{
    fern_dataset *n = fern__dataset_new(bytes, vt, 1, &ds);
    if (!n)
        return NULL;
    n->ncols = ds->ncols;
    memcpy(n->cols, ds->cols, sizeof n->cols);
    n->size = ds->size;
    n->random_access = ds->random_access;
    return n;
}

/* ---- batch ------------------------------------------------------------------------- */

typedef struct {
    fern_dataset base;
    int64_t bs;
    int drop;
} batch_node;

static int stack_rows(const fern_dataset *ds, fern_row *rows, int64_t k, fern_row *out)
{
    int ncols = rows[0].n;
    for (int c = 0; c < ncols; c++) {
        const fern_tensor *t0 = rows[0].cols[c];
        int64_t shape[FERN_MAX_DIMS];
        for (int64_t r = 0; r < k; r++)
            if (c >= rows[r].n || fern_tensor_is_symbolic(rows[r].cols[c])) {
                fern_set_error(FERN_ERR_INVALID, "batch: column '%s' of row %lld of the batch is %s",
                               rows[0].names[c], (long long)r, c >= rows[r].n ? "missing" : "symbolic (no data)");
                return FERN_ERR_INVALID;
            }
        if (t0->ndim >= FERN_MAX_DIMS) {
            char d[64];
            fern_set_error(FERN_ERR_INVALID,
                           "batch: column '%s' is %s; stacking needs fewer than %d dims",
                           rows[0].names[c], fern_tensor_desc(t0, d, sizeof d), FERN_MAX_DIMS);
            return FERN_ERR_INVALID;
        }
        shape[0] = k;
        memcpy(shape + 1, t0->shape, (size_t)t0->ndim * sizeof(int64_t));
        for (int64_t r = 1; r < k; r++) {
            const fern_tensor *t = rows[r].cols[c];
            int same = rows[r].n == ncols && t->dtype == t0->dtype && t->ndim == t0->ndim;
            for (int d = 0; same && d < t0->ndim; d++)
                same = t->shape[d] == t0->shape[d];
            if (!same) {
                char a[128], b[128];
                fern_set_error(FERN_ERR_INVALID,
                               "batch: column '%s' of row %lld of the batch is %s but row 0 is %s "
                               "(rows of a batch need one dtype and shape)",
                               rows[0].names[c], (long long)r, fern_tensor_desc(t, a, sizeof a),
                               fern_tensor_desc(t0, b, sizeof b));
                return FERN_ERR_INVALID;
            }
        }
        fern_tensor *bt = fern__tensor_alloc(t0->dtype, t0->ndim + 1, shape, FERN_CPU);
        if (!bt)
            return FERN_ERR_NOMEM;
        size_t per = fern_tensor_nbytes(t0);
        char *dst = fern_tensor_data(bt);
        for (int64_t r = 0; r < k; r++) {
            const fern_tensor *t = rows[r].cols[c];
            if (fern_tensor_is_contiguous(t))
                memcpy(dst + (size_t)r * per, fern_tensor_data(t), per);
            else if (fern_tensor_copy_to(t, dst + (size_t)r * per, per) != FERN_OK) {
                fern_release(bt);
                return fern_last_status();
            }
        }
        fern__row_push(out, ds->cols[c], bt);
    }
    return FERN_OK;
}

typedef struct {
    unary_state u;
    fern_row *rows;
    int64_t cap;
    int done;
} batch_state;

/* Room for k + 1 rows in s->rows (grown as batches fill). */
static int batch_room(batch_state *s, int64_t k)
{
    if (k < s->cap)
        return FERN_OK;
    int64_t cap = s->cap ? s->cap * 2 : 64;
    fern_row *nr = realloc(s->rows, (size_t)cap * sizeof *nr);
    if (!nr) {
        fern_set_error(FERN_ERR_NOMEM, "batch: out of memory for %lld rows", (long long)cap);
        return FERN_ERR_NOMEM;
    }
    s->rows = nr;
    s->cap = cap;
    return FERN_OK;
}

static int batch_finish(batch_state *s, int64_t k, int st, fern_row *out)
{
    const batch_node *n = (const batch_node *)s->u.base.ds;
    if (st == FERN_OK || st == FERN_DATA_END) {
        if (k == 0 || (k < n->bs && n->drop))
            st = FERN_DATA_END;
        else
            st = stack_rows(s->u.base.ds, s->rows, k, out);
    }
    for (int64_t r = 0; r < k; r++)
        fern_row_clear(&s->rows[r]);
    return st;
}

static int batch_next(fern__dstate *st, fern_row *out)
{
    batch_state *s = (batch_state *)st;
    const batch_node *n = (const batch_node *)st->ds;
    if (s->done)
        return FERN_DATA_END;
    int64_t k = 0;
    int r = FERN_OK;
    while (k < n->bs) {
        if ((r = batch_room(s, k)) != FERN_OK)
            break;
        fern__row_init(&s->rows[k]);
        r = in_next(&s->u, &s->rows[k]);
        if (r != FERN_OK) {
            fern_row_clear(&s->rows[k]);
            break;
        }
        k++;
    }
    if (r == FERN_DATA_END)
        s->done = 1;
    return batch_finish(s, k, r, out);
}

static int batch_get(fern__dstate *st, int64_t i, fern_row *out)
{
    batch_state *s = (batch_state *)st;
    const batch_node *n = (const batch_node *)st->ds;
    int64_t insz = s->u.in->size, b = i * n->bs, e = b + n->bs < insz ? b + n->bs : insz;
    fern_row *rows = malloc((size_t)(e - b) * sizeof *rows);
    if (!rows) {
        fern_set_error(FERN_ERR_NOMEM, "batch: out of memory");
        return FERN_ERR_NOMEM;
    }
    int r = FERN_OK;
    int64_t k = 0;
    for (; k < e - b && r == FERN_OK; k++) {
        fern__row_init(&rows[k]);
        r = s->u.in->vt->get(s->u.in, b + k, &rows[k]);
    }
    if (r == FERN_OK)
        r = stack_rows(st->ds, rows, e - b, out);
    for (int64_t j = 0; j < k; j++)
        fern_row_clear(&rows[j]);
    free(rows);
    return r;
}

static void batch_close(fern__dstate *st)
{
    batch_state *s = (batch_state *)st;
    free(s->rows);
    unary_close(st);
}

static const fern__dstate_vt batch_vt = {batch_next, NULL, batch_close};
static const fern__dstate_vt batch_ra_vt = {batch_next, batch_get, batch_close};

static fern__dstate *batch_open(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    const batch_node *n = (const batch_node *)ds;
    batch_state *s = (batch_state *)unary_open(sizeof *s, ds->random_access ? &batch_ra_vt : &batch_vt,
                                               ds, ctx, salt, pass);
    if (!s)
        return NULL;
    if (s->u.in->size >= 0)
        s->u.base.size = n->drop ? s->u.in->size / n->bs : (s->u.in->size + n->bs - 1) / n->bs;
    else
        s->u.base.size = -1;
    return &s->u.base;
}

static const fern__dnode_vt batch_node_vt = {"batch", batch_open, NULL};

fern_dataset *fern_dataset_batch(fern_dataset *ds, int64_t batch_size, int drop_remainder)
{
    if (ds && (batch_size < 1 || batch_size > (1 << 24))) {
        fern_set_error(FERN_ERR_INVALID, "batch: batch_size %lld is outside 1..%d",
                       (long long)batch_size, 1 << 24);
        fern_dataset_release(ds);
        return NULL;
    }
    batch_node *n = (batch_node *)unary_node(sizeof *n, &batch_node_vt, ds);
    if (!n)
        return NULL;
    n->bs = batch_size;
    n->drop = drop_remainder != 0;
    if (ds->size >= 0)
        n->base.size = n->drop ? ds->size / batch_size : (ds->size + batch_size - 1) / batch_size;
    return &n->base;
}

/* ---- shuffle ------------------------------------------------------------------------- */

typedef struct {
    fern_dataset base;
    int64_t buffer;
} shuffle_node;

typedef struct {
    unary_state u;
    fern__drng rng;
    int64_t *perm; /* index mode */
    fern_row *buf; /* stream mode */
    int64_t len, cap;
    int input_done;
} shuffle_state;

static int shuffle_stream_next(fern__dstate *st, fern_row *out)
{
    shuffle_state *s = (shuffle_state *)st;
    int64_t B = ((const shuffle_node *)st->ds)->buffer;
    while (!s->input_done && s->len < B) {
        if (s->len == s->cap) {
            int64_t cap = s->cap ? s->cap * 2 : 256;
            if (cap > B)
                cap = B;
            fern_row *nb = realloc(s->buf, (size_t)cap * sizeof *nb);
            if (!nb) {
                fern_set_error(FERN_ERR_NOMEM, "shuffle: out of memory for a %lld-row buffer",
                               (long long)cap);
                return FERN_ERR_NOMEM;
            }
            s->buf = nb;
            s->cap = cap;
        }
        fern__row_init(&s->buf[s->len]);
        int r = in_next(&s->u, &s->buf[s->len]);
        if (r == FERN_DATA_END)
            s->input_done = 1;
        else if (r != FERN_OK)
            return r;
        else
            s->len++;
    }
    if (!s->input_done) {
        fern_row x;
        fern__row_init(&x);
        int r = in_next(&s->u, &x);
        if (r == FERN_OK) {
            int64_t j = fern__drng_below(&s->rng, B);
            fern__row_move(out, &s->buf[j]);
            fern__row_move(&s->buf[j], &x);
            return FERN_OK;
        }
        if (r != FERN_DATA_END)
            return r;
        s->input_done = 1;
    }
    if (s->len == 0)
        return FERN_DATA_END;
    int64_t j = fern__drng_below(&s->rng, s->len);
    fern__row_move(out, &s->buf[j]);
    if (j != s->len - 1)
        fern__row_move(&s->buf[j], &s->buf[s->len - 1]);
    s->len--;
    return FERN_OK;
}

static int shuffle_get(fern__dstate *st, int64_t i, fern_row *out)
{
    shuffle_state *s = (shuffle_state *)st;
    return s->u.in->vt->get(s->u.in, s->perm[i], out);
}

static void shuffle_close(fern__dstate *st)
{
    shuffle_state *s = (shuffle_state *)st;
    for (int64_t i = 0; i < s->len; i++)
        fern_row_clear(&s->buf[i]);
    free(s->buf);
    free(s->perm);
    unary_close(st);
}

static const fern__dstate_vt shuffle_stream_vt = {shuffle_stream_next, NULL, shuffle_close};
static const fern__dstate_vt shuffle_index_vt = {fern__next_by_get, shuffle_get, shuffle_close};
static const fern__dstate_vt shuffle_stream_ra_vt = {shuffle_stream_next, shuffle_get, shuffle_close};

/* The buffered-shuffle order of 0..n-1 (the same draws as the stream mode). */
static int shuffle_perm(shuffle_state *s, int64_t n, int64_t B)
{
    s->perm = malloc((size_t)(n ? n : 1) * sizeof *s->perm);
    int64_t bl = B < n ? B : n;
    int64_t *buf = malloc((size_t)(bl ? bl : 1) * sizeof *buf);
    if (!s->perm || !buf) {
        free(buf);
        fern_set_error(FERN_ERR_NOMEM, "shuffle: out of memory for %lld indices", (long long)n);
        return FERN_ERR_NOMEM;
    }
    int64_t len = 0, o = 0;
    for (int64_t x = 0; x < n; x++) {
        if (len < B) {
            buf[len++] = x;
            continue;
        }
        int64_t j = fern__drng_below(&s->rng, B);
        s->perm[o++] = buf[j];
        buf[j] = x;
    }
    while (len > 0) {
        int64_t j = fern__drng_below(&s->rng, len);
        s->perm[o++] = buf[j];
        buf[j] = buf[--len];
    }
    free(buf);
    return FERN_OK;
}

static fern__dstate *shuffle_open(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    fern__dstate *in = fern__open_input(ds, 0, ctx, salt, pass);
    if (!in)
        return NULL;
    int index_mode = in->vt->get && in->size >= 0;
    const fern__dstate_vt *vt = index_mode ? (in->prefer_next ? &shuffle_stream_ra_vt : &shuffle_index_vt)
                                           : &shuffle_stream_vt;
    shuffle_state *s = (shuffle_state *)fern__state_new(sizeof *s, vt, ds, ctx, salt, pass);
    if (!s) {
        fern__close(in);
        return NULL;
    }
    s->u.in = in;
    s->u.base.prefer_next = in->prefer_next;
    s->u.base.size = in->size;
    fern__drng_init(&s->rng, fern__mix2(fern__mix2(ctx->seed, salt), pass));
    if (index_mode) {
        fern__drng r0 = s->rng;
        if (shuffle_perm(s, in->size, ((const shuffle_node *)ds)->buffer)) {
            shuffle_close(&s->u.base);
            return NULL;
        }
        s->rng = r0; /* the stream mode replays the same draws */
    }
    return &s->u.base;
}

static const fern__dnode_vt shuffle_node_vt = {"shuffle", shuffle_open, NULL};

fern_dataset *fern_dataset_shuffle(fern_dataset *ds, int64_t buffer_size)
{
    if (ds && buffer_size < 1) {
        fern_set_error(FERN_ERR_INVALID, "shuffle: buffer_size %lld must be >= 1",
                       (long long)buffer_size);
        fern_dataset_release(ds);
        return NULL;
    }
    shuffle_node *n = (shuffle_node *)unary_node(sizeof *n, &shuffle_node_vt, ds);
    if (!n)
        return NULL;
    n->buffer = buffer_size;
    return &n->base;
}

/* ---- repeat ----------------------------------------------------------------------------- */

typedef struct {
    fern_dataset base;
    int64_t count;
} repeat_node;

typedef struct {
    fern__dstate base;
    fern__dstate *cur;
    int64_t rep, rows_this_rep;
    int done;
} repeat_state;

static int repeat_next(fern__dstate *st, fern_row *out)
{
    repeat_state *s = (repeat_state *)st;
    int64_t count = ((const repeat_node *)st->ds)->count;
    while (!s->done) {
        if (!s->cur) {
            if (count >= 0 && s->rep >= count) {
                s->done = 1;
                break;
            }
            uint64_t p = count > 0 ? st->pass * (uint64_t)count + (uint64_t)s->rep
                                   : fern__mix2(st->pass, (uint64_t)s->rep);
            s->cur = fern__open_input(st->ds, 0, st->ctx, st->salt, p);
            if (!s->cur)
                return fern__status_or(fern_last_status() ? fern_last_status() : FERN_ERR_INTERNAL);
            s->rows_this_rep = 0;
        }
        int r = s->cur->vt->next(s->cur, out);
        if (r != FERN_DATA_END) {
            if (r == FERN_OK)
                s->rows_this_rep++;
            return r;
        }
        fern__close(s->cur);
        s->cur = NULL;
        s->rep++;
        if (s->rows_this_rep == 0) /* an empty input would repeat forever */
            s->done = 1;
    }
    return FERN_DATA_END;
}

static void repeat_close(fern__dstate *st)
{
    fern__close(((repeat_state *)st)->cur);
    free(st);
}

static const fern__dstate_vt repeat_vt = {repeat_next, NULL, repeat_close};

static fern__dstate *repeat_open(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    fern__dstate *st = fern__state_new(sizeof(repeat_state), &repeat_vt, ds, ctx, salt, pass);
    if (st)
        st->prefer_next = 1;
    return st;
}

static const fern__dnode_vt repeat_node_vt = {"repeat", repeat_open, NULL};

fern_dataset *fern_dataset_repeat(fern_dataset *ds, int64_t count)
{
    repeat_node *n = (repeat_node *)unary_node(sizeof *n, &repeat_node_vt, ds);
    if (!n)
        return NULL;
    n->count = count < 0 ? -1 : count;
    n->base.random_access = 0;
    n->base.size = count < 0 ? -1 : ds->size < 0 ? -1 : ds->size * count;
    return &n->base;
}

/* ---- take / skip / shard / subset: index maps ------------------------------------------- */

enum { IX_TAKE, IX_SKIP, IX_SHARD, IX_SUBSET };

typedef struct {
    fern_dataset base;
    int kind;
    int64_t a, b;      /* take: n; skip: n; shard: num, id */
    int64_t *indices;  /* subset */
    int64_t n_indices;
} index_node;

typedef struct {
    unary_state u;
    int64_t seen; /* input rows consumed by next() */
    int64_t emitted;
    int done;
} index_state;

static int64_t index_size(const index_node *n, int64_t in)
{
    switch (n->kind) {
    case IX_TAKE: return in < 0 ? -1 : in < n->a ? in : n->a;
    case IX_SKIP: return in < 0 ? -1 : in > n->a ? in - n->a : 0;
    case IX_SHARD: return in < 0 ? -1 : in > n->b ? (in - n->b + n->a - 1) / n->a : 0;
    default: return n->n_indices;
    }
}

static int64_t index_map(const index_node *n, int64_t i)
{
    switch (n->kind) {
    case IX_TAKE: return i;
    case IX_SKIP: return i + n->a;
    case IX_SHARD: return n->b + i * n->a;
    default: return n->indices[i];
    }
}

static int index_get(fern__dstate *st, int64_t i, fern_row *out)
{
    index_state *s = (index_state *)st;
    return s->u.in->vt->get(s->u.in, index_map((const index_node *)st->ds, i), out);
}

static int index_stream_next(fern__dstate *st, fern_row *out)
{
    index_state *s = (index_state *)st;
    const index_node *n = (const index_node *)st->ds;
    if (s->done)
        return FERN_DATA_END;
    if (n->kind == IX_TAKE && s->emitted >= n->a) {
        s->done = 1;
        return FERN_DATA_END;
    }
    for (;;) {
        int r = in_next(&s->u, out);
        if (r != FERN_OK) {
            if (r == FERN_DATA_END)
                s->done = 1;
            return r;
        }
        int64_t k = s->seen++;
        int keep = n->kind == IX_TAKE                                   ? 1
                   : n->kind == IX_SKIP                                 ? k >= n->a
                   : /* shard */ k % n->a == n->b;
        if (keep) {
            s->emitted++;
            return FERN_OK;
        }
        fern_row_clear(out);
    }
}

static const fern__dstate_vt index_stream_vt = {index_stream_next, NULL, unary_close};
static const fern__dstate_vt index_stream_ra_vt = {index_stream_next, index_get, unary_close};
static const fern__dstate_vt index_get_vt = {fern__next_by_get, index_get, unary_close};

static fern__dstate *index_open(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    const index_node *n = (const index_node *)ds;
    fern__dstate *in = fern__open_input(ds, 0, ctx, salt, pass);
    if (!in)
        return NULL;
    int ra = in->vt->get != NULL && in->size >= 0;
    const fern__dstate_vt *vt = !ra ? &index_stream_vt
                                : (in->prefer_next && n->kind != IX_SUBSET) ? &index_stream_ra_vt
                                                                             : &index_get_vt;
    index_state *s = (index_state *)fern__state_new(sizeof *s, vt, ds, ctx, salt, pass);
    if (!s) {
        fern__close(in);
        return NULL;
    }
    s->u.in = in;
    s->u.base.prefer_next = in->prefer_next;
    s->u.base.size = index_size(n, in->size);
    return &s->u.base;
}

static void index_destroy(fern_dataset *ds) { free(((index_node *)ds)->indices); }

static const fern__dnode_vt take_vt = {"take", index_open, index_destroy};
static const fern__dnode_vt skip_vt = {"skip", index_open, index_destroy};
static const fern__dnode_vt shard_vt = {"shard", index_open, index_destroy};
static const fern__dnode_vt subset_vt = {"subset", index_open, index_destroy};

static fern_dataset *index_new(fern_dataset *ds, const fern__dnode_vt *vt, int kind, int64_t a,
                               int64_t b)
{
    index_node *n = (index_node *)unary_node(sizeof *n, vt, ds);
    if (!n)
        return NULL;
    n->kind = kind;
    n->a = a;
    n->b = b;
    n->base.size = index_size(n, ds->size);
    return &n->base;
}

fern_dataset *fern_dataset_take(fern_dataset *ds, int64_t n)
{
    if (ds && n < 0) {
        fern_set_error(FERN_ERR_INVALID, "take: count %lld is negative", (long long)n);
        fern_dataset_release(ds);
        return NULL;
    }
    return index_new(ds, &take_vt, IX_TAKE, n, 0);
}

fern_dataset *fern_dataset_skip(fern_dataset *ds, int64_t n)
{
    if (ds && n < 0) {
        fern_set_error(FERN_ERR_INVALID, "skip: count %lld is negative", (long long)n);
        fern_dataset_release(ds);
        return NULL;
    }
    return index_new(ds, &skip_vt, IX_SKIP, n, 0);
}

fern_dataset *fern_dataset_shard(fern_dataset *ds, int64_t num_shards, int64_t shard_id)
{
    if (ds && (num_shards < 1 || shard_id < 0 || shard_id >= num_shards)) {
        fern_set_error(FERN_ERR_INVALID, "shard: shard_id %lld is not in 0..num_shards-1 (num_shards %lld)",
                       (long long)shard_id, (long long)num_shards);
        fern_dataset_release(ds);
        return NULL;
    }
    return index_new(ds, &shard_vt, IX_SHARD, num_shards, shard_id);
}

fern_dataset *fern_dataset_subset(fern_dataset *ds, int64_t n, const int64_t *indices)
{
    if (!ds)
        return NULL;
    if (!ds->random_access || ds->size < 0) {
        fern_set_error(FERN_ERR_INVALID, "subset: %s is not random access", fern_dataset_name(ds));
        fern_dataset_release(ds);
        return NULL;
    }
    if (n < 0 || (n > 0 && !indices)) {
        fern_set_error(FERN_ERR_INVALID, "subset: %lld indices%s", (long long)n,
                       n < 0 ? "" : " but indices is NULL");
        fern_dataset_release(ds);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= ds->size) {
            fern_set_error(FERN_ERR_INVALID, "subset: index %lld (at %lld) is outside 0..%lld",
                           (long long)indices[i], (long long)i, (long long)ds->size - 1);
            fern_dataset_release(ds);
            return NULL;
        }
    int64_t *copy = malloc((size_t)(n ? n : 1) * sizeof *copy);
    if (!copy) {
        fern_set_error(FERN_ERR_NOMEM, "subset: out of memory");
        fern_dataset_release(ds);
        return NULL;
    }
    if (n)
        memcpy(copy, indices, (size_t)n * sizeof *copy);
    index_node *nd = (index_node *)unary_node(sizeof *nd, &subset_vt, ds);
    if (!nd) {
        free(copy);
        return NULL;
    }
    nd->kind = IX_SUBSET;
    nd->indices = copy;
    nd->n_indices = n;
    nd->base.size = n;
    return &nd->base;
}

fern_status fern_dataset_split(fern_dataset *ds, double fraction, uint64_t seed,
                               fern_dataset **first, fern_dataset **second)
{
    if (first)
        *first = NULL;
    if (second)
        *second = NULL;
    if (!ds) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "split: dataset is NULL");
        return fern_last_status();
    }
    if (!first || !second || !(fraction >= 0.0 && fraction <= 1.0)) {
        fern_set_error(FERN_ERR_INVALID, "split: %s", !first || !second ? "output pointer is NULL"
                                                                         : "fraction must be in [0, 1]");
        fern_dataset_release(ds);
        return FERN_ERR_INVALID;
    }
    if (!ds->random_access || ds->size < 0) {
        fern_set_error(FERN_ERR_INVALID, "split: %s is not random access", fern_dataset_name(ds));
        fern_dataset_release(ds);
        return FERN_ERR_INVALID;
    }
    int64_t n = ds->size;
    int64_t *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order) {
        fern_set_error(FERN_ERR_NOMEM, "split: out of memory");
        fern_dataset_release(ds);
        return FERN_ERR_NOMEM;
    }
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    if (seed) {
        fern__drng r;
        fern__drng_init(&r, fern__mix2(seed, 0x53504C4954ull));
        for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
            int64_t j = fern__drng_below(&r, i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    }
    double k = fraction * (double)n;
    int64_t n1 = (int64_t)(k + 0.5);
    if (n1 > n)
        n1 = n;
    fern_dataset_retain(ds);
    fern_dataset *a = fern_dataset_subset(ds, n1, order);
    fern_dataset *b = fern_dataset_subset(ds, n - n1, order + n1);
    free(order);
    if (!a || !b) {
        fern_dataset_release(a);
        fern_dataset_release(b);
        return fern_last_status();
    }
    *first = a;
    *second = b;
    return FERN_OK;
}

/* ---- zip / concat ------------------------------------------------------------------------ */

typedef struct {
    fern_dataset base;
    int *colmap; /* concat: for input i, column j of the output is input column colmap[i*nc+j] */
} multi_node;

typedef struct {
    fern__dstate base;
    int n;
    fern__dstate **in;
    int64_t *offsets; /* concat: first row of input i (random access) */
    int cur;          /* concat stream: current input */
    int done;
} multi_state;

static void multi_close(fern__dstate *st)
{
    multi_state *s = (multi_state *)st;
    for (int i = 0; i < s->n; i++)
        fern__close(s->in[i]);
    free(s->in);
    free(s->offsets);
    free(s);
}

static int zip_fill(multi_state *s, int64_t idx, fern_row *out)
{
    fern_row part;
    for (int i = 0; i < s->n; i++) {
        fern__row_init(&part);
        int r = idx < 0 ? s->in[i]->vt->next(s->in[i], &part) : s->in[i]->vt->get(s->in[i], idx, &part);
        if (r != FERN_OK) {
            fern_row_clear(&part);
            fern_row_clear(out);
            return r;
        }
        for (int j = 0; j < part.n; j++)
            fern__row_push(out, part.names[j], part.cols[j]);
        part.n = 0;
    }
    return FERN_OK;
}

static int zip_next(fern__dstate *st, fern_row *out)
{
    multi_state *s = (multi_state *)st;
    if (s->done)
        return FERN_DATA_END;
    int r = zip_fill(s, -1, out);
    if (r == FERN_DATA_END)
        s->done = 1;
    return r;
}

static int zip_get(fern__dstate *st, int64_t i, fern_row *out) { return zip_fill((multi_state *)st, i, out); }

static int concat_pick(multi_state *s, fern_row *row, int i)
{
    const multi_node *n = (const multi_node *)s->base.ds;
    int nc = n->base.ncols;
    fern_row tmp;
    fern__row_init(&tmp);
    for (int j = 0; j < nc; j++) {
        tmp.names[j] = n->base.cols[j];
        tmp.cols[j] = row->cols[n->colmap[i * nc + j]];
    }
    tmp.n = nc;
    row->n = 0;
    *row = tmp;
    return FERN_OK;
}

static int concat_next(fern__dstate *st, fern_row *out)
{
    multi_state *s = (multi_state *)st;
    while (s->cur < s->n) {
        int r = s->in[s->cur]->vt->next(s->in[s->cur], out);
        if (r == FERN_OK)
            return concat_pick(s, out, s->cur);
        if (r != FERN_DATA_END)
            return r;
        s->cur++;
    }
    return FERN_DATA_END;
}

static int concat_get(fern__dstate *st, int64_t i, fern_row *out)
{
    multi_state *s = (multi_state *)st;
    int k = 0;
    while (k + 1 < s->n && i >= s->offsets[k + 1])
        k++;
    int r = s->in[k]->vt->get(s->in[k], i - s->offsets[k], out);
    return r == FERN_OK ? concat_pick(s, out, k) : r;
}

static const fern__dstate_vt zip_vt = {zip_next, NULL, multi_close};
static const fern__dstate_vt zip_ra_vt = {zip_next, zip_get, multi_close};
static const fern__dstate_vt concat_vt = {concat_next, NULL, multi_close};
static const fern__dstate_vt concat_ra_vt = {concat_next, concat_get, multi_close};

static fern__dstate *multi_open(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    int is_zip = strcmp(ds->vt->kind, "zip") == 0;
    multi_state *s = (multi_state *)fern__state_new(sizeof *s, &zip_vt, ds, ctx, salt, pass);
    if (!s)
        return NULL;
    s->in = calloc((size_t)ds->n_inputs, sizeof *s->in);
    s->offsets = calloc((size_t)ds->n_inputs + 1, sizeof *s->offsets);
    if (!s->in || !s->offsets) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", ds->vt->kind);
        multi_close(&s->base);
        return NULL;
    }
    int ra = 1, prefer = 0, unknown = 0;
    int64_t size = is_zip ? INT64_MAX : 0;
    for (int i = 0; i < ds->n_inputs; i++) {
        s->in[i] = fern__open_input(ds, i, ctx, salt, pass);
        if (!s->in[i]) {
            multi_close(&s->base);
            return NULL;
        }
        s->n = i + 1;
        fern__dstate *c = s->in[i];
        ra = ra && c->vt->get && c->size >= 0;
        prefer = prefer || c->prefer_next;
        s->offsets[i] = size;
        if (c->size < 0)
            unknown = 1;
        else if (is_zip)
            size = c->size < size ? c->size : size;
        else
            size += c->size;
    }
    if (unknown)
        size = -1;
    s->offsets[s->n] = size;
    s->base.size = size;
    s->base.prefer_next = prefer;
    s->base.vt = is_zip ? (ra ? &zip_ra_vt : &zip_vt) : (ra ? &concat_ra_vt : &concat_vt);
    return &s->base;
}

static void multi_destroy(fern_dataset *ds) { free(((multi_node *)ds)->colmap); }

static const fern__dnode_vt zip_node_vt = {"zip", multi_open, multi_destroy};
static const fern__dnode_vt concat_node_vt = {"concat", multi_open, multi_destroy};

static int multi_check(const char *who, fern_dataset *const *dss, int n)
{
    if (n < 1 || !dss) {
        fern_set_error(FERN_ERR_INVALID, "%s: needs at least one dataset", who);
        return -1;
    }
    return 0;
}

fern_dataset *fern_dataset_zip(fern_dataset *const *dss, int n)
{
    if (multi_check("zip", dss, n))
        return NULL;
    multi_node *m = (multi_node *)fern__dataset_new(sizeof *m, &zip_node_vt, n, dss);
    if (!m)
        return NULL;
    int nc = 0, ra = 1;
    int64_t size = INT64_MAX;
    for (int i = 0; i < n; i++) {
        fern_dataset *d = dss[i];
        for (int j = 0; j < d->ncols; j++) {
            if (nc >= FERN_ROW_MAX_COLS) {
                fern_set_error(FERN_ERR_INVALID, "zip: more than %d columns in all", FERN_ROW_MAX_COLS);
                fern_dataset_release(&m->base);
                return NULL;
            }
            for (int k = 0; k < nc; k++)
                if (m->base.cols[k] == d->cols[j]) {
                    fern_set_error(FERN_ERR_INVALID,
                                   "zip: column '%s' appears in more than one dataset (rename it first)",
                                   d->cols[j]);
                    fern_dataset_release(&m->base);
                    return NULL;
                }
            m->base.cols[nc++] = d->cols[j];
        }
        ra = ra && d->random_access;
        if (d->size < 0)
            size = -1;
        else if (size != -1 && d->size < size)
            size = d->size;
    }
    m->base.ncols = nc;
    m->base.random_access = ra;
    m->base.size = size == INT64_MAX ? -1 : size;
    return &m->base;
}

fern_dataset *fern_dataset_concat(fern_dataset *const *dss, int n)
{
    if (multi_check("concat", dss, n))
        return NULL;
    multi_node *m = (multi_node *)fern__dataset_new(sizeof *m, &concat_node_vt, n, dss);
    if (!m)
        return NULL;
    fern_dataset *d0 = dss[0];
    int nc = d0->ncols;
    m->base.ncols = nc;
    memcpy(m->base.cols, d0->cols, sizeof m->base.cols);
    m->colmap = malloc((size_t)(n * nc + 1) * sizeof *m->colmap);
    if (!m->colmap) {
        fern_set_error(FERN_ERR_NOMEM, "concat: out of memory");
        fern_dataset_release(&m->base);
        return NULL;
    }
    int ra = 1;
    int64_t size = 0;
    for (int i = 0; i < n; i++) {
        fern_dataset *d = dss[i];
        int ok = d->ncols == nc;
        for (int j = 0; ok && j < nc; j++) {
            int k = fern__dataset_col_index(d, d0->cols[j]);
            ok = k >= 0;
            m->colmap[i * nc + j] = k;
        }
        if (!ok) {
            fern_set_error(FERN_ERR_INVALID,
                           "concat: dataset %d (%s) has columns different from dataset 0 (%s)", i,
                           fern_dataset_name(d), fern_dataset_name(d0));
            fern_dataset_release(&m->base);
            return NULL;
        }
        ra = ra && d->random_access;
        size = size < 0 || d->size < 0 ? -1 : size + d->size;
    }
    m->base.random_access = ra;
    m->base.size = size;
    return &m->base;
}

/* ---- project / rename ------------------------------------------------------------------- */

typedef struct {
    fern_dataset base;
    int idx[FERN_ROW_MAX_COLS];
} select_node;

typedef struct {
    unary_state u;
} select_state;

static int select_apply(const select_node *n, fern_row *row, int r)
{
    if (r != FERN_OK)
        return r;
    fern_row tmp;
    fern__row_init(&tmp);
    int used[FERN_ROW_MAX_COLS] = {0};
    for (int j = 0; j < n->base.ncols; j++) {
        tmp.names[j] = n->base.cols[j];
        tmp.cols[j] = row->cols[n->idx[j]];
        used[n->idx[j]] = 1;
    }
    tmp.n = n->base.ncols;
    for (int j = 0; j < row->n; j++)
        if (!used[j])
            fern_release(row->cols[j]);
    *row = tmp;
    return FERN_OK;
}

static int select_next(fern__dstate *st, fern_row *out)
{
    select_state *s = (select_state *)st;
    return select_apply((const select_node *)st->ds, out, in_next(&s->u, out));
}

static int select_get(fern__dstate *st, int64_t i, fern_row *out)
{
    select_state *s = (select_state *)st;
    return select_apply((const select_node *)st->ds, out, s->u.in->vt->get(s->u.in, i, out));
}

static const fern__dstate_vt select_vt = {select_next, NULL, unary_close};
static const fern__dstate_vt select_ra_vt = {select_next, select_get, unary_close};

static fern__dstate *select_open(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    fern__dstate *in = fern__open_input(ds, 0, ctx, salt, pass);
    if (!in)
        return NULL;
    select_state *s = (select_state *)fern__state_new(sizeof *s, in->vt->get ? &select_ra_vt : &select_vt,
                                                      ds, ctx, salt, pass);
    if (!s) {
        fern__close(in);
        return NULL;
    }
    s->u.in = in;
    s->u.base.size = in->size;
    s->u.base.prefer_next = in->prefer_next;
    return &s->u.base;
}

static const fern__dnode_vt project_vt = {"project", select_open, NULL};
static const fern__dnode_vt rename_vt = {"rename", select_open, NULL};

fern_dataset *fern_dataset_project(fern_dataset *ds, int n, const char *const *names)
{
    select_node *s = (select_node *)unary_node(sizeof *s, &project_vt, ds);
    if (!s)
        return NULL;
    if (n < 1 || n > ds->ncols || !names) {
        fern_set_error(FERN_ERR_INVALID, "project: %d columns requested from a dataset of %d", n,
                       ds->ncols);
        fern_dataset_release(&s->base);
        return NULL;
    }
    for (int j = 0; j < n; j++) {
        int k = fern__dataset_col_index(ds, names[j]);
        if (k < 0) {
            fern_set_error(FERN_ERR_INVALID, "project: %s has no column '%s'", fern_dataset_name(ds),
                           names[j] ? names[j] : "(null)");
            fern_dataset_release(&s->base);
            return NULL;
        }
        for (int i = 0; i < j; i++)
            if (s->idx[i] == k) {
                fern_set_error(FERN_ERR_INVALID, "project: column '%s' requested twice", names[j]);
                fern_dataset_release(&s->base);
                return NULL;
            }
        s->idx[j] = k;
        s->base.cols[j] = ds->cols[k];
    }
    s->base.ncols = n;
    return &s->base;
}

fern_dataset *fern_dataset_rename(fern_dataset *ds, int n, const char *const *old_names,
                                  const char *const *new_names)
{
    select_node *s = (select_node *)unary_node(sizeof *s, &rename_vt, ds);
    if (!s)
        return NULL;
    if (n < 0 || (n > 0 && (!old_names || !new_names))) {
        fern_set_error(FERN_ERR_INVALID, "rename: bad name arrays");
        fern_dataset_release(&s->base);
        return NULL;
    }
    const char *names[FERN_ROW_MAX_COLS];
    for (int j = 0; j < ds->ncols; j++) {
        s->idx[j] = j;
        names[j] = ds->cols[j];
    }
    for (int i = 0; i < n; i++) {
        int k = fern__dataset_col_index(ds, old_names[i]);
        if (k < 0) {
            fern_set_error(FERN_ERR_INVALID, "rename: %s has no column '%s'", fern_dataset_name(ds),
                           old_names[i] ? old_names[i] : "(null)");
            fern_dataset_release(&s->base);
            return NULL;
        }
        names[k] = new_names[i];
    }
    if (fern__dataset_set_cols(&s->base, ds->ncols, names, "rename")) {
        fern_dataset_release(&s->base);
        return NULL;
    }
    return &s->base;
}
