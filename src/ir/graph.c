/* Modules and graphs: construction, queries and rewriting primitives. */
#include <stdlib.h>
#include <string.h>

#include "ir_internal.h"

#define GROW(ptr, n, cap, init)                                                               \
    do {                                                                                      \
        if ((n) >= (cap)) {                                                                   \
            int nc_ = (cap) ? (cap) * 2 : (init);                                             \
            void *np_ = realloc((ptr), (size_t)nc_ * sizeof *(ptr));                          \
            if (!np_) {                                                                       \
                fern_set_error(FERN_ERR_NOMEM, "ir: out of memory");                          \
                return -1;                                                                    \
            }                                                                                 \
            (ptr) = np_;                                                                      \
            (cap) = nc_;                                                                      \
        }                                                                                     \
    } while (0)

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

fern_module *fern_module_new(void)
{
    fern_module *m = calloc(1, sizeof *m);
    if (!m)
        fern_set_error(FERN_ERR_NOMEM, "module_new: out of memory");
    return m;
}

static void node_free(ir_node *n)
{
    free(n->attrs);
    free(n->in);
    free(n->out);
    fern_release(n->value);
}

static void graph_free(fern_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++)
        node_free(&g->nodes[i]);
    for (int i = 0; i < g->n_params; i++)
        fern_release(g->captures[i]);
    free(g->nodes);
    free(g->values);
    free(g->params);
    free(g->captures);
    free(g->is_capture);
    free(g->outputs);
    free(g->name);
    free(g);
}

void fern_module_free(fern_module *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_graphs; i++)
        graph_free(m->graphs[i]);
    for (int i = 0; i < m->n_symbols; i++)
        free(m->symbols[i]);
    for (int i = 0; i < m->n_strings; i++)
        free(m->strings[i]);
    free(m->graphs);
    free(m->symbols);
    free(m->strings);
    free(m);
}

int fern_module_symbol(fern_module *m, const char *name)
{
    for (int i = 0; i < m->n_symbols; i++)
        if (strcmp(m->symbols[i], name) == 0)
            return i;
    char **s = realloc(m->symbols, (size_t)(m->n_symbols + 1) * sizeof *s);
    if (!s)
        return -1;
    m->symbols = s;
    m->symbols[m->n_symbols] = dupstr(name);
    return m->n_symbols++;
}

const char *fern_module_symbol_name(const fern_module *m, int i)
{
    return i >= 0 && i < m->n_symbols ? m->symbols[i] : "?";
}

const char *fern__ir_intern(fern_module *m, const char *s)
{
    if (!s)
        return NULL;
    for (int i = 0; i < m->n_strings; i++)
        if (strcmp(m->strings[i], s) == 0)
            return m->strings[i];
    if (m->n_strings >= m->cap_strings) {
        int nc = m->cap_strings ? m->cap_strings * 2 : 16;
        char **ns = realloc(m->strings, (size_t)nc * sizeof *ns);
        if (!ns)
            return NULL;
        m->strings = ns;
        m->cap_strings = nc;
    }
    m->strings[m->n_strings] = dupstr(s);
    return m->strings[m->n_strings++];
}

int fern_module_graph_count(const fern_module *m) { return m->n_graphs; }
fern_graph *fern_module_graph(const fern_module *m, int i)
{
    return i >= 0 && i < m->n_graphs ? m->graphs[i] : NULL;
}

fern_graph *fern_module_find_graph(const fern_module *m, const char *name)
{
    for (int i = 0; i < m->n_graphs; i++)
        if (strcmp(m->graphs[i]->name, name) == 0)
            return m->graphs[i];
    return NULL;
}

fern_graph *fern_module_main(const fern_module *m)
{
    fern_graph *g = fern_module_find_graph(m, "main");
    return g ? g : fern_module_graph(m, 0);
}

fern_graph *fern_graph_new(fern_module *m, const char *name)
{
    if (!m || !name) {
        fern_set_error(FERN_ERR_INVALID, "graph_new: NULL module or name");
        return NULL;
    }
    if (fern_module_find_graph(m, name)) {
        fern_set_error(FERN_ERR_INVALID, "graph_new: the module already has a graph @%s", name);
        return NULL;
    }
    fern_graph *g = calloc(1, sizeof *g);
    if (!g || m->n_graphs >= m->cap_graphs) {
        int nc = m->cap_graphs ? m->cap_graphs * 2 : 4;
        fern_graph **ng = g ? realloc(m->graphs, (size_t)nc * sizeof *ng) : NULL;
        if (!ng) {
            free(g);
            fern_set_error(FERN_ERR_NOMEM, "graph_new: out of memory");
            return NULL;
        }
        m->graphs = ng;
        m->cap_graphs = nc;
    }
    g->module = m;
    g->name = dupstr(name);
    m->graphs[m->n_graphs++] = g;
    return g;
}

const char *fern_graph_name(const fern_graph *g) { return g->name; }

int fern__ir_add_value(fern_graph *g, fern_dtype dt, int ndim, const int64_t *shape, int node,
                       int index)
{
    GROW(g->values, g->n_values, g->cap_values, 16);
    ir_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->dtype = dt;
    v->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        v->shape[d] = shape[d];
    v->node = node;
    v->index = index;
    return g->n_values++;
}

static int add_param_slot(fern_graph *g, int value, fern_tensor *capture)
{
    if (g->n_params >= g->cap_params) {
        int nc = g->cap_params ? g->cap_params * 2 : 8;
        int *np = realloc(g->params, (size_t)nc * sizeof *np);
        if (!np)
            return -1;
        g->params = np;
        fern_tensor **nc_ = realloc(g->captures, (size_t)nc * sizeof *nc_);
        if (!nc_)
            return -1;
        g->captures = nc_;
        char *ic = realloc(g->is_capture, (size_t)nc);
        if (!ic)
            return -1;
        g->is_capture = ic;
        g->cap_params = nc;
    }
    g->params[g->n_params] = value;
    g->captures[g->n_params] = capture ? fern_retain(capture) : NULL;
    g->is_capture[g->n_params] = capture != NULL;
    g->values[value].index = g->n_params;
    return g->n_params++;
}

int fern_graph_add_param(fern_graph *g, fern_dtype dt, int ndim, const int64_t *shape)
{
    int v = fern__ir_add_value(g, dt, ndim, shape, -1, 0);
    if (v < 0 || add_param_slot(g, v, NULL) < 0)
        return -1;
    return v;
}

int fern_graph_add_capture(fern_graph *g, fern_tensor *t)
{
    if (!t) {
        fern_set_error(FERN_ERR_INVALID, "graph_add_capture: NULL tensor");
        return -1;
    }
    for (int i = 0; i < g->n_params; i++)
        if (g->captures[i] == t)
            return g->params[i];
    int v = fern__ir_add_value(g, t->dtype, t->ndim, t->shape, -1, 0);
    if (v < 0 || add_param_slot(g, v, t) < 0)
        return -1;
    return v;
}

int fern__ir_add_node(fern_graph *g, fern_node_kind kind, const fern_op_def *op,
                      const fern_attr *attrs, int n_in, const int *in, int n_out)
{
    GROW(g->nodes, g->n_nodes, g->cap_nodes, 16);
    ir_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->op = op;
    if (op && op->n_attrs) {
        n->attrs = malloc((size_t)op->n_attrs * sizeof *n->attrs);
        if (!n->attrs)
            return -1;
        memcpy(n->attrs, attrs, (size_t)op->n_attrs * sizeof *n->attrs);
        for (int i = 0; i < op->n_attrs; i++)
            if (n->attrs[i].kind == FERN_ATTR_STR)
                n->attrs[i].s = fern__ir_intern(g->module, n->attrs[i].s);
    }
    n->n_in = n_in;
    n->in = malloc((size_t)(n_in ? n_in : 1) * sizeof *n->in);
    n->n_out = n_out;
    n->out = calloc((size_t)(n_out ? n_out : 1), sizeof *n->out);
    if (!n->in || !n->out)
        return -1;
    if (n_in)
        memcpy(n->in, in, (size_t)n_in * sizeof *in);
    return g->n_nodes++;
}

int fern_graph_add_const(fern_graph *g, fern_tensor *t)
{
    if (!t || !t->storage) {
        fern_set_error(FERN_ERR_INVALID, "graph_add_const: need a concrete tensor");
        return -1;
    }
    int node = fern__ir_add_node(g, FERN_NODE_CONST, NULL, NULL, 0, NULL, 1);
    if (node < 0)
        return -1;
    int v = fern__ir_add_value(g, t->dtype, t->ndim, t->shape, node, 0);
    if (v < 0)
        return -1;
    g->nodes[node].out[0] = v;
    g->nodes[node].value = fern_retain(t);
    return v;
}

static int check_value(const fern_graph *g, int v, const char *who)
{
    if (v < 0 || v >= g->n_values) {
        fern_set_error(FERN_ERR_INVALID, "%s: value %%%d does not exist in @%s", who, v, g->name);
        return -1;
    }
    return 0;
}

/* Symbols are probed with distinct large sizes, twice with different
 * sizes: an output dimension equal to a symbol's probe in both runs is that
 * symbol; one that differs between the runs was derived from a symbol (a
 * product, a sum) and becomes unknown; one equal in both is concrete. */
/* A probe is a highly divisible unit (so shape arithmetic such as reshape
 * with -1 or flatten stays exact) times a marker: a large prime per symbol,
 * 1 for an unknown dimension. A product or quotient of a probe carries a
 * marker no symbol has, and so comes out unknown. */
static const int64_t probe_unit[2] = {720720, 1081080};
#define PROBE_PRIME(k) (1000003 + 1009 * (int64_t)(k)) /* distinct; k < 4096: all > 999999 */

static int64_t probe_of(int64_t d, int run)
{
    if (FERN_DIM_IS_SYM(d))
        return probe_unit[run] * PROBE_PRIME(FERN_DIM_SYM_INDEX(d));
    if (d == -1)
        return probe_unit[run]; /* unknown: a probe of its own */
    return d;
}

static int64_t unprobe(int64_t d0, int64_t d1)
{
    if (d0 == d1)
        return d0;
    if (d0 > 0 && d1 > 0 && d0 % probe_unit[0] == 0 && d1 % probe_unit[1] == 0 &&
        d0 / probe_unit[0] == d1 / probe_unit[1]) {
        int64_t m = d0 / probe_unit[0] - PROBE_PRIME(0);
        if (m >= 0 && m % 1009 == 0 && m / 1009 < 4096)
            return FERN_DIM_SYM(m / 1009);
    }
    return -1;
}

static int infer_run(fern_graph *g, const fern_op_def *op, const fern_attr *attrs, int n_in,
                     const int *in, fern_op_call *c, int run)
{
    struct fern_tensor fake[FERN_MAX_INPUTS];
    fern_tensor *ptrs[FERN_MAX_INPUTS];
    for (int i = 0; i < n_in; i++) {
        if (in[i] < 0) {
            ptrs[i] = NULL;
            continue;
        }
        const ir_value *v = &g->values[in[i]];
        memset(&fake[i], 0, sizeof fake[i]);
        fake[i].dtype = v->dtype;
        fake[i].ndim = v->ndim;
        for (int d = 0; d < v->ndim; d++)
            fake[i].shape[d] = probe_of(v->shape[d], run);
        fern__contiguous_strides(v->ndim, fake[i].shape, fake[i].strides);
        ptrs[i] = &fake[i];
    }
    c->op = op;
    c->n_in = n_in;
    c->in = ptrs;
    c->attrs = attrs;
    c->n_out = op->n_outputs;
    int rc = op->infer(c);
    c->in = NULL;
    return rc;
}

int fern__ir_infer(fern_graph *g, const fern_op_def *op, const fern_attr *attrs, int n_in,
                   const int *in, fern_op_call *c)
{
    if (n_in > FERN_MAX_INPUTS) {
        fern_set_error(FERN_ERR_INVALID, "%s: too many inputs", op->name);
        return -1;
    }
    if ((op->n_inputs >= 0 && n_in != op->n_inputs) || (op->n_inputs < 0 && n_in < 1)) {
        fern_set_error(FERN_ERR_INVALID, "%s: expected %d inputs, got %d", op->name, op->n_inputs, n_in);
        return -1;
    }
    int required = op->n_inputs < 0 ? n_in : op->n_inputs - op->n_optional;
    int symbolic = 0;
    for (int i = 0; i < n_in; i++) {
        if (in[i] >= 0 && check_value(g, in[i], op->name))
            return -1;
        if (i < required && in[i] < 0) {
            fern_set_error(FERN_ERR_INVALID, "%s: input %d is required", op->name, i);
            return -1;
        }
        for (int d = 0; in[i] >= 0 && d < g->values[in[i]].ndim; d++)
            symbolic |= g->values[in[i]].shape[d] < 0;
    }
    if (infer_run(g, op, attrs, n_in, in, c, 0))
        return -1;
    if (!symbolic)
        return 0;
    fern_op_call c2;
    if (infer_run(g, op, attrs, n_in, in, &c2, 1))
        return -1;
    for (int k = 0; k < c->n_out; k++)
        for (int d = 0; d < c->out_ndim[k]; d++)
            c->out_shape[k][d] = d < c2.out_ndim[k] ? unprobe(c->out_shape[k][d], c2.out_shape[k][d]) : -1;
    return 0;
}

int fern__ir_add_op_bound(fern_graph *g, const fern_op_def *op, const fern_attr *attrs, int n_in,
                          const int *in, int n_out, int *out)
{
    fern_op_call c;
    if (fern__ir_infer(g, op, attrs, n_in, in, &c))
        return -1;
    if (c.n_out != n_out) {
        fern_set_error(FERN_ERR_INVALID, "%s: has %d outputs, %d requested", op->name, c.n_out, n_out);
        return -1;
    }
    int node = fern__ir_add_node(g, FERN_NODE_OP, op, attrs, n_in, in, n_out);
    if (node < 0)
        return -1;
    for (int k = 0; k < n_out; k++) {
        int v = fern__ir_add_value(g, c.out_dtype[k], c.out_ndim[k], c.out_shape[k], node, k);
        if (v < 0)
            return -1;
        g->nodes[node].out[k] = v;
        if (out)
            out[k] = v;
    }
    return 0;
}

int fern_graph_add_op(fern_graph *g, const char *opname, int n_in, const int *in, int n_attrs,
                      const char *const *attr_names, const fern_attr *attrs, int n_out, int *out)
{
    const fern_op_def *op = fern_op_find(opname);
    if (!op) {
        fern_set_error(FERN_ERR_INVALID, "graph_add_op: no op named '%s'", opname);
        return -1;
    }
    fern_attr bound[32];
    if (fern__bind_attrs(op, n_attrs, attr_names, attrs, bound))
        return -1;
    return fern__ir_add_op_bound(g, op, bound, n_in, in, n_out, out);
}

static int same_type(const fern_graph *a, int va, const fern_graph *b, int vb)
{
    const ir_value *x = &a->values[va], *y = &b->values[vb];
    if (x->dtype != y->dtype || x->ndim != y->ndim)
        return 0;
    for (int d = 0; d < x->ndim; d++)
        if (x->shape[d] != y->shape[d] && x->shape[d] != -1 && y->shape[d] != -1)
            return 0;
    return 1;
}

static int add_structured(fern_graph *g, fern_node_kind kind, fern_graph *s0, fern_graph *s1,
                          int n_carry, int n_in, const int *in, int n_out, int *out,
                          const fern_graph *type_src, int type_offset)
{
    for (int i = 0; i < n_in; i++)
        if (check_value(g, in[i], "graph"))
            return -1;
    int node = fern__ir_add_node(g, kind, NULL, NULL, n_in, in, n_out);
    if (node < 0)
        return -1;
    ir_node *n = &g->nodes[node];
    n->sub[0] = s0;
    n->sub[1] = s1;
    n->n_carry = n_carry;
    for (int k = 0; k < n_out; k++) {
        const ir_value *t = &type_src->values[type_src->outputs[k + type_offset]];
        int v = fern__ir_add_value(g, t->dtype, t->ndim, t->shape, node, k);
        if (v < 0)
            return -1;
        g->nodes[node].out[k] = v;
        out[k] = v;
    }
    return 0;
}

static int expect_sig(const char *who, const fern_graph *g, const int *in, int n_in,
                      const fern_graph *sub, int n_out)
{
    int np = 0;
    for (int i = 0; i < sub->n_params; i++)
        if (!sub->is_capture[i])
            np++;
    if (np != n_in || sub->n_outputs != n_out) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: @%s takes %d inputs and returns %d outputs, but %d inputs and %d outputs were given",
                       who, sub->name, np, sub->n_outputs, n_in, n_out);
        return -1;
    }
    for (int i = 0, k = 0; i < sub->n_params; i++) {
        if (sub->is_capture[i])
            continue;
        if (in && !same_type(g, in[k], sub, sub->params[i])) {
            fern_set_error(FERN_ERR_INVALID, "%s: input %d does not match the type of @%s's parameter %d",
                           who, k, sub->name, k);
            return -1;
        }
        k++;
    }
    return 0;
}

int fern_graph_add_call(fern_graph *g, fern_graph *callee, int n_in, const int *in, int n_out,
                        int *out)
{
    if (expect_sig("call", g, in, n_in, callee, n_out))
        return -1;
    return add_structured(g, FERN_NODE_CALL, callee, NULL, 0, n_in, in, n_out, out, callee, 0);
}

int fern_graph_add_cond(fern_graph *g, int pred, fern_graph *then_g, fern_graph *else_g, int n_in,
                        const int *in, int n_out, int *out)
{
    if (check_value(g, pred, "cond") || expect_sig("cond", g, in, n_in, then_g, n_out) ||
        expect_sig("cond", g, in, n_in, else_g, n_out))
        return -1;
    if (g->values[pred].ndim != 0) {
        fern_set_error(FERN_ERR_INVALID, "cond: the predicate must be a scalar");
        return -1;
    }
    int ins[FERN_MAX_INPUTS + 1];
    if (n_in + 1 > FERN_MAX_INPUTS + 1)
        return -1;
    ins[0] = pred;
    memcpy(ins + 1, in, (size_t)n_in * sizeof *in);
    return add_structured(g, FERN_NODE_COND, then_g, else_g, 0, n_in + 1, ins, n_out, out, then_g, 0);
}

int fern_graph_add_while(fern_graph *g, fern_graph *cond_g, fern_graph *body_g, int n_in,
                         const int *in, int n_out, int *out)
{
    if (n_out != n_in) {
        fern_set_error(FERN_ERR_INVALID, "while: %d loop variables but %d outputs", n_in, n_out);
        return -1;
    }
    if (expect_sig("while", g, in, n_in, cond_g, 1) || expect_sig("while", g, in, n_in, body_g, n_in))
        return -1;
    return add_structured(g, FERN_NODE_WHILE, cond_g, body_g, 0, n_in, in, n_out, out, body_g, 0);
}

int fern_graph_add_scan(fern_graph *g, fern_graph *body_g, int n_carry, int n_in, const int *in,
                        int n_out, int *out)
{
    if (expect_sig("scan", g, NULL, n_in, body_g, n_out))
        return -1;
    if (n_carry > n_in || n_carry > n_out) {
        fern_set_error(FERN_ERR_INVALID, "scan: n_carry %d exceeds inputs/outputs", n_carry);
        return -1;
    }
    for (int i = 0; i < n_in; i++)
        if (check_value(g, in[i], "scan"))
            return -1;
    int node = fern__ir_add_node(g, FERN_NODE_SCAN, NULL, NULL, n_in, in, n_out);
    if (node < 0)
        return -1;
    g->nodes[node].sub[0] = body_g;
    g->nodes[node].n_carry = n_carry;
    int64_t length = n_in > n_carry ? g->values[in[n_carry]].shape[0] : -1;
    for (int k = 0; k < n_out; k++) {
        const ir_value *t = &body_g->values[body_g->outputs[k]];
        int64_t shape[FERN_MAX_DIMS];
        int nd = t->ndim;
        if (k < n_carry) {
            memcpy(shape, t->shape, sizeof shape);
        } else { /* stacked per-step outputs */
            shape[0] = length;
            memcpy(shape + 1, t->shape, (size_t)t->ndim * sizeof(int64_t));
            nd++;
        }
        int v = fern__ir_add_value(g, t->dtype, nd, shape, node, k);
        if (v < 0)
            return -1;
        g->nodes[node].out[k] = v;
        out[k] = v;
    }
    return 0;
}

int fern_graph_set_outputs(fern_graph *g, int n, const int *values)
{
    for (int i = 0; i < n; i++)
        if (check_value(g, values[i], "set_outputs"))
            return -1;
    int *o = malloc((size_t)(n ? n : 1) * sizeof *o);
    if (!o)
        return -1;
    memcpy(o, values, (size_t)n * sizeof *o);
    free(g->outputs);
    g->outputs = o;
    g->n_outputs = n;
    return 0;
}

int fern_graph_param_count(const fern_graph *g) { return g->n_params; }
int fern_graph_output_count(const fern_graph *g) { return g->n_outputs; }
int fern_graph_node_count(const fern_graph *g) { return g->n_nodes; }
int fern_graph_value_count(const fern_graph *g) { return g->n_values; }

int fern_graph_count_op(const fern_graph *g, const char *op)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (!op || (g->nodes[i].op && strcmp(g->nodes[i].op->name, op) == 0))
            n++;
    return n;
}

fern_dtype fern_graph_value_dtype(const fern_graph *g, int v) { return g->values[v].dtype; }

int fern_graph_value_shape(const fern_graph *g, int v, int64_t *shape)
{
    const ir_value *x = &g->values[v];
    for (int d = 0; d < x->ndim; d++)
        shape[d] = x->shape[d];
    return x->ndim;
}

size_t fern__ir_value_bytes(const fern_graph *g, int v)
{
    const ir_value *x = &g->values[v];
    size_t n = fern_dtype_size(x->dtype);
    for (int d = 0; d < x->ndim; d++)
        n *= x->shape[d] > 0 ? (size_t)x->shape[d] : x->shape[d] == 0 ? 0 : 1;
    return n;
}

void fern__ir_replace_uses(fern_graph *g, int from, int to)
{
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] == from)
                g->nodes[i].in[k] = to;
    for (int k = 0; k < g->n_outputs; k++)
        if (g->outputs[k] == from)
            g->outputs[k] = to;
}

void fern__ir_compact(fern_graph *g, const char *dead)
{
    /* drop dead nodes */
    int w = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (dead && dead[i]) {
            node_free(&g->nodes[i]);
            continue;
        }
        g->nodes[w++] = g->nodes[i];
    }
    g->n_nodes = w;
    /* renumber values: params first, then node outputs in order */
    int *map = malloc((size_t)(g->n_values ? g->n_values : 1) * sizeof *map);
    ir_value *nv = malloc((size_t)(g->n_values ? g->n_values : 1) * sizeof *nv);
    if (!map || !nv) {
        free(map);
        free(nv);
        return;
    }
    for (int i = 0; i < g->n_values; i++)
        map[i] = -1;
    int n = 0;
    for (int p = 0; p < g->n_params; p++) {
        int old = g->params[p];
        nv[n] = g->values[old];
        nv[n].node = -1;
        nv[n].index = p;
        map[old] = n;
        g->params[p] = n++;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_out; k++) {
            int old = nd->out[k];
            nv[n] = g->values[old];
            nv[n].node = i;
            nv[n].index = k;
            map[old] = n;
            nd->out[k] = n++;
        }
    }
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0)
                g->nodes[i].in[k] = map[g->nodes[i].in[k]];
    for (int k = 0; k < g->n_outputs; k++)
        g->outputs[k] = map[g->outputs[k]];
    free(g->values);
    g->values = nv;
    g->n_values = n;
    g->cap_values = g->n_values ? g->n_values : 1;
    free(map);
}
