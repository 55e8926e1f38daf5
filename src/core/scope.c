/* Scopes: per-thread stacks of tensors to release together, so chained
 * expressions need no manual release of their temporaries. */
#include <stdlib.h>

#include "internal.h"

typedef struct scope {
    fern_tensor **items;
    int n, cap;
    struct scope *parent;
} scope;

static _Thread_local scope *innermost;
static _Thread_local int depth;
/* Detaching applies to the scope level it was requested at: scopes opened
 * later (say, by a user function the executor calls) register normally. */
static _Thread_local int detach_at[64];
static _Thread_local int n_detach, n_detach_overflow;

void fern__scope_detach(int delta)
{
    if (delta > 0) {
        if (n_detach < 64)
            detach_at[n_detach++] = depth;
        else
            n_detach_overflow++; /* deeper levels behave like the 64th */
    } else if (n_detach_overflow > 0) {
        n_detach_overflow--;
    } else if (n_detach > 0) {
        n_detach--;
    }
}

void fern_scope_begin(void)
{
    scope *s = calloc(1, sizeof *s);
    if (!s) {
        fern_set_error(FERN_ERR_NOMEM, "scope_begin: out of memory");
        return;
    }
    s->parent = innermost;
    innermost = s;
    depth++;
}

void fern_scope_end(void)
{
    scope *s = innermost;
    if (!s)
        return;
    innermost = s->parent;
    depth--;
    for (int i = s->n - 1; i >= 0; i--)
        fern_release(s->items[i]);
    free(s->items);
    free(s);
}

int fern_scope_depth(void) { return depth; }

static int push(scope *s, fern_tensor *t)
{
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 32;
        fern_tensor **items = realloc(s->items, (size_t)cap * sizeof *items);
        if (!items)
            return -1;
        s->items = items;
        s->cap = cap;
    }
    s->items[s->n++] = t;
    return 0;
}

fern_tensor *fern__scope_register(fern_tensor *t)
{
    if (!t || !innermost || (n_detach && detach_at[n_detach - 1] == depth))
        return t;
    if (push(innermost, t)) {
        fern_set_error(FERN_ERR_NOMEM, "scope: out of memory");
        fern_release(t);
        return NULL;
    }
    return t;
}

fern_tensor *fern_keep(fern_tensor *t)
{
    if (!t)
        return NULL;
    fern_retain(t);
    if (innermost && innermost->parent && push(innermost->parent, t)) {
        fern_set_error(FERN_ERR_NOMEM, "keep: out of memory");
        fern_release(t);
        return NULL;
    }
    return t;
}
