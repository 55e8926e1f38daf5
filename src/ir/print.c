/* The IR's text form: printer. Values are numbered in order of definition
 * (parameters, then node outputs), so print(parse(print(g))) == print(g). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir_internal.h"

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} sbuf;

static void put(sbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    if (!b->buf) { /* never offset a NULL pointer, even by zero */
        b->buf = malloc(256);
        if (!b->buf) {
            b->failed = 1;
            return;
        }
        b->cap = 256;
        b->len = 0;
        b->buf[0] = '\0';
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = (b->cap + (size_t)n + 1) * 2;
        char *nb = realloc(b->buf, nc);
        if (!nb) {
            b->failed = 1;
            return;
        }
        b->buf = nb;
        b->cap = nc;
    }
}

static void put_type(sbuf *b, const fern_module *m, fern_dtype dt, int ndim, const int64_t *shape)
{
    put(b, "%s[", fern_dtype_name(dt));
    for (int d = 0; d < ndim; d++) {
        if (d)
            put(b, ",");
        if (FERN_DIM_IS_SYM(shape[d]))
            put(b, "%s", fern_module_symbol_name(m, FERN_DIM_SYM_INDEX(shape[d])));
        else if (shape[d] == -1)
            put(b, "?");
        else
            put(b, "%lld", (long long)shape[d]);
    }
    put(b, "]");
}

/* Shortest text that reads back to the same double. */
static void put_double(sbuf *b, double v)
{
    if (isnan(v)) {
        put(b, "nan");
        return;
    }
    if (isinf(v)) {
        put(b, v > 0 ? "inf" : "-inf");
        return;
    }
    char tmp[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    put(b, "%s", tmp);
}

static int attr_is_default(const fern_attr_spec *s, const fern_attr *a)
{
    switch (s->kind) {
    case FERN_ATTR_INT:
    case FERN_ATTR_DTYPE: return a->i == (int64_t)s->def;
    case FERN_ATTR_FLOAT: return a->f == s->def || (isnan(a->f) && isnan(s->def));
    case FERN_ATTR_STR:
        return (a->s == NULL && s->sdef == NULL) || (a->s && s->sdef && strcmp(a->s, s->sdef) == 0);
    default: return a->n == 0;
    }
}

static void put_attr(sbuf *b, const fern_attr *a)
{
    switch (a->kind) {
    case FERN_ATTR_INT: put(b, "%lld", (long long)a->i); break;
    case FERN_ATTR_FLOAT: put_double(b, a->f); break;
    case FERN_ATTR_DTYPE: put(b, "%s", fern_dtype_name((fern_dtype)a->i)); break;
    case FERN_ATTR_STR: put(b, "\"%s\"", a->s ? a->s : ""); break;
    case FERN_ATTR_INTS:
        put(b, "[");
        for (int i = 0; i < a->n; i++)
            put(b, i ? ",%lld" : "%lld", (long long)a->ints[i]);
        put(b, "]");
        break;
    case FERN_ATTR_FLOATS:
        put(b, "[");
        for (int i = 0; i < a->n; i++) {
            if (i)
                put(b, ",");
            put_double(b, a->floats[i]);
        }
        put(b, "]");
        break;
    }
}

static void put_const(sbuf *b, const fern_module *m, const fern_tensor *t)
{
    put_type(b, m, t->dtype, t->ndim, t->shape);
    put(b, " [");
    int64_t n = fern_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        if (i)
            put(b, ",");
        double v = fern_tensor_get_flat(t, i);
        if (fern_dtype_is_float(t->dtype))
            put_double(b, v);
        else
            put(b, "%lld", (long long)v);
    }
    put(b, "]");
}

static void print_graph(sbuf *b, const fern_graph *g)
{
    const fern_module *m = g->module;
    int *num = malloc((size_t)(g->n_values ? g->n_values : 1) * sizeof *num);
    if (!num) {
        b->failed = 1;
        return;
    }
    int next = 0;
    for (int i = 0; i < g->n_values; i++)
        num[i] = -1;
    put(b, "graph @%s(", g->name);
    for (int p = 0; p < g->n_params; p++) {
        int v = g->params[p];
        num[v] = next++;
        put(b, "%s%%%d: ", p ? ", " : "", num[v]);
        put_type(b, m, g->values[v].dtype, g->values[v].ndim, g->values[v].shape);
        if (g->is_capture[p])
            put(b, " capture");
    }
    put(b, ") -> (");
    for (int k = 0; k < g->n_outputs; k++) {
        const ir_value *v = &g->values[g->outputs[k]];
        if (k)
            put(b, ", ");
        put_type(b, m, v->dtype, v->ndim, v->shape);
    }
    put(b, ") {\n");
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        put(b, "  ");
        for (int k = 0; k < n->n_out; k++) {
            num[n->out[k]] = next++;
            put(b, k ? ", %%%d" : "%%%d", num[n->out[k]]);
        }
        static const char *kinds[] = {"", "call", "cond", "while", "scan", "const"};
        put(b, " = %s(", n->kind == FERN_NODE_OP ? n->op->name : kinds[n->kind]);
        for (int k = 0; k < n->n_in; k++) {
            if (k)
                put(b, ", ");
            if (n->in[k] < 0)
                put(b, "none");
            else
                put(b, "%%%d", num[n->in[k]]);
        }
        put(b, ")");
        int first = 1;
#define OPEN() (put(b, first ? " {" : ", "), first = 0)
        switch (n->kind) {
        case FERN_NODE_OP:
            for (int a = 0; a < n->op->n_attrs; a++) {
                if (attr_is_default(&n->op->attrs[a], &n->attrs[a]))
                    continue;
                OPEN();
                put(b, "%s=", n->op->attrs[a].name);
                put_attr(b, &n->attrs[a]);
            }
            break;
        case FERN_NODE_CALL: OPEN(); put(b, "fn=@%s", n->sub[0]->name); break;
        case FERN_NODE_COND:
            OPEN();
            put(b, "then=@%s, else=@%s", n->sub[0]->name, n->sub[1]->name);
            break;
        case FERN_NODE_WHILE:
            OPEN();
            put(b, "cond=@%s, body=@%s", n->sub[0]->name, n->sub[1]->name);
            break;
        case FERN_NODE_SCAN:
            OPEN();
            put(b, "body=@%s, carry=%d", n->sub[0]->name, n->n_carry);
            break;
        case FERN_NODE_CONST:
            OPEN();
            put(b, "value=");
            put_const(b, m, n->value);
            break;
        }
#undef OPEN
        if (!first)
            put(b, "}");
        put(b, "\n");
    }
    put(b, "  return");
    for (int k = 0; k < g->n_outputs; k++)
        put(b, k ? ", %%%d" : " %%%d", num[g->outputs[k]]);
    put(b, "\n}\n");
    free(num);
}

char *fern_graph_print(const fern_graph *g)
{
    sbuf b = {0};
    print_graph(&b, g);
    if (b.failed) {
        free(b.buf);
        fern_set_error(FERN_ERR_NOMEM, "graph_print: out of memory");
        return NULL;
    }
    return b.buf;
}

char *fern_module_print(const fern_module *m)
{
    sbuf b = {0};
    put(&b, "");
    for (int i = 0; i < m->n_graphs; i++) {
        if (i)
            put(&b, "\n");
        print_graph(&b, m->graphs[i]);
    }
    if (b.failed) {
        free(b.buf);
        fern_set_error(FERN_ERR_NOMEM, "module_print: out of memory");
        return NULL;
    }
    return b.buf;
}
