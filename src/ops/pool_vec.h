/* Vectors for the max-pooling kernels (pool_max.c, pool_max2x2.c).
 *
 * GCC/clang vector extensions, so one source serves every target: the
 * compiler lowers a vector wider than the hardware's to several registers.
 * v_SFX_L is L lanes of the element type SFX (f32, f64, i32, i64, i8, u8)
 * in a 16-, 32- or 64-byte vector, iv_SFX_L the integer vector of the same
 * shape (compare masks), and vmax_SFX_L(m, v) the step of max pooling's
 * fold, torch's f(m, v) = (v > m || v is NaN) ? v : m, exactly: the first
 * maximum wins a tie (-0 before +0 stays -0), the last NaN wins.
 *
 * On x86, f is MAXPS(v, m) = (v > m ? v : m) except where v is NaN:
 * masked to v's ordered lanes (AVX-512) or blended (AVX, SSE4.1, SSE2),
 * which keeps the compare off the chain through m. Elsewhere it is a
 * select. */
#ifndef FERN_POOL_VEC_H
#define FERN_POOL_VEC_H

#include <stdint.h>

/* Vectors wider than the target's are still defined (the kernels choose a
 * width at run time, and skip those); GCC notes that passing them by value
 * has no fixed ABI, which does not matter for these file-local functions. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#if defined(__SSE2__)
#include <immintrin.h>
#endif

/* the widest vector the target has: 64 bytes with AVX-512 */
#if defined(__AVX512F__)
#define POOL_VBYTES 64
#elif defined(__AVX__)
#define POOL_VBYTES 32
#else
#define POOL_VBYTES 16
#endif

/* Two-source shuffle with constant lane indices: __builtin_shufflevector
 * (clang, GCC >= 12); older GCC only has __builtin_shuffle with a mask
 * vector (IV: the integer vector type of the same shape). */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define POOL_SHUFFLE(IV, a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define POOL_SHUFFLE(IV, a, b, ...) __builtin_shuffle(a, b, (IV){__VA_ARGS__})
#endif

/* Lane lists for L lanes: the even / odd lanes of the 2L-lane concatenation
 * (a deinterleave), and the low / high halves of interleaving two vectors. */
#define POOL_EVEN_16 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define POOL_ODD_16 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#define POOL_LO_16 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define POOL_HI_16 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#define POOL_EVEN_8 0, 2, 4, 6, 8, 10, 12, 14
#define POOL_ODD_8 1, 3, 5, 7, 9, 11, 13, 15
#define POOL_LO_8 0, 8, 1, 9, 2, 10, 3, 11
#define POOL_HI_8 4, 12, 5, 13, 6, 14, 7, 15
#define POOL_EVEN_4 0, 2, 4, 6
#define POOL_ODD_4 1, 3, 5, 7
#define POOL_LO_4 0, 4, 1, 5
#define POOL_HI_4 2, 6, 3, 7
#define POOL_EVEN_2 0, 2
#define POOL_ODD_2 1, 3
#define POOL_LO_2 0, 2
#define POOL_HI_2 1, 3

/* Deinterleave by 3: phase k (lanes 3l + k of A|B|C, 3L lanes) is
 * shuffle(shuffle(A, B, D3A_L_k), C, D3B_L_k): the first takes the lanes
 * that lie in A|B, the second keeps those and adds the ones in C. */
#define POOL_D3A_16_0 0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 0, 0, 0, 0, 0
#define POOL_D3B_16_0 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 17, 20, 23, 26, 29
#define POOL_D3A_16_1 1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 0, 0, 0, 0, 0
#define POOL_D3B_16_1 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 18, 21, 24, 27, 30
#define POOL_D3A_16_2 2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 0, 0, 0, 0, 0, 0
#define POOL_D3B_16_2 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 19, 22, 25, 28, 31
#define POOL_D3A_8_0 0, 3, 6, 9, 12, 15, 0, 0
#define POOL_D3B_8_0 0, 1, 2, 3, 4, 5, 10, 13
#define POOL_D3A_8_1 1, 4, 7, 10, 13, 0, 0, 0
#define POOL_D3B_8_1 0, 1, 2, 3, 4, 8, 11, 14
#define POOL_D3A_8_2 2, 5, 8, 11, 14, 0, 0, 0
#define POOL_D3B_8_2 0, 1, 2, 3, 4, 9, 12, 15
#define POOL_D3A_4_0 0, 3, 6, 0
#define POOL_D3B_4_0 0, 1, 2, 5
#define POOL_D3A_4_1 1, 4, 7, 0
#define POOL_D3B_4_1 0, 1, 2, 6
#define POOL_D3A_4_2 2, 5, 0, 0
#define POOL_D3B_4_2 0, 1, 4, 7
#define POOL_D3A_2_0 0, 3
#define POOL_D3B_2_0 0, 1
#define POOL_D3A_2_1 1, 0
#define POOL_D3B_2_1 0, 2
#define POOL_D3A_2_2 2, 0
#define POOL_D3B_2_2 0, 3

/* Lanes where v replaces m in the fold, as an integer vector mask. On x86
 * floats compare through intrinsics: GCC's generic lowering of a float
 * compare to a 64-bit lane mask without AVX-512 goes lane by lane. */
#define POOL_WINS_F(m, v) ((v > m) | (v != v))
#define POOL_WINS_I(m, v) (v > m)
#if defined(__SSE2__)
#define POOL_WINS128_PS(m, v)                                                                      \
    _mm_or_ps(_mm_cmpgt_ps((__m128)v, (__m128)m), _mm_cmpunord_ps((__m128)v, (__m128)v))
#define POOL_WINS128_PD(m, v)                                                                      \
    _mm_or_pd(_mm_cmpgt_pd((__m128d)v, (__m128d)m), _mm_cmpunord_pd((__m128d)v, (__m128d)v))
#else
#define POOL_WINS128_PS POOL_WINS_F
#define POOL_WINS128_PD POOL_WINS_F
#endif
#if defined(__AVX__)
#define POOL_WINS256_PS(m, v)                                                                      \
    _mm256_or_ps(_mm256_cmp_ps((__m256)v, (__m256)m, _CMP_GT_OQ),                                  \
                 _mm256_cmp_ps((__m256)v, (__m256)v, _CMP_UNORD_Q))
#define POOL_WINS256_PD(m, v)                                                                      \
    _mm256_or_pd(_mm256_cmp_pd((__m256d)v, (__m256d)m, _CMP_GT_OQ),                                \
                 _mm256_cmp_pd((__m256d)v, (__m256d)v, _CMP_UNORD_Q))
#else
#define POOL_WINS256_PS POOL_WINS_F
#define POOL_WINS256_PD POOL_WINS_F
#endif

/* the types; wins; sel(t, v, m) = t ? v : m; and vmax as a select */
#define POOL_DEFINE_VEC(T, SFX, IT, L, WINS)                                                       \
    typedef T v_##SFX##_##L __attribute__((vector_size(L * sizeof(T))));                           \
    typedef IT iv_##SFX##_##L __attribute__((vector_size(L * sizeof(T))));                         \
    static inline iv_##SFX##_##L wins_##SFX##_##L(v_##SFX##_##L m, v_##SFX##_##L v)                \
    {                                                                                              \
        return (iv_##SFX##_##L)WINS(m, v);                                                         \
    }                                                                                              \
    static inline v_##SFX##_##L sel_##SFX##_##L(iv_##SFX##_##L t, v_##SFX##_##L v,                 \
                                                v_##SFX##_##L m)                                   \
    {                                                                                              \
        return (v_##SFX##_##L)(((iv_##SFX##_##L)v & t) | ((iv_##SFX##_##L)m & ~t));                \
    }                                                                                              \
    static inline v_##SFX##_##L vmax_sel_##SFX##_##L(v_##SFX##_##L m, v_##SFX##_##L v)             \
    {                                                                                              \
        return sel_##SFX##_##L(wins_##SFX##_##L(m, v), v, m);                                      \
    }

/* vmax through MAXPS/MAXPD: VT the intrinsic type, MAXM(v, m) the masked
 * or blended max */
#define POOL_DEFINE_VMAX_X86(SFX, L, VT, MAXM)                                                     \
    static inline v_##SFX##_##L vmax_##SFX##_##L(v_##SFX##_##L m, v_##SFX##_##L v)                 \
    {                                                                                              \
        return (v_##SFX##_##L)MAXM((VT)v, (VT)m);                                                  \
    }
#define POOL_DEFINE_VMAX_SEL(SFX, L)                                                               \
    static inline v_##SFX##_##L vmax_##SFX##_##L(v_##SFX##_##L m, v_##SFX##_##L v)                 \
    {                                                                                              \
        return vmax_sel_##SFX##_##L(m, v);                                                         \
    }

POOL_DEFINE_VEC(float, f32, int32_t, 4, POOL_WINS128_PS)
POOL_DEFINE_VEC(float, f32, int32_t, 8, POOL_WINS256_PS)
POOL_DEFINE_VEC(float, f32, int32_t, 16, POOL_WINS_F)
POOL_DEFINE_VEC(double, f64, int64_t, 2, POOL_WINS128_PD)
POOL_DEFINE_VEC(double, f64, int64_t, 4, POOL_WINS256_PD)
POOL_DEFINE_VEC(double, f64, int64_t, 8, POOL_WINS_F)
POOL_DEFINE_VEC(int32_t, i32, int32_t, 4, POOL_WINS_I)
POOL_DEFINE_VEC(int32_t, i32, int32_t, 8, POOL_WINS_I)
POOL_DEFINE_VEC(int32_t, i32, int32_t, 16, POOL_WINS_I)
POOL_DEFINE_VEC(int64_t, i64, int64_t, 2, POOL_WINS_I)
POOL_DEFINE_VEC(int64_t, i64, int64_t, 4, POOL_WINS_I)
POOL_DEFINE_VEC(int64_t, i64, int64_t, 8, POOL_WINS_I)
POOL_DEFINE_VEC(int8_t, i8, int8_t, 16, POOL_WINS_I)
POOL_DEFINE_VEC(int8_t, i8, int8_t, 32, POOL_WINS_I)
POOL_DEFINE_VEC(int8_t, i8, int8_t, 64, POOL_WINS_I)
POOL_DEFINE_VEC(uint8_t, u8, int8_t, 16, POOL_WINS_I)
POOL_DEFINE_VEC(uint8_t, u8, int8_t, 32, POOL_WINS_I)
POOL_DEFINE_VEC(uint8_t, u8, int8_t, 64, POOL_WINS_I)

/* integers: a select (no NaN, and equal values have equal bits) */
POOL_DEFINE_VMAX_SEL(i32, 4)
POOL_DEFINE_VMAX_SEL(i32, 8)
POOL_DEFINE_VMAX_SEL(i32, 16)
POOL_DEFINE_VMAX_SEL(i64, 2)
POOL_DEFINE_VMAX_SEL(i64, 4)
POOL_DEFINE_VMAX_SEL(i64, 8)
POOL_DEFINE_VMAX_SEL(i8, 16)
POOL_DEFINE_VMAX_SEL(i8, 32)
POOL_DEFINE_VMAX_SEL(i8, 64)
POOL_DEFINE_VMAX_SEL(u8, 16)
POOL_DEFINE_VMAX_SEL(u8, 32)
POOL_DEFINE_VMAX_SEL(u8, 64)

/* floats: max(v, m) on v's ordered lanes, v where v is NaN */
#if defined(__AVX512F__)
#define POOL_MAX512_PS(v, m) _mm512_mask_max_ps(v, _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v, m)
#define POOL_MAX512_PD(v, m) _mm512_mask_max_pd(v, _mm512_cmp_pd_mask(v, v, _CMP_ORD_Q), v, m)
POOL_DEFINE_VMAX_X86(f32, 16, __m512, POOL_MAX512_PS)
POOL_DEFINE_VMAX_X86(f64, 8, __m512d, POOL_MAX512_PD)
#else
POOL_DEFINE_VMAX_SEL(f32, 16)
POOL_DEFINE_VMAX_SEL(f64, 8)
#endif
#if defined(__AVX512VL__)
#define POOL_MAX256_PS(v, m) _mm256_mask_max_ps(v, _mm256_cmp_ps_mask(v, v, _CMP_ORD_Q), v, m)
#define POOL_MAX256_PD(v, m) _mm256_mask_max_pd(v, _mm256_cmp_pd_mask(v, v, _CMP_ORD_Q), v, m)
#define POOL_MAX128_PS(v, m) _mm_mask_max_ps(v, _mm_cmp_ps_mask(v, v, _CMP_ORD_Q), v, m)
#define POOL_MAX128_PD(v, m) _mm_mask_max_pd(v, _mm_cmp_pd_mask(v, v, _CMP_ORD_Q), v, m)
#elif defined(__AVX__)
#define POOL_MAX256_PS(v, m)                                                                       \
    _mm256_blendv_ps(_mm256_max_ps(v, m), v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q))
#define POOL_MAX256_PD(v, m)                                                                       \
    _mm256_blendv_pd(_mm256_max_pd(v, m), v, _mm256_cmp_pd(v, v, _CMP_UNORD_Q))
#endif
#if !defined(__AVX512VL__) && defined(__SSE4_1__)
#define POOL_MAX128_PS(v, m) _mm_blendv_ps(_mm_max_ps(v, m), v, _mm_cmpunord_ps(v, v))
#define POOL_MAX128_PD(v, m) _mm_blendv_pd(_mm_max_pd(v, m), v, _mm_cmpunord_pd(v, v))
#elif !defined(__AVX512VL__) && defined(__SSE2__) /* x86-64's baseline: blend by bit ops */
#define POOL_MAX128_PS(v, m)                                                                       \
    _mm_or_ps(_mm_and_ps(_mm_cmpunord_ps(v, v), v),                                                \
              _mm_andnot_ps(_mm_cmpunord_ps(v, v), _mm_max_ps(v, m)))
#define POOL_MAX128_PD(v, m)                                                                       \
    _mm_or_pd(_mm_and_pd(_mm_cmpunord_pd(v, v), v),                                                \
              _mm_andnot_pd(_mm_cmpunord_pd(v, v), _mm_max_pd(v, m)))
#endif
#if defined(POOL_MAX256_PS)
POOL_DEFINE_VMAX_X86(f32, 8, __m256, POOL_MAX256_PS)
POOL_DEFINE_VMAX_X86(f64, 4, __m256d, POOL_MAX256_PD)
#else
POOL_DEFINE_VMAX_SEL(f32, 8)
POOL_DEFINE_VMAX_SEL(f64, 4)
#endif
#if defined(POOL_MAX128_PS)
POOL_DEFINE_VMAX_X86(f32, 4, __m128, POOL_MAX128_PS)
POOL_DEFINE_VMAX_X86(f64, 2, __m128d, POOL_MAX128_PD)
#else
POOL_DEFINE_VMAX_SEL(f32, 4)
POOL_DEFINE_VMAX_SEL(f64, 2)
#endif

#endif /* FERN_POOL_VEC_H */
