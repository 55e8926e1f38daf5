/* Convolution geometry: the checks of inputs and attributes of conv1d,
 * conv2d, conv_transpose2d and conv2d_weight_grad (errors name the op,
 * shapes and dtypes), output sizes, and the kernel taps that see input. */
#include "conv_common.h"

static const char *const conv_names[] = {"conv1d", "conv2d", "conv_transpose2d"};

/* Read an ints attr of `n` values: empty -> def, one value -> repeated. */
static int get_ints(const char *op, const fern_attr *a, const char *name, int n, int64_t def,
                    int64_t minv, int64_t *out)
{
    if (a->n == 0) {
        for (int i = 0; i < n; i++)
            out[i] = def;
    } else if (a->n == 1 || a->n == n) {
        for (int i = 0; i < n; i++)
            out[i] = a->ints[a->n == 1 ? 0 : i];
    } else {
        fern_set_error(FERN_ERR_INVALID, "%s: attribute '%s' needs %d values, got %d", op, name, n,
                       a->n);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (out[i] < minv) {
            fern_set_error(FERN_ERR_INVALID, "%s: attribute '%s' must be >= %lld, got %lld", op,
                           name, (long long)minv, (long long)out[i]);
            return -1;
        }
    return 0;
}

int fern__conv_setup(const fern_op_call *c, int kind, conv_geom *g)
{
    const char *op = conv_names[kind];
    const fern_tensor *x = c->in[0], *w = c->in[1], *bias = c->in[2];
    const int sd = kind == CONV1D ? 1 : 2; /* spatial dims */
    char dx[128], dw_[128], db[128];
    fern__desc(x, dx, sizeof dx);
    fern__desc(w, dw_, sizeof dw_);

    if (x->ndim != sd + 1 && x->ndim != sd + 2) {
        if (sd == 1)
            fern_set_error(FERN_ERR_INVALID,
                           "%s: expected a 2-D (C, L) or 3-D (N, C, L) input, got %s", op, dx);
        else
            fern_set_error(FERN_ERR_INVALID,
                           "%s: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got %s", op,
                           dx);
        return -1;
    }
    if (w->ndim != sd + 2) {
        fern_set_error(FERN_ERR_INVALID, "%s: expected a %d-D weight, got %s (input %s)", op,
                       sd + 2, dw_, dx);
        return -1;
    }
    if (!fern_dtype_is_float(x->dtype))
        return fern__err_dtype(c, x, "expected a float input (f32, f64, f16, bf16)");
    if (w->dtype != x->dtype || (bias && bias->dtype != x->dtype)) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: input, weight and bias must have the same dtype, got %s, %s, %s", op,
                       dx, dw_, bias ? fern__desc(bias, db, sizeof db) : "none");
        return -1;
    }
    memset(g, 0, sizeof *g);
    g->op = op;
    g->batched = x->ndim == sd + 2;
    int o = g->batched ? 1 : 0;
    g->N = g->batched ? x->shape[0] : 1;
    g->C = x->shape[o];
    g->H = sd == 2 ? x->shape[o + 1] : 1;
    g->W = x->shape[o + sd];
    g->KH = sd == 2 ? w->shape[2] : 1;
    g->KW = w->shape[1 + sd];

    int64_t st[2], dl[2], pd[4], op2[2] = {0, 0};
    const fern_attr *A = c->attrs;
    if (get_ints(op, &A[0], "stride", sd, 1, 1, st) ||
        get_ints(op, &A[2], "dilation", sd, 1, 1, dl))
        return -1;
    if (sd == 2) {
        if (A[1].n == 2) { /* symmetric (h, w) */
            pd[0] = pd[2] = A[1].ints[0];
            pd[1] = pd[3] = A[1].ints[1];
            if (pd[0] < 0 || pd[1] < 0) {
                fern_set_error(FERN_ERR_INVALID, "%s: attribute 'pads' must be >= 0", op);
                return -1;
            }
        } else if (get_ints(op, &A[1], "pads", 4, 0, 0, pd)) {
            return -1;
        }
    } else if (get_ints(op, &A[1], "pads", 2, 0, 0, pd)) {
        return -1;
    }
    int64_t groups = A[3].i;
    if (kind == CONVT2D && get_ints(op, &A[4], "output_padding", 2, 0, 0, op2))
        return -1;
    if (groups < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: groups must be >= 1, got %lld", op,
                       (long long)groups);
        return -1;
    }
    g->G = groups;
    if (sd == 2) {
        g->sh = st[0], g->sw = st[1], g->dh = dl[0], g->dw = dl[1];
        g->pt = pd[0], g->pl = pd[1], g->pb = pd[2], g->pr = pd[3];
        g->oph = op2[0], g->opw = op2[1];
    } else {
        g->sh = g->dh = 1;
        g->sw = st[0], g->dw = dl[0], g->pl = pd[0], g->pr = pd[1];
    }
    if (g->KH < 1 || g->KW < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: kernel size must be positive, got weight %s", op,
                       dw_);
        return -1;
    }
    if (g->C % groups) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: groups (%lld) must divide the input channels (%lld), input %s", op,
                       (long long)groups, (long long)g->C, dx);
        return -1;
    }
    if (kind != CONVT2D) {
        g->O = w->shape[0];
        if (g->O % groups) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: groups (%lld) must divide the output channels (%lld), weight %s",
                           op, (long long)groups, (long long)g->O, dw_);
            return -1;
        }
        if (w->shape[1] * groups != g->C) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: channel mismatch: weight %s with groups=%lld expects %lld input "
                           "channels, input %s has %lld",
                           op, dw_, (long long)groups, (long long)(w->shape[1] * groups), dx,
                           (long long)g->C);
            return -1;
        }
        int64_t ekh = g->dh * (g->KH - 1) + 1, ekw = g->dw * (g->KW - 1) + 1;
        int64_t ph = g->H + g->pt + g->pb, pw = g->W + g->pl + g->pr;
        if (ph < ekh || pw < ekw) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: kernel size (%lld x %lld, dilated) is larger than the padded input "
                           "(%lld x %lld): input %s, weight %s",
                           op, (long long)ekh, (long long)ekw, (long long)ph, (long long)pw, dx,
                           dw_);
            return -1;
        }
        g->OH = (ph - ekh) / g->sh + 1;
        g->OW = (pw - ekw) / g->sw + 1;
    } else {
        if (w->shape[0] != g->C) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: channel mismatch: weight %s expects %lld input channels, input %s "
                           "has %lld",
                           op, dw_, (long long)w->shape[0], dx, (long long)g->C);
            return -1;
        }
        g->O = w->shape[1] * groups;
        if ((g->oph >= g->sh && g->oph >= g->dh) || (g->opw >= g->sw && g->opw >= g->dw)) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: output padding (%lld, %lld) must be smaller than either stride or "
                           "dilation",
                           op, (long long)g->oph, (long long)g->opw);
            return -1;
        }
        g->OH = (g->H - 1) * g->sh - g->pt - g->pb + g->dh * (g->KH - 1) + g->oph + 1;
        g->OW = (g->W - 1) * g->sw - g->pl - g->pr + g->dw * (g->KW - 1) + g->opw + 1;
        if (g->OH < 1 || g->OW < 1) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: output size (%lld x %lld) is too small: input %s, weight %s", op,
                           (long long)g->OH, (long long)g->OW, dx, dw_);
            return -1;
        }
    }
    if (bias && (bias->ndim != 1 || bias->shape[0] != g->O)) {
        fern_set_error(FERN_ERR_INVALID, "%s: bias must have shape [%lld], got %s (weight %s)", op,
                       (long long)g->O, fern__desc(bias, db, sizeof db), dw_);
        return -1;
    }
    return 0;
}

/* Attributes: kernel (kh, kw), stride, pads (top, left, bottom, right, or
 * symmetric (h, w)), dilation, groups. */
int fern__wgrad_setup(const fern_op_call *c, conv_geom *g)
{
    const char *op = "conv2d_weight_grad";
    const fern_tensor *x = c->in[0], *gy = c->in[1];
    const fern_attr *A = c->attrs;
    char dx[128], dg[128];
    fern__desc(x, dx, sizeof dx);
    fern__desc(gy, dg, sizeof dg);
    if (x->ndim != 4 || gy->ndim != 4) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: expected a 4-D input (N, C, H, W) and a 4-D output gradient "
                       "(N, O, OH, OW), got %s and %s",
                       op, dx, dg);
        return -1;
    }
    if (!fern_dtype_is_float(x->dtype))
        return fern__err_dtype(c, x, "expected a float input (f32, f64, f16, bf16)");
    if (gy->dtype != x->dtype) {
        fern_set_error(FERN_ERR_INVALID, "%s: input and output gradient must have the same dtype, "
                       "got %s and %s", op, dx, dg);
        return -1;
    }
    if (gy->shape[0] != x->shape[0]) {
        fern_set_error(FERN_ERR_INVALID, "%s: batch sizes differ: input %s, output gradient %s", op,
                       dx, dg);
        return -1;
    }
    memset(g, 0, sizeof *g);
    g->op = op;
    g->batched = 1;
    g->N = x->shape[0], g->C = x->shape[1], g->H = x->shape[2], g->W = x->shape[3];
    g->O = gy->shape[1], g->OH = gy->shape[2], g->OW = gy->shape[3];
    int64_t k[2], st[2], dl[2], pd[4];
    if (A[0].n == 0) {
        fern_set_error(FERN_ERR_INVALID, "%s: attribute 'kernel' is required", op);
        return -1;
    }
    if (get_ints(op, &A[0], "kernel", 2, 1, 1, k) || get_ints(op, &A[1], "stride", 2, 1, 1, st) ||
        get_ints(op, &A[3], "dilation", 2, 1, 1, dl))
        return -1;
    if (A[2].n == 2) {
        pd[0] = pd[2] = A[2].ints[0];
        pd[1] = pd[3] = A[2].ints[1];
        if (pd[0] < 0 || pd[1] < 0) {
            fern_set_error(FERN_ERR_INVALID, "%s: attribute 'pads' must be >= 0", op);
            return -1;
        }
    } else if (get_ints(op, &A[2], "pads", 4, 0, 0, pd)) {
        return -1;
    }
    g->KH = k[0], g->KW = k[1];
    g->sh = st[0], g->sw = st[1], g->dh = dl[0], g->dw = dl[1];
    g->pt = pd[0], g->pl = pd[1], g->pb = pd[2], g->pr = pd[3];
    g->G = A[4].i;
    if (g->G < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: groups must be >= 1, got %lld", op, (long long)g->G);
        return -1;
    }
    if (g->C % g->G || g->O % g->G) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: groups (%lld) must divide the input channels and the output gradient's "
                       "channels: input %s, output gradient %s",
                       op, (long long)g->G, dx, dg);
        return -1;
    }
    return 0;
}

/* Mark the kernel taps that read the input for at least one output position
 * (on a 1x1 map with 3x3 pad 1, only the centre does); returns their count. */
int64_t fern__conv_live_taps(const conv_geom *g, int64_t *taps)
{
    int64_t L = 0;
    for (int64_t kh = 0; kh < g->KH; kh++) {
        int64_t lo, hi;
        valid_range(g->OH, g->sh, kh * g->dh - g->pt, g->H, &lo, &hi);
        if (lo == hi)
            continue;
        for (int64_t kw = 0; kw < g->KW; kw++) {
            valid_range(g->OW, g->sw, kw * g->dw - g->pl, g->W, &lo, &hi);
            if (lo < hi)
                taps[L++] = kh * g->KW + kw;
        }
    }
    return L;
}

/* Scratch allocation failed in a worker thread (whose error state the
 * caller cannot see): report it on the calling thread. */
int fern__conv_worker_oom(const conv_geom *g)
{
    fern_set_error(FERN_ERR_NOMEM, "%s: out of memory for scratch buffers", g->op);
    return -1;
}

/* ---- weight layouts -------------------------------------------------------- */

typedef struct {
    const conv_geom *g;
    const conv_wview *w;
    size_t es;
    const int64_t *taps;
    int64_t nk, opad, rows; /* taps per channel, padded width, rows per group */
    char *out;
} lay_job;

#define LAY_ROWS 32 /* rows per task: their reads of each o stay in a few cache lines */

/* task t = (group, block of LAY_ROWS rows r = ci * nk + k), in tiles of
 * LAY_OT output channels: a tile's reads (LAY_OT runs of a few cache lines,
 * far apart in the plain layout) and writes stay within a few pages */
#define LAY_OT 16
static void lay_task(void *ctx, int64_t begin, int64_t end)
{
    const lay_job *j = ctx;
    const int64_t og = j->g->O / j->g->G, nrb = (j->rows + LAY_ROWS - 1) / LAY_ROWS;
    const int64_t so = j->w->so;
    int64_t at[LAY_ROWS];
    for (int64_t t = begin; t < end; t++) {
        const int64_t grp = t / nrb, r0 = t % nrb * LAY_ROWS;
        const int64_t r1 = r0 + LAY_ROWS < j->rows ? r0 + LAY_ROWS : j->rows;
        for (int64_t r = r0; r < r1; r++) {
            const int64_t ci = r / j->nk, k = r % j->nk, tap = j->taps ? j->taps[k] : k;
            at[r - r0] = conv_wview_at(j->w, grp, 0, ci, tap);
            char *d = j->out + (size_t)((grp * j->rows + r) * j->opad + og) * j->es;
            memset(d, 0, (size_t)(j->opad - og) * j->es);
        }
        for (int64_t o0 = 0; o0 < og; o0 += LAY_OT) {
            const int64_t o1 = o0 + LAY_OT < og ? o0 + LAY_OT : og;
            for (int64_t r = r0; r < r1; r++) {
                const int64_t d0 = (grp * j->rows + r) * j->opad;
                if (j->es == 4) {
                    const float *s = (const float *)j->w->base + at[r - r0];
                    float *d = (float *)j->out + d0;
                    for (int64_t o = o0; o < o1; o++)
                        d[o] = s[o * so];
                } else {
                    const double *s = (const double *)j->w->base + at[r - r0];
                    double *d = (double *)j->out + d0;
                    for (int64_t o = o0; o < o1; o++)
                        d[o] = s[o * so];
                }
            }
        }
    }
}

void fern__conv_lay_weights(const conv_geom *g, fern_dtype dt, const conv_wview *w,
                            const int64_t *taps, int64_t nk, int64_t opad, void *out)
{
    lay_job j = {.g = g, .w = w, .es = fern_dtype_size(dt), .taps = taps, .nk = nk,
                 .opad = opad, .rows = g->C / g->G * nk, .out = out};
    const int64_t nrb = (j.rows + LAY_ROWS - 1) / LAY_ROWS;
    fern_parallel_for(g->G * nrb, grain_for(LAY_ROWS * opad), lay_task, &j);
}

/* task t: output channel co = t, its row of the compact (O, C/G * nk) matrix */
static void compact_task(void *ctx, int64_t begin, int64_t end)
{
    const lay_job *j = ctx;
    const int64_t og = j->g->O / j->g->G, cin_g = j->g->C / j->g->G;
    const char *src = j->w->base;
    for (int64_t co = begin; co < end; co++) {
        char *d = j->out + (size_t)(co * cin_g * j->nk) * j->es;
        for (int64_t ci = 0; ci < cin_g; ci++)
            for (int64_t k = 0; k < j->nk; k++, d += j->es) {
                const int64_t tap = j->taps ? j->taps[k] : k;
                memcpy(d, src + (size_t)conv_wview_at(j->w, co / og, co % og, ci, tap) * j->es,
                       j->es);
            }
    }
}

void fern__conv_compact_weights(const conv_geom *g, fern_dtype dt, const conv_wview *w,
                                const int64_t *taps, int64_t nk, void *out)
{
    lay_job j = {.g = g, .w = w, .es = fern_dtype_size(dt), .taps = taps, .nk = nk, .out = out};
    fern_parallel_for(g->O, grain_for(g->C / g->G * nk), compact_task, &j);
}

void fern__conv_pad_planes(const conv_geom *g, const char *x, int64_t first, char *xp, int64_t Hp,
                           int64_t Wp, size_t es, int64_t begin, int64_t end)
{
    const int64_t plane = Hp * Wp, HW = g->H * g->W;
    for (int64_t t = begin; t < end; t++) {
        char *dst = xp + (size_t)(t * plane) * es;
        const char *src = x + (size_t)((first + t) * HW) * es;
        memset(dst, 0, (size_t)plane * es);
        for (int64_t ih = 0; ih < g->H; ih++)
            memcpy(dst + (size_t)((ih + g->pt) * Wp + g->pl) * es, src + (size_t)(ih * g->W) * es,
                   (size_t)g->W * es);
    }
}

int64_t fern__conv_batch_chunk(double per, int64_t P, int64_t rows, int64_t N)
{
    if (per >= CONV_TARGET_MNK && P >= CONV_MIN_N)
        return 1;
    int64_t a = (int64_t)(CONV_TARGET_MNK / per) + 1, b = (CONV_MIN_N + P - 1) / P;
    int64_t nb = a > b ? a : b, cap = CONV_BUF_CAP / (rows * P);
    if (nb > cap)
        nb = cap;
    if (nb > N)
        nb = N;
    return nb < 1 ? 1 : nb;
}
