/* Checkpoints and interop files: round trips through fern's format, files
 * written by NumPy read by fern and files written by fern read by NumPy,
 * safetensors, corrupt and truncated files, and loading state into cells
 * with missing/unexpected/mismatched entries. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fern/fern.h"

static char tmpdir[256];
static const char *refdir;

static const char *tmp(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static const char *ref(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", refdir, name);
    return buf;
}

static void assert_same(fern_tensor *a, fern_tensor *b)
{
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(fern_tensor_dtype(a), fern_tensor_dtype(b));
    assert_int_equal(fern_tensor_ndim(a), fern_tensor_ndim(b));
    for (int d = 0; d < fern_tensor_ndim(a); d++)
        assert_int_equal(fern_tensor_shape(a)[d], fern_tensor_shape(b)[d]);
    for (int64_t i = 0; i < fern_tensor_numel(a); i++)
        assert_true(fern_tensor_get_flat(a, i) == fern_tensor_get_flat(b, i));
}

static fern_checkpoint *sample(void)
{
    fern_checkpoint *ck = fern_checkpoint_new();
    fern_seed(5);
    fern_scope_begin(); /* the checkpoint keeps its own references */
    fern_dtype dts[] = {FERN_F32, FERN_F64, FERN_F16, FERN_BF16, FERN_I8, FERN_U8, FERN_I32, FERN_I64, FERN_BOOL};
    for (int i = 0; i < 9; i++) {
        fern_tensor *r = fern_rand_uniform(FERN_F32, 2, (int64_t[]){3, 5}, -50, 50);
        fern_tensor *t = fern_cast(r, dts[i]);
        char name[32];
        snprintf(name, sizeof name, "layer.%s", fern_dtype_name(dts[i]));
        fern_checkpoint_add(ck, name, t);
    }
    fern_tensor *base = fern_rand_normal(FERN_F32, 2, (int64_t[]){4, 6}, 0, 1);
    fern_tensor *view = fern_transpose(base, 0, 1); /* non-contiguous source */
    fern_checkpoint_add(ck, "transposed", view);
    fern_tensor *s = fern_scalar(FERN_F64, 3.25), *e = fern_zeros(FERN_F32, 2, (int64_t[]){0, 7});
    fern_checkpoint_add(ck, "scalar", s);
    fern_checkpoint_add(ck, "empty", e);
    fern_scope_end();
    fern_checkpoint_set_int(ck, "epoch", 7);
    fern_checkpoint_set_int(ck, "step", -123456789012345LL);
    fern_checkpoint_set_str(ck, "optimizer", "momentum");
    return ck;
}

static void test_fern_format_round_trip(void **state)
{
    (void)state;
    fern_clear_error();
    fern_checkpoint *ck = sample();
    assert_int_equal(fern_checkpoint_save(ck, tmp("a.fckpt")), FERN_OK);
    fern_checkpoint *back = fern_checkpoint_load(tmp("a.fckpt"));
    if (!back)
        fail_msg("%s", fern_last_error());
    assert_int_equal(fern_checkpoint_count(back), fern_checkpoint_count(ck));
    for (int i = 0; i < fern_checkpoint_count(ck); i++)
        assert_same(fern_checkpoint_tensor_at(ck, i), fern_checkpoint_get(back, fern_checkpoint_name_at(ck, i)));
    int64_t v;
    assert_int_equal(fern_checkpoint_get_int(back, "step", &v), 0);
    assert_true(v == -123456789012345LL);
    assert_string_equal(fern_checkpoint_get_str(back, "optimizer"), "momentum");
    /* no temporary file is left behind */
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    while ((de = readdir(d)))
        assert_null(strstr(de->d_name, ".tmp"));
    closedir(d);
    fern_checkpoint_free(back);
    fern_checkpoint_free(ck);
}

static void corrupt_byte(const char *path, long at)
{
    FILE *f = fopen(path, "r+b");
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

static void test_corrupt_and_truncated(void **state)
{
    (void)state;
    fern_checkpoint *ck = sample();
    fern_checkpoint_save(ck, tmp("c.fckpt"));
    FILE *f = fopen(tmp("c.fckpt"), "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    /* a flipped byte in the last tensor's data */
    corrupt_byte(tmp("c.fckpt"), size - 100);
    fern_clear_error();
    assert_null(fern_checkpoint_load(tmp("c.fckpt")));
    assert_non_null(strstr(fern_last_error(), "checksum mismatch"));
    assert_non_null(strstr(fern_last_error(), "offset"));
    /* truncation at every interesting length gives an error, never a crash */
    fern_checkpoint_save(ck, tmp("t.fckpt"));
    for (long cut = 0; cut < size; cut += size / 37 + 1) {
        assert_int_equal(truncate(tmp("t.fckpt"), cut), 0);
        fern_clear_error();
        assert_null(fern_checkpoint_load(tmp("t.fckpt")));
        assert_true(strlen(fern_last_error()) > 0);
        fern_checkpoint_save(ck, tmp("t.fckpt"));
    }
    /* header corruption and a wrong file */
    corrupt_byte(tmp("t.fckpt"), 40);
    fern_clear_error();
    assert_null(fern_checkpoint_load(tmp("t.fckpt")));
    assert_non_null(strstr(fern_last_error(), "header checksum"));
    fern_clear_error();
    assert_null(fern_checkpoint_load(ref("a_f32.npy")));
    assert_non_null(strstr(fern_last_error(), "not a fern checkpoint"));
    fern_clear_error();
    assert_null(fern_checkpoint_load(tmp("does-not-exist")));
    assert_non_null(strstr(fern_last_error(), "cannot open"));
    fern_clear_error();
    fern_checkpoint_free(ck);
}

static void test_numpy_files(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    fern_tensor *a = fern_npy_load(ref("a_f32.npy"));
    if (!a)
        fail_msg("%s", fern_last_error());
    assert_int_equal(fern_tensor_ndim(a), 3);
    assert_true(fern_tensor_get_flat(a, 5) == 5 * 0.5 - 3);
    fern_tensor *b = fern_npy_load(ref("b_f64_fortran.npy"));
    assert_non_null(b);
    for (int i = 0; i < 6; i++) /* logical row-major order regardless of file order */
        assert_true(fern_tensor_get_flat(b, i) == i);
    fern_tensor *c = fern_npy_load(ref("c_i64.npy"));
    assert_true(fern_tensor_get_flat(c, 0) == -5);
    assert_int_equal(fern_tensor_dtype(fern_npy_load(ref("d_bool.npy"))), FERN_BOOL);
    assert_int_equal(fern_tensor_ndim(fern_npy_load(ref("e_scalar.npy"))), 0);

    fern_checkpoint *z = fern_npz_load(ref("bundle.npz"));
    if (!z)
        fail_msg("%s", fern_last_error());
    assert_same(fern_checkpoint_get(z, "weight"), a);
    assert_true(fern_tensor_get_flat(fern_checkpoint_get(z, "steps"), 0) == 42);
    fern_checkpoint_free(z);

    /* fern writes, NumPy reads */
    fern_tensor *t = fern_transpose(a, 0, 2);
    assert_int_equal(fern_npy_save(t, tmp("t.npy")), FERN_OK);
    fern_checkpoint *ck = sample();
    fern_checkpoint *np_ok = fern_checkpoint_new();
    for (int i = 0; i < fern_checkpoint_count(ck); i++)
        if (fern_tensor_dtype(fern_checkpoint_tensor_at(ck, i)) != FERN_BF16)
            fern_checkpoint_add(np_ok, fern_checkpoint_name_at(ck, i), fern_checkpoint_tensor_at(ck, i));
    assert_int_equal(fern_npz_save(np_ok, tmp("all.npz")), FERN_OK);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import numpy as np; t=np.load('%s'); a=np.load('%s');"
             " assert (t == a.transpose(2,1,0)).all(), 'npy';"
             " z=np.load('%s'); assert z['layer.i64'].shape == (3,5) and z['scalar'] == 3.25, 'npz'\"",
             tmp("t.npy"), ref("a_f32.npy"), tmp("all.npz"));
    assert_int_equal(system(cmd), 0);
    fern_checkpoint *zb = fern_npz_load(tmp("all.npz"));
    for (int i = 0; i < fern_checkpoint_count(np_ok); i++)
        assert_same(fern_checkpoint_tensor_at(np_ok, i), fern_checkpoint_get(zb, fern_checkpoint_name_at(np_ok, i)));
    fern_checkpoint_free(zb);
    /* bf16 has no NumPy dtype: a clear error */
    fern_tensor *bf = fern_checkpoint_get(ck, "layer.bf16");
    assert_int_not_equal(fern_npy_save(bf, tmp("bf.npy")), FERN_OK);
    assert_non_null(strstr(fern_last_error(), "bf16"));
    fern_clear_error();
    fern_checkpoint_free(np_ok);
    fern_checkpoint_free(ck);
    fern_scope_end();
}

static void test_safetensors(void **state)
{
    (void)state;
    fern_clear_error();
    fern_checkpoint *st = fern_safetensors_load(ref("model.safetensors"));
    if (!st)
        fail_msg("%s", fern_last_error());
    assert_true(fern_tensor_get_flat(fern_checkpoint_get(st, "w"), 23) == 23 * 0.5 - 3);
    assert_int_equal(fern_tensor_dtype(fern_checkpoint_get(st, "idx")), FERN_I32);
    assert_string_equal(fern_checkpoint_get_str(st, "format"), "pt");
    fern_checkpoint_free(st);
    fern_checkpoint *ck = sample();
    assert_int_equal(fern_safetensors_save(ck, tmp("m.safetensors")), FERN_OK);
    fern_checkpoint *back = fern_safetensors_load(tmp("m.safetensors"));
    assert_non_null(back);
    for (int i = 0; i < fern_checkpoint_count(ck); i++)
        assert_same(fern_checkpoint_tensor_at(ck, i), fern_checkpoint_get(back, fern_checkpoint_name_at(ck, i)));
    fern_checkpoint_free(back);
    assert_int_equal(truncate(tmp("m.safetensors"), 50), 0);
    fern_clear_error();
    assert_null(fern_safetensors_load(tmp("m.safetensors")));
    assert_non_null(strstr(fern_last_error(), "m.safetensors"));
    fern_clear_error();
    fern_checkpoint_free(ck);
}

static int dummy_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    (void)self;
    (void)n_in;
    (void)n_out;
    out[0] = in[0];
    return 0;
}

static fern_cell *tiny(void)
{
    fern_cell *root = fern_cell_new("Net", dummy_forward, 1, 1, NULL, NULL);
    fern_cell *a = fern_cell_new("Layer", dummy_forward, 1, 1, NULL, NULL);
    fern_tensor *w = fern_zeros(FERN_F32, 2, (int64_t[]){2, 3});
    fern_tensor *rm = fern_zeros(FERN_F32, 1, (int64_t[]){3});
    fern_cell_add_param(a, "weight", w);
    fern_cell_add_buffer(a, "running_mean", rm);
    fern_cell_add_child(root, "fc", a);
    fern_release(w);
    fern_release(rm);
    fern_cell_release(a);
    return root;
}

static void test_cell_state(void **state)
{
    (void)state;
    fern_clear_error();
    fern_cell *net = tiny();
    fern_init_ones(fern_cell_find(net, "fc.weight"));
    fern_checkpoint *sd = fern_cell_state_dict(net);
    assert_int_equal(fern_checkpoint_count(sd), 2);
    assert_non_null(fern_checkpoint_get(sd, "fc.running_mean"));
    fern_checkpoint_save(sd, tmp("net.fckpt"));
    fern_cell *other = tiny();
    fern_checkpoint *ld = fern_checkpoint_load(tmp("net.fckpt"));
    fern_load_report r;
    assert_int_equal(fern_cell_load_state_dict(other, ld, 1, &r), FERN_OK);
    assert_int_equal(r.n_loaded, 2);
    assert_true(fern_tensor_get_flat(fern_cell_find(other, "fc.weight"), 5) == 1.0);
    /* mismatches are reported; strict refuses and changes nothing */
    fern_checkpoint *bad = fern_checkpoint_new();
    fern_tensor *w2 = fern_ones(FERN_F32, 2, (int64_t[]){3, 3}), *x = fern_ones(FERN_F32, 1, (int64_t[]){1});
    fern_checkpoint_add(bad, "fc.weight", w2);
    fern_checkpoint_add(bad, "extra", x);
    fern_init_zeros(fern_cell_find(other, "fc.weight"));
    assert_int_not_equal(fern_cell_load_state_dict(other, bad, 1, &r), FERN_OK);
    assert_int_equal(r.n_missing, 1);
    assert_int_equal(r.n_unexpected, 1);
    assert_int_equal(r.n_mismatched, 1);
    assert_non_null(strstr(fern_last_error(), "fc.running_mean"));
    assert_non_null(strstr(fern_last_error(), "f32[3,3]"));
    fern_clear_error();
    assert_int_equal(fern_cell_load_state_dict(other, bad, 0, &r), FERN_OK);
    assert_int_equal(r.n_loaded, 0);
    fern_release(w2);
    fern_release(x);
    fern_checkpoint_free(bad);
    fern_checkpoint_free(ld);
    fern_checkpoint_free(sd);
    fern_cell_release(other);
    fern_cell_release(net);
}

int main(void)
{
    refdir = getenv("FERN_IO_REFS");
    if (!refdir) {
        fprintf(stderr, "set FERN_IO_REFS to the folder written by tests/data/make_io_refs.py\n");
        return 2;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fern-test-io-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 2;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fern_format_round_trip), cmocka_unit_test(test_corrupt_and_truncated),
        cmocka_unit_test(test_numpy_files),            cmocka_unit_test(test_safetensors),
        cmocka_unit_test(test_cell_state),
    };
    int rc = cmocka_run_group_tests_name("io", tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
