/* The tape. While recording, the dispatcher reports every op call; calls
 * that read a tracked tensor are appended and their outputs become tracked.
 * Tapes nest (each forwards records to the one it interrupted), and the
 * backward pass runs with this tape stopped but outer tapes recording: so a
 * gradient computed under an outer tape is differentiable again. */
#include <stdlib.h>
#include <string.h>

#include "autodiff_internal.h"

typedef struct mark {
    tape *t;
    int id;
    struct mark *next;
} mark;

struct tape {
    fern_dispatch_hooks saved;
    int recording;
    tape_entry *entries;
    int n_entries, cap_entries;
    fern_tensor **tracked; /* tensors carrying one of our marks (retained) */
    int n_tracked, cap_tracked;
    int n_ids;
};

static void free_marks(void *p)
{
    mark *m = p;
    while (m) {
        mark *n = m->next;
        free(m);
        m = n;
    }
}

static int id_of(const tape *t, const fern_tensor *x)
{
    if (!x)
        return -1;
    for (const mark *m = x->autograd; m; m = m->next)
        if (m->t == t)
            return m->id;
    return -1;
}

static int add_mark(tape *t, fern_tensor *x)
{
    int id = id_of(t, x);
    if (id >= 0)
        return id;
    if (x->autograd && x->autograd_free != free_marks)
        return -1; /* someone else's slot: should not happen */
    mark *m = malloc(sizeof *m);
    if (!m)
        return -1;
    if (t->n_tracked == t->cap_tracked) {
        int nc = t->cap_tracked ? t->cap_tracked * 2 : 64;
        fern_tensor **nt = realloc(t->tracked, (size_t)nc * sizeof *nt);
        if (!nt) {
            free(m);
            return -1;
        }
        t->tracked = nt;
        t->cap_tracked = nc;
    }
    m->t = t;
    m->id = t->n_ids++;
    m->next = x->autograd;
    x->autograd = m;
    x->autograd_free = free_marks;
    t->tracked[t->n_tracked++] = fern_retain(x);
    return m->id;
}

static void remove_mark(tape *t, fern_tensor *x)
{
    mark **pp = (mark **)&x->autograd;
    while (*pp) {
        if ((*pp)->t == t) {
            mark *dead = *pp;
            *pp = dead->next;
            free(dead);
            break;
        }
        pp = &(*pp)->next;
    }
    if (!x->autograd)
        x->autograd_free = NULL;
}

static tape_entry *new_entry(tape *t, int n_in, fern_tensor *const *in, int n_out,
                             fern_tensor *const *out)
{
    if (t->n_entries == t->cap_entries) {
        int nc = t->cap_entries ? t->cap_entries * 2 : 64;
        tape_entry *ne = realloc(t->entries, (size_t)nc * sizeof *ne);
        if (!ne)
            return NULL;
        t->entries = ne;
        t->cap_entries = nc;
    }
    tape_entry *e = &t->entries[t->n_entries];
    memset(e, 0, sizeof *e);
    e->n_in = n_in;
    e->n_out = n_out;
    e->in = calloc((size_t)(n_in ? n_in : 1), sizeof *e->in);
    e->out = calloc((size_t)n_out, sizeof *e->out);
    e->in_id = malloc((size_t)(n_in ? n_in : 1) * sizeof *e->in_id);
    e->out_id = malloc((size_t)n_out * sizeof *e->out_id);
    if (!e->in || !e->out || !e->in_id || !e->out_id) {
        free(e->in);
        free(e->out);
        free(e->in_id);
        free(e->out_id);
        return NULL;
    }
    for (int i = 0; i < n_in; i++) {
        e->in[i] = fern_retain(in[i]);
        e->in_id[i] = id_of(t, in[i]);
    }
    for (int k = 0; k < n_out; k++) {
        e->out[k] = fern_retain(out[k]);
        /* an op may hand back its input itself (contiguous of a contiguous
         * tensor): that is not a new value, its cotangent is the input's */
        e->out_id[k] = out[k] && id_of(t, out[k]) < 0 ? add_mark(t, out[k]) : -1;
    }
    t->n_entries++;
    return e;
}

static int any_tracked(const tape *t, int n, fern_tensor *const *in)
{
    for (int i = 0; i < n; i++)
        if (id_of(t, in[i]) >= 0)
            return 1;
    return 0;
}

static void on_op(const fern_op_call *c, void *ud)
{
    tape *t = ud;
    if (t->recording && !(c->op->flags & FERN_OPF_NONDIFF) && any_tracked(t, c->n_in, c->in)) {
        tape_entry *e = new_entry(t, c->n_in, c->in, c->n_out, c->out);
        if (e && c->op->n_attrs) {
            e->attrs = malloc((size_t)c->op->n_attrs * sizeof *e->attrs);
            if (e->attrs)
                memcpy(e->attrs, c->attrs, (size_t)c->op->n_attrs * sizeof *e->attrs);
        }
        if (e)
            e->op = c->op;
    }
    if (t->saved.record)
        t->saved.record(c, t->saved.record_ud);
}

static void on_node(const fern_struct_call *s, void *ud)
{
    tape *t = ud;
    if (t->recording && any_tracked(t, s->n_in, s->in)) {
        entry_backward bw = s->kind == FERN_NODE_COND    ? fern__cond_backward
                            : s->kind == FERN_NODE_WHILE ? fern__while_backward
                                                         : fern__scan_backward;
        tape_entry *e = fern__tape_record_custom(t, s->n_in, s->in, s->n_out, s->out, bw);
        if (e) {
            e->kind = s->kind;
            e->sub[0] = s->sub[0];
            e->sub[1] = s->sub[1];
            e->n_carry = s->n_carry;
        }
    }
    if (t->saved.record_node)
        t->saved.record_node(s, t->saved.record_ud);
}

tape_entry *fern__tape_record_custom(tape *t, int n_in, fern_tensor *const *in, int n_out,
                                     fern_tensor *const *out, entry_backward bw)
{
    if (!any_tracked(t, n_in, in))
        return NULL;
    tape_entry *e = new_entry(t, n_in, in, n_out, out);
    if (e)
        e->backward = bw;
    return e;
}

tape *fern__tape_begin(void)
{
    tape *t = calloc(1, sizeof *t);
    if (!t) {
        fern_set_error(FERN_ERR_NOMEM, "autodiff: out of memory");
        return NULL;
    }
    t->saved = fern__get_dispatch_hooks();
    fern_dispatch_hooks h = t->saved;
    h.record = on_op;
    h.record_node = on_node;
    h.record_ud = t;
    fern__set_dispatch_hooks(h);
    t->recording = 1;
    return t;
}

int fern__tape_watch(tape *t, fern_tensor *x) { return add_mark(t, x); }

void fern__tape_end(tape *t)
{
    if (!t->recording)
        return;
    t->recording = 0;
    /* our hooks must be the current ones: tapes end in LIFO order */
    fern_dispatch_hooks cur = fern__get_dispatch_hooks();
    if (cur.record_ud == t) {
        cur.record = t->saved.record;
        cur.record_node = t->saved.record_node;
        cur.record_ud = t->saved.record_ud;
        fern__set_dispatch_hooks(cur);
    }
}

void fern__tape_free(tape *t)
{
    if (!t)
        return;
    fern__tape_end(t);
    for (int i = 0; i < t->n_entries; i++) {
        tape_entry *e = &t->entries[i];
        for (int k = 0; k < e->n_in; k++)
            fern_release(e->in[k]);
        for (int k = 0; k < e->n_out; k++)
            fern_release(e->out[k]);
        free(e->in);
        free(e->out);
        free(e->in_id);
        free(e->out_id);
        free(e->attrs);
    }
    for (int i = 0; i < t->n_tracked; i++) {
        remove_mark(t, t->tracked[i]);
        fern_release(t->tracked[i]);
    }
    free(t->entries);
    free(t->tracked);
    free(t);
}

static fern_tensor *accumulate(fern_tensor *acc, fern_tensor *g)
{
    if (!acc)
        return fern_retain(g);
    fern_tensor *s = fern_add(acc, g);
    fern_retain(s);
    fern_release(acc);
    return s;
}

static const char *entry_name(const tape_entry *e)
{
    if (e->op)
        return e->op->name;
    switch (e->kind) {
    case FERN_NODE_COND: return "cond";
    case FERN_NODE_WHILE: return "while_loop";
    case FERN_NODE_SCAN: return "scan";
    default: return "custom_vjp";
    }
}

fern_status fern__tape_backward(tape *t, int n_out, fern_tensor *const *outs,
                                fern_tensor *const *cots, int n_wrt, fern_tensor *const *wrt,
                                fern_tensor **grads)
{
    fern__tape_end(t);
    fern_tensor **cot = calloc((size_t)(t->n_ids ? t->n_ids : 1), sizeof *cot);
    if (!cot) {
        fern_set_error(FERN_ERR_NOMEM, "autodiff: out of memory");
        return FERN_ERR_NOMEM;
    }
    fern_status st = FERN_OK;
    /* the engine owns every reference below; rules' temporaries die with
     * a scope per entry */
    for (int k = 0; k < n_out; k++) {
        int id = id_of(t, outs[k]);
        if (id >= 0 && cots[k])
            cot[id] = accumulate(cot[id], cots[k]);
    }
    for (int i = t->n_entries - 1; i >= 0 && st == FERN_OK; i--) {
        tape_entry *e = &t->entries[i];
        fern_tensor *gouts[FERN_MAX_INPUTS * 2] = {0};
        int any = 0;
        for (int k = 0; k < e->n_out; k++)
            if (e->out_id[k] >= 0 && cot[e->out_id[k]]) {
                gouts[k] = cot[e->out_id[k]];
                any = 1;
            }
        if (!any)
            continue;
        fern_tensor *gins[FERN_MAX_INPUTS * 2] = {0};
        fern_scope_begin();
        int rc;
        if (e->op) {
            if (!e->op->grad) {
                char d[128];
                fern_set_error(FERN_ERR_UNSUPPORTED,
                               "autodiff: op '%s' has no gradient rule (input 0: %s); use "
                               "fern_stop_gradient if its gradient is not needed",
                               e->op->name, fern_tensor_desc(e->in[0], d, sizeof d));
                rc = -1;
            } else {
                fern_op_call c;
                memset(&c, 0, sizeof c);
                c.op = e->op;
                c.n_in = e->n_in;
                c.in = e->in;
                c.attrs = e->attrs;
                c.n_out = e->n_out;
                for (int k = 0; k < e->n_out; k++) {
                    c.out[k] = e->out[k];
                    fern__set_out(&c, k, e->out[k]->dtype, e->out[k]->ndim, e->out[k]->shape);
                }
                rc = e->op->grad(&c, gouts, gins);
            }
        } else {
            rc = e->backward(e, gouts, gins);
        }
        if (rc == 0) {
            for (int j = 0; j < e->n_in; j++) {
                if (!gins[j] || e->in_id[j] < 0)
                    continue;
                const fern_tensor *x = e->in[j];
                if (gins[j]->ndim != x->ndim ||
                    memcmp(gins[j]->shape, x->shape, (size_t)x->ndim * sizeof(int64_t))) {
                    char a[128], b[128];
                    fern_set_error(FERN_ERR_INTERNAL,
                                   "autodiff: the gradient rule of '%s' returned %s for input %d of %s",
                                   entry_name(e), fern_tensor_desc(gins[j], a, sizeof a), j,
                                   fern_tensor_desc(x, b, sizeof b));
                    rc = -1;
                    break;
                }
                cot[e->in_id[j]] = accumulate(cot[e->in_id[j]], gins[j]);
                if (!cot[e->in_id[j]])
                    rc = -1;
            }
        }
        fern_scope_end();
        if (rc) {
            if (fern_last_status() == FERN_OK)
                fern_set_error(FERN_ERR_INTERNAL, "autodiff: backward of '%s' failed", entry_name(e));
            st = fern_last_status();
        }
        /* this entry's output cotangents are no longer needed */
        for (int k = 0; k < e->n_out; k++)
            if (e->out_id[k] >= 0 && cot[e->out_id[k]]) {
                fern_release(cot[e->out_id[k]]);
                cot[e->out_id[k]] = NULL;
            }
    }
    for (int j = 0; j < n_wrt; j++) {
        grads[j] = NULL;
        if (st != FERN_OK)
            continue;
        int id = id_of(t, wrt[j]);
        if (id >= 0 && cot[id]) {
            grads[j] = fern_retain(cot[id]);
        } else {
            fern_scope_begin();
            fern_tensor *z = fern_zeros_like(wrt[j]);
            grads[j] = fern_retain(z);
            fern_scope_end();
            if (!grads[j])
                st = fern_last_status();
        }
    }
    for (int i = 0; i < t->n_ids; i++)
        fern_release(cot[i]);
    free(cot);
    if (st != FERN_OK)
        for (int j = 0; j < n_wrt; j++) {
            fern_release(grads[j]);
            grads[j] = NULL;
        }
    return st;
}

void fern__tapes_record_custom(int n_in, fern_tensor *const *in, int n_out,
                               fern_tensor *const *out, entry_backward bw, fern_fn *bwd)
{
    fern_dispatch_hooks h = fern__get_dispatch_hooks();
    while (h.record == on_op && h.record_ud) {
        tape *t = h.record_ud;
        if (t->recording) {
            tape_entry *e = fern__tape_record_custom(t, n_in, in, n_out, out, bw);
            if (e)
                e->custom_bwd = bwd;
        }
        h = t->saved;
    }
}
