/* View ops: new geometry over the same storage, no copy. reshape copies
 * only when the strides make a view impossible (like torch.reshape).
 * squeeze, unsqueeze and flatten are reshapes; transpose is a permute. */
#include <string.h>

#include "op_def.h"

/* ---- reshape ----------------------------------------------------------- */

static const fern_attr_spec reshape_attrs[] = {{"shape", FERN_ATTR_INTS, 0, NULL}};

static int reshape_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    const fern_attr *s = &c->attrs[0];
    char a[128];
    if (s->n > FERN_MAX_DIMS) {
        fern_set_error(FERN_ERR_INVALID, "reshape: %d dims is more than %d", s->n, FERN_MAX_DIMS);
        return -1;
    }
    int64_t known = 1;
    int infer_at = -1;
    for (int d = 0; d < s->n; d++) {
        if (s->ints[d] == -1) {
            if (infer_at >= 0) {
                fern_set_error(FERN_ERR_INVALID, "reshape: only one dimension may be -1");
                return -1;
            }
            infer_at = d;
        } else if (s->ints[d] < 0) {
            fern_set_error(FERN_ERR_INVALID, "reshape: invalid dimension %lld",
                           (long long)s->ints[d]);
            return -1;
        } else {
            known *= s->ints[d];
        }
        c->out_shape[0][d] = s->ints[d];
    }
    int64_t numel = fern_tensor_numel(x);
    if (infer_at >= 0) {
        if (known == 0 || numel % known) {
            fern_set_error(FERN_ERR_INVALID, "reshape: cannot reshape %s into a shape with -1",
                           fern_tensor_desc(x, a, sizeof a));
            return -1;
        }
        c->out_shape[0][infer_at] = numel / known;
        known = numel;
    }
    if (known != numel) {
        char b[128];
        fern_set_error(FERN_ERR_INVALID, "reshape: cannot reshape %s (%lld elements) into %s",
                       fern_tensor_desc(x, a, sizeof a), (long long)numel,
                       fern__shape_str(s->n, c->out_shape[0], b, sizeof b));
        return -1;
    }
    c->out_dtype[0] = x->dtype;
    c->out_ndim[0] = s->n;
    return 0;
}

/* Strides that view x's storage with the new shape, if possible (the
 * chunk-matching rule of torch's computeStride). */
static int view_strides(const fern_tensor *x, int nd, const int64_t *shape, int64_t *strides)
{
    int64_t numel = fern_tensor_numel(x);
    if (numel <= 1 || x->ndim == 0) {
        fern__contiguous_strides(nd, shape, strides);
        return 0;
    }
    int view_d = nd - 1;
    int64_t chunk = x->strides[x->ndim - 1];
    int64_t tensor_numel = 1, view_numel = 1;
    for (int td = x->ndim - 1; td >= 0; td--) {
        tensor_numel *= x->shape[td];
        if (td == 0 || (x->shape[td - 1] != 1 && x->strides[td - 1] != tensor_numel * chunk)) {
            while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
                strides[view_d] = view_numel * chunk;
                view_numel *= shape[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel)
                return -1;
            if (td > 0) {
                chunk = x->strides[td - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1 ? 0 : -1;
}

static int reshape_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int64_t strides[FERN_MAX_DIMS];
    if (view_strides(x, c->out_ndim[0], c->out_shape[0], strides) == 0) {
        c->out[0] = fern__tensor_view(x, c->out_ndim[0], c->out_shape[0], strides, x->offset);
    } else {
        c->out[0] = fern__tensor_alloc(x->dtype, c->out_ndim[0], c->out_shape[0],
                                       x->storage->device);
        if (c->out[0]) { /* copy in x's logical order into the new geometry */
            fern_tensor tmp = *c->out[0];
            tmp.ndim = x->ndim;
            memcpy(tmp.shape, x->shape, sizeof tmp.shape);
            fern__contiguous_strides(x->ndim, x->shape, tmp.strides);
            fern__strided_copy(x, &tmp);
        }
    }
    return c->out[0] ? 0 : -1;
}

static int reshape_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    gi[0] = fern_reshape(g[0], c->in[0]->ndim, c->in[0]->shape);
    return gi[0] ? 0 : -1;
}

static const fern_op_def op_reshape = {
    .name = "reshape", .n_inputs = 1, .n_outputs = 1, .attrs = reshape_attrs, .n_attrs = 1,
    .infer = reshape_infer, .kernel = {[FERN_CPU] = reshape_kernel}, .dtypes = FERN_DT_ALL,
    .flags = FERN_OPF_VIEW, .doc = "view with a new shape (copies only if strides forbid a view)",
    .grad = reshape_grad};

fern_tensor *fern_reshape(fern_tensor *x, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > FERN_MAX_DIMS || (ndim && !shape)) {
        fern_set_error(FERN_ERR_INVALID, "reshape: invalid ndim %d", ndim);
        return NULL;
    }
    fern_attr a = fern__attr_ints(shape, ndim);
    return fern__op1(&op_reshape, 1, &x, &a);
}

fern_tensor *fern_squeeze(fern_tensor *x, const int *axes, int n_axes)
{
    if (!x)
        return NULL;
    int drop[FERN_MAX_DIMS] = {0};
    for (int k = 0; k < n_axes; k++) {
        int a = fern__norm_axis("squeeze", axes[k], x->ndim);
        if (a < 0)
            return NULL;
        if (x->shape[a] != 1) {
            char b[128];
            fern_set_error(FERN_ERR_INVALID, "squeeze: axis %d of %s has size %lld, not 1", axes[k],
                           fern_tensor_desc(x, b, sizeof b), (long long)x->shape[a]);
            return NULL;
        }
        drop[a] = 1;
    }
    int64_t shape[FERN_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < x->ndim; d++)
        if (!(n_axes ? drop[d] : x->shape[d] == 1))
            shape[nd++] = x->shape[d];
    return fern_reshape(x, nd, shape);
}

fern_tensor *fern_unsqueeze(fern_tensor *x, int axis)
{
    if (!x)
        return NULL;
    int a = axis < 0 ? axis + x->ndim + 1 : axis;
    if (a < 0 || a > x->ndim || x->ndim >= FERN_MAX_DIMS) {
        fern_set_error(FERN_ERR_INVALID, "unsqueeze: axis %d is out of range for a %d-d tensor",
                       axis, x->ndim);
        return NULL;
    }
    int64_t shape[FERN_MAX_DIMS];
    for (int d = 0, o = 0; d <= x->ndim; d++)
        shape[d] = d == a ? 1 : x->shape[o++];
    return fern_reshape(x, x->ndim + 1, shape);
}

fern_tensor *fern_flatten(fern_tensor *x, int start_axis, int end_axis)
{
    if (!x)
        return NULL;
    if (x->ndim == 0) {
        int64_t one = 1;
        return fern_reshape(x, 1, &one);
    }
    int s = fern__norm_axis("flatten", start_axis, x->ndim);
    int e = s < 0 ? -1 : fern__norm_axis("flatten", end_axis, x->ndim);
    if (s < 0 || e < 0)
        return NULL;
    if (s > e) {
        fern_set_error(FERN_ERR_INVALID, "flatten: start axis %d is after end axis %d", start_axis,
                       end_axis);
        return NULL;
    }
    int64_t shape[FERN_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < s; d++)
        shape[nd++] = x->shape[d];
    int64_t m = 1;
    for (int d = s; d <= e; d++)
        m *= x->shape[d];
    shape[nd++] = m;
    for (int d = e + 1; d < x->ndim; d++)
        shape[nd++] = x->shape[d];
    return fern_reshape(x, nd, shape);
}

/* ---- permute ----------------------------------------------------------- */

static const fern_attr_spec permute_attrs[] = {{"perm", FERN_ATTR_INTS, 0, NULL}};

static int permute_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    const fern_attr *p = &c->attrs[0];
    char b[128];
    if (p->n != x->ndim) {
        fern_set_error(FERN_ERR_INVALID, "permute: %d axes given for %s", p->n,
                       fern_tensor_desc(x, b, sizeof b));
        return -1;
    }
    int seen[FERN_MAX_DIMS] = {0};
    for (int d = 0; d < p->n; d++) {
        int64_t a = p->ints[d] < 0 ? p->ints[d] + x->ndim : p->ints[d];
        if (a < 0 || a >= x->ndim || seen[a]) {
            fern_set_error(FERN_ERR_INVALID, "permute: axes are not a permutation of 0..%d for %s",
                           x->ndim - 1, fern_tensor_desc(x, b, sizeof b));
            return -1;
        }
        seen[a] = 1;
        c->out_shape[0][d] = x->shape[a];
    }
    c->out_dtype[0] = x->dtype;
    c->out_ndim[0] = x->ndim;
    return 0;
}

static int permute_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int64_t strides[FERN_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        int64_t a = c->attrs[0].ints[d];
        strides[d] = x->strides[a < 0 ? a + x->ndim : a];
    }
    c->out[0] = fern__tensor_view(x, x->ndim, c->out_shape[0], strides, x->offset);
    return c->out[0] ? 0 : -1;
}

static int permute_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    int nd = c->in[0]->ndim, inv[FERN_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        int64_t a = c->attrs[0].ints[d];
        inv[a < 0 ? a + nd : a] = d;
    }
    gi[0] = fern_permute(g[0], inv);
    return gi[0] ? 0 : -1;
}

static const fern_op_def op_permute = {
    .name = "permute", .n_inputs = 1, .n_outputs = 1, .attrs = permute_attrs, .n_attrs = 1,
    .infer = permute_infer, .kernel = {[FERN_CPU] = permute_kernel}, .dtypes = FERN_DT_ALL,
    .flags = FERN_OPF_VIEW, .doc = "reorder axes (a view)", .grad = permute_grad};

fern_tensor *fern_permute(fern_tensor *x, const int *perm)
{
    if (!x)
        return NULL;
    if (!perm && x->ndim) {
        fern_set_error(FERN_ERR_INVALID, "permute: perm is NULL");
        return NULL;
    }
    fern_attr a = fern__attr_ints_i(perm, x->ndim);
    return fern__op1(&op_permute, 1, &x, &a);
}

fern_tensor *fern_transpose(fern_tensor *x, int axis0, int axis1)
{
    if (!x)
        return NULL;
    int a = fern__norm_axis("transpose", axis0, x->ndim);
    int b = a < 0 ? -1 : fern__norm_axis("transpose", axis1, x->ndim);
    if (a < 0 || b < 0)
        return NULL;
    int perm[FERN_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        perm[d] = d;
    perm[a] = b;
    perm[b] = a;
    return fern_permute(x, perm);
}

/* ---- slice ------------------------------------------------------------- */

static const fern_attr_spec slice_attrs[] = {{"axis", FERN_ATTR_INT, 0, NULL},
                                             {"start", FERN_ATTR_INT, 0, NULL},
                                             {"stop", FERN_ATTR_INT, (double)INT64_MAX, NULL},
                                             {"step", FERN_ATTR_INT, 1, NULL}};

/* Python slice semantics: negative indices count from the end, clamped. */
static void slice_bounds(int64_t n, int64_t start, int64_t stop, int64_t *s, int64_t *len,
                         int64_t step)
{
    if (start < 0)
        start += n;
    if (stop < 0)
        stop += n;
    start = start < 0 ? 0 : start > n ? n : start;
    stop = stop < 0 ? 0 : stop > n ? n : stop;
    *s = start;
    *len = stop > start ? (stop - start + step - 1) / step : 0;
}

static int slice_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int axis = fern__norm_axis("slice", (int)c->attrs[0].i, x->ndim);
    if (axis < 0 || x->ndim == 0) {
        if (axis >= 0)
            fern_set_error(FERN_ERR_INVALID, "slice: cannot slice a 0-d tensor");
        return -1;
    }
    int64_t step = c->attrs[3].i;
    if (step <= 0) {
        fern_set_error(FERN_ERR_INVALID, "slice: step must be positive, got %lld", (long long)step);
        return -1;
    }
    int64_t s, len;
    slice_bounds(x->shape[axis], c->attrs[1].i, c->attrs[2].i, &s, &len, step);
    fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
    c->out_shape[0][axis] = len;
    return 0;
}

static int slice_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int axis = (int)(c->attrs[0].i < 0 ? c->attrs[0].i + x->ndim : c->attrs[0].i);
    int64_t step = c->attrs[3].i, s, len;
    slice_bounds(x->shape[axis], c->attrs[1].i, c->attrs[2].i, &s, &len, step);
    int64_t strides[FERN_MAX_DIMS];
    memcpy(strides, x->strides, sizeof strides);
    strides[axis] *= step;
    c->out[0] = fern__tensor_view(x, x->ndim, c->out_shape[0], strides,
                                  x->offset + (len ? s * x->strides[axis] : 0));
    return c->out[0] ? 0 : -1;
}

/* Zero-pad one axis: `before` zeros in front, `after` behind. */
static fern_tensor *pad_axis(fern_tensor *x, int axis, int64_t before, int64_t after)
{
    if (before == 0 && after == 0)
        return x;
    int64_t pads[2 * FERN_MAX_DIMS] = {0};
    int n = 2 * (x->ndim - axis);
    pads[n - 2] = before;
    pads[n - 1] = after;
    return fern_pad(x, pads, n, FERN_PAD_CONSTANT, 0.0);
}

/* The gradient scatters g back to the sliced positions, with ops only:
 * interleave step-1 zeros after each element, shift by start, fit to n. */
static int slice_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    const fern_tensor *x = c->in[0];
    int axis = (int)(c->attrs[0].i < 0 ? c->attrs[0].i + x->ndim : c->attrs[0].i);
    int64_t step = c->attrs[3].i, s, len, n = x->shape[axis];
    slice_bounds(n, c->attrs[1].i, c->attrs[2].i, &s, &len, step);
    fern_tensor *t = g[0];
    if (len == 0) {
        gi[0] = fern_zeros_like(x);
        return gi[0] ? 0 : -1;
    }
    if (step > 1) {
        t = pad_axis(fern_unsqueeze(t, axis + 1), axis + 1, 0, step - 1);
        int64_t shape[FERN_MAX_DIMS];
        for (int d = 0; d < x->ndim; d++)
            shape[d] = g[0]->shape[d];
        shape[axis] = len * step;
        t = fern_reshape(t, x->ndim, shape);
    }
    int64_t end = s + (step > 1 ? len * step : len);
    t = pad_axis(t, axis, s, end < n ? n - end : 0);
    if (t && end > n)
        t = fern_slice(t, axis, 0, n, 1);
    gi[0] = t;
    return t ? 0 : -1;
}

static const fern_op_def op_slice = {
    .name = "slice", .n_inputs = 1, .n_outputs = 1, .attrs = slice_attrs, .n_attrs = 4,
    .infer = slice_infer, .kernel = {[FERN_CPU] = slice_kernel}, .dtypes = FERN_DT_ALL,
    .flags = FERN_OPF_VIEW, .doc = "python slicing start:stop:step on one axis (a view)",
    .grad = slice_grad};

fern_tensor *fern_slice(fern_tensor *x, int axis, int64_t start, int64_t stop, int64_t step)
{
    fern_attr a[4] = {fern__attr_int(axis), fern__attr_int(start), fern__attr_int(stop),
                      fern__attr_int(step)};
    return fern__op1(&op_slice, 1, &x, a);
}

fern_status fern_split(fern_tensor *x, const int64_t *sizes, int n_parts, int axis,
                       fern_tensor **out)
{
    for (int k = 0; k < n_parts; k++)
        out[k] = NULL;
    if (!x) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "split: input is NULL");
        return fern_last_status();
    }
    int a = fern__norm_axis("split", axis, x->ndim);
    if (a < 0 || n_parts <= 0 || !sizes) {
        if (a >= 0)
            fern_set_error(FERN_ERR_INVALID, "split: need at least one part");
        return FERN_ERR_INVALID;
    }
    int64_t total = 0;
    for (int k = 0; k < n_parts; k++) {
        if (sizes[k] < 0) {
            fern_set_error(FERN_ERR_INVALID, "split: negative part size %lld", (long long)sizes[k]);
            return FERN_ERR_INVALID;
        }
        total += sizes[k];
    }
    if (total != x->shape[a]) {
        char b[128];
        fern_set_error(FERN_ERR_INVALID, "split: sizes sum to %lld but axis %d of %s has %lld",
                       (long long)total, axis, fern_tensor_desc(x, b, sizeof b),
                       (long long)x->shape[a]);
        return FERN_ERR_INVALID;
    }
    int64_t at = 0;
    for (int k = 0; k < n_parts; k++) {
        out[k] = fern_slice(x, a, at, at + sizes[k], 1);
        if (!out[k])
            return fern_last_status();
        at += sizes[k];
    }
    return FERN_OK;
}

/* ---- expand ------------------------------------------------------------ */

static const fern_attr_spec expand_attrs[] = {{"shape", FERN_ATTR_INTS, 0, NULL}};

static int expand_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    const fern_attr *s = &c->attrs[0];
    char b[128], d[128];
    if (s->n < x->ndim || s->n > FERN_MAX_DIMS) {
        fern_set_error(FERN_ERR_INVALID, "expand: cannot expand %s to %d dims",
                       fern_tensor_desc(x, b, sizeof b), s->n);
        return -1;
    }
    int lead = s->n - x->ndim;
    for (int k = 0; k < s->n; k++) {
        int64_t want = s->ints[k];
        int64_t have = k < lead ? 1 : x->shape[k - lead];
        if (want == -1) {
            if (k < lead) {
                fern_set_error(FERN_ERR_INVALID, "expand: -1 is not allowed for a new leading dim");
                return -1;
            }
            want = have;
        }
        if (want != have && have != 1) {
            fern_set_error(FERN_ERR_INVALID, "expand: cannot expand %s to %s",
                           fern_tensor_desc(x, b, sizeof b), fern__shape_str(s->n, s->ints, d, sizeof d));
            return -1;
        }
        c->out_shape[0][k] = want;
    }
    c->out_dtype[0] = x->dtype;
    c->out_ndim[0] = s->n;
    return 0;
}

static int expand_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int nd = c->out_ndim[0], lead = nd - x->ndim;
    int64_t strides[FERN_MAX_DIMS];
    for (int k = 0; k < nd; k++)
        strides[k] = k < lead || (x->shape[k - lead] == 1 && c->out_shape[0][k] != 1)
                         ? 0
                         : x->strides[k - lead];
    c->out[0] = fern__tensor_view(x, nd, c->out_shape[0], strides, x->offset);
    return c->out[0] ? 0 : -1;
}

static int expand_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    gi[0] = fern__sum_to(g[0], c->in[0]);
    return gi[0] ? 0 : -1;
}

static const fern_op_def op_expand = {
    .name = "expand", .n_inputs = 1, .n_outputs = 1, .attrs = expand_attrs, .n_attrs = 1,
    .infer = expand_infer, .kernel = {[FERN_CPU] = expand_kernel}, .dtypes = FERN_DT_ALL,
    .flags = FERN_OPF_VIEW, .doc = "broadcast to a larger shape with zero strides (a view)",
    .grad = expand_grad};

fern_tensor *fern_expand(fern_tensor *x, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > FERN_MAX_DIMS || (ndim && !shape)) {
        fern_set_error(FERN_ERR_INVALID, "expand: invalid ndim %d", ndim);
        return NULL;
    }
    fern_attr a = fern__attr_ints(shape, ndim);
    return fern__op1(&op_expand, 1, &x, &a);
}

/* ---- contiguous and copy ----------------------------------------------- */

static int same_infer(fern_op_call *c)
{
    fern__set_out(c, 0, c->in[0]->dtype, c->in[0]->ndim, c->in[0]->shape);
    return 0;
}

static int identity_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    (void)c;
    gi[0] = g[0];
    return 0;
}

static int contiguous_kernel(fern_op_call *c)
{
    fern_tensor *x = c->in[0];
    if (fern_tensor_is_contiguous(x)) {
        c->out[0] = fern_retain(x);
        return 0;
    }
    c->out[0] = fern__tensor_alloc(x->dtype, x->ndim, x->shape, x->storage->device);
    if (!c->out[0])
        return -1;
    fern__strided_copy(x, c->out[0]);
    return 0;
}

static const fern_op_def op_contiguous = {
    .name = "contiguous", .n_inputs = 1, .n_outputs = 1, .infer = same_infer,
    .kernel = {[FERN_CPU] = contiguous_kernel}, .dtypes = FERN_DT_ALL, .flags = FERN_OPF_VIEW,
    .doc = "row-major copy unless already contiguous", .grad = identity_grad};

static int copy_kernel(fern_op_call *c)
{
    fern__strided_copy(c->in[0], c->out[0]);
    return 0;
}

static const fern_op_def op_copy = {
    .name = "copy", .n_inputs = 1, .n_outputs = 1, .infer = same_infer,
    .kernel = {[FERN_CPU] = copy_kernel}, .dtypes = FERN_DT_ALL,
    .doc = "contiguous copy that never shares storage", .grad = identity_grad};

fern_tensor *fern_contiguous(fern_tensor *x) { return fern__op1(&op_contiguous, 1, &x, NULL); }
fern_tensor *fern_clone(fern_tensor *x) { return fern__op1(&op_copy, 1, &x, NULL); }

/* ---- identity and stop_gradient ------------------------------------------ */

static int alias_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    c->out[0] = fern__tensor_view(x, x->ndim, x->shape, x->strides, x->offset);
    return c->out[0] ? 0 : -1;
}


static int stop_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    (void)c;
    (void)g;
    gi[0] = NULL;
    return 0;
}

/* identity: a new view of x; the vjp core uses it so that the inputs it
 * watches are connected to whatever an outer tape tracks (higher order). */
static const fern_op_def op_identity = {
    .name = "identity", .n_inputs = 1, .n_outputs = 1, .infer = same_infer,
    .kernel = {[FERN_CPU] = alias_kernel}, .dtypes = FERN_DT_ALL, .flags = FERN_OPF_VIEW,
    .doc = "a new view of x (value identity)", .grad = identity_grad};

static const fern_op_def op_stop_gradient = {
    .name = "stop_gradient", .n_inputs = 1, .n_outputs = 1, .infer = same_infer,
    .kernel = {[FERN_CPU] = alias_kernel}, .dtypes = FERN_DT_ALL, .flags = FERN_OPF_VIEW,
    .doc = "identity whose gradient is zero", .grad = stop_grad};

fern_tensor *fern_stop_gradient(fern_tensor *x) { return fern__op1(&op_stop_gradient, 1, &x, NULL); }
fern_tensor *fern__identity(fern_tensor *x) { return fern__op1(&op_identity, 1, &x, NULL); }


const fern_op_def *const fern_ops_view[] = {&op_reshape, &op_permute,  &op_slice,
                                            &op_expand,  &op_contiguous, &op_copy,
                                            &op_identity, &op_stop_gradient, NULL};
