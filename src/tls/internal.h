/*
 * internal.h - what tls.c and cert.c share.
 */
#ifndef MESH_TLS_INTERNAL_H
#define MESH_TLS_INTERNAL_H

#include <openssl/x509.h>

#include "tls/tls.h"

/* The reason of the oldest error on OpenSSL's error queue ("no start line"), or fallback
 * when the queue is empty; clears the queue. */
const char *mesh__tls_reason(char *out, size_t cap, const char *fallback);

/*
 * Makes sure o->gen_dir holds a usable self-signed certificate and key: reuses cert.pem and
 * key.pem when they exist and the certificate does not expire within o->renew_days;
 * otherwise generates a new pair (EC P-256, SANs from o->names) and writes it (key.pem mode
 * 0600, written to a temporary file and renamed, the key first). Fills the two paths
 * (cap bytes each); *renewed tells a new certificate was made.
 */
mesh_status_t mesh__tls_cert_ensure(const mesh_tls_server_opts_t *o, char *cert_path,
                                    char *key_path, size_t cap, bool *renewed, mesh_err_t *err);

/* Fills the certificate facts of info (fingerprint, subject, SANs, expiry) from x. */
void mesh__tls_cert_describe(X509 *x, mesh_tls_info_t *info);

#endif
