/* conv2d_weight_grad for small planes and 9-16 output channels per group
 * (f32, AVX-512 builds, unit stride and dilation along W): LeNet's second
 * layer (6 -> 16 channels on 14x14).
 *
 * Like the channel-vectorized kernel (conv_wgrad_direct.c) the 16 lanes hold
 * output channels: for each position q, one vector of gy^T (gT[q][o]) times
 * broadcast input values, into accumulators for rows r = (ci, kh, kw). But
 * the work is cut by sample, not by position range: each thread takes a
 * contiguous share of the samples and, per sample, transposes gy in
 * registers into an L1 buffer, pads the input into another (only when the
 * conv reads past x), then runs every row block over them; no separate
 * passes over memory, no position offsets table, and one small partial
 * gw^T per thread. A block is NP (ci, kh) row pointers x KW taps along W,
 * up to 25 accumulators: the tap kw is a constant displacement from its row
 * pointer, so the inner loop is gy loads and broadcast FMAs with no address
 * arithmetic (the direct kernel holds 8 rows of arbitrary offsets, too few
 * accumulators to keep both FMA pipes busy). Taps that only see padding
 * read zeros and come out zero, so all KH * KW taps are computed. */
#include "conv_common.h"

#if CBLOCK_AVAILABLE
#include <immintrin.h>

#define WS_MAX_NP 8

/* GCC's predictive commoning would carry x values between positions (the
 * tap kw at ow+1 is the tap kw+1 at ow) through spilled scalars, where a
 * broadcast straight from L1 is free. */
#if defined(__clang__)
#define WS_NO_PCOM
#else
#define WS_NO_PCOM __attribute__((optimize("no-predictive-commoning")))
#endif

/* part[(p * KW + kw) * 16 + o] += the sum over the sample's positions
 * (oh, ow) of gT[oh * OW + ow][o] * rows[p][oh * rstep + ow + kw] (summed
 * from zero per sample, so rounding grows with the positions of one sample
 * and the samples of a thread, not their product). Columns go in pairs:
 * each broadcast x value serves tap kw of column ow and tap kw - 1 of
 * column ow + 1, so NP * (KW + 1) broadcasts feed 2 * NP * KW FMAs and the
 * FMAs, not the loads, set the pace. */
#define DEFINE_WS(NP, KW)                                                                         \
    WS_NO_PCOM static void ws_##NP##x##KW(const float *const *rows, int64_t rstep, int64_t OH, int64_t OW,  \
                               const float *restrict gT, float *restrict part)                    \
    {                                                                                             \
        __m512 acc[NP][KW];                                                                       \
        const float *rp[NP];                                                                      \
        _Pragma("GCC unroll 8") for (int p = 0; p < NP; p++)                                     \
        {                                                                                         \
            rp[p] = rows[p];                                                                      \
            _Pragma("GCC unroll 8") for (int k = 0; k < KW; k++) acc[p][k] =                     \
                _mm512_setzero_ps();                                                              \
        }                                                                                         \
        for (int64_t oh = 0; oh < OH; oh++) {                                                     \
            int64_t ow = 0;                                                                       \
            for (; ow + 2 <= OW; ow += 2, gT += 32) {                                             \
                const __m512 g0 = _mm512_loadu_ps(gT), g1 = _mm512_loadu_ps(gT + 16);             \
                _Pragma("GCC unroll 8") for (int p = 0; p < NP; p++)                             \
                    _Pragma("GCC unroll 8") for (int k = 0; k <= KW; k++)                        \
                {                                                                                 \
                    __m512 xv = _mm512_set1_ps(rp[p][ow + k]);                                    \
                    __asm__("" : "+v"(xv));                                                       \
                    if (k < KW)                                                                   \
                        acc[p][k] = _mm512_fmadd_ps(g0, xv, acc[p][k]);                           \
                    if (k > 0)                                                                    \
                        acc[p][k - 1] = _mm512_fmadd_ps(g1, xv, acc[p][k - 1]);                   \
                }                                                                                 \
            }                                                                                     \
            for (; ow < OW; ow++, gT += 16) {                                                     \
                const __m512 gv = _mm512_loadu_ps(gT);                                            \
                _Pragma("GCC unroll 8") for (int p = 0; p < NP; p++)                             \
                    _Pragma("GCC unroll 8") for (int k = 0; k < KW; k++) acc[p][k] =             \
                        _mm512_fmadd_ps(gv, _mm512_set1_ps(rp[p][ow + k]), acc[p][k]);            \
            }                                                                                     \
            _Pragma("GCC unroll 8") for (int p = 0; p < NP; p++) rp[p] += rstep;                 \
        }                                                                                         \
        _Pragma("GCC unroll 8") for (int p = 0; p < NP; p++)                                     \
            _Pragma("GCC unroll 8") for (int k = 0; k < KW; k++)                                 \
        {                                                                                         \
            float *d = part + (p * KW + k) * 16;                                                  \
            _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), acc[p][k]));                    \
        }                                                                                         \
    }

DEFINE_WS(1, 3)
DEFINE_WS(2, 3)
DEFINE_WS(3, 3)
DEFINE_WS(4, 3)
DEFINE_WS(5, 3)
DEFINE_WS(6, 3)
DEFINE_WS(7, 3)
DEFINE_WS(8, 3)
DEFINE_WS(1, 5)
DEFINE_WS(2, 5)
DEFINE_WS(3, 5)
DEFINE_WS(4, 5)
DEFINE_WS(5, 5)

typedef void (*ws_fn)(const float *const *, int64_t, int64_t, int64_t, const float *, float *);

/* [KW == 5][NP]; the most row pointers per block for each KW */
static const ws_fn ws_fns[2][WS_MAX_NP + 1] = {
    {NULL, ws_1x3, ws_2x3, ws_3x3, ws_4x3, ws_5x3, ws_6x3, ws_7x3, ws_8x3},
    {NULL, ws_1x5, ws_2x5, ws_3x5, ws_4x5, ws_5x5, NULL, NULL, NULL}};
static const int ws_max_np[2] = {8, 5};

/* The 16 x 16 block r[o][p] -> r[p][o], in registers. */
static inline void ws_transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 8; i++) { /* pairs of rows interleaved by element */
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* quads of rows: r[4i + e] holds element 4L + e of each */
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int e = 0; e < 4; e++) { /* 128-bit lane L of the four quads -> row 4L + e */
        const __m512 u = _mm512_shuffle_f32x4(r[e], r[4 + e], 0x88);
        const __m512 w = _mm512_shuffle_f32x4(r[e], r[4 + e], 0xdd);
        const __m512 u2 = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0x88);
        const __m512 w2 = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0xdd);
        t[e] = _mm512_shuffle_f32x4(u, u2, 0x88);
        t[8 + e] = _mm512_shuffle_f32x4(u, u2, 0xdd);
        t[4 + e] = _mm512_shuffle_f32x4(w, w2, 0x88);
        t[12 + e] = _mm512_shuffle_f32x4(w, w2, 0xdd);
    }
    for (int i = 0; i < 16; i++)
        r[i] = t[i];
}

/* gy (og x P, og <= 16) -> gT (P x 16), zeros for o >= og */
static void ws_transpose_gy(const float *restrict gy, int64_t og, int64_t P, float *restrict gT)
{
    for (int64_t p0 = 0; p0 < P; p0 += 16) {
        const int64_t np = P - p0 < 16 ? P - p0 : 16;
        const __mmask16 m = (__mmask16)(np == 16 ? 0xFFFF : (1u << np) - 1);
        __m512 r[16];
        for (int64_t o = 0; o < 16; o++)
            r[o] = o < og ? _mm512_maskz_loadu_ps(m, gy + o * P + p0) : _mm512_setzero_ps();
        ws_transpose16(r);
        for (int64_t i = 0; i < np; i++)
            _mm512_storeu_ps(gT + (p0 + i) * 16, r[i]);
    }
}

typedef struct {
    const conv_geom *g;
    const float *x, *gy;
    int64_t Hp, Wp, R, nslots, kw5;
    int copy;            /* pad each sample's input (the conv reads past x) */
    float *part;         /* (nslots, G, R, 16): gw^T partial sums */
    atomic_int *failed;
} ws_job;

/* slot t: samples [t*N/nslots, (t+1)*N/nslots) into its partial sums */
static void ws_slot_task(void *ctx, int64_t begin, int64_t end)
{
    const ws_job *j = ctx;
    const conv_geom *g = j->g;
    const int64_t G = g->G, cin_g = g->C / G, og = g->O / G, P = g->OH * g->OW;
    const int64_t plane = j->Hp * j->Wp, HW = g->H * g->W, KW = g->KW;
    const int64_t pairs = cin_g * g->KH, npmax = ws_max_np[j->kw5];
    const int64_t nblk = (pairs + npmax - 1) / npmax;
    const size_t xs_bytes = j->copy ? (size_t)(cin_g * plane) * sizeof(float) : 0;
    const size_t gT_bytes = (size_t)(P * 16) * sizeof(float);
    float *xs = xs_bytes ? fern_alloc(FERN_CPU, xs_bytes) : NULL;
    float *gT = fern_alloc(FERN_CPU, gT_bytes);
    if ((xs_bytes && !xs) || !gT) {
        atomic_store(j->failed, 1);
        fern_free(FERN_CPU, xs, xs_bytes);
        fern_free(FERN_CPU, gT, gT_bytes);
        return;
    }
    if (xs) /* the padding stays zero: each sample rewrites only the interior */
        memset(xs, 0, xs_bytes);
    for (int64_t t = begin; t < end; t++) {
        const int64_t s0 = t * g->N / j->nslots, s1 = (t + 1) * g->N / j->nslots;
        for (int64_t n = s0; n < s1; n++)
            for (int64_t grp = 0; grp < G; grp++) {
                const float *xg = j->x + (n * g->C + grp * cin_g) * HW;
                if (xs) {
                    for (int64_t ci = 0; ci < cin_g; ci++)
                        for (int64_t ih = 0; ih < g->H; ih++)
                            memcpy(xs + ci * plane + (g->pt + ih) * j->Wp + g->pl,
                                   xg + ci * HW + ih * g->W, (size_t)g->W * sizeof(float));
                    xg = xs;
                }
                ws_transpose_gy(j->gy + (n * g->O + grp * og) * P, og, P, gT);
                float *part = j->part + (t * G + grp) * j->R * 16;
                /* blocks of (ci, kh) pairs, as even as the largest allows */
                for (int64_t b = 0; b < nblk; b++) {
                    const int64_t p0 = b * pairs / nblk, p1 = (b + 1) * pairs / nblk;
                    const float *rows[WS_MAX_NP];
                    for (int64_t p = p0; p < p1; p++)
                        rows[p - p0] = xg + p / g->KH * plane + p % g->KH * g->dh * j->Wp;
                    ws_fns[j->kw5][p1 - p0](rows, g->sh * j->Wp, g->OH, g->OW, gT,
                                            part + p0 * KW * 16);
                }
            }
    }
    fern_free(FERN_CPU, xs, xs_bytes);
    fern_free(FERN_CPU, gT, gT_bytes);
}

#define WS_SAMPLE_BYTES ((size_t)64 << 10) /* one sample's input and gT: about L1 */
#define WS_PART_BYTES ((size_t)16 << 20)   /* partial sums, all slots */

int fern__conv_wgrad_sample_suits(const conv_geom *g, fern_dtype dt)
{
    const int64_t og = g->O / g->G, cin_g = g->C / g->G;
    if (dt != FERN_F32 || g->sw != 1 || g->dw != 1 || (g->KW != 3 && g->KW != 5) || og < 9 ||
        og > 16 || g->OW < 1 || g->OH < 1)
        return 0;
    /* each thread needs samples of its own */
    const int nt = fern_num_threads();
    if (g->N < nt)
        return 0;
    int64_t Hp = g->H + g->pt, Wp = g->W + g->pl;
    if (Hp < (g->OH - 1) * g->sh + (g->KH - 1) * g->dh + 1)
        Hp = (g->OH - 1) * g->sh + (g->KH - 1) * g->dh + 1;
    if (Wp < g->OW + g->KW - 1)
        Wp = g->OW + g->KW - 1;
    const size_t sample = (size_t)(cin_g * Hp * Wp + g->OH * g->OW * 16) * sizeof(float);
    const size_t part = (size_t)(nt * g->C * g->KH * g->KW * 16) * sizeof(float);
    return sample <= WS_SAMPLE_BYTES && part <= WS_PART_BYTES;
}

int fern__conv_wgrad_sample(const conv_geom *g, const float *x, const float *gy, float *gw)
{
    const int64_t G = g->G, og = g->O / G, cin_g = g->C / G;
    ws_job j = {.g = g, .x = x, .gy = gy, .R = cin_g * g->KH * g->KW, .kw5 = g->KW == 5};
    /* padded size: the input at (pt, pl), and every read of gy's positions */
    j.Hp = g->H + g->pt, j.Wp = g->W + g->pl;
    if (j.Hp < (g->OH - 1) * g->sh + (g->KH - 1) * g->dh + 1)
        j.Hp = (g->OH - 1) * g->sh + (g->KH - 1) * g->dh + 1;
    if (j.Wp < g->OW + g->KW - 1)
        j.Wp = g->OW + g->KW - 1;
    j.copy = j.Hp != g->H || j.Wp != g->W || g->pt || g->pl;
    const int nt = fern_num_threads();
    j.nslots = nt < g->N ? nt : g->N;
    const size_t part_bytes = (size_t)(j.nslots * G * j.R * 16) * sizeof(float);
    j.part = fern_alloc(FERN_CPU, part_bytes);
    atomic_int failed = 0;
    j.failed = &failed;
    if (!j.part)
        return -1;
    memset(j.part, 0, part_bytes);
    fern_parallel_for(j.nslots, 1, ws_slot_task, &j);
    int rc = 0;
    if (atomic_load(&failed)) {
        rc = fern__conv_worker_oom(g);
    } else {
        /* gw[grp*og + o][r] = the sum over slots of part[slot][grp][r][o] */
        for (int64_t grp = 0; grp < G; grp++)
            for (int64_t r = 0; r < j.R; r++) {
                __m512 s = _mm512_loadu_ps(j.part + (grp * j.R + r) * 16);
                for (int64_t t = 1; t < j.nslots; t++)
                    s = _mm512_add_ps(s, _mm512_loadu_ps(j.part + ((t * G + grp) * j.R + r) * 16));
                float v[16];
                _mm512_storeu_ps(v, s);
                for (int64_t o = 0; o < og; o++)
                    gw[(grp * og + o) * j.R + r] = v[o];
            }
    }
    fern_free(FERN_CPU, j.part, part_bytes);
    return rc;
}
#endif
