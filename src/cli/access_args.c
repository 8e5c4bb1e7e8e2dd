/*
 * access_args.c - parsing the arguments of meshctl's access-control commands (see
 * access_args.h for the syntax).
 *
 * Every parser works on a NUL-terminated string, copies only after checking a length
 * against its buffer, and reports the first problem with the part it is about (quoted, at
 * most MESH_CLI_ARG_ECHO bytes). Names are checked with the server's own rules
 * (core/util.h, auth/policy.h), so what passes here is not refused there for its shape.
 */
#include "cli/access_args.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth/policy.h"

#define ROLE_RULE    "1-63 of a-z 0-9 _ -, starting with a letter"
#define SCOPE_HINT   "'*' (the whole mesh), DOMAIN, DOMAIN.PRODUCT or DOMAIN.PRODUCT:COL,COL"
#define TOKEN_ID_LEN 32

static const char *const actions[] = {"read", "write", "admin", "audit"};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Copies p[0..n) into out (cap bytes) when it fits; false otherwise. */
static bool copy_name(char *out, size_t cap, const char *p, size_t n)
{
    if (n >= cap)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

static mesh_status_t bad_domain(const char *p, size_t n, mesh_err_t *err)
{
    return mesh_err_set(err, MESH_INVALID,
                        "'%.*s' is not a domain name (1-63 of a-z 0-9 _ -, starting with a "
                        "letter)",
                        (int)(n > MESH_CLI_ARG_ECHO ? MESH_CLI_ARG_ECHO : n), p);
}

static mesh_status_t bad_product(const char *p, size_t n, mesh_err_t *err)
{
    return mesh_err_set(err, MESH_INVALID,
                        "'%.*s' is not a product name (1-63 of a-z 0-9 _, starting with a letter, "
                        "no '__')",
                        (int)(n > MESH_CLI_ARG_ECHO ? MESH_CLI_ARG_ECHO : n), p);
}

/* Checks p[0..n) as a domain name into out. */
static mesh_status_t domain_part(const char *p, size_t n, char *out, mesh_err_t *err)
{
    if (!copy_name(out, MESH_NAME_MAX + 1, p, n) || !mesh_name_domain_ok(out))
        return bad_domain(p, n, err);
    return MESH_OK;
}

static mesh_status_t product_part(const char *p, size_t n, char *out, mesh_err_t *err)
{
    if (!copy_name(out, MESH_NAME_MAX + 1, p, n) || !mesh_name_product_ok(out))
        return bad_product(p, n, err);
    return MESH_OK;
}

/* The column list p[0..n) ("hr,spo2", blanks around names ignored) into s->columns. */
static mesh_status_t column_list(const char *p, size_t n, mesh_cli_scope_t *s, mesh_err_t *err)
{
    const char *end = p + n;
    for (const char *c = p;;) {
        const char *comma = memchr(c, ',', (size_t)(end - c));
        const char *stop = comma ? comma : end;
        const char *a = c, *b = stop;
        while (a < b && is_blank(*a))
            a++;
        while (b > a && is_blank(b[-1]))
            b--;
        size_t l = (size_t)(b - a);
        if (l == 0)
            return mesh_err_set(err, MESH_INVALID,
                                "an empty column name in the column list (e.g. "
                                "icu.vitals:hr,spo2)");
        if (s->ncolumns == MESH_CLI_NAMES_MAX)
            return mesh_err_set(err, MESH_INVALID, "at most %d columns in one grant",
                                MESH_CLI_NAMES_MAX);
        char *col = s->columns[s->ncolumns];
        if (!copy_name(col, MESH_NAME_MAX + 1, a, l) || !mesh_name_column_ok(col))
            return mesh_err_set(err, MESH_INVALID,
                                "'%.*s' is not a column name (1-63 of A-Z a-z 0-9 _, not "
                                "starting with a digit)",
                                (int)(l > MESH_CLI_ARG_ECHO ? MESH_CLI_ARG_ECHO : l), a);
        for (size_t i = 0; i < s->ncolumns; i++)
            if (strcasecmp(s->columns[i], col) == 0)
                return mesh_err_set(err, MESH_INVALID, "column '%s' is listed twice", col);
        s->ncolumns++;
        if (comma == NULL)
            return MESH_OK;
        c = comma + 1;
    }
}

mesh_status_t mesh_cli_scope_parse(const char *s, mesh_cli_scope_t *out, mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (s == NULL || *s == '\0')
        return mesh_err_set(err, MESH_INVALID, "an empty scope: give " SCOPE_HINT);
    if (strcmp(s, "*") == 0)
        return MESH_OK;
    size_t n = strlen(s);
    size_t dl = strcspn(s, ".:(");
    if (s[dl] == ':' || s[dl] == '(')
        return mesh_err_set(err, MESH_INVALID,
                            "'%.60s': a column list needs a product (DOMAIN.PRODUCT:COL,COL)", s);
    mesh_status_t st = domain_part(s, dl, out->domain, err);
    if (st != MESH_OK || s[dl] == '\0')
        return st;
    const char *p = s + dl + 1; /* after the '.' */
    if (strcmp(p, "*") == 0)
        return MESH_OK; /* "icu.*": the domain */
    size_t pl = strcspn(p, ".:(");
    if (pl == 0)
        return mesh_err_set(err, MESH_INVALID, "'%.60s' names no product after the '.'", s);
    if (p[pl] == '.')
        return mesh_err_set(err, MESH_INVALID,
                            "'%.60s': columns follow a ':' (e.g. icu.vitals:hr,spo2), not a '.'",
                            s);
    if ((st = product_part(p, pl, out->product, err)) != MESH_OK)
        return st;
    const char *c = p + pl;
    if (*c == '\0')
        return MESH_OK;
    if (*c == ':') {
        c++;
        return column_list(c, strlen(c), out, err);
    }
    /* '(' ... ')' */
    size_t cl = n - (size_t)(c - s);
    if (cl < 2 || c[cl - 1] != ')' || memchr(c + 1, ')', cl - 2) || memchr(c + 1, '(', cl - 2))
        return mesh_err_set(err, MESH_INVALID,
                            "'%.60s': a column list in parentheses ends with ')' (e.g. "
                            "'icu.vitals(hr,spo2)')",
                            s);
    return column_list(c + 1, cl - 2, out, err);
}

const char *mesh_cli_scope_format(const mesh_cli_scope_t *s, char *out, size_t cap)
{
    if (cap == 0)
        return out;
    size_t o;
    if (s->domain[0] == '\0')
        o = (size_t)snprintf(out, cap, "*");
    else if (s->product[0] == '\0')
        o = (size_t)snprintf(out, cap, "%s", s->domain);
    else
        o = (size_t)snprintf(out, cap, "%s.%s", s->domain, s->product);
    for (size_t i = 0; i < s->ncolumns && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%c%s", i ? ',' : ':', s->columns[i]);
    if (o >= cap && cap > 4)
        memcpy(out + cap - 4, "...", 4);
    return out;
}

static bool is_action(const char *w)
{
    for (size_t i = 0; i < MESH_ARRAY_LEN(actions); i++)
        if (strcasecmp(w, actions[i]) == 0)
            return true;
    return false;
}

mesh_status_t mesh_cli_grant_parse(int argc, const char *const *argv, mesh_cli_grant_t *out,
                                   mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (argc < 2)
        return mesh_err_set(err, MESH_INVALID, "expected ROLE ACTION [on] SCOPE");
    const char *role = argv[0], *action = argv[1];
    if (!copy_name(out->role, sizeof out->role, role, strlen(role)) ||
        !mesh_role_name_ok(out->role)) {
        return mesh_err_set(err, MESH_INVALID, "'%.60s' is not a role name (" ROLE_RULE ")", role);
    }
    if (!is_action(action)) {
        if (is_action(role))
            return mesh_err_set(err, MESH_INVALID,
                                "'%.60s' is not an action; the role comes first: ROLE ACTION "
                                "[on] SCOPE",
                                action);
        return mesh_err_set(err, MESH_INVALID,
                            "'%.60s' is not an action: read, write, admin or audit", action);
    }
    for (size_t i = 0; action[i] && i + 1 < sizeof out->action; i++)
        out->action[i] = (char)(action[i] >= 'A' && action[i] <= 'Z' ? action[i] + 32 : action[i]);
    bool audit = strcmp(out->action, "audit") == 0;
    int k = 2;
    if (argc - k >= 2 && strcasecmp(argv[k], "on") == 0)
        k++;
    if (argc - k == 0) {
        if (audit)
            return MESH_OK;
        return mesh_err_set(err, MESH_INVALID,
                            "say where: %s %s on " SCOPE_HINT
                            " (a grant without a scope would cover the whole mesh)",
                            out->role, out->action);
    }
    if (argc - k > 1)
        return mesh_err_set(err, MESH_INVALID,
                            "unexpected '%.60s' after the scope '%.60s' (a scope is one word: "
                            "quote '*' so the shell does not expand it, and write columns "
                            "without spaces: icu.vitals:hr,spo2)",
                            argv[k + 1], argv[k]);
    mesh_status_t st = mesh_cli_scope_parse(argv[k], &out->scope, err);
    if (st != MESH_OK)
        return st;
    if (out->scope.ncolumns && strcmp(out->action, "read") != 0)
        return mesh_err_set(err, MESH_INVALID,
                            "a column list goes with read only; grant %s on the product (%s.%s)",
                            out->action, out->scope.domain, out->scope.product);
    if (audit && out->scope.domain[0])
        return mesh_err_set(err, MESH_INVALID,
                            "audit is granted on the whole mesh only: meshctl grant %s audit",
                            out->role);
    return MESH_OK;
}

mesh_status_t mesh_cli_roles_parse(const char *s, const char *what, bool allow_star,
                                   bool allow_empty, mesh_cli_names_t *out, mesh_err_t *err)
{
    out->n = 0;
    const char *a = s, *b = s + strlen(s);
    while (a < b && is_blank(*a))
        a++;
    while (b > a && is_blank(b[-1]))
        b--;
    if (a == b) {
        if (allow_empty)
            return MESH_OK;
        return mesh_err_set(err, MESH_INVALID, "%s: no role given", what);
    }
    if (b - a == 1 && *a == '*') {
        if (!allow_star)
            return mesh_err_set(err, MESH_INVALID, "%s: '*' (everyone) is not allowed here", what);
        out->name[0][0] = '*';
        out->name[0][1] = '\0';
        out->n = 1;
        return MESH_OK;
    }
    for (const char *c = a;;) {
        const char *comma = memchr(c, ',', (size_t)(b - c));
        const char *x = c, *y = comma ? comma : b;
        while (x < y && is_blank(*x))
            x++;
        while (y > x && is_blank(y[-1]))
            y--;
        size_t l = (size_t)(y - x);
        if (l == 0)
            return mesh_err_set(err, MESH_INVALID, "%s: an empty role name (two commas?)", what);
        if (l == 1 && *x == '*')
            return mesh_err_set(err, MESH_INVALID, "%s: '*' (everyone) stands alone", what);
        if (out->n == MESH_CLI_NAMES_MAX)
            return mesh_err_set(err, MESH_INVALID, "%s: at most %d roles", what,
                                MESH_CLI_NAMES_MAX);
        char *r = out->name[out->n];
        if (!copy_name(r, MESH_ROLE_MAX + 1, x, l) || !mesh_role_name_ok(r))
            return mesh_err_set(err, MESH_INVALID, "%s: '%.*s' is not a role name (" ROLE_RULE ")",
                                what, (int)(l > MESH_CLI_ARG_ECHO ? MESH_CLI_ARG_ECHO : l), x);
        for (size_t i = 0; i < out->n; i++)
            if (strcmp(out->name[i], r) == 0)
                return mesh_err_set(err, MESH_INVALID, "%s: role '%s' is listed twice", what, r);
        out->n++;
        if (comma == NULL)
            return MESH_OK;
        c = comma + 1;
    }
}

mesh_status_t mesh_cli_column_path_parse(const char *s, char *domain, char *product, char *column,
                                         mesh_err_t *err)
{
    const char *d1 = strchr(s, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (d1 == NULL || d2 == NULL || strchr(d2 + 1, '.'))
        return mesh_err_set(err, MESH_INVALID,
                            "'%.60s' is not DOMAIN.PRODUCT.COLUMN (e.g. icu.vitals.patient_id)", s);
    mesh_status_t st = domain_part(s, (size_t)(d1 - s), domain, err);
    if (st == MESH_OK)
        st = product_part(d1 + 1, (size_t)(d2 - d1 - 1), product, err);
    if (st != MESH_OK)
        return st;
    size_t cl = strlen(d2 + 1);
    if (!copy_name(column, MESH_NAME_MAX + 1, d2 + 1, cl) || !mesh_name_column_ok(column))
        return mesh_err_set(err, MESH_INVALID,
                            "'%.60s' is not a column name (1-63 of A-Z a-z 0-9 _, not starting "
                            "with a digit)",
                            d2 + 1);
    return MESH_OK;
}

mesh_status_t mesh_cli_policy_id_parse(const char *s, long long *out, mesh_err_t *err)
{
    int64_t v;
    if (mesh_parse_i64(s, strlen(s), &v) != MESH_OK || v <= 0)
        return mesh_err_set(err, MESH_INVALID,
                            "'%.60s' is not an id (a whole number from 1, as the list shows)", s);
    *out = (long long)v;
    return MESH_OK;
}

mesh_status_t mesh_cli_token_id_check(const char *s, mesh_err_t *err)
{
    size_t n = strlen(s);
    bool hex = n == TOKEN_ID_LEN;
    for (size_t i = 0; hex && i < n; i++)
        hex = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
    if (hex)
        return MESH_OK;
    if (strncmp(s, "mesh_", 5) == 0 || n > 40)
        return mesh_err_set(err, MESH_INVALID,
                            "that looks like a token, not a token id: give the ID column of "
                            "'meshctl token list'");
    return mesh_err_set(err, MESH_INVALID,
                        "'%.60s' is not a token id (32 hex characters, as 'meshctl token list' "
                        "shows)",
                        s);
}
