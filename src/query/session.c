/*
 * session.c - pooled sandboxed SQLite sessions, attaching domains on demand.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "mesh/fed.h"
#include "query/internal.h"
#include "query/request.h"

struct mesh_qpool {
    pthread_mutex_t lock;
    qsession_t *free_list;
    size_t live, max;
    mesh_audit_t *audit; /* system.audit (NULL: not offered) */
    mesh_fed_t *fed;     /* federated queries (NULL: local domains only) */
    bool (*fed_hosted)(void *arg, const char *domain);
    void *fed_arg;
};

/* The schema of system tables (system.audit); no domain may take the name. */
#define SYSTEM_SCHEMA "system"

/* Functions a query may not call even though SQLite has them. */
static const char *const denied_functions[] = {
    "load_extension", "fts3_tokenizer", "fts5", "fts5_source_id", "sqlite_offset",
};

/* Eponymous virtual tables a query may read. */
static const char *const allowed_tvfs[] = {"json_each", "json_tree"};

static int decide(qsession_t *s, int action, const char *a1, const char *a2, const char *db);

static int authorizer(void *arg, int action, const char *a1, const char *a2, const char *db,
                      const char *trigger)
{
    (void)trigger;
    qsession_t *s = arg;
    if (s->internal)
        return SQLITE_OK;
    if (s->trace)
        s->trace(s->trace_arg, action, a1, a2, db);
    int rc = decide(s, action, a1, a2, db);
    if (rc != SQLITE_OK)
        LOG_DEBUG("query", "sandbox refused action %d (%s, %s, %s)", action, a1 ? a1 : "-",
                  a2 ? a2 : "-", db ? db : "-");
    return rc;
}

/* Functions an aggregates-only query may call: the aggregates and scalar functions. */
static const char *const agg_functions[] = {
    "count",    "sum",       "avg",    "min",   "max",      "total",       "abs",    "lower",
    "upper",    "length",    "substr", "round", "coalesce", "ifnull",      "like",   "glob",
    "ts",       "iso",       "ago",    "now",   "duration", "time_bucket", "date",   "datetime",
    "strftime", "julianday", "instr",  "trim",  "replace",  "cast",        "nullif", "iif",
};

/* The product a table of an attached domain serves ("p", "p__last", "p__agg",
 * "p__quarantine"). */
static const mesh_product_t *table_product(const qsession_t *s, const char *db, const char *table)
{
    char name[MESH_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", table);
    char *sep = strstr(name, "__");
    if (sep)
        *sep = '\0';
    return s->snap ? mesh_snapshot_product(s->snap, db, name) : NULL;
}

static int decide(qsession_t *s, int action, const char *a1, const char *a2, const char *db)
{
    if (s->agg_strict) {
        /* the rewritten aggregates-only query: one SELECT over that one product */
        if (action == SQLITE_SELECT)
            return ++s->agg_selects == 1 ? SQLITE_OK : SQLITE_DENY;
        if (action == SQLITE_READ)
            return a1 && db && s->agg_hit && strcmp(db, s->agg_hit->domain) == 0 &&
                           strcmp(a1, s->agg_hit->name) == 0
                       ? SQLITE_OK
                       : SQLITE_DENY;
        if (action == SQLITE_FUNCTION) {
            for (size_t i = 0; a2 && i < MESH_ARRAY_LEN(agg_functions); i++)
                if (sqlite3_stricmp(a2, agg_functions[i]) == 0)
                    return SQLITE_OK;
            return SQLITE_DENY;
        }
        return SQLITE_DENY;
    }
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_RECURSIVE:
        return SQLITE_OK;
    case SQLITE_READ: {
        /* a1: table, a2: column, db: schema (NULL for a CTE or a subquery's columns) */
        if (a1 == NULL)
            return SQLITE_DENY;
        if (db == NULL)
            return SQLITE_OK;
        if (strcmp(db, SYSTEM_SCHEMA) == 0) /* attached for auditors, kept in the pool */
            return s->audit_ok ? SQLITE_OK : SQLITE_DENY;
        for (size_t i = 0; i < MESH_ARRAY_LEN(allowed_tvfs); i++)
            if (strcmp(a1, allowed_tvfs[i]) == 0)
                return SQLITE_OK;
        if (strncmp(a1, "sqlite_", 7) == 0)
            return SQLITE_DENY;
        for (int i = 0; i < s->nattached; i++) {
            if (strcmp(db, s->attached[i]) != 0)
                continue;
            const mesh_product_t *p = table_product(s, db, a1);
            if (p && p->egress_aggregates && s->agg_hit == NULL && mesh__session_outsider(s, p))
                s->agg_hit = p; /* the query is checked for the allowed shape */
            return SQLITE_OK;
        }
        return SQLITE_DENY;
    }
    case SQLITE_FUNCTION:
        for (size_t i = 0; i < MESH_ARRAY_LEN(denied_functions); i++)
            if (a2 && sqlite3_stricmp(a2, denied_functions[i]) == 0)
                return SQLITE_DENY;
        return SQLITE_OK;
    default:
        return SQLITE_DENY;
    }
}

int mesh__session_progress(void *arg)
{
    qsession_t *s = arg;
    if (atomic_load_explicit(&s->cancel, memory_order_relaxed))
        return 1;
    return s->deadline_mono && mesh_mono_ns() > s->deadline_mono;
}

static mesh_status_t exec_internal(qsession_t *s, const char *sql, mesh_err_t *err)
{
    s->internal = true;
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    s->internal = false;
    if (rc != SQLITE_OK) {
        mesh_err_set(err, MESH_INTERNAL, "session: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return MESH_INTERNAL;
    }
    return MESH_OK;
}

static void session_free(qsession_t *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->nreaders; i++)
        mesh_store_reader_close(s->readers[i].r);
    if (s->db)
        sqlite3_close_v2(s->db);
    if (s->pdb)
        sqlite3_close_v2(s->pdb);
    mesh_policy_put(s->policy);
    mesh_snapshot_put(s->snap);
    mesh_buf_free(&s->products);
    mesh_buf_free(&s->policies);
    free(s);
}

static mesh_status_t session_new(qsession_t **out, mesh_err_t *err)
{
    qsession_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    mesh_buf_init(&s->products, 64 * 1024);
    mesh_buf_init(&s->policies, 64 * 1024);
    if (sqlite3_open_v2(":memory:", &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        session_free(s);
        return mesh_err_set(err, MESH_NOMEM, "cannot open a query session");
    }
    sqlite3 *db = s->db;
    int dummy;
    /* hardening (SQLite docs "Defense Against The Dark Arts" and DEPENDENCIES.md) */
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &dummy);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0, &dummy);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, &dummy);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, &dummy);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, &dummy);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, &dummy);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DML, 0, &dummy);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DDL, 0, &dummy);
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 16 * 1024 * 1024);
    sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, MESH_QUERY_MAX_SQL);
    sqlite3_limit(db, SQLITE_LIMIT_COLUMN, 1000);
    sqlite3_limit(db, SQLITE_LIMIT_EXPR_DEPTH, 200);
    sqlite3_limit(db, SQLITE_LIMIT_COMPOUND_SELECT, 50);
    sqlite3_limit(db, SQLITE_LIMIT_VDBE_OP, 100000);
    sqlite3_limit(db, SQLITE_LIMIT_FUNCTION_ARG, 32);
    sqlite3_limit(db, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000);
    sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, 100);
    sqlite3_limit(db, SQLITE_LIMIT_TRIGGER_DEPTH, 1);
    sqlite3_limit(db, SQLITE_LIMIT_WORKER_THREADS, 0);
    /* json_each and json_tree are eponymous tables built on first use, which writes the
     * schema: build them now, as ours */
    mesh_status_t st =
        exec_internal(s,
                      "PRAGMA temp_store=MEMORY;"
                      "SELECT * FROM json_each('[]'); SELECT * FROM json_tree('[]');",
                      err);
    if (st == MESH_OK &&
        (mesh__vtab_register(db, s) != SQLITE_OK || mesh__vtab_audit_register(db, s) != SQLITE_OK ||
         mesh__vtab_agg_register(db, s) != SQLITE_OK ||
         mesh__vtab_remote_register(db, s) != SQLITE_OK ||
         mesh__sqlfuncs_register(db) != SQLITE_OK ||
         mesh__sqlfuncs_register_session(db, s) != SQLITE_OK))
        st = mesh_err_set(err, MESH_INTERNAL, "session: %s", sqlite3_errmsg(db));
    if (st != MESH_OK) {
        session_free(s);
        return st;
    }
    sqlite3_set_authorizer(db, authorizer, s);
    sqlite3_progress_handler(db, 1000, mesh__session_progress, s);
    *out = s;
    return MESH_OK;
}

mesh_status_t mesh_qpool_create(size_t max_sessions, mesh_qpool_t **out, mesh_err_t *err)
{
    mesh_qpool_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    pthread_mutex_init(&p->lock, NULL);
    p->max = max_sessions ? max_sessions : 64;
    *out = p;
    return MESH_OK;
}

void mesh_qpool_set_federation(mesh_qpool_t *p, mesh_fed_t *fed,
                               bool (*hosted)(void *arg, const char *domain), void *arg)
{
    p->fed = fed;
    p->fed_hosted = hosted;
    p->fed_arg = arg;
}

void mesh_qpool_set_audit(mesh_qpool_t *p, mesh_audit_t *audit)
{
    p->audit = audit;
}

void mesh_qpool_destroy(mesh_qpool_t *p)
{
    if (p == NULL)
        return;
    while (p->free_list) {
        qsession_t *s = p->free_list;
        p->free_list = s->next_free;
        session_free(s);
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static mesh_status_t pool_take(mesh_qpool_t *p, qsession_t **out, mesh_err_t *err)
{
    pthread_mutex_lock(&p->lock);
    qsession_t *s = p->free_list;
    if (s) {
        p->free_list = s->next_free;
        pthread_mutex_unlock(&p->lock);
        s->audit = p->audit;
        s->fed = p->fed;
        s->fed_hosted = p->fed_hosted;
        s->fed_arg = p->fed_arg;
        *out = s;
        return MESH_OK;
    }
    if (p->live >= p->max) {
        pthread_mutex_unlock(&p->lock);
        return mesh_err_set(err, MESH_BUSY, "all %zu query sessions are in use; try again", p->max);
    }
    p->live++;
    pthread_mutex_unlock(&p->lock);
    mesh_status_t st = session_new(out, err);
    if (st != MESH_OK) {
        pthread_mutex_lock(&p->lock);
        p->live--;
        pthread_mutex_unlock(&p->lock);
    } else {
        (*out)->audit = p->audit;
        (*out)->fed = p->fed;
        (*out)->fed_hosted = p->fed_hosted;
        (*out)->fed_arg = p->fed_arg;
    }
    return st;
}

static void pool_give(mesh_qpool_t *p, qsession_t *s)
{
    pthread_mutex_lock(&p->lock);
    s->next_free = p->free_list;
    p->free_list = s;
    pthread_mutex_unlock(&p->lock);
}

/* ---- attaching domains ---- */

static void quote_ident(char *out, size_t cap, const char *name)
{
    size_t o = 0;
    out[o++] = '"';
    for (const char *c = name; *c && o + 3 < cap; c++) {
        if (*c == '"')
            out[o++] = '"';
        out[o++] = *c;
    }
    out[o++] = '"';
    out[o] = '\0';
}

static mesh_status_t detach(qsession_t *s, int i, mesh_err_t *err)
{
    char q[80], sql[128];
    quote_ident(q, sizeof q, s->attached[i]);
    snprintf(sql, sizeof sql, "DETACH DATABASE %s", q);
    mesh_status_t st = exec_internal(s, sql, err);
    s->nattached--;
    memmove(s->attached[i], s->attached[s->nattached], sizeof s->attached[i]);
    s->attached_used[i] = s->attached_used[s->nattached];
    s->remote[i] = s->remote[s->nattached];
    s->remote_id[i] = s->remote_id[s->nattached];
    return st;
}

static mesh_status_t attach(qsession_t *s, const mesh_snap_domain_t *sd, mesh_err_t *err)
{
    char q[80], qp[160], sql[512];
    quote_ident(q, sizeof q, sd->meta.name);
    snprintf(sql, sizeof sql, "ATTACH DATABASE ':memory:' AS %s", q);
    mesh_status_t st = exec_internal(s, sql, err);
    if (st != MESH_OK)
        return st;
    snprintf(s->attached[s->nattached], sizeof s->attached[0], "%s", sd->meta.name);
    s->attached_used[s->nattached] = ++s->tick;
    s->remote[s->nattached] = false;
    s->remote_id[s->nattached] = 0;
    s->nattached++;
    bool owner = mesh__session_owner(s, sd->meta.name);
    for (size_t k = 0; k < sd->ncrefs && st == MESH_OK; k++) {
        const mesh_contract_t *c = sd->crefs[k]->c;
        for (size_t i = 0; i < c->nproducts && st == MESH_OK; i++) {
            /* a product the caller may not read does not exist for it */
            if (!mesh_policy_decide(s->policy, s->who, MESH_ACT_READ, sd->meta.name,
                                    c->products[i].name, owner, NULL))
                continue;
            quote_ident(qp, sizeof qp, c->products[i].name);
            snprintf(sql, sizeof sql, "CREATE VIRTUAL TABLE %s.%s USING mesh_product", q, qp);
            st = exec_internal(s, sql, err);
            char qn[160];
            /* refused rows are raw input, beyond masks and filters: for administrators */
            snprintf(qn, sizeof qn, "%s__quarantine", c->products[i].name);
            quote_ident(qp, sizeof qp, qn);
            snprintf(sql, sizeof sql, "CREATE VIRTUAL TABLE %s.%s USING mesh_product", q, qp);
            if (st == MESH_OK &&
                mesh_policy_decide(s->policy, s->who, MESH_ACT_ADMIN, sd->meta.name,
                                   c->products[i].name, owner, NULL))
                st = exec_internal(s, sql, err);
            /* a time series also offers the newest row of each series */
            if (st == MESH_OK &&
                mesh_store_is_timeseries(mesh_domain_store(sd->dom), c->products[i].name)) {
                snprintf(qn, sizeof qn, "%s__last", c->products[i].name);
                quote_ident(qp, sizeof qp, qn);
                snprintf(sql, sizeof sql, "CREATE VIRTUAL TABLE %s.%s USING mesh_product", q, qp);
                st = exec_internal(s, sql, err);
                /* ... and its rollups per series and time bucket */
                snprintf(qn, sizeof qn, "%s__agg", c->products[i].name);
                quote_ident(qp, sizeof qp, qn);
                snprintf(sql, sizeof sql, "CREATE VIRTUAL TABLE %s.%s USING mesh_rollup", q, qp);
                if (st == MESH_OK)
                    st = exec_internal(s, sql, err);
            }
        }
    }
    return st;
}

/* Moves the session to a new snapshot: every attached schema was built from the old one. */
static mesh_status_t use_snapshot(qsession_t *s, mesh_snapshot_t *snap, mesh_err_t *err)
{
    if (s->snap && s->snap->gen == snap->gen)
        return MESH_OK;
    mesh_status_t st = MESH_OK;
    while (s->nattached > 0 && st == MESH_OK)
        st = detach(s, s->nattached - 1, err);
    /* readers of domains that are gone (or were re-created) are closed */
    for (int i = 0; i < s->nreaders;) {
        const mesh_snap_domain_t *sd = mesh_snapshot_domain(snap, s->readers[i].domain);
        if (sd && sd->handle == s->readers[i].handle) {
            i++;
            continue;
        }
        mesh_store_reader_close(s->readers[i].r);
        s->readers[i] = s->readers[--s->nreaders];
    }
    mesh_snapshot_put(s->snap);
    atomic_fetch_add((_Atomic int *)&snap->refs, 1);
    s->snap = snap;
    return st;
}

/*
 * Finds the schema names a query refers to: identifiers (bare, "quoted", `quoted` or
 * [bracketed]) followed by a '.', outside string literals and comments.
 */
void mesh_sql_schema_refs(const char *sql, size_t n, mesh_sql_ref_fn fn, void *arg)
{
    size_t i = 0;
    while (i < n) {
        char c = sql[i];
        if (c == '\'') {
            for (i++; i < n; i++)
                if (sql[i] == '\'' && !(i + 1 < n && sql[i + 1] == '\'' && ++i))
                    break;
            i++;
            continue;
        }
        if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
            while (i < n && sql[i] != '\n')
                i++;
            continue;
        }
        if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
            i += 2;
            while (i + 1 < n && !(sql[i] == '*' && sql[i + 1] == '/'))
                i++;
            i += 2;
            continue;
        }
        char ident[128];
        size_t il = 0;
        if (c == '"' || c == '`' || c == '[') {
            char close = c == '[' ? ']' : c;
            for (i++; i < n; i++) {
                if (sql[i] == close) {
                    if (close != ']' && i + 1 < n && sql[i + 1] == close) {
                        i++;
                    } else {
                        break;
                    }
                }
                if (il + 1 < sizeof ident)
                    ident[il++] = sql[i];
            }
            i++;
        } else if (isalpha((unsigned char)c) || c == '_') {
            while (i < n && (isalnum((unsigned char)sql[i]) || sql[i] == '_' || sql[i] == '$')) {
                if (il + 1 < sizeof ident)
                    ident[il++] = sql[i];
                i++;
            }
        } else {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && isspace((unsigned char)sql[j]))
            j++;
        if (j < n && sql[j] == '.' && il > 0)
            fn(arg, ident, il);
    }
}

typedef struct refs_ctx {
    qsession_t *s;
    const mesh_snap_domain_t *need[MESH_QUERY_MAX_DOMAINS + 1];
    int nneed;
    bool too_many;
    bool system;                                 /* the query names system.* and may read it */
    char remote[MESH_QUERY_MAX_DOMAINS + 1][64]; /* domains hosted by other nodes */
    int nremote;
} refs_ctx_t;

static void note_ref(void *arg, const char *name, size_t n)
{
    refs_ctx_t *r = arg;
    char lower[64];
    if (n >= sizeof lower)
        return;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    lower[n] = '\0';
    if (strcmp(lower, SYSTEM_SCHEMA) == 0) {
        r->system = r->system || r->s->audit_ok;
        return;
    }
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(r->s->snap, lower);
    if (sd == NULL) {
        /* a domain of another node (federated query) */
        if (r->s->fed == NULL || r->s->local_only || !mesh_name_domain_ok(lower))
            return;
        for (int i = 0; i < r->nremote; i++)
            if (strcmp(r->remote[i], lower) == 0)
                return;
        if (!r->s->fed_hosted(r->s->fed_arg, lower))
            return;
        if (r->nneed + r->nremote == MESH_QUERY_MAX_DOMAINS) {
            r->too_many = true;
            return;
        }
        snprintf(r->remote[r->nremote++], sizeof r->remote[0], "%s", lower);
        return;
    }
    for (int i = 0; i < r->nneed; i++)
        if (r->need[i] == sd)
            return;
    if (r->nneed + r->nremote == MESH_QUERY_MAX_DOMAINS) {
        r->too_many = true;
        return;
    }
    r->need[r->nneed++] = sd;
}

/* Attaches the system schema (system.audit) unless it is. */
static mesh_status_t attach_system(qsession_t *s, mesh_err_t *err)
{
    for (int i = 0; i < s->nattached; i++)
        if (strcmp(s->attached[i], SYSTEM_SCHEMA) == 0) {
            s->attached_used[i] = ++s->tick;
            return MESH_OK;
        }
    mesh_status_t st = exec_internal(s, "ATTACH DATABASE ':memory:' AS " SYSTEM_SCHEMA, err);
    if (st != MESH_OK)
        return st;
    snprintf(s->attached[s->nattached], sizeof s->attached[0], "%s", SYSTEM_SCHEMA);
    s->attached_used[s->nattached] = ++s->tick;
    s->nattached++;
    return exec_internal(s, "CREATE VIRTUAL TABLE " SYSTEM_SCHEMA ".audit USING mesh_audit", err);
}

/* Attaches a domain of another node: the tables the caller may read there, as its owner
 * says (describe), each a remote product table (vtab_remote.c). */
static mesh_status_t attach_remote(qsession_t *s, const char *domain, mesh_err_t *err)
{
    mesh_fed_schema_t schema;
    uint64_t id = 0;
    mesh_status_t st = mesh_fed_describe(s->fed, s->who->name, domain, &schema, &id, err);
    if (st != MESH_OK)
        return st;
    if (schema.ntables == 0) {
        mesh_fed_schema_free(&schema);
        return mesh_err_set(err, MESH_FORBIDDEN,
                            "domain %s (on another node): %s may read none of its products "
                            "there (grants are decided by the domain's own node)",
                            domain, s->who->name);
    }
    char q[80], qp[160], sql[512];
    quote_ident(q, sizeof q, domain);
    snprintf(sql, sizeof sql, "ATTACH DATABASE ':memory:' AS %s", q);
    st = exec_internal(s, sql, err);
    if (st == MESH_OK) {
        snprintf(s->attached[s->nattached], sizeof s->attached[0], "%s", domain);
        s->attached_used[s->nattached] = ++s->tick;
        s->remote[s->nattached] = true;
        s->remote_id[s->nattached] = id;
        s->nattached++;
    }
    s->remote_schema = &schema;
    for (size_t i = 0; i < schema.ntables && st == MESH_OK; i++) {
        quote_ident(qp, sizeof qp, schema.tables[i].name);
        snprintf(sql, sizeof sql, "CREATE VIRTUAL TABLE %s.%s USING mesh_remote", q, qp);
        st = exec_internal(s, sql, err);
    }
    s->remote_schema = NULL;
    mesh_fed_schema_free(&schema);
    return st;
}

static mesh_status_t attach_needed(qsession_t *s, const refs_ctx_t *rp, mesh_err_t *err)
{
    const refs_ctx_t r = *rp;
    if (r.too_many || (r.system && r.nneed + r.nremote == MESH_QUERY_MAX_DOMAINS))
        return mesh_err_set(err, MESH_LIMIT, "a query can read products of at most %d domains",
                            MESH_QUERY_MAX_DOMAINS - (r.system ? 1 : 0));
    mesh_status_t st = MESH_OK;
    for (int k = 0; k < r.nneed && st == MESH_OK; k++) {
        int found = -1;
        for (int i = 0; i < s->nattached; i++)
            if (!s->remote[i] && strcmp(s->attached[i], r.need[k]->meta.name) == 0)
                found = i;
        if (found >= 0) {
            s->attached_used[found] = ++s->tick;
            continue;
        }
        while (s->nattached >= MESH_QUERY_MAX_DOMAINS && st == MESH_OK) {
            /* drop the least recently used schema that this query does not need */
            int lru = -1;
            for (int i = 0; i < s->nattached; i++) {
                bool needed = r.system && strcmp(s->attached[i], SYSTEM_SCHEMA) == 0;
                for (int j = 0; j < r.nneed; j++)
                    if (strcmp(s->attached[i], r.need[j]->meta.name) == 0)
                        needed = true;
                if (!needed && (lru < 0 || s->attached_used[i] < s->attached_used[lru]))
                    lru = i;
            }
            if (lru < 0)
                return mesh_err_set(err, MESH_LIMIT,
                                    "a query can read products of at most %d domains",
                                    MESH_QUERY_MAX_DOMAINS);
            st = detach(s, lru, err);
        }
        if (st == MESH_OK)
            st = attach(s, r.need[k], err);
    }
    for (int k = 0; k < r.nremote && st == MESH_OK; k++) {
        /* still attached from an earlier query, from the describe answer that is reused now:
         * kept; from an older one: made again */
        int found = -1;
        for (int i = 0; i < s->nattached; i++)
            if (s->remote[i] && strcmp(s->attached[i], r.remote[k]) == 0)
                found = i;
        if (found >= 0 && s->remote_id[found] != 0 &&
            s->remote_id[found] == mesh_fed_describe_current(s->fed, s->who->name, r.remote[k])) {
            s->attached_used[found] = ++s->tick;
            continue;
        }
        if (found >= 0 && (st = detach(s, found, err)) != MESH_OK)
            break;
        /* the domains above may have taken every slot: make room as they did */
        int lru = -1;
        for (int i = 0; s->nattached >= MESH_QUERY_MAX_DOMAINS && i < s->nattached; i++) {
            bool needed = r.system && strcmp(s->attached[i], SYSTEM_SCHEMA) == 0;
            for (int j = 0; j < r.nneed; j++)
                needed = needed || strcmp(s->attached[i], r.need[j]->meta.name) == 0;
            for (int j = 0; j < k; j++)
                needed = needed || strcmp(s->attached[i], r.remote[j]) == 0;
            if (!needed && (lru < 0 || s->attached_used[i] < s->attached_used[lru]))
                lru = i;
        }
        if (lru >= 0)
            st = detach(s, lru, err);
        if (st == MESH_OK)
            st = attach_remote(s, r.remote[k], err);
    }
    if (st == MESH_OK && r.system) {
        /* the domains above may have taken every slot: make room as they did */
        int lru = -1;
        for (int i = 0; s->nattached >= MESH_QUERY_MAX_DOMAINS && i < s->nattached; i++) {
            bool needed = strcmp(s->attached[i], SYSTEM_SCHEMA) == 0;
            for (int j = 0; j < r.nneed; j++)
                needed = needed || strcmp(s->attached[i], r.need[j]->meta.name) == 0;
            if (!needed && (lru < 0 || s->attached_used[i] < s->attached_used[lru]))
                lru = i;
        }
        if (lru >= 0)
            st = detach(s, lru, err);
        if (st == MESH_OK)
            st = attach_system(s, err);
    }
    return st;
}

/* ---- readers ---- */

mesh_status_t mesh__session_reader(qsession_t *s, const mesh_snap_domain_t *sd,
                                   mesh_store_reader_t **out, mesh_err_t *err)
{
    qreader_t *qr = NULL;
    for (int i = 0; i < s->nreaders; i++)
        if (strcmp(s->readers[i].domain, sd->meta.name) == 0 && s->readers[i].handle == sd->handle)
            qr = &s->readers[i];
    if (qr == NULL) {
        if (s->nreaders == (int)MESH_ARRAY_LEN(s->readers)) {
            /* close an idle one */
            int victim = -1;
            for (int i = 0; i < s->nreaders && victim < 0; i++)
                if (!s->readers[i].begun)
                    victim = i;
            if (victim < 0)
                return mesh_err_set(err, MESH_LIMIT, "too many domains in one query");
            mesh_store_reader_close(s->readers[victim].r);
            s->readers[victim] = s->readers[--s->nreaders];
        }
        qr = &s->readers[s->nreaders];
        memset(qr, 0, sizeof *qr);
        mesh_status_t st = mesh_store_reader_open(mesh_domain_store(sd->dom), &qr->r, err);
        if (st != MESH_OK)
            return st;
        snprintf(qr->domain, sizeof qr->domain, "%s", sd->meta.name);
        qr->handle = sd->handle;
        s->nreaders++;
    }
    if (!qr->begun) {
        mesh_status_t st = mesh_store_reader_begin(qr->r, err);
        if (st != MESH_OK)
            return st;
        qr->begun = true;
    }
    *out = qr->r;
    return MESH_OK;
}

void mesh__session_note_product(qsession_t *s, const char *domain, const char *product)
{
    char name[160];
    snprintf(name, sizeof name, "%s.%s", domain, product);
    if (s->products.data) {
        /* already noted? */
        const char *p = s->products.data;
        size_t nl = strlen(name);
        while ((p = strstr(p, name)) != NULL) {
            bool start = p == s->products.data || p[-1] == ',';
            bool end = p[nl] == '\0' || p[nl] == ',';
            if (start && end)
                return;
            p += nl;
        }
    }
    if (s->products.len)
        mesh_buf_addc(&s->products, ',');
    mesh_buf_adds(&s->products, name);
}

void mesh__session_note_policies(qsession_t *s, const char *lines)
{
    for (const char *l = lines; l && *l;) {
        size_t n = strcspn(l, "\n");
        bool seen = false;
        for (const char *p = s->policies.data; p && *p && !seen;) {
            size_t m = strcspn(p, "\n");
            seen = m == n && memcmp(p, l, n) == 0;
            p += m + (p[m] == '\n');
        }
        if (!seen) {
            mesh_buf_add(&s->policies, l, n);
            mesh_buf_addc(&s->policies, '\n');
        }
        l += n + (l[n] == '\n');
    }
}

/* ---- queries ---- */

static mesh_status_t prepare_error(qsession_t *s, sqlite3 *db, int rc, mesh_err_t *err)
{
    const char *msg = sqlite3_errmsg(db);
    if (!s->audit_ok && strstr(msg, "no such table: " SYSTEM_SCHEMA "."))
        return mesh_err_set(err, MESH_FORBIDDEN,
                            "%s: the system tables need the auditor or admin role", msg);
    /* the authorizer's denials found while SQLite resolves names (a table-valued pragma, a
     * function such as load_extension) come as SQLITE_ERROR with "not authorized...": they
     * are the sandbox's refusals as much as SQLITE_AUTH is; so is a write to a product
     * table, which SQLite refuses before asking the authorizer (read-only virtual table) */
    if (rc == SQLITE_AUTH || strncmp(msg, "not authorized", 14) == 0 ||
        strstr(msg, "may not be modified"))
        return mesh_err_set(err, MESH_FORBIDDEN,
                            "not allowed in a query: %s (only SELECT over data products)", msg);
    if (strstr(msg, "too big") || strstr(msg, "too many") || strstr(msg, "too long") ||
        rc == SQLITE_TOOBIG)
        return mesh_err_set(err, MESH_LIMIT, "%s", msg);
    if (rc == SQLITE_INTERRUPT)
        return mesh_err_set(err, MESH_TIMEOUT, "query time limit exceeded");
    return mesh_err_set(err, MESH_PARSE, "%s", msg);
}

/* Makes the session the caller's: its schemas were built for another principal or policy. */
static mesh_status_t bind_principal(qsession_t *s, mesh_policy_t *policy,
                                    const mesh_identity_t *who, mesh_err_t *err)
{
    int64_t version = mesh_policy_version(policy);
    if (s->policy && s->bound_principal == who->principal_id && s->bound_version == version &&
        strcmp(s->bound_roles, who->roles) == 0)
        return MESH_OK;
    mesh_status_t st = MESH_OK;
    while (s->nattached > 0 && st == MESH_OK)
        st = detach(s, s->nattached - 1, err);
    mesh_policy_put(s->policy);
    s->policy = mesh_policy_ref(policy);
    s->bound_principal = who->principal_id;
    s->bound_version = version;
    snprintf(s->bound_roles, sizeof s->bound_roles, "%s", who->roles);
    return st;
}

bool mesh__session_outsider(const qsession_t *s, const mesh_product_t *p)
{
    if (s->who == NULL || s->policy == NULL)
        return true;
    bool owner = mesh__session_owner(s, p->domain);
    return !owner &&
           !mesh_policy_decide(s->policy, s->who, MESH_ACT_WRITE, p->domain, p->name, owner,
                               NULL) &&
           !mesh_policy_decide(s->policy, s->who, MESH_ACT_ADMIN, p->domain, p->name, owner, NULL);
}

bool mesh__session_owner(const qsession_t *s, const char *domain)
{
    const mesh_snap_domain_t *sd = s->snap ? mesh_snapshot_domain(s->snap, domain) : NULL;
    for (size_t i = 0; sd && s->who && i < sd->meta.nowners; i++)
        if (strcmp(sd->meta.owners[i], s->who->name) == 0)
            return true;
    return false;
}

/* The query read an aggregates-only product as an outsider: it must have the allowed shape
 * (aggquery.c); it is prepared again, rewritten to count the privacy units of each group,
 * under the strict authorizer, and groups of fewer than k units are dropped as it steps. */
static mesh_status_t start_aggregate(mesh_query_t *q, const char *sql, size_t sql_len,
                                     mesh_err_t *err)
{
    qsession_t *s = q->s;
    const mesh_product_t *p = s->agg_hit;
    sqlite3_finalize(q->stmt);
    q->stmt = NULL;
    if (p->privacy_unit_col < 0)
        return mesh_err_set(err, MESH_FORBIDDEN, "%s.%s: aggregates only, without a privacy unit",
                            p->domain, p->name);
    mesh_buf_t text;
    mesh_buf_init(&text, MESH_QUERY_MAX_SQL + 256);
    mesh_status_t st =
        mesh__aggq_rewrite(sql, sql_len, p->cols[p->privacy_unit_col].name, &text, err);
    if (st == MESH_FORBIDDEN) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        mesh_err_set(err, MESH_FORBIDDEN,
                     "%s.%s releases aggregates only to callers outside its domain (groups of "
                     "at least %d distinct %s): %s",
                     p->domain, p->name, p->egress_k, p->cols[p->privacy_unit_col].name, why);
    }
    if (st == MESH_OK) {
        s->agg_strict = true;
        s->agg_selects = 0;
        int rc = sqlite3_prepare_v3(s->db, text.data, (int)text.len, 0, &q->stmt, NULL);
        s->agg_strict = false;
        if (rc != SQLITE_OK)
            st = rc == SQLITE_AUTH
                     ? mesh_err_set(err, MESH_FORBIDDEN,
                                    "%s.%s releases aggregates only: %s (only aggregate "
                                    "functions and simple scalar functions)",
                                    p->domain, p->name, sqlite3_errmsg(s->db))
                     : prepare_error(s, s->db, rc, err);
        else if (q->stmt == NULL || sqlite3_column_count(q->stmt) < 2)
            st = mesh_err_set(err, MESH_FORBIDDEN, "%s.%s: not an aggregate query", p->domain,
                              p->name);
    }
    mesh_buf_free(&text);
    if (st == MESH_OK) {
        q->agg = true;
        q->agg_k = p->egress_k;
        s->agg_ok = true;
    }
    return st;
}

/* Sends the whole statement to the node of the one remote domain it reads (decision 0039):
 * that node runs it as the caller under its own policy and sandbox, and only the answer
 * travels. */
static mesh_status_t start_pushed(mesh_query_t *q, const char *domain, const char *sql,
                                  size_t sql_len, mesh_err_t *err)
{
    qsession_t *s = q->s;
    mesh_fed_request_t r;
    memset(&r, 0, sizeof r);
    r.limit = -1;
    snprintf(r.user, sizeof r.user, "%s", s->who->name);
    snprintf(r.domain, sizeof r.domain, "%s", domain);
    r.sql = (char *)sql;
    r.sql_len = sql_len;
    if (q->lim.timeout_ns > 0)
        r.timeout_ms = q->lim.timeout_ns / 1000000 > 0 ? q->lim.timeout_ns / 1000000 : 1;
    /* the owner sends one row more than the limit: running past it fails here, as a local
     * query does */
    r.max_rows = q->lim.max_rows > 0 ? q->lim.max_rows : 0;
    mesh_status_t st = mesh_fed_query_open(s->fed, &r, &q->fs, err);
    if (st != MESH_OK)
        return st;
    const mesh_fed_meta_t *m = mesh_fed_scan_meta(q->fs);
    if ((q->text = calloc(m->ncols, sizeof *q->text)) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    for (size_t i = 0; i < m->ncols; i++)
        mesh_buf_init(&q->text[i], MESH_BUF_UNLIMITED);
    q->ntext = m->ncols;
    if (m->products)
        mesh_buf_adds(&s->products, m->products);
    if (m->policies)
        mesh_buf_adds(&s->policies, m->policies);
    return MESH_OK;
}

/* Whether a query is sent whole to another node: it reads one domain, hosted elsewhere, and
 * nothing of this node (a domain here, the system tables). */
static bool pushable(const qsession_t *s, const mesh_query_limits_t *lim, const refs_ctx_t *r,
                     size_t sql_len)
{
    return lim->push_ok && s->fed && !s->local_only && r->nremote == 1 && r->nneed == 0 &&
           !r->system && !r->too_many && sql_len <= MESH_FED_MAX_SQL;
}

mesh_status_t mesh_query_start(mesh_qpool_t *pool, mesh_snapshot_t *snap, mesh_policy_t *policy,
                               const mesh_identity_t *who, const char *sql, size_t sql_len,
                               const mesh_query_limits_t *lim, mesh_query_t **out, mesh_err_t *err)
{
    if (policy == NULL || who == NULL)
        return mesh_err_set(err, MESH_UNAUTHENTICATED, "a query needs a caller and a policy");
    if (sql_len == 0)
        return mesh_err_set(err, MESH_INVALID, "empty query");
    if (sql_len > MESH_QUERY_MAX_SQL)
        return mesh_err_set(err, MESH_TOO_LARGE, "query text longer than %d bytes",
                            MESH_QUERY_MAX_SQL);
    mesh_query_t *q = calloc(1, sizeof *q);
    if (q == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    q->pool = pool;
    q->lim = *lim;
    mesh_status_t st = pool_take(pool, &q->s, err);
    if (st != MESH_OK) {
        free(q);
        return st;
    }
    qsession_t *s = q->s;
    s->who = who;
    s->query_gen++;
    s->audit_ok =
        s->audit && mesh_policy_decide(policy, who, MESH_ACT_AUDIT, NULL, NULL, false, NULL);
    atomic_store(&s->cancel, false);
    s->deadline_mono = lim->timeout_ns > 0 ? mesh_mono_ns() + lim->timeout_ns : 0;
    mesh_buf_reset(&s->products);
    mesh_buf_reset(&s->policies);
    s->rows_scanned = 0;
    s->agg_hit = NULL;
    s->agg_strict = false;
    s->agg_ok = false;
    s->local_only = lim->local_only;
    s->remote_code = MESH_OK;
    if ((st = bind_principal(s, policy, who, err)) == MESH_OK &&
        (st = use_snapshot(s, snap, err)) == MESH_OK) {
        /* a query another node sent: no remote domain, not even one still attached from
         * this principal's earlier query (it would be asked on the sender's behalf) */
        for (int i = s->nattached - 1; lim->local_only && st == MESH_OK && i >= 0; i--)
            if (s->remote[i])
                st = detach(s, i, err);
    }
    if (st == MESH_OK) {
        refs_ctx_t r = {.s = s};
        mesh_sql_schema_refs(sql, sql_len, note_ref, &r);
        if (pushable(s, lim, &r, sql_len)) {
            st = start_pushed(q, r.remote[0], sql, sql_len, err);
            if (st == MESH_OK) {
                *out = q;
                return MESH_OK;
            }
            /* not run there: an owner before decision 0039 refuses the request itself
             * ("malformed request": op), a statement too large to send, or one the owner
             * could not prepare (parse: nothing ran): the query is made here over the
             * domain's remote tables, which also words such an error as a local query would.
             * A statement that failed while it ran is not run again. */
            bool old_owner = st == MESH_INVALID && strstr(err->msg, "malformed request");
            if (st != MESH_PARSE && st != MESH_TOO_LARGE && !old_owner) {
                mesh_query_finish(q);
                return st;
            }
            mesh_fed_scan_close(q->fs);
            q->fs = NULL;
            mesh_buf_reset(&s->products);
            mesh_buf_reset(&s->policies);
            mesh_err_clear(err);
            st = MESH_OK;
        }
        if (st == MESH_OK)
            st = attach_needed(s, &r, err);
    }
    if (st == MESH_OK) {
        const char *tail = NULL;
        int rc = sqlite3_prepare_v3(s->db, sql, (int)sql_len, 0, &q->stmt, &tail);
        if (rc != SQLITE_OK) {
            st = prepare_error(s, s->db, rc, err);
        } else if (q->stmt == NULL) {
            st = mesh_err_set(err, MESH_INVALID, "empty query");
        } else {
            while (tail && *tail && isspace((unsigned char)*tail))
                tail++;
            if (tail && *tail == ';')
                tail++;
            while (tail && *tail && isspace((unsigned char)*tail))
                tail++;
            if (tail && (size_t)(tail - sql) < sql_len && *tail)
                st = mesh_err_set(err, MESH_INVALID, "one statement per query");
            else if (!sqlite3_stmt_readonly(q->stmt))
                st = mesh_err_set(err, MESH_FORBIDDEN, "only SELECT statements are allowed");
        }
    }
    if (st == MESH_OK && s->agg_hit && !lim->prepare_only)
        st = start_aggregate(q, sql, sql_len, err);
    if (st != MESH_OK) {
        mesh_query_finish(q);
        return st;
    }
    *out = q;
    return MESH_OK;
}

mesh_status_t mesh_query_bind(mesh_query_t *q, int idx, const mesh_datum_t *v)
{
    if (q->stmt == NULL || idx < 1 || idx > sqlite3_bind_parameter_count(q->stmt))
        return MESH_INVALID;
    int rc;
    switch (v->type) {
    case MESH_V_INT:
        rc = sqlite3_bind_int64(q->stmt, idx, v->i);
        break;
    case MESH_V_REAL:
        rc = sqlite3_bind_double(q->stmt, idx, v->d);
        break;
    case MESH_V_TEXT:
        rc = sqlite3_bind_text64(q->stmt, idx, v->s ? v->s : "", v->n, SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
        break;
    default:
        rc = sqlite3_bind_null(q->stmt, idx);
    }
    return rc == SQLITE_OK ? MESH_OK : MESH_INVALID;
}

int mesh_query_ncols(const mesh_query_t *q)
{
    if (q->fs)
        return (int)mesh_fed_scan_meta(q->fs)->ncols;
    return sqlite3_column_count(q->stmt) - (q->agg ? 1 : 0);
}

int64_t mesh_query_suppressed(const mesh_query_t *q)
{
    if (q->fs)
        return mesh_fed_scan_meta(q->fs)->suppressed;
    return q->agg ? q->suppressed : -1;
}

const char *mesh_query_colname(const mesh_query_t *q, int i)
{
    if (q->fs)
        return mesh_fed_scan_meta(q->fs)->cols[i];
    const char *n = sqlite3_column_name(q->stmt, i);
    return n ? n : "?";
}

const char *mesh_query_coltype(const mesh_query_t *q, int i)
{
    if (q->fs)
        return mesh_fed_type_name(mesh_fed_scan_meta(q->fs)->types[i]);
    return sqlite3_column_decltype(q->stmt, i);
}

/* The next row of a statement another node runs. */
static int step_pushed(mesh_query_t *q, mesh_err_t *err)
{
    if (atomic_load(&q->s->cancel)) {
        mesh_err_set(err, MESH_TIMEOUT, "query cancelled");
        return -1;
    }
    /* the clock every 64 rows (a frame's rows come from memory; reading the clock for each
     * was a tenth of a 25,000-row answer's time here) */
    if (q->s->deadline_mono && q->rows % 64 == 0 && mesh_mono_ns() > q->s->deadline_mono) {
        mesh_err_set(err, MESH_TIMEOUT, "query time limit of %lld ms exceeded",
                     (long long)(q->lim.timeout_ns / 1000000));
        return -1;
    }
    int rc = mesh_fed_scan_next(q->fs, &q->row, err);
    if (rc == 1)
        q->rows++;
    return rc;
}

int mesh_query_step(mesh_query_t *q, mesh_err_t *err)
{
    if (q->lim.max_rows > 0 && q->rows >= q->lim.max_rows) {
        mesh_err_set(err, MESH_LIMIT, "the result has more than %lld rows (max_rows)",
                     (long long)q->lim.max_rows);
        return -1;
    }
    if (q->fs)
        return step_pushed(q, err);
    if (q->lim.prepare_only) {
        mesh_err_set(err, MESH_FORBIDDEN, "a query prepared for its columns only");
        return -1;
    }
    int rc = sqlite3_step(q->stmt);
    while (rc == SQLITE_ROW && q->agg &&
           sqlite3_column_int64(q->stmt, sqlite3_column_count(q->stmt) - 1) < q->agg_k) {
        q->suppressed++; /* a group of fewer than k units */
        rc = sqlite3_step(q->stmt);
    }
    if (rc == SQLITE_ROW) {
        q->rows++;
        return 1;
    }
    if (rc == SQLITE_DONE)
        return 0;
    if (rc == SQLITE_INTERRUPT) {
        if (atomic_load(&q->s->cancel))
            mesh_err_set(err, MESH_TIMEOUT, "query cancelled");
        else
            mesh_err_set(err, MESH_TIMEOUT, "query time limit of %lld ms exceeded",
                         (long long)(q->lim.timeout_ns / 1000000));
        return -1;
    }
    const char *msg = sqlite3_errmsg(q->s->db);
    mesh_status_t code = q->s->remote_code != MESH_OK                      ? q->s->remote_code
                         : (rc == SQLITE_TOOBIG || strstr(msg, "too big")) ? MESH_LIMIT
                         : rc == SQLITE_NOMEM                              ? MESH_NOMEM
                         : rc == SQLITE_AUTH                               ? MESH_FORBIDDEN
                         : rc == SQLITE_CORRUPT                            ? MESH_CORRUPT
                                                                           : MESH_INVALID;
    mesh_err_set(err, code, "%s", msg);
    return -1;
}

/* terminated: text NUL-terminated (mesh_query_value) or as the product table handed it,
 * with its length only (mesh_query_value_bytes: asking for text would make SQLite copy the
 * bytes to add a NUL) */
static void query_value(mesh_query_t *q, int i, mesh_datum_t *out, bool terminated)
{
    if (q->fs) {
        *out = q->row[i];
        if (terminated && out->type == MESH_V_TEXT) {
            /* the frame's bytes are not NUL-terminated */
            mesh_buf_t *t = &q->text[i];
            mesh_buf_reset(t);
            if (mesh_buf_add(t, out->s, out->n) == MESH_OK && t->data)
                out->s = t->data;
            else
                out->s = "", out->n = 0;
        }
        return;
    }
    memset(out, 0, sizeof *out);
    /* one call into the statement per value (each sqlite3_column_* is one); the value is read
     * on this thread, between steps */
    sqlite3_value *v = sqlite3_column_value(q->stmt, i);
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
        out->type = MESH_V_INT;
        out->i = sqlite3_value_int64(v);
        break;
    case SQLITE_FLOAT:
        out->type = MESH_V_REAL;
        out->d = sqlite3_value_double(v);
        break;
    case SQLITE_TEXT:
    case SQLITE_BLOB:
        out->type = MESH_V_TEXT;
        out->s =
            terminated ? (const char *)sqlite3_value_text(v) : (const char *)sqlite3_value_blob(v);
        out->n = (size_t)sqlite3_value_bytes(v);
        if (out->s == NULL)
            out->s = "";
        break;
    default:
        out->type = MESH_V_NULL;
    }
}

void mesh_query_value(mesh_query_t *q, int i, mesh_datum_t *out)
{
    query_value(q, i, out, true);
}

void mesh_query_value_bytes(mesh_query_t *q, int i, mesh_datum_t *out)
{
    query_value(q, i, out, false);
}

int64_t mesh_query_rows(const mesh_query_t *q)
{
    return q->rows;
}

int64_t mesh_query_scanned(const mesh_query_t *q)
{
    if (q->fs) {
        int64_t n = mesh_fed_scan_meta(q->fs)->scanned;
        return n > 0 ? n : 0;
    }
    return q->s->rows_scanned;
}

const char *mesh_query_products(const mesh_query_t *q)
{
    return q->s->products.data ? q->s->products.data : "";
}

const char *mesh_query_policies(const mesh_query_t *q)
{
    return q->s->policies.data ? q->s->policies.data : "";
}

void mesh_query_cancel(mesh_query_t *q)
{
    atomic_store(&q->s->cancel, true);
}

void mesh_query_finish(mesh_query_t *q)
{
    if (q == NULL)
        return;
    qsession_t *s = q->s;
    sqlite3_finalize(q->stmt);
    mesh_fed_scan_close(q->fs);
    for (size_t i = 0; i < q->ntext; i++)
        mesh_buf_free(&q->text[i]);
    free(q->text);
    /* rows kept for a replay (a join's inner side, up to 32 MiB a table) are not held by an
     * idle session: their tables go (made again by the next query that needs them) */
    mesh_err_t err;
    for (int i = s->nattached - 1; s->remote_kept && i >= 0; i--)
        if (s->remote[i])
            detach(s, i, &err);
    s->remote_kept = false;
    for (int i = 0; i < s->nreaders; i++) {
        if (s->readers[i].begun) {
            mesh_store_reader_end(s->readers[i].r);
            s->readers[i].begun = false;
        }
    }
    s->who = NULL;
    s->audit_ok = false;
    s->agg_hit = NULL;
    s->agg_ok = false;
    s->deadline_mono = 0;
    pool_give(q->pool, s);
    free(q);
}
