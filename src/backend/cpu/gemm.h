/* fern's one entry to BLAS gemm. OpenBLAS runs single-threaded inside fern
 * and fern splits large products across its own pool: two pools of busy
 * threads on the same cores (OpenBLAS's idle workers spin in sched_yield)
 * slowed every small op that ran between gemms, and fern's pool decides
 * parallelism for all kernels in one place (FERN_NUM_THREADS). */
#ifndef FERN_CPU_GEMM_H
#define FERN_CPU_GEMM_H

#include "../../core/internal.h"

/* Row-major C (M x N, row stride ldc) = op(A) op(B) + beta C, with op(X)
 * X ('N') or its transpose ('T') and lda/ldb the row strides of A and B as
 * stored. f32 or f64 (dt). beta 0 ignores C's old contents (nan included).
 * Splits over fern's thread pool when the product is large enough; safe to
 * call from inside a parallel region (it then runs on the calling thread). */
void fern__gemm(fern_dtype dt, char ta, char tb, int64_t M, int64_t N, int64_t K, const void *A,
                int64_t lda, const void *B, int64_t ldb, double beta, void *C, int64_t ldc);

#if FERN_HAVE_DNNL
/* Around every oneDNN call: this thread's OpenMP thread count set to 1
 * (fern's pool owns the parallelism; see gemm.c), and restored with the
 * value begin returned. */
int fern__omp_single_begin(void);
void fern__omp_single_end(int prev);
#endif

/* Make OpenBLAS single-threaded (once per process; cheap afterwards). Every
 * direct cblas caller in fern runs this first. */
void fern__blas_init(void);

#endif
