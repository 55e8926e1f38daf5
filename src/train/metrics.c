/* Metrics, accumulated on the host over batches. */
#include <stdlib.h>
#include <string.h>

#include "fern/train.h"

typedef enum { ACCURACY, TOPK, PRECISION, RECALL, F1, CONFUSION, MEAN_LOSS } kind;

struct fern_metric {
    kind k;
    char name[32];
    int topk, classes;
    double correct, total, loss_sum;
    int64_t *cm; /* confusion counts, classes x classes */
};

static fern_metric *make(kind k, const char *name, int classes)
{
    fern_metric *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->k = k;
    snprintf(m->name, sizeof m->name, "%s", name);
    m->classes = classes;
    if (classes > 0 && !(m->cm = calloc((size_t)classes * (size_t)classes, sizeof *m->cm))) {
        free(m);
        return NULL;
    }
    return m;
}

fern_metric *fern_metric_accuracy(void) { return make(ACCURACY, "accuracy", 0); }
fern_metric *fern_metric_mean_loss(void) { return make(MEAN_LOSS, "loss", 0); }

fern_metric *fern_metric_topk(int k)
{
    if (k < 1) {
        fern_set_error(FERN_ERR_INVALID, "metric_topk: k must be >= 1");
        return NULL;
    }
    char n[32];
    snprintf(n, sizeof n, "top%d_accuracy", k);
    fern_metric *m = make(TOPK, n, 0);
    if (m)
        m->topk = k;
    return m;
}

static fern_metric *per_class(kind k, const char *name, int classes)
{
    if (classes < 2) {
        fern_set_error(FERN_ERR_INVALID, "metric %s: needs at least 2 classes", name);
        return NULL;
    }
    return make(k, name, classes);
}

fern_metric *fern_metric_precision(int c) { return per_class(PRECISION, "precision", c); }
fern_metric *fern_metric_recall(int c) { return per_class(RECALL, "recall", c); }
fern_metric *fern_metric_f1(int c) { return per_class(F1, "f1", c); }
fern_metric *fern_metric_confusion_matrix(int c) { return per_class(CONFUSION, "confusion_matrix", c); }

void fern_metric_free(fern_metric *m)
{
    if (m)
        free(m->cm);
    free(m);
}

const char *fern_metric_name(const fern_metric *m) { return m ? m->name : "NULL"; }

void fern_metric_reset(fern_metric *m)
{
    if (!m)
        return;
    m->correct = m->total = m->loss_sum = 0;
    if (m->cm)
        memset(m->cm, 0, (size_t)m->classes * (size_t)m->classes * sizeof *m->cm);
}

fern_status fern_metric_update(fern_metric *m, fern_tensor *logits, fern_tensor *labels, fern_tensor *loss)
{
    if (!m || !labels) {
        fern_set_error(FERN_ERR_INVALID, "metric_update: NULL metric or labels");
        return FERN_ERR_INVALID;
    }
    int64_t n = fern_tensor_dim(labels, 0);
    if (m->k == MEAN_LOSS) {
        if (!loss)
            return FERN_ERR_INVALID;
        m->loss_sum += fern_tensor_get_flat(loss, 0) * (double)n;
        m->total += (double)n;
        return FERN_OK;
    }
    if (!logits || fern_tensor_ndim(logits) != 2 || fern_tensor_dim(logits, 0) != n) {
        char d[96];
        fern_set_error(FERN_ERR_INVALID, "metric %s: logits must be (N, C) for N=%lld labels, got %s", m->name,
                       (long long)n, fern_tensor_desc(logits, d, sizeof d));
        return FERN_ERR_INVALID;
    }
    int64_t c = fern_tensor_dim(logits, 1);
    if (m->classes && c != m->classes) {
        fern_set_error(FERN_ERR_INVALID, "metric %s: %lld classes in the logits, %d expected", m->name,
                       (long long)c, m->classes);
        return FERN_ERR_INVALID;
    }
    fern_scope_begin();
    fern_tensor *l = fern_contiguous(fern_cast(logits, FERN_F64));
    fern_tensor *y = fern_contiguous(fern_cast(labels, FERN_I64));
    fern_status st = l && y ? FERN_OK : fern_last_status();
    const double *lp = st == FERN_OK ? fern_tensor_data(l) : NULL;
    const int64_t *yp = st == FERN_OK ? fern_tensor_data(y) : NULL;
    for (int64_t i = 0; st == FERN_OK && i < n; i++) {
        const double *row = lp + i * c;
        int64_t t = yp[i];
        if (t < 0 || t >= c) {
            fern_set_error(FERN_ERR_INVALID, "metric %s: label %lld out of range for %lld classes", m->name,
                           (long long)t, (long long)c);
            st = FERN_ERR_INVALID;
            break;
        }
        int64_t best = 0, rank = 0;
        for (int64_t j = 1; j < c; j++)
            if (row[j] > row[best])
                best = j;
        for (int64_t j = 0; j < c; j++) /* classes scoring above the true one */
            rank += row[j] > row[t] || (row[j] == row[t] && j < t);
        if (m->k == ACCURACY)
            m->correct += best == t;
        else if (m->k == TOPK)
            m->correct += rank < m->topk;
        else
            m->cm[t * m->classes + best]++;
        m->total += 1;
    }
    fern_scope_end();
    return st;
}

static double macro(const fern_metric *m, int which)
{
    int C = m->classes;
    double sum = 0;
    for (int k = 0; k < C; k++) {
        double tp = (double)m->cm[k * C + k], pred = 0, actual = 0;
        for (int j = 0; j < C; j++) {
            pred += (double)m->cm[j * C + k];
            actual += (double)m->cm[k * C + j];
        }
        double p = pred > 0 ? tp / pred : 0, r = actual > 0 ? tp / actual : 0;
        sum += which == 0 ? p : which == 1 ? r : (p + r > 0 ? 2 * p * r / (p + r) : 0);
    }
    return sum / C;
}

double fern_metric_value(const fern_metric *m)
{
    if (!m || m->total == 0)
        return 0;
    switch (m->k) {
    case ACCURACY:
    case TOPK: return m->correct / m->total;
    case MEAN_LOSS: return m->loss_sum / m->total;
    case PRECISION: return macro(m, 0);
    case RECALL: return macro(m, 1);
    case F1: return macro(m, 2);
    case CONFUSION: {
        double diag = 0;
        for (int k = 0; k < m->classes; k++)
            diag += (double)m->cm[k * m->classes + k];
        return diag / m->total; /* accuracy from the matrix */
    }
    }
    return 0;
}

int fern_metric_confusion(const fern_metric *m, const int64_t **counts)
{
    if (!m || !m->cm)
        return 0;
    *counts = m->cm;
    return m->classes;
}
