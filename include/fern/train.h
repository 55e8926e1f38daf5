/*
 * fern/train.h — the Model API: network + loss + optimizer + metrics, with
 * train / eval / predict, callbacks and resumable checkpoints.
 *
 * In graph mode the whole training step — forward, loss, backward,
 * optimizer update (and batch-norm statistics) — is one compiled graph,
 * compiled once per batch shape; in pynative mode the same step runs op by
 * op. Switch with fern_set_mode before training.
 */
#ifndef FERN_TRAIN_H
#define FERN_TRAIN_H

#include "fern/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- batches ---------------------------------------------------------------
 * Where training data comes from: any source of (input, label) batches.
 * next() returns FERN_OK with two new references, or sets *end = 1 when the
 * epoch is over. reset(epoch) starts an epoch (sources reshuffle per epoch
 * from their seed, so the order is reproducible). The data engine provides
 * an adapter (fern_data_batch_source); fern_tensor_batches serves tensors. */
typedef struct {
    void *ud;
    fern_status (*reset)(void *ud, int64_t epoch);
    fern_status (*next)(void *ud, fern_tensor **x, fern_tensor **y, int *end);
    int64_t (*batches_per_epoch)(void *ud); /* -1 if unknown */
    void (*free)(void *ud);                 /* may be NULL */
} fern_batch_source;

/* Batches of `batch` rows from x (N, ...) and y (N, ...), shuffled with
 * seed + epoch when shuffle != 0. drop_last drops a final partial batch.
 * Keeps references to x and y; release with fern_batch_source_free. */
fern_batch_source fern_tensor_batches(fern_tensor *x, fern_tensor *y, int64_t batch, int shuffle,
                                      uint64_t seed, int drop_last);
void fern_batch_source_free(fern_batch_source *s);

/* Batches from the data engine: `batched` is a pipeline ending in
 * fern_dataset_batch (consumed); x_col/y_col name the input and label
 * columns ("image" and "label" when NULL). Each epoch is the pipeline's
 * epoch of that number under `seed`. */
typedef struct fern_dataset fern_dataset;
fern_batch_source fern_data_batches(fern_dataset *batched, const char *x_col, const char *y_col,
                                    uint64_t seed);

/* ---- metrics ---------------------------------------------------------------- */
typedef struct fern_metric fern_metric;
fern_metric *fern_metric_accuracy(void);
fern_metric *fern_metric_topk(int k);
/* Macro-averaged over classes. */
fern_metric *fern_metric_precision(int num_classes);
fern_metric *fern_metric_recall(int num_classes);
fern_metric *fern_metric_f1(int num_classes);
fern_metric *fern_metric_confusion_matrix(int num_classes);
/* Mean of the loss over samples. */
fern_metric *fern_metric_mean_loss(void);
void fern_metric_free(fern_metric *m);
const char *fern_metric_name(const fern_metric *m);
void fern_metric_reset(fern_metric *m);
/* logits (N, C), labels (N) integer; loss: the batch's mean loss (0-d). */
fern_status fern_metric_update(fern_metric *m, fern_tensor *logits, fern_tensor *labels, fern_tensor *loss);
double fern_metric_value(const fern_metric *m);
/* For the confusion matrix: counts[true * C + predicted]; returns C. */
int fern_metric_confusion(const fern_metric *m, const int64_t **counts);

/* ---- callbacks ---------------------------------------------------------------- */
typedef struct {
    int64_t epoch;          /* 0-based                                   */
    int64_t epochs;         /* total requested                           */
    int64_t step;           /* global step (optimizer steps so far)      */
    int64_t step_in_epoch;  /* 0-based                                   */
    int64_t steps_per_epoch; /* -1 if unknown                            */
    double loss;            /* this step's loss                          */
    double lr;
    double samples_per_second; /* over the epoch so far                 */
    double epoch_seconds;   /* at epoch end                               */
    double epoch_loss;      /* mean training loss of the epoch (epoch end) */
    int n_metrics;
    const char *metric_names[8];
    double metric_values[8]; /* evaluation results at epoch end, if any  */
    int stop;               /* a callback sets 1 to stop training         */
} fern_train_state;

typedef struct fern_callback {
    void *ud;
    void (*on_train_begin)(void *ud, fern_train_state *s);
    void (*on_epoch_begin)(void *ud, fern_train_state *s);
    void (*on_step_end)(void *ud, fern_train_state *s);
    void (*on_epoch_end)(void *ud, fern_train_state *s);
    void (*on_train_end)(void *ud, fern_train_state *s);
    void (*free)(void *ud);
} fern_callback;

typedef struct fern_model fern_model;

/* Prints loss every `every` steps (and a progress bar on a terminal). */
fern_callback fern_cb_loss_monitor(int64_t every);
/* Prints epoch time and throughput. */
fern_callback fern_cb_time_monitor(void);
/* Saves the model (parameters, buffers, optimizer state, progress, RNG)
 * into dir every `every_steps` steps (0: off) and at the end of every
 * `every_epochs` epochs (0: off), keeping the newest keep_max files. */
fern_callback fern_cb_checkpoint(fern_model *m, const char *dir, const char *prefix,
                                 int64_t every_steps, int64_t every_epochs, int keep_max);
/* Stops when metric `name` ("loss" or an eval metric) has not improved by
 * min_delta for `patience` epochs; mode_max: 1 if larger is better. */
fern_callback fern_cb_early_stopping(const char *name, int patience, double min_delta, int mode_max);
/* Replaces the optimizer's learning rate at each epoch start with
 * schedule(epoch) (an epoch-based schedule; step-based ones are set on the
 * optimizer). Takes ownership of the schedule. */
fern_callback fern_cb_lr_per_epoch(fern_optimizer *opt, fern_lr_schedule *schedule);
/* A user function called after every step. */
fern_callback fern_cb_lambda(void (*on_step_end)(void *ud, fern_train_state *s), void *ud);

/* ---- the model ------------------------------------------------------------------ */
/* net maps inputs to logits/predictions; loss maps (prediction, label) to a
 * 0-d loss. The model keeps references to net and loss and takes ownership
 * of the optimizer and metrics (any may be NULL except net). */
fern_model *fern_model_new(fern_cell *net, fern_cell *loss, fern_optimizer *opt,
                           fern_metric **metrics, int n_metrics);
void fern_model_free(fern_model *m);
/* Clip gradients by global norm before each update (0: off). */
void fern_model_set_grad_clip(fern_model *m, double max_norm);
/* Evaluate on `eval` after every epoch (results go to the callbacks). */
void fern_model_set_eval_source(fern_model *m, fern_batch_source *eval);
/* Print nothing (callbacks still run). */
void fern_model_set_quiet(fern_model *m, int quiet);

fern_status fern_model_train(fern_model *m, int64_t epochs, fern_batch_source *data,
                             fern_callback *callbacks, int n_callbacks);
/* Runs the metrics (and mean loss) over the source; values via
 * fern_metric_value, and returned as accuracy for convenience. */
fern_status fern_model_eval(fern_model *m, fern_batch_source *data, double *mean_loss,
                            double *accuracy);
fern_tensor *fern_model_predict(fern_model *m, fern_tensor *x);
fern_cell *fern_model_net(const fern_model *m);
fern_optimizer *fern_model_optimizer(const fern_model *m);
int64_t fern_model_epoch(const fern_model *m);

/* Whole training state: net parameters and buffers ("net.<name>"),
 * optimizer state ("optim.*"), epoch, step and the RNG state. */
fern_status fern_model_save(const fern_model *m, const char *path);
/* Restores it; training continues from the saved epoch and step and
 * reproduces the uninterrupted run exactly (same seed, same data order). */
fern_status fern_model_load(fern_model *m, const char *path);
/* The newest checkpoint file in dir with the prefix, or NULL (malloc'ed). */
char *fern_latest_checkpoint(const char *dir, const char *prefix);

#ifdef __cplusplus
}
#endif
#endif /* FERN_TRAIN_H */
