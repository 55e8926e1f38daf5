/* conv2d_weight_grad for few output channels per group (f32, AVX-512
 * builds): LeNet's first layer (1 -> 6 channels), depthwise convs.
 *
 * The channel-vectorized kernel (conv_wgrad_direct.c) puts output channels
 * in the vector lanes; with 6 channels, or 1, most lanes idle. Here the
 * lanes run along output columns instead: for an input channel ci and tap
 * (kh, kw), gw[o][ci][kh][kw] is the dot product of gy's plane o with the
 * padded input plane ci shifted by the tap. A register block holds TB rows
 * (ci, tap) x OB = og output channels: for each vector of 16 output columns
 * it loads og vectors of gy and TB shifted vectors of x, and does og * TB
 * fused multiply-adds (24 for LeNet, against 10 loads). The last vector of
 * a row is loaded with a mask (zeros past the row's end), so nothing
 * outside the real positions enters a sum. gy is read in place (the first
 * block of a sample streams it in under its FMAs; a separate pass to re-lay
 * it would stall on those loads with nothing to overlap), and each sample's
 * input is copied into a padded buffer whose border is zeroed once per
 * thread; both stay in L1 while every block runs over them. The blocks add
 * their vector sums into the thread's partial sums, reduced (threads and
 * lanes) at the end. */
#include "conv_common.h"

#if CBLOCK_AVAILABLE
#include <immintrin.h>

#define WR_MAX_OG 8

/* Rows per block for og output channels: og * TB accumulators, og gy
 * vectors and one x vector within the 32 vector registers. */
static int wr_tb(int64_t og)
{
    static const int tb[WR_MAX_OG + 1] = {0, 12, 8, 7, 6, 4, 4, 3, 2};
    return tb[og];
}

/* One segment of 16 output columns (lanes past the row's end masked off in
 * both operands): the og gy vectors, then TB x vectors times each. The
 * empty asm keeps each gy vector in a register for its TB uses (GCC would
 * otherwise fold it into every FMA as a memory operand, and the loads, not
 * the FMAs, would set the pace). */
#define WROW_SEG(OB, TB, M, OFF)                                                                  \
    do {                                                                                          \
        __m512 gv[OB];                                                                            \
        _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++)                                    \
        {                                                                                         \
            gv[o] = _mm512_maskz_loadu_ps(M, gp[o] + (OFF));                                      \
            __asm__("" : "+v"(gv[o]));                                                            \
        }                                                                                         \
        _Pragma("GCC unroll 16") for (int t = 0; t < TB; t++)                                    \
        {                                                                                         \
            const __m512 xv = _mm512_maskz_loadu_ps(M, xp[t] + (OFF));                            \
            _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++) acc[t][o] =                    \
                _mm512_fmadd_ps(xv, gv[o], acc[t][o]);                                            \
        }                                                                                         \
    } while (0)

/* part[(t * OB + o) * 16 + lane] += the sums of rows toff[0, TB) against
 * gy's OB channels (planes P apart from gy) over one sample's positions;
 * nfull whole segments per row, then a last one of the lanes in `tail` (if
 * any). gy is read in place: the first block streams it in while it
 * computes, the others find it in L1. */
#define DEFINE_WROW(OB, TB)                                                                       \
    static void wrow_##OB##x##TB(const float *restrict xs, const int64_t *restrict toff,        \
                                 int64_t xstep, const float *restrict gy, int64_t P, int64_t OW, \
                                 int64_t OH, int64_t nfull, __mmask16 tail, float *restrict part) \
    {                                                                                             \
        __m512 acc[TB][OB];                                                                       \
        const float *xp[TB], *gp[OB];                                                             \
        _Pragma("GCC unroll 16") for (int t = 0; t < TB; t++)                                    \
        {                                                                                         \
            xp[t] = xs + toff[t];                                                                 \
            _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++) acc[t][o] =                    \
                _mm512_setzero_ps();                                                              \
        }                                                                                         \
        _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++) gp[o] = gy + o * P;                \
        for (int64_t oh = 0; oh < OH; oh++) {                                                     \
            for (int64_t seg = 0; seg < nfull; seg++)                                             \
                WROW_SEG(OB, TB, (__mmask16)0xFFFF, seg * 16);                                    \
            if (tail)                                                                             \
                WROW_SEG(OB, TB, tail, nfull * 16);                                               \
            _Pragma("GCC unroll 16") for (int t = 0; t < TB; t++) xp[t] += xstep;                \
            _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++) gp[o] += OW;                   \
        }                                                                                         \
        _Pragma("GCC unroll 16") for (int t = 0; t < TB; t++)                                    \
            _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++)                                \
        {                                                                                         \
            float *p = part + (t * OB + o) * 16;                                                  \
            _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), acc[t][o]));                    \
        }                                                                                         \
    }

/* blocks of wr_tb(og) rows, one fewer, and one (see wr_split) */
#define DEFINE_WROW_SET(OB, TB, TB1) DEFINE_WROW(OB, TB) DEFINE_WROW(OB, TB1) DEFINE_WROW(OB, 1)
DEFINE_WROW_SET(1, 12, 11)
DEFINE_WROW_SET(2, 8, 7)
DEFINE_WROW_SET(3, 7, 6)
DEFINE_WROW_SET(4, 6, 5)
DEFINE_WROW_SET(5, 4, 3)
DEFINE_WROW_SET(6, 4, 3)
DEFINE_WROW_SET(7, 3, 2)
DEFINE_WROW(8, 2)
DEFINE_WROW(8, 1)

typedef void (*wrow_fn)(const float *, const int64_t *, int64_t, const float *, int64_t, int64_t,
                        int64_t, int64_t, __mmask16, float *);

/* [og][0]: the wr_tb(og)-row block, [og][1]: one row fewer, [og][2]: one row */
static const wrow_fn wrow_fns[WR_MAX_OG + 1][3] = {
    {NULL, NULL, NULL},
    {wrow_1x12, wrow_1x11, wrow_1x1},
    {wrow_2x8, wrow_2x7, wrow_2x1},
    {wrow_3x7, wrow_3x6, wrow_3x1},
    {wrow_4x6, wrow_4x5, wrow_4x1},
    {wrow_5x4, wrow_5x3, wrow_5x1},
    {wrow_6x4, wrow_6x3, wrow_6x1},
    {wrow_7x3, wrow_7x2, wrow_7x1},
    {wrow_8x2, wrow_8x1, wrow_8x1}};

/* R rows as nbig blocks of tb rows and nsmall of tb - 1 when that covers
 * them exactly (25 = 4*4 + 3*3), else as many of tb as fit and single rows
 * (which run at a fraction of the speed: too few accumulators to hide the
 * FMA latency, a gy load per FMA). */
static void wr_split(int64_t R, int64_t tb, int64_t *nbig, int64_t *nsmall)
{
    const int64_t b = (tb - R % tb) % tb;
    if (tb > 2 && b * (tb - 1) <= R) {
        *nsmall = b;
        *nbig = (R - b * (tb - 1)) / tb;
    } else {
        *nsmall = 0;
        *nbig = R / tb;
    }
}

typedef struct {
    const conv_geom *g;
    const float *x, *gy;
    const int64_t *toff; /* R row offsets (ci, tap) in a group's padded input */
    int64_t R, Hp, Wp, nslots;
    float *part;         /* (nslots, G, R, og, 16) vector partial sums */
    atomic_int *failed;
} wr_job;

/* dst[0, n) = src[0, n): a few vector moves (rows are short) */
static inline void wr_copy_row(float *restrict dst, const float *restrict src, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_loadu_ps(src + i));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
    }
}

/* slot t: samples [t*N/nslots, (t+1)*N/nslots) into its partial sums */
static void wr_slot_task(void *ctx, int64_t begin, int64_t end)
{
    const wr_job *j = ctx;
    const conv_geom *g = j->g;
    const int64_t G = g->G, cin_g = g->C / G, og = g->O / G, P = g->OH * g->OW;
    const int64_t plane = j->Hp * j->Wp, HW = g->H * g->W, OW = g->OW;
    const int64_t nfull = OW / 16;
    const __mmask16 tail = (__mmask16)((1u << (OW % 16)) - 1);
    const int64_t tb = wr_tb(og);
    int64_t nbig, nsmall;
    wr_split(j->R, tb, &nbig, &nsmall);
    const size_t xs_bytes = (size_t)(cin_g * plane) * sizeof(float);
    float *xs = fern_alloc(FERN_CPU, xs_bytes);
    if (!xs) {
        atomic_store(j->failed, 1);
        return;
    }
    memset(xs, 0, xs_bytes); /* the padding stays zero: samples rewrite the interior */
    for (int64_t t = begin; t < end; t++) {
        const int64_t s0 = t * g->N / j->nslots, s1 = (t + 1) * g->N / j->nslots;
        for (int64_t n = s0; n < s1; n++)
            for (int64_t grp = 0; grp < G; grp++) {
                for (int64_t ci = 0; ci < cin_g; ci++) {
                    const float *src = j->x + (n * g->C + grp * cin_g + ci) * HW;
                    float *dst = xs + ci * plane + g->pt * j->Wp + g->pl;
                    for (int64_t ih = 0; ih < g->H; ih++)
                        wr_copy_row(dst + ih * j->Wp, src + ih * g->W, g->W);
                }
                const float *gyn = j->gy + (n * g->O + grp * og) * P;
                float *part = j->part + ((t * G + grp) * j->R) * og * 16;
                int64_t r = 0;
                for (int64_t b = 0; b < nbig; b++, r += tb)
                    wrow_fns[og][0](xs, j->toff + r, g->sh * j->Wp, gyn, P, OW, g->OH, nfull,
                                    tail, part + r * og * 16);
                for (int64_t b = 0; b < nsmall; b++, r += tb - 1)
                    wrow_fns[og][1](xs, j->toff + r, g->sh * j->Wp, gyn, P, OW, g->OH, nfull,
                                    tail, part + r * og * 16);
                for (; r < j->R; r++)
                    wrow_fns[og][2](xs, j->toff + r, g->sh * j->Wp, gyn, P, OW, g->OH, nfull,
                                    tail, part + r * og * 16);
            }
    }
    fern_free(FERN_CPU, xs, xs_bytes);
}

#define WR_PART_BYTES ((size_t)64 << 20) /* partial sums, all slots */

int fern__conv_wgrad_rows_suits(const conv_geom *g, fern_dtype dt, int64_t nlive)
{
    const int64_t og = g->O / g->G, cin_g = g->C / g->G;
    if (dt != FERN_F32 || g->sw != 1 || og < 1 || og > WR_MAX_OG || g->OW < 1)
        return 0;
    /* lanes used along a row against og of 8 lanes in the channel-vectorized kernel */
    if (g->OW * 8 < og * ((g->OW + 15) / 16 * 16))
        return 0;
    const int nt = fern_num_threads();
    const int64_t slots = nt < g->N ? nt : g->N;
    return (size_t)(slots * g->G * cin_g * nlive * og) * 64 <= WR_PART_BYTES;
}

int fern__conv_wgrad_rows(const conv_geom *g, const float *x, const float *gy, float *gw,
                          const int64_t *taps, int64_t nlive)
{
    const int64_t G = g->G, cin_g = g->C / G, og = g->O / G, KK = g->KH * g->KW;
    wr_job j = {.g = g, .x = x, .gy = gy, .R = cin_g * nlive};
    /* padded size: the input at (pt, pl), and every read of gy's positions */
    j.Hp = g->H + g->pt, j.Wp = g->W + g->pl;
    if (j.Hp < (g->OH - 1) * g->sh + (g->KH - 1) * g->dh + 1)
        j.Hp = (g->OH - 1) * g->sh + (g->KH - 1) * g->dh + 1;
    if (j.Wp < g->OW + (g->KW - 1) * g->dw)
        j.Wp = g->OW + (g->KW - 1) * g->dw;
    const int64_t plane = j.Hp * j.Wp;
    const int nt = fern_num_threads();
    j.nslots = nt < g->N ? nt : g->N;
    const size_t toff_bytes = (size_t)j.R * sizeof(int64_t);
    const size_t part_bytes = (size_t)(j.nslots * G * j.R * og * 16) * sizeof(float);
    int64_t *toff = fern_alloc(FERN_CPU, toff_bytes);
    j.part = fern_alloc(FERN_CPU, part_bytes);
    atomic_int failed = 0;
    j.failed = &failed;
    int rc = -1;
    if (toff && j.part) {
        for (int64_t ci = 0, r = 0; ci < cin_g; ci++)
            for (int64_t k = 0; k < nlive; k++, r++)
                toff[r] = ci * plane + taps[k] / g->KW * g->dh * j.Wp + taps[k] % g->KW * g->dw;
        j.toff = toff;
        memset(j.part, 0, part_bytes);
        fern_parallel_for(j.nslots, 1, wr_slot_task, &j);
        if (atomic_load(&failed)) {
            rc = fern__conv_worker_oom(g);
        } else {
            /* gw[grp*og + o][ci][tap] = the sum over slots and lanes */
            for (int64_t grp = 0; grp < G; grp++)
                for (int64_t r = 0; r < j.R; r++)
                    for (int64_t o = 0; o < og; o++) {
                        __m512 s = _mm512_setzero_ps();
                        for (int64_t t = 0; t < j.nslots; t++) {
                            const float *p = j.part + (((t * G + grp) * j.R + r) * og + o) * 16;
                            s = _mm512_add_ps(s, _mm512_loadu_ps(p));
                        }
                        const int64_t ci = r / nlive, tap = taps[r % nlive];
                        gw[((grp * og + o) * cin_g + ci) * KK + tap] = _mm512_reduce_add_ps(s);
                    }
            rc = 0;
        }
    }
    fern_free(FERN_CPU, toff, toff_bytes);
    fern_free(FERN_CPU, j.part, part_bytes);
    return rc;
}
#endif
