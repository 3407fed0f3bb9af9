/*
 * rawsock.h — test support: a raw UDP or TCP peer on 127.0.0.1 that sends
 * hand-written bytes to a UA and reads what comes back, while running the
 * UAs' loops (the t_uas of uas.h) so they can answer. Every wait is
 * bounded; the bound only stops a broken test.
 *
 * Include after uas.h.
 */
#ifndef SR_TEST_RAWSOCK_H
#define SR_TEST_RAWSOCK_H

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "uas.h"

#define T_RAW_MAX 262144

typedef struct t_raw {
  sr_transport tp;
  int fd;      /* UDP socket, or TCP connection (-1 until accepted) */
  int lfd;     /* TCP listener (t_raw_listen), or -1 */
  int port;    /* our port: UDP socket or TCP listener/connection */
  int ua_port; /* t_raw_connect: the UA's port */
  struct sockaddr_in to; /* UDP: where sends go (the latest sender) */
  char *buf;   /* TCP: stream bytes not yet returned */
  size_t len;
  char *msg;   /* the message last returned, NUL-terminated */
  size_t msglen;
  int eof;     /* TCP: 1 orderly close (recv()==0), 2 reset/error */
  unsigned seq;
} t_raw;

/* The raw peer's OPTIONS to Bob: its headers up to (not including)
 * Content-Length, and with its request line; tests add their own end. */
#define T_OPTIONS_HEADERS                                                  \
  "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"                                \
  "From: <sip:raw@127.0.0.1>;tag=r1\n"                                     \
  "To: <sip:bob@$UA>\n"                                                    \
  "Call-ID: $CID\n"                                                        \
  "CSeq: 1 OPTIONS\n"                                                      \
  "Max-Forwards: 70\n"
#define T_OPTIONS_TO_BOB "OPTIONS sip:bob@$UA SIP/2.0\n" T_OPTIONS_HEADERS

static inline int t_raw_init(t_raw *r, sr_transport tp) {
  memset(r, 0, sizeof *r);
  r->tp = tp;
  r->fd = r->lfd = -1;
  r->buf = malloc(T_RAW_MAX + 1);
  r->msg = malloc(T_RAW_MAX + 1);
  return r->buf && r->msg ? 0 : -1;
}

static inline void t_raw_close(t_raw *r) {
  if (r->fd >= 0) close(r->fd);
  if (r->lfd >= 0) close(r->lfd);
  r->fd = r->lfd = -1;
  free(r->buf);
  free(r->msg);
  r->buf = r->msg = NULL;
}

static inline int t_raw_local_port(int fd) {
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &al) < 0) return -1;
  return ntohs(a.sin_port);
}

static inline void t_loopback(struct sockaddr_in *a, int port) {
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)port);
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* A client peer of the UA listening on ua_port. 0 or -1. */
static inline int t_raw_connect(t_raw *r, sr_transport tp, int ua_port) {
  if (t_raw_init(r, tp) < 0) return -1;
  r->ua_port = ua_port;
  t_loopback(&r->to, ua_port);
  struct sockaddr_in me;
  t_loopback(&me, 0);
  if (tp == SR_TRANSPORT_UDP) {
    r->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd < 0 || bind(r->fd, (struct sockaddr *)&me, sizeof me) < 0)
      return -1;
  } else {
    /* A loopback connect completes in the kernel before the UA accepts. */
    r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->fd < 0 ||
        connect(r->fd, (struct sockaddr *)&r->to, sizeof r->to) < 0)
      return -1;
    fcntl(r->fd, F_SETFL, fcntl(r->fd, F_GETFL) | O_NONBLOCK);
  }
  r->port = t_raw_local_port(r->fd);
  return r->port > 0 ? 0 : -1;
}

/* A server peer (a UAS the UA calls): UDP socket or TCP listener. */
static inline int t_raw_listen(t_raw *r, sr_transport tp) {
  if (t_raw_init(r, tp) < 0) return -1;
  struct sockaddr_in me;
  t_loopback(&me, 0);
  int fd = socket(AF_INET,
                  (tp == SR_TRANSPORT_UDP ? SOCK_DGRAM : SOCK_STREAM) |
                      SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&me, sizeof me) < 0 ||
      (tp == SR_TRANSPORT_TCP && listen(fd, 4) < 0)) {
    if (fd >= 0) close(fd);
    return -1;
  }
  if (tp == SR_TRANSPORT_UDP) r->fd = fd;
  else r->lfd = fd;
  r->port = t_raw_local_port(fd);
  return r->port > 0 ? 0 : -1;
}

/* Runs the UAs' loops like t_drive, but also wakes when the raw socket is
 * readable, until cond(r) holds or limit_ms pass. 1 if it held. */
static inline int t_raw_drive(t_raw *r, int (*cond)(t_raw *), long limit_ms) {
  long end = t_ms() + limit_ms;
  for (;;) {
    for (int i = 0; i < t_nuas; i++)
      if (t_uas[i]) sr_ua_run_once(t_uas[i], 0);
    if (cond(r)) return 1;
    long now = t_ms();
    if (now >= end) return 0;
    struct pollfd p[MAX_UAS + 2];
    int n = 0, wait = (int)(end - now);
    for (int i = 0; i < t_nuas; i++) {
      if (!t_uas[i] || sr_ua_fd(t_uas[i]) < 0) continue;
      p[n].fd = sr_ua_fd(t_uas[i]);
      p[n++].events = POLLIN;
      int to = sr_ua_next_timeout_ms(t_uas[i]);
      if (to >= 0 && to < wait) wait = to;
    }
    if (r->fd >= 0 && !r->eof) {
      p[n].fd = r->fd;
      p[n++].events = POLLIN;
    }
    if (r->lfd >= 0 && r->fd < 0) {
      p[n].fd = r->lfd;
      p[n++].events = POLLIN;
    }
    poll(p, (nfds_t)n, wait);
  }
}

/* Value of Content-Length (or "l") in a header block; 0 when absent. */
static inline long t_frame_cl(const char *h, size_t hlen) {
  const char *p = h, *end = h + hlen;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    size_t n = (size_t)(eol - p);
    if (n > 15 && strncasecmp(p, "content-length:", 15) == 0)
      return strtol(p + 15, NULL, 10);
    if (n > 2 && (p[0] == 'l' || p[0] == 'L') && p[1] == ':')
      return strtol(p + 2, NULL, 10);
    p = eol + 1;
  }
  return 0;
}

/* TCP: moves one whole framed message from buf to msg. */
static inline int t_raw_take_frame(t_raw *r) {
  size_t skip = 0;
  while (skip < r->len && (r->buf[skip] == '\r' || r->buf[skip] == '\n'))
    skip++;
  memmove(r->buf, r->buf + skip, r->len - skip);
  r->len -= skip;
  r->buf[r->len] = 0;
  char *hend = memmem(r->buf, r->len, "\r\n\r\n", 4);
  if (!hend) return 0;
  size_t hlen = (size_t)(hend - r->buf) + 4;
  long cl = t_frame_cl(r->buf, hlen);
  if (cl < 0 || hlen + (size_t)cl > r->len) return 0;
  r->msglen = hlen + (size_t)cl;
  memcpy(r->msg, r->buf, r->msglen);
  r->msg[r->msglen] = 0;
  memmove(r->buf, r->buf + r->msglen, r->len - r->msglen);
  r->len -= r->msglen;
  return 1;
}

/* Non-blocking: 1 when a whole message is in r->msg, or (TCP) when the
 * connection ended (r->eof set, r->msglen 0). */
static inline int t_raw_poll_msg(t_raw *r) {
  r->msglen = 0;
  if (r->tp == SR_TRANSPORT_UDP) {
    socklen_t al = sizeof r->to;
    ssize_t n = recvfrom(r->fd, r->msg, T_RAW_MAX, 0,
                         (struct sockaddr *)&r->to, &al);
    if (n < 0) return 0;
    r->msglen = (size_t)n;
    r->msg[n] = 0;
    return 1;
  }
  if (r->fd < 0 && r->lfd >= 0) {
    r->fd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (r->fd < 0) return 0;
  }
  if (r->fd < 0) return 0;
  if (t_raw_take_frame(r)) return 1;
  while (!r->eof && r->len < T_RAW_MAX) {
    ssize_t n = recv(r->fd, r->buf + r->len, T_RAW_MAX - r->len, 0);
    if (n == 0) r->eof = 1;
    else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      r->eof = 2;
    if (n <= 0) break;
    r->len += (size_t)n;
    if (t_raw_take_frame(r)) return 1;
  }
  return r->eof != 0;
}

/* Waits for the next message. Returns it (NUL-terminated, r->msglen bytes)
 * or NULL on timeout or when the TCP connection ended (see r->eof). */
static inline const char *t_raw_recv(t_raw *r, long limit_ms) {
  if (!t_raw_drive(r, t_raw_poll_msg, limit_ms)) return NULL;
  return r->msglen ? r->msg : NULL;
}

/* The next message whose first line starts with `start`; the others on
 * the way are skipped. NULL after limit_ms. */
static inline const char *t_raw_next(t_raw *r, const char *start,
                                     long limit_ms) {
  long end = t_ms() + limit_ms;
  const char *m;
  while ((m = t_raw_recv(r, end - t_ms())))
    if (strncmp(m, start, strlen(start)) == 0) return m;
  return NULL;
}

/* TCP: runs until the UA closes the connection; messages before that are
 * discarded. 1 for an orderly close (recv()==0), 2 for a reset, 0 if the
 * connection is still open after limit_ms. */
static inline int t_raw_closed_cond(t_raw *r) {
  while (t_raw_poll_msg(r))
    if (r->eof) return 1;
  return 0;
}
static inline int t_raw_wait_closed(t_raw *r, long limit_ms) {
  if (r->tp != SR_TRANSPORT_TCP) return 0;
  t_raw_drive(r, t_raw_closed_cond, limit_ms);
  return r->eof;
}

/* Sends bytes (UDP: one datagram to the UA or the latest sender). 0 or -1.
 * TCP writes that would block run the UAs' loops so they can read. */
static inline int t_raw_send(t_raw *r, const void *data, size_t len) {
  if (r->tp == SR_TRANSPORT_UDP) {
    ssize_t n = sendto(r->fd, data, len, 0, (struct sockaddr *)&r->to,
                       sizeof r->to);
    return n == (ssize_t)len ? 0 : -1;
  }
  const char *p = data;
  long end = t_ms() + 5000;
  while (len) {
    ssize_t n = send(r->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      return -1;
    if (n > 0) {
      p += n;
      len -= (size_t)n;
    } else {
      if (t_ms() > end) return -1;
      for (int i = 0; i < t_nuas; i++)
        if (t_uas[i]) sr_ua_run_once(t_uas[i], 1);
    }
  }
  return 0;
}

/*
 * Expands a message template into out (binary-safe; returns the length):
 *   \n     -> CRLF (a "\r\n" stays as is)
 *   $TP    -> UDP or TCP          $TR  -> ";transport=tcp" or ""
 *   $ME    -> 127.0.0.1:our port  $UA  -> 127.0.0.1:the UA's port
 *   $BR    -> a fresh branch (z9hG4bK...), one per call
 *   $CID   -> a fresh Call-ID, one per call
 *   $CL    -> the length of the body (the bytes after the blank line)
 *   $0     -> a NUL byte
 */
static inline size_t t_raw_fmt(t_raw *r, const char *tmpl, char *out, size_t cap) {
  char tok[64];
  size_t n = 0, clpos = 0;
  int has_cl = 0;
  unsigned id = ++r->seq;
#define T_PUT(s, l)                                                        \
  do {                                                                     \
    size_t l_ = (l);                                                       \
    if (n + l_ < cap) memcpy(out + n, (s), l_);                            \
    n += l_;                                                               \
  } while (0)
  for (const char *p = tmpl; *p;) {
    if (*p == '\n') {
      if (p == tmpl || p[-1] != '\r') T_PUT("\r", 1);
      T_PUT("\n", 1);
      p++;
    } else if (strncmp(p, "$TP", 3) == 0) {
      T_PUT(r->tp == SR_TRANSPORT_TCP ? "TCP" : "UDP", 3);
      p += 3;
    } else if (strncmp(p, "$TR", 3) == 0) {
      if (r->tp == SR_TRANSPORT_TCP) T_PUT(";transport=tcp", 14);
      p += 3;
    } else if (strncmp(p, "$ME", 3) == 0) {
      int l = snprintf(tok, sizeof tok, "127.0.0.1:%d", r->port);
      T_PUT(tok, (size_t)l);
      p += 3;
    } else if (strncmp(p, "$UA", 3) == 0) {
      int l = snprintf(tok, sizeof tok, "127.0.0.1:%d", r->ua_port);
      T_PUT(tok, (size_t)l);
      p += 3;
    } else if (strncmp(p, "$BR", 3) == 0) {
      int l = snprintf(tok, sizeof tok, "z9hG4bKraw%d.%u", r->port, id);
      T_PUT(tok, (size_t)l);
      p += 3;
    } else if (strncmp(p, "$CID", 4) == 0) {
      int l = snprintf(tok, sizeof tok, "raw-%d-%u@127.0.0.1", r->port, id);
      T_PUT(tok, (size_t)l);
      p += 4;
    } else if (strncmp(p, "$CL", 3) == 0) {
      has_cl = 1;
      clpos = n;
      T_PUT("          ", 10); /* room, fixed below */
      p += 3;
    } else if (strncmp(p, "$0", 2) == 0) {
      T_PUT("", 1);
      p += 2;
    } else {
      T_PUT(p, 1);
      p++;
    }
  }
#undef T_PUT
  if (n >= cap) return 0;
  if (has_cl) {
    char *hend = memmem(out, n, "\r\n\r\n", 4);
    size_t body = hend ? n - (size_t)(hend + 4 - out) : 0;
    int l = snprintf(tok, sizeof tok, "%zu", body);
    memmove(out + clpos + l, out + clpos + 10, n - clpos - 10);
    memcpy(out + clpos, tok, (size_t)l);
    n -= 10 - (size_t)l;
  }
  out[n] = 0;
  return n;
}

/* t_raw_fmt + t_raw_send. 0 or -1. */
static inline int t_raw_sendf(t_raw *r, const char *tmpl) {
  static char out[T_RAW_MAX];
  size_t n = t_raw_fmt(r, tmpl, out, sizeof out);
  return n ? t_raw_send(r, out, n) : -1;
}

/* ---- reading messages ---- */

/* The status code of a response, 0 for a request or garbage. */
static inline int t_status(const char *msg) {
  if (!msg || strncmp(msg, "SIP/2.0 ", 8) != 0) return 0;
  if (!isdigit((unsigned char)msg[8]) || !isdigit((unsigned char)msg[9]) ||
      !isdigit((unsigned char)msg[10]) || msg[11] != ' ')
    return 0;
  return atoi(msg + 8);
}

/* The method of a request ("INVITE"), or "" for a response. */
static inline const char *t_method(const char *msg, char *out, size_t n) {
  size_t i = 0;
  out[0] = 0;
  if (!msg || t_status(msg)) return out;
  while (msg[i] && msg[i] != ' ' && i + 1 < n) {
    out[i] = msg[i];
    i++;
  }
  out[i] = 0;
  return out;
}

/* Value (trimmed) of the index-th header line named `name` (or its compact
 * form, when given), copied into out; NULL when absent. Only the header
 * block is searched. */
static inline const char *t_header_n(const char *msg, const char *name,
                              const char *compact, int index, char *out,
                              size_t n) {
  if (!msg) return NULL;
  const char *p = strstr(msg, "\r\n");
  size_t nl = strlen(name), cl = compact ? strlen(compact) : 0;
  while (p && p[2] && !(p[2] == '\r' && p[3] == '\n')) {
    const char *line = p + 2, *eol = strstr(line, "\r\n");
    if (!eol) eol = line + strlen(line);
    const char *colon = memchr(line, ':', (size_t)(eol - line));
    if (colon) {
      const char *ne = colon;
      while (ne > line && (ne[-1] == ' ' || ne[-1] == '\t')) ne--;
      size_t len = (size_t)(ne - line);
      if ((len == nl && strncasecmp(line, name, nl) == 0) ||
          (cl && len == cl && strncasecmp(line, compact, cl) == 0)) {
        if (index-- == 0) {
          const char *v = colon + 1;
          while (v < eol && (*v == ' ' || *v == '\t')) v++;
          size_t vl = (size_t)(eol - v);
          while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
          if (vl >= n) vl = n - 1;
          memcpy(out, v, vl);
          out[vl] = 0;
          return out;
        }
      }
    }
    p = *eol ? eol : NULL;
  }
  return NULL;
}

static inline const char *t_header(const char *msg, const char *name, char *out,
                            size_t n) {
  return t_header_n(msg, name, NULL, 0, out, n);
}

/* Does a comma list ("INVITE, ACK, BYE") hold `item` (case-insensitive)? */
static inline int t_list_has(const char *list, const char *item) {
  size_t il = strlen(item);
  const char *p = list;
  while (p && *p) {
    while (*p == ' ' || *p == ',' || *p == '\t') p++;
    const char *e = p;
    while (*e && *e != ',' && *e != ' ' && *e != '\t') e++;
    if ((size_t)(e - p) == il && strncasecmp(p, item, il) == 0) return 1;
    p = e;
  }
  return 0;
}

/* Builds a response to the request `req`: its Via lines, From, To (with
 * to_tag added when it has none and to_tag is given), Call-ID and CSeq,
 * then `extra` lines ("Name: value\r\n"...), then the body. Returns the
 * length written to out, 0 if it did not fit. */
static inline size_t t_build_response(const char *req, int code, const char *reason,
                               const char *to_tag, const char *extra,
                               const char *body, char *out, size_t cap) {
  char v[1024];
  size_t n = (size_t)snprintf(out, cap, "SIP/2.0 %d %s\r\n", code, reason);
  for (int i = 0; t_header_n(req, "Via", "v", i, v, sizeof v); i++)
    n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "Via: %s\r\n", v);
  if (t_header_n(req, "From", "f", 0, v, sizeof v))
    n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "From: %s\r\n", v);
  if (t_header_n(req, "To", "t", 0, v, sizeof v))
    n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "To: %s%s%s\r\n", v,
                          to_tag && !strstr(v, ";tag=") ? ";tag=" : "",
                          to_tag && !strstr(v, ";tag=") ? to_tag : "");
  if (t_header_n(req, "Call-ID", "i", 0, v, sizeof v))
    n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "Call-ID: %s\r\n", v);
  if (t_header_n(req, "CSeq", NULL, 0, v, sizeof v))
    n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "CSeq: %s\r\n", v);
  n += (size_t)snprintf(out + n, n < cap ? cap - n : 0,
                        "%sContent-Length: %zu\r\n\r\n%s", extra ? extra : "",
                        body ? strlen(body) : 0, body ? body : "");
  return n < cap ? n : 0;
}

#endif
