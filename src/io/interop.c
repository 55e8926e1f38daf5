/* Interop formats: safetensors (JSON header via cJSON), NumPy .npy, and
 * .npz (a zip of .npy files, via libzip). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "io_internal.h"

/* ---- safetensors --------------------------------------------------------------- */

static const char *st_names[FERN_DTYPE_COUNT] = {
    [FERN_F32] = "F32", [FERN_F64] = "F64", [FERN_F16] = "F16", [FERN_BF16] = "BF16",
    [FERN_I8] = "I8",   [FERN_U8] = "U8",   [FERN_I32] = "I32", [FERN_I64] = "I64",
    [FERN_BOOL] = "BOOL"};

fern_status fern_safetensors_save(const fern_checkpoint *ck, const char *path)
{
    if (!ck || !path) {
        fern_set_error(FERN_ERR_INVALID, "safetensors_save: NULL argument");
        return FERN_ERR_INVALID;
    }
    cJSON *root = cJSON_CreateObject();
    int n = fern_checkpoint_count(ck);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        fern_tensor *t = fern_checkpoint_tensor_at(ck, i);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "dtype", st_names[fern_tensor_dtype(t)]);
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < fern_tensor_ndim(t); d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)fern_tensor_shape(t)[d]));
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        off += fern_tensor_nbytes(t);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToObject(root, fern_checkpoint_name_at(ck, i), e);
    }
    char *hdr = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!hdr)
        return FERN_ERR_NOMEM;
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7; /* align data to 8 */
    size_t total = 8 + padded + off;
    unsigned char *buf = malloc(total ? total : 1);
    if (!buf) {
        free(hdr);
        return FERN_ERR_NOMEM;
    }
    put_le(buf, padded, 8);
    memcpy(buf + 8, hdr, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    free(hdr);
    size_t at = 8 + padded;
    for (int i = 0; i < n; i++) {
        fern_tensor *t = fern_checkpoint_tensor_at(ck, i);
        size_t nb = fern_tensor_nbytes(t);
        if (nb && fern_tensor_copy_to(t, buf + at, nb) != FERN_OK) {
            free(buf);
            return fern_last_status();
        }
        at += nb;
    }
    fern_status st = fern__write_file_atomic("safetensors_save", path, buf, total);
    free(buf);
    return st;
}

fern_checkpoint *fern_safetensors_load(const char *path)
{
    size_t n;
    unsigned char *b;
    if (fern__read_file(path, "safetensors_load", &b, &n))
        return NULL;
    fern_checkpoint *ck = NULL;
    cJSON *root = NULL;
    if (n < 8) {
        fern_set_error(FERN_ERR_IO, "safetensors_load: '%s' is truncated (no 8-byte header size at offset 0)", path);
        goto fail;
    }
    uint64_t hl = get_le(b, 8);
    if (hl > n - 8) {
        fern_set_error(FERN_ERR_IO, "safetensors_load: '%s': header of %llu bytes at offset 8 runs past the end (%zu bytes)",
                       path, (unsigned long long)hl, n);
        goto fail;
    }
    root = cJSON_ParseWithLength((const char *)b + 8, (size_t)hl);
    if (!cJSON_IsObject(root)) {
        fern_set_error(FERN_ERR_IO, "safetensors_load: '%s': the header at offset 8 is not a JSON object", path);
        goto fail;
    }
    ck = fern_checkpoint_new();
    size_t data_at = 8 + (size_t)hl, data_len = n - data_at;
    cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        if (!strcmp(e->string, "__metadata__")) {
            cJSON *m;
            cJSON_ArrayForEach(m, e) if (cJSON_IsString(m)) fern_checkpoint_set_str(ck, m->string, m->valuestring);
            continue;
        }
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        int d = -1;
        for (int k = 0; cJSON_IsString(dt) && k < FERN_DTYPE_COUNT; k++)
            if (!strcmp(dt->valuestring, st_names[k]))
                d = k;
        if (d < 0 || !cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > FERN_MAX_DIMS ||
            !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2) {
            fern_set_error(FERN_ERR_IO, "safetensors_load: '%s': tensor '%s' has a bad or unsupported entry "
                           "(dtype %s)", path, e->string, cJSON_IsString(dt) ? dt->valuestring : "?");
            goto fail;
        }
        int64_t sh[FERN_MAX_DIMS];
        int nd = cJSON_GetArraySize(shape);
        double numel = 1;
        for (int k = 0; k < nd; k++) {
            cJSON *s = cJSON_GetArrayItem(shape, k);
            if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble > 9e15)
                goto bad_shape;
            sh[k] = (int64_t)s->valuedouble;
            numel *= s->valuedouble;
        }
        double o0 = cJSON_GetArrayItem(offs, 0)->valuedouble, o1 = cJSON_GetArrayItem(offs, 1)->valuedouble;
        if (!(o0 >= 0 && o1 >= o0 && o1 <= (double)data_len &&
              o1 - o0 == numel * (double)fern_dtype_size((fern_dtype)d))) {
            fern_set_error(FERN_ERR_IO, "safetensors_load: '%s': tensor '%s' has data offsets [%.0f, %.0f] that "
                           "do not fit its shape or the file (data section of %zu bytes at offset %zu)",
                           path, e->string, o0, o1, data_len, data_at);
            goto fail;
        }
        fern_tensor *t = fern__tensor_alloc((fern_dtype)d, nd, sh, FERN_CPU);
        if (!t)
            goto fail;
        memcpy(t->storage->data, b + data_at + (size_t)o0, (size_t)(o1 - o0));
        fern_checkpoint_add(ck, e->string, t);
        fern_release(t);
        continue;
    bad_shape:
        fern_set_error(FERN_ERR_IO, "safetensors_load: '%s': tensor '%s' has a bad shape", path, e->string);
        goto fail;
    }
    cJSON_Delete(root);
    free(b);
    return ck;
fail:
    cJSON_Delete(root);
    fern_checkpoint_free(ck);
    free(b);
    return NULL;
}

/* ---- npy --------------------------------------------------------------------- */

static const char *npy_descr(fern_dtype dt)
{
    switch (dt) {
    case FERN_F32: return "<f4";
    case FERN_F64: return "<f8";
    case FERN_F16: return "<f2";
    case FERN_I8: return "|i1";
    case FERN_U8: return "|u1";
    case FERN_I32: return "<i4";
    case FERN_I64: return "<i8";
    case FERN_BOOL: return "|b1";
    default: return NULL;
    }
}

static unsigned char *npy_encode(const char *who, const fern_tensor *t, size_t *len)
{
    const char *descr = npy_descr(fern_tensor_dtype(t));
    if (!descr) {
        fern_set_error(FERN_ERR_UNSUPPORTED, "%s: NumPy has no %s dtype; cast the tensor first", who,
                       fern_dtype_name(fern_tensor_dtype(t)));
        return NULL;
    }
    char hdr[512];
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int d = 0; d < fern_tensor_ndim(t); d++)
        hl += snprintf(hdr + hl, sizeof hdr - (size_t)hl, "%lld,%s", (long long)fern_tensor_shape(t)[d],
                       fern_tensor_ndim(t) > 1 && d + 1 < fern_tensor_ndim(t) ? " " : "");
    hl += snprintf(hdr + hl, sizeof hdr - (size_t)hl, "), }");
    size_t total_hdr = (size_t)(10 + hl + 1 + 63) & ~(size_t)63; /* magic+ver+len, header, \n */
    size_t nb = fern_tensor_nbytes(t);
    unsigned char *buf = malloc(total_hdr + nb + 1);
    if (!buf)
        return NULL;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    put_le(buf + 8, total_hdr - 10, 2);
    memcpy(buf + 10, hdr, (size_t)hl);
    memset(buf + 10 + hl, ' ', total_hdr - 10 - (size_t)hl - 1);
    buf[total_hdr - 1] = '\n';
    if (nb && fern_tensor_copy_to(t, buf + total_hdr, nb) != FERN_OK) {
        free(buf);
        return NULL;
    }
    *len = total_hdr + nb;
    return buf;
}

static fern_tensor *npy_decode(const char *who, const char *name, const unsigned char *b, size_t n)
{
    if (n < 10 || memcmp(b, "\x93NUMPY", 6) != 0) {
        fern_set_error(FERN_ERR_IO, "%s: '%s' is not a .npy file (bad magic at offset 0)", who, name);
        return NULL;
    }
    size_t hl, at;
    if (b[6] == 1) {
        hl = (size_t)get_le(b + 8, 2);
        at = 10;
    } else if (n >= 12) {
        hl = (size_t)get_le(b + 8, 4);
        at = 12;
    } else {
        fern_set_error(FERN_ERR_IO, "%s: '%s' is truncated at offset 8", who, name);
        return NULL;
    }
    if (hl > n - at || hl > 65536) {
        fern_set_error(FERN_ERR_IO, "%s: '%s': header of %zu bytes at offset %zu runs past the end", who, name,
                       hl, at);
        return NULL;
    }
    char hdr[65537];
    memcpy(hdr, b + at, hl);
    hdr[hl] = '\0';
    const char *d = strstr(hdr, "'descr'"), *fo = strstr(hdr, "'fortran_order'"), *sh = strstr(hdr, "'shape'");
    if (!d || !fo || !sh) {
        fern_set_error(FERN_ERR_IO, "%s: '%s': header at offset %zu lacks descr/fortran_order/shape", who, name, at);
        return NULL;
    }
    d = strchr(d + 7, '\'');
    fern_dtype dt = FERN_DTYPE_COUNT;
    for (int k = 0; d && k < FERN_DTYPE_COUNT; k++) {
        const char *s = npy_descr((fern_dtype)k);
        if (s && !strncmp(d + 1, s, strlen(s)) && d[1 + strlen(s)] == '\'')
            dt = (fern_dtype)k;
    }
    if (d && dt == FERN_DTYPE_COUNT && (!strncmp(d + 1, "<b1", 3) || !strncmp(d + 1, "|i1", 3)))
        dt = d[2] == 'b' ? FERN_BOOL : FERN_I8;
    if (dt == FERN_DTYPE_COUNT) {
        fern_set_error(FERN_ERR_UNSUPPORTED, "%s: '%s': unsupported dtype %.8s (big-endian or exotic)", who, name,
                       d ? d + 1 : "?");
        return NULL;
    }
    int fortran = strstr(fo, "True") && strstr(fo, "True") < sh ? 1 : 0;
    const char *p = strchr(sh, '(');
    int64_t shape[FERN_MAX_DIMS];
    int nd = 0;
    if (!p) {
        fern_set_error(FERN_ERR_IO, "%s: '%s': bad shape in the header", who, name);
        return NULL;
    }
    p++;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || nd >= FERN_MAX_DIMS) {
            fern_set_error(FERN_ERR_IO, "%s: '%s': bad shape in the header", who, name);
            return NULL;
        }
        shape[nd++] = v;
        p = end;
    }
    at += hl;
    double numel = 1;
    for (int k = 0; k < nd; k++)
        numel *= (double)shape[k];
    if (numel * (double)fern_dtype_size(dt) > (double)(n - at)) {
        fern_set_error(FERN_ERR_IO, "%s: '%s' is truncated: data at offset %zu needs %.0f bytes, has %zu", who,
                       name, at, numel * (double)fern_dtype_size(dt), n - at);
        return NULL;
    }
    int64_t file_shape[FERN_MAX_DIMS];
    for (int k = 0; k < nd; k++) /* Fortran order: the reversed shape, row-major */
        file_shape[k] = fortran ? shape[nd - 1 - k] : shape[k];
    fern_tensor *t = fern__tensor_alloc(dt, nd, file_shape, FERN_CPU);
    if (!t)
        return NULL;
    memcpy(t->storage->data, b + at, fern_tensor_nbytes(t));
    if (!fortran || nd < 2)
        return t;
    int perm[FERN_MAX_DIMS];
    for (int k = 0; k < nd; k++)
        perm[k] = nd - 1 - k;
    fern_scope_begin();
    fern_tensor *r = fern_retain(fern_contiguous(fern_permute(t, perm)));
    fern_scope_end();
    fern_release(t);
    return r;
}

fern_status fern_npy_save(const fern_tensor *t, const char *path)
{
    if (!t || !path) {
        fern_set_error(FERN_ERR_INVALID, "npy_save: NULL argument");
        return FERN_ERR_INVALID;
    }
    size_t len;
    unsigned char *buf = npy_encode("npy_save", t, &len);
    if (!buf)
        return fern_last_status();
    fern_status st = fern__write_file_atomic("npy_save", path, buf, len);
    free(buf);
    return st;
}

fern_tensor *fern_npy_load(const char *path)
{
    size_t n;
    unsigned char *b;
    if (fern__read_file(path, "npy_load", &b, &n))
        return NULL;
    fern_tensor *t = npy_decode("npy_load", path, b, n);
    free(b);
    return fern__scope_register(t);
}

/* ---- npz ------------------------------------------------------------------------ */

fern_status fern_npz_save(const fern_checkpoint *ck, const char *path)
{
    if (!ck || !path) {
        fern_set_error(FERN_ERR_INVALID, "npz_save: NULL argument");
        return FERN_ERR_INVALID;
    }
    /* build the archive in a temporary file, then rename it into place */
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 8);
    if (!tmp)
        return FERN_ERR_NOMEM;
    snprintf(tmp, pl + 8, "%s.tmpzip", path);
    int err = 0;
    zip_t *z = zip_open(tmp, ZIP_CREATE | ZIP_TRUNCATE, &err);
    if (!z) {
        fern_set_error(FERN_ERR_IO, "npz_save: cannot create '%s' (libzip error %d)", tmp, err);
        free(tmp);
        return FERN_ERR_IO;
    }
    fern_status st = FERN_OK;
    for (int i = 0; i < fern_checkpoint_count(ck) && st == FERN_OK; i++) {
        size_t len;
        unsigned char *buf = npy_encode("npz_save", fern_checkpoint_tensor_at(ck, i), &len);
        if (!buf) {
            st = fern_last_status();
            break;
        }
        zip_source_t *src = zip_source_buffer(z, buf, len, 1); /* libzip frees buf */
        char entry[1024];
        snprintf(entry, sizeof entry, "%s.npy", fern_checkpoint_name_at(ck, i));
        if (!src || zip_file_add(z, entry, src, ZIP_FL_OVERWRITE | ZIP_FL_ENC_UTF_8) < 0) {
            if (src)
                zip_source_free(src);
            else
                free(buf);
            fern_set_error(FERN_ERR_IO, "npz_save: adding '%s' failed: %s", entry, zip_strerror(z));
            st = FERN_ERR_IO;
        }
    }
    if (st == FERN_OK && zip_close(z) < 0) {
        fern_set_error(FERN_ERR_IO, "npz_save: writing '%s' failed: %s", tmp, zip_strerror(z));
        zip_discard(z);
        st = FERN_ERR_IO;
    } else if (st != FERN_OK) {
        zip_discard(z);
    }
    if (st == FERN_OK && rename(tmp, path) != 0) {
        fern_set_error(FERN_ERR_IO, "npz_save: cannot rename into '%s'", path);
        st = FERN_ERR_IO;
    }
    if (st != FERN_OK)
        remove(tmp);
    free(tmp);
    return st;
}

fern_checkpoint *fern_npz_load(const char *path)
{
    int err = 0;
    zip_t *z = zip_open(path, ZIP_RDONLY, &err);
    if (!z) {
        fern_set_error(FERN_ERR_IO, "npz_load: cannot open '%s' as a zip archive (libzip error %d)", path, err);
        return NULL;
    }
    fern_checkpoint *ck = fern_checkpoint_new();
    zip_int64_t n = zip_get_num_entries(z, 0);
    for (zip_int64_t i = 0; ck && i < n; i++) {
        zip_stat_t s;
        if (zip_stat_index(z, (zip_uint64_t)i, 0, &s) != 0 || !(s.valid & ZIP_STAT_SIZE) ||
            s.size > ((zip_uint64_t)1 << 40)) {
            fern_set_error(FERN_ERR_IO, "npz_load: '%s': entry %lld is unreadable", path, (long long)i);
            goto fail;
        }
        unsigned char *buf = malloc(s.size ? s.size : 1);
        zip_file_t *f = buf ? zip_fopen_index(z, (zip_uint64_t)i, 0) : NULL;
        zip_int64_t got = f ? zip_fread(f, buf, s.size) : -1;
        if (f)
            zip_fclose(f);
        if (got < 0 || (zip_uint64_t)got != s.size) {
            free(buf);
            fern_set_error(FERN_ERR_IO, "npz_load: '%s': entry '%s' is truncated or corrupt", path, s.name);
            goto fail;
        }
        fern_tensor *t = npy_decode("npz_load", s.name, buf, (size_t)s.size);
        free(buf);
        if (!t)
            goto fail;
        char name[1024];
        snprintf(name, sizeof name, "%s", s.name);
        size_t nl = strlen(name);
        if (nl > 4 && !strcmp(name + nl - 4, ".npy"))
            name[nl - 4] = '\0';
        fern_checkpoint_add(ck, name, t);
        fern_release(t);
    }
    zip_close(z);
    return ck;
fail:
    zip_discard(z);
    fern_checkpoint_free(ck);
    return NULL;
}
