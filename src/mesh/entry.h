/*
 * entry.h - one node's entry in the mesh registry (the JetStream KV bucket meshd_nodes):
 * who the node is, where its API is, and the domains and products it hosts.
 *
 * The value is JSON. A node writes its own entry (mesh_entry_encode) at every heartbeat; any
 * node reads every entry (mesh_entry_parse). What is read comes from other processes over
 * the network, so the parser is strict and bounded: a size limit before parsing, a cap on
 * domains, products and owners, names checked like local ones (mesh_name_*_ok), other text
 * limited in length and free of control characters. An entry that fails any check is
 * refused as a whole. Nothing of a parsed value is passed on without being re-encoded from
 * the checked struct.
 *
 * Format (version 1):
 *   {"v":1,"node_id":"...","name":"n1","site":"plant-a","version":"0.1.0",
 *    "api":"https://10.0.0.5:7070","state":"running"|"stopped",
 *    "started":<unix ns>,"heartbeat":<unix ns>,"ttl":<ns>,
 *    "sign_key":"<hex of the node's Ed25519 public key, 64 digits>",  (optional)
 *    "domains":[{"name":"factory-a","owners":["ops@x"],
 *                "hosts":["n1","n2"],"replication":"sync",
 *                "products":[{"name":"telemetry","contract":"id","version":"1.0.0"}]}]}
 * hosts and replication are optional (entries of older nodes lack them: no hosts, "none").
 */
#ifndef MESH_MESH_ENTRY_H
#define MESH_MESH_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

#define MESH_ENTRY_MAX_BYTES    (256 * 1024) /* largest value parsed (and written) */
#define MESH_ENTRY_MAX_DOMAINS  256          /* domains in one entry */
#define MESH_ENTRY_MAX_PRODUCTS 1024         /* products in one entry, all domains */
#define MESH_ENTRY_MAX_OWNERS   32           /* owners of one domain */
#define MESH_ENTRY_MAX_TEXT     256          /* bytes of a free-text field (site, api, ...) */
#define MESH_ENTRY_NODE_MAX     63           /* node names: [A-Za-z0-9_-]{1,63} */
#define MESH_ENTRY_MAX_HOSTS    16           /* hosting nodes of one domain */

typedef struct mesh_entry_product {
    char *name;     /* product name (mesh_name_product_ok) */
    char *contract; /* contract id */
    char *version;  /* contract version */
} mesh_entry_product_t;

typedef struct mesh_entry_domain {
    char *name; /* mesh_name_domain_ok */
    char **owners;
    size_t nowners;
    char **hosts; /* the nodes hosting it (node names) */
    size_t nhosts;
    char replication[8]; /* "none", "sync" or "async" ("" in an encoder's struct: "none") */
    mesh_entry_product_t *products;
    size_t nproducts;
} mesh_entry_domain_t;

typedef struct mesh_entry {
    char *node_id;
    char *name; /* node name, also the registry key */
    char *site;
    char *version;                    /* meshd version */
    char *api;                        /* https://host:port of the node's HTTP API */
    bool stopped;                     /* the node stopped cleanly (state "stopped") */
    int64_t started_ns, heartbeat_ns; /* Unix ns, the writer's clock */
    int64_t ttl_ns;                   /* how long after a heartbeat the writer counts as alive */
    bool has_sign_key;                /* sign_key is set (nodes before federation have none) */
    uint8_t sign_key[32];             /* Ed25519 public key of the node (crypt/sign.h) */
    mesh_entry_domain_t *domains;
    size_t ndomains;
} mesh_entry_t;

/* Whether s may be a node name (and so a KV key and a NATS user / subject token). */
bool mesh_entry_node_name_ok(const char *s);

/* Appends the JSON of e to out. MESH_TOO_LARGE past MESH_ENTRY_MAX_BYTES. */
mesh_status_t mesh_entry_encode(const mesh_entry_t *e, mesh_buf_t *out);

/* Parses and checks a value read from the registry. On success *out is the caller's (free
 * with mesh_entry_free); on failure err says why (MESH_TOO_LARGE, MESH_PARSE, MESH_INVALID). */
mesh_status_t mesh_entry_parse(const char *p, size_t n, mesh_entry_t **out, mesh_err_t *err);

/* Frees an entry made by mesh_entry_parse (NULL is fine). */
void mesh_entry_free(mesh_entry_t *e);

#endif
