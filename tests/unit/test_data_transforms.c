/* Vision transforms: deterministic ones against NumPy / Pillow / PyTorch
 * outputs from tests/data/make_refs.py; random ones by their properties
 * (each output is one of the allowed results, frequencies, seeding). */
#include <math.h>

#include "test_data_util.h"

#include "core/internal.h"

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

static fern_transform *make_tf(const char *op, char **p, int np)
{
#define P(i) (i < np ? atof(p[i]) : 0.0)
    if (!strcmp(op, "resize"))
        return fern_tf_resize((int64_t)P(0), (int64_t)P(1), (fern_resample)(int)P(2));
    if (!strcmp(op, "center_crop"))
        return fern_tf_center_crop((int64_t)P(0), (int64_t)P(1));
    if (!strcmp(op, "crop"))
        return fern_tf_crop((int64_t)P(0), (int64_t)P(1), (int64_t)P(2), (int64_t)P(3));
    if (!strcmp(op, "pad"))
        return fern_tf_pad((int64_t)P(0), (int64_t)P(1), (int64_t)P(2), (int64_t)P(3), P(4));
    if (!strcmp(op, "hflip"))
        return fern_tf_hflip();
    if (!strcmp(op, "vflip"))
        return fern_tf_vflip();
    if (!strcmp(op, "rotate"))
        return fern_tf_rotate(P(0), (fern_resample)(int)P(1), P(2));
    if (!strcmp(op, "affine")) {
        double m[6] = {P(0), P(1), P(2), P(3), P(4), P(5)};
        return fern_tf_affine(m, (fern_resample)(int)P(6), P(7));
    }
    if (!strcmp(op, "normalize")) {
        int n = (int)P(0);
        double mean[4], std[4];
        for (int i = 0; i < n && i < 4; i++) {
            mean[i] = P(1 + i);
            std[i] = P(1 + n + i);
        }
        return fern_tf_normalize(n, mean, std);
    }
    if (!strcmp(op, "to_tensor"))
        return fern_tf_to_tensor();
    if (!strcmp(op, "rescale"))
        return fern_tf_rescale(P(0), P(1));
    if (!strcmp(op, "hwc_to_chw"))
        return fern_tf_hwc_to_chw();
    if (!strcmp(op, "brightness"))
        return fern_tf_adjust_brightness(P(0));
    if (!strcmp(op, "contrast"))
        return fern_tf_adjust_contrast(P(0));
    if (!strcmp(op, "saturation"))
        return fern_tf_adjust_saturation(P(0));
    if (!strcmp(op, "aa"))
        return fern_tf_aa_op((fern_aa_op)(int)P(0), P(1), P(2));
#undef P
    return NULL;
}

/* A non-contiguous copy of t: every other element along the last dim of a
 * twice-as-wide buffer. */
static fern_tensor *strided_copy(const fern_tensor *t)
{
    int nd = fern_tensor_ndim(t);
    int64_t shape[8];
    memcpy(shape, fern_tensor_shape(t), (size_t)nd * sizeof(int64_t));
    shape[nd - 1] *= 2;
    fern_tensor *big = fern__tensor_alloc(fern_tensor_dtype(t), nd, shape, FERN_CPU);
    int64_t strides[8];
    memcpy(strides, fern_tensor_strides(big), (size_t)nd * sizeof(int64_t));
    strides[nd - 1] *= 2;
    fern_tensor *v = fern__tensor_view(big, nd, fern_tensor_shape(t), strides, 1);
    fern_release(big);
    assert_int_equal(fern_tensor_assign(v, t), FERN_OK);
    assert_false(fern_tensor_is_contiguous(v));
    return v;
}

static void test_reference_cases(void **state)
{
    (void)state;
    int n = 0;
    for (int l = 0; l < g_nlines; l++) {
        mline *m = &g_lines[l];
        if (strcmp(m->tok[0], "transform") != 0)
            continue;
        fern_transform *tf = make_tf(m->tok[2], m->tok + 7, m->n - 7);
        if (!tf)
            fail_msg("case %s: cannot build %s: %s", m->tok[1], m->tok[2], fern_last_error());
        fern_tensor *in = fern_idx_read(ref_path(m->tok[3]));
        fern_tensor *exp = fern_idx_read(ref_path(m->tok[4]));
        assert_non_null(in);
        assert_non_null(exp);
        double tol = atof(m->tok[5]), frac = atof(m->tok[6]);
        fern_tensor *got = fern_transform_apply(tf, in, 0);
        expect_close(m->tok[1], got, exp, tol, frac);
        /* the same on a non-contiguous view of the input */
        fern_tensor *v = strided_copy(in);
        fern_tensor *got2 = fern_transform_apply(tf, v, 0);
        char what[160];
        snprintf(what, sizeof what, "%s (strided input)", m->tok[1]);
        expect_close(what, got2, got, 0, 0);
        /* the input is never modified */
        expect_close("input unchanged", v, in, 0, 0);
        fern_release(got2);
        fern_release(v);
        fern_release(got);
        fern_release(in);
        fern_release(exp);
        fern_transform_release(tf);
        n++;
    }
    assert_true(n >= 60);
}

static fern_tensor *test_image(int64_t h, int64_t w, int64_t c, int seed)
{
    int64_t shape[3] = {h, w, c};
    fern_tensor *t = fern__tensor_alloc(FERN_U8, 3, shape, FERN_CPU);
    uint8_t *p = fern_tensor_data(t);
    uint32_t s = (uint32_t)seed * 2654435761u + 1;
    for (int64_t i = 0; i < h * w * c; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (uint8_t)(s >> 24);
    }
    return t;
}

static int tensors_equal(const fern_tensor *a, const fern_tensor *b)
{
    if (fern_tensor_ndim(a) != fern_tensor_ndim(b) || fern_tensor_dtype(a) != fern_tensor_dtype(b))
        return 0;
    for (int i = 0; i < fern_tensor_ndim(a); i++)
        if (fern_tensor_dim(a, i) != fern_tensor_dim(b, i))
            return 0;
    for (int64_t i = 0; i < fern_tensor_numel(a); i++)
        if (fern_tensor_get_flat(a, i) != fern_tensor_get_flat(b, i))
            return 0;
    return 1;
}

static void test_random_crop(void **state)
{
    (void)state;
    fern_tensor *img = test_image(28, 28, 1, 1);
    fern_transform *rc = fern_tf_random_crop(28, 28, 2, 9);
    fern_transform *pad = fern_tf_pad(2, 2, 2, 2, 9);
    fern_tensor *padded = fern_transform_apply(pad, img, 0);
    fern_tensor *crops[25];
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            fern_transform *c = fern_tf_crop(i, j, 28, 28);
            crops[i * 5 + j] = fern_transform_apply(c, padded, 0);
            fern_transform_release(c);
        }
    int seen[25] = {0};
    for (uint64_t seed = 0; seed < 1000; seed++) {
        fern_tensor *o = fern_transform_apply(rc, img, seed);
        int which = -1;
        for (int k = 0; k < 25 && which < 0; k++)
            if (tensors_equal(o, crops[k]))
                which = k;
        assert_true(which >= 0);
        seen[which]++;
        fern_tensor *o2 = fern_transform_apply(rc, img, seed);
        assert_true(tensors_equal(o, o2));
        fern_release(o2);
        fern_release(o);
    }
    for (int k = 0; k < 25; k++)
        assert_true(seen[k] > 10 && seen[k] < 90); /* ~40 each */
    for (int k = 0; k < 25; k++)
        fern_release(crops[k]);
    /* f32 CHW with padding */
    fern_transform *tt = fern_tf_to_tensor();
    fern_tensor *f = fern_transform_apply(tt, img, 0);
    fern_tensor *fo = fern_transform_apply(rc, f, 5);
    assert_int_equal(fern_tensor_dtype(fo), FERN_F32);
    assert_int_equal(fern_tensor_dim(fo, 0), 1);
    assert_int_equal(fern_tensor_dim(fo, 2), 28);
    fern_release(fo);
    fern_release(f);
    fern_transform_release(tt);
    /* too large */
    fern_transform *big = fern_tf_random_crop(40, 40, 2, 0);
    fern_clear_error();
    assert_null(fern_transform_apply(big, img, 0));
    EXPECT_ERR_CONTAINS("random_crop: crop 40x40 is larger");
    fern_transform_release(big);
    fern_transform_release(rc);
    fern_transform_release(pad);
    fern_release(padded);
    fern_release(img);
}

static void test_random_flips_and_apply(void **state)
{
    (void)state;
    fern_tensor *img = test_image(5, 7, 3, 2);
    fern_transform *h = fern_tf_hflip(), *v = fern_tf_vflip();
    fern_tensor *hf = fern_transform_apply(h, img, 0), *vf = fern_transform_apply(v, img, 0);
    double ps[3] = {0.0, 0.5, 1.0};
    for (int k = 0; k < 3; k++) {
        fern_transform *rh = fern_tf_random_hflip(ps[k]), *rv = fern_tf_random_vflip(ps[k]);
        fern_transform *ra = fern_tf_random_apply(fern_tf_hflip(), ps[k]);
        int nh = 0, nv = 0, na = 0;
        for (uint64_t s = 0; s < 1000; s++) {
            fern_tensor *a = fern_transform_apply(rh, img, s), *b = fern_transform_apply(rv, img, s);
            fern_tensor *c = fern_transform_apply(ra, img, s);
            if (tensors_equal(a, hf))
                nh++;
            else
                assert_true(tensors_equal(a, img));
            if (tensors_equal(b, vf))
                nv++;
            else
                assert_true(tensors_equal(b, img));
            if (tensors_equal(c, hf))
                na++;
            fern_release(a);
            fern_release(b);
            fern_release(c);
        }
        if (k == 0)
            assert_true(nh == 0 && nv == 0 && na == 0);
        else if (k == 2)
            assert_true(nh == 1000 && nv == 1000 && na == 1000);
        else
            assert_true(nh > 430 && nh < 570 && nv > 430 && nv < 570 && na > 430 && na < 570);
        fern_transform_release(rh);
        fern_transform_release(rv);
        fern_transform_release(ra);
    }
    fern_release(hf);
    fern_release(vf);
    fern_transform_release(h);
    fern_transform_release(v);
    fern_release(img);
}

static void test_random_resized_crop_and_rotate(void **state)
{
    (void)state;
    fern_tensor *img = test_image(30, 40, 3, 3);
    /* scale (1,1) and the image's own ratio: the whole image, resized */
    fern_transform *full = fern_tf_random_resized_crop(15, 20, 1.0, 1.0, 40.0 / 30.0, 40.0 / 30.0, FERN_RESAMPLE_BILINEAR);
    fern_transform *rs = fern_tf_resize(15, 20, FERN_RESAMPLE_BILINEAR);
    fern_tensor *a = fern_transform_apply(full, img, 11), *b = fern_transform_apply(rs, img, 0);
    assert_true(tensors_equal(a, b));
    fern_release(a);
    fern_release(b);
    fern_transform *rrc = fern_tf_random_resized_crop(24, 24, 0.08, 1.0, 3.0 / 4.0, 4.0 / 3.0, FERN_RESAMPLE_BILINEAR);
    for (uint64_t s = 0; s < 200; s++) {
        fern_tensor *o = fern_transform_apply(rrc, img, s);
        assert_non_null(o);
        assert_int_equal(fern_tensor_dim(o, 0), 24);
        assert_int_equal(fern_tensor_dim(o, 1), 24);
        assert_int_equal(fern_tensor_dim(o, 2), 3);
        fern_tensor *o2 = fern_transform_apply(rrc, img, s);
        assert_true(tensors_equal(o, o2));
        fern_release(o);
        fern_release(o2);
    }
    /* rotation by 0 and 360 is the identity; random_rotate(0) too */
    fern_transform *r0 = fern_tf_rotate(0, FERN_RESAMPLE_NEAREST, 0), *r360 = fern_tf_rotate(360, FERN_RESAMPLE_BILINEAR, 0);
    fern_transform *rr = fern_tf_random_rotate(0, FERN_RESAMPLE_NEAREST, 0);
    a = fern_transform_apply(r0, img, 0);
    assert_true(tensors_equal(a, img));
    fern_release(a);
    a = fern_transform_apply(r360, img, 0);
    assert_true(tensors_equal(a, img));
    fern_release(a);
    a = fern_transform_apply(rr, img, 99);
    assert_true(tensors_equal(a, img));
    fern_release(a);
    fern_transform_release(r0);
    fern_transform_release(r360);
    fern_transform_release(rr);
    fern_transform_release(rrc);
    fern_transform_release(full);
    fern_transform_release(rs);
    fern_release(img);
}

static double mean_of(const fern_tensor *t)
{
    double s = 0;
    for (int64_t i = 0; i < fern_tensor_numel(t); i++)
        s += fern_tensor_get_flat(t, i);
    return s / (double)fern_tensor_numel(t);
}

static void test_color_random(void **state)
{
    (void)state;
    int64_t shape[3] = {8, 8, 3};
    fern_tensor *img = fern__tensor_alloc(FERN_U8, 3, shape, FERN_CPU);
    memset(fern_tensor_data(img), 100, 192);
    fern_transform *rb = fern_tf_random_brightness(0.4);
    double lo = 1e9, hi = -1e9;
    for (uint64_t s = 0; s < 300; s++) {
        fern_tensor *o = fern_transform_apply(rb, img, s);
        double m = mean_of(o) / 100.0;
        lo = m < lo ? m : lo;
        hi = m > hi ? m : hi;
        fern_tensor *o2 = fern_transform_apply(rb, img, s);
        assert_true(tensors_equal(o, o2));
        fern_release(o);
        fern_release(o2);
    }
    assert_true(lo >= 0.595 && lo < 0.65 && hi <= 1.405 && hi > 1.35);
    fern_transform *cj = fern_tf_color_jitter(0.2, 0.3, 0.4);
    fern_tensor *rnd = test_image(6, 9, 3, 4);
    fern_tensor *o = fern_transform_apply(cj, rnd, 7), *o2 = fern_transform_apply(cj, rnd, 7);
    assert_true(tensors_equal(o, o2));
    fern_release(o);
    fern_release(o2);
    /* saturation of a gray image changes nothing */
    fern_transform *sat = fern_tf_adjust_saturation(0.3);
    o = fern_transform_apply(sat, img, 0);
    assert_true(tensors_equal(o, img));
    fern_release(o);
    fern_transform_release(sat);
    fern_transform_release(cj);
    fern_transform_release(rb);
    fern_release(rnd);
    fern_release(img);
}

static void test_autoaugment(void **state)
{
    (void)state;
    fern_tensor *img = test_image(20, 24, 3, 5);
    fern_transform *aa = fern_tf_autoaugment_imagenet(128);
    assert_non_null(aa);
    int changed = 0;
    for (uint64_t s = 0; s < 300; s++) {
        fern_tensor *o = fern_transform_apply(aa, img, s);
        if (!o)
            fail_msg("autoaugment seed %llu: %s", (unsigned long long)s, fern_last_error());
        assert_int_equal(fern_tensor_dim(o, 0), 20);
        assert_int_equal(fern_tensor_dim(o, 1), 24);
        assert_int_equal(fern_tensor_dim(o, 2), 3);
        fern_tensor *o2 = fern_transform_apply(aa, img, s);
        assert_true(tensors_equal(o, o2));
        changed += !tensors_equal(o, img);
        fern_release(o);
        fern_release(o2);
    }
    assert_true(changed > 200);
    /* a one-step policy with probability 1 equals the op */
    fern_aa_subpolicy pol = {1, {{FERN_AA_INVERT, 1.0, 0, 0}}};
    fern_transform *inv = fern_tf_autoaugment(&pol, 1, 0), *op = fern_tf_aa_op(FERN_AA_INVERT, 0, 0);
    fern_tensor *a = fern_transform_apply(inv, img, 3), *b = fern_transform_apply(op, img, 0);
    assert_true(tensors_equal(a, b));
    assert_int_equal((int)fern_tensor_get_flat(a, 0), 255 - (int)fern_tensor_get_flat(img, 0));
    fern_release(a);
    fern_release(b);
    /* probability 0: identity; a signed rotation takes both signs */
    fern_aa_subpolicy p0 = {2, {{FERN_AA_ROTATE, 0.0, 30, 1}, {FERN_AA_SOLARIZE, 0.0, 10, 0}}};
    fern_transform *none = fern_tf_autoaugment(&p0, 1, 0);
    a = fern_transform_apply(none, img, 1);
    assert_true(tensors_equal(a, img));
    fern_release(a);
    fern_aa_subpolicy pr = {1, {{FERN_AA_ROTATE, 1.0, 30, 1}}};
    fern_transform *rot = fern_tf_autoaugment(&pr, 1, 0);
    fern_transform *plus = fern_tf_aa_op(FERN_AA_ROTATE, 30, 0), *minus = fern_tf_aa_op(FERN_AA_ROTATE, -30, 0);
    fern_tensor *tp = fern_transform_apply(plus, img, 0), *tm = fern_transform_apply(minus, img, 0);
    int np = 0, nm = 0;
    for (uint64_t s = 0; s < 100; s++) {
        fern_tensor *o = fern_transform_apply(rot, img, s);
        np += tensors_equal(o, tp);
        nm += tensors_equal(o, tm);
        fern_release(o);
    }
    assert_int_equal(np + nm, 100);
    assert_true(np > 25 && nm > 25);
    fern_release(tp);
    fern_release(tm);
    /* bad policies and non-u8 input */
    fern_clear_error();
    fern_aa_subpolicy bad = {1, {{FERN_AA_POSTERIZE, 0.5, 12, 0}}};
    assert_null(fern_tf_autoaugment(&bad, 1, 0));
    EXPECT_ERR_CONTAINS("posterize bits 12");
    fern_clear_error();
    fern_transform *tt = fern_tf_to_tensor();
    fern_tensor *f = fern_transform_apply(tt, img, 0);
    assert_null(fern_transform_apply(aa, f, 0));
    EXPECT_ERR_CONTAINS("autoaugment: needs a u8 HWC image");
    fern_release(f);
    fern_transform_release(tt);
    fern_transform_release(plus);
    fern_transform_release(minus);
    fern_transform_release(rot);
    fern_transform_release(none);
    fern_transform_release(inv);
    fern_transform_release(op);
    fern_transform_release(aa);
    fern_release(img);
}

static void test_errors_and_ownership(void **state)
{
    (void)state;
    fern_clear_error();
    assert_null(fern_tf_resize(0, 5, FERN_RESAMPLE_BILINEAR));
    EXPECT_ERR_CONTAINS("resize: size 0");
    fern_clear_error();
    double bad_std[1] = {0};
    assert_null(fern_tf_normalize(1, bad_std, bad_std));
    EXPECT_ERR_CONTAINS("normalize: std 0");
    fern_clear_error();
    assert_null(fern_tf_random_hflip(1.5));
    EXPECT_ERR_CONTAINS("probability 1.5");
    fern_clear_error();
    assert_null(fern_tf_rotate(10, FERN_RESAMPLE_BILINEAR_NOAA, 0));
    EXPECT_ERR_CONTAINS("rotate");
    /* NULL in a compose consumes the others and keeps the first error */
    fern_clear_error();
    fern_transform *list[3] = {fern_tf_hflip(), fern_tf_resize(-1, 3, 0), fern_tf_vflip()};
    assert_null(fern_tf_compose(list, 3));
    EXPECT_ERR_CONTAINS("resize");
    /* shape / dtype errors name the transform and show the input */
    int64_t s1[1] = {10};
    fern_tensor *vec = fern_empty(FERN_F32, 1, s1);
    fern_transform *rs = fern_tf_resize(4, 4, FERN_RESAMPLE_BILINEAR);
    fern_clear_error();
    assert_null(fern_transform_apply(rs, vec, 0));
    EXPECT_ERR_CONTAINS("resize: expected an image");
    EXPECT_ERR_CONTAINS("f32[10]");
    fern_tensor *img = test_image(4, 4, 3, 6);
    double m2[2] = {0.5, 0.5}, sd2[2] = {1, 1};
    fern_transform *nm = fern_tf_normalize(2, m2, sd2), *tt = fern_tf_to_tensor();
    fern_clear_error();
    assert_null(fern_transform_apply(nm, img, 0));
    EXPECT_ERR_CONTAINS("normalize: needs a float CHW image");
    fern_tensor *f = fern_transform_apply(tt, img, 0);
    fern_clear_error();
    assert_null(fern_transform_apply(nm, f, 0));
    EXPECT_ERR_CONTAINS("2 means/stds for an image with 3 channels");
    fern_clear_error();
    fern_transform *dec = fern_tf_decode(0);
    assert_null(fern_transform_apply(dec, img, 0));
    EXPECT_ERR_CONTAINS("decode: needs encoded bytes");
    /* compose applies in order; the result lives in the open scope */
    fern_transform *chain[3] = {fern_tf_hflip(), fern_tf_to_tensor(), fern_tf_normalize(1, m2, sd2)};
    fern_transform *comp = fern_tf_compose(chain, 3);
    assert_non_null(comp);
    fern_scope_begin();
    fern_tensor *o = fern_transform_apply(comp, img, 0);
    assert_non_null(o);
    assert_int_equal(fern_tensor_dtype(o), FERN_F32);
    int64_t i0[3] = {0, 0, 0}, i1[3] = {0, 3, 0};
    assert_true(fabs(fern_tensor_get(o, i0) - (fern_tensor_get(img, i1) / 255.0 - 0.5)) < 1e-6);
    assert_int_equal(fern_tensor_refcount(o), 1);
    fern_scope_end(); /* releases o */
    fern_transform_release(comp);
    fern_transform_release(dec);
    fern_transform_release(nm);
    fern_transform_release(tt);
    fern_transform_release(rs);
    fern_release(f);
    fern_release(img);
    fern_release(vec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_cases),       cmocka_unit_test(test_random_crop),
        cmocka_unit_test(test_random_flips_and_apply), cmocka_unit_test(test_random_resized_crop_and_rotate),
        cmocka_unit_test(test_color_random),          cmocka_unit_test(test_autoaugment),
        cmocka_unit_test(test_errors_and_ownership),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
