/* fern — the command-line tool. Git-like subcommands:
 *
 *   fern train|eval|predict  train and use zoo models (tools/cmd_train.c)
 *   fern record ...          record files (tools/cmd_record.c)
 *   fern ops [--grep WORD]   list the op registry
 *   fern info                version, threads, BLAS, CPU features, allocator
 *   fern selfcheck           fast end-to-end check of a fresh build
 *
 * Commands live in the `commands` table at the end of this file: add a
 * row (name, function or external entry point, one-line summary, help
 * text) to add one. Usage errors exit with status 2, failures with 1. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "fern/fern.h"

typedef struct command {
    const char *name;
    int (*run)(const struct command *cmd, int argc, char **argv); /* argv[0]: command */
    /* or a command implemented in its own file (tools/cmd_*.c): a main-like
     * entry point with argv[0] = the command name that handles --help itself
     * and returns the exit status (0 ok, 1 failed, 2 usage error) */
    int (*ext)(int argc, char **argv);
    const char *summary;
    const char *help; /* usage line first, then description, options, examples */
} command;

/* Commands in other files (tools/cmd_train.c, tools/cmd_record.c). */
int fern_cmd_train(int argc, char **argv);
int fern_cmd_eval(int argc, char **argv);
int fern_cmd_predict(int argc, char **argv);
int fern_cmd_record(int argc, char **argv);

static const command *find_command(const char *name);
static int print_main_help(FILE *f);

/* ---- shared option handling -------------------------------------------- */

/* Returns the exit status for "fern help CMD". */
static int print_command_help(const command *c)
{
    if (c->ext) {
        char *argv[3] = {(char *)c->name, "--help", NULL};
        return c->ext(2, argv);
    }
    printf("%s", c->help);
    return 0;
}

/* Prints "fern CMD: message", the usage line and a hint; returns 2. */
static int usage_error(const command *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fern %s: ", c->name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    const char *nl = strchr(c->help, '\n');
    fprintf(stderr, "\n%.*s\nRun 'fern help %s' for details.\n",
            nl ? (int)(nl - c->help) : (int)strlen(c->help), c->help, c->name);
    return 2;
}

static int is_help_flag(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

/* For commands without options: accept only --help. Returns -1 to go on,
 * else the exit status. */
static int no_options(const command *c, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (is_help_flag(argv[i])) {
            print_command_help(c);
            return 0;
        }
        if (argv[i][0] == '-')
            return usage_error(c, "unknown option '%s'", argv[i]);
        return usage_error(c, "unexpected argument '%s'", argv[i]);
    }
    return -1;
}

static int contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return 1;
    }
    return n == 0;
}

static const char *human_bytes(size_t b, char *buf, size_t n)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, n, "%zu B", b);
    else
        snprintf(buf, n, "%.1f %s", v, units[u]);
    return buf;
}

/* ---- fern ops ------------------------------------------------------------ */

static int cmd_ops(const command *c, int argc, char **argv)
{
    const char *words[16];
    int n_words = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help_flag(a)) {
            print_command_help(c);
            return 0;
        }
        const char *w = NULL;
        if (!strcmp(a, "--grep") || !strcmp(a, "-g")) {
            if (i + 1 >= argc)
                return usage_error(c, "option '%s' needs a WORD", a);
            w = argv[++i];
        } else if (!strncmp(a, "--grep=", 7)) {
            w = a + 7;
        } else if (a[0] == '-') {
            return usage_error(c, "unknown option '%s'", a);
        } else {
            return usage_error(c, "unexpected argument '%s' (did you mean --grep %s?)", a, a);
        }
        if (n_words == 16)
            return usage_error(c, "at most 16 --grep words");
        words[n_words++] = w;
    }
    int total = fern_op_count(), shown = 0;
    char line[1024];
    for (int i = 0; i < total; i++) {
        const fern_op_def *op = fern_op_at(i);
        if (!op)
            continue;
        fern_op_describe(op, line, sizeof line);
        int ok = 1;
        for (int k = 0; k < n_words && ok; k++)
            ok = contains_nocase(line, words[k]);
        if (!ok)
            continue;
        printf("%s\n", line);
        shown++;
    }
    if (n_words)
        printf("%d of %d ops match\n", shown, total);
    else
        printf("%d ops\n", total);
    return 0;
}

/* ---- fern info ----------------------------------------------------------- */

static void print_cpu_features(void)
{
    printf("%-14s", "cpu features");
    int any = 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    /* compiled-in feature, and whether this CPU has it */
#define FEAT(macro_on, name)                                                                    \
    if (macro_on) {                                                                            \
        printf(" %s%s", name, __builtin_cpu_supports(name) ? "" : "(NOT ON THIS CPU)");      \
        any = 1;                                                                               \
    }
#ifdef __SSE4_2__
    FEAT(1, "sse4.2")
#endif
#ifdef __AVX__
    FEAT(1, "avx")
#endif
#ifdef __AVX2__
    FEAT(1, "avx2")
#endif
#ifdef __FMA__
    FEAT(1, "fma")
#endif
#ifdef __AVX512F__
    FEAT(1, "avx512f")
#endif
#ifdef __AVX512BW__
    FEAT(1, "avx512bw")
#endif
#ifdef __AVX512VL__
    FEAT(1, "avx512vl")
#endif
#ifdef __AVX512BF16__
    FEAT(1, "avx512bf16")
#endif
#undef FEAT
#elif defined(__aarch64__)
    printf(" aarch64");
    any = 1;
#ifdef __ARM_NEON
    printf(" neon");
#endif
#ifdef __ARM_FEATURE_SVE
    printf(" sve");
#endif
#endif
    printf("%s (compiled for)\n", any ? "" : " baseline only");
}

static int cmd_info(const command *c, int argc, char **argv)
{
    int rc = no_options(c, argc, argv);
    if (rc >= 0)
        return rc;
    char b1[32], b2[32], b3[32];
    printf("%-14s %s\n", "fern", fern_version());
    const char *env = getenv("FERN_NUM_THREADS");
    int threads = fern_num_threads();
    if (env && atoi(env) > 0)
        printf("%-14s %d (FERN_NUM_THREADS=%s)\n", "threads", threads, env);
    else
        printf("%-14s %d (all online CPUs; set FERN_NUM_THREADS to change)\n", "threads",
               threads);
    int par = openblas_get_parallel();
    printf("%-14s %s\n", "gemm", fern_gemm_backend());
    printf("%-14s OpenBLAS, %s\n", "blas", openblas_get_config());
    printf("%-14s core %s, %d thread%s (%s)%s\n", "", openblas_get_corename(),
           openblas_get_num_threads(), openblas_get_num_threads() == 1 ? "" : "s",
           par == 0 ? "sequential build" : par == 1 ? "pthreads" : "OpenMP",
           openblas_get_num_threads() == 1 ? "; fern splits large gemms over its own threads" : "");
    print_cpu_features();
#if defined(__x86_64__)
    {
        /* OpenBLAS picks its kernels when it loads (OPENBLAS_CORETYPE, or
         * detection, which older releases get wrong on new AMD cores) */
        const char *core = openblas_get_corename();
        int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
        int f32_openblas = strstr(fern_gemm_backend(), "oneDNN") == NULL;
        if (avx512 && core && (!strcmp(core, "Haswell") || !strcmp(core, "Zen") || !strcmp(core, "Prescott")))
            printf("%-14s this CPU has AVX-512 but OpenBLAS runs its %s kernels: %s gemms are up to\n"
                   "%-14s about 1.8x faster with OPENBLAS_CORETYPE=SkylakeX set before fern starts%s\n",
                   "hint", core, f32_openblas ? "f32 and f64" : "f64", "",
                   f32_openblas ? "\n               (or build fern with oneDNN: apt-get install libdnnl-dev)" : "");
    }
#endif
#if defined(__VERSION__)
    printf("%-14s %s, C%ld, %s%s%s\n", "compiler", __VERSION__, (long)__STDC_VERSION__,
#ifdef __OPTIMIZE__
           "optimized",
#else
           "not optimized (Debug)",
#endif
#ifdef __SANITIZE_ADDRESS__
           ", AddressSanitizer",
#else
           "",
#endif
#ifdef NDEBUG
           ", NDEBUG"
#else
           ""
#endif
    );
#endif
    printf("%-14s cpu", "devices");
    for (int d = 1; d < FERN_DEVICE_COUNT; d++) {
        void *p = fern_alloc((fern_device)d, 64);
        printf(", %s (%s)", fern_device_name((fern_device)d),
               p ? "available" : "not available in this build");
        if (p)
            fern_free((fern_device)d, p, 64);
    }
    fern_clear_error();
    printf("\n%-14s %d registered (see 'fern ops')\n", "ops", fern_op_count());
    fern_alloc_stats s = fern_alloc_get_stats(FERN_CPU);
    printf("%-14s current %s, peak %s, cached %s, %llu requests, %llu cache hits\n",
           "allocator", human_bytes(s.current_bytes, b1, sizeof b1),
           human_bytes(s.peak_bytes, b2, sizeof b2), human_bytes(s.cached_bytes, b3, sizeof b3),
           (unsigned long long)s.n_allocs, (unsigned long long)s.n_cache_hits);
    return 0;
}

/* ---- fern selfcheck ------------------------------------------------------ */

static char ck_msg[1024]; /* why the running check failed */
static int ck_verbose;

#define REQUIRE(cond, ...)                                                                     \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            int n_ = snprintf(ck_msg, sizeof ck_msg, __VA_ARGS__);                             \
            if (fern_last_status() != FERN_OK && n_ >= 0 && (size_t)n_ < sizeof ck_msg)        \
                snprintf(ck_msg + n_, sizeof ck_msg - (size_t)n_, " [error: %s]",              \
                         fern_last_error());                                                   \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

typedef struct {
    const char *name;
    fern_attr a;
} nattr;

static nattr attr_int(const char *name, int64_t v)
{
    nattr r = {name, {.kind = FERN_ATTR_INT, .n = 1, .i = v}};
    return r;
}
static nattr attr_float(const char *name, double v)
{
    nattr r = {name, {.kind = FERN_ATTR_FLOAT, .n = 1, .f = v}};
    return r;
}
static nattr attr_ints(const char *name, int n, const int64_t *v)
{
    nattr r = {name, {.kind = FERN_ATTR_INTS, .n = n}};
    for (int i = 0; i < n && i < FERN_ATTR_MAX_VALUES; i++)
        r.a.ints[i] = v[i];
    return r;
}

/* Call a single-output op by registry name, so this tool links and runs
 * whichever op families are built; a missing op is an error like any other. */
static fern_tensor *op(const char *name, int n_in, fern_tensor *const *in, int n_attrs,
                       const nattr *attrs)
{
    if (!fern_op_find(name)) {
        fern_set_error(FERN_ERR_UNSUPPORTED, "op '%s' is not in the registry", name);
        return NULL;
    }
    const char *names[16];
    fern_attr vals[16];
    for (int i = 0; i < n_attrs && i < 16; i++) {
        names[i] = attrs[i].name;
        vals[i] = attrs[i].a;
    }
    fern_tensor *out = NULL;
    if (fern_op_invoke(name, n_in, in, n_attrs, names, vals, 1, &out) != FERN_OK)
        return NULL;
    return out;
}
static fern_tensor *op1(const char *name, fern_tensor *x) { return op(name, 1, &x, 0, NULL); }
static fern_tensor *op2(const char *name, fern_tensor *a, fern_tensor *b)
{
    fern_tensor *in[2] = {a, b};
    return op(name, 2, in, 0, NULL);
}

static fern_tensor *make_f32(int ndim, const int64_t *shape, const float *data)
{
    return fern_from_data(FERN_F32, ndim, shape, data);
}

/* 1 if t has the given shape and its values equal want[] within tol. */
static int check_values(const char *what, const fern_tensor *t, int ndim, const int64_t *shape,
                        const double *want, double tol)
{
    char d[128];
    if (!t) {
        snprintf(ck_msg, sizeof ck_msg, "%s: got NULL [error: %s]", what, fern_last_error());
        return 0;
    }
    int same = fern_tensor_ndim(t) == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = fern_tensor_shape(t)[i] == shape[i];
    if (!same) {
        snprintf(ck_msg, sizeof ck_msg, "%s: wrong shape %s", what,
                 fern_tensor_desc(t, d, sizeof d));
        return 0;
    }
    for (int64_t i = 0; i < fern_tensor_numel(t); i++) {
        double v = fern_tensor_get_flat(t, i);
        if (!(fabs(v - want[i]) <= tol * (1 + fabs(want[i])))) {
            snprintf(ck_msg, sizeof ck_msg, "%s: element %lld is %.9g, expected %.9g", what,
                     (long long)i, v, want[i]);
            return 0;
        }
    }
    return 1;
}

static const int64_t s23[2] = {2, 3};
static const float m23[6] = {1, 2, 3, 4, 5, 6};

static int ck_tensors(void)
{
    fern_tensor *a = make_f32(2, s23, m23);
    REQUIRE(a, "from_data failed");
    REQUIRE(fern_tensor_ndim(a) == 2 && fern_tensor_numel(a) == 6 &&
                fern_tensor_dtype(a) == FERN_F32 && fern_tensor_is_contiguous(a),
            "from_data: wrong metadata");
    int64_t idx[2] = {1, 2};
    REQUIRE(fern_tensor_get(a, idx) == 6, "get [1,2] is not 6");
    fern_tensor *t = fern_transpose(a, 0, 1);
    REQUIRE(t && fern_tensor_shares_storage(a, t) && !fern_tensor_is_contiguous(t),
            "transpose is not a strided view");
    static const int64_t s32[2] = {3, 2};
    static const double tw[6] = {1, 4, 2, 5, 3, 6};
    if (!check_values("transpose", fern_contiguous(t), 2, s32, tw, 0))
        return 1;
    fern_tensor *r = fern_reshape(a, 1, (int64_t[]){-1});
    static const int64_t s6[1] = {6};
    static const double rw[6] = {1, 2, 3, 4, 5, 6};
    if (!check_values("reshape", r, 1, s6, rw, 0))
        return 1;
    fern_tensor *sl = fern_slice(r, 0, 1, 6, 2);
    static const int64_t s3[1] = {3};
    static const double sw[3] = {2, 4, 6};
    if (!check_values("slice 1:6:2", sl, 1, s3, sw, 0))
        return 1;
    fern_tensor *h = fern_cast(fern_cast(a, FERN_F16), FERN_F32);
    if (!check_values("f32->f16->f32 round trip", h, 2, s23, rw, 0))
        return 1;
    fern_tensor *s = fern_scalar(FERN_F64, 2.5);
    REQUIRE(s && fern_tensor_ndim(s) == 0 && fern_tensor_get_flat(s, 0) == 2.5, "0-d scalar");
    return 0;
}

static int ck_broadcast(void)
{
    fern_tensor *a = make_f32(2, s23, m23);
    fern_tensor *row = make_f32(1, (int64_t[]){3}, (float[]){10, 20, 30});
    fern_tensor *col = make_f32(2, (int64_t[]){2, 1}, (float[]){2, -1});
    static const double w_add[6] = {11, 22, 33, 14, 25, 36};
    if (!check_values("add [2,3]+[3]", op2("add", a, row), 2, s23, w_add, 0))
        return 1;
    static const double w_mul[6] = {2, 4, 6, -4, -5, -6};
    if (!check_values("mul [2,3]*[2,1]", op2("mul", a, col), 2, s23, w_mul, 0))
        return 1;
    static const double w_outer[6] = {8, 18, 28, 11, 21, 31};
    if (!check_values("sub [3]-[2,1]", op2("sub", row, col), 2, s23, w_outer, 0))
        return 1;
    fern_tensor *d = fern_from_data(FERN_F64, 1, (int64_t[]){1}, (double[]){4});
    static const double w_div[6] = {0.25, 0.5, 0.75, 1, 1.25, 1.5};
    fern_tensor *q = op2("div", a, d);
    if (!check_values("div f32[2,3]/f64[1]", q, 2, s23, w_div, 0))
        return 1;
    REQUIRE(fern_tensor_dtype(q) == FERN_F64, "div f32/f64 should give f64, got %s",
            fern_dtype_name(fern_tensor_dtype(q)));
    return 0;
}

static int ck_reduce(void)
{
    fern_tensor *a = make_f32(2, s23, m23);
    static const double w_all[1] = {21};
    if (!check_values("sum all", op("sum", 1, &a, 0, NULL), 0, NULL, w_all, 0))
        return 1;
    nattr ax1[2] = {attr_ints("axes", 1, (int64_t[]){1}), attr_int("keepdims", 0)};
    static const double w_s1[2] = {6, 15};
    if (!check_values("sum axis 1", op("sum", 1, &a, 2, ax1), 1, (int64_t[]){2}, w_s1, 0))
        return 1;
    nattr ax0[2] = {attr_ints("axes", 1, (int64_t[]){0}), attr_int("keepdims", 1)};
    static const double w_m0[3] = {2.5, 3.5, 4.5};
    if (!check_values("mean axis 0 keepdims", op("mean", 1, &a, 2, ax0), 2, (int64_t[]){1, 3},
                      w_m0, 1e-7))
        return 1;
    static const double w_max[1] = {6};
    if (!check_values("max all", op("max", 1, &a, 0, NULL), 0, NULL, w_max, 0))
        return 1;
    return 0;
}

static int ck_matmul(void)
{
    fern_tensor *a = make_f32(2, s23, m23);
    fern_tensor *b = make_f32(2, (int64_t[]){3, 2}, (float[]){7, 8, 9, 10, 11, 12});
    static const double w[4] = {58, 64, 139, 154};
    static const int64_t s22[2] = {2, 2};
    if (!check_values("[2,3]@[3,2]", op2("matmul", a, b), 2, s22, w, 0))
        return 1;
    /* the same product from transposed (non-contiguous) views */
    fern_tensor *at = fern_contiguous(fern_transpose(a, 0, 1));
    fern_tensor *bt = fern_contiguous(fern_transpose(b, 0, 1));
    if (!check_values("strided operands", op2("matmul", fern_transpose(at, 0, 1),
                                                 fern_transpose(bt, 0, 1)),
                      2, s22, w, 0))
        return 1;
    return 0;
}

static int ck_mlp(void)
{
    enum { N = 32, IN = 64, HID = 128, OUT = 10 };
    fern_seed(1234);
    nattr u[3] = {attr_ints("shape", 2, (int64_t[]){N, IN}), attr_float("low", -1),
                  attr_float("high", 1)};
    fern_tensor *x = op("rand_uniform", 0, NULL, 3, u);
    u[0] = attr_ints("shape", 2, (int64_t[]){IN, HID});
    fern_tensor *w1 = op("rand_uniform", 0, NULL, 3, u);
    u[0] = attr_ints("shape", 1, (int64_t[]){HID});
    fern_tensor *b1 = op("rand_uniform", 0, NULL, 3, u);
    u[0] = attr_ints("shape", 2, (int64_t[]){HID, OUT});
    fern_tensor *w2 = op("rand_uniform", 0, NULL, 3, u);
    REQUIRE(x && w1 && b1 && w2, "random parameters");
    REQUIRE(fern_tensor_dtype(x) == FERN_F32 && fern_tensor_numel(x) == N * IN,
            "rand_uniform gave the wrong dtype or shape");
    fern_tensor *h = op1("relu", op2("add", op2("matmul", x, w1), b1));
    fern_tensor *logits = op2("matmul", h, w2);
    nattr sa = attr_int("axis", -1);
    fern_tensor *p = op("softmax", 1, &logits, 1, &sa);
    REQUIRE(p, "forward pass failed");
    REQUIRE(fern_tensor_ndim(p) == 2 && fern_tensor_dim(p, 0) == N && fern_tensor_dim(p, 1) == OUT,
            "softmax output has the wrong shape");
    for (int64_t i = 0; i < N * HID; i++)
        REQUIRE(fern_tensor_get_flat(h, i) >= 0, "relu output has a negative value");
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int j = 0; j < OUT; j++) {
            double v = fern_tensor_get_flat(p, (int64_t)i * OUT + j);
            REQUIRE(v >= 0 && v <= 1, "probability [%d,%d] = %g is outside [0,1]", i, j, v);
            s += v;
        }
        REQUIRE(fabs(s - 1) < 1e-5, "softmax row %d sums to %.9g, not 1", i, s);
    }
    return 0;
}

static int ck_errors(void)
{
    fern_tensor *a = make_f32(2, s23, m23);
    fern_tensor *b = make_f32(1, (int64_t[]){4}, (float[]){1, 2, 3, 4});
    /* a chain whose first op fails must return NULL and keep that error */
    fern_tensor *r = op1("relu", op2("add", a, b));
    const char *e = fern_last_error();
    REQUIRE(!r, "add [2,3]+[4] did not fail");
    REQUIRE(fern_last_status() == FERN_ERR_INVALID, "add [2,3]+[4]: status %d, expected INVALID",
            (int)fern_last_status());
    REQUIRE(strstr(e, "add") && strstr(e, "[2,3]") && strstr(e, "[4]"),
            "message does not name the op and shapes: \"%s\"", e);
    if (ck_verbose)
        printf("        expected error: %s\n", e);
    fern_clear_error();
    REQUIRE(fern_last_status() == FERN_OK && !*fern_last_error(), "clear_error did not clear");
    REQUIRE(!op2("matmul", a, a) && strstr(fern_last_error(), "matmul"),
            "matmul [2,3]@[2,3] did not fail with a matmul error (\"%s\")", fern_last_error());
    if (ck_verbose)
        printf("        expected error: %s\n", fern_last_error());
    fern_clear_error();
    nattr bad = attr_int("axis", 5);
    REQUIRE(!op("softmax", 1, &a, 1, &bad) && fern_last_status() != FERN_OK,
            "softmax with axis 5 of a 2-d tensor did not fail");
    fern_clear_error();
    REQUIRE(!op1("no_such_op", a) && *fern_last_error(), "an unknown op name did not fail");
    fern_clear_error();
    return 0;
}

static unsigned char pf_hits[100000];
static void pf_mark(void *ctx, int64_t begin, int64_t end)
{
    (void)ctx;
    for (int64_t i = begin; i < end; i++)
        pf_hits[i]++;
}

static int ck_threads(void)
{
    memset(pf_hits, 0, sizeof pf_hits);
    fern_parallel_for((int64_t)sizeof pf_hits, 1000, pf_mark, NULL);
    for (size_t i = 0; i < sizeof pf_hits; i++)
        REQUIRE(pf_hits[i] == 1, "parallel_for visited index %zu %d times", i, pf_hits[i]);
    if (ck_verbose)
        printf("        %d threads\n", fern_num_threads());
    return 0;
}

static int ck_rng(void)
{
    nattr u[3] = {attr_ints("shape", 1, (int64_t[]){10000}), attr_float("low", 2),
                  attr_float("high", 3)};
    fern_seed(7);
    fern_tensor *x = op("rand_uniform", 0, NULL, 3, u);
    fern_seed(7);
    fern_tensor *y = op("rand_uniform", 0, NULL, 3, u);
    fern_tensor *z = op("rand_uniform", 0, NULL, 3, u);
    REQUIRE(x && y && z, "rand_uniform failed");
    double mean = 0;
    int differs = 0;
    for (int64_t i = 0; i < 10000; i++) {
        double v = fern_tensor_get_flat(x, i);
        REQUIRE(v >= 2 && v < 3, "uniform(2,3) drew %g", v);
        REQUIRE(v == fern_tensor_get_flat(y, i), "same seed gave different values at %lld",
                (long long)i);
        differs |= v != fern_tensor_get_flat(z, i);
        mean += v / 10000;
    }
    REQUIRE(differs, "two successive draws were identical");
    REQUIRE(fabs(mean - 2.5) < 0.02, "mean of 10000 uniform(2,3) draws is %g", mean);
    return 0;
}

static size_t ck_baseline;

/* Runs with no scope open (own_scope), after every other check's scope
 * has ended, so a kept tensor goes to the caller. */
static int ck_memory(void)
{
    size_t before = fern_alloc_get_stats(FERN_CPU).current_bytes;
    fern_tensor *kept = NULL;
    static const int64_t shape[2] = {256, 256};
    fern_scope_begin();
    fern_tensor *a = fern_empty(FERN_F32, 2, shape);
    fern_tensor *b = fern_empty(FERN_F32, 2, shape);
    if (a && b) {
        memset(fern_tensor_data(a), 0, fern_tensor_nbytes(a));
        memset(fern_tensor_data(b), 0, fern_tensor_nbytes(b));
        kept = fern_keep(op2("add", op2("mul", a, b), a));
    }
    fern_scope_end();
    REQUIRE(kept, "ops in the scope failed");
    size_t mid = fern_alloc_get_stats(FERN_CPU).current_bytes;
    REQUIRE(mid == before + fern_tensor_nbytes(kept),
            "after scope_end %zu bytes are live, expected %zu (only the kept tensor)", mid,
            before + fern_tensor_nbytes(kept));
    fern_release(kept);
    size_t now = fern_alloc_get_stats(FERN_CPU).current_bytes;
    REQUIRE(now == ck_baseline,
            "%zu bytes still live after all checks and scopes ended (baseline %zu)", now,
            ck_baseline);
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(void);
    const char *what;
    int own_scope; /* runs outside the per-check scope */
} checks[] = {
    {"tensors", ck_tensors, "from_data, element access, transpose/reshape/slice views, casts", 0},
    {"broadcast", ck_broadcast, "add/mul/sub/div with NumPy broadcasting and type promotion", 0},
    {"reductions", ck_reduce, "sum, mean, max over all and chosen axes", 0},
    {"matmul", ck_matmul, "[2,3]@[3,2] against a hand-computed result, strided operands", 0},
    {"mlp", ck_mlp, "2-layer MLP forward on random input; softmax rows sum to 1", 0},
    {"errors", ck_errors, "bad shapes, axes and names give messages, not crashes", 0},
    {"threads", ck_threads, "parallel_for visits every index exactly once", 0},
    {"rng", ck_rng, "seeded uniform draws: range, mean, reproducibility", 0},
    {"memory", ck_memory, "scopes release everything: allocator back to baseline", 1},
};

static int cmd_selfcheck(const command *c, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (is_help_flag(argv[i])) {
            print_command_help(c);
            return 0;
        }
        if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
            ck_verbose = 1;
        else if (argv[i][0] == '-')
            return usage_error(c, "unknown option '%s'", argv[i]);
        else
            return usage_error(c, "unexpected argument '%s'", argv[i]);
    }
    printf("fern %s selfcheck, %d threads, %d ops\n", fern_version(), fern_num_threads(),
           fern_op_count());
    static const char *needed[] = {"add", "sub",  "mul",     "div",          "sum", "mean",
                                   "max", "relu", "softmax", "rand_uniform", "matmul"};
    int missing = 0;
    for (size_t i = 0; i < sizeof needed / sizeof *needed; i++)
        if (!fern_op_find(needed[i])) {
            printf("%s'%s'", missing++ ? ", " : "missing ops: ", needed[i]);
        }
    if (missing)
        printf(" (the checks that use them fail)\n");

    fern_clear_error();
    ck_baseline = fern_alloc_get_stats(FERN_CPU).current_bytes;
    int n = (int)(sizeof checks / sizeof *checks), failed = 0;
    for (int i = 0; i < n; i++) {
        ck_msg[0] = '\0';
        if (!checks[i].own_scope)
            fern_scope_begin();
        int bad = checks[i].fn();
        if (!checks[i].own_scope)
            fern_scope_end();
        if (!bad && fern_last_status() != FERN_OK) {
            snprintf(ck_msg, sizeof ck_msg, "unexpected error: %s", fern_last_error());
            bad = 1;
        }
        fern_clear_error();
        printf("%s  %-11s %s\n", bad ? "FAIL" : "PASS", checks[i].name, checks[i].what);
        if (bad)
            printf("      -> %s\n", ck_msg);
        failed += bad;
    }
    if (failed)
        printf("selfcheck: %d of %d checks FAILED\n", failed, n);
    else
        printf("selfcheck: all %d checks passed\n", n);
    return failed ? 1 : 0;
}

/* ---- help, version, dispatch --------------------------------------------- */

static int cmd_help(const command *c, int argc, char **argv)
{
    if (argc < 2)
        return print_main_help(stdout);
    if (argc > 2)
        return usage_error(c, "expected one command name");
    if (is_help_flag(argv[1])) {
        print_command_help(c);
        return 0;
    }
    const command *t = find_command(argv[1]);
    if (!t) {
        fprintf(stderr, "fern help: no command '%s'. Run 'fern --help' for the list.\n",
                argv[1]);
        return 2;
    }
    return print_command_help(t);
}

static int cmd_version(const command *c, int argc, char **argv)
{
    int rc = no_options(c, argc, argv);
    if (rc >= 0)
        return rc;
    printf("fern %s\n", fern_version());
    return 0;
}

static const command commands[] = {
    {"train", NULL, fern_cmd_train, "train a zoo model on an image dataset", NULL},
    {"eval", NULL, fern_cmd_eval, "evaluate a checkpoint on a test set", NULL},
    {"predict", NULL, fern_cmd_predict, "classify one example with a checkpoint", NULL},
    {"record", NULL, fern_cmd_record, "inspect, dump and create record files", NULL},
    {"ops", cmd_ops, NULL, "list the ops of the registry",
     "usage: fern ops [--grep WORD]...\n"
     "\n"
     "Lists every op of the registry, one line each: name, number of inputs\n"
     "(and optional ones) and outputs, accepted dtypes, backends with a kernel,\n"
     "gradient status (yes, pending, or none for non-differentiable ops) and\n"
     "attributes with their kinds; then a count.\n"
     "\n"
     "options:\n"
     "  -g, --grep WORD   only lines containing WORD (case-insensitive);\n"
     "                    repeat to require several words\n"
     "  -h, --help        this help\n"
     "\n"
     "examples:\n"
     "  fern ops\n"
     "  fern ops --grep conv\n"
     "  fern ops --grep grad=pending --grep f16\n"},
    {"info", cmd_info, NULL, "show version, threads, BLAS, CPU features, allocator",
     "usage: fern info\n"
     "\n"
     "Prints the version, the number of kernel threads (FERN_NUM_THREADS), the\n"
     "BLAS library in use (OpenBLAS configuration, core and thread count), the\n"
     "CPU features the library was compiled for (and whether this CPU has\n"
     "them), the compiler, the devices and the allocator statistics.\n"
     "\n"
     "examples:\n"
     "  fern info\n"
     "  FERN_NUM_THREADS=1 fern info\n"},
    {"selfcheck", cmd_selfcheck, NULL, "run a fast end-to-end check of this build",
     "usage: fern selfcheck [-v]\n"
     "\n"
     "Runs a few quick checks of a fresh build: tensor creation and views,\n"
     "broadcasting arithmetic, reductions, matmul against a hand-computed\n"
     "result, a 2-layer MLP forward pass with softmax, error reporting, the\n"
     "thread pool, the random generator and scope cleanup. Prints PASS or FAIL\n"
     "per check (with the reason) and exits with status 1 if any check failed.\n"
     "Ops are called by registry name, so a missing op fails its check\n"
     "instead of breaking the build.\n"
     "\n"
     "options:\n"
     "  -v, --verbose   also print the expected error messages and details\n"
     "  -h, --help      this help\n"
     "\n"
     "examples:\n"
     "  fern selfcheck\n"
     "  FERN_NUM_THREADS=1 fern selfcheck -v\n"},
    {"version", cmd_version, NULL, "print the version", "usage: fern version\n\nPrints the version.\n"},
    {"help", cmd_help, NULL, "show help for a command",
     "usage: fern help [COMMAND]\n"
     "\n"
     "Without COMMAND lists the commands; with one prints its help (the same\n"
     "as 'fern COMMAND --help').\n"
     "\n"
     "examples:\n"
     "  fern help\n"
     "  fern help ops\n"},
};

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static int print_main_help(FILE *f)
{
    fprintf(f, "fern %s — a deep-learning framework in C\n\n"
               "usage: fern [--help] [--version] COMMAND [ARGS]\n\ncommands:\n",
            fern_version());
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'fern help COMMAND' or 'fern COMMAND --help' for a command's options.\n"
               "environment: FERN_NUM_THREADS sets the number of kernel threads.\n\n"
               "examples:\n  fern selfcheck\n  fern train --model lenet --epochs 1\n"
               "  fern ops --grep norm\n  fern info\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_main_help(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (is_help_flag(name))
        return print_main_help(stdout);
    if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
        printf("fern %s\n", fern_version());
        return 0;
    }
    if (name[0] == '-') {
        fprintf(stderr, "fern: unknown option '%s'. Run 'fern --help' for usage.\n", name);
        return 2;
    }
    const command *c = find_command(name);
    if (!c) {
        fprintf(stderr, "fern: '%s' is not a fern command. Run 'fern --help' for the list.\n",
                name);
        return 2;
    }
    return c->run ? c->run(c, argc - 1, argv + 1) : c->ext(argc - 1, argv + 1);
}
