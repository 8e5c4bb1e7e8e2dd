/*
 * util.c - clocks, time text, strict parsing, names, hex, CRC-32C, randomness, files.
 */
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t mesh_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * MESH_NS_PER_SEC + ts.tv_nsec;
}

int64_t mesh_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * MESH_NS_PER_SEC + ts.tv_nsec;
}

void mesh_thread_name(const char *what, const char *sub)
{
    char name[16]; /* the kernel keeps 15 bytes and the NUL */
    if (sub && *sub)
        snprintf(name, sizeof name, "%s:%s", what, sub);
    else
        snprintf(name, sizeof name, "%s", what);
    prctl(PR_SET_NAME, name, 0, 0, 0);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic, valid for all int). */
static int64_t days_from_date(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void date_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int digits(const char *s, size_t n, size_t at, size_t count, int *out)
{
    if (at + count > n)
        return 0;
    int v = 0;
    for (size_t i = 0; i < count; i++) {
        char c = s[at + i];
        if (c < '0' || c > '9')
            return 0;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return 1;
}

static int days_in_month(int64_t y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

mesh_status_t mesh_time_parse(const char *s, size_t n, int64_t *out_ns)
{
    int year, mon, day, hh = 0, mm = 0, ss = 0;
    int64_t frac = 0;
    size_t i = 0;
    if (!digits(s, n, 0, 4, &year) || n < 10 || s[4] != '-' || !digits(s, n, 5, 2, &mon) ||
        s[7] != '-' || !digits(s, n, 8, 2, &day))
        return MESH_PARSE;
    if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon))
        return MESH_PARSE;
    i = 10;
    int64_t offset_s = 0;
    if (i < n) {
        if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
            return MESH_PARSE;
        i++;
        if (!digits(s, n, i, 2, &hh) || i + 2 >= n || s[i + 2] != ':' ||
            !digits(s, n, i + 3, 2, &mm))
            return MESH_PARSE;
        i += 5;
        if (i < n && s[i] == ':') {
            if (!digits(s, n, i + 1, 2, &ss))
                return MESH_PARSE;
            i += 3;
            if (i < n && (s[i] == '.' || s[i] == ',')) {
                i++;
                size_t nd = 0;
                while (i < n && s[i] >= '0' && s[i] <= '9') {
                    if (nd < 9) {
                        frac = frac * 10 + (s[i] - '0');
                        nd++;
                    } else {
                        return MESH_PARSE; /* more than nanosecond precision */
                    }
                    i++;
                }
                if (nd == 0)
                    return MESH_PARSE;
                for (; nd < 9; nd++)
                    frac *= 10;
            }
        }
        if (hh > 23 || mm > 59 || ss > 60)
            return MESH_PARSE;
        if (ss == 60)
            ss = 59; /* a leap second is clamped; the Unix clock has none */
        if (i < n) {
            if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
                i++;
            } else if (s[i] == '+' || s[i] == '-') {
                int oh, om;
                int sign = s[i] == '-' ? -1 : 1;
                if (!digits(s, n, i + 1, 2, &oh))
                    return MESH_PARSE;
                size_t j = i + 3;
                if (j < n && s[j] == ':')
                    j++;
                if (!digits(s, n, j, 2, &om) || j + 2 != n || oh > 23 || om > 59)
                    return MESH_PARSE;
                offset_s = sign * (oh * 3600 + om * 60);
                i = n;
            } else {
                return MESH_PARSE;
            }
        }
    }
    if (i != n)
        return MESH_PARSE;
    int64_t days = days_from_date(year, mon, day);
    int64_t secs = days * 86400 + hh * 3600 + mm * 60 + ss - offset_s;
    /* int64 nanoseconds span 1677-09-21 .. 2262-04-11 */
    if (secs < -9223372036LL || secs > 9223372035LL)
        return MESH_PARSE;
    *out_ns = secs * MESH_NS_PER_SEC + frac;
    return MESH_OK;
}

size_t mesh_time_format(int64_t ns, char *out)
{
    int64_t secs = ns / MESH_NS_PER_SEC;
    int64_t frac = ns % MESH_NS_PER_SEC;
    if (frac < 0) {
        frac += MESH_NS_PER_SEC;
        secs -= 1;
    }
    int64_t days = secs / 86400;
    int64_t rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days -= 1;
    }
    int64_t y;
    int m, d;
    date_from_days(days, &y, &m, &d);
    int n;
    if (y >= 0 && y <= 9999) { /* by hand: printf is most of a query's time formatting rows */
        int parts[6] = {(int)y, m, d, (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60)};
        static const char seps[6] = "--T::";
        char *o = out;
        for (int i = 0; i < 6; i++) {
            int v = parts[i];
            if (i == 0) {
                *o++ = (char)('0' + v / 1000);
                *o++ = (char)('0' + v / 100 % 10);
            }
            *o++ = (char)('0' + v / 10 % 10);
            *o++ = (char)('0' + v % 10);
            if (i < 5)
                *o++ = seps[i];
        }
        n = (int)(o - out);
    } else {
        n = snprintf(out, MESH_TIME_MAX, "%04lld-%02d-%02dT%02d:%02d:%02d", (long long)y, m, d,
                     (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
    }
    if (frac) {
        char f[9];
        for (int i = 8; i >= 0; i--, frac /= 10)
            f[i] = (char)('0' + frac % 10);
        int fl = 9;
        while (fl > 0 && f[fl - 1] == '0')
            fl--;
        /* keep groups of 3 digits: ms, us or ns */
        fl = (fl + 2) / 3 * 3;
        out[n++] = '.';
        memcpy(out + n, f, (size_t)fl);
        n += fl;
    }
    out[n++] = 'Z';
    out[n] = '\0';
    return (size_t)n;
}

mesh_status_t mesh_duration_parse(const char *s, int64_t *out_ns)
{
    if (s == NULL || *s == '\0')
        return MESH_PARSE;
    int64_t total = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || v < 0 || !isfinite(v))
            return MESH_PARSE;
        p = end;
        double mult;
        if (strncmp(p, "ns", 2) == 0) {
            mult = 1;
            p += 2;
        } else if (strncmp(p, "us", 2) == 0) {
            mult = 1e3;
            p += 2;
        } else if (strncmp(p, "ms", 2) == 0) {
            mult = 1e6;
            p += 2;
        } else if (*p == 's') {
            mult = 1e9;
            p++;
        } else if (*p == 'm') {
            mult = 60e9;
            p++;
        } else if (*p == 'h') {
            mult = 3600e9;
            p++;
        } else if (*p == 'd') {
            mult = 86400e9;
            p++;
        } else if (*p == 'w') {
            mult = 7 * 86400e9;
            p++;
        } else if (*p == '\0' && p != s) {
            mult = 1e9; /* a bare number is seconds */
        } else {
            return MESH_PARSE;
        }
        double part = v * mult;
        if (part > 9.2e18 || (double)total + part > 9.2e18)
            return MESH_PARSE;
        total += (int64_t)llround(part);
    }
    *out_ns = total;
    return MESH_OK;
}

mesh_status_t mesh_parse_u64(const char *p, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20)
        return MESH_PARSE;
    uint64_t v = 0;
    /* 19 digits stay below 10^19 < UINT64_MAX: no overflow to check (a nanosecond timestamp
     * has 19, and every line protocol row holds one) */
    if (n <= 19) {
        for (size_t i = 0; i < n; i++) {
            unsigned d = (unsigned)(unsigned char)p[i] - '0';
            if (d > 9)
                return MESH_PARSE;
            v = v * 10 + d;
        }
        *out = v;
        return MESH_OK;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return MESH_PARSE;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return MESH_PARSE;
        v = v * 10 + d;
    }
    *out = v;
    return MESH_OK;
}

mesh_status_t mesh_parse_i64(const char *p, size_t n, int64_t *out)
{
    int neg = 0;
    if (n > 0 && (p[0] == '-' || p[0] == '+')) {
        neg = p[0] == '-';
        p++;
        n--;
    }
    uint64_t u;
    if (mesh_parse_u64(p, n, &u) != MESH_OK)
        return MESH_PARSE;
    if (neg) {
        if (u > (uint64_t)INT64_MAX + 1)
            return MESH_PARSE;
        *out = (int64_t)(0 - u);
    } else {
        if (u > (uint64_t)INT64_MAX)
            return MESH_PARSE;
        *out = (int64_t)u;
    }
    return MESH_OK;
}

/* Powers of ten that a double holds exactly. */
static const double exact_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/*
 * The common case of sensor data, "-123.4567": at most 15 significant digits and no
 * exponent. The digits form an exact integer m (< 2^53) and the divisor 10^k (k <= 22) is
 * exact, so m / 10^k is the correctly rounded value strtod would give (Clinger's fast path).
 * Returns false for anything else.
 */
static bool fast_decimal(const char *p, size_t n, double *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (p[i] == '-' || p[i] == '+'))
        neg = p[i++] == '-';
    size_t first = i; /* the first digit, to tell "-" and "." from a number */
    uint64_t m = 0;
    int digits = 0, frac = 0; /* digits after the leading zeros; those after the point */
    for (; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)p[i] - '0';
        if (d > 9)
            break;
        if (m == 0 && d == 0)
            continue; /* leading zeros */
        if (++digits > 15)
            return false;
        m = m * 10 + d;
    }
    bool any = i > first;
    if (i < n && p[i] == '.') {
        size_t at = ++i;
        for (; i < n; i++) {
            unsigned d = (unsigned)(unsigned char)p[i] - '0';
            if (d > 9)
                break;
            if (++digits > 15)
                return false;
            m = m * 10 + d;
        }
        frac = (int)(i - at);
        any = any || frac > 0;
    }
    if (i != n || !any || frac > 22)
        return false;
    double v = (double)m / exact_pow10[frac];
    *out = neg ? -v : v;
    return true;
}

mesh_status_t mesh_parse_f64(const char *p, size_t n, double *out)
{
    if (n > 0 && n < 64 && fast_decimal(p, n, out))
        return MESH_OK;
    char tmp[64];
    if (n == 0 || n >= sizeof tmp)
        return MESH_PARSE;
    /* strtod accepts hex, inf, nan and leading space; a data value must be a plain decimal */
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E'))
            return MESH_PARSE;
    }
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (end != tmp + n || !isfinite(v) || (errno == ERANGE && fabs(v) > 1))
        return MESH_PARSE;
    *out = v;
    return MESH_OK;
}

mesh_status_t mesh_parse_bool(const char *p, size_t n, bool *out)
{
    static const char *yes[] = {"true", "yes", "on", "1", "t"};
    static const char *no[] = {"false", "no", "off", "0", "f"};
    for (size_t i = 0; i < MESH_ARRAY_LEN(yes); i++) {
        if (mesh_streqi(p, n, yes[i])) {
            *out = true;
            return MESH_OK;
        }
        if (mesh_streqi(p, n, no[i])) {
            *out = false;
            return MESH_OK;
        }
    }
    return MESH_PARSE;
}

static bool name_ok(const char *s, bool upper, bool hyphen, bool underscore_first)
{
    if (s == NULL)
        return false;
    size_t n = strlen(s);
    if (n == 0 || n > MESH_NAME_MAX)
        return false;
    char c0 = s[0];
    if (!((c0 >= 'a' && c0 <= 'z') || (upper && c0 >= 'A' && c0 <= 'Z') ||
          (underscore_first && c0 == '_')))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
            (upper && c >= 'A' && c <= 'Z') || (hyphen && c == '-'))
            continue;
        return false;
    }
    return true;
}

bool mesh_name_domain_ok(const char *s)
{
    return name_ok(s, false, true, false);
}

bool mesh_name_product_ok(const char *s)
{
    return name_ok(s, false, false, false) && strstr(s, "__") == NULL;
}

bool mesh_name_column_ok(const char *s)
{
    return name_ok(s, true, false, true);
}

void mesh_hex(const uint8_t *p, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[p[i] >> 4];
        out[2 * i + 1] = hx[p[i] & 15];
    }
    out[2 * n] = '\0';
}

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

bool mesh_unhex(const char *s, uint8_t *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int a = hexval(s[2 * i]), b = hexval(s[2 * i + 1]);
        if (a < 0 || b < 0)
            return false;
        out[i] = (uint8_t)(a << 4 | b);
    }
    return true;
}

void mesh_cond_init_mono(pthread_cond_t *c)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(c, &ca);
    pthread_condattr_destroy(&ca);
}

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}

uint64_t mesh_fp64(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h ? h : 1;
}

uint32_t mesh_crc32c_portable(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        uint32_t hi =
            (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^
              crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xFF] ^
              crc_table[2][(hi >> 8) & 0xFF] ^ crc_table[1][(hi >> 16) & 0xFF] ^
              crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
/* SSE4.2's crc32 instruction computes CRC-32C (the same polynomial, reflected, without the
 * inversions); loads are little-endian like the table version's. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const void *data,
                                                               size_t n)
{
    const uint8_t *p = data;
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}

static uint32_t (*crc_impl)(uint32_t, const void *, size_t);
static pthread_once_t crc_pick_once = PTHREAD_ONCE_INIT;

static void crc_pick(void)
{
    __builtin_cpu_init();
    crc_impl = __builtin_cpu_supports("sse4.2") ? crc32c_sse42 : mesh_crc32c_portable;
}

uint32_t mesh_crc32c(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&crc_pick_once, crc_pick);
    return crc_impl(crc, data, n);
}
#else
uint32_t mesh_crc32c(uint32_t crc, const void *data, size_t n)
{
    return mesh_crc32c_portable(crc, data, n);
}
#endif

mesh_status_t mesh_random(void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = getrandom(b, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return MESH_IO;
        }
        b += r;
        n -= (size_t)r;
    }
    return MESH_OK;
}

char *mesh_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

char *mesh_strndup(const char *s, size_t n)
{
    char *r = malloc(n + 1);
    if (r == NULL)
        return NULL;
    memcpy(r, s, n);
    r[n] = '\0';
    return r;
}

bool mesh_streqi(const char *p, size_t n, const char *s)
{
    size_t sl = strlen(s);
    if (sl != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char a = p[i], b = s[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a + 32);
        if (b >= 'A' && b <= 'Z')
            b = (char)(b + 32);
        if (a != b)
            return false;
    }
    return true;
}

mesh_status_t mesh_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == ENOSPC || errno == EDQUOT ? MESH_NOSPACE : MESH_IO;
        }
        c += w;
        n -= (size_t)w;
    }
    return MESH_OK;
}

mesh_status_t mesh_read_file(const char *path, size_t max, char **out, size_t *out_len,
                             mesh_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mesh_err_set(err, errno == ENOENT ? MESH_NOT_FOUND : MESH_IO, "%s: %s", path,
                            strerror(errno));
    struct stat stt;
    if (fstat(fd, &stt) != 0 || (size_t)stt.st_size > max) {
        close(fd);
        return mesh_err_set(err, MESH_TOO_LARGE, "%s: larger than %zu bytes", path, max);
    }
    size_t cap = (size_t)stt.st_size + 1, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        close(fd);
        return mesh_err_set(err, MESH_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (len + 1 >= cap) {
            /* full: more than max bytes read is too large; exactly max may still be the
             * whole file, which only the next read (returning 0) tells */
            if (len > max) {
                free(buf);
                close(fd);
                return mesh_err_set(err, MESH_TOO_LARGE, "%s: larger than %zu bytes", path, max);
            }
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                close(fd);
                return mesh_err_set(err, MESH_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            free(buf);
            close(fd);
            return mesh_err_set(err, MESH_IO, "%s: %s", path, strerror(errno));
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (len > max) {
        free(buf);
        return mesh_err_set(err, MESH_TOO_LARGE, "%s: larger than %zu bytes", path, max);
    }
    buf[len] = '\0';
    *out = buf;
    if (out_len)
        *out_len = len;
    return MESH_OK;
}

mesh_status_t mesh_mkdirs(const char *path, unsigned mode, mesh_err_t *err)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp)
        return mesh_err_set(err, MESH_INVALID, "path too long: %s", path);
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char save = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, (mode_t)mode) != 0 && errno != EEXIST)
                return mesh_err_set(err, MESH_IO, "mkdir %s: %s", tmp, strerror(errno));
            tmp[i] = save;
        }
    }
    /* EEXIST also covers a file of that name: the result must be a directory */
    struct stat st;
    if (stat(path, &st) != 0)
        return mesh_err_set(err, MESH_IO, "mkdir %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return mesh_err_set(err, MESH_IO, "mkdir %s: %s", path, strerror(ENOTDIR));
    return MESH_OK;
}

mesh_status_t mesh_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return MESH_IO;
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? MESH_OK : MESH_IO;
}

void mesh_unlink_db(const char *path)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    char p[4300];
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        unlink(p);
    }
}

void mesh_rm_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            mesh_rm_tree(p);
        else
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(path);
}
