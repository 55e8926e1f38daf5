/* Image kernels of the vision transforms: separable remaps (crop, pad,
 * flip), resizing (Pillow's antialiased bilinear with its 8-bit fixed-point
 * arithmetic, plain half-pixel bilinear, Pillow nearest), affine warps
 * (rotation) and color adjustments. u8 images are HWC, float images CHW. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"

int fern__img_view(const char *who, const fern_tensor *t, fern__img *im)
{
    char d[96];
    if (!t) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "%s: image is NULL", who);
        return -1;
    }
    int ok = !fern_tensor_is_symbolic(t) && (t->ndim == 2 || t->ndim == 3) &&
             (t->dtype == FERN_U8 || t->dtype == FERN_F32 || t->dtype == FERN_F64);
    if (!ok) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: expected an image (u8 [H,W,C], f32/f64 [C,H,W], or [H,W]), got %s", who,
                       fern_tensor_desc(t, d, sizeof d));
        return -1;
    }
    im->dt = t->dtype;
    im->rank = t->ndim;
    im->data = fern_tensor_data(t);
    if (t->ndim == 2) {
        im->h = t->shape[0];
        im->w = t->shape[1];
        im->c = 1;
        im->sy = t->strides[0];
        im->sx = t->strides[1];
        im->sc = 0;
        im->chw = t->dtype != FERN_U8;
    } else if (t->dtype == FERN_U8) {
        im->h = t->shape[0];
        im->w = t->shape[1];
        im->c = t->shape[2];
        im->sy = t->strides[0];
        im->sx = t->strides[1];
        im->sc = t->strides[2];
        im->chw = 0;
    } else {
        im->c = t->shape[0];
        im->h = t->shape[1];
        im->w = t->shape[2];
        im->sc = t->strides[0];
        im->sy = t->strides[1];
        im->sx = t->strides[2];
        im->chw = 1;
    }
    return 0;
}

fern_tensor *fern__img_alloc(const fern__img *like, int64_t h, int64_t w, int64_t c, fern__img *out)
{
    int64_t shape[3];
    int nd = like->rank == 2 && c == 1 ? 2 : 3;
    int chw = like->dt != FERN_U8;
    if (nd == 2) {
        shape[0] = h;
        shape[1] = w;
    } else if (chw) {
        shape[0] = c;
        shape[1] = h;
        shape[2] = w;
    } else {
        shape[0] = h;
        shape[1] = w;
        shape[2] = c;
    }
    fern_tensor *t = fern__tensor_alloc(like->dt, nd, shape, FERN_CPU);
    if (t && out && fern__img_view("image", t, out)) {
        fern_release(t);
        return NULL;
    }
    return t;
}

static inline double ld(const fern__img *im, int64_t off)
{
    switch (im->dt) {
    case FERN_U8: return ((const uint8_t *)im->data)[off];
    case FERN_F32: return ((const float *)im->data)[off];
    default: return ((const double *)im->data)[off];
    }
}

static inline uint8_t sat8(double v)
{
    if (!(v > 0.0))
        return 0;
    if (v >= 255.0)
        return 255;
    return (uint8_t)(v + 0.5);
}

static inline void st(const fern__img *im, int64_t off, double v)
{
    switch (im->dt) {
    case FERN_U8: ((uint8_t *)im->data)[off] = sat8(v); break;
    case FERN_F32: ((float *)im->data)[off] = (float)v; break;
    default: ((double *)im->data)[off] = v;
    }
}

/* ---- separable remaps ------------------------------------------------------------------ */

/* out(y, x, c) = in(ymap[y], xmap[x], c), or fill where a map is -1. */
static void remap(const fern__img *in, const fern__img *out, const int64_t *ymap, const int64_t *xmap,
                  double fill)
{
    size_t es = fern_dtype_size(in->dt);
    int64_t C = out->c;
    if (in->dt == FERN_U8 && !out->chw) {
        uint8_t f = sat8(fill);
        const uint8_t *src = (const uint8_t *)in->data;
        uint8_t *dst = (uint8_t *)out->data;
        int rowcopy = in->sc == 1 && in->sx == C;
        for (int64_t y = 0; y < out->h; y++) {
            uint8_t *o = dst + y * out->sy;
            if (ymap[y] < 0) {
                memset(o, f, (size_t)(out->w * C));
                continue;
            }
            const uint8_t *r = src + ymap[y] * in->sy;
            int64_t x = 0;
            while (x < out->w) {
                if (xmap[x] < 0) {
                    memset(o + x * C, f, (size_t)C);
                    x++;
                    continue;
                }
                int64_t run = 1;
                if (rowcopy)
                    while (x + run < out->w && xmap[x + run] == xmap[x] + run)
                        run++;
                if (run > 1 || (rowcopy && C > 1)) {
                    memcpy(o + x * C, r + xmap[x] * C, (size_t)(run * C));
                } else {
                    const uint8_t *p = r + xmap[x] * in->sx;
                    for (int64_t c = 0; c < C; c++)
                        o[x * C + c] = p[c * in->sc];
                }
                x += run;
            }
        }
        return;
    }
    for (int64_t c = 0; c < C; c++)
        for (int64_t y = 0; y < out->h; y++)
            for (int64_t x = 0; x < out->w; x++) {
                int64_t oo = y * out->sy + x * out->sx + c * out->sc;
                if (ymap[y] < 0 || xmap[x] < 0) {
                    st(out, oo, fill);
                } else {
                    int64_t io = ymap[y] * in->sy + xmap[x] * in->sx + c * in->sc;
                    memcpy(out->data + oo * (int64_t)es, in->data + io * (int64_t)es, es);
                }
            }
}

/* Elements of a row of the image that are contiguous in memory: u8 HWC
 * rows with packed pixels (sx == C, sc == 1), float CHW planes with sx == 1. */
static int rows_packed(const fern__img *im) { return im->chw ? im->sx == 1 : (im->sx == im->c && (im->sc == 1 || im->c == 1)); }

static void fill_elems(const fern__img *im, char *p, int64_t n, double fill)
{
    if (im->dt == FERN_U8) {
        memset(p, sat8(fill), (size_t)n);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        if (im->dt == FERN_F32)
            ((float *)p)[i] = (float)fill;
        else
            ((double *)p)[i] = fill;
    }
}

fern_tensor *fern__crop_pad(const char *who, const fern_tensor *t, int64_t top, int64_t left, int64_t h,
                            int64_t w, double fill)
{
    fern__img in, out;
    if (fern__img_view(who, t, &in))
        return NULL;
    if (h < 0 || w < 0) {
        fern_set_error(FERN_ERR_INVALID, "%s: negative output size %lldx%lld", who, (long long)h, (long long)w);
        return NULL;
    }
    fern_tensor *o = fern__img_alloc(&in, h, w, in.c, &out);
    if (!o)
        return NULL;
    if (rows_packed(&in)) {
        /* per output row: fill | copied run | fill, per plane for CHW */
        size_t es = fern_dtype_size(in.dt);
        int64_t C = in.chw ? 1 : in.c, planes = in.chw ? in.c : 1;
        int64_t x0 = left < 0 ? -left : 0;                         /* first copied output column */
        int64_t x1 = left + w > in.w ? in.w - left : w;             /* end of copied columns      */
        if (x1 < x0)
            x1 = x0;
        for (int64_t pl = 0; pl < planes; pl++)
            for (int64_t y = 0; y < h; y++) {
                char *o_row = out.data + (pl * out.sc + y * out.sy) * (int64_t)es;
                int64_t sy = top + y;
                if (sy < 0 || sy >= in.h || x0 >= x1) {
                    fill_elems(&in, o_row, w * C, fill);
                    continue;
                }
                const char *i_row = in.data + (pl * in.sc + sy * in.sy + (left + x0) * in.sx) * (int64_t)es;
                if (x0 > 0)
                    fill_elems(&in, o_row, x0 * C, fill);
                memcpy(o_row + x0 * C * (int64_t)es, i_row, (size_t)((x1 - x0) * C) * es);
                if (x1 < w)
                    fill_elems(&in, o_row + x1 * C * (int64_t)es, (w - x1) * C, fill);
            }
        return o;
    }
    int64_t *ym = malloc((size_t)(h + w + 1) * sizeof *ym);
    if (!ym) {
        fern_release(o);
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", who);
        return NULL;
    }
    int64_t *xm = ym + h;
    for (int64_t y = 0; y < h; y++)
        ym[y] = top + y >= 0 && top + y < in.h ? top + y : -1;
    for (int64_t x = 0; x < w; x++)
        xm[x] = left + x >= 0 && left + x < in.w ? left + x : -1;
    remap(&in, &out, ym, xm, fill);
    free(ym);
    return o;
}

/* Flip in place (a contiguous tensor this call may modify). */
static void flip_inplace(const fern__img *im, int horizontal)
{
    size_t es = fern_dtype_size(im->dt);
    int64_t planes = im->chw ? im->c : 1, px = im->chw ? 1 : im->c; /* elements per pixel in a row */
    size_t pb = (size_t)px * es;
    char tmp[64];
    for (int64_t pl = 0; pl < planes; pl++) {
        char *base = im->data + pl * (im->chw ? im->sc : 0) * (int64_t)es;
        if (horizontal) {
            for (int64_t y = 0; y < im->h; y++) {
                char *row = base + y * im->sy * (int64_t)es;
                if (pb == 1) {
                    for (int64_t a = 0, b = im->w - 1; a < b; a++, b--) {
                        char c = row[a];
                        row[a] = row[b];
                        row[b] = c;
                    }
                } else {
                    for (int64_t a = 0, b = im->w - 1; a < b; a++, b--) {
                        memcpy(tmp, row + a * (int64_t)pb, pb);
                        memcpy(row + a * (int64_t)pb, row + b * (int64_t)pb, pb);
                        memcpy(row + b * (int64_t)pb, tmp, pb);
                    }
                }
            }
        } else {
            size_t rb = (size_t)im->w * pb;
            for (int64_t a = 0, b = im->h - 1; a < b; a++, b--) {
                char *ra = base + a * im->sy * (int64_t)es, *rb_ = base + b * im->sy * (int64_t)es;
                for (size_t off = 0; off < rb; off += sizeof tmp) {
                    size_t n = rb - off < sizeof tmp ? rb - off : sizeof tmp;
                    memcpy(tmp, ra + off, n);
                    memcpy(ra + off, rb_ + off, n);
                    memcpy(rb_ + off, tmp, n);
                }
            }
        }
    }
}

fern_tensor *fern__flip(const char *who, fern_tensor *t, int owned, int horizontal)
{
    fern__img in, out;
    if (fern__img_view(who, t, &in))
        return NULL;
    if (owned && fern_tensor_is_contiguous(t) && fern_tensor_refcount(t) == 1 && t->storage &&
        atomic_load(&t->storage->refcount) == 1 && fern_dtype_size(in.dt) * (size_t)(in.chw ? 1 : in.c) <= 64) {
        flip_inplace(&in, horizontal);
        return fern_retain(t);
    }
    fern_tensor *o = fern__img_alloc(&in, in.h, in.w, in.c, &out);
    int64_t *ym = malloc((size_t)(in.h + in.w + 1) * sizeof *ym);
    if (!o || !ym) {
        fern_release(o);
        free(ym);
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", who);
        return NULL;
    }
    int64_t *xm = ym + in.h;
    for (int64_t y = 0; y < in.h; y++)
        ym[y] = horizontal ? y : in.h - 1 - y;
    for (int64_t x = 0; x < in.w; x++)
        xm[x] = horizontal ? in.w - 1 - x : x;
    remap(&in, &out, ym, xm, 0);
    free(ym);
    return o;
}

/* ---- resize ----------------------------------------------------------------------------- */

typedef struct {
    int64_t *start, *count;
    double *k; /* out * ksize */
    int32_t *ki; /* fixed point (8-bit path) */
    int ksize;
} coeffs;

static void coeffs_free(coeffs *c)
{
    free(c->start);
    free(c->count);
    free(c->k);
    free(c->ki);
}

#define PRECISION_BITS (32 - 8 - 2)

static double tri(double x)
{
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's precompute_coeffs with the bilinear (triangle) filter, or the
 * plain 2-tap half-pixel bilinear (antialias = 0). */
static int make_coeffs(int64_t in, int64_t out, int antialias, coeffs *c)
{
    double scale = (double)in / (double)out;
    double fscale = antialias && scale > 1.0 ? scale : 1.0;
    double support = 1.0 * fscale;
    c->ksize = antialias ? (int)ceil(support) * 2 + 1 : 2;
    c->start = malloc((size_t)out * sizeof *c->start);
    c->count = malloc((size_t)out * sizeof *c->count);
    c->k = calloc((size_t)out * (size_t)c->ksize, sizeof *c->k);
    c->ki = calloc((size_t)out * (size_t)c->ksize, sizeof *c->ki);
    if (!c->start || !c->count || !c->k || !c->ki)
        return -1;
    for (int64_t xx = 0; xx < out; xx++) {
        double *k = c->k + xx * c->ksize;
        if (antialias) {
            double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / fscale;
            int64_t xmin = (int64_t)(center - support + 0.5);
            if (xmin < 0)
                xmin = 0;
            int64_t xmax = (int64_t)(center + support + 0.5);
            if (xmax > in)
                xmax = in;
            xmax -= xmin;
            for (int64_t x = 0; x < xmax; x++) {
                double w = tri((x + xmin - center + 0.5) * ss);
                k[x] = w;
                ww += w;
            }
            for (int64_t x = 0; x < xmax; x++)
                if (ww != 0.0)
                    k[x] /= ww;
            c->start[xx] = xmin;
            c->count[xx] = xmax;
        } else {
            double src = (xx + 0.5) * scale - 0.5;
            if (src < 0)
                src = 0;
            int64_t i0 = (int64_t)src;
            if (i0 > in - 1)
                i0 = in - 1;
            double l1 = src - (double)i0;
            int64_t has1 = i0 < in - 1;
            c->start[xx] = i0;
            c->count[xx] = 1 + has1;
            k[0] = has1 ? 1.0 - l1 : 1.0;
            if (has1)
                k[1] = l1;
        }
        for (int x = 0; x < c->ksize; x++)
            c->ki[xx * c->ksize + x] = k[x] < 0 ? (int32_t)(-0.5 + k[x] * (1 << PRECISION_BITS))
                                                : (int32_t)(0.5 + k[x] * (1 << PRECISION_BITS));
    }
    return 0;
}

static inline uint8_t clip8_fixed(int64_t v)
{
    if (v >= ((int64_t)1 << PRECISION_BITS << 8))
        return 255;
    if (v <= 0)
        return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

fern_tensor *fern__resize(const char *who, const fern_tensor *t, int64_t oh, int64_t ow, fern_resample interp)
{
    fern__img in, out;
    if (fern__img_view(who, t, &in))
        return NULL;
    if (oh < 1 || ow < 1 || oh > (1 << 20) || ow > (1 << 20)) {
        fern_set_error(FERN_ERR_INVALID, "%s: output size %lldx%lld is outside 1..%d", who, (long long)oh,
                       (long long)ow, 1 << 20);
        return NULL;
    }
    if (in.h < 1 || in.w < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: cannot resize an empty %lldx%lld image", who, (long long)in.h,
                       (long long)in.w);
        return NULL;
    }
    fern_tensor *o = fern__img_alloc(&in, oh, ow, in.c, &out);
    if (!o)
        return NULL;
    if (interp == FERN_RESAMPLE_NEAREST) {
        int64_t *ym = malloc((size_t)(oh + ow) * sizeof *ym);
        if (!ym) {
            fern_release(o);
            fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", who);
            return NULL;
        }
        int64_t *xm = ym + oh;
        double sy = (double)in.h / (double)oh, sx = (double)in.w / (double)ow;
        for (int64_t y = 0; y < oh; y++) {
            int64_t v = (int64_t)((y + 0.5) * sy);
            ym[y] = v < in.h ? v : in.h - 1;
        }
        for (int64_t x = 0; x < ow; x++) {
            int64_t v = (int64_t)((x + 0.5) * sx);
            xm[x] = v < in.w ? v : in.w - 1;
        }
        remap(&in, &out, ym, xm, 0);
        free(ym);
        return o;
    }
    int aa = interp == FERN_RESAMPLE_BILINEAR;
    coeffs cx = {0}, cy = {0};
    /* horizontal pass into tmp (in.h x ow x C), then vertical */
    int64_t C = in.c;
    size_t tmp_n = (size_t)in.h * (size_t)ow * (size_t)C;
    int fixed = in.dt == FERN_U8 && aa; /* Pillow's 8-bit arithmetic */
    void *tmp = malloc(tmp_n * (fixed ? 1 : sizeof(double)));
    if (!tmp || make_coeffs(in.w, ow, aa, &cx) || make_coeffs(in.h, oh, aa, &cy)) {
        free(tmp);
        coeffs_free(&cx);
        coeffs_free(&cy);
        fern_release(o);
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", who);
        return NULL;
    }
    if (fixed) {
        uint8_t *tp = tmp;
        const uint8_t *src = (const uint8_t *)in.data;
        for (int64_t y = 0; y < in.h; y++)
            for (int64_t x = 0; x < ow; x++) {
                const int32_t *k = cx.ki + x * cx.ksize;
                for (int64_t c = 0; c < C; c++) {
                    int64_t ss = (int64_t)1 << (PRECISION_BITS - 1);
                    const uint8_t *p = src + y * in.sy + cx.start[x] * in.sx + c * in.sc;
                    for (int64_t j = 0; j < cx.count[x]; j++)
                        ss += (int64_t)p[j * in.sx] * k[j];
                    tp[(y * ow + x) * C + c] = clip8_fixed(ss);
                }
            }
        uint8_t *dst = (uint8_t *)out.data;
        for (int64_t y = 0; y < oh; y++) {
            const int32_t *k = cy.ki + y * cy.ksize;
            for (int64_t x = 0; x < ow; x++)
                for (int64_t c = 0; c < C; c++) {
                    int64_t ss = (int64_t)1 << (PRECISION_BITS - 1);
                    const uint8_t *p = tp + (cy.start[y] * ow + x) * C + c;
                    for (int64_t j = 0; j < cy.count[y]; j++)
                        ss += (int64_t)p[j * ow * C] * k[j];
                    dst[y * out.sy + x * out.sx + c * out.sc] = clip8_fixed(ss);
                }
        }
    } else {
        double *tp = tmp;
        for (int64_t c = 0; c < C; c++)
            for (int64_t y = 0; y < in.h; y++)
                for (int64_t x = 0; x < ow; x++) {
                    const double *k = cx.k + x * cx.ksize;
                    double ss = 0.0;
                    int64_t base = y * in.sy + cx.start[x] * in.sx + c * in.sc;
                    for (int64_t j = 0; j < cx.count[x]; j++)
                        ss += ld(&in, base + j * in.sx) * k[j];
                    tp[(c * in.h + y) * ow + x] = ss;
                }
        for (int64_t c = 0; c < C; c++)
            for (int64_t y = 0; y < oh; y++) {
                const double *k = cy.k + y * cy.ksize;
                for (int64_t x = 0; x < ow; x++) {
                    double ss = 0.0;
                    const double *p = tp + (c * in.h + cy.start[y]) * ow + x;
                    for (int64_t j = 0; j < cy.count[y]; j++)
                        ss += p[j * ow] * k[j];
                    st(&out, y * out.sy + x * out.sx + c * out.sc, ss);
                }
            }
    }
    free(tmp);
    coeffs_free(&cx);
    coeffs_free(&cy);
    return o;
}

/* ---- affine warps ------------------------------------------------------------------------- */

void fern__rotation_matrix(double degrees, int64_t h, int64_t w, double m[6])
{
    double a = -fmod(degrees, 360.0) * 3.14159265358979323846 / 180.0;
    double cs = round(cos(a) * 1e15) / 1e15, sn = round(sin(a) * 1e15) / 1e15;
    double cx = (double)w / 2.0, cy = (double)h / 2.0;
    m[0] = cs;
    m[1] = sn;
    m[3] = -sn;
    m[4] = cs;
    m[2] = cs * -cx + sn * -cy + cx;
    m[5] = -sn * -cx + cs * -cy + cy;
}

fern_tensor *fern__affine(const char *who, const fern_tensor *t, const double m[6], fern_resample interp,
                          double fill)
{
    fern__img in, out;
    if (fern__img_view(who, t, &in))
        return NULL;
    fern_tensor *o = fern__img_alloc(&in, in.h, in.w, in.c, &out);
    if (!o)
        return NULL;
    int64_t C = in.c;
    for (int64_t y = 0; y < in.h; y++)
        for (int64_t x = 0; x < in.w; x++) {
            double xc = x + 0.5, yc = y + 0.5;
            double xi = m[0] * xc + m[1] * yc + m[2];
            double yi = m[3] * xc + m[4] * yc + m[5];
            int inside = xi >= 0.0 && yi >= 0.0 && xi < (double)in.w && yi < (double)in.h;
            if (!inside) {
                for (int64_t c = 0; c < C; c++)
                    st(&out, y * out.sy + x * out.sx + c * out.sc, fill);
                continue;
            }
            if (interp == FERN_RESAMPLE_NEAREST) {
                int64_t sx = (int64_t)xi, sy = (int64_t)yi;
                for (int64_t c = 0; c < C; c++)
                    st(&out, y * out.sy + x * out.sx + c * out.sc, ld(&in, sy * in.sy + sx * in.sx + c * in.sc));
                continue;
            }
            double xs = xi - 0.5, ys = yi - 0.5;
            double fx = floor(xs), fy = floor(ys);
            double dx = xs - fx, dy = ys - fy;
            int64_t x0 = (int64_t)fx, y0 = (int64_t)fy, x1 = x0 + 1, y1 = y0 + 1;
            if (x0 < 0)
                x0 = 0;
            if (y0 < 0)
                y0 = 0;
            if (x1 > in.w - 1)
                x1 = in.w - 1;
            if (y1 > in.h - 1)
                y1 = in.h - 1;
            for (int64_t c = 0; c < C; c++) {
                int64_t b = c * in.sc;
                double v00 = ld(&in, b + y0 * in.sy + x0 * in.sx), v01 = ld(&in, b + y0 * in.sy + x1 * in.sx);
                double v10 = ld(&in, b + y1 * in.sy + x0 * in.sx), v11 = ld(&in, b + y1 * in.sy + x1 * in.sx);
                double top = v00 + (v01 - v00) * dx, bot = v10 + (v11 - v10) * dx;
                st(&out, y * out.sy + x * out.sx + c * out.sc, top + (bot - top) * dy);
            }
        }
    return o;
}

/* ---- color ----------------------------------------------------------------------------- */

static double gray_at(const fern__img *im, int64_t y, int64_t x)
{
    int64_t b = y * im->sy + x * im->sx;
    if (im->c < 3)
        return ld(im, b);
    return 0.299 * ld(im, b) + 0.587 * ld(im, b + im->sc) + 0.114 * ld(im, b + 2 * im->sc);
}

fern_tensor *fern__adjust(const char *who, fern_tensor *t, int owned, int kind, double f)
{
    fern__img in, out;
    if (fern__img_view(who, t, &in))
        return NULL;
    if (kind == FERN__ADJ_SATURATION && in.c != 3 && in.c != 1) {
        char d[64];
        fern_set_error(FERN_ERR_INVALID, "%s: saturation needs 1 or 3 channels, got %s", who,
                       fern_tensor_desc(t, d, sizeof d));
        return NULL;
    }
    fern_tensor *o;
    if (owned && fern_tensor_is_contiguous(t) && fern_tensor_refcount(t) == 1 &&
        atomic_load(&t->storage->refcount) == 1) {
        o = fern_retain(t);
        out = in;
    } else {
        o = fern__img_alloc(&in, in.h, in.w, in.c, &out);
        if (!o)
            return NULL;
    }
    double hi = in.dt == FERN_U8 ? 255.0 : 1.0;
    double mean = 0.0;
    if (kind == FERN__ADJ_CONTRAST) {
        for (int64_t y = 0; y < in.h; y++)
            for (int64_t x = 0; x < in.w; x++)
                mean += gray_at(&in, y, x);
        mean /= (double)(in.h * in.w > 0 ? in.h * in.w : 1);
    }
    if (kind == FERN__ADJ_BRIGHTNESS && in.dt == FERN_U8) {
        uint8_t lut[256];
        for (int v = 0; v < 256; v++)
            lut[v] = sat8(v * f);
        for (int64_t y = 0; y < in.h; y++)
            for (int64_t x = 0; x < in.w; x++)
                for (int64_t c = 0; c < in.c; c++)
                    ((uint8_t *)out.data)[y * out.sy + x * out.sx + c * out.sc] =
                        lut[((const uint8_t *)in.data)[y * in.sy + x * in.sx + c * in.sc]];
        return o;
    }
    for (int64_t y = 0; y < in.h; y++)
        for (int64_t x = 0; x < in.w; x++) {
            double g = kind == FERN__ADJ_SATURATION ? gray_at(&in, y, x) : mean;
            double v[4] = {0};
            int64_t C = in.c;
            for (int64_t c = 0; c < C && c < 4; c++)
                v[c] = ld(&in, y * in.sy + x * in.sx + c * in.sc);
            for (int64_t c = 0; c < C; c++) {
                double a = c < 4 ? v[c] : ld(&in, y * in.sy + x * in.sx + c * in.sc);
                double r = kind == FERN__ADJ_BRIGHTNESS ? a * f : f * a + (1.0 - f) * g;
                if (kind == FERN__ADJ_SATURATION && C == 1)
                    r = a;
                if (in.dt != FERN_U8)
                    r = r < 0.0 ? 0.0 : r > hi ? hi : r;
                st(&out, y * out.sy + x * out.sx + c * out.sc, r);
            }
        }
    return o;
}
