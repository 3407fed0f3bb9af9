/*
 * test_tcp_conns.c — many TCP connections at once: each message goes out
 * on the right one (found by id for an answer, by address for a new
 * request), closed ones are freed and forgotten, and a lost connection
 * fails at once the requests waiting on it, and only those; a response
 * whose request's connection closed goes to the Via's sent-by port.
 */
#include <sys/resource.h>

#include "harness.h"
#include "uas.h"
#include "rawsock.h"

static sr_ua *A;

static void long_t1(sr_ua_options *o) {
  o->t1_ms = 1000; /* Timer B at 64 s: a 503 inside the drive is the loss */
}

static int connections(void) {
  sr_stats st;
  sr_ua_get_stats(A, &st);
  return st.connections;
}
static int connections_are(void *want) { return connections() == *(int *)want; }

/* ---------------- answers on their own connection ---------------- */

#define NPEERS 64
static t_raw peers[NPEERS];

static int send_options(t_raw *r) {
  return t_raw_sendf(r, "OPTIONS sip:a@$UA SIP/2.0\nVia: SIP/2.0/TCP $ME;branch=$BR\n"
                        "From: <sip:raw@$ME>;tag=o$BR\nTo: <sip:a@$UA>\n"
                        "Call-ID: $CID\nCSeq: 1 OPTIONS\nMax-Forwards: 70\n"
                        "Content-Length: 0\n\n");
}

/* The 200 to r's latest OPTIONS, on r's own connection. */
static int answered(t_raw *r) {
  const char *m = t_raw_next(r, "SIP/2.0 ", 5000);
  char want[64], cid[128];
  snprintf(want, sizeof want, "raw-%d-%u@127.0.0.1", r->port, r->seq);
  return m && t_status(m) == 200 && t_header(m, "Call-ID", cid, sizeof cid) &&
         strcmp(cid, want) == 0;
}

static void test_each_answer_on_its_connection(void) {
  A = t_ua("a", 0, 0, NULL);
  REQUIRE(A);
  int port = sr_ua_local_port(A, SR_TRANSPORT_TCP);
  for (int i = 0; i < NPEERS; i++) {
    REQUIRE(t_raw_connect(&peers[i], SR_TRANSPORT_TCP, port) == 0);
  }
  int all = NPEERS, half = NPEERS / 2;
  CHECK(t_drive(connections_are, &all, 5000));
  /* All ask before any answer is read: A holds 64 connections at once. */
  for (int i = 0; i < NPEERS; i++) REQUIRE(send_options(&peers[i]) == 0);
  int ok = 0;
  for (int i = 0; i < NPEERS; i++) ok += answered(&peers[i]);
  CHECK_INT(ok, NPEERS);
  /* Every other peer leaves; A frees those connections, and the others
   * still get their answers. */
  for (int i = 0; i < NPEERS; i += 2) {
    close(peers[i].fd);
    peers[i].fd = -1;
  }
  CHECK(t_drive(connections_are, &half, 5000));
  ok = 0;
  for (int i = 1; i < NPEERS; i += 2)
    ok += send_options(&peers[i]) == 0 && answered(&peers[i]);
  CHECK_INT(ok, half);
  for (int i = 0; i < NPEERS; i++) t_raw_close(&peers[i]);
  int zero = 0;
  CHECK(t_drive(connections_are, &zero, 5000));
  t_free_uas();
}

/* ---------------- requests A sends ---------------- */

typedef struct call {
  sr_session *s;
  int ringing; /* a provisional response came */
  int code;    /* the final response, 0 while waiting */
} call;

static void on_response(sr_session *s, int code, const char *reason,
                        void *ud) {
  (void)s;
  (void)reason;
  if (code >= 200) ((call *)ud)->code = code;
  else ((call *)ud)->ringing = 1;
}

static int rang(void *ctx) { return ((call *)ctx)->ringing; }

/* A calls the raw listener r over TCP. */
static int invite(call *c, t_raw *r) {
  char target[128];
  snprintf(target, sizeof target, "sip:raw@127.0.0.1:%d;transport=tcp", r->port);
  c->ringing = c->code = 0;
  if (sr_ua_make_inviter(A, target, NULL, &c->s) != 0) return -1;
  sr_session_delegate d = {0};
  d.on_response = on_response;
  sr_session_set_delegate(c->s, &d, c);
  return sr_inviter_invite(c->s);
}

static int both_failed(void *ctx) {
  call *c = ctx;
  return c[0].code && c[1].code;
}

static void test_lost_connection_fails_its_requests_only(void) {
  A = t_ua("a", 0, 0, long_t1);
  REQUIRE(A);
  t_raw one, two;
  REQUIRE(t_raw_listen(&one, SR_TRANSPORT_TCP) == 0);
  REQUIRE(t_raw_listen(&two, SR_TRANSPORT_TCP) == 0);
  call c[3] = {{0}};
  /* Two calls to one peer share a connection (found by its address: the
   * raw peer accepts only one); the third has its own. */
  REQUIRE(invite(&c[0], &one) == 0);
  CHECK(t_raw_next(&one, "INVITE ", 5000) != NULL);
  REQUIRE(invite(&c[1], &one) == 0);
  CHECK(t_raw_next(&one, "INVITE ", 5000) != NULL);
  REQUIRE(invite(&c[2], &two) == 0);
  const char *m = t_raw_next(&two, "INVITE ", 5000);
  REQUIRE(m != NULL);
  char inv[4096], ringing[4096];
  snprintf(inv, sizeof inv, "%s", m);
  CHECK_INT(connections(), 2);
  /* The first peer goes away: its two calls fail now, with 503. */
  close(one.fd);
  one.fd = -1;
  CHECK(t_drive(both_failed, c, 5000));
  CHECK_INT(c[0].code, 503);
  CHECK_INT(c[1].code, 503);
  CHECK_INT(c[2].code, 0);
  CHECK_INT(sr_session_get_state(c[2].s), SR_SESSION_ESTABLISHING);
  CHECK_INT(connections(), 1);
  /* The other call goes on on its own connection: its 180 comes in and
   * its CANCEL goes out there. */
  size_t n = t_build_response(inv, 180, "Ringing", "two1", NULL, NULL,
                              ringing, sizeof ringing);
  REQUIRE(n && t_raw_send(&two, ringing, n) == 0);
  CHECK(t_drive(rang, &c[2], 5000));
  CHECK(sr_session_bye(c[2].s) == 0);
  CHECK(t_raw_next(&two, "CANCEL ", 5000) != NULL);
  for (int i = 0; i < 3; i++) sr_session_unref(c[i].s);
  t_raw_close(&one);
  t_raw_close(&two);
  t_free_uas();
}

/* ---------------- out of file descriptors ---------------- */

static int starved_logged;
static void count_starved(int level, const char *msg, void *ud) {
  (void)ud;
  if (level == SR_LOG_WARNING && strstr(msg, "file descriptors")) starved_logged++;
}
static void starved_log(sr_ua_options *o) { o->log_fn = count_starved; }

/* With no descriptor left, accept() fails and the connection stays
 * queued: a listener still watched would wake every loop turn (a spin).
 * It is set aside for a while instead, said once, and accepting resumes
 * when descriptors are back. */
static void test_out_of_descriptors_pauses_accepting(void) {
  starved_logged = 0;
  A = t_ua("a", 0, 0, starved_log);
  REQUIRE(A);
  int port = sr_ua_local_port(A, SR_TRANSPORT_TCP);
  t_raw c[3];
  for (int i = 0; i < 3; i++) REQUIRE(t_raw_connect(&c[i], SR_TRANSPORT_TCP, port) == 0);
  struct rlimit old, none;
  REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
  int lowest = dup(0); /* every descriptor below it is in use */
  REQUIRE(lowest >= 0);
  close(lowest);
  none = old;
  none.rlim_cur = (rlim_t)lowest;
  REQUIRE(setrlimit(RLIMIT_NOFILE, &none) == 0);
  int busy_turns = 0;
  for (int i = 0; i < 20; i++) busy_turns += sr_ua_run_once(A, 0) > 0;
  REQUIRE(setrlimit(RLIMIT_NOFILE, &old) == 0);
  CHECK(busy_turns <= 1);
  CHECK_INT(starved_logged, 1);
  CHECK_INT(connections(), 0);
  /* Descriptors are back: a new peer is served once accepting resumes.
   * (The queued ones are too; under valgrind, whose descriptor limit is
   * its own, they are accepted and closed by it instead.) */
  t_raw d;
  REQUIRE(t_raw_connect(&d, SR_TRANSPORT_TCP, port) == 0);
  CHECK(send_options(&d) == 0 && answered(&d));
  t_raw_close(&d);
  for (int i = 0; i < 3; i++) t_raw_close(&c[i]);
  t_free_uas();
}

/* ---------------- a response after its connection closed ---------------- */

static sr_session *held;
static void hold_invite(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua; (void)ud;
  held = sr_session_ref(inv);
}
static int has_held(void *ud) { (void)ud; return held != NULL; }

/* RFC 3261 §18.2.2: a response goes on the request's connection while it
 * is open; once the caller closed it, on a new connection to the source
 * address and the Via's sent-by port (where the caller listens), not to
 * the closed connection's ephemeral port. */
static void test_response_after_close_goes_to_sent_by(void) {
  A = t_ua("a", 0, 0, NULL);
  REQUIRE(A);
  sr_ua_delegate d = {0};
  d.on_invite = hold_invite;
  sr_ua_set_delegate(A, &d, NULL);
  t_raw home, call;
  REQUIRE(t_raw_listen(&home, SR_TRANSPORT_TCP) == 0);
  REQUIRE(t_raw_connect(&call, SR_TRANSPORT_TCP,
                        sr_ua_local_port(A, SR_TRANSPORT_TCP)) == 0);
  char tmpl[1024];
  snprintf(tmpl, sizeof tmpl,
           "INVITE sip:a@$UA;transport=tcp SIP/2.0\n"
           "Via: SIP/2.0/TCP 127.0.0.1:%d;branch=$BR\n"
           "From: <sip:raw@127.0.0.1:%d>;tag=f$BR\nTo: <sip:a@$UA>\n"
           "Call-ID: $CID\nCSeq: 1 INVITE\nMax-Forwards: 70\n"
           "Contact: <sip:raw@127.0.0.1:%d;transport=tcp>\n"
           "Content-Length: 0\n\n",
           home.port, home.port, home.port);
  REQUIRE(t_raw_sendf(&call, tmpl) == 0);
  CHECK(t_drive(has_held, NULL, 5000));
  const char *m = t_raw_recv(&call, 5000);
  CHECK(t_status(m) == 100); /* on the request's own connection */
  close(call.fd);
  call.fd = -1;
  int none = 0;
  CHECK(t_drive(connections_are, &none, 5000));
  sr_response_options o = {0};
  o.status_code = 486;
  CHECK_INT(sr_invitation_reject(held, &o), 0);
  m = t_raw_recv(&home, 5000); /* accepted from the sent-by listener */
  CHECK(t_status(m) == 486);
  sr_session_unref(held);
  held = NULL;
  t_raw_close(&home);
  t_raw_close(&call);
  t_free_uas();
}

int main(void) {
  RUN(test_each_answer_on_its_connection);
  RUN(test_lost_connection_fails_its_requests_only);
  RUN(test_out_of_descriptors_pauses_accepting);
  RUN(test_response_after_close_goes_to_sent_by);
  return DONE();
}
