/*
 * fern/autodiff.h — automatic differentiation.
 *
 * Transforms of function values that compose freely and work the same in
 * both modes: fern_grad(fern_grad(f)), fern_jit(fern_grad(f)),
 * fern_grad(fern_jit(f)). In pynative mode a tape records the ops as they
 * run and replays each op's gradient rule backwards; in graph mode the same
 * tape runs while the function is traced, so the gradient is an ordinary
 * graph (simplified, CSE'd, fused and memory-planned like any other), and
 * cond/while/scan nodes are differentiated through their subgraphs. Gradient
 * rules are written with fern ops, so the backward pass can itself be
 * recorded: higher-order gradients work in both modes.
 *
 * Only output 0 of f is differentiated by grad/value_and_grad (its
 * cotangent is ones, like MindSpore's default sensitivity); any other
 * outputs are auxiliary values returned unchanged.
 */
#ifndef FERN_AUTODIFF_H
#define FERN_AUTODIFF_H

#include "fern/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* d out0 / d in[argnum]: a function of f's inputs returning one gradient. */
fern_fn *fern_grad(fern_fn *f, int argnum);
/* Gradients with respect to several inputs: returns n gradients. */
fern_fn *fern_grad_n(fern_fn *f, const int *argnums, int n);
/* Returns f's outputs (all of them), then the n gradients of output 0. */
fern_fn *fern_value_and_grad(fern_fn *f, const int *argnums, int n);
/* Gradients of output 0 with respect to tensors f reads but does not take
 * as inputs (a layer's parameters). Returns f's outputs, then one gradient
 * per parameter. The fn keeps references to params. */
fern_fn *fern_value_and_grad_params(fern_fn *f, fern_tensor *const *params, int n);
/* With explicit sensitivities: a function of (f's inputs..., one cotangent
 * per output of f) returning the gradient of every input. */
fern_fn *fern_grad_with_sens(fern_fn *f);

/* Vector-Jacobian product at `in`: outs (n_out of f) and one gradient per
 * input (zeros where an output does not depend on it). cotangents may be
 * NULL (all ones) or hold NULL entries (zero). */
fern_status fern_vjp(fern_fn *f, int n_in, fern_tensor *const *in,
                     fern_tensor *const *cotangents, fern_tensor **outs, fern_tensor **grads);
/* Jacobian-vector product at `in` along tangents: outs and tangent outs.
 * Computed as the transpose of the (linear) VJP, so it needs gradient
 * rules that are themselves differentiable, which fern's are. */
fern_status fern_jvp(fern_fn *f, int n_in, fern_tensor *const *in,
                     fern_tensor *const *tangents, fern_tensor **outs, fern_tensor **tangent_outs);

/* Identity whose gradient is zero: the values flow, gradients do not. */
fern_tensor *fern_stop_gradient(fern_tensor *x);

/* f with a user-defined backward (like a Cell's custom bprop):
 * bwd(in..., out..., cot...) -> one gradient per input of f. Inside f, ops
 * are not recorded; bwd's ops are, so bwd may be differentiated again. */
fern_fn *fern_custom_vjp(fern_fn *f, fern_fn *bwd);

#ifdef __cplusplus
}
#endif
#endif /* FERN_AUTODIFF_H */
