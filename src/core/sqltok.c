/*
 * sqltok.c - SQL text a token at a time (see sqltok.h).
 */
#include "core/sqltok.h"

#include <ctype.h>

int mesh_sql_skip(const char *s, size_t n, size_t *i)
{
    size_t k = *i;
    while (k < n) {
        if (isspace((unsigned char)s[k])) {
            k++;
        } else if (s[k] == '-' && k + 1 < n && s[k + 1] == '-') {
            while (k < n && s[k] != '\n')
                k++;
        } else if (s[k] == '/' && k + 1 < n && s[k + 1] == '*') {
            size_t e = k + 2;
            while (e + 1 < n && !(s[e] == '*' && s[e + 1] == '/'))
                e++;
            if (e + 1 >= n) {
                *i = k;
                return -1;
            }
            k = e + 2;
        } else {
            break;
        }
    }
    *i = k;
    return 0;
}

mesh_sqlt_t mesh_sql_token(const char *s, size_t n, size_t i, size_t *len)
{
    unsigned char c = (unsigned char)s[i];
    size_t e = i;
    if (c == '\'' || c == '"' || c == '`' || c == '[') {
        char close = c == '[' ? ']' : (char)c;
        for (e = i + 1;; e++) {
            if (e >= n)
                return MESH_SQLT_BAD;
            if (s[e] == close) {
                if (close != ']' && e + 1 < n && s[e + 1] == close) {
                    e++; /* a doubled quote stands for one */
                    continue;
                }
                break;
            }
        }
        *len = e + 1 - i;
        return c == '\'' ? MESH_SQLT_STR : MESH_SQLT_QID;
    }
    if (isalpha(c) || c == '_' || c >= 0x80) {
        while (e < n && (isalnum((unsigned char)s[e]) || s[e] == '_' || s[e] == '$' ||
                         (unsigned char)s[e] >= 0x80))
            e++;
        *len = e - i;
        return MESH_SQLT_WORD;
    }
    if (isdigit(c) || (c == '.' && i + 1 < n && isdigit((unsigned char)s[i + 1]))) {
        while (e < n && (isalnum((unsigned char)s[e]) || s[e] == '.' ||
                         ((s[e] == '+' || s[e] == '-') && (s[e - 1] == 'e' || s[e - 1] == 'E'))))
            e++;
        *len = e - i;
        return MESH_SQLT_NUM;
    }
    *len = 1;
    return MESH_SQLT_OTHER;
}
