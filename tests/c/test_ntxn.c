/*
 * test_ntxn.c — the non-INVITE transactions (csrc/ntxn.c) against a raw
 * peer: a BYE nobody answers is retransmitted (the same bytes) and ends
 * at Timer F; a BYE answered 100 then 200 is still retransmitted while
 * Proceeding and ends after Timer K, a repeated 200 absorbed; an OPTIONS
 * over TCP leaves no transaction behind (no Timer J on a reliable
 * transport), over UDP it stays to answer a retransmission.
 */
#include "harness.h"
#include "uas.h"
#include "rawsock.h"

static sr_ua *A;
static sr_session *call;
static t_raw raw;

static void on_invite(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua;
  (void)ud;
  call = sr_session_ref(inv);
  sr_invitation_accept(inv, NULL);
}

static void tweak(sr_ua_options *o) {
  o->t2_ms = 80;
  o->t4_ms = 200;
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

/* The next message from A whose first line starts with `start`. */
static const char *next_msg(const char *start, long ms) {
  return t_raw_next(&raw, start, ms);
}

/* The raw peer calls A; A answers; the peer ACKs. */
static int establish(sr_transport tp) {
  call = NULL;
  if (t_raw_connect(&raw, tp, sr_ua_local_port(A, tp)) < 0) return 0;
  if (t_raw_sendf(&raw,
                  "INVITE sip:a@$UA SIP/2.0\nVia: SIP/2.0/$TP $ME;branch=$BR\n"
                  "From: <sip:raw@$ME>;tag=r1\nTo: <sip:a@$UA>\n"
                  "Call-ID: ntxn-call@127.0.0.1\nCSeq: 1 INVITE\n"
                  "Contact: <sip:raw@$ME$TR>\nMax-Forwards: 70\n"
                  "Content-Length: 0\n\n") < 0)
    return 0;
  const char *ok = next_msg("SIP/2.0 200", 5000);
  if (!ok) return 0;
  char to[256];
  if (!t_header(ok, "To", to, sizeof to)) return 0;
  char ack[1024];
  snprintf(ack, sizeof ack,
           "ACK sip:a@$UA SIP/2.0\nVia: SIP/2.0/$TP $ME;branch=$BR\n"
           "From: <sip:raw@$ME>;tag=r1\nTo: %s\n"
           "Call-ID: ntxn-call@127.0.0.1\nCSeq: 1 ACK\nMax-Forwards: 70\n"
           "Content-Length: 0\n\n", to);
  if (t_raw_sendf(&raw, ack) < 0) return 0;
  return call != NULL;
}

static void setup(int t1_ms) {
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

static void test_unanswered_bye(void) {
  setup(20);
  REQUIRE(establish(SR_TRANSPORT_UDP));
  CHECK_INT(sr_session_bye(call), 0);
  const char *m = next_msg("BYE ", 5000);
  REQUIRE(m);
  char first[4096];
  snprintf(first, sizeof first, "%s", m);
  /* Timer E: the same bytes again (same branch), T1, 2×T1, then T2 apart,
   * until Timer F (64×T1) ends the transaction. */
  int again = 0, same = 1;
  while ((m = next_msg("BYE ", 5000))) {
    again++;
    same &= strcmp(m, first) == 0;
    if (again == 3) break;
  }
  CHECK_INT(again, 3);
  CHECK(same);
  while (next_msg("BYE ", 2000)) again++;
  /* 20, 40 and then 80 ms apart within 64×20 ms: at most 17 resends */
  CHECK(again <= 17);
  CHECK(t_raw_drive(&raw, no_transactions, 5000));
  teardown();
}

static void test_bye_proceeding_then_ok(void) {
  setup(20);
  REQUIRE(establish(SR_TRANSPORT_UDP));
  CHECK_INT(sr_session_bye(call), 0);
  const char *m = next_msg("BYE ", 5000);
  REQUIRE(m);
  char bye[4096], out[4096];
  snprintf(bye, sizeof bye, "%s", m);
  size_t n = t_build_response(bye, 100, "Trying", NULL, NULL, NULL, out,
                              sizeof out);
  REQUIRE(n && t_raw_send(&raw, out, n) == 0);
  /* Proceeding: still retransmitted, now T2 apart. */
  m = next_msg("BYE ", 5000);
  CHECK(m && strcmp(m, bye) == 0);
  n = t_build_response(bye, 200, "OK", NULL, NULL, NULL, out, sizeof out);
  REQUIRE(n && t_raw_send(&raw, out, n) == 0);
  REQUIRE(t_raw_send(&raw, out, n) == 0); /* absorbed, or a stray */
  /* Completed until Timer K (T4), then gone. */
  CHECK(t_raw_drive(&raw, no_transactions, 5000));
  CHECK_INT(sr_session_get_state(call), SR_SESSION_TERMINATED);
  teardown();
}

static int options(sr_transport tp) {
  if (t_raw_connect(&raw, tp, sr_ua_local_port(A, tp)) < 0) return -1;
  if (t_raw_sendf(&raw,
                  "OPTIONS sip:a@$UA SIP/2.0\nVia: SIP/2.0/$TP $ME;branch=$BR\n"
                  "From: <sip:raw@$ME>;tag=o1\nTo: <sip:a@$UA>\n"
                  "Call-ID: $CID\nCSeq: 1 OPTIONS\nMax-Forwards: 70\n"
                  "Content-Length: 0\n\n") < 0)
    return -1;
  const char *m = t_raw_recv(&raw, 5000);
  return m ? t_status(m) : -1;
}

static void test_options_tcp_leaves_nothing(void) {
  setup(20);
  CHECK_INT(options(SR_TRANSPORT_TCP), 200);
  /* The answer went out on the same turn that ended the transaction. */
  CHECK_INT(transactions(), 0);
  teardown();
}

static void test_options_udp_kept_for_timer_j(void) {
  setup(500);
  CHECK_INT(options(SR_TRANSPORT_UDP), 200);
  CHECK_INT(transactions(), 1); /* until Timer J, 64×T1 = 32 s */
  teardown();
}

static void test_options_udp_timer_j_ends(void) {
  setup(20);
  CHECK_INT(options(SR_TRANSPORT_UDP), 200);
  CHECK(t_raw_drive(&raw, no_transactions, 10000));
  teardown();
}

int main(void) {
  (void)t_drive; /* these tests drive through the raw peer */
  (void)t_target;
  RUN(test_unanswered_bye);
  RUN(test_bye_proceeding_then_ok);
  RUN(test_options_tcp_leaves_nothing);
  RUN(test_options_udp_kept_for_timer_j);
  RUN(test_options_udp_timer_j_ends);
  return DONE();
}
