/*
 * test_referral.c — the Referral core end to end: Alice, Bob and Carol in
 * one process, over UDP and TCP. SIP.js's four Referral scenarios, blind
 * and attended transfer, every validation code, Refer-Sub: false,
 * concurrent REFERs, the referrer hanging up, the decision deadline.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "harness.h"
#include "uas.h"

/* ------------------------------------------------------------------ */
/* Parties                                                              */
/* ------------------------------------------------------------------ */

typedef struct party {
  const char *name;
  sr_ua *ua;
  sr_session *calls[4]; /* sessions this party holds (refs) */
  int ncalls;
  /* how this party handles things */
  int refer_mode;    /* 0 no delegate (default follow), 1 accept+follow,
                        2 keep pending, 3 accept only */
  int answer_mode;   /* 0 progress+accept, 1 progress only, 2 reject 486 */
  sr_referral *last_referral; /* ref */
  int nreferrals;
  /* what the party sent (from the hook) */
  char sent[64][160];
  int nsent;
  char carol_invite[4096]; /* last INVITE received (Carol) */
} party;

static party P[3];
#define ALICE (&P[0])
#define BOB (&P[1])
#define CAROL (&P[2])

/* Referrer observations */
typedef struct rec {
  int accepts, rejects, closed;
  int codes[16];
  char reasons[16][32];
  char states[16][64];
  int nnotify;
  int reject_code;
} rec;

static void on_accept(sr_referrer *r, int code, const char *reason, void *ud) {
  (void)r; (void)code; (void)reason;
  ((rec *)ud)->accepts++;
}
static void on_reject(sr_referrer *r, int code, const char *reason, void *ud) {
  (void)r; (void)reason;
  ((rec *)ud)->rejects++;
  ((rec *)ud)->reject_code = code;
}
static void on_notify(sr_referrer *r, int code, const char *reason,
                      const char *state, void *ud) {
  (void)r;
  rec *x = ud;
  if (x->nnotify < 16) {
    x->codes[x->nnotify] = code;
    snprintf(x->reasons[x->nnotify], 32, "%s", reason);
    snprintf(x->states[x->nnotify], 64, "%s", state);
    x->nnotify++;
  }
}
static void on_closed(sr_referrer *r, void *ud) {
  (void)r;
  ((rec *)ud)->closed++;
}
static const sr_referrer_delegate rdel = {on_accept, on_reject, on_notify,
                                          on_closed};

static void keep(party *p, sr_session *s) {
  if (p->ncalls < 4) p->calls[p->ncalls++] = sr_session_ref(s);
}

static void on_refer(sr_session *s, sr_referral *r, void *ud);
static const sr_session_delegate with_refer = {NULL, NULL, on_refer, NULL};

static void on_refer(sr_session *s, sr_referral *r, void *ud) {
  party *p = ud;
  (void)s;
  p->nreferrals++;
  sr_referral_unref(p->last_referral);
  p->last_referral = sr_referral_ref(r);
  CHECK(sr_referral_get_session(r) == s);
  if (p->refer_mode == 1 || p->refer_mode == 3) {
    CHECK_INT(sr_referral_accept(r, NULL), 0);
    CHECK_INT(sr_referral_accept(r, NULL), SR_EALREADY);
    if (p->refer_mode == 1) {
      sr_session *inv = NULL, *again = NULL;
      CHECK(sr_referral_get_inviter(r) == NULL);
      CHECK_INT(sr_referral_make_inviter(r, NULL, &inv), 0);
      CHECK(sr_referral_get_inviter(r) == inv);
      CHECK_INT(sr_referral_make_inviter(r, NULL, &again), 0);
      CHECK(inv && inv == again);
      CHECK(sr_session_get_referred_session(inv) == s);
      CHECK(sr_session_get_referral_inviter(s) == inv);
      CHECK_INT(sr_inviter_invite(inv), 0);
      keep(p, inv);
    }
  }
}

static void on_invite(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua;
  party *p = ud;
  keep(p, inv);
  sr_session_set_delegate(inv, p->refer_mode ? &with_refer : NULL, p);
  const sr_request *req = sr_invitation_get_request(inv);
  snprintf(p->carol_invite, sizeof p->carol_invite, "%s", sr_request_text(req));
  if (p->answer_mode == 2) {
    sr_response_options o;
    sr_response_options_init(&o);
    o.status_code = 486;
    sr_invitation_reject(inv, &o);
    return;
  }
  sr_invitation_progress(inv, NULL);
  if (p->answer_mode == 0) sr_invitation_accept(inv, NULL);
}

static int hook(int out, sr_transport tp, const char *l, const char *r,
                const char *data, size_t len, void *ud) {
  (void)tp; (void)l; (void)r;
  party *p = ud;
  if (out && p->nsent < 64) {
    const char *eol = memchr(data, '\r', len);
    size_t n = eol ? (size_t)(eol - data) : len;
    if (n > 159) n = 159;
    memcpy(p->sent[p->nsent], data, n);
    p->sent[p->nsent][n] = 0;
    p->nsent++;
  }
  return 0;
}

static int count_sent(party *p, const char *prefix) {
  int n = 0;
  for (int i = 0; i < p->nsent; i++)
    n += strncmp(p->sent[i], prefix, strlen(prefix)) == 0;
  return n;
}

static int short_deadline;
static int allow_ood;
static int short_expiry;
static int final_only;
static int allow_sips;
static void tweak(sr_ua_options *o) {
  if (allow_sips) o->allowed_schemes = "sip,sips";
  if (short_deadline) o->refer_decision_timeout_ms = 300;
  if (allow_ood) o->allow_out_of_dialog_refer = 1;
  if (short_expiry) o->refer_expires_s = 1;
  if (final_only) o->notify_mode = SR_NOTIFY_FINAL_ONLY;
}

static void setup(void) {
  static const char *names[3] = {"alice", "bob", "carol"};
  if (t_nuas) t_free_uas(); /* a REQUIRE left the last test early */
  for (int i = 0; i < 3; i++) {
    memset(&P[i], 0, sizeof P[i]);
    P[i].name = names[i];
    P[i].ua = t_ua(names[i], 0, 0, tweak);
    sr_ua_delegate d = {0};
    d.on_invite = on_invite;
    sr_ua_set_delegate(P[i].ua, &d, &P[i]);
    sr_ua_set_message_hook(P[i].ua, hook, &P[i]);
  }
}

static void teardown(void) {
  for (int i = 0; i < 3; i++) {
    for (int k = 0; k < P[i].ncalls; k++) sr_session_unref(P[i].calls[k]);
    sr_referral_unref(P[i].last_referral);
  }
  t_free_uas();
  sr_stats st;
  sr_global_stats(&st);
  CHECK_INT(st.sessions, 0);
  CHECK_INT(st.referrals, 0);
  CHECK_INT(st.referrers, 0);
}

static int established(void *v) {
  return sr_session_get_state(*(sr_session **)v) == SR_SESSION_ESTABLISHED;
}

/* `from` calls `to`; returns from's session (to's is to->calls[last]). */
static sr_session *call(party *from, party *to, sr_transport tp) {
  sr_session *s = NULL;
  if (sr_ua_make_inviter(from->ua, t_target(to->ua, to->name, tp), NULL, &s))
    return NULL;
  sr_session_set_delegate(s, &with_refer, from);
  keep(from, s);
  sr_session_unref(s);
  sr_inviter_invite(s);
  if (!t_drive(established, &s, 10000)) return NULL;
  return s;
}

static sr_session *last_call(party *p) {
  return p->ncalls ? p->calls[p->ncalls - 1] : NULL;
}

/* Bob, in his call with Alice, refers her to Carol over UDP. */
static int bob_refers_to_carol(const sr_refer_options *o, rec *rr) {
  return sr_session_refer(last_call(BOB), t_target(CAROL->ua, "carol", SR_TRANSPORT_UDP),
                          o, &rdel, rr, NULL);
}

typedef struct { rec *r; int n; } want_notify;
static int notified(void *v) {
  want_notify *w = v;
  return w->r->nnotify >= w->n;
}
static int closed(void *v) { return ((rec *)v)->closed > 0; }

/* ------------------------------------------------------------------ */
/* SIP.js scenarios                                                     */
/* ------------------------------------------------------------------ */

/* referrer is alice or bob; the other party is referred to Carol. */
static void sipjs_scenario(int bob_refers, int mode, sr_transport tp) {
  setup();
  party *referee = bob_refers ? ALICE : BOB;
  referee->refer_mode = mode; /* 0: no delegate → default; 1: accept+follow */
  ALICE->refer_mode = bob_refers ? mode : 1;
  BOB->refer_mode = bob_refers ? 1 : mode;
  if (referee->refer_mode == 0) BOB->refer_mode = bob_refers ? 1 : 0;
  sr_session *a = call(ALICE, BOB, tp);
  REQUIRE(a != NULL);
  sr_session *b = last_call(BOB);
  if (mode == 0) sr_session_set_delegate(bob_refers ? a : b, NULL, NULL);
  rec rr = {0};
  sr_referrer *ref = NULL;
  REQUIRE(sr_session_refer(bob_refers ? b : a,
                           t_target(CAROL->ua, "carol", tp), NULL, &rdel, &rr,
                           &ref) == 0);
  want_notify w = {&rr, 3};
  CHECK(t_drive(notified, &w, 10000));
  CHECK(t_drive(closed, &rr, 10000));
  CHECK_INT(rr.accepts, 1);
  CHECK_INT(rr.codes[0], 100);
  CHECK_INT(rr.codes[rr.nnotify - 1], 200);
  /* the original sessions stay up; the new one is up too */
  CHECK_INT(sr_session_get_state(a), SR_SESSION_ESTABLISHED);
  CHECK_INT(sr_session_get_state(b), SR_SESSION_ESTABLISHED);
  sr_session *c = last_call(CAROL);
  REQUIRE(c != NULL);
  CHECK_INT(sr_session_get_state(c), SR_SESSION_ESTABLISHED);
  /* referrer: REFER before any NOTIFY answer; referee: 202 then NOTIFYs */
  party *referrer = bob_refers ? BOB : ALICE;
  int refer_at = -1, ok_at = -1;
  for (int i = 0; i < referrer->nsent; i++) {
    if (refer_at < 0 && strncmp(referrer->sent[i], "REFER ", 6) == 0) refer_at = i;
    if (ok_at < 0 && strncmp(referrer->sent[i], "SIP/2.0 200", 11) == 0 && refer_at >= 0)
      ok_at = i;
  }
  CHECK(refer_at >= 0 && ok_at > refer_at);
  int acc_at = -1, notify_at = -1;
  for (int i = 0; i < referee->nsent; i++) {
    if (acc_at < 0 && strncmp(referee->sent[i], "SIP/2.0 202 Accepted", 20) == 0) acc_at = i;
    if (notify_at < 0 && strncmp(referee->sent[i], "NOTIFY ", 7) == 0) notify_at = i;
  }
  CHECK(acc_at >= 0 && notify_at > acc_at);
  sr_referrer_unref(ref);
  teardown();
}

static void test_sipjs_bob_refers_default(void) { sipjs_scenario(1, 0, SR_TRANSPORT_UDP); }
static void test_sipjs_bob_refers_delegate(void) { sipjs_scenario(1, 1, SR_TRANSPORT_UDP); }
static void test_sipjs_alice_refers_default(void) { sipjs_scenario(0, 0, SR_TRANSPORT_UDP); }
static void test_sipjs_alice_refers_delegate(void) { sipjs_scenario(0, 1, SR_TRANSPORT_UDP); }
static void test_sipjs_tcp(void) {
  sipjs_scenario(1, 1, SR_TRANSPORT_TCP);
  sipjs_scenario(0, 0, SR_TRANSPORT_TCP);
}

/* ------------------------------------------------------------------ */
/* Blind transfer: the NOTIFY sequence and what Carol receives          */
/* ------------------------------------------------------------------ */

static void blind(sr_transport tp) {
  setup();
  ALICE->refer_mode = 1;
  sr_session *a = call(ALICE, BOB, tp);
  REQUIRE(a != NULL);
  sr_session *b = last_call(BOB);
  rec rr = {0};
  char target[256];
  /* A URI header besides Replaces must never reach Carol's INVITE. */
  snprintf(target, sizeof target, "%s?X-Leak=1&Route=%%3Csip:evil@192.0.2.9%%3E",
           t_target(CAROL->ua, "carol", tp));
  REQUIRE(sr_session_refer(b, target, NULL, &rdel, &rr, NULL) == 0);
  CHECK(t_drive(closed, &rr, 10000));
  REQUIRE(rr.nnotify == 3);
  CHECK_INT(rr.codes[0], 100);
  CHECK_STR(rr.reasons[0], "Trying");
  CHECK(strncmp(rr.states[0], "active;expires=", 15) == 0);
  CHECK_INT(rr.codes[1], 180);
  CHECK_STR(rr.reasons[1], "Ringing");
  CHECK(strncmp(rr.states[1], "active", 6) == 0);
  CHECK_INT(rr.codes[2], 200);
  CHECK_STR(rr.reasons[2], "OK");
  CHECK_STR(rr.states[2], "terminated;reason=noresource");
  CHECK(strstr(CAROL->carol_invite, "Referred-By: <sip:bob@127.0.0.1>") != NULL);
  CHECK(strstr(CAROL->carol_invite, "X-Leak") == NULL);
  CHECK(strstr(CAROL->carol_invite, "evil") == NULL);
  CHECK(strstr(CAROL->carol_invite, "Replaces") == NULL);
  CHECK(strncmp(CAROL->carol_invite, "INVITE sip:carol@", 17) == 0);
  /* the referral as Alice saw it */
  sr_referral *r = ALICE->last_referral;
  REQUIRE(r != NULL);
  CHECK_STR(sr_uri_host(sr_name_addr_uri(sr_referral_refer_to(r))), "127.0.0.1");
  CHECK_STR(sr_uri_user(sr_name_addr_uri(sr_referral_refer_to(r))), "carol");
  CHECK_STR(sr_referral_referred_by(r), "<sip:bob@127.0.0.1>");
  CHECK(sr_referral_replaces(r) == NULL);
  CHECK_STR(sr_request_method(sr_referral_request(r)), "REFER");
  CHECK_INT(sr_referral_get_state(r), SR_REFERRAL_TERMINATED);
  /* NOTIFY details on the wire */
  CHECK_INT(count_sent(ALICE, "NOTIFY "), 3);
  teardown();
}
static void test_blind_udp(void) { blind(SR_TRANSPORT_UDP); }
static void test_blind_tcp(void) { blind(SR_TRANSPORT_TCP); }

/* ------------------------------------------------------------------ */
/* Attended transfer                                                    */
/* ------------------------------------------------------------------ */

static int ended(void *v) {
  return sr_session_get_state(*(sr_session **)v) == SR_SESSION_TERMINATED;
}

static void attended(sr_transport tp) {
  setup();
  ALICE->refer_mode = 1;
  sr_session *ba = call(BOB, ALICE, tp); /* Bob–Alice */
  REQUIRE(ba != NULL);
  sr_session *bc = call(BOB, CAROL, tp); /* Bob–Carol */
  REQUIRE(bc != NULL);
  sr_session *cb = last_call(CAROL);
  rec rr = {0};
  REQUIRE(sr_session_refer_session(ba, bc, NULL, &rdel, &rr, NULL) == 0);
  CHECK(t_drive(closed, &rr, 10000));
  CHECK_INT(rr.codes[rr.nnotify - 1], 200);
  sr_referral *r = ALICE->last_referral;
  REQUIRE(r != NULL);
  char want[256];
  snprintf(want, sizeof want, "%s;to-tag=%s;from-tag=%s", sr_session_call_id(bc),
           sr_session_remote_tag(bc), sr_session_local_tag(bc));
  CHECK_STR(sr_referral_replaces(r), want);
  /* Carol's new session replaced Bob–Carol, which ends with BYE */
  sr_session *ca = last_call(CAROL);
  REQUIRE(ca != cb);
  CHECK(sr_invitation_get_replaced(ca) == cb);
  CHECK(t_drive(ended, &bc, 10000));
  CHECK_INT(sr_session_get_state(cb), SR_SESSION_TERMINATED);
  CHECK_INT(sr_session_get_state(ca), SR_SESSION_ESTABLISHED);
  CHECK(strstr(CAROL->carol_invite, "Replaces: ") != NULL);
  CHECK(strstr(CAROL->carol_invite, sr_session_call_id(bc)) != NULL);
  teardown();
}
static void test_attended_udp(void) { attended(SR_TRANSPORT_UDP); }
static void test_attended_tcp(void) { attended(SR_TRANSPORT_TCP); }

/* ------------------------------------------------------------------ */
/* Rejections and validation                                            */
/* ------------------------------------------------------------------ */

static void expect_reject(const char *target, const char *extra, int code) {
  setup();
  ALICE->refer_mode = 1;
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  rec rr = {0};
  sr_refer_options o;
  sr_refer_options_init(&o);
  o.extra_headers = extra;
  REQUIRE(sr_session_refer(last_call(BOB), target, &o, &rdel, &rr, NULL) == 0);
  CHECK(t_drive(closed, &rr, 10000));
  CHECK_INT(rr.rejects, 1);
  CHECK_INT(rr.reject_code, code);
  CHECK_INT(ALICE->nreferrals, 0);
  CHECK_INT(sr_session_get_state(a), SR_SESSION_ESTABLISHED);
  teardown();
}

static void test_reject_tel(void) { expect_reject("tel:+15551234", NULL, 416); }
/* sips needs TLS on every hop; the default schemes leave it out. */
static void test_reject_sips(void) {
  expect_reject("sips:carol@127.0.0.1", NULL, 416);
}

/* Allowed all the same, a sips target cannot be called in the clear: the
 * default handling accepts, then says 503, and Carol hears nothing. */
static void test_sips_allowed_is_unreachable(void) {
  allow_sips = 1;
  setup();
  allow_sips = 0;
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  sr_session_set_delegate(a, NULL, NULL); /* the core's default handling */
  char target[128];
  snprintf(target, sizeof target, "sips:%s",
           t_target(CAROL->ua, "carol", SR_TRANSPORT_UDP) + 4);
  rec rr = {0};
  REQUIRE(sr_session_refer(last_call(BOB), target, NULL, &rdel, &rr, NULL) == 0);
  CHECK(t_drive(closed, &rr, 10000));
  CHECK_INT(rr.accepts, 1);
  REQUIRE(rr.nnotify >= 1);
  CHECK_INT(rr.codes[rr.nnotify - 1], 503);
  CHECK_INT(CAROL->ncalls, 0);
  sr_session *inv = NULL;
  CHECK_INT(sr_ua_make_inviter(ALICE->ua, target, NULL, &inv), SR_ETRANSPORT);
  CHECK(inv == NULL);
  CHECK_INT(sr_session_get_state(last_call(ALICE)), SR_SESSION_ESTABLISHED);
  teardown();
}
static void test_reject_method(void) {
  expect_reject("sip:carol@127.0.0.1;method=BYE", NULL, 501);
}
/* A second Refer-To is refused by the sender (the core writes one); a
 * peer's REFER with two gets 400 (test_raw_validation). */
static void test_reject_two_refer_to(void) {
  setup();
  ALICE->refer_mode = 1;
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  sr_refer_options o;
  sr_refer_options_init(&o);
  o.extra_headers = "Refer-To: <sip:dave@127.0.0.1>";
  CHECK_INT(sr_session_refer(last_call(BOB), "sip:carol@127.0.0.1", &o, NULL,
                             NULL, NULL), SR_EINVAL);
  CHECK_INT(sr_session_get_state(a), SR_SESSION_ESTABLISHED);
  teardown();
}

static int policy_code;
static int policy(sr_ua *ua, sr_referral *r, void *ud) {
  (void)ua; (void)r; (void)ud;
  return policy_code;
}

static void test_policy_denies(void) {
  setup();
  sr_ua_delegate d = {0};
  d.on_invite = on_invite;
  d.on_refer_policy = policy;
  sr_ua_set_delegate(ALICE->ua, &d, ALICE);
  policy_code = 403;
  ALICE->refer_mode = 1;
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  rec rr = {0};
  REQUIRE(bob_refers_to_carol(NULL, &rr) == 0);
  CHECK(t_drive(closed, &rr, 10000));
  CHECK_INT(rr.reject_code, 403);
  CHECK_INT(ALICE->nreferrals, 0);
  teardown();
}

static void test_app_rejects(void) {
  setup();
  ALICE->refer_mode = 2; /* keep pending, then reject from here */
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  rec rr = {0};
  REQUIRE(bob_refers_to_carol(NULL, &rr) == 0);
  want_notify dummy = {&rr, 0};
  (void)dummy;
  sr_referral **lr = &ALICE->last_referral;
  CHECK(t_drive(established, &a, 100)); /* the REFER arrives */
  int tries = 0;
  while (!*lr && tries++ < 100) t_drive(NULL, NULL, 20);
  REQUIRE(*lr != NULL);
  sr_response_options o;
  sr_response_options_init(&o);
  o.status_code = 200;
  CHECK_INT(sr_referral_reject(*lr, &o), SR_EINVAL); /* reject needs >= 300 */
  o.status_code = 404;
  CHECK_INT(sr_referral_accept(*lr, &o), SR_EINVAL); /* accept needs 2xx */
  CHECK_INT(sr_referral_reject(*lr, NULL), 0);
  CHECK_INT(sr_referral_reject(*lr, NULL), SR_EALREADY);
  CHECK_INT(sr_referral_accept(*lr, NULL), SR_EALREADY);
  sr_session *inv = NULL;
  CHECK_INT(sr_referral_make_inviter(*lr, NULL, &inv), SR_ESTATE);
  CHECK(sr_referral_get_inviter(*lr) == NULL);
  CHECK(sr_referral_get_inviter(NULL) == NULL);
  CHECK(t_drive(closed, &rr, 10000));
  CHECK_INT(rr.reject_code, 603);
  CHECK_INT(sr_referral_get_state(*lr), SR_REFERRAL_REJECTED);
  teardown();
}

static void test_target_rejects_486(void) {
  setup();
  ALICE->refer_mode = 1;
  CAROL->answer_mode = 2;
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  rec rr = {0};
  REQUIRE(bob_refers_to_carol(NULL, &rr) == 0);
  CHECK(t_drive(closed, &rr, 10000));
  CHECK_INT(rr.codes[rr.nnotify - 1], 486);
  CHECK_STR(rr.reasons[rr.nnotify - 1], "Busy Here");
  CHECK_STR(rr.states[rr.nnotify - 1], "terminated;reason=noresource");
  teardown();
}

static void test_refer_sub_false(void) {
  setup();
  ALICE->refer_mode = 1;
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  rec rr = {0};
  sr_refer_options o;
  sr_refer_options_init(&o);
  o.refer_sub = 0;
  REQUIRE(bob_refers_to_carol(&o, &rr) == 0);
  CHECK(t_drive(closed, &rr, 10000));
  CHECK_INT(rr.accepts, 1);
  /* the transfer still happens, without a NOTIFY */
  sr_session *c = NULL;
  int tries = 0;
  while (!(c = last_call(CAROL)) && tries++ < 200) t_drive(NULL, NULL, 20);
  REQUIRE(c != NULL);
  CHECK(t_drive(established, &c, 10000));
  CHECK_INT(count_sent(ALICE, "NOTIFY "), 0);
  CHECK_INT(rr.nnotify, 0);
  CHECK_INT(sr_referral_get_refer_sub(ALICE->last_referral), 0);
  int saw = 0;
  for (int i = 0; i < ALICE->nsent; i++) saw |= strncmp(ALICE->sent[i], "SIP/2.0 202", 11) == 0;
  CHECK(saw);
  teardown();
}

static void test_two_concurrent_refers(void) {
  setup();
  ALICE->refer_mode = 1;
  CAROL->answer_mode = 0;
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  rec r1 = {0}, r2 = {0};
  sr_referrer *x = NULL, *y = NULL;
  REQUIRE(sr_session_refer(last_call(BOB), t_target(CAROL->ua, "carol", SR_TRANSPORT_UDP),
                           NULL, &rdel, &r1, &x) == 0);
  REQUIRE(sr_session_refer(last_call(BOB), t_target(CAROL->ua, "carol", SR_TRANSPORT_TCP),
                           NULL, &rdel, &r2, &y) == 0);
  CHECK(sr_referrer_get_id(x) != sr_referrer_get_id(y));
  CHECK(t_drive(closed, &r1, 10000));
  CHECK(t_drive(closed, &r2, 10000));
  CHECK_INT(r1.codes[r1.nnotify - 1], 200);
  CHECK_INT(r2.codes[r2.nnotify - 1], 200);
  CHECK_INT(ALICE->nreferrals, 2);
  sr_referrer_unref(x);
  sr_referrer_unref(y);
  teardown();
}

static int has_bob_call(void *v) {
  (void)v;
  return last_call(BOB) != NULL && sr_session_local_tag(last_call(BOB)) != NULL;
}

static int has_remote_tag(void *s) { return sr_session_remote_tag(s) != NULL; }

static int has_carol(void *v) {
  (void)v;
  return last_call(CAROL) != NULL;
}

static void test_referrer_hangs_up(void) {
  setup();
  ALICE->refer_mode = 1;
  CAROL->answer_mode = 1; /* rings only, answered later */
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  sr_session *b = last_call(BOB);
  rec rr = {0};
  REQUIRE(sr_session_refer(b, t_target(CAROL->ua, "carol", SR_TRANSPORT_UDP), NULL,
                           &rdel, &rr, NULL) == 0);
  CHECK(t_drive(has_carol, NULL, 10000));
  want_notify w = {&rr, 2};
  CHECK(t_drive(notified, &w, 10000)); /* 100, 180 */
  int before = count_sent(ALICE, "NOTIFY ");
  CHECK_INT(sr_session_bye(b), 0);
  CHECK(t_drive(ended, &a, 10000));
  CHECK_INT(sr_referral_get_state(ALICE->last_referral), SR_REFERRAL_TERMINATED);
  CHECK_INT(sr_referral_notify(ALICE->last_referral, 200, NULL), SR_ESTATE);
  sr_session *c = last_call(CAROL);
  CHECK_INT(sr_invitation_accept(c, NULL), 0);
  sr_session *ac = ALICE->calls[ALICE->ncalls - 1];
  CHECK(t_drive(established, &ac, 10000));
  CHECK_INT(sr_session_get_state(c), SR_SESSION_ESTABLISHED);
  CHECK_INT(count_sent(ALICE, "NOTIFY "), before);
  teardown();
}

static void test_decision_deadline(void) {
  short_deadline = 1;
  setup();
  ALICE->refer_mode = 2;
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  rec rr = {0};
  REQUIRE(bob_refers_to_carol(NULL, &rr) == 0);
  CHECK(t_drive(closed, &rr, 10000));
  CHECK_INT(rr.reject_code, 603);
  CHECK_INT(sr_referral_get_state(ALICE->last_referral), SR_REFERRAL_REJECTED);
  short_deadline = 0;
  teardown();
}

static void test_referral_after_session_ended(void) {
  setup();
  ALICE->refer_mode = 3; /* accept only */
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  rec rr = {0};
  REQUIRE(bob_refers_to_carol(NULL, &rr) == 0);
  want_notify w = {&rr, 1};
  CHECK(t_drive(notified, &w, 10000));
  sr_session_bye(a);
  CHECK(t_drive(ended, &a, 10000));
  sr_referral *r = ALICE->last_referral;
  CHECK_INT(sr_referral_get_state(r), SR_REFERRAL_TERMINATED);
  CHECK_INT(sr_referral_accept(r, NULL), SR_ECLOSED);
  CHECK_INT(sr_referral_notify(r, 180, NULL), SR_ESTATE);
  /* views stay readable */
  CHECK_STR(sr_uri_user(sr_name_addr_uri(sr_referral_refer_to(r))), "carol");
  teardown();
}

static void test_manual_notify(void) {
  setup();
  ALICE->refer_mode = 3;
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  rec rr = {0};
  REQUIRE(bob_refers_to_carol(NULL, &rr) == 0);
  want_notify w = {&rr, 1};
  CHECK(t_drive(notified, &w, 10000));
  sr_referral *r = ALICE->last_referral;
  CHECK_INT(sr_referral_set_notify_mode(r, SR_NOTIFY_NONE), 0);
  CHECK_INT(sr_referral_notify(r, 183, "Session Progress"), 0);
  CHECK_INT(sr_referral_notify(r, 503, "Gateway Busy"), 0);
  CHECK(t_drive(closed, &rr, 10000));
  CHECK_INT(rr.nnotify, 3);
  CHECK_INT(rr.codes[1], 183);
  CHECK_INT(rr.codes[2], 503);
  CHECK_STR(rr.reasons[2], "Gateway Busy");
  CHECK_STR(rr.states[2], "terminated;reason=noresource");
  teardown();
}

/* ------------------------------------------------------------------ */
/* Raw REFERs: missing Refer-To, unknown dialog, out of dialog          */
/* ------------------------------------------------------------------ */

static int raw_fd = -1;
static char raw_buf[8192];

static int raw_got(void *v) {
  (void)v;
  ssize_t n = recv(raw_fd, raw_buf, sizeof raw_buf - 1, MSG_DONTWAIT);
  if (n <= 0) return 0;
  raw_buf[n] = 0;
  return 1;
}

static int raw_open(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, (struct sockaddr *)&a, sizeof a);
  return fd;
}

static int raw_port(int fd) {
  struct sockaddr_in a;
  socklen_t l = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &l);
  return ntohs(a.sin_port);
}

static void raw_send(int fd, sr_ua *to, const char *msg) {
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)sr_ua_local_port(to, SR_TRANSPORT_UDP));
  sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&a, sizeof a);
}

/* A REFER from a raw socket. to_tag/call_id name a dialog or not. */
static int raw_refer(sr_ua *to, const char *call_id, const char *to_tag,
                     const char *from_tag, const char *refer_to_lines,
                     int cseq) {
  char msg[2048];
  static int branch;
  int port = raw_port(raw_fd);
  snprintf(msg, sizeof msg,
           "REFER sip:alice@127.0.0.1:%d SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKraw%d;rport\r\n"
           "From: <sip:bob@127.0.0.1>;tag=%s\r\n"
           "To: <sip:alice@127.0.0.1>%s%s\r\n"
           "Call-ID: %s\r\nCSeq: %d REFER\r\n"
           "Contact: <sip:bob@127.0.0.1:%d>\r\nMax-Forwards: 70\r\n%s"
           "Content-Length: 0\r\n\r\n",
           sr_ua_local_port(to, SR_TRANSPORT_UDP), port, ++branch, from_tag,
           to_tag ? ";tag=" : "", to_tag ? to_tag : "", call_id, cseq, port,
           refer_to_lines);
  raw_send(raw_fd, to, msg);
  if (!t_drive(raw_got, NULL, 5000)) return -1;
  return atoi(raw_buf + 8);
}

/* Refer-Sub: false with a parameter is still false (RFC 4488's grammar
 * allows extension parameters). */
static void test_refer_sub_false_params(void) {
  setup();
  ALICE->refer_mode = 3; /* accept only */
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  raw_fd = raw_open();
  const char *cid = sr_session_call_id(a);
  const char *lt = sr_session_local_tag(a), *rt = sr_session_remote_tag(a);
  CHECK_INT(raw_refer(ALICE->ua, cid, lt, rt,
                      "Refer-To: <sip:carol@127.0.0.1:9>\r\n"
                      "Refer-Sub: FALSE ;x=1\r\n", 100), 202);
  CHECK(strstr(raw_buf, "\r\nRefer-Sub: false\r\n") != NULL);
  REQUIRE(ALICE->last_referral != NULL);
  CHECK_INT(sr_referral_get_refer_sub(ALICE->last_referral), 0);
  CHECK_INT(count_sent(ALICE, "NOTIFY "), 0);
  close(raw_fd);
  teardown();
}

static void test_raw_validation(void) {
  setup();
  ALICE->refer_mode = 1;
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  raw_fd = raw_open();
  const char *cid = sr_session_call_id(a);
  const char *lt = sr_session_local_tag(a), *rt = sr_session_remote_tag(a);
  CHECK_INT(raw_refer(ALICE->ua, cid, lt, rt, "", 100), 400);
  CHECK(strstr(raw_buf, "Missing Refer-To") != NULL);
  CHECK_INT(raw_refer(ALICE->ua, cid, lt, rt,
                      "Refer-To: <sip:a@127.0.0.1>\r\nRefer-To: <sip:b@127.0.0.1>\r\n", 101), 400);
  CHECK(strstr(raw_buf, "Multiple Refer-To") != NULL);
  CHECK_INT(raw_refer(ALICE->ua, cid, lt, rt, "Refer-To: <sip:a@127.0.0.1\r\n", 102), 400);
  CHECK(strstr(raw_buf, "Bad Refer-To") != NULL);
  CHECK_INT(raw_refer(ALICE->ua, cid, lt, rt, "Refer-To: <sip:a@127.0.0.1?Replaces=%zz>\r\n", 103), 400);
  CHECK_INT(raw_refer(ALICE->ua, cid, lt, rt, "Refer-To: <tel:+1555>\r\n", 104), 416);
  CHECK_INT(raw_refer(ALICE->ua, cid, lt, rt, "r: <sip:a@127.0.0.1;method=SUBSCRIBE>\r\n", 105), 501);
  /* unknown dialog, out of dialog */
  CHECK_INT(raw_refer(ALICE->ua, "nosuchcall", "x1", "y1", "Refer-To: <sip:a@127.0.0.1>\r\n", 1), 481);
  int ood = raw_refer(ALICE->ua, "ood-call", NULL, "y2", "Refer-To: <sip:a@127.0.0.1>\r\n", 1);
  if (ood != 405) fprintf(stderr, "%s\n", raw_buf);
  CHECK_INT(ood, 405);
  CHECK(strstr(raw_buf, "Allow:") != NULL);
  CHECK_INT(ALICE->nreferrals, 0);
  CHECK_INT(sr_session_get_state(a), SR_SESSION_ESTABLISHED);
  close(raw_fd);
  teardown();
}

static sr_referral *ood_referral;
static void ood_on_refer(sr_ua *ua, sr_referral *r, void *ud) {
  (void)ua; (void)ud;
  ood_referral = sr_referral_ref(r);
  CHECK(sr_referral_get_session(r) == NULL);
  CHECK_INT(sr_referral_accept(r, NULL), 0);
}

static void test_out_of_dialog_allowed(void) {
  allow_ood = 1;
  setup();
  allow_ood = 0;
  sr_ua_delegate d = {0};
  d.on_refer = ood_on_refer;
  sr_ua_set_delegate(ALICE->ua, &d, ALICE);
  raw_fd = raw_open();
  CHECK_INT(raw_refer(ALICE->ua, "ood-1", NULL, "ft1", "Refer-To: <sip:carol@127.0.0.1:9>\r\n", 7), 202);
  REQUIRE(ood_referral != NULL);
  char *tag = strstr(raw_buf, "To: <sip:alice@127.0.0.1>;tag=");
  CHECK(tag != NULL);
  /* the NOTIFY comes in the REFER's own dialog */
  CHECK(t_drive(raw_got, NULL, 5000));
  CHECK(strncmp(raw_buf, "NOTIFY sip:bob@127.0.0.1:", 25) == 0);
  CHECK(strstr(raw_buf, "Event: refer;id=7") != NULL);
  CHECK(strstr(raw_buf, "Call-ID: ood-1") != NULL);
  CHECK(strstr(raw_buf, "SIP/2.0 100 Trying") != NULL);
  sr_referral_unref(ood_referral);
  ood_referral = NULL;
  close(raw_fd);
  teardown();
}


/* Bob refers Alice, who accepts and never follows; the subscription
 * expires after 1 s. */
static int refer_short_expiry(rec *rr) {
  short_expiry = 1;
  setup();
  short_expiry = 0;
  ALICE->refer_mode = 3; /* accepted, never followed */
  if (!call(ALICE, BOB, SR_TRANSPORT_UDP)) return -1;
  return bob_refers_to_carol(NULL, rr);
}

static void test_subscription_expires(void) {
  rec rr = {0};
  REQUIRE(refer_short_expiry(&rr) == 0);
  CHECK(t_drive(closed, &rr, 10000));
  CHECK_INT(rr.nnotify, 2);
  CHECK_STR(rr.states[0], "active;expires=1");
  CHECK_STR(rr.states[1], "terminated;reason=timeout");
  CHECK_INT(sr_referral_get_state(ALICE->last_referral), SR_REFERRAL_TERMINATED);
  teardown();
}

/* The timeout NOTIFY reports the last status sent, not 100 (RFC 3515
 * §2.4.5: the current status of the referenced request). */
static void test_expiry_keeps_last_status(void) {
  rec rr = {0};
  REQUIRE(refer_short_expiry(&rr) == 0);
  want_notify w = {&rr, 1};
  CHECK(t_drive(notified, &w, 5000));
  REQUIRE(ALICE->last_referral != NULL);
  char long_reason[97];
  memset(long_reason, 'x', 96);
  long_reason[96] = 0; /* one over: refused, not cut short */
  CHECK_INT(sr_referral_notify(ALICE->last_referral, 180, long_reason), SR_EINVAL);
  long_reason[95] = 0;
  CHECK_INT(sr_referral_notify(ALICE->last_referral, 181, long_reason), 0);
  CHECK_INT(sr_referral_notify(ALICE->last_referral, 180, "Ringing Carol"), 0);
  CHECK(t_drive(closed, &rr, 10000));
  REQUIRE(rr.nnotify == 4);
  CHECK_INT(rr.codes[1], 181);
  CHECK_INT(rr.codes[2], 180);
  CHECK_INT(rr.codes[3], 180);
  CHECK_STR(rr.reasons[3], "Ringing Carol");
  CHECK_STR(rr.states[3], "terminated;reason=timeout");
  teardown();
}

static void test_final_only_mode(void) {
  final_only = 1;
  setup();
  final_only = 0;
  ALICE->refer_mode = 1;
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  rec rr = {0};
  REQUIRE(bob_refers_to_carol(NULL, &rr) == 0);
  CHECK(t_drive(closed, &rr, 10000));
  CHECK_INT(rr.nnotify, 2); /* 100 and 200: no 180 */
  CHECK_INT(rr.codes[0], 100);
  CHECK_INT(rr.codes[1], 200);
  teardown();
}

static void test_bye_on_success(void) {
  setup();
  ALICE->refer_mode = 1;
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  sr_session *b = last_call(BOB);
  rec rr = {0};
  sr_refer_options o;
  sr_refer_options_init(&o);
  o.bye_on_success = 1;
  REQUIRE(sr_session_refer(b, t_target(CAROL->ua, "carol", SR_TRANSPORT_UDP), &o,
                           &rdel, &rr, NULL) == 0);
  CHECK(t_drive(closed, &rr, 10000));
  CHECK(t_drive(ended, &b, 10000));
  CHECK(t_drive(ended, &a, 10000));
  sr_session *c = last_call(CAROL);
  REQUIRE(c != NULL);
  CHECK_INT(sr_session_get_state(c), SR_SESSION_ESTABLISHED);
  teardown();
}

static void local_failure(const char *target, int code) {
  setup();
  ALICE->refer_mode = 0; /* default: accept and follow */
  sr_session *a = call(ALICE, BOB, SR_TRANSPORT_UDP);
  REQUIRE(a != NULL);
  sr_session_set_delegate(a, NULL, NULL);
  rec rr = {0};
  REQUIRE(sr_session_refer(last_call(BOB), target, NULL, &rdel, &rr, NULL) == 0);
  CHECK(t_drive(closed, &rr, 10000));
  CHECK_INT(rr.codes[rr.nnotify - 1], code);
  CHECK_STR(rr.states[rr.nnotify - 1], "terminated;reason=noresource");
  CHECK_INT(sr_session_get_state(a), SR_SESSION_ESTABLISHED);
  teardown();
}
/* nothing listens there: the connection is refused */
static void test_target_unreachable_tcp(void) {
  local_failure("sip:carol@127.0.0.1:1;transport=tcp", 503);
}
/* no IPv6 listener: the INVITE cannot even be built */
static void test_target_no_transport(void) { local_failure("sip:carol@[::1]:5099", 503); }

static void test_refer_in_early_dialog(void) {
  setup();
  BOB->answer_mode = 1; /* rings, never answers */
  sr_session *a = NULL;
  REQUIRE(sr_ua_make_inviter(ALICE->ua, t_target(BOB->ua, "bob", SR_TRANSPORT_UDP),
                             NULL, &a) == 0);
  keep(ALICE, a);
  sr_session_unref(a);
  sr_inviter_invite(a);
  CHECK(t_drive(has_bob_call, NULL, 10000));
  sr_session *b = last_call(BOB);
  raw_fd = raw_open();
  /* From Alice's side of the early dialog, towards Bob */
  CHECK_INT(raw_refer(BOB->ua, sr_session_call_id(b), sr_session_local_tag(b),
                      sr_session_remote_tag(b), "Refer-To: <sip:c@127.0.0.1>\r\n", 2),
            403);
  sr_stats st; /* Bob has no on_refer: nothing was kept for the core either */
  sr_ua_get_stats(BOB->ua, &st);
  CHECK_INT(st.referrals, 0);
  /* The caller's side of the same early dialog (Bob's 180 set its tag):
   * a REFER there would be answered 202 with no dialog for its NOTIFYs. */
  REQUIRE(t_drive(has_remote_tag, a, 10000));
  CHECK_INT(raw_refer(ALICE->ua, sr_session_call_id(a), sr_session_local_tag(a),
                      sr_session_remote_tag(a), "Refer-To: <sip:c@127.0.0.1>\r\n", 2),
            403);
  CHECK(ALICE->last_referral == NULL);
  close(raw_fd);
  sr_inviter_cancel(a);
  CHECK(t_drive(ended, &a, 10000));
  teardown();
}

/* A completed non-INVITE server transaction is kept compact (key, final
 * response bytes, Timer J) and still answers a retransmission the same. */
static void test_retransmission_after_compaction(void) {
  setup();
  raw_fd = raw_open();
  char msg[1024];
  int port = raw_port(raw_fd);
  snprintf(msg, sizeof msg,
           "OPTIONS sip:alice@127.0.0.1 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKcompact1\r\n"
           "From: <sip:x@127.0.0.1>;tag=c1\r\nTo: <sip:alice@127.0.0.1>\r\n"
           "Call-ID: compact-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
           "Content-Length: 0\r\n\r\n", port);
  raw_send(raw_fd, ALICE->ua, msg);
  REQUIRE(t_drive(raw_got, NULL, 5000));
  char first[sizeof raw_buf];
  snprintf(first, sizeof first, "%s", raw_buf);
  CHECK(strncmp(first, "SIP/2.0 200", 11) == 0);
  sr_stats st;
  sr_ua_get_stats(ALICE->ua, &st);
  CHECK_INT(st.transactions, 1); /* kept until Timer J */
  raw_send(raw_fd, ALICE->ua, msg);
  REQUIRE(t_drive(raw_got, NULL, 5000));
  CHECK_STR(raw_buf, first); /* the same response, To-tag included */
  sr_ua_get_stats(ALICE->ua, &st);
  CHECK_INT(st.transactions, 1);
  close(raw_fd);
  teardown();
}

int main(void) {
  RUN(test_sipjs_bob_refers_default);
  RUN(test_sipjs_bob_refers_delegate);
  RUN(test_sipjs_alice_refers_default);
  RUN(test_sipjs_alice_refers_delegate);
  RUN(test_sipjs_tcp);
  RUN(test_blind_udp);
  RUN(test_blind_tcp);
  RUN(test_attended_udp);
  RUN(test_attended_tcp);
  RUN(test_reject_tel);
  RUN(test_reject_sips);
  RUN(test_sips_allowed_is_unreachable);
  RUN(test_reject_method);
  RUN(test_reject_two_refer_to);
  RUN(test_policy_denies);
  RUN(test_app_rejects);
  RUN(test_target_rejects_486);
  RUN(test_refer_sub_false);
  RUN(test_refer_sub_false_params);
  RUN(test_expiry_keeps_last_status);
  RUN(test_two_concurrent_refers);
  RUN(test_referrer_hangs_up);
  RUN(test_decision_deadline);
  RUN(test_referral_after_session_ended);
  RUN(test_manual_notify);
  RUN(test_raw_validation);
  RUN(test_out_of_dialog_allowed);
  RUN(test_subscription_expires);
  RUN(test_final_only_mode);
  RUN(test_bye_on_success);
  RUN(test_target_unreachable_tcp);
  RUN(test_target_no_transport);
  RUN(test_refer_in_early_dialog);
  RUN(test_retransmission_after_compaction);
  return DONE();
}
