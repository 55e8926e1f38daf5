/* `fern record`: inspect, dump and create record sets (include/fern/record.h).
 *
 *   fern record info FILE [--verify]
 *   fern record dump FILE [--limit N] [--start N]
 *   fern record convert --from idx|cifar10|cifar100|csv|image-folder --input PATH --output FILE
 *                       [--shards N | --shard-rows N] [--index FIELD,...] [...]
 *
 * Entry point: fern_cmd_record(argc, argv) with argv[0] = "record" (the
 * command name) and argv[1] the subcommand. Returns the exit status: 0 on
 * success, 1 when the work failed (message on stderr), 2 on a usage error. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fern/data.h"
#include "fern/record.h"

int fern_cmd_record(int argc, char **argv);

static const char rec_help_main[] =
    "usage: fern record <info|dump|convert> [options]\n"
    "\n"
    "Work with fern record sets: shard files of rows in checksummed pages plus an\n"
    "SQLite index database (FILE.db), like MindSpore's MindRecord.\n"
    "\n"
    "subcommands:\n"
    "  info FILE       schema, rows, shards, pages, indexed fields, metadata\n"
    "  dump FILE       print rows\n"
    "  convert ...     write a record set from IDX (MNIST), CIFAR, CSV or an image folder\n"
    "\n"
    "FILE is the path the set was written to, its FILE.db, or one of its shard files.\n"
    "Run 'fern record SUBCOMMAND --help' for the options of each.\n";

static const char rec_help_info[] =
    "usage: fern record info FILE [--verify]\n"
    "\n"
    "Print the set's format version, rows, shards (file, rows, pages, bytes), page size,\n"
    "schema, indexed fields and metadata. Opening checks every shard's header and footer.\n"
    "\n"
    "options:\n"
    "  --verify    also read every page and check its CRC-32 and row layout\n"
    "  -h, --help  this help\n";

static const char rec_help_dump[] =
    "usage: fern record dump FILE [--limit N] [--start N]\n"
    "\n"
    "Print rows START, START+1, ... (at most N): scalars and strings in full, arrays as\n"
    "dtype[shape] with their first values, bytes as a length and the first bytes in hex.\n"
    "\n"
    "options:\n"
    "  --limit N   rows to print (default 10; 0 = all)\n"
    "  --start N   first row (default 0)\n"
    "  -h, --help  this help\n";

static const char rec_help_convert[] =
    "usage: fern record convert --from FORMAT --input PATH --output FILE [options]\n"
    "\n"
    "Read a dataset with fern's data engine and write it as a record set: FILE (or\n"
    "FILE.00000, FILE.00001, ... with several shards) and the index database FILE.db.\n"
    "\n"
    "formats (--from):\n"
    "  idx           MNIST / Fashion-MNIST IDX files, plain or .gz: --input DIR holding\n"
    "                {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (see --split), or\n"
    "                --input IMAGES --labels LABELS. Fields image u8[H,W,1], label int64.\n"
    "  cifar10       CIFAR-10 binary batches in --input DIR (--split). Fields image\n"
    "                u8[32,32,3], label int64.\n"
    "  cifar100      CIFAR-100 train.bin / test.bin in --input DIR. Fields image,\n"
    "                label (fine) and coarse_label.\n"
    "  csv           a CSV file of numbers: one float32 field per column (see --dtype,\n"
    "                --pack), the --label-column as int64 \"label\".\n"
    "  image-folder  one sub-folder per class: field image (bytes: the encoded PNG/JPEG\n"
    "                file) and label int64; the class names go to the metadata.\n"
    "\n"
    "options:\n"
    "  --from FORMAT        input format (required)\n"
    "  --input PATH         input directory or file (required)\n"
    "  --output FILE        output set (required); existing files are replaced\n"
    "  --shards N           N shard files, rows dealt round-robin (default 1)\n"
    "  --shard-rows N       instead: N rows per shard file, as many files as needed\n"
    "  --index F1,F2,...    index these fields in FILE.db (e.g. label)\n"
    "  --page-size BYTES    target page size (default 262144)\n"
    "  --split train|test   idx / cifar split (default train)\n"
    "  --labels FILE        idx: the labels file when --input is an images file\n"
    "  --label-column NAME  csv: column holding integer labels (or #K for column K)\n"
    "  --delimiter C        csv: field separator (default ',')\n"
    "  --header, --no-header  csv: the first line names the columns or not (default: auto)\n"
    "  --dtype f32|f64      csv: value type (default f32)\n"
    "  --pack               csv: one array field \"features\" instead of a field per column\n"
    "  --quiet              no progress or summary on stderr\n"
    "  -h, --help           this help\n"
    "\n"
    "examples:\n"
    "  fern record convert --from idx --input /usr/share/datasets/fashion-mnist \\\n"
    "      --output fmnist-train.frec --shards 4 --index label\n"
    "  fern record convert --from csv --input iris.csv --label-column species --output iris.frec\n";

static int rec_is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

static int rec_usage(const char *sub, const char *help, const char *fmt, const char *arg)
{
    fprintf(stderr, "fern record%s%s: ", sub ? " " : "", sub ? sub : "");
    fprintf(stderr, fmt, arg);
    const char *nl = strchr(help, '\n');
    fprintf(stderr, "\n%.*s\nRun 'fern record %s%s--help' for details.\n", nl ? (int)(nl - help) : (int)strlen(help),
            help, sub ? sub : "", sub ? " " : "");
    return 2;
}

static int rec_fail(const char *sub)
{
    const char *m = fern_last_error();
    fprintf(stderr, "fern record %s: %s\n", sub, m[0] ? m : "failed");
    return 1;
}

/* A non-negative integer option value. */
static int rec_parse_count(const char *s, long long *v)
{
    if (!s || !*s)
        return -1;
    char *e;
    long long x = strtoll(s, &e, 10);
    if (*e || x < 0)
        return -1;
    *v = x;
    return 0;
}

static void rec_human(double b, char *buf, size_t n)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4)
        b /= 1024, i++;
    snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

/* ---- info ------------------------------------------------------------------------------- */

static int rec_info(int argc, char **argv)
{
    const char *file = NULL;
    int verify = 0;
    for (int i = 2; i < argc; i++) {
        if (rec_is_help(argv[i])) {
            fputs(rec_help_info, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--verify"))
            verify = 1;
        else if (argv[i][0] == '-' && argv[i][1])
            return rec_usage("info", rec_help_info, "unknown option '%s'", argv[i]);
        else if (file)
            return rec_usage("info", rec_help_info, "unexpected argument '%s'", argv[i]);
        else
            file = argv[i];
    }
    if (!file)
        return rec_usage("info", rec_help_info, "%s", "missing FILE");
    fern_clear_error();
    fern_record_reader *r = fern_record_open(file, NULL);
    if (!r)
        return rec_fail("info");
    fern_record_info in;
    fern_record_get_info(r, &in);
    int64_t total_bytes = 0;
    for (int i = 0; i < in.num_shards; i++) {
        fern_record_shard_info si;
        fern_record_shard(r, i, &si);
        total_bytes += si.bytes;
    }
    char hb[32];
    rec_human((double)total_bytes, hb, sizeof hb);
    printf("index db   %s\n", in.db_path);
    printf("format     fern record version %d, set id %016llx\n", in.version, (unsigned long long)in.set_id);
    printf("rows       %lld\n", (long long)in.rows);
    if (in.by_count)
        printf("shards     %d (%lld rows each)\n", in.num_shards, (long long)in.rows_per_shard);
    else
        printf("shards     %d (round-robin)\n", in.num_shards);
    printf("pages      %lld (target size %lld bytes)\n", (long long)in.pages, (long long)in.page_size);
    printf("data       %s\n", hb);
    const fern_record_schema *s = fern_record_get_schema(r);
    printf("schema     %d field%s\n", fern_record_schema_nfields(s), fern_record_schema_nfields(s) == 1 ? "" : "s");
    for (int i = 0; i < fern_record_schema_nfields(s); i++) {
        const fern_record_field *f = fern_record_schema_field(s, i);
        if (f->type == FERN_REC_ARRAY) {
            printf("  %-24s %s[", f->name, fern_dtype_name(f->dtype));
            for (int d = 0; d < f->ndim; d++)
                printf("%s%lld", d ? "," : "", (long long)f->shape[d]);
            printf("]\n");
        } else {
            printf("  %-24s %s\n", f->name, fern_rec_type_name(f->type));
        }
    }
    printf("index      ");
    for (int i = 0; i < in.n_index; i++)
        printf("%s%s", i ? ", " : "", in.index_fields[i]);
    printf("%s\n", in.n_index ? "" : "(none)");
    for (int i = 0; i < in.num_shards; i++) {
        fern_record_shard_info si;
        fern_record_shard(r, i, &si);
        rec_human((double)si.bytes, hb, sizeof hb);
        printf("shard %-4d %s: %lld rows, %lld pages, %s\n", i, si.file, (long long)si.rows, (long long)si.pages, hb);
    }
    if (fern_record_meta_count(r)) {
        printf("metadata\n");
        for (int i = 0; i < fern_record_meta_count(r); i++) {
            const char *k, *v;
            fern_record_meta_at(r, i, &k, &v);
            printf("  %-24s ", k);
            for (const char *p = v; *p; p++) /* keep one line per key */
                putchar(*p == '\n' ? ' ' : *p);
            putchar('\n');
        }
    }
    int rc = 0;
    if (verify) {
        fflush(stdout);
        if (fern_record_verify(r) != FERN_OK)
            rc = rec_fail("info");
        else
            printf("verify     ok: every page's CRC-32 and rows check out\n");
    }
    fern_record_close(r);
    return rc;
}

/* ---- dump ---------------------------------------------------------------------------------- */

static void rec_print_value(const fern_record_field *f, const fern_tensor *t)
{
    const unsigned char *b = fern_tensor_data(t);
    int64_t n = fern_tensor_numel(t);
    switch (f->type) {
    case FERN_REC_INT32: printf("%d", *(const int32_t *)b); break;
    case FERN_REC_INT64: printf("%lld", (long long)*(const int64_t *)b); break;
    case FERN_REC_FLOAT32: printf("%.9g", (double)*(const float *)b); break;
    case FERN_REC_FLOAT64: printf("%.17g", *(const double *)b); break;
    case FERN_REC_STRING:
        putchar('"');
        for (int64_t i = 0; i < n && i < 200; i++) {
            unsigned char c = b[i];
            if (c == '"' || c == '\\')
                printf("\\%c", c);
            else if (c == '\n')
                printf("\\n");
            else if (c < 32 || c == 127)
                printf("\\x%02x", c);
            else
                putchar(c);
        }
        printf("\"%s", n > 200 ? "..." : "");
        break;
    case FERN_REC_BYTES:
        printf("bytes[%lld]", (long long)n);
        if (n)
            printf(" ");
        for (int64_t i = 0; i < n && i < 16; i++)
            printf("%02x", b[i]);
        if (n > 16)
            printf("...");
        break;
    default: {
        char d[128];
        printf("%s {", fern_tensor_desc(t, d, sizeof d));
        for (int64_t i = 0; i < n && i < 8; i++) {
            double v = fern_tensor_get_flat(t, i);
            printf(fern_dtype_is_float(f->dtype) ? "%s%.6g" : "%s%.0f", i ? ", " : "", v);
        }
        printf("%s}", n > 8 ? ", ..." : "");
        break;
    }
    }
}

static int rec_dump(int argc, char **argv)
{
    const char *file = NULL;
    long long limit = 10, start = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (rec_is_help(a)) {
            fputs(rec_help_dump, stdout);
            return 0;
        }
        if (!strcmp(a, "--limit") || !strcmp(a, "--start")) {
            long long *dst = !strcmp(a, "--limit") ? &limit : &start;
            if (i + 1 >= argc)
                return rec_usage("dump", rec_help_dump, "option '%s' needs a number", a);
            if (rec_parse_count(argv[++i], dst))
                return rec_usage("dump", rec_help_dump, "bad number '%s'", argv[i]);
        } else if (a[0] == '-' && a[1]) {
            return rec_usage("dump", rec_help_dump, "unknown option '%s'", a);
        } else if (file) {
            return rec_usage("dump", rec_help_dump, "unexpected argument '%s'", a);
        } else {
            file = a;
        }
    }
    if (!file)
        return rec_usage("dump", rec_help_dump, "%s", "missing FILE");
    fern_clear_error();
    fern_record_reader *r = fern_record_open(file, NULL);
    if (!r)
        return rec_fail("dump");
    const fern_record_schema *s = fern_record_get_schema(r);
    int64_t rows = fern_record_rows(r);
    int64_t end = limit == 0 || start + limit > rows ? rows : start + limit;
    fern_row *row = fern_row_new();
    int rc = row ? 0 : rec_fail("dump");
    for (int64_t g = start; g < end && rc == 0; g++) {
        if (fern_record_read(r, g, row) != FERN_OK) {
            fflush(stdout);
            rc = rec_fail("dump");
            break;
        }
        printf("row %lld:", (long long)g);
        for (int i = 0; i < fern_record_schema_nfields(s); i++) {
            const fern_record_field *f = fern_record_schema_field(s, i);
            printf(" %s=", f->name);
            rec_print_value(f, fern_row_at(row, i));
        }
        putchar('\n');
    }
    if (rc == 0 && start >= rows && rows > 0)
        fprintf(stderr, "fern record dump: --start %lld is past the last row (%lld rows)\n", start, (long long)rows);
    fern_row_free(row);
    fern_record_close(r);
    return rc;
}

/* ---- convert ------------------------------------------------------------------------------------ */

typedef struct {
    int quiet;
    double t0;
} rec_progress_ctx;

static double rec_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void rec_progress(void *ctx, int64_t rows)
{
    const rec_progress_ctx *p = ctx;
    if (!p->quiet && isatty(2))
        fprintf(stderr, "\r%lld rows", (long long)rows);
}

static int rec_convert(int argc, char **argv)
{
    const char *from = NULL, *input = NULL, *output = NULL, *index = NULL, *split = "train", *labels = NULL;
    const char *label_col = NULL, *dtype = NULL;
    long long shards = 0, shard_rows = 0, page_size = 0;
    int header = -1, pack = 0, quiet = 0;
    char delim = 0;
    const char *H = rec_help_convert;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (rec_is_help(a)) {
            fputs(H, stdout);
            return 0;
        }
        const char **sv = NULL;
        long long *nv = NULL;
        if (!strcmp(a, "--from"))
            sv = &from;
        else if (!strcmp(a, "--input"))
            sv = &input;
        else if (!strcmp(a, "--output"))
            sv = &output;
        else if (!strcmp(a, "--index"))
            sv = &index;
        else if (!strcmp(a, "--split"))
            sv = &split;
        else if (!strcmp(a, "--labels"))
            sv = &labels;
        else if (!strcmp(a, "--label-column"))
            sv = &label_col;
        else if (!strcmp(a, "--dtype"))
            sv = &dtype;
        else if (!strcmp(a, "--shards"))
            nv = &shards;
        else if (!strcmp(a, "--shard-rows"))
            nv = &shard_rows;
        else if (!strcmp(a, "--page-size"))
            nv = &page_size;
        else if (!strcmp(a, "--delimiter")) {
            if (i + 1 >= argc || strlen(argv[i + 1]) != 1)
                return rec_usage("convert", H, "option '%s' needs one character", a);
            delim = argv[++i][0];
            continue;
        } else if (!strcmp(a, "--header")) {
            header = 1;
            continue;
        } else if (!strcmp(a, "--no-header")) {
            header = 0;
            continue;
        } else if (!strcmp(a, "--pack")) {
            pack = 1;
            continue;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        } else if (a[0] == '-')
            return rec_usage("convert", H, "unknown option '%s'", a);
        else
            return rec_usage("convert", H, "unexpected argument '%s'", a);
        if (i + 1 >= argc)
            return rec_usage("convert", H, "option '%s' needs a value", a);
        if (sv)
            *sv = argv[++i];
        else if (rec_parse_count(argv[++i], nv))
            return rec_usage("convert", H, "bad number '%s'", argv[i]);
    }
    if (!from)
        return rec_usage("convert", H, "%s", "missing --from FORMAT");
    if (!input)
        return rec_usage("convert", H, "%s", "missing --input PATH");
    if (!output)
        return rec_usage("convert", H, "%s", "missing --output FILE");
    if (shards && shard_rows)
        return rec_usage("convert", H, "%s", "give --shards or --shard-rows, not both");
    if (shards > FERN_RECORD_MAX_SHARDS) {
        char m[64];
        snprintf(m, sizeof m, "%d", FERN_RECORD_MAX_SHARDS);
        return rec_usage("convert", H, "--shards: at most %s shards", m);
    }
    int is_csv = !strcmp(from, "csv"), is_idx = !strcmp(from, "idx");
    if (!is_idx && labels)
        return rec_usage("convert", H, "%s", "--labels applies to --from idx");
    if (!is_csv && (label_col || dtype || delim || header != -1 || pack))
        return rec_usage("convert", H, "%s", "--label-column, --delimiter, --header, --dtype and --pack apply to --from csv");
    if (strcmp(split, "train") && strcmp(split, "test"))
        return rec_usage("convert", H, "--split must be train or test, not '%s'", split);

    /* index fields */
    char idxbuf[1024];
    const char *idx_names[FERN_RECORD_MAX_FIELDS];
    int n_idx = 0;
    if (index) {
        if (strlen(index) >= sizeof idxbuf)
            return rec_usage("convert", H, "%s", "--index list too long");
        snprintf(idxbuf, sizeof idxbuf, "%s", index);
        for (char *p = strtok(idxbuf, ","); p; p = strtok(NULL, ",")) {
            if (n_idx >= FERN_RECORD_MAX_FIELDS)
                return rec_usage("convert", H, "%s", "--index: too many fields");
            idx_names[n_idx++] = p;
        }
        if (n_idx == 0)
            return rec_usage("convert", H, "%s", "--index needs field names");
    }

    fern_clear_error();
    fern_dataset *ds = NULL;
    fern_record_schema *schema = NULL;
    char source[4200];
    char *classes = NULL;
    snprintf(source, sizeof source, "%s:%s", from, input);
    if (is_idx) {
        if (labels)
            ds = fern_dataset_idx(input, labels);
        else
            ds = fern_dataset_mnist(input, split);
    } else if (!strcmp(from, "cifar10")) {
        ds = fern_dataset_cifar10(input, split);
    } else if (!strcmp(from, "cifar100")) {
        ds = fern_dataset_cifar100(input, split);
    } else if (is_csv) {
        fern_csv_opts co = {0};
        co.delimiter = delim;
        co.header = header;
        co.label_column = label_col;
        co.pack = pack;
        co.dtype = FERN_F32;
        if (dtype && fern_dtype_from_name(dtype, &co.dtype))
            return rec_usage("convert", H, "--dtype: unknown dtype '%s'", dtype);
        if (co.dtype != FERN_F32 && co.dtype != FERN_F64)
            return rec_usage("convert", H, "--dtype must be f32 or f64, not '%s'", dtype);
        ds = fern_dataset_csv(input, &co);
    } else if (!strcmp(from, "image-folder")) {
        fern_image_folder_opts fo = {0, 0};
        ds = fern_dataset_image_folder(input, &fo);
        const char *const *names = NULL;
        int nc = ds ? fern_dataset_image_folder_classes(ds, &names) : 0;
        if (ds) {
            size_t len = 1;
            for (int i = 0; i < nc; i++)
                len += strlen(names[i]) + 1;
            classes = malloc(len);
            if (classes) {
                classes[0] = 0;
                for (int i = 0; i < nc; i++) {
                    if (i)
                        strcat(classes, "\n");
                    strcat(classes, names[i]);
                }
            }
            schema = fern_record_schema_new();
            if (!classes || !schema || fern_record_schema_add(schema, "image", FERN_REC_BYTES) ||
                fern_record_schema_add(schema, "label", FERN_REC_INT64)) {
                fern_dataset_release(ds);
                ds = NULL;
            }
        }
    } else {
        return rec_usage("convert", H, "unknown format '%s' (idx, cifar10, cifar100, csv, image-folder)", from);
    }
    if (!ds) {
        free(classes);
        fern_record_schema_free(schema);
        return rec_fail("convert");
    }
    /* write through a writer of our own to attach metadata */
    fern_record_writer_opts wo = {0};
    wo.num_shards = (int)shards;
    wo.rows_per_shard = shard_rows;
    wo.page_size = (size_t)page_size;
    wo.n_index = n_idx;
    wo.index_fields = idx_names;
    rec_progress_ctx pc = {quiet, rec_now()};
    fern_data_iter *it = fern_data_iter_new(ds, NULL);
    fern_dataset_release(ds);
    fern_row *row = fern_row_new();
    fern_record_writer *w = NULL;
    fern_status st = it && row ? FERN_OK : fern_last_status();
    int rn = FERN_DATA_END;
    while (st == FERN_OK && (rn = fern_data_iter_next(it, row)) == FERN_OK) {
        if (!w) {
            if (!schema && !(schema = fern_record_schema_from_row(row))) {
                st = fern_last_status();
                break;
            }
            if (!(w = fern_record_writer_open(output, schema, &wo))) {
                st = fern_last_status();
                break;
            }
            if (fern_record_writer_set_meta(w, "source", source) ||
                (classes && fern_record_writer_set_meta(w, "classes", classes))) {
                st = fern_last_status();
                break;
            }
        }
        st = fern_record_write_row(w, row);
        if (st == FERN_OK && fern_record_writer_rows(w) % 4096 == 0)
            rec_progress(&pc, fern_record_writer_rows(w));
    }
    if (st == FERN_OK && rn != FERN_DATA_END)
        st = fern_last_status() != FERN_OK ? fern_last_status() : FERN_ERR_INTERNAL;
    if (st == FERN_OK && !w) {
        fern_set_error(FERN_ERR_INVALID, "record convert: %s has no rows", input);
        st = FERN_ERR_INVALID;
    }
    int64_t n = w ? fern_record_writer_rows(w) : 0;
    if (st == FERN_OK)
        st = fern_record_writer_close(w);
    else
        fern_record_writer_abort(w);
    fern_row_free(row);
    fern_data_iter_free(it);
    fern_record_schema_free(schema);
    free(classes);
    if (!quiet && isatty(2))
        fprintf(stderr, "\r");
    if (st != FERN_OK)
        return rec_fail("convert");
    if (!quiet) {
        double dt = rec_now() - pc.t0;
        fprintf(stderr, "wrote %lld rows to %s (%s, index %s) in %.2f s (%.0f rows/s)\n", (long long)n, output,
                shard_rows ? "shards by count" : shards > 1 ? "round-robin shards" : "1 shard", index ? index : "none",
                dt, dt > 0 ? (double)n / dt : 0.0);
    }
    return 0;
}

int fern_cmd_record(int argc, char **argv)
{
    if (argc < 2 || !argv) {
        fputs(rec_help_main, stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (rec_is_help(sub) || !strcmp(sub, "help")) {
        fputs(rec_help_main, stdout);
        return 0;
    }
    if (!strcmp(sub, "info"))
        return rec_info(argc, argv);
    if (!strcmp(sub, "dump"))
        return rec_dump(argc, argv);
    if (!strcmp(sub, "convert"))
        return rec_convert(argc, argv);
    return rec_usage(NULL, rec_help_main, "unknown subcommand '%s' (info, dump, convert)", sub);
}
