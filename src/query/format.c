/*
 * format.c - query results as JSON, NDJSON or CSV, written a row at a time.
 *
 * JSON:   {"columns":[{"name":..,"type":..}],"rows":[[...],...],"row_count":N,"elapsed_ms":T}
 *         and, when the query failed after rows were sent, "error":{"code":..,"message":..}
 * NDJSON: one object per row ({"col": value, ...}); a failure ends with {"error":{...}}
 * CSV:    a header line, then one line per row (RFC 4180); a failure is reported by the
 *         caller ending the response abnormally, since CSV has no place for it.
 * TIMESTAMP columns are written as ISO 8601 text unless time_ns is set.
 */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "query/query.h"

mesh_status_t mesh_outfmt_parse(const char *s, mesh_outfmt_t *out)
{
    if (s == NULL || *s == '\0' || strcmp(s, "json") == 0)
        *out = MESH_OUT_JSON;
    else if (strcmp(s, "ndjson") == 0 || strcmp(s, "jsonl") == 0)
        *out = MESH_OUT_NDJSON;
    else if (strcmp(s, "csv") == 0)
        *out = MESH_OUT_CSV;
    else
        return MESH_INVALID;
    return MESH_OK;
}

const char *mesh_outfmt_mime(mesh_outfmt_t f)
{
    switch (f) {
    case MESH_OUT_NDJSON:
        return "application/x-ndjson";
    case MESH_OUT_CSV:
        return "text/csv; charset=utf-8";
    default:
        return "application/json";
    }
}

/* The shortest decimal m / 10^k (k <= 17) that reads back as a, for 1e-4 <= a < 1e15, where
 * printf's %g would print it without an exponent: its length (not NUL-terminated), or 0 when
 * it needs 17 digits or is out of that range. Exact: m < 2^53 and 10^k (k <= 22) are doubles,
 * so m / 10^k is correctly rounded, and equal to a exactly when strtod would read the decimal
 * as a. */
static const char digit_pairs[] = "00010203040506070809101112131415161718192021222324252627282930"
                                  "31323334353637383940414243444546474849505152535455565758596061"
                                  "6263646566676869707172737475767778798081828384858687888990919293"
                                  "949596979899";

static size_t short_fixed(double a, char *out, size_t cap)
{
    static const double p10[] = {1e0, 1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,
                                 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17};
    if (!(a >= 1e-4 && a < 1e15))
        return 0;
    for (int k = 0; k < (int)(sizeof p10 / sizeof p10[0]); k++) {
        double s = a * p10[k];
        if (s >= 9007199254740992.0) /* 2^53 */
            return 0;
        /* nearbyint(s) (s < 2^53 and round to nearest, even on ties), without the libm call:
         * adding and taking away 2^52 rounds to an integer; from 2^52 on s is one */
        double m = s < 4503599627370496.0 ? (s + 4503599627370496.0) - 4503599627370496.0 : s;
        if (m / p10[k] != a)
            continue;
        char dig[24];
        uint64_t v = (uint64_t)m;
        int n = 1;
        static const uint64_t u10[] = {1ULL,
                                       10ULL,
                                       100ULL,
                                       1000ULL,
                                       10000ULL,
                                       100000ULL,
                                       1000000ULL,
                                       10000000ULL,
                                       100000000ULL,
                                       1000000000ULL,
                                       10000000000ULL,
                                       100000000000ULL,
                                       1000000000000ULL,
                                       10000000000000ULL,
                                       100000000000000ULL,
                                       1000000000000000ULL,
                                       10000000000000000ULL};
        while (n < 16 && v >= u10[n])
            n++;
        if (n > 15 || (size_t)(n + k + 4) > cap) /* then %.15g is this, exactly */
            return 0;
        /* two digits at a time */
        int i = n;
        for (; v >= 10; v /= 100) {
            const char *two = &digit_pairs[2 * (v % 100)];
            dig[--i] = two[1];
            dig[--i] = two[0];
        }
        if (i > 0)
            dig[--i] = (char)('0' + v);
        size_t o = 0;
        if (n > k) { /* integer digits, then the fraction (at least ".0") */
            memcpy(out, dig, (size_t)(n - k));
            o = (size_t)(n - k);
            out[o++] = '.';
            if (k == 0) {
                out[o++] = '0';
            } else {
                memcpy(out + o, dig + n - k, (size_t)k);
                o += (size_t)k;
            }
        } else { /* 0.000ddd */
            out[o++] = '0';
            out[o++] = '.';
            for (int z = 0; z < k - n; z++)
                out[o++] = '0';
            memcpy(out + o, dig, (size_t)n);
            o += (size_t)n;
        }
        return o;
    }
    return 0;
}

mesh_status_t mesh_buf_add_double(mesh_buf_t *b, double d)
{
    if (!isfinite(d))
        return mesh_buf_adds(b, "null");
    if (d == 0) /* common in readings; what the printf path below gives */
        return signbit(d) ? mesh_buf_add(b, "-0.0", 4) : mesh_buf_add(b, "0.0", 3);
    /* most readings have few digits: found without printf, the same text it would give,
     * written in place (when the buffer has room for any: else as below) */
    if (mesh_buf_reserve(b, 48) == MESH_OK) {
        char *o = b->data + b->len;
        size_t sign = d < 0;
        o[0] = '-';
        size_t n = short_fixed(fabs(d), o + sign, 47 - sign);
        if (n) {
            b->len += sign + n;
            b->data[b->len] = '\0';
            return MESH_OK;
        }
    } else {
        char t[48];
        size_t n = short_fixed(fabs(d), t + 1, sizeof t - 1);
        if (n) {
            t[0] = '-';
            return mesh_buf_add(b, d < 0 ? t : t + 1, n + (d < 0));
        }
    }
    char tmp[48];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    /* keep a decimal point so a reader sees a real number, as SQLite would print it */
    if (!strpbrk(tmp, ".eEn")) {
        size_t l = strlen(tmp);
        snprintf(tmp + l, sizeof tmp - l, ".0");
    }
    return mesh_buf_adds(b, tmp);
}

void mesh_writer_init(mesh_writer_t *w, mesh_outfmt_t fmt, bool time_ns)
{
    memset(w, 0, sizeof *w);
    w->fmt = fmt;
    w->time_ns = time_ns;
}

static bool time_decl(mesh_query_t *q, int i)
{
    const char *t = mesh_query_coltype(q, i);
    return t && strcmp(t, "TIMESTAMP") == 0;
}

static bool is_time_col(mesh_writer_t *w, mesh_query_t *q, int i)
{
    if (w->time_ns)
        return false;
    if (i >= 64)
        return time_decl(q, i);
    if (!w->timecols_known) {
        /* a statement's declared types are the same for every row: once per result */
        int n = mesh_query_ncols(q);
        for (int k = 0; k < n && k < 64; k++)
            if (time_decl(q, k))
                w->timecols |= UINT64_C(1) << k;
        w->timecols_known = true;
    }
    return (w->timecols >> i) & 1;
}

/* One value in JSON. */
static mesh_status_t json_value(mesh_writer_t *w, mesh_query_t *q, int i, mesh_buf_t *out)
{
    mesh_datum_t d;
    mesh_query_value_bytes(q, i, &d);
    switch (d.type) {
    case MESH_V_INT:
        if (is_time_col(w, q, i)) {
            char t[MESH_TIME_MAX];
            size_t n = mesh_time_format(d.i, t);
            return mesh_buf_add_json_str(out, t, n);
        }
        return mesh_buf_add_decimal(out, d.i);
    case MESH_V_REAL:
        return mesh_buf_add_double(out, d.d);
    case MESH_V_TEXT:
        return mesh_buf_add_json_str(out, d.s, d.n);
    default:
        return mesh_buf_adds(out, "null");
    }
}

static mesh_status_t csv_value(mesh_writer_t *w, mesh_query_t *q, int i, mesh_buf_t *out)
{
    mesh_datum_t d;
    mesh_query_value_bytes(q, i, &d);
    switch (d.type) {
    case MESH_V_INT:
        if (is_time_col(w, q, i)) {
            char t[MESH_TIME_MAX];
            size_t n = mesh_time_format(d.i, t);
            return mesh_buf_add(out, t, n);
        }
        return mesh_buf_add_decimal(out, d.i);
    case MESH_V_REAL:
        return isfinite(d.d) ? mesh_buf_add_double(out, d.d) : MESH_OK;
    case MESH_V_TEXT:
        return mesh_buf_add_csv_field(out, d.s, d.n);
    default:
        return MESH_OK;
    }
}

mesh_status_t mesh_writer_begin(mesh_writer_t *w, mesh_query_t *q, mesh_buf_t *out)
{
    int n = mesh_query_ncols(q);
    mesh_status_t st = MESH_OK;
    switch (w->fmt) {
    case MESH_OUT_JSON:
        st = mesh_buf_adds(out, "{\"columns\":[");
        for (int i = 0; i < n && st == MESH_OK; i++) {
            const char *name = mesh_query_colname(q, i);
            const char *type = mesh_query_coltype(q, i);
            mesh_buf_adds(out, i ? ",{\"name\":" : "{\"name\":");
            mesh_buf_add_json_str(out, name, strlen(name));
            mesh_buf_adds(out, ",\"type\":");
            if (type)
                mesh_buf_add_json_str(out, type, strlen(type));
            else
                mesh_buf_adds(out, "null");
            st = mesh_buf_addc(out, '}');
        }
        if (st == MESH_OK)
            st = mesh_buf_adds(out, "],\"rows\":[");
        break;
    case MESH_OUT_CSV:
        for (int i = 0; i < n && st == MESH_OK; i++) {
            const char *name = mesh_query_colname(q, i);
            if (i)
                mesh_buf_addc(out, ',');
            st = mesh_buf_add_csv_field(out, name, strlen(name));
        }
        if (st == MESH_OK)
            st = mesh_buf_adds(out, "\r\n");
        break;
    case MESH_OUT_NDJSON:
        break;
    }
    return st;
}

mesh_status_t mesh_writer_row(mesh_writer_t *w, mesh_query_t *q, mesh_buf_t *out)
{
    int n = mesh_query_ncols(q);
    mesh_status_t st = MESH_OK;
    switch (w->fmt) {
    case MESH_OUT_JSON:
        st = mesh_buf_adds(out, w->rows ? ",[" : "[");
        for (int i = 0; i < n && st == MESH_OK; i++) {
            if (i)
                mesh_buf_addc(out, ',');
            st = json_value(w, q, i, out);
        }
        if (st == MESH_OK)
            st = mesh_buf_addc(out, ']');
        break;
    case MESH_OUT_NDJSON:
        st = mesh_buf_addc(out, '{');
        for (int i = 0; i < n && st == MESH_OK; i++) {
            const char *name = mesh_query_colname(q, i);
            if (i)
                mesh_buf_addc(out, ',');
            mesh_buf_add_json_str(out, name, strlen(name));
            mesh_buf_addc(out, ':');
            st = json_value(w, q, i, out);
        }
        if (st == MESH_OK)
            st = mesh_buf_adds(out, "}\n");
        break;
    case MESH_OUT_CSV:
        for (int i = 0; i < n && st == MESH_OK; i++) {
            if (i)
                mesh_buf_addc(out, ',');
            st = csv_value(w, q, i, out);
        }
        if (st == MESH_OK)
            st = mesh_buf_adds(out, "\r\n");
        break;
    }
    w->rows++;
    return st;
}

static mesh_status_t error_object(const mesh_err_t *err, mesh_buf_t *out)
{
    mesh_buf_adds(out, "{\"code\":");
    const char *name = mesh_status_name(err->code);
    mesh_buf_add_json_str(out, name, strlen(name));
    mesh_buf_adds(out, ",\"message\":");
    mesh_buf_add_json_str(out, err->msg, strlen(err->msg));
    return mesh_buf_addc(out, '}');
}

mesh_status_t mesh_writer_end(mesh_writer_t *w, mesh_query_t *q, const mesh_err_t *err,
                              double elapsed_ms, mesh_buf_t *out)
{
    switch (w->fmt) {
    case MESH_OUT_JSON:
        mesh_buf_printf(out, "],\"row_count\":%lld,\"rows_scanned\":%lld,\"elapsed_ms\":%.3f",
                        (long long)w->rows, (long long)mesh_query_scanned(q), elapsed_ms);
        if (mesh_query_suppressed(q) >= 0)
            mesh_buf_printf(out, ",\"suppressed_groups\":%lld",
                            (long long)mesh_query_suppressed(q));
        if (err && err->code != MESH_OK) {
            mesh_buf_adds(out, ",\"error\":");
            error_object(err, out);
        }
        return mesh_buf_adds(out, "}\n");
    case MESH_OUT_NDJSON:
        if (err && err->code != MESH_OK) {
            mesh_buf_adds(out, "{\"error\":");
            error_object(err, out);
            return mesh_buf_adds(out, "}\n");
        }
        return MESH_OK;
    case MESH_OUT_CSV:
        return MESH_OK;
    }
    return MESH_OK;
}
