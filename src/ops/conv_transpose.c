/* conv_transpose2d (also the input gradient of conv2d, from conv.c's rules).
 *
 * y[oh] = sum over (ih, kh) with oh = ih*s - p + kh*d of x[ih] w[kh] (one
 * axis shown). The outputs with oh = a (mod s) form a class: they read only
 * the taps kh = r (mod s), r = (a + p) mod s (dilation 1), at input rows
 * i + q - m for output i = (oh - a) / s and tap kh = r + s*m. So each class
 * is a stride-1 forward conv of x with the class's taps, flipped, and the
 * channels swapped: for ResNet's stride-2 3x3 convs, four convs with 1x1,
 * 1x2, 2x1 and 2x2 kernels whose work adds up to the transposed conv's,
 * with no zeros inserted. They run on the forward kernels (the channel- or
 * row-vectorized direct kernels), which read the weight through a view
 * (no flipped copy), into a scratch output interleaved into y; a stride-1
 * transposed conv is one forward conv writing y directly.
 *
 * A stride-1 transposed conv whose padded input would be mostly padding
 * (a valid conv's input gradient on a small map) runs instead as a gemm on
 * the unpadded input and shifted sums (conv_transpose_cols.c).
 *
 * Otherwise (strides with dilation, or pads larger than the kernel reaches)
 * per group a gemm (W_g^T @ x) into columns, then col2im (scatter-add) into
 * the output, which starts as the bias; several samples' columns merged
 * into one wider gemm when a sample's is small. */
#include "conv_common.h"

/* Scatter-add one column row (channel o, tap kh, kw) of a transposed conv
 * into the output plane yc (OH x OW); src holds H*W values. */
#define DEFINE_COL2IM(T, SFX)                                                                     \
    static void col2im_row_##SFX(const conv_geom *g, const T *restrict src, int64_t kh,           \
                                 int64_t kw, T *restrict yc)                                      \
    {                                                                                             \
        const int64_t sw = g->sw, W = g->W, OW = g->OW;                                           \
        const int64_t off = kw * g->dw - g->pl;                                                   \
        int64_t lo, hi;                                                                           \
        valid_range(W, sw, off, OW, &lo, &hi);                                                    \
        for (int64_t ih = 0; ih < g->H; ih++) {                                                   \
            const int64_t oh = ih * g->sh - g->pt + kh * g->dh;                                   \
            if (oh < 0 || oh >= g->OH)                                                            \
                continue;                                                                         \
            T *restrict yr = yc + oh * OW;                                                        \
            const T *restrict s = src + ih * W;                                                   \
            if (sw == 1)                                                                          \
                for (int64_t iw = lo; iw < hi; iw++)                                              \
                    yr[iw + off] += s[iw];                                                        \
            else                                                                                  \
                for (int64_t iw = lo; iw < hi; iw++)                                              \
                    yr[iw * sw + off] += s[iw];                                                   \
        }                                                                                         \
    }

DEFINE_COL2IM(float, f32)
DEFINE_COL2IM(double, f64)

typedef struct {
    const conv_geom *g;
    fern_dtype dt;
    size_t es;
    const char *x;
    char *y, *col, *xb;
    int64_t n0, nb, grp, ld;
} tr_job;

/* gather tasks t in [0, cin_g * nb): channel t / nb of the group, sample n0 + t % nb */
static void gather_task(void *ctx, int64_t begin, int64_t end)
{
    const tr_job *j = ctx;
    const conv_geom *g = j->g;
    const int64_t cin_g = g->C / g->G, HW = g->H * g->W;
    for (int64_t t = begin; t < end; t++) {
        int64_t ci = t / j->nb, i = t % j->nb;
        memcpy(j->xb + (size_t)(ci * j->ld + i * HW) * j->es,
               j->x + (size_t)(((j->n0 + i) * g->C + j->grp * cin_g + ci) * HW) * j->es,
               (size_t)HW * j->es);
    }
}

/* col2im tasks t in [0, nb * O_g): one output plane each */
static void col2im_task(void *ctx, int64_t begin, int64_t end)
{
    const tr_job *j = ctx;
    const conv_geom *g = j->g;
    const int64_t og = g->O / g->G, KK = g->KH * g->KW, HW = g->H * g->W, P = g->OH * g->OW;
    for (int64_t t = begin; t < end; t++) {
        int64_t i = t / og, o = t % og;
        int64_t yoff = ((j->n0 + i) * g->O + j->grp * og + o) * P;
        for (int64_t k = 0; k < KK; k++) {
            int64_t soff = (o * KK + k) * j->ld + i * HW;
            if (j->dt == FERN_F32)
                col2im_row_f32(g, (const float *)j->col + soff, k / g->KW, k % g->KW,
                               (float *)j->y + yoff);
            else
                col2im_row_f64(g, (const double *)j->col + soff, k / g->KW, k % g->KW,
                               (double *)j->y + yoff);
        }
    }
}

static int convt_col2im(const conv_geom *g, fern_dtype dt, const void *x_, const void *w_,
                        const void *bias, void *y_)
{
    const char *x = x_, *w = w_;
    char *y = y_;
    const size_t es = fern_dtype_size(dt);
    const int64_t N = g->N, G = g->G, cin_g = g->C / G, og = g->O / G, KK = g->KH * g->KW;
    const int64_t R = og * KK, HW = g->H * g->W;
    fern__conv_fill_bias(g, dt, bias, y);
    if (cin_g == 0 || HW == 0 || N == 0)
        return 0;

    const double per = (double)R * (double)cin_g * (double)HW;
    const int64_t nb = fern__conv_batch_chunk(per, HW, R > cin_g ? R : cin_g, N);
    size_t col_bytes = (size_t)(R * nb * HW) * es;
    size_t xb_bytes = nb > 1 ? (size_t)(cin_g * nb * HW) * es : 0;
    char *col = fern_alloc(FERN_CPU, col_bytes);
    char *xb = xb_bytes ? fern_alloc(FERN_CPU, xb_bytes) : NULL;
    if (!col || (xb_bytes && !xb)) {
        fern_free(FERN_CPU, col, col_bytes);
        fern_free(FERN_CPU, xb, xb_bytes);
        return -1;
    }
    tr_job j = {.g = g, .dt = dt, .es = es, .x = x, .y = y, .col = col, .xb = xb};
    for (int64_t n0 = 0; n0 < N; n0 += nb) {
        j.n0 = n0;
        j.nb = N - n0 < nb ? N - n0 : nb;
        j.ld = j.nb * HW;
        for (int64_t grp = 0; grp < G; grp++) {
            j.grp = grp;
            const char *B;
            if (nb > 1) {
                fern_parallel_for(cin_g * j.nb, grain_for(HW), gather_task, &j);
                B = xb;
            } else {
                B = x + (size_t)((n0 * g->C + grp * cin_g) * HW) * es;
            }
            /* col (R x nb*HW) = W_g^T @ x_g; W_g is stored (cin_g x R) */
            const char *A = w + (size_t)(grp * cin_g * R) * es;
            fern__conv_gemm(dt, 1, (int)R, (int)j.ld, (int)cin_g, A, (int)R, B, (int)j.ld, col,
                            (int)j.ld, 0.0);
            fern_parallel_for(j.nb * og, grain_for(KK * HW), col2im_task, &j);
        }
    }
    fern_free(FERN_CPU, col, col_bytes);
    fern_free(FERN_CPU, xb, xb_bytes);
    return 0;
}

/* ---- as forward convs ---------------------------------------------------- */

/* One axis of a class: outputs a + s*i (i < n) read the taps r + s*m
 * (m < M); as a stride-1 conv of x with those taps reversed, the top pad
 * is pad0, and the conv's output extends to nout >= n rows. */
typedef struct {
    int64_t n, M, r, pad0, pad1, nout;
} tc_axis;

/* Axis class a of a transposed conv with stride s, pad p, kernel K,
 * dilation d (1 when s > 1), input length L, output length Nout. Returns 0
 * when the class is a forward conv with pad0 >= 0 (or has no output or taps). */
static int tc_axis_of(int64_t a, int64_t s, int64_t p, int64_t K, int64_t d, int64_t L,
                      int64_t Nout, tc_axis *ax)
{
    memset(ax, 0, sizeof *ax);
    ax->n = a < Nout ? (Nout - a + s - 1) / s : 0;
    ax->r = (a + p) % s;
    ax->M = ax->r < K ? (K - ax->r + s - 1) / s : 0;
    if (ax->n == 0 || ax->M == 0)
        return 0;
    const int64_t q = (a + p - ax->r) / s; /* output i reads input i + q - m */
    ax->pad0 = (ax->M - 1) * d - q;
    if (ax->pad0 < 0)
        return -1;
    ax->pad1 = ax->n - L - ax->pad0 + (ax->M - 1) * d;
    if (ax->pad1 < 0)
        ax->pad1 = 0; /* the conv computes rows past n: the scratch keeps the first n */
    ax->nout = L + ax->pad0 + ax->pad1 - (ax->M - 1) * d;
    return 0;
}

typedef struct {
    const conv_geom *g;
    fern_dtype dt;
    size_t es;
    const char *src; /* (N, O, nh, nw) class output */
    char *y;
    const char *bias;
    int64_t a, b, nh, nw, rows, cols; /* class offsets, its computed and kept sizes */
} tc_job;

/* task t = plane (n, o): y[n][o][a + sh*i][b + sw*j] = src[i][j] + bias[o] */
static void tc_scatter_task(void *ctx, int64_t begin, int64_t end)
{
    const tc_job *j = ctx;
    const conv_geom *g = j->g;
    for (int64_t t = begin; t < end; t++) {
        const int64_t o = t % g->O;
        for (int64_t i = 0; i < j->rows; i++) {
            const int64_t so = (t * j->nh + i) * j->nw, yo = (t * g->OH + j->a + i * g->sh) * g->OW;
            if (j->dt == FERN_F32) {
                const float *s = (const float *)j->src + so;
                const float bv = j->bias ? ((const float *)j->bias)[o] : 0.0f;
                float *y = (float *)j->y + yo + j->b;
                for (int64_t jj = 0; jj < j->cols; jj++)
                    y[jj * g->sw] = s[jj] + bv;
            } else {
                const double *s = (const double *)j->src + so;
                double *y = (double *)j->y + yo + j->b;
                const double bv = j->bias ? ((const double *)j->bias)[o] : 0;
                for (int64_t jj = 0; jj < j->cols; jj++)
                    y[jj * g->sw] = s[jj] + bv;
            }
        }
    }
}

int fern__conv_transpose(const conv_geom *g, fern_dtype dt, const void *x, const void *w,
                         const void *bias, void *y)
{
    const int64_t G = g->G, cin_g = g->C / G, og = g->O / G, KK = g->KH * g->KW;
    const size_t es = fern_dtype_size(dt);
    if (g->N == 0 || cin_g == 0 || g->H * g->W == 0 ||
        (g->sh > 1 && g->dh > 1) || (g->sw > 1 && g->dw > 1))
        return convt_col2im(g, dt, x, w, bias, y);
#if CBLOCK_AVAILABLE
    if (fern__convt_cols_suits(g, dt))
        return fern__convt_cols(g, x, w, bias, y);
#endif
    tc_axis ah[16], aw[16];
    if (g->sh > 16 || g->sw > 16)
        return convt_col2im(g, dt, x, w, bias, y);
    for (int64_t a = 0; a < g->sh; a++)
        if (tc_axis_of(a, g->sh, g->pt, g->KH, g->dh, g->H, g->OH, &ah[a]))
            return convt_col2im(g, dt, x, w, bias, y);
    for (int64_t b = 0; b < g->sw; b++)
        if (tc_axis_of(b, g->sw, g->pl, g->KW, g->dw, g->W, g->OW, &aw[b]))
            return convt_col2im(g, dt, x, w, bias, y);

    /* one class, computing exactly y: write it directly */
    const int direct = g->sh == 1 && g->sw == 1 && ah[0].nout == g->OH && aw[0].nout == g->OW;
    int all_taps = 1; /* every output position gets a conv's value (else start from the bias) */
    for (int64_t a = 0; a < g->sh; a++)
        for (int64_t b = 0; b < g->sw; b++)
            if (ah[a].n && aw[b].n && (!ah[a].M || !aw[b].M))
                all_taps = 0;
    if (!direct && !all_taps)
        fern__conv_fill_bias(g, dt, bias, y);
    size_t scr_bytes = 0;
    if (!direct) /* the largest class output */
        for (int64_t a = 0; a < g->sh; a++)
            for (int64_t b = 0; b < g->sw; b++) {
                const size_t bytes = (size_t)(g->N * g->O * ah[a].nout * aw[b].nout) * es;
                if (ah[a].M && aw[b].M && bytes > scr_bytes)
                    scr_bytes = bytes;
            }
    char *scr = scr_bytes ? fern_alloc(FERN_CPU, scr_bytes) : NULL;
    if (scr_bytes && !scr)
        return -1;
    int rc = 0;
    for (int64_t a = 0; a < g->sh && rc == 0; a++)
        for (int64_t b = 0; b < g->sw && rc == 0; b++) {
            const tc_axis *h = &ah[a], *v = &aw[b];
            if (!h->n || !v->n || !h->M || !v->M)
                continue;
            conv_geom c = {.N = g->N, .C = g->C, .H = g->H, .W = g->W, .O = g->O, .KH = h->M,
                           .KW = v->M, .OH = h->nout, .OW = v->nout, .sh = 1, .sw = 1,
                           .pt = h->pad0, .pl = v->pad0, .pb = h->pad1, .pr = v->pad1,
                           .dh = g->sh == 1 ? g->dh : 1, .dw = g->sw == 1 ? g->dw : 1, .G = G,
                           .batched = 1, .op = g->op};
            /* the forward weight (co = grp*og + o, ci, mh, mw) is
             * w[grp*cin_g + ci][o][h->r + sh*(M_h-1-mh)][v->r + sw*(M_w-1-mw)] */
            const conv_wview wv = {.base = w, .sg = cin_g * og * KK, .so = KK, .sc = og * KK,
                                   .skh = -g->sh * g->KW, .skw = -g->sw,
                                   .off = (h->r + g->sh * (h->M - 1)) * g->KW + v->r +
                                          g->sw * (v->M - 1),
                                   .KW = v->M};
            if (direct) {
                rc = fern__conv_forward(&c, dt, x, &wv, bias, y);
                break;
            }
            rc = fern__conv_forward(&c, dt, x, &wv, NULL, scr);
            tc_job j = {.g = g, .dt = dt, .es = es, .src = scr, .y = y, .bias = bias, .a = a,
                        .b = b, .nh = h->nout, .nw = v->nout, .rows = h->n, .cols = v->n};
            if (rc == 0)
                fern_parallel_for(g->N * g->O, grain_for(h->n * v->n), tc_scatter_task, &j);
        }
    fern_free(FERN_CPU, scr, scr_bytes);
    return rc;
}
