/* Fuzz target: CSV parsing with each header mode and two delimiters. The
 * first byte picks the options, the rest is the file. */
#include "data/data_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int header = (data[0] % 3) - 1;
    char delim = (data[0] & 4) ? ';' : ',';
    fern__csv_table t;
    fern_clear_error();
    if (fern__csv_parse((const char *)data + 1, size - 1, "fuzz.csv", delim, header, &t) == FERN_OK) {
        /* the table is consistent */
        volatile double s = 0;
        (void)s;
        for (int64_t i = 0; i < t.nrows * t.ncols; i++)
            s += t.values[i];
        for (int c = 0; c < t.ncols; c++)
            s += (double)t.names[c][0];
        fern__csv_table_free(&t);
    }
    return 0;
}
