/* Elementwise fusion: trees of elementwise f32/f64 ops become one
 * fused_elementwise node (src/ops/fused.c) that computes them in a single
 * pass over memory, with intermediates kept in cache-sized tiles.
 *
 * A node can join a group when it is an op the fused program knows
 * (fused_program.h), computes in f32 or f64, has one output whose dims
 * are all known, and each operand is either a 0-d value (a 0-d constant
 * becomes a literal of the program; any other 0-d value an input) or a
 * value of the node's own dtype and exactly its output shape: nothing
 * broadcasts inside a group except 0-d scalars. Groups are grown from a
 * root (taken in reverse topological order) towards its operands: a
 * producer joins when it can, has the root's dtype and shape, and every
 * use of its output is inside the group (not a graph output), so each
 * intermediate disappears. A group needs at least two ops, at most
 * FERN_MAX_INPUTS distinct inputs, and its program text must fit in
 * FERN_FUSED_MAX_PROGRAM characters (the IR text form must read it back);
 * a longer chain becomes several fused nodes.
 *
 * The root node is rewritten in place into the fused node (same output
 * value), the other members are dropped. Returns the number of fused
 * nodes made. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fused_program.h"
#include "pass_util.h"

#define HEAD_MAX 96
#define LIT_MAX 40
#define REG_EST 4 /* "rNNN": programs never reach 1000 registers */

typedef struct {
    char cand;
    int arity;
    char head[HEAD_MAX];
    char lit[2][LIT_MAX]; /* literal text of 0-d constant operands, else "" */
    int len_est;          /* upper bound of the statement's text length     */
} node_info;

typedef struct {
    int *a;
    int n, cap;
} heap;

static int heap_push(heap *h, int v)
{
    if (h->n >= h->cap) {
        int nc = h->cap ? h->cap * 2 : 32;
        int *na = realloc(h->a, (size_t)nc * sizeof *na);
        if (!na)
            return -1;
        h->a = na;
        h->cap = nc;
    }
    int i = h->n++;
    h->a[i] = v;
    while (i > 0 && h->a[(i - 1) / 2] < h->a[i]) {
        int p = (i - 1) / 2, t = h->a[p];
        h->a[p] = h->a[i];
        h->a[i] = t;
        i = p;
    }
    return 0;
}

static int heap_pop(heap *h)
{
    int top = h->a[0];
    h->a[0] = h->a[--h->n];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && h->a[l] > h->a[m])
            m = l;
        if (r < h->n && h->a[r] > h->a[m])
            m = r;
        if (m == i)
            break;
        int t = h->a[m];
        h->a[m] = h->a[i];
        h->a[i] = t;
        i = m;
    }
    return top;
}

static int is_literal(const fern_graph *g, int v)
{
    const ir_node *p = fern__pu_producer(g, v);
    return p && p->kind == FERN_NODE_CONST && p->value && p->value->ndim == 0 && p->value->storage;
}

static int same_dims(const ir_value *a, const ir_value *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d] || a->shape[d] == -1)
            return 0;
    return 1;
}

static void classify(const fern_graph *g, int i, node_info *info)
{
    const ir_node *n = &g->nodes[i];
    memset(info, 0, sizeof *info);
    if (n->kind != FERN_NODE_OP || n->n_out != 1)
        return;
    int arity = fern__fused_op_head(n->op, n->attrs, info->head, sizeof info->head);
    if (arity < 1 || arity != n->n_in)
        return;
    const ir_value *y = &g->values[n->out[0]];
    if ((y->dtype != FERN_F32 && y->dtype != FERN_F64) || !fern__pu_known_dims(g, n->out[0]))
        return;
    int len = (int)strlen(info->head) + 1;
    for (int k = 0; k < n->n_in; k++) {
        int v = n->in[k];
        if (v < 0)
            return;
        const ir_value *x = &g->values[v];
        if (is_literal(g, v)) {
            double val = fern_tensor_get_flat(fern__pu_producer(g, v)->value, 0);
            len += 1 + fern__fused_literal(val, y->dtype, info->lit[k], LIT_MAX);
        } else if (x->ndim == 0 || (x->dtype == y->dtype && same_dims(x, y))) {
            len += 1 + REG_EST;
        } else {
            return;
        }
    }
    info->cand = 1;
    info->arity = arity;
    info->len_est = len;
}

typedef struct {
    fern_graph *g;
    node_info *info;
    int *uses;         /* per value: uses by node inputs                 */
    char *is_out;      /* per value: a graph output                      */
    int *group;        /* per node: group stamp (0 none)                 */
    int *seen;         /* per node: stamp when popped for this group     */
    int *in_uses;      /* per value: uses inside the current group       */
    int *ext;          /* per value: stamp if an external input now      */
    int *reg;          /* per value: register in the program being written */
    int *members;
    char *dead;
    heap h;
} fuser;

/* Distinct non-literal inputs of node p not already external. */
static int new_externals(fuser *f, int p, int stamp)
{
    const ir_node *n = &f->g->nodes[p];
    int c = 0;
    for (int k = 0; k < n->n_in; k++) {
        int v = n->in[k];
        if (is_literal(f->g, v) || f->ext[v] == stamp)
            continue;
        int dup = 0;
        for (int j = 0; j < k; j++)
            dup |= n->in[j] == v;
        c += !dup;
    }
    return c;
}

static int add_member(fuser *f, int p, int stamp, int *n_members, int *n_ext)
{
    fern_graph *g = f->g;
    const ir_node *n = &g->nodes[p];
    f->group[p] = stamp;
    f->members[(*n_members)++] = p;
    int y = n->out[0];
    if (f->ext[y] == stamp) { /* produced inside now */
        f->ext[y] = 0;
        (*n_ext)--;
    }
    const ir_value *yt = &g->values[y];
    for (int k = 0; k < n->n_in; k++) {
        int v = n->in[k];
        f->in_uses[v]++;
        if (is_literal(g, v))
            continue;
        if (f->ext[v] != stamp) {
            f->ext[v] = stamp;
            (*n_ext)++;
        }
        int q = g->values[v].node;
        if (q >= 0 && f->info[q].cand && !f->group[q] && f->seen[q] != stamp &&
            g->values[v].dtype == yt->dtype && same_dims(&g->values[v], yt)) {
            f->seen[q] = stamp;
            if (heap_push(&f->h, q))
                return -1;
        }
    }
    return 0;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Write the group's program and turn the root into the fused node. */
static int emit(fuser *f, int root, int n_members, int stamp)
{
    fern_graph *g = f->g;
    qsort(f->members, (size_t)n_members, sizeof *f->members, cmp_int);
    int ext[FERN_MAX_INPUTS], n_ext = 0;
    /* registers: external inputs in order of first use, then statements */
    for (int j = 0; j < n_members; j++) {
        const ir_node *n = &g->nodes[f->members[j]];
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            int q = g->values[v].node;
            if (is_literal(g, v) || (q >= 0 && f->group[q] == stamp) || f->ext[v] == -stamp)
                continue;
            if (n_ext >= FERN_MAX_INPUTS)
                return 0;
            f->ext[v] = -stamp;
            f->reg[v] = n_ext;
            ext[n_ext++] = v;
        }
    }
    if (n_ext == 0) /* all operands are literals: folding's business */
        return 0;
    char prog[FERN_FUSED_MAX_PROGRAM + 1];
    size_t u = 0;
    for (int j = 0; j < n_members; j++) {
        const ir_node *n = &g->nodes[f->members[j]];
        const node_info *in = &f->info[f->members[j]];
        f->reg[n->out[0]] = n_ext + j;
        int w = snprintf(prog + u, sizeof prog - u, "%s%s", j ? ";" : "", in->head);
        if (w < 0 || (size_t)w >= sizeof prog - u)
            return 0;
        u += (size_t)w;
        for (int k = 0; k < n->n_in; k++) {
            if (in->lit[k][0])
                w = snprintf(prog + u, sizeof prog - u, " %s", in->lit[k]);
            else
                w = snprintf(prog + u, sizeof prog - u, " r%d", f->reg[n->in[k]]);
            if (w < 0 || (size_t)w >= sizeof prog - u)
                return 0;
            u += (size_t)w;
        }
    }
    fern_attr attrs[2] = {fern__attr_str(prog), fern__attr_dtype(g->values[g->nodes[root].out[0]].dtype)};
    if (fern__pu_set_op(g, root, &fern__op_fused_elementwise, attrs, n_ext, ext))
        return 0;
    for (int j = 0; j < n_members; j++)
        if (f->members[j] != root)
            f->dead[f->members[j]] = 1;
    return 1;
}

int fern__pass_fuse(fern_graph *g)
{
    int nn = g->n_nodes, nv = g->n_values;
    fuser f = {.g = g};
    f.info = malloc((size_t)(nn ? nn : 1) * sizeof *f.info);
    f.uses = calloc((size_t)(nv ? nv : 1), sizeof *f.uses);
    f.is_out = calloc((size_t)(nv ? nv : 1), 1);
    f.group = calloc((size_t)(nn ? nn : 1), sizeof *f.group);
    f.seen = calloc((size_t)(nn ? nn : 1), sizeof *f.seen);
    f.in_uses = calloc((size_t)(nv ? nv : 1), sizeof *f.in_uses);
    f.ext = calloc((size_t)(nv ? nv : 1), sizeof *f.ext);
    f.reg = malloc((size_t)(nv ? nv : 1) * sizeof *f.reg);
    f.members = malloc((size_t)(nn ? nn : 1) * sizeof *f.members);
    f.dead = calloc((size_t)(nn ? nn : 1), 1);
    int made = 0, rc = 0;
    if (!f.info || !f.uses || !f.is_out || !f.group || !f.seen || !f.in_uses || !f.ext || !f.reg ||
        !f.members || !f.dead) {
        fern_set_error(FERN_ERR_NOMEM, "fuse: out of memory");
        rc = -1;
        goto out;
    }
    for (int v = 0; v < nv; v++)
        f.reg[v] = -1;
    for (int i = 0; i < nn; i++) {
        classify(g, i, &f.info[i]);
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0)
                f.uses[g->nodes[i].in[k]]++;
    }
    for (int k = 0; k < g->n_outputs; k++)
        f.is_out[g->outputs[k]] = 1;

    for (int root = nn - 1, stamp = 1; root >= 0; root--) {
        if (!f.info[root].cand || f.group[root])
            continue;
        stamp++;
        int n_members = 0, n_ext = 0, len = f.info[root].len_est;
        f.h.n = 0;
        if (add_member(&f, root, stamp, &n_members, &n_ext)) {
            rc = -1;
            break;
        }
        while (f.h.n > 0) {
            int p = heap_pop(&f.h);
            int y = g->nodes[p].out[0];
            if (f.is_out[y] || f.in_uses[y] != f.uses[y])
                continue;
            int ext_after = n_ext - (f.ext[y] == stamp) + new_externals(&f, p, stamp);
            if (ext_after > FERN_MAX_INPUTS || len + f.info[p].len_est > FERN_FUSED_MAX_PROGRAM)
                continue;
            len += f.info[p].len_est;
            if (add_member(&f, p, stamp, &n_members, &n_ext)) {
                rc = -1;
                break;
            }
        }
        /* reset the per-group use counts */
        for (int j = 0; j < n_members; j++) {
            const ir_node *n = &g->nodes[f.members[j]];
            for (int k = 0; k < n->n_in; k++)
                f.in_uses[n->in[k]] = 0;
        }
        if (rc)
            break;
        if (n_members < 2) {
            f.group[root] = 0;
            continue;
        }
        if (emit(&f, root, n_members, stamp)) {
            made++;
        } else {
            for (int j = 0; j < n_members; j++)
                f.group[f.members[j]] = 0;
        }
    }
    if (rc == 0 && made)
        fern__ir_compact(g, f.dead);
out:
    free(f.info);
    free(f.uses);
    free(f.is_out);
    free(f.group);
    free(f.seen);
    free(f.in_uses);
    free(f.ext);
    free(f.reg);
    free(f.members);
    free(f.dead);
    free(f.h.a);
    return rc ? -1 : made;
}
