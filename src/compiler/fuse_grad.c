/* Fusion of the gradient ops autodiff emits around max pooling of a relu
 * (conv -> relu -> max_pool2d, as in LeNet and VGG), so the backward pass
 * sweeps the large pre-pooling gradient once instead of three times:
 *
 *   relu_backward(max_pool2d_backward(y, g), y)
 *       -> max_pool2d_backward(y, g; relu=1)
 *     y is relu's output; the pooling's gradient lands at each window's
 *     argmax, whose value is the window's maximum, so relu's mask there is
 *     !(maximum <= 0): exact, NaN and ties included. Only when the pooled
 *     gradient has no other use (otherwise both would be computed).
 *
 *   sum(max_pool2d_backward(y, g; relu=1), axes including H and W)
 *       -> sum(relu_backward(g, max_pool2d(y)), the same axes)
 *     (a conv's bias gradient) every window passes its masked gy to exactly
 *     one element of its plane, so summing the planes equals summing the
 *     masked gy: a quarter of the data for 2x2 pooling. The max_pool2d node
 *     is the forward's again, which CSE then merges with it. The sum's
 *     order of additions changes (not bit for bit the unfused graph).
 *
 *   max_pool2d(relu(z)) -> relu(max_pool2d(z)), and
 *   max_pool2d_backward(relu(z), g; relu=1) -> max_pool2d_backward(z, g; relu=1)
 *     when those are all the uses of relu(z): relu is monotone, so it commutes
 *     with the maximum (NaN included; a window of -1 and -0 may give -0 for
 *     +0), and where the maximum is > 0 the argmax over z is the argmax over
 *     relu(z), while a window with maximum <= 0 is masked either way. relu
 *     then runs on the pooled tensor (a quarter of the data for 2x2).
 *
 * Runs in the main pipeline before CSE and DCE, which remove what the
 * rewrites leave unused. */
#include <stdlib.h>
#include <string.h>

#include "pass_util.h"

/* Uses of value v as a node input or graph output. */
static int use_count(const fern_graph *g, int v)
{
    int uses = 0;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            uses += g->nodes[i].in[k] == v;
    for (int k = 0; k < g->n_outputs; k++)
        uses += g->outputs[k] == v;
    return uses;
}

static int is_pool_bwd(const ir_node *p, int relu)
{
    return fern__pu_is_op(p, "max_pool2d_backward") && p->n_in == 2 && p->op->n_attrs == 5 &&
           p->attrs[4].i == relu;
}

/* relu_backward(max_pool2d_backward(y, g), y) at node i */
static int fold_relu(fern_graph *g, int i)
{
    const ir_node *n = &g->nodes[i];
    int a = n->in[0], y = n->out[0];
    const ir_node *p = fern__pu_producer(g, a);
    if (!is_pool_bwd(p, 0) || p->in[0] != n->in[1] || !fern__pu_same_type(g, y, a) ||
        use_count(g, a) != 1)
        return 0;
    fern_attr at[5];
    memcpy(at, p->attrs, sizeof at);
    at[4] = fern__attr_int(1);
    int in[2] = {p->in[0], p->in[1]};
    return fern__pu_set_op(g, i, p->op, at, 2, in) == 0;
}

/* sum(max_pool2d_backward(y, g; relu=1)) over H and W at node i */
static int pooled_sum(fern_graph *g, int i)
{
    const ir_node *n = &g->nodes[i];
    const ir_node *p = fern__pu_producer(g, n->in[0]);
    if (!is_pool_bwd(p, 1))
        return 0;
    const int nd = g->values[n->in[0]].ndim;
    const fern_attr *axes = &n->attrs[0];
    int has_h = axes->n == 0, has_w = axes->n == 0; /* no axes: all of them */
    for (int k = 0; k < axes->n; k++) {
        int64_t d = axes->ints[k] < 0 ? axes->ints[k] + nd : axes->ints[k];
        has_h |= d == nd - 2;
        has_w |= d == nd - 1;
    }
    if (!has_h || !has_w)
        return 0;
    const fern_op_def *pool = fern_op_find("max_pool2d"), *rb = fern_op_find("relu_backward");
    if (!pool || !rb || pool->n_attrs != 4)
        return 0;
    fern_attr pool_at[4], sum_at[8];
    memcpy(pool_at, p->attrs, sizeof pool_at);
    if (n->op->n_attrs > 8)
        return 0;
    memcpy(sum_at, n->attrs, (size_t)n->op->n_attrs * sizeof *sum_at);
    const fern_op_def *sum_op = n->op;
    int y = p->in[0], gy = p->in[1], m, masked;
    int had = fern__pu_err_begin();
    if (fern__ir_add_op_bound(g, pool, pool_at, 1, &y, 1, &m)) { /* n, p invalid from here */
        fern__pu_err_end(had);
        return 0;
    }
    int rin[2] = {gy, m};
    if (fern__ir_add_op_bound(g, rb, NULL, 2, rin, 1, &masked)) {
        fern__pu_err_end(had);
        return 0; /* the unused max_pool2d node goes with DCE */
    }
    return fern__pu_set_op(g, i, sum_op, sum_at, 1, &masked) == 0;
}

/* max_pool2d(relu(z)) at node i, with every use of relu(z) a max_pool2d of
 * the same pooling or a max_pool2d_backward(relu(z), g; relu=1) */
static int pool_before_relu(fern_graph *g, int i)
{
    const ir_node *n = &g->nodes[i];
    const int y = n->in[0];
    const ir_node *r = fern__pu_producer(g, y);
    if (!fern__pu_is_op(r, "relu") || r->n_in != 1 || n->op->n_attrs != 4)
        return 0;
    const int z = r->in[0];
    const fern_dtype dt = g->values[y].dtype;
    if ((dt != FERN_F32 && dt != FERN_F64) || !fern__pu_same_type(g, y, z))
        return 0;
    for (int k = 0; k < g->n_outputs; k++)
        if (g->outputs[k] == y)
            return 0;
    for (int j = 0; j < g->n_nodes; j++) {
        const ir_node *u = &g->nodes[j];
        for (int k = 0; k < u->n_in; k++) {
            if (u->in[k] != y)
                continue;
            /* n's op (max_pool2d) compares the pooling attributes only */
            int ok = (fern__pu_is_op(u, "max_pool2d") && u->n_in == 1 &&
                      fern__pu_attrs_equal(n->op, u->attrs, n->attrs)) ||
                     (is_pool_bwd(u, 1) && k == 0 && u->in[1] != y &&
                      fern__pu_attrs_equal(n->op, u->attrs, n->attrs));
            if (!ok)
                return 0;
        }
    }
    const fern_op_def *relu = r->op, *pool = n->op;
    fern_attr at[4];
    memcpy(at, n->attrs, sizeof at);
    int had = fern__pu_err_begin(), m;
    if (fern__ir_add_op_bound(g, pool, at, 1, &z, 1, &m)) { /* n, r invalid from here */
        fern__pu_err_end(had);
        return 0;
    }
    int changes = 0;
    for (int j = 0; j < g->n_nodes; j++) {
        ir_node *u = &g->nodes[j];
        if (u->n_in < 1 || u->in[0] != y)
            continue;
        if (fern__pu_is_op(u, "max_pool2d")) {
            changes += fern__pu_set_op(g, j, relu, NULL, 1, &m) == 0;
        } else {
            u->in[0] = z; /* the backward's argmax from z (same type) */
            changes++;
        }
    }
    return changes > 0;
}

int fern__pass_fuse_grad(fern_graph *g)
{
    int changes = 0;
    const int n0 = g->n_nodes;
    for (int i = 0; i < n0; i++) {
        const ir_node *n = &g->nodes[i];
        if (n->kind != FERN_NODE_OP || n->n_out != 1)
            continue;
        if (fern__pu_is_op(n, "relu_backward") && n->n_in == 2)
            changes += fold_relu(g, i);
        else if (fern__pu_is_op(n, "sum") && n->n_in == 1 && n->op->n_attrs >= 1)
            changes += pooled_sum(g, i);
        else if (fern__pu_is_op(n, "max_pool2d") && n->n_in == 1)
            changes += pool_before_relu(g, i);
    }
    if (g->n_nodes != n0 && fern__pu_toposort(g)) /* new nodes were appended */
        return -1;
    return changes;
}
