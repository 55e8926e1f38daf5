/* Creation ops: constant fills (zeros, ones, full and their *_like forms),
 * ranges (arange, linspace) and eye. The zero-input ops take their shape and
 * dtype from attributes; the dispatcher picks the kernel dtype from output 0.
 * Every dtype is supported where it means something (ranges exclude bool). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "op_def.h"

/* ---- shared helpers ---------------------------------------------------- */

static int dtype_attr(const char *op, const fern_attr *a, fern_dtype *dt)
{
    if (a->i < 0 || a->i >= FERN_DTYPE_COUNT) {
        fern_set_error(FERN_ERR_INVALID, "%s: invalid dtype %lld", op, (long long)a->i);
        return -1;
    }
    *dt = (fern_dtype)a->i;
    return 0;
}

/* Output shape from a `shape` INTS attribute: at most FERN_MAX_DIMS dims,
 * none negative. */
static int shape_attr(fern_op_call *c, const fern_attr *s, fern_dtype dt)
{
    const char *op = c->op->name;
    char b[160];
    if (s->n < 0 || s->n > FERN_MAX_DIMS) {
        fern_set_error(FERN_ERR_INVALID, "%s: %d dims is more than %d", op, s->n, FERN_MAX_DIMS);
        return -1;
    }
    for (int d = 0; d < s->n; d++)
        if (s->ints[d] < 0) {
            fern_set_error(FERN_ERR_INVALID, "%s: negative dimension %lld at axis %d of shape %s",
                           op, (long long)s->ints[d], d,
                           fern__shape_str(s->n, s->ints, b, sizeof b));
            return -1;
        }
    fern__set_out(c, 0, dt, s->n, s->ints);
    return 0;
}

typedef struct {
    char *dst;
    size_t es;
    uint64_t bits; /* the value's bytes, es of them used */
} fill_job;

static void fill_range(void *ctx, int64_t b, int64_t e)
{
    const fill_job *j = ctx;
    int64_t n = e - b;
    switch (j->es) {
    case 1: {
        uint8_t v;
        memcpy(&v, &j->bits, 1);
        memset(j->dst + b, v, (size_t)n);
        break;
    }
    case 2: {
        uint16_t v, *restrict d = (uint16_t *)j->dst + b;
        memcpy(&v, &j->bits, 2);
        for (int64_t i = 0; i < n; i++)
            d[i] = v;
        break;
    }
    case 4: {
        uint32_t v, *restrict d = (uint32_t *)j->dst + b;
        memcpy(&v, &j->bits, 4);
        for (int64_t i = 0; i < n; i++)
            d[i] = v;
        break;
    }
    default: {
        uint64_t v, *restrict d = (uint64_t *)j->dst + b;
        memcpy(&v, &j->bits, 8);
        for (int64_t i = 0; i < n; i++)
            d[i] = v;
        break;
    }
    }
}

/* Fill a contiguous tensor with one value (converted to its dtype). */
static void fill_tensor(fern_tensor *t, double value)
{
    fill_job j = {fern_tensor_data(t), fern_dtype_size(t->dtype), 0};
    fern__store(&j.bits, t->dtype, value);
    fern_parallel_for(fern_tensor_numel(t), 1 << 16, fill_range, &j);
}

/* ---- zeros, ones, full ------------------------------------------------- */

static const fern_attr_spec zeros_attrs[] = {{"shape", FERN_ATTR_INTS, 0, NULL},
                                             {"dtype", FERN_ATTR_DTYPE, FERN_F32, NULL}};
static const fern_attr_spec full_attrs[] = {{"shape", FERN_ATTR_INTS, 0, NULL},
                                            {"dtype", FERN_ATTR_DTYPE, FERN_F32, NULL},
                                            {"value", FERN_ATTR_FLOAT, 0, NULL}};

static int const_infer(fern_op_call *c)
{
    fern_dtype dt;
    if (dtype_attr(c->op->name, &c->attrs[1], &dt))
        return -1;
    return shape_attr(c, &c->attrs[0], dt);
}

static int zeros_kernel(fern_op_call *c)
{
    fill_tensor(c->out[0], 0.0);
    return 0;
}

static int ones_kernel(fern_op_call *c)
{
    fill_tensor(c->out[0], 1.0);
    return 0;
}

static int full_kernel(fern_op_call *c)
{
    fill_tensor(c->out[0], c->attrs[2].f);
    return 0;
}

static const fern_op_def op_zeros = {
    .name = "zeros", .n_inputs = 0, .n_outputs = 1, .attrs = zeros_attrs, .n_attrs = 2,
    .infer = const_infer, .kernel = {[FERN_CPU] = zeros_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = -1, .flags = FERN_OPF_NONDIFF, .doc = "tensor of zeros"};

static const fern_op_def op_ones = {
    .name = "ones", .n_inputs = 0, .n_outputs = 1, .attrs = zeros_attrs, .n_attrs = 2,
    .infer = const_infer, .kernel = {[FERN_CPU] = ones_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = -1, .flags = FERN_OPF_NONDIFF, .doc = "tensor of ones"};

static const fern_op_def op_full = {
    .name = "full", .n_inputs = 0, .n_outputs = 1, .attrs = full_attrs, .n_attrs = 3,
    .infer = const_infer, .kernel = {[FERN_CPU] = full_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = -1, .flags = FERN_OPF_NONDIFF,
    .doc = "tensor filled with one value (converted to the dtype like a cast)"};

static int check_shape_args(const char *op, fern_dtype dt, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > FERN_MAX_DIMS || (ndim && !shape)) {
        fern_set_error(FERN_ERR_INVALID, "%s: invalid ndim %d (or NULL shape)", op, ndim);
        return -1;
    }
    if ((unsigned)dt >= FERN_DTYPE_COUNT) {
        fern_set_error(FERN_ERR_INVALID, "%s: invalid dtype %d", op, (int)dt);
        return -1;
    }
    return 0;
}

fern_tensor *fern_zeros(fern_dtype dt, int ndim, const int64_t *shape)
{
    if (check_shape_args("zeros", dt, ndim, shape))
        return NULL;
    fern_attr a[2] = {fern__attr_ints(shape, ndim), fern__attr_dtype(dt)};
    return fern__op1(&op_zeros, 0, NULL, a);
}

fern_tensor *fern_ones(fern_dtype dt, int ndim, const int64_t *shape)
{
    if (check_shape_args("ones", dt, ndim, shape))
        return NULL;
    fern_attr a[2] = {fern__attr_ints(shape, ndim), fern__attr_dtype(dt)};
    return fern__op1(&op_ones, 0, NULL, a);
}

fern_tensor *fern_full(fern_dtype dt, int ndim, const int64_t *shape, double value)
{
    if (check_shape_args("full", dt, ndim, shape))
        return NULL;
    fern_attr a[3] = {fern__attr_ints(shape, ndim), fern__attr_dtype(dt), fern__attr_float(value)};
    return fern__op1(&op_full, 0, NULL, a);
}

/* ---- zeros_like, ones_like, full_like ---------------------------------- */

static const fern_attr_spec full_like_attrs[] = {{"value", FERN_ATTR_FLOAT, 0, NULL}};

static int like_infer(fern_op_call *c)
{
    fern__set_out(c, 0, c->in[0]->dtype, c->in[0]->ndim, c->in[0]->shape);
    return 0;
}

static int full_like_kernel(fern_op_call *c)
{
    fill_tensor(c->out[0], c->attrs[0].f);
    return 0;
}

static const fern_op_def op_zeros_like = {
    .name = "zeros_like", .n_inputs = 1, .n_outputs = 1, .infer = like_infer,
    .kernel = {[FERN_CPU] = zeros_kernel}, .dtypes = FERN_DT_ALL, .dtype_arg = 0,
    .flags = FERN_OPF_NONDIFF, .doc = "zeros with the input's shape and dtype"};

static const fern_op_def op_ones_like = {
    .name = "ones_like", .n_inputs = 1, .n_outputs = 1, .infer = like_infer,
    .kernel = {[FERN_CPU] = ones_kernel}, .dtypes = FERN_DT_ALL, .dtype_arg = 0,
    .flags = FERN_OPF_NONDIFF, .doc = "ones with the input's shape and dtype"};

static const fern_op_def op_full_like = {
    .name = "full_like", .n_inputs = 1, .n_outputs = 1, .attrs = full_like_attrs, .n_attrs = 1,
    .infer = like_infer, .kernel = {[FERN_CPU] = full_like_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = 0, .flags = FERN_OPF_NONDIFF,
    .doc = "one value with the input's shape and dtype"};

fern_tensor *fern_zeros_like(const fern_tensor *x)
{
    fern_tensor *in = (fern_tensor *)x;
    return fern__op1(&op_zeros_like, 1, &in, NULL);
}

fern_tensor *fern_ones_like(const fern_tensor *x)
{
    fern_tensor *in = (fern_tensor *)x;
    return fern__op1(&op_ones_like, 1, &in, NULL);
}

fern_tensor *fern_full_like(const fern_tensor *x, double value)
{
    fern_tensor *in = (fern_tensor *)x;
    fern_attr a = fern__attr_float(value);
    return fern__op1(&op_full_like, 1, &in, &a);
}

/* ---- arange ------------------------------------------------------------ */

static const fern_attr_spec arange_attrs[] = {{"start", FERN_ATTR_FLOAT, 0, NULL},
                                              {"stop", FERN_ATTR_FLOAT, 0, NULL},
                                              {"step", FERN_ATTR_FLOAT, 1, NULL},
                                              {"dtype", FERN_ATTR_DTYPE, FERN_F32, NULL}};

/* Largest element count a range op may produce (keeps i*step exact enough
 * and the byte size far from overflow). */
#define RANGE_MAX_NUMEL ((int64_t)1 << 48)

static int range_dtype(fern_op_call *c, const fern_attr *a, fern_dtype *dt)
{
    if (dtype_attr(c->op->name, a, dt))
        return -1;
    if (*dt == FERN_BOOL) {
        fern_set_error(FERN_ERR_INVALID, "%s: dtype bool is not supported (use a numeric dtype)",
                       c->op->name);
        return -1;
    }
    return 0;
}

static int arange_infer(fern_op_call *c)
{
    double start = c->attrs[0].f, stop = c->attrs[1].f, step = c->attrs[2].f;
    fern_dtype dt;
    if (range_dtype(c, &c->attrs[3], &dt))
        return -1;
    if (!isfinite(start) || !isfinite(stop) || !isfinite(step)) {
        fern_set_error(FERN_ERR_INVALID, "arange: start, stop and step must be finite, got %g, %g, %g",
                       start, stop, step);
        return -1;
    }
    if (step == 0) {
        fern_set_error(FERN_ERR_INVALID, "arange: step must be nonzero (start %g, stop %g)", start,
                       stop);
        return -1;
    }
    double len = ceil((stop - start) / step);
    if (!(len > 0))
        len = 0;
    if (len > (double)RANGE_MAX_NUMEL) {
        fern_set_error(FERN_ERR_INVALID, "arange: %g elements (start %g, stop %g, step %g) is too many",
                       len, start, stop, step);
        return -1;
    }
    int64_t n = (int64_t)len;
    fern__set_out(c, 0, dt, 1, &n);
    return 0;
}

typedef struct {
    char *dst;
    fern_dtype dt;
    double start, step, stop;
    int64_t istart, istep; /* integer dtypes with integral arguments */
    int exact_int;
    int64_t num; /* linspace */
} range_job;

static void arange_range(void *ctx, int64_t b, int64_t e)
{
    const range_job *j = ctx;
    switch (j->dt) {
    case FERN_F64: {
        double *restrict d = (double *)j->dst;
        for (int64_t i = b; i < e; i++)
            d[i] = j->start + (double)i * j->step;
        break;
    }
    case FERN_F32: {
        float *restrict d = (float *)j->dst;
        for (int64_t i = b; i < e; i++)
            d[i] = (float)(j->start + (double)i * j->step);
        break;
    }
    case FERN_I64:
        if (j->exact_int) {
            int64_t *restrict d = (int64_t *)j->dst;
            for (int64_t i = b; i < e; i++)
                d[i] = j->istart + i * j->istep;
            break;
        }
        /* fall through */
    default: {
        size_t es = fern_dtype_size(j->dt);
        for (int64_t i = b; i < e; i++) {
            double v = j->exact_int ? (double)(j->istart + i * j->istep)
                                    : j->start + (double)i * j->step;
            fern__store(j->dst + i * (int64_t)es, j->dt, v);
        }
        break;
    }
    }
}

static int is_int64_integral(double v)
{
    return v == floor(v) && fabs(v) < 9.2e18;
}

static int arange_kernel(fern_op_call *c)
{
    range_job j = {.dst = fern_tensor_data(c->out[0]), .dt = c->out[0]->dtype,
                   .start = c->attrs[0].f, .step = c->attrs[2].f};
    if (fern_dtype_is_int(j.dt) && is_int64_integral(j.start) && is_int64_integral(j.step)) {
        j.exact_int = 1;
        j.istart = (int64_t)j.start;
        j.istep = (int64_t)j.step;
    }
    fern_parallel_for(fern_tensor_numel(c->out[0]), 1 << 15, arange_range, &j);
    return 0;
}

static const fern_op_def op_arange = {
    .name = "arange", .n_inputs = 0, .n_outputs = 1, .attrs = arange_attrs, .n_attrs = 4,
    .infer = arange_infer, .kernel = {[FERN_CPU] = arange_kernel},
    .dtypes = FERN_DT_ALL & ~FERN_DT(FERN_BOOL), .dtype_arg = -1, .flags = FERN_OPF_NONDIFF,
    .doc = "start + i*step for i < ceil((stop-start)/step), like numpy.arange"};

fern_tensor *fern_arange(double start, double stop, double step, fern_dtype dt)
{
    fern_attr a[4] = {fern__attr_float(start), fern__attr_float(stop), fern__attr_float(step),
                      fern__attr_dtype(dt)};
    return fern__op1(&op_arange, 0, NULL, a);
}

/* ---- linspace ---------------------------------------------------------- */

static const fern_attr_spec linspace_attrs[] = {{"start", FERN_ATTR_FLOAT, 0, NULL},
                                                {"stop", FERN_ATTR_FLOAT, 1, NULL},
                                                {"num", FERN_ATTR_INT, 50, NULL},
                                                {"dtype", FERN_ATTR_DTYPE, FERN_F32, NULL}};

static int linspace_infer(fern_op_call *c)
{
    double start = c->attrs[0].f, stop = c->attrs[1].f;
    int64_t num = c->attrs[2].i;
    fern_dtype dt;
    if (range_dtype(c, &c->attrs[3], &dt))
        return -1;
    if (!isfinite(start) || !isfinite(stop)) {
        fern_set_error(FERN_ERR_INVALID, "linspace: start and stop must be finite, got %g, %g",
                       start, stop);
        return -1;
    }
    if (num < 0 || num > RANGE_MAX_NUMEL) {
        fern_set_error(FERN_ERR_INVALID, "linspace: num must be in 0..%lld, got %lld",
                       (long long)RANGE_MAX_NUMEL, (long long)num);
        return -1;
    }
    fern__set_out(c, 0, dt, 1, &num);
    return 0;
}

/* torch's formula: the first half counts up from start, the second half
 * down from stop, so both ends are exact. */
static void linspace_range(void *ctx, int64_t b, int64_t e)
{
    const range_job *j = ctx;
    int64_t half = j->num / 2;
    switch (j->dt) {
    case FERN_F64: {
        double *restrict d = (double *)j->dst;
        for (int64_t i = b; i < e; i++)
            d[i] = i < half ? j->start + j->step * (double)i
                            : j->stop - j->step * (double)(j->num - i - 1);
        break;
    }
    case FERN_F32: {
        float *restrict d = (float *)j->dst;
        for (int64_t i = b; i < e; i++)
            d[i] = (float)(i < half ? j->start + j->step * (double)i
                                    : j->stop - j->step * (double)(j->num - i - 1));
        break;
    }
    default: {
        size_t es = fern_dtype_size(j->dt);
        for (int64_t i = b; i < e; i++) {
            double v = i < half ? j->start + j->step * (double)i
                                : j->stop - j->step * (double)(j->num - i - 1);
            fern__store(j->dst + i * (int64_t)es, j->dt, v);
        }
        break;
    }
    }
}

static int linspace_kernel(fern_op_call *c)
{
    range_job j = {.dst = fern_tensor_data(c->out[0]), .dt = c->out[0]->dtype,
                   .start = c->attrs[0].f, .stop = c->attrs[1].f, .num = c->attrs[2].i};
    if (fern_dtype_is_int(j.dt)) { /* like torch: the ends are converted to the dtype first */
        j.start = trunc(j.start);
        j.stop = trunc(j.stop);
    }
    if (j.num == 1) {
        fill_tensor(c->out[0], j.start);
        return 0;
    }
    j.step = (j.stop - j.start) / (double)(j.num - 1);
    fern_parallel_for(j.num, 1 << 15, linspace_range, &j);
    return 0;
}

static const fern_op_def op_linspace = {
    .name = "linspace", .n_inputs = 0, .n_outputs = 1, .attrs = linspace_attrs, .n_attrs = 4,
    .infer = linspace_infer, .kernel = {[FERN_CPU] = linspace_kernel},
    .dtypes = FERN_DT_ALL & ~FERN_DT(FERN_BOOL), .dtype_arg = -1, .flags = FERN_OPF_NONDIFF,
    .doc = "num evenly spaced values from start to stop inclusive (torch.linspace)"};

fern_tensor *fern_linspace(double start, double stop, int64_t num, fern_dtype dt)
{
    fern_attr a[4] = {fern__attr_float(start), fern__attr_float(stop), fern__attr_int(num),
                      fern__attr_dtype(dt)};
    return fern__op1(&op_linspace, 0, NULL, a);
}

/* ---- eye --------------------------------------------------------------- */

static const fern_attr_spec eye_attrs[] = {{"n", FERN_ATTR_INT, 1, NULL},
                                           {"m", FERN_ATTR_INT, -1, NULL},
                                           {"dtype", FERN_ATTR_DTYPE, FERN_F32, NULL}};

static int eye_infer(fern_op_call *c)
{
    int64_t n = c->attrs[0].i, m = c->attrs[1].i;
    fern_dtype dt;
    if (dtype_attr("eye", &c->attrs[2], &dt))
        return -1;
    if (m == -1)
        m = n;
    if (n < 0 || m < 0) {
        fern_set_error(FERN_ERR_INVALID, "eye: n and m must be non-negative, got n=%lld, m=%lld",
                       (long long)c->attrs[0].i, (long long)c->attrs[1].i);
        return -1;
    }
    int64_t shape[2] = {n, m};
    fern__set_out(c, 0, dt, 2, shape);
    return 0;
}

static int eye_kernel(fern_op_call *c)
{
    fern_tensor *o = c->out[0];
    int64_t n = o->shape[0], m = o->shape[1];
    size_t es = fern_dtype_size(o->dtype);
    char *d = fern_tensor_data(o);
    fill_tensor(o, 0.0);
    unsigned char one[8];
    fern__store(one, o->dtype, 1.0);
    int64_t k = n < m ? n : m;
    for (int64_t i = 0; i < k; i++)
        memcpy(d + (i * m + i) * (int64_t)es, one, es);
    return 0;
}

static const fern_op_def op_eye = {
    .name = "eye", .n_inputs = 0, .n_outputs = 1, .attrs = eye_attrs, .n_attrs = 3,
    .infer = eye_infer, .kernel = {[FERN_CPU] = eye_kernel}, .dtypes = FERN_DT_ALL,
    .dtype_arg = -1, .flags = FERN_OPF_NONDIFF,
    .doc = "n x m matrix with ones on the diagonal (m = -1 means n)"};

fern_tensor *fern_eye(int64_t n, int64_t m, fern_dtype dt)
{
    fern_attr a[3] = {fern__attr_int(n), fern__attr_int(m), fern__attr_dtype(dt)};
    return fern__op1(&op_eye, 0, NULL, a);
}

const fern_op_def *const fern_ops_creation[] = {
    &op_zeros,    &op_ones,  &op_full,     &op_zeros_like, &op_ones_like,
    &op_full_like, &op_arange, &op_linspace, &op_eye,        NULL};
