/* Reference-case files written by tests/gen/gen_*.py: parsing and input
 * construction, shared by the op and gradient harnesses. */
#ifndef FERN_TEST_CASES_H
#define FERN_TEST_CASES_H

#include "fern/fern.h"

#define MAX_VIEWS 4

typedef struct {
    char kind[16];
    int n;
    int64_t a[FERN_MAX_DIMS];
    int64_t b[4];
} view_spec;

typedef struct {
    int present;
    fern_dtype dtype;
    int ndim;
    int64_t shape[FERN_MAX_DIMS];
    double *data;
    int64_t n;
    view_spec views[MAX_VIEWS];
    int n_views;
} tensor_spec;

typedef struct {
    char name[160];
    char op[64];
    int n_attrs;
    char *attr_names[32];
    fern_attr attrs[32];
    char *attr_strs[32];
    int n_in, n_out;
    tensor_spec in[16], out[8];
    int has_tol;
    double rtol, atol;
    char *error; /* expected substring, or NULL */
} test_case;

/* Load every case of a file; NULL if it cannot be read. */
test_case *load_cases(const char *path, int *count);
void free_cases(test_case *cases, int n);
/* Build input t (with its views); as_dtype >= 0 overrides a float dtype. */
fern_tensor *make_input_as(const tensor_spec *t, int as_dtype);
fern_tensor *make_input(const tensor_spec *t);

#endif
