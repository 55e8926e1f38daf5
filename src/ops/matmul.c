/* matmul with numpy.matmul semantics: 1-D operands are promoted to a row
 * (left) or a column (right) and that dim is dropped from the result; the
 * batch dims (all but the last two) broadcast.
 *
 * f32/f64 go through OpenBLAS. Each operand matrix is passed to gemm as it
 * lies in memory when its inner stride is 1 (NoTrans, lda = row stride) or
 * its row stride is 1 (Trans, lda = column stride); only an operand that fits
 * neither layout is copied. A batch whose right operand is the same matrix
 * for every batch entry and whose left operand's rows are evenly spaced is
 * folded into one (B*M, K) @ (K, N) gemm. Rows/columns of size 1 go to gemv.
 * Batches of small gemms (which OpenBLAS runs on one thread) are spread over
 * fern's thread pool; large ones run one after the other and OpenBLAS threads
 * each of them.
 *
 * i32/i64 use a blocked loop with wrap-around (two's complement) arithmetic
 * like numpy; f16/bf16 are computed in f32 by the dispatcher. */
#include <cblas.h>
#include <stdio.h>
#include <string.h>

#include "../backend/cpu/gemm.h"
#include "op_def.h"

/* ---- inference --------------------------------------------------------- */

static int matmul_dtype_ok(fern_dtype d)
{
    return d == FERN_F32 || d == FERN_F64 || d == FERN_F16 || d == FERN_BF16 || d == FERN_I32 ||
           d == FERN_I64;
}

static int matmul_infer(fern_op_call *c)
{
    const fern_tensor *a = c->in[0], *b = c->in[1];
    char da[128], db[128];
    if (a->ndim == 0 || b->ndim == 0) {
        fern_set_error(FERN_ERR_INVALID,
                       "matmul: operands must have at least 1 dimension, got %s @ %s",
                       fern_tensor_desc(a, da, sizeof da), fern_tensor_desc(b, db, sizeof db));
        return -1;
    }
    if (!matmul_dtype_ok(a->dtype))
        return fern__err_dtype(c, a, "expected dtype f32, f64, f16, bf16, i32 or i64");
    if (!matmul_dtype_ok(b->dtype))
        return fern__err_dtype(c, b, "expected dtype f32, f64, f16, bf16, i32 or i64");
    if (a->dtype != b->dtype) {
        fern_set_error(FERN_ERR_INVALID, "matmul: operands must have the same dtype, got %s @ %s",
                       fern_tensor_desc(a, da, sizeof da), fern_tensor_desc(b, db, sizeof db));
        return -1;
    }
    int64_t ka = a->shape[a->ndim - 1];
    int64_t kb = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2];
    if (ka != kb) {
        fern_set_error(FERN_ERR_INVALID,
                       "matmul: inner dimensions do not match: %s @ %s (%lld vs %lld)",
                       fern_tensor_desc(a, da, sizeof da), fern_tensor_desc(b, db, sizeof db),
                       (long long)ka, (long long)kb);
        return -1;
    }
    int abd = a->ndim > 2 ? a->ndim - 2 : 0, bbd = b->ndim > 2 ? b->ndim - 2 : 0;
    int nbd = abd > bbd ? abd : bbd;
    int64_t *out = c->out_shape[0];
    for (int d = 0; d < nbd; d++) {
        int ad = d - (nbd - abd), bd = d - (nbd - bbd);
        int64_t sa = ad >= 0 ? a->shape[ad] : 1, sb = bd >= 0 ? b->shape[bd] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            fern_set_error(FERN_ERR_INVALID,
                           "matmul: batch dimensions cannot be broadcast together: %s @ %s",
                           fern_tensor_desc(a, da, sizeof da), fern_tensor_desc(b, db, sizeof db));
            return -1;
        }
        out[d] = sa == 1 ? sb : sa;
    }
    int nd = nbd;
    if (a->ndim >= 2)
        out[nd++] = a->shape[a->ndim - 2];
    if (b->ndim >= 2)
        out[nd++] = b->shape[b->ndim - 1];
    c->out_ndim[0] = nd;
    c->out_dtype[0] = a->dtype;
    return 0;
}

/* ---- geometry shared by the kernels ------------------------------------ */

typedef struct {
    int64_t M, N, K;
    int nbd;                        /* batch dims of the output             */
    int64_t bshape[FERN_MAX_DIMS];  /* batch shape                          */
    int64_t abs_[FERN_MAX_DIMS];    /* a's batch strides (0 where broadcast) */
    int64_t bbs[FERN_MAX_DIMS];     /* b's batch strides                     */
    int64_t nbatch;
    int64_t ars, acs;               /* a's row / column strides              */
    int64_t brs, bcs;               /* b's row / column strides              */
} mm_geom;

static void mm_geometry(const fern_tensor *a, const fern_tensor *b, const fern_tensor *out,
                        mm_geom *g)
{
    g->K = a->shape[a->ndim - 1];
    g->M = a->ndim >= 2 ? a->shape[a->ndim - 2] : 1;
    g->N = b->ndim >= 2 ? b->shape[b->ndim - 1] : 1;
    g->acs = a->strides[a->ndim - 1];
    g->ars = a->ndim >= 2 ? a->strides[a->ndim - 2] : 0;
    if (b->ndim >= 2) {
        g->brs = b->strides[b->ndim - 2];
        g->bcs = b->strides[b->ndim - 1];
    } else {
        g->brs = b->strides[0];
        g->bcs = 0;
    }
    g->nbd = out->ndim - (a->ndim >= 2) - (b->ndim >= 2);
    int abd = a->ndim > 2 ? a->ndim - 2 : 0, bbd = b->ndim > 2 ? b->ndim - 2 : 0;
    g->nbatch = 1;
    for (int d = 0; d < g->nbd; d++) {
        int ad = d - (g->nbd - abd), bd = d - (g->nbd - bbd);
        g->bshape[d] = out->shape[d];
        g->abs_[d] = ad >= 0 && a->shape[ad] != 1 ? a->strides[ad] : 0;
        g->bbs[d] = bd >= 0 && b->shape[bd] != 1 ? b->strides[bd] : 0;
        g->nbatch *= out->shape[d];
    }
}

/* Element offsets of batch entry `i` in a and b. */
static void mm_batch_offsets(const mm_geom *g, int64_t i, int64_t *oa, int64_t *ob)
{
    int64_t ra = 0, rb = 0;
    for (int d = g->nbd - 1; d >= 0; d--) {
        int64_t idx = i % g->bshape[d];
        i /= g->bshape[d];
        ra += idx * g->abs_[d];
        rb += idx * g->bbs[d];
    }
    *oa = ra;
    *ob = rb;
}

/* How a rows x cols matrix with strides (rs, cs) can be handed to BLAS:
 * 'N' (row-major, lda = rs), 'T' (its transpose is row-major, lda = cs),
 * or 0 when neither. */
static char blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, int64_t *ld)
{
    int64_t mc = cols > 1 ? cols : 1, mr = rows > 1 ? rows : 1;
    if ((cs == 1 || cols == 1) && (rows == 1 || rs >= mc)) {
        *ld = rows == 1 ? mc : rs;
        return 'N';
    }
    if ((rs == 1 || rows == 1) && (cols == 1 || cs >= mr)) {
        *ld = cols == 1 ? mr : cs;
        return 'T';
    }
    return 0;
}

/* ---- float gemm -------------------------------------------------------- */

typedef struct {
    fern_dtype dt;
    char ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
} gemm_desc;

/* C (M x N, row stride ldc) = op(A) @ op(B). */
static void gemm_run(const gemm_desc *d, const void *A, const void *B, void *C)
{
    const int M = (int)d->M, N = (int)d->N, K = (int)d->K;
    const int lda = (int)d->lda, ldb = (int)d->ldb, ldc = (int)d->ldc;
    fern__blas_init();
    if (N == 1 && ldc == 1) {
        /* y = op(A) x, x = the column of op(B) */
        int incx = d->tb == 'T' ? 1 : ldb;
        if (d->dt == FERN_F32) {
            if (d->ta == 'T')
                cblas_sgemv(CblasRowMajor, CblasTrans, K, M, 1.0f, A, lda, B, incx, 0.0f, C, 1);
            else
                cblas_sgemv(CblasRowMajor, CblasNoTrans, M, K, 1.0f, A, lda, B, incx, 0.0f, C, 1);
        } else {
            if (d->ta == 'T')
                cblas_dgemv(CblasRowMajor, CblasTrans, K, M, 1.0, A, lda, B, incx, 0.0, C, 1);
            else
                cblas_dgemv(CblasRowMajor, CblasNoTrans, M, K, 1.0, A, lda, B, incx, 0.0, C, 1);
        }
        return;
    }
    if (M == 1) {
        /* y = op(B)^T x, x = the row of op(A) */
        int incx = d->ta == 'T' ? lda : 1;
        if (d->dt == FERN_F32) {
            if (d->tb == 'T')
                cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, B, ldb, A, incx, 0.0f, C, 1);
            else
                cblas_sgemv(CblasRowMajor, CblasTrans, K, N, 1.0f, B, ldb, A, incx, 0.0f, C, 1);
        } else {
            if (d->tb == 'T')
                cblas_dgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0, B, ldb, A, incx, 0.0, C, 1);
            else
                cblas_dgemv(CblasRowMajor, CblasTrans, K, N, 1.0, B, ldb, A, incx, 0.0, C, 1);
        }
        return;
    }
    fern__gemm(d->dt, d->ta, d->tb, M, N, K, A, lda, B, ldb, 0.0, C, ldc);
}

typedef struct {
    const gemm_desc *d;
    const mm_geom *g;
    const char *a, *b;
    char *c;
    size_t es;
} gemm_batch_job;

static void gemm_batch_range(void *ctx, int64_t begin, int64_t end)
{
    const gemm_batch_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        int64_t oa, ob;
        mm_batch_offsets(j->g, i, &oa, &ob);
        gemm_run(j->d, j->a + (size_t)oa * j->es, j->b + (size_t)ob * j->es,
                 j->c + (size_t)(i * j->g->M * j->g->N) * j->es);
    }
}

/* Rows of a over (batch dims, M) as one evenly spaced sequence: returns 1
 * and the stride when they are (b must then be the same for every batch). */
static int fold_rows(const mm_geom *g, int64_t *row_stride)
{
    int64_t sizes[FERN_MAX_DIMS + 1], strides[FERN_MAX_DIMS + 1];
    int n = 0;
    for (int d = 0; d < g->nbd; d++) {
        if (g->bbs[d] != 0 && g->bshape[d] != 1)
            return 0; /* b differs across the batch */
        if (g->bshape[d] != 1) {
            if (g->abs_[d] == 0)
                return 0; /* a broadcast over this dim: rows repeat */
            sizes[n] = g->bshape[d];
            strides[n++] = g->abs_[d];
        }
    }
    if (g->M != 1) {
        sizes[n] = g->M;
        strides[n++] = g->ars;
    }
    if (n == 0) {
        *row_stride = 0;
        return 1;
    }
    int64_t expect = strides[n - 1] * sizes[n - 1];
    for (int k = n - 2; k >= 0; k--) {
        if (strides[k] != expect)
            return 0;
        expect *= sizes[k];
    }
    *row_stride = strides[n - 1];
    return 1;
}

static fern_tensor *contiguous_copy(const fern_tensor *t)
{
    fern_tensor *c = fern__tensor_alloc(t->dtype, t->ndim, t->shape, FERN_CPU);
    if (c)
        fern__strided_copy(t, c);
    return c;
}

static int matmul_float(const fern_tensor *a, const fern_tensor *b, fern_tensor *out)
{
    fern_tensor *ac = NULL, *bc = NULL;
    mm_geom g;
    mm_geometry(a, b, out, &g);
    gemm_desc d = {.dt = a->dtype, .M = g.M, .N = g.N, .K = g.K, .ldc = g.N};
    d.ta = blas_layout(g.M, g.K, g.ars, g.acs, &d.lda);
    d.tb = blas_layout(g.K, g.N, g.brs, g.bcs, &d.ldb);
    if (!d.ta) {
        if (!(ac = contiguous_copy(a)))
            return -1;
        a = ac;
    }
    if (!d.tb) {
        if (!(bc = contiguous_copy(b))) {
            fern_release(ac);
            return -1;
        }
        b = bc;
    }
    if (ac || bc) {
        mm_geometry(a, b, out, &g);
        d.ta = blas_layout(g.M, g.K, g.ars, g.acs, &d.lda);
        d.tb = blas_layout(g.K, g.N, g.brs, g.bcs, &d.ldb);
    }
    size_t es = fern_dtype_size(a->dtype);
    const char *pa = fern_tensor_data(a), *pb = fern_tensor_data(b);
    char *pc = fern_tensor_data(out);

    int64_t rs;
    gemm_desc fd = d;
    if (g.nbatch > 1 && fold_rows(&g, &rs)) {
        /* (batch * M, K) @ (K, N) in one call, when a's rows still fit BLAS */
        int64_t R = g.nbatch * g.M;
        fd.M = R;
        fd.ta = blas_layout(R, g.K, rs, g.acs, &fd.lda);
        if (fd.ta) {
            gemm_run(&fd, pa, pb, pc);
            g.nbatch = 0;
        }
    }
    if (g.nbatch == 1) {
        gemm_run(&d, pa, pb, pc);
    } else if (g.nbatch > 1) {
        gemm_batch_job j = {&d, &g, pa, pb, pc, es};
        /* small products: one per thread at a time; large ones split inside */
        double work = (double)g.M * (double)g.N * (double)g.K;
        int64_t grain = work >= 32768 ? 1 : (int64_t)(32768 / (work + 1)) + 1;
        fern_parallel_for(g.nbatch, grain, gemm_batch_range, &j);
    }
    fern_release(ac);
    fern_release(bc);
    return 0;
}

/* ---- integer matmul ---------------------------------------------------- */

#define MM_KB 128
#define MM_NB 512

/* C rows [r0, r1) of the batch-flattened (nbatch * M, N) output. Unsigned
 * arithmetic gives numpy's wrap-around without signed overflow. */
#define DEFINE_INT_MM(NAME, UT)                                                                   \
    static void NAME(const mm_geom *g, const UT *A, const UT *B, UT *C, int64_t r0, int64_t r1)   \
    {                                                                                             \
        const int64_t M = g->M, N = g->N, K = g->K;                                               \
        for (int64_t r = r0; r < r1;) {                                                           \
            int64_t bi = r / M, m0 = r % M;                                                       \
            int64_t m1 = M < m0 + (r1 - r) ? M : m0 + (r1 - r);                                   \
            int64_t oa, ob;                                                                       \
            mm_batch_offsets(g, bi, &oa, &ob);                                                    \
            const UT *a = A + oa, *b = B + ob;                                                    \
            UT *c = C + bi * M * N;                                                               \
            for (int64_t m = m0; m < m1; m++)                                                     \
                memset(c + m * N, 0, (size_t)N * sizeof(UT));                                     \
            for (int64_t j0 = 0; j0 < N; j0 += MM_NB) {                                           \
                int64_t j1 = j0 + MM_NB < N ? j0 + MM_NB : N;                                     \
                for (int64_t k0 = 0; k0 < K; k0 += MM_KB) {                                       \
                    int64_t k1 = k0 + MM_KB < K ? k0 + MM_KB : K;                                 \
                    for (int64_t m = m0; m < m1; m++) {                                           \
                        UT *restrict crow = c + m * N;                                            \
                        const UT *arow = a + m * K;                                               \
                        for (int64_t k = k0; k < k1; k++) {                                       \
                            const UT av = arow[k];                                                \
                            const UT *restrict brow = b + k * N;                                  \
                            for (int64_t j = j0; j < j1; j++)                                     \
                                crow[j] += av * brow[j];                                          \
                        }                                                                         \
                    }                                                                             \
                }                                                                                 \
            }                                                                                     \
            r += m1 - m0;                                                                         \
        }                                                                                         \
    }

DEFINE_INT_MM(int_mm_u32, uint32_t)
DEFINE_INT_MM(int_mm_u64, uint64_t)

typedef struct {
    const mm_geom *g;
    const void *a, *b;
    void *c;
    int wide;
} int_mm_job;

static void int_mm_range(void *ctx, int64_t begin, int64_t end)
{
    const int_mm_job *j = ctx;
    if (j->wide)
        int_mm_u64(j->g, j->a, j->b, j->c, begin, end);
    else
        int_mm_u32(j->g, j->a, j->b, j->c, begin, end);
}

static int matmul_int(const fern_tensor *a, const fern_tensor *b, fern_tensor *out)
{
    fern_tensor *ac = NULL, *bc = NULL;
    if (!fern_tensor_is_contiguous(a) && !(a = ac = contiguous_copy(a)))
        return -1;
    if (!fern_tensor_is_contiguous(b) && !(b = bc = contiguous_copy(b))) {
        fern_release(ac);
        return -1;
    }
    mm_geom g;
    mm_geometry(a, b, out, &g);
    int_mm_job j = {&g, fern_tensor_data(a), fern_tensor_data(b), fern_tensor_data(out),
                    a->dtype == FERN_I64};
    int64_t rows = g.nbatch * g.M;
    double per_row = (double)g.N * (double)g.K + 1;
    int64_t grain = per_row >= 65536 ? 1 : (int64_t)(65536 / per_row) + 1;
    fern_parallel_for(rows, grain, int_mm_range, &j);
    fern_release(ac);
    fern_release(bc);
    return 0;
}

static int matmul_kernel(fern_op_call *c)
{
    const fern_tensor *a = c->in[0], *b = c->in[1];
    fern_tensor *out = c->out[0];
    if (a->shape[a->ndim - 1] == 0) { /* empty sum */
        memset(fern_tensor_data(out), 0, fern_tensor_nbytes(out));
        return 0;
    }
    if (a->dtype == FERN_F32 || a->dtype == FERN_F64)
        return matmul_float(a, b, out);
    return matmul_int(a, b, out);
}

/* ---- gradient ---------------------------------------------------------
 * With a and b promoted to matrices (a 1-D a is a row (1, K), a 1-D b a
 * column (K, 1)) and g given both matrix dims back:
 *   ga = g @ b^T, gb = a^T @ g,
 * summed over the batch dims that broadcasting added or expanded, then
 * reshaped to the operand's own shape. When b has no batch (x @ W of a
 * linear layer over a batch of sequences), gb is one (K, rows) @ (rows, N)
 * gemm over the batch-flattened rows instead of a batch of products summed
 * afterwards. Transposes are views: the kernel hands them to BLAS as Trans.
 * Integer matmul is not differentiable (no gradient). */

/* Whether any tape tracks t (carries a mark): a cotangent for an input no
 * tape tracks is dropped by every tape, so the rule need not compute it
 * (the model's data input of a first layer). In graph mode dead-code
 * elimination would drop it anyway; in pynative mode this saves the work. */
static int wants_grad(const fern_tensor *t) { return t && t->autograd != NULL; }

static int64_t lead_numel(const fern_tensor *t, int keep)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim - keep; d++)
        n *= t->shape[d];
    return n;
}

static int matmul_grad(const fern_op_call *c, fern_tensor *const *gout, fern_tensor **gi)
{
    fern_tensor *a = c->in[0], *b = c->in[1], *g = gout[0];
    if (!g || !fern_dtype_is_float(a->dtype))
        return 0;
    const int need_a = wants_grad(a), need_b = wants_grad(b);
    if (!need_a && !need_b)
        return 0;
    const int64_t K = a->shape[a->ndim - 1];
    fern_tensor *a2 = a, *b2 = b, *g2 = g;
    if (a->ndim == 1) {
        int64_t s[2] = {1, K};
        a2 = fern_reshape(a, 2, s);
    }
    if (b->ndim == 1) {
        int64_t s[2] = {K, 1};
        b2 = fern_reshape(b, 2, s);
    }
    if (!a2 || !b2)
        return -1;
    const int64_t M = a2->shape[a2->ndim - 2], N = b2->shape[b2->ndim - 1];
    if (a->ndim == 1 || b->ndim == 1) { /* give g its squeezed matrix dims back */
        int nbd = g->ndim - (a->ndim >= 2) - (b->ndim >= 2);
        int64_t s[FERN_MAX_DIMS];
        for (int d = 0; d < nbd; d++)
            s[d] = g->shape[d];
        s[nbd] = M;
        s[nbd + 1] = N;
        if (!(g2 = fern_reshape(g, nbd + 2, s)))
            return -1;
    }
    if (need_a) {
        fern_tensor *ga = fern_matmul(g2, fern_transpose(b2, -1, -2));
        ga = fern__sum_to(ga, a2);
        gi[0] = ga ? fern_reshape(ga, a->ndim, a->shape) : NULL;
        if (!gi[0])
            return -1;
    }
    if (need_b) {
        fern_tensor *gb;
        if (lead_numel(b2, 2) == 1 && g2->ndim > 2) {
            /* b is one matrix for the whole batch: a single gemm over the
             * rows of every batch entry (a's batch then equals g's) */
            int64_t R = lead_numel(a2, 1);
            int64_t sa[2] = {R, K}, sg[2] = {R, N};
            gb = fern_matmul(fern_transpose(fern_reshape(a2, 2, sa), 0, 1),
                             fern_reshape(g2, 2, sg));
        } else {
            gb = fern__sum_to(fern_matmul(fern_transpose(a2, -1, -2), g2), b2);
        }
        gi[1] = gb ? fern_reshape(gb, b->ndim, b->shape) : NULL;
        if (!gi[1])
            return -1;
    }
    return 0;
}

static const fern_op_def op_matmul = {
    .name = "matmul", .n_inputs = 2, .n_outputs = 1, .infer = matmul_infer,
    .kernel = {[FERN_CPU] = matmul_kernel},
    .dtypes = FERN_DT_FLOAT | FERN_DT(FERN_I32) | FERN_DT(FERN_I64), .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32,
    .doc = "numpy.matmul: 1-D operands promoted, batch dims broadcast (f32/f64 via BLAS)",
    .grad = matmul_grad};

fern_tensor *fern_matmul(fern_tensor *a, fern_tensor *b)
{
    fern_tensor *in[2] = {a, b};
    return fern__op1(&op_matmul, 2, in, NULL);
}

const fern_op_def *const fern_ops_matmul[] = {&op_matmul, NULL};
