/* Optimizers against torch.optim: 10-step trajectories of every optimizer
 * (LAMB against a NumPy transcription of the paper) in pynative mode and as
 * a compiled graph-mode step; LR schedules; state save/restore resumes
 * exactly; gradient clipping against clip_grad_norm_. Tolerance 1e-10
 * relative (float64). */
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

static fern_checkpoint *refs;

static fern_tensor *ref(const char *name)
{
    fern_tensor *t = fern_checkpoint_get(refs, name);
    if (!t)
        fail_msg("reference '%s' missing", name);
    return t;
}

typedef struct {
    fern_tensor *p[2], *target[2];
    fern_optimizer *opt;
} problem;

/* g(p) = 2 (p - target) + 0.5 sin(p) */
static fern_tensor *grad_of(fern_tensor *p, fern_tensor *t)
{
    return fern_add(fern_mul_scalar(fern_sub(p, t), 2.0), fern_mul_scalar(fern_sin(p), 0.5));
}

static int step_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)in;
    problem *pr = ud;
    fern_tensor *g[2] = {grad_of(pr->p[0], pr->target[0]), grad_of(pr->p[1], pr->target[1])};
    if (fern_optim_step(pr->opt, g, 2) != FERN_OK)
        return -1;
    out[0] = fern_add(fern_sum(pr->p[0], NULL, 0, 0), fern_sum(pr->p[1], NULL, 0, 0));
    return out[0] ? 0 : -1;
}

static fern_optimizer *make_opt(const char *name, fern_tensor **ps)
{
    if (!strcmp(name, "sgd")) {
        fern_optimizer *o = fern_sgd(ps, 2, 0.1, 0, 0, 0, 0);
        fern_optim_set_schedule(o, fern_lr_step_decay(0.1, 3, 0.5));
        return o;
    }
    if (!strcmp(name, "sgd_wd"))
        return fern_sgd(ps, 2, 0.1, 0, 0, 0.01, 0);
    if (!strcmp(name, "momentum"))
        return fern_momentum(ps, 2, 0.05, 0.9, 0, 0);
    if (!strcmp(name, "momentum_damp"))
        return fern_sgd(ps, 2, 0.05, 0.9, 0.3, 0, 0);
    if (!strcmp(name, "nesterov"))
        return fern_momentum(ps, 2, 0.05, 0.9, 0.001, 1);
    if (!strcmp(name, "adam"))
        return fern_adam(ps, 2, 0.01, 0.9, 0.999, 1e-8, 0);
    if (!strcmp(name, "adam_wd"))
        return fern_adam(ps, 2, 0.01, 0.8, 0.99, 1e-6, 0.1);
    if (!strcmp(name, "adamw"))
        return fern_adamw(ps, 2, 0.01, 0.9, 0.999, 1e-8, 0.1);
    if (!strcmp(name, "rmsprop"))
        return fern_rmsprop(ps, 2, 0.01, 0.99, 1e-8, 0, 0, 0);
    if (!strcmp(name, "rmsprop_cm"))
        return fern_rmsprop(ps, 2, 0.01, 0.9, 1e-8, 0.01, 0.5, 1);
    if (!strcmp(name, "adagrad"))
        return fern_adagrad(ps, 2, 0.1, 0.01, 0.01, 0.1, 1e-10);
    if (!strcmp(name, "lamb"))
        return fern_lamb(ps, 2, 0.01, 0.9, 0.999, 1e-6, 0.01);
    return NULL;
}

static const char *configs[] = {"sgd",     "sgd_wd",  "momentum",   "momentum_damp", "nesterov", "adam",
                                "adam_wd", "adamw",   "rmsprop",    "rmsprop_cm",    "adagrad",  "lamb"};

static void setup_problem(problem *pr, const char *name)
{
    for (int k = 0; k < 2; k++) {
        char n[32];
        snprintf(n, sizeof n, "p0.%d", k);
        pr->p[k] = fern_clone(ref(n));
        snprintf(n, sizeof n, "target.%d", k);
        pr->target[k] = ref(n);
    }
    pr->opt = make_opt(name, pr->p);
    if (!pr->opt)
        fail_msg("%s: %s", name, fern_last_error());
}

static void compare_row(const char *cfg, problem *pr, int step)
{
    for (int k = 0; k < 2; k++) {
        char n[64];
        snprintf(n, sizeof n, "%s.%d", cfg, k);
        fern_tensor *traj = ref(n);
        int64_t m = fern_tensor_numel(pr->p[k]);
        for (int64_t i = 0; i < m; i++) {
            double want = fern_tensor_get_flat(traj, step * m + i), got = fern_tensor_get_flat(pr->p[k], i);
            if (!(fabs(want - got) <= 1e-12 + 1e-10 * fabs(want)))
                fail_msg("%s step %d param %d[%lld]: fern %.15g, reference %.15g", cfg, step + 1, k,
                         (long long)i, got, want);
        }
    }
}

static void test_trajectories(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++)
        for (size_t c = 0; c < sizeof configs / sizeof *configs; c++) {
            fern_clear_error();
            fern_scope_begin();
            problem pr;
            setup_problem(&pr, configs[c]);
            fern_fn *step = fern_fn_new(step_body, &pr, 0, 1);
            fern_set_mode(mode ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
            for (int s = 0; s < 10; s++) {
                fern_optim_prepare(pr.opt); /* the schedule advances in both modes */
                fern_tensor *o;
                if (fern_call(step, 0, NULL, 1, &o) != FERN_OK)
                    fail_msg("%s: %s", configs[c], fern_last_error());
                compare_row(configs[c], &pr, s);
            }
            fern_set_mode(FERN_PYNATIVE_MODE);
            assert_int_equal(fern_optim_step_count(pr.opt), 10);
            if (mode) {
                fern_jit_stats st;
                fern_jit_get_stats(step, &st);
                assert_int_equal(st.n_compiles, 1); /* one graph serves all steps */
            }
            fern_fn_release(step);
            fern_optim_free(pr.opt);
            fern_scope_end();
        }
}

static void test_save_and_resume(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    problem a;
    setup_problem(&a, "adam_wd");
    fern_fn *step = fern_fn_new(step_body, &a, 0, 1);
    fern_tensor *o;
    for (int s = 0; s < 5; s++)
        fern_call(step, 0, NULL, 1, &o);
    fern_checkpoint *ck = fern_checkpoint_new();
    assert_int_equal(fern_optim_save_state(a.opt, ck, "optim"), FERN_OK);
    fern_checkpoint_add(ck, "p0", a.p[0]);
    fern_checkpoint_add(ck, "p1", a.p[1]);
    char path[] = "/tmp/fern-optim-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(fern_checkpoint_save(ck, path), FERN_OK);
    fern_checkpoint_free(ck);
    /* a fresh problem restored from the file continues identically */
    problem b;
    setup_problem(&b, "adam_wd");
    fern_checkpoint *ld = fern_checkpoint_load(path);
    assert_non_null(ld);
    assert_int_equal(fern_optim_load_state(b.opt, ld, "optim"), FERN_OK);
    fern_tensor_assign(b.p[0], fern_checkpoint_get(ld, "p0"));
    fern_tensor_assign(b.p[1], fern_checkpoint_get(ld, "p1"));
    assert_int_equal(fern_optim_step_count(b.opt), 5);
    fern_fn *stepb = fern_fn_new(step_body, &b, 0, 1);
    for (int s = 5; s < 10; s++) {
        fern_call(stepb, 0, NULL, 1, &o);
        compare_row("adam_wd", &b, s);
    }
    /* loading into the wrong optimizer kind is refused */
    problem c;
    setup_problem(&c, "sgd");
    assert_int_not_equal(fern_optim_load_state(c.opt, ld, "optim"), FERN_OK);
    assert_non_null(strstr(fern_last_error(), "adam"));
    fern_clear_error();
    unlink(path);
    fern_checkpoint_free(ld);
    fern_fn_release(step);
    fern_fn_release(stepb);
    fern_optim_free(a.opt);
    fern_optim_free(b.opt);
    fern_optim_free(c.opt);
    fern_scope_end();
}

static void test_schedules(void **state)
{
    (void)state;
    fern_lr_schedule *s = fern_lr_step_decay(1.0, 3, 0.5);
    assert_true(fern_lr_at(s, 2) == 1.0 && fern_lr_at(s, 3) == 0.5 && fern_lr_at(s, 7) == 0.25);
    fern_lr_schedule_free(s);
    s = fern_lr_cosine(1.0, 10, 0.1);
    assert_true(fabs(fern_lr_at(s, 5) - 0.55) < 1e-12 && fabs(fern_lr_at(s, 20) - 0.1) < 1e-12);
    fern_lr_schedule_free(s);
    s = fern_lr_linear_warmup(4, fern_lr_exponential(2.0, 0.5));
    assert_true(fern_lr_at(s, 0) == 0.5 && fern_lr_at(s, 3) == 2.0 && fern_lr_at(s, 5) == 1.0);
    fern_lr_schedule_free(s);
    s = fern_lr_polynomial(1.0, 10, 0.0, 2.0);
    assert_true(fabs(fern_lr_at(s, 5) - 0.25) < 1e-12 && fern_lr_at(s, 11) == 0.0);
    fern_lr_schedule_free(s);
    s = fern_lr_piecewise((int64_t[]){10, 20}, (double[]){0.1, 0.01, 0.001}, 2);
    assert_true(fern_lr_at(s, 9) == 0.1 && fern_lr_at(s, 10) == 0.01 && fern_lr_at(s, 25) == 0.001);
    fern_lr_schedule_free(s);
    assert_null(fern_lr_piecewise((int64_t[]){5, 5}, (double[]){1, 2, 3}, 2));
    assert_non_null(strstr(fern_last_error(), "increase"));
    fern_clear_error();
}

static void test_clip(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    fern_tensor *g[2] = {fern_mul_scalar(ref("p0.0"), 10), fern_mul_scalar(ref("p0.1"), 10)}, *c[2], *norm;
    assert_int_equal(fern_clip_by_global_norm(g, 2, 1.0, c, &norm), FERN_OK);
    assert_true(fabs(fern_tensor_get_flat(norm, 0) - fern_tensor_get_flat(ref("clip.norm"), 0)) < 1e-10);
    for (int k = 0; k < 2; k++) {
        char n[16];
        snprintf(n, sizeof n, "clip.%d", k);
        for (int64_t i = 0; i < fern_tensor_numel(c[k]); i++)
            assert_true(fabs(fern_tensor_get_flat(c[k], i) - fern_tensor_get_flat(ref(n), i)) < 1e-12);
    }
    /* errors */
    assert_null(fern_adam(g, 2, 0.1, 1.5, 0.9, 1e-8, 0));
    assert_non_null(strstr(fern_last_error(), "betas"));
    fern_clear_error();
    fern_optimizer *o = fern_sgd(g, 2, 0.1, 0, 0, 0, 0);
    assert_int_not_equal(fern_optim_step(o, (fern_tensor *[]){g[1], g[0]}, 2), FERN_OK);
    assert_non_null(strstr(fern_last_error(), "gradient 0"));
    fern_clear_error();
    fern_optim_free(o);
    fern_scope_end();
}

/* The fused update ops directly: one step by hand, and their errors. */
static void test_fused_update_ops(void **state)
{
    (void)state;
    fern_scope_begin();
    int64_t s[2] = {2, 3};
    fern_tensor *p = fern_full(FERN_F32, 2, s, 1.0), *buf = fern_full(FERN_F32, 2, s, 0.5);
    fern_tensor *g = fern_full(FERN_F32, 2, s, 2.0), *lr = fern_scalar(FERN_F64, 0.1);
    assert_ptr_equal(fern_apply_momentum(p, buf, g, lr, 0.9, 0.0, 0), p);
    /* buf = 0.9*0.5 + 2 = 2.45; p = 1 - 0.1*2.45 */
    assert_float_equal(fern_tensor_get_flat(buf, 5), 2.45f, 1e-6);
    assert_float_equal(fern_tensor_get_flat(p, 0), 1.0f - 0.1f * 2.45f, 1e-6);
    /* Adam step 1 from zero moments: p -= lr * g/(|g| + eps') = lr*sign(g) */
    fern_tensor *q = fern_full(FERN_F64, 2, s, 1.0), *m = fern_zeros(FERN_F64, 2, s), *v = fern_zeros(FERN_F64, 2, s);
    fern_tensor *gq = fern_full(FERN_F64, 2, s, -3.0), *t = fern_scalar(FERN_F64, 1);
    assert_non_null(fern_apply_adam(q, m, v, gq, lr, t, 0.9, 0.999, 1e-8, 0.0, 0));
    assert_true(fabs(fern_tensor_get_flat(q, 3) - (1.0 + 0.1 * 3.0 / (3.0 + 1e-8))) < 1e-12);
    /* errors name the op and the shapes */
    fern_tensor *bad = fern_zeros(FERN_F32, 1, (int64_t[]){6});
    assert_null(fern_apply_momentum(p, bad, g, lr, 0.9, 0.0, 0));
    assert_non_null(strstr(fern_last_error(), "apply_momentum"));
    assert_non_null(strstr(fern_last_error(), "f32[6]"));
    fern_clear_error();
    fern_tensor *pt = fern_transpose(fern_zeros(FERN_F32, 2, (int64_t[]){3, 2}), 0, 1);
    assert_null(fern_apply_momentum(pt, buf, g, lr, 0.9, 0.0, 0));
    assert_non_null(strstr(fern_last_error(), "contiguous"));
    fern_clear_error();
    assert_null(fern_apply_adam(q, m, v, gq, lr, fern_full(FERN_F64, 1, (int64_t[]){1}, 1.0), 0.9, 0.999, 1e-8, 0, 0));
    assert_non_null(strstr(fern_last_error(), "0-d"));
    fern_clear_error();
    fern_scope_end();
}

int main(void)
{
    const char *path = getenv("FERN_OPTIM_REFS");
    if (!path) {
        fprintf(stderr, "set FERN_OPTIM_REFS to the .npz written by tests/data/make_optim_refs.py\n");
        return 2;
    }
    refs = fern_npz_load(path);
    if (!refs) {
        fprintf(stderr, "%s\n", fern_last_error());
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trajectories), cmocka_unit_test(test_save_and_resume),
        cmocka_unit_test(test_schedules),    cmocka_unit_test(test_clip),
        cmocka_unit_test(test_fused_update_ops),
    };
    int rc = cmocka_run_group_tests_name("optim", tests, NULL, NULL);
    fern_checkpoint_free(refs);
    return rc;
}
