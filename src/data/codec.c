/* Image codecs: PNG through libpng and JPEG through libjpeg(-turbo), from
 * and to memory. Decoding yields u8 HWC. Errors name the image and the
 * byte offset the decoder had reached; truncated data is an error (also
 * the "premature end" that libjpeg only warns about). Channel conversions
 * follow Pillow: L = (19595 R + 38470 G + 7471 B + 32768) >> 16, alpha is
 * dropped without compositing, gray is replicated. */
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include "data_internal.h"

#define DEFAULT_MAX_PIXELS ((int64_t)1 << 28)

int fern__is_png(const unsigned char *b, size_t n)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    return n >= 8 && memcmp(b, sig, 8) == 0;
}

int fern__is_jpeg(const unsigned char *b, size_t n) { return n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF; }

/* Convert packed rows of `cin` channels to `cout` channels (Pillow rules). */
static void convert_channels(const unsigned char *in, int cin, unsigned char *out, int cout, int64_t npix)
{
    for (int64_t i = 0; i < npix; i++, in += cin, out += cout) {
        unsigned r, g, b, a = 255;
        if (cin <= 2) {
            r = g = b = in[0];
            if (cin == 2)
                a = in[1];
        } else {
            r = in[0];
            g = in[1];
            b = in[2];
            if (cin == 4)
                a = in[3];
        }
        switch (cout) {
        case 1: out[0] = (unsigned char)((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16); break;
        case 2:
            out[0] = (unsigned char)((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
            out[1] = (unsigned char)a;
            break;
        case 3:
            out[0] = (unsigned char)r;
            out[1] = (unsigned char)g;
            out[2] = (unsigned char)b;
            break;
        default:
            out[0] = (unsigned char)r;
            out[1] = (unsigned char)g;
            out[2] = (unsigned char)b;
            out[3] = (unsigned char)a;
        }
    }
}

static fern_tensor *alloc_image(int64_t h, int64_t w, int c)
{
    int64_t shape[3] = {h, w, c};
    return fern__tensor_alloc(FERN_U8, 3, shape, FERN_CPU);
}

static int check_size(const char *fmt, const char *name, int64_t w, int64_t h, const fern_decode_opts *o)
{
    int64_t maxp = o && o->max_pixels > 0 ? o->max_pixels : DEFAULT_MAX_PIXELS;
    if (w <= 0 || h <= 0 || w > maxp || h > maxp || w * h > maxp) {
        fern_set_error(FERN_ERR_IO, "decode: %s: %s image of %lldx%lld pixels %s", name, fmt, (long long)w,
                       (long long)h, w <= 0 || h <= 0 ? "is empty" : "exceeds the pixel limit");
        return -1;
    }
    return 0;
}

/* ---- JPEG -------------------------------------------------------------------------- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jerr_mgr;

static void j_error_exit(j_common_ptr c)
{
    jerr_mgr *e = (jerr_mgr *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}

static void j_emit(j_common_ptr c, int level)
{
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) {
        jerr_mgr *e = (jerr_mgr *)c->err;
        c->err->format_message(c, e->msg);
        longjmp(e->jb, 1);
    }
    if (level < 0)
        c->err->num_warnings++;
}

static void j_output(j_common_ptr c) { (void)c; }

static fern_tensor *decode_jpeg(const unsigned char *b, size_t n, const char *name, const fern_decode_opts *o)
{
    struct jpeg_decompress_struct ci;
    jerr_mgr err;
    fern_tensor *volatile t = NULL;
    unsigned char *volatile tmp = NULL;
    memset(&ci, 0, sizeof ci);
    ci.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = j_error_exit;
    err.pub.emit_message = j_emit;
    err.pub.output_message = j_output;
    if (setjmp(err.jb)) {
        size_t off = n;
        if (ci.src && ci.src->next_input_byte >= b && ci.src->next_input_byte <= b + n)
            off = (size_t)(ci.src->next_input_byte - b);
        fern_set_error(FERN_ERR_IO, "decode: %s: JPEG error near byte offset %zu: %s", name, off, err.msg);
        jpeg_destroy_decompress(&ci);
        fern_release(t);
        free(tmp);
        return NULL;
    }
    jpeg_create_decompress(&ci);
    if (n > 0xFFFFFFFFu) {
        fern_set_error(FERN_ERR_IO, "decode: %s: JPEG data larger than 4 GiB", name);
        jpeg_destroy_decompress(&ci);
        return NULL;
    }
    jpeg_mem_src(&ci, b, (unsigned long)n);
    jpeg_read_header(&ci, TRUE);
    if (check_size("JPEG", name, ci.image_width, ci.image_height, o)) {
        jpeg_destroy_decompress(&ci);
        return NULL;
    }
    int cmyk = ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK;
    int natural;
    if (cmyk) {
        ci.out_color_space = JCS_CMYK;
        natural = 3;
    } else if (ci.jpeg_color_space == JCS_GRAYSCALE) {
        ci.out_color_space = JCS_GRAYSCALE;
        natural = 1;
    } else {
        ci.out_color_space = JCS_RGB;
        natural = 3;
    }
    int want = o && o->channels ? o->channels : natural;
    jpeg_start_decompress(&ci);
    int dec_c = ci.output_components;
    int64_t W = ci.output_width, H = ci.output_height;
    t = alloc_image(H, W, want);
    tmp = malloc((size_t)W * (size_t)(dec_c > 4 ? dec_c : 4) + 16);
    if (!t || !tmp) {
        if (t == NULL && fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_NOMEM, "decode: %s: out of memory", name);
        jpeg_destroy_decompress(&ci);
        fern_release(t);
        free(tmp);
        return NULL;
    }
    unsigned char *dst = fern_tensor_data(t);
    int direct = !cmyk && dec_c == want;
    int inverted = cmyk && ci.saw_Adobe_marker;
    while (ci.output_scanline < ci.output_height) {
        unsigned char *row = dst + (size_t)ci.output_scanline * (size_t)W * (size_t)want;
        JSAMPROW rp = direct ? row : tmp;
        if (jpeg_read_scanlines(&ci, &rp, 1) != 1)
            break;
        if (direct)
            continue;
        if (cmyk) { /* CMYK -> RGB in place in tmp (4 -> 3 channels) */
            for (int64_t x = 0; x < W; x++) {
                unsigned c = tmp[4 * x], m = tmp[4 * x + 1], y = tmp[4 * x + 2], k = tmp[4 * x + 3];
                if (!inverted) {
                    c = 255 - c;
                    m = 255 - m;
                    y = 255 - y;
                    k = 255 - k;
                }
                tmp[3 * x] = (unsigned char)((c * k + 127) / 255);
                tmp[3 * x + 1] = (unsigned char)((m * k + 127) / 255);
                tmp[3 * x + 2] = (unsigned char)((y * k + 127) / 255);
            }
            convert_channels(tmp, 3, row, want, W);
        } else {
            convert_channels(tmp, dec_c, row, want, W);
        }
    }
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    free(tmp);
    return t;
}

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    unsigned char *mem; /* the memory destination's buffer */
    unsigned long memsize;
} jerr_w;

static void jw_error_exit(j_common_ptr c)
{
    jerr_w *e = (jerr_w *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}

static int encode_jpeg_raw(const unsigned char *px, int64_t h, int64_t w, int c, int quality, void **out,
                           size_t *n)
{
    struct jpeg_compress_struct ci;
    jerr_w err;
    memset(&ci, 0, sizeof ci);
    err.mem = NULL;
    err.memsize = 0;
    ci.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jw_error_exit;
    err.pub.output_message = j_output;
    if (setjmp(err.jb)) {
        fern_set_error(FERN_ERR_IO, "encode_jpeg: %s", err.msg);
        jpeg_destroy_compress(&ci);
        free(err.mem);
        return FERN_ERR_IO;
    }
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, &err.mem, &err.memsize);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = c;
    ci.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW rp = (JSAMPROW)(px + (size_t)ci.next_scanline * (size_t)w * (size_t)c);
        jpeg_write_scanlines(&ci, &rp, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    *out = err.mem;
    *n = err.memsize;
    return FERN_OK;
}

/* ---- PNG ----------------------------------------------------------------------------- */

typedef struct {
    const unsigned char *b;
    size_t n, pos;
    char msg[256];
} png_src;

static void png_read_mem(png_structp png, png_bytep out, size_t len)
{
    png_src *s = png_get_io_ptr(png);
    if (len > s->n - s->pos) {
        snprintf(s->msg, sizeof s->msg, "truncated: %zu bytes needed at byte offset %zu but the data ends at %zu",
                 len, s->pos, s->n);
        png_error(png, "truncated");
    }
    memcpy(out, s->b + s->pos, len);
    s->pos += len;
}

static void png_err(png_structp png, png_const_charp msg)
{
    png_src *s = png_get_error_ptr(png);
    if (s && !s->msg[0])
        snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static fern_tensor *decode_png(const unsigned char *b, size_t n, const char *name, const fern_decode_opts *o)
{
    png_src src = {b, n, 0, {0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_err, png_warn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    fern_tensor *volatile t = NULL;
    unsigned char *volatile tmp = NULL;
    png_bytep *volatile rows = NULL;
    if (!info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        fern_set_error(FERN_ERR_NOMEM, "decode: %s: out of memory", name);
        return NULL;
    }
    if (setjmp(png_jmpbuf(png))) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_IO, "decode: %s: PNG error at byte offset %zu: %s", name, src.pos,
                           src.msg[0] ? src.msg : "corrupt data");
        png_destroy_read_struct(&png, &info, NULL);
        fern_release(t);
        free(tmp);
        free(rows);
        return NULL;
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_set_user_limits(png, 1u << 24, 1u << 24);
    png_set_chunk_malloc_max(png, (png_alloc_size_t)64 << 20);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    if (check_size("PNG", name, w, h, o))
        png_longjmp(png, 1);
    if (ctype == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_tRNS_to_alpha(png);
    if (depth == 16)
        png_set_strip_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int natural = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (natural < 1 || natural > 4 || rowbytes != (size_t)w * (size_t)natural) {
        snprintf(src.msg, sizeof src.msg, "unsupported pixel layout (%d channels, %zu bytes per row)", natural,
                 rowbytes);
        png_longjmp(png, 1);
    }
    int want = o && o->channels ? o->channels : natural;
    t = alloc_image(h, w, want);
    if (!t)
        png_longjmp(png, 1);
    unsigned char *dst = fern_tensor_data(t);
    unsigned char *px = dst;
    if (want != natural) {
        tmp = malloc((size_t)w * h * (size_t)natural);
        if (!tmp) {
            fern_set_error(FERN_ERR_NOMEM, "decode: %s: out of memory", name);
            png_longjmp(png, 1);
        }
        px = tmp;
    }
    rows = malloc((size_t)h * sizeof *rows);
    if (!rows) {
        fern_set_error(FERN_ERR_NOMEM, "decode: %s: out of memory", name);
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = px + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    if (want != natural)
        convert_channels(tmp, natural, dst, want, (int64_t)w * h);
    png_destroy_read_struct(&png, &info, NULL);
    free(tmp);
    free(rows);
    return t;
}

typedef struct {
    unsigned char *buf;
    size_t len, cap;
    int oom;
    char msg[256];
} png_dst;

static void png_write_mem(png_structp png, png_bytep data, size_t len)
{
    png_dst *d = png_get_io_ptr(png);
    if (d->len + len > d->cap) {
        size_t cap = (d->cap ? d->cap * 2 : 4096) + len;
        unsigned char *nb = realloc(d->buf, cap);
        if (!nb) {
            d->oom = 1;
            png_error(png, "out of memory");
        }
        d->buf = nb;
        d->cap = cap;
    }
    memcpy(d->buf + d->len, data, len);
    d->len += len;
}

static void png_flush_mem(png_structp png) { (void)png; }

static void png_werr(png_structp png, png_const_charp msg)
{
    png_dst *d = png_get_error_ptr(png);
    if (d)
        snprintf(d->msg, sizeof d->msg, "%s", msg);
    png_longjmp(png, 1);
}

static int encode_png_raw(const unsigned char *px, int64_t h, int64_t w, int c, void **out, size_t *n)
{
    png_dst d = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &d, png_werr, png_warn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *volatile rows = NULL;
    if (!info) {
        png_destroy_write_struct(png ? &png : NULL, NULL);
        fern_set_error(FERN_ERR_NOMEM, "encode_png: out of memory");
        return FERN_ERR_NOMEM;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(d.buf);
        free(rows);
        fern_set_error(d.oom ? FERN_ERR_NOMEM : FERN_ERR_IO, "encode_png: %s", d.msg);
        return d.oom ? FERN_ERR_NOMEM : FERN_ERR_IO;
    }
    png_set_write_fn(png, &d, png_write_mem, png_flush_mem);
    static const int ctypes[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                  PNG_COLOR_TYPE_RGB_ALPHA};
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, ctypes[c], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    rows = malloc((size_t)h * sizeof *rows);
    if (!rows) {
        snprintf(d.msg, sizeof d.msg, "out of memory");
        d.oom = 1;
        png_longjmp(png, 1);
    }
    for (int64_t y = 0; y < h; y++)
        rows[y] = (png_bytep)(px + (size_t)y * (size_t)w * (size_t)c);
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    *out = d.buf;
    *n = d.len;
    return FERN_OK;
}

/* ---- public entry points ---------------------------------------------------------------- */

fern_tensor *fern__decode(const void *bytes, size_t n, const char *name, const fern_decode_opts *o)
{
    if (!name)
        name = "<memory>";
    if (!bytes && n) {
        fern_set_error(FERN_ERR_INVALID, "decode: %s: bytes are NULL", name);
        return NULL;
    }
    if (o && o->channels != 0 && o->channels != 1 && o->channels != 3 && o->channels != 4) {
        fern_set_error(FERN_ERR_INVALID, "decode: channels %d is not 0, 1, 3 or 4", o->channels);
        return NULL;
    }
    const unsigned char *b = bytes;
    if (fern__is_png(b, n))
        return decode_png(b, n, name, o);
    if (fern__is_jpeg(b, n))
        return decode_jpeg(b, n, name, o);
    fern_set_error(FERN_ERR_IO, "decode: %s: not a PNG or JPEG image (%zu bytes; unknown signature at byte offset 0)",
                   name, n);
    return NULL;
}

fern_tensor *fern_image_decode(const void *bytes, size_t n, const char *name, const fern_decode_opts *opts)
{
    return fern__scope_register(fern__decode(bytes, n, name, opts));
}

fern_tensor *fern_image_read(const char *path, const fern_decode_opts *opts)
{
    unsigned char *buf;
    size_t n;
    if (fern__read_file(path, "image_read", &buf, &n))
        return NULL;
    fern_tensor *t = fern__decode(buf, n, path, opts);
    free(buf);
    return fern__scope_register(t);
}

/* Contiguous u8 pixels of an HWC / HW image for the encoders. */
static unsigned char *encode_pixels(const char *who, const fern_tensor *img, int64_t *h, int64_t *w, int *c,
                                    int max_c)
{
    char d[64];
    if (!img) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "%s: image is NULL", who);
        return NULL;
    }
    if (img->dtype != FERN_U8 || (img->ndim != 2 && img->ndim != 3) ||
        (img->ndim == 3 && (img->shape[2] < 1 || img->shape[2] > max_c || (max_c == 3 && img->shape[2] == 2))) ||
        img->shape[0] < 1 || img->shape[1] < 1 || img->shape[0] > 65500 || img->shape[1] > 65500) {
        fern_set_error(FERN_ERR_INVALID, "%s: needs a u8 HWC image with C in 1..%d (1 or 3 for JPEG), got %s", who,
                       max_c, fern_tensor_desc(img, d, sizeof d));
        return NULL;
    }
    *h = img->shape[0];
    *w = img->shape[1];
    *c = img->ndim == 3 ? (int)img->shape[2] : 1;
    size_t nb = fern_tensor_nbytes(img);
    unsigned char *px = malloc(nb);
    if (!px) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", who);
        return NULL;
    }
    if (fern_tensor_copy_to(img, px, nb) != FERN_OK) {
        free(px);
        return NULL;
    }
    return px;
}

fern_status fern_image_encode_png(const fern_tensor *img, void **out, size_t *n)
{
    int64_t h, w;
    int c;
    if (!out || !n) {
        fern_set_error(FERN_ERR_INVALID, "encode_png: output pointer is NULL");
        return FERN_ERR_INVALID;
    }
    *out = NULL;
    *n = 0;
    unsigned char *px = encode_pixels("encode_png", img, &h, &w, &c, 4);
    if (!px)
        return fern_last_status();
    int r = encode_png_raw(px, h, w, c, out, n);
    free(px);
    return (fern_status)r;
}

fern_status fern_image_encode_jpeg(const fern_tensor *img, int quality, void **out, size_t *n)
{
    int64_t h, w;
    int c;
    if (!out || !n) {
        fern_set_error(FERN_ERR_INVALID, "encode_jpeg: output pointer is NULL");
        return FERN_ERR_INVALID;
    }
    *out = NULL;
    *n = 0;
    if (quality < 1 || quality > 100) {
        fern_set_error(FERN_ERR_INVALID, "encode_jpeg: quality %d is outside 1..100", quality);
        return FERN_ERR_INVALID;
    }
    unsigned char *px = encode_pixels("encode_jpeg", img, &h, &w, &c, 3);
    if (!px)
        return fern_last_status();
    int r = encode_jpeg_raw(px, h, w, c, quality, out, n);
    free(px);
    return (fern_status)r;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    if (a < b)
        return 0;
    for (size_t i = 0; i < b; i++) {
        char x = s[a - b + i], y = suf[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (x != y)
            return 0;
    }
    return 1;
}

fern_status fern_image_write(const char *path, const fern_tensor *img)
{
    if (!path) {
        fern_set_error(FERN_ERR_INVALID, "image_write: path is NULL");
        return FERN_ERR_INVALID;
    }
    void *buf;
    size_t n;
    fern_status st;
    if (ends_with(path, ".png"))
        st = fern_image_encode_png(img, &buf, &n);
    else if (ends_with(path, ".jpg") || ends_with(path, ".jpeg"))
        st = fern_image_encode_jpeg(img, 95, &buf, &n);
    else {
        fern_set_error(FERN_ERR_INVALID, "image_write: '%s' does not end in .png, .jpg or .jpeg", path);
        return FERN_ERR_INVALID;
    }
    if (st != FERN_OK)
        return st;
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(buf, 1, n, f) == n;
    if (f)
        ok = (fclose(f) == 0) && ok;
    free(buf);
    if (!ok) {
        fern_set_error(FERN_ERR_IO, "image_write: cannot write '%s'", path);
        return FERN_ERR_IO;
    }
    return FERN_OK;
}
