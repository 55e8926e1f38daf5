/* conv2d_weight_grad's direct kernel (AVX-512 builds), chosen by
 * fern__conv_wgrad:
 *
 * gw_g^T (cin_g * taps x og) = col (cin_g * taps x positions) @ gT (positions
 * x og), with col never built: like the channel-vectorized forward kernel
 * with positions and taps swapping roles. A block holds TB rows r (input
 * channel, tap) x CV vectors of output channels in registers; for every
 * position q of its slice it loads CV vectors of gy^T (gT, o contiguous) and
 * broadcasts TB input values x_padded[base[q] + toff[r]]. gy is transposed
 * per chunk of samples into gT (o padded to the block width), the input
 * zero padded as for the forward (wide enough for every read), and slices of
 * the positions add into their own partial sums, reduced at the end. */
#include "conv_common.h"

#if CBLOCK_AVAILABLE
#define DEFINE_WBLOCK(T, SFX, VB, CV, TB)                                                         \
    CONV_CONTRACT static void wblock_##SFX##_##VB##_##CV##x##TB(                                   \
        const T *restrict xg, const int64_t *restrict base, int64_t q0, int64_t q1,              \
        const int64_t *restrict toff, const T *restrict gT, int64_t opad, T *restrict out)       \
    {                                                                                             \
        typedef T vec __attribute__((vector_size(VB)));                                           \
        enum { L = VB / sizeof(T) };                                                              \
        vec acc[TB][CV];                                                                          \
        int64_t to[TB];                                                                           \
        _Pragma("GCC unroll 16") for (int t = 0; t < TB; t++) {                                   \
            to[t] = toff[t];                                                                      \
            _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++) acc[t][v] = (vec){0};            \
        }                                                                                         \
        for (int64_t q = q0; q < q1; q++) {                                                       \
            const T *xq = xg + base[q];                                                           \
            const T *gq = gT + q * opad;                                                          \
            vec gv[CV];                                                                           \
            _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++)                                  \
                memcpy(&gv[v], gq + v * L, sizeof(vec));                                          \
            _Pragma("GCC unroll 16") for (int t = 0; t < TB; t++) {                               \
                const T xs = xq[to[t]];                                                           \
                _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++) acc[t][v] += gv[v] * xs;     \
            }                                                                                     \
        }                                                                                         \
        _Pragma("GCC unroll 16") for (int t = 0; t < TB; t++)                                     \
            _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++) {                                \
                vec o;                                                                            \
                memcpy(&o, out + t * opad + v * L, sizeof o);                                     \
                o += acc[t][v];                                                                   \
                memcpy(out + t * opad + v * L, &o, sizeof o);                                     \
            }                                                                                     \
    }

#define DEFINE_WBLOCKS(T, SFX)                                                                    \
    DEFINE_WBLOCK(T, SFX, 64, 4, 6)                                                               \
    DEFINE_WBLOCK(T, SFX, 64, 2, 8)                                                               \
    DEFINE_WBLOCK(T, SFX, 64, 1, 8)                                                               \
    DEFINE_WBLOCK(T, SFX, 64, 1, 13)                                                              \
    DEFINE_WBLOCK(T, SFX, 64, 1, 16)                                                              \
    DEFINE_WBLOCK(T, SFX, 32, 1, 8)                                                               \
    DEFINE_WBLOCK(T, SFX, 32, 1, 13)                                                              \
    DEFINE_WBLOCK(T, SFX, 32, 1, 16)

DEFINE_WBLOCKS(float, f32)
DEFINE_WBLOCKS(double, f64)

typedef struct {
    const conv_geom *g;
    fern_dtype dt;
    size_t es;
    const char *x, *gy;
    char *xp, *gT, *part;   /* padded chunk; (G, nq, opad); (nslice, G, rpad, opad) */
    const int64_t *toff;    /* rpad row offsets in a group's padded input */
    int64_t *base;          /* nq position offsets in the padded chunk */
    const int64_t *taps;
    int64_t *roff;          /* R: ci * KK + tap of row r, in a weight row */
    char *out;              /* gw */
    int64_t nlive, R, rpad, opad, vb, cv, tb, cw, nrb, nob, nslice, Hp, Wp, n0, nb, nq;
    int64_t qt, rpg;        /* positions per tile, row blocks per task */
} wd_job;

static void wd_pad_task(void *ctx, int64_t begin, int64_t end)
{
    const wd_job *j = ctx;
    const conv_geom *g = j->g;
    fern__conv_pad_planes(g, j->x, j->n0 * g->C, j->xp, j->Hp, j->Wp, j->es, begin, end);
}

/* task t = (sample i, output row oh): the padded input offsets of its positions */
static void wd_base_task(void *ctx, int64_t begin, int64_t end)
{
    const wd_job *j = ctx;
    const conv_geom *g = j->g;
    const int64_t plane = j->Hp * j->Wp;
    for (int64_t t = begin; t < end; t++) {
        const int64_t i = t / g->OH, oh = t % g->OH;
        int64_t *b = j->base + t * g->OW;
        const int64_t b0 = i * g->C * plane + oh * g->sh * j->Wp;
        for (int64_t ow = 0; ow < g->OW; ow++)
            b[ow] = b0 + ow * g->sw;
    }
}

/* task t = (sample i, group grp): gy rows -> gT[grp][i*P + p][o], in tiles of
 * 32 positions (reads along p, writes one cache line apart) */
#define DEFINE_WD_TRANSPOSE(T, SFX)                                                               \
    static void wd_transpose_##SFX(const T *restrict src, T *restrict dst, int64_t og,           \
                                   int64_t opad, int64_t P)                                       \
    {                                                                                             \
        if (opad * (int64_t)sizeof(T) <= 64) { /* a cache line per position */                   \
            for (int64_t p = 0; p < P; p++) {                                                     \
                T *restrict d = dst + p * opad;                                                   \
                for (int64_t o = 0; o < og; o++)                                                  \
                    d[o] = src[o * P + p];                                                        \
                for (int64_t o = og; o < opad; o++)                                               \
                    d[o] = 0;                                                                     \
            }                                                                                     \
            return;                                                                               \
        }                                                                                         \
        for (int64_t p0 = 0; p0 < P; p0 += 32) {                                                  \
            const int64_t p1 = p0 + 32 < P ? p0 + 32 : P;                                         \
            for (int64_t o = 0; o < og; o++)                                                      \
                for (int64_t p = p0; p < p1; p++)                                                 \
                    dst[p * opad + o] = src[o * P + p];                                           \
            for (int64_t p = p0; p < p1; p++)                                                     \
                for (int64_t o = og; o < opad; o++)                                               \
                    dst[p * opad + o] = 0;                                                        \
        }                                                                                         \
    }

DEFINE_WD_TRANSPOSE(float, f32)
DEFINE_WD_TRANSPOSE(double, f64)

static void wd_transpose_task(void *ctx, int64_t begin, int64_t end)
{
    const wd_job *j = ctx;
    const conv_geom *g = j->g;
    const int64_t og = g->O / g->G, P = g->OH * g->OW;
    for (int64_t t = begin; t < end; t++) {
        const int64_t i = t / g->G, grp = t % g->G;
        const int64_t src = ((j->n0 + i) * g->O + grp * og) * P;
        const int64_t dst = (grp * j->nq + i * P) * j->opad;
        if (j->dt == FERN_F32)
            wd_transpose_f32((const float *)j->gy + src, (float *)j->gT + dst, og, j->opad, P);
        else
            wd_transpose_f64((const double *)j->gy + src, (double *)j->gT + dst, og, j->opad, P);
    }
}

/* task t: slice t / (G*nrb*nob); row block, channel block, group of the rest */
/* task t = (slice, group, channel block, group of row blocks): positions of
 * the slice in tiles of qt (their gT rows stay in cache), each tile through
 * every row block of the group */
static void wd_task(void *ctx, int64_t begin, int64_t end)
{
    const wd_job *j = ctx;
    const conv_geom *g = j->g;
    const int64_t ngr = (j->nrb + j->rpg - 1) / j->rpg, per = g->G * j->nob * ngr;
    const int64_t plane = j->Hp * j->Wp, cin_g = g->C / g->G;
    const size_t es = j->es;
    for (int64_t t = begin; t < end; t++) {
        const int64_t slice = t / per, rem = t % per;
        const int64_t rg = rem % ngr, ob = rem / ngr % j->nob, grp = rem / (ngr * j->nob);
        const int64_t s0 = slice * j->nq / j->nslice, s1 = (slice + 1) * j->nq / j->nslice;
        const int64_t rb0 = rg * j->rpg, rb1 = rb0 + j->rpg < j->nrb ? rb0 + j->rpg : j->nrb;
        const char *xg = j->xp + (size_t)(grp * cin_g * plane) * es;
        const char *gT = j->gT + (size_t)(grp * j->nq * j->opad + ob * j->cw) * es;
        for (int64_t q0 = s0; q0 < s1; q0 += j->qt) {
            const int64_t q1 = q0 + j->qt < s1 ? q0 + j->qt : s1;
            for (int64_t rb = rb0; rb < rb1; rb++) {
                char *out = j->part + (size_t)(((slice * g->G + grp) * j->rpad + rb * j->tb) *
                                                   j->opad +
                                               ob * j->cw) *
                                          es;
                const int64_t *toff = j->toff + rb * j->tb;
#define WD_CALL(SFX, T, VB, CV, TB)                                                               \
    wblock_##SFX##_##VB##_##CV##x##TB((const T *)xg, j->base, q0, q1, toff, (const T *)gT,       \
                                      j->opad, (T *)out)
#define WD_DISPATCH(SFX, T)                                                                       \
    if (j->cv == 4)                                                                               \
        WD_CALL(SFX, T, 64, 4, 6);                                                                \
    else if (j->cv == 2)                                                                          \
        WD_CALL(SFX, T, 64, 2, 8);                                                                \
    else if (j->vb == 64)                                                                         \
        (j->tb == 8 ? WD_CALL(SFX, T, 64, 1, 8)                                                   \
                    : j->tb == 13 ? WD_CALL(SFX, T, 64, 1, 13) : WD_CALL(SFX, T, 64, 1, 16));     \
    else                                                                                          \
        (j->tb == 8 ? WD_CALL(SFX, T, 32, 1, 8)                                                   \
                    : j->tb == 13 ? WD_CALL(SFX, T, 32, 1, 13) : WD_CALL(SFX, T, 32, 1, 16));
                if (j->dt == FERN_F32) {
                    WD_DISPATCH(f32, float)
                } else {
                    WD_DISPATCH(f64, double)
                }
#undef WD_DISPATCH
#undef WD_CALL
            }
        }
    }
}

/* task t = (group, tile of WD_RT rows r): the slices summed into slice 0,
 * then the tile transposed into gw[grp*og + o][roff[r]] (the tile's rows stay
 * in cache while o runs over them) */
#define WD_RT 16
#define DEFINE_WD_REDUCE(T, SFX)                                                                  \
    static void wd_reduce_##SFX(const wd_job *j, int64_t grp, int64_t r0, int64_t r1)             \
    {                                                                                             \
        const conv_geom *g = j->g;                                                                \
        const int64_t og = g->O / g->G, cs = g->C / g->G * g->KH * g->KW, opad = j->opad;         \
        const int64_t sstride = g->G * j->rpad * opad;                                            \
        T *restrict p0 = (T *)j->part + grp * j->rpad * opad;                                     \
        for (int64_t s = 1; s < j->nslice; s++)                                                   \
            for (int64_t r = r0; r < r1; r++) {                                                   \
                T *restrict d = p0 + r * opad;                                                    \
                const T *restrict src = d + s * sstride;                                          \
                for (int64_t o = 0; o < og; o++)                                                  \
                    d[o] += src[o];                                                               \
            }                                                                                     \
        T *restrict gw = (T *)j->out + grp * og * cs;                                             \
        for (int64_t o = 0; o < og; o++)                                                          \
            for (int64_t r = r0; r < r1; r++)                                                     \
                gw[o * cs + j->roff[r]] = p0[r * opad + o];                                       \
    }

DEFINE_WD_REDUCE(float, f32)
DEFINE_WD_REDUCE(double, f64)

static void wd_reduce_task(void *ctx, int64_t begin, int64_t end)
{
    const wd_job *j = ctx;
    const int64_t ntile = (j->R + WD_RT - 1) / WD_RT;
    for (int64_t t = begin; t < end; t++) {
        const int64_t grp = t / ntile, r0 = t % ntile * WD_RT;
        const int64_t r1 = r0 + WD_RT < j->R ? r0 + WD_RT : j->R;
        if (j->dt == FERN_F32)
            wd_reduce_f32(j, grp, r0, r1);
        else
            wd_reduce_f64(j, grp, r0, r1);
    }
}

#define WD_CHUNK_BYTES ((size_t)16 << 20)  /* padded input per chunk of samples */
#define WD_PART_BYTES ((size_t)32 << 20)   /* partial sums, all slices */

/* gw (zeroed by the caller) of a conv with at least one live tap. */
int fern__conv_wgrad_direct(const conv_geom *g, fern_dtype dt, const void *x, const void *gy,
                            void *gw, const int64_t *taps, int64_t nlive)
{
    const size_t es = fern_dtype_size(dt);
    const int64_t G = g->G, cin_g = g->C / G, og = g->O / G, P = g->OH * g->OW;
    const int64_t L64 = 64 / (int64_t)es, L32 = 32 / (int64_t)es;
    wd_job j;
    memset(&j, 0, sizeof j);
    j.g = g, j.dt = dt, j.es = es, j.x = x, j.gy = gy, j.out = gw, j.taps = taps, j.nlive = nlive;
    j.R = cin_g * nlive;
    j.vb = og <= L32 ? 32 : 64;
    j.cv = 1;
    for (int64_t cv = 4; cv > 1 && j.vb == 64; cv /= 2) /* the widest block wasting < a vector */
        if ((og + cv * L64 - 1) / (cv * L64) * cv * L64 - og < L64) {
            j.cv = cv;
            break;
        }
    j.tb = j.cv == 4 ? 6 : 8;
    if (j.cv == 1) /* 8, 13 or 16 rows: the fewest padding rows, then the most per block */
        for (int64_t tb = 13; tb <= 16; tb += 3)
            if ((j.R + tb - 1) / tb * tb <= (j.R + j.tb - 1) / j.tb * j.tb)
                j.tb = tb;
    j.cw = j.cv * (j.vb / (int64_t)es);
    j.nob = (og + j.cw - 1) / j.cw;
    j.opad = j.nob * j.cw;
    j.nrb = (j.R + j.tb - 1) / j.tb;
    j.rpad = j.nrb * j.tb;
    /* padded size: the input at (pt, pl), and every read of gy's positions */
    j.Hp = g->H + g->pt, j.Wp = g->W + g->pl;
    if (j.Hp < (g->OH - 1) * g->sh + (g->KH - 1) * g->dh + 1)
        j.Hp = (g->OH - 1) * g->sh + (g->KH - 1) * g->dh + 1;
    if (j.Wp < (g->OW - 1) * g->sw + (g->KW - 1) * g->dw + 1)
        j.Wp = (g->OW - 1) * g->sw + (g->KW - 1) * g->dw + 1;
    const int64_t plane = j.Hp * j.Wp;
    const size_t sample_bytes = (size_t)(g->C * plane) * es;
    int64_t nbmax = (int64_t)(WD_CHUNK_BYTES / (sample_bytes ? sample_bytes : 1));
    if (nbmax < 1)
        nbmax = 1;
    if (nbmax > g->N)
        nbmax = g->N;
    /* tasks: groups of row blocks sharing each tile of gT (as many row
     * blocks per task as still gives every thread several tasks), then
     * slices of the positions when there are too few blocks */
    const int nt = fern_num_threads();
    const int64_t target = 4 * (int64_t)nt, cols = G * j.nob;
    const size_t part_one = (size_t)(G * j.rpad * j.opad) * es;
    int64_t ngr = (target + cols - 1) / cols;
    if (ngr > j.nrb)
        ngr = j.nrb;
    j.rpg = (j.nrb + ngr - 1) / ngr;
    ngr = (j.nrb + j.rpg - 1) / j.rpg;
    j.nslice = (target + cols * ngr - 1) / (cols * ngr);
    if (j.nslice > nbmax * P / 64)
        j.nslice = nbmax * P / 64;
    if ((size_t)j.nslice * part_one > WD_PART_BYTES)
        j.nslice = (int64_t)(WD_PART_BYTES / part_one);
    if (j.nslice < 1)
        j.nslice = 1;
    j.qt = (int64_t)(((size_t)128 << 10) / ((size_t)j.cw * es));
    if (j.qt < 64)
        j.qt = 64;
    const int64_t blocks = cols * ngr;
    size_t toff_bytes = (size_t)j.rpad * sizeof(int64_t);
    size_t roff_bytes = (size_t)j.R * sizeof(int64_t);
    size_t base_bytes = (size_t)(nbmax * P) * sizeof(int64_t);
    size_t xp_bytes = (size_t)nbmax * sample_bytes;
    size_t gT_bytes = (size_t)(G * nbmax * P * j.opad) * es;
    size_t part_bytes = (size_t)j.nslice * part_one;
    int64_t *toff = fern_alloc(FERN_CPU, toff_bytes);
    j.roff = fern_alloc(FERN_CPU, roff_bytes);
    j.base = fern_alloc(FERN_CPU, base_bytes);
    j.xp = fern_alloc(FERN_CPU, xp_bytes);
    j.gT = fern_alloc(FERN_CPU, gT_bytes);
    j.part = fern_alloc(FERN_CPU, part_bytes);
    int rc = -1;
    if (toff && j.roff && j.base && j.xp && j.gT && j.part) {
        for (int64_t ci = 0, r = 0; ci < cin_g; ci++)
            for (int64_t k = 0; k < nlive; k++, r++) {
                const int64_t tap = taps[k];
                toff[r] = ci * plane + tap / g->KW * g->dh * j.Wp + tap % g->KW * g->dw;
                j.roff[r] = ci * g->KH * g->KW + tap;
            }
        for (int64_t r = j.R; r < j.rpad; r++) /* padding rows repeat the last real one */
            toff[r] = toff[j.R - 1];
        j.toff = toff;
        memset(j.part, 0, part_bytes);
        for (j.n0 = 0; j.n0 < g->N; j.n0 += nbmax) {
            j.nb = g->N - j.n0 < nbmax ? g->N - j.n0 : nbmax;
            j.nq = j.nb * P;
            fern_parallel_for(j.nb * g->OH, grain_for(g->OW), wd_base_task, &j);
            fern_parallel_for(j.nb * g->C, grain_for(plane), wd_pad_task, &j);
            fern_parallel_for(j.nb * G, grain_for(og * P), wd_transpose_task, &j);
            fern_parallel_for(blocks * j.nslice, 1, wd_task, &j);
        }
        fern_parallel_for(G * ((j.R + WD_RT - 1) / WD_RT), grain_for(WD_RT * og * j.nslice),
                          wd_reduce_task, &j);
        rc = 0;
    }
    fern_free(FERN_CPU, toff, toff_bytes);
    fern_free(FERN_CPU, j.roff, roff_bytes);
    fern_free(FERN_CPU, j.base, base_bytes);
    fern_free(FERN_CPU, j.xp, xp_bytes);
    fern_free(FERN_CPU, j.gT, gT_bytes);
    fern_free(FERN_CPU, j.part, part_bytes);
    return rc;
}
#endif
