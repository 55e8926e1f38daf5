/* Optimizer updates as single in-place ops (MindSpore's ApplyMomentum and
 * Adam kernels, torch's fused optimizers). Written as generic ops, one SGD
 * momentum step is five passes over each parameter and two assign copies;
 * these read param, state and gradient once and write param and state in
 * place. Like assign they are ordered side effects: the compiler keeps them
 * and their position, and they are not differentiable.
 *
 * The arithmetic is the generic formulation's, operation for operation in
 * the parameter's dtype (lr and the bias corrections rounded to it first),
 * so results do not depend on which path ran. */
#include <math.h>
#include <string.h>

#include "op_def.h"

typedef struct {
    fern_dtype dt;
    char *p, *s0, *s1;
    const char *g;
    double lr, m, wd, b1, b2, eps, bc1, bc2;
    int nesterov, decoupled;
} upd_job;

#define MOMENTUM_LOOP(T)                                                                     \
    do {                                                                                     \
        T *restrict p = (T *)j->p + b, *restrict buf = (T *)j->s0 + b;                       \
        const T *restrict g = (const T *)j->g + b;                                          \
        const T lr = (T)j->lr, m = (T)j->m, wd = (T)j->wd;                                   \
        for (int64_t i = 0; i < e - b; i++) {                                                \
            T gi = j->wd != 0 ? g[i] + p[i] * wd : g[i];                                     \
            T nb = buf[i] * m + gi;                                                          \
            buf[i] = nb;                                                                     \
            T d = j->nesterov ? gi + nb * m : nb;                                            \
            p[i] = p[i] - d * lr;                                                            \
        }                                                                                    \
    } while (0)

static void momentum_task(void *ctx, int64_t b, int64_t e)
{
    const upd_job *j = ctx;
    if (j->dt == FERN_F32)
        MOMENTUM_LOOP(float);
    else
        MOMENTUM_LOOP(double);
}

#define ADAM_LOOP(T, SQRT)                                                                   \
    do {                                                                                     \
        T *restrict p = (T *)j->p + b, *restrict m = (T *)j->s0 + b, *restrict v = (T *)j->s1 + b; \
        const T *restrict g = (const T *)j->g + b;                                          \
        const T b1 = (T)j->b1, c1 = (T)(1 - j->b1), b2 = (T)j->b2, c2 = (T)(1 - j->b2);      \
        const T wd = (T)j->wd, eps = (T)j->eps, lr = (T)j->lr;                               \
        const T sbc2 = SQRT((T)j->bc2), step = lr / (T)j->bc1;                               \
        const T shrink = (T)1 - lr * wd; /* AdamW's decoupled decay */                       \
        for (int64_t i = 0; i < e - b; i++) {                                                \
            T gi = !j->decoupled && j->wd != 0 ? g[i] + p[i] * wd : g[i];                    \
            T mi = m[i] * b1 + gi * c1;                                                      \
            T vi = v[i] * b2 + (gi * gi) * c2;                                               \
            m[i] = mi;                                                                       \
            v[i] = vi;                                                                       \
            T base = j->decoupled && j->wd != 0 ? p[i] * shrink : p[i];                      \
            T denom = SQRT(vi) / sbc2 + eps;                                                 \
            p[i] = base - (mi / denom) * step;                                               \
        }                                                                                    \
    } while (0)

static void adam_task(void *ctx, int64_t b, int64_t e)
{
    const upd_job *j = ctx;
    if (j->dt == FERN_F32)
        ADAM_LOOP(float, sqrtf);
    else
        ADAM_LOOP(double, sqrt);
}

/* param and state tensors: same shape and float dtype, contiguous (they are
 * written in place); grad: same shape and dtype, any layout; scalars 0-d. */
static int check_update(fern_op_call *c, int n_state)
{
    const fern_tensor *p = c->in[0];
    char a[128], d[128];
    if (p->dtype != FERN_F32 && p->dtype != FERN_F64) {
        fern_set_error(FERN_ERR_INVALID, "%s: parameter must be f32 or f64, got %s", c->op->name,
                       fern__desc(p, a, sizeof a));
        return -1;
    }
    for (int k = 1; k <= n_state + 1; k++) {
        const fern_tensor *t = c->in[k];
        int ok = t->dtype == p->dtype && t->ndim == p->ndim &&
                 !memcmp(t->shape, p->shape, (size_t)p->ndim * sizeof(int64_t));
        if (!ok) {
            fern_set_error(FERN_ERR_INVALID, "%s: input %d is %s, must match the parameter %s", c->op->name,
                           k, fern__desc(t, a, sizeof a), fern__desc(p, d, sizeof d));
            return -1;
        }
    }
    for (int k = n_state + 2; k < c->n_in; k++)
        if (c->in[k]->ndim != 0) {
            fern_set_error(FERN_ERR_INVALID, "%s: input %d must be a 0-d scalar, got %s", c->op->name, k,
                           fern__desc(c->in[k], a, sizeof a));
            return -1;
        }
    fern__set_out(c, 0, p->dtype, p->ndim, p->shape);
    return 0;
}

static int state_contiguous(fern_op_call *c, int n_state)
{
    for (int k = 0; k <= n_state; k++)
        if (!fern_tensor_is_contiguous(c->in[k])) {
            char a[128];
            fern_set_error(FERN_ERR_INVALID, "%s: input %d (%s) is updated in place and must be contiguous",
                           c->op->name, k, fern__desc(c->in[k], a, sizeof a));
            return -1;
        }
    return 0;
}

/* Run task over the elements with grad made contiguous if it is not. */
static int run_update(fern_op_call *c, upd_job *j, int grad_arg, void (*task)(void *, int64_t, int64_t))
{
    fern_tensor *g = c->in[grad_arg], *tmp = NULL;
    if (!fern_tensor_is_contiguous(g)) {
        tmp = fern__tensor_alloc(g->dtype, g->ndim, g->shape, FERN_CPU);
        if (!tmp)
            return -1;
        fern__strided_copy(g, tmp);
        g = tmp;
    }
    j->g = fern_tensor_data(g);
    fern_parallel_for(fern_tensor_numel(c->in[0]), 16384, task, j);
    fern_release(tmp);
    c->out[0] = fern_retain(c->in[0]);
    return 0;
}

/* ---- apply_momentum(param, buf, grad, lr) -------------------------------- */

static const fern_attr_spec momentum_attrs[] = {{"momentum", FERN_ATTR_FLOAT, 0.9, NULL},
                                                {"weight_decay", FERN_ATTR_FLOAT, 0, NULL},
                                                {"nesterov", FERN_ATTR_INT, 0, NULL}};

static int momentum_infer(fern_op_call *c) { return check_update(c, 1); }

static int momentum_kernel(fern_op_call *c)
{
    if (state_contiguous(c, 1))
        return -1;
    upd_job j = {.dt = c->in[0]->dtype, .p = fern_tensor_data(c->in[0]), .s0 = fern_tensor_data(c->in[1]),
                 .lr = fern__load(fern_tensor_data(c->in[3]), c->in[3]->dtype), .m = c->attrs[0].f,
                 .wd = c->attrs[1].f, .nesterov = (int)c->attrs[2].i};
    return run_update(c, &j, 2, momentum_task);
}

static const fern_op_def op_apply_momentum = {
    .name = "apply_momentum", .n_inputs = 4, .n_outputs = 1, .attrs = momentum_attrs, .n_attrs = 3,
    .infer = momentum_infer, .kernel = {[FERN_CPU] = momentum_kernel}, .dtypes = FERN_DT_FLOAT,
    .dtype_arg = 0, .flags = FERN_OPF_SELF_ALLOC | FERN_OPF_SIDE_EFFECT | FERN_OPF_NONDIFF,
    .doc = "in place: g += weight_decay*param; buf = momentum*buf + g; param -= lr*(nesterov ? "
           "g + momentum*buf : buf) (torch SGD, dampening 0); returns param"};

fern_tensor *fern_apply_momentum(fern_tensor *param, fern_tensor *buf, fern_tensor *grad, fern_tensor *lr,
                                 double momentum, double weight_decay, int nesterov)
{
    fern_tensor *in[4] = {param, buf, grad, lr};
    fern_attr a[3] = {fern__attr_float(momentum), fern__attr_float(weight_decay), fern__attr_int(nesterov)};
    return fern__op1(&op_apply_momentum, 4, in, a);
}

/* ---- apply_adam(param, m, v, grad, lr, step) ------------------------------ */

static const fern_attr_spec adam_attrs[] = {{"beta1", FERN_ATTR_FLOAT, 0.9, NULL},
                                            {"beta2", FERN_ATTR_FLOAT, 0.999, NULL},
                                            {"eps", FERN_ATTR_FLOAT, 1e-8, NULL},
                                            {"weight_decay", FERN_ATTR_FLOAT, 0, NULL},
                                            {"decoupled", FERN_ATTR_INT, 0, NULL}};

static int adam_infer(fern_op_call *c) { return check_update(c, 2); }

/* 1 - b^t as the generic path computes it: exp(t log b) in f64 */
static double bias_correction(double b, double t) { return b == 0 ? 1.0 : 1.0 - exp(t * log(b)); }

static int adam_kernel(fern_op_call *c)
{
    if (state_contiguous(c, 2))
        return -1;
    fern_dtype dt = c->in[0]->dtype;
    double t = fern__load(fern_tensor_data(c->in[5]), c->in[5]->dtype);
    upd_job j = {.dt = dt, .p = fern_tensor_data(c->in[0]), .s0 = fern_tensor_data(c->in[1]),
                 .s1 = fern_tensor_data(c->in[2]), .lr = fern__load(fern_tensor_data(c->in[4]), c->in[4]->dtype),
                 .b1 = c->attrs[0].f, .b2 = c->attrs[1].f, .eps = c->attrs[2].f, .wd = c->attrs[3].f,
                 .decoupled = (int)c->attrs[4].i};
    j.bc1 = bias_correction(j.b1, t);
    j.bc2 = bias_correction(j.b2, t);
    if (dt == FERN_F32) { /* the generic path casts them to the parameter's dtype */
        j.bc1 = (float)j.bc1;
        j.bc2 = (float)j.bc2;
        j.lr = (float)j.lr;
    }
    return run_update(c, &j, 3, adam_task);
}

static const fern_op_def op_apply_adam = {
    .name = "apply_adam", .n_inputs = 6, .n_outputs = 1, .attrs = adam_attrs, .n_attrs = 5,
    .infer = adam_infer, .kernel = {[FERN_CPU] = adam_kernel}, .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_SELF_ALLOC | FERN_OPF_SIDE_EFFECT | FERN_OPF_NONDIFF,
    .doc = "in place Adam/AdamW step t (step input, 1-based): m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; "
           "param = param - m/(sqrt(v)/sqrt(1-b2^t) + eps) * lr/(1-b1^t), with weight decay added to g "
           "(decoupled 0) or param scaled by 1 - lr*weight_decay (decoupled 1); returns param"};

fern_tensor *fern_apply_adam(fern_tensor *param, fern_tensor *m, fern_tensor *v, fern_tensor *grad,
                             fern_tensor *lr, fern_tensor *step, double beta1, double beta2, double eps,
                             double weight_decay, int decoupled)
{
    fern_tensor *in[6] = {param, m, v, grad, lr, step};
    fern_attr a[5] = {fern__attr_float(beta1), fern__attr_float(beta2), fern__attr_float(eps),
                      fern__attr_float(weight_decay), fern__attr_int(decoupled)};
    return fern__op1(&op_apply_adam, 6, in, a);
}

const fern_op_def *const fern_ops_optim[] = {&op_apply_momentum, &op_apply_adam, NULL};
