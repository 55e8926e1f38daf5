/* Fused ops, made by the compiler's fusion pass (src/compiler/fuse.c).
 *
 * fused_elementwise(inputs...) {program="...", dtype=f32|f64} runs a chain
 * or tree of elementwise ops in one pass over memory. The program text is
 * described in src/compiler/fused_program.h; e.g. with inputs r0, r1:
 *     "mul r0 r1;exp r2;add r3 0.5"
 * Inputs are either 0-d scalars (any dtype, converted to the compute dtype
 * like the unfused ops convert them) or tensors of the compute dtype, all
 * of the output's shape (no other broadcasting inside a fused group).
 *
 * The kernel walks the output in tiles of FZ_TILE elements. Per tile, each
 * statement is one tight loop over the tile (contiguous, restrict
 * pointers, the same row formulas as src/ops/unary.c and binary.c, so the
 * results are those of the unfused ops); intermediates live in a few
 * scratch tiles reused by liveness, so memory traffic is the inputs and
 * the output only. Tiles are split across the thread pool for large
 * tensors. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backend/cpu/elementwise.h"
#include "../compiler/fused_program.h"
#include "op_def.h"

#define FZ_TILE 1024

/* ---- the statement set -------------------------------------------------- */

enum {
    FZ_NEG, FZ_ABS, FZ_SIGN, FZ_SQUARE, FZ_RECIPROCAL, FZ_SQRT, FZ_RSQRT, FZ_EXP, FZ_EXPM1,
    FZ_LOG, FZ_LOG1P, FZ_SIN, FZ_COS, FZ_TAN, FZ_TANH, FZ_ERF, FZ_SIGMOID, FZ_RELU, FZ_SILU,
    FZ_FLOOR, FZ_CEIL, FZ_ROUND, FZ_GELU, FZ_GELU_TANH, FZ_LEAKY_RELU, FZ_ELU, FZ_SOFTPLUS,
    FZ_CLIP, FZ_ADD, FZ_SUB, FZ_MUL, FZ_DIV, FZ_MAXIMUM, FZ_MINIMUM, FZ_POW, FZ_COUNT
};

static const struct {
    const char *name;
    int arity, n_params;
} fz_ops[FZ_COUNT] = {
    [FZ_NEG] = {"neg", 1, 0},           [FZ_ABS] = {"abs", 1, 0},
    [FZ_SIGN] = {"sign", 1, 0},         [FZ_SQUARE] = {"square", 1, 0},
    [FZ_RECIPROCAL] = {"reciprocal", 1, 0}, [FZ_SQRT] = {"sqrt", 1, 0},
    [FZ_RSQRT] = {"rsqrt", 1, 0},       [FZ_EXP] = {"exp", 1, 0},
    [FZ_EXPM1] = {"expm1", 1, 0},       [FZ_LOG] = {"log", 1, 0},
    [FZ_LOG1P] = {"log1p", 1, 0},       [FZ_SIN] = {"sin", 1, 0},
    [FZ_COS] = {"cos", 1, 0},           [FZ_TAN] = {"tan", 1, 0},
    [FZ_TANH] = {"tanh", 1, 0},         [FZ_ERF] = {"erf", 1, 0},
    [FZ_SIGMOID] = {"sigmoid", 1, 0},   [FZ_RELU] = {"relu", 1, 0},
    [FZ_SILU] = {"silu", 1, 0},         [FZ_FLOOR] = {"floor", 1, 0},
    [FZ_CEIL] = {"ceil", 1, 0},         [FZ_ROUND] = {"round", 1, 0},
    [FZ_GELU] = {"gelu", 1, 0},         [FZ_GELU_TANH] = {"gelu_tanh", 1, 0},
    [FZ_LEAKY_RELU] = {"leaky_relu", 1, 1}, [FZ_ELU] = {"elu", 1, 1},
    [FZ_SOFTPLUS] = {"softplus", 1, 2}, [FZ_CLIP] = {"clip", 1, 2},
    [FZ_ADD] = {"add", 2, 0},           [FZ_SUB] = {"sub", 2, 0},
    [FZ_MUL] = {"mul", 2, 0},           [FZ_DIV] = {"div", 2, 0},
    [FZ_MAXIMUM] = {"maximum", 2, 0},   [FZ_MINIMUM] = {"minimum", 2, 0},
    [FZ_POW] = {"pow", 2, 0},
};

int fern__fused_literal(double v, fern_dtype dt, char *buf, size_t n)
{
    double x = dt == FERN_F32 ? (double)(float)v : v;
    if (isnan(x))
        return snprintf(buf, n, "nan");
    if (isinf(x))
        return snprintf(buf, n, x > 0 ? "inf" : "-inf");
    char tmp[48];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, x);
        double back = strtod(tmp, NULL);
        if (dt == FERN_F32)
            back = (double)(float)back;
        if (back == x && signbit(back) == signbit(x))
            break;
    }
    return snprintf(buf, n, "%s", tmp);
}

int fern__fused_op_head(const fern_op_def *op, const fern_attr *attrs, char *buf, size_t n)
{
    const char *name = op->name;
    if (!strcmp(name, "gelu")) {
        if (op->n_attrs != 1 || (attrs[0].i != 0 && attrs[0].i != 1))
            return -1;
        snprintf(buf, n, "%s", attrs[0].i ? "gelu_tanh" : "gelu");
        return 1;
    }
    for (int k = 0; k < FZ_COUNT; k++) {
        if (k == FZ_GELU || k == FZ_GELU_TANH || strcmp(fz_ops[k].name, name) != 0)
            continue;
        if (op->n_attrs != fz_ops[k].n_params)
            return -1;
        size_t u = (size_t)snprintf(buf, n, "%s", name);
        for (int p = 0; p < fz_ops[k].n_params && u < n; p++) {
            if (attrs[p].kind != FERN_ATTR_FLOAT)
                return -1;
            u += (size_t)snprintf(buf + u, n - u, p ? "," : "(");
            if (u < n)
                u += (size_t)fern__fused_literal(attrs[p].f, FERN_F64, buf + u, n - u);
        }
        if (fz_ops[k].n_params && u < n)
            u += (size_t)snprintf(buf + u, n - u, ")");
        if (u >= n)
            return -1;
        return fz_ops[k].arity;
    }
    return -1;
}

/* ---- programs ------------------------------------------------------------ */

typedef struct {
    int op;
    int a, b; /* operands: register >= 0, literal -(k+1) */
    double p0, p1;
} fz_stmt;

typedef struct {
    int n_in, n_stmt, n_lit, n_slots;
    fz_stmt *st;
    double *lit;
    int *slot; /* scratch tile of each statement's result, -1: the output */
} fz_prog;

static void fz_free(fz_prog *p)
{
    free(p->st);
    free(p->lit);
    free(p->slot);
    memset(p, 0, sizeof *p);
}

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    return s;
}

/* Parse text for n_in inputs. On error writes a message to err. */
static int fz_parse(const char *text, int n_in, fz_prog *p, char *err, size_t errn)
{
    memset(p, 0, sizeof *p);
    if (!text || !*skip_ws(text)) {
        snprintf(err, errn, "the program is empty");
        return -1;
    }
    int cap = 1;
    for (const char *s = text; *s; s++)
        cap += *s == ';';
    p->n_in = n_in;
    p->st = calloc((size_t)cap, sizeof *p->st);
    p->lit = malloc((size_t)cap * 2 * sizeof *p->lit);
    p->slot = malloc((size_t)cap * sizeof *p->slot);
    int *last = malloc((size_t)(n_in + cap) * sizeof *last);
    int *freel = malloc((size_t)cap * sizeof *freel);
    if (!p->st || !p->lit || !p->slot || !last || !freel) {
        snprintf(err, errn, "out of memory");
        goto fail;
    }
    const char *s = text;
    for (int j = 0;; j++) {
        fz_stmt *st = &p->st[j];
        s = skip_ws(s);
        const char *name = s;
        while ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')
            s++;
        int len = (int)(s - name), op = -1;
        for (int k = 0; k < FZ_COUNT; k++)
            if ((int)strlen(fz_ops[k].name) == len && !strncmp(fz_ops[k].name, name, (size_t)len))
                op = k;
        if (op < 0) {
            snprintf(err, errn, "statement %d: unknown op '%.*s'", j, len > 0 ? len : 1,
                     len > 0 ? name : s);
            goto fail;
        }
        st->op = op;
        int np = 0;
        if (*s == '(') {
            s++;
            for (;;) {
                char *end;
                double v = strtod(skip_ws(s), &end);
                if (end == skip_ws(s) || np >= 2) {
                    snprintf(err, errn, "statement %d (%s): bad parameter list", j, fz_ops[op].name);
                    goto fail;
                }
                *(np == 0 ? &st->p0 : &st->p1) = v;
                np++;
                s = skip_ws(end);
                if (*s == ',') {
                    s++;
                    continue;
                }
                if (*s != ')') {
                    snprintf(err, errn, "statement %d (%s): expected ')'", j, fz_ops[op].name);
                    goto fail;
                }
                s++;
                break;
            }
        }
        if (np != fz_ops[op].n_params) {
            snprintf(err, errn, "statement %d (%s): takes %d parameters, got %d", j,
                     fz_ops[op].name, fz_ops[op].n_params, np);
            goto fail;
        }
        for (int k = 0; k < fz_ops[op].arity; k++) {
            s = skip_ws(s);
            int operand;
            if (*s == 'r' && s[1] >= '0' && s[1] <= '9') {
                char *end;
                long r = strtol(s + 1, &end, 10);
                if (r >= n_in + j) {
                    snprintf(err, errn, "statement %d (%s): register r%ld is not defined yet "
                             "(%d inputs)", j, fz_ops[op].name, r, n_in);
                    goto fail;
                }
                operand = (int)r;
                s = end;
            } else {
                char *end;
                double v = strtod(s, &end);
                if (end == s) {
                    snprintf(err, errn, "statement %d (%s): expected %d operands", j,
                             fz_ops[op].name, fz_ops[op].arity);
                    goto fail;
                }
                p->lit[p->n_lit] = v;
                operand = -(++p->n_lit);
                s = end;
            }
            if (k == 0)
                st->a = operand;
            else
                st->b = operand;
        }
        if (fz_ops[op].arity == 1)
            st->b = st->a;
        s = skip_ws(s);
        p->n_stmt = j + 1;
        if (*s == ';') {
            s++;
            continue;
        }
        if (*s) {
            snprintf(err, errn, "statement %d (%s): unexpected '%c'", j, fz_ops[op].name, *s);
            goto fail;
        }
        break;
    }
    /* scratch tiles by liveness: a result takes a free tile; an operand's
     * tile is freed after its last use (never reused by the same statement's
     * result, so loops never alias) */
    for (int r = 0; r < n_in + p->n_stmt; r++)
        last[r] = -1;
    for (int j = 0; j < p->n_stmt; j++) {
        if (p->st[j].a >= 0)
            last[p->st[j].a] = j;
        if (p->st[j].b >= 0)
            last[p->st[j].b] = j;
    }
    int n_free = 0;
    for (int j = 0; j < p->n_stmt; j++) {
        const fz_stmt *st = &p->st[j];
        if (j == p->n_stmt - 1)
            p->slot[j] = -1;
        else
            p->slot[j] = n_free ? freel[--n_free] : p->n_slots++;
        int ops[2] = {st->a, st->b != st->a ? st->b : -1};
        for (int k = 0; k < 2; k++) {
            int r = ops[k];
            if (r >= n_in && last[r] == j && p->slot[r - n_in] >= 0)
                freel[n_free++] = p->slot[r - n_in];
        }
        if (last[n_in + j] < 0 && p->slot[j] >= 0)
            freel[n_free++] = p->slot[j];
    }
    free(last);
    free(freel);
    return 0;
fail:
    free(last);
    free(freel);
    fz_free(p);
    return -1;
}

/* Parsed programs, cached per thread (infer and the kernel both need the
 * program on every call; parsing would dominate small tensors). Entries
 * are keyed by the text's content, so a freed and reused string address
 * can never return a stale program. */
#define FZ_CACHE 16

typedef struct {
    char *text;
    int n_in;
    fz_prog prog;
} fz_cache_entry;

static _Thread_local fz_cache_entry fz_cache[FZ_CACHE];
static _Thread_local int fz_cache_next, fz_cache_registered;
static pthread_key_t fz_cache_key;
static pthread_once_t fz_cache_once = PTHREAD_ONCE_INIT;

/* Frees a thread's cache when the thread exits. */
static void fz_cache_release(void *entries)
{
    fz_cache_entry *e = entries;
    for (int k = 0; k < FZ_CACHE; k++) {
        free(e[k].text);
        e[k].text = NULL;
        fz_free(&e[k].prog);
    }
}

static void fz_cache_key_init(void) { pthread_key_create(&fz_cache_key, fz_cache_release); }

static const fz_prog *fz_program(const char *text, int n_in, char *err, size_t errn)
{
    if (!fz_cache_registered) {
        pthread_once(&fz_cache_once, fz_cache_key_init);
        pthread_setspecific(fz_cache_key, fz_cache);
        fz_cache_registered = 1;
    }
    if (text)
        for (int k = 0; k < FZ_CACHE; k++)
            if (fz_cache[k].text && fz_cache[k].n_in == n_in && !strcmp(fz_cache[k].text, text))
                return &fz_cache[k].prog;
    fz_prog p;
    if (fz_parse(text, n_in, &p, err, errn))
        return NULL;
    size_t len = strlen(text) + 1;
    char *copy = malloc(len);
    if (!copy) {
        fz_free(&p);
        snprintf(err, errn, "out of memory");
        return NULL;
    }
    memcpy(copy, text, len);
    fz_cache_entry *e = &fz_cache[fz_cache_next];
    fz_cache_next = (fz_cache_next + 1) % FZ_CACHE;
    free(e->text);
    fz_free(&e->prog);
    e->text = copy;
    e->n_in = n_in;
    e->prog = p;
    return &e->prog;
}

/* ---- statement loops ------------------------------------------------------ */

/* o[i] = EXPR(x) with x = a[i]; a broadcast (stride 0) operand is computed
 * once. */
#define FZ_U(EXPR)                                                                            \
    do {                                                                                      \
        if (sa) {                                                                             \
            for (int64_t i = 0; i < n; i++) {                                                 \
                const scalar_t x = a[i];                                                      \
                o[i] = (scalar_t)(EXPR);                                                      \
            }                                                                                 \
        } else {                                                                              \
            const scalar_t x = a[0];                                                          \
            const scalar_t v_ = (scalar_t)(EXPR);                                             \
            for (int64_t i = 0; i < n; i++)                                                   \
                o[i] = v_;                                                                    \
        }                                                                                     \
    } while (0)

/* o[i] = EXPR(x, y): separate loops per broadcast pattern, like BROW. */
#define FZ_B(EXPR)                                                                            \
    do {                                                                                      \
        if (sa && sb) {                                                                       \
            for (int64_t i = 0; i < n; i++) {                                                 \
                const scalar_t x = a[i], y = b[i];                                            \
                o[i] = (scalar_t)(EXPR);                                                      \
            }                                                                                 \
        } else if (sa) {                                                                      \
            const scalar_t y = b[0];                                                          \
            for (int64_t i = 0; i < n; i++) {                                                 \
                const scalar_t x = a[i];                                                      \
                o[i] = (scalar_t)(EXPR);                                                      \
            }                                                                                 \
        } else if (sb) {                                                                      \
            const scalar_t x = a[0];                                                          \
            for (int64_t i = 0; i < n; i++) {                                                 \
                const scalar_t y = b[i];                                                      \
                o[i] = (scalar_t)(EXPR);                                                      \
            }                                                                                 \
        } else {                                                                              \
            const scalar_t x = a[0], y = b[0];                                                \
            const scalar_t v_ = (scalar_t)(EXPR);                                             \
            for (int64_t i = 0; i < n; i++)                                                   \
                o[i] = v_;                                                                    \
        }                                                                                     \
    } while (0)

#define FZ_CLIP_EXPR (x < P0 ? P0 : x) > P1 ? P1 : (x < P0 ? P0 : x)

/* sin, cos, tan like unary.c's rows: f64 from libm; f32 with the
 * vectorized polynomials for |x| <= FM_TRIG_MAX and a libm pass over the
 * (rare) larger, infinite or nan elements. */
static void fz_trig_f32(int op, float *restrict o, const float *restrict a, int64_t sa, int64_t n)
{
    if (!sa) {
        const float x = a[0];
        float v;
        if (fm_trig_big_(x))
            v = op == FZ_SIN ? sinf(x) : op == FZ_COS ? cosf(x) : tanf(x);
        else
            v = op == FZ_SIN ? fm_sinf_(x) : op == FZ_COS ? fm_cosf_(x) : fm_tanf_(x);
        for (int64_t i = 0; i < n; i++)
            o[i] = v;
        return;
    }
    int big = 0;
    if (op == FZ_SIN)
        for (int64_t i = 0; i < n; i++) {
            o[i] = fm_sinf_(a[i]);
            big |= fm_trig_big_(a[i]);
        }
    else if (op == FZ_COS)
        for (int64_t i = 0; i < n; i++) {
            o[i] = fm_cosf_(a[i]);
            big |= fm_trig_big_(a[i]);
        }
    else
        for (int64_t i = 0; i < n; i++) {
            o[i] = fm_tanf_(a[i]);
            big |= fm_trig_big_(a[i]);
        }
    if (big)
        for (int64_t i = 0; i < n; i++)
            if (fm_trig_big_(a[i]))
                o[i] = op == FZ_SIN ? sinf(a[i]) : op == FZ_COS ? cosf(a[i]) : tanf(a[i]);
}

static void fz_trig_f64(int op, double *restrict o, const double *restrict a, int64_t sa,
                        int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const double x = a[sa ? i : 0];
        o[i] = op == FZ_SIN ? sin(x) : op == FZ_COS ? cos(x) : tan(x);
    }
}

/* One statement over n elements, for compute type T. POWF/SQRTF are the
 * libm functions binary.c's pow rows use. */
#define FZ_STMT_FN(SUF, T, POWF, SQRTF)                                                       \
    static void fz_stmt_##SUF(int op, T P0, T P1, T *restrict o, const T *restrict a,         \
                              int64_t sa, const T *restrict b, int64_t sb, int64_t n)          \
    {                                                                                         \
        typedef T scalar_t;                                                                   \
        switch (op) {                                                                         \
        case FZ_NEG: FZ_U(-x); break;                                                         \
        case FZ_ABS: FZ_U(fm_fabs(x)); break;                                                 \
        case FZ_SIGN: FZ_U((scalar_t)((0 < x) - (x < 0))); break;                             \
        case FZ_SQUARE: FZ_U(x * x); break;                                                   \
        case FZ_RECIPROCAL: FZ_U((scalar_t)1 / x); break;                                     \
        case FZ_SQRT: FZ_U(fm_sqrt(x)); break;                                                \
        case FZ_RSQRT: FZ_U((scalar_t)1 / fm_sqrt(x)); break;                                 \
        case FZ_EXP: FZ_U(fm_exp(x)); break;                                                  \
        case FZ_EXPM1: FZ_U(fm_expm1(x)); break;                                              \
        case FZ_LOG: FZ_U(fm_log(x)); break;                                                  \
        case FZ_LOG1P: FZ_U(fm_log1p(x)); break;                                              \
        case FZ_SIN:                                                                          \
        case FZ_COS:                                                                          \
        case FZ_TAN: fz_trig_##SUF(op, o, a, sa, n); break;                                   \
        case FZ_TANH: FZ_U(fm_tanh(x)); break;                                                \
        case FZ_ERF: FZ_U(fm_erf(x)); break;                                                  \
        case FZ_SIGMOID: FZ_U(fm_sigmoid(x)); break;                                          \
        case FZ_RELU: FZ_U(x < 0 ? (scalar_t)0 : x); break;                                   \
        case FZ_SILU: FZ_U(fm_silu(x)); break;                                                \
        case FZ_FLOOR: FZ_U(fm_floor(x)); break;                                              \
        case FZ_CEIL: FZ_U(fm_ceil(x)); break;                                                \
        case FZ_ROUND: FZ_U(fm_rint(x)); break;                                               \
        case FZ_GELU: FZ_U(fm_gelu_erf(x)); break;                                            \
        case FZ_GELU_TANH: FZ_U(fm_gelu_tanh(x)); break;                                      \
        case FZ_LEAKY_RELU: FZ_U(x > 0 ? x : x * P0); break;                                  \
        case FZ_ELU: FZ_U(fm_elu(x, P0)); break;                                              \
        case FZ_SOFTPLUS: FZ_U(fm_softplus(x, P0, P1)); break;                                \
        case FZ_CLIP: FZ_U(FZ_CLIP_EXPR); break;                                              \
        case FZ_ADD: FZ_B(x + y); break;                                                      \
        case FZ_SUB: FZ_B(x - y); break;                                                      \
        case FZ_MUL: FZ_B(x * y); break;                                                      \
        case FZ_DIV: FZ_B(x / y); break;                                                      \
        case FZ_MAXIMUM: FZ_B(x != x ? x : (y != y ? y : (x < y ? y : x))); break;            \
        case FZ_MINIMUM: FZ_B(x != x ? x : (y != y ? y : (y < x ? y : x))); break;            \
        case FZ_POW:                                                                          \
            if (sb == 0) { /* binary.c's exact fast paths for a broadcast exponent */         \
                const T y = b[0];                                                             \
                if (y == 2) {                                                                 \
                    FZ_U(x * x);                                                              \
                } else if (y == 3) {                                                          \
                    FZ_U(x * x * x);                                                          \
                } else if (y == 1) {                                                          \
                    FZ_U(x);                                                                  \
                } else if (y == 0) {                                                          \
                    FZ_U(((void)x, (scalar_t)1));                            \
                } else if (y == -1) {                                                         \
                    FZ_U((scalar_t)1 / x);                                                    \
                } else if (y == -2) {                                                         \
                    FZ_U((scalar_t)1 / (x * x));                                              \
                } else if (y == (T)0.5) {                                                     \
                    FZ_U(x == -(scalar_t)INFINITY ? (scalar_t)INFINITY : fm_fabs(SQRTF(x)));  \
                } else if (y == (T)-0.5) {                                                    \
                    FZ_U(x == -(scalar_t)INFINITY ? (scalar_t)0                               \
                                                  : (scalar_t)1 / fm_fabs(SQRTF(x)));         \
                } else {                                                                      \
                    FZ_U(POWF(x, y));                                                         \
                }                                                                             \
            } else {                                                                          \
                FZ_B(POWF(x, y));                                                             \
            }                                                                                 \
            break;                                                                            \
        }                                                                                     \
    }

FZ_STMT_FN(f32, float, powf, sqrtf)
FZ_STMT_FN(f64, double, pow, sqrt)

/* ---- execution ------------------------------------------------------------- */

typedef struct {
    const fz_prog *p;
    fern_dtype dt;
    int64_t numel;
    const char *in_ptr[FERN_MAX_INPUTS]; /* vector inputs (contiguous)   */
    char in_vec[FERN_MAX_INPUTS];        /* 1: vector, 0: 0-d scalar     */
    double in_val[FERN_MAX_INPUTS];      /* scalar inputs' values        */
    char *out;
    atomic_int fail;
} fz_exec;

#define FZ_CHUNK_FN(SUF, T)                                                                   \
    static void fz_chunk_##SUF(fz_exec *e, int64_t t0, int64_t t1)                            \
    {                                                                                         \
        const fz_prog *p = e->p;                                                              \
        int n_in = p->n_in, n_regs = p->n_in + p->n_stmt;                                     \
        size_t scratch = (size_t)p->n_slots * FZ_TILE * sizeof(T);                            \
        size_t bytes = scratch + (size_t)n_regs * (sizeof(const T *) + sizeof(int64_t)) +     \
                       (size_t)(n_in + p->n_lit + 1) * sizeof(T);                             \
        char *mem = fern_alloc(FERN_CPU, bytes);                                              \
        if (!mem) {                                                                           \
            atomic_store(&e->fail, 1);                                                        \
            return;                                                                           \
        }                                                                                     \
        T *tiles = (T *)mem;                                                                  \
        const T **rp = (const T **)(mem + scratch);                                           \
        int64_t *rs = (int64_t *)(rp + n_regs);                                               \
        T *vals = (T *)(rs + n_regs); /* scalar inputs, then literals */                      \
        for (int r = 0; r < n_in; r++) {                                                      \
            vals[r] = (T)e->in_val[r];                                                        \
            rp[r] = &vals[r];                                                                 \
            rs[r] = 0;                                                                        \
        }                                                                                     \
        for (int k = 0; k < p->n_lit; k++)                                                    \
            vals[n_in + k] = (T)p->lit[k];                                                    \
        for (int64_t t = t0; t < t1; t++) {                                                   \
            int64_t start = t * FZ_TILE;                                                      \
            int64_t n = e->numel - start < FZ_TILE ? e->numel - start : FZ_TILE;              \
            for (int r = 0; r < n_in; r++)                                                    \
                if (e->in_vec[r]) {                                                           \
                    rp[r] = (const T *)e->in_ptr[r] + start;                                  \
                    rs[r] = 1;                                                                \
                }                                                                             \
            for (int j = 0; j < p->n_stmt; j++) {                                             \
                const fz_stmt *st = &p->st[j];                                                \
                const T *pa = st->a >= 0 ? rp[st->a] : &vals[n_in - st->a - 1];               \
                const T *pb = st->b >= 0 ? rp[st->b] : &vals[n_in - st->b - 1];               \
                int64_t sa = st->a >= 0 ? rs[st->a] : 0, sb = st->b >= 0 ? rs[st->b] : 0;     \
                T *o = p->slot[j] < 0 ? (T *)e->out + start : tiles + (size_t)p->slot[j] * FZ_TILE; \
                fz_stmt_##SUF(st->op, (T)st->p0, (T)st->p1, o, pa, sa, pb, sb, n);            \
                rp[n_in + j] = o;                                                             \
                rs[n_in + j] = 1;                                                             \
            }                                                                                 \
        }                                                                                     \
        fern_free(FERN_CPU, mem, bytes);                                                      \
    }

FZ_CHUNK_FN(f32, float)
FZ_CHUNK_FN(f64, double)

static void fz_par(void *ctx, int64_t t0, int64_t t1)
{
    fz_exec *e = ctx;
    if (e->dt == FERN_F32)
        fz_chunk_f32(e, t0, t1);
    else
        fz_chunk_f64(e, t0, t1);
}

/* ---- the op ----------------------------------------------------------------- */

static const fern_attr_spec fused_attrs[] = {{"program", FERN_ATTR_STR, 0, NULL},
                                             {"dtype", FERN_ATTR_DTYPE, FERN_F32, NULL}};

static void describe(const fern_op_call *c, char *buf, size_t n)
{
    size_t u = 0;
    buf[0] = '\0';
    for (int i = 0; i < c->n_in && u + 1 < n; i++) {
        char d[128];
        u += (size_t)snprintf(buf + u, n - u, "%s%s", i ? ", " : "",
                              c->in[i] ? fern_tensor_desc(c->in[i], d, sizeof d) : "none");
    }
}

static int fused_infer(fern_op_call *c)
{
    char ins[512], err[256];
    int64_t dt = c->attrs[1].i;
    if (dt != FERN_F32 && dt != FERN_F64) {
        describe(c, ins, sizeof ins);
        fern_set_error(FERN_ERR_INVALID, "fused_elementwise: dtype must be f32 or f64, got %s (inputs: %s)",
                       dt >= 0 && dt < FERN_DTYPE_COUNT ? fern_dtype_name((fern_dtype)dt) : "invalid",
                       ins);
        return -1;
    }
    if (!fz_program(c->attrs[0].s, c->n_in, err, sizeof err)) {
        describe(c, ins, sizeof ins);
        fern_set_error(FERN_ERR_INVALID, "fused_elementwise: bad program \"%s\": %s (inputs: %s)",
                       c->attrs[0].s ? c->attrs[0].s : "", err, ins);
        return -1;
    }
    const fern_tensor *shape_of = NULL;
    for (int i = 0; i < c->n_in; i++) {
        const fern_tensor *x = c->in[i];
        if (x->ndim == 0)
            continue; /* a scalar, converted to the compute dtype */
        if (x->dtype != (fern_dtype)dt) {
            describe(c, ins, sizeof ins);
            fern_set_error(FERN_ERR_INVALID,
                           "fused_elementwise: input %d must be %s (or 0-d), got dtype %s (inputs: %s)",
                           i, fern_dtype_name((fern_dtype)dt), fern_dtype_name(x->dtype), ins);
            return -1;
        }
        if (!shape_of) {
            shape_of = x;
            continue;
        }
        int same = x->ndim == shape_of->ndim;
        for (int d = 0; same && d < x->ndim; d++)
            same = x->shape[d] == shape_of->shape[d];
        if (!same) {
            describe(c, ins, sizeof ins);
            fern_set_error(FERN_ERR_INVALID,
                           "fused_elementwise: inputs must all have one shape (or be 0-d); input %d "
                           "differs (inputs: %s)",
                           i, ins);
            return -1;
        }
    }
    if (shape_of)
        fern__set_out(c, 0, (fern_dtype)dt, shape_of->ndim, shape_of->shape);
    else
        fern__set_out(c, 0, (fern_dtype)dt, 0, NULL);
    return 0;
}

static int fused_kernel(fern_op_call *c)
{
    char err[256];
    const fz_prog *p = fz_program(c->attrs[0].s, c->n_in, err, sizeof err);
    if (!p) {
        fern_set_error(FERN_ERR_INVALID, "fused_elementwise: bad program: %s", err);
        return -1;
    }
    fz_exec e;
    e.p = p;
    e.dt = c->out[0]->dtype;
    e.numel = fern_tensor_numel(c->out[0]);
    e.out = fern_tensor_data(c->out[0]);
    atomic_init(&e.fail, 0);
    for (int i = 0; i < c->n_in; i++) {
        const fern_tensor *x = c->in[i];
        e.in_vec[i] = x->ndim > 0;
        e.in_ptr[i] = fern_tensor_data(x);
        e.in_val[i] = x->ndim == 0 ? fern__load(fern_tensor_data(x), x->dtype) : 0.0;
    }
    int64_t n_tiles = (e.numel + FZ_TILE - 1) / FZ_TILE;
    int64_t grain = 16 / (p->n_stmt > 0 ? p->n_stmt : 1);
    fern_parallel_for(n_tiles, grain > 0 ? grain : 1, fz_par, &e);
    if (atomic_load(&e.fail)) {
        fern_set_error(FERN_ERR_NOMEM, "fused_elementwise: out of memory");
        return -1;
    }
    return 0;
}

const fern_op_def fern__op_fused_elementwise = {
    .name = "fused_elementwise", .n_inputs = -1, .n_outputs = 1, .attrs = fused_attrs,
    .n_attrs = 2, .infer = fused_infer, .kernel = {[FERN_CPU] = fused_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = -1, .flags = FERN_OPF_CONTIG_INPUTS,
    .doc = "elementwise program made by the fusion pass (inputs: 0-d scalars or tensors of the "
           "output's shape and dtype); differentiable in principle, but grad is NULL: autodiff "
           "runs before fusion"};

const fern_op_def *const fern_ops_fused[] = {&fern__op_fused_elementwise, NULL};
