/*
 * source.h - edge offline (docs/mesh.md, decision 0025): the hub's copy of a domain whose
 * stream lives on an edge leaf server.
 *
 * A node behind a leaf (its JetStream account answers with a domain other than "hub") keeps
 * its replicated domains' streams MESHD_DOM_<domain> in the leaf's JetStream domain (R1), so
 * writes are acknowledged by the leaf with the uplink down. For each such domain that is not
 * residency local, the node makes sure the hub has stream MESHD_COPY_<domain> (in JetStream
 * domain "hub", R3 on a hub of 3) whose only source is the leaf's stream, reached through
 * the leaf link with the API prefix $JS.<leaf domain>.API. JetStream does the rest: the hub
 * pulls what it has not got whenever the link is up, in order, and resumes after the last
 * sequence it holds (no loss, no duplicates). The node only creates the copy and watches it;
 * a residency-local domain never gets one (and the generated leaf config keeps its subjects
 * off the link).
 */
#ifndef MESH_MESH_SOURCE_H
#define MESH_MESH_SOURCE_H

#include <stdint.h>

#include "core/status.h"
#include "mesh/mesh.h"

#define MESH_SOURCE_HUB_DOMAIN "hub"

typedef struct mesh_source mesh_source_t;

/* Whether the domain may be copied off its site (false: residency local). Asked before every
 * creation of the copy, so a policy made stricter later is obeyed; a copy that exists already
 * is left to the hub's operators (the node may not delete streams on the hub). */
typedef bool (*mesh_source_allowed_fn)(void *arg, const char *domain);

/* Starts looking after the hub's copy of domain's stream over m (borrowed: it must outlive
 * the source). allowed is called on the source's thread. */
mesh_status_t mesh_source_start(mesh_mesh_t *m, const char *domain, mesh_source_allowed_fn allowed,
                                void *arg, mesh_source_t **out, mesh_err_t *err);
/* Stops the thread and frees. NULL is fine. */
void mesh_source_stop(mesh_source_t *s);

typedef struct mesh_source_status {
    /* "waiting" (no link), "hub" (this node is not behind a leaf: nothing to source),
     * "sourcing" (the copy exists; the hub pulls it when the link is up), "local" (residency
     * local: no copy is made), "error" (literal) */
    const char *state;
    char leaf_domain[64]; /* the JetStream domain of the node's leaf ("" when unknown) */
    char copy[96];        /* MESHD_COPY_<domain> */
    uint64_t copy_last;   /* last sequence of the copy when last seen (the hub's copy) */
    int replicas;         /* of the copy (0: unknown) */
    char last_error[200];
} mesh_source_status_t;
void mesh_source_status(mesh_source_t *s, mesh_source_status_t *out);

#endif
