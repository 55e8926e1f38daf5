/* The pipeline engine: dataset nodes (immutable, reference counted), the
 * per-pass states an iterator opens over them, and the iterator with its
 * prefetching driver thread.
 *
 * A state's next() yields the rows of one pass in order. Random-access
 * states also offer get(i), callable from many threads; map stages use it
 * to read and transform rows in parallel, then hand them out in sequence
 * order through an ordered ring (map.c). Every random draw is keyed by the
 * iterator seed, the stage's structural position (salt), the pass and the
 * row's index, so results never depend on thread timing. */
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"

/* ---- dataset nodes ----------------------------------------------------------------- */

fern_dataset *fern__dataset_new(size_t bytes, const fern__dnode_vt *vt, int n_inputs,
                                fern_dataset *const *inputs)
{
    int bad = 0;
    for (int i = 0; i < n_inputs; i++)
        if (!inputs[i])
            bad = 1;
    if (bad) {
        for (int i = 0; i < n_inputs; i++)
            fern_dataset_release(inputs[i]);
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "%s: input dataset is NULL", vt->kind);
        return NULL;
    }
    fern_dataset *ds = calloc(1, bytes);
    fern_dataset **in = n_inputs > 0 ? malloc((size_t)n_inputs * sizeof *in) : NULL;
    if (!ds || (n_inputs > 0 && !in)) {
        free(ds);
        free(in);
        for (int i = 0; i < n_inputs; i++)
            fern_dataset_release(inputs[i]);
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", vt->kind);
        return NULL;
    }
    atomic_init(&ds->refcount, 1);
    ds->vt = vt;
    ds->size = -1;
    ds->n_inputs = n_inputs;
    ds->inputs = in;
    for (int i = 0; i < n_inputs; i++)
        in[i] = inputs[i];
    return ds;
}

int fern__dataset_set_cols(fern_dataset *ds, int n, const char *const *names, const char *who)
{
    if (n < 0 || n > FERN_ROW_MAX_COLS) {
        fern_set_error(FERN_ERR_INVALID, "%s: %d columns (a row holds 0..%d)", who, n,
                       FERN_ROW_MAX_COLS);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (fern__check_col_name(who, names[i]))
            return -1;
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0) {
                fern_set_error(FERN_ERR_INVALID, "%s: duplicate column name '%s'", who, names[i]);
                return -1;
            }
        const char *in = fern__intern(names[i]);
        if (!in)
            return -1;
        ds->cols[i] = in;
    }
    ds->ncols = n;
    return 0;
}

int fern__dataset_col_index(const fern_dataset *ds, const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < ds->ncols; i++)
        if (strcmp(ds->cols[i], name) == 0)
            return i;
    return -1;
}

fern_dataset *fern_dataset_retain(fern_dataset *ds)
{
    if (ds)
        atomic_fetch_add(&ds->refcount, 1);
    return ds;
}

void fern_dataset_release(fern_dataset *ds)
{
    if (!ds || atomic_fetch_sub(&ds->refcount, 1) != 1)
        return;
    if (ds->vt->destroy)
        ds->vt->destroy(ds);
    for (int i = 0; i < ds->n_inputs; i++)
        fern_dataset_release(ds->inputs[i]);
    free(ds->inputs);
    free(ds->desc);
    free(ds);
}

int64_t fern_dataset_size(const fern_dataset *ds) { return ds ? ds->size : -1; }
int fern_dataset_ncols(const fern_dataset *ds) { return ds ? ds->ncols : 0; }
const char *fern_dataset_col_name(const fern_dataset *ds, int i)
{
    return ds && i >= 0 && i < ds->ncols ? ds->cols[i] : NULL;
}
int fern_dataset_is_random_access(const fern_dataset *ds) { return ds ? ds->random_access : 0; }

static pthread_mutex_t desc_lock = PTHREAD_MUTEX_INITIALIZER;

static char *build_desc(fern_dataset *ds)
{
    if (ds->desc)
        return ds->desc;
    size_t len = strlen(ds->vt->kind) + 3;
    for (int i = 0; i < ds->n_inputs; i++) {
        char *d = build_desc(ds->inputs[i]);
        len += (d ? strlen(d) : 1) + 2;
    }
    char *s = malloc(len);
    if (!s)
        return NULL;
    strcpy(s, ds->vt->kind);
    if (ds->n_inputs) {
        strcat(s, "(");
        for (int i = 0; i < ds->n_inputs; i++) {
            if (i)
                strcat(s, ", ");
            strcat(s, ds->inputs[i]->desc ? ds->inputs[i]->desc : "?");
        }
        strcat(s, ")");
    }
    ds->desc = s;
    return s;
}

const char *fern_dataset_name(const fern_dataset *ds)
{
    if (!ds)
        return "(null)";
    pthread_mutex_lock(&desc_lock);
    const char *s = build_desc((fern_dataset *)ds);
    pthread_mutex_unlock(&desc_lock);
    return s ? s : ds->vt->kind;
}

/* ---- states --------------------------------------------------------------------------- */

fern__dstate *fern__state_new(size_t bytes, const fern__dstate_vt *vt, fern_dataset *ds,
                              fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    fern__dstate *st = calloc(1, bytes);
    if (!st) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", ds->vt->kind);
        return NULL;
    }
    st->vt = vt;
    st->ds = ds;
    st->ctx = ctx;
    st->salt = salt;
    st->pass = pass;
    st->size = ds->size;
    return st;
}

fern__dstate *fern__open(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    return ds->vt->open(ds, ctx, salt, pass);
}

fern__dstate *fern__open_input(fern_dataset *ds, int i, fern__dctx *ctx, uint64_t salt,
                               uint64_t pass)
{
    return fern__open(ds->inputs[i], ctx, fern__mix2(salt, (uint64_t)i + 1), pass);
}

void fern__close(fern__dstate *st)
{
    if (st)
        st->vt->close(st);
}

int fern__row_conform(fern_row *row, const fern_dataset *ds, const char *who)
{
    if (row->n == ds->ncols) {
        int same = 1;
        for (int i = 0; i < row->n && same; i++)
            same = row->names[i] == ds->cols[i];
        if (same)
            return FERN_OK;
    }
    fern_row tmp;
    fern__row_init(&tmp);
    for (int i = 0; i < ds->ncols; i++) {
        int j = fern_row_find(row, ds->cols[i]);
        if (j < 0 || !row->cols[j]) {
            fern_set_error(FERN_ERR_INVALID, "%s: the row has no column '%s' (declared columns: %d, row has %d)",
                           who, ds->cols[i], ds->ncols, row->n);
            fern_row_clear(&tmp);
            return FERN_ERR_INVALID;
        }
        fern__row_push(&tmp, ds->cols[i], fern_retain(row->cols[j]));
    }
    if (row->n != ds->ncols) {
        for (int j = 0; j < row->n; j++)
            if (fern__dataset_col_index(ds, row->names[j]) < 0) {
                fern_set_error(FERN_ERR_INVALID, "%s: the row has an undeclared column '%s'", who,
                               row->names[j]);
                break;
            }
        fern_row_clear(&tmp);
        return FERN_ERR_INVALID;
    }
    fern__row_move(row, &tmp);
    return FERN_OK;
}

int fern__next_by_get(fern__dstate *st, fern_row *out)
{
    if (fern__cancelled(st->ctx))
        return FERN__CANCELLED;
    if (st->size >= 0 && st->pos >= st->size)
        return FERN_DATA_END;
    return st->vt->get(st, st->pos++, out);
}

/* ---- iterators ----------------------------------------------------------------------- */

struct fern_data_iter {
    fern_dataset *ds;
    fern__dctx ctx;
    uint64_t seed, epoch;
    int prefetch; /* queue capacity; 0: synchronous */
    fern__dstate *root;
    /* driver thread and its output queue */
    pthread_t thread;
    int running;
    pthread_mutex_t m;
    pthread_cond_t cv_put, cv_get;
    fern_row *queue;
    int head, count;
    int stop;
    int done; /* 0, FERN_DATA_END, or an error status */
    fern_status err_status;
    char err[1024];
};

static void record_done(fern_data_iter *it, int st)
{
    it->done = st;
    if (st > 0) {
        it->err_status = fern_last_status() != FERN_OK ? fern_last_status() : (fern_status)st;
        snprintf(it->err, sizeof it->err, "%s",
                 fern_last_error()[0] ? fern_last_error() : "data pipeline failed");
    }
}

static void *driver_main(void *arg)
{
    fern_data_iter *it = arg;
    fern_row r;
    fern__row_init(&r);
    for (;;) {
        fern_clear_error();
        int st = it->root->vt->next(it->root, &r);
        pthread_mutex_lock(&it->m);
        if (st == FERN_OK) {
            while (it->count == it->prefetch && !it->stop)
                pthread_cond_wait(&it->cv_put, &it->m);
            if (it->stop) {
                pthread_mutex_unlock(&it->m);
                fern_row_clear(&r);
                break;
            }
            int slot = (it->head + it->count) % it->prefetch;
            fern__row_init(&it->queue[slot]);
            fern__row_move(&it->queue[slot], &r);
            it->count++;
            pthread_cond_signal(&it->cv_get);
            pthread_mutex_unlock(&it->m);
            continue;
        }
        fern_row_clear(&r);
        if (st != FERN__CANCELLED)
            record_done(it, fern__status_or(st));
        else if (!it->stop)
            record_done(it, FERN_ERR_INTERNAL);
        pthread_cond_broadcast(&it->cv_get);
        pthread_mutex_unlock(&it->m);
        break;
    }
    fern_clear_error();
    return NULL;
}

static void cancel_all(fern_data_iter *it)
{
    atomic_store(&it->ctx.cancel, 1);
    pthread_mutex_lock(&it->ctx.lock);
    for (int i = 0; i < it->ctx.n_wakers; i++) {
        pthread_mutex_lock(it->ctx.wakers[i].m);
        pthread_cond_broadcast(it->ctx.wakers[i].c);
        pthread_mutex_unlock(it->ctx.wakers[i].m);
    }
    pthread_mutex_unlock(&it->ctx.lock);
}

static void stop_run(fern_data_iter *it)
{
    if (it->running) {
        pthread_mutex_lock(&it->m);
        it->stop = 1;
        pthread_cond_broadcast(&it->cv_put);
        pthread_mutex_unlock(&it->m);
        cancel_all(it);
        pthread_join(it->thread, NULL);
        it->running = 0;
    } else {
        cancel_all(it);
    }
    while (it->count > 0) {
        fern_row_clear(&it->queue[it->head]);
        it->head = (it->head + 1) % it->prefetch;
        it->count--;
    }
    it->head = 0;
    fern__close(it->root);
    it->root = NULL;
    atomic_store(&it->ctx.cancel, 0);
}

static fern_status start_run(fern_data_iter *it)
{
    it->stop = 0;
    it->done = 0;
    it->err[0] = 0;
    it->root = fern__open(it->ds, &it->ctx, 0x5EEDF00Dull, it->epoch);
    if (!it->root) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INTERNAL, "data iterator: cannot open %s",
                           fern_dataset_name(it->ds));
        record_done(it, fern_last_status());
        return fern_last_status();
    }
    if (it->prefetch > 0) {
        if (pthread_create(&it->thread, NULL, driver_main, it) != 0) {
            fern_set_error(FERN_ERR_INTERNAL, "data iterator: cannot start the driver thread");
            record_done(it, FERN_ERR_INTERNAL);
            return FERN_ERR_INTERNAL;
        }
        it->running = 1;
    }
    return FERN_OK;
}

fern_data_iter *fern_data_iter_new(fern_dataset *ds, const fern_data_iter_opts *opts)
{
    if (!ds) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "data_iter_new: dataset is NULL");
        return NULL;
    }
    fern_data_iter *it = calloc(1, sizeof *it);
    if (!it) {
        fern_set_error(FERN_ERR_NOMEM, "data_iter_new: out of memory");
        return NULL;
    }
    it->ds = fern_dataset_retain(ds);
    it->seed = opts ? opts->seed : 0;
    it->epoch = opts ? opts->epoch : 0;
    int pf = opts ? opts->prefetch : 0;
    it->prefetch = pf < 0 ? 0 : pf == 0 ? 4 : pf;
    it->ctx.seed = it->seed;
    atomic_init(&it->ctx.cancel, 0);
    pthread_mutex_init(&it->ctx.lock, NULL);
    pthread_mutex_init(&it->m, NULL);
    pthread_cond_init(&it->cv_put, NULL);
    pthread_cond_init(&it->cv_get, NULL);
    if (it->prefetch > 0) {
        it->queue = calloc((size_t)it->prefetch, sizeof *it->queue);
        if (!it->queue) {
            fern_set_error(FERN_ERR_NOMEM, "data_iter_new: out of memory");
            fern_data_iter_free(it);
            return NULL;
        }
    }
    if (start_run(it) != FERN_OK) {
        fern_data_iter_free(it);
        return NULL;
    }
    return it;
}

int fern_data_iter_next(fern_data_iter *it, fern_row *out)
{
    if (!it || !out) {
        fern_set_error(FERN_ERR_INVALID, "data_iter_next: %s is NULL", it ? "row" : "iterator");
        return FERN_ERR_INVALID;
    }
    fern_row_clear(out);
    if (it->prefetch == 0) {
        if (it->done == 0) {
            int st = it->root->vt->next(it->root, out);
            if (st == FERN_OK)
                return FERN_OK;
            fern_row_clear(out);
            record_done(it, fern__status_or(st));
        }
    } else {
        pthread_mutex_lock(&it->m);
        while (it->count == 0 && it->done == 0)
            pthread_cond_wait(&it->cv_get, &it->m);
        if (it->count > 0) {
            fern__row_move(out, &it->queue[it->head]);
            it->head = (it->head + 1) % it->prefetch;
            it->count--;
            pthread_cond_signal(&it->cv_put);
            pthread_mutex_unlock(&it->m);
            return FERN_OK;
        }
        pthread_mutex_unlock(&it->m);
    }
    if (it->done == FERN_DATA_END)
        return FERN_DATA_END;
    fern_set_error(it->err_status, "%s", it->err);
    return it->err_status;
}

fern_status fern_data_iter_set_epoch(fern_data_iter *it, uint64_t epoch)
{
    if (!it) {
        fern_set_error(FERN_ERR_INVALID, "data_iter_set_epoch: iterator is NULL");
        return FERN_ERR_INVALID;
    }
    stop_run(it);
    it->epoch = epoch;
    return start_run(it);
}

fern_status fern_data_iter_reset(fern_data_iter *it)
{
    if (!it) {
        fern_set_error(FERN_ERR_INVALID, "data_iter_reset: iterator is NULL");
        return FERN_ERR_INVALID;
    }
    return fern_data_iter_set_epoch(it, it->epoch + 1);
}

uint64_t fern_data_iter_epoch(const fern_data_iter *it) { return it ? it->epoch : 0; }

void fern_data_iter_free(fern_data_iter *it)
{
    if (!it)
        return;
    stop_run(it);
    free(it->queue);
    free(it->ctx.wakers);
    pthread_mutex_destroy(&it->ctx.lock);
    pthread_mutex_destroy(&it->m);
    pthread_cond_destroy(&it->cv_put);
    pthread_cond_destroy(&it->cv_get);
    fern_dataset_release(it->ds);
    free(it);
}
