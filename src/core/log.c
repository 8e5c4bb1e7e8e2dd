/*
 * log.c - logfmt / JSON log lines with a single lock around the write.
 */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"

int mesh_log_min_level = MESH_LOG_INFO;
static int log_json;
static FILE *log_file;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

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

void mesh_log_write(mesh_log_level_t level, const char *comp, const char *fmt, ...)
{
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
