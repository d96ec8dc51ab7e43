/* serve_http.c - the HTTP side of `vkmoe serve` (serve.h) over libmicrohttpd: one thread per
 * connection (a handler may block until its answer is ready, a stream pulls its bytes as they are
 * generated), the body collected up to a limit (413 beyond it, decided from Content-Length before
 * the body is read when there is one), the API key checked (every path but /health), then the
 * handler's response sent: a buffer, or a stream pulled until it ends.
 *
 * Nothing here knows about models: the handler (cmd_serve.c) routes paths. Errors this module
 * answers itself (401, 413, out of memory) are OpenAI-shaped JSON like the handler's. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "serve.h"

struct serve_http {
    struct MHD_Daemon *d;
    serve_http_opts o;
    int port;
    int quiesced_fd; /* the listening socket after serve_http_quiesce, closed after the stop */
};

/* Per connection and request: the body so far. */
typedef struct conn_state {
    char *body; /* [cap], NUL-terminated */
    size_t len, cap;
    bool too_big, answered;
} conn_state;

static enum MHD_Result send_body(struct MHD_Connection *c, int status, const char *type, char *body,
                                 size_t len, const serve_http_resp *r) {
    struct MHD_Response *resp =
        body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (r && r->retry_after > 0) {
        char v[24];
        snprintf(v, sizeof v, "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    if (r && r->allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    const enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *type,
                                  const char *code, const char *fmt, const char *arg) {
    serve_error e;
    serve_fail(&e, status, type, code, NULL, fmt, arg);
    char *j = serve_error_json(&e);
    return send_body(c, status, "application/json", j, j ? strlen(j) : 0, NULL);
}

/* ---- requests ---- */

/* Whether the peer of a connection that is waiting for its answer is still there: a closed or
 * reset socket reads as end of file (nothing is consumed). */
static bool conn_alive(void *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return true;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return true;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return false;
    char b;
    const ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

static bool still_connected(const serve_http_req *r) {
    return conn_alive(r->conn);
}

/* ---- streamed responses ---- */

typedef struct stream_ctx {
    serve_stream s;
    struct MHD_Connection *c;
} stream_ctx;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_ctx *x = cls;
    const ssize_t n = x->s.pull(x->s.src, buf, max, conn_alive, x->c);
    if (n == 0) return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

static void stream_free(void *cls) {
    stream_ctx *x = cls;
    if (x->s.release) x->s.release(x->s.src);
    free(x);
}

static enum MHD_Result send_stream(struct MHD_Connection *c, const serve_http_resp *r) {
    stream_ctx *x = malloc(sizeof *x);
    if (!x) {
        if (r->stream.release) r->stream.release(r->stream.src);
        return MHD_NO;
    }
    x->s = r->stream;
    x->c = c;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, x, stream_free);
    if (!resp) {
        stream_free(x);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type ? r->content_type : "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    const enum MHD_Result rc = MHD_queue_response(c, (unsigned)(r->status ? r->status : 200), resp);
    MHD_destroy_response(resp);
    return rc;
}

static bool key_ok(const serve_http *h, struct MHD_Connection *c) {
    if (!h->o.api_key) return true;
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!a || strncasecmp(a, "Bearer ", 7)) return false;
    a += 7;
    while (*a == ' ') a++;
    const size_t n = strlen(h->o.api_key);
    if (strlen(a) != n) return false;
    unsigned char diff = 0; /* the same time whatever the first wrong byte */
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(a[i] ^ h->o.api_key[i]);
    return diff == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    (void)version;
    serve_http *h = cls;
    conn_state *st = *con_cls;
    if (!st) {
        if (!(st = calloc(1, sizeof *st))) return MHD_NO;
        *con_cls = st;
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > h->o.max_body) {
            st->answered = true;
            char lim[32];
            snprintf(lim, sizeof lim, "%zu", h->o.max_body);
            return send_error(c, 413, "invalid_request_error", "request_too_large",
                              "the request body is larger than the limit of %s bytes", lim);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!st->too_big && !st->answered) {
            if (st->len + *upload_size > h->o.max_body) {
                st->too_big = true;
                free(st->body);
                st->body = NULL;
                st->len = st->cap = 0;
            } else {
                if (st->len + *upload_size + 1 > st->cap) {
                    size_t cap = st->cap ? st->cap : 4096;
                    while (cap < st->len + *upload_size + 1) cap *= 2;
                    char *b = realloc(st->body, cap);
                    if (!b) return MHD_NO;
                    st->body = b;
                    st->cap = cap;
                }
                memcpy(st->body + st->len, upload, *upload_size);
                st->len += *upload_size;
                st->body[st->len] = 0;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (st->answered) return MHD_YES;
    st->answered = true;
    if (st->too_big) {
        char lim[32];
        snprintf(lim, sizeof lim, "%zu", h->o.max_body);
        return send_error(c, 413, "invalid_request_error", "request_too_large",
                          "the request body is larger than the limit of %s bytes", lim);
    }
    if (strcmp(url, "/health") && !key_ok(h, c))
        return send_error(c, 401, "authentication_error", "invalid_api_key", "%s",
                          "invalid or missing API key (Authorization: Bearer KEY)");
    serve_http_req req = {.method = method,
                          .path = url,
                          .body = st->body ? st->body : "",
                          .body_len = st->len,
                          .connected = still_connected,
                          .conn = c};
    serve_http_resp resp = {0};
    h->o.handler(h->o.app, &req, &resp);
    if (resp.stream.pull) return send_stream(c, &resp);
    if (!resp.status) resp.status = 500;
    return send_body(c, resp.status, resp.content_type ? resp.content_type : "application/json",
                     resp.body, resp.body_len, &resp);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
    (void)cls, (void)c, (void)why;
    conn_state *st = *con_cls;
    if (!st) return;
    free(st->body);
    free(st);
    *con_cls = NULL;
}

/* ---- lifecycle ---- */

/* libmicrohttpd's own messages (a client that sent half a request, ...), marked as such. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    const size_t n = strlen(line);
    fprintf(stderr, "vkmoe: serve: http: %s%s", line, n && line[n - 1] == '\n' ? "" : "\n");
}

int serve_http_start(const serve_http_opts *o, serve_http **out) {
    *out = NULL;
    const char *host = o->host ? o->host : "127.0.0.1";
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    const int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai) {
        fprintf(stderr, "vkmoe: serve: --host %s: %s\n", host, gai_strerror(gai));
        return -1;
    }
    serve_http *h = calloc(1, sizeof *h);
    if (!h) {
        freeaddrinfo(ai);
        fprintf(stderr, "vkmoe: serve: out of memory\n");
        return -1;
    }
    h->o = *o;
    h->quiesced_fd = -1;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, h,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)o->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)120, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        fprintf(stderr,
                "vkmoe: serve: cannot listen on %s port %d (in use, or not an address of "
                "this machine?)\n",
                host, o->port);
        free(h);
        return -1;
    }
    h->port = o->port;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_LISTEN_FD);
    if (di) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (!getsockname(di->listen_fd, (struct sockaddr *)&ss, &sl))
            h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    }
    *out = h;
    return 0;
}

int serve_http_port(const serve_http *h) {
    return h->port;
}

void serve_http_quiesce(serve_http *h, int max_wait_ms) {
    if (!h || h->quiesced_fd >= 0) return;
    h->quiesced_fd = MHD_quiesce_daemon(h->d);
    for (int waited = 0; waited < max_wait_ms; waited += 10) {
        const union MHD_DaemonInfo *di =
            MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!di || di->num_connections == 0) break;
        poll(NULL, 0, 10);
    }
}

void serve_http_stop(serve_http *h) {
    if (!h) return;
    MHD_stop_daemon(h->d);
    if (h->quiesced_fd >= 0) close(h->quiesced_fd);
    free(h);
}
