/*
 * sqlite_rowstore.c - the naive design, as a baseline: one SQLite row per reading.
 *
 *     sqlite_rowstore --db FILE [--clients N] [--batch ROWS] TABLE=FILE.csv [TABLE=FILE.csv...]
 *
 * What meshd would be without its own layers: raw SQLite 3 (the system library), WAL mode,
 * synchronous=FULL, prepared INSERTs bound column by column, one row per reading, 5,000-row
 * transactions (--batch), and an index on (name, time): the series and the time, created
 * before the load as any live system would have it.
 *
 * Each CSV file has a header line of column names (time first); the table gets those
 * columns: `time` INTEGER (nanoseconds since 1970, parsed from RFC 3339 text or taken as an
 * integer), the tag columns name, fleet, driver, model, device_version TEXT, `status` INTEGER,
 * any other REAL. An empty field is NULL.
 *
 * The files are streamed (read line by line, a few KiB of buffer, so this process's peak
 * memory is SQLite's, not the input's); reading and parsing the CSV is part of the timed
 * ingest, as parsing line protocol is for the servers. With --clients N, N threads each insert
 * their contiguous Nth of every file (split at byte offsets, each line to the part holding its
 * first byte) through their own connection to the same database file, each transaction
 * `BEGIN IMMEDIATE` with a 60 s busy timeout: SQLite has one writer at a time, so the clients
 * take turns (that is the naive design's reality).
 *
 * Prints one JSON object on stdout: rows, clients, seconds (wall time from the moment all
 * threads start to the last commit), rows_per_s, busy_retries, and vmhwm_kb (peak resident
 * memory of this process, from /proc/self/status).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAXCOLS = 32, MAXFILES = 8 };
enum { T_INT, T_TEXT, T_REAL, T_TIME };

typedef struct {
    char table[64];
    const char *path;
    char header[1024]; /* the header line, split in place into cols */
    long data_start;   /* byte offset of the first data line */
    long size;         /* bytes */
    int ncols;
    char *cols[MAXCOLS];
    int types[MAXCOLS];
    char insert_sql[2048];
} csvfile_t;

static csvfile_t files[MAXFILES];
static int nfiles;
static const char *db_path;
static long nclients = 1, batch_rows = 5000;
static pthread_barrier_t start_barrier;
static atomic_int failed;
static atomic_long busy_retries;
static atomic_long rows_done;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int col_type(const char *name)
{
    static const char *const text[] = {"name", "fleet", "driver", "model", "device_version"};
    if (!strcmp(name, "time"))
        return T_TIME;
    if (!strcmp(name, "status"))
        return T_INT;
    for (size_t i = 0; i < sizeof text / sizeof *text; i++)
        if (!strcmp(name, text[i]))
            return T_TEXT;
    return T_REAL;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* RFC 3339 UTC text (YYYY-MM-DDTHH:MM:SS[.fraction]Z) or an integer of nanoseconds. */
static int parse_time(const char *s, int64_t *ns)
{
    char *end;
    if (s[0] >= '0' && s[0] <= '9' && strlen(s) > 10 && s[4] != '-') {
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || *end)
            return -1;
        *ns = v;
        return 0;
    }
    int y, mo, d, h, mi, sec, used = 0;
    if (sscanf(s, "%4d-%2d-%2d%*1[T ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6)
        return -1;
    const char *p = s + used;
    int64_t frac = 0, scale = 1000000000;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (scale > 1) {
                scale /= 10;
                frac += (*p - '0') * scale;
            }
            p++;
        }
    }
    if (strcmp(p, "Z") && strcmp(p, "+00:00") && strcmp(p, "+00"))
        return -1;
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    *ns = ((days * 86400 + h * 3600 + mi * 60 + sec) * INT64_C(1000000000)) + frac;
    return 0;
}

/* Splits one CSV line in place into at most max fields; returns the count or -1. An unquoted
 * empty field is NULL (f[i] == NULL); quotes are removed and "" unescaped. */
static int split_csv(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == max)
            return -1;
        if (*p == '"') {
            char *w = ++p;
            f[n++] = w;
            for (;;) {
                if (*p == 0)
                    return -1;
                if (*p == '"' && p[1] == '"') {
                    *w++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *w++ = *p++;
                }
            }
            *w = 0;
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p == 0)
                return n;
            return -1;
        }
        char *start = p;
        while (*p && *p != ',')
            p++;
        f[n++] = p == start ? NULL : start;
        if (*p == 0)
            return n;
        *p++ = 0;
    }
}

static int read_header(csvfile_t *cf, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "sqlite_rowstore: %s: %s\n", path, strerror(errno));
        return -1;
    }
    cf->path = path;
    if (!fgets(cf->header, sizeof cf->header, f)) {
        fprintf(stderr, "sqlite_rowstore: %s: no header line\n", path);
        fclose(f);
        return -1;
    }
    cf->data_start = ftell(f);
    fseek(f, 0, SEEK_END);
    cf->size = ftell(f);
    fclose(f);
    cf->header[strcspn(cf->header, "\r\n")] = 0;
    int n = split_csv(cf->header, cf->cols, MAXCOLS);
    if (n < 2 || !cf->cols[0] || strcmp(cf->cols[0], "time")) {
        fprintf(stderr, "sqlite_rowstore: %s: the header must start with time\n", path);
        return -1;
    }
    cf->ncols = n;
    return 0;
}

static int exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "sqlite_rowstore: %s: %s\n", sql, err ? err : sqlite3_errmsg(db));
        sqlite3_free(err);
        return -1;
    }
    return 0;
}

static int create_schema(void)
{
    sqlite3 *db;
    if (sqlite3_open(db_path, &db) != SQLITE_OK) {
        fprintf(stderr, "sqlite_rowstore: %s: %s\n", db_path, sqlite3_errmsg(db));
        return -1;
    }
    if (exec(db, "PRAGMA journal_mode=WAL") || exec(db, "PRAGMA synchronous=FULL"))
        return -1;
    for (int i = 0; i < nfiles; i++) {
        csvfile_t *cf = &files[i];
        char sql[2048];
        size_t n = (size_t)snprintf(sql, sizeof sql, "CREATE TABLE IF NOT EXISTS %s (", cf->table);
        size_t m = (size_t)snprintf(cf->insert_sql, sizeof cf->insert_sql,
                                    "INSERT INTO %s VALUES (", cf->table);
        for (int c = 0; c < cf->ncols; c++) {
            static const char *const tn[] = {"INTEGER", "TEXT", "REAL", "INTEGER NOT NULL"};
            cf->types[c] = col_type(cf->cols[c]);
            n += (size_t)snprintf(sql + n, sizeof sql - n, "%s%s %s", c ? ", " : "", cf->cols[c],
                                  tn[cf->types[c]]);
            m += (size_t)snprintf(cf->insert_sql + m, sizeof cf->insert_sql - m, "%s?",
                                  c ? "," : "");
        }
        snprintf(sql + n, sizeof sql - n, ")");
        snprintf(cf->insert_sql + m, sizeof cf->insert_sql - m, ")");
        if (exec(db, sql))
            return -1;
        snprintf(sql, sizeof sql, "CREATE INDEX IF NOT EXISTS %s_series_time ON %s (name, time)",
                 cf->table, cf->table);
        if (exec(db, sql))
            return -1;
    }
    sqlite3_close(db);
    return 0;
}

static int begin_immediate(sqlite3 *db)
{
    for (;;) {
        int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            return 0;
        if (rc != SQLITE_BUSY) {
            fprintf(stderr, "sqlite_rowstore: BEGIN: %s\n", sqlite3_errmsg(db));
            return -1;
        }
        atomic_fetch_add(&busy_retries, 1); /* only after the 60 s busy timeout expired */
    }
}

static void *client(void *arg)
{
    long id = (long)(intptr_t)arg;
    sqlite3 *db = NULL;
    sqlite3_stmt *st[MAXFILES] = {0};
    int ok = sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) ==
             SQLITE_OK;
    if (ok)
        sqlite3_busy_timeout(db, 60000);
    ok = ok && exec(db, "PRAGMA synchronous=FULL") == 0;
    for (int i = 0; ok && i < nfiles; i++)
        ok = sqlite3_prepare_v3(db, files[i].insert_sql, -1, SQLITE_PREPARE_PERSISTENT, &st[i],
                                NULL) == SQLITE_OK;
    if (!ok) {
        fprintf(stderr, "sqlite_rowstore: open/prepare: %s\n", db ? sqlite3_errmsg(db) : "?");
        atomic_store(&failed, 1);
    }
    pthread_barrier_wait(&start_barrier);
    char *line = NULL;
    size_t linecap = 0;
    long mine = 0;
    for (int i = 0; ok && i < nfiles && !atomic_load(&failed); i++) {
        csvfile_t *cf = &files[i];
        long span = cf->size - cf->data_start;
        long from = cf->data_start + (long)((double)span * (double)id / (double)nclients);
        long to = cf->data_start + (long)((double)span * (double)(id + 1) / (double)nclients);
        FILE *in = fopen(cf->path, "rb");
        if (!in) {
            fprintf(stderr, "sqlite_rowstore: %s: %s\n", cf->path, strerror(errno));
            ok = 0;
            break;
        }
        /* start at the first line that begins at or after `from` */
        long pos = from;
        if (from > cf->data_start) {
            fseek(in, from - 1, SEEK_SET);
            ssize_t n = getline(&line, &linecap, in);
            pos = from - 1 + (n > 0 ? n : 0);
        } else {
            fseek(in, from, SEEK_SET);
        }
        char *f[MAXCOLS];
        int more = pos < to;
        while (ok && more) {
            if (begin_immediate(db)) {
                ok = 0;
                break;
            }
            for (long k = 0; k < batch_rows; k++) {
                ssize_t n = pos < to ? getline(&line, &linecap, in) : -1;
                if (n <= 0) {
                    more = 0;
                    break;
                }
                pos += n;
                while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                    line[--n] = 0;
                if (n == 0)
                    continue;
                int nf = split_csv(line, f, MAXCOLS);
                if (nf != cf->ncols) {
                    fprintf(stderr, "sqlite_rowstore: %s: %d fields, expected %d\n", cf->table, nf,
                            cf->ncols);
                    ok = 0;
                    break;
                }
                for (int c = 0; c < nf; c++) {
                    char *end;
                    int64_t t = 0;
                    if (!f[c]) {
                        sqlite3_bind_null(st[i], c + 1);
                        continue;
                    }
                    switch (cf->types[c]) {
                    case T_TIME:
                        if (parse_time(f[c], &t)) {
                            fprintf(stderr, "sqlite_rowstore: bad time '%s'\n", f[c]);
                            ok = 0;
                        }
                        sqlite3_bind_int64(st[i], c + 1, t);
                        break;
                    case T_INT:
                        sqlite3_bind_int64(st[i], c + 1, strtoll(f[c], &end, 10));
                        break;
                    case T_REAL:
                        sqlite3_bind_double(st[i], c + 1, strtod(f[c], &end));
                        break;
                    default:
                        sqlite3_bind_text(st[i], c + 1, f[c], -1, SQLITE_STATIC);
                    }
                }
                if (!ok)
                    break;
                if (sqlite3_step(st[i]) != SQLITE_DONE) {
                    fprintf(stderr, "sqlite_rowstore: insert: %s\n", sqlite3_errmsg(db));
                    ok = 0;
                    break;
                }
                sqlite3_reset(st[i]);
                mine++;
            }
            if (ok && exec(db, "COMMIT"))
                ok = 0;
            atomic_fetch_add(&rows_done, mine);
            mine = 0;
            if (pos >= to)
                more = 0;
        }
        fclose(in);
    }
    free(line);
    if (!ok)
        atomic_store(&failed, 1);
    for (int i = 0; i < nfiles; i++)
        sqlite3_finalize(st[i]);
    sqlite3_close(db);
    return NULL;
}

static long vmhwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static void usage(void)
{
    fputs("usage: sqlite_rowstore --db FILE [--clients N] [--batch ROWS] TABLE=FILE.csv...\n",
          stderr);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char *end, *eq;
        if (!strcmp(a, "--db") && i + 1 < argc) {
            db_path = argv[++i];
        } else if ((!strcmp(a, "--clients") || !strcmp(a, "--batch")) && i + 1 < argc) {
            errno = 0;
            long v = strtol(argv[++i], &end, 10);
            if (errno || *end || v < 1 || v > 1000000) {
                usage();
                return 2;
            }
            *(!strcmp(a, "--clients") ? &nclients : &batch_rows) = v;
        } else if ((eq = strchr(a, '=')) && a[0] != '-' && nfiles < MAXFILES) {
            csvfile_t *cf = &files[nfiles++];
            size_t tl = (size_t)(eq - a);
            if (tl == 0 || tl >= sizeof cf->table) {
                usage();
                return 2;
            }
            memcpy(cf->table, a, tl);
            cf->table[tl] = 0;
            for (size_t k = 0; k < tl; k++)
                if (!(cf->table[k] == '_' || (cf->table[k] >= 'a' && cf->table[k] <= 'z'))) {
                    fprintf(stderr, "sqlite_rowstore: bad table name %s\n", cf->table);
                    return 2;
                }
            if (read_header(cf, eq + 1))
                return 1;
        } else {
            usage();
            return 2;
        }
    }
    if (!db_path || nfiles == 0 || nclients > 64) {
        usage();
        return 2;
    }
    if (create_schema())
        return 1;
    pthread_t th[64];
    pthread_barrier_init(&start_barrier, NULL, (unsigned)nclients + 1);
    for (long i = 0; i < nclients; i++)
        if (pthread_create(&th[i], NULL, client, (void *)(intptr_t)i) != 0) {
            fputs("sqlite_rowstore: pthread_create failed\n", stderr);
            return 1;
        }
    pthread_barrier_wait(&start_barrier);
    double t0 = now_s();
    for (long i = 0; i < nclients; i++)
        pthread_join(th[i], NULL);
    double secs = now_s() - t0;
    if (atomic_load(&failed))
        return 1;
    long rows = atomic_load(&rows_done);
    printf("{\"rows\": %ld, \"clients\": %ld, \"batch_rows\": %ld, \"seconds\": %.6f, "
           "\"rows_per_s\": %.1f, \"busy_retries\": %ld, \"vmhwm_kb\": %ld, \"sqlite\": \"%s\"}\n",
           rows, nclients, batch_rows, secs, secs > 0 ? (double)rows / secs : 0.0,
           atomic_load(&busy_retries), vmhwm_kb(), sqlite3_libversion());
    return 0;
}
