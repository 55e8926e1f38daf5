/* conv_transpose2d with stride 1 on small inputs (f32, AVX-512 builds): the
 * input gradient of a valid conv such as LeNet's second (16 -> 6 channels,
 * 5x5 kernel, 10x10 -> 14x14).
 *
 * As a stride-1 forward conv (conv_transpose.c) this reads the input padded
 * by KH-1 rows and KW-1 columns on each side: on a 10x10 input half of the
 * multiply-adds land on padding. Here each output channel c first gets the
 * columns col[c][kh][kw][p] = sum over input channels o of w[o][c][kh][kw] *
 * x[o][p], a gemm on the unpadded pixels p (flattened, so a vector of 16
 * lanes spans rows and samples and only the last one is partly empty); then
 * each output row sums its KH*KW shifted column rows, each a masked load
 * (the lanes whose input column falls outside the row read nothing), so no
 * multiply-add sees padding (LeNet's: 1.9x fewer multiply-adds). The gemm's
 * register block is 5 taps x up to 5 vectors of pixels, the 5 weights
 * broadcast into registers per input channel; its K (the input channels) is
 * short, so it runs here rather than through BLAS, and its results go to a
 * buffer that stays in L1 (a task's samples are sized for that: for LeNet
 * two, 200 pixels in 13 vectors). The sums, bound by their loads (most
 * cross a cache line), cost about a fifth of the time; running them
 * between the gemm's blocks of the next channel did not pay. */
#include "conv_common.h"

#if CBLOCK_AVAILABLE
#include <immintrin.h>

#define TC_R 5         /* taps per register block */
#define TC_V 5         /* most vectors of pixels per register block */
#define TC_L1 (40 << 10) /* bytes of pixels and columns a task keeps */

/* col rows [0, TC_R) x V vectors = wt (cin_g x TC_R) ^T @ xb (cin_g x ld).
 * The empty asm keeps the broadcast weights in registers (see conv_fwd_rows.c). */
#define DEFINE_TILE(V)                                                                            \
    static void tile_##V(const float *restrict wt, const float *restrict xb, int64_t ld,          \
                         int64_t K, float *restrict col, int64_t ldc)                             \
    {                                                                                             \
        __m512 acc[TC_R][V];                                                                      \
        _Pragma("GCC unroll 8") for (int r = 0; r < TC_R; r++)                                   \
            _Pragma("GCC unroll 8") for (int v = 0; v < V; v++) acc[r][v] =                      \
                _mm512_setzero_ps();                                                              \
        for (int64_t k = 0; k < K; k++, wt += TC_R, xb += ld) {                                   \
            __m512 wv[TC_R];                                                                      \
            _Pragma("GCC unroll 8") for (int r = 0; r < TC_R; r++)                               \
            {                                                                                     \
                wv[r] = _mm512_set1_ps(wt[r]);                                                    \
                __asm__("" : "+v"(wv[r]));                                                        \
            }                                                                                     \
            _Pragma("GCC unroll 8") for (int v = 0; v < V; v++)                                  \
            {                                                                                     \
                const __m512 xv = _mm512_loadu_ps(xb + 16 * v);                                   \
                _Pragma("GCC unroll 8") for (int r = 0; r < TC_R; r++) acc[r][v] =               \
                    _mm512_fmadd_ps(wv[r], xv, acc[r][v]);                                        \
            }                                                                                     \
        }                                                                                         \
        _Pragma("GCC unroll 8") for (int r = 0; r < TC_R; r++)                                   \
            _Pragma("GCC unroll 8") for (int v = 0; v < V; v++)                                  \
                _mm512_storeu_ps(col + r * ldc + 16 * v, acc[r][v]);                              \
    }

DEFINE_TILE(1)
DEFINE_TILE(2)
DEFINE_TILE(3)
DEFINE_TILE(4)
DEFINE_TILE(5)

typedef void (*tile_fn)(const float *, const float *, int64_t, int64_t, float *, int64_t);
static const tile_fn tile_fns[TC_V + 1] = {NULL, tile_1, tile_2, tile_3, tile_4, tile_5};

typedef struct {
    const conv_geom *g;
    const float *x, *bias; /* bias: (O), zeros without one */
    const float *wt;       /* (G, og, ntb, cin_g, TC_R): taps padded to ntb * TC_R */
    float *y;
    int64_t nb, nchunks, parts, cpp; /* samples per chunk, chunks, parts of og, channels per part */
    int64_t ntb, ld;       /* tap blocks; pixels per column row, a multiple of 16 */
    int64_t margin, col_len; /* floats before the first column row; in the buffer */
    atomic_int *failed;
} tc_job;

static int64_t round16(int64_t n)
{
    return (n + 15) / 16 * 16;
}

static int64_t imin(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t imax(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Lanes [lo, hi) of 16 set (empty when hi <= lo). */
static __mmask16 lane_mask(int64_t lo, int64_t hi)
{
    lo = imax(lo, 0);
    hi = imin(hi, 16);
    if (hi <= lo)
        return 0;
    return (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

/* y[c] (OH x OW) of sample i of the chunk = the sum of the shifted column
 * rows (col: KK rows of ld pixels, row kh*KW + kw) + bias. The lane masks
 * depend only on kw and the segment. KWC > 0: the kernel width as a
 * constant, so the kw loop unrolls with its masks in mask registers and one
 * accumulator per kw (short chains of dependent adds); 0: any width. */
#define DEFINE_COL2IM(KWC)                                                                        \
    static void col2im_##KWC(const tc_job *j, const float *col, int64_t i, float bias, float *y)  \
    {                                                                                             \
        const conv_geom *g = j->g;                                                                \
        const int64_t H = g->H, W = g->W, KH = g->KH, KW = KWC ? KWC : g->KW, OW = g->OW;         \
        const int64_t ld = j->ld, step = ld - 1;                                                  \
        const float *cb = col + i * H * W + g->pl;                                                \
        __mmask16 mk[16];                                                                         \
        for (int64_t s = 0; s < OW; s += 16) {                                                    \
            /* lane l: output column s + l, input column s + l + pl - kw */                       \
            for (int64_t kw = 0; kw < KW; kw++) {                                                 \
                const int64_t off = s + g->pl - kw;                                               \
                mk[kw] = lane_mask(-off, imin(W - off, OW - s));                                  \
            }                                                                                     \
            const __mmask16 sm = lane_mask(0, OW - s);                                            \
            for (int64_t oh = 0; oh < g->OH; oh++) {                                              \
                /* kernel rows with input row ih = oh + pt - kh in [0, H) */                      \
                const int64_t kh0 = imax(0, oh + g->pt - H + 1), kh1 = imin(KH, oh + g->pt + 1);  \
                __m512 a[KWC ? KWC : 2];                                                          \
                _Pragma("GCC unroll 8") for (int u = 0; u < (KWC ? KWC : 2); u++) a[u] =         \
                    _mm512_setzero_ps();                                                          \
                /* tap (kh, 0) at input row ih; kw adds ld - 1 */                                 \
                const float *q = cb + kh0 * KW * ld + (oh + g->pt - kh0) * W + s;                 \
                for (int64_t kh = kh0; kh < kh1; kh++, q += KW * ld - W) {                        \
                    if (KWC) {                                                                    \
                        _Pragma("GCC unroll 8") for (int kw = 0; kw < KWC; kw++) a[kw] =         \
                            _mm512_add_ps(a[kw], _mm512_maskz_loadu_ps(mk[kw], q + kw * step));   \
                    } else {                                                                      \
                        for (int64_t kw = 0; kw < KW; kw++)                                       \
                            a[kw & 1] = _mm512_add_ps(                                            \
                                a[kw & 1], _mm512_maskz_loadu_ps(mk[kw], q + kw * step));         \
                    }                                                                             \
                }                                                                                 \
                __m512 sum = _mm512_set1_ps(bias);                                                \
                _Pragma("GCC unroll 8") for (int u = 0; u < (KWC ? KWC : 2); u++) sum =          \
                    _mm512_add_ps(sum, a[u]);                                                     \
                _mm512_mask_storeu_ps(y + oh * OW + s, sm, sum);                                  \
            }                                                                                     \
        }                                                                                         \
    }

DEFINE_COL2IM(0)
DEFINE_COL2IM(3)
DEFINE_COL2IM(5)

/* task t = (chunk of samples, group, part of the group's output channels) */
static void tc_task(void *ctx, int64_t begin, int64_t end)
{
    const tc_job *j = ctx;
    const conv_geom *g = j->g;
    const int64_t G = g->G, cin_g = g->C / G, og = g->O / G, HW = g->H * g->W;
    const int64_t ld = j->ld, P = g->OH * g->OW;
    const size_t xb_bytes = (size_t)(cin_g * ld) * sizeof(float);
    const size_t col_bytes = (size_t)j->col_len * sizeof(float);
    float *xb = fern_alloc(FERN_CPU, xb_bytes), *cbuf = fern_alloc(FERN_CPU, col_bytes);
    if (!xb || !cbuf) {
        atomic_store(j->failed, 1);
        fern_free(FERN_CPU, xb, xb_bytes);
        fern_free(FERN_CPU, cbuf, col_bytes);
        return;
    }
    /* the first column row starts past a margin: the masked loads' base
     * addresses may point up to KW - 1 before a row or OW + pl past it */
    float *col = cbuf + j->margin;
    for (int64_t t = begin; t < end; t++) {
        const int64_t part = t % j->parts, grp = t / j->parts % G, chunk = t / (j->parts * G);
        const int64_t n0 = chunk * j->nb, nb = imin(j->nb, g->N - n0);
        /* xb (cin_g x ld): the chunk's pixels side by side, zero past them */
        for (int64_t o = 0; o < cin_g; o++) {
            float *d = xb + o * ld;
            for (int64_t i = 0; i < nb; i++)
                memcpy(d + i * HW, j->x + ((n0 + i) * g->C + grp * cin_g + o) * HW,
                       (size_t)HW * sizeof(float));
            memset(d + nb * HW, 0, (size_t)(ld - nb * HW) * sizeof(float));
        }
        const int64_t nv = (nb * HW + 15) / 16;
        const int64_t c0 = part * j->cpp, c1 = imin(og, c0 + j->cpp);
        for (int64_t c = c0; c < c1; c++) {
            const float *wc = j->wt + (grp * og + c) * j->ntb * cin_g * TC_R;
            for (int64_t tb = 0; tb < j->ntb; tb++)
                for (int64_t v = 0, nvb; v < nv; v += nvb) {
                    /* the blocks as even as they come */
                    const int64_t left = (nv - v + TC_V - 1) / TC_V;
                    nvb = (nv - v + left - 1) / left;
                    tile_fns[nvb](wc + tb * cin_g * TC_R, xb + 16 * v, ld, cin_g,
                                  col + tb * TC_R * ld + 16 * v, ld);
                }
            for (int64_t i = 0; i < nb; i++) {
                const float b = j->bias[grp * og + c];
                float *yp = j->y + ((n0 + i) * g->O + grp * og + c) * P;
                if (g->KW == 5)
                    col2im_5(j, col, i, b, yp);
                else if (g->KW == 3)
                    col2im_3(j, col, i, b, yp);
                else
                    col2im_0(j, col, i, b, yp);
            }
        }
    }
    fern_free(FERN_CPU, xb, xb_bytes);
    fern_free(FERN_CPU, cbuf, col_bytes);
}

/* Samples per task: the most whose pixels and columns stay within TC_L1,
 * at the fewest empty lanes per pixel. */
static int64_t tc_chunk(const conv_geom *g, int64_t ntb)
{
    const int64_t HW = g->H * g->W, per_px = (g->C / g->G + ntb * TC_R) * 4;
    int64_t best = 1;
    double best_waste = 2.0;
    for (int64_t nb = 1; nb <= g->N && nb <= 64; nb++) {
        if (nb > 1 && round16(nb * HW) * per_px > TC_L1)
            break;
        const double waste = (double)(round16(nb * HW) - nb * HW) / (double)(nb * HW);
        if (waste < best_waste - 0.01) {
            best_waste = waste;
            best = nb;
        }
    }
    return best;
}

int fern__convt_cols_suits(const conv_geom *g, fern_dtype dt)
{
    const int64_t cin_g = g->C / g->G, og = g->O / g->G, KK = g->KH * g->KW;
    if (dt != FERN_F32 || g->sh != 1 || g->sw != 1 || g->dh != 1 || g->dw != 1 || og < 1 ||
        og > 8 || cin_g < 1 || g->KW > 16 || g->pt > 64 || g->pl > 64)
        return 0;
    /* one sample's pixels and columns within L2 */
    const int64_t HW = g->H * g->W, ntb = (KK + TC_R - 1) / TC_R;
    if ((ntb * TC_R + cin_g) * round16(HW) * 4 > (256 << 10))
        return 0;
    /* vector operations per output channel: the gemm (multiply-adds, column
     * stores) and the sums, against a direct conv's multiply-adds on the
     * padded input (one vector per 16 output columns per tap); the margin
     * covers the sums' loads costing more than a multiply-add */
    const double nseg = (double)((g->OW + 15) / 16);
    const double cols = (double)(ntb * TC_R) * (double)HW / 16.0 * (double)(cin_g + 1) +
                        (double)g->OH * nseg * (double)KK;
    const double direct = (double)g->OH * nseg * (double)KK * (double)cin_g;
    return cols * 1.25 < direct;
}

int fern__convt_cols(const conv_geom *g, const float *x, const float *w, const float *bias,
                     float *y)
{
    const int64_t G = g->G, cin_g = g->C / G, og = g->O / G, KK = g->KH * g->KW;
    const int64_t ntb = (KK + TC_R - 1) / TC_R, HW = g->H * g->W;
    tc_job j = {.g = g, .x = x, .y = y, .ntb = ntb};
    j.nb = tc_chunk(g, ntb);
    j.nchunks = (g->N + j.nb - 1) / j.nb;
    j.ld = round16(j.nb * HW);
    j.margin = 16 + g->pl;
    j.col_len = j.margin + ntb * TC_R * j.ld + g->OW + g->pl + 16;
    /* split the output channels when there are too few (chunk, group) tasks */
    const int nt = fern_num_threads();
    const int64_t tasks = j.nchunks * G;
    j.parts = tasks >= 2 * nt ? 1 : imin(og, (2 * nt + tasks - 1) / tasks);
    j.cpp = (og + j.parts - 1) / j.parts;
    j.parts = (og + j.cpp - 1) / j.cpp;

    const size_t wt_bytes = (size_t)(G * og * ntb * cin_g * TC_R) * sizeof(float);
    const size_t b_bytes = (size_t)g->O * sizeof(float);
    float *wt = fern_alloc(FERN_CPU, wt_bytes), *bz = fern_alloc(FERN_CPU, b_bytes);
    atomic_int failed = 0;
    j.failed = &failed;
    int rc = -1;
    if (wt && bz) {
        /* w[grp*cin_g + o][c][tap] -> wt[grp][c][tap / R][o][tap % R] */
        for (int64_t grp = 0; grp < G; grp++)
            for (int64_t c = 0; c < og; c++)
                for (int64_t tb = 0; tb < ntb; tb++)
                    for (int64_t o = 0; o < cin_g; o++)
                        for (int64_t r = 0; r < TC_R; r++) {
                            const int64_t tap = tb * TC_R + r;
                            wt[(((grp * og + c) * ntb + tb) * cin_g + o) * TC_R + r] =
                                tap < KK ? w[((grp * cin_g + o) * og + c) * KK + tap] : 0.0f;
                        }
        for (int64_t o = 0; o < g->O; o++)
            bz[o] = bias ? bias[o] : 0.0f;
        j.wt = wt;
        j.bias = bz;
        fern_parallel_for(j.nchunks * G * j.parts, 1, tc_task, &j);
        rc = atomic_load(&failed) ? fern__conv_worker_oom(g) : 0;
    }
    fern_free(FERN_CPU, wt, wt_bytes);
    fern_free(FERN_CPU, bz, b_bytes);
    return rc;
}
#endif
