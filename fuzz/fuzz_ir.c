/* libFuzzer target: the IR text parser (and the verifier and printer on
 * whatever it accepts) must never crash, for any text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fern/fern.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    fern_module *m = fern_module_parse(text);
    if (m) {
        fern_module_verify(m);
        free(fern_module_print(m));
        fern_module_free(m);
    }
    fern_clear_error();
    free(text);
    return 0;
}
