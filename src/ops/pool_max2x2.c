/* 2x2 stride-2 unpadded max pooling of f32/f64 (LeNet, VGG), forward and
 * backward: the common case gets its own kernels.
 *
 * The windows are disjoint and their taps are the even and odd columns of
 * two input rows, deinterleaved in registers by shuffles. torch's value of
 * a window is the fold f(m, v) = (v > m || v is NaN) ? v : m over its taps
 * in (row, column) order: the first maximum, or the last NaN. That equals
 * f(f(a, b), f(c, d)) for the taps a, b of row 0 and c, d of row 1 (the
 * first maximum / last NaN of the whole is decided by those of the rows),
 * so results match the plain loop bit for bit, ties between signed zeros
 * and NaN payloads included, and so does the argmax the backward uses.
 *
 * Work is the flat list of NC * OH output rows: small planes (LeNet's
 * 10x10, 5 outputs a row) are not one task each. With AVX-512, a row of at
 * most one vector of outputs is one masked vector; otherwise a last
 * partial vector is redone overlapping the previous one. The backward
 * writes every element of the input gradient exactly once (gy or 0), so
 * it needs no clearing pass and rows stay independent. */
#include <stdint.h>
#include <string.h>

#include "pool_common.h"
#include "pool_vec.h"

#define MAX_FLOAT(a, v) ((v) > (a) || (v) != (v) ? (v) : (a))

/* gy split by the argmax of each window of taps a, b (row 0), c, d (row 1):
 * e[k] = gy where tap k is the argmax, else 0. The argmax of each row,
 * then of the two, is the fold's (first maximum, last NaN). */
#define DEFINE_GSPLIT(SFX, L)                                                                      \
    static inline void gsplit_##SFX##_##L(v_##SFX##_##L a, v_##SFX##_##L b, v_##SFX##_##L c,       \
                                          v_##SFX##_##L d, v_##SFX##_##L gv, v_##SFX##_##L *e)     \
    {                                                                                              \
        typedef iv_##SFX##_##L ivec;                                                               \
        const ivec r = wins_##SFX##_##L(a, b), s = wins_##SFX##_##L(c, d);                         \
        const v_##SFX##_##L m0 = sel_##SFX##_##L(r, b, a), m1 = sel_##SFX##_##L(s, d, c);          \
        const ivec u = wins_##SFX##_##L(m0, m1), g = (ivec)gv; /* u: row 1 wins */                 \
        e[0] = (v_##SFX##_##L)(g & ~u & ~r);                                                       \
        e[1] = (v_##SFX##_##L)(g & ~u & r);                                                        \
        e[2] = (v_##SFX##_##L)(g & u & ~s);                                                        \
        e[3] = (v_##SFX##_##L)(g & u & s);                                                         \
    }
#if defined(__AVX512F__)
/* the same with AVX-512 mask registers (the generic form converts each
 * compare mask to a vector and back) */
#define DEFINE_GSPLIT_512(SFX, L, VT, PS, MT)                                                      \
    static inline MT wins512_##SFX(VT m, VT v)                                                     \
    {                                                                                              \
        return (MT)(_mm512_cmp_##PS##_mask(v, m, _CMP_GT_OQ) |                                     \
                    _mm512_cmp_##PS##_mask(v, v, _CMP_UNORD_Q));                                   \
    }                                                                                              \
    static inline void gsplit_##SFX##_##L(v_##SFX##_##L va, v_##SFX##_##L vb, v_##SFX##_##L vc,    \
                                          v_##SFX##_##L vd, v_##SFX##_##L gv, v_##SFX##_##L *e)    \
    {                                                                                              \
        const VT a = (VT)va, b = (VT)vb, c = (VT)vc, d = (VT)vd, g = (VT)gv;                       \
        const MT r = wins512_##SFX(a, b), s = wins512_##SFX(c, d);                                 \
        const MT u = wins512_##SFX(_mm512_mask_mov_##PS(a, r, b), _mm512_mask_mov_##PS(c, s, d));  \
        e[0] = (v_##SFX##_##L)_mm512_maskz_mov_##PS((MT)(~u & ~r), g);                             \
        e[1] = (v_##SFX##_##L)_mm512_maskz_mov_##PS((MT)(~u & r), g);                              \
        e[2] = (v_##SFX##_##L)_mm512_maskz_mov_##PS((MT)(u & ~s), g);                              \
        e[3] = (v_##SFX##_##L)_mm512_maskz_mov_##PS((MT)(u & s), g);                               \
    }
DEFINE_GSPLIT_512(f32, 16, __m512, ps, __mmask16)
DEFINE_GSPLIT_512(f64, 8, __m512d, pd, __mmask8)
#else
DEFINE_GSPLIT(f32, 16)
DEFINE_GSPLIT(f64, 8)
#endif
DEFINE_GSPLIT(f32, 4)
DEFINE_GSPLIT(f32, 8)
DEFINE_GSPLIT(f64, 2)
DEFINE_GSPLIT(f64, 4)

/* For L lanes of T:
 *  - deint: the taps a, b, c, d of L windows from 2L columns of rows r0, r1
 *    (two vectors per row: p0 = columns [0, L), p1 the next L);
 *  - fold: the window values f(f(a, b), f(c, d));
 *  - spread: the backward's four outputs per window, gy at the argmax and
 *    0 elsewhere, interleaved back into 2L columns of each row. */
#define DEFINE_PAIR_VEC(T, SFX, L)                                                                 \
    typedef struct {                                                                               \
        v_##SFX##_##L a, b, c, d;                                                                  \
    } taps_##SFX##_##L;                                                                            \
    static inline taps_##SFX##_##L deint_##SFX##_##L(v_##SFX##_##L p0, v_##SFX##_##L p1,           \
                                                     v_##SFX##_##L q0, v_##SFX##_##L q1)           \
    {                                                                                              \
        taps_##SFX##_##L t;                                                                        \
        t.a = POOL_SHUFFLE(iv_##SFX##_##L, p0, p1, POOL_EVEN_##L);                                 \
        t.b = POOL_SHUFFLE(iv_##SFX##_##L, p0, p1, POOL_ODD_##L);                                  \
        t.c = POOL_SHUFFLE(iv_##SFX##_##L, q0, q1, POOL_EVEN_##L);                                 \
        t.d = POOL_SHUFFLE(iv_##SFX##_##L, q0, q1, POOL_ODD_##L);                                  \
        return t;                                                                                  \
    }                                                                                              \
    static inline v_##SFX##_##L fold_##SFX##_##L(taps_##SFX##_##L t)                               \
    {                                                                                              \
        return vmax_##SFX##_##L(vmax_##SFX##_##L(t.a, t.b), vmax_##SFX##_##L(t.c, t.d));           \
    }                                                                                              \
    /* w0, w1: columns [0, L) and [L, 2L) of row 0; w2, w3 of row 1 */                             \
    static inline void spread_##SFX##_##L(taps_##SFX##_##L t, v_##SFX##_##L gv, int relu,          \
                                          v_##SFX##_##L *w)                                        \
    {                                                                                              \
        v_##SFX##_##L e[4];                                                                        \
        if (relu) { /* relu_backward folded in: gy kept where !(max <= 0) */                       \
            const v_##SFX##_##L m = fold_##SFX##_##L(t), zero = {0};                               \
            gv = (v_##SFX##_##L)((iv_##SFX##_##L)gv & ~(iv_##SFX##_##L)(m <= zero));               \
        }                                                                                          \
        gsplit_##SFX##_##L(t.a, t.b, t.c, t.d, gv, e);                                             \
        w[0] = POOL_SHUFFLE(iv_##SFX##_##L, e[0], e[1], POOL_LO_##L);                              \
        w[1] = POOL_SHUFFLE(iv_##SFX##_##L, e[0], e[1], POOL_HI_##L);                              \
        w[2] = POOL_SHUFFLE(iv_##SFX##_##L, e[2], e[3], POOL_LO_##L);                              \
        w[3] = POOL_SHUFFLE(iv_##SFX##_##L, e[2], e[3], POOL_HI_##L);                              \
    }                                                                                              \
    /* n >= L windows from column 0, L at a time; forward (gr == NULL: y = the                     \
     * maxima) or backward (gr: gy's row; g0, g1: gx's rows) */                                    \
    static void pair_run_##SFX##_##L(const T *restrict r0, const T *restrict r1,                   \
                                     const T *restrict gr, T *restrict y, T *restrict g1,          \
                                     int64_t n, int relu)                                          \
    {                                                                                              \
        typedef v_##SFX##_##L vec;                                                                 \
        for (int64_t o0 = 0; o0 < n; o0 += L) {                                                    \
            const int64_t ow = o0 + L <= n ? o0 : n - L;                                           \
            vec p0, p1, q0, q1, w[4];                                                              \
            memcpy(&p0, r0 + 2 * ow, sizeof p0);                                                   \
            memcpy(&p1, r0 + 2 * ow + L, sizeof p1);                                               \
            memcpy(&q0, r1 + 2 * ow, sizeof q0);                                                   \
            memcpy(&q1, r1 + 2 * ow + L, sizeof q1);                                               \
            const taps_##SFX##_##L t = deint_##SFX##_##L(p0, p1, q0, q1);                          \
            if (!gr) {                                                                             \
                const vec m = fold_##SFX##_##L(t);                                                 \
                memcpy(y + ow, &m, sizeof m);                                                      \
                continue;                                                                          \
            }                                                                                      \
            vec gv;                                                                                \
            memcpy(&gv, gr + ow, sizeof gv);                                                       \
            spread_##SFX##_##L(t, gv, relu, w);                                                    \
            memcpy(y + 2 * ow, &w[0], sizeof w[0]);                                                \
            memcpy(y + 2 * ow + L, &w[1], sizeof w[1]);                                            \
            memcpy(g1 + 2 * ow, &w[2], sizeof w[2]);                                               \
            memcpy(g1 + 2 * ow + L, &w[3], sizeof w[3]);                                           \
        }                                                                                          \
    }

DEFINE_PAIR_VEC(float, f32, 4)
DEFINE_PAIR_VEC(float, f32, 8)
DEFINE_PAIR_VEC(float, f32, 16)
DEFINE_PAIR_VEC(double, f64, 2)
DEFINE_PAIR_VEC(double, f64, 4)
DEFINE_PAIR_VEC(double, f64, 8)

#if defined(__AVX512F__)
/* rows consecutive row pairs from r0 (rows of W; pair t at r0 + 2tW) of
 * n <= L windows each (L: one 64-byte vector), one vector a row through
 * masked loads and stores (a masked-off lane is not accessed): forward
 * (gy NULL) into out + t*n, or backward from gy + t*n into the gx rows at
 * out + 2tW */
#define DEFINE_PAIR_MASKED(T, SFX, L, PS, MT, MASK)                                                \
    static void pair_rows_##SFX(const T *r0, int64_t W, const T *gy, T *out, int64_t rows,         \
                                int64_t n, int relu)                                               \
    {                                                                                              \
        typedef v_##SFX##_##L vec;                                                                 \
        const int64_t lo = 2 * n < L ? 2 * n : L, hi = 2 * n - lo; /* columns in p0, p1 */         \
        const MASK ml = (MASK)((1u << lo) - 1), mh = (MASK)((1u << hi) - 1);                       \
        const MASK mo = (MASK)((1u << n) - 1);                                                     \
        for (int64_t t = 0; t < rows; t++, r0 += 2 * W) {                                          \
            const taps_##SFX##_##L tp = deint_##SFX##_##L(                                         \
                (vec)_mm512_maskz_loadu_##PS(ml, r0), (vec)_mm512_maskz_loadu_##PS(mh, r0 + lo),   \
                (vec)_mm512_maskz_loadu_##PS(ml, r0 + W),                                          \
                (vec)_mm512_maskz_loadu_##PS(mh, r0 + W + lo));                                    \
            if (!gy) {                                                                             \
                _mm512_mask_storeu_##PS(out + t * n, mo, (MT)fold_##SFX##_##L(tp));                \
                continue;                                                                          \
            }                                                                                      \
            vec w[4];                                                                              \
            spread_##SFX##_##L(tp, (vec)_mm512_maskz_loadu_##PS(mo, gy + t * n), relu, w);         \
            T *g0 = out + t * 2 * W;                                                               \
            _mm512_mask_storeu_##PS(g0, ml, (MT)w[0]);                                             \
            _mm512_mask_storeu_##PS(g0 + lo, mh, (MT)w[1]);                                        \
            _mm512_mask_storeu_##PS(g0 + W, ml, (MT)w[2]);                                         \
            _mm512_mask_storeu_##PS(g0 + W + lo, mh, (MT)w[3]);                                    \
        }                                                                                          \
    }
DEFINE_PAIR_MASKED(float, f32, 16, ps, __m512, __mmask16)
DEFINE_PAIR_MASKED(double, f64, 8, pd, __m512d, __mmask8)
#define PAIR_MASKED(SFX, L64, r0, r1, gr, y, g1, n)                                                \
    if ((n) <= L64) {                                                                              \
        pair_rows_##SFX(r0, r1 - r0, gr, y, 1, n, relu);                                           \
        return n;                                                                                  \
    }
#else
#define PAIR_MASKED(SFX, L64, r0, r1, gr, y, g1, n)
#endif

/* Full windows [0, n) of rows r0, r1: forward (gr == NULL) into y, or
 * backward into gx rows y, g1. Returns how many were done: n, or 0 when n
 * is too small for a vector (then the caller does them one by one). */
#define DEFINE_PAIR_ROW(SFX, T, L16, L32, L64)                                                     \
    static inline int64_t pair_row_##SFX(const T *r0, const T *r1, const T *gr, T *y, T *g1,       \
                                         int64_t n, int relu)                                      \
    {                                                                                              \
        if (n <= 0)                                                                                \
            return 0;                                                                              \
        PAIR_MASKED(SFX, L64, r0, r1, gr, y, g1, n)                                                \
        if (POOL_VBYTES >= 64 && n >= L64)                                                         \
            pair_run_##SFX##_##L64(r0, r1, gr, y, g1, n, relu);                                          \
        else if (POOL_VBYTES >= 32 && n >= L32)                                                    \
            pair_run_##SFX##_##L32(r0, r1, gr, y, g1, n, relu);                                          \
        else if (n >= L16)                                                                         \
            pair_run_##SFX##_##L16(r0, r1, gr, y, g1, n, relu);                                          \
        else                                                                                       \
            return 0;                                                                              \
        return n;                                                                                  \
    }
DEFINE_PAIR_ROW(f32, float, 4, 8, 16)
DEFINE_PAIR_ROW(f64, double, 2, 4, 8)

/* One output row oh: full windows vectorized, then windows that ceil_mode
 * clips (a last column or row), one by one with the fold / its argmax. */
#define DEFINE_PAIR_OUT_ROW(T, SFX)                                                                \
    static void pair_fwd_##SFX(const pool_geom *g, const T *restrict x, T *restrict y, int64_t oh) \
    {                                                                                              \
        const int64_t W = g->W, ih = 2 * oh, nr = ih + 1 < g->H ? 2 : 1;                           \
        const T *r0 = x + ih * W;                                                                  \
        const int64_t fw = nr == 2 ? (W / 2 < g->OW ? W / 2 : g->OW) : 0; /* full windows */       \
        for (int64_t ow = pair_row_##SFX(r0, r0 + W, NULL, y, NULL, fw, 0); ow < g->OW; ow++) {       \
            const int64_t c = 2 * ow, nc = c + 1 < W ? 2 : 1;                                      \
            T m = r0[c];                                                                           \
            for (int64_t i = 0; i < nr; i++)                                                       \
                for (int64_t k = i == 0; k < nc; k++)                                              \
                    m = MAX_FLOAT(m, r0[i * W + c + k]);                                           \
            y[ow] = m;                                                                             \
        }                                                                                          \
    }                                                                                              \
    /* input rows 2oh, 2oh + 1 of gx written whole; after the plane's last                         \
     * output row, the input rows no window covers zeroed */                                       \
    static void pair_bwd_##SFX(const pool_geom *g, const T *restrict x, const T *restrict gr,      \
                               T *restrict gx, int64_t oh, int relu)                               \
    {                                                                                              \
        const int64_t W = g->W, ih = 2 * oh, nr = ih + 1 < g->H ? 2 : 1;                           \
        const T *r0 = x + ih * W;                                                                  \
        T *g0 = gx + ih * W;                                                                       \
        const int64_t fw = nr == 2 ? (W / 2 < g->OW ? W / 2 : g->OW) : 0;                          \
        const int64_t done = pair_row_##SFX(r0, r0 + W, gr, g0, g0 + W, fw, relu);                       \
        for (int64_t i = 0; i < nr && 2 * done < W; i++)                                           \
            memset(g0 + i * W + 2 * done, 0, (size_t)(W - 2 * done) * sizeof(T));                  \
        for (int64_t ow = done; ow < g->OW; ow++) {                                                \
            const int64_t c = 2 * ow, nc = c + 1 < W ? 2 : 1;                                      \
            int64_t best = c;                                                                      \
            for (int64_t i = 0; i < nr; i++)                                                       \
                for (int64_t k = i == 0; k < nc; k++) {                                            \
                    const T v = r0[i * W + c + k];                                                 \
                    if (v > r0[best] || v != v)                                                    \
                        best = i * W + c + k;                                                      \
                }                                                                                  \
            g0[best] = relu && r0[best] <= 0 ? 0 : gr[ow];                                         \
        }                                                                                          \
        if (oh == g->OH - 1 && ih + nr < g->H)                                                     \
            memset(g0 + nr * W, 0, (size_t)((g->H - ih - nr) * W) * sizeof(T));                    \
    }

DEFINE_PAIR_OUT_ROW(float, f32)
DEFINE_PAIR_OUT_ROW(double, f64)

typedef struct {
    const pool_geom *g;
    const char *x, *gy; /* gy: NULL for the forward */
    char *out;
    int relu; /* backward: relu_backward folded in */
} pair_job;

/* output rows [begin, end) of the flat (plane, oh) list. When the output
 * rows tile the input exactly (H = 2 OH, and every column is in a full
 * window), row t reads input rows 2t, 2t + 1 of the flat row list: one
 * tight loop. */
#define DEFINE_PAIR_TASK(T, SFX)                                                                   \
    static void pair_task_##SFX(void *ctx, int64_t begin, int64_t end)                             \
    {                                                                                              \
        const pair_job *j = ctx;                                                                   \
        const pool_geom *g = j->g;                                                                 \
        const int64_t W = g->W, OW = g->OW, HW = g->H * W;                                         \
        const T *x = (const T *)j->x, *gy = (const T *)j->gy;                                      \
        T *out = (T *)j->out;                                                                      \
        const int relu = j->relu;                                                                  \
        if (g->H == 2 * g->OH && (gy ? W == 2 * OW : W / 2 >= OW)) {                               \
            const T *r0 = x + begin * 2 * W;                                                       \
            if (PAIR_ROWS_##SFX(r0, W, gy ? gy + begin * OW : NULL,                                \
                                out + begin * (gy ? 2 * W : OW), end - begin, OW, relu))           \
                return;                                                                            \
            if (!gy) {                                                                             \
                for (int64_t t = begin; t < end; t++, r0 += 2 * W)                                 \
                    if (!pair_row_##SFX(r0, r0 + W, NULL, out + t * OW, NULL, OW, 0))                 \
                        pair_fwd_##SFX(g, r0, out + t * OW, 0);                                    \
            } else {                                                                               \
                for (int64_t t = begin; t < end; t++, r0 += 2 * W) {                               \
                    T *g0 = out + t * 2 * W;                                                       \
                    if (!pair_row_##SFX(r0, r0 + W, gy + t * OW, g0, g0 + W, OW, relu))                  \
                        pair_bwd_##SFX(g, r0, gy + t * OW, g0, 0, relu);                                 \
                }                                                                                  \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        int64_t plane = begin / g->OH, oh = begin - plane * g->OH;                                 \
        for (int64_t t = begin; t < end; t++) {                                                    \
            if (gy)                                                                                \
                pair_bwd_##SFX(g, x + plane * HW, gy + t * OW, out + plane * HW, oh, relu);              \
            else                                                                                   \
                pair_fwd_##SFX(g, x + plane * HW, out + t * OW, oh);                               \
            if (++oh == g->OH) {                                                                   \
                oh = 0;                                                                            \
                plane++;                                                                           \
            }                                                                                      \
        }                                                                                          \
    }

/* many rows of at most one vector: one call (0 when it does not apply) */
#if defined(__AVX512F__)
#define PAIR_ROWS_f32(r0, W, gy, out, rows, n, relu)                                               \
    ((n) <= 16 ? pair_rows_f32(r0, W, gy, out, rows, n, relu), 1 : 0)
#define PAIR_ROWS_f64(r0, W, gy, out, rows, n, relu)                                               \
    ((n) <= 8 ? pair_rows_f64(r0, W, gy, out, rows, n, relu), 1 : 0)
#else
#define PAIR_ROWS_f32(r0, W, gy, out, rows, n, relu) 0
#define PAIR_ROWS_f64(r0, W, gy, out, rows, n, relu) 0
#endif

DEFINE_PAIR_TASK(float, f32)
DEFINE_PAIR_TASK(double, f64)

int fern__max2x2_applies(const pool_geom *g, fern_dtype dt)
{
    return (dt == FERN_F32 || dt == FERN_F64) && g->kh == 2 && g->kw == 2 && g->sh == 2 &&
           g->sw == 2 && g->ph == 0 && g->pw == 0;
}

void fern__max2x2(const pool_geom *g, fern_dtype dt, const void *x, const void *gy, void *out,
                  int relu)
{
    pair_job j = {g, x, gy, out, relu};
    /* a row reads two input rows (and writes two for the backward) */
    fern_parallel_for(g->NC * g->OH, pool_grain((gy ? 4 : 2) * g->W),
                      dt == FERN_F32 ? pair_task_f32 : pair_task_f64, &j);
}
