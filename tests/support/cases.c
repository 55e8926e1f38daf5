/* Reference-case files: parsing and input construction (see cases.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "cases.h"


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

test_case *load_cases(const char *path, int *count)
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

fern_tensor *make_input(const tensor_spec *t) { return make_input_as(t, -1); }

fern_tensor *make_input_as(const tensor_spec *t, int as_dtype)
{
    if (!t->present)
        return NULL;
    fern_dtype dt = as_dtype >= 0 && fern_dtype_is_float(t->dtype) ? (fern_dtype)as_dtype : t->dtype;
    fern_tensor *x = fern_empty(dt, t->ndim, t->shape);
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

void free_cases(test_case *cases, int n)
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

