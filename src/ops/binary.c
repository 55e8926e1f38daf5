/* Binary and ternary elementwise ops with NumPy broadcasting: arithmetic
 * (add sub mul div pow maximum minimum atan2 fmod), comparisons (eq ne lt
 * le gt ge -> bool), logical and/or/xor (-> bool) and where; plus the
 * scalar conveniences (fern_add_scalar ...).
 *
 * dtypes follow PyTorch 1.13: the result type promotes across categories
 * (bool < int < float) but a 0-d operand never widens its category's dtype
 * (fern_ew_result_type); div and atan2 of integers give f32; sub of bool
 * and pow/fmod of bools are errors; f16/bf16 arithmetic runs in f32.
 *
 * Each op is one row function per compute dtype, run by the shared walker
 * (backend/cpu/elementwise.h): same-shape contiguous operands are a single
 * flat loop, a broadcast scalar operand gets its own loop, and other
 * broadcasts iterate coalesced rows with zero strides. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "../backend/cpu/elementwise.h"
#include "op_def.h"

typedef struct {
    atomic_int zero_div; /* integer fmod by zero seen */
} bin_ctx;

typedef enum {
    BK_ARITH,   /* add mul maximum minimum: any dtype, bool included        */
    BK_SUB,     /* sub: no bool operand                                     */
    BK_NOBOOL,  /* pow fmod: a bool result type is an error                 */
    BK_FLOAT,   /* div atan2: integer and bool result types become f32      */
    BK_CMP,     /* comparisons -> bool, computed in the promoted dtype      */
    BK_LOGICAL  /* -> bool from the truth of each operand                   */
} bin_kind;

typedef struct {
    fern_op_def def; /* first member: the registry points here */
    bin_kind kind;
    int64_t grain;
    fern_ew_row_fn rows[FERN_DTYPE_COUNT]; /* by compute dtype */
} bin_op;

/* A row function: o[i] = EXPR(x, y). Separate loops for the contiguous
 * case and for a broadcast scalar on either side keep the hot loops free of
 * stride arithmetic so gcc vectorizes them. */
#define BROW(NAME, T, OT, EXPR)                                                               \
    static void NAME(void *ctx_, int64_t n, char *const *p, const int64_t *s)              \
    {                                                                                        \
        typedef T scalar_t;                                                                  \
        (void)sizeof(scalar_t);                                                              \
        (void)ctx_;                                                                          \
        OT *restrict o = (OT *)p[0];                                                         \
        const T *restrict a = (const T *)p[1];                                               \
        const T *restrict b = (const T *)p[2];                                               \
        const int64_t so = s[0], sa = s[1], sb = s[2];                                       \
        if (so == 1 && sa == 1 && sb == 1) {                                                 \
            for (int64_t i = 0; i < n; i++) {                                                \
                const T x = a[i], y = b[i];                                                  \
                o[i] = (OT)(EXPR);                                                           \
            }                                                                                \
        } else if (so == 1 && sa == 1 && sb == 0) {                                          \
            const T y = b[0];                                                                \
            for (int64_t i = 0; i < n; i++) {                                                \
                const T x = a[i];                                                            \
                o[i] = (OT)(EXPR);                                                           \
            }                                                                                \
        } else if (so == 1 && sa == 0 && sb == 1) {                                          \
            const T x = a[0];                                                                \
            for (int64_t i = 0; i < n; i++) {                                                \
                const T y = b[i];                                                            \
                o[i] = (OT)(EXPR);                                                           \
            }                                                                                \
        } else {                                                                             \
            for (int64_t i = 0; i < n; i++) {                                                \
                const T x = a[i * sa], y = b[i * sb];                                        \
                o[i * so] = (OT)(EXPR);                                                      \
            }                                                                                \
        }                                                                                    \
    }

/* Wrapping integer arithmetic (torch wraps; signed overflow is UB in C):
 * adding an unsigned zero of the same width makes the operation unsigned. */
#define UNS(T) _Generic((T)0, int8_t: (uint8_t)0, int32_t: (uint32_t)0, int64_t: (uint64_t)0, \
                        uint8_t: (uint8_t)0)
#define W(v) ((v) + UNS(scalar_t))

#define FROWS(OP, EXPR)                                                                       \
    BROW(OP##_f32, float, float, EXPR)                                                       \
    BROW(OP##_f64, double, double, EXPR)
#define IROWS(OP, EXPR)                                                                       \
    BROW(OP##_i8, int8_t, int8_t, EXPR)                                                      \
    BROW(OP##_u8, uint8_t, uint8_t, EXPR)                                                    \
    BROW(OP##_i32, int32_t, int32_t, EXPR)                                                   \
    BROW(OP##_i64, int64_t, int64_t, EXPR)
#define F_ENTRIES(OP) [FERN_F32] = OP##_f32, [FERN_F64] = OP##_f64
#define I_ENTRIES(OP)                                                                         \
    [FERN_I8] = OP##_i8, [FERN_U8] = OP##_u8, [FERN_I32] = OP##_i32, [FERN_I64] = OP##_i64

/* ---- arithmetic rows ---------------------------------------------------- */

FROWS(add, x + y)
IROWS(add, (scalar_t)(W(x) + W(y)))
BROW(add_bool, uint8_t, uint8_t, (x | y) != 0)
FROWS(sub, x - y)
IROWS(sub, (scalar_t)(W(x) - W(y)))
FROWS(mul, x *y)
IROWS(mul, (scalar_t)(W(x) * W(y)))
BROW(mul_bool, uint8_t, uint8_t, (x != 0) & (y != 0))
FROWS(div, x / y)
/* nan propagates; on ties (0 vs -0) the first operand wins, like torch */
FROWS(maximum, x != x ? x : (y != y ? y : (x < y ? y : x)))
IROWS(maximum, x < y ? y : x)
FROWS(minimum, x != x ? x : (y != y ? y : (y < x ? y : x)))
IROWS(minimum, y < x ? y : x)
BROW(atan2_f32, float, float, atan2f(x, y))
BROW(atan2_f64, double, double, atan2(x, y))
BROW(fmod_f32, float, float, fmodf(x, y))
BROW(fmod_f64, double, double, fmod(x, y))

/* Integer fmod (C's %, sign of the dividend): a zero divisor is torch's
 * ZeroDivisionError; x % -1 is 0 (INT_MIN % -1 would trap in C). */
#define FMOD_INT_ROW(NAME, T, SIGNED)                                                         \
    static void NAME(void *ctx_, int64_t n, char *const *p, const int64_t *s)              \
    {                                                                                        \
        bin_ctx *ctx = ctx_;                                                                 \
        T *o = (T *)p[0];                                                                    \
        const T *a = (const T *)p[1], *b = (const T *)p[2];                                  \
        int bad = 0;                                                                         \
        for (int64_t i = 0; i < n; i++) {                                                    \
            const T x = a[i * s[1]], y = b[i * s[2]];                                        \
            if (y == 0) {                                                                    \
                bad = 1;                                                                     \
                o[i * s[0]] = 0;                                                             \
            } else if (SIGNED && y == (T)-1) {                                               \
                o[i * s[0]] = 0;                                                             \
            } else {                                                                         \
                o[i * s[0]] = (T)(x % y);                                                    \
            }                                                                                \
        }                                                                                    \
        if (bad)                                                                             \
            atomic_store_explicit(&ctx->zero_div, 1, memory_order_relaxed);                  \
    }
FMOD_INT_ROW(fmod_i8, int8_t, 1)
FMOD_INT_ROW(fmod_u8, uint8_t, 0)
FMOD_INT_ROW(fmod_i32, int32_t, 1)
FMOD_INT_ROW(fmod_i64, int64_t, 1)

/* Integer power by squaring, wrapping like torch. Negative exponents give
 * 0 except for bases 1 and -1 (torch's integer pow). */
static inline int64_t ipow(int64_t base, int64_t e)
{
    if (e < 0)
        return base == 1 ? 1 : base == -1 ? ((e & 1) ? -1 : 1) : 0;
    uint64_t r = 1, bb = (uint64_t)base;
    while (e) {
        if (e & 1)
            r *= bb;
        bb *= bb;
        e >>= 1;
    }
    return (int64_t)r;
}
BROW(pow_i8, int8_t, int8_t, (int8_t)ipow(x, y))
BROW(pow_u8, uint8_t, uint8_t, (uint8_t)ipow(x, y))
BROW(pow_i32, int32_t, int32_t, (int32_t)ipow(x, y))
BROW(pow_i64, int64_t, int64_t, ipow(x, y))

/* Float pow. A broadcast exponent of 2, 3, 0.5, -0.5, 1, -1, -2 or 0 takes
 * an exact fast path (with pow's values at -0 and -inf). */
#define POW_ROW(NAME, T, POWF, SQRTF)                                                         \
    static void NAME(void *ctx_, int64_t n, char *const *p, const int64_t *s)              \
    {                                                                                        \
        (void)ctx_;                                                                          \
        T *restrict o = (T *)p[0];                                                           \
        const T *restrict a = (const T *)p[1];                                               \
        const T *restrict b = (const T *)p[2];                                               \
        const int64_t so = s[0], sa = s[1], sb = s[2];                                       \
        if (sb == 0 && so == 1 && sa == 1) {                                                 \
            const T y = b[0];                                                                \
            if (y == 2) {                                                                    \
                for (int64_t i = 0; i < n; i++)                                              \
                    o[i] = a[i] * a[i];                                                      \
            } else if (y == 3) {                                                             \
                for (int64_t i = 0; i < n; i++)                                              \
                    o[i] = a[i] * a[i] * a[i];                                               \
            } else if (y == 1) {                                                             \
                for (int64_t i = 0; i < n; i++)                                              \
                    o[i] = a[i];                                                             \
            } else if (y == 0) {                                                             \
                for (int64_t i = 0; i < n; i++)                                              \
                    o[i] = 1;                                                                \
            } else if (y == -1) {                                                            \
                for (int64_t i = 0; i < n; i++)                                              \
                    o[i] = (T)1 / a[i];                                                      \
            } else if (y == -2) {                                                            \
                for (int64_t i = 0; i < n; i++)                                              \
                    o[i] = (T)1 / (a[i] * a[i]);                                             \
            } else if (y == (T)0.5) {                                                        \
                for (int64_t i = 0; i < n; i++) {                                            \
                    T r = fm_fabs(SQRTF(a[i]));                                              \
                    o[i] = a[i] == -(T)INFINITY ? (T)INFINITY : r;                           \
                }                                                                            \
            } else if (y == (T)-0.5) {                                                       \
                for (int64_t i = 0; i < n; i++) {                                            \
                    T r = (T)1 / fm_fabs(SQRTF(a[i]));                                       \
                    o[i] = a[i] == -(T)INFINITY ? (T)0 : r;                                  \
                }                                                                            \
            } else {                                                                         \
                for (int64_t i = 0; i < n; i++)                                              \
                    o[i] = POWF(a[i], y);                                                    \
            }                                                                                \
            return;                                                                          \
        }                                                                                    \
        for (int64_t i = 0; i < n; i++)                                                      \
            o[i * so] = POWF(a[i * sa], b[i * sb]);                                          \
    }
POW_ROW(pow_f32, float, powf, sqrtf)
POW_ROW(pow_f64, double, pow, sqrt)

/* ---- comparisons and logical rows ----------------------------------------- */

#define CMP_ROWS(OP, EXPR)                                                                    \
    BROW(OP##_f32, float, uint8_t, EXPR)                                                     \
    BROW(OP##_f64, double, uint8_t, EXPR)                                                    \
    BROW(OP##_i8, int8_t, uint8_t, EXPR)                                                     \
    BROW(OP##_u8, uint8_t, uint8_t, EXPR)                                                    \
    BROW(OP##_i32, int32_t, uint8_t, EXPR)                                                   \
    BROW(OP##_i64, int64_t, uint8_t, EXPR)
#define CMP_ENTRIES(OP) F_ENTRIES(OP), I_ENTRIES(OP), [FERN_BOOL] = OP##_u8

CMP_ROWS(eq, x == y)
CMP_ROWS(ne, x != y)
CMP_ROWS(lt, x < y)
CMP_ROWS(le, x <= y)
CMP_ROWS(gt, x > y)
CMP_ROWS(ge, x >= y)

/* truth of f16/bf16 bits: anything but +-0 (nan is true) */
#define LOGIC_ROWS(OP, OPER)                                                                  \
    CMP_ROWS(OP, (x != 0) OPER (y != 0))                                                     \
    BROW(OP##_half, uint16_t, uint8_t, ((x & 0x7fff) != 0) OPER ((y & 0x7fff) != 0))
#define LOGIC_ENTRIES(OP) CMP_ENTRIES(OP), [FERN_F16] = OP##_half, [FERN_BF16] = OP##_half

LOGIC_ROWS(logical_and, &)
LOGIC_ROWS(logical_or, |)
LOGIC_ROWS(logical_xor, ^)

/* ---- inference and kernel ----------------------------------------------- */

static int same_shape(const fern_tensor *a, const fern_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return 0;
    return 1;
}

static int bin_infer(fern_op_call *c)
{
    const bin_op *u = (const bin_op *)c->op;
    const fern_tensor *a = c->in[0], *b = c->in[1];
    if (same_shape(a, b)) {
        c->out_ndim[0] = a->ndim;
        memcpy(c->out_shape[0], a->shape, sizeof(int64_t) * (size_t)a->ndim);
    } else if (fern__broadcast_shapes(c->op->name, 2, c->in, &c->out_ndim[0], c->out_shape[0])) {
        return -1;
    }
    fern_dtype dt = fern_ew_result_type(2, c->in);
    switch (u->kind) {
    case BK_ARITH: break;
    case BK_SUB:
        if (a->dtype == FERN_BOOL || b->dtype == FERN_BOOL)
            return fern__err_dtype(c, a->dtype == FERN_BOOL ? a : b,
                                   "subtraction with a bool tensor is not supported (use "
                                   "logical_xor or logical_not)");
        break;
    case BK_NOBOOL:
        if (dt == FERN_BOOL)
            return fern__err_dtype(c, a, "bool inputs are not supported");
        break;
    case BK_FLOAT:
        if (!fern_dtype_is_float(dt))
            dt = FERN_F32;
        break;
    case BK_CMP:
    case BK_LOGICAL: dt = FERN_BOOL; break;
    }
    c->out_dtype[0] = dt;
    return 0;
}

static int bin_kernel(fern_op_call *c)
{
    const bin_op *u = (const bin_op *)c->op;
    const fern_tensor *a0 = c->in[0], *b0 = c->in[1];
    fern_dtype cdt = c->out[0]->dtype;
    if (u->kind == BK_CMP) {
        cdt = fern_ew_result_type(2, c->in);
        if (cdt == FERN_F16 || cdt == FERN_BF16)
            cdt = FERN_F32;
    } else if (u->kind == BK_LOGICAL) {
        cdt = a0->dtype == b0->dtype ? a0->dtype : FERN_BOOL;
    }
    fern_ew_row_fn fn = u->rows[cdt];
    if (!fn) {
        fern_set_error(FERN_ERR_UNSUPPORTED, "%s: no kernel for dtype %s", c->op->name,
                       fern_dtype_name(cdt));
        return -1;
    }
    fern_ew_temp ta, tb;
    const fern_tensor *a = fern_ew_as_dtype(a0, cdt, &ta);
    if (!a)
        return -1;
    const fern_tensor *b = fern_ew_as_dtype(b0, cdt, &tb);
    if (!b) {
        fern_ew_temp_free(&ta);
        return -1;
    }
    const fern_tensor *ops[3] = {c->out[0], a, b};
    bin_ctx ctx;
    atomic_init(&ctx.zero_div, 0);
    fern_ew_apply(3, ops, fn, &ctx, u->grain);
    fern_ew_temp_free(&ta);
    fern_ew_temp_free(&tb);
    if (atomic_load(&ctx.zero_div)) {
        char da[128], db[128];
        fern_set_error(FERN_ERR_INVALID,
                       "%s: integer division by zero (ZeroDivisionError) for %s and %s",
                       c->op->name, fern_tensor_desc(a0, da, sizeof da),
                       fern_tensor_desc(b0, db, sizeof db));
        return -1;
    }
    return 0;
}

#define DT_NUM (FERN_DT_FLOAT | FERN_DT_INT | FERN_DT(FERN_BOOL))


/* ---- gradient rules (public ops only: they trace and differentiate again) --
 * Each cotangent is summed back over broadcast dimensions (fern__sum_to),
 * which also casts it to its input's dtype. */

#define GRAD2(NAME, GA, GB)                                                                   \
    static int NAME##_grad(const fern_op_call *c, fern_tensor *const *gs, fern_tensor **gi)  \
    {                                                                                         \
        fern_tensor *a = c->in[0], *b = c->in[1], *y = c->out[0], *g = gs[0];                 \
        /* compute in the result dtype (an integer operand would overflow) */                 \
        if (a->dtype != y->dtype)                                                             \
            a = fern_cast(a, y->dtype);                                                       \
        if (b->dtype != y->dtype)                                                             \
            b = fern_cast(b, y->dtype);                                                       \
        (void)a;                                                                              \
        (void)b;                                                                              \
        (void)y;                                                                              \
        if (fern_dtype_is_float(c->in[0]->dtype))                                             \
            gi[0] = fern__sum_to((GA), c->in[0]);                                             \
        if (fern_dtype_is_float(c->in[1]->dtype))                                             \
            gi[1] = fern__sum_to((GB), c->in[1]);                                             \
        return 0;                                                                             \
    }

static fern_tensor *like(const fern_tensor *t, double v) { return fern_scalar(t->dtype, v); }

/* 1 where p, 0.5 where tie, 0 elsewhere */
static fern_tensor *share(fern_tensor *win, fern_tensor *tie, fern_dtype dt)
{
    return fern_add(fern_cast(win, dt), fern_mul_scalar(fern_cast(tie, dt), 0.5));
}

GRAD2(add, g, g)
GRAD2(sub, g, fern_neg(g))
GRAD2(mul, fern_mul(g, b), fern_mul(g, a))
GRAD2(div, fern_div(g, b), fern_neg(fern_div(fern_mul(g, y), b)))
/* d/da a^b = b a^(b-1); d/db = a^b log a (0 where a == 0, like torch) */
GRAD2(pow, fern_mul(g, fern_mul(b, fern_pow(a, fern_sub(b, like(b, 1))))),
      fern_mul(g, fern_where(fern_eq(a, like(a, 0)), like(y, 0), fern_mul(y, fern_log(a)))))
GRAD2(maximum, fern_mul(g, share(fern_gt(a, b), fern_eq(a, b), g->dtype)),
      fern_mul(g, share(fern_gt(b, a), fern_eq(a, b), g->dtype)))
GRAD2(minimum, fern_mul(g, share(fern_lt(a, b), fern_eq(a, b), g->dtype)),
      fern_mul(g, share(fern_lt(b, a), fern_eq(a, b), g->dtype)))
/* atan2(a, b): da = b / (a^2 + b^2), db = -a / (a^2 + b^2) */
GRAD2(atan2, fern_div(fern_mul(g, b), fern_add(fern_square(a), fern_square(b))),
      fern_neg(fern_div(fern_mul(g, a), fern_add(fern_square(a), fern_square(b)))))
/* fmod(a, b) = a - trunc(a/b) b: da = 1, db = -trunc(a/b) = -(a - y)/b */
GRAD2(fmod, g, fern_neg(fern_mul(g, fern_div(fern_sub(a, y), b))))

#define op_add_grad add_grad
#define op_sub_grad sub_grad
#define op_mul_grad mul_grad
#define op_div_grad div_grad
#define op_pow_grad pow_grad
#define op_maximum_grad maximum_grad
#define op_minimum_grad minimum_grad
#define op_atan2_grad atan2_grad
#define op_fmod_grad fmod_grad
#define op_eq_grad NULL
#define op_ne_grad NULL
#define op_lt_grad NULL
#define op_le_grad NULL
#define op_gt_grad NULL
#define op_ge_grad NULL
#define op_logical_and_grad NULL
#define op_logical_or_grad NULL
#define op_logical_xor_grad NULL

#define BINOP(VAR, NAME, KIND, GRAIN, DTYPES, FLAGS, DOC, ...)                                \
    static const bin_op VAR = {                                                              \
        .def = {.name = NAME, .n_inputs = 2, .n_outputs = 1, .infer = bin_infer,             \
                .kernel = {[FERN_CPU] = bin_kernel}, .dtypes = DTYPES, .dtype_arg = -1,      \
                .flags = FLAGS, .doc = DOC, .grad = VAR##_grad},                             \
        .kind = KIND, .grain = GRAIN, .rows = {__VA_ARGS__}};

#define HV FERN_OPF_HALF_VIA_F32
#define ND FERN_OPF_NONDIFF
#define G FERN_EW_GRAIN
#define GH FERN_EW_GRAIN_HEAVY

BINOP(op_add, "add", BK_ARITH, G, DT_NUM, HV, "a + b (bool: or)", F_ENTRIES(add),
      I_ENTRIES(add), [FERN_BOOL] = add_bool)
BINOP(op_sub, "sub", BK_SUB, G, DT_NUM, HV, "a - b", F_ENTRIES(sub), I_ENTRIES(sub))
BINOP(op_mul, "mul", BK_ARITH, G, DT_NUM, HV, "a * b (bool: and)", F_ENTRIES(mul),
      I_ENTRIES(mul), [FERN_BOOL] = mul_bool)
BINOP(op_div, "div", BK_FLOAT, G, DT_NUM, HV, "true division (integers give f32)",
      F_ENTRIES(div))
BINOP(op_pow, "pow", BK_NOBOOL, GH, DT_NUM, HV, "a ** b", F_ENTRIES(pow), I_ENTRIES(pow))
BINOP(op_maximum, "maximum", BK_ARITH, G, DT_NUM, HV, "elementwise max (nan propagates)",
      F_ENTRIES(maximum), I_ENTRIES(maximum), [FERN_BOOL] = add_bool)
BINOP(op_minimum, "minimum", BK_ARITH, G, DT_NUM, HV, "elementwise min (nan propagates)",
      F_ENTRIES(minimum), I_ENTRIES(minimum), [FERN_BOOL] = mul_bool)
BINOP(op_atan2, "atan2", BK_FLOAT, GH, DT_NUM, HV, "atan(a / b) in the quadrant of (b, a)",
      F_ENTRIES(atan2))
BINOP(op_fmod, "fmod", BK_NOBOOL, GH, DT_NUM, HV, "C fmod: remainder with the sign of a",
      F_ENTRIES(fmod), I_ENTRIES(fmod))
BINOP(op_eq, "eq", BK_CMP, G, FERN_DT_ALL, ND, "a == b -> bool", CMP_ENTRIES(eq))
BINOP(op_ne, "ne", BK_CMP, G, FERN_DT_ALL, ND, "a != b -> bool", CMP_ENTRIES(ne))
BINOP(op_lt, "lt", BK_CMP, G, FERN_DT_ALL, ND, "a < b -> bool", CMP_ENTRIES(lt))
BINOP(op_le, "le", BK_CMP, G, FERN_DT_ALL, ND, "a <= b -> bool", CMP_ENTRIES(le))
BINOP(op_gt, "gt", BK_CMP, G, FERN_DT_ALL, ND, "a > b -> bool", CMP_ENTRIES(gt))
BINOP(op_ge, "ge", BK_CMP, G, FERN_DT_ALL, ND, "a >= b -> bool", CMP_ENTRIES(ge))
BINOP(op_logical_and, "logical_and", BK_LOGICAL, G, FERN_DT_ALL, ND,
      "a and b (nonzero is true) -> bool", LOGIC_ENTRIES(logical_and))
BINOP(op_logical_or, "logical_or", BK_LOGICAL, G, FERN_DT_ALL, ND,
      "a or b (nonzero is true) -> bool", LOGIC_ENTRIES(logical_or))
BINOP(op_logical_xor, "logical_xor", BK_LOGICAL, G, FERN_DT_ALL, ND,
      "a xor b (nonzero is true) -> bool", LOGIC_ENTRIES(logical_xor))

#define BINARY_FN(NAME)                                                                       \
    fern_tensor *fern_##NAME(fern_tensor *a, fern_tensor *b)                                 \
    {                                                                                        \
        fern_tensor *in[2] = {a, b};                                                         \
        return fern__op1(&op_##NAME.def, 2, in, NULL);                                       \
    }

BINARY_FN(add)
BINARY_FN(sub)
BINARY_FN(mul)
BINARY_FN(div)
BINARY_FN(pow)
BINARY_FN(maximum)
BINARY_FN(minimum)
BINARY_FN(atan2)
BINARY_FN(fmod)
BINARY_FN(eq)
BINARY_FN(ne)
BINARY_FN(lt)
BINARY_FN(le)
BINARY_FN(gt)
BINARY_FN(ge)
BINARY_FN(logical_and)
BINARY_FN(logical_or)
BINARY_FN(logical_xor)

/* ---- where ---------------------------------------------------------------- */

/* out[i] = cond[i] ? a[i] : b[i], copying elements by their bits. */
#define WHERE_ROW(NAME, T)                                                                    \
    static void NAME(void *ctx_, int64_t n, char *const *p, const int64_t *s)              \
    {                                                                                        \
        (void)ctx_;                                                                          \
        T *restrict o = (T *)p[0];                                                           \
        const uint8_t *restrict c = (const uint8_t *)p[1];                                   \
        const T *restrict a = (const T *)p[2];                                               \
        const T *restrict b = (const T *)p[3];                                               \
        const int64_t so = s[0], sc = s[1], sa = s[2], sb = s[3];                            \
        if (so == 1 && sc == 1 && sa == 1 && sb == 1) {                                      \
            for (int64_t i = 0; i < n; i++)                                                  \
                o[i] = c[i] ? a[i] : b[i];                                                   \
        } else if (so == 1 && sc == 1 && sa == 1 && sb == 0) {                               \
            const T y = b[0];                                                                \
            for (int64_t i = 0; i < n; i++)                                                  \
                o[i] = c[i] ? a[i] : y;                                                      \
        } else if (so == 1 && sc == 1 && sa == 0 && sb == 1) {                               \
            const T x = a[0];                                                                \
            for (int64_t i = 0; i < n; i++)                                                  \
                o[i] = c[i] ? x : b[i];                                                      \
        } else {                                                                             \
            for (int64_t i = 0; i < n; i++)                                                  \
                o[i * so] = c[i * sc] ? a[i * sa] : b[i * sb];                               \
        }                                                                                    \
    }
WHERE_ROW(where_1, uint8_t)
WHERE_ROW(where_2, uint16_t)
WHERE_ROW(where_4, uint32_t)
WHERE_ROW(where_8, uint64_t)

static int where_infer(fern_op_call *c)
{
    const fern_tensor *cond = c->in[0];
    if (cond->dtype != FERN_BOOL && cond->dtype != FERN_U8)
        return fern__err_dtype(c, cond, "condition must be a bool (or u8) tensor");
    if (fern__broadcast_shapes("where", 3, c->in, &c->out_ndim[0], c->out_shape[0]))
        return -1;
    c->out_dtype[0] = fern_ew_result_type(2, c->in + 1);
    return 0;
}

static int where_kernel(fern_op_call *c)
{
    fern_dtype dt = c->out[0]->dtype;
    fern_ew_row_fn fn;
    switch (fern_dtype_size(dt)) {
    case 1: fn = where_1; break;
    case 2: fn = where_2; break;
    case 4: fn = where_4; break;
    default: fn = where_8; break;
    }
    fern_ew_temp ta, tb;
    const fern_tensor *a = fern_ew_as_dtype(c->in[1], dt, &ta);
    if (!a)
        return -1;
    const fern_tensor *b = fern_ew_as_dtype(c->in[2], dt, &tb);
    if (!b) {
        fern_ew_temp_free(&ta);
        return -1;
    }
    const fern_tensor *ops[4] = {c->out[0], c->in[0], a, b};
    fern_ew_apply(4, ops, fn, NULL, FERN_EW_GRAIN);
    fern_ew_temp_free(&ta);
    fern_ew_temp_free(&tb);
    return 0;
}

/* cond routes the cotangent: a gets it where cond holds, b elsewhere */
static int where_grad(const fern_op_call *c, fern_tensor *const *gs, fern_tensor **gi)
{
    fern_tensor *cond = c->in[0], *a = c->in[1], *b = c->in[2], *g = gs[0];
    fern_tensor *zero = fern_zeros_like(g);
    if (fern_dtype_is_float(a->dtype))
        gi[1] = fern__sum_to(fern_where(cond, g, zero), a);
    if (fern_dtype_is_float(b->dtype))
        gi[2] = fern__sum_to(fern_where(cond, zero, g), b);
    return 0;
}

static const fern_op_def op_where = {
    .name = "where", .n_inputs = 3, .n_outputs = 1, .infer = where_infer,
    .kernel = {[FERN_CPU] = where_kernel}, .dtypes = FERN_DT_ALL, .dtype_arg = -1,
    .doc = "cond ? a : b with cond, a, b broadcast together (cond bool or u8)", .grad = where_grad};

fern_tensor *fern_where(fern_tensor *cond, fern_tensor *a, fern_tensor *b)
{
    fern_tensor *in[3] = {cond, a, b};
    return fern__op1(&op_where, 3, in, NULL);
}

/* ---- scalar conveniences -------------------------------------------------
 * The scalar becomes a 0-d tensor, so it never widens x's dtype within a
 * category (torch's rule for Python numbers): a float x keeps its dtype
 * (f16/bf16 get an f32 scalar, so the op computes with the scalar's f32
 * value like torch's opmath); an integer x keeps its dtype for an integral
 * s; a fractional (or nan/inf) s with an integer or bool x gives f32, and
 * an integral s with a bool x gives i64, as a Python float/int would. */
static fern_tensor *scalar_op(const fern_op_def *op, fern_tensor *x, double s)
{
    fern_tensor *in[2] = {x, NULL};
    if (!x)
        return fern__op1(op, 2, in, NULL);
    fern_dtype dt = x->dtype;
    int integral = isfinite(s) && s == floor(s);
    if (dt == FERN_F16 || dt == FERN_BF16)
        dt = FERN_F32;
    else if (!fern_dtype_is_float(dt) && !integral)
        dt = FERN_F32;
    else if (dt == FERN_BOOL)
        dt = FERN_I64;
    fern_tensor *sc = fern__tensor_alloc(dt, 0, NULL, FERN_CPU);
    if (!sc)
        return NULL;
    fern__store(sc->storage->data, dt, s);
    in[1] = sc;
    fern_tensor *r = fern__op1(op, 2, in, NULL);
    fern_release(sc);
    return r;
}

fern_tensor *fern_add_scalar(fern_tensor *x, double s) { return scalar_op(&op_add.def, x, s); }
fern_tensor *fern_sub_scalar(fern_tensor *x, double s) { return scalar_op(&op_sub.def, x, s); }
fern_tensor *fern_mul_scalar(fern_tensor *x, double s) { return scalar_op(&op_mul.def, x, s); }
fern_tensor *fern_div_scalar(fern_tensor *x, double s) { return scalar_op(&op_div.def, x, s); }

fern_tensor *fern_pow_scalar(fern_tensor *x, double s)
{
    if (x && !fern_dtype_is_float(x->dtype) && isfinite(s) && s == floor(s) && s < 0) {
        char d[128];
        fern_set_error(FERN_ERR_INVALID,
                       "pow: integers to negative integer powers are not allowed (%s ** %g)",
                       fern_tensor_desc(x, d, sizeof d), s);
        return NULL;
    }
    return scalar_op(&op_pow.def, x, s);
}

const fern_op_def *const fern_ops_binary[] = {
    &op_add.def,         &op_sub.def,         &op_mul.def,        &op_div.def,
    &op_pow.def,         &op_maximum.def,     &op_minimum.def,    &op_atan2.def,
    &op_fmod.def,        &op_eq.def,          &op_ne.def,         &op_lt.def,
    &op_le.def,          &op_gt.def,          &op_ge.def,         &op_logical_and.def,
    &op_logical_or.def,  &op_logical_xor.def, &op_where,          NULL};
