#ifndef FERN_TRAIN_INTERNAL_H
#define FERN_TRAIN_INTERNAL_H

#include "../runtime/runtime_internal.h"
#include "fern/train.h"

struct fern_model {
    fern_cell *net, *loss;
    fern_optimizer *opt;
    fern_metric **metrics;
    int n_metrics;
    fern_tensor **params;
    int n_params;
    fern_fn *fwd_loss;   /* (x, y) -> (loss, logits)               */
    fern_fn *vg;         /* value_and_grad_params(fwd_loss)        */
    fern_fn *train_step; /* (x, y) -> (loss, logits), updates      */
    fern_fn *eval_step;  /* (x, y) -> (loss, logits)               */
    double grad_clip;
    fern_batch_source *eval;
    int quiet;
    /* progress: the next epoch to run and the steps of it already done */
    int64_t epoch, step_in_epoch, step;
};

#endif
