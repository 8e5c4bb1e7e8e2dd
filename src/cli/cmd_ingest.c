/*
 * cmd_ingest.c - `meshctl ingest DOMAIN.PRODUCT FILE`: stream a file to a product in
 * batches.
 *
 * The splitter cuts the file at record boundaries; each batch is POSTed with an
 * Idempotency-Key made of the file's identity (path, device, inode, size, mtime), a run id
 * and the batch number, so a batch retried after a lost answer is applied once, and a rerun
 * with the same --run-id skips the batches the server already applied. A batch is retried on
 * connection failures, stalls and 503 with backoff. A refused batch names its bad rows by
 * their line in the file.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/splitter.h"
#include "core/util.h"

#define TRIES        3
#define BACKOFF_MS   500
#define RUN_ID_MAX   64
#define DETAILS_SHOW 10

typedef struct ingest {
    mesh_cli_t *cli;
    const char *file;  /* as given ("-": stdin) */
    const char *shown; /* for messages */
    char domain[MESH_NAME_MAX + 1];
    char product[MESH_NAME_MAX + 1];
    mesh_split_fmt_t fmt;
    const char *fmt_name;
    bool influx;
    const char *precision;
    char key_prefix[128]; /* "meshctl-<file id>-<run id>-" */
    mesh_buf_t path;
    mesh_splitter_t *split;
    mesh_progress_t *progress;
    /* totals */
    int64_t accepted, quarantined;
    int64_t batches_ok, duplicates, refused;
} ingest_t;

static const struct {
    const char *name;
    mesh_split_fmt_t fmt;
    const char *ctype;
} formats[] = {
    {"csv", MESH_SPLIT_CSV, "text/csv"},
    {"ndjson", MESH_SPLIT_NDJSON, "application/x-ndjson"},
    {"json", MESH_SPLIT_JSON, "application/json"},
    {"lp", MESH_SPLIT_LP, "text/plain; charset=utf-8"},
};

static const char *const extensions[][2] = {{".csv", "csv"},      {".ndjson", "ndjson"},
                                            {".jsonl", "ndjson"}, {".json", "json"},
                                            {".lp", "lp"},        {".txt", "lp"}};

static const char *format_of(const char *file)
{
    size_t n = strlen(file);
    for (size_t i = 0; i < MESH_ARRAY_LEN(extensions); i++) {
        size_t e = strlen(extensions[i][0]);
        if (n > e && strcasecmp(file + n - e, extensions[i][0]) == 0)
            return extensions[i][1];
    }
    return NULL;
}

/* 16 hex digits naming the input: the same file, unchanged, gives the same id. */
static void file_id(const char *file, FILE *f, char out[17])
{
    char ident[4200];
    struct stat st;
    char *real = strcmp(file, "-") ? realpath(file, NULL) : NULL;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode))
        snprintf(ident, sizeof ident, "%s|%llu|%llu|%lld|%lld.%09ld", real ? real : file,
                 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
                 (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    else
        snprintf(ident, sizeof ident, "stream|%s", real ? real : file);
    free(real);
    uint8_t h[8];
    uint32_t a = mesh_crc32c(0, ident, strlen(ident));
    uint32_t b = mesh_crc32c(0x9e3779b9u, ident, strlen(ident));
    memcpy(h, &a, 4);
    memcpy(h + 4, &b, 4);
    mesh_hex(h, sizeof h, out);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Prints the bad rows of a refused or partly quarantined batch by their line in the file. */
static void print_rows(ingest_t *g, const mesh_split_batch_t *b, const json_t *details, FILE *out)
{
    size_t i;
    json_t *d;
    json_array_foreach(details, i, d)
    {
        if (i == DETAILS_SHOW) {
            fprintf(out, "  ... and %zu more\n", json_array_size(details) - DETAILS_SHOW);
            break;
        }
        if (!json_is_object(d)) {
            mesh_cli_print_details(out, d, 1);
            continue;
        }
        int64_t row = mesh_cli_jint(d, "row");
        uint64_t line = row > 0 ? mesh_splitter_line(g->split, b, (uint64_t)row) : 0;
        const char *col = mesh_cli_jstr(d, "column"), *reason = mesh_cli_jstr(d, "reason");
        char msg[1024];
        bool json = g->fmt == MESH_SPLIT_JSON;
        if (line)
            snprintf(msg, sizeof msg, "%s %llu (%s %lld of the batch)%s%s: %s",
                     json ? "the element at line" : "line", (unsigned long long)line,
                     json ? "element" : "line", (long long)row, col ? ", column " : "",
                     col ? col : "", reason ? reason : "");
        else
            snprintf(msg, sizeof msg, "row %lld of the batch%s%s: %s", (long long)row,
                     col ? ", column " : "", col ? col : "", reason ? reason : "");
        mesh_cli_clean(msg);
        fprintf(out, "  %s\n", msg);
    }
}

/* Sends one batch, retrying what may be retried. Returns 0 or the exit code of a refusal
 * (already printed). */
static int send_batch(ingest_t *g, const mesh_split_batch_t *b)
{
    char key[sizeof g->key_prefix + 24];
    snprintf(key, sizeof key, "%s%llu", g->key_prefix, (unsigned long long)b->number);
    const char *ctype = NULL;
    for (size_t i = 0; i < MESH_ARRAY_LEN(formats); i++)
        if (formats[i].fmt == g->fmt)
            ctype = formats[i].ctype;
    mesh_client_req_t req = {.method = "POST",
                             .path = g->path.data,
                             .content_type = ctype,
                             .body = b->body,
                             .body_len = b->len,
                             .idempotency_key = key,
                             .max_body = (size_t)1 << 20};
    char where[160];
    if (b->first_line == b->last_line)
        snprintf(where, sizeof where, "batch %llu (line %llu of %s)", (unsigned long long)b->number,
                 (unsigned long long)b->first_line, g->shown);
    else
        snprintf(where, sizeof where, "batch %llu (lines %llu-%llu of %s)",
                 (unsigned long long)b->number, (unsigned long long)b->first_line,
                 (unsigned long long)b->last_line, g->shown);
    mesh_client_result_t res;
    for (int attempt = 1;; attempt++) {
        if (mesh_client_do(g->cli->client, &req, &res) == MESH_OK)
            break;
        if (!res.retryable || attempt == TRIES) {
            mesh_progress_clear(g->progress);
            /* the details go out by their line in the file, not by the batch's row number */
            json_t *details = res.details;
            res.details = NULL;
            int rc = mesh_cli_report(g->cli, &res, where);
            print_rows(g, b, details, stderr);
            if (details == NULL && res.http && g->influx)
                fprintf(stderr, "  (the line in the message counts from line %llu of %s)\n",
                        (unsigned long long)b->first_line, g->shown);
            json_decref(details);
            mesh_client_result_free(&res);
            return rc;
        }
        int64_t wait = (int64_t)BACKOFF_MS << (attempt - 1);
        uint16_t jitter = 0;
        mesh_random(&jitter, sizeof jitter);
        wait += jitter % (wait / 2 + 1);
        mesh_progress_clear(g->progress);
        if (!g->cli->quiet) {
            char m[sizeof res.msg];
            snprintf(m, sizeof m, "%s", res.msg);
            mesh_cli_clean(m);
            fprintf(stderr, "meshctl: %s%s%s%s: %s; retrying in %.1f s (attempt %d of %d)\n",
                    res.http ? "[" : "", res.http ? res.code : "", res.http ? "] " : "", where, m,
                    (double)wait / 1000, attempt + 1, TRIES);
        }
        mesh_client_result_free(&res);
        sleep_ms(wait);
    }
    int64_t accepted = (int64_t)b->rows, quarantined = 0;
    if (g->influx) {
        /* /write answers an empty 204; meshd puts the counts in headers */
        if (res.hdr_accepted >= 0)
            accepted = res.hdr_accepted;
        if (res.hdr_quarantined > 0) {
            quarantined = res.hdr_quarantined;
            if (!g->cli->quiet) {
                mesh_progress_clear(g->progress);
                fprintf(stderr, "meshctl: %s: %lld row%s quarantined\n", where,
                        (long long)quarantined, quarantined == 1 ? "" : "s");
            }
        }
    } else {
        json_t *j = json_loadb(res.body.data ? res.body.data : "", res.body.len, 0, NULL);
        accepted = mesh_cli_jint(j, "accepted");
        quarantined = mesh_cli_jint(j, "quarantined");
        if (json_is_true(json_object_get(j, "duplicate")))
            g->duplicates++;
        if (quarantined && !g->cli->quiet) {
            mesh_progress_clear(g->progress);
            fprintf(stderr, "meshctl: %s: %lld row%s quarantined:\n", where, (long long)quarantined,
                    quarantined == 1 ? "" : "s");
            print_rows(g, b, json_object_get(j, "quarantine"), stderr);
        }
        json_decref(j);
    }
    g->accepted += accepted;
    g->quarantined += quarantined;
    g->batches_ok++;
    mesh_client_result_free(&res);
    return 0;
}

static int setup(ingest_t *g, const mesh_cli_args_t *a, FILE **in, int64_t *total)
{
    mesh_cli_t *cli = g->cli;
    const char *target = mesh_cli_pos(a, 0);
    g->file = mesh_cli_pos(a, 1);
    g->shown = strcmp(g->file, "-") == 0 ? "stdin" : g->file;
    g->influx = mesh_cli_flag(a, "influx");
    int rc;
    if (g->influx && strchr(target, '.') == NULL) {
        if ((rc = mesh_cli_domain_name(cli, target)) != 0)
            return rc;
        snprintf(g->domain, sizeof g->domain, "%s", target);
    } else if ((rc = mesh_cli_product_name(cli, target, g->domain, g->product)) != 0) {
        return rc;
    }
    g->fmt_name = cli->format ? cli->format : format_of(g->file);
    if (g->fmt_name == NULL)
        return mesh_cli_usage(cli,
                              "cannot tell the format of '%s' from its name: give --format "
                              "csv|ndjson|json|lp",
                              g->file);
    for (size_t i = 0; i < MESH_ARRAY_LEN(formats); i++)
        if (strcmp(formats[i].name, g->fmt_name) == 0)
            g->fmt = formats[i].fmt;
    if (g->influx && g->fmt != MESH_SPLIT_LP)
        return mesh_cli_usage(cli, "--influx sends line protocol: the input must be lp");
    g->precision = mesh_cli_arg(a, "precision");
    if (g->precision) {
        static const char *const ok[] = {"ns", "us", "ms", "s", "auto"};
        bool found = false;
        for (size_t i = 0; i < MESH_ARRAY_LEN(ok); i++)
            found |= strcmp(g->precision, ok[i]) == 0;
        if (!found || (g->influx && strcmp(g->precision, "auto") == 0))
            return mesh_cli_usage(cli, "--precision %s: expected ns, us, ms, s%s", g->precision,
                                  g->influx ? "" : " or auto");
    }
    const char *run_id = mesh_cli_arg(a, "run-id");
    char rid[RUN_ID_MAX + 1];
    if (run_id) {
        size_t n = strlen(run_id);
        bool ok = n > 0 && n <= RUN_ID_MAX;
        for (size_t i = 0; ok && i < n; i++)
            ok = (run_id[i] >= 'a' && run_id[i] <= 'z') || (run_id[i] >= 'A' && run_id[i] <= 'Z') ||
                 (run_id[i] >= '0' && run_id[i] <= '9') || run_id[i] == '-' || run_id[i] == '_';
        if (!ok)
            return mesh_cli_usage(cli, "--run-id: 1-%d of A-Z a-z 0-9 - _", RUN_ID_MAX);
        snprintf(rid, sizeof rid, "%s", run_id);
    } else {
        uint8_t r[8];
        if (mesh_random(r, sizeof r) != MESH_OK)
            return mesh_cli_fail(cli, MESH_IO, "cannot read random bytes for the run id");
        mesh_hex(r, sizeof r, rid);
    }

    *in = strcmp(g->file, "-") == 0 ? stdin : fopen(g->file, "rb");
    if (*in == NULL)
        return mesh_cli_local(cli, "cannot open %s: %s", g->file, strerror(errno));
    struct stat st;
    *total = fstat(fileno(*in), &st) == 0 && S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1;
    char fid[17];
    file_id(g->file, *in, fid);
    snprintf(g->key_prefix, sizeof g->key_prefix, "meshctl-%s-%s-", fid, rid);
    if (!cli->quiet && cli->err_tty)
        fprintf(stderr,
                "meshctl: ingest run %s (rerun with --run-id %s to skip batches "
                "already written)\n",
                rid, rid);

    mesh_status_t s;
    if (g->influx) {
        s = mesh_buf_printf(&g->path, "/write?db=%s", g->domain);
        if (s == MESH_OK && g->precision) {
            const char *p = g->precision;
            s = mesh_buf_printf(&g->path, "&precision=%s",
                                strcmp(p, "ns") == 0   ? "n"
                                : strcmp(p, "us") == 0 ? "u"
                                                       : p);
        }
    } else {
        s = mesh_buf_printf(&g->path, "/v1/products/%s/%s/rows?format=%s", g->domain, g->product,
                            g->fmt_name);
        if (s == MESH_OK && g->precision)
            s = mesh_buf_printf(&g->path, "&precision=%s", g->precision);
    }
    if (s != MESH_OK)
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    return 0;
}

static int run_ingest(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    ingest_t g;
    memset(&g, 0, sizeof g);
    g.cli = cli;
    mesh_buf_init(&g.path, 4096);
    int64_t batch_rows, batch_bytes = 16 << 20;
    int rc = mesh_cli_arg_int(cli, a, "batch-rows", 5000, 1, 10000000, &batch_rows);
    if (rc != 0)
        return rc;
    const char *bb = mesh_cli_arg(a, "batch-bytes");
    if (bb && (mesh_parse_size(bb, &batch_bytes) != MESH_OK || batch_bytes < 1024 ||
               batch_bytes > (int64_t)1 << 30))
        return mesh_cli_usage(cli, "--batch-bytes %s: expected a size from 1KiB to 1GiB", bb);
    FILE *in = NULL;
    int64_t total = -1;
    if ((rc = setup(&g, a, &in, &total)) != 0)
        goto done;
    if (mesh_splitter_create(in, g.fmt, (size_t)batch_rows, (size_t)batch_bytes, &g.split) !=
        MESH_OK) {
        rc = mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
        goto done;
    }
    g.progress = mesh_progress_create(stderr, !cli->quiet, total);
    bool keep_going = mesh_cli_flag(a, "continue");
    int64_t t0 = mesh_mono_ns();
    for (;;) {
        mesh_split_batch_t b;
        mesh_err_t err;
        mesh_err_clear(&err);
        int r = mesh_splitter_next(g.split, &b, &err);
        if (r < 0) {
            mesh_progress_clear(g.progress);
            int e = err.code == MESH_IO ? mesh_cli_local(cli, "%s: %s", g.shown, err.msg)
                                        : mesh_cli_fail(cli, err.code, "%s: %s", g.shown, err.msg);
            if (rc == 0)
                rc = e;
            break;
        }
        if (r == 0)
            break;
        int brc = send_batch(&g, &b);
        if (brc != 0) {
            g.refused++;
            if (rc == 0)
                rc = brc;
            if (!keep_going)
                break;
        }
        mesh_progress_update(g.progress, g.accepted, (int64_t)mesh_splitter_bytes(g.split));
    }
    mesh_progress_destroy(g.progress);
    g.progress = NULL;
    double secs = (double)(mesh_mono_ns() - t0) / 1e9;
    if (!cli->quiet) {
        char target[2 * MESH_NAME_MAX + 2];
        snprintf(target, sizeof target, "%s%s%s", g.domain, g.product[0] ? "." : "", g.product);
        printf("%s: %lld rows accepted, %lld quarantined, %lld batch%s, %.2f s, %.0f rows/s",
               target, (long long)g.accepted, (long long)g.quarantined, (long long)g.batches_ok,
               g.batches_ok == 1 ? "" : "es", secs, secs > 0 ? (double)g.accepted / secs : 0.0);
        if (g.duplicates)
            printf(", %lld already applied before", (long long)g.duplicates);
        if (g.refused)
            printf(", %lld refused", (long long)g.refused);
        putchar('\n');
        if (g.quarantined)
            printf("see them with: meshctl product quarantine %s\n", target);
    }
done:
    mesh_progress_destroy(g.progress);
    mesh_splitter_destroy(g.split);
    if (in && in != stdin)
        fclose(in);
    mesh_buf_free(&g.path);
    return rc;
}

static const mesh_cli_opt_t ingest_opts[] = {
    {"batch-rows", 0, "N", 0, "Rows per request (default 5000)."},
    {"batch-bytes", 0, "SIZE", 0,
     "About the most bytes per request: a batch ends at the first record past it (default "
     "16MiB; the node refuses bodies over its max_body, 64MiB by default)."},
    {"precision", 0, "ns|us|ms|s|auto", 0,
     "Unit of numeric timestamps (default: auto by magnitude for csv and json, ns for lp)."},
    {"influx", 0, NULL, 0,
     "Send line protocol to the InfluxDB endpoint /write?db=DOMAIN, where each line's "
     "measurement names its product (DOMAIN alone is then enough)."},
    {"continue", 0, NULL, 0,
     "Go on with the next batch when one is refused (the exit code still reports it)."},
    {"run-id", 0, "ID", 0,
     "Run id in the Idempotency-Keys (default: random, printed at the start on a terminal). "
     "Rerunning an unchanged file with the same id skips the batches already written."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_ingest_cmds[] = {
    {
        .name = "ingest",
        .usage = "DOMAIN.PRODUCT FILE|- [OPTIONS]",
        .summary = "Write rows from a CSV, NDJSON, JSON or line protocol file.",
        .text = "Streams FILE ('-': standard input) to a product in batches of --batch-rows rows,\n"
                "cut at record boundaries: CSV repeats its header in every batch (quoted line\n"
                "breaks are kept inside their record), NDJSON and line protocol are cut between\n"
                "lines, and a JSON array between its elements. The format comes from --format or\n"
                "the file's extension: .csv, .ndjson or .jsonl, .json, .lp or .txt.\n"
                "\n"
                "Each batch is written all or nothing and carries an Idempotency-Key (file\n"
                "identity, run id, batch number), so a batch retried after a connection failure,\n"
                "a stall or a 503 (3 tries, with backoff) is applied once. A refused batch prints\n"
                "the server's message and the bad rows by their line in the file, and stops the\n"
                "ingest unless --continue is given; the batches before it stay written. Rows the\n"
                "product quarantines are reported per batch. A progress bar (rows, rows/s, bytes,\n"
                "ETA) is shown on a terminal; at the end a summary line gives the rows accepted\n"
                "and quarantined, the batches, the time and the rate.",
        .formats = "csv|ndjson|json|lp",
        .format_help = "Format of the input: csv, ndjson, json or lp (default: from the file's "
                       "extension; required with '-').",
        .opts = ingest_opts,
        .min_args = 2,
        .max_args = 2,
        .examples = "meshctl ingest factory.readings readings.csv\n"
                    "zcat big.ndjson.gz | meshctl ingest factory.readings - --format ndjson\n"
                    "meshctl ingest factory.readings metrics.lp --precision s\n"
                    "meshctl ingest factory metrics.lp --influx",
        .exits = "0  every batch was written\n"
                 "1  the file could not be read\n"
                 "2  a batch was refused (VALIDATION, PARSE, TOO_LARGE), or the file cannot be\n"
                 "   cut into records (an unclosed quote or JSON value)\n"
                 "3  no such domain or product\n"
                 "5  the product is retired\n"
                 "7  meshd could not be reached, or stayed busy, after 3 tries",
        .run = run_ingest,
    },
    {.name = NULL},
};
