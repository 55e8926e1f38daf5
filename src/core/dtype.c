/* dtype facts, promotion, half-precision conversion and element load/store. */
#include <math.h>
#include <string.h>

#include "internal.h"

static const struct {
    const char *name;
    size_t size;
} dtype_info[FERN_DTYPE_COUNT] = {
    [FERN_F32] = {"f32", 4}, [FERN_F64] = {"f64", 8}, [FERN_F16] = {"f16", 2},
    [FERN_BF16] = {"bf16", 2}, [FERN_I8] = {"i8", 1},  [FERN_U8] = {"u8", 1},
    [FERN_I32] = {"i32", 4},  [FERN_I64] = {"i64", 8}, [FERN_BOOL] = {"bool", 1},
};

size_t fern_dtype_size(fern_dtype dt)
{
    return (unsigned)dt < FERN_DTYPE_COUNT ? dtype_info[dt].size : 0;
}

const char *fern_dtype_name(fern_dtype dt)
{
    return (unsigned)dt < FERN_DTYPE_COUNT ? dtype_info[dt].name : "invalid";
}

int fern_dtype_from_name(const char *name, fern_dtype *out)
{
    for (int i = 0; i < FERN_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_info[i].name) == 0) {
            *out = (fern_dtype)i;
            return 0;
        }
    return -1;
}

int fern_dtype_is_float(fern_dtype dt)
{
    return dt == FERN_F32 || dt == FERN_F64 || dt == FERN_F16 || dt == FERN_BF16;
}

int fern_dtype_is_int(fern_dtype dt)
{
    return dt == FERN_I8 || dt == FERN_U8 || dt == FERN_I32 || dt == FERN_I64;
}

/* Category rank: bool < int < float; within a category the wider wins. */
fern_dtype fern_dtype_promote(fern_dtype a, fern_dtype b)
{
    if (a == b)
        return a;
    if (a == FERN_BOOL)
        return b;
    if (b == FERN_BOOL)
        return a;
    int fa = fern_dtype_is_float(a), fb = fern_dtype_is_float(b);
    if (fa && !fb)
        return a;
    if (fb && !fa)
        return b;
    if (fa && fb) {
        if (a == FERN_F64 || b == FERN_F64)
            return FERN_F64;
        if (a == FERN_F32 || b == FERN_F32)
            return FERN_F32;
        return FERN_F32; /* f16 with bf16: torch gives f32 */
    }
    /* both integer */
    if (a == FERN_I64 || b == FERN_I64)
        return FERN_I64;
    if (a == FERN_I32 || b == FERN_I32)
        return FERN_I32;
    return FERN_I32; /* i8 with u8 is i16 in numpy and torch; fern has no i16 */
}

uint16_t fern_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t mant = x & 0x7fffffu;
    int32_t exp = (int32_t)((x >> 23) & 0xff);
    if (exp == 0xff) /* inf or nan */
        return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0));
    exp = exp - 127 + 15;
    if (exp >= 0x1f)
        return (uint16_t)(sign | 0x7c00u); /* overflow -> inf */
    if (exp <= 0) {                        /* subnormal or zero */
        if (exp < -10)
            return (uint16_t)sign;
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1)))
        half++; /* may carry into the exponent, which is correct */
    return (uint16_t)half;
}

float fern_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ffu;
    uint32_t x;
    if (exp == 0) {
        if (mant == 0) {
            x = sign;
        } else { /* subnormal: normalize */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400u));
            x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 0x1f) {
        x = sign | 0x7f800000u | (mant << 13);
    } else {
        x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t fern_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u); /* quiet nan */
    x += 0x7fffu + ((x >> 16) & 1u);          /* round to nearest even */
    return (uint16_t)(x >> 16);
}

float fern_bf16_to_f32(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

double fern__load(const void *p, fern_dtype dt)
{
    switch (dt) {
    case FERN_F32: return *(const float *)p;
    case FERN_F64: return *(const double *)p;
    case FERN_F16: return fern_f16_to_f32(*(const uint16_t *)p);
    case FERN_BF16: return fern_bf16_to_f32(*(const uint16_t *)p);
    case FERN_I8: return *(const int8_t *)p;
    case FERN_U8: return *(const uint8_t *)p;
    case FERN_I32: return *(const int32_t *)p;
    case FERN_I64: return (double)*(const int64_t *)p;
    case FERN_BOOL: return *(const uint8_t *)p ? 1.0 : 0.0;
    default: return 0.0;
    }
}

/* Float to integer conversion truncates toward zero like C and torch; out
 * of range values saturate instead of invoking undefined behaviour. */
static int64_t to_i64_sat(double v, double lo, double hi)
{
    if (isnan(v))
        return 0;
    if (v <= lo)
        return (int64_t)lo;
    if (v >= hi)
        return (int64_t)hi;
    return (int64_t)v;
}

void fern__store(void *p, fern_dtype dt, double v)
{
    switch (dt) {
    case FERN_F32: *(float *)p = (float)v; break;
    case FERN_F64: *(double *)p = v; break;
    case FERN_F16: *(uint16_t *)p = fern_f32_to_f16((float)v); break;
    case FERN_BF16: *(uint16_t *)p = fern_f32_to_bf16((float)v); break;
    case FERN_I8: *(int8_t *)p = (int8_t)to_i64_sat(v, -128.0, 127.0); break;
    case FERN_U8: *(uint8_t *)p = (uint8_t)to_i64_sat(v, 0.0, 255.0); break;
    case FERN_I32: *(int32_t *)p = (int32_t)to_i64_sat(v, -2147483648.0, 2147483647.0); break;
    case FERN_I64:
        *(int64_t *)p = to_i64_sat(v, -9223372036854775808.0, 9223372036854774784.0);
        break;
    case FERN_BOOL: *(uint8_t *)p = v != 0.0; break;
    default: break;
    }
}

/* Typed fast paths for the common conversions; a generic path through
 * double for the rest (exact for every dtype fern has except huge i64). */
#define CONVERT_LOOP(ST, DT, EXPR)                                                              \
    do {                                                                                      \
        const ST *s = (const ST *)src;                                                        \
        DT *d = (DT *)dst;                                                                    \
        for (int64_t i = 0; i < n; i++)                                                       \
            d[i] = EXPR;                                                                      \
    } while (0)

void fern__convert(const void *src, fern_dtype sdt, void *dst, fern_dtype ddt, int64_t n)
{
    if (sdt == ddt) {
        memcpy(dst, src, (size_t)n * fern_dtype_size(sdt));
        return;
    }
    if (sdt == FERN_F32 && ddt == FERN_F64) { CONVERT_LOOP(float, double, (double)s[i]); return; }
    if (sdt == FERN_F64 && ddt == FERN_F32) { CONVERT_LOOP(double, float, (float)s[i]); return; }
    if (sdt == FERN_F16 && ddt == FERN_F32) { CONVERT_LOOP(uint16_t, float, fern_f16_to_f32(s[i])); return; }
    if (sdt == FERN_F32 && ddt == FERN_F16) { CONVERT_LOOP(float, uint16_t, fern_f32_to_f16(s[i])); return; }
    if (sdt == FERN_BF16 && ddt == FERN_F32) { CONVERT_LOOP(uint16_t, float, fern_bf16_to_f32(s[i])); return; }
    if (sdt == FERN_F32 && ddt == FERN_BF16) { CONVERT_LOOP(float, uint16_t, fern_f32_to_bf16(s[i])); return; }
    if (sdt == FERN_I64 && ddt == FERN_I32) { CONVERT_LOOP(int64_t, int32_t, (int32_t)s[i]); return; }
    if (sdt == FERN_I32 && ddt == FERN_I64) { CONVERT_LOOP(int32_t, int64_t, s[i]); return; }
    if (sdt == FERN_I64 && ddt == FERN_I64) { CONVERT_LOOP(int64_t, int64_t, s[i]); return; }
    /* masks and labels: bool/u8/i32/i64 to floats and back are hot in
     * gradient rules and metrics */
#define TO_FLOAT(ST)                                                                              \
    if (ddt == FERN_F32) { CONVERT_LOOP(ST, float, (float)s[i]); return; }                        \
    if (ddt == FERN_F64) { CONVERT_LOOP(ST, double, (double)s[i]); return; }
    switch (sdt) {
    case FERN_BOOL:
    case FERN_U8: TO_FLOAT(uint8_t) break;
    case FERN_I8: TO_FLOAT(int8_t) break;
    case FERN_I32: TO_FLOAT(int32_t) break;
    case FERN_I64: TO_FLOAT(int64_t) break;
    default: break;
    }
#undef TO_FLOAT
    if (ddt == FERN_BOOL) {
        if (sdt == FERN_F32) { CONVERT_LOOP(float, uint8_t, s[i] != 0.0f); return; }
        if (sdt == FERN_F64) { CONVERT_LOOP(double, uint8_t, s[i] != 0.0); return; }
        if (sdt == FERN_U8 || sdt == FERN_I8) { CONVERT_LOOP(uint8_t, uint8_t, s[i] != 0); return; }
        if (sdt == FERN_I32) { CONVERT_LOOP(int32_t, uint8_t, s[i] != 0); return; }
        if (sdt == FERN_I64) { CONVERT_LOOP(int64_t, uint8_t, s[i] != 0); return; }
    }
    if (fern_dtype_is_int(sdt) && ddt == FERN_I64) {
        size_t es = fern_dtype_size(sdt);
        for (int64_t i = 0; i < n; i++)
            ((int64_t *)dst)[i] = (int64_t)fern__load((const char *)src + (size_t)i * es, sdt);
        return;
    }
    size_t ss = fern_dtype_size(sdt), ds = fern_dtype_size(ddt);
    for (int64_t i = 0; i < n; i++)
        fern__store((char *)dst + (size_t)i * ds, ddt, fern__load((const char *)src + (size_t)i * ss, sdt));
}
