/* Cells: named parameters, buffers and children; train/eval mode; calls,
 * function values and summaries. */
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/runtime_internal.h"
#include "fern/nn.h"

typedef struct {
    char *name;
    fern_tensor *t;
} named_tensor;

typedef struct {
    char *name;
    fern_cell *c;
} named_cell;

struct fern_cell {
    atomic_int refcount;
    char type[48];
    fern_cell_forward_fn forward;
    int n_in, n_out;
    void *state;
    void (*free_state)(void *);
    int training;
    named_tensor *params, *buffers;
    int n_params, n_buffers, cap_params, cap_buffers;
    named_cell *children;
    int n_children, cap_children;
    fern_fn *fn;       /* lazily made: the cell as a function (keeps a compile cache) */
    char **name_cache; /* full names handed out by fern_cell_parameters/buffers */
    int n_name_cache;
};

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

fern_cell *fern_cell_new(const char *type_name, fern_cell_forward_fn forward, int n_in, int n_out,
                         void *state, void (*free_state)(void *))
{
    fern_cell *c = calloc(1, sizeof *c);
    if (!c) {
        if (free_state)
            free_state(state);
        fern_set_error(FERN_ERR_NOMEM, "cell_new: out of memory");
        return NULL;
    }
    atomic_init(&c->refcount, 1);
    snprintf(c->type, sizeof c->type, "%s", type_name ? type_name : "Cell");
    c->forward = forward;
    c->n_in = n_in;
    c->n_out = n_out;
    c->state = state;
    c->free_state = free_state;
    c->training = 1;
    return c;
}

fern_cell *fern_cell_retain(fern_cell *c)
{
    if (c)
        atomic_fetch_add(&c->refcount, 1);
    return c;
}

static void clear_name_cache(fern_cell *c)
{
    for (int i = 0; i < c->n_name_cache; i++)
        free(c->name_cache[i]);
    free(c->name_cache);
    c->name_cache = NULL;
    c->n_name_cache = 0;
}

void fern_cell_release(fern_cell *c)
{
    if (!c || atomic_fetch_sub(&c->refcount, 1) != 1)
        return;
    for (int i = 0; i < c->n_params; i++) {
        free(c->params[i].name);
        fern_release(c->params[i].t);
    }
    for (int i = 0; i < c->n_buffers; i++) {
        free(c->buffers[i].name);
        fern_release(c->buffers[i].t);
    }
    for (int i = 0; i < c->n_children; i++) {
        free(c->children[i].name);
        fern_cell_release(c->children[i].c);
    }
    free(c->params);
    free(c->buffers);
    free(c->children);
    clear_name_cache(c);
    fern_fn_release(c->fn);
    if (c->free_state)
        c->free_state(c->state);
    free(c);
}

void *fern_cell_state(const fern_cell *c) { return c ? c->state : NULL; }
const char *fern_cell_type(const fern_cell *c) { return c ? c->type : "NULL"; }
int fern_cell_n_in(const fern_cell *c) { return c->n_in; }
int fern_cell_n_out(const fern_cell *c) { return c->n_out; }

static int valid_name(const char *who, const char *name)
{
    if (!name || !*name || strchr(name, '.')) {
        fern_set_error(FERN_ERR_INVALID, "%s: invalid name '%s' (non-empty, no '.')", who,
                       name ? name : "(null)");
        return 0;
    }
    return 1;
}

static int name_taken(const fern_cell *c, const char *name)
{
    for (int i = 0; i < c->n_params; i++)
        if (!strcmp(c->params[i].name, name))
            return 1;
    for (int i = 0; i < c->n_buffers; i++)
        if (!strcmp(c->buffers[i].name, name))
            return 1;
    for (int i = 0; i < c->n_children; i++)
        if (!strcmp(c->children[i].name, name))
            return 1;
    return 0;
}

static fern_status add_named(fern_cell *c, const char *who, named_tensor **arr, int *n, int *cap,
                             const char *name, fern_tensor *t)
{
    if (!c || !t) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "%s: NULL cell or tensor", who);
        return FERN_ERR_INVALID;
    }
    if (!valid_name(who, name))
        return FERN_ERR_INVALID;
    if (name_taken(c, name)) {
        fern_set_error(FERN_ERR_INVALID, "%s: %s already has a member named '%s'", who, c->type, name);
        return FERN_ERR_INVALID;
    }
    if (fern_tensor_is_symbolic(t)) {
        fern_set_error(FERN_ERR_INVALID, "%s: '%s' must be a concrete tensor", who, name);
        return FERN_ERR_INVALID;
    }
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 4;
        named_tensor *na = realloc(*arr, (size_t)nc * sizeof *na);
        if (!na)
            return FERN_ERR_NOMEM;
        *arr = na;
        *cap = nc;
    }
    (*arr)[*n].name = dupstr(name);
    (*arr)[*n].t = fern_retain(t);
    (*n)++;
    return FERN_OK;
}

fern_status fern_cell_add_param(fern_cell *c, const char *name, fern_tensor *t)
{
    return add_named(c, "cell_add_param", &c->params, &c->n_params, &c->cap_params, name, t);
}

fern_status fern_cell_add_buffer(fern_cell *c, const char *name, fern_tensor *t)
{
    return add_named(c, "cell_add_buffer", &c->buffers, &c->n_buffers, &c->cap_buffers, name, t);
}

fern_status fern_cell_add_child(fern_cell *c, const char *name, fern_cell *child)
{
    if (!c || !child) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "cell_add_child: NULL cell");
        return FERN_ERR_INVALID;
    }
    if (!valid_name("cell_add_child", name))
        return FERN_ERR_INVALID;
    if (name_taken(c, name)) {
        fern_set_error(FERN_ERR_INVALID, "cell_add_child: %s already has a member named '%s'", c->type, name);
        return FERN_ERR_INVALID;
    }
    if (c->n_children == c->cap_children) {
        int nc = c->cap_children ? c->cap_children * 2 : 4;
        named_cell *na = realloc(c->children, (size_t)nc * sizeof *na);
        if (!na)
            return FERN_ERR_NOMEM;
        c->children = na;
        c->cap_children = nc;
    }
    c->children[c->n_children].name = dupstr(name);
    c->children[c->n_children].c = fern_cell_retain(child);
    c->n_children++;
    child->training = c->training;
    return FERN_OK;
}

fern_tensor *fern_cell_param(const fern_cell *c, const char *name)
{
    for (int i = 0; c && i < c->n_params; i++)
        if (!strcmp(c->params[i].name, name))
            return c->params[i].t;
    return NULL;
}

fern_tensor *fern_cell_buffer(const fern_cell *c, const char *name)
{
    for (int i = 0; c && i < c->n_buffers; i++)
        if (!strcmp(c->buffers[i].name, name))
            return c->buffers[i].t;
    return NULL;
}

fern_cell *fern_cell_child(const fern_cell *c, const char *name)
{
    for (int i = 0; c && i < c->n_children; i++)
        if (!strcmp(c->children[i].name, name))
            return c->children[i].c;
    return NULL;
}

fern_cell *fern_cell_child_at(const fern_cell *c, int i)
{
    return c && i >= 0 && i < c->n_children ? c->children[i].c : NULL;
}

int fern_cell_n_children(const fern_cell *c) { return c ? c->n_children : 0; }

/* Depth-first walk collecting members; full names go to root's cache. */
typedef struct {
    fern_cell *root;
    int buffers;
    fern_tensor **out;
    const char **names;
    int cap, n;
} walk;

static void collect(walk *w, const fern_cell *c, const char *prefix)
{
    const named_tensor *arr = w->buffers ? c->buffers : c->params;
    int n = w->buffers ? c->n_buffers : c->n_params;
    for (int i = 0; i < n; i++) {
        if (w->n < w->cap) {
            size_t len = strlen(prefix) + strlen(arr[i].name) + 2;
            char *full = malloc(len);
            char **nc = realloc(w->root->name_cache, (size_t)(w->root->n_name_cache + 1) * sizeof *nc);
            if (full && nc) {
                snprintf(full, len, "%s%s%s", prefix, *prefix ? "." : "", arr[i].name);
                w->root->name_cache = nc;
                nc[w->root->n_name_cache++] = full;
                if (w->names)
                    w->names[w->n] = full;
            } else {
                free(full);
                if (nc)
                    w->root->name_cache = nc;
                if (w->names)
                    w->names[w->n] = arr[i].name;
            }
            if (w->out)
                w->out[w->n] = arr[i].t;
        }
        w->n++;
    }
    for (int i = 0; i < c->n_children; i++) {
        size_t len = strlen(prefix) + strlen(c->children[i].name) + 2;
        char *sub = malloc(len);
        if (!sub)
            continue;
        snprintf(sub, len, "%s%s%s", prefix, *prefix ? "." : "", c->children[i].name);
        collect(w, c->children[i].c, sub);
        free(sub);
    }
}

static int members(const fern_cell *c, int buffers, fern_tensor **out, const char **names, int cap)
{
    if (!c)
        return 0;
    fern_cell *root = (fern_cell *)c;
    if (cap > 0)
        clear_name_cache(root);
    walk w = {root, buffers, out, names, cap, 0};
    collect(&w, c, "");
    return w.n;
}

int fern_cell_parameters(const fern_cell *c, fern_tensor **params, const char **names, int cap)
{
    return members(c, 0, params, names, cap);
}

int fern_cell_buffers(const fern_cell *c, fern_tensor **bufs, const char **names, int cap)
{
    return members(c, 1, bufs, names, cap);
}

fern_tensor *fern_cell_find(const fern_cell *c, const char *full_name)
{
    if (!c || !full_name)
        return NULL;
    const char *dot = strchr(full_name, '.');
    if (!dot) {
        fern_tensor *t = fern_cell_param(c, full_name);
        return t ? t : fern_cell_buffer(c, full_name);
    }
    char head[256];
    size_t n = (size_t)(dot - full_name);
    if (n >= sizeof head)
        return NULL;
    memcpy(head, full_name, n);
    head[n] = '\0';
    return fern_cell_find(fern_cell_child(c, head), dot + 1);
}

int64_t fern_cell_param_count(const fern_cell *c)
{
    if (!c)
        return 0;
    int64_t n = 0;
    for (int i = 0; i < c->n_params; i++)
        n += fern_tensor_numel(c->params[i].t);
    for (int i = 0; i < c->n_children; i++)
        n += fern_cell_param_count(c->children[i].c);
    return n;
}

void fern_cell_set_training(fern_cell *c, int training)
{
    if (!c)
        return;
    /* graphs are traced for one mode (dropout, batch norm): drop them */
    if (c->fn && c->training != (training != 0))
        fern__fn_free_cache(c->fn);
    c->training = training != 0;
    for (int i = 0; i < c->n_children; i++)
        fern_cell_set_training(c->children[i].c, training);
}

int fern_cell_training(const fern_cell *c) { return c ? c->training : 0; }

fern_status fern_cell_call(fern_cell *c, int n_in, fern_tensor *const *in, int n_out,
                           fern_tensor **out)
{
    for (int k = 0; k < n_out; k++)
        out[k] = NULL;
    if (!c) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "cell_call: cell is NULL");
        return fern_last_status();
    }
    fern_fn *f = fern_cell_as_fn(c);
    if (!f)
        return fern_last_status();
    return fern_call(f, n_in, in, n_out, out);
}

fern_tensor *fern_cell_call1(fern_cell *c, fern_tensor *x)
{
    fern_tensor *out = NULL;
    if (fern_cell_call(c, 1, &x, 1, &out) != FERN_OK)
        return NULL;
    return out;
}

static int cell_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    fern_cell *c = ud;
    return c->forward(c, c->n_in, in, c->n_out, out);
}

fern_fn *fern_cell_as_fn(fern_cell *c)
{
    if (!c)
        return NULL;
    if (!c->forward) {
        fern_set_error(FERN_ERR_INVALID, "%s has no forward function", c->type);
        return NULL;
    }
    if (!c->fn) {
        /* the fn does not own the cell (the cell owns the fn): no cycle */
        c->fn = fern_fn_new(cell_body, c, c->n_in, c->n_out);
        if (c->fn)
            fern_fn_set_name(c->fn, c->type);
    }
    return c->fn;
}

/* ---- summary -------------------------------------------------------------- */

static void summary_rec(const fern_cell *c, const char *prefix, int depth, FILE *out, int64_t *total,
                        int64_t *trainable_bytes)
{
    fprintf(out, "%-40s %-26s", *prefix ? prefix : "(root)", c->type);
    int64_t own = 0;
    for (int i = 0; i < c->n_params; i++)
        own += fern_tensor_numel(c->params[i].t);
    fprintf(out, " %12" PRId64 "\n", own);
    for (int i = 0; i < c->n_params; i++) {
        char d[96], name[640];
        snprintf(name, sizeof name, "%.300s%s%.300s", prefix, *prefix ? "." : "", c->params[i].name);
        fprintf(out, "  %-38s %-26s %12" PRId64 "\n", name,
                fern_tensor_desc(c->params[i].t, d, sizeof d), fern_tensor_numel(c->params[i].t));
        *trainable_bytes += (int64_t)fern_tensor_nbytes(c->params[i].t);
    }
    *total += own;
    for (int i = 0; i < c->n_children; i++) {
        char sub[640];
        snprintf(sub, sizeof sub, "%.300s%s%.300s", prefix, *prefix ? "." : "", c->children[i].name);
        summary_rec(c->children[i].c, sub, depth + 1, out, total, trainable_bytes);
    }
}

void fern_cell_summary(const fern_cell *c, FILE *out)
{
    if (!c || !out)
        return;
    fprintf(out, "%-40s %-26s %12s\n", "name", "type / shape", "params");
    fprintf(out, "%.*s\n", 80, "--------------------------------------------------------------------------------");
    int64_t total = 0, bytes = 0;
    summary_rec(c, "", 0, out, &total, &bytes);
    fprintf(out, "%.*s\n", 80, "--------------------------------------------------------------------------------");
    fprintf(out, "total parameters: %" PRId64 " (%.2f MB)\n", total, (double)bytes / 1e6);
}

/* ---- Sequential ------------------------------------------------------------ */

static int seq_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    fern_tensor *x = in[0];
    for (int i = 0; i < self->n_children && x; i++)
        x = fern_cell_call1(self->children[i].c, x);
    out[0] = x;
    return x ? 0 : -1;
}

fern_cell *fern_sequential(int n, fern_cell *const *cells)
{
    fern_cell *s = fern_cell_new("Sequential", seq_forward, 1, 1, NULL, NULL);
    for (int i = 0; s && i < n; i++)
        if (fern_sequential_append(s, cells[i]) != FERN_OK) {
            fern_cell_release(s);
            return NULL;
        }
    return s;
}

fern_status fern_sequential_append(fern_cell *seq, fern_cell *c)
{
    if (!seq || strcmp(seq->type, "Sequential") != 0) {
        fern_set_error(FERN_ERR_INVALID, "sequential_append: not a Sequential");
        return FERN_ERR_INVALID;
    }
    if (c && (c->n_in != 1 || c->n_out != 1)) {
        fern_set_error(FERN_ERR_INVALID, "sequential_append: %s takes %d inputs and returns %d outputs; "
                       "Sequential needs single-input single-output cells", c->type, c->n_in, c->n_out);
        return FERN_ERR_INVALID;
    }
    char name[16];
    snprintf(name, sizeof name, "%d", seq->n_children);
    return fern_cell_add_child(seq, name, c);
}

/* ---- initializers ----------------------------------------------------------- */

static fern_status fill_with(fern_tensor *t, fern_tensor *v)
{
    if (!v)
        return fern_last_status();
    return fern_tensor_assign(t, v);
}

static fern_status init_check(const char *who, fern_tensor *t)
{
    if (!t || fern_tensor_is_symbolic(t)) {
        fern_set_error(FERN_ERR_INVALID, "%s: need a concrete tensor", who);
        return FERN_ERR_INVALID;
    }
    return FERN_OK;
}

#define WITH_SCOPE(expr)                                                                           \
    do {                                                                                           \
        fern_scope_begin();                                                                        \
        fern_status st_ = fill_with(t, (expr));                                                    \
        fern_scope_end();                                                                          \
        return st_;                                                                                \
    } while (0)

fern_status fern_init_constant(fern_tensor *t, double value)
{
    if (init_check("init_constant", t))
        return FERN_ERR_INVALID;
    WITH_SCOPE(fern_full_like(t, value));
}

fern_status fern_init_zeros(fern_tensor *t) { return fern_init_constant(t, 0.0); }
fern_status fern_init_ones(fern_tensor *t) { return fern_init_constant(t, 1.0); }

fern_status fern_init_normal(fern_tensor *t, double mean, double std)
{
    if (init_check("init_normal", t))
        return FERN_ERR_INVALID;
    WITH_SCOPE(fern_rand_normal(fern_tensor_dtype(t), fern_tensor_ndim(t), fern_tensor_shape(t), mean, std));
}

fern_status fern_init_uniform(fern_tensor *t, double low, double high)
{
    if (init_check("init_uniform", t))
        return FERN_ERR_INVALID;
    WITH_SCOPE(fern_rand_uniform(fern_tensor_dtype(t), fern_tensor_ndim(t), fern_tensor_shape(t), low, high));
}

fern_status fern_init_truncated_normal(fern_tensor *t, double mean, double std, double a, double b)
{
    if (init_check("init_truncated_normal", t))
        return FERN_ERR_INVALID;
    WITH_SCOPE(fern_rand_truncated_normal(fern_tensor_dtype(t), fern_tensor_ndim(t), fern_tensor_shape(t),
                                          mean, std, a, b));
}

/* torch.nn.init._calculate_fan_in_and_fan_out */
static int fans(const char *who, const fern_tensor *t, double *fan_in, double *fan_out)
{
    int nd = fern_tensor_ndim(t);
    if (nd < 2) {
        fern_set_error(FERN_ERR_INVALID, "%s: fan in/out need a tensor with at least 2 dims", who);
        return -1;
    }
    const int64_t *s = fern_tensor_shape(t);
    double rf = 1;
    for (int d = 2; d < nd; d++)
        rf *= (double)s[d];
    *fan_in = (double)s[1] * rf;
    *fan_out = (double)s[0] * rf;
    return 0;
}

fern_status fern_init_xavier_uniform(fern_tensor *t, double gain)
{
    double fi, fo;
    if (init_check("init_xavier_uniform", t) || fans("init_xavier_uniform", t, &fi, &fo))
        return FERN_ERR_INVALID;
    double a = gain * sqrt(6.0 / (fi + fo));
    return fern_init_uniform(t, -a, a);
}

fern_status fern_init_xavier_normal(fern_tensor *t, double gain)
{
    double fi, fo;
    if (init_check("init_xavier_normal", t) || fans("init_xavier_normal", t, &fi, &fo))
        return FERN_ERR_INVALID;
    return fern_init_normal(t, 0.0, gain * sqrt(2.0 / (fi + fo)));
}

fern_status fern_init_he_uniform(fern_tensor *t, double a)
{
    double fi, fo;
    if (init_check("init_he_uniform", t) || fans("init_he_uniform", t, &fi, &fo))
        return FERN_ERR_INVALID;
    double bound = sqrt(2.0 / (1 + a * a)) * sqrt(3.0 / fi);
    return fern_init_uniform(t, -bound, bound);
}

fern_status fern_init_he_normal(fern_tensor *t, double a)
{
    double fi, fo;
    if (init_check("init_he_normal", t) || fans("init_he_normal", t, &fi, &fo))
        return FERN_ERR_INVALID;
    return fern_init_normal(t, 0.0, sqrt(2.0 / (1 + a * a)) / sqrt(fi));
}
