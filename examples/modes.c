/* One function, two execution modes, switched by one line.
 *
 * A small MLP forward pass runs op by op in pynative mode (easy to debug:
 * every intermediate is a real tensor you can print), then the same code is
 * traced, optimized and compiled in graph mode. The compiled IR is printed
 * so you can see what the compiler did. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "fern/fern.h"

typedef struct {
    fern_tensor *w1, *b1, *w2, *b2;
} mlp;

static int forward(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    mlp *m = ud;
    fern_tensor *h = fern_relu(fern_add(fern_matmul(in[0], m->w1), m->b1));
    out[0] = fern_softmax(fern_add(fern_matmul(h, m->w2), m->b2), -1);
    return out[0] ? 0 : -1;
}

int main(void)
{
    fern_seed(0);
    mlp m = {
        fern_rand_normal(FERN_F32, 2, (int64_t[]){4, 8}, 0, 0.5),
        fern_zeros(FERN_F32, 1, (int64_t[]){8}),
        fern_rand_normal(FERN_F32, 2, (int64_t[]){8, 3}, 0, 0.5),
        fern_zeros(FERN_F32, 1, (int64_t[]){3}),
    };
    fern_tensor *x = fern_rand_normal(FERN_F32, 2, (int64_t[]){2, 4}, 0, 1);
    fern_fn *f = fern_fn_new(forward, &m, 1, 1);
    fern_fn_set_name(f, "mlp");

    fern_set_mode(FERN_PYNATIVE_MODE);
    fern_tensor *a = fern_call1(f, 1, &x);
    fern_tensor_print(a, "pynative");

    fern_set_mode(FERN_GRAPH_MODE); /* <- the one line */
    fern_tensor *b = fern_call1(f, 1, &x);
    fern_tensor_print(b, "graph   ");
    if (!a || !b) {
        fprintf(stderr, "error: %s\n", fern_last_error());
        return 1;
    }
    double diff = 0;
    for (int64_t i = 0; i < fern_tensor_numel(a); i++)
        diff = fmax(diff, fabs(fern_tensor_get_flat(a, i) - fern_tensor_get_flat(b, i)));
    printf("max |pynative - graph| = %g\n\ncompiled IR:\n", diff);
    char *ir = fern_jit_dump(f);
    printf("%s", ir ? ir : "");
    free(ir);
    fern_jit_stats st;
    fern_jit_get_stats(f, &st);
    printf("\nnodes traced %d, after passes %d; planned peak %zu bytes vs %zu without reuse\n",
           st.nodes_traced, st.nodes_optimized, st.planned_peak_bytes, st.naive_bytes);
    fern_fn_release(f);
    fern_release(a);
    fern_release(b);
    fern_release(x);
    fern_release(m.w1);
    fern_release(m.b1);
    fern_release(m.w2);
    fern_release(m.b2);
    return 0;
}
