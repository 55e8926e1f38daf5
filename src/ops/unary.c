/* Unary elementwise ops: cast, arithmetic (neg abs sign square reciprocal),
 * exponentials and logarithms, roots, trigonometry, activations (relu,
 * leaky_relu, elu, gelu, silu, softplus, sigmoid, tanh), erf, rounding,
 * clip and the predicates isnan/isinf/logical_not.
 *
 * dtype rules follow PyTorch 1.13: float functions (exp, log, sin, ...)
 * turn integer and bool inputs into f32; neg/abs/sign/square/relu/floor/
 * ceil/round/clip keep integer dtypes; the activations with parameters are
 * float-only; f16/bf16 compute in f32. Every kernel is one row function per
 * dtype run by the shared elementwise walker (backend/cpu/elementwise.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../backend/cpu/elementwise.h"
#include "op_def.h"

/* ---- cast -------------------------------------------------------------- */

static const fern_attr_spec cast_attrs[] = {{"dtype", FERN_ATTR_DTYPE, FERN_F32, NULL}};

static int cast_infer(fern_op_call *c)
{
    int64_t dt = c->attrs[0].i;
    if (dt < 0 || dt >= FERN_DTYPE_COUNT) {
        fern_set_error(FERN_ERR_INVALID, "cast: invalid dtype %lld", (long long)dt);
        return -1;
    }
    fern__set_out(c, 0, (fern_dtype)dt, c->in[0]->ndim, c->in[0]->shape);
    return 0;
}

static int cast_kernel(fern_op_call *c)
{
    fern__convert(fern_tensor_data(c->in[0]), c->in[0]->dtype, fern_tensor_data(c->out[0]),
                  c->out[0]->dtype, fern_tensor_numel(c->in[0]));
    return 0;
}

static int cast_grad(const fern_op_call *c, fern_tensor *const *gs, fern_tensor **gi);

static const fern_op_def op_cast = {
    .name = "cast", .n_inputs = 1, .n_outputs = 1, .attrs = cast_attrs, .n_attrs = 1,
    .infer = cast_infer, .kernel = {[FERN_CPU] = cast_kernel}, .dtypes = FERN_DT_ALL,
    .flags = FERN_OPF_CONTIG_INPUTS, .doc = "convert to another dtype (floats to ints truncate)",
    .grad = cast_grad};

fern_tensor *fern_cast(fern_tensor *x, fern_dtype dt)
{
    fern_attr a = fern__attr_dtype(dt);
    return fern__op1(&op_cast, 1, &x, &a);
}

/* ---- the elementwise family ------------------------------------------- */

/* Parameters a row function reads (hoisted out of its loops). */
typedef struct {
    double p0, p1;  /* float params: slope, alpha, beta/threshold, lo/hi */
    int64_t i0, i1; /* integer clip bounds, already inside the dtype range */
} un_ctx;

typedef enum {
    UK_KEEP,       /* integer dtypes kept; bool per bool_out                */
    UK_FLOAT,      /* integer and bool inputs give f32                      */
    UK_FLOAT_ONLY, /* float inputs only (torch has no integer kernel)       */
    UK_PRED,       /* -> bool, computed on the input dtype                  */
    UK_CLIP        /* clip's own rule (bounds decide int vs float)          */
} un_kind;

typedef struct {
    fern_op_def def; /* first member: the registry points here */
    un_kind kind;
    int bool_out; /* UK_KEEP on bool: -1 error, else the output dtype */
    int64_t grain;
    fern_ew_row_fn rows[FERN_DTYPE_COUNT];
    fern_ew_row_fn alt_rows[FERN_DTYPE_COUNT]; /* gelu approximate=1 */
} un_op;

/* A row function: o[i] = EXPR(x) with x = a[i]. SETUP declares P0/P1. The
 * contiguous loop is the hot one: restrict pointers, no calls but inline
 * math, so gcc vectorizes it. */
#define UROW(NAME, T, OT, SETUP, EXPR)                                                         \
    static void NAME(void *ctx_, int64_t n, char *const *p, const int64_t *s)               \
    {                                                                                         \
        const un_ctx *ctx = (const un_ctx *)ctx_;                                            \
        typedef T scalar_t;                                                                   \
        (void)sizeof(scalar_t);                                                               \
        (void)ctx;                                                                            \
        OT *restrict o = (OT *)p[0];                                                          \
        const T *restrict a = (const T *)p[1];                                                \
        SETUP                                                                                 \
        if (s[0] == 1 && s[1] == 1) {                                                         \
            for (int64_t i = 0; i < n; i++) {                                                 \
                const T x = a[i];                                                             \
                o[i] = (OT)(EXPR);                                                            \
            }                                                                                 \
        } else {                                                                              \
            const int64_t so = s[0], sa = s[1];                                               \
            for (int64_t i = 0; i < n; i++) {                                                 \
                const T x = a[i * sa];                                                        \
                o[i * so] = (OT)(EXPR);                                                       \
            }                                                                                 \
        }                                                                                     \
    }

#define FSETUP(T)                                                                             \
    const T P0 = (T)ctx->p0, P1 = (T)ctx->p1;                                                 \
    (void)P0;                                                                                 \
    (void)P1;
#define ISETUP(T)                                                                             \
    const T P0 = (T)ctx->i0, P1 = (T)ctx->i1;                                                 \
    (void)P0;                                                                                 \
    (void)P1;

/* f32 and f64 rows from one expression; fm_* pick the float or double
 * function by the type of their argument (elementwise.h). */
#define FROWS(OP, EXPR)                                                                       \
    UROW(OP##_f32, float, float, FSETUP(float), EXPR)                                        \
    UROW(OP##_f64, double, double, FSETUP(double), EXPR)
#define F_ENTRIES(OP) [FERN_F32] = OP##_f32, [FERN_F64] = OP##_f64

/* signed integer rows (i8 i32 i64; u8 separately where signs matter) */
#define SROWS(OP, EXPR)                                                                       \
    UROW(OP##_i8, int8_t, int8_t, ISETUP(int8_t), EXPR)                                      \
    UROW(OP##_i32, int32_t, int32_t, ISETUP(int32_t), EXPR)                                  \
    UROW(OP##_i64, int64_t, int64_t, ISETUP(int64_t), EXPR)
#define S_ENTRIES(OP) [FERN_I8] = OP##_i8, [FERN_I32] = OP##_i32, [FERN_I64] = OP##_i64
#define UROW_U8(OP, EXPR) UROW(OP##_u8, uint8_t, uint8_t, ISETUP(uint8_t), EXPR)
#define U_ENTRY(OP) [FERN_U8] = OP##_u8

/* integer identity (floor/ceil/round of ints, relu/abs of u8, ...) */
UROW(ident_i8, int8_t, int8_t, , x)
UROW(ident_u8, uint8_t, uint8_t, , x)
UROW(ident_i32, int32_t, int32_t, , x)
UROW(ident_i64, int64_t, int64_t, , x)
#define IDENT_INT_ENTRIES                                                                     \
    [FERN_I8] = ident_i8, [FERN_U8] = ident_u8, [FERN_I32] = ident_i32, [FERN_I64] = ident_i64

/* Wrapping integer arithmetic (torch wraps; signed overflow is UB in C):
 * compute in the unsigned type of the same width. */
#define UNS(T) _Generic((T)0, int8_t: (uint8_t)0, int32_t: (uint32_t)0, int64_t: (uint64_t)0, \
                        uint8_t: (uint8_t)0)

/* neg */
FROWS(neg, -x)
SROWS(neg, (scalar_t)(0 - (x + UNS(scalar_t))))
UROW_U8(neg, (uint8_t)(0 - x))
/* abs */
FROWS(abs, fm_fabs(x))
SROWS(abs, x < 0 ? (scalar_t)(0 - (x + UNS(scalar_t))) : x)
/* sign (nan -> 0 like torch) */
FROWS(sign, (scalar_t)((0 < x) - (x < 0)))
SROWS(sign, (scalar_t)((0 < x) - (x < 0)))
UROW_U8(sign, x != 0)
UROW(sign_bool, uint8_t, uint8_t, , x != 0)
/* square */
FROWS(square, x *x)
SROWS(square, (scalar_t)((x + UNS(scalar_t)) * (x + UNS(scalar_t))))
UROW_U8(square, x *x)
/* relu: nan and -0 pass through like torch's clamp_min */
FROWS(relu, x < 0 ? (scalar_t)0 : x)
SROWS(relu, x < 0 ? (scalar_t)0 : x)
/* rounding */
FROWS(floor, fm_floor(x))
FROWS(ceil, fm_ceil(x))
FROWS(round, fm_rint(x)) /* default rounding mode: half to even */
/* exponentials, logarithms, roots */
FROWS(exp, fm_exp(x))
FROWS(expm1, fm_expm1(x))
FROWS(log, fm_log(x))
FROWS(log1p, fm_log1p(x))
FROWS(sqrt, fm_sqrt(x))
FROWS(rsqrt, (scalar_t)1 / fm_sqrt(x))
FROWS(reciprocal, (scalar_t)1 / x)
/* trigonometry: f64 from libm; f32 vectorized for |x| <= FM_TRIG_MAX with a
 * libm pass over the (rare) larger, infinite or nan elements */
UROW(sin_f64, double, double, , sin(x))
UROW(cos_f64, double, double, , cos(x))
UROW(tan_f64, double, double, , tan(x))
#define TRIG_ROW_F32(NAME, FAST, LIBM)                                                        \
    static void NAME(void *ctx_, int64_t n, char *const *p, const int64_t *s)              \
    {                                                                                         \
        float *restrict o = (float *)p[0];                                                    \
        const float *restrict a = (const float *)p[1];                                        \
        (void)ctx_;                                                                           \
        if (s[0] == 1 && s[1] == 1) {                                                         \
            int big = 0;                                                                      \
            for (int64_t i = 0; i < n; i++) {                                                 \
                o[i] = FAST(a[i]);                                                            \
                big |= fm_trig_big_(a[i]);                                                    \
            }                                                                                 \
            if (big)                                                                          \
                for (int64_t i = 0; i < n; i++)                                               \
                    if (fm_trig_big_(a[i]))                                                   \
                        o[i] = LIBM(a[i]);                                                    \
        } else {                                                                              \
            for (int64_t i = 0; i < n; i++) {                                                 \
                const float x = a[i * s[1]];                                                  \
                o[i * s[0]] = fm_trig_big_(x) ? LIBM(x) : FAST(x);                            \
            }                                                                                 \
        }                                                                                     \
    }
TRIG_ROW_F32(sin_f32, fm_sinf_, sinf)
TRIG_ROW_F32(cos_f32, fm_cosf_, cosf)
TRIG_ROW_F32(tan_f32, fm_tanf_, tanf)
FROWS(tanh, fm_tanh(x))
FROWS(erf, fm_erf(x))
/* activations */
FROWS(sigmoid, fm_sigmoid(x))
FROWS(leaky_relu, x > 0 ? x : x * P0)
FROWS(elu, fm_elu(x, P0))
FROWS(gelu, fm_gelu_erf(x))
FROWS(gelu_tanh, fm_gelu_tanh(x))
FROWS(silu, fm_silu(x))
FROWS(softplus, fm_softplus(x, P0, P1))
/* clip: min(max(x, lo), hi); nan x stays nan, a nan bound is ignored */
#define CLIP_EXPR (x < P0 ? P0 : x) > P1 ? P1 : (x < P0 ? P0 : x)
FROWS(clip, CLIP_EXPR)
SROWS(clip, CLIP_EXPR)
UROW_U8(clip, CLIP_EXPR)
UROW(clip_bool, uint8_t, uint8_t, , x)
/* predicates -> bool; f16/bf16 are tested on their bits */
#define PROWS(OP, EXPR)                                                                       \
    UROW(OP##_f32, float, uint8_t, , EXPR)                                                   \
    UROW(OP##_f64, double, uint8_t, , EXPR)
PROWS(isnan_, x != x)
UROW(isnan_f16, uint16_t, uint8_t, , (x & 0x7fff) > 0x7c00)
UROW(isnan_bf16, uint16_t, uint8_t, , (x & 0x7fff) > 0x7f80)
PROWS(isinf_, fm_fabs(x) == (scalar_t)INFINITY)
UROW(isinf_f16, uint16_t, uint8_t, , (x & 0x7fff) == 0x7c00)
UROW(isinf_bf16, uint16_t, uint8_t, , (x & 0x7fff) == 0x7f80)
static void false_row(void *ctx, int64_t n, char *const *p, const int64_t *s)
{
    uint8_t *o = (uint8_t *)p[0];
    for (int64_t i = 0; i < n; i++)
        o[i * s[0]] = 0;
}
#define FALSE_ENTRIES                                                                         \
    [FERN_I8] = false_row, [FERN_U8] = false_row, [FERN_I32] = false_row,                    \
    [FERN_I64] = false_row, [FERN_BOOL] = false_row
UROW(not_f32, float, uint8_t, , x == 0)
UROW(not_f64, double, uint8_t, , x == 0)
UROW(not_half, uint16_t, uint8_t, , (x & 0x7fff) == 0)
UROW(not_i8, int8_t, uint8_t, , x == 0)
UROW(not_u8, uint8_t, uint8_t, , x == 0)
UROW(not_i32, int32_t, uint8_t, , x == 0)
UROW(not_i64, int64_t, uint8_t, , x == 0)

static int un_infer(fern_op_call *c)
{
    const un_op *u = (const un_op *)c->op;
    const fern_tensor *x = c->in[0];
    fern_dtype dt = x->dtype, out = dt;
    switch (u->kind) {
    case UK_KEEP:
        if (dt == FERN_BOOL) {
            if (u->bool_out < 0)
                return fern__err_dtype(c, x,
                                       "bool input is not supported (torch has no bool kernel)");
            out = (fern_dtype)u->bool_out;
        }
        break;
    case UK_FLOAT:
        if (!fern_dtype_is_float(dt))
            out = FERN_F32;
        break;
    case UK_FLOAT_ONLY:
        if (!fern_dtype_is_float(dt))
            return fern__err_dtype(c, x, "expects a float input (f32, f64, f16, bf16)");
        break;
    case UK_PRED: out = FERN_BOOL; break;
    case UK_CLIP: {
        double lo = c->attrs[0].f, hi = c->attrs[1].f;
        if (fern_dtype_is_float(dt))
            break;
        /* integral bounds keep integer dtypes (bool becomes i64, as with a
         * Python int in torch); a fractional or nan bound gives f32 */
        int frac = isnan(lo) || isnan(hi) || (isfinite(lo) && lo != floor(lo)) ||
                   (isfinite(hi) && hi != floor(hi));
        if (frac)
            out = FERN_F32;
        else if (dt == FERN_BOOL && (isfinite(lo) || isfinite(hi)))
            out = FERN_I64;
        break;
    }
    }
    if (c->op->n_attrs == 1 && strcmp(c->op->attrs[0].name, "approximate") == 0) {
        int64_t ap = c->attrs[0].i;
        if (ap != 0 && ap != 1) {
            char d[128];
            fern_set_error(FERN_ERR_INVALID,
                           "gelu: attribute approximate must be 0 (erf) or 1 (tanh), got %lld "
                           "(input %s)",
                           (long long)ap, fern_tensor_desc(x, d, sizeof d));
            return -1;
        }
    }
    c->out_dtype[0] = out;
    c->out_ndim[0] = x->ndim;
    memcpy(c->out_shape[0], x->shape, sizeof(int64_t) * (size_t)x->ndim);
    return 0;
}

static int64_t clamp_i64(double v, double lo, double hi)
{
    if (v <= lo)
        return (int64_t)lo;
    if (v >= hi)
        return (int64_t)hi;
    return (int64_t)v;
}

static int un_kernel(fern_op_call *c)
{
    const un_op *u = (const un_op *)c->op;
    fern_dtype odt = c->out[0]->dtype;
    fern_dtype cdt = u->kind == UK_PRED ? c->in[0]->dtype : odt;
    un_ctx ctx = {0, 0, 0, 0};
    const fern_ew_row_fn *rows = u->rows;
    for (int k = 0; k < c->op->n_attrs && k < 2; k++) {
        double v = c->attrs[k].kind == FERN_ATTR_FLOAT ? c->attrs[k].f : (double)c->attrs[k].i;
        if (k == 0)
            ctx.p0 = v;
        else
            ctx.p1 = v;
    }
    if (u->alt_rows[FERN_F32] && c->attrs[0].i == 1)
        rows = u->alt_rows;
    if (u->kind == UK_CLIP && fern_dtype_is_int(cdt)) {
        static const double lim[FERN_DTYPE_COUNT][2] = {
            [FERN_I8] = {-128.0, 127.0},
            [FERN_U8] = {0.0, 255.0},
            [FERN_I32] = {-2147483648.0, 2147483647.0},
            [FERN_I64] = {-9223372036854775808.0, 9223372036854774784.0}};
        /* bounds outside the dtype's range saturate (nan was ruled out) */
        ctx.i0 = clamp_i64(ctx.p0, lim[cdt][0], lim[cdt][1]);
        ctx.i1 = clamp_i64(ctx.p1, lim[cdt][0], lim[cdt][1]);
        if (cdt == FERN_I64 && ctx.p0 <= lim[cdt][0])
            ctx.i0 = INT64_MIN;
        if (cdt == FERN_I64 && ctx.p1 >= lim[cdt][1])
            ctx.i1 = INT64_MAX;
    }
    fern_ew_row_fn fn = rows[cdt];
    if (!fn) {
        fern_set_error(FERN_ERR_UNSUPPORTED, "%s: no kernel for dtype %s", c->op->name,
                       fern_dtype_name(cdt));
        return -1;
    }
    fern_ew_temp tmp;
    const fern_tensor *x = fern_ew_as_dtype(c->in[0], cdt, &tmp);
    if (!x)
        return -1;
    const fern_tensor *ops[2] = {c->out[0], x};
    fern_ew_apply(2, ops, fn, &ctx, u->grain);
    fern_ew_temp_free(&tmp);
    return 0;
}


/* ---- gradient rules (public ops only: they trace and differentiate again) -- */

static fern_tensor *scal(const fern_tensor *like, double v) { return fern_scalar(like->dtype, v); }
/* g * [pred] with pred a bool tensor */
static fern_tensor *mask_mul(fern_tensor *g, fern_tensor *pred) { return fern_mul(g, fern_cast(pred, g->dtype)); }

#define GRAD1(NAME, EXPR)                                                                    \
    static int NAME##_grad(const fern_op_call *c, fern_tensor *const *gs, fern_tensor **gi) \
    {                                                                                        \
        fern_tensor *x = c->in[0], *y = c->out[0], *g = gs[0];                               \
        (void)x;                                                                             \
        (void)y;                                                                             \
        gi[0] = (EXPR);                                                                      \
        return gi[0] ? 0 : -1;                                                               \
    }

GRAD1(neg, fern_neg(g))
GRAD1(abs, fern_mul(g, fern_sign(x)))
GRAD1(square, fern_mul(g, fern_mul_scalar(x, 2.0)))
/* one fused pass for f32/f64 (relu_backward); other dtypes as generic ops */
GRAD1(relu, fern_dtype_is_float(y->dtype) && (y->dtype == FERN_F32 || y->dtype == FERN_F64)
                ? fern_relu_backward(g, y)
                : mask_mul(g, fern_gt(x, scal(x, 0))))
GRAD1(exp, fern_mul(g, y))
GRAD1(expm1, fern_mul(g, fern_add_scalar(y, 1.0)))
GRAD1(log, fern_div(g, x))
GRAD1(log1p, fern_div(g, fern_add_scalar(x, 1.0)))
GRAD1(sqrt, fern_div(g, fern_mul_scalar(y, 2.0)))
GRAD1(rsqrt, fern_mul(g, fern_mul_scalar(fern_mul(y, fern_square(y)), -0.5)))
GRAD1(reciprocal, fern_neg(fern_mul(g, fern_square(y))))
GRAD1(sin, fern_mul(g, fern_cos(x)))
GRAD1(cos, fern_neg(fern_mul(g, fern_sin(x))))
GRAD1(tan, fern_mul(g, fern_add_scalar(fern_square(y), 1.0)))
GRAD1(tanh, fern_mul(g, fern_sub(scal(y, 1), fern_square(y))))
GRAD1(sigmoid, fern_mul(g, fern_mul(y, fern_sub(scal(y, 1), y))))
GRAD1(erf, fern_mul(g, fern_mul_scalar(fern_exp(fern_neg(fern_square(x))), 1.1283791670955126)))
GRAD1(silu, fern_mul(g, fern_mul(fern_sigmoid(x),
                                 fern_add_scalar(fern_mul(x, fern_sub(scal(x, 1), fern_sigmoid(x))), 1.0))))

/* sign, floor, ceil and round are flat almost everywhere: zero, like torch */
static int zero_grad(const fern_op_call *c, fern_tensor *const *gs, fern_tensor **gi)
{
    (void)c;
    (void)gs;
    gi[0] = NULL;
    return 0;
}
#define sign_grad zero_grad
#define floor_grad zero_grad
#define ceil_grad zero_grad
#define round_grad zero_grad
#define isnan_grad NULL
#define isinf_grad NULL
#define logical_not_grad NULL

static int leaky_relu_grad(const fern_op_call *c, fern_tensor *const *gs, fern_tensor **gi)
{
    fern_tensor *x = c->in[0];
    fern_tensor *slope = fern_where(fern_gt(x, scal(x, 0)), scal(x, 1), scal(x, c->attrs[0].f));
    gi[0] = fern_mul(gs[0], slope);
    return gi[0] ? 0 : -1;
}

static int elu_grad(const fern_op_call *c, fern_tensor *const *gs, fern_tensor **gi)
{
    fern_tensor *x = c->in[0];
    /* x > 0: 1; else alpha * e^x */
    fern_tensor *d = fern_where(fern_gt(x, scal(x, 0)), scal(x, 1), fern_mul_scalar(fern_exp(x), c->attrs[0].f));
    gi[0] = fern_mul(gs[0], d);
    return gi[0] ? 0 : -1;
}

static int gelu_grad(const fern_op_call *c, fern_tensor *const *gs, fern_tensor **gi)
{
    fern_tensor *x = c->in[0], *d;
    if (c->attrs[0].i == 0) { /* Phi(x) + x phi(x) */
        fern_tensor *cdf = fern_mul_scalar(fern_add_scalar(fern_erf(fern_mul_scalar(x, 0.70710678118654752)), 1.0), 0.5);
        fern_tensor *pdf = fern_mul_scalar(fern_exp(fern_mul_scalar(fern_square(x), -0.5)), 0.39894228040143268);
        d = fern_add(cdf, fern_mul(x, pdf));
    } else { /* y = 0.5 x (1 + tanh(u)), u = k (x + 0.044715 x^3) */
        const double k = 0.79788456080286536;
        fern_tensor *x2 = fern_square(x);
        fern_tensor *t = fern_tanh(fern_mul_scalar(fern_add(x, fern_mul_scalar(fern_mul(x2, x), 0.044715)), k));
        fern_tensor *du = fern_mul_scalar(fern_add_scalar(fern_mul_scalar(x2, 3 * 0.044715), 1.0), k);
        fern_tensor *left = fern_mul_scalar(fern_add_scalar(t, 1.0), 0.5);
        fern_tensor *right = fern_mul(fern_mul_scalar(fern_mul(x, fern_sub(scal(x, 1), fern_square(t))), 0.5), du);
        d = fern_add(left, right);
    }
    gi[0] = fern_mul(gs[0], d);
    return gi[0] ? 0 : -1;
}

static int softplus_grad(const fern_op_call *c, fern_tensor *const *gs, fern_tensor **gi)
{
    fern_tensor *x = c->in[0];
    double beta = c->attrs[0].f, thr = c->attrs[1].f;
    fern_tensor *bx = fern_mul_scalar(x, beta);
    fern_tensor *d = fern_where(fern_gt(bx, scal(x, thr)), scal(x, 1), fern_sigmoid(bx));
    gi[0] = fern_mul(gs[0], d);
    return gi[0] ? 0 : -1;
}

/* 1 inside [lo, hi] (bounds included, like torch.clamp) */
static int clip_grad(const fern_op_call *c, fern_tensor *const *gs, fern_tensor **gi)
{
    fern_tensor *x = c->in[0];
    double lo = c->attrs[0].f, hi = c->attrs[1].f; /* a nan bound is no bound, as in the forward */
    fern_tensor *in = fern_logical_and(fern_ge(x, scal(x, isnan(lo) ? -INFINITY : lo)),
                                       fern_le(x, scal(x, isnan(hi) ? INFINITY : hi)));
    gi[0] = mask_mul(gs[0], in);
    return gi[0] ? 0 : -1;
}

static int cast_grad(const fern_op_call *c, fern_tensor *const *gs, fern_tensor **gi)
{
    fern_dtype dt = c->in[0]->dtype;
    gi[0] = fern_dtype_is_float(dt) && fern_dtype_is_float(gs[0]->dtype) ? fern_cast(gs[0], dt) : NULL;
    return 0;
}

#define DT_KEEP (FERN_DT_FLOAT | FERN_DT_INT | FERN_DT(FERN_BOOL))

#define op_neg_grad neg_grad
#define op_abs_grad abs_grad
#define op_sign_grad sign_grad
#define op_square_grad square_grad
#define op_relu_grad relu_grad
#define op_floor_grad floor_grad
#define op_ceil_grad ceil_grad
#define op_round_grad round_grad
#define op_exp_grad exp_grad
#define op_expm1_grad expm1_grad
#define op_log_grad log_grad
#define op_log1p_grad log1p_grad
#define op_sqrt_grad sqrt_grad
#define op_rsqrt_grad rsqrt_grad
#define op_reciprocal_grad reciprocal_grad
#define op_sin_grad sin_grad
#define op_cos_grad cos_grad
#define op_tan_grad tan_grad
#define op_tanh_grad tanh_grad
#define op_sigmoid_grad sigmoid_grad
#define op_erf_grad erf_grad
#define op_leaky_relu_grad leaky_relu_grad
#define op_elu_grad elu_grad
#define op_gelu_grad gelu_grad
#define op_silu_grad silu_grad
#define op_softplus_grad softplus_grad
#define op_clip_grad clip_grad
#define op_isnan_grad isnan_grad
#define op_isinf_grad isinf_grad
#define op_logical_not_grad logical_not_grad

#define UNOP(VAR, NAME, KIND, BOOL_OUT, GRAIN, DTYPES, FLAGS, ATTRS, NATTRS, DOC, ...)       \
    static const un_op VAR = {                                                               \
        .def = {.name = NAME, .n_inputs = 1, .n_outputs = 1, .attrs = ATTRS,                 \
                .n_attrs = NATTRS, .infer = un_infer, .kernel = {[FERN_CPU] = un_kernel},    \
                .dtypes = DTYPES, .dtype_arg = -1, .flags = FLAGS, .doc = DOC,                \
                .grad = VAR##_grad},                                                         \
        .kind = KIND, .bool_out = BOOL_OUT, .grain = GRAIN, __VA_ARGS__};

#define HV FERN_OPF_HALF_VIA_F32
#define G FERN_EW_GRAIN
#define GH FERN_EW_GRAIN_HEAVY

UNOP(op_neg, "neg", UK_KEEP, -1, G, DT_KEEP, HV, NULL, 0, "-x",
     .rows = {F_ENTRIES(neg), S_ENTRIES(neg), U_ENTRY(neg)})
UNOP(op_abs, "abs", UK_KEEP, -1, G, DT_KEEP, HV, NULL, 0, "|x|",
     .rows = {F_ENTRIES(abs), S_ENTRIES(abs), [FERN_U8] = ident_u8})
UNOP(op_sign, "sign", UK_KEEP, FERN_BOOL, G, DT_KEEP, HV, NULL, 0, "-1, 0 or 1 (0 for nan)",
     .rows = {F_ENTRIES(sign), S_ENTRIES(sign), U_ENTRY(sign), [FERN_BOOL] = sign_bool})
UNOP(op_square, "square", UK_KEEP, FERN_I64, G, DT_KEEP, HV, NULL, 0, "x*x (bool gives i64)",
     .rows = {F_ENTRIES(square), S_ENTRIES(square), U_ENTRY(square)})
UNOP(op_relu, "relu", UK_KEEP, -1, G, DT_KEEP, HV, NULL, 0, "max(x, 0)",
     .rows = {F_ENTRIES(relu), S_ENTRIES(relu), [FERN_U8] = ident_u8})
UNOP(op_floor, "floor", UK_KEEP, -1, G, DT_KEEP, HV, NULL, 0, "round toward -inf",
     .rows = {F_ENTRIES(floor), IDENT_INT_ENTRIES})
UNOP(op_ceil, "ceil", UK_KEEP, -1, G, DT_KEEP, HV, NULL, 0, "round toward +inf",
     .rows = {F_ENTRIES(ceil), IDENT_INT_ENTRIES})
UNOP(op_round, "round", UK_KEEP, -1, G, DT_KEEP, HV, NULL, 0, "round half to even",
     .rows = {F_ENTRIES(round), IDENT_INT_ENTRIES})
UNOP(op_exp, "exp", UK_FLOAT, 0, GH, DT_KEEP, HV, NULL, 0, "e^x (ints give f32)",
     .rows = {F_ENTRIES(exp)})
UNOP(op_expm1, "expm1", UK_FLOAT, 0, GH, DT_KEEP, HV, NULL, 0, "e^x - 1",
     .rows = {F_ENTRIES(expm1)})
UNOP(op_log, "log", UK_FLOAT, 0, GH, DT_KEEP, HV, NULL, 0, "natural logarithm",
     .rows = {F_ENTRIES(log)})
UNOP(op_log1p, "log1p", UK_FLOAT, 0, GH, DT_KEEP, HV, NULL, 0, "log(1 + x)",
     .rows = {F_ENTRIES(log1p)})
UNOP(op_sqrt, "sqrt", UK_FLOAT, 0, G, DT_KEEP, HV, NULL, 0, "square root",
     .rows = {F_ENTRIES(sqrt)})
UNOP(op_rsqrt, "rsqrt", UK_FLOAT, 0, G, DT_KEEP, HV, NULL, 0, "1 / sqrt(x)",
     .rows = {F_ENTRIES(rsqrt)})
UNOP(op_reciprocal, "reciprocal", UK_FLOAT, 0, G, DT_KEEP, HV, NULL, 0, "1 / x",
     .rows = {F_ENTRIES(reciprocal)})
UNOP(op_sin, "sin", UK_FLOAT, 0, GH, DT_KEEP, HV, NULL, 0, "sine",
     .rows = {F_ENTRIES(sin)})
UNOP(op_cos, "cos", UK_FLOAT, 0, GH, DT_KEEP, HV, NULL, 0, "cosine",
     .rows = {F_ENTRIES(cos)})
UNOP(op_tan, "tan", UK_FLOAT, 0, GH, DT_KEEP, HV, NULL, 0, "tangent",
     .rows = {F_ENTRIES(tan)})
UNOP(op_tanh, "tanh", UK_FLOAT, 0, GH, DT_KEEP, HV, NULL, 0, "hyperbolic tangent",
     .rows = {F_ENTRIES(tanh)})
UNOP(op_sigmoid, "sigmoid", UK_FLOAT, 0, GH, DT_KEEP, HV, NULL, 0, "1 / (1 + e^-x)",
     .rows = {F_ENTRIES(sigmoid)})
UNOP(op_erf, "erf", UK_FLOAT, 0, GH, DT_KEEP, HV, NULL, 0, "error function",
     .rows = {F_ENTRIES(erf)})

static const fern_attr_spec leaky_attrs[] = {{"negative_slope", FERN_ATTR_FLOAT, 0.01, NULL}};
static const fern_attr_spec elu_attrs[] = {{"alpha", FERN_ATTR_FLOAT, 1.0, NULL}};
static const fern_attr_spec gelu_attrs[] = {{"approximate", FERN_ATTR_INT, 0, NULL}};
static const fern_attr_spec softplus_attrs[] = {{"beta", FERN_ATTR_FLOAT, 1.0, NULL},
                                                {"threshold", FERN_ATTR_FLOAT, 20.0, NULL}};
static const fern_attr_spec clip_attrs[] = {{"lo", FERN_ATTR_FLOAT, -INFINITY, NULL},
                                            {"hi", FERN_ATTR_FLOAT, INFINITY, NULL}};

UNOP(op_leaky_relu, "leaky_relu", UK_FLOAT_ONLY, 0, G, FERN_DT_FLOAT, HV, leaky_attrs, 1,
     "x if x > 0 else negative_slope * x", .rows = {F_ENTRIES(leaky_relu)})
UNOP(op_elu, "elu", UK_FLOAT_ONLY, 0, GH, FERN_DT_FLOAT, HV, elu_attrs, 1,
     "x if x > 0 else alpha * (e^x - 1)", .rows = {F_ENTRIES(elu)})
UNOP(op_gelu, "gelu", UK_FLOAT_ONLY, 0, GH, FERN_DT_FLOAT, HV, gelu_attrs, 1,
     "x * Phi(x); approximate=1: the tanh form", .rows = {F_ENTRIES(gelu)},
     .alt_rows = {F_ENTRIES(gelu_tanh)})
UNOP(op_silu, "silu", UK_FLOAT_ONLY, 0, GH, FERN_DT_FLOAT, HV, NULL, 0, "x * sigmoid(x)",
     .rows = {F_ENTRIES(silu)})
UNOP(op_softplus, "softplus", UK_FLOAT_ONLY, 0, GH, FERN_DT_FLOAT, HV, softplus_attrs, 2,
     "log(1 + e^(beta*x)) / beta, x where beta*x > threshold", .rows = {F_ENTRIES(softplus)})
UNOP(op_clip, "clip", UK_CLIP, 0, G, DT_KEEP, HV, clip_attrs, 2,
     "clamp to [lo, hi] (+-inf: no bound); integral bounds keep integer dtypes",
     .rows = {F_ENTRIES(clip), S_ENTRIES(clip), U_ENTRY(clip), [FERN_BOOL] = clip_bool})
UNOP(op_isnan, "isnan", UK_PRED, 0, G, FERN_DT_ALL, FERN_OPF_NONDIFF, NULL, 0, "x != x -> bool",
     .rows = {F_ENTRIES(isnan_), [FERN_F16] = isnan_f16, [FERN_BF16] = isnan_bf16,
              FALSE_ENTRIES})
UNOP(op_isinf, "isinf", UK_PRED, 0, G, FERN_DT_ALL, FERN_OPF_NONDIFF, NULL, 0,
     "|x| == inf -> bool",
     .rows = {F_ENTRIES(isinf_), [FERN_F16] = isinf_f16, [FERN_BF16] = isinf_bf16,
              FALSE_ENTRIES})
UNOP(op_logical_not, "logical_not", UK_PRED, 0, G, FERN_DT_ALL, FERN_OPF_NONDIFF, NULL, 0,
     "x == 0 -> bool",
     .rows = {[FERN_F32] = not_f32, [FERN_F64] = not_f64, [FERN_F16] = not_half,
              [FERN_BF16] = not_half, [FERN_I8] = not_i8, [FERN_U8] = not_u8,
              [FERN_I32] = not_i32, [FERN_I64] = not_i64, [FERN_BOOL] = not_u8})

#define UNARY_FN(NAME)                                                                        \
    fern_tensor *fern_##NAME(fern_tensor *x) { return fern__op1(&op_##NAME.def, 1, &x, NULL); }

UNARY_FN(neg)
UNARY_FN(abs)
UNARY_FN(sign)
UNARY_FN(exp)
UNARY_FN(expm1)
UNARY_FN(log)
UNARY_FN(log1p)
UNARY_FN(sqrt)
UNARY_FN(rsqrt)
UNARY_FN(square)
UNARY_FN(reciprocal)
UNARY_FN(sin)
UNARY_FN(cos)
UNARY_FN(tan)
UNARY_FN(tanh)
UNARY_FN(sigmoid)
UNARY_FN(relu)
UNARY_FN(silu)
UNARY_FN(erf)
UNARY_FN(floor)
UNARY_FN(ceil)
UNARY_FN(round)
UNARY_FN(isnan)
UNARY_FN(isinf)
UNARY_FN(logical_not)

fern_tensor *fern_leaky_relu(fern_tensor *x, double negative_slope)
{
    fern_attr a = fern__attr_float(negative_slope);
    return fern__op1(&op_leaky_relu.def, 1, &x, &a);
}

fern_tensor *fern_elu(fern_tensor *x, double alpha)
{
    fern_attr a = fern__attr_float(alpha);
    return fern__op1(&op_elu.def, 1, &x, &a);
}

fern_tensor *fern_gelu(fern_tensor *x, int approximate)
{
    fern_attr a = fern__attr_int(approximate);
    return fern__op1(&op_gelu.def, 1, &x, &a);
}

fern_tensor *fern_softplus(fern_tensor *x, double beta, double threshold)
{
    fern_attr a[2] = {fern__attr_float(beta), fern__attr_float(threshold)};
    return fern__op1(&op_softplus.def, 1, &x, a);
}

fern_tensor *fern_clip(fern_tensor *x, double lo, double hi)
{
    fern_attr a[2] = {fern__attr_float(lo), fern__attr_float(hi)};
    return fern__op1(&op_clip.def, 1, &x, a);
}

const fern_op_def *const fern_ops_unary[] = {
    &op_cast,           &op_neg.def,     &op_abs.def,        &op_sign.def,     &op_exp.def,
    &op_expm1.def,      &op_log.def,     &op_log1p.def,      &op_sqrt.def,     &op_rsqrt.def,
    &op_square.def,     &op_reciprocal.def, &op_sin.def,     &op_cos.def,      &op_tan.def,
    &op_tanh.def,       &op_sigmoid.def, &op_relu.def,       &op_leaky_relu.def, &op_elu.def,
    &op_gelu.def,       &op_silu.def,    &op_softplus.def,   &op_erf.def,      &op_floor.def,
    &op_ceil.def,       &op_round.def,   &op_clip.def,       &op_isnan.def,    &op_isinf.def,
    &op_logical_not.def, NULL};
