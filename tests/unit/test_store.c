/*
 * test_store.c - a domain's SQLite store: product tables, batches (counts, merge on the
 * primary key, idempotency keys, quarantine, unique conflicts), transactions and savepoints,
 * planning and scanning (every operator, ORDER BY, LIMIT/OFFSET, used flags, estimates),
 * reader snapshots, contract history, product changes (ALTER ADD COLUMN, rebuilds that keep
 * rows, rebuilds refused) and drop, checkpoint and integrity.
 *
 * Products are built by hand on the model of catalog/contract.h so the store is tested on
 * its own.
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <pthread.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/util.h"
#include "ingest/batch.h"
#include "store/internal.h"
#include "store/store.h"

int main(void);

/* ---- products ------------------------------------------------------------------------------- */

typedef struct prod {
    mesh_product_t p;
    mesh_column_t cols[12];
    int key[4];
} prod_t;

static prod_t *prod_new(const char *name, mesh_on_invalid_t on_invalid)
{
    prod_t *x = calloc(1, sizeof *x);
    assert_non_null(x);
    x->p.domain = (char *)"factory-a";
    x->p.name = (char *)name;
    x->p.cols = x->cols;
    x->p.key_cols = x->key;
    x->p.time_col = -1;
    x->p.on_invalid = on_invalid;
    return x;
}

static mesh_column_t *col(prod_t *x, const char *name, mesh_ltype_t type)
{
    mesh_column_t *c = &x->cols[x->p.ncols++];
    memset(c, 0, sizeof *c);
    c->name = (char *)name;
    c->type = type;
    c->min_len = c->max_len = -1;
    return c;
}

static void key(prod_t *x, mesh_column_t *c)
{
    c->primary_key = true;
    c->required = true;
    c->pk_position = (int)x->p.nkey + 1;
    x->key[x->p.nkey++] = (int)(c - x->cols);
}

static int cidx(const prod_t *x, const char *name)
{
    for (size_t i = 0; i < x->p.ncols; i++)
        if (strcmp(x->cols[i].name, name) == 0)
            return (int)i;
    fail_msg("no column %s", name);
    return -1;
}

/* readings: device (string, key 1), ts (timestamp, key 2, time column), temp (number),
 * status (string), serial (string, unique). Bad rows refuse the batch. */
static prod_t *readings(void)
{
    prod_t *x = prod_new("readings", MESH_ON_INVALID_REJECT);
    key(x, col(x, "device", MESH_LT_STRING));
    key(x, col(x, "ts", MESH_LT_TIMESTAMP));
    x->p.time_col = 1;
    col(x, "temp", MESH_LT_NUMBER);
    col(x, "status", MESH_LT_STRING);
    col(x, "serial", MESH_LT_STRING)->unique = true;
    return x;
}

/* events: no key; id (integer, unique), msg (string), level (integer 0..10), at (timestamp,
 * time column). Bad rows go to quarantine. */
static prod_t *events(void)
{
    prod_t *x = prod_new("events", MESH_ON_INVALID_QUARANTINE);
    col(x, "id", MESH_LT_INTEGER)->unique = true;
    col(x, "msg", MESH_LT_STRING);
    mesh_column_t *c = col(x, "level", MESH_LT_INTEGER);
    c->has_min = c->has_max = true;
    c->min = 0;
    c->max = 10;
    col(x, "at", MESH_LT_TIMESTAMP);
    x->p.time_col = 3;
    return x;
}

/* ---- fixture -------------------------------------------------------------------------------- */

typedef struct fx {
    char dir[64];
    char path[128];
    mesh_store_t *s;
    prod_t *rd, *ev;
} fx_t;

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static mesh_store_t *open_store(const char *path)
{
    mesh_store_t *s = NULL;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_store_open(path, NULL, &s, &err);
    if (st != MESH_OK)
        print_message("open: %s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    return s;
}

static void put(mesh_store_t *s, const prod_t *old, const prod_t *next)
{
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_store_put_product(s, old ? &old->p : NULL, &next->p, &err);
    if (st != MESH_OK)
        print_message("put_product: %s\n", err.msg);
    assert_int_equal(st, MESH_OK);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/meshd-test-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof f->path, "%s/data.db", f->dir);
    f->s = open_store(f->path);
    f->rd = readings();
    f->ev = events();
    put(f->s, NULL, f->rd);
    put(f->s, NULL, f->ev);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    mesh_store_close(f->s);
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f->rd);
    free(f->ev);
    free(f);
    return 0;
}

/* ---- batches -------------------------------------------------------------------------------- */

static void batch_new(mesh_batch_t *b)
{
    mesh_batch_init(b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    b->precision = MESH_PREC_NS;
}

/* A readings row; NULL strings and NAN temps are left absent. */
static void rd_row(mesh_batch_t *b, const prod_t *x, uint32_t row, const char *device, int64_t ts,
                   double temp, const char *status, const char *serial)
{
    assert_int_equal(mesh_batch_row_begin(b, &x->p, row), MESH_OK);
    mesh_batch_set_text(b, 0, device, strlen(device));
    mesh_batch_set_int(b, 1, ts);
    if (temp == temp)
        mesh_batch_set_real(b, 2, temp);
    if (status)
        mesh_batch_set_text(b, 3, status, strlen(status));
    if (serial)
        mesh_batch_set_text(b, 4, serial, strlen(serial));
    mesh_batch_row_end(b, "raw", 3);
}

static void ev_row(mesh_batch_t *b, const prod_t *x, uint32_t row, int64_t id, const char *msg,
                   int64_t level, int64_t at)
{
    assert_int_equal(mesh_batch_row_begin(b, &x->p, row), MESH_OK);
    mesh_batch_set_int(b, 0, id);
    if (msg)
        mesh_batch_set_text(b, 1, msg, strlen(msg));
    mesh_batch_set_int(b, 2, level);
    if (at)
        mesh_batch_set_int(b, 3, at);
    char raw[64];
    snprintf(raw, sizeof raw, "id=%lld level=%lld", (long long)id, (long long)level);
    mesh_batch_row_end(b, raw, strlen(raw));
}

/* Applies a batch in its own transaction committed at seq. */
static mesh_status_t apply(mesh_store_t *s, uint64_t seq, mesh_batch_t *b, const char *idem,
                           mesh_apply_result_t *res, mesh_err_t *err)
{
    mesh_apply_result_t tmp;
    mesh_err_t e2;
    if (err == NULL)
        err = &e2;
    mesh_err_clear(err);
    assert_int_equal(mesh_store_begin(s, err), MESH_OK);
    mesh_status_t st = mesh_store_apply_batch(s, seq, b, idem, res ? res : &tmp, err);
    if (st == MESH_OK)
        assert_int_equal(mesh_store_commit(s, seq, err), MESH_OK);
    else
        mesh_store_commit(s, seq, err); /* the refused batch left nothing: commit is empty */
    return st;
}

static void apply_ok(mesh_store_t *s, uint64_t seq, mesh_batch_t *b, mesh_apply_result_t *res)
{
    mesh_err_t err;
    mesh_status_t st = apply(s, seq, b, NULL, res, &err);
    if (st != MESH_OK)
        print_message("apply: %s\n", err.msg);
    assert_int_equal(st, MESH_OK);
}

/* ---- scanning ------------------------------------------------------------------------------- */

static void plan_init(mesh_scan_plan_t *pl)
{
    memset(pl, 0, sizeof *pl);
    pl->cols_used = ~0ULL;
}

static void plan_con(mesh_scan_plan_t *pl, int c, mesh_op_t op)
{
    pl->cons[pl->ncons].col = c;
    pl->cons[pl->ncons].op = op;
    pl->ncons++;
}

static mesh_datum_t dint(int64_t v)
{
    mesh_datum_t d = {.type = MESH_V_INT, .i = v};
    return d;
}

static mesh_datum_t dtext(const char *s)
{
    mesh_datum_t d = {.type = MESH_V_TEXT, .s = s, .n = strlen(s)};
    return d;
}

/* Runs a scan; returns the row count and the int (or text's first char) values of column vc
 * into vals. */
static int scan(mesh_store_reader_t *r, const mesh_product_t *p, bool quar, mesh_scan_plan_t *pl,
                const mesh_datum_t *args, int nargs, int vc, int64_t *vals)
{
    mesh_scan_t *sc = NULL;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_scan_open(r, p, quar, pl, args, nargs, &sc, &err);
    if (st != MESH_OK)
        print_message("scan_open: %s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    int n = 0, rc;
    while ((rc = mesh_scan_next(sc)) == 1) {
        if (vals && vc >= 0) {
            mesh_datum_t d;
            mesh_scan_value(sc, vc, &d);
            vals[n] = d.type == MESH_V_INT    ? d.i
                      : d.type == MESH_V_TEXT ? (int64_t)(unsigned char)d.s[0]
                      : d.type == MESH_V_REAL ? (int64_t)d.d
                                              : -999;
        }
        n++;
    }
    if (rc < 0)
        print_message("scan: %s\n", mesh_scan_error(sc));
    assert_int_equal(rc, 0);
    mesh_scan_close(sc);
    return n;
}

static int count_rows(mesh_store_t *s, const mesh_product_t *p, bool quar)
{
    mesh_store_reader_t *r;
    mesh_err_t err;
    assert_int_equal(mesh_store_reader_open(s, &r, &err), MESH_OK);
    assert_int_equal(mesh_store_reader_begin(r, &err), MESH_OK);
    mesh_scan_plan_t pl;
    plan_init(&pl);
    mesh_store_plan(s, p, quar, &pl);
    int n = scan(r, p, quar, &pl, NULL, 0, -1, NULL);
    mesh_store_reader_end(r);
    mesh_store_reader_close(r);
    return n;
}

/* The row of readings with the given key: fills temp (NAN when NULL) and status. Returns
 * false when there is no such row. */
static bool rd_get(mesh_store_t *s, const prod_t *x, const char *device, int64_t ts, double *temp,
                   char *status, size_t cap)
{
    mesh_store_reader_t *r;
    mesh_err_t err;
    assert_int_equal(mesh_store_reader_open(s, &r, &err), MESH_OK);
    mesh_scan_plan_t pl;
    plan_init(&pl);
    plan_con(&pl, 0, MESH_OP_EQ);
    plan_con(&pl, 1, MESH_OP_EQ);
    mesh_store_plan(s, &x->p, false, &pl);
    mesh_datum_t args[2] = {dtext(device), dint(ts)};
    mesh_scan_t *sc;
    assert_int_equal(mesh_scan_open(r, &x->p, false, &pl, args, 2, &sc, &err), MESH_OK);
    bool found = mesh_scan_next(sc) == 1;
    if (found) {
        mesh_datum_t d;
        mesh_scan_value(sc, 2, &d);
        *temp = d.type == MESH_V_REAL ? d.d : d.type == MESH_V_INT ? (double)d.i : nan("");
        mesh_scan_value(sc, 3, &d);
        snprintf(status, cap, "%.*s", d.type == MESH_V_TEXT ? (int)d.n : 0,
                 d.type == MESH_V_TEXT ? d.s : "");
        assert_int_equal(mesh_scan_next(sc), 0);
    }
    mesh_scan_close(sc);
    mesh_store_reader_close(r);
    return found;
}

#define T0 1795459508000000000LL

/* ---- tests: open, batches ------------------------------------------------------------------- */

static void test_open_and_applied_seq(void **state)
{
    fx_t *f = *state;
    assert_int_equal(mesh_store_applied_seq(f->s), 0);
    assert_string_equal(mesh_store_path(f->s), f->path);
    mesh_err_t err;
    assert_int_equal(mesh_store_begin(f->s, &err), MESH_OK);
    assert_int_equal(mesh_store_commit(f->s, 41, &err), MESH_OK);
    assert_int_equal(mesh_store_applied_seq(f->s), 41);
    mesh_store_close(f->s);
    f->s = open_store(f->path);
    assert_int_equal(mesh_store_applied_seq(f->s), 41);
    /* a rolled back transaction does not move it */
    assert_int_equal(mesh_store_begin(f->s, &err), MESH_OK);
    mesh_store_rollback(f->s);
    assert_int_equal(mesh_store_applied_seq(f->s), 41);
    mesh_store_close(NULL);
    /* a file that is not a database */
    char bad[160];
    snprintf(bad, sizeof bad, "%s/junk.db", f->dir);
    FILE *fp = fopen(bad, "w");
    fputs("this is not a database, not at all, not even close to one.......", fp);
    fclose(fp);
    mesh_store_t *s = (mesh_store_t *)&s;
    mesh_err_clear(&err);
    assert_int_not_equal(mesh_store_open(bad, NULL, &s, &err), MESH_OK);
    assert_true(strlen(err.msg) > 0);
}

static void test_apply_counts(void **state)
{
    fx_t *f = *state;
    mesh_product_stats_t st;
    assert_int_equal(mesh_store_product_stats(f->s, "nope", &st), MESH_NOT_FOUND);
    assert_int_equal(st.rows, 0);

    mesh_batch_t b;
    batch_new(&b);
    for (int i = 0; i < 10; i++)
        rd_row(&b, f->rd, (uint32_t)i + 1, i % 2 ? "dev-b" : "dev-a", T0 + i, 20.0 + i, "ok", NULL);
    ev_row(&b, f->ev, 11, 1, "boot", 3, T0 + 100);
    assert_false(mesh_batch_failed(&b));
    mesh_apply_result_t res;
    apply_ok(f->s, 7, &b, &res);
    mesh_batch_free(&b);
    assert_int_equal(res.seq, 7);
    assert_int_equal(res.rows, 11);
    assert_int_equal(res.quarantined, 0);
    assert_false(res.duplicate);
    assert_int_equal(mesh_store_applied_seq(f->s), 7);

    assert_int_equal(mesh_store_product_stats(f->s, "readings", &st), MESH_OK);
    assert_int_equal(st.rows, 10);
    assert_int_equal(st.quarantined, 0);
    assert_int_equal(st.last_write_ns, T0 + 9); /* the newest time of the rows */
    assert_int_equal(mesh_store_product_stats(f->s, "events", &st), MESH_OK);
    assert_int_equal(st.rows, 1);
    assert_int_equal(st.last_write_ns, T0 + 100);
    assert_int_equal(count_rows(f->s, &f->rd->p, false), 10);

    /* counts survive a reopen */
    mesh_store_close(f->s);
    f->s = open_store(f->path);
    assert_int_equal(mesh_store_product_stats(f->s, "readings", &st), MESH_OK);
    assert_int_equal(st.rows, 10);
    assert_int_equal(st.last_write_ns, T0 + 9);
    assert_int_equal(mesh_store_applied_seq(f->s), 7);

    /* an empty batch changes nothing */
    batch_new(&b);
    apply_ok(f->s, 8, &b, &res);
    mesh_batch_free(&b);
    assert_int_equal(res.rows, 0);
    assert_int_equal(mesh_store_product_stats(f->s, "readings", &st), MESH_OK);
    assert_int_equal(st.rows, 10);
}

static void test_merge_on_key(void **state)
{
    fx_t *f = *state;
    mesh_batch_t b;
    batch_new(&b);
    rd_row(&b, f->rd, 1, "dev-a", T0, 21.5, "ok", "S1");
    apply_ok(f->s, 1, &b, NULL);
    mesh_batch_free(&b);

    /* the same key again with temp absent: status replaced, temp and serial kept */
    batch_new(&b);
    rd_row(&b, f->rd, 1, "dev-a", T0, nan(""), "warn", NULL);
    mesh_apply_result_t res;
    apply_ok(f->s, 2, &b, &res);
    mesh_batch_free(&b);
    assert_int_equal(res.rows, 1);
    double temp;
    char status[16];
    assert_true(rd_get(f->s, f->rd, "dev-a", T0, &temp, status, sizeof status));
    assert_true(temp == 21.5);
    assert_string_equal(status, "warn");
    mesh_product_stats_t st;
    mesh_store_product_stats(f->s, "readings", &st);
    assert_int_equal(st.rows, 1); /* a merge is not a new row */
    assert_int_equal(count_rows(f->s, &f->rd->p, false), 1);

    /* the same key twice inside one batch: the later values win */
    batch_new(&b);
    rd_row(&b, f->rd, 1, "dev-a", T0, 30.0, NULL, NULL);
    rd_row(&b, f->rd, 2, "dev-a", T0, 31.0, "fail", NULL);
    rd_row(&b, f->rd, 3, "dev-a", T0 + 1, 1.0, NULL, NULL);
    apply_ok(f->s, 3, &b, &res);
    mesh_batch_free(&b);
    assert_true(rd_get(f->s, f->rd, "dev-a", T0, &temp, status, sizeof status));
    assert_true(temp == 31.0);
    assert_string_equal(status, "fail");
    mesh_store_product_stats(f->s, "readings", &st);
    assert_int_equal(st.rows, 2);
    assert_int_equal(count_rows(f->s, &f->rd->p, false), 2);
    /* a row of its own key changing its unique value is fine */
    batch_new(&b);
    rd_row(&b, f->rd, 1, "dev-a", T0, nan(""), NULL, "S2");
    apply_ok(f->s, 4, &b, NULL);
    mesh_batch_free(&b);
}

static void test_idempotency(void **state)
{
    fx_t *f = *state;
    mesh_batch_t b;
    batch_new(&b);
    rd_row(&b, f->rd, 1, "dev-a", T0, 1.0, NULL, NULL);
    rd_row(&b, f->rd, 2, "dev-a", T0 + 1, 2.0, NULL, NULL);
    mesh_apply_result_t res;
    mesh_err_t err;
    assert_int_equal(apply(f->s, 5, &b, "key-1", &res, &err), MESH_OK);
    assert_false(res.duplicate);
    assert_int_equal(res.rows, 2);

    /* the same key again: nothing written, the first outcome reported */
    mesh_batch_free(&b);
    batch_new(&b);
    rd_row(&b, f->rd, 1, "dev-z", T0, 1.0, NULL, NULL);
    assert_int_equal(apply(f->s, 9, &b, "key-1", &res, &err), MESH_OK);
    assert_true(res.duplicate);
    assert_int_equal(res.seq, 5);
    assert_int_equal(res.rows, 2);
    assert_int_equal(count_rows(f->s, &f->rd->p, false), 2);
    mesh_apply_result_t look;
    assert_int_equal(mesh_store_idem_lookup(f->s, "key-1", &look), MESH_OK);
    assert_int_equal(look.seq, 5);
    assert_true(look.duplicate);
    assert_int_equal(mesh_store_idem_lookup(f->s, "key-2", &look), MESH_NOT_FOUND);

    /* without a key (NULL or empty) the batch applies */
    assert_int_equal(apply(f->s, 10, &b, "", &res, &err), MESH_OK);
    assert_false(res.duplicate);
    assert_int_equal(count_rows(f->s, &f->rd->p, false), 3);
    mesh_batch_free(&b);

    /* keys survive a reopen and expire */
    mesh_store_close(f->s);
    f->s = open_store(f->path);
    assert_int_equal(mesh_store_idem_lookup(f->s, "key-1", &look), MESH_OK);
    assert_int_equal(mesh_store_idem_expire(f->s, mesh_now_ns() - 3600 * MESH_NS_PER_SEC, &err),
                     MESH_OK);
    assert_int_equal(mesh_store_idem_lookup(f->s, "key-1", &look), MESH_OK);
    assert_int_equal(mesh_store_idem_expire(f->s, mesh_now_ns() + 1, &err), MESH_OK);
    assert_int_equal(mesh_store_idem_lookup(f->s, "key-1", &look), MESH_NOT_FOUND);
}

static void test_refused_batch_keeps_no_key(void **state)
{
    fx_t *f = *state;
    mesh_batch_t b;
    batch_new(&b);
    ev_row(&b, f->ev, 1, 1, "a", 1, T0);
    apply_ok(f->s, 1, &b, NULL);
    mesh_batch_free(&b);
    /* a batch refused for a unique conflict does not record its idempotency key */
    batch_new(&b);
    ev_row(&b, f->ev, 1, 1, "dup", 1, T0);
    mesh_err_t err;
    mesh_apply_result_t res;
    assert_int_equal(apply(f->s, 2, &b, "k", &res, &err), MESH_CONFLICT);
    mesh_batch_free(&b);
    mesh_apply_result_t look;
    assert_int_equal(mesh_store_idem_lookup(f->s, "k", &look), MESH_NOT_FOUND);
}

static void test_quarantine(void **state)
{
    fx_t *f = *state;
    mesh_batch_t b;
    batch_new(&b);
    ev_row(&b, f->ev, 1, 1, "ok", 5, T0);
    ev_row(&b, f->ev, 2, 2, "too loud", 11, T0 + 1); /* level out of range */
    ev_row(&b, f->ev, 3, 3, "fine", 0, 0);           /* at absent: the receive time */
    ev_row(&b, f->ev, 4, 4, "negative", -1, T0 + 3);
    assert_false(mesh_batch_failed(&b));
    assert_int_equal(mesh_batch_good_rows(&b), 2);
    assert_int_equal(mesh_batch_quarantined_rows(&b), 2);
    mesh_apply_result_t res;
    apply_ok(f->s, 3, &b, &res);
    mesh_batch_free(&b);
    assert_int_equal(res.rows, 2);
    assert_int_equal(res.quarantined, 2);
    mesh_product_stats_t st;
    assert_int_equal(mesh_store_product_stats(f->s, "events", &st), MESH_OK);
    assert_int_equal(st.rows, 2);
    assert_int_equal(st.quarantined, 2);
    assert_int_equal(count_rows(f->s, &f->ev->p, false), 2);
    assert_int_equal(count_rows(f->s, &f->ev->p, true), 2);
    /* another product's quarantine is separate */
    assert_int_equal(count_rows(f->s, &f->rd->p, true), 0);

    /* the quarantine view: id, received_at, source_row, reason, raw */
    assert_string_equal(mesh_quarantine_cols[0], "id");
    assert_string_equal(mesh_quarantine_cols[2], "source_row");
    mesh_store_reader_t *r;
    mesh_err_t err;
    assert_int_equal(mesh_store_reader_open(f->s, &r, &err), MESH_OK);
    mesh_scan_plan_t pl;
    plan_init(&pl);
    pl.norder = 1;
    pl.order[0].col = 2;
    mesh_store_plan(f->s, &f->ev->p, true, &pl);
    assert_true(pl.order_used);
    mesh_scan_t *sc;
    assert_int_equal(mesh_scan_open(r, &f->ev->p, true, &pl, NULL, 0, &sc, &err), MESH_OK);
    assert_int_equal(mesh_scan_next(sc), 1);
    mesh_datum_t d;
    mesh_scan_value(sc, 2, &d);
    assert_int_equal(d.type, MESH_V_INT);
    assert_int_equal(d.i, 2);
    mesh_scan_value(sc, 3, &d);
    assert_int_equal(d.type, MESH_V_TEXT);
    assert_true(d.n > 0);
    mesh_scan_value(sc, 4, &d);
    assert_int_equal(d.type, MESH_V_TEXT);
    assert_int_equal(d.n, strlen("id=2 level=11"));
    assert_memory_equal(d.s, "id=2 level=11", d.n);
    mesh_scan_value(sc, 1, &d);
    assert_int_equal(d.type, MESH_V_INT);
    assert_true(d.i > 0);
    mesh_scan_value(sc, 9, &d); /* out of range: NULL */
    assert_int_equal(d.type, MESH_V_NULL);
    assert_int_equal(mesh_scan_next(sc), 1);
    mesh_scan_value(sc, 2, &d);
    assert_int_equal(d.i, 4);
    assert_int_equal(mesh_scan_next(sc), 0);
    mesh_scan_close(sc);
    /* the id constraint on the quarantine view */
    plan_init(&pl);
    plan_con(&pl, 2, MESH_OP_EQ);
    mesh_store_plan(f->s, &f->ev->p, true, &pl);
    assert_true(pl.cons[0].used);
    mesh_datum_t a = dint(4);
    assert_int_equal(scan(r, &f->ev->p, true, &pl, &a, 1, -1, NULL), 1);
    mesh_store_reader_close(r);
}

static void test_unique_conflict_refuses_batch(void **state)
{
    fx_t *f = *state;
    mesh_batch_t b;
    batch_new(&b);
    ev_row(&b, f->ev, 1, 1, "a", 1, T0);
    ev_row(&b, f->ev, 2, 2, "b", 1, T0 + 1);
    rd_row(&b, f->rd, 3, "dev-a", T0, 1.0, NULL, "S1");
    apply_ok(f->s, 1, &b, NULL);
    mesh_batch_free(&b);

    /* a table without a key: the third row repeats id 1 */
    batch_new(&b);
    rd_row(&b, f->rd, 1, "dev-b", T0, 2.0, NULL, "S2"); /* another part, applied first */
    ev_row(&b, f->ev, 2, 3, "c", 1, T0 + 2);
    ev_row(&b, f->ev, 3, 4, "d", 1, T0 + 3);
    ev_row(&b, f->ev, 4, 1, "dup", 1, T0 + 4);
    mesh_err_t err;
    mesh_apply_result_t res;
    assert_int_equal(apply(f->s, 2, &b, NULL, &res, &err), MESH_CONFLICT);
    mesh_batch_free(&b);
    assert_int_equal(count_rows(f->s, &f->ev->p, false), 2);
    assert_int_equal(count_rows(f->s, &f->rd->p, false), 1);
    mesh_product_stats_t st;
    mesh_store_product_stats(f->s, "events", &st);
    assert_int_equal(st.rows, 2);
    mesh_store_product_stats(f->s, "readings", &st);
    assert_int_equal(st.rows, 1);

    /* a table with a key: a new key whose unique column repeats another row's */
    batch_new(&b);
    rd_row(&b, f->rd, 1, "dev-c", T0, 3.0, NULL, "S9");
    rd_row(&b, f->rd, 2, "dev-d", T0, 3.0, NULL, "S1");
    mesh_err_clear(&err);
    assert_int_equal(apply(f->s, 3, &b, NULL, &res, &err), MESH_CONFLICT);
    assert_non_null(strstr(err.msg, "readings"));
    mesh_batch_free(&b);
    assert_int_equal(count_rows(f->s, &f->rd->p, false), 1);
    /* an existing key updated to another row's unique value */
    batch_new(&b);
    rd_row(&b, f->rd, 1, "dev-e", T0, 3.0, NULL, "S5");
    apply_ok(f->s, 4, &b, NULL);
    mesh_batch_free(&b);
    batch_new(&b);
    rd_row(&b, f->rd, 1, "dev-e", T0, nan(""), NULL, "S1");
    assert_int_equal(apply(f->s, 5, &b, NULL, &res, &err), MESH_CONFLICT);
    mesh_batch_free(&b);
    mesh_store_product_stats(f->s, "readings", &st);
    assert_int_equal(st.rows, 2);
    assert_int_equal(mesh_store_applied_seq(f->s), 5);
    assert_int_equal(mesh_store_integrity(f->s, &err), MESH_OK);
}

static void test_savepoints(void **state)
{
    fx_t *f = *state;
    mesh_err_t err;
    mesh_batch_t b1, b2;
    batch_new(&b1);
    ev_row(&b1, f->ev, 1, 1, "kept", 1, T0);
    batch_new(&b2);
    ev_row(&b2, f->ev, 1, 2, "undone", 1, T0);
    mesh_apply_result_t res;
    assert_int_equal(mesh_store_begin(f->s, &err), MESH_OK);
    assert_int_equal(mesh_store_apply_savepoint_begin(f->s, &err), MESH_OK);
    assert_int_equal(mesh_store_apply_batch(f->s, 1, &b1, NULL, &res, &err), MESH_OK);
    assert_int_equal(mesh_store_apply_savepoint_end(f->s, true, &err), MESH_OK);
    assert_int_equal(mesh_store_apply_savepoint_begin(f->s, &err), MESH_OK);
    assert_int_equal(mesh_store_apply_batch(f->s, 2, &b2, "idem-2", &res, &err), MESH_OK);
    assert_int_equal(mesh_store_apply_savepoint_end(f->s, false, &err), MESH_OK);
    mesh_product_stats_t st;
    mesh_store_product_stats(f->s, "events", &st);
    assert_int_equal(st.rows, 1); /* the undone record's counts are forgotten */
    assert_int_equal(mesh_store_commit(f->s, 2, &err), MESH_OK);
    assert_int_equal(count_rows(f->s, &f->ev->p, false), 1);
    mesh_apply_result_t look;
    assert_int_equal(mesh_store_idem_lookup(f->s, "idem-2", &look), MESH_NOT_FOUND);

    /* a whole transaction rolled back */
    assert_int_equal(mesh_store_begin(f->s, &err), MESH_OK);
    assert_int_equal(mesh_store_apply_batch(f->s, 3, &b2, NULL, &res, &err), MESH_OK);
    mesh_store_product_stats(f->s, "events", &st);
    assert_int_equal(st.rows, 2);
    mesh_store_rollback(f->s);
    mesh_store_product_stats(f->s, "events", &st);
    assert_int_equal(st.rows, 1);
    assert_int_equal(count_rows(f->s, &f->ev->p, false), 1);
    assert_int_equal(mesh_store_applied_seq(f->s), 2);
    mesh_batch_free(&b1);
    mesh_batch_free(&b2);
}

/* ---- planning and scanning ------------------------------------------------------------------ */

/* events 1..10 with level = id % 5, msg NULL for even ids */
static void fill_events(fx_t *f)
{
    mesh_batch_t b;
    batch_new(&b);
    for (int i = 1; i <= 10; i++)
        ev_row(&b, f->ev, (uint32_t)i, i, i % 2 ? "odd" : NULL, i % 5, T0 + i);
    apply_ok(f->s, 1, &b, NULL);
    mesh_batch_free(&b);
}

static void test_scan_operators(void **state)
{
    fx_t *f = *state;
    fill_events(f);
    mesh_store_reader_t *r;
    mesh_err_t err;
    assert_int_equal(mesh_store_reader_open(f->s, &r, &err), MESH_OK);
    assert_int_equal(mesh_store_reader_begin(r, &err), MESH_OK);
    struct {
        int col;
        mesh_op_t op;
        bool has_arg;
        mesh_datum_t arg;
        int want;
    } cases[] = {
        {0, MESH_OP_EQ, true, dint(3), 1},
        {0, MESH_OP_GT, true, dint(3), 7},
        {0, MESH_OP_GE, true, dint(3), 8},
        {0, MESH_OP_LT, true, dint(3), 2},
        {0, MESH_OP_LE, true, dint(3), 3},
        {0, MESH_OP_NE, true, dint(3), 9},
        {1, MESH_OP_ISNULL, false, {0}, 5},
        {1, MESH_OP_ISNOTNULL, false, {0}, 5},
        {1, MESH_OP_IS, true, {.type = MESH_V_NULL}, 5},
        {1, MESH_OP_ISNOT, true, {.type = MESH_V_NULL}, 5},
        {1, MESH_OP_IS, true, dtext("odd"), 5},
        {1, MESH_OP_EQ, true, dtext("odd"), 5},
        {1, MESH_OP_EQ, true, {.type = MESH_V_NULL}, 0}, /* = NULL is never true */
        {2, MESH_OP_EQ, true, dint(0), 2},
        {2, MESH_OP_GE, true, {.type = MESH_V_REAL, .d = 2.5}, 4},
        {3, MESH_OP_GT, true, dint(T0 + 8), 2},
        {3, MESH_OP_LE, true, dint(T0), 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mesh_scan_plan_t pl;
        plan_init(&pl);
        plan_con(&pl, cases[i].col, cases[i].op);
        mesh_store_plan(f->s, &f->ev->p, false, &pl);
        assert_true(pl.cons[0].used);
        int n = scan(r, &f->ev->p, false, &pl, &cases[i].arg, cases[i].has_arg ? 1 : 0, -1, NULL);
        if (n != cases[i].want)
            print_message("case %zu: %d rows, want %d\n", i, n, cases[i].want);
        assert_int_equal(n, cases[i].want);
    }
    /* two constraints together */
    mesh_scan_plan_t pl;
    plan_init(&pl);
    plan_con(&pl, 0, MESH_OP_GT);
    plan_con(&pl, 0, MESH_OP_LE);
    mesh_store_plan(f->s, &f->ev->p, false, &pl);
    mesh_datum_t args[2] = {dint(2), dint(6)};
    assert_int_equal(scan(r, &f->ev->p, false, &pl, args, 2, -1, NULL), 4);
    /* only the columns asked for are read; others come back NULL */
    plan_init(&pl);
    pl.cols_used = 1u << 0;
    mesh_store_plan(f->s, &f->ev->p, false, &pl);
    mesh_scan_t *sc;
    assert_int_equal(mesh_scan_open(r, &f->ev->p, false, &pl, NULL, 0, &sc, &err), MESH_OK);
    assert_int_equal(mesh_scan_next(sc), 1);
    mesh_datum_t d;
    mesh_scan_value(sc, 0, &d);
    assert_int_equal(d.type, MESH_V_INT);
    mesh_scan_value(sc, 2, &d);
    assert_int_equal(d.type, MESH_V_NULL);
    mesh_scan_close(sc);
    /* no column at all (count(*)) */
    plan_init(&pl);
    pl.cols_used = 0;
    mesh_store_plan(f->s, &f->ev->p, false, &pl);
    assert_int_equal(scan(r, &f->ev->p, false, &pl, NULL, 0, -1, NULL), 10);
    mesh_store_reader_end(r);
    mesh_store_reader_close(r);
}

static void test_scan_order_limit(void **state)
{
    fx_t *f = *state;
    fill_events(f);
    mesh_store_reader_t *r;
    mesh_err_t err;
    assert_int_equal(mesh_store_reader_open(f->s, &r, &err), MESH_OK);
    assert_int_equal(mesh_store_reader_begin(r, &err), MESH_OK);
    int64_t v[32];

    mesh_scan_plan_t pl;
    plan_init(&pl);
    pl.norder = 1;
    pl.order[0].col = 0;
    pl.order[0].desc = true;
    mesh_store_plan(f->s, &f->ev->p, false, &pl);
    assert_true(pl.order_used);
    assert_int_equal(scan(r, &f->ev->p, false, &pl, NULL, 0, 0, v), 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(v[i], 10 - i);

    /* ORDER BY level ASC, LIMIT 3 OFFSET 2 */
    plan_init(&pl);
    pl.norder = 1;
    pl.order[0].col = 2;
    pl.want_limit = true;
    pl.want_offset = true;
    mesh_store_plan(f->s, &f->ev->p, false, &pl);
    assert_true(pl.order_used);
    assert_true(pl.limit_used);
    mesh_datum_t lo[2] = {dint(3), dint(2)};
    assert_int_equal(scan(r, &f->ev->p, false, &pl, lo, 2, 2, v), 3);
    assert_int_equal(v[0], 1);
    assert_int_equal(v[1], 1);
    assert_int_equal(v[2], 2);

    /* a constraint, then LIMIT without OFFSET */
    plan_init(&pl);
    plan_con(&pl, 0, MESH_OP_GT);
    pl.norder = 1;
    pl.order[0].col = 0;
    pl.want_limit = true;
    mesh_store_plan(f->s, &f->ev->p, false, &pl);
    assert_true(pl.limit_used);
    mesh_datum_t a2[2] = {dint(4), dint(2)};
    assert_int_equal(scan(r, &f->ev->p, false, &pl, a2, 2, 0, v), 2);
    assert_int_equal(v[0], 5);
    assert_int_equal(v[1], 6);

    /* an unusable constraint (unknown column) is left to SQLite: then LIMIT is not pushed */
    plan_init(&pl);
    plan_con(&pl, 17, MESH_OP_EQ);
    plan_con(&pl, -1, MESH_OP_EQ);
    plan_con(&pl, 0, MESH_OP__COUNT);
    plan_con(&pl, 0, MESH_OP_GE);
    pl.want_limit = true;
    mesh_store_plan(f->s, &f->ev->p, false, &pl);
    assert_false(pl.cons[0].used);
    assert_false(pl.cons[1].used);
    assert_false(pl.cons[2].used);
    assert_true(pl.cons[3].used);
    assert_false(pl.limit_used);
    mesh_datum_t a1 = dint(9);
    assert_int_equal(scan(r, &f->ev->p, false, &pl, &a1, 1, -1, NULL), 2);
    /* an ORDER BY the store cannot do */
    plan_init(&pl);
    pl.norder = 1;
    pl.order[0].col = 40;
    pl.want_limit = true;
    mesh_store_plan(f->s, &f->ev->p, false, &pl);
    assert_false(pl.order_used);
    assert_false(pl.limit_used);
    mesh_store_reader_end(r);
    mesh_store_reader_close(r);
}

static void test_plan_estimates(void **state)
{
    fx_t *f = *state;
    mesh_batch_t b;
    batch_new(&b);
    char dev[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(dev, sizeof dev, "dev-%d", i % 10);
        rd_row(&b, f->rd, (uint32_t)i + 1, dev, T0 + i, 1.0, NULL, NULL);
    }
    apply_ok(f->s, 1, &b, NULL);
    mesh_batch_free(&b);

    mesh_scan_plan_t pl;
    plan_init(&pl);
    mesh_store_plan(f->s, &f->rd->p, false, &pl);
    assert_int_equal(pl.est_rows, 1000);
    double full = pl.cost;

    /* EQ on the full key: one row */
    plan_init(&pl);
    plan_con(&pl, 1, MESH_OP_EQ);
    plan_con(&pl, 0, MESH_OP_EQ);
    mesh_store_plan(f->s, &f->rd->p, false, &pl);
    assert_int_equal(pl.est_rows, 1);
    assert_true(pl.cost < full);
    /* IS counts as EQ */
    plan_init(&pl);
    plan_con(&pl, 0, MESH_OP_IS);
    plan_con(&pl, 1, MESH_OP_IS);
    mesh_store_plan(f->s, &f->rd->p, false, &pl);
    assert_int_equal(pl.est_rows, 1);

    /* EQ on the key's first column only: fewer, but more than one */
    plan_init(&pl);
    plan_con(&pl, 0, MESH_OP_EQ);
    mesh_store_plan(f->s, &f->rd->p, false, &pl);
    int64_t prefix = pl.est_rows;
    assert_true(prefix >= 1 && prefix < 1000);
    /* EQ on the second key column alone is not a prefix */
    plan_init(&pl);
    plan_con(&pl, 1, MESH_OP_EQ);
    mesh_store_plan(f->s, &f->rd->p, false, &pl);
    assert_true(pl.est_rows >= prefix);
    /* a range on the time column narrows less than EQ on the key */
    plan_init(&pl);
    plan_con(&pl, 1, MESH_OP_GE);
    mesh_store_plan(f->s, &f->rd->p, false, &pl);
    assert_true(pl.est_rows < 1000 && pl.est_rows > 1);
    /* EQ on a unique column: one row */
    plan_init(&pl);
    plan_con(&pl, 4, MESH_OP_EQ);
    mesh_store_plan(f->s, &f->rd->p, false, &pl);
    assert_int_equal(pl.est_rows, 1);
    /* any other constraint narrows a little */
    plan_init(&pl);
    plan_con(&pl, 3, MESH_OP_NE);
    mesh_store_plan(f->s, &f->rd->p, false, &pl);
    assert_true(pl.est_rows < 1000);
    /* the estimate never drops below one, and an empty product costs little */
    plan_init(&pl);
    mesh_store_plan(f->s, &f->ev->p, false, &pl);
    assert_int_equal(pl.est_rows, 1);
    plan_init(&pl);
    mesh_store_plan(f->s, &f->ev->p, true, &pl);
    assert_int_equal(pl.est_rows, 1);
}

/* ---- readers -------------------------------------------------------------------------------- */

static void test_reader_snapshot(void **state)
{
    fx_t *f = *state;
    fill_events(f);
    mesh_store_reader_t *r;
    mesh_err_t err;
    assert_int_equal(mesh_store_reader_open(f->s, &r, &err), MESH_OK);
    assert_int_equal(mesh_store_reader_begin(r, &err), MESH_OK);
    assert_int_equal(mesh_store_reader_begin(r, &err), MESH_OK); /* already in one */
    mesh_scan_plan_t pl;
    plan_init(&pl);
    mesh_store_plan(f->s, &f->ev->p, false, &pl);
    assert_int_equal(scan(r, &f->ev->p, false, &pl, NULL, 0, -1, NULL), 10);

    /* the writer commits more rows while the reader's transaction is open */
    mesh_batch_t b;
    batch_new(&b);
    for (int i = 11; i <= 15; i++)
        ev_row(&b, f->ev, (uint32_t)i, i, "late", 1, T0 + i);
    apply_ok(f->s, 2, &b, NULL);
    mesh_batch_free(&b);
    assert_int_equal(count_rows(f->s, &f->ev->p, false), 15); /* a new reader sees them */

    /* the open reader still sees its snapshot, scan after scan */
    assert_int_equal(scan(r, &f->ev->p, false, &pl, NULL, 0, -1, NULL), 10);
    plan_init(&pl);
    plan_con(&pl, 0, MESH_OP_GT);
    mesh_store_plan(f->s, &f->ev->p, false, &pl);
    mesh_datum_t a = dint(0);
    assert_int_equal(scan(r, &f->ev->p, false, &pl, &a, 1, -1, NULL), 10);
    mesh_store_reader_end(r);
    /* the next transaction sees the new rows */
    assert_int_equal(mesh_store_reader_begin(r, &err), MESH_OK);
    assert_int_equal(scan(r, &f->ev->p, false, &pl, &a, 1, -1, NULL), 15);
    mesh_store_reader_end(r);
    mesh_store_reader_end(r); /* twice is fine */

    /* a reader cannot write */
    mesh_store_reader_close(r);
    mesh_store_reader_close(NULL);
}

static void test_reader_many_scans(void **state)
{
    fx_t *f = *state;
    fill_events(f);
    mesh_store_reader_t *r;
    mesh_err_t err;
    assert_int_equal(mesh_store_reader_open(f->s, &r, &err), MESH_OK);
    assert_int_equal(mesh_store_reader_begin(r, &err), MESH_OK);
    /* many scans open at once (a self-join): each gets its own statement until the cache is
     * full, then a clear refusal */
    mesh_scan_t *open_scans[40];
    int n = 0;
    mesh_status_t st = MESH_OK;
    for (; n < 40; n++) {
        mesh_scan_plan_t pl;
        plan_init(&pl);
        mesh_store_plan(f->s, &f->ev->p, false, &pl);
        st = mesh_scan_open(r, &f->ev->p, false, &pl, NULL, 0, &open_scans[n], &err);
        if (st != MESH_OK)
            break;
        assert_int_equal(mesh_scan_next(open_scans[n]), 1);
    }
    assert_int_equal(st, MESH_LIMIT);
    assert_true(n >= 8);
    for (int i = 0; i < n; i++)
        mesh_scan_close(open_scans[i]);
    /* and after closing them, scans work again, reusing cached statements */
    for (int i = 0; i < 100; i++) {
        mesh_scan_plan_t pl;
        plan_init(&pl);
        plan_con(&pl, 0, MESH_OP_EQ);
        mesh_store_plan(f->s, &f->ev->p, false, &pl);
        mesh_datum_t a = dint(i % 12);
        assert_int_equal(scan(r, &f->ev->p, false, &pl, &a, 1, -1, NULL),
                         (i % 12 >= 1 && i % 12 <= 10) ? 1 : 0);
    }
    mesh_store_reader_end(r);
    mesh_store_reader_close(r);
}

/* ---- contracts ------------------------------------------------------------------------------ */

typedef struct seen_yaml {
    char text[8][64];
    int n;
} seen_yaml_t;

static mesh_status_t on_contract(void *arg, const char *yaml, size_t n)
{
    seen_yaml_t *s = arg;
    if (s->n < 8)
        snprintf(s->text[s->n++], sizeof s->text[0], "%.*s", (int)n, yaml);
    return MESH_OK;
}

static mesh_status_t stop_contract(void *arg, const char *yaml, size_t n)
{
    (void)arg;
    (void)yaml;
    (void)n;
    return MESH_CORRUPT;
}

static void test_contract_history(void **state)
{
    fx_t *f = *state;
    mesh_contract_t a1 = {.id = "a", .version = "1.0.0", .yaml = "a-one"};
    mesh_contract_t a2 = {.id = "a", .version = "1.1.0", .yaml = "a-two"};
    mesh_contract_t b1 = {.id = "b", .version = "1.0.0", .yaml = "b-one"};
    mesh_err_t err;
    assert_int_equal(mesh_store_begin(f->s, &err), MESH_OK);
    assert_int_equal(mesh_store_put_contract(f->s, &a1, 1, &err), MESH_OK);
    assert_int_equal(mesh_store_put_contract(f->s, &b1, 2, &err), MESH_OK);
    assert_int_equal(mesh_store_put_contract(f->s, &a2, 3, &err), MESH_OK);
    assert_int_equal(mesh_store_commit(f->s, 3, &err), MESH_OK);
    seen_yaml_t s = {0};
    assert_int_equal(mesh_store_load_contracts(f->s, on_contract, &s, &err), MESH_OK);
    assert_int_equal(s.n, 2); /* the newest version of each id, in applied order */
    assert_string_equal(s.text[0], "b-one");
    assert_string_equal(s.text[1], "a-two");
    /* the callback can stop the walk */
    assert_int_equal(mesh_store_load_contracts(f->s, stop_contract, NULL, &err), MESH_CORRUPT);
    /* and after a reopen */
    mesh_store_close(f->s);
    f->s = open_store(f->path);
    memset(&s, 0, sizeof s);
    assert_int_equal(mesh_store_load_contracts(f->s, on_contract, &s, &err), MESH_OK);
    assert_int_equal(s.n, 2);
}

/* ---- product changes ------------------------------------------------------------------------ */

static prod_t *copy_prod(const prod_t *x)
{
    prod_t *c = malloc(sizeof *c);
    assert_non_null(c);
    memcpy(c, x, sizeof *c);
    c->p.cols = c->cols;
    c->p.key_cols = c->key;
    return c;
}

static void remove_col(prod_t *x, const char *name)
{
    int i = cidx(x, name);
    memmove(&x->cols[i], &x->cols[i + 1], (x->p.ncols - (size_t)i - 1) * sizeof x->cols[0]);
    x->p.ncols--;
    if (x->p.time_col > i)
        x->p.time_col--;
    for (size_t k = 0; k < x->p.nkey; k++)
        if (x->key[k] > i)
            x->key[k]--;
}

static void test_alter_add_column(void **state)
{
    fx_t *f = *state;
    fill_events(f);
    prod_t *v2 = copy_prod(f->ev);
    col(v2, "source", MESH_LT_STRING);
    col(v2, "score", MESH_LT_NUMBER);
    put(f->s, f->ev, v2);
    assert_int_equal(count_rows(f->s, &v2->p, false), 10);
    mesh_product_stats_t st;
    mesh_store_product_stats(f->s, "events", &st);
    assert_int_equal(st.rows, 10);
    /* new rows fill the new columns; old rows have them NULL */
    mesh_batch_t b;
    batch_new(&b);
    assert_int_equal(mesh_batch_row_begin(&b, &v2->p, 1), MESH_OK);
    mesh_batch_set_int(&b, 0, 100);
    mesh_batch_set_int(&b, 2, 1);
    mesh_batch_set_text(&b, 4, "plc", 3);
    mesh_batch_set_real(&b, 5, 0.5);
    mesh_batch_row_end(&b, "", 0);
    apply_ok(f->s, 2, &b, NULL);
    mesh_batch_free(&b);
    mesh_store_reader_t *r;
    mesh_err_t err;
    assert_int_equal(mesh_store_reader_open(f->s, &r, &err), MESH_OK);
    mesh_scan_plan_t pl;
    plan_init(&pl);
    plan_con(&pl, 4, MESH_OP_ISNULL);
    mesh_store_plan(f->s, &v2->p, false, &pl);
    assert_int_equal(scan(r, &v2->p, false, &pl, NULL, 0, -1, NULL), 10);
    plan_init(&pl);
    plan_con(&pl, 5, MESH_OP_GT);
    mesh_store_plan(f->s, &v2->p, false, &pl);
    mesh_datum_t a = {.type = MESH_V_REAL, .d = 0.1};
    assert_int_equal(scan(r, &v2->p, false, &pl, &a, 1, -1, NULL), 1);
    mesh_store_reader_close(r);
    /* a unique flag dropped: duplicates are fine afterwards */
    prod_t *v3 = copy_prod(v2);
    v3->cols[0].unique = false;
    put(f->s, v2, v3);
    batch_new(&b);
    ev_row(&b, v3, 1, 1, "same id", 1, T0);
    apply_ok(f->s, 3, &b, NULL);
    mesh_batch_free(&b);
    assert_int_equal(count_rows(f->s, &v3->p, false), 12);
    assert_int_equal(mesh_store_integrity(f->s, &err), MESH_OK);
    free(v2);
    free(v3);
}

static void test_relax_required(void **state)
{
    fx_t *f = *state;
    /* v1: status is required */
    prod_t *v1 = copy_prod(f->rd);
    v1->cols[3].required = true;
    mesh_err_t err;
    assert_int_equal(mesh_store_drop_product(f->s, "readings", &err), MESH_OK);
    put(f->s, NULL, v1);
    mesh_batch_t b;
    batch_new(&b);
    rd_row(&b, v1, 1, "dev-a", T0, 1.0, "ok", NULL);
    apply_ok(f->s, 1, &b, NULL);
    mesh_batch_free(&b);
    /* v2: status is optional again (not a breaking change): rows without it are accepted */
    prod_t *v2 = copy_prod(v1);
    v2->cols[3].required = false;
    put(f->s, v1, v2);
    batch_new(&b);
    rd_row(&b, v2, 1, "dev-b", T0, 2.0, NULL, NULL);
    assert_false(mesh_batch_failed(&b));
    mesh_status_t st = apply(f->s, 2, &b, NULL, NULL, &err);
    if (st != MESH_OK)
        print_message("%s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    mesh_batch_free(&b);
    assert_int_equal(count_rows(f->s, &v2->p, false), 2);
    /* also for a product without a key */
    prod_t *e1 = copy_prod(f->ev);
    e1->cols[1].required = true;
    assert_int_equal(mesh_store_drop_product(f->s, "events", &err), MESH_OK);
    put(f->s, NULL, e1);
    prod_t *e2 = copy_prod(e1);
    e2->cols[1].required = false;
    put(f->s, e1, e2);
    batch_new(&b);
    ev_row(&b, e2, 1, 1, NULL, 1, T0);
    st = apply(f->s, 3, &b, NULL, NULL, &err);
    if (st != MESH_OK)
        print_message("%s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    mesh_batch_free(&b);
    free(v1);
    free(v2);
    free(e1);
    free(e2);
}

static void test_rebuild_keeps_rows(void **state)
{
    fx_t *f = *state;
    fill_events(f);
    /* level: integer -> number (a retype), msg dropped */
    prod_t *v2 = copy_prod(f->ev);
    v2->cols[cidx(v2, "level")].type = MESH_LT_NUMBER;
    remove_col(v2, "msg");
    put(f->s, f->ev, v2);
    assert_int_equal(count_rows(f->s, &v2->p, false), 10);
    mesh_product_stats_t st;
    mesh_store_product_stats(f->s, "events", &st);
    assert_int_equal(st.rows, 10);
    mesh_store_reader_t *r;
    mesh_err_t err;
    assert_int_equal(mesh_store_reader_open(f->s, &r, &err), MESH_OK);
    mesh_scan_plan_t pl;
    plan_init(&pl);
    pl.norder = 1;
    pl.order[0].col = 0;
    mesh_store_plan(f->s, &v2->p, false, &pl);
    mesh_scan_t *sc;
    assert_int_equal(mesh_scan_open(r, &v2->p, false, &pl, NULL, 0, &sc, &err), MESH_OK);
    for (int i = 1; i <= 10; i++) {
        assert_int_equal(mesh_scan_next(sc), 1);
        mesh_datum_t d;
        mesh_scan_value(sc, 0, &d);
        assert_int_equal(d.i, i);
        mesh_scan_value(sc, 1, &d); /* level, now REAL */
        assert_int_equal(d.type, MESH_V_REAL);
        assert_true(d.d == (double)(i % 5));
        mesh_scan_value(sc, 2, &d); /* at, kept */
        assert_int_equal(d.i, T0 + i);
    }
    assert_int_equal(mesh_scan_next(sc), 0);
    mesh_scan_close(sc);
    mesh_store_reader_close(r);
    /* the unique index on id came back */
    mesh_batch_t b;
    batch_new(&b);
    assert_int_equal(mesh_batch_row_begin(&b, &v2->p, 1), MESH_OK);
    mesh_batch_set_int(&b, 0, 3);
    mesh_batch_row_end(&b, "", 0);
    assert_int_equal(apply(f->s, 2, &b, NULL, NULL, &err), MESH_CONFLICT);
    mesh_batch_free(&b);
    /* and writes with the new definition work */
    batch_new(&b);
    assert_int_equal(mesh_batch_row_begin(&b, &v2->p, 1), MESH_OK);
    mesh_batch_set_int(&b, 0, 11);
    mesh_batch_set_real(&b, 1, 2.5);
    mesh_batch_row_end(&b, "", 0);
    apply_ok(f->s, 3, &b, NULL);
    mesh_batch_free(&b);
    assert_int_equal(count_rows(f->s, &v2->p, false), 11);
    assert_int_equal(mesh_store_integrity(f->s, &err), MESH_OK);

    /* number -> integer is refused while a row holds a fraction (id 11: 2.5) */
    prod_t *v3 = copy_prod(v2);
    v3->cols[1].type = MESH_LT_INTEGER;
    mesh_err_clear(&err);
    assert_int_equal(mesh_store_put_product(f->s, &v2->p, &v3->p, &err), MESH_BREAKING);
    assert_non_null(strstr(err.msg, "1 existing row"));
    assert_int_equal(count_rows(f->s, &v2->p, false), 11);
    free(v3);
    free(v2);
}

static void test_rebuild_retype_to_string(void **state)
{
    fx_t *f = *state;
    fill_events(f);
    /* level: integer -> string; the numbers become their text */
    prod_t *v2 = copy_prod(f->ev);
    v2->cols[cidx(v2, "level")].type = MESH_LT_STRING;
    v2->cols[cidx(v2, "level")].has_min = v2->cols[cidx(v2, "level")].has_max = false;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_store_put_product(f->s, &f->ev->p, &v2->p, &err);
    if (st != MESH_OK)
        print_message("%s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    mesh_store_reader_t *r;
    assert_int_equal(mesh_store_reader_open(f->s, &r, &err), MESH_OK);
    mesh_scan_plan_t pl;
    plan_init(&pl);
    plan_con(&pl, 2, MESH_OP_EQ);
    mesh_store_plan(f->s, &v2->p, false, &pl);
    mesh_datum_t a = dtext("4");
    assert_int_equal(scan(r, &v2->p, false, &pl, &a, 1, -1, NULL), 2);
    mesh_store_reader_close(r);
    free(v2);
}

static void check_rebuild_refused(fx_t *f, const prod_t *next, const char *needle)
{
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_store_put_product(f->s, &f->ev->p, &next->p, &err);
    if (st != MESH_BREAKING || strstr(err.msg, needle) == NULL)
        print_message("%s: %s\n", mesh_status_name(st), err.msg);
    assert_int_equal(st, MESH_BREAKING);
    assert_non_null(strstr(err.msg, needle));
    /* the table is intact under the old definition */
    assert_int_equal(count_rows(f->s, &f->ev->p, false), 10);
    mesh_batch_t b;
    batch_new(&b);
    ev_row(&b, f->ev, 1, 100 + (int64_t)mesh_store_applied_seq(f->s), "still", 1, T0);
    apply_ok(f->s, mesh_store_applied_seq(f->s) + 1, &b, NULL);
    mesh_batch_free(&b);
    assert_int_equal(count_rows(f->s, &f->ev->p, false), 11);
    assert_int_equal(mesh_store_integrity(f->s, &err), MESH_OK);
}

static void test_rebuild_refused(void **state)
{
    fx_t *f = *state;
    fill_events(f);
    /* a new required column that the rows do not have */
    prod_t *v2 = copy_prod(f->ev);
    col(v2, "site", MESH_LT_STRING)->required = true;
    check_rebuild_refused(f, v2, "do not fit");
    free(v2);
    /* the same change again refuses the same way (nothing was left behind) */
    v2 = copy_prod(f->ev);
    col(v2, "site", MESH_LT_STRING)->required = true;
    mesh_err_t err;
    assert_int_equal(mesh_store_put_product(f->s, &f->ev->p, &v2->p, &err), MESH_BREAKING);
    assert_non_null(strstr(err.msg, "do not fit"));
    free(v2);
    /* values that do not fit a new type (text -> integer) */
    v2 = copy_prod(f->ev);
    v2->cols[cidx(v2, "msg")].type = MESH_LT_INTEGER;
    assert_int_equal(mesh_store_put_product(f->s, &f->ev->p, &v2->p, &err), MESH_BREAKING);
    free(v2);
    /* after the refusals a rebuild that fits works */
    v2 = copy_prod(f->ev);
    remove_col(v2, "msg");
    mesh_err_clear(&err);
    mesh_status_t st = mesh_store_put_product(f->s, &f->ev->p, &v2->p, &err);
    if (st != MESH_OK)
        print_message("%s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    assert_int_equal(count_rows(f->s, &v2->p, false), 11);
    free(v2);
}

static void test_rebuild_refused_in_transaction(void **state)
{
    fx_t *f = *state;
    fill_events(f);
    /* inside the writer's transaction a refused rebuild leaves nothing behind either: a
     * later change in the same transaction works and commits */
    mesh_err_t err;
    assert_int_equal(mesh_store_begin(f->s, &err), MESH_OK);
    prod_t *bad = copy_prod(f->ev);
    col(bad, "site", MESH_LT_STRING)->required = true;
    assert_int_equal(mesh_store_put_product(f->s, &f->ev->p, &bad->p, &err), MESH_BREAKING);
    prod_t *good = copy_prod(f->ev);
    col(good, "site", MESH_LT_STRING)->required = false;
    good->cols[0].unique = false;
    good->cols[cidx(good, "level")].type = MESH_LT_NUMBER;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_store_put_product(f->s, &f->ev->p, &good->p, &err);
    if (st != MESH_OK)
        print_message("%s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    assert_int_equal(mesh_store_commit(f->s, 9, &err), MESH_OK);
    assert_int_equal(count_rows(f->s, &good->p, false), 10);
    assert_int_equal(mesh_store_integrity(f->s, &err), MESH_OK);
    free(bad);
    free(good);
}

static void test_rebuild_made_unique_with_duplicates(void **state)
{
    fx_t *f = *state;
    fill_events(f); /* level repeats */
    prod_t *v2 = copy_prod(f->ev);
    v2->cols[cidx(v2, "level")].unique = true;
    remove_col(v2, "msg");
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_store_put_product(f->s, &f->ev->p, &v2->p, &err);
    if (st != MESH_BREAKING)
        print_message("%s: %s\n", mesh_status_name(st), err.msg);
    /* the rows do not fit the new contract: refused as such, the table is as it was (msg
     * still there) */
    assert_int_equal(st, MESH_BREAKING);
    assert_int_equal(count_rows(f->s, &f->ev->p, false), 10);
    mesh_batch_t b;
    batch_new(&b);
    ev_row(&b, f->ev, 1, 1, "dup id", 1, T0);
    assert_int_equal(apply(f->s, 5, &b, NULL, NULL, &err), MESH_CONFLICT); /* id still unique */
    mesh_batch_free(&b);
    assert_int_equal(mesh_store_integrity(f->s, &err), MESH_OK);
    free(v2);
}

static void test_drop_product(void **state)
{
    fx_t *f = *state;
    fill_events(f);
    mesh_batch_t b;
    batch_new(&b);
    ev_row(&b, f->ev, 1, 50, "bad", 99, T0); /* quarantined */
    apply_ok(f->s, 2, &b, NULL);
    mesh_batch_free(&b);
    assert_int_equal(count_rows(f->s, &f->ev->p, true), 1);
    mesh_err_t err;
    assert_int_equal(mesh_store_drop_product(f->s, "events", &err), MESH_OK);
    mesh_product_stats_t st;
    assert_int_equal(mesh_store_product_stats(f->s, "events", &st), MESH_NOT_FOUND);
    /* dropping again (or an unknown product) is fine */
    assert_int_equal(mesh_store_drop_product(f->s, "events", &err), MESH_OK);
    assert_int_equal(mesh_store_drop_product(f->s, "never", &err), MESH_OK);
    /* the other product is untouched */
    batch_new(&b);
    rd_row(&b, f->rd, 1, "dev-a", T0, 1.0, NULL, NULL);
    apply_ok(f->s, 3, &b, NULL);
    mesh_batch_free(&b);
    /* created again: empty, no old quarantine */
    put(f->s, NULL, f->ev);
    assert_int_equal(count_rows(f->s, &f->ev->p, false), 0);
    assert_int_equal(count_rows(f->s, &f->ev->p, true), 0);
    fill_events(f);
    assert_int_equal(mesh_store_product_stats(f->s, "events", &st), MESH_OK);
    assert_int_equal(st.rows, 10);
    assert_int_equal(st.quarantined, 0);
    mesh_store_close(f->s);
    f->s = open_store(f->path);
    assert_int_equal(mesh_store_product_stats(f->s, "events", &st), MESH_OK);
    assert_int_equal(st.rows, 10);
}

static void test_checkpoint_integrity(void **state)
{
    fx_t *f = *state;
    mesh_batch_t b;
    batch_new(&b);
    char dev[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(dev, sizeof dev, "device-%04d", i);
        rd_row(&b, f->rd, (uint32_t)i + 1, dev, T0 + i, 1.5, "ok", NULL);
    }
    apply_ok(f->s, 1, &b, NULL);
    mesh_batch_free(&b);
    int64_t db = 0, wal = 0;
    mesh_store_file_sizes(f->s, &db, &wal);
    assert_true(wal > 0);
    mesh_err_t err;
    assert_int_equal(mesh_store_checkpoint(f->s, 2, 0, &err), MESH_OK);
    mesh_store_file_sizes(f->s, &db, &wal);
    assert_int_equal(wal, 0);
    assert_true(db > 0);
    mesh_product_stats_t st;
    assert_int_equal(mesh_store_product_stats(f->s, "readings", &st), MESH_OK);
    assert_true(st.bytes > 0); /* sizes are refreshed at checkpoints */
    assert_int_equal(st.rows, 2000);
    assert_int_equal(mesh_store_integrity(f->s, &err), MESH_OK);
    /* a checkpoint while a reader holds a snapshot and the writer has committed since does
     * not fail ... */
    mesh_store_reader_t *r;
    assert_int_equal(mesh_store_reader_open(f->s, &r, &err), MESH_OK);
    assert_int_equal(mesh_store_reader_begin(r, &err), MESH_OK);
    assert_int_equal(count_rows(f->s, &f->rd->p, false), 2000);
    mesh_scan_plan_t pl;
    plan_init(&pl);
    mesh_store_plan(f->s, &f->rd->p, false, &pl);
    assert_int_equal(scan(r, &f->rd->p, false, &pl, NULL, 0, -1, NULL), 2000);
    batch_new(&b);
    rd_row(&b, f->rd, 1, "late", T0, 1.5, "ok", NULL);
    apply_ok(f->s, 2, &b, NULL);
    mesh_batch_free(&b);
    /* ... without waiting for the reader (this runs on the domain's writer), and saying
     * BUSY: the frames after the reader's snapshot are not in the database file yet, so the
     * domain must not trim its log */
    mesh_err_clear(&err);
    int64_t t0 = mesh_mono_ns();
    assert_int_equal(mesh_store_checkpoint(f->s, 2, 0, &err), MESH_BUSY);
    /* waiting would take the busy timeout (10 s): far less means it did not wait */
    assert_true(mesh_mono_ns() - t0 < 8 * MESH_NS_PER_SEC);
    assert_non_null(strstr(err.msg, "readers"));
    mesh_store_file_sizes(f->s, &db, &wal);
    assert_true(wal > 0);
    mesh_store_reader_end(r);
    mesh_store_reader_close(r);
    assert_int_equal(mesh_store_checkpoint(f->s, 2, 0, &err), MESH_OK);
    mesh_store_file_sizes(f->s, &db, &wal);
    assert_int_equal(wal, 0);
    /* a reader that is not in a transaction does not hold the checkpoint back */
    assert_int_equal(mesh_store_reader_open(f->s, &r, &err), MESH_OK);
    assert_int_equal(count_rows(f->s, &f->rd->p, false), 2001);
    batch_new(&b);
    rd_row(&b, f->rd, 1, "later", T0, 1.5, "ok", NULL);
    apply_ok(f->s, 3, &b, NULL);
    mesh_batch_free(&b);
    assert_int_equal(mesh_store_checkpoint(f->s, 2, 0, &err), MESH_OK);
    mesh_store_reader_close(r);
}

/* ---- a snapshot taken between a commit and the buffers' update ------------------------------ */

/* A reader starts while the writer has committed to SQLite but not yet updated its buffered
 * time-series rows (the commit hook holds it there for 200 ms). It must count the committed
 * rows once: not miss the new ones (in the snapshot, not yet in the buffers), nor count
 * flushed ones twice (in the snapshot's chunks and still in the buffers). */
typedef struct {
    mesh_store_t *s;
    const mesh_product_t *p;
    pthread_t th;
    bool started;
    int count;
} race_t;

static void *race_reader(void *arg)
{
    race_t *r = arg;
    r->count = count_rows(r->s, r->p, false);
    return NULL;
}

static void race_hook(void *arg)
{
    race_t *r = arg;
    if (r->started)
        return;
    r->started = pthread_create(&r->th, NULL, race_reader, r) == 0;
    usleep(200 * 1000);
}

static int race_count(race_t *r)
{
    assert_true(r->started);
    pthread_join(r->th, NULL);
    r->started = false;
    return r->count;
}

static void series_rows(mesh_store_t *s, const prod_t *x, uint64_t seq, int64_t from)
{
    mesh_batch_t b;
    batch_new(&b);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(mesh_batch_row_begin(&b, &x->p, (uint32_t)i + 1), MESH_OK);
        mesh_batch_set_text(&b, 0, i % 2 ? "dev-b" : "dev-a", 5);
        mesh_batch_set_int(&b, 1, from + i);
        mesh_batch_set_real(&b, 2, 20.0 + i);
        mesh_batch_row_end(&b, "raw", 3);
    }
    apply_ok(s, seq, &b, NULL);
    mesh_batch_free(&b);
}

static void test_snapshot_between_commit_and_buffers(void **state)
{
    fx_t *f = *state;
    /* a time series (readings is not one: its unique column needs a row per reading) */
    prod_t *x = prod_new("series", MESH_ON_INVALID_REJECT);
    key(x, col(x, "device", MESH_LT_STRING));
    key(x, col(x, "ts", MESH_LT_TIMESTAMP));
    x->p.time_col = 1;
    col(x, "temp", MESH_LT_NUMBER);
    put(f->s, NULL, x);
    series_rows(f->s, x, 1, T0);

    race_t r = {.s = f->s, .p = &x->p};
    mesh__store_commit_hook = race_hook;
    mesh__store_commit_hook_arg = &r;
    /* new buffered rows */
    series_rows(f->s, x, 2, T0 + 100);
    assert_int_equal(race_count(&r), 20);
    /* buffered rows flushed into chunks */
    mesh_err_t err;
    assert_int_equal(mesh_store_checkpoint(f->s, 2, 0, &err), MESH_OK);
    assert_int_equal(race_count(&r), 20);
    mesh__store_commit_hook = NULL;
    mesh__store_commit_hook_arg = NULL;
    assert_int_equal(count_rows(f->s, &x->p, false), 20);
    free(x);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_and_applied_seq),
        T(test_snapshot_between_commit_and_buffers),
        T(test_apply_counts),
        T(test_merge_on_key),
        T(test_idempotency),
        T(test_refused_batch_keeps_no_key),
        T(test_quarantine),
        T(test_unique_conflict_refuses_batch),
        T(test_savepoints),
        T(test_scan_operators),
        T(test_scan_order_limit),
        T(test_plan_estimates),
        T(test_reader_snapshot),
        T(test_reader_many_scans),
        T(test_contract_history),
        T(test_alter_add_column),
        T(test_relax_required),
        T(test_rebuild_keeps_rows),
        T(test_rebuild_retype_to_string),
        T(test_rebuild_refused),
        T(test_rebuild_refused_in_transaction),
        T(test_rebuild_made_unique_with_duplicates),
        T(test_drop_product),
        T(test_checkpoint_integrity),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
