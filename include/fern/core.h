/*
 * fern/core.h — the core layer: dtypes, tensors (strided views over
 * reference-counted storage), the caching allocator, errors, scopes,
 * the random generator and the thread pool.
 *
 * Ownership rules (apply to every fern function unless its comment says
 * otherwise):
 *   - Tensor arguments are BORROWED: a function never releases its inputs.
 *   - A returned fern_tensor* is a NEW REFERENCE. If a scope is open
 *     (fern_scope_begin), the innermost scope owns it and releases it at
 *     fern_scope_end unless you call fern_keep(t) first. With no scope
 *     open, the caller owns it and calls fern_release(t).
 *   - A NULL tensor argument makes the function return NULL (or an error
 *     status) without overwriting the first recorded error, so a chain
 *     such as fern_relu(fern_add(fern_matmul(x, w), b)) is checked once,
 *     at its end, with fern_last_error() naming the op that failed.
 */
#ifndef FERN_CORE_H
#define FERN_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FERN_MAX_DIMS 8

/* ---- status and errors ------------------------------------------------ */

typedef enum {
    FERN_OK = 0,
    FERN_ERR_INVALID = 1,     /* bad argument: shape, dtype, axis, NULL     */
    FERN_ERR_UNSUPPORTED = 2, /* no kernel for this dtype/backend           */
    FERN_ERR_NOMEM = 3,       /* allocation failed                          */
    FERN_ERR_IO = 4,          /* file or stream error                       */
    FERN_ERR_INTERNAL = 5
} fern_status;

/* The message of the first error recorded on this thread since the last
 * fern_clear_error(), or "" if none. Valid until the next fern call that
 * records an error on this thread. */
const char *fern_last_error(void);
fern_status fern_last_status(void);
void fern_clear_error(void);
/* Record an error (printf-style). Keeps the first error if one is pending. */
void fern_set_error(fern_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- dtypes ------------------------------------------------------------ */

typedef enum {
    FERN_F32 = 0,
    FERN_F64,
    FERN_F16,
    FERN_BF16,
    FERN_I8,
    FERN_U8,
    FERN_I32,
    FERN_I64,
    FERN_BOOL,
    FERN_DTYPE_COUNT
} fern_dtype;

size_t fern_dtype_size(fern_dtype dt);
const char *fern_dtype_name(fern_dtype dt);          /* "f32", "i64", ... */
int fern_dtype_from_name(const char *name, fern_dtype *out); /* 0 on success */
int fern_dtype_is_float(fern_dtype dt);               /* f32 f64 f16 bf16 */
int fern_dtype_is_int(fern_dtype dt);                 /* i8 u8 i32 i64    */
/* NumPy-style promotion of two dtypes (bool < ints < floats). */
fern_dtype fern_dtype_promote(fern_dtype a, fern_dtype b);

/* half-precision conversions (round to nearest even) */
uint16_t fern_f32_to_f16(float f);
float fern_f16_to_f32(uint16_t h);
uint16_t fern_f32_to_bf16(float f);
float fern_bf16_to_f32(uint16_t h);

/* ---- devices ----------------------------------------------------------- */

typedef enum { FERN_CPU = 0, FERN_CUDA = 1, FERN_DEVICE_COUNT } fern_device;
const char *fern_device_name(fern_device d);

/* ---- tensors ----------------------------------------------------------- */

typedef struct fern_tensor fern_tensor;

/* Shape and dtype queries never fail on a valid tensor. */
fern_dtype fern_tensor_dtype(const fern_tensor *t);
int fern_tensor_ndim(const fern_tensor *t);
const int64_t *fern_tensor_shape(const fern_tensor *t);   /* ndim entries */
const int64_t *fern_tensor_strides(const fern_tensor *t); /* in elements  */
int64_t fern_tensor_dim(const fern_tensor *t, int axis);  /* negative ok  */
int64_t fern_tensor_numel(const fern_tensor *t);
size_t fern_tensor_nbytes(const fern_tensor *t);          /* numel * size */
fern_device fern_tensor_device(const fern_tensor *t);
int fern_tensor_is_contiguous(const fern_tensor *t);
/* 1 if the tensor is symbolic (a traced value with no data). */
int fern_tensor_is_symbolic(const fern_tensor *t);
/* Pointer to element [0,...,0] (storage data + offset); NULL if symbolic. */
void *fern_tensor_data(const fern_tensor *t);
/* 1 if a and b view the same storage. */
int fern_tensor_shares_storage(const fern_tensor *a, const fern_tensor *b);

/* Reference counting. retain returns t for chaining; release(NULL) is ok. */
fern_tensor *fern_retain(fern_tensor *t);
void fern_release(fern_tensor *t);
int fern_tensor_refcount(const fern_tensor *t);

/* Uninitialized contiguous tensor. */
fern_tensor *fern_empty(fern_dtype dt, int ndim, const int64_t *shape);
/* Copy `data` (contiguous, row-major, of dtype dt) into a new tensor. */
fern_tensor *fern_from_data(fern_dtype dt, int ndim, const int64_t *shape, const void *data);
/* Wrap a user buffer without copying. The tensor never frees `data`;
 * `deleter(data, ctx)` (may be NULL) is called when the last view dies. */
fern_tensor *fern_from_buffer(fern_dtype dt, int ndim, const int64_t *shape, void *data,
                              void (*deleter)(void *data, void *ctx), void *ctx);
/* 0-d tensor holding one value converted to dt. */
fern_tensor *fern_scalar(fern_dtype dt, double value);

/* Element access for tests and tools (slow; converts through double). */
double fern_tensor_get(const fern_tensor *t, const int64_t *index);
int fern_tensor_set(fern_tensor *t, const int64_t *index, double value);
/* Element `i` of the tensor in row-major logical order, as double. */
double fern_tensor_get_flat(const fern_tensor *t, int64_t i);
/* Copy the tensor's elements in logical row-major order into dst (of the
 * tensor's own dtype), handling any strides. Returns FERN_OK or an error. */
fern_status fern_tensor_copy_to(const fern_tensor *t, void *dst, size_t dst_bytes);
/* Copy src's elements into dst (same shape; dtypes may differ: converted). */
fern_status fern_tensor_assign(fern_tensor *dst, const fern_tensor *src);

/* Printable description like "f32[2,3]" into buf; returns buf. */
char *fern_tensor_desc(const fern_tensor *t, char *buf, size_t n);
/* Print values (NumPy-like, abbreviated when large) to stdout. */
void fern_tensor_print(const fern_tensor *t, const char *name);

/* ---- scopes ------------------------------------------------------------ */

/* Tensors created while a scope is open belong to the innermost scope and
 * are released by fern_scope_end. Scopes nest and are per thread. */
void fern_scope_begin(void);
void fern_scope_end(void);
/* Move t out of the innermost scope: to the enclosing scope if there is
 * one, else to the caller (who must fern_release it). Returns t. */
fern_tensor *fern_keep(fern_tensor *t);
int fern_scope_depth(void);

/* ---- allocator --------------------------------------------------------- */

typedef struct {
    size_t current_bytes;  /* live bytes handed out                    */
    size_t peak_bytes;     /* max of current_bytes since reset         */
    size_t cached_bytes;   /* bytes held in the free cache             */
    uint64_t n_allocs;     /* total allocation requests                */
    uint64_t n_cache_hits; /* requests served from the cache           */
} fern_alloc_stats;

fern_alloc_stats fern_alloc_get_stats(fern_device d);
void fern_alloc_reset_peak(fern_device d);
/* Return cached blocks to the system. */
void fern_alloc_empty_cache(fern_device d);
/* Raw 64-byte-aligned buffers from the caching pool. */
void *fern_alloc(fern_device d, size_t nbytes);
void fern_free(fern_device d, void *p, size_t nbytes);

/* ---- random ------------------------------------------------------------ */

/* fern's generator is counter based (Philox4x32-10): element i of a random
 * tensor depends only on (seed, draw counter, i), never on thread count.
 * The generator state is per thread; fern_seed sets this thread's seed. */
void fern_seed(uint64_t seed);
uint64_t fern_get_seed(void);
/* Each random op advances the draw counter by one; save/restore it for
 * reproducible resumption. */
uint64_t fern_rng_offset(void);
void fern_rng_set_offset(uint64_t offset);

/* ---- threads ----------------------------------------------------------- */

/* Number of worker threads for kernels (FERN_NUM_THREADS env, default:
 * number of online CPUs). */
int fern_num_threads(void);
void fern_set_num_threads(int n);
/* Which libraries compute fern's matrix products, e.g. "f32: oneDNN 2.6.3,
 * f64: OpenBLAS" (a static string). */
const char *fern_gemm_backend(void);
/* Run fn(ctx, begin, end) over [0, n) split in chunks of at least `grain`
 * iterations across the pool. Runs inline when n < 2*grain or one thread. */
void fern_parallel_for(int64_t n, int64_t grain,
                       void (*fn)(void *ctx, int64_t begin, int64_t end), void *ctx);

/* Library version string. */
const char *fern_version(void);

#ifdef __cplusplus
}
#endif
#endif /* FERN_CORE_H */
