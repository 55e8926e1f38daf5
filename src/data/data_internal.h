/* Internals of the data layer (src/data): rows, dataset nodes and their
 * per-pass states, the deterministic random streams, file helpers and the
 * image view used by the transforms. Nothing here is public API. */
#ifndef FERN_DATA_INTERNAL_H
#define FERN_DATA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "core/internal.h"
#include "fern/data.h"

/* ---- rows ---------------------------------------------------------------- */

/* Column names are interned (process-wide, never freed) so rows move by
 * pointer copies. */
struct fern_row {
    int n;
    const char *names[FERN_ROW_MAX_COLS];
    fern_tensor *cols[FERN_ROW_MAX_COLS];
};

/* Interned copy of s (NULL with an error if too long / out of memory). */
const char *fern__intern(const char *s);
/* Validate a user column name: 1..FERN_COL_NAME_MAX-1 bytes. */
int fern__check_col_name(const char *who, const char *name);
/* Move src's columns into dst (dst cleared first); src becomes empty. */
void fern__row_move(fern_row *dst, fern_row *src);
/* Append (no name check, takes ownership of t). */
void fern__row_push(fern_row *row, const char *interned, fern_tensor *t);
void fern__row_init(fern_row *row);

/* ---- random streams -------------------------------------------------------- */

uint64_t fern__mix64(uint64_t x);              /* splitmix64 finalizer     */
uint64_t fern__mix2(uint64_t a, uint64_t b);   /* hash of a pair           */

typedef struct {
    uint64_t key, ctr;
    uint32_t buf[4];
    int pos;
} fern__drng;

void fern__drng_init(fern__drng *r, uint64_t seed);
uint32_t fern__drng_u32(fern__drng *r);
double fern__drng_uniform(fern__drng *r);          /* [0, 1), 53 bits      */
double fern__drng_range(fern__drng *r, double lo, double hi);
int64_t fern__drng_below(fern__drng *r, int64_t n); /* [0, n), n >= 1      */

/* ---- dataset nodes and states ------------------------------------------------ */

/* Shared by every state of one iterator run. */
typedef struct fern__dctx {
    uint64_t seed;
    atomic_int cancel;
    pthread_mutex_t lock; /* guards wakers */
    struct fern__waker {
        pthread_mutex_t *m;
        pthread_cond_t *c;
    } *wakers;
    int n_wakers, cap_wakers;
} fern__dctx;

/* Register a (mutex, cond) pair that cancellation must wake. */
int fern__dctx_add_waker(fern__dctx *ctx, pthread_mutex_t *m, pthread_cond_t *c);
void fern__dctx_remove_waker(fern__dctx *ctx, pthread_cond_t *c);

/* Returned by states when the iterator cancels the run (never to users). */
#define FERN__CANCELLED 99

typedef struct fern__dstate fern__dstate;
typedef struct {
    /* Next row of the pass into out (empty on entry): FERN_OK, FERN_DATA_END
     * or an error status (error recorded on the calling thread). */
    int (*next)(fern__dstate *st, fern_row *out);
    /* Row i (0 <= i < size) of the pass; NULL if not random access. May be
     * called from several threads at once. */
    int (*get)(fern__dstate *st, int64_t i, fern_row *out);
    void (*close)(fern__dstate *st);
} fern__dstate_vt;

struct fern__dstate {
    const fern__dstate_vt *vt;
    fern_dataset *ds;
    fern__dctx *ctx;
    uint64_t salt; /* position in the pipeline (structural)              */
    uint64_t pass;
    int64_t size;  /* rows in this pass or -1                             */
    int prefer_next; /* next() is parallel: use it rather than get()      */
    int64_t pos;   /* cursor of the default next-by-get                   */
};

typedef struct {
    const char *kind;
    /* Open a state for one pass (NULL + error on failure). */
    fern__dstate *(*open)(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass);
    void (*destroy)(fern_dataset *ds); /* free the node's own fields        */
} fern__dnode_vt;

struct fern_dataset {
    atomic_int refcount;
    const fern__dnode_vt *vt;
    int ncols;
    const char *cols[FERN_ROW_MAX_COLS]; /* interned */
    int64_t size;                        /* -1 unknown */
    int random_access;
    int n_inputs;
    fern_dataset **inputs; /* released by the base */
    char *desc;            /* lazily built name      */
};

/* Allocate a node of `bytes` (>= sizeof(fern_dataset)), refcount 1. The
 * inputs array is copied (references move in). NULL on OOM (inputs
 * released). */
fern_dataset *fern__dataset_new(size_t bytes, const fern__dnode_vt *vt, int n_inputs,
                                fern_dataset *const *inputs);
int fern__dataset_set_cols(fern_dataset *ds, int n, const char *const *names, const char *who);
int fern__dataset_col_index(const fern_dataset *ds, const char *name);

/* Allocate a state of `bytes` bound to ds. */
fern__dstate *fern__state_new(size_t bytes, const fern__dstate_vt *vt, fern_dataset *ds,
                              fern__dctx *ctx, uint64_t salt, uint64_t pass);
/* Open input i of ds (salt derived from the parent's salt and i). */
fern__dstate *fern__open_input(fern_dataset *ds, int i, fern__dctx *ctx, uint64_t salt,
                               uint64_t pass);
fern__dstate *fern__open(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass);
void fern__close(fern__dstate *st);
/* Reorder row's columns into ds's declared order; error if they differ. */
int fern__row_conform(fern_row *row, const fern_dataset *ds, const char *who);
/* A next() that walks get(0), get(1), ... (st->pos). */
int fern__next_by_get(fern__dstate *st, fern_row *out);
static inline int fern__cancelled(const fern__dctx *ctx) { return atomic_load(&ctx->cancel); }

/* A message for an error status whose thread recorded nothing. */
int fern__status_or(int st);

/* Row i of t along dim 0, as a view (not registered). */
fern_tensor *fern__slice0(const fern_tensor *t, int64_t i);
/* IDX parse without scope registration. */
fern_tensor *fern__idx_parse(const unsigned char *b, size_t n, const char *name);

/* ---- files -------------------------------------------------------------------- */

/* Whole file into a malloc'd buffer (an extra NUL appended). */
/* If buf is gzip, inflate it (buf replaced, old freed; on failure *buf is
 * freed and set to NULL). */
int fern__maybe_gunzip(const char *path, const char *who, unsigned char **buf, size_t *n);
int fern__is_gzip(const unsigned char *b, size_t n);

/* ---- CSV / CIFAR parsers over memory (used by sources and fuzz targets) --------- */

typedef struct {
    int ncols;
    char **names;  /* ncols names (malloc'd)    */
    int64_t nrows;
    double *values; /* nrows * ncols, row major  */
} fern__csv_table;

int fern__csv_parse(const char *text, size_t n, const char *name, char delim, int header,
                    fern__csv_table *out);
void fern__csv_table_free(fern__csv_table *t);

/* Parse CIFAR records from bytes: appends to images (HWC) and labels. */
int fern__cifar_parse(const unsigned char *b, size_t n, const char *name, int cifar100,
                      unsigned char *images, int64_t *fine, int64_t *coarse);

/* ---- images ----------------------------------------------------------------------- */

/* A view of an image tensor: element (y, x, c) at data + (y*sy + x*sx + c*sc)
 * elements. HWC for u8, CHW for float, per the layout rule of data.h. */
typedef struct {
    fern_dtype dt;
    int64_t h, w, c;
    int64_t sy, sx, sc;
    char *data;     /* element (0,0,0) */
    int rank;       /* 2 or 3 */
    int chw;        /* 1: the tensor is CHW (float) */
} fern__img;

/* Describe t as an image (error naming `who` if it is not one). */
int fern__img_view(const char *who, const fern_tensor *t, fern__img *im);
/* A new contiguous image tensor of the same dtype/layout/rank as `like`
 * with size (h, w, c). Not registered in any scope. */
fern_tensor *fern__img_alloc(const fern__img *like, int64_t h, int64_t w, int64_t c,
                             fern__img *out);

fern_tensor *fern__decode(const void *bytes, size_t n, const char *name, const fern_decode_opts *o);
int fern__is_png(const unsigned char *b, size_t n);
int fern__is_jpeg(const unsigned char *b, size_t n);

/* ---- transforms --------------------------------------------------------------------- */

struct fern_transform {
    atomic_int refcount;
    const char *name;
    /* in is borrowed; `owned` says the caller's reference is the only one
     * (so the transform may reuse in's storage and return it retained).
     * Returns a new reference, not registered, or NULL + error. */
    fern_tensor *(*apply)(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng);
    void (*destroy)(fern_transform *tf);
};

fern_transform *fern__tf_new(size_t bytes, const char *name,
                             fern_tensor *(*apply)(const fern_transform *, fern_tensor *, int,
                                                   fern__drng *),
                             void (*destroy)(fern_transform *));
/* Apply the chain (in borrowed, result a new unregistered reference). */
fern_tensor *fern__tf_run(fern_transform *const *tfs, int n, fern_tensor *in, fern__drng *rng);

/* Kernels shared by transforms and AutoAugment (results unregistered). */
fern_tensor *fern__affine(const char *who, const fern_tensor *in, const double m[6],
                          fern_resample interp, double fill);
fern_tensor *fern__adjust(const char *who, fern_tensor *in, int owned, int kind, double f);
enum { FERN__ADJ_BRIGHTNESS, FERN__ADJ_CONTRAST, FERN__ADJ_SATURATION };
fern_tensor *fern__resize(const char *who, const fern_tensor *in, int64_t h, int64_t w,
                          fern_resample interp);
fern_tensor *fern__crop_pad(const char *who, const fern_tensor *in, int64_t top, int64_t left,
                            int64_t h, int64_t w, double fill);
fern_tensor *fern__flip(const char *who, fern_tensor *in, int owned, int horizontal);
void fern__rotation_matrix(double degrees, int64_t h, int64_t w, double m[6]);

#endif
