/*
 * detect.c - name hints, value tests and the confidence of info types. See detect.h.
 *
 * Every test reads at most the n bytes it is given and copies into fixed stack buffers only
 * after checking n against the buffer: a value longer than any real instance of a type
 * fails at once.
 */
#include "classify/detect.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"

/* ---- levels and info types ---- */

static const char *const level_names[] = {"", "public", "internal", "confidential", "restricted"};

const char *mesh_level_name(mesh_level_t l)
{
    return (unsigned)l < MESH_ARRAY_LEN(level_names) ? level_names[l] : "";
}

mesh_level_t mesh_level_parse(const char *s)
{
    for (size_t i = 1; s && i < MESH_ARRAY_LEN(level_names); i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return (mesh_level_t)i;
    return MESH_LEVEL_NONE;
}

static const struct {
    const char *tag;
    unsigned cats;
    mesh_level_t level;
} info_types[] = {
#define MESH_X_ROW(e, tag, cats, level) {tag, cats, level},
    MESH_INFO_TYPE_MAP(MESH_X_ROW)
#undef MESH_X_ROW
};

/*
 * The weights of the confidence formula (detect.h), per info type:
 *   s   what matching values say alone
 *   b0  what the name says alone
 *   b1  what the name adds when the values agree
 * A type whose values are checked by a checksum or a strict shape (email, IBAN, card, IP,
 * MAC) needs no name; a type whose shape is common (a capitalised pair, a date, a number in a
 * latitude's range, a short id) needs the name, and alone stays below the report threshold
 * (0.3) or just above it (person names: "low confidence alone").
 */
static const struct {
    double s, b0, b1;
} weights[MESH_INFO__COUNT] = {
    [MESH_INFO_EMAIL] = {0.95, 0.20, 0.05},
    [MESH_INFO_PHONE] = {0.60, 0.15, 0.30},
    [MESH_INFO_PERSON_NAME] = {0.35, 0.20, 0.45},
    [MESH_INFO_DATE_OF_BIRTH] = {0.10, 0.25, 0.55},
    [MESH_INFO_NATIONAL_ID] = {0.60, 0.20, 0.30},
    [MESH_INFO_IBAN] = {0.95, 0.10, 0.05},
    [MESH_INFO_CARD_NUMBER] = {0.90, 0.10, 0.10},
    [MESH_INFO_IP_ADDRESS] = {0.85, 0.10, 0.15},
    [MESH_INFO_MAC_ADDRESS] = {0.85, 0.10, 0.15},
    [MESH_INFO_MEDICAL_RECORD_NUMBER] = {0.00, 0.25, 0.65},
    [MESH_INFO_LOCATION] = {0.20, 0.20, 0.70},
};

const char *mesh_info_tag(mesh_info_type_t t)
{
    return (unsigned)t < MESH_INFO__COUNT ? info_types[t].tag : "";
}

unsigned mesh_info_categories(mesh_info_type_t t)
{
    return (unsigned)t < MESH_INFO__COUNT ? info_types[t].cats : 0;
}

mesh_level_t mesh_info_level(mesh_info_type_t t)
{
    return (unsigned)t < MESH_INFO__COUNT ? info_types[t].level : MESH_LEVEL_NONE;
}

mesh_info_type_t mesh_info_parse(const char *tag)
{
    for (int i = 0; tag && i < MESH_INFO__COUNT; i++)
        if (strcasecmp(tag, info_types[i].tag) == 0)
            return (mesh_info_type_t)i;
    return MESH_INFO__COUNT;
}

double mesh_detect_confidence(mesh_info_type_t t, bool hint, int64_t matched, int64_t non_null)
{
    if ((unsigned)t >= MESH_INFO__COUNT)
        return 0;
    double f = non_null > 0 && matched > 0 ? (double)matched / (double)non_null : 0.0;
    if (f > 1)
        f = 1;
    double c = weights[t].s * f + (hint ? weights[t].b0 + weights[t].b1 * f : 0.0);
    if (c > 1)
        c = 1;
    if (c < 0)
        c = 0;
    /* two decimals: the number shown, stored and compared with --min-confidence */
    return (double)(int64_t)(c * 100 + 0.5) / 100;
}

/* ---- name hints ---- */

#define WORDS_MAX 8
#define WORD_MAX  32

typedef struct words {
    char w[WORDS_MAX][WORD_MAX];
    int n;
    char joined[WORDS_MAX * WORD_MAX];
} words_t;

static bool is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Splits a column name into lower-case words (digits stay with the letters before them:
 * ipv4, address2); trailing digits are then dropped from a word unless it is all digits. */
static void split_words(const char *name, words_t *out)
{
    memset(out, 0, sizeof *out);
    size_t len = 0;
    char prev = 0;
    for (const char *p = name; p && *p; p++) {
        char c = *p;
        bool alnum = is_lower(c) || is_upper(c) || is_digit(c);
        bool hump =
            is_upper(c) && (is_lower(prev) || is_digit(prev) || (is_upper(prev) && is_lower(p[1])));
        if (!alnum || hump) {
            if (len > 0 && out->n < WORDS_MAX) {
                out->n++;
                len = 0;
            }
            prev = c;
            if (!alnum)
                continue;
        }
        if (out->n >= WORDS_MAX)
            break;
        if (len + 1 < WORD_MAX)
            out->w[out->n][len++] = (char)(is_upper(c) ? c - 'A' + 'a' : c);
        prev = c;
    }
    if (len > 0 && out->n < WORDS_MAX)
        out->n++;
    size_t o = 0;
    for (int i = 0; i < out->n; i++) {
        size_t l = strlen(out->w[i]);
        memcpy(out->joined + o, out->w[i], l);
        o += l;
        /* "phone2" -> "phone" (but "ipv4" keeps its digit: it is listed as such) */
        size_t k = l;
        while (k > 0 && is_digit(out->w[i][k - 1]))
            k--;
        if (k > 0 && k < l && strcmp(out->w[i], "ipv4") != 0 && strcmp(out->w[i], "ipv6") != 0)
            out->w[i][k] = '\0';
    }
    out->joined[o] = '\0';
}

static bool has(const words_t *w, const char *word)
{
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->w[i], word) == 0)
            return true;
    return false;
}

/* Any of a NULL-ended list of words. */
static bool has_any(const words_t *w, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (has(w, list[i]))
            return true;
    return false;
}

static bool joined_has(const words_t *w, const char *part)
{
    return strstr(w->joined, part) != NULL;
}

static mesh_loc_hint_t loc_hint(const words_t *w)
{
    static const char *const lat[] = {"lat", "latitude", NULL};
    static const char *const lon[] = {"lon", "lng", "long", "longitude", NULL};
    static const char *const point[] = {"location", "geo",         "gps",    "geohash",  "coord",
                                        "coords",   "latlon",      "latlng", "geopoint", "geoloc",
                                        "position", "coordinates", "lonlat", "geocode",  NULL};
    /* gps_lat is a latitude, latlon a point */
    if (joined_has(w, "latlon") || joined_has(w, "latlng") || joined_has(w, "lonlat"))
        return MESH_LOC_POINT;
    if (has_any(w, lat))
        return MESH_LOC_LATITUDE;
    if (has_any(w, lon))
        return MESH_LOC_LONGITUDE;
    if (has_any(w, point) || joined_has(w, "geohash") || joined_has(w, "geoloc"))
        return MESH_LOC_POINT;
    return MESH_LOC_NONE;
}

mesh_loc_hint_t mesh_detect_loc_hint(const char *name)
{
    words_t w;
    split_words(name, &w);
    return loc_hint(&w);
}

bool mesh_detect_hint(mesh_info_type_t t, const char *name)
{
    words_t w;
    split_words(name, &w);
    if (w.n == 0)
        return false;
    static const char *const id_words[] = {"id", "number", "no", "nr", "num", "nbr", NULL};
    switch (t) {
    case MESH_INFO_EMAIL: {
        static const char *const l[] = {"email", "mail", "emails", "courriel", NULL};
        return has_any(&w, l) || joined_has(&w, "email");
    }
    case MESH_INFO_PHONE: {
        static const char *const l[] = {"phone",  "telephone", "tel",    "mobile", "cell",
                                        "msisdn", "fax",       "phones", "gsm",    NULL};
        return has_any(&w, l) || joined_has(&w, "phone");
    }
    case MESH_INFO_PERSON_NAME: {
        static const char *const l[] = {"name",       "names",      "fullname",   "firstname",
                                        "lastname",   "surname",    "forename",   "givenname",
                                        "familyname", "middlename", "maidenname", NULL};
        /* names of things, not of people */
        static const char *const not [] = {
            "file",       "filename", "host",     "hostname",     "product",      "device",
            "machine",    "sensor",   "model",    "company",      "site",         "domain",
            "table",      "column",   "user",     "username",     "app",          "brand",
            "street",     "city",     "country",  "org",          "project",      "category",
            "type",       "unit",     "vendor",   "station",      "place",        "server",
            "bucket",     "topic",    "tag",      "key",          "metric",       "field",
            "event",      "service",  "queue",    "asset",        "line",         "plant",
            "ward",       "room",     "building", "team",         "group",        "role",
            "display",    "schema",   "path",     "node",         "cluster",      "alias",
            "zone",       "region",   "item",     "part",         "material",     "drug",
            "medication", "test",     "code",     "organisation", "organization", NULL};
        return (has_any(&w, l) || joined_has(&w, "firstname") || joined_has(&w, "lastname") ||
                joined_has(&w, "surname") || joined_has(&w, "fullname")) &&
               !has_any(&w, not );
    }
    case MESH_INFO_DATE_OF_BIRTH: {
        static const char *const l[] = {"dob",  "birth", "birthday",    "birthdate", "born",
                                        "bday", "natal", "dateofbirth", "birthdays", NULL};
        return has_any(&w, l) || joined_has(&w, "birth");
    }
    case MESH_INFO_NATIONAL_ID: {
        static const char *const l[] = {"ssn",    "sin",     "nin",      "nino",       "passport",
                                        "taxid",  "tin",     "nif",      "nie",        "insee",
                                        "bsn",    "aadhaar", "cpf",      "nationalid", "ssnum",
                                        "socsec", "pesel",   "steuerid", NULL};
        return has_any(&w, l) || (has(&w, "national") && has_any(&w, id_words)) ||
               (has(&w, "social") && has(&w, "security")) ||
               (has(&w, "tax") && has_any(&w, id_words)) || joined_has(&w, "nationalid") ||
               joined_has(&w, "socialsecurity");
    }
    case MESH_INFO_IBAN: {
        static const char *const l[] = {"iban", "bban", NULL};
        return has_any(&w, l) || joined_has(&w, "iban") ||
               (has(&w, "bank") && (has(&w, "account") || has(&w, "acct")));
    }
    case MESH_INFO_CARD_NUMBER: {
        static const char *const l[] = {"card",       "cc",         "ccn",       "pan",
                                        "creditcard", "cardnumber", "debitcard", NULL};
        return has_any(&w, l) || joined_has(&w, "creditcard") || joined_has(&w, "cardnumber") ||
               joined_has(&w, "cardno");
    }
    case MESH_INFO_IP_ADDRESS: {
        static const char *const l[] = {"ip", "ipv4", "ipv6", "ipaddr", "ipaddress", NULL};
        static const char *const peer[] = {"remote", "client", "src",  "source", "dst",
                                           "dest",   "peer",   "host", NULL};
        static const char *const addr[] = {"addr", "address", NULL};
        return has_any(&w, l) || (has_any(&w, peer) && has_any(&w, addr));
    }
    case MESH_INFO_MAC_ADDRESS: {
        static const char *const l[] = {"mac",     "macaddr", "macaddress", "hwaddr",
                                        "ethaddr", "bssid",   "eui",        NULL};
        return has_any(&w, l) || joined_has(&w, "macaddr");
    }
    case MESH_INFO_MEDICAL_RECORD_NUMBER: {
        static const char *const l[] = {"mrn", "ehr", "emr", NULL};
        return has_any(&w, l) || (has(&w, "medical") && has(&w, "record")) ||
               (has(&w, "patient") && has_any(&w, id_words)) ||
               (has(&w, "chart") && has_any(&w, id_words)) || joined_has(&w, "medicalrecord");
    }
    case MESH_INFO_LOCATION:
        return loc_hint(&w) != MESH_LOC_NONE;
    default:
        return false;
    }
}

/* ---- value tests ---- */

/* Trims blanks at both ends. */
static void trim(const char **s, size_t *n)
{
    while (*n > 0 && ((*s)[0] == ' ' || (*s)[0] == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

static bool is_alpha(char c)
{
    return is_lower(c) || is_upper(c);
}

static bool is_alnum(char c)
{
    return is_alpha(c) || is_digit(c);
}

bool mesh_detect_email(const char *s, size_t n)
{
    trim(&s, &n);
    if (n < 6 || n > 254)
        return false;
    const char *at = memchr(s, '@', n);
    if (at == NULL || memchr(at + 1, '@', n - (size_t)(at - s) - 1) != NULL)
        return false;
    size_t ln = (size_t)(at - s);
    if (ln == 0 || ln > 64 || s[0] == '.' || s[ln - 1] == '.')
        return false;
    static const char local_extra[] = ".!#$%&'*+/=?^_`{|}~-";
    for (size_t i = 0; i < ln; i++) {
        char c = s[i];
        if (!is_alnum(c) && strchr(local_extra, c) == NULL)
            return false;
        if (c == '.' && s[i + 1] == '.')
            return false;
    }
    /* the domain: two or more labels, the last one letters only */
    const char *d = at + 1;
    size_t dn = n - ln - 1;
    int labels = 0;
    size_t start = 0;
    for (size_t i = 0; i <= dn; i++) {
        if (i < dn && d[i] != '.') {
            if (!is_alnum(d[i]) && d[i] != '-')
                return false;
            continue;
        }
        size_t l = i - start;
        if (l == 0 || l > 63 || d[start] == '-' || d[i - 1] == '-')
            return false;
        labels++;
        if (i == dn) { /* the top-level domain */
            if (l < 2)
                return false;
            for (size_t k = start; k < i; k++)
                if (!is_alpha(d[k]))
                    return false;
        }
        start = i + 1;
    }
    return labels >= 2;
}

/* The numbers of a d1 SEP d2 SEP d3 date; false when s is not one. */
static bool date_parts(const char *s, size_t n, int *a, int *b, int *c, int *la, char *sep)
{
    int v[3] = {0, 0, 0}, len[3] = {0, 0, 0};
    int k = 0;
    char sp = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (is_digit(ch)) {
            if (len[k] >= 4)
                return false;
            v[k] = v[k] * 10 + (ch - '0');
            len[k]++;
        } else if ((ch == '-' || ch == '/' || ch == '.') && k < 2 && len[k] > 0 &&
                   (sp == 0 || sp == ch)) {
            sp = ch;
            k++;
        } else {
            return false;
        }
    }
    if (k != 2 || len[2] == 0)
        return false;
    /* YYYY-MM-DD, or DD/MM/YYYY-like with the year last */
    if (!((len[0] == 4 && len[1] <= 2 && len[2] <= 2) ||
          (len[0] <= 2 && len[1] <= 2 && len[2] == 4)))
        return false;
    *a = v[0];
    *b = v[1];
    *c = v[2];
    *la = len[0];
    *sep = sp;
    return true;
}

static bool valid_ymd(int y, int m, int d)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1)
        return false;
    int max = mdays[m - 1];
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        max = 29;
    return d <= max;
}

/* Whether s is a calendar date (any year); *year gets its year. */
static bool is_date(const char *s, size_t n, int *year)
{
    /* YYYY-MM-DD followed by a time: look at the date only */
    if (n > 10 && is_digit(s[0]) && s[4] == '-' && (s[10] == 'T' || s[10] == ' '))
        n = 10;
    int a, b, c, la;
    char sep;
    if (n > 10 || !date_parts(s, n, &a, &b, &c, &la, &sep))
        return false;
    if (la == 4) {
        *year = a;
        return sep == '-' && valid_ymd(a, b, c);
    }
    *year = c;
    /* DD/MM/YYYY or MM/DD/YYYY (either reading valid), DD.MM.YYYY, DD-MM-YYYY */
    return valid_ymd(c, b, a) || (sep == '/' && valid_ymd(c, a, b));
}

bool mesh_detect_birth_date(const char *s, size_t n, int now_year)
{
    trim(&s, &n);
    int y = 0;
    return n >= 8 && n <= 40 && is_date(s, n, &y) && y >= 1900 && y <= now_year;
}

/* The SSN's three groups when s has the shape AAA-GG-SSSS (or spaces); false otherwise. */
static bool ssn_shape(const char *s, size_t n, int *area, int *group, int *serial)
{
    if (n != 11 || (s[3] != '-' && s[3] != ' ') || s[6] != s[3])
        return false;
    int v[3] = {0, 0, 0};
    static const int from[] = {0, 4, 7}, to[] = {3, 6, 11};
    for (int g = 0; g < 3; g++)
        for (int i = from[g]; i < to[g]; i++) {
            if (!is_digit(s[i]))
                return false;
            v[g] = v[g] * 10 + (s[i] - '0');
        }
    *area = v[0];
    *group = v[1];
    *serial = v[2];
    return true;
}

bool mesh_detect_ssn(const char *s, size_t n)
{
    trim(&s, &n);
    int area, group, serial;
    if (!ssn_shape(s, n, &area, &group, &serial))
        return false;
    if (area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0)
        return false;
    /* numbers printed on sample cards and in advertising, never issued to anyone's use */
    if ((area == 78 && group == 5 && serial == 1120) ||
        (area == 219 && group == 9 && serial == 9999) ||
        (area == 457 && group == 55 && serial == 5462))
        return false;
    return true;
}

static bool is_ipv4_text(const char *s, size_t n)
{
    char buf[16];
    if (n < 7 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    struct in_addr a;
    return inet_pton(AF_INET, buf, &a) == 1;
}

bool mesh_detect_phone(const char *s, size_t n)
{
    trim(&s, &n);
    if (n < 7 || n > 24)
        return false;
    int digits = 0, groups = 0, first_group = 0;
    bool in_group = false, plus = false, dot = false, other_sep = false, paren = false;
    int parens = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (is_digit(c)) {
            if (!in_group)
                groups++;
            in_group = true;
            digits++;
            if (groups == 1)
                first_group++;
            continue;
        }
        in_group = false;
        if (c == '+' && i == 0)
            plus = true;
        else if (c == '.')
            dot = true;
        else if (c == ' ' || c == '-')
            other_sep = true;
        else if (c == '(' && parens == 0) {
            paren = true;
            parens = 1;
        } else if (c == ')' && parens == 1)
            parens = 2;
        else
            return false;
    }
    if (parens == 1)
        return false;
    int area, group, serial, y;
    if (ssn_shape(s, n, &area, &group, &serial) || is_date(s, n, &y) || is_ipv4_text(s, n))
        return false;
    if (plus) { /* E.164: a country code that does not start with 0, 8 to 15 digits */
        size_t i = 1;
        while (i < n && (s[i] == ' ' || s[i] == '('))
            i++;
        return i < n && s[i] >= '1' && s[i] <= '9' && digits >= 8 && digits <= 15;
    }
    if (s[0] == '0' && s[1] == '0') /* 00 then a country code */
        return digits >= 10 && digits <= 17;
    if (digits < 7 || digits > 11)
        return false;
    if (dot && !other_sep && groups < 3) /* 48.8566123 is a number, 06.12.34.56.78 a phone */
        return false;
    if (groups == 1) /* a bare integer is a phone only with a trunk prefix */
        return s[0] == '0' && digits >= 9;
    return (first_group <= 5 || paren) && digits >= 7;
}

/* An upper-case letter (ASCII) or the lead byte of a non-ASCII letter (taken as a letter). */
static bool word_initial(const char *s, size_t n, size_t i, size_t *len)
{
    unsigned char c = (unsigned char)s[i];
    if (is_upper((char)c)) {
        *len = 1;
        return true;
    }
    if (c >= 0xC0 && c < 0xF8) { /* a UTF-8 lead byte: accept its sequence */
        size_t l = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (i + l > n)
            return false;
        for (size_t k = 1; k < l; k++)
            if (((unsigned char)s[i + k] & 0xC0) != 0x80)
                return false;
        *len = l;
        return true;
    }
    return false;
}

/* One capitalised word of a name: "Alice", "O'Neil", "Jean-Luc", "McDonald", "J.". */
static bool name_word(const char *s, size_t n)
{
    if (n == 0 || n > 30)
        return false;
    size_t l;
    if (!word_initial(s, n, 0, &l))
        return false;
    if (l == n)
        return false; /* one capital alone is not a word */
    if (n == l + 1 && s[l] == '.')
        return true; /* an initial */
    int lower = 0;
    for (size_t i = l; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_lower((char)c)) {
            lower++;
        } else if (c >= 0x80) {
            lower++; /* a letter of another alphabet (assumed lower-case after the initial) */
        } else if ((c == '\'' || c == '-') && i + 1 < n && i > 0 && s[i - 1] != '-' &&
                   s[i - 1] != '\'') {
            size_t k;
            if (i + 1 < n &&
                (is_upper(s[i + 1]) || is_lower(s[i + 1]) || word_initial(s, n, i + 1, &k)))
                continue;
            return false;
        } else if (is_upper((char)c)) {
            /* McDonald, MacLeod, O'Neil (after an apostrophe or a hyphen) */
            bool mc = (i == 2 && s[0] == 'M' && s[1] == 'c') ||
                      (i == 3 && s[0] == 'M' && s[1] == 'a' && s[2] == 'c');
            if (!mc && s[i - 1] != '\'' && s[i - 1] != '-')
                return false;
        } else {
            return false;
        }
    }
    return lower > 0;
}

/* Lower-case particles inside a name: "Ludwig van Beethoven". */
static bool particle(const char *s, size_t n)
{
    static const char *const l[] = {"van", "von", "de", "der", "den", "da",  "di",
                                    "du",  "la",  "le", "del", "ter", "bin", "al"};
    for (size_t i = 0; i < MESH_ARRAY_LEN(l); i++)
        if (strlen(l[i]) == n && memcmp(s, l[i], n) == 0)
            return true;
    return false;
}

bool mesh_detect_person_name(const char *s, size_t n)
{
    trim(&s, &n);
    if (n < 3 || n > 64)
        return false;
    /* "Martin, Alice" */
    const char *comma = memchr(s, ',', n);
    if (comma) {
        size_t a = (size_t)(comma - s);
        if (a + 2 >= n || s[a + 1] != ' ' || memchr(comma + 1, ',', n - a - 1))
            return false;
        return name_word(s, a) && name_word(comma + 2, n - a - 2);
    }
    int words = 0, caps = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ' ')
            continue;
        size_t l = i - start;
        if (l == 0)
            return false; /* two spaces, or a leading one */
        words++;
        if (name_word(s + start, l))
            caps++;
        else if (!(words > 1 && particle(s + start, l)))
            return false;
        start = i + 1;
    }
    /* the last word is a capitalised one */
    return words >= 2 && words <= 4 && caps >= 2;
}

bool mesh_luhn_ok(const char *s, size_t n)
{
    int sum = 0, k = 0;
    for (size_t i = n; i > 0; i--) {
        char c = s[i - 1];
        if (!is_digit(c))
            continue;
        int d = c - '0';
        if (k++ % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return k > 0 && sum % 10 == 0;
}

/* Issuer prefixes (ISO/IEC 7812 IIN ranges of the major networks) and their lengths. */
static const struct {
    int digits;    /* how many leading digits lo..hi cover */
    int lo, hi;    /* the range of those digits */
    unsigned lens; /* bit L set: length L allowed */
} iin[] = {
    {1, 4, 4, (1u << 13) | (1u << 16) | (1u << 19)}, /* Visa */
    {2, 51, 55, 1u << 16},                           /* Mastercard */
    {4, 2221, 2720, 1u << 16},                       /* Mastercard 2-series */
    {2, 34, 34, 1u << 15},                           /* American Express */
    {2, 37, 37, 1u << 15},                           /* American Express */
    {4, 6011, 6011, 0xFu << 16},                     /* Discover 16-19 */
    {3, 644, 649, 0xFu << 16},                       /* Discover */
    {2, 65, 65, 0xFu << 16},                         /* Discover */
    {4, 3528, 3589, 0xFu << 16},                     /* JCB */
    {3, 300, 305, 0x3Fu << 14},                      /* Diners Club 14-19 */
    {2, 36, 36, 0x3Fu << 14},                        /* Diners Club */
    {2, 38, 39, 0x3Fu << 14},                        /* Diners Club */
    {2, 62, 62, 0xFu << 16},                         /* UnionPay */
    {4, 2200, 2204, 0xFu << 16},                     /* Mir */
    {2, 50, 50, 0xFFu << 12},                        /* Maestro 12-19 */
    {2, 56, 58, 0xFFu << 12},                        /* Maestro */
    {2, 67, 67, 0xFFu << 12},                        /* Maestro */
};

bool mesh_detect_card(const char *s, size_t n)
{
    trim(&s, &n);
    if (n < 12 || n > 23)
        return false;
    char d[24];
    int nd = 0;
    char sep = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (is_digit(c)) {
            d[nd++] = c;
        } else if ((c == ' ' || c == '-') && i > 0 && is_digit(s[i - 1]) && (!sep || sep == c)) {
            sep = c;
        } else {
            return false;
        }
    }
    if (nd < 12 || nd > 19)
        return false;
    bool known = false;
    for (size_t k = 0; k < MESH_ARRAY_LEN(iin) && !known; k++) {
        int v = 0;
        for (int i = 0; i < iin[k].digits; i++)
            v = v * 10 + (d[i] - '0');
        known = v >= iin[k].lo && v <= iin[k].hi && (iin[k].lens & (1u << nd));
    }
    return known && mesh_luhn_ok(d, (size_t)nd);
}

/* IBAN lengths by country (the SWIFT IBAN registry). */
static const struct {
    char cc[3];
    int len;
} iban_lengths[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24}, {"DE", 22},
    {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FO", 18}, {"FR", 27},
    {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28},
    {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20},
    {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24},
    {"ME", 22}, {"MK", 19}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18}, {"NO", 15}, {"PK", 24},
    {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24}, {"SC", 31},
    {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24},
    {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
};

static char upper(char c)
{
    return is_lower(c) ? (char)(c - 'a' + 'A') : c;
}

int mesh_iban_mod97(const char *s, size_t n)
{
    if (n < 5)
        return -1;
    int r = 0;
    for (size_t k = 0; k < n; k++) {
        char c = upper(s[(k + 4) % n]); /* the first four characters go to the end */
        if (is_digit(c)) {
            r = (r * 10 + (c - '0')) % 97;
        } else if (is_upper(c)) {
            r = (r * 100 + (c - 'A' + 10)) % 97;
        } else {
            return -1;
        }
    }
    return r;
}

bool mesh_detect_iban(const char *s, size_t n)
{
    trim(&s, &n);
    char b[40];
    size_t nb = 0;
    if (n > 48)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ')
            continue;
        if (!is_alnum(s[i]) || nb >= 34)
            return false;
        b[nb++] = upper(s[i]);
    }
    if (nb < 15 || !is_upper(b[0]) || !is_upper(b[1]) || !is_digit(b[2]) || !is_digit(b[3]))
        return false;
    bool known = false;
    for (size_t k = 0; k < MESH_ARRAY_LEN(iban_lengths) && !known; k++)
        known = b[0] == iban_lengths[k].cc[0] && b[1] == iban_lengths[k].cc[1] &&
                (size_t)iban_lengths[k].len == nb;
    return known && mesh_iban_mod97(b, nb) == 1;
}

bool mesh_detect_ipv4(const char *s, size_t n)
{
    trim(&s, &n);
    return is_ipv4_text(s, n);
}

bool mesh_detect_ipv6(const char *s, size_t n)
{
    trim(&s, &n);
    char buf[48];
    if (n < 3 || n >= sizeof buf || memchr(s, ':', n) == NULL)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    /* a zone (fe80::1%eth0) is cut off */
    char *pct = strchr(buf, '%');
    if (pct)
        *pct = '\0';
    struct in6_addr a;
    return inet_pton(AF_INET6, buf, &a) == 1;
}

static int hexval(char c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool mesh_detect_mac(const char *s, size_t n)
{
    trim(&s, &n);
    bool nonzero = false;
    if (n == 17) { /* six pairs, one separator */
        char sep = s[2];
        if (sep != ':' && sep != '-')
            return false;
        for (size_t i = 0; i < 17; i++) {
            if (i % 3 == 2) {
                if (s[i] != sep)
                    return false;
            } else {
                int v = hexval(s[i]);
                if (v < 0)
                    return false;
                nonzero |= v != 0;
            }
        }
        return nonzero;
    }
    if (n == 14) { /* three groups of four: 0123.4567.89ab */
        for (size_t i = 0; i < 14; i++) {
            if (i % 5 == 4) {
                if (s[i] != '.')
                    return false;
            } else {
                int v = hexval(s[i]);
                if (v < 0)
                    return false;
                nonzero |= v != 0;
            }
        }
        return nonzero;
    }
    return false;
}

bool mesh_detect_mrn(const char *s, size_t n)
{
    trim(&s, &n);
    size_t i = 0, letters = 0, digits = 0;
    while (i < n && is_alpha(s[i]) && letters < 5) {
        i++;
        letters++;
    }
    if (letters > 4)
        return false;
    if (i < n && letters > 0 &&
        (s[i] == '-' || s[i] == ' ' || s[i] == ':' || s[i] == '#' || s[i] == '/'))
        i++;
    while (i < n && is_digit(s[i])) {
        i++;
        digits++;
    }
    return i == n && digits >= 5 && digits <= 10;
}

bool mesh_detect_geohash(const char *s, size_t n)
{
    trim(&s, &n);
    static const char alphabet[] = "0123456789bcdefghjkmnpqrstuvwxyz";
    if (n < 5 || n > 12)
        return false;
    bool digit = false, letter = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\0' || strchr(alphabet, s[i]) == NULL)
            return false;
        if (is_digit(s[i]))
            digit = true;
        else
            letter = true;
    }
    return digit && letter;
}

/* A decimal number with a '.' (a coordinate, not an integer) within [-lim, lim]. */
static bool coord(const char *s, size_t n, double lim)
{
    trim(&s, &n);
    if (n == 0 || n > 24 || memchr(s, '.', n) == NULL)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i]) && s[i] != '.' && !(i == 0 && (s[i] == '-' || s[i] == '+')))
            return false;
    double d;
    if (mesh_parse_f64(s, n, &d) != MESH_OK)
        return false;
    return d >= -lim && d <= lim;
}

bool mesh_detect_latlon_text(const char *s, size_t n)
{
    trim(&s, &n);
    if (n < 3 || n > 64)
        return false;
    const char *sep = memchr(s, ',', n);
    if (sep == NULL)
        sep = memchr(s, ' ', n);
    if (sep == NULL)
        return false;
    size_t a = (size_t)(sep - s);
    return coord(s, a, 90) && coord(sep + 1, n - a - 1, 180);
}

bool mesh_detect_value(mesh_info_type_t t, const mesh_detect_value_t *v, mesh_loc_hint_t loc,
                       int now_year)
{
    const char *s = v->s;
    size_t n = v->n;
    if (s == NULL)
        return false;
    switch (t) {
    case MESH_INFO_EMAIL:
        return !v->is_num && mesh_detect_email(s, n);
    case MESH_INFO_PHONE:
        /* a number column lost the leading 0 or + a phone number needs */
        return !v->is_num && mesh_detect_phone(s, n);
    case MESH_INFO_PERSON_NAME:
        return !v->is_num && mesh_detect_person_name(s, n);
    case MESH_INFO_DATE_OF_BIRTH:
        return !v->is_num && mesh_detect_birth_date(s, n, now_year);
    case MESH_INFO_NATIONAL_ID:
        return !v->is_num && mesh_detect_ssn(s, n);
    case MESH_INFO_IBAN:
        return !v->is_num && mesh_detect_iban(s, n);
    case MESH_INFO_CARD_NUMBER:
        return mesh_detect_card(s, n); /* an integer column can hold card numbers */
    case MESH_INFO_IP_ADDRESS:
        return !v->is_num && (mesh_detect_ipv4(s, n) || mesh_detect_ipv6(s, n));
    case MESH_INFO_MAC_ADDRESS:
        return !v->is_num && mesh_detect_mac(s, n);
    case MESH_INFO_MEDICAL_RECORD_NUMBER:
        return mesh_detect_mrn(s, n);
    case MESH_INFO_LOCATION:
        if (v->is_num)
            return (loc == MESH_LOC_LATITUDE && v->d >= -90 && v->d <= 90) ||
                   (loc == MESH_LOC_LONGITUDE && v->d >= -180 && v->d <= 180);
        if (loc == MESH_LOC_LATITUDE)
            return coord(s, n, 90);
        if (loc == MESH_LOC_LONGITUDE)
            return coord(s, n, 180);
        return mesh_detect_latlon_text(s, n) || mesh_detect_geohash(s, n);
    default:
        return false;
    }
}
