/*
 * test_options_validation.c — application text that would break a message
 * or add header lines of its own (CR/LF in a display name, user agent,
 * reason phrase, content type, target; extra_headers repeating a header
 * the core writes) is refused at the API call with SR_EINVAL (a too long
 * target with SR_ETOOBIG), logged, and nothing is sent.
 */
#include "harness.h"
#include "uas.h"

static sr_ua *A, *B;
static sr_session *alice_s, *bob_s;
static sr_referral *bob_ref;
static int sent;           /* messages sent by either UA */
static int sent_bad;       /* ... of which carry an injected line */
static int refers_sent;    /* REFERs Alice sent */
static int warnings;       /* warnings logged by either UA */

static void count_log(int level, const char *msg, void *ud) {
  if (level <= SR_LOG_WARNING) warnings++;
  t_quiet_log(level, msg, ud);
}

static int hook(int out, sr_transport tp, const char *l, const char *r,
                const char *data, size_t len, void *ud) {
  (void)tp, (void)l, (void)r, (void)ud;
  if (!out) return 0;
  sent++;
  char *copy = strndup(data, len);
  const char *cl = strstr(copy, "\nContent-Length:");
  if (strstr(copy, "Injected") || (cl && strstr(cl + 1, "\nContent-Length:")) ||
      strstr(copy, "\nl:"))
    sent_bad++;
  if (strncmp(copy, "REFER ", 6) == 0) refers_sent++;
  free(copy);
  return 0;
}

static void logged(sr_ua_options *o) { o->log_fn = count_log; }

static void setup(void) {
  A = t_ua("alice", 0, 0, logged);
  B = t_ua("bob", 0, 0, logged);
  REQUIRE(A && B);
  sr_ua_set_message_hook(A, hook, NULL);
  sr_ua_set_message_hook(B, hook, NULL);
  sent = sent_bad = refers_sent = warnings = 0;
}

static void teardown(void) {
  sr_referral_unref(bob_ref);
  sr_session_unref(alice_s);
  sr_session_unref(bob_s);
  bob_ref = NULL;
  alice_s = bob_s = NULL;
  t_free_uas();
  CHECK_INT(sent_bad, 0);
}

/* rc is SR_EINVAL and the refusal was logged. */
#define REFUSED(call)                                                      \
  do {                                                                     \
    int w_ = warnings;                                                     \
    CHECK_INT((call), SR_EINVAL);                                          \
    CHECK(warnings > w_);                                                  \
  } while (0)

static void test_ua_options(void) {
  static const char *fields[] = {"display_name", "user_agent", "username",
                                 "uri", "outbound_proxy"};
  for (int i = 0; i < 5; i++) {
    sr_ua_options o;
    sr_ua_options_init(&o);
    o.uri = "sip:x@127.0.0.1";
    o.log_fn = count_log;
    const char *bad = i == 3 || i == 4 ? "sip:x@127.0.0.1\r\nInjected: 1"
                                       : "X\r\nInjected: 1";
    if (i == 0) o.display_name = bad;
    if (i == 1) o.user_agent = bad;
    if (i == 2) o.username = bad;
    if (i == 3) o.uri = bad;
    if (i == 4) o.outbound_proxy = bad;
    sr_ua *ua = (sr_ua *)&o; /* untouched on failure */
    int w = warnings;
    printf("  %s\n", fields[i]);
    CHECK_INT(sr_ua_new(&ua, &o), SR_EINVAL);
    CHECK(ua == (sr_ua *)&o);
    CHECK(i == 3 || warnings > w); /* a bad uri may fail libosip2's parse */
  }
  /* HTAB is allowed in a header value. */
  sr_ua_options o;
  sr_ua_options_init(&o);
  o.uri = "sip:x@127.0.0.1";
  o.display_name = "X\tY";
  o.user_agent = "agent\t1";
  sr_ua *ua = NULL;
  CHECK_INT(sr_ua_new(&ua, &o), 0);
  sr_ua_unref(ua);
}

/* Headers the core writes in an INVITE, full and compact forms. */
static const char *invite_reserved[] = {
    "Content-Length: 0", "l: 0", "Call-ID: evil@x", "i: evil@x",
    "CSeq: 1 BYE", "Via: SIP/2.0/UDP 6.6.6.6;branch=z9hG4bKx",
    "v: SIP/2.0/UDP 6.6.6.6;branch=z9hG4bKx", "Max-Forwards: 0",
    "From: <sip:evil@x>", "f: <sip:evil@x>", "To: <sip:evil@x>",
    "t: <sip:evil@x>", "Contact: <sip:evil@6.6.6.6>", "m: <sip:evil@6.6.6.6>",
    "Content-Type: text/evil", "c: text/evil", "User-Agent: evil",
    "X-Ok: 1\r\ncontent-length: 0"};

static void test_inviter(void) {
  setup();
  const char *bob = t_target(B, "bob", SR_TRANSPORT_UDP);
  char buf[160];
  snprintf(buf, sizeof buf, "%s\r\nInjected: 1", bob);
  REFUSED(sr_ua_make_inviter(A, buf, NULL, &alice_s));
  snprintf(buf, sizeof buf, "%s x", bob);
  REFUSED(sr_ua_make_inviter(A, buf, NULL, &alice_s));
  size_t n = 70000; /* over the default max_message_size */
  char *huge = malloc(n + 1);
  memset(huge, 'a', n);
  memcpy(huge, "sip:", 4);
  memcpy(huge + n - 10, "@127.0.0.1", 11);
  CHECK_INT(sr_ua_make_inviter(A, huge, NULL, &alice_s), SR_ETOOBIG);
  free(huge);
  sr_inviter_options o;
  for (size_t i = 0; i < sizeof invite_reserved / sizeof *invite_reserved;
       i++) {
    sr_inviter_options_init(&o);
    o.extra_headers = invite_reserved[i];
    printf("  extra_headers %s\n", invite_reserved[i]);
    REFUSED(sr_ua_make_inviter(A, bob, &o, &alice_s));
  }
  sr_inviter_options_init(&o);
  o.from_display_name = "A\r\nInjected: 1";
  REFUSED(sr_ua_make_inviter(A, bob, &o, &alice_s));
  sr_inviter_options_init(&o);
  o.content_type = "application/sdp\r\nInjected: 1";
  REFUSED(sr_ua_make_inviter(A, bob, &o, &alice_s));
  CHECK(alice_s == NULL);
  CHECK_INT(sent, 0);
  /* A header of the application's own is fine. */
  sr_inviter_options_init(&o);
  o.extra_headers = "X-Ok: 1\r\nSubject: hi";
  CHECK_INT(sr_ua_make_inviter(A, bob, &o, &alice_s), 0);
  teardown();
}

/* ---- a call for the response and REFER cases ---- */

static int step; /* what Bob's on_invite tries */

static void bob_on_refer(sr_session *s, sr_referral *r, void *ud) {
  (void)s, (void)ud;
  sr_response_options o;
  sr_response_options_init(&o);
  o.reason_phrase = "Accepted\r\nInjected: 1";
  REFUSED(sr_referral_accept(r, &o));
  sr_response_options_init(&o);
  o.extra_headers = "Refer-Sub: false";
  REFUSED(sr_referral_accept(r, &o));
  sr_response_options_init(&o);
  o.extra_headers = "Content-Length: 0";
  REFUSED(sr_referral_reject(r, &o));
  sr_inviter_options io;
  sr_inviter_options_init(&io);
  io.extra_headers = "Referred-By: <sip:evil@x>";
  sr_session *inv = NULL;
  REFUSED(sr_referral_make_inviter(r, &io, &inv));
  CHECK(inv == NULL);
  sr_referral_set_notify_mode(r, SR_NOTIFY_NONE);
  CHECK_INT(sr_referral_accept(r, NULL), 0);
  REFUSED(sr_referral_notify(r, 200, "OK\r\nInjected: 1"));
  bob_ref = sr_referral_ref(r);
}

static void bob_on_invite(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua, (void)ud;
  bob_s = sr_session_ref(inv);
  sr_session_delegate d = {0};
  d.on_refer = bob_on_refer;
  sr_session_set_delegate(inv, &d, NULL);
  sr_response_options o;
  sr_response_options_init(&o);
  o.reason_phrase = "Ringing\r\nInjected: 1";
  REFUSED(sr_invitation_progress(inv, &o));
  sr_response_options_init(&o);
  o.status_code = 183;
  o.body = "v=0\r\n";
  o.content_type = "application/sdp\r\nInjected: 1";
  REFUSED(sr_invitation_progress(inv, &o));
  sr_response_options_init(&o);
  o.extra_headers = "Contact: <sip:evil@6.6.6.6>";
  REFUSED(sr_invitation_accept(inv, &o));
  sr_response_options_init(&o);
  o.reason_phrase = "OK\r\nInjected: 1";
  REFUSED(sr_invitation_accept(inv, &o));
  sr_response_options_init(&o);
  o.extra_headers = "l: 0";
  REFUSED(sr_invitation_reject(inv, &o));
  sr_response_options_init(&o);
  o.reason_phrase = "Busy\r\nInjected: 1";
  REFUSED(sr_invitation_reject(inv, &o));
  CHECK_INT(sr_session_get_state(inv), SR_SESSION_INITIAL);
  if (step == 1) {
    /* A 3xx may carry the Contact the core does not write in a reject. */
    sr_response_options_init(&o);
    o.status_code = 302;
    o.extra_headers = "Contact: <sip:carol@127.0.0.1>";
    CHECK_INT(sr_invitation_reject(inv, &o), 0);
  } else {
    CHECK_INT(sr_invitation_accept(inv, NULL), 0);
  }
}

static int alice_in(void *want) {
  return alice_s && sr_session_get_state(alice_s) == *(sr_session_state *)want;
}

static int have_referral(void *unused) {
  (void)unused;
  return bob_ref != NULL;
}

static void test_responses_and_refer(void) {
  setup();
  sr_ua_delegate d = {0};
  d.on_invite = bob_on_invite;
  sr_ua_set_delegate(B, &d, NULL);
  step = 1;
  sr_session_state term = SR_SESSION_TERMINATED, est = SR_SESSION_ESTABLISHED;
  REQUIRE(sr_ua_make_inviter(A, t_target(B, "bob", SR_TRANSPORT_UDP), NULL,
                             &alice_s) == 0);
  REQUIRE(sr_inviter_invite(alice_s) == 0);
  CHECK(t_drive(alice_in, &term, 3000));
  sr_session_unref(alice_s);
  sr_session_unref(bob_s);
  alice_s = bob_s = NULL;
  step = 2;
  REQUIRE(sr_ua_make_inviter(A, t_target(B, "bob", SR_TRANSPORT_TCP), NULL,
                             &alice_s) == 0);
  REQUIRE(sr_inviter_invite(alice_s) == 0);
  REQUIRE(t_drive(alice_in, &est, 3000));

  char buf[160];
  const char *carol = "sip:carol@127.0.0.1:9";
  snprintf(buf, sizeof buf, "%s\r\nInjected: 1", carol);
  REFUSED(sr_session_refer(alice_s, buf, NULL, NULL, NULL, NULL));
  snprintf(buf, sizeof buf, "%s x", carol);
  REFUSED(sr_session_refer(alice_s, buf, NULL, NULL, NULL, NULL));
  char *huge = malloc(70001);
  memset(huge, 'a', 70000);
  memcpy(huge, "sip:", 4);
  huge[70000] = 0;
  CHECK_INT(sr_session_refer(alice_s, huge, NULL, NULL, NULL, NULL),
            SR_ETOOBIG);
  free(huge);
  static const char *refer_reserved[] = {"Refer-To: <sip:evil@x>",
                                         "r: <sip:evil@x>",
                                         "Referred-By: <sip:evil@x>",
                                         "b: <sip:evil@x>", "Refer-Sub: false",
                                         "CSeq: 9 REFER", "Content-Length: 0"};
  sr_refer_options ro;
  for (int i = 0; i < 7; i++) {
    sr_refer_options_init(&ro);
    ro.extra_headers = refer_reserved[i];
    printf("  refer extra_headers %s\n", refer_reserved[i]);
    REFUSED(sr_session_refer(alice_s, carol, &ro, NULL, NULL, NULL));
    REFUSED(sr_session_refer_session(alice_s, alice_s, &ro, NULL, NULL, NULL));
  }
  CHECK_INT(refers_sent, 0);
  /* A good REFER: Bob's on_refer tries the bad answers first. */
  CHECK_INT(sr_session_refer(alice_s, carol, NULL, NULL, NULL, NULL), 0);
  CHECK(t_drive(have_referral, NULL, 3000));
  CHECK_INT(refers_sent, 1);
  teardown();
}

int main(void) {
  RUN(test_ua_options);
  RUN(test_inviter);
  RUN(test_responses_and_refer);
  return DONE();
}
