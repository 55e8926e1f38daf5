/* Convolution layers: Conv1d, Conv2d, ConvTranspose2d with torch's weight
 * layouts, defaults and initialization, over fern_conv1d / fern_conv2d /
 * fern_conv_transpose2d. Like torch, an unbatched input ((C, L) or
 * (C, H, W)) is convolved as a batch of one. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "layers_internal.h"

typedef enum { CONV1D, CONV2D, CONVT2D } conv_kind;

typedef struct {
    fern__layer_head h;
    conv_kind kind;
    int64_t in_ch, out_ch;
    fern_conv_opts opts;
    fern_tensor *w, *b;
} conv_state;

static int conv_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    conv_state *s = fern_cell_state(self);
    fern_tensor *x = in[0];
    int sd = s->kind == CONV1D ? 1 : 2; /* spatial dims */
    if (fern__layer_check(self, x, sd + 1, sd + 2, (int)fern_tensor_dtype(s->w),
                          sd == 1 ? "an input of shape (N, C, L) or (C, L)"
                                  : "an input of shape (N, C, H, W) or (C, H, W)"))
        return -1;
    int unbatched = fern_tensor_ndim(x) == sd + 1;
    if (fern_tensor_dim(x, unbatched ? 0 : 1) != s->in_ch) {
        char d[128];
        return fern__layer_err(self, "expected %lld input channels, got %s", (long long)s->in_ch,
                               fern_tensor_desc(x, d, sizeof d));
    }
    if (unbatched)
        x = fern_unsqueeze(x, 0);
    fern_tensor *y = s->kind == CONV1D   ? fern_conv1d(x, s->w, s->b, &s->opts)
                     : s->kind == CONV2D ? fern_conv2d(x, s->w, s->b, &s->opts)
                                         : fern_conv_transpose2d(x, s->w, s->b, &s->opts);
    if (unbatched) {
        int ax = 0;
        y = fern_squeeze(y, &ax, 1);
    }
    out[0] = y;
    return y ? 0 : -1;
}

static fern_cell *make_conv(const char *type, conv_kind kind, int64_t in_ch, int64_t out_ch, int64_t kh,
                            int64_t kw, const fern_conv_opts *opts_in, int bias)
{
    fern_conv_opts o = opts_in ? *opts_in : fern_conv_opts_default();
    int sd = kind == CONV1D ? 1 : 2;
    if (kind == CONV1D) {
        kw = 1; /* only index [0] is used */
        o.stride[1] = o.dilation[1] = 1;
        o.padding[1] = o.output_padding[0] = o.output_padding[1] = 0;
    }
    if (kind != CONVT2D)
        o.output_padding[0] = o.output_padding[1] = 0;
    if (in_ch < 1 || out_ch < 1 || kh < 1 || kw < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: channels and kernel size must be positive, got in_channels %lld, "
                       "out_channels %lld, kernel (%lld, %lld)", type, (long long)in_ch, (long long)out_ch,
                       (long long)kh, (long long)kw);
        return NULL;
    }
    if (o.groups < 1 || in_ch % o.groups || out_ch % o.groups) {
        fern_set_error(FERN_ERR_INVALID, "%s: groups (%lld) must be positive and divide in_channels (%lld) and "
                       "out_channels (%lld)", type, (long long)o.groups, (long long)in_ch, (long long)out_ch);
        return NULL;
    }
    for (int d = 0; d < sd; d++) {
        if (o.stride[d] < 1 || o.dilation[d] < 1 || o.padding[d] < 0) {
            fern_set_error(FERN_ERR_INVALID, "%s: stride and dilation must be positive and padding non-negative, "
                           "got stride %lld, dilation %lld, padding %lld", type, (long long)o.stride[d],
                           (long long)o.dilation[d], (long long)o.padding[d]);
            return NULL;
        }
        if (kind == CONVT2D && (o.output_padding[d] < 0 ||
                                (o.output_padding[d] >= o.stride[d] && o.output_padding[d] >= o.dilation[d]))) {
            fern_set_error(FERN_ERR_INVALID, "%s: output_padding (%lld) must be non-negative and smaller than "
                           "either stride (%lld) or dilation (%lld)", type, (long long)o.output_padding[d],
                           (long long)o.stride[d], (long long)o.dilation[d]);
            return NULL;
        }
    }
    if (o.padding_same && kind == CONVT2D) {
        fern_set_error(FERN_ERR_INVALID, "%s: padding_same is not supported for transposed convolutions", type);
        return NULL;
    }
    if (o.padding_same && (o.stride[0] != 1 || (sd == 2 && o.stride[1] != 1))) {
        fern_set_error(FERN_ERR_INVALID, "%s: padding_same needs stride 1 (like torch's padding='same')", type);
        return NULL;
    }
    char desc[512];
    if (sd == 1)
        snprintf(desc, sizeof desc, "%s(%lld, %lld, kernel_size=%lld, stride=%lld, padding=%s%lld, dilation=%lld, "
                 "groups=%lld, bias=%d)", type, (long long)in_ch, (long long)out_ch, (long long)kh,
                 (long long)o.stride[0], o.padding_same ? "same/" : "", (long long)o.padding[0],
                 (long long)o.dilation[0], (long long)o.groups, bias != 0);
    else
        snprintf(desc, sizeof desc, "%s(%lld, %lld, kernel_size=(%lld, %lld), stride=(%lld, %lld), padding=%s(%lld, "
                 "%lld), dilation=(%lld, %lld), groups=%lld, bias=%d)", type, (long long)in_ch,
                 (long long)out_ch, (long long)kh, (long long)kw, (long long)o.stride[0], (long long)o.stride[1],
                 o.padding_same ? "same/" : "", (long long)o.padding[0], (long long)o.padding[1],
                 (long long)o.dilation[0], (long long)o.dilation[1], (long long)o.groups, bias != 0);
    fern_cell *c = fern__layer_new(type, conv_forward, 1, sizeof(conv_state), "%s", desc);
    if (!c)
        return NULL;
    conv_state *s = fern_cell_state(c);
    s->kind = kind;
    s->in_ch = in_ch;
    s->out_ch = out_ch;
    s->opts = o;
    int64_t ws[4];
    if (kind == CONVT2D) {
        ws[0] = in_ch;
        ws[1] = out_ch / o.groups;
    } else {
        ws[0] = out_ch;
        ws[1] = in_ch / o.groups;
    }
    ws[2] = kh;
    ws[3] = kw;
    fern_dtype dt = fern_layers_default_dtype();
    s->w = fern__layer_add_param(c, "weight", dt, 2 + sd, ws);
    int ok = s->w && fern_init_he_uniform(s->w, sqrt(5.0)) == FERN_OK;
    if (ok && bias) {
        /* torch: bound 1/sqrt(fan_in), fan_in = weight.size(1) * receptive field */
        double fan_in = (double)ws[1] * (double)kh * (double)(sd == 2 ? kw : 1);
        double bound = 1.0 / sqrt(fan_in);
        s->b = fern__layer_add_param(c, "bias", dt, 1, &out_ch);
        ok = s->b && fern_init_uniform(s->b, -bound, bound) == FERN_OK;
    }
    if (!ok) {
        fern_cell_release(c);
        return NULL;
    }
    return c;
}

fern_cell *fern_layer_conv1d(int64_t in_channels, int64_t out_channels, int64_t kernel,
                             const fern_conv_opts *opts, int bias)
{
    return make_conv("Conv1d", CONV1D, in_channels, out_channels, kernel, 1, opts, bias);
}

fern_cell *fern_layer_conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_h, int64_t kernel_w,
                             const fern_conv_opts *opts, int bias)
{
    return make_conv("Conv2d", CONV2D, in_channels, out_channels, kernel_h, kernel_w, opts, bias);
}

fern_cell *fern_layer_conv_transpose2d(int64_t in_channels, int64_t out_channels, int64_t kernel_h,
                                       int64_t kernel_w, const fern_conv_opts *opts, int bias)
{
    return make_conv("ConvTranspose2d", CONVT2D, in_channels, out_channels, kernel_h, kernel_w, opts, bias);
}
