/*
 * discover.c - sampling a product and scoring its columns. See discover.h.
 */
#include "classify/discover.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"

static int current_year(void)
{
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL)
        return 2100;
    return tm.tm_year + 1900;
}

mesh_status_t mesh_discovery_init(mesh_discovery_t *d, const mesh_product_t *p, mesh_err_t *err)
{
    memset(d, 0, sizeof *d);
    d->now_year = current_year();
    d->cols = calloc(p->ncols ? p->ncols : 1, sizeof *d->cols);
    if (d->cols == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    d->ncols = p->ncols;
    for (size_t i = 0; i < p->ncols; i++) {
        const mesh_column_t *c = &p->cols[i];
        mesh_disc_column_t *dc = &d->cols[i];
        dc->name = c->name;
        dc->type = c->type;
        dc->loc = mesh_detect_loc_hint(c->name);
        for (int t = 0; t < MESH_INFO__COUNT; t++)
            dc->hint[t] = mesh_detect_hint((mesh_info_type_t)t, c->name);
        /* a format the contract declares says as much as a name */
        if (c->fmt == MESH_FMT_EMAIL)
            dc->hint[MESH_INFO_EMAIL] = true;
        if (c->fmt == MESH_FMT_IPV4 || c->fmt == MESH_FMT_IPV6)
            dc->hint[MESH_INFO_IP_ADDRESS] = true;
    }
    return MESH_OK;
}

void mesh_discovery_add(mesh_discovery_t *d, size_t col, const mesh_datum_t *v)
{
    if (col >= d->ncols || v->type == MESH_V_NULL)
        return;
    mesh_disc_column_t *dc = &d->cols[col];
    dc->non_null++;
    /* booleans and JSON documents are not looked into */
    if (dc->type == MESH_LT_BOOLEAN || dc->type == MESH_LT_OBJECT || dc->type == MESH_LT_ARRAY)
        return;
    char text[MESH_TIME_MAX > 48 ? MESH_TIME_MAX : 48];
    mesh_detect_value_t dv = {0};
    if (v->type == MESH_V_INT && dc->type == MESH_LT_TIMESTAMP) {
        /* a time is a date (of birth, maybe) as text */
        mesh_time_format(v->i, text);
        dv.s = text;
        dv.n = strlen(text);
    } else if (v->type == MESH_V_INT) {
        snprintf(text, sizeof text, "%" PRId64, v->i);
        dv.s = text;
        dv.n = strlen(text);
        dv.is_num = true;
        dv.d = (double)v->i;
    } else if (v->type == MESH_V_REAL) {
        snprintf(text, sizeof text, "%.10g", v->d);
        dv.s = text;
        dv.n = strlen(text);
        dv.is_num = true;
        dv.d = v->d;
    } else if (v->type == MESH_V_TEXT && v->s && v->n <= MESH_DISCOVER_VALUE_MAX) {
        dv.s = v->s;
        dv.n = v->n;
    } else {
        return;
    }
    for (int t = 0; t < MESH_INFO__COUNT; t++)
        if (mesh_detect_value((mesh_info_type_t)t, &dv, dc->loc, d->now_year))
            dc->matched[t]++;
}

static int by_confidence(const void *a, const void *b)
{
    const mesh_disc_match_t *x = a, *y = b;
    if (x->confidence != y->confidence)
        return x->confidence > y->confidence ? -1 : 1;
    return (int)x->type - (int)y->type;
}

void mesh_discovery_finish(mesh_discovery_t *d, double min_conf)
{
    for (size_t i = 0; i < d->ncols; i++) {
        mesh_disc_column_t *dc = &d->cols[i];
        dc->nmatches = 0;
        dc->level = MESH_LEVEL_NONE;
        dc->categories = 0;
        dc->confidence = 0;
        for (int t = 0; t < MESH_INFO__COUNT; t++) {
            double c = mesh_detect_confidence((mesh_info_type_t)t, dc->hint[t], dc->matched[t],
                                              dc->non_null);
            if (c < min_conf || c <= 0)
                continue;
            mesh_disc_match_t *m = &dc->matches[dc->nmatches++];
            m->type = (mesh_info_type_t)t;
            m->hint = dc->hint[t];
            m->matched = dc->matched[t];
            m->confidence = c;
        }
        qsort(dc->matches, dc->nmatches, sizeof dc->matches[0], by_confidence);
        for (size_t k = 0; k < dc->nmatches; k++) {
            mesh_level_t l = mesh_info_level(dc->matches[k].type);
            if (l > dc->level)
                dc->level = l;
            dc->categories |= mesh_info_categories(dc->matches[k].type);
        }
        if (dc->nmatches)
            dc->confidence = dc->matches[0].confidence;
    }
}

void mesh_discovery_free(mesh_discovery_t *d)
{
    if (d == NULL)
        return;
    free(d->cols);
    memset(d, 0, sizeof *d);
}

mesh_status_t mesh_discover_product(mesh_store_t *s, const mesh_product_t *p, int64_t max_rows,
                                    double min_conf, mesh_discovery_t *d, mesh_err_t *err)
{
    mesh_status_t st = mesh_discovery_init(d, p, err);
    if (st != MESH_OK)
        return st;
    if (max_rows <= 0)
        max_rows = MESH_DISCOVER_DEFAULT_ROWS;
    if (max_rows > MESH_DISCOVER_MAX_ROWS)
        max_rows = MESH_DISCOVER_MAX_ROWS;
    mesh_store_reader_t *rd = NULL;
    if ((st = mesh_store_reader_open(s, &rd, err)) != MESH_OK)
        return st;
    if ((st = mesh_store_reader_begin(rd, err)) != MESH_OK) {
        mesh_store_reader_close(rd);
        return st;
    }
    mesh_scan_plan_t plan;
    memset(&plan, 0, sizeof plan);
    plan.cols_used = ~0ULL;
    mesh_store_plan(s, p, MESH_VIEW_ROWS, &plan);
    mesh_scan_t *sc = NULL;
    st = mesh_scan_open(rd, p, MESH_VIEW_ROWS, &plan, NULL, 0, &sc, err);
    int rc = 0;
    while (st == MESH_OK && d->sampled < max_rows && (rc = mesh_scan_next(sc)) == 1) {
        d->sampled++;
        for (size_t c = 0; c < p->ncols; c++) {
            mesh_datum_t v;
            mesh_scan_value(sc, (int)c, &v);
            mesh_discovery_add(d, c, &v);
        }
    }
    if (st == MESH_OK && rc < 0)
        st = mesh_err_set(err, MESH_IO, "sampling %s.%s: %s", p->domain, p->name,
                          mesh_scan_error(sc));
    mesh_scan_close(sc);
    mesh_store_reader_end(rd);
    mesh_store_reader_close(rd);
    if (st == MESH_OK)
        mesh_discovery_finish(d, min_conf);
    return st;
}
