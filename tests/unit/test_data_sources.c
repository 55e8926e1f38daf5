/* Data sources against reference files written by tests/data/make_refs.py:
 * IDX (plain/gzip, all types), MNIST layout, CIFAR-10/100, CSV, PNG/JPEG
 * decoding (exact against NumPy/Pillow pixels), image folders, corrupt
 * inputs (errors naming file and byte offset), and the real Fashion-MNIST. */
#include <math.h>

#include "test_data_util.h"

static int setup(void **state)
{
    (void)state;
    if (manifest_load()) {
        fprintf(stderr, "reference files unavailable (set FERN_DATA_REFS or install python3-numpy)\n");
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    manifest_free();
    refs_cleanup();
    return 0;
}

/* Read every row of a dataset in order (1 thread, no prefetch). */
static int64_t count_rows(fern_dataset *ds)
{
    fern_data_iter_opts o = {0, 0, -1};
    fern_data_iter *it = fern_data_iter_new(ds, &o);
    assert_non_null(it);
    fern_row *r = fern_row_new();
    int64_t n = 0;
    int st;
    while ((st = fern_data_iter_next(it, r)) == FERN_OK)
        n++;
    assert_int_equal(st, FERN_DATA_END);
    fern_row_free(r);
    fern_data_iter_free(it);
    return n;
}

static void test_idx_types(void **state)
{
    (void)state;
    fern_tensor *t = fern_idx_read(ref_path("idx/i8.idx"));
    assert_non_null(t);
    assert_int_equal(fern_tensor_dtype(t), FERN_I8);
    assert_int_equal(fern_tensor_ndim(t), 3);
    for (int i = 0; i < 24; i++) {
        int v = i * 11 - 128;
        assert_int_equal((int)fern_tensor_get_flat(t, i), v > 127 ? 127 : v);
    }
    fern_release(t);
    t = fern_idx_read(ref_path("idx/i16.idx"));
    assert_non_null(t);
    assert_int_equal(fern_tensor_dtype(t), FERN_I32);
    for (int i = 0; i < 24; i++)
        assert_int_equal((int)fern_tensor_get_flat(t, i), i * 1000 - 12000);
    fern_release(t);
    t = fern_idx_read(ref_path("idx/i32.idx"));
    assert_non_null(t);
    for (int i = 0; i < 24; i++)
        assert_int_equal((int)fern_tensor_get_flat(t, i), i * 100000 - 1000000);
    fern_release(t);
    t = fern_idx_read(ref_path("idx/f32.idx"));
    assert_non_null(t);
    assert_int_equal(fern_tensor_dtype(t), FERN_F32);
    assert_int_equal(fern_tensor_dim(t, 0), 6);
    for (int i = 0; i < 24; i++)
        assert_true(fern_tensor_get_flat(t, i) == (i - 5) * 0.25);
    fern_release(t);
    t = fern_idx_read(ref_path("idx/f64.idx"));
    assert_non_null(t);
    for (int i = 0; i < 24; i++)
        assert_true(fern_tensor_get_flat(t, i) == (i - 5) * 0.125 + 1e-9);
    /* write + read back */
    char p[4200];
    snprintf(p, sizeof p, "%s/roundtrip.idx", refs_dir());
    assert_int_equal(fern_idx_write(p, t), FERN_OK);
    fern_tensor *u = fern_idx_read(p);
    expect_close("idx roundtrip", u, t, 0, 0);
    fern_release(u);
    fern_release(t);
}

static void test_idx_pairs(void **state)
{
    (void)state;
    for (int l = 0; l < g_nlines; l++) {
        mline *m = &g_lines[l];
        if (strcmp(m->tok[0], "idxpair") != 0)
            continue;
        int N = atoi(m->tok[3]), H = atoi(m->tok[4]), W = atoi(m->tok[5]);
        fern_dataset *ds = fern_dataset_idx(ref_path(m->tok[1]), ref_path(m->tok[2]));
        assert_non_null(ds);
        assert_int_equal(fern_dataset_size(ds), N);
        assert_true(fern_dataset_is_random_access(ds));
        fern_data_iter *it = fern_data_iter_new(ds, NULL);
        fern_row *r = fern_row_new();
        for (int i = 0; i < N; i++) {
            assert_int_equal(fern_data_iter_next(it, r), FERN_OK);
            fern_tensor *im = fern_row_get(r, "image"), *lb = fern_row_get(r, "label");
            assert_non_null(im);
            assert_non_null(lb);
            assert_int_equal(fern_tensor_dtype(im), FERN_U8);
            assert_int_equal(fern_tensor_ndim(im), 3);
            assert_int_equal(fern_tensor_dim(im, 0), H);
            assert_int_equal(fern_tensor_dim(im, 1), W);
            assert_int_equal(fern_tensor_dim(im, 2), 1);
            assert_int_equal(fern_tensor_dtype(lb), FERN_I64);
            assert_int_equal(fern_tensor_ndim(lb), 0);
            assert_int_equal((int)fern_tensor_get_flat(lb, 0), i * 3 % 10);
            for (int k = 0; k < H * W; k++)
                assert_int_equal((int)fern_tensor_get_flat(im, k), ((i * H * W + k) * 37 + 11) % 256);
        }
        assert_int_equal(fern_data_iter_next(it, r), FERN_DATA_END);
        fern_row_free(r);
        fern_data_iter_free(it);
        fern_dataset_release(ds);
    }
    fern_dataset *ds = fern_dataset_mnist(ref_path("mnistdir"), "train");
    assert_non_null(ds);
    assert_int_equal(fern_dataset_size(ds), 7);
    fern_dataset_release(ds);
    ds = fern_dataset_mnist(ref_path("mnistdir"), "test");
    assert_non_null(ds);
    assert_int_equal(count_rows(ds), 2);
    fern_dataset_release(ds);
    fern_clear_error();
    assert_null(fern_dataset_mnist(ref_path("mnistdir"), "valid"));
    EXPECT_ERR_CONTAINS("split 'valid'");
    fern_clear_error();
    assert_null(fern_dataset_mnist(ref_path("nothing-here"), "train"));
    EXPECT_ERR_CONTAINS("no train-images-idx3-ubyte");
}

static void test_idx_corrupt(void **state)
{
    (void)state;
    for (int l = 0; l < g_nlines; l++) {
        mline *m = &g_lines[l];
        if (strcmp(m->tok[0], "idxbad") == 0) {
            fern_clear_error();
            assert_null(fern_idx_read(ref_path(m->tok[1])));
            EXPECT_ERR_CONTAINS(unscore(m->tok[2]));
            EXPECT_ERR_CONTAINS(m->tok[1]); /* names the file */
        } else if (strcmp(m->tok[0], "idxcount") == 0) {
            fern_clear_error();
            assert_null(fern_dataset_idx(ref_path(m->tok[1]), ref_path(m->tok[2])));
            EXPECT_ERR_CONTAINS("holds 7 images but");
        }
    }
    fern_clear_error();
    assert_null(fern_idx_read(ref_path("idx/does-not-exist")));
    EXPECT_ERR_CONTAINS("cannot open");
    fern_clear_error();
    /* parse from memory: every prefix of a valid file is rejected cleanly */
    unsigned char buf[4 + 8 + 6];
    unsigned char hdr[] = {0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
    memcpy(buf, hdr, sizeof hdr);
    for (size_t n = 0; n < sizeof buf; n++) {
        fern_clear_error();
        assert_null(fern_idx_parse(buf, n, "prefix"));
        assert_true(strlen(fern_last_error()) > 0);
    }
    fern_clear_error();
    fern_tensor *t = fern_idx_parse(buf, sizeof buf, "ok");
    assert_non_null(t);
    assert_int_equal((int)fern_tensor_get_flat(t, 5), 6);
    fern_release(t);
}

static int64_t cifar_px(int r, int y, int x, int c) { return (r * 7 + c * 50 + y * 32 + x) % 256; }

static void test_cifar(void **state)
{
    (void)state;
    fern_dataset *ds = fern_dataset_cifar10(ref_path("cifar10"), "train");
    assert_non_null(ds);
    assert_int_equal(fern_dataset_size(ds), 8);
    fern_data_iter *it = fern_data_iter_new(ds, NULL);
    fern_row *r = fern_row_new();
    for (int i = 0; i < 8; i++) {
        assert_int_equal(fern_data_iter_next(it, r), FERN_OK);
        fern_tensor *im = fern_row_get(r, "image");
        assert_int_equal(fern_tensor_dim(im, 0), 32);
        assert_int_equal(fern_tensor_dim(im, 2), 3);
        assert_int_equal((int)fern_tensor_get_flat(fern_row_get(r, "label"), 0), i % 10);
        for (int y = 0; y < 32; y += 5)
            for (int x = 0; x < 32; x += 3)
                for (int c = 0; c < 3; c++) {
                    int64_t idx[3] = {y, x, c};
                    assert_int_equal((int64_t)fern_tensor_get(im, idx), cifar_px(i, y, x, c));
                }
    }
    assert_int_equal(fern_data_iter_next(it, r), FERN_DATA_END);
    fern_data_iter_free(it);
    fern_dataset_release(ds);
    ds = fern_dataset_cifar10(ref_path("cifar10"), "test");
    assert_non_null(ds);
    assert_int_equal(fern_dataset_size(ds), 3);
    fern_dataset_release(ds);
    ds = fern_dataset_cifar100(ref_path("cifar100"), "train");
    assert_non_null(ds);
    assert_int_equal(fern_dataset_ncols(ds), 3);
    assert_string_equal(fern_dataset_col_name(ds, 2), "coarse_label");
    it = fern_data_iter_new(ds, NULL);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fern_data_iter_next(it, r), FERN_OK);
        assert_int_equal((int)fern_tensor_get_flat(fern_row_get(r, "label"), 0), (i * 7) % 100);
        assert_int_equal((int)fern_tensor_get_flat(fern_row_get(r, "coarse_label"), 0), i % 20);
        int64_t idx[3] = {1, 2, 1};
        assert_int_equal((int64_t)fern_tensor_get(fern_row_get(r, "image"), idx), cifar_px(i, 1, 2, 1));
    }
    assert_int_equal(fern_data_iter_next(it, r), FERN_DATA_END);
    fern_data_iter_free(it);
    fern_dataset_release(ds);
    fern_row_free(r);
    for (int l = 0; l < g_nlines; l++) {
        mline *m = &g_lines[l];
        if (strcmp(m->tok[0], "cifarbad") != 0)
            continue;
        const char *p = ref_path(m->tok[1]);
        fern_clear_error();
        assert_null(fern_dataset_cifar_files(&p, 1, atoi(m->tok[2])));
        EXPECT_ERR_CONTAINS(unscore(m->tok[3]));
        EXPECT_ERR_CONTAINS(m->tok[1]);
    }
    fern_clear_error();
    assert_null(fern_dataset_cifar10(ref_path("nothing"), "train"));
    EXPECT_ERR_CONTAINS("cannot open");
}

static void test_csv(void **state)
{
    (void)state;
    for (int l = 0; l < g_nlines; l++) {
        mline *m = &g_lines[l];
        if (strcmp(m->tok[0], "csv") == 0) {
            fern_tensor *exp = fern_idx_read(ref_path(m->tok[2]));
            assert_non_null(exp);
            fern_csv_opts o = {m->tok[4][0], atoi(m->tok[3]), FERN_F64, NULL, 0};
            fern_dataset *ds = fern_dataset_csv(ref_path(m->tok[1]), &o);
            if (!ds)
                fail_msg("csv %s: %s", m->tok[1], fern_last_error());
            assert_int_equal(fern_dataset_ncols(ds), 4);
            for (int c = 0; c < 4; c++)
                assert_string_equal(fern_dataset_col_name(ds, c), m->tok[5 + c]);
            fern_data_iter *it = fern_data_iter_new(ds, NULL);
            fern_row *r = fern_row_new();
            for (int i = 0; i < 3; i++) {
                assert_int_equal(fern_data_iter_next(it, r), FERN_OK);
                for (int c = 0; c < 4; c++) {
                    fern_tensor *v = fern_row_at(r, c);
                    assert_int_equal(fern_tensor_dtype(v), FERN_F64);
                    assert_int_equal(fern_tensor_ndim(v), 0);
                    int64_t idx[2] = {i, c};
                    assert_true(fern_tensor_get_flat(v, 0) == fern_tensor_get(exp, idx));
                }
            }
            assert_int_equal(fern_data_iter_next(it, r), FERN_DATA_END);
            fern_data_iter_free(it);
            fern_dataset_release(ds);
            /* packed features + label column */
            char lab[16];
            snprintf(lab, sizeof lab, "#3");
            fern_csv_opts o2 = {m->tok[4][0], atoi(m->tok[3]), FERN_F32, lab, 1};
            ds = fern_dataset_csv(ref_path(m->tok[1]), &o2);
            assert_non_null(ds);
            assert_int_equal(fern_dataset_ncols(ds), 2);
            assert_string_equal(fern_dataset_col_name(ds, 0), "features");
            assert_string_equal(fern_dataset_col_name(ds, 1), "label");
            ds = fern_dataset_batch(ds, 3, 0);
            it = fern_data_iter_new(ds, NULL);
            assert_int_equal(fern_data_iter_next(it, r), FERN_OK);
            fern_tensor *f = fern_row_get(r, "features"), *lb = fern_row_get(r, "label");
            assert_int_equal(fern_tensor_dtype(f), FERN_F32);
            assert_int_equal(fern_tensor_dim(f, 1), 3);
            for (int i = 0; i < 3; i++) {
                int64_t li[1] = {i}, ei[2] = {i, 3};
                assert_int_equal((int)fern_tensor_get(lb, li), (int)fern_tensor_get(exp, ei));
                for (int c = 0; c < 3; c++) {
                    int64_t fi[2] = {i, c}, xi[2] = {i, c};
                    assert_true(fern_tensor_get(f, fi) == (double)(float)fern_tensor_get(exp, xi));
                }
            }
            fern_row_free(r);
            fern_data_iter_free(it);
            fern_dataset_release(ds);
            fern_release(exp);
        } else if (strcmp(m->tok[0], "csvbad") == 0) {
            fern_clear_error();
            assert_null(fern_dataset_csv(ref_path(m->tok[1]), NULL));
            EXPECT_ERR_CONTAINS(unscore(m->tok[2]));
            EXPECT_ERR_CONTAINS(m->tok[1]);
        }
    }
    fern_clear_error();
    fern_csv_opts o = {',', 1, FERN_F32, "nope", 0};
    assert_null(fern_dataset_csv(ref_path("csv/header.csv"), &o));
    EXPECT_ERR_CONTAINS("no column 'nope'");
}

static void test_images(void **state)
{
    (void)state;
    int n = 0;
    for (int l = 0; l < g_nlines; l++) {
        mline *m = &g_lines[l];
        if (strcmp(m->tok[0], "image") == 0) {
            fern_decode_opts o = {atoi(m->tok[2]), 0};
            fern_tensor *got = fern_image_read(ref_path(m->tok[1]), &o);
            fern_tensor *exp = fern_idx_read(ref_path(m->tok[3]));
            assert_non_null(exp);
            char what[256];
            snprintf(what, sizeof what, "decode %s (channels %d)", m->tok[1], o.channels);
            expect_close(what, got, exp, atof(m->tok[4]), 0);
            fern_release(got);
            fern_release(exp);
            n++;
        } else if (strcmp(m->tok[0], "imagebad") == 0) {
            fern_clear_error();
            assert_null(fern_image_read(ref_path(m->tok[1]), NULL));
            EXPECT_ERR_CONTAINS(unscore(m->tok[2]));
            EXPECT_ERR_CONTAINS(m->tok[1]);
        }
    }
    assert_true(n >= 16);
    fern_clear_error();
    fern_decode_opts small = {0, 50};
    assert_null(fern_image_read(ref_path("png/rgb.png"), &small));
    EXPECT_ERR_CONTAINS("pixel limit");
}

/* JPEG and PNG through libjpeg/libpng encoders and back. */
static void test_encode_roundtrip(void **state)
{
    (void)state;
    int64_t shape[3] = {21, 34, 3};
    fern_tensor *img = fern_empty(FERN_U8, 3, shape);
    uint8_t *p = fern_tensor_data(img);
    for (int y = 0; y < 21; y++)
        for (int x = 0; x < 34; x++)
            for (int c = 0; c < 3; c++)
                p[(y * 34 + x) * 3 + c] = (uint8_t)(128 + 60 * sin(x * 0.2 + c) + 50 * cos(y * 0.25));
    void *buf;
    size_t n;
    assert_int_equal(fern_image_encode_png(img, &buf, &n), FERN_OK);
    fern_tensor *back = fern_image_decode(buf, n, "mem.png", NULL);
    expect_close("png roundtrip", back, img, 0, 0);
    fern_release(back);
    free(buf);
    assert_int_equal(fern_image_encode_jpeg(img, 95, &buf, &n), FERN_OK);
    back = fern_image_decode(buf, n, "mem.jpg", NULL);
    expect_close("jpeg roundtrip (q95)", back, img, 12, 0.01);
    /* truncations of a JPEG are errors with a byte offset, never crashes */
    for (size_t cut = 0; cut < n; cut += n / 37 + 1) {
        fern_clear_error();
        fern_tensor *t = fern_image_decode(buf, cut, "cut.jpg", NULL);
        if (t) {
            fail_msg("truncated JPEG (%zu of %zu bytes) decoded", cut, n);
        }
        assert_true(strstr(fern_last_error(), "cut.jpg") != NULL);
    }
    fern_release(back);
    free(buf);
    /* non-contiguous input (a flipped view) */
    fern_tensor *g = fern_empty(FERN_U8, 2, shape);
    memset(fern_tensor_data(g), 77, 21 * 34);
    assert_int_equal(fern_image_encode_jpeg(g, 90, &buf, &n), FERN_OK);
    fern_decode_opts o3 = {3, 0};
    back = fern_image_decode(buf, n, "g.jpg", &o3);
    assert_non_null(back);
    assert_int_equal(fern_tensor_dim(back, 2), 3);
    assert_true(fern_tensor_get_flat(back, 100) >= 76 && fern_tensor_get_flat(back, 100) <= 78);
    fern_release(back);
    free(buf);
    fern_clear_error();
    int64_t bad_shape[3] = {4, 4, 2};
    fern_tensor *bad = fern_empty(FERN_U8, 3, bad_shape);
    assert_int_not_equal(fern_image_encode_jpeg(bad, 90, &buf, &n), FERN_OK);
    EXPECT_ERR_CONTAINS("encode_jpeg");
    fern_release(bad);
    fern_release(g);
    fern_release(img);
}

static void test_folder(void **state)
{
    (void)state;
    int found = 0;
    for (int l = 0; l < g_nlines; l++) {
        mline *m = &g_lines[l];
        if (strcmp(m->tok[0], "folder") != 0)
            continue;
        found = 1;
        int N = atoi(m->tok[2]);
        fern_dataset *ds = fern_dataset_image_folder(ref_path(m->tok[1]), NULL);
        if (!ds)
            fail_msg("image_folder: %s", fern_last_error());
        assert_int_equal(fern_dataset_size(ds), N);
        const char *const *cls;
        assert_int_equal(fern_dataset_image_folder_classes(ds, &cls), 3);
        assert_string_equal(cls[0], "ants");
        assert_string_equal(cls[2], "cats");
        for (int w = 0; w <= 2; w += 2) { /* decoded in 2 map workers too */
            fern_transform *id[] = {fern_tf_cast(FERN_U8)};
            fern_dataset *d2 = fern_dataset_map(fern_dataset_retain(ds), "image", NULL, id, 1, w);
            fern_data_iter *it = fern_data_iter_new(d2, NULL);
            fern_row *r = fern_row_new();
            for (int k = l + 1, i = 0; k < g_nlines && strcmp(g_lines[k].tok[0], "folderitem") == 0; k++, i++) {
                assert_int_equal(fern_data_iter_next(it, r), FERN_OK);
                assert_int_equal((int)fern_tensor_get_flat(fern_row_get(r, "label"), 0), atoi(g_lines[k].tok[2]));
                fern_tensor *exp = fern_idx_read(ref_path(g_lines[k].tok[3]));
                expect_close("folder image", fern_row_get(r, "image"), exp, 0, 0);
                fern_release(exp);
            }
            assert_int_equal(fern_data_iter_next(it, r), FERN_DATA_END);
            fern_row_free(r);
            fern_data_iter_free(it);
            fern_dataset_release(d2);
        }
        /* undecoded bytes + decode transform */
        fern_image_folder_opts raw = {0, 1};
        fern_dataset *dr = fern_dataset_image_folder(ref_path(m->tok[1]), &raw);
        fern_transform *dec[] = {fern_tf_decode(1)};
        dr = fern_dataset_map(dr, "image", NULL, dec, 1, 1);
        fern_data_iter *it = fern_data_iter_new(dr, NULL);
        fern_row *r = fern_row_new();
        assert_int_equal(fern_data_iter_next(it, r), FERN_OK);
        assert_int_equal(fern_tensor_dim(fern_row_get(r, "image"), 2), 1);
        fern_row_free(r);
        fern_data_iter_free(it);
        fern_dataset_release(dr);
        fern_dataset_release(ds);
    }
    if (!found)
        skip();
    for (int l = 0; l < g_nlines; l++) {
        mline *m = &g_lines[l];
        if (strcmp(m->tok[0], "folderbad") != 0)
            continue;
        fern_dataset *ds = fern_dataset_image_folder(ref_path(m->tok[1]), NULL);
        assert_non_null(ds);
        fern_data_iter *it = fern_data_iter_new(ds, NULL);
        fern_row *r = fern_row_new();
        fern_clear_error();
        int st = fern_data_iter_next(it, r);
        assert_true(st > 0);
        EXPECT_ERR_CONTAINS(m->tok[2]);
        EXPECT_ERR_CONTAINS("byte offset");
        assert_int_equal(fern_data_iter_next(it, r), st); /* sticky until reset */
        fern_row_free(r);
        fern_data_iter_free(it);
        fern_dataset_release(ds);
    }
    fern_clear_error();
    assert_null(fern_dataset_image_folder(ref_path("nope"), NULL));
    EXPECT_ERR_CONTAINS("cannot open directory");
}

/* The real Fashion-MNIST (Debian's dataset-fashion-mnist). Checksums were
 * computed with NumPy from the same files:
 *   im = np.frombuffer(gzip.open(f).read(), np.uint8, offset=16)
 *   im.sum(dtype=np.uint64) -> 3431114169 (train), 573469082 (t10k);
 *   labels: 6000 (train) / 1000 (t10k) of each class; first train labels
 *   9 0 0 3 0 2 7 2 5 5; image 0 row 10, columns 10..19 of train:
 *   0 0 0 193 228 218 213 198 180 212. */
static void test_fashion_mnist(void **state)
{
    (void)state;
    const char *dir = getenv("FERN_FASHION_MNIST");
    if (!dir)
        dir = "/usr/share/datasets/fashion-mnist";
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/train-images-idx3-ubyte.gz", dir);
    if (access(probe, R_OK) != 0)
        skip();
    const char *splits[2] = {"train", "test"};
    const int64_t sizes[2] = {60000, 10000};
    const uint64_t sums[2] = {3431114169ull, 573469082ull};
    for (int s = 0; s < 2; s++) {
        fern_dataset *ds = fern_dataset_mnist(dir, splits[s]);
        assert_non_null(ds);
        assert_int_equal(fern_dataset_size(ds), sizes[s]);
        ds = fern_dataset_batch(ds, 1000, 0);
        fern_data_iter *it = fern_data_iter_new(ds, NULL);
        fern_row *r = fern_row_new();
        uint64_t sum = 0;
        int64_t counts[10] = {0}, n = 0;
        int st;
        while ((st = fern_data_iter_next(it, r)) == FERN_OK) {
            fern_tensor *im = fern_row_get(r, "image"), *lb = fern_row_get(r, "label");
            assert_int_equal(fern_tensor_dim(im, 1), 28);
            assert_int_equal(fern_tensor_dim(im, 3), 1);
            const uint8_t *p = fern_tensor_data(im);
            for (int64_t i = 0; i < fern_tensor_numel(im); i++)
                sum += p[i];
            const int64_t *l = fern_tensor_data(lb);
            for (int64_t i = 0; i < fern_tensor_numel(lb); i++) {
                assert_true(l[i] >= 0 && l[i] < 10);
                counts[l[i]]++;
            }
            if (n == 0 && s == 0) {
                static const int first[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
                static const int row[10] = {0, 0, 0, 193, 228, 218, 213, 198, 180, 212};
                for (int i = 0; i < 10; i++) {
                    assert_int_equal(l[i], first[i]);
                    assert_int_equal(p[10 * 28 + 10 + i], row[i]);
                }
            }
            n += fern_tensor_dim(lb, 0);
        }
        assert_int_equal(st, FERN_DATA_END);
        assert_int_equal(n, sizes[s]);
        assert_true(sum == sums[s]);
        for (int c = 0; c < 10; c++)
            assert_int_equal(counts[c], sizes[s] / 10);
        fern_row_free(r);
        fern_data_iter_free(it);
        fern_dataset_release(ds);
    }
}

static void test_no_leaks(void **state)
{
    (void)state;
    fern_alloc_stats a = fern_alloc_get_stats(FERN_CPU);
    fern_dataset *ds = fern_dataset_cifar10(ref_path("cifar10"), "train");
    ds = fern_dataset_batch(fern_dataset_shuffle(ds, 4), 3, 0);
    fern_data_iter *it = fern_data_iter_new(ds, NULL);
    fern_row *r = fern_row_new();
    while (fern_data_iter_next(it, r) == FERN_OK) {
    }
    fern_row_free(r);
    fern_data_iter_free(it);
    fern_dataset_release(ds);
    fern_alloc_stats b = fern_alloc_get_stats(FERN_CPU);
    assert_int_equal(a.current_bytes, b.current_bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_types),     cmocka_unit_test(test_idx_pairs),
        cmocka_unit_test(test_idx_corrupt),   cmocka_unit_test(test_cifar),
        cmocka_unit_test(test_csv),           cmocka_unit_test(test_images),
        cmocka_unit_test(test_encode_roundtrip), cmocka_unit_test(test_folder),
        cmocka_unit_test(test_fashion_mnist), cmocka_unit_test(test_no_leaks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
