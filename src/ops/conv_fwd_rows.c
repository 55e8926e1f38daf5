/* conv2d forward for few output channels per group (f32, AVX-512 builds,
 * stride 1 along W): LeNet's first layer (1 -> 6 channels) and the input
 * gradient of its second (16 -> 6), depthwise convs.
 *
 * The row-vectorized kernel (conv_direct.c) computes one vector of output
 * columns for a block of 16, 8, 4 or 1 channels, the weights broadcast from
 * memory at every tap: for 6 channels a third of its lanes' work is on
 * padding channels, and it issues a load per fused multiply-add. Here a
 * register block is PB output rows x OB = og channels (4 x 6 for LeNet), one
 * vector of 16 columns each: per tap (ci, kh, kw) it broadcasts og weights
 * into registers, loads PB vectors of the padded input, and does og * PB
 * fused multiply-adds. Kernel rows that read only padding for every row of
 * the block are skipped; the last vector of a row is stored with a mask.
 * A task pads the input rows its output rows read into its own buffer. */
#include "conv_common.h"

#if CBLOCK_AVAILABLE
#include <immintrin.h>

#define FR_MAX_OG 8

/* Output rows per block for og channels: og * PB accumulators, og weights
 * and one input vector within the 32 vector registers. */
static int fr_pb(int64_t og)
{
    static const int pb[FR_MAX_OG + 1] = {0, 12, 8, 7, 6, 4, 4, 3, 2};
    return pb[og];
}

typedef struct {
    const float *xs; /* the block's first padded row, input channel 0 */
    int64_t plane, Wp, sh, dh, dw, cin_g, KH, KW, kh0, kh1;
    const float *wt; /* (cin_g, KH, KW, OB) */
    const float *b;  /* OB biases */
    float *y;        /* output channel 0, the block's first row */
    int64_t P, OW, nseg, nrows;
    __mmask16 tail;
} fr_block;

/* The empty asm keeps each broadcast weight in a register for its PB uses
 * (GCC would otherwise fold it into every FMA as a memory operand, and the
 * loads, not the FMAs, would set the pace). */
#define DEFINE_FROW(OB, PB)                                                                       \
    static void frow_##OB##x##PB(const fr_block *k)                                              \
    {                                                                                             \
        const int64_t Wp = k->Wp, rs = k->sh * Wp;                                                \
        for (int64_t seg = 0; seg < k->nseg; seg++) {                                             \
            __m512 acc[PB][OB];                                                                   \
            _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++)                                \
            {                                                                                     \
                const __m512 bv = _mm512_set1_ps(k->b[o]);                                        \
                _Pragma("GCC unroll 16") for (int p = 0; p < PB; p++) acc[p][o] = bv;            \
            }                                                                                     \
            for (int64_t ci = 0; ci < k->cin_g; ci++)                                             \
                for (int64_t kh = k->kh0; kh < k->kh1; kh++) {                                    \
                    const float *xr = k->xs + ci * k->plane + kh * k->dh * Wp + seg * 16;         \
                    const float *wr = k->wt + ((ci * k->KH + kh) * k->KW) * OB;                   \
                    for (int64_t kw = 0; kw < k->KW; kw++, xr += k->dw, wr += OB) {               \
                        __m512 wv[OB];                                                            \
                        _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++)                    \
                        {                                                                         \
                            wv[o] = _mm512_set1_ps(wr[o]);                                        \
                            __asm__("" : "+v"(wv[o]));                                            \
                        }                                                                         \
                        _Pragma("GCC unroll 16") for (int p = 0; p < PB; p++)                    \
                        {                                                                         \
                            const __m512 xv = _mm512_loadu_ps(xr + p * rs);                       \
                            _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++) acc[p][o] =    \
                                _mm512_fmadd_ps(xv, wv[o], acc[p][o]);                            \
                        }                                                                         \
                    }                                                                             \
                }                                                                                 \
            const __mmask16 m = seg == k->nseg - 1 ? k->tail : (__mmask16)0xFFFF;                 \
            _Pragma("GCC unroll 16") for (int p = 0; p < PB; p++) if (p < k->nrows)              \
                _Pragma("GCC unroll 16") for (int o = 0; o < OB; o++)                            \
                    _mm512_mask_storeu_ps(k->y + o * k->P + p * k->OW + seg * 16, m, acc[p][o]);  \
        }                                                                                         \
    }

DEFINE_FROW(1, 12)
DEFINE_FROW(2, 8)
DEFINE_FROW(3, 7)
DEFINE_FROW(4, 6)
DEFINE_FROW(5, 4)
DEFINE_FROW(6, 4)
DEFINE_FROW(7, 3)
DEFINE_FROW(8, 2)

typedef void (*frow_fn)(const fr_block *);
static const frow_fn frow_fns[FR_MAX_OG + 1] = {NULL,      frow_1x12, frow_2x8, frow_3x7, frow_4x6,
                                                frow_5x4, frow_6x4,  frow_7x3, frow_8x2};

typedef struct {
    const conv_geom *g;
    const float *x;
    float *y;
    const float *wt;     /* (G, cin_g, KH, KW, og) */
    const float *bias;   /* (O), zeros without one */
    int64_t Wp, nseg, pb, parts, rows_per_part, buf_rows;
    atomic_int *failed;
} fr_job;

/* task t = (sample, group, part of the output rows) */
static void fr_task(void *ctx, int64_t begin, int64_t end)
{
    const fr_job *j = ctx;
    const conv_geom *g = j->g;
    const int64_t G = g->G, cin_g = g->C / G, og = g->O / G, P = g->OH * g->OW;
    const int64_t Wp = j->Wp, plane = j->buf_rows * Wp, pb = j->pb;
    const size_t buf_bytes = (size_t)(cin_g * plane) * sizeof(float);
    float *xs = fern_alloc(FERN_CPU, buf_bytes);
    if (!xs) {
        atomic_store(j->failed, 1);
        return;
    }
    const frow_fn fn = frow_fns[og];
    const __mmask16 tail = (__mmask16)(g->OW % 16 ? (1u << (g->OW % 16)) - 1 : 0xFFFF);
    for (int64_t t = begin; t < end; t++) {
        const int64_t part = t % j->parts, grp = t / j->parts % G, n = t / (j->parts * G);
        const int64_t r0 = part * j->rows_per_part;
        const int64_t r1 = r0 + j->rows_per_part < g->OH ? r0 + j->rows_per_part : g->OH;
        if (r0 >= r1)
            continue;
        /* padded rows read by output rows [r0, r1) (rounded up to whole blocks) */
        const int64_t rr = (r1 - r0 + pb - 1) / pb * pb;
        const int64_t nr = (rr - 1) * g->sh + (g->KH - 1) * g->dh + 1;
        for (int64_t ci = 0; ci < cin_g; ci++) {
            const float *src = j->x + (n * g->C + grp * cin_g + ci) * g->H * g->W;
            float *dst = xs + ci * plane;
            for (int64_t lr = 0; lr < nr; lr++) {
                const int64_t ih = r0 * g->sh + lr - g->pt;
                float *d = dst + lr * Wp;
                if (ih < 0 || ih >= g->H) {
                    memset(d, 0, (size_t)Wp * sizeof(float));
                    continue;
                }
                memset(d, 0, (size_t)g->pl * sizeof(float));
                memcpy(d + g->pl, src + ih * g->W, (size_t)g->W * sizeof(float));
                memset(d + g->pl + g->W, 0, (size_t)(Wp - g->pl - g->W) * sizeof(float));
            }
        }
        fr_block k = {.plane = plane, .Wp = Wp, .sh = g->sh, .dh = g->dh, .dw = g->dw,
                      .cin_g = cin_g, .KH = g->KH, .KW = g->KW,
                      .wt = j->wt + grp * cin_g * g->KH * g->KW * og, .b = j->bias + grp * og,
                      .P = P, .OW = g->OW, .nseg = j->nseg, .tail = tail};
        for (int64_t oh = r0; oh < r1; oh += pb) {
            k.nrows = r1 - oh < pb ? r1 - oh : pb;
            /* kernel rows that read the input for at least one row of the block */
            int64_t lo0, hi0, lo1, hi1;
            valid_range(g->KH, g->dh, oh * g->sh - g->pt, g->H, &lo0, &hi0);
            valid_range(g->KH, g->dh, (oh + k.nrows - 1) * g->sh - g->pt, g->H, &lo1, &hi1);
            k.kh0 = lo1 < lo0 ? lo1 : lo0;
            k.kh1 = hi0 > hi1 ? hi0 : hi1;
            if (k.kh0 >= k.kh1) { /* every tap reads padding: the bias */
                k.kh0 = k.kh1 = 0;
            }
            k.xs = xs + (oh - r0) * g->sh * Wp;
            k.y = j->y + ((n * g->O + grp * og) * g->OH + oh) * g->OW;
            fn(&k);
        }
    }
    fern_free(FERN_CPU, xs, buf_bytes);
}

int fern__conv_fwd_rows_suits(const conv_geom *g, fern_dtype dt)
{
    const int64_t og = g->O / g->G;
    if (dt != FERN_F32 || g->sw != 1 || og < 1 || og > FR_MAX_OG || g->OW < 1 || g->OH < 1)
        return 0;
    /* lanes used along a row: at least half; rows used in the blocks: 60%
     * (not conv1d's single row) */
    const int64_t pb = fr_pb(og);
    return g->OW * 2 >= (g->OW + 15) / 16 * 16 && g->OH * 5 >= (g->OH + pb - 1) / pb * pb * 3;
}

int fern__conv_fwd_rows(const conv_geom *g, const float *x, const conv_wview *w,
                        const float *bias, float *y)
{
    const int64_t G = g->G, cin_g = g->C / G, og = g->O / G, KK = g->KH * g->KW;
    fr_job j = {.g = g, .x = x, .y = y, .pb = fr_pb(og)};
    j.nseg = (g->OW + 15) / 16;
    j.Wp = g->W + g->pl + g->pr;
    if (j.Wp < j.nseg * 16 + (g->KW - 1) * g->dw) /* every vector read stays in the row */
        j.Wp = j.nseg * 16 + (g->KW - 1) * g->dw;
    /* split the rows when there are too few (sample, group) tasks */
    const int nt = fern_num_threads();
    const int64_t nblk = (g->OH + j.pb - 1) / j.pb;
    int64_t parts = g->N * G >= 2 * nt ? 1 : (2 * nt + g->N * G - 1) / (g->N * G);
    if (parts > nblk)
        parts = nblk;
    j.rows_per_part = (nblk + parts - 1) / parts * j.pb;
    j.parts = (g->OH + j.rows_per_part - 1) / j.rows_per_part;
    j.buf_rows = (j.rows_per_part - 1) * g->sh + (g->KH - 1) * g->dh + 1;
    const size_t wt_bytes = (size_t)(G * cin_g * KK * og) * sizeof(float);
    const size_t b_bytes = (size_t)g->O * sizeof(float);
    float *wt = fern_alloc(FERN_CPU, wt_bytes), *bz = fern_alloc(FERN_CPU, b_bytes);
    atomic_int failed = 0;
    j.failed = &failed;
    int rc = -1;
    if (wt && bz) {
        /* w[grp*og + o][r] -> wt[grp][r][o] */
        fern__conv_lay_weights(g, FERN_F32, w, NULL, KK, og, wt);
        for (int64_t o = 0; o < g->O; o++)
            bz[o] = bias ? bias[o] : 0.0f;
        j.wt = wt;
        j.bias = bz;
        fern_parallel_for(g->N * G * j.parts, 1, fr_task, &j);
        rc = atomic_load(&failed) ? fern__conv_worker_oom(g) : 0;
    }
    fern_free(FERN_CPU, wt, wt_bytes);
    fern_free(FERN_CPU, bz, b_bytes);
    return rc;
}
#endif
