/* err.c - the error table's lookups and struct sp_err helpers. */
#include "sp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    int status;
    const char *wire;
} table[] = {
#define SP_X_ROW(name, status, wire) {status, wire},
    SP_ERR_TABLE(SP_X_ROW)
#undef SP_X_ROW
};

int sp_err_set(struct sp_err *err, enum sp_err_code code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return -1;
}

void sp_err_clear(struct sp_err *err)
{
    if (err) {
        err->code = SP_E_OK;
        err->msg[0] = '\0';
    }
}

int sp_err_http_status(enum sp_err_code code)
{
    if ((unsigned)code >= SP_E__COUNT)
        return 500;
    return table[code].status;
}

const char *sp_err_wire(enum sp_err_code code)
{
    if ((unsigned)code >= SP_E__COUNT)
        return "internal_error";
    return table[code].wire;
}

int sp_err_from_wire(const char *s, size_t len)
{
    for (size_t i = 0; i < SP_ARRAY_LEN(table); i++)
        if (strlen(table[i].wire) == len && memcmp(table[i].wire, s, len) == 0)
            return (int)i;
    return -1;
}

void sp_assert_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "secretproxy: internal invariant failed: %s (%s:%d)\n", what, file, line);
    abort();
}
