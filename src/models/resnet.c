/* Model zoo: ResNet with BasicBlocks (ResNet-18/34), CIFAR variant, with
 * torchvision's module names and initialization. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "zoo_internal.h"

/* torchvision: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu") */
static int init_conv_fan_out(fern_cell *conv)
{
    fern_tensor *w = fern_cell_param(conv, "weight");
    if (!w)
        return -1;
    const int64_t *s = fern_tensor_shape(w);
    double fan_out = (double)s[0];
    for (int d = 2; d < fern_tensor_ndim(w); d++)
        fan_out *= (double)s[d];
    return fern_init_normal(w, 0.0, sqrt(2.0 / fan_out)) == FERN_OK ? 0 : -1;
}

static fern_cell *conv_bn_conv(int64_t in, int64_t out, int64_t k, int64_t stride)
{
    fern_conv_opts o = fern_conv_opts_default();
    o.stride[0] = o.stride[1] = stride;
    o.padding[0] = o.padding[1] = k / 2;
    fern_cell *c = fern_layer_conv2d(in, out, k, k, &o, 0);
    if (c && init_conv_fan_out(c)) {
        fern_cell_release(c);
        return NULL;
    }
    return c;
}

/* ---- BasicBlock ---------------------------------------------------------------------- */

typedef struct {
    fern__layer_head h;
    fern_cell *conv1, *bn1, *relu, *conv2, *bn2, *downsample; /* downsample may be NULL */
} block_state;

static int block_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    block_state *s = fern_cell_state(self);
    fern_tensor *x = in[0];
    fern_tensor *y = fern_cell_call1(s->relu, fern_cell_call1(s->bn1, fern_cell_call1(s->conv1, x)));
    y = fern_cell_call1(s->bn2, fern_cell_call1(s->conv2, y));
    fern_tensor *identity = s->downsample ? fern_cell_call1(s->downsample, x) : x;
    out[0] = fern_cell_call1(s->relu, fern_add(y, identity));
    return out[0] ? 0 : -1;
}

static fern_cell *basic_block(int64_t in, int64_t out, int64_t stride)
{
    fern_cell *c = fern__layer_new("BasicBlock", block_forward, 1, sizeof(block_state),
                                   "BasicBlock(%lld, %lld, stride=%lld)", (long long)in, (long long)out,
                                   (long long)stride);
    if (!c)
        return NULL;
    block_state *s = fern_cell_state(c);
    s->conv1 = fern__zoo_adopt(c, "conv1", conv_bn_conv(in, out, 3, stride));
    s->bn1 = s->conv1 ? fern__zoo_adopt(c, "bn1", fern_layer_batch_norm2d(out, NULL)) : NULL;
    s->relu = s->bn1 ? fern__zoo_adopt(c, "relu", fern_layer_relu()) : NULL;
    s->conv2 = s->relu ? fern__zoo_adopt(c, "conv2", conv_bn_conv(out, out, 3, 1)) : NULL;
    s->bn2 = s->conv2 ? fern__zoo_adopt(c, "bn2", fern_layer_batch_norm2d(out, NULL)) : NULL;
    int ok = s->bn2 != NULL;
    if (ok && (stride != 1 || in != out)) {
        fern_cell *parts[2] = {conv_bn_conv(in, out, 1, stride), fern_layer_batch_norm2d(out, NULL)};
        fern_cell *ds = parts[0] && parts[1] ? fern_sequential(2, parts) : NULL;
        fern_cell_release(parts[0]);
        fern_cell_release(parts[1]);
        s->downsample = fern__zoo_adopt(c, "downsample", ds);
        ok = s->downsample != NULL;
    }
    if (!ok) {
        fern_cell_release(c);
        return NULL;
    }
    return c;
}

/* ---- ResNet ------------------------------------------------------------------------------ */

typedef struct {
    fern__layer_head h;
    int64_t in_ch;
    fern_cell *conv1, *bn1, *relu, *layer[4], *avgpool, *fc;
} resnet_state;

static int resnet_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    resnet_state *s = fern_cell_state(self);
    fern_tensor *x = in[0];
    if (fern__layer_check(self, x, 4, 4, -1, "an input of shape (N, C, H, W)"))
        return -1;
    if (fern_tensor_dim(x, 1) != s->in_ch) {
        char d[128];
        return fern__layer_err(self, "expected %lld input channels, got %s", (long long)s->in_ch,
                               fern_tensor_desc(x, d, sizeof d));
    }
    x = fern_cell_call1(s->relu, fern_cell_call1(s->bn1, fern_cell_call1(s->conv1, x)));
    for (int i = 0; i < 4; i++)
        x = fern_cell_call1(s->layer[i], x);
    x = fern_flatten(fern_cell_call1(s->avgpool, x), 1, -1);
    out[0] = fern_cell_call1(s->fc, x);
    return out[0] ? 0 : -1;
}

fern_cell *fern_model_resnet_cifar(const int blocks[4], int64_t num_classes, int64_t in_channels)
{
    if (!blocks || num_classes < 1 || in_channels < 1 || blocks[0] < 1 || blocks[1] < 1 || blocks[2] < 1 ||
        blocks[3] < 1) {
        fern_set_error(FERN_ERR_INVALID, "model_resnet: need four positive block counts and positive num_classes "
                       "and in_channels, got %lld classes, %lld channels", (long long)num_classes,
                       (long long)in_channels);
        return NULL;
    }
    fern_cell *c = fern__layer_new("ResNet", resnet_forward, 1, sizeof(resnet_state),
                                   "ResNet(blocks=[%d, %d, %d, %d], num_classes=%lld, in_channels=%lld)", blocks[0],
                                   blocks[1], blocks[2], blocks[3], (long long)num_classes, (long long)in_channels);
    if (!c)
        return NULL;
    resnet_state *s = fern_cell_state(c);
    s->in_ch = in_channels;
    s->conv1 = fern__zoo_adopt(c, "conv1", conv_bn_conv(in_channels, 64, 3, 1));
    s->bn1 = s->conv1 ? fern__zoo_adopt(c, "bn1", fern_layer_batch_norm2d(64, NULL)) : NULL;
    s->relu = s->bn1 ? fern__zoo_adopt(c, "relu", fern_layer_relu()) : NULL;
    int ok = s->relu != NULL;
    int64_t in = 64;
    for (int i = 0; ok && i < 4; i++) {
        int64_t width = (int64_t)64 << i;
        fern_cell *seq = fern_sequential(0, NULL);
        for (int b = 0; seq && b < blocks[i]; b++) {
            fern_cell *blk = basic_block(in, width, b == 0 && i > 0 ? 2 : 1);
            fern_status st = blk ? fern_sequential_append(seq, blk) : FERN_ERR_INVALID;
            fern_cell_release(blk);
            if (st != FERN_OK) {
                fern_cell_release(seq);
                seq = NULL;
            }
            in = width;
        }
        char name[16];
        snprintf(name, sizeof name, "layer%d", i + 1);
        s->layer[i] = fern__zoo_adopt(c, name, seq);
        ok = s->layer[i] != NULL;
    }
    if (ok) {
        s->avgpool = fern__zoo_adopt(c, "avgpool", fern_layer_adaptive_avg_pool2d(1, 1));
        s->fc = s->avgpool ? fern__zoo_adopt(c, "fc", fern_layer_linear(512, num_classes, 1)) : NULL;
        ok = s->fc != NULL;
    }
    if (!ok) {
        fern_cell_release(c);
        return NULL;
    }
    return c;
}

fern_cell *fern_model_resnet18(int64_t num_classes, int64_t in_channels)
{
    static const int blocks[4] = {2, 2, 2, 2};
    return fern_model_resnet_cifar(blocks, num_classes, in_channels);
}

fern_cell *fern_model_resnet34(int64_t num_classes, int64_t in_channels)
{
    static const int blocks[4] = {3, 4, 6, 3};
    return fern_model_resnet_cifar(blocks, num_classes, in_channels);
}
