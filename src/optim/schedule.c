/* Learning-rate schedules: pure functions of the step number. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fern/optim.h"

typedef enum { CONSTANT, STEP, EXPONENTIAL, COSINE, POLYNOMIAL, PIECEWISE, WARMUP } kind;

struct fern_lr_schedule {
    kind k;
    double base, gamma, end, power;
    int64_t n; /* step_size, t_max, total, warmup, or boundary count */
    int64_t *bounds;
    double *values;
    fern_lr_schedule *after;
};

static fern_lr_schedule *make(kind k, double base)
{
    fern_lr_schedule *s = calloc(1, sizeof *s);
    if (!s) {
        fern_set_error(FERN_ERR_NOMEM, "lr schedule: out of memory");
        return NULL;
    }
    s->k = k;
    s->base = base;
    return s;
}

static fern_lr_schedule *bad(const char *msg)
{
    fern_set_error(FERN_ERR_INVALID, "lr schedule: %s", msg);
    return NULL;
}

fern_lr_schedule *fern_lr_constant(double lr) { return make(CONSTANT, lr); }

fern_lr_schedule *fern_lr_step_decay(double base, int64_t step_size, double gamma)
{
    if (step_size <= 0)
        return bad("step_size must be positive");
    fern_lr_schedule *s = make(STEP, base);
    if (s) {
        s->n = step_size;
        s->gamma = gamma;
    }
    return s;
}

fern_lr_schedule *fern_lr_exponential(double base, double gamma)
{
    fern_lr_schedule *s = make(EXPONENTIAL, base);
    if (s)
        s->gamma = gamma;
    return s;
}

fern_lr_schedule *fern_lr_cosine(double base, int64_t t_max, double eta_min)
{
    if (t_max <= 0)
        return bad("t_max must be positive");
    fern_lr_schedule *s = make(COSINE, base);
    if (s) {
        s->n = t_max;
        s->end = eta_min;
    }
    return s;
}

fern_lr_schedule *fern_lr_polynomial(double base, int64_t total, double end, double power)
{
    if (total <= 0)
        return bad("total must be positive");
    fern_lr_schedule *s = make(POLYNOMIAL, base);
    if (s) {
        s->n = total;
        s->end = end;
        s->power = power;
    }
    return s;
}

fern_lr_schedule *fern_lr_piecewise(const int64_t *boundaries, const double *values, int n)
{
    if (n < 0 || (n > 0 && !boundaries) || !values)
        return bad("piecewise needs n boundaries and n+1 values");
    for (int i = 1; i < n; i++)
        if (boundaries[i] <= boundaries[i - 1])
            return bad("piecewise boundaries must increase");
    fern_lr_schedule *s = make(PIECEWISE, values[0]);
    if (!s)
        return NULL;
    s->n = n;
    s->bounds = malloc((size_t)(n ? n : 1) * sizeof *s->bounds);
    s->values = malloc((size_t)(n + 1) * sizeof *s->values);
    if (!s->bounds || !s->values) {
        fern_lr_schedule_free(s);
        return bad("out of memory");
    }
    if (n)
        memcpy(s->bounds, boundaries, (size_t)n * sizeof *boundaries);
    memcpy(s->values, values, (size_t)(n + 1) * sizeof *values);
    return s;
}

fern_lr_schedule *fern_lr_linear_warmup(int64_t warmup, fern_lr_schedule *after)
{
    if (!after)
        return NULL;
    if (warmup < 0) {
        fern_lr_schedule_free(after);
        return bad("warmup must be >= 0");
    }
    fern_lr_schedule *s = make(WARMUP, 0);
    if (!s) {
        fern_lr_schedule_free(after);
        return NULL;
    }
    s->n = warmup;
    s->after = after;
    return s;
}

void fern_lr_schedule_free(fern_lr_schedule *s)
{
    if (!s)
        return;
    fern_lr_schedule_free(s->after);
    free(s->bounds);
    free(s->values);
    free(s);
}

double fern_lr_at(const fern_lr_schedule *s, int64_t step)
{
    if (!s)
        return 0;
    if (step < 0)
        step = 0;
    switch (s->k) {
    case CONSTANT: return s->base;
    case STEP: return s->base * pow(s->gamma, (double)(step / s->n));
    case EXPONENTIAL: return s->base * pow(s->gamma, (double)step);
    case COSINE: {
        double t = (double)(step < s->n ? step : s->n);
        return s->end + (s->base - s->end) * (1 + cos(M_PI * t / (double)s->n)) / 2;
    }
    case POLYNOMIAL: {
        double t = (double)(step < s->n ? step : s->n);
        return (s->base - s->end) * pow(1 - t / (double)s->n, s->power) + s->end;
    }
    case PIECEWISE:
        for (int64_t i = 0; i < s->n; i++)
            if (step < s->bounds[i])
                return s->values[i];
        return s->values[s->n];
    case WARMUP:
        if (step < s->n)
            return fern_lr_at(s->after, 0) * (double)(step + 1) / (double)s->n;
        return fern_lr_at(s->after, step - s->n);
    }
    return 0;
}
