/*
 * log.c - logfmt / JSON log lines with a single lock around the write.
 */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/buf.h"

int mesh_log_min_level = MESH_LOG_INFO;
static int log_json;
static FILE *log_file;
static FILE *log_owned; /* the file mesh_log_open opened (reopened on SIGHUP) */
static char log_path[4096];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

#define MAX_COMP_LEVELS 32
typedef struct comp_level {
    char comp[24];
    int level;
} comp_level_t;
static comp_level_t comp_levels[MAX_COMP_LEVELS];
static int ncomp_levels; /* set once at start, before any thread logs */
static int default_level = MESH_LOG_INFO;

static const char *level_names[] = {"debug", "info", "warn", "error"};

int mesh_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void mesh_log_set_json(int json)
{
    log_json = json;
}

void mesh_log_set_file(FILE *f)
{
    log_file = f;
}

int mesh_log_set_levels(int def, const char *spec, char *why, size_t cap)
{
    int n = 0, least = def;
    comp_level_t v[MAX_COMP_LEVELS];
    for (const char *p = spec ? spec : ""; *p;) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        char comp[32], lv[16];
        size_t cl = eq ? (size_t)(eq - p) : 0, ll = eq ? len - cl - 1 : 0;
        if (eq == NULL || cl == 0 || cl >= sizeof v[0].comp || ll == 0 || ll >= sizeof lv ||
            n == MAX_COMP_LEVELS) {
            snprintf(why, cap, "'%.*s' is not comp=level (at most %d)", (int)(len > 40 ? 40 : len),
                     p, MAX_COMP_LEVELS);
            return -1;
        }
        memcpy(comp, p, cl);
        comp[cl] = '\0';
        memcpy(lv, eq + 1, ll);
        lv[ll] = '\0';
        int level = mesh_log_level_parse(lv);
        if (level < 0) {
            snprintf(why, cap, "'%s' is not a level (debug, info, warn, error)", lv);
            return -1;
        }
        snprintf(v[n].comp, sizeof v[n].comp, "%s", comp);
        v[n++].level = level;
        if (level < least)
            least = level;
        p += len;
        if (*p == ',')
            p++;
    }
    memcpy(comp_levels, v, sizeof v);
    ncomp_levels = n;
    default_level = def;
    mesh_log_min_level = least;
    return 0;
}

static int level_of(const char *comp)
{
    for (int i = 0; i < ncomp_levels; i++)
        if (strcmp(comp_levels[i].comp, comp) == 0)
            return comp_levels[i].level;
    return default_level;
}

int mesh_log_open(const char *path)
{
    FILE *f = fopen(path, "ae");
    if (f == NULL)
        return -1;
    chmod(path, 0640);
    pthread_mutex_lock(&log_lock);
    if (log_owned)
        fclose(log_owned);
    log_owned = log_file = f;
    snprintf(log_path, sizeof log_path, "%s", path);
    pthread_mutex_unlock(&log_lock);
    return 0;
}

int mesh_log_reopen(void)
{
    if (log_path[0] == '\0')
        return 0;
    FILE *f = fopen(log_path, "ae");
    if (f == NULL)
        return -1; /* keep writing to the one open */
    chmod(log_path, 0640);
    pthread_mutex_lock(&log_lock);
    if (log_owned)
        fclose(log_owned);
    log_owned = log_file = f;
    pthread_mutex_unlock(&log_lock);
    return 0;
}

void mesh_log_write(mesh_log_level_t level, const char *comp, const char *fmt, ...)
{
    if (ncomp_levels > 0 && (int)level < level_of(comp))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

    char line[1400];
    mesh_buf_t b = {.data = line, .len = 0, .cap = sizeof line, .max = sizeof line - 2};
    /* A stack buffer: mesh_buf never reallocs while len + n + 1 <= cap, and max keeps it so. */
    line[0] = '\0';
    const char *lv = level_names[(unsigned)level < 4 ? level : 3];
    if (log_json) {
        mesh_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"comp\":", when, lv);
        mesh_buf_add_json_str(&b, comp, strlen(comp));
        mesh_buf_adds(&b, ",\"msg\":");
        mesh_buf_add_json_str(&b, msg, strlen(msg));
        mesh_buf_adds(&b, "}");
    } else {
        mesh_buf_printf(&b, "ts=%s level=%s comp=%s msg=", when, lv, comp);
        mesh_buf_add_json_str(&b, msg, strlen(msg));
    }
    pthread_mutex_lock(&log_lock);
    FILE *f = log_file ? log_file : stderr;
    fwrite(line, 1, b.len, f);
    fputc('\n', f);
    fflush(f);
    pthread_mutex_unlock(&log_lock);
}
