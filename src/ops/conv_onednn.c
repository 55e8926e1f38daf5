/* f32 conv2d forward through oneDNN's convolution primitive (builds with
 * FERN_HAVE_DNNL), for the shapes where it beats fern's direct kernels.
 *
 * Why: oneDNN's AVX-512 JIT convolutions (brgconv, jit_1x1) run ResNet's
 * deep layers (>= 128 output channels on 16x16 or smaller planes, the 1x1
 * strided downsamples) 10-30% faster than conv_direct.c's channel-
 * vectorized kernel, reorders to and from their blocked layouts included.
 * On the wide shallow layers (64 channels at 32x32), LeNet's, and 512
 * channels at 4x4 (where brgconv re-reads 9 MB of weights per sample) fern's
 * kernels are as fast or faster; fern__conv_onednn_suits draws that line.
 *
 * Threads: fern's pool owns the parallelism. The batch is split into one
 * contiguous part per thread, each running a single-threaded primitive on
 * its sub-batch (the Debian oneDNN runs on OpenMP: the thread's OpenMP
 * thread count is 1 around creation and execution, as in gemm.c, so the
 * primitive is also built for one thread). The weights are reordered into
 * the primitive's layout once per call, on the calling thread, and shared.
 *
 * Primitives take milliseconds to create: each thread keeps its own LRU
 * cache of them keyed by every parameter of the call (sub-batch size
 * included), freed by a pthread key destructor when the thread exits. No
 * primitive is shared between threads, and scratchpads are the caller's
 * (user scratchpad mode, from fern's caching allocator).
 *
 * Any oneDNN error makes fern__conv_onednn return 1 and the caller runs
 * fern's own kernel; failures are cached like successes, so a shape oneDNN
 * rejects costs one lookup per call afterwards.
 *
 * FERN_ONEDNN_CONV=0 turns this path off, =1 sends every f32 conv2d here
 * (tests and benchmarks of both paths); unset, the shape rule decides. */
#include "conv_common.h"
#include "../backend/cpu/gemm.h"

#if FERN_HAVE_DNNL

#include <dnnl.h>
#include <pthread.h>
#include <stdlib.h>

/* ---- the engine and the per-thread caches' key -------------------------- */

static dnnl_engine_t engine; /* created once, never destroyed */
static int env_mode = -1;    /* FERN_ONEDNN_CONV: -1 rule, 0 off, 1 all */
static pthread_key_t cache_key;
static int ready; /* engine and key exist */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void cache_destroy(void *p);

static void init(void)
{
    const char *e = getenv("FERN_ONEDNN_CONV");
    if (e && (e[0] == '0' || e[0] == '1'))
        env_mode = e[0] - '0';
    if (pthread_key_create(&cache_key, cache_destroy) != 0)
        return;
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success)
        return;
    ready = 1;
}

/* ---- per-thread primitive cache ------------------------------------------ */

enum { KEY_LEN = 17, CACHE_CAP = 64 };

typedef struct {
    int64_t key[KEY_LEN]; /* sub-batch, geometry, has-bias */
    uint64_t used;        /* LRU stamp */
    int ok;               /* 0: oneDNN rejected the shape */
    dnnl_primitive_t conv, rsrc, rdst, rw; /* reorders NULL when not needed */
    /* plain (user) and primitive-layout memories; data handles set per call */
    dnnl_memory_t src_user, src_conv, w_user, w_conv, bias, dst_conv, dst_user, scratch;
    size_t src_bytes, dst_bytes, w_bytes, scratch_bytes; /* buffers, 0: none */
    dnnl_memory_desc_t wmd; /* the primitive's weight layout */
} entry;

typedef struct {
    entry *e[CACHE_CAP];
    int n;
    uint64_t tick;
    dnnl_stream_t stream;
} cache;

/* Destroy what e holds (its key and stamp stay). */
static void entry_clear(entry *e)
{
    dnnl_primitive_t prims[4] = {e->conv, e->rsrc, e->rdst, e->rw};
    dnnl_memory_t mems[8] = {e->src_user, e->src_conv, e->w_user, e->w_conv,
                             e->bias,     e->dst_conv, e->dst_user, e->scratch};
    for (int i = 0; i < 4; i++)
        if (prims[i])
            dnnl_primitive_destroy(prims[i]);
    for (int i = 0; i < 8; i++)
        if (mems[i])
            dnnl_memory_destroy(mems[i]);
    e->conv = e->rsrc = e->rdst = e->rw = NULL;
    e->src_user = e->src_conv = e->w_user = e->w_conv = NULL;
    e->bias = e->dst_conv = e->dst_user = e->scratch = NULL;
    e->ok = 0;
}

static void entry_free(entry *e)
{
    entry_clear(e);
    free(e);
}

static void cache_destroy(void *p)
{
    cache *c = p;
    for (int i = 0; i < c->n; i++)
        entry_free(c->e[i]);
    if (c->stream)
        dnnl_stream_destroy(c->stream);
    free(c);
}

static cache *thread_cache(void)
{
    cache *c = pthread_getspecific(cache_key);
    if (c)
        return c;
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (dnnl_stream_create(&c->stream, engine, dnnl_stream_default_flags) != dnnl_success ||
        pthread_setspecific(cache_key, c) != 0) {
        cache_destroy(c);
        return NULL;
    }
    return c;
}

static void make_key(const conv_geom *g, int64_t nb, int has_bias, int64_t *k)
{
    const int64_t v[KEY_LEN] = {nb,    g->C,  g->H,  g->W,  g->O,  g->KH, g->KW, g->sh, g->sw,
                                g->pt, g->pl, g->pb, g->pr, g->dh, g->dw, g->G,  has_bias};
    memcpy(k, v, sizeof v);
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((x) != dnnl_success)                                                                   \
            goto fail;                                                                             \
    } while (0)

/* A memory object without data for md (handle set per call). */
static dnnl_status_t mem(dnnl_memory_t *m, const dnnl_memory_desc_t *md)
{
    return dnnl_memory_create(m, md, engine, DNNL_MEMORY_NONE);
}

/* A reorder from `from` to `to`, or none (*r stays NULL) when they are equal. */
static dnnl_status_t reorder(dnnl_primitive_t *r, const dnnl_memory_desc_t *from,
                             const dnnl_memory_desc_t *to)
{
    if (dnnl_memory_desc_equal(from, to))
        return dnnl_success;
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, NULL);
    if (st != dnnl_success)
        return st;
    st = dnnl_primitive_create(r, pd);
    dnnl_primitive_desc_destroy(pd);
    return st;
}

/* Build e for sub-batch nb: the layouts are oneDNN's choice, the weights'
 * forced to *wmd when given (so that every part of a call reads the one
 * reordered copy). Returns 0, or -1 with e->ok == 0. */
static int entry_build(entry *e, const conv_geom *g, int64_t nb, int has_bias,
                       const dnnl_memory_desc_t *wmd)
{
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    const int64_t G = g->G;
    dnnl_dims_t sd = {nb, g->C, g->H, g->W}, dd = {nb, g->O, g->OH, g->OW}, bd = {g->O};
    dnnl_dims_t wd = {G, g->O / G, g->C / G, g->KH, g->KW};
    const dnnl_dim_t *wdims = G == 1 ? wd + 1 : wd;
    const int wnd = G == 1 ? 4 : 5;
    dnnl_memory_desc_t s_plain, s_any, w_plain, w_any, d_plain, d_any, b_md;
    TRY(dnnl_memory_desc_init_by_tag(&s_plain, 4, sd, dnnl_f32, dnnl_nchw));
    TRY(dnnl_memory_desc_init_by_tag(&d_plain, 4, dd, dnnl_f32, dnnl_nchw));
    TRY(dnnl_memory_desc_init_by_tag(&w_plain, wnd, wdims, dnnl_f32,
                                     G == 1 ? dnnl_oihw : dnnl_goihw));
    TRY(dnnl_memory_desc_init_by_tag(&b_md, 1, bd, dnnl_f32, dnnl_x));
    TRY(dnnl_memory_desc_init_by_tag(&s_any, 4, sd, dnnl_f32, dnnl_format_tag_any));
    TRY(dnnl_memory_desc_init_by_tag(&d_any, 4, dd, dnnl_f32, dnnl_format_tag_any));
    if (wmd)
        w_any = *wmd;
    else
        TRY(dnnl_memory_desc_init_by_tag(&w_any, wnd, wdims, dnnl_f32, dnnl_format_tag_any));
    /* oneDNN counts dilation from 0 (no gaps), torch from 1 */
    dnnl_dims_t stride = {g->sh, g->sw}, dil = {g->dh - 1, g->dw - 1};
    dnnl_dims_t pad_l = {g->pt, g->pl}, pad_r = {g->pb, g->pr};
    /* The forward is the same either way (no workspace), but 2.6 offers
     * brgconv (nhwc) only for inference: faster than its jit kernel on 3x3
     * at 16x16 and 8x8, slower on 1x1 (measured; the rule keeps 512 x 3x3 at
     * 4x4, where brgconv is slowest, on fern's kernels). */
    const dnnl_prop_kind_t prop =
        g->KH * g->KW > 1 ? dnnl_forward_inference : dnnl_forward_training;
    dnnl_convolution_desc_t cd;
    TRY(dnnl_dilated_convolution_forward_desc_init(
        &cd, prop, dnnl_convolution_direct, &s_any, &w_any,
        has_bias ? &b_md : NULL, &d_any, stride, dil, pad_l, pad_r));
    TRY(dnnl_primitive_attr_create(&attr));
    TRY(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    TRY(dnnl_primitive_desc_create(&pd, &cd, attr, engine, NULL));
    TRY(dnnl_primitive_create(&e->conv, pd));
    const dnnl_memory_desc_t *qs = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *qw = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *qd = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    const dnnl_memory_desc_t *qp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (!qs || !qw || !qd)
        goto fail;
    e->wmd = *qw;
    TRY(reorder(&e->rsrc, &s_plain, qs));
    TRY(reorder(&e->rdst, qd, &d_plain));
    TRY(reorder(&e->rw, &w_plain, qw));
    TRY(mem(&e->src_user, &s_plain));
    TRY(mem(&e->src_conv, qs));
    TRY(mem(&e->w_user, &w_plain));
    TRY(mem(&e->w_conv, qw));
    TRY(mem(&e->dst_conv, qd));
    TRY(mem(&e->dst_user, &d_plain));
    if (has_bias)
        TRY(mem(&e->bias, &b_md));
    e->src_bytes = e->rsrc ? dnnl_memory_desc_get_size(qs) : 0;
    e->dst_bytes = e->rdst ? dnnl_memory_desc_get_size(qd) : 0;
    e->w_bytes = e->rw ? dnnl_memory_desc_get_size(qw) : 0;
    e->scratch_bytes = qp ? dnnl_memory_desc_get_size(qp) : 0;
    if (e->scratch_bytes)
        TRY(mem(&e->scratch, qp));
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    e->ok = 1;
    return 0;
fail:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    entry_clear(e);
    return -1;
}

/* This thread's entry for (g, nb, has_bias), built on a miss (evicting the
 * least recently used when full); NULL when out of memory. */
static entry *lookup(cache *c, const conv_geom *g, int64_t nb, int has_bias,
                     const dnnl_memory_desc_t *wmd)
{
    int64_t key[KEY_LEN];
    make_key(g, nb, has_bias, key);
    c->tick++;
    for (int i = 0; i < c->n; i++)
        if (!memcmp(c->e[i]->key, key, sizeof key)) {
            c->e[i]->used = c->tick;
            return c->e[i];
        }
    entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    memcpy(e->key, key, sizeof key);
    e->used = c->tick;
    entry_build(e, g, nb, has_bias, wmd);
    if (c->n < CACHE_CAP) {
        c->e[c->n++] = e;
    } else {
        int lru = 0;
        for (int i = 1; i < c->n; i++)
            if (c->e[i]->used < c->e[lru]->used)
                lru = i;
        entry_free(c->e[lru]);
        c->e[lru] = e;
    }
    return e;
}

static dnnl_status_t run1(dnnl_primitive_t p, dnnl_stream_t s, dnnl_memory_t from, dnnl_memory_t to)
{
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return dnnl_primitive_execute(p, s, 2, a);
}

typedef struct {
    const conv_geom *g;
    const float *x, *bias;
    float *y;
    void *w;                       /* the weights in wmd's layout */
    const dnnl_memory_desc_t *wmd; /* the calling thread's choice */
    int64_t parts;
    atomic_int failed;
} job;

/* Part p's sub-batch [*n0, *n0 + return): sizes differ by at most one. */
static int64_t part_range(const job *j, int64_t p, int64_t *n0)
{
    const int64_t N = j->g->N, q = N / j->parts, r = N % j->parts;
    *n0 = p * q + (p < r ? p : r);
    return q + (p < r);
}

/* One part: plain input -> primitive layout, convolution, -> plain output. */
static int run_part(job *j, int64_t p)
{
    const conv_geom *g = j->g;
    int64_t n0, nb = part_range(j, p, &n0);
    cache *c = thread_cache();
    entry *e = c ? lookup(c, g, nb, j->bias != NULL, j->wmd) : NULL;
    if (!e || !e->ok || !dnnl_memory_desc_equal(&e->wmd, j->wmd))
        return -1;
    void *bufs[3] = {NULL, NULL, NULL};
    const size_t sizes[3] = {e->src_bytes, e->dst_bytes, e->scratch_bytes};
    int rc = -1;
    for (int i = 0; i < 3; i++)
        if (sizes[i] && !(bufs[i] = fern_alloc(FERN_CPU, sizes[i])))
            goto done;
    dnnl_memory_t src = e->rsrc ? e->src_conv : e->src_user;
    dnnl_memory_t dst = e->rdst ? e->dst_conv : e->dst_user;
    dnnl_memory_set_data_handle(e->src_user, (void *)(j->x + n0 * g->C * g->H * g->W));
    dnnl_memory_set_data_handle(e->dst_user, j->y + n0 * g->O * g->OH * g->OW);
    dnnl_memory_set_data_handle(e->w_conv, j->w);
    if (bufs[0])
        dnnl_memory_set_data_handle(e->src_conv, bufs[0]);
    if (bufs[1])
        dnnl_memory_set_data_handle(e->dst_conv, bufs[1]);
    if (e->rsrc && run1(e->rsrc, c->stream, e->src_user, e->src_conv) != dnnl_success)
        goto done;
    dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, e->w_conv}, {DNNL_ARG_DST, dst}};
    int na = 3;
    if (e->scratch) {
        dnnl_memory_set_data_handle(e->scratch, bufs[2]);
        a[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->scratch};
    }
    if (e->bias) {
        dnnl_memory_set_data_handle(e->bias, (void *)j->bias);
        a[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, e->bias};
    }
    if (dnnl_primitive_execute(e->conv, c->stream, na, a) != dnnl_success)
        goto done;
    if (e->rdst && run1(e->rdst, c->stream, e->dst_conv, e->dst_user) != dnnl_success)
        goto done;
    rc = dnnl_stream_wait(c->stream) == dnnl_success ? 0 : -1;
done:
    for (int i = 0; i < 3; i++)
        if (bufs[i])
            fern_free(FERN_CPU, bufs[i], sizes[i]);
    return rc;
}

static void part_task(void *ctx, int64_t begin, int64_t end)
{
    job *j = ctx;
    const int prev = fern__omp_single_begin();
    for (int64_t p = begin; p < end; p++)
        if (!atomic_load(&j->failed) && run_part(j, p))
            atomic_store(&j->failed, 1);
    fern__omp_single_end(prev);
}

int fern__conv_onednn_suits(const conv_geom *g, fern_dtype dt)
{
    pthread_once(&init_once, init);
    if (!ready || dt != FERN_F32 || env_mode == 0)
        return 0;
    if (env_mode == 1)
        return 1;
    /* Measured on ResNet-18's CIFAR shapes, batch 32, 2 threads (Zen 5):
     * oneDNN wins on 128-256 input channels x 3x3 (16x16 and 8x8 planes,
     * 10-25%) and on the 1x1 downsamples from 128-256 channels (~25%); fern's
     * kernels win or tie on 64 input channels (32x32 planes, the 1x1 one
     * included), 512 x 3x3 at 4x4 and LeNet (5x5, <= 16 channels). Grouped
     * convs (not measured) stay on fern's. */
    return g->G == 1 && g->O >= 128 && g->C >= 128 && g->C * g->KH * g->KW <= 2304;
}

int fern__conv_onednn(const conv_geom *g, const float *x, const float *w, const float *bias,
                      float *y)
{
    if (g->N < 1 || !ready)
        return 1;
    cache *c = thread_cache();
    if (!c)
        return 1;
    job j = {.g = g, .x = x, .bias = bias, .y = y};
    j.parts = fern_num_threads();
    if (j.parts > g->N)
        j.parts = g->N;
    if (j.parts < 1)
        j.parts = 1;
    const int prev = fern__omp_single_begin();
    int rc = 1;
    /* The largest part's primitive picks the weight layout that every part
     * reads; the weights are reordered to it once, here. */
    int64_t n0, nb = part_range(&j, 0, &n0);
    entry *e = lookup(c, g, nb, bias != NULL, NULL);
    if (!e || !e->ok)
        goto done;
    j.wmd = &e->wmd;
    j.w = (void *)w;
    if (e->rw) {
        if (!(j.w = fern_alloc(FERN_CPU, e->w_bytes)))
            goto done;
        dnnl_memory_set_data_handle(e->w_user, (void *)w);
        dnnl_memory_set_data_handle(e->w_conv, j.w);
        if (run1(e->rw, c->stream, e->w_user, e->w_conv) != dnnl_success ||
            dnnl_stream_wait(c->stream) != dnnl_success)
            goto done;
    }
    atomic_init(&j.failed, 0);
    fern_parallel_for(j.parts, 1, part_task, &j);
    rc = atomic_load(&j.failed) ? 1 : 0;
done:
    if (e && e->rw && j.w && j.w != (void *)w)
        fern_free(FERN_CPU, j.w, e->w_bytes);
    fern__omp_single_end(prev);
    return rc;
}

#endif /* FERN_HAVE_DNNL */
