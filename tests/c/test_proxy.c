/*
 * test_proxy.c — the outbound proxy (sr_ua_options.outbound_proxy). Alice
 * has one; "proxy" is a UA that plays the proxy and the callee at once, so
 * the requests that reach it show what went to the first hop: the INVITE
 * to a target that names a host (Request-URI kept, the proxy as first
 * Route with ;lr), its CANCEL and the ACK of its 487 with the same Route,
 * over UDP and TCP; then, with a raw proxy, where the dialog's requests
 * go. Then the option's checks in sr_ua_new.
 */
#include "internal.h" /* ua->opt, to read the Route the UA made */
#undef REQUIRE /* libosip2's headers have one of their own */
#include "harness.h"
#include "uas.h"
#include "rawsock.h"

static sr_ua *A, *P;
static sr_session *alice_s, *proxy_s;
static char proxy_uri[96];
static int answer; /* P: 1 accept, 0 progress only */
static int states_seen;

/* What reached P, in order: method or status, transport, Route value. */
#define MAX_SEEN 16
static struct { char what[16]; sr_transport tp; char route[96]; } seen[MAX_SEEN];
static int nseen;

static int p_hook(int out, sr_transport tp, const char *l, const char *r,
                  const char *data, size_t len, void *ud) {
  (void)l; (void)r; (void)ud;
  if (out || nseen == MAX_SEEN) return 0;
  char text[4096];
  size_t n = len < sizeof text - 1 ? len : sizeof text - 1;
  memcpy(text, data, n);
  text[n] = 0;
  sscanf(text, "%15s", seen[nseen].what);
  seen[nseen].tp = tp;
  seen[nseen].route[0] = 0;
  const char *rt = strstr(text, "\r\nRoute: ");
  if (rt) sscanf(rt + 9, "%95[^\r]", seen[nseen].route);
  nseen++;
  return 0;
}

/* The first request of method m that reached P, or -1. */
static int seen_at(const char *m) {
  for (int i = 0; i < nseen; i++)
    if (strcmp(seen[i].what, m) == 0) return i;
  return -1;
}

static void on_state(sr_session *s, sr_session_state st, void *ud) {
  (void)s; (void)ud;
  states_seen |= 1 << st;
}
static const sr_session_delegate del = {on_state, NULL, NULL, NULL};

static void p_on_invite(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua; (void)ud;
  sr_session_unref(proxy_s);
  proxy_s = sr_session_ref(inv);
  CHECK_INT(sr_invitation_progress(inv, NULL), 0);
  if (answer) CHECK_INT(sr_invitation_accept(inv, NULL), 0);
}

static void with_proxy(sr_ua_options *o) { o->outbound_proxy = proxy_uri; }

/* P, then Alice with P's port over tp as her outbound proxy. */
static void setup(sr_transport tp, const char *extra) {
  P = t_ua("proxy", 0, 0, NULL);
  REQUIRE(P);
  snprintf(proxy_uri, sizeof proxy_uri, "sip:127.0.0.1:%d%s%s",
           sr_ua_local_port(P, tp), tp == SR_TRANSPORT_TCP ? ";transport=tcp" : "",
           extra);
  A = t_ua("alice", 0, 0, with_proxy);
  REQUIRE(A);
  sr_ua_delegate d = {0};
  d.on_invite = p_on_invite;
  sr_ua_set_delegate(P, &d, NULL);
  sr_ua_set_message_hook(P, p_hook, NULL);
  nseen = 0;
  states_seen = 0;
}

static void teardown(void) {
  sr_session_unref(alice_s);
  sr_session_unref(proxy_s);
  alice_s = proxy_s = NULL;
  t_free_uas();
  A = P = NULL;
}

static int got(void *m) { return seen_at(m) >= 0; }
static int alice_in(void *st) { return states_seen & (1 << *(int *)st); }

static void call_through(sr_transport tp, const char *extra) {
  setup(tp, extra);
  char route[128];
  snprintf(route, sizeof route, "<%s;lr>", proxy_uri);
  if (strstr(extra, "lr")) snprintf(route, sizeof route, "<%s>", proxy_uri);
  CHECK_STR(A->opt.outbound_proxy, route);
  answer = 1;
  REQUIRE(sr_ua_make_inviter(A, "sip:carol@pbx.example.com", NULL, &alice_s) == 0);
  sr_session_set_delegate(alice_s, &del, NULL);
  CHECK_INT(sr_inviter_invite(alice_s), 0);
  int est = SR_SESSION_ESTABLISHED;
  CHECK(t_drive(alice_in, &est, 10000));
  int i = seen_at("INVITE");
  REQUIRE(i >= 0);
  CHECK_INT(seen[i].tp, tp);
  CHECK_STR(seen[i].route, route);
  REQUIRE(proxy_s);
  const sr_request *req = sr_invitation_get_request(proxy_s);
  CHECK_STR(sr_request_ruri(req), "sip:carol@pbx.example.com");
  CHECK_INT(sr_request_header_count(req, "route"), 1);
  /* The proxy did not Record-Route: the ACK and BYE go to the Contact
   * (here the same UA), without a Route (RFC 3261 §12.1.2). */
  CHECK(t_drive(got, "ACK", 10000));
  CHECK_INT(sr_session_bye(alice_s), 0);
  CHECK(t_drive(got, "BYE", 10000));
  CHECK_STR(seen[seen_at("ACK")].route, "");
  CHECK_STR(seen[seen_at("BYE")].route, "");
  teardown();
}

static void test_invite_through_proxy_udp(void) {
  call_through(SR_TRANSPORT_UDP, "");
}

static void test_invite_through_proxy_tcp(void) {
  call_through(SR_TRANSPORT_TCP, "");
}

static void test_proxy_uri_with_lr(void) { call_through(SR_TRANSPORT_UDP, ";lr"); }

/* CANCEL (§9.1) and the ACK of a non-2xx (§17.1.1.3) repeat the INVITE's
 * Route and take the same hop. */
static void test_cancel_and_ack_through_proxy(void) {
  setup(SR_TRANSPORT_UDP, "");
  answer = 0;
  REQUIRE(sr_ua_make_inviter(A, "sip:carol@pbx.example.com", NULL, &alice_s) == 0);
  sr_session_set_delegate(alice_s, &del, NULL);
  CHECK_INT(sr_inviter_invite(alice_s), 0);
  CHECK(t_drive(got, "INVITE", 10000));
  CHECK_INT(sr_inviter_cancel(alice_s), 0);
  int term = SR_SESSION_TERMINATED;
  CHECK(t_drive(alice_in, &term, 10000));
  CHECK(t_drive(got, "ACK", 10000));
  int inv = seen_at("INVITE"), can = seen_at("CANCEL"), ack = seen_at("ACK");
  REQUIRE(inv >= 0 && can >= 0 && ack >= 0);
  CHECK(seen[inv].route[0] != 0);
  CHECK_STR(seen[can].route, seen[inv].route);
  CHECK_STR(seen[ack].route, seen[inv].route);
  teardown();
}

/* A raw TCP proxy answers 200 itself, without Record-Route, with the
 * given Contact. An address there: the ACK and BYE go to it, over the
 * transport its URI names (UDP here), not the proxy's. A host name: they
 * go to the proxy, which can resolve it. */
static void dialog_hop(int contact_is_a_name) {
  t_raw px;
  REQUIRE(t_raw_listen(&px, SR_TRANSPORT_TCP) == 0);
  P = t_ua("callee", 0, 0, NULL);
  REQUIRE(P);
  snprintf(proxy_uri, sizeof proxy_uri, "sip:127.0.0.1:%d;transport=tcp", px.port);
  A = t_ua("alice", 0, 0, with_proxy);
  REQUIRE(A);
  sr_ua_set_message_hook(P, p_hook, NULL);
  nseen = 0;
  states_seen = 0;
  REQUIRE(sr_ua_make_inviter(A, "sip:carol@pbx.example.com", NULL, &alice_s) == 0);
  sr_session_set_delegate(alice_s, &del, NULL);
  CHECK_INT(sr_inviter_invite(alice_s), 0);
  const char *inv = t_raw_next(&px, "INVITE ", 10000);
  REQUIRE(inv);
  char extra[160], resp[4096];
  if (contact_is_a_name)
    snprintf(extra, sizeof extra, "Contact: <sip:carol@carol.example.com>\r\n");
  else
    snprintf(extra, sizeof extra, "Contact: <sip:carol@127.0.0.1:%d>\r\n",
             sr_ua_local_port(P, SR_TRANSPORT_UDP));
  size_t n = t_build_response(inv, 200, "OK", "px1", extra, NULL, resp, sizeof resp);
  REQUIRE(n > 0 && t_raw_send(&px, resp, n) == 0);
  if (contact_is_a_name) {
    const char *ack = t_raw_next(&px, "ACK sip:carol@carol.example.com ", 10000);
    CHECK(ack != NULL);
    CHECK_INT(sr_session_bye(alice_s), 0);
    CHECK(t_raw_next(&px, "BYE sip:carol@carol.example.com ", 10000) != NULL);
  } else {
    CHECK(t_drive(got, "ACK", 10000));
    CHECK_INT(sr_session_bye(alice_s), 0);
    CHECK(t_drive(got, "BYE", 10000));
    int a = seen_at("ACK"), b = seen_at("BYE");
    REQUIRE(a >= 0 && b >= 0);
    CHECK_INT(seen[a].tp, SR_TRANSPORT_UDP);
    CHECK_INT(seen[b].tp, SR_TRANSPORT_UDP);
  }
  t_raw_close(&px);
  teardown();
}

static void test_dialog_goes_to_the_contact(void) { dialog_hop(0); }
static void test_contact_naming_a_host_goes_to_the_proxy(void) { dialog_hop(1); }

/* Without a proxy, a target must be an address: nothing resolves names. */
static void test_no_proxy_needs_an_address(void) {
  sr_ua *ua = t_ua("plain", 0, 0, NULL);
  REQUIRE(ua);
  sr_session *s = NULL;
  CHECK_INT(sr_ua_make_inviter(ua, "sip:carol@pbx.example.com", NULL, &s),
            SR_EADDR);
  CHECK_INT(sr_ua_make_inviter(ua, "sip:carol@", NULL, &s), SR_EINVAL);
  CHECK(s == NULL);
  t_free_uas();
}

static int new_with(const char *proxy, char *route, size_t n) {
  sr_ua_options o;
  sr_ua_options_init(&o);
  CHECK(o.outbound_proxy == NULL);
  o.uri = "sip:alice@127.0.0.1";
  o.outbound_proxy = proxy;
  o.log_fn = t_quiet_log;
  sr_ua *ua = NULL;
  int rc = sr_ua_new(&ua, &o);
  if (route) snprintf(route, n, "%s", ua && ua->opt.outbound_proxy ? ua->opt.outbound_proxy : "");
  if (rc == 0) CHECK(ua != NULL);
  else CHECK(ua == NULL);
  sr_ua_unref(ua);
  return rc;
}

static void test_option_checks(void) {
  char route[128];
  CHECK_INT(new_with("sip:10.0.0.1", route, sizeof route), 0);
  CHECK_STR(route, "<sip:10.0.0.1;lr>");
  CHECK_INT(new_with("<sip:[::1]:5070;transport=TCP>", route, sizeof route), 0);
  CHECK_STR(route, "<sip:[::1]:5070;transport=TCP;lr>");
  /* a name, resolved here (the hosts file) */
  CHECK_INT(new_with("sip:localhost:5070;lr", route, sizeof route), 0);
  CHECK_STR(route, "<sip:localhost:5070;lr>");
  CHECK_INT(new_with("sip:no-such-host.invalid", NULL, 0), SR_EADDR);
  const char *bad[] = {"sips:10.0.0.1", "tel:+15551234", "sip:bob@10.0.0.1",
                       "sip:10.0.0.1;maddr=10.0.0.2", "<", "<>",
                       "sip:10.0.0.1;transport=sctp", "sip:10.0.0.1:0",
                       "sip:10.0.0.1:70000", "sip:10.0.0.1?Route=x", "sip:",
                       "10.0.0.1", "", "<sip:10.0.0.1"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int rc = new_with(bad[i], NULL, 0);
    if (rc != SR_EINVAL) fprintf(stderr, "  [%s] gave %d\n", bad[i], rc);
    CHECK_INT(rc, SR_EINVAL);
  }
}

int main(void) {
  RUN(test_invite_through_proxy_udp);
  RUN(test_invite_through_proxy_tcp);
  RUN(test_proxy_uri_with_lr);
  RUN(test_cancel_and_ack_through_proxy);
  RUN(test_dialog_goes_to_the_contact);
  RUN(test_contact_naming_a_host_goes_to_the_proxy);
  RUN(test_no_proxy_needs_an_address);
  RUN(test_option_checks);
  return DONE();
}
