/*
 * edge_sink.c - the receiving end of bench/edge_latency.py: a webhook receiver and an MQTT
 * subscriber that note when each action arrives, with as little of their own delay as a
 * process can add (a Python receiver added 1-20 ms of jitter on this machine).
 *
 *     edge_sink --mqtt-port PORT --topic 'bench/cmd/#'
 *
 * Prints "http PORT" once listening on 127.0.0.1, then one line per action received:
 * "webhook DEVICE NS" (when a POST's whole body was read) and "mqtt DEVICE NS" (when
 * libmosquitto handed the message over), NS being CLOCK_MONOTONIC nanoseconds (the clock of
 * Python's time.monotonic_ns() in the probe client), DEVICE the value of the first
 * "device":"..." in the webhook body or the last level of the MQTT topic. Answers every POST
 * 204 and closes the connection. Requests are bounded (64 KiB); it checks no signature (the
 * system tests do). Runs until stdin closes.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQ_MAX 65536

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void note(const char *kind, const char *dev, size_t n, int64_t t)
{
    pthread_mutex_lock(&out_lock);
    printf("%s %.*s %lld\n", kind, (int)n, dev, (long long)t);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m;
    (void)ud;
    int64_t t = mono_ns();
    const char *last = strrchr(msg->topic, '/');
    last = last ? last + 1 : msg->topic;
    note("mqtt", last, strlen(last), t);
}

/* Reads one request (headers, then Content-Length bytes of body) into buf; returns its
 * length, or -1. */
static ssize_t read_request(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    long want = -1;
    for (;;) {
        if (n == cap)
            return -1;
        ssize_t r = read(fd, buf + n, cap - n);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        char *eoh = memmem(buf, n, "\r\n\r\n", 4);
        if (eoh == NULL)
            continue;
        if (want < 0) {
            char *cl = memmem(buf, (size_t)(eoh - buf), "Content-Length:", 15);
            if (cl == NULL)
                cl = memmem(buf, (size_t)(eoh - buf), "content-length:", 15);
            want = cl ? strtol(cl + 15, NULL, 10) : 0;
            if (want < 0 || want > (long)cap)
                return -1;
        }
        size_t have = n - (size_t)(eoh + 4 - buf);
        if ((long)have >= want)
            return (ssize_t)n;
    }
}

int main(int argc, char **argv)
{
    int mport = 0;
    const char *topic = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mqtt-port"))
            mport = (int)strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--topic"))
            topic = argv[i + 1];
    }
    if (mport <= 0 || mport > 65535 || topic == NULL) {
        fputs("usage: edge_sink --mqtt-port PORT --topic FILTER\n", stderr);
        return 2;
    }
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new("bench-edge-sink", true, NULL);
    if (m == NULL || mosquitto_connect(m, "127.0.0.1", mport, 30) != MOSQ_ERR_SUCCESS ||
        mosquitto_subscribe(m, NULL, topic, 1) != MOSQ_ERR_SUCCESS) {
        fputs("edge_sink: cannot connect to the broker\n", stderr);
        return 1;
    }
    mosquitto_message_callback_set(m, on_message);
    if (mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS)
        return 1;

    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 64) != 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &sl) != 0) {
        perror("edge_sink: listen");
        return 1;
    }
    note("http", "", 0, ntohs(sa.sin_port));

    static char buf[REQ_MAX + 1];
    struct pollfd fds[2] = {{.fd = ls, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[1].revents) {
            char c;
            if (read(0, &c, 1) <= 0)
                break; /* stdin closed: the benchmark is done */
        }
        if (!(fds[0].revents & POLLIN))
            continue;
        int fd = accept(ls, NULL, NULL);
        if (fd < 0)
            continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ssize_t n = read_request(fd, buf, REQ_MAX);
        int64_t t = mono_ns();
        if (n > 0) {
            buf[n] = 0;
            const char *d = strstr(buf, "\"device\":\"");
            if (d) {
                d += 10;
                const char *e = strchr(d, '"');
                if (e)
                    note("webhook", d, (size_t)(e - d), t);
            }
            static const char ok[] = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
            if (write(fd, ok, sizeof ok - 1) < 0)
                perror("edge_sink: write");
        }
        close(fd);
    }
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, true);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    return 0;
}
