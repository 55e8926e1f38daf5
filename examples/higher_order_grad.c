/* MindSpore's headline example: the second derivative of x*x*x at x = 2 is
 * 12 (and the third is 6), computed by differentiating the gradient — in
 * pynative mode and, after the one-line switch, in graph mode. */
#include <stdio.h>

#include "fern/fern.h"

static int cube(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    out[0] = fern_mul(fern_mul(in[0], in[0]), in[0]);
    return out[0] ? 0 : -1;
}

static int run(const char *mode_name)
{
    fern_fn *f = fern_fn_new(cube, NULL, 1, 1);
    fern_fn *df = fern_grad(f, 0);
    fern_fn *d2f = fern_grad(df, 0);
    fern_fn *d3f = fern_grad(d2f, 0);
    fern_scope_begin();
    fern_tensor *x = fern_scalar(FERN_F32, 2.0);
    fern_tensor *y1 = fern_call1(df, 1, &x);
    fern_tensor *y2 = fern_call1(d2f, 1, &x);
    fern_tensor *y3 = fern_call1(d3f, 1, &x);
    int ok = y1 && y2 && y3;
    if (ok && (fern_tensor_get_flat(y2, 0) != 12.0 || fern_tensor_get_flat(y3, 0) != 6.0)) {
        fprintf(stderr, "%s: expected f''(2) = 12 and f'''(2) = 6\n", mode_name);
        ok = 0;
    }
    if (ok)
        printf("%-9s  f'(2) = %g   f''(2) = %g   f'''(2) = %g\n", mode_name,
               fern_tensor_get_flat(y1, 0), fern_tensor_get_flat(y2, 0), fern_tensor_get_flat(y3, 0));
    else
        fprintf(stderr, "%s: %s\n", mode_name, fern_last_error());
    fern_scope_end();
    fern_fn_release(d3f);
    fern_fn_release(d2f);
    fern_fn_release(df);
    fern_fn_release(f);
    return ok ? 0 : 1;
}

int main(void)
{
    int rc = run("pynative");
    fern_set_mode(FERN_GRAPH_MODE); /* the one-line switch */
    rc |= run("graph");
    return rc;
}
