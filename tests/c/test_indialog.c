/*
 * test_indialog.c — requests inside a call, from a raw peer that called
 * Bob: the 2xx to a re-INVITE retransmitted until its ACK (RFC 3261
 * §13.3.1.4) and a BYE when none comes (UDP and TCP), our BYE held
 * until that ACK (§15), a retransmitted
 * re-INVITE answered with that 2xx (RFC 6026 §7.1), the re-INVITE's
 * Contact as the new remote target (§12.2.2), 420 with Unsupported for a
 * Require we do not support (§8.2.2.3), in-dialog OPTIONS and UPDATE, a
 * BYE in an early dialog (§15: 200, and 487 to the INVITE).
 */
#include "internal.h"
#undef REQUIRE
#include "harness.h"
#include "uas.h"
#include "rawsock.h"

static sr_ua *B;
static sr_session *bob_s;
static t_raw raw;
static char totag[64];
static int cid; /* one Call-ID per call */
static const char *cid_host = "127.0.0.1"; /* its part after '@' */
static char buf[T_RAW_MAX];

static void setup(sr_transport tp) {
  B = t_ua("bob", 0, 0, NULL);
  sr_ua_delegate d = {0};
  d.on_invite = t_accept_keep;
  sr_ua_set_delegate(B, &d, &bob_s);
  CHECK(t_raw_connect(&raw, tp, sr_ua_local_port(B, tp)) == 0);
  cid++;
  totag[0] = 0;
}

static void teardown(void) {
  sr_session_unref(bob_s);
  bob_s = NULL;
  t_raw_close(&raw);
  t_free_uas();
}

/* A request from the raw peer in its call with Bob (or out of any call
 * when totag is empty): `extra` header lines, then body (may be ""). Its
 * bytes stay in buf for sending again. */
static size_t request(const char *method, int cseq, const char *branch,
                      const char *extra, const char *body) {
  char tmpl[4096];
  snprintf(tmpl, sizeof tmpl,
           "%s sip:bob@$UA$TR SIP/2.0\n"
           "Via: SIP/2.0/$TP $ME;branch=z9hG4bK%s;rport\n"
           "From: <sip:raw@127.0.0.1>;tag=r%d\n"
           "To: <sip:bob@$UA>%s%s\n"
           "Call-ID: indialog-%d@%s\n"
           "CSeq: %d %s\n"
           "Max-Forwards: 70\n"
           "%s%s"
           "Content-Length: $CL\n\n%s",
           method, branch, cid, totag[0] ? ";tag=" : "", totag, cid, cid_host, cseq,
           method, extra, body[0] ? "Content-Type: application/sdp\n" : "",
           body);
  size_t n = t_raw_fmt(&raw, tmpl, buf, sizeof buf);
  CHECK(n > 0 && t_raw_send(&raw, buf, n) == 0);
  return n;
}

static const char *sdp =
    "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"
    "m=audio 4000 RTP/AVP 0\n";

/* What the raw peer saw while waiting: responses per code, Bob's BYE. */
static int n200, n500, bye_seen;
static char bye_msg[T_RAW_MAX + 1];

/* The next response whose CSeq is `cseq` ("2 INVITE"); Bob's BYE, and
 * 200s and 500s to anything, are noted on the way. */
static const char *response(const char *cseq, long limit_ms) {
  long end = t_ms() + limit_ms;
  const char *m;
  char v[128];
  while ((m = t_raw_recv(&raw, end - t_ms()))) {
    if (strncmp(m, "BYE ", 4) == 0) {
      bye_seen++;
      memcpy(bye_msg, m, raw.msglen + 1);
      continue;
    }
    n200 += t_status(m) == 200;
    n500 += t_status(m) == 500;
    if (t_status(m) && t_header(m, "CSeq", v, sizeof v) && !strcmp(v, cseq))
      return m;
  }
  return NULL;
}

/* The ACK for a 2xx is a transaction of its own; for a non-2xx it is
 * the INVITE's (same branch). */
static void ack(int cseq) { request("ACK", cseq, "ack", "", ""); }

/* The raw peer calls Bob, who answers; the ACK goes back. */
static void call(void) {
  totag[0] = 0;
  request("INVITE", 1, "inv1", "Contact: <sip:raw@$ME$TR>\n", sdp);
  const char *m = response("1 INVITE", 5000);
  char to[256];
  CHECK(t_status(m) == 200 && t_header(m, "To", to, sizeof to));
  const char *tag = to[0] ? strstr(to, ";tag=") : NULL;
  CHECK(tag != NULL);
  if (tag) snprintf(totag, sizeof totag, "%s", tag + 5);
  ack(1);
  CHECK(bob_s != NULL);
}

static int bob_established(void *ud) {
  (void)ud;
  return sr_session_get_state(bob_s) == SR_SESSION_ESTABLISHED;
}

static void test_reinvite_2xx_until_ack(void) {
  setup(SR_TRANSPORT_UDP);
  call();
  CHECK(t_drive(bob_established, NULL, 5000));
  size_t n = request("INVITE", 2, "reinv", "Contact: <sip:raw@$ME>\n", sdp);
  char first[T_RAW_MAX + 1];
  const char *m = response("2 INVITE", 5000);
  CHECK(t_status(m) == 200);
  if (m) memcpy(first, m, raw.msglen + 1);
  /* Not acknowledged: the same 2xx again (T1 is 50 ms). */
  m = response("2 INVITE", 5000);
  CHECK(t_status(m) == 200 && m && !strcmp(m, first));
  /* The re-INVITE retransmitted (same branch): its 2xx, not a 500. */
  CHECK(t_raw_send(&raw, buf, n) == 0);
  m = response("2 INVITE", 5000);
  CHECK(t_status(m) == 200);
  ack(2);
  /* In order on loopback: everything before OPTIONS' answer was a 200. */
  request("OPTIONS", 3, "opt3", "", "");
  CHECK(t_status(response("3 OPTIONS", 5000)) == 200);
  CHECK(n500 == 0);
  /* The ACK ended the retransmissions: nothing waits for it any more. */
  CHECK(bob_s && !bob_s->awaiting_ack && !bob_s->rexmit.slot &&
        !bob_s->ack_wait.slot && !bob_s->answer);
  CHECK(sr_session_get_state(bob_s) == SR_SESSION_ESTABLISHED);
  teardown();
}

/* The raw peer answers Bob's BYE; the call ends. */
static void answer_bye(void) {
  static char out[8192];
  size_t k = t_build_response(bye_msg, 200, "OK", NULL, NULL, NULL, out,
                              sizeof out);
  CHECK(k && t_raw_send(&raw, out, k) == 0);
  long end = t_ms() + 5000;
  while (sr_session_get_state(bob_s) != SR_SESSION_TERMINATED && t_ms() < end)
    t_raw_recv(&raw, 50);
  CHECK(sr_session_get_state(bob_s) == SR_SESSION_TERMINATED);
}

/* No ACK for the re-INVITE's 2xx: retransmitted over UDP (never over
 * TCP), then after 64*T1 Bob ends the call with a BYE. */
static void no_ack(sr_transport tp) {
  setup(tp);
  call();
  CHECK(t_drive(bob_established, NULL, 5000));
  request("INVITE", 2, "reinv", "", sdp);
  n200 = bye_seen = 0;
  /* 64*T1: 3.2 s, or 32 s with valgrind's T1 (SR_TEST_T1_MS) */
  long end = t_ms() + 64L * B->opt.t1_ms + 10000;
  while (!bye_seen && t_ms() < end) response("-", 100); /* only notes */
  CHECK(bye_seen >= 1);
  if (tp == SR_TRANSPORT_UDP) CHECK(n200 >= 3); /* 2xx and retransmissions */
  else CHECK(n200 == 1);                        /* sent once */
  CHECK(sr_session_get_state(bob_s) == SR_SESSION_TERMINATING);
  char v[128];
  CHECK(t_header(bye_msg, "To", v, sizeof v) && strstr(v, ";tag=r"));
  answer_bye();
  teardown();
}

/* bye() while Bob's 2xx (to the first INVITE, or to a re-INVITE) awaits
 * its ACK: the call is terminating at once, the 2xx is still sent again,
 * and the BYE leaves only with the ACK, or after 64*T1 without one
 * (RFC 3261 §15). Loopback keeps order: a BYE sent at bye() would come
 * before the retransmission. */
static void held_bye(int reinvite, int acked) {
  setup(SR_TRANSPORT_UDP);
  char cseq[32];
  int n = reinvite ? 2 : 1;
  snprintf(cseq, sizeof cseq, "%d INVITE", n);
  if (reinvite) {
    call();
    CHECK(t_drive(bob_established, NULL, 5000));
    request("INVITE", 2, "reinv", "", sdp);
  } else {
    request("INVITE", 1, "inv1", "Contact: <sip:raw@$ME$TR>\n", sdp);
  }
  n200 = bye_seen = 0;
  const char *m = response(cseq, 5000);
  CHECK(t_status(m) == 200);
  char to[256];
  const char *tag = m && t_header(m, "To", to, sizeof to) ? strstr(to, ";tag=") : NULL;
  if (tag) snprintf(totag, sizeof totag, "%s", tag + 5);
  CHECK(bob_s != NULL && sr_session_bye(bob_s) == 0);
  CHECK(sr_session_get_state(bob_s) == SR_SESSION_TERMINATING);
  CHECK(sr_session_bye(bob_s) == SR_ECLOSED);
  CHECK(t_status(response(cseq, 5000)) == 200); /* sent again, T1 50 ms */
  CHECK(bye_seen == 0);
  if (acked) {
    ack(n);
    long end = t_ms() + 5000;
    while (!bye_seen && t_ms() < end) response("-", 100);
  } else {
    long end = t_ms() + 64L * B->opt.t1_ms + 10000;
    while (!bye_seen && t_ms() < end) response("-", 100);
    CHECK(n200 >= 3);
  }
  CHECK(bye_seen >= 1); /* with its retransmissions, T1 apart */
  answer_bye();
  teardown();
}

static void test_bye_held_until_ack(void) { held_bye(0, 1); }
static void test_bye_held_until_reinvite_ack(void) { held_bye(1, 1); }
static void test_bye_held_no_ack(void) { held_bye(0, 0); }

/* A Call-ID is all of "number@host" (RFC 3261 §12, §20.8): another host
 * part is another dialog, and Replaces names the call by all of it
 * (RFC 3891 §3). Only the part before '@' was kept and compared. */
static void test_call_id_host(void) {
  setup(SR_TRANSPORT_UDP);
  call();
  CHECK(t_drive(bob_established, NULL, 5000));
  char want[64];
  snprintf(want, sizeof want, "indialog-%d@127.0.0.1", cid);
  CHECK(bob_s && !strcmp(sr_session_call_id(bob_s), want));
  cid_host = "elsewhere.example";
  request("OPTIONS", 2, "opt2", "", "");
  CHECK(t_status(response("2 OPTIONS", 5000)) == 481);
  cid_host = "127.0.0.1";
  request("OPTIONS", 3, "opt3", "", "");
  CHECK(t_status(response("3 OPTIONS", 5000)) == 200);
  /* A new call replacing this one, named with its whole Call-ID. */
  char rep[256], bobtag[64];
  snprintf(bobtag, sizeof bobtag, "%s", totag);
  snprintf(rep, sizeof rep,
           "Contact: <sip:raw@$ME$TR>\nReplaces: %s;to-tag=%s;from-tag=r%d\n",
           want, bobtag, cid);
  cid++;
  totag[0] = 0;
  bye_seen = 0;
  request("INVITE", 1, "inv-rep", rep, sdp);
  CHECK(t_status(response("1 INVITE", 5000)) == 200);
  long end = t_ms() + 5000;
  while (!bye_seen && t_ms() < end) response("-", 100);
  CHECK(bye_seen >= 1 && strstr(bye_msg, want)); /* the replaced call ends */
  teardown();
}

static void test_no_ack_udp(void) { no_ack(SR_TRANSPORT_UDP); }
static void test_no_ack_tcp(void) { no_ack(SR_TRANSPORT_TCP); }

/* A re-INVITE moving the peer to another address: Bob's later BYE goes
 * there, with that Request-URI. */
static void test_target_refresh(void) {
  setup(SR_TRANSPORT_UDP);
  call();
  t_raw moved;
  CHECK(t_raw_listen(&moved, SR_TRANSPORT_UDP) == 0);
  char contact[96];
  snprintf(contact, sizeof contact, "Contact: <sip:moved@127.0.0.1:%d>\n",
           moved.port);
  request("INVITE", 2, "refresh", contact, sdp);
  CHECK(t_status(response("2 INVITE", 5000)) == 200);
  ack(2);
  CHECK(t_drive(bob_established, NULL, 5000));
  char want[96];
  snprintf(want, sizeof want, "sip:moved@127.0.0.1:%d", moved.port);
  CHECK(sr_session_remote_target(bob_s) &&
        !strcmp(sr_session_remote_target(bob_s), want));
  CHECK(sr_session_bye(bob_s) == 0);
  char start[128];
  snprintf(start, sizeof start, "BYE %s SIP/2.0", want);
  CHECK(t_raw_next(&moved, start, 5000) != NULL);
  t_raw_close(&moved);
  teardown();
}

/* A SUBSCRIBE refreshing a REFER's subscription is a target refresh too:
 * its 200 carries Bob's Contact and its Contact becomes Bob's target. */
static void test_subscribe_refreshes_target(void) {
  setup(SR_TRANSPORT_UDP);
  call();
  CHECK(t_drive(bob_established, NULL, 5000));
  /* Bob follows by default: the INVITE to the discard port is never
   * answered within the test, so the subscription stays active. */
  request("REFER", 2, "ref", "Contact: <sip:raw@$ME>\n"
          "Refer-To: <sip:carol@127.0.0.1:9>\n", "");
  CHECK(t_status(response("2 REFER", 5000)) == 202);
  request("SUBSCRIBE", 3, "sub", "Contact: <sip:moved@127.0.0.1:7>\n"
          "Event: refer;id=2\nExpires: 30\n", "");
  const char *m = response("3 SUBSCRIBE", 5000);
  char v[128];
  CHECK(t_status(m) == 200);
  CHECK(t_header(m, "Expires", v, sizeof v) && !strcmp(v, "30"));
  CHECK(t_header(m, "Contact", v, sizeof v) && strstr(v, "sip:bob@") != NULL);
  CHECK(sr_session_remote_target(bob_s) &&
        !strcmp(sr_session_remote_target(bob_s), "sip:moved@127.0.0.1:7"));
  teardown();
}

/* 420 naming the unknown tags of Require, whatever the method; the tags
 * we list in Supported pass. */
static void expect_420(const char *method, int cseq, const char *require,
                       const char *unsupported) {
  char extra[1024], cs[64], v[256] = "";
  snprintf(extra, sizeof extra,
           "Contact: <sip:raw@$ME>\nRefer-To: <sip:carol@127.0.0.1>\n"
           "Session-Expires: 90\nRequire: %s\n", require);
  char branch[64];
  snprintf(branch, sizeof branch, "%s%d.%d", method, cid, cseq);
  request(method, cseq, branch, extra, "");
  snprintf(cs, sizeof cs, "%d %s", cseq, method);
  const char *m = response(cs, 5000);
  CHECK(t_status(m) == 420);
  if (unsupported)
    CHECK(t_header(m, "Unsupported", v, sizeof v) && !strcmp(v, unsupported));
  else /* a tag too long to list: still 420 */
    CHECK(!t_header(m, "Unsupported", v, sizeof v));
  if (t_status(m) != 420 || (unsupported && strcmp(v, unsupported)))
    fprintf(stderr, "  %s Require: %s got: %.80s\n", method, require,
            m ? m : "nothing");
  if (!strcmp(method, "INVITE")) request("ACK", cseq, branch, "", "");
}

static void test_require(void) {
  setup(SR_TRANSPORT_UDP);
  /* Out of any dialog. */
  expect_420("INVITE", 1, "timer", "timer");
  expect_420("REFER", 1, "foo", "foo");
  expect_420("OPTIONS", 1, "replaces, 100rel", "100rel");
  char long_tag[301];
  memset(long_tag, 'x', 300);
  long_tag[300] = 0;
  cid++;
  expect_420("OPTIONS", 1, long_tag, NULL);
  char two[320];
  snprintf(two, sizeof two, "%s, timer", long_tag);
  cid++;
  expect_420("OPTIONS", 1, two, "timer");
  /* In a dialog. */
  cid++;
  call();
  expect_420("INVITE", 2, "timer", "timer");
  expect_420("REFER", 3, "norefersub, foo,bar", "foo, bar");
  /* Every tag supported: handled as usual. */
  request("REFER", 4, "rs", "Refer-To: <sip:carol@127.0.0.1>\n"
          "Refer-Sub: false\nRequire: norefersub\n", "");
  const char *m = response("4 REFER", 5000);
  CHECK(t_status(m) >= 200 && t_status(m) != 420);
  CHECK(sr_session_get_state(bob_s) < SR_SESSION_TERMINATING);
  teardown();
}

static void test_options_update(void) {
  setup(SR_TRANSPORT_UDP);
  /* The out-of-dialog answer first, to compare. */
  request("OPTIONS", 1, "ood", "", "");
  const char *m = response("1 OPTIONS", 5000);
  char allow[256], supported[256], accept[256], v[256];
  CHECK(t_status(m) == 200 && t_header(m, "Allow", allow, sizeof allow) &&
        t_header(m, "Supported", supported, sizeof supported) &&
        t_header(m, "Accept", accept, sizeof accept));
  cid++;
  call();
  request("OPTIONS", 2, "opt", "", "");
  m = response("2 OPTIONS", 5000);
  CHECK(t_status(m) == 200);
  CHECK(t_header(m, "Allow", v, sizeof v) && !strcmp(v, allow));
  CHECK(t_header(m, "Supported", v, sizeof v) && !strcmp(v, supported));
  CHECK(t_header(m, "Accept", v, sizeof v) && !strcmp(v, accept));
  /* UPDATE is not in Allow: 405 naming what is, offer or not. */
  CHECK(!t_list_has(allow, "UPDATE"));
  request("UPDATE", 3, "upd", "Contact: <sip:raw@$ME>\n", sdp);
  m = response("3 UPDATE", 5000);
  CHECK(t_status(m) == 405);
  CHECK(t_header(m, "Allow", v, sizeof v) && !strcmp(v, allow));
  /* INFO: a legacy one (no Info-Package) is taken; one of an Info Package this UA
   * never said it receives gets 469 with its (empty) Recv-Info, RFC 6086
   * §4.2.2. The call goes on either way. */
  request("INFO", 4, "info1", "", "");
  CHECK_INT(t_status(response("4 INFO", 5000)), 200);
  request("INFO", 5, "info2", "Info-Package: foo\n", "");
  m = response("5 INFO", 5000);
  CHECK_INT(t_status(m), 469);
  CHECK(m && strstr(m, "\r\nRecv-Info: \r\n") != NULL);
  CHECK(sr_session_get_state(bob_s) == SR_SESSION_ESTABLISHED);
  teardown();
}

/* Bob rings (180, his To tag) and holds the call; Terminated is counted. */
static int bob_ended;
static void count_ended(sr_session *s, sr_session_state st, void *ud) {
  (void)s;
  (void)ud;
  bob_ended += st == SR_SESSION_TERMINATED;
}
static void ring_keep(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua;
  static const sr_session_delegate del = {count_ended, NULL, NULL, NULL};
  sr_session **keep = ud;
  sr_session_unref(*keep);
  *keep = sr_session_ref(inv);
  sr_session_set_delegate(inv, &del, NULL);
  CHECK_INT(sr_invitation_progress(inv, NULL), 0);
}

/* The final response to the INVITE with CSeq 1, past its 1xx. */
static int invite_final(void) {
  const char *m;
  while ((m = response("1 INVITE", 5000)) && t_status(m) < 200) {}
  return t_status(m);
}

/* RFC 3261 §15, §15.1.2: the caller's BYE in the early dialog of the 180
 * gets 200, the pending INVITE 487, and the call ends. A BYE with another
 * To tag, or out of order, does not end it. */
static void test_bye_early_dialog(void) {
  B = t_ua("bob", 0, 0, NULL);
  sr_ua_delegate d = {0};
  d.on_invite = ring_keep;
  sr_ua_set_delegate(B, &d, &bob_s);
  CHECK(t_raw_connect(&raw, SR_TRANSPORT_UDP,
                      sr_ua_local_port(B, SR_TRANSPORT_UDP)) == 0);
  cid++;
  totag[0] = 0;
  bob_ended = 0;
  request("INVITE", 1, "inv1", "Contact: <sip:raw@$ME$TR>\n", sdp);
  const char *m = response("1 INVITE", 5000);
  char to[256];
  CHECK(t_status(m) == 180 && t_header(m, "To", to, sizeof to));
  const char *tag = strstr(to, ";tag=");
  REQUIRE(tag != NULL);
  snprintf(totag, sizeof totag, "wrong");
  request("BYE", 2, "bye2", "", "");
  CHECK_INT(t_status(response("2 BYE", 5000)), 481);
  snprintf(totag, sizeof totag, "%s", tag + 5);
  request("BYE", 1, "bye1", "", "");
  CHECK_INT(t_status(response("1 BYE", 5000)), 500);
  CHECK(sr_session_get_state(bob_s) == SR_SESSION_INITIAL);
  CHECK_INT(bob_ended, 0);

  request("BYE", 3, "bye3", "", "");
  CHECK_INT(t_status(response("3 BYE", 5000)), 200);
  CHECK_INT(invite_final(), 487);
  request("ACK", 1, "inv1", "", "");
  CHECK(sr_session_get_state(bob_s) == SR_SESSION_TERMINATED);
  CHECK_INT(bob_ended, 1);
  /* The dialog is gone: a BYE again finds nothing. */
  request("BYE", 4, "bye4", "", "");
  CHECK_INT(t_status(response("4 BYE", 5000)), 481);
  teardown();
}

int main(void) {
  RUN(test_reinvite_2xx_until_ack);
  RUN(test_no_ack_udp);
  RUN(test_no_ack_tcp);
  RUN(test_bye_held_until_ack);
  RUN(test_bye_held_until_reinvite_ack);
  RUN(test_bye_held_no_ack);
  RUN(test_call_id_host);
  RUN(test_target_refresh);
  RUN(test_subscribe_refreshes_target);
  RUN(test_require);
  RUN(test_options_update);
  RUN(test_bye_early_dialog);
  return DONE();
}
