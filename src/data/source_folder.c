/* Image folders: root/<class>/<file>.{jpg,jpeg,png}. Classes and files
 * are sorted by name (byte order), class i is the i-th sub-folder. Files
 * are read and decoded when a row is read, so a map stage after this
 * source decodes in its worker threads. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data_internal.h"

typedef struct {
    fern_dataset base;
    char **classes;
    int nclasses;
    char **paths;
    int64_t npaths;
    fern_tensor *labels; /* i64 [N] */
    int decode, channels;
} folder_node;

static int folder_get(fern__dstate *st, int64_t i, fern_row *out)
{
    const folder_node *n = (const folder_node *)st->ds;
    unsigned char *buf;
    size_t len;
    if (fern__read_file(n->paths[i], "image_folder", &buf, &len))
        return fern_last_status();
    fern_tensor *img;
    if (n->decode) {
        fern_decode_opts o = {n->channels, 0};
        img = fern__decode(buf, len, n->paths[i], &o);
    } else {
        int64_t sh = (int64_t)len;
        img = fern__tensor_alloc(FERN_U8, 1, &sh, FERN_CPU);
        if (img && len)
            memcpy(fern_tensor_data(img), buf, len);
    }
    free(buf);
    fern_tensor *lb = img ? fern__slice0(n->labels, i) : NULL;
    if (!lb) {
        fern_release(img);
        return fern_last_status() ? fern_last_status() : FERN_ERR_INTERNAL;
    }
    fern__row_push(out, n->base.cols[0], img);
    fern__row_push(out, n->base.cols[1], lb);
    return FERN_OK;
}

static void state_free(fern__dstate *st) { free(st); }
static const fern__dstate_vt folder_vt = {fern__next_by_get, folder_get, state_free};

static fern__dstate *folder_open(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    return fern__state_new(sizeof(fern__dstate), &folder_vt, ds, ctx, salt, pass);
}

static void free_list(char **v, int64_t n)
{
    for (int64_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static void folder_destroy(fern_dataset *ds)
{
    folder_node *n = (folder_node *)ds;
    free_list(n->classes, n->nclasses);
    free_list(n->paths, n->npaths);
    fern_release(n->labels);
}

static const fern__dnode_vt folder_node_vt = {"image_folder", folder_open, folder_destroy};

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int has_image_ext(const char *s)
{
    const char *dot = strrchr(s, '.');
    if (!dot)
        return 0;
    char e[8];
    size_t k = 0;
    for (const char *p = dot + 1; *p && k < sizeof e - 1; p++)
        e[k++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    e[k] = 0;
    if (strlen(dot + 1) != k)
        return 0;
    return strcmp(e, "jpg") == 0 || strcmp(e, "jpeg") == 0 || strcmp(e, "png") == 0;
}

typedef struct {
    char **v;
    int64_t n, cap;
} strvec;

static int strvec_push(strvec *s, const char *str)
{
    if (s->n == s->cap) {
        int64_t cap = s->cap ? s->cap * 2 : 64;
        char **nv = realloc(s->v, (size_t)cap * sizeof *nv);
        if (!nv)
            return -1;
        s->v = nv;
        s->cap = cap;
    }
    char *c = strdup(str);
    if (!c)
        return -1;
    s->v[s->n++] = c;
    return 0;
}

/* Sorted names of entries of `dir` that are directories (want_dir) or
 * regular image files. */
static int list_dir(const char *dir, int want_dir, strvec *out)
{
    DIR *d = opendir(dir);
    if (!d) {
        fern_set_error(FERN_ERR_IO, "image_folder: cannot open directory '%s'", dir);
        return -1;
    }
    struct dirent *e;
    char path[8192];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0)
            continue;
        int ok = want_dir ? S_ISDIR(sb.st_mode) : (S_ISREG(sb.st_mode) && has_image_ext(e->d_name));
        if (ok && strvec_push(out, e->d_name)) {
            closedir(d);
            fern_set_error(FERN_ERR_NOMEM, "image_folder: out of memory");
            return -1;
        }
    }
    closedir(d);
    if (out->n > 1)
        qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return 0;
}

fern_dataset *fern_dataset_image_folder(const char *root, const fern_image_folder_opts *opts)
{
    fern_image_folder_opts o = {1, 0};
    if (opts)
        o = *opts;
    if (!root) {
        fern_set_error(FERN_ERR_INVALID, "image_folder: root is NULL");
        return NULL;
    }
    if (o.channels != 0 && o.channels != 1 && o.channels != 3 && o.channels != 4) {
        fern_set_error(FERN_ERR_INVALID, "image_folder: channels %d is not 0, 1, 3 or 4", o.channels);
        return NULL;
    }
    strvec classes = {0}, paths = {0};
    int64_t *labels = NULL;
    int64_t nlab = 0, caplab = 0;
    folder_node *n = NULL;
    if (list_dir(root, 1, &classes))
        goto fail;
    if (classes.n == 0) {
        fern_set_error(FERN_ERR_IO, "image_folder: '%s' has no class sub-folders", root);
        goto fail;
    }
    for (int64_t c = 0; c < classes.n; c++) {
        char dir[8192];
        snprintf(dir, sizeof dir, "%s/%s", root, classes.v[c]);
        strvec files = {0};
        if (list_dir(dir, 0, &files)) {
            free_list(files.v, files.n);
            goto fail;
        }
        for (int64_t f = 0; f < files.n; f++) {
            char p[16384];
            snprintf(p, sizeof p, "%s/%s", dir, files.v[f]);
            if (nlab == caplab) {
                int64_t cap = caplab ? caplab * 2 : 256;
                int64_t *nl = realloc(labels, (size_t)cap * sizeof *nl);
                if (!nl) {
                    free_list(files.v, files.n);
                    fern_set_error(FERN_ERR_NOMEM, "image_folder: out of memory");
                    goto fail;
                }
                labels = nl;
                caplab = cap;
            }
            if (strvec_push(&paths, p)) {
                free_list(files.v, files.n);
                fern_set_error(FERN_ERR_NOMEM, "image_folder: out of memory");
                goto fail;
            }
            labels[nlab++] = c;
        }
        free_list(files.v, files.n);
    }
    if (paths.n == 0) {
        fern_set_error(FERN_ERR_IO, "image_folder: no .jpg/.jpeg/.png files under '%s'", root);
        goto fail;
    }
    n = (folder_node *)fern__dataset_new(sizeof *n, &folder_node_vt, 0, NULL);
    if (!n)
        goto fail;
    n->classes = classes.v;
    n->nclasses = (int)classes.n;
    n->paths = paths.v;
    n->npaths = paths.n;
    classes.v = NULL;
    paths.v = NULL;
    n->decode = o.decode;
    n->channels = o.channels;
    n->labels = fern__tensor_alloc(FERN_I64, 1, &nlab, FERN_CPU);
    if (!n->labels)
        goto fail;
    memcpy(fern_tensor_data(n->labels), labels, (size_t)nlab * sizeof *labels);
    free(labels);
    labels = NULL;
    static const char *const cols[] = {"image", "label"};
    if (fern__dataset_set_cols(&n->base, 2, cols, "image_folder"))
        goto fail;
    n->base.size = nlab;
    n->base.random_access = 1;
    return &n->base;
fail:
    free_list(classes.v, classes.n);
    free_list(paths.v, paths.n);
    free(labels);
    fern_dataset_release(n ? &n->base : NULL);
    return NULL;
}

int fern_dataset_image_folder_classes(const fern_dataset *ds, const char *const **names)
{
    if (!ds || ds->vt != &folder_node_vt) {
        if (names)
            *names = NULL;
        return 0;
    }
    const folder_node *n = (const folder_node *)ds;
    if (names)
        *names = (const char *const *)n->classes;
    return n->nclasses;
}
