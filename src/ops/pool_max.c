/* max_pool2d forward kernels (the 2x2 stride-2 case of f32/f64 is in
 * pool_max2x2.c).
 *
 * torch's value of a window is a fold over its taps in (kh, kw) order of
 * f(m, v) = (v > m || v is NaN) ? v : m: the first maximum, or the last NaN.
 * The fold of a sequence equals f(fold(A), fold(B)) for any split into a
 * prefix A and the rest B (the first maximum / last NaN of the whole is
 * decided by those of the parts), so the kernels may fold a window row by
 * row and still give the bits of the plain loop, signed zeros and NaN
 * payloads included.
 *
 * The work is the flat list of NC * OH output rows, so small planes are not
 * one task each. For strides 1 to 3 (f32, f64, i32, i64) a row's interior
 * columns go L at a time in vector registers: tap k of L consecutive
 * outputs is lane 0 of each group of s elements from input column
 * ow*s + k - pw on, a load (s = 1) or a load deinterleaved by shuffles
 * (s = 2, 3). The border columns, whose windows padding or the row's end
 * clip (and in the buffer's last rows those whose loads would run past its
 * end), fold tap by tap, as does every other case (larger strides, bytes):
 * the original loop. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "pool_common.h"
#include "pool_vec.h"

/* NaN wins (torch's max_pool2d propagates it); integers compare plainly. */
#define MAX_FLOAT(a, v) ((v) > (a) || (v) != (v) ? (v) : (a))
#define MAX_INT(a, v) ((v) > (a) ? (v) : (a))
#define NAN_F(v) ((v) != (v))
#define NAN_I(v) 0

/* ---- tap by tap ------------------------------------------------------------ */

#define DEFINE_MAX_PLAIN(T, SFX, LOWEST, MAXOP)                                                    \
    /* output row oh of plane x: the taps in (kh, kw) order, the output row as                     \
     * the inner loop (strided loads for stride > 1) */                                            \
    static void max_row_plain_##SFX(const pool_geom *g, const T *restrict x, T *restrict yr,       \
                                    int64_t oh)                                                    \
    {                                                                                              \
        const int64_t W = g->W, OW = g->OW, sw = g->sw;                                            \
        for (int64_t ow = 0; ow < OW; ow++)                                                        \
            yr[ow] = LOWEST;                                                                       \
        int64_t hs = oh * g->sh - g->ph, he = hs + g->kh < g->H ? hs + g->kh : g->H;               \
        if (hs < 0)                                                                                \
            hs = 0;                                                                                \
        for (int64_t ih = hs; ih < he; ih++)                                                       \
            for (int64_t kw = 0; kw < g->kw; kw++) {                                               \
                const int64_t off = kw - g->pw;                                                    \
                int64_t lo, hi;                                                                    \
                pool_range(OW, sw, off, W, &lo, &hi);                                              \
                const T *restrict xr = x + ih * W;                                                 \
                if (sw == 1)                                                                       \
                    for (int64_t ow = lo; ow < hi; ow++)                                           \
                        yr[ow] = MAXOP(yr[ow], xr[ow + off]);                                      \
                else                                                                               \
                    for (int64_t ow = lo; ow < hi; ow++)                                           \
                        yr[ow] = MAXOP(yr[ow], xr[ow * sw + off]);                                 \
            }                                                                                      \
    }

DEFINE_MAX_PLAIN(float, f32, -INFINITY, MAX_FLOAT)
DEFINE_MAX_PLAIN(double, f64, -INFINITY, MAX_FLOAT)
DEFINE_MAX_PLAIN(int32_t, i32, INT32_MIN, MAX_INT)
DEFINE_MAX_PLAIN(int64_t, i64, INT64_MIN, MAX_INT)
DEFINE_MAX_PLAIN(int8_t, i8, INT8_MIN, MAX_INT)
DEFINE_MAX_PLAIN(uint8_t, u8, 0, MAX_INT)

/* ---- strides 1 to 3 in vector registers ------------------------------------ */

/* tap vectors: lane l = p[l * s] for s = 1, 2, 3 (loads s*L elements) */
#define DEFINE_TAPS(T, SFX, L)                                                                     \
    static inline v_##SFX##_##L tap1_##SFX##_##L(const T *p)                                       \
    {                                                                                              \
        v_##SFX##_##L a;                                                                           \
        memcpy(&a, p, sizeof a);                                                                   \
        return a;                                                                                  \
    }                                                                                              \
    static inline v_##SFX##_##L tap2_##SFX##_##L(const T *p)                                       \
    {                                                                                              \
        v_##SFX##_##L a, b;                                                                        \
        memcpy(&a, p, sizeof a);                                                                   \
        memcpy(&b, p + L, sizeof b);                                                               \
        return POOL_SHUFFLE(iv_##SFX##_##L, a, b, POOL_EVEN_##L);                                  \
    }                                                                                              \
    static inline v_##SFX##_##L tap3_##SFX##_##L(const T *p)                                       \
    {                                                                                              \
        v_##SFX##_##L a, b, c;                                                                     \
        memcpy(&a, p, sizeof a);                                                                   \
        memcpy(&b, p + L, sizeof b);                                                               \
        memcpy(&c, p + 2 * L, sizeof c);                                                           \
        const v_##SFX##_##L ab = POOL_SHUFFLE(iv_##SFX##_##L, a, b, POOL_D3A_##L##_0);             \
        return POOL_SHUFFLE(iv_##SFX##_##L, ab, c, POOL_D3B_##L##_0);                              \
    }

/* one window row: its kw taps folded, L outputs, p: the row at the first
 * output's first tap */
#define DEFINE_WROW(T, SFX, L, S)                                                                  \
    static inline v_##SFX##_##L wrow##S##_##SFX##_##L(const T *p, int64_t kw)                      \
    {                                                                                              \
        v_##SFX##_##L h = tap##S##_##SFX##_##L(p);                                                 \
        if (kw == 3) /* the usual window: unrolled */                                              \
            return vmax_##SFX##_##L(vmax_##SFX##_##L(h, tap##S##_##SFX##_##L(p + 1)),              \
                                    tap##S##_##SFX##_##L(p + 2));                                  \
        for (int64_t k = 1; k < kw; k++)                                                           \
            h = vmax_##SFX##_##L(h, tap##S##_##SFX##_##L(p + k));                                  \
        return h;                                                                                  \
    }

/* outputs [a, b) (b - a >= L) of one row, L at a time, for stride S: window
 * rows [hs, he) of plane x, each folded, then together */
#define MAX_CHUNKS(SFX, L, S)                                                                      \
    for (int64_t o0 = a; o0 < b; o0 += L) {                                                        \
        const int64_t ow = o0 + L <= b ? o0 : b - L, c0 = ow * S - pw;                             \
        v_##SFX##_##L m = wrow##S##_##SFX##_##L(x + (hs * W + c0), kw);                            \
        for (int64_t ih = hs + 1; ih < he; ih++)                                                   \
            m = vmax_##SFX##_##L(m, wrow##S##_##SFX##_##L(x + (ih * W + c0), kw));                 \
        memcpy(y + ow, &m, sizeof m);                                                              \
    }

#define DEFINE_MAX_VEC(T, SFX, L)                                                                  \
    DEFINE_TAPS(T, SFX, L)                                                                         \
    DEFINE_WROW(T, SFX, L, 1)                                                                      \
    DEFINE_WROW(T, SFX, L, 2)                                                                      \
    DEFINE_WROW(T, SFX, L, 3)                                                                      \
    static void max_vec_##SFX##_##L(const pool_geom *g, const T *restrict x, int64_t hs,           \
                                    int64_t he, int64_t a, int64_t b, T *restrict y)               \
    {                                                                                              \
        const int64_t W = g->W, kw = g->kw, pw = g->pw;                                            \
        switch (g->sw) {                                                                           \
        case 1: MAX_CHUNKS(SFX, L, 1) break;                                                       \
        case 2: MAX_CHUNKS(SFX, L, 2) break;                                                       \
        default: MAX_CHUNKS(SFX, L, 3) break;                                                      \
        }                                                                                          \
    }

/* The interior of every output row, [a, b): outputs whose windows lie
 * inside the row and that L-lane vectors cover. A tap's load (sw elements
 * a lane) reads up to sw - 1 elements past its window; past the row's end
 * that is the next row (the lanes are dropped), fine but at the buffer's
 * end: b0 is the bound without it. */
typedef struct {
    int64_t a, b, b0;
} max_span;

static max_span max_interior(const pool_geom *g, int64_t lanes)
{
    const int64_t OW = g->OW, sw = g->sw, e = g->W - g->kw + g->pw, e0 = e - (sw - 1);
    max_span s = {(g->pw + sw - 1) / sw, e < 0 ? 0 : e / sw + 1, e0 < 0 ? 0 : e0 / sw + 1};
    s.a = s.a < OW ? s.a : OW;
    s.b = s.b < OW ? (s.b > s.a ? s.b : s.a) : OW;
    s.b0 = s.b0 < OW ? (s.b0 > s.a ? s.b0 : s.a) : OW;
    if (s.b - s.a < lanes) /* too few for a vector: all tap by tap */
        s.a = s.b = s.b0 = 0;
    else if (s.b0 - s.a < lanes)
        s.b0 = s.a;
    return s;
}

/* output row oh of plane x: borders tap by tap, the interior in vectors;
 * last: the row's windows end at the buffer's end */
#define DEFINE_MAX_ROW(T, SFX, LOWEST, UT, ISNAN, L16, L32, L64)                                   \
    /* the window of rows [hs, he) and output column ow, tap by tap; selects                       \
     * through bit masks (compilers turn float selects into branches that                          \
     * random data mispredicts) */                                                                 \
    static T max_window_##SFX(const pool_geom *g, const T *restrict x, int64_t hs, int64_t he,     \
                              int64_t ow)                                                          \
    {                                                                                              \
        int64_t ws = ow * g->sw - g->pw, we = ws + g->kw < g->W ? ws + g->kw : g->W;               \
        if (ws < 0)                                                                                \
            ws = 0;                                                                                \
        T m = LOWEST;                                                                              \
        for (int64_t ih = hs; ih < he; ih++)                                                       \
            for (int64_t iw = ws; iw < we; iw++) {                                                 \
                const T v = x[ih * g->W + iw];                                                     \
                const UT t = -(UT)((v > m) | ISNAN(v));                                            \
                UT vb, mb;                                                                         \
                memcpy(&vb, &v, sizeof v);                                                         \
                memcpy(&mb, &m, sizeof m);                                                         \
                mb = (vb & t) | (mb & ~t);                                                         \
                memcpy(&m, &mb, sizeof m);                                                         \
            }                                                                                      \
        return m;                                                                                  \
    }                                                                                              \
    DEFINE_MAX_VEC(T, SFX, L16)                                                                    \
    DEFINE_MAX_VEC(T, SFX, L32)                                                                    \
    DEFINE_MAX_VEC(T, SFX, L64)                                                                    \
    static void max_row_##SFX(const pool_geom *g, const max_span *sp, const T *restrict x,         \
                              T *restrict y, int64_t oh, int last)                                 \
    {                                                                                              \
        int64_t hs = oh * g->sh - g->ph, he = hs + g->kh < g->H ? hs + g->kh : g->H;               \
        if (hs < 0)                                                                                \
            hs = 0;                                                                                \
        const int64_t a = sp->a, b = last && he == g->H ? sp->b0 : sp->b;                          \
        for (int64_t ow = 0; ow < a; ow++)                                                         \
            y[ow] = max_window_##SFX(g, x, hs, he, ow);                                            \
        for (int64_t ow = b; ow < g->OW; ow++)                                                     \
            y[ow] = max_window_##SFX(g, x, hs, he, ow);                                            \
        if (POOL_VBYTES >= 64 && b - a >= L64)                                                     \
            max_vec_##SFX##_##L64(g, x, hs, he, a, b, y);                                          \
        else if (POOL_VBYTES >= 32 && b - a >= L32)                                                \
            max_vec_##SFX##_##L32(g, x, hs, he, a, b, y);                                          \
        else if (b - a >= L16)                                                                     \
            max_vec_##SFX##_##L16(g, x, hs, he, a, b, y);                                          \
        else                                                                                       \
            for (int64_t ow = a; ow < b; ow++)                                                     \
                y[ow] = max_window_##SFX(g, x, hs, he, ow);                                        \
    }

DEFINE_MAX_ROW(float, f32, -INFINITY, uint32_t, NAN_F, 4, 8, 16)
DEFINE_MAX_ROW(double, f64, -INFINITY, uint64_t, NAN_F, 2, 4, 8)
DEFINE_MAX_ROW(int32_t, i32, INT32_MIN, uint32_t, NAN_I, 4, 8, 16)
DEFINE_MAX_ROW(int64_t, i64, INT64_MIN, uint64_t, NAN_I, 2, 4, 8)
/* bytes: tap by tap */
#define max_row_i8(g, sp, x, y, oh, last) max_row_plain_i8(g, x, y, oh)
#define max_row_u8(g, sp, x, y, oh, last) max_row_plain_u8(g, x, y, oh)

/* ---- the kernel ---------------------------------------------------------- */

typedef struct {
    const pool_geom *g;
    max_span span; /* for the type's smallest vector */
    const char *x;
    char *y;
} max_job;

/* output rows [begin, end) of the flat (plane, oh) list */
#define DEFINE_MAX_TASK(T, SFX)                                                                    \
    static void max_task_##SFX(void *ctx, int64_t begin, int64_t end)                              \
    {                                                                                              \
        const max_job *j = ctx;                                                                    \
        const pool_geom *g = j->g;                                                                 \
        const T *x = (const T *)j->x;                                                              \
        T *y = (T *)j->y + begin * g->OW;                                                          \
        int64_t plane = begin / g->OH, oh = begin - plane * g->OH;                                 \
        for (int64_t t = begin; t < end; t++, y += g->OW) {                                        \
            const T *xp = x + plane * g->H * g->W;                                                 \
            if (g->sw <= 3)                                                                        \
                max_row_##SFX(g, &j->span, xp, y, oh, plane == g->NC - 1);                         \
            else                                                                                   \
                max_row_plain_##SFX(g, xp, y, oh);                                                 \
            if (++oh == g->OH) {                                                                   \
                oh = 0;                                                                            \
                plane++;                                                                           \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_MAX_TASK(float, f32)
DEFINE_MAX_TASK(double, f64)
DEFINE_MAX_TASK(int32_t, i32)
DEFINE_MAX_TASK(int64_t, i64)
DEFINE_MAX_TASK(int8_t, i8)
DEFINE_MAX_TASK(uint8_t, u8)

int fern__max_pool_kernel(fern_op_call *c)
{
    pool_geom g;
    if (fern__pool_setup(c, &g, 0))
        return -1;
    const fern_dtype dt = c->in[0]->dtype;
    if (fern__max2x2_applies(&g, dt)) {
        fern__max2x2(&g, dt, fern_tensor_data(c->in[0]), NULL, fern_tensor_data(c->out[0]), 0);
        return 0;
    }
    max_job j = {&g, max_interior(&g, 16 / (int64_t)fern_dtype_size(dt)),
                 fern_tensor_data(c->in[0]), fern_tensor_data(c->out[0])};
    void (*task)(void *, int64_t, int64_t);
    switch (dt) {
    case FERN_F32: task = max_task_f32; break;
    case FERN_F64: task = max_task_f64; break;
    case FERN_I8: task = max_task_i8; break;
    case FERN_U8: task = max_task_u8; break;
    case FERN_I32: task = max_task_i32; break;
    default: task = max_task_i64; break;
    }
    fern_parallel_for(g.NC * g.OH, pool_grain(g.OW * g.kh * g.kw), task, &j);
    return 0;
}
