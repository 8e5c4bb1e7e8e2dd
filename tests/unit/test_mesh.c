/*
 * test_mesh.c - the mesh module without a server: registry entries (encode, parse, every
 * refusal of the strict parser), the nats-server INFO line and version checks, node names,
 * the subject permissions and the configs `meshctl mesh config` writes (files, modes,
 * hashes instead of passwords, a refused second run).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/util.h"
#include "crypt/sign.h"
#include "mesh/snapwire.h"
#include "mesh/entry.h"
#include "mesh/fed.h"
#include "mesh/fedwire.h"
#include "mesh/internal.h"
#include "mesh/mesh.h"
#include "mesh/natsconf.h"
#include "mesh/recwire.h"

/* The replay check of federated requests: a nonce seen within the window is refused, a full
 * memory refuses rather than forgets, and nonces leave the index as the ring reuses their
 * slots (also nonces sharing a bucket: their first 8 bytes alike). */
static void nonce_of(uint8_t *n, uint64_t a, uint64_t b)
{
    memcpy(n, &a, 8);
    memcpy(n + 8, &b, 8);
}

static void test_fed_nonces(void **state)
{
    (void)state;
    mesh_fed_handler_t h = {0};
    mesh_fed_t *f;
    mesh_err_t err;
    assert_int_equal(mesh_fed_create(NULL, &h, &f, &err), MESH_OK);
    const int64_t W = 2 * MESH_FED_MAX_SKEW, T0 = 1000 * MESH_FED_MAX_SKEW;
    uint8_t n[MESH_FED_NONCE_BYTES];
    nonce_of(n, 1, 1);
    assert_true(mesh__fed_nonce_fresh(f, n, T0, T0));
    assert_false(mesh__fed_nonce_fresh(f, n, T0, T0 + 1)); /* a replay */
    nonce_of(n, 1, 2);                                     /* the same bucket */
    assert_true(mesh__fed_nonce_fresh(f, n, T0, T0 + 2));
    assert_false(mesh__fed_nonce_fresh(f, n, T0, T0 + 3));
    /* the memory full of nonces within the window: refused */
    int64_t t = T0 + 10;
    size_t ok = 2;
    for (uint64_t i = 0; i < 9000; i++) {
        nonce_of(n, 100 + i % 7, i); /* seven buckets: long chains */
        if (mesh__fed_nonce_fresh(f, n, t, t))
            ok++;
    }
    assert_int_equal(ok, 8192);
    /* after the window every slot is reused, in ring order, several times over: a nonce
     * just remembered is found, one whose slot was reused (gone from its chain) passes */
    for (int round = 0; round < 3; round++) {
        t += W + 1;
        for (uint64_t i = 0; i < 8192; i++) {
            nonce_of(n, 100 + i % 7, 1000000 * (uint64_t)(round + 1) + i);
            assert_true(mesh__fed_nonce_fresh(f, n, t, t));
            if (i % 1000 == 0)
                assert_false(mesh__fed_nonce_fresh(f, n, t, t));
        }
        for (uint64_t i = 0; i < 8192; i += 97) {
            nonce_of(n, 100 + i % 7, 1000000 * (uint64_t)(round + 1) + i);
            assert_false(mesh__fed_nonce_fresh(f, n, t, t + 1));
        }
    }
    /* nonces of the first fill are out of the window and out of the index */
    t += W + 1;
    nonce_of(n, 1, 1);
    assert_true(mesh__fed_nonce_fresh(f, n, t, t));
    mesh_fed_destroy(f);
}

/* Stream records packed for the wire (recwire.h): a round trip gives the record back byte for
 * byte; small or incompressible records travel as they are; the reader refuses every damaged
 * or oversized packing with MESH_CORRUPT rather than guess. */
static void test_recwire(void **state)
{
    (void)state;
    enum { N = 30000 };
    uint8_t *rec = malloc(N);
    assert_non_null(rec);
    rec[0] = 'B'; /* a batch record: repetitive, as rows are */
    for (size_t i = 1; i < N; i++)
        rec[i] = (uint8_t)("device-00042,1700000000"[i % 23] + (i / 997) % 3);
    mesh_buf_t pk, up;
    mesh_buf_init(&pk, MESH_BUF_UNLIMITED);
    mesh_buf_init(&up, N);
    const uint8_t *w = NULL, *p = NULL;
    size_t wn = 0, n = 0;
    mesh_err_t err;
    assert_int_equal(mesh_recwire_pack(rec, N, &pk, &w, &wn, &err), MESH_OK);
    assert_int_equal(w[0], MESH_RECWIRE_ZSTD);
    assert_true(wn < N / 4);
    assert_int_equal(mesh_recwire_unpack(w, wn, N, &up, &p, &n, &err), MESH_OK);
    assert_int_equal(n, N);
    assert_memory_equal(p, rec, N);
    assert_true(p != w);
    assert_int_equal(mesh_fp64(p, n), mesh_fp64(rec, N)); /* fingerprints see the record */

    /* refusals: one byte less, one more, a wrong length either way, above the limit */
    uint8_t *bad = malloc(wn + 1);
    assert_non_null(bad);
    memcpy(bad, w, wn);
    bad[wn] = 0;
    assert_int_equal(mesh_recwire_unpack(bad, wn - 1, N, &up, &p, &n, &err), MESH_CORRUPT);
    assert_int_equal(mesh_recwire_unpack(bad, wn + 1, N, &up, &p, &n, &err), MESH_CORRUPT);
    bad[1] ^= 1; /* announced N-1 or N+1 */
    assert_int_equal(mesh_recwire_unpack(bad, wn, 2 * N, &up, &p, &n, &err), MESH_CORRUPT);
    bad[1] ^= 1;
    assert_int_equal(mesh_recwire_unpack(bad, wn, N - 1, &up, &p, &n, &err), MESH_CORRUPT);
    assert_non_null(strstr(err.msg, "announced"));
    bad[wn / 2] ^= 0x55; /* damaged inside the frame: refused or, at worst, a wrong record of the
                            announced length; never more */
    mesh_status_t st = mesh_recwire_unpack(bad, wn, N, &up, &p, &n, &err);
    assert_true(st == MESH_CORRUPT || (st == MESH_OK && n == N));
    assert_int_equal(mesh_recwire_unpack(bad, MESH_RECWIRE_HDR, N, &up, &p, &n, &err),
                     MESH_CORRUPT);
    free(bad);

    /* small and incompressible records: as they are, read back without a copy */
    assert_int_equal(mesh_recwire_pack(rec, MESH_RECWIRE_MIN - 1, &pk, &w, &wn, &err), MESH_OK);
    assert_ptr_equal(w, rec);
    assert_int_equal(wn, MESH_RECWIRE_MIN - 1);
    uint8_t *noise = malloc(4096);
    assert_non_null(noise);
    mesh_random(noise, 4096);
    noise[0] = 'B';
    assert_int_equal(mesh_recwire_pack(noise, 4096, &pk, &w, &wn, &err), MESH_OK);
    assert_ptr_equal(w, noise);
    assert_int_equal(mesh_recwire_unpack(noise, 4096, N, &up, &p, &n, &err), MESH_OK);
    assert_ptr_equal(p, noise);
    assert_int_equal(n, 4096);
    free(noise);
    mesh_buf_free(&pk);
    mesh_buf_free(&up);
    free(rec);
}

int main(void);

static char *encode_sample(bool stopped)
{
    char *owners[] = {"ops@example.com", "ana@example.com"};
    mesh_entry_product_t prods[] = {{"telemetry", "urn:f:telemetry", "1.2.0"},
                                    {"alarms", "urn:f:alarms", "2.0.0"}};
    char *hosts[] = {"n1", "n2"};
    mesh_entry_domain_t doms[] = {{.name = "factory-a",
                                   .owners = owners,
                                   .nowners = 2,
                                   .hosts = hosts,
                                   .nhosts = 2,
                                   .replication = "async",
                                   .products = prods,
                                   .nproducts = 2},
                                  {.name = "empty"}};
    mesh_entry_t e = {.node_id = "abc123",
                      .name = "n1",
                      .site = "plant \"A\"",
                      .version = "0.1.0",
                      .api = "https://10.0.0.5:7070",
                      .stopped = stopped,
                      .started_ns = 1000,
                      .heartbeat_ns = 2000,
                      .ttl_ns = 15000000000LL,
                      .domains = doms,
                      .ndomains = 2};
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    assert_int_equal(mesh_entry_encode(&e, &b), MESH_OK);
    return mesh_buf_steal(&b, NULL);
}

static void test_entry_round_trip(void **state)
{
    (void)state;
    for (int stopped = 0; stopped < 2; stopped++) {
        char *s = encode_sample(stopped);
        mesh_entry_t *e;
        mesh_err_t err;
        assert_int_equal(mesh_entry_parse(s, strlen(s), &e, &err), MESH_OK);
        assert_string_equal(e->name, "n1");
        assert_string_equal(e->site, "plant \"A\"");
        assert_string_equal(e->api, "https://10.0.0.5:7070");
        assert_int_equal(e->stopped, stopped);
        assert_int_equal(e->ttl_ns, 15000000000LL);
        assert_int_equal(e->ndomains, 2);
        assert_string_equal(e->domains[0].name, "factory-a");
        assert_int_equal(e->domains[0].nowners, 2);
        assert_string_equal(e->domains[0].owners[1], "ana@example.com");
        assert_int_equal(e->domains[0].nproducts, 2);
        assert_string_equal(e->domains[0].products[1].version, "2.0.0");
        assert_int_equal(e->domains[1].nproducts, 0);
        assert_int_equal(e->domains[0].nhosts, 2);
        assert_string_equal(e->domains[0].hosts[1], "n2");
        assert_string_equal(e->domains[0].replication, "async");
        assert_int_equal(e->domains[1].nhosts, 0);
        assert_string_equal(e->domains[1].replication, "none");
        mesh_entry_free(e);
        free(s);
    }
}

static mesh_status_t parse(const char *s)
{
    mesh_entry_t *e = NULL;
    mesh_err_t err;
    mesh_status_t st = mesh_entry_parse(s, strlen(s), &e, &err);
    if (st == MESH_OK)
        mesh_entry_free(e);
    else
        assert_null(e);
    return st;
}

#define HEAD                                                                                       \
    "{\"v\":1,\"node_id\":\"x\",\"name\":\"n1\",\"site\":\"s\",\"version\":\"1\",\"api\":\"a\","   \
    "\"started\":1,\"heartbeat\":2,\"ttl\":3,"

static void test_entry_refusals(void **state)
{
    (void)state;
    assert_int_equal(parse(HEAD "\"state\":\"running\",\"domains\":[]}"), MESH_OK);
    assert_int_equal(parse("not json"), MESH_PARSE);
    assert_int_equal(parse("[1]"), MESH_INVALID);
    assert_int_equal(parse(HEAD "\"state\":\"zombie\",\"domains\":[]}"), MESH_INVALID);
    assert_int_equal(parse(HEAD "\"state\":\"running\"}"), MESH_INVALID); /* no domains */
    assert_int_equal(parse(HEAD "\"state\":\"running\",\"state\":\"stopped\",\"domains\":[]}"),
                     MESH_PARSE); /* duplicate key */
    /* a domain name that is not one, a product name that is not one */
    assert_int_equal(parse(HEAD "\"state\":\"running\",\"domains\":[{\"name\":\"../x\"}]}"),
                     MESH_INVALID);
    assert_int_equal(parse(HEAD "\"state\":\"running\",\"domains\":[{\"name\":\"d\",\"products\":"
                                "[{\"name\":\"A;drop\",\"contract\":\"c\",\"version\":\"1\"}]}]}"),
                     MESH_INVALID);
    /* control characters (terminal escapes) in text */
    assert_int_equal(parse("{\"v\":1,\"node_id\":\"x\",\"name\":\"n1\",\"site\":\"\\u001b[2J\","
                           "\"version\":\"1\",\"api\":\"a\",\"started\":1,\"heartbeat\":2,"
                           "\"ttl\":3,\"state\":\"running\",\"domains\":[]}"),
                     MESH_INVALID);
    /* a node name that cannot be a key; negative times; another version */
    assert_int_equal(parse("{\"v\":1,\"node_id\":\"x\",\"name\":\"a.b\",\"site\":\"s\","
                           "\"version\":\"1\",\"api\":\"a\",\"started\":1,\"heartbeat\":2,"
                           "\"ttl\":3,\"state\":\"running\",\"domains\":[]}"),
                     MESH_INVALID);
    assert_int_equal(parse("{\"v\":1,\"node_id\":\"x\",\"name\":\"n\",\"site\":\"s\","
                           "\"version\":\"1\",\"api\":\"a\",\"started\":-1,\"heartbeat\":2,"
                           "\"ttl\":3,\"state\":\"running\",\"domains\":[]}"),
                     MESH_INVALID);
    assert_int_equal(parse("{\"v\":2}"), MESH_INVALID);
    /* hosts are node names, at most 16; replication one of the modes */
    assert_int_equal(parse(HEAD "\"state\":\"running\",\"domains\":[{\"name\":\"d\",\"hosts\":"
                                "[\"n1\",\"a.b\"]}]}"),
                     MESH_INVALID);
    assert_int_equal(parse(HEAD "\"state\":\"running\",\"domains\":[{\"name\":\"d\",\"hosts\":"
                                "\"n1\"}]}"),
                     MESH_INVALID);
    assert_int_equal(parse(HEAD "\"state\":\"running\",\"domains\":[{\"name\":\"d\",\"hosts\":"
                                "[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
                                "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]}]}"),
                     MESH_LIMIT);
    assert_int_equal(parse(HEAD "\"state\":\"running\",\"domains\":[{\"name\":\"d\","
                                "\"replication\":\"later\"}]}"),
                     MESH_INVALID);
    assert_int_equal(parse(HEAD "\"state\":\"running\",\"domains\":[{\"name\":\"d\","
                                "\"replication\":1}]}"),
                     MESH_INVALID);
    assert_int_equal(parse(HEAD "\"state\":\"running\",\"domains\":[{\"name\":\"d\","
                                "\"hosts\":[\"n1\"],\"replication\":\"sync\"}]}"),
                     MESH_OK);
    /* owners: not strings, too many */
    assert_int_equal(parse(HEAD "\"state\":\"running\",\"domains\":[{\"name\":\"d\",\"owners\":"
                                "[1]}]}"),
                     MESH_INVALID);
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    mesh_buf_adds(&b, HEAD "\"state\":\"running\",\"domains\":[{\"name\":\"d\",\"owners\":[");
    for (int i = 0; i <= MESH_ENTRY_MAX_OWNERS; i++)
        mesh_buf_adds(&b, i ? ",\"o\"" : "\"o\"");
    mesh_buf_adds(&b, "]}]}");
    assert_int_equal(parse(b.data), MESH_LIMIT);
    /* too many domains, too large */
    mesh_buf_reset(&b);
    mesh_buf_adds(&b, HEAD "\"state\":\"running\",\"domains\":[");
    for (int i = 0; i <= MESH_ENTRY_MAX_DOMAINS; i++)
        mesh_buf_printf(&b, "%s{\"name\":\"d%d\"}", i ? "," : "", i);
    mesh_buf_adds(&b, "]}");
    assert_int_equal(parse(b.data), MESH_LIMIT);
    mesh_buf_reset(&b);
    mesh_buf_adds(&b, HEAD "\"state\":\"running\",\"domains\":[],\"pad\":\"");
    for (int i = 0; i < MESH_ENTRY_MAX_BYTES; i++)
        mesh_buf_addc(&b, 'x');
    mesh_buf_adds(&b, "\"}");
    assert_int_equal(parse(b.data), MESH_TOO_LARGE);
    mesh_buf_free(&b);
}

static void test_node_names(void **state)
{
    (void)state;
    assert_true(mesh_entry_node_name_ok("n1"));
    assert_true(mesh_entry_node_name_ok("plant-A_2"));
    assert_false(mesh_entry_node_name_ok(""));
    assert_false(mesh_entry_node_name_ok("a.b"));
    assert_false(mesh_entry_node_name_ok("a b"));
    assert_false(mesh_entry_node_name_ok("a>"));
    assert_false(mesh_entry_node_name_ok("a*"));
    char longname[80];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_false(mesh_entry_node_name_ok(longname));
    longname[MESH_ENTRY_NODE_MAX] = '\0';
    assert_true(mesh_entry_node_name_ok(longname));
}

static void test_info_version(void **state)
{
    (void)state;
    char v[32];
    const char *info = "INFO {\"server_id\":\"X\",\"version\":\"2.9.10\",\"go\":\"go1.19\"}\r\n";
    assert_int_equal(mesh_nats_info_version(info, strlen(info), v, sizeof v), MESH_OK);
    assert_string_equal(v, "2.9.10");
    assert_int_equal(mesh_nats_info_version("PING\r\n", 6, v, sizeof v), MESH_PARSE);
    assert_int_equal(mesh_nats_info_version("INFO nope\r\n", 11, v, sizeof v), MESH_PARSE);
    const char *bad = "INFO {\"version\":\"2.9\\u001b[2J\"}\r\n";
    assert_int_equal(mesh_nats_info_version(bad, strlen(bad), v, sizeof v), MESH_PARSE);
    const char *noversion = "INFO {\"server_id\":\"X\"}\r\n";
    assert_int_equal(mesh_nats_info_version(noversion, strlen(noversion), v, sizeof v), MESH_PARSE);
    assert_true(mesh_nats_version_older("2.9.10", 2, 10));
    assert_true(mesh_nats_version_older("1.4.0", 2, 10));
    assert_false(mesh_nats_version_older("2.10.0", 2, 10));
    assert_false(mesh_nats_version_older("v2.11.3", 2, 10));
    assert_false(mesh_nats_version_older("3.0.0", 2, 10));
    assert_true(mesh_nats_version_older("garbage", 2, 10));
}

static void test_permissions(void **state)
{
    (void)state;
    char out[8192];
    const char *doms[] = {"factory-a"};
    assert_int_equal(mesh_natsconf_permissions("n1", doms, 1, 0, NULL, 0, out, sizeof out),
                     MESH_OK);
    assert_non_null(strstr(out, "\"$KV.meshd_nodes.n1\""));
    assert_non_null(strstr(out, "\"meshd.dom.factory-a.>\""));
    assert_non_null(strstr(out, "\"_INBOX_n1.>\""));
    assert_non_null(strstr(out, "\"$JS.API.CONSUMER.MSG.NEXT.MESHD_DOM_factory-a.>\""));
    assert_non_null(strstr(out, "\"$JS.API.STREAM.MSG.GET.MESHD_DOM_factory-a\""));
    assert_non_null(strstr(out, "\"$JS.API.CONSUMER.DURABLE.CREATE.MESHD_DOM_factory-a.>\""));
    assert_null(strstr(out, "\"$KV.meshd_nodes.>\""));
    assert_null(strstr(out, "\"_INBOX.>\""));
    assert_null(strstr(out, "$JS.hub.API"));
    assert_int_equal(mesh_natsconf_permissions("e1", NULL, 0, 1, NULL, 0, out, sizeof out),
                     MESH_OK);
    assert_non_null(strstr(out, "$JS.hub.API.STREAM.INFO.KV_meshd_nodes"));
    assert_non_null(strstr(out, "\"$JS.hub.API.$KV.meshd_nodes.e1\""));
    /* requests to any domain (forwarded writes), but no domain's own subjects */
    assert_non_null(strstr(out, "\"meshd.dom.*.req.>\""));
    assert_null(strstr(out, "\"meshd.dom.factory"));
    assert_null(strstr(out, "MESHD_DOM_"));
    assert_int_equal(mesh_natsconf_permissions("n1", doms, 1, 0, NULL, 0, out, 64), MESH_TOO_LARGE);
    /* edge offline: an edge node may create and look at the hub's copy of its non-local
     * domains only; a hub node never */
    const char *edge[] = {"edge", "vault"}, *local[] = {"vault"};
    assert_int_equal(mesh_natsconf_permissions("e1", edge, 2, 1, local, 1, out, sizeof out),
                     MESH_OK);
    assert_non_null(strstr(out, "\"$JS.hub.API.STREAM.CREATE.MESHD_COPY_edge\""));
    assert_non_null(strstr(out, "\"$JS.hub.API.STREAM.INFO.MESHD_COPY_edge\""));
    assert_null(strstr(out, "MESHD_COPY_vault"));
    assert_null(strstr(out, "MSG.GET.MESHD_COPY"));
    assert_int_equal(mesh_natsconf_permissions("n1", edge, 2, 0, NULL, 0, out, sizeof out),
                     MESH_OK);
    assert_null(strstr(out, "MESHD_COPY_"));
}

static bool file_mode(const char *dir, const char *rel, unsigned mode)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    struct stat sb;
    return stat(path, &sb) == 0 && (sb.st_mode & 0777) == mode;
}

static void test_config_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/meshd-natsconf-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char out[4200];
    snprintf(out, sizeof out, "%s/mesh", dir);
    const char *d1[] = {"factory-a"};
    mesh_natsconf_node_t nodes[] = {{"n1", NULL, d1, 1}, {"e1", "leaf-1", NULL, 0}};
    mesh_natsconf_opts_t o = {.hubs = 3,
                              .leaves = 1,
                              .bind = "127.0.0.1",
                              .client_port = 4222,
                              .cluster_port = 6222,
                              .leafnode_port = 7422,
                              .nodes = nodes,
                              .nnodes = 2,
                              .out_dir = out,
                              .cert_days = 10,
                              .bcrypt_cost = 4};
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_natsconf_write(&o, NULL, &err), MESH_OK);
    assert_true(file_mode(out, "ca.pem", 0644));
    assert_true(file_mode(out, "ca-key.pem", 0600));
    assert_true(file_mode(out, "hub-1/nats.conf", 0600));
    assert_true(file_mode(out, "hub-3/key.pem", 0600));
    assert_true(file_mode(out, "leaf-1/nats.conf", 0600));
    assert_true(file_mode(out, "nodes/n1/password", 0600));
    assert_true(file_mode(out, "nodes/e1/meshd.conf", 0644));
    assert_true(file_mode(out, "sys.password", 0600));
    char path[4300], *pw, *conf, *leafconf, *e1conf;
    snprintf(path, sizeof path, "%s/nodes/n1/password", out);
    assert_int_equal(mesh_read_file(path, 4096, &pw, NULL, NULL), MESH_OK);
    pw[strcspn(pw, "\n")] = '\0';
    assert_int_equal(strlen(pw), 24);
    snprintf(path, sizeof path, "%s/hub-2/nats.conf", out);
    assert_int_equal(mesh_read_file(path, 1 << 20, &conf, NULL, NULL), MESH_OK);
    assert_null(strstr(conf, pw));            /* only a hash */
    assert_non_null(strstr(conf, "$2b$04$")); /* bcrypt */
    assert_non_null(strstr(conf, "port: 4223"));
    assert_non_null(strstr(conf, "verify: true"));
    assert_non_null(strstr(conf, "system_account: SYS"));
    assert_non_null(strstr(conf, "{ user: \"leaf-1\""));
    assert_null(strstr(conf, "user: \"e1\"")); /* a leaf's node is the leaf's user */
    assert_null(strstr(conf, "\nno_auth_user"));
    snprintf(path, sizeof path, "%s/leaf-1/nats.conf", out);
    assert_int_equal(mesh_read_file(path, 1 << 20, &leafconf, NULL, NULL), MESH_OK);
    assert_non_null(strstr(leafconf, "domain: leaf-1"));
    assert_non_null(strstr(leafconf, "user: \"e1\""));
    assert_non_null(strstr(leafconf, "@127.0.0.1:7424")); /* the third hub's leafnode port */
    snprintf(path, sizeof path, "%s/nodes/e1/meshd.conf", out);
    assert_int_equal(mesh_read_file(path, 1 << 20, &e1conf, NULL, NULL), MESH_OK);
    assert_non_null(strstr(e1conf, "mesh = tls://127.0.0.1:4225"));
    assert_non_null(strstr(e1conf, "mesh_js_domain = hub"));
    free(pw);
    free(conf);
    free(leafconf);
    free(e1conf);
    /* a second run into the same directory changes nothing */
    assert_int_equal(mesh_natsconf_write(&o, NULL, &err), MESH_CONFLICT);
    /* bad plans */
    o.hubs = 2;
    snprintf(out, sizeof out, "%s/other", dir);
    assert_int_equal(mesh_natsconf_write(&o, NULL, &err), MESH_INVALID);
    o.hubs = 1;
    nodes[1].server = "leaf-9";
    assert_int_equal(mesh_natsconf_write(&o, NULL, &err), MESH_INVALID);
    nodes[1].server = NULL;
    nodes[1].name = "sys";
    assert_int_equal(mesh_natsconf_write(&o, NULL, &err), MESH_INVALID);
    nodes[1].name = "e1";
    o.out_dir = "relative/dir";
    assert_int_equal(mesh_natsconf_write(&o, NULL, &err), MESH_INVALID);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Signed federation requests: the signature covers the subject and every byte; a parsed
 * request carries what was encoded. */
static void test_fed_request(void **state)
{
    (void)state;
    char dir[] = "/tmp/meshd-test-fed-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/k", dir);
    mesh_signkey_t *k = NULL, *k2 = NULL;
    mesh_err_t err;
    assert_int_equal(mesh_signkey_open(path, &k, &err), MESH_OK);
    assert_int_equal(mesh_signkey_open(path, &k2, &err), MESH_OK); /* read back: same key */
    uint8_t pub[MESH_SIGN_PUB_BYTES], pub2[MESH_SIGN_PUB_BYTES];
    mesh_signkey_public(k, pub);
    mesh_signkey_public(k2, pub2);
    assert_memory_equal(pub, pub2, sizeof pub);
    mesh_fed_request_t r;
    memset(&r, 0, sizeof r);
    r.op = MESH_FED_SCAN;
    strcpy(r.node, "n3");
    strcpy(r.user, "ana");
    strcpy(r.domain, "factory");
    strcpy(r.table, "readings");
    r.ts_ns = 1790000000000000000LL;
    char cols[2][MESH_NAME_MAX + 1] = {"device", "temp"};
    r.cols = cols;
    r.ncols = 2;
    strcpy(r.cons[0].col, "device");
    r.cons[0].op = MESH_FED_OP_EQ;
    r.cons[0].val = (mesh_datum_t){.type = MESH_V_TEXT, .s = "d'1", .n = 3};
    strcpy(r.cons[1].col, "temp");
    r.cons[1].op = MESH_FED_OP_ISNULL;
    r.ncons = 2;
    r.limit = 5;
    const char *subj = "meshd.dom.factory.req.scan";
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_FED_MAX_REQUEST);
    assert_int_equal(mesh_fed_request_encode(&r, subj, k, &b), MESH_OK);
    assert_true(mesh_fed_request_verify(b.data, b.len, subj, pub));
    assert_false(mesh_fed_request_verify(b.data, b.len, "meshd.dom.energy.req.scan", pub));
    mesh_fed_request_t p;
    assert_int_equal(mesh_fed_request_parse(b.data, b.len, &p, &err), MESH_OK);
    assert_string_equal(p.user, "ana");
    assert_int_equal(p.ncols, 2);
    assert_string_equal(p.cols[1], "temp");
    assert_int_equal(p.ncons, 2);
    assert_int_equal(p.cons[0].val.n, 3);
    assert_memory_equal(p.cons[0].val.s, "d'1", 3);
    assert_int_equal(p.cons[1].op, MESH_FED_OP_ISNULL);
    assert_int_equal(p.limit, 5);
    assert_false(p.compact); /* not asked for */
    mesh_fed_request_free(&p);
    /* compact values asked for ("enc":2), and by a later caller (3): both get them */
    r.compact = true;
    mesh_buf_reset(&b);
    assert_int_equal(mesh_fed_request_encode(&r, subj, k, &b), MESH_OK);
    assert_non_null(strstr(b.data + 68, "\"enc\":2"));
    assert_int_equal(mesh_fed_request_parse(b.data, b.len, &p, &err), MESH_OK);
    assert_true(p.compact);
    mesh_fed_request_free(&p);
    static const char *const encs[] = {"3", "0", "\"2\"", "-1", "2.5"};
    for (size_t i = 0; i < sizeof encs / sizeof encs[0]; i++) {
        char js[300];
        snprintf(js, sizeof js,
                 "MFS1%064d{\"v\":1,\"op\":\"query\",\"node\":\"n3\",\"user\":\"ana\","
                 "\"domain\":\"factory\",\"ts\":5,\"nonce\":\"%032d\",\"sql\":\"SELECT 1\","
                 "\"enc\":%s}",
                 0, 0, encs[i]);
        mesh_status_t st = mesh_fed_request_parse(js, strlen(js), &p, &err);
        assert_int_equal(st, i == 0 ? MESH_OK : MESH_INVALID);
        if (i == 0)
            assert_true(p.compact);
        mesh_fed_request_free(&p);
    }
    /* one changed byte (the user) and the signature fails */
    char *u = strstr(b.data + 68, "\"ana\"");
    assert_non_null(u);
    u[1] = 'b';
    assert_false(mesh_fed_request_verify(b.data, b.len, subj, pub));
    /* refusals: too large, not signed */
    assert_int_equal(mesh_fed_request_parse(b.data, MESH_FED_MAX_REQUEST + 1, &p, &err),
                     MESH_TOO_LARGE);
    assert_int_equal(mesh_fed_request_parse("{\"v\":1}", 7, &p, &err), MESH_PARSE);
    mesh_buf_free(&b);
    mesh_signkey_free(k);
    mesh_signkey_free(k2);
    /* a key file of another size is not a key */
    FILE *f = fopen(path, "ab");
    fputc('x', f);
    fclose(f);
    assert_int_equal(mesh_signkey_open(path, &k, &err), MESH_CORRUPT);
    unlink(path);
    rmdir(dir);
}

/* A whole statement (decision 0039): the query request and its result frames' trailers,
 * and what the strict decoders refuse. */
static void test_fed_query(void **state)
{
    (void)state;
    char dir[] = "/tmp/meshd-test-fedq-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/k", dir);
    mesh_signkey_t *k = NULL;
    mesh_err_t err;
    assert_int_equal(mesh_signkey_open(path, &k, &err), MESH_OK);
    mesh_fed_request_t r;
    memset(&r, 0, sizeof r);
    r.op = MESH_FED_QUERY;
    strcpy(r.node, "n3");
    strcpy(r.user, "ana");
    strcpy(r.domain, "factory");
    r.ts_ns = 1790000000000000000LL;
    const char *sql = "SELECT status, count(*) FROM factory.readings WHERE x = '\"\n' GROUP BY 1";
    r.sql = (char *)sql;
    r.sql_len = strlen(sql);
    r.timeout_ms = 1500;
    r.max_rows = 101;
    strcpy(r.site, "not on the wire");
    const char *subj = "meshd.dom.factory.req.scan";
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_FED_MAX_REQUEST);
    assert_int_equal(mesh_fed_request_encode(&r, subj, k, &b), MESH_OK);
    mesh_fed_request_t p;
    assert_int_equal(mesh_fed_request_parse(b.data, b.len, &p, &err), MESH_OK);
    assert_int_equal(p.op, MESH_FED_QUERY);
    assert_int_equal(p.sql_len, strlen(sql));
    assert_string_equal(p.sql, sql);
    assert_int_equal(p.timeout_ms, 1500);
    assert_int_equal(p.max_rows, 101);
    assert_string_equal(p.site, "");
    mesh_fed_request_free(&p);
    /* a statement past the limit is not sent */
    char *big = malloc(MESH_FED_MAX_SQL + 2);
    memset(big, 'x', MESH_FED_MAX_SQL + 1);
    big[MESH_FED_MAX_SQL + 1] = '\0';
    r.sql = big;
    r.sql_len = MESH_FED_MAX_SQL + 1;
    mesh_buf_reset(&b);
    assert_int_equal(mesh_fed_request_encode(&r, subj, k, &b), MESH_TOO_LARGE);
    free(big);
    mesh_buf_free(&b);
    mesh_signkey_free(k);
    unlink(path);
    rmdir(dir);

    /* a result frame: rows, then the trailer */
    mesh_buf_t f;
    mesh_buf_init(&f, MESH_FED_MAX_FRAME);
    mesh_fed_enc_t e;
    mesh_fed_rows_begin(&e, &f, 2);
    mesh_datum_t v[2] = {{.type = MESH_V_TEXT, .s = "ok", .n = 2}, {.type = MESH_V_INT, .i = 7}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(mesh_fed_rows_value(&e, &v[i]), MESH_OK);
    mesh_fed_rows_row(&e);
    char cols[2][MESH_FED_NAME_MAX + 1] = {"status", ""};
    memset(cols[1], 'c', MESH_FED_NAME_MAX); /* the longest name */
    int8_t types[2] = {(int8_t)mesh_fed_type_index("TEXT"), -1};
    mesh_fed_meta_t m = {.ncols = 2,
                         .cols = cols,
                         .types = types,
                         .products = "factory.readings",
                         .policies = "ffactory.readings (row filter 2)\n",
                         .scanned = 24,
                         .suppressed = -1};
    assert_int_equal(mesh_fed_rows_meta(&e, &m), MESH_OK);
    mesh_fed_rows_end(&e, true);
    mesh_fed_frame_t fr;
    assert_int_equal(mesh_fed_frame_decode(f.data, f.len, &fr, &err), MESH_OK);
    assert_int_equal(fr.kind, MESH_FED_RESULT);
    assert_int_equal(fr.nrows, 1);
    assert_int_equal(fr.vals[1].i, 7);
    assert_int_equal(fr.meta.ncols, 2);
    assert_string_equal(fr.meta.cols[0], "status");
    assert_int_equal(strlen(fr.meta.cols[1]), MESH_FED_NAME_MAX);
    assert_string_equal(mesh_fed_type_name(fr.meta.types[0]), "TEXT");
    assert_null(mesh_fed_type_name(fr.meta.types[1]));
    assert_string_equal(fr.meta.products, "factory.readings");
    assert_string_equal(fr.meta.policies, "ffactory.readings (row filter 2)\n");
    assert_int_equal(fr.meta.scanned, 24);
    assert_int_equal(fr.meta.suppressed, -1);
    mesh_fed_frame_free(&fr);
    /* one byte short, one byte more, a length that lies: refused */
    assert_int_equal(mesh_fed_frame_decode(f.data, f.len - 1, &fr, &err), MESH_PARSE);
    mesh_buf_addc(&f, ' ');
    assert_int_equal(mesh_fed_frame_decode(f.data, f.len, &fr, &err), MESH_PARSE);
    assert_null(fr.vals);
    /* a trailer with an unknown member, an unknown type, a bad count: refused */
    static const char *const bad[] = {"{\"cols\":[[\"a\",\"TEXT\"]],\"x\":1}",
                                      "{\"cols\":[[\"a\",\"BLOB\"]]}",
                                      "{\"cols\":[[\"a\"]]}",
                                      "{\"scanned\":-1}",
                                      "{\"suppressed\":-2}",
                                      "[]",
                                      "{\"products\":7}",
                                      "{\"cols\":[]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mesh_buf_reset(&f);
        mesh_fed_rows_begin(&e, &f, 0);
        uint8_t len[4] = {(uint8_t)strlen(bad[i]), 0, 0, 0};
        mesh_buf_add(&f, len, 4);
        mesh_buf_adds(&f, bad[i]);
        mesh_fed_rows_end(&e, true);
        f.data[4] = (char)MESH_FED_RESULT;
        assert_int_not_equal(mesh_fed_frame_decode(f.data, f.len, &fr, &err), MESH_OK);
        assert_null(fr.meta.cols);
        assert_null(fr.meta.products);
    }
    mesh_buf_free(&f);
}

/* The same values written plain and compact into f (fresh), each decoded back to the same
 * values; returns the compact frame's length, *plain the plain one's. */
static size_t both_ways(const mesh_datum_t *v, size_t nrows, uint16_t ncols, mesh_buf_t *f,
                        size_t *plain)
{
    mesh_fed_compact_t *cz = mesh_fed_compact_new();
    assert_non_null(cz);
    size_t len[2];
    for (int compact = 0; compact < 2; compact++) {
        mesh_buf_reset(f);
        mesh_fed_enc_t e;
        mesh_fed_rows_begin(&e, f, ncols);
        if (compact)
            mesh_fed_rows_compact(&e, cz);
        for (size_t r = 0; r < nrows; r++) {
            for (size_t c = 0; c < ncols; c++)
                assert_int_equal(mesh_fed_rows_value(&e, &v[r * ncols + c]), MESH_OK);
            mesh_fed_rows_row(&e);
        }
        mesh_fed_rows_end(&e, true);
        len[compact] = f->len;
        mesh_fed_frame_t fr;
        mesh_err_t err;
        assert_int_equal(mesh_fed_frame_decode(f->data, f->len, &fr, &err), MESH_OK);
        assert_int_equal(fr.nrows, nrows);
        for (size_t i = 0; i < nrows * ncols; i++) {
            assert_int_equal(fr.vals[i].type, v[i].type);
            if (v[i].type == MESH_V_INT)
                assert_true(fr.vals[i].i == v[i].i);
            if (v[i].type == MESH_V_REAL)
                assert_memory_equal(&fr.vals[i].d, &v[i].d, sizeof v[i].d);
            if (v[i].type == MESH_V_TEXT) {
                assert_int_equal(fr.vals[i].n, v[i].n);
                assert_memory_equal(fr.vals[i].s, v[i].s, v[i].n);
            }
        }
        mesh_fed_frame_free(&fr);
    }
    mesh_fed_compact_free(cz);
    *plain = len[0];
    return len[1];
}

/* Compact values (tags 4-6, decision 0041): every kind of value comes back exact, repeated
 * texts and close integers take fewer bytes, and the decoder refuses what no encoder writes. */
static void test_fed_compact(void **state)
{
    (void)state;
    enum { ROWS = 5000, COLS = 3 };
    mesh_datum_t *v = calloc(ROWS * COLS, sizeof *v);
    static char names[50][8];
    for (int d = 0; d < 50; d++)
        snprintf(names[d], sizeof names[d], "d%d", d);
    /* a time series: device, time, a reading */
    for (int r = 0; r < ROWS; r++) {
        v[r * COLS] =
            (mesh_datum_t){.type = MESH_V_TEXT, .s = names[r % 50], .n = strlen(names[r % 50])};
        v[r * COLS + 1] =
            (mesh_datum_t){.type = MESH_V_INT, .i = 1790000000000000000LL + r / 50 * 1000000000LL};
        v[r * COLS + 2] = (mesh_datum_t){.type = MESH_V_REAL, .d = 20 + r % 7 + (r % 2 ? 0.5 : 0)};
    }
    mesh_buf_t f;
    mesh_buf_init(&f, MESH_FED_MAX_FRAME);
    size_t plain, compact = both_ways(v, ROWS, COLS, &f, &plain);
    assert_true(compact * 2 < plain);
    /* the edges: the extreme integers and their differences (wrapping), doubles that are
     * integers or not (-0.0, 2^53, 2^53 + 2, NaN, infinities), texts of 64 and 65 bytes twice,
     * empty texts, NULLs */
    static char t64[65], t65[66];
    memset(t64, 'a', 64);
    memset(t65, 'b', 65);
    double nan = NAN;
    mesh_datum_t e[] = {
        {.type = MESH_V_INT, .i = INT64_MIN},
        {.type = MESH_V_INT, .i = INT64_MAX},
        {.type = MESH_V_INT, .i = INT64_MIN},
        {.type = MESH_V_INT, .i = -1},
        {.type = MESH_V_INT, .i = 0},
        {.type = MESH_V_INT, .i = 1LL << 62},
        {.type = MESH_V_REAL, .d = -0.0},
        {.type = MESH_V_REAL, .d = 9007199254740992.0},
        {.type = MESH_V_REAL, .d = -9007199254740992.0},
        {.type = MESH_V_REAL, .d = 9007199254740994.0},
        {.type = MESH_V_REAL, .d = nan},
        {.type = MESH_V_REAL, .d = INFINITY},
        {.type = MESH_V_REAL, .d = -3.0},
        {.type = MESH_V_REAL, .d = 0.1},
        {.type = MESH_V_TEXT, .s = t64, .n = 64},
        {.type = MESH_V_TEXT, .s = t64, .n = 64},
        {.type = MESH_V_TEXT, .s = t65, .n = 65},
        {.type = MESH_V_TEXT, .s = t65, .n = 65},
        {.type = MESH_V_TEXT, .s = "", .n = 0},
        {.type = MESH_V_TEXT, .s = "", .n = 0},
        {.type = MESH_V_NULL},
        {.type = MESH_V_INT, .i = 5},
    };
    both_ways(e, 1, sizeof e / sizeof e[0], &f, &plain); /* one row */
    both_ways(e, 2, 11, &f, &plain);                     /* two rows of 11 columns */
    /* more distinct texts than the table holds, then each again: exact */
    enum { N = MESH_FED_DICT_MAX + 100 };
    mesh_datum_t *t = calloc(2 * N, sizeof *t);
    char(*txt)[12] = calloc(N, sizeof *txt);
    for (int i = 0; i < N; i++) {
        snprintf(txt[i], sizeof txt[i], "t%d", i);
        t[i] = t[N + i] = (mesh_datum_t){.type = MESH_V_TEXT, .s = txt[i], .n = strlen(txt[i])};
    }
    both_ways(t, 2 * N, 1, &f, &plain);
    free(t);
    free(txt);
    free(v);
    /* refused: a table entry not there, an integer too large for a tag 5 double, a
     * difference cut short */
    static const uint8_t bad[][8] = {
        {3, 1, 'x', 6, 1},                             /* entry 1 of 1 */
        {5, 0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80}, /* cut */
        {4, 0x80},                                     /* cut */
    };
    static const size_t nbad[] = {5, 8, 2};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mesh_buf_reset(&f);
        mesh_fed_enc_t en;
        mesh_fed_rows_begin(&en, &f, 1);
        mesh_buf_add(&f, bad[i], nbad[i]);
        en.nrows = i == 0 ? 2 : 1;
        mesh_fed_rows_end(&en, true);
        mesh_fed_frame_t fr;
        mesh_err_t err;
        assert_int_equal(mesh_fed_frame_decode(f.data, f.len, &fr, &err), MESH_PARSE);
        assert_null(fr.vals);
    }
    /* a 65-byte text, then tag 6 for it: not an entry */
    mesh_buf_reset(&f);
    mesh_fed_enc_t en;
    mesh_fed_rows_begin(&en, &f, 1);
    mesh_buf_addc(&f, 3);
    mesh_buf_addc(&f, 65);
    mesh_buf_add(&f, t65, 65);
    mesh_buf_addc(&f, 6);
    mesh_buf_addc(&f, 0);
    en.nrows = 2;
    mesh_fed_rows_end(&en, true);
    mesh_fed_frame_t fr;
    mesh_err_t err;
    assert_int_equal(mesh_fed_frame_decode(f.data, f.len, &fr, &err), MESH_PARSE);
    /* 2^53 + 1 as a tag 5 double: refused (zigzag 2^54 + 2) */
    mesh_buf_reset(&f);
    mesh_fed_rows_begin(&en, &f, 1);
    mesh_buf_addc(&f, 5);
    mesh_buf_add_uvarint(&f, (1ULL << 54) + 2);
    en.nrows = 1;
    mesh_fed_rows_end(&en, true);
    assert_int_equal(mesh_fed_frame_decode(f.data, f.len, &fr, &err), MESH_PARSE);
    mesh_buf_free(&f);
}

/* Snapshot bootstrap messages (mesh/snapwire.h): a signed request and every frame, and the
 * refusals of the decoders. */
static void test_snap_wire(void **state)
{
    (void)state;
    char dir[] = "/tmp/meshd-test-snap-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/k", dir);
    mesh_signkey_t *k = NULL;
    mesh_err_t err;
    assert_int_equal(mesh_signkey_open(path, &k, &err), MESH_OK);
    uint8_t pub[MESH_SIGN_PUB_BYTES];
    mesh_signkey_public(k, pub);
    mesh_snap_request_t r = {.ts_ns = 1790000000000000000LL};
    strcpy(r.node, "n3");
    strcpy(r.domain, "plant");
    memset(r.nonce, 0xab, sizeof r.nonce);
    const char *subj = "meshd.dom.plant.req.snap";
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_SNAP_MAX_REQUEST);
    assert_int_equal(mesh_snap_request_encode(&r, subj, k, &b), MESH_OK);
    assert_true(mesh_snap_request_verify(b.data, b.len, subj, pub));
    assert_false(mesh_snap_request_verify(b.data, b.len, "meshd.dom.other.req.snap", pub));
    mesh_snap_request_t p;
    assert_int_equal(mesh_snap_request_parse(b.data, b.len, &p, &err), MESH_OK);
    assert_string_equal(p.node, "n3");
    assert_string_equal(p.domain, "plant");
    assert_int_equal(p.ts_ns, r.ts_ns);
    assert_memory_equal(p.nonce, r.nonce, sizeof r.nonce);
    /* one changed byte (the node) and the signature fails */
    char *u = strstr(b.data + 68, "\"n3\"");
    assert_non_null(u);
    u[2] = '4';
    assert_false(mesh_snap_request_verify(b.data, b.len, subj, pub));
    assert_int_equal(mesh_snap_request_parse(b.data, MESH_SNAP_MAX_REQUEST + 1, &p, &err),
                     MESH_TOO_LARGE);
    assert_int_equal(mesh_snap_request_parse("{\"v\":1}", 7, &p, &err), MESH_PARSE);
    /* a member too many, a bad domain name, a short nonce */
    static const char *const bad[] = {
        "{\"v\":1,\"node\":\"n3\",\"domain\":\"plant\",\"ts\":5,\"nonce\":\""
        "00000000000000000000000000000000\",\"x\":1}",
        "{\"v\":1,\"node\":\"n3\",\"domain\":\"Plant!\",\"ts\":5,\"nonce\":\""
        "00000000000000000000000000000000\"}",
        "{\"v\":1,\"node\":\"n3\",\"domain\":\"plant\",\"ts\":5,\"nonce\":\"00\"}",
        "{\"v\":1,\"node\":\"n3\",\"domain\":\"plant\",\"ts\":-5,\"nonce\":\""
        "00000000000000000000000000000000\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mesh_buf_reset(&b);
        mesh_buf_add(&b, "MSR1", 4);
        for (int j = 0; j < MESH_SIGN_SIG_BYTES; j++)
            mesh_buf_addc(&b, 0);
        mesh_buf_adds(&b, bad[i]);
        assert_int_equal(mesh_snap_request_parse(b.data, b.len, &p, &err), MESH_INVALID);
    }
    /* frames */
    mesh_buf_free(&b);
    mesh_buf_init(&b, MESH_SNAP_MAX_FRAME);
    mesh_snap_frame_t f;
    uint8_t page[4096];
    memset(page, 7, sizeof page);
    assert_int_equal(mesh_snap_data_encode(page, sizeof page, &b), MESH_OK);
    assert_int_equal(mesh_snap_frame_decode(b.data, b.len, &f, &err), MESH_OK);
    assert_int_equal(f.kind, MESH_SNAP_DATA);
    assert_int_equal(f.len, sizeof page);
    assert_memory_equal(f.data, page, sizeof page);
    assert_int_equal(mesh_snap_frame_decode(b.data, b.len - 1, &f, &err), MESH_PARSE);
    assert_int_equal(mesh_snap_header_encode(42, 8192, &b), MESH_OK);
    assert_int_equal(mesh_snap_frame_decode(b.data, b.len, &f, &err), MESH_OK);
    assert_int_equal(f.kind, MESH_SNAP_HEADER);
    assert_int_equal(f.seq, 42);
    assert_int_equal(f.bytes, 8192);
    assert_int_equal(mesh_snap_end_encode(8192, 0xdeadbeefu, &b), MESH_OK);
    assert_int_equal(mesh_snap_frame_decode(b.data, b.len, &f, &err), MESH_OK);
    assert_int_equal(f.kind, MESH_SNAP_END);
    assert_int_equal(f.crc, 0xdeadbeefu);
    assert_int_equal(mesh_snap_error_encode(MESH_FORBIDDEN, "no\nway", &b), MESH_OK);
    assert_int_equal(mesh_snap_frame_decode(b.data, b.len, &f, &err), MESH_OK);
    assert_int_equal(f.kind, MESH_SNAP_ERROR);
    assert_int_equal(f.code, MESH_FORBIDDEN);
    assert_string_equal(f.msg, "no?way"); /* control characters never reach a log */
    /* an unknown kind, an empty data frame, too large */
    b.data[4] = 9;
    assert_int_equal(mesh_snap_frame_decode(b.data, b.len, &f, &err), MESH_PARSE);
    assert_int_equal(mesh_snap_data_encode(page, 0, &b), MESH_OK);
    assert_int_equal(mesh_snap_frame_decode(b.data, b.len, &f, &err), MESH_PARSE);
    assert_int_equal(mesh_snap_frame_decode(b.data, MESH_SNAP_MAX_FRAME + 1, &f, &err),
                     MESH_TOO_LARGE);
    mesh_buf_free(&b);
    mesh_signkey_free(k);
    unlink(path);
    rmdir(dir);
}

/* The tables a federated request or a describe answer may name: a product and its views. */
static void test_fed_table_names(void **state)
{
    (void)state;
    const char *ok[] = {"readings", "readings__last", "readings__agg", "readings__quarantine"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_true(mesh_fed_table_ok(ok[i]));
    char long_name[MESH_FED_TABLE_MAX + 8];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    const char *bad[] = {"", "bad name__agg", "x;y__last", "a\"b", long_name};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(mesh_fed_table_ok(bad[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fed_table_names), cmocka_unit_test(test_entry_round_trip),
        cmocka_unit_test(test_entry_refusals),  cmocka_unit_test(test_node_names),
        cmocka_unit_test(test_info_version),    cmocka_unit_test(test_permissions),
        cmocka_unit_test(test_config_files),    cmocka_unit_test(test_fed_request),
        cmocka_unit_test(test_fed_query),       cmocka_unit_test(test_fed_nonces),
        cmocka_unit_test(test_fed_compact),     cmocka_unit_test(test_snap_wire),
        cmocka_unit_test(test_recwire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
