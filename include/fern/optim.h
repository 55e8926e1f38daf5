/*
 * fern/optim.h — optimizers, learning-rate schedules, gradient clipping.
 *
 * An optimizer updates a fixed list of parameter tensors in place from a
 * matching list of gradients. Its update is written with fern ops and
 * fern_assign, so the same call runs eagerly in pynative mode and becomes
 * part of the compiled training-step graph in graph mode. The learning rate
 * and the step counter live in 0-d tensors that graphs read by reference:
 * call fern_optim_prepare before running a compiled step (fern_optim_step
 * does it itself when not tracing) so schedules advance in both modes.
 *
 * Hyper-parameters follow torch.optim's definitions exactly (tests compare
 * 10-step trajectories with torch.optim).
 */
#ifndef FERN_OPTIM_H
#define FERN_OPTIM_H

#include "fern/io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- learning-rate schedules (pure functions of the step) --------------- */
typedef struct fern_lr_schedule fern_lr_schedule;
/* lr(step) for step = 0, 1, 2, ... (the step about to be taken). */
double fern_lr_at(const fern_lr_schedule *s, int64_t step);
void fern_lr_schedule_free(fern_lr_schedule *s);
/* base * gamma^(step / step_size) */
fern_lr_schedule *fern_lr_step_decay(double base, int64_t step_size, double gamma);
/* base * gamma^step */
fern_lr_schedule *fern_lr_exponential(double base, double gamma);
/* eta_min + (base - eta_min) * (1 + cos(pi * min(step, t_max) / t_max)) / 2 */
fern_lr_schedule *fern_lr_cosine(double base, int64_t t_max, double eta_min);
/* (base - end) * (1 - min(step, total)/total)^power + end */
fern_lr_schedule *fern_lr_polynomial(double base, int64_t total, double end, double power);
/* values[i] while step < boundaries[i]; values[n] after the last boundary. */
fern_lr_schedule *fern_lr_piecewise(const int64_t *boundaries, const double *values, int n);
/* Linear warmup from 0 to after(warmup) over `warmup` steps, then `after`
 * shifted by warmup steps. Takes ownership of after. */
fern_lr_schedule *fern_lr_linear_warmup(int64_t warmup, fern_lr_schedule *after);
/* A constant. */
fern_lr_schedule *fern_lr_constant(double lr);

/* ---- optimizers ------------------------------------------------------------ */
typedef struct fern_optimizer fern_optimizer;

/* torch.optim.SGD: momentum 0 is plain SGD; nesterov needs momentum > 0. */
fern_optimizer *fern_sgd(fern_tensor *const *params, int n, double lr, double momentum,
                         double dampening, double weight_decay, int nesterov);
/* MindSpore's Momentum: SGD with momentum (dampening 0). */
fern_optimizer *fern_momentum(fern_tensor *const *params, int n, double lr, double momentum,
                              double weight_decay, int nesterov);
fern_optimizer *fern_adam(fern_tensor *const *params, int n, double lr, double beta1, double beta2,
                          double eps, double weight_decay);
fern_optimizer *fern_adamw(fern_tensor *const *params, int n, double lr, double beta1,
                           double beta2, double eps, double weight_decay);
fern_optimizer *fern_rmsprop(fern_tensor *const *params, int n, double lr, double alpha, double eps,
                             double weight_decay, double momentum, int centered);
fern_optimizer *fern_adagrad(fern_tensor *const *params, int n, double lr, double lr_decay,
                             double weight_decay, double initial_accumulator, double eps);
/* LAMB (You et al. 2019): Adam moments with bias correction, decoupled
 * weight decay, and a per-parameter trust ratio ||p|| / ||update||. */
fern_optimizer *fern_lamb(fern_tensor *const *params, int n, double lr, double beta1, double beta2,
                          double eps, double weight_decay);
void fern_optim_free(fern_optimizer *opt);
const char *fern_optim_name(const fern_optimizer *opt);

/* Replace the schedule (the optimizer takes ownership; NULL: constant lr). */
void fern_optim_set_schedule(fern_optimizer *opt, fern_lr_schedule *s);
double fern_optim_lr(const fern_optimizer *opt);
/* Steps taken so far. */
int64_t fern_optim_step_count(const fern_optimizer *opt);
/* Write the learning rate for the next step into the lr tensor. */
fern_status fern_optim_prepare(fern_optimizer *opt);
/* One update from n gradients (matching the parameters). NULL gradients
 * skip their parameter. */
fern_status fern_optim_step(fern_optimizer *opt, fern_tensor *const *grads, int n);

/* Optimizer state (moments, step, lr) into / out of a checkpoint under
 * names "<prefix>.<i>.<slot>". Loading checks shapes and the optimizer kind. */
fern_status fern_optim_save_state(const fern_optimizer *opt, fern_checkpoint *ck, const char *prefix);
fern_status fern_optim_load_state(fern_optimizer *opt, const fern_checkpoint *ck, const char *prefix);

/* ---- gradient clipping ------------------------------------------------------ */
/* Scale the gradients so their global L2 norm is at most max_norm (like
 * torch.nn.utils.clip_grad_norm_). Writes n new tensors to clipped and the
 * norm before clipping to *total_norm (a 0-d tensor, may be NULL). */
fern_status fern_clip_by_global_norm(fern_tensor *const *grads, int n, double max_norm,
                                     fern_tensor **clipped, fern_tensor **total_norm);

#ifdef __cplusplus
}
#endif
#endif /* FERN_OPTIM_H */
