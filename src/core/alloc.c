/* The caching, 64-byte-aligned allocator. Freed blocks go to a per-size-class
 * free list and are handed out again, so a training loop that allocates the
 * same shapes every step stops calling malloc after the first step. Size
 * classes are 4 per power of two (at most 25% waste). One pool per device;
 * a mutex makes it safe from any thread. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define N_CLASSES 256
#define ALIGNMENT 64

typedef struct block {
    struct block *next;
} block;

typedef struct {
    pthread_mutex_t lock;
    block *free_list[N_CLASSES];
    size_t cache_limit;
    fern_alloc_stats stats;
} pool;

static pool cpu_pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .cache_limit = (size_t)4 << 30};

static int floor_log2(size_t n)
{
    int p = 0;
    while (n >>= 1)
        p++;
    return p;
}

/* Round n up to its size class; *cls receives the class index. */
static size_t size_class(size_t n, int *cls)
{
    if (n <= 256) {
        size_t r = n <= 64 ? 64 : (n + 63) & ~(size_t)63;
        *cls = (int)(r / 64) - 1;
        return r;
    }
    int p = floor_log2(n - 1); /* n in (2^p, 2^(p+1)] */
    size_t g = (size_t)1 << (p - 2);
    size_t q = (n + g - 1) / g; /* 5..8 */
    *cls = 4 + (p - 8) * 4 + (int)(q - 5);
    return q * g;
}

static pool *pool_for(fern_device d)
{
    if (d == FERN_CPU)
        return &cpu_pool;
    fern_set_error(FERN_ERR_UNSUPPORTED, "alloc: device %s is not available in this build",
                   fern_device_name(d));
    return NULL;
}

void *fern_alloc(fern_device d, size_t nbytes)
{
    pool *pl = pool_for(d);
    if (!pl)
        return NULL;
    int cls;
    size_t sz = size_class(nbytes, &cls);
    if (cls < 0 || cls >= N_CLASSES) {
        fern_set_error(FERN_ERR_NOMEM, "alloc: %zu bytes is too large", nbytes);
        return NULL;
    }
    void *p = NULL;
    pthread_mutex_lock(&pl->lock);
    pl->stats.n_allocs++;
    if (pl->free_list[cls]) {
        block *b = pl->free_list[cls];
        pl->free_list[cls] = b->next;
        pl->stats.cached_bytes -= sz;
        pl->stats.n_cache_hits++;
        p = b;
    }
    pthread_mutex_unlock(&pl->lock);
    if (!p && posix_memalign(&p, ALIGNMENT, sz) != 0) {
        fern_set_error(FERN_ERR_NOMEM, "alloc: out of memory allocating %zu bytes", nbytes);
        return NULL;
    }
    pthread_mutex_lock(&pl->lock);
    pl->stats.current_bytes += sz;
    if (pl->stats.current_bytes > pl->stats.peak_bytes)
        pl->stats.peak_bytes = pl->stats.current_bytes;
    pthread_mutex_unlock(&pl->lock);
    return p;
}

void fern_free(fern_device d, void *p, size_t nbytes)
{
    if (!p)
        return;
    pool *pl = d == FERN_CPU ? &cpu_pool : NULL;
    if (!pl)
        return;
    int cls;
    size_t sz = size_class(nbytes, &cls);
    pthread_mutex_lock(&pl->lock);
    pl->stats.current_bytes -= sz;
    if (pl->stats.cached_bytes + sz <= pl->cache_limit) {
        block *b = p;
        b->next = pl->free_list[cls];
        pl->free_list[cls] = b;
        pl->stats.cached_bytes += sz;
        p = NULL;
    }
    pthread_mutex_unlock(&pl->lock);
    free(p);
}

fern_alloc_stats fern_alloc_get_stats(fern_device d)
{
    fern_alloc_stats s = {0};
    pool *pl = d == FERN_CPU ? &cpu_pool : NULL;
    if (!pl)
        return s;
    pthread_mutex_lock(&pl->lock);
    s = pl->stats;
    pthread_mutex_unlock(&pl->lock);
    return s;
}

void fern_alloc_reset_peak(fern_device d)
{
    pool *pl = d == FERN_CPU ? &cpu_pool : NULL;
    if (!pl)
        return;
    pthread_mutex_lock(&pl->lock);
    pl->stats.peak_bytes = pl->stats.current_bytes;
    pthread_mutex_unlock(&pl->lock);
}

void fern_alloc_empty_cache(fern_device d)
{
    pool *pl = d == FERN_CPU ? &cpu_pool : NULL;
    if (!pl)
        return;
    pthread_mutex_lock(&pl->lock);
    for (int c = 0; c < N_CLASSES; c++) {
        block *b = pl->free_list[c];
        while (b) {
            block *next = b->next;
            free(b);
            b = next;
        }
        pl->free_list[c] = NULL;
    }
    pl->stats.cached_bytes = 0;
    pthread_mutex_unlock(&pl->lock);
}

const char *fern_device_name(fern_device d)
{
    switch (d) {
    case FERN_CPU: return "cpu";
    case FERN_CUDA: return "cuda";
    default: return "invalid";
    }
}

/* The cache is process-wide by design (like torch's caching allocator);
 * release it at exit so leak checkers see a clean heap. */
__attribute__((destructor)) static void release_cache_at_exit(void)
{
    fern_alloc_empty_cache(FERN_CPU);
}
