/* Copy a strided view into a contiguous tensor (see copy_view.h). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "copy_view.h"

typedef struct {
    int nd;
    int64_t shape[FERN_MAX_DIMS], ss[FERN_MAX_DIMS]; /* merged dims, source strides */
    int64_t ds[FERN_MAX_DIMS];                       /* destination (contiguous) strides */
    int u;                                           /* transpose: the unit-stride dim */
    size_t es;
    const char *src; /* element (0, ..., 0) of the view */
    char *dst;
} cv_job;

#define CV_TILE 16

/* dst[0, n) = src[0, -1, ..., -(n-1)] for elements of es bytes */
static void copy_reversed(char *restrict d, const char *restrict s, int64_t n, size_t es)
{
    switch (es) {
    case 4: {
        uint32_t *dd = (uint32_t *)d;
        const uint32_t *sp = (const uint32_t *)s;
        for (int64_t i = 0; i < n; i++)
            dd[i] = sp[-i];
        break;
    }
    case 8: {
        uint64_t *dd = (uint64_t *)d;
        const uint64_t *sp = (const uint64_t *)s;
        for (int64_t i = 0; i < n; i++)
            dd[i] = sp[-i];
        break;
    }
    case 2: {
        uint16_t *dd = (uint16_t *)d;
        const uint16_t *sp = (const uint16_t *)s;
        for (int64_t i = 0; i < n; i++)
            dd[i] = sp[-i];
        break;
    }
    default:
        for (int64_t i = 0; i < n; i++)
            memcpy(d + (size_t)i * es, s - (ptrdiff_t)((size_t)i * es), es);
    }
}

/* the multi-index of outer item r over dims [0, nd) except skip (and the last) */
static void cv_index(const cv_job *j, int64_t r, int skip, int64_t *idx)
{
    for (int d = j->nd - 2; d >= 0; d--) {
        if (d == skip) {
            idx[d] = 0;
            continue;
        }
        idx[d] = r % j->shape[d];
        r /= j->shape[d];
    }
}

/* step the odometer over dims [0, nd - 1) except skip; returns 0 at the end */
static int cv_next(const cv_job *j, int skip, int64_t *idx)
{
    for (int d = j->nd - 2; d >= 0; d--) {
        if (d == skip)
            continue;
        if (++idx[d] < j->shape[d])
            return 1;
        idx[d] = 0;
    }
    return 0;
}

/* rows [begin, end): the innermost dim has source stride +1 or -1 */
static void cv_rows_task(void *ctx, int64_t begin, int64_t end)
{
    const cv_job *j = ctx;
    const int L = j->nd - 1;
    const int64_t n = j->shape[L];
    int64_t idx[FERN_MAX_DIMS] = {0};
    cv_index(j, begin, -1, idx);
    for (int64_t r = begin; r < end; r++) {
        int64_t so = 0;
        for (int d = 0; d < L; d++)
            so += idx[d] * j->ss[d];
        const char *sp = j->src + (ptrdiff_t)so * (ptrdiff_t)j->es;
        char *dp = j->dst + (size_t)(r * n) * j->es;
        if (j->ss[L] == 1)
            memcpy(dp, sp, (size_t)n * j->es);
        else
            copy_reversed(dp, sp, n, j->es);
        cv_next(j, -1, idx);
    }
}

/* items [begin, end) = (outer index over the dims but u and the last, tile
 * of CV_TILE along u): each a blocked transpose of u against the last dim */
static void cv_transpose_task(void *ctx, int64_t begin, int64_t end)
{
    const cv_job *j = ctx;
    const int L = j->nd - 1, u = j->u;
    const int64_t nu = j->shape[u], nl = j->shape[L], ntile = (nu + CV_TILE - 1) / CV_TILE;
    const int64_t sl = j->ss[L], su = j->ss[u];
    const size_t es = j->es;
    int64_t idx[FERN_MAX_DIMS] = {0};
    int64_t outer = begin / ntile;
    cv_index(j, outer, u, idx);
    for (int64_t t = begin; t < end; t++) {
        if (t / ntile != outer) {
            outer = t / ntile;
            cv_next(j, u, idx);
        }
        int64_t so = 0, dof = 0;
        for (int d = 0; d < L; d++)
            if (d != u) {
                so += idx[d] * j->ss[d];
                dof += idx[d] * j->ds[d];
            }
        const int64_t i0 = t % ntile * CV_TILE, i1 = i0 + CV_TILE < nu ? i0 + CV_TILE : nu;
        for (int64_t l0 = 0; l0 < nl; l0 += CV_TILE) {
            const int64_t l1 = l0 + CV_TILE < nl ? l0 + CV_TILE : nl;
            for (int64_t i = i0; i < i1; i++) {
                const char *sp = j->src + (ptrdiff_t)(so + i * su) * (ptrdiff_t)es;
                char *dp = j->dst + (size_t)(dof + i * j->ds[u]) * es;
                if (es == 4)
                    for (int64_t l = l0; l < l1; l++)
                        ((uint32_t *)dp)[l] = *(const uint32_t *)(sp + (ptrdiff_t)(l * sl) * 4);
                else
                    for (int64_t l = l0; l < l1; l++)
                        memcpy(dp + (size_t)l * es, sp + (ptrdiff_t)(l * sl) * (ptrdiff_t)es, es);
            }
        }
    }
}

void fern__copy_view(const fern_tensor *src, fern_tensor *dst)
{
    const int64_t n = fern_tensor_numel(src);
    if (n <= 1 || src->ndim == 0) {
        fern__strided_copy(src, dst);
        return;
    }
    /* merge dims (the destination is contiguous, so any run the source has) */
    cv_job j = {.nd = 0, .es = fern_dtype_size(src->dtype), .u = -1};
    for (int d = 0; d < src->ndim; d++) {
        if (src->shape[d] == 1)
            continue;
        if (j.nd && j.ss[j.nd - 1] == src->strides[d] * src->shape[d]) {
            j.shape[j.nd - 1] *= src->shape[d];
            j.ss[j.nd - 1] = src->strides[d];
        } else {
            j.shape[j.nd] = src->shape[d];
            j.ss[j.nd++] = src->strides[d];
        }
    }
    int64_t st = 1;
    for (int d = j.nd - 1; d >= 0; d--) {
        j.ds[d] = st;
        st *= j.shape[d];
    }
    j.src = (const char *)fern_tensor_data(src);
    j.dst = fern_tensor_data(dst);
    const int L = j.nd - 1;
    const int64_t inner = j.shape[L];
    if (j.ss[L] == 1 || j.ss[L] == -1) {
        fern_parallel_for(n / inner, inner >= 4096 ? 1 : 4096 / inner + 1, cv_rows_task, &j);
        return;
    }
    for (int d = 0; d < L; d++)
        if (j.ss[d] == 1 || j.ss[d] == -1)
            j.u = d;
    if (j.u < 0) {
        fern__strided_copy(src, dst);
        return;
    }
    const int64_t ntile = (j.shape[j.u] + CV_TILE - 1) / CV_TILE;
    const int64_t items = n / (inner * j.shape[j.u]) * ntile;
    fern_parallel_for(items, 4096 / (CV_TILE * inner) + 1, cv_transpose_task, &j);
}

