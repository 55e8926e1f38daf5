/* A persistent pool of worker threads for data-parallel kernels. The
 * calling thread works too. Nested calls, and calls made while another
 * thread is using the pool, run inline: correctness never depends on the
 * pool, only speed does. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

/* Workers spin a while on the generation counter before sleeping on the
 * condvar: a training step issues thousands of short kernels back to back,
 * and a futex wake-up per kernel (several microseconds each way) cost more
 * than most of those kernels. The caller spins on `pending` likewise. */
#define POOL_SPIN 4000 /* polls, each a pause: roughly 50 microseconds */

/* Chunks are owned: thread t (the caller is 0) first takes the chunks of its
 * own contiguous share of [0, n), in order, and only then helps with the
 * others' shares from their far end. Back-to-back kernels over same-sized
 * data (conv, bias, relu, pool and their gradients) thus touch the same half
 * on the same core: where cores do not share a cache, a line written by one
 * and read by the other costs a cross-core transfer, which made chained
 * elementwise kernels on two threads slower than on one. */
#define POOL_MAX_THREADS 256

/* a share's unclaimed chunks [lo, hi), packed as hi << 32 | lo so that the
 * owner (taking lo) and helpers (taking hi - 1) claim with one
 * compare-and-swap on one word */
typedef struct {
    _Alignas(64) atomic_uint_fast64_t range;
} chunk_share;

typedef struct {
    int id;              /* 1.. (the caller is 0) */
    uint64_t generation; /* at creation */
} worker_arg;

typedef struct {
    pthread_mutex_t lock;     /* guards sleepers and the condvar wait */
    pthread_cond_t work_cv;   /* sleeping workers wait for a new generation */
    pthread_cond_t done_cv;   /* a sleeping caller waits for pending == 0 */
    int caller_sleeping;      /* (lock)                                */
    pthread_mutex_t use_lock; /* one parallel region at a time        */
    pthread_t *threads;
    worker_arg *worker_args;  /* one per worker thread   */
    int n_workers;            /* threads besides the caller           */
    int configured;           /* requested total threads, 0 = unset   */
    int sleepers;             /* workers blocked on work_cv (lock)    */
    atomic_uint_fast64_t generation;
    atomic_int pending;       /* workers not yet done with this generation */
    atomic_int shutdown;
    void (*fn)(void *, int64_t, int64_t);
    void *ctx;
    int64_t n, chunk, n_chunks;
    _Alignas(64) chunk_share shares[POOL_MAX_THREADS];
} pool;

static pool tp = {.lock = PTHREAD_MUTEX_INITIALIZER,
                  .work_cv = PTHREAD_COND_INITIALIZER,
                  .done_cv = PTHREAD_COND_INITIALIZER,
                  .use_lock = PTHREAD_MUTEX_INITIALIZER};
static _Thread_local int in_parallel_region;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void run_chunk(int64_t c)
{
    int64_t b = c * tp.chunk, e = b + tp.chunk < tp.n ? b + tp.chunk : tp.n;
    tp.fn(tp.ctx, b, e);
}

static int claim(chunk_share *s, int owner, int64_t *c)
{
    uint64_t r = atomic_load_explicit(&s->range, memory_order_acquire);
    for (;;) {
        uint64_t lo = r & 0xffffffffu, hi = r >> 32;
        if (lo >= hi)
            return 0;
        uint64_t nr = owner ? (hi << 32 | (lo + 1)) : ((hi - 1) << 32 | lo);
        if (atomic_compare_exchange_weak_explicit(&s->range, &r, nr, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            *c = (int64_t)(owner ? lo : hi - 1);
            return 1;
        }
    }
}

/* Thread `self` (0: the caller): its own share, then the others'. */
static void run_chunks(int self)
{
    const int T = tp.n_workers + 1; /* shares: one per thread */
    int64_t c;
    while (claim(&tp.shares[self], 1, &c))
        run_chunk(c);
    for (int k = 1; k < T; k++) {
        chunk_share *s = &tp.shares[(self + k) % T];
        while (claim(s, 0, &c))
            run_chunk(c);
    }
}

/* The next generation after `seen`, or `seen` on shutdown. */
static uint64_t wait_for_work(uint64_t seen)
{
    for (int spin = 0; spin < POOL_SPIN; spin++) {
        uint64_t g = atomic_load_explicit(&tp.generation, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&tp.shutdown, memory_order_relaxed))
            return g;
        cpu_relax();
    }
    pthread_mutex_lock(&tp.lock);
    tp.sleepers++;
    uint64_t g;
    while ((g = atomic_load_explicit(&tp.generation, memory_order_acquire)) == seen &&
           !atomic_load(&tp.shutdown))
        pthread_cond_wait(&tp.work_cv, &tp.lock);
    tp.sleepers--;
    pthread_mutex_unlock(&tp.lock);
    return g;
}

static void *worker_main(void *arg)
{
    in_parallel_region = 1;
    /* the generation when it was created (passed in: read here, it could
     * already include the caller's next region, which it would then wait
     * past while the caller waits for it) */
    const worker_arg *wa = arg;
    const int self = wa->id;
    uint64_t seen = wa->generation;
    for (;;) {
        seen = wait_for_work(seen);
        if (atomic_load(&tp.shutdown))
            break;
        run_chunks(self);
        if (atomic_fetch_sub_explicit(&tp.pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&tp.lock);
            if (tp.caller_sleeping)
                pthread_cond_signal(&tp.done_cv);
            pthread_mutex_unlock(&tp.lock);
        }
    }
    return NULL;
}

static int env_threads(void)
{
    const char *e = getenv("FERN_NUM_THREADS");
    if (e && atoi(e) > 0)
        return atoi(e);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int fern_num_threads(void)
{
    pthread_mutex_lock(&tp.lock);
    int first = !tp.configured;
    if (first)
        tp.configured = env_threads();
    int n = tp.configured;
    pthread_mutex_unlock(&tp.lock);
    if (first)
        fern__blas_init(); /* this pool, not OpenBLAS's, runs fern's threads */
    return n;
}

static void stop_workers(void)
{
    pthread_mutex_lock(&tp.lock);
    atomic_store(&tp.shutdown, 1);
    pthread_cond_broadcast(&tp.work_cv);
    pthread_mutex_unlock(&tp.lock);
    for (int i = 0; i < tp.n_workers; i++)
        pthread_join(tp.threads[i], NULL);
    free(tp.threads);
    free(tp.worker_args);
    tp.threads = NULL;
    tp.worker_args = NULL;
    tp.n_workers = 0;
    atomic_store(&tp.shutdown, 0);
}

void fern_set_num_threads(int n)
{
    pthread_mutex_lock(&tp.use_lock);
    stop_workers();
    pthread_mutex_lock(&tp.lock);
    tp.configured = n > 0 ? n : env_threads();
    pthread_mutex_unlock(&tp.lock);
    pthread_mutex_unlock(&tp.use_lock);
}

/* Called with use_lock held. */
static void ensure_workers(int want)
{
    if (tp.n_workers == want)
        return;
    stop_workers();
    if (want > POOL_MAX_THREADS - 1)
        want = POOL_MAX_THREADS - 1;
    tp.threads = calloc((size_t)want, sizeof(pthread_t));
    worker_arg *args = calloc((size_t)want, sizeof(worker_arg));
    tp.worker_args = args;
    if (!tp.threads || !args) {
        free(tp.threads);
        free(args);
        tp.threads = NULL;
        tp.worker_args = NULL;
        return;
    }
    for (int i = 0; i < want; i++) {
        args[i].id = i + 1;
        args[i].generation = atomic_load(&tp.generation);
        if (pthread_create(&tp.threads[i], NULL, worker_main, &args[i]) != 0)
            break;
        tp.n_workers++;
    }
}

void fern_parallel_for(int64_t n, int64_t grain, void (*fn)(void *, int64_t, int64_t), void *ctx)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    int threads = fern_num_threads();
    if (threads <= 1 || n < 2 * grain || in_parallel_region ||
        pthread_mutex_trylock(&tp.use_lock) != 0) {
        fn(ctx, 0, n);
        return;
    }
    ensure_workers(threads - 1);
    if (tp.n_workers == 0) {
        pthread_mutex_unlock(&tp.use_lock);
        fn(ctx, 0, n);
        return;
    }
    int64_t parts = n / grain;
    int64_t max_parts = (int64_t)(tp.n_workers + 1) * 4; /* some slack for load balance */
    if (parts > max_parts)
        parts = max_parts;
    tp.fn = fn;
    tp.ctx = ctx;
    tp.n = n;
    tp.chunk = (n + parts - 1) / parts;
    tp.n_chunks = (n + tp.chunk - 1) / tp.chunk;
    /* thread t owns chunks [t * n_chunks / T, (t + 1) * n_chunks / T) */
    const int T = tp.n_workers + 1;
    for (int t = 0; t < T; t++) {
        uint64_t lo = (uint64_t)(t * tp.n_chunks / T), hi = (uint64_t)((t + 1) * tp.n_chunks / T);
        atomic_store_explicit(&tp.shares[t].range, hi << 32 | lo, memory_order_relaxed);
    }
    atomic_store(&tp.pending, tp.n_workers);
    /* under the lock, so a worker about to sleep sees the new generation */
    pthread_mutex_lock(&tp.lock);
    atomic_fetch_add_explicit(&tp.generation, 1, memory_order_release);
    if (tp.sleepers)
        pthread_cond_broadcast(&tp.work_cv);
    pthread_mutex_unlock(&tp.lock);

    in_parallel_region = 1;
    run_chunks(0);
    in_parallel_region = 0;

    /* spin briefly; then sleep (a worker may be descheduled when the
     * machine is oversubscribed, and spinning would keep it off the CPU) */
    for (int spin = 0; atomic_load_explicit(&tp.pending, memory_order_acquire) > 0; spin++) {
        if (spin < POOL_SPIN) {
            cpu_relax();
            continue;
        }
        pthread_mutex_lock(&tp.lock);
        tp.caller_sleeping = 1;
        while (atomic_load_explicit(&tp.pending, memory_order_acquire) > 0)
            pthread_cond_wait(&tp.done_cv, &tp.lock);
        tp.caller_sleeping = 0;
        pthread_mutex_unlock(&tp.lock);
        break;
    }
    pthread_mutex_unlock(&tp.use_lock);
}

__attribute__((destructor)) static void pool_shutdown(void)
{
    pthread_mutex_lock(&tp.use_lock);
    stop_workers();
    pthread_mutex_unlock(&tp.use_lock);
}
