/* The op registry's internal interface. An op is one static fern_op_def:
 * its schema, a shape/dtype inference function, a kernel per backend and a
 * slot for its gradient rule. The public function of an op (fern_add ...)
 * packs its attributes and calls fern__op_run; the dispatcher decides
 * whether to run a kernel now or hand the call to a tracer. */
#ifndef FERN_OP_DEF_H
#define FERN_OP_DEF_H

#include "../core/internal.h"
#include "fern/ops.h"

#define FERN_MAX_OUTPUTS 4
#define FERN_MAX_INPUTS 64

/* Attribute schema entry. Defaults: `def` for INT/FLOAT/DTYPE, `sdef` for
 * STR; INTS/FLOATS default to an empty list. */
typedef struct {
    const char *name;
    fern_attr_kind kind;
    double def;
    const char *sdef;
} fern_attr_spec;

typedef struct fern_op_call {
    const fern_op_def *op;
    int n_in;
    fern_tensor *const *in;    /* optional inputs may be NULL            */
    const fern_attr *attrs;    /* op->n_attrs entries, in schema order   */
    int n_out;                 /* set by infer (defaults to op->n_outputs) */
    fern_dtype out_dtype[FERN_MAX_OUTPUTS];
    int out_ndim[FERN_MAX_OUTPUTS];
    int64_t out_shape[FERN_MAX_OUTPUTS][FERN_MAX_DIMS];
    fern_tensor *out[FERN_MAX_OUTPUTS];
    int rng_drawn; /* random ops: the seed/offset attrs came from the generator */
} fern_op_call;

typedef int (*fern_infer_fn)(fern_op_call *c);  /* 0, or -1 with error set */
typedef int (*fern_kernel_fn)(fern_op_call *c); /* 0, or -1 with error set */

/* Gradient rule (the VJP of an op). Given the forward call c (c->in,
 * c->attrs, c->out: concrete tensors in eager mode, symbolic ones while
 * tracing) and the cotangents of the outputs grads_out[k] (NULL means zero),
 * write the cotangent of each input to grads_in[i] (leave NULL for none:
 * integer inputs, attributes-like inputs, zero gradients). Rules are
 * written ONLY with public fern ops (so they trace, and are themselves
 * differentiable for higher-order gradients); results are ordinary new
 * tensors (the engine runs each rule inside a scope and keeps what it
 * needs). A cotangent must have exactly its input's shape and dtype: use
 * fern__sum_to to undo broadcasting. Return 0, or -1 with an error set. */
typedef int (*fern_grad_fn)(const fern_op_call *c, fern_tensor *const *grads_out,
                            fern_tensor **grads_in);

/* A new view of x through the "identity" op (so tapes see it as derived
 * from x); used by autodiff to watch inputs. */
fern_tensor *fern__identity(fern_tensor *x);
fern_tensor *fern_stop_gradient(fern_tensor *x);

/* Sum g over the dimensions that broadcasting added or expanded so that it
 * has `like`'s shape (and cast to like's dtype if needed). */
fern_tensor *fern__sum_to(fern_tensor *g, const fern_tensor *like);

enum {
    FERN_OPF_HALF_VIA_F32 = 1 << 0,  /* f16/bf16 computed by casting to f32         */
    FERN_OPF_VIEW = 1 << 1,          /* kernel sets out[0] to a view of an input    */
    FERN_OPF_CONTIG_INPUTS = 1 << 2, /* dispatcher makes inputs contiguous first    */
    FERN_OPF_RANDOM = 1 << 3,        /* has seed/offset attrs                        */
    FERN_OPF_NONDIFF = 1 << 4,       /* not differentiable (integer/bool results)   */
    FERN_OPF_SELF_ALLOC = 1 << 5,    /* kernel allocates its outputs itself          */
    FERN_OPF_SIDE_EFFECT = 1 << 6,   /* writes state (assign): never removed, merged,
                                        folded or reordered by the compiler          */
};

struct fern_op_def {
    const char *name;
    int n_inputs;      /* -1: variadic, at least one                       */
    int n_optional;    /* trailing inputs that may be NULL (absent)        */
    int n_outputs;
    const fern_attr_spec *attrs;
    int n_attrs;
    fern_infer_fn infer;
    fern_kernel_fn kernel[FERN_DEVICE_COUNT];
    uint32_t dtypes;   /* dtypes accepted by the kernels for in[dtype_arg] */
    int dtype_arg;     /* which input's dtype selects the kernel; -1: output 0 */
    unsigned flags;
    const char *doc;
    fern_grad_fn grad; /* NULL until autodiff provides one                 */
};

#define FERN_DT(d) (1u << (d))
#define FERN_DT_FLOAT (FERN_DT(FERN_F32) | FERN_DT(FERN_F64))
#define FERN_DT_HALF (FERN_DT(FERN_F16) | FERN_DT(FERN_BF16))
#define FERN_DT_INT (FERN_DT(FERN_I8) | FERN_DT(FERN_U8) | FERN_DT(FERN_I32) | FERN_DT(FERN_I64))
#define FERN_DT_ALL ((1u << FERN_DTYPE_COUNT) - 1)

/* Run an op: check inputs, infer, then trace or execute. Writes n_out new
 * references (registered in the current scope) to out. attrs must hold
 * op->n_attrs entries in schema order. Returns 0 or -1 with error set. */
int fern__op_run(const fern_op_def *op, int n_in, fern_tensor *const *in, const fern_attr *attrs,
                 int n_out, fern_tensor **out);
/* Convenience for single-output ops: returns the output or NULL. */
fern_tensor *fern__op1(const fern_op_def *op, int n_in, fern_tensor *const *in,
                       const fern_attr *attrs);

/* Bind attributes given by name to schema order, defaults for the rest. */
int fern__bind_attrs(const fern_op_def *op, int n_attrs, const char *const *names,
                     const fern_attr *given, fern_attr *bound);

/* Attribute constructors. */
static inline fern_attr fern__attr_int(int64_t v)
{
    fern_attr a = {.kind = FERN_ATTR_INT, .n = 1, .i = v};
    return a;
}
static inline fern_attr fern__attr_float(double v)
{
    fern_attr a = {.kind = FERN_ATTR_FLOAT, .n = 1, .f = v};
    return a;
}
static inline fern_attr fern__attr_dtype(fern_dtype d)
{
    fern_attr a = {.kind = FERN_ATTR_DTYPE, .n = 1, .i = d};
    return a;
}
static inline fern_attr fern__attr_str(const char *s)
{
    fern_attr a = {.kind = FERN_ATTR_STR, .n = 1, .s = s};
    return a;
}
fern_attr fern__attr_ints(const int64_t *v, int n);
fern_attr fern__attr_ints_i(const int *v, int n);
fern_attr fern__attr_floats(const double *v, int n);

/* Hooks installed by the layers above (per thread).
 * - trace: while set, every op call goes to it; it must fill c->out with
 *   symbolic outputs (the runtime's tracer).
 * - record: called after every op call, eager or traced, with the inputs
 *   and outputs filled (the autodiff tape).
 * - record_node: called by the runtime after it emits a structured node
 *   (cond/while/scan) while tracing, so a tape can differentiate it. */
typedef struct fern_struct_call fern_struct_call;
typedef struct {
    int (*trace)(fern_op_call *c, void *ud);
    void *trace_ud;
    void (*record)(const fern_op_call *c, void *ud);
    void *record_ud;
    void (*record_node)(const fern_struct_call *s, void *ud);
} fern_dispatch_hooks;
/* Returns the previous hooks. */
fern_dispatch_hooks fern__set_dispatch_hooks(fern_dispatch_hooks h);
fern_dispatch_hooks fern__get_dispatch_hooks(void);

/* ---- helpers for inference --------------------------------------------- */
/* Broadcast n shapes NumPy-style into out; error names op and shapes. */
int fern__broadcast_shapes(const char *op, int n, fern_tensor *const *ts, int *out_ndim,
                           int64_t *out_shape);
/* Resolve a reduction's axes attr against ndim: mask[d] = 1 if reduced.
 * An empty list means all axes. Errors on out-of-range or repeated axes. */
int fern__reduce_mask(const char *op, const fern_attr *axes, int ndim, int *mask);
/* Output shape of a reduction given the mask. */
void fern__reduce_shape(int ndim, const int64_t *shape, const int *mask, int keepdims,
                        int *out_ndim, int64_t *out_shape);
/* Set the single output's meta. */
static inline void fern__set_out(fern_op_call *c, int i, fern_dtype dt, int ndim,
                                 const int64_t *shape)
{
    c->out_dtype[i] = dt;
    c->out_ndim[i] = ndim;
    for (int d = 0; d < ndim; d++)
        c->out_shape[i][d] = shape[d];
}
/* Error helpers naming the op, shapes and dtypes of the inputs. */
const char *fern__desc(const fern_tensor *t, char *buf, size_t n);
int fern__err_dtype(const fern_op_call *c, const fern_tensor *t, const char *what);
/* "OP: message (inputs: f32[2,3], none)" as an FERN_ERR_INVALID; returns -1. */
int fern__op_error(const fern_op_call *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static inline int fern__is_half(fern_dtype d) { return d == FERN_F16 || d == FERN_BF16; }

/* The registry: every family file defines a NULL-terminated list. */
extern const fern_op_def *const fern_ops_creation[];
extern const fern_op_def *const fern_ops_random[];
extern const fern_op_def *const fern_ops_unary[];
extern const fern_op_def *const fern_ops_binary[];
extern const fern_op_def *const fern_ops_reduce[];
extern const fern_op_def *const fern_ops_matmul[];
extern const fern_op_def *const fern_ops_conv[];
extern const fern_op_def *const fern_ops_pool[];
extern const fern_op_def *const fern_ops_norm[];
extern const fern_op_def *const fern_ops_nn[];
extern const fern_op_def *const fern_ops_loss[];
extern const fern_op_def *const fern_ops_view[];
extern const fern_op_def *const fern_ops_index[];
extern const fern_op_def *const fern_ops_sort[];
extern const fern_op_def *const fern_ops_fused[];
extern const fern_op_def *const fern_ops_state[];
extern const fern_op_def *const fern_ops_activation_grad[];
extern const fern_op_def *const fern_ops_linear[];
extern const fern_op_def *const fern_ops_optim[];

#endif
