/* A physics-informed neural network, in the spirit of MindScience.
 *
 * Solve u''(x) = f(x) on [0, 1] with u(0) = u(1) = 0, where
 * f(x) = -pi^2 sin(pi x); the exact solution is u(x) = sin(pi x).
 * The network u(x) = MLP(x) is trained so that its second derivative with
 * respect to its input matches f at collocation points: the loss itself
 * contains d2u/dx2, computed by differentiating the network twice, and the
 * training step differentiates that loss with respect to the weights.
 *
 * Usage: pinn [steps] [--pynative]      (default 3000 steps, graph mode)
 * Prints the loss while training and the maximum error against the exact
 * solution on 101 points; exits 0 when that error is below 2e-2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fern/fern.h"

#define N_COLLOC 64
#define HIDDEN 24

typedef struct {
    fern_tensor *w[3], *b[3];
} mlp;

static fern_tensor *net(const mlp *m, fern_tensor *x)
{
    fern_tensor *h = fern_tanh(fern_add(fern_matmul(x, m->w[0]), m->b[0]));
    h = fern_tanh(fern_add(fern_matmul(h, m->w[1]), m->b[1]));
    return fern_add(fern_matmul(h, m->w[2]), m->b[2]);
}

/* sum(u(x)): its gradient w.r.t. x is u'(x) at every point */
static int sum_u(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    out[0] = fern_sum(net(ud, in[0]), NULL, 0, 0);
    return out[0] ? 0 : -1;
}

typedef struct {
    const mlp *m;
    fern_fn *du;  /* x -> u'(x)  */
    fern_fn *d2u; /* x -> u''(x) */
    fern_tensor *f_target, *bc_x;
} pinn;

static int sum_du(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    pinn *p = ud;
    out[0] = fern_sum(fern_call1(p->du, 1, in), NULL, 0, 0);
    return out[0] ? 0 : -1;
}

/* loss(x) = mean((u'' - f)^2) + 10 * mean(u(bc)^2) */
static int loss_fn(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    pinn *p = ud;
    fern_tensor *uxx = fern_call1(p->d2u, 1, in);
    fern_tensor *pde = fern_mean(fern_square(fern_sub(uxx, p->f_target)), NULL, 0, 0);
    fern_tensor *bc = fern_mean(fern_square(net(p->m, p->bc_x)), NULL, 0, 0);
    out[0] = fern_add(pde, fern_mul_scalar(bc, 10.0));
    return out[0] ? 0 : -1;
}

/* Adam, written with fern ops on the concrete parameters. */
typedef struct {
    fern_tensor *m, *v;
} adam_slot;

static void adam_step(fern_tensor *p, fern_tensor *g, adam_slot *s, int t, double lr)
{
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    fern_scope_begin();
    fern_tensor *m = fern_add(fern_mul_scalar(s->m, b1), fern_mul_scalar(g, 1 - b1));
    fern_tensor *v = fern_add(fern_mul_scalar(s->v, b2), fern_mul_scalar(fern_square(g), 1 - b2));
    fern_tensor_assign(s->m, m);
    fern_tensor_assign(s->v, v);
    double c1 = 1 - pow(b1, t), c2 = 1 - pow(b2, t);
    fern_tensor *step = fern_div(fern_mul_scalar(m, lr / c1),
                                 fern_add_scalar(fern_sqrt(fern_mul_scalar(v, 1 / c2)), eps));
    fern_tensor_assign(p, fern_sub(p, step));
    fern_scope_end();
}

int main(int argc, char **argv)
{
    int steps = 3000, graph = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--pynative"))
            graph = 0;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: pinn [steps] [--pynative]\n");
            return 0;
        } else
            steps = atoi(argv[i]);
    }
    fern_seed(1);
    fern_set_mode(graph ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
    fern_scope_begin(); /* owns the parameters, optimizer state and data */
    const fern_dtype dt = FERN_F64;
    int64_t sizes[4] = {1, HIDDEN, HIDDEN, 1};
    mlp m;
    fern_tensor *params[6];
    adam_slot slots[6];
    for (int l = 0; l < 3; l++) { /* Xavier-normal weights, zero biases */
        double std = sqrt(2.0 / (double)(sizes[l] + sizes[l + 1]));
        m.w[l] = fern_rand_normal(dt, 2, (int64_t[]){sizes[l], sizes[l + 1]}, 0, std);
        m.b[l] = fern_zeros(dt, 1, &sizes[l + 1]);
        params[2 * l] = m.w[l];
        params[2 * l + 1] = m.b[l];
    }
    for (int i = 0; i < 6; i++) {
        slots[i].m = fern_zeros_like(params[i]);
        slots[i].v = fern_zeros_like(params[i]);
    }
    double xs[N_COLLOC], fs[N_COLLOC];
    for (int i = 0; i < N_COLLOC; i++) {
        xs[i] = (i + 0.5) / N_COLLOC;
        fs[i] = -M_PI * M_PI * sin(M_PI * xs[i]);
    }
    fern_tensor *x = fern_from_data(dt, 2, (int64_t[]){N_COLLOC, 1}, xs);
    pinn p = {&m, NULL, NULL, fern_from_data(dt, 2, (int64_t[]){N_COLLOC, 1}, fs),
              fern_from_data(dt, 2, (int64_t[]){2, 1}, (double[]){0.0, 1.0})};
    fern_fn *fu = fern_fn_new(sum_u, &m, 1, 1);
    p.du = fern_grad(fu, 0);
    fern_fn *fdu = fern_fn_new(sum_du, &p, 1, 1);
    p.d2u = fern_grad(fdu, 0);
    fern_fn *loss = fern_fn_new(loss_fn, &p, 1, 1);
    fern_fn *step_fn = fern_value_and_grad_params(loss, params, 6);
    if (!step_fn) {
        fprintf(stderr, "pinn: %s\n", fern_last_error());
        fern_scope_end();
        return 1;
    }
    printf("PINN: u'' = -pi^2 sin(pi x), u(0) = u(1) = 0, %s mode, %d steps\n",
           graph ? "graph" : "pynative", steps);
    for (int t = 1; t <= steps; t++) {
        fern_scope_begin();
        fern_tensor *out[7];
        if (fern_call(step_fn, 1, &x, 7, out) != FERN_OK) {
            fprintf(stderr, "pinn: step %d: %s\n", t, fern_last_error());
            while (fern_scope_depth() > 0)
                fern_scope_end();
            return 1;
        }
        double lr = t < steps / 2 ? 5e-3 : t < 3 * steps / 4 ? 1e-3 : 3e-4;
        for (int i = 0; i < 6; i++)
            adam_step(params[i], out[1 + i], &slots[i], t, lr);
        if (t == 1 || t % (steps / 10 > 0 ? steps / 10 : 1) == 0)
            printf("  step %5d  loss %.6e\n", t, fern_tensor_get_flat(out[0], 0));
        fern_scope_end();
    }
    /* error against the exact solution */
    double max_err = 0;
    fern_scope_begin();
    double grid[101];
    for (int i = 0; i <= 100; i++)
        grid[i] = i / 100.0;
    fern_set_mode(FERN_PYNATIVE_MODE);
    fern_tensor *u = net(&m, fern_from_data(dt, 2, (int64_t[]){101, 1}, grid));
    for (int i = 0; i <= 100; i++)
        max_err = fmax(max_err, fabs(fern_tensor_get_flat(u, i) - sin(M_PI * grid[i])));
    fern_scope_end();
    printf("max |u(x) - sin(pi x)| on 101 points: %.3e (%s)\n", max_err,
           max_err < 2e-2 ? "converged" : "NOT converged");
    fern_fn_release(step_fn);
    fern_fn_release(loss);
    fern_fn_release(p.d2u);
    fern_fn_release(fdu);
    fern_fn_release(p.du);
    fern_fn_release(fu);
    fern_scope_end();
    return max_err < 2e-2 ? 0 : 1;
}
