/*
 * test_limits.c — the limits of sr_ua_options: their defaults, and that
 * going over each one gets a clear answer (503 with Retry-After, a closed
 * TCP connection, a dropped datagram, an error code) while what is under
 * the limit keeps working.
 */
/* internal.h (for ua->opt, the values a UA actually uses) comes first:
 * libosip2 defines REQUIRE as the header name "require". */
#include "internal.h"
#undef REQUIRE
#include "harness.h"
#include "uas.h"
#include "rawsock.h"

/* The limits Bob gets (0: the default). */
static struct {
  int sessions, referrals, per_session, tcp, idle_ms, rcvbuf;
  size_t msg;
} lim;

/* Bob's overload lines (udp_receive_buffer). */
static char overload_log[4][160];
static int noverload_log;
static void bob_log(int level, const char *msg, void *ud) {
  if (strncmp(msg, "overload", 8) == 0 && noverload_log < 4)
    snprintf(overload_log[noverload_log++], sizeof overload_log[0], "%s", msg);
  t_quiet_log(level, msg, ud);
}

static void bob_limits(sr_ua_options *o) {
  o->max_sessions = lim.sessions;
  o->max_referrals = lim.referrals;
  o->max_referrals_per_session = lim.per_session;
  o->max_tcp_connections = lim.tcp;
  o->tcp_idle_timeout_ms = lim.idle_ms;
  o->max_message_size = lim.msg;
  o->udp_receive_buffer = lim.rcvbuf;
  o->log_fn = bob_log;
}

static sr_ua *A, *B, *C;
static sr_session *kept[32];
static int nkept;
static sr_referral *pending[32];
static int npending;

static void keep(sr_session *s) {
  if (nkept < 32) kept[nkept++] = sr_session_ref(s);
}

/* Bob keeps every REFER pending: the application has not decided. */
static void bob_on_refer(sr_session *s, sr_referral *r, void *ud) {
  (void)s;
  (void)ud;
  if (npending < 32) pending[npending++] = sr_referral_ref(r);
}
static const sr_session_delegate bob_sd = {NULL, NULL, bob_on_refer, NULL};

static void on_invite(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua;
  (void)ud;
  keep(inv);
  sr_session_set_delegate(inv, &bob_sd, NULL);
  sr_invitation_accept(inv, NULL);
}

/* Bob's outgoing 503s, in full, to check Retry-After. */
static char last_503[4096];
static int n503;
static int bob_hook(int out, sr_transport tp, const char *l, const char *r,
                    const char *data, size_t len, void *ud) {
  (void)tp; (void)l; (void)r; (void)ud;
  if (out && len > 12 && memcmp(data, "SIP/2.0 503 ", 12) == 0) {
    n503++;
    size_t n = len < sizeof last_503 - 1 ? len : sizeof last_503 - 1;
    memcpy(last_503, data, n);
    last_503[n] = 0;
  }
  return 0;
}

static int setup(void) {
  nkept = npending = n503 = 0;
  A = t_ua("alice", 0, 0, NULL);
  B = t_ua("bob", 0, 0, bob_limits);
  C = t_ua("carol", 0, 0, NULL);
  if (!A || !B || !C) return 0;
  sr_ua_delegate d = {0};
  d.on_invite = on_invite;
  sr_ua_set_delegate(A, &d, NULL);
  sr_ua_set_delegate(B, &d, NULL);
  sr_ua_set_delegate(C, &d, NULL);
  sr_ua_set_message_hook(B, bob_hook, NULL);
  return 1;
}

static void teardown(void) {
  for (int i = 0; i < npending; i++) sr_referral_unref(pending[i]);
  for (int i = 0; i < nkept; i++) sr_session_unref(kept[i]);
  nkept = npending = 0;
  t_free_uas();
  memset(&lim, 0, sizeof lim);
  sr_stats st;
  sr_global_stats(&st);
  CHECK_INT(st.sessions, 0);
  CHECK_INT(st.referrals, 0);
  CHECK_INT(st.referrers, 0);
}

static int up(void *v) {
  return sr_session_get_state(*(sr_session **)v) == SR_SESSION_ESTABLISHED;
}
static int over(void *v) {
  return sr_session_get_state(*(sr_session **)v) == SR_SESSION_TERMINATED;
}

/* `from` calls `to`; the caller's session (kept), or NULL if not up. */
static sr_session *call(sr_ua *from, sr_ua *to, const char *user,
                        sr_transport tp) {
  sr_session *s = NULL;
  if (sr_ua_make_inviter(from, t_target(to, user, tp), NULL, &s)) return NULL;
  keep(s);
  sr_session_unref(s);
  if (sr_inviter_invite(s) || !t_drive(up, &s, 10000)) return NULL;
  return s;
}

static void check_retry_after(void) {
  char v[64];
  int ok = t_header(last_503, "Retry-After", v, sizeof v) && atoi(v) > 0;
  if (!ok) fprintf(stderr, "  no Retry-After in: %.200s\n", last_503);
  CHECK(ok);
}

/* ---------------- defaults ---------------- */

static void test_defaults(void) {
  sr_ua_options o;
  sr_ua_options_init(&o);
  CHECK_INT(o.max_sessions, 100000);
  CHECK_INT(o.max_referrals, 10000);
  CHECK_INT(o.max_referrals_per_session, 8);
  CHECK_INT(o.max_tcp_connections, 1024);
  CHECK_INT(o.tcp_idle_timeout_ms, 120000);
  CHECK_INT(o.max_message_size, 65536);
  CHECK_INT(o.udp_receive_buffer, 4 << 20);
  CHECK_INT(o.refer_decision_timeout_ms, 10000);
  CHECK_INT(o.refer_expires_s, 60);
  CHECK_INT(o.allow_out_of_dialog_refer, 0);
  CHECK_STR(o.allowed_schemes, "sip");
  /* Zero, negative or absurdly small values fall back to the defaults:
   * a limit is never "unlimited" or zero by accident. */
  o.uri = "sip:x@127.0.0.1";
  o.max_sessions = 0;
  o.max_referrals = -1;
  o.max_referrals_per_session = 0;
  o.max_tcp_connections = -5;
  o.tcp_idle_timeout_ms = 0;
  o.max_message_size = 10;
  o.refer_decision_timeout_ms = -1;
  o.refer_expires_s = 0;
  o.udp_receive_buffer = -3;
  sr_ua *ua;
  REQUIRE(sr_ua_new(&ua, &o) == 0);
  CHECK_INT(ua->opt.max_sessions, 100000);
  CHECK_INT(ua->opt.max_referrals, 10000);
  CHECK_INT(ua->opt.max_referrals_per_session, 8);
  CHECK_INT(ua->opt.max_tcp_connections, 1024);
  CHECK_INT(ua->opt.tcp_idle_timeout_ms, 120000);
  CHECK(ua->opt.max_message_size >= 1024);
  CHECK_INT(ua->opt.refer_decision_timeout_ms, 10000);
  CHECK_INT(ua->opt.refer_expires_s, 60);
  CHECK_INT(ua->opt.udp_receive_buffer, 4 << 20);
  sr_ua_unref(ua);
  /* Nor absurdly large: the receive buffer is allocated at that size. */
  o.max_message_size = (size_t)1 << 40;
  REQUIRE(sr_ua_new(&ua, &o) == 0);
  CHECK_INT(ua->opt.max_message_size, 16 << 20);
  sr_ua_unref(ua);
}

/* ---------------- sessions ---------------- */

static const char *invite_tmpl =
    "INVITE sip:bob@$UA SIP/2.0\n"
    "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
    "From: <sip:raw@127.0.0.1>;tag=r1\n"
    "To: <sip:bob@$UA>\n"
    "Call-ID: $CID\n"
    "CSeq: 1 INVITE\n"
    "Contact: <sip:raw@$ME$TR>\n"
    "Max-Forwards: 70\n"
    "Content-Length: 0\n\n";

static void test_max_sessions(void) {
  lim.sessions = 2;
  REQUIRE(setup());
  sr_session *a1 = call(A, B, "bob", SR_TRANSPORT_UDP);
  sr_session *a2 = call(A, B, "bob", SR_TRANSPORT_TCP);
  REQUIRE(a1 && a2);
  /* A third INVITE, from Alice and from a raw peer: 503, Retry-After. */
  sr_session *a3 = NULL;
  REQUIRE(sr_ua_make_inviter(A, t_target(B, "bob", SR_TRANSPORT_UDP), NULL, &a3) == 0);
  keep(a3);
  sr_session_unref(a3);
  CHECK_INT(sr_inviter_invite(a3), 0);
  CHECK(t_drive(over, &a3, 10000));
  CHECK(n503 >= 1);
  check_retry_after();
  CHECK(strstr(last_503, "Too Many Sessions") != NULL);
  t_raw r;
  REQUIRE(t_raw_connect(&r, SR_TRANSPORT_UDP, sr_ua_local_port(B, SR_TRANSPORT_UDP)) == 0);
  CHECK(t_raw_sendf(&r, invite_tmpl) == 0);
  const char *m = t_raw_recv(&r, 5000);
  CHECK_INT(t_status(m), 503);
  t_raw_close(&r);
  /* Bob cannot start one either. */
  sr_session *b = NULL;
  CHECK_INT(sr_ua_make_inviter(B, t_target(C, "carol", SR_TRANSPORT_UDP), NULL, &b),
            SR_ELIMIT);
  CHECK(b == NULL);
  /* The two calls are unharmed; when one ends, a new call gets through. */
  CHECK_INT(sr_session_get_state(a1), SR_SESSION_ESTABLISHED);
  CHECK_INT(sr_session_get_state(a2), SR_SESSION_ESTABLISHED);
  CHECK_INT(sr_session_bye(a1), 0);
  CHECK(t_drive(over, &a1, 10000));
  for (int i = 0; i < nkept; i++) /* Bob lets go of his ended session */
    if (sr_session_get_ua(kept[i]) == B && sr_session_get_state(kept[i]) == SR_SESSION_TERMINATED) {
      sr_session_unref(kept[i]);
      kept[i] = kept[--nkept];
      i--;
    }
  CHECK(call(A, B, "bob", SR_TRANSPORT_UDP) != NULL);
  sr_stats st;
  sr_ua_get_stats(B, &st);
  CHECK(st.sessions <= 2);
  teardown();
}

/* ---------------- referrals ---------------- */

typedef struct { int rejected, code; char reason[64]; } refer_result;
static void r_reject(sr_referrer *r, int code, const char *reason, void *ud) {
  (void)r;
  refer_result *x = ud;
  x->rejected++;
  x->code = code;
  snprintf(x->reason, sizeof x->reason, "%s", reason);
}
static const sr_referrer_delegate rdel = {NULL, r_reject, NULL, NULL};

static int npending_at_least(void *v) { return npending >= *(int *)v; }
static int rejected(void *v) { return ((refer_result *)v)->rejected > 0; }

/* Sends a REFER in s (to Carol); 0 once it is pending at Bob, else the
 * status it was rejected with; -2 if neither came. */
static int refer(sr_session *s) {
  refer_result res = {0};
  int before = npending, want = npending + 1;
  if (sr_session_refer(s, t_target(C, "carol", SR_TRANSPORT_UDP), NULL, &rdel, &res,
                       NULL))
    return -1;
  for (int i = 0; i < 1000 && npending == before && !res.rejected; i++)
    t_drive(npending_at_least, &want, 10);
  if (npending > before) return 0;
  if (!res.rejected) t_drive(rejected, &res, 5000);
  return res.rejected ? res.code : -2;
}

static void test_max_referrals_per_session(void) {
  lim.per_session = 2;
  REQUIRE(setup());
  sr_session *ab = call(A, B, "bob", SR_TRANSPORT_UDP);
  sr_session *cb = call(C, B, "bob", SR_TRANSPORT_UDP);
  REQUIRE(ab && cb);
  CHECK_INT(refer(ab), 0);
  CHECK_INT(refer(ab), 0);
  CHECK_INT(refer(ab), 503);
  check_retry_after();
  CHECK(strstr(last_503, "Too Many Pending Referrals") != NULL);
  /* Another dialog is not affected. */
  CHECK_INT(refer(cb), 0);
  /* A decided referral frees its place. */
  CHECK_INT(sr_referral_reject(pending[0], NULL), 0);
  CHECK_INT(refer(ab), 0);
  CHECK_INT(refer(ab), 503);
  teardown();
}

static void test_max_referrals(void) {
  lim.referrals = 3;
  REQUIRE(setup());
  sr_session *ab = call(A, B, "bob", SR_TRANSPORT_UDP);
  sr_session *cb = call(C, B, "bob", SR_TRANSPORT_UDP);
  REQUIRE(ab && cb);
  CHECK_INT(refer(ab), 0);
  CHECK_INT(refer(ab), 0);
  CHECK_INT(refer(cb), 0);
  CHECK_INT(refer(cb), 503); /* the UA's limit, over both dialogs */
  check_retry_after();
  CHECK_INT(refer(ab), 503);
  /* An accepted referral counts until its subscription ends. */
  CHECK_INT(sr_referral_accept(pending[0], NULL), 0);
  CHECK_INT(refer(ab), 503);
  CHECK_INT(sr_referral_notify(pending[0], 603, "Decline"), 0); /* final */
  CHECK_INT(refer(ab), 0);
  sr_stats st;
  sr_ua_get_stats(B, &st);
  CHECK(st.referrals <= 4);
  teardown();
}

/* ---------------- TCP ---------------- */

static const char *options_tmpl =
    T_OPTIONS_TO_BOB
    "Content-Length: 0\n\n";

static int options_ok(t_raw *r) {
  if (t_raw_sendf(r, options_tmpl) < 0) return 0;
  return t_status(t_raw_recv(r, 5000)) == 200;
}

static int b_conns(void) {
  sr_stats st;
  sr_ua_get_stats(B, &st);
  return st.connections;
}
static int b_conns_is(void *want) { return b_conns() == *(int *)want; }

static void test_max_tcp_connections(void) {
  lim.tcp = 3;
  REQUIRE(setup());
  int port = sr_ua_local_port(B, SR_TRANSPORT_TCP);
  t_raw r[5];
  for (int i = 0; i < 3; i++) {
    REQUIRE(t_raw_connect(&r[i], SR_TRANSPORT_TCP, port) == 0);
    CHECK(options_ok(&r[i]));
  }
  CHECK_INT(b_conns(), 3);
  /* The fourth is accepted by the kernel, then closed by Bob unanswered. */
  REQUIRE(t_raw_connect(&r[3], SR_TRANSPORT_TCP, port) == 0);
  t_raw_sendf(&r[3], options_tmpl);
  CHECK(t_raw_wait_closed(&r[3], 5000) != 0);
  CHECK_INT(r[3].msglen, 0);
  CHECK_INT(b_conns(), 3);
  /* The three still work. */
  for (int i = 0; i < 3; i++) CHECK(options_ok(&r[i]));
  /* Bob cannot open one of his own: his call fails with 503. */
  sr_session *b = NULL;
  REQUIRE(sr_ua_make_inviter(B, t_target(C, "carol", SR_TRANSPORT_TCP), NULL, &b) == 0);
  keep(b);
  sr_session_unref(b);
  CHECK_INT(sr_inviter_invite(b), 0);
  CHECK(t_drive(over, &b, 10000));
  /* One goes away; a new one is taken. */
  t_raw_close(&r[0]);
  int two = 2;
  CHECK(t_drive(b_conns_is, &two, 5000));
  REQUIRE(t_raw_connect(&r[4], SR_TRANSPORT_TCP, port) == 0);
  CHECK(options_ok(&r[4]));
  CHECK_INT(b_conns(), 3);
  for (int i = 1; i < 5; i++) t_raw_close(&r[i]);
  teardown();
}

static void test_tcp_idle_timeout(void) {
  lim.idle_ms = 300;
  REQUIRE(setup());
  int port = sr_ua_local_port(B, SR_TRANSPORT_TCP);
  t_raw busy, silent;
  /* A connection that did some work, and one that never says anything:
   * both are closed once idle (the bound only stops a broken test). */
  REQUIRE(t_raw_connect(&busy, SR_TRANSPORT_TCP, port) == 0);
  CHECK(options_ok(&busy));
  REQUIRE(t_raw_connect(&silent, SR_TRANSPORT_TCP, port) == 0);
  CHECK_INT(t_raw_wait_closed(&busy, 10000), 1);
  CHECK_INT(t_raw_wait_closed(&silent, 10000), 1);
  int zero = 0;
  CHECK(t_drive(b_conns_is, &zero, 5000));
  /* A call over TCP survives its connection going idle: the next request
   * opens a new one. */
  sr_session *ab = call(A, B, "bob", SR_TRANSPORT_TCP);
  REQUIRE(ab != NULL);
  CHECK(t_drive(b_conns_is, &zero, 10000));
  CHECK_INT(sr_session_bye(ab), 0);
  CHECK(t_drive(over, &ab, 10000));
  t_raw_close(&busy);
  t_raw_close(&silent);
  teardown();
}

/* ---------------- message size ---------------- */

#define SMALL 4096

/* OPTIONS padded to `size` bytes in all. */
static const char *padded(t_raw *r, size_t size) {
  static char t[T_RAW_MAX], out[T_RAW_MAX];
  size_t base = t_raw_fmt(r, options_tmpl, out, sizeof out) + 10;
  size_t pad = size > base ? size - base : 1;
  int k = snprintf(t, sizeof t,
                   "OPTIONS sip:bob@$UA SIP/2.0\n"
                   "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
                   "From: <sip:raw@127.0.0.1>;tag=r1\n"
                   "To: <sip:bob@$UA>\nCall-ID: $CID\nCSeq: 1 OPTIONS\n"
                   "Max-Forwards: 70\nX-Pad: ");
  memset(t + k, 'p', pad);
  strcpy(t + k + pad, "\nContent-Length: 0\n\n");
  return t;
}

static void test_max_message_size(void) {
  lim.msg = SMALL;
  REQUIRE(setup());
  t_raw u, t, t2, t3;
  REQUIRE(t_raw_connect(&u, SR_TRANSPORT_UDP, sr_ua_local_port(B, SR_TRANSPORT_UDP)) == 0);
  /* UDP: under the limit answered, over it dropped (and the socket goes
   * on: the next request is answered). */
  CHECK(t_raw_sendf(&u, padded(&u, SMALL - 200)) == 0);
  CHECK_INT(t_status(t_raw_recv(&u, 5000)), 200);
  CHECK(t_raw_sendf(&u, padded(&u, SMALL + 200)) == 0);
  CHECK(options_ok(&u));
  CHECK(t_raw_sendf(&u, padded(&u, 60000)) == 0);
  CHECK(options_ok(&u));
  /* TCP: over the limit closes the connection; under it, answered. */
  int port = sr_ua_local_port(B, SR_TRANSPORT_TCP);
  REQUIRE(t_raw_connect(&t, SR_TRANSPORT_TCP, port) == 0);
  CHECK(t_raw_sendf(&t, padded(&t, SMALL - 200)) == 0);
  CHECK_INT(t_status(t_raw_recv(&t, 5000)), 200);
  CHECK(t_raw_sendf(&t, padded(&t, SMALL + 200)) == 0);
  CHECK(t_raw_wait_closed(&t, 5000) != 0);
  /* A header block that never ends, and a Content-Length far over the
   * limit (answered 513 first): closed too, without waiting for (or
   * storing) the bytes. */
  REQUIRE(t_raw_connect(&t2, SR_TRANSPORT_TCP, port) == 0);
  char *junk = malloc(3 * SMALL);
  memset(junk, 'x', 3 * SMALL);
  memcpy(junk, "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nX-Endless: ", 46);
  t_raw_send(&t2, junk, 3 * SMALL);
  free(junk);
  CHECK(t_raw_wait_closed(&t2, 5000) != 0);
  REQUIRE(t_raw_connect(&t3, SR_TRANSPORT_TCP, port) == 0);
  CHECK(t_raw_sendf(&t3, "OPTIONS sip:bob@$UA SIP/2.0\nVia: SIP/2.0/TCP $ME;branch=$BR\n"
                         "From: <sip:r@h>;tag=1\nTo: <sip:bob@$UA>\nCall-ID: $CID\n"
                         "CSeq: 1 OPTIONS\nContent-Length: 99999999999\n\n") == 0);
  CHECK_INT(t_status(t_raw_recv(&t3, 5000)), 513);
  CHECK(t_raw_wait_closed(&t3, 5000) != 0);
  int zero = 0;
  CHECK(t_drive(b_conns_is, &zero, 5000));
  /* Bob's own message over the limit is not sent: a clear error; a
   * target over it alone is refused at the call. */
  sr_session *ab = call(A, B, "bob", SR_TRANSPORT_UDP);
  REQUIRE(ab != NULL);
  sr_session *ba = kept[nkept - 1];
  char *far = malloc(SMALL + 100);
  int k = snprintf(far, SMALL + 100, "sip:carol@127.0.0.1:%d;x=",
                   sr_ua_local_port(C, SR_TRANSPORT_UDP));
  memset(far + k, 'y', SMALL);
  far[k + SMALL - 1] = 0;
  refer_result res = {0};
  CHECK_INT(sr_session_refer(ba, far, NULL, &rdel, &res, NULL), SR_ETOOBIG);
  far[SMALL - 60] = 0; /* fits; the REFER around it does not */
  CHECK_INT(sr_session_refer(ba, far, NULL, &rdel, &res, NULL), 0);
  CHECK(t_drive(rejected, &res, 5000));
  CHECK_INT(res.code, 503);
  free(far);
  CHECK_INT(sr_session_get_state(ab), SR_SESSION_ESTABLISHED);
  t_raw_close(&u);
  t_raw_close(&t);
  t_raw_close(&t2);
  t_raw_close(&t3);
  teardown();
}

/* ---------------- overload ---------------- */

static const char *stray_bye_tmpl =
    "BYE sip:bob@$UA SIP/2.0\nVia: SIP/2.0/UDP $ME;branch=$BR;rport\n"
    "From: <sip:raw@127.0.0.1>;tag=r1\nTo: <sip:bob@$UA>;tag=gone\n"
    "Call-ID: $CID\nCSeq: 2 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n";

/* What a burst got back, by the index in its Call-ID ("raw-PORT-ID@"). */
#define BURST 600
static int answer[BURST + 2], n_answers, retry_after_ok, call_503;
static unsigned burst_base;

static int burst_index(const char *m) {
  char cid[64];
  unsigned port, id;
  if (!t_header(m, "Call-ID", cid, sizeof cid) ||
      sscanf(cid, "raw-%u-%u@", &port, &id) != 2 || id <= burst_base ||
      id - burst_base > BURST + 1)
    return -1;
  return (int)(id - burst_base);
}

/* Takes in Bob's answers (the first final one per request) and tells
 * whether he logged the end of the overload. */
static int take_answers(t_raw *r) {
  while (t_raw_poll_msg(r) && r->msglen) {
    int code = t_status(r->msg), k = burst_index(r->msg);
    if (k == 1 && code == 503) call_503++; /* (#150 has #1's Call-ID) */
    if (code < 200 || k < 0 || answer[k]) continue;
    answer[k] = code;
    n_answers++;
    char v[32];
    if (code == 503 && t_header(r->msg, "Retry-After", v, sizeof v) &&
        atoi(v) > 0)
      retry_after_ok++;
  }
  return noverload_log >= 2;
}
static int want_answers;
static int answered(t_raw *r) {
  take_answers(r);
  return n_answers >= want_answers;
}

/* Queues `n` requests at Bob before his loop reads one: an INVITE first
 * (kept, and sent again at 150), then OPTIONS, every 10th a BYE in a
 * dialog Bob does not have. */
static void burst(t_raw *r, int n, const char *invite, size_t invite_len) {
  burst_base = r->seq;
  memset(answer, 0, sizeof answer);
  n_answers = retry_after_ok = call_503 = 0;
  for (int k = 1; k <= n; k++) {
    if (k == 150 && invite) {
      t_raw_send(r, invite, invite_len);
      r->seq++; /* (keeps Call-ID numbers in step with k) */
    } else {
      t_raw_sendf(r, k == 1 && invite ? invite_tmpl
                     : k % 10 == 0    ? stray_bye_tmpl
                                      : options_tmpl);
    }
  }
}

/* A burst that fills more than half of Bob's receive buffer: what came
 * first is served; then, until the queue is under a quarter, new requests
 * get 503 with Retry-After while the work already started goes on (a BYE
 * in a dialog gets its 481, the INVITE sent again is its call's); after
 * that, requests are served again. A burst under half is served whole. */
static void test_overload(void) {
  lim.rcvbuf = 200000; /* under Debian's default rmem_max: the same here and there */
  noverload_log = 0;
  REQUIRE(setup());
  t_raw r;
  REQUIRE(t_raw_connect(&r, SR_TRANSPORT_UDP, sr_ua_local_port(B, SR_TRANSPORT_UDP)) == 0);
  int big = 1 << 22;
  setsockopt(r.fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  /* The kept INVITE: Call-ID number 1 of the burst. */
  static char invite[4096];
  burst_base = r.seq;
  size_t invite_len = t_raw_fmt(&r, invite_tmpl, invite, sizeof invite);
  r.seq = burst_base; /* the burst formats it again, with the same numbers */
  REQUIRE(invite_len > 0);
  burst(&r, BURST, invite, invite_len);
  /* Until Bob has drained his queue (the kernel may have dropped some of
   * the tail: the buffer was full). His answers are sent by then. */
  CHECK(t_raw_drive(&r, take_answers, 20000));
  int served = 0, shed = 0, bye481 = 0, bye503 = 0, first_shed = 0;
  for (int k = 1; k <= BURST; k++) {
    if (answer[k] == 503) {
      shed++;
      if (!first_shed) first_shed = k;
    }
    if (answer[k] == 200) served++;
    if (k % 10 == 0 && k != 150) {
      bye481 += answer[k] == 481;
      bye503 += answer[k] == 503;
    }
  }
  CHECK_INT(answer[1], 200);       /* the call */
  CHECK_INT(call_503, 0);          /* its INVITE again (#150): the call's own */
  CHECK(first_shed > 64);          /* the first batch was served */
  CHECK(shed > 0);
  CHECK_INT(retry_after_ok, shed);
  CHECK_INT(bye503, 0);            /* in a dialog: never shed */
  CHECK(bye481 > 0);
  CHECK(served > 0);
  if (getenv("SR_TEST_LOG"))
    fprintf(stderr, "  burst: %d answered, %d served, %d shed from #%d, %d BYE 481\n",
            n_answers, served, shed, first_shed, bye481);
  CHECK(noverload_log >= 2);
  CHECK(strstr(overload_log[0], "overloaded: the receive queue of udp ") != NULL);
  const char *over = strstr(overload_log[1], "overload over on udp ");
  CHECK(over && strstr(over, " requests got 503"));
  if (over) CHECK_INT(atoi(strchr(over + 21, ' ') + 1), shed);
  sr_stats st;
  sr_ua_get_stats(B, &st);
  CHECK_INT(st.sessions, 1);
  /* The queue drained: a request is served; a burst under half of the
   * buffer (40 requests) is served whole. */
  noverload_log = 0;
  burst(&r, 40, NULL, 0);
  want_answers = 40;
  CHECK(t_raw_drive(&r, answered, 20000));
  int none503 = 1;
  for (int k = 1; k <= 40; k++) none503 &= answer[k] != 503;
  CHECK(none503);
  CHECK_INT(noverload_log, 0);
  t_raw_close(&r);
  teardown();
}

int main(void) {
  RUN(test_defaults);
  RUN(test_max_sessions);
  RUN(test_max_referrals_per_session);
  RUN(test_max_referrals);
  RUN(test_max_tcp_connections);
  RUN(test_tcp_idle_timeout);
  RUN(test_max_message_size);
  RUN(test_overload);
  return DONE();
}
