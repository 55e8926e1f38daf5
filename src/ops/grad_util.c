/* Helpers for gradient rules. */
#include "op_def.h"

fern_tensor *fern__sum_to(fern_tensor *g, const fern_tensor *like)
{
    if (!g || !like)
        return NULL;
    int lead = g->ndim - like->ndim;
    if (lead < 0) {
        fern_set_error(FERN_ERR_INTERNAL, "sum_to: gradient has fewer dims than its input");
        return NULL;
    }
    int axes[FERN_MAX_DIMS], n = 0;
    for (int d = 0; d < g->ndim; d++)
        if (d < lead || (like->shape[d - lead] == 1 && g->shape[d] != 1))
            axes[n++] = d;
    fern_tensor *r = g;
    if (n) {
        r = fern_sum(g, axes, n, 1); /* keepdims, then drop the leading ones */
        if (r && lead)
            r = fern_reshape(r, like->ndim, like->shape);
    }
    if (r && r->dtype != like->dtype)
        r = fern_cast(r, like->dtype);
    return r;
}
