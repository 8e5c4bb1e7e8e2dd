/*
 * progress.c - the progress bar (see progress.h).
 *
 * Rates are averaged since the start (steady for batch uploads, which arrive in steps);
 * the ETA is (total - done) / bytes-per-second, shown once a second of work has passed.
 */
#include "cli/progress.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/util.h"

#define REDRAW_NS (MESH_NS_PER_SEC / 10)

struct mesh_progress {
    FILE *out;
    int64_t total; /* bytes, -1 unknown */
    int64_t t0;    /* monotonic ns at creation */
    int64_t drawn; /* monotonic ns of the last draw */
    bool visible;  /* a bar is on the line */
};

mesh_progress_t *mesh_progress_create(FILE *out, bool enabled, int64_t total_bytes)
{
    if (!enabled || !isatty(fileno(out)))
        return NULL;
    mesh_progress_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->out = out;
    p->total = total_bytes;
    p->t0 = mesh_mono_ns();
    return p;
}

void mesh_progress_destroy(mesh_progress_t *p)
{
    if (p == NULL)
        return;
    mesh_progress_clear(p);
    free(p);
}

void mesh_progress_clear(mesh_progress_t *p)
{
    if (p == NULL || !p->visible)
        return;
    fputs("\r\033[K", p->out);
    fflush(p->out);
    p->visible = false;
}

static void human(double v, const char *unit, char *out, size_t cap)
{
    static const char *const pfx[] = {"", "k", "M", "G", "T"};
    int i = 0;
    while (v >= 1000 && i < 4) {
        v /= 1000;
        i++;
    }
    snprintf(out, cap, i ? "%.1f%s%s" : "%.0f%s%s", v, pfx[i], unit);
}

static void duration(double s, char *out, size_t cap)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, cap, "%ld:%02ld", t / 60, t % 60);
}

static int term_width(FILE *out)
{
    struct winsize ws;
    if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
        return ws.ws_col;
    return 80;
}

void mesh_progress_update(mesh_progress_t *p, int64_t rows, int64_t done)
{
    if (p == NULL)
        return;
    int64_t now = mesh_mono_ns();
    if (p->visible && now - p->drawn < REDRAW_NS)
        return;
    p->drawn = now;
    double secs = (double)(now - p->t0) / 1e9;
    char r[24], rate[24], b[24], tb[24], eta[24] = "  ETA -:--";
    human((double)rows, "", r, sizeof r);
    human(secs > 0 ? (double)rows / secs : 0, " rows/s", rate, sizeof rate);
    mesh_cli_bytes(done, b, sizeof b);
    char tail[160];
    if (rows < 0) {
        /* bytes only: "12.0 MiB / 40.0 MiB  5.1 MiB/s  ETA 0:05" */
        char bps[24];
        mesh_cli_bytes(secs > 0 ? (int64_t)((double)done / secs) : 0, bps, sizeof bps);
        snprintf(rate, sizeof rate, "%s/s", secs >= 0.5 ? bps : "-");
    }
    if (rows < 0 && p->total > 0) {
        mesh_cli_bytes(p->total, tb, sizeof tb);
        if (secs >= 1 && done > 0 && done < p->total) {
            char d[16];
            duration((double)(p->total - done) / ((double)done / secs), d, sizeof d);
            snprintf(eta, sizeof eta, "  ETA %s", d);
        }
        snprintf(tail, sizeof tail, "  %s / %s  %s%s", b, tb, rate, eta);
    } else if (rows < 0) {
        snprintf(tail, sizeof tail, "  %s  %s", b, rate);
    } else if (p->total > 0) {
        mesh_cli_bytes(p->total, tb, sizeof tb);
        if (secs >= 1 && done > 0 && done < p->total) {
            char d[16];
            duration((double)(p->total - done) / ((double)done / secs), d, sizeof d);
            snprintf(eta, sizeof eta, "  ETA %s", d);
        }
        snprintf(tail, sizeof tail, "  %s rows  %s  %s / %s%s", r, rate, b, tb, eta);
    } else {
        snprintf(tail, sizeof tail, "  %s rows  %s  %s", r, rate, b);
    }
    int width = term_width(p->out) - 1;
    int bar = width - (int)strlen(tail) - 7; /* "100% [" + "]" */
    fputs("\r", p->out);
    if (p->total > 0 && bar >= 10) {
        double f = done >= p->total ? 1.0 : (double)done / (double)p->total;
        int fill = (int)(f * bar);
        fprintf(p->out, "%3d%% [", (int)(f * 100));
        for (int i = 0; i < bar; i++)
            fputc(i < fill ? '=' : (i == fill ? '>' : ' '), p->out);
        fputc(']', p->out);
    }
    fputs(tail, p->out);
    fputs("\033[K", p->out);
    fflush(p->out);
    p->visible = true;
}
