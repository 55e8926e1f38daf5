/* Convolutions: conv1d, conv2d and conv_transpose2d (torch semantics).
 *
 * The ops carry explicit, IR-friendly attributes: `stride`, `pads` (conv2d
 * and conv_transpose2d: top, left, bottom, right; conv1d: left, right),
 * `dilation`, `groups`, and `output_padding` for the transposed conv. The
 * public functions turn fern_conv_opts (symmetric padding, padding_same)
 * into these. Inputs may be batched (N, C, ...) or unbatched (C, ...);
 * conv1d runs as a conv2d over a unit height.
 *
 * conv1d/conv2d pick one of four kernels (conv_forward):
 *  - channel-vectorized direct kernel (builds targeting AVX-512): vectors
 *    over output channels, register blocks of output positions, for convs
 *    with >= 16 output channels per group and >= 64 taps per output
 *    (ResNet, LeNet's conv2). OpenBLAS is pinned to its AVX2 kernels here
 *    (OPENBLAS_CORETYPE=Haswell), which this beats per core by 1.5-2x.
 *  - row-vectorized direct kernel: vectors over output columns (stride 1
 *    along W), for thin convs (LeNet's conv1), wide rows, depthwise.
 *  - plane kernel: strided depthwise.
 *  - im2col + gemm otherwise (and for everything the direct kernels do not
 *    take in builds without AVX-512). A 1x1, stride-1, unpadded conv hands
 *    the input to gemm directly; taps that only ever read padding are
 *    dropped. Small per-sample gemms (which OpenBLAS runs single-threaded)
 *    are spread over fern's threads, samples per thread batched into one
 *    gemm; large ones run on the calling thread, several samples' im2col
 *    merged into one wider gemm when a sample's is small, OpenBLAS threading
 *    each gemm while im2col and the scatter run on fern's pool. The two
 *    thread pools never nest.
 *
 * conv_transpose2d: gemm (W_g^T @ x) into columns, then col2im (scatter-add)
 * into the output, which starts as the bias.
 *
 * conv2d_weight_grad (the weight gradient of conv2d, used by the gradient
 * rules at the end of the file): a direct channel-vectorized kernel in
 * AVX-512 builds, im2col + accumulating gemms otherwise.
 *
 * f32/f64 natively, f16/bf16 via f32. */
#include <cblas.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "op_def.h"

static int conv1d_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int conv2d_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int convt2d_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int wgrad_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);

/* ---- geometry and attribute checks ------------------------------------- */

typedef struct {
    int64_t N, C, H, W;      /* input (N = 1 when unbatched)              */
    int64_t O, KH, KW;       /* output channels, kernel                   */
    int64_t OH, OW;          /* output spatial size                       */
    int64_t sh, sw, pt, pl, pb, pr, dh, dw, oph, opw, G;
    int batched;
    const char *op;
} conv_geom;

enum { CONV1D, CONV2D, CONVT2D };

static const char *const conv_names[] = {"conv1d", "conv2d", "conv_transpose2d"};

/* Read an ints attr of `n` values: empty -> def, one value -> repeated. */
static int get_ints(const char *op, const fern_attr *a, const char *name, int n, int64_t def,
                    int64_t minv, int64_t *out)
{
    if (a->n == 0) {
        for (int i = 0; i < n; i++)
            out[i] = def;
    } else if (a->n == 1 || a->n == n) {
        for (int i = 0; i < n; i++)
            out[i] = a->ints[a->n == 1 ? 0 : i];
    } else {
        fern_set_error(FERN_ERR_INVALID, "%s: attribute '%s' needs %d values, got %d", op, name, n,
                       a->n);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (out[i] < minv) {
            fern_set_error(FERN_ERR_INVALID, "%s: attribute '%s' must be >= %lld, got %lld", op,
                           name, (long long)minv, (long long)out[i]);
            return -1;
        }
    return 0;
}

static int conv_setup(const fern_op_call *c, int kind, conv_geom *g)
{
    const char *op = conv_names[kind];
    const fern_tensor *x = c->in[0], *w = c->in[1], *bias = c->in[2];
    const int sd = kind == CONV1D ? 1 : 2; /* spatial dims */
    char dx[128], dw_[128], db[128];
    fern__desc(x, dx, sizeof dx);
    fern__desc(w, dw_, sizeof dw_);

    if (x->ndim != sd + 1 && x->ndim != sd + 2) {
        if (sd == 1)
            fern_set_error(FERN_ERR_INVALID,
                           "%s: expected a 2-D (C, L) or 3-D (N, C, L) input, got %s", op, dx);
        else
            fern_set_error(FERN_ERR_INVALID,
                           "%s: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got %s", op,
                           dx);
        return -1;
    }
    if (w->ndim != sd + 2) {
        fern_set_error(FERN_ERR_INVALID, "%s: expected a %d-D weight, got %s (input %s)", op,
                       sd + 2, dw_, dx);
        return -1;
    }
    if (!fern_dtype_is_float(x->dtype))
        return fern__err_dtype(c, x, "expected a float input (f32, f64, f16, bf16)");
    if (w->dtype != x->dtype || (bias && bias->dtype != x->dtype)) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: input, weight and bias must have the same dtype, got %s, %s, %s", op,
                       dx, dw_, bias ? fern__desc(bias, db, sizeof db) : "none");
        return -1;
    }
    memset(g, 0, sizeof *g);
    g->op = op;
    g->batched = x->ndim == sd + 2;
    int o = g->batched ? 1 : 0;
    g->N = g->batched ? x->shape[0] : 1;
    g->C = x->shape[o];
    g->H = sd == 2 ? x->shape[o + 1] : 1;
    g->W = x->shape[o + sd];
    g->KH = sd == 2 ? w->shape[2] : 1;
    g->KW = w->shape[1 + sd];

    int64_t st[2], dl[2], pd[4], op2[2] = {0, 0};
    const fern_attr *A = c->attrs;
    if (get_ints(op, &A[0], "stride", sd, 1, 1, st) ||
        get_ints(op, &A[2], "dilation", sd, 1, 1, dl))
        return -1;
    if (sd == 2) {
        if (A[1].n == 2) { /* symmetric (h, w) */
            pd[0] = pd[2] = A[1].ints[0];
            pd[1] = pd[3] = A[1].ints[1];
            if (pd[0] < 0 || pd[1] < 0) {
                fern_set_error(FERN_ERR_INVALID, "%s: attribute 'pads' must be >= 0", op);
                return -1;
            }
        } else if (get_ints(op, &A[1], "pads", 4, 0, 0, pd)) {
            return -1;
        }
    } else if (get_ints(op, &A[1], "pads", 2, 0, 0, pd)) {
        return -1;
    }
    int64_t groups = A[3].i;
    if (kind == CONVT2D && get_ints(op, &A[4], "output_padding", 2, 0, 0, op2))
        return -1;
    if (groups < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: groups must be >= 1, got %lld", op,
                       (long long)groups);
        return -1;
    }
    g->G = groups;
    if (sd == 2) {
        g->sh = st[0], g->sw = st[1], g->dh = dl[0], g->dw = dl[1];
        g->pt = pd[0], g->pl = pd[1], g->pb = pd[2], g->pr = pd[3];
        g->oph = op2[0], g->opw = op2[1];
    } else {
        g->sh = g->dh = 1;
        g->sw = st[0], g->dw = dl[0], g->pl = pd[0], g->pr = pd[1];
    }
    if (g->KH < 1 || g->KW < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: kernel size must be positive, got weight %s", op,
                       dw_);
        return -1;
    }
    if (g->C % groups) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: groups (%lld) must divide the input channels (%lld), input %s", op,
                       (long long)groups, (long long)g->C, dx);
        return -1;
    }
    if (kind != CONVT2D) {
        g->O = w->shape[0];
        if (g->O % groups) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: groups (%lld) must divide the output channels (%lld), weight %s",
                           op, (long long)groups, (long long)g->O, dw_);
            return -1;
        }
        if (w->shape[1] * groups != g->C) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: channel mismatch: weight %s with groups=%lld expects %lld input "
                           "channels, input %s has %lld",
                           op, dw_, (long long)groups, (long long)(w->shape[1] * groups), dx,
                           (long long)g->C);
            return -1;
        }
        int64_t ekh = g->dh * (g->KH - 1) + 1, ekw = g->dw * (g->KW - 1) + 1;
        int64_t ph = g->H + g->pt + g->pb, pw = g->W + g->pl + g->pr;
        if (ph < ekh || pw < ekw) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: kernel size (%lld x %lld, dilated) is larger than the padded input "
                           "(%lld x %lld): input %s, weight %s",
                           op, (long long)ekh, (long long)ekw, (long long)ph, (long long)pw, dx,
                           dw_);
            return -1;
        }
        g->OH = (ph - ekh) / g->sh + 1;
        g->OW = (pw - ekw) / g->sw + 1;
    } else {
        if (w->shape[0] != g->C) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: channel mismatch: weight %s expects %lld input channels, input %s "
                           "has %lld",
                           op, dw_, (long long)w->shape[0], dx, (long long)g->C);
            return -1;
        }
        g->O = w->shape[1] * groups;
        if ((g->oph >= g->sh && g->oph >= g->dh) || (g->opw >= g->sw && g->opw >= g->dw)) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: output padding (%lld, %lld) must be smaller than either stride or "
                           "dilation",
                           op, (long long)g->oph, (long long)g->opw);
            return -1;
        }
        g->OH = (g->H - 1) * g->sh - g->pt - g->pb + g->dh * (g->KH - 1) + g->oph + 1;
        g->OW = (g->W - 1) * g->sw - g->pl - g->pr + g->dw * (g->KW - 1) + g->opw + 1;
        if (g->OH < 1 || g->OW < 1) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: output size (%lld x %lld) is too small: input %s, weight %s", op,
                           (long long)g->OH, (long long)g->OW, dx, dw_);
            return -1;
        }
    }
    if (bias && (bias->ndim != 1 || bias->shape[0] != g->O)) {
        fern_set_error(FERN_ERR_INVALID, "%s: bias must have shape [%lld], got %s (weight %s)", op,
                       (long long)g->O, fern__desc(bias, db, sizeof db), dw_);
        return -1;
    }
    return 0;
}

static void conv_out_shape(fern_op_call *c, int kind, const conv_geom *g)
{
    int64_t *s = c->out_shape[0];
    int n = 0;
    if (g->batched)
        s[n++] = g->N;
    s[n++] = g->O;
    if (kind != CONV1D)
        s[n++] = g->OH;
    s[n++] = g->OW;
    c->out_ndim[0] = n;
    c->out_dtype[0] = c->in[0]->dtype;
}

static int conv1d_infer(fern_op_call *c)
{
    conv_geom g;
    if (conv_setup(c, CONV1D, &g))
        return -1;
    conv_out_shape(c, CONV1D, &g);
    return 0;
}

static int conv2d_infer(fern_op_call *c)
{
    conv_geom g;
    if (conv_setup(c, CONV2D, &g))
        return -1;
    conv_out_shape(c, CONV2D, &g);
    return 0;
}

static int convt2d_infer(fern_op_call *c)
{
    conv_geom g;
    if (conv_setup(c, CONVT2D, &g))
        return -1;
    conv_out_shape(c, CONVT2D, &g);
    return 0;
}

/* ---- typed helpers ----------------------------------------------------- */

/* Range of i with 0 <= i*s + off < lim, intersected with [0, n). */
static inline void valid_range(int64_t n, int64_t s, int64_t off, int64_t lim, int64_t *lo,
                               int64_t *hi)
{
    int64_t a = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t b = lim - 1 - off < 0 ? 0 : (lim - 1 - off) / s + 1;
    if (a > n)
        a = n;
    if (b > n)
        b = n;
    if (b < a)
        b = a;
    *lo = a;
    *hi = b;
}

/* Mark the kernel taps that read the input for at least one output position
 * (on a 1x1 map with 3x3 pad 1, only the centre does); returns their count. */
static int64_t live_taps(const conv_geom *g, int64_t *taps)
{
    int64_t L = 0;
    for (int64_t kh = 0; kh < g->KH; kh++) {
        int64_t lo, hi;
        valid_range(g->OH, g->sh, kh * g->dh - g->pt, g->H, &lo, &hi);
        if (lo == hi)
            continue;
        for (int64_t kw = 0; kw < g->KW; kw++) {
            valid_range(g->OW, g->sw, kw * g->dw - g->pl, g->W, &lo, &hi);
            if (lo < hi)
                taps[L++] = kh * g->KW + kw;
        }
    }
    return L;
}

/* Scratch allocation failed in a worker thread (whose error state the
 * caller cannot see): report it on the calling thread. */
static int worker_oom(const conv_geom *g)
{
    fern_set_error(FERN_ERR_NOMEM, "%s: out of memory for scratch buffers", g->op);
    return -1;
}

/* Grain (iterations per chunk) so each chunk does about 32K element ops. */
static int64_t grain_for(int64_t per_item)
{
    return per_item >= 32768 ? 1 : 32768 / (per_item > 0 ? per_item : 1) + 1;
}

/* Copy / zero n bytes (a multiple of 4) in constant-size pieces that the
 * compiler inlines: im2col moves many short runs, where a libc call per run
 * would cost more than the copy. */
static inline void copy_run(void *restrict d, const void *restrict s, size_t n)
{
    char *dp = d;
    const char *sp = s;
    for (; n >= 64; n -= 64, dp += 64, sp += 64)
        memcpy(dp, sp, 64);
    if (n & 32) {
        memcpy(dp, sp, 32);
        dp += 32, sp += 32;
    }
    if (n & 16) {
        memcpy(dp, sp, 16);
        dp += 16, sp += 16;
    }
    if (n & 8) {
        memcpy(dp, sp, 8);
        dp += 8, sp += 8;
    }
    if (n & 4)
        memcpy(dp, sp, 4);
}

static inline void zero_run(void *d, size_t n)
{
    char *dp = d;
    for (; n >= 64; n -= 64, dp += 64)
        memset(dp, 0, 64);
    if (n & 32) {
        memset(dp, 0, 32);
        dp += 32;
    }
    if (n & 16) {
        memset(dp, 0, 16);
        dp += 16;
    }
    if (n & 8) {
        memset(dp, 0, 8);
        dp += 8;
    }
    if (n & 4)
        memset(dp, 0, 4);
}

#define DEFINE_CONV_HELPERS(T, SFX)                                                               \
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
    /* Scatter-add one column row (channel o, tap kh, kw) of a transposed conv into the output    \
     * plane yc (OH x OW); src holds H*W values. */                                               \
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

DEFINE_CONV_HELPERS(float, f32)
DEFINE_CONV_HELPERS(double, f64)

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

#define DIRECT_NARROW 32
#if defined(__AVX512F__)
#define DIRECT_WIDE 64
#else
#define DIRECT_WIDE 32
#endif

#define DEFINE_DIRECT_BLOCK(T, SFX, COB, NAME, VB)                                                \
    __attribute__((optimize("fp-contract=fast"))) static void dblock_##SFX##_##COB##NAME(         \
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
    __attribute__((optimize("fp-contract=fast"))) static void cblock_##SFX##_##CV##x##PB(         \
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

#if DIRECT_WIDE == 64
#define CBLOCK_AVAILABLE 1
DEFINE_CBLOCK(float, f32, 4, 6)
DEFINE_CBLOCK(float, f32, 2, 8)
DEFINE_CBLOCK(float, f32, 1, 8)
DEFINE_CBLOCK(double, f64, 4, 6)
DEFINE_CBLOCK(double, f64, 2, 8)
DEFINE_CBLOCK(double, f64, 1, 8)
#else
#define CBLOCK_AVAILABLE 0
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
    const int64_t plane = j->Hp * j->Wp, HW = g->H * g->W;
    const size_t es = j->es;
    for (int64_t t = begin; t < end; t++) {
        char *dst = j->xp + (size_t)(t * plane) * es;
        const char *src = j->x + (size_t)((j->n0 * g->C + t) * HW) * es;
        memset(dst, 0, (size_t)plane * es);
        for (int64_t ih = 0; ih < g->H; ih++)
            memcpy(dst + (size_t)((ih + g->pt) * j->Wp + g->pl) * es,
                   src + (size_t)(ih * g->W) * es, (size_t)g->W * es);
    }
}

#define CB_CHUNK_BYTES ((size_t)16 << 20) /* padded samples per chunk */
#define CB_WEIGHT_BYTES ((size_t)768 << 10) /* a channel block's weights, to stay in L2 */
#define CB_MAX_TAPS 64                       /* kernels up to 8x8 */

static int conv_cblock(const conv_geom *g, fern_dtype dt, const void *x, const void *w,
                       const void *bias, void *y)
{
    const size_t es = fern_dtype_size(dt);
    const int64_t L = DIRECT_WIDE / (int64_t)es, G = g->G, cin_g = g->C / G, og = g->O / G;
    const int64_t KK = g->KH * g->KW, P = g->OH * g->OW;
    cb_job j = {.g = g, .dt = dt, .es = es, .x = x, .y = y, .lanes = L};
    int64_t taps[CB_MAX_TAPS];
    const int64_t nlive = live_taps(g, taps), ntaps = cin_g * nlive;
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
        memset(wt, 0, wt_bytes);
        memset(bp, 0, bp_bytes);
        for (int64_t grp = 0; grp < G; grp++)
            for (int64_t o = 0; o < og; o++) {
                const int64_t co = grp * og + o;
                for (int64_t r = 0; r < ntaps; r++) /* w[co][ci][tap] -> wt[grp][ci][live tap][o] */
                    memcpy(wt + (size_t)((grp * ntaps + r) * j.opad + o) * es,
                           (const char *)w +
                               (size_t)((co * cin_g + r / nlive) * KK + taps[r % nlive]) * es,
                           es);
                if (bias)
                    memcpy(bp + (size_t)(grp * j.opad + o) * es,
                           (const char *)bias + (size_t)co * es, es);
            }
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
static int cblock_suits(const conv_geom *g, size_t es)
{
    const int64_t cin_g = g->C / g->G, og = g->O / g->G, KK = g->KH * g->KW;
    if (og < (int64_t)(DIRECT_WIDE / es) || KK > CB_MAX_TAPS)
        return 0;
    int64_t taps[CB_MAX_TAPS];
    if (cin_g * live_taps(g, taps) < 64)
        return 0;
    const int pointwise = KK == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 &&
                          g->pb == 0 && g->pr == 0;
    return !(pointwise && g->OH * g->OW >= 1024);
}
#endif

/* Whether the row-vectorized direct kernel is the better choice. */
static int direct_suits(const conv_geom *g, size_t es)
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
static int conv_direct(const conv_geom *g, fern_dtype dt, const void *x, const void *w,
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
    memset(wt, 0, wt_bytes);
    memset(bp, 0, bp_bytes);
    for (int64_t grp = 0; grp < G; grp++)
        for (int64_t o = 0; o < og; o++) {
            int64_t co = grp * og + o;
            for (int64_t r = 0; r < cin_g * KK; r++) /* w[co][ci][tap] -> wt[grp][ci][tap][o] */
                memcpy(wt + (size_t)((grp * cin_g * KK + r) * opad + o) * es,
                       (const char *)w + (size_t)(co * cin_g * KK + r) * es, es);
            if (bias)
                memcpy(bp + (size_t)(grp * opad + o) * es, (const char *)bias + (size_t)co * es,
                       es);
        }
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
    return atomic_load(&failed) ? worker_oom(g) : 0;
}

/* C (M x N, ldc) = A (M x K) @ B (K x N) with optional transposes, beta 0 or 1. */
static void conv_gemm(fern_dtype dt, int ta, int M, int N, int K, const void *A, int lda,
                      const void *B, int ldb, void *C, int ldc, double beta)
{
    enum CBLAS_TRANSPOSE t = ta ? CblasTrans : CblasNoTrans;
    if (dt == FERN_F32)
        cblas_sgemm(CblasRowMajor, t, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, (float)beta, C,
                    ldc);
    else
        cblas_dgemm(CblasRowMajor, t, CblasNoTrans, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
}

/* ---- forward conv ------------------------------------------------------ */

/* OpenBLAS runs a gemm on one thread when M*N*K <= 65536 * 4 (interface/gemm.c,
 * GEMM_MULTITHREAD_THRESHOLD); only such gemms are issued from fern's workers. */
#define BLAS_ST_GEMM_MNK 262144.0
/* Large regime: a per-sample gemm smaller than this many multiply-adds, or
 * narrower than CONV_MIN_N columns, is merged with the next samples'. */
#define CONV_TARGET_MNK (1 << 23)
#define CONV_MIN_N 1024
#define CONV_BUF_CAP ((int64_t)1 << 22) /* elements per scratch buffer */

typedef struct {
    const conv_geom *g;
    fern_dtype dt;
    size_t es;
    const char *x, *w, *bias; /* w: (O, cin_g * L), the live taps only */
    char *y;
    const int64_t *taps;      /* live kernel taps, kh * KW + kw          */
    int64_t L, CKK, spb;      /* live taps, cin_g * L, samples per gemm  */
    char *col, *tmp;
    int64_t n0, nb, grp, ld;  /* chunk start and size, group, col row length */
    int pointwise;            /* gemm straight on x (1x1, stride 1, no pad) */
    atomic_int *failed;       /* set by a task that could not allocate */
} fwd_job;

/* im2col of rows [r0, r1) of CKK (input channel ci of the group, live tap),
 * each for the nb samples of the chunk. */
static void im2col_rows(const fwd_job *j, char *col, int64_t r0, int64_t r1)
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

static void im2col_task(void *ctx, int64_t begin, int64_t end)
{
    const fwd_job *j = ctx;
    im2col_rows(j, j->col, begin, end);
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
        im2col_rows(j, col, 0, j->CKK);
    const char *A = j->w + (size_t)(j->grp * og * j->CKK) * j->es;
    if (j->nb == 1) {
        char *C = j->y + (size_t)((j->n0 * g->O + j->grp * og) * P) * j->es;
        conv_gemm(j->dt, 0, (int)og, (int)P, (int)j->CKK, A, (int)j->CKK, B, (int)P, C, (int)P,
                  0.0);
        if (j->bias)
            scatter_rows(j, NULL, 0, og);
    } else {
        conv_gemm(j->dt, 0, (int)og, (int)j->ld, (int)j->CKK, A, (int)j->CKK, B, (int)j->ld, tmp,
                  (int)j->ld, 0.0);
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

static void compact_weight(const conv_geom *g, size_t es, const char *w, const int64_t *taps,
                           int64_t L, char *out)
{
    const int64_t KK = g->KH * g->KW, rows = g->O * (g->C / g->G);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t t = 0; t < L; t++)
            memcpy(out + (size_t)(r * L + t) * es, w + (size_t)(r * KK + taps[t]) * es, es);
}

static int conv_forward(const conv_geom *g, fern_dtype dt, const void *x, const void *w,
                        const void *bias, void *y)
{
    const int64_t N = g->N, G = g->G, cin_g = g->C / G, og = g->O / G;
    const int64_t KK = g->KH * g->KW, P = g->OH * g->OW;
    const size_t es = fern_dtype_size(dt);
    fwd_job j = {.g = g, .dt = dt, .es = es, .x = x, .w = w, .bias = bias, .y = y};

    if (cin_g == 0) { /* no input channels: the output is the bias */
        fern_parallel_for(N * g->O, grain_for(P), fill_bias_task, &j);
        return 0;
    }
#if CBLOCK_AVAILABLE
    if (cblock_suits(g, es))
        return conv_cblock(g, dt, x, w, bias, y);
#endif
    if (direct_suits(g, es))
        return conv_direct(g, dt, x, w, bias, y);
    /* One input channel per group (depthwise, strided): a gemm would have
     * K = KH*KW and M = O/G, too thin for BLAS; convolve plane by plane. */
    if (cin_g == 1 && og <= 4) {
        fern_parallel_for(N * g->O, grain_for(P * KK), direct_task, &j);
        return 0;
    }

    int64_t *taps = fern_alloc(FERN_CPU, (size_t)KK * sizeof *taps);
    if (!taps)
        return -1;
    j.taps = taps;
    j.L = live_taps(g, taps);
    j.CKK = cin_g * j.L;
    char *wc = NULL;
    size_t wc_bytes = 0;
    if (j.L < KK) { /* drop the taps that only ever see padding */
        wc_bytes = (size_t)(g->O * j.CKK) * es;
        if (!(wc = fern_alloc(FERN_CPU, wc_bytes))) {
            fern_free(FERN_CPU, taps, (size_t)KK * sizeof *taps);
            return -1;
        }
        compact_weight(g, es, w, taps, j.L, wc);
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
            rc = worker_oom(g);
        goto done;
    }

    /* Large regime: gemms on the calling thread (OpenBLAS threads them),
     * im2col and scatter on fern's pool. */
    int64_t nb = 1;
    if (per < CONV_TARGET_MNK || P < CONV_MIN_N) {
        int64_t a = (int64_t)(CONV_TARGET_MNK / per) + 1, b = (CONV_MIN_N + P - 1) / P;
        nb = a > b ? a : b;
        int64_t cap = CONV_BUF_CAP / (j.CKK * P > og * P ? j.CKK * P : og * P);
        if (nb > cap)
            nb = cap;
        if (nb > N)
            nb = N;
        if (nb < 1)
            nb = 1;
    }
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
                    fern_parallel_for(j.CKK, grain_for(j.nb * P), im2col_task, &j);
                const char *A = j.w + (size_t)(j.grp * og * j.CKK) * es;
                if (nb == 1) {
                    char *C = (char *)y + (size_t)((n0 * g->O + j.grp * og) * P) * es;
                    conv_gemm(dt, 0, (int)og, (int)P, (int)j.CKK, A, (int)j.CKK, B, (int)P, C,
                              (int)P, 0.0);
                    if (bias) {
                        j.tmp = NULL;
                        fern_parallel_for(og, grain_for(P), scatter_task, &j);
                    }
                } else {
                    conv_gemm(dt, 0, (int)og, (int)j.ld, (int)j.CKK, A, (int)j.CKK, B, (int)j.ld,
                              tmp, (int)j.ld, 0.0);
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

static int conv_kernel_common(fern_op_call *c, int kind)
{
    conv_geom g;
    if (conv_setup(c, kind, &g))
        return -1;
    return conv_forward(&g, c->in[0]->dtype, fern_tensor_data(c->in[0]),
                        fern_tensor_data(c->in[1]), c->in[2] ? fern_tensor_data(c->in[2]) : NULL,
                        fern_tensor_data(c->out[0]));
}

static int conv1d_kernel(fern_op_call *c) { return conv_kernel_common(c, CONV1D); }
static int conv2d_kernel(fern_op_call *c) { return conv_kernel_common(c, CONV2D); }

/* ---- transposed conv --------------------------------------------------- */

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

static int convt2d_kernel(fern_op_call *c)
{
    conv_geom g;
    if (conv_setup(c, CONVT2D, &g))
        return -1;
    const fern_dtype dt = c->in[0]->dtype;
    const size_t es = fern_dtype_size(dt);
    const int64_t N = g.N, G = g.G, cin_g = g.C / G, og = g.O / G, KK = g.KH * g.KW;
    const int64_t R = og * KK, HW = g.H * g.W, P = g.OH * g.OW;
    const char *x = fern_tensor_data(c->in[0]), *w = fern_tensor_data(c->in[1]);
    char *y = fern_tensor_data(c->out[0]);

    fwd_job fj = {.g = &g, .dt = dt, .es = es, .y = y,
                  .bias = c->in[2] ? fern_tensor_data(c->in[2]) : NULL};
    fern_parallel_for(N * g.O, grain_for(P), fill_bias_task, &fj);
    if (cin_g == 0 || HW == 0 || N == 0)
        return 0;

    const double per = (double)R * (double)cin_g * (double)HW;
    int64_t nb = 1;
    if (per < CONV_TARGET_MNK || HW < CONV_MIN_N) {
        int64_t a = (int64_t)(CONV_TARGET_MNK / per) + 1, b = (CONV_MIN_N + HW - 1) / HW;
        nb = a > b ? a : b;
        int64_t cap = CONV_BUF_CAP / (R * HW > cin_g * HW ? R * HW : cin_g * HW);
        if (nb > cap)
            nb = cap;
        if (nb > N)
            nb = N;
        if (nb < 1)
            nb = 1;
    }
    size_t col_bytes = (size_t)(R * nb * HW) * es;
    size_t xb_bytes = nb > 1 ? (size_t)(cin_g * nb * HW) * es : 0;
    char *col = fern_alloc(FERN_CPU, col_bytes);
    char *xb = xb_bytes ? fern_alloc(FERN_CPU, xb_bytes) : NULL;
    if (!col || (xb_bytes && !xb)) {
        fern_free(FERN_CPU, col, col_bytes);
        fern_free(FERN_CPU, xb, xb_bytes);
        return -1;
    }
    tr_job j = {.g = &g, .dt = dt, .es = es, .x = x, .y = y, .col = col, .xb = xb};
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
                B = x + (size_t)((n0 * g.C + grp * cin_g) * HW) * es;
            }
            /* col (R x nb*HW) = W_g^T @ x_g; W_g is stored (cin_g x R) */
            const char *A = w + (size_t)(grp * cin_g * R) * es;
            conv_gemm(dt, 1, (int)R, (int)j.ld, (int)cin_g, A, (int)R, B, (int)j.ld, col,
                      (int)j.ld, 0.0);
            fern_parallel_for(j.nb * og, grain_for(KK * HW), col2im_task, &j);
        }
    }
    fern_free(FERN_CPU, col, col_bytes);
    fern_free(FERN_CPU, xb, xb_bytes);
    return 0;
}

/* ---- weight gradient ---------------------------------------------------
 * conv2d_weight_grad(x, gy) = dL/dw of a conv2d with input x (N, C, H, W)
 * and output cotangent gy (N, O, OH, OW):
 *   gw[o][c][kh][kw] = sum_{n, oh, ow} gy[n][o][oh][ow] *
 *                      x[n][grp*C/G + c][oh*sh - pt + kh*dh][ow*sw - pl + kw*dw]
 * (positions outside x read zero; gy's size is taken as given, so only the
 * top/left pads matter). Taps that only ever read padding get zero. AVX-512
 * builds use the direct kernel further below (1.5-2x the gemms below per
 * core on ResNet layers, 3-4x on LeNet's). Otherwise, per group, gw is
 * gy_g (O/G x n*P) @ col^T with col the forward's im2col (C/G * taps x n*P):
 * the same im2col, then gemms that accumulate (beta 1) over chunks of
 * samples. Small per-sample gemms (LeNet) run on fern's threads, each thread
 * summing its samples into its own partial gw, reduced at the end; large
 * ones run on the calling thread (OpenBLAS threads each gemm) while im2col
 * and the gathering of gy's rows run on fern's pool. */

static void wg_gemm(fern_dtype dt, int M, int N, int K, const void *A, int lda, const void *B,
                    int ldb, void *C, int ldc)
{
    if (dt == FERN_F32)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, lda, B, ldb, 1.0f,
                    C, ldc);
    else
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0, A, lda, B, ldb, 1.0, C,
                    ldc);
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
        fern_parallel_for(f->CKK, grain_for(f->nb * P), im2col_task, (void *)f);
    } else {
        im2col_rows(f, col, 0, f->CKK);
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

#if CBLOCK_AVAILABLE
static int conv_wgrad_direct(const conv_geom *g, fern_dtype dt, const void *x, const void *gy,
                             void *gw, const int64_t *taps, int64_t nlive);
#endif

static int conv_wgrad(const conv_geom *g, fern_dtype dt, const void *x, const void *gy, void *gw)
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
    j.f.L = live_taps(g, taps);
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
#if CBLOCK_AVAILABLE /* the direct kernel beats the gemms 1.5-2x (LeNet 3-4x) */
    rc = conv_wgrad_direct(g, dt, x, gy, gw, taps, j.f.L);
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
                rc = worker_oom(g);
            else
                fern_parallel_for(j.nacc, 4096, wg_reduce_task, &j);
        }
        fern_free(FERN_CPU, j.partials, part_bytes);
    } else {
        /* large regime: gemms on the calling thread, chunks of nb samples */
        int64_t nb = 1;
        if (per < CONV_TARGET_MNK || P < CONV_MIN_N) {
            int64_t a = (int64_t)(CONV_TARGET_MNK / per) + 1, b = (CONV_MIN_N + P - 1) / P;
            nb = a > b ? a : b;
            int64_t cap = CONV_BUF_CAP / ((j.f.CKK > og ? j.f.CKK : og) * P);
            if (nb > cap)
                nb = cap;
            if (nb > N)
                nb = N;
            if (nb < 1)
                nb = 1;
        }
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

#if CBLOCK_AVAILABLE
/* ---- direct weight gradient (AVX-512 builds) ----------------------------
 * gw_g^T (cin_g * taps x og) = col (cin_g * taps x positions) @ gT (positions
 * x og), with col never built: like the channel-vectorized forward kernel
 * with positions and taps swapping roles. A block holds TB rows r (input
 * channel, tap) x CV vectors of output channels in registers; for every
 * position q of its slice it loads CV vectors of gy^T (gT, o contiguous) and
 * broadcasts TB input values x_padded[base[q] + toff[r]]. gy is transposed
 * per chunk of samples into gT (o padded to the block width), the input
 * zero padded as for the forward (wide enough for every read), and slices of
 * the positions add into their own partial sums, reduced at the end. */

#define DEFINE_WBLOCK(T, SFX, VB, CV, TB)                                                         \
    __attribute__((optimize("fp-contract=fast"))) static void wblock_##SFX##_##VB##_##CV##x##TB(  \
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
    const int64_t plane = j->Hp * j->Wp, HW = g->H * g->W;
    const size_t es = j->es;
    for (int64_t t = begin; t < end; t++) {
        char *dst = j->xp + (size_t)(t * plane) * es;
        const char *src = j->x + (size_t)((j->n0 * g->C + t) * HW) * es;
        memset(dst, 0, (size_t)plane * es);
        for (int64_t ih = 0; ih < g->H; ih++)
            memcpy(dst + (size_t)((ih + g->pt) * j->Wp + g->pl) * es,
                   src + (size_t)(ih * g->W) * es, (size_t)g->W * es);
    }
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
static int conv_wgrad_direct(const conv_geom *g, fern_dtype dt, const void *x, const void *gy,
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

/* Attributes: kernel (kh, kw), stride, pads (top, left, bottom, right, or
 * symmetric (h, w)), dilation, groups. */
static int wgrad_setup(const fern_op_call *c, conv_geom *g)
{
    const char *op = "conv2d_weight_grad";
    const fern_tensor *x = c->in[0], *gy = c->in[1];
    const fern_attr *A = c->attrs;
    char dx[128], dg[128];
    fern__desc(x, dx, sizeof dx);
    fern__desc(gy, dg, sizeof dg);
    if (x->ndim != 4 || gy->ndim != 4) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: expected a 4-D input (N, C, H, W) and a 4-D output gradient "
                       "(N, O, OH, OW), got %s and %s",
                       op, dx, dg);
        return -1;
    }
    if (!fern_dtype_is_float(x->dtype))
        return fern__err_dtype(c, x, "expected a float input (f32, f64, f16, bf16)");
    if (gy->dtype != x->dtype) {
        fern_set_error(FERN_ERR_INVALID, "%s: input and output gradient must have the same dtype, "
                       "got %s and %s", op, dx, dg);
        return -1;
    }
    if (gy->shape[0] != x->shape[0]) {
        fern_set_error(FERN_ERR_INVALID, "%s: batch sizes differ: input %s, output gradient %s", op,
                       dx, dg);
        return -1;
    }
    memset(g, 0, sizeof *g);
    g->op = op;
    g->batched = 1;
    g->N = x->shape[0], g->C = x->shape[1], g->H = x->shape[2], g->W = x->shape[3];
    g->O = gy->shape[1], g->OH = gy->shape[2], g->OW = gy->shape[3];
    int64_t k[2], st[2], dl[2], pd[4];
    if (A[0].n == 0) {
        fern_set_error(FERN_ERR_INVALID, "%s: attribute 'kernel' is required", op);
        return -1;
    }
    if (get_ints(op, &A[0], "kernel", 2, 1, 1, k) || get_ints(op, &A[1], "stride", 2, 1, 1, st) ||
        get_ints(op, &A[3], "dilation", 2, 1, 1, dl))
        return -1;
    if (A[2].n == 2) {
        pd[0] = pd[2] = A[2].ints[0];
        pd[1] = pd[3] = A[2].ints[1];
        if (pd[0] < 0 || pd[1] < 0) {
            fern_set_error(FERN_ERR_INVALID, "%s: attribute 'pads' must be >= 0", op);
            return -1;
        }
    } else if (get_ints(op, &A[2], "pads", 4, 0, 0, pd)) {
        return -1;
    }
    g->KH = k[0], g->KW = k[1];
    g->sh = st[0], g->sw = st[1], g->dh = dl[0], g->dw = dl[1];
    g->pt = pd[0], g->pl = pd[1], g->pb = pd[2], g->pr = pd[3];
    g->G = A[4].i;
    if (g->G < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: groups must be >= 1, got %lld", op, (long long)g->G);
        return -1;
    }
    if (g->C % g->G || g->O % g->G) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: groups (%lld) must divide the input channels and the output gradient's "
                       "channels: input %s, output gradient %s",
                       op, (long long)g->G, dx, dg);
        return -1;
    }
    return 0;
}

static int wgrad_infer(fern_op_call *c)
{
    conv_geom g;
    if (wgrad_setup(c, &g))
        return -1;
    int64_t s[4] = {g.O, g.C / g.G, g.KH, g.KW};
    fern__set_out(c, 0, c->in[0]->dtype, 4, s);
    return 0;
}

static int wgrad_kernel(fern_op_call *c)
{
    conv_geom g;
    if (wgrad_setup(c, &g))
        return -1;
    return conv_wgrad(&g, c->in[0]->dtype, fern_tensor_data(c->in[0]), fern_tensor_data(c->in[1]),
                      fern_tensor_data(c->out[0]));
}

/* ---- op definitions ---------------------------------------------------- */

static const fern_attr_spec conv_attrs[] = {{"stride", FERN_ATTR_INTS, 0, NULL},
                                            {"pads", FERN_ATTR_INTS, 0, NULL},
                                            {"dilation", FERN_ATTR_INTS, 0, NULL},
                                            {"groups", FERN_ATTR_INT, 1, NULL}};

static const fern_attr_spec convt_attrs[] = {{"stride", FERN_ATTR_INTS, 0, NULL},
                                             {"pads", FERN_ATTR_INTS, 0, NULL},
                                             {"dilation", FERN_ATTR_INTS, 0, NULL},
                                             {"groups", FERN_ATTR_INT, 1, NULL},
                                             {"output_padding", FERN_ATTR_INTS, 0, NULL}};

static const fern_op_def op_conv1d = {
    .name = "conv1d", .n_inputs = 3, .n_optional = 1, .n_outputs = 1, .attrs = conv_attrs,
    .n_attrs = 4, .infer = conv1d_infer, .kernel = {[FERN_CPU] = conv1d_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "1-D convolution: x (N,C,L), w (O,C/groups,K), optional bias (O); "
           "stride, pads (left, right), dilation, groups",
    .grad = conv1d_grad};

static const fern_op_def op_conv2d = {
    .name = "conv2d", .n_inputs = 3, .n_optional = 1, .n_outputs = 1, .attrs = conv_attrs,
    .n_attrs = 4, .infer = conv2d_infer, .kernel = {[FERN_CPU] = conv2d_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "2-D convolution: x (N,C,H,W), w (O,C/groups,KH,KW), optional bias (O); "
           "stride (h,w), pads (top,left,bottom,right), dilation (h,w), groups",
    .grad = conv2d_grad};

static const fern_op_def op_conv_transpose2d = {
    .name = "conv_transpose2d", .n_inputs = 3, .n_optional = 1, .n_outputs = 1,
    .attrs = convt_attrs, .n_attrs = 5, .infer = convt2d_infer,
    .kernel = {[FERN_CPU] = convt2d_kernel}, .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "2-D transposed convolution: x (N,C,H,W), w (C,O/groups,KH,KW), optional bias (O); "
           "stride, pads (top,left,bottom,right), dilation, groups, output_padding",
    .grad = convt2d_grad};

static const fern_attr_spec wgrad_attrs[] = {{"kernel", FERN_ATTR_INTS, 0, NULL},
                                             {"stride", FERN_ATTR_INTS, 0, NULL},
                                             {"pads", FERN_ATTR_INTS, 0, NULL},
                                             {"dilation", FERN_ATTR_INTS, 0, NULL},
                                             {"groups", FERN_ATTR_INT, 1, NULL}};

static const fern_op_def op_conv2d_weight_grad = {
    .name = "conv2d_weight_grad", .n_inputs = 2, .n_outputs = 1, .attrs = wgrad_attrs,
    .n_attrs = 5, .infer = wgrad_infer, .kernel = {[FERN_CPU] = wgrad_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "gradient of conv2d w.r.t. its weight: x (N,C,H,W), output gradient gy (N,O,OH,OW) -> "
           "(O,C/groups,KH,KW); kernel (kh,kw), stride, pads, dilation, groups",
    .grad = wgrad_grad};

/* ---- public functions -------------------------------------------------- */

fern_conv_opts fern_conv_opts_default(void)
{
    fern_conv_opts o;
    memset(&o, 0, sizeof o);
    o.stride[0] = o.stride[1] = 1;
    o.dilation[0] = o.dilation[1] = 1;
    o.groups = 1;
    return o;
}

/* "same" padding for spatial dim d: total dilation*(k-1), the odd one at the end. */
static void same_pads(int64_t k, int64_t dil, int64_t *begin, int64_t *end)
{
    int64_t total = dil * (k - 1);
    *begin = total / 2;
    *end = total - *begin;
}

fern_tensor *fern_conv1d(fern_tensor *x, fern_tensor *w, fern_tensor *bias,
                         const fern_conv_opts *opts)
{
    fern_conv_opts o = opts ? *opts : fern_conv_opts_default();
    fern_tensor *in[3] = {x, w, bias};
    int64_t pads[2] = {o.padding[0], o.padding[0]};
    if (o.padding_same) {
        if (o.stride[0] != 1) {
            fern_set_error(FERN_ERR_INVALID,
                           "conv1d: padding_same is only supported with stride 1, got stride %lld",
                           (long long)o.stride[0]);
            return NULL;
        }
        if (w && w->ndim == 3)
            same_pads(w->shape[2], o.dilation[0], &pads[0], &pads[1]);
    }
    fern_attr a[4] = {fern__attr_ints(&o.stride[0], 1), fern__attr_ints(pads, 2),
                      fern__attr_ints(&o.dilation[0], 1), fern__attr_int(o.groups)};
    return fern__op1(&op_conv1d, 3, in, a);
}

fern_tensor *fern_conv2d(fern_tensor *x, fern_tensor *w, fern_tensor *bias,
                         const fern_conv_opts *opts)
{
    fern_conv_opts o = opts ? *opts : fern_conv_opts_default();
    fern_tensor *in[3] = {x, w, bias};
    int64_t pads[4] = {o.padding[0], o.padding[1], o.padding[0], o.padding[1]};
    if (o.padding_same) {
        if (o.stride[0] != 1 || o.stride[1] != 1) {
            fern_set_error(FERN_ERR_INVALID,
                           "conv2d: padding_same is only supported with stride 1, got stride "
                           "(%lld, %lld)",
                           (long long)o.stride[0], (long long)o.stride[1]);
            return NULL;
        }
        if (w && w->ndim == 4) {
            same_pads(w->shape[2], o.dilation[0], &pads[0], &pads[2]);
            same_pads(w->shape[3], o.dilation[1], &pads[1], &pads[3]);
        }
    }
    fern_attr a[4] = {fern__attr_ints(o.stride, 2), fern__attr_ints(pads, 4),
                      fern__attr_ints(o.dilation, 2), fern__attr_int(o.groups)};
    return fern__op1(&op_conv2d, 3, in, a);
}

fern_tensor *fern_conv_transpose2d(fern_tensor *x, fern_tensor *w, fern_tensor *bias,
                                   const fern_conv_opts *opts)
{
    fern_conv_opts o = opts ? *opts : fern_conv_opts_default();
    fern_tensor *in[3] = {x, w, bias};
    if (o.padding_same) {
        fern_set_error(FERN_ERR_INVALID, "conv_transpose2d: padding_same is not supported");
        return NULL;
    }
    int64_t pads[4] = {o.padding[0], o.padding[1], o.padding[0], o.padding[1]};
    fern_attr a[5] = {fern__attr_ints(o.stride, 2), fern__attr_ints(pads, 4),
                      fern__attr_ints(o.dilation, 2), fern__attr_int(o.groups),
                      fern__attr_ints(o.output_padding, 2)};
    return fern__op1(&op_conv_transpose2d, 3, in, a);
}

/* ---- gradient rules ----------------------------------------------------
 * conv1d runs as a conv2d over a unit height (the unsqueezed tensors), and
 * unbatched inputs get a unit batch; then, for y = conv2d(x, w) + b:
 *  - dx: the transposed conv of gy with the same weight (conv_input_grad):
 *    stride-1 convs whose pads allow it use conv2d of gy with the flipped,
 *    channel-swapped weight (the fast direct kernels); others
 *    conv_transpose2d with the top/left pads cropped, and the bottom/right
 *    crop or output_padding (or zero padding) that gives back x's exact size.
 *  - dw: conv2d_weight_grad(x, gy) (the op above).
 *  - db: gy summed over everything but the channels.
 * conv_transpose2d is the adjoint of the input gradient: dx = conv2d(gy, w)
 * (cropped to x's size), dw = conv2d_weight_grad(gy, x), db as above.
 * conv2d_weight_grad is linear in each input: d/dgy = conv2d(x, gw_bar),
 * d/dx = conv_input_grad(gy, gw_bar); so all orders compose from conv2d,
 * conv_transpose2d and conv2d_weight_grad. Rules skip inputs no tape
 * tracks (wants_grad). */

static int wants_grad(const fern_tensor *t) { return t && t->autograd != NULL; }

static fern_tensor *call_conv2d(fern_tensor *x, fern_tensor *w, const int64_t *s,
                                const int64_t *pads, const int64_t *d, int64_t G)
{
    fern_tensor *in[3] = {x, w, NULL};
    fern_attr a[4] = {fern__attr_ints(s, 2), fern__attr_ints(pads, 4), fern__attr_ints(d, 2),
                      fern__attr_int(G)};
    return fern__op1(&op_conv2d, 3, in, a);
}

static fern_tensor *call_convt2d(fern_tensor *x, fern_tensor *w, const int64_t *s,
                                 const int64_t *pads, const int64_t *d, int64_t G,
                                 const int64_t *opad)
{
    fern_tensor *in[3] = {x, w, NULL};
    fern_attr a[5] = {fern__attr_ints(s, 2), fern__attr_ints(pads, 4), fern__attr_ints(d, 2),
                      fern__attr_int(G), fern__attr_ints(opad, 2)};
    return fern__op1(&op_conv_transpose2d, 3, in, a);
}

static fern_tensor *call_wgrad(fern_tensor *x, fern_tensor *gy, int64_t KH, int64_t KW,
                               const int64_t *s, const int64_t *pads, const int64_t *d, int64_t G)
{
    fern_tensor *in[2] = {x, gy};
    int64_t k[2] = {KH, KW};
    fern_attr a[5] = {fern__attr_ints(k, 2), fern__attr_ints(s, 2), fern__attr_ints(pads, 4),
                      fern__attr_ints(d, 2), fern__attr_int(G)};
    return fern__op1(&op_conv2d_weight_grad, 2, in, a);
}

static fern_tensor *slice_to(fern_tensor *t, int64_t H, int64_t W)
{
    if (t && t->shape[2] > H)
        t = fern_slice(t, 2, 0, H, 1);
    if (t && t->shape[3] > W)
        t = fern_slice(t, 3, 0, W, 1);
    return t;
}

/* The input x (N, C, H, W) cotangent of a conv2d with weight w (O, C/G, KH,
 * KW), stride, top/left pads, dilation and groups from g, given the output
 * cotangent gy (N, O, OH, OW) of any size. */
static fern_tensor *conv_input_grad(fern_tensor *gy, fern_tensor *w, int64_t H, int64_t W,
                                    const conv_geom *g)
{
    if (!gy || !w)
        return NULL;
    const int64_t N = gy->shape[0], C = w->shape[1] * g->G;
    const int64_t o[2] = {gy->shape[2], gy->shape[3]}, k[2] = {w->shape[2], w->shape[3]};
    const int64_t n[2] = {H, W}, s[2] = {g->sh, g->sw}, d[2] = {g->dh, g->dw};
    const int64_t p0[2] = {g->pt, g->pl};
    int64_t end[2], total[2];
    for (int i = 0; i < 2; i++) {
        total[i] = (o[i] - 1) * s[i] - p0[i] + d[i] * (k[i] - 1) + 1; /* rows reached, +1 */
        end[i] = n[i] - o[i] + p0[i]; /* stride 1: the bottom/right pad of the flipped conv */
    }
    if (N == 0 || C == 0 || w->shape[0] == 0 || o[0] == 0 || o[1] == 0 || total[0] < 1 ||
        total[1] < 1) { /* no output position reads x */
        int64_t shape[4] = {N, C, H, W};
        return fern_zeros(gy->dtype, 4, shape);
    }
    const int64_t G = g->G, og = w->shape[0] / G, cg = w->shape[1];
    int64_t fb[2] = {d[0] * (k[0] - 1) - p0[0], d[1] * (k[1] - 1) - p0[1]};
    if (s[0] == 1 && s[1] == 1 && fb[0] >= 0 && fb[1] >= 0 && end[0] >= 0 && end[1] >= 0) {
        /* gx[ih] = sum_k gy[ih + pt - k*d] w[k]: conv2d of gy with the flipped kernel */
        /* w (G*og, cg, KH, KW) -> (G*cg, og, KH, KW), flipped; the flip of the
         * permuted view is the one copy */
        fern_tensor *wf;
        if (G == 1) {
            int perm[4] = {1, 0, 2, 3}, axes[2] = {2, 3};
            wf = fern_flip(fern_permute(w, perm), axes, 2);
        } else {
            int64_t s5[5] = {G, og, cg, k[0], k[1]}, s4[4] = {C, og, k[0], k[1]};
            int perm[5] = {0, 2, 1, 3, 4}, axes[2] = {3, 4};
            wf = fern_reshape(fern_flip(fern_permute(fern_reshape(w, 5, s5), perm), axes, 2), 4, s4);
        }
        int64_t pads[4] = {fb[0], fb[1], end[0], end[1]}, one[2] = {1, 1};
        return call_conv2d(gy, wf, one, pads, d, G);
    }
    int64_t crop[2], opad[2], extra[2];
    for (int i = 0; i < 2; i++) {
        crop[i] = opad[i] = extra[i] = 0;
        if (total[i] >= n[i])
            crop[i] = total[i] - n[i];
        else if (n[i] - total[i] < s[i] || n[i] - total[i] < d[i])
            opad[i] = n[i] - total[i];
        else
            extra[i] = n[i] - total[i];
    }
    int64_t pads[4] = {p0[0], p0[1], crop[0], crop[1]};
    fern_tensor *r = call_convt2d(gy, w, s, pads, d, G, opad);
    if (r && (extra[0] || extra[1])) {
        int64_t pp[4] = {0, extra[1], 0, extra[0]};
        r = fern_pad(r, pp, 4, FERN_PAD_CONSTANT, 0.0);
    }
    return r;
}

static fern_tensor *bias_grad(fern_tensor *gy, int batched)
{
    int axes[3], n = 0;
    for (int d = 0; d < gy->ndim; d++)
        if (d != (batched ? 1 : 0))
            axes[n++] = d;
    return fern_sum(gy, axes, n, 0);
}

static int conv_grad_common(const fern_op_call *c, int kind, fern_tensor *const *gout,
                            fern_tensor **gi)
{
    fern_tensor *x = c->in[0], *w = c->in[1], *b = c->in[2], *gy = gout[0];
    if (!gy)
        return 0;
    conv_geom g;
    if (conv_setup(c, kind, &g))
        return -1;
    fern_tensor *x4 = x, *w4 = w, *g4 = gy;
    if (kind == CONV1D) { /* (N, C, L) -> (N, C, 1, L) */
        x4 = fern_unsqueeze(x, x->ndim - 1);
        w4 = fern_unsqueeze(w, 2);
        g4 = fern_unsqueeze(gy, gy->ndim - 1);
    }
    if (!g.batched) {
        x4 = fern_unsqueeze(x4, 0);
        g4 = fern_unsqueeze(g4, 0);
    }
    if (!x4 || !w4 || !g4)
        return -1;
    const int64_t s[2] = {g.sh, g.sw}, d[2] = {g.dh, g.dw}, pads[4] = {g.pt, g.pl, g.pb, g.pr};
    if (kind == CONVT2D) {
        if (wants_grad(x)) { /* the adjoint of the transposed conv: a conv */
            fern_tensor *r = slice_to(call_conv2d(g4, w4, s, pads, d, g.G), g.H, g.W);
            if (!r || !(gi[0] = fern_reshape(r, x->ndim, x->shape)))
                return -1;
        }
        if (wants_grad(w) &&
            !(gi[1] = call_wgrad(g4, x4, g.KH, g.KW, s, pads, d, g.G)))
            return -1;
    } else {
        if (wants_grad(x)) {
            fern_tensor *r = conv_input_grad(g4, w4, g.H, g.W, &g);
            if (!r || !(gi[0] = fern_reshape(r, x->ndim, x->shape)))
                return -1;
        }
        if (wants_grad(w)) {
            fern_tensor *r = call_wgrad(x4, g4, g.KH, g.KW, s, pads, d, g.G);
            if (!r || !(gi[1] = fern_reshape(r, w->ndim, w->shape)))
                return -1;
        }
    }
    if (b && wants_grad(b) && !(gi[2] = bias_grad(gy, g.batched)))
        return -1;
    return 0;
}

static int conv1d_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    return conv_grad_common(c, CONV1D, g, gi);
}

static int conv2d_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    return conv_grad_common(c, CONV2D, g, gi);
}

static int convt2d_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    return conv_grad_common(c, CONVT2D, g, gi);
}

/* gw = WG(x, gy) is bilinear: <gw_bar, WG(x, gy)> = <gy, conv2d(x, gw_bar)>
 * (the output positions gy has) = <x, conv_input_grad(gy, gw_bar)>. */
static int wgrad_grad(const fern_op_call *c, fern_tensor *const *gout, fern_tensor **gi)
{
    fern_tensor *x = c->in[0], *gy = c->in[1], *gb = gout[0];
    if (!gb)
        return 0;
    conv_geom g;
    if (wgrad_setup(c, &g))
        return -1;
    if (wants_grad(x) && !(gi[0] = conv_input_grad(gy, gb, g.H, g.W, &g)))
        return -1;
    if (wants_grad(gy)) {
        if (g.OH == 0 || g.OW == 0 || g.N == 0) {
            gi[1] = fern_zeros_like(gy);
        } else {
            /* bottom/right pads so that conv2d's output covers gy's positions */
            int64_t ekh = g.dh * (g.KH - 1) + 1, ekw = g.dw * (g.KW - 1) + 1;
            int64_t pb = (g.OH - 1) * g.sh + ekh - g.H - g.pt;
            int64_t pr = (g.OW - 1) * g.sw + ekw - g.W - g.pl;
            int64_t pads[4] = {g.pt, g.pl, pb > 0 ? pb : 0, pr > 0 ? pr : 0};
            const int64_t s[2] = {g.sh, g.sw}, d[2] = {g.dh, g.dw};
            gi[1] = slice_to(call_conv2d(x, gb, s, pads, d, g.G), g.OH, g.OW);
        }
        if (!gi[1])
            return -1;
    }
    return 0;
}

const fern_op_def *const fern_ops_conv[] = {&op_conv1d, &op_conv2d, &op_conv_transpose2d,
                                            &op_conv2d_weight_grad, NULL};
