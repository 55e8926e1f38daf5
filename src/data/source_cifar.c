/* CIFAR-10 / CIFAR-100 binary batches. A CIFAR-10 record is one label byte
 * and 3072 pixel bytes (1024 R, 1024 G, 1024 B, each 32x32 row major); a
 * CIFAR-100 record has a coarse and a fine label byte first. Images are
 * stored HWC after loading, so rows are views. */
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"

#define CIFAR_PIX 3072

int fern__cifar_parse(const unsigned char *b, size_t n, const char *name, int cifar100,
                      unsigned char *images, int64_t *fine, int64_t *coarse)
{
    size_t rec = (cifar100 ? 2 : 1) + CIFAR_PIX;
    if (!name)
        name = "<memory>";
    if (n % rec != 0) {
        size_t k = n / rec;
        fern_set_error(FERN_ERR_IO,
                       "cifar: %s: truncated record %zu at byte offset %zu: %zu bytes of %zu (the size "
                       "%zu is not a multiple of the %s record size %zu)",
                       name, k, k * rec, n - k * rec, rec, n, cifar100 ? "CIFAR-100" : "CIFAR-10", rec);
        return FERN_ERR_IO;
    }
    size_t nrec = n / rec;
    for (size_t r = 0; r < nrec; r++) {
        const unsigned char *p = b + r * rec;
        int lf = cifar100 ? p[1] : p[0];
        if (cifar100 && p[0] >= 20) {
            fern_set_error(FERN_ERR_IO, "cifar: %s: record %zu: coarse label %d at byte offset %zu is not "
                           "in 0..19", name, r, p[0], r * rec);
            return FERN_ERR_IO;
        }
        if (lf >= (cifar100 ? 100 : 10)) {
            fern_set_error(FERN_ERR_IO, "cifar: %s: record %zu: label %d at byte offset %zu is not in 0..%d",
                           name, r, lf, r * rec + (cifar100 ? 1 : 0), cifar100 ? 99 : 9);
            return FERN_ERR_IO;
        }
        fine[r] = lf;
        if (coarse)
            coarse[r] = cifar100 ? p[0] : 0;
        const unsigned char *px = p + (cifar100 ? 2 : 1);
        unsigned char *o = images + r * CIFAR_PIX;
        for (int i = 0; i < 1024; i++) {
            o[3 * i] = px[i];
            o[3 * i + 1] = px[1024 + i];
            o[3 * i + 2] = px[2048 + i];
        }
    }
    return FERN_OK;
}

typedef struct {
    fern_dataset base;
    fern_tensor *images; /* u8 [N,32,32,3] */
    fern_tensor *fine, *coarse;
} cifar_node;

static int cifar_get(fern__dstate *st, int64_t i, fern_row *out)
{
    const cifar_node *n = (const cifar_node *)st->ds;
    fern_tensor *t[3] = {fern__slice0(n->images, i), fern__slice0(n->fine, i),
                         n->coarse ? fern__slice0(n->coarse, i) : NULL};
    int nc = n->coarse ? 3 : 2;
    for (int c = 0; c < nc; c++)
        if (!t[c]) {
            for (int k = 0; k < nc; k++)
                fern_release(t[k]);
            return fern_last_status();
        }
    for (int c = 0; c < nc; c++)
        fern__row_push(out, n->base.cols[c], t[c]);
    return FERN_OK;
}

static void state_free(fern__dstate *st) { free(st); }
static const fern__dstate_vt cifar_vt = {fern__next_by_get, cifar_get, state_free};

static fern__dstate *cifar_open(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    return fern__state_new(sizeof(fern__dstate), &cifar_vt, ds, ctx, salt, pass);
}

static void cifar_destroy(fern_dataset *ds)
{
    cifar_node *n = (cifar_node *)ds;
    fern_release(n->images);
    fern_release(n->fine);
    fern_release(n->coarse);
}

static const fern__dnode_vt cifar10_vt = {"cifar10", cifar_open, cifar_destroy};
static const fern__dnode_vt cifar100_vt = {"cifar100", cifar_open, cifar_destroy};

fern_dataset *fern_dataset_cifar_files(const char *const *paths, int n, int cifar100)
{
    if (n < 1 || !paths) {
        fern_set_error(FERN_ERR_INVALID, "cifar: no files given");
        return NULL;
    }
    size_t rec = (cifar100 ? 2 : 1) + CIFAR_PIX;
    unsigned char **bufs = calloc((size_t)n, sizeof *bufs);
    size_t *lens = calloc((size_t)n, sizeof *lens);
    cifar_node *nd = NULL;
    int64_t total = 0;
    if (!bufs || !lens) {
        fern_set_error(FERN_ERR_NOMEM, "cifar: out of memory");
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        if (fern__read_file(paths[i], "cifar", &bufs[i], &lens[i]))
            goto fail;
        if (lens[i] % rec) { /* let the parser word the error */
            fern__cifar_parse(bufs[i], lens[i], paths[i], cifar100, NULL, NULL, NULL);
            goto fail;
        }
        total += (int64_t)(lens[i] / rec);
    }
    nd = (cifar_node *)fern__dataset_new(sizeof *nd, cifar100 ? &cifar100_vt : &cifar10_vt, 0, NULL);
    if (!nd)
        goto fail;
    int64_t ishape[4] = {total, 32, 32, 3};
    nd->images = fern__tensor_alloc(FERN_U8, 4, ishape, FERN_CPU);
    nd->fine = fern__tensor_alloc(FERN_I64, 1, &total, FERN_CPU);
    nd->coarse = cifar100 ? fern__tensor_alloc(FERN_I64, 1, &total, FERN_CPU) : NULL;
    if (!nd->images || !nd->fine || (cifar100 && !nd->coarse))
        goto fail;
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        if (fern__cifar_parse(bufs[i], lens[i], paths[i], cifar100,
                              (unsigned char *)fern_tensor_data(nd->images) + at * CIFAR_PIX,
                              (int64_t *)fern_tensor_data(nd->fine) + at,
                              cifar100 ? (int64_t *)fern_tensor_data(nd->coarse) + at : NULL))
            goto fail;
        at += (int64_t)(lens[i] / rec);
        free(bufs[i]);
        bufs[i] = NULL;
    }
    static const char *const c10[] = {"image", "label"};
    static const char *const c100[] = {"image", "label", "coarse_label"};
    if (fern__dataset_set_cols(&nd->base, cifar100 ? 3 : 2, cifar100 ? c100 : c10, "cifar"))
        goto fail;
    nd->base.size = total;
    nd->base.random_access = 1;
    free(bufs);
    free(lens);
    return &nd->base;
fail:
    for (int i = 0; bufs && i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(lens);
    fern_dataset_release(nd ? &nd->base : NULL);
    return NULL;
}

static fern_dataset *cifar_dir(const char *dir, const char *split, int cifar100)
{
    const char *who = cifar100 ? "cifar100" : "cifar10";
    if (!dir || !split) {
        fern_set_error(FERN_ERR_INVALID, "%s: %s is NULL", who, dir ? "split" : "dir");
        return NULL;
    }
    int train = strcmp(split, "train") == 0;
    if (!train && strcmp(split, "test") != 0) {
        fern_set_error(FERN_ERR_INVALID, "%s: split '%s' is not \"train\" or \"test\"", who, split);
        return NULL;
    }
    char store[5][4096];
    const char *paths[5];
    int n = 0;
    if (cifar100) {
        snprintf(store[0], sizeof store[0], "%s/%s.bin", dir, train ? "train" : "test");
        n = 1;
    } else if (train) {
        for (int i = 0; i < 5; i++)
            snprintf(store[i], sizeof store[i], "%s/data_batch_%d.bin", dir, i + 1);
        n = 5;
    } else {
        snprintf(store[0], sizeof store[0], "%s/test_batch.bin", dir);
        n = 1;
    }
    for (int i = 0; i < n; i++)
        paths[i] = store[i];
    return fern_dataset_cifar_files(paths, n, cifar100);
}

fern_dataset *fern_dataset_cifar10(const char *dir, const char *split) { return cifar_dir(dir, split, 0); }
fern_dataset *fern_dataset_cifar100(const char *dir, const char *split) { return cifar_dir(dir, split, 1); }
