/* Per-thread error state: the first error since the last clear wins, so a
 * chain of calls can be checked once at its end. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local char err_msg[1024];
static _Thread_local fern_status err_status = FERN_OK;

const char *fern_last_error(void) { return err_status == FERN_OK ? "" : err_msg; }

fern_status fern_last_status(void) { return err_status; }

void fern_clear_error(void)
{
    err_status = FERN_OK;
    err_msg[0] = '\0';
}

void fern_set_error(fern_status st, const char *fmt, ...)
{
    if (err_status != FERN_OK)
        return;
    err_status = st == FERN_OK ? FERN_ERR_INTERNAL : st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
}
