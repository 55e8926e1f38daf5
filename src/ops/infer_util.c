/* Helpers shared by the ops' shape and dtype inference. */
#include <stdio.h>
#include <string.h>

#include "op_def.h"

fern_attr fern__attr_ints(const int64_t *v, int n)
{
    fern_attr a = {.kind = FERN_ATTR_INTS, .n = n};
    for (int i = 0; i < n && i < FERN_ATTR_MAX_VALUES; i++)
        a.ints[i] = v[i];
    return a;
}

fern_attr fern__attr_ints_i(const int *v, int n)
{
    fern_attr a = {.kind = FERN_ATTR_INTS, .n = n};
    for (int i = 0; i < n && i < FERN_ATTR_MAX_VALUES; i++)
        a.ints[i] = v[i];
    return a;
}

fern_attr fern__attr_floats(const double *v, int n)
{
    fern_attr a = {.kind = FERN_ATTR_FLOATS, .n = n};
    for (int i = 0; i < n && i < FERN_ATTR_MAX_VALUES; i++)
        a.floats[i] = v[i];
    return a;
}

int fern__broadcast_shapes(const char *op, int n, fern_tensor *const *ts, int *out_ndim,
                           int64_t *out_shape)
{
    int nd = 0;
    for (int i = 0; i < n; i++)
        if (ts[i] && ts[i]->ndim > nd)
            nd = ts[i]->ndim;
    for (int d = 0; d < nd; d++)
        out_shape[d] = 1;
    for (int i = 0; i < n; i++) {
        const fern_tensor *t = ts[i];
        if (!t)
            continue;
        for (int d = 0; d < t->ndim; d++) {
            int od = nd - t->ndim + d;
            int64_t s = t->shape[d];
            if (s == out_shape[od] || s == 1)
                continue;
            if (out_shape[od] == 1) {
                out_shape[od] = s;
                continue;
            }
            char msg[512];
            size_t used = 0;
            for (int j = 0; j < n; j++) {
                char dsc[128];
                if (ts[j])
                    used += (size_t)snprintf(msg + used, sizeof msg - used, "%s%s", j ? " and " : "",
                                             fern_tensor_desc(ts[j], dsc, sizeof dsc));
                if (used >= sizeof msg)
                    break;
            }
            fern_set_error(FERN_ERR_INVALID, "%s: shapes cannot be broadcast together: %s", op, msg);
            return -1;
        }
    }
    *out_ndim = nd;
    return 0;
}

int fern__reduce_mask(const char *op, const fern_attr *axes, int ndim, int *mask)
{
    for (int d = 0; d < ndim; d++)
        mask[d] = axes->n == 0;
    for (int k = 0; k < axes->n; k++) {
        int64_t a = axes->ints[k];
        int64_t na = a < 0 ? a + ndim : a;
        if (na < 0 || na >= ndim) {
            fern_set_error(FERN_ERR_INVALID, "%s: axis %lld is out of range for a %d-d tensor", op,
                           (long long)a, ndim);
            return -1;
        }
        if (mask[na]) {
            fern_set_error(FERN_ERR_INVALID, "%s: axis %lld appears twice", op, (long long)a);
            return -1;
        }
        mask[na] = 1;
    }
    return 0;
}

void fern__reduce_shape(int ndim, const int64_t *shape, const int *mask, int keepdims,
                        int *out_ndim, int64_t *out_shape)
{
    int o = 0;
    for (int d = 0; d < ndim; d++) {
        if (!mask[d])
            out_shape[o++] = shape[d];
        else if (keepdims)
            out_shape[o++] = 1;
    }
    *out_ndim = o;
}
