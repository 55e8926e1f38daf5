/* Transforms: reference-counted tensor -> tensor functions with an
 * optional random stream. Layout rule: u8 images are HWC, float images CHW
 * (see data.h). Results are new unregistered tensors inside the pipeline;
 * fern_transform_apply registers its result like an op. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"

typedef struct {
    fern_transform base;
    double p[8];
    int64_t i[8];
    fern_resample interp;
    fern_transform **sub;
    int nsub;
    double *mean, *std;
    int nch;
} tfx;

static void tfx_destroy(fern_transform *tf)
{
    tfx *t = (tfx *)tf;
    for (int i = 0; i < t->nsub; i++)
        fern_transform_release(t->sub[i]);
    free(t->sub);
    free(t->mean);
    free(t->std);
}

fern_transform *fern__tf_new(size_t bytes, const char *name,
                             fern_tensor *(*apply)(const fern_transform *, fern_tensor *, int, fern__drng *),
                             void (*destroy)(fern_transform *))
{
    fern_transform *tf = calloc(1, bytes);
    if (!tf) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", name);
        return NULL;
    }
    atomic_init(&tf->refcount, 1);
    tf->name = name;
    tf->apply = apply;
    tf->destroy = destroy;
    return tf;
}

static tfx *tfx_new(const char *name, fern_tensor *(*apply)(const fern_transform *, fern_tensor *, int, fern__drng *))
{
    return (tfx *)fern__tf_new(sizeof(tfx), name, apply, tfx_destroy);
}

fern_transform *fern_transform_retain(fern_transform *tf)
{
    if (tf)
        atomic_fetch_add(&tf->refcount, 1);
    return tf;
}

void fern_transform_release(fern_transform *tf)
{
    if (!tf || atomic_fetch_sub(&tf->refcount, 1) != 1)
        return;
    if (tf->destroy)
        tf->destroy(tf);
    free(tf);
}

const char *fern_transform_name(const fern_transform *tf) { return tf ? tf->name : "(null)"; }

fern_tensor *fern__tf_run(fern_transform *const *tfs, int n, fern_tensor *in, fern__drng *rng)
{
    fern_tensor *cur = fern_retain(in);
    int owned = 0;
    for (int i = 0; i < n; i++) {
        fern_tensor *next = tfs[i]->apply(tfs[i], cur, owned, rng);
        if (!next) {
            fern_release(cur);
            if (fern_last_status() == FERN_OK)
                fern_set_error(FERN_ERR_INTERNAL, "%s: failed", tfs[i]->name);
            return NULL;
        }
        if (next != cur)
            owned = 1;
        fern_release(cur);
        cur = next;
    }
    return cur;
}

fern_tensor *fern_transform_apply(const fern_transform *tf, const fern_tensor *img, uint64_t seed)
{
    if (!tf || !img) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "transform_apply: %s is NULL", tf ? "image" : "transform");
        return NULL;
    }
    fern__drng rng;
    fern__drng_init(&rng, seed);
    fern_transform *t = (fern_transform *)tf;
    return fern__scope_register(fern__tf_run(&t, 1, (fern_tensor *)img, &rng));
}

/* Consume an array of transforms into *out (copied); NULL entries fail. */
static int take_subs(const char *who, fern_transform *const *tfs, int n, tfx *t)
{
    int bad = !tfs || n < 1;
    for (int i = 0; !bad && i < n; i++)
        bad = !tfs[i];
    if (!bad && t) {
        t->sub = malloc((size_t)n * sizeof *t->sub);
        if (t->sub) {
            memcpy(t->sub, tfs, (size_t)n * sizeof *t->sub);
            t->nsub = n;
            return 0;
        }
    }
    for (int i = 0; tfs && i < n; i++)
        fern_transform_release(tfs[i]);
    if (t && !bad)
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", who);
    else if (fern_last_status() == FERN_OK)
        fern_set_error(FERN_ERR_INVALID, "%s: %s", who, n < 1 || !tfs ? "no transforms" : "a transform is NULL");
    return -1;
}

static fern_transform *fail_param(tfx *t, const char *fmt, const char *name, double v)
{
    fern_set_error(FERN_ERR_INVALID, fmt, name, v);
    fern_transform_release(t ? &t->base : NULL);
    return NULL;
}

/* ---- compose / random apply ----------------------------------------------------------------- */

static fern_tensor *compose_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const tfx *t = (const tfx *)tf;
    (void)owned;
    return fern__tf_run(t->sub, t->nsub, in, rng);
}

fern_transform *fern_tf_compose(fern_transform *const *tfs, int n)
{
    tfx *t = tfx_new("compose", compose_apply);
    if (take_subs("compose", tfs, n, t)) {
        fern_transform_release(t ? &t->base : NULL);
        return NULL;
    }
    return &t->base;
}

static fern_tensor *random_apply_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const tfx *t = (const tfx *)tf;
    (void)owned;
    if (fern__drng_uniform(rng) < t->p[0])
        return fern__tf_run(t->sub, 1, in, rng);
    return fern_retain(in);
}

fern_transform *fern_tf_random_apply(fern_transform *tf, double p)
{
    tfx *t = tfx_new("random_apply", random_apply_apply);
    if (take_subs("random_apply", &tf, 1, t)) {
        fern_transform_release(t ? &t->base : NULL);
        return NULL;
    }
    if (!(p >= 0.0 && p <= 1.0))
        return fail_param(t, "%s: probability %g is outside [0, 1]", "random_apply", p);
    t->p[0] = p;
    return &t->base;
}

/* ---- decode ----------------------------------------------------------------------------------- */

static fern_tensor *decode_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const tfx *t = (const tfx *)tf;
    (void)owned;
    (void)rng;
    char d[64];
    if (in->dtype != FERN_U8 || in->ndim != 1) {
        fern_set_error(FERN_ERR_INVALID, "decode: needs encoded bytes u8[n], got %s", fern_tensor_desc(in, d, sizeof d));
        return NULL;
    }
    fern_decode_opts o = {(int)t->i[0], 0};
    if (fern_tensor_is_contiguous(in))
        return fern__decode(fern_tensor_data(in), (size_t)in->shape[0], "decode", &o);
    size_t n = (size_t)in->shape[0];
    void *buf = malloc(n ? n : 1);
    if (!buf) {
        fern_set_error(FERN_ERR_NOMEM, "decode: out of memory");
        return NULL;
    }
    fern_tensor *r = NULL;
    if (fern_tensor_copy_to(in, buf, n) == FERN_OK)
        r = fern__decode(buf, n, "decode", &o);
    free(buf);
    return r;
}

fern_transform *fern_tf_decode(int channels)
{
    tfx *t = tfx_new("decode", decode_apply);
    if (!t)
        return NULL;
    if (channels != 0 && channels != 1 && channels != 3 && channels != 4)
        return fail_param(t, "%s: channels %g is not 0, 1, 3 or 4", "decode", channels);
    t->i[0] = channels;
    return &t->base;
}

/* ---- geometry ------------------------------------------------------------------------------------ */

static int check_interp(fern_resample i) { return i == FERN_RESAMPLE_NEAREST || i == FERN_RESAMPLE_BILINEAR || i == FERN_RESAMPLE_BILINEAR_NOAA; }

static fern_tensor *resize_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const tfx *t = (const tfx *)tf;
    (void)owned;
    (void)rng;
    fern__img im;
    if (fern__img_view("resize", in, &im))
        return NULL;
    int64_t oh = t->i[0], ow = t->i[1];
    if (ow <= 0) { /* shorter side -> oh */
        if (im.h <= im.w) {
            ow = im.h > 0 ? (int64_t)((double)oh * (double)im.w / (double)im.h) : 0;
        } else {
            ow = oh;
            oh = im.w > 0 ? (int64_t)((double)ow * (double)im.h / (double)im.w) : 0;
        }
    }
    return fern__resize("resize", in, oh, ow, t->interp);
}

fern_transform *fern_tf_resize(int64_t h, int64_t w, fern_resample interp)
{
    tfx *t = tfx_new("resize", resize_apply);
    if (!t)
        return NULL;
    if (h < 1 || h > (1 << 20) || w > (1 << 20))
        return fail_param(t, "%s: size %g is outside 1..1048576", "resize", (double)(h < 1 ? h : w));
    if (!check_interp(interp))
        return fail_param(t, "%s: unknown interpolation %g", "resize", interp);
    t->i[0] = h;
    t->i[1] = w;
    t->interp = interp;
    return &t->base;
}

static int64_t round_half_even(double v)
{
    double r = nearbyint(v); /* default rounding mode: half to even */
    return (int64_t)r;
}

static fern_tensor *center_crop_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const tfx *t = (const tfx *)tf;
    (void)owned;
    (void)rng;
    fern__img im;
    if (fern__img_view("center_crop", in, &im))
        return NULL;
    int64_t h = t->i[0], w = t->i[1];
    int64_t top = im.h >= h ? round_half_even((double)(im.h - h) / 2.0) : -((h - im.h) / 2);
    int64_t left = im.w >= w ? round_half_even((double)(im.w - w) / 2.0) : -((w - im.w) / 2);
    return fern__crop_pad("center_crop", in, top, left, h, w, 0.0);
}

fern_transform *fern_tf_center_crop(int64_t h, int64_t w)
{
    tfx *t = tfx_new("center_crop", center_crop_apply);
    if (!t)
        return NULL;
    if (h < 1 || w < 1 || h > (1 << 20) || w > (1 << 20))
        return fail_param(t, "%s: size %g is outside 1..1048576", "center_crop", (double)(h < 1 || h > (1 << 20) ? h : w));
    t->i[0] = h;
    t->i[1] = w;
    return &t->base;
}

static fern_tensor *crop_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const tfx *t = (const tfx *)tf;
    (void)owned;
    (void)rng;
    fern__img im;
    if (fern__img_view("crop", in, &im))
        return NULL;
    if (t->i[0] + t->i[2] > im.h || t->i[1] + t->i[3] > im.w) {
        char d[64];
        fern_set_error(FERN_ERR_INVALID, "crop: region (top %lld, left %lld, %lldx%lld) does not fit in %s",
                       (long long)t->i[0], (long long)t->i[1], (long long)t->i[2], (long long)t->i[3],
                       fern_tensor_desc(in, d, sizeof d));
        return NULL;
    }
    return fern__crop_pad("crop", in, t->i[0], t->i[1], t->i[2], t->i[3], 0.0);
}

fern_transform *fern_tf_crop(int64_t top, int64_t left, int64_t h, int64_t w)
{
    tfx *t = tfx_new("crop", crop_apply);
    if (!t)
        return NULL;
    if (top < 0 || left < 0 || h < 1 || w < 1 || h > (1 << 20) || w > (1 << 20))
        return fail_param(t, "%s: bad region (a coordinate is negative or the size is outside 1..1048576; %g)",
                          "crop", (double)(top < 0 ? top : left < 0 ? left : h < 1 ? h : w));
    t->i[0] = top;
    t->i[1] = left;
    t->i[2] = h;
    t->i[3] = w;
    return &t->base;
}

static fern_tensor *random_crop_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const tfx *t = (const tfx *)tf;
    (void)owned;
    fern__img im;
    if (fern__img_view("random_crop", in, &im))
        return NULL;
    int64_t h = t->i[0], w = t->i[1], p = t->i[2];
    int64_t H = im.h + 2 * p, W = im.w + 2 * p;
    if (H < h || W < w) {
        char d[64];
        fern_set_error(FERN_ERR_INVALID, "random_crop: crop %lldx%lld is larger than the padded image (%s, padding %lld)",
                       (long long)h, (long long)w, fern_tensor_desc(in, d, sizeof d), (long long)p);
        return NULL;
    }
    int64_t i = fern__drng_below(rng, H - h + 1);
    int64_t j = fern__drng_below(rng, W - w + 1);
    return fern__crop_pad("random_crop", in, i - p, j - p, h, w, t->p[0]);
}

fern_transform *fern_tf_random_crop(int64_t h, int64_t w, int64_t padding, double fill)
{
    tfx *t = tfx_new("random_crop", random_crop_apply);
    if (!t)
        return NULL;
    if (h < 1 || w < 1 || h > (1 << 20) || w > (1 << 20) || padding < 0 || padding > (1 << 20))
        return fail_param(t, "%s: bad size or padding (%g)", "random_crop", (double)(padding < 0 ? padding : h < 1 ? h : w));
    t->i[0] = h;
    t->i[1] = w;
    t->i[2] = padding;
    t->p[0] = fill;
    return &t->base;
}

static fern_tensor *pad_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const tfx *t = (const tfx *)tf;
    (void)owned;
    (void)rng;
    fern__img im;
    if (fern__img_view("pad", in, &im))
        return NULL;
    return fern__crop_pad("pad", in, -t->i[1], -t->i[0], im.h + t->i[1] + t->i[3], im.w + t->i[0] + t->i[2], t->p[0]);
}

fern_transform *fern_tf_pad(int64_t left, int64_t top, int64_t right, int64_t bottom, double fill)
{
    tfx *t = tfx_new("pad", pad_apply);
    if (!t)
        return NULL;
    int64_t v[4] = {left, top, right, bottom};
    for (int k = 0; k < 4; k++) {
        if (v[k] < 0 || v[k] > (1 << 20))
            return fail_param(t, "%s: padding %g is outside 0..1048576", "pad", (double)v[k]);
        t->i[k] = v[k];
    }
    t->p[0] = fill;
    return &t->base;
}

/* A view of the h x w region at (top, left) of an image tensor. */
static fern_tensor *crop_view(const fern_tensor *t, const fern__img *im, int64_t top, int64_t left, int64_t h, int64_t w)
{
    int64_t shape[3], off = t->offset + top * im->sy + left * im->sx;
    if (t->ndim == 2) {
        shape[0] = h;
        shape[1] = w;
    } else if (im->chw) {
        shape[0] = im->c;
        shape[1] = h;
        shape[2] = w;
    } else {
        shape[0] = h;
        shape[1] = w;
        shape[2] = im->c;
    }
    return fern__tensor_view(t, t->ndim, shape, t->strides, off);
}

static fern_tensor *rrc_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const tfx *t = (const tfx *)tf;
    (void)owned;
    fern__img im;
    if (fern__img_view("random_resized_crop", in, &im))
        return NULL;
    if (im.h < 1 || im.w < 1) {
        fern_set_error(FERN_ERR_INVALID, "random_resized_crop: empty image");
        return NULL;
    }
    double area = (double)im.h * (double)im.w;
    double lr0 = log(t->p[2]), lr1 = log(t->p[3]);
    int64_t top = 0, left = 0, h = 0, w = 0;
    int found = 0;
    for (int attempt = 0; attempt < 10 && !found; attempt++) {
        double ta = area * fern__drng_range(rng, t->p[0], t->p[1]);
        double ar = exp(fern__drng_range(rng, lr0, lr1));
        int64_t cw = (int64_t)nearbyint(sqrt(ta * ar));
        int64_t ch = (int64_t)nearbyint(sqrt(ta / ar));
        if (cw > 0 && cw <= im.w && ch > 0 && ch <= im.h) {
            top = fern__drng_below(rng, im.h - ch + 1);
            left = fern__drng_below(rng, im.w - cw + 1);
            h = ch;
            w = cw;
            found = 1;
        }
    }
    if (!found) {
        double in_ratio = (double)im.w / (double)im.h;
        if (in_ratio < t->p[2]) {
            w = im.w;
            h = (int64_t)nearbyint((double)w / t->p[2]);
        } else if (in_ratio > t->p[3]) {
            h = im.h;
            w = (int64_t)nearbyint((double)h * t->p[3]);
        } else {
            w = im.w;
            h = im.h;
        }
        if (h < 1)
            h = 1;
        if (w < 1)
            w = 1;
        if (h > im.h)
            h = im.h;
        if (w > im.w)
            w = im.w;
        top = (im.h - h) / 2;
        left = (im.w - w) / 2;
    }
    fern_tensor *v = crop_view(in, &im, top, left, h, w);
    if (!v)
        return NULL;
    fern_tensor *r = fern__resize("random_resized_crop", v, t->i[0], t->i[1], t->interp);
    fern_release(v);
    return r;
}

fern_transform *fern_tf_random_resized_crop(int64_t h, int64_t w, double scale_min, double scale_max,
                                            double ratio_min, double ratio_max, fern_resample interp)
{
    tfx *t = tfx_new("random_resized_crop", rrc_apply);
    if (!t)
        return NULL;
    if (h < 1 || w < 1 || h > (1 << 20) || w > (1 << 20))
        return fail_param(t, "%s: size %g is outside 1..1048576", "random_resized_crop", (double)(h < 1 ? h : w));
    if (!(scale_min > 0.0 && scale_min <= scale_max && scale_max <= 1.0))
        return fail_param(t, "%s: scale range must satisfy 0 < min <= max <= 1 (min %g)", "random_resized_crop", scale_min);
    if (!(ratio_min > 0.0 && ratio_min <= ratio_max && isfinite(ratio_max)))
        return fail_param(t, "%s: ratio range must satisfy 0 < min <= max (min %g)", "random_resized_crop", ratio_min);
    if (!check_interp(interp))
        return fail_param(t, "%s: unknown interpolation %g", "random_resized_crop", interp);
    t->i[0] = h;
    t->i[1] = w;
    t->p[0] = scale_min;
    t->p[1] = scale_max;
    t->p[2] = ratio_min;
    t->p[3] = ratio_max;
    t->interp = interp;
    return &t->base;
}

static fern_tensor *flip_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const tfx *t = (const tfx *)tf;
    if (t->p[0] < 1.0 && !(fern__drng_uniform(rng) < t->p[0])) {
        fern__img im;
        if (fern__img_view(tf->name, in, &im))
            return NULL;
        return fern_retain(in);
    }
    return fern__flip(tf->name, in, owned, (int)t->i[0]);
}

static fern_transform *flip_new(const char *name, int horizontal, double p)
{
    tfx *t = tfx_new(name, flip_apply);
    if (!t)
        return NULL;
    if (!(p >= 0.0 && p <= 1.0))
        return fail_param(t, "%s: probability %g is outside [0, 1]", name, p);
    t->i[0] = horizontal;
    t->p[0] = p;
    return &t->base;
}

fern_transform *fern_tf_hflip(void) { return flip_new("hflip", 1, 1.0); }
fern_transform *fern_tf_vflip(void) { return flip_new("vflip", 0, 1.0); }
fern_transform *fern_tf_random_hflip(double p) { return flip_new("random_hflip", 1, p); }
fern_transform *fern_tf_random_vflip(double p) { return flip_new("random_vflip", 0, p); }

static fern_tensor *affine_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const tfx *t = (const tfx *)tf;
    (void)owned;
    fern__img im;
    if (fern__img_view(tf->name, in, &im))
        return NULL;
    double m[6];
    if (t->i[0] == 1) { /* rotate */
        fern__rotation_matrix(t->p[0], im.h, im.w, m);
    } else if (t->i[0] == 2) { /* random rotate */
        double a = fern__drng_range(rng, -t->p[0], t->p[0]);
        fern__rotation_matrix(a, im.h, im.w, m);
    } else {
        memcpy(m, t->p, sizeof m);
    }
    return fern__affine(tf->name, in, m, t->interp, t->p[6]);
}

static fern_transform *affine_new(const char *name, int kind, const double *p, int np, fern_resample interp, double fill)
{
    tfx *t = tfx_new(name, affine_apply);
    if (!t)
        return NULL;
    if (interp != FERN_RESAMPLE_NEAREST && interp != FERN_RESAMPLE_BILINEAR)
        return fail_param(t, "%s: interpolation %g must be NEAREST or BILINEAR", name, interp);
    for (int k = 0; k < np; k++) {
        if (!isfinite(p[k]))
            return fail_param(t, "%s: parameter %g is not finite", name, p[k]);
        t->p[k] = p[k];
    }
    t->i[0] = kind;
    t->interp = interp;
    t->p[6] = fill;
    return &t->base;
}

fern_transform *fern_tf_rotate(double degrees, fern_resample interp, double fill)
{
    return affine_new("rotate", 1, &degrees, 1, interp, fill);
}

fern_transform *fern_tf_random_rotate(double max_degrees, fern_resample interp, double fill)
{
    if (!(max_degrees >= 0.0)) {
        fern_set_error(FERN_ERR_INVALID, "random_rotate: max_degrees %g is negative", max_degrees);
        return NULL;
    }
    return affine_new("random_rotate", 2, &max_degrees, 1, interp, fill);
}

fern_transform *fern_tf_affine(const double m[6], fern_resample interp, double fill)
{
    if (!m) {
        fern_set_error(FERN_ERR_INVALID, "affine: matrix is NULL");
        return NULL;
    }
    return affine_new("affine", 0, m, 6, interp, fill);
}

/* ---- value transforms ------------------------------------------------------------------------- */

static int may_reuse(const fern_tensor *t, int owned)
{
    return owned && fern_tensor_is_contiguous(t) && fern_tensor_refcount(t) == 1 && t->storage &&
           atomic_load(&t->storage->refcount) == 1;
}

static fern_tensor *normalize_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const tfx *t = (const tfx *)tf;
    (void)rng;
    fern__img im;
    char d[64];
    if (fern__img_view("normalize", in, &im))
        return NULL;
    if (im.dt == FERN_U8) {
        fern_set_error(FERN_ERR_INVALID, "normalize: needs a float CHW image (apply to_tensor first), got %s",
                       fern_tensor_desc(in, d, sizeof d));
        return NULL;
    }
    if (t->nch != 1 && t->nch != im.c) {
        fern_set_error(FERN_ERR_INVALID, "normalize: %d means/stds for an image with %lld channels (%s)", t->nch,
                       (long long)im.c, fern_tensor_desc(in, d, sizeof d));
        return NULL;
    }
    fern__img out;
    fern_tensor *o;
    if (may_reuse(in, owned)) {
        o = fern_retain(in);
        out = im;
    } else if (!(o = fern__img_alloc(&im, im.h, im.w, im.c, &out))) {
        return NULL;
    }
    for (int64_t c = 0; c < im.c; c++) {
        int k = t->nch == 1 ? 0 : (int)c;
        if (im.dt == FERN_F32) {
            float m = (float)t->mean[k], s = (float)t->std[k];
            const float *src = (const float *)im.data + c * im.sc;
            float *dst = (float *)out.data + c * out.sc;
            if (im.sx == 1 && im.sy == im.w && out.sy == out.w && out.sx == 1) {
                int64_t n = im.h * im.w;
                for (int64_t i = 0; i < n; i++)
                    dst[i] = (src[i] - m) / s;
            } else {
                for (int64_t y = 0; y < im.h; y++)
                    for (int64_t x = 0; x < im.w; x++)
                        dst[y * out.sy + x * out.sx] = (src[y * im.sy + x * im.sx] - m) / s;
            }
        } else {
            const double *src = (const double *)im.data + c * im.sc;
            double *dst = (double *)out.data + c * out.sc;
            for (int64_t y = 0; y < im.h; y++)
                for (int64_t x = 0; x < im.w; x++)
                    dst[y * out.sy + x * out.sx] = (src[y * im.sy + x * im.sx] - t->mean[k]) / t->std[k];
        }
    }
    return o;
}

fern_transform *fern_tf_normalize(int n, const double *mean, const double *std)
{
    tfx *t = tfx_new("normalize", normalize_apply);
    if (!t)
        return NULL;
    if (n < 1 || n > 4096 || !mean || !std)
        return fail_param(t, "%s: needs 1..4096 means and stds (got %g)", "normalize", n);
    t->mean = malloc((size_t)n * sizeof *t->mean);
    t->std = malloc((size_t)n * sizeof *t->std);
    if (!t->mean || !t->std)
        return fail_param(t, "%s: out of memory (%g)", "normalize", n);
    for (int k = 0; k < n; k++) {
        if (!(std[k] != 0.0) || !isfinite(std[k]) || !isfinite(mean[k]))
            return fail_param(t, "%s: std %g must be finite and non-zero (and mean finite)", "normalize", std[k]);
        t->mean[k] = mean[k];
        t->std[k] = std[k];
    }
    t->nch = n;
    return &t->base;
}

static fern_tensor *rescale_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const tfx *t = (const tfx *)tf;
    (void)rng;
    if (fern_tensor_is_symbolic(in) || (!fern_dtype_is_float(in->dtype) && !fern_dtype_is_int(in->dtype))) {
        char d[64];
        fern_set_error(FERN_ERR_INVALID, "rescale: needs a numeric tensor, got %s", fern_tensor_desc(in, d, sizeof d));
        return NULL;
    }
    fern_tensor *o;
    int64_t n = fern_tensor_numel(in);
    if (in->dtype == FERN_F32 && may_reuse(in, owned))
        o = fern_retain(in);
    else if (!(o = fern__tensor_alloc(FERN_F32, in->ndim, in->shape, FERN_CPU)))
        return NULL;
    float *dst = fern_tensor_data(o);
    float sc = (float)t->p[0], sh = (float)t->p[1];
    if (in->dtype == FERN_U8 && fern_tensor_is_contiguous(in)) {
        const uint8_t *src = fern_tensor_data(in);
        for (int64_t i = 0; i < n; i++)
            dst[i] = (float)src[i] * sc + sh;
    } else if (in->dtype == FERN_F32 && fern_tensor_is_contiguous(in)) {
        const float *src = fern_tensor_data(in);
        for (int64_t i = 0; i < n; i++)
            dst[i] = src[i] * sc + sh;
    } else {
        for (int64_t i = 0; i < n; i++)
            dst[i] = (float)fern_tensor_get_flat(in, i) * sc + sh;
    }
    return o;
}

fern_transform *fern_tf_rescale(double scale, double shift)
{
    tfx *t = tfx_new("rescale", rescale_apply);
    if (!t)
        return NULL;
    if (!isfinite(scale) || !isfinite(shift))
        return fail_param(t, "%s: scale and shift must be finite (%g)", "rescale", isfinite(scale) ? shift : scale);
    t->p[0] = scale;
    t->p[1] = shift;
    return &t->base;
}

static fern_tensor *hwc_to_chw_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    (void)tf;
    (void)owned;
    (void)rng;
    char d[64];
    if (fern_tensor_is_symbolic(in) || in->ndim != 3) {
        fern_set_error(FERN_ERR_INVALID, "hwc_to_chw: needs a [H,W,C] tensor, got %s", fern_tensor_desc(in, d, sizeof d));
        return NULL;
    }
    int64_t shape[3] = {in->shape[2], in->shape[0], in->shape[1]};
    fern_tensor *o = fern__tensor_alloc(in->dtype, 3, shape, FERN_CPU);
    if (!o)
        return NULL;
    int64_t vs[3] = {in->strides[2], in->strides[0], in->strides[1]};
    fern_tensor *v = fern__tensor_view(in, 3, shape, vs, in->offset);
    if (!v) {
        fern_release(o);
        return NULL;
    }
    fern__strided_copy(v, o);
    fern_release(v);
    return o;
}

fern_transform *fern_tf_hwc_to_chw(void) { tfx *t = tfx_new("hwc_to_chw", hwc_to_chw_apply); return t ? &t->base : NULL; }

static fern_tensor *to_tensor_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    (void)tf;
    (void)owned;
    (void)rng;
    fern__img im;
    if (fern__img_view("to_tensor", in, &im))
        return NULL;
    if (im.dt != FERN_U8)
        return fern_retain(in);
    int64_t shape[3] = {im.c, im.h, im.w};
    fern_tensor *o = fern__tensor_alloc(FERN_F32, 3, shape, FERN_CPU);
    if (!o)
        return NULL;
    float *dst = fern_tensor_data(o);
    const uint8_t *src = (const uint8_t *)im.data;
    const float s = 1.0f / 255.0f;
    (void)s;
    int64_t hw = im.h * im.w;
    if (im.c == 1 && im.sx == 1 && im.sy == im.w) {
        for (int64_t i = 0; i < hw; i++)
            dst[i] = (float)src[i] / 255.0f;
        return o;
    }
    for (int64_t c = 0; c < im.c; c++)
        for (int64_t y = 0; y < im.h; y++)
            for (int64_t x = 0; x < im.w; x++)
                dst[c * hw + y * im.w + x] = (float)src[y * im.sy + x * im.sx + c * im.sc] / 255.0f;
    return o;
}

fern_transform *fern_tf_to_tensor(void) { tfx *t = tfx_new("to_tensor", to_tensor_apply); return t ? &t->base : NULL; }

static fern_tensor *cast_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const tfx *t = (const tfx *)tf;
    (void)owned;
    (void)rng;
    if (fern_tensor_is_symbolic(in)) {
        fern_set_error(FERN_ERR_INVALID, "cast: symbolic tensor");
        return NULL;
    }
    if (in->dtype == (fern_dtype)t->i[0])
        return fern_retain(in);
    fern_tensor *o = fern__tensor_alloc((fern_dtype)t->i[0], in->ndim, in->shape, FERN_CPU);
    if (!o)
        return NULL;
    if (fern_tensor_assign(o, in) != FERN_OK) {
        fern_release(o);
        return NULL;
    }
    return o;
}

fern_transform *fern_tf_cast(fern_dtype dt)
{
    tfx *t = tfx_new("cast", cast_apply);
    if (!t)
        return NULL;
    if ((unsigned)dt >= FERN_DTYPE_COUNT)
        return fail_param(t, "%s: invalid dtype %g", "cast", dt);
    t->i[0] = dt;
    return &t->base;
}

/* ---- color ----------------------------------------------------------------------------------- */

static fern_tensor *adjust_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const tfx *t = (const tfx *)tf;
    (void)rng;
    return fern__adjust(tf->name, in, owned, (int)t->i[0], t->p[0]);
}

static fern_transform *adjust_new(const char *name, int kind, double f)
{
    tfx *t = tfx_new(name, adjust_apply);
    if (!t)
        return NULL;
    if (!(f >= 0.0) || !isfinite(f))
        return fail_param(t, "%s: factor %g must be finite and >= 0", name, f);
    t->i[0] = kind;
    t->p[0] = f;
    return &t->base;
}

fern_transform *fern_tf_adjust_brightness(double f) { return adjust_new("adjust_brightness", FERN__ADJ_BRIGHTNESS, f); }
fern_transform *fern_tf_adjust_contrast(double f) { return adjust_new("adjust_contrast", FERN__ADJ_CONTRAST, f); }
fern_transform *fern_tf_adjust_saturation(double f) { return adjust_new("adjust_saturation", FERN__ADJ_SATURATION, f); }

static fern_tensor *jitter_apply(const fern_transform *tf, fern_tensor *in, int owned, fern__drng *rng)
{
    const tfx *t = (const tfx *)tf;
    fern_tensor *cur = fern_retain(in);
    for (int k = 0; k < 3; k++) {
        double d = t->p[k];
        if (d <= 0.0)
            continue;
        double lo = 1.0 - d > 0.0 ? 1.0 - d : 0.0;
        double f = fern__drng_range(rng, lo, 1.0 + d);
        fern_tensor *next = fern__adjust(tf->name, cur, owned || cur != in, (int)t->i[k], f);
        fern_release(cur);
        if (!next)
            return NULL;
        cur = next;
    }
    if (cur == in) { /* nothing enabled: still validate */
        fern__img im;
        if (fern__img_view(tf->name, in, &im)) {
            fern_release(cur);
            return NULL;
        }
    }
    return cur;
}

static fern_transform *jitter_new(const char *name, double b, double c, double s)
{
    tfx *t = tfx_new(name, jitter_apply);
    if (!t)
        return NULL;
    double v[3] = {b, c, s};
    for (int k = 0; k < 3; k++) {
        if (!(v[k] >= 0.0) || !isfinite(v[k]))
            return fail_param(t, "%s: range %g must be finite and >= 0", name, v[k]);
        t->p[k] = v[k];
    }
    t->i[0] = FERN__ADJ_BRIGHTNESS;
    t->i[1] = FERN__ADJ_CONTRAST;
    t->i[2] = FERN__ADJ_SATURATION;
    return &t->base;
}

fern_transform *fern_tf_random_brightness(double delta) { return jitter_new("random_brightness", delta, 0, 0); }
fern_transform *fern_tf_random_contrast(double delta) { return jitter_new("random_contrast", 0, delta, 0); }
fern_transform *fern_tf_random_saturation(double delta) { return jitter_new("random_saturation", 0, 0, delta); }
fern_transform *fern_tf_color_jitter(double b, double c, double s) { return jitter_new("color_jitter", b, c, s); }
