/*
 * cert.c - the self-signed certificate a node makes for itself when none is configured, and
 * the facts shown about any certificate (fingerprint, subject, names, expiry).
 *
 * Design: the certificate is an end-entity certificate (basicConstraints CA:FALSE, key usage
 * digitalSignature, extended key usage serverAuth), so a client that trusts the file trusts
 * exactly this certificate and nothing its key might sign. The key is EC P-256. The pair
 * lives in the data directory and is reused on every later start, so its fingerprint is
 * stable and can be pinned; it is replaced only when it is about to expire (the log says so,
 * with the new fingerprint).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "tls/internal.h"

const char *mesh__tls_reason(char *out, size_t cap, const char *fallback)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(out, cap, "%s", r ? r : fallback);
    ERR_clear_error();
    return out;
}

/* ---- describing a certificate ---- */

static void sans_text(X509 *x, char *out, size_t cap)
{
    out[0] = '\0';
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    size_t len = 0;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && len + 1 < cap; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char item[300] = "";
        if (g->type == GEN_DNS) {
            const ASN1_STRING *s = g->d.dNSName;
            snprintf(item, sizeof item, "DNS:%.*s",
                     ASN1_STRING_length(s) > 253 ? 253 : ASN1_STRING_length(s),
                     (const char *)ASN1_STRING_get0_data(s));
        } else if (g->type == GEN_IPADD) {
            const ASN1_OCTET_STRING *s = g->d.iPAddress;
            char ip[INET6_ADDRSTRLEN] = "?";
            int l = ASN1_STRING_length(s);
            if (l == 4 || l == 16)
                inet_ntop(l == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), ip, sizeof ip);
            snprintf(item, sizeof item, "IP:%s", ip);
        } else {
            continue;
        }
        len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? ", " : "", item);
    }
    if (len >= cap)
        out[cap - 1] = '\0';
    /* printable ASCII only: the text goes to logs and JSON */
    for (char *c = out; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            *c = '?';
    GENERAL_NAMES_free(gens);
}

void mesh__tls_cert_describe(X509 *x, mesh_tls_info_t *info)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (X509_digest(x, EVP_sha256(), md, &mdlen) && mdlen == MESH_TLS_FP_LEN)
        mesh_tls_fp_format(md, info->fingerprint);
    info->subject[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (b && X509_NAME_print_ex(b, X509_get_subject_name(x), 0,
                                XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        char *p;
        long n = BIO_get_mem_data(b, &p);
        snprintf(info->subject, sizeof info->subject, "%.*s", (int)(n > 255 ? 255 : n), p);
    }
    BIO_free(b);
    for (char *c = info->subject; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            *c = '?';
    sans_text(x, info->sans, sizeof info->sans);
    struct tm tm;
    info->not_after_ns = 0;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
        info->not_after_ns = (int64_t)timegm(&tm) * MESH_NS_PER_SEC;
    ERR_clear_error();
}

/* ---- generating one ---- */

/* A host name fit for a dNSName: dot-separated labels of letters, digits, '-' and '_'. */
static bool dns_name_ok(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (const char *c = s; *c; c++) {
        if (*c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '-' || *c == '_';
        if (!ok || ++label > 63)
            return false;
    }
    return true;
}

/* Adds one name (an IP literal or a host name) unless it is there already or unfit. */
static bool add_name(GENERAL_NAMES *gens, const char *name)
{
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);
    ERR_clear_error();
    if (ip == NULL && !dns_name_ok(name))
        return true; /* skipped: not a name a certificate can carry */
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (ip && g->type == GEN_IPADD && ASN1_OCTET_STRING_cmp(g->d.iPAddress, ip) == 0) {
            ASN1_OCTET_STRING_free(ip);
            return true;
        }
        if (!ip && g->type == GEN_DNS && (size_t)ASN1_STRING_length(g->d.dNSName) == strlen(name) &&
            strncasecmp((const char *)ASN1_STRING_get0_data(g->d.dNSName), name, strlen(name)) == 0)
            return true;
    }
    GENERAL_NAME *g = GENERAL_NAME_new();
    if (g == NULL) {
        ASN1_OCTET_STRING_free(ip);
        return false;
    }
    if (ip) {
        GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
    } else {
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        if (s == NULL || !ASN1_STRING_set(s, name, (int)strlen(name))) {
            ASN1_IA5STRING_free(s);
            GENERAL_NAME_free(g);
            return false;
        }
        GENERAL_NAME_set0_value(g, GEN_DNS, s);
    }
    if (!sk_GENERAL_NAME_push(gens, g)) {
        GENERAL_NAME_free(g);
        return false;
    }
    return true;
}

static bool add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (e == NULL)
        return false;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok == 1;
}

/* A common name for the subject: the node name when it is short plain text, else "meshd". */
static const char *common_name(const char *cn)
{
    if (cn == NULL || *cn == '\0' || strlen(cn) > 64)
        return "meshd";
    for (const char *c = cn; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            return "meshd";
    return cn;
}

static mesh_status_t make_cert(const mesh_tls_server_opts_t *o, EVP_PKEY **okey, X509 **ox,
                               mesh_err_t *err)
{
    char why[256];
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    BIGNUM *serial = NULL;
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    uint8_t rnd[16];
    if (key == NULL || x == NULL || gens == NULL)
        goto fail;
    if (mesh_random(rnd, sizeof rnd) != MESH_OK) {
        ERR_raise(ERR_LIB_X509, ERR_R_INTERNAL_ERROR);
        goto fail;
    }
    rnd[0] = (uint8_t)((rnd[0] & 0x7f) | 0x40); /* positive, 16 bytes long */
    if ((serial = BN_bin2bn(rnd, sizeof rnd, NULL)) == NULL ||
        BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL)
        goto fail;
    X509_NAME *name = X509_get_subject_name(x);
    if (!X509_set_version(x, X509_VERSION_3) ||
        /* an hour back: a client whose clock is a little behind still accepts it */
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), o->validity_days, 0, NULL) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                    (const unsigned char *)common_name(o->common_name), -1, -1,
                                    0) ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                    (const unsigned char *)"meshd self-signed", -1, -1, 0) ||
        !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, key))
        goto fail;
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    if (!add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") ||
        !add_ext(x, &ctx, NID_ext_key_usage, "serverAuth") ||
        !add_ext(x, &ctx, NID_subject_key_identifier, "hash"))
        goto fail;
    for (size_t i = 0; i < o->nnames; i++)
        if (o->names[i] && !add_name(gens, o->names[i]))
            goto fail;
    if (sk_GENERAL_NAME_num(gens) > 0 &&
        X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1)
        goto fail;
    if (X509_sign(x, key, EVP_sha256()) <= 0)
        goto fail;
    GENERAL_NAMES_free(gens);
    BN_free(serial);
    *okey = key;
    *ox = x;
    return MESH_OK;
fail:
    mesh__tls_reason(why, sizeof why, "unknown error");
    GENERAL_NAMES_free(gens);
    BN_free(serial);
    X509_free(x);
    EVP_PKEY_free(key);
    return mesh_err_set(err, MESH_INTERNAL, "cannot generate a self-signed certificate: %s", why);
}

/* Writes data to path through path.tmp (created with mode, fsynced, renamed). */
static mesh_status_t write_file(const char *path, const char *data, size_t n, mode_t mode,
                                mesh_err_t *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return mesh_err_set(err, MESH_IO, "cannot create %s: %s", tmp, strerror(errno));
    mesh_status_t st = MESH_OK;
    if (fchmod(fd, mode) != 0 || mesh_write_all(fd, data, n) != MESH_OK || fsync(fd) != 0)
        st = mesh_err_set(err, MESH_IO, "cannot write %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == MESH_OK)
        st = mesh_err_set(err, MESH_IO, "cannot write %s: %s", tmp, strerror(errno));
    if (st == MESH_OK && rename(tmp, path) != 0)
        st = mesh_err_set(err, MESH_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (st != MESH_OK)
        unlink(tmp);
    return st;
}

/* PEM text of the key (in secure memory: wiped when freed) and of the certificate. */
static mesh_status_t write_pair(EVP_PKEY *key, X509 *x, const char *cert_path, const char *key_path,
                                mesh_err_t *err)
{
    BIO *kb = BIO_new(BIO_s_secmem());
    BIO *cb = BIO_new(BIO_s_mem());
    mesh_status_t st;
    char *kp, *cp;
    if (kb == NULL || cb == NULL || !PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) ||
        !PEM_write_bio_X509(cb, x)) {
        char why[256];
        st = mesh_err_set(err, MESH_NOMEM, "cannot encode the certificate: %s",
                          mesh__tls_reason(why, sizeof why, "out of memory"));
        goto done;
    }
    long kn = BIO_get_mem_data(kb, &kp);
    long cn = BIO_get_mem_data(cb, &cp);
    /* the key first: a cert.pem on disk always has its key beside it */
    if ((st = write_file(key_path, kp, (size_t)kn, 0600, err)) != MESH_OK)
        goto done;
    st = write_file(cert_path, cp, (size_t)cn, 0644, err);
done:
    BIO_free(kb);
    BIO_free(cb);
    return st;
}

static X509 *read_cert(const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return NULL;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return x;
}

mesh_status_t mesh__tls_cert_ensure(const mesh_tls_server_opts_t *o, char *cert_path,
                                    char *key_path, size_t cap, bool *renewed, mesh_err_t *err)
{
    *renewed = false;
    mesh_status_t st = mesh_mkdirs(o->gen_dir, 0700, err);
    if (st != MESH_OK)
        return st;
    if ((size_t)snprintf(cert_path, cap, "%s/cert.pem", o->gen_dir) >= cap ||
        (size_t)snprintf(key_path, cap, "%s/key.pem", o->gen_dir) >= cap)
        return mesh_err_set(err, MESH_INVALID, "path too long: %s", o->gen_dir);
    struct stat sb;
    if (stat(cert_path, &sb) == 0) {
        if (stat(key_path, &sb) != 0)
            return mesh_err_set(err, MESH_INVALID,
                                "%s exists but its key %s is missing: restore the key, or "
                                "remove %s to generate a new certificate",
                                cert_path, key_path, cert_path);
        X509 *x = read_cert(cert_path);
        if (x == NULL) {
            char why[256];
            return mesh_err_set(err, MESH_INVALID,
                                "generated certificate %s: not a PEM certificate (%s); remove it "
                                "and %s to generate a new one",
                                cert_path, mesh__tls_reason(why, sizeof why, strerror(errno)),
                                key_path);
        }
        time_t limit = time(NULL) + (time_t)o->renew_days * 86400;
        int cmp = X509_cmp_time(X509_get0_notAfter(x), &limit);
        mesh_tls_info_t old;
        memset(&old, 0, sizeof old);
        mesh__tls_cert_describe(x, &old);
        X509_free(x);
        if (cmp > 0)
            return MESH_OK;
        char when[MESH_TIME_MAX];
        mesh_time_format(old.not_after_ns, when);
        LOG_WARN("tls",
                 "the generated certificate %s (%s) expires %s: replacing it; its fingerprint "
                 "changes, so clients that pinned the old one must pin the new one",
                 cert_path, old.fingerprint, when);
    }
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    if ((st = make_cert(o, &key, &x, err)) != MESH_OK)
        return st;
    st = write_pair(key, x, cert_path, key_path, err);
    EVP_PKEY_free(key);
    X509_free(x);
    if (st != MESH_OK)
        return st;
    if (mesh_fsync_dir(o->gen_dir) != MESH_OK)
        return mesh_err_set(err, MESH_IO, "cannot fsync %s: %s", o->gen_dir, strerror(errno));
    *renewed = true;
    return MESH_OK;
}

/* ---- a small certificate authority (meshctl mesh config) ---- */

struct mesh_tls_ca {
    EVP_PKEY *key;
    X509 *cert;
};

/* A new certificate for key: serial, validity, subject CN (and O), issuer. */
static bool cert_base(X509 *x, EVP_PKEY *key, const char *cn, const char *org, int days,
                      X509_NAME *issuer)
{
    uint8_t rnd[16];
    BIGNUM *serial = NULL;
    if (mesh_random(rnd, sizeof rnd) != MESH_OK)
        return false;
    rnd[0] = (uint8_t)((rnd[0] & 0x7f) | 0x40);
    bool ok = (serial = BN_bin2bn(rnd, sizeof rnd, NULL)) != NULL &&
              BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) != NULL;
    BN_free(serial);
    X509_NAME *name = X509_get_subject_name(x);
    return ok && X509_set_version(x, X509_VERSION_3) &&
           X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
           X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) &&
           X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                      (const unsigned char *)common_name(cn), -1, -1, 0) &&
           X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)org, -1, -1,
                                      0) &&
           X509_set_issuer_name(x, issuer ? issuer : name) && X509_set_pubkey(x, key);
}

mesh_status_t mesh_tls_ca_create(const char *cn, int days, const char *cert_path,
                                 const char *key_path, mesh_tls_ca_t **out, mesh_err_t *err)
{
    *out = NULL;
    mesh_tls_ca_t *ca = calloc(1, sizeof *ca);
    if (ca == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    ca->key = EVP_EC_gen("P-256");
    ca->cert = X509_new();
    X509V3_CTX ctx;
    bool ok = ca->key && ca->cert && cert_base(ca->cert, ca->key, cn, "meshd mesh CA", days, NULL);
    if (ok) {
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, ca->cert, ca->cert, NULL, NULL, 0);
        ok = add_ext(ca->cert, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
             add_ext(ca->cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") &&
             add_ext(ca->cert, &ctx, NID_subject_key_identifier, "hash") &&
             X509_sign(ca->cert, ca->key, EVP_sha256()) > 0;
    }
    if (!ok) {
        char why[256];
        mesh_tls_ca_destroy(ca);
        return mesh_err_set(err, MESH_INTERNAL, "cannot make a CA certificate: %s",
                            mesh__tls_reason(why, sizeof why, "unknown error"));
    }
    mesh_status_t st = write_pair(ca->key, ca->cert, cert_path, key_path, err);
    if (st != MESH_OK) {
        mesh_tls_ca_destroy(ca);
        return st;
    }
    *out = ca;
    return MESH_OK;
}

mesh_status_t mesh_tls_ca_issue(mesh_tls_ca_t *ca, const char *cn, const char *const *names,
                                size_t nnames, int days, const char *cert_path,
                                const char *key_path, mesh_err_t *err)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    X509V3_CTX ctx;
    bool ok = key && x && gens &&
              cert_base(x, key, cn, "meshd mesh", days, X509_get_subject_name(ca->cert));
    if (ok) {
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, ca->cert, x, NULL, NULL, 0);
        /* both: a server's certificate also authenticates it on its routes and leafnode
         * links, where it is the client */
        ok = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") &&
             add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") &&
             add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth") &&
             add_ext(x, &ctx, NID_subject_key_identifier, "hash") &&
             add_ext(x, &ctx, NID_authority_key_identifier, "keyid");
    }
    for (size_t i = 0; ok && i < nnames; i++)
        ok = names[i] == NULL || add_name(gens, names[i]);
    if (ok && sk_GENERAL_NAME_num(gens) > 0)
        ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
    if (ok)
        ok = X509_sign(x, ca->key, EVP_sha256()) > 0;
    mesh_status_t st;
    if (!ok) {
        char why[256];
        st = mesh_err_set(err, MESH_INTERNAL, "cannot issue a certificate for %s: %s", cn,
                          mesh__tls_reason(why, sizeof why, "unknown error"));
    } else {
        st = write_pair(key, x, cert_path, key_path, err);
    }
    GENERAL_NAMES_free(gens);
    X509_free(x);
    EVP_PKEY_free(key);
    return st;
}

void mesh_tls_ca_destroy(mesh_tls_ca_t *ca)
{
    if (ca == NULL)
        return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca);
}
