/* Counter-based random numbers (Philox4x32-10, Salmon et al. 2011). A random
 * op takes (seed, offset) from the calling thread's generator and draws
 * element i from counter (offset, i): results never depend on how the work
 * is split across threads, and a graph can replay a draw exactly. */
#include "internal.h"

static _Thread_local uint64_t rng_seed = 5489u;
static _Thread_local uint64_t rng_offset;

void fern_seed(uint64_t seed)
{
    rng_seed = seed;
    rng_offset = 0;
}

uint64_t fern_get_seed(void) { return rng_seed; }
uint64_t fern_rng_offset(void) { return rng_offset; }
void fern_rng_set_offset(uint64_t offset) { rng_offset = offset; }

static _Thread_local int rng_drawn;

void fern__rng_next(uint64_t *seed, uint64_t *offset)
{
    *seed = rng_seed;
    *offset = rng_offset++;
    rng_drawn = 1;
}

int fern__rng_take_drawn(void)
{
    int d = rng_drawn;
    rng_drawn = 0;
    return d;
}

void fern__philox(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo, uint32_t out[4])
{
    uint32_t c0 = (uint32_t)ctr_lo, c1 = (uint32_t)(ctr_lo >> 32);
    uint32_t c2 = (uint32_t)ctr_hi, c3 = (uint32_t)(ctr_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}
