/* conv1d/conv2d forward: the choice of kernel (fern__conv_forward) and the
 * im2col + gemm path that takes what the direct kernels do not.
 *
 * Kernels, in order of preference:
 *  - channel-vectorized direct kernel (builds targeting AVX-512): vectors
 *    over output channels, register blocks of output positions, for convs
 *    with >= 16 output channels per group and >= 64 taps per output
 *    (ResNet, LeNet's conv2). It beats OpenBLAS's gemm per core by 1.5-2x.
 *  - few-channel kernel (AVX-512 builds, f32): <= 8 output channels per
 *    group, stride 1 along W (LeNet's conv1, its conv2's input gradient,
 *    depthwise); blocks of output rows x all of a group's channels.
 *  - row-vectorized direct kernel: vectors over output columns (stride 1
 *    along W), for thin convs, wide rows, depthwise.
 *  - plane kernel: strided depthwise.
 *  - im2col + gemm otherwise (and for everything the direct kernels do not
 *    take in builds without AVX-512). A 1x1, stride-1, unpadded conv hands
 *    the input to gemm directly; taps that only ever read padding are
 *    dropped. Small per-sample gemms are spread over fern's threads,
 *    samples per thread batched into one gemm; large ones (fern__gemm,
 *    split over fern's threads) run one at a time, several samples' im2col
 *    merged into one wider gemm when a sample's is small, im2col and the
 *    scatter on fern's pool. */
#include "../backend/cpu/gemm.h"
#include "conv_common.h"

#define DEFINE_FWD_HELPERS(T, SFX)                                                               \
    /* One im2col row (channel plane xc, kernel tap (kh, kw)) into dst (OH*OW);                   \
     * [lo, hi) is the range of ow whose input column is inside the image. */                     \
    static void im2col_row_##SFX(const conv_geom *g, const T *restrict xc, int64_t kh,            \
                                 int64_t kw, int64_t lo, int64_t hi, T *restrict dst)             \
    {                                                                                             \
        const int64_t OH = g->OH, OW = g->OW, H = g->H, W = g->W, sw = g->sw;                     \
        const int64_t off = kw * g->dw - g->pl;                                                   \
        for (int64_t oh = 0; oh < OH; oh++) {                                                     \
            T *restrict d = dst + oh * OW;                                                        \
            const int64_t ih = oh * g->sh - g->pt + kh * g->dh;                                   \
            if (ih < 0 || ih >= H) {                                                              \
                zero_run(d, (size_t)OW * sizeof(T));                                              \
                continue;                                                                         \
            }                                                                                     \
            const T *restrict xr = xc + ih * W;                                                   \
            if (lo)                                                                               \
                zero_run(d, (size_t)lo * sizeof(T));                                              \
            if (sw == 1)                                                                          \
                copy_run(d + lo, xr + lo + off, (size_t)(hi - lo) * sizeof(T));                   \
            else                                                                                  \
                for (int64_t ow = lo; ow < hi; ow++)                                              \
                    d[ow] = xr[ow * sw + off];                                                    \
            if (hi < OW)                                                                          \
                zero_run(d + hi, (size_t)(OW - hi) * sizeof(T));                                  \
        }                                                                                         \
    }                                                                                             \
    /* dst[p] = src[p] + b over n elements; src == NULL adds b to dst in place. */                \
    static void add_bias_##SFX(T *restrict dst, const T *restrict src, T b, int64_t n)            \
    {                                                                                             \
        if (!src)                                                                                 \
            for (int64_t p = 0; p < n; p++)                                                       \
                dst[p] += b;                                                                      \
        else                                                                                      \
            for (int64_t p = 0; p < n; p++)                                                       \
                dst[p] = src[p] + b;                                                              \
    }                                                                                             \
    /* Direct conv of one output plane whose group has one input channel xc. */                   \
    static void direct_plane_##SFX(const conv_geom *g, const T *restrict xc,                      \
                                   const T *restrict wk, T b, T *restrict yc)                     \
    {                                                                                             \
        const int64_t OH = g->OH, OW = g->OW, H = g->H, W = g->W, sw = g->sw;                     \
        for (int64_t p = 0; p < OH * OW; p++)                                                     \
            yc[p] = b;                                                                            \
        for (int64_t kh = 0; kh < g->KH; kh++)                                                    \
            for (int64_t kw = 0; kw < g->KW; kw++) {                                              \
                const T wv = wk[kh * g->KW + kw];                                                 \
                const int64_t off = kw * g->dw - g->pl;                                           \
                int64_t lo, hi;                                                                   \
                valid_range(OW, sw, off, W, &lo, &hi);                                            \
                for (int64_t oh = 0; oh < OH; oh++) {                                             \
                    const int64_t ih = oh * g->sh - g->pt + kh * g->dh;                           \
                    if (ih < 0 || ih >= H)                                                        \
                        continue;                                                                 \
                    const T *restrict xr = xc + ih * W;                                           \
                    T *restrict yr = yc + oh * OW;                                                \
                    if (sw == 1)                                                                  \
                        for (int64_t ow = lo; ow < hi; ow++)                                      \
                            yr[ow] += wv * xr[ow + off];                                          \
                    else                                                                          \
                        for (int64_t ow = lo; ow < hi; ow++)                                      \
                            yr[ow] += wv * xr[ow * sw + off];                                     \
                }                                                                                 \
            }                                                                                     \
    }

DEFINE_FWD_HELPERS(float, f32)
DEFINE_FWD_HELPERS(double, f64)

/* C (M x N, ldc) = A (M x K) @ B (K x N) with optional transposes, beta 0 or 1. */
void fern__conv_gemm(fern_dtype dt, int ta, int M, int N, int K, const void *A, int lda,
                     const void *B, int ldb, void *C, int ldc, double beta)
{
    fern__gemm(dt, ta ? 'T' : 'N', 'N', M, N, K, A, lda, B, ldb, beta, C, ldc);
}

/* im2col of rows [r0, r1) of CKK (input channel ci of the group, live tap),
 * each for the nb samples of the chunk. */
void fern__conv_im2col_rows(const fwd_job *j, char *col, int64_t r0, int64_t r1)
{
    const conv_geom *g = j->g;
    const int64_t cin_g = g->C / g->G, P = g->OH * g->OW, HW = g->H * g->W;
    for (int64_t row = r0; row < r1; row++) {
        const int64_t ci = row / j->L, tap = j->taps[row % j->L];
        const int64_t kh = tap / g->KW, kw = tap % g->KW;
        int64_t lo, hi;
        valid_range(g->OW, g->sw, kw * g->dw - g->pl, g->W, &lo, &hi);
        for (int64_t i = 0; i < j->nb; i++) {
            int64_t xoff = ((j->n0 + i) * g->C + j->grp * cin_g + ci) * HW;
            int64_t doff = row * j->ld + i * P;
            if (j->dt == FERN_F32)
                im2col_row_f32(g, (const float *)j->x + xoff, kh, kw, lo, hi, (float *)col + doff);
            else
                im2col_row_f64(g, (const double *)j->x + xoff, kh, kw, lo, hi,
                               (double *)col + doff);
        }
    }
}

void fern__conv_im2col_task(void *ctx, int64_t begin, int64_t end)
{
    const fwd_job *j = ctx;
    fern__conv_im2col_rows(j, j->col, begin, end);
}

/* Output rows [r0, r1) of nb * O_g (sample n0 + r / O_g, channel r % O_g of
 * the group) from tmp (O_g x ld) plus the bias; tmp NULL: add the bias in place. */
static void scatter_rows(const fwd_job *j, const char *tmp, int64_t r0, int64_t r1)
{
    const conv_geom *g = j->g;
    const int64_t og = g->O / g->G, P = g->OH * g->OW;
    for (int64_t t = r0; t < r1; t++) {
        int64_t i = t / og, o = t % og, co = j->grp * og + o;
        int64_t yoff = ((j->n0 + i) * g->O + co) * P;
        int64_t soff = o * j->ld + i * P;
        if (j->dt == FERN_F32)
            add_bias_f32((float *)j->y + yoff, tmp ? (const float *)tmp + soff : NULL,
                         j->bias ? ((const float *)j->bias)[co] : 0.0f, P);
        else
            add_bias_f64((double *)j->y + yoff, tmp ? (const double *)tmp + soff : NULL,
                         j->bias ? ((const double *)j->bias)[co] : 0.0, P);
    }
}

static void scatter_task(void *ctx, int64_t begin, int64_t end)
{
    const fwd_job *j = ctx;
    scatter_rows(j, j->tmp, begin, end);
}

/* direct tasks t in [0, N * O): one output plane each */
static void direct_task(void *ctx, int64_t begin, int64_t end)
{
    const fwd_job *j = ctx;
    const conv_geom *g = j->g;
    const int64_t og = g->O / g->G, P = g->OH * g->OW, KK = g->KH * g->KW, HW = g->H * g->W;
    for (int64_t t = begin; t < end; t++) {
        int64_t n = t / g->O, co = t % g->O, ci = co / og; /* one input channel per group */
        if (j->dt == FERN_F32)
            direct_plane_f32(g, (const float *)j->x + (n * g->C + ci) * HW,
                             (const float *)j->w + co * KK,
                             j->bias ? ((const float *)j->bias)[co] : 0.0f, (float *)j->y + t * P);
        else
            direct_plane_f64(g, (const double *)j->x + (n * g->C + ci) * HW,
                             (const double *)j->w + co * KK,
                             j->bias ? ((const double *)j->bias)[co] : 0.0, (double *)j->y + t * P);
    }
}

static void fill_bias_task(void *ctx, int64_t begin, int64_t end)
{
    const fwd_job *j = ctx;
    const int64_t P = j->g->OH * j->g->OW;
    for (int64_t t = begin; t < end; t++) {
        int64_t co = t % j->g->O;
        if (j->dt == FERN_F32) {
            float *y = (float *)j->y + t * P, b = j->bias ? ((const float *)j->bias)[co] : 0.0f;
            for (int64_t p = 0; p < P; p++)
                y[p] = b;
        } else {
            double *y = (double *)j->y + t * P, b = j->bias ? ((const double *)j->bias)[co] : 0.0;
            for (int64_t p = 0; p < P; p++)
                y[p] = b;
        }
    }
}

void fern__conv_fill_bias(const conv_geom *g, fern_dtype dt, const void *bias, void *y)
{
    fwd_job j = {.g = g, .dt = dt, .es = fern_dtype_size(dt), .bias = bias, .y = y};
    fern_parallel_for(g->N * g->O, grain_for(g->OH * g->OW), fill_bias_task, &j);
}

/* One chunk of samples [n0, n0 + nb) for group grp: im2col, gemm, scatter,
 * all on the calling thread (small regime; the gemm is single-threaded). */
static void conv_chunk_serial(fwd_job *j, char *col, char *tmp)
{
    const conv_geom *g = j->g;
    const int64_t cin_g = g->C / g->G, og = g->O / g->G, P = g->OH * g->OW;
    const char *B = j->pointwise && j->nb == 1
                        ? j->x + (size_t)((j->n0 * g->C + j->grp * cin_g) * P) * j->es
                        : col;
    if (B == col)
        fern__conv_im2col_rows(j, col, 0, j->CKK);
    const char *A = j->w + (size_t)(j->grp * og * j->CKK) * j->es;
    if (j->nb == 1) {
        char *C = j->y + (size_t)((j->n0 * g->O + j->grp * og) * P) * j->es;
        fern__conv_gemm(j->dt, 0, (int)og, (int)P, (int)j->CKK, A, (int)j->CKK, B, (int)P, C,
                        (int)P, 0.0);
        if (j->bias)
            scatter_rows(j, NULL, 0, og);
    } else {
        fern__conv_gemm(j->dt, 0, (int)og, (int)j->ld, (int)j->CKK, A, (int)j->CKK, B,
                        (int)j->ld, tmp, (int)j->ld, 0.0);
        scatter_rows(j, tmp, 0, j->nb * og);
    }
}

/* Small regime: task t handles samples [t * spb, (t + 1) * spb). */
static void small_task(void *ctx, int64_t begin, int64_t end)
{
    fwd_job j = *(const fwd_job *)ctx;
    const conv_geom *g = j.g;
    const int64_t og = g->O / g->G, P = g->OH * g->OW;
    size_t col_bytes = (size_t)(j.CKK * j.spb * P) * j.es;
    size_t tmp_bytes = j.spb > 1 ? (size_t)(og * j.spb * P) * j.es : 0;
    char *col = fern_alloc(FERN_CPU, col_bytes);
    char *tmp = tmp_bytes ? fern_alloc(FERN_CPU, tmp_bytes) : NULL;
    if (!col || (tmp_bytes && !tmp))
        atomic_store(j.failed, 1);
    for (int64_t t = begin; t < end && col && (tmp || !tmp_bytes); t++) {
        j.n0 = t * j.spb;
        j.nb = g->N - j.n0 < j.spb ? g->N - j.n0 : j.spb;
        j.ld = j.nb * P;
        for (j.grp = 0; j.grp < g->G; j.grp++)
            conv_chunk_serial(&j, col, tmp);
    }
    fern_free(FERN_CPU, col, col_bytes);
    fern_free(FERN_CPU, tmp, tmp_bytes);
}

int fern__conv_forward(const conv_geom *g, fern_dtype dt, const void *x, const conv_wview *w,
                       const void *bias, void *y)
{
    const int64_t N = g->N, G = g->G, cin_g = g->C / G, og = g->O / G;
    const int64_t KK = g->KH * g->KW, P = g->OH * g->OW;
    const size_t es = fern_dtype_size(dt);
    const int plain = conv_wview_is_plain(g, w);
    fwd_job j = {.g = g, .dt = dt, .es = es, .x = x, .w = w->base, .bias = bias, .y = y};

    if (cin_g == 0) { /* no input channels: the output is the bias */
        fern_parallel_for(N * g->O, grain_for(P), fill_bias_task, &j);
        return 0;
    }
#if CBLOCK_AVAILABLE
    if (fern__conv_cblock_suits(g, es))
        return fern__conv_cblock(g, dt, x, w, bias, y);
    if (fern__conv_fwd_rows_suits(g, dt))
        return fern__conv_fwd_rows(g, x, w, bias, y);
#endif
    if (fern__conv_direct_suits(g, es))
        return fern__conv_direct(g, dt, x, w, bias, y);
    /* One input channel per group (depthwise, strided): a gemm would have
     * K = KH*KW and M = O/G, too thin for BLAS; convolve plane by plane. */
    if (cin_g == 1 && og <= 4) {
        const size_t wf_bytes = plain ? 0 : (size_t)(g->O * KK) * es;
        char *wf = plain ? NULL : fern_alloc(FERN_CPU, wf_bytes);
        if (!plain && !wf)
            return -1;
        if (wf) { /* the plain layout the plane kernel reads */
            fern__conv_compact_weights(g, dt, w, NULL, KK, wf);
            j.w = wf;
        }
        fern_parallel_for(N * g->O, grain_for(P * KK), direct_task, &j);
        fern_free(FERN_CPU, wf, wf_bytes);
        return 0;
    }

    int64_t *taps = fern_alloc(FERN_CPU, (size_t)KK * sizeof *taps);
    if (!taps)
        return -1;
    j.taps = taps;
    j.L = fern__conv_live_taps(g, taps);
    j.CKK = cin_g * j.L;
    char *wc = NULL;
    size_t wc_bytes = 0;
    if (j.L < KK || !plain) { /* drop the taps that only ever see padding */
        wc_bytes = (size_t)(g->O * j.CKK) * es;
        if (!(wc = fern_alloc(FERN_CPU, wc_bytes))) {
            fern_free(FERN_CPU, taps, (size_t)KK * sizeof *taps);
            return -1;
        }
        fern__conv_compact_weights(g, dt, w, taps, j.L, wc);
        j.w = wc;
    }
    j.pointwise = g->KH == 1 && g->KW == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 &&
                  g->pl == 0 && g->pb == 0 && g->pr == 0;
    const double per = (double)og * (double)j.CKK * (double)P; /* one sample's gemm */
    int rc = 0;

    if (N > 1 && per <= BLAS_ST_GEMM_MNK && (int64_t)(BLAS_ST_GEMM_MNK / per) * P >= 64) {
        /* Small regime: samples spread over fern's threads, each thread runs
         * im2col, a single-threaded gemm over spb samples, and the scatter on
         * data that stays in its cache. */
        int64_t spb = (int64_t)(BLAS_ST_GEMM_MNK / per);
        int64_t tasks = (N + spb - 1) / spb;
        int nt = fern_num_threads();
        if (tasks < nt && N >= nt) { /* keep every thread busy */
            spb = (N + nt - 1) / nt;
            tasks = (N + spb - 1) / spb;
        }
        j.spb = spb;
        atomic_int failed = 0;
        j.failed = &failed;
        fern_parallel_for(tasks, 1, small_task, &j);
        if (atomic_load(&failed))
            rc = fern__conv_worker_oom(g);
        goto done;
    }

    /* Large regime: one gemm at a time (fern__gemm splits it over fern's
     * threads), im2col and scatter on fern's pool. */
    const int64_t nb = fern__conv_batch_chunk(per, P, j.CKK > og ? j.CKK : og, N);
    const int use_col = !(j.pointwise && nb == 1);
    size_t col_bytes = use_col ? (size_t)(j.CKK * nb * P) * es : 0;
    size_t tmp_bytes = nb > 1 ? (size_t)(og * nb * P) * es : 0;
    char *col = col_bytes ? fern_alloc(FERN_CPU, col_bytes) : NULL;
    char *tmp = tmp_bytes ? fern_alloc(FERN_CPU, tmp_bytes) : NULL;
    if ((col_bytes && !col) || (tmp_bytes && !tmp)) {
        rc = -1;
    } else {
        j.col = col;
        j.tmp = tmp;
        for (int64_t n0 = 0; n0 < N; n0 += nb) {
            j.n0 = n0;
            j.nb = N - n0 < nb ? N - n0 : nb;
            j.ld = j.nb * P;
            for (j.grp = 0; j.grp < G; j.grp++) {
                const size_t xoff = (size_t)((n0 * g->C + j.grp * cin_g) * P) * es;
                const char *B = use_col ? col : (const char *)x + xoff;
                if (use_col)
                    fern_parallel_for(j.CKK, grain_for(j.nb * P), fern__conv_im2col_task, &j);
                const char *A = j.w + (size_t)(j.grp * og * j.CKK) * es;
                if (nb == 1) {
                    char *C = (char *)y + (size_t)((n0 * g->O + j.grp * og) * P) * es;
                    fern__conv_gemm(dt, 0, (int)og, (int)P, (int)j.CKK, A, (int)j.CKK, B, (int)P, C,
                                    (int)P, 0.0);
                    if (bias) {
                        j.tmp = NULL;
                        fern_parallel_for(og, grain_for(P), scatter_task, &j);
                    }
                } else {
                    fern__conv_gemm(dt, 0, (int)og, (int)j.ld, (int)j.CKK, A, (int)j.CKK, B,
                                    (int)j.ld, tmp, (int)j.ld, 0.0);
                    fern_parallel_for(j.nb * og, grain_for(P), scatter_task, &j);
                }
            }
        }
    }
    fern_free(FERN_CPU, col, col_bytes);
    fern_free(FERN_CPU, tmp, tmp_bytes);
done:
    fern_free(FERN_CPU, wc, wc_bytes);
    fern_free(FERN_CPU, taps, (size_t)KK * sizeof *taps);
    return rc;
}
