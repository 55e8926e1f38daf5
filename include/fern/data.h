/*
 * fern/data.h — the data engine: dataset sources, a pipeline of dataset
 * operations run by worker threads, and vision transforms.
 *
 * A DATASET is an immutable description of a stream of ROWS; a row is a
 * small set of named columns, each a tensor (e.g. "image" u8[28,28,1] and
 * "label" i64[]). Sources (IDX, CIFAR, image folder, CSV, tensors, a user
 * generator) are combined by pipeline operations (map, batch, shuffle,
 * repeat, take, skip, zip, concat, project, rename, shard, split, subset).
 * Nothing is read or computed until an ITERATOR runs the pipeline:
 *
 *     fern_dataset *ds = fern_dataset_mnist("/usr/share/datasets/fashion-mnist", "train");
 *     fern_transform *tf[] = {fern_tf_random_crop(28, 28, 2, 0), fern_tf_random_hflip(0.5),
 *                             fern_tf_to_tensor(), fern_tf_normalize(1, mean, std)};
 *     ds = fern_dataset_shuffle(ds, 60000);
 *     ds = fern_dataset_map(ds, "image", NULL, tf, 4, 2);     // 2 worker threads
 *     ds = fern_dataset_batch(ds, 64, 0);
 *     if (!ds) puts(fern_last_error());
 *     fern_data_iter *it = fern_data_iter_new(ds, NULL);
 *     fern_row *b = fern_row_new();
 *     for (int ep = 0; ep < 10; ep++, fern_data_iter_reset(it)) {
 *         int st;
 *         while ((st = fern_data_iter_next(it, b)) == FERN_OK) {
 *             fern_tensor *x = fern_row_get(b, "image");   // f32[64,1,28,28], borrowed
 *             ...
 *         }
 *         if (st != FERN_DATA_END) puts(fern_last_error());
 *     }
 *     fern_row_free(b); fern_data_iter_free(it); fern_dataset_release(ds);
 *
 * OWNERSHIP
 *   - A function that builds a dataset from other datasets or transforms
 *     CONSUMES those handles: the references move into the result, also
 *     when it fails (then they are released). So `ds = fern_dataset_xxx(ds,
 *     ...)` chains never leak; call fern_dataset_retain / fern_transform_retain
 *     first to keep using a handle. A NULL dataset/transform argument makes
 *     the call return NULL, keeping the first recorded error, so a chain is
 *     checked once at its end.
 *   - Tensor arguments are BORROWED (retained internally when kept).
 *   - Tensors in a row belong to the row: fern_row_get returns a borrowed
 *     pointer valid until the row is cleared, refilled or freed; fern_retain
 *     it to keep it. Tensors made by the pipeline are never registered in
 *     the caller's scope (fern_scope_begin). fern_transform_apply and the
 *     codec/IDX helpers return new references like ops do (scope rules of
 *     core.h apply).
 *   - Iterators borrow their dataset (they retain it).
 *
 * ERRORS
 *   Nothing aborts on bad input. Constructors return NULL and record an
 *   error (fern_last_error) naming the function; file parsers name the file
 *   and the byte offset (and the line for CSV). A failure while iterating
 *   (a corrupt JPEG, a transform rejecting a shape) is reported by
 *   fern_data_iter_next on the caller's thread, whatever thread hit it.
 *
 * DETERMINISM
 *   The output order and values of a pipeline depend only on the dataset,
 *   the iterator's seed and the epoch, never on the number of worker
 *   threads. Random stages (shuffle, random transforms, map functions) draw
 *   from Philox streams keyed by (iterator seed, the stage's position in
 *   the pipeline, the pass, the sample's index in the stage's output).
 *   Each epoch (fern_data_iter_reset) reshuffles; each repetition made by
 *   fern_dataset_repeat counts as a pass of its input.
 *
 * PERFORMANCE
 *   A map over a random-access input reads its rows by index in its worker
 *   threads (so decoding an image folder is parallel too); over a
 *   sequential input (generator, repeat) the workers pull rows one at a
 *   time. Shuffling before the map (source -> shuffle -> map -> batch)
 *   permutes indices only; shuffling after it buffers transformed rows.
 *
 * IMAGES
 *   u8 images are HWC ([H,W,C]; a 2-D [H,W] tensor is one channel and keeps
 *   its rank), float images are CHW ([C,H,W], or [H,W]). Transforms pick
 *   the layout from the dtype: u8 -> HWC, f32/f64 -> CHW. fern_tf_to_tensor
 *   converts u8 HWC into f32 CHW in [0,1] (torchvision's ToTensor).
 */
#ifndef FERN_DATA_H
#define FERN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "fern/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* fern_data_iter_next and generator callbacks return FERN_OK (0), this
 * end marker, or a positive fern_status on error. */
#define FERN_DATA_END (-1)

#define FERN_ROW_MAX_COLS 16 /* columns per row                          */
#define FERN_COL_NAME_MAX 48 /* bytes of a column name, with the NUL     */

/* ---- rows ------------------------------------------------------------- */

typedef struct fern_row fern_row;

fern_row *fern_row_new(void);                 /* empty row; NULL on OOM  */
void fern_row_free(fern_row *row);            /* releases its tensors    */
void fern_row_clear(fern_row *row);           /* releases, keeps the row */
int fern_row_ncols(const fern_row *row);
const char *fern_row_name(const fern_row *row, int i);   /* NULL if out of range */
fern_tensor *fern_row_at(const fern_row *row, int i);    /* borrowed             */
/* Borrowed tensor of column `name`; NULL (error recorded) if absent. */
fern_tensor *fern_row_get(const fern_row *row, const char *name);
/* Index of column `name`, or -1 (no error recorded). */
int fern_row_find(const fern_row *row, const char *name);
/* Set column `name` to t (retained); replaces an existing column of that
 * name (releasing its tensor) or appends one. */
fern_status fern_row_set(fern_row *row, const char *name, fern_tensor *t);

/* ---- datasets ----------------------------------------------------------- */

typedef struct fern_dataset fern_dataset;

fern_dataset *fern_dataset_retain(fern_dataset *ds);   /* returns ds       */
void fern_dataset_release(fern_dataset *ds);           /* NULL is ok       */
/* Rows per pass, or -1 if unknown until iterated (generator, repeat(-1),
 * shuffle/shard/... of an unknown size). */
int64_t fern_dataset_size(const fern_dataset *ds);
int fern_dataset_ncols(const fern_dataset *ds);
const char *fern_dataset_col_name(const fern_dataset *ds, int i);
/* 1 if rows can be read by index in parallel (sources, and map, batch,
 * shuffle, take, skip, shard, subset, zip, concat, project, rename of
 * such; not generators without a size, nor repeat). */
int fern_dataset_is_random_access(const fern_dataset *ds);
/* Human-readable pipeline, e.g. "batch(map(shuffle(mnist)))". */
const char *fern_dataset_name(const fern_dataset *ds);

/* ---- sources -------------------------------------------------------------- */

/* MNIST-style IDX pair (images ubyte [N,H,W] or [N,H,W,C], labels [N]); plain
 * or gzip (detected by content). Columns "image" u8[H,W,1] (or [H,W,C]) and
 * "label" i64[]. The files are read and checked when the dataset is made. */
fern_dataset *fern_dataset_idx(const char *images_path, const char *labels_path);
/* MNIST / Fashion-MNIST in `dir`: split "train" (train-images-idx3-ubyte[.gz])
 * or "test" (t10k-...). */
fern_dataset *fern_dataset_mnist(const char *dir, const char *split);

/* CIFAR binary batches. CIFAR-10 records are 1 label byte + 3072 bytes (R,G,B
 * planes of 32x32); CIFAR-100 records are coarse, fine label bytes + 3072.
 * Columns "image" u8[32,32,3] (HWC) and "label" i64[] (CIFAR-100: the fine
 * label, plus "coarse_label" i64[]). */
fern_dataset *fern_dataset_cifar_files(const char *const *paths, int n, int cifar100);
/* CIFAR-10 in dir: split "train" (data_batch_1..5.bin) or "test"
 * (test_batch.bin). CIFAR-100: "train" (train.bin) or "test" (test.bin). */
fern_dataset *fern_dataset_cifar10(const char *dir, const char *split);
fern_dataset *fern_dataset_cifar100(const char *dir, const char *split);

/* One sub-folder of `root` per class (sorted by name: class i is the i-th);
 * files with extension .jpg .jpeg .png (any case) sorted by name. Columns
 * "image" and "label" i64[]. Images are decoded when read (in map workers
 * when a map follows), or left as encoded bytes u8[n] with decode = 0 (then
 * use fern_tf_decode). */
typedef struct {
    int decode;   /* 1 (default when opts is NULL): decode to u8 HWC      */
    int channels; /* 0: as stored, 1: gray, 3: RGB, 4: RGBA               */
} fern_image_folder_opts;
fern_dataset *fern_dataset_image_folder(const char *root, const fern_image_folder_opts *opts);
/* Number of classes of an image-folder dataset (0 for other datasets);
 * *names (may be NULL) receives the class names, borrowed from ds. */
int fern_dataset_image_folder_classes(const fern_dataset *ds, const char *const **names);

/* CSV of numbers. Fields may be quoted; empty lines are skipped; "\r\n" ok. */
typedef struct {
    char delimiter;          /* 0 -> ','                                      */
    int header;              /* 1: first line names the columns; 0: no header
                                (columns "c0", "c1", ...); -1: auto (a header
                                if any field of line 1 is not a number)        */
    fern_dtype dtype;        /* of value columns: f32 (default) or f64        */
    const char *label_column;/* NULL, or a column name (or "#k" for column k)
                                yielded as i64 "label" (must be integral)     */
    int pack;                /* 0: one 0-d column per field; 1: the value
                                columns packed as "features" dtype[k]          */
} fern_csv_opts;
fern_dataset *fern_dataset_csv(const char *path, const fern_csv_opts *opts);

/* Rows are slices along dim 0 of the given tensors (views, no copy); all
 * tensors need the same dim 0. Tensors are borrowed (retained). */
fern_dataset *fern_dataset_from_tensors(int n, const char *const *names, fern_tensor *const *tensors);

/* A user generator. fn(ctx, pass, index, out) fills `out` (an empty row)
 * with the row's columns and returns FERN_OK, FERN_DATA_END, or an error
 * status (after fern_set_error). With size < 0 it is called for index
 * 0, 1, 2, ... of each pass until it returns FERN_DATA_END, from one thread
 * at a time. With size >= 0 the dataset has `size` rows and fn may be called
 * for any index from several threads at once (it must be thread-safe).
 * `names` (n columns) declare the columns fn sets. ctx_free(ctx) (may be
 * NULL) runs when the dataset is freed. */
typedef int (*fern_generator_fn)(void *ctx, uint64_t pass, int64_t index, fern_row *out);
fern_dataset *fern_dataset_generator(fern_generator_fn fn, void *ctx, void (*ctx_free)(void *),
                                     int64_t size, int n, const char *const *names);

/* ---- pipeline operations (all consume their dataset arguments) ------------ */

typedef struct fern_transform fern_transform;

/* Apply the chain tfs[0], tfs[1], ... to column `in_col`, storing the result
 * as `out_col` (NULL: replace in_col), with num_workers threads (0: run
 * in the thread that pulls rows). Consumes the transforms. */
fern_dataset *fern_dataset_map(fern_dataset *ds, const char *in_col, const char *out_col,
                               fern_transform *const *tfs, int n, int num_workers);
/* A user row function: fn(ctx, row, seed) edits the row in place (set,
 * replace columns; fern_row_set) and returns FERN_OK or an error status.
 * seed is the row's own random seed (see DETERMINISM). Runs on
 * num_workers threads: fn must be thread-safe. `names`/n declare the output
 * columns (NULL: unchanged from the input). ctx_free may be NULL. */
typedef int (*fern_map_fn)(void *ctx, fern_row *row, uint64_t seed);
fern_dataset *fern_dataset_map_fn(fern_dataset *ds, fern_map_fn fn, void *ctx,
                                  void (*ctx_free)(void *), int num_workers, int n,
                                  const char *const *names);
/* Stack batch_size consecutive rows per column into [batch_size, ...]
 * tensors (all rows of a column need one dtype and shape). The last
 * partial batch is dropped if drop_remainder, else yielded smaller. */
fern_dataset *fern_dataset_batch(fern_dataset *ds, int64_t batch_size, int drop_remainder);
/* Buffered shuffle: keep buffer_size rows, emit a random one and replace it
 * with the next input. buffer_size >= size gives a uniform permutation.
 * Seeded by the iterator's seed; reshuffles every epoch. */
fern_dataset *fern_dataset_shuffle(fern_dataset *ds, int64_t buffer_size);
/* count passes over ds per epoch; count < 0 repeats forever. */
fern_dataset *fern_dataset_repeat(fern_dataset *ds, int64_t count);
fern_dataset *fern_dataset_take(fern_dataset *ds, int64_t n);
fern_dataset *fern_dataset_skip(fern_dataset *ds, int64_t n);
/* Rows side by side (column names must differ); stops at the shortest. */
fern_dataset *fern_dataset_zip(fern_dataset *const *dss, int n);
/* Rows of dss[0], then of dss[1], ...; all need the same column names. */
fern_dataset *fern_dataset_concat(fern_dataset *const *dss, int n);
/* Keep the given columns, in this order. */
fern_dataset *fern_dataset_project(fern_dataset *ds, int n, const char *const *names);
fern_dataset *fern_dataset_rename(fern_dataset *ds, int n, const char *const *old_names,
                                  const char *const *new_names);
/* Rows i with i % num_shards == shard_id: the shards partition ds. */
fern_dataset *fern_dataset_shard(fern_dataset *ds, int64_t num_shards, int64_t shard_id);
/* Rows indices[0], indices[1], ... of a random-access dataset (copied). */
fern_dataset *fern_dataset_subset(fern_dataset *ds, int64_t n, const int64_t *indices);
/* Deterministic split of a random-access dataset: the first
 * round(fraction * size) rows of an order (the identity if seed == 0, else
 * a permutation drawn from seed) go to *first, the rest to *second. Both
 * outputs are subsets; ds is consumed. Returns FERN_OK or an error (then
 * both are NULL). */
fern_status fern_dataset_split(fern_dataset *ds, double fraction, uint64_t seed,
                               fern_dataset **first, fern_dataset **second);

/* ---- iterators ------------------------------------------------------------ */

typedef struct fern_data_iter fern_data_iter;

typedef struct {
    uint64_t seed;  /* pipeline seed (default 0)                                 */
    uint64_t epoch; /* first epoch (to resume), default 0                       */
    int prefetch;   /* rows/batches computed ahead by a driver thread (default
                       4); -1: no driver thread, next() runs the pipeline      */
} fern_data_iter_opts;

/* Starts the pipeline (threads, prefetch). opts may be NULL. An iterator
 * is driven by one thread at a time; datasets are immutable and may feed
 * any number of iterators at once. */
fern_data_iter *fern_data_iter_new(fern_dataset *ds, const fern_data_iter_opts *opts);
/* Fill `out` (cleared first) with the next row or batch. Returns FERN_OK,
 * FERN_DATA_END at the end of the epoch, or an error status (message in
 * fern_last_error(); the iterator keeps returning it until reset). */
int fern_data_iter_next(fern_data_iter *it, fern_row *out);
/* Start the next epoch (reshuffled). Also recovers from an error. */
fern_status fern_data_iter_reset(fern_data_iter *it);
/* Start epoch `epoch` (to resume a run). */
fern_status fern_data_iter_set_epoch(fern_data_iter *it, uint64_t epoch);
uint64_t fern_data_iter_epoch(const fern_data_iter *it);
void fern_data_iter_free(fern_data_iter *it);

/* ---- transforms --------------------------------------------------------------
 * A transform maps one tensor to a new one; random transforms draw from the
 * sample's generator. Constructors return NULL on bad parameters. */

/* Resampling of resize / random_resized_crop (rotate and affine take
 * NEAREST or BILINEAR, the latter meaning 4-neighbour bilinear there).
 * Tested against Pillow 9.4 and PyTorch 1.13 (tests/data/make_refs.py):
 * u8 BILINEAR and NEAREST equal Pillow exactly, f32 BILINEAR is within 1e-5
 * of Pillow's mode F, BILINEAR_NOAA within 2e-6 of torch (f32) and within 1
 * of torch rounded (u8, rounding ties). */
typedef enum {
    /* Pillow's NEAREST: source = floor((x + 0.5) * in / out), which is also
     * torch's "nearest-exact" */
    FERN_RESAMPLE_NEAREST = 0,
    /* Pillow's BILINEAR: half-pixel centers, a triangle filter widened by
     * the scale when shrinking (antialiased), Pillow's 8-bit fixed-point
     * arithmetic for u8 (= torchvision Resize on PIL images, or on tensors
     * with antialias=True). When upscaling the filter is the plain bilinear
     * below (u8 rounding aside). */
    FERN_RESAMPLE_BILINEAR = 1,
    /* plain half-pixel bilinear of 4 neighbours (OpenCV INTER_LINEAR, torch
     * interpolate(mode="bilinear", align_corners=False)), also when
     * shrinking; u8 computed in double and rounded */
    FERN_RESAMPLE_BILINEAR_NOAA = 2
} fern_resample;

fern_transform *fern_transform_retain(fern_transform *tf);
void fern_transform_release(fern_transform *tf);
const char *fern_transform_name(const fern_transform *tf);
/* Apply to `img` with the random stream of `seed` (ignored by deterministic
 * transforms). Returns a new tensor (scope rules of core.h) or NULL. */
fern_tensor *fern_transform_apply(const fern_transform *tf, const fern_tensor *img, uint64_t seed);
/* Chain of transforms as one (consumes them). */
fern_transform *fern_tf_compose(fern_transform *const *tfs, int n);

/* Encoded image bytes u8[n] (PNG or JPEG) -> u8 HWC; channels 0 (as stored),
 * 1, 3 or 4. */
fern_transform *fern_tf_decode(int channels);
/* Resize to h x w. With w <= 0, the shorter side becomes h keeping the
 * aspect ratio (torchvision Resize(int)). */
fern_transform *fern_tf_resize(int64_t h, int64_t w, fern_resample interp);
/* Center crop (torchvision CenterCrop): the offset is round((H-h)/2), half
 * to even; where the crop is larger than the image it is padded with
 * zeros, (h-H)/2 rows on top (floor) and the rest below (same for W). */
fern_transform *fern_tf_center_crop(int64_t h, int64_t w);
/* Explicit crop of the region at (top, left) of size h x w (must fit). */
fern_transform *fern_tf_crop(int64_t top, int64_t left, int64_t h, int64_t w);
/* Pad every side by `padding` pixels of value fill, then crop h x w at a
 * uniformly random position (torchvision RandomCrop(size, padding, fill)). */
fern_transform *fern_tf_random_crop(int64_t h, int64_t w, int64_t padding, double fill);
/* Pad (left, top, right, bottom) with constant fill. */
fern_transform *fern_tf_pad(int64_t left, int64_t top, int64_t right, int64_t bottom, double fill);
/* torchvision RandomResizedCrop: area fraction in [scale_min, scale_max],
 * aspect ratio log-uniform in [ratio_min, ratio_max], 10 tries then a
 * center crop; result resized to h x w. */
fern_transform *fern_tf_random_resized_crop(int64_t h, int64_t w, double scale_min, double scale_max,
                                            double ratio_min, double ratio_max, fern_resample interp);
fern_transform *fern_tf_hflip(void);
fern_transform *fern_tf_vflip(void);
fern_transform *fern_tf_random_hflip(double p);
fern_transform *fern_tf_random_vflip(double p);
/* Rotate counter-clockwise by `degrees` about the image center (pixel
 * centers at +0.5, center (W/2, H/2), as Pillow/torchvision), same output
 * size, uncovered pixels = fill. interp: NEAREST or BILINEAR (4-neighbour). */
fern_transform *fern_tf_rotate(double degrees, fern_resample interp, double fill);
/* Rotation by a uniform angle in [-max_degrees, max_degrees]. */
fern_transform *fern_tf_random_rotate(double max_degrees, fern_resample interp, double fill);
/* Affine warp with the inverse map: source (x,y) = m * (x_out, y_out, 1),
 * in pixel-center coordinates (x+0.5). */
fern_transform *fern_tf_affine(const double m[6], fern_resample interp, double fill);
/* (x - mean[c]) / std[c] on float CHW (n = 1 broadcasts to every channel). */
fern_transform *fern_tf_normalize(int n, const double *mean, const double *std);
/* x * scale + shift as f32 (any layout; u8 input becomes f32). */
fern_transform *fern_tf_rescale(double scale, double shift);
/* HWC -> CHW, same dtype (any rank-3 tensor). */
fern_transform *fern_tf_hwc_to_chw(void);
/* u8 HWC -> f32 CHW in [0,1] (x / 255); f32 CHW passes through. */
fern_transform *fern_tf_to_tensor(void);
/* Convert the dtype (values cast as by fern_tensor_assign). */
fern_transform *fern_tf_cast(fern_dtype dt);
/* Color adjustments (torchvision formulas; u8 results rounded and clamped
 * to [0,255], float to [0,1]); gray = 0.299 R + 0.587 G + 0.114 B.
 *   brightness: x * f
 *   contrast:   f * x + (1 - f) * mean(gray(x))
 *   saturation: f * x + (1 - f) * gray(x)     (3-channel images)          */
fern_transform *fern_tf_adjust_brightness(double f);
fern_transform *fern_tf_adjust_contrast(double f);
fern_transform *fern_tf_adjust_saturation(double f);
/* Random factor uniform in [max(0, 1 - delta), 1 + delta]. */
fern_transform *fern_tf_random_brightness(double delta);
fern_transform *fern_tf_random_contrast(double delta);
fern_transform *fern_tf_random_saturation(double delta);
/* brightness, then contrast, then saturation (each skipped when 0). */
fern_transform *fern_tf_color_jitter(double brightness, double contrast, double saturation);
/* Apply tf with probability p. Consumes tf. */
fern_transform *fern_tf_random_apply(fern_transform *tf, double p);

/* AutoAugment-style policies (u8 HWC images). A policy is a list of
 * sub-policies of up to 4 (op, probability, magnitude); per sample one
 * sub-policy is picked uniformly and each of its ops runs with its
 * probability. Magnitudes are in the op's own units: */
typedef enum {
    FERN_AA_IDENTITY = 0,
    FERN_AA_SHEAR_X,      /* shear factor m: x_src = x + m*(y - H/2)       */
    FERN_AA_SHEAR_Y,      /* y_src = y + m*(x - W/2)                        */
    FERN_AA_TRANSLATE_X,  /* pixels: x_src = x - m                          */
    FERN_AA_TRANSLATE_Y,  /* pixels                                         */
    FERN_AA_ROTATE,       /* degrees counter-clockwise                      */
    FERN_AA_BRIGHTNESS,   /* factor 1 + m                                   */
    FERN_AA_COLOR,        /* saturation factor 1 + m                        */
    FERN_AA_CONTRAST,     /* factor 1 + m                                   */
    FERN_AA_SHARPNESS,    /* factor 1 + m (blend with 3x3 smoothed image)   */
    FERN_AA_POSTERIZE,    /* keep m high bits (m in 1..8)                   */
    FERN_AA_SOLARIZE,     /* invert pixels >= m (m in 0..256)               */
    FERN_AA_AUTOCONTRAST, /* stretch each channel to [0,255]                */
    FERN_AA_EQUALIZE,     /* histogram equalization per channel (Pillow)    */
    FERN_AA_INVERT,       /* 255 - x                                        */
    FERN_AA_OP_COUNT
} fern_aa_op;

typedef struct {
    fern_aa_op op;
    double prob;      /* probability of applying                         */
    double magnitude; /* in the op's units (see above)                   */
    int signed_mag;   /* 1: the sign of magnitude is flipped with p=1/2  */
} fern_aa_step;

typedef struct {
    int n;                 /* 1..4 steps */
    fern_aa_step steps[4];
} fern_aa_subpolicy;

/* Geometric ops fill uncovered pixels with `fill` and use nearest
 * interpolation, as torchvision's AutoAugment does. */
fern_transform *fern_tf_autoaugment(const fern_aa_subpolicy *policy, int n, double fill);
/* torchvision's AutoAugmentPolicy.IMAGENET (25 sub-policies) with its
 * magnitude bins (10 bins), for images of any size. */
fern_transform *fern_tf_autoaugment_imagenet(double fill);
/* One AutoAugment op deterministically (magnitude in its units). */
fern_transform *fern_tf_aa_op(fern_aa_op op, double magnitude, double fill);

/* ---- image codecs and IDX files (standalone helpers) ------------------------- */

typedef struct {
    int channels;       /* 0: as stored, 1, 3 or 4                         */
    int64_t max_pixels; /* refuse larger images; 0 -> 1 << 28              */
} fern_decode_opts;

/* PNG or JPEG bytes (format from the signature) -> new u8 HWC tensor.
 * `name` (may be NULL) labels error messages. opts may be NULL. */
fern_tensor *fern_image_decode(const void *bytes, size_t n, const char *name,
                               const fern_decode_opts *opts);
fern_tensor *fern_image_read(const char *path, const fern_decode_opts *opts);
/* Encode a u8 HWC (C = 1, 3, 4 for PNG; 1 or 3 for JPEG) or HW image.
 * *out is malloc'd (caller frees) and *n its size. */
fern_status fern_image_encode_png(const fern_tensor *img, void **out, size_t *n);
fern_status fern_image_encode_jpeg(const fern_tensor *img, int quality, void **out, size_t *n);
fern_status fern_image_write(const char *path, const fern_tensor *img); /* .png/.jpg by name */

/* Read an IDX file (plain or gzip): a new tensor of the file's dtype
 * (u8, i8, i16->i32, i32, f32, f64) and shape. */
fern_tensor *fern_idx_read(const char *path);
/* The same from bytes in memory (`name` labels errors). */
fern_tensor *fern_idx_parse(const void *bytes, size_t n, const char *name);
/* Write t (u8, i8, i32, f32 or f64) as an uncompressed IDX file. */
fern_status fern_idx_write(const char *path, const fern_tensor *t);

#ifdef __cplusplus
}
#endif
#endif /* FERN_DATA_H */
