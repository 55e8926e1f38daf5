/* The IR's text form: parser. Graphs may be referenced before they are
 * defined; each is parsed on first use, so structured nodes can take their
 * output types from the bodies. Errors give the line and column. */
#include <ctype.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir_internal.h"

typedef struct {
    char name[64];
    int value;
} name_slot;

typedef struct {
    const char *text;
    const char *p;
    fern_module *m;
    jmp_buf fail;
    /* graphs found by the pre-scan */
    int n_graphs;
    const char **graph_at; /* text position after "graph @name" */
    char *state;           /* 0 unparsed, 1 parsing, 2 done    */
    /* value names of the graph being parsed (open addressing) */
    name_slot *names;
    int cap_names, n_names;
    /* tables of the graphs whose parsing was interrupted by a nested one */
    name_slot *saved_names[64];
    int saved_cap[64], saved_count[64];
    int n_saved;
    fern_tensor *pending_const; /* released if parsing fails */
} parser;

static void fail(parser *ps, const char *fmt, const char *what)
{
    int line = 1, col = 1;
    for (const char *q = ps->text; q < ps->p; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char msg[512];
    snprintf(msg, sizeof msg, fmt, what);
    fern_clear_error(); /* the parse position matters more than a nested error */
    fern_set_error(FERN_ERR_INVALID, "ir parse error at line %d, column %d: %s", line, col, msg);
    longjmp(ps->fail, 1);
}

static void skip(parser *ps)
{
    for (;;) {
        while (isspace((unsigned char)*ps->p))
            ps->p++;
        if (*ps->p == '#' || (ps->p[0] == '/' && ps->p[1] == '/')) {
            while (*ps->p && *ps->p != '\n')
                ps->p++;
            continue;
        }
        return;
    }
}

static int accept(parser *ps, const char *tok)
{
    skip(ps);
    size_t n = strlen(tok);
    if (strncmp(ps->p, tok, n) != 0)
        return 0;
    if (isalpha((unsigned char)tok[n - 1]) && (isalnum((unsigned char)ps->p[n]) || ps->p[n] == '_'))
        return 0;
    ps->p += n;
    return 1;
}

static void expect(parser *ps, const char *tok)
{
    if (!accept(ps, tok))
        fail(ps, "expected '%s'", tok);
}

static void ident(parser *ps, char *out, size_t n)
{
    skip(ps);
    size_t i = 0;
    if (!(isalnum((unsigned char)*ps->p) || *ps->p == '_'))
        fail(ps, "expected a name%s", "");
    while (isalnum((unsigned char)*ps->p) || *ps->p == '_' || *ps->p == '.') {
        if (i + 1 < n)
            out[i++] = *ps->p;
        ps->p++;
    }
    out[i] = '\0';
}

static int64_t integer(parser *ps)
{
    skip(ps);
    char *end;
    long long v = strtoll(ps->p, &end, 10);
    if (end == ps->p)
        fail(ps, "expected an integer%s", "");
    ps->p = end;
    return v;
}

static double number(parser *ps)
{
    skip(ps);
    char *end;
    double v = strtod(ps->p, &end);
    if (end == ps->p)
        fail(ps, "expected a number%s", "");
    ps->p = end;
    return v;
}

/* ---- value names ------------------------------------------------------- */

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

static void names_reset(parser *ps)
{
    free(ps->names);
    ps->n_names = 0;
    ps->cap_names = 256;
    ps->names = calloc((size_t)ps->cap_names, sizeof *ps->names);
}

static name_slot *name_find(parser *ps, const char *name)
{
    unsigned i = hash(name) & (unsigned)(ps->cap_names - 1);
    while (ps->names[i].name[0] && strcmp(ps->names[i].name, name) != 0)
        i = (i + 1) & (unsigned)(ps->cap_names - 1);
    return &ps->names[i];
}

static void name_define(parser *ps, const char *name, int value)
{
    if (2 * (ps->n_names + 1) > ps->cap_names) { /* grow and rehash */
        name_slot *old = ps->names;
        unsigned oc = (unsigned)ps->cap_names;
        if (oc > (1u << 26))
            fail(ps, "too many values%s", "");
        ps->cap_names = (int)(oc * 2);
        ps->names = calloc((size_t)oc * 2, sizeof *ps->names);
        if (!ps->names) {
            ps->names = old;
            fail(ps, "out of memory%s", "");
        }
        for (unsigned i = 0; i < oc; i++)
            if (old[i].name[0])
                *name_find(ps, old[i].name) = old[i];
        free(old);
    }
    name_slot *s = name_find(ps, name);
    if (s->name[0])
        fail(ps, "value %%%s is defined twice", name);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->value = value;
    ps->n_names++;
}

static void value_name(parser *ps, char *out, size_t n)
{
    expect(ps, "%");
    ident(ps, out, n);
}

static int value_ref(parser *ps)
{
    char name[64];
    value_name(ps, name, sizeof name);
    name_slot *s = name_find(ps, name);
    if (!s->name[0])
        fail(ps, "value %%%s is not defined", name);
    return s->value;
}

/* ---- types ------------------------------------------------------------- */

static int parse_type(parser *ps, fern_dtype *dt, int64_t *shape)
{
    char name[32];
    ident(ps, name, sizeof name);
    if (fern_dtype_from_name(name, dt))
        fail(ps, "unknown dtype '%s'", name);
    expect(ps, "[");
    int nd = 0;
    skip(ps);
    if (*ps->p != ']') {
        do {
            if (nd >= FERN_MAX_DIMS)
                fail(ps, "more than %s dimensions", "8");
            skip(ps);
            if (accept(ps, "?")) {
                shape[nd++] = -1;
            } else if (isdigit((unsigned char)*ps->p)) {
                shape[nd++] = integer(ps);
            } else {
                char sym[64];
                ident(ps, sym, sizeof sym);
                shape[nd++] = FERN_DIM_SYM(fern_module_symbol(ps->m, sym));
            }
        } while (accept(ps, ","));
    }
    expect(ps, "]");
    return nd;
}

/* ---- graphs ------------------------------------------------------------ */

static fern_graph *parse_graph(parser *ps, int idx);

static fern_graph *graph_ref(parser *ps)
{
    expect(ps, "@");
    char name[128];
    ident(ps, name, sizeof name);
    for (int i = 0; i < ps->n_graphs; i++)
        if (strcmp(fern_module_graph(ps->m, i)->name, name) == 0) {
            if (ps->state[i] == 1)
                fail(ps, "graph @%s refers to itself (recursion is not supported)", name);
            if (ps->state[i] == 0) {
                /* parse it now, then come back */
                const char *save = ps->p;
                if (ps->n_saved >= 64)
                    fail(ps, "graphs nested more than %s deep", "64");
                ps->saved_names[ps->n_saved] = ps->names;
                ps->saved_cap[ps->n_saved] = ps->cap_names;
                ps->saved_count[ps->n_saved++] = ps->n_names;
                ps->names = NULL;
                parse_graph(ps, i);
                free(ps->names);
                ps->n_saved--;
                ps->names = ps->saved_names[ps->n_saved];
                ps->cap_names = ps->saved_cap[ps->n_saved];
                ps->n_names = ps->saved_count[ps->n_saved];
                ps->p = save;
            }
            return fern_module_graph(ps->m, i);
        }
    fail(ps, "no graph named @%s", name);
    return NULL;
}

static fern_attr parse_attr_value(parser *ps, fern_attr_kind kind)
{
    fern_attr a = {.kind = kind, .n = 1};
    switch (kind) {
    case FERN_ATTR_INT: a.i = integer(ps); break;
    case FERN_ATTR_FLOAT: a.f = number(ps); break;
    case FERN_ATTR_DTYPE: {
        char name[16];
        fern_dtype dt;
        ident(ps, name, sizeof name);
        if (fern_dtype_from_name(name, &dt))
            fail(ps, "unknown dtype '%s'", name);
        a.i = dt;
        break;
    }
    case FERN_ATTR_STR: {
        expect(ps, "\"");
        const char *s = ps->p;
        while (*ps->p && *ps->p != '"')
            ps->p++;
        if (!*ps->p)
            fail(ps, "unterminated string%s", "");
        size_t len = (size_t)(ps->p - s);
        char *buf = malloc(len + 1);
        if (!buf)
            fail(ps, "out of memory%s", "");
        memcpy(buf, s, len);
        buf[len] = '\0';
        ps->p++;
        a.s = fern__ir_intern(ps->m, buf);
        free(buf);
        break;
    }
    case FERN_ATTR_INTS:
    case FERN_ATTR_FLOATS:
        a.n = 0;
        expect(ps, "[");
        if (!accept(ps, "]")) {
            do {
                if (a.n >= FERN_ATTR_MAX_VALUES)
                    fail(ps, "more than %s values in a list attribute", "16");
                if (kind == FERN_ATTR_INTS)
                    a.ints[a.n++] = integer(ps);
                else
                    a.floats[a.n++] = number(ps);
            } while (accept(ps, ","));
            expect(ps, "]");
        }
        break;
    }
    return a;
}

static fern_tensor *parse_const(parser *ps)
{
    fern_dtype dt;
    int64_t shape[FERN_MAX_DIMS];
    int nd = parse_type(ps, &dt, shape);
    for (int d = 0; d < nd; d++)
        if (shape[d] < 0)
            fail(ps, "a constant needs a concrete shape%s", "");
    /* every value takes at least one character: refuse before allocating */
    if ((uint64_t)fern__numel(nd, shape) > (uint64_t)strlen(ps->p))
        fail(ps, "the constant declares more values than the text holds%s", "");
    fern_tensor *t = fern__tensor_alloc(dt, nd, shape, FERN_CPU);
    if (!t)
        longjmp(ps->fail, 1);
    ps->pending_const = t;
    int64_t n = fern_tensor_numel(t), i = 0;
    size_t es = fern_dtype_size(dt);
    expect(ps, "[");
    if (!accept(ps, "]")) {
        do {
            skip(ps);
            double v;
            if (accept(ps, "nan"))
                v = 0.0 / 0.0;
            else if (accept(ps, "inf"))
                v = 1.0 / 0.0;
            else if (accept(ps, "-inf"))
                v = -1.0 / 0.0;
            else
                v = number(ps);
            if (i < n)
                fern__store((char *)t->storage->data + i * (int64_t)es, dt, v);
            i++;
        } while (accept(ps, ","));
        expect(ps, "]");
    }
    if (i != n)
        fail(ps, "constant has the wrong number of values%s", "");
    ps->pending_const = NULL;
    return t;
}

static void parse_node(parser *ps, fern_graph *g)
{
    char outs[FERN_MAX_OUTPUTS * 4][64];
    int n_out = 0;
    do {
        if (n_out >= FERN_MAX_OUTPUTS * 4)
            fail(ps, "too many outputs%s", "");
        value_name(ps, outs[n_out], sizeof outs[n_out]);
        n_out++;
    } while (accept(ps, ","));
    expect(ps, "=");
    char opname[64];
    ident(ps, opname, sizeof opname);
    int in[FERN_MAX_INPUTS + 1], n_in = 0;
    expect(ps, "(");
    if (!accept(ps, ")")) {
        do {
            if (n_in > FERN_MAX_INPUTS)
                fail(ps, "too many inputs%s", "");
            in[n_in++] = accept(ps, "none") ? -1 : value_ref(ps);
        } while (accept(ps, ","));
        expect(ps, ")");
    }
    int out_ids[FERN_MAX_OUTPUTS * 4];
    int is_struct = !strcmp(opname, "call") || !strcmp(opname, "cond") || !strcmp(opname, "while") ||
                    !strcmp(opname, "scan") || !strcmp(opname, "const");
    if (is_struct) {
        fern_graph *sub[2] = {NULL, NULL};
        int carry = 0;
        fern_tensor *value = NULL;
        if (accept(ps, "{")) {
            do {
                char key[32];
                ident(ps, key, sizeof key);
                expect(ps, "=");
                if (!strcmp(key, "fn") || !strcmp(key, "then") || !strcmp(key, "cond") ||
                    !strcmp(key, "body"))
                    sub[!strcmp(key, "fn") || !strcmp(key, "then") || !strcmp(key, "cond") ||
                                (!strcmp(key, "body") && !strcmp(opname, "scan"))
                            ? 0
                            : 1] = graph_ref(ps);
                else if (!strcmp(key, "else"))
                    sub[1] = graph_ref(ps);
                else if (!strcmp(key, "carry"))
                    carry = (int)integer(ps);
                else if (!strcmp(key, "value") && !value)
                    ps->pending_const = value = parse_const(ps);
                else
                    fail(ps, "unknown key '%s'", key);
            } while (accept(ps, ","));
            expect(ps, "}");
        }
        int rc = -1;
        if (!strcmp(opname, "const")) {
            if (!value || n_in || n_out != 1)
                fail(ps, "const takes no inputs, one output and a value%s", "");
            out_ids[0] = fern_graph_add_const(g, value);
            ps->pending_const = NULL;
            fern_release(value);
            rc = out_ids[0] < 0 ? -1 : 0;
        } else if (!strcmp(opname, "call") && sub[0]) {
            rc = fern_graph_add_call(g, sub[0], n_in, in, n_out, out_ids);
        } else if (!strcmp(opname, "cond") && sub[0] && sub[1] && n_in >= 1) {
            rc = fern_graph_add_cond(g, in[0], sub[0], sub[1], n_in - 1, in + 1, n_out, out_ids);
        } else if (!strcmp(opname, "while") && sub[0] && sub[1]) {
            rc = fern_graph_add_while(g, sub[0], sub[1], n_in, in, n_out, out_ids);
        } else if (!strcmp(opname, "scan") && sub[0]) {
            rc = fern_graph_add_scan(g, sub[0], carry, n_in, in, n_out, out_ids);
        } else {
            fail(ps, "%s is missing its subgraphs", opname);
        }
        if (rc)
            fail(ps, "%s", fern_last_error());
    } else {
        const fern_op_def *op = fern_op_find(opname);
        if (!op)
            fail(ps, "unknown op '%s'", opname);
        fern_attr bound[32];
        if (fern__bind_attrs(op, 0, NULL, NULL, bound))
            fail(ps, "%s", fern_last_error());
        if (accept(ps, "{")) {
            do {
                char key[64];
                ident(ps, key, sizeof key);
                expect(ps, "=");
                int found = -1;
                for (int i = 0; i < op->n_attrs; i++)
                    if (!strcmp(op->attrs[i].name, key))
                        found = i;
                if (found < 0)
                    fail(ps, "unknown attribute '%s'", key);
                bound[found] = parse_attr_value(ps, op->attrs[found].kind);
            } while (accept(ps, ","));
            expect(ps, "}");
        }
        if (fern__ir_add_op_bound(g, op, bound, n_in, in, n_out, out_ids))
            fail(ps, "%s", fern_last_error());
    }
    for (int k = 0; k < n_out; k++)
        name_define(ps, outs[k], out_ids[k]);
}

static fern_graph *parse_graph(parser *ps, int idx)
{
    fern_graph *g = fern_module_graph(ps->m, idx);
    ps->state[idx] = 1;
    ps->p = ps->graph_at[idx];
    names_reset(ps);
    expect(ps, "(");
    if (!accept(ps, ")")) {
        do {
            char name[64];
            value_name(ps, name, sizeof name);
            expect(ps, ":");
            fern_dtype dt;
            int64_t shape[FERN_MAX_DIMS];
            int nd = parse_type(ps, &dt, shape);
            int v = fern_graph_add_param(g, dt, nd, shape);
            if (v < 0)
                longjmp(ps->fail, 1);
            if (accept(ps, "capture"))
                g->is_capture[g->n_params - 1] = 1;
            name_define(ps, name, v);
        } while (accept(ps, ","));
        expect(ps, ")");
    }
    expect(ps, "->");
    expect(ps, "(");
    fern_dtype rdt[64];
    int64_t rshape[64][FERN_MAX_DIMS];
    int rnd[64], n_res = 0;
    if (!accept(ps, ")")) {
        do {
            if (n_res >= 64)
                fail(ps, "too many results%s", "");
            rnd[n_res] = parse_type(ps, &rdt[n_res], rshape[n_res]);
            n_res++;
        } while (accept(ps, ","));
        expect(ps, ")");
    }
    expect(ps, "{");
    while (!accept(ps, "return"))
        parse_node(ps, g);
    int outs[64], n_out = 0;
    skip(ps);
    if (*ps->p == '%') {
        do {
            if (n_out >= 64)
                fail(ps, "too many results%s", "");
            outs[n_out++] = value_ref(ps);
        } while (accept(ps, ","));
    }
    expect(ps, "}");
    if (n_out != n_res)
        fail(ps, "the graph declares a different number of results than it returns%s", "");
    for (int k = 0; k < n_out; k++) {
        const ir_value *v = &g->values[outs[k]];
        int ok = v->dtype == rdt[k] && v->ndim == rnd[k];
        for (int d = 0; ok && d < v->ndim; d++)
            ok = v->shape[d] == rshape[k][d] || v->shape[d] == -1 || rshape[k][d] == -1;
        if (!ok)
            fail(ps, "a returned value's type differs from the declared result type%s", "");
        /* declared result types are authoritative where inference lost a symbol */
        for (int d = 0; d < v->ndim; d++)
            if (g->values[outs[k]].shape[d] == -1)
                g->values[outs[k]].shape[d] = rshape[k][d];
    }
    fern_graph_set_outputs(g, n_out, outs);
    ps->state[idx] = 2;
    return g;
}

static void parser_free(parser *ps)
{
    for (int i = 0; i < ps->n_saved; i++)
        free(ps->saved_names[i]);
    fern_release(ps->pending_const);
    free(ps->graph_at);
    free(ps->state);
    free(ps->names);
    free(ps);
}

fern_module *fern_module_parse(const char *text)
{
    if (!text) {
        fern_set_error(FERN_ERR_INVALID, "module_parse: text is NULL");
        return NULL;
    }
    /* on the heap: longjmp must not leave modified locals indeterminate */
    parser *ps = calloc(1, sizeof *ps);
    if (!ps || !(ps->m = fern_module_new())) {
        free(ps);
        fern_set_error(FERN_ERR_NOMEM, "module_parse: out of memory");
        return NULL;
    }
    ps->text = ps->p = text;
    if (setjmp(ps->fail)) {
        fern_module_free(ps->m);
        parser_free(ps);
        return NULL;
    }
    int cap = 0;
    for (;;) {
        skip(ps);
        if (!*ps->p)
            break;
        expect(ps, "graph");
        expect(ps, "@");
        char name[128];
        ident(ps, name, sizeof name);
        if (!fern_graph_new(ps->m, name))
            fail(ps, "%s", fern_last_error());
        if (ps->n_graphs == cap) {
            cap = cap ? cap * 2 : 8;
            const char **ng = realloc(ps->graph_at, (size_t)cap * sizeof *ng);
            if (!ng)
                fail(ps, "out of memory%s", "");
            ps->graph_at = ng;
        }
        ps->graph_at[ps->n_graphs++] = ps->p;
        /* skip to the matching close brace */
        int depth = 0, seen = 0;
        while (*ps->p && !(seen && depth == 0)) {
            if (*ps->p == '"') {
                ps->p++;
                while (*ps->p && *ps->p != '"')
                    ps->p++;
            } else if (*ps->p == '{') {
                depth++;
                seen = 1;
            } else if (*ps->p == '}') {
                depth--;
            } else if (*ps->p == '#') {
                while (*ps->p && *ps->p != '\n')
                    ps->p++;
                continue;
            }
            if (*ps->p)
                ps->p++;
        }
        if (!seen || depth)
            fail(ps, "graph @%s is not closed with '}'", name);
    }
    if (ps->n_graphs == 0)
        fail(ps, "no graph in the text%s", "");
    ps->state = calloc((size_t)ps->n_graphs, 1);
    if (!ps->state)
        fail(ps, "out of memory%s", "");
    for (int i = 0; i < ps->n_graphs; i++)
        if (ps->state[i] == 0)
            parse_graph(ps, i);
    fern_module *m = ps->m;
    parser_free(ps);
    return m;
}
