/* The op reference harness: runs every case of a .cases file (written by
 * tests/gen/gen_*.py from NumPy/PyTorch) through the registry by name and
 * compares outputs, dtypes and shapes; error cases must fail cleanly with
 * the expected words in the message. Each case also checks that it leaks
 * no tensor memory. One cmocka test per case. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fern/fern.h"

#define MAX_VIEWS 4

typedef struct {
    char kind[16];
    int n;
    int64_t a[FERN_MAX_DIMS];
    int64_t b[4];
} view_spec;

typedef struct {
    int present;
    fern_dtype dtype;
    int ndim;
    int64_t shape[FERN_MAX_DIMS];
    double *data;
    int64_t n;
    view_spec views[MAX_VIEWS];
    int n_views;
} tensor_spec;

typedef struct {
    char name[160];
    char op[64];
    int n_attrs;
    char *attr_names[32];
    fern_attr attrs[32];
    char *attr_strs[32];
    int n_in, n_out;
    tensor_spec in[16], out[8];
    int has_tol;
    double rtol, atol;
    char *error; /* expected substring, or NULL */
} test_case;

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    memcpy(d, s, n);
    return d;
}

static int parse_dtype(const char *s, fern_dtype *dt)
{
    if (fern_dtype_from_name(s, dt) != 0) {
        fprintf(stderr, "bad dtype '%s'\n", s);
        return -1;
    }
    return 0;
}

/* Parse "in/out DTYPE NDIM D0 D1 ..." (or "in none"). */
static int parse_tensor_head(char *rest, tensor_spec *t)
{
    memset(t, 0, sizeof *t);
    char *tok = strtok(rest, " \t\n");
    if (!tok)
        return -1;
    if (strcmp(tok, "none") == 0)
        return 0;
    t->present = 1;
    if (parse_dtype(tok, &t->dtype))
        return -1;
    tok = strtok(NULL, " \t\n");
    t->ndim = atoi(tok);
    for (int d = 0; d < t->ndim; d++)
        t->shape[d] = atoll(strtok(NULL, " \t\n"));
    t->n = 1;
    for (int d = 0; d < t->ndim; d++)
        t->n *= t->shape[d];
    return 0;
}

static void parse_data(char *rest, tensor_spec *t)
{
    t->data = calloc((size_t)(t->n ? t->n : 1), sizeof(double));
    char *p = rest;
    for (int64_t i = 0; i < t->n; i++)
        t->data[i] = strtod(p, &p);
}

static void parse_view(char *rest, tensor_spec *t)
{
    view_spec *v = &t->views[t->n_views++];
    memset(v, 0, sizeof *v);
    char *tok = strtok(rest, " \t\n");
    snprintf(v->kind, sizeof v->kind, "%s", tok);
    if (strcmp(tok, "permute") == 0 || strcmp(tok, "expand") == 0) {
        v->n = atoi(strtok(NULL, " \t\n"));
        for (int i = 0; i < v->n; i++)
            v->a[i] = atoll(strtok(NULL, " \t\n"));
    } else { /* slice axis start stop step | transpose a b */
        int i = 0;
        while ((tok = strtok(NULL, " \t\n")) && i < 4)
            v->b[i++] = atoll(tok);
    }
}

static void parse_attr(char *rest, test_case *c)
{
    int k = c->n_attrs++;
    char *name = strtok(rest, " \t\n");
    char *kind = strtok(NULL, " \t\n");
    c->attr_names[k] = xstrdup(name);
    fern_attr *a = &c->attrs[k];
    memset(a, 0, sizeof *a);
    if (strcmp(kind, "int") == 0) {
        a->kind = FERN_ATTR_INT;
        a->n = 1;
        a->i = atoll(strtok(NULL, " \t\n"));
    } else if (strcmp(kind, "float") == 0) {
        a->kind = FERN_ATTR_FLOAT;
        a->n = 1;
        a->f = strtod(strtok(NULL, " \t\n"), NULL);
    } else if (strcmp(kind, "ints") == 0) {
        a->kind = FERN_ATTR_INTS;
        a->n = atoi(strtok(NULL, " \t\n"));
        for (int i = 0; i < a->n; i++)
            a->ints[i] = atoll(strtok(NULL, " \t\n"));
    } else if (strcmp(kind, "floats") == 0) {
        a->kind = FERN_ATTR_FLOATS;
        a->n = atoi(strtok(NULL, " \t\n"));
        for (int i = 0; i < a->n; i++)
            a->floats[i] = strtod(strtok(NULL, " \t\n"), NULL);
    } else if (strcmp(kind, "str") == 0) {
        a->kind = FERN_ATTR_STR;
        a->n = 1;
        c->attr_strs[k] = xstrdup(strtok(NULL, "\n"));
        a->s = c->attr_strs[k];
    } else if (strcmp(kind, "dtype") == 0) {
        fern_dtype dt = FERN_F32;
        parse_dtype(strtok(NULL, " \t\n"), &dt);
        a->kind = FERN_ATTR_DTYPE;
        a->n = 1;
        a->i = dt;
    }
}

static test_case *load_cases(const char *path, int *count)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    int cap = 64, n = 0;
    test_case *cases = calloc((size_t)cap, sizeof *cases);
    test_case *c = NULL;
    size_t lcap = 1 << 16;
    char *line = malloc(lcap);
    ssize_t len;
    tensor_spec *last = NULL;
    while ((len = getline(&line, &lcap, f)) > 0) {
        char *sp = strchr(line, ' ');
        char *rest = sp ? sp + 1 : line + len;
        if (sp)
            *sp = '\0';
        else
            line[strcspn(line, "\n")] = '\0';
        if (strcmp(line, "case") == 0) {
            if (n == cap) {
                cap *= 2;
                cases = realloc(cases, (size_t)cap * sizeof *cases);
            }
            c = &cases[n++];
            memset(c, 0, sizeof *c);
            snprintf(c->name, sizeof c->name, "%.*s", (int)strcspn(rest, "\n"), rest);
        } else if (!c) {
            continue;
        } else if (strcmp(line, "op") == 0) {
            snprintf(c->op, sizeof c->op, "%.*s", (int)strcspn(rest, "\n"), rest);
        } else if (strcmp(line, "attr") == 0) {
            parse_attr(rest, c);
        } else if (strcmp(line, "in") == 0) {
            last = &c->in[c->n_in++];
            parse_tensor_head(rest, last);
        } else if (strcmp(line, "out") == 0) {
            last = &c->out[c->n_out++];
            parse_tensor_head(rest, last);
        } else if (strcmp(line, "data") == 0) {
            parse_data(rest, last);
        } else if (strcmp(line, "view") == 0) {
            parse_view(rest, last);
        } else if (strcmp(line, "tol") == 0) {
            c->has_tol = 1;
            c->rtol = strtod(rest, &rest);
            c->atol = strtod(rest, NULL);
        } else if (strcmp(line, "error") == 0) {
            c->error = xstrdup(rest);
            c->error[strcspn(c->error, "\n")] = '\0';
        }
    }
    free(line);
    fclose(f);
    *count = n;
    return cases;
}

static fern_tensor *make_input(const tensor_spec *t)
{
    if (!t->present)
        return NULL;
    fern_tensor *x = fern_empty(t->dtype, t->ndim, t->shape);
    if (!x)
        return NULL;
    int64_t idx[FERN_MAX_DIMS];
    for (int64_t i = 0; i < t->n; i++) {
        int64_t r = i;
        for (int d = t->ndim - 1; d >= 0; d--) {
            idx[d] = r % t->shape[d];
            r /= t->shape[d];
        }
        fern_tensor_set(x, idx, t->data[i]);
    }
    for (int k = 0; k < t->n_views; k++) {
        const view_spec *v = &t->views[k];
        if (strcmp(v->kind, "permute") == 0) {
            int perm[FERN_MAX_DIMS];
            for (int i = 0; i < v->n; i++)
                perm[i] = (int)v->a[i];
            x = fern_permute(x, perm);
        } else if (strcmp(v->kind, "slice") == 0) {
            x = fern_slice(x, (int)v->b[0], v->b[1], v->b[2], v->b[3]);
        } else if (strcmp(v->kind, "expand") == 0) {
            x = fern_expand(x, v->n, v->a);
        } else if (strcmp(v->kind, "transpose") == 0) {
            x = fern_transpose(x, (int)v->b[0], (int)v->b[1]);
        }
    }
    return x;
}

static void default_tol(fern_dtype dt, double *rtol, double *atol)
{
    switch (dt) {
    case FERN_F32: *rtol = 1e-5; *atol = 1e-6; break;
    case FERN_F64: *rtol = 1e-10; *atol = 1e-12; break;
    case FERN_F16: *rtol = 2e-3; *atol = 1e-3; break;
    case FERN_BF16: *rtol = 1.6e-2; *atol = 1e-2; break;
    default: *rtol = 0; *atol = 0; break;
    }
}

static void run_case(void **state)
{
    const test_case *c = *state;
    while (fern_scope_depth() > 0) /* a failed case jumps out of its scope */
        fern_scope_end();
    fern_clear_error();
    size_t before = fern_alloc_get_stats(FERN_CPU).current_bytes;
    fern_scope_begin();
    fern_tensor *ins[16];
    for (int i = 0; i < c->n_in; i++) {
        ins[i] = make_input(&c->in[i]);
        if (c->in[i].present && !ins[i])
            fail_msg("%s: could not build input %d: %s", c->name, i, fern_last_error());
    }
    int n_out = c->error ? 1 : c->n_out;
    fern_tensor *outs[8] = {0};
    const fern_op_def *def = fern_op_find(c->op);
    if (c->error && def) {
        /* ask for as many outputs as the op has, so only the inputs are wrong */
        char d[512];
        fern_op_describe(def, d, sizeof d);
        const char *o = strstr(d, "out=");
        if (o)
            n_out = atoi(o + 4);
    }
    fern_status st = fern_op_invoke(c->op, c->n_in, ins, c->n_attrs,
                                    (const char *const *)c->attr_names, c->attrs, n_out, outs);
    if (c->error) {
        if (st == FERN_OK)
            fail_msg("%s: expected an error containing '%s', but %s succeeded", c->name, c->error,
                     c->op);
        if (!strstr(fern_last_error(), c->error))
            fail_msg("%s: error message '%s' does not contain '%s'", c->name, fern_last_error(),
                     c->error);
        if (!strstr(fern_last_error(), c->op))
            fail_msg("%s: error message '%s' does not name the op '%s'", c->name,
                     fern_last_error(), c->op);
    } else {
        if (st != FERN_OK)
            fail_msg("%s: %s failed: %s", c->name, c->op, fern_last_error());
        for (int k = 0; k < c->n_out; k++) {
            const tensor_spec *e = &c->out[k];
            fern_tensor *o = outs[k];
            char got[160];
            fern_tensor_desc(o, got, sizeof got);
            if (fern_tensor_dtype(o) != e->dtype || fern_tensor_ndim(o) != e->ndim ||
                memcmp(fern_tensor_shape(o), e->shape, sizeof(int64_t) * (size_t)e->ndim)) {
                char want[160];
                int64_t sh[FERN_MAX_DIMS];
                memcpy(sh, e->shape, sizeof sh);
                fern_tensor *w = fern_empty(e->dtype, e->ndim, sh);
                fern_tensor_desc(w, want, sizeof want);
                fail_msg("%s: output %d is %s, expected %s", c->name, k, got, want);
            }
            double rtol, atol;
            default_tol(e->dtype, &rtol, &atol);
            if (c->has_tol && fern_dtype_is_float(e->dtype)) {
                rtol = c->rtol;
                atol = c->atol;
            }
            for (int64_t i = 0; i < e->n; i++) {
                double g = fern_tensor_get_flat(o, i), w = e->data[i];
                int ok = (isnan(w) && isnan(g)) || g == w || fabs(g - w) <= atol + rtol * fabs(w);
                if (!ok)
                    fail_msg("%s: output %d %s differs at flat index %lld: got %.9g, expected %.9g "
                             "(rtol %g, atol %g)",
                             c->name, k, got, (long long)i, g, w, rtol, atol);
            }
        }
    }
    fern_scope_end();
    size_t after = fern_alloc_get_stats(FERN_CPU).current_bytes;
    if (after != before)
        fail_msg("%s: leaked %zd bytes of tensor memory", c->name, (ssize_t)(after - before));
}

static void free_cases(test_case *cases, int n)
{
    for (int i = 0; i < n; i++) {
        test_case *c = &cases[i];
        for (int k = 0; k < c->n_attrs; k++) {
            free(c->attr_names[k]);
            free(c->attr_strs[k]);
        }
        for (int k = 0; k < c->n_in; k++)
            free(c->in[k].data);
        for (int k = 0; k < c->n_out; k++)
            free(c->out[k].data);
        free(c->error);
    }
    free(cases);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE.cases [FILTER]\n", argv[0]);
        return 2;
    }
    int n = 0;
    test_case *cases = load_cases(argv[1], &n);
    if (!cases)
        return 1;
    struct CMUnitTest *tests = calloc((size_t)(n ? n : 1), sizeof *tests);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (argc > 2 && !strstr(cases[i].name, argv[2]))
            continue;
        tests[m].name = cases[i].name;
        tests[m].test_func = run_case;
        tests[m].initial_state = &cases[i];
        m++;
    }
    const char *base = strrchr(argv[1], '/');
    int rc = _cmocka_run_group_tests(base ? base + 1 : argv[1], tests, (size_t)m, NULL, NULL);
    free(tests);
    free_cases(cases, n);
    return rc;
}
