/*
 * test_hostile.c — hostile REFERs and their neighbours, sent from a raw
 * UDP peer into a live Alice–Bob dialog: bad escapes in Replaces, NUL
 * bytes, a 60 KiB Refer-To, 1,000 URI headers, a Refer-To back at Alice
 * herself, headers smuggled in the Refer-To URI, unknown schemes, a REFER
 * storm, NOTIFYs for subscriptions that do not exist, INVITEs with
 * Replaces naming a dialog that is not theirs.
 *
 * Each case checks its answer, and that nothing else is disturbed: the
 * Alice–Bob call is still up, and a call Carol placed to Bob before the
 * case (ringing all along) still completes afterwards.
 */
#include "harness.h"
#include "uas.h"
#include "rawsock.h"

static sr_ua *A, *B, *C; /* Alice (receives the REFERs), Bob, Carol */
static sr_session *alice_s;            /* Alice's call to the raw peer */
static sr_session *carol_s, *bob_ring; /* Carol's call to Bob, ringing */
static t_raw raw; /* the hostile peer: Alice's partner in her call */
static int cseq = 100;

/* How Alice handles a REFER that passed validation. */
enum { FOLLOW, PENDING };
static int alice_mode;
static sr_referral *pending[64];
static int npending, nreferrals;

/* What Carol received: every INVITE, the last one in full. */
static int carol_invites;
static char *carol_last;

/* What the raw peer received from Alice: the sipfrag status of each
 * NOTIFY, and the responses (their status codes, in order). */
static int notify_codes[256], nnotify;
static int notify_answer = 200; /* what the raw peer answers a NOTIFY */
static int resp_codes[256], nresp;
static char resp_last[T_RAW_MAX + 1];

static void on_refer(sr_session *s, sr_referral *r, void *ud) {
  (void)s;
  (void)ud;
  nreferrals++;
  if (alice_mode == PENDING) {
    if (npending < 64) pending[npending++] = sr_referral_ref(r);
    return;
  }
  sr_session *inv;
  if (sr_referral_accept(r, NULL) == 0 &&
      sr_referral_make_inviter(r, NULL, &inv) == 0)
    sr_inviter_invite(inv);
}
static const sr_session_delegate alice_delegate = {NULL, NULL, on_refer, NULL};

static void bob_on_invite(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua;
  (void)ud;
  if (!bob_ring) {
    bob_ring = sr_session_ref(inv); /* Carol's: rings until the case ends */
    sr_invitation_progress(inv, NULL);
  } else {
    sr_invitation_accept(inv, NULL);
  }
}

static void carol_on_invite(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua;
  (void)ud;
  carol_invites++;
  free(carol_last);
  carol_last = strdup(sr_request_text(sr_invitation_get_request(inv)));
  sr_invitation_accept(inv, NULL);
}

static size_t alice_max = 0;
static void alice_opts(sr_ua_options *o) {
  if (alice_max) o->max_message_size = alice_max;
}

/* ---------------- the raw peer ---------------- */

static void raw_reply(const char *req, int code, const char *extra,
                      const char *body) {
  static char out[8192];
  size_t n = t_build_response(req, code, code == 200 ? "OK" : "Error", "rawbob",
                              extra, body, out, sizeof out);
  if (n) t_raw_send(&raw, out, n);
}

/* Handles what Alice sent: requests are answered (NOTIFY 200, its code
 * noted; INVITE 200 with SDP; anything else 200), responses are noted. */
static int pump_one(void) {
  if (!t_raw_poll_msg(&raw)) return 0;
  const char *m = raw.msg;
  int code = t_status(m);
  char method[32];
  if (code) {
    if (nresp < 256) resp_codes[nresp++] = code;
    memcpy(resp_last, m, raw.msglen + 1);
    return 1;
  }
  t_method(m, method, sizeof method);
  if (!strcmp(method, "ACK")) return 1;
  if (!strcmp(method, "NOTIFY")) {
    const char *b = strstr(m, "\r\n\r\nSIP/2.0 ");
    if (b && nnotify < 256) notify_codes[nnotify++] = atoi(b + 12);
    raw_reply(m, notify_answer, NULL, NULL);
    return 1;
  }
  if (!strcmp(method, "INVITE")) {
    char contact[96];
    snprintf(contact, sizeof contact,
             "Contact: <sip:bob@127.0.0.1:%d>\r\nContent-Type: application/sdp\r\n",
             raw.port);
    raw_reply(m, 200, contact,
              "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
              "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n");
    return 1;
  }
  raw_reply(m, 200, NULL, NULL);
  return 1;
}

static int (*want)(void);
static int pump_cond(t_raw *r) {
  (void)r;
  while (pump_one()) {
  }
  return want && want();
}

/* Runs everything, answering Alice, until pred() holds (bounded). */
static int wait_for(int (*pred)(void), long ms) {
  want = pred;
  return t_raw_drive(&raw, pump_cond, ms);
}

static int have_resp_n;
static int got_response(void) { return nresp > have_resp_n; }

/* The next response Alice sends the raw peer: its status, 0 if none. */
static int next_response(void) {
  have_resp_n = nresp;
  if (!wait_for(got_response, 5000)) return 0;
  return resp_codes[have_resp_n];
}

static int alice_up(void) {
  return alice_s && sr_session_get_state(alice_s) == SR_SESSION_ESTABLISHED;
}
static int ringing(void) { return bob_ring != NULL; }

/* Alice calls the raw peer; Carol calls Bob, who lets it ring. */
static int setup(void) {
  cseq = 100;
  notify_answer = 200;
  alice_mode = FOLLOW;
  npending = nreferrals = carol_invites = nnotify = nresp = 0;
  A = t_ua("alice", 0, 0, alice_opts);
  B = t_ua("bob", 0, 0, NULL);
  C = t_ua("carol", 0, 0, NULL);
  if (!A || !B || !C || t_raw_listen(&raw, SR_TRANSPORT_UDP) < 0) return 0;
  sr_ua_delegate d = {0};
  d.on_invite = bob_on_invite;
  sr_ua_set_delegate(B, &d, NULL);
  d.on_invite = carol_on_invite;
  sr_ua_set_delegate(C, &d, NULL);
  char target[64];
  snprintf(target, sizeof target, "sip:bob@127.0.0.1:%d", raw.port);
  if (sr_ua_make_inviter(A, target, NULL, &alice_s) || sr_inviter_invite(alice_s))
    return 0;
  sr_session_set_delegate(alice_s, &alice_delegate, NULL);
  if (!wait_for(alice_up, 10000)) return 0;
  if (sr_ua_make_inviter(C, t_target(B, "bob", SR_TRANSPORT_UDP), NULL, &carol_s) ||
      sr_inviter_invite(carol_s))
    return 0;
  return wait_for(ringing, 10000);
}

static int carol_up(void) {
  return sr_session_get_state(carol_s) == SR_SESSION_ESTABLISHED;
}

/* Nothing else was disturbed: the call is up, Carol's call completes. */
static void undisturbed(void) {
  CHECK(alice_up());
  REQUIRE(bob_ring != NULL);
  CHECK_INT(sr_invitation_accept(bob_ring, NULL), 0);
  CHECK(wait_for(carol_up, 10000));
}

static void teardown(void) {
  for (int i = 0; i < npending; i++) sr_referral_unref(pending[i]);
  sr_session_unref(alice_s);
  sr_session_unref(carol_s);
  sr_session_unref(bob_ring);
  alice_s = carol_s = bob_ring = NULL;
  free(carol_last);
  carol_last = NULL;
  t_raw_close(&raw);
  t_free_uas();
  sr_stats st;
  sr_global_stats(&st);
  CHECK_INT(st.sessions, 0);
  CHECK_INT(st.referrals, 0);
  CHECK_INT(st.referrers, 0);
}

/* ---------------- sending into the dialog ---------------- */

static char *tmpl_buf;

/* An in-dialog request from the raw peer to Alice: start line, dialog
 * headers, then `lines` (each ending in \n) and `body`. 0 or -1. */
static int send_in_dialog(const char *method, const char *lines,
                          const char *body) {
  size_t n = strlen(lines) + strlen(body) + 2048;
  tmpl_buf = realloc(tmpl_buf, n);
  snprintf(tmpl_buf, n,
           "%s sip:alice@127.0.0.1:%d SIP/2.0\n"
           "Via: SIP/2.0/UDP $ME;branch=$BR;rport\n"
           "From: <sip:bob@127.0.0.1>;tag=%s\n"
           "To: <sip:alice@127.0.0.1>;tag=%s\n"
           "Call-ID: %s\n"
           "CSeq: %d %s\n"
           "Contact: <sip:bob@$ME>\n"
           "Max-Forwards: 70\n"
           "%s"
           "Content-Length: $CL\n\n%s",
           method, sr_ua_local_port(A, SR_TRANSPORT_UDP),
           sr_session_remote_tag(alice_s), sr_session_local_tag(alice_s),
           sr_session_call_id(alice_s), ++cseq, method, lines, body);
  return t_raw_sendf(&raw, tmpl_buf);
}

/* A REFER with these header lines, no waiting. */
static int refer_send(const char *lines) {
  return send_in_dialog("REFER", lines, "");
}

/* refer_send, then the status of Alice's answer (0 for none); the answer
 * stays in resp_last. */
static int refer_lines(const char *lines) {
  if (refer_send(lines) < 0) return -1;
  return next_response();
}

static int refer_to(const char *value) {
  size_t n = strlen(value) + 64;
  char *l = malloc(n);
  snprintf(l, n, "Refer-To: %s\n", value);
  int code = refer_lines(l);
  free(l);
  return code;
}

/* "<sip:carol@127.0.0.1:PORT" (no closing bracket) */
static const char *carol_uri(void) {
  static char b[128];
  snprintf(b, sizeof b, "<%s", t_target(C, "carol", SR_TRANSPORT_UDP));
  return b;
}

static int carol_want;
static int carol_called(void) { return carol_invites >= carol_want; }
static int wait_carol(int n) {
  carol_want = n;
  return wait_for(carol_called, 10000);
}
static int final_notified(void) {
  return nnotify > 0 && notify_codes[nnotify - 1] >= 200;
}
/* The final NOTIFY's status, 0 when none came. */
static int final_notify(void) {
  return wait_for(final_notified, 10000) ? notify_codes[nnotify - 1] : 0;
}

/* Checks the reason phrase of the last answer. */
static void check_reason(const char *want_reason) {
  const char *sp = strchr(resp_last + 8, ' ');
  int ok = sp && strncmp(sp + 1, want_reason, strlen(want_reason)) == 0;
  if (!ok) fprintf(stderr, "  expected \"%s\", got: %.60s\n", want_reason, resp_last);
  CHECK(ok);
}

/* ---------------- the cases ---------------- */

static void test_bad_escapes_in_replaces(void) {
  static const char *bad[] = {"%zz", "a%4", "abc%", "%4", "%0", "%00",
                              "x%g1", "%%41"};
  REQUIRE(setup());
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char v[256];
    snprintf(v, sizeof v, "%s?Replaces=%s>", carol_uri(), bad[i]);
    int code = refer_to(v);
    if (code != 400) fprintf(stderr, "  Replaces=%s: %d\n", bad[i], code);
    CHECK_INT(code, 400);
    check_reason("Bad Refer-To");
  }
  /* An escaped CR LF would end the Replaces line in Carol's INVITE and
   * start a Route header there. */
  char v[256];
  snprintf(v, sizeof v,
           "%s?Replaces=a%%3Bto-tag%%3D1%%3Bfrom-tag%%3D2%%0D%%0ARoute:%%20"
           "%%3Csip:evil@192.0.2.9%%3E>", carol_uri());
  CHECK_INT(refer_to(v), 400);
  check_reason("Bad Replaces");
  snprintf(v, sizeof v, "%s?Replaces=a%%09b%%0A>", carol_uri());
  CHECK_INT(refer_to(v), 400);
  CHECK_INT(nreferrals, 0);
  CHECK_INT(carol_invites, 0);
  undisturbed();
  teardown();
}

/* RFC 3891 §3: the Replaces a Refer-To carries names one dialog, with
 * exactly one to-tag and one from-tag; anything else is refused before the
 * target sees it (as the target would refuse it, RFC 3891 §6.1). */
static void test_malformed_replaces(void) {
  static const char *bad[] = {
      "",                                      /* empty */
      "abc%40x",                               /* no tags */
      "abc%3Bto-tag%3D1",                      /* no from-tag */
      "abc%3Bfrom-tag%3D2",                    /* no to-tag */
      "%3Bto-tag%3D1%3Bfrom-tag%3D2",          /* no Call-ID */
      "abc%3Bto-tag%3D%3Bfrom-tag%3D2",        /* empty to-tag */
      "abc%3Bto-tag%3D1%3Bto-tag%3D3%3Bfrom-tag%3D2", /* two to-tags */
      "abc%3Bto-tag%3D1%3Bfrom-tag%3Da%20b",   /* a tag that is no token */
      "abc%3Bto-tag%3D1%3Bfrom-tag%3D2&Replaces=def%3Bto-tag%3D3%3Bfrom-tag%3D4",
  };
  REQUIRE(setup());
  char v[512];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(v, sizeof v, "%s?Replaces=%s>", carol_uri(), bad[i]);
    int code = refer_to(v);
    if (code != 400) fprintf(stderr, "  Replaces=%s: %d\n", bad[i], code);
    CHECK_INT(code, 400);
    check_reason("Bad Replaces");
  }
  CHECK_INT(nreferrals, 0);
  CHECK_INT(carol_invites, 0);
  /* Well formed (blanks around the separators allowed): taken and passed
   * on; Carol has no such dialog, so her 481 is the final NOTIFY. */
  snprintf(v, sizeof v,
           "%s?Replaces=abc%%40x%%20%%3B%%20to-tag%%3D1%%3Bfrom-tag%%3D2%%3Bearly-only>",
           carol_uri());
  CHECK_INT(refer_to(v), 202);
  CHECK_INT(final_notify(), 481);
  CHECK_INT(carol_invites, 0);
  undisturbed();
  teardown();
}

/* RFC 3892 §3: Referred-By is one name-addr or addr-spec with parameters;
 * a REFER with a broken one, or two, is refused rather than passed on. */
static void test_bad_referred_by(void) {
  static const char *bad[] = {
      "<<<garbage",
      "\"unterminated <sip:a@b>",
      "<sip:a@b",
      "<sip:a@b> trailing",
      "<sip:a@b>, <sip:c@d>",
      "sip:a@b?x=y",
      "<sip:a@b>;",
      "<>",
  };
  REQUIRE(setup());
  char lines[512];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(lines, sizeof lines, "Refer-To: %s>\nReferred-By: %s\n",
             carol_uri(), bad[i]);
    int code = refer_lines(lines);
    if (code != 400) fprintf(stderr, "  Referred-By: %s: %d\n", bad[i], code);
    CHECK_INT(code, 400);
    check_reason("Bad Referred-By");
  }
  snprintf(lines, sizeof lines,
           "Refer-To: %s>\nReferred-By: <sip:a@b>\nb: <sip:c@d>\n", carol_uri());
  CHECK_INT(refer_lines(lines), 400);
  check_reason("Multiple Referred-By");
  CHECK_INT(nreferrals, 0);
  CHECK_INT(carol_invites, 0);
  /* The forms RFC 3892 allows go through as they came. */
  static const char *good[] = {
      "\"Bob \\\"B\\\"\" <sip:bob@127.0.0.1>;cid=\"20398823.2UWQFN309shb3@referrer.example\"",
      "sip:bob@127.0.0.1;x-p=1",
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    snprintf(lines, sizeof lines, "Refer-To: %s>\nReferred-By: %s\n",
             carol_uri(), good[i]);
    CHECK_INT(refer_lines(lines), 202);
    CHECK(wait_carol((int)i + 1));
    char want[256];
    snprintf(want, sizeof want, "\r\nReferred-By: %s\r\n", good[i]);
    CHECK(carol_last && strstr(carol_last, want) != NULL);
  }
  undisturbed();
  teardown();
}

static void test_nul_bytes(void) {
  REQUIRE(setup());
  char lines[256];
  /* A raw NUL after the Refer-To value, in Referred-By, in the URI. */
  snprintf(lines, sizeof lines, "Refer-To: %s>$0<sip:evil@192.0.2.9>\n", carol_uri());
  CHECK_INT(refer_lines(lines), 400);
  snprintf(lines, sizeof lines, "Refer-To: %s>\nReferred-By: <sip:b@h>$0x\n",
           carol_uri());
  CHECK_INT(refer_lines(lines), 400);
  snprintf(lines, sizeof lines, "Refer-To: %s$0>\n", carol_uri());
  CHECK_INT(refer_lines(lines), 400);
  /* In the body (which may hold any byte): no harm, the REFER is taken. */
  CHECK_INT(send_in_dialog("REFER", "Content-Type: application/octet-stream\n",
                           "a$0b$0"), 0);
  CHECK_INT(next_response(), 400); /* still no Refer-To */
  CHECK_INT(nreferrals, 0);
  CHECK_INT(carol_invites, 0);
  undisturbed();
  teardown();
}

static void test_60k_refer_to(void) {
  alice_max = 200000; /* so that it arrives at all */
  int ok = setup();
  alice_max = 0;
  REQUIRE(ok);
  size_t pad = 60 * 1024;
  char *v = malloc(pad + 256);
  /* In a URI header: dropped, and the transfer goes ahead. */
  int k = snprintf(v, 256, "%s?X-Pad=", carol_uri());
  memset(v + k, 'A', pad);
  strcpy(v + k + pad, ">");
  CHECK_INT(refer_to(v), 202);
  CHECK(wait_carol(1));
  CHECK(carol_last && strlen(carol_last) < 4096);
  CHECK(carol_last && !strstr(carol_last, "AAAA"));
  CHECK_INT(final_notify(), 200);
  /* In a URI parameter: it would go into the INVITE, which cannot be
   * sent; the referrer learns so from a final NOTIFY. */
  nnotify = 0;
  k = snprintf(v, 256, "%s;x-pad=", carol_uri());
  memset(v + k, 'B', pad);
  strcpy(v + k + pad, ">");
  CHECK_INT(refer_to(v), 202);
  CHECK(final_notify() >= 300);
  CHECK_INT(carol_invites, 1);
  /* In the display name of a Refer-To Alice does not follow. */
  k = snprintf(v, 256, "\"");
  memset(v + k, 'C', pad);
  snprintf(v + k + pad, 256, "\" <tel:+1555>");
  CHECK_INT(refer_to(v), 416);
  free(v);
  undisturbed();
  teardown();
}

static void test_1000_uri_headers(void) {
  REQUIRE(setup());
  size_t cap = 32 * 1024;
  char *v = malloc(cap);
  size_t n = (size_t)snprintf(v, cap, "%s?", carol_uri());
  for (int i = 0; i < 1000; i++)
    n += (size_t)snprintf(v + n, cap - n, "%sH%d=v%d", i ? "&" : "", i, i);
  snprintf(v + n, cap - n, ">");
  CHECK_INT(refer_to(v), 202);
  CHECK(wait_carol(1));
  CHECK(carol_last && !strstr(carol_last, "H999") && !strstr(carol_last, "H0:"));
  CHECK_INT(final_notify(), 200);
  /* 1,000 Replaces: RFC 3891 allows one, so the REFER is refused. */
  n = (size_t)snprintf(v, cap, "%s?", carol_uri());
  for (int i = 0; i < 1000; i++)
    n += (size_t)snprintf(v + n, cap - n, "%sReplaces=x%d", i ? "&" : "", i);
  snprintf(v + n, cap - n, ">");
  CHECK_INT(refer_to(v), 400);
  check_reason("Bad Replaces");
  CHECK_INT(carol_invites, 1);
  free(v);
  undisturbed();
  teardown();
}

static int referred_want;
static int referred(void) { return nreferrals >= referred_want; }

static void test_refer_to_self(void) {
  REQUIRE(setup());
  char v[256];
  /* Alice's own UDP and TCP listeners, any user; her own identity. */
  snprintf(v, sizeof v, "<%s>", t_target(A, "alice", SR_TRANSPORT_UDP));
  CHECK_INT(refer_to(v), 482);
  check_reason("Loop Detected");
  snprintf(v, sizeof v, "<%s>", t_target(A, "someone-else", SR_TRANSPORT_UDP));
  CHECK_INT(refer_to(v), 482);
  snprintf(v, sizeof v, "<%s>", t_target(A, "alice", SR_TRANSPORT_TCP));
  CHECK_INT(refer_to(v), 482);
  snprintf(v, sizeof v, "<sip:x@localhost:%d>", sr_ua_local_port(A, SR_TRANSPORT_UDP));
  CHECK_INT(refer_to(v), 482);
  CHECK_INT(refer_to("<sip:alice@127.0.0.1>"), 482); /* the identity */
  CHECK_INT(refer_to("\"Me\" <sip:alice@127.0.0.1:5060;transport=udp>"), 482);
  CHECK_INT(nreferrals, 0);
  CHECK_INT(carol_invites, 0);
  /* Not a loop: Alice's TCP port number over UDP. */
  char l[256];
  snprintf(l, sizeof l, "Refer-To: <sip:bob@127.0.0.1:%d>\n",
           sr_ua_local_port(A, SR_TRANSPORT_TCP));
  alice_mode = PENDING;
  CHECK_INT(refer_send(l), 0);
  referred_want = 1;
  CHECK(wait_for(referred, 5000));
  REQUIRE(npending == 1);
  CHECK_INT(sr_referral_reject(pending[0], NULL), 0);
  CHECK_INT(next_response(), 603);
  undisturbed();
  teardown();
}

/* Every header Carol's INVITE must not get from the Refer-To URI. */
static void test_smuggled_headers(void) {
  static const char *names[] = {
      "Route", "Record-Route", "Via", "From", "To", "Call-ID", "CSeq",
      "Contact", "Max-Forwards", "Refer-To", "Referred-By", "Authorization",
      "Proxy-Authorization", "Content-Type", "Content-Length", "Require",
      "Proxy-Require", "P-Asserted-Identity", "Event", "X-Custom", "body"};
  REQUIRE(setup());
  size_t cap = 8192, n;
  char *v = malloc(cap);
  n = (size_t)snprintf(v, cap, "%s?", carol_uri());
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    n += (size_t)snprintf(v + n, cap - n, "%s%s=%%3Csip:smuggled%zu@192.0.2.9%%3E",
                          i ? "&" : "", names[i], i);
  snprintf(v + n, cap - n, ">");
  char lines[8400];
  snprintf(lines, sizeof lines,
           "Refer-To: %s\nReferred-By: <sip:bob@127.0.0.1>\n", v);
  CHECK_INT(refer_lines(lines), 202);
  CHECK(wait_carol(1));
  REQUIRE(carol_last != NULL);
  CHECK(!strstr(carol_last, "smuggled"));
  CHECK(!strstr(carol_last, "192.0.2.9"));
  CHECK(strstr(carol_last, "\r\nMax-Forwards: 70\r\n") != NULL);
  CHECK(strstr(carol_last, "\r\nReferred-By: <sip:bob@127.0.0.1>\r\n") != NULL);
  CHECK(strstr(carol_last, "\r\nRoute:") == NULL);
  CHECK_INT(final_notify(), 200);
  /* A Route folded into Referred-By is no name-addr: refused. */
  snprintf(lines, sizeof lines,
           "Refer-To: %s>\nReferred-By: <sip:bob@127.0.0.1>\n Route: <sip:evil@192.0.2.9>\n",
           carol_uri());
  CHECK_INT(refer_lines(lines), 400);
  check_reason("Bad Referred-By");
  /* A folded Referred-By that is one stays one header line. */
  snprintf(lines, sizeof lines,
           "Refer-To: %s>\nReferred-By: \"Bob\"\n <sip:bob@127.0.0.1>\n",
           carol_uri());
  CHECK_INT(refer_lines(lines), 202);
  CHECK(wait_carol(2));
  CHECK(carol_last && strstr(carol_last, "\r\nReferred-By: \"Bob\"") != NULL);
  CHECK(carol_last && strstr(carol_last, "\r\n <sip:") == NULL);
  free(v);
  undisturbed();
  teardown();
}

static void test_unknown_schemes(void) {
  static const char *uris[] = {
      "<http://example.com/x>", "<mailto:a@example.com>", "<tel:+15551234>",
      "<urn:service:sos>", "<sipx:carol@127.0.0.1>", "<im:carol@127.0.0.1>",
      "<data:text/plain,hi>", "<file:///etc/passwd>", "<x:y>"};
  REQUIRE(setup());
  for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
    int code = refer_to(uris[i]);
    if (code != 416) fprintf(stderr, "  %s: %d\n", uris[i], code);
    CHECK_INT(code, 416);
  }
  /* Not URIs at all. */
  CHECK_INT(refer_to("<>"), 400);
  CHECK_INT(refer_to("<:>"), 400);
  CHECK_INT(refer_to("carol"), 400);
  CHECK_INT(nreferrals, 0);
  /* The scheme is case-insensitive: SIP: is sip:. */
  char v[160];
  snprintf(v, sizeof v, "<SIP:carol@127.0.0.1:%d>", sr_ua_local_port(C, SR_TRANSPORT_UDP));
  CHECK_INT(refer_to(v), 202);
  CHECK(wait_carol(1));
  undisturbed();
  teardown();
}

/* n REFERs in one burst into the dialog; counts the answers. */
static int quiet(void) { return 0; }
static void storm(int n, int *accepted, int *busy) {
  char lines[256];
  snprintf(lines, sizeof lines, "Refer-To: %s>\n", carol_uri());
  int first = nresp;
  for (int i = 0; i < n; i++) CHECK_INT(refer_send(lines), 0);
  /* Answers come at once; run until nothing has come for a while. */
  int seen = -1;
  while (seen != nresp) {
    seen = nresp;
    wait_for(quiet, 500);
  }
  *accepted = *busy = 0;
  for (int i = first; i < nresp; i++) {
    if (resp_codes[i] == 202) (*accepted)++;
    if (resp_codes[i] == 503) (*busy)++;
  }
}

/* 40 REFERs at once in one dialog: max_referrals_per_session (8) are
 * taken, the rest get 503 with Retry-After. */
static void test_refer_storm(void) {
  int acc, busy;
  REQUIRE(setup());
  /* The application decides slowly. */
  alice_mode = PENDING;
  storm(40, &acc, &busy);
  CHECK_INT(busy, 32);
  CHECK_INT(acc, 0);
  CHECK_INT(nreferrals, 8);
  char ra[32];
  CHECK(t_header(resp_last, "Retry-After", ra, sizeof ra) && atoi(ra) > 0);
  check_reason("Too Many Pending Referrals");
  for (int i = 0; i < npending; i++) sr_referral_reject(pending[i], NULL);
  /* Once decided, the dialog takes REFERs again. */
  alice_mode = FOLLOW;
  char v[160];
  snprintf(v, sizeof v, "%s>", carol_uri());
  CHECK_INT(refer_to(v), 603); /* the first reject's answer comes first */
  nresp = 0;
  CHECK_INT(refer_to(v), 202);
  CHECK(wait_carol(1));
  CHECK_INT(final_notify(), 200);
  undisturbed();
  teardown();
}

/* The storm again with the core's default (accept and follow each): a
 * transfer in progress counts until its final NOTIFY, so a burst cannot
 * make Alice place more than 8 calls. */
static void test_refer_storm_followed(void) {
  int acc, busy;
  REQUIRE(setup());
  sr_session_set_delegate(alice_s, NULL, NULL);
  storm(30, &acc, &busy);
  CHECK_INT(acc, 8);
  CHECK_INT(busy, 22);
  CHECK_INT(carol_invites, 8);
  /* The transfers end (Carol answered each), and REFERs are taken again. */
  char v[160];
  snprintf(v, sizeof v, "%s>", carol_uri());
  CHECK_INT(refer_to(v), 202);
  CHECK(wait_carol(9));
  undisturbed();
  teardown();
}

static int notify_to_alice(const char *callid, const char *to_tag,
                           const char *from_tag, const char *event) {
  char t[2048];
  snprintf(t, sizeof t,
           "NOTIFY sip:alice@127.0.0.1:%d SIP/2.0\n"
           "Via: SIP/2.0/UDP $ME;branch=$BR;rport\n"
           "From: <sip:bob@127.0.0.1>;tag=%s\n"
           "To: <sip:alice@127.0.0.1>%s%s\n"
           "Call-ID: %s\nCSeq: %d NOTIFY\nContact: <sip:bob@$ME>\n"
           "Max-Forwards: 70\nEvent: %s\n"
           "Subscription-State: terminated;reason=noresource\n"
           "Content-Type: message/sipfrag;version=2.0\n"
           "Content-Length: $CL\n\nSIP/2.0 200 OK\r\n",
           sr_ua_local_port(A, SR_TRANSPORT_UDP), from_tag,
           to_tag ? ";tag=" : "", to_tag ? to_tag : "", callid, ++cseq, event);
  if (t_raw_sendf(&raw, t) < 0) return -1;
  return next_response();
}

static int refer_answered(void) { return nresp > have_resp_n; }

static void test_notify_unknown_subscription(void) {
  REQUIRE(setup());
  const char *cid = sr_session_call_id(alice_s), *lt = sr_session_local_tag(alice_s),
             *rt = sr_session_remote_tag(alice_s);
  CHECK_INT(notify_to_alice(cid, lt, rt, "refer;id=999"), 481);
  CHECK_INT(notify_to_alice(cid, lt, rt, "refer"), 481);
  CHECK_INT(notify_to_alice(cid, lt, rt, "refer;id=abc"), 481);
  CHECK_INT(notify_to_alice(cid, lt, rt, "presence"), 489);
  CHECK_INT(notify_to_alice(cid, NULL, rt, "refer;id=1"), 481); /* no To tag */
  CHECK_INT(notify_to_alice("nosuch@192.0.2.9", "x", "y", "refer;id=1"), 481);
  CHECK_INT(notify_to_alice(cid, lt, "other", "refer;id=1"), 481);
  /* Alice's own REFER is live: a NOTIFY for another id is still unknown,
   * and her referrer is untouched. */
  sr_referrer *ref = NULL;
  have_resp_n = nresp;
  CHECK_INT(sr_session_refer(alice_s, "sip:nobody@127.0.0.1:9", NULL, NULL, NULL,
                             &ref), 0);
  CHECK(wait_for(refer_answered, 5000) == 0); /* (the raw peer answers 200) */
  CHECK_INT(notify_to_alice(cid, lt, rt, "refer;id=98765"), 481);
  CHECK_INT(sr_referrer_is_closed(ref), 0);
  sr_referrer_unref(ref);
  undisturbed();
  teardown();
}

static sr_referral *failing_referral;
static sr_session *failing_inviter;
static int failing_over(void) {
  return sr_referral_get_state(failing_referral) == SR_REFERRAL_TERMINATED &&
         sr_session_get_state(failing_inviter) == SR_SESSION_ESTABLISHED;
}

/* A NOTIFY answered with a failure ends the subscription (RFC 6665
 * §4.2.2, RFC 3265 §3.2.2): no NOTIFY follows, not even the final one,
 * while the transfer's call and the dialog the REFER came in go on. */
static void test_notify_failure_ends_subscription(void) {
  static const int codes[] = {302, 400, 401, 403, 404, 407, 480, 482, 488,
                              489, 491, 500, 501, 603, 604};
  REQUIRE(setup());
  alice_mode = PENDING;
  char v[160];
  snprintf(v, sizeof v, "Refer-To: %s>\n", carol_uri());
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    notify_answer = codes[i];
    int before = nnotify;
    CHECK_INT(refer_send(v), 0);
    referred_want = nreferrals + 1;
    REQUIRE(wait_for(referred, 5000));
    failing_referral = pending[npending - 1];
    /* The call starts at once: its 200 comes while NOTIFY 100 waits. */
    CHECK_INT(sr_referral_accept(failing_referral, NULL), 0);
    REQUIRE(sr_referral_make_inviter(failing_referral, NULL, &failing_inviter) == 0);
    CHECK_INT(sr_inviter_invite(failing_inviter), 0);
    int over = wait_for(failing_over, 10000);
    if (!over) fprintf(stderr, "  NOTIFY answered %d: not over\n", codes[i]);
    CHECK(over);
    CHECK_INT(sr_referral_notify(failing_referral, 200, NULL), SR_ESTATE);
    /* Whatever Alice sent before answering this was seen first. */
    CHECK_INT(send_in_dialog("OPTIONS", "", ""), 0);
    CHECK_INT(next_response(), 200);
    if (nnotify != before + 1)
      fprintf(stderr, "  NOTIFY answered %d: %d NOTIFYs\n", codes[i],
              nnotify - before);
    CHECK_INT(nnotify, before + 1);
    CHECK_INT(notify_codes[nnotify - 1], 100);
    CHECK(alice_up());
    CHECK_INT(sr_session_get_state(failing_inviter), SR_SESSION_ESTABLISHED);
  }
  CHECK_INT(carol_invites, (int)(sizeof codes / sizeof codes[0]));
  undisturbed();
  teardown();
}

/* INVITEs with Replaces from another raw peer to Bob. */
static int invite_to_bob(const char *replaces_lines) {
  t_raw r;
  if (t_raw_connect(&r, SR_TRANSPORT_UDP, sr_ua_local_port(B, SR_TRANSPORT_UDP)))
    return -1;
  char t[2048];
  snprintf(t, sizeof t,
           "INVITE sip:bob@$UA SIP/2.0\n"
           "Via: SIP/2.0/UDP $ME;branch=$BR;rport\n"
           "From: <sip:mallory@127.0.0.1>;tag=m1\nTo: <sip:bob@127.0.0.1>\n"
           "Call-ID: $CID\nCSeq: 1 INVITE\nContact: <sip:mallory@$ME>\n"
           "Max-Forwards: 70\n%sContent-Length: 0\n\n", replaces_lines);
  int code = -1;
  if (t_raw_sendf(&r, t) == 0) {
    const char *m;
    while ((m = t_raw_recv(&r, 5000)) && t_status(m) < 200) {
    }
    code = t_status(m);
  }
  t_raw_close(&r);
  return code;
}

static sr_session *alice_bob, *bob_alice;
static void bob_keeps(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua;
  (void)ud;
  bob_alice = sr_session_ref(inv);
  sr_invitation_accept(inv, NULL);
}
static int alice_bob_up(void) {
  return bob_alice && sr_session_get_state(alice_bob) == SR_SESSION_ESTABLISHED &&
         sr_session_get_state(bob_alice) == SR_SESSION_ESTABLISHED;
}

static void test_invite_replaces_not_theirs(void) {
  REQUIRE(setup());
  /* A confirmed Alice–Bob call for the INVITEs to name. */
  sr_ua_delegate d = {0};
  d.on_invite = bob_keeps;
  sr_ua_set_delegate(B, &d, NULL);
  REQUIRE(sr_ua_make_inviter(A, t_target(B, "bob", SR_TRANSPORT_UDP), NULL,
                             &alice_bob) == 0);
  REQUIRE(sr_inviter_invite(alice_bob) == 0);
  REQUIRE(wait_for(alice_bob_up, 10000));
  d.on_invite = bob_on_invite;
  sr_ua_set_delegate(B, &d, NULL);
  const char *cid = sr_session_call_id(bob_alice), *bt = sr_session_local_tag(bob_alice),
             *at = sr_session_remote_tag(bob_alice);
  char l[512];
  /* Alice's side of the call is not Bob's: tags swapped. */
  snprintf(l, sizeof l, "Replaces: %s;to-tag=%s;from-tag=%s\n", cid, at, bt);
  CHECK_INT(invite_to_bob(l), 481);
  /* Alice's call with the raw peer: not Bob's at all. */
  snprintf(l, sizeof l, "Replaces: %s;to-tag=%s;from-tag=%s\n",
           sr_session_call_id(alice_s), sr_session_remote_tag(alice_s),
           sr_session_local_tag(alice_s));
  CHECK_INT(invite_to_bob(l), 481);
  /* A dialog Bob does not have; a wrong from-tag. */
  snprintf(l, sizeof l, "Replaces: nosuch@192.0.2.9;to-tag=%s;from-tag=%s\n", bt, at);
  CHECK_INT(invite_to_bob(l), 481);
  snprintf(l, sizeof l, "Replaces: %s;to-tag=%s;from-tag=wrong\n", cid, bt);
  CHECK_INT(invite_to_bob(l), 481);
  /* Carol's early dialog with Bob, which Bob did not initiate. */
  snprintf(l, sizeof l, "Replaces: %s;to-tag=%s;from-tag=%s\n",
           sr_session_call_id(bob_ring), sr_session_local_tag(bob_ring),
           sr_session_remote_tag(bob_ring));
  CHECK_INT(invite_to_bob(l), 481);
  /* Malformed, or two of them. */
  CHECK_INT(invite_to_bob("Replaces: ;to-tag=a\n"), 400);
  snprintf(l, sizeof l,
           "Replaces: %s;to-tag=%s;from-tag=%s\nReplaces: x;to-tag=1;from-tag=2\n",
           cid, bt, at);
  CHECK_INT(invite_to_bob(l), 400);
  /* A tag twice, or one that is no token (RFC 3891 §3): not guessed at. */
  snprintf(l, sizeof l, "Replaces: %s;to-tag=%s;to-tag=x;from-tag=%s\n", cid, bt, at);
  CHECK_INT(invite_to_bob(l), 400);
  snprintf(l, sizeof l, "Replaces: %s;to-tag=%s;from-tag=%s\"\n", cid, bt, at);
  CHECK_INT(invite_to_bob(l), 400);
  /* The confirmed call with early-only: 486. */
  snprintf(l, sizeof l, "Replaces: %s;to-tag=%s;from-tag=%s;early-only\n", cid, bt, at);
  CHECK_INT(invite_to_bob(l), 486);
  CHECK(alice_bob_up());
  undisturbed();
  sr_session_unref(alice_bob);
  sr_session_unref(bob_alice);
  alice_bob = bob_alice = NULL;
  teardown();
}

static void test_other_refer_headers(void) {
  REQUIRE(setup());
  char l[512];
  /* Several Refer-To values in one line, and an empty one. */
  snprintf(l, sizeof l, "Refer-To: %s>, %s>, <sip:x@192.0.2.9>\n", carol_uri(), carol_uri());
  CHECK_INT(refer_lines(l), 400);
  check_reason("Multiple Refer-To");
  CHECK_INT(refer_lines("Refer-To:\n"), 400);
  /* method= other than INVITE */
  snprintf(l, sizeof l, "%s;method=BYE>", carol_uri());
  CHECK_INT(refer_to(l), 501);
  CHECK_INT(nreferrals, 0);
  CHECK_INT(carol_invites, 0);
  undisturbed();
  teardown();
}

/* The raw peer calls Alice this time. During ringing a REFER is refused
 * (an early dialog); once Alice's 200 is out the dialog is confirmed, and a
 * REFER that overtakes a lost ACK is taken. */
static sr_session *alice_in;
static void alice_rings(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua;
  (void)ud;
  alice_in = sr_session_ref(inv);
  sr_session_set_delegate(inv, &alice_delegate, NULL);
  sr_invitation_progress(inv, NULL);
}
static int alice_in_up(void) {
  return sr_session_get_state(alice_in) == SR_SESSION_ESTABLISHED;
}
static int got_180(void) { return nresp > have_resp_n && resp_codes[nresp - 1] == 180; }
static int got_200(void) { return nresp > have_resp_n && resp_codes[nresp - 1] == 200; }

static int request_to_alice(const char *method, int num, const char *to_tag,
                            const char *lines) {
  char t[2048];
  snprintf(t, sizeof t,
           "%s sip:alice@127.0.0.1:%d SIP/2.0\n"
           "Via: SIP/2.0/UDP $ME;branch=$BR;rport\n"
           "From: <sip:bob@127.0.0.1>;tag=early1\n"
           "To: <sip:alice@127.0.0.1>%s%s\n"
           "Call-ID: early-call@127.0.0.1\nCSeq: %d %s\n"
           "Contact: <sip:bob@$ME>\nMax-Forwards: 70\n%s"
           "Content-Length: 0\n\n",
           method, sr_ua_local_port(A, SR_TRANSPORT_UDP), to_tag ? ";tag=" : "",
           to_tag ? to_tag : "", num, method, lines);
  return t_raw_sendf(&raw, t);
}

static void test_refer_before_ack(void) {
  REQUIRE(setup());
  sr_ua_delegate d = {0};
  d.on_invite = alice_rings;
  sr_ua_set_delegate(A, &d, NULL);
  have_resp_n = nresp;
  REQUIRE(request_to_alice("INVITE", 1, NULL, "") == 0);
  REQUIRE(wait_for(got_180, 5000));
  char to[256], *tag;
  REQUIRE(t_header(resp_last, "To", to, sizeof to) && (tag = strstr(to, ";tag=")));
  tag += 5;
  char lines[256];
  snprintf(lines, sizeof lines, "Refer-To: %s>\n", carol_uri());
  /* Ringing: an early dialog. */
  REQUIRE(request_to_alice("REFER", 2, tag, lines) == 0);
  CHECK_INT(next_response(), 403);
  check_reason("Session Not Established");
  /* Alice answers; the ACK is "lost": the REFER comes first. */
  have_resp_n = nresp;
  CHECK_INT(sr_invitation_accept(alice_in, NULL), 0);
  REQUIRE(wait_for(got_200, 5000));
  CHECK_INT(sr_session_get_state(alice_in), SR_SESSION_ESTABLISHING);
  REQUIRE(request_to_alice("REFER", 3, tag, lines) == 0);
  CHECK_INT(next_response(), 202);
  CHECK(wait_carol(1));
  CHECK_INT(final_notify(), 200);
  /* The ACK at last. */
  REQUIRE(request_to_alice("ACK", 1, tag, "") == 0);
  CHECK(wait_for(alice_in_up, 5000));
  sr_session_unref(alice_in);
  alice_in = NULL;
  undisturbed();
  teardown();
}

int main(void) {
  (void)t_drive; /* uas.h's driver: these tests drive through the raw peer */
  RUN(test_bad_escapes_in_replaces);
  RUN(test_malformed_replaces);
  RUN(test_bad_referred_by);
  RUN(test_nul_bytes);
  RUN(test_60k_refer_to);
  RUN(test_1000_uri_headers);
  RUN(test_refer_to_self);
  RUN(test_smuggled_headers);
  RUN(test_unknown_schemes);
  RUN(test_refer_storm);
  RUN(test_refer_storm_followed);
  RUN(test_notify_unknown_subscription);
  RUN(test_notify_failure_ends_subscription);
  RUN(test_invite_replaces_not_theirs);
  RUN(test_other_refer_headers);
  RUN(test_refer_before_ack);
  free(tmpl_buf);
  return DONE();
}
