/*
 * loader.c - the benchmark's HTTP line-protocol loader, for meshd and InfluxDB alike.
 *
 *     loader --url 'http://127.0.0.1:PORT/write?db=fleet' [--token TOKEN] [--clients N]
 *            [--batch LINES] [--rate ROWS_PER_S] FILE.lp
 *
 * Reads the whole file into memory and cuts it into batches of --batch lines (5,000 by
 * default) before the clock starts. Then N threads, each with its own keep-alive libcurl
 * handle (one TCP connection for all its requests), take the next batch from a shared counter
 * and POST it (Content-Type text/plain, no `Expect: 100-continue` round trip, and with
 * `Authorization: Bearer TOKEN` when a token is given). Every answer must be 2xx: the first
 * failure is printed with its body and the run fails (exit 1), because a benchmark that drops
 * rows measures nothing.
 *
 * --rate paces the load: batch i is not sent before start + (rows of the batches before it) /
 * rate, so a run offers a steady load (it still falls behind when the server is slower).
 *
 * Prints one JSON object on stdout: rows, batches, clients, seconds (wall time from the moment
 * all threads start to the last answer), rows_per_s, and the latency of one batch request
 * (batch_ms_p50, batch_ms_p99, batch_ms_max).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *p; /* into the file's buffer */
    size_t n;      /* bytes */
    long lines;
    long before; /* rows of the batches before this one */
} batch_t;

static batch_t *batches;
static size_t nbatches;
static atomic_size_t next_batch;
static atomic_int failed;
static double *lat_ms; /* per batch */
static double rate;    /* rows per second offered; 0: as fast as answered */
static double t_start; /* monotonic s, when the threads start */
static const char *url;
static char auth[600];
static pthread_barrier_t start_barrier;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    char body[2048];
    size_t n;
} resp_t;

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    resp_t *r = ud;
    size_t n = size * nmemb, room = sizeof r->body - 1 - r->n;
    memcpy(r->body + r->n, p, n < room ? n : room);
    r->n += n < room ? n : room;
    r->body[r->n] = 0;
    return n;
}

static void *client(void *arg)
{
    (void)arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    resp_t resp;
    if (!c) {
        fputs("loader: curl_easy_init failed\n", stderr);
        atomic_store(&failed, 1);
        pthread_barrier_wait(&start_barrier);
        return NULL;
    }
    h = curl_slist_append(h, "Content-Type: text/plain; charset=utf-8");
    h = curl_slist_append(h, "Expect:");
    if (auth[0])
        h = curl_slist_append(h, auth);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 600L);
    pthread_barrier_wait(&start_barrier);
    for (;;) {
        size_t i = atomic_fetch_add(&next_batch, 1);
        if (i >= nbatches || atomic_load(&failed))
            break;
        if (rate > 0) {
            double due = t_start + (double)batches[i].before / rate, wait = due - now_s();
            if (wait > 0) {
                struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
                nanosleep(&ts, NULL);
            }
        }
        resp.n = 0;
        resp.body[0] = 0;
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, batches[i].p);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)batches[i].n);
        double t0 = now_s();
        CURLcode rc = curl_easy_perform(c);
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        lat_ms[i] = (now_s() - t0) * 1e3;
        if (rc != CURLE_OK || code < 200 || code > 299) {
            pthread_mutex_lock(&err_lock);
            if (!atomic_exchange(&failed, 1))
                fprintf(stderr, "loader: batch %zu of %zu: %s, HTTP %ld: %s\n", i + 1, nbatches,
                        rc != CURLE_OK ? curl_easy_strerror(rc) : "refused", code, resp.body);
            pthread_mutex_unlock(&err_lock);
            break;
        }
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            break;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

static void usage(void)
{
    fputs("usage: loader --url URL [--token TOKEN] [--clients N] [--batch LINES] [--rate "
          "ROWS_PER_S] FILE.lp\n",
          stderr);
}

int main(int argc, char **argv)
{
    const char *file = NULL, *token = NULL;
    long clients = 1, per_batch = 5000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char *end;
        if (!strcmp(a, "--url") && i + 1 < argc) {
            url = argv[++i];
        } else if (!strcmp(a, "--token") && i + 1 < argc) {
            token = argv[++i];
        } else if ((!strcmp(a, "--clients") || !strcmp(a, "--batch")) && i + 1 < argc) {
            errno = 0;
            long v = strtol(argv[++i], &end, 10);
            if (errno || *end || v < 1 || v > 1000000) {
                usage();
                return 2;
            }
            if (!strcmp(a, "--clients"))
                clients = v;
            else
                per_batch = v;
        } else if (!strcmp(a, "--rate") && i + 1 < argc) {
            errno = 0;
            rate = strtod(argv[++i], &end);
            if (errno || *end || !(rate > 0 && rate <= 1e9)) {
                usage();
                return 2;
            }
        } else if (a[0] != '-' && !file) {
            file = a;
        } else {
            usage();
            return 2;
        }
    }
    if (!url || !file || clients > 256) {
        usage();
        return 2;
    }
    if (token)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);

    size_t len;
    char *data = read_file(file, &len);
    if (!data) {
        fprintf(stderr, "loader: %s: %s\n", file, strerror(errno));
        return 1;
    }
    /* cut into batches of per_batch lines */
    size_t cap = 1024;
    long rows = 0;
    batches = malloc(cap * sizeof *batches);
    const char *p = data, *end = data + len;
    while (p < end && batches) {
        const char *q = p;
        long lines = 0;
        while (q < end && lines < per_batch) {
            const char *nl = memchr(q, '\n', (size_t)(end - q));
            const char *stop = nl ? nl + 1 : end;
            if (stop - q > 1 || (stop - q == 1 && *q != '\n'))
                lines++;
            q = stop;
        }
        if (lines == 0)
            break;
        if (nbatches == cap) {
            cap *= 2;
            batch_t *nb = realloc(batches, cap * sizeof *batches);
            if (!nb) {
                free(batches);
                batches = NULL;
                break;
            }
            batches = nb;
        }
        batches[nbatches++] = (batch_t){p, (size_t)(q - p), lines, rows};
        rows += lines;
        p = q;
    }
    lat_ms = calloc(nbatches ? nbatches : 1, sizeof *lat_ms);
    if (!batches || !lat_ms) {
        fputs("loader: out of memory\n", stderr);
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fputs("loader: curl_global_init failed\n", stderr);
        return 1;
    }
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    pthread_barrier_init(&start_barrier, NULL, (unsigned)clients + 1);
    for (long i = 0; i < clients; i++) {
        if (pthread_create(&th[i], NULL, client, NULL) != 0) {
            fputs("loader: pthread_create failed\n", stderr);
            return 1;
        }
    }
    t_start = now_s();
    pthread_barrier_wait(&start_barrier);
    double t0 = now_s();
    for (long i = 0; i < clients; i++)
        pthread_join(th[i], NULL);
    double secs = now_s() - t0;
    if (atomic_load(&failed))
        return 1;
    qsort(lat_ms, nbatches, sizeof *lat_ms, cmp_double);
    double p50 = nbatches ? lat_ms[nbatches / 2] : 0;
    double p99 = nbatches ? lat_ms[(size_t)((double)(nbatches - 1) * 0.99)] : 0;
    double mx = nbatches ? lat_ms[nbatches - 1] : 0;
    printf("{\"rows\": %ld, \"batches\": %zu, \"clients\": %ld, \"batch_lines\": %ld, "
           "\"seconds\": %.6f, \"rows_per_s\": %.1f, \"batch_ms_p50\": %.3f, "
           "\"batch_ms_p99\": %.3f, \"batch_ms_max\": %.3f}\n",
           rows, nbatches, clients, per_batch, secs, secs > 0 ? (double)rows / secs : 0.0, p50, p99,
           mx);
    curl_global_cleanup();
    free(th);
    free(lat_ms);
    free(batches);
    free(data);
    return 0;
}
