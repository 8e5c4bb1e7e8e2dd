/*
 * fuzz_cli_access_args.c - meshctl's access-control arguments (src/cli/access_args.c): grant
 * scopes, a grant's words, role lists, column paths and ids are typed by users (or pasted
 * from scripts) and must be refused cleanly, never read out of bounds. A scope that parses
 * must format to text that parses back to the same scope.
 *
 * The input is split at NUL bytes into up to 8 words: the words of a grant, and each word
 * on its own for the other parsers. src/cli is not part of libmeshcore: the parser file is
 * compiled in (it depends on libmeshcore only).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/cli/access_args.c"

#define WORDS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one_word(const char *w)
{
    mesh_err_t err;
    static mesh_cli_scope_t a, b;
    if (mesh_cli_scope_parse(w, &a, &err) == MESH_OK) {
        char text[8192];
        mesh_cli_scope_format(&a, text, sizeof text);
        if (mesh_cli_scope_parse(text, &b, &err) != MESH_OK || memcmp(&a, &b, sizeof a) != 0)
            abort();
    }
    static mesh_cli_names_t n;
    for (int f = 0; f < 4; f++)
        (void)mesh_cli_roles_parse(w, "--roles", f & 1, f & 2, &n, &err);
    char d[MESH_NAME_MAX + 1], p[MESH_NAME_MAX + 1], c[MESH_NAME_MAX + 1];
    (void)mesh_cli_column_path_parse(w, d, p, c, &err);
    long long id;
    (void)mesh_cli_policy_id_parse(w, &id, &err);
    (void)mesh_cli_token_id_check(w, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *words[WORDS];
    int n = 0;
    for (size_t i = 0; i <= size && n < WORDS;) {
        words[n++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    static mesh_cli_grant_t g;
    mesh_err_t err;
    (void)mesh_cli_grant_parse(n, words, &g, &err);
    for (int i = 0; i < n; i++)
        one_word(words[i]);
    free(buf);
    return 0;
}
