/* libFuzzer target: fern checkpoints, safetensors and .npy files must load
 * or fail with an error, never crash, for any bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fern/fern.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/fern-fuzz-ckpt-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    fern_checkpoint *ck = fern_checkpoint_load(path);
    fern_checkpoint_free(ck);
    ck = fern_safetensors_load(path);
    fern_checkpoint_free(ck);
    fern_tensor *t = fern_npy_load(path);
    fern_release(t);
    fern_clear_error();
    unlink(path);
    return 0;
}
