/* map: transform rows with worker threads, in a deterministic order.
 *
 * Workers take sequence numbers; a worker reads row `seq` (by index from a
 * random-access input, in parallel, or by pulling the sequential input
 * under a lock that hands out numbers in pull order), transforms it with
 * the random stream of (seed, stage, pass, seq), and stores it in slot
 * seq % R of an ordered ring. The consumer takes slots in sequence order,
 * so the output never depends on the number of workers or on timing. A
 * worker only takes seq < consumed + R: the ring bounds memory. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data_internal.h"

typedef struct {
    fern_dataset base;
    int in_idx;           /* column transformed (transform map)        */
    fern_transform **tfs; /* NULL for a row-function map               */
    int n_tfs;
    fern_map_fn fn;
    void *fn_ctx;
    void (*fn_ctx_free)(void *);
    int workers;
} map_node;

/* A worker claims `chunk` consecutive rows at once; chunk adapts so that a
 * claim is about CHUNK_NS of work (fewer lock round trips and wake-ups for
 * cheap rows, little run-ahead for expensive ones). The ring lets workers
 * run (2 * workers + 2) chunks ahead of the consumer. */
#define MAP_CHUNK 32
#define CHUNK_NS 100000.0

typedef struct {
    atomic_int ready;
    int status;
    fern_row row;
    char *err;
} slot;

typedef struct {
    fern__dstate base;
    fern__dstate *in;
    int use_get;
    int nw; /* workers requested */
    /* ring: slot seq % R holds row seq; ready flags are the fast path,
     * m/cv_* are used only to sleep and wake */
    pthread_mutex_t m;
    pthread_cond_t cv_ready, cv_space;
    int R;
    slot *ring;
    int64_t tickets;          /* reserved ring positions (under m)          */
    atomic_llong consumed;    /* next seq the consumer takes                */
    atomic_llong end_seq;     /* rows in this pass (INT64_MAX until known)  */
    atomic_int consumer_waiting, workers_waiting;
    atomic_int chunk; /* current claim size, 1..MAP_CHUNK */
    int stop;
    int failed;
    /* sequential input */
    pthread_mutex_t pull_m;
    int64_t pulled;
    int input_done;
    /* workers */
    pthread_t *threads;
    int started, n_threads;
    int waker_added;
    uint64_t seed_base;
} map_state;

static uint64_t row_seed(const map_state *s, int64_t seq) { return fern__mix2(s->seed_base, (uint64_t)seq); }

/* Transform one row in place; FERN_OK or an error recorded on this thread. */
static int apply_row(const map_node *n, fern_row *row, uint64_t seed, const char *kind)
{
    if (n->fn) {
        int r = n->fn(n->fn_ctx, row, seed);
        if (r != FERN_OK) {
            if (r == FERN_DATA_END) {
                fern_set_error(FERN_ERR_INVALID, "%s: the map function returned FERN_DATA_END", kind);
                r = FERN_ERR_INVALID;
            }
            return fern__status_or(r);
        }
        return fern__row_conform(row, &n->base, "map_fn");
    }
    if (n->in_idx >= row->n) {
        fern_set_error(FERN_ERR_INTERNAL, "map: row has %d columns, column %d expected", row->n, n->in_idx);
        return FERN_ERR_INTERNAL;
    }
    fern__drng rng;
    fern__drng_init(&rng, seed);
    fern_tensor *t = fern__tf_run(n->tfs, n->n_tfs, row->cols[n->in_idx], &rng);
    if (!t) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INTERNAL, "map: transform failed");
        return fern_last_status();
    }
    fern_release(row->cols[n->in_idx]);
    row->cols[n->in_idx] = t;
    row->names[n->in_idx] = n->base.cols[n->in_idx];
    return FERN_OK;
}

/* Read row `seq` of the input (get) or the next row (pull). */
static int read_row(map_state *s, int64_t seq, fern_row *row)
{
    if (s->use_get)
        return s->in->vt->get(s->in, seq, row);
    return s->in->vt->next(s->in, row);
}

static void end_at(map_state *s, int64_t seq)
{
    pthread_mutex_lock(&s->m);
    if (seq < atomic_load(&s->end_seq))
        atomic_store(&s->end_seq, seq);
    pthread_cond_broadcast(&s->cv_ready);
    pthread_cond_broadcast(&s->cv_space);
    pthread_mutex_unlock(&s->m);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Ring positions workers may use ahead of the consumer. */
static int64_t ring_span(const map_state *s)
{
    int64_t span = (int64_t)(2 * s->nw + 2) * atomic_load(&s->chunk);
    return span < s->R ? span : s->R;
}

static void *worker_main(void *arg)
{
    map_state *s = arg;
    const map_node *n = (const map_node *)s->base.ds;
    fern_row rows[MAP_CHUNK];
    int sts[MAP_CHUNK];
    char *errs[MAP_CHUNK];
    pthread_mutex_lock(&s->m);
    for (;;) {
        /* claim up to MAP_CHUNK ring positions */
        int64_t k = 0, first = 0;
        for (;;) {
            if (s->stop || fern__cancelled(s->base.ctx))
                break;
            int64_t end = atomic_load(&s->end_seq), cons = atomic_load(&s->consumed), span = ring_span(s);
            if (s->tickets >= end)
                break;
            if (s->tickets < cons + span) {
                first = s->tickets;
                k = cons + span - first;
                if (k > atomic_load(&s->chunk))
                    k = atomic_load(&s->chunk);
                if (end != INT64_MAX && k > end - first)
                    k = end - first;
                s->tickets += k;
                break;
            }
            atomic_fetch_add(&s->workers_waiting, 1);
            if (s->tickets < atomic_load(&s->consumed) + ring_span(s)) { /* raced with the consumer */
                atomic_fetch_sub(&s->workers_waiting, 1);
                continue;
            }
            pthread_cond_wait(&s->cv_space, &s->m);
            atomic_fetch_sub(&s->workers_waiting, 1);
        }
        if (k == 0)
            break;
        pthread_mutex_unlock(&s->m);

        /* read the rows: by index, or k consecutive pulls */
        double t_start = now_ns();
        int64_t base = first;
        if (s->use_get) {
            for (int64_t j = 0; j < k; j++) {
                fern__row_init(&rows[j]);
                errs[j] = NULL;
                fern_clear_error();
                sts[j] = s->in->vt->get(s->in, first + j, &rows[j]);
                if (sts[j] != FERN_OK)
                    sts[j] = fern__status_or(sts[j]);
                if (sts[j] != FERN_OK && sts[j] != FERN_DATA_END && sts[j] != FERN__CANCELLED)
                    errs[j] = strdup(fern_last_error()[0] ? fern_last_error() : "map: failed");
            }
        } else {
            pthread_mutex_lock(&s->pull_m);
            base = s->pulled;
            s->pulled += k;
            for (int64_t j = 0; j < k; j++) {
                fern__row_init(&rows[j]);
                errs[j] = NULL;
                if (s->input_done) {
                    sts[j] = FERN_DATA_END;
                    continue;
                }
                fern_clear_error();
                sts[j] = s->in->vt->next(s->in, &rows[j]);
                if (sts[j] != FERN_OK) {
                    s->input_done = 1;
                    if (sts[j] != FERN_DATA_END)
                        sts[j] = fern__status_or(sts[j]);
                    if (sts[j] != FERN_DATA_END && sts[j] != FERN__CANCELLED)
                        errs[j] = strdup(fern_last_error()[0] ? fern_last_error() : "map: failed");
                }
            }
            pthread_mutex_unlock(&s->pull_m);
        }

        /* transform and publish each row */
        for (int64_t j = 0; j < k; j++) {
            int64_t seq = base + j;
            int st = sts[j];
            if (st == FERN_DATA_END) {
                for (int64_t q = j + 1; q < k; q++) {
                    fern_row_clear(&rows[q]);
                    free(errs[q]);
                }
                end_at(s, seq);
                break;
            }
            char *err = errs[j];
            if (st == FERN_OK) {
                fern_clear_error();
                st = apply_row(n, &rows[j], row_seed(s, seq), "map");
                if (st != FERN_OK)
                    err = strdup(fern_last_error()[0] ? fern_last_error() : "map: failed");
            }
            if (st != FERN_OK) {
                fern_row_clear(&rows[j]);
                for (int64_t q = j + 1; q < k; q++) {
                    fern_row_clear(&rows[q]);
                    free(errs[q]);
                }
                end_at(s, seq + 1); /* nothing after an error */
            }
            slot *sl = &s->ring[seq % s->R];
            fern__row_move(&sl->row, &rows[j]);
            sl->status = st;
            sl->err = err;
            atomic_store(&sl->ready, 1);
            if (st != FERN_OK)
                break;
        }
        double per_row = (now_ns() - t_start) / (double)k;
        int want = per_row > 0 ? (int)(CHUNK_NS / per_row) : MAP_CHUNK;
        atomic_store(&s->chunk, want < 1 ? 1 : want > MAP_CHUNK ? MAP_CHUNK : want);
        pthread_mutex_lock(&s->m);
        if (atomic_load(&s->consumer_waiting))
            pthread_cond_broadcast(&s->cv_ready);
    }
    pthread_mutex_unlock(&s->m);
    fern_clear_error();
    return NULL;
}

static void start_workers(map_state *s)
{
    s->started = 1;
    s->threads = calloc((size_t)s->nw, sizeof *s->threads);
    if (!s->threads)
        return;
    for (int i = 0; i < s->nw; i++) {
        if (pthread_create(&s->threads[i], NULL, worker_main, s) != 0)
            break;
        s->n_threads++;
    }
}

static int map_get(fern__dstate *st, int64_t i, fern_row *out)
{
    map_state *s = (map_state *)st;
    int r = s->in->vt->get(s->in, i, out);
    if (r == FERN_OK)
        r = apply_row((const map_node *)st->ds, out, row_seed(s, i), "map");
    if (r != FERN_OK)
        fern_row_clear(out);
    return r;
}

static int map_next(fern__dstate *st, fern_row *out)
{
    map_state *s = (map_state *)st;
    if (s->failed)
        return FERN_DATA_END;
    if (!s->started && s->nw > 0)
        start_workers(s);
    if (s->n_threads == 0) { /* inline */
        if (fern__cancelled(st->ctx))
            return FERN__CANCELLED;
        if (s->input_done)
            return FERN_DATA_END;
        int64_t seq = s->pulled;
        if (s->use_get && seq >= s->in->size)
            return FERN_DATA_END;
        int r = read_row(s, seq, out);
        if (r == FERN_OK) {
            s->pulled++;
            r = apply_row((const map_node *)st->ds, out, row_seed(s, seq), "map");
        }
        if (r != FERN_OK) {
            s->input_done = 1;
            fern_row_clear(out);
        }
        return r;
    }
    int64_t c = atomic_load(&s->consumed);
    slot *sl = &s->ring[c % s->R];
    if (!atomic_load(&sl->ready)) {
        pthread_mutex_lock(&s->m);
        for (;;) {
            if (atomic_load(&sl->ready))
                break;
            if (c >= atomic_load(&s->end_seq) || fern__cancelled(st->ctx)) {
                int r = c >= atomic_load(&s->end_seq) ? FERN_DATA_END : FERN__CANCELLED;
                pthread_mutex_unlock(&s->m);
                return r;
            }
            if (atomic_load(&s->workers_waiting))
                pthread_cond_broadcast(&s->cv_space);
            atomic_store(&s->consumer_waiting, 1);
            if (!atomic_load(&sl->ready))
                pthread_cond_wait(&s->cv_ready, &s->m);
            atomic_store(&s->consumer_waiting, 0);
        }
        pthread_mutex_unlock(&s->m);
    }
    fern__row_move(out, &sl->row);
    int r = sl->status;
    char *err = sl->err;
    sl->err = NULL;
    atomic_store(&sl->ready, 0);
    atomic_store(&s->consumed, c + 1);
    if (atomic_load(&s->workers_waiting) && (c + 1) % atomic_load(&s->chunk) == 0) {
        pthread_mutex_lock(&s->m);
        pthread_cond_broadcast(&s->cv_space);
        pthread_mutex_unlock(&s->m);
    }
    if (r != FERN_OK) {
        s->failed = 1;
        fern_set_error((fern_status)r, "%s", err ? err : "map: failed");
    }
    free(err);
    return r;
}

static void map_close(fern__dstate *st)
{
    map_state *s = (map_state *)st;
    if (s->n_threads) {
        pthread_mutex_lock(&s->m);
        s->stop = 1;
        pthread_cond_broadcast(&s->cv_space);
        pthread_cond_broadcast(&s->cv_ready);
        pthread_mutex_unlock(&s->m);
        for (int i = 0; i < s->n_threads; i++)
            pthread_join(s->threads[i], NULL);
    }
    if (s->waker_added) {
        fern__dctx_remove_waker(st->ctx, &s->cv_ready);
        fern__dctx_remove_waker(st->ctx, &s->cv_space);
    }
    for (int i = 0; i < s->R; i++) {
        fern_row_clear(&s->ring[i].row);
        free(s->ring[i].err);
    }
    free(s->ring);
    free(s->threads);
    fern__close(s->in);
    pthread_mutex_destroy(&s->m);
    pthread_mutex_destroy(&s->pull_m);
    pthread_cond_destroy(&s->cv_ready);
    pthread_cond_destroy(&s->cv_space);
    free(s);
}

static const fern__dstate_vt map_vt = {map_next, NULL, map_close};
static const fern__dstate_vt map_ra_vt = {map_next, map_get, map_close};

static fern__dstate *map_open(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    const map_node *n = (const map_node *)ds;
    fern__dstate *in = fern__open_input(ds, 0, ctx, salt, pass);
    if (!in)
        return NULL;
    int ra = in->vt->get != NULL && in->size >= 0;
    map_state *s = (map_state *)fern__state_new(sizeof *s, ra ? &map_ra_vt : &map_vt, ds, ctx, salt, pass);
    if (!s) {
        fern__close(in);
        return NULL;
    }
    s->in = in;
    s->base.size = in->size;
    s->use_get = ra && !in->prefer_next;
    s->nw = n->workers;
    s->base.prefer_next = n->workers > 0 || in->prefer_next;
    s->seed_base = fern__mix2(fern__mix2(ctx->seed, salt), pass);
    atomic_init(&s->end_seq, s->use_get ? in->size : INT64_MAX);
    atomic_init(&s->consumed, 0);
    atomic_init(&s->consumer_waiting, 0);
    atomic_init(&s->workers_waiting, 0);
    atomic_init(&s->chunk, 4);
    pthread_mutex_init(&s->m, NULL);
    pthread_mutex_init(&s->pull_m, NULL);
    pthread_cond_init(&s->cv_ready, NULL);
    pthread_cond_init(&s->cv_space, NULL);
    s->R = n->workers > 0 ? (2 * n->workers + 2) * MAP_CHUNK : 1;
    s->ring = calloc((size_t)s->R, sizeof *s->ring);
    if (!s->ring || fern__dctx_add_waker(ctx, &s->m, &s->cv_ready) ||
        fern__dctx_add_waker(ctx, &s->m, &s->cv_space)) {
        s->waker_added = 1;
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_NOMEM, "map: out of memory");
        map_close(&s->base);
        return NULL;
    }
    s->waker_added = 1;
    return &s->base;
}

static void map_destroy(fern_dataset *ds)
{
    map_node *n = (map_node *)ds;
    for (int i = 0; i < n->n_tfs; i++)
        fern_transform_release(n->tfs[i]);
    free(n->tfs);
    if (n->fn_ctx_free)
        n->fn_ctx_free(n->fn_ctx);
}

static const fern__dnode_vt map_node_vt = {"map", map_open, map_destroy};

static int check_workers(const char *who, int w)
{
    if (w < 0 || w > 256) {
        fern_set_error(FERN_ERR_INVALID, "%s: num_workers %d is outside 0..256", who, w);
        return -1;
    }
    return 0;
}

fern_dataset *fern_dataset_map(fern_dataset *ds, const char *in_col, const char *out_col,
                               fern_transform *const *tfs, int n, int num_workers)
{
    int bad_tf = n < 1 || !tfs;
    for (int i = 0; !bad_tf && i < n; i++)
        bad_tf = !tfs[i];
    if (!ds || bad_tf || check_workers("map", num_workers)) {
        if (tfs)
            for (int i = 0; i < n; i++)
                fern_transform_release(tfs[i]);
        if (ds && fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "map: %s", n < 1 || !tfs ? "no transforms given"
                                                                      : "a transform is NULL");
        fern_dataset_release(ds);
        return NULL;
    }
    map_node *m = (map_node *)fern__dataset_new(sizeof *m, &map_node_vt, 1, &ds);
    fern_transform **copy = malloc((size_t)n * sizeof *copy);
    if (!m || !copy) {
        for (int i = 0; i < n; i++)
            fern_transform_release(tfs[i]);
        free(copy);
        if (m) {
            fern_set_error(FERN_ERR_NOMEM, "map: out of memory");
            fern_dataset_release(&m->base);
        }
        return NULL;
    }
    memcpy(copy, tfs, (size_t)n * sizeof *copy);
    m->tfs = copy;
    m->n_tfs = n;
    m->workers = num_workers;
    m->base.size = ds->size;
    m->base.random_access = ds->random_access;
    int k = fern__dataset_col_index(ds, in_col);
    if (k < 0) {
        fern_set_error(FERN_ERR_INVALID, "map: %s has no column '%s'", fern_dataset_name(ds),
                       in_col ? in_col : "(null)");
        fern_dataset_release(&m->base);
        return NULL;
    }
    m->in_idx = k;
    const char *names[FERN_ROW_MAX_COLS];
    for (int i = 0; i < ds->ncols; i++)
        names[i] = ds->cols[i];
    if (out_col)
        names[k] = out_col;
    if (fern__dataset_set_cols(&m->base, ds->ncols, names, "map")) {
        fern_dataset_release(&m->base);
        return NULL;
    }
    return &m->base;
}

fern_dataset *fern_dataset_map_fn(fern_dataset *ds, fern_map_fn fn, void *ctx,
                                  void (*ctx_free)(void *), int num_workers, int n,
                                  const char *const *names)
{
    if (!ds || !fn || check_workers("map_fn", num_workers)) {
        if (ds && !fn && fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "map_fn: fn is NULL");
        if (ctx_free)
            ctx_free(ctx);
        fern_dataset_release(ds);
        return NULL;
    }
    map_node *m = (map_node *)fern__dataset_new(sizeof *m, &map_node_vt, 1, &ds);
    if (!m) {
        if (ctx_free)
            ctx_free(ctx);
        return NULL;
    }
    m->fn = fn;
    m->fn_ctx = ctx;
    m->fn_ctx_free = ctx_free;
    m->workers = num_workers;
    m->base.size = ds->size;
    m->base.random_access = ds->random_access;
    int ok = names ? !fern__dataset_set_cols(&m->base, n, names, "map_fn")
                   : !fern__dataset_set_cols(&m->base, ds->ncols, ds->cols, "map_fn");
    if (!ok) {
        fern_dataset_release(&m->base);
        return NULL;
    }
    return &m->base;
}
