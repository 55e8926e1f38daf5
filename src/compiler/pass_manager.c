/* The pass manager: runs the pipeline over every graph of a module until
 * nothing changes (bounded), verifying after each pass in debug builds and
 * writing the IR after every pass when FERN_DUMP_IR=dir is set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes.h"
#include "../runtime/runtime_internal.h"

static const fern_pass pipeline[] = {
    {"inline", fern__pass_inline}, {"infer", fern__pass_infer},       {"fold", fern__pass_fold},
    {"simplify", fern__pass_simplify}, {"fuse_grad", fern__pass_fuse_grad},
    {"cse", fern__pass_cse},           {"dce", fern__pass_dce},
};
static const fern_pass late[] = {{"fuse", fern__pass_fuse}, {"dce", fern__pass_dce}};

static void dump(const fern_module *m, const char *dir, const char *name, int step, const char *pass)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.%02d.%s.ir", dir, name, step, pass);
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    char *text = fern_module_print(m);
    if (text)
        fputs(text, f);
    free(text);
    fclose(f);
}

static int run_on_all(fern_module *m, const fern_pass *p)
{
    int changes = 0;
    for (int i = 0; i < m->n_graphs; i++) {
        int c = p->run(m->graphs[i]);
        if (c < 0)
            return -1;
        changes += c;
    }
    return changes;
}

fern_status fern__run_pipeline(fern_module *m, const char *dump_name)
{
    const char *dir = getenv("FERN_DUMP_IR");
    int step = 0;
    if (dir)
        dump(m, dir, dump_name, step++, "traced");
    for (int round = 0; round < 4; round++) {
        int changes = 0;
        for (size_t i = 0; i < sizeof pipeline / sizeof *pipeline; i++) {
            int c = run_on_all(m, &pipeline[i]);
            if (c < 0)
                return fern_last_status() ? fern_last_status() : FERN_ERR_INTERNAL;
            changes += c;
            if (dir)
                dump(m, dir, dump_name, step++, pipeline[i].name);
        }
        if (!changes)
            break;
    }
    for (size_t i = 0; i < sizeof late / sizeof *late; i++) {
        if (run_on_all(m, &late[i]) < 0)
            return fern_last_status() ? fern_last_status() : FERN_ERR_INTERNAL;
        if (dir)
            dump(m, dir, dump_name, step++, late[i].name);
    }
    return fern_module_verify(m);
}

fern_status fern__compile_module(fern_module *m, const char *fn_name)
{
    return fern__run_pipeline(m, fn_name);
}
