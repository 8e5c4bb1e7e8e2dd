/*
 * domain.h - a domain on this node: its log, its store, its contracts and its writer.
 *
 * Every change to a domain (a batch of rows, a contract, a product dropped) is a record:
 * the submitting thread validates and encodes it, then hands it to the domain's writer.
 * The writer is whichever submitting thread finds no writer active (leader/follower group
 * commit): it appends every queued record to the log, makes them durable with one
 * fdatasync, applies them in log order in one store transaction (each record in its own
 * savepoint), commits, and wakes the submitters with their results. Concurrent writers thus
 * share one sync and one commit. The response to a client is sent only after this.
 *
 * At open the records the store has not applied yet are replayed from the log.
 *
 * Contracts are reference-counted (mesh_cref_t) so a catalog snapshot can keep using a
 * product definition while a newer contract replaces it.
 */
#ifndef MESH_STORE_DOMAIN_H
#define MESH_STORE_DOMAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "catalog/contract.h"
#include "core/status.h"
#include "core/buf.h"
#include "crypt/keys.h"
#include "ingest/batch.h"
#include "store/space.h"
#include "store/store.h"

typedef struct mesh_cref {
    mesh_contract_t *c;
    int refs; /* atomic */
} mesh_cref_t;

mesh_cref_t *mesh_cref_get(mesh_cref_t *r);
void mesh_cref_put(mesh_cref_t *r);

typedef struct mesh_domain mesh_domain_t;
struct mesh_rule_event;
struct mesh_rule_info;

/* Called (from the writer thread, after a commit) with the alert transitions the committed
 * records produced: a list the callee owns (free with mesh_rule_event_free). It must not
 * block: the actions run elsewhere. */
typedef void (*mesh_domain_events_fn)(void *arg, mesh_domain_t *d, struct mesh_rule_event *ev);

/* A refresh of a continuous aggregate (reported from the writer thread after the commit):
 * batches of the group were merged into it, or its stale buckets were recomputed (a late row,
 * an erasure, a new definition), or both. */
typedef struct mesh_domain_refresh {
    const mesh_product_t *product; /* the aggregate */
    const mesh_product_t *source;
    int64_t start_ns, end_ns; /* wall clock: the first merge (or the recompute), the end */
    bool merged;              /* batches of the group were merged into it */
    int64_t buckets;          /* buckets recomputed from the source (0: none) */
    mesh_status_t status;     /* the recompute's (merges committed: MESH_OK) */
    const char *error;        /* its message, when status is not MESH_OK */
} mesh_domain_refresh_t;

/* Called from the writer thread with each refresh of a derived product; the products are
 * borrowed for the call only. It must not block (it runs before writers are answered). */
typedef void (*mesh_domain_refresh_fn)(void *arg, mesh_domain_t *d, const mesh_domain_refresh_t *r);

typedef struct mesh_domain_opts {
    bool sync_full; /* also synchronous=FULL in SQLite (the log is always synced) */
    int64_t cache_kib;
    int64_t idem_ttl_ns;  /* idempotency keys older than this are forgotten at checkpoints */
    int64_t flush_age_ns; /* time-series rows buffered longer go to chunks at checkpoints */
    /* Encryption at rest: the node's key-encryption key (borrowed; it must outlive the
     * domain or be replaced through mesh_domain_rewrap first). NULL: in clear. */
    const mesh_kek_t *kek;
    int rekey_pages; /* pages copied per writer job in a re-encryption (0: 512) */
    /* The free-space guard of the data directory (borrowed; NULL: none): batches and
     * contracts are refused with MESH_NOSPACE while it says the disk is nearly full, and a
     * write that hits a full disk anyway is reported to it. */
    mesh_space_t *space;
    mesh_domain_events_fn events; /* alert transitions (NULL: dropped) */
    void *events_arg;
    mesh_domain_refresh_fn refresh; /* refreshes of derived products (NULL: not reported) */
    void *refresh_arg;
} mesh_domain_opts_t;

/*
 * Replication (docs/mesh.md, decision 0021). Where a domain's writes go is chosen in one
 * place, the replicator: local (publish NULL, the default: the domain's own log is the order)
 * or a stream (mesh/repl.h: the domain's JetStream stream is the order). With a stream,
 * mesh_domain_write and mesh_domain_put_contract publish the log record to it and wait until
 * this node has applied it from the stream (mesh_domain_apply_stream, called by the stream's
 * consumer in stream order): the sync mode.
 */
typedef struct mesh_replicator {
    /* Publishes one log record (kind byte first) to the domain's stream; idem is the
     * request's idempotency key or NULL (the message id derives from it). Fills *sseq with
     * its stream sequence (the original's when *duplicate). MESH_UNAVAILABLE when the stream
     * cannot be reached: nothing is acknowledged then. */
    mesh_status_t (*publish)(void *arg, const char *domain, const uint8_t *p, size_t n,
                             const char *idem, uint64_t *sseq, bool *duplicate, mesh_err_t *err);
    void *arg;
    int64_t apply_timeout_ns; /* how long a writer waits for the apply here after the ack */
    const char *stream;       /* the stream's name, for positions (borrowed) */
    /* async mode: batches are acknowledged after the local durable apply (the local log is
     * their order here) and published later from the log by an outbox reader
     * (mesh_domain_outbox_read); kick (may be NULL) is called after each such write to wake
     * it. Contracts still go through publish (sync). */
    bool async;
    void (*kick)(void *arg);
    /* async (may be NULL): MESH_TOO_LARGE when a batch's log record could never be published
     * (larger than the servers take): the write is refused instead of acknowledged */
    mesh_status_t (*fits)(void *arg, const uint8_t *p, size_t n, mesh_err_t *err);
} mesh_replicator_t;

/* Sets (r NULL or r->publish NULL: clears) the domain's replicator; r is copied. Call it
 * before writes come, or between them. */
void mesh_domain_set_replicator(mesh_domain_t *d, const mesh_replicator_t *r);
/* Waits until every mesh_domain_write under way has returned (a snapshot bootstrap, after it
 * set a replicator that refuses writes: no write acknowledged before it is still on its way
 * into the log). */
void mesh_domain_drain_writes(mesh_domain_t *d);

/* Applies the record p (as the stream carried it) taken from the domain's stream at sequence
 * sseq: logged and applied like a local record, with sseq stored in the same transaction.
 * Skipped (MESH_OK, *applied false) when sseq is not above the stream sequence the store
 * holds. A record refused by the store (a unique conflict) still counts as applied (it is
 * refused the same way on every node): MESH_OK. Errors are the store's (MESH_IO, NOSPACE,
 * UNAVAILABLE for a read-only domain): the record was not applied. */
mesh_status_t mesh_domain_apply_stream(mesh_domain_t *d, uint64_t sseq, const uint8_t *p, size_t n,
                                       bool *applied, mesh_err_t *err);
/* Applies count stream records in order as one writer group (one log sync, one transaction):
 * like mesh_domain_apply_stream for each; *done: how many were applied or skipped before the
 * first failure (all of them on MESH_OK). This copy's own async records at the end of the
 * records (after the last one of another origin) take no writer group: they are skipped, and
 * their sequences and fingerprints stored with the next transaction the writer commits
 * (decision 0035); until then the stream position (mesh_domain_stream_seq) is past the stored
 * one, and after a crash they come again and are skipped again. */
mesh_status_t mesh_domain_apply_stream_many(mesh_domain_t *d, const uint64_t *sseq,
                                            const uint8_t *const *p, const size_t *n,
                                            const char *const *ids, size_t count, size_t *done,
                                            mesh_err_t *err);
/* ids (may be NULL, or hold NULLs) are the records' message ids (Nats-Msg-Id): a record whose
 * id was applied here before, at another sequence, is not applied again (its sequence is
 * stored; its writer gets a duplicate's answer). Every record applied is remembered with its
 * id and a fingerprint of its bytes (mesh_fp64), the last MESH_STORE_REPL_KEEP of them. */

/* What this node applied at stream sequence sseq: 1 and *fp (mesh_fp64 of the record as the
 * stream carried it), 0 when not known (never applied here, or forgotten), -1 on an error.
 * Runs as a writer job. */
int mesh_domain_stream_fp(mesh_domain_t *d, uint64_t sseq, uint64_t *fp);
/* Moves the stored stream position back to to (nothing when it is not behind it), so that the
 * records after it are applied again from the stream: after a divergence, this replica's
 * records past to are not the stream's. Rows applied from them stay; records applied here
 * before are skipped by their message id. */
mesh_status_t mesh_domain_stream_rewind(mesh_domain_t *d, uint64_t to, mesh_err_t *err);
/* The last stream sequence applied or skipped (0: none); the store's may be older by own async
 * records skipped and not stored yet. */
uint64_t mesh_domain_stream_seq(mesh_domain_t *d);
/* Waits until the domain has applied stream sequence sseq, at most timeout_ns: MESH_OK or
 * MESH_TIMEOUT. */
mesh_status_t mesh_domain_wait_stream(mesh_domain_t *d, uint64_t sseq, int64_t timeout_ns);
/* Whether the domain has a stream replicator (writes are published first). */
bool mesh_domain_replicated(mesh_domain_t *d);

/*
 * The async outbox (docs/mesh.md "async"). Batches written locally are published from the
 * domain's log in log order, each wrapped as an origin record ('O': the domain copy's random
 * origin id, the batch's log sequence, and the log sequence of the batch published before it
 * from this copy). Every replica applies a stream's origin record only when it continues that
 * origin's chain (prev equals the last origin sequence it applied from that origin, stored in
 * the same transaction as the apply): duplicates (a republish after a crash or a failed run)
 * and records that overtook a failed one are skipped, and the origin skips its own records
 * (applied when written). The log is not trimmed past the outbox position.
 */
typedef struct mesh_outbox_rec {
    uint64_t seq;   /* the log sequence (origin sequence) of its last batch */
    mesh_buf_t msg; /* the message to publish (owned): an origin record, or a group of them */
    size_t batches; /* the batches it carries (a group when more than 1: store/group.h) */
} mesh_outbox_rec_t;
/* Reads (on the writer, between groups) at most max_n messages / about max_bytes of batches of
 * the log after the outbox position, as origin records: consecutive ones are put in groups of
 * about group_bytes at most (0: every batch alone, as nodes before decision 0040 publish them).
 * *out (free with mesh_domain_outbox_free), *n (0: nothing to publish). *origin: the origin id
 * (for message ids). */
mesh_status_t mesh_domain_outbox_read(mesh_domain_t *d, size_t max_n, size_t max_bytes,
                                      size_t group_bytes, mesh_outbox_rec_t **out, size_t *n,
                                      uint64_t *origin, mesh_err_t *err);
void mesh_domain_outbox_free(mesh_outbox_rec_t *v, size_t n);
/* Every batch up to log sequence seq is in the stream: moves (and stores) the outbox
 * position. */
mesh_status_t mesh_domain_outbox_published(mesh_domain_t *d, uint64_t seq, mesh_err_t *err);
/* The outbox position, and the log sequence of the last batch written here (above the
 * position: not all published; UINT64_MAX: not known yet, until the outbox is first read). */
void mesh_domain_outbox_pos(mesh_domain_t *d, uint64_t *published, uint64_t *last_batch);

/* Called (from the writer thread) after the domain's contracts changed. */
typedef void (*mesh_domain_changed_fn)(void *arg, mesh_domain_t *d);

mesh_status_t mesh_domain_open(const char *dir, const char *name, const mesh_domain_opts_t *opts,
                               mesh_domain_changed_fn changed, void *arg, mesh_domain_t **out,
                               mesh_err_t *err);
void mesh_domain_close(mesh_domain_t *d);
/* Closes without the closing checkpoint: buffered time-series rows stay in the log and the
 * log keeps every record since the last checkpoint, as a killed process leaves it. For tests
 * of replay. */
void mesh_domain_close_untrimmed(mesh_domain_t *d);
const char *mesh_domain_name(const mesh_domain_t *d);
mesh_store_t *mesh_domain_store(mesh_domain_t *d);
const char *mesh_domain_dir(const mesh_domain_t *d);

/* The current contracts: an array of references (each to be released with mesh_cref_put,
 * the array with free()). */
mesh_status_t mesh_domain_contracts(mesh_domain_t *d, mesh_cref_t ***out, size_t *n);

/* Writes a validated batch (not failed). The result is filled once the batch is durable and
 * applied. */
mesh_status_t mesh_domain_write(mesh_domain_t *d, const mesh_batch_t *b, const char *idem_key,
                                mesh_apply_result_t *res, mesh_err_t *err);

typedef enum {
    MESH_CONTRACT_CREATED = 0,
    MESH_CONTRACT_UPDATED,
    MESH_CONTRACT_UNCHANGED,
} mesh_contract_outcome_t;

typedef struct mesh_contract_result {
    mesh_contract_outcome_t outcome;
    uint64_t seq;
    mesh_buf_t changes; /* one line per change (owned: free with mesh_buf_free) */
} mesh_contract_result_t;

/* Applies a contract (YAML). Refusals: MESH_INVALID (not a valid contract or not this
 * domain's), MESH_CONFLICT (a product owned by another contract, a version not above the
 * applied one), MESH_BREAKING (a breaking change without a new major version, or existing
 * rows that do not fit). res->changes is initialised in every case. */
/* What applying the contract would do, without applying it (a dry run): the outcome and
 * changes, or the refusal put_contract would give, except that existing rows are checked
 * against a new major version only when it is applied. */
mesh_status_t mesh_domain_check_contract(mesh_domain_t *d, const char *yaml, size_t n,
                                         mesh_contract_result_t *res, mesh_err_t *err);
mesh_status_t mesh_domain_put_contract(mesh_domain_t *d, const char *yaml, size_t n,
                                       mesh_contract_result_t *res, mesh_err_t *err);

/* Drops a product with its rows. Refused when its contract defines other products too. */
/* Drops quarantined rows of product (the ids, or all) through the log; *dropped: how many
 * were there. */
mesh_status_t mesh_domain_quarantine_drop(mesh_domain_t *d, const char *product, const int64_t *ids,
                                          size_t n, bool all, int64_t *dropped, mesh_err_t *err);
mesh_status_t mesh_domain_drop_product(mesh_domain_t *d, const char *product, mesh_err_t *err);

/* ---- rules and alerts (rules/engine.h, docs/rules.md) ---- */

/* Creates or replaces a rule (YAML or JSON text). The first rule of a domain also creates its
 * alerts products. Refusals: MESH_PARSE/INVALID (with the path), MESH_NOT_FOUND (product),
 * MESH_CONFLICT (a product named alerts that is not meshd's). */
mesh_status_t mesh_domain_put_rule(mesh_domain_t *d, const char *text, size_t n, mesh_err_t *err);
mesh_status_t mesh_domain_delete_rule(mesh_domain_t *d, const char *name, mesh_err_t *err);
/* Evaluates absence rules at now: a tick record, written only when an absence alert can fire
 * then (a no-op otherwise). */
mesh_status_t mesh_domain_tick(mesh_domain_t *d, int64_t now, mesh_err_t *err);
/* Acknowledges (op 'a') or resolves ('r') an alert by hand; by names who. */
mesh_status_t mesh_domain_alert_op(mesh_domain_t *d, char op, const char *alert_id, const char *by,
                                   const char *note, mesh_err_t *err);
/* The actions of an alert transition ended (delivered, or given up): its outbox row goes. */
mesh_status_t mesh_domain_outbox_done(mesh_domain_t *d, int64_t outbox_id, mesh_err_t *err);
/* The domain's rules (see mesh_rules_list). */
mesh_status_t mesh_domain_rules(mesh_domain_t *d, struct mesh_rule_info **out, size_t *n);

/*
 * Disposes of rows of product through the log (a 'E' record, applied like any write, so a
 * crash loses nothing and replicas delete the same rows): why 'r' (retention: rows whose
 * time is before cutoff, at most about limit of them, oldest first) or 'e' (erasure: the
 * nkeys keys, see mesh_store_dispose). *deleted: rows removed; *seq (may be NULL): the
 * record's log position. Legal holds are the caller's to check.
 */
mesh_status_t mesh_domain_dispose(mesh_domain_t *d, const char *product, char why, int64_t cutoff,
                                  int64_t limit, const uint8_t *keys, size_t keys_len, size_t nkeys,
                                  int64_t *deleted, uint64_t *seq, mesh_err_t *err);
/* Replaces the rows of product (a derived product defined by SQL) with the rows of batch b
 * (its only product), as one 'F' record through the log: applied in one transaction, so a
 * crash leaves the old rows or the new ones, never a mix. time_col NULL: every row is
 * replaced (a full refresh); else the rows whose column time_col is at or after since (an
 * incremental refresh). *rows: rows written; *seq (may be NULL): the record's log position. */
mesh_status_t mesh_domain_refresh(mesh_domain_t *d, const char *product, const char *time_col,
                                  int64_t since, const mesh_batch_t *b, int64_t *rows,
                                  uint64_t *seq, mesh_err_t *err);
/* Watches the writes to the time series product for watcher (a name): from now on, each
 * batch applied to it lowers the watcher's mark to the smallest time it wrote. false when the
 * domain watches too many (the caller then recomputes in full). */
bool mesh_domain_watch(mesh_domain_t *d, const char *product, const char *watcher);
/* Whether rows were written to product since watcher last asked, and *min_t the smallest
 * time among them; resets the mark. */
bool mesh_domain_written(mesh_domain_t *d, const char *product, const char *watcher,
                         int64_t *min_t);
/* Gives free pages of the database back to the file system (a writer job: incremental vacuum
 * of at most max_pages, 0: all); the file shrinks at the next checkpoint. */
mesh_status_t mesh_domain_vacuum(mesh_domain_t *d, int64_t max_pages, int64_t *freed,
                                 mesh_err_t *err);

/* Checkpoints the store and trims the log up to what the store holds durably. */
mesh_status_t mesh_domain_checkpoint(mesh_domain_t *d, mesh_err_t *err);

/* Log and store positions and sizes, for /metrics and status. */
typedef struct mesh_domain_info {
    uint64_t log_seq;
    uint64_t applied_seq;
    uint64_t log_bytes;
    int64_t db_bytes, wal_bytes;
    bool broken;
} mesh_domain_info_t;
void mesh_domain_info(mesh_domain_t *d, mesh_domain_info_t *out);

/* ---- encryption at rest (domains opened with a KEK) ---- */

/* Re-encrypts the domain under a new data key, online: writes go on between the copy's steps
 * (each a writer job) and wait only for its last one. Afterwards no file of the domain is
 * sealed with the old key (its database file and log records are gone). MESH_INVALID for a
 * domain in clear, MESH_CONFLICT while another key operation runs on it. */
typedef struct mesh_rekey_result {
    uint32_t gen;  /* the new key's generation */
    int64_t pages; /* database pages copied */
    int64_t steps; /* writer jobs the copy took */
    int64_t ms;
} mesh_rekey_result_t;
mesh_status_t mesh_domain_rekey(mesh_domain_t *d, mesh_rekey_result_t *res, mesh_err_t *err);

/* Rewrites the domain's key file wrapped under keks (two during a KEK rotation); the domain
 * uses now (one of them) from then on. A no-op for a domain in clear. */
mesh_status_t mesh_domain_rewrap(mesh_domain_t *d, const mesh_kek_t *const *keks, size_t n,
                                 const mesh_kek_t *now, mesh_err_t *err);

/*
 * Backups: a consistent copy of the domain's database into dest (a new file, sealed with the
 * key attached for it), at a write-group boundary. In one writer job, time-series rows
 * buffered in memory are written out (so the database holds every applied record) and a read
 * transaction is opened on the database; then the copy runs from that snapshot while writes
 * go on. *applied is the log position the copy holds (every record up to it, none after);
 * *stream_seq the domain stream's sequence it holds (0 for a domain not replicated).
 * Key operations (re-encryption, retiring old keys) wait for end. progress (may be NULL) is
 * called after each step with pages copied and the total. *crefs (*ncrefs of them) are the
 * contracts the copy holds (each released with mesh_cref_put, the array with free()).
 */
typedef void (*mesh_domain_copy_progress_fn)(void *arg, int64_t done, int64_t total);
mesh_status_t mesh_domain_backup_copy(mesh_domain_t *d, const char *dest, uint64_t *applied,
                                      uint64_t *stream_seq, mesh_cref_t ***crefs, size_t *ncrefs,
                                      mesh_domain_copy_progress_fn progress, void *arg,
                                      mesh_err_t *err);

typedef struct mesh_domain_keyinfo {
    bool encrypted;
    uint32_t gen; /* generation of the current data key */
} mesh_domain_keyinfo_t;
void mesh_domain_keyinfo(mesh_domain_t *d, mesh_domain_keyinfo_t *out);

#endif
