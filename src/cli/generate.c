/*
 * generate.c - `meshctl generate`: synthetic data for the example scenarios and the benchmarks.
 *
 * Design
 *   - A scenario is a simulation stepped over ticks t = start + k * interval (k from 0 while
 *     t < start + duration); at each tick it emits one row per device into the writer.
 *   - Deterministic: every random number comes from xoshiro256** streams seeded by splitmix64
 *     from (--seed, stream id). Each device (machine sensor, room, patient, truck) has its own
 *     stream, so a device's values do not depend on how many other devices there are, and
 *     the injected events (--anomaly, --desaturate) transform values without drawing numbers:
 *     the output with an event differs from the output without it only in the rows of the
 *     device named, from the event's start on (a machine's extra heat fades after its anomaly;
 *     a desaturation changes nothing after it ends).
 *   - Output goes through one writer (out_t) that formats line protocol or CSV from a static
 *     column table per product, into a 64 KiB block buffer written with fwrite; numbers are
 *     formatted by hand (no printf on the hot path), so millions of lines take seconds.
 *   - The trucks scenario follows the TSBS iot use case (github.com/timescale/tsbs,
 *     pkg/data/usecases/iot): the same tags, distributions, emission order and batch
 *     irregularities (missing, late and partial entries). Byte equality with TSBS would need
 *     Go's math/rand, which we do not reproduce. One deliberate difference: TSBS can emit a
 *     few points past the end time while it skips missing entries; we stop at the end.
 *
 * The local time of the home scenario's day curve is UTC.
 */
#include "cli/generate.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "core/util.h"

/* ---- random numbers --------------------------------------------------------------------- */

/* xoshiro256** (Blackman and Vigna), seeded through splitmix64; plus a cached normal. */
typedef struct rng {
    uint64_t s[4];
    double spare; /* second normal of the last polar pair */
    bool has_spare;
} rng_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Stream ids: a kind in the high bits, an index below. */
enum {
    ST_MACHINE = 1,
    ST_SENSOR,
    ST_LINE,
    ST_ROOM,
    ST_HOUSE,
    ST_PATIENT,
    ST_GLITCH,
    ST_TRUCK,
    ST_BATCH,
};
#define STREAM(kind, i) (((uint64_t)(kind) << 40) | (uint64_t)(i))

static void rng_seed(rng_t *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed;
    uint64_t k = splitmix64(&x) ^ stream;
    x = k;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    r->has_spare = false;
    r->spare = 0;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static inline double rng_unit(rng_t *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [lo, hi). */
static inline double rng_range(rng_t *r, double lo, double hi)
{
    return lo + rng_unit(r) * (hi - lo);
}

/* Uniform integer in [0, n), n > 0. */
static inline uint32_t rng_below(rng_t *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Standard normal (Marsaglia's polar method). */
static double rng_normal(rng_t *r)
{
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    double u, v, s;
    do {
        u = rng_unit(r) * 2 - 1;
        v = rng_unit(r) * 2 - 1;
        s = u * u + v * v;
    } while (s >= 1 || s == 0);
    double m = sqrt(-2 * log(s) / s);
    r->spare = v * m;
    r->has_spare = true;
    return u * m;
}

static inline double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* One step of an Ornstein-Uhlenbeck process: x reverts to mu with time constant tau_s and has
 * the stationary standard deviation sd; dt_s is the step. */
static double ou_step(rng_t *r, double x, double mu, double sd, double tau_s, double dt_s)
{
    double a = exp(-dt_s / tau_s);
    return mu + (x - mu) * a + sd * sqrt(1 - a * a) * rng_normal(r);
}

/* ---- products: the column tables the writer formats from --------------------------------- */

typedef enum {
    C_TAG,  /* line protocol tag (text) */
    C_TIME, /* the time column: the line protocol timestamp */
    C_INT,  /* integer field (12i) */
    C_NUM,  /* float field */
    C_STR,  /* string field ("text"); also dates */
    C_BOOL, /* boolean field */
} ckind_t;

typedef struct col {
    const char *name;
    ckind_t kind;
} col_t;

/* The writer emits columns in table order: a CSV row (and its header) as they stand, a line
 * protocol line with the time column moved to the end. Tags therefore come before every field
 * (the time column may stand anywhere); the test checks it. */
typedef struct prod {
    const char *name;
    const col_t *cols;
    size_t ncols;
} prod_t;

#define PROD(name, cols)                                                                           \
    {                                                                                              \
        name, cols, MESH_ARRAY_LEN(cols)                                                           \
    }

static const col_t telemetry_cols[] = {
    {"site", C_TAG}, {"line", C_TAG},        {"machine", C_TAG},       {"sensor", C_TAG},
    {"ts", C_TIME},  {"temperature", C_NUM}, {"vibration_rms", C_NUM}, {"pressure", C_NUM},
    {"rpm", C_INT},  {"power_kw", C_NUM},    {"status", C_STR},
};
static const col_t machines_cols[] = {
    {"site", C_TAG},           {"line", C_TAG},        {"machine", C_TAG},   {"model", C_STR},
    {"vendor", C_STR},         {"kind", C_STR},        {"installed", C_STR}, {"criticality", C_STR},
    {"rated_power_kw", C_NUM}, {"nominal_rpm", C_INT}, {"serial_no", C_STR},
};
static const col_t production_cols[] = {
    {"site", C_TAG}, {"line", C_TAG}, {"ts", C_TIME}, {"good", C_INT}, {"scrap", C_INT},
};
static const col_t climate_cols[] = {
    {"room", C_TAG}, {"ts", C_TIME},      {"temperature", C_NUM}, {"humidity", C_NUM},
    {"co2", C_INT},  {"setpoint", C_NUM}, {"heating", C_BOOL},
};
static const col_t energy_cols[] = {
    {"meter", C_TAG}, {"ts", C_TIME}, {"power_w", C_NUM}, {"energy_kwh", C_NUM}, {"voltage", C_NUM},
};
static const col_t vitals_cols[] = {
    {"patient_id", C_TAG}, {"bed", C_TAG},       {"ts", C_TIME},
    {"heart_rate", C_INT}, {"spo2", C_INT},      {"resp_rate", C_INT},
    {"systolic", C_INT},   {"diastolic", C_INT}, {"temperature", C_NUM},
};
static const col_t admissions_cols[] = {
    {"patient_id", C_TAG}, {"ward", C_TAG},           {"bed", C_TAG},
    {"admitted", C_TIME},  {"name", C_STR},           {"date_of_birth", C_STR},
    {"sex", C_STR},        {"diagnosis_code", C_STR}, {"diagnosis", C_STR},
};
/* TSBS: 5 text tags, then the 3 numeric tags its InfluxDB serializer writes as fields. The
 * CSV starts with time, as the benchmark's loaders (bench/) and TSBS's own CSV formats expect. */
static const col_t readings_cols[] = {
    {"time", C_TIME},
    {"name", C_TAG},
    {"fleet", C_TAG},
    {"driver", C_TAG},
    {"model", C_TAG},
    {"device_version", C_TAG},
    {"load_capacity", C_NUM},
    {"fuel_capacity", C_NUM},
    {"nominal_fuel_consumption", C_NUM},
    {"latitude", C_NUM},
    {"longitude", C_NUM},
    {"elevation", C_NUM},
    {"velocity", C_NUM},
    {"heading", C_NUM},
    {"grade", C_NUM},
    {"fuel_consumption", C_NUM},
};
static const col_t diagnostics_cols[] = {
    {"time", C_TIME},         {"name", C_TAG},          {"fleet", C_TAG},
    {"driver", C_TAG},        {"model", C_TAG},         {"device_version", C_TAG},
    {"load_capacity", C_NUM}, {"fuel_capacity", C_NUM}, {"nominal_fuel_consumption", C_NUM},
    {"fuel_state", C_NUM},    {"current_load", C_NUM},  {"status", C_INT},
};

static const prod_t factory_prods[] = {PROD("telemetry", telemetry_cols),
                                       PROD("machines", machines_cols),
                                       PROD("production_counts", production_cols)};
static const prod_t home_prods[] = {PROD("climate", climate_cols), PROD("energy", energy_cols)};
static const prod_t health_prods[] = {PROD("vitals", vitals_cols),
                                      PROD("admissions", admissions_cols)};
static const prod_t trucks_prods[] = {PROD("readings", readings_cols),
                                      PROD("diagnostics", diagnostics_cols)};

enum { P_TELEMETRY = 0, P_MACHINES, P_PRODUCTION };
enum { P_CLIMATE = 0, P_ENERGY };
enum { P_VITALS = 0, P_ADMISSIONS };
enum { P_READINGS = 0, P_DIAGNOSTICS };

/* ---- the writer ------------------------------------------------------------------------- */

#define OUT_BLOCK   (64 * 1024) /* bytes handed to fwrite at a time */
#define OUT_ROW_MAX 4096        /* bound on one formatted row (ours are < 1 KiB) */

typedef enum { FMT_LP = 0, FMT_CSV } format_t;

typedef struct out {
    FILE *f;
    format_t format;
    uint32_t mask;       /* bit i: write product i of the scenario */
    const prod_t *prods; /* the scenario's products */
    char *buf;           /* OUT_BLOCK + OUT_ROW_MAX bytes */
    size_t len;
    int err; /* errno of the first failed write; then nothing more is written */
    /* the row being formatted */
    const prod_t *p;
    bool has_time;    /* p has a time column */
    size_t col;       /* next column of p */
    size_t row_start; /* offset of the row in buf */
    int64_t ts;       /* its time (ns) */
    bool any_field;   /* line protocol: a field was written */
    /* CSV: the text of the last timestamp formatted */
    int64_t ts_cached;
    bool ts_valid;
    char ts_txt[MESH_TIME_MAX];
    size_t ts_len;
} out_t;

static void out_flush_block(out_t *o, size_t n)
{
    errno = 0;
    if (o->err == 0 && n > 0 && fwrite(o->buf, 1, n, o->f) != n)
        o->err = errno ? errno : EIO;
    memmove(o->buf, o->buf + n, o->len - n);
    o->len -= n;
}

static inline void put(out_t *o, const char *s, size_t n)
{
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static inline void putc_(out_t *o, char c)
{
    o->buf[o->len++] = c;
}

static inline void puts_(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_u64(out_t *o, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, tmp + i, sizeof tmp - i);
}

static void put_i64(out_t *o, int64_t v)
{
    if (v < 0) {
        putc_(o, '-');
        put_u64(o, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(o, (uint64_t)v);
    }
}

static const double pow10_tab[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};

/* v rounded to dec decimals (0..9), without trailing zeros: 21.5, 0.9, 1500, -0.00012. This
 * is also the shortest text of a value that is already truncated to dec decimals (TSBS's
 * FP), so trucks print as TSBS prints them. */
static void put_fixed(out_t *o, double v, int dec)
{
    double scaled = v * pow10_tab[dec];
    if (!(fabs(scaled) < 9e15)) { /* huge or not finite: never in our data, but stay correct */
        char tmp[40];
        int w = snprintf(tmp, sizeof tmp, "%.17g", v);
        put(o, tmp, w > 0 ? (size_t)w : 0);
        return;
    }
    int64_t k = llround(scaled);
    if (k < 0) {
        putc_(o, '-');
        k = -k;
    }
    uint64_t ip = (uint64_t)k / (uint64_t)pow10_tab[dec];
    uint64_t fp = (uint64_t)k % (uint64_t)pow10_tab[dec];
    put_u64(o, ip);
    if (fp == 0)
        return;
    int digits = dec;
    while (fp % 10 == 0) {
        fp /= 10;
        digits--;
    }
    char tmp[12];
    for (int i = digits - 1; i >= 0; i--) {
        tmp[i] = (char)('0' + fp % 10);
        fp /= 10;
    }
    putc_(o, '.');
    put(o, tmp, (size_t)digits);
}

static void put_ts_text(out_t *o, int64_t ns)
{
    if (!o->ts_valid || o->ts_cached != ns) {
        o->ts_len = mesh_time_format(ns, o->ts_txt);
        o->ts_cached = ns;
        o->ts_valid = true;
    }
    put(o, o->ts_txt, o->ts_len);
}

static void out_init(out_t *o, FILE *f, format_t format, uint32_t mask, const prod_t *prods)
{
    memset(o, 0, sizeof *o);
    o->f = f;
    o->format = format;
    o->mask = mask;
    o->prods = prods;
}

/* CSV: the header line of product pi. */
static void out_header(out_t *o, int pi)
{
    const prod_t *p = &o->prods[pi];
    for (size_t i = 0; i < p->ncols; i++) {
        if (i)
            putc_(o, ',');
        puts_(o, p->cols[i].name);
    }
    putc_(o, '\n');
}

/* Starts a row of product pi at time ts (ignored for a product without a time column).
 * Returns false when the product is not being written: the caller skips the row. */
static bool row_begin(out_t *o, int pi, int64_t ts)
{
    if (!(o->mask & (1u << pi)))
        return false;
    o->p = &o->prods[pi];
    o->has_time = false;
    for (size_t i = 0; i < o->p->ncols; i++)
        o->has_time |= o->p->cols[i].kind == C_TIME;
    o->col = 0;
    o->ts = ts;
    o->any_field = false;
    o->row_start = o->len;
    if (o->format == FMT_LP)
        puts_(o, o->p->name);
    return true;
}

/* Moves to the next column, writing the time column when it comes first, and the separator
 * and key of the next one. Returns it, or NULL when it is null in line protocol (omitted). */
static const col_t *col_open(out_t *o, bool null)
{
    const prod_t *p = o->p;
    if (p->cols[o->col].kind == C_TIME) {
        if (o->format == FMT_CSV) {
            if (o->col)
                putc_(o, ',');
            put_ts_text(o, o->ts);
        }
        o->col++;
    }
    const col_t *c = &p->cols[o->col];
    if (o->format == FMT_CSV) {
        if (o->col)
            putc_(o, ',');
        o->col++;
        return c;
    }
    o->col++;
    if (null)
        return NULL;
    if (c->kind == C_TAG) {
        putc_(o, ',');
    } else {
        putc_(o, o->any_field ? ',' : ' ');
        o->any_field = true;
    }
    puts_(o, c->name);
    putc_(o, '=');
    return c;
}

/* Text: a tag, a string field or a date. */
static void v_str(out_t *o, const char *s)
{
    const col_t *c = col_open(o, false);
    size_t n = strlen(s);
    if (o->format == FMT_CSV) {
        if (strpbrk(s, ",\"\r\n") == NULL) {
            put(o, s, n);
            return;
        }
        putc_(o, '"');
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '"')
                putc_(o, '"');
            putc_(o, s[i]);
        }
        putc_(o, '"');
        return;
    }
    if (c->kind == C_TAG) {
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ',' || s[i] == '=' || s[i] == ' ')
                putc_(o, '\\');
            putc_(o, s[i]);
        }
        return;
    }
    putc_(o, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            putc_(o, '\\');
        putc_(o, s[i]);
    }
    putc_(o, '"');
}

static void v_int(out_t *o, int64_t v)
{
    col_open(o, false);
    put_i64(o, v);
    if (o->format == FMT_LP)
        putc_(o, 'i');
}

static void v_num(out_t *o, double v, int dec)
{
    col_open(o, false);
    put_fixed(o, v, dec);
}

static void v_bool(out_t *o, bool v)
{
    col_open(o, false);
    puts_(o, v ? "true" : "false");
}

/* No value: omitted in line protocol, an empty field (NULL) in CSV. */
static void v_null(out_t *o)
{
    col_open(o, true);
}

static void row_end(out_t *o)
{
    const prod_t *p = o->p;
    if (o->format == FMT_CSV) {
        if (o->col < p->ncols && p->cols[o->col].kind == C_TIME) { /* time is the last column */
            if (o->col)
                putc_(o, ',');
            put_ts_text(o, o->ts);
        }
    } else {
        if (!o->any_field) { /* a line without fields is not line protocol: drop it */
            o->len = o->row_start;
            return;
        }
        if (o->has_time) {
            putc_(o, ' ');
            put_i64(o, o->ts);
        }
    }
    putc_(o, '\n');
    /* our rows are short (the longest is an admission, < 400 bytes): room for the next one */
    assert(o->len - o->row_start < OUT_ROW_MAX);
    if (o->len >= OUT_BLOCK)
        out_flush_block(o, OUT_BLOCK);
}

static void out_finish(out_t *o)
{
    out_flush_block(o, o->len);
    errno = 0;
    if (o->err == 0 && fflush(o->f) != 0)
        o->err = errno ? errno : EIO;
}

/* ---- options ---------------------------------------------------------------------------- */

#define MAX_EVENTS    32
#define MESH_TIME_END INT64_C(9214646400000000000) /* 2262-01-01: the end of int64 ns */

typedef struct event {
    char who[16];   /* machine or patient id */
    int index;      /* its 0-based index */
    int64_t at_ns;  /* start */
    int64_t dur_ns; /* length */
} event_t;

typedef enum { SC_FACTORY = 0, SC_HOME, SC_HEALTH, SC_TRUCKS } scenario_id_t;

typedef struct gen_opts {
    scenario_id_t scenario;
    uint64_t seed;
    int64_t start_ns;
    int64_t duration_ns;
    int64_t interval_ns;
    format_t format;
    const char *product; /* NULL: the scenario's default products */
    bool all;
    uint32_t machines, sensors, rooms, patients, scale;
    double glitch_rate; /* health: fraction of readings glitched */
    bool regular;       /* trucks: no TSBS irregularities */
    event_t anomalies[MAX_EVENTS];
    size_t nanomalies;
    event_t desats[MAX_EVENTS];
    size_t ndesats;
} gen_opts_t;

typedef struct gen {
    const gen_opts_t *opt;
    out_t *o;
    int64_t epochs; /* ticks */
} gen_t;

static int run_factory(gen_t *g);
static int run_home(gen_t *g);
static int run_health(gen_t *g);
static int run_trucks(gen_t *g);

typedef struct scenario {
    const char *name;
    const char *alias; /* another accepted name, or NULL */
    const char *domain;
    const prod_t *prods;
    size_t nprods;
    uint32_t default_mask; /* products written without --product / --all */
    int64_t interval_ns;   /* default --interval */
    int (*run)(gen_t *g);
} scenario_t;

static const scenario_t scenarios[] = {
    {"factory", NULL, "factory-a", factory_prods, MESH_ARRAY_LEN(factory_prods), 1u << P_TELEMETRY,
     MESH_NS_PER_SEC, run_factory},
    {"home", NULL, "home-42", home_prods, MESH_ARRAY_LEN(home_prods),
     (1u << P_CLIMATE) | (1u << P_ENERGY), 10 * MESH_NS_PER_SEC, run_home},
    {"health", "healthcare", "icu-3", health_prods, MESH_ARRAY_LEN(health_prods), 1u << P_VITALS,
     MESH_NS_PER_SEC, run_health},
    {"trucks", "iot", "fleet", trucks_prods, MESH_ARRAY_LEN(trucks_prods),
     (1u << P_READINGS) | (1u << P_DIAGNOSTICS), 10 * MESH_NS_PER_SEC, run_trucks},
};

/* Exit code of a usage error: MESH_INVALID's, as for every other meshctl command (the
 * global contract of `meshctl --help`: 2 = invalid input). */
#define GEN_EXIT_USAGE mesh_status_exit(MESH_INVALID)

static const char help_head[] =
    "Usage: meshctl generate SCENARIO [OPTIONS] > FILE\n"
    "\n"
    "Writes realistic synthetic data of an example scenario to stdout, as InfluxDB\n"
    "line protocol (measurement = product; load it with POST /write?db=DOMAIN) or as\n"
    "CSV for one product (POST /v1/products/DOMAIN/PRODUCT/rows, Content-Type\n"
    "text/csv). The contracts are in examples/<scenario>/*.odcs.yaml. The output\n"
    "depends only on the options: the same --seed gives the same bytes.\n"
    "\n"
    "Scenarios (domain: products; * = written by default):\n"
    "  factory  factory-a: telemetry*, machines, production_counts\n"
    "           Machine telemetry of Plant A: 50 machines x 20 sensor nodes, a row\n"
    "           per sensor per second (temperature drifting with load, vibration\n"
    "           with noise, warn/fail episodes). Machines M001, M002, ... stand on\n"
    "           lines L01, L02, ... (10 a line). machines rows come once at the\n"
    "           start (no timestamp), production_counts per line per minute.\n"
    "  home     home-42: climate*, energy*\n"
    "           A home's thermostats (living, kitchen, bedroom, kids, bathroom,\n"
    "           office, then guest rooms and halls) heating on a day schedule, CO2\n"
    "           from occupancy, and the electricity meter, every 10 s (local time\n"
    "           is UTC).\n"
    "  health   icu-3: vitals*, admissions (also: healthcare)\n"
    "           Bedside vitals of ICU patients P000001, P000002, ... (beds ICU3-01,\n"
    "           ...) every second; about 0.1 % of the readings are monitor glitches\n"
    "           that the contract's ranges send to quarantine. admissions: a row\n"
    "           per patient at its admission time.\n"
    "  trucks   fleet: readings*, diagnostics* (also: iot)\n"
    "           The TSBS iot use case: trucks truck_0, truck_1, ... report readings\n"
    "           and diagnostics every 10 s, with TSBS's missing, late and partial\n"
    "           rows.\n";

static const char help_tail[] =
    "\n"
    "Examples:\n"
    "  meshctl generate factory --duration 10m --anomaly M007@+5m > factory.lp\n"
    "  curl --cacert DATA_DIR/tls/cert.pem -H \"Authorization: Bearer $TOKEN\" \\\n"
    "       --data-binary @factory.lp \"https://127.0.0.1:7070/write?db=factory-a\"\n"
    "  meshctl generate factory --all --machines 5 --sensors 4 --duration 1h\n"
    "  meshctl generate home --rooms 8 --duration 1d --format csv --product energy\n"
    "  meshctl generate health --patients 12 --desaturate P000003@+20m/90s\n"
    "  meshctl generate trucks --scale 4000 --duration 24h | gzip > trucks.lp.gz\n"
    "\n"
    "\n"
    "Exit codes:\n"
    "  0  the data was written\n"
    "  2  a usage error (an unknown scenario, option or value)\n"
    "  8  stdout could not be written, or out of memory\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("meshctl generate: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry 'meshctl generate --help'.\n", stderr);
    va_end(ap);
    return GEN_EXIT_USAGE;
}

static const scenario_t *scenario_find(const char *name)
{
    for (size_t i = 0; i < MESH_ARRAY_LEN(scenarios); i++)
        if (strcmp(scenarios[i].name, name) == 0 ||
            (scenarios[i].alias && strcmp(scenarios[i].alias, name) == 0))
            return &scenarios[i];
    return NULL;
}

/* Parses a count in [lo, hi]. */
static bool parse_count(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    uint64_t v;
    if (mesh_parse_u64(s, strlen(s), &v) != MESH_OK || v < lo || v > hi)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* "WHO@TIME[/DURATION]": TIME is RFC 3339 or "+D" after the start. */
static bool parse_event(const char *s, int64_t start_ns, event_t *ev, const char **why)
{
    const char *at = strchr(s, '@');
    if (at == NULL || at == s || (size_t)(at - s) >= sizeof ev->who) {
        *why = "expected ID@TIME[/DURATION]";
        return false;
    }
    memcpy(ev->who, s, (size_t)(at - s));
    ev->who[at - s] = '\0';
    const char *t = at + 1;
    const char *slash = strchr(t, '/');
    size_t tn = slash ? (size_t)(slash - t) : strlen(t);
    ev->dur_ns = 60 * MESH_NS_PER_SEC;
    if (slash != NULL &&
        (mesh_duration_parse(slash + 1, &ev->dur_ns) != MESH_OK || ev->dur_ns <= 0)) {
        *why = "the duration after '/' is not a positive duration (e.g. 90s)";
        return false;
    }
    if (tn > 0 && t[0] == '+') {
        char tmp[64];
        int64_t off;
        if (tn >= sizeof tmp) {
            *why = "the offset is too long";
            return false;
        }
        memcpy(tmp, t + 1, tn - 1);
        tmp[tn - 1] = '\0';
        if (mesh_duration_parse(tmp, &off) != MESH_OK) {
            *why = "the offset after '+' is not a duration (e.g. +10m)";
            return false;
        }
        if (off > MESH_TIME_END - start_ns) {
            *why = "the offset is too large";
            return false;
        }
        ev->at_ns = start_ns + off;
        return true;
    }
    if (mesh_time_parse(t, tn, &ev->at_ns) != MESH_OK) {
        *why = "the time is not RFC 3339 (e.g. 2026-01-01T00:10:00Z) or +DURATION";
        return false;
    }
    return true;
}

typedef enum { OPT_ANY, OPT_FACTORY, OPT_HOME, OPT_HEALTH, OPT_TRUCKS } opt_scope_t;

/* The options: one table drives parsing and --help (which wraps the help texts). */
typedef struct optdef {
    const char *name;
    const char *metavar; /* NULL: a flag without a value */
    opt_scope_t scope;   /* the scenario it applies to */
    const char *help;
} optdef_t;

static const optdef_t optdefs[] = {
    {"--seed", "N", OPT_ANY, "Seed of the random streams (default 1)."},
    {"--start", "TIME", OPT_ANY, "First timestamp, RFC 3339 (default 2026-01-01T00:00:00Z)."},
    {"--duration", "D", OPT_ANY,
     "Time span to generate: 90s, 15m, 1h, 7d, 1h30m (default 1h). Rows fall on start + k * "
     "interval before start + duration."},
    {"--interval", "D", OPT_ANY,
     "Time between readings (default: factory 1s, home 10s, health 1s, trucks 10s; at least 1ms)."},
    {"--format", "lp|csv", OPT_ANY,
     "Line protocol (default), or CSV with a header line for one product."},
    {"--product", "NAME", OPT_ANY,
     "Write only this product (with CSV: default the scenario's first)."},
    {"--all", NULL, OPT_ANY, "Write every product of the scenario (line protocol)."},
    {"--machines", "N", OPT_FACTORY, "Machines (default 50, at most 9999)."},
    {"--sensors", "N", OPT_FACTORY, "Sensor nodes per machine (default 20, at most 99)."},
    {"--anomaly", "M@TIME[/D]", OPT_FACTORY,
     "Vibration spike on machine M (e.g. M007) from TIME for D (default 60s): 14-26 mm/s, status "
     "fail, rising temperature. TIME is RFC 3339 or +D after --start. Repeatable."},
    {"--rooms", "N", OPT_HOME, "Rooms with a thermostat (default 6, at most 64)."},
    {"--patients", "N", OPT_HEALTH, "Patients, one per bed (default 20, at most 99)."},
    {"--desaturate", "P@TIME[/D]", OPT_HEALTH,
     "SpO2 of patient P (e.g. P000003) below 90 % from TIME for D (default 60s), with rising heart "
     "and respiratory rates. Repeatable."},
    {"--glitch-rate", "F", OPT_HEALTH,
     "Fraction of readings that are monitor glitches (heart_rate 0 or 400, spo2 0, systolic 300): "
     "default 0.001; 0 for none."},
    {"--scale", "N", OPT_TRUCKS, "Trucks (default 100, at most 1000000)."},
    {"--regular", NULL, OPT_TRUCKS,
     "Leave out TSBS's irregularities: every truck reports at every interval, in order, with every "
     "tag and field."},
};

static const char *const scope_names[] = {"", "factory", "home", "health", "trucks"};

/* Writes text wrapped at width columns, every line but the first indented by indent. */
static void print_wrapped(FILE *f, const char *text, int indent, int width)
{
    int col = indent;
    bool first = true;
    while (*text) {
        size_t n = strcspn(text, " ");
        if (!first && col + 1 + (int)n > width) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
            first = true;
        }
        fprintf(f, "%s%.*s", first ? "" : " ", (int)n, text);
        col += (int)n + !first;
        first = false;
        text += n;
        while (*text == ' ')
            text++;
    }
    fputc('\n', f);
}

/* Writes --help: the text around the options, the options from optdefs. */
static void print_help(FILE *f)
{
    fputs(help_head, f);
    for (int scope = OPT_ANY; scope <= OPT_TRUCKS; scope++) {
        if (scope == OPT_ANY)
            fputs("\nOptions:\n  -h, --help            Show this help.\n", f);
        else
            fprintf(f, "\nOptions of %s:\n", scope_names[scope]);
        for (size_t i = 0; i < MESH_ARRAY_LEN(optdefs); i++) {
            const optdef_t *d = &optdefs[i];
            if ((int)d->scope != scope)
                continue;
            char head[40];
            snprintf(head, sizeof head, "%s%s%s", d->name, d->metavar ? " " : "",
                     d->metavar ? d->metavar : "");
            fprintf(f, "  %-22s", head);
            if (strlen(head) > 21)
                fprintf(f, "\n  %-22s", "");
            print_wrapped(f, d->help, 24, 80);
        }
    }
    fputs(help_tail, f);
}

/* Parses argv (from index first) into opt. Returns -1 when all is well, else the exit code
 * (0 after --help, which is written to help). Raw event texts are resolved later, once --start and
 * sizes are known. */
static int parse_args(int argc, char **argv, int first, gen_opts_t *opt, const char **anom_txt,
                      const char **desat_txt, FILE *help)
{
    const scenario_t *sc = NULL;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0 || strcmp(a, "help") == 0) {
            print_help(help);
            return 0;
        }
        if (a[0] != '-') {
            if (sc != NULL)
                return usage_error("unexpected argument '%s' (the scenario is %s)", a, sc->name);
            if ((sc = scenario_find(a)) == NULL)
                return usage_error("unknown scenario '%s'; expected factory, home, health or "
                                   "trucks",
                                   a);
            opt->scenario = (scenario_id_t)(sc - scenarios);
            continue;
        }
        /* --name=value or --name value */
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const optdef_t *d = NULL;
        for (size_t k = 0; k < MESH_ARRAY_LEN(optdefs); k++)
            if (strlen(optdefs[k].name) == nlen && strncmp(optdefs[k].name, a, nlen) == 0)
                d = &optdefs[k];
        if (d == NULL)
            return usage_error("unknown option '%.*s'", (int)nlen, a);
        const char *val = NULL;
        if (d->metavar != NULL) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return usage_error("%s needs a value", d->name);
        } else if (eq) {
            return usage_error("%s takes no value", d->name);
        }
        if (d->scope != OPT_ANY) {
            if (sc == NULL)
                return usage_error("name the scenario before %s", d->name);
            if ((int)d->scope != (int)opt->scenario + 1)
                return usage_error("%s applies to the %s scenario, not %s", d->name,
                                   scope_names[d->scope], sc->name);
        }
        const char *n = d->name;
        uint64_t u;
        if (strcmp(n, "--seed") == 0) {
            if (mesh_parse_u64(val, strlen(val), &u) != MESH_OK)
                return usage_error("--seed needs an unsigned integer, not '%s'", val);
            opt->seed = u;
        } else if (strcmp(n, "--start") == 0) {
            if (mesh_time_parse(val, strlen(val), &opt->start_ns) != MESH_OK)
                return usage_error("--start needs an RFC 3339 time (2026-01-01T00:00:00Z), not "
                                   "'%s'",
                                   val);
        } else if (strcmp(n, "--duration") == 0) {
            if (mesh_duration_parse(val, &opt->duration_ns) != MESH_OK || opt->duration_ns < 0)
                return usage_error("--duration needs a duration (90s, 15m, 1h, 7d), not '%s'", val);
        } else if (strcmp(n, "--interval") == 0) {
            if (mesh_duration_parse(val, &opt->interval_ns) != MESH_OK ||
                opt->interval_ns < MESH_NS_PER_SEC / 1000)
                return usage_error("--interval needs a duration of at least 1ms, not '%s'", val);
        } else if (strcmp(n, "--format") == 0) {
            if (strcmp(val, "lp") == 0 || strcmp(val, "line") == 0)
                opt->format = FMT_LP;
            else if (strcmp(val, "csv") == 0)
                opt->format = FMT_CSV;
            else
                return usage_error("--format is lp or csv, not '%s'", val);
        } else if (strcmp(n, "--product") == 0) {
            opt->product = val;
        } else if (strcmp(n, "--all") == 0) {
            opt->all = true;
        } else if (strcmp(n, "--machines") == 0) {
            if (!parse_count(val, 1, 9999, &opt->machines))
                return usage_error("--machines is 1..9999, not '%s'", val);
        } else if (strcmp(n, "--sensors") == 0) {
            if (!parse_count(val, 1, 99, &opt->sensors))
                return usage_error("--sensors (per machine) is 1..99, not '%s'", val);
        } else if (strcmp(n, "--rooms") == 0) {
            if (!parse_count(val, 1, 64, &opt->rooms))
                return usage_error("--rooms is 1..64, not '%s'", val);
        } else if (strcmp(n, "--patients") == 0) {
            if (!parse_count(val, 1, 99, &opt->patients))
                return usage_error("--patients is 1..99, not '%s'", val);
        } else if (strcmp(n, "--scale") == 0) {
            if (!parse_count(val, 1, 1000000, &opt->scale))
                return usage_error("--scale is 1..1000000 trucks, not '%s'", val);
        } else if (strcmp(n, "--glitch-rate") == 0) {
            double f;
            if (mesh_parse_f64(val, strlen(val), &f) != MESH_OK || !(f >= 0 && f <= 1))
                return usage_error("--glitch-rate is a fraction 0..1, not '%s'", val);
            opt->glitch_rate = f;
        } else if (strcmp(n, "--regular") == 0) {
            opt->regular = true;
        } else if (strcmp(n, "--anomaly") == 0 || strcmp(n, "--desaturate") == 0) {
            bool an = n[2] == 'a';
            size_t *cnt = an ? &opt->nanomalies : &opt->ndesats;
            if (*cnt >= MAX_EVENTS)
                return usage_error("at most %d %s options", MAX_EVENTS, n);
            (an ? anom_txt : desat_txt)[(*cnt)++] = val;
        }
    }
    if (sc == NULL)
        return usage_error("name a scenario: factory, home, health or trucks");
    return -1;
}

/* Resolves --anomaly / --desaturate texts (after --start is known) against the devices. */
static int resolve_events(gen_opts_t *opt, const char *const *txt, event_t *evs, size_t n,
                          const char *optname, const char *noun, char prefix, int width, int base,
                          uint32_t count)
{
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        if (!parse_event(txt[i], opt->start_ns, &evs[i], &why))
            return usage_error("%s '%s': %s", optname, txt[i], why);
        int idx = -1;
        char name[24];
        for (uint32_t k = 0; k < count && idx < 0; k++) {
            snprintf(name, sizeof name, "%c%0*d", prefix, width, base + (int)k);
            if (strcmp(name, evs[i].who) == 0)
                idx = (int)k;
        }
        if (idx < 0)
            return usage_error("%s '%s': no %s '%s' among the %u generated", optname, txt[i], noun,
                               evs[i].who, count);
        evs[i].index = idx;
        int64_t end = opt->start_ns + opt->duration_ns;
        if (evs[i].at_ns < opt->start_ns || evs[i].at_ns >= end)
            return usage_error("%s '%s': the time is outside the generated range", optname, txt[i]);
    }
    return -1;
}

/* ---- factory ---------------------------------------------------------------------------- */

typedef struct machine_kind {
    const char *kind, *vendor, *model;
    double rated_kw;
    int rpm;
    double pressure_bar;     /* working pressure of its hydraulics / pneumatics */
    double temp_lo, temp_hi; /* surface temperature range at nominal load (degC) */
    double vib_lo, vib_hi;   /* baseline vibration (mm/s RMS) */
    int weight;
} machine_kind_t;

static const machine_kind_t machine_kinds[] = {
    {"cnc-mill", "DMG Mori", "DMU 65 monoBLOCK", 35, 12000, 60, 38, 48, 0.8, 1.8, 5},
    {"cnc-lathe", "Mazak", "QUICK TURN 250MSY", 22, 4000, 35, 36, 46, 0.8, 1.8, 4},
    {"press", "Schuler", "MSD 400", 110, 1480, 210, 45, 58, 1.8, 2.8, 2},
    {"injection-molder", "Engel", "victory 200", 45, 1500, 140, 44, 55, 1.0, 2.0, 3},
    {"robot-cell", "KUKA", "KR 210 R2700-2", 12, 3000, 6, 34, 44, 0.5, 1.2, 3},
    {"conveyor", "Interroll", "Crossbelt Sorter", 4, 1450, 6, 30, 40, 0.6, 1.4, 2},
    {"compressor", "Atlas Copco", "GA 37 VSD+", 37, 3000, 7.5, 55, 65, 1.5, 2.4, 1},
};

typedef enum { MS_RUN = 0, MS_WARN, MS_FAIL } mstate_t;

typedef struct machine {
    char id[8], line[4];
    const machine_kind_t *k;
    char installed[12], serial[32];
    char crit[2];
    double temp_nominal, vib_base, load_mu;
    int line_index;
    rng_t r; /* machine-level dynamics */
    mstate_t state;
    int64_t state_left_ns; /* time left in WARN / FAIL */
    double load;           /* fraction of rated power, slowly varying */
    double temp;           /* thermal state of the machine body (degC) */
    double anomaly_heat;   /* extra degC from an anomaly, decaying afterwards */
    double wear;           /* slow vibration drift factor */
    /* this tick's drive values */
    int rpm_now;
    double kw_now;
} machine_t;

typedef struct sensor {
    rng_t r;
    double temp_off;   /* degC above the machine body */
    double vib_factor; /* mounting point factor */
    double pres_factor;
} sensor_t;

typedef struct line_acc {
    char id[4];
    rng_t r;
    double rate;        /* parts per second at full speed */
    double parts;       /* expected parts in the current minute */
    double scrap_parts; /* expected scrap in the current minute */
} line_acc_t;

#define AMBIENT_C 22.0

static const char *factory_site = "plant-a";

/* Anomaly envelope: 0 outside, rising to 1 over the first 15 % of the window. Returns the
 * event's phase in [0, 1) through *phase. */
static double event_env(const event_t *evs, size_t n, int index, int64_t t, double *phase)
{
    for (size_t i = 0; i < n; i++) {
        if (evs[i].index != index || t < evs[i].at_ns || t >= evs[i].at_ns + evs[i].dur_ns)
            continue;
        double f = (double)(t - evs[i].at_ns) / (double)evs[i].dur_ns;
        if (phase)
            *phase = f;
        return f < 0.15 ? 0.4 + 0.6 * f / 0.15 : 1.0;
    }
    return 0;
}

/* How much of its nominal temperature rise a machine has at a load (nominal load 0.7). */
static double heat_factor(double load)
{
    return 0.6 + 0.4 * load / 0.7;
}

static void machine_init(machine_t *m, const gen_opts_t *opt, uint32_t i, uint32_t nlines)
{
    rng_seed(&m->r, opt->seed, STREAM(ST_MACHINE, i));
    snprintf(m->id, sizeof m->id, opt->machines > 999 ? "M%04u" : "M%03u", i + 1);
    m->line_index = (int)((uint64_t)i * nlines / opt->machines);
    snprintf(m->line, sizeof m->line, "L%02d", m->line_index + 1);
    int total = 0;
    for (size_t k = 0; k < MESH_ARRAY_LEN(machine_kinds); k++)
        total += machine_kinds[k].weight;
    int pick = (int)rng_below(&m->r, (uint32_t)total);
    m->k = &machine_kinds[0];
    for (size_t k = 0; k < MESH_ARRAY_LEN(machine_kinds); k++) {
        if (pick < machine_kinds[k].weight) {
            m->k = &machine_kinds[k];
            break;
        }
        pick -= machine_kinds[k].weight;
    }
    int year = 2008 + (int)rng_below(&m->r, 18);
    int month = 1 + (int)rng_below(&m->r, 12);
    int day = 1 + (int)rng_below(&m->r, 28);
    snprintf(m->installed, sizeof m->installed, "%04d-%02d-%02d", year, month, day);
    char vend[4] = {m->k->vendor[0], m->k->vendor[1], m->k->vendor[2], 0};
    for (int c = 0; c < 3; c++)
        if (vend[c] >= 'a' && vend[c] <= 'z')
            vend[c] = (char)(vend[c] - 'a' + 'A');
        else if (vend[c] == ' ')
            vend[c] = 'X';
    snprintf(m->serial, sizeof m->serial, "%s-%04d-%06u", vend, year,
             100000 + rng_below(&m->r, 900000));
    double u = rng_unit(&m->r);
    m->crit[0] = u < 0.2 ? 'A' : u < 0.7 ? 'B' : 'C';
    m->crit[1] = '\0';
    m->temp_nominal = rng_range(&m->r, m->k->temp_lo, m->k->temp_hi);
    m->vib_base = rng_range(&m->r, m->k->vib_lo, m->k->vib_hi);
    m->load_mu = rng_range(&m->r, 0.55, 0.85);
    m->load = m->load_mu;
    m->temp = AMBIENT_C + (m->temp_nominal - AMBIENT_C) * heat_factor(m->load);
    m->wear = 1.0;
    m->state = MS_RUN;
}

/* Advances machine m to time t (dt seconds since the last tick): state episodes, load, body
 * temperature, drive speed and power. */
static void machine_tick(machine_t *m, double dt, double anomaly)
{
    rng_t *r = &m->r;
    /* episodes: about one warn episode per machine per 6 h, one fault stop per 2 days */
    double u1 = rng_unit(r), u2 = rng_unit(r), u3 = rng_unit(r);
    int64_t dt_ns = (int64_t)(dt * 1e9);
    if (m->state == MS_RUN) {
        if (u1 < dt / (48 * 3600.0)) {
            m->state = MS_FAIL;
            m->state_left_ns = (int64_t)((120 + u2 * 780) * 1e9);
        } else if (u1 < dt / (48 * 3600.0) + dt / (6 * 3600.0)) {
            m->state = MS_WARN;
            m->state_left_ns = (int64_t)((30 + u2 * 270) * 1e9);
        }
    } else if ((m->state_left_ns -= dt_ns) <= 0) {
        /* a warn episode ends in a stop one time in ten */
        if (m->state == MS_WARN && u3 < 0.1) {
            m->state = MS_FAIL;
            m->state_left_ns = (int64_t)((120 + u2 * 780) * 1e9);
        } else {
            m->state = MS_RUN;
        }
    }
    bool running = m->state != MS_FAIL || anomaly > 0;
    m->load = clampd(ou_step(r, m->load, m->load_mu, 0.06, 900, dt), 0.2, 1.0);
    m->wear = clampd(m->wear + 2e-7 * dt * (1 + rng_normal(r)), 0.9, 1.5);
    double target =
        running ? AMBIENT_C + (m->temp_nominal - AMBIENT_C) * heat_factor(m->load) : AMBIENT_C + 2;
    if (m->state == MS_WARN)
        target += 6;
    double a = 1 - exp(-dt / 600); /* thermal time constant 10 min */
    m->temp += (target - m->temp) * a + 0.04 * sqrt(dt) * rng_normal(r);
    /* friction heat of a failing bearing: +3 K/min while the anomaly lasts, cooling after */
    if (anomaly > 0)
        m->anomaly_heat += 0.05 * dt * anomaly;
    else
        m->anomaly_heat *= exp(-dt / 300);
    double slip = 1 - 0.01 * m->load;
    double n = rng_normal(r);
    if (running) {
        m->rpm_now = (int)lround(m->k->rpm * slip + n * m->k->rpm * 0.002 +
                                 (anomaly > 0 ? 0.01 * m->k->rpm * rng_normal(r) : 0));
        m->kw_now = m->k->rated_kw * m->load * (1 + 0.03 * rng_normal(r)) * (1 + 0.08 * anomaly);
    } else {
        m->rpm_now = 0;
        m->kw_now = 0.3 + 0.1 * fabs(rng_normal(r)); /* controls on standby */
    }
    if (m->rpm_now < 0)
        m->rpm_now = 0;
    if (m->kw_now < 0)
        m->kw_now = 0;
}

static void emit_machines(gen_t *g, machine_t *ms)
{
    out_t *o = g->o;
    for (uint32_t i = 0; i < g->opt->machines; i++) {
        machine_t *m = &ms[i];
        if (!row_begin(o, P_MACHINES, 0))
            return;
        v_str(o, factory_site);
        v_str(o, m->line);
        v_str(o, m->id);
        v_str(o, m->k->model);
        v_str(o, m->k->vendor);
        v_str(o, m->k->kind);
        v_str(o, m->installed);
        v_str(o, m->crit);
        v_num(o, m->k->rated_kw, 1);
        v_int(o, m->k->rpm);
        v_str(o, m->serial);
        row_end(o);
    }
}

static void emit_production(gen_t *g, line_acc_t *ls, uint32_t nlines, int64_t minute)
{
    out_t *o = g->o;
    for (uint32_t l = 0; l < nlines; l++) {
        line_acc_t *la = &ls[l];
        /* counting noise; the draws happen whether or not the row is written */
        double n1 = rng_normal(&la->r), n2 = rng_normal(&la->r);
        double parts = la->parts + sqrt(la->parts) * 0.5 * n1;
        double scrap = la->scrap_parts + sqrt(la->scrap_parts) * 0.5 * n2;
        int64_t p = parts > 0 ? llround(parts) : 0;
        int64_t s = scrap > 0 ? llround(scrap) : 0;
        if (s > p)
            s = p;
        la->parts = la->scrap_parts = 0;
        if (!row_begin(o, P_PRODUCTION, minute))
            continue;
        v_str(o, factory_site);
        v_str(o, la->id);
        v_int(o, p - s);
        v_int(o, s);
        row_end(o);
    }
}

static int run_factory(gen_t *g)
{
    const gen_opts_t *opt = g->opt;
    out_t *o = g->o;
    uint32_t nm = opt->machines, ns = opt->sensors;
    uint32_t nlines = (nm + 9) / 10;
    if (nlines > 99)
        nlines = 99;
    int rc = 0;
    machine_t *ms = calloc(nm, sizeof *ms);
    sensor_t *ss = calloc((size_t)nm * ns, sizeof *ss);
    line_acc_t *ls = calloc(nlines, sizeof *ls);
    bool *line_stopped = calloc(nlines, sizeof *line_stopped);
    bool *line_warn = calloc(nlines, sizeof *line_warn);
    if (ms == NULL || ss == NULL || ls == NULL || line_stopped == NULL || line_warn == NULL) {
        fputs("meshctl generate: out of memory\n", stderr);
        rc = mesh_status_exit(MESH_NOMEM);
        goto out;
    }
    for (uint32_t i = 0; i < nm; i++) {
        machine_init(&ms[i], opt, i, nlines);
        for (uint32_t s = 0; s < ns; s++) {
            sensor_t *se = &ss[(size_t)i * ns + s];
            rng_seed(&se->r, opt->seed, STREAM(ST_SENSOR, (uint64_t)i * 100 + s));
            se->temp_off = rng_range(&se->r, -3, 8);
            se->vib_factor = rng_range(&se->r, 0.7, 1.3);
            se->pres_factor = rng_range(&se->r, 0.97, 1.03);
        }
    }
    for (uint32_t l = 0; l < nlines; l++) {
        snprintf(ls[l].id, sizeof ls[l].id, "L%02u", l + 1);
        rng_seed(&ls[l].r, opt->seed, STREAM(ST_LINE, l));
        ls[l].rate = rng_range(&ls[l].r, 0.5, 2.0);
    }
    emit_machines(g, ms);

    double dt = (double)opt->interval_ns / 1e9;
    int64_t minute = INT64_MIN;
    for (int64_t k = 0; k < g->epochs && o->err == 0; k++) {
        int64_t t = opt->start_ns + k * opt->interval_ns;
        int64_t m0 =
            t - ((t % (60 * MESH_NS_PER_SEC)) + 60 * MESH_NS_PER_SEC) % (60 * MESH_NS_PER_SEC);
        if (m0 != minute) {
            if (minute != INT64_MIN)
                emit_production(g, ls, nlines, minute);
            minute = m0;
        }
        memset(line_stopped, 0, nlines * sizeof *line_stopped);
        memset(line_warn, 0, nlines * sizeof *line_warn);
        for (uint32_t i = 0; i < nm; i++) {
            machine_t *m = &ms[i];
            double phase = 0;
            double an = event_env(opt->anomalies, opt->nanomalies, (int)i, t, &phase);
            machine_tick(m, dt, an);
            bool running = m->state != MS_FAIL || an > 0;
            line_stopped[m->line_index] |= !running;
            line_warn[m->line_index] |= m->state == MS_WARN || an > 0;
            for (uint32_t s = 0; s < ns; s++) {
                sensor_t *se = &ss[(size_t)i * ns + s];
                rng_t *r = &se->r;
                double n1 = rng_normal(r), n2 = rng_normal(r), n3 = rng_normal(r);
                double temp = m->temp + se->temp_off * (running ? heat_factor(m->load) : 0.2) +
                              m->anomaly_heat * (s == 0 ? 1.0 : 0.5) + 0.15 * n1;
                double vib;
                if (!running)
                    vib = 0.05 + 0.02 * fabs(n2);
                else
                    vib = m->vib_base * se->vib_factor * m->wear * (0.6 + 0.4 * m->load / 0.7) *
                          exp(0.08 * n2);
                if (running && m->state == MS_WARN)
                    vib += 2.5 + 1.5 * m->load;
                if (an > 0) /* bearing damage: 14-26 mm/s, pulsing */
                    vib = (14 + 10 * an * (0.7 + 0.3 * sin(6.283 * phase * 7))) *
                              (0.85 + 0.15 * se->vib_factor) +
                          0.5 * n2;
                double pres = running ? m->k->pressure_bar * se->pres_factor * (1 + 0.01 * n3)
                                      : m->k->pressure_bar * 0.03 * (1 + 0.2 * fabs(n3));
                const char *status = "ok";
                if (m->state == MS_FAIL && !running)
                    status = "fail";
                else if (vib > 7.1 || temp > 95)
                    status = "fail";
                else if (m->state == MS_WARN || vib > 4.5 || temp > 85)
                    status = "warn";
                if (!row_begin(o, P_TELEMETRY, t))
                    continue;
                v_str(o, factory_site);
                v_str(o, m->line);
                v_str(o, m->id);
                char sid[4] = {'S', (char)('0' + (s + 1) / 10), (char)('0' + (s + 1) % 10), 0};
                v_str(o, sid);
                v_num(o, clampd(temp, -40, 200), 2);
                v_num(o, clampd(vib, 0, 100), 3);
                v_num(o, clampd(pres, 0, 400), 2);
                v_int(o, m->rpm_now);
                v_num(o, m->kw_now, 2);
                v_str(o, status);
                row_end(o);
            }
        }
        for (uint32_t l = 0; l < nlines; l++) {
            if (line_stopped[l])
                continue; /* a stopped station stops the line */
            double parts = ls[l].rate * dt;
            ls[l].parts += parts;
            ls[l].scrap_parts += parts * (line_warn[l] ? 0.09 : 0.015);
        }
    }
    if (minute != INT64_MIN && o->err == 0)
        emit_production(g, ls, nlines, minute);
out:
    free(line_stopped);
    free(line_warn);
    free(ms);
    free(ss);
    free(ls);
    return rc;
}

/* ---- home ------------------------------------------------------------------------------- */

typedef struct room_kind {
    const char *name;
    double setpoint[24];  /* per hour of the day (degC) */
    uint8_t people[24];   /* occupants per hour of the day */
    double volume_m3;     /* air volume */
    double heater_w;      /* electric radiator power */
    double humidity_base; /* %RH */
    double ach;           /* air changes per hour, windows closed (fans in wet rooms) */
} room_kind_t;

#define H_DAY(night, morning, day, evening)                                                        \
    {                                                                                              \
        night, night, night, night, night, night, morning, morning, day, day, day, day, day, day,  \
            day, day, day, evening, evening, evening, evening, evening, evening, night             \
    }

static const room_kind_t room_kinds[] = {
    {"living", H_DAY(17.5, 20.5, 19.0, 21.5), H_DAY(0, 1, 0, 3), 75, 1500, 42, 0.5},
    {"kitchen", H_DAY(17.0, 20.5, 19.0, 20.5), H_DAY(0, 2, 0, 2), 40, 1000, 45, 1.0},
    {"bedroom", H_DAY(18.0, 19.5, 17.0, 18.5), H_DAY(2, 1, 0, 0), 45, 1000, 46, 0.5},
    {"kids", H_DAY(19.0, 20.0, 18.5, 20.5), H_DAY(1, 1, 0, 1), 30, 800, 45, 0.5},
    {"bathroom", H_DAY(19.0, 23.0, 20.0, 22.5), H_DAY(0, 1, 0, 0), 15, 750, 55, 3.0},
    {"office", H_DAY(16.5, 19.0, 21.0, 18.0), H_DAY(0, 0, 1, 0), 28, 800, 40, 0.5},
    {"guest", H_DAY(16.0, 16.0, 16.0, 16.0), H_DAY(0, 0, 0, 0), 30, 800, 44, 0.5},
    {"hall", H_DAY(17.0, 19.0, 18.0, 19.0), H_DAY(0, 0, 0, 0), 20, 600, 43, 0.8},
};

typedef struct room {
    char name[24];
    const room_kind_t *k;
    rng_t r;
    double temp, co2, humidity;
    bool heating;
    double loss_per_s;     /* 1/s: heat loss rate to outdoors */
    double heat_k_per_s;   /* K/s while heating */
    int64_t airing_left_s; /* window open */
    double humid_event;    /* extra %RH from showers / cooking, decaying */
} room_t;

typedef struct appliance {
    const char *name;
    double watts;
    double minutes;
    int h0, h1; /* hours when it may start */
    double starts_per_day;
} appliance_t;

static const appliance_t appliances[] = {
    {"kettle", 2200, 3, 6, 22, 4},      {"oven", 2400, 45, 17, 20, 0.6},
    {"washer", 900, 90, 8, 21, 0.5},    {"dishwasher", 1100, 80, 19, 23, 0.8},
    {"microwave", 1000, 4, 7, 21, 1.5}, {"hair-dryer", 1800, 6, 6, 9, 0.7},
    {"vacuum", 1400, 25, 9, 19, 0.3},
};

static int hour_of(int64_t t)
{
    int64_t s = t / MESH_NS_PER_SEC;
    int64_t h = (s / 3600) % 24;
    return (int)(h < 0 ? h + 24 : h);
}

static double hour_frac(int64_t t)
{
    int64_t day = 86400 * MESH_NS_PER_SEC;
    int64_t r = ((t % day) + day) % day;
    return (double)r / (double)(3600 * MESH_NS_PER_SEC);
}

static int run_home(gen_t *g)
{
    const gen_opts_t *opt = g->opt;
    out_t *o = g->o;
    uint32_t nr = opt->rooms;
    room_t *rooms = calloc(nr, sizeof *rooms);
    if (rooms == NULL) {
        fputs("meshctl generate: out of memory\n", stderr);
        return mesh_status_exit(MESH_NOMEM);
    }
    size_t nk = MESH_ARRAY_LEN(room_kinds);
    for (uint32_t i = 0; i < nr; i++) {
        room_t *rm = &rooms[i];
        /* past the named rooms: guest-2, hall-2, guest-3, hall-3, ... */
        rm->k = &room_kinds[i < nk ? i : nk - 2 + (i - nk) % 2];
        if (i < nk)
            snprintf(rm->name, sizeof rm->name, "%s", rm->k->name);
        else
            snprintf(rm->name, sizeof rm->name, "%s-%u", rm->k->name, (unsigned)((i - nk) / 2 + 2));
        rng_seed(&rm->r, opt->seed, STREAM(ST_ROOM, i));
        rm->loss_per_s = 1.0 / (rng_range(&rm->r, 20, 40) * 3600); /* tau 20-40 h */
        rm->heat_k_per_s = rng_range(&rm->r, 2.5, 4.0) / 3600;     /* 2.5-4 K/h */
        int h = hour_of(opt->start_ns);
        rm->temp = rm->k->setpoint[h] - 0.1 + rng_range(&rm->r, -0.2, 0.2);
        rm->co2 = 450 + 350 * rm->k->people[h];
        rm->humidity = rm->k->humidity_base;
    }
    rng_t house;
    rng_seed(&house, opt->seed, STREAM(ST_HOUSE, 0));
    double energy_kwh = 18000 + rng_range(&house, 0, 5000);
    double outdoor = 0;
    double fridge_phase = rng_unit(&house);
    double app_left_s[MESH_ARRAY_LEN(appliances)] = {0};
    double dt = (double)opt->interval_ns / 1e9;

    for (int64_t k = 0; k < g->epochs && o->err == 0; k++) {
        int64_t t = opt->start_ns + k * opt->interval_ns;
        int h = hour_of(t);
        double hf = hour_frac(t);
        /* January day: -2 degC before dawn, +6 degC mid-afternoon, with weather noise */
        outdoor = ou_step(&house, outdoor, 0, 1.5, 6 * 3600, dt);
        double t_out = 2 - 4 * cos(6.283185307 * (hf - 3) / 24) + outdoor;
        double heat_w = 0;
        for (uint32_t i = 0; i < nr; i++) {
            room_t *rm = &rooms[i];
            rng_t *r = &rm->r;
            double sp = rm->k->setpoint[h];
            int people = rm->k->people[h];
            double u_air = rng_unit(r), u_event = rng_unit(r);
            double n1 = rng_normal(r), n2 = rng_normal(r), n3 = rng_normal(r);
            /* airing: a window opens about twice a day in occupied rooms, for 5-15 min,
             * between 7:00 and 22:00 */
            if (rm->airing_left_s <= 0 && people > 0 && h >= 7 && h < 22 &&
                u_air < dt * 2 / (15 * 3600.0))
                rm->airing_left_s = (int64_t)(300 + 600 * u_event);
            bool airing = rm->airing_left_s > 0;
            if (airing)
                rm->airing_left_s -= (int64_t)dt;
            /* thermostat with hysteresis; it closes the valve while a window is open */
            if (airing)
                rm->heating = false;
            else if (rm->temp < sp - 0.3)
                rm->heating = true;
            else if (rm->temp > sp + 0.2)
                rm->heating = false;
            double loss = rm->loss_per_s * (airing ? 25 : 1);
            double gain = (rm->heating ? rm->heat_k_per_s : 0) + people * 0.08 / 3600;
            rm->temp += (gain - loss * (rm->temp - t_out)) * dt + 0.003 * sqrt(dt) * n1;
            /* CO2: 5 ppm.m3/s per person; air change 10/h with a window open */
            double ach = (airing ? 10.0 : rm->k->ach) / 3600;
            rm->co2 += (people * 5.0 / rm->k->volume_m3 - ach * (rm->co2 - 420)) * dt;
            /* showers and cooking */
            if (strcmp(rm->k->name, "bathroom") == 0 && (h == 6 || h == 7 || h == 21) &&
                u_event < dt / 1800)
                rm->humid_event = 30;
            if (strcmp(rm->k->name, "kitchen") == 0 && (h == 7 || h == 18 || h == 19) &&
                u_event < dt / 1800)
                rm->humid_event = 15;
            rm->humid_event *= exp(-dt / (airing ? 300 : 1500));
            double rh_target =
                rm->k->humidity_base + 4 * people - 0.8 * (rm->temp - 20) + (airing ? -8 : 0);
            rm->humidity += (rh_target - rm->humidity) * (1 - exp(-dt / 1800)) + 0.05 * n2;
            if (rm->heating)
                heat_w += rm->k->heater_w;
            if (!row_begin(o, P_CLIMATE, t))
                continue;
            v_str(o, rm->name);
            v_num(o, clampd(rm->temp + 0.05 * n3, -10, 50), 1);
            v_num(o, clampd(rm->humidity + rm->humid_event, 15, 98), 1);
            v_int(o, (int64_t)lround(clampd(rm->co2 + 8 * n2, 380, 9000)));
            v_num(o, sp, 1);
            v_bool(o, rm->heating);
            row_end(o);
        }
        /* the meter: standby, fridge cycling, lights in the evening, appliances, heaters */
        double p = 85 + 15 * rng_normal(&house) * 0.2;
        fridge_phase += dt / 2700;
        if (fmod(fridge_phase, 1.0) < 0.35)
            p += 110;
        if (h >= 17 && h < 23)
            p += 180;
        else if (h >= 6 && h < 8)
            p += 90;
        for (size_t a = 0; a < MESH_ARRAY_LEN(appliances); a++) {
            const appliance_t *ap = &appliances[a];
            double u = rng_unit(&house);
            if (app_left_s[a] <= 0 && h >= ap->h0 && h < ap->h1 &&
                u < ap->starts_per_day * dt / ((ap->h1 - ap->h0) * 3600.0))
                app_left_s[a] = ap->minutes * 60;
            if (app_left_s[a] > 0) {
                p += ap->watts;
                app_left_s[a] -= dt;
            }
        }
        p += heat_w;
        p *= 1 + 0.01 * rng_normal(&house);
        if (p < 0)
            p = 0;
        energy_kwh += p * dt / 3.6e6;
        double volts =
            231 + 2.5 * sin(6.283185307 * (hf - 14) / 24) - p * 0.00025 + 0.4 * rng_normal(&house);
        if (row_begin(o, P_ENERGY, t)) {
            v_str(o, "mains");
            v_num(o, p, 1);
            v_num(o, energy_kwh, 3);
            v_num(o, volts, 1);
            row_end(o);
        }
    }
    free(rooms);
    return 0;
}

/* ---- health ----------------------------------------------------------------------------- */

typedef struct diagnosis {
    const char *code, *text;
    double hr, spo2, rr, sbp, temp; /* offsets from a healthy baseline; spo2 is absolute */
} diagnosis_t;

static const diagnosis_t diagnoses[] = {
    {"A41.9", "Sepsis, unspecified organism", 22, 96, 4, -18, 1.3},
    {"J96.01", "Acute respiratory failure with hypoxia", 12, 94.5, 7, 0, 0.3},
    {"J18.9", "Pneumonia, unspecified organism", 10, 95, 5, -4, 0.9},
    {"I21.4", "Non-ST elevation myocardial infarction", 6, 97, 1, 8, 0},
    {"I50.9", "Heart failure, unspecified", 8, 95.5, 4, -6, 0},
    {"I63.9", "Cerebral infarction, unspecified", 0, 97, 0, 22, 0.1},
    {"S06.5", "Traumatic subdural haemorrhage", 4, 97.5, 0, 15, 0.2},
    {"K85.9", "Acute pancreatitis, unspecified", 14, 96.5, 3, -5, 0.7},
    {"J80", "Acute respiratory distress syndrome", 15, 94, 9, -3, 0.5},
    {"I26.9", "Pulmonary embolism without acute cor pulmonale", 18, 94.5, 6, -8, 0.2},
    {"T81.4", "Infection following a procedure", 12, 96.5, 2, -6, 1.0},
    {"N17.9", "Acute kidney failure, unspecified", 6, 97, 2, 10, 0},
};

static const char *const female_names[] = {"Anna",   "Maria", "Sofia", "Fatima", "Elena",
                                           "Ingrid", "Yuki",  "Amara", "Claire", "Lucia",
                                           "Hanna",  "Olga",  "Priya", "Grace",  "Margit"};
static const char *const male_names[] = {"Jonas", "Ahmed",   "Luca",  "Peter",  "Mateo",
                                         "Karl",  "Hiroshi", "Kwame", "Tomas",  "David",
                                         "Erik",  "Ivan",    "Rahul", "Samuel", "Georg"};
static const char *const last_names[] = {"Schmidt", "Novak",    "Rossi",    "Nguyen",    "Okafor",
                                         "Garcia",  "Jensen",   "Kowalski", "Müller",    "Haddad",
                                         "Tanaka",  "Andersen", "Moreau",   "Ivanova",   "Fischer",
                                         "Silva",   "Brennan",  "Yilmaz",   "Lindqvist", "Costa"};

typedef struct patient {
    char id[8], bed[8];
    rng_t r, glitch;
    const diagnosis_t *dx;
    /* baselines */
    double hr0, spo20, rr0, sbp0, dbp0, temp0;
    /* current values (OU states) */
    double hr, spo2, rr, sbp, dbp, temp;
} patient_t;

static void patient_init(patient_t *pt, const gen_opts_t *opt, uint32_t i)
{
    snprintf(pt->id, sizeof pt->id, "P%06u", i + 1);
    snprintf(pt->bed, sizeof pt->bed, "ICU3-%02u", i + 1);
    rng_seed(&pt->r, opt->seed, STREAM(ST_PATIENT, i));
    rng_seed(&pt->glitch, opt->seed, STREAM(ST_GLITCH, i));
    rng_t *r = &pt->r;
    pt->dx = &diagnoses[rng_below(r, MESH_ARRAY_LEN(diagnoses))];
    pt->hr0 = rng_range(r, 62, 90) + pt->dx->hr;
    pt->spo20 = pt->dx->spo2 + rng_range(r, 0, 2);
    pt->rr0 = rng_range(r, 12, 18) + pt->dx->rr;
    pt->sbp0 = rng_range(r, 105, 140) + pt->dx->sbp;
    pt->dbp0 = pt->sbp0 * rng_range(r, 0.55, 0.65);
    pt->temp0 = rng_range(r, 36.5, 37.3) + pt->dx->temp;
    pt->hr = pt->hr0;
    pt->spo2 = pt->spo20;
    pt->rr = pt->rr0;
    pt->sbp = pt->sbp0;
    pt->dbp = pt->dbp0;
    pt->temp = pt->temp0;
}

/* The year of an ISO 8601 text "2026-...". */
static int year_of(const char *iso)
{
    int y = 0;
    for (int i = 0; i < 4 && iso[i] >= '0' && iso[i] <= '9'; i++)
        y = y * 10 + (iso[i] - '0');
    return y;
}

static void emit_admissions(gen_t *g, patient_t *ps)
{
    const gen_opts_t *opt = g->opt;
    out_t *o = g->o;
    for (uint32_t i = 0; i < opt->patients; i++) {
        patient_t *pt = &ps[i];
        /* registry data come from their own stream, so vitals do not depend on --all */
        rng_t r;
        rng_seed(&r, opt->seed, STREAM(ST_PATIENT, 1000 + i));
        bool female = rng_unit(&r) < 0.45;
        const char *first = female ? female_names[rng_below(&r, MESH_ARRAY_LEN(female_names))]
                                   : male_names[rng_below(&r, MESH_ARRAY_LEN(male_names))];
        const char *last = last_names[rng_below(&r, MESH_ARRAY_LEN(last_names))];
        char name[64], dob[16];
        snprintf(name, sizeof name, "%s %s", first, last);
        /* admitted 2 h to 12 days before the start, on the minute */
        int64_t before = (int64_t)rng_range(&r, 2 * 3600, 12 * 86400);
        int64_t admitted = opt->start_ns - (before - before % 60) * MESH_NS_PER_SEC;
        char iso[MESH_TIME_MAX];
        mesh_time_format(admitted, iso);
        /* ICU patients are mostly older: ages 25-90, weighted to the upper end (the larger of
         * two uniform draws) */
        double u = fmax(rng_unit(&r), rng_unit(&r));
        int year = year_of(iso) - 25 - (int)(u * 65);
        snprintf(dob, sizeof dob, "%04d-%02u-%02u", year, 1 + rng_below(&r, 12),
                 1 + rng_below(&r, 28));
        if (!row_begin(o, P_ADMISSIONS, admitted))
            continue;
        v_str(o, pt->id);
        v_str(o, "ICU-3");
        v_str(o, pt->bed);
        v_str(o, name);
        v_str(o, dob);
        v_str(o, female ? "female" : "male");
        v_str(o, pt->dx->code);
        v_str(o, pt->dx->text);
        row_end(o);
    }
}

/* Glitches of a bedside monitor: a lead off, a motion artefact, a probe off, a line flush. */
enum { GL_HR0 = 0, GL_HR400, GL_SPO2_0, GL_SYS300, GL__COUNT };

static int run_health(gen_t *g)
{
    const gen_opts_t *opt = g->opt;
    out_t *o = g->o;
    uint32_t np = opt->patients;
    patient_t *ps = calloc(np, sizeof *ps);
    if (ps == NULL) {
        fputs("meshctl generate: out of memory\n", stderr);
        return mesh_status_exit(MESH_NOMEM);
    }
    for (uint32_t i = 0; i < np; i++)
        patient_init(&ps[i], opt, i);
    emit_admissions(g, ps);
    double dt = (double)opt->interval_ns / 1e9;
    for (int64_t k = 0; k < g->epochs && o->err == 0; k++) {
        int64_t t = opt->start_ns + k * opt->interval_ns;
        for (uint32_t i = 0; i < np; i++) {
            patient_t *pt = &ps[i];
            rng_t *r = &pt->r;
            pt->hr = ou_step(r, pt->hr, pt->hr0, 4, 120, dt);
            pt->spo2 = ou_step(r, pt->spo2, pt->spo20, 0.9, 60, dt);
            pt->rr = ou_step(r, pt->rr, pt->rr0, 1.5, 90, dt);
            pt->sbp = ou_step(r, pt->sbp, pt->sbp0, 6, 300, dt);
            pt->dbp = ou_step(r, pt->dbp, pt->dbp0, 4, 300, dt);
            pt->temp = ou_step(r, pt->temp, pt->temp0, 0.15, 3600, dt);
            double n1 = rng_normal(r), n2 = rng_normal(r), n3 = rng_normal(r);
            double hr = pt->hr + 1.5 * n1;
            double rr = pt->rr + 0.7 * n3;
            /* normal saturation stays at 92-100 %: only a desaturation goes below 90 */
            double spo2 = clampd(round(pt->spo2 + 0.4 * n2), 92, 100);
            double phase = 0;
            if (event_env(opt->desats, opt->ndesats, (int)i, t, &phase) > 0) {
                double s = sin(3.14159265358979 * phase);
                spo2 = fmin(89, clampd(round(88 - 6 * sqrt(s) + 0.8 * n2), 70, 100));
                hr += 22 * s;
                rr += 8 * s;
            }
            int64_t sys = lround(clampd(pt->sbp + 2 * n1, 60, 240));
            int64_t dia = lround(clampd(pt->dbp + 1.5 * n3, 30, 150));
            if (dia > sys - 15)
                dia = sys - 15;
            int64_t hri = lround(clampd(hr, 30, 220));
            int64_t spi = (int64_t)spo2;
            /* the glitch stream draws the same numbers whatever the rate */
            double gu = rng_unit(&pt->glitch);
            uint32_t gk = rng_below(&pt->glitch, GL__COUNT);
            if (gu < opt->glitch_rate) {
                switch (gk) {
                case GL_HR0:
                    hri = 0;
                    break;
                case GL_HR400:
                    hri = 400;
                    break;
                case GL_SPO2_0:
                    spi = 0;
                    break;
                default:
                    sys = 300;
                    break;
                }
            }
            if (!row_begin(o, P_VITALS, t))
                continue;
            v_str(o, pt->id);
            v_str(o, pt->bed);
            v_int(o, hri);
            v_int(o, spi);
            v_int(o, lround(clampd(rr, 4, 60)));
            v_int(o, sys);
            v_int(o, dia);
            v_num(o, clampd(pt->temp + 0.02 * n2, 32, 42.5), 1);
            row_end(o);
        }
    }
    free(ps);
    return 0;
}

/* ---- trucks: the TSBS iot use case ------------------------------------------------------ */

typedef struct truck_model {
    const char *name;
    double load_capacity, fuel_capacity, fuel_consumption;
} truck_model_t;

static const truck_model_t truck_models[] = {
    {"F-150", 2000, 200, 15}, {"G-2000", 5000, 300, 19}, {"H-2", 1500, 150, 12}};
static const char *const truck_drivers[] = {"Derek", "Rodney", "Albert", "Andy", "Seth", "Trish"};
static const char *const truck_versions[] = {"v1.0", "v1.5", "v2.0", "v2.3"};
static const char *const truck_fleets[] = {"East", "West", "North", "South"};

#define TRUCK_NTAGS 8 /* 5 text tags + 3 numeric ones (TSBS counts all 8 when blanking one) */
#define TRUCK_MAXF  7 /* fields of readings, the larger measurement */

typedef struct truck {
    char name[16];
    const char *tags[5];
    const truck_model_t *model;
    rng_t r;
    /* readings: clamped random walks, TSBS order */
    double lat, lon, elev, vel, head, grade, fuel_cons;
    /* diagnostics */
    double fuel_state, load, status;
} truck_t;

/* One TSBS entry: a row of readings or diagnostics with its values fixed when made. */
typedef struct point {
    uint32_t truck;
    uint8_t meas;      /* P_READINGS or P_DIAGNOSTICS */
    int8_t zero_field; /* field blanked, -1 for none */
    int8_t zero_tag;   /* tag blanked (0..7), -1 for none */
    int64_t ts;
    double v[TRUCK_MAXF];
} point_t;

#define TSBS_BATCH 10

typedef struct tbatch {
    point_t p[TSBS_BATCH];
    int n;
} tbatch_t;

/* A FIFO of points or batches: items [head, n) of a growing array. */
typedef struct fifo {
    void *v;
    size_t head, n, cap, size;
} fifo_t;

static size_t fifo_len(const fifo_t *q)
{
    return q->n - q->head;
}

static void *fifo_push(fifo_t *q)
{
    if (q->head > 0 && q->head == q->n)
        q->head = q->n = 0;
    if (q->n == q->cap) {
        if (q->head > q->cap / 2) { /* slide down rather than grow */
            memmove(q->v, (char *)q->v + q->head * q->size, (q->n - q->head) * q->size);
            q->n -= q->head;
            q->head = 0;
        } else {
            size_t cap = q->cap ? q->cap * 2 : 64;
            void *nv = realloc(q->v, cap * q->size);
            if (nv == NULL)
                return NULL;
            q->v = nv;
            q->cap = cap;
        }
    }
    return (char *)q->v + q->n++ * q->size;
}

static void *fifo_pop(fifo_t *q)
{
    return q->head < q->n ? (char *)q->v + q->head++ * q->size : NULL;
}

/* TSBS's per-batch configuration (iot/batch_config.go), drawn in the same order. */
typedef struct bcfg {
    bool insert_prev, missing, out_of_order;
    int8_t zero_field[TSBS_BATCH], zero_tag[TSBS_BATCH];
    bool insert_prev_entry[TSBS_BATCH], missing_entry[TSBS_BATCH], ooo_entry[TSBS_BATCH];
} bcfg_t;

typedef struct tsim {
    const gen_opts_t *opt;
    truck_t *trucks;
    uint32_t n;
    /* the base simulator: epoch-major, then measurement, then truck */
    uint64_t made, max;
    uint32_t gi;
    int mi;
    int64_t epoch;
    /* irregularities */
    rng_t br;
    fifo_t ooo_entries; /* point_t */
    fifo_t ooo_batches; /* tbatch_t */
    bool nomem;
} tsim_t;

static double fp_trunc(double v, int dec)
{
    return trunc(v * pow10_tab[dec]) / pow10_tab[dec];
}

static double cwd(double state, double step, double lo, double hi)
{
    state += step;
    return state > hi ? hi : state < lo ? lo : state;
}

static void truck_init(truck_t *tk, const gen_opts_t *opt, uint32_t i)
{
    rng_t *r = &tk->r;
    rng_seed(r, opt->seed, STREAM(ST_TRUCK, i));
    snprintf(tk->name, sizeof tk->name, "truck_%u", i);
    tk->lat = rng_unit(r) * 90;
    tk->lon = rng_unit(r) * 180;
    tk->elev = rng_unit(r) * 500;
    tk->vel = 0;
    tk->head = rng_unit(r) * 360;
    tk->grade = 0;
    tk->fuel_cons = 25;
    tk->fuel_state = 1;
    tk->load = 0;
    tk->status = 0;
    tk->model = &truck_models[rng_below(r, MESH_ARRAY_LEN(truck_models))];
    tk->tags[0] = tk->name;
    tk->tags[1] = truck_fleets[rng_below(r, MESH_ARRAY_LEN(truck_fleets))];
    tk->tags[2] = truck_drivers[rng_below(r, MESH_ARRAY_LEN(truck_drivers))];
    tk->tags[3] = tk->model->name;
    tk->tags[4] = truck_versions[rng_below(r, MESH_ARRAY_LEN(truck_versions))];
}

/* Advances every distribution of a truck by one interval (TSBS Tick). */
static void truck_tick(truck_t *tk)
{
    rng_t *r = &tk->r;
    tk->lat = cwd(tk->lat, rng_range(r, -0.005, 0.005), -90, 90);
    tk->lon = cwd(tk->lon, rng_range(r, -0.005, 0.005), -180, 180);
    tk->elev = cwd(tk->elev, rng_range(r, -10, 10), 0, 5000);
    tk->vel = cwd(tk->vel, rng_range(r, -10, 10), 0, 100);
    tk->head = cwd(tk->head, rng_range(r, -5, 5), 0, 360);
    tk->grade = cwd(tk->grade, rng_range(r, -5, 5), 0, 100);
    tk->fuel_cons = cwd(tk->fuel_cons, rng_range(r, -5, 5), 0, 50);
    tk->fuel_state = cwd(tk->fuel_state, rng_range(r, -0.001, 0), 0, 1);
    if (tk->fuel_state == 0) /* refuel */
        tk->fuel_state = 1;
    if (rng_unit(r) >= 0.95) /* lazy: a new load about every 20 intervals */
        tk->load = rng_range(r, 0, 5000);
    tk->status = cwd(tk->status, rng_normal(r), 0, 5);
}

static bool base_finished(const tsim_t *s)
{
    return s->made >= s->max;
}

/* The base simulator's next point (TSBS BaseSimulator.Next); false once all are made. */
static bool base_next(tsim_t *s, point_t *p)
{
    if (base_finished(s))
        return false;
    if (s->gi == s->n) {
        s->gi = 0;
        s->mi++;
    }
    if (s->mi == 2) {
        s->mi = 0;
        for (uint32_t i = 0; i < s->n; i++)
            truck_tick(&s->trucks[i]);
        s->epoch++;
    }
    const truck_t *tk = &s->trucks[s->gi];
    p->truck = s->gi;
    p->meas = (uint8_t)s->mi;
    p->zero_field = p->zero_tag = -1;
    p->ts = s->opt->start_ns + s->epoch * s->opt->interval_ns;
    if (s->mi == P_READINGS) {
        p->v[0] = fp_trunc(tk->lat, 5);
        p->v[1] = fp_trunc(tk->lon, 5);
        p->v[2] = fp_trunc(tk->elev, 0);
        p->v[3] = fp_trunc(tk->vel, 0);
        p->v[4] = fp_trunc(tk->head, 0);
        p->v[5] = fp_trunc(tk->grade, 0);
        p->v[6] = fp_trunc(tk->fuel_cons, 1);
    } else {
        p->v[0] = fp_trunc(tk->fuel_state, 1);
        p->v[1] = fp_trunc(tk->load, 0);
        p->v[2] = fp_trunc(tk->status, 0);
    }
    s->made++;
    s->gi++;
    return true;
}

static const int readings_dec[] = {5, 5, 0, 0, 0, 0, 1};
static const int diagnostics_dec[] = {1, 0, 0};

static void emit_point(out_t *o, const tsim_t *s, const point_t *p)
{
    if (!row_begin(o, p->meas, p->ts))
        return;
    const truck_t *tk = &s->trucks[p->truck];
    for (int j = 0; j < 5; j++) {
        if (p->zero_tag == j)
            v_null(o);
        else
            v_str(o, tk->tags[j]);
    }
    const double caps[3] = {tk->model->load_capacity, tk->model->fuel_capacity,
                            tk->model->fuel_consumption};
    for (int j = 0; j < 3; j++) {
        if (p->zero_tag == 5 + j)
            v_null(o);
        else
            v_num(o, caps[j], 0);
    }
    int nf = p->meas == P_READINGS ? 7 : 3;
    for (int f = 0; f < nf; f++) {
        if (p->zero_field == f)
            v_null(o);
        else if (p->meas == P_DIAGNOSTICS && f == 2)
            v_int(o, (int64_t)p->v[2]);
        else
            v_num(o, p->v[f], p->meas == P_READINGS ? readings_dec[f] : diagnostics_dec[f]);
    }
    row_end(o);
}

static void batch_config(tsim_t *s, bcfg_t *bc)
{
    rng_t *r = &s->br;
    memset(bc, 0, sizeof *bc);
    memset(bc->zero_field, -1, sizeof bc->zero_field);
    memset(bc->zero_tag, -1, sizeof bc->zero_tag);
    if (rng_unit(r) < 0.01) {
        bc->missing = true;
        return;
    }
    bc->out_of_order = rng_unit(r) < 0.05;
    if (fifo_len(&s->ooo_batches) > 0)
        bc->insert_prev = rng_unit(r) < 0.5;
    size_t pending = fifo_len(&s->ooo_entries);
    for (int i = 0; i < TSBS_BATCH; i++) {
        if (pending > 0 && rng_unit(r) < 0.5) {
            bc->insert_prev_entry[i] = true;
            pending--;
        }
        if (rng_unit(r) < 0.1) {
            bc->missing_entry[i] = true;
            continue;
        }
        if (rng_unit(r) < 0.1)
            bc->zero_field[i] = (int8_t)rng_below(r, TRUCK_MAXF);
        if (rng_unit(r) < 0.01)
            bc->zero_tag[i] = (int8_t)rng_below(r, TRUCK_NTAGS);
        if (rng_unit(r) < 0.3)
            bc->ooo_entry[i] = true;
    }
}

/* TSBS getNextEntry: the entry for slot index, taking held-back entries and skipping missing
 * ones and the ones held back now. false when the base simulator is done. */
static bool next_entry(tsim_t *s, const bcfg_t *bc, int index, int *offset, point_t *out)
{
    for (;;) {
        int k = index + *offset;
        bool in = k < TSBS_BATCH;
        point_t *prev;
        if (in && bc->insert_prev_entry[k] && (prev = fifo_pop(&s->ooo_entries)) != NULL)
            *out = *prev;
        else if (!base_next(s, out))
            return false;
        if (in && bc->missing_entry[k]) {
            (*offset)++;
            continue;
        }
        if (in && bc->ooo_entry[k]) {
            point_t *q = fifo_push(&s->ooo_entries);
            if (q == NULL) {
                s->nomem = true;
                return false;
            }
            *q = *out;
            (*offset)++;
            continue;
        }
        return true;
    }
}

static void generate_batch(tsim_t *s, const bcfg_t *bc, tbatch_t *b)
{
    int offset = 0;
    b->n = 0;
    for (int i = 0; i < TSBS_BATCH; i++) {
        if (base_finished(s))
            break;
        point_t *p = &b->p[b->n];
        if (!next_entry(s, bc, i, &offset, p))
            break;
        if (bc->zero_field[i] >= 0)
            p->zero_field = (int8_t)(bc->zero_field[i] % (p->meas == P_READINGS ? 7 : 3));
        if (bc->zero_tag[i] >= 0)
            p->zero_tag = bc->zero_tag[i];
        b->n++;
    }
}

/* TSBS simulateNextBatch: fills b with the next batch to emit; false when all is emitted. */
static bool next_batch(tsim_t *s, tbatch_t *b)
{
    for (;;) {
        if (s->nomem)
            return false;
        if (base_finished(s)) {
            tbatch_t *ob = fifo_pop(&s->ooo_batches);
            if (ob != NULL) {
                *b = *ob;
                return true;
            }
            b->n = 0;
            point_t *p;
            while (b->n < TSBS_BATCH && (p = fifo_pop(&s->ooo_entries)) != NULL)
                b->p[b->n++] = *p;
            return b->n > 0;
        }
        bcfg_t bc;
        batch_config(s, &bc);
        tbatch_t *prev;
        if (bc.insert_prev && (prev = fifo_pop(&s->ooo_batches)) != NULL) {
            *b = *prev; /* a late batch arrives */
            return true;
        }
        if (bc.missing) { /* a truck offline: a whole batch lost */
            point_t p;
            for (int i = 0; i < TSBS_BATCH && base_next(s, &p); i++)
                ;
            continue;
        }
        if (bc.out_of_order) { /* a batch uploaded late */
            tbatch_t *ob = fifo_push(&s->ooo_batches);
            if (ob == NULL) {
                s->nomem = true;
                return false;
            }
            generate_batch(s, &bc, ob);
            if (ob->n == 0)
                s->ooo_batches.n--;
            continue;
        }
        generate_batch(s, &bc, b);
        if (b->n > 0)
            return true;
    }
}

static int run_trucks(gen_t *g)
{
    const gen_opts_t *opt = g->opt;
    out_t *o = g->o;
    tsim_t s = {.opt = opt, .n = opt->scale};
    s.ooo_entries.size = sizeof(point_t);
    s.ooo_batches.size = sizeof(tbatch_t);
    s.trucks = calloc(s.n, sizeof *s.trucks);
    if (s.trucks == NULL) {
        fputs("meshctl generate: out of memory\n", stderr);
        return mesh_status_exit(MESH_NOMEM);
    }
    for (uint32_t i = 0; i < s.n; i++)
        truck_init(&s.trucks[i], opt, i);
    rng_seed(&s.br, opt->seed, STREAM(ST_BATCH, 0));
    s.max = (uint64_t)g->epochs * s.n * 2;
    if (opt->regular) {
        point_t p;
        while (o->err == 0 && base_next(&s, &p))
            emit_point(o, &s, &p);
    } else {
        tbatch_t b;
        while (o->err == 0 && next_batch(&s, &b))
            for (int i = 0; i < b.n; i++)
                emit_point(o, &s, &b.p[i]);
    }
    free(s.ooo_entries.v);
    free(s.ooo_batches.v);
    free(s.trucks);
    if (s.nomem) {
        fputs("meshctl generate: out of memory\n", stderr);
        return mesh_status_exit(MESH_NOMEM);
    }
    return 0;
}

/* ---- entry point ------------------------------------------------------------------------ */

/* mesh_cli_generate writing to f (the unit tests pass a temporary file). */
static int generate_to(int argc, char **argv, FILE *f)
{
    gen_opts_t opt = {.seed = 1, .duration_ns = 3600 * MESH_NS_PER_SEC, .glitch_rate = 0.001};
    (void)mesh_time_parse("2026-01-01T00:00:00Z", 20, &opt.start_ns);
    const char *anom_txt[MAX_EVENTS], *desat_txt[MAX_EVENTS];
    int first = 1;
    if (argc > 0 && argv[0] != NULL && (argv[0][0] == '-' || scenario_find(argv[0]) != NULL))
        first = 0;
    int rc = parse_args(argc, argv, first, &opt, anom_txt, desat_txt, f);
    if (rc >= 0)
        return rc;
    const scenario_t *sc = &scenarios[opt.scenario];
    if (opt.start_ns > MESH_TIME_END - opt.duration_ns) /* duration >= 0: no overflow */
        return usage_error("--start + --duration is past the year 2262");
    if (opt.interval_ns == 0)
        opt.interval_ns = sc->interval_ns;
    if (opt.machines == 0)
        opt.machines = 50;
    if (opt.sensors == 0)
        opt.sensors = 20;
    if (opt.rooms == 0)
        opt.rooms = 6;
    if (opt.patients == 0)
        opt.patients = 20;
    if (opt.scale == 0)
        opt.scale = 100;

    int pi = -1;
    if (opt.product != NULL) {
        for (size_t i = 0; i < sc->nprods; i++)
            if (strcmp(sc->prods[i].name, opt.product) == 0)
                pi = (int)i;
        if (pi < 0) {
            char list[128] = "";
            for (size_t i = 0; i < sc->nprods; i++) {
                strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
                strncat(list, sc->prods[i].name, sizeof list - strlen(list) - 1);
            }
            return usage_error("the %s scenario has no product '%s'; it has %s", sc->name,
                               opt.product, list);
        }
        if (opt.all)
            return usage_error("--product and --all exclude each other");
    }
    uint32_t mask;
    if (opt.format == FMT_CSV) {
        if (opt.all)
            return usage_error("CSV holds one product: use --product, not --all");
        if (pi < 0)
            pi = 0;
        mask = 1u << pi;
    } else {
        mask = opt.all ? (1u << sc->nprods) - 1 : pi >= 0 ? 1u << pi : sc->default_mask;
    }
    if ((rc = resolve_events(&opt, anom_txt, opt.anomalies, opt.nanomalies, "--anomaly", "machine",
                             'M', opt.machines > 999 ? 4 : 3, 1, opt.machines)) >= 0 ||
        (rc = resolve_events(&opt, desat_txt, opt.desats, opt.ndesats, "--desaturate", "patient",
                             'P', 6, 1, opt.patients)) >= 0)
        return rc;

    out_t o;
    out_init(&o, f, opt.format, mask, sc->prods);
    o.buf = malloc(OUT_BLOCK + OUT_ROW_MAX);
    if (o.buf == NULL) {
        fputs("meshctl generate: out of memory\n", stderr);
        return mesh_status_exit(MESH_NOMEM);
    }
    if (opt.format == FMT_CSV)
        out_header(&o, pi);
    gen_t g = {.opt = &opt, .o = &o, .epochs = opt.duration_ns / opt.interval_ns};
    rc = sc->run(&g);
    out_finish(&o);
    free(o.buf);
    if (o.err != 0) {
        fprintf(stderr, "meshctl generate: cannot write the output: %s\n", strerror(o.err));
        return mesh_status_exit(MESH_IO);
    }
    return rc;
}

int mesh_cli_generate(int argc, char **argv)
{
    return generate_to(argc, argv, stdout);
}
