/*
 * test_close_reentry.c — sr_ua_close from inside the UA's own callbacks,
 * over UDP and TCP: from on_invite, from the message hook on a message
 * received (inside the loop turn that read it) and on one being sent
 * (inside sr_inviter_invite and every send of the library's own), and from
 * on_state. The closing UA returns into code that was using its sockets,
 * transactions, sessions and referrals; run under ASan (scripts/test.sh)
 * these find any of them used after the close freed it. Sweeps close at
 * the n-th message or event of a whole call and transfer, for each party.
 */
#include "harness.h"
#include "uas.h"

enum { ALICE, BOB, CAROL, NPARTY };
enum { IN, OUT, NONE };

typedef struct party {
  sr_ua *ua;
  sr_session *calls[2]; /* handles kept: this party's sessions */
  int ncalls;
} party;

/* One run: a call from Alice to Bob, then Alice refers Bob to Carol. The
 * victim closes its UA at its `nth` message in direction `dir` (hook), at
 * its `nth` session state change (`in_state`), or in Bob's on_invite. */
typedef struct run {
  sr_transport tp;
  int victim, dir, nth, in_state, in_on_invite;
  int seen;          /* the victim's messages or states counted so far */
  int closed_inside; /* sr_ua_close ran inside the callback */
  sr_referrer *refer;
  int refer_done;
} run;

static party P[NPARTY];
static run R;

static int ua_closed(sr_ua *ua) { return sr_ua_fd(ua) < 0; }

static void victim_close(void) {
  sr_ua_close(P[R.victim].ua);
  R.closed_inside = 1;
}

static int hook(int outgoing, sr_transport tp, const char *l, const char *r,
                const char *data, size_t len, void *ud) {
  (void)tp; (void)l; (void)r; (void)data; (void)len; (void)ud;
  if (R.dir != NONE && outgoing == (R.dir == OUT) && ++R.seen == R.nth) victim_close();
  return 0;
}

static void keep(party *p, sr_session *s) {
  if (p->ncalls < 2) p->calls[p->ncalls++] = sr_session_ref(s);
}

static void on_state(sr_session *s, sr_session_state st, void *ud) {
  (void)s; (void)st;
  if (R.in_state && ud == &P[R.victim] && ++R.seen == R.nth) victim_close();
}

/* Bob follows a REFER: accepts it and calls the target. */
static void bob_on_refer(sr_session *s, sr_referral *ref, void *ud) {
  (void)s;
  static const sr_session_delegate d = {on_state, NULL, NULL, NULL};
  if (sr_referral_accept(ref, NULL) != 0) return;
  sr_session *call = NULL;
  if (sr_referral_make_inviter(ref, NULL, &call) != 0) return;
  sr_session_set_delegate(call, &d, ud);
  keep(ud, call); /* borrowed from the referral */
  sr_inviter_invite(call); /* may close the UA (hook): fine either way */
}

static void on_invite(sr_ua *ua, sr_session *inv, void *ud) {
  static const sr_session_delegate d = {on_state, NULL, bob_on_refer, NULL};
  party *p = ud;
  if (R.in_on_invite) {
    sr_ua_close(ua);
    R.closed_inside = 1;
    return;
  }
  keep(p, inv);
  sr_session_set_delegate(inv, &d, p);
  sr_invitation_accept(inv, NULL);
}

static void refer_closed(sr_referrer *r, void *ud) {
  (void)r; (void)ud;
  R.refer_done = 1;
}

static int victim_closed(void *ctx) {
  (void)ctx;
  return ua_closed(P[R.victim].ua);
}

static int established_or_closed(void *ctx) {
  sr_session *s = P[ALICE].ncalls ? P[ALICE].calls[0] : NULL;
  return victim_closed(ctx) ||
         (s && sr_session_get_state(s) == SR_SESSION_ESTABLISHED);
}

static int transfer_done_or_closed(void *ctx) {
  return victim_closed(ctx) || R.refer_done;
}

static int setup_t1; /* T1 of the UAs (0: the harness default) */

static void setup(sr_transport tp, int victim) {
  memset(P, 0, sizeof P);
  memset(&R, 0, sizeof R);
  R.tp = tp;
  R.victim = victim;
  R.dir = NONE;
  static const char *names[] = {"alice", "bob", "carol"};
  sr_ua_delegate d = {0};
  d.on_invite = on_invite;
  for (int i = 0; i < NPARTY; i++) {
    P[i].ua = t_ua(names[i], 0, setup_t1, NULL);
    sr_ua_set_delegate(P[i].ua, &d, &P[i]);
  }
  sr_ua_set_message_hook(P[victim].ua, hook, NULL);
}

/* The whole call and transfer, stopping when the victim has closed. */
static void play(void) {
  static const sr_session_delegate d = {on_state, NULL, NULL, NULL};
  static const sr_referrer_delegate rd = {NULL, NULL, NULL, refer_closed};
  sr_session *call = NULL;
  if (sr_ua_make_inviter(P[ALICE].ua, t_target(P[BOB].ua, "bob", R.tp), NULL,
                         &call) != 0)
    return;
  sr_session_set_delegate(call, &d, &P[ALICE]);
  keep(&P[ALICE], call);
  sr_session_unref(call);
  int rc = sr_inviter_invite(call);
  CHECK(rc == 0 || (rc == SR_ECLOSED && ua_closed(P[ALICE].ua)));
  t_drive(established_or_closed, NULL, 3000);
  if (victim_closed(NULL) ||
      sr_session_get_state(call) != SR_SESSION_ESTABLISHED)
    return;
  if (sr_session_refer(call, t_target(P[CAROL].ua, "carol", R.tp), NULL, &rd,
                       NULL, &R.refer) != 0)
    return;
  t_drive(transfer_done_or_closed, NULL, 3000);
}

/* The victim's UA is closed and empty; then everything is released. */
static void finish(void) {
  sr_ua *v = P[R.victim].ua;
  if (R.closed_inside) {
    sr_stats st;
    sr_ua_get_stats(v, &st);
    CHECK(ua_closed(v));
    CHECK_INT(sr_ua_run_once(v, 0), SR_ECLOSED);
    CHECK_INT(st.connections, 0);
    CHECK_INT(st.transactions, 0);
  }
  /* The others go on a little: the victim's half-sent messages, its
   * closed connections, are theirs to handle. */
  t_drive(NULL, NULL, 20);
  sr_referrer_unref(R.refer);
  for (int i = 0; i < NPARTY; i++) {
    sr_ua_close(P[i].ua);
    for (int k = 0; k < P[i].ncalls; k++) sr_session_unref(P[i].calls[k]);
  }
  t_free_uas();
}

/* One run where `victim` closes once: in on_invite, or at its first
 * message in direction `dir`. */
static void close_once(sr_transport tp, int victim, int dir, int in_on_invite) {
  setup(tp, victim);
  R.dir = dir;
  R.nth = 1;
  R.in_on_invite = in_on_invite;
  play();
  CHECK(R.closed_inside);
  finish();
}
/* Bob closes in on_invite. */
static void test_on_invite_udp(void) { close_once(SR_TRANSPORT_UDP, BOB, NONE, 1); }
static void test_on_invite_tcp(void) { close_once(SR_TRANSPORT_TCP, BOB, NONE, 1); }
/* Bob closes in the hook, on the INVITE he receives. */
static void test_hook_incoming_udp(void) { close_once(SR_TRANSPORT_UDP, BOB, IN, 0); }
static void test_hook_incoming_tcp(void) { close_once(SR_TRANSPORT_TCP, BOB, IN, 0); }
/* Alice closes in the hook on her INVITE, inside sr_inviter_invite. */
static void test_hook_outgoing_udp(void) { close_once(SR_TRANSPORT_UDP, ALICE, OUT, 0); }
static void test_hook_outgoing_tcp(void) { close_once(SR_TRANSPORT_TCP, ALICE, OUT, 0); }

/* Each party in turn closes at its n-th message (or state change) of the
 * call and transfer, n = 1, 2, ... until the run ends before the n-th. */
static void sweep(sr_transport tp, int dir, int in_state) {
  for (int victim = 0; victim < NPARTY; victim++) {
    for (int nth = 1; nth < 40; nth++) {
      setup(tp, victim);
      R.dir = dir;
      R.in_state = in_state;
      R.nth = nth;
      play();
      int reached = R.closed_inside;
      finish();
      if (!reached) {
        CHECK(nth > 1); /* every party sees at least one */
        break;
      }
    }
  }
}
static void test_sweep_hook_in_udp(void) { sweep(SR_TRANSPORT_UDP, IN, 0); }
static void test_sweep_hook_in_tcp(void) { sweep(SR_TRANSPORT_TCP, IN, 0); }
static void test_sweep_hook_out_udp(void) { sweep(SR_TRANSPORT_UDP, OUT, 0); }
static void test_sweep_hook_out_tcp(void) { sweep(SR_TRANSPORT_TCP, OUT, 0); }
static void test_sweep_state_udp(void) { sweep(SR_TRANSPORT_UDP, NONE, 1); }
static void test_sweep_state_tcp(void) { sweep(SR_TRANSPORT_TCP, NONE, 1); }

/* Bob loses every ACK (his hook drops them; unless keep_acks), so his
 * 2xx is retransmitted and, with no ACK in 64 x T1, the call ends with
 * his BYE. He keeps no reference to the call and closes his UA in the
 * hook on the message `what` sent from those timers (or from the ACK's
 * handling): nothing may touch the call after. */
static const char *close_on;
static int keep_acks; /* the held-BYE runs: the ACK comes */
static int lose_ack_hook(int outgoing, sr_transport tp, const char *l,
                         const char *r, const char *data, size_t len,
                         void *ud) {
  (void)tp; (void)l; (void)r; (void)ud;
  if (!outgoing) return !keep_acks && len > 4 && memcmp(data, "ACK ", 4) == 0;
  size_t k = strlen(close_on);
  if (len > k && memcmp(data, close_on, k) == 0 && ++R.seen == R.nth)
    victim_close();
  return 0;
}

static void accept_unkept(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua; (void)ud;
  sr_invitation_accept(inv, NULL);
}

/* Bob ends the call as he answers it: his BYE waits for the ACK. */
static void accept_then_bye(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua; (void)ud;
  sr_invitation_accept(inv, NULL);
  CHECK_INT(sr_session_bye(inv), 0);
}

static void close_in_timer(const char *what, int nth,
                           void (*answer)(sr_ua *, sr_session *, void *)) {
  setup_t1 = 10;
  setup(SR_TRANSPORT_UDP, BOB);
  setup_t1 = 0;
  close_on = what;
  R.nth = nth;
  sr_ua_delegate d = {0};
  d.on_invite = answer;
  sr_ua_set_delegate(P[BOB].ua, &d, &P[BOB]);
  sr_ua_set_message_hook(P[BOB].ua, lose_ack_hook, NULL);
  sr_session *call = NULL;
  REQUIRE(sr_ua_make_inviter(P[ALICE].ua, t_target(P[BOB].ua, "bob", R.tp),
                             NULL, &call) == 0);
  keep(&P[ALICE], call);
  sr_session_unref(call);
  CHECK_INT(sr_inviter_invite(call), 0);
  CHECK(t_drive(victim_closed, NULL, 5000));
  CHECK(R.closed_inside);
  finish();
}
/* The second 200 is rexmit_fire's; the BYE is ack_timeout's. */
static void test_close_in_2xx_retransmission(void) {
  close_in_timer("SIP/2.0 200", 2, accept_unkept);
}
static void test_close_in_no_ack_bye(void) {
  close_in_timer("BYE ", 1, accept_unkept);
}
/* A BYE held for the ACK: sent from the ACK's handling, or from the
 * timer when the ACK never comes. */
static void test_close_in_held_bye(void) {
  keep_acks = 1;
  close_in_timer("BYE ", 1, accept_then_bye);
  keep_acks = 0;
}
static void test_close_in_held_bye_no_ack(void) {
  close_in_timer("BYE ", 1, accept_then_bye);
}

int main(void) {
  RUN(test_on_invite_udp);
  RUN(test_on_invite_tcp);
  RUN(test_hook_incoming_udp);
  RUN(test_hook_incoming_tcp);
  RUN(test_hook_outgoing_udp);
  RUN(test_hook_outgoing_tcp);
  RUN(test_sweep_hook_in_udp);
  RUN(test_sweep_hook_in_tcp);
  RUN(test_sweep_hook_out_udp);
  RUN(test_sweep_hook_out_tcp);
  RUN(test_sweep_state_udp);
  RUN(test_sweep_state_tcp);
  RUN(test_close_in_2xx_retransmission);
  RUN(test_close_in_no_ack_bye);
  RUN(test_close_in_held_bye);
  RUN(test_close_in_held_bye_no_ack);
  return DONE();
}
