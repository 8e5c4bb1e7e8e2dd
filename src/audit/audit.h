/*
 * audit.h - the tamper-evident audit log: every authentication, authorisation decision,
 * query, write and admin change of a node, in order, hash-chained under a key.
 *
 * Layout: DIR/<first-seq, 20 digits>.alog segment files, DIR/HEAD (the last checkpoint,
 * rewritten atomically) and DIR/key (the node's audit key when the node keeps it itself).
 * A segment is a run of records:
 *
 *     u32 magic "MAU1" | u32 len | u64 seq | u8 type | u8 flags | u16 0    (the header: 20 bytes)
 *     payload (len bytes)                                                  (sealed: nonce|ct|tag)
 *     u8 mac[32] = HMAC-SHA256(mac_key, prev_mac || header || payload)
 *
 * all integers little-endian. prev_mac is the MAC of the record before (32 zero bytes before
 * seq 1), so the records form one chain across segments. The payload is a compact JSON
 * object; with an encryption key it is sealed with AES-256-GCM (random 96-bit nonce, the
 * header as associated data, so the seq is bound to the ciphertext). Record types:
 *   event       one audited event (mesh_audit_rec_t)
 *   checkpoint  {"time","count","head","base"}: count = records before it (seq - 1), head =
 *               the hex MAC of the record before, base = the first seq the log keeps; written
 *               every N records or T seconds, then the segment is fdatasync'ed and HEAD is
 *               replaced by {seq, mac, base} MACed with the key
 *   segment     the first record of every segment: {"time","first_seq","prev"} with prev the
 *               MAC of the last record of the previous segment, so a segment can be checked on
 *               its own and a deleted segment shows as a gap in the chain
 *
 * Appending: mesh_audit_record() is safe from any thread. Under one mutex a record gets its
 * seq, is sealed and MACed and appended to a pending buffer; the thread that finds no write
 * in progress writes the whole buffer with one write(2) (group flush), so under contention
 * many records go out in one system call and a caller never waits for a disk sync. A
 * background thread writes checkpoints (the only fsyncs). Durability: a record is in the
 * kernel when the call returns (it survives the process being killed) and on disk at the
 * next checkpoint; a power loss can lose the records after the last checkpoint.
 *
 * Recovery: open() checks the last segment. An incomplete record at its end (a crash during
 * a write) or one damaged last record is cut off, its bytes saved beside the log and an
 * audit.repair event is appended saying what was cut; anything else damaged, or a log
 * shorter than its last checkpoint, is refused (MESH_CORRUPT): the log is evidence, meshd
 * does not rewrite it.
 *
 * What verify proves and what it cannot: see docs/security.md, "Audit log".
 */
#ifndef MESH_AUDIT_AUDIT_H
#define MESH_AUDIT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

#define MESH_AUDIT_KEY_LEN  32
#define MESH_AUDIT_MAC_LEN  32
#define MESH_AUDIT_MAX_BODY (64 * 1024) /* JSON payload of one record */
#define MESH_AUDIT_MAX_SQL  4096        /* SQL text kept in a query record */

/* The keys of one log: a MAC key (always) and an encryption key (when encrypt). */
typedef struct mesh_audit_keys {
    uint8_t mac[MESH_AUDIT_KEY_LEN];
    uint8_t enc[MESH_AUDIT_KEY_LEN];
    bool encrypt;
} mesh_audit_keys_t;

/*
 * Loads the key file at path ("meshd audit key v1" and 64 hex digits of a random master
 * key), creating it (0600) when create is set and it does not exist. Both keys are derived
 * from the master key with HKDF-Expand (SHA-256); encrypt is set. A file that others may
 * read or write is refused (MESH_FORBIDDEN: chmod 600). MESH_NOT_FOUND without create.
 */
mesh_status_t mesh_audit_key_load(const char *path, bool create, mesh_audit_keys_t *out,
                                  mesh_err_t *err);
/* Derives both keys from a 32-byte master key (HKDF-Expand, SHA-256), as mesh_audit_key_load
 * does from its file; encrypt is set. */
void mesh_audit_keys_derive(const uint8_t master[MESH_AUDIT_KEY_LEN], mesh_audit_keys_t *out);
/* Wipes keys. */
void mesh_audit_keys_wipe(mesh_audit_keys_t *k);

/* X(name, text): the audited actions. Adding one is one line here. */
#define MESH_AUDIT_ACTION_MAP(X)                                                                   \
    X(AUTH_OK, "auth.ok")                                                                          \
    X(AUTH_FAIL, "auth.fail")                                                                      \
    X(AUTHZ_ALLOW, "authz.allow")                                                                  \
    X(AUTHZ_DENY, "authz.deny")                                                                    \
    X(QUERY, "query")                                                                              \
    X(WRITE, "write")                                                                              \
    X(ADMIN_DOMAIN_CREATE, "admin.domain.create")                                                  \
    X(ADMIN_DOMAIN_DELETE, "admin.domain.delete")                                                  \
    X(ADMIN_CONTRACT_APPLY, "admin.contract.apply")                                                \
    X(ADMIN_PRODUCT_DELETE, "admin.product.delete")                                                \
    X(ADMIN_TOKEN_CREATE, "admin.token.create")                                                    \
    X(ADMIN_TOKEN_REVOKE, "admin.token.revoke")                                                    \
    X(ADMIN_PRINCIPAL_CREATE, "admin.principal.create")                                            \
    X(ADMIN_PRINCIPAL_UPDATE, "admin.principal.update")                                            \
    X(ADMIN_PRINCIPAL_DELETE, "admin.principal.delete")                                            \
    X(ADMIN_ROLE_CREATE, "admin.role.create")                                                      \
    X(ADMIN_ROLE_DELETE, "admin.role.delete")                                                      \
    X(ADMIN_GRANT_CREATE, "admin.grant.create")                                                    \
    X(ADMIN_GRANT_DELETE, "admin.grant.delete")                                                    \
    X(ADMIN_MASK_CREATE, "admin.mask.create")                                                      \
    X(ADMIN_MASK_DELETE, "admin.mask.delete")                                                      \
    X(ADMIN_ROW_FILTER_CREATE, "admin.row_filter.create")                                          \
    X(ADMIN_ROW_FILTER_DELETE, "admin.row_filter.delete")                                          \
    X(ADMIN_CLASSIFY_DISCOVER, "admin.classify.discover")                                          \
    X(ADMIN_CLASSIFY_APPROVE, "admin.classify.approve")                                            \
    X(ADMIN_CLASSIFY_REJECT, "admin.classify.reject")                                              \
    X(ADMIN_CLASSIFY_REMOVE, "admin.classify.remove")                                              \
    X(ADMIN_MQTT_MAPPING_CREATE, "admin.mqtt_mapping.create")                                      \
    X(ADMIN_MQTT_MAPPING_DELETE, "admin.mqtt_mapping.delete")                                      \
    X(AUDIT_READ, "audit.read")                                                                    \
    X(AUDIT_VERIFY, "audit.verify")                                                                \
    X(AUDIT_REPAIR, "audit.repair")                                                                \
    X(AUDIT_RETENTION, "audit.retention")                                                          \
    X(AUDIT_LOST, "audit.lost")                                                                    \
    X(NODE_START, "node.start")                                                                    \
    X(NODE_STOP, "node.stop")                                                                      \
    X(ADMIN_KEK_ROTATE, "admin.kek.rotate")                                                        \
    X(ADMIN_DATA_KEY_ROTATE, "admin.data_key.rotate")                                              \
    X(ADMIN_RULE_PUT, "admin.rule.put")                                                            \
    X(ADMIN_RULE_DELETE, "admin.rule.delete")                                                      \
    X(ALERT_FIRED, "alert.fired")                                                                  \
    X(ALERT_ACKNOWLEDGED, "alert.acknowledged")                                                    \
    X(ALERT_RESOLVED, "alert.resolved")                                                            \
    X(ACTION_WEBHOOK, "action.webhook")                                                            \
    X(ACTION_MQTT, "action.mqtt")                                                                  \
    X(ADMIN_QUARANTINE, "admin.quarantine")                                                        \
    X(ADMIN_BACKUP_CREATE, "admin.backup.create")                                                  \
    X(ADMIN_BACKUP_VERIFY, "admin.backup.verify")                                                  \
    X(ADMIN_BACKUP_DELETE, "admin.backup.delete")                                                  \
    X(BACKUP_DONE, "backup.done")                                                                  \
    X(DISPOSE_RETENTION, "dispose.retention")                                                      \
    X(DISPOSE_ERASURE, "dispose.erasure")                                                          \
    X(ADMIN_GOVERNANCE, "admin.governance")                                                        \
    X(CATALOG_ROLLBACK_ACCEPTED, "catalog.rollback_accepted")                                      \
    X(ADMIN_DOMAIN_UPDATE, "admin.domain.update")                                                  \
    X(DERIVE_REFRESH, "derive.refresh")

typedef enum {
#define MESH_X_ENUM(name, text) MESH_AUDIT_##name,
    MESH_AUDIT_ACTION_MAP(MESH_X_ENUM)
#undef MESH_X_ENUM
        MESH_AUDIT_ACTION__COUNT
} mesh_audit_action_t;

const char *mesh_audit_action_name(mesh_audit_action_t a);

/*
 * One event. Every string may be NULL (left out of the record); all are borrowed for the
 * call. Never put a secret here: a token is named by its lookup id, never by its value.
 */
typedef struct mesh_audit_rec {
    mesh_audit_action_t action;
    int64_t time_ns;        /* 0: now */
    int64_t principal_id;   /* 0: none */
    const char *principal;  /* name */
    const char *auth;       /* how the caller authenticated: "bearer", "basic", ... */
    const char *token_id;   /* lookup id of the token used */
    const char *source;     /* peer address "ip:port" */
    const char *request_id; /* X-Request-Id of the HTTP request */
    const char *domain;     /* the object: a domain, */
    const char *product;    /* a product of it, */
    const char *columns;    /* columns, comma-separated */
    int status;             /* HTTP-style status of the outcome (0: none) */
    const char *outcome;    /* "ok", "denied", "failed", ... (NULL: from status) */
    const char *details;    /* a compact JSON object, or NULL */
    int64_t policy_version; /* the caller's policy version (0: none) */
    /* the catalog's version after the change (0: none; an admin.* event without one gets it
     * from the source set with mesh_audit_set_catalog_source): the witness of catalog.db */
    int64_t catalog_version;
} mesh_audit_rec_t;

typedef struct mesh_audit_opts {
    uint64_t checkpoint_records;    /* a checkpoint after this many records (0: 1000) */
    int64_t checkpoint_interval_ns; /* ... or this long after the first uncheckpointed (0: 5 s) */
    uint64_t segment_size;          /* bytes before a new segment starts (0: 16 MiB) */
    int64_t retention_ns;           /* delete segments older than this (0: keep all) */
} mesh_audit_opts_t;

typedef struct mesh_audit mesh_audit_t;

/* Opens (creating) the log in dir with the caller's keys (copied). See recovery above. */
mesh_status_t mesh_audit_open(const char *dir, const mesh_audit_keys_t *keys,
                              const mesh_audit_opts_t *opts, mesh_audit_t **out, mesh_err_t *err);
/* Writes a last checkpoint and closes. NULL is fine. */
void mesh_audit_close(mesh_audit_t *a);
/* Closes as a killed process would: pending records written, no checkpoint, no sync (tests). */
void mesh_audit_abandon(mesh_audit_t *a);

/*
 * Appends one event; thread-safe; never fails the caller (a == NULL does nothing). When the
 * log cannot be written (disk full) records wait in memory up to a bound, then are counted
 * as lost, and an audit.lost event with the count is appended once writing works again.
 */
void mesh_audit_record(mesh_audit_t *a, const mesh_audit_rec_t *rec);
/*
 * The catalog witness. Every admin.* event carries the catalog's version once the change is
 * committed (read through fn when the caller gave none; fn runs outside the log's locks and
 * must not append to the log); every segment and checkpoint record carries the newest
 * version recorded so far, so the newest one is found in the last segment alone, which open
 * reads anyway. A catalog older than it lost committed changes (docs/security.md).
 */
typedef int64_t (*mesh_audit_catalog_fn)(void *arg);
void mesh_audit_set_catalog_source(mesh_audit_t *a, mesh_audit_catalog_fn fn, void *arg);
/* The newest catalog version the log records (0: none), as found at open and since. */
int64_t mesh_audit_catalog_version(mesh_audit_t *a);
/* Writes a checkpoint now (and waits for its fsync). */
mesh_status_t mesh_audit_checkpoint(mesh_audit_t *a, mesh_err_t *err);

typedef struct mesh_audit_stats {
    uint64_t last_seq;       /* of the last record appended */
    uint64_t checkpoint_seq; /* of the last checkpoint on disk */
    uint64_t lost;           /* events that could not be written */
    uint64_t bytes;          /* on disk */
} mesh_audit_stats_t;
void mesh_audit_stats(mesh_audit_t *a, mesh_audit_stats_t *out);

/* ---- verification ---- */

/* X(name, text): why a log fails verification. */
#define MESH_AUDIT_FAULT_MAP(X)                                                                    \
    X(NONE, "ok")                                                                                  \
    X(MAC, "MAC mismatch: the record was edited, or the key is wrong")                             \
    X(DECRYPT, "the sealed payload does not decrypt: edited, or the encryption key is wrong")      \
    X(MALFORMED, "malformed record")                                                               \
    X(MISSING, "records are missing (deleted)")                                                    \
    X(REORDERED, "records are out of order")                                                       \
    X(SEGMENT_MISSING, "a segment is missing (file deleted)")                                      \
    X(TRUNCATED, "the log is truncated")                                                           \
    X(TRUNCATED_CHECKPOINT, "the log is truncated before its last checkpoint")                     \
    X(HEAD, "the checkpoint file HEAD is missing, damaged or does not match the log")              \
    X(ANCHOR, "the log does not match the given anchor")

typedef enum {
#define MESH_X_ENUM(name, text) MESH_AUDIT_FAULT_##name,
    MESH_AUDIT_FAULT_MAP(MESH_X_ENUM)
#undef MESH_X_ENUM
        MESH_AUDIT_FAULT__COUNT
} mesh_audit_fault_t;

/* The word for a fault ("MAC", "TRUNCATED_CHECKPOINT") and its text. */
const char *mesh_audit_fault_name(mesh_audit_fault_t f);
const char *mesh_audit_fault_text(mesh_audit_fault_t f);

/* An outside record of the chain ("seq:hex-mac", e.g. from an earlier verify): the log must
 * hold that very record. Holds even against someone who has the key. */
typedef struct mesh_audit_anchor {
    uint64_t seq;
    uint8_t mac[MESH_AUDIT_MAC_LEN];
} mesh_audit_anchor_t;
/* Parses "SEQ:HEX"; MESH_INVALID otherwise. */
mesh_status_t mesh_audit_anchor_parse(const char *s, mesh_audit_anchor_t *out, mesh_err_t *err);

typedef struct mesh_audit_verify {
    bool ok;
    uint64_t records;                          /* records checked (every type) */
    uint64_t events;                           /* of which events */
    uint64_t checkpoints;                      /* of which checkpoints */
    uint64_t segments;                         /* files */
    uint64_t first_seq;                        /* of the first record present (0: empty) */
    uint64_t last_seq;                         /* of the last valid record */
    uint64_t checkpoint_seq;                   /* of the checkpoint HEAD names (0: none) */
    uint64_t base_seq;                         /* first seq the log keeps (after retention) */
    char head_mac[2 * MESH_AUDIT_MAC_LEN + 1]; /* MAC of the last valid record (an anchor) */
    int64_t catalog_version;                   /* the newest one recorded (0: none) */
    /* a torn tail: an incomplete record after the last checkpoint (a crash while appending;
     * the next open cuts it). Does not make the result fail. */
    uint64_t torn_bytes;
    char torn_file[32];
    uint64_t torn_offset;
    /* the first bad record, when !ok */
    mesh_audit_fault_t fault;
    char file[32];   /* segment file name (or "HEAD") */
    uint64_t offset; /* byte offset in the file */
    uint64_t seq;    /* the record's seq (or the one expected there) */
    char reason[320];
} mesh_audit_verify_t;

/*
 * Verifies every segment of the log in dir (meshd may be stopped) with keys. Returns MESH_OK
 * when the log verifies, MESH_CORRUPT when it does not (out names the first bad record and
 * why), or an error when it cannot be read (MESH_NOT_FOUND: no log there).
 */
mesh_status_t mesh_audit_verify_dir(const char *dir, const mesh_audit_keys_t *keys,
                                    const mesh_audit_anchor_t *anchor, mesh_audit_verify_t *out,
                                    mesh_err_t *err);
/* The same for the open log, over what was appended before the call. */
mesh_status_t mesh_audit_verify_live(mesh_audit_t *a, const mesh_audit_anchor_t *anchor,
                                     mesh_audit_verify_t *out, mesh_err_t *err);
/* The result as a JSON object (the shape of POST /v1/audit/verify and `meshctl audit verify
 * --format json`): {"ok","records","events","checkpoints","segments","first_seq","last_seq",
 * "checkpoint_seq","base_seq","anchor":"SEQ:MAC","torn":{...},"fault":{...}}. */
mesh_status_t mesh_audit_verify_json(const mesh_audit_verify_t *v, mesh_buf_t *out);
/* Checks one segment's bytes on their own (its chain from its segment record, the records'
 * MACs, payloads and shapes): MESH_OK, or MESH_CORRUPT with out filled. The decoder behind
 * verify, open and search; fuzzed (fuzz/fuzz_audit.c). */
mesh_status_t mesh_audit_check_segment(const uint8_t *p, size_t n, const mesh_audit_keys_t *keys,
                                       mesh_audit_verify_t *out);

/* ---- search ---- */

typedef struct mesh_audit_filter {
    const char *principal; /* name or numeric id */
    const char *product;   /* "domain.product" (also matches a query's products) or "domain" */
    const char *action;    /* exact, or a prefix ending at a dot: "admin" matches admin.* */
    int64_t since_ns;      /* time >= since (0: no bound) */
    int64_t until_ns;      /* time < until (0: no bound) */
    uint64_t after_seq;    /* seq > after_seq */
    uint64_t before_seq;   /* seq < before_seq (0: no bound) */
} mesh_audit_filter_t;

/* One event as read back; strings are NULL when absent. Valid until the next step. */
typedef struct mesh_audit_entry {
    uint64_t seq;
    int64_t time_ns;
    const char *action;
    int64_t principal_id;
    const char *principal, *auth, *token_id, *source, *request_id;
    const char *domain, *product, *columns;
    int64_t status;
    const char *outcome;
    int64_t policy_version;
    const char *details; /* compact JSON text, or NULL */
    const char *json;    /* the whole event as a JSON object, with "seq" and ISO "time" */
} mesh_audit_entry_t;

typedef struct mesh_audit_scan mesh_audit_scan_t;

/* Reads the events matching f (NULL: all), oldest first: from the open log a (over what was
 * appended before the call), or, when a is NULL, from the log in dir with keys. */
mesh_status_t mesh_audit_scan_open(mesh_audit_t *a, const char *dir, const mesh_audit_keys_t *keys,
                                   const mesh_audit_filter_t *f, mesh_audit_scan_t **out,
                                   mesh_err_t *err);
/* 1: *e is the next event; 0: no more. Records that fail their checks are skipped and
 * noted in the warning. */
int mesh_audit_scan_next(mesh_audit_scan_t *s, mesh_audit_entry_t *e);
/* NULL, or why some records were skipped (the log does not verify: run verify). */
const char *mesh_audit_scan_warning(const mesh_audit_scan_t *s);
void mesh_audit_scan_close(mesh_audit_scan_t *s);

/* Parses a time bound for search: ISO 8601 text, or a duration meaning that long ago
 * ("15m", "7d"). */
mesh_status_t mesh_audit_parse_time(const char *s, int64_t *out_ns);

#endif
