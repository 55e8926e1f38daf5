/* Sorting ops: sort (stable; values and i64 indices), argsort and topk,
 * along one axis. nan sorts as the largest value, like torch: last in an
 * ascending sort, first in a descending one, and the top of topk(largest).
 *
 * Each line along the axis is gathered into a scratch buffer of
 * (key, index) pairs and sorted there; lines run in parallel. sort is
 * stable (equal values keep their input order, also when descending, like
 * torch's stable=True): an LSD radix sort on order-preserving unsigned keys
 * for lines of 64 or more, a bottom-up merge sort for shorter ones. topk
 * keeps a heap of the k best under the total order (value, then lower
 * index first), so ties resolve to the lower index; its result is always
 * in sorted order (sorted=0 leaves the order unspecified in torch). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_def.h"

#define SORT_WORK 32768 /* comparisons that justify a thread */
#define SORT_RUN 24     /* insertion-sorted run length      */

/* a strictly before b: ascending (nan last) and descending (nan first) */
#define CMP_LT(a, b) ((a) < (b) || ((b) != (b) && (a) == (a)))
#define CMP_GT(a, b) ((a) > (b) || ((a) != (a) && (b) == (b)))

typedef struct {
    const void *x;
    void *vals;     /* may be NULL (argsort)          */
    int64_t *idx;
    int64_t outer, n, inner, k;
    int flag;       /* sort: descending; topk: largest */
    atomic_int failed;
} sort_job;

/* Stable merge sort of (key, idx) pairs, n >= 1; tk/ti are scratch of n. */
#define DEF_MSORT(NAME, T, BEFORE)                                                               \
    static void NAME(T *k, int64_t *ix, T *tk, int64_t *ti, int64_t n)                         \
    {                                                                                          \
        for (int64_t s = 0; s < n; s += SORT_RUN) {                                            \
            int64_t e = s + SORT_RUN < n ? s + SORT_RUN : n;                                   \
            for (int64_t i = s + 1; i < e; i++) {                                              \
                T v = k[i];                                                                    \
                int64_t vi = ix[i];                                                            \
                int64_t j = i;                                                                 \
                while (j > s && BEFORE(v, k[j - 1])) {                                         \
                    k[j] = k[j - 1];                                                           \
                    ix[j] = ix[j - 1];                                                         \
                    j--;                                                                       \
                }                                                                              \
                k[j] = v;                                                                      \
                ix[j] = vi;                                                                    \
            }                                                                                  \
        }                                                                                      \
        T *sk = k, *dk = tk;                                                                   \
        int64_t *si = ix, *di = ti;                                                            \
        for (int64_t w = SORT_RUN; w < n; w *= 2) {                                            \
            for (int64_t lo = 0; lo < n; lo += 2 * w) {                                        \
                int64_t mid = lo + w < n ? lo + w : n;                                         \
                int64_t hi = lo + 2 * w < n ? lo + 2 * w : n;                                  \
                int64_t a = lo, b = mid, o = lo;                                               \
                if (mid < hi && !BEFORE(sk[mid], sk[mid - 1])) {                               \
                    /* already in order: copy the two runs through */                          \
                    memcpy(dk + lo, sk + lo, (size_t)(hi - lo) * sizeof(T));                   \
                    memcpy(di + lo, si + lo, (size_t)(hi - lo) * sizeof(int64_t));             \
                    continue;                                                                  \
                }                                                                              \
                while (a < mid && b < hi) {                                                    \
                    if (BEFORE(sk[b], sk[a])) {                                                \
                        dk[o] = sk[b];                                                         \
                        di[o++] = si[b++];                                                     \
                    } else {                                                                   \
                        dk[o] = sk[a];                                                         \
                        di[o++] = si[a++];                                                     \
                    }                                                                          \
                }                                                                              \
                while (a < mid) {                                                              \
                    dk[o] = sk[a];                                                             \
                    di[o++] = si[a++];                                                         \
                }                                                                              \
                while (b < hi) {                                                               \
                    dk[o] = sk[b];                                                             \
                    di[o++] = si[b++];                                                         \
                }                                                                              \
            }                                                                                  \
            T *t1 = sk;                                                                        \
            sk = dk;                                                                           \
            dk = t1;                                                                           \
            int64_t *t2 = si;                                                                  \
            si = di;                                                                           \
            di = t2;                                                                           \
        }                                                                                      \
        if (sk != k) {                                                                         \
            memcpy(k, sk, (size_t)n * sizeof(T));                                              \
            memcpy(ix, si, (size_t)n * sizeof(int64_t));                                       \
        }                                                                                      \
    }

/* Stable LSD radix sort of (key, idx) pairs by unsigned key, one byte per
 * pass (passes where every key has the same byte are skipped). */
#define DEF_RADIX(NAME, U)                                                                       \
    static void NAME(U *key, int64_t *ix, U *tk, int64_t *ti, int64_t n)                       \
    {                                                                                          \
        enum { NB = (int)sizeof(U) };                                                          \
        int64_t cnt[NB][256];                                                                  \
        memset(cnt, 0, sizeof cnt);                                                            \
        for (int64_t i = 0; i < n; i++) {                                                      \
            U k = key[i];                                                                      \
            for (int b = 0; b < NB; b++)                                                       \
                cnt[b][(k >> (8 * b)) & 255]++;                                                \
        }                                                                                      \
        U *sk = key, *dk = tk;                                                                 \
        int64_t *si = ix, *di = ti;                                                            \
        for (int b = 0; b < NB; b++) {                                                         \
            int64_t *c = cnt[b];                                                               \
            if (c[(sk[0] >> (8 * b)) & 255] == n)                                              \
                continue;                                                                      \
            int64_t sum = 0;                                                                   \
            for (int d = 0; d < 256; d++) {                                                    \
                int64_t t = c[d];                                                              \
                c[d] = sum;                                                                    \
                sum += t;                                                                      \
            }                                                                                  \
            for (int64_t i = 0; i < n; i++) {                                                  \
                U k = sk[i];                                                                   \
                int64_t pos = c[(k >> (8 * b)) & 255]++;                                       \
                dk[pos] = k;                                                                   \
                di[pos] = si[i];                                                               \
            }                                                                                  \
            U *t1 = sk;                                                                        \
            sk = dk;                                                                           \
            dk = t1;                                                                           \
            int64_t *t2 = si;                                                                  \
            si = di;                                                                           \
            di = t2;                                                                           \
        }                                                                                      \
        if (sk != key) {                                                                       \
            memcpy(key, sk, (size_t)n * sizeof(U));                                            \
            memcpy(ix, si, (size_t)n * sizeof(int64_t));                                       \
        }                                                                                      \
    }

DEF_RADIX(radix_u8, uint8_t)
DEF_RADIX(radix_u32, uint32_t)
DEF_RADIX(radix_u64, uint64_t)

/* Order-preserving unsigned keys: every nan maps to the largest key, -0.0
 * to the key of +0.0 (they compare equal), signed ints flip the sign bit. */
static inline uint32_t key_f32(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    if (v != v)
        return UINT32_MAX;
    if (v == 0)
        u = 0;
    return (u & UINT32_C(0x80000000)) ? ~u : (u | UINT32_C(0x80000000));
}
static inline uint64_t key_f64(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    if (v != v)
        return UINT64_MAX;
    if (v == 0)
        u = 0;
    return (u & UINT64_C(0x8000000000000000)) ? ~u : (u | UINT64_C(0x8000000000000000));
}
static inline uint8_t key_i8(int8_t v) { return (uint8_t)((uint8_t)v ^ 0x80u); }
static inline uint8_t key_u8(uint8_t v) { return v; }
static inline uint32_t key_i32(int32_t v) { return (uint32_t)v ^ UINT32_C(0x80000000); }
static inline uint64_t key_i64(int64_t v) { return (uint64_t)v ^ UINT64_C(0x8000000000000000); }

/* Lines along a non-last axis are strided: they are gathered (and the
 * results scattered) a tile of up to TILE_G adjacent lines at a time, so
 * every cache line read or written serves the whole tile. */
#define TILE_G 16
#define TILE_ELEMS (1 << 20)
/* dst[q*n + i] = src[i*inner + q] for q < G (G a constant where possible,
 * so the compiler unrolls it) */
#define TILE_GATHER(T, dst, src, n, inner, G)                                                    \
    do {                                                                                       \
        T *restrict d_ = (dst);                                                                \
        const T *restrict s_ = (src);                                                          \
        for (int64_t i_ = 0; i_ < (n); i_++)                                                   \
            for (int64_t q_ = 0; q_ < (G); q_++)                                               \
                d_[q_ * (n) + i_] = s_[i_ * (inner) + q_];                                     \
    } while (0)
static int64_t tile_width(int64_t n, int64_t inner)
{
    int64_t g = inner < TILE_G ? inner : TILE_G;
    while (g > 1 && g * n > TILE_ELEMS)
        g /= 2;
    return g;
}

/* Sort the lines [i0, i1) (line = (outer o, inner j)): radix sort on the
 * keys for lines of RADIX_MIN or more (a descending sort complements the
 * keys, which keeps equal values in input order), merge sort below. */
#define RADIX_MIN 64
#define DEF_SORT_LINES(SUF, T, U, RADIX)                                                         \
    DEF_MSORT(msort_asc_##SUF, T, CMP_LT)                                                      \
    DEF_MSORT(msort_desc_##SUF, T, CMP_GT)                                                     \
    static void sort_lines_##SUF(void *ctx, int64_t i0, int64_t i1)                            \
    {                                                                                          \
        sort_job *J = ctx;                                                                     \
        int64_t n = J->n, inner = J->inner, G = tile_width(n, inner);                          \
        /* per tile line: values, permutation; shared: keys and temporaries */                 \
        char *buf = malloc((size_t)(G * n * (sizeof(T) + sizeof(int64_t)) +                   \
                                    n * (2 * sizeof(U) + sizeof(int64_t))));                   \
        if (!buf) {                                                                            \
            atomic_store(&J->failed, 1);                                                       \
            return;                                                                            \
        }                                                                                      \
        int64_t *ixs = (int64_t *)buf, *ti = ixs + G * n;                                      \
        T *orig = (T *)(ti + n);                                                               \
        U *uk = (U *)(orig + G * n), *utk = uk + n;                                            \
        T *tk = (T *)utk; /* merge sort temporary (same size as U) */                          \
        const T *x = J->x;                                                                     \
        T *vals = J->vals;                                                                     \
        int radix = n >= RADIX_MIN;                                                            \
        for (int64_t line = i0; line < i1;) {                                                  \
            int64_t o = line / inner, j = line % inner;                                        \
            int64_t g = i1 - line < G ? i1 - line : G;                                         \
            if (g > inner - j)                                                                 \
                g = inner - j;                                                                 \
            int64_t base = o * n * inner + j;                                                  \
            if (g == 1)                                                                        \
                for (int64_t i = 0; i < n; i++)                                                \
                    orig[i] = x[base + i * inner];                                             \
            else if (g == TILE_G)                                                              \
                TILE_GATHER(T, orig, x + base, n, inner, TILE_G);                              \
            else                                                                               \
                TILE_GATHER(T, orig, x + base, n, inner, g);                                   \
            for (int64_t q = 0; q < g; q++) {                                                  \
                T *ol = orig + q * n;                                                          \
                int64_t *ix = ixs + q * n;                                                     \
                for (int64_t i = 0; i < n; i++)                                                \
                    ix[i] = i;                                                                 \
                if (radix) {                                                                   \
                    U flip = J->flag ? (U) ~(U)0 : (U)0;                                       \
                    for (int64_t i = 0; i < n; i++)                                            \
                        uk[i] = (U)(key_##SUF(ol[i]) ^ flip);                                  \
                    RADIX(uk, ix, utk, ti, n);                                                 \
                } else if (J->flag) {                                                          \
                    msort_desc_##SUF(ol, ix, tk, ti, n); /* ol ends sorted */                  \
                } else {                                                                       \
                    msort_asc_##SUF(ol, ix, tk, ti, n);                                        \
                }                                                                              \
            }                                                                                  \
            if (g == 1) {                                                                      \
                for (int64_t i = 0; i < n; i++)                                                \
                    J->idx[base + i * inner] = ixs[i];                                         \
                if (vals && radix)                                                             \
                    for (int64_t i = 0; i < n; i++)                                            \
                        vals[base + i * inner] = orig[ixs[i]];                                 \
                else if (vals)                                                                 \
                    for (int64_t i = 0; i < n; i++)                                            \
                        vals[base + i * inner] = orig[i];                                      \
            } else {                                                                           \
                for (int64_t i = 0; i < n; i++)                                                \
                    for (int64_t q = 0; q < g; q++) {                                          \
                        int64_t p = ixs[q * n + i];                                            \
                        J->idx[base + i * inner + q] = p;                                      \
                        if (vals)                                                              \
                            vals[base + i * inner + q] = orig[q * n + (radix ? p : i)];        \
                    }                                                                          \
            }                                                                                  \
            line += g;                                                                         \
        }                                                                                      \
        free(buf);                                                                             \
    }

/* topk: BETTER is a total order (value, then the lower index). The heap
 * keeps the k best with the worst at the root. */
#define TK_BETTER(CMP, a, ia, b, ib) (CMP(a, b) || (!CMP(b, a) && (ia) < (ib)))
#define DEF_TOPK_HEAP(NAME, T, CMP)                                                              \
    static void NAME##_down(T *hk, int64_t *hi, int64_t m, int64_t i)                          \
    {                                                                                          \
        for (;;) {                                                                             \
            int64_t w = i, l = 2 * i + 1, r = l + 1;                                           \
            if (l < m && TK_BETTER(CMP, hk[w], hi[w], hk[l], hi[l]))                           \
                w = l;                                                                         \
            if (r < m && TK_BETTER(CMP, hk[w], hi[w], hk[r], hi[r]))                           \
                w = r;                                                                         \
            if (w == i)                                                                        \
                return;                                                                        \
            T tv = hk[i];                                                                      \
            hk[i] = hk[w];                                                                     \
            hk[w] = tv;                                                                        \
            int64_t t = hi[i];                                                                 \
            hi[i] = hi[w];                                                                     \
            hi[w] = t;                                                                         \
            i = w;                                                                             \
        }                                                                                      \
    }                                                                                          \
    /* select the k best of line l (stride st) into vk/vi, best first */                       \
    static void NAME(const T *l, int64_t n, int64_t st, int64_t k, T *hk, int64_t *hi)         \
    {                                                                                          \
        for (int64_t i = 0; i < k; i++) {                                                      \
            int64_t c = i;                                                                     \
            hk[c] = l[i * st];                                                                 \
            hi[c] = i;                                                                         \
            while (c > 0) {                                                                    \
                int64_t p = (c - 1) / 2;                                                       \
                if (!TK_BETTER(CMP, hk[p], hi[p], hk[c], hi[c]))                               \
                    break;                                                                     \
                T tv = hk[p];                                                                  \
                hk[p] = hk[c];                                                                 \
                hk[c] = tv;                                                                    \
                int64_t t = hi[p];                                                             \
                hi[p] = hi[c];                                                                 \
                hi[c] = t;                                                                     \
                c = p;                                                                         \
            }                                                                                  \
        }                                                                                      \
        for (int64_t i = k; i < n; i++) {                                                      \
            T v = l[i * st];                                                                   \
            if (TK_BETTER(CMP, v, i, hk[0], hi[0])) {                                          \
                hk[0] = v;                                                                     \
                hi[0] = i;                                                                     \
                NAME##_down(hk, hi, k, 0);                                                     \
            }                                                                                  \
        }                                                                                      \
        /* pop the worst to the back: the array ends sorted best first */                      \
        for (int64_t m = k - 1; m > 0; m--) {                                                  \
            T tv = hk[0];                                                                      \
            hk[0] = hk[m];                                                                     \
            hk[m] = tv;                                                                        \
            int64_t t = hi[0];                                                                 \
            hi[0] = hi[m];                                                                     \
            hi[m] = t;                                                                         \
            NAME##_down(hk, hi, m, 0);                                                         \
        }                                                                                      \
    }

#define DEF_TOPK_LINES(SUF, T)                                                                   \
    DEF_TOPK_HEAP(topk_large_##SUF, T, CMP_GT)                                                 \
    DEF_TOPK_HEAP(topk_small_##SUF, T, CMP_LT)                                                 \
    static void topk_lines_##SUF(void *ctx, int64_t i0, int64_t i1)                            \
    {                                                                                          \
        sort_job *J = ctx;                                                                     \
        int64_t n = J->n, inner = J->inner, k = J->k;                                          \
        int64_t G = inner > 1 ? tile_width(n, inner) : 1;                                      \
        /* heaps of the tile lines; a tile of gathered lines when strided */                   \
        char *buf = malloc((size_t)(G * k * (sizeof(T) + sizeof(int64_t)) +                   \
                                    (inner > 1 ? G * n * sizeof(T) : 0)));                     \
        if (!buf) {                                                                            \
            atomic_store(&J->failed, 1);                                                       \
            return;                                                                            \
        }                                                                                      \
        int64_t *his = (int64_t *)buf;                                                         \
        T *hks = (T *)(his + G * k), *tile = hks + G * k;                                      \
        const T *x = J->x;                                                                     \
        T *vals = J->vals;                                                                     \
        for (int64_t line = i0; line < i1;) {                                                  \
            int64_t o = line / inner, j = line % inner;                                        \
            int64_t g = i1 - line < G ? i1 - line : G;                                         \
            if (g > inner - j)                                                                 \
                g = inner - j;                                                                 \
            const T *src = x + o * n * inner + j;                                              \
            if (inner > 1 && g == TILE_G)                                                      \
                TILE_GATHER(T, tile, src, n, inner, TILE_G);                                   \
            else if (inner > 1)                                                                \
                TILE_GATHER(T, tile, src, n, inner, g);                                        \
            for (int64_t q = 0; q < g; q++) {                                                  \
                const T *l = inner > 1 ? tile + q * n : src;                                   \
                if (J->flag)                                                                   \
                    topk_large_##SUF(l, n, 1, k, hks + q * k, his + q * k);                    \
                else                                                                           \
                    topk_small_##SUF(l, n, 1, k, hks + q * k, his + q * k);                    \
            }                                                                                  \
            int64_t ob = o * k * inner + j;                                                    \
            for (int64_t t = 0; t < k; t++)                                                    \
                for (int64_t q = 0; q < g; q++) {                                              \
                    vals[ob + t * inner + q] = hks[q * k + t];                                 \
                    J->idx[ob + t * inner + q] = his[q * k + t];                               \
                }                                                                              \
            line += g;                                                                         \
        }                                                                                      \
        free(buf);                                                                             \
    }

DEF_SORT_LINES(f32, float, uint32_t, radix_u32)
DEF_SORT_LINES(f64, double, uint64_t, radix_u64)
DEF_SORT_LINES(i8, int8_t, uint8_t, radix_u8)
DEF_SORT_LINES(u8, uint8_t, uint8_t, radix_u8)
DEF_SORT_LINES(i32, int32_t, uint32_t, radix_u32)
DEF_SORT_LINES(i64, int64_t, uint64_t, radix_u64)
DEF_TOPK_LINES(f32, float)
DEF_TOPK_LINES(f64, double)
DEF_TOPK_LINES(i8, int8_t)
DEF_TOPK_LINES(u8, uint8_t)
DEF_TOPK_LINES(i32, int32_t)
DEF_TOPK_LINES(i64, int64_t)

typedef void (*range_fn)(void *, int64_t, int64_t);
/* bool is stored as uint8_t 0/1 */
static const range_fn sort_fns[FERN_DTYPE_COUNT] = {
    [FERN_F32] = sort_lines_f32, [FERN_F64] = sort_lines_f64, [FERN_I8] = sort_lines_i8,
    [FERN_U8] = sort_lines_u8,   [FERN_I32] = sort_lines_i32, [FERN_I64] = sort_lines_i64,
    [FERN_BOOL] = sort_lines_u8};
static const range_fn topk_fns[FERN_DTYPE_COUNT] = {
    [FERN_F32] = topk_lines_f32, [FERN_F64] = topk_lines_f64, [FERN_I8] = topk_lines_i8,
    [FERN_U8] = topk_lines_u8,   [FERN_I32] = topk_lines_i32, [FERN_I64] = topk_lines_i64};

/* ---- inference --------------------------------------------------------- */

/* Normalize an axis; a 0-d tensor accepts 0 and -1 (the tensor itself). */
static int sort_axis(const fern_op_call *c, int64_t axis, int *out)
{
    const fern_tensor *x = c->in[0];
    int nd = x->ndim;
    int64_t lo = nd ? -nd : -1, hi = nd ? nd - 1 : 0;
    if (axis < lo || axis > hi) {
        char b[128];
        fern_set_error(FERN_ERR_INVALID, "%s: axis %lld is out of range for %s (expected %lld..%lld)",
                       c->op->name, (long long)axis, fern_tensor_desc(x, b, sizeof b),
                       (long long)lo, (long long)hi);
        return -1;
    }
    *out = (int)(axis < 0 ? axis + (nd ? nd : 1) : axis);
    return 0;
}

static void lines_of(const fern_tensor *x, int a, int64_t *outer, int64_t *n, int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    *n = x->ndim ? x->shape[a] : 1;
    for (int d = 0; d < a && d < x->ndim; d++)
        *outer *= x->shape[d];
    for (int d = a + 1; d < x->ndim; d++)
        *inner *= x->shape[d];
}

static const fern_attr_spec sort_attrs[] = {{"axis", FERN_ATTR_INT, -1, NULL},
                                            {"descending", FERN_ATTR_INT, 0, NULL}};

static int sort_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int a;
    if (sort_axis(c, c->attrs[0].i, &a))
        return -1;
    if (c->op->n_outputs == 2) {
        fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
        fern__set_out(c, 1, FERN_I64, x->ndim, x->shape);
    } else {
        fern__set_out(c, 0, FERN_I64, x->ndim, x->shape);
    }
    return 0;
}

static int64_t log2i(int64_t n)
{
    int64_t l = 1;
    while (n > 1) {
        n >>= 1;
        l++;
    }
    return l;
}

static int run_lines(fern_op_call *c, sort_job *J, range_fn fn, int64_t per_line)
{
    int64_t lines = J->outer * J->inner;
    atomic_init(&J->failed, 0);
    fern_parallel_for(lines, per_line >= SORT_WORK ? 1 : SORT_WORK / (per_line ? per_line : 1), fn,
                      J);
    if (atomic_load(&J->failed)) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory for the sort scratch", c->op->name);
        return -1;
    }
    return 0;
}

static int sort_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int a;
    if (sort_axis(c, c->attrs[0].i, &a))
        return -1;
    sort_job J = {.x = fern_tensor_data(x), .flag = c->attrs[1].i != 0};
    if (c->op->n_outputs == 2) {
        J.vals = fern_tensor_data(c->out[0]);
        J.idx = fern_tensor_data(c->out[1]);
    } else {
        J.vals = NULL;
        J.idx = fern_tensor_data(c->out[0]);
    }
    lines_of(x, a, &J.outer, &J.n, &J.inner);
    range_fn fn = sort_fns[x->dtype];
    if (!fn)
        return fern__err_dtype(c, x, "unsupported dtype");
    return run_lines(c, &J, fn, J.n * log2i(J.n));
}


/* values: the cotangent goes back to where each value came from */
static int values_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi, int axis)
{
    if (!g[0])
        return 0;
    fern_tensor *x = c->in[0];
    if (x->ndim == 0) {
        gi[0] = g[0];
        return 0;
    }
    gi[0] = fern_scatter_add(fern_zeros_like(x), axis, c->out[1], g[0]);
    return gi[0] ? 0 : -1;
}

static int sort_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    int nd = c->in[0]->ndim, a = (int)c->attrs[0].i;
    return values_grad(c, g, gi, a < 0 ? a + nd : a);
}

static int topk_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    int nd = c->in[0]->ndim, a = (int)c->attrs[1].i;
    return values_grad(c, g, gi, a < 0 ? a + nd : a);
}

static const fern_op_def op_sort = {
    .name = "sort", .n_inputs = 1, .n_outputs = 2, .attrs = sort_attrs, .n_attrs = 2, .grad = sort_grad,
    .infer = sort_infer, .kernel = {[FERN_CPU] = sort_kernel},
    .dtypes = FERN_DT_FLOAT | FERN_DT_INT | FERN_DT(FERN_BOOL), .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "stable sort along axis: values and i64 indices (nan sorts as the largest)"};
static const fern_op_def op_argsort = {
    .name = "argsort", .n_inputs = 1, .n_outputs = 1, .attrs = sort_attrs, .n_attrs = 2,
    .infer = sort_infer, .kernel = {[FERN_CPU] = sort_kernel},
    .dtypes = FERN_DT_FLOAT | FERN_DT_INT | FERN_DT(FERN_BOOL), .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS | FERN_OPF_NONDIFF,
    .doc = "i64 indices that stably sort along axis (nan sorts as the largest)"};

static const fern_attr_spec topk_attrs[] = {{"k", FERN_ATTR_INT, 1, NULL},
                                            {"axis", FERN_ATTR_INT, -1, NULL},
                                            {"largest", FERN_ATTR_INT, 1, NULL},
                                            {"sorted", FERN_ATTR_INT, 1, NULL}};

static int topk_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    char b[128];
    if (x->dtype == FERN_BOOL)
        return fern__err_dtype(c, x, "expected a numeric (not bool) input");
    int a;
    if (sort_axis(c, c->attrs[1].i, &a))
        return -1;
    int64_t n = x->ndim ? x->shape[a] : 1, k = c->attrs[0].i;
    if (k < 0 || k > n) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: k = %lld is out of range for axis %d of size %lld (input %s)",
                       c->op->name, (long long)k, a, (long long)n, fern_tensor_desc(x, b, sizeof b));
        return -1;
    }
    int64_t shape[FERN_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        shape[d] = d == a ? k : x->shape[d];
    fern__set_out(c, 0, x->dtype, x->ndim, shape);
    fern__set_out(c, 1, FERN_I64, x->ndim, shape);
    return 0;
}

static int topk_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int a;
    if (sort_axis(c, c->attrs[1].i, &a))
        return -1;
    sort_job J = {.x = fern_tensor_data(x), .vals = fern_tensor_data(c->out[0]),
                  .idx = fern_tensor_data(c->out[1]), .flag = c->attrs[2].i != 0};
    lines_of(x, a, &J.outer, &J.n, &J.inner);
    /* a 0-d input gives a 0-d output holding its value (k is 0 or 1, like torch) */
    J.k = x->ndim ? c->attrs[0].i : 1;
    range_fn fn = topk_fns[x->dtype];
    if (!fn)
        return fern__err_dtype(c, x, "unsupported dtype");
    return run_lines(c, &J, fn, J.n * log2i(J.k) + J.k * log2i(J.k));
}

static const fern_op_def op_topk = {
    .name = "topk", .n_inputs = 1, .n_outputs = 2, .attrs = topk_attrs, .n_attrs = 4, .grad = topk_grad,
    .infer = topk_infer, .kernel = {[FERN_CPU] = topk_kernel},
    .dtypes = FERN_DT_FLOAT | FERN_DT_INT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "k largest (or smallest) along axis, best first: values and i64 indices; ties go "
           "to the lower index"};

/* ---- public functions -------------------------------------------------- */

/* Run a two-output op in a private scope and hand back the wanted outputs
 * (NULL pointers: that output is released). */
static fern_status run_two(const fern_op_def *op, fern_tensor *x, const fern_attr *attrs,
                           fern_tensor **o0, fern_tensor **o1)
{
    fern_tensor *res[2] = {NULL, NULL};
    if (o0)
        *o0 = NULL;
    if (o1)
        *o1 = NULL;
    fern_scope_begin();
    int rc = fern__op_run(op, 1, &x, attrs, 2, res);
    if (rc == 0) {
        if (o0)
            *o0 = fern_keep(res[0]);
        if (o1)
            *o1 = fern_keep(res[1]);
    }
    fern_scope_end();
    if (rc)
        return fern_last_status() != FERN_OK ? fern_last_status() : FERN_ERR_INVALID;
    return FERN_OK;
}

fern_status fern_sort(fern_tensor *x, int axis, int descending, fern_tensor **values,
                      fern_tensor **indices)
{
    fern_attr a[2] = {fern__attr_int(axis), fern__attr_int(descending)};
    return run_two(&op_sort, x, a, values, indices);
}

fern_tensor *fern_argsort(fern_tensor *x, int axis, int descending)
{
    fern_attr a[2] = {fern__attr_int(axis), fern__attr_int(descending)};
    return fern__op1(&op_argsort, 1, &x, a);
}

fern_status fern_topk(fern_tensor *x, int64_t k, int axis, int largest, int sorted,
                      fern_tensor **values, fern_tensor **indices)
{
    fern_attr a[4] = {fern__attr_int(k), fern__attr_int(axis), fern__attr_int(largest),
                      fern__attr_int(sorted)};
    return run_two(&op_topk, x, a, values, indices);
}

const fern_op_def *const fern_ops_sort[] = {&op_sort, &op_argsort, &op_topk, NULL};
