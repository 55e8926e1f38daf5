/* conv2d_weight_grad (the weight gradient of conv2d, used by conv.c's
 * gradient rules): the choice of kernel and the im2col + gemm path.
 *
 * conv2d_weight_grad(x, gy) = dL/dw of a conv2d with input x (N, C, H, W)
 * and output cotangent gy (N, O, OH, OW):
 *   gw[o][c][kh][kw] = sum_{n, oh, ow} gy[n][o][oh][ow] *
 *                      x[n][grp*C/G + c][oh*sh - pt + kh*dh][ow*sw - pl + kw*dw]
 * (positions outside x read zero; gy's size is taken as given, so only the
 * top/left pads matter). Taps that only ever read padding get zero.
 *
 * AVX-512 builds (f32/f64) use direct kernels, 1.5-2x the gemms below per
 * core on ResNet layers and 3-4x on LeNet's: the row-vectorized one
 * (conv_wgrad_rows.c, f32) for <= 8 output channels per group with rows
 * wide enough to fill its vectors (LeNet's conv1, depthwise), the per-sample
 * one (conv_wgrad_sample.c, f32) for 9-16 output channels per group on
 * small planes (LeNet's conv2), else the channel-vectorized one
 * (conv_wgrad_direct.c). Otherwise, per group, gw is
 * gy_g (O/G x n*P) @ col^T with col the forward's im2col (C/G * taps x n*P):
 * the same im2col, then gemms that accumulate (beta 1) over chunks of
 * samples. Small per-sample gemms (LeNet) run on fern's threads, each thread
 * summing its samples into its own partial gw, reduced at the end; large
 * ones run one at a time (fern__gemm splits them over fern's threads) with
 * im2col and the gathering of gy's rows on fern's pool. */
#include "../backend/cpu/gemm.h"
#include "conv_common.h"

static void wg_gemm(fern_dtype dt, int M, int N, int K, const void *A, int lda, const void *B,
                    int ldb, void *C, int ldc)
{
    fern__gemm(dt, 'N', 'T', M, N, K, A, lda, B, ldb, 1.0, C, ldc);
}

typedef struct {
    fwd_job f;          /* im2col geometry: x, taps, L, CKK, pointwise, n0, nb, grp, ld */
    const char *gy;     /* (N, O, OH*OW) */
    char *gbuf;         /* large regime: gy rows of the chunk, og x ld */
    char *acc;          /* (O, CKK): the result (compact over live taps) */
    char *partials;     /* small regime: (nslots - 1) more accumulators */
    int64_t spb, nslots, nacc;
    atomic_int *failed;
} wg_job;

/* gy rows [r0, r1) of og * nb (channel r / nb of the group, sample r % nb) -> gbuf */
static void wg_gather_rows(const wg_job *j, const fwd_job *f, char *gbuf, int64_t r0, int64_t r1)
{
    const conv_geom *g = f->g;
    const int64_t og = g->O / g->G, P = g->OH * g->OW;
    for (int64_t r = r0; r < r1; r++) {
        int64_t o = r / f->nb, i = r % f->nb;
        memcpy(gbuf + (size_t)(o * f->ld + i * P) * f->es,
               j->gy + (size_t)(((f->n0 + i) * g->O + f->grp * og + o) * P) * f->es,
               (size_t)P * f->es);
    }
}

static void wg_gather_task(void *ctx, int64_t begin, int64_t end)
{
    const wg_job *j = ctx;
    wg_gather_rows(j, &j->f, j->gbuf, begin, end);
}

/* acc_g += gy_g @ col^T for the chunk and group in f (serial parts inline) */
static void wg_chunk(const wg_job *j, const fwd_job *f, char *col, char *gbuf, char *acc,
                     int parallel)
{
    const conv_geom *g = f->g;
    const int64_t cin_g = g->C / g->G, og = g->O / g->G, P = g->OH * g->OW;
    const size_t es = f->es;
    const char *B = col, *A;
    int lda;
    if (f->pointwise && f->nb == 1) {
        B = f->x + (size_t)((f->n0 * g->C + f->grp * cin_g) * P) * es;
    } else if (parallel) {
        fern_parallel_for(f->CKK, grain_for(f->nb * P), fern__conv_im2col_task, (void *)f);
    } else {
        fern__conv_im2col_rows(f, col, 0, f->CKK);
    }
    if (f->nb == 1) {
        A = j->gy + (size_t)((f->n0 * g->O + f->grp * og) * P) * es;
        lda = (int)P;
    } else {
        if (parallel)
            fern_parallel_for(og * f->nb, grain_for(P), wg_gather_task, (void *)j);
        else
            wg_gather_rows(j, f, gbuf, 0, og * f->nb);
        A = gbuf;
        lda = (int)f->ld;
    }
    wg_gemm(f->dt, (int)og, (int)f->CKK, (int)f->ld, A, lda, B, (int)f->ld,
            acc + (size_t)(f->grp * og * f->CKK) * es, (int)f->CKK);
}

/* small regime: slot t sums samples [t*N/nslots, (t+1)*N/nslots) into its accumulator */
static void wg_slot_task(void *ctx, int64_t begin, int64_t end)
{
    const wg_job *j = ctx;
    const conv_geom *g = j->f.g;
    const int64_t og = g->O / g->G, P = g->OH * g->OW;
    const size_t es = j->f.es;
    size_t col_bytes = j->f.pointwise && j->spb == 1 ? 0 : (size_t)(j->f.CKK * j->spb * P) * es;
    size_t gb_bytes = j->spb > 1 ? (size_t)(og * j->spb * P) * es : 0;
    char *col = col_bytes ? fern_alloc(FERN_CPU, col_bytes) : NULL;
    char *gbuf = gb_bytes ? fern_alloc(FERN_CPU, gb_bytes) : NULL;
    if ((col_bytes && !col) || (gb_bytes && !gbuf)) {
        atomic_store(j->failed, 1);
    } else {
        for (int64_t t = begin; t < end; t++) {
            char *acc = t == 0 ? j->acc : j->partials + (size_t)((t - 1) * j->nacc) * es;
            const int64_t s0 = t * g->N / j->nslots, s1 = (t + 1) * g->N / j->nslots;
            fwd_job f = j->f;
            f.col = col;
            for (f.n0 = s0; f.n0 < s1; f.n0 += j->spb) {
                f.nb = s1 - f.n0 < j->spb ? s1 - f.n0 : j->spb;
                f.ld = f.nb * P;
                for (f.grp = 0; f.grp < g->G; f.grp++)
                    wg_chunk(j, &f, col, gbuf, acc, 0);
            }
        }
    }
    fern_free(FERN_CPU, col, col_bytes);
    fern_free(FERN_CPU, gbuf, gb_bytes);
}

/* acc[e] += sum of the partials, elements [begin, end) */
static void wg_reduce_task(void *ctx, int64_t begin, int64_t end)
{
    const wg_job *j = ctx;
    for (int64_t s = 0; s < j->nslots - 1; s++) {
        if (j->f.dt == FERN_F32) {
            float *restrict a = (float *)j->acc;
            const float *restrict p = (const float *)j->partials + s * j->nacc;
            for (int64_t e = begin; e < end; e++)
                a[e] += p[e];
        } else {
            double *restrict a = (double *)j->acc;
            const double *restrict p = (const double *)j->partials + s * j->nacc;
            for (int64_t e = begin; e < end; e++)
                a[e] += p[e];
        }
    }
}

int fern__conv_wgrad(const conv_geom *g, fern_dtype dt, const void *x, const void *gy,
                     void *gw)
{
    const size_t es = fern_dtype_size(dt);
    const int64_t N = g->N, G = g->G, cin_g = g->C / G, og = g->O / G;
    const int64_t KK = g->KH * g->KW, P = g->OH * g->OW;
    const size_t gw_bytes = (size_t)(g->O * cin_g * KK) * es;
    memset(gw, 0, gw_bytes);
    if (N == 0 || P == 0 || cin_g == 0 || og == 0)
        return 0;
    int64_t *taps = fern_alloc(FERN_CPU, (size_t)KK * sizeof *taps);
    if (!taps)
        return -1;
    wg_job j;
    memset(&j, 0, sizeof j);
    j.f.g = g;
    j.f.dt = dt;
    j.f.es = es;
    j.f.x = x;
    j.f.taps = taps;
    j.f.L = fern__conv_live_taps(g, taps);
    j.f.CKK = cin_g * j.f.L;
    j.f.pointwise = KK == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 &&
                    g->OH == g->H && g->OW == g->W;
    j.gy = gy;
    j.nacc = g->O * j.f.CKK;
    atomic_int failed = 0;
    j.failed = &failed;
    int rc = 0;
    if (j.f.L == 0)
        goto done;
#if CBLOCK_AVAILABLE /* the direct kernels beat the gemms 1.5-2x (LeNet 3-4x) */
    if (fern__conv_wgrad_rows_suits(g, dt, j.f.L))
        rc = fern__conv_wgrad_rows(g, x, gy, gw, taps, j.f.L);
    else if (fern__conv_wgrad_sample_suits(g, dt))
        rc = fern__conv_wgrad_sample(g, x, gy, gw);
    else
        rc = fern__conv_wgrad_direct(g, dt, x, gy, gw, taps, j.f.L);
    goto done;
#endif
    const size_t acc_bytes = j.f.L < KK ? (size_t)j.nacc * es : 0;
    char *acc = acc_bytes ? fern_alloc(FERN_CPU, acc_bytes) : gw;
    if (!acc) {
        rc = -1;
        goto done;
    }
    memset(acc, 0, (size_t)j.nacc * es);
    j.acc = acc;
    const double per = (double)og * (double)j.f.CKK * (double)P; /* one sample's gemm */
    const int nt = fern_num_threads();
    size_t part_bytes = 0;
    if (N > 1 && nt > 1 && per <= BLAS_ST_GEMM_MNK) {
        /* small regime: per-thread partial sums */
        j.spb = (int64_t)(BLAS_ST_GEMM_MNK / per);
        if (j.spb < 1)
            j.spb = 1;
        j.nslots = nt < N ? nt : N;
        if (j.spb > (N + j.nslots - 1) / j.nslots)
            j.spb = (N + j.nslots - 1) / j.nslots;
        if ((j.f.CKK > og ? j.f.CKK : og) * j.spb * P > CONV_BUF_CAP)
            j.spb = CONV_BUF_CAP / ((j.f.CKK > og ? j.f.CKK : og) * P);
        if (j.spb < 1)
            j.spb = 1;
        part_bytes = (size_t)((j.nslots - 1) * j.nacc) * es;
        j.partials = part_bytes ? fern_alloc(FERN_CPU, part_bytes) : NULL;
        if (part_bytes && !j.partials) {
            rc = -1;
        } else {
            if (part_bytes)
                memset(j.partials, 0, part_bytes);
            fern_parallel_for(j.nslots, 1, wg_slot_task, &j);
            if (atomic_load(&failed))
                rc = fern__conv_worker_oom(g);
            else
                fern_parallel_for(j.nacc, 4096, wg_reduce_task, &j);
        }
        fern_free(FERN_CPU, j.partials, part_bytes);
    } else {
        /* large regime: gemms on the calling thread, chunks of nb samples */
        const int64_t nb = fern__conv_batch_chunk(per, P, j.f.CKK > og ? j.f.CKK : og, N);
        size_t col_bytes = j.f.pointwise && nb == 1 ? 0 : (size_t)(j.f.CKK * nb * P) * es;
        size_t gb_bytes = nb > 1 ? (size_t)(og * nb * P) * es : 0;
        char *col = col_bytes ? fern_alloc(FERN_CPU, col_bytes) : NULL;
        char *gbuf = gb_bytes ? fern_alloc(FERN_CPU, gb_bytes) : NULL;
        if ((col_bytes && !col) || (gb_bytes && !gbuf)) {
            rc = -1;
        } else {
            j.f.col = col;
            j.gbuf = gbuf;
            for (j.f.n0 = 0; j.f.n0 < N; j.f.n0 += nb) {
                j.f.nb = N - j.f.n0 < nb ? N - j.f.n0 : nb;
                j.f.ld = j.f.nb * P;
                for (j.f.grp = 0; j.f.grp < G; j.f.grp++)
                    wg_chunk(&j, &j.f, col, gbuf, acc, 1);
            }
        }
        fern_free(FERN_CPU, col, col_bytes);
        fern_free(FERN_CPU, gbuf, gb_bytes);
    }
    if (rc == 0 && acc != gw) { /* live taps -> their places in the kernel */
        const int64_t rows = g->O * cin_g, L = j.f.L;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t t = 0; t < L; t++)
                memcpy((char *)gw + (size_t)(r * KK + taps[t]) * es, acc + (size_t)(r * L + t) * es,
                       es);
    }
    if (acc != gw)
        fern_free(FERN_CPU, acc, acc_bytes);
done:
    fern_free(FERN_CPU, taps, (size_t)KK * sizeof *taps);
    return rc;
}
