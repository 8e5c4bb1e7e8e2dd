/*
 * group.c - several origin records in one stream message (see group.h).
 */
#include "store/group.h"

#include <string.h>

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = v << 8 | p[k];
    return v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

bool mesh_group_is(const uint8_t *p, size_t n)
{
    return n > 0 && p[0] == MESH_GROUP_KIND;
}

static bool origin_record(const uint8_t *p, size_t n)
{
    return n > MESH_GROUP_ORIGIN_HDR && p[0] == MESH_GROUP_ORIGIN;
}

mesh_status_t mesh_group_split(const uint8_t *p, size_t n, mesh_group_rec_t *v, size_t *count,
                               mesh_err_t *err)
{
    *count = 0;
    mesh_cursor_t c;
    mesh_cursor_init(&c, p, n);
    if (mesh_cursor_u8(&c) != MESH_GROUP_KIND)
        return mesh_err_set(err, MESH_CORRUPT, "not a group of records");
    uint32_t k = mesh_cursor_u32(&c);
    if (c.bad || k == 0 || k > MESH_GROUP_MAX)
        return mesh_err_set(err, MESH_CORRUPT, "a group of records: bad count %u (1 to %d)",
                            (unsigned)k, MESH_GROUP_MAX);
    uint64_t origin = 0;
    for (uint32_t i = 0; i < k; i++) {
        uint32_t len = mesh_cursor_u32(&c);
        const uint8_t *r = c.bad ? NULL : mesh_cursor_bytes(&c, len);
        if (r == NULL)
            return mesh_err_set(err, MESH_CORRUPT,
                                "a group of records: record %u of %u is cut short", (unsigned)i + 1,
                                (unsigned)k);
        if (!origin_record(r, len))
            return mesh_err_set(err, MESH_CORRUPT,
                                "a group of records: record %u of %u is not an origin batch",
                                (unsigned)i + 1, (unsigned)k);
        if (i == 0 && (origin = rd64(r + 1)) == 0)
            return mesh_err_set(err, MESH_CORRUPT, "a group of records: origin 0 (none)");
        if (i > 0 && rd64(r + 1) != origin)
            return mesh_err_set(err, MESH_CORRUPT,
                                "a group of records: record %u of %u is of another origin",
                                (unsigned)i + 1, (unsigned)k);
        v[i] = (mesh_group_rec_t){r, len};
    }
    if (c.n != 0)
        return mesh_err_set(err, MESH_CORRUPT, "a group of records: %zu bytes after its %u records",
                            c.n, (unsigned)k);
    *count = k;
    return MESH_OK;
}

uint64_t mesh_group_origin(const uint8_t *p, size_t n)
{
    if (origin_record(p, n))
        return rd64(p + 1);
    /* a group: its first record's (the others are checked when it is split) */
    if (n > MESH_GROUP_HDR + 4 && p[0] == MESH_GROUP_KIND) {
        const uint8_t *q = p + MESH_GROUP_HDR;
        size_t len = (size_t)q[0] | (size_t)q[1] << 8 | (size_t)q[2] << 16 | (size_t)q[3] << 24;
        if (len <= n - MESH_GROUP_HDR - 4 && origin_record(q + 4, len))
            return rd64(q + 5);
    }
    return 0;
}

mesh_status_t mesh_group_add(mesh_buf_t *out, size_t *count, const uint8_t *head, size_t hn,
                             const uint8_t *body, size_t bn)
{
    if (hn + bn > UINT32_MAX || out->len > UINT32_MAX)
        return MESH_TOO_LARGE;
    if (*count >= MESH_GROUP_MAX)
        return MESH_LIMIT;
    mesh_status_t st;
    if (*count == 1) {
        /* the lone record becomes the first of a group: its header goes in front */
        uint8_t h[MESH_GROUP_HDR + 4];
        size_t first = out->len;
        h[0] = MESH_GROUP_KIND;
        wr32(h + 1, 1);
        wr32(h + MESH_GROUP_HDR, (uint32_t)first);
        if ((st = mesh_buf_add(out, h, sizeof h)) != MESH_OK) /* makes the room */
            return st;
        memmove(out->data + sizeof h, out->data, first);
        memcpy(out->data, h, sizeof h);
    }
    if (*count > 0 && (st = mesh_buf_add_u32(out, (uint32_t)(hn + bn))) != MESH_OK)
        return st;
    if ((st = mesh_buf_add(out, head, hn)) != MESH_OK ||
        (st = mesh_buf_add(out, body, bn)) != MESH_OK)
        return st;
    (*count)++;
    if (*count > 1)
        wr32((uint8_t *)out->data + 1, (uint32_t)*count);
    return MESH_OK;
}
