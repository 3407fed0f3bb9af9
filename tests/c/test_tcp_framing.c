/*
 * test_tcp_framing.c — how a TCP stream is cut into messages (RFC 3261
 * §18.3): Content-Length missing or given twice with two values (400 and
 * the connection closed: the stream cannot be framed any more), double
 * CRLF keep-alive pings (RFC 5626 §4.4.1), a deadline for a message begun
 * and not finished (slow senders), and bare-LF line ends taken as UDP
 * takes them.
 */
#include "harness.h"
#include "uas.h"
#include "rawsock.h"

static sr_ua *B;

/* Bob's warnings: a refused or closed stream must be logged. */
static int warnings;
static void count_log(int level, const char *msg, void *ud) {
  if (level <= SR_LOG_WARNING) warnings++;
  if (getenv("SR_TEST_LOG")) t_quiet_log(level, msg, ud);
}
static void counted(sr_ua_options *o) { o->log_fn = count_log; }

static int bob_port(sr_transport tp) { return sr_ua_local_port(B, tp); }

static const char *options_tmpl = T_OPTIONS_TO_BOB;

/* An OPTIONS with `tail` (the last header lines, the blank line, a body). */
static int send_options(t_raw *r, const char *tail) {
  char t[2048];
  snprintf(t, sizeof t, "%s%s", options_tmpl, tail);
  return t_raw_sendf(r, t);
}

/* The next message is a 200 to an OPTIONS, and the stream still works. */
static int answered_200(t_raw *r) {
  const char *m = t_raw_recv(r, 5000);
  if (t_status(m) != 200)
    fprintf(stderr, "  expected 200, got: %.80s\n",
            m ? m : r->eof ? "(closed)" : "(nothing)");
  return t_status(m) == 200;
}

/* Sends `tail` over TCP: expects a 400 with `reason` (or nothing when
 * reason is NULL), then an orderly close, with a warning logged. */
static void refused(const char *what, const char *tail, const char *reason) {
  t_raw r;
  REQUIRE(t_raw_connect(&r, SR_TRANSPORT_TCP, bob_port(SR_TRANSPORT_TCP)) == 0);
  int warned = warnings;
  if (reason) {
    REQUIRE(send_options(&r, tail) == 0);
    const char *m = t_raw_recv(&r, 5000);
    char want[96];
    snprintf(want, sizeof want, "SIP/2.0 400 %s\r\n", reason);
    if (!m || strncmp(m, want, strlen(want)) != 0)
      fprintf(stderr, "  [%s] expected 400 %s, got: %.80s\n", what, reason,
              m ? m : r.eof ? "(closed)" : "(nothing)");
    CHECK(m && strncmp(m, want, strlen(want)) == 0);
  } else {
    REQUIRE(t_raw_sendf(&r, tail) == 0);
  }
  /* Nothing more: no second message cut from the body. */
  CHECK_INT(t_raw_wait_closed(&r, 5000), 1);
  CHECK_INT(r.msglen, 0);
  CHECK(warnings > warned);
  t_raw_close(&r);
}

/* ---------------- Content-Length ---------------- */

/* RFC 3261 §18.3/§20.14: a stream message without Content-Length cannot
 * be framed: taken as bodiless, its body would be read as the next
 * message. A request gets 400, a response is dropped; both close. */
static void test_missing_content_length(void) {
  B = t_ua("bob", 0, 0, counted);
  REQUIRE(B);
  refused("no Content-Length", "\n", "Missing Content-Length");
  refused("no Content-Length, a body", "\n"
          "OPTIONS sip:bob@$UA SIP/2.0\n"
          "Via: SIP/2.0/TCP $ME;branch=z9hG4bKinner\n"
          "From: <sip:raw@127.0.0.1>;tag=r2\nTo: <sip:bob@$UA>\n"
          "Call-ID: inner-$CID\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n",
          "Missing Content-Length");
  refused("response without Content-Length",
          "SIP/2.0 200 OK\n"
          "Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKnosuch\n"
          "From: <sip:bob@127.0.0.1>;tag=x\nTo: <sip:raw@127.0.0.1>;tag=y\n"
          "Call-ID: $CID\nCSeq: 1 OPTIONS\n\n", NULL);
  /* UDP frames by the datagram: there it may be left out. */
  t_raw u;
  REQUIRE(t_raw_connect(&u, SR_TRANSPORT_UDP, bob_port(SR_TRANSPORT_UDP)) == 0);
  CHECK(send_options(&u, "\n") == 0 && answered_200(&u));
  t_raw_close(&u);
  t_free_uas();
}

/* Two values: framing by one and parsing by the other let a body through
 * as a request of its own (smuggling). Refused. Equal values frame alike:
 * the framing takes them, and the parser's answer is as over UDP (libosip2
 * refuses a second Content-Length: 400), the stream still framed. */
static int answered_400(t_raw *r) {
  const char *m = t_raw_recv(r, 5000);
  return t_status(m) == 400;
}

static void test_two_content_lengths(void) {
  static const char *smuggled =
      "OPTIONS sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/TCP $ME;branch=z9hG4bKsmuggled\n"
      "From: <sip:raw@127.0.0.1>;tag=r2\nTo: <sip:bob@$UA>\n"
      "Call-ID: smuggled-$CID\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n";
  static const sr_transport both[] = {SR_TRANSPORT_UDP, SR_TRANSPORT_TCP};
  char tail[1024];
  B = t_ua("bob", 0, 0, counted);
  REQUIRE(B);
  snprintf(tail, sizeof tail, "Content-Length: 0\nContent-Length: 230\n\n%s",
           smuggled);
  refused("two Content-Length", tail, "Conflicting Content-Length");
  snprintf(tail, sizeof tail, "l: 230\nContent-Length: 0\n\n%s", smuggled);
  refused("l and Content-Length", tail, "Conflicting Content-Length");
  for (int i = 0; i < 2; i++) {
    t_raw r;
    REQUIRE(t_raw_connect(&r, both[i], bob_port(both[i])) == 0);
    CHECK(send_options(&r, "Content-Length: 0\nl: 0\n\n") == 0 &&
          answered_400(&r));
    CHECK(send_options(&r, "Content-Length: 0\n\n") == 0 && answered_200(&r));
    t_raw_close(&r);
  }
  t_free_uas();
}

/* ---------------- keep-alive ---------------- */

/* Raw bytes from the UA, up to n, without framing. */
typedef struct rawin {
  t_raw *r;
  char buf[4096];
  size_t len, want;
} rawin;
static rawin in;

static int have_bytes(t_raw *r) {
  while (in.len < in.want) {
    ssize_t n = recv(r->fd, in.buf + in.len, in.want - in.len, 0);
    if (n <= 0) return 0;
    in.len += (size_t)n;
  }
  return 1;
}

/* The next n bytes from the UA, NUL-terminated. */
static const char *read_bytes(t_raw *r, size_t n) {
  in.len = 0;
  in.want = n;
  if (!t_raw_drive(r, have_bytes, 5000)) return NULL;
  in.buf[n] = 0;
  return in.buf;
}

/* A whole answer without a body, then one CRLF. */
static int answer_then_pong(t_raw *r) {
  ssize_t n = recv(r->fd, in.buf + in.len, sizeof in.buf - 1 - in.len, 0);
  if (n > 0) in.len += (size_t)n;
  in.buf[in.len] = 0;
  char *end = strstr(in.buf, "\r\n\r\n");
  return end && strcmp(end, "\r\n\r\n\r\n") == 0;
}

static void run_ua(void) {
  for (int i = 0; i < 10; i++) sr_ua_run_once(B, 0);
}

/* RFC 5626 §4.4.1: a double CRLF between messages is a ping, answered at
 * once with one CRLF, the pong; a lone CRLF before a message is skipped. */
static void test_keepalive_ping(void) {
  B = t_ua("bob", 0, 0, counted);
  REQUIRE(B);
  t_raw r;
  REQUIRE(t_raw_connect(&r, SR_TRANSPORT_TCP, bob_port(SR_TRANSPORT_TCP)) == 0);
  CHECK(t_raw_send(&r, "\r\n\r\n", 4) == 0);
  const char *got = read_bytes(&r, 2);
  CHECK(got && strcmp(got, "\r\n") == 0);
  /* In two parts, maybe read apart. */
  CHECK(t_raw_send(&r, "\r\n", 2) == 0);
  run_ua();
  CHECK(t_raw_send(&r, "\r\n", 2) == 0);
  got = read_bytes(&r, 2);
  CHECK(got && strcmp(got, "\r\n") == 0);
  /* Right after a message, in the same segment: its answer, then the
   * pong. */
  CHECK(send_options(&r, "Content-Length: 0\n\n\r\n\r\n") == 0);
  in.len = 0;
  CHECK(t_raw_drive(&r, answer_then_pong, 5000));
  CHECK(strncmp(in.buf, "SIP/2.0 200 ", 12) == 0);
  t_raw_close(&r);
  /* A stray CRLF before a message is no ping: the answer comes first. */
  REQUIRE(t_raw_connect(&r, SR_TRANSPORT_TCP, bob_port(SR_TRANSPORT_TCP)) == 0);
  CHECK(t_raw_send(&r, "\r\n", 2) == 0);
  CHECK(send_options(&r, "Content-Length: 0\n\n") == 0);
  got = read_bytes(&r, 8);
  CHECK(got && strcmp(got, "SIP/2.0 ") == 0);
  t_raw_close(&r);
  t_free_uas();
}

/* ---------------- slow senders ---------------- */

static void quick_idle(sr_ua_options *o) {
  counted(o);
  o->t1_ms = 10;                 /* a message has 64*T1 = 640 ms */
  o->tcp_idle_timeout_ms = 2000; /* each byte keeps this away */
}

static void short_deadline(sr_ua_options *o) {
  counted(o);
  o->t1_ms = 10; /* 640 ms per message; idle: the default two minutes */
}

static int closed(t_raw *r) {
  char b[64];
  ssize_t n = recv(r->fd, b, sizeof b, 0);
  if (n == 0) r->eof = 1;
  else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) r->eof = 2;
  return r->eof != 0;
}

/* One byte at a time, faster than the idle timeout: the connection is
 * closed when the message is not whole by its deadline. */
static void test_slow_sender(void) {
  static char msg[2048];
  B = t_ua("bob", 0, 0, quick_idle);
  REQUIRE(B);
  t_raw r;
  REQUIRE(t_raw_connect(&r, SR_TRANSPORT_TCP, bob_port(SR_TRANSPORT_TCP)) == 0);
  size_t n = t_raw_fmt(&r, "OPTIONS sip:bob@$UA SIP/2.0\n"
                           "Via: SIP/2.0/TCP $ME;branch=$BR;rport\n"
                           "From: <sip:raw@127.0.0.1>;tag=r1\n"
                           "To: <sip:bob@$UA>\nCall-ID: $CID\n"
                           "CSeq: 1 OPTIONS\nContent-Length: 0\n\n",
                       msg, sizeof msg);
  REQUIRE(n > 0);
  int warned = warnings;
  long end = t_ms() + 10000; /* the message would take ~20 s */
  size_t sent = 0;
  while (!r.eof && sent < n && t_ms() < end) {
    if (send(r.fd, msg + sent, 1, MSG_NOSIGNAL) != 1) break;
    sent++;
    t_raw_drive(&r, closed, 100); /* the pace, far under the idle time */
  }
  CHECK(t_raw_drive(&r, closed, 5000));
  CHECK(sent < n);
  CHECK(warnings > warned);
  t_raw_close(&r);
  t_free_uas();
}

static int never(t_raw *r) {
  (void)r;
  return 0;
}

/* The deadline is for a message begun: one that came whole ends it, and
 * the connection then waits for the next under the idle timeout only. */
static void test_deadline_ends_with_message(void) {
  B = t_ua("bob", 0, 0, short_deadline);
  REQUIRE(B);
  t_raw r;
  REQUIRE(t_raw_connect(&r, SR_TRANSPORT_TCP, bob_port(SR_TRANSPORT_TCP)) == 0);
  REQUIRE(t_raw_sendf(&r, options_tmpl) == 0); /* the headers, not the end */
  run_ua();
  REQUIRE(t_raw_send(&r, "Content-Length: 0\r\n\r\n", 21) == 0);
  CHECK(answered_200(&r));
  t_raw_drive(&r, never, 2000); /* three deadlines, idle */
  CHECK(!r.eof);
  CHECK(send_options(&r, "Content-Length: 0\n\n") == 0 && answered_200(&r));
  t_raw_close(&r);
  t_free_uas();
}

/* ---------------- bare LF ---------------- */

/* Lines ending in LF alone: the parser takes them over UDP, and so does
 * the TCP framing, which found no end of the header block before. */
static void test_bare_lf(void) {
  B = t_ua("bob", 0, 0, counted);
  REQUIRE(B);
  static const sr_transport both[] = {SR_TRANSPORT_UDP, SR_TRANSPORT_TCP};
  for (int i = 0; i < 2; i++) {
    t_raw r;
    char msg[1024];
    REQUIRE(t_raw_connect(&r, both[i], bob_port(both[i])) == 0);
    int n = snprintf(msg, sizeof msg,
                     "OPTIONS sip:bob@127.0.0.1:%d SIP/2.0\n"
                     "Via: SIP/2.0/%s 127.0.0.1:%d;branch=z9hG4bKlf%d;rport\n"
                     "From: <sip:raw@127.0.0.1>;tag=r1\n"
                     "To: <sip:bob@127.0.0.1>\nCall-ID: lf-%d@127.0.0.1\n"
                     "CSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n",
                     r.ua_port, i ? "TCP" : "UDP", r.port, i, i);
    CHECK(t_raw_send(&r, msg, (size_t)n) == 0);
    CHECK(answered_200(&r));
    if (both[i] == SR_TRANSPORT_TCP) /* the stream still frames */
      CHECK(send_options(&r, "Content-Length: 0\n\n") == 0 && answered_200(&r));
    t_raw_close(&r);
  }
  t_free_uas();
}

int main(void) {
  RUN(test_missing_content_length);
  RUN(test_two_content_lengths);
  RUN(test_keepalive_ping);
  RUN(test_slow_sender);
  RUN(test_deadline_ends_with_message);
  RUN(test_bare_lf);
  return DONE();
}
