/* The dispatcher: the one path every op call takes. It checks for NULL
 * inputs (propagating the first error), infers the output shapes and
 * dtypes, then either hands the call to the tracer (symbolic inputs) or
 * picks the kernel for (device, dtype), allocates the outputs and runs it. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "op_def.h"

static _Thread_local fern_dispatch_hooks hooks;

fern_dispatch_hooks fern__set_dispatch_hooks(fern_dispatch_hooks h)
{
    fern_dispatch_hooks old = hooks;
    hooks = h;
    return old;
}

fern_dispatch_hooks fern__get_dispatch_hooks(void) { return hooks; }

const char *fern__desc(const fern_tensor *t, char *buf, size_t n)
{
    return fern_tensor_desc(t, buf, n);
}

/* "a=f32[2,3], b=i64[4]" for error messages */
static void describe_inputs(const fern_op_call *c, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < c->n_in && used + 1 < n; i++) {
        char d[128];
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "",
                                 c->in[i] ? fern_tensor_desc(c->in[i], d, sizeof d) : "none");
    }
}

int fern__op_error(const fern_op_call *c, const char *fmt, ...)
{
    char msg[512], ins[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    describe_inputs(c, ins, sizeof ins);
    fern_set_error(FERN_ERR_INVALID, "%s: %s (inputs: %s)", c->op->name, msg, ins);
    return -1;
}

int fern__err_dtype(const fern_op_call *c, const fern_tensor *t, const char *what)
{
    char ins[512];
    describe_inputs(c, ins, sizeof ins);
    fern_set_error(FERN_ERR_INVALID, "%s: %s, got dtype %s (inputs: %s)", c->op->name, what,
                   fern_dtype_name(t->dtype), ins);
    return -1;
}

static int is_half(fern_dtype d) { return d == FERN_F16 || d == FERN_BF16; }

/* Compute a f16/bf16 op in f32: cast the half inputs up, run, cast the f32
 * outputs back down. Every step is an ordinary op, so a tape records it. */
static int run_via_f32(const fern_op_def *op, int n_in, fern_tensor *const *in,
                       const fern_attr *attrs, int n_out, fern_tensor **out, fern_dtype half)
{
    fern_tensor *up[FERN_MAX_INPUTS];
    fern_tensor *res[FERN_MAX_OUTPUTS] = {0};
    int rc = -1;
    fern_scope_begin();
    for (int i = 0; i < n_in; i++)
        up[i] = in[i] && is_half(in[i]->dtype) ? fern_cast(in[i], FERN_F32) : in[i];
    if (fern__op_run(op, n_in, up, attrs, n_out, res) == 0) {
        rc = 0;
        for (int k = 0; k < n_out; k++) {
            fern_tensor *r = res[k]->dtype == FERN_F32 ? fern_cast(res[k], half) : res[k];
            if (!r) {
                rc = -1;
                break;
            }
            out[k] = fern_retain(r);
        }
    }
    fern_scope_end();
    if (rc) {
        for (int k = 0; k < n_out; k++) {
            fern_release(out[k]);
            out[k] = NULL;
        }
        return -1;
    }
    for (int k = 0; k < n_out; k++)
        fern__scope_register(out[k]);
    return 0;
}

int fern__op_run(const fern_op_def *op, int n_in, fern_tensor *const *in, const fern_attr *attrs,
                 int n_out, fern_tensor **out)
{
    for (int k = 0; k < n_out; k++)
        out[k] = NULL;
    if ((op->n_inputs >= 0 && n_in != op->n_inputs) || n_in > FERN_MAX_INPUTS ||
        (op->n_inputs < 0 && n_in < 1)) {
        fern_set_error(FERN_ERR_INVALID, "%s: expected %d inputs, got %d", op->name,
                       op->n_inputs < 0 ? 1 : op->n_inputs, n_in);
        return -1;
    }
    int required = op->n_inputs < 0 ? n_in : op->n_inputs - op->n_optional;
    int symbolic = 0;
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) {
            if (i < required) {
                if (fern_last_status() == FERN_OK)
                    fern_set_error(FERN_ERR_INVALID, "%s: input %d is NULL", op->name, i);
                return -1;
            }
            continue;
        }
        if (!in[i]->storage)
            symbolic = 1;
    }
    fern_op_call c;
    c.op = op;
    c.n_in = n_in;
    c.in = in;
    c.attrs = attrs;
    c.n_out = op->n_outputs;
    memset(c.out, 0, sizeof c.out);
    c.rng_drawn = (op->flags & FERN_OPF_RANDOM) ? fern__rng_take_drawn() : 0;
    if (op->infer(&c))
        return -1;
    if (c.n_out != n_out) {
        fern_set_error(FERN_ERR_INTERNAL, "%s: caller expects %d outputs, op has %d", op->name,
                       n_out, c.n_out);
        return -1;
    }
    /* While a trace is active every op becomes a node, even on concrete
     * inputs: a weight read inside a traced function is read at each run,
     * never frozen at trace time. */
    if (symbolic || hooks.trace) {
        if (!hooks.trace) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: an input is symbolic but no graph is being traced", op->name);
            return -1;
        }
        if (hooks.trace(&c, hooks.trace_ud))
            return -1;
        if (hooks.record)
            hooks.record(&c, hooks.record_ud);
        for (int k = 0; k < n_out; k++)
            out[k] = fern__scope_register(c.out[k]);
        return 0;
    }

    fern_device dev = FERN_CPU;
    int have_dev = 0;
    for (int i = 0; i < n_in; i++) {
        if (!in[i])
            continue;
        fern_device d = in[i]->storage->device;
        if (have_dev && d != dev) {
            char ins[512];
            describe_inputs(&c, ins, sizeof ins);
            fern_set_error(FERN_ERR_INVALID, "%s: inputs are on different devices (%s and %s): %s",
                           op->name, fern_device_name(dev), fern_device_name(d), ins);
            return -1;
        }
        dev = d;
        have_dev = 1;
    }
    fern_kernel_fn kernel = op->kernel[dev];
    if (!kernel) {
        fern_set_error(FERN_ERR_UNSUPPORTED, "%s: no kernel for device %s", op->name,
                       fern_device_name(dev));
        return -1;
    }
    fern_dtype kdt = op->dtype_arg >= 0 && op->dtype_arg < n_in && in[op->dtype_arg]
                         ? in[op->dtype_arg]->dtype
                         : c.out_dtype[0];
    if (!(op->dtypes & FERN_DT(kdt))) {
        if ((op->flags & FERN_OPF_HALF_VIA_F32) && is_half(kdt))
            return run_via_f32(op, n_in, in, attrs, n_out, out, kdt);
        char ins[512];
        describe_inputs(&c, ins, sizeof ins);
        fern_set_error(FERN_ERR_UNSUPPORTED, "%s: no %s kernel for dtype %s (inputs: %s)",
                       op->name, fern_device_name(dev), fern_dtype_name(kdt), ins);
        return -1;
    }

    fern_tensor *contig[FERN_MAX_INPUTS];
    fern_tensor *const *kin = in;
    int made_contig = 0;
    if (op->flags & FERN_OPF_CONTIG_INPUTS) {
        for (int i = 0; i < n_in; i++) {
            contig[i] = in[i];
            if (in[i] && !fern_tensor_is_contiguous(in[i])) {
                contig[i] = fern__tensor_alloc(in[i]->dtype, in[i]->ndim, in[i]->shape, dev);
                if (!contig[i]) {
                    for (int j = 0; j < i; j++)
                        if (contig[j] != in[j])
                            fern_release(contig[j]);
                    return -1;
                }
                fern__strided_copy(in[i], contig[i]);
                made_contig = 1;
            }
        }
        kin = contig;
    }
    c.in = kin;

    int rc = 0;
    int self_alloc = (op->flags & (FERN_OPF_VIEW | FERN_OPF_SELF_ALLOC)) != 0;
    int64_t out_elems = 0;
    if (!self_alloc) {
        for (int k = 0; k < n_out; k++) {
            c.out[k] = fern__tensor_alloc(c.out_dtype[k], c.out_ndim[k], c.out_shape[k], dev);
            if (!c.out[k]) {
                rc = -1;
                break;
            }
            out_elems += fern_tensor_numel(c.out[k]);
        }
    }
    /* Empty outputs need no kernel (every input read would be for nothing). */
    if (rc == 0 && (self_alloc || out_elems > 0))
        rc = kernel(&c);
    if (made_contig)
        for (int i = 0; i < n_in; i++)
            if (contig[i] != in[i])
                fern_release(contig[i]);
    c.in = in;
    if (rc) {
        for (int k = 0; k < n_out; k++)
            fern_release(c.out[k]);
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INTERNAL, "%s: kernel failed", op->name);
        return -1;
    }
    if (hooks.record)
        hooks.record(&c, hooks.record_ud);
    for (int k = 0; k < n_out; k++)
        out[k] = fern__scope_register(c.out[k]);
    return 0;
}

fern_tensor *fern__op1(const fern_op_def *op, int n_in, fern_tensor *const *in,
                       const fern_attr *attrs)
{
    fern_tensor *out = NULL;
    if (fern__op_run(op, n_in, in, attrs, 1, &out))
        return NULL;
    return out;
}
