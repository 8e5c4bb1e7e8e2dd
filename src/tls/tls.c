/*
 * tls.c - the server SSL_CTX of the node's listeners, per-connection SSL objects, the
 * client-side certificate check meshctl installs in libcurl, and the pin list parser (see
 * tls.h).
 *
 * Policy (fixed, not configurable, so no deployment can weaken it by accident): TLS 1.2 and
 * 1.3 only; for TLS 1.2 only ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 (forward
 * secrecy, AEAD: no CBC, no RSA key exchange, no static DH); no renegotiation, no
 * compression. Groups X25519, P-256, P-384.
 */
#include <errno.h>
#include <pthread.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/util.h"
#include "tls/internal.h"

static const char ciphers_tls12[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char suites_tls13[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
static const char groups[] = "X25519:P-256:P-384";

struct mesh_tls {
    pthread_mutex_t lock; /* guards ctx and info against a reload */
    SSL_CTX *ctx;
    mesh_tls_info_t info;
};

bool mesh_tls_client_auth_parse(const char *s, mesh_tls_client_auth_t *out)
{
    if (s == NULL || strcmp(s, "off") == 0)
        *out = MESH_TLS_CLIENT_OFF;
    else if (strcmp(s, "optional") == 0)
        *out = MESH_TLS_CLIENT_OPTIONAL;
    else if (strcmp(s, "require") == 0)
        *out = MESH_TLS_CLIENT_REQUIRE;
    else
        return false;
    return true;
}

void mesh_tls_fp_format(const uint8_t fp[MESH_TLS_FP_LEN], char *out)
{
    memcpy(out, "sha256:", 7);
    mesh_hex(fp, MESH_TLS_FP_LEN, out + 7);
}

mesh_status_t mesh_tls_file_fingerprint(const char *path, uint8_t fp[MESH_TLS_FP_LEN],
                                        mesh_err_t *err)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return mesh_err_set(err, MESH_IO, "%s: %s", path, strerror(errno));
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    char why[256];
    if (x == NULL)
        return mesh_err_set(err, MESH_INVALID, "%s: not a PEM certificate (%s)", path,
                            mesh__tls_reason(why, sizeof why, "unknown error"));
    unsigned n = 0;
    uint8_t md[EVP_MAX_MD_SIZE];
    int ok = X509_digest(x, EVP_sha256(), md, &n);
    X509_free(x);
    if (!ok || n != MESH_TLS_FP_LEN)
        return mesh_err_set(err, MESH_INTERNAL, "%s: cannot compute its fingerprint", path);
    memcpy(fp, md, MESH_TLS_FP_LEN);
    return MESH_OK;
}

/* ---- server ---- */

/* Never prompt for a passphrase (the default callback reads the terminal): an encrypted key
 * fails to load with a clear error instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* Opens the file to give errno's reason (missing, unreadable) before OpenSSL's. */
static mesh_status_t check_readable(const char *what, const char *path, mesh_err_t *err)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return mesh_err_set(err, MESH_INVALID, "%s %s: %s", what, path, strerror(errno));
    fclose(f);
    return MESH_OK;
}

static mesh_status_t load_pair(SSL_CTX *ctx, const char *cert_what, const char *cert,
                               const char *key_what, const char *key, mesh_err_t *err)
{
    char why[256];
    mesh_status_t st;
    if ((st = check_readable(cert_what, cert, err)) != MESH_OK)
        return st;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        return mesh_err_set(err, MESH_INVALID, "%s %s: no usable PEM certificate (%s)", cert_what,
                            cert, mesh__tls_reason(why, sizeof why, "unknown error"));
    const char *kf = key ? key : cert;
    if (key && (st = check_readable(key_what, key, err)) != MESH_OK)
        return st;
    if (SSL_CTX_use_PrivateKey_file(ctx, kf, SSL_FILETYPE_PEM) != 1) {
        /* OpenSSL checks the key against the certificate as it loads it */
        unsigned long e, first = 0;
        bool mismatch = false;
        while ((e = ERR_get_error()) != 0) {
            if (first == 0)
                first = e;
            mismatch |= ERR_GET_LIB(e) == ERR_LIB_X509 &&
                        (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
                         ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH);
        }
        if (mismatch)
            return mesh_err_set(err, MESH_INVALID, "%s %s does not match the certificate in %s %s",
                                key_what, kf, cert_what, cert);
        const char *r = first ? ERR_reason_error_string(first) : NULL;
        snprintf(why, sizeof why, "%s", r ? r : "unknown error");
        if (key == NULL)
            return mesh_err_set(err, MESH_INVALID, "%s %s holds no usable private key (%s): set %s",
                                cert_what, cert, why, key_what);
        return mesh_err_set(err, MESH_INVALID,
                            "%s %s: not a usable PEM private key (%s; an encrypted key is not "
                            "supported)",
                            key_what, key, why);
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        return mesh_err_set(err, MESH_INVALID, "%s %s does not match the certificate in %s %s",
                            key_what, kf, cert_what, cert);
    }
    struct stat sb;
    if (stat(kf, &sb) == 0 && (sb.st_mode & 077))
        LOG_WARN("tls", "the private key %s can be read by other users: chmod 600 %s", kf, kf);
    return MESH_OK;
}

static mesh_status_t setup_client_auth(SSL_CTX *ctx, const mesh_tls_server_opts_t *o,
                                       mesh_err_t *err)
{
    static const char *names[] = {"off", "optional", "require"};
    if (o->client_auth == MESH_TLS_CLIENT_OFF) {
        if (o->client_ca_file && *o->client_ca_file)
            LOG_WARN("tls", "tls_client_ca %s is not used: tls_client_auth is off",
                     o->client_ca_file);
        return MESH_OK;
    }
    const char *ca = o->client_ca_file;
    if (ca == NULL || *ca == '\0')
        return mesh_err_set(err, MESH_INVALID,
                            "tls_client_auth = %s needs tls_client_ca (the CA certificates "
                            "whose client certificates are accepted)",
                            names[o->client_auth]);
    mesh_status_t st = check_readable("tls_client_ca", ca, err);
    if (st != MESH_OK)
        return st;
    char why[256];
    STACK_OF(X509_NAME) *list = SSL_load_client_CA_file(ca);
    if (list == NULL || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        sk_X509_NAME_pop_free(list, X509_NAME_free);
        return mesh_err_set(err, MESH_INVALID,
                            "tls_client_ca %s: no usable PEM CA certificate (%s)", ca,
                            mesh__tls_reason(why, sizeof why, "no certificate in it"));
    }
    SSL_CTX_set_client_CA_list(ctx, list); /* takes list */
    int mode = SSL_VERIFY_PEER;
    if (o->client_auth == MESH_TLS_CLIENT_REQUIRE)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, NULL);
    SSL_CTX_set_verify_depth(ctx, 8);
    return MESH_OK;
}

static void warn_dates(const mesh_tls_info_t *info)
{
    int64_t now = mesh_now_ns();
    char when[MESH_TIME_MAX];
    mesh_time_format(info->not_after_ns, when);
    if (info->not_after_ns && info->not_after_ns < now)
        LOG_WARN("tls",
                 "the certificate in %s expired on %s: clients that check it will refuse this "
                 "node",
                 info->cert_file, when);
    else if (info->not_after_ns && info->not_after_ns - now < 30 * 86400 * MESH_NS_PER_SEC)
        LOG_WARN("tls", "the certificate in %s expires on %s: renew it", info->cert_file, when);
}

mesh_status_t mesh_tls_server_create(const mesh_tls_server_opts_t *o, mesh_tls_t **out,
                                     mesh_err_t *err)
{
    *out = NULL;
    ERR_clear_error();
    mesh_tls_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    pthread_mutex_init(&t->lock, NULL);
    mesh_status_t st = MESH_OK;
    char why[256];
    SSL_CTX *ctx = t->ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, ciphers_tls12) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, suites_tls13) != 1 ||
        SSL_CTX_set1_groups_list(ctx, groups) != 1 ||
        SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"meshd", 5) != 1) {
        st = mesh_err_set(err, MESH_INTERNAL, "cannot set up TLS: %s",
                          mesh__tls_reason(why, sizeof why, "out of memory"));
        goto err;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* bufferevent_openssl may retry a write from a moved buffer; idle connections keep no
     * read/write buffers (a small hub holds many idle keep-alive connections) */
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);

    t->info.client_auth = o->client_auth;
    char cert_path[4096], key_path[4096];
    if (o->cert_file && *o->cert_file) {
        st = load_pair(ctx, "tls_cert", o->cert_file, "tls_key",
                       o->key_file && *o->key_file ? o->key_file : NULL, err);
        snprintf(t->info.cert_file, sizeof t->info.cert_file, "%s", o->cert_file);
    } else {
        if (o->key_file && *o->key_file) {
            st = mesh_err_set(err, MESH_INVALID,
                              "tls_key is set but tls_cert is not: give both, or neither for a "
                              "generated certificate");
            goto err;
        }
        if ((st = mesh__tls_cert_ensure(o, cert_path, key_path, sizeof cert_path, &t->info.renewed,
                                        err)) != MESH_OK)
            goto err;
        t->info.generated = true;
        snprintf(t->info.cert_file, sizeof t->info.cert_file, "%s", cert_path);
        st = load_pair(ctx, "generated certificate", cert_path, "generated key", key_path, err);
    }
    if (st != MESH_OK)
        goto err;
    if ((st = setup_client_auth(ctx, o, err)) != MESH_OK)
        goto err;
    X509 *x = SSL_CTX_get0_certificate(ctx);
    if (x == NULL) {
        st = mesh_err_set(err, MESH_INTERNAL, "no certificate after loading %s", t->info.cert_file);
        goto err;
    }
    mesh__tls_cert_describe(x, &t->info);
    if (!t->info.generated)
        warn_dates(&t->info);
    *out = t;
    return MESH_OK;
err:
    mesh_tls_destroy(t);
    return st;
}

void mesh_tls_destroy(mesh_tls_t *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

void mesh_tls_info_get(mesh_tls_t *t, mesh_tls_info_t *out)
{
    pthread_mutex_lock(&t->lock);
    *out = t->info;
    pthread_mutex_unlock(&t->lock);
}

mesh_status_t mesh_tls_server_reload(mesh_tls_t *t, const mesh_tls_server_opts_t *o,
                                     mesh_err_t *err)
{
    mesh_tls_t *nt;
    mesh_status_t st = mesh_tls_server_create(o, &nt, err);
    if (st != MESH_OK)
        return st; /* the certificate in use stays */
    pthread_mutex_lock(&t->lock);
    SSL_CTX *old = t->ctx;
    t->ctx = nt->ctx;
    t->info = nt->info;
    nt->ctx = old; /* connections made before keep their own reference to it */
    pthread_mutex_unlock(&t->lock);
    mesh_tls_destroy(nt);
    return MESH_OK;
}

struct ssl_st *mesh_tls_new_ssl(mesh_tls_t *t)
{
    pthread_mutex_lock(&t->lock);
    SSL *ssl = SSL_new(t->ctx);
    pthread_mutex_unlock(&t->lock);
    return ssl;
}

void mesh_tls_free_ssl(struct ssl_st *ssl)
{
    SSL_free(ssl);
}

bool mesh_tls_peer_subject(struct ssl_st *ssl, char *out, size_t cap)
{
    X509 *x = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    if (x == NULL || cap == 0)
        return false;
    mesh_tls_info_t info;
    memset(&info, 0, sizeof info);
    mesh__tls_cert_describe(x, &info);
    snprintf(out, cap, "%s", info.subject);
    return true;
}

/* ---- client ---- */

static int client_verify(X509_STORE_CTX *xs, void *arg)
{
    mesh_tls_client_check_t *chk = arg;
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (leaf == NULL || !X509_digest(leaf, EVP_sha256(), md, &n) || n != MESH_TLS_FP_LEN) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    mesh_tls_fp_format(md, chk->seen);
    if (chk->pins == NULL || chk->npins == 0)
        return X509_verify_cert(xs);
    for (size_t i = 0; i < chk->npins; i++)
        if (CRYPTO_memcmp(md, chk->pins[i], MESH_TLS_FP_LEN) == 0)
            return 1; /* the pin is the trust: the error stays X509_V_OK */
    chk->pin_mismatch = true;
    X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

static int check_index = -1;
static pthread_once_t check_once = PTHREAD_ONCE_INIT;

static void check_index_init(void)
{
    check_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* Called by OpenSSL when the server asks for a certificate and the context has none. */
static int client_cert_asked(SSL *ssl, X509 **x, EVP_PKEY **key)
{
    (void)x;
    (void)key;
    mesh_tls_client_check_t *chk =
        check_index >= 0 ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), check_index) : NULL;
    if (chk)
        chk->cert_requested = true;
    return 0; /* no certificate to send */
}

void mesh_tls_client_hook(void *ssl_ctx, mesh_tls_client_check_t *chk)
{
    SSL_CTX *ctx = ssl_ctx;
    SSL_CTX_set_cert_verify_callback(ctx, client_verify, chk);
    pthread_once(&check_once, check_index_init);
    if (check_index >= 0 && SSL_CTX_set_ex_data(ctx, check_index, chk) == 1)
        SSL_CTX_set_client_cert_cb(ctx, client_cert_asked);
}

/* ---- pins ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* 64 hex digits, or 32 pairs separated by ':' (95 characters). */
static bool parse_fp_hex(const char *p, size_t n, uint8_t out[MESH_TLS_FP_LEN])
{
    size_t step;
    if (n == 2 * MESH_TLS_FP_LEN)
        step = 2;
    else if (n == 3 * MESH_TLS_FP_LEN - 1)
        step = 3;
    else
        return false;
    for (size_t i = 0; i < MESH_TLS_FP_LEN; i++) {
        const char *q = p + i * step;
        int a = hexval(q[0]), b = hexval(q[1]);
        if (a < 0 || b < 0)
            return false;
        if (step == 3 && i + 1 < MESH_TLS_FP_LEN && q[2] != ':')
            return false;
        out[i] = (uint8_t)(a << 4 | b);
    }
    return true;
}

mesh_status_t mesh_tls_pins_parse(const char *s, uint8_t pins[][MESH_TLS_FP_LEN], size_t max,
                                  size_t *n, mesh_err_t *err)
{
    *n = 0;
    size_t len = strnlen(s, MESH_TLS_PINS_MAX_TEXT + 1);
    if (len > MESH_TLS_PINS_MAX_TEXT)
        return mesh_err_set(err, MESH_INVALID, "the pin list is longer than %d characters",
                            MESH_TLS_PINS_MAX_TEXT);
    const char *p = s, *end = s + len;
    for (size_t item = 1;; item++) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        while (p < stop && (*p == ' ' || *p == '\t'))
            p++;
        const char *e = stop;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        size_t l = (size_t)(e - p);
        if (l == 0)
            return mesh_err_set(err, MESH_INVALID, "pin %zu is empty (expected sha256:HEX)", item);
        if (*n == max)
            return mesh_err_set(err, MESH_INVALID, "more than %zu pins", max);
        if (l < 7 || strncasecmp(p, "sha256:", 7) != 0)
            return mesh_err_set(err, MESH_INVALID,
                                "pin %zu: expected sha256:HEX, the SHA-256 fingerprint of the "
                                "node's certificate",
                                item);
        if (!parse_fp_hex(p + 7, l - 7, pins[*n]))
            return mesh_err_set(err, MESH_INVALID,
                                "pin %zu: expected 64 hex digits after 'sha256:' (plain or in "
                                "pairs separated by ':')",
                                item);
        (*n)++;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return MESH_OK;
}
