/*
 * fern/io.h — checkpoints and tensor file interop.
 *
 * A checkpoint is a set of named tensors plus metadata (integers and
 * strings: epoch, step, optimizer name...). fern's own format is versioned,
 * little-endian, checksummed (CRC-32 of the header and of every tensor), with
 * tensor data 64-byte aligned for mmap, and is written atomically: a
 * temporary file in the same directory, fsync, rename, fsync of the
 * directory — a crash never leaves a half-written file under the final name.
 * Corrupt or truncated files are reported with the file name and offset.
 *
 * Interop: safetensors (Hugging Face), .npy and .npz (NumPy).
 */
#ifndef FERN_IO_H
#define FERN_IO_H

#include "fern/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fern_checkpoint fern_checkpoint;

fern_checkpoint *fern_checkpoint_new(void);
void fern_checkpoint_free(fern_checkpoint *ck);
/* Adds (or replaces) a named tensor; the checkpoint keeps a reference. */
fern_status fern_checkpoint_add(fern_checkpoint *ck, const char *name, fern_tensor *t);
/* Borrowed tensor by name, or NULL. */
fern_tensor *fern_checkpoint_get(const fern_checkpoint *ck, const char *name);
int fern_checkpoint_count(const fern_checkpoint *ck);
const char *fern_checkpoint_name_at(const fern_checkpoint *ck, int i);
fern_tensor *fern_checkpoint_tensor_at(const fern_checkpoint *ck, int i);
fern_status fern_checkpoint_set_int(fern_checkpoint *ck, const char *key, int64_t v);
fern_status fern_checkpoint_set_str(fern_checkpoint *ck, const char *key, const char *v);
/* 0 if found. */
int fern_checkpoint_get_int(const fern_checkpoint *ck, const char *key, int64_t *v);
const char *fern_checkpoint_get_str(const fern_checkpoint *ck, const char *key);

/* fern's format (".fckpt" by convention). */
fern_status fern_checkpoint_save(const fern_checkpoint *ck, const char *path);
fern_checkpoint *fern_checkpoint_load(const char *path);

/* Interop formats. safetensors keeps string metadata ("__metadata__");
 * npz stores each tensor as NAME.npy (metadata is not kept). */
fern_status fern_safetensors_save(const fern_checkpoint *ck, const char *path);
fern_checkpoint *fern_safetensors_load(const char *path);
fern_status fern_npy_save(const fern_tensor *t, const char *path);
fern_tensor *fern_npy_load(const char *path);
fern_status fern_npz_save(const fern_checkpoint *ck, const char *path);
fern_checkpoint *fern_npz_load(const char *path);

/* ---- cells ---------------------------------------------------------------- */
/* Every parameter and buffer under its hierarchical name (references). */
fern_checkpoint *fern_cell_state_dict(const fern_cell *c);

typedef struct {
    int n_loaded;
    int n_missing;    /* in the cell, not in the checkpoint   */
    int n_unexpected; /* in the checkpoint, not in the cell   */
    int n_mismatched; /* same name, different shape or dtype  */
    char message[2048]; /* the names involved, human readable */
} fern_load_report;

/* Copy tensors from ck into the cell's parameters and buffers by name.
 * strict: missing, unexpected or mismatched entries are an error (nothing
 * is modified); otherwise the matching ones load and report says the rest.
 * report may be NULL. */
fern_status fern_cell_load_state_dict(fern_cell *c, const fern_checkpoint *ck, int strict,
                                      fern_load_report *report);

#ifdef __cplusplus
}
#endif
#endif /* FERN_IO_H */
