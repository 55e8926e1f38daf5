/* Function values, the mode switch, and graph-mode compilation on call:
 * in graph mode fern_call traces a function once per input signature,
 * compiles it and reuses the executable. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime_internal.h"

static _Thread_local fern_mode current_mode = FERN_PYNATIVE_MODE;

void fern_set_mode(fern_mode mode) { current_mode = mode; }
fern_mode fern_get_mode(void) { return current_mode; }

struct compiled {
    int n_in;
    fern_dtype dtype[FERN_MAX_INPUTS];
    int ndim[FERN_MAX_INPUTS];
    int64_t shape[FERN_MAX_INPUTS][FERN_MAX_DIMS];
    fern_module *module;
    compiled *next;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

fern_fn *fern__fn_new_owned(fern_fn_body body, void *ud, void (*free_ud)(void *), int n_in,
                            int n_out, const char *name)
{
    if (!body || n_in < 0 || n_out < 1 || n_in > FERN_MAX_INPUTS || n_out > FERN_MAX_INPUTS) {
        fern_set_error(FERN_ERR_INVALID, "fn_new: need a body, 0..%d inputs and 1..%d outputs",
                       FERN_MAX_INPUTS, FERN_MAX_INPUTS);
        if (free_ud)
            free_ud(ud);
        return NULL;
    }
    fern_fn *f = calloc(1, sizeof *f);
    if (!f) {
        fern_set_error(FERN_ERR_NOMEM, "fn_new: out of memory");
        if (free_ud)
            free_ud(ud);
        return NULL;
    }
    atomic_init(&f->refcount, 1);
    f->body = body;
    f->ud = ud;
    f->free_ud = free_ud;
    f->n_in = n_in;
    f->n_out = n_out;
    snprintf(f->name, sizeof f->name, "%s", name ? name : "fn");
    return f;
}

fern_fn *fern_fn_new(fern_fn_body body, void *ud, int n_in, int n_out)
{
    return fern__fn_new_owned(body, ud, NULL, n_in, n_out, "fn");
}

fern_fn *fern_fn_retain(fern_fn *f)
{
    if (f)
        atomic_fetch_add(&f->refcount, 1);
    return f;
}

void fern__fn_free_cache(fern_fn *f)
{
    compiled *c = f->cache;
    while (c) {
        compiled *next = c->next;
        fern_module_free(c->module);
        free(c);
        c = next;
    }
    f->cache = NULL;
}

void fern_fn_release(fern_fn *f)
{
    if (!f || atomic_fetch_sub(&f->refcount, 1) != 1)
        return;
    fern__fn_free_cache(f);
    for (int i = 0; i < 3; i++)
        fern_fn_release(f->derived[i]);
    if (f->free_ud)
        f->free_ud(f->ud);
    free(f);
}

int fern_fn_n_in(const fern_fn *f) { return f->n_in; }
int fern_fn_n_out(const fern_fn *f) { return f->n_out; }
void fern_fn_set_name(fern_fn *f, const char *name)
{
    if (f && name)
        snprintf(f->name, sizeof f->name, "%s", name);
}

fern_status fern__fn_run_body(fern_fn *f, int n_in, fern_tensor *const *in, int n_out,
                              fern_tensor **out)
{
    fern_tensor *tmp[FERN_MAX_INPUTS] = {0};
    fern_scope_begin();
    int rc = f->body(f->ud, in, tmp);
    for (int k = 0; rc == 0 && k < n_out; k++)
        if (!tmp[k]) {
            if (fern_last_status() == FERN_OK)
                fern_set_error(FERN_ERR_INVALID, "%s: output %d is NULL", f->name, k);
            rc = -1;
        }
    /* outputs may be scope-owned or new references: take our own reference */
    for (int k = 0; rc == 0 && k < n_out; k++)
        out[k] = fern_retain(tmp[k]);
    fern_scope_end();
    if (rc) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "%s: the function body failed", f->name);
        return fern_last_status();
    }
    for (int k = 0; k < n_out; k++)
        fern__scope_register(out[k]);
    return FERN_OK;
}

static int signature_matches(const compiled *c, int n_in, fern_tensor *const *in)
{
    if (c->n_in != n_in)
        return 0;
    for (int i = 0; i < n_in; i++) {
        if (c->dtype[i] != in[i]->dtype || c->ndim[i] != in[i]->ndim ||
            memcmp(c->shape[i], in[i]->shape, (size_t)in[i]->ndim * sizeof(int64_t)))
            return 0;
    }
    return 1;
}

static compiled *compile_for(fern_fn *f, int n_in, fern_tensor *const *in)
{
    compiled *c = calloc(1, sizeof *c);
    if (!c) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", f->name);
        return NULL;
    }
    c->n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        c->dtype[i] = in[i]->dtype;
        c->ndim[i] = in[i]->ndim;
        memcpy(c->shape[i], in[i]->shape, sizeof c->shape[i]);
    }
    c->module = fern_module_new();
    fern_tensor **lifted = NULL;
    int n_lifted = 0;
    fern_graph *g = c->module ? fern__trace_fn(c->module, "main", f, n_in, in, f->n_out, &lifted,
                                              &n_lifted)
                              : NULL;
    free(lifted); /* a top-level trace has concrete inputs: nothing is lifted */
    if (!g) {
        fern_module_free(c->module);
        free(c);
        return NULL;
    }
    f->stats.nodes_traced = fern_graph_node_count(g);
    if (fern__compile_module(c->module, f->name) != FERN_OK) {
        fern_module_free(c->module);
        free(c);
        return NULL;
    }
    g = fern_module_main(c->module);
    f->stats.n_compiles++;
    f->stats.nodes_optimized = fern_graph_node_count(g);
    fern__plan_memory(g, &f->stats.planned_peak_bytes, &f->stats.naive_bytes);
    return c;
}

fern_status fern_call(fern_fn *f, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    for (int k = 0; k < n_out; k++)
        out[k] = NULL;
    if (!f) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "call: function is NULL");
        return fern_last_status();
    }
    if (n_in != f->n_in || n_out != f->n_out) {
        fern_set_error(FERN_ERR_INVALID, "call: %s takes %d inputs and returns %d outputs, got %d and %d",
                       f->name, f->n_in, f->n_out, n_in, n_out);
        return FERN_ERR_INVALID;
    }
    int symbolic = 0;
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) {
            if (fern_last_status() == FERN_OK)
                fern_set_error(FERN_ERR_INVALID, "call: input %d of %s is NULL", i, f->name);
            return fern_last_status();
        }
        symbolic |= in[i]->storage == NULL;
    }
    /* inside a trace, on symbolic inputs, in pynative mode, or while a tape
     * records (it must see every op, not a compiled graph's fused kernels),
     * the body runs as it is */
    if (fern__tracing() || symbolic || current_mode == FERN_PYNATIVE_MODE ||
        fern__get_dispatch_hooks().record)
        return fern__fn_run_body(f, n_in, in, n_out, out);

    pthread_mutex_lock(&cache_lock);
    compiled *c = f->cache;
    while (c && !signature_matches(c, n_in, in))
        c = c->next;
    if (!c) {
        c = compile_for(f, n_in, in);
        if (c) {
            c->next = f->cache;
            f->cache = c;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    if (!c)
        return fern_last_status() ? fern_last_status() : FERN_ERR_INTERNAL;
    return fern_graph_run(fern_module_main(c->module), n_in, in, n_out, out);
}

fern_tensor *fern_call1(fern_fn *f, int n_in, fern_tensor *const *in)
{
    fern_tensor *out = NULL;
    if (f && f->n_out != 1) {
        fern_set_error(FERN_ERR_INVALID, "call1: %s returns %d outputs", f->name, f->n_out);
        return NULL;
    }
    if (fern_call(f, n_in, in, 1, &out) != FERN_OK)
        return NULL;
    return out;
}

/* jit(f) is f with a compile cache of its own. In graph mode every call
 * compiles anyway; in pynative mode jit(f) runs f op by op. */
static int jit_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    fern_fn *inner = ud;
    return fern__fn_run_body(inner, inner->n_in, in, inner->n_out, out) == FERN_OK ? 0 : -1;
}

static void jit_free(void *ud) { fern_fn_release(ud); }

fern_fn *fern_jit(fern_fn *f)
{
    if (!f) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "jit: function is NULL");
        return NULL;
    }
    char name[80];
    snprintf(name, sizeof name, "jit_%s", f->name);
    return fern__fn_new_owned(jit_body, fern_fn_retain(f), jit_free, f->n_in, f->n_out, name);
}

fern_status fern_jit_get_stats(const fern_fn *f, fern_jit_stats *out)
{
    if (!f || !out) {
        fern_set_error(FERN_ERR_INVALID, "jit_get_stats: NULL argument");
        return FERN_ERR_INVALID;
    }
    *out = f->stats;
    return FERN_OK;
}

char *fern_jit_dump(const fern_fn *f)
{
    if (!f || !f->cache) {
        fern_set_error(FERN_ERR_INVALID, "jit_dump: %s has not been compiled (call it in graph mode first)",
                       f ? f->name : "NULL");
        return NULL;
    }
    return fern_module_print(f->cache->module);
}
