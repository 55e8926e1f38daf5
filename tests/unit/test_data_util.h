/* Shared helpers of the data-layer tests (test_data_*.c): locating the
 * reference files written by tests/data/make_refs.py, reading its
 * manifest, comparing tensors. Header-only; each test includes it once. */
#ifndef FERN_TEST_DATA_UTIL_H
#define FERN_TEST_DATA_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fern/data.h"

static char g_refs[4096];
static int g_refs_tmp;

/* The reference directory: $FERN_DATA_REFS, else generate one with
 * tests/data/make_refs.py (found next to this file) into a temp dir. */
__attribute__((unused)) static const char *refs_dir(void)
{
    if (g_refs[0])
        return g_refs;
    const char *e = getenv("FERN_DATA_REFS");
    char probe[4200];
    if (e && e[0]) {
        snprintf(probe, sizeof probe, "%s/manifest.txt", e);
        if (access(probe, R_OK) == 0) {
            snprintf(g_refs, sizeof g_refs, "%s", e);
            return g_refs;
        }
    }
    char src[4096];
    snprintf(src, sizeof src, "%s", __FILE__);
    char *slash = strrchr(src, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(src, sizeof src, ".");
    snprintf(g_refs, sizeof g_refs, "/tmp/fern-data-refs-%d", (int)getpid());
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 '%s/../data/make_refs.py' '%s' >/dev/null",
             src, g_refs);
    if (system(cmd) != 0) {
        g_refs[0] = 0;
        return NULL;
    }
    g_refs_tmp = 1;
    return g_refs;
}

__attribute__((unused)) static void refs_cleanup(void)
{
    if (g_refs_tmp) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_refs);
        if (system(cmd) != 0)
            fprintf(stderr, "warning: could not remove %s\n", g_refs);
        g_refs_tmp = 0;
    }
}

__attribute__((unused)) static const char *ref_path(const char *rel)
{
    static _Thread_local char buf[8][4400];
    static _Thread_local int k;
    char *b = buf[k++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", refs_dir(), rel);
    return b;
}

/* Manifest lines as token arrays. */
#define MAX_TOK 64
typedef struct {
    int n;
    char *tok[MAX_TOK];
} mline;

static mline *g_lines;
static int g_nlines;

__attribute__((unused)) static int manifest_load(void)
{
    if (g_lines)
        return 0;
    const char *d = refs_dir();
    if (!d)
        return -1;
    FILE *f = fopen(ref_path("manifest.txt"), "r");
    if (!f)
        return -1;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        mline m = {0};
        for (char *t = strtok(line, " \t\r\n"); t && m.n < MAX_TOK; t = strtok(NULL, " \t\r\n"))
            m.tok[m.n++] = strdup(t);
        if (!m.n)
            continue;
        g_lines = realloc(g_lines, (size_t)(g_nlines + 1) * sizeof *g_lines);
        g_lines[g_nlines++] = m;
    }
    fclose(f);
    return 0;
}

__attribute__((unused)) static void manifest_free(void)
{
    for (int i = 0; i < g_nlines; i++)
        for (int k = 0; k < g_lines[i].n; k++)
            free(g_lines[i].tok[k]);
    free(g_lines);
    g_lines = NULL;
    g_nlines = 0;
}

/* "a_b_c" -> "a b c" (manifest substrings use '_' for spaces). */
__attribute__((unused)) static const char *unscore(const char *s)
{
    static char b[512];
    snprintf(b, sizeof b, "%s", s);
    for (char *p = b; *p; p++)
        if (*p == '_')
            *p = ' ';
    return b;
}

/* Count elements whose |a - e| > tol; fail with details if more than
 * frac * n of them. */
__attribute__((unused)) static void expect_close(const char *what, const fern_tensor *got, const fern_tensor *exp, double tol, double frac)
{
    char a[64], b[64];
    if (!got) {
        fail_msg("%s: no result: %s", what, fern_last_error());
        return;
    }
    int same_shape = fern_tensor_ndim(got) == fern_tensor_ndim(exp);
    for (int i = 0; same_shape && i < fern_tensor_ndim(exp); i++)
        same_shape = fern_tensor_shape(got)[i] == fern_tensor_shape(exp)[i];
    if (!same_shape || fern_tensor_dtype(got) != fern_tensor_dtype(exp))
        fail_msg("%s: got %s, expected %s", what, fern_tensor_desc(got, a, sizeof a), fern_tensor_desc(exp, b, sizeof b));
    int64_t n = fern_tensor_numel(exp), bad = 0, first = -1;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fern_tensor_get_flat(got, i) - fern_tensor_get_flat(exp, i);
        if (d < 0)
            d = -d;
        if (!(d <= tol)) {
            if (first < 0)
                first = i;
            bad++;
        }
        if (d > worst)
            worst = d;
    }
    if ((double)bad > frac * (double)n)
        fail_msg("%s: %lld of %lld elements differ by more than %g (worst %g; first at %lld: got %g, expected %g)", what,
                 (long long)bad, (long long)n, tol, worst, (long long)first, fern_tensor_get_flat(got, first),
                 fern_tensor_get_flat(exp, first));
}

#define EXPECT_ERR_CONTAINS(substr)                                                                      \
    do {                                                                                                 \
        const char *msg_ = fern_last_error();                                                            \
        if (!strstr(msg_, (substr)))                                                                     \
            fail_msg("error message \"%s\" does not contain \"%s\"", msg_, (substr));                    \
    } while (0)

#endif
