/* fern's side of bench/run_data.sh: images per second of a Fashion-MNIST
 * training pipeline over the full 60k training set:
 *
 *   IDX (gzip) -> shuffle(60000) -> map(image: random_crop(28, pad 2),
 *   random_hflip(0.5), to_tensor, normalize(0.2860, 0.3530)) with W worker
 *   threads -> batch(64, last partial batch kept) -> iterator (prefetch 4)
 *
 * The consumer touches every batch (sums one value per image) and does
 * nothing else, so the number is the pipeline's throughput. One warm-up
 * epoch, then `--epochs` timed epochs; the median is reported.
 *
 *   bench_data [--dir DIR] [--workers 0,1,2] [--epochs N] [--quick]
 *
 * Output lines (read by run_data.sh):
 *   meta KEY VALUE
 *   result fern_wW IMAGES_PER_S EPOCH_SECONDS
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fern/data.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    const char *wlist = "0,1,2";
    int epochs = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--workers") && i + 1 < argc)
            wlist = argv[++i];
        else if (!strcmp(argv[i], "--epochs") && i + 1 < argc)
            epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            epochs = 1;
        else {
            fprintf(stderr, "usage: bench_data [--dir DIR] [--workers 0,1,2] [--epochs N] [--quick]\n");
            return 2;
        }
    }
    if (epochs < 1)
        epochs = 1;
    double t0 = now();
    fern_dataset *src = fern_dataset_mnist(dir, "train");
    if (!src) {
        fprintf(stderr, "bench_data: %s\n", fern_last_error());
        return 1;
    }
    printf("meta load_s %.3f\n", now() - t0);
    printf("meta images %lld\n", (long long)fern_dataset_size(src));
    printf("meta epochs %d\n", epochs);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", wlist);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int w = atoi(tok);
        double mean[1] = {0.2860}, sd[1] = {0.3530};
        fern_transform *tfs[] = {fern_tf_random_crop(28, 28, 2, 0), fern_tf_random_hflip(0.5), fern_tf_to_tensor(),
                                 fern_tf_normalize(1, mean, sd)};
        fern_dataset *ds = fern_dataset_shuffle(fern_dataset_retain(src), 60000);
        ds = fern_dataset_map(ds, "image", NULL, tfs, 4, w);
        ds = fern_dataset_batch(ds, 64, 0);
        fern_data_iter_opts o = {1, 0, 4};
        fern_data_iter *it = ds ? fern_data_iter_new(ds, &o) : NULL;
        if (!it) {
            fprintf(stderr, "bench_data: %s\n", fern_last_error());
            return 1;
        }
        fern_row *row = fern_row_new();
        double *times = calloc((size_t)epochs, sizeof *times);
        double checksum = 0;
        for (int e = 0; e <= epochs; e++) {
            if (e > 0 && fern_data_iter_reset(it) != FERN_OK) {
                fprintf(stderr, "bench_data: %s\n", fern_last_error());
                return 1;
            }
            double ts = now();
            int64_t n = 0;
            int st;
            while ((st = fern_data_iter_next(it, row)) == FERN_OK) {
                fern_tensor *x = fern_row_get(row, "image");
                const float *p = fern_tensor_data(x);
                int64_t b = fern_tensor_dim(x, 0);
                for (int64_t i = 0; i < b; i++)
                    checksum += p[i * 784 + 400];
                n += b;
            }
            if (st != FERN_DATA_END || n != fern_dataset_size(src)) {
                fprintf(stderr, "bench_data: epoch ended after %lld images: %s\n", (long long)n, fern_last_error());
                return 1;
            }
            if (e > 0)
                times[e - 1] = now() - ts;
        }
        qsort(times, (size_t)epochs, sizeof *times, cmp_d);
        double med = times[epochs / 2];
        printf("result fern_w%d %.0f %.4f\n", w, (double)fern_dataset_size(src) / med, med);
        fprintf(stderr, "fern workers=%d: %.0f images/s (checksum %.3f)\n", w, (double)fern_dataset_size(src) / med,
                checksum);
        free(times);
        fern_row_free(row);
        fern_data_iter_free(it);
        fern_dataset_release(ds);
    }
    fern_dataset_release(src);
    return 0;
}
