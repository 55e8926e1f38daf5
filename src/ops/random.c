/* Random ops, counter based. Each op takes (seed, offset) attributes; the
 * public functions draw them from the thread's generator (fern__rng_next)
 * and by-name calls get them filled in by the registry. Element i of the
 * output comes from Philox4x32-10 with key = seed, counter = (offset, block)
 * where block = i / (elements per block), so a result never depends on how
 * the work is split across threads. Rejection steps (randint, randperm)
 * draw their extra words from blocks with the top byte of the counter set
 * to the attempt number, which plain blocks never reach.
 *
 * Float outputs: f32 and f64 natively; f16 and bf16 are generated in f32
 * and rounded (these ops have no inputs, so the dispatcher's f32 detour for
 * halves does not apply). Values are kept inside their documented range
 * after rounding to the output dtype. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_def.h"

#define TWO_PI 6.283185307179586476925286766559

enum { A_SHAPE = 0, A_DTYPE = 1 }; /* shaped ops: shape, dtype, params..., seed, offset */

/* ---- philox helpers ---------------------------------------------------- */

#define ATTEMPT_SHIFT 56

/* Source of further 32-bit words for element `elem` once its own word was
 * rejected: blocks (attempt << 56 | elem), four words each. */
typedef struct {
    uint64_t seed, offset, elem;
    uint32_t w[4];
    int used;
    uint64_t attempt;
} extra_words;

static void extra_init(extra_words *x, uint64_t seed, uint64_t offset, uint64_t elem)
{
    x->seed = seed;
    x->offset = offset;
    x->elem = elem;
    x->used = 4;
    x->attempt = 0;
}

static uint32_t extra_next(extra_words *x)
{
    if (x->used == 4) {
        x->attempt++;
        fern__philox(x->seed, x->offset, (x->attempt << ATTEMPT_SHIFT) | x->elem, x->w);
        x->used = 0;
    }
    return x->w[x->used++];
}

static uint64_t mul_64x64(uint64_t a, uint64_t b, uint64_t *lo)
{
    uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
    *lo = (mid << 32) | (uint32_t)p00;
    return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

/* Unbiased integer in [0, r) from a 32-bit word, 1 <= r <= 2^32 (Lemire's
 * multiply-shift with rejection). */
static uint64_t bounded32(uint32_t w, uint64_t r, extra_words *x)
{
    if (r == ((uint64_t)1 << 32))
        return w;
    uint64_t m = (uint64_t)w * r;
    uint32_t l = (uint32_t)m;
    if (l < (uint32_t)r) {
        uint32_t t = (uint32_t)(-(uint32_t)r) % (uint32_t)r;
        while (l < t) {
            w = extra_next(x);
            m = (uint64_t)w * r;
            l = (uint32_t)m;
        }
    }
    return m >> 32;
}

/* Unbiased integer in [0, r) from a 64-bit word, r >= 1. */
static uint64_t bounded64(uint64_t w, uint64_t r, extra_words *x)
{
    uint64_t l, h = mul_64x64(w, r, &l);
    if (l < r) {
        uint64_t t = (0 - r) % r;
        while (l < t) {
            uint64_t hi = extra_next(x);
            w = hi << 32 | extra_next(x);
            h = mul_64x64(w, r, &l);
        }
    }
    return h;
}

/* ---- dtype helpers for range guarantees -------------------------------- */

static double round_to(fern_dtype dt, double v)
{
    unsigned char b[8];
    fern__store(b, dt, v);
    return fern__load(b, dt);
}

/* The next representable value of dtype dt after v (a value of dt) in
 * direction dir (+1 or -1). */
static double step_to(fern_dtype dt, double v, int dir)
{
    if (dt == FERN_F64)
        return nextafter(v, dir > 0 ? INFINITY : -INFINITY);
    if (dt == FERN_F32)
        return nextafterf((float)v, dir > 0 ? INFINITY : -INFINITY);
    uint16_t h;
    fern__store(&h, dt, v);
    if ((h & 0x7fff) == 0)
        h = dir > 0 ? 0x0001 : 0x8001;
    else if ((v > 0) == (dir > 0))
        h++;
    else
        h--;
    return fern__load(&h, dt);
}

/* Smallest value of dt that is >= lo, and largest that is <= hi (or < hi
 * when open_hi). */
static double cap_low(fern_dtype dt, double lo)
{
    double r = round_to(dt, lo);
    return r < lo ? step_to(dt, r, +1) : r;
}

static double cap_high(fern_dtype dt, double hi, int open_hi)
{
    double r = round_to(dt, hi);
    return r > hi || (open_hi && r == hi) ? step_to(dt, r, -1) : r;
}

static int float_dtype(const char *op, const fern_attr *a, fern_dtype *dt)
{
    if (a->i < 0 || a->i >= FERN_DTYPE_COUNT || !fern_dtype_is_float((fern_dtype)a->i)) {
        fern_set_error(FERN_ERR_INVALID, "%s: dtype must be a float type (f32, f64, f16, bf16), got %s",
                       op, fern_dtype_name((fern_dtype)a->i));
        return -1;
    }
    *dt = (fern_dtype)a->i;
    return 0;
}

static int shape_out(fern_op_call *c, fern_dtype dt)
{
    const fern_attr *s = &c->attrs[A_SHAPE];
    char b[160];
    if (s->n < 0 || s->n > FERN_MAX_DIMS) {
        fern_set_error(FERN_ERR_INVALID, "%s: %d dims is more than %d", c->op->name, s->n,
                       FERN_MAX_DIMS);
        return -1;
    }
    for (int d = 0; d < s->n; d++)
        if (s->ints[d] < 0) {
            fern_set_error(FERN_ERR_INVALID, "%s: negative dimension %lld at axis %d of shape %s",
                           c->op->name, (long long)s->ints[d], d,
                           fern__shape_str(s->n, s->ints, b, sizeof b));
            return -1;
        }
    fern__set_out(c, 0, dt, s->n, s->ints);
    return 0;
}

static int check_finite(const char *op, const char *what, double v)
{
    if (!isfinite(v)) {
        fern_set_error(FERN_ERR_INVALID, "%s: %s must be finite, got %g", op, what, v);
        return -1;
    }
    return 0;
}

/* ---- value transforms ---------------------------------------------------- */

/* uniform [0,1) from 24 / 53 random bits */
static inline double u24(uint32_t w) { return (double)(w >> 8) * 0x1p-24; }
static inline double u53(uint32_t a, uint32_t b)
{
    return (double)((((uint64_t)a << 32) | b) >> 11) * 0x1p-53;
}

static inline double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* -- standard normal CDF and its inverse, for the truncated normal -- */

static double norm_cdf(double x) { return 0.5 * erfc(-x * 0.70710678118654752440); }

/* Inverse standard normal CDF: Acklam's rational approximation (relative
 * error below 1.2e-9, enough for f32 and halves), refined by one Halley
 * step when `refine` (about 1e-15, for f64). 0 < p < 1. */
static double norm_ppf(double p, int refine)
{
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                               -2.759285104469687e+02, 1.383577518672690e+02,
                               -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                               -1.556989798598866e+02, 6.680131188771972e+01,
                               -1.328068155288572e+01};
    static const double cc[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                -2.400758277161838e+00, -2.549732539343734e+00,
                                4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                               2.445134137142996e+00, 3.754408661907416e+00};
    double x;
    if (p < 0.02425) {
        double q = sqrt(-2 * log(p));
        x = (((((cc[0] * q + cc[1]) * q + cc[2]) * q + cc[3]) * q + cc[4]) * q + cc[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p > 1 - 0.02425) {
        double q = sqrt(-2 * log1p(-p));
        x = -(((((cc[0] * q + cc[1]) * q + cc[2]) * q + cc[3]) * q + cc[4]) * q + cc[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else {
        double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    if (refine && x * x < 1400) { /* Halley step (exp(x^2/2) stays finite) */
        double e = norm_cdf(x) - p;
        double u = e * 2.50662827463100050242 * exp(x * x / 2);
        x = x - u / (1 + x * u / 2);
    }
    return x;
}

/* log of the upper tail Q(x) = P(Z > x), x >= 0; accurate far beyond where
 * Q underflows. */
static double log_q(double x)
{
    if (x < 30)
        return log(0.5 * erfc(x * 0.70710678118654752440));
    double r = 1 / (x * x);
    double series = 1 - r * (1 - 3 * r * (1 - 5 * r * (1 - 7 * r)));
    return -0.5 * x * x - log(x) - 0.91893853320467274178 + log(series);
}

/* Standard normal truncated to [al, be] with 0 <= al < be (be may be inf),
 * by inverting log Q with Newton's method: it converges from above, since
 * log Q is concave and decreasing. */
static double trunc_upper_tail(double u, double al, double be)
{
    double lqa = log_q(al);
    double lqb = isinf(be) ? -INFINITY : log_q(be);
    /* Q(x) = Q(al) * (1 - u * (1 - Q(be)/Q(al))) */
    double target = lqa + log1p(-u * -expm1(lqb - lqa));
    double x = al;
    for (int it = 0; it < 100; it++) {
        double lq = log_q(x);
        double slope = -exp(-0.5 * x * x - 0.91893853320467274178 - lq); /* d log Q / dx */
        double nx = x - (lq - target) / slope;
        if (nx > be)
            nx = be;
        if (nx < al)
            nx = al;
        if (fabs(nx - x) <= 1e-15 * nx) {
            x = nx;
            break;
        }
        x = nx;
    }
    return x;
}

/* Sampling plan for the standard normal truncated to [al, be], al < be:
 * the constants of the inverse-CDF method, computed once per op. */
typedef struct {
    int flip;         /* sample [-be, -al] and negate                    */
    int mode;         /* 0: al < 0 < be, 1: 0 <= al < 30, 2: al >= 30   */
    int refine;       /* full double accuracy (f64 output)               */
    double al, be;
    double pa, qb, mass; /* mode 0: Phi(al), Q(be), Phi(be) - Phi(al)    */
    double qa;           /* mode 1: Q(al) (and qb = Q(be))               */
} trunc_plan;

static trunc_plan trunc_make_plan(double al, double be, int refine)
{
    trunc_plan p = {0};
    p.refine = refine;
    if (be <= 0) {
        double t = al;
        al = -be;
        be = -t;
        p.flip = 1;
    }
    p.al = al;
    p.be = be;
    if (al >= 30) {
        p.mode = 2;
    } else if (al >= 0) {
        p.mode = 1;
        p.qa = norm_cdf(-al);
        p.qb = norm_cdf(-be);
    } else {
        p.pa = norm_cdf(al);
        p.qb = norm_cdf(-be);
        /* no cancellation: the two erf terms have opposite signs */
        p.mass = 0.5 * (erf(be * 0.70710678118654752440) - erf(al * 0.70710678118654752440));
    }
    return p;
}

/* One standard truncated normal value from u in (0, 1). */
static double trunc_sample(const trunc_plan *p, double u)
{
    double x;
    switch (p->mode) {
    case 2: /* Q(al) is near underflow: invert in log space */
        x = trunc_upper_tail(u, p->al, p->be);
        break;
    case 1: /* invert the upper tail Q, small and accurate here */
        x = -norm_ppf(p->qa * (1 - u) + p->qb * u, p->refine);
        break;
    default: { /* invert from whichever end is nearer (small probabilities) */
        double q = p->pa + u * p->mass;
        x = q <= 0.5 ? norm_ppf(q, p->refine) : -norm_ppf(p->qb + (1 - u) * p->mass, p->refine);
        break;
    }
    }
    x = clampd(x, p->al, p->be);
    return p->flip ? -x : x;
}

/* ---- the generation job ------------------------------------------------ */

typedef enum { G_UNIFORM, G_NORMAL, G_TRUNC, G_BERNOULLI, G_RANDINT } gen_kind;

typedef struct {
    gen_kind kind;
    fern_dtype dt;
    char *dst;
    int64_t n;
    uint64_t seed, offset;
    int per_block; /* elements per philox block */
    double p0, p1;     /* uniform: low, high-low; normal: mean, std; bernoulli: p*2^32 */
    double lo, hi;     /* clamps in the output dtype (uniform, trunc)              */
    trunc_plan plan;   /* truncated normal                                        */
    int64_t ilow;      /* randint */
    uint64_t range;
} gen_job;

/* Store n doubles (or int64s for randint) at element i0 of the output. */
static void store_f(const gen_job *j, int64_t i0, const double *restrict v, int64_t n)
{
    switch (j->dt) {
    case FERN_F32: {
        float *restrict d = (float *)j->dst + i0;
        for (int64_t i = 0; i < n; i++)
            d[i] = (float)v[i];
        break;
    }
    case FERN_F64: memcpy((double *)j->dst + i0, v, (size_t)n * sizeof *v); break;
    case FERN_F16: {
        uint16_t *restrict d = (uint16_t *)j->dst + i0;
        for (int64_t i = 0; i < n; i++)
            d[i] = fern_f32_to_f16((float)v[i]);
        break;
    }
    case FERN_BF16: {
        uint16_t *restrict d = (uint16_t *)j->dst + i0;
        for (int64_t i = 0; i < n; i++)
            d[i] = fern_f32_to_bf16((float)v[i]);
        break;
    }
    case FERN_I32: {
        int32_t *restrict d = (int32_t *)j->dst + i0;
        for (int64_t i = 0; i < n; i++)
            d[i] = (int32_t)v[i];
        break;
    }
    case FERN_I64: {
        int64_t *restrict d = (int64_t *)j->dst + i0;
        for (int64_t i = 0; i < n; i++)
            d[i] = (int64_t)v[i];
        break;
    }
    case FERN_I8: {
        int8_t *restrict d = (int8_t *)j->dst + i0;
        for (int64_t i = 0; i < n; i++)
            d[i] = (int8_t)v[i];
        break;
    }
    default: { /* u8, bool: values are 0 or 1 here */
        uint8_t *restrict d = (uint8_t *)j->dst + i0;
        for (int64_t i = 0; i < n; i++)
            d[i] = (uint8_t)v[i];
        break;
    }
    }
}

static void store_i(const gen_job *j, int64_t i0, const int64_t *restrict v, int64_t n)
{
    switch (j->dt) {
    case FERN_I64: memcpy((int64_t *)j->dst + i0, v, (size_t)n * sizeof *v); break;
    case FERN_I32: {
        int32_t *restrict d = (int32_t *)j->dst + i0;
        for (int64_t i = 0; i < n; i++)
            d[i] = (int32_t)v[i];
        break;
    }
    case FERN_I8: {
        int8_t *restrict d = (int8_t *)j->dst + i0;
        for (int64_t i = 0; i < n; i++)
            d[i] = (int8_t)v[i];
        break;
    }
    default: {
        uint8_t *restrict d = (uint8_t *)j->dst + i0;
        for (int64_t i = 0; i < n; i++)
            d[i] = (uint8_t)v[i];
        break;
    }
    }
}

#define GEN_BATCH 256 /* philox blocks generated before one store pass */

/* Values of blocks [b0, b1) (at most GEN_BATCH) into v / iv. */
static void gen_batch(const gen_job *j, int64_t b0, int64_t b1, double *restrict v,
                      int64_t *restrict iv)
{
    int pb = j->per_block;
    for (int64_t blk = b0; blk < b1; blk++) {
        uint32_t w[4];
        fern__philox(j->seed, j->offset, (uint64_t)blk, w);
        int64_t o = (blk - b0) * pb;
        switch (j->kind) {
        case G_UNIFORM:
            if (pb == 4)
                for (int k = 0; k < 4; k++)
                    v[o + k] = clampd(j->p0 + j->p1 * u24(w[k]), j->lo, j->hi);
            else
                for (int k = 0; k < 2; k++)
                    v[o + k] = clampd(j->p0 + j->p1 * u53(w[2 * k], w[2 * k + 1]), j->lo, j->hi);
            break;
        case G_NORMAL:
            if (pb == 4) { /* two Box-Muller pairs in float precision */
                for (int k = 0; k < 4; k += 2) {
                    float u1 = ((float)w[k] + 1.0f) * 0x1p-32f;
                    float th = (float)TWO_PI * (float)(w[k + 1] >> 8) * 0x1p-24f;
                    float r = sqrtf(-2.0f * logf(u1));
                    v[o + k] = j->p0 + j->p1 * (double)(r * cosf(th));
                    v[o + k + 1] = j->p0 + j->p1 * (double)(r * sinf(th));
                }
            } else {
                double u1 = (double)(((((uint64_t)w[0] << 32) | w[1]) >> 11) + 1) * 0x1p-53;
                double th = TWO_PI * u53(w[2], w[3]);
                double r = sqrt(-2.0 * log(u1));
                v[o] = j->p0 + j->p1 * (r * cos(th));
                v[o + 1] = j->p0 + j->p1 * (r * sin(th));
            }
            break;
        case G_TRUNC:
            for (int k = 0; k < 2; k++) {
                /* u strictly inside (0, 1): 52 random bits and a half */
                double u = ((double)((((uint64_t)w[2 * k] << 32) | w[2 * k + 1]) >> 12) + 0.5) *
                           0x1p-52;
                double x = j->p1 > 0 ? j->p0 + j->p1 * trunc_sample(&j->plan, u) : j->p0;
                v[o + k] = clampd(x, j->lo, j->hi);
            }
            break;
        case G_BERNOULLI:
            for (int k = 0; k < 4; k++)
                v[o + k] = (double)w[k] < j->p0 ? 1.0 : 0.0;
            break;
        case G_RANDINT: {
            int64_t i0 = blk * pb;
            for (int k = 0; k < pb && i0 + k < j->n; k++) {
                extra_words x;
                extra_init(&x, j->seed, j->offset, (uint64_t)(i0 + k));
                uint64_t r = pb == 4 ? bounded32(w[k], j->range, &x)
                                     : bounded64(((uint64_t)w[2 * k] << 32) | w[2 * k + 1],
                                                 j->range, &x);
                iv[o + k] = (int64_t)((uint64_t)j->ilow + r);
            }
            break;
        }
        }
    }
}

static void gen_blocks(void *ctx, int64_t b0, int64_t b1)
{
    const gen_job *j = ctx;
    double v[GEN_BATCH * 4];
    int64_t iv[GEN_BATCH * 4];
    for (int64_t s = b0; s < b1; s += GEN_BATCH) {
        int64_t e = s + GEN_BATCH < b1 ? s + GEN_BATCH : b1;
        int64_t i0 = s * j->per_block, i1 = e * j->per_block;
        if (i1 > j->n)
            i1 = j->n;
        gen_batch(j, s, e, v, iv);
        if (j->kind == G_RANDINT)
            store_i(j, i0, iv, i1 - i0);
        else
            store_f(j, i0, v, i1 - i0);
    }
}

static void run_gen(gen_job *j, fern_op_call *c, int n_attrs)
{
    j->dst = fern_tensor_data(c->out[0]);
    j->n = fern_tensor_numel(c->out[0]);
    j->dt = c->out[0]->dtype;
    j->seed = (uint64_t)c->attrs[n_attrs - 2].i;
    j->offset = (uint64_t)c->attrs[n_attrs - 1].i;
    int64_t blocks = (j->n + j->per_block - 1) / j->per_block;
    fern_parallel_for(blocks, 4096, gen_blocks, j);
}

#define SEED_ATTRS {"seed", FERN_ATTR_INT, 0, NULL}, {"offset", FERN_ATTR_INT, 0, NULL}

/* ---- rand_uniform ------------------------------------------------------ */

static const fern_attr_spec uniform_attrs[] = {{"shape", FERN_ATTR_INTS, 0, NULL},
                                               {"dtype", FERN_ATTR_DTYPE, FERN_F32, NULL},
                                               {"low", FERN_ATTR_FLOAT, 0, NULL},
                                               {"high", FERN_ATTR_FLOAT, 1, NULL},
                                               SEED_ATTRS};

static int uniform_infer(fern_op_call *c)
{
    fern_dtype dt;
    double lo = c->attrs[2].f, hi = c->attrs[3].f;
    if (float_dtype("rand_uniform", &c->attrs[A_DTYPE], &dt) ||
        check_finite("rand_uniform", "low", lo) || check_finite("rand_uniform", "high", hi))
        return -1;
    if (!(lo < hi)) {
        fern_set_error(FERN_ERR_INVALID, "rand_uniform: low must be less than high, got low=%g, high=%g",
                       lo, hi);
        return -1;
    }
    if (cap_low(dt, lo) > cap_high(dt, hi, 1)) {
        fern_set_error(FERN_ERR_INVALID, "rand_uniform: no %s value lies in [%g, %g)",
                       fern_dtype_name(dt), lo, hi);
        return -1;
    }
    return shape_out(c, dt);
}

static int uniform_kernel(fern_op_call *c)
{
    fern_dtype dt = c->out[0]->dtype;
    double lo = c->attrs[2].f, hi = c->attrs[3].f;
    gen_job j = {.kind = G_UNIFORM, .per_block = dt == FERN_F64 ? 2 : 4, .p0 = lo,
                 .p1 = hi - lo, .lo = cap_low(dt, lo), .hi = cap_high(dt, hi, 1)};
    run_gen(&j, c, 6);
    return 0;
}

static const fern_op_def op_rand_uniform = {
    .name = "rand_uniform", .n_inputs = 0, .n_outputs = 1, .attrs = uniform_attrs,
    .n_attrs = 6, .infer = uniform_infer, .kernel = {[FERN_CPU] = uniform_kernel},
    .dtypes = FERN_DT_FLOAT | FERN_DT_HALF, .dtype_arg = -1,
    .flags = FERN_OPF_RANDOM | FERN_OPF_NONDIFF, .doc = "uniform values in [low, high)"};

fern_tensor *fern_rand_uniform(fern_dtype dt, int ndim, const int64_t *shape, double low,
                               double high)
{
    if (ndim < 0 || ndim > FERN_MAX_DIMS || (ndim && !shape)) {
        fern_set_error(FERN_ERR_INVALID, "rand_uniform: invalid ndim %d (or NULL shape)", ndim);
        return NULL;
    }
    uint64_t seed, offset;
    fern__rng_next(&seed, &offset);
    fern_attr a[6] = {fern__attr_ints(shape, ndim), fern__attr_dtype(dt),
                      fern__attr_float(low),        fern__attr_float(high),
                      fern__attr_int((int64_t)seed), fern__attr_int((int64_t)offset)};
    return fern__op1(&op_rand_uniform, 0, NULL, a);
}

/* ---- rand_normal ------------------------------------------------------- */

static const fern_attr_spec normal_attrs[] = {{"shape", FERN_ATTR_INTS, 0, NULL},
                                              {"dtype", FERN_ATTR_DTYPE, FERN_F32, NULL},
                                              {"mean", FERN_ATTR_FLOAT, 0, NULL},
                                              {"std", FERN_ATTR_FLOAT, 1, NULL},
                                              SEED_ATTRS};

static int normal_infer(fern_op_call *c)
{
    fern_dtype dt;
    double mean = c->attrs[2].f, std = c->attrs[3].f;
    if (float_dtype("rand_normal", &c->attrs[A_DTYPE], &dt) ||
        check_finite("rand_normal", "mean", mean) || check_finite("rand_normal", "std", std))
        return -1;
    if (std < 0) {
        fern_set_error(FERN_ERR_INVALID, "rand_normal: std must be >= 0, got %g", std);
        return -1;
    }
    return shape_out(c, dt);
}

static int normal_kernel(fern_op_call *c)
{
    fern_dtype dt = c->out[0]->dtype;
    gen_job j = {.kind = G_NORMAL, .per_block = dt == FERN_F64 ? 2 : 4, .p0 = c->attrs[2].f,
                 .p1 = c->attrs[3].f};
    run_gen(&j, c, 6);
    return 0;
}

static const fern_op_def op_rand_normal = {
    .name = "rand_normal", .n_inputs = 0, .n_outputs = 1, .attrs = normal_attrs, .n_attrs = 6,
    .infer = normal_infer, .kernel = {[FERN_CPU] = normal_kernel},
    .dtypes = FERN_DT_FLOAT | FERN_DT_HALF, .dtype_arg = -1,
    .flags = FERN_OPF_RANDOM | FERN_OPF_NONDIFF,
    .doc = "normal values N(mean, std^2) (Box-Muller on Philox output)"};

fern_tensor *fern_rand_normal(fern_dtype dt, int ndim, const int64_t *shape, double mean,
                              double std)
{
    if (ndim < 0 || ndim > FERN_MAX_DIMS || (ndim && !shape)) {
        fern_set_error(FERN_ERR_INVALID, "rand_normal: invalid ndim %d (or NULL shape)", ndim);
        return NULL;
    }
    uint64_t seed, offset;
    fern__rng_next(&seed, &offset);
    fern_attr a[6] = {fern__attr_ints(shape, ndim), fern__attr_dtype(dt),
                      fern__attr_float(mean),       fern__attr_float(std),
                      fern__attr_int((int64_t)seed), fern__attr_int((int64_t)offset)};
    return fern__op1(&op_rand_normal, 0, NULL, a);
}

/* ---- rand_truncated_normal --------------------------------------------- */

static const fern_attr_spec trunc_attrs[] = {{"shape", FERN_ATTR_INTS, 0, NULL},
                                             {"dtype", FERN_ATTR_DTYPE, FERN_F32, NULL},
                                             {"mean", FERN_ATTR_FLOAT, 0, NULL},
                                             {"std", FERN_ATTR_FLOAT, 1, NULL},
                                             {"a", FERN_ATTR_FLOAT, -2, NULL},
                                             {"b", FERN_ATTR_FLOAT, 2, NULL},
                                             SEED_ATTRS};

static int trunc_infer(fern_op_call *c)
{
    const char *op = "rand_truncated_normal";
    fern_dtype dt;
    double mean = c->attrs[2].f, std = c->attrs[3].f, a = c->attrs[4].f, b = c->attrs[5].f;
    if (float_dtype(op, &c->attrs[A_DTYPE], &dt) || check_finite(op, "mean", mean) ||
        check_finite(op, "std", std))
        return -1;
    if (std < 0) {
        fern_set_error(FERN_ERR_INVALID, "%s: std must be >= 0, got %g", op, std);
        return -1;
    }
    if (isnan(a) || isnan(b) || !(a < b) || a == INFINITY || b == -INFINITY) {
        fern_set_error(FERN_ERR_INVALID, "%s: need a < b, got a=%g, b=%g", op, a, b);
        return -1;
    }
    if (cap_low(dt, a) > cap_high(dt, b, 0)) {
        fern_set_error(FERN_ERR_INVALID, "%s: no %s value lies in [%g, %g]", op,
                       fern_dtype_name(dt), a, b);
        return -1;
    }
    return shape_out(c, dt);
}

static int trunc_kernel(fern_op_call *c)
{
    fern_dtype dt = c->out[0]->dtype;
    double mean = c->attrs[2].f, std = c->attrs[3].f, a = c->attrs[4].f, b = c->attrs[5].f;
    gen_job j = {.kind = G_TRUNC, .per_block = 2, .p0 = mean, .p1 = std,
                 .lo = isinf(a) ? -INFINITY : cap_low(dt, a),
                 .hi = isinf(b) ? INFINITY : cap_high(dt, b, 0)};
    if (std > 0) {
        double al = (a - mean) / std, be = (b - mean) / std;
        if (al < be) {
            j.plan = trunc_make_plan(al, be, dt == FERN_F64);
        } else { /* the interval vanished in the division */
            j.p1 = 0;
            j.p0 = a;
        }
    }
    run_gen(&j, c, 8);
    return 0;
}

static const fern_op_def op_rand_truncated_normal = {
    .name = "rand_truncated_normal", .n_inputs = 0, .n_outputs = 1, .attrs = trunc_attrs,
    .n_attrs = 8, .infer = trunc_infer, .kernel = {[FERN_CPU] = trunc_kernel},
    .dtypes = FERN_DT_FLOAT | FERN_DT_HALF, .dtype_arg = -1,
    .flags = FERN_OPF_RANDOM | FERN_OPF_NONDIFF,
    .doc = "N(mean, std^2) conditioned on [a, b] (exact, by inverting the CDF)"};

fern_tensor *fern_rand_truncated_normal(fern_dtype dt, int ndim, const int64_t *shape,
                                        double mean, double std, double a, double b)
{
    if (ndim < 0 || ndim > FERN_MAX_DIMS || (ndim && !shape)) {
        fern_set_error(FERN_ERR_INVALID, "rand_truncated_normal: invalid ndim %d (or NULL shape)",
                       ndim);
        return NULL;
    }
    uint64_t seed, offset;
    fern__rng_next(&seed, &offset);
    fern_attr at[8] = {fern__attr_ints(shape, ndim), fern__attr_dtype(dt),
                       fern__attr_float(mean),       fern__attr_float(std),
                       fern__attr_float(a),          fern__attr_float(b),
                       fern__attr_int((int64_t)seed), fern__attr_int((int64_t)offset)};
    return fern__op1(&op_rand_truncated_normal, 0, NULL, at);
}

/* ---- bernoulli --------------------------------------------------------- */

static const fern_attr_spec bernoulli_attrs[] = {{"shape", FERN_ATTR_INTS, 0, NULL},
                                                 {"dtype", FERN_ATTR_DTYPE, FERN_F32, NULL},
                                                 {"p", FERN_ATTR_FLOAT, 0.5, NULL},
                                                 SEED_ATTRS};

static int bernoulli_infer(fern_op_call *c)
{
    int64_t dt = c->attrs[A_DTYPE].i;
    double p = c->attrs[2].f;
    if (dt < 0 || dt >= FERN_DTYPE_COUNT) {
        fern_set_error(FERN_ERR_INVALID, "bernoulli: invalid dtype %lld", (long long)dt);
        return -1;
    }
    if (!(p >= 0 && p <= 1)) {
        fern_set_error(FERN_ERR_INVALID, "bernoulli: p must be in [0, 1], got %g", p);
        return -1;
    }
    return shape_out(c, (fern_dtype)dt);
}

static int bernoulli_kernel(fern_op_call *c)
{
    /* element is 1 when its 32-bit word < p * 2^32 */
    gen_job j = {.kind = G_BERNOULLI, .per_block = 4, .p0 = c->attrs[2].f * 4294967296.0};
    run_gen(&j, c, 5);
    return 0;
}

static const fern_op_def op_bernoulli = {
    .name = "bernoulli", .n_inputs = 0, .n_outputs = 1, .attrs = bernoulli_attrs, .n_attrs = 5,
    .infer = bernoulli_infer, .kernel = {[FERN_CPU] = bernoulli_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = -1, .flags = FERN_OPF_RANDOM | FERN_OPF_NONDIFF,
    .doc = "1 with probability p, else 0 (any dtype)"};

fern_tensor *fern_bernoulli(fern_dtype dt, int ndim, const int64_t *shape, double p)
{
    if (ndim < 0 || ndim > FERN_MAX_DIMS || (ndim && !shape)) {
        fern_set_error(FERN_ERR_INVALID, "bernoulli: invalid ndim %d (or NULL shape)", ndim);
        return NULL;
    }
    uint64_t seed, offset;
    fern__rng_next(&seed, &offset);
    fern_attr a[5] = {fern__attr_ints(shape, ndim), fern__attr_dtype(dt), fern__attr_float(p),
                      fern__attr_int((int64_t)seed), fern__attr_int((int64_t)offset)};
    return fern__op1(&op_bernoulli, 0, NULL, a);
}

/* ---- randint ----------------------------------------------------------- */

static const fern_attr_spec randint_attrs[] = {{"shape", FERN_ATTR_INTS, 0, NULL},
                                               {"dtype", FERN_ATTR_DTYPE, FERN_I64, NULL},
                                               {"low", FERN_ATTR_INT, 0, NULL},
                                               {"high", FERN_ATTR_INT, 0, NULL},
                                               SEED_ATTRS};

static int randint_infer(fern_op_call *c)
{
    int64_t dt = c->attrs[A_DTYPE].i, lo = c->attrs[2].i, hi = c->attrs[3].i;
    if (dt < 0 || dt >= FERN_DTYPE_COUNT || !fern_dtype_is_int((fern_dtype)dt)) {
        fern_set_error(FERN_ERR_INVALID, "randint: dtype must be an integer type (i8, u8, i32, i64), got %s",
                       fern_dtype_name((fern_dtype)dt));
        return -1;
    }
    if (lo >= hi) {
        fern_set_error(FERN_ERR_INVALID, "randint: low must be less than high, got low=%lld, high=%lld",
                       (long long)lo, (long long)hi);
        return -1;
    }
    int64_t dmin = INT64_MIN, dmax = INT64_MAX;
    switch (dt) {
    case FERN_I8: dmin = INT8_MIN; dmax = INT8_MAX; break;
    case FERN_U8: dmin = 0; dmax = UINT8_MAX; break;
    case FERN_I32: dmin = INT32_MIN; dmax = INT32_MAX; break;
    default: break;
    }
    if (lo < dmin || hi - 1 > dmax) {
        fern_set_error(FERN_ERR_INVALID, "randint: range [%lld, %lld) does not fit dtype %s",
                       (long long)lo, (long long)hi, fern_dtype_name((fern_dtype)dt));
        return -1;
    }
    return shape_out(c, (fern_dtype)dt);
}

static int randint_kernel(fern_op_call *c)
{
    int64_t lo = c->attrs[2].i, hi = c->attrs[3].i;
    uint64_t range = (uint64_t)hi - (uint64_t)lo;
    gen_job j = {.kind = G_RANDINT, .per_block = range <= ((uint64_t)1 << 32) ? 4 : 2,
                 .ilow = lo, .range = range};
    run_gen(&j, c, 6);
    return 0;
}

static const fern_op_def op_randint = {
    .name = "randint", .n_inputs = 0, .n_outputs = 1, .attrs = randint_attrs, .n_attrs = 6,
    .infer = randint_infer, .kernel = {[FERN_CPU] = randint_kernel}, .dtypes = FERN_DT_INT,
    .dtype_arg = -1, .flags = FERN_OPF_RANDOM | FERN_OPF_NONDIFF,
    .doc = "integers uniform in [low, high) (unbiased)"};

fern_tensor *fern_randint(int64_t low, int64_t high, fern_dtype dt, int ndim,
                          const int64_t *shape)
{
    if (ndim < 0 || ndim > FERN_MAX_DIMS || (ndim && !shape)) {
        fern_set_error(FERN_ERR_INVALID, "randint: invalid ndim %d (or NULL shape)", ndim);
        return NULL;
    }
    uint64_t seed, offset;
    fern__rng_next(&seed, &offset);
    fern_attr a[6] = {fern__attr_ints(shape, ndim), fern__attr_dtype(dt), fern__attr_int(low),
                      fern__attr_int(high), fern__attr_int((int64_t)seed),
                      fern__attr_int((int64_t)offset)};
    return fern__op1(&op_randint, 0, NULL, a);
}

/* ---- randperm ---------------------------------------------------------- */

static const fern_attr_spec randperm_attrs[] = {{"n", FERN_ATTR_INT, 0, NULL},
                                                {"dtype", FERN_ATTR_DTYPE, FERN_I64, NULL},
                                                SEED_ATTRS};

static int randperm_infer(fern_op_call *c)
{
    int64_t n = c->attrs[0].i, dt = c->attrs[1].i;
    if (dt != FERN_I64 && dt != FERN_I32 && dt != FERN_F32 && dt != FERN_F64) {
        fern_set_error(FERN_ERR_INVALID, "randperm: dtype must be i64, i32, f32 or f64, got %s",
                       fern_dtype_name((fern_dtype)dt));
        return -1;
    }
    if (n < 0) {
        fern_set_error(FERN_ERR_INVALID, "randperm: n must be non-negative, got %lld",
                       (long long)n);
        return -1;
    }
    int64_t maxn = dt == FERN_I32 ? (int64_t)INT32_MAX + 1
                   : dt == FERN_F32 ? (int64_t)1 << 24
                   : dt == FERN_F64 ? (int64_t)1 << 53
                                    : INT64_MAX;
    if (n > maxn) {
        fern_set_error(FERN_ERR_INVALID, "randperm: n=%lld is too large for dtype %s",
                       (long long)n, fern_dtype_name((fern_dtype)dt));
        return -1;
    }
    fern__set_out(c, 0, (fern_dtype)dt, 1, &n);
    return 0;
}

/* Fisher-Yates driven by Philox: step i (from n-1 down to 1) swaps i with
 * an unbiased j in [0, i] drawn from block i. Serial, so trivially the same
 * for any thread count. */
static int randperm_kernel(fern_op_call *c)
{
    fern_tensor *o = c->out[0];
    int64_t n = o->shape[0];
    uint64_t seed = (uint64_t)c->attrs[2].i, offset = (uint64_t)c->attrs[3].i;
    int64_t *p = o->dtype == FERN_I64 ? fern_tensor_data(o) : malloc((size_t)n * sizeof *p);
    if (!p) {
        fern_set_error(FERN_ERR_NOMEM, "randperm: out of memory for n=%lld", (long long)n);
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        p[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        uint32_t w[4];
        fern__philox(seed, offset, (uint64_t)i, w);
        extra_words x;
        extra_init(&x, seed, offset, (uint64_t)i);
        uint64_t r = (uint64_t)i + 1;
        int64_t jx = (int64_t)(r <= ((uint64_t)1 << 32)
                                   ? bounded32(w[0], r, &x)
                                   : bounded64(((uint64_t)w[0] << 32) | w[1], r, &x));
        int64_t t = p[i];
        p[i] = p[jx];
        p[jx] = t;
    }
    if (o->dtype != FERN_I64) {
        fern__convert(p, FERN_I64, fern_tensor_data(o), o->dtype, n);
        free(p);
    }
    return 0;
}

static const fern_op_def op_randperm = {
    .name = "randperm", .n_inputs = 0, .n_outputs = 1, .attrs = randperm_attrs, .n_attrs = 4,
    .infer = randperm_infer, .kernel = {[FERN_CPU] = randperm_kernel},
    .dtypes = FERN_DT(FERN_I64) | FERN_DT(FERN_I32) | FERN_DT_FLOAT, .dtype_arg = -1,
    .flags = FERN_OPF_RANDOM | FERN_OPF_NONDIFF,
    .doc = "a uniformly random permutation of 0..n-1 (Fisher-Yates on Philox)"};

fern_tensor *fern_randperm(int64_t n, fern_dtype dt)
{
    uint64_t seed, offset;
    fern__rng_next(&seed, &offset);
    fern_attr a[4] = {fern__attr_int(n), fern__attr_dtype(dt), fern__attr_int((int64_t)seed),
                      fern__attr_int((int64_t)offset)};
    return fern__op1(&op_randperm, 0, NULL, a);
}

const fern_op_def *const fern_ops_random[] = {&op_rand_uniform, &op_rand_normal,
                                              &op_rand_truncated_normal, &op_bernoulli,
                                              &op_randint, &op_randperm, NULL};
