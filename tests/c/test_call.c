/*
 * test_call.c — two user agents in one process, over UDP, TCP and IPv6:
 * INVITE/180/200/ACK/BYE, CANCEL, reject, lost ACK, a lossy network,
 * and handles used after their session ended or freed in callbacks.
 */
#include "harness.h"
#include "uas.h"

/* ---- a recording of what each side saw ---- */
typedef struct side {
  sr_session *s;
  int states[8], nstates;
  int responses[8], nresp;
  int bye;
  int auto_answer; /* Bob: 0 progress only, 1 progress+accept, 2 reject 486,
                      3 nothing in the callback */
  int unref_on_terminated;
} side;

static side alice, bob;

static void on_state(sr_session *s, sr_session_state st, void *ud) {
  side *x = ud;
  if (x->nstates < 8) x->states[x->nstates++] = st;
  if (st == SR_SESSION_TERMINATED && x->unref_on_terminated) {
    /* freeing from inside its own callback must be safe */
    sr_session_unref(s);
    x->s = NULL;
  }
}
static void on_response(sr_session *s, int code, const char *r, void *ud) {
  (void)s;
  (void)r;
  side *x = ud;
  if (x->nresp < 8) x->responses[x->nresp++] = code;
}
static void on_bye(sr_session *s, void *ud) {
  (void)s;
  ((side *)ud)->bye++;
}
static const sr_session_delegate del = {on_state, on_response, NULL, on_bye};

static void bob_on_invite(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua;
  (void)ud;
  bob.s = sr_session_ref(inv);
  sr_session_set_delegate(inv, &del, &bob);
  if (bob.auto_answer == 3) return;
  CHECK_INT(sr_invitation_progress(inv, NULL), 0);
  if (bob.auto_answer == 1) CHECK_INT(sr_invitation_accept(inv, NULL), 0);
  if (bob.auto_answer == 2) {
    sr_response_options o;
    sr_response_options_init(&o);
    o.status_code = 486;
    CHECK_INT(sr_invitation_reject(inv, &o), 0);
  }
}

static int both_state(void *want) {
  sr_session_state w = *(sr_session_state *)want;
  return alice.s && bob.s && sr_session_get_state(alice.s) == w &&
         sr_session_get_state(bob.s) == w;
}

static int st_established = SR_SESSION_ESTABLISHED;
static int st_terminated = SR_SESSION_TERMINATED;

static sr_ua *A, *B;

static void setup(int v6) {
  memset(&alice, 0, sizeof alice);
  memset(&bob, 0, sizeof bob);
  A = t_ua("alice", v6, 0, NULL);
  B = t_ua("bob", v6, 0, NULL);
  sr_ua_delegate d = {0};
  d.on_invite = bob_on_invite;
  sr_ua_set_delegate(B, &d, NULL);
}

static void teardown(void) {
  sr_session_unref(alice.s);
  sr_session_unref(bob.s);
  alice.s = bob.s = NULL;
  t_free_uas();
  sr_stats st;
  sr_global_stats(&st);
  CHECK_INT(st.sessions, 0);
}

/* ---- message recording through the hook ---- */
static char seen[64][24];
static int nseen;
static int drop_first_ack;
static unsigned lossy_seed;
static int lossy_percent;

static int hook(int out, sr_transport tp, const char *l, const char *r,
                const char *data, size_t len, void *ud) {
  (void)tp; (void)l; (void)r; (void)ud;
  if (out && nseen < 64) {
    const char *sp = memchr(data, ' ', len);
    size_t n = sp ? (size_t)(sp - data) : 0;
    if (n >= 7 && memcmp(data, "SIP/2.0", 7) == 0 && len > 12) {
      memcpy(seen[nseen], data + 8, 3);
      seen[nseen][3] = 0;
    } else {
      if (n > 20) n = 20;
      memcpy(seen[nseen], data, n);
      seen[nseen][n] = 0;
    }
    nseen++;
  }
  if (out && drop_first_ack && len > 4 && memcmp(data, "ACK ", 4) == 0) {
    drop_first_ack = 0;
    return 1;
  }
  if (lossy_percent) {
    lossy_seed = lossy_seed * 1103515245u + 12345u;
    if ((lossy_seed >> 16) % 100 < (unsigned)lossy_percent) return 1;
  }
  return 0;
}

static int count_seen(const char *what) {
  int n = 0;
  for (int i = 0; i < nseen; i++) n += strcmp(seen[i], what) == 0;
  return n;
}

/* Alice calls Bob, who answers as `mode` says (see side.auto_answer),
 * over tp; with `record`, what both send goes into seen[]. 0 once the
 * INVITE is on its way. */
static int place_call(sr_transport tp, int mode, int record) {
  nseen = 0;
  if (record) {
    sr_ua_set_message_hook(A, hook, NULL);
    sr_ua_set_message_hook(B, hook, NULL);
  }
  bob.auto_answer = mode;
  if (sr_ua_make_inviter(A, t_target(B, "bob", tp), NULL, &alice.s) != 0)
    return -1;
  sr_session_set_delegate(alice.s, &del, &alice);
  return sr_inviter_invite(alice.s);
}

static void basic_call(sr_transport tp, int v6) {
  setup(v6);
  nseen = 0;
  sr_ua_set_message_hook(A, hook, NULL);
  sr_ua_set_message_hook(B, hook, NULL);
  bob.auto_answer = 1;
  REQUIRE(sr_ua_make_inviter(A, t_target(B, "bob", tp), NULL, &alice.s) == 0);
  sr_session_set_delegate(alice.s, &del, &alice);
  CHECK_INT(sr_session_get_state(alice.s), SR_SESSION_INITIAL);
  CHECK_INT(sr_inviter_invite(alice.s), 0);
  CHECK_INT(sr_inviter_invite(alice.s), SR_ESTATE);
  CHECK(t_drive(both_state, &st_established, 10000));
  /* the exchange, in order, as sent: answered from inside on_invite, so
   * no 100 Trying (RFC 3261 §17.2.1) */
  CHECK_STR(seen[0], "INVITE");
  CHECK_STR(seen[1], "180");
  CHECK_STR(seen[2], "200");
  CHECK_STR(seen[3], "ACK");
  CHECK_INT(alice.nresp >= 2, 1);
  CHECK_INT(alice.responses[alice.nresp - 1], 200);
  CHECK_STR(sr_session_call_id(alice.s), sr_session_call_id(bob.s));
  CHECK_STR(sr_session_local_tag(alice.s), sr_session_remote_tag(bob.s));
  CHECK_STR(sr_session_remote_tag(alice.s), sr_session_local_tag(bob.s));
  CHECK(sr_session_remote_body(alice.s) != NULL);
  CHECK(sr_session_remote_body(bob.s) != NULL);
  CHECK_STR(sr_request_method(sr_invitation_get_request(bob.s)), "INVITE");
  sr_stats st;
  sr_ua_get_stats(A, &st);
  CHECK_INT(st.dialogs, 1);
  CHECK_INT(sr_session_bye(alice.s), 0);
  CHECK(t_drive(both_state, &st_terminated, 10000));
  CHECK_INT(bob.bye, 1);
  CHECK_INT(alice.states[0], SR_SESSION_ESTABLISHING);
  CHECK_INT(alice.states[1], SR_SESSION_ESTABLISHED);
  CHECK_INT(alice.states[2], SR_SESSION_TERMINATING);
  CHECK_INT(alice.states[3], SR_SESSION_TERMINATED);
  CHECK_INT(bob.states[0], SR_SESSION_ESTABLISHING);
  CHECK_INT(bob.states[1], SR_SESSION_ESTABLISHED);
  CHECK_INT(bob.states[2], SR_SESSION_TERMINATED);
  /* An ended session held by a handle keeps its identity, not its dialog. */
  sr_ua_get_stats(A, &st);
  CHECK_INT(st.dialogs, 0);
  sr_ua_get_stats(B, &st);
  CHECK_INT(st.dialogs, 0);
  CHECK_STR(sr_session_call_id(alice.s), sr_session_call_id(bob.s));
  CHECK_STR(sr_session_local_tag(alice.s), sr_session_remote_tag(bob.s));
  CHECK_STR(sr_session_remote_tag(alice.s), sr_session_local_tag(bob.s));
  CHECK(sr_session_remote_target(alice.s) != NULL);
  CHECK(sr_session_remote_body(alice.s) != NULL);
  CHECK_STR(sr_request_method(sr_invitation_get_request(bob.s)), "INVITE");
  /* handles of ended sessions answer with errors */
  CHECK_INT(sr_session_bye(alice.s), SR_ECLOSED);
  CHECK_INT(sr_invitation_accept(bob.s, NULL), SR_ECLOSED);
  CHECK_INT(sr_inviter_invite(bob.s), SR_EROLE);
  teardown();
}

static int alice_got_100(void *u) {
  (void)u;
  return alice.nresp > 0 && alice.responses[0] == 100;
}

/* A handler that answers later: the 100 Trying goes out as soon as
 * on_invite returns, before any other response. */
static void test_deferred_answer_gets_100(void) {
  setup(0);
  REQUIRE(place_call(SR_TRANSPORT_UDP, 3, 1) == 0);
  CHECK(t_drive(alice_got_100, NULL, 10000));
  REQUIRE(bob.s != NULL);
  CHECK_INT(sr_invitation_accept(bob.s, NULL), 0);
  CHECK(t_drive(both_state, &st_established, 10000));
  CHECK_STR(seen[0], "INVITE");
  CHECK_STR(seen[1], "100");
  CHECK_STR(seen[2], "200");
  CHECK_INT(count_seen("100"), 1);
  CHECK_INT(sr_session_bye(alice.s), 0);
  CHECK(t_drive(both_state, &st_terminated, 10000));
  teardown();
}

static void test_udp_call(void) { basic_call(SR_TRANSPORT_UDP, 0); }
static void test_tcp_call(void) { basic_call(SR_TRANSPORT_TCP, 0); }
static void test_udp6_call(void) { basic_call(SR_TRANSPORT_UDP, 1); }
static void test_tcp6_call(void) { basic_call(SR_TRANSPORT_TCP, 1); }

static int bob_has_call(void *u) {
  (void)u;
  return bob.s && alice.nresp > 0 && alice.responses[alice.nresp - 1] == 180;
}

static void cancel_call(sr_transport tp) {
  setup(0);
  REQUIRE(place_call(tp, 0, 0) == 0);
  CHECK(t_drive(bob_has_call, NULL, 10000));
  CHECK_INT(sr_inviter_cancel(alice.s), 0);
  CHECK(t_drive(both_state, &st_terminated, 10000));
  CHECK_INT(alice.responses[alice.nresp - 1], 487);
  CHECK_INT(sr_inviter_cancel(alice.s), SR_ECLOSED);
  teardown();
}
static void test_cancel_udp(void) { cancel_call(SR_TRANSPORT_UDP); }
static void test_cancel_tcp(void) { cancel_call(SR_TRANSPORT_TCP); }

static void reject_call(sr_transport tp) {
  setup(0);
  REQUIRE(place_call(tp, 2, 0) == 0);
  CHECK(t_drive(both_state, &st_terminated, 10000));
  CHECK_INT(alice.responses[alice.nresp - 1], 486);
  CHECK_INT(alice.nstates, 2); /* establishing, terminated */
  teardown();
}
static void test_reject_udp(void) { reject_call(SR_TRANSPORT_UDP); }
static void test_reject_tcp(void) { reject_call(SR_TRANSPORT_TCP); }

static void test_lost_ack(void) {
  setup(0);
  drop_first_ack = 1;
  REQUIRE(place_call(SR_TRANSPORT_UDP, 1, 1) == 0);
  CHECK(t_drive(both_state, &st_established, 10000));
  CHECK(count_seen("200") >= 2); /* Bob re-sent the 2xx ... */
  CHECK(count_seen("ACK") >= 2); /* ... and Alice re-sent the ACK */
  CHECK_INT(drop_first_ack, 0);
  sr_session_bye(bob.s);
  CHECK(t_drive(both_state, &st_terminated, 10000));
  teardown();
}

static void test_lossy_network(void) {
  int done = 0;
  for (int call = 0; call < 5; call++) {
    setup(0);
    lossy_percent = 20;
    lossy_seed = 1234u + (unsigned)call;
    REQUIRE(place_call(SR_TRANSPORT_UDP, 1, 1) == 0);
    if (t_drive(both_state, &st_established, 20000)) {
      sr_session_bye(alice.s);
      if (t_drive(both_state, &st_terminated, 20000)) done++;
    }
    lossy_percent = 0;
    teardown();
  }
  CHECK_INT(done, 5);
}

static void test_free_in_callback(void) {
  setup(0);
  REQUIRE(place_call(SR_TRANSPORT_UDP, 1, 0) == 0);
  CHECK(t_drive(both_state, &st_established, 10000));
  alice.unref_on_terminated = 1;
  bob.unref_on_terminated = 1;
  sr_session_bye(alice.s);
  CHECK(t_drive(NULL, NULL, 300) == 0); /* run a little: nothing may crash */
  CHECK(alice.s == NULL && bob.s == NULL);
  teardown();
}

static void test_close_with_live_sessions(void) {
  setup(0);
  REQUIRE(place_call(SR_TRANSPORT_TCP, 1, 0) == 0);
  CHECK(t_drive(both_state, &st_established, 10000));
  sr_ua_close(A);
  CHECK_INT(sr_session_bye(alice.s), SR_ECLOSED);
  CHECK_INT(sr_ua_run_once(A, 0), SR_ECLOSED);
  CHECK(sr_session_get_ua(alice.s) == NULL);
  teardown();
}

static void test_bad_arguments(void) {
  sr_ua *ua = NULL;
  sr_ua_options o;
  sr_ua_options_init(&o);
  CHECK_INT(sr_ua_new(&ua, &o), SR_EINVAL);
  o.uri = "not a uri";
  CHECK_INT(sr_ua_new(&ua, &o), SR_EINVAL);
  CHECK(ua == NULL);
  o.uri = "sip:x@127.0.0.1";
  REQUIRE(sr_ua_new(&ua, &o) == 0);
  CHECK_INT(sr_ua_listen(ua, "sctp:127.0.0.1:0"), SR_EINVAL);
  CHECK_INT(sr_ua_listen(ua, "udp:127.0.0.1"), SR_EINVAL);
  CHECK_INT(sr_ua_listen(ua, "udp:192.0.2.1:0"), SR_EADDR);
  sr_session *s = NULL;
  CHECK_INT(sr_ua_make_inviter(ua, "http://example.com", NULL, &s), SR_EINVAL);
  /* a host name without an outbound proxy (test_proxy.c) */
  CHECK_INT(sr_ua_make_inviter(ua, "sip:carol@example.com", NULL, &s), SR_EADDR);
  /* sips needs TLS (test_referral.c) */
  CHECK_INT(sr_ua_make_inviter(ua, "<sips:carol@127.0.0.1>", NULL, &s), SR_ETRANSPORT);
  CHECK(s == NULL);
  CHECK_INT(sr_session_bye(NULL), SR_EINVAL);
  CHECK(strlen(sr_strerror(SR_ECLOSED)) > 0);
  sr_ua_unref(ua);
  sr_ua_unref(NULL);
  sr_session_unref(NULL);
}

int main(void) {
  RUN(test_udp_call);
  RUN(test_deferred_answer_gets_100);
  RUN(test_tcp_call);
  RUN(test_udp6_call);
  RUN(test_tcp6_call);
  RUN(test_cancel_udp);
  RUN(test_cancel_tcp);
  RUN(test_reject_udp);
  RUN(test_reject_tcp);
  RUN(test_lost_ack);
  RUN(test_lossy_network);
  RUN(test_free_in_callback);
  RUN(test_close_with_live_sessions);
  RUN(test_bad_arguments);
  return DONE();
}
