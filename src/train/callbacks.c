/* Built-in callbacks: loss and time monitors (with a progress bar on a
 * terminal), checkpointing with rotation, early stopping, per-epoch LR and
 * user functions. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train_internal.h"

static void *box(const void *v, size_t n)
{
    void *p = malloc(n);
    if (p)
        memcpy(p, v, n);
    return p;
}

/* ---- loss monitor with a progress bar ------------------------------------ */
typedef struct {
    int64_t every;
    int tty;
} loss_mon;

static void lm_step(void *ud, fern_train_state *s)
{
    loss_mon *l = ud;
    if (l->tty && s->steps_per_epoch > 0) {
        if (s->step_in_epoch % 10 != 0 && s->step_in_epoch != s->steps_per_epoch)
            return;
        int width = 30, done = (int)(width * s->step_in_epoch / s->steps_per_epoch);
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < done ? '#' : '.';
        bar[width] = '\0';
        fprintf(stdout, "\repoch %lld/%lld [%s] %lld/%lld  loss %.4f  %.0f samples/s ",
                (long long)s->epoch + 1, (long long)s->epochs, bar, (long long)s->step_in_epoch,
                (long long)s->steps_per_epoch, s->loss, s->samples_per_second);
        fflush(stdout);
    } else if (l->every > 0 && s->step % l->every == 0) {
        printf("epoch %lld step %lld  loss %.6f  lr %.3g  %.0f samples/s\n", (long long)s->epoch + 1,
               (long long)s->step, s->loss, s->lr, s->samples_per_second);
    }
}

static void lm_epoch_end(void *ud, fern_train_state *s)
{
    loss_mon *l = ud;
    if (l->tty)
        printf("\n");
    (void)s;
}

fern_callback fern_cb_loss_monitor(int64_t every)
{
    loss_mon l = {every, isatty(STDOUT_FILENO)};
    fern_callback cb = {box(&l, sizeof l), NULL, NULL, lm_step, lm_epoch_end, NULL, free};
    return cb;
}

/* ---- time monitor ----------------------------------------------------------- */
static void tm_epoch_end(void *ud, fern_train_state *s)
{
    (void)ud;
    printf("epoch %lld/%lld: %.2f s, %.0f samples/s, mean loss %.4f", (long long)s->epoch + 1,
           (long long)s->epochs, s->epoch_seconds, s->samples_per_second, s->epoch_loss);
    for (int i = 0; i < s->n_metrics; i++)
        printf(", %s %.4f", s->metric_names[i], s->metric_values[i]);
    printf("\n");
    fflush(stdout);
}

fern_callback fern_cb_time_monitor(void)
{
    fern_callback cb = {NULL, NULL, NULL, NULL, tm_epoch_end, NULL, NULL};
    return cb;
}

/* ---- checkpoints --------------------------------------------------------------- */
typedef struct {
    fern_model *m;
    char dir[512], prefix[128];
    int64_t every_steps, every_epochs;
    int keep_max;
} ckpt_cb;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void rotate(ckpt_cb *c)
{
    if (c->keep_max <= 0)
        return;
    DIR *d = opendir(c->dir);
    if (!d)
        return;
    int64_t steps[4096];
    int n = 0;
    struct dirent *de;
    size_t pl = strlen(c->prefix);
    while ((de = readdir(d)) && n < 4096) {
        size_t l = strlen(de->d_name);
        if (!strncmp(de->d_name, c->prefix, pl) && de->d_name[pl] == '-' && l > 6 &&
            !strcmp(de->d_name + l - 6, ".fckpt")) {
            const char *s = strrchr(de->d_name, 's');
            if (s)
                steps[n++] = atoll(s + 1);
        }
    }
    closedir(d);
    qsort(steps, (size_t)n, sizeof *steps, cmp_i64);
    for (int i = 0; i + c->keep_max < n; i++) {
        /* the file name is rebuilt from the step: prefix-s<step>.fckpt */
        char path[800];
        snprintf(path, sizeof path, "%s/%s-s%lld.fckpt", c->dir, c->prefix, (long long)steps[i]);
        remove(path);
    }
}

static void save_now(ckpt_cb *c, fern_train_state *s)
{
    char path[800];
    snprintf(path, sizeof path, "%s/%s-s%lld.fckpt", c->dir, c->prefix, (long long)s->step);
    if (fern_model_save(c->m, path) != FERN_OK) {
        fprintf(stderr, "checkpoint: %s\n", fern_last_error());
        fern_clear_error();
        return;
    }
    rotate(c);
}

static void ck_step(void *ud, fern_train_state *s)
{
    ckpt_cb *c = ud;
    if (c->every_steps > 0 && s->step % c->every_steps == 0)
        save_now(c, s);
}

static void ck_epoch(void *ud, fern_train_state *s)
{
    ckpt_cb *c = ud;
    if (c->every_epochs > 0 && (s->epoch + 1) % c->every_epochs == 0)
        save_now(c, s);
}

fern_callback fern_cb_checkpoint(fern_model *m, const char *dir, const char *prefix, int64_t every_steps,
                                 int64_t every_epochs, int keep_max)
{
    ckpt_cb c = {m, "", "", every_steps, every_epochs, keep_max};
    snprintf(c.dir, sizeof c.dir, "%s", dir ? dir : ".");
    snprintf(c.prefix, sizeof c.prefix, "%s", prefix ? prefix : "ckpt");
    fern_callback cb = {box(&c, sizeof c), NULL, NULL, ck_step, ck_epoch, NULL, free};
    return cb;
}

/* ---- early stopping --------------------------------------------------------------- */
typedef struct {
    char name[64];
    int patience, mode_max, bad;
    double min_delta, best;
    int have_best;
} early;

static void es_epoch(void *ud, fern_train_state *s)
{
    early *e = ud;
    double v = NAN;
    if (!strcmp(e->name, "loss"))
        v = s->epoch_loss;
    for (int i = 0; i < s->n_metrics; i++)
        if (!strcmp(e->name, s->metric_names[i]))
            v = s->metric_values[i];
    if (isnan(v))
        return;
    double gain = e->mode_max ? v - e->best : e->best - v;
    if (!e->have_best || gain > e->min_delta) {
        e->best = v;
        e->have_best = 1;
        e->bad = 0;
    } else if (++e->bad >= e->patience) {
        printf("early stopping: %s has not improved for %d epochs (best %.6g)\n", e->name, e->patience, e->best);
        s->stop = 1;
    }
}

fern_callback fern_cb_early_stopping(const char *name, int patience, double min_delta, int mode_max)
{
    early e = {"", patience > 0 ? patience : 1, mode_max, 0, min_delta, 0, 0};
    snprintf(e.name, sizeof e.name, "%s", name ? name : "loss");
    fern_callback cb = {box(&e, sizeof e), NULL, NULL, NULL, es_epoch, NULL, free};
    return cb;
}

/* ---- per-epoch learning rate ------------------------------------------------------- */
typedef struct {
    fern_optimizer *opt;
    fern_lr_schedule *s;
} lr_cb;

static void lr_epoch_begin(void *ud, fern_train_state *s)
{
    lr_cb *l = ud;
    double lr = fern_lr_at(l->s, s->epoch);
    fern_optim_set_schedule(l->opt, fern_lr_constant(lr));
}

static void lr_free(void *ud)
{
    lr_cb *l = ud;
    fern_lr_schedule_free(l->s);
    free(l);
}

fern_callback fern_cb_lr_per_epoch(fern_optimizer *opt, fern_lr_schedule *schedule)
{
    lr_cb l = {opt, schedule};
    fern_callback cb = {box(&l, sizeof l), NULL, lr_epoch_begin, NULL, NULL, NULL, lr_free};
    return cb;
}

/* ---- a user function ------------------------------------------------------------------ */
fern_callback fern_cb_lambda(void (*on_step_end)(void *ud, fern_train_state *s), void *ud)
{
    fern_callback cb = {ud, NULL, NULL, on_step_end, NULL, NULL, NULL};
    return cb;
}
