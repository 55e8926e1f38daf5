/* Reductions: sum mean prod max min var std logsumexp all any over any set
 * of axes, argmax/argmin along one axis, and the scans cumsum/cumprod.
 *
 * Dtype rules follow PyTorch 1.13: sum/prod/cumsum/cumprod of integers and
 * bool give i64; mean/var/std need a floating point input; logsumexp of an
 * integer or bool input gives f32; max/min keep the dtype; all/any give
 * bool; argmax/argmin give i64 (no bool input, like torch).
 *
 * The reduction engine views the input as a list of dims sorted by input
 * stride (memory order) and coalesced, each either kept or reduced. When the
 * innermost dim is reduced ("case I"), each output reduces its contiguous
 * runs with a vectorized multi-accumulator loop (very short runs instead
 * take one vectorized pass over a chunk of outputs per run element); when
 * it is kept ("case II"), chunks of outputs accumulate whole input rows
 * (short rows that follow each other in memory go several at a time).
 * Long reductions with few outputs are split into blocks whose count
 * depends only on the shapes, and the partials are combined in order, so
 * results do not depend on the number of threads. Float sums accumulate in
 * double (blocked, two levels), var/std take two passes (mean, then squared
 * deviations), logsumexp shifts by the max. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_def.h"

#define RED_CHUNK 512   /* outputs per case I work item (at most)        */
#define RED_ROWCHUNK 4096 /* columns per case II work item (at most)     */
#define RED_ROWBLK 256  /* rows summed into a temporary before merging  */
#define RED_RUNBLK 2048 /* elements per block of a contiguous run sum    */
#define RED_WORK 32768  /* elements of work that justify a thread        */
#define SEL_LANES 64    /* lanes of the vectorized max/min of a run      */

/* ---- the reduction vtables ------------------------------------------- */

typedef struct {
    size_t asz; /* accumulator size in bytes */
    void (*init)(void *acc, int64_t n);
    /* acc[o] op= reduce over i < n of f(x[o*xs + i*s], p[o]), for o < m */
    void (*runs)(void *acc, const char *x, int64_t m, int64_t xs, int64_t n, int64_t s,
                 const void *p);
    /* acc[j] op= f(x[j*s], p[j]), j < n */
    void (*row)(void *acc, const char *x, int64_t n, int64_t s, const void *p);
    /* dst[j] = dst[j] op src[j] */
    void (*merge)(void *dst, const void *src, int64_t n);
} red_vt;

#ifdef __FMA__
#define MADD(a, b, c) fma(a, b, c)
#define MADDF(a, b, c) fmaf(a, b, c)
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#define MADDF(a, b, c) ((a) * (b) + (c))
#endif

/* exp(x) in double, branch free so loops over it vectorize: Cody-Waite
 * reduction by ln2 and a degree-13 Taylor polynomial on |r| <= ln2/2
 * (relative error ~2e-16); 0 below -708, inf above 709.7, nan kept. */
static inline double vexp(double x)
{
    const double log2e = 1.4426950408889634, ln2hi = 6.93147180369123816490e-01,
                 ln2lo = 1.90821492927058770002e-10, shifter = 6755399441055744.0; /* 1.5*2^52 */
    double xc = x > -708.0 ? x : -708.0; /* (a nan becomes -708 here) */
    xc = xc < 709.0 ? xc : 709.0;
    double t = MADD(xc, log2e, shifter);
    double n = t - shifter;
    double r = MADD(-n, ln2lo, MADD(-n, ln2hi, xc));
    double p = 1.0 / 6227020800.0;
    p = MADD(p, r, 1.0 / 479001600.0);
    p = MADD(p, r, 1.0 / 39916800.0);
    p = MADD(p, r, 1.0 / 3628800.0);
    p = MADD(p, r, 1.0 / 362880.0);
    p = MADD(p, r, 1.0 / 40320.0);
    p = MADD(p, r, 1.0 / 5040.0);
    p = MADD(p, r, 1.0 / 720.0);
    p = MADD(p, r, 1.0 / 120.0);
    p = MADD(p, r, 1.0 / 24.0);
    p = MADD(p, r, 1.0 / 6.0);
    p = MADD(p, r, 0.5);
    p = MADD(p, r, 1.0);
    p = MADD(p, r, 1.0);
    int64_t tb, sb;
    memcpy(&tb, &t, sizeof tb);
    sb = (tb - INT64_C(0x4338000000000000) + 1023) * (INT64_C(1) << 52); /* 2^n */
    double scale;
    memcpy(&scale, &sb, sizeof scale);
    double y = p * scale;
    y = x < -708.0 ? 0.0 : y;
    y = x > 709.7 ? (double)INFINITY : y;
    return x != x ? x : y;
}

/* exp(x) in float (Cephes expf polynomial, ~1 ulp), branch free; 0 below
 * -87 (under FLT_MIN), inf above 88 (only reached in logsumexp when the
 * result is inf or nan anyway), nan kept. */
static inline float vexpf(float x)
{
    const float log2e = 1.44269504088896341f, c1 = 0.693359375f, c2 = -2.12194440e-4f,
                shifter = 12582912.0f; /* 1.5*2^23 */
    float xc = x > -87.0f ? x : -87.0f; /* (a nan becomes -87 here) */
    xc = xc < 88.0f ? xc : 88.0f;
    float t = MADDF(xc, log2e, shifter);
    float n = t - shifter;
    float r = MADDF(-n, c2, MADDF(-n, c1, xc));
    float p = 1.9875691500e-4f;
    p = MADDF(p, r, 1.3981999507e-3f);
    p = MADDF(p, r, 8.3334519073e-3f);
    p = MADDF(p, r, 4.1665795894e-2f);
    p = MADDF(p, r, 1.6666665459e-1f);
    p = MADDF(p, r, 5.0000001201e-1f);
    float y = MADDF(p, r * r, r) + 1.0f;
    int32_t tb, sb;
    memcpy(&tb, &t, sizeof tb);
    sb = (tb - 0x4B400000 + 127) * (1 << 23); /* 2^n */
    float scale;
    memcpy(&scale, &sb, sizeof scale);
    y *= scale;
    y = x < -87.0f ? 0.0f : y;
    y = x > 88.0f ? INFINITY : y;
    return x != x ? x : y;
}

#define F_ID(v, P) ((v))
#define F_SQDEV(v, P) (((double)(v) - (P)) * ((double)(v) - (P)))
#define F_EXP(v, P) (vexp((double)(v) - (P)))
#define F_EXPF(v, P) ((double)vexpf((float)((double)(v) - (P))))

/* Additive reductions (sum, sum of squared deviations, sum of exps):
 * blocks of RED_RUNBLK summed in 8 lanes, block sums added up. */
#define DEF_ADD(NAME, T, ACC, F)                                                                 \
    static inline ACC NAME##_run1(const T *restrict x, int64_t n, int64_t s, ACC pv)           \
    {                                                                                          \
        ACC tot = 0;                                                                           \
        int64_t i = 0;                                                                         \
        if (n < 16) {                                                                          \
            for (; i < n; i++)                                                                 \
                tot += (ACC)F(x[i * s], pv);                                                   \
            return tot;                                                                        \
        }                                                                                      \
        while (i < n) {                                                                        \
            int64_t e = n - i > RED_RUNBLK ? i + RED_RUNBLK : n;                               \
            ACC a[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                               \
            if (s == 1) {                                                                      \
                for (; i + 8 <= e; i += 8)                                                     \
                    for (int k = 0; k < 8; k++)                                                \
                        a[k] += (ACC)F(x[i + k], pv);                                          \
            } else {                                                                           \
                for (; i + 8 <= e; i += 8)                                                     \
                    for (int k = 0; k < 8; k++)                                                \
                        a[k] += (ACC)F(x[(i + k) * s], pv);                                    \
            }                                                                                  \
            ACC b = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));         \
            for (; i < e; i++)                                                                 \
                b += (ACC)F(x[i * s], pv);                                                     \
            tot += b;                                                                          \
        }                                                                                      \
        return tot;                                                                            \
    }                                                                                          \
    static void NAME##_runs(void *accp, const char *xp, int64_t m, int64_t xs, int64_t n,      \
                            int64_t s, const void *p)                                          \
    {                                                                                          \
        ACC *acc = accp;                                                                       \
        const ACC *pa = p;                                                                     \
        const T *x = (const T *)xp;                                                            \
        for (int64_t o = 0; o < m; o++)                                                        \
            acc[o] += NAME##_run1(x + o * xs, n, s, pa ? pa[o] : (ACC)0);                      \
    }                                                                                          \
    static void NAME##_row(void *accp, const char *xp, int64_t n, int64_t s, const void *p)    \
    {                                                                                          \
        ACC *restrict acc = accp;                                                              \
        const T *restrict x = (const T *)xp;                                                   \
        const ACC *restrict pa = p;                                                            \
        (void)pa;                                                                              \
        if (s == 1)                                                                            \
            for (int64_t j = 0; j < n; j++)                                                    \
                acc[j] += (ACC)F(x[j], pa[j]);                                                 \
        else                                                                                   \
            for (int64_t j = 0; j < n; j++)                                                    \
                acc[j] += (ACC)F(x[j * s], pa[j]);                                             \
    }

/* Multiplicative (prod). */
#define DEF_MUL(NAME, T, ACC)                                                                    \
    static inline ACC NAME##_run1(const T *restrict x, int64_t n, int64_t s)                   \
    {                                                                                          \
        ACC b = 1;                                                                             \
        int64_t i = 0;                                                                         \
        if (s == 1 && n >= 16) {                                                               \
            ACC a[8] = {1, 1, 1, 1, 1, 1, 1, 1};                                               \
            for (; i + 8 <= n; i += 8)                                                         \
                for (int k = 0; k < 8; k++)                                                    \
                    a[k] *= (ACC)x[i + k];                                                     \
            b = ((a[0] * a[1]) * (a[2] * a[3])) * ((a[4] * a[5]) * (a[6] * a[7]));             \
        }                                                                                      \
        for (; i < n; i++)                                                                     \
            b *= (ACC)x[i * s];                                                                \
        return b;                                                                              \
    }                                                                                          \
    static void NAME##_runs(void *accp, const char *xp, int64_t m, int64_t xs, int64_t n,      \
                            int64_t s, const void *p)                                          \
    {                                                                                          \
        ACC *acc = accp;                                                                       \
        const T *x = (const T *)xp;                                                            \
        for (int64_t o = 0; o < m; o++)                                                        \
            acc[o] *= NAME##_run1(x + o * xs, n, s);                                           \
    }                                                                                          \
    static void NAME##_row(void *accp, const char *xp, int64_t n, int64_t s, const void *p)    \
    {                                                                                          \
        ACC *restrict acc = accp;                                                              \
        const T *restrict x = (const T *)xp;                                                   \
        if (s == 1)                                                                            \
            for (int64_t j = 0; j < n; j++)                                                    \
                acc[j] *= (ACC)x[j];                                                           \
        else                                                                                   \
            for (int64_t j = 0; j < n; j++)                                                    \
                acc[j] *= (ACC)x[j * s];                                                       \
    }

/* Selection (max, min): BETTER(v, a) is true when v replaces a. A nan
 * replaces anything and, once in, is never replaced (v > nan is false).
 * Long contiguous runs go through SEL_LANES lanes updated by a plain
 * elementwise loop, which vectorizes. */
#define BETTER_MAX(v, a) ((v) > (a) || (v) != (v))
#define BETTER_MIN(v, a) ((v) < (a) || (v) != (v))
#define DEF_SEL(NAME, T, BETTER, ID)                                                             \
    static inline T NAME##_run1(const T *restrict x, int64_t n, int64_t s, T m)                \
    {                                                                                          \
        int64_t i = 0;                                                                         \
        if (s == 1 && n >= 2 * SEL_LANES) {                                                    \
            T a[SEL_LANES];                                                                    \
            for (int k = 0; k < SEL_LANES; k++)                                                \
                a[k] = x[k];                                                                   \
            for (i = SEL_LANES; i + SEL_LANES <= n; i += SEL_LANES) {                          \
                const T *restrict xb = x + i;                                                  \
                for (int k = 0; k < SEL_LANES; k++) {                                          \
                    T v = xb[k];                                                               \
                    a[k] = BETTER(v, a[k]) ? v : a[k];                                         \
                }                                                                              \
            }                                                                                  \
            for (int k = 0; k < SEL_LANES; k++)                                                \
                m = BETTER(a[k], m) ? a[k] : m;                                                \
        }                                                                                      \
        for (; i < n; i++) {                                                                   \
            T v = x[i * s];                                                                    \
            m = BETTER(v, m) ? v : m;                                                          \
        }                                                                                      \
        return m;                                                                              \
    }                                                                                          \
    static void NAME##_runs(void *accp, const char *xp, int64_t m, int64_t xs, int64_t n,      \
                            int64_t s, const void *p)                                          \
    {                                                                                          \
        T *acc = accp;                                                                         \
        const T *x = (const T *)xp;                                                            \
        for (int64_t o = 0; o < m; o++)                                                        \
            acc[o] = NAME##_run1(x + o * xs, n, s, acc[o]);                                    \
    }                                                                                          \
    static void NAME##_row(void *accp, const char *xp, int64_t n, int64_t s, const void *p)    \
    {                                                                                          \
        T *restrict acc = accp;                                                                \
        const T *restrict x = (const T *)xp;                                                   \
        if (s == 1)                                                                            \
            for (int64_t j = 0; j < n; j++) {                                                  \
                T v = x[j];                                                                    \
                acc[j] = BETTER(v, acc[j]) ? v : acc[j];                                       \
            }                                                                                  \
        else                                                                                   \
            for (int64_t j = 0; j < n; j++) {                                                  \
                T v = x[j * s];                                                                \
                acc[j] = BETTER(v, acc[j]) ? v : acc[j];                                       \
            }                                                                                  \
    }                                                                                          \
    static void NAME##_merge(void *dp, const void *sp, int64_t n)                              \
    {                                                                                          \
        T *restrict d = dp;                                                                    \
        const T *restrict src = sp;                                                            \
        for (int64_t j = 0; j < n; j++)                                                        \
            d[j] = BETTER(src[j], d[j]) ? src[j] : d[j];                                       \
    }                                                                                          \
    static void NAME##_init(void *a, int64_t n)                                                \
    {                                                                                          \
        T *q = a;                                                                              \
        for (int64_t j = 0; j < n; j++)                                                        \
            q[j] = (ID);                                                                       \
    }

/* Logical (all: AND of x != 0, any: OR), accumulated in uint8_t. */
#define DEF_LOGIC(NAME, T, OP)                                                                   \
    static void NAME##_runs(void *accp, const char *xp, int64_t m, int64_t xs, int64_t n,      \
                            int64_t s, const void *p)                                          \
    {                                                                                          \
        uint8_t *acc = accp;                                                                   \
        for (int64_t o = 0; o < m; o++) {                                                      \
            const T *restrict x = (const T *)xp + o * xs;                                      \
            unsigned r = acc[o];                                                               \
            if (s == 1)                                                                        \
                for (int64_t i = 0; i < n; i++)                                                \
                    r OP (unsigned)(x[i] != 0);                                                \
            else                                                                               \
                for (int64_t i = 0; i < n; i++)                                                \
                    r OP (unsigned)(x[i * s] != 0);                                            \
            acc[o] = (uint8_t)r;                                                               \
        }                                                                                      \
    }                                                                                          \
    static void NAME##_row(void *accp, const char *xp, int64_t n, int64_t s, const void *p)    \
    {                                                                                          \
        uint8_t *restrict acc = accp;                                                          \
        const T *restrict x = (const T *)xp;                                                   \
        if (s == 1)                                                                            \
            for (int64_t j = 0; j < n; j++)                                                    \
                acc[j] OP (uint8_t)(x[j] != 0);                                                \
        else                                                                                   \
            for (int64_t j = 0; j < n; j++)                                                    \
                acc[j] OP (uint8_t)(x[j * s] != 0);                                            \
    }

/* init and merge shared by accumulator type */
#define DEF_INIT(NAME, ACC, V)                                                                   \
    static void NAME(void *a, int64_t n)                                                       \
    {                                                                                          \
        ACC *p = a;                                                                            \
        for (int64_t j = 0; j < n; j++)                                                        \
            p[j] = (V);                                                                        \
    }
#define DEF_MERGE(NAME, ACC, OP)                                                                 \
    static void NAME(void *dp, const void *sp, int64_t n)                                      \
    {                                                                                          \
        ACC *restrict d = dp;                                                                  \
        const ACC *restrict s = sp;                                                            \
        for (int64_t j = 0; j < n; j++)                                                        \
            d[j] = d[j] OP s[j];                                                               \
    }

DEF_INIT(init_d0, double, 0.0)
DEF_INIT(init_d1, double, 1.0)
DEF_INIT(init_u0, uint64_t, 0)
DEF_INIT(init_u1, uint64_t, 1)
DEF_INIT(init_b0, uint8_t, 0)
DEF_INIT(init_b1, uint8_t, 1)
DEF_MERGE(merge_dadd, double, +)
DEF_MERGE(merge_dmul, double, *)
DEF_MERGE(merge_uadd, uint64_t, +)
DEF_MERGE(merge_umul, uint64_t, *)
DEF_MERGE(merge_and, uint8_t, &)
DEF_MERGE(merge_or, uint8_t, |)

/* one selection family per dtype, with its identities */
#define DEF_SEL_T(SUF, T, LOWEST, HIGHEST)                                                       \
    DEF_SEL(max_##SUF, T, BETTER_MAX, LOWEST)                                                  \
    DEF_SEL(min_##SUF, T, BETTER_MIN, HIGHEST)

DEF_SEL_T(f32, float, -INFINITY, INFINITY)
DEF_SEL_T(f64, double, -INFINITY, INFINITY)
DEF_SEL_T(i8, int8_t, INT8_MIN, INT8_MAX)
DEF_SEL_T(u8, uint8_t, 0, UINT8_MAX)
DEF_SEL_T(i32, int32_t, INT32_MIN, INT32_MAX)
DEF_SEL_T(i64, int64_t, INT64_MIN, INT64_MAX)

/* sums: floats in double, integers in wrapping uint64 */
DEF_ADD(sum_f32, float, double, F_ID)
DEF_ADD(sum_f64, double, double, F_ID)
DEF_ADD(sum_i8, int8_t, uint64_t, F_ID)
DEF_ADD(sum_u8, uint8_t, uint64_t, F_ID)
DEF_ADD(sum_i32, int32_t, uint64_t, F_ID)
DEF_ADD(sum_i64, int64_t, uint64_t, F_ID)
DEF_ADD(sqdev_f32, float, double, F_SQDEV)
DEF_ADD(sqdev_f64, double, double, F_SQDEV)
DEF_ADD(sumexp_f32, float, double, F_EXPF)
DEF_ADD(sumexp_f64, double, double, F_EXP)
DEF_MUL(prod_f32, float, double)
DEF_MUL(prod_f64, double, double)
DEF_MUL(prod_i8, int8_t, uint64_t)
DEF_MUL(prod_u8, uint8_t, uint64_t)
DEF_MUL(prod_i32, int32_t, uint64_t)
DEF_MUL(prod_i64, int64_t, uint64_t)
DEF_LOGIC(all_f32, float, &=)
DEF_LOGIC(all_f64, double, &=)
DEF_LOGIC(all_i8, int8_t, &=)
DEF_LOGIC(all_u8, uint8_t, &=)
DEF_LOGIC(all_i32, int32_t, &=)
DEF_LOGIC(all_i64, int64_t, &=)
DEF_LOGIC(any_f32, float, |=)
DEF_LOGIC(any_f64, double, |=)
DEF_LOGIC(any_i8, int8_t, |=)
DEF_LOGIC(any_u8, uint8_t, |=)
DEF_LOGIC(any_i32, int32_t, |=)
DEF_LOGIC(any_i64, int64_t, |=)

#define VT_D(NAME, INIT, MERGE) {sizeof(double), INIT, NAME##_runs, NAME##_row, MERGE}
#define VT_U(NAME, INIT, MERGE) {sizeof(uint64_t), INIT, NAME##_runs, NAME##_row, MERGE}
#define VT_B(NAME, INIT, MERGE) {1, INIT, NAME##_runs, NAME##_row, MERGE}
#define VT_S(NAME, T) {sizeof(T), NAME##_init, NAME##_runs, NAME##_row, NAME##_merge}

/* bool is stored as uint8_t 0/1, so it uses the u8 kernels */
static const red_vt vt_sum[FERN_DTYPE_COUNT] = {
    [FERN_F32] = VT_D(sum_f32, init_d0, merge_dadd),  [FERN_F64] = VT_D(sum_f64, init_d0, merge_dadd),
    [FERN_I8] = VT_U(sum_i8, init_u0, merge_uadd),    [FERN_U8] = VT_U(sum_u8, init_u0, merge_uadd),
    [FERN_I32] = VT_U(sum_i32, init_u0, merge_uadd),  [FERN_I64] = VT_U(sum_i64, init_u0, merge_uadd),
    [FERN_BOOL] = VT_U(sum_u8, init_u0, merge_uadd),
};
static const red_vt vt_prod[FERN_DTYPE_COUNT] = {
    [FERN_F32] = VT_D(prod_f32, init_d1, merge_dmul), [FERN_F64] = VT_D(prod_f64, init_d1, merge_dmul),
    [FERN_I8] = VT_U(prod_i8, init_u1, merge_umul),   [FERN_U8] = VT_U(prod_u8, init_u1, merge_umul),
    [FERN_I32] = VT_U(prod_i32, init_u1, merge_umul), [FERN_I64] = VT_U(prod_i64, init_u1, merge_umul),
    [FERN_BOOL] = VT_U(prod_u8, init_u1, merge_umul),
};
static const red_vt vt_max[FERN_DTYPE_COUNT] = {
    [FERN_F32] = VT_S(max_f32, float),   [FERN_F64] = VT_S(max_f64, double),
    [FERN_I8] = VT_S(max_i8, int8_t),    [FERN_U8] = VT_S(max_u8, uint8_t),
    [FERN_I32] = VT_S(max_i32, int32_t), [FERN_I64] = VT_S(max_i64, int64_t),
    [FERN_BOOL] = VT_S(max_u8, uint8_t),
};
static const red_vt vt_min[FERN_DTYPE_COUNT] = {
    [FERN_F32] = VT_S(min_f32, float),   [FERN_F64] = VT_S(min_f64, double),
    [FERN_I8] = VT_S(min_i8, int8_t),    [FERN_U8] = VT_S(min_u8, uint8_t),
    [FERN_I32] = VT_S(min_i32, int32_t), [FERN_I64] = VT_S(min_i64, int64_t),
    [FERN_BOOL] = VT_S(min_u8, uint8_t),
};
static const red_vt vt_all[FERN_DTYPE_COUNT] = {
    [FERN_F32] = VT_B(all_f32, init_b1, merge_and), [FERN_F64] = VT_B(all_f64, init_b1, merge_and),
    [FERN_I8] = VT_B(all_i8, init_b1, merge_and),   [FERN_U8] = VT_B(all_u8, init_b1, merge_and),
    [FERN_I32] = VT_B(all_i32, init_b1, merge_and), [FERN_I64] = VT_B(all_i64, init_b1, merge_and),
    [FERN_BOOL] = VT_B(all_u8, init_b1, merge_and),
};
static const red_vt vt_any[FERN_DTYPE_COUNT] = {
    [FERN_F32] = VT_B(any_f32, init_b0, merge_or), [FERN_F64] = VT_B(any_f64, init_b0, merge_or),
    [FERN_I8] = VT_B(any_i8, init_b0, merge_or),   [FERN_U8] = VT_B(any_u8, init_b0, merge_or),
    [FERN_I32] = VT_B(any_i32, init_b0, merge_or), [FERN_I64] = VT_B(any_i64, init_b0, merge_or),
    [FERN_BOOL] = VT_B(any_u8, init_b0, merge_or),
};
static const red_vt vt_sqdev[FERN_DTYPE_COUNT] = {
    [FERN_F32] = VT_D(sqdev_f32, init_d0, merge_dadd), [FERN_F64] = VT_D(sqdev_f64, init_d0, merge_dadd),
};
static const red_vt vt_sumexp[FERN_DTYPE_COUNT] = {
    [FERN_F32] = VT_D(sumexp_f32, init_d0, merge_dadd), [FERN_F64] = VT_D(sumexp_f64, init_d0, merge_dadd),
};

/* ---- the reduction plan ------------------------------------------------
 * The input dims (size-1 dims dropped) are sorted by input stride and
 * coalesced. Outputs are walked as rows x segments: the segment dim is the
 * kept dim with the smallest output stride (in case II the innermost input
 * dim), rows are the other kept dims. A work item is (reduction block,
 * row, chunk of segment positions); its accumulators live
 * in a local buffer, written to the block's accumulator array at the end.
 * Case I (innermost input dim reduced): for each position of the outer
 * reduced dims, `runs` reduces a contiguous run per output of the chunk.
 * Case II (innermost input dim kept, it is the segment): for each position
 * of the reduced dims, `row` accumulates one input row into the chunk. */

typedef struct {
    int64_t size, is, os;
    int red;
} rdim;

typedef struct {
    const red_vt *vt;
    const char *x; /* element [0,...,0] of the input */
    int64_t esz;
    int64_t n_out, n_red;
    int inner_red;                   /* case I                              */
    int64_t L, s_in;                 /* case I: the inner reduced run       */
    int64_t seg_n, seg_is, seg_os;   /* the segment dim                     */
    int nk;                          /* row dims, by out stride descending  */
    int64_t ksz[FERN_MAX_DIMS], kis[FERN_MAX_DIMS], kos[FERN_MAX_DIMS];
    int nr;                          /* odometer dims (reduced, outer first) */
    int64_t rsz[FERN_MAX_DIMS], ris[FERN_MAX_DIMS];
    int64_t chunk, n_rows, n_chunks, n_items;
    int64_t rep;                     /* case II: rows per wide row call     */
    int nb;                          /* reduction blocks                    */
    int64_t rblk;                    /* reduction indices per block         */
    char *acc;                       /* nb * n_out accumulators             */
    const char *p;                   /* per-output parameter or NULL        */
    atomic_int failed;               /* a worker could not get its buffers  */
} rplan;

static void plan_build(rplan *P, const fern_tensor *x, const int *mask)
{
    int nd = x->ndim;
    rdim d[FERN_MAX_DIMS + 1];
    int n = 0;
    int64_t os[FERN_MAX_DIMS];
    int64_t run = 1;
    P->n_red = 1;
    for (int i = nd - 1; i >= 0; i--) {
        if (mask[i]) {
            os[i] = 0;
            P->n_red *= x->shape[i];
        } else {
            os[i] = run;
            run *= x->shape[i];
        }
    }
    P->n_out = run;
    P->esz = (int64_t)fern_dtype_size(x->dtype);
    P->x = (const char *)fern_tensor_data(x);
    for (int i = 0; i < nd; i++)
        if (x->shape[i] != 1)
            d[n++] = (rdim){x->shape[i], x->strides[i], os[i], mask[i]};
    /* memory order: input stride descending (insertion sort keeps ties) */
    for (int i = 1; i < n; i++) {
        rdim t = d[i];
        int64_t key = t.is < 0 ? -t.is : t.is;
        int j = i - 1;
        while (j >= 0 && (d[j].is < 0 ? -d[j].is : d[j].is) < key) {
            d[j + 1] = d[j];
            j--;
        }
        d[j + 1] = t;
    }
    /* coalesce neighbours of the same kind whose strides chain */
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m > 0 && d[m - 1].red == d[i].red && d[m - 1].is == d[i].is * d[i].size &&
            d[m - 1].os == d[i].os * d[i].size) {
            d[m - 1].size *= d[i].size;
            d[m - 1].is = d[i].is;
            d[m - 1].os = d[i].os;
        } else {
            d[m++] = d[i];
        }
    }
    n = m;
    P->inner_red = n > 0 && d[n - 1].red;
    P->L = P->inner_red ? d[n - 1].size : 1;
    P->s_in = P->inner_red ? d[n - 1].is : 1;
    /* the segment: case II the inner dim, case I the kept dim of least os */
    int seg = -1;
    if (n > 0 && !P->inner_red) {
        seg = n - 1;
    } else {
        for (int i = 0; i < n; i++)
            if (!d[i].red && (seg < 0 || d[i].os < d[seg].os))
                seg = i;
    }
    P->seg_n = seg >= 0 ? d[seg].size : 1;
    P->seg_is = seg >= 0 ? d[seg].is : 0;
    P->seg_os = seg >= 0 ? d[seg].os : 1;
    P->nk = P->nr = 0;
    for (int i = 0; i < n; i++) {
        if (d[i].red) {
            if (!(P->inner_red && i == n - 1)) {
                P->rsz[P->nr] = d[i].size;
                P->ris[P->nr++] = d[i].is;
            }
        } else if (i != seg) {
            /* insert by out stride descending: row-major over the output */
            int j = P->nk++;
            while (j > 0 && P->kos[j - 1] < d[i].os) {
                P->ksz[j] = P->ksz[j - 1];
                P->kis[j] = P->kis[j - 1];
                P->kos[j] = P->kos[j - 1];
                j--;
            }
            P->ksz[j] = d[i].size;
            P->kis[j] = d[i].is;
            P->kos[j] = d[i].os;
        }
    }
    P->n_rows = P->n_out / P->seg_n;
    if (P->inner_red) {
        /* each output reads whole contiguous runs: prefer more, smaller
         * chunks of outputs over splitting the runs */
        P->chunk = RED_CHUNK;
        if (P->n_rows * ((P->seg_n + RED_CHUNK - 1) / RED_CHUNK) < 64) {
            int64_t c = (P->seg_n * P->n_rows + 63) / 64;
            int64_t cmin = P->n_red > 0 ? (RED_WORK + P->n_red - 1) / P->n_red : 1;
            P->chunk = c > cmin ? c : cmin;
            if (P->chunk > RED_CHUNK)
                P->chunk = RED_CHUNK;
            if (P->chunk < 1)
                P->chunk = 1;
        }
    } else {
        /* rows are contiguous: keep them long, split the reduction instead */
        P->chunk = RED_ROWCHUNK;
    }
    if (P->chunk > P->seg_n)
        P->chunk = P->seg_n;
    P->n_chunks = (P->seg_n + P->chunk - 1) / P->chunk;
    /* case II with short contiguous rows that follow each other in memory:
     * rep rows at a time form one contiguous wide row */
    P->rep = 1;
    if (!P->inner_red && P->nr > 0 && P->seg_is == 1 && P->seg_n <= 256 &&
        P->ris[P->nr - 1] == P->seg_n)
        P->rep = 2048 / P->seg_n;
    P->n_items = P->n_rows * P->n_chunks;
    int64_t unit = P->chunk; /* work per reduction index */
    /* few work items, long reduction: split the reduction into blocks (a
     * count that depends on the shapes only, so results do not depend on
     * the number of threads) */
    P->nb = 1;
    int64_t min_blk = (RED_WORK + unit - 1) / unit;
    if (P->n_items < 64 && P->n_red >= 2 * min_blk) {
        int64_t want = (64 + P->n_items - 1) / P->n_items;
        int64_t can = P->n_red / min_blk;
        P->nb = (int)(want < can ? want : can);
    }
    P->rblk = (P->n_red + P->nb - 1) / P->nb;
    P->p = NULL;
    P->acc = NULL;
}

/* input and output offsets of row q (row-major over the row dims) */
static void row_offsets(const rplan *P, int64_t q, int64_t *in_off, int64_t *out_off)
{
    int64_t io = 0, oo = 0;
    for (int k = P->nk - 1; k >= 0; k--) {
        int64_t i = q % P->ksz[k];
        q /= P->ksz[k];
        io += i * P->kis[k];
        oo += i * P->kos[k];
    }
    *in_off = io;
    *out_off = oo;
}

/* odometer over the reduced dims: position r -> idx[] and offset */
static int64_t odo_start(const rplan *P, int64_t r, int64_t *idx)
{
    int64_t off = 0;
    for (int k = P->nr - 1; k >= 0; k--) {
        idx[k] = r % P->rsz[k];
        r /= P->rsz[k];
        off += idx[k] * P->ris[k];
    }
    return off;
}

static int64_t odo_next(const rplan *P, int64_t *idx, int64_t off)
{
    for (int k = P->nr - 1; k >= 0; k--) {
        if (++idx[k] < P->rsz[k])
            return off + P->ris[k];
        off -= (P->rsz[k] - 1) * P->ris[k];
        idx[k] = 0;
    }
    return off;
}

static void plan_items(void *ctx, int64_t i0, int64_t i1)
{
    rplan *P = ctx;
    const red_vt *vt = P->vt;
    int64_t asz = (int64_t)vt->asz, esz = P->esz;
    int64_t rep = P->rep, wide = P->chunk * rep;
    /* local accumulators, a (wide) row-block temporary, the chunk's params
     * (replicated rep times) */
    unsigned char *loc = malloc((size_t)((P->chunk + 2 * wide) * 8 + 64));
    if (!loc) {
        atomic_store(&P->failed, 1);
        return;
    }
    unsigned char *tmp = loc + P->chunk * 8, *pb = tmp + wide * 8;
    for (int64_t it = i0; it < i1; it++) {
        int64_t chunk = it % P->n_chunks;
        int64_t row = (it / P->n_chunks) % P->n_rows;
        int64_t b = it / P->n_items;
        int64_t base, obase;
        row_offsets(P, row, &base, &obase);
        int64_t j0 = chunk * P->chunk;
        int64_t cl = P->seg_n - j0 < P->chunk ? P->seg_n - j0 : P->chunk;
        base += j0 * P->seg_is;
        obase += j0 * P->seg_os;
        const void *p = NULL;
        if (P->p) {
            if (P->seg_os == 1)
                memcpy(pb, P->p + obase * asz, (size_t)(cl * asz));
            else
                for (int64_t j = 0; j < cl; j++)
                    memcpy(pb + j * asz, P->p + (obase + j * P->seg_os) * asz, (size_t)asz);
            for (int64_t q = 1; q < rep; q++)
                memcpy(pb + q * cl * asz, pb, (size_t)(cl * asz));
            p = pb;
        }
        vt->init(loc, cl);
        int64_t r = b * P->rblk, r1 = r + P->rblk < P->n_red ? r + P->rblk : P->n_red;
        int64_t idx[FERN_MAX_DIMS];
        if (P->inner_red && r < r1) {
            /* pieces of inner runs, RED_ROWBLK of them per temporary */
            int64_t j = r % P->L;
            int64_t off = odo_start(P, r / P->L, idx);
            while (r < r1) {
                vt->init(tmp, cl);
                for (int cnt = 0; cnt < RED_ROWBLK && r < r1; cnt++) {
                    int64_t len = P->L - j < r1 - r ? P->L - j : r1 - r;
                    const char *xp = P->x + (base + off + j * P->s_in) * esz;
                    if (len <= 8 && cl > 1) /* short runs: a row pass per element */
                        for (int64_t q = 0; q < len; q++)
                            vt->row(tmp, xp + q * P->s_in * esz, cl, P->seg_is, p);
                    else
                        vt->runs(tmp, xp, cl, P->seg_is, len, P->s_in, p);
                    r += len;
                    j += len;
                    if (j == P->L && r < r1) {
                        j = 0;
                        off = odo_next(P, idx, off);
                    }
                }
                vt->merge(loc, tmp, cl);
            }
        } else if (r < r1) {
            /* rows, RED_ROWBLK (times rep) of them per temporary; with rep > 1
             * rep consecutive contiguous rows go through one wide row call */
            int64_t off = odo_start(P, r, idx);
            int last = P->nr - 1;
            while (r < r1) {
                int64_t e = r1 - r > RED_ROWBLK * rep ? r + RED_ROWBLK * rep : r1;
                vt->init(tmp, rep > 1 ? wide : cl);
                while (r < e) {
                    const char *xp = P->x + (base + off) * esz;
                    if (rep > 1 && idx[last] + rep <= P->rsz[last] && r + rep <= e) {
                        vt->row(tmp, xp, cl * rep, 1, p);
                        r += rep;
                        if (r < r1) {
                            idx[last] += rep - 1;
                            off = odo_next(P, idx, off + (rep - 1) * P->ris[last]);
                        }
                    } else {
                        vt->row(tmp, xp, cl, P->seg_is, p);
                        if (++r < r1)
                            off = odo_next(P, idx, off);
                    }
                }
                for (int64_t q = 1; q < rep; q++)
                    vt->merge(tmp, tmp + q * cl * asz, cl);
                vt->merge(loc, tmp, cl);
            }
        }
        char *acc = P->acc + b * P->n_out * asz;
        if (P->seg_os == 1)
            memcpy(acc + obase * asz, loc, (size_t)(cl * asz));
        else
            for (int64_t j = 0; j < cl; j++)
                memcpy(acc + (obase + j * P->seg_os) * asz, loc + j * asz, (size_t)asz);
    }
    free(loc);
}

/* Run one pass of the plan with vt (and optional per-output params p):
 * returns an n_out accumulator array (malloc'd) or NULL (error set). */
static char *plan_run(rplan *P, const red_vt *vt, const void *p)
{
    P->vt = vt;
    P->p = p;
    size_t asz = vt->asz;
    int64_t n_out = P->n_out;
    P->acc = malloc((size_t)(P->nb * n_out) * asz + 64);
    if (!P->acc) {
        fern_set_error(FERN_ERR_NOMEM, "reduction: out of memory");
        return NULL;
    }
    if (P->n_red == 0) {
        vt->init(P->acc, n_out);
        return P->acc;
    }
    int64_t per_item = P->rblk * P->chunk;
    int64_t grain = per_item >= RED_WORK ? 1 : RED_WORK / (per_item > 0 ? per_item : 1);
    atomic_init(&P->failed, 0);
    fern_parallel_for(P->n_items * P->nb, grain, plan_items, P);
    if (atomic_load(&P->failed)) {
        free(P->acc);
        fern_set_error(FERN_ERR_NOMEM, "reduction: out of memory");
        return NULL;
    }
    for (int b = 1; b < P->nb; b++)
        vt->merge(P->acc, P->acc + (size_t)(b * n_out) * asz, n_out);
    return P->acc;
}

/* ---- axes, inference --------------------------------------------------- */

enum { R_SUM, R_MEAN, R_PROD, R_MAX, R_MIN, R_VAR, R_STD, R_LSE, R_ALL, R_ANY };

static const char *const red_what[] = {"sum", "mean", "prod", "max", "min",
                                       "var", "std",  "logsumexp", "all", "any"};

static int out_of_range(const fern_op_call *c, int64_t axis)
{
    const fern_tensor *x = c->in[0];
    int nd = x->ndim;
    char b[128];
    fern_set_error(FERN_ERR_INVALID, "%s: axis %lld is out of range for %s (expected %d..%d)",
                   c->op->name, (long long)axis, fern_tensor_desc(x, b, sizeof b), nd ? -nd : -1,
                   nd ? nd - 1 : 0);
    return -1;
}

/* Normalize one axis; a 0-d tensor accepts 0 and -1 (the tensor itself). */
static int one_axis(const fern_op_call *c, int64_t axis, int *out)
{
    int nd = c->in[0]->ndim;
    int64_t lo = nd ? -nd : -1, hi = nd ? nd - 1 : 0;
    if (axis < lo || axis > hi)
        return out_of_range(c, axis);
    *out = (int)(axis < 0 ? axis + (nd ? nd : 1) : axis);
    return 0;
}

static int red_mask(const fern_op_call *c, const fern_attr *axes, int *mask)
{
    const fern_tensor *x = c->in[0];
    char b[128];
    int nd = x->ndim;
    if (axes->n < 0 || axes->n > FERN_ATTR_MAX_VALUES) {
        fern_set_error(FERN_ERR_INVALID, "%s: %d axes given for %s", c->op->name, axes->n,
                       fern_tensor_desc(x, b, sizeof b));
        return -1;
    }
    int seen[FERN_MAX_DIMS] = {0};
    for (int d = 0; d < nd; d++)
        mask[d] = axes->n == 0;
    for (int k = 0; k < axes->n; k++) {
        int a;
        if (one_axis(c, axes->ints[k], &a))
            return -1;
        if (seen[a]) {
            fern_set_error(FERN_ERR_INVALID, "%s: axis %lld appears multiple times in the axes of %s",
                           c->op->name, (long long)axes->ints[k], fern_tensor_desc(x, b, sizeof b));
            return -1;
        }
        seen[a] = 1;
        if (nd)
            mask[a] = 1;
    }
    return 0;
}

static int is_float(fern_dtype d) { return fern_dtype_is_float(d); }

static int red_infer(fern_op_call *c, int kind)
{
    const fern_tensor *x = c->in[0];
    int keepdims = (int)c->attrs[c->op->n_attrs - 1].i;
    int mask[FERN_MAX_DIMS];
    if ((kind == R_MEAN || kind == R_VAR || kind == R_STD) && !is_float(x->dtype))
        return fern__err_dtype(c, x, kind == R_MEAN
                                         ? "expected a floating point input (mean of integers "
                                           "is not defined, cast first)"
                                         : "expected a floating point input");
    if (red_mask(c, &c->attrs[0], mask))
        return -1;
    if (kind == R_MAX || kind == R_MIN) {
        for (int d = 0; d < x->ndim; d++)
            if (mask[d] && x->shape[d] == 0) {
                char b[128];
                fern_set_error(FERN_ERR_INVALID,
                               "%s: expected reduction axis %d to have non-zero size (the %s of "
                               "an empty tensor is undefined), input %s",
                               c->op->name, d, red_what[kind], fern_tensor_desc(x, b, sizeof b));
                return -1;
            }
    }
    fern_dtype odt = x->dtype;
    switch (kind) {
    case R_SUM:
    case R_PROD:
        if (!is_float(x->dtype))
            odt = FERN_I64;
        break;
    case R_LSE:
        if (!is_float(x->dtype))
            odt = FERN_F32;
        break;
    case R_ALL:
    case R_ANY: odt = FERN_BOOL; break;
    default: break;
    }
    int ond;
    int64_t oshape[FERN_MAX_DIMS];
    fern__reduce_shape(x->ndim, x->shape, mask, keepdims, &ond, oshape);
    fern__set_out(c, 0, odt, ond, oshape);
    return 0;
}

/* ---- kernels ----------------------------------------------------------- */

static void store_from_double(const double *a, fern_tensor *out, int64_t n)
{
    void *o = fern_tensor_data(out);
    if (out->dtype == FERN_F32) {
        float *restrict f = o;
        for (int64_t i = 0; i < n; i++)
            f[i] = (float)a[i];
    } else {
        memcpy(o, a, (size_t)n * sizeof(double));
    }
}

/* An f32 contiguous copy of an integer or bool tensor (logsumexp). */
static fern_tensor *as_f32(const fern_tensor *x)
{
    fern_tensor *src = (fern_tensor *)x, *tmp = NULL;
    if (!fern_tensor_is_contiguous(x)) {
        tmp = fern__tensor_alloc(x->dtype, x->ndim, x->shape, x->storage->device);
        if (!tmp)
            return NULL;
        fern__strided_copy(x, tmp);
        src = tmp;
    }
    fern_tensor *f = fern__tensor_alloc(FERN_F32, x->ndim, x->shape, x->storage->device);
    if (f)
        fern__convert(fern_tensor_data(src), src->dtype, fern_tensor_data(f), FERN_F32,
                      fern_tensor_numel(x));
    fern_release(tmp);
    return f;
}

static int red_kernel(fern_op_call *c, int kind)
{
    const fern_tensor *x = c->in[0];
    fern_tensor *out = c->out[0];
    fern_tensor *conv = NULL;
    int mask[FERN_MAX_DIMS];
    if (red_mask(c, &c->attrs[0], mask))
        return -1;
    if (kind == R_LSE && !is_float(x->dtype)) {
        conv = as_f32(x);
        if (!conv)
            return -1;
        x = conv;
    }
    fern_dtype dt = x->dtype;
    rplan P;
    plan_build(&P, x, mask);
    int64_t n = P.n_out;
    double cnt = (double)P.n_red;
    int rc = 0;
    switch (kind) {
    case R_SUM:
    case R_PROD:
    case R_MEAN: {
        char *acc = plan_run(&P, kind == R_PROD ? &vt_prod[dt] : &vt_sum[dt], NULL);
        if (!acc) {
            rc = -1;
            break;
        }
        if (!is_float(dt)) {
            memcpy(fern_tensor_data(out), acc, (size_t)n * sizeof(int64_t));
        } else {
            double *a = (double *)acc;
            if (kind == R_MEAN)
                for (int64_t i = 0; i < n; i++)
                    a[i] /= cnt;
            store_from_double(a, out, n);
        }
        free(acc);
        break;
    }
    case R_MAX:
    case R_MIN:
    case R_ALL:
    case R_ANY: {
        const red_vt *vt = kind == R_MAX   ? &vt_max[dt]
                           : kind == R_MIN ? &vt_min[dt]
                           : kind == R_ALL ? &vt_all[dt]
                                           : &vt_any[dt];
        char *acc = plan_run(&P, vt, NULL);
        if (!acc) {
            rc = -1;
            break;
        }
        memcpy(fern_tensor_data(out), acc, (size_t)n * vt->asz);
        free(acc);
        break;
    }
    case R_VAR:
    case R_STD: {
        double *mean = (double *)plan_run(&P, &vt_sum[dt], NULL);
        if (!mean) {
            rc = -1;
            break;
        }
        for (int64_t i = 0; i < n; i++)
            mean[i] /= cnt;
        double *m2 = (double *)plan_run(&P, &vt_sqdev[dt], mean);
        free(mean);
        if (!m2) {
            rc = -1;
            break;
        }
        double denom = cnt - (double)c->attrs[1].i;
        if (denom < 0)
            denom = 0;
        for (int64_t i = 0; i < n; i++) {
            double v = m2[i] / denom;
            m2[i] = kind == R_STD ? sqrt(v) : v;
        }
        store_from_double(m2, out, n);
        free(m2);
        break;
    }
    case R_LSE: {
        char *mx = plan_run(&P, &vt_max[dt], NULL);
        double *shift = malloc((size_t)(n ? n : 1) * sizeof(double));
        if (!mx || !shift) {
            free(mx);
            free(shift);
            if (fern_last_status() == FERN_OK)
                fern_set_error(FERN_ERR_NOMEM, "logsumexp: out of memory");
            rc = -1;
            break;
        }
        for (int64_t i = 0; i < n; i++) {
            double m = dt == FERN_F32 ? (double)((float *)mx)[i] : ((double *)mx)[i];
            shift[i] = isfinite(m) ? m : 0.0;
        }
        free(mx);
        double *s = (double *)plan_run(&P, &vt_sumexp[dt], shift);
        if (!s) {
            free(shift);
            rc = -1;
            break;
        }
        for (int64_t i = 0; i < n; i++)
            s[i] = log(s[i]) + shift[i];
        free(shift);
        store_from_double(s, out, n);
        free(s);
        break;
    }
    default: rc = -1; break;
    }
    fern_release(conv);
    return rc;
}

/* ---- the op definitions ------------------------------------------------ */

static const fern_attr_spec red_attrs[] = {{"axes", FERN_ATTR_INTS, 0, NULL},
                                           {"keepdims", FERN_ATTR_INT, 0, NULL}};
static const fern_attr_spec var_attrs[] = {{"axes", FERN_ATTR_INTS, 0, NULL},
                                           {"correction", FERN_ATTR_INT, 1, NULL},
                                           {"keepdims", FERN_ATTR_INT, 0, NULL}};

#define DT_NUM (FERN_DT_FLOAT | FERN_DT_INT | FERN_DT(FERN_BOOL))

/* ---- gradient rules ------------------------------------------------------
 * Written with public ops (they trace and differentiate again). `unreduce`
 * brings an output cotangent back to the input's shape. */

static int reduce_mask_of(const fern_op_call *c, int *mask)
{
    const fern_tensor *x = c->in[0];
    const fern_attr *axes = &c->attrs[0];
    for (int d = 0; d < x->ndim; d++)
        mask[d] = axes->n == 0;
    for (int k = 0; k < axes->n; k++) {
        int64_t a = axes->ints[k] < 0 ? axes->ints[k] + x->ndim : axes->ints[k];
        if (a >= 0 && a < x->ndim)
            mask[a] = 1;
    }
    int64_t n = 1;
    for (int d = 0; d < x->ndim; d++)
        if (mask[d])
            n *= x->shape[d];
    return (int)(n > INT32_MAX ? INT32_MAX : n);
}

/* t (the reduced shape, keepdims or not) reshaped to keepdims form and
 * expanded to x's shape. */
static fern_tensor *unreduce(const fern_op_call *c, fern_tensor *t)
{
    const fern_tensor *x = c->in[0];
    int mask[FERN_MAX_DIMS];
    reduce_mask_of(c, mask);
    int64_t keep[FERN_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        keep[d] = mask[d] ? 1 : x->shape[d];
    return fern_expand(fern_reshape(t, x->ndim, keep), x->ndim, x->shape);
}

static int64_t reduced_count(const fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int mask[FERN_MAX_DIMS];
    reduce_mask_of(c, mask);
    int64_t n = 1;
    for (int d = 0; d < x->ndim; d++)
        if (mask[d])
            n *= x->shape[d];
    return n;
}

static int sum_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    gi[0] = unreduce(c, g[0]);
    return gi[0] ? 0 : -1;
}

static int mean_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    gi[0] = fern_div_scalar(unreduce(c, g[0]), (double)reduced_count(c));
    return gi[0] ? 0 : -1;
}

/* Exact at zeros: with one zero in a slice, its gradient is the product of
 * the others; with two or more, every gradient of the slice is zero. */
static int prod_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0];
    int mask[FERN_MAX_DIMS], axes[FERN_MAX_DIMS], n = 0;
    reduce_mask_of(c, mask);
    for (int d = 0; d < x->ndim; d++)
        if (mask[d])
            axes[n++] = d;
    fern_tensor *zero = fern_scalar(x->dtype, 0), *is_zero = fern_eq(x, zero);
    fern_tensor *nz = fern_where(is_zero, fern_ones_like(x), x);
    fern_tensor *p_others = fern_prod(nz, axes, n, 1);
    fern_tensor *cnt = fern_sum(fern_cast(is_zero, x->dtype), axes, n, 1);
    fern_tensor *out_keep = unreduce(c, c->out[0]);
    fern_tensor *at_zero = fern_where(fern_eq(cnt, fern_scalar(x->dtype, 1)), p_others, zero);
    fern_tensor *local = fern_where(is_zero, fern_expand(at_zero, x->ndim, x->shape), fern_div(out_keep, nz));
    gi[0] = fern_mul(unreduce(c, g[0]), local);
    return gi[0] ? 0 : -1;
}

/* Ties share the gradient equally (like torch.amax/amin). */
static int minmax_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0];
    fern_tensor *hit = fern_cast(fern_eq(x, unreduce(c, c->out[0])), x->dtype);
    int mask[FERN_MAX_DIMS], axes[FERN_MAX_DIMS], n = 0;
    reduce_mask_of(c, mask);
    for (int d = 0; d < x->ndim; d++)
        if (mask[d])
            axes[n++] = d;
    fern_tensor *count = fern_sum(hit, axes, n, 1);
    gi[0] = fern_mul(unreduce(c, g[0]), fern_div(hit, count));
    return gi[0] ? 0 : -1;
}

static int lse_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0];
    gi[0] = fern_mul(unreduce(c, g[0]), fern_exp(fern_sub(x, unreduce(c, c->out[0]))));
    return gi[0] ? 0 : -1;
}

static fern_tensor *centered(const fern_op_call *c)
{
    fern_tensor *x = c->in[0];
    int mask[FERN_MAX_DIMS], axes[FERN_MAX_DIMS], n = 0;
    reduce_mask_of(c, mask);
    for (int d = 0; d < x->ndim; d++)
        if (mask[d])
            axes[n++] = d;
    return fern_sub(x, fern_mean(x, axes, n, 1));
}

static double dof(const fern_op_call *c)
{
    double d = (double)reduced_count(c) - (double)c->attrs[1].i;
    return d > 0 ? d : 0;
}

static int var_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    gi[0] = fern_mul(unreduce(c, g[0]), fern_mul_scalar(centered(c), 2.0 / dof(c)));
    return gi[0] ? 0 : -1;
}

static int std_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    /* where std is 0 (constant data) the subgradient 0 is used: torch gives
     * nan there; 0 is the true derivative for a single element */
    fern_tensor *s = unreduce(c, c->out[0]), *zero = fern_zeros_like(c->in[0]);
    fern_tensor *d = fern_div(fern_div_scalar(centered(c), dof(c)), fern_where(fern_eq(s, zero), fern_ones_like(c->in[0]), s));
    gi[0] = fern_mul(unreduce(c, g[0]), fern_where(fern_eq(s, zero), zero, d));
    return gi[0] ? 0 : -1;
}

#define RED_OP(NAME, KIND, ATTRS, DTYPES, FLAGS, DOC, GRAD)                                            \
    static int NAME##_infer(fern_op_call *c) { return red_infer(c, KIND); }                    \
    static int NAME##_kernel(fern_op_call *c) { return red_kernel(c, KIND); }                  \
    static const fern_op_def op_##NAME = {                                                     \
        .name = #NAME, .n_inputs = 1, .n_outputs = 1, .attrs = ATTRS,                          \
        .n_attrs = (int)(sizeof ATTRS / sizeof ATTRS[0]), .infer = NAME##_infer,               \
        .kernel = {[FERN_CPU] = NAME##_kernel}, .dtypes = DTYPES, .dtype_arg = 0,              \
        .flags = FERN_OPF_HALF_VIA_F32 | (FLAGS), .doc = DOC, .grad = GRAD};

RED_OP(sum, R_SUM, red_attrs, DT_NUM, 0, "sum over axes (integers and bool give i64)", sum_grad)
RED_OP(mean, R_MEAN, red_attrs, FERN_DT_FLOAT, 0, "mean over axes (floating point only)", mean_grad)
RED_OP(prod, R_PROD, red_attrs, DT_NUM, 0, "product over axes (integers and bool give i64)", prod_grad)
RED_OP(max, R_MAX, red_attrs, DT_NUM, 0, "maximum over axes (nan propagates)", minmax_grad)
RED_OP(min, R_MIN, red_attrs, DT_NUM, 0, "minimum over axes (nan propagates)", minmax_grad)
RED_OP(var, R_VAR, var_attrs, FERN_DT_FLOAT, 0,
       "variance over axes, divided by max(0, N - correction)", var_grad)
RED_OP(std, R_STD, var_attrs, FERN_DT_FLOAT, 0,
       "standard deviation over axes, sqrt of var", std_grad)
RED_OP(logsumexp, R_LSE, red_attrs, DT_NUM, 0,
       "log(sum(exp(x))) over axes, stabilized by the max (integers give f32)", lse_grad)
RED_OP(all, R_ALL, red_attrs, DT_NUM, FERN_OPF_NONDIFF, "1 where every element is nonzero (bool)", NULL)
RED_OP(any, R_ANY, red_attrs, DT_NUM, FERN_OPF_NONDIFF, "1 where some element is nonzero (bool)", NULL)

static fern_tensor *red_call(const fern_op_def *op, fern_tensor *x, const int *axes, int n_axes,
                             int keepdims)
{
    fern_attr a[2] = {fern__attr_ints_i(axes, axes ? n_axes : 0), fern__attr_int(keepdims)};
    return fern__op1(op, 1, &x, a);
}

fern_tensor *fern_sum(fern_tensor *x, const int *axes, int n_axes, int keepdims)
{
    return red_call(&op_sum, x, axes, n_axes, keepdims);
}
fern_tensor *fern_mean(fern_tensor *x, const int *axes, int n_axes, int keepdims)
{
    return red_call(&op_mean, x, axes, n_axes, keepdims);
}
fern_tensor *fern_prod(fern_tensor *x, const int *axes, int n_axes, int keepdims)
{
    return red_call(&op_prod, x, axes, n_axes, keepdims);
}
fern_tensor *fern_max(fern_tensor *x, const int *axes, int n_axes, int keepdims)
{
    return red_call(&op_max, x, axes, n_axes, keepdims);
}
fern_tensor *fern_min(fern_tensor *x, const int *axes, int n_axes, int keepdims)
{
    return red_call(&op_min, x, axes, n_axes, keepdims);
}
fern_tensor *fern_logsumexp(fern_tensor *x, const int *axes, int n_axes, int keepdims)
{
    return red_call(&op_logsumexp, x, axes, n_axes, keepdims);
}
fern_tensor *fern_all(fern_tensor *x, const int *axes, int n_axes, int keepdims)
{
    return red_call(&op_all, x, axes, n_axes, keepdims);
}
fern_tensor *fern_any(fern_tensor *x, const int *axes, int n_axes, int keepdims)
{
    return red_call(&op_any, x, axes, n_axes, keepdims);
}
fern_tensor *fern_var(fern_tensor *x, const int *axes, int n_axes, int correction, int keepdims)
{
    fern_attr a[3] = {fern__attr_ints_i(axes, axes ? n_axes : 0), fern__attr_int(correction),
                      fern__attr_int(keepdims)};
    return fern__op1(&op_var, 1, &x, a);
}
fern_tensor *fern_std(fern_tensor *x, const int *axes, int n_axes, int correction, int keepdims)
{
    fern_attr a[3] = {fern__attr_ints_i(axes, axes ? n_axes : 0), fern__attr_int(correction),
                      fern__attr_int(keepdims)};
    return fern__op1(&op_std, 1, &x, a);
}

/* ---- argmax / argmin --------------------------------------------------- */

/* (outer, n, inner) split of a contiguous tensor around axis a */
static void split_axis(const fern_tensor *x, int a, int64_t *outer, int64_t *n, int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    *n = x->ndim ? x->shape[a] : 1;
    for (int d = 0; d < a && d < x->ndim; d++)
        *outer *= x->shape[d];
    for (int d = a + 1; d < x->ndim; d++)
        *inner *= x->shape[d];
}

typedef struct {
    const void *x;
    void *out;
    int64_t outer, n, inner, n_chunks;
} line_job;

/* BETTER_ARG(v, b): v strictly better than b; the first nan wins for both. */
#define ARGB_MAX(v, b) ((v) > (b) || ((v) != (v) && (b) == (b)))
#define ARGB_MIN(v, b) ((v) < (b) || ((v) != (v) && (b) == (b)))
#define DEF_ARG(NAME, T, BETTER)                                                                 \
    static void NAME(void *ctx, int64_t i0, int64_t i1)                                        \
    {                                                                                          \
        const line_job *J = ctx;                                                               \
        const T *x = J->x;                                                                     \
        int64_t *out = J->out;                                                                 \
        int64_t n = J->n, inner = J->inner;                                                    \
        if (inner == 1) {                                                                      \
            for (int64_t o = i0; o < i1; o++) {                                                \
                const T *l = x + o * n;                                                        \
                T best = l[0];                                                                 \
                int64_t bi = 0;                                                                \
                for (int64_t i = 1; i < n; i++)                                                \
                    if (BETTER(l[i], best)) {                                                  \
                        best = l[i];                                                           \
                        bi = i;                                                                \
                    }                                                                          \
                out[o] = bi;                                                                   \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        T best[RED_CHUNK];                                                                     \
        int64_t bi[RED_CHUNK];                                                                 \
        for (int64_t it = i0; it < i1; it++) {                                                 \
            int64_t o = it / J->n_chunks, j0 = (it % J->n_chunks) * RED_CHUNK;                 \
            int64_t cl = inner - j0 < RED_CHUNK ? inner - j0 : RED_CHUNK;                      \
            const T *base = x + o * n * inner + j0;                                            \
            for (int64_t j = 0; j < cl; j++) {                                                 \
                best[j] = base[j];                                                             \
                bi[j] = 0;                                                                     \
            }                                                                                  \
            for (int64_t i = 1; i < n; i++) {                                                  \
                const T *row = base + i * inner;                                               \
                for (int64_t j = 0; j < cl; j++) {                                             \
                    T v = row[j];                                                              \
                    int c = BETTER(v, best[j]);                                                \
                    best[j] = c ? v : best[j];                                                 \
                    bi[j] = c ? i : bi[j];                                                     \
                }                                                                              \
            }                                                                                  \
            memcpy(out + o * inner + j0, bi, (size_t)cl * sizeof(int64_t));                    \
        }                                                                                      \
    }

DEF_ARG(argmax_f32, float, ARGB_MAX)
DEF_ARG(argmax_f64, double, ARGB_MAX)
DEF_ARG(argmax_i8, int8_t, ARGB_MAX)
DEF_ARG(argmax_u8, uint8_t, ARGB_MAX)
DEF_ARG(argmax_i32, int32_t, ARGB_MAX)
DEF_ARG(argmax_i64, int64_t, ARGB_MAX)
DEF_ARG(argmin_f32, float, ARGB_MIN)
DEF_ARG(argmin_f64, double, ARGB_MIN)
DEF_ARG(argmin_i8, int8_t, ARGB_MIN)
DEF_ARG(argmin_u8, uint8_t, ARGB_MIN)
DEF_ARG(argmin_i32, int32_t, ARGB_MIN)
DEF_ARG(argmin_i64, int64_t, ARGB_MIN)

typedef void (*range_fn)(void *, int64_t, int64_t);
static const range_fn argmax_fns[FERN_DTYPE_COUNT] = {
    [FERN_F32] = argmax_f32, [FERN_F64] = argmax_f64, [FERN_I8] = argmax_i8,
    [FERN_U8] = argmax_u8,   [FERN_I32] = argmax_i32, [FERN_I64] = argmax_i64};
static const range_fn argmin_fns[FERN_DTYPE_COUNT] = {
    [FERN_F32] = argmin_f32, [FERN_F64] = argmin_f64, [FERN_I8] = argmin_i8,
    [FERN_U8] = argmin_u8,   [FERN_I32] = argmin_i32, [FERN_I64] = argmin_i64};

static const fern_attr_spec arg_attrs[] = {{"axis", FERN_ATTR_INT, -1, NULL},
                                           {"keepdims", FERN_ATTR_INT, 0, NULL}};

static int arg_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    char b[128];
    if (x->dtype == FERN_BOOL)
        return fern__err_dtype(c, x, "expected a numeric (not bool) input");
    int a;
    if (one_axis(c, c->attrs[0].i, &a))
        return -1;
    if (x->ndim && x->shape[a] == 0) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: expected reduction axis %d to have non-zero size (no %s of an empty "
                       "tensor), input %s",
                       c->op->name, a, c->op->name, fern_tensor_desc(x, b, sizeof b));
        return -1;
    }
    int mask[FERN_MAX_DIMS] = {0};
    if (x->ndim)
        mask[a] = 1;
    int ond;
    int64_t oshape[FERN_MAX_DIMS];
    fern__reduce_shape(x->ndim, x->shape, mask, (int)c->attrs[1].i, &ond, oshape);
    fern__set_out(c, 0, FERN_I64, ond, oshape);
    return 0;
}

static int line_run(fern_op_call *c, const range_fn *fns, int64_t per_line_cost)
{
    const fern_tensor *x = c->in[0];
    int a;
    if (one_axis(c, c->attrs[0].i, &a))
        return -1;
    line_job J = {.x = fern_tensor_data(x), .out = fern_tensor_data(c->out[0])};
    split_axis(x, a, &J.outer, &J.n, &J.inner);
    range_fn fn = fns[x->dtype];
    if (!fn) {
        fern__err_dtype(c, x, "unsupported dtype");
        return -1;
    }
    int64_t items, work;
    if (J.inner == 1) {
        items = J.outer;
        work = J.n * per_line_cost;
    } else {
        J.n_chunks = (J.inner + RED_CHUNK - 1) / RED_CHUNK;
        items = J.outer * J.n_chunks;
        work = J.n * (J.inner < RED_CHUNK ? J.inner : RED_CHUNK) * per_line_cost;
    }
    fern_parallel_for(items, work >= RED_WORK ? 1 : RED_WORK / (work ? work : 1), fn, &J);
    return 0;
}

static int argmax_kernel(fern_op_call *c) { return line_run(c, argmax_fns, 1); }
static int argmin_kernel(fern_op_call *c) { return line_run(c, argmin_fns, 1); }

static const fern_op_def op_argmax = {
    .name = "argmax", .n_inputs = 1, .n_outputs = 1, .attrs = arg_attrs, .n_attrs = 2,
    .infer = arg_infer, .kernel = {[FERN_CPU] = argmax_kernel},
    .dtypes = FERN_DT_FLOAT | FERN_DT_INT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS | FERN_OPF_NONDIFF,
    .doc = "index (i64) of the first maximum along axis (a nan counts as the maximum)"};
static const fern_op_def op_argmin = {
    .name = "argmin", .n_inputs = 1, .n_outputs = 1, .attrs = arg_attrs, .n_attrs = 2,
    .infer = arg_infer, .kernel = {[FERN_CPU] = argmin_kernel},
    .dtypes = FERN_DT_FLOAT | FERN_DT_INT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS | FERN_OPF_NONDIFF,
    .doc = "index (i64) of the first minimum along axis (a nan counts as the minimum)"};

fern_tensor *fern_argmax(fern_tensor *x, int axis, int keepdims)
{
    fern_attr a[2] = {fern__attr_int(axis), fern__attr_int(keepdims)};
    return fern__op1(&op_argmax, 1, &x, a);
}
fern_tensor *fern_argmin(fern_tensor *x, int axis, int keepdims)
{
    fern_attr a[2] = {fern__attr_int(axis), fern__attr_int(keepdims)};
    return fern__op1(&op_argmin, 1, &x, a);
}

/* ---- cumsum / cumprod -------------------------------------------------- */

#define DEF_CUM(NAME, T, OT, ACC, OP, ID)                                                        \
    static void NAME(void *ctx, int64_t i0, int64_t i1)                                        \
    {                                                                                          \
        const line_job *J = ctx;                                                               \
        const T *x = J->x;                                                                     \
        OT *out = J->out;                                                                      \
        int64_t n = J->n, inner = J->inner;                                                    \
        if (inner == 1) {                                                                      \
            for (int64_t o = i0; o < i1; o++) {                                                \
                const T *l = x + o * n;                                                        \
                OT *ol = out + o * n;                                                          \
                ACC a = ID;                                                                    \
                for (int64_t i = 0; i < n; i++) {                                              \
                    a = a OP(ACC) l[i];                                                        \
                    ol[i] = (OT)a;                                                             \
                }                                                                              \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        ACC acc[RED_CHUNK];                                                                    \
        for (int64_t it = i0; it < i1; it++) {                                                 \
            int64_t o = it / J->n_chunks, j0 = (it % J->n_chunks) * RED_CHUNK;                 \
            int64_t cl = inner - j0 < RED_CHUNK ? inner - j0 : RED_CHUNK;                      \
            for (int64_t j = 0; j < cl; j++)                                                   \
                acc[j] = ID;                                                                   \
            for (int64_t i = 0; i < n; i++) {                                                  \
                const T *restrict row = x + (o * n + i) * inner + j0;                          \
                OT *restrict orow = out + (o * n + i) * inner + j0;                            \
                for (int64_t j = 0; j < cl; j++) {                                             \
                    acc[j] = acc[j] OP(ACC) row[j];                                            \
                    orow[j] = (OT)acc[j];                                                      \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

/* f32 scans accumulate in double (like torch on the CPU); integers wrap. */
DEF_CUM(cumsum_f32, float, float, double, +, 0.0)
DEF_CUM(cumsum_f64, double, double, double, +, 0.0)
DEF_CUM(cumsum_i8, int8_t, int64_t, uint64_t, +, 0)
DEF_CUM(cumsum_u8, uint8_t, int64_t, uint64_t, +, 0)
DEF_CUM(cumsum_i32, int32_t, int64_t, uint64_t, +, 0)
DEF_CUM(cumsum_i64, int64_t, int64_t, uint64_t, +, 0)
DEF_CUM(cumprod_f32, float, float, double, *, 1.0)
DEF_CUM(cumprod_f64, double, double, double, *, 1.0)
DEF_CUM(cumprod_i8, int8_t, int64_t, uint64_t, *, 1)
DEF_CUM(cumprod_u8, uint8_t, int64_t, uint64_t, *, 1)
DEF_CUM(cumprod_i32, int32_t, int64_t, uint64_t, *, 1)
DEF_CUM(cumprod_i64, int64_t, int64_t, uint64_t, *, 1)

static const range_fn cumsum_fns[FERN_DTYPE_COUNT] = {
    [FERN_F32] = cumsum_f32, [FERN_F64] = cumsum_f64, [FERN_I8] = cumsum_i8,
    [FERN_U8] = cumsum_u8,   [FERN_I32] = cumsum_i32, [FERN_I64] = cumsum_i64,
    [FERN_BOOL] = cumsum_u8};
static const range_fn cumprod_fns[FERN_DTYPE_COUNT] = {
    [FERN_F32] = cumprod_f32, [FERN_F64] = cumprod_f64, [FERN_I8] = cumprod_i8,
    [FERN_U8] = cumprod_u8,   [FERN_I32] = cumprod_i32, [FERN_I64] = cumprod_i64,
    [FERN_BOOL] = cumprod_u8};

static const fern_attr_spec cum_attrs[] = {{"axis", FERN_ATTR_INT, -1, NULL}};

static int cum_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int a;
    if (one_axis(c, c->attrs[0].i, &a))
        return -1;
    fern__set_out(c, 0, is_float(x->dtype) ? x->dtype : FERN_I64, x->ndim, x->shape);
    return 0;
}

static int cumsum_kernel(fern_op_call *c) { return line_run(c, cumsum_fns, 1); }
static int cumprod_kernel(fern_op_call *c) { return line_run(c, cumprod_fns, 1); }


static int cum_axis(const fern_op_call *c)
{
    int nd = c->in[0]->ndim, a = (int)c->attrs[0].i;
    return nd == 0 ? 0 : a < 0 ? a + nd : a;
}

/* reverse cumulative sum along the axis */
static fern_tensor *rcumsum(fern_tensor *t, int axis)
{
    if (t && t->ndim == 0)
        return t;
    return fern_flip(fern_cumsum(fern_flip(t, &axis, 1), axis), &axis, 1);
}

static int cumsum_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    gi[0] = rcumsum(g[0], cum_axis(c));
    return gi[0] ? 0 : -1;
}

/* Exact at zeros: before a slice's first zero, rcumsum(g*out)/x; at the
 * first zero, rcumsum(g * cumprod(x with that zero replaced by 1)); after
 * it, zero (which the first formula gives, since out is 0 there). */
static int cumprod_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0];
    int axis = cum_axis(c);
    fern_tensor *is_zero = fern_eq(x, fern_scalar(x->dtype, 0));
    fern_tensor *ones = fern_ones_like(x);
    fern_tensor *nz = fern_where(is_zero, ones, x);
    fern_tensor *first = fern_logical_and(
        is_zero, fern_eq(fern_cumsum(fern_cast(is_zero, FERN_I64), axis), fern_scalar(FERN_I64, 1)));
    fern_tensor *out2 = fern_cumprod(fern_where(first, ones, x), axis);
    fern_tensor *regular = fern_div(rcumsum(fern_mul(g[0], c->out[0]), axis), nz);
    gi[0] = fern_where(first, rcumsum(fern_mul(g[0], out2), axis), regular);
    return gi[0] ? 0 : -1;
}

static const fern_op_def op_cumsum = {
    .name = "cumsum", .n_inputs = 1, .n_outputs = 1, .attrs = cum_attrs, .n_attrs = 1, .grad = cumsum_grad,
    .infer = cum_infer, .kernel = {[FERN_CPU] = cumsum_kernel}, .dtypes = DT_NUM, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "inclusive running sum along axis (integers and bool give i64)"};
static const fern_op_def op_cumprod = {
    .name = "cumprod", .n_inputs = 1, .n_outputs = 1, .attrs = cum_attrs, .n_attrs = 1, .grad = cumprod_grad,
    .infer = cum_infer, .kernel = {[FERN_CPU] = cumprod_kernel}, .dtypes = DT_NUM, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "inclusive running product along axis (integers and bool give i64)"};

fern_tensor *fern_cumsum(fern_tensor *x, int axis)
{
    fern_attr a = fern__attr_int(axis);
    return fern__op1(&op_cumsum, 1, &x, &a);
}
fern_tensor *fern_cumprod(fern_tensor *x, int axis)
{
    fern_attr a = fern__attr_int(axis);
    return fern__op1(&op_cumprod, 1, &x, &a);
}

const fern_op_def *const fern_ops_reduce[] = {
    &op_sum,    &op_mean,   &op_prod,   &op_max,    &op_min,    &op_var,   &op_std,
    &op_logsumexp, &op_all, &op_any,    &op_argmax, &op_argmin, &op_cumsum, &op_cumprod,
    NULL};
