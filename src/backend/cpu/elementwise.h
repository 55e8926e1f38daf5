/* Shared CPU helpers for elementwise kernels: NumPy broadcasting by zero
 * strides, coalescing of adjacent dimensions, a multi-threaded row walker,
 * torch's result-type rule, and conversion of an operand to a compute dtype.
 *
 * An elementwise kernel describes its operands as fern tensors (operand 0 is
 * the output, whose shape is the iteration shape; the inputs broadcast to
 * it), builds a fern_ew_iter, and runs a row function over it. The row
 * function sees `n` elements of every operand at once: ptrs[k] points at
 * operand k's first element of the row and strides[k] is its step in
 * elements (0 for a broadcast operand, 1 when contiguous). Writing the row
 * function with separate loops for the contiguous and broadcast cases lets
 * the compiler vectorize them; the walker calls it once per row, never per
 * element. Adjacent dimensions that are contiguous for every operand merge
 * into one row; an operand that runs across the output's rows (a transposed
 * input) is walked in tiles for cache locality. */
#ifndef FERN_CPU_ELEMENTWISE_H
#define FERN_CPU_ELEMENTWISE_H

#include <math.h>

#include "../../core/internal.h"

#define FERN_EW_MAX_OPS 4 /* the output and up to three inputs */

/* Default parallel grain (elements per chunk) for cheap elementwise work;
 * the walker runs inline below 2 * grain elements. Use a smaller grain for
 * expensive per-element functions (exp, sin, pow ...). */
#define FERN_EW_GRAIN 16384
#define FERN_EW_GRAIN_HEAVY 4096

typedef void (*fern_ew_row_fn)(void *ctx, int64_t n, char *const *ptrs, const int64_t *strides);

typedef struct {
    int n_ops;
    int ndim; /* after dropping size-1 dims and coalescing; >= 1 */
    int64_t numel;
    int64_t shape[FERN_MAX_DIMS];                    /* innermost last       */
    int64_t strides[FERN_EW_MAX_OPS][FERN_MAX_DIMS]; /* in elements          */
    char *data[FERN_EW_MAX_OPS];                     /* element [0,...,0]    */
    size_t esize[FERN_EW_MAX_OPS];
} fern_ew_iter;

/* Build an iterator over ops[0] (the output, any strides) and the inputs
 * ops[1..n_ops), each broadcastable to the output's shape (the caller's
 * inference checked that). Never fails. */
void fern_ew_iter_init(fern_ew_iter *it, int n_ops, const fern_tensor *const *ops);

/* Call fn over every element of the iteration, split across the thread
 * pool in chunks of at least `grain` elements when there are at least
 * 2 * grain of them (inline otherwise: no pool overhead for small work). */
void fern_ew_run(const fern_ew_iter *it, fern_ew_row_fn fn, void *ctx, int64_t grain);

/* fern_ew_iter_init + fern_ew_run, with a shortcut for the small call whose
 * operands are all contiguous and of the output's size (a single row). */
void fern_ew_apply(int n_ops, const fern_tensor *const *ops, fern_ew_row_fn fn, void *ctx,
                   int64_t grain);

/* torch's result type of an elementwise op over n tensors (NULL entries
 * skipped): promotion across categories bool < int < float, but 0-d
 * tensors only raise the category, never the width within a category
 * (f32 tensor + f64 0-d -> f32; i32 tensor + f64 0-d -> f64; i32 tensor +
 * i64 0-d -> i32). With only 0-d tensors, plain promotion. */
fern_dtype fern_ew_result_type(int n, fern_tensor *const *ts);

/* An operand converted to another dtype for the kernel. */
typedef struct {
    fern_tensor t;  /* header of the converted operand (never retained) */
    fern_storage s;
    void *buf; /* pooled buffer to free, or NULL */
    size_t nbytes;
    _Alignas(16) unsigned char small[64];
} fern_ew_temp;

/* x itself when it already has dtype dt; otherwise a converted copy in tmp
 * (contiguous, with x's broadcast (zero-stride) dims kept at size 1, so
 * converting an expanded operand costs only its distinct elements). NULL
 * with the error set if out of memory. Free with fern_ew_temp_free. */
const fern_tensor *fern_ew_as_dtype(const fern_tensor *x, fern_dtype dt, fern_ew_temp *tmp);
void fern_ew_temp_free(fern_ew_temp *tmp);

/* Write x's elements, converted to dtype dt, contiguously to dst (which
 * holds numel(x) elements of dt). Handles any strides. Casts like torch:
 * integers narrow by wrapping, integers convert directly to floats, any
 * value to bool is != 0; floats to integers saturate (nan -> 0). */
void fern_ew_convert(const fern_tensor *x, fern_dtype dt, void *dst);

/* ---- math for row functions --------------------------------------------
 * fm_NAME(x) picks the float or double version by x's type, so one row
 * expression serves f32 and f64. The f64 versions are libm's. The f32
 * versions of exp, expm1, log, log1p, tanh, sigmoid, silu, erf, gelu,
 * softplus, elu, sin, cos and tan are branch-free inline code that gcc
 * vectorizes in the row loops (libm's scalar calls would not be):
 * Cody-Waite range reduction and polynomials fitted for these ranges
 * (least-squares minimax on Chebyshev nodes), with the special values (nan,
 * +-inf, overflow, underflow, -0) of the C functions. Measured against
 * double-precision libm over the whole f32 range: exp 1.0 ulp, expm1 1.5,
 * log 1.0, log1p 2.4, tanh 1.3, erf 3.3, sin/cos 2.5, tan 4.3 (|x| <= 4000;
 * the row functions use libm beyond), gelu within 4e-7 absolute. atan2,
 * pow and fmod call libm. */
#define FM_GEN(ff, df, x) _Generic((x), float: ff, double: df)(x)

static inline float fm_bits_f_(uint32_t u)
{
    union {
        uint32_t u;
        float f;
    } v = {.u = u};
    return v.f;
}

static inline uint32_t fm_f_bits_(float f)
{
    union {
        float f;
        uint32_t u;
    } v = {.f = f};
    return v.u;
}

/* c ? a : b by bit masks. The f32 functions below choose their special
 * values and branches this way, never with ?: on floats: gcc lowers a
 * float select to a branch, may thread later code through it, and a loop
 * with a branch left in it is not vectorized. */
static inline float fm_sel_(int c, float a, float b)
{
    uint32_t m = 0u - (uint32_t)c;
    return fm_bits_f_((fm_f_bits_(a) & m) | (fm_f_bits_(b) & ~m));
}

/* a * b + c, fused where the target has FMA (C11 mode does not contract
 * a * b + c on its own); a libm fmaf call elsewhere would be slow. */
#if defined(__FMA__)
#define FM_FMA(a, b, c) fmaf(a, b, c)
#else
#define FM_FMA(a, b, c) ((a) * (b) + (c))
#endif

#define FM_LN2_HI 0.693145751953125f  /* 16 significant bits: n * hi is exact */
#define FM_LN2_LO 1.42860682e-06f
#define FM_LOG2E 1.44269504f
#define FM_RND 12582912.0f /* 1.5 * 2^23: adding it rounds to an integer */

/* x = n ln2 + r, |r| <= ln2/2 (for |x| below ~150). Returns r, sets *n. */
static inline float fm_reduce_(float x, int32_t *n)
{
    float t = FM_FMA(x, FM_LOG2E, FM_RND);
    float nf = t - FM_RND;
    *n = (int32_t)(fm_f_bits_(t) - fm_f_bits_(FM_RND));
    return FM_FMA(-nf, FM_LN2_LO, FM_FMA(-nf, FM_LN2_HI, x));
}

/* e^r - 1 - r = r^2 * poly(r) on |r| <= ln2/2 (rel. error 3e-9) */
static inline float fm_expm1_poly_(float r)
{
    /* Estrin's scheme: a shorter dependency chain than Horner's, which is
     * what bounds these loops (each element is one long chain) */
    float r2 = r * r, r4 = r2 * r2;
    float p01 = FM_FMA(1.66666672e-1f, r, 0.5f);
    float p23 = FM_FMA(8.33336078e-3f, r, 4.16664667e-2f);
    float p45 = FM_FMA(1.98577822e-4f, r, 1.39335974e-3f);
    float p = FM_FMA(p45, r4, FM_FMA(p23, r2, p01));
    return FM_FMA(r2, p, r);
}

/* 2^n as two factors 2^(n/2) * 2^(n - n/2), each normal for |n| <= 252 */
static inline void fm_pow2_(int32_t n, float *s1, float *s2)
{
    int32_t n1 = n / 2, n2 = n - n1;
    *s1 = fm_bits_f_((uint32_t)(n1 + 127) << 23);
    *s2 = fm_bits_f_((uint32_t)(n2 + 127) << 23);
}

/* e^x for finite x in [-87, 88] only (no range or nan handling): the
 * scale 2^n goes straight into the exponent bits. */
static inline float fm_exp_core_(float x)
{
    int32_t n;
    float r = fm_reduce_(x, &n);
    float p = fm_expm1_poly_(r) + 1.0f;
    return fm_bits_f_(fm_f_bits_(p) + ((uint32_t)n << 23));
}

static inline float fm_expf_(float x)
{
    const float hi = 88.7228394f, lo = -103.972084f;
    /* out-of-range lanes compute e^0 and are replaced below (computing
     * them at the clamp would make subnormals, which are slow) */
    float xc = fm_sel_((x > hi) | (x < lo) | (x != x), 0.0f, x);
    int32_t n;
    float r = fm_reduce_(xc, &n), s1, s2;
    fm_pow2_(n, &s1, &s2);
    float res = ((fm_expm1_poly_(r) + 1.0f) * s1) * s2;
    res = fm_sel_(x > hi, INFINITY, res);
    res = fm_sel_(x < lo, 0.0f, res);
    return fm_sel_(x == x, res, x);
}

static inline float fm_expm1f_(float x)
{
    const float hi = 88.7228394f, lo = -30.0f; /* expm1(x < -30) is -1 in f32 */
    float xc = fm_sel_((x > hi) | (x < lo) | (x != x), 0.0f, x);
    int32_t n;
    float r = fm_reduce_(xc, &n), s1, s2;
    fm_pow2_(n, &s1, &s2);
    float em = fm_expm1_poly_(r);
    float s = s1 * s2; /* 2^n, exact (inf only for n = 128, the big branch) */
    float small = FM_FMA(s, em, s - 1.0f);
    float big = ((em + 1.0f) * s1) * s2 - 1.0f;
    float res = fm_sel_(n > 24, big, small);
    res = fm_sel_(x > hi, INFINITY, res);
    res = fm_sel_(x < lo, -1.0f, res);
    res = fm_sel_(x == 0.0f, x, res); /* keeps -0 */
    return fm_sel_(x == x, res, x);
}

static inline float fm_logf_(float x)
{
    /* x = 2^e * m, m in [sqrt(1/2), sqrt(2)); subnormals scaled by 2^23 */
    const uint32_t sqrt_half = 0x3f3504f3u;
    /* bit masks instead of selects: gcc would thread two selects on the
     * same condition into a branch, which stops vectorization */
    uint32_t sub = 0u - (uint32_t)(x < 1.17549435e-38f);
    uint32_t bits = (fm_f_bits_(x * 8388608.0f) & sub) | (fm_f_bits_(x) & ~sub);
    uint32_t u = bits - sqrt_half;
    int32_t e = ((int32_t)u >> 23) - (int32_t)(sub & 23u);
    float m = fm_bits_f_((u & 0x007fffffu) + sqrt_half);
    float ef = (float)e;
    float f = m - 1.0f, z = f * f;
    /* log(1+f) - f + f^2/2 = f^3 * poly(f) (rel. error 4e-7 of that term) */
    float z2 = z * z;
    float q01 = FM_FMA(-2.50003040e-1f, f, 3.33333313e-1f);
    float q23 = FM_FMA(-1.66415796e-1f, f, 2.00011998e-1f);
    float q45 = FM_FMA(-1.29893333e-1f, f, 1.42099708e-1f);
    float q67 = FM_FMA(-7.97379240e-2f, f, 1.26555100e-1f);
    float q = FM_FMA(FM_FMA(q67, z, q45), z2, FM_FMA(q23, z, q01));
    float r = f + FM_FMA(z * f, q, -0.5f * z);
    float res = FM_FMA(ef, FM_LN2_HI, FM_FMA(ef, FM_LN2_LO, r)); /* finite for every x */
    float sp = fm_sel_(x < 0.0f, NAN, 0.0f); /* added: res is finite */
    sp = fm_sel_(x == 0.0f, -INFINITY, sp);
    sp = fm_sel_(x == INFINITY, INFINITY, sp);
    sp = fm_sel_(x == x, sp, x);
    return res + sp;
}

static inline float fm_log1pf_(float x)
{
    /* log(u) * x / (u - 1) with u = 1 + x cancels u's rounding error */
    float u = 1.0f + x;
    float d = u - 1.0f;
    /* where u == 1 (d == 0), log(u) = 0 and the x added below is the
     * result; x = inf gives log(inf) * (inf / 1) = inf */
    float dd = fm_sel_((d == 0.0f) | (d == INFINITY), 1.0f, d);
    float res = fm_logf_(u) * (x / dd);
    return res + fm_sel_(d == 0.0f, x, 0.0f);
}

static inline float fm_tanhf_(float x)
{
    float a = fabsf(x), s = x * x;
    /* |x| < 0.625: x + x^3 * poly(x^2) (rel. error 1.3e-7 of that term) */
    float s2 = s * s;
    float q = FM_FMA(FM_FMA(-6.09692372e-3f, s, 2.09973436e-2f), s2,
                     FM_FMA(-5.38509488e-2f, s, 1.33327708e-1f));
    q = FM_FMA(q, s, -3.33333284e-1f);
    float small = FM_FMA(x * s, q, x);
    float big = 1.0f - 2.0f / (fm_expf_(a + a) + 1.0f);
    return fm_sel_(a < 0.625f, small, copysignf(big, x));
}

/* erfc(t) for t in [0.92, 4]: exp(Q(t)) with Q fitted to log(erfc) on that
 * range (abs. error 1.2e-8, in u = (t - 2.46) / 1.54); 0 beyond t = 4, where
 * erf(t) rounds to 1 in f32 (and erfc(4) = 1.5e-8). Lanes below 0.92
 * compute with a clamped t (the callers discard them). */
static inline float fm_erfc_tail_(float t)
{
    float tc = fm_sel_(t > 4.0f, 4.0f, t);
    tc = fm_sel_(tc < 0.92f, 0.92f, tc);
    float u = (tc - 2.46f) * 0.649350649f;
    float u2 = u * u, u4 = u2 * u2, u8 = u4 * u4;
    float q01 = FM_FMA(-8.12692165e+0f, u, -7.59421778e+0f);
    float q23 = FM_FMA(-4.09482084e-2f, u, -2.23539782e+0f);
    float q45 = FM_FMA(-3.80425109e-3f, u, 1.26607874e-2f);
    float q67 = FM_FMA(-2.83842237e-4f, u, 1.08370173e-3f);
    float q = FM_FMA(5.06947181e-5f, u8,
                     FM_FMA(FM_FMA(q67, u2, q45), u4, FM_FMA(q23, u2, q01)));
    return fm_sel_(t > 4.0f, 0.0f, fm_exp_core_(q)); /* q in [-17.6, -1.6] */
}

/* erf(x) / x as a polynomial in x^2 for |x| < 0.92 (rel. error 1.7e-8) */
static inline float fm_erf_small_(float x)
{
    float s = x * x;
    float s2 = s * s;
    float p01 = FM_FMA(-3.76124859e-1f, s, 1.12837911e+0f);
    float p23 = FM_FMA(-2.67631225e-2f, s, 1.12817213e-1f);
    float p45 = FM_FMA(-5.96424507e-4f, s, 4.98800213e-3f);
    float p = FM_FMA(FM_FMA(p45, s2, p23), s2, p01);
    return x * p;
}

static inline float fm_erff_(float x)
{
    float a = fabsf(x);
    float big = copysignf(1.0f - fm_erfc_tail_(a), x);
    float res = fm_sel_(a < 0.92f, fm_erf_small_(x), big);
    return fm_sel_(x == x, res, x);
}

/* floor and ceil from rint (round to nearest even), which gcc vectorizes:
 * the nearest integer, stepped down (up) when it overshoots. Exact, with
 * -0, nan and large values (already integers) preserved. */
static inline float fm_floorf_(float x)
{
    float r = rintf(x);
    return fm_sel_(r > x, r - 1.0f, r);
}
static inline float fm_ceilf_(float x)
{
    float r = rintf(x);
    return fm_sel_(r < x, r + 1.0f, r);
}

/* sin, cos, tan for |x| <= FM_TRIG_MAX: x = n pi/2 + r with pi/2 in three
 * pieces (n * piece exact for |n| < 4096), then polynomials for sin and cos
 * on |r| <= pi/4 (fitted; rel. error < 2e-10 of the correction terms) and
 * the quadrant n mod 4. Larger |x|, inf and nan need the caller's libm
 * fallback (fm_trig_big_). */
#define FM_TRIG_MAX 4000.0f

static inline float fm_trig_reduce_(float x, int32_t *q)
{
    float t = FM_FMA(x, 0.636619747f, FM_RND);
    float nf = t - FM_RND;
    *q = (int32_t)(fm_f_bits_(t) - fm_f_bits_(FM_RND));
    float r = FM_FMA(-nf, 1.57080078f, x);
    r = FM_FMA(-nf, -4.45358455e-6f, r);
    return FM_FMA(-nf, -8.70551575e-10f, r);
}

static inline float fm_sin_poly_(float r, float r2)
{
    float p = FM_FMA(FM_FMA(2.72494117e-6f, r2, -1.98400827e-4f), r2 * r2,
                     FM_FMA(8.33333191e-3f, r2, -1.66666672e-1f));
    return FM_FMA(r * r2, p, r);
}

static inline float fm_cos_poly_(float r2)
{
    float p = FM_FMA(FM_FMA(-2.73006862e-7f, r2, 2.48005981e-5f), r2 * r2,
                     FM_FMA(-1.38888881e-3f, r2, 4.16666679e-2f));
    return FM_FMA(r2 * r2, p, FM_FMA(-0.5f, r2, 1.0f));
}

static inline int fm_trig_big_(float x) { return !(fabsf(x) <= FM_TRIG_MAX); }

static inline float fm_sinf_(float x)
{
    int32_t q;
    float r = fm_trig_reduce_(x, &q), r2 = r * r;
    float v = fm_sel_(q & 1, fm_cos_poly_(r2), fm_sin_poly_(r, r2));
    v = fm_bits_f_(fm_f_bits_(v) ^ ((uint32_t)(q & 2) << 30));
    return fm_sel_(x == 0.0f, x, v); /* keeps -0 */
}

static inline float fm_cosf_(float x)
{
    int32_t q;
    float r = fm_trig_reduce_(x, &q), r2 = r * r;
    float v = fm_sel_(q & 1, fm_sin_poly_(r, r2), fm_cos_poly_(r2));
    return fm_bits_f_(fm_f_bits_(v) ^ ((uint32_t)((q + 1) & 2) << 30));
}

static inline float fm_tanf_(float x)
{
    int32_t q;
    float r = fm_trig_reduce_(x, &q), r2 = r * r;
    float sn = fm_sin_poly_(r, r2), cs = fm_cos_poly_(r2);
    float num = fm_sel_(q & 1, -cs, sn), den = fm_sel_(q & 1, sn, cs);
    return fm_sel_(x == 0.0f, x, num / den);
}

static inline float fm_sigmoidf_(float x) { return 1.0f / (1.0f + fm_expf_(-x)); }
static inline double fm_sigmoidd_(double x) { return 1.0 / (1.0 + exp(-x)); }
static inline float fm_siluf_(float x) { return x / (1.0f + fm_expf_(-x)); }
static inline double fm_silud_(double x) { return x / (1.0 + exp(-x)); }

/* elu: x where x > 0, else alpha * (e^x - 1) */
static inline float fm_eluf_(float x, float alpha)
{
    return fm_sel_(x > 0.0f, x, alpha * fm_expm1f_(x));
}
static inline double fm_elud_(double x, double alpha) { return x > 0 ? x : alpha * expm1(x); }
#define fm_elu(x, alpha) _Generic((x), float: fm_eluf_, double: fm_elud_)(x, alpha)

/* softplus: log(1 + e^(beta x)) / beta, or x where beta x > threshold */
static inline float fm_softplusf_(float x, float beta, float threshold)
{
    float bx = x * beta;
    float soft = fm_log1pf_(fm_expf_(bx)) / beta;
    return fm_sel_(bx > threshold, x, soft);
}
static inline double fm_softplusd_(double x, double beta, double threshold)
{
    return x * beta > threshold ? x : log1p(exp(x * beta)) / beta;
}
#define fm_softplus(x, beta, threshold)                                                        \
    _Generic((x), float: fm_softplusf_, double: fm_softplusd_)(x, beta, threshold)

/* gelu = x * Phi(x) = x/2 * (1 + erf(x/sqrt2)) = x/2 * erfc(t) for x < 0,
 * x/2 * (2 - erfc(t)) for x >= 0, t = |x|/sqrt2: no cancellation in either
 * tail, and one formula for all x: erfc(t) = exp(Q(t)) with Q fitted to
 * log(erfc) on t in [0, 4] (abs. error 2.4e-8, in u = t/2 - 1); erfc is
 * taken as 0 beyond t = 4 (x < -5.66: |gelu| < 5e-8 there). */
static inline float fm_gelu_erff_(float x)
{
    float t = fabsf(x) * 0.70710678f;
    float u = fm_sel_(t > 4.0f, 4.0f, t) * 0.5f - 1.0f;
    float u2 = u * u, u4 = u2 * u2, u8 = u4 * u4;
    float q01 = FM_FMA(-8.83632183e+0f, u, -5.36494112e+0f);
    float q23 = FM_FMA(-1.31720290e-1f, u, -3.69500518e+0f);
    float q45 = FM_FMA(-2.34422013e-2f, u, 5.71533032e-2f);
    float q67 = FM_FMA(-2.62986333e-3f, u, 8.56685266e-3f);
    float q89 = FM_FMA(6.32952142e-5f, u, 6.84682571e-4f);
    float qab = FM_FMA(1.61533419e-4f, u, -3.47591267e-4f);
    float q = FM_FMA(FM_FMA(qab, u2, q89), u8,
                     FM_FMA(FM_FMA(q67, u2, q45), u4, FM_FMA(q23, u2, q01)));
    float erfc = fm_sel_(t > 4.0f, 0.0f, fm_exp_core_(q)); /* q in [-17.6, 0] */
    float phi2 = fm_sel_(x < 0.0f, erfc, 2.0f - erfc);
    return fm_sel_(x == x, 0.5f * x * phi2, x);
}
static inline double fm_gelu_erfd_(double x)
{
    return 0.5 * x * (1.0 + erf(x * 0.70710678118654752440));
}
/* torch's tanh form, 0.5x(1 + tanh(z)) with z = sqrt(2/pi)(x + 0.044715x^3),
 * computed as x / (1 + e^(-2z)) (the same value; no cancellation for x < 0) */
static inline float fm_gelu_tanhf_(float x)
{
    float inner = 0.79788456f * (x + 0.044715f * x * x * x);
    return x / (1.0f + fm_expf_(-2.0f * inner));
}
static inline double fm_gelu_tanhd_(double x)
{
    double inner = 0.79788456080286535588 * (x + 0.044715 * x * x * x);
    return 0.5 * x * (1.0 + tanh(inner));
}

#define fm_fabs(x) FM_GEN(fabsf, fabs, x)
#define fm_floor(x) FM_GEN(fm_floorf_, floor, x)
#define fm_ceil(x) FM_GEN(fm_ceilf_, ceil, x)
#define fm_rint(x) FM_GEN(rintf, rint, x)
#define fm_sqrt(x) FM_GEN(sqrtf, sqrt, x)
#define fm_exp(x) FM_GEN(fm_expf_, exp, x)
#define fm_expm1(x) FM_GEN(fm_expm1f_, expm1, x)
#define fm_log(x) FM_GEN(fm_logf_, log, x)
#define fm_log1p(x) FM_GEN(fm_log1pf_, log1p, x)
#define fm_sin(x) FM_GEN(sinf, sin, x)
#define fm_cos(x) FM_GEN(cosf, cos, x)
#define fm_tan(x) FM_GEN(tanf, tan, x)
#define fm_tanh(x) FM_GEN(fm_tanhf_, tanh, x)
#define fm_erf(x) FM_GEN(fm_erff_, erf, x)
#define fm_sigmoid(x) FM_GEN(fm_sigmoidf_, fm_sigmoidd_, x)
#define fm_silu(x) FM_GEN(fm_siluf_, fm_silud_, x)
#define fm_gelu_erf(x) FM_GEN(fm_gelu_erff_, fm_gelu_erfd_, x)
#define fm_gelu_tanh(x) FM_GEN(fm_gelu_tanhf_, fm_gelu_tanhd_, x)

#endif
