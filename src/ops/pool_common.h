/* What the pooling family's files share: the window geometry, the checks of
 * inputs and attributes, and the infer/kernel entry points that pool.c's op
 * table names. The family is split by job:
 *   pool.c          op definitions, public functions, gradient rules, the
 *                   list the registry reads (a new op is added there)
 *   pool_geom.c     attribute parsing, output sizes, shape inference
 *   pool_max.c      max_pool2d forward kernels
 *   pool_max_bwd.c  max_pool2d_backward and max_pool2d_indices kernels
 *   pool_max2x2.c   the 2x2 stride-2 case of max_pool2d and its backward
 *   pool_vec.h      the vector types and steps the max kernels share
 *   pool_avg.c      avg_pool2d and adaptive_avg_pool2d kernels, and their
 *                   backward kernels
 * Semantics are torch's throughout (output size formula, ceil_mode,
 * count_include_pad, adaptive start/end indices, NaN propagation). */
#ifndef FERN_POOL_COMMON_H
#define FERN_POOL_COMMON_H

#include "op_def.h"

/* One pooling call over (N, C, H, W) as NC independent planes. */
typedef struct {
    int64_t NC, H, W, OH, OW;
    int64_t kh, kw, sh, sw, ph, pw;
    int ceil_mode, count_include_pad;
} pool_geom;

/* Range of i in [0, n) with 0 <= i*s + off < lim. */
static inline void pool_range(int64_t n, int64_t s, int64_t off, int64_t lim, int64_t *lo,
                              int64_t *hi)
{
    int64_t a = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t b = lim - 1 - off < 0 ? 0 : (lim - 1 - off) / s + 1;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
    if (*hi < *lo)
        *hi = *lo;
}

/* Planes per parallel_for chunk for work ~per_plane element steps each. */
static inline int64_t pool_grain(int64_t per_plane)
{
    return per_plane >= 32768 ? 1 : 32768 / (per_plane > 0 ? per_plane : 1) + 1;
}

/* Divisor of an average window along one axis: with count_include_pad the
 * window clipped to the padded input, otherwise to the input itself. */
static inline int64_t avg_extent(int64_t o, int64_t s, int64_t p, int64_t k, int64_t n,
                                 int include_pad)
{
    int64_t st = o * s - p, en = st + k < n + p ? st + k : n + p;
    if (include_pad)
        return en - st;
    if (st < 0)
        st = 0;
    if (en > n)
        en = n;
    return en > st ? en - st : 0;
}

/* torch's adaptive window [start, end) of output a of b over an input of c */
static inline int64_t ad_start(int64_t a, int64_t b, int64_t c)
{
    return (a / b) * c + ((a % b) * c) / b;
}
static inline int64_t ad_end(int64_t a, int64_t b, int64_t c) { return 1 + ((a + 1) * c - 1) / b; }

/* ---- checks (pool_geom.c); each returns 0, or -1 with an error naming the op */

/* Rank (3 or 4) and dtype of the input; fills NC, H, W. */
int fern__pool_input(fern_op_call *c, pool_geom *g, int float_only);
/* kernel, stride, padding, ceil_mode [, count_include_pad] (attrs 0..4): the
 * window and the output size for g->H, g->W; errors describe `desc`. */
int fern__pool_params(const fern_op_call *c, pool_geom *g, int is_avg, const fern_tensor *desc);
/* fern__pool_input then fern__pool_params on the input */
int fern__pool_setup(fern_op_call *c, pool_geom *g, int is_avg);
/* avg_pool2d_backward: gy's rank/dtype and attribute input_size (H, W) */
int fern__avg_bwd_setup(fern_op_call *c, pool_geom *g);
/* adaptive_avg_pool2d: the input and attribute output_size */
int fern__adaptive_setup(fern_op_call *c, pool_geom *g);
/* adaptive_avg_pool2d_backward: gy (its spatial size is the output size) */
int fern__adaptive_bwd_setup(fern_op_call *c, pool_geom *g);

/* ---- shape inference (pool_geom.c) ---- */
int fern__max_pool_infer(fern_op_call *c);
int fern__avg_pool_infer(fern_op_call *c);
int fern__adaptive_infer(fern_op_call *c);
int fern__max_bwd_infer(fern_op_call *c);
int fern__indices_infer(fern_op_call *c);
int fern__avg_bwd_infer(fern_op_call *c);
int fern__adaptive_bwd_infer(fern_op_call *c);

/* ---- 2x2 stride-2 unpadded max pooling of f32/f64 (pool_max2x2.c) ---- */
int fern__max2x2_applies(const pool_geom *g, fern_dtype dt);
/* forward (gy NULL: out = the maxima) or backward (out = dx) */
void fern__max2x2(const pool_geom *g, fern_dtype dt, const void *x, const void *gy, void *out,
                  int relu);

/* ---- CPU kernels ---- */
int fern__max_pool_kernel(fern_op_call *c);     /* pool_max.c     */
int fern__max_bwd_kernel(fern_op_call *c);      /* pool_max_bwd.c */
int fern__indices_kernel(fern_op_call *c);      /* pool_max_bwd.c */
int fern__avg_pool_kernel(fern_op_call *c);     /* pool_avg.c     */
int fern__avg_bwd_kernel(fern_op_call *c);      /* pool_avg.c     */
int fern__adaptive_kernel(fern_op_call *c);     /* pool_avg.c     */
int fern__adaptive_bwd_kernel(fern_op_call *c); /* pool_avg.c     */

#endif /* FERN_POOL_COMMON_H */
