/* The Model API: training loop, evaluation, prediction, and the whole
 * training state in one checkpoint. The training step is one fern function,
 * compiled once per batch shape in graph mode. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "train_internal.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fwd_loss_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    fern_model *m = ud;
    fern_tensor *logits = fern_cell_call1(m->net, in[0]);
    fern_tensor *lin[2] = {logits, in[1]};
    fern_tensor *loss = NULL;
    if (!logits || fern_cell_call(m->loss, 2, lin, 1, &loss) != FERN_OK)
        return -1;
    out[0] = loss;
    out[1] = logits;
    return 0;
}

static int train_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    fern_model *m = ud;
    fern_tensor *r[2 + 4096];
    if (m->n_params > 4096) {
        fern_set_error(FERN_ERR_INVALID, "train: too many parameter tensors (%d)", m->n_params);
        return -1;
    }
    if (fern_call(m->vg, 2, in, 2 + m->n_params, r) != FERN_OK)
        return -1;
    fern_tensor **grads = r + 2;
    fern_tensor *clipped[4096];
    if (m->grad_clip > 0) {
        if (fern_clip_by_global_norm(grads, m->n_params, m->grad_clip, clipped, NULL) != FERN_OK)
            return -1;
        grads = clipped;
    }
    if (m->opt && fern_optim_step(m->opt, grads, m->n_params) != FERN_OK)
        return -1;
    out[0] = r[0];
    out[1] = r[1];
    return 0;
}

fern_model *fern_model_new(fern_cell *net, fern_cell *loss, fern_optimizer *opt, fern_metric **metrics,
                           int n_metrics)
{
    if (!net) {
        fern_set_error(FERN_ERR_INVALID, "model_new: the network is NULL");
        return NULL;
    }
    fern_model *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->net = fern_cell_retain(net);
    m->loss = fern_cell_retain(loss);
    m->opt = opt;
    if (n_metrics > 0) {
        m->metrics = calloc((size_t)n_metrics, sizeof *m->metrics);
        for (int i = 0; m->metrics && i < n_metrics; i++)
            m->metrics[i] = metrics[i];
        m->n_metrics = m->metrics ? n_metrics : 0;
    }
    m->n_params = fern_cell_parameters(net, NULL, NULL, 0);
    m->params = calloc((size_t)(m->n_params ? m->n_params : 1), sizeof *m->params);
    if (m->params)
        fern_cell_parameters(net, m->params, NULL, m->n_params);
    for (int i = 0; i < m->n_params; i++)
        fern_retain(m->params[i]);
    if (loss) {
        m->fwd_loss = fern_fn_new(fwd_loss_body, m, 2, 2);
        fern_fn_set_name(m->fwd_loss, "forward_loss");
        m->vg = m->n_params ? fern_value_and_grad_params(m->fwd_loss, m->params, m->n_params) : NULL;
        m->train_step = fern_fn_new(train_body, m, 2, 2);
        fern_fn_set_name(m->train_step, "train_step");
        m->eval_step = fern_fn_new(fwd_loss_body, m, 2, 2);
        fern_fn_set_name(m->eval_step, "eval_step");
    }
    return m;
}

void fern_model_free(fern_model *m)
{
    if (!m)
        return;
    fern_fn_release(m->train_step);
    fern_fn_release(m->eval_step);
    fern_fn_release(m->vg);
    fern_fn_release(m->fwd_loss);
    for (int i = 0; i < m->n_params; i++)
        fern_release(m->params[i]);
    free(m->params);
    for (int i = 0; i < m->n_metrics; i++)
        fern_metric_free(m->metrics[i]);
    free(m->metrics);
    fern_optim_free(m->opt);
    fern_cell_release(m->net);
    fern_cell_release(m->loss);
    free(m);
}

void fern_model_set_grad_clip(fern_model *m, double max_norm)
{
    if (m)
        m->grad_clip = max_norm;
}
void fern_model_set_eval_source(fern_model *m, fern_batch_source *eval)
{
    if (m)
        m->eval = eval;
}
void fern_model_set_quiet(fern_model *m, int quiet)
{
    if (m)
        m->quiet = quiet;
}
fern_cell *fern_model_net(const fern_model *m) { return m ? m->net : NULL; }
fern_optimizer *fern_model_optimizer(const fern_model *m) { return m ? m->opt : NULL; }
int64_t fern_model_epoch(const fern_model *m) { return m ? m->epoch : 0; }

#define EACH_CB(FIELD, STATE)                                                                      \
    for (int c_ = 0; c_ < n_callbacks; c_++)                                                       \
        if (callbacks[c_].FIELD)                                                                   \
            callbacks[c_].FIELD(callbacks[c_].ud, STATE);

fern_status fern_model_eval(fern_model *m, fern_batch_source *data, double *mean_loss, double *accuracy)
{
    if (!m || !data || !m->loss) {
        fern_set_error(FERN_ERR_INVALID, "model_eval: need a model with a loss and a data source");
        return FERN_ERR_INVALID;
    }
    int was_training = fern_cell_training(m->net);
    fern_cell_set_training(m->net, 0);
    fern_metric *loss_m = fern_metric_mean_loss(), *acc = fern_metric_accuracy();
    for (int i = 0; i < m->n_metrics; i++)
        fern_metric_reset(m->metrics[i]);
    fern_status st = data->reset(data->ud, 0);
    for (;;) {
        if (st != FERN_OK)
            break;
        fern_scope_begin();
        fern_tensor *x, *y, *out[2];
        int end = 0;
        st = data->next(data->ud, &x, &y, &end);
        if (st == FERN_OK && !end) {
            fern_tensor *in[2] = {x, y};
            st = fern_call(m->eval_step, 2, in, 2, out);
            if (st == FERN_OK) {
                fern_metric_update(loss_m, NULL, y, out[0]);
                fern_metric_update(acc, out[1], y, out[0]);
                for (int i = 0; i < m->n_metrics && st == FERN_OK; i++)
                    st = fern_metric_update(m->metrics[i], out[1], y, out[0]);
            }
        }
        fern_scope_end();
        if (end)
            break;
    }
    if (mean_loss)
        *mean_loss = fern_metric_value(loss_m);
    if (accuracy)
        *accuracy = fern_metric_value(acc);
    fern_metric_free(loss_m);
    fern_metric_free(acc);
    fern_cell_set_training(m->net, was_training);
    return st;
}

fern_status fern_model_train(fern_model *m, int64_t epochs, fern_batch_source *data,
                             fern_callback *callbacks, int n_callbacks)
{
    if (!m || !data || !m->loss || !m->opt) {
        fern_set_error(FERN_ERR_INVALID, "model_train: need a model with a loss and an optimizer, and data");
        return FERN_ERR_INVALID;
    }
    if (m->n_params == 0) {
        fern_set_error(FERN_ERR_INVALID, "model_train: %s has no parameters", fern_cell_type(m->net));
        return FERN_ERR_INVALID;
    }
    fern_train_state s;
    memset(&s, 0, sizeof s);
    s.epochs = epochs;
    s.step = m->step;
    s.steps_per_epoch = data->batches_per_epoch ? data->batches_per_epoch(data->ud) : -1;
    fern_status st = FERN_OK;
    EACH_CB(on_train_begin, &s);
    for (int64_t epoch = m->epoch; epoch < epochs && st == FERN_OK && !s.stop; epoch++) {
        fern_cell_set_training(m->net, 1);
        s.epoch = epoch;
        s.step_in_epoch = 0;
        st = data->reset(data->ud, epoch);
        int64_t skip = m->step_in_epoch; /* resuming inside an epoch */
        EACH_CB(on_epoch_begin, &s);
        double t0 = now(), loss_sum = 0;
        int64_t samples = 0, steps = 0;
        while (st == FERN_OK && !s.stop) {
            fern_scope_begin();
            fern_tensor *x, *y, *out[2];
            int end = 0;
            st = data->next(data->ud, &x, &y, &end);
            if (st != FERN_OK || end) {
                fern_scope_end();
                break;
            }
            if (skip > 0) {
                skip--;
                s.step_in_epoch++;
                fern_scope_end();
                continue;
            }
            fern_optim_prepare(m->opt);
            fern_tensor *in[2] = {x, y};
            st = fern_call(m->train_step, 2, in, 2, out);
            if (st == FERN_OK) {
                s.loss = fern_tensor_get_flat(out[0], 0);
                loss_sum += s.loss;
                steps++;
                samples += fern_tensor_dim(x, 0);
            }
            fern_scope_end();
            if (st != FERN_OK)
                break;
            m->step++;
            m->step_in_epoch = ++s.step_in_epoch;
            s.step = m->step;
            s.lr = fern_optim_lr(m->opt);
            double el = now() - t0;
            s.samples_per_second = el > 0 ? (double)samples / el : 0;
            EACH_CB(on_step_end, &s);
        }
        if (st != FERN_OK || s.stop)
            break;
        s.epoch_seconds = now() - t0;
        s.epoch_loss = steps ? loss_sum / (double)steps : 0;
        m->epoch = epoch + 1; /* a checkpoint taken now resumes at the next epoch */
        m->step_in_epoch = 0;
        s.n_metrics = 0;
        if (m->eval) {
            double el = 0, acc = 0;
            st = fern_model_eval(m, m->eval, &el, &acc);
            s.metric_names[s.n_metrics] = "eval_loss";
            s.metric_values[s.n_metrics++] = el;
            s.metric_names[s.n_metrics] = "eval_accuracy";
            s.metric_values[s.n_metrics++] = acc;
            for (int i = 0; i < m->n_metrics && s.n_metrics < 8; i++) {
                s.metric_names[s.n_metrics] = fern_metric_name(m->metrics[i]);
                s.metric_values[s.n_metrics++] = fern_metric_value(m->metrics[i]);
            }
        }
        EACH_CB(on_epoch_end, &s);
    }
    EACH_CB(on_train_end, &s);
    return st;
}

fern_tensor *fern_model_predict(fern_model *m, fern_tensor *x)
{
    if (!m) {
        fern_set_error(FERN_ERR_INVALID, "model_predict: model is NULL");
        return NULL;
    }
    int was = fern_cell_training(m->net);
    fern_cell_set_training(m->net, 0);
    fern_tensor *y = fern_cell_call1(m->net, x);
    fern_cell_set_training(m->net, was);
    return y;
}

/* ---- the whole training state -------------------------------------------- */

fern_status fern_model_save(const fern_model *m, const char *path)
{
    if (!m || !path)
        return FERN_ERR_INVALID;
    fern_checkpoint *sd = fern_cell_state_dict(m->net), *ck = fern_checkpoint_new();
    if (!sd || !ck) {
        fern_checkpoint_free(sd);
        fern_checkpoint_free(ck);
        return fern_last_status();
    }
    char name[1024];
    for (int i = 0; i < fern_checkpoint_count(sd); i++) {
        snprintf(name, sizeof name, "net.%s", fern_checkpoint_name_at(sd, i));
        fern_checkpoint_add(ck, name, fern_checkpoint_tensor_at(sd, i));
    }
    fern_checkpoint_free(sd);
    fern_status st = m->opt ? fern_optim_save_state(m->opt, ck, "optim") : FERN_OK;
    fern_checkpoint_set_str(ck, "format", "fern-model");
    fern_checkpoint_set_str(ck, "net", fern_cell_type(m->net));
    fern_checkpoint_set_int(ck, "epoch", m->epoch);
    fern_checkpoint_set_int(ck, "step_in_epoch", m->step_in_epoch);
    fern_checkpoint_set_int(ck, "step", m->step);
    fern_checkpoint_set_int(ck, "rng_seed", (int64_t)fern_get_seed());
    fern_checkpoint_set_int(ck, "rng_offset", (int64_t)fern_rng_offset());
    if (st == FERN_OK)
        st = fern_checkpoint_save(ck, path);
    fern_checkpoint_free(ck);
    return st;
}

fern_status fern_model_load(fern_model *m, const char *path)
{
    if (!m || !path)
        return FERN_ERR_INVALID;
    fern_checkpoint *ck = fern_checkpoint_load(path);
    if (!ck)
        return fern_last_status();
    fern_status st = FERN_OK;
    const char *fmt = fern_checkpoint_get_str(ck, "format");
    if (!fmt || strcmp(fmt, "fern-model") != 0) {
        fern_set_error(FERN_ERR_INVALID, "model_load: '%s' is a checkpoint but not a fern model checkpoint", path);
        st = FERN_ERR_INVALID;
    }
    fern_checkpoint *net = fern_checkpoint_new();
    for (int i = 0; st == FERN_OK && i < fern_checkpoint_count(ck); i++) {
        const char *n = fern_checkpoint_name_at(ck, i);
        if (!strncmp(n, "net.", 4))
            fern_checkpoint_add(net, n + 4, fern_checkpoint_tensor_at(ck, i));
    }
    fern_load_report r;
    if (st == FERN_OK)
        st = fern_cell_load_state_dict(m->net, net, 1, &r);
    if (st == FERN_OK && m->opt)
        st = fern_optim_load_state(m->opt, ck, "optim");
    int64_t v;
    if (st == FERN_OK) {
        if (!fern_checkpoint_get_int(ck, "epoch", &v))
            m->epoch = v;
        if (!fern_checkpoint_get_int(ck, "step_in_epoch", &v))
            m->step_in_epoch = v;
        if (!fern_checkpoint_get_int(ck, "step", &v))
            m->step = v;
        int64_t seed, off;
        if (!fern_checkpoint_get_int(ck, "rng_seed", &seed) && !fern_checkpoint_get_int(ck, "rng_offset", &off)) {
            fern_seed((uint64_t)seed);
            fern_rng_set_offset((uint64_t)off);
        }
    }
    fern_checkpoint_free(net);
    fern_checkpoint_free(ck);
    return st;
}

static int64_t step_of(const char *name)
{
    const char *s = strrchr(name, 's');
    return s ? atoll(s + 1) : -1;
}

char *fern_latest_checkpoint(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    struct dirent *de;
    char *best = NULL;
    int64_t best_step = -1;
    size_t pl = strlen(prefix);
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (strncmp(de->d_name, prefix, pl) != 0 || l < 6 || strcmp(de->d_name + l - 6, ".fckpt") != 0)
            continue;
        int64_t st = step_of(de->d_name);
        if (st > best_step) {
            free(best);
            size_t n = strlen(dir) + l + 2;
            best = malloc(n);
            if (best)
                snprintf(best, n, "%s/%s", dir, de->d_name);
            best_step = st;
        }
    }
    closedir(d);
    return best;
}
