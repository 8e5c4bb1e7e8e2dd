/*
 * fedwire.h - the messages of federated queries between nodes (docs/mesh.md, decision 0022).
 *
 * Everything here is read from other processes over the network, so every decoder is strict
 * and bounded: a size limit before parsing, caps on every count, names checked like local
 * ones, and no allocation sized by a length field before that field is checked against the
 * bytes that are actually there. Fuzzed by fuzz/fuzz_fed_request.c and fuzz_fed_chunk.c.
 *
 * A request (calling node -> owner, on meshd.dom.<domain>.req.scan) is signed by the
 * calling node:
 *   "MFS1" | Ed25519 signature (64 bytes) | JSON
 * The signature covers "meshd-fed-v1\n" + subject + "\n" + JSON, so a request cannot be
 * moved to another subject. The JSON (version 1):
 *   {"v":1,"op":"describe"|"scan","node":"n2","user":"alice","domain":"factory",
 *    "ts":<unix ns>,"nonce":"<32 hex>",
 *    "table":"readings",                       (scan)
 *    "cols":["ts","value"],                     (scan: the columns read, in order)
 *    "where":[{"col":"device","op":"=","val":"d1"}, ...],   (scan: pushed-down constraints)
 *    "limit":100,                               (scan, optional)
 *    "sql":"SELECT ...",                        (query: a whole statement, decision 0039)
 *    "timeout_ms":30000,"max_rows":0,           (query, optional: the caller's limits)
 *    "enc":2}                                   (optional: compact values welcome)
 * A reply (owner -> caller) is a frame:
 *   "MFC1" | u8 kind | u8 last | u16 ncols | u32 nrows | body          (integers little-endian)
 *   kind 0 rows: nrows x ncols values, each u8 tag (0 NULL, 1 int64, 2 double, 3 text) and,
 *                for 1 and 2, 8 bytes; for 3 a uvarint length and the bytes;
 *                compact values, sent only to a request with "enc":2 (decision 0041):
 *                4 int64 as the zigzag uvarint of its difference (mod 2^64) from the last
 *                  integer (tag 1 or 4) of its column in the frame, 0 before the first;
 *                5 a double holding an integer in [-2^53, 2^53] (not -0.0), as the zigzag
 *                  uvarint of that integer;
 *                6 a text sent before in the frame, as the uvarint index of its entry in the
 *                  frame's text table: every tag 3 text of at most MESH_FED_DICT_TEXT bytes
 *                  takes the next entry while the table has fewer than MESH_FED_DICT_MAX;
 *   kind 1 error: u8 status (mesh_status_t) | u16 length | message text;
 *   kind 2 schema: JSON {"tables":[{"name":"readings","cols":[["ts","TIMESTAMP"],...]}]};
 *   kind 3 result (the answer to a query): as rows, then u32 length | JSON trailer
 *                {"cols":[["name","TYPE"|null],...],      (the first frame)
 *                 "products":"d.p,...","policies":"...",  (the first frame)
 *                 "scanned":N,"suppressed":N}             (scanned: so far, every frame since
 *                                                          0041; suppressed: the last, -1 none)
 * A rows frame that is not the last carries, as its NATS reply subject, where the caller
 * asks for the next one ("next") or ends the scan early ("close").
 */
#ifndef MESH_MESH_FEDWIRE_H
#define MESH_MESH_FEDWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"
#include "core/util.h"
#include "crypt/sign.h"
#include "store/store.h"

#define MESH_FED_MAX_REQUEST (64 * 1024)   /* bytes of a request */
#define MESH_FED_MAX_FRAME   (1024 * 1024) /* bytes of a reply frame */
#define MESH_FED_CHUNK_BYTES (256 * 1024)  /* the owner ends a rows frame past this */
#define MESH_FED_MAX_COLS    256           /* columns of a scan or a table */
#define MESH_FED_MAX_CONS    32            /* pushed-down constraints */
#define MESH_FED_MAX_VALUE   4096          /* bytes of a constraint's value */
#define MESH_FED_MAX_TABLES  1024          /* tables in a schema frame */
#define MESH_FED_MAX_ROWS    65536         /* rows in one frame */
#define MESH_FED_NONCE_BYTES 16
#define MESH_FED_MAGIC_REQ   "MFS1"
#define MESH_FED_MAGIC_FRAME "MFC1"
#define MESH_FED_TABLE_MAX   (MESH_NAME_MAX + 12) /* product + "__quarantine" */
#define MESH_FED_MAX_SQL     (32 * 1024)          /* bytes of a query's statement */
#define MESH_FED_NAME_MAX    128  /* bytes of a result column's name (longer: cut) */
#define MESH_FED_META_TEXT   4096 /* bytes of a trailer's products or policies */
#define MESH_FED_SITE_MAX    256  /* bytes of a node's site (MESH_ENTRY_MAX_TEXT) */
#define MESH_FED_DICT_TEXT   64   /* texts this short enter a frame's text table (tag 6) */
#define MESH_FED_DICT_MAX    4096 /* entries of a frame's text table */

typedef enum { MESH_FED_DESCRIBE = 1, MESH_FED_SCAN = 2, MESH_FED_QUERY = 3 } mesh_fed_op_t;

/* Constraint operators, as SQL text on the wire. */
typedef enum {
    MESH_FED_OP_EQ = 0,
    MESH_FED_OP_GT,
    MESH_FED_OP_GE,
    MESH_FED_OP_LT,
    MESH_FED_OP_LE,
    MESH_FED_OP_NE,
    MESH_FED_OP_IS,
    MESH_FED_OP_ISNOT,
    MESH_FED_OP_ISNULL,
    MESH_FED_OP_NOTNULL,
    MESH_FED_OP_LIKE,
    MESH_FED_OP_GLOB,
    MESH_FED_OP__COUNT
} mesh_fed_opr_t;

/* The SQL of an operator ("=", "IS NOT", "IS NULL", ...) and whether it takes a value. */
const char *mesh_fed_op_sql(mesh_fed_opr_t op);
bool mesh_fed_op_has_value(mesh_fed_opr_t op);

typedef struct mesh_fed_cons {
    char col[MESH_NAME_MAX + 1];
    mesh_fed_opr_t op;
    mesh_datum_t val; /* text: owned (s allocated) after parsing; borrowed when encoding */
} mesh_fed_cons_t;

typedef struct mesh_fed_request {
    mesh_fed_op_t op;
    char node[64]; /* the calling node (mesh_entry_node_name_ok) */
    char user[64]; /* the end user: a principal name */
    char domain[MESH_NAME_MAX + 1];
    char table[MESH_FED_TABLE_MAX + 1];
    int64_t ts_ns;
    uint8_t nonce[MESH_FED_NONCE_BYTES];
    char (*cols)[MESH_NAME_MAX + 1];
    size_t ncols;
    mesh_fed_cons_t cons[MESH_FED_MAX_CONS];
    size_t ncons;
    int64_t limit; /* -1: none */
    /* query: the statement (owned after parsing, borrowed when encoding) and the caller's
     * limits (0: none) */
    char *sql;
    size_t sql_len;
    int64_t timeout_ms, max_rows;
    bool compact; /* "enc":2: the answer's rows frames may use compact values (tags 4-6) */
    /* not on the wire: the calling node's site, from its registry entry (owner side) */
    char site[MESH_FED_SITE_MAX + 1];
} mesh_fed_request_t;

/* Signs and encodes r for subject into out (a random nonce and the time are the caller's to
 * set). MESH_TOO_LARGE past MESH_FED_MAX_REQUEST. */
mesh_status_t mesh_fed_request_encode(const mesh_fed_request_t *r, const char *subject,
                                      const mesh_signkey_t *key, mesh_buf_t *out);
/* Parses a request without checking its signature (the key is found from r->node): *out is
 * the caller's (mesh_fed_request_free). MESH_TOO_LARGE, MESH_PARSE or MESH_INVALID. */
mesh_status_t mesh_fed_request_parse(const void *p, size_t n, mesh_fed_request_t *out,
                                     mesh_err_t *err);
/* Whether the request bytes p[0..n) carry pub's signature for subject. */
bool mesh_fed_request_verify(const void *p, size_t n, const char *subject,
                             const uint8_t pub[MESH_SIGN_PUB_BYTES]);
void mesh_fed_request_free(mesh_fed_request_t *r);
/* Whether t can name a product table: a product name, optionally + "__last"/"__quarantine". */
bool mesh_fed_table_ok(const char *t);

/* ---- reply frames ---- */

typedef enum {
    MESH_FED_ROWS = 0,
    MESH_FED_ERROR = 1,
    MESH_FED_SCHEMA = 2,
    MESH_FED_RESULT = 3
} mesh_fed_kind_t;

/* A result frame's trailer: what a query's answer needs besides its rows. */
typedef struct mesh_fed_meta {
    size_t ncols; /* > 0: cols and types are set (the first frame) */
    char (*cols)[MESH_FED_NAME_MAX + 1];
    int8_t *types;  /* mesh_fed_type_name's index, -1: an expression (no declared type) */
    char *products; /* "domain.product,..." (NULL: not in this frame) */
    char *policies; /* as mesh_query_policies (NULL: not in this frame) */
    int64_t scanned, suppressed; /* -1: not in this frame (suppressed: or no such product) */
} mesh_fed_meta_t;

/* The declared type of index i (TEXT INTEGER REAL BOOLEAN TIMESTAMP DATE TIME JSON), NULL
 * for -1 or out of range; and the index of a type name, -1 for NULL or an unknown one. */
const char *mesh_fed_type_name(int i);
int mesh_fed_type_index(const char *name);
void mesh_fed_meta_free(mesh_fed_meta_t *m);

/* The compact values of a rows frame (asked for by a request's "enc":2; every decoder reads
 * them): an encoder's memory of the frame's values so far (mesh_fed_rows_compact). */
typedef struct mesh_fed_compact mesh_fed_compact_t;
mesh_fed_compact_t *mesh_fed_compact_new(void);
void mesh_fed_compact_free(mesh_fed_compact_t *cz);

/* Writing a rows frame: begin, then add values row by row, then end. */
typedef struct mesh_fed_enc {
    mesh_buf_t *out;
    size_t start;
    uint16_t ncols;
    uint32_t nrows;
    size_t target; /* bytes at which the filler ends the frame (begin: MESH_FED_CHUNK_BYTES) */
    mesh_fed_compact_t *cz; /* NULL: plain values (tags 0-3 only) */
    uint32_t col;           /* the column of the next value */
} mesh_fed_enc_t;

void mesh_fed_rows_begin(mesh_fed_enc_t *e, mesh_buf_t *out, uint16_t ncols);
/* After begin: the values of this frame are written compact (tags 4-6), with cz as the
 * memory (reset here; one cz serves any number of frames, one at a time). */
void mesh_fed_rows_compact(mesh_fed_enc_t *e, mesh_fed_compact_t *cz);
mesh_status_t mesh_fed_rows_value(mesh_fed_enc_t *e, const mesh_datum_t *d);
/* Counts the row just added. */
void mesh_fed_rows_row(mesh_fed_enc_t *e);
/* Makes the frame a result (kind 3) with m as its trailer: after the last row, before end.
 * Column names longer than MESH_FED_NAME_MAX are cut; products and policies longer than
 * MESH_FED_META_TEXT too (at a separator). */
mesh_status_t mesh_fed_rows_meta(mesh_fed_enc_t *e, const mesh_fed_meta_t *m);
/* Writes the header (last: no frame follows). */
void mesh_fed_rows_end(mesh_fed_enc_t *e, bool last);
mesh_status_t mesh_fed_error_encode(mesh_status_t code, const char *msg, mesh_buf_t *out);

/* A schema: the tables of a domain one user may read, with their columns. */
typedef struct mesh_fed_table {
    char name[MESH_FED_TABLE_MAX + 1];
    size_t ncols;
    char (*cols)[MESH_NAME_MAX + 1];
    char (*types)[16]; /* TEXT INTEGER REAL BOOLEAN TIMESTAMP DATE TIME JSON */
} mesh_fed_table_t;

typedef struct mesh_fed_schema {
    mesh_fed_table_t *tables;
    size_t ntables;
} mesh_fed_schema_t;

/* A decoded frame; rows point into the frame's bytes (borrowed from the caller). */
typedef struct mesh_fed_frame {
    mesh_fed_kind_t kind;
    bool last;
    uint16_t ncols;
    uint32_t nrows;
    mesh_datum_t *vals; /* nrows * ncols, row-major (owned) */
    mesh_status_t code; /* kind error */
    char msg[512];
    mesh_fed_schema_t schema; /* kind schema (owned) */
    mesh_fed_meta_t meta;     /* kind result (owned) */
} mesh_fed_frame_t;

/* Decodes a frame: MESH_OK and *out (free with mesh_fed_frame_free; its text values point
 * into p, which must outlive them), or MESH_TOO_LARGE/MESH_PARSE/MESH_INVALID. */
mesh_status_t mesh_fed_frame_decode(const void *p, size_t n, mesh_fed_frame_t *out,
                                    mesh_err_t *err);
void mesh_fed_frame_free(mesh_fed_frame_t *f);
/* Appends a schema frame of s. */
mesh_status_t mesh_fed_schema_encode(const mesh_fed_schema_t *s, mesh_buf_t *out);
void mesh_fed_schema_free(mesh_fed_schema_t *s);

#endif
