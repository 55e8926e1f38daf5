/* Gemm through single-threaded BLAS calls, split across fern's pool. See
 * gemm.h for why fern, not the BLAS, owns the threads.
 *
 * f32 goes to oneDNN's sgemm when fern is built with it (FERN_HAVE_DNNL):
 * its JIT kernels use AVX-512 where the CPU has it and are about twice as
 * fast as OpenBLAS's Haswell kernels on the sizes of a training step
 * (64x400x120: 24 us against 53 us on one Zen 5 core), small ones
 * included. f64, and f32 without oneDNN, go to OpenBLAS. */
#include <cblas.h>
#include <pthread.h>

#include "gemm.h"

#if FERN_HAVE_DNNL
#include <dlfcn.h>
#include <dnnl.h>
#include <stdio.h>

/* oneDNN's Debian build runs on OpenMP, which would start its own team of
 * spinning threads next to fern's pool: every oneDNN call runs with the
 * calling thread's OpenMP thread count set to 1, restored afterwards (a
 * program's own OpenMP code keeps its setting). The two functions are
 * looked up at run time (libgomp comes in with libdnnl), so fern needs no
 * OpenMP. */
static void (*omp_set_threads)(int);
static int (*omp_max_threads)(void);
static pthread_once_t omp_once = PTHREAD_ONCE_INIT;

static void omp_lookup(void)
{
    omp_set_threads = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    omp_max_threads = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_max_threads");
    if (!omp_set_threads || !omp_max_threads)
        omp_set_threads = NULL;
}

int fern__omp_single_begin(void)
{
    pthread_once(&omp_once, omp_lookup);
    int prev = omp_set_threads ? omp_max_threads() : 1;
    if (prev != 1)
        omp_set_threads(1);
    return prev;
}

void fern__omp_single_end(int prev)
{
    if (prev != 1)
        omp_set_threads(prev);
}

static int sgemm_onednn(char ta, char tb, int64_t M, int64_t N, int64_t K, const float *A,
                        int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                        int64_t ldc)
{
    int prev = fern__omp_single_begin();
    dnnl_status_t st = dnnl_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    fern__omp_single_end(prev);
    return st == dnnl_success;
}
#endif

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_single(void) { openblas_set_num_threads(1); }

void fern__blas_init(void) { pthread_once(&blas_once, blas_single); }

#if FERN_HAVE_DNNL
static char backend_name[64];
static pthread_once_t backend_once = PTHREAD_ONCE_INIT;
static void backend_describe(void)
{
    const dnnl_version_t *v = dnnl_version();
    snprintf(backend_name, sizeof backend_name, "f32: oneDNN %d.%d.%d, f64: OpenBLAS", v->major,
             v->minor, v->patch);
}
const char *fern_gemm_backend(void)
{
    pthread_once(&backend_once, backend_describe);
    return backend_name;
}
#else
const char *fern_gemm_backend(void) { return "OpenBLAS"; }
#endif

typedef struct {
    fern_dtype dt;
    char ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
    const char *A, *B;
    char *C;
    double beta;
    int split_n;   /* 1: parts are column blocks of C, 0: row blocks */
    int64_t block; /* rows or columns per part */
} gemm_job;

static void gemm_call(const gemm_job *j, int64_t M, int64_t N, const char *A, const char *B, char *C)
{
#if FERN_HAVE_DNNL
    /* below about 24^3 multiply-adds OpenBLAS's lighter call wins (8x8x8:
     * 0.08 us against oneDNN's 0.23) */
    if (j->dt == FERN_F32 && (double)M * (double)N * (double)j->K >= 16384.0 &&
        sgemm_onednn(j->ta, j->tb, M, N, j->K, (const float *)A, j->lda, (const float *)B, j->ldb,
                     (float)j->beta, (float *)C, j->ldc))
        return;
#endif
    enum CBLAS_TRANSPOSE ta = j->ta == 'T' ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = j->tb == 'T' ? CblasTrans : CblasNoTrans;
    if (j->dt == FERN_F32)
        cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)j->K, 1.0f, (const float *)A, (int)j->lda,
                    (const float *)B, (int)j->ldb, (float)j->beta, (float *)C, (int)j->ldc);
    else
        cblas_dgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)j->K, 1.0, (const double *)A, (int)j->lda,
                    (const double *)B, (int)j->ldb, j->beta, (double *)C, (int)j->ldc);
}

static void gemm_part(void *ctx, int64_t begin, int64_t end)
{
    const gemm_job *j = ctx;
    const size_t es = fern_dtype_size(j->dt);
    for (int64_t p = begin; p < end; p++) {
        int64_t lo = p * j->block, hi = lo + j->block;
        if (j->split_n) {
            if (hi > j->N)
                hi = j->N;
            if (lo >= hi)
                continue;
            /* columns lo..hi of op(B): B's columns ('N') or rows ('T') */
            const char *B = j->B + (size_t)(j->tb == 'T' ? lo * j->ldb : lo) * es;
            gemm_call(j, j->M, hi - lo, j->A, B, j->C + (size_t)lo * es);
        } else {
            if (hi > j->M)
                hi = j->M;
            if (lo >= hi)
                continue;
            const char *A = j->A + (size_t)(j->ta == 'T' ? lo : lo * j->lda) * es;
            gemm_call(j, hi - lo, j->N, A, j->B, j->C + (size_t)(lo * j->ldc) * es);
        }
    }
}

/* Below this many multiply-adds a split costs more (a wake-up, and
 * OpenBLAS packing B once per part) than it saves. 2^21 splits LeNet's
 * 64x400x120 fully connected layer and its gradients (about 3M each). */
#define GEMM_SPLIT_MNK ((double)(1 << 21))

void fern__gemm(fern_dtype dt, char ta, char tb, int64_t M, int64_t N, int64_t K, const void *A,
                int64_t lda, const void *B, int64_t ldb, double beta, void *C, int64_t ldc)
{
    fern__blas_init();
    gemm_job j = {dt, ta, tb, M, N, K, lda, ldb, ldc, A, B, C, beta, 0, M};
    if (M <= 0 || N <= 0)
        return;
    int threads = fern_num_threads();
    double work = (double)M * (double)N * (double)K;
    if (threads <= 1 || work < GEMM_SPLIT_MNK || (M < 32 && N < 32)) {
        gemm_call(&j, M, N, j.A, j.B, j.C);
        return;
    }
    /* split the longer side into parts of whole register blocks (16 f32) */
    j.split_n = N >= M;
    int64_t len = j.split_n ? N : M;
    int64_t parts = threads;
    int64_t block = (len + parts - 1) / parts;
    block = (block + 15) / 16 * 16;
    j.block = block;
    parts = (len + block - 1) / block;
    fern_parallel_for(parts, 1, gemm_part, &j);
}
