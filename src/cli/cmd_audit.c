/*
 * cmd_audit.c - `meshctl audit verify` and `meshctl audit search`: the node's audit log,
 * through the API (POST /v1/audit/verify, GET /v1/audit) or, with --data-dir, straight from
 * a data directory with meshd stopped (or running: what is written so far).
 *
 * Offline, the audit key is derived from the node's key (DATA_DIR/catalog.key, opened with
 * the node's key-encryption key) when the node encrypts at rest, and comes from
 * DATA_DIR/audit/key (or --key-file) when it does not; the result has the same JSON shape
 * both ways, and one renderer prints it.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "cli/cli.h"
#include "core/util.h"
#include "node/node.h"

static const char *str_or(const char *s, const char *def)
{
    return s ? s : def;
}

/* The audit directory and keys of a data directory; returns 0 or an exit code. */
static int offline(mesh_cli_t *cli, const mesh_cli_args_t *a, char *dir, size_t cap,
                   mesh_audit_keys_t *keys)
{
    const char *data = mesh_cli_arg(a, "data-dir");
    snprintf(dir, cap, "%s/audit", data);
    const char *kf = mesh_cli_arg(a, "key-file");
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st;
    if (kf != NULL) {
        st = mesh_audit_key_load(kf, false, keys, &err);
    } else {
        const char *env = getenv("MESHD_KEK");
        mesh_kek_source_t src = {.file = mesh_cli_arg(a, "kek-file"),
                                 .value = env && *env ? env : NULL,
                                 .passphrase_file = mesh_cli_arg(a, "kek-passphrase-file"),
                                 .command = mesh_cli_arg(a, "kek-command"),
                                 .command_timeout_ns = 30 * MESH_NS_PER_SEC};
        st = mesh_audit_keys_offline(data, &src, keys, &err);
    }
    if (st == MESH_NOT_FOUND || st == MESH_IO || st == MESH_FORBIDDEN || st == MESH_INVALID)
        return mesh_cli_local(cli, "cannot read the audit key: %s", err.msg);
    if (st != MESH_OK)
        return mesh_cli_fail(cli, st, "the audit key: %s", err.msg);
    return 0;
}

/* ---- verify ---- */

static int print_verify(mesh_cli_t *cli, const json_t *v, const char *fmt)
{
    bool ok = json_is_true(json_object_get(v, "ok"));
    const json_t *fault = json_object_get(v, "fault");
    if (strcmp(fmt, "json") == 0) {
        char *s = json_dumps(v, JSON_COMPACT);
        if (s) {
            puts(s);
            free(s);
        }
    } else if (ok) {
        printf("audit log verifies: %lld records (%lld events, %lld checkpoints) in %lld "
               "segment%s, seq %lld..%lld\n",
               (long long)mesh_cli_jint(v, "records"), (long long)mesh_cli_jint(v, "events"),
               (long long)mesh_cli_jint(v, "checkpoints"), (long long)mesh_cli_jint(v, "segments"),
               mesh_cli_jint(v, "segments") == 1 ? "" : "s",
               (long long)mesh_cli_jint(v, "first_seq"), (long long)mesh_cli_jint(v, "last_seq"));
        printf("last checkpoint:    seq %lld (HEAD)\n",
               (long long)mesh_cli_jint(v, "checkpoint_seq"));
        if (mesh_cli_jint(v, "base_seq") > 1)
            printf("kept from:          seq %lld (older records deleted by retention)\n",
                   (long long)mesh_cli_jint(v, "base_seq"));
        const char *anchor = mesh_cli_jstr(v, "anchor");
        if (anchor)
            printf("anchor:             %s\n"
                   "                    (keep it off this node: `--anchor` checks later that "
                   "the log still holds it)\n",
                   anchor);
        const json_t *torn = json_object_get(v, "torn");
        if (torn)
            printf("torn tail:          %lld bytes at offset %lld of %s (a crash while "
                   "appending, after the last checkpoint; meshd cuts it at its next start)\n",
                   (long long)mesh_cli_jint(torn, "bytes"),
                   (long long)mesh_cli_jint(torn, "offset"), mesh_cli_jstr(torn, "file"));
    } else {
        char reason[400];
        snprintf(reason, sizeof reason, "%s", str_or(mesh_cli_jstr(fault, "reason"), ""));
        mesh_cli_clean(reason);
        printf("AUDIT LOG DOES NOT VERIFY\n"
               "first bad record:   %s offset %lld seq %lld\n"
               "fault:              %s\n"
               "why:                %s\n"
               "verified before it: %lld records\n",
               str_or(mesh_cli_jstr(fault, "file"), "-"), (long long)mesh_cli_jint(fault, "offset"),
               (long long)mesh_cli_jint(fault, "seq"), str_or(mesh_cli_jstr(fault, "code"), "-"),
               reason, (long long)mesh_cli_jint(v, "records"));
    }
    if (ok)
        return 0;
    return mesh_cli_fail(
        cli, MESH_CORRUPT, "the audit log does not verify: %s, %s offset %lld seq %lld",
        str_or(mesh_cli_jstr(fault, "code"), "?"), str_or(mesh_cli_jstr(fault, "file"), "-"),
        (long long)mesh_cli_jint(fault, "offset"), (long long)mesh_cli_jint(fault, "seq"));
}

static int run_verify(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *fmt = mesh_cli_format(cli, false);
    const char *as = mesh_cli_arg(a, "anchor");
    mesh_audit_anchor_t anchor;
    mesh_err_t err;
    mesh_err_clear(&err);
    if (as && mesh_audit_anchor_parse(as, &anchor, &err) != MESH_OK)
        return mesh_cli_usage(cli, "--anchor %s: %s", as, err.msg);
    json_t *v = NULL;
    if (mesh_cli_arg(a, "data-dir")) {
        char dir[4096];
        mesh_audit_keys_t keys;
        int rc = offline(cli, a, dir, sizeof dir, &keys);
        if (rc != 0)
            return rc;
        mesh_audit_verify_t res;
        mesh_status_t st = mesh_audit_verify_dir(dir, &keys, as ? &anchor : NULL, &res, &err);
        mesh_audit_keys_wipe(&keys);
        if (st != MESH_OK && st != MESH_CORRUPT)
            return mesh_cli_fail(cli, st, "%s", err.msg);
        mesh_buf_t b;
        mesh_buf_init(&b, MESH_BUF_UNLIMITED);
        mesh_audit_verify_json(&res, &b);
        v = b.data ? json_loadb(b.data, b.len, 0, NULL) : NULL;
        mesh_buf_free(&b);
        if (v == NULL)
            return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    } else {
        mesh_buf_t path;
        mesh_buf_init(&path, 1024);
        mesh_buf_adds(&path, "/v1/audit/verify");
        if (as) {
            mesh_buf_adds(&path, "?anchor=");
            mesh_client_escape(&path, as);
        }
        mesh_client_req_t req = {.method = "POST", .path = path.data};
        int rc = mesh_cli_call(cli, &req, &v);
        mesh_buf_free(&path);
        if (rc != 0)
            return rc;
        if (!json_is_object(v)) {
            json_decref(v);
            return mesh_cli_fail(cli, MESH_INTERNAL, "the server's answer is not a verify result");
        }
    }
    int rc = print_verify(cli, v, fmt);
    json_decref(v);
    return rc;
}

/* ---- search ---- */

/* The filters: option name and query parameter. */
static const char *const filters[][2] = {
    {"principal", "principal"},   {"product", "product"}, {"action", "action"},
    {"since", "since"},           {"until", "until"},     {"after-seq", "after_seq"},
    {"before-seq", "before_seq"},
};

/* Searches a data directory; builds the API's answer shape. */
static int search_offline(mesh_cli_t *cli, const mesh_cli_args_t *a, int64_t limit, bool desc,
                          json_t **out)
{
    char dir[4096];
    mesh_audit_keys_t keys;
    int rc = offline(cli, a, dir, sizeof dir, &keys);
    if (rc != 0)
        return rc;
    mesh_audit_filter_t f = {.principal = mesh_cli_arg(a, "principal"),
                             .product = mesh_cli_arg(a, "product"),
                             .action = mesh_cli_arg(a, "action")};
    const char *ts[2] = {mesh_cli_arg(a, "since"), mesh_cli_arg(a, "until")};
    int64_t *tv[2] = {&f.since_ns, &f.until_ns};
    for (int i = 0; i < 2; i++)
        if (ts[i] && mesh_audit_parse_time(ts[i], tv[i]) != MESH_OK) {
            mesh_audit_keys_wipe(&keys);
            return mesh_cli_usage(cli,
                                  "--%s %s: expected an ISO 8601 time or a duration ago "
                                  "(15m, 7d)",
                                  i ? "until" : "since", ts[i]);
        }
    const char *ss[2] = {mesh_cli_arg(a, "after-seq"), mesh_cli_arg(a, "before-seq")};
    uint64_t *sv[2] = {&f.after_seq, &f.before_seq};
    for (int i = 0; i < 2; i++)
        if (ss[i] && mesh_parse_u64(ss[i], strlen(ss[i]), sv[i]) != MESH_OK) {
            mesh_audit_keys_wipe(&keys);
            return mesh_cli_usage(cli, "--%s %s: expected a sequence number",
                                  i ? "before-seq" : "after-seq", ss[i]);
        }
    mesh_audit_scan_t *s;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_audit_scan_open(NULL, dir, &keys, &f, &s, &err);
    mesh_audit_keys_wipe(&keys);
    if (st != MESH_OK)
        return mesh_cli_fail(cli, st, "%s", err.msg);
    json_t *recs = json_array();
    mesh_audit_entry_t e;
    int64_t total = 0;
    while (mesh_audit_scan_next(s, &e) == 1) {
        json_t *j = json_loads(e.json, 0, NULL);
        if (j == NULL)
            continue;
        total++;
        json_array_append_new(recs, j);
        if (!desc && total == limit + 1)
            break;
        if (desc && (int64_t)json_array_size(recs) > limit)
            json_array_remove(recs, 0);
    }
    json_t *o = json_object();
    bool more = total > limit;
    if (!desc && more)
        json_array_remove(recs, json_array_size(recs) - 1);
    if (desc) {
        json_t *rev = json_array();
        for (size_t i = json_array_size(recs); i > 0; i--)
            json_array_append(rev, json_array_get(recs, i - 1));
        json_decref(recs);
        recs = rev;
    }
    json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(recs)));
    json_object_set_new(o, "records", recs);
    json_object_set_new(o, "order", json_string(desc ? "desc" : "asc"));
    json_object_set_new(o, "more", json_boolean(more));
    const char *w = mesh_audit_scan_warning(s);
    if (w)
        json_object_set_new(o, "warning", json_string(w));
    mesh_audit_scan_close(s);
    *out = o;
    return 0;
}

/* "domain.product", "domain", or a query's products. */
static void object_of(const json_t *r, char *out, size_t cap)
{
    const char *d = mesh_cli_jstr(r, "domain"), *p = mesh_cli_jstr(r, "product");
    out[0] = '\0';
    if (d && p)
        snprintf(out, cap, "%s.%s", d, p);
    else if (d)
        snprintf(out, cap, "%s", d);
    else {
        size_t i, n = 0;
        const json_t *v;
        json_array_foreach(json_object_get(json_object_get(r, "details"), "products"), i, v)
        {
            if (json_is_string(v) && n < cap)
                n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "," : "", json_string_value(v));
        }
    }
}

static int run_search(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *fmt = mesh_cli_format(cli, false);
    int64_t limit;
    int rc = mesh_cli_arg_int(cli, a, "limit", 100, 1, 10000, &limit);
    if (rc != 0)
        return rc;
    bool desc = !mesh_cli_flag(a, "oldest-first");
    json_t *j = NULL;
    if (mesh_cli_arg(a, "data-dir")) {
        if ((rc = search_offline(cli, a, limit, desc, &j)) != 0)
            return rc;
    } else {
        mesh_buf_t path;
        mesh_buf_init(&path, 64 * 1024);
        mesh_status_t st = mesh_buf_printf(&path, "/v1/audit?limit=%lld&order=%s", (long long)limit,
                                           desc ? "desc" : "asc");
        for (size_t i = 0; i < MESH_ARRAY_LEN(filters) && st == MESH_OK; i++) {
            const char *v = mesh_cli_arg(a, filters[i][0]);
            if (v == NULL)
                continue;
            st = mesh_buf_printf(&path, "&%s=", filters[i][1]);
            if (st == MESH_OK)
                st = mesh_client_escape(&path, v);
        }
        if (st != MESH_OK) {
            mesh_buf_free(&path);
            return mesh_cli_usage(cli, "the filters are too long");
        }
        mesh_client_req_t req = {.method = "GET", .path = path.data};
        rc = mesh_cli_call(cli, &req, &j);
        mesh_buf_free(&path);
        if (rc != 0)
            return rc;
    }
    const char *w = mesh_cli_jstr(j, "warning");
    if (w && !cli->quiet) {
        char clean[1024];
        snprintf(clean, sizeof clean, "%s", w);
        mesh_cli_clean(clean);
        fprintf(stderr,
                "meshctl: warning: some records fail their checks and were skipped (%s); "
                "run 'meshctl audit verify'\n",
                clean);
    }
    if (strcmp(fmt, "json") == 0) {
        char *s = json_dumps(j, JSON_COMPACT);
        if (s)
            puts(s);
        free(s);
        json_decref(j);
        return 0;
    }
    mesh_table_t *t = mesh_table_create(8);
    if (t == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    static const char *const heads[] = {"SEQ",    "TIME",   "ACTION",  "PRINCIPAL",
                                        "SOURCE", "OBJECT", "OUTCOME", "DETAILS"};
    static const size_t widths[] = {0, 0, 0, 24, 22, 40, 0, 60};
    for (size_t i = 0; i < 8; i++)
        mesh_table_column(t, i, heads[i], i == 0 ? MESH_ALIGN_RIGHT : MESH_ALIGN_LEFT, widths[i]);
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(j, "records"), i, r)
    {
        char when[MESH_CLI_TIME_MAX], obj[256], outcome[64];
        mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(r, "seq"));
        mesh_table_add(t, mesh_cli_short_time(mesh_cli_jstr(r, "time"), when));
        mesh_table_add(t, mesh_cli_jstr(r, "action"));
        mesh_table_add(t, mesh_cli_jstr(r, "principal"));
        mesh_table_add(t, mesh_cli_jstr(r, "source"));
        object_of(r, obj, sizeof obj);
        mesh_table_add(t, obj);
        int64_t status = mesh_cli_jint(r, "status");
        if (status)
            snprintf(outcome, sizeof outcome, "%s %lld", str_or(mesh_cli_jstr(r, "outcome"), ""),
                     (long long)status);
        else
            snprintf(outcome, sizeof outcome, "%s", str_or(mesh_cli_jstr(r, "outcome"), ""));
        mesh_table_add(t, outcome);
        char *d = json_object_get(r, "details")
                      ? json_dumps(json_object_get(r, "details"), JSON_COMPACT)
                      : NULL;
        mesh_table_add(t, d ? d : "");
        free(d);
    }
    if (mesh_table_rows(t) == 0) {
        if (!cli->quiet)
            printf("no audit events match\n");
    } else {
        mesh_cli_emit_table(cli, t, fmt);
        if (json_is_true(json_object_get(j, "more")) && !cli->quiet)
            fprintf(stderr, "(more events match: raise --limit, or page with --%s)\n",
                    desc ? "before-seq" : "after-seq");
    }
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

static const mesh_cli_opt_t verify_opts[] = {
    {"data-dir", 0, "DIR", 0,
     "Verify the audit log of this meshd data directory (DIR/audit) directly, without the API; "
     "meshd may be stopped. Needs the node's key-encryption key (see --kek-file) or, without "
     "encryption at rest, read access to DIR/audit/key."},
    {"key-file", 0, "FILE", 0,
     "With --data-dir of a node without encryption at rest: the audit key file (default "
     "DIR/audit/key)."},
    {"kek-file", 0, "FILE", 0,
     "With --data-dir of an encrypted node: its key-encryption key file (as meshd's kek_file; "
     "also MESHD_KEK; default DIR/kek.key). The audit key is derived from the node's key."},
    {"kek-passphrase-file", 0, "FILE", 0,
     "With --data-dir of an encrypted node: a file whose first line is its KEK passphrase."},
    {"kek-command", 0, "COMMAND", 0,
     "With --data-dir of an encrypted node: a command printing its KEK (as meshd's "
     "kek_command)."},
    {"anchor", 0, "SEQ:MAC", 0,
     "Also check that the log still holds this record, as an earlier verify printed it: "
     "detects a log cut or rolled back since, even by someone holding the key."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t search_opts[] = {
    {"principal", 0, "NAME", 0, "Only events of this principal (a name or a numeric id)."},
    {"product", 0, "D.P", 0,
     "Only events about this product (its domain.product, also among a query's products), or "
     "about any product of a domain when given without a dot."},
    {"action", 0, "ACTION", 0,
     "Only events of this action (auth.ok, auth.fail, authz.allow, authz.deny, query, write, "
     "admin.domain.create, ...); a prefix up to a dot matches all below it (admin, authz)."},
    {"since", 0, "TIME", 0, "Only events at or after TIME: ISO 8601, or a duration ago (15m, 7d)."},
    {"until", 0, "TIME", 0, "Only events before TIME (same forms)."},
    {"after-seq", 0, "SEQ", 0, "Only events after this sequence number (paging oldest first)."},
    {"before-seq", 0, "SEQ", 0, "Only events before this sequence number (paging newest first)."},
    {"limit", 'n', "N", 0, "At most N events (1-10000; default 100)."},
    {"oldest-first", 0, NULL, 0, "Oldest events first (default: newest first)."},
    {"data-dir", 0, "DIR", 0,
     "Search the audit log of this data directory directly, without the API."},
    {"key-file", 0, "FILE", 0,
     "With --data-dir of a node without encryption at rest: the audit key file (default "
     "DIR/audit/key)."},
    {"kek-file", 0, "FILE", 0,
     "With --data-dir of an encrypted node: its key-encryption key file (as meshd's kek_file; "
     "also MESHD_KEK; default DIR/kek.key). The audit key is derived from the node's key."},
    {"kek-passphrase-file", 0, "FILE", 0,
     "With --data-dir of an encrypted node: a file whose first line is its KEK passphrase."},
    {"kek-command", 0, "COMMAND", 0,
     "With --data-dir of an encrypted node: a command printing its KEK (as meshd's "
     "kek_command)."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_audit_cmds[] = {
    {
        .name = "audit verify",
        .usage = "[OPTIONS]",
        .summary = "Verify the tamper-evident audit log.",
        .text = "Verifies the node's audit log (POST /v1/audit/verify, or a data directory with\n"
                "--data-dir): every record's MAC in the hash chain, the sequence, the segment\n"
                "files and the last checkpoint (HEAD). Names the first bad record (file, byte\n"
                "offset, seq) and why: an edited record (MAC), deleted records (MISSING), records\n"
                "out of order (REORDERED), a deleted segment (SEGMENT_MISSING), a log cut before\n"
                "its last checkpoint (TRUNCATED_CHECKPOINT). On success prints an anchor (the\n"
                "last record's seq and MAC): kept elsewhere and passed to --anchor later, it\n"
                "proves the log still holds everything up to it. What verify cannot see is in\n"
                "docs/security.md. Needs the admin or auditor role through the API.",
        .formats = "table|json",
        .format_help = "table (default): a summary; json: the result object.",
        .opts = verify_opts,
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl audit verify\n"
                    "meshctl audit verify --data-dir /var/lib/meshd\n"
                    "meshctl audit verify --anchor 1234:52b9cb2e...e7b893 --format json",
        .exits = "0  the log verifies\n"
                 "1  the audit key cannot be read (--data-dir: no key file, or a wrong KEK)\n"
                 "3  no audit log there (--data-dir)\n"
                 "4  the token may not read the audit log\n"
                 "8  the log does not verify (the first bad record is printed)",
        .run = run_verify,
    },
    {
        .name = "audit search",
        .usage = "[OPTIONS]",
        .summary = "Search the audit log.",
        .text = "Lists audit events (GET /v1/audit, or a data directory with --data-dir),\n"
                "newest first, narrowed by principal, product, action and time: who\n"
                "authenticated (never the token, only its id), what each caller was allowed or\n"
                "refused, every query with its SQL text, products and rows, every write with\n"
                "its accepted, quarantined and refused rows, every admin change. The same\n"
                "events are the table system.audit in SQL. Needs the admin or auditor role\n"
                "through the API.",
        .formats = "table|json",
        .opts = search_opts,
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl audit search --principal analyst --since 1h\n"
                    "meshctl audit search --action authz.deny --limit 20\n"
                    "meshctl audit search --product icu-3.vitals --action query --format json\n"
                    "meshctl query \"SELECT principal, count(*) FROM system.audit WHERE action = "
                    "'query' GROUP BY 1\"",
        .exits = "0  searched (maybe nothing matched)\n"
                 "4  the token may not read the audit log",
        .run = run_search,
    },
    {.name = NULL},
};
