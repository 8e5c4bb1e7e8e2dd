/*
 * test_generate.c - `meshctl generate` (src/cli/generate.c): determinism, row counts, value
 * ranges, the injected events, TSBS's irregularities, usage errors; and that what it writes
 * validates against the example contracts (parsed with the real line protocol and CSV
 * parsers, so no server is needed).
 *
 * generate.c lives in src/cli, which is not part of libmeshcore, so this test compiles it in
 * directly; its static generate_to() writes to a temporary file instead of stdout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/cli/generate.c"

#include "catalog/contract.h"
#include "ingest/batch.h"
#include "ingest/csv.h"
#include "ingest/lineproto.h"

int main(void);

/* ---- helpers ---------------------------------------------------------------------------- */

typedef struct result {
    int rc;
    char *data; /* NUL-terminated output */
    size_t len;
    size_t lines;
} result_t;

/* Runs `meshctl generate ARGS` (split at spaces) into memory. */
static result_t gen(const char *args)
{
    char copy[1024];
    char *argv[64];
    int argc = 0;
    snprintf(copy, sizeof copy, "generate %s", args);
    for (char *tok = strtok(copy, " "); tok && argc < 63; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    argv[argc] = NULL;
    FILE *f = tmpfile();
    assert_non_null(f);
    result_t r = {0};
    r.rc = generate_to(argc, argv, f);
    long n = ftell(f);
    assert_true(n >= 0);
    r.len = (size_t)n;
    r.data = malloc(r.len + 1);
    assert_non_null(r.data);
    rewind(f);
    assert_int_equal(fread(r.data, 1, r.len, f), r.len);
    r.data[r.len] = '\0';
    fclose(f);
    for (size_t i = 0; i < r.len; i++)
        r.lines += r.data[i] == '\n';
    return r;
}

static void result_free(result_t *r)
{
    free(r->data);
    r->data = NULL;
}

/* The next line of *p (borrowed, not NUL-terminated) or NULL at the end. */
static const char *next_line(const char **p, size_t *n)
{
    if (**p == '\0')
        return NULL;
    const char *s = *p;
    const char *e = strchr(s, '\n');
    *n = e ? (size_t)(e - s) : strlen(s);
    *p = e ? e + 1 : s + *n;
    return s;
}

/* Copies a line into a NUL-terminated buffer. */
static const char *line_str(const char *s, size_t n, char *buf, size_t cap)
{
    assert_true(n < cap);
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

/* The value after "key=" in a line protocol line (preceded by ',' or ' '), as a number; NAN
 * when absent. */
static double lp_num(const char *line, const char *key)
{
    char pat[64];
    for (int pass = 0; pass < 2; pass++) {
        snprintf(pat, sizeof pat, "%c%s=", pass ? ' ' : ',', key);
        const char *at = strstr(line, pat);
        if (at)
            return strtod(at + strlen(pat), NULL);
    }
    return NAN;
}

/* The tag or string value after "key=" into out ("" when absent). */
static const char *lp_text(const char *line, const char *key, char *out, size_t cap)
{
    char pat[64];
    out[0] = '\0';
    for (int pass = 0; pass < 2; pass++) {
        snprintf(pat, sizeof pat, "%c%s=", pass ? ' ' : ',', key);
        const char *at = strstr(line, pat);
        if (at == NULL)
            continue;
        at += strlen(pat);
        if (*at == '"')
            at++;
        size_t n = strcspn(at, ",\" ");
        if (n >= cap)
            n = cap - 1;
        memcpy(out, at, n);
        out[n] = '\0';
        return out;
    }
    return out;
}

/* The timestamp (last field) of a line protocol line. */
static int64_t lp_ts(const char *line)
{
    const char *sp = strrchr(line, ' ');
    return sp ? strtoll(sp + 1, NULL, 10) : 0;
}

static int64_t ts_of(const char *iso)
{
    int64_t ns = 0;
    assert_int_equal(mesh_time_parse(iso, strlen(iso), &ns), MESH_OK);
    return ns;
}

/* ---- the example contracts as a catalog ---------------------------------------------------- */

typedef struct catalog {
    mesh_contract_t *c[8];
    size_t n;
} catalog_t;

static catalog_t cat;

static const mesh_product_t *cat_lookup(void *arg, const char *domain, const char *name)
{
    catalog_t *k = arg;
    for (size_t i = 0; i < k->n; i++) {
        if (strcmp(k->c[i]->domain, domain) != 0)
            continue;
        const mesh_product_t *p = mesh_contract_product(k->c[i], name);
        if (p)
            return p;
    }
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    static const char *const files[] = {
        "factory/telemetry.odcs.yaml",
        "factory/machines.odcs.yaml",
        "factory/production_counts.odcs.yaml",
        "home/climate.odcs.yaml",
        "home/energy.odcs.yaml",
        "healthcare/vitals.odcs.yaml",
        "healthcare/admissions.odcs.yaml",
        "trucks/trucks.odcs.yaml",
    };
    /* ctest runs us in tests/unit and sets MESH_TEST_DATA to SRC/tests/data (which need not
     * exist): the examples are SRC/examples */
    const char *data = getenv("MESH_TEST_DATA");
    char dir[1024] = "../../examples";
    size_t dn = data ? strlen(data) : 0;
    if (dn > 11 && strcmp(data + dn - 11, "/tests/data") == 0)
        snprintf(dir, sizeof dir, "%.*s/examples", (int)(dn - 11), data);
    for (size_t i = 0; i < MESH_ARRAY_LEN(files); i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        char *yaml = NULL;
        size_t n = 0;
        mesh_err_t err = {0};
        if (mesh_read_file(path, 1 << 20, &yaml, &n, &err) != MESH_OK) {
            fprintf(stderr, "cannot read %s: %s\n", path, err.msg);
            return -1;
        }
        mesh_status_t st = mesh_contract_parse(yaml, n, &cat.c[cat.n], &err);
        free(yaml);
        if (st != MESH_OK) {
            fprintf(stderr, "%s: %s\n", path, err.msg);
            return -1;
        }
        cat.n++;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < cat.n; i++)
        mesh_contract_free(cat.c[i]);
    cat.n = 0;
    return 0;
}

typedef struct checked {
    size_t good, quarantined, refused;
} checked_t;

/* Parses line protocol output for domain with the real parser against the example contracts.
 * Refused rows (bad rows of a rejecting product) are counted, and the first reasons printed. */
static checked_t validate_lp(const result_t *r, const char *domain)
{
    mesh_batch_t b;
    mesh_batch_init(&b, domain, MESH_BATCH_DEFAULT_LIMITS);
    b.received_ns = 1;
    b.precision = MESH_PREC_NS;
    mesh_status_t st = mesh_lp_parse(r->data, r->len, domain, cat_lookup, &cat, &b);
    checked_t c = {mesh_batch_good_rows(&b), mesh_batch_quarantined_rows(&b), 0};
    if (st != MESH_OK) {
        c.refused = b.error_rows - c.quarantined;
        for (size_t i = 0; i < b.nerrors && i < 5; i++)
            fprintf(stderr, "  row %u %s.%s: %s\n", b.errors[i].row, b.errors[i].product,
                    b.errors[i].column, b.errors[i].reason);
    }
    mesh_batch_free(&b);
    return c;
}

static checked_t validate_csv(const result_t *r, const char *domain, const char *product)
{
    const mesh_product_t *p = cat_lookup(&cat, domain, product);
    assert_non_null(p);
    mesh_batch_t b;
    mesh_batch_init(&b, domain, MESH_BATCH_DEFAULT_LIMITS);
    b.received_ns = 1;
    b.precision = MESH_PREC_AUTO;
    mesh_status_t st = mesh_csv_parse(r->data, r->len, p, &b);
    checked_t c = {mesh_batch_good_rows(&b), mesh_batch_quarantined_rows(&b), 0};
    if (st != MESH_OK) {
        c.refused = b.error_rows - c.quarantined;
        for (size_t i = 0; i < b.nerrors && i < 5; i++)
            fprintf(stderr, "  row %u %s.%s: %s\n", b.errors[i].row, b.errors[i].product,
                    b.errors[i].column, b.errors[i].reason);
    }
    mesh_batch_free(&b);
    return c;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_deterministic(void **state)
{
    static const char *const args[] = {
        "factory --all --machines 4 --sensors 3 --duration 2m",
        "home --duration 30m",
        "health --all --patients 5 --duration 5m --glitch-rate 0.02",
        "trucks --scale 10 --duration 20m",
        "trucks --scale 10 --duration 20m --format csv --product diagnostics",
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(args); i++) {
        char with_seed[256];
        result_t a = gen(args[i]), b = gen(args[i]);
        assert_int_equal(a.rc, 0);
        assert_int_equal(b.rc, 0);
        assert_true(a.len > 0);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        snprintf(with_seed, sizeof with_seed, "%s --seed 2", args[i]);
        result_t c = gen(with_seed);
        assert_int_equal(c.rc, 0);
        assert_true(c.len != a.len || memcmp(a.data, c.data, a.len) != 0);
        result_free(&a);
        result_free(&b);
        result_free(&c);
    }
}

static void test_counts(void **state)
{
    struct {
        const char *args;
        size_t lines;
    } cases[] = {
        {"factory --machines 3 --sensors 2 --duration 60s", 3 * 2 * 60},
        {"factory --machines 3 --sensors 2 --duration 60s --interval 5s", 3 * 2 * 12},
        /* + 3 registry rows + 2 minutes x 1 line of production counts */
        {"factory --machines 3 --sensors 2 --duration 2m --all", 3 * 2 * 120 + 3 + 2},
        {"factory --machines 25 --sensors 1 --duration 1m --product production_counts", 3},
        {"factory --machines 3 --product machines --duration 0s", 3},
        {"factory --duration 10s", 50 * 20 * 10}, /* the defaults: 1000 sensors, 1 s */
        {"home --rooms 4 --duration 100s", 10 * (4 + 1)},
        {"home --duration 1h --product climate", 360 * 6},
        {"health --patients 5 --duration 30s", 5 * 30},
        {"health --patients 5 --duration 30s --interval 2s --all", 5 * 15 + 5},
        {"trucks --scale 7 --duration 100s --regular", 7 * 10 * 2},
        {"trucks --scale 7 --duration 100s --regular --product readings", 7 * 10},
        {"trucks --scale 7 --duration 95s --regular", 7 * 9 * 2}, /* whole intervals only */
        {"home --duration 1h --format csv --product energy", 360 + 1},
        {"trucks --scale 3 --duration 1m --format csv --regular", 3 * 6 + 1},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(cases); i++) {
        result_t r = gen(cases[i].args);
        assert_int_equal(r.rc, 0);
        if (r.lines != cases[i].lines)
            fail_msg("%s: %zu lines, expected %zu", cases[i].args, r.lines, cases[i].lines);
        result_free(&r);
    }
}

/* Every row of every scenario validates against the example contracts; health glitches and
 * trucks without a name are exactly what goes to quarantine. */
static void test_contracts_accept(void **state)
{
    result_t r = gen("factory --all --machines 12 --sensors 5 --duration 20m --anomaly M004@+3m");
    checked_t c = validate_lp(&r, "factory-a");
    assert_int_equal(c.refused, 0);
    assert_int_equal(c.quarantined, 0);
    assert_int_equal(c.good, r.lines);
    result_free(&r);

    r = gen("home --rooms 10 --duration 6h");
    c = validate_lp(&r, "home-42");
    assert_int_equal(c.refused, 0);
    assert_int_equal(c.good, r.lines);
    result_free(&r);

    r = gen("health --all --duration 15m --glitch-rate 0.005 --desaturate P000002@+1m");
    c = validate_lp(&r, "icu-3");
    assert_int_equal(c.refused, 0);
    size_t glitches = 0;
    const char *p = r.data;
    const char *s;
    size_t n;
    char buf[1024];
    while ((s = next_line(&p, &n)) != NULL) {
        const char *l = line_str(s, n, buf, sizeof buf);
        glitches += strstr(l, "heart_rate=0i") || strstr(l, "heart_rate=400i") ||
                    strstr(l, "spo2=0i") || strstr(l, "systolic=300i");
    }
    assert_true(glitches > 0);
    assert_int_equal(c.quarantined, glitches);
    assert_int_equal(c.good + c.quarantined, r.lines);
    result_free(&r);

    r = gen("trucks --scale 60 --duration 1h");
    c = validate_lp(&r, "fleet");
    assert_int_equal(c.refused, 0);
    size_t noname = 0;
    p = r.data;
    while ((s = next_line(&p, &n)) != NULL)
        noname += strncmp(s, "readings,name=", 14) != 0 && strncmp(s, "diagnostics,name=", 17) != 0;
    assert_true(noname > 0);
    assert_int_equal(c.quarantined, noname);
    assert_int_equal(c.good + c.quarantined, r.lines);
    result_free(&r);

    /* CSV of each product */
    static const struct {
        const char *args, *domain, *product;
    } csv[] = {
        {"factory --machines 3 --sensors 2 --duration 1m --format csv", "factory-a", "telemetry"},
        {"factory --machines 3 --format csv --product machines", "factory-a", "machines"},
        {"factory --machines 3 --duration 5m --format csv --product production_counts", "factory-a",
         "production_counts"},
        {"home --duration 10m --format csv", "home-42", "climate"},
        {"home --duration 10m --format csv --product energy", "home-42", "energy"},
        {"health --duration 1m --format csv --glitch-rate 0", "icu-3", "vitals"},
        {"health --format csv --product admissions", "icu-3", "admissions"},
        {"trucks --scale 5 --duration 5m --format csv --regular", "fleet", "readings"},
        {"trucks --scale 5 --duration 5m --format csv --product diagnostics --regular", "fleet",
         "diagnostics"},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(csv); i++) {
        r = gen(csv[i].args);
        assert_int_equal(r.rc, 0);
        if (strcmp(csv[i].domain, "fleet") == 0) /* bench/ loads these: time comes first */
            assert_int_equal(strncmp(r.data, "time,name,fleet,", 16), 0);
        c = validate_csv(&r, csv[i].domain, csv[i].product);
        if (c.refused || c.quarantined || c.good + 1 != r.lines)
            fail_msg("%s: %zu good, %zu quarantined, %zu refused of %zu lines", csv[i].args, c.good,
                     c.quarantined, c.refused, r.lines);
        result_free(&r);
    }
}

static void test_factory_ranges_and_anomaly(void **state)
{
    const char *base = "factory --machines 8 --sensors 3 --duration 15m --seed 5";
    char args[256];
    snprintf(args, sizeof args, "%s --anomaly M006@2026-01-01T00:10:00Z/90s", base);
    result_t plain = gen(base), spiked = gen(args);
    assert_int_equal(plain.rc, 0);
    assert_int_equal(spiked.rc, 0);
    assert_int_equal(plain.lines, spiked.lines);
    int64_t at = ts_of("2026-01-01T00:10:00Z"), end = at + 90 * MESH_NS_PER_SEC;
    const char *p = plain.data, *q = spiked.data;
    const char *s, *t;
    size_t n, m, in_window = 0, differ = 0;
    char b1[1024], b2[1024], machine[16], status[16];
    while ((s = next_line(&p, &n)) != NULL) {
        t = next_line(&q, &m);
        assert_non_null(t);
        const char *a = line_str(s, n, b1, sizeof b1);
        const char *b = line_str(t, m, b2, sizeof b2);
        int64_t ts = lp_ts(b);
        lp_text(b, "machine", machine, sizeof machine);
        bool in = strcmp(machine, "M006") == 0 && ts >= at && ts < end;
        double vib = lp_num(b, "vibration_rms"), temp = lp_num(b, "temperature");
        double rpm = lp_num(b, "rpm"), kw = lp_num(b, "power_kw"), pres = lp_num(b, "pressure");
        assert_true(temp > 15 && temp < 110);
        assert_true(rpm >= 0 && rpm <= 13000);
        assert_true(kw >= 0 && kw <= 200);
        assert_true(pres >= 0 && pres <= 260);
        lp_text(b, "status", status, sizeof status);
        assert_true(strcmp(status, "ok") == 0 || strcmp(status, "warn") == 0 ||
                    strcmp(status, "fail") == 0);
        if (in) {
            in_window++;
            assert_true(vib >= 10 && vib <= 30);
            assert_string_equal(status, "fail");
        } else {
            assert_true(vib >= 0 && vib < 10);
        }
        /* the anomaly changes its machine's rows from its start on (heat lingers), no others */
        if (strcmp(a, b) != 0) {
            differ++;
            assert_string_equal(machine, "M006");
            assert_true(ts >= at);
        }
    }
    assert_null(next_line(&q, &m));
    assert_int_equal(in_window, 90 * 3);
    assert_true(differ >= in_window);
    result_free(&plain);
    result_free(&spiked);
}

static void test_health_ranges_and_desaturation(void **state)
{
    const char *base = "health --patients 10 --duration 10m --glitch-rate 0";
    char args[256];
    snprintf(args, sizeof args, "%s --desaturate P000007@+4m", base);
    result_t plain = gen(base), desat = gen(args);
    assert_int_equal(plain.lines, desat.lines);
    int64_t at = ts_of("2026-01-01T00:04:00Z"), end = at + 60 * MESH_NS_PER_SEC;
    const char *p = plain.data, *q = desat.data;
    const char *s, *t;
    size_t n, m, low = 0;
    char b1[1024], b2[1024], pid[16];
    while ((s = next_line(&p, &n)) != NULL) {
        t = next_line(&q, &m);
        const char *a = line_str(s, n, b1, sizeof b1);
        const char *b = line_str(t, m, b2, sizeof b2);
        int64_t ts = lp_ts(b);
        lp_text(b, "patient_id", pid, sizeof pid);
        bool in = strcmp(pid, "P000007") == 0 && ts >= at && ts < end;
        double spo2 = lp_num(b, "spo2"), hr = lp_num(b, "heart_rate");
        double rr = lp_num(b, "resp_rate"), sys = lp_num(b, "systolic");
        double dia = lp_num(b, "diastolic"), temp = lp_num(b, "temperature");
        assert_true(hr >= 30 && hr <= 220);
        assert_true(rr >= 4 && rr <= 60);
        assert_true(sys >= 60 && sys <= 240 && dia >= 30 && dia < sys);
        assert_true(temp >= 35 && temp <= 41);
        if (in) {
            low++;
            assert_true(spo2 < 90 && spo2 >= 70);
        } else {
            assert_true(spo2 >= 92 && spo2 <= 100);
            assert_string_equal(a, b); /* the episode changes nothing else */
        }
    }
    assert_int_equal(low, 60);
    result_free(&plain);
    result_free(&desat);

    /* glitches: about 0.1 % by default, none with rate 0 */
    result_t r = gen("health --patients 20 --duration 30m");
    size_t glitches = 0;
    p = r.data;
    while ((s = next_line(&p, &n)) != NULL) {
        const char *l = line_str(s, n, b1, sizeof b1);
        glitches += strstr(l, "heart_rate=0i") || strstr(l, "heart_rate=400i") ||
                    strstr(l, "spo2=0i") || strstr(l, "systolic=300i");
    }
    assert_true(glitches >= 15 && glitches <= 60); /* 36000 readings x 0.001 */
    result_free(&r);
}

static void test_home_ranges(void **state)
{
    result_t r = gen("home --rooms 9 --duration 24h");
    const char *p = r.data, *s;
    size_t n, heating_on = 0, climate = 0;
    double kwh_prev = -1;
    char buf[1024];
    while ((s = next_line(&p, &n)) != NULL) {
        const char *l = line_str(s, n, buf, sizeof buf);
        if (strncmp(l, "climate,", 8) == 0) {
            climate++;
            double temp = lp_num(l, "temperature"), sp = lp_num(l, "setpoint");
            assert_true(temp > 8 && temp < 30);
            assert_true(fabs(temp - sp) < 8);
            assert_true(lp_num(l, "co2") >= 380 && lp_num(l, "co2") <= 5000);
            assert_true(lp_num(l, "humidity") >= 15 && lp_num(l, "humidity") <= 98);
            heating_on += strstr(l, "heating=true") != NULL;
        } else {
            assert_true(strncmp(l, "energy,meter=mains ", 19) == 0);
            double kwh = lp_num(l, "energy_kwh");
            assert_true(kwh >= kwh_prev);
            kwh_prev = kwh;
            assert_true(lp_num(l, "power_w") >= 0 && lp_num(l, "power_w") < 15000);
            assert_true(lp_num(l, "voltage") > 215 && lp_num(l, "voltage") < 245);
        }
    }
    assert_int_equal(climate, 8640 * 9);
    /* a January day: heating runs, but not all the time */
    assert_true(heating_on > climate / 20 && heating_on < climate * 3 / 4);
    result_free(&r);
}

typedef struct seen {
    int64_t ts;
    uint32_t truck;
    int meas;
} seen_t;

static int seen_cmp(const void *a, const void *b)
{
    const seen_t *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    if (x->truck != y->truck)
        return x->truck < y->truck ? -1 : 1;
    return x->meas - y->meas;
}

static void test_trucks_tsbs(void **state)
{
    /* regular: every truck, every interval, in TSBS order, TSBS ranges */
    result_t r = gen("trucks --scale 5 --duration 1h --regular");
    assert_int_equal(r.lines, 5 * 360 * 2);
    const char *p = r.data, *s;
    size_t n, i = 0;
    char buf[1024], name[32], want[32];
    int64_t t0 = ts_of("2026-01-01T00:00:00Z");
    while ((s = next_line(&p, &n)) != NULL) {
        const char *l = line_str(s, n, buf, sizeof buf);
        size_t epoch = i / 10, meas = (i / 5) % 2, truck = i % 5;
        snprintf(want, sizeof want, "truck_%zu", truck);
        assert_string_equal(lp_text(l, "name", name, sizeof name), want);
        assert_true(lp_ts(l) == t0 + (int64_t)epoch * 10 * MESH_NS_PER_SEC);
        if (meas == 0) {
            assert_true(strncmp(l, "readings,", 9) == 0);
            double lat = lp_num(l, "latitude"), lon = lp_num(l, "longitude");
            double vel = lp_num(l, "velocity"), fc = lp_num(l, "fuel_consumption");
            assert_true(lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180);
            assert_true(vel >= 0 && vel <= 100 && vel == floor(vel));
            assert_true(fc >= 0 && fc <= 50 && fabs(fc * 10 - round(fc * 10)) < 1e-6);
            assert_true(lp_num(l, "heading") >= 0 && lp_num(l, "heading") <= 360);
            assert_true(lp_num(l, "elevation") >= 0 && lp_num(l, "elevation") <= 5000);
        } else {
            assert_true(strncmp(l, "diagnostics,", 12) == 0);
            double fs = lp_num(l, "fuel_state"), load = lp_num(l, "current_load");
            assert_true(fs >= 0 && fs <= 1 && fabs(fs * 10 - round(fs * 10)) < 1e-9);
            assert_true(load >= 0 && load <= 5000 && load == floor(load));
            assert_non_null(strstr(l, ",status="));
            double st = lp_num(l, "status");
            assert_true(st >= 0 && st <= 5);
        }
        double cap = lp_num(l, "load_capacity");
        assert_true(cap == 1500 || cap == 2000 || cap == 5000);
        i++;
    }
    result_free(&r);

    /* irregular: about 11 % missing, late rows, blanked tags and fields, never duplicates */
    r = gen("trucks --scale 50 --duration 2h");
    size_t nominal = 50 * 720 * 2;
    assert_true(r.lines > nominal * 85 / 100 && r.lines < nominal * 93 / 100);
    seen_t *v = calloc(r.lines, sizeof *v);
    assert_non_null(v);
    size_t late = 0, partial = 0, k = 0;
    int64_t last = INT64_MIN;
    p = r.data;
    while ((s = next_line(&p, &n)) != NULL) {
        const char *l = line_str(s, n, buf, sizeof buf);
        int64_t ts = lp_ts(l);
        assert_true(ts >= t0 && ts < t0 + 7200 * MESH_NS_PER_SEC);
        late += ts < last;
        last = ts > last ? ts : last;
        lp_text(l, "name", name, sizeof name);
        int nf = 0;
        for (const char *c = strchr(l, ' '); c && *c && c < strrchr(l, ' '); c++)
            nf += *c == '=';
        bool readings = strncmp(l, "readings", 8) == 0;
        partial += nf < (readings ? 10 : 6) || name[0] == '\0' || !strstr(l, "fleet=") ||
                   !strstr(l, "driver=");
        v[k].ts = ts;
        v[k].truck = name[0] ? (uint32_t)strtoul(name + 6, NULL, 10) : 1000000 + (uint32_t)k;
        v[k].meas = readings ? 0 : 1;
        k++;
    }
    assert_true(late > 100);
    assert_true(partial > r.lines / 20 && partial < r.lines / 5); /* ~10 % fields, 1 % tags */
    qsort(v, k, sizeof *v, seen_cmp);
    for (size_t j = 1; j < k; j++)
        assert_true(seen_cmp(&v[j - 1], &v[j]) != 0);
    free(v);
    result_free(&r);
}

/* The generator's column tables agree with the example contracts: every column exists with
 * a matching type, the time column is the product's, tags come before fields. */
static void test_tables_match_contracts(void **state)
{
    for (size_t si = 0; si < MESH_ARRAY_LEN(scenarios); si++) {
        const scenario_t *sc = &scenarios[si];
        for (size_t pi = 0; pi < sc->nprods; pi++) {
            const prod_t *tp = &sc->prods[pi];
            const mesh_product_t *p = cat_lookup(&cat, sc->domain, tp->name);
            if (p == NULL)
                fail_msg("no contract for %s.%s", sc->domain, tp->name);
            bool fields = false;
            for (size_t i = 0; i < tp->ncols; i++) {
                const col_t *c = &tp->cols[i];
                int ci = mesh_product_col(p, c->name, strlen(c->name));
                if (ci < 0)
                    fail_msg("%s.%s has no column %s", sc->domain, tp->name, c->name);
                mesh_ltype_t t = p->cols[ci].type;
                bool ok = false;
                switch (c->kind) {
                case C_TAG:
                    ok = t == MESH_LT_STRING;
                    break;
                case C_TIME:
                    ok = t == MESH_LT_TIMESTAMP && ci == p->time_col;
                    break;
                case C_INT:
                    ok = t == MESH_LT_INTEGER;
                    break;
                case C_NUM:
                    ok = t == MESH_LT_NUMBER;
                    break;
                case C_STR:
                    ok = t == MESH_LT_STRING || t == MESH_LT_DATE;
                    break;
                case C_BOOL:
                    ok = t == MESH_LT_BOOLEAN;
                    break;
                }
                if (!ok)
                    fail_msg("%s.%s.%s: the generator's kind %d does not fit the contract",
                             sc->domain, tp->name, c->name, (int)c->kind);
                if (c->kind == C_TAG && fields)
                    fail_msg("%s.%s: tag %s after a field", sc->domain, tp->name, c->name);
                fields |= c->kind != C_TAG && c->kind != C_TIME;
            }
            /* every required column is generated */
            for (size_t i = 0; i < p->ncols; i++) {
                bool have = false;
                for (size_t j = 0; j < tp->ncols && !have; j++)
                    have = strcmp(tp->cols[j].name, p->cols[i].name) == 0;
                if (p->cols[i].required && !have)
                    fail_msg("%s.%s: required column %s is not generated", sc->domain, tp->name,
                             p->cols[i].name);
            }
        }
    }
}

static void test_number_format(void **state)
{
    char buf[OUT_BLOCK + OUT_ROW_MAX];
    out_t o;
    out_init(&o, NULL, FMT_LP, 1, factory_prods);
    o.buf = buf;
    static const struct {
        double v;
        int dec;
        const char *want;
    } cases[] = {
        {21.5, 1, "21.5"},         {21.0, 2, "21"},      {0.9, 1, "0.9"},
        {-0.00012, 5, "-0.00012"}, {1500, 0, "1500"},    {0.0004, 3, "0"},
        {-0.0004, 3, "0"},         {12.345, 2, "12.35"}, {1e300, 2, "1.0000000000000001e+300"},
        {38.72939, 5, "38.72939"}, {99.996, 2, "100"},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(cases); i++) {
        o.len = 0;
        put_fixed(&o, cases[i].v, cases[i].dec);
        buf[o.len] = '\0';
        assert_string_equal(buf, cases[i].want);
    }
    /* TSBS's FP truncation then our formatting gives the shortest text */
    o.len = 0;
    put_fixed(&o, fp_trunc(45.7075199, 5), 5);
    buf[o.len] = '\0';
    assert_string_equal(buf, "45.70751");
}

static void test_usage_errors(void **state)
{
    static const char *const bad[] = {
        "",
        "nosuch",
        "factory home",
        "factory --duration 1x",
        "factory --duration",
        "factory --interval 0s",
        "factory --format xml",
        "factory --product nosuch",
        "factory --product telemetry --all",
        "factory --format csv --all",
        "factory --machines 0",
        "factory --machines 10000",
        "factory --sensors 100",
        "factory --rooms 3",
        "home --machines 3",
        "health --scale 3",
        "trucks --patients 3",
        "factory --anomaly M051@+1m",
        "factory --anomaly M001",
        "factory --anomaly M001@+2h",
        "factory --anomaly M001@yesterday",
        "factory --anomaly M001@+1m/0s",
        "health --desaturate P000021@+1m",
        "health --glitch-rate 2",
        "trucks --scale 0",
        "trucks --seed -1",
        "trucks --start 2026-13-01",
        "trucks --bogus",
        "trucks --regular=yes",
        "--machines 3 factory",
    };
    /* the messages go to stderr: keep them out of the test's output */
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *null = fopen("/dev/null", "w");
    assert_true(saved >= 0 && null != NULL);
    assert_true(dup2(fileno(null), STDERR_FILENO) >= 0);
    size_t failed = 0;
    for (size_t i = 0; i < MESH_ARRAY_LEN(bad); i++) {
        result_t r = gen(bad[i]);
        /* 2: invalid input, as for every meshctl command */
        if (r.rc != 2 || r.len != 0) {
            failed++;
            printf("'%s' exited %d with %zu bytes, expected 2 and none\n", bad[i], r.rc, r.len);
        }
        result_free(&r);
    }
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    fclose(null);
    assert_int_equal(failed, 0);
    result_t r = gen("--help");
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.data, "Usage: meshctl generate SCENARIO"));
    for (size_t i = 0; i < MESH_ARRAY_LEN(optdefs); i++)
        assert_non_null(strstr(r.data, optdefs[i].name)); /* every option is documented */
    result_free(&r);
    /* the dispatcher may also pass the scenario first */
    char a0[] = "trucks", a1[] = "--scale", a2[] = "2", a3[] = "--duration", a4[] = "10s";
    char *argv[] = {a0, a1, a2, a3, a4, NULL};
    FILE *f = tmpfile();
    assert_int_equal(generate_to(5, argv, f), 0);
    assert_int_equal(ftell(f) > 0, 1);
    fclose(f);
}

/* The public entry point writes to stdout. */
static void test_stdout(void **state)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(f), STDOUT_FILENO) >= 0);
    char a0[] = "generate", a1[] = "home", a2[] = "--duration", a3[] = "1m";
    char *argv[] = {a0, a1, a2, a3, NULL};
    int rc = mesh_cli_generate(4, argv);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    assert_int_equal(rc, 0);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    size_t lines = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        lines += c == '\n';
    assert_int_equal(lines, 6 * 7);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_contracts_accept),
        cmocka_unit_test(test_factory_ranges_and_anomaly),
        cmocka_unit_test(test_health_ranges_and_desaturation),
        cmocka_unit_test(test_home_ranges),
        cmocka_unit_test(test_trucks_tsbs),
        cmocka_unit_test(test_tables_match_contracts),
        cmocka_unit_test(test_number_format),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_stdout),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
