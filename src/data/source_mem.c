/* In-memory sources: slices of tensors, and user generator callbacks. */
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"

/* Row `i` of a tensor: a view of t[i] (no copy). Not registered. */
fern_tensor *fern__slice0(const fern_tensor *t, int64_t i)
{
    return fern__tensor_view(t, t->ndim - 1, t->shape + 1, t->strides + 1, t->offset + i * t->strides[0]);
}

/* ---- tensors ------------------------------------------------------------------------- */

typedef struct {
    fern_dataset base;
    fern_tensor *t[FERN_ROW_MAX_COLS];
} tensors_node;

static int tensors_get(fern__dstate *st, int64_t i, fern_row *out)
{
    const tensors_node *n = (const tensors_node *)st->ds;
    for (int c = 0; c < n->base.ncols; c++) {
        fern_tensor *v = fern__slice0(n->t[c], i);
        if (!v) {
            fern_row_clear(out);
            return fern_last_status();
        }
        fern__row_push(out, n->base.cols[c], v);
    }
    return FERN_OK;
}

static void state_free(fern__dstate *st) { free(st); }

static const fern__dstate_vt tensors_vt = {fern__next_by_get, tensors_get, state_free};

static fern__dstate *tensors_open(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    return fern__state_new(sizeof(fern__dstate), &tensors_vt, ds, ctx, salt, pass);
}

static void tensors_destroy(fern_dataset *ds)
{
    tensors_node *n = (tensors_node *)ds;
    for (int c = 0; c < FERN_ROW_MAX_COLS; c++)
        fern_release(n->t[c]);
}

static const fern__dnode_vt tensors_node_vt = {"tensors", tensors_open, tensors_destroy};

fern_dataset *fern_dataset_from_tensors(int n, const char *const *names, fern_tensor *const *tensors)
{
    if (n < 1 || n > FERN_ROW_MAX_COLS || !names || !tensors) {
        fern_set_error(FERN_ERR_INVALID, "from_tensors: %d columns (1..%d) or NULL arrays", n,
                       FERN_ROW_MAX_COLS);
        return NULL;
    }
    for (int c = 0; c < n; c++) {
        const fern_tensor *t = tensors[c];
        char d[128], d0[128];
        if (!t) {
            if (fern_last_status() == FERN_OK)
                fern_set_error(FERN_ERR_INVALID, "from_tensors: tensor %d is NULL", c);
            return NULL;
        }
        if (fern_tensor_is_symbolic(t) || t->ndim < 1) {
            fern_set_error(FERN_ERR_INVALID, "from_tensors: tensor '%s' is %s; need a concrete tensor "
                           "with at least one dimension",
                           names[c] ? names[c] : "?", fern_tensor_desc(t, d, sizeof d));
            return NULL;
        }
        if (t->shape[0] != tensors[0]->shape[0]) {
            fern_set_error(FERN_ERR_INVALID,
                           "from_tensors: tensor '%s' is %s but '%s' is %s (dim 0 must match)",
                           names[c] ? names[c] : "?", fern_tensor_desc(t, d, sizeof d),
                           names[0] ? names[0] : "?", fern_tensor_desc(tensors[0], d0, sizeof d0));
            return NULL;
        }
    }
    tensors_node *nd = (tensors_node *)fern__dataset_new(sizeof *nd, &tensors_node_vt, 0, NULL);
    if (!nd)
        return NULL;
    if (fern__dataset_set_cols(&nd->base, n, names, "from_tensors")) {
        fern_dataset_release(&nd->base);
        return NULL;
    }
    for (int c = 0; c < n; c++)
        nd->t[c] = fern_retain(tensors[c]);
    nd->base.size = tensors[0]->shape[0];
    nd->base.random_access = 1;
    return &nd->base;
}

/* ---- generator ------------------------------------------------------------------------- */

typedef struct {
    fern_dataset base;
    fern_generator_fn fn;
    void *ctx;
    void (*ctx_free)(void *);
} gen_node;

typedef struct {
    fern__dstate base;
    int64_t index;
    int done;
} gen_state;

static int gen_call(fern__dstate *st, int64_t i, fern_row *out)
{
    const gen_node *n = (const gen_node *)st->ds;
    int r = n->fn(n->ctx, st->pass, i, out);
    if (r == FERN_OK)
        r = fern__row_conform(out, &n->base, "generator");
    else if (r != FERN_DATA_END)
        r = fern__status_or(r);
    if (r != FERN_OK)
        fern_row_clear(out);
    return r;
}

static int gen_next(fern__dstate *st, fern_row *out)
{
    gen_state *s = (gen_state *)st;
    if (s->done)
        return FERN_DATA_END;
    if (fern__cancelled(st->ctx))
        return FERN__CANCELLED;
    if (st->size >= 0 && s->index >= st->size)
        return FERN_DATA_END;
    int r = gen_call(st, s->index, out);
    if (r != FERN_OK)
        s->done = 1;
    else
        s->index++;
    return r;
}

static int gen_get(fern__dstate *st, int64_t i, fern_row *out)
{
    int r = gen_call(st, i, out);
    if (r == FERN_DATA_END) {
        fern_set_error(FERN_ERR_INVALID, "generator: returned FERN_DATA_END for index %lld of a "
                       "dataset declared with %lld rows", (long long)i, (long long)st->size);
        r = FERN_ERR_INVALID;
    }
    return r;
}

static const fern__dstate_vt gen_vt = {gen_next, NULL, state_free};
static const fern__dstate_vt gen_ra_vt = {gen_next, gen_get, state_free};

static fern__dstate *gen_open(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    return fern__state_new(sizeof(gen_state), ds->random_access ? &gen_ra_vt : &gen_vt, ds, ctx,
                           salt, pass);
}

static void gen_destroy(fern_dataset *ds)
{
    gen_node *n = (gen_node *)ds;
    if (n->ctx_free)
        n->ctx_free(n->ctx);
}

static const fern__dnode_vt gen_node_vt = {"generator", gen_open, gen_destroy};

fern_dataset *fern_dataset_generator(fern_generator_fn fn, void *ctx, void (*ctx_free)(void *),
                                     int64_t size, int n, const char *const *names)
{
    if (!fn || n < 1 || !names) {
        fern_set_error(FERN_ERR_INVALID, "generator: %s", !fn ? "fn is NULL" : "no columns declared");
        if (ctx_free)
            ctx_free(ctx);
        return NULL;
    }
    gen_node *g = (gen_node *)fern__dataset_new(sizeof *g, &gen_node_vt, 0, NULL);
    if (!g) {
        if (ctx_free)
            ctx_free(ctx);
        return NULL;
    }
    g->fn = fn;
    g->ctx = ctx;
    g->ctx_free = ctx_free;
    if (fern__dataset_set_cols(&g->base, n, names, "generator")) {
        fern_dataset_release(&g->base);
        return NULL;
    }
    g->base.size = size >= 0 ? size : -1;
    g->base.random_access = size >= 0;
    return &g->base;
}
