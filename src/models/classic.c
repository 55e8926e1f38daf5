/* Model zoo: the multilayer perceptron and LeNet-5. */
#include <stdio.h>
#include <string.h>

#include "zoo_internal.h"

/* ---- MLP ------------------------------------------------------------------------------ */

fern_cell *fern_model_mlp(int64_t in_features, const int64_t *hidden, int n_hidden, int64_t out_features)
{
    if (n_hidden < 0 || (n_hidden > 0 && !hidden)) {
        fern_set_error(FERN_ERR_INVALID, "model_mlp: need n_hidden >= 0 and the hidden sizes, got n_hidden %d%s",
                       n_hidden, hidden ? "" : " and no sizes");
        return NULL;
    }
    fern_cell *seq = fern_sequential(0, NULL);
    int64_t prev = in_features;
    for (int i = 0; seq && i <= n_hidden; i++) {
        int64_t next = i < n_hidden ? hidden[i] : out_features;
        fern_cell *lin = fern_layer_linear(prev, next, 1);
        fern_status st = lin ? fern_sequential_append(seq, lin) : FERN_ERR_INVALID;
        fern_cell_release(lin);
        if (st == FERN_OK && i < n_hidden) {
            fern_cell *act = fern_layer_relu();
            st = act ? fern_sequential_append(seq, act) : FERN_ERR_INVALID;
            fern_cell_release(act);
        }
        if (st != FERN_OK) {
            fern_cell_release(seq);
            return NULL;
        }
        prev = next;
    }
    return seq;
}

/* ---- LeNet-5 ----------------------------------------------------------------------------- */

typedef struct {
    fern__layer_head h;
    int64_t in_ch;
    fern_cell *conv1, *conv2, *fc1, *fc2, *fc3, *relu, *pool, *flatten;
} lenet_state;

static int lenet_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    lenet_state *s = fern_cell_state(self);
    fern_tensor *x = in[0];
    if (fern__layer_check(self, x, 4, 4, -1, "an input of shape (N, C, 28, 28)"))
        return -1;
    const int64_t *sh = fern_tensor_shape(x);
    if (sh[1] != s->in_ch || sh[2] != 28 || sh[3] != 28) {
        char d[128];
        return fern__layer_err(self, "expected an input of shape (N, %lld, 28, 28), got %s", (long long)s->in_ch,
                               fern_tensor_desc(x, d, sizeof d));
    }
    x = fern_cell_call1(s->pool, fern_cell_call1(s->relu, fern_cell_call1(s->conv1, x)));
    x = fern_cell_call1(s->pool, fern_cell_call1(s->relu, fern_cell_call1(s->conv2, x)));
    x = fern_cell_call1(s->flatten, x);
    x = fern_cell_call1(s->relu, fern_cell_call1(s->fc1, x));
    x = fern_cell_call1(s->relu, fern_cell_call1(s->fc2, x));
    out[0] = fern_cell_call1(s->fc3, x);
    return out[0] ? 0 : -1;
}

fern_cell *fern_model_lenet5(int64_t in_channels, int64_t num_classes)
{
    if (in_channels < 1 || num_classes < 1) {
        fern_set_error(FERN_ERR_INVALID, "model_lenet5: in_channels and num_classes must be positive, got %lld and %lld",
                       (long long)in_channels, (long long)num_classes);
        return NULL;
    }
    fern_cell *c = fern__layer_new("LeNet5", lenet_forward, 1, sizeof(lenet_state), "LeNet5(in_channels=%lld, "
                                   "num_classes=%lld)", (long long)in_channels, (long long)num_classes);
    if (!c)
        return NULL;
    lenet_state *s = fern_cell_state(c);
    s->in_ch = in_channels;
    fern_conv_opts pad2 = fern_conv_opts_default();
    pad2.padding[0] = pad2.padding[1] = 2;
    fern_pool_opts pool = fern_pool_opts_default(2, 2);
    s->conv1 = fern__zoo_adopt(c, "conv1", fern_layer_conv2d(in_channels, 6, 5, 5, &pad2, 1));
    s->conv2 = s->conv1 ? fern__zoo_adopt(c, "conv2", fern_layer_conv2d(6, 16, 5, 5, NULL, 1)) : NULL;
    s->fc1 = s->conv2 ? fern__zoo_adopt(c, "fc1", fern_layer_linear(16 * 5 * 5, 120, 1)) : NULL;
    s->fc2 = s->fc1 ? fern__zoo_adopt(c, "fc2", fern_layer_linear(120, 84, 1)) : NULL;
    s->fc3 = s->fc2 ? fern__zoo_adopt(c, "fc3", fern_layer_linear(84, num_classes, 1)) : NULL;
    s->relu = s->fc3 ? fern__zoo_adopt(c, "relu", fern_layer_relu()) : NULL;
    s->pool = s->relu ? fern__zoo_adopt(c, "max_pool2d", fern_layer_max_pool2d(&pool)) : NULL;
    s->flatten = s->pool ? fern__zoo_adopt(c, "flatten", fern_layer_flatten(1, -1)) : NULL;
    if (!s->flatten) {
        fern_cell_release(c);
        return NULL;
    }
    return c;
}
