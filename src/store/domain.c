/*
 * domain.c - the domain writer: log, group commit, apply, replay, contracts.
 *
 * Log record payloads start with a kind byte:
 *   'B' batch:     the mesh_batch_encode() bytes (they carry the idempotency key)
 *   'C' contract:  the contract's YAML text
 *   'D' drop:      a product name
 *   'R' rule:      8 bytes of time (ns), then a rule's text (YAML or JSON): created or
 *                  replaced
 *   'X' unrule:    8 bytes of time, then a rule's name: deleted
 *   'T' tick:      8 bytes, a time (ns) at which absence rules are evaluated
 *   'A' alert op:  'a' (acknowledge) or 'r' (resolve), 8 bytes of time, then the alert id,
 *                  who, and a note, each NUL-terminated
 *   'E' disposal:  'r' (retention) or 'e' (erasure), u8 name length, the product's name,
 *                  i64 cutoff (ns; rows before it go), i64 limit (rows), u32 key count, then
 *                  the keys (store.h mesh_store_dispose); little-endian. The keys of an
 *                  erasure were collected by a query before the record was written, so
 *                  replay and replicas delete the same rows whatever the clock says.
 *   'F' refresh:   the new content of a derived product defined by SQL (node/derived.c):
 *                  u8 mode ('f': full, every row replaced; 'i': incremental, the rows whose
 *                  time column is at or after the mark), u8 name length, the product's name,
 *                  i64 mark (ns; 0 for 'f'), for 'i' u8 length and name of the time column,
 *                  then a batch record ('B' bytes) of its rows. Applied in one savepoint: the
 *                  old rows go and the new ones come together, so a crash leaves either.
 *   'S' stream:    8 bytes (little-endian) of a sequence of the domain's JetStream stream,
 *                  then a record of the kinds above as the stream carried it (replication,
 *                  docs/mesh.md). Applied only when that sequence is above the one the store
 *                  holds (_meta repl_seq), which it then stores in the same transaction:
 *                  exactly-once apply of the stream, whatever the redeliveries and restarts.
 *   'O' origin:    only inside 'S' (async mode): u64 origin id, u64 origin sequence, u64 the
 *                  origin sequence before it, then a batch record, or nothing when this
 *                  node decided (before logging it) to skip it: its own record coming back,
 *                  a duplicate, or one that overtook a missing one of the same origin. The
 *                  last origin sequence applied per origin is stored (_meta o:<origin>) in
 *                  the transaction that applies it. Its own records at the end of a fetch
 *                  do not even reach the writer (skip_own, decision 0035).
 *   'P' part:      one origin record of a group (store/group.h, decision 0040): u64 stream
 *                  sequence, u64 the group's fingerprint (mesh_fp64 of its bytes), u8 1 when
 *                  it is the group's last record, then the origin record (or its header only
 *                  when skipped). Applied like an 'S' record (once, when its stream sequence is
 *                  new), but only the last record of the group stores the stream sequence
 *                  (and the group's fingerprint): after a crash in between, the group is
 *                  applied again from its first record, whose origin chain skips the records
 *                  already applied.
 * Rules (rules/engine.h) are evaluated as each record is applied, inside the same
 * transaction, so the alert rows and outbox rows of their transitions commit with the record;
 * the transitions a group produced go to the domain's event callback after its commit. The
 * per-series states are persisted at checkpoints with their log position ('rules_clean'),
 * and by records other than plain batches and ticks; replay re-evaluates the committed
 * records after that position without writing (decision 0028).
 * Applying a record is deterministic given the records before it, so replay after a crash
 * (or, later, a replica consuming the same stream) reaches the same state. A record that is
 * refused when applied (a breaking contract, a unique conflict) is in the log but has no
 * effect, and is refused again the same way on replay.
 *
 * Encryption (opts->kek set): the domain's data keys are in DIR/key (crypt/keys.h), wrapped
 * under the node's KEK. The current key seals the database (DIR/data.db for generation 0,
 * DIR/data.<gen>.db after re-encryptions) through the VFS and new log records; older
 * generations stay in the key ring only while log records sealed with them remain.
 *
 * Re-encryption under a new data key (mesh_domain_rekey) runs online as writer jobs between
 * write groups: a new key is recorded as "next", the database is copied into the next
 * generation's file with the backup API (writes between steps are carried over), then, in
 * one job with the writer paused: time-series buffers are flushed, the copy completed and
 * synced, the key file switched (the commit point), the store moved to the new file, the log
 * trimmed (every record is in the store, so none sealed with the old key remains), and the
 * old files deleted. A crash before the commit point leaves the old generation current (the
 * next one is dropped at open); after it, the new one (leftovers are cleaned at open).
 */
#include "store/domain.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "crypt/vfs.h"
#include "derive/derive.h"
#include "rules/engine.h"
#include "store/dlog.h"
#include "store/group.h"
#include "store/space.h"

/* K_CHECKPOINT and K_JOB are not log records: the writer runs them after a group commits */
enum {
    K_BATCH = 'B',
    K_CONTRACT = 'C',
    K_DROP = 'D',
    K_RULE = 'R',
    K_UNRULE = 'X',
    K_TICK = 'T',
    K_ALERT = 'A',
    K_QDROP = 'Q',   /* quarantined rows dropped: u8 name length, name, u8 all, u32 n, n x i64 */
    K_DISPOSE = 'E', /* rows disposed of (retention, erasure): see the header */
    K_REFRESH = 'F', /* a derived product's new rows: see the header */
    K_STREAM = 'S',  /* a record of the domain's stream: u64 stream sequence, the record */
    K_ORIGIN = 'O',  /* async: u64 origin, u64 origin seq, u64 previous origin seq, record */
    K_PART = 'P',    /* one origin record of a group: see the header */
    K_CHECKPOINT = 'K',
    K_JOB = 'J'
};

typedef mesh_status_t (*job_fn)(mesh_domain_t *d, void *arg, mesh_err_t *err);

/* Re-encryption: pages copied per writer job by default (2 MiB at 4 KiB pages: a few ms of
 * pause for writers); the last job, with the writer paused, copies at most half that. */
#define REKEY_STEP_PAGES 512

/* Watchers of writes to time series a domain keeps (mesh_domain_watch). */
#define DOMAIN_WATCH_MAX 256

/* Outcomes of the last stream records applied, for the writers waiting for them. */
#define REPL_RING   256
#define REPL_META   "repl_seq"
#define OUTBOX_META "repl_outbox" /* async: batches up to this log sequence are published */
#define ORIGIN_META "repl_origin" /* async: this copy's origin id */
#define ORIGIN_HDR  25            /* 'O' + origin + origin seq + previous origin seq */
#define PART_HDR    18            /* 'P' + stream seq + the group's fingerprint + last */
/* Async: this copy's own records coming back from the stream, skipped without the writer
 * (skip_own), wait at most this many / this long before a transaction of their own stores
 * them; normally the next write group stores them first (settle_write) */
#define SKIP_MAX    1024
#define SKIP_AGE_NS (1000LL * 1000000LL)
typedef struct repl_outcome {
    uint64_t sseq; /* 0: empty slot */
    mesh_status_t st;
    mesh_apply_result_t res;
    char msg[200];
} repl_outcome_t;

mesh_cref_t *mesh_cref_get(mesh_cref_t *r)
{
    if (r)
        atomic_fetch_add_explicit((_Atomic int *)&r->refs, 1, memory_order_relaxed);
    return r;
}

void mesh_cref_put(mesh_cref_t *r)
{
    if (r && atomic_fetch_sub_explicit((_Atomic int *)&r->refs, 1, memory_order_acq_rel) == 1) {
        mesh_contract_free(r->c);
        free(r);
    }
}

/* A list of contract references (the domain's current set, or a writer's working copy). */
typedef struct clist {
    mesh_cref_t **v;
    size_t n, cap;
} clist_t;

static void clist_free(clist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        mesh_cref_put(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static mesh_status_t clist_copy(const clist_t *src, clist_t *dst)
{
    memset(dst, 0, sizeof *dst);
    if (src->n == 0)
        return MESH_OK;
    dst->v = malloc(src->n * sizeof *dst->v);
    if (dst->v == NULL)
        return MESH_NOMEM;
    for (size_t i = 0; i < src->n; i++)
        dst->v[i] = mesh_cref_get(src->v[i]);
    dst->n = dst->cap = src->n;
    return MESH_OK;
}

/* Puts c in the list, replacing the entry with the same contract id. Takes ownership of c. */
static mesh_status_t clist_put(clist_t *l, mesh_contract_t *c)
{
    mesh_cref_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return MESH_NOMEM;
    r->c = c;
    r->refs = 1;
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i]->c->id, c->id) == 0) {
            mesh_cref_put(l->v[i]);
            l->v[i] = r;
            return MESH_OK;
        }
    }
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 4;
        mesh_cref_t **nv = realloc(l->v, ncap * sizeof *nv);
        if (nv == NULL) {
            free(r);
            return MESH_NOMEM;
        }
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = r;
    return MESH_OK;
}

static void clist_remove(clist_t *l, size_t i)
{
    mesh_cref_put(l->v[i]);
    l->v[i] = l->v[--l->n];
}

/* Finds the product and the index of its contract in the list. */
static const mesh_product_t *clist_product(const clist_t *l, const char *name, size_t *ci)
{
    for (size_t i = 0; i < l->n; i++) {
        const mesh_product_t *p = mesh_contract_product(l->v[i]->c, name);
        if (p) {
            if (ci)
                *ci = i;
            return p;
        }
    }
    return NULL;
}

typedef struct item {
    int kind;
    mesh_buf_t payload; /* the log record (kind byte first); empty for a checkpoint */
    const mesh_batch_t *batch;
    const char *idem;
    mesh_contract_t *contract; /* parsed by the submitter; the writer takes it on success */
    char product[MESH_NAME_MAX + 1];
    /* results */
    mesh_status_t st;
    mesh_err_t err;
    mesh_apply_result_t res;
    mesh_contract_result_t *cres;
    job_fn job; /* K_JOB */
    void *job_arg;
    bool unlogged;     /* the append failed: answered as it is, skipped by the rest of the group */
    bool skipped;      /* a stream record applied before: nothing done */
    bool nolog;        /* a stream record to skip (decide_origins): not logged, only its sequence */
    bool dupid;        /* a stream record whose message id was applied before (decide_ids): nolog */
    const char *msgid; /* a stream record's message id (NULL: none; borrowed) */
    uint64_t fp;       /* a stream record's fingerprint (mesh_fp64 of the bytes as carried) */
    bool done;         /* under q_lock only: the submitter returns (and the item dies) once set */
    struct item *next;
} item_t;

struct mesh_domain {
    char *name;
    char *dir;
    atomic_int writes_in; /* mesh_domain_write calls under way (mesh_domain_drain_writes) */
    mesh_dlog_t *log;
    mesh_store_t *store;
    mesh_domain_changed_fn changed;
    void *changed_arg;
    mesh_rules_t *rules; /* the writer's */
    mesh_domain_events_fn events;
    void *events_arg;

    pthread_mutex_t state_lock; /* guards current */
    clist_t current;

    pthread_mutex_t q_lock; /* guards the queue and the leader flag */
    pthread_cond_t q_cond;
    item_t *q_head, *q_tail;
    bool leader;
    _Atomic bool broken; /* the log could not be synced or rewound: no more writes */
    mesh_space_t *space; /* the node's free-space guard (borrowed; may be NULL) */
    int64_t idem_ttl_ns;
    int64_t flush_age_ns; /* buffered time-series rows older than this go out at checkpoints */
    /* positions published by the writer for readers on other threads */
    _Atomic uint64_t info_log_seq, info_log_bytes, info_applied;
    /* encryption (kek NULL: in clear). key_lock guards kek, kf and writes of the key file;
     * a re-encryption holds it throughout (writer jobs then use them without it). */
    pthread_mutex_t key_lock;
    const mesh_kek_t *kek; /* the node's, borrowed */
    mesh_keyfile_t kf;     /* DIR/key as on disk, keys unwrapped */
    mesh_keyring_t ring;   /* the log's keys (references owned) */
    char *db_path;         /* the current database file (the writer thread's) */
    bool attached;         /* a key is attached for db_path */
    _Atomic uint32_t info_gen;
    int rekey_pages;
    bool cagg_dirty; /* the writer's: a continuous aggregate has stale buckets to recompute */
    /* the writer's: aggregates a batch of the current group merged into (names owned), and
     * when the first of them was merged; reported through refresh after the commit */
    char **merged;
    size_t nmerged, capmerged;
    int64_t merged_since_ns;
    mesh_domain_refresh_fn refresh; /* NULL: none */
    void *refresh_arg;
    /* replication: the stream sequence the store holds (published after each commit), the
     * outcomes of recent stream records, and the replicator (NULL publish: local only) */
    pthread_mutex_t repl_lock; /* guards ring and the wait */
    pthread_cond_t repl_cond;  /* broadcast when repl_seq moves */
    _Atomic uint64_t repl_seq;
    repl_outcome_t ring_out[REPL_RING];
    mesh_replicator_t repl;
    /* async: the outbox position (batches up to it are in the stream), whether it bounds log
     * trims, and this copy's origin id (0 until the first publish) */
    _Atomic uint64_t outbox;
    _Atomic bool outbox_on;
    _Atomic uint64_t origin_id;
    _Atomic uint64_t last_batch; /* log sequence of the last batch written here */
    /* async: this copy's own records that came back from the stream since the store last
     * stored the position (skip_own, decision 0035): their stream sequences and fingerprints,
     * in stream order, and the position they reach (repl_skip, 0: none; the stream position
     * is the larger of it and repl_seq). Guarded by repl_lock; the consumer only appends, and
     * the entries below nskip change on the writer thread only (settle_write, the rewind). */
    struct skipped {
        uint64_t sseq, fp;
    } skip[SKIP_MAX];
    size_t nskip;
    int64_t skip_since; /* mono ns: when the oldest pending one was skipped */
    _Atomic uint64_t repl_skip;
    /* watchers of writes to time series (incremental refreshes of SQL-derived products,
     * node/derived.c): the smallest time written since each one last looked, under
     * state_lock */
    struct watch {
        char product[MESH_NAME_MAX + 1];
        char watcher[136];
        int64_t min_t;
        bool any;
    } watch[DOMAIN_WATCH_MAX];
    size_t nwatch;
};

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = v << 8 | p[k];
    return v;
}

/* The stream position: the last sequence applied here, or skipped as this copy's own record
 * (repl_skip); what the consumer goes on after. At or past the stored one (repl_seq). */
static uint64_t stream_pos(mesh_domain_t *d)
{
    uint64_t s = atomic_load(&d->repl_seq), k = atomic_load(&d->repl_skip);
    return k > s ? k : s;
}

static void origin_key(uint64_t origin, char *out, size_t cap)
{
    snprintf(out, cap, "o:%016llx", (unsigned long long)origin);
}

/* How far the log may be trimmed: what the store holds, and (async) what is published. */
static uint64_t trim_point(mesh_domain_t *d)
{
    uint64_t t = mesh_store_replay_from(d->store);
    uint64_t o = atomic_load(&d->outbox);
    return atomic_load(&d->outbox_on) && o < t ? o : t;
}

const char *mesh_domain_name(const mesh_domain_t *d)
{
    return d->name;
}

mesh_store_t *mesh_domain_store(mesh_domain_t *d)
{
    return d->store;
}

const char *mesh_domain_dir(const mesh_domain_t *d)
{
    return d->dir;
}

mesh_status_t mesh_domain_contracts(mesh_domain_t *d, mesh_cref_t ***out, size_t *n)
{
    pthread_mutex_lock(&d->state_lock);
    clist_t copy;
    mesh_status_t st = clist_copy(&d->current, &copy);
    pthread_mutex_unlock(&d->state_lock);
    if (st != MESH_OK)
        return st;
    *out = copy.v;
    *n = copy.n;
    return MESH_OK;
}

/* ---- contract checks (same code for the submitter's early check and the writer) ---- */

/* True when two contracts say the same thing in different YAML (an exported contract
 * applied back): their canonical exports are equal. */
static bool same_content(const mesh_contract_t *a, const mesh_contract_t *b)
{
    mesh_buf_t x, y;
    mesh_buf_init(&x, MESH_CONTRACT_MAX_BYTES * 2);
    mesh_buf_init(&y, MESH_CONTRACT_MAX_BYTES * 2);
    bool same = mesh_contract_export(a, NULL, &x) == MESH_OK &&
                mesh_contract_export(b, NULL, &y) == MESH_OK && x.len == y.len &&
                (x.len == 0 || memcmp(x.data, y.data, x.len) == 0);
    mesh_buf_free(&x);
    mesh_buf_free(&y);
    return same;
}

/*
 * Decides what applying contract c to the list means: fills res->changes, sets the outcome,
 * and returns a refusal when the change is not allowed.
 */
static mesh_status_t check_contract(const char *domain, const clist_t *l, const mesh_contract_t *c,
                                    mesh_contract_result_t *res, mesh_err_t *err)
{
    if (strcmp(c->domain, domain) != 0)
        return mesh_err_set(err, MESH_INVALID, "the contract is for domain '%s', not '%s'",
                            c->domain, domain);
    const mesh_contract_t *old = NULL;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i]->c->id, c->id) == 0)
            old = l->v[i]->c;
    /* products must not belong to another contract */
    for (size_t i = 0; i < c->nproducts; i++) {
        size_t ci;
        const mesh_product_t *p = clist_product(l, c->products[i].name, &ci);
        if (p && strcmp(l->v[ci]->c->id, c->id) != 0)
            return mesh_err_set(err, MESH_CONFLICT,
                                "product %s.%s is defined by contract '%s'; a product belongs to "
                                "one contract",
                                domain, c->products[i].name, l->v[ci]->c->id);
    }
    if (old == NULL) {
        res->outcome = MESH_CONTRACT_CREATED;
        for (size_t i = 0; i < c->nproducts; i++)
            mesh_buf_printf(&res->changes, "product %s.%s created\n", domain, c->products[i].name);
        return MESH_OK;
    }
    int cmp = mesh_contract_version_cmp(c, old);
    if (cmp == 0) {
        if (strcmp(c->yaml, old->yaml) == 0 || same_content(c, old)) {
            res->outcome = MESH_CONTRACT_UNCHANGED;
            return MESH_OK;
        }
        return mesh_err_set(err, MESH_CONFLICT,
                            "contract '%s' version %s is already applied with a different text; "
                            "give the new text a higher version",
                            c->id, c->version);
    }
    if (cmp < 0)
        return mesh_err_set(err, MESH_CONFLICT,
                            "contract '%s' version %s is older than the applied version %s", c->id,
                            c->version, old->version);
    res->outcome = MESH_CONTRACT_UPDATED;
    bool breaking = false;
    for (size_t i = 0; i < old->nproducts; i++) {
        const mesh_product_t *op = &old->products[i];
        const mesh_product_t *np = mesh_contract_product(c, op->name);
        if (np == NULL) {
            mesh_buf_printf(&res->changes, "product %s dropped (breaking)\n", op->name);
            breaking = true;
            continue;
        }
        mesh_buf_t ch;
        mesh_buf_init(&ch, 1 << 20);
        if (mesh_product_diff(op, np, &ch))
            breaking = true;
        if (ch.len)
            mesh_buf_printf(&res->changes, "product %s:\n%s%s", op->name, ch.data,
                            ch.data[ch.len - 1] == '\n' ? "" : "\n");
        mesh_buf_free(&ch);
    }
    for (size_t i = 0; i < c->nproducts; i++)
        if (mesh_contract_product(old, c->products[i].name) == NULL)
            mesh_buf_printf(&res->changes, "product %s.%s created\n", domain, c->products[i].name);
    if (breaking && c->ver_major <= old->ver_major)
        return mesh_err_set(err, MESH_BREAKING,
                            "contract '%s' %s -> %s has breaking changes; they need a new major "
                            "version (%d.0.0):\n%s",
                            c->id, old->version, c->version, old->ver_major + 1,
                            res->changes.data ? res->changes.data : "");
    return MESH_OK;
}

/* ---- applying records (the writer, and replay) ---- */

typedef struct applier {
    mesh_domain_t *d;
    clist_t work; /* contracts as of the records applied so far in this transaction */
    bool work_changed;
    uint64_t repl_seq;        /* the stream sequence as of the records applied so far */
    mesh_apply_result_t rres; /* the result of the last batch applied from its bytes */
    const char *cur_id;       /* the stream record being applied: its message id, fingerprint */
    uint64_t cur_fp;          /* (0: computed from the record; replay) */
    /* the smallest time written to (or disposed of in) each time series since the last
     * commit: told to its watchers after the commit (publish), so that a refresh that takes
     * a mark reads the rows that made it */
    struct {
        char product[MESH_NAME_MAX + 1];
        int64_t min_t;
    } marks[64]; /* products, not series */
    size_t nmarks;
    bool marks_over; /* more series than marks: every watcher recomputes everything */
} applier_t;

/* ---- continuous aggregates (store/cagg.c, docs/derived.md) ---- */

/* The source of an aggregate: in the contract being applied, else in the working list. */
static const mesh_product_t *agg_source(const clist_t *l, const mesh_contract_t *c,
                                        const mesh_product_t *agg)
{
    const mesh_product_t *p = c ? mesh_contract_product(c, agg->derive->source) : NULL;
    return p ? p : clist_product(l, agg->derive->source, NULL);
}

/* Checks the continuous aggregates of contract c against their sources. */
static mesh_status_t check_aggregates(const char *domain, const clist_t *l,
                                      const mesh_contract_t *c, mesh_err_t *err)
{
    for (size_t i = 0; i < c->nproducts; i++) {
        const mesh_product_t *p = &c->products[i];
        /* a derivation by SQL is checked by the node, which has the query engine
         * (node/derived.c): its columns are those its query gives the definer */
        if (p->derive == NULL || p->derive->kind == MESH_DERIVE_SQL)
            continue;
        const mesh_product_t *src = agg_source(l, c, p);
        if (src == NULL)
            return mesh_err_set(err, MESH_INVALID, "derived product %s.%s: no source product %s.%s",
                                domain, p->name, domain, p->derive->source);
        if (src->derive != NULL)
            return mesh_err_set(err, MESH_INVALID,
                                "derived product %s.%s: its source %s is derived itself", domain,
                                p->name, src->name);
        mesh_lineage_t lin;
        mesh_status_t st = mesh_derive_aggregate_lineage(domain, src, p->derive, &lin, err);
        if (st == MESH_OK)
            st = mesh_derive_check_columns(p, &lin, err);
        mesh_lineage_free(&lin);
        if (st != MESH_OK)
            return st;
    }
    return MESH_OK;
}

/* Notes that a batch merged into the aggregate named agg in the current group (for the
 * refresh report after the commit). Out of memory only loses the report. */
static void merged_note(mesh_domain_t *d, const char *agg)
{
    if (d->refresh == NULL)
        return;
    for (size_t i = 0; i < d->nmerged; i++)
        if (strcmp(d->merged[i], agg) == 0)
            return;
    if (d->nmerged == d->capmerged) {
        size_t nc = d->capmerged ? d->capmerged * 2 : 8;
        char **nv = realloc(d->merged, nc * sizeof *nv);
        if (nv == NULL)
            return;
        d->merged = nv;
        d->capmerged = nc;
    }
    if ((d->merged[d->nmerged] = mesh_strdup(agg)) == NULL)
        return;
    if (d->nmerged++ == 0)
        d->merged_since_ns = mesh_now_ns();
}

/* Forgets the merges noted (a new group; or after they were reported). */
static void merged_clear(mesh_domain_t *d)
{
    for (size_t i = 0; i < d->nmerged; i++)
        free(d->merged[i]);
    d->nmerged = 0;
}

static bool merged_has(const mesh_domain_t *d, const char *agg)
{
    for (size_t i = 0; i < d->nmerged; i++)
        if (strcmp(d->merged[i], agg) == 0)
            return true;
    return false;
}

/* Merges a batch into the continuous aggregates over its products. */
static mesh_status_t aggregates_batch(applier_t *a, const mesh_batch_t *b, mesh_err_t *err)
{
    mesh_status_t st = MESH_OK;
    for (size_t pi = 0; pi < b->nparts && st == MESH_OK; pi++) {
        const mesh_part_t *part = &b->parts[pi];
        if (part->nrows == 0)
            continue;
        for (size_t ci = 0; ci < a->work.n && st == MESH_OK; ci++) {
            const mesh_contract_t *c = a->work.v[ci]->c;
            for (size_t k = 0; k < c->nproducts && st == MESH_OK; k++) {
                const mesh_product_t *p = &c->products[k];
                if (p->derive == NULL || p->derive->kind != MESH_DERIVE_AGGREGATE ||
                    strcmp(p->derive->source, part->product->name) != 0)
                    continue;
                st = mesh_store_cagg_batch(a->d->store, p, part->product, b, part, err);
                a->d->cagg_dirty = true;
                if (st == MESH_OK)
                    merged_note(a->d, p->name);
            }
        }
    }
    return st;
}

/* Recomputes the stale buckets of every continuous aggregate (the writer, between groups;
 * and at open after replay). A failure is logged: the marks stay and the next try redoes it.
 * Each aggregate refreshed (merged into by the group's batches, or recomputed) is reported
 * to the refresh callback. */
static void aggregates_catch_up(mesh_domain_t *d, bool always)
{
    if (!d->cagg_dirty && !always) {
        merged_clear(d);
        return;
    }
    d->cagg_dirty = false;
    for (size_t ci = 0; ci < d->current.n; ci++) {
        const mesh_contract_t *c = d->current.v[ci]->c;
        for (size_t k = 0; k < c->nproducts; k++) {
            const mesh_product_t *p = &c->products[k];
            if (p->derive == NULL || p->derive->kind != MESH_DERIVE_AGGREGATE)
                continue;
            bool pending = false, merged = merged_has(d, p->name);
            mesh_err_t e;
            mesh_err_clear(&e);
            if (mesh_store_cagg_pending(d->store, p->name, &pending) != MESH_OK)
                pending = false;
            if (!pending && !merged)
                continue;
            const mesh_product_t *src = clist_product(&d->current, p->derive->source, NULL);
            if (src == NULL)
                continue;
            mesh_domain_refresh_t rep = {.product = p,
                                         .source = src,
                                         .start_ns = merged ? d->merged_since_ns : mesh_now_ns(),
                                         .merged = merged};
            mesh_status_t st = MESH_OK;
            if (pending &&
                (st = mesh_store_cagg_recompute(d->store, p, src, &rep.buckets, &e)) != MESH_OK) {
                LOG_WARN("domain", "%s.%s: recomputing the aggregate: %s", d->name, p->name, e.msg);
                d->cagg_dirty = true;
            } else if (pending) {
                LOG_DEBUG("domain", "%s.%s: %lld buckets recomputed", d->name, p->name,
                          (long long)rep.buckets);
            }
            rep.status = st;
            rep.error = st == MESH_OK ? NULL : e.msg;
            rep.end_ns = mesh_now_ns();
            if (d->refresh)
                d->refresh(d->refresh_arg, d, &rep);
        }
    }
    merged_clear(d);
}

static mesh_status_t apply_contract(applier_t *a, uint64_t seq, mesh_contract_t *c,
                                    mesh_contract_result_t *res, mesh_err_t *err)
{
    mesh_domain_t *d = a->d;
    mesh_status_t st = check_contract(d->name, &a->work, c, res, err);
    if (st != MESH_OK || res->outcome == MESH_CONTRACT_UNCHANGED)
        return st;
    if ((st = check_aggregates(d->name, &a->work, c, err)) != MESH_OK)
        return st;
    const mesh_contract_t *old = NULL;
    for (size_t i = 0; i < a->work.n; i++)
        if (strcmp(a->work.v[i]->c->id, c->id) == 0)
            old = a->work.v[i]->c;
    mesh_store_t *s = d->store;
    for (size_t i = 0; i < c->nproducts && st == MESH_OK; i++) {
        const mesh_product_t *np = &c->products[i];
        st = mesh_store_put_product(s, old ? mesh_contract_product(old, np->name) : NULL, np, err);
    }
    for (size_t i = 0; old && i < old->nproducts && st == MESH_OK; i++)
        if (mesh_contract_product(c, old->products[i].name) == NULL) {
            st = mesh_store_drop_product(s, old->products[i].name, err);
            if (st == MESH_OK)
                st = mesh_store_cagg_forget(s, old->products[i].name, err);
        }
    /* a new or changed aggregate, or an aggregate whose source changed, is rebuilt from its
     * source after the commit */
    for (size_t i = 0; i < c->nproducts && st == MESH_OK; i++) {
        const mesh_product_t *np = &c->products[i];
        const mesh_product_t *op = old ? mesh_contract_product(old, np->name) : NULL;
        if (np->derive && np->derive->kind == MESH_DERIVE_AGGREGATE &&
            (op == NULL || !mesh_derivation_same(op->derive, np->derive))) {
            st = mesh_store_cagg_invalidate(s, np->name, err);
            d->cagg_dirty = true;
        }
        for (size_t ci = 0; ci < a->work.n && st == MESH_OK && op != NULL; ci++) {
            const mesh_contract_t *wc = a->work.v[ci]->c;
            for (size_t k = 0; k < wc->nproducts && st == MESH_OK; k++) {
                const mesh_product_t *ap = &wc->products[k];
                if (wc != old && ap->derive && ap->derive->kind == MESH_DERIVE_AGGREGATE &&
                    strcmp(ap->derive->source, np->name) == 0) {
                    st = mesh_store_cagg_invalidate(s, ap->name, err);
                    d->cagg_dirty = true;
                }
            }
        }
    }
    if (st == MESH_OK)
        st = mesh_store_put_contract(s, c, seq, err);
    return st;
}

static mesh_status_t apply_drop(applier_t *a, const char *product, mesh_err_t *err)
{
    size_t ci;
    const mesh_product_t *p = clist_product(&a->work, product, &ci);
    if (p == NULL)
        return mesh_err_set(err, MESH_NOT_FOUND, "no product %s.%s", a->d->name, product);
    const mesh_contract_t *c = a->work.v[ci]->c;
    if (c->nproducts > 1)
        return mesh_err_set(err, MESH_CONFLICT,
                            "product %s.%s is one of %zu products of contract '%s'; apply a new "
                            "major version of the contract without it instead",
                            a->d->name, product, c->nproducts, c->id);
    for (size_t i = 0; i < a->work.n; i++) {
        const mesh_contract_t *wc = a->work.v[i]->c;
        for (size_t k = 0; k < wc->nproducts; k++)
            if (wc->products[k].derive && wc->products[k].derive->source &&
                strcmp(wc->products[k].derive->source, product) == 0)
                return mesh_err_set(err, MESH_CONFLICT,
                                    "product %s.%s is the source of the aggregate %s.%s; drop "
                                    "that first",
                                    a->d->name, product, a->d->name, wc->products[k].name);
    }
    mesh_status_t st = mesh_store_drop_product(a->d->store, product, err);
    if (st == MESH_OK)
        st = mesh_store_cagg_forget(a->d->store, product, err);
    /* its contract goes with it, or the next open would load it again */
    if (st == MESH_OK)
        st = mesh_store_drop_contract(a->d->store, c->id, err);
    return st;
}

static const mesh_product_t *work_lookup(void *arg, const char *domain, const char *product)
{
    applier_t *a = arg;
    (void)domain;
    return clist_product(&a->work, product, NULL);
}

static const mesh_product_t *rules_lookup(void *arg, const char *product)
{
    applier_t *a = arg;
    return clist_product(&a->work, product, NULL);
}

/* Makes sure the domain has the alerts products (meshd's contract), applying it in this
 * transaction when it has not. MESH_CONFLICT when a product of that name is someone else's. */
static mesh_status_t ensure_alerts(applier_t *a, uint64_t seq, mesh_err_t *err)
{
    mesh_domain_t *d = a->d;
    char id[160];
    snprintf(id, sizeof id, "urn:meshd:contract:%s:alerts", d->name);
    static const char *const names[] = {MESH_ALERTS_PRODUCT, MESH_ALERT_EVENTS_PRODUCT};
    size_t have = 0;
    for (size_t i = 0; i < 2; i++) {
        size_t ci;
        if (clist_product(&a->work, names[i], &ci) == NULL)
            continue;
        if (strcmp(a->work.v[ci]->c->id, id) != 0)
            return mesh_err_set(err, MESH_CONFLICT,
                                "product %s.%s is defined by contract '%s'; rules need that name "
                                "for their alerts",
                                d->name, names[i], a->work.v[ci]->c->id);
        have++;
    }
    if (have == 2)
        return MESH_OK;
    mesh_buf_t y;
    mesh_buf_init(&y, MESH_CONTRACT_MAX_BYTES);
    mesh_status_t st = mesh_rules_alerts_contract(d->name, &y);
    mesh_contract_t *c = NULL;
    if (st == MESH_OK)
        st = mesh_contract_parse(y.data, y.len, &c, err);
    mesh_buf_free(&y);
    if (st != MESH_OK)
        return st;
    mesh_contract_result_t res;
    memset(&res, 0, sizeof res);
    mesh_buf_init(&res.changes, 1 << 20);
    st = apply_contract(a, seq, c, &res, err);
    mesh_buf_free(&res.changes);
    if (st == MESH_OK && res.outcome != MESH_CONTRACT_UNCHANGED) {
        st = clist_put(&a->work, c);
        c = NULL;
        a->work_changed = true;
    }
    mesh_contract_free(c);
    return st;
}

/* A disposal record's fields (borrowed from the payload). */
typedef struct dispose_rec {
    char why;
    char name[MESH_NAME_MAX + 1];
    mesh_dispose_t d;
} dispose_rec_t;

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = v << 8 | p[k];
    return v;
}

static mesh_status_t dispose_decode(uint64_t seq, const uint8_t *p, size_t n, dispose_rec_t *r,
                                    mesh_err_t *err)
{
    size_t nl = n > 2 ? p[2] : 0;
    if (n < 3 || (p[1] != 'r' && p[1] != 'e') || nl == 0 || nl > MESH_NAME_MAX || n < 3 + nl + 20)
        return mesh_err_set(err, MESH_CORRUPT, "log record %llu: a bad disposal",
                            (unsigned long long)seq);
    r->why = (char)p[1];
    memcpy(r->name, p + 3, nl);
    r->name[nl] = '\0';
    const uint8_t *q = p + 3 + nl;
    r->d.cutoff = (int64_t)le64(q);
    r->d.limit = (int64_t)le64(q + 8);
    r->d.nkeys =
        (size_t)(q[16] | (uint32_t)q[17] << 8 | (uint32_t)q[18] << 16 | (uint32_t)q[19] << 24);
    r->d.keys = q + 20;
    r->d.keys_len = n - (3 + nl + 20);
    if (r->d.nkeys > r->d.keys_len || (r->why == 'e') != (r->d.cutoff == INT64_MIN))
        return mesh_err_set(err, MESH_CORRUPT, "log record %llu: a bad disposal",
                            (unsigned long long)seq);
    return MESH_OK;
}

/* Notes that product had rows written from time lo on (INT64_MIN: rows disposed of, its
 * watchers recompute everything), for its watchers after the commit (flush_marks). */
static void mark(applier_t *a, const char *product, int64_t lo)
{
    for (size_t i = 0; i < a->nmarks; i++) {
        if (strcmp(a->marks[i].product, product) == 0) {
            if (lo < a->marks[i].min_t)
                a->marks[i].min_t = lo;
            return;
        }
    }
    if (a->nmarks == MESH_ARRAY_LEN(a->marks)) {
        a->marks_over = true;
        return;
    }
    snprintf(a->marks[a->nmarks].product, sizeof a->marks[0].product, "%s", product);
    a->marks[a->nmarks++].min_t = lo;
}

/* The batch's time series and the smallest time it wrote in each (rows of a batch rolled back
 * later count too: a watcher then recomputes a little more than needed). */
static void note_written(applier_t *a, const mesh_batch_t *b)
{
    for (size_t i = 0; i < b->nparts; i++) {
        const mesh_part_t *part = &b->parts[i];
        const mesh_product_t *p = part->product;
        if (p->time_col < 0 || part->nrows == 0)
            continue;
        int64_t lo = INT64_MAX;
        for (size_t r = 0; r < part->nrows; r++) {
            const mesh_value_t *v = &part->vals[r * part->ncols + (size_t)p->time_col];
            lo = v->type == MESH_V_INT && v->u.i < lo ? v->u.i : lo;
        }
        mark(a, p->name, lo);
    }
}

/* After a commit: the watchers learn what it wrote. Told before the commit, a refresh could
 * take the mark and read a snapshot without the rows, and never read them. */
static void flush_marks(applier_t *a)
{
    mesh_domain_t *d = a->d;
    if (a->nmarks == 0 && !a->marks_over)
        return;
    pthread_mutex_lock(&d->state_lock);
    for (size_t w = 0; w < d->nwatch; w++) {
        struct watch *x = &d->watch[w];
        for (size_t i = 0; i < a->nmarks || (a->marks_over && i == 0); i++) {
            int64_t lo = a->marks_over ? INT64_MIN : a->marks[i].min_t;
            if (!a->marks_over && strcmp(x->product, a->marks[i].product) != 0)
                continue;
            x->min_t = x->any && x->min_t < lo ? x->min_t : lo;
            x->any = true;
        }
    }
    pthread_mutex_unlock(&d->state_lock);
    a->nmarks = 0;
    a->marks_over = false;
}

/* Applies one record inside the open store transaction, in its own savepoint. For a live
 * item the submitter's parsed objects are used; in replay the payload is decoded. */
static mesh_status_t apply_record(applier_t *a, uint64_t seq, const uint8_t *p, size_t n,
                                  item_t *it, mesh_err_t *err)
{
    mesh_domain_t *d = a->d;
    if (n == 0)
        return mesh_err_set(err, MESH_CORRUPT, "empty log record %llu", (unsigned long long)seq);
    mesh_status_t st;
    switch (p[0]) {
    case K_BATCH: {
        if (it) {
            /* the batch was validated against the definitions of its request's snapshot; a
             * contract applied meanwhile (earlier in this group) makes it stale */
            for (size_t i = 0; i < it->batch->nparts; i++) {
                const mesh_product_t *bp = it->batch->parts[i].product;
                if (clist_product(&a->work, bp->name, NULL) == bp)
                    continue;
                if (it->idem && *it->idem &&
                    mesh_store_idem_lookup(d->store, it->idem, &it->res) == MESH_OK)
                    return MESH_OK; /* applied before: its answer stands */
                return mesh_err_set(err, MESH_CONFLICT,
                                    "the contract of %s.%s changed while this batch was "
                                    "written; send it again",
                                    d->name, bp->name);
            }
            st = mesh_store_apply_batch(d->store, seq, it->batch, it->idem, &it->res, err);
            /* a duplicate (a retry with the same idempotency key) was evaluated the first
             * time: its rows must not count twice, and replay must know which records the
             * rules saw (a duplicate is marked unapplied) */
            if (st == MESH_OK && !it->res.duplicate)
                note_written(a, it->batch);
            if (st == MESH_OK && !it->res.duplicate)
                st = aggregates_batch(a, it->batch, err);
            if (st == MESH_OK && !it->res.duplicate)
                st = mesh_rules_batch(d->rules, seq, it->batch, rules_lookup, a, err);
            return st;
        }
        mesh_batch_t b;
        char idem[256];
        mesh_batch_init(&b, d->name, MESH_BATCH_DEFAULT_LIMITS);
        st = mesh_batch_decode(p + 1, n - 1, work_lookup, a, &b, idem, sizeof idem, err);
        if (st == MESH_OK) {
            mesh_apply_result_t *res = &a->rres; /* what a stream record's writer answers */
            st = mesh_store_apply_batch(d->store, seq, &b, idem, res, err);
            if (st == MESH_OK && !res->duplicate)
                note_written(a, &b);
            if (st == MESH_OK && !res->duplicate)
                st = aggregates_batch(a, &b, err);
            if (st == MESH_OK && !res->duplicate)
                st = mesh_rules_batch(d->rules, seq, &b, rules_lookup, a, err);
        }
        mesh_batch_free(&b);
        return st;
    }
    case K_RULE: {
        mesh_rule_t *r;
        int64_t now;
        if (n < 9)
            return mesh_err_set(err, MESH_CORRUPT, "rule record %llu: bad length",
                                (unsigned long long)seq);
        memcpy(&now, p + 1, 8);
        st = mesh_rule_parse((const char *)p + 9, n - 9, &r, err);
        if (st != MESH_OK)
            return st;
        if (strcmp(r->domain, d->name) != 0)
            st = mesh_err_set(err, MESH_INVALID, "the rule is for domain '%s', not '%s'", r->domain,
                              d->name);
        if (st == MESH_OK && clist_product(&a->work, r->product, NULL) == NULL)
            st = mesh_err_set(err, MESH_NOT_FOUND, "no product %s.%s", d->name, r->product);
        if (st == MESH_OK)
            st = ensure_alerts(a, seq, err);
        if (st == MESH_OK)
            st = mesh_rules_put(d->rules, seq, now, r, rules_lookup, a, err);
        mesh_rule_put(r);
        return st;
    }
    case K_UNRULE: {
        char name[MESH_NAME_MAX + 1];
        int64_t now;
        if (n < 9)
            return mesh_err_set(err, MESH_CORRUPT, "unrule record %llu: bad length",
                                (unsigned long long)seq);
        memcpy(&now, p + 1, 8);
        size_t l = n - 9 < MESH_NAME_MAX ? n - 9 : MESH_NAME_MAX;
        memcpy(name, p + 9, l);
        name[l] = '\0';
        return mesh_rules_delete(d->rules, seq, now, name, rules_lookup, a, err);
    }
    case K_TICK: {
        int64_t now;
        if (n != 9)
            return mesh_err_set(err, MESH_CORRUPT, "tick record %llu: bad length",
                                (unsigned long long)seq);
        memcpy(&now, p + 1, 8);
        return mesh_rules_tick(d->rules, seq, now, rules_lookup, a, err);
    }
    case K_ALERT: {
        /* op, time, id\0 by\0 note\0 */
        const char *f[3];
        size_t off = 10;
        int64_t now;
        if (n < 13 || ((const char *)p)[n - 1] != '\0')
            return mesh_err_set(err, MESH_CORRUPT, "alert record %llu: bad length",
                                (unsigned long long)seq);
        memcpy(&now, p + 2, 8);
        for (int i = 0; i < 3; i++) {
            if (off >= n)
                return mesh_err_set(err, MESH_CORRUPT, "alert record %llu: truncated",
                                    (unsigned long long)seq);
            f[i] = (const char *)p + off;
            off += strlen(f[i]) + 1;
        }
        return mesh_rules_alert_op(d->rules, seq, (char)p[1], f[0], f[1], f[2], now, rules_lookup,
                                   a, err);
    }
    case K_CONTRACT: {
        mesh_contract_t *c = NULL;
        mesh_contract_result_t local;
        mesh_contract_result_t *res = it ? it->cres : &local;
        if (!it)
            mesh_buf_init(&local.changes, 1 << 20);
        if (it) {
            c = it->contract;
            st = MESH_OK;
        } else {
            st = mesh_contract_parse((const char *)p + 1, n - 1, &c, err);
        }
        if (st == MESH_OK) {
            mesh_buf_reset(&res->changes);
            st = apply_contract(a, seq, c, res, err);
        }
        if (st == MESH_OK && res->outcome != MESH_CONTRACT_UNCHANGED) {
            if (it)
                it->contract = NULL; /* the working list owns it now */
            st = clist_put(&a->work, c);
            a->work_changed = true;
        } else if (!it) {
            mesh_contract_free(c);
        }
        if (!it)
            mesh_buf_free(&local.changes);
        return st;
    }
    case K_DROP: {
        char name[MESH_NAME_MAX + 1];
        size_t l = n - 1 < MESH_NAME_MAX ? n - 1 : MESH_NAME_MAX;
        memcpy(name, p + 1, l);
        name[l] = '\0';
        st = apply_drop(a, name, err);
        if (st == MESH_OK) {
            size_t ci;
            if (clist_product(&a->work, name, &ci)) {
                clist_remove(&a->work, ci);
                a->work_changed = true;
            }
        }
        return st;
    }
    case K_QDROP: {
        size_t nl = n > 1 ? p[1] : 0;
        if (n < 2 || nl == 0 || nl > MESH_NAME_MAX || n < 2 + nl + 5)
            return mesh_err_set(err, MESH_CORRUPT, "log record %llu: a short quarantine drop",
                                (unsigned long long)seq);
        char name[MESH_NAME_MAX + 1];
        memcpy(name, p + 2, nl);
        name[nl] = '\0';
        const uint8_t *q = p + 2 + nl;
        bool all = q[0] != 0;
        uint32_t cnt =
            (uint32_t)q[1] | (uint32_t)q[2] << 8 | (uint32_t)q[3] << 16 | (uint32_t)q[4] << 24;
        if ((n - (2 + nl + 5)) / 8 < cnt || n != 2 + nl + 5 + (size_t)cnt * 8)
            return mesh_err_set(err, MESH_CORRUPT, "log record %llu: a bad quarantine drop",
                                (unsigned long long)seq);
        int64_t *ids = cnt ? malloc(cnt * sizeof *ids) : NULL;
        if (cnt && ids == NULL)
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        for (uint32_t i = 0; i < cnt; i++) {
            uint64_t v = 0;
            for (int k = 7; k >= 0; k--)
                v = v << 8 | q[5 + (size_t)i * 8 + (size_t)k];
            ids[i] = (int64_t)v;
        }
        int64_t dropped = 0;
        st = mesh_store_quarantine_drop(d->store, name, ids, cnt, all, &dropped, err);
        free(ids);
        if (st == MESH_OK && it)
            it->res.quarantined = (size_t)dropped;
        return st;
    }
    case K_ORIGIN:
        if (n == ORIGIN_HDR)
            return MESH_OK; /* skipped when it was logged */
        if (n < ORIGIN_HDR || p[ORIGIN_HDR] != K_BATCH)
            return mesh_err_set(err, MESH_INVALID, "stream record %llu: not an origin batch",
                                (unsigned long long)seq);
        return apply_record(a, seq, p + ORIGIN_HDR, n - ORIGIN_HDR, NULL, err);
    case K_DISPOSE: {
        dispose_rec_t r;
        if ((st = dispose_decode(seq, p, n, &r, err)) != MESH_OK)
            return st;
        const mesh_product_t *pp = clist_product(&a->work, r.name, NULL);
        if (pp == NULL)
            return mesh_err_set(err, MESH_NOT_FOUND, "no product %s.%s", d->name, r.name);
        int64_t deleted = 0;
        st = mesh_store_dispose(d->store, pp, &r.d, false, &deleted, err);
        if (st == MESH_OK && deleted > 0)
            mark(a, pp->name, INT64_MIN);
        /* an erasure reaches the continuous aggregates over the product: the buckets that
         * held erased rows are recomputed from what remains of it right after this commit
         * (retention does not: aggregates keep the history their source no longer holds) */
        for (size_t ci = 0; ci < a->work.n && st == MESH_OK && r.why == 'e' && deleted > 0; ci++) {
            const mesh_contract_t *wc = a->work.v[ci]->c;
            for (size_t k = 0; k < wc->nproducts && st == MESH_OK; k++) {
                const mesh_product_t *ap = &wc->products[k];
                if (ap->derive && ap->derive->kind == MESH_DERIVE_AGGREGATE &&
                    strcmp(ap->derive->source, pp->name) == 0) {
                    int64_t marks = 0;
                    st = mesh_store_cagg_erased(d->store, ap, pp, &r.d, &marks, err);
                    d->cagg_dirty = true;
                }
            }
        }
        if (st == MESH_OK) {
            /* a stream record's writer reads rres (its item is the stream's) */
            if (it)
                it->res.rows = (size_t)deleted;
            else
                a->rres.rows = (size_t)deleted;
        }
        return st;
    }
    case K_REFRESH: {
        size_t nl = n > 2 ? p[2] : 0;
        if (n < 3 || (p[1] != 'f' && p[1] != 'i') || nl == 0 || nl > MESH_NAME_MAX ||
            n < 3 + nl + 9)
            return mesh_err_set(err, MESH_CORRUPT, "log record %llu: a bad refresh",
                                (unsigned long long)seq);
        char name[MESH_NAME_MAX + 1], col[MESH_NAME_MAX + 1] = "";
        memcpy(name, p + 3, nl);
        name[nl] = '\0';
        size_t off = 3 + nl + 8;
        int64_t since = (int64_t)le64(p + 3 + nl);
        if (p[1] == 'i') {
            size_t cl = p[off];
            if (cl == 0 || cl > MESH_NAME_MAX || n < off + 1 + cl + 1)
                return mesh_err_set(err, MESH_CORRUPT, "log record %llu: a bad refresh",
                                    (unsigned long long)seq);
            memcpy(col, p + off + 1, cl);
            col[cl] = '\0';
            off += 1 + cl;
        }
        if (p[off] != K_BATCH)
            return mesh_err_set(err, MESH_CORRUPT, "log record %llu: a bad refresh",
                                (unsigned long long)seq);
        const mesh_product_t *pp = clist_product(&a->work, name, NULL);
        if (pp == NULL || pp->derive == NULL || pp->derive->kind != MESH_DERIVE_SQL)
            return mesh_err_set(err, MESH_NOT_FOUND, "no product %s.%s derived by SQL", d->name,
                                name);
        int64_t deleted = 0;
        if (p[1] == 'f')
            st = mesh_store_truncate(d->store, pp, &deleted, err);
        else
            st = mesh_store_delete_since(d->store, pp, col, since, &deleted, err);
        if (st != MESH_OK)
            return st;
        mesh_batch_t b;
        char idem[256];
        mesh_batch_init(&b, d->name, MESH_BATCH_DEFAULT_LIMITS);
        b.limits.max_rows = SIZE_MAX;
        b.limits.max_arena = SIZE_MAX;
        const uint8_t *bp = p + off;
        size_t bn = n - off;
        st = mesh_batch_decode(bp + 1, bn - 1, work_lookup, a, &b, idem, sizeof idem, err);
        for (size_t i = 0; st == MESH_OK && i < b.nparts; i++)
            if (b.parts[i].product != pp)
                st = mesh_err_set(err, MESH_CORRUPT,
                                  "log record %llu: a refresh of %s holds "
                                  "rows of another product",
                                  (unsigned long long)seq, name);
        mesh_apply_result_t res;
        memset(&res, 0, sizeof res);
        if (st == MESH_OK && b.nparts)
            st = mesh_store_apply_batch(d->store, seq, &b, NULL, &res, err);
        mesh_batch_free(&b);
        if (st == MESH_OK) {
            if (it)
                it->res.rows = res.rows;
            else
                a->rres.rows = res.rows;
        }
        return st;
    }
    default:
        return mesh_err_set(err, MESH_CORRUPT, "log record %llu has unknown kind 0x%02x",
                            (unsigned long long)seq, p[0]);
    }
}

/* ---- rule states (decision 0028) ---- */

/* Persists the dirty rule states in the open transaction as those of log position seq. */
static mesh_status_t rules_persist_at(mesh_domain_t *d, uint64_t seq, mesh_err_t *err)
{
    mesh_status_t st = mesh_rules_persist(d->rules, err);
    if (st == MESH_OK)
        st = mesh_store_meta_put(d->store, "rules_clean", (int64_t)seq, err);
    return st;
}

/* Between groups: the dirty rule states go to the store in a transaction of their own, as
 * those of the applied position, which lets the log be trimmed up to it. force: also when
 * nothing changed (at open, for a store without a recorded position). */
static mesh_status_t rules_checkpoint(mesh_domain_t *d, bool force, mesh_err_t *err)
{
    uint64_t applied = mesh_store_applied_seq(d->store);
    if (!force && !mesh_rules_dirty(d->rules) && mesh_store_rules_clean(d->store) >= applied)
        return MESH_OK;
    mesh_status_t st = mesh_store_begin(d->store, err);
    if (st != MESH_OK)
        return st;
    if ((st = rules_persist_at(d, applied, err)) == MESH_OK)
        st = mesh_store_commit(d->store, applied, err);
    else
        mesh_store_rollback(d->store);
    if (st != MESH_OK)
        mesh_rules_mark_dirty(d->rules); /* not written after all */
    return st;
}

typedef struct reeval {
    applier_t *a;
    uint64_t upto;
    mesh_err_t *err;
} reeval_t;

/* Re-evaluates one committed record with the rules replaying: a plain batch or tick that
 * the store applied (the other kinds persist the states, so none is after rules_clean). */
static mesh_status_t reeval_record(applier_t *a, uint64_t seq, const uint8_t *p, size_t n,
                                   const mesh_batch_t *decoded, mesh_err_t *err)
{
    mesh_domain_t *d = a->d;
    if (n == 0 || (p[0] != K_BATCH && p[0] != K_TICK) || mesh_store_unapplied(d->store, seq))
        return MESH_OK;
    if (p[0] == K_TICK) {
        int64_t now;
        if (n != 9)
            return mesh_err_set(err, MESH_CORRUPT, "tick record %llu: bad length",
                                (unsigned long long)seq);
        memcpy(&now, p + 1, 8);
        return mesh_rules_tick(d->rules, seq, now, rules_lookup, a, err);
    }
    if (decoded)
        return mesh_rules_batch(d->rules, seq, decoded, rules_lookup, a, err);
    mesh_batch_t b;
    char idem[256];
    mesh_batch_init(&b, d->name, MESH_BATCH_DEFAULT_LIMITS);
    mesh_status_t st = mesh_batch_decode(p + 1, n - 1, work_lookup, a, &b, idem, sizeof idem, err);
    if (st == MESH_OK)
        st = mesh_rules_batch(d->rules, seq, &b, rules_lookup, a, err);
    mesh_batch_free(&b);
    return st;
}

static mesh_status_t reeval_one(void *arg, uint64_t seq, const uint8_t *p, size_t n)
{
    reeval_t *r = arg;
    if (seq > r->upto)
        return MESH_OK;
    return reeval_record(r->a, seq, p, n, NULL, r->err);
}

/* After mesh_rules_rollback/abort reloaded the persisted states: the records after them, up
 * to upto, are evaluated again (replaying), so memory holds the states of upto. */
static mesh_status_t rules_rebuild(applier_t *a, uint64_t upto, mesh_err_t *err)
{
    mesh_domain_t *d = a->d;
    uint64_t from = mesh_store_rules_clean(d->store);
    if (from >= upto)
        return MESH_OK;
    mesh_err_clear(err);
    mesh_status_t st = mesh_rules_replay_begin(d->rules, err);
    if (st != MESH_OK)
        return st;
    reeval_t r = {.a = a, .upto = upto, .err = err};
    mesh_err_t e2;
    mesh_err_clear(&e2);
    st = mesh_dlog_replay(d->log, from, reeval_one, &r, &e2);
    if (st != MESH_OK && err->msg[0] == '\0')
        *err = e2;
    mesh_rules_replay_end(d->rules);
    LOG_INFO("domain", "%s: rule states rebuilt from log records %llu..%llu", d->name,
             (unsigned long long)from + 1, (unsigned long long)upto);
    return st;
}

/* Runs a record in a savepoint so its refusal undoes only its own effects. */
static bool store_failure(mesh_status_t st);
static mesh_status_t rules_rebuild(applier_t *a, uint64_t upto, mesh_err_t *err);

static mesh_status_t apply_in_savepoint(applier_t *a, uint64_t seq, const uint8_t *p, size_t n,
                                        item_t *it, mesh_err_t *err)
{
    clist_t before;
    mesh_status_t st = clist_copy(&a->work, &before);
    if (st != MESH_OK)
        return mesh_err_set(err, st, "out of memory");
    bool changed_before = a->work_changed;
    if (it == NULL)
        memset(&a->rres, 0, sizeof a->rres);
    st = mesh_store_apply_savepoint_begin(a->d->store, err);
    if (st == MESH_OK) {
        mesh_rules_record_begin(a->d->rules);
        st = apply_record(a, seq, p, n, it, err);
        if (st == MESH_OK) {
            st = mesh_store_apply_savepoint_end(a->d->store, true, err);
        } else {
            mesh_store_apply_savepoint_end(a->d->store, false, NULL);
            mesh_err_t e2;
            bool reloaded = false;
            if (mesh_rules_rollback(a->d->rules, &reloaded, &e2) != MESH_OK ||
                (reloaded && rules_rebuild(a, seq - 1, &e2) != MESH_OK)) {
                /* the rules' memory may not match the store: take no more writes */
                LOG_ERROR("domain",
                          "%s: rules: rebuilding state: %s; the domain is now "
                          "read-only until meshd restarts",
                          a->d->name, e2.msg);
                a->d->broken = true;
            }
            clist_free(&a->work);
            a->work = before;
            memset(&before, 0, sizeof before);
            a->work_changed = changed_before;
        }
    }
    clist_free(&before);
    /* a logged batch that changed nothing (refused, or a duplicate of an applied one) must
     * not have its time-series rows buffered again by a replay of the store's records */
    bool batch = n > 0 && (p[0] == K_BATCH ||
                           (p[0] == K_ORIGIN && n > ORIGIN_HDR && p[ORIGIN_HDR] == K_BATCH));
    if (n > 0 && (batch || p[0] == K_TICK || p[0] == K_DISPOSE) && !store_failure(st)) {
        bool dup = batch && (it ? it->res.duplicate : a->rres.duplicate);
        if (st != MESH_OK || dup) {
            mesh_err_t e2;
            mesh_status_t mst = mesh_store_mark_unapplied(a->d->store, seq, &e2);
            if (mst != MESH_OK) {
                *err = e2;
                return mst;
            }
        }
    }
    return st;
}

/* The stream record header of logged record p[0..n) ('S' or 'P'): *off, where the record as
 * the stream carried it (or the group's origin record) starts; 0 when it is neither. */
static size_t stream_off(const uint8_t *p, size_t n)
{
    if (n >= 10 && p[0] == K_STREAM)
        return 9;
    if (n > PART_HDR && p[0] == K_PART)
        return PART_HDR;
    return 0;
}

/* Applies a logged record: a stream record ('S', or 'P' for one record of a group) once, when
 * its stream sequence is new, with the sequence stored in the same transaction (outside the
 * record's savepoint, so a refused record counts as applied, as everywhere else; a group's
 * with its last record); any other record in its savepoint. *skipped: a stream record already
 * applied. */
static mesh_status_t apply_logged(applier_t *a, uint64_t seq, const uint8_t *p, size_t n,
                                  item_t *it, bool *skipped, mesh_err_t *err)
{
    *skipped = false;
    if (n == 0 || (p[0] != K_STREAM && p[0] != K_PART)) {
        mesh_status_t st = apply_in_savepoint(a, seq, p, n, it, err);
        if (store_failure(st) || (n > 0 && (p[0] == K_BATCH || p[0] == K_TICK)))
            return st;
        /* rules, contracts, alert operations: the rule states are persisted with them, so
         * the records that replay re-evaluates are plain batches and ticks only, under the
         * contracts and rules of now */
        mesh_err_t e2;
        mesh_status_t pst = rules_persist_at(a->d, seq, &e2);
        if (pst != MESH_OK) {
            *err = e2;
            return pst;
        }
        return st;
    }
    size_t off = stream_off(p, n);
    if (off == 0 || (p[0] == K_PART && p[off] != K_ORIGIN))
        return mesh_err_set(err, MESH_CORRUPT, "stream record %llu: bad length",
                            (unsigned long long)seq);
    uint64_t sseq = rd64(p + 1);
    /* a group's record: the group's fingerprint, and whether the stream sequence is stored */
    bool last = p[0] == K_STREAM || p[17] != 0;
    uint64_t fp = p[0] == K_PART ? rd64(p + 9) : a->cur_fp ? a->cur_fp : mesh_fp64(p + 9, n - 9);
    if (sseq <= a->repl_seq) {
        *skipped = true;
        bool batch = p[off] == K_BATCH || p[off] == K_DISPOSE ||
                     (p[off] == K_ORIGIN && n > off + ORIGIN_HDR);
        return batch ? mesh_store_mark_unapplied(a->d->store, seq, err) : MESH_OK;
    }
    memset(&a->rres, 0, sizeof a->rres);
    mesh_status_t st = apply_in_savepoint(a, seq, p + off, n - off, NULL, err);
    if (store_failure(st))
        return st;
    mesh_err_t e2;
    mesh_status_t mst = MESH_OK;
    if (n > off + ORIGIN_HDR && p[off] == K_ORIGIN) {
        /* the origin's chain moves even when the batch was refused (refused everywhere) */
        char key[32];
        origin_key(rd64(p + off + 1), key, sizeof key);
        mst = mesh_store_meta_put(a->d->store, key, (int64_t)rd64(p + off + 9), &e2);
    }
    if (mst == MESH_OK && last)
        mst = mesh_store_meta_put(a->d->store, REPL_META, (int64_t)sseq, &e2);
    /* what was applied at sseq: the replicator compares it with the stream (divergence) */
    if (mst == MESH_OK && last)
        mst = mesh_store_repl_note(a->d->store, sseq, a->cur_id, fp, &e2);
    if (mst != MESH_OK) {
        *err = e2;
        return mst;
    }
    if (last)
        a->repl_seq = sseq;
    /* a replica persists the states with every stream record (replay cannot tell which
     * stream records applied); not with one skipped before it was logged (seq 0): it changed
     * nothing, and a position of 0 would make the next replay start before the log's start */
    if (seq != 0 && (mst = rules_persist_at(a->d, seq, &e2)) != MESH_OK) {
        *err = e2;
        return mst;
    }
    return st;
}

/* After a commit: the working contracts become the domain's current ones, and the watchers
 * of the time series written learn it. */
static void publish(applier_t *a)
{
    mesh_domain_t *d = a->d;
    flush_marks(a);
    if (!a->work_changed)
        return;
    clist_t copy;
    if (clist_copy(&a->work, &copy) != MESH_OK)
        return;
    pthread_mutex_lock(&d->state_lock);
    clist_free(&d->current);
    d->current = copy;
    pthread_mutex_unlock(&d->state_lock);
    a->work_changed = false;
    if (d->changed)
        d->changed(d->changed_arg, d);
}

static mesh_status_t applier_init(applier_t *a, mesh_domain_t *d)
{
    a->d = d;
    a->work_changed = false;
    a->repl_seq = atomic_load(&d->repl_seq);
    a->cur_id = NULL;
    a->cur_fp = 0;
    a->nmarks = 0;
    a->marks_over = false;
    memset(&a->rres, 0, sizeof a->rres);
    pthread_mutex_lock(&d->state_lock);
    mesh_status_t st = clist_copy(&d->current, &a->work);
    pthread_mutex_unlock(&d->state_lock);
    return st;
}

/* Hands the alert transitions of a committed group to the event callback. */
static void deliver_events(mesh_domain_t *d)
{
    mesh_rule_event_t *ev = mesh_rules_take_events(d->rules);
    if (ev == NULL)
        return;
    if (d->events)
        d->events(d->events_arg, d, ev);
    else
        mesh_rule_event_free(ev);
}

/* ---- replay ---- */

typedef struct replay_ctx {
    applier_t a;
    uint64_t last;
    uint64_t rules_clean; /* records above it (and applied) are re-evaluated, replaying */
    uint64_t a_applied;   /* the applied position at the start */
    size_t pending;
    mesh_err_t *err;
} replay_ctx_t;

static mesh_status_t replay_one(void *arg, uint64_t seq, const uint8_t *p, size_t n)
{
    replay_ctx_t *r = arg;
    mesh_domain_t *d = r->a.d;
    mesh_err_t e;
    mesh_err_clear(&e);
    mesh_status_t st;
    uint64_t applied = mesh_store_applied_seq(d->store);
    if (seq <= applied) {
        /* the store has this record; only rows of time series that were still in memory at
         * the crash are missing, and only from batches; and rule states after the persisted
         * ones, rebuilt by evaluating again (no writes, no events: decision 0028) */
        bool rules = seq > r->rules_clean;
        size_t off = stream_off(p, n);
        if (off) {
            p += off;
            n -= off;
            rules = false; /* stream records persist the states: never after rules_clean */
        }
        if (n > ORIGIN_HDR && p[0] == K_ORIGIN) {
            p += ORIGIN_HDR;
            n -= ORIGIN_HDR;
        }
        if (n > 0 && p[0] == K_DISPOSE) {
            /* rows of time series replayed into memory that this record had removed (unless
             * it was refused, or a stream duplicate skipped) */
            if (mesh_store_unapplied(d->store, seq))
                return MESH_OK;
            dispose_rec_t dr;
            const mesh_product_t *pp;
            if (dispose_decode(seq, p, n, &dr, &e) != MESH_OK ||
                (pp = clist_product(&r->a.work, dr.name, NULL)) == NULL)
                return MESH_OK;
            int64_t gone = 0;
            st = mesh_store_dispose(d->store, pp, &dr.d, true, &gone, &e);
            if (st != MESH_OK)
                mesh_err_set(r->err, st, "%s", e.msg);
            return st;
        }
        if (n == 0 || (p[0] != K_BATCH && p[0] != K_TICK) || mesh_store_unapplied(d->store, seq))
            return MESH_OK;
        if (p[0] == K_TICK) {
            st = rules ? reeval_record(&r->a, seq, p, n, NULL, &e) : MESH_OK;
            if (st != MESH_OK)
                mesh_err_set(r->err, st, "%s", e.msg);
            return st;
        }
        mesh_batch_t b;
        char idem[256];
        mesh_batch_init(&b, d->name, MESH_BATCH_DEFAULT_LIMITS);
        st = mesh_batch_decode(p + 1, n - 1, work_lookup, &r->a, &b, idem, sizeof idem, &e);
        if (st == MESH_OK)
            st = mesh_store_replay_batch(d->store, seq, &b, &e);
        if (st == MESH_OK && rules)
            st = reeval_record(&r->a, seq, p, n, &b, &e);
        mesh_batch_free(&b);
        if (st != MESH_OK)
            mesh_err_set(r->err, st, "%s", e.msg);
        return st;
    }
    mesh_rules_replay_end(d->rules); /* the records from here on are applied normally */
    bool skipped;
    st = apply_logged(&r->a, seq, p, n, NULL, &skipped, &e);
    if (st == MESH_CORRUPT || st == MESH_IO || st == MESH_NOSPACE || st == MESH_NOMEM) {
        mesh_err_set(r->err, st, "%s", e.msg);
        return st;
    }
    if (st != MESH_OK)
        LOG_INFO("domain", "replay of %s seq %llu: refused as before: %s", d->name,
                 (unsigned long long)seq, e.msg);
    r->last = seq;
    if (++r->pending >= 256) {
        if ((st = mesh_store_commit(d->store, seq, r->err)) != MESH_OK)
            return st;
        atomic_store(&d->repl_seq, r->a.repl_seq);
        publish(&r->a);
        deliver_events(d);
        r->pending = 0;
        if ((st = mesh_store_begin(d->store, r->err)) != MESH_OK)
            return st;
    }
    return MESH_OK;
}

static mesh_status_t replay(mesh_domain_t *d, mesh_err_t *err)
{
    replay_ctx_t r = {.last = mesh_store_applied_seq(d->store),
                      .rules_clean = mesh_store_rules_clean(d->store),
                      .a_applied = mesh_store_applied_seq(d->store),
                      .err = err};
    uint64_t from = mesh_store_replay_from(d->store);
    if (mesh_dlog_last_seq(d->log) <= from)
        return MESH_OK;
    mesh_status_t st = applier_init(&r.a, d);
    if (st != MESH_OK)
        return mesh_err_set(err, st, "out of memory");
    if (r.rules_clean < r.last && (st = mesh_rules_replay_begin(d->rules, err)) != MESH_OK) {
        clist_free(&r.a.work);
        return st;
    }
    if ((st = mesh_store_begin(d->store, err)) == MESH_OK) {
        st = mesh_dlog_replay(d->log, from, replay_one, &r, err);
        mesh_rules_replay_end(d->rules);
        if (st == MESH_OK)
            st = mesh_store_commit(d->store, r.last, err);
        else
            mesh_store_rollback(d->store);
    }
    if (st == MESH_OK) {
        atomic_store(&d->repl_seq, r.a.repl_seq);
        publish(&r.a);
        deliver_events(d);
        LOG_INFO("domain", "%s: replayed log records %llu..%llu", d->name,
                 (unsigned long long)from + 1, (unsigned long long)mesh_dlog_last_seq(d->log));
        if (r.rules_clean < r.a_applied)
            LOG_INFO("domain",
                     "%s: rule states: re-evaluated log records %llu..%llu (committed before: "
                     "nothing written or sent again)",
                     d->name, (unsigned long long)r.rules_clean + 1,
                     (unsigned long long)r.a_applied);
    }
    clist_free(&r.a.work);
    return st;
}

/* Loads the in-memory state of every product (time series) before the log is replayed. */
static mesh_status_t attach_products(mesh_domain_t *d, mesh_err_t *err)
{
    mesh_status_t st = MESH_OK;
    for (size_t i = 0; i < d->current.n && st == MESH_OK; i++) {
        const mesh_contract_t *c = d->current.v[i]->c;
        for (size_t k = 0; k < c->nproducts && st == MESH_OK; k++)
            st = mesh_store_attach(d->store, &c->products[k], err);
    }
    return st;
}

/* ---- keys ---- */

static void ring_clear(mesh_keyring_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        mesh_key_unref(r->keys[i]);
    memset(r, 0, sizeof *r);
}

/* The ring from the key file: every key but a "next" one, the current one for appends. */
static void ring_build(mesh_domain_t *d)
{
    ring_clear(&d->ring);
    for (size_t i = 0; i < d->kf.nkeys; i++) {
        if (d->kf.keys[i].state == MESH_KEY_NEXT)
            continue;
        d->ring.keys[d->ring.n++] = mesh_key_ref(d->kf.keys[i].key);
        if (d->kf.keys[i].state == MESH_KEY_CURRENT)
            d->ring.current = d->kf.keys[i].gen;
    }
    atomic_store(&d->info_gen, d->ring.current);
}

static void db_file(const mesh_domain_t *d, uint32_t gen, char *out, size_t cap)
{
    if (gen == 0)
        snprintf(out, cap, "%s/data.db", d->dir);
    else
        snprintf(out, cap, "%s/data.%u.db", d->dir, (unsigned)gen);
}

/* Deletes a database file and its companions (missing ones are fine). */
/* The generation of a database file name ("data.db": 0, "data.<gen>.db"), or -1. */
static int64_t db_gen_of(const char *name)
{
    if (strcmp(name, "data.db") == 0)
        return 0;
    size_t n = strlen(name);
    uint64_t g;
    if (n < 9 || strncmp(name, "data.", 5) != 0 || strcmp(name + n - 3, ".db") != 0 ||
        mesh_parse_u64(name + 5, n - 8, &g) != MESH_OK || g == 0 || g > UINT32_MAX)
        return -1;
    return (int64_t)g;
}

/* Database files of the domain's directory whose generation the key file does not list
 * (left by an interrupted re-encryption): counted, and deleted when remove is set. */
static size_t stray_db_files(mesh_domain_t *d, bool remove)
{
    DIR *dd = opendir(d->dir);
    struct dirent *e;
    size_t n = 0;
    while (dd && (e = readdir(dd)) != NULL) {
        int64_t g = db_gen_of(e->d_name);
        if (g < 0)
            continue;
        bool known = false;
        for (size_t i = 0; i < d->kf.nkeys; i++)
            known |= d->kf.keys[i].gen == (uint32_t)g;
        if (known)
            continue;
        n++;
        if (remove) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", d->dir, e->d_name);
            mesh_unlink_db(p);
            LOG_WARN("domain", "%s: removed %s (no key of the domain seals it)", d->name, p);
        }
    }
    if (dd)
        closedir(dd);
    return n;
}

static size_t kf_find(const mesh_keyfile_t *kf, mesh_key_state_t state)
{
    for (size_t i = 0; i < kf->nkeys; i++)
        if (kf->keys[i].state == state)
            return i;
    return kf->nkeys;
}

static void kf_remove(mesh_keyfile_t *kf, size_t i)
{
    mesh_key_unref(kf->keys[i].key);
    memmove(&kf->keys[i], &kf->keys[i + 1], (kf->nkeys - i - 1) * sizeof kf->keys[0]);
    kf->nkeys--;
    memset(&kf->keys[kf->nkeys], 0, sizeof kf->keys[0]);
}

static mesh_status_t kf_save(mesh_domain_t *d, const mesh_kek_t *const *keks, size_t n,
                             mesh_err_t *err)
{
    char path[4096], label[96];
    snprintf(path, sizeof path, "%s/key", d->dir);
    snprintf(label, sizeof label, "domain:%s", d->name);
    return mesh_keyfile_save(path, &d->kf, keks, n, label, err);
}

/* Loads (or, for a new domain, creates) DIR/key, settles what an interrupted KEK rotation or
 * re-encryption left, and attaches the current key to the current database file. */
static mesh_status_t keys_open(mesh_domain_t *d, mesh_err_t *err)
{
    char kpath[4096], db[4096], label[96];
    snprintf(kpath, sizeof kpath, "%s/key", d->dir);
    snprintf(label, sizeof label, "domain:%s", d->name);
    db_file(d, 0, db, sizeof db);
    if (d->kek == NULL) {
        if (access(kpath, F_OK) == 0)
            return mesh_err_set(err, MESH_INVALID,
                                "the domain is encrypted (%s exists) but encryption is off: "
                                "start meshd with encryption on and its key-encryption key",
                                kpath);
        return (d->db_path = strdup(db)) ? MESH_OK : mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    bool other = false;
    mesh_status_t st = mesh_keyfile_load(kpath, d->kek, label, &d->kf, &other, err);
    const mesh_kek_t *keks[] = {d->kek};
    if (st == MESH_NOT_FOUND) {
        mesh_dbfile_t kind = mesh_crypt_probe(db, NULL);
        if (kind == MESH_DBFILE_PLAIN)
            return mesh_err_set(err, MESH_INVALID,
                                "the domain was created without encryption (%s is in clear): "
                                "start meshd with encryption=off for this data directory, or "
                                "move its data into a new, encrypted node",
                                db);
        if (kind != MESH_DBFILE_ABSENT && kind != MESH_DBFILE_EMPTY)
            return mesh_err_set(err, MESH_CORRUPT,
                                "its key file %s is missing: the database cannot be decrypted "
                                "without it (restore it from where it was backed up)",
                                kpath);
        memset(&d->kf, 0, sizeof d->kf);
        d->kf.kind = 'D';
        d->kf.nkeys = 1;
        d->kf.keys[0].state = MESH_KEY_CURRENT;
        if (mesh_key_new(0, &d->kf.keys[0].key) != MESH_OK)
            return mesh_err_set(err, MESH_IO, "no random bytes for a data key");
        memcpy(d->kf.keys[0].file_id, mesh_key_file_id(d->kf.keys[0].key), MESH_FILE_ID_BYTES);
        if ((st = kf_save(d, keks, 1, err)) != MESH_OK)
            return st;
    } else if (st != MESH_OK) {
        return st;
    } else if (d->kf.kind != 'D') {
        return mesh_err_set(err, MESH_CORRUPT, "%s is not a domain's key file", kpath);
    }
    bool changed = other; /* a wrap for another KEK: an interrupted KEK rotation */
    size_t i;
    while ((i = kf_find(&d->kf, MESH_KEY_NEXT)) < d->kf.nkeys) {
        /* a re-encryption that did not reach its commit point: its copy goes */
        char p[4096];
        db_file(d, d->kf.keys[i].gen, p, sizeof p);
        mesh_unlink_db(p);
        LOG_WARN("domain", "%s: an interrupted re-encryption left %s; removed", d->name, p);
        kf_remove(&d->kf, i);
        changed = true;
    }
    if (changed && (st = kf_save(d, keks, 1, err)) != MESH_OK)
        return st;
    if (other)
        LOG_INFO("domain", "%s: key file now wrapped under the configured KEK only", d->name);
    ring_build(d);
    i = kf_find(&d->kf, MESH_KEY_CURRENT);
    db_file(d, d->kf.keys[i].gen, db, sizeof db);
    if ((d->db_path = strdup(db)) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    if (access(db, F_OK) != 0 && stray_db_files(d, false) > 0)
        return mesh_err_set(err, MESH_CORRUPT,
                            "its key file names %s (data key generation %u), which does not "
                            "exist, while another generation's database does: the key file is "
                            "not the domain's current one (restored from an older copy?)",
                            db, (unsigned)d->kf.keys[i].gen);
    stray_db_files(d, true);
    uint8_t fid[MESH_FILE_ID_BYTES];
    if (mesh_crypt_probe(db, fid) == MESH_DBFILE_ENCRYPTED &&
        memcmp(fid, d->kf.keys[i].file_id, MESH_FILE_ID_BYTES) != 0)
        return mesh_err_set(err, MESH_CORRUPT,
                            "%s does not belong to the domain's current data key (another "
                            "file id): was it copied from elsewhere?",
                            db);
    if ((st = mesh_crypt_attach(db, d->kf.keys[i].key, err)) != MESH_OK)
        return st;
    d->attached = true;
    return MESH_OK;
}

/*
 * Drops retired keys once no log record needs them: every record is then in the store
 * (flushed and trimmed). may_wait: at open (no readers, may flush everything); from a
 * checkpoint only when the log already holds nothing under them. Runs on the writer thread;
 * skipped while a key operation holds key_lock.
 */
static void retire_old_keys(mesh_domain_t *d, bool may_wait)
{
    if (kf_find(&d->kf, MESH_KEY_RETIRED) == d->kf.nkeys)
        return;
    if (pthread_mutex_trylock(&d->key_lock) != 0)
        return;
    mesh_err_t e;
    mesh_err_clear(&e);
    if (may_wait && !mesh_dlog_only_gen(d->log, d->ring.current)) {
        mesh_status_t st = rules_checkpoint(d, false, &e);
        if (st == MESH_OK)
            st = mesh_store_checkpoint(d->store, 2, 0, &e);
        if (st == MESH_OK || st == MESH_BUSY)
            mesh_dlog_trim(d->log, trim_point(d), &e);
    }
    if (mesh_dlog_only_gen(d->log, d->ring.current)) {
        size_t i;
        while ((i = kf_find(&d->kf, MESH_KEY_RETIRED)) < d->kf.nkeys) {
            char p[4096];
            db_file(d, d->kf.keys[i].gen, p, sizeof p);
            mesh_unlink_db(p);
            kf_remove(&d->kf, i);
        }
        const mesh_kek_t *keks[] = {d->kek};
        if (kf_save(d, keks, 1, &e) == MESH_OK) {
            ring_build(d);
            mesh_fsync_dir(d->dir);
            LOG_INFO("domain", "%s: old data keys retired", d->name);
        } else {
            LOG_WARN("domain", "%s: retiring old data keys: %s", d->name, e.msg);
        }
    }
    pthread_mutex_unlock(&d->key_lock);
}

/* ---- open / close ---- */

static void publish_info(mesh_domain_t *d);
static void domain_close(mesh_domain_t *d, bool checkpoint);

static mesh_status_t load_contract(void *arg, const char *yaml, size_t n)
{
    mesh_domain_t *d = arg;
    mesh_contract_t *c;
    mesh_err_t e;
    if (mesh_contract_parse(yaml, n, &c, &e) != MESH_OK) {
        LOG_ERROR("domain", "%s: stored contract no longer parses: %s", d->name, e.msg);
        return MESH_CORRUPT;
    }
    return clist_put(&d->current, c);
}

mesh_status_t mesh_domain_open(const char *dir, const char *name, const mesh_domain_opts_t *opts,
                               mesh_domain_changed_fn changed, void *arg, mesh_domain_t **out,
                               mesh_err_t *err)
{
    mesh_domain_t *d = calloc(1, sizeof *d);
    if (d == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    pthread_mutex_init(&d->state_lock, NULL);
    pthread_mutex_init(&d->q_lock, NULL);
    pthread_mutex_init(&d->key_lock, NULL);
    pthread_cond_init(&d->q_cond, NULL);
    pthread_mutex_init(&d->repl_lock, NULL);
    pthread_cond_init(&d->repl_cond, NULL);
    d->changed = changed;
    d->changed_arg = arg;
    d->events = opts ? opts->events : NULL;
    d->events_arg = opts ? opts->events_arg : NULL;
    d->refresh = opts ? opts->refresh : NULL;
    d->refresh_arg = opts ? opts->refresh_arg : NULL;
    d->idem_ttl_ns = opts && opts->idem_ttl_ns ? opts->idem_ttl_ns : 86400 * MESH_NS_PER_SEC;
    d->flush_age_ns = opts && opts->flush_age_ns ? opts->flush_age_ns : 600 * MESH_NS_PER_SEC;
    mesh_status_t st;
    char path[4096];
    if ((d->name = strdup(name)) == NULL || (d->dir = strdup(dir)) == NULL) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        goto err;
    }
    if ((st = mesh_mkdirs(dir, 0700, err)) != MESH_OK)
        goto err;
    d->kek = opts ? opts->kek : NULL;
    d->rekey_pages = opts && opts->rekey_pages > 0 ? opts->rekey_pages : REKEY_STEP_PAGES;
    d->space = opts ? opts->space : NULL;
    if ((st = keys_open(d, err)) != MESH_OK)
        goto err;
    mesh_store_opts_t so = {.sync_full = opts ? opts->sync_full : false,
                            .cache_kib = opts ? opts->cache_kib : 0};
    if ((st = mesh_store_open(d->db_path, &so, &d->store, err)) != MESH_OK)
        goto err;
    int64_t rs = 0;
    if ((st = mesh_store_meta_get(d->store, REPL_META, &rs, err)) != MESH_OK)
        goto err;
    atomic_store(&d->repl_seq, (uint64_t)rs);
    int64_t ob = 0, oid = 0;
    if ((st = mesh_store_meta_get(d->store, OUTBOX_META, &ob, err)) != MESH_OK ||
        (st = mesh_store_meta_get(d->store, ORIGIN_META, &oid, err)) != MESH_OK)
        goto err;
    atomic_store(&d->outbox, (uint64_t)ob);
    atomic_store(&d->outbox_on, oid != 0); /* published once: async, keep the log */
    atomic_store(&d->origin_id, (uint64_t)oid);
    atomic_store(&d->last_batch, UINT64_MAX);
    if ((st = mesh_store_load_contracts(d->store, load_contract, d, err)) != MESH_OK) {
        if (err && err->msg[0] == '\0')
            mesh_err_set(err, st, "%s: a stored contract is damaged", name);
        goto err;
    }
    if ((st = attach_products(d, err)) != MESH_OK)
        goto err;
    if ((st = mesh_rules_open(d->store, d->name, &d->rules, err)) != MESH_OK)
        goto err;
    /* actions owed when the node last stopped (or crashed) run again, before new ones */
    mesh_rule_event_t *owed = mesh_rules_take_recovered(d->rules);
    if (owed && d->events)
        d->events(d->events_arg, d, owed);
    else
        mesh_rule_event_free(owed);
    snprintf(path, sizeof path, "%s/log", dir);
    if ((st = mesh_dlog_open_sealed(path, mesh_store_applied_seq(d->store) + 1,
                                    d->kek ? &d->ring : NULL, &d->log, err)) != MESH_OK)
        goto err;
    /* a store of an older meshd holds the states of its applied position: say so before
     * anything can make them older than that (a replay commits as it goes) */
    if (!mesh_store_rules_clean_recorded(d->store) &&
        (st = rules_checkpoint(d, true, err)) != MESH_OK)
        goto err;
    if ((st = replay(d, err)) != MESH_OK)
        goto err;
    /* nothing logged after the outbox position (a new copy, or all published): no batch of
     * this copy waits for the outbox, which a bootstrap asks before replacing it */
    if (mesh_dlog_last_seq(d->log) <= atomic_load(&d->outbox))
        atomic_store(&d->last_batch, atomic_load(&d->outbox));
    /* the rebuilt states go to the store, so the next start re-evaluates nothing. Not
     * needed for correctness (the log is kept back to rules_clean): a full disk must not
     * stop the open, the next checkpoint tries again */
    mesh_err_t ce;
    if (rules_checkpoint(d, false, &ce) != MESH_OK)
        LOG_WARN("domain", "%s: rule states not persisted after replay: %s", name, ce.msg);
    aggregates_catch_up(d, true); /* buckets left stale by a crash, and replayed batches' */
    if (d->kek)
        retire_old_keys(d, true); /* a re-encryption ended by a crash: finish its cleanup */
    publish_info(d);
    *out = d;
    return MESH_OK;
err:
    mesh_err_prefix(err, "domain %s: ", name);
    d->changed = NULL;
    /* no closing checkpoint: a failed open (a damaged record, a wrong key) changes nothing,
     * and must not flush a half-replayed state or trim the log */
    domain_close(d, false);
    return st;
}

static mesh_status_t settle_now(mesh_domain_t *d, mesh_err_t *err);

static void domain_close(mesh_domain_t *d, bool checkpoint)
{
    if (d == NULL)
        return;
    if (checkpoint && d->store && d->log && !d->broken) {
        /* everything buffered goes to chunks, so the next start replays nothing */
        mesh_err_t e;
        if (settle_now(d, &e) == MESH_OK && rules_checkpoint(d, false, &e) == MESH_OK &&
            mesh_store_checkpoint(d->store, 2, 0, &e) == MESH_OK)
            mesh_dlog_trim(d->log, trim_point(d), &e);
        else
            LOG_WARN("domain", "%s: closing checkpoint: %s", d->name, e.msg);
    }
    mesh_rules_close(d->rules);
    mesh_dlog_close(d->log);
    mesh_store_close(d->store);
    if (d->attached)
        mesh_crypt_detach(d->db_path);
    ring_clear(&d->ring);
    mesh_keyfile_clear(&d->kf);
    clist_free(&d->current);
    pthread_mutex_destroy(&d->state_lock);
    pthread_mutex_destroy(&d->q_lock);
    pthread_mutex_destroy(&d->key_lock);
    pthread_cond_destroy(&d->q_cond);
    pthread_mutex_destroy(&d->repl_lock);
    pthread_cond_destroy(&d->repl_cond);
    merged_clear(d);
    free(d->merged);
    free(d->db_path);
    free(d->name);
    free(d->dir);
    free(d);
}

void mesh_domain_close(mesh_domain_t *d)
{
    domain_close(d, true);
}

void mesh_domain_close_untrimmed(mesh_domain_t *d)
{
    domain_close(d, false);
}

/* ---- the writer ---- */

/* A write that ran into a full disk (ENOSPC from the log, SQLITE_FULL from the store, through
 * the encrypting VFS or not): says so in words that name the domain and the free space, and
 * tells the guard so that its next check reads the file system again. */
static void explain_nospace(mesh_domain_t *d, mesh_err_t *err)
{
    mesh_space_note_full(d->space);
    mesh_space_stats_t ss;
    mesh_space_stats(d->space, &ss);
    char fb[32], detail[sizeof err->msg];
    snprintf(detail, sizeof detail, "%s", err->msg);
    mesh_err_set(err, MESH_NOSPACE,
                 "domain %s: insufficient storage: the disk is full (%s free; %s); nothing was "
                 "written. Writes resume when space is freed; queries still work",
                 d->name, mesh_space_human(ss.free_bytes, fb), detail);
}

static void fail_items(item_t *it, item_t *end, mesh_status_t st, const mesh_err_t *err)
{
    for (; it != end; it = it->next) {
        if (it->unlogged)
            continue;
        it->st = st;
        it->err = *err;
    }
}

static bool store_failure(mesh_status_t st)
{
    return st == MESH_IO || st == MESH_NOSPACE || st == MESH_CORRUPT || st == MESH_NOMEM ||
           st == MESH_BUSY;
}

/* The store could not take the group: undo its log records so that what the writers are
 * told (failed) is what replay will do (nothing). */
static void abandon_group(mesh_domain_t *d, item_t *head, const mesh_dlog_mark_t *mark,
                          mesh_status_t st, const mesh_err_t *err)
{
    mesh_store_rollback(d->store);
    mesh_err_t e2, why = *err;
    if (st == MESH_NOSPACE)
        explain_nospace(d, &why);
    /* the log first: the rules' rebuild below reads it, and must not meet this group's
     * records (or a torn one) */
    if (mesh_dlog_rewind(d->log, mark, &e2) != MESH_OK) {
        LOG_ERROR("domain", "%s: %s; the domain is now read-only", d->name, e2.msg);
        d->broken = true;
    }
    bool reloaded = false;
    if (mesh_rules_abort(d->rules, &reloaded, &e2) != MESH_OK) {
        LOG_ERROR("domain", "%s: rules: rereading state: %s; the domain is now read-only", d->name,
                  e2.msg);
        d->broken = true;
    } else if (reloaded) {
        applier_t a;
        memset(&a, 0, sizeof a);
        mesh_status_t rst = applier_init(&a, d);
        if (rst == MESH_OK)
            rst = rules_rebuild(&a, mesh_store_applied_seq(d->store), &e2);
        else
            mesh_err_set(&e2, rst, "out of memory");
        clist_free(&a.work);
        if (rst != MESH_OK) {
            LOG_ERROR("domain", "%s: rules: rebuilding state: %s; the domain is now read-only",
                      d->name, e2.msg);
            d->broken = true;
        }
    }
    fail_items(head, NULL, st, &why);
}

static void publish_info(mesh_domain_t *d)
{
    atomic_store_explicit(&d->info_log_seq, mesh_dlog_last_seq(d->log), memory_order_relaxed);
    atomic_store_explicit(&d->info_log_bytes, mesh_dlog_size(d->log), memory_order_relaxed);
    atomic_store_explicit(&d->info_applied, mesh_store_applied_seq(d->store), memory_order_relaxed);
}

static bool control_item(const item_t *it)
{
    return it->kind == K_CHECKPOINT || it->kind == K_JOB;
}

static void retire_old_keys(mesh_domain_t *d, bool may_wait);

/* After a commit that applied stream records: their outcomes go to the ring, the stream
 * position moves, and writers waiting for it wake. */
static void repl_committed(mesh_domain_t *d, item_t *head, uint64_t repl_seq)
{
    pthread_mutex_lock(&d->repl_lock);
    for (item_t *it = head; it; it = it->next) {
        if (it->kind != K_STREAM || it->unlogged || it->skipped || it->payload.len < 10)
            continue;
        const uint8_t *p = (const uint8_t *)it->payload.data;
        uint64_t sseq = 0;
        for (int k = 8; k >= 1; k--)
            sseq = sseq << 8 | p[k];
        repl_outcome_t *o = &d->ring_out[sseq % REPL_RING];
        o->sseq = sseq;
        o->st = it->st;
        o->res = it->res;
        snprintf(o->msg, sizeof o->msg, "%s", it->st == MESH_OK ? "" : it->err.msg);
    }
    atomic_store(&d->repl_seq, repl_seq);
    pthread_cond_broadcast(&d->repl_cond);
    pthread_mutex_unlock(&d->repl_lock);
}

/*
 * This copy's own async records coming back from the stream (decision 0035). They were
 * applied when written; applying them again is skipping them, which needs no log record, no
 * sync and, here, no writer group: mesh_domain_apply_stream_many notes their sequences and
 * fingerprints in memory (skip_own), and the next transaction the writer commits anyway stores
 * them as a skipped record would have been stored (_repl_seen, _meta repl_seq): a write group
 * (settle_write), a checkpoint, a copy's start, or a small transaction of their own when they
 * are many or old (settle_now). A crash before that loses only the note: the consumer starts
 * again at the stored position, and the records come again and are skipped again, by the same
 * test (their origin is this copy's). The stored position never passes a record that was
 * neither applied nor skipped here: the notes are in stream order, and every record before
 * the first of them was applied (the consumer's group returned) or is one of them.
 */

/* On the writer thread, in its open transaction: stores the notes of skipped records above
 * *pos (their fingerprints, and *pos moved to the last of them). *n: the notes taken, which
 * settle_done removes once the transaction committed. */
static mesh_status_t settle_write(mesh_domain_t *d, uint64_t *pos, size_t *n, mesh_err_t *err)
{
    pthread_mutex_lock(&d->repl_lock);
    size_t k = d->nskip;
    pthread_mutex_unlock(&d->repl_lock);
    *n = 0;
    uint64_t last = *pos;
    for (size_t i = 0; i < k; i++) {
        if (d->skip[i].sseq <= last)
            continue;
        mesh_status_t st =
            mesh_store_repl_note(d->store, d->skip[i].sseq, NULL, d->skip[i].fp, err);
        if (st != MESH_OK)
            return st;
        last = d->skip[i].sseq;
    }
    if (last > *pos) {
        mesh_status_t st = mesh_store_meta_put(d->store, REPL_META, (int64_t)last, err);
        if (st != MESH_OK)
            return st;
        *pos = last;
    }
    *n = k;
    return MESH_OK;
}

/* After the commit of settle_write's transaction: its k notes are in the store. */
static void settle_done(mesh_domain_t *d, size_t k)
{
    if (k == 0)
        return;
    pthread_mutex_lock(&d->repl_lock);
    memmove(d->skip, d->skip + k, (d->nskip - k) * sizeof d->skip[0]);
    d->nskip -= k;
    d->skip_since = d->nskip ? mesh_mono_ns() : 0;
    pthread_mutex_unlock(&d->repl_lock);
}

/* On the writer thread, no transaction open: stores the notes in a transaction of their own
 * (nothing else changes). */
static mesh_status_t settle_now(mesh_domain_t *d, mesh_err_t *err)
{
    pthread_mutex_lock(&d->repl_lock);
    bool any = d->nskip > 0;
    pthread_mutex_unlock(&d->repl_lock);
    if (!any)
        return MESH_OK;
    uint64_t pos = atomic_load(&d->repl_seq);
    size_t k = 0;
    mesh_status_t st = mesh_store_begin(d->store, err);
    if (st != MESH_OK)
        return st;
    if ((st = settle_write(d, &pos, &k, err)) != MESH_OK) {
        mesh_store_rollback(d->store);
        return st;
    }
    if ((st = mesh_store_commit(d->store, mesh_store_applied_seq(d->store), err)) != MESH_OK)
        return st;
    settle_done(d, k);
    pthread_mutex_lock(&d->repl_lock);
    atomic_store(&d->repl_seq, pos);
    pthread_cond_broadcast(&d->repl_cond);
    pthread_mutex_unlock(&d->repl_lock);
    return MESH_OK;
}

static mesh_status_t settle_job(mesh_domain_t *d, void *arg, mesh_err_t *err)
{
    (void)arg;
    return settle_now(d, err);
}

/* Whether stream record p (as carried) is one of this copy's own async records (origin self,
 * 0: none yet), which it skips wherever it comes (decide_origins). */
static bool own_record(const uint8_t *p, size_t n, uint64_t self)
{
    if (self == 0 || mesh_group_origin(p, n) != self)
        return false;
    if (!mesh_group_is(p, n))
        return true;
    /* a group: only a well-formed one (a malformed one goes to the writer, which refuses it as
     * every replica does) */
    mesh_group_rec_t gv[MESH_GROUP_MAX];
    size_t gn;
    mesh_err_t e;
    return mesh_group_split(p, n, gv, &gn, &e) == MESH_OK;
}

/* Async origin records of a group: decided before they are logged, so that the log says what
 * was applied (replay then applies exactly those). A record is applied when it continues its
 * origin's chain (its previous origin sequence is the last one applied from that origin);
 * skipped (cut to its header) when it is this copy's own (applied when written), a duplicate
 * (at or below the chain), or ahead of a missing one (the origin publishes that one again,
 * then this one). The chains are the store's, plus this group's decisions. */
static void decide_origins(mesh_domain_t *d, item_t *head)
{
    struct seen {
        uint64_t origin, oseq;
    } seen[64];
    size_t nseen = 0;
    bool defer = false; /* an origin past the table: it and every later stream record wait */
    uint64_t self = atomic_load(&d->origin_id);
    for (item_t *it = head; it; it = it->next) {
        if (it->kind != K_STREAM)
            continue;
        if (defer) {
            it->st = mesh_err_set(&it->err, MESH_BUSY, "too many origins in one group; again");
            it->unlogged = true;
            continue;
        }
        const uint8_t *p = (const uint8_t *)it->payload.data;
        size_t off = stream_off(p, it->payload.len);
        if (off == 0 || it->payload.len <= off + ORIGIN_HDR || p[off] != K_ORIGIN)
            continue;
        uint64_t origin = rd64(p + off + 1), oseq = rd64(p + off + 9), prev = rd64(p + off + 17);
        bool apply = false;
        if (origin != self || self == 0) {
            size_t at = nseen;
            for (size_t i = 0; i < nseen; i++)
                if (seen[i].origin == origin)
                    at = i;
            if (at == nseen) {
                if (nseen == sizeof seen / sizeof seen[0]) {
                    defer = true;
                    it->st = mesh_err_set(&it->err, MESH_BUSY, "too many origins in one group");
                    it->unlogged = true;
                    continue;
                }
                int64_t wm = 0;
                char key[32];
                mesh_err_t e;
                origin_key(origin, key, sizeof key);
                if (mesh_store_meta_get(d->store, key, &wm, &e) != MESH_OK) {
                    defer = true; /* unreadable: this one and the rest come again */
                    it->st = mesh_err_set(&it->err, MESH_IO, "%s", e.msg);
                    it->unlogged = true;
                    continue;
                }
                seen[nseen++] = (struct seen){origin, (uint64_t)wm};
            }
            uint64_t wm = seen[at].oseq;
            /* prev < wm < oseq: wm came with a copy of the domain (origin_mark), the log
             * sequence the origin was at when it was taken, not one of its published records:
             * the copy holds every batch of that origin up to wm and none after, so the first
             * one after wm continues the chain whatever its previous one */
            apply = oseq > wm && prev <= wm;
            if (!apply && oseq > wm)
                LOG_WARN("domain",
                         "%s: origin %016llx record %llu skipped: it follows %llu, this node "
                         "has %llu (the origin publishes the missing one again)",
                         d->name, (unsigned long long)origin, (unsigned long long)oseq,
                         (unsigned long long)prev, (unsigned long long)wm);
            if (apply)
                seen[at].oseq = oseq;
        }
        if (!apply) {
            /* nothing to apply: only its stream sequence is stored, in the store's
             * transaction, without a log record or a sync (lost in a crash, it is delivered
             * and skipped again) */
            it->payload.len = off + ORIGIN_HDR;
            it->nolog = true;
        }
    }
}

/* Stream records of a group whose message id this node applied before, at another stream
 * sequence (or earlier in the group): not applied again, only their sequence is stored
 * (stream_dup). A rewind after a divergence (mesh_domain_stream_rewind) delivers again
 * records applied here; JetStream's duplicate window (2 min) ends, and a retry with the same
 * Idempotency-Key is stored again: both are the same write, applied once. Decided before
 * logging, like decide_origins, so the log holds only what was applied. */
static void decide_ids(mesh_domain_t *d, item_t *head)
{
    for (item_t *it = head; it; it = it->next) {
        if (it->kind != K_STREAM || it->unlogged || it->nolog || it->msgid == NULL ||
            it->msgid[0] == '\0' || it->payload.len < 10 ||
            rd64((const uint8_t *)it->payload.data + 1) <= atomic_load(&d->repl_seq))
            continue;
        bool seen = mesh_store_repl_has_id(d->store, it->msgid);
        for (item_t *o = head; o != it && !seen; o = o->next)
            seen = o->kind == K_STREAM && !o->unlogged && !o->nolog && o->msgid &&
                   strcmp(o->msgid, it->msgid) == 0;
        if (seen) {
            it->nolog = true;
            it->dupid = true;
        }
    }
}

/* A stream record decided a duplicate by its id (decide_ids): its sequence is stored (it is
 * the stream's record there), nothing else; its writer gets a duplicate's answer. */
static mesh_status_t stream_dup(applier_t *a, item_t *it, mesh_err_t *err)
{
    uint64_t sseq = rd64((const uint8_t *)it->payload.data + 1);
    memset(&it->res, 0, sizeof it->res);
    if (strncmp(it->msgid, "k:", 2) == 0) /* an Idempotency-Key's: answered as its first copy */
        (void)mesh_store_idem_lookup(a->d->store, it->msgid + 2, &it->res);
    it->res.duplicate = true;
    if (sseq <= a->repl_seq) {
        it->skipped = true;
        return MESH_OK;
    }
    mesh_status_t st = mesh_store_meta_put(a->d->store, REPL_META, (int64_t)sseq, err);
    if (st == MESH_OK)
        st = mesh_store_repl_note(a->d->store, sseq, it->msgid, it->fp, err);
    if (st == MESH_OK) {
        a->repl_seq = sseq;
        LOG_INFO("domain", "%s: stream record %llu (id %s) was applied here before: skipped",
                 a->d->name, (unsigned long long)sseq, it->msgid);
    }
    return st;
}

/* Processes a group of items as their writer. Runs without q_lock. */
static void run_group(mesh_domain_t *d, item_t *head)
{
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = MESH_OK;
    if (d->broken) {
        mesh_err_set(&err, MESH_UNAVAILABLE,
                     "domain %s is read-only after a failed log write or sync; restart meshd "
                     "(queries still work)",
                     d->name);
        fail_items(head, NULL, MESH_UNAVAILABLE, &err);
        return;
    }
    decide_origins(d, head);
    decide_ids(d, head);
    /* 1. append every record, 2. one sync */
    mesh_dlog_mark_t mark;
    mesh_dlog_mark(d->log, &mark);
    size_t logged = 0, nolog = 0;
    bool stream_stop = false; /* a stream record not logged: the later ones wait (order) */
    for (item_t *it = head; it; it = it->next) {
        if (it->unlogged)
            continue; /* deferred by decide_origins: answered with its status */
        if (it->kind == K_STREAM && stream_stop) {
            it->st = mesh_err_set(&it->err, MESH_BUSY, "an earlier stream record failed");
            it->unlogged = true;
            continue;
        }
        it->st = MESH_OK;
        if (it->nolog)
            nolog++;
        if (control_item(it) || it->nolog)
            continue;
        uint64_t seq;
        st = mesh_dlog_append(d->log, it->payload.data, it->payload.len, &seq, &it->err);
        if (st != MESH_OK) {
            it->st = st;
            it->unlogged = true; /* not in the log: not applied */
            stream_stop = stream_stop || it->kind == K_STREAM;
            if (st == MESH_NOSPACE)
                explain_nospace(d, &it->err);
            continue;
        }
        it->res.seq = seq;
        if (it->kind == K_BATCH)
            atomic_store(&d->last_batch, seq);
        logged++;
    }
    if (mesh_dlog_broken(d->log) && !d->broken) {
        /* a partial record could not be cut: the log takes no more records until a restart
         * (whose open cuts the torn tail); the records before it are complete and go on */
        LOG_ERROR("domain",
                  "%s: the log could not be repaired after a failed write; the "
                  "domain is now read-only until meshd restarts",
                  d->name);
        d->broken = true;
    }
    if (logged && (st = mesh_dlog_sync(d->log, &err)) != MESH_OK) {
        /* fsync failed: what reached the disk is unknown; refuse writes until a restart
         * replays what the log really holds */
        LOG_ERROR("domain", "%s: %s; the domain is now read-only until meshd restarts", d->name,
                  err.msg);
        d->broken = true;
        char why[sizeof err.msg];
        snprintf(why, sizeof why, "%s", err.msg);
        mesh_err_set(&err, MESH_UNAVAILABLE,
                     "domain %s: the log could not be made durable (%s): the domain takes no "
                     "more writes until meshd restarts; whether this write survives is unknown, "
                     "so retry it after the restart with the same Idempotency-Key",
                     d->name, why);
        fail_items(head, NULL, MESH_UNAVAILABLE, &err);
        return;
    }
    /* 3. apply in order in one transaction, 4. commit */
    if (logged || nolog) {
        applier_t a;
        if (applier_init(&a, d) != MESH_OK) {
            mesh_err_set(&err, MESH_NOMEM, "out of memory");
            abandon_group(d, head, &mark, MESH_NOMEM, &err);
            return;
        }
        merged_clear(d); /* an abandoned group's merges were rolled back */
        if ((st = mesh_store_begin(d->store, &err)) != MESH_OK) {
            abandon_group(d, head, &mark, st, &err);
            clist_free(&a.work);
            return;
        }
        /* buffers of time series that filled up in earlier groups go out first, while every
         * buffered row is committed */
        if ((st = mesh_store_flush(d->store, 0, 0, &err)) != MESH_OK) {
            abandon_group(d, head, &mark, st, &err);
            clist_free(&a.work);
            return;
        }
        /* own records skipped since the last commit: stored with this one (before this
         * group's stream records, which come after them in the stream) */
        size_t settled = 0;
        if ((st = settle_write(d, &a.repl_seq, &settled, &err)) != MESH_OK) {
            abandon_group(d, head, &mark, st, &err);
            clist_free(&a.work);
            return;
        }
        for (item_t *it = head; it; it = it->next) {
            if (control_item(it) || it->unlogged)
                continue;
            uint64_t seq = it->res.seq;
            if (it->dupid) {
                if (store_failure(it->st = stream_dup(&a, it, &it->err))) {
                    err = it->err;
                    abandon_group(d, head, &mark, it->st, &err);
                    clist_free(&a.work);
                    publish_info(d);
                    return;
                }
                continue;
            }
            a.cur_id = it->kind == K_STREAM ? it->msgid : NULL;
            a.cur_fp = it->kind == K_STREAM ? it->fp : 0;
            it->st = apply_logged(&a, seq, (const uint8_t *)it->payload.data, it->payload.len,
                                  it->kind == K_STREAM ? NULL : it, &it->skipped, &it->err);
            a.cur_id = NULL;
            a.cur_fp = 0;
            if (it->kind == K_STREAM) {
                it->res = a.rres;
                it->res.seq = seq;
            }
            if (!it->res.seq)
                it->res.seq = seq;
            if (it->cres)
                it->cres->seq = seq;
            if (store_failure(it->st)) {
                err = it->err;
                abandon_group(d, head, &mark, it->st, &err);
                clist_free(&a.work);
                publish_info(d);
                return;
            }
        }
        if ((st = mesh_store_commit(d->store, mesh_dlog_last_seq(d->log), &err)) != MESH_OK) {
            LOG_WARN("domain", "%s: commit failed: %s", d->name, err.msg);
            abandon_group(d, head, &mark, st, &err);
            clist_free(&a.work);
            publish_info(d);
            return;
        }
        settle_done(d, settled);
        publish(&a);
        clist_free(&a.work);
        deliver_events(d);
        /* before anyone is answered: an acknowledged write's aggregates are exact */
        aggregates_catch_up(d, false);
        if (a.repl_seq != atomic_load(&d->repl_seq))
            repl_committed(d, head, a.repl_seq);
    }
    /* checkpoints and jobs run after the group's commit, in their order */
    for (item_t *it = head; it; it = it->next) {
        if (it->kind == K_JOB) {
            it->st = it->job(d, it->job_arg, &it->err);
            continue;
        }
        if (it->kind != K_CHECKPOINT)
            continue;
        it->st = settle_now(d, &it->err);
        if (it->st == MESH_OK)
            it->st = mesh_store_idem_expire(d->store, mesh_now_ns() - d->idem_ttl_ns, &it->err);
        if (it->st == MESH_OK)
            it->st = rules_checkpoint(d, false, &it->err);
        if (it->st == MESH_OK)
            it->st = mesh_store_checkpoint(d->store, 1, d->flush_age_ns, &it->err);
        if (it->st == MESH_OK)
            it->st = mesh_dlog_trim(d->log, trim_point(d), &it->err);
        if (it->st == MESH_OK && d->kek)
            retire_old_keys(d, false);
    }
    publish_info(d);
}

/* Queues an item and waits until a writer (maybe this thread) has processed it. */
static mesh_status_t submit(mesh_domain_t *d, item_t *it)
{
    pthread_mutex_lock(&d->q_lock);
    it->next = NULL;
    if (d->q_tail)
        d->q_tail->next = it;
    else
        d->q_head = it;
    d->q_tail = it;
    while (!it->done) {
        if (!d->leader) {
            d->leader = true;
            item_t *group = d->q_head;
            d->q_head = d->q_tail = NULL;
            pthread_mutex_unlock(&d->q_lock);
            run_group(d, group);
            pthread_mutex_lock(&d->q_lock);
            for (item_t *g = group; g; g = g->next)
                g->done = true;
            d->leader = false;
            pthread_cond_broadcast(&d->q_cond);
        } else {
            pthread_cond_wait(&d->q_cond, &d->q_lock);
        }
    }
    pthread_mutex_unlock(&d->q_lock);
    return it->st;
}

/* ---- replication ---- */

void mesh_domain_set_replicator(mesh_domain_t *d, const mesh_replicator_t *r)
{
    pthread_mutex_lock(&d->repl_lock);
    if (r && r->publish)
        d->repl = *r;
    else
        memset(&d->repl, 0, sizeof d->repl);
    /* async: the log keeps what is unpublished. A placeholder that refuses writes (no stream
     * named) leaves it as it was: a node started without its mesh must not trim it away. */
    if (r == NULL || r->publish == NULL || r->async || r->stream)
        atomic_store(&d->outbox_on, r && r->publish && r->async);
    pthread_mutex_unlock(&d->repl_lock);
}

bool mesh_domain_replicated(mesh_domain_t *d)
{
    pthread_mutex_lock(&d->repl_lock);
    bool on = d->repl.publish != NULL;
    pthread_mutex_unlock(&d->repl_lock);
    return on;
}

uint64_t mesh_domain_stream_seq(mesh_domain_t *d)
{
    return stream_pos(d);
}

mesh_status_t mesh_domain_wait_stream(mesh_domain_t *d, uint64_t sseq, int64_t timeout_ns)
{
    if (stream_pos(d) >= sseq)
        return MESH_OK;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t t = (int64_t)ts.tv_nsec + timeout_ns % MESH_NS_PER_SEC;
    ts.tv_sec += (time_t)(timeout_ns / MESH_NS_PER_SEC + t / MESH_NS_PER_SEC);
    ts.tv_nsec = (long)(t % MESH_NS_PER_SEC);
    mesh_status_t st = MESH_OK;
    pthread_mutex_lock(&d->repl_lock);
    while (stream_pos(d) < sseq)
        if (pthread_cond_timedwait(&d->repl_cond, &d->repl_lock, &ts) != 0) {
            st = stream_pos(d) >= sseq ? MESH_OK : MESH_TIMEOUT;
            break;
        }
    pthread_mutex_unlock(&d->repl_lock);
    return st;
}

mesh_status_t mesh_domain_apply_stream(mesh_domain_t *d, uint64_t sseq, const uint8_t *p, size_t n,
                                       bool *applied, mesh_err_t *err)
{
    *applied = false;
    if (sseq <= stream_pos(d))
        return MESH_OK;
    if (mesh_group_is(p, n)) {
        size_t done = 0;
        mesh_status_t st = mesh_domain_apply_stream_many(d, &sseq, &p, &n, NULL, 1, &done, err);
        *applied = st == MESH_OK && done == 1;
        return st;
    }
    if (n == 0 || n > MESH_DLOG_MAX_RECORD - 9 || p[0] == K_STREAM || p[0] == K_PART ||
        (p[0] == K_ORIGIN && n <= ORIGIN_HDR))
        return mesh_err_set(err, MESH_CORRUPT, "stream record %llu of %s: bad record",
                            (unsigned long long)sseq, d->name);
    item_t it;
    memset(&it, 0, sizeof it);
    it.kind = K_STREAM;
    it.fp = mesh_fp64(p, n);
    mesh_buf_init(&it.payload, MESH_DLOG_MAX_RECORD);
    mesh_status_t st = mesh_buf_addc(&it.payload, K_STREAM);
    for (int k = 0; k < 8 && st == MESH_OK; k++)
        st = mesh_buf_addc(&it.payload, (char)(uint8_t)(sseq >> (8 * k)));
    if (st == MESH_OK)
        st = mesh_buf_add(&it.payload, p, n);
    if (st != MESH_OK) {
        mesh_buf_free(&it.payload);
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    st = submit(d, &it);
    mesh_buf_free(&it.payload);
    if (it.unlogged || store_failure(st) || st == MESH_UNAVAILABLE) {
        if (err)
            *err = it.err;
        return st;
    }
    *applied = !it.skipped;
    return MESH_OK;
}

/* ---- the async outbox ---- */

static mesh_status_t run_job(mesh_domain_t *d, job_fn fn, void *arg, mesh_err_t *err);

typedef struct outbox_read {
    mesh_domain_t *d;
    mesh_outbox_rec_t *v;
    size_t n, max_n, bytes, max_bytes, group_bytes;
    uint64_t origin, prev;
    mesh_status_t st;
} outbox_read_t;

static void put64(uint8_t *b, uint64_t v)
{
    for (int k = 0; k < 8; k++)
        b[k] = (uint8_t)(v >> (8 * k));
}

/* On the writer thread: this copy's origin id, made once and kept with the data (at its first
 * publish, or at the first copy taken of it, whichever comes first). */
static mesh_status_t origin_make(mesh_domain_t *d, uint64_t *out, mesh_err_t *err)
{
    uint64_t id = 0;
    while (id == 0 || id > (uint64_t)INT64_MAX)
        mesh_random(&id, sizeof id);
    mesh_status_t st = mesh_store_meta_put(d->store, ORIGIN_META, (int64_t)id, err);
    if (st != MESH_OK)
        return st;
    atomic_store(&d->origin_id, id);
    atomic_store(&d->outbox_on, true);
    *out = id;
    return MESH_OK;
}

static mesh_status_t outbox_collect(void *arg, uint64_t seq, const uint8_t *p, size_t n)
{
    outbox_read_t *o = arg;
    if (n == 0 || p[0] != K_BATCH)
        return MESH_OK; /* stream records, rules, ticks: not this copy's batches */
    if (mesh_store_unapplied(o->d->store, seq))
        return MESH_OK; /* refused or a duplicate here: nothing for the replicas either */
    /* into the run's last message while it stays a group of at most group_bytes, else the
     * next message */
    mesh_outbox_rec_t *r = o->n ? &o->v[o->n - 1] : NULL;
    bool join = r && r->batches < MESH_GROUP_MAX &&
                r->msg.len + 4 + ORIGIN_HDR + n + (r->batches == 1 ? MESH_GROUP_HDR + 4 : 0) <=
                    o->group_bytes;
    if (!join && (o->n == o->max_n || (o->n > 0 && o->bytes + n > o->max_bytes)))
        return MESH_LIMIT; /* enough for one run: stops the walk */
    if (!join) {
        r = &o->v[o->n++];
        mesh_buf_init(&r->msg, MESH_DLOG_MAX_RECORD);
        r->batches = 0;
    }
    uint8_t h[ORIGIN_HDR];
    h[0] = K_ORIGIN;
    put64(h + 1, o->origin);
    put64(h + 9, seq);
    put64(h + 17, o->prev);
    if (mesh_group_add(&r->msg, &r->batches, h, sizeof h, p, n) != MESH_OK) {
        o->st = MESH_NOMEM;
        return MESH_NOMEM;
    }
    r->seq = seq;
    o->prev = seq;
    o->bytes += n;
    return MESH_OK;
}

static mesh_status_t outbox_read_job(mesh_domain_t *d, void *arg, mesh_err_t *err)
{
    outbox_read_t *o = arg;
    o->d = d;
    if (o->origin == 0) {
        mesh_status_t st = origin_make(d, &o->origin, err);
        if (st != MESH_OK)
            return st;
    }
    o->prev = atomic_load(&d->outbox);
    if (mesh_dlog_last_seq(d->log) <= o->prev) {
        atomic_store(&d->last_batch, o->prev);
        return MESH_OK;
    }
    /* the chain goes on from the last batch published (o->prev); the scan starts there, or at
     * the log's first record when older ones were trimmed: while the outbox is on, no
     * unpublished batch is trimmed, so those were written before this copy was async (in
     * sync mode, as stream records) or before a backup it was restored from */
    uint64_t from = o->prev;
    if (mesh_dlog_first_seq(d->log) > from + 1)
        from = mesh_dlog_first_seq(d->log) - 1;
    mesh_status_t st = mesh_dlog_replay(d->log, from, outbox_collect, o, err);
    if (st == MESH_LIMIT) {
        mesh_err_clear(err);
        return MESH_OK;
    }
    if (st == MESH_OK) /* read to the end: the last batch is known */
        atomic_store(&d->last_batch, o->n ? o->v[o->n - 1].seq : o->prev);
    return st;
}

mesh_status_t mesh_domain_outbox_read(mesh_domain_t *d, size_t max_n, size_t max_bytes,
                                      size_t group_bytes, mesh_outbox_rec_t **out, size_t *n,
                                      uint64_t *origin, mesh_err_t *err)
{
    *out = NULL;
    *n = 0;
    outbox_read_t o = {.max_n = max_n ? max_n : 1,
                       .max_bytes = max_bytes,
                       .group_bytes = group_bytes,
                       .origin = atomic_load(&d->origin_id)};
    o.v = calloc(o.max_n, sizeof *o.v);
    if (o.v == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    mesh_status_t st = run_job(d, outbox_read_job, &o, err);
    if (st == MESH_OK && o.st != MESH_OK)
        st = mesh_err_set(err, o.st, "out of memory");
    if (st != MESH_OK) {
        mesh_domain_outbox_free(o.v, o.n);
        return st;
    }
    *out = o.v;
    *n = o.n;
    *origin = o.origin;
    return MESH_OK;
}

void mesh_domain_outbox_free(mesh_outbox_rec_t *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        mesh_buf_free(&v[i].msg);
    free(v);
}

static mesh_status_t outbox_published_job(mesh_domain_t *d, void *arg, mesh_err_t *err)
{
    uint64_t seq = *(const uint64_t *)arg;
    if (seq <= atomic_load(&d->outbox))
        return MESH_OK;
    /* not synced: a position lost in a crash only republishes, and replicas skip the copies */
    mesh_status_t st = mesh_store_meta_put(d->store, OUTBOX_META, (int64_t)seq, err);
    if (st == MESH_OK)
        atomic_store(&d->outbox, seq);
    return st;
}

mesh_status_t mesh_domain_outbox_published(mesh_domain_t *d, uint64_t seq, mesh_err_t *err)
{
    return run_job(d, outbox_published_job, &seq, err);
}

void mesh_domain_outbox_pos(mesh_domain_t *d, uint64_t *published, uint64_t *last_batch)
{
    *published = atomic_load(&d->outbox);
    *last_batch = atomic_load(&d->last_batch);
}

typedef struct stream_fp_q {
    uint64_t sseq, fp;
    int found;
} stream_fp_q_t;

static mesh_status_t stream_fp_job(mesh_domain_t *d, void *arg, mesh_err_t *err)
{
    stream_fp_q_t *q = arg;
    pthread_mutex_lock(&d->repl_lock); /* skipped, not stored yet */
    for (size_t i = 0; i < d->nskip && q->found == 0; i++)
        if (d->skip[i].sseq == q->sseq) {
            q->fp = d->skip[i].fp;
            q->found = 1;
        }
    pthread_mutex_unlock(&d->repl_lock);
    if (q->found == 1)
        return MESH_OK;
    q->found = mesh_store_repl_fp(d->store, q->sseq, &q->fp);
    return q->found < 0 ? mesh_err_set(err, MESH_IO, "%s: reading stream record %llu", d->name,
                                       (unsigned long long)q->sseq)
                        : MESH_OK;
}

int mesh_domain_stream_fp(mesh_domain_t *d, uint64_t sseq, uint64_t *fp)
{
    stream_fp_q_t q = {.sseq = sseq};
    mesh_err_t e;
    if (run_job(d, stream_fp_job, &q, &e) != MESH_OK)
        return -1;
    if (q.found == 1)
        *fp = q.fp;
    return q.found;
}

static mesh_status_t stream_rewind_job(mesh_domain_t *d, void *arg, mesh_err_t *err)
{
    uint64_t to = *(const uint64_t *)arg, from = stream_pos(d);
    if (to >= from)
        return MESH_OK;
    /* own records skipped after it come again (and are skipped again) */
    pthread_mutex_lock(&d->repl_lock);
    while (d->nskip > 0 && d->skip[d->nskip - 1].sseq > to)
        d->nskip--;
    atomic_store(&d->repl_skip, d->nskip ? d->skip[d->nskip - 1].sseq : 0);
    pthread_mutex_unlock(&d->repl_lock);
    if (to < atomic_load(&d->repl_seq)) {
        mesh_status_t st = mesh_store_meta_put(d->store, REPL_META, (int64_t)to, err);
        if (st != MESH_OK)
            return st;
        pthread_mutex_lock(&d->repl_lock);
        atomic_store(&d->repl_seq, to);
        pthread_mutex_unlock(&d->repl_lock);
    }
    LOG_WARN("domain",
             "%s: stream position moved back from %llu to %llu: the records after it are "
             "applied again from the stream (those applied here before are skipped by id)",
             d->name, (unsigned long long)from, (unsigned long long)to);
    return MESH_OK;
}

mesh_status_t mesh_domain_stream_rewind(mesh_domain_t *d, uint64_t to, mesh_err_t *err)
{
    return run_job(d, stream_rewind_job, &to, err);
}

/* The consumer's thread: own records at the end of a fetch, every record before them applied
 * (or skipped) here. Notes them (above the position) for the next transaction. */
static mesh_status_t skip_own(mesh_domain_t *d, const uint64_t *sseq, const uint8_t *const *p,
                              const size_t *n, size_t count, mesh_err_t *err)
{
    pthread_mutex_lock(&d->repl_lock);
    bool room = d->nskip + count <= SKIP_MAX;
    pthread_mutex_unlock(&d->repl_lock);
    mesh_status_t st = room ? MESH_OK : run_job(d, settle_job, NULL, err);
    if (st != MESH_OK)
        return st;
    uint64_t *fp = calloc(count, sizeof *fp); /* outside the lock: the writer takes it */
    if (fp == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    for (size_t i = 0; i < count; i++)
        fp[i] = mesh_fp64(p[i], n[i]);
    pthread_mutex_lock(&d->repl_lock);
    uint64_t pos = stream_pos(d);
    for (size_t i = 0; i < count; i++) {
        if (sseq[i] <= pos)
            continue;
        if (d->nskip == 0)
            d->skip_since = mesh_mono_ns();
        d->skip[d->nskip].sseq = sseq[i];
        d->skip[d->nskip].fp = fp[i];
        d->nskip++;
        pos = sseq[i];
        atomic_store(&d->repl_skip, pos);
    }
    bool settle =
        d->nskip >= SKIP_MAX / 2 || (d->nskip > 0 && mesh_mono_ns() - d->skip_since >= SKIP_AGE_NS);
    pthread_cond_broadcast(&d->repl_cond);
    pthread_mutex_unlock(&d->repl_lock);
    free(fp);
    if (settle) {
        /* skipped either way: a failure only leaves them for the next transaction */
        mesh_err_t e;
        if (run_job(d, settle_job, NULL, &e) != MESH_OK)
            LOG_WARN("domain", "%s: storing the stream position: %s", d->name, e.msg);
    }
    return MESH_OK;
}

/* Makes the item of stream record sseq: its record as the stream carried it, or one origin
 * record r of a group (fp: the group's fingerprint; last: the group's last record). */
static mesh_status_t stream_item(item_t *it, uint64_t sseq, const uint8_t *r, size_t rn, bool part,
                                 uint64_t fp, bool last, const char *id)
{
    it->kind = K_STREAM;
    it->msgid = id;
    it->fp = fp;
    mesh_buf_init(&it->payload, MESH_DLOG_MAX_RECORD);
    uint8_t h[PART_HDR];
    h[0] = part ? K_PART : K_STREAM;
    put64(h + 1, sseq);
    put64(h + 9, fp);
    h[17] = last ? 1 : 0;
    mesh_status_t st = mesh_buf_add(&it->payload, h, part ? PART_HDR : 9);
    if (st == MESH_OK)
        st = mesh_buf_add(&it->payload, r, rn);
    return st;
}

mesh_status_t mesh_domain_apply_stream_many(mesh_domain_t *d, const uint64_t *sseq,
                                            const uint8_t *const *p, const size_t *n,
                                            const char *const *ids, size_t count, size_t *done,
                                            mesh_err_t *err)
{
    *done = 0;
    if (count == 0)
        return MESH_OK;
    mesh_status_t st = MESH_OK;
    uint64_t pos = stream_pos(d);
    /* the own records at the end (after the last record of another origin, or all of them)
     * are skipped without the writer (skip_own); those before go with the group, as
     * nothing is skipped ahead of a record still to apply */
    uint64_t self = atomic_load(&d->origin_id);
    size_t tail = count;
    while (tail > 0 && count <= SKIP_MAX &&
           (sseq[tail - 1] <= pos || own_record(p[tail - 1], n[tail - 1], self)))
        tail--;
    /* the items: one per record, one per origin record of a group */
    item_t *its = NULL;
    size_t k = 0, cap = 0; /* items made: the records not applied before */
    for (size_t i = 0; i < tail && st == MESH_OK; i++) {
        if (sseq[i] <= pos)
            continue;
        /* a group's records are logged with a longer header ('P'), but each is at least 9
         * bytes shorter than the group (its header and length) */
        if (n[i] == 0 || n[i] > MESH_DLOG_MAX_RECORD - 9 || p[i][0] == K_STREAM ||
            p[i][0] == K_PART || (p[i][0] == K_ORIGIN && n[i] <= ORIGIN_HDR)) {
            st = mesh_err_set(err, MESH_CORRUPT, "stream record %llu of %s: bad record",
                              (unsigned long long)sseq[i], d->name);
            break;
        }
        /* a group: no message id (the chains of its records make it apply once) */
        mesh_group_rec_t gv[MESH_GROUP_MAX];
        size_t gn = 1;
        bool group = mesh_group_is(p[i], n[i]);
        mesh_err_t e;
        if (group && mesh_group_split(p[i], n[i], gv, &gn, &e) != MESH_OK) {
            st = mesh_err_set(err, MESH_CORRUPT, "stream record %llu of %s: %s",
                              (unsigned long long)sseq[i], d->name, e.msg);
            break;
        }
        if (k + gn > cap) {
            size_t ncap = cap ? cap * 2 : count;
            while (ncap < k + gn)
                ncap *= 2;
            item_t *grown = realloc(its, ncap * sizeof *its);
            if (grown == NULL) {
                st = mesh_err_set(err, MESH_NOMEM, "out of memory");
                break;
            }
            memset(grown + cap, 0, (ncap - cap) * sizeof *grown);
            its = grown;
            cap = ncap;
        }
        uint64_t fp = mesh_fp64(p[i], n[i]);
        for (size_t g = 0; g < gn && st == MESH_OK; g++)
            st = group ? stream_item(&its[k++], sseq[i], gv[g].p, gv[g].n, true, fp, g + 1 == gn,
                                     NULL)
                       : stream_item(&its[k++], sseq[i], p[i], n[i], false, fp, true,
                                     ids ? ids[i] : NULL);
        if (st != MESH_OK)
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    if (st == MESH_OK && k > 0) {
        pthread_mutex_lock(&d->q_lock);
        for (size_t i = 0; i < k; i++) {
            its[i].next = NULL;
            if (d->q_tail)
                d->q_tail->next = &its[i];
            else
                d->q_head = &its[i];
            d->q_tail = &its[i];
        }
        item_t *last = &its[k - 1];
        while (!last->done) {
            if (!d->leader) {
                d->leader = true;
                item_t *group = d->q_head;
                d->q_head = d->q_tail = NULL;
                pthread_mutex_unlock(&d->q_lock);
                run_group(d, group);
                pthread_mutex_lock(&d->q_lock);
                for (item_t *g = group; g; g = g->next)
                    g->done = true;
                d->leader = false;
                pthread_cond_broadcast(&d->q_cond);
            } else {
                pthread_cond_wait(&d->q_cond, &d->q_lock);
            }
        }
        pthread_mutex_unlock(&d->q_lock);
    }
    /* the first failure stops the count (the store's failures; a refused record is applied) */
    uint64_t failed_at = 0;
    for (size_t i = 0; i < k && st == MESH_OK; i++) {
        if (its[i].unlogged || store_failure(its[i].st) || its[i].st == MESH_UNAVAILABLE) {
            st = its[i].st;
            if (err)
                *err = its[i].err;
            failed_at = rd64((const uint8_t *)its[i].payload.data + 1);
        }
    }
    if (st == MESH_OK && tail < count &&
        (st = skip_own(d, sseq + tail, p + tail, n + tail, count - tail, err)) != MESH_OK)
        failed_at = sseq[tail];
    for (size_t i = 0; i < count; i++)
        if (st == MESH_OK || sseq[i] < failed_at)
            (*done)++;
    for (size_t i = 0; i < k; i++)
        mesh_buf_free(&its[i].payload);
    free(its);
    return st;
}

typedef struct id_at {
    uint64_t sseq;
    char id[260];
    int found;
} id_at_t;

static mesh_status_t id_at_job(mesh_domain_t *d, void *arg, mesh_err_t *err)
{
    (void)err;
    id_at_t *q = arg;
    q->found = mesh_store_repl_id(d->store, q->sseq, q->id, sizeof q->id);
    return MESH_OK;
}

/* Whether the record applied here at sseq can be the one published with Idempotency-Key idem
 * (its message id "k:" + idem): true unless another id is known there. */
static bool applied_here(mesh_domain_t *d, uint64_t sseq, const char *idem)
{
    id_at_t q = {.sseq = sseq};
    mesh_err_t e;
    if (idem == NULL || *idem == '\0' || run_job(d, id_at_job, &q, &e) != MESH_OK || q.found != 1)
        return true;
    return strncmp(q.id, "k:", 2) == 0 && strcmp(q.id + 2, idem) == 0;
}

/* The domain's replicator as it is now (set and cleared under repl_lock by the mesh). */
static mesh_replicator_t repl_get(mesh_domain_t *d)
{
    pthread_mutex_lock(&d->repl_lock);
    mesh_replicator_t r = d->repl;
    pthread_mutex_unlock(&d->repl_lock);
    return r;
}

/* Publishes a record to the stream and waits for its apply here (sync mode); res gets the
 * record's outcome. */
static mesh_status_t write_through_stream(mesh_domain_t *d, const mesh_replicator_t *r,
                                          const mesh_buf_t *payload, const char *idem,
                                          mesh_apply_result_t *res, mesh_err_t *err)
{
    uint64_t sseq = 0;
    bool dup = false;
    uint64_t before = stream_pos(d);
    mesh_status_t st = r->publish(r->arg, d->name, (const uint8_t *)payload->data, payload->len,
                                  idem, &sseq, &dup, err);
    if (st != MESH_OK)
        return st;
    /* a new record is the stream's last: a position already at or past it is not one of the
     * stream's (the stream lost records this node applied: a divergence, which the replicator
     * finds and repairs). Waiting for it would answer a write not applied here. The same for
     * a duplicate (a retry) when the record applied here at its sequence is another one. */
    if (sseq <= before && (!dup || !applied_here(d, sseq, idem)))
        return mesh_err_set(err, MESH_UNAVAILABLE,
                            "domain %s: this node's stream position (%llu) is past the stream's "
                            "new record (%s seq %llu): it applied records the stream does not "
                            "hold and is being repaired; the write is in the stream: send it "
                            "again with the same Idempotency-Key (applied once)",
                            d->name, (unsigned long long)before, r->stream ? r->stream : "",
                            (unsigned long long)sseq);
    if (mesh_domain_wait_stream(d, sseq, r->apply_timeout_ns) != MESH_OK)
        return mesh_err_set(err, MESH_UNAVAILABLE,
                            "domain %s: the write is in the stream (%s seq %llu) but was not "
                            "applied on this node within %lld ms; send it again with the same "
                            "Idempotency-Key (applied once)",
                            d->name, r->stream ? r->stream : "", (unsigned long long)sseq,
                            (long long)(r->apply_timeout_ns / 1000000));
    pthread_mutex_lock(&d->repl_lock);
    const repl_outcome_t *o = &d->ring_out[sseq % REPL_RING];
    bool known = o->sseq == sseq;
    if (known) {
        *res = o->res;
        st = o->st;
        if (st != MESH_OK)
            mesh_err_set(err, st, "%s", o->msg);
    }
    pthread_mutex_unlock(&d->repl_lock);
    if (!known) /* applied long ago (a duplicate of an old message): its key answers */
        res->duplicate = true;
    if (dup)
        res->duplicate = true;
    res->stream_seq = sseq;
    return st;
}

static mesh_status_t domain_write(mesh_domain_t *d, const mesh_batch_t *b, const char *idem_key,
                                  mesh_apply_result_t *res, mesh_err_t *err);

mesh_status_t mesh_domain_write(mesh_domain_t *d, const mesh_batch_t *b, const char *idem_key,
                                mesh_apply_result_t *res, mesh_err_t *err)
{
    atomic_fetch_add(&d->writes_in, 1);
    mesh_status_t st = domain_write(d, b, idem_key, res, err);
    atomic_fetch_sub(&d->writes_in, 1);
    return st;
}

void mesh_domain_drain_writes(mesh_domain_t *d)
{
    while (atomic_load(&d->writes_in) > 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static mesh_status_t domain_write(mesh_domain_t *d, const mesh_batch_t *b, const char *idem_key,
                                  mesh_apply_result_t *res, mesh_err_t *err)
{
    for (size_t i = 0; i < b->nparts; i++)
        if (b->parts[i].product->derive != NULL)
            return mesh_err_set(err, MESH_FORBIDDEN,
                                "%s.%s is a derived product: meshd writes it from its sources",
                                d->name, b->parts[i].product->name);
    item_t it;
    memset(&it, 0, sizeof it);
    it.kind = K_BATCH;
    it.batch = b;
    it.idem = idem_key;
    mesh_buf_init(&it.payload, MESH_DLOG_MAX_RECORD);
    mesh_status_t st = mesh_buf_addc(&it.payload, K_BATCH);
    if (st == MESH_OK)
        st = mesh_batch_encode(b, idem_key, &it.payload);
    if (st != MESH_OK) {
        mesh_buf_free(&it.payload);
        return mesh_err_set(err, st, "batch too large for one log record");
    }
    /* refused at the door while the disk is nearly full: nothing reaches the log */
    if ((st = mesh_space_check(d->space, d->name, it.payload.len, err)) != MESH_OK) {
        mesh_buf_free(&it.payload);
        return st;
    }
    mesh_replicator_t r = repl_get(d);
    if (r.publish && !r.async) {
        memset(res, 0, sizeof *res);
        st = write_through_stream(d, &r, &it.payload, idem_key, res, err);
        mesh_buf_free(&it.payload);
        return st;
    }
    /* async: acknowledged here only when the outbox can publish it */
    if (r.publish && r.async && r.fits &&
        (st = r.fits(r.arg, (const uint8_t *)it.payload.data, it.payload.len, err)) != MESH_OK) {
        mesh_buf_free(&it.payload);
        return st;
    }
    st = submit(d, &it);
    mesh_buf_free(&it.payload);
    *res = it.res;
    if (st != MESH_OK && err)
        *err = it.err;
    if (st == MESH_OK && r.async && r.kick)
        r.kick(r.arg); /* durable here: the outbox publishes it */
    return st;
}

mesh_status_t mesh_domain_check_contract(mesh_domain_t *d, const char *yaml, size_t n,
                                         mesh_contract_result_t *res, mesh_err_t *err)
{
    memset(res, 0, sizeof *res);
    mesh_buf_init(&res->changes, 1 << 20);
    mesh_contract_t *c;
    mesh_status_t st = mesh_contract_parse(yaml, n, &c, err);
    if (st != MESH_OK)
        return st;
    pthread_mutex_lock(&d->state_lock);
    st = check_contract(d->name, &d->current, c, res, err);
    pthread_mutex_unlock(&d->state_lock);
    mesh_contract_free(c);
    return st;
}

mesh_status_t mesh_domain_put_contract(mesh_domain_t *d, const char *yaml, size_t n,
                                       mesh_contract_result_t *res, mesh_err_t *err)
{
    memset(res, 0, sizeof *res);
    mesh_buf_init(&res->changes, 1 << 20);
    mesh_contract_t *c;
    mesh_status_t st = mesh_contract_parse(yaml, n, &c, err);
    if (st != MESH_OK)
        return st;
    /* early check against the current state: most refusals never reach the log */
    pthread_mutex_lock(&d->state_lock);
    st = check_contract(d->name, &d->current, c, res, err);
    pthread_mutex_unlock(&d->state_lock);
    if (st != MESH_OK || res->outcome == MESH_CONTRACT_UNCHANGED) {
        mesh_contract_free(c);
        return st;
    }
    item_t it;
    memset(&it, 0, sizeof it);
    it.kind = K_CONTRACT;
    it.contract = c;
    it.cres = res;
    mesh_buf_init(&it.payload, MESH_DLOG_MAX_RECORD);
    mesh_buf_addc(&it.payload, K_CONTRACT);
    if ((st = mesh_buf_add(&it.payload, c->yaml, strlen(c->yaml))) != MESH_OK) {
        mesh_buf_free(&it.payload);
        mesh_contract_free(c);
        return mesh_err_set(err, st, "out of memory");
    }
    if ((st = mesh_space_check(d->space, d->name, it.payload.len, err)) != MESH_OK) {
        mesh_buf_free(&it.payload);
        mesh_contract_free(c);
        return st;
    }
    mesh_replicator_t r = repl_get(d);
    if (r.publish) {
        /* the outcome and changes are the dry run's: the stream's apply decides whether it
         * holds (a contract applied meanwhile refuses it the same way on every node) */
        mesh_apply_result_t ar;
        memset(&ar, 0, sizeof ar);
        st = write_through_stream(d, &r, &it.payload, NULL, &ar, err);
        res->seq = ar.seq;
        mesh_buf_free(&it.payload);
        mesh_contract_free(c);
        return st;
    }
    st = submit(d, &it);
    mesh_buf_free(&it.payload);
    mesh_contract_free(it.contract); /* NULL when the domain took it */
    if (st != MESH_OK && err)
        *err = it.err;
    return st;
}

mesh_status_t mesh_domain_drop_product(mesh_domain_t *d, const char *product, mesh_err_t *err)
{
    item_t it;
    memset(&it, 0, sizeof it);
    it.kind = K_DROP;
    snprintf(it.product, sizeof it.product, "%s", product);
    mesh_buf_init(&it.payload, 1024);
    mesh_buf_addc(&it.payload, K_DROP);
    mesh_buf_adds(&it.payload, it.product);
    /* early check */
    pthread_mutex_lock(&d->state_lock);
    size_t ci;
    mesh_status_t st = MESH_OK;
    if (clist_product(&d->current, product, &ci) == NULL)
        st = mesh_err_set(err, MESH_NOT_FOUND, "no product %s.%s", d->name, product);
    else if (d->current.v[ci]->c->nproducts > 1)
        st =
            mesh_err_set(err, MESH_CONFLICT,
                         "product %s.%s is one of %zu products of contract '%s'; apply a new "
                         "major version of the contract without it instead",
                         d->name, product, d->current.v[ci]->c->nproducts, d->current.v[ci]->c->id);
    pthread_mutex_unlock(&d->state_lock);
    if (st == MESH_OK)
        st = submit(d, &it);
    mesh_buf_free(&it.payload);
    if (st != MESH_OK && err && it.err.code != MESH_OK)
        *err = it.err;
    return st;
}

/* Submits a log record (kind byte first) and waits for its result. */
static mesh_status_t submit_record(mesh_domain_t *d, mesh_buf_t *payload, mesh_err_t *err)
{
    item_t it;
    memset(&it, 0, sizeof it);
    it.kind = (unsigned char)payload->data[0];
    it.payload = *payload;
    mesh_status_t st = submit(d, &it);
    if (st != MESH_OK && err)
        *err = it.err;
    return st;
}

mesh_status_t mesh_domain_put_rule(mesh_domain_t *d, const char *text, size_t n, mesh_err_t *err)
{
    mesh_rule_t *r;
    mesh_status_t st = mesh_rule_parse(text, n, &r, err);
    if (st != MESH_OK)
        return st;
    if (strcmp(r->domain, d->name) != 0)
        st = mesh_err_set(err, MESH_INVALID, "the rule is for domain '%s', not '%s'", r->domain,
                          d->name);
    mesh_rule_put(r);
    if (st != MESH_OK)
        return st;
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_DLOG_MAX_RECORD);
    int64_t now = mesh_now_ns();
    if ((st = mesh_buf_addc(&b, K_RULE)) == MESH_OK && (st = mesh_buf_add(&b, &now, 8)) == MESH_OK)
        st = mesh_buf_add(&b, text, n);
    if (st == MESH_OK)
        st = submit_record(d, &b, err);
    else
        mesh_err_set(err, st, "out of memory");
    mesh_buf_free(&b);
    return st;
}

mesh_status_t mesh_domain_delete_rule(mesh_domain_t *d, const char *name, mesh_err_t *err)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 1024);
    int64_t now = mesh_now_ns();
    mesh_buf_addc(&b, K_UNRULE);
    mesh_buf_add(&b, &now, 8);
    mesh_status_t st = mesh_buf_add(&b, name, strnlen(name, MESH_NAME_MAX));
    if (st == MESH_OK)
        st = submit_record(d, &b, err);
    mesh_buf_free(&b);
    return st;
}

mesh_status_t mesh_domain_tick(mesh_domain_t *d, int64_t now, mesh_err_t *err)
{
    if (!mesh_rules_due(d->rules, now))
        return MESH_OK; /* nothing can fire: no record */
    mesh_buf_t b;
    mesh_buf_init(&b, 64);
    mesh_buf_addc(&b, K_TICK);
    mesh_status_t st = mesh_buf_add(&b, &now, sizeof now);
    if (st == MESH_OK)
        st = submit_record(d, &b, err);
    mesh_buf_free(&b);
    return st;
}

mesh_status_t mesh_domain_alert_op(mesh_domain_t *d, char op, const char *alert_id, const char *by,
                                   const char *note, mesh_err_t *err)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 4096);
    int64_t now = mesh_now_ns();
    mesh_buf_addc(&b, K_ALERT);
    mesh_buf_addc(&b, op == 'a' ? 'a' : 'r');
    mesh_buf_add(&b, &now, sizeof now);
    mesh_buf_add(&b, alert_id, strnlen(alert_id, 95));
    mesh_buf_addc(&b, '\0');
    mesh_buf_add(&b, by ? by : "", by ? strnlen(by, 63) : 0);
    mesh_buf_addc(&b, '\0');
    mesh_buf_add(&b, note ? note : "", note ? strnlen(note, 255) : 0);
    mesh_status_t st = mesh_buf_addc(&b, '\0');
    if (st == MESH_OK)
        st = submit_record(d, &b, err);
    mesh_buf_free(&b);
    return st;
}

static mesh_status_t outbox_delete_job(mesh_domain_t *d, void *arg, mesh_err_t *err)
{
    return mesh_store_outbox_delete(d->store, *(const int64_t *)arg, err);
}

static mesh_status_t run_job(mesh_domain_t *d, job_fn fn, void *arg, mesh_err_t *err);

mesh_status_t mesh_domain_outbox_done(mesh_domain_t *d, int64_t outbox_id, mesh_err_t *err)
{
    if (outbox_id <= 0)
        return MESH_OK;
    return run_job(d, outbox_delete_job, &outbox_id, err);
}

mesh_status_t mesh_domain_rules(mesh_domain_t *d, mesh_rule_info_t **out, size_t *n)
{
    return mesh_rules_list(d->rules, out, n);
}

mesh_status_t mesh_domain_quarantine_drop(mesh_domain_t *d, const char *product, const int64_t *ids,
                                          size_t n, bool all, int64_t *dropped, mesh_err_t *err)
{
    *dropped = 0;
    size_t nl = strlen(product);
    if (nl == 0 || nl > MESH_NAME_MAX || n > 100000)
        return mesh_err_set(err, MESH_INVALID, "at most 100000 ids at once");
    pthread_mutex_lock(&d->state_lock);
    bool known = clist_product(&d->current, product, NULL) != NULL;
    pthread_mutex_unlock(&d->state_lock);
    if (!known)
        return mesh_err_set(err, MESH_NOT_FOUND, "no product %s.%s", d->name, product);
    item_t it;
    memset(&it, 0, sizeof it);
    it.kind = K_QDROP;
    snprintf(it.product, sizeof it.product, "%s", product);
    mesh_buf_init(&it.payload, MESH_DLOG_MAX_RECORD);
    mesh_buf_addc(&it.payload, K_QDROP);
    mesh_buf_addc(&it.payload, (char)nl);
    mesh_buf_add(&it.payload, product, nl);
    mesh_buf_addc(&it.payload, all ? 1 : 0);
    uint8_t b[8];
    for (int k = 0; k < 4; k++)
        b[k] = (uint8_t)(n >> (8 * k));
    mesh_buf_add(&it.payload, b, 4);
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 8; k++)
            b[k] = (uint8_t)((uint64_t)ids[i] >> (8 * k));
        mesh_buf_add(&it.payload, b, 8);
    }
    mesh_status_t st =
        it.payload.data ? submit(d, &it) : mesh_err_set(err, MESH_NOMEM, "out of memory");
    mesh_buf_free(&it.payload);
    if (st != MESH_OK && err && it.err.code != MESH_OK)
        *err = it.err;
    if (st == MESH_OK)
        *dropped = (int64_t)it.res.quarantined;
    return st;
}

mesh_status_t mesh_domain_checkpoint(mesh_domain_t *d, mesh_err_t *err)
{
    item_t it;
    memset(&it, 0, sizeof it);
    it.kind = K_CHECKPOINT;
    mesh_buf_init(&it.payload, 16);
    mesh_status_t st = submit(d, &it);
    if (st != MESH_OK && err)
        *err = it.err;
    return st;
}

void mesh_domain_info(mesh_domain_t *d, mesh_domain_info_t *out)
{
    memset(out, 0, sizeof *out);
    out->log_seq = atomic_load_explicit(&d->info_log_seq, memory_order_relaxed);
    out->log_bytes = atomic_load_explicit(&d->info_log_bytes, memory_order_relaxed);
    out->applied_seq = atomic_load_explicit(&d->info_applied, memory_order_relaxed);
    pthread_mutex_lock(&d->q_lock);
    out->broken = d->broken;
    pthread_mutex_unlock(&d->q_lock);
    mesh_store_file_sizes(d->store, &out->db_bytes, &out->wal_bytes);
}

/* ---- writer jobs ---- */

/* Runs fn on the writer thread after the current group, and waits for it. */
static mesh_status_t run_job(mesh_domain_t *d, job_fn fn, void *arg, mesh_err_t *err)
{
    item_t it;
    memset(&it, 0, sizeof it);
    it.kind = K_JOB;
    it.job = fn;
    it.job_arg = arg;
    mesh_status_t st = submit(d, &it);
    if (st != MESH_OK && err)
        *err = it.err;
    return st;
}

/* ---- re-encryption under a new data key ---- */

typedef struct rekey {
    mesh_store_copy_t *copy;
    mesh_key_t *key; /* the next generation's (a reference) */
    uint32_t gen, old_gen;
    char path[4096], old_path[4096];
    bool done, committed;
    bool copied_early; /* a step completed the copy before the final flush */
    int64_t remaining, total, steps;
} rekey_t;

static mesh_status_t rekey_begin(mesh_domain_t *d, void *arg, mesh_err_t *err)
{
    rekey_t *r = arg;
    size_t cur = kf_find(&d->kf, MESH_KEY_CURRENT);
    if (d->kf.nkeys >= MESH_KEYFILE_MAX_KEYS)
        return mesh_err_set(err, MESH_CONFLICT,
                            "domain %s still holds an older data key for its log; try again "
                            "after the next checkpoint",
                            d->name);
    uint32_t gen = 0;
    for (size_t i = 0; i < d->kf.nkeys; i++)
        if (d->kf.keys[i].gen >= gen)
            gen = d->kf.keys[i].gen + 1;
    r->gen = gen;
    r->old_gen = d->kf.keys[cur].gen;
    db_file(d, gen, r->path, sizeof r->path);
    snprintf(r->old_path, sizeof r->old_path, "%s", d->db_path);
    mesh_unlink_db(r->path);
    if (mesh_key_new(gen, &r->key) != MESH_OK)
        return mesh_err_set(err, MESH_IO, "no random bytes for a data key");
    size_t n = d->kf.nkeys++;
    d->kf.keys[n].gen = gen;
    d->kf.keys[n].state = MESH_KEY_NEXT;
    d->kf.keys[n].key = mesh_key_ref(r->key);
    memcpy(d->kf.keys[n].file_id, mesh_key_file_id(r->key), MESH_FILE_ID_BYTES);
    const mesh_kek_t *keks[] = {d->kek};
    mesh_status_t st = kf_save(d, keks, 1, err);
    if (st == MESH_OK)
        st = mesh_crypt_attach(r->path, r->key, err);
    if (st == MESH_OK && (st = mesh_store_copy_begin(d->store, r->path, &r->copy, err)) != MESH_OK)
        mesh_crypt_detach(r->path);
    if (st != MESH_OK) {
        kf_remove(&d->kf, n);
        kf_save(d, keks, 1, NULL);
        mesh_unlink_db(r->path);
    }
    return st;
}

/* The end, with the writer paused: everything into the copy, the key file switched (the
 * commit point), the store moved, the log trimmed, the old files deleted. */
static mesh_status_t rekey_finish(mesh_domain_t *d, rekey_t *r, mesh_err_t *err)
{
    /* time-series rows buffered in memory go to the store (so no log record is needed any
     * more). The copy follows every commit of the writer's connection only while it is not
     * complete (SQLite stops carrying writes into a finished backup): steps before this one
     * never complete it, and if one did, the copy is taken again now. Rule states too. */
    mesh_status_t st = rules_checkpoint(d, false, err);
    if (st == MESH_OK)
        st = mesh_store_checkpoint(d->store, 2, 0, err);
    if (st != MESH_OK && st != MESH_BUSY)
        return st;
    bool done = false;
    if (r->copied_early) {
        mesh_store_copy_abort(r->copy);
        r->copy = NULL;
        mesh_unlink_db(r->path);
        if ((st = mesh_store_copy_begin(d->store, r->path, &r->copy, err)) != MESH_OK)
            return st;
    }
    if ((st = mesh_store_copy_step(r->copy, -1, &done, &r->remaining, &r->total, err)) != MESH_OK)
        return st;
    if (!done)
        return mesh_err_set(err, MESH_INTERNAL, "the copy did not complete");
    st = mesh_store_copy_finish(r->copy, err);
    r->copy = NULL;
    if (st != MESH_OK)
        return st;
    if (mesh_fsync_dir(d->dir) != MESH_OK)
        return mesh_err_set(err, MESH_IO, "fsync %s", d->dir);
    const mesh_kek_t *keks[] = {d->kek};
    size_t cur = kf_find(&d->kf, MESH_KEY_CURRENT), next = kf_find(&d->kf, MESH_KEY_NEXT);
    d->kf.keys[cur].state = MESH_KEY_RETIRED;
    d->kf.keys[next].state = MESH_KEY_CURRENT;
    if ((st = kf_save(d, keks, 1, err)) != MESH_OK) {
        d->kf.keys[cur].state = MESH_KEY_CURRENT;
        d->kf.keys[next].state = MESH_KEY_NEXT;
        return st;
    }
    r->committed = true;
    if ((st = mesh_store_switch(d->store, r->path, err)) != MESH_OK) {
        /* back to the old generation (nothing was written to the copy since) */
        d->kf.keys[cur].state = MESH_KEY_CURRENT;
        d->kf.keys[next].state = MESH_KEY_NEXT;
        mesh_err_t e2;
        if (kf_save(d, keks, 1, &e2) != MESH_OK)
            LOG_ERROR("domain", "%s: re-encryption: %s; and undoing it: %s", d->name, err->msg,
                      e2.msg);
        r->committed = false;
        return st;
    }
    char *np = strdup(r->path);
    if (np) {
        free(d->db_path);
        d->db_path = np;
    }
    ring_build(d); /* new records are sealed with the new key from here */
    mesh_err_t e2;
    if (mesh_dlog_trim(d->log, trim_point(d), &e2) != MESH_OK)
        LOG_WARN("domain", "%s: re-encryption: trimming the log: %s", d->name, e2.msg);
    /* the old file: readers still in a transaction keep it open until they end */
    mesh_unlink_db(r->old_path);
    mesh_crypt_detach(r->old_path);
    mesh_fsync_dir(d->dir);
    if (mesh_dlog_only_gen(d->log, r->gen)) {
        size_t i = kf_find(&d->kf, MESH_KEY_RETIRED);
        if (i < d->kf.nkeys)
            kf_remove(&d->kf, i);
        if (kf_save(d, keks, 1, &e2) != MESH_OK)
            LOG_WARN("domain", "%s: re-encryption: dropping the old key: %s", d->name, e2.msg);
        ring_build(d);
    }
    publish_info(d);
    return MESH_OK;
}

static mesh_status_t rekey_step(mesh_domain_t *d, void *arg, mesh_err_t *err)
{
    rekey_t *r = arg;
    bool done = false;
    int n = d->rekey_pages;
    mesh_status_t st;
    /* a step never copies the last pages: the first learns the size, the others leave at
     * least n / 2 pages for the final one, which flushes first (see rekey_finish) */
    if (r->steps == 0 || r->remaining > n + n / 2) {
        st = mesh_store_copy_step(r->copy, r->steps == 0 ? 1 : n, &done, &r->remaining, &r->total,
                                  err);
        if (st != MESH_OK)
            return st;
        r->steps++;
        r->copied_early = done;
        if (!done)
            return MESH_OK;
    }
    if ((st = rekey_finish(d, r, err)) != MESH_OK)
        return st;
    r->done = true;
    return MESH_OK;
}

static mesh_status_t rekey_abort(mesh_domain_t *d, void *arg, mesh_err_t *err)
{
    rekey_t *r = arg;
    (void)err;
    mesh_store_copy_abort(r->copy);
    r->copy = NULL;
    if (r->committed)
        return MESH_OK;
    size_t next = kf_find(&d->kf, MESH_KEY_NEXT);
    if (next < d->kf.nkeys) {
        kf_remove(&d->kf, next);
        const mesh_kek_t *keks[] = {d->kek};
        kf_save(d, keks, 1, NULL);
    }
    mesh_crypt_detach(r->path);
    mesh_unlink_db(r->path);
    return MESH_OK;
}

mesh_status_t mesh_domain_rekey(mesh_domain_t *d, mesh_rekey_result_t *res, mesh_err_t *err)
{
    memset(res, 0, sizeof *res);
    if (d->kek == NULL)
        return mesh_err_set(err, MESH_INVALID, "domain %s is not encrypted (encryption=off)",
                            d->name);
    if (pthread_mutex_trylock(&d->key_lock) != 0)
        return mesh_err_set(err, MESH_CONFLICT, "a key operation on domain %s is running", d->name);
    int64_t t0 = mesh_mono_ns();
    rekey_t r;
    memset(&r, 0, sizeof r);
    mesh_status_t st = run_job(d, rekey_begin, &r, err);
    bool begun = st == MESH_OK;
    while (st == MESH_OK && !r.done)
        st = run_job(d, rekey_step, &r, err);
    if (st != MESH_OK && begun) {
        mesh_err_t e2;
        run_job(d, rekey_abort, &r, &e2);
    }
    pthread_mutex_unlock(&d->key_lock);
    mesh_key_unref(r.key);
    if (st != MESH_OK) {
        mesh_err_prefix(err, "re-encryption of domain %s: ", d->name);
        return st;
    }
    res->gen = r.gen;
    res->pages = r.total;
    res->steps = r.steps;
    res->ms = (mesh_mono_ns() - t0) / 1000000;
    LOG_INFO("domain", "%s: re-encrypted under data key generation %u (%lld pages in %lld ms)",
             d->name, (unsigned)r.gen, (long long)r.total, (long long)res->ms);
    return MESH_OK;
}

/* ---- backups ---- */

typedef struct backup_begin {
    const char *dest;
    mesh_dbcopy_t *copy;
    uint64_t applied;
    uint64_t stream_seq; /* the domain stream's sequence the copy holds (0: not replicated) */
    clist_t contracts;
} backup_begin_t;

static mesh_status_t origin_make(mesh_domain_t *d, uint64_t *out, mesh_err_t *err);

/* On the writer thread, between groups, before a copy: an async copy records its own origin's
 * chain position as it records other origins' (_meta o:<origin>), the log sequence it has
 * applied (every batch of its own up to it was applied when written, none after it is in the
 * copy). A node that installs the copy then skips this origin's records at or below it, which
 * reach the stream after the copy's stream sequence when the outbox was behind, and applies the
 * later ones (decide_origins). The origin id is made here if it was not yet: batches written
 * before the first publish are published under it. Unused by this copy itself (its own records
 * are skipped as its own). */
static mesh_status_t origin_mark(mesh_domain_t *d, uint64_t applied, mesh_err_t *err)
{
    uint64_t id = atomic_load(&d->origin_id);
    if (id == 0 && !atomic_load(&d->outbox_on))
        return MESH_OK; /* never async: no batch of its own in any stream as an origin record */
    mesh_status_t st = id ? MESH_OK : origin_make(d, &id, err);
    char key[32];
    origin_key(id, key, sizeof key);
    if (st == MESH_OK)
        st = mesh_store_meta_put(d->store, key, (int64_t)applied, err);
    return st;
}

/* On the writer thread, between groups: everything applied goes into the database, then the
 * snapshot the copy will read is taken. */
static mesh_status_t backup_begin_job(mesh_domain_t *d, void *arg, mesh_err_t *err)
{
    backup_begin_t *b = arg;
    /* the copy holds the rules' states, and the position of the own records skipped */
    mesh_status_t st = settle_now(d, err);
    if (st == MESH_OK)
        st = rules_checkpoint(d, false, err);
    if (st == MESH_OK)
        st = mesh_store_checkpoint(d->store, 2, 0, err);
    if (st != MESH_OK && st != MESH_BUSY)
        return st;
    b->applied = mesh_store_applied_seq(d->store);
    b->stream_seq = atomic_load(&d->repl_seq);
    if ((st = origin_mark(d, b->applied, err)) != MESH_OK)
        return st;
    pthread_mutex_lock(&d->state_lock);
    st = clist_copy(&d->current, &b->contracts);
    pthread_mutex_unlock(&d->state_lock);
    if (st != MESH_OK)
        return mesh_err_set(err, st, "out of memory");
    return mesh_dbcopy_open(d->db_path, b->dest, &b->copy, err);
}

mesh_status_t mesh_domain_backup_copy(mesh_domain_t *d, const char *dest, uint64_t *applied,
                                      uint64_t *stream_seq, mesh_cref_t ***crefs, size_t *ncrefs,
                                      mesh_domain_copy_progress_fn progress, void *arg,
                                      mesh_err_t *err)
{
    *crefs = NULL;
    *ncrefs = 0;
    /* no re-encryption may move the database under the copy */
    pthread_mutex_lock(&d->key_lock);
    backup_begin_t b = {.dest = dest};
    mesh_status_t st = run_job(d, backup_begin_job, &b, err);
    bool done = false;
    int64_t remaining = 0, total = 0;
    while (st == MESH_OK && !done) {
        st = mesh_dbcopy_step(b.copy, 256, &done, &remaining, &total, err);
        if (st == MESH_OK && progress)
            progress(arg, total - remaining, total);
    }
    mesh_dbcopy_close(b.copy);
    pthread_mutex_unlock(&d->key_lock);
    /* the job wrote every buffered row out: the copy needs no log record to be whole */
    if (st == MESH_OK)
        st = mesh_store_mark_clean(dest, b.applied, err);
    if (st != MESH_OK) {
        clist_free(&b.contracts);
        mesh_err_prefix(err, "backup of domain %s: ", d->name);
        return st;
    }
    *applied = b.applied;
    *stream_seq = b.stream_seq;
    *crefs = b.contracts.v;
    *ncrefs = b.contracts.n;
    return MESH_OK;
}

/* ---- KEK rotation ---- */

mesh_status_t mesh_domain_rewrap(mesh_domain_t *d, const mesh_kek_t *const *keks, size_t n,
                                 const mesh_kek_t *now, mesh_err_t *err)
{
    if (d->kek == NULL)
        return MESH_OK;
    pthread_mutex_lock(&d->key_lock);
    mesh_status_t st = kf_save(d, keks, n, err);
    if (st == MESH_OK)
        d->kek = now;
    pthread_mutex_unlock(&d->key_lock);
    if (st != MESH_OK)
        mesh_err_prefix(err, "domain %s: ", d->name);
    return st;
}

void mesh_domain_keyinfo(mesh_domain_t *d, mesh_domain_keyinfo_t *out)
{
    memset(out, 0, sizeof *out);
    out->encrypted = d->kek != NULL;
    out->gen = atomic_load(&d->info_gen);
}

/* ---- disposal: retention and erasure ---- */

/* Writes a record made by the domain itself (a disposal, a refresh): through the domain's
 * stream when it is replicated, so every replica applies the same, else through the writer.
 * *rows: the rows it touched; *seq (if not NULL): its position. Frees the payload. */
static mesh_status_t submit_own(mesh_domain_t *d, item_t *it, int64_t *rows, uint64_t *seq,
                                mesh_err_t *err)
{
    mesh_replicator_t r = repl_get(d);
    if (r.publish) {
        mesh_apply_result_t ar;
        memset(&ar, 0, sizeof ar);
        mesh_status_t st = write_through_stream(d, &r, &it->payload, NULL, &ar, err);
        mesh_buf_free(&it->payload);
        if (st == MESH_OK) {
            *rows = (int64_t)ar.rows;
            if (seq)
                *seq = ar.stream_seq;
        }
        return st;
    }
    mesh_status_t st = submit(d, it);
    mesh_buf_free(&it->payload);
    if (st != MESH_OK && err && it->err.code != MESH_OK)
        *err = it->err;
    if (st == MESH_OK) {
        *rows = (int64_t)it->res.rows;
        if (seq)
            *seq = it->res.seq;
    }
    return st;
}

mesh_status_t mesh_domain_dispose(mesh_domain_t *d, const char *product, char why, int64_t cutoff,
                                  int64_t limit, const uint8_t *keys, size_t keys_len, size_t nkeys,
                                  int64_t *deleted, uint64_t *seq, mesh_err_t *err)
{
    *deleted = 0;
    size_t nl = strlen(product);
    if (nl == 0 || nl > MESH_NAME_MAX || (why != 'r' && why != 'e') || nkeys > UINT32_MAX ||
        keys_len > MESH_DLOG_MAX_RECORD / 2)
        return mesh_err_set(err, MESH_INVALID, "a bad disposal");
    if (why == 'e')
        cutoff = INT64_MIN;
    else if (cutoff == INT64_MIN)
        return mesh_err_set(err, MESH_INVALID, "a retention needs a cutoff");
    pthread_mutex_lock(&d->state_lock);
    bool known = clist_product(&d->current, product, NULL) != NULL;
    pthread_mutex_unlock(&d->state_lock);
    if (!known)
        return mesh_err_set(err, MESH_NOT_FOUND, "no product %s.%s", d->name, product);
    item_t it;
    memset(&it, 0, sizeof it);
    it.kind = K_DISPOSE;
    snprintf(it.product, sizeof it.product, "%s", product);
    mesh_buf_init(&it.payload, MESH_DLOG_MAX_RECORD);
    mesh_buf_addc(&it.payload, K_DISPOSE);
    mesh_buf_addc(&it.payload, why);
    mesh_buf_addc(&it.payload, (char)nl);
    mesh_buf_add(&it.payload, product, nl);
    uint8_t b[8];
    for (int k = 0; k < 8; k++)
        b[k] = (uint8_t)((uint64_t)cutoff >> (8 * k));
    mesh_buf_add(&it.payload, b, 8);
    for (int k = 0; k < 8; k++)
        b[k] = (uint8_t)((uint64_t)limit >> (8 * k));
    mesh_buf_add(&it.payload, b, 8);
    for (int k = 0; k < 4; k++)
        b[k] = (uint8_t)(nkeys >> (8 * k));
    mesh_buf_add(&it.payload, b, 4);
    if (keys_len)
        mesh_buf_add(&it.payload, keys, keys_len);
    if (it.payload.data == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    /* a replicated domain: through its stream, so every replica deletes the same rows */
    return submit_own(d, &it, deleted, seq, err);
}

/* ---- derived products defined by SQL (node/derived.c) ---- */

mesh_status_t mesh_domain_refresh(mesh_domain_t *d, const char *product, const char *time_col,
                                  int64_t since, const mesh_batch_t *b, int64_t *rows,
                                  uint64_t *seq, mesh_err_t *err)
{
    *rows = 0;
    size_t nl = strlen(product), cl = time_col ? strlen(time_col) : 0;
    if (nl == 0 || nl > MESH_NAME_MAX || cl > MESH_NAME_MAX || (time_col && cl == 0))
        return mesh_err_set(err, MESH_INVALID, "a bad refresh");
    pthread_mutex_lock(&d->state_lock);
    const mesh_product_t *pp = clist_product(&d->current, product, NULL);
    bool ok = pp && pp->derive && pp->derive->kind == MESH_DERIVE_SQL;
    pthread_mutex_unlock(&d->state_lock);
    if (!ok)
        return mesh_err_set(err, MESH_NOT_FOUND, "no product %s.%s derived by SQL", d->name,
                            product);
    item_t it;
    memset(&it, 0, sizeof it);
    it.kind = K_REFRESH;
    snprintf(it.product, sizeof it.product, "%s", product);
    mesh_buf_init(&it.payload, MESH_DLOG_MAX_RECORD);
    mesh_buf_addc(&it.payload, K_REFRESH);
    mesh_buf_addc(&it.payload, time_col ? 'i' : 'f');
    mesh_buf_addc(&it.payload, (char)nl);
    mesh_buf_add(&it.payload, product, nl);
    uint8_t hw[8];
    for (int k = 0; k < 8; k++)
        hw[k] = (uint8_t)((uint64_t)(time_col ? since : 0) >> (8 * k));
    mesh_buf_add(&it.payload, hw, 8);
    if (time_col) {
        mesh_buf_addc(&it.payload, (char)cl);
        mesh_buf_add(&it.payload, time_col, cl);
    }
    mesh_buf_addc(&it.payload, K_BATCH);
    mesh_status_t st = mesh_batch_encode(b, NULL, &it.payload);
    if (st != MESH_OK || it.payload.data == NULL) {
        mesh_buf_free(&it.payload);
        return mesh_err_set(err, MESH_TOO_LARGE,
                            "the derived product's rows are too large for a "
                            "log record");
    }
    return submit_own(d, &it, rows, seq, err);
}

bool mesh_domain_watch(mesh_domain_t *d, const char *product, const char *watcher)
{
    bool ok = false;
    pthread_mutex_lock(&d->state_lock);
    for (size_t i = 0; i < d->nwatch && !ok; i++)
        ok = strcmp(d->watch[i].product, product) == 0 && strcmp(d->watch[i].watcher, watcher) == 0;
    if (!ok && d->nwatch < DOMAIN_WATCH_MAX && strlen(product) <= MESH_NAME_MAX &&
        strlen(watcher) < sizeof d->watch[0].watcher) {
        struct watch *x = &d->watch[d->nwatch++];
        memset(x, 0, sizeof *x);
        snprintf(x->product, sizeof x->product, "%s", product);
        snprintf(x->watcher, sizeof x->watcher, "%s", watcher);
        ok = true;
    }
    pthread_mutex_unlock(&d->state_lock);
    return ok;
}

bool mesh_domain_written(mesh_domain_t *d, const char *product, const char *watcher, int64_t *min_t)
{
    bool any = false;
    *min_t = INT64_MAX;
    pthread_mutex_lock(&d->state_lock);
    for (size_t i = 0; i < d->nwatch; i++) {
        struct watch *x = &d->watch[i];
        if (strcmp(x->product, product) == 0 && strcmp(x->watcher, watcher) == 0) {
            any = x->any;
            *min_t = x->min_t;
            x->any = false;
        }
    }
    pthread_mutex_unlock(&d->state_lock);
    return any;
}

typedef struct vacuum_job {
    int64_t pages, freed;
} vacuum_job_t;

static mesh_status_t vacuum_job(mesh_domain_t *d, void *arg, mesh_err_t *err)
{
    vacuum_job_t *v = arg;
    return mesh_store_vacuum(d->store, v->pages, &v->freed, err);
}

mesh_status_t mesh_domain_vacuum(mesh_domain_t *d, int64_t max_pages, int64_t *freed,
                                 mesh_err_t *err)
{
    vacuum_job_t v = {.pages = max_pages, .freed = 0};
    mesh_status_t st = run_job(d, vacuum_job, &v, err);
    *freed = v.freed;
    return st;
}
