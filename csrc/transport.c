/*
 * transport.c — UDP and TCP sockets (IPv4 and IPv6), TCP framing by
 * Content-Length (RFC 3261 §18.3), keep-alive pongs (RFC 5626), connection
 * reuse, limits, idle timeouts and message deadlines. Whole messages go up
 * through sr__ua_on_bytes().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/sock_diag.h> /* SK_MEMINFO_* */
#include <sys/epoll.h>
#include <unistd.h>

#include "internal.h"

struct sr__conn {
  sr__io io;
  sr_ua *ua;
  uint64_t id;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  char *rbuf, *wbuf;
  size_t rlen, rcap, wlen, wcap;
  int connecting, dead, want_out;
  sr__txn *clients; /* client transactions sent on it, until they end */
  uint64_t last_activity;
  uint64_t msg_start; /* a message begun and not whole: when; else 0 */
  size_t discard;     /* bytes of a message answered 513 still to read */
  sr__timer idle;     /* idle timeout, and the deadline of msg_start */
  /* Live: in ua->conns (all, for closing) and in the two indexes, looked
   * up per message sent; dead: in ua->dead_conns until reaped. */
  sr__conn *next, **pprev;
  sr__conn *id_next, *addr_next;
  char id_key[20], addr_key[40];
};

/* ---------------- connection indexes ---------------- */

/* Keys for the UA's chained hashes: hex of the id, and of family, port
 * and address bytes (formatting the address as text would cost more). */
static const char hex[] = "0123456789abcdef";

static void id_key(uint64_t id, char *out) {
  int k = 0;
  do {
    out[k++] = hex[id & 15];
    id >>= 4;
  } while (id);
  out[k] = '\0';
}

static void addr_key(const struct sockaddr_storage *ss, char *out) {
  const unsigned char *port, *addr;
  size_t n;
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)ss;
    port = (const void *)&a->sin6_port;
    addr = a->sin6_addr.s6_addr;
    n = 16;
    *out++ = '6';
  } else {
    const struct sockaddr_in *a = (const void *)ss;
    port = (const void *)&a->sin_port;
    addr = (const void *)&a->sin_addr;
    n = 4;
    *out++ = '4';
  }
  for (int i = 0; i < 2; i++) {
    *out++ = hex[port[i] >> 4];
    *out++ = hex[port[i] & 15];
  }
  for (size_t i = 0; i < n; i++) {
    *out++ = hex[addr[i] >> 4];
    *out++ = hex[addr[i] & 15];
  }
  *out = '\0';
}

static const char *conn_id_key(void *o) { return ((sr__conn *)o)->id_key; }
static const char *conn_addr_key(void *o) { return ((sr__conn *)o)->addr_key; }
#define BY_ID offsetof(sr__conn, id_next)
#define BY_ADDR offsetof(sr__conn, addr_next)

static int conn_index(sr_ua *ua, sr__conn *c) {
  id_key(c->id, c->id_key);
  addr_key(&c->addr, c->addr_key);
  if (sr__hash_insert(&ua->conns_by_id, BY_ID, conn_id_key, c) < 0)
    return SR_ENOMEM;
  if (sr__hash_insert(&ua->conns_by_addr, BY_ADDR, conn_addr_key, c) < 0) {
    sr__hash_remove(&ua->conns_by_id, BY_ID, conn_id_key, c);
    return SR_ENOMEM;
  }
  if ((c->next = ua->conns)) c->next->pprev = &c->next;
  c->pprev = &ua->conns;
  ua->conns = c;
  return 0;
}

/* A closed connection leaves the indexes at once, so nothing finds it,
 * and waits on the dead list: an epoll batch may still point at it. */
static void conn_unindex(sr_ua *ua, sr__conn *c) {
  sr__hash_remove(&ua->conns_by_id, BY_ID, conn_id_key, c);
  sr__hash_remove(&ua->conns_by_addr, BY_ADDR, conn_addr_key, c);
  if ((*c->pprev = c->next)) c->next->pprev = c->pprev;
  c->next = ua->dead_conns;
  c->pprev = NULL;
  ua->dead_conns = c;
}

/* The live connection with this id, or NULL. */
static sr__conn *conn_by_id(sr_ua *ua, uint64_t id) {
  char k[20];
  id_key(id, k);
  return sr__hash_find(&ua->conns_by_id, BY_ID, conn_id_key, k);
}

/* The live connection peer->conn names, else the newest one to its
 * address. */
static sr__conn *conn_find(sr_ua *ua, const sr__peer *peer) {
  char k[40];
  sr__conn *c = peer->conn ? conn_by_id(ua, peer->conn) : NULL;
  if (c) return c;
  addr_key(&peer->addr, k);
  return sr__hash_find(&ua->conns_by_addr, BY_ADDR, conn_addr_key, k);
}

void sr__addr_set_port(struct sockaddr_storage *a, uint16_t port) {
  if (a->ss_family == AF_INET)
    ((struct sockaddr_in *)a)->sin_port = htons(port);
  else
    ((struct sockaddr_in6 *)a)->sin6_port = htons(port);
}

int sr__peer_set(sr__peer *peer, sr_transport tp, const char *host,
                 int port) {
  memset(peer, 0, sizeof *peer);
  peer->tp = tp;
  if (!host) return SR_EINVAL;
  if (port <= 0 || port > 65535) port = 5060;
  char h[80];
  size_t hl = strlen(host);
  if (hl >= sizeof h) return SR_EADDR;
  if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
    memcpy(h, host + 1, hl - 2);
    h[hl - 2] = 0;
  } else {
    memcpy(h, host, hl + 1);
  }
  if (strcasecmp(h, "localhost") == 0) strcpy(h, "127.0.0.1");
  struct sockaddr_in *a4 = (struct sockaddr_in *)&peer->addr;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&peer->addr;
  if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    peer->addrlen = sizeof *a4;
    return 0;
  }
  if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    peer->addrlen = sizeof *a6;
    return 0;
  }
  /* Names are resolved numerically only: the loop must never block. */
  return SR_EADDR;
}

/* Dotted quad: glibc's inet_ntop does it with sprintf, and every request
 * received is formatted once (Via received=). */
static void ipv4_format(const struct in_addr *in, char *h) {
  const unsigned char *b = (const unsigned char *)&in->s_addr;
  for (int i = 0; i < 4; i++) {
    unsigned v = b[i];
    if (v >= 100) *h++ = (char)('0' + v / 100);
    if (v >= 10) *h++ = (char)('0' + v / 10 % 10);
    *h++ = (char)('0' + v % 10);
    *h++ = i < 3 ? '.' : '\0';
  }
}

static void addr_format(const struct sockaddr_storage *ss, char *out,
                        size_t n, int *port) {
  char h[64] = "?";
  int p = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)ss;
    ipv4_format(&a->sin_addr, h);
    p = ntohs(a->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof h);
    p = ntohs(a->sin6_port);
  }
  size_t hl = strlen(h);
  if (n) {
    if (hl >= n) hl = n - 1;
    memcpy(out, h, hl);
    out[hl] = '\0';
  }
  if (port) *port = p;
}

/* "host:port" or "[host]:port". The message hook formats two of these per
 * message, so this avoids printf (a profile showed it at ~3% of a
 * transfer); the rare value that does not fit is left to snprintf. */
static void hostport(char *out, size_t n, const char *host, int v6,
                     int port) {
  char num[12];
  int k = 0;
  unsigned v = port < 0 ? 0u : (unsigned)port;
  do {
    num[k++] = (char)('0' + v % 10);
    v /= 10;
  } while (v && k < (int)sizeof num);
  size_t hl = strlen(host);
  if (port < 0 || hl + (v6 ? 2 : 0) + 1 + (size_t)k + 1 > n) {
    snprintf(out, n, v6 ? "[%s]:%d" : "%s:%d", host, port);
    return;
  }
  char *o = out;
  if (v6) *o++ = '[';
  memcpy(o, host, hl);
  o += hl;
  if (v6) *o++ = ']';
  *o++ = ':';
  while (k) *o++ = num[--k];
  *o = '\0';
}

void sr__peer_host(const sr__peer *peer, char *host, size_t n, int *port) {
  addr_format(&peer->addr, host, n, port);
}

void sr__peer_format(const sr__peer *peer, char *out, size_t n) {
  char h[64];
  int p;
  addr_format(&peer->addr, h, sizeof h, &p);
  hostport(out, n, h, peer->addr.ss_family == AF_INET6, p);
}

sr__listener *sr__transport_listener_for(sr_ua *ua, sr_transport tp,
                                         int family) {
  for (int i = 0; i < ua->nlisteners; i++) {
    sr__listener *l = ua->listeners[i];
    if (l->tp == tp && (family == 0 || l->family == family)) return l;
  }
  return NULL;
}

sr__listener *sr__transport_listener_near(sr_ua *ua, sr_transport tp,
                                          int family) {
  sr__listener *l = sr__transport_listener_for(ua, tp, family);
  return l ? l : sr__transport_listener_for(ua, tp, 0);
}

static void run_hook(sr_ua *ua, int outgoing, sr_transport tp,
                     const struct sockaddr_storage *remote, int *drop,
                     const char *data, size_t len) {
  *drop = 0;
  if (!ua->hook) return;
  char r[80], l[80] = "";
  sr__peer p = {.tp = tp};
  p.addr = *remote;
  sr__peer_format(&p, r, sizeof r);
  sr__listener *lis = sr__transport_listener_for(ua, tp, remote->ss_family);
  if (lis) hostport(l, sizeof l, lis->host, lis->family == AF_INET6, lis->port);
  *drop = ua->hook(outgoing, tp, l, r, data, len, ua->hook_data) ? 1 : 0;
}

/* ---------------- framing ---------------- */

/* How a header block frames its body: its length, or one of these. */
enum { CL_BAD = -1, CL_MISSING = -2, CL_CONFLICT = -3 };

/* A Content-Length value, [v, eol) (a CR before eol allowed); CL_BAD
 * unless digits. A huge one stays just over 10^9: over any size limit
 * (max_message_size is at most SR__MAX_MESSAGE_CAP). */
static long cl_value(const char *v, const char *eol) {
  long cl = 0;
  int digits = 0;
  while (v < eol && (*v == ' ' || *v == '\t')) v++;
  while (v < eol && *v >= '0' && *v <= '9') {
    if (cl < 100000000L) cl = cl * 10 + (*v - '0');
    else cl = 1000000001L;
    v++;
    digits++;
  }
  while (v < eol && (*v == ' ' || *v == '\t' || *v == '\r')) v++;
  return digits && v == eol ? cl : CL_BAD;
}

/* The length of the header block at the start of buf, up to its blank
 * line, or 0 while it is incomplete. Lines may end in CRLF or a bare LF,
 * as the parser (and so UDP) takes them. *cl gets the body length from
 * Content-Length (or "l"): every one is read, so that two that disagree
 * are seen (CL_CONFLICT; equal ones frame alike and are let through),
 * and a block without any is CL_MISSING (RFC 3261 §18.3, §20.14). */
static size_t frame_head(const char *buf, size_t len, long *cl) {
  const char *end = buf + len, *p = buf;
  *cl = CL_MISSING;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) return 0;
    if (eol == p || (eol == p + 1 && *p == '\r'))
      return (size_t)(eol + 1 - buf); /* the blank line */
    char n0 = (char)(*p | 0x20); /* most lines are neither: no colon search */
    const char *colon = n0 == 'c' || n0 == 'l'
                            ? memchr(p, ':', (size_t)(eol - p)) : NULL;
    if (colon && *cl != CL_BAD) {
      const char *ne = colon;
      while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t')) ne--;
      size_t nl = (size_t)(ne - p);
      if ((nl == 14 && strncasecmp(p, "content-length", 14) == 0) ||
          (nl == 1 && n0 == 'l')) {
        long v = cl_value(colon + 1, eol);
        if (v == CL_BAD || *cl == CL_MISSING) *cl = v;
        else if (*cl >= 0 && v != *cl) *cl = CL_CONFLICT;
      }
    }
    p = eol + 1;
  }
  return 0;
}

/* ---------------- UDP ---------------- */

/* Overload: checked after a full batch, when more is waiting. Past half
 * of the receive buffer the loop is losing ground, and datagrams of calls
 * in progress would soon be dropped (then retransmitted: more load); so
 * new requests get 503 (sr__ua_shed) until the queue is under a quarter.
 * Bursts that fit are served: they cost delay, not calls. */
static void udp_overload_over(sr__listener *l) {
  sr__log(l->ua, SR_LOG_WARNING, "overload over on udp %s:%d: %u new "
          "requests got 503", l->host, l->port, l->shed);
  l->overloaded = 0;
  l->shed = 0;
}

static void udp_check_queue(sr__listener *l) {
  sr_ua *ua = l->ua;
  uint32_t mi[SK_MEMINFO_VARS];
  socklen_t len = sizeof mi;
  if (getsockopt(l->io.fd, SOL_SOCKET, SO_MEMINFO, mi, &len) < 0 ||
      len < sizeof mi)
    return;
  uint32_t used = mi[SK_MEMINFO_RMEM_ALLOC], cap = mi[SK_MEMINFO_RCVBUF];
  if (!l->overloaded && used > cap / 2) {
    l->overloaded = 1;
    sr__log(ua, SR_LOG_WARNING,
            "overloaded: the receive queue of udp %s:%d is %u%% full; new "
            "requests get 503 until it drains",
            l->host, l->port, (unsigned)(used * 100ull / (cap ? cap : 1)));
  } else if (l->overloaded && used < cap / 4) {
    udp_overload_over(l);
  }
}

static void udp_ready(sr__io *io, uint32_t events) {
  sr__listener *l = (sr__listener *)io;
  sr_ua *ua = l->ua;
  (void)events;
  size_t max = ua->opt.max_message_size;
  /* A bounded batch per wakeup keeps TCP and timers fair. */
  for (int i = 0; i < 64 && !ua->closed && !ua->callback_error; i++) {
    sr__peer from = {.tp = SR_TRANSPORT_UDP};
    from.addrlen = sizeof from.addr;
    ssize_t n = recvfrom(io->fd, ua->rxbuf, max + 1, MSG_TRUNC,
                         (struct sockaddr *)&from.addr, &from.addrlen);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (l->overloaded) udp_overload_over(l); /* drained */
      } else if (errno != EINTR) {
        sr__log(ua, SR_LOG_WARNING, "udp recv: %s", strerror(errno));
      }
      return;
    }
    if ((size_t)n > max) {
      char p[80];
      sr__peer_format(&from, p, sizeof p);
      /* Its first max bytes were kept: a whole header block there is
       * enough for a 513 (RFC 3261 §21.5.14) that tells the sender why. */
      long cl;
      size_t hlen = frame_head(ua->rxbuf, max, &cl);
      sr__log(ua, SR_LOG_WARNING,
              "udp: a %zd-byte datagram from %s is over max_message_size "
              "(%zu): %s", n, p, max, hlen ? "513 if a request" : "dropped");
      if (hlen) sr__ua_refuse(ua, &from, ua->rxbuf, hlen, 513, "Message Too Large");
      continue;
    }
    int drop;
    run_hook(ua, 0, SR_TRANSPORT_UDP, &from.addr, &drop, ua->rxbuf, (size_t)n);
    if (ua->closed) return; /* by the hook */
    if (drop) continue;
    ua->rxbuf[n] = 0;
    ua->overloaded = l->overloaded ? l : NULL;
    sr__ua_on_bytes(ua, &from, ua->rxbuf, (size_t)n);
    ua->overloaded = NULL;
  }
  if (!ua->closed && !ua->callback_error) udp_check_queue(l);
}

/* ---------------- TCP connections ---------------- */

/* Closes a connection; `why` is logged at `level`. */
static void conn_close_at(sr__conn *c, int level, const char *why) {
  if (c->dead) return;
  sr_ua *ua = c->ua;
  char p[80];
  sr__peer tmp = {.tp = SR_TRANSPORT_TCP};
  tmp.addr = c->addr;
  sr__peer_format(&tmp, p, sizeof p);
  if (why) sr__log(ua, level, "tcp %s: closed (%s)", p, why);
  c->dead = 1;
  sr__timer_stop(ua, &c->idle);
  sr__io_del(ua, &c->io);
  close(c->io.fd);
  c->io.fd = -1;
  ua->nconns--;
  conn_unindex(ua, c);
}

static void conn_close(sr__conn *c, const char *why) {
  conn_close_at(c, SR_LOG_INFO, why);
}

/* The peer broke the stream (not SIP, no framing, too big): bad input is
 * logged as a warning, like a dropped datagram. */
static void conn_reject(sr__conn *c, const char *why) {
  conn_close_at(c, SR_LOG_WARNING, why);
}

static void conn_free(sr__conn *c) {
  sr__free(c->rbuf);
  sr__free(c->wbuf);
  sr__free(c);
}

/* A closed UA's listeners, closed by sr__transport_close_all; freed here
 * with the connections, once no loop turn may still point at them. */
static void free_listeners(sr_ua *ua) {
  for (size_t i = 0; i < sizeof ua->listeners / sizeof ua->listeners[0]; i++) {
    sr__free(ua->listeners[i]);
    ua->listeners[i] = NULL;
  }
}

void sr__transport_reap(sr_ua *ua) {
  sr__conn *c;
  if (ua->depth) return; /* a loop turn below may still use them */
  while ((c = ua->dead_conns)) { /* upcalls may close more: they go here */
    ua->dead_conns = c->next;
    /* Requests waiting on a lost connection fail now, not at timer B/F
     * (their responses could only have come back on it). Their list moves
     * here first: the upcalls may close the UA. */
    sr__txn *clients = c->clients;
    if (clients) clients->cpprev = &clients;
    conn_free(c);
    if (clients) sr__txn_conn_lost(&clients, !ua->closed);
  }
  if (ua->closed) free_listeners(ua);
}

/* A message has begun and not ended: it gets 64*T1 to arrive whole, the
 * time a client transaction waits for its answer (Timer B/F, RFC 3261
 * §17.1), after which nobody waits for it any more. Bytes dribbled in keep
 * the idle timeout away, not this one: a slow sender cannot hold one of
 * the max_tcp_connections forever. Armed once per message that spans
 * reads; the idle timer's callback checks it. */
static int64_t message_deadline_ms(sr_ua *ua) {
  return 64 * (int64_t)ua->opt.t1_ms;
}

static void conn_idle(void *arg) {
  sr__conn *c = arg;
  uint64_t now = sr__now_ms(), idle = (uint64_t)c->ua->opt.tcp_idle_timeout_ms;
  uint64_t due = c->last_activity + idle;
  if (c->msg_start) {
    uint64_t late = c->msg_start + (uint64_t)message_deadline_ms(c->ua);
    if (now >= late) {
      char why[64];
      snprintf(why, sizeof why, "a message begun %lld ms ago, not whole by "
               "64*T1", (long long)(now - c->msg_start));
      conn_reject(c, why);
      return;
    }
    if (late < due) due = late;
  }
  if (now >= due || c->connecting)
    conn_close(c, "idle");
  else
    sr__timer_start(c->ua, &c->idle, (int64_t)(due - now));
}

static int conn_flush(sr__conn *c) {
  while (c->wlen) {
    ssize_t n = send(c->io.fd, c->wbuf, c->wlen, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      conn_close(c, strerror(errno));
      return SR_EIO;
    }
    memmove(c->wbuf, c->wbuf + n, c->wlen - (size_t)n);
    c->wlen -= (size_t)n;
  }
  int want = c->wlen > 0;
  if (want != c->want_out) {
    c->want_out = want;
    sr__io_mod(c->ua, &c->io, EPOLLIN | (want ? EPOLLOUT : 0));
  }
  return 0;
}

/* A frame must begin like SIP: a start line that names a SIP version,
 * first (a response) or last (a request). Which one is the UA's to judge:
 * another than 2.0 is answered 505 (RFC 3261 §8.2), not a broken stream. */
static int looks_like_sip(const char *s, size_t n) {
  const char *eol = memchr(s, '\n', n);
  size_t l = eol ? (size_t)(eol - s) : n;
  for (size_t i = 0; i < l; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch < 0x20 && ch != '\r' && ch != '\t') return 0;
  }
  if (l >= 8 && strncasecmp(s, "SIP/", 4) == 0) return 1;
  while (l && (s[l - 1] == '\r' || s[l - 1] == ' ')) l--;
  size_t v = l;
  while (v && s[v - 1] != ' ') v--;
  return v > 0 && l - v >= 5 && strncasecmp(s + v, "SIP/", 4) == 0;
}

static int conn_write(sr__conn *c, const char *data, size_t len);

static void conn_partial(sr__conn *c) {
  if (c->msg_start) return;
  c->msg_start = sr__now_ms();
  int64_t d = message_deadline_ms(c->ua), idle = c->ua->opt.tcp_idle_timeout_ms;
  sr__timer_start(c->ua, &c->idle, d < idle ? d : idle);
}

/* Where a message read from c came from: its answer goes back on c. */
static sr__peer conn_peer(const sr__conn *c) {
  sr__peer p = {.tp = SR_TRANSPORT_TCP, .conn = c->id};
  p.addr = c->addr;
  p.addrlen = c->addrlen;
  return p;
}

/* A header block without usable framing, or framing a message over the
 * size limit: the rest of the stream cannot be cut into messages. A
 * request is answered "code why", then the connection closes; a response
 * is dropped with it. */
static void conn_refuse(sr__conn *c, size_t hlen, int code, const char *why) {
  sr__peer from = conn_peer(c);
  sr__ua_refuse(c->ua, &from, c->rbuf, hlen, code, why);
  if (c->dead) return; /* by the send, or by a hook closing the UA */
  /* Input left unread would make close() reset the connection, and the
   * answer could be lost with it. */
  for (int i = 0; i < 16 && recv(c->io.fd, c->rbuf, c->rcap, 0) > 0; i++) {
  }
  conn_reject(c, why);
}

/* Between messages: a double CRLF is a keep-alive ping, answered at once
 * with one CRLF, the pong (RFC 5626 §4.4.1); other CR and LF bytes are
 * skipped. The bytes taken, or 0 while they may still become a ping. */
static size_t conn_between(sr__conn *c) {
  const char *b = c->rbuf;
  size_t n = c->rlen;
  if (n < 4 && memcmp(b, "\r\n\r\n", n) == 0) return 0;
  if (n >= 4 && memcmp(b, "\r\n\r\n", 4) == 0) {
    conn_write(c, "\r\n", 2);
    return 4;
  }
  return n >= 2 && b[0] == '\r' && b[1] == '\n' ? 2 : 1;
}

/* A message over the size limit, framed by a valid Content-Length: 513
 * (RFC 3261 §21.5.14). Its body is read and dropped, so that the peer can
 * finish sending and read the answer, and the connection goes on; a body
 * many times the limit is not worth reading: the connection closes. */
static void conn_too_large(sr__conn *c, size_t hlen, size_t total) {
  sr_ua *ua = c->ua;
  size_t max = ua->opt.max_message_size;
  if (total / 4 > max) {
    conn_refuse(c, hlen, 513, "Message Too Large");
    return;
  }
  char who[80];
  sr__peer from = conn_peer(c);
  sr__peer_format(&from, who, sizeof who);
  sr__log(ua, SR_LOG_WARNING, "tcp: a %zu-byte message from %s is over "
          "max_message_size (%zu): 513 if a request, its bytes dropped",
          total, who, max);
  sr__ua_refuse(ua, &from, c->rbuf, hlen, 513, "Message Too Large");
  c->discard = total;
}

static void conn_deliver(sr__conn *c) {
  sr_ua *ua = c->ua;
  size_t max = ua->opt.max_message_size;
  while (!c->dead && !ua->closed && c->rlen) {
    if (c->discard) {
      size_t k = c->discard < c->rlen ? c->discard : c->rlen;
      memmove(c->rbuf, c->rbuf + k, c->rlen - k);
      c->rlen -= k;
      c->discard -= k;
      if (c->discard) {
        conn_partial(c); /* the message deadline bounds a slow body too */
        return;
      }
      c->msg_start = 0;
      continue;
    }
    if (c->rbuf[0] == '\r' || c->rbuf[0] == '\n') {
      size_t skip = conn_between(c);
      if (!skip || c->dead) return;
      memmove(c->rbuf, c->rbuf + skip, c->rlen - skip);
      c->rlen -= skip;
      continue;
    }
    long cl;
    size_t hlen = frame_head(c->rbuf, c->rlen, &cl);
    if (!hlen) {
      if (c->rlen > max) conn_reject(c, "header block over the size limit");
      else if (!looks_like_sip(c->rbuf, c->rlen) && memchr(c->rbuf, '\n', c->rlen))
        conn_reject(c, "not SIP");
      else conn_partial(c);
      return;
    }
    if (!looks_like_sip(c->rbuf, hlen)) {
      conn_reject(c, "not SIP");
      return;
    }
    if (hlen > max) { /* as when it comes in smaller reads (above) */
      conn_reject(c, "header block over the size limit");
      return;
    }
    if (cl < 0) {
      conn_refuse(c, hlen, 400, cl == CL_MISSING ? "Missing Content-Length"
                                : cl == CL_BAD ? "Bad Content-Length"
                                               : "Conflicting Content-Length");
      return;
    }
    size_t total = hlen + (size_t)cl;
    if (total > max) {
      conn_too_large(c, hlen, total);
      continue; /* to drop its bytes, unless the connection closed */
    }
    if (c->rlen < total) {
      conn_partial(c);
      return;
    }
    c->msg_start = 0;
    int drop;
    run_hook(ua, 0, SR_TRANSPORT_TCP, &c->addr, &drop, c->rbuf, total);
    if (c->dead || ua->closed) return; /* by the hook */
    if (!drop) {
      sr__peer from = conn_peer(c);
      char save = c->rbuf[total];
      c->rbuf[total] = 0;
      sr__ua_on_bytes(ua, &from, c->rbuf, total);
      if (c->dead) return;
      c->rbuf[total] = save;
    }
    memmove(c->rbuf, c->rbuf + total, c->rlen - total);
    c->rlen -= total;
  }
}

static void conn_ready(sr__io *io, uint32_t events) {
  sr__conn *c = (sr__conn *)io;
  if (c->dead) return;
  c->last_activity = sr__now_ms();
  if (events & EPOLLOUT) {
    if (c->connecting) {
      int err = 0;
      socklen_t el = sizeof err;
      getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &el);
      if (err) {
        conn_close(c, strerror(err));
        return;
      }
      c->connecting = 0;
    }
    if (conn_flush(c) < 0) return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    size_t max = c->ua->opt.max_message_size;
    for (;;) {
      if (c->rcap - c->rlen < 4096) {
        size_t cap = c->rcap ? c->rcap * 2 : 8192;
        if (cap > 2 * max + 8192) cap = 2 * max + 8192;
        if (cap <= c->rlen + 1) {
          conn_close(c, "receive buffer full");
          return;
        }
        char *nb = sr__realloc(c->rbuf, cap);
        if (!nb) {
          conn_close(c, "out of memory");
          return;
        }
        c->rbuf = nb;
        c->rcap = cap;
      }
      ssize_t n = recv(io->fd, c->rbuf + c->rlen, c->rcap - c->rlen - 1, 0);
      if (n == 0) {
        conn_deliver(c);
        if (c->rlen) conn_reject(c, "peer closed inside a message");
        else conn_close(c, "peer closed");
        return;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) conn_close(c, strerror(errno));
        return;
      }
      c->rlen += (size_t)n;
      conn_deliver(c);
      if (c->dead || c->ua->closed) return;
    }
  }
}

static sr__conn *conn_new(sr_ua *ua, int fd, const struct sockaddr_storage *a,
                          socklen_t alen, int connecting) {
  sr__conn *c = sr__calloc(1, sizeof *c);
  if (!c) return NULL;
  /* SIP messages are small and request/response paced: Nagle would hold
   * each one back waiting for an ACK. */
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->io.fd = fd;
  c->io.on_ready = conn_ready;
  c->ua = ua;
  c->id = ++ua->next_conn_id;
  c->addr = *a;
  c->addrlen = alen;
  c->connecting = connecting;
  c->want_out = connecting;
  c->last_activity = sr__now_ms();
  sr__timer_init(&c->idle, conn_idle, c);
  if (sr__io_add(ua, &c->io, EPOLLIN | (connecting ? EPOLLOUT : 0)) < 0) {
    sr__free(c);
    return NULL;
  }
  if (conn_index(ua, c) < 0) {
    sr__io_del(ua, &c->io);
    sr__free(c);
    return NULL;
  }
  ua->nconns++;
  sr__timer_start(ua, &c->idle, ua->opt.tcp_idle_timeout_ms);
  return c;
}

/* Out of descriptors (or kernel memory) the connection stays queued and
 * the listener readable: watched, it would wake every loop turn. It is
 * set aside for a while; the peers wait in the backlog meanwhile. */
enum { ACCEPT_PAUSE_MS = 100 };

static void accept_resume(void *arg) {
  sr__listener *l = arg;
  sr__io_mod(l->ua, &l->io, EPOLLIN);
}

static void accept_pause(sr__listener *l, int err) {
  if (!l->starved)
    sr__log(l->ua, SR_LOG_WARNING, "tcp %s:%d: cannot accept (%s: out of file "
            "descriptors or memory); new connections wait", l->host, l->port,
            strerror(err));
  l->starved = 1;
  sr__io_mod(l->ua, &l->io, 0);
  sr__timer_start(l->ua, &l->resume, ACCEPT_PAUSE_MS);
}

static void tcp_accept_ready(sr__io *io, uint32_t events) {
  sr__listener *l = (sr__listener *)io;
  sr_ua *ua = l->ua;
  (void)events;
  for (int i = 0; i < 64; i++) {
    struct sockaddr_storage a;
    socklen_t alen = sizeof a;
    int fd = accept4(io->fd, (struct sockaddr *)&a, &alen,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM)
        accept_pause(l, errno);
      return;
    }
    if (l->starved) {
      sr__log(ua, SR_LOG_INFO, "tcp %s:%d: accepting again", l->host, l->port);
      l->starved = 0;
    }
    if (ua->nconns >= ua->opt.max_tcp_connections) {
      sr__log(ua, SR_LOG_WARNING, "tcp: connection limit (%d) reached; refused",
              ua->opt.max_tcp_connections);
      close(fd);
      continue;
    }
    if (!conn_new(ua, fd, &a, alen, 0)) close(fd);
  }
}

static sr__conn *conn_open(sr_ua *ua, const sr__peer *peer) {
  if (ua->nconns >= ua->opt.max_tcp_connections) return NULL;
  int fd = socket(peer->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return NULL;
  int rc = connect(fd, (const struct sockaddr *)&peer->addr, peer->addrlen);
  if (rc < 0 && errno != EINPROGRESS) {
    close(fd);
    return NULL;
  }
  sr__conn *c = conn_new(ua, fd, &peer->addr, peer->addrlen, rc < 0);
  if (!c) close(fd);
  return c;
}

static int conn_write(sr__conn *c, const char *data, size_t len) {
  if (c->wlen + len > c->wcap) {
    size_t cap = c->wcap ? c->wcap : 4096;
    while (cap < c->wlen + len) cap *= 2;
    char *nb = sr__realloc(c->wbuf, cap);
    if (!nb) return SR_ENOMEM;
    c->wbuf = nb;
    c->wcap = cap;
  }
  memcpy(c->wbuf + c->wlen, data, len);
  c->wlen += len;
  c->last_activity = sr__now_ms();
  if (c->connecting) return 0;
  return conn_flush(c);
}

int sr__transport_send(sr_ua *ua, sr__peer *peer, const char *data,
                       size_t len) {
  if (ua->closed) return SR_ECLOSED;
  if (len > ua->opt.max_message_size) return SR_ETOOBIG;
  int drop;
  run_hook(ua, 1, peer->tp, &peer->addr, &drop, data, len);
  if (ua->closed) return SR_ECLOSED; /* by the hook: nothing is sent */
  if (drop) return 0;
  if (peer->tp == SR_TRANSPORT_TCP) {
    sr__conn *c = conn_find(ua, peer);
    if (!c && peer->sent_by_port) { /* a response whose connection closed */
      sr__addr_set_port(&peer->addr, peer->sent_by_port);
      peer->sent_by_port = 0;
      peer->conn = 0;
      c = conn_find(ua, peer);
    }
    if (!c) c = conn_open(ua, peer);
    if (!c) return SR_ETRANSPORT;
    peer->conn = c->id;
    return conn_write(c, data, len);
  }
  sr__listener *l = sr__transport_listener_for(ua, SR_TRANSPORT_UDP,
                                               peer->addr.ss_family);
  if (!l) return SR_ETRANSPORT;
  ssize_t n = sendto(l->io.fd, data, len, 0,
                     (const struct sockaddr *)&peer->addr, peer->addrlen);
  if (n < 0) {
    sr__log(ua, SR_LOG_WARNING, "udp send: %s", strerror(errno));
    return SR_ETRANSPORT;
  }
  return 0;
}

void sr__transport_track(sr_ua *ua, sr__txn *t) {
  if (t->peer.tp != SR_TRANSPORT_TCP || !t->peer.conn || t->cpprev) return;
  sr__conn *c = conn_by_id(ua, t->peer.conn);
  if (!c) return; /* closed while sending: its failure is reported */
  if ((t->cnext = c->clients)) t->cnext->cpprev = &t->cnext;
  t->cpprev = &c->clients;
  c->clients = t;
}

/* ---------------- listeners ---------------- */

int sr__transport_listen(sr_ua *ua, const char *spec) {
  if (!spec) return SR_EINVAL;
  sr_transport tp;
  if (strncasecmp(spec, "udp:", 4) == 0) tp = SR_TRANSPORT_UDP;
  else if (strncasecmp(spec, "tcp:", 4) == 0) tp = SR_TRANSPORT_TCP;
  else return SR_EINVAL;
  const char *hp = spec + 4, *colon;
  char host[80];
  if (*hp == '[') {
    const char *rb = strchr(hp, ']');
    if (!rb || rb[1] != ':' || (size_t)(rb - hp) >= sizeof host) return SR_EINVAL;
    memcpy(host, hp + 1, (size_t)(rb - hp - 1));
    host[rb - hp - 1] = 0;
    colon = rb + 1;
  } else {
    colon = strrchr(hp, ':');
    if (!colon || (size_t)(colon - hp) >= sizeof host) return SR_EINVAL;
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = 0;
  }
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || end == colon + 1 || port < 0 || port > 65535) return SR_EINVAL;
  if (ua->nlisteners >= (int)(sizeof ua->listeners / sizeof ua->listeners[0]))
    return SR_ELIMIT;
  sr__peer p;
  if (sr__peer_set(&p, tp, host, 1) < 0) return SR_EADDR;
  sr__addr_set_port(&p.addr, (uint16_t)port);
  int fd = socket(p.addr.ss_family,
                  (tp == SR_TRANSPORT_UDP ? SOCK_DGRAM : SOCK_STREAM) |
                      SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return SR_EIO;
  int one = 1;
  /* TCP only: on a UDP socket Linux lets a second bind share the port
   * (and take its datagrams) instead of failing. */
  if (tp == SR_TRANSPORT_TCP)
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (p.addr.ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&p.addr, p.addrlen) < 0 ||
      (tp == SR_TRANSPORT_TCP && listen(fd, 128) < 0)) {
    sr__log(ua, SR_LOG_ERROR, "cannot listen on %s: %s", spec, strerror(errno));
    close(fd);
    return SR_EADDR;
  }
  if (tp == SR_TRANSPORT_UDP) /* absorbs bursts; see udp_check_queue */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &ua->opt.udp_receive_buffer,
               sizeof ua->opt.udp_receive_buffer);
  struct sockaddr_storage bound;
  socklen_t bl = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &bl);
  sr__listener *l = sr__calloc(1, sizeof *l);
  if (!l) {
    close(fd);
    return SR_ENOMEM;
  }
  l->io.fd = fd;
  l->io.on_ready = tp == SR_TRANSPORT_UDP ? udp_ready : tcp_accept_ready;
  l->ua = ua;
  sr__timer_init(&l->resume, accept_resume, l);
  l->tp = tp;
  l->family = bound.ss_family;
  addr_format(&bound, l->host, sizeof l->host, &l->port);
  if (strcmp(l->host, "0.0.0.0") == 0) strcpy(l->host, "127.0.0.1");
  if (strcmp(l->host, "::") == 0) strcpy(l->host, "::1");
  const char *user = ua->identity->username;
  int v6 = l->family == AF_INET6;
  snprintf(l->via_prefix, sizeof l->via_prefix, "SIP/2.0/%s %s%s%s:%d;branch=z9hG4bK",
           tp == SR_TRANSPORT_TCP ? "TCP" : "UDP", v6 ? "[" : "", l->host,
           v6 ? "]" : "", l->port);
  int cn = snprintf(l->contact, sizeof l->contact, "<sip:%s%s%s%s%s:%d%s>",
                    user ? user : "", user ? "@" : "", v6 ? "[" : "", l->host,
                    v6 ? "]" : "", l->port,
                    tp == SR_TRANSPORT_TCP ? ";transport=tcp" : "");
  if (cn < 0 || (size_t)cn >= sizeof l->contact) {
    sr__log(ua, SR_LOG_ERROR, "the UA's user name is too long for a Contact");
    close(fd);
    sr__free(l);
    return SR_EINVAL;
  }
  if (sr__io_add(ua, &l->io, EPOLLIN) < 0) {
    close(fd);
    sr__free(l);
    return SR_EIO;
  }
  ua->listeners[ua->nlisteners++] = l;
  sr__log(ua, SR_LOG_INFO, "listening on %s %s port %d",
          tp == SR_TRANSPORT_UDP ? "udp" : "tcp", l->host, l->port);
  return 0;
}

/* Closes every socket at once; the listeners and connections themselves
 * are freed by sr__transport_reap, at once unless a loop turn is under
 * way (a callback closing the UA returns into code that uses them). */
void sr__transport_close_all(sr_ua *ua) {
  for (int i = 0; i < ua->nlisteners; i++) {
    sr__listener *l = ua->listeners[i];
    sr__timer_stop(ua, &l->resume);
    sr__io_del(ua, &l->io);
    close(l->io.fd);
    l->io.fd = -1;
  }
  ua->nlisteners = 0; /* none found any more; still in the array */
  while (ua->conns) conn_close(ua->conns, NULL);
  sr__transport_reap(ua);
  sr__hash_free(&ua->conns_by_id);
  sr__hash_free(&ua->conns_by_addr);
}

int sr_ua_local_port(sr_ua *ua, sr_transport tp) {
  if (!ua) return SR_EINVAL;
  sr__listener *l = sr__transport_listener_for(ua, tp, 0);
  return l ? l->port : SR_EINVAL;
}

int sr_ua_listener_port(sr_ua *ua, int index) {
  if (!ua || index < 0 || index >= ua->nlisteners) return SR_EINVAL;
  return ua->listeners[index]->port;
}

const char *sr_ua_local_host(sr_ua *ua, sr_transport tp) {
  if (!ua) return NULL;
  sr__listener *l = sr__transport_listener_for(ua, tp, 0);
  return l ? l->host : NULL;
}
