/* Shape and indexing ops: concat, stack, gather, take_along_axis, scatter,
 * scatter_add, index_select, tile, repeat, flip, roll, tril and triu.
 * All but scatter_add only move data, so their kernels work per element
 * size (1, 2, 4 or 8 bytes) and accept every dtype. Index tensors may be
 * i32 or i64. Inputs may have any strides (repeat asks the dispatcher for
 * contiguous inputs); outputs are contiguous. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backend/cpu/copy_view.h"
#include "op_def.h"

/* ---- helpers ----------------------------------------------------------- */

/* "f32[2,3], i64[4]" for error messages. */
static const char *inputs_str(const fern_op_call *c, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < c->n_in && used + 1 < n; i++) {
        char d[128];
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "",
                                 c->in[i] ? fern_tensor_desc(c->in[i], d, sizeof d) : "none");
    }
    return buf;
}

/* Axis of a tensor where a 0-d tensor counts as 1-d (axis 0 or -1). */
static int axis_1d(const fern_op_call *c, int64_t axis, int ndim)
{
    int nd = ndim ? ndim : 1;
    int64_t a = axis < 0 ? axis + nd : axis;
    if (a < 0 || a >= nd) {
        char ins[512];
        fern_set_error(FERN_ERR_INVALID, "%s: axis %lld is out of range for a %d-d tensor (inputs: %s)",
                       c->op->name, (long long)axis, ndim, inputs_str(c, ins, sizeof ins));
        return -1;
    }
    return (int)a;
}

static int check_index_dtype(const fern_op_call *c, const fern_tensor *idx)
{
    if (idx->dtype != FERN_I32 && idx->dtype != FERN_I64)
        return fern__err_dtype(c, idx, "index must be an i32 or i64 tensor");
    return 0;
}

static inline int64_t load_index(const void *p, int is32, int64_t off)
{
    return is32 ? ((const int32_t *)p)[off] : ((const int64_t *)p)[off];
}

/* Copy n elements of size es from src (stride ss, in elements) to dst
 * (contiguous). */
static void copy_row(char *restrict dst, const char *restrict src, int64_t n, int64_t ss,
                     size_t es)
{
    if (ss == 1) {
        memcpy(dst, src, (size_t)n * es);
        return;
    }
    switch (es) {
    case 1:
        for (int64_t i = 0; i < n; i++)
            dst[i] = src[i * ss];
        break;
    case 2: {
        uint16_t *restrict d = (uint16_t *)dst;
        const uint16_t *s = (const uint16_t *)src;
        for (int64_t i = 0; i < n; i++)
            d[i] = s[i * ss];
        break;
    }
    case 4: {
        uint32_t *restrict d = (uint32_t *)dst;
        const uint32_t *s = (const uint32_t *)src;
        for (int64_t i = 0; i < n; i++)
            d[i] = s[i * ss];
        break;
    }
    default: {
        uint64_t *restrict d = (uint64_t *)dst;
        const uint64_t *s = (const uint64_t *)src;
        for (int64_t i = 0; i < n; i++)
            d[i] = s[i * ss];
        break;
    }
    }
}

/* A stack header viewing t's storage with another geometry (no refcount:
 * only for passing to fern__strided_copy while t is alive). */
static fern_tensor geometry(const fern_tensor *t, int ndim, const int64_t *shape,
                            const int64_t *strides, int64_t offset)
{
    fern_tensor v = *t;
    v.ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        v.shape[d] = shape[d];
        v.strides[d] = strides[d];
    }
    v.offset = offset;
    return v;
}

/* Copy src's elements into dst (same shape), converting dtype if needed. */
static int copy_convert(const fern_tensor *src, fern_tensor *dst)
{
    if (src->dtype == dst->dtype) {
        fern__strided_copy(src, dst);
        return 0;
    }
    fern_tensor *tmp = NULL, *conv;
    const fern_tensor *s = src;
    if (!fern_tensor_is_contiguous(src)) {
        tmp = fern__tensor_alloc(src->dtype, src->ndim, src->shape, FERN_CPU);
        if (!tmp)
            return -1;
        fern__strided_copy(src, tmp);
        s = tmp;
    }
    conv = fern__tensor_alloc(dst->dtype, src->ndim, src->shape, FERN_CPU);
    if (!conv) {
        fern_release(tmp);
        return -1;
    }
    fern__convert(fern_tensor_data(s), s->dtype, fern_tensor_data(conv), conv->dtype,
                  fern_tensor_numel(s));
    fern__strided_copy(conv, dst);
    fern_release(conv);
    fern_release(tmp);
    return 0;
}

static int check_n_inputs(const char *op, fern_tensor *const *xs, int n)
{
    if (n < 1 || n > FERN_MAX_INPUTS || !xs) {
        fern_set_error(FERN_ERR_INVALID, "%s: need between 1 and %d tensors, got %d", op,
                       FERN_MAX_INPUTS, n);
        return -1;
    }
    return 0;
}

/* ---- gradient helpers ---------------------------------------------------
 * Gradient rules use public ops only (they trace and are differentiable
 * themselves); index inputs get no cotangent. */

static int is_float(const fern_tensor *t) { return t && fern_dtype_is_float(t->dtype); }

/* g cast to t's dtype (an input whose dtype the op promoted). */
static fern_tensor *cast_like(fern_tensor *g, const fern_tensor *t)
{
    return g && g->dtype != t->dtype ? fern_cast(g, t->dtype) : g;
}

/* Zero-pad g at the end of every dim up to `like`'s shape (scatter's src
 * may be larger than its index). */
static fern_tensor *pad_to(fern_tensor *g, const fern_tensor *like)
{
    if (!g)
        return NULL;
    int64_t pads[2 * FERN_MAX_DIMS] = {0};
    int nd = like->ndim, any = 0;
    for (int d = 0; d < nd; d++) {
        pads[2 * (nd - 1 - d) + 1] = like->shape[d] - g->shape[d];
        any |= like->shape[d] != g->shape[d];
    }
    return any ? fern_pad(g, pads, 2 * nd, FERN_PAD_CONSTANT, 0.0) : g;
}

static int64_t numel_of(int nd, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < nd; d++)
        n *= shape[d];
    return n;
}

/* The axis attribute normalized against ndim (0-d tensors act as 1-d). */
static int norm_axis(int64_t axis, int ndim)
{
    return (int)(axis < 0 ? axis + (ndim ? ndim : 1) : axis);
}

/* ---- concat ------------------------------------------------------------ */

static const fern_attr_spec axis_attrs[] = {{"axis", FERN_ATTR_INT, 0, NULL}};

/* torch.cat skips 1-d empty tensors (legacy behaviour) in shape checks. */
static int cat_skipped(const fern_tensor *t) { return t->ndim == 1 && t->shape[0] == 0; }

static int concat_infer(fern_op_call *c)
{
    char ins[512], a[128], b[128];
    int n = c->n_in, ref = -1;
    fern_dtype dt = c->in[0]->dtype;
    for (int i = 0; i < n; i++) {
        const fern_tensor *t = c->in[i];
        if (t->ndim == 0) {
            fern_set_error(FERN_ERR_INVALID,
                           "concat: zero-dimensional tensor (at position %d) cannot be concatenated (inputs: %s)",
                           i, inputs_str(c, ins, sizeof ins));
            return -1;
        }
        dt = fern_dtype_promote(dt, t->dtype);
        if (ref < 0 && !cat_skipped(t))
            ref = i;
    }
    const fern_tensor *r = c->in[ref < 0 ? 0 : ref];
    int axis = axis_1d(c, c->attrs[0].i, r->ndim);
    if (axis < 0)
        return -1;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const fern_tensor *t = c->in[i];
        if (ref >= 0 && cat_skipped(t))
            continue;
        if (t->ndim != r->ndim) {
            fern_set_error(FERN_ERR_INVALID,
                           "concat: tensors must have the same number of dims, got %s (position %d) and %s (position %d)",
                           fern_tensor_desc(r, a, sizeof a), ref, fern_tensor_desc(t, b, sizeof b), i);
            return -1;
        }
        for (int d = 0; d < r->ndim; d++)
            if (d != axis && t->shape[d] != r->shape[d]) {
                fern_set_error(FERN_ERR_INVALID,
                               "concat: sizes must match except along axis %d, got %s and %s (inputs: %s)",
                               axis, fern_tensor_desc(r, a, sizeof a), fern_tensor_desc(t, b, sizeof b),
                               inputs_str(c, ins, sizeof ins));
                return -1;
            }
        total += t->shape[axis];
    }
    fern__set_out(c, 0, dt, r->ndim, r->shape);
    c->out_shape[0][axis] = total;
    return 0;
}

static int concat_kernel(fern_op_call *c)
{
    fern_tensor *o = c->out[0];
    int axis = (int)(c->attrs[0].i < 0 ? c->attrs[0].i + o->ndim : c->attrs[0].i);
    int64_t pos = 0;
    for (int i = 0; i < c->n_in; i++) {
        const fern_tensor *t = c->in[i];
        if (t->ndim != o->ndim) /* a skipped 1-d empty tensor */
            continue;
        if (fern_tensor_numel(t) > 0) {
            fern_tensor v = geometry(o, o->ndim, t->shape, o->strides,
                                     o->offset + pos * o->strides[axis]);
            if (copy_convert(t, &v))
                return -1;
        }
        pos += t->shape[axis];
    }
    return 0;
}

/* Each input's cotangent is its slice of g (cast back if promoted). */
static int concat_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    if (!g[0])
        return 0;
    int nd = g[0]->ndim, axis = norm_axis(c->attrs[0].i, nd);
    int64_t pos = 0;
    for (int i = 0; i < c->n_in; i++) {
        const fern_tensor *t = c->in[i];
        if (t->ndim != nd) /* a skipped 1-d empty tensor */
            continue;
        int64_t len = t->shape[axis];
        if (is_float(t)) {
            gi[i] = cast_like(fern_slice(g[0], axis, pos, pos + len, 1), t);
            if (!gi[i])
                return -1;
        }
        pos += len;
    }
    return 0;
}

static const fern_op_def op_concat = {
    .name = "concat", .n_inputs = -1, .n_outputs = 1, .attrs = axis_attrs, .n_attrs = 1,
    .infer = concat_infer, .kernel = {[FERN_CPU] = concat_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = 0, .doc = "join tensors along an existing axis (dtypes promote like torch.cat)",
    .grad = concat_grad};

fern_tensor *fern_concat(fern_tensor *const *xs, int n, int axis)
{
    if (check_n_inputs("concat", xs, n))
        return NULL;
    fern_attr a = fern__attr_int(axis);
    return fern__op1(&op_concat, n, xs, &a);
}

/* ---- stack ------------------------------------------------------------- */

static int stack_infer(fern_op_call *c)
{
    char a[128], b[128];
    const fern_tensor *r = c->in[0];
    fern_dtype dt = r->dtype;
    for (int i = 1; i < c->n_in; i++) {
        const fern_tensor *t = c->in[i];
        if (t->ndim != r->ndim ||
            memcmp(t->shape, r->shape, sizeof(int64_t) * (size_t)r->ndim) != 0) {
            fern_set_error(FERN_ERR_INVALID,
                           "stack: expects tensors of equal shape, got %s at position 0 and %s at position %d",
                           fern_tensor_desc(r, a, sizeof a), fern_tensor_desc(t, b, sizeof b), i);
            return -1;
        }
        dt = fern_dtype_promote(dt, t->dtype);
    }
    if (r->ndim + 1 > FERN_MAX_DIMS) {
        fern_set_error(FERN_ERR_INVALID, "stack: result would have more than %d dims",
                       FERN_MAX_DIMS);
        return -1;
    }
    int axis = axis_1d(c, c->attrs[0].i, r->ndim + 1);
    if (axis < 0)
        return -1;
    c->out_dtype[0] = dt;
    c->out_ndim[0] = r->ndim + 1;
    for (int d = 0, k = 0; d <= r->ndim; d++)
        c->out_shape[0][d] = d == axis ? c->n_in : r->shape[k++];
    return 0;
}

static int stack_kernel(fern_op_call *c)
{
    fern_tensor *o = c->out[0];
    int axis = (int)(c->attrs[0].i < 0 ? c->attrs[0].i + o->ndim : c->attrs[0].i);
    int64_t strides[FERN_MAX_DIMS];
    for (int d = 0, k = 0; d < o->ndim; d++)
        if (d != axis)
            strides[k++] = o->strides[d];
    for (int i = 0; i < c->n_in; i++) {
        const fern_tensor *t = c->in[i];
        fern_tensor v = geometry(o, t->ndim, t->shape, strides, o->offset + i * o->strides[axis]);
        if (copy_convert(t, &v))
            return -1;
    }
    return 0;
}

/* Input i's cotangent is g's i-th slice along the new axis, squeezed. */
static int stack_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    if (!g[0])
        return 0;
    int axis = norm_axis(c->attrs[0].i, g[0]->ndim);
    for (int i = 0; i < c->n_in; i++) {
        const fern_tensor *t = c->in[i];
        if (!is_float(t))
            continue;
        fern_tensor *s = fern_slice(g[0], axis, i, i + 1, 1);
        gi[i] = cast_like(s ? fern_reshape(s, t->ndim, t->shape) : NULL, t);
        if (!gi[i])
            return -1;
    }
    return 0;
}

static const fern_op_def op_stack = {
    .name = "stack", .n_inputs = -1, .n_outputs = 1, .attrs = axis_attrs, .n_attrs = 1,
    .infer = stack_infer, .kernel = {[FERN_CPU] = stack_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = 0, .doc = "join equal-shaped tensors along a new axis (dtypes promote)",
    .grad = stack_grad};

fern_tensor *fern_stack(fern_tensor *const *xs, int n, int axis)
{
    if (check_n_inputs("stack", xs, n))
        return NULL;
    fern_attr a = fern__attr_int(axis);
    return fern__op1(&op_stack, n, xs, &a);
}

/* ---- the gather engine (gather, take_along_axis, index_select) ---------- */

typedef struct {
    int nd, axis;                   /* nd >= 1 (0-d tensors act as 1-d)      */
    int64_t shape[FERN_MAX_DIMS];   /* iteration shape = output shape        */
    int64_t xs[FERN_MAX_DIMS];      /* x strides per dim (0 on the axis)     */
    int64_t is[FERN_MAX_DIMS];      /* index strides per dim                 */
    int64_t xsa, size;              /* x stride and size along the axis      */
    const char *x;
    const void *idx;
    int is32, wrap;                 /* wrap: negative indices from the end   */
    char *out;                      /* contiguous                            */
    size_t es;
    atomic_int bad;
    int report;                     /* serial rerun: record the first bad    */
    int64_t bad_val;
} gather_job;

static void gather_bad(gather_job *j, int64_t v)
{
    if (j->report && !atomic_load(&j->bad))
        j->bad_val = v;
    atomic_store(&j->bad, 1);
}

#define GATHER_ELEMS(T)                                                                         \
    do {                                                                                        \
        T *restrict od = (T *)o;                                                                \
        const T *xb = (const T *)j->x;                                                          \
        for (int64_t k = 0; k < inner; k++) {                                                   \
            int64_t v = load_index(j->idx, j->is32, io + k * isl);                              \
            int64_t w = v < 0 && j->wrap ? v + j->size : v;                                     \
            if ((uint64_t)w >= (uint64_t)j->size) {                                             \
                gather_bad(j, v);                                                               \
                return;                                                                         \
            }                                                                                   \
            od[k] = xb[xo + k * xsl + w * j->xsa];                                              \
        }                                                                                       \
    } while (0)

static void gather_rows(void *ctx, int64_t r0, int64_t r1)
{
    gather_job *j = ctx;
    int nd = j->nd;
    int64_t inner = j->shape[nd - 1], xsl = j->xs[nd - 1], isl = j->is[nd - 1];
    size_t es = j->es;
    int64_t coord[FERN_MAX_DIMS] = {0}, xo = 0, io = 0, rem = r0;
    for (int d = nd - 2; d >= 0; d--) {
        coord[d] = rem % j->shape[d];
        rem /= j->shape[d];
        xo += coord[d] * j->xs[d];
        io += coord[d] * j->is[d];
    }
    for (int64_t r = r0; r < r1; r++) {
        if (atomic_load_explicit(&j->bad, memory_order_relaxed))
            return;
        char *o = j->out + r * inner * (int64_t)es;
        if (isl == 0 && j->axis != nd - 1) { /* one index for the whole row */
            int64_t v = load_index(j->idx, j->is32, io);
            int64_t w = v < 0 && j->wrap ? v + j->size : v;
            if ((uint64_t)w >= (uint64_t)j->size) {
                gather_bad(j, v);
                return;
            }
            copy_row(o, j->x + (xo + w * j->xsa) * (int64_t)es, inner, xsl, es);
        } else {
            switch (es) {
            case 1: GATHER_ELEMS(uint8_t); break;
            case 2: GATHER_ELEMS(uint16_t); break;
            case 4: GATHER_ELEMS(uint32_t); break;
            default: GATHER_ELEMS(uint64_t); break;
            }
        }
        for (int d = nd - 2; d >= 0; d--) {
            coord[d]++;
            xo += j->xs[d];
            io += j->is[d];
            if (coord[d] < j->shape[d])
                break;
            xo -= coord[d] * j->xs[d];
            io -= coord[d] * j->is[d];
            coord[d] = 0;
        }
    }
}

/* Run the gather; on a bad index, rerun serially to name the first one. */
static int gather_run(const fern_op_call *c, gather_job *j, const char *dimword)
{
    int64_t inner = j->shape[j->nd - 1], rows = 1;
    for (int d = 0; d < j->nd - 1; d++)
        rows *= j->shape[d];
    if (rows == 0 || inner == 0)
        return 0;
    atomic_init(&j->bad, 0);
    j->report = 0;
    fern_parallel_for(rows, inner >= 16384 ? 1 : 16384 / inner, gather_rows, j);
    if (!atomic_load(&j->bad))
        return 0;
    atomic_store(&j->bad, 0);
    j->report = 1;
    gather_rows(j, 0, rows);
    char ins[512];
    fern_set_error(FERN_ERR_INVALID, "%s: index %lld is out of bounds for %s %d with size %lld (inputs: %s)",
                   c->op->name, (long long)j->bad_val, dimword, j->axis, (long long)j->size,
                   inputs_str(c, ins, sizeof ins));
    return -1;
}

static void gather_setup(gather_job *j, const fern_tensor *x, const fern_tensor *idx,
                         fern_tensor *out, int axis)
{
    memset(j, 0, sizeof *j);
    j->nd = out->ndim ? out->ndim : 1;
    j->axis = axis;
    for (int d = 0; d < j->nd; d++) {
        j->shape[d] = out->ndim ? out->shape[d] : 1;
        j->xs[d] = 0;
        j->is[d] = 0;
    }
    j->xsa = x->ndim ? x->strides[axis] : 0;
    j->size = x->ndim ? x->shape[axis] : 1;
    j->x = fern_tensor_data(x);
    j->idx = fern_tensor_data(idx);
    j->is32 = idx->dtype == FERN_I32;
    j->out = fern_tensor_data(out);
    j->es = fern_dtype_size(x->dtype);
}

/* ---- gather ------------------------------------------------------------ */

static int gather_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0], *idx = c->in[1];
    char ins[512];
    if (check_index_dtype(c, idx))
        return -1;
    if (x->ndim != idx->ndim) {
        fern_set_error(FERN_ERR_INVALID,
                       "gather: index must have the same number of dims as the input (inputs: %s)",
                       inputs_str(c, ins, sizeof ins));
        return -1;
    }
    int axis = axis_1d(c, c->attrs[0].i, x->ndim);
    if (axis < 0)
        return -1;
    for (int d = 0; d < x->ndim; d++)
        if (d != axis && idx->shape[d] > x->shape[d]) {
            fern_set_error(FERN_ERR_INVALID,
                           "gather: index size %lld exceeds input size %lld at dim %d (allowed only on axis %d) (inputs: %s)",
                           (long long)idx->shape[d], (long long)x->shape[d], d, axis,
                           inputs_str(c, ins, sizeof ins));
            return -1;
        }
    fern__set_out(c, 0, x->dtype, idx->ndim, idx->shape);
    return 0;
}

static int gather_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0], *idx = c->in[1];
    int axis = (int)(c->attrs[0].i < 0 ? c->attrs[0].i + (x->ndim ? x->ndim : 1) : c->attrs[0].i);
    gather_job j;
    gather_setup(&j, x, idx, c->out[0], axis);
    for (int d = 0; d < x->ndim; d++) {
        j.xs[d] = d == axis ? 0 : x->strides[d];
        j.is[d] = idx->strides[d];
    }
    return gather_run(c, &j, "dimension");
}

/* x's cotangent: g added into zeros at the gathered positions. */
static int gather_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0], *idx = c->in[1];
    if (!g[0] || !is_float(x))
        return 0;
    fern_tensor *z = fern_zeros_like(x);
    gi[0] = z ? fern_scatter_add(z, (int)c->attrs[0].i, idx, g[0]) : NULL;
    return gi[0] ? 0 : -1;
}

static const fern_op_def op_gather = {
    .name = "gather", .n_inputs = 2, .n_outputs = 1, .attrs = axis_attrs, .n_attrs = 1,
    .infer = gather_infer, .kernel = {[FERN_CPU] = gather_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = 0, .doc = "torch.gather: out[i][j] = x[index[i][j]][j] (axis 0)",
    .grad = gather_grad};

fern_tensor *fern_gather(fern_tensor *x, int axis, fern_tensor *index)
{
    fern_tensor *in[2] = {x, index};
    fern_attr a = fern__attr_int(axis);
    return fern__op1(&op_gather, 2, in, &a);
}

/* ---- take_along_axis --------------------------------------------------- */

static int take_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0], *idx = c->in[1];
    char ins[512];
    if (check_index_dtype(c, idx))
        return -1;
    if (x->ndim != idx->ndim) {
        fern_set_error(FERN_ERR_INVALID,
                       "take_along_axis: index and input must have the same number of dims (inputs: %s)",
                       inputs_str(c, ins, sizeof ins));
        return -1;
    }
    int axis = axis_1d(c, c->attrs[0].i, x->ndim);
    if (axis < 0)
        return -1;
    fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
    for (int d = 0; d < x->ndim; d++) {
        int64_t a = x->shape[d], b = idx->shape[d];
        if (d == axis) {
            c->out_shape[0][d] = b;
        } else if (a == b || a == 1 || b == 1) {
            c->out_shape[0][d] = a == 1 ? b : a;
        } else {
            fern_set_error(FERN_ERR_INVALID,
                           "take_along_axis: shapes cannot be broadcast together at dim %d (inputs: %s)",
                           d, inputs_str(c, ins, sizeof ins));
            return -1;
        }
    }
    return 0;
}

static int take_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0], *idx = c->in[1];
    fern_tensor *o = c->out[0];
    int axis = (int)(c->attrs[0].i < 0 ? c->attrs[0].i + (x->ndim ? x->ndim : 1) : c->attrs[0].i);
    gather_job j;
    gather_setup(&j, x, idx, o, axis);
    j.wrap = 1;
    for (int d = 0; d < x->ndim; d++) {
        j.xs[d] = d == axis || (x->shape[d] == 1 && o->shape[d] != 1) ? 0 : x->strides[d];
        j.is[d] = idx->shape[d] == 1 && o->shape[d] != 1 ? 0 : idx->strides[d];
    }
    return gather_run(c, &j, "axis");
}

/* Negative indices made positive, the index broadcast to the output's
 * shape, g added into zeros of the output's shape with x's size on the
 * axis, then summed over the dims where x was broadcast. */
static int take_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0], *idx = c->in[1];
    if (!g[0] || !is_float(x))
        return 0;
    int nd = g[0]->ndim, axis = norm_axis(c->attrs[0].i, nd);
    int64_t size = x->ndim ? x->shape[axis] : 1;
    fern_tensor *zero = fern_zeros(idx->dtype, 0, NULL);
    fern_tensor *neg = zero ? fern_lt(idx, zero) : NULL;
    fern_tensor *wrapped = neg ? fern_add_scalar(idx, (double)size) : NULL;
    fern_tensor *pos = wrapped ? fern_where(neg, wrapped, idx) : NULL;
    if (pos && memcmp(pos->shape, g[0]->shape, sizeof(int64_t) * (size_t)nd) != 0)
        pos = fern_expand(pos, nd, g[0]->shape);
    int64_t shape[FERN_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        shape[d] = d == axis ? size : g[0]->shape[d];
    fern_tensor *z = pos ? fern_zeros(x->dtype, nd, shape) : NULL;
    fern_tensor *r = z ? fern_scatter_add(z, axis, pos, g[0]) : NULL;
    gi[0] = r ? fern__sum_to(r, x) : NULL;
    return gi[0] ? 0 : -1;
}

static const fern_op_def op_take_along_axis = {
    .name = "take_along_axis", .n_inputs = 2, .n_outputs = 1, .attrs = axis_attrs, .n_attrs = 1,
    .infer = take_infer, .kernel = {[FERN_CPU] = take_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = 0,
    .doc = "numpy.take_along_axis: gather whose index broadcasts; negative indices count from the end",
    .grad = take_grad};

fern_tensor *fern_take_along_axis(fern_tensor *x, fern_tensor *index, int axis)
{
    fern_tensor *in[2] = {x, index};
    fern_attr a = fern__attr_int(axis);
    return fern__op1(&op_take_along_axis, 2, in, &a);
}

/* ---- index_select ------------------------------------------------------ */

static int index_select_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0], *idx = c->in[1];
    char ins[512];
    if (check_index_dtype(c, idx))
        return -1;
    if (idx->ndim > 1) {
        fern_set_error(FERN_ERR_INVALID, "index_select: index must be 0-d or 1-d (inputs: %s)",
                       inputs_str(c, ins, sizeof ins));
        return -1;
    }
    int axis = axis_1d(c, c->attrs[0].i, x->ndim);
    if (axis < 0)
        return -1;
    int64_t len = fern_tensor_numel(idx);
    if (x->ndim == 0 && len != 1) {
        fern_set_error(FERN_ERR_INVALID,
                       "index_select: a 0-d input needs exactly one index, got %lld (inputs: %s)",
                       (long long)len, inputs_str(c, ins, sizeof ins));
        return -1;
    }
    fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
    if (x->ndim)
        c->out_shape[0][axis] = len;
    return 0;
}

static int index_select_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0], *idx = c->in[1];
    int axis = (int)(c->attrs[0].i < 0 ? c->attrs[0].i + (x->ndim ? x->ndim : 1) : c->attrs[0].i);
    gather_job j;
    gather_setup(&j, x, idx, c->out[0], axis);
    for (int d = 0; d < x->ndim; d++)
        j.xs[d] = d == axis ? 0 : x->strides[d];
    j.is[axis] = idx->ndim ? idx->strides[0] : 0;
    return gather_run(c, &j, "dimension");
}

/* Index-add: the 1-d index laid along the axis and expanded to g's shape,
 * g added into zeros at those positions. */
static int index_select_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0], *idx = c->in[1];
    if (!g[0] || !is_float(x))
        return 0;
    int nd = x->ndim, axis = norm_axis(c->attrs[0].i, nd);
    int64_t shape[FERN_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        shape[d] = d == axis ? fern_tensor_numel(idx) : 1;
    fern_tensor *e = fern_reshape(idx, nd, shape);
    if (e && nd)
        e = fern_expand(e, nd, g[0]->shape);
    fern_tensor *z = e ? fern_zeros_like(x) : NULL;
    gi[0] = z ? fern_scatter_add(z, axis, e, g[0]) : NULL;
    return gi[0] ? 0 : -1;
}

static const fern_op_def op_index_select = {
    .name = "index_select", .n_inputs = 2, .n_outputs = 1, .attrs = axis_attrs, .n_attrs = 1,
    .infer = index_select_infer, .kernel = {[FERN_CPU] = index_select_kernel},
    .dtypes = FERN_DT_ALL, .dtype_arg = 0,
    .doc = "torch.index_select: entries of a 1-d index along one axis",
    .grad = index_select_grad};

fern_tensor *fern_index_select(fern_tensor *x, int axis, fern_tensor *index)
{
    fern_tensor *in[2] = {x, index};
    fern_attr a = fern__attr_int(axis);
    return fern__op1(&op_index_select, 2, in, &a);
}

/* ---- scatter, scatter_add ---------------------------------------------- */

typedef struct {
    int nd, axis;
    int64_t oshape[FERN_MAX_DIMS]; /* the index shape without the axis    */
    int64_t ois[FERN_MAX_DIMS], oss[FERN_MAX_DIMS], oos[FERN_MAX_DIMS];
    int n_outer_dims;
    int64_t len;                   /* index size along the axis           */
    int64_t is_a, ss_a, os_a;      /* strides along the axis              */
    int64_t size;                  /* output size along the axis          */
    const void *idx;
    int is32, add;
    const char *src;
    char *out;
    fern_dtype dt;
    atomic_int bad;
    int report;
    int64_t bad_val;
} scatter_job;

#define SCATTER_LOOP(T, OP)                                                                     \
    do {                                                                                        \
        T *od = (T *)j->out;                                                                    \
        const T *sd = (const T *)j->src;                                                        \
        for (int64_t t = 0; t < j->len; t++) {                                                  \
            int64_t v = load_index(j->idx, j->is32, io + t * j->is_a);                          \
            if ((uint64_t)v >= (uint64_t)j->size) {                                             \
                if (j->report && !atomic_load(&j->bad))                                         \
                    j->bad_val = v;                                                             \
                atomic_store(&j->bad, 1);                                                       \
                return;                                                                         \
            }                                                                                   \
            T *dp = od + oo + v * j->os_a;                                                      \
            T sv = sd[so + t * j->ss_a];                                                        \
            OP;                                                                                 \
        }                                                                                       \
    } while (0)

#define SET_OP (*dp = sv)
#define ADD_OP (*dp = *dp + sv)
#define WRAP_ADD_OP(U, T) (*dp = (T)(U)((U)*dp + (U)sv))
#define OR_OP (*dp = (uint8_t)(*dp | sv))

static void scatter_outer(void *ctx, int64_t r0, int64_t r1)
{
    scatter_job *j = ctx;
    int m = j->n_outer_dims;
    int64_t coord[FERN_MAX_DIMS] = {0}, io = 0, so = 0, oo = 0, rem = r0;
    for (int d = m - 1; d >= 0; d--) {
        coord[d] = rem % j->oshape[d];
        rem /= j->oshape[d];
        io += coord[d] * j->ois[d];
        so += coord[d] * j->oss[d];
        oo += coord[d] * j->oos[d];
    }
    for (int64_t r = r0; r < r1; r++) {
        if (atomic_load_explicit(&j->bad, memory_order_relaxed))
            return;
        if (!j->add) {
            switch (fern_dtype_size(j->dt)) {
            case 1: SCATTER_LOOP(uint8_t, SET_OP); break;
            case 2: SCATTER_LOOP(uint16_t, SET_OP); break;
            case 4: SCATTER_LOOP(uint32_t, SET_OP); break;
            default: SCATTER_LOOP(uint64_t, SET_OP); break;
            }
        } else {
            switch (j->dt) {
            case FERN_F32: SCATTER_LOOP(float, ADD_OP); break;
            case FERN_F64: SCATTER_LOOP(double, ADD_OP); break;
            case FERN_I8: SCATTER_LOOP(int8_t, WRAP_ADD_OP(uint8_t, int8_t)); break;
            case FERN_U8: SCATTER_LOOP(uint8_t, WRAP_ADD_OP(uint8_t, uint8_t)); break;
            case FERN_I32: SCATTER_LOOP(int32_t, WRAP_ADD_OP(uint32_t, int32_t)); break;
            case FERN_I64: SCATTER_LOOP(int64_t, WRAP_ADD_OP(uint64_t, int64_t)); break;
            default: SCATTER_LOOP(uint8_t, OR_OP); break; /* bool */
            }
        }
        for (int d = m - 1; d >= 0; d--) {
            coord[d]++;
            io += j->ois[d];
            so += j->oss[d];
            oo += j->oos[d];
            if (coord[d] < j->oshape[d])
                break;
            io -= coord[d] * j->ois[d];
            so -= coord[d] * j->oss[d];
            oo -= coord[d] * j->oos[d];
            coord[d] = 0;
        }
    }
}

static int scatter_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0], *idx = c->in[1], *src = c->in[2];
    const char *op = c->op->name;
    char ins[512];
    if (check_index_dtype(c, idx))
        return -1;
    if (src->dtype != x->dtype)
        return fern__err_dtype(c, src, "src must have the same dtype as the input");
    if (idx->ndim != x->ndim || src->ndim != x->ndim) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: input, index and src must have the same number of dims (inputs: %s)", op,
                       inputs_str(c, ins, sizeof ins));
        return -1;
    }
    int axis = axis_1d(c, c->attrs[0].i, x->ndim);
    if (axis < 0)
        return -1;
    for (int d = 0; d < x->ndim; d++)
        if (idx->shape[d] > src->shape[d] || (d != axis && idx->shape[d] > x->shape[d])) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: index is larger than src (any dim) or than the input (dims other than axis %d) at dim %d (inputs: %s)",
                           op, axis, d, inputs_str(c, ins, sizeof ins));
            return -1;
        }
    fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
    return 0;
}

static int scatter_run(fern_op_call *c, int add)
{
    const fern_tensor *x = c->in[0], *idx = c->in[1], *src = c->in[2];
    fern_tensor *o = c->out[0];
    fern__strided_copy(x, o);
    int nd = x->ndim;
    int axis = (int)(c->attrs[0].i < 0 ? c->attrs[0].i + (nd ? nd : 1) : c->attrs[0].i);
    scatter_job j;
    memset(&j, 0, sizeof j);
    j.axis = axis;
    j.idx = fern_tensor_data(idx);
    j.is32 = idx->dtype == FERN_I32;
    j.add = add;
    j.src = fern_tensor_data(src);
    j.out = fern_tensor_data(o);
    j.dt = o->dtype;
    j.len = nd ? idx->shape[axis] : 1;
    j.size = nd ? x->shape[axis] : 1;
    if (nd) {
        j.is_a = idx->strides[axis];
        j.ss_a = src->strides[axis];
        j.os_a = o->strides[axis];
    }
    int64_t outer = 1;
    for (int d = 0; d < nd; d++) {
        if (d == axis)
            continue;
        int k = j.n_outer_dims++;
        j.oshape[k] = idx->shape[d];
        j.ois[k] = idx->strides[d];
        j.oss[k] = src->strides[d];
        j.oos[k] = o->strides[d];
        outer *= idx->shape[d];
    }
    if (outer == 0 || j.len == 0)
        return 0;
    atomic_init(&j.bad, 0);
    fern_parallel_for(outer, j.len >= 16384 ? 1 : 16384 / j.len, scatter_outer, &j);
    if (!atomic_load(&j.bad))
        return 0;
    /* find the first bad index in order (the output is discarded) */
    atomic_store(&j.bad, 0);
    j.report = 1;
    j.add = 0;
    scatter_outer(&j, 0, outer);
    char ins[512];
    fern_set_error(FERN_ERR_INVALID, "%s: index %lld is out of bounds for dimension %d with size %lld (inputs: %s)",
                   c->op->name, (long long)j.bad_val, axis, (long long)j.size,
                   inputs_str(c, ins, sizeof ins));
    return -1;
}

static int scatter_kernel(fern_op_call *c) { return scatter_run(c, 0); }
static int scatter_add_kernel(fern_op_call *c) { return scatter_run(c, 1); }

/* src's cotangent (both ops): g gathered at the index, zero where src
 * extends beyond the index. With repeated indices scatter keeps one write;
 * like torch, every src element written still gets its gathered value. */
static int scatter_src_grad(const fern_op_call *c, fern_tensor *g, fern_tensor **gi)
{
    fern_tensor *idx = c->in[1], *src = c->in[2];
    if (!is_float(src))
        return 0;
    gi[2] = pad_to(fern_gather(g, (int)c->attrs[0].i, idx), src);
    return gi[2] ? 0 : -1;
}

/* x's cotangent: g with the overwritten positions zeroed. */
static int scatter_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0], *idx = c->in[1];
    if (!g[0])
        return 0;
    if (is_float(x)) {
        fern_tensor *z = fern_zeros(g[0]->dtype, idx->ndim, idx->shape);
        gi[0] = z ? fern_scatter(g[0], (int)c->attrs[0].i, idx, z) : NULL;
        if (!gi[0])
            return -1;
    }
    return scatter_src_grad(c, g[0], gi);
}

static int scatter_add_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    if (!g[0])
        return 0;
    if (is_float(c->in[0]))
        gi[0] = g[0];
    return scatter_src_grad(c, g[0], gi);
}

static const fern_op_def op_scatter = {
    .name = "scatter", .n_inputs = 3, .n_outputs = 1, .attrs = axis_attrs, .n_attrs = 1,
    .infer = scatter_infer, .kernel = {[FERN_CPU] = scatter_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = 0,
    .doc = "out-of-place torch.scatter: copy of x with src written at index along axis",
    .grad = scatter_grad};

static const fern_op_def op_scatter_add = {
    .name = "scatter_add", .n_inputs = 3, .n_outputs = 1, .attrs = axis_attrs, .n_attrs = 1,
    .infer = scatter_infer, .kernel = {[FERN_CPU] = scatter_add_kernel},
    .dtypes = FERN_DT_FLOAT | FERN_DT_INT | FERN_DT(FERN_BOOL), .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32,
    .doc = "out-of-place torch.scatter_add: copy of x with src added at index along axis",
    .grad = scatter_add_grad};

fern_tensor *fern_scatter(fern_tensor *x, int axis, fern_tensor *index, fern_tensor *src)
{
    fern_tensor *in[3] = {x, index, src};
    fern_attr a = fern__attr_int(axis);
    return fern__op1(&op_scatter, 3, in, &a);
}

fern_tensor *fern_scatter_add(fern_tensor *x, int axis, fern_tensor *index, fern_tensor *src)
{
    fern_tensor *in[3] = {x, index, src};
    fern_attr a = fern__attr_int(axis);
    return fern__op1(&op_scatter_add, 3, in, &a);
}

/* ---- tile -------------------------------------------------------------- */

static const fern_attr_spec tile_attrs[] = {{"reps", FERN_ATTR_INTS, 0, NULL}};

static int tile_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    const fern_attr *r = &c->attrs[0];
    char ins[512];
    int nd = r->n > x->ndim ? r->n : x->ndim;
    if (r->n > FERN_ATTR_MAX_VALUES || nd > FERN_MAX_DIMS) {
        fern_set_error(FERN_ERR_INVALID, "tile: %d reps give more than %d dims (inputs: %s)", r->n,
                       FERN_MAX_DIMS, inputs_str(c, ins, sizeof ins));
        return -1;
    }
    for (int k = 0; k < r->n; k++)
        if (r->ints[k] < 0) {
            fern_set_error(FERN_ERR_INVALID, "tile: reps must be non-negative, got %lld at %d (inputs: %s)",
                           (long long)r->ints[k], k, inputs_str(c, ins, sizeof ins));
            return -1;
        }
    c->out_dtype[0] = x->dtype;
    c->out_ndim[0] = nd;
    for (int d = 0; d < nd; d++) {
        int xd = d - (nd - x->ndim), rd = d - (nd - r->n);
        int64_t s = xd >= 0 ? x->shape[xd] : 1, rep = rd >= 0 ? r->ints[rd] : 1;
        c->out_shape[0][d] = s * rep;
    }
    return 0;
}

typedef struct {
    int nd;
    int64_t oshape[FERN_MAX_DIMS], xshape[FERN_MAX_DIMS], xs[FERN_MAX_DIMS];
    const char *x;
    char *out;
    size_t es;
} tile_job;

static void tile_rows(void *ctx, int64_t r0, int64_t r1)
{
    const tile_job *j = ctx;
    int nd = j->nd;
    int64_t olast = j->oshape[nd - 1], xlast = j->xshape[nd - 1], xsl = j->xs[nd - 1];
    size_t es = j->es;
    int64_t oc[FERN_MAX_DIMS] = {0}, xc[FERN_MAX_DIMS] = {0}, xo = 0, rem = r0;
    for (int d = nd - 2; d >= 0; d--) {
        oc[d] = rem % j->oshape[d];
        rem /= j->oshape[d];
        xc[d] = oc[d] % j->xshape[d];
        xo += xc[d] * j->xs[d];
    }
    for (int64_t r = r0; r < r1; r++) {
        char *o = j->out + r * olast * (int64_t)es;
        copy_row(o, j->x + xo * (int64_t)es, xlast, xsl, es);
        for (int64_t p = xlast; p < olast; p += xlast)
            memcpy(o + p * (int64_t)es, o, (size_t)xlast * es);
        for (int d = nd - 2; d >= 0; d--) {
            oc[d]++;
            xc[d]++;
            xo += j->xs[d];
            if (xc[d] == j->xshape[d]) {
                xo -= xc[d] * j->xs[d];
                xc[d] = 0;
            }
            if (oc[d] < j->oshape[d])
                break;
            xo -= xc[d] * j->xs[d];
            xc[d] = 0;
            oc[d] = 0;
        }
    }
}

static int tile_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    fern_tensor *o = c->out[0];
    size_t es = fern_dtype_size(x->dtype);
    if (o->ndim == 0) {
        memcpy(fern_tensor_data(o), fern_tensor_data(x), es);
        return 0;
    }
    tile_job j = {.nd = o->ndim, .x = fern_tensor_data(x), .out = fern_tensor_data(o), .es = es};
    int lead = o->ndim - x->ndim;
    for (int d = 0; d < o->ndim; d++) {
        j.oshape[d] = o->shape[d];
        j.xshape[d] = d < lead ? 1 : x->shape[d - lead];
        j.xs[d] = d < lead ? 0 : x->strides[d - lead];
    }
    int64_t olast = o->shape[o->ndim - 1];
    int64_t rows = fern_tensor_numel(o) / olast;
    fern_parallel_for(rows, olast >= 16384 ? 1 : 16384 / olast, tile_rows, &j);
    return 0;
}

/* Per tiled axis d: view g as (before, reps, size, after) and sum the reps;
 * then drop the leading dims the reps added. */
static int tile_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0], *t = g[0];
    if (!t || !is_float(x))
        return 0;
    const fern_attr *r = &c->attrs[0];
    int nd = t->ndim, lead = nd - x->ndim;
    if (fern_tensor_numel(x) == 0 || fern_tensor_numel(t) == 0) {
        gi[0] = fern_zeros_like(x);
        return gi[0] ? 0 : -1;
    }
    int64_t cur[FERN_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        cur[d] = t->shape[d];
    for (int d = 0; d < nd && t; d++) {
        int rd = d - (nd - r->n);
        int64_t rep = rd >= 0 ? r->ints[rd] : 1, size = d < lead ? 1 : x->shape[d - lead];
        if (rep == 1)
            continue;
        int64_t split[4] = {numel_of(d, cur), rep, size, numel_of(nd - d - 1, cur + d + 1)};
        int one = 1;
        t = fern_reshape(t, 4, split);
        t = t ? fern_sum(t, &one, 1, 0) : NULL;
        cur[d] = size;
        t = t ? fern_reshape(t, nd, cur) : NULL;
    }
    gi[0] = t ? fern_reshape(t, x->ndim, x->shape) : NULL;
    return gi[0] ? 0 : -1;
}

static const fern_op_def op_tile = {
    .name = "tile", .n_inputs = 1, .n_outputs = 1, .attrs = tile_attrs, .n_attrs = 1,
    .infer = tile_infer, .kernel = {[FERN_CPU] = tile_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = 0, .doc = "numpy.tile: repeat the whole tensor reps times per axis",
    .grad = tile_grad};

fern_tensor *fern_tile(fern_tensor *x, const int64_t *reps, int n_reps)
{
    if (n_reps < 0 || n_reps > FERN_ATTR_MAX_VALUES || (n_reps && !reps)) {
        fern_set_error(FERN_ERR_INVALID, "tile: invalid number of reps %d (or NULL reps)", n_reps);
        return NULL;
    }
    fern_attr a = fern__attr_ints(reps, n_reps);
    return fern__op1(&op_tile, 1, &x, &a);
}

/* ---- repeat ------------------------------------------------------------ */

static const fern_attr_spec repeat_attrs[] = {{"repeats", FERN_ATTR_INT, 1, NULL},
                                              {"axis", FERN_ATTR_INT, 0, NULL}};

static int repeat_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int64_t reps = c->attrs[0].i;
    char ins[512];
    if (reps < 0) {
        fern_set_error(FERN_ERR_INVALID, "repeat: repeats must be non-negative, got %lld (inputs: %s)",
                       (long long)reps, inputs_str(c, ins, sizeof ins));
        return -1;
    }
    int axis = axis_1d(c, c->attrs[1].i, x->ndim);
    if (axis < 0)
        return -1;
    if (x->ndim == 0) {
        fern__set_out(c, 0, x->dtype, 1, &reps);
        return 0;
    }
    fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
    c->out_shape[0][axis] = x->shape[axis] * reps;
    return 0;
}

typedef struct {
    const char *x;
    char *out;
    size_t block; /* bytes of one slice below the axis */
    int64_t reps;
} repeat_job;

static void repeat_blocks(void *ctx, int64_t b0, int64_t b1)
{
    const repeat_job *j = ctx;
    if (j->block == 4) {
        const uint32_t *s = (const uint32_t *)j->x;
        uint32_t *restrict d = (uint32_t *)j->out;
        for (int64_t b = b0; b < b1; b++)
            for (int64_t r = 0; r < j->reps; r++)
                d[b * j->reps + r] = s[b];
        return;
    }
    for (int64_t b = b0; b < b1; b++) {
        const char *s = j->x + b * (int64_t)j->block;
        char *d = j->out + b * j->reps * (int64_t)j->block;
        for (int64_t r = 0; r < j->reps; r++)
            memcpy(d + r * (int64_t)j->block, s, j->block);
    }
}

static int repeat_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int nd = x->ndim;
    int axis = (int)(c->attrs[1].i < 0 ? c->attrs[1].i + (nd ? nd : 1) : c->attrs[1].i);
    repeat_job j = {.x = fern_tensor_data(x), .out = fern_tensor_data(c->out[0]),
                    .block = fern_dtype_size(x->dtype), .reps = c->attrs[0].i};
    int64_t blocks = 1;
    for (int d = 0; d < nd; d++) {
        if (d <= axis)
            blocks *= x->shape[d];
        else
            j.block *= (size_t)x->shape[d];
    }
    if (j.block == 0)
        return 0;
    int64_t work = (int64_t)j.block * j.reps;
    fern_parallel_for(blocks, work >= 65536 ? 1 : 65536 / work, repeat_blocks, &j);
    return 0;
}

/* View g as (before, n, repeats, after) and sum the repeats. */
static int repeat_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0];
    if (!g[0] || !is_float(x))
        return 0;
    if (fern_tensor_numel(x) == 0 || fern_tensor_numel(g[0]) == 0) {
        gi[0] = fern_zeros_like(x);
        return gi[0] ? 0 : -1;
    }
    int nd = x->ndim, axis = norm_axis(c->attrs[1].i, nd);
    fern_tensor *t;
    if (nd == 0) {
        t = fern_sum(g[0], NULL, 0, 0);
    } else {
        int64_t split[4] = {numel_of(axis, x->shape), x->shape[axis], c->attrs[0].i,
                            numel_of(nd - axis - 1, x->shape + axis + 1)};
        int two = 2;
        t = fern_reshape(g[0], 4, split);
        t = t ? fern_sum(t, &two, 1, 0) : NULL;
    }
    gi[0] = t ? fern_reshape(t, nd, x->shape) : NULL;
    return gi[0] ? 0 : -1;
}

static const fern_op_def op_repeat = {
    .name = "repeat", .n_inputs = 1, .n_outputs = 1, .attrs = repeat_attrs, .n_attrs = 2,
    .infer = repeat_infer, .kernel = {[FERN_CPU] = repeat_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = 0, .flags = FERN_OPF_CONTIG_INPUTS,
    .doc = "numpy.repeat with one count: each slice along axis repeated", .grad = repeat_grad};

fern_tensor *fern_repeat(fern_tensor *x, int64_t repeats, int axis)
{
    fern_attr a[2] = {fern__attr_int(repeats), fern__attr_int(axis)};
    return fern__op1(&op_repeat, 1, &x, a);
}

/* ---- flip -------------------------------------------------------------- */

static const fern_attr_spec flip_attrs[] = {{"axes", FERN_ATTR_INTS, 0, NULL}};

/* Resolve an axes list into a mask; an empty list means every axis. */
static int axes_mask(const fern_op_call *c, const fern_attr *axes, int ndim, int *mask,
                     int allow_repeat)
{
    char ins[512];
    for (int d = 0; d < FERN_MAX_DIMS; d++)
        mask[d] = 0;
    for (int k = 0; k < axes->n; k++) {
        int a = axis_1d(c, axes->ints[k], ndim);
        if (a < 0)
            return -1;
        if (mask[a] && !allow_repeat) {
            fern_set_error(FERN_ERR_INVALID, "%s: axis %lld appears more than once (inputs: %s)",
                           c->op->name, (long long)axes->ints[k], inputs_str(c, ins, sizeof ins));
            return -1;
        }
        mask[a] = 1;
    }
    return 0;
}

static int flip_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int mask[FERN_MAX_DIMS];
    if (axes_mask(c, &c->attrs[0], x->ndim, mask, 0))
        return -1;
    fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
    return 0;
}

static int flip_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    const fern_attr *axes = &c->attrs[0];
    int mask[FERN_MAX_DIMS] = {0};
    for (int k = 0; k < axes->n; k++) {
        int64_t a = axes->ints[k] < 0 ? axes->ints[k] + (x->ndim ? x->ndim : 1) : axes->ints[k];
        mask[a] = 1;
    }
    fern_tensor v = *x;
    for (int d = 0; d < x->ndim; d++)
        if (axes->n == 0 || mask[d]) {
            v.offset += (x->shape[d] - 1) * x->strides[d];
            v.strides[d] = -x->strides[d];
        }
    fern__copy_view(&v, c->out[0]); /* runs forward or backward, tiles for permuted views */
    return 0;
}

static int flip_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    if (!g[0] || !is_float(c->in[0]))
        return 0;
    const fern_attr *a = &c->attrs[0];
    int axes[FERN_ATTR_MAX_VALUES];
    for (int k = 0; k < a->n; k++)
        axes[k] = (int)a->ints[k];
    gi[0] = fern_flip(g[0], axes, a->n);
    return gi[0] ? 0 : -1;
}

static const fern_op_def op_flip = {
    .name = "flip", .n_inputs = 1, .n_outputs = 1, .attrs = flip_attrs, .n_attrs = 1,
    .infer = flip_infer, .kernel = {[FERN_CPU] = flip_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = 0, .doc = "reverse the order along the given axes (none given: all axes)",
    .grad = flip_grad};

fern_tensor *fern_flip(fern_tensor *x, const int *axes, int n_axes)
{
    if (n_axes < 0 || n_axes > FERN_ATTR_MAX_VALUES || (n_axes && !axes)) {
        fern_set_error(FERN_ERR_INVALID, "flip: invalid number of axes %d (or NULL axes)", n_axes);
        return NULL;
    }
    fern_attr a = fern__attr_ints_i(axes, n_axes);
    return fern__op1(&op_flip, 1, &x, &a);
}

/* ---- roll -------------------------------------------------------------- */

static const fern_attr_spec roll_attrs[] = {{"shifts", FERN_ATTR_INTS, 0, NULL},
                                            {"axes", FERN_ATTR_INTS, 0, NULL}};

static int roll_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    const fern_attr *sh = &c->attrs[0], *ax = &c->attrs[1];
    char ins[512];
    if (ax->n == 0 ? sh->n != 1 : sh->n != ax->n) {
        fern_set_error(FERN_ERR_INVALID,
                       "roll: %d shifts for %d axes (give one shift per axis, or one shift and no axes to roll the flattened tensor) (inputs: %s)",
                       sh->n, ax->n, inputs_str(c, ins, sizeof ins));
        return -1;
    }
    int mask[FERN_MAX_DIMS];
    if (axes_mask(c, ax, x->ndim, mask, 1))
        return -1;
    fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
    return 0;
}

static int64_t pos_mod(int64_t a, int64_t n)
{
    int64_t r = a % n;
    return r < 0 ? r + n : r;
}

static int roll_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    fern_tensor *o = c->out[0];
    const fern_attr *sh = &c->attrs[0], *ax = &c->attrs[1];
    size_t es = fern_dtype_size(x->dtype);
    if (ax->n == 0 || x->ndim == 0) { /* the flattened tensor */
        int64_t n = fern_tensor_numel(x), total = 0;
        for (int k = 0; k < sh->n; k++)
            total = pos_mod(total + pos_mod(sh->ints[k], n), n);
        fern_tensor *tmp = NULL;
        const fern_tensor *s = x;
        if (!fern_tensor_is_contiguous(x)) {
            tmp = fern__tensor_alloc(x->dtype, x->ndim, x->shape, FERN_CPU);
            if (!tmp)
                return -1;
            fern__strided_copy(x, tmp);
            s = tmp;
        }
        const char *sd = fern_tensor_data(s);
        char *od = fern_tensor_data(o);
        memcpy(od + total * (int64_t)es, sd, (size_t)(n - total) * es);
        memcpy(od, sd + (n - total) * (int64_t)es, (size_t)total * es);
        fern_release(tmp);
        return 0;
    }
    int64_t shift[FERN_MAX_DIMS] = {0};
    for (int k = 0; k < ax->n; k++) {
        int a = (int)(ax->ints[k] < 0 ? ax->ints[k] + x->ndim : ax->ints[k]);
        shift[a] = pos_mod(shift[a] + pos_mod(sh->ints[k], x->shape[a]), x->shape[a]);
    }
    int rolled[FERN_MAX_DIMS], m = 0;
    for (int d = 0; d < x->ndim; d++)
        if (shift[d])
            rolled[m++] = d;
    /* 2^m blocks: on each rolled axis either the head [0, n-s) moving to
     * [s, n) or the tail [n-s, n) moving to [0, s). */
    for (int combo = 0; combo < (1 << m); combo++) {
        fern_tensor s = *x, d = *o;
        for (int t = 0; t < m; t++) {
            int a = rolled[t];
            int64_t n = x->shape[a], k = shift[a];
            if (combo >> t & 1) {
                s.offset += (n - k) * x->strides[a];
                s.shape[a] = d.shape[a] = k;
            } else {
                d.offset += k * o->strides[a];
                s.shape[a] = d.shape[a] = n - k;
            }
        }
        if (fern_tensor_numel(&s) > 0)
            fern__strided_copy(&s, &d);
    }
    return 0;
}

/* Roll back by the opposite shifts (reduced modulo the sizes first). */
static int roll_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0];
    if (!g[0] || !is_float(x))
        return 0;
    const fern_attr *sh = &c->attrs[0], *ax = &c->attrs[1];
    int64_t shifts[FERN_ATTR_MAX_VALUES];
    int axes[FERN_ATTR_MAX_VALUES];
    if (ax->n == 0 || x->ndim == 0) { /* the flattened tensor */
        int64_t n = fern_tensor_numel(x), total = 0;
        if (n == 0 || x->ndim == 0) {
            gi[0] = g[0];
            return 0;
        }
        for (int k = 0; k < sh->n; k++)
            total = pos_mod(total + pos_mod(sh->ints[k], n), n);
        shifts[0] = -total;
        gi[0] = fern_roll(g[0], shifts, NULL, 1);
        return gi[0] ? 0 : -1;
    }
    for (int k = 0; k < ax->n; k++) {
        int a = (int)(ax->ints[k] < 0 ? ax->ints[k] + x->ndim : ax->ints[k]);
        int64_t n = x->shape[a];
        shifts[k] = n ? -pos_mod(sh->ints[k], n) : 0;
        axes[k] = a;
    }
    gi[0] = fern_roll(g[0], shifts, axes, ax->n);
    return gi[0] ? 0 : -1;
}

static const fern_op_def op_roll = {
    .name = "roll", .n_inputs = 1, .n_outputs = 1, .attrs = roll_attrs, .n_attrs = 2,
    .infer = roll_infer, .kernel = {[FERN_CPU] = roll_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = 0,
    .doc = "numpy.roll: shift elements cyclically along axes (no axes: the flattened tensor)",
    .grad = roll_grad};

fern_tensor *fern_roll(fern_tensor *x, const int64_t *shifts, const int *axes, int n)
{
    if (n < 1 || n > FERN_ATTR_MAX_VALUES || !shifts) {
        fern_set_error(FERN_ERR_INVALID, "roll: invalid number of shifts %d (or NULL shifts)", n);
        return NULL;
    }
    if (!axes && n != 1) {
        fern_set_error(FERN_ERR_INVALID, "roll: without axes, give exactly one shift (got %d)", n);
        return NULL;
    }
    fern_attr a[2] = {fern__attr_ints(shifts, n), fern__attr_ints_i(axes, axes ? n : 0)};
    return fern__op1(&op_roll, 1, &x, a);
}

/* ---- tril, triu -------------------------------------------------------- */

static const fern_attr_spec tri_attrs[] = {{"k", FERN_ATTR_INT, 0, NULL}};

static int tri_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    char ins[512];
    if (x->ndim < 2) {
        fern_set_error(FERN_ERR_INVALID, "%s: input must have at least 2 dims (inputs: %s)",
                       c->op->name, inputs_str(c, ins, sizeof ins));
        return -1;
    }
    fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
    return 0;
}

typedef struct {
    const fern_tensor *x;
    char *out;
    size_t es;
    int64_t k;
    int upper;
} tri_job;

static void tri_rows(void *ctx, int64_t r0, int64_t r1)
{
    const tri_job *j = ctx;
    const fern_tensor *x = j->x;
    int nd = x->ndim;
    int64_t R = x->shape[nd - 2], C = x->shape[nd - 1];
    int64_t k = j->k > C ? C + 1 : j->k < -R - 1 ? -R - 1 : j->k; /* no overflow below */
    size_t es = j->es;
    const char *xb = fern_tensor_data(x);
    for (int64_t r = r0; r < r1; r++) {
        int64_t i = r % R, rem = r / R, off = i * x->strides[nd - 2];
        for (int d = nd - 3; d >= 0; d--) {
            off += (rem % x->shape[d]) * x->strides[d];
            rem /= x->shape[d];
        }
        int64_t lo, hi; /* kept columns [lo, hi) */
        if (j->upper) {
            lo = i + k;
            lo = lo < 0 ? 0 : lo > C ? C : lo;
            hi = C;
        } else {
            lo = 0;
            hi = i + k + 1;
            hi = hi < 0 ? 0 : hi > C ? C : hi;
        }
        char *o = j->out + r * C * (int64_t)es;
        memset(o, 0, (size_t)lo * es);
        if (hi > lo)
            copy_row(o + lo * (int64_t)es, xb + (off + lo * x->strides[nd - 1]) * (int64_t)es,
                     hi - lo, x->strides[nd - 1], es);
        if (hi < C)
            memset(o + (hi > lo ? hi : lo) * (int64_t)es, 0, (size_t)(C - (hi > lo ? hi : lo)) * es);
    }
}

static int tri_run(fern_op_call *c, int upper)
{
    const fern_tensor *x = c->in[0];
    tri_job j = {.x = x, .out = fern_tensor_data(c->out[0]), .es = fern_dtype_size(x->dtype),
                 .k = c->attrs[0].i, .upper = upper};
    int64_t C = x->shape[x->ndim - 1];
    int64_t rows = fern_tensor_numel(x) / C;
    fern_parallel_for(rows, C >= 16384 ? 1 : 16384 / C, tri_rows, &j);
    return 0;
}

static int tril_kernel(fern_op_call *c) { return tri_run(c, 0); }
static int triu_kernel(fern_op_call *c) { return tri_run(c, 1); }

/* The same mask on the cotangent. */
static int tril_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    if (!g[0] || !is_float(c->in[0]))
        return 0;
    gi[0] = fern_tril(g[0], c->attrs[0].i);
    return gi[0] ? 0 : -1;
}

static int triu_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    if (!g[0] || !is_float(c->in[0]))
        return 0;
    gi[0] = fern_triu(g[0], c->attrs[0].i);
    return gi[0] ? 0 : -1;
}

static const fern_op_def op_tril = {
    .name = "tril", .n_inputs = 1, .n_outputs = 1, .attrs = tri_attrs, .n_attrs = 1,
    .infer = tri_infer, .kernel = {[FERN_CPU] = tril_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = 0, .doc = "keep elements on and below diagonal k of the last two dims",
    .grad = tril_grad};

static const fern_op_def op_triu = {
    .name = "triu", .n_inputs = 1, .n_outputs = 1, .attrs = tri_attrs, .n_attrs = 1,
    .infer = tri_infer, .kernel = {[FERN_CPU] = triu_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = 0, .doc = "keep elements on and above diagonal k of the last two dims",
    .grad = triu_grad};

fern_tensor *fern_tril(fern_tensor *x, int64_t k)
{
    fern_attr a = fern__attr_int(k);
    return fern__op1(&op_tril, 1, &x, &a);
}

fern_tensor *fern_triu(fern_tensor *x, int64_t k)
{
    fern_attr a = fern__attr_int(k);
    return fern__op1(&op_triu, 1, &x, &a);
}

const fern_op_def *const fern_ops_index[] = {
    &op_concat, &op_stack, &op_gather, &op_take_along_axis, &op_index_select, &op_scatter,
    &op_scatter_add, &op_tile, &op_repeat, &op_flip, &op_roll, &op_tril, &op_triu, NULL};
