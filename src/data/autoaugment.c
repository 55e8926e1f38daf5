/* AutoAugment-style random policies over u8 HWC images: per sample one
 * sub-policy is drawn uniformly, then each of its steps runs with its
 * probability (magnitude sign flipped with p = 1/2 for signed steps). The
 * draws per sample are: the sub-policy index, then for each step a
 * probability draw and a sign draw, then whatever the op itself needs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"

static const char *const aa_names[FERN_AA_OP_COUNT] = {
    "identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness", "color",
    "contrast", "sharpness", "posterize", "solarize", "autocontrast", "equalize", "invert"};

static fern_tensor *copy_u8(const fern__img *in, fern__img *out)
{
    fern_tensor *o = fern__img_alloc(in, in->h, in->w, in->c, out);
    if (!o)
        return NULL;
    for (int64_t y = 0; y < in->h; y++)
        for (int64_t x = 0; x < in->w; x++)
            for (int64_t c = 0; c < in->c; c++)
                ((uint8_t *)out->data)[(y * in->w + x) * in->c + c] =
                    ((const uint8_t *)in->data)[y * in->sy + x * in->sx + c * in->sc];
    return o;
}

static fern_tensor *lut_apply(const fern__img *in, const uint8_t *luts /* per channel, 256 each */)
{
    fern__img out;
    fern_tensor *o = fern__img_alloc(in, in->h, in->w, in->c, &out);
    if (!o)
        return NULL;
    uint8_t *d = (uint8_t *)out.data;
    for (int64_t y = 0; y < in->h; y++)
        for (int64_t x = 0; x < in->w; x++)
            for (int64_t c = 0; c < in->c; c++)
                d[(y * in->w + x) * in->c + c] =
                    luts[c * 256 + ((const uint8_t *)in->data)[y * in->sy + x * in->sx + c * in->sc]];
    return o;
}

static void histogram(const fern__img *in, int64_t c, int64_t h[256])
{
    memset(h, 0, 256 * sizeof h[0]);
    for (int64_t y = 0; y < in->h; y++)
        for (int64_t x = 0; x < in->w; x++)
            h[((const uint8_t *)in->data)[y * in->sy + x * in->sx + c * in->sc]]++;
}

static uint8_t rnd8(double v)
{
    if (!(v > 0.0))
        return 0;
    if (v >= 255.0)
        return 255;
    return (uint8_t)(v + 0.5);
}

/* Apply one op with magnitude m to a u8 HWC image (a new tensor). */
static fern_tensor *aa_op(const char *who, fern_tensor *t, fern_aa_op op, double m, double fill)
{
    fern__img in;
    char d[64];
    if (fern__img_view(who, t, &in))
        return NULL;
    if (in.dt != FERN_U8) {
        fern_set_error(FERN_ERR_INVALID, "%s: %s needs a u8 HWC image, got %s", who, aa_names[op],
                       fern_tensor_desc(t, d, sizeof d));
        return NULL;
    }
    double mat[6] = {1, 0, 0, 0, 1, 0};
    uint8_t *luts = NULL;
    fern_tensor *r = NULL;
    switch (op) {
    case FERN_AA_IDENTITY: return fern_retain(t);
    case FERN_AA_SHEAR_X:
        mat[1] = m;
        mat[2] = -m * (double)in.h / 2.0;
        return fern__affine(who, t, mat, FERN_RESAMPLE_NEAREST, fill);
    case FERN_AA_SHEAR_Y:
        mat[3] = m;
        mat[5] = -m * (double)in.w / 2.0;
        return fern__affine(who, t, mat, FERN_RESAMPLE_NEAREST, fill);
    case FERN_AA_TRANSLATE_X:
        mat[2] = -m;
        return fern__affine(who, t, mat, FERN_RESAMPLE_NEAREST, fill);
    case FERN_AA_TRANSLATE_Y:
        mat[5] = -m;
        return fern__affine(who, t, mat, FERN_RESAMPLE_NEAREST, fill);
    case FERN_AA_ROTATE:
        fern__rotation_matrix(m, in.h, in.w, mat);
        return fern__affine(who, t, mat, FERN_RESAMPLE_NEAREST, fill);
    case FERN_AA_BRIGHTNESS: return fern__adjust(who, t, 0, FERN__ADJ_BRIGHTNESS, 1.0 + m);
    case FERN_AA_COLOR:
        if (in.c != 3)
            return fern_retain(t);
        return fern__adjust(who, t, 0, FERN__ADJ_SATURATION, 1.0 + m);
    case FERN_AA_CONTRAST: return fern__adjust(who, t, 0, FERN__ADJ_CONTRAST, 1.0 + m);
    case FERN_AA_SHARPNESS: {
        fern__img out;
        double f = 1.0 + m;
        fern_tensor *o = copy_u8(&in, &out);
        if (!o)
            return NULL;
        uint8_t *dd = (uint8_t *)out.data;
        int64_t C = in.c;
        for (int64_t y = 1; y + 1 < in.h; y++)
            for (int64_t x = 1; x + 1 < in.w; x++)
                for (int64_t c = 0; c < C; c++) {
                    int s = 0;
                    for (int dy = -1; dy <= 1; dy++)
                        for (int dx = -1; dx <= 1; dx++) {
                            int v = ((const uint8_t *)in.data)[(y + dy) * in.sy + (x + dx) * in.sx + c * in.sc];
                            s += (dy == 0 && dx == 0) ? 5 * v : v;
                        }
                    double deg = nearbyint((double)s / 13.0);
                    double v = ((const uint8_t *)in.data)[y * in.sy + x * in.sx + c * in.sc];
                    dd[(y * in.w + x) * C + c] = rnd8(f * v + (1.0 - f) * deg);
                }
        return o;
    }
    default: break;
    }
    luts = malloc((size_t)in.c * 256);
    if (!luts) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", who);
        return NULL;
    }
    for (int64_t c = 0; c < in.c; c++) {
        uint8_t *lut = luts + c * 256;
        int64_t h[256];
        switch (op) {
        case FERN_AA_POSTERIZE: {
            int bits = (int)m;
            if (bits < 0)
                bits = 0;
            if (bits > 8)
                bits = 8;
            int mask = (0xFF << (8 - bits)) & 0xFF;
            for (int v = 0; v < 256; v++)
                lut[v] = (uint8_t)(v & mask);
            break;
        }
        case FERN_AA_SOLARIZE:
            for (int v = 0; v < 256; v++)
                lut[v] = (double)v >= m ? (uint8_t)(255 - v) : (uint8_t)v;
            break;
        case FERN_AA_INVERT:
            for (int v = 0; v < 256; v++)
                lut[v] = (uint8_t)(255 - v);
            break;
        case FERN_AA_AUTOCONTRAST: {
            histogram(&in, c, h);
            int lo = 0, hi = 255;
            while (lo < 256 && h[lo] == 0)
                lo++;
            while (hi >= 0 && h[hi] == 0)
                hi--;
            if (hi <= lo) {
                for (int v = 0; v < 256; v++)
                    lut[v] = (uint8_t)v;
            } else {
                double scale = 255.0 / (hi - lo), offset = -lo * scale;
                for (int v = 0; v < 256; v++) {
                    int ix = (int)(v * scale + offset);
                    lut[v] = (uint8_t)(ix < 0 ? 0 : ix > 255 ? 255 : ix);
                }
            }
            break;
        }
        case FERN_AA_EQUALIZE: {
            histogram(&in, c, h);
            int64_t total = 0, last = 0;
            int nz = 0;
            for (int v = 0; v < 256; v++)
                if (h[v]) {
                    total += h[v];
                    last = h[v];
                    nz++;
                }
            int64_t step = nz <= 1 ? 0 : (total - last) / 255;
            if (!step) {
                for (int v = 0; v < 256; v++)
                    lut[v] = (uint8_t)v;
            } else {
                int64_t n = step / 2;
                for (int v = 0; v < 256; v++) {
                    int64_t q = n / step;
                    lut[v] = (uint8_t)(q > 255 ? 255 : q);
                    n += h[v];
                }
            }
            break;
        }
        default:
            free(luts);
            fern_set_error(FERN_ERR_INVALID, "%s: unknown AutoAugment op %d", who, (int)op);
            return NULL;
        }
    }
    r = lut_apply(&in, luts);
    free(luts);
    return r;
}

typedef struct {
    fern_transform base;
    fern_aa_subpolicy *pol;
    int n;
    double fill;
    fern_aa_op op; /* single op */
    double mag;
} aa_tf;

static void aa_destroy(fern_transform *tf) { free(((aa_tf *)tf)->pol); }

static fern_tensor *aa_policy_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const aa_tf *a = (const aa_tf *)tf;
    (void)owned;
    fern__img im;
    if (fern__img_view("autoaugment", in, &im))
        return NULL;
    if (im.dt != FERN_U8) {
        char d[64];
        fern_set_error(FERN_ERR_INVALID, "autoaugment: needs a u8 HWC image, got %s", fern_tensor_desc(in, d, sizeof d));
        return NULL;
    }
    const fern_aa_subpolicy *sp = &a->pol[fern__drng_below(rng, a->n)];
    fern_tensor *cur = fern_retain(in);
    for (int k = 0; k < sp->n; k++) {
        const fern_aa_step *s = &sp->steps[k];
        double u = fern__drng_uniform(rng);
        int flip = (int)fern__drng_below(rng, 2);
        if (!(u < s->prob))
            continue;
        double m = s->signed_mag && flip ? -s->magnitude : s->magnitude;
        fern_tensor *next = aa_op("autoaugment", cur, s->op, m, a->fill);
        fern_release(cur);
        if (!next)
            return NULL;
        cur = next;
    }
    return cur;
}

static int check_step(const fern_aa_step *s, int i, int k)
{
    if ((unsigned)s->op >= FERN_AA_OP_COUNT || !(s->prob >= 0.0 && s->prob <= 1.0) || !isfinite(s->magnitude)) {
        fern_set_error(FERN_ERR_INVALID,
                       "autoaugment: sub-policy %d step %d: op %d must be a fern_aa_op, probability in [0,1] "
                       "and magnitude finite (prob %g, magnitude %g)",
                       i, k, (int)s->op, s->prob, s->magnitude);
        return -1;
    }
    if (s->op == FERN_AA_POSTERIZE && !(s->magnitude >= 0 && s->magnitude <= 8)) {
        fern_set_error(FERN_ERR_INVALID, "autoaugment: sub-policy %d step %d: posterize bits %g not in 0..8", i, k,
                       s->magnitude);
        return -1;
    }
    if ((s->op == FERN_AA_BRIGHTNESS || s->op == FERN_AA_COLOR || s->op == FERN_AA_CONTRAST ||
         s->op == FERN_AA_SHARPNESS) &&
        !(fabs(s->magnitude) <= 1.0)) {
        fern_set_error(FERN_ERR_INVALID, "autoaugment: sub-policy %d step %d: %s magnitude %g not in [-1, 1]", i, k,
                       aa_names[s->op], s->magnitude);
        return -1;
    }
    return 0;
}

fern_transform *fern_tf_autoaugment(const fern_aa_subpolicy *policy, int n, double fill)
{
    if (!policy || n < 1 || n > 4096) {
        fern_set_error(FERN_ERR_INVALID, "autoaugment: needs 1..4096 sub-policies (got %d)", n);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (policy[i].n < 1 || policy[i].n > 4) {
            fern_set_error(FERN_ERR_INVALID, "autoaugment: sub-policy %d has %d steps (1..4)", i, policy[i].n);
            return NULL;
        }
        for (int k = 0; k < policy[i].n; k++)
            if (check_step(&policy[i].steps[k], i, k))
                return NULL;
    }
    aa_tf *a = (aa_tf *)fern__tf_new(sizeof *a, "autoaugment", aa_policy_apply, aa_destroy);
    if (!a)
        return NULL;
    a->pol = malloc((size_t)n * sizeof *a->pol);
    if (!a->pol) {
        fern_transform_release(&a->base);
        fern_set_error(FERN_ERR_NOMEM, "autoaugment: out of memory");
        return NULL;
    }
    memcpy(a->pol, policy, (size_t)n * sizeof *a->pol);
    a->n = n;
    a->fill = fill;
    return &a->base;
}

/* torchvision's magnitude of bin b (of 10) for an op. */
static double bin_mag(fern_aa_op op, int b)
{
    switch (op) {
    case FERN_AA_SHEAR_X:
    case FERN_AA_SHEAR_Y: return 0.3 * b / 9.0;
    case FERN_AA_ROTATE: return 30.0 * b / 9.0;
    case FERN_AA_BRIGHTNESS:
    case FERN_AA_COLOR:
    case FERN_AA_CONTRAST:
    case FERN_AA_SHARPNESS: return 0.9 * b / 9.0;
    case FERN_AA_POSTERIZE: return 8.0 - nearbyint(b / (9.0 / 4.0));
    case FERN_AA_SOLARIZE: return 255.0 * (1.0 - b / 9.0);
    default: return 0.0;
    }
}

fern_transform *fern_tf_autoaugment_imagenet(double fill)
{
    /* torchvision.transforms.AutoAugmentPolicy.IMAGENET: (op, prob, bin) */
    static const struct {
        fern_aa_op op;
        double p;
        int bin;
    } T[25][2] = {
        {{FERN_AA_POSTERIZE, 0.4, 8}, {FERN_AA_ROTATE, 0.6, 9}},
        {{FERN_AA_SOLARIZE, 0.6, 5}, {FERN_AA_AUTOCONTRAST, 0.6, 0}},
        {{FERN_AA_EQUALIZE, 0.8, 0}, {FERN_AA_EQUALIZE, 0.6, 0}},
        {{FERN_AA_POSTERIZE, 0.6, 7}, {FERN_AA_POSTERIZE, 0.6, 6}},
        {{FERN_AA_EQUALIZE, 0.4, 0}, {FERN_AA_SOLARIZE, 0.2, 4}},
        {{FERN_AA_EQUALIZE, 0.4, 0}, {FERN_AA_ROTATE, 0.8, 8}},
        {{FERN_AA_SOLARIZE, 0.6, 3}, {FERN_AA_EQUALIZE, 0.6, 0}},
        {{FERN_AA_POSTERIZE, 0.8, 5}, {FERN_AA_EQUALIZE, 1.0, 0}},
        {{FERN_AA_ROTATE, 0.2, 3}, {FERN_AA_SOLARIZE, 0.6, 8}},
        {{FERN_AA_EQUALIZE, 0.6, 0}, {FERN_AA_POSTERIZE, 0.4, 6}},
        {{FERN_AA_ROTATE, 0.8, 8}, {FERN_AA_COLOR, 0.4, 0}},
        {{FERN_AA_ROTATE, 0.4, 9}, {FERN_AA_EQUALIZE, 0.6, 0}},
        {{FERN_AA_EQUALIZE, 0.0, 0}, {FERN_AA_EQUALIZE, 0.8, 0}},
        {{FERN_AA_INVERT, 0.6, 0}, {FERN_AA_EQUALIZE, 1.0, 0}},
        {{FERN_AA_COLOR, 0.6, 4}, {FERN_AA_CONTRAST, 1.0, 8}},
        {{FERN_AA_ROTATE, 0.8, 8}, {FERN_AA_COLOR, 1.0, 2}},
        {{FERN_AA_COLOR, 0.8, 8}, {FERN_AA_SOLARIZE, 0.8, 7}},
        {{FERN_AA_SHARPNESS, 0.4, 7}, {FERN_AA_INVERT, 0.6, 0}},
        {{FERN_AA_SHEAR_X, 0.6, 5}, {FERN_AA_EQUALIZE, 1.0, 0}},
        {{FERN_AA_COLOR, 0.4, 0}, {FERN_AA_EQUALIZE, 0.6, 0}},
        {{FERN_AA_EQUALIZE, 0.4, 0}, {FERN_AA_SOLARIZE, 0.2, 4}},
        {{FERN_AA_SOLARIZE, 0.6, 5}, {FERN_AA_AUTOCONTRAST, 0.6, 0}},
        {{FERN_AA_INVERT, 0.6, 0}, {FERN_AA_EQUALIZE, 1.0, 0}},
        {{FERN_AA_COLOR, 0.6, 4}, {FERN_AA_CONTRAST, 1.0, 8}},
        {{FERN_AA_EQUALIZE, 0.8, 0}, {FERN_AA_EQUALIZE, 0.6, 0}},
    };
    fern_aa_subpolicy pol[25];
    memset(pol, 0, sizeof pol);
    for (int i = 0; i < 25; i++) {
        pol[i].n = 2;
        for (int k = 0; k < 2; k++) {
            fern_aa_op op = T[i][k].op;
            pol[i].steps[k].op = op;
            pol[i].steps[k].prob = T[i][k].p;
            pol[i].steps[k].magnitude = bin_mag(op, T[i][k].bin);
            pol[i].steps[k].signed_mag = op == FERN_AA_SHEAR_X || op == FERN_AA_SHEAR_Y || op == FERN_AA_ROTATE ||
                                         op == FERN_AA_BRIGHTNESS || op == FERN_AA_COLOR || op == FERN_AA_CONTRAST ||
                                         op == FERN_AA_SHARPNESS;
        }
    }
    return fern_tf_autoaugment(pol, 25, fill);
}

static fern_tensor *aa_single_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const aa_tf *a = (const aa_tf *)tf;
    (void)owned;
    (void)rng;
    return aa_op("aa_op", in, a->op, a->mag, a->fill);
}

fern_transform *fern_tf_aa_op(fern_aa_op op, double magnitude, double fill)
{
    fern_aa_step s = {op, 1.0, magnitude, 0};
    if (check_step(&s, 0, 0))
        return NULL;
    aa_tf *a = (aa_tf *)fern__tf_new(sizeof *a, "aa_op", aa_single_apply, aa_destroy);
    if (!a)
        return NULL;
    a->op = op;
    a->mag = magnitude;
    a->fill = fill;
    return &a->base;
}
