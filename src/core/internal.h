/* Internal layout of tensors and storage, shared by the layers of libfern.
 * Nothing here is part of the public API. */
#ifndef FERN_CORE_INTERNAL_H
#define FERN_CORE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "fern/core.h"

typedef struct fern_storage {
    atomic_int refcount;
    void *data;
    size_t nbytes;
    fern_device device;
    int pooled; /* 1: came from fern_alloc and goes back to it */
    void (*deleter)(void *data, void *ctx);
    void *deleter_ctx;
} fern_storage;

struct fern_tensor {
    atomic_int refcount;
    fern_dtype dtype;
    int ndim;
    int64_t shape[FERN_MAX_DIMS];
    int64_t strides[FERN_MAX_DIMS]; /* in elements */
    int64_t offset;                 /* in elements, into storage */
    fern_storage *storage;          /* NULL for a symbolic (traced) tensor */
    /* Slots for the layers above core; core only frees them. */
    void *sym;                          /* runtime: graph being traced     */
    int sym_value;                      /* runtime: value id in that graph */
    uint64_t serial;                    /* creation order (process-wide)   */
    void *autograd;                     /* autodiff: tape entry / grad info */
    void (*autograd_free)(void *autograd);
};

/* Allocate a tensor header (refcount 1, no storage, contiguous strides).
 * Does not register it in a scope. */
fern_tensor *fern__tensor_header(fern_dtype dt, int ndim, const int64_t *shape);
/* New contiguous tensor with fresh pooled storage; not registered. */
fern_tensor *fern__tensor_alloc(fern_dtype dt, int ndim, const int64_t *shape, fern_device dev);
/* A view of base's storage with the given geometry; not registered. */
fern_tensor *fern__tensor_view(const fern_tensor *base, int ndim, const int64_t *shape,
                               const int64_t *strides, int64_t offset);
/* The serial the next tensor will get (tensors created from now on have
 * serial >= this value). */
uint64_t fern__tensor_serial_next(void);
/* While detached (delta +1 ... -1), new tensors are not registered in any
 * scope: the graph executor manages its values' references itself. */
void fern__scope_detach(int delta);
/* Register a new tensor in the innermost scope (no-op without a scope). */
fern_tensor *fern__scope_register(fern_tensor *t);

void fern__contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
int64_t fern__numel(int ndim, const int64_t *shape);
/* Normalize a possibly negative axis; -1 (with error set) when out of range. */
int fern__norm_axis(const char *op, int axis, int ndim);
/* "[2,3,4]" */
char *fern__shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

/* Copy the logical elements of src (any strides) to dst (any strides),
 * same shape and dtype. Multi-threaded for large tensors. */
void fern__strided_copy(const fern_tensor *src, fern_tensor *dst);
/* Convert n contiguous elements between dtypes. */
void fern__convert(const void *src, fern_dtype sdt, void *dst, fern_dtype ddt, int64_t n);
/* Read/write one element as double. */
double fern__load(const void *p, fern_dtype dt);
void fern__store(void *p, fern_dtype dt, double v);

/* Read a whole file into a malloc'ed buffer (one extra byte, for a NUL):
 * FERN_OK, or an error naming `who` and the file (and the offset of a read
 * error). */
int fern__read_file(const char *path, const char *who, unsigned char **out, size_t *n);

/* Philox4x32-10: 4 random 32-bit words for counter (ctr_hi, ctr_lo) and key. */
void fern__philox(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo, uint32_t out[4]);
/* Per-thread generator state (seed, offset), advanced by one per random op. */
void fern__rng_next(uint64_t *seed, uint64_t *offset);
/* 1 if fern__rng_next ran since the last call (then clears the flag): tells
 * a random op's call whether its seed came from the generator (a traced node
 * then draws afresh at every run) or was pinned by the caller. */
int fern__rng_take_drawn(void);

/* OpenBLAS single-threaded, once (src/backend/cpu/gemm.c): fern's pool
 * owns the threads. */
void fern__blas_init(void);

#endif
