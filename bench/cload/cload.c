/* cload: roost's benchmark load generator in C, light enough that the server under test is
 * the bottleneck. One thread, one epoll loop, non-blocking sockets to 127.0.0.1.
 *
 *   cload echo       --port P --pid PID [--connections 64 --size 32 --seconds 4 --path /echo]
 *   cload fanout     --port P --pid PID [--subscribers 1000 --window 16 --size 32 --seconds 4]
 *   cload handshakes --port P --pid PID [--connections 10000 --batch 250 --hold 2]
 *
 * echo:       each connection sends a text message of --size bytes, and the next when the echo
 *             of the last has arrived.
 * fanout:     --subscribers connections and one publisher on /fanout; the publisher keeps
 *             --window messages in flight (it sends the next when a copy of its own comes back),
 *             each starting with its send time; every subscriber counts what it receives.
 * handshakes: --connections WebSocket handshakes to /echo, --batch in flight at a time (0: all
 *             at once, a reconnect storm: the connects are issued as fast as the client can,
 *             each request sent as soon as its connection is up); each 101 is checked (status and
 *             Sec-WebSocket-Accept); the connections are then held --hold seconds and the
 *             server's resident memory read. Connections still not open after --timeout
 *             seconds (120) are left out of the figures, which say how many opened.
 *
 * CLOAD_DEBUG=1 in the environment prints why each connection that failed was retried.
 *
 * Every frame the client sends is masked with a fresh key (RFC 6455 section 5.3). Frames from
 * the server are parsed as a stream (their payload is not kept, except the first bytes a
 * latency needs and control frames); a ping is answered with a pong. Frames queued while one
 * read is handled (the publisher's next messages) go out in one write. Server CPU is read from
 * /proc/PID/task/N/schedstat (nanoseconds, every thread, plus the server's child processes)
 * over exactly the measured window, client CPU from getrusage; *server_kernel_share* is the
 * part of the server's CPU spent in the kernel (/proc/PID/stat). Prints one JSON object, with
 * the keys of bench/loadgen.py.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ----------------------------------------------------------------------- */

static void die(const char *what) {
    perror(what);
    exit(2);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state;

static uint64_t rng(void) { /* xorshift64*: masks and keys, not secrets */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static double client_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds of every thread of process `pid`, from the scheduler's nanosecond counters. */
static double proc_cpu(long pid) {
    char path[320], buf[128];
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *dir = opendir(path);
    if (!dir) return 0;
    double total = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/%ld/task/%s/schedstat", pid, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(buf, sizeof buf, f)) total += strtoull(buf, NULL, 10) / 1e9;
        fclose(f);
    }
    closedir(dir);
    return total;
}

/* CPU seconds of the server and of its child processes (the workers of --processes N). */
static double server_cpu(long pid) {
    double total = proc_cpu(pid);
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", pid, pid);
    FILE *f = fopen(path, "r");
    if (!f) return total;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = buf, *end;
    for (long child = strtol(p, &end, 10); end != p; child = strtol(p, &end, 10)) {
        total += proc_cpu(child);
        p = end;
    }
    return total;
}

/* User and system CPU seconds of process `pid` and its children, from /proc (10 ms ticks). */
static void proc_times(long pid, double *user, double *sys) {
    char path[64], buf[1024];
    long pids[256];
    int n = 0;
    pids[n++] = pid;
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", pid, pid);
    FILE *f = fopen(path, "r");
    if (f) {
        while (n < 256 && fscanf(f, "%ld", &pids[n]) == 1) n++;
        fclose(f);
    }
    *user = *sys = 0;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/proc/%ld/stat", pids[i]);
        f = fopen(path, "r");
        if (!f) continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        char *p = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0;
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                        &st) == 2) {
            *user += (double)ut / sysconf(_SC_CLK_TCK);
            *sys += (double)st / sysconf(_SC_CLK_TCK);
        }
    }
}

static long server_rss(long pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    long kb = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb * 1024;
}

/* ---- SHA-1 (FIPS 180-4) and base64, for Sec-WebSocket-Accept ----------------------------- */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t total = ((len + 8) / 64 + 1) * 64;
    uint8_t block[256];
    if (total > sizeof block) abort(); /* only short keys are hashed here */
    memset(block, 0, total);
    memcpy(block, msg, len);
    block[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) block[total - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)block[off + 4 * i] << 24 | (uint32_t)block[off + 4 * i + 1] << 16 |
                   (uint32_t)block[off + 4 * i + 2] << 8 | block[off + 4 * i + 3];
        for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
            else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
            else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
            else f = b ^ c ^ d, k = 0xCA62C1D6;
            uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d, d = c, c = rol(b, 30), b = a, a = t;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
    }
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(h[i] >> (24 - 8 * j));
}

static void base64(const uint8_t *in, size_t n, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = tab[v >> 18], *out++ = tab[(v >> 12) & 63], *out++ = tab[(v >> 6) & 63],
        *out++ = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *out++ = tab[v >> 18], *out++ = tab[(v >> 12) & 63], *out++ = '=', *out++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *out++ = tab[v >> 18], *out++ = tab[(v >> 12) & 63], *out++ = tab[(v >> 6) & 63],
        *out++ = '=';
    }
    *out = 0;
}

/* ---- connections ------------------------------------------------------------------------- */

enum { CONNECTING, HANDSHAKING, OPEN, DEAD };
enum { ECHO, SUBSCRIBER, PUBLISHER, HOLD };

typedef struct conn {
    int fd, state, role, sample;
    char accept[32];            /* the Sec-WebSocket-Accept the server must answer */
    char *head;                 /* the handshake response so far */
    int headlen;
    uint8_t hdr[14];            /* a frame header split across reads */
    int hlen;
    uint64_t remaining;         /* payload bytes of the current frame still to come */
    int opcode, fin, in_payload;
    uint8_t cap[128];           /* the first payload bytes (control frames, fan-out stamps) */
    int caplen, capmax;
    uint8_t *out;               /* bytes the socket did not take yet */
    size_t outlen, outcap;
    uint64_t sent_ns;           /* echo: when the last message went; handshakes: connect */
    int retries;
} conn;

typedef struct config {
    const char *mode, *path;
    int port, connections, size, subscribers, window, batch;
    long pid;
    double seconds, warmup, hold, timeout;
} config;

static config cfg = {.connections = -1, .size = 32, .subscribers = 1000,
                     .window = 16, .batch = 250, .seconds = 4, .warmup = 1, .hold = 2,
                     .timeout = 120};
static int ep;
static struct sockaddr_in addr;
static uint8_t payload[1 << 20]; /* what the clients send, unmasked */
static size_t payload_len;
/* Frames queued for one connection while a read is handled, written together after it (as a
 * client that sends several messages in a row would): one segment, not one per frame. */
static uint8_t stage[(1 << 21) + 64];
static size_t stage_len;
static struct conn *stage_conn;
static uint8_t rbuf[1 << 18];

static conn *conns;
static int nconns;

/* results */
static int measuring;
static uint64_t count;      /* messages (echo) or deliveries (fan-out) while measuring */
static uint64_t echo_seq;
static double *lat;         /* latency samples, µs */
static size_t nlat, caplat;
static conn *publisher;

static void sample_latency(double us) {
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 1 << 16;
        lat = realloc(lat, caplat * sizeof *lat);
        if (!lat) die("realloc");
    }
    lat[nlat++] = us;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(double q) {
    if (!nlat) return NAN;
    size_t i = (size_t)(q * nlat);
    return lat[i < nlat ? i : nlat - 1];
}

static void set_events(conn *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
}

static void conn_close(conn *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = DEAD;
    free(c->head);
    c->head = NULL;
    free(c->out);
    c->out = NULL;
    c->outlen = c->outcap = 0;
}

/* Write, keeping what the socket does not take until it can. */
static void conn_write(conn *c, const uint8_t *data, size_t len) {
    if (c->state == DEAD) return;
    if (c->outlen == 0) {
        ssize_t n = write(c->fd, data, len);
        if (n == (ssize_t)len) return;
        if (n < 0) {
            if (errno != EAGAIN) {
                fprintf(stderr, "cload: write: %s\n", strerror(errno));
                exit(1);
            }
            n = 0;
        }
        data += n, len -= (size_t)n;
        set_events(c, EPOLLIN | EPOLLOUT);
    }
    if (c->outlen + len > c->outcap) {
        c->outcap = (c->outlen + len) * 2;
        c->out = realloc(c->out, c->outcap);
        if (!c->out) die("realloc");
    }
    memcpy(c->out + c->outlen, data, len);
    c->outlen += len;
}

static void conn_flush(conn *c) {
    ssize_t n = write(c->fd, c->out, c->outlen);
    if (n < 0) {
        if (errno == EAGAIN) return;
        fprintf(stderr, "cload: write: %s\n", strerror(errno));
        exit(1);
    }
    memmove(c->out, c->out + n, c->outlen - (size_t)n);
    c->outlen -= (size_t)n;
    if (c->outlen == 0) set_events(c, EPOLLIN);
}

/* A masked frame (section 5.3: a fresh 4-byte key for every frame) of `len` bytes. */
static size_t masked_frame(int opcode, const uint8_t *data, size_t len, uint8_t *out) {
    size_t h = 0;
    out[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[h++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        out[h++] = 0x80 | 126, out[h++] = (uint8_t)(len >> 8), out[h++] = (uint8_t)len;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint32_t key = (uint32_t)rng();
    memcpy(out + h, &key, 4);
    uint8_t m[4];
    memcpy(m, &key, 4);
    h += 4;
    uint64_t m8 = (uint64_t)key << 32 | key;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, data + i, 8);
        v ^= m8;
        memcpy(out + h + i, &v, 8);
    }
    for (; i < len; i++) out[h + i] = data[i] ^ m[i & 3];
    return h + len;
}

static void flush_stage(void) {
    if (stage_len) conn_write(stage_conn, stage, stage_len);
    stage_len = 0;
    stage_conn = NULL;
}

static void queue_frame(conn *c, int opcode, const uint8_t *data, size_t len) {
    if (stage_len && (stage_conn != c || stage_len + len + 14 > sizeof stage)) flush_stage();
    stage_conn = c;
    stage_len += masked_frame(opcode, data, len, stage + stage_len);
}

static void send_message(conn *c, const uint8_t *data, size_t len) {
    queue_frame(c, 0x1, data, len);
}

static void send_stamped(conn *c) { /* fan-out: the send time, then the body */
    char stamp[32];
    snprintf(stamp, sizeof stamp, "%020llu", (unsigned long long)now_ns());
    memcpy(payload, stamp, 20);
    send_message(c, payload, payload_len);
}

/* A whole message arrived on `c`. */
static void message_done(conn *c) {
    switch (c->role) {
    case ECHO:
        if (measuring) {
            count++;
            if (++echo_seq % 7 == 0) sample_latency((now_ns() - c->sent_ns) / 1e3);
        }
        c->sent_ns = now_ns();
        send_message(c, payload, payload_len);
        break;
    case SUBSCRIBER:
        if (measuring) {
            count++;
            if (c->sample && c->caplen >= 20) {
                uint64_t stamp = 0;
                for (int i = 0; i < 20; i++) stamp = stamp * 10 + (uint64_t)(c->cap[i] - '0');
                sample_latency((now_ns() - stamp) / 1e3);
            }
        }
        break;
    case PUBLISHER:
        send_stamped(c);
        break;
    }
}

static void frame_done(conn *c) {
    if (c->opcode == 0x9) { /* ping: answer with a pong carrying its payload */
        queue_frame(c, 0xA, c->cap, (size_t)c->caplen);
    } else if (c->opcode == 0x8) {
        int code = c->caplen >= 2 ? c->cap[0] << 8 | c->cap[1] : 1005;
        fprintf(stderr, "cload: the server closed a connection: %d %.*s\n", code,
                c->caplen > 2 ? c->caplen - 2 : 0, (const char *)c->cap + 2);
        exit(1);
    } else if (c->opcode < 0x8 && c->fin) {
        message_done(c);
    }
}

static void header_done(conn *c, const uint8_t *h) {
    if (h[1] & 0x80) {
        fprintf(stderr, "cload: the server sent a masked frame\n");
        exit(1);
    }
    c->fin = h[0] & 0x80;
    int op = h[0] & 0x0F;
    if (op) c->opcode = op; /* a continuation keeps the opcode of its message */
    uint64_t len = h[1] & 0x7F;
    if (len == 126) len = (uint64_t)h[2] << 8 | h[3];
    else if (len == 127) {
        len = 0;
        for (int i = 2; i < 10; i++) len = len << 8 | h[i];
    }
    c->remaining = len;
    c->caplen = 0;
    c->capmax = op >= 0x8 ? 125 : (c->role == SUBSCRIBER && c->sample ? 20 : 0);
    if (len == 0) frame_done(c);
    else c->in_payload = 1;
}

static int header_size(const uint8_t *h) {
    int n = 2 + ((h[1] & 0x7F) == 126 ? 2 : (h[1] & 0x7F) == 127 ? 8 : 0);
    return n + ((h[1] & 0x80) ? 4 : 0);
}

/* Frames from the server, as a stream. */
static void frames_received(conn *c, const uint8_t *p, size_t n) {
    const uint8_t *end = p + n;
    while (p < end && c->state == OPEN) {
        if (c->in_payload) {
            size_t avail = (size_t)(end - p);
            size_t take = avail < c->remaining ? avail : (size_t)c->remaining;
            if (c->caplen < c->capmax) {
                size_t k = (size_t)(c->capmax - c->caplen);
                if (k > take) k = take;
                memcpy(c->cap + c->caplen, p, k);
                c->caplen += (int)k;
            }
            p += take;
            c->remaining -= take;
            if (c->remaining == 0) {
                c->in_payload = 0;
                frame_done(c);
            }
        } else if (c->hlen == 0 && end - p >= 2 && end - p >= header_size(p)) {
            int hs = header_size(p);
            header_done(c, p);
            p += hs;
        } else { /* a header split across reads */
            c->hdr[c->hlen++] = *p++;
            if (c->hlen >= 2 && c->hlen == header_size(c->hdr)) {
                c->hlen = 0;
                header_done(c, c->hdr);
            }
        }
    }
}

/* ---- handshake --------------------------------------------------------------------------- */

static int opened, failed, inflight, launched;
static double *handshake_us;
static int nhandshake;

static void start_connect(conn *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->state = CONNECTING;
    c->hlen = 0, c->in_payload = 0, c->headlen = 0;
    c->sent_ns = now_ns();
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS)
        die("connect");
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    inflight++;
}

static void send_request(conn *c) {
    uint8_t raw[16];
    char key[32], request[512];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = rng();
        memcpy(raw + i, &r, 8);
    }
    base64(raw, 16, key);
    char keyed[128];
    int kl = snprintf(keyed, sizeof keyed, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    uint8_t digest[20];
    sha1((uint8_t *)keyed, (size_t)kl, digest);
    base64(digest, 20, c->accept);
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     cfg.path, cfg.port, key);
    if (write(c->fd, request, (size_t)n) != n) die("write (handshake)");
    c->state = HANDSHAKING;
    set_events(c, EPOLLIN);
}

/* A connection failed before it was open: a reconnecting client tries again. */
static void handshake_failed(conn *c, const char *why) {
    if (getenv("CLOAD_DEBUG")) fprintf(stderr, "retry: %s\n", why);
    failed++;
    inflight--;
    if (epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL) < 0) die("epoll_ctl");
    conn_close(c);
    if (++c->retries > 20) {
        fprintf(stderr, "cload: a connection failed 20 times (last: %s)\n", why);
        exit(1);
    }
    start_connect(c);
}

/* Whether the response head `head` is a valid 101 for `c`; its end (after the blank line)
 * in *used. -1: invalid, 0: incomplete, 1: valid. */
static int check_response(conn *c, const char *head, int len, int *used) {
    const char *end = memmem(head, (size_t)len, "\r\n\r\n", 4);
    if (!end) return len > 8192 ? -1 : 0;
    *used = (int)(end - head) + 4;
    if (len < 12 || memcmp(head, "HTTP/1.1 101", 12) != 0) return -1;
    const char *line = memchr(head, '\n', (size_t)(end - head));
    while (line && line < end) {
        line++;
        static const char name[] = "sec-websocket-accept:";
        if (end - line > (ptrdiff_t)sizeof name && strncasecmp(line, name, sizeof name - 1) == 0) {
            const char *v = line + sizeof name - 1;
            while (*v == ' ' || *v == '\t') v++;
            size_t al = strlen(c->accept);
            return strncmp(v, c->accept, al) == 0 && (v[al] == '\r' || v[al] == ' ') ? 1 : -1;
        }
        line = memchr(line, '\n', (size_t)(end - line));
    }
    return -1;
}

static void on_opened(conn *c);

static void handshake_received(conn *c, const uint8_t *data, size_t n) {
    const char *head = (const char *)data;
    int len = (int)n;
    if (c->headlen) { /* a head split across reads */
        c->head = realloc(c->head, (size_t)c->headlen + n);
        if (!c->head) die("realloc");
        memcpy(c->head + c->headlen, data, n);
        c->headlen += (int)n;
        head = c->head, len = c->headlen;
    }
    int used = 0, ok = check_response(c, head, len, &used);
    if (ok < 0) {
        fprintf(stderr, "cload: not a valid 101 response: %.80s\n", head);
        exit(1);
    }
    if (ok == 0) {
        if (!c->headlen) {
            c->head = malloc(n);
            if (!c->head) die("malloc");
            memcpy(c->head, data, n);
            c->headlen = (int)n;
        }
        return;
    }
    c->state = OPEN;
    inflight--;
    opened++;
    on_opened(c); /* starts connections, reads nothing: `head` stays as it is */
    if (len > used) frames_received(c, (const uint8_t *)head + used, (size_t)(len - used));
    free(c->head);
    c->head = NULL;
    c->headlen = 0;
}

static void on_event(conn *c, uint32_t events) {
    if (c->state == CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            handshake_failed(c, strerror(err));
            return;
        }
        send_request(c);
        return;
    }
    if (events & EPOLLOUT && c->outlen) conn_flush(c);
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    ssize_t n = read(c->fd, rbuf, sizeof rbuf);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) return;
        if (c->state == HANDSHAKING) {
            handshake_failed(c, n < 0 ? strerror(errno) : "closed");
            return;
        }
        fprintf(stderr, "cload: the server dropped a connection (%s)\n",
                n < 0 ? strerror(errno) : "EOF");
        exit(1);
    }
    if (c->state == HANDSHAKING) handshake_received(c, rbuf, (size_t)n);
    else frames_received(c, rbuf, (size_t)n);
    flush_stage();
}

/* Run the loop until `until` (monotonic seconds) or until `*done` becomes true. */
/* A storm (--batch 0): connections still to start, STORM_STEP per turn of the loop, so that
 * each client sends its request as soon as its connection is up, as independent clients do. */
static int storming;
enum { STORM_STEP = 32 };

static void run_loop(double until, const int *done) {
    struct epoll_event events[512];
    while (!(done && *done)) {
        double left = until - now_s();
        if (left <= 0) break;
        int timeout = (int)(left * 1000) + 1;
        if (storming) {
            for (int k = 0; k < STORM_STEP && launched < nconns; k++)
                start_connect(&conns[launched++]);
            storming = launched < nconns;
            if (storming) timeout = 0;
        }
        int n = epoll_wait(ep, events, 512, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) on_event(events[i].data.ptr, events[i].events);
    }
}

/* ---- modes ------------------------------------------------------------------------------- */

static int all_open;

static void on_opened(conn *c) {
    if (c->role == HOLD) {
        handshake_us[nhandshake++] = (now_ns() - c->sent_ns) / 1e3;
        if (opened == nconns) all_open = 1;
        while (cfg.batch && launched < nconns && inflight < cfg.batch)
            start_connect(&conns[launched++]);
    } else if (opened == nconns) {
        all_open = 1;
    }
}

static void open_all(int role_of_last) {
    for (int i = 0; i < nconns; i++) start_connect(&conns[i]);
    launched = nconns;
    run_loop(now_s() + cfg.timeout, &all_open);
    if (!all_open) {
        fprintf(stderr, "cload: only %d of %d connections opened\n", opened, nconns);
        exit(1);
    }
    (void)role_of_last;
}

typedef struct window {
    double cpu, t, client, user, sys;
} window;

static window mark(void) {
    window w = {server_cpu(cfg.pid), now_s(), client_cpu(), 0, 0};
    proc_times(cfg.pid, &w.user, &w.sys);
    return w;
}

/* The share of the server's CPU time spent in the kernel over the window from `a` to `b`. */
static double kernel_share(window a, window b) {
    double total = (b.user - a.user) + (b.sys - a.sys);
    return total > 0 ? (b.sys - a.sys) / total : NAN;
}

static void echo_mode(void) {
    memset(payload, 'x', (size_t)cfg.size);
    payload_len = (size_t)cfg.size;
    nconns = cfg.connections < 0 ? 64 : cfg.connections;
    conns = calloc((size_t)nconns, sizeof *conns);
    for (int i = 0; i < nconns; i++) conns[i].role = ECHO;
    open_all(ECHO);
    for (int i = 0; i < nconns; i++) {
        conns[i].sent_ns = now_ns();
        send_message(&conns[i], payload, payload_len);
        flush_stage();
    }
    run_loop(now_s() + cfg.warmup, NULL);
    measuring = 1;
    window a = mark();
    run_loop(a.t + cfg.seconds, NULL);
    measuring = 0;
    window b = mark();
    double elapsed = b.t - a.t, cpu = b.cpu - a.cpu;
    qsort(lat, nlat, sizeof *lat, cmp_double);
    printf("{\"negotiated\": \"none\", \"connections\": %d, \"messages_per_s\": %.1f, "
           "\"messages_per_server_cpu_s\": %.1f, \"server_cpu_share\": %.3f, "
           "\"client_cpu_share\": %.3f, \"server_kernel_share\": %.3f, \"p50_us\": %.1f, "
           "\"p99_us\": %.1f}\n",
           nconns, count / elapsed, count / (cpu > 1e-9 ? cpu : 1e-9), cpu / elapsed,
           (b.client - a.client) / elapsed, kernel_share(a, b), percentile(0.5),
           percentile(0.99));
}

static void fanout_mode(void) {
    if (cfg.size < 20) {
        fprintf(stderr, "cload: fanout needs --size 20 or more (the send time)\n");
        exit(2);
    }
    memset(payload, 'x', (size_t)cfg.size);
    payload_len = (size_t)cfg.size;
    nconns = cfg.subscribers + 1;
    conns = calloc((size_t)nconns, sizeof *conns);
    for (int i = 0; i < cfg.subscribers; i++) {
        conns[i].role = SUBSCRIBER;
        conns[i].sample = i % 10 == 0;
    }
    publisher = &conns[cfg.subscribers];
    publisher->role = PUBLISHER;
    open_all(PUBLISHER);
    for (int i = 0; i < cfg.window; i++) send_stamped(publisher);
    flush_stage();
    run_loop(now_s() + cfg.warmup, NULL);
    measuring = 1;
    window a = mark();
    run_loop(a.t + cfg.seconds, NULL);
    measuring = 0;
    window b = mark();
    double elapsed = b.t - a.t, cpu = b.cpu - a.cpu;
    qsort(lat, nlat, sizeof *lat, cmp_double);
    printf("{\"negotiated\": \"none\", \"connections\": %d, \"deliveries_per_s\": %.1f, "
           "\"deliveries_per_server_cpu_s\": %.1f, \"server_cpu_share\": %.3f, "
           "\"client_cpu_share\": %.3f, \"server_kernel_share\": %.3f, \"p50_us\": %.1f, "
           "\"p99_us\": %.1f}\n",
           nconns, count / elapsed, count / (cpu > 1e-9 ? cpu : 1e-9), cpu / elapsed,
           (b.client - a.client) / elapsed, kernel_share(a, b), percentile(0.5),
           percentile(0.99));
}

static void handshakes_mode(void) {
    nconns = cfg.connections < 0 ? 10000 : cfg.connections;
    conns = calloc((size_t)nconns, sizeof *conns);
    handshake_us = calloc((size_t)nconns, sizeof *handshake_us);
    for (int i = 0; i < nconns; i++) conns[i].role = HOLD;
    usleep(500000);
    long rss0 = server_rss(cfg.pid);
    window a = mark();
    storming = cfg.batch == 0;
    while (cfg.batch && launched < nconns && inflight < cfg.batch)
        start_connect(&conns[launched++]);
    run_loop(a.t + cfg.timeout, &all_open);
    window b = mark();
    if (!all_open)
        fprintf(stderr, "cload: only %d of %d connections opened in %.0f s\n", opened, nconns,
                cfg.timeout);
    run_loop(now_s() + cfg.hold, NULL); /* let the server settle, answering any ping */
    long rss1 = server_rss(cfg.pid);
    double elapsed = b.t - a.t, cpu = b.cpu - a.cpu;
    lat = handshake_us, nlat = (size_t)nhandshake;
    qsort(lat, nlat, sizeof *lat, cmp_double);
    printf("{\"connections\": %d, \"opened\": %d, \"batch\": %d, \"seconds\": %.3f, "
           "\"handshakes_per_s\": %.1f, \"handshakes_per_server_cpu_s\": %.1f, "
           "\"server_cpu_share\": %.3f, \"client_cpu_share\": %.3f, "
           "\"server_kernel_share\": %.3f, \"rss_per_connection_kb\": %.2f, \"retries\": %d, "
           "\"p50_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f}\n",
           nconns, opened, cfg.batch, elapsed, opened / elapsed,
           opened / (cpu > 1e-9 ? cpu : 1e-9), cpu / elapsed, (b.client - a.client) / elapsed,
           kernel_share(a, b),
           opened ? (rss1 - rss0) / (double)opened / 1024 : NAN, failed, percentile(0.5),
           percentile(0.99), nlat ? lat[nlat - 1] : NAN);
}

static void usage(void) {
    fprintf(stderr, "usage: cload echo|fanout|handshakes --port P --pid PID [--connections N] "
                    "[--size B] [--subscribers N] [--window N] [--batch N] [--seconds S] "
                    "[--warmup S] [--hold S] [--timeout S] [--path P (/echo; fanout: /fanout)]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    cfg.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        if (i + 1 >= argc) usage();
        const char *k = argv[i], *v = argv[++i];
        if (!strcmp(k, "--port")) cfg.port = atoi(v);
        else if (!strcmp(k, "--pid")) cfg.pid = atol(v);
        else if (!strcmp(k, "--connections")) cfg.connections = atoi(v);
        else if (!strcmp(k, "--size")) cfg.size = atoi(v);
        else if (!strcmp(k, "--subscribers")) cfg.subscribers = atoi(v);
        else if (!strcmp(k, "--window")) cfg.window = atoi(v);
        else if (!strcmp(k, "--batch")) cfg.batch = atoi(v);
        else if (!strcmp(k, "--seconds")) cfg.seconds = atof(v);
        else if (!strcmp(k, "--warmup")) cfg.warmup = atof(v);
        else if (!strcmp(k, "--hold")) cfg.hold = atof(v);
        else if (!strcmp(k, "--timeout")) cfg.timeout = atof(v);
        else if (!strcmp(k, "--path")) cfg.path = v;
        else usage();
    }
    if (!cfg.path) cfg.path = strcmp(cfg.mode, "fanout") ? "/echo" : "/fanout";
    if (!cfg.port || !cfg.pid || cfg.size < 0 || cfg.size > (int)sizeof payload) usage();
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (getrandom(&rng_state, sizeof rng_state, 0) != sizeof rng_state || !rng_state)
        rng_state = (uint64_t)now_ns() | 1;
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg.port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    if (!strcmp(cfg.mode, "echo")) echo_mode();
    else if (!strcmp(cfg.mode, "fanout")) fanout_mode();
    else if (!strcmp(cfg.mode, "handshakes")) handshakes_mode();
    else usage();
    fflush(stdout);
    _exit(0); /* the kernel closes every socket at once */
}
