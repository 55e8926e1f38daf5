/* `fern train`, `fern eval`, `fern predict`: the main job. Trains a zoo
 * model on an image dataset with the Model API, in graph or pynative mode,
 * checkpoints every epoch, and ends with one JSON line. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fern/fern.h"
#include "fern/data.h"
#include "fern/layers.h"
#include "fern/models.h"
#include "fern/record.h"

#define DEFAULT_FASHION_DIR "/usr/share/datasets/fashion-mnist"

typedef struct {
    const char *model, *dataset, *data, *optimizer, *mode, *checkpoint_dir, *checkpoint, *input;
    int64_t epochs, batch, seed, index;
    double lr, momentum, weight_decay, clip;
    int resume, threads, workers, augment, quiet;
} options;

static void defaults(options *o)
{
    memset(o, 0, sizeof *o);
    o->model = "lenet";
    o->dataset = "fashion-mnist";
    o->optimizer = "adam";
    o->mode = "graph";
    o->checkpoint_dir = "checkpoints";
    o->epochs = 5;
    o->batch = 64;
    o->seed = 1;
    o->lr = 0.001;
    o->momentum = 0.9;
    o->workers = 2;
    o->index = 0;
}

static const char *train_help =
    "usage: fern train [options]\n"
    "\n"
    "Train a model from the zoo on an image dataset; prints a progress bar, test\n"
    "accuracy and time per epoch, saves checkpoints, and ends with one JSON line.\n"
    "\n"
    "  --model NAME         lenet (28x28 inputs), mlp, resnet18       [lenet]\n"
    "  --dataset NAME       fashion-mnist, mnist, cifar10, image-folder, record\n"
    "                                                                 [fashion-mnist]\n"
    "  --data PATH          dataset location (fashion-mnist default: " DEFAULT_FASHION_DIR ";\n"
    "                       image-folder: a folder with train/ and test/; record:\n"
    "                       a record file made by `fern record convert`, whose\n"
    "                       last 10000 rows serve as the test set)\n"
    "  --epochs N           [5]          --batch-size B     [64]\n"
    "  --optimizer NAME     sgd, momentum, nesterov, adam, adamw, rmsprop, adagrad, lamb [adam]\n"
    "  --lr LR              learning rate [0.001]; --momentum M [0.9]; --weight-decay W [0]\n"
    "  --clip NORM          clip gradients by global norm (0: off)\n"
    "  --mode MODE          graph (compiled training step) or pynative [graph]\n"
    "  --seed S             seed of weights, shuffling and dropout [1]\n"
    "  --augment            random crops and flips on the training set\n"
    "  --checkpoint-dir D   where checkpoints go [checkpoints]\n"
    "  --resume             continue from the newest checkpoint in D\n"
    "  --threads N          kernel threads (default: all CPUs)\n"
    "  --workers N          data pipeline worker threads [2]\n"
    "  --quiet              no progress bar\n"
    "\n"
    "example:\n"
    "  fern train --model lenet --epochs 5 --mode graph\n";

static const char *eval_help =
    "usage: fern eval --checkpoint FILE [--model NAME] [--dataset NAME] [--data PATH]\n"
    "\n"
    "Evaluate a checkpoint written by `fern train` on the dataset's test split;\n"
    "prints the test accuracy and mean loss, then one JSON line.\n";

static const char *predict_help =
    "usage: fern predict --checkpoint FILE [--model NAME] (--input IMAGE | --index N)\n"
    "                    [--dataset NAME] [--data PATH]\n"
    "\n"
    "Classify one image: a PNG/JPEG file (--input) or sample N of the dataset's test\n"
    "split (--index). Prints the predicted class and the class probabilities.\n";

enum { O_MODEL = 256, O_DATASET, O_DATA, O_EPOCHS, O_BATCH, O_OPT, O_LR, O_MOM, O_WD, O_CLIP, O_MODE,
       O_SEED, O_AUG, O_CKDIR, O_RESUME, O_THREADS, O_WORKERS, O_QUIET, O_CKPT, O_INPUT, O_INDEX, O_HELP };

static const struct option long_opts[] = {
    {"model", required_argument, 0, O_MODEL},       {"dataset", required_argument, 0, O_DATASET},
    {"data", required_argument, 0, O_DATA},         {"epochs", required_argument, 0, O_EPOCHS},
    {"batch-size", required_argument, 0, O_BATCH},  {"optimizer", required_argument, 0, O_OPT},
    {"lr", required_argument, 0, O_LR},             {"momentum", required_argument, 0, O_MOM},
    {"weight-decay", required_argument, 0, O_WD},   {"clip", required_argument, 0, O_CLIP},
    {"mode", required_argument, 0, O_MODE},         {"seed", required_argument, 0, O_SEED},
    {"augment", no_argument, 0, O_AUG},             {"checkpoint-dir", required_argument, 0, O_CKDIR},
    {"resume", no_argument, 0, O_RESUME},           {"threads", required_argument, 0, O_THREADS},
    {"workers", required_argument, 0, O_WORKERS},   {"quiet", no_argument, 0, O_QUIET},
    {"checkpoint", required_argument, 0, O_CKPT},   {"input", required_argument, 0, O_INPUT},
    {"index", required_argument, 0, O_INDEX},       {"help", no_argument, 0, O_HELP},
    {0, 0, 0, 0}};

static int number(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end) {
        fprintf(stderr, "fern: '%s' is not a number\n", s);
        return -1;
    }
    *out = v;
    return 0;
}

/* 0: ok, 1: help printed, 2: bad usage */
static int parse(int argc, char **argv, options *o, const char *help)
{
    optind = 1;
    opterr = 0;
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o->model = optarg; break;
        case O_DATASET: o->dataset = optarg; break;
        case O_DATA: o->data = optarg; break;
        case O_OPT: o->optimizer = optarg; break;
        case O_MODE: o->mode = optarg; break;
        case O_CKDIR: o->checkpoint_dir = optarg; break;
        case O_CKPT: o->checkpoint = optarg; break;
        case O_INPUT: o->input = optarg; break;
        case O_AUG: o->augment = 1; break;
        case O_RESUME: o->resume = 1; break;
        case O_QUIET: o->quiet = 1; break;
        case 'h':
        case O_HELP: fputs(help, stdout); return 1;
        case '?':
            fprintf(stderr, "fern: unknown or incomplete option '%s'\n%s", argv[optind - 1], help);
            return 2;
        default:
            if (number(optarg, &v))
                return 2;
            switch (c) {
            case O_EPOCHS: o->epochs = (int64_t)v; break;
            case O_BATCH: o->batch = (int64_t)v; break;
            case O_LR: o->lr = v; break;
            case O_MOM: o->momentum = v; break;
            case O_WD: o->weight_decay = v; break;
            case O_CLIP: o->clip = v; break;
            case O_SEED: o->seed = (int64_t)v; break;
            case O_THREADS: o->threads = (int)v; break;
            case O_WORKERS: o->workers = (int)v; break;
            case O_INDEX: o->index = (int64_t)v; break;
            }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fern: unexpected argument '%s'\n%s", argv[optind], help);
        return 2;
    }
    if (o->epochs < 1 || o->batch < 1 || !(o->lr > 0) || o->workers < 0) {
        fprintf(stderr, "fern: --epochs and --batch-size must be >= 1, --lr > 0, --workers >= 0\n");
        return 2;
    }
    if (strcmp(o->mode, "graph") && strcmp(o->mode, "pynative")) {
        fprintf(stderr, "fern: --mode must be graph or pynative, not '%s'\n", o->mode);
        return 2;
    }
    if (o->threads > 0)
        fern_set_num_threads(o->threads);
    return 0;
}

/* ---- data ------------------------------------------------------------------- */

typedef struct {
    int64_t channels, height, width, classes;
    double mean[3], std[3];
} data_info;

static int is_mnist(const char *d) { return !strcmp(d, "fashion-mnist") || !strcmp(d, "mnist"); }

static fern_dataset *open_split(const options *o, const char *split, data_info *info)
{
    const char *path = o->data;
    fern_dataset *ds = NULL;
    if (is_mnist(o->dataset)) {
        if (!path) {
            if (!strcmp(o->dataset, "mnist")) {
                fprintf(stderr, "fern: --dataset mnist needs --data DIR (the MNIST IDX files)\n");
                return NULL;
            }
            path = DEFAULT_FASHION_DIR;
        }
        ds = fern_dataset_mnist(path, split);
        *info = (data_info){1, 28, 28, 10, {0.2860, 0, 0}, {0.3530, 1, 1}};
        if (!strcmp(o->dataset, "mnist"))
            *info = (data_info){1, 28, 28, 10, {0.1307, 0, 0}, {0.3081, 1, 1}};
    } else if (!strcmp(o->dataset, "cifar10")) {
        if (!path) {
            fprintf(stderr, "fern: --dataset cifar10 needs --data DIR (the CIFAR-10 binary batches)\n");
            return NULL;
        }
        ds = fern_dataset_cifar10(path, split);
        *info = (data_info){3, 32, 32, 10, {0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}};
    } else if (!strcmp(o->dataset, "image-folder")) {
        if (!path) {
            fprintf(stderr, "fern: --dataset image-folder needs --data DIR with train/ and test/\n");
            return NULL;
        }
        char root[1024];
        snprintf(root, sizeof root, "%s/%s", path, split);
        fern_image_folder_opts fo = {1, 3};
        ds = fern_dataset_image_folder(root, &fo);
        *info = (data_info){3, 32, 32, fern_dataset_image_folder_classes(ds, NULL), {0.5, 0.5, 0.5},
                            {0.5, 0.5, 0.5}};
        if (ds) { /* image folders hold any size: bring them to 32x32 */
            fern_transform *rs = fern_tf_resize(32, 32, FERN_RESAMPLE_BILINEAR);
            ds = fern_dataset_map(ds, "image", NULL, &rs, 1, o->workers);
        }
    } else if (!strcmp(o->dataset, "record")) {
        if (!path) {
            fprintf(stderr, "fern: --dataset record needs --data FILE (from `fern record convert`)\n");
            return NULL;
        }
        ds = fern_dataset_record(path, NULL);
        int64_t n = ds ? fern_dataset_size(ds) : 0;
        if (ds && n > 10000) {
            fern_dataset *tr = NULL, *te = NULL;
            fern_dataset_retain(ds);
            tr = fern_dataset_take(ds, n - 10000);
            te = fern_dataset_skip(fern_dataset_retain(ds), n - 10000);
            fern_dataset_release(ds);
            if (!strcmp(split, "train")) {
                fern_dataset_release(te);
                ds = tr;
            } else {
                fern_dataset_release(tr);
                ds = te;
            }
        }
        *info = (data_info){1, 28, 28, 10, {0.2860, 0, 0}, {0.3530, 1, 1}};
    } else {
        fprintf(stderr, "fern: unknown dataset '%s' (fashion-mnist, mnist, cifar10, image-folder, record)\n",
                o->dataset);
        return NULL;
    }
    if (!ds)
        fprintf(stderr, "fern: cannot read the %s data: %s\n", o->dataset, fern_last_error());
    return ds;
}

static fern_batch_source make_batches(const options *o, fern_dataset *ds, const data_info *info, int train)
{
    fern_transform *tf[4];
    int n = 0;
    if (train && o->augment) {
        tf[n++] = fern_tf_random_crop(info->height, info->width, info->height >= 32 ? 4 : 2, 0);
        if (!is_mnist(o->dataset) || !strcmp(o->dataset, "fashion-mnist"))
            tf[n++] = fern_tf_random_hflip(0.5);
    }
    tf[n++] = fern_tf_to_tensor();
    tf[n++] = fern_tf_normalize((int)info->channels, info->mean, info->std);
    if (train)
        ds = fern_dataset_shuffle(ds, fern_dataset_size(ds) > 0 ? fern_dataset_size(ds) : 10000);
    ds = fern_dataset_map(ds, "image", NULL, tf, n, o->workers);
    ds = fern_dataset_batch(ds, o->batch, 0);
    return fern_data_batches(ds, "image", "label", (uint64_t)o->seed);
}

/* ---- models -------------------------------------------------------------------- */

static fern_cell *make_net(const options *o, const data_info *info)
{
    if (!strcmp(o->model, "lenet")) {
        if (info->height != 28 || info->width != 28) {
            fprintf(stderr, "fern: lenet expects 28x28 images; %s has %lldx%lld (try --model mlp or resnet18)\n",
                    o->dataset, (long long)info->height, (long long)info->width);
            return NULL;
        }
        return fern_model_lenet5(info->channels, info->classes);
    }
    if (!strcmp(o->model, "mlp")) {
        int64_t hidden[2] = {512, 512};
        return fern_model_mlp(info->channels * info->height * info->width, hidden, 2, info->classes);
    }
    if (!strcmp(o->model, "resnet18"))
        return fern_model_resnet18(info->classes, info->channels);
    fprintf(stderr, "fern: unknown or unsuitable model '%s' for image data (lenet, mlp, resnet18)\n", o->model);
    return NULL;
}

static fern_optimizer *make_opt(const options *o, fern_cell *net)
{
    int n = fern_cell_parameters(net, NULL, NULL, 0);
    fern_tensor **p = calloc((size_t)n, sizeof *p);
    if (!p)
        return NULL;
    fern_cell_parameters(net, p, NULL, n);
    fern_optimizer *opt = NULL;
    const char *k = o->optimizer;
    if (!strcmp(k, "sgd"))
        opt = fern_sgd(p, n, o->lr, 0, 0, o->weight_decay, 0);
    else if (!strcmp(k, "momentum"))
        opt = fern_momentum(p, n, o->lr, o->momentum, o->weight_decay, 0);
    else if (!strcmp(k, "nesterov"))
        opt = fern_momentum(p, n, o->lr, o->momentum, o->weight_decay, 1);
    else if (!strcmp(k, "adam"))
        opt = fern_adam(p, n, o->lr, 0.9, 0.999, 1e-8, o->weight_decay);
    else if (!strcmp(k, "adamw"))
        opt = fern_adamw(p, n, o->lr, 0.9, 0.999, 1e-8, o->weight_decay ? o->weight_decay : 0.01);
    else if (!strcmp(k, "rmsprop"))
        opt = fern_rmsprop(p, n, o->lr, 0.99, 1e-8, o->weight_decay, 0, 0);
    else if (!strcmp(k, "adagrad"))
        opt = fern_adagrad(p, n, o->lr, 0, o->weight_decay, 0, 1e-10);
    else if (!strcmp(k, "lamb"))
        opt = fern_lamb(p, n, o->lr, 0.9, 0.999, 1e-6, o->weight_decay);
    else
        fprintf(stderr, "fern: unknown optimizer '%s' (sgd, momentum, nesterov, adam, adamw, rmsprop, adagrad, lamb)\n", k);
    free(p);
    if (!opt && fern_last_status())
        fprintf(stderr, "fern: %s\n", fern_last_error());
    return opt;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    double last_acc, samples_per_second;
    int64_t samples;
} run_stats;

static void record_epoch(void *ud, fern_train_state *s)
{
    run_stats *r = ud;
    for (int i = 0; i < s->n_metrics; i++)
        if (!strcmp(s->metric_names[i], "eval_accuracy"))
            r->last_acc = s->metric_values[i];
    r->samples_per_second = s->samples_per_second;
}

int fern_cmd_train(int argc, char **argv)
{
    options o;
    defaults(&o);
    int pr = parse(argc, argv, &o, train_help);
    if (pr)
        return pr == 1 ? 0 : 2;
    fern_seed((uint64_t)o.seed);
    fern_set_mode(!strcmp(o.mode, "graph") ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
    data_info info;
    fern_dataset *train_ds = open_split(&o, "train", &info);
    fern_dataset *test_ds = train_ds ? open_split(&o, "test", &info) : NULL;
    if (!train_ds || !test_ds) {
        fern_dataset_release(train_ds);
        return 1;
    }
    int64_t n_train = fern_dataset_size(train_ds), n_test = fern_dataset_size(test_ds);
    fern_batch_source train = make_batches(&o, train_ds, &info, 1);
    fern_batch_source test = make_batches(&o, test_ds, &info, 0);
    fern_cell *net = train.ud && test.ud ? make_net(&o, &info) : NULL;
    fern_optimizer *opt = net ? make_opt(&o, net) : NULL;
    if (!train.ud || !test.ud || !net || !opt) {
        if ((!train.ud || !test.ud) && fern_last_status())
            fprintf(stderr, "fern: data pipeline: %s\n", fern_last_error());
        fern_batch_source_free(&train);
        fern_batch_source_free(&test);
        fern_cell_release(net);
        return 1;
    }
    fern_cell *loss = fern_loss_cross_entropy(NULL, FERN_REDUCTION_MEAN, 0.0, -100);
    fern_model *m = fern_model_new(net, loss, opt, NULL, 0);
    fern_model_set_eval_source(m, &test);
    if (o.clip > 0)
        fern_model_set_grad_clip(m, o.clip);
    mkdir(o.checkpoint_dir, 0755);
    int rc = 0;
    if (o.resume) {
        char *latest = fern_latest_checkpoint(o.checkpoint_dir, o.model);
        if (!latest) {
            fprintf(stderr, "fern: --resume: no checkpoint named %s-s*.fckpt in %s\n", o.model, o.checkpoint_dir);
            rc = 1;
        } else if (fern_model_load(m, latest) != FERN_OK) {
            fprintf(stderr, "fern: cannot resume from %s: %s\n", latest, fern_last_error());
            rc = 1;
        } else {
            printf("resuming from %s (epoch %lld)\n", latest, (long long)fern_model_epoch(m));
        }
        free(latest);
    }
    if (rc == 0) {
        printf("fern train: %s on %s (%lld train / %lld test images), %s mode, %s lr %g, batch %lld, %lld epochs, %d threads\n",
               o.model, o.dataset, (long long)n_train, (long long)n_test, o.mode, o.optimizer, o.lr,
               (long long)o.batch, (long long)o.epochs, fern_num_threads());
        printf("%lld parameters\n", (long long)fern_cell_param_count(net));
        run_stats rs = {0, 0, 0};
        fern_callback cbs[4];
        int nc = 0;
        if (!o.quiet)
            cbs[nc++] = fern_cb_loss_monitor(100);
        cbs[nc++] = fern_cb_time_monitor();
        cbs[nc++] = fern_cb_checkpoint(m, o.checkpoint_dir, o.model, 0, 1, 3);
        fern_callback rec = {&rs, NULL, NULL, NULL, record_epoch, NULL, NULL};
        cbs[nc++] = rec;
        int64_t start_epoch = fern_model_epoch(m);
        double t0 = now();
        fern_status st = fern_model_train(m, o.epochs, &train, cbs, nc);
        double secs = now() - t0;
        for (int i = 0; i < nc; i++)
            if (cbs[i].free)
                cbs[i].free(cbs[i].ud);
        if (st != FERN_OK) {
            fprintf(stderr, "fern: training failed: %s\n", fern_last_error());
            rc = 1;
        } else {
            char *latest = fern_latest_checkpoint(o.checkpoint_dir, o.model);
            int64_t epochs_run = o.epochs - start_epoch;
            double sps = secs > 0 ? (double)(n_train * epochs_run) / secs : 0;
            printf("done: test accuracy %.4f after %lld epochs in %.1f s; checkpoint %s\n", rs.last_acc,
                   (long long)o.epochs, secs, latest ? latest : "(none)");
            printf("{\"model\": \"%s\", \"dataset\": \"%s\", \"mode\": \"%s\", \"epochs\": %lld, "
                   "\"test_accuracy\": %.4f, \"train_seconds\": %.2f, \"samples_per_second\": %.0f, "
                   "\"threads\": %d, \"checkpoint\": \"%s\"}\n",
                   o.model, o.dataset, o.mode, (long long)o.epochs, rs.last_acc, secs, sps, fern_num_threads(),
                   latest ? latest : "");
            free(latest);
        }
    }
    fern_model_free(m);
    fern_cell_release(net);
    fern_cell_release(loss);
    fern_batch_source_free(&train);
    fern_batch_source_free(&test);
    return rc;
}

/* Load the network part of a model checkpoint. */
static fern_cell *load_net(const options *o, data_info *info)
{
    if (!o->checkpoint) {
        fprintf(stderr, "fern: --checkpoint FILE is required\n");
        return NULL;
    }
    fern_checkpoint *ck = fern_checkpoint_load(o->checkpoint);
    if (!ck) {
        fprintf(stderr, "fern: %s\n", fern_last_error());
        return NULL;
    }
    fern_cell *net = make_net(o, info);
    fern_checkpoint *sd = fern_checkpoint_new();
    for (int i = 0; i < fern_checkpoint_count(ck); i++) {
        const char *n = fern_checkpoint_name_at(ck, i);
        if (!strncmp(n, "net.", 4))
            fern_checkpoint_add(sd, n + 4, fern_checkpoint_tensor_at(ck, i));
    }
    fern_load_report r;
    if (net && fern_cell_load_state_dict(net, sd, 1, &r) != FERN_OK) {
        fprintf(stderr, "fern: %s does not fit --model %s: %s\n", o->checkpoint, o->model, fern_last_error());
        fern_cell_release(net);
        net = NULL;
    }
    fern_checkpoint_free(sd);
    fern_checkpoint_free(ck);
    if (net)
        fern_cell_set_training(net, 0);
    return net;
}

int fern_cmd_eval(int argc, char **argv)
{
    options o;
    defaults(&o);
    int pr = parse(argc, argv, &o, eval_help);
    if (pr)
        return pr == 1 ? 0 : 2;
    fern_set_mode(!strcmp(o.mode, "graph") ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
    data_info info;
    fern_dataset *test_ds = open_split(&o, "test", &info);
    if (!test_ds)
        return 1;
    fern_batch_source test = make_batches(&o, test_ds, &info, 0);
    fern_cell *net = test.ud ? load_net(&o, &info) : NULL;
    if (!net) {
        fern_batch_source_free(&test);
        return 1;
    }
    fern_cell *loss = fern_loss_cross_entropy(NULL, FERN_REDUCTION_MEAN, 0.0, -100);
    fern_model *m = fern_model_new(net, loss, NULL, NULL, 0);
    double l = 0, acc = 0;
    int rc = 0;
    if (fern_model_eval(m, &test, &l, &acc) != FERN_OK) {
        fprintf(stderr, "fern: evaluation failed: %s\n", fern_last_error());
        rc = 1;
    } else {
        printf("test accuracy %.4f, mean loss %.4f\n", acc, l);
        printf("{\"model\": \"%s\", \"dataset\": \"%s\", \"checkpoint\": \"%s\", \"test_accuracy\": %.4f, "
               "\"test_loss\": %.4f}\n",
               o.model, o.dataset, o.checkpoint, acc, l);
    }
    fern_model_free(m);
    fern_cell_release(loss);
    fern_cell_release(net);
    fern_batch_source_free(&test);
    return rc;
}

int fern_cmd_predict(int argc, char **argv)
{
    options o;
    defaults(&o);
    int pr = parse(argc, argv, &o, predict_help);
    if (pr)
        return pr == 1 ? 0 : 2;
    data_info info;
    fern_dataset *test_ds = open_split(&o, "test", &info);
    if (!test_ds)
        return 1;
    fern_cell *net = load_net(&o, &info);
    int rc = 1;
    fern_scope_begin();
    fern_tensor *img = NULL;
    int64_t label = -1;
    if (net && o.input) {
        fern_decode_opts dop = {(int)info.channels, 0};
        img = fern_image_read(o.input, &dop);
        if (img && (fern_tensor_dim(img, 0) != info.height || fern_tensor_dim(img, 1) != info.width)) {
            fern_transform *rs = fern_tf_resize(info.height, info.width, FERN_RESAMPLE_BILINEAR);
            img = fern_transform_apply(rs, img, 0);
            fern_transform_release(rs);
        }
    } else if (net) {
        fern_data_iter *it = fern_data_iter_new(fern_dataset_retain(test_ds), NULL);
        fern_row *row = fern_row_new();
        for (int64_t i = 0; i <= o.index && it; i++)
            if (fern_data_iter_next(it, row) != FERN_OK)
                break;
        if (fern_row_get(row, "image")) {
            img = fern_retain(fern_row_get(row, "image"));
            label = (int64_t)fern_tensor_get_flat(fern_row_get(row, "label"), 0);
        } else {
            fern_set_error(FERN_ERR_INVALID, "predict: no test sample %lld", (long long)o.index);
        }
        fern_row_free(row);
        fern_data_iter_free(it);
        fern_dataset_release(test_ds);
    }
    if (net && img) {
        fern_transform *tf[2] = {fern_tf_to_tensor(), fern_tf_normalize((int)info.channels, info.mean, info.std)};
        fern_transform *c = fern_tf_compose(tf, 2);
        fern_tensor *x = fern_transform_apply(c, img, 0);
        fern_transform_release(c);
        x = fern_unsqueeze(x, 0);
        fern_tensor *p = fern_softmax(fern_cell_call1(net, x), -1);
        if (p) {
            int64_t best = 0;
            for (int64_t k = 1; k < info.classes; k++)
                if (fern_tensor_get_flat(p, k) > fern_tensor_get_flat(p, best))
                    best = k;
            printf("predicted class %lld (p = %.3f)", (long long)best, fern_tensor_get_flat(p, best));
            if (label >= 0)
                printf(", true class %lld", (long long)label);
            printf("\nprobabilities:");
            for (int64_t k = 0; k < info.classes; k++)
                printf(" %.3f", fern_tensor_get_flat(p, k));
            printf("\n");
            rc = 0;
        }
    }
    if (rc)
        fprintf(stderr, "fern: predict failed: %s\n", fern_last_error());
    fern_scope_end();
    fern_cell_release(net);
    if (o.input)
        fern_dataset_release(test_ds);
    return rc;
}
