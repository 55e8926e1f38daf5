/* The registry: the families' op lists, looked up by name, and the generic
 * by-name call used by graph executors, importers and the test harness. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_def.h"

static const fern_op_def *const *const families[] = {
    fern_ops_creation, fern_ops_random, fern_ops_unary, fern_ops_binary, fern_ops_reduce,
    fern_ops_matmul,   fern_ops_conv,   fern_ops_pool,  fern_ops_norm,   fern_ops_nn,
    fern_ops_loss,     fern_ops_view,   fern_ops_index, fern_ops_sort,  fern_ops_fused, fern_ops_state,
    fern_ops_activation_grad, fern_ops_linear, fern_ops_optim,
};

static const fern_op_def **sorted_ops;
static int n_ops;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int cmp_op(const void *a, const void *b)
{
    return strcmp((*(const fern_op_def *const *)a)->name, (*(const fern_op_def *const *)b)->name);
}

static void build(void)
{
    int n = 0;
    for (size_t f = 0; f < sizeof families / sizeof *families; f++)
        for (int i = 0; families[f][i]; i++)
            n++;
    sorted_ops = malloc((size_t)(n ? n : 1) * sizeof *sorted_ops);
    if (!sorted_ops)
        return;
    for (size_t f = 0; f < sizeof families / sizeof *families; f++)
        for (int i = 0; families[f][i]; i++)
            sorted_ops[n_ops++] = families[f][i];
    qsort(sorted_ops, (size_t)n_ops, sizeof *sorted_ops, cmp_op);
}

__attribute__((destructor)) static void free_registry(void) { free(sorted_ops); }

int fern_op_count(void)
{
    pthread_once(&once, build);
    return n_ops;
}

const fern_op_def *fern_op_at(int i)
{
    pthread_once(&once, build);
    return i >= 0 && i < n_ops ? sorted_ops[i] : NULL;
}

const fern_op_def *fern_op_find(const char *name)
{
    pthread_once(&once, build);
    int lo = 0, hi = n_ops - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(name, sorted_ops[mid]->name);
        if (c == 0)
            return sorted_ops[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *fern_op_name(const fern_op_def *op) { return op ? op->name : NULL; }

static const char *attr_kind_name(fern_attr_kind k)
{
    static const char *names[] = {"int", "float", "ints", "floats", "str", "dtype"};
    return (unsigned)k < 6 ? names[k] : "?";
}

char *fern_op_describe(const fern_op_def *op, char *buf, size_t n)
{
    size_t u = 0;
#define PUT(...) (u += (size_t)snprintf(buf + u, u < n ? n - u : 0, __VA_ARGS__))
    PUT("%-22s in=", op->name);
    if (op->n_inputs < 0)
        PUT("n");
    else
        PUT("%d", op->n_inputs);
    if (op->n_optional)
        PUT("(%d opt)", op->n_optional);
    PUT(" out=%d  dtypes=", op->n_outputs);
    uint32_t m = op->dtypes;
    if (op->flags & FERN_OPF_HALF_VIA_F32)
        m |= FERN_DT_HALF;
    int first = 1;
    for (int d = 0; d < FERN_DTYPE_COUNT; d++)
        if (m & FERN_DT(d)) {
            PUT("%s%s", first ? "" : ",", fern_dtype_name((fern_dtype)d));
            first = 0;
        }
    PUT("  backends=");
    first = 1;
    for (int d = 0; d < FERN_DEVICE_COUNT; d++)
        if (op->kernel[d]) {
            PUT("%s%s", first ? "" : ",", fern_device_name((fern_device)d));
            first = 0;
        }
    PUT("  grad=%s", op->flags & FERN_OPF_NONDIFF ? "none" : op->grad ? "yes" : "pending");
    if (op->n_attrs) {
        PUT("  attrs=");
        for (int i = 0; i < op->n_attrs; i++)
            PUT("%s%s:%s", i ? "," : "", op->attrs[i].name, attr_kind_name(op->attrs[i].kind));
    }
#undef PUT
    return buf;
}

/* Fill the schema-ordered attrs from named ones, with defaults. */
int fern__bind_attrs(const fern_op_def *op, int n_attrs, const char *const *names,
                      const fern_attr *given, fern_attr *bound)
{
    for (int i = 0; i < op->n_attrs; i++) {
        const fern_attr_spec *s = &op->attrs[i];
        memset(&bound[i], 0, sizeof bound[i]);
        bound[i].kind = s->kind;
        switch (s->kind) {
        case FERN_ATTR_INT:
        case FERN_ATTR_DTYPE: bound[i].i = (int64_t)s->def; bound[i].n = 1; break;
        case FERN_ATTR_FLOAT: bound[i].f = s->def; bound[i].n = 1; break;
        case FERN_ATTR_STR: bound[i].s = s->sdef; bound[i].n = 1; break;
        default: break;
        }
    }
    for (int k = 0; k < n_attrs; k++) {
        int found = -1;
        for (int i = 0; i < op->n_attrs; i++)
            if (strcmp(names[k], op->attrs[i].name) == 0)
                found = i;
        if (found < 0) {
            fern_set_error(FERN_ERR_INVALID, "%s: unknown attribute '%s'", op->name, names[k]);
            return -1;
        }
        fern_attr a = given[k];
        fern_attr_kind want = op->attrs[found].kind;
        if (a.kind == FERN_ATTR_INT && want == FERN_ATTR_FLOAT) {
            a.kind = FERN_ATTR_FLOAT;
            a.f = (double)a.i;
        } else if (a.kind == FERN_ATTR_INT && want == FERN_ATTR_DTYPE) {
            a.kind = FERN_ATTR_DTYPE;
        } else if (a.kind != want) {
            fern_set_error(FERN_ERR_INVALID, "%s: attribute '%s' must be %s, got %s", op->name,
                           names[k], attr_kind_name(want), attr_kind_name(a.kind));
            return -1;
        }
        bound[found] = a;
    }
    return 0;
}

fern_status fern_op_invoke(const char *name, int n_in, fern_tensor *const *in, int n_attrs,
                           const char *const *attr_names, const fern_attr *attrs, int n_out,
                           fern_tensor **out)
{
    const fern_op_def *op = name ? fern_op_find(name) : NULL;
    if (!op) {
        fern_set_error(FERN_ERR_INVALID, "op_invoke: no op named '%s' (see `fern ops`)",
                       name ? name : "(null)");
        return FERN_ERR_INVALID;
    }
    fern_attr bound[32];
    if (op->n_attrs > 32) {
        fern_set_error(FERN_ERR_INTERNAL, "%s: too many attributes", op->name);
        return FERN_ERR_INTERNAL;
    }
    if (fern__bind_attrs(op, n_attrs, attr_names, attrs, bound))
        return fern_last_status();
    if (op->flags & FERN_OPF_RANDOM) {
        /* By-name calls of random ops draw from the thread's generator
         * unless the caller pinned seed/offset explicitly. */
        int pinned = 0;
        for (int k = 0; k < n_attrs; k++)
            if (strcmp(attr_names[k], "seed") == 0)
                pinned = 1;
        if (!pinned) {
            uint64_t seed, offset;
            fern__rng_next(&seed, &offset);
            for (int i = 0; i < op->n_attrs; i++) {
                if (strcmp(op->attrs[i].name, "seed") == 0)
                    bound[i].i = (int64_t)seed;
                if (strcmp(op->attrs[i].name, "offset") == 0)
                    bound[i].i = (int64_t)offset;
            }
        }
    }
    if (fern__op_run(op, n_in, in, bound, n_out, out))
        return fern_last_status() ? fern_last_status() : FERN_ERR_INTERNAL;
    return FERN_OK;
}
