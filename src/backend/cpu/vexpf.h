/* A vectorizable f32 exp shared by the kernels that need exp inside their
 * own loops (softmax, log_softmax, cross-entropy). */
#ifndef FERN_CPU_VEXPF_H
#define FERN_CPU_VEXPF_H

#include <stdint.h>
#include <string.h>

/* exp for f32 that gcc can inline and vectorize (libm's expf is a call per
 * element): Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, and Cephes'
 * degree-7 polynomial for e^r (about 1 ulp), scaled by 2^n in two steps so
 * results down to the smallest subnormal are right. Below -104 it gives 0,
 * above 88.73 inf, and NaN stays NaN. */
static inline float vexpf(float x)
{
    float xc = x < -104.0f ? -104.0f : x > 89.0f ? 89.0f : x;
    xc = xc == xc ? xc : 0.0f;
    /* round to nearest by the 1.5 * 2^23 trick (floorf would not vectorize) */
    float fx = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - fx * 0.693359375f;
    r = r + fx * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    int32_t n = (int32_t)fx, n1 = n / 2, n2 = n - n1;
    uint32_t b1 = (uint32_t)(n1 + 127) << 23, b2 = (uint32_t)(n2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    y = y * s1 * s2;
    return x == x ? y : x;
}

#endif
