/* What the convolution family's files share: the geometry of one call, the
 * attribute checks, small inline helpers, and the kernels conv.c's op table
 * reaches. The family is split by job:
 *   conv.c              op definitions, shape inference, public functions,
 *                       gradient rules, the list the registry reads
 *   conv_geom.c         attribute parsing and checks, live taps, the
 *                       weight layouts the kernels read through a view
 *   conv_im2col.c       the forward's kernel choice (fern__conv_forward),
 *                       im2col + gemm, the plane kernel for strided depthwise
 *   conv_direct.c       direct forward kernels: row-vectorized (stride 1
 *                       along W) and channel-vectorized (AVX-512 builds)
 *   conv_fwd_rows.c     direct forward kernel for few output channels per
 *                       group (AVX-512 builds; LeNet's conv1)
 *   conv_onednn.c       f32 conv2d forward through oneDNN's convolution
 *                       primitive, for the shapes where it is faster
 *                       (builds with oneDNN; ResNet's deeper layers)
 *   conv_transpose.c    conv_transpose2d (and conv2d's input gradient): one
 *                       stride-1 forward conv per output phase, or gemm +
 *                       col2im
 *   conv_transpose_cols.c  stride-1 conv_transpose2d on small inputs as a
 *                       gemm and shifted sums, no padding (AVX-512 builds;
 *                       LeNet's conv2 input gradient)
 *   conv_wgrad.c        conv2d_weight_grad: kernel choice, im2col + gemms
 *   conv_wgrad_direct.c conv2d_weight_grad's channel-vectorized kernel
 *                       (AVX-512 builds)
 *   conv_wgrad_rows.c   conv2d_weight_grad's row-vectorized kernel for few
 *                       output channels (AVX-512 builds)
 *   conv_wgrad_sample.c conv2d_weight_grad's per-sample kernel for small
 *                       planes and 9-16 output channels (AVX-512 builds;
 *                       LeNet's conv2)
 * Semantics are torch's throughout. Kernels take f32 or f64 (f16/bf16 run via
 * f32, through the dispatcher) on contiguous inputs. */
#ifndef FERN_CONV_COMMON_H
#define FERN_CONV_COMMON_H

#include <stdatomic.h>
#include <string.h>

#include "op_def.h"

/* One convolution call. For conv_transpose2d, (C, H, W) is the input and
 * (O, OH, OW) the output of the transposed conv. */
typedef struct {
    int64_t N, C, H, W;      /* input (N = 1 when unbatched)              */
    int64_t O, KH, KW;       /* output channels, kernel                   */
    int64_t OH, OW;          /* output spatial size                       */
    int64_t sh, sw, pt, pl, pb, pr, dh, dw, oph, opw, G;
    int batched;
    const char *op;
} conv_geom;

enum { CONV1D, CONV2D, CONVT2D };

/* Vector widths of the direct kernels: 32 bytes, and 64 where the build
 * targets AVX-512 (whose channel-vectorized kernels need 16 f32 lanes). */
#define DIRECT_NARROW 32
#if defined(__AVX512F__)
#define DIRECT_WIDE 64
#define CBLOCK_AVAILABLE 1
#else
#define DIRECT_WIDE 32
#define CBLOCK_AVAILABLE 0
#endif

/* Kernels written as a*b + c on GCC vectors: let GCC fuse them into FMAs
 * (clang fuses within an expression by default, and has no such attribute). */
#if defined(__clang__)
#define CONV_CONTRACT
#else
#define CONV_CONTRACT __attribute__((optimize("fp-contract=fast")))
#endif

/* Small regime: per-sample gemms up to this many multiply-adds (too small
 * to gain from a split across threads) run whole on fern's workers, several
 * samples batched into one gemm. Gemms go through fern__gemm (single-
 * threaded OpenBLAS, larger ones split over fern's pool). */
#define BLAS_ST_GEMM_MNK 262144.0
/* Large regime: a per-sample gemm smaller than this many multiply-adds, or
 * narrower than CONV_MIN_N columns, is merged with the next samples'. */
#define CONV_TARGET_MNK (1 << 23)
#define CONV_MIN_N 1024
#define CONV_BUF_CAP ((int64_t)1 << 22) /* elements per scratch buffer */

/* ---- inline helpers ----------------------------------------------------- */

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

/* Grain (iterations per chunk) so each chunk does about 32K element ops. */
static inline int64_t grain_for(int64_t per_item)
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

/* ---- checks and geometry (conv_geom.c) ----------------------------------
 * Each check returns 0, or -1 with an error naming the op, shapes, dtypes. */

/* conv1d / conv2d / conv_transpose2d (kind): inputs and attributes. */
int fern__conv_setup(const fern_op_call *c, int kind, conv_geom *g);
/* conv2d_weight_grad: x, gy and attributes kernel, stride, pads, dilation, groups. */
int fern__wgrad_setup(const fern_op_call *c, conv_geom *g);
/* Mark the kernel taps (kh * KW + kw) that read the input for at least one
 * output position (on a 1x1 map with 3x3 pad 1, only the centre does);
 * returns their count. */
int64_t fern__conv_live_taps(const conv_geom *g, int64_t *taps);
/* Scratch allocation failed in a worker thread (whose error state the
 * caller cannot see): report it on the calling thread; returns -1. */
int fern__conv_worker_oom(const conv_geom *g);

/* ---- weights ------------------------------------------------------------
 * The forward kernels read the weight w[co][ci][kh][kw] (co = grp * og + o)
 * through a view: element grp*sg + o*so + ci*sc + kh*skh + kw*skw + off of
 * base. A conv2d weight is the plain view; the transposed conv runs forward
 * convs on its weight (C, O/G, KH, KW) flipped, with the channels swapped
 * and, for strides, every s-th tap: views too, so each kernel lays out the
 * weights it needs in one pass over the original. */
typedef struct {
    const void *base;
    int64_t sg, so, sc, skh, skw, off, KW;
} conv_wview;

/* The plain view of a (O, C/G, KH, KW) weight for g. */
static inline conv_wview conv_wview_plain(const conv_geom *g, const void *w)
{
    const int64_t cin_g = g->C / g->G, og = g->O / g->G, KK = g->KH * g->KW;
    conv_wview v = {w, og * cin_g * KK, cin_g * KK, KK, g->KW, 1, 0, g->KW};
    return v;
}

/* Element offset of (group, o, ci, tap = kh * KW + kw) in the view's base. */
static inline int64_t conv_wview_at(const conv_wview *v, int64_t grp, int64_t o, int64_t ci,
                                    int64_t tap)
{
    return grp * v->sg + o * v->so + ci * v->sc + tap / v->KW * v->skh + tap % v->KW * v->skw +
           v->off;
}

/* Whether the view is the contiguous (O, C/G, KH, KW) layout. */
static inline int conv_wview_is_plain(const conv_geom *g, const conv_wview *v)
{
    const conv_wview p = conv_wview_plain(g, v->base);
    return v->so == p.so && v->sc == p.sc && v->skh == p.skh && v->skw == p.skw && v->off == 0 &&
           (g->G == 1 || v->sg == p.sg);
}

/* (conv_geom.c) Samples per gemm in the large regime: enough for about
 * CONV_TARGET_MNK multiply-adds (per: those of one sample) and CONV_MIN_N
 * columns of P positions each, within CONV_BUF_CAP elements of a
 * rows x (nb * P) buffer, at most N, at least 1. */
int64_t fern__conv_batch_chunk(double per, int64_t P, int64_t rows, int64_t N);
/* (conv_geom.c) Planes [begin, end) of x counted from plane `first` (of H x W elements
 * of es bytes), each zero-padded by (pt, pl) into xp's Hp x Wp planes t. */
void fern__conv_pad_planes(const conv_geom *g, const char *x, int64_t first, char *xp, int64_t Hp,
                           int64_t Wp, size_t es, int64_t begin, int64_t end);
/* (conv_geom.c) The weights as (G, C/G, nk, opad): for each group, input
 * channel and tap (taps[k], or every tap when taps is NULL; nk of them) the
 * og output channels contiguous, zero padded to opad. */
void fern__conv_lay_weights(const conv_geom *g, fern_dtype dt, const conv_wview *w,
                            const int64_t *taps, int64_t nk, int64_t opad, void *out);
/* (conv_geom.c) The weights as the contiguous (O, C/G * nk) matrix. */
void fern__conv_compact_weights(const conv_geom *g, fern_dtype dt, const conv_wview *w,
                                const int64_t *taps, int64_t nk, void *out);

/* ---- forward (conv_im2col.c, conv_direct.c, conv_fwd_rows.c) ------------- */

/* y = conv(x, w) + bias for conv1d/conv2d geometry g, the weight read
 * through w; 0, or -1 when out of memory. */
int fern__conv_forward(const conv_geom *g, fern_dtype dt, const void *x, const conv_wview *w,
                       const void *bias, void *y);
/* y (N, O, OH, OW) = bias broadcast (zero without one), on fern's pool. */
void fern__conv_fill_bias(const conv_geom *g, fern_dtype dt, const void *bias, void *y);
/* C (M x N, ldc) = A (M x K) @ B (K x N) with optional transpose of A, beta 0 or 1. */
void fern__conv_gemm(fern_dtype dt, int ta, int M, int N, int K, const void *A, int lda,
                     const void *B, int ldb, void *C, int ldc, double beta);

/* Whether the row-vectorized direct kernel suits g (sw == 1), and the kernel. */
int fern__conv_direct_suits(const conv_geom *g, size_t es);
int fern__conv_direct(const conv_geom *g, fern_dtype dt, const void *x, const conv_wview *w,
                      const void *bias, void *y);
#if CBLOCK_AVAILABLE
/* Whether the channel-vectorized kernel suits g, and the kernel. */
int fern__conv_cblock_suits(const conv_geom *g, size_t es);
int fern__conv_cblock(const conv_geom *g, fern_dtype dt, const void *x, const conv_wview *w,
                      const void *bias, void *y);
/* Whether the kernel for few output channels per group suits g
 * (conv_fwd_rows.c), and the kernel. */
int fern__conv_fwd_rows_suits(const conv_geom *g, fern_dtype dt);
int fern__conv_fwd_rows(const conv_geom *g, const float *x, const conv_wview *w,
                        const float *bias, float *y);
#endif

/* The im2col geometry of a chunk of samples, shared by the forward and the
 * weight gradient's gemm path. */
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
 * each for the nb samples of the chunk, into col (CKK x ld). */
void fern__conv_im2col_rows(const fwd_job *j, char *col, int64_t r0, int64_t r1);
/* parallel_for task over the rows of j->col */
void fern__conv_im2col_task(void *ctx, int64_t begin, int64_t end);

#if FERN_HAVE_DNNL
/* (conv_onednn.c) Whether conv2d g should run through oneDNN, and the
 * forward on the plain weight (O, C/G, KH, KW): 0, or 1 when oneDNN could
 * not run it (the caller then runs fern's kernels). */
int fern__conv_onednn_suits(const conv_geom *g, fern_dtype dt);
int fern__conv_onednn(const conv_geom *g, const float *x, const float *w, const float *bias,
                      float *y);
#endif

/* ---- transposed conv (conv_transpose.c) --------------------------------- */

int fern__conv_transpose(const conv_geom *g, fern_dtype dt, const void *x, const void *w,
                         const void *bias, void *y);
#if CBLOCK_AVAILABLE
/* Whether the gemm-and-shifted-sums kernel suits g (conv_transpose_cols.c),
 * and the kernel. */
int fern__convt_cols_suits(const conv_geom *g, fern_dtype dt);
int fern__convt_cols(const conv_geom *g, const float *x, const float *w, const float *bias,
                     float *y);
#endif

/* ---- weight gradient (conv_wgrad*.c) -------------------------------------- */

/* gw (O, C/G, KH, KW) of a conv2d with input x and output cotangent gy. */
int fern__conv_wgrad(const conv_geom *g, fern_dtype dt, const void *x, const void *gy, void *gw);
#if CBLOCK_AVAILABLE
/* gw (zeroed by the caller) of a conv with nlive >= 1 live taps. */
int fern__conv_wgrad_direct(const conv_geom *g, fern_dtype dt, const void *x, const void *gy,
                            void *gw, const int64_t *taps, int64_t nlive);
/* Whether the row-vectorized kernel for few output channels per group suits
 * g (conv_wgrad_rows.c), and the kernel; gw zeroed by the caller. */
int fern__conv_wgrad_rows_suits(const conv_geom *g, fern_dtype dt, int64_t nlive);
int fern__conv_wgrad_rows(const conv_geom *g, const float *x, const float *gy, float *gw,
                          const int64_t *taps, int64_t nlive);
/* Whether the per-sample kernel for small planes and 9-16 output channels
 * per group suits g (conv_wgrad_sample.c), and the kernel; it writes every
 * tap of gw. */
int fern__conv_wgrad_sample_suits(const conv_geom *g, fern_dtype dt);
int fern__conv_wgrad_sample(const conv_geom *g, const float *x, const float *gy, float *gw);
#endif

#endif /* FERN_CONV_COMMON_H */
