/* Helpers shared by the compiler passes (see pass_util.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pass_util.h"

int fern__pu_is_op(const ir_node *n, const char *name)
{
    return n && n->kind == FERN_NODE_OP && strcmp(n->op->name, name) == 0;
}

int fern__pu_same_type(const fern_graph *g, int a, int b)
{
    const ir_value *x = &g->values[a], *y = &g->values[b];
    if (x->dtype != y->dtype || x->ndim != y->ndim)
        return 0;
    for (int d = 0; d < x->ndim; d++)
        if (x->shape[d] == -1 || x->shape[d] != y->shape[d])
            return 0;
    return 1;
}

int fern__pu_known_dims(const fern_graph *g, int v)
{
    const ir_value *x = &g->values[v];
    for (int d = 0; d < x->ndim; d++)
        if (x->shape[d] == -1)
            return 0;
    return 1;
}

int64_t fern__pu_numel(const fern_graph *g, int v)
{
    const ir_value *x = &g->values[v];
    int64_t n = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (x->shape[d] < 0)
            return -1;
        n *= x->shape[d];
    }
    return n;
}

static uint64_t bits_of(double f)
{
    uint64_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

uint64_t fern__pu_mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

int fern__pu_attrs_equal(const fern_op_def *op, const fern_attr *a, const fern_attr *b)
{
    for (int i = 0; i < op->n_attrs; i++) {
        const fern_attr *x = &a[i], *y = &b[i];
        switch (op->attrs[i].kind) {
        case FERN_ATTR_INT:
        case FERN_ATTR_DTYPE:
            if (x->i != y->i)
                return 0;
            break;
        case FERN_ATTR_FLOAT:
            if (bits_of(x->f) != bits_of(y->f))
                return 0;
            break;
        case FERN_ATTR_STR:
            if (x->s != y->s && (!x->s || !y->s || strcmp(x->s, y->s) != 0))
                return 0;
            break;
        case FERN_ATTR_INTS:
            if (x->n != y->n)
                return 0;
            for (int k = 0; k < x->n; k++)
                if (x->ints[k] != y->ints[k])
                    return 0;
            break;
        case FERN_ATTR_FLOATS:
            if (x->n != y->n)
                return 0;
            for (int k = 0; k < x->n; k++)
                if (bits_of(x->floats[k]) != bits_of(y->floats[k]))
                    return 0;
            break;
        }
    }
    return 1;
}

uint64_t fern__pu_attrs_hash(const fern_op_def *op, const fern_attr *a)
{
    uint64_t h = 0x5bd1e995u;
    for (int i = 0; i < op->n_attrs; i++) {
        const fern_attr *x = &a[i];
        switch (op->attrs[i].kind) {
        case FERN_ATTR_INT:
        case FERN_ATTR_DTYPE: h = fern__pu_mix(h, (uint64_t)x->i); break;
        case FERN_ATTR_FLOAT: h = fern__pu_mix(h, bits_of(x->f)); break;
        case FERN_ATTR_STR:
            for (const char *s = x->s ? x->s : ""; *s; s++)
                h = fern__pu_mix(h, (unsigned char)*s);
            break;
        case FERN_ATTR_INTS:
            h = fern__pu_mix(h, (uint64_t)x->n);
            for (int k = 0; k < x->n; k++)
                h = fern__pu_mix(h, (uint64_t)x->ints[k]);
            break;
        case FERN_ATTR_FLOATS:
            h = fern__pu_mix(h, (uint64_t)x->n);
            for (int k = 0; k < x->n; k++)
                h = fern__pu_mix(h, bits_of(x->floats[k]));
            break;
        }
    }
    return h;
}

/* v as stored in dtype dt, read back. */
static double stored(fern_dtype dt, double v)
{
    _Alignas(8) unsigned char buf[16];
    fern__store(buf, dt, v);
    return fern__load(buf, dt);
}

static int tensor_splat(const fern_tensor *t, double *value)
{
    int64_t n = fern_tensor_numel(t);
    if (n < 1 || !t->storage)
        return 0;
    double first = fern_tensor_get_flat(t, 0);
    if (first != first)
        return 0;
    if (fern_tensor_is_contiguous(t)) {
        const char *p = fern_tensor_data(t);
        size_t es = fern_dtype_size(t->dtype);
        for (int64_t i = 1; i < n; i++)
            if (fern__load(p + (size_t)i * es, t->dtype) != first)
                return 0;
    } else {
        for (int64_t i = 1; i < n; i++)
            if (fern_tensor_get_flat(t, i) != first)
                return 0;
    }
    *value = first;
    return 1;
}

int fern__pu_splat(const fern_graph *g, int v, double *value)
{
    const ir_node *n = fern__pu_producer(g, v);
    if (!n)
        return 0;
    if (n->kind == FERN_NODE_CONST)
        return tensor_splat(n->value, value);
    if (n->kind != FERN_NODE_OP)
        return 0;
    fern_dtype dt = g->values[v].dtype;
    double x;
    const char *name = n->op->name;
    if (!strcmp(name, "zeros") || !strcmp(name, "zeros_like"))
        x = 0.0;
    else if (!strcmp(name, "ones") || !strcmp(name, "ones_like"))
        x = 1.0;
    else if (!strcmp(name, "full") && n->op->n_attrs >= 3)
        x = n->attrs[2].f;
    else if (!strcmp(name, "full_like") && n->op->n_attrs >= 1)
        x = n->attrs[0].f;
    else
        return 0;
    x = stored(dt, x);
    if (x != x)
        return 0;
    *value = x;
    return 1;
}

int *fern__pu_repl_new(const fern_graph *g)
{
    int *r = malloc((size_t)(g->n_values ? g->n_values : 1) * sizeof *r);
    if (!r) {
        fern_set_error(FERN_ERR_NOMEM, "compiler: out of memory");
        return NULL;
    }
    for (int v = 0; v < g->n_values; v++)
        r[v] = v;
    return r;
}

void fern__pu_apply_repl(fern_graph *g, const int *repl)
{
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0)
                g->nodes[i].in[k] = fern__pu_resolve(repl, g->nodes[i].in[k]);
    for (int k = 0; k < g->n_outputs; k++)
        g->outputs[k] = fern__pu_resolve(repl, g->outputs[k]);
}

void fern__pu_node_release(ir_node *n)
{
    free(n->attrs);
    free(n->in);
    free(n->out);
    fern_release(n->value);
    n->attrs = NULL;
    n->in = NULL;
    n->out = NULL;
    n->value = NULL;
}

int fern__pu_set_op(fern_graph *g, int i, const fern_op_def *op, const fern_attr *attrs, int n_in,
                    const int *in)
{
    int had = fern__pu_err_begin();
    fern_op_call c;
    if (fern__ir_infer(g, op, attrs, n_in, in, &c)) {
        fern__pu_err_end(had);
        return -1;
    }
    ir_node *n = &g->nodes[i];
    if (c.n_out != n->n_out)
        return -1;
    for (int k = 0; k < n->n_out; k++) {
        const ir_value *v = &g->values[n->out[k]];
        if (v->dtype != c.out_dtype[k] || v->ndim != c.out_ndim[k])
            return -1;
        for (int d = 0; d < v->ndim; d++)
            if (v->shape[d] != c.out_shape[k][d] && v->shape[d] != -1 && c.out_shape[k][d] != -1)
                return -1;
    }
    fern_attr *na = NULL;
    if (op->n_attrs) {
        na = malloc((size_t)op->n_attrs * sizeof *na);
        if (!na)
            return -1;
        memcpy(na, attrs, (size_t)op->n_attrs * sizeof *na);
        for (int a = 0; a < op->n_attrs; a++)
            if (na[a].kind == FERN_ATTR_STR && na[a].s) {
                na[a].s = fern__ir_intern(g->module, na[a].s);
                if (!na[a].s) {
                    free(na);
                    return -1;
                }
            }
    }
    int *ni = malloc((size_t)(n_in ? n_in : 1) * sizeof *ni);
    if (!ni) {
        free(na);
        return -1;
    }
    if (n_in)
        memcpy(ni, in, (size_t)n_in * sizeof *ni);
    free(n->attrs);
    free(n->in);
    fern_release(n->value);
    n->value = NULL;
    n->kind = FERN_NODE_OP;
    n->op = op;
    n->attrs = na;
    n->in = ni;
    n->n_in = n_in;
    n->sub[0] = n->sub[1] = NULL;
    n->n_carry = 0;
    for (int k = 0; k < n->n_out; k++) {
        ir_value *v = &g->values[n->out[k]];
        for (int d = 0; d < v->ndim; d++)
            if (v->shape[d] == -1)
                v->shape[d] = c.out_shape[k][d];
    }
    return 0;
}

void fern__pu_set_const(fern_graph *g, int i, fern_tensor *t)
{
    ir_node *n = &g->nodes[i];
    free(n->attrs);
    n->attrs = NULL;
    n->kind = FERN_NODE_CONST;
    n->op = NULL;
    n->n_in = 0;
    n->n_out = 1;
    n->sub[0] = n->sub[1] = NULL;
    n->n_carry = 0;
    fern_release(n->value);
    n->value = fern_retain(t);
    ir_value *v = &g->values[n->out[0]];
    v->dtype = t->dtype;
    v->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++)
        v->shape[d] = t->shape[d];
}

int fern__pu_toposort(fern_graph *g)
{
    int n = g->n_nodes;
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    char *state = calloc((size_t)(n ? n : 1), 1);
    int *stack = malloc((size_t)(n ? n : 1) * sizeof *stack);
    int *next = calloc((size_t)(n ? n : 1), sizeof *next);
    ir_node *nodes = malloc((size_t)(n ? n : 1) * sizeof *nodes);
    if (!order || !state || !stack || !next || !nodes) {
        free(order);
        free(state);
        free(stack);
        free(next);
        free(nodes);
        fern_set_error(FERN_ERR_NOMEM, "compiler: out of memory");
        return -1;
    }
    int w = 0, rc = 0;
    for (int root = 0; root < n && rc == 0; root++) {
        if (state[root])
            continue;
        int sp = 0;
        stack[sp++] = root;
        state[root] = 1;
        while (sp > 0) {
            int u = stack[sp - 1];
            const ir_node *nu = &g->nodes[u];
            if (next[u] < nu->n_in) {
                int v = nu->in[next[u]++];
                int p = v >= 0 ? g->values[v].node : -1;
                if (p < 0)
                    continue;
                if (state[p] == 1) {
                    fern_set_error(FERN_ERR_INTERNAL, "compiler: @%s has a cycle", g->name);
                    rc = -1;
                    break;
                }
                if (state[p] == 0) {
                    state[p] = 1;
                    stack[sp++] = p;
                }
                continue;
            }
            state[u] = 2;
            order[w++] = u;
            sp--;
        }
    }
    if (rc == 0) {
        for (int k = 0; k < n; k++)
            nodes[k] = g->nodes[order[k]];
        memcpy(g->nodes, nodes, (size_t)n * sizeof *nodes);
        fern__ir_compact(g, NULL);
    }
    free(order);
    free(state);
    free(stack);
    free(next);
    free(nodes);
    return rc;
}
