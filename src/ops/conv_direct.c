/* Direct conv2d forward kernels (no im2col): the row-vectorized kernel
 * (stride 1 along W; LeNet, wide maps, depthwise) and, in builds targeting
 * AVX-512, the channel-vectorized kernel (ResNet, LeNet's conv2). The
 * choice between them and im2col + gemm is fern__conv_forward's. */
#include "conv_common.h"

/* ---- direct kernel: stride 1 along W ------------------------------------
 * For small convs (LeNet) im2col's short copies cost more than the
 * arithmetic, and on wide maps with a moderate channel count this kernel
 * beats the gemm. It computes one vector of output columns (32 bytes, or
 * 64 where the build targets AVX-512) for COB output channels at once: each
 * unaligned load of input feeds COB fused multiply-adds, accumulated in
 * registers over all (ci, kh, kw), skipping the kernel rows that fall in the
 * top/bottom padding for that output row (a third of the work for the
 * "full" convs of the input gradient). A sample's input is first copied into
 * a zero-padded buffer (no bounds checks; wide enough that the last vector
 * of a row stays inside it), and the weights are transposed to
 * (group, ci, tap, co) with co padded to opad. */

#define DEFINE_DIRECT_BLOCK(T, SFX, COB, NAME, VB)                                                \
    CONV_CONTRACT static void dblock_##SFX##_##COB##NAME(                                          \
        const T *restrict xw, int64_t plane, int64_t Wp, int64_t cin, int64_t KH, int64_t KW,     \
        int64_t dh, int64_t dw, const T *restrict wt, int64_t opad, int64_t wci,                 \
        const T *restrict b,                                                                      \
        T *restrict y, int64_t P, int64_t nvalid, int nco)                                        \
    {                                                                                             \
        typedef T vec __attribute__((vector_size(VB)));                                           \
        vec acc[COB];                                                                             \
        _Pragma("GCC unroll 16") for (int c = 0; c < COB; c++) acc[c] = (vec){0} + b[c];          \
        for (int64_t ci = 0; ci < cin; ci++) {                                                    \
            const T *xc = xw + ci * plane;                                                        \
            const T *wc = wt + ci * wci;                                                          \
            for (int64_t kh = 0; kh < KH; kh++)                                                   \
                for (int64_t kw = 0; kw < KW; kw++) {                                             \
                    vec xv;                                                                       \
                    memcpy(&xv, xc + kh * dh * Wp + kw * dw, sizeof xv);                          \
                    const T *wk = wc + (kh * KW + kw) * opad;                                     \
                    _Pragma("GCC unroll 16") for (int c = 0; c < COB; c++) acc[c] += xv * wk[c];  \
                }                                                                                 \
        }                                                                                         \
        /* store the nco valid channels, nvalid valid columns */                                  \
        if (nvalid * (int64_t)sizeof(T) == VB) {                                                  \
            _Pragma("GCC unroll 16") for (int c = 0; c < COB; c++) if (c < nco)                   \
                memcpy(y + c * P, &acc[c], sizeof(vec));                                          \
        } else {                                                                                  \
            for (int c = 0; c < nco; c++)                                                         \
                for (int64_t e = 0; e < nvalid; e++)                                              \
                    y[c * P + e] = acc[c][e];                                                     \
        }                                                                                         \
    }

#define DEFINE_DIRECT_BLOCKS(T, SFX, NAME, VB)                                                    \
    DEFINE_DIRECT_BLOCK(T, SFX, 16, NAME, VB)                                                     \
    DEFINE_DIRECT_BLOCK(T, SFX, 8, NAME, VB)                                                      \
    DEFINE_DIRECT_BLOCK(T, SFX, 4, NAME, VB)                                                      \
    DEFINE_DIRECT_BLOCK(T, SFX, 1, NAME, VB)

DEFINE_DIRECT_BLOCKS(float, f32, n, DIRECT_NARROW)
DEFINE_DIRECT_BLOCKS(double, f64, n, DIRECT_NARROW)
DEFINE_DIRECT_BLOCKS(float, f32, w, DIRECT_WIDE)
DEFINE_DIRECT_BLOCKS(double, f64, w, DIRECT_WIDE)

typedef struct {
    const conv_geom *g;
    fern_dtype dt;
    size_t es;
    const char *x;
    char *y;
    const char *wt;    /* (G, cin_g, KK, opad) */
    const char *bp;    /* (G, opad): the bias, zero padded */
    int64_t opad, Hp, Wp, V, nblk;
    int wide;          /* use the DIRECT_WIDE kernels */
    char *xp;          /* shared padded sample (per-block tasks) */
    int64_t n;         /* its sample index */
    atomic_int *failed; /* set by a task that could not allocate */
} dir_job;

/* Output-channel blocks of a group: 16 channels each, the last one 16, 8,
 * 4 or 1 wide (the weights are zero padded up to opad). */
static int last_cob(int64_t og)
{
    int64_t r = og % 16;
    return r == 0 ? 16 : r > 8 ? 16 : r > 4 ? 8 : r > 1 ? 4 : 1;
}

static void dir_block_at(int64_t og, int64_t k, int64_t *c0, int *cob)
{
    *c0 = 16 * k;
    *cob = og - *c0 >= 16 ? 16 : last_cob(og);
}

#define DEFINE_DIRECT_DRIVER(T, SFX)                                                              \
    static void dir_pad_##SFX(const dir_job *j, int64_t n, T *restrict xp)                        \
    {                                                                                             \
        const conv_geom *g = j->g;                                                                \
        const int64_t plane = j->Hp * j->Wp;                                                      \
        const T *x = (const T *)j->x + n * g->C * g->H * g->W;                                    \
        memset(xp, 0, (size_t)(g->C * plane) * sizeof(T));                                        \
        for (int64_t c = 0; c < g->C; c++)                                                        \
            for (int64_t ih = 0; ih < g->H; ih++)                                                 \
                memcpy(xp + c * plane + (ih + g->pt) * j->Wp + g->pl,                             \
                       x + (c * g->H + ih) * g->W, (size_t)g->W * sizeof(T));                     \
    }                                                                                             \
    /* channel block k (of G * nblk) of sample n, whose padded input is xp */                     \
    static void dir_block_##SFX(const dir_job *j, int64_t n, int64_t k, const T *xp)              \
    {                                                                                             \
        const conv_geom *g = j->g;                                                                \
        const int64_t plane = j->Hp * j->Wp, Wp = j->Wp, V = j->V, opad = j->opad;                \
        const int64_t cin_g = g->C / g->G, og = g->O / g->G, KK = g->KH * g->KW;                  \
        const int64_t P = g->OH * g->OW, grp = k / j->nblk;                                       \
        int64_t c0;                                                                               \
        int cob;                                                                                  \
        dir_block_at(og, k % j->nblk, &c0, &cob);                                                 \
        const int nco = og - c0 < cob ? (int)(og - c0) : cob;                                     \
        const T *xg = xp + grp * cin_g * plane;                                                   \
        const T *wg = (const T *)j->wt + grp * cin_g * KK * opad + c0;                            \
        const T *bg = (const T *)j->bp + grp * opad + c0;                                         \
        T *yg = (T *)j->y + (n * g->O + grp * og + c0) * P;                                       \
        for (int64_t oh = 0; oh < g->OH; oh++) {                                                  \
            /* only the kernel rows that read the input, not its padding */                      \
            int64_t kh0, kh1;                                                                     \
            valid_range(g->KH, g->dh, oh * g->sh - g->pt, g->H, &kh0, &kh1);                      \
            const int64_t KHv = kh1 - kh0;                                                        \
            const T *wk = wg + kh0 * g->KW * opad;                                                \
            for (int64_t ow0 = 0; ow0 < g->OW; ow0 += V) {                                        \
                const int64_t nv = g->OW - ow0 < V ? g->OW - ow0 : V;                             \
                const T *xw = xg + (oh * g->sh + kh0 * g->dh) * Wp + ow0;                         \
                T *yb = yg + oh * g->OW + ow0;                                                    \
                if (j->wide)                                                                      \
                    (cob == 16  ? dblock_##SFX##_16w                                              \
                     : cob == 8 ? dblock_##SFX##_8w                                               \
                     : cob == 4 ? dblock_##SFX##_4w                                               \
                                : dblock_##SFX##_1w)(xw, plane, Wp, cin_g, KHv, g->KW, g->dh,     \
                                                     g->dw, wk, opad, KK * opad, bg, yb, P, nv,   \
                                                     nco);                                        \
                else                                                                              \
                    (cob == 16  ? dblock_##SFX##_16n                                              \
                     : cob == 8 ? dblock_##SFX##_8n                                               \
                     : cob == 4 ? dblock_##SFX##_4n                                               \
                                : dblock_##SFX##_1n)(xw, plane, Wp, cin_g, KHv, g->KW, g->dh,     \
                                                     g->dw, wk, opad, KK * opad, bg, yb, P, nv,   \
                                                     nco);                                        \
            }                                                                                     \
        }                                                                                         \
    }

DEFINE_DIRECT_DRIVER(float, f32)
DEFINE_DIRECT_DRIVER(double, f64)

/* Many samples: task = samples, each padded into the thread's own buffer. */
static void dir_sample_task(void *ctx, int64_t begin, int64_t end)
{
    const dir_job *j = ctx;
    size_t bytes = (size_t)(j->g->C * j->Hp * j->Wp) * j->es;
    void *xp = fern_alloc(FERN_CPU, bytes);
    if (!xp) {
        atomic_store(j->failed, 1);
        return;
    }
    const int64_t nk = j->g->G * j->nblk;
    for (int64_t n = begin; n < end; n++) {
        if (j->dt == FERN_F32) {
            dir_pad_f32(j, n, xp);
            for (int64_t k = 0; k < nk; k++)
                dir_block_f32(j, n, k, xp);
        } else {
            dir_pad_f64(j, n, xp);
            for (int64_t k = 0; k < nk; k++)
                dir_block_f64(j, n, k, xp);
        }
    }
    fern_free(FERN_CPU, xp, bytes);
}

/* Few samples: task = channel blocks of the one padded sample j->n. */
static void dir_block_task(void *ctx, int64_t begin, int64_t end)
{
    const dir_job *j = ctx;
    for (int64_t k = begin; k < end; k++) {
        if (j->dt == FERN_F32)
            dir_block_f32(j, j->n, k, (const float *)j->xp);
        else
            dir_block_f64(j, j->n, k, (const double *)j->xp);
    }
}

/* ---- channel-vectorized direct kernel (AVX-512 builds) -----------------
 * For maps too small for the row-vectorized kernel (ResNet's 8x8 and 4x4
 * stages, strided convs) the vector runs over output channels instead: a
 * block computes PB output positions x CV vectors of channels, each tap
 * (ci, kh, kw) loading CV weight vectors and broadcasting PB input values.
 * Positions are flattened over (sample, oh, ow), each with its own base
 * pointer into the zero-padded input, so any stride works and small maps
 * still fill whole blocks. Weights are (group, ci, tap, co) with co padded
 * to a multiple of CV vectors. */

#define DEFINE_CBLOCK(T, SFX, CV, PB)                                                             \
    CONV_CONTRACT static void cblock_##SFX##_##CV##x##PB(                                          \
        const T *const *base, const int64_t *toff, int64_t ntaps, const T *restrict wt,           \
        int64_t opad, const T *restrict b, T (*out)[CV * DIRECT_WIDE / sizeof(T)])                \
    {                                                                                             \
        typedef T vec __attribute__((vector_size(DIRECT_WIDE)));                                  \
        enum { L = DIRECT_WIDE / sizeof(T) };                                                     \
        vec acc[PB][CV], bv[CV];                                                                  \
        const T *bp_[PB];                                                                         \
        _Pragma("GCC unroll 16") for (int p = 0; p < PB; p++) bp_[p] = base[p];                   \
        _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++)                                      \
            memcpy(&bv[v], b + v * L, sizeof(vec));                                               \
        _Pragma("GCC unroll 16") for (int p = 0; p < PB; p++)                                     \
            _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++) acc[p][v] = bv[v];               \
        for (int64_t t = 0; t < ntaps; t++) {                                                     \
            const int64_t o = toff[t];                                                            \
            vec wv[CV];                                                                           \
            _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++)                                  \
                memcpy(&wv[v], wt + t * opad + v * L, sizeof(vec));                               \
            _Pragma("GCC unroll 16") for (int p = 0; p < PB; p++) {                               \
                const T xs = bp_[p][o];                                                           \
                _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++) acc[p][v] += wv[v] * xs;     \
            }                                                                                     \
        }                                                                                         \
        _Pragma("GCC unroll 16") for (int p = 0; p < PB; p++)                                     \
            _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++)                                  \
                memcpy(&out[p][v * L], &acc[p][v], sizeof(vec));                                  \
    }
#if CBLOCK_AVAILABLE
DEFINE_CBLOCK(float, f32, 4, 6)
DEFINE_CBLOCK(float, f32, 2, 8)
DEFINE_CBLOCK(float, f32, 1, 8)
DEFINE_CBLOCK(double, f64, 4, 6)
DEFINE_CBLOCK(double, f64, 2, 8)
DEFINE_CBLOCK(double, f64, 1, 8)
#endif

#define CB_PBMAX 8
#define CB_COLS (4 * 16) /* CV * lanes, at most */

typedef struct {
    const conv_geom *g;
    fern_dtype dt;
    size_t es;
    const char *x;
    char *y;
    const char *wt, *bp;       /* (G, cin_g, KK, opad), (G, opad) */
    const int64_t *toff;       /* tap offsets in the padded input */
    char *xp;                  /* padded samples [n0, n0 + nb) */
    int64_t opad, cv, pb, lanes, Hp, Wp, ntaps; /* ntaps: cin_g * live taps */
    int64_t n0, nb, nchb, npb, nslice; /* chunk; channel blocks per group; position blocks */
} cb_job;

#if CBLOCK_AVAILABLE
/* Results of up to CB_TILE_BLOCKS position blocks, channel-major, so they
 * reach the output as contiguous runs (scattered per-element stores, one
 * output plane apart, thrash the L1 sets). */
#define CB_TILE_BLOCKS 16
#define CB_TILE_W (CB_TILE_BLOCKS * CB_PBMAX + 16)

#define DEFINE_CB_FLUSH(T, SFX)                                                                   \
    /* out[p][c] of one block -> tile[c][at + p] */                                               \
    static void cb_collect_##SFX(const T *restrict out, int np, int64_t cw, T *restrict tile,     \
                                 int64_t at)                                                      \
    {                                                                                             \
        for (int64_t c = 0; c < cw; c++)                                                          \
            for (int p = 0; p < np; p++)                                                          \
                tile[c * CB_TILE_W + at + p] = out[p * cw + c];                                   \
    }                                                                                             \
    /* tile[c][0, cnt) holds positions [q0, q0 + cnt) of the chunk */                             \
    static void cb_flush_##SFX(const cb_job *j, const T *restrict tile, int64_t q0, int64_t cnt,  \
                               int64_t grp, int64_t c0, int64_t nc)                               \
    {                                                                                             \
        const conv_geom *g = j->g;                                                                \
        const int64_t P = g->OH * g->OW, og = g->O / g->G;                                        \
        for (int64_t done = 0; done < cnt;) {                                                     \
            const int64_t q = q0 + done, n = q / P, r = q % P;                                    \
            const int64_t len = P - r < cnt - done ? P - r : cnt - done;                          \
            T *y = (T *)j->y + ((j->n0 + n) * g->O + grp * og + c0) * P + r;                      \
            for (int64_t c = 0; c < nc; c++)                                                      \
                memcpy(y + c * P, tile + c * CB_TILE_W + done, (size_t)len * sizeof(T));          \
            done += len;                                                                          \
        }                                                                                         \
    }

DEFINE_CB_FLUSH(float, f32)
DEFINE_CB_FLUSH(double, f64)

/* task t: channel block t % (G * nchb) over slice t / (G * nchb) of the
 * position blocks (its weights stay in cache across the slice) */
static void cb_task(void *ctx, int64_t begin, int64_t end)
{
    const cb_job *j = ctx;
    const conv_geom *g = j->g;
    const int64_t cin_g = g->C / g->G, og = g->O / g->G, OW = g->OW;
    const int64_t P = g->OH * OW, plane = j->Hp * j->Wp, ntaps = j->ntaps;
    const int64_t cw = j->cv * j->lanes, nq = j->nb * P, nkb = g->G * j->nchb;
    const size_t es = j->es;
    _Alignas(64) char out[CB_PBMAX * CB_COLS * 8];
    _Alignas(64) char tile[CB_COLS / 2 * CB_TILE_W * 8]; /* cw * es <= 256 bytes */
    for (int64_t t = begin; t < end; t++) {
        const int64_t kb = t % nkb, slice = t / nkb;
        const int64_t grp = kb / j->nchb, c0 = kb % j->nchb * cw;
        const char *wt = j->wt + (size_t)(grp * ntaps * j->opad + c0) * es;
        const char *bp = j->bp + (size_t)(grp * j->opad + c0) * es;
        const int64_t per = (j->npb + j->nslice - 1) / j->nslice, b0 = slice * per;
        const int64_t b1 = b0 + per < j->npb ? b0 + per : j->npb;
        const int64_t nc = og - c0 < cw ? og - c0 : cw;
        const char *xg = j->xp + (size_t)(grp * cin_g * plane) * es;
        /* position q = b0 * pb as (sample n, row oh, column ow), then stepped */
        int64_t q = b0 * j->pb, n = q / P, oh = q % P / OW, ow = q % OW;
        int64_t tq0 = q, tcnt = 0;
        for (int64_t blk = b0; blk < b1; blk++) {
            const void *base[CB_PBMAX];
            int np = 0;
            for (int p = 0; p < j->pb; p++) {
                base[p] = xg + (size_t)(n * g->C * plane + oh * g->sh * j->Wp + ow * g->sw) * es;
                if (q < nq) { /* past the end: repeat the last position, not stored */
                    np++;
                    q++;
                    if (q < nq && ++ow == OW) {
                        ow = 0;
                        if (++oh == g->OH) {
                            oh = 0;
                            n++;
                        }
                    }
                }
            }
            if (j->dt == FERN_F32) {
                const float *const *bs = (const float *const *)base;
                if (j->cv == 4)
                    cblock_f32_4x6(bs, j->toff, ntaps, (const float *)wt, j->opad,
                                   (const float *)bp, (float(*)[64])out);
                else if (j->cv == 2)
                    cblock_f32_2x8(bs, j->toff, ntaps, (const float *)wt, j->opad,
                                   (const float *)bp, (float(*)[32])out);
                else
                    cblock_f32_1x8(bs, j->toff, ntaps, (const float *)wt, j->opad,
                                   (const float *)bp, (float(*)[16])out);
                cb_collect_f32((const float *)out, np, cw, (float *)tile, tcnt);
            } else {
                const double *const *bs = (const double *const *)base;
                if (j->cv == 4)
                    cblock_f64_4x6(bs, j->toff, ntaps, (const double *)wt, j->opad,
                                   (const double *)bp, (double(*)[32])out);
                else if (j->cv == 2)
                    cblock_f64_2x8(bs, j->toff, ntaps, (const double *)wt, j->opad,
                                   (const double *)bp, (double(*)[16])out);
                else
                    cblock_f64_1x8(bs, j->toff, ntaps, (const double *)wt, j->opad,
                                   (const double *)bp, (double(*)[8])out);
                cb_collect_f64((const double *)out, np, cw, (double *)tile, tcnt);
            }
            tcnt += np;
            if ((blk - b0) % CB_TILE_BLOCKS == CB_TILE_BLOCKS - 1 || blk == b1 - 1) {
                if (j->dt == FERN_F32)
                    cb_flush_f32(j, (const float *)tile, tq0, tcnt, grp, c0, nc);
                else
                    cb_flush_f64(j, (const double *)tile, tq0, tcnt, grp, c0, nc);
                tq0 += tcnt;
                tcnt = 0;
            }
        }
    }
}

/* pad task t: plane (sample n0 + t / C, channel t % C) into xp */
static void cb_pad_task(void *ctx, int64_t begin, int64_t end)
{
    const cb_job *j = ctx;
    const conv_geom *g = j->g;
    fern__conv_pad_planes(g, j->x, j->n0 * g->C, j->xp, j->Hp, j->Wp, j->es, begin, end);
}

#define CB_CHUNK_BYTES ((size_t)16 << 20) /* padded samples per chunk */
#define CB_WEIGHT_BYTES ((size_t)768 << 10) /* a channel block's weights, to stay in L2 */
#define CB_MAX_TAPS 64                       /* kernels up to 8x8 */

int fern__conv_cblock(const conv_geom *g, fern_dtype dt, const void *x, const conv_wview *w,
                      const void *bias, void *y)
{
    const size_t es = fern_dtype_size(dt);
    const int64_t L = DIRECT_WIDE / (int64_t)es, G = g->G, cin_g = g->C / G, og = g->O / G;
    const int64_t P = g->OH * g->OW;
    cb_job j = {.g = g, .dt = dt, .es = es, .x = x, .y = y, .lanes = L};
    int64_t taps[CB_MAX_TAPS];
    const int64_t nlive = fern__conv_live_taps(g, taps), ntaps = cin_g * nlive;
    j.ntaps = ntaps;
    /* the widest channel block that divides og and whose weights fit in L2 */
    j.cv = 1;
    for (int64_t cv = 4; cv > 1; cv /= 2)
        if (og % (cv * L) == 0 && (size_t)(ntaps * cv * L) * es <= CB_WEIGHT_BYTES) {
            j.cv = cv;
            break;
        }
    j.pb = j.cv == 4 ? 6 : 8;
    const int64_t cw = j.cv * L;
    j.nchb = (og + cw - 1) / cw;
    j.opad = j.nchb * cw;
    j.Hp = g->H + g->pt + g->pb;
    j.Wp = g->W + g->pl + g->pr;
    const int64_t plane = j.Hp * j.Wp;
    const size_t sample_bytes = (size_t)(g->C * plane) * es;
    int64_t nbmax = (int64_t)(CB_CHUNK_BYTES / (sample_bytes ? sample_bytes : 1));
    if (nbmax < 1)
        nbmax = 1;
    if (nbmax > g->N)
        nbmax = g->N;
    size_t wt_bytes = (size_t)(G * ntaps * j.opad) * es, bp_bytes = (size_t)(G * j.opad) * es;
    size_t toff_bytes = (size_t)ntaps * sizeof(int64_t), xp_bytes = (size_t)nbmax * sample_bytes;
    char *wt = fern_alloc(FERN_CPU, wt_bytes), *bp = fern_alloc(FERN_CPU, bp_bytes);
    int64_t *toff = fern_alloc(FERN_CPU, toff_bytes);
    char *xp = fern_alloc(FERN_CPU, xp_bytes);
    int rc = -1;
    if (wt && bp && toff && xp) {
        /* w[co][ci][tap] -> wt[grp][ci][live tap][o] */
        fern__conv_lay_weights(g, dt, w, taps, nlive, j.opad, wt);
        memset(bp, 0, bp_bytes);
        for (int64_t grp = 0; bias && grp < G; grp++)
            memcpy(bp + (size_t)(grp * j.opad) * es, (const char *)bias + (size_t)(grp * og) * es,
                   (size_t)og * es);
        for (int64_t ci = 0; ci < cin_g; ci++)
            for (int64_t k = 0; k < nlive; k++)
                toff[ci * nlive + k] = ci * plane + taps[k] / g->KW * g->dh * j.Wp +
                                       taps[k] % g->KW * g->dw;
        j.wt = wt;
        j.bp = bp;
        j.toff = toff;
        j.xp = xp;
        const int nt = fern_num_threads();
        for (j.n0 = 0; j.n0 < g->N; j.n0 += nbmax) {
            j.nb = g->N - j.n0 < nbmax ? g->N - j.n0 : nbmax;
            fern_parallel_for(j.nb * g->C, grain_for(plane), cb_pad_task, &j);
            j.npb = (j.nb * P + j.pb - 1) / j.pb;
            const int64_t nkb = G * j.nchb;
            j.nslice = (4 * nt + nkb - 1) / nkb;
            if (j.nslice > j.npb)
                j.nslice = j.npb;
            fern_parallel_for(nkb * j.nslice, 1, cb_task, &j);
        }
        rc = 0;
    }
    fern_free(FERN_CPU, wt, wt_bytes);
    fern_free(FERN_CPU, bp, bp_bytes);
    fern_free(FERN_CPU, toff, toff_bytes);
    fern_free(FERN_CPU, xp, xp_bytes);
    return rc;
}
#endif

#if CBLOCK_AVAILABLE
/* Whether the channel-vectorized kernel is the better choice: enough output
 * channels per group to fill its vectors, and enough taps per output for
 * the block set-up and the transposed stores to be a small cost. A large
 * 1x1 stride-1 conv is a plain gemm on the input. */
int fern__conv_cblock_suits(const conv_geom *g, size_t es)
{
    const int64_t cin_g = g->C / g->G, og = g->O / g->G, KK = g->KH * g->KW;
    if (og < (int64_t)(DIRECT_WIDE / es) || KK > CB_MAX_TAPS)
        return 0;
    int64_t taps[CB_MAX_TAPS];
    if (cin_g * fern__conv_live_taps(g, taps) < 64)
        return 0;
    const int pointwise = KK == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 &&
                          g->pb == 0 && g->pr == 0;
    return !(pointwise && g->OH * g->OW >= 1024);
}
#endif

/* Whether the row-vectorized direct kernel is the better choice. */
int fern__conv_direct_suits(const conv_geom *g, size_t es)
{
    const int64_t cin_g = g->C / g->G, og = g->O / g->G;
    if (g->sw != 1 || (g->KH == 1 && g->KW == 1))
        return 0; /* strided columns need gathers; 1x1 convs are plain gemms */
    /* a mostly filled wide vector per output row segment */
    int wide_fill = DIRECT_WIDE > DIRECT_NARROW && g->OW * (int64_t)es * 4 >= DIRECT_WIDE * 3;
    /* gemm has too little work per output channel: M and K both small */
    int thin = og * cin_g * g->KH * g->KW <= 16384;
    /* one input channel per group (depthwise) */
    return wide_fill || thin || cin_g == 1;
}

/* Direct conv for sw == 1. Returns 0, or -1 when out of memory. */
int fern__conv_direct(const conv_geom *g, fern_dtype dt, const void *x, const conv_wview *w,
                      const void *bias, void *y)
{
    const size_t es = fern_dtype_size(dt);
    const int wide = g->OW * (int64_t)es * 4 >= DIRECT_WIDE * 3;
    const int64_t V = (wide ? DIRECT_WIDE : DIRECT_NARROW) / (int64_t)es;
    const int64_t G = g->G, cin_g = g->C / G, og = g->O / G, KK = g->KH * g->KW;
    const int64_t opad = og / 16 * 16 + (og % 16 ? last_cob(og) : 0);
    const int64_t owr = (g->OW + V - 1) / V * V;
    dir_job j = {.g = g, .dt = dt, .es = es, .x = x, .y = y, .opad = opad, .wide = wide, .V = V};
    j.nblk = (og + 15) / 16;
    j.Hp = g->H + g->pt + g->pb;
    j.Wp = g->W + g->pl + g->pr;
    if (j.Wp < owr + (g->KW - 1) * g->dw)
        j.Wp = owr + (g->KW - 1) * g->dw;
    const int nt = fern_num_threads();
    const int per_sample = g->N >= 2 * nt;
    size_t wt_bytes = (size_t)(G * cin_g * KK * opad) * es, bp_bytes = (size_t)(G * opad) * es;
    size_t xp_bytes = (size_t)(g->C * j.Hp * j.Wp) * es;
    char *wt = fern_alloc(FERN_CPU, wt_bytes), *bp = fern_alloc(FERN_CPU, bp_bytes);
    char *xp = per_sample ? NULL : fern_alloc(FERN_CPU, xp_bytes);
    atomic_int failed = 0;
    j.failed = &failed;
    if (!wt || !bp || (!per_sample && !xp)) {
        fern_free(FERN_CPU, wt, wt_bytes);
        fern_free(FERN_CPU, bp, bp_bytes);
        fern_free(FERN_CPU, xp, xp_bytes);
        return -1;
    }
    /* w[co][ci][tap] -> wt[grp][ci][tap][o] */
    fern__conv_lay_weights(g, dt, w, NULL, KK, opad, wt);
    memset(bp, 0, bp_bytes);
    for (int64_t grp = 0; bias && grp < G; grp++)
        memcpy(bp + (size_t)(grp * opad) * es, (const char *)bias + (size_t)(grp * og) * es,
               (size_t)og * es);
    j.wt = wt;
    j.bp = bp;
    if (per_sample) { /* each task pads its samples into its own buffer */
        fern_parallel_for(g->N, 1, dir_sample_task, &j);
    } else {
        j.xp = xp;
        for (j.n = 0; j.n < g->N; j.n++) {
            if (dt == FERN_F32)
                dir_pad_f32(&j, j.n, (float *)xp);
            else
                dir_pad_f64(&j, j.n, (double *)xp);
            fern_parallel_for(G * j.nblk, 1, dir_block_task, &j);
        }
    }
    fern_free(FERN_CPU, xp, xp_bytes);
    fern_free(FERN_CPU, wt, wt_bytes);
    fern_free(FERN_CPU, bp, bp_bytes);
    return atomic_load(&failed) ? fern__conv_worker_oom(g) : 0;
}
