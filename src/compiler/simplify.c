/* Algebraic simplification. Each rule rewrites one node; a rule that
 * forwards a value (y = x*1 -> x) replaces every use of the node's output
 * and drops the node. A "splat" operand is a constant (or a zeros / ones /
 * full / *_like node) holding one value everywhere, so a full-shaped
 * constant of ones counts as 1 just like a scalar 1.
 *
 * Identities, applied only when the result's type (dtype and every dim)
 * equals the forwarded value's type, so no broadcast or promotion is lost:
 *   x*1, 1*x, x/1, x+0, 0+x, x-0        -> x
 *   neg(neg(x))                          -> x
 *   log(exp(x))  (f32, f64)              -> x
 *   cast(x) to x's own dtype             -> x
 *   permute(permute(x, p), q)            -> permute(x, p∘q), or x if identity
 *   permute(x, identity)                 -> x
 *   reshape(reshape(x))                  -> reshape(x)
 *   reshape(x) to x's own shape          -> x
 * Zeros (integer and bool results only):
 *   x-x, x*0, 0*x                        -> zeros
 *
 * Deliberately conservative, and documented deviations:
 *   - x-x and x*0 are NOT rewritten for floats: inf-inf, nan-nan, inf*0
 *     and nan*0 are nan, and -x*0 is -0.
 *   - exp(log(x)) is never rewritten (log of x <= 0 is nan or -inf).
 *   - x+0 (and x-(-0)) with float x maps x = -0.0 to -0.0 where IEEE
 *     addition gives +0.0; the two compare equal and no other value
 *     changes. x+(-0.0), x-(+0.0), x*1 and x/1 are exact for every x.
 *   - log(exp(x)) -> x is exact in real arithmetic; in floating point the
 *     unsimplified graph rounds twice and overflows (exp(x) = inf for
 *     x > 88.7 in f32), so the rewrite returns x where the original
 *     returns inf (or -inf after underflow below about -103 in f32): the
 *     rewrite is the more accurate of the two. f16/bf16 are not rewritten. */
#include <stdlib.h>
#include <string.h>

#include "pass_util.h"

typedef struct {
    fern_graph *g;
    int *repl;
    char *dead;
} simp;

static void forward(simp *s, int i, int to)
{
    s->repl[s->g->nodes[i].out[0]] = to;
    s->dead[i] = 1;
}

static int splat_is(const fern_graph *g, int v, double want)
{
    double x;
    return fern__pu_splat(g, v, &x) && x == want;
}

/* Replace node i (one output y) by zeros of y's type. */
static int to_zeros(simp *s, int i, int like)
{
    fern_graph *g = s->g;
    int y = g->nodes[i].out[0];
    const ir_value *t = &g->values[y];
    int concrete = 1;
    for (int d = 0; d < t->ndim; d++)
        concrete &= t->shape[d] >= 0;
    if (concrete) {
        const fern_op_def *z = fern_op_find("zeros");
        if (z && z->n_attrs == 2) {
            fern_attr a[2] = {fern__attr_ints(t->shape, t->ndim), fern__attr_dtype(t->dtype)};
            if (fern__pu_set_op(g, i, z, a, 0, NULL) == 0)
                return 1;
        }
    }
    if (like >= 0 && fern__pu_same_type(g, like, y)) {
        const fern_op_def *z = fern_op_find("zeros_like");
        if (z && fern__pu_set_op(g, i, z, NULL, 1, &like) == 0)
            return 1;
    }
    return 0;
}

static int normalized_perm(const ir_node *n, int ndim, int64_t *p)
{
    const fern_attr *a = &n->attrs[0];
    if (a->n != ndim)
        return -1;
    for (int d = 0; d < ndim; d++) {
        p[d] = a->ints[d] < 0 ? a->ints[d] + ndim : a->ints[d];
        if (p[d] < 0 || p[d] >= ndim)
            return -1;
    }
    return 0;
}

static int is_identity(const int64_t *p, int ndim)
{
    for (int d = 0; d < ndim; d++)
        if (p[d] != d)
            return 0;
    return 1;
}

static int simplify_node(simp *s, int i)
{
    fern_graph *g = s->g;
    ir_node *n = &g->nodes[i];
    if (n->kind != FERN_NODE_OP || n->n_out != 1)
        return 0;
    const char *name = n->op->name;
    int y = n->out[0];
    fern_dtype ydt = g->values[y].dtype;
    int a = n->n_in > 0 ? n->in[0] : -1, b = n->n_in > 1 ? n->in[1] : -1;
    int int_result = fern_dtype_is_int(ydt) || ydt == FERN_BOOL;

    if (!strcmp(name, "add") && n->n_in == 2) {
        if (splat_is(g, b, 0.0) && fern__pu_same_type(g, y, a))
            return forward(s, i, a), 1;
        if (splat_is(g, a, 0.0) && fern__pu_same_type(g, y, b))
            return forward(s, i, b), 1;
        return 0;
    }
    if (!strcmp(name, "sub") && n->n_in == 2) {
        if (splat_is(g, b, 0.0) && fern__pu_same_type(g, y, a))
            return forward(s, i, a), 1;
        if (a == b && int_result)
            return to_zeros(s, i, a);
        return 0;
    }
    if (!strcmp(name, "mul") && n->n_in == 2) {
        if (splat_is(g, b, 1.0) && fern__pu_same_type(g, y, a))
            return forward(s, i, a), 1;
        if (splat_is(g, a, 1.0) && fern__pu_same_type(g, y, b))
            return forward(s, i, b), 1;
        if (int_result) {
            int zb = splat_is(g, b, 0.0), za = !zb && splat_is(g, a, 0.0);
            if (zb || za) {
                int zero = zb ? b : a;
                /* the zero operand itself, when it already has y's type */
                if (fern__pu_same_type(g, y, zero))
                    return forward(s, i, zero), 1;
                return to_zeros(s, i, zb ? a : b);
            }
        }
        return 0;
    }
    if (!strcmp(name, "div") && n->n_in == 2) {
        if (splat_is(g, b, 1.0) && fern__pu_same_type(g, y, a))
            return forward(s, i, a), 1;
        return 0;
    }
    if (!strcmp(name, "neg") && n->n_in == 1) {
        const ir_node *p = fern__pu_producer(g, a);
        if (fern__pu_is_op(p, "neg") && fern__pu_same_type(g, y, p->in[0]))
            return forward(s, i, p->in[0]), 1;
        return 0;
    }
    if (!strcmp(name, "log") && n->n_in == 1) {
        const ir_node *p = fern__pu_producer(g, a);
        if (fern__pu_is_op(p, "exp") && (ydt == FERN_F32 || ydt == FERN_F64) &&
            fern__pu_same_type(g, y, p->in[0]) && fern__pu_same_type(g, y, a))
            return forward(s, i, p->in[0]), 1;
        return 0;
    }
    if (!strcmp(name, "cast") && n->n_in == 1) {
        if (fern__pu_same_type(g, y, a))
            return forward(s, i, a), 1;
        return 0;
    }
    if (!strcmp(name, "permute") && n->n_in == 1 && n->op->n_attrs == 1) {
        int nd = g->values[a].ndim;
        int64_t q[FERN_MAX_DIMS];
        if (normalized_perm(n, nd, q))
            return 0;
        if (is_identity(q, nd))
            return fern__pu_same_type(g, y, a) ? (forward(s, i, a), 1) : 0;
        const ir_node *p = fern__pu_producer(g, a);
        int64_t pp[FERN_MAX_DIMS], r[FERN_MAX_DIMS];
        if (!fern__pu_is_op(p, "permute") || normalized_perm(p, nd, pp))
            return 0;
        /* z[j] = y[q[j]] = x[pp[q[j]]] */
        for (int d = 0; d < nd; d++)
            r[d] = pp[q[d]];
        int x = p->in[0];
        if (is_identity(r, nd))
            return fern__pu_same_type(g, y, x) ? (forward(s, i, x), 1) : 0;
        fern_attr at = fern__attr_ints(r, nd);
        return fern__pu_set_op(g, i, n->op, &at, 1, &x) == 0;
    }
    if (!strcmp(name, "reshape") && n->n_in == 1) {
        if (fern__pu_same_type(g, y, a))
            return forward(s, i, a), 1;
        const ir_node *p = fern__pu_producer(g, a);
        if (!fern__pu_is_op(p, "reshape"))
            return 0;
        int x = p->in[0];
        if (fern__pu_same_type(g, y, x))
            return forward(s, i, x), 1;
        fern_attr at = n->attrs[0];
        return fern__pu_set_op(g, i, n->op, &at, 1, &x) == 0;
    }
    return 0;
}

int fern__pass_simplify(fern_graph *g)
{
    simp s = {g, fern__pu_repl_new(g), calloc((size_t)(g->n_nodes ? g->n_nodes : 1), 1)};
    if (!s.repl || !s.dead) {
        free(s.repl);
        free(s.dead);
        fern_set_error(FERN_ERR_NOMEM, "simplify: out of memory");
        return -1;
    }
    int changes = 0, any_dead = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0)
                n->in[k] = fern__pu_resolve(s.repl, n->in[k]);
        int c = simplify_node(&s, i);
        changes += c;
        any_dead |= s.dead[i];
    }
    if (any_dead) {
        fern__pu_apply_repl(g, s.repl);
        fern__ir_compact(g, s.dead);
    }
    free(s.repl);
    free(s.dead);
    return changes;
}
