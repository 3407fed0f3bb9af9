/*
 * test_itxn.c — the INVITE transactions (csrc/itxn.c) against a raw peer.
 * Client: an unanswered INVITE is retransmitted over UDP (Timer A, the
 * same bytes), never over TCP, and fails with 408 at Timer B; a 486 is
 * ACKed (RFC 3261 §17.1.1.3) and a repeated 486 gets the same ACK.
 * Server: a repeated INVITE gets the last provisional again; a 486 is
 * retransmitted (Timer G) until the ACK, then nothing more; without an
 * ACK, Timer H ends the transaction; over TCP the ACK ends it at once.
 */
#include "harness.h"
#include "uas.h"
#include "rawsock.h"

static sr_ua *A;
static sr_session *call;
static t_raw raw;
static int last_code, t4_ms, timer_h_logged;

static void on_response(sr_session *s, int code, const char *reason,
                        void *ud) {
  (void)s;
  (void)reason;
  (void)ud;
  last_code = code;
}

static void on_invite(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua;
  (void)ud;
  call = sr_session_ref(inv);
  sr_invitation_progress(inv, NULL); /* 180 at once: no 100 Trying */
}

static void on_log(int level, const char *msg, void *ud) {
  (void)ud;
  if (strstr(msg, "no ACK")) timer_h_logged++;
  else if (level <= SR_LOG_ERROR) fprintf(stderr, "  [log %d] %s\n", level, msg);
}

static void tweak(sr_ua_options *o) {
  o->t2_ms = 400;
  o->t4_ms = t4_ms;
  o->log_fn = on_log;
}

static int transactions(void) {
  sr_stats st;
  sr_ua_get_stats(A, &st);
  return st.transactions;
}

static int no_transactions(t_raw *r) {
  (void)r;
  return transactions() == 0;
}

static int got_code(t_raw *r) {
  (void)r;
  return last_code != 0;
}

/* The next message from A whose first line starts with `start`. */
static const char *next_msg(const char *start, long ms) {
  return t_raw_next(&raw, start, ms);
}

static void setup(int t1_ms, int t4) {
  last_code = timer_h_logged = 0;
  call = NULL;
  t4_ms = t4;
  A = t_ua("a", 0, t1_ms, tweak);
  REQUIRE(A);
  sr_ua_delegate d = {0};
  d.on_invite = on_invite;
  sr_ua_set_delegate(A, &d, NULL);
}

static void teardown(void) {
  sr_session_unref(call);
  call = NULL;
  t_raw_close(&raw);
  t_free_uas();
}

/* ---------------- client ---------------- */

/* A calls the raw peer (listening on tp); returns the INVITE. */
static const char *call_raw(sr_transport tp, const char *extra) {
  if (t_raw_listen(&raw, tp) < 0) return NULL;
  char target[128];
  snprintf(target, sizeof target, "sip:raw@127.0.0.1:%d%s", raw.port,
           tp == SR_TRANSPORT_TCP ? ";transport=tcp" : "");
  sr_inviter_options o;
  sr_inviter_options_init(&o);
  o.extra_headers = extra;
  if (sr_ua_make_inviter(A, target, &o, &call) != 0) return NULL;
  sr_session_delegate d = {0};
  d.on_response = on_response;
  sr_session_set_delegate(call, &d, NULL);
  if (sr_inviter_invite(call) != 0) return NULL;
  return next_msg("INVITE ", 5000);
}

/* Counts INVITEs from A (those equal to `first_invite` in `same`) until
 * the session learns its final code. */
static char first_invite[8192];
static int invites, same_invites;
static int count_invites_until_code(t_raw *r) {
  while (t_raw_poll_msg(r) && r->msglen)
    if (strncmp(r->msg, "INVITE ", 7) == 0) {
      invites++;
      same_invites += strcmp(r->msg, first_invite) == 0;
    }
  return last_code != 0;
}

static void test_invite_timer_a_then_b_udp(void) {
  setup(20, 200);
  const char *m = call_raw(SR_TRANSPORT_UDP, NULL);
  REQUIRE(m);
  snprintf(first_invite, sizeof first_invite, "%s", m);
  invites = same_invites = 0;
  /* Timer A: the same bytes at T1, 2×T1, 4×T1... until Timer B (64×T1):
   * 6 retransmissions (at 20, 60, 140, 300, 620, 1260 ms). */
  CHECK(t_raw_drive(&raw, count_invites_until_code, 10000));
  CHECK_INT(last_code, 408);
  CHECK(invites >= 3);
  CHECK(invites <= 6);
  CHECK_INT(same_invites, invites);
  CHECK_INT(sr_session_get_state(call), SR_SESSION_TERMINATED);
  CHECK(t_raw_drive(&raw, no_transactions, 5000));
  teardown();
}

static void test_invite_tcp_no_retransmission(void) {
  setup(20, 200);
  REQUIRE(call_raw(SR_TRANSPORT_TCP, NULL));
  invites = 0;
  /* No Timer A on a reliable transport; Timer B still ends it. */
  CHECK(t_raw_drive(&raw, count_invites_until_code, 10000));
  CHECK_INT(last_code, 408);
  CHECK_INT(invites, 0);
  CHECK(t_raw_drive(&raw, no_transactions, 5000));
  teardown();
}

static void test_ack_for_486(void) {
  setup(20, 200);
  const char *m = call_raw(SR_TRANSPORT_UDP, "Route: <sip:edge.invalid;lr>");
  REQUIRE(m);
  char inv[8192], out[4096], ack[4096], v[1024], w[1024];
  snprintf(inv, sizeof inv, "%s", m);
  size_t n = t_build_response(inv, 486, "Busy Here", "busy1", NULL, NULL, out,
                              sizeof out);
  REQUIRE(n && t_raw_send(&raw, out, n) == 0);
  m = next_msg("ACK ", 5000);
  REQUIRE(m);
  snprintf(ack, sizeof ack, "%s", m);
  CHECK(t_raw_drive(&raw, got_code, 5000));
  CHECK_INT(last_code, 486);
  /* §17.1.1.3: the INVITE's Request-URI, Call-ID, From, top Via, Route
   * and CSeq number; the response's To. */
  const char *sp = strchr(inv, ' '), *sp2 = sp ? strchr(sp + 1, ' ') : NULL;
  REQUIRE(sp2);
  CHECK(strncmp(ack + 4, sp + 1, (size_t)(sp2 - sp)) == 0);
  const char *same[] = {"Call-ID", "From", "Via", "Route"};
  for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
    CHECK(t_header(inv, same[i], v, sizeof v) != NULL);
    CHECK(t_header(ack, same[i], w, sizeof w) != NULL);
    CHECK_STR(w, v);
  }
  CHECK(t_header_n(ack, "Via", "v", 1, w, sizeof w) == NULL); /* top only */
  CHECK(t_header(out, "To", v, sizeof v) && strstr(v, "tag=busy1"));
  CHECK(t_header(ack, "To", w, sizeof w) != NULL);
  CHECK_STR(w, v);
  CHECK(t_header(ack, "CSeq", w, sizeof w) != NULL);
  CHECK_STR(w, "1 ACK");
  /* A retransmitted 486 gets the same ACK, and is not passed up again. */
  last_code = 0;
  REQUIRE(t_raw_send(&raw, out, n) == 0);
  m = next_msg("ACK ", 5000);
  CHECK(m && strcmp(m, ack) == 0);
  CHECK_INT(last_code, 0);
  CHECK_INT(transactions(), 1); /* Completed until Timer D */
  CHECK(t_raw_drive(&raw, no_transactions, 5000));
  teardown();
}

/* ---------------- server ---------------- */

static char invite_bytes[4096];
static size_t invite_len;

/* The raw peer calls A; returns A's first 180. */
static const char *invite_a(sr_transport tp) {
  if (t_raw_connect(&raw, tp, sr_ua_local_port(A, tp)) < 0) return NULL;
  invite_len = t_raw_fmt(&raw,
                         "INVITE sip:a@$UA SIP/2.0\nVia: SIP/2.0/$TP $ME;branch=$BR\n"
                         "From: <sip:raw@$ME>;tag=r1\nTo: <sip:a@$UA>\n"
                         "Call-ID: $CID\nCSeq: 1 INVITE\n"
                         "Contact: <sip:raw@$ME$TR>\nMax-Forwards: 70\n"
                         "Content-Length: 0\n\n",
                         invite_bytes, sizeof invite_bytes);
  if (!invite_len || t_raw_send(&raw, invite_bytes, invite_len) < 0)
    return NULL;
  return next_msg("SIP/2.0 180", 5000);
}

/* Copies the next message from A starting with `start` into out. */
static const char *keep_next(const char *start, char *out, size_t n) {
  const char *m = next_msg(start, 5000);
  if (!m) return NULL;
  snprintf(out, n, "%s", m);
  return out;
}

static int send_ack(const char *final) {
  char to[256], ack[2048];
  char via[512], cid[256];
  if (!t_header(final, "To", to, sizeof to) ||
      !t_header(invite_bytes, "Via", via, sizeof via) ||
      !t_header(invite_bytes, "Call-ID", cid, sizeof cid))
    return -1;
  int n = snprintf(ack, sizeof ack,
                   "ACK sip:a@127.0.0.1:%d SIP/2.0\r\nVia: %s\r\n"
                   "From: <sip:raw@127.0.0.1:%d>;tag=r1\r\nTo: %s\r\n"
                   "Call-ID: %s\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n"
                   "Content-Length: 0\r\n\r\n",
                   raw.ua_port, via, raw.port, to, cid);
  return t_raw_send(&raw, ack, (size_t)n);
}

static int reject_486(void) {
  sr_response_options o;
  sr_response_options_init(&o);
  o.status_code = 486;
  return sr_invitation_reject(call, &o);
}

static void test_repeated_invite_gets_last_provisional(void) {
  setup(50, 200);
  const char *m = invite_a(SR_TRANSPORT_UDP);
  REQUIRE(m && call);
  char ringing[4096];
  snprintf(ringing, sizeof ringing, "%s", m);
  REQUIRE(t_raw_send(&raw, invite_bytes, invite_len) == 0);
  m = t_raw_recv(&raw, 5000);
  CHECK(m && strcmp(m, ringing) == 0);
  CHECK_INT(transactions(), 1); /* the same transaction, no new one */
  teardown();
}

static void test_486_retransmitted_until_ack(void) {
  setup(50, 100);
  REQUIRE(invite_a(SR_TRANSPORT_UDP) && call);
  CHECK_INT(reject_486(), 0);
  char busy[4096];
  REQUIRE(keep_next("SIP/2.0 486", busy, sizeof busy));
  const char *m;
  /* Timer G: the same bytes at T1, then 2×T1 later (T2 is 400 ms). */
  for (int i = 0; i < 2; i++) {
    m = next_msg("SIP/2.0 486", 5000);
    CHECK(m && strcmp(m, busy) == 0);
  }
  CHECK(timer_h_logged == 0);
  REQUIRE(send_ack(busy) == 0);
  /* Confirmed: the next Timer G (200 ms away) never fires, a repeated
   * INVITE is absorbed, and Timer I (T4) ends it. */
  REQUIRE(t_raw_send(&raw, invite_bytes, invite_len) == 0);
  int more = 0;
  long end = t_ms() + 5000;
  while (transactions() > 0 && t_ms() < end)
    if (t_raw_recv(&raw, 50)) more++;
  CHECK_INT(transactions(), 0);
  CHECK_INT(more, 0);
  CHECK_INT(timer_h_logged, 0);
  teardown();
}

/* A 2xx ends the server transaction at once; the INVITE sent again (its
 * 2xx lost) is answered by the session with the same 2xx bytes, until
 * the ACK comes. */
static void test_invite_after_2xx_gets_same_2xx(void) {
  setup(10000, 100); /* T1 10 s: no 2xx retransmission by timer meanwhile */
  REQUIRE(invite_a(SR_TRANSPORT_UDP) && call);
  CHECK_INT(sr_invitation_accept(call, NULL), 0);
  char ok[4096];
  REQUIRE(keep_next("SIP/2.0 200", ok, sizeof ok));
  REQUIRE(t_raw_send(&raw, invite_bytes, invite_len) == 0);
  const char *m = next_msg("SIP/2.0 200", 5000);
  CHECK(m && strcmp(m, ok) == 0);
  REQUIRE(send_ack(ok) == 0);
  CHECK(t_raw_drive(&raw, no_transactions, 5000));
  teardown();
}

static void test_timer_h_without_ack(void) {
  setup(20, 100);
  REQUIRE(invite_a(SR_TRANSPORT_UDP) && call);
  CHECK_INT(reject_486(), 0);
  int finals = 0;
  long end = t_ms() + 10000;
  while (transactions() > 0 && t_ms() < end) {
    const char *m = t_raw_recv(&raw, 50);
    if (m && t_status(m) == 486) finals++;
  }
  CHECK_INT(transactions(), 0);
  /* 64×T1 = 1280 ms of Timer G (20, 40, 80, 160, 320, 400... apart). */
  CHECK(finals >= 4);
  CHECK(finals <= 8);
  CHECK_INT(timer_h_logged, 1);
  teardown();
}

static void test_tcp_ack_ends_at_once(void) {
  setup(50, 60000); /* Timer I would be a minute on UDP */
  REQUIRE(invite_a(SR_TRANSPORT_TCP) && call);
  CHECK_INT(reject_486(), 0);
  char busy[4096];
  REQUIRE(keep_next("SIP/2.0 486", busy, sizeof busy));
  REQUIRE(send_ack(busy) == 0);
  CHECK(t_raw_drive(&raw, no_transactions, 2000));
  teardown();
}

int main(void) {
  (void)t_drive; /* these tests drive through the raw peer */
  (void)t_target;
  RUN(test_invite_timer_a_then_b_udp);
  RUN(test_invite_tcp_no_retransmission);
  RUN(test_ack_for_486);
  RUN(test_repeated_invite_gets_last_provisional);
  RUN(test_486_retransmitted_until_ack);
  RUN(test_invite_after_2xx_gets_same_2xx);
  RUN(test_timer_h_without_ack);
  RUN(test_tcp_ack_ends_at_once);
  return DONE();
}
