/*
 * tls.h - TLS for meshd's listeners and meshctl's connections (the only module that includes
 * OpenSSL's ssl.h).
 *
 * Server side: one mesh_tls_t holds an SSL_CTX set up once at start (TLS 1.2 and 1.3 only;
 * for 1.2 only ECDHE key exchange with AEAD ciphers) with the node's certificate and key,
 * and optionally the CAs whose client certificates are accepted. The SSL_CTX is shared
 * by every HTTP worker thread; each accepted connection gets its own SSL from
 * mesh_tls_new_ssl(). When no certificate is configured, a self-signed one (EC P-256) is
 * generated on first start in a directory of the data dir and reused on later starts.
 *
 * Client side (meshctl through libcurl): mesh_tls_client_hook() takes over the check of the
 * server's certificate on the SSL_CTX libcurl hands to its CURLOPT_SSL_CTX_FUNCTION, so a
 * certificate can be pinned by its SHA-256 fingerprint (of the whole DER certificate, what
 * `openssl x509 -noout -fingerprint -sha256` prints and meshd logs at start), and the
 * fingerprint of whatever certificate the server presented can be reported on failure.
 */
#ifndef MESH_TLS_TLS_H
#define MESH_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

struct ssl_st; /* OpenSSL's SSL, opaque here */

#define MESH_TLS_FP_LEN        32                            /* bytes of a SHA-256 fingerprint */
#define MESH_TLS_FP_TEXT       (7 + 2 * MESH_TLS_FP_LEN + 1) /* "sha256:" + hex + NUL */
#define MESH_TLS_MAX_PINS      16                            /* pins in one --pin list */
#define MESH_TLS_PINS_MAX_TEXT 2048                          /* longest --pin text accepted */

typedef enum {
    MESH_TLS_CLIENT_OFF,      /* no client certificate asked for */
    MESH_TLS_CLIENT_OPTIONAL, /* asked for; a presented one must verify, none is fine */
    MESH_TLS_CLIENT_REQUIRE,  /* a verified client certificate is required */
} mesh_tls_client_auth_t;

/* Parses "off|optional|require"; false on anything else. */
bool mesh_tls_client_auth_parse(const char *s, mesh_tls_client_auth_t *out);

/* What a server context was made from. Strings are borrowed for the call only. */
typedef struct mesh_tls_server_opts {
    const char *cert_file;      /* PEM certificate (then its chain); NULL: generated */
    const char *key_file;       /* PEM private key; NULL: in cert_file */
    const char *client_ca_file; /* PEM CAs of accepted client certificates, or NULL */
    mesh_tls_client_auth_t client_auth;
    /* for a generated certificate: */
    const char *gen_dir;      /* directory of cert.pem and key.pem (created 0700) */
    const char *common_name;  /* subject CN (the node name) */
    const char *const *names; /* subject alternative names: host names or IP literals */
    size_t nnames;            /* (invalid ones are skipped, duplicates dropped) */
    int validity_days;        /* of a generated certificate */
    int renew_days;           /* a generated one expiring within this is replaced */
} mesh_tls_server_opts_t;

/* Facts about the server certificate in use (for logs and /v1/status). */
typedef struct mesh_tls_info {
    char fingerprint[MESH_TLS_FP_TEXT]; /* "sha256:<64 lower-case hex>" of the DER cert */
    bool generated;                     /* the self-signed one from gen_dir */
    bool renewed;                       /* generated at this start (first, or replaced) */
    char cert_file[4096];               /* the file it was loaded from */
    char subject[256];                  /* one-line subject ("CN=node1, O=meshd") */
    char sans[512];                     /* "DNS:node1, IP:127.0.0.1, ..." (may be cut) */
    int64_t not_after_ns;               /* expiry, ns since the epoch */
    mesh_tls_client_auth_t client_auth;
} mesh_tls_info_t;

typedef struct mesh_tls mesh_tls_t;

/*
 * Creates the server context: loads (or generates, then loads) the certificate and key,
 * checks they match, and sets up client-certificate checks. Errors name the option and
 * the file ("tls_key /etc/meshd/key.pem: not a PEM private key"). Warnings (a key file
 * others may read, a certificate that expired) are logged. Destroy with mesh_tls_destroy.
 */
mesh_status_t mesh_tls_server_create(const mesh_tls_server_opts_t *o, mesh_tls_t **out,
                                     mesh_err_t *err);
/* Frees the context (NULL is fine); connections still open keep their own reference. */
void mesh_tls_destroy(mesh_tls_t *t);
/* A copy of the facts about the certificate in use (it may change with a reload). */
void mesh_tls_info_get(mesh_tls_t *t, mesh_tls_info_t *out);
/* Builds a new context from o (re-reading the certificate, key and client CAs, renewing a
 * generated certificate near its expiry) and puts it in place for new connections; on any
 * error the one in use stays and the error is returned. Thread-safe with new_ssl. */
mesh_status_t mesh_tls_server_reload(mesh_tls_t *t, const mesh_tls_server_opts_t *o,
                                     mesh_err_t *err);
/* A new server-side SSL for one accepted connection (NULL when out of memory). The caller
 * (a bufferevent with BEV_OPT_CLOSE_ON_FREE) frees it. */
struct ssl_st *mesh_tls_new_ssl(mesh_tls_t *t);
/* Frees an SSL that was not handed to a bufferevent (NULL is fine). */
void mesh_tls_free_ssl(struct ssl_st *ssl);
/* The subject of the peer's verified certificate ("CN=sensor-7, O=plant-a") into out;
 * false when the peer presented none. */
bool mesh_tls_peer_subject(struct ssl_st *ssl, char *out, size_t cap);

/* ---- certificates and fingerprints ---- */

/* "sha256:<hex>" of a fingerprint into out (MESH_TLS_FP_TEXT bytes). */
void mesh_tls_fp_format(const uint8_t fp[MESH_TLS_FP_LEN], char *out);
/* The fingerprint of the first certificate of a PEM file. */
mesh_status_t mesh_tls_file_fingerprint(const char *path, uint8_t fp[MESH_TLS_FP_LEN],
                                        mesh_err_t *err);

/*
 * Parses a pin list: one or more "sha256:HEX" separated by commas, HEX being the 64 hex
 * digits of the certificate's SHA-256 fingerprint, either plain or in colon-separated
 * pairs as openssl prints them (any case; spaces around items are ignored). At most
 * MESH_TLS_MAX_PINS pins and MESH_TLS_PINS_MAX_TEXT characters. MESH_INVALID with the
 * reason for anything else.
 */
mesh_status_t mesh_tls_pins_parse(const char *s, uint8_t pins[][MESH_TLS_FP_LEN], size_t max,
                                  size_t *n, mesh_err_t *err);

/* ---- a small certificate authority (meshctl mesh config) ---- */

typedef struct mesh_tls_ca mesh_tls_ca_t;

/* Makes a new CA (EC P-256, CA:TRUE with pathlen 0, valid days) and writes its certificate
 * (0644) and key (0600, written first). Destroy with mesh_tls_ca_destroy. */
mesh_status_t mesh_tls_ca_create(const char *cn, int days, const char *cert_path,
                                 const char *key_path, mesh_tls_ca_t **out, mesh_err_t *err);
/* Issues an end-entity certificate (EC P-256, serverAuth and clientAuth) for cn with the
 * subject alternative names (host names or IP literals; unfit ones skipped) and writes it
 * like mesh_tls_ca_create. */
mesh_status_t mesh_tls_ca_issue(mesh_tls_ca_t *ca, const char *cn, const char *const *names,
                                size_t nnames, int days, const char *cert_path,
                                const char *key_path, mesh_err_t *err);
void mesh_tls_ca_destroy(mesh_tls_ca_t *ca);

/* ---- client side ---- */

/* Client-side check state: the pins to enforce, and what the server presented. */
typedef struct mesh_tls_client_check {
    const uint8_t (*pins)[MESH_TLS_FP_LEN]; /* borrowed; NULL or npins == 0: no pinning */
    size_t npins;
    char seen[MESH_TLS_FP_TEXT]; /* fingerprint of the server's certificate, "" if none */
    bool pin_mismatch;           /* the certificate matched no pin */
    bool cert_requested;         /* the server asked for a client certificate and none was set */
} mesh_tls_client_check_t;

/*
 * Installs the certificate check on a client SSL_CTX (libcurl's, passed as void *): it
 * records the fingerprint of the server's certificate in chk->seen; with pins, the
 * certificate is accepted exactly when its fingerprint is one of them (the chain and
 * validity dates are then not checked: the pin is the trust); without pins the usual
 * chain check runs. It also notes when the server asks for a client certificate while none
 * is set (the server's refusal may come as a bare reset). chk must outlive the handshake.
 */
void mesh_tls_client_hook(void *ssl_ctx, mesh_tls_client_check_t *chk);

#endif
