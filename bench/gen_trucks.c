/*
 * gen_trucks.c - the benchmark's data: TSBS's "iot" use case (a fleet of trucks), deterministic
 * from a seed, as InfluxDB line protocol or as CSV for COPY.
 *
 *     gen_trucks [trucks] --scale N --duration 6h --interval 10s --seed S
 *                --format lp|csv [--product readings|diagnostics] [--start 2016-01-01T00:00:00Z]
 *
 * The same interface as `meshctl generate trucks` (bench/run.sh prefers meshctl's generator
 * when it exists and falls back to this one). The row stream depends only on the options
 * other than --format and --product: the random draws are the same whatever is printed, so
 * the line protocol file and the two CSV files of one seed hold exactly the same rows.
 *
 * Model (/work/shared/reference/tsbs.md section 4.2): per truck the tags name, fleet, driver,
 * model, device_version, and by model the numeric tags load_capacity, fuel_capacity,
 * nominal_fuel_consumption (written as fields, as TSBS's InfluxDB serializer does). Every
 * interval each truck emits a `readings` row (latitude, longitude, elevation, velocity,
 * heading, grade, fuel_consumption: clamped random walks) and a `diagnostics` row (fuel_state,
 * current_load, status). Output is host-interleaved in time order, then TSBS's real-world
 * irregularities are applied per (truck, measurement) stream in batches of 10 entries:
 *   per batch: 1 % missing whole; 5 % held back (emitted later); when held-back batches
 *              exist, 50 % chance to emit the oldest one after this batch;
 *   per entry: 10 % missing; 30 % held back; 50 % chance to emit the oldest held-back entry;
 *              10 % one random field left out; 1 % one random string tag left out (which for
 *              `name` makes a row without a key: meshd quarantines it, the peers store it).
 * Held-back rows still queued at the end are emitted last. No (name, time) pair repeats.
 *
 * CSV: a header line of column names, RFC 3339 UTC times, an empty field for a missing value.
 * Line protocol: nanosecond timestamps, missing tags and fields left out.
 */
#define _DEFAULT_SOURCE /* timegm, gmtime_r */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { M_READINGS = 0, M_DIAGNOSTICS = 1, NMEAS = 2 };
enum { NTAGS = 5, MAXF = 7, BATCH = 10 };

static const char *const tag_names[NTAGS] = {"name", "fleet", "driver", "model", "device_version"};
static const char *const fleets[] = {"East", "West", "North", "South"};
static const char *const drivers[] = {"Derek", "Rodney", "Albert", "Andy", "Seth", "Trish"};
static const char *const models[] = {"F-150", "G-2000", "H-2"};
static const char *const versions[] = {"v1.0", "v1.5", "v2.0", "v2.3"};
static const int load_cap[] = {2000, 5000, 1500};
static const int fuel_cap[] = {200, 300, 150};
static const int nominal_fc[] = {15, 19, 12};

static const char *const meas_names[NMEAS] = {"readings", "diagnostics"};
static const int nfields[NMEAS] = {7, 3};
static const char *const field_names[NMEAS][MAXF] = {
    {"latitude", "longitude", "elevation", "velocity", "heading", "grade", "fuel_consumption"},
    {"fuel_state", "current_load", "status"}};
static const int field_prec[NMEAS][MAXF] = {{5, 5, 0, 0, 0, 0, 1}, {1, 0, 0}};

/* ---- random numbers: xoshiro256** seeded by splitmix64 ---- */

static uint64_t rng_s[4];

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
    uint64_t r = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;
    rng_s[2] ^= rng_s[0];
    rng_s[3] ^= rng_s[1];
    rng_s[1] ^= rng_s[2];
    rng_s[0] ^= rng_s[3];
    rng_s[2] ^= t;
    rng_s[3] = rotl(rng_s[3], 45);
    return r;
}

/* uniform in [0, 1) */
static double u01(void)
{
    return (double)(rng_next() >> 11) * 0x1.0p-53;
}

static double ud(double a, double b)
{
    return a + (b - a) * u01();
}

static int pick(int n)
{
    return (int)(u01() * n);
}

static double nd(void)
{
    double u1 = u01(), u2 = u01();
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

static double clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---- rows and the irregularity queues ---- */

typedef struct {
    int64_t t;       /* ns since 1970 */
    int truck;       /* index */
    int meas;        /* M_READINGS or M_DIAGNOSTICS */
    int blank_field; /* -1 or the field left out */
    int blank_tag;   /* -1 or the tag left out */
    double v[MAXF];  /* already rounded to the field's precision */
} row_t;

typedef struct {
    row_t *r;
    size_t head, n, cap; /* a FIFO: items r[head .. n) */
} fifo_t;

static void fifo_push(fifo_t *q, const row_t *row)
{
    if (q->n == q->cap) {
        if (q->head > 0) {
            memmove(q->r, q->r + q->head, (q->n - q->head) * sizeof *q->r);
            q->n -= q->head;
            q->head = 0;
        }
        if (q->n == q->cap) {
            q->cap = q->cap ? q->cap * 2 : 16;
            q->r = realloc(q->r, q->cap * sizeof *q->r);
            if (!q->r) {
                perror("gen_trucks: realloc");
                exit(1);
            }
        }
    }
    q->r[q->n++] = *row;
}

static int fifo_empty(const fifo_t *q)
{
    return q->head == q->n;
}

typedef struct {
    int pos;             /* entries of the current batch so far */
    int batch_missing;   /* current batch dropped whole */
    int batch_held;      /* current batch held back */
    fifo_t cur;          /* the current held-back batch */
    fifo_t held_entries; /* held-back single entries */
    fifo_t *held_batches;
    size_t nhb, hb_head, hb_cap;
} stream_t;

typedef struct {
    int fleet, driver, model, version;
    double lat, lon, elev, vel, heading, grade, fc; /* random-walk states */
    double fuel, load, status;
    stream_t s[NMEAS];
} truck_t;

/* ---- output ---- */

static int fmt_lp; /* 1: line protocol, 0: CSV */
static int only;   /* -1: every product, else the product printed */
static char tbuf[64];
static int64_t tbuf_t = INT64_MIN;

/* Writes v (already rounded to prec decimals) in its shortest exact decimal form. */
static void put_num(double v, int prec)
{
    static const double p10[] = {1, 10, 100, 1000, 10000, 100000};
    long long s = llround(v * p10[prec]);
    if (prec == 0) {
        printf("%lld", s);
        return;
    }
    int neg = s < 0;
    unsigned long long a = neg ? (unsigned long long)(-s) : (unsigned long long)s;
    unsigned long long ip = a / (unsigned long long)p10[prec];
    unsigned long long fp = a % (unsigned long long)p10[prec];
    if (fp == 0) {
        printf("%s%llu", neg ? "-" : "", ip);
        return;
    }
    char f[8];
    snprintf(f, sizeof f, "%0*llu", prec, fp);
    int n = prec;
    while (n > 0 && f[n - 1] == '0')
        n--;
    f[n] = 0;
    printf("%s%llu.%s", neg ? "-" : "", ip, f);
}

static const char *tag_value(const truck_t *tk, int idx, int tag, char *nb, size_t nbn)
{
    switch (tag) {
    case 0:
        snprintf(nb, nbn, "truck_%d", idx);
        return nb;
    case 1:
        return fleets[tk->fleet];
    case 2:
        return drivers[tk->driver];
    case 3:
        return models[tk->model];
    default:
        return versions[tk->version];
    }
}

static const char *csv_time(int64_t t)
{
    if (t == tbuf_t)
        return tbuf;
    time_t sec = (time_t)(t / 1000000000);
    long ns = (long)(t % 1000000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (ns)
        snprintf(tbuf + n, sizeof tbuf - n, ".%09ldZ", ns);
    else
        snprintf(tbuf + n, sizeof tbuf - n, "Z");
    tbuf_t = t;
    return tbuf;
}

static truck_t *trucks;

static void emit(const row_t *r)
{
    if (only >= 0 && r->meas != only)
        return;
    const truck_t *tk = &trucks[r->truck];
    char nb[32];
    int m = r->meas, mi = tk->model;
    if (fmt_lp) {
        fputs(meas_names[m], stdout);
        for (int g = 0; g < NTAGS; g++) {
            if (g == r->blank_tag)
                continue;
            printf(",%s=%s", tag_names[g], tag_value(tk, r->truck, g, nb, sizeof nb));
        }
        printf(" load_capacity=%d,fuel_capacity=%d,nominal_fuel_consumption=%d", load_cap[mi],
               fuel_cap[mi], nominal_fc[mi]);
        for (int f = 0; f < nfields[m]; f++) {
            if (f == r->blank_field)
                continue;
            printf(",%s=", field_names[m][f]);
            put_num(r->v[f], field_prec[m][f]);
            if (m == M_DIAGNOSTICS && f == 2)
                putchar('i'); /* status is an integer */
        }
        printf(" %" PRId64 "\n", r->t);
        return;
    }
    fputs(csv_time(r->t), stdout);
    for (int g = 0; g < NTAGS; g++) {
        putchar(',');
        if (g != r->blank_tag)
            fputs(tag_value(tk, r->truck, g, nb, sizeof nb), stdout);
    }
    printf(",%d,%d,%d", load_cap[mi], fuel_cap[mi], nominal_fc[mi]);
    for (int f = 0; f < nfields[m]; f++) {
        putchar(',');
        if (f != r->blank_field)
            put_num(r->v[f], field_prec[m][f]);
    }
    putchar('\n');
}

static void emit_oldest_batch(stream_t *s)
{
    fifo_t *b = &s->held_batches[s->hb_head++];
    for (size_t i = b->head; i < b->n; i++)
        emit(&b->r[i]);
    free(b->r);
}

/* One entry of one stream through TSBS's irregularities. */
static void feed(stream_t *s, row_t *r)
{
    if (s->pos == 0) {
        s->batch_missing = u01() < 0.01;
        s->batch_held = !s->batch_missing && u01() < 0.05;
    }
    /* the draws below happen whatever the batch's fate, so the stream stays the same */
    double p_missing = u01(), p_held = u01(), p_insert = u01(), p_field = u01(), p_tag = u01();
    int bf = pick(nfields[r->meas]), bt = pick(NTAGS);
    r->blank_field = p_field < 0.10 ? bf : -1;
    r->blank_tag = p_tag < 0.01 ? bt : -1;
    if (!s->batch_missing && p_missing >= 0.10) {
        if (s->batch_held)
            fifo_push(&s->cur, r);
        else if (p_held < 0.30)
            fifo_push(&s->held_entries, r);
        else
            emit(r);
    }
    if (p_insert < 0.5 && !fifo_empty(&s->held_entries))
        emit(&s->held_entries.r[s->held_entries.head++]);
    if (++s->pos < BATCH)
        return;
    s->pos = 0;
    double p_batch = u01();
    int had_held = s->nhb > s->hb_head;
    if (s->batch_held) {
        if (s->nhb == s->hb_cap) {
            s->hb_cap = s->hb_cap ? s->hb_cap * 2 : 8;
            s->held_batches = realloc(s->held_batches, s->hb_cap * sizeof *s->held_batches);
            if (!s->held_batches) {
                perror("gen_trucks: realloc");
                exit(1);
            }
        }
        s->held_batches[s->nhb++] = s->cur;
        memset(&s->cur, 0, sizeof s->cur);
    }
    if (had_held && p_batch < 0.5)
        emit_oldest_batch(s);
}

static void drain(stream_t *s)
{
    while (!fifo_empty(&s->held_entries))
        emit(&s->held_entries.r[s->held_entries.head++]);
    for (size_t i = s->cur.head; i < s->cur.n; i++)
        emit(&s->cur.r[i]);
    while (s->hb_head < s->nhb)
        emit_oldest_batch(s);
    free(s->cur.r);
    free(s->held_entries.r);
    free(s->held_batches);
}

/* ---- options ---- */

static int parse_duration(const char *s, int64_t *ns)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    double mult;
    if (!strcmp(end, "ns"))
        mult = 1;
    else if (!strcmp(end, "us"))
        mult = 1e3;
    else if (!strcmp(end, "ms"))
        mult = 1e6;
    else if (!strcmp(end, "s") || !*end)
        mult = 1e9;
    else if (!strcmp(end, "m"))
        mult = 60e9;
    else if (!strcmp(end, "h"))
        mult = 3600e9;
    else if (!strcmp(end, "d"))
        mult = 86400e9;
    else
        return -1;
    *ns = (int64_t)(v * mult);
    return 0;
}

static int parse_time(const char *s, int64_t *ns)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int y, mo, d, h, mi, sec;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ", &y, &mo, &d, &h, &mi, &sec) != 6)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *ns = (int64_t)timegm(&tm) * 1000000000;
    return 0;
}

static void usage(void)
{
    fputs("usage: gen_trucks [trucks] --scale N --duration D --interval D --seed S\n"
          "                  --format lp|csv [--product readings|diagnostics] [--start TIME]\n"
          "  defaults: --scale 100 --duration 6h --interval 10s --seed 1 --format lp\n"
          "            --start 2016-01-01T00:00:00Z; CSV needs --product\n",
          stderr);
}

int main(int argc, char **argv)
{
    long scale = 100;
    int64_t duration = 6 * 3600 * INT64_C(1000000000), interval = INT64_C(10000000000);
    int64_t start = INT64_C(1451606400000000000); /* 2016-01-01T00:00:00Z, as TSBS */
    unsigned long long seed = 1;
    fmt_lp = 1;
    only = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        if (i == 1 && !strcmp(a, "trucks"))
            continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        }
        if (!v) {
            usage();
            return 1;
        }
        i++;
        errno = 0;
        if (!strcmp(a, "--scale")) {
            scale = strtol(v, &end, 10);
            if (errno || *end || scale < 1 || scale > 10000000)
                goto bad;
        } else if (!strcmp(a, "--duration")) {
            if (parse_duration(v, &duration))
                goto bad;
        } else if (!strcmp(a, "--interval")) {
            if (parse_duration(v, &interval) || interval <= 0)
                goto bad;
        } else if (!strcmp(a, "--seed")) {
            seed = strtoull(v, &end, 10);
            if (errno || *end)
                goto bad;
        } else if (!strcmp(a, "--start")) {
            if (parse_time(v, &start))
                goto bad;
        } else if (!strcmp(a, "--format")) {
            if (!strcmp(v, "lp"))
                fmt_lp = 1;
            else if (!strcmp(v, "csv"))
                fmt_lp = 0;
            else
                goto bad;
        } else if (!strcmp(a, "--product")) {
            if (!strcmp(v, "readings"))
                only = M_READINGS;
            else if (!strcmp(v, "diagnostics"))
                only = M_DIAGNOSTICS;
            else
                goto bad;
        } else {
            fprintf(stderr, "gen_trucks: unknown option %s\n", a);
            usage();
            return 1;
        }
        continue;
    bad:
        fprintf(stderr, "gen_trucks: bad value for %s: %s\n", a, v);
        return 1;
    }
    if (!fmt_lp && only < 0) {
        fputs("gen_trucks: --format csv needs --product readings|diagnostics\n", stderr);
        return 1;
    }
    static char obuf[1 << 20];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);

    uint64_t sm = seed;
    for (int i = 0; i < 4; i++)
        rng_s[i] = splitmix64(&sm);
    trucks = calloc((size_t)scale, sizeof *trucks);
    if (!trucks) {
        perror("gen_trucks");
        return 1;
    }
    for (long i = 0; i < scale; i++) {
        truck_t *t = &trucks[i];
        t->fleet = pick(4);
        t->driver = pick(6);
        t->model = pick(3);
        t->version = pick(4);
        t->lat = ud(0, 90);
        t->lon = ud(0, 180);
        t->elev = ud(0, 500);
        t->vel = 0;
        t->heading = ud(0, 360);
        t->grade = 0;
        t->fc = 25;
        t->fuel = 1;
        t->load = ud(0, 5000);
        t->status = 0;
    }
    if (!fmt_lp) {
        fputs("time,name,fleet,driver,model,device_version,load_capacity,fuel_capacity,"
              "nominal_fuel_consumption",
              stdout);
        for (int f = 0; f < nfields[only]; f++)
            printf(",%s", field_names[only][f]);
        putchar('\n');
    }
    int64_t nticks = duration / interval;
    for (int64_t k = 0; k < nticks; k++) {
        int64_t ts = start + k * interval;
        for (long i = 0; i < scale; i++) {
            truck_t *t = &trucks[i];
            row_t r;
            t->lat = clamp(t->lat + ud(-0.005, 0.005), -90, 90);
            t->lon = clamp(t->lon + ud(-0.005, 0.005), -180, 180);
            t->elev = clamp(t->elev + ud(-10, 10), 0, 5000);
            t->vel = clamp(t->vel + ud(-10, 10), 0, 100);
            t->heading = clamp(t->heading + ud(-5, 5), 0, 360);
            t->grade = clamp(t->grade + ud(-5, 5), 0, 100);
            t->fc = clamp(t->fc + ud(-5, 5), 0, 50);
            t->fuel = clamp(t->fuel + ud(-0.001, 0), 0, 1);
            if (t->fuel <= 0)
                t->fuel = 1; /* refuel */
            if (u01() > 0.95)
                t->load = ud(0, 5000);
            t->status = clamp(t->status + nd(), 0, 5);

            r = (row_t){.t = ts, .truck = (int)i, .meas = M_READINGS};
            double rv[7] = {t->lat, t->lon, t->elev, t->vel, t->heading, t->grade, t->fc};
            for (int f = 0; f < 7; f++) {
                double p = pow(10, field_prec[M_READINGS][f]);
                r.v[f] = round(rv[f] * p) / p;
            }
            feed(&t->s[M_READINGS], &r);

            r = (row_t){.t = ts, .truck = (int)i, .meas = M_DIAGNOSTICS};
            r.v[0] = round(t->fuel * 10) / 10;
            r.v[1] = round(t->load);
            r.v[2] = round(t->status);
            feed(&t->s[M_DIAGNOSTICS], &r);
        }
    }
    for (long i = 0; i < scale; i++)
        for (int m = 0; m < NMEAS; m++)
            drain(&trucks[i].s[m]);
    free(trucks);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        perror("gen_trucks: stdout");
        return 8;
    }
    return 0;
}
