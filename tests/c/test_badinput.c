/*
 * test_badinput.c — bad and unusual input from a raw peer, over UDP and
 * again over TCP: each gets its stated outcome (a 400 when a response can
 * be formed, else dropped; a broken TCP stream closed), and afterwards the
 * UA still completes a normal call. Also the UA's own answers: OPTIONS,
 * unknown methods, requests for dialogs that do not exist, REFER out of
 * dialog.
 */
#include "harness.h"
#include "uas.h"
#include "rawsock.h"

#include <sys/socket.h>

/* Outcomes other than a status code. */
#define T_DROP 0   /* nothing comes back; the stream (if any) stays usable */
#define T_CLOSE -1 /* TCP: the UA closes the connection, answering nothing */
#define T_IGNORE -2 /* like T_DROP, for a well-formed message: not logged */
/* TCP: answered code, then the connection closes (the stream cannot be
 * cut into messages after this one) */
#define T_AND_CLOSE(code) ((code) + 1000)

#define BOB_MAX 2048 /* Bob's max_message_size: oversize is cheap */

static sr_ua *A, *B;
static sr_session *alice_s, *bob_s;
static const char *cur_case = "";
static char last[T_RAW_MAX + 1]; /* the response a case got */

/* Bob's warnings: dropped input must be logged. */
static int bob_warnings;
static void bob_log(int level, const char *msg, void *ud) {
  if (level <= SR_LOG_WARNING) bob_warnings++;
  if (getenv("SR_TEST_LOG")) t_quiet_log(level, msg, ud);
}

static void small_max(sr_ua_options *o) {
  o->max_message_size = BOB_MAX;
  o->log_fn = bob_log;
}

static void setup(void) {
  A = t_ua("alice", 0, 0, NULL);
  B = t_ua("bob", 0, 0, small_max);
  sr_ua_delegate d = {0};
  d.on_invite = t_accept_keep;
  sr_ua_set_delegate(B, &d, &bob_s);
}

static void teardown(void) {
  sr_session_unref(alice_s);
  sr_session_unref(bob_s);
  alice_s = bob_s = NULL;
  t_free_uas();
  sr_stats st;
  sr_global_stats(&st);
  CHECK_INT(st.sessions, 0);
}

/* ---- a normal call Alice -> Bob, as in test_call.c ---- */

static int both_in(void *want) {
  sr_session_state w = *(sr_session_state *)want;
  return alice_s && bob_s && sr_session_get_state(alice_s) == w &&
         sr_session_get_state(bob_s) == w;
}

static int call_works(sr_transport tp) {
  static sr_session_state est = SR_SESSION_ESTABLISHED,
                          term = SR_SESSION_TERMINATED;
  sr_session_unref(alice_s);
  sr_session_unref(bob_s);
  alice_s = bob_s = NULL;
  if (sr_ua_make_inviter(A, t_target(B, "bob", tp), NULL, &alice_s) != 0 ||
      sr_inviter_invite(alice_s) != 0)
    return 0;
  if (!t_drive(both_in, &est, 10000)) return 0;
  if (sr_session_bye(alice_s) != 0) return 0;
  return t_drive(both_in, &term, 10000);
}

/* ---- outcomes ---- */

static const char *probe_tmpl =
    "OPTIONS sip:bob@$UA SIP/2.0\n"
    "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
    "From: <sip:probe@127.0.0.1>;tag=probe\n"
    "To: <sip:bob@$UA>\n"
    "Call-ID: probe-$CID\n"
    "CSeq: 7 OPTIONS\n"
    "Max-Forwards: 70\n"
    "Content-Length: 0\n\n";

static int is_probe_answer(const char *m) {
  char v[256];
  return t_status(m) == 200 && t_header(m, "Call-ID", v, sizeof v) &&
         strncmp(v, "probe-", 6) == 0;
}

/* Sends an OPTIONS and reads until its answer: 1 when that answer is the
 * next message (nothing else was pending), 0 otherwise. */
static int probe_is_next(t_raw *r) {
  if (t_raw_sendf(r, probe_tmpl) < 0) return 0;
  const char *m = t_raw_recv(r, 5000);
  if (!is_probe_answer(m)) {
    fprintf(stderr, "  [%s] expected the probe's 200, got: %.80s\n",
            cur_case, m ? m : r->eof ? "(closed)" : "(nothing)");
    return 0;
  }
  return 1;
}

/* Sends `len` bytes (a template expanded by t_raw_fmt when len is 0) to
 * Bob over tp, checks `expect`, then checks Bob still completes a call. */
static void outcome(sr_transport tp, const char *what, const char *data,
                    size_t len, int expect) {
  static char buf[T_RAW_MAX];
  t_raw r;
  char tag[96];
  snprintf(tag, sizeof tag, "%s/%s", what,
           tp == SR_TRANSPORT_TCP ? "tcp" : "udp");
  cur_case = tag;
  last[0] = 0;
  REQUIRE(t_raw_connect(&r, tp, sr_ua_local_port(B, tp)) == 0);
  if (!len) len = t_raw_fmt(&r, data, buf, sizeof buf);
  else memcpy(buf, data, len);
  int warned = bob_warnings;
  CHECK(t_raw_send(&r, buf, len) == 0);
  int ok;
  if (expect == T_DROP || expect == T_IGNORE) {
    ok = probe_is_next(&r);
  } else if (expect == T_CLOSE) {
    const char *m = tp == SR_TRANSPORT_TCP ? t_raw_recv(&r, 5000) : NULL;
    ok = tp == SR_TRANSPORT_TCP && !m && r.eof;
    if (!ok)
      fprintf(stderr, "  [%s] expected a close, no answer; got: %.80s\n", tag,
              m ? m : r.eof ? "(closed)" : "(nothing)");
  } else {
    int closes = expect > 1000, code = closes ? expect - 1000 : expect;
    const char *m = t_raw_recv(&r, 5000);
    ok = t_status(m) == code;
    if (!ok)
      fprintf(stderr, "  [%s] expected %d, got: %.80s\n", tag, code,
              m ? m : r.eof ? "(closed)" : "(nothing)");
    if (m) memcpy(last, m, r.msglen + 1);
    if (ok && closes) {
      ok = t_raw_wait_closed(&r, 5000) == 1;
      if (!ok) fprintf(stderr, "  [%s] connection not closed\n", tag);
    } else if (ok) {
      ok = probe_is_next(&r); /* one answer, the stream still usable */
    }
  }
  CHECK(ok);
  if (expect == T_DROP || expect == T_CLOSE || expect > 1000) {
    if (bob_warnings == warned)
      fprintf(stderr, "  [%s] dropped without a warning\n", tag);
    CHECK(bob_warnings > warned);
  }
  t_raw_close(&r);
  int call = call_works(tp);
  if (!call) fprintf(stderr, "  [%s] the call after it failed\n", tag);
  CHECK(call);
}

static void outcome_tmpl(sr_transport tp, const char *what, const char *tmpl,
                         int expect) {
  outcome(tp, what, tmpl, 0, expect);
}

/* TCP: sends a message whose framing never completes, then half-closes.
 * The UA must answer nothing, close its side, forget the connection and
 * go on. */
static int b_conns(void) {
  sr_stats st;
  sr_ua_get_stats(B, &st);
  return st.connections;
}
static int b_conns_back(void *want) { return b_conns() == *(int *)want; }

static void tcp_incomplete(const char *what, const char *tmpl) {
  t_raw r;
  int before = b_conns(); /* Alice's connection from earlier calls */
  int warned = bob_warnings;
  cur_case = what;
  REQUIRE(t_raw_connect(&r, SR_TRANSPORT_TCP,
                        sr_ua_local_port(B, SR_TRANSPORT_TCP)) == 0);
  CHECK(t_raw_sendf(&r, tmpl) == 0);
  /* Bob accepts and reads the part; the stream waits for the rest. */
  shutdown(r.fd, SHUT_WR);
  CHECK_INT(t_raw_wait_closed(&r, 5000), 1);
  CHECK_INT(r.msglen, 0); /* no answer before the close */
  CHECK(bob_warnings > warned);
  t_raw_close(&r);
  CHECK(t_drive(b_conns_back, &before, 5000)); /* Bob forgot it */
  CHECK(call_works(SR_TRANSPORT_TCP));
}

/* ---- a request with one header left out ---- */

static const char *opt_lines[] = {
    "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n",
    "From: <sip:raw@127.0.0.1>;tag=r1\n",
    "To: <sip:bob@$UA>\n",
    "Call-ID: $CID\n",
    "CSeq: 1 OPTIONS\n",
    "Max-Forwards: 70\n",
    NULL};

static const char *without(const char *omit) {
  static char t[2048];
  strcpy(t, "OPTIONS sip:bob@$UA SIP/2.0\n");
  for (int i = 0; opt_lines[i]; i++)
    if (strncmp(opt_lines[i], omit, strlen(omit)) != 0) strcat(t, opt_lines[i]);
  strcat(t, "Content-Length: 0\n\n");
  return t;
}

static const sr_transport both[] = {SR_TRANSPORT_UDP, SR_TRANSPORT_TCP};

/* ---- the tests ---- */

static void test_missing_headers(void) {
  setup();
  for (int i = 0; i < 2; i++) {
    /* No Via: no response can be formed, so dropped. */
    outcome_tmpl(both[i], "no Via", without("Via:"), T_DROP);
    outcome_tmpl(both[i], "no From", without("From:"), 400);
    outcome_tmpl(both[i], "no To", without("To:"), 400);
    outcome_tmpl(both[i], "no Call-ID", without("Call-ID:"), 400);
    outcome_tmpl(both[i], "no CSeq", without("CSeq:"), 400);
  }
  teardown();
}

static void test_missing_headers_invite(void) {
  static const char *inv_no_callid =
      "INVITE sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>\n"
      "CSeq: 1 INVITE\n"
      "Contact: <sip:raw@$ME$TR>\n"
      "Max-Forwards: 70\n"
      "Content-Length: 0\n\n";
  setup();
  for (int i = 0; i < 2; i++)
    outcome_tmpl(both[i], "INVITE without Call-ID", inv_no_callid, 400);
  CHECK(strstr(last, "\r\nCSeq: 1 INVITE\r\n") != NULL); /* copied back */
  char v[256];
  CHECK(t_header(last, "To", v, sizeof v) && strstr(v, ";tag=")); /* §8.2.6.2 */
  teardown();
}

static void test_cseq_mismatch(void) {
  static const char *t =
      "OPTIONS sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>\n"
      "Call-ID: $CID\n"
      "CSeq: 1 INVITE\n"
      "Max-Forwards: 70\n"
      "Content-Length: 0\n\n";
  setup();
  for (int i = 0; i < 2; i++)
    outcome_tmpl(both[i], "CSeq method mismatch", t, 400);
  teardown();
}

static void test_truncated(void) {
  /* Cut after the mandatory headers, in the middle of a line: the request
   * can still be answered. */
  static const char *cut_late =
      "OPTIONS sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>\n"
      "Call-ID: $CID\n"
      "CSeq: 1 OPTIONS\n"
      "Max-Forw";
  /* Cut inside the start line / first header: nothing to answer with. */
  static const char *cut_early =
      "OPTIONS sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP 127.0.";
  setup();
  outcome_tmpl(SR_TRANSPORT_UDP, "truncated late", cut_late, 400);
  char v[256];
  CHECK(t_header(last, "Via", v, sizeof v) && strstr(v, "branch=z9hG4bKraw"));
  CHECK(t_header(last, "CSeq", v, sizeof v) && strcmp(v, "1 OPTIONS") == 0);
  CHECK(t_header(last, "To", v, sizeof v) && strstr(v, ";tag="));
  outcome_tmpl(SR_TRANSPORT_UDP, "truncated early", cut_early, T_DROP);
  tcp_incomplete("truncated late/tcp", cut_late);
  tcp_incomplete("truncated early/tcp", cut_early);
  teardown();
}

static void test_bad_start_line(void) {
  static const char *no_uri =
      "OPTIONS  SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>\n"
      "Call-ID: $CID\n"
      "CSeq: 1 OPTIONS\n"
      "Content-Length: 0\n\n";
  static const char *bad_uri =
      "OPTIONS sip:@@@ SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>\n"
      "Call-ID: $CID\n"
      "CSeq: 1 OPTIONS\n"
      "Content-Length: 0\n\n";
  /* sips wants TLS, which this UA has not: 416 as for any other scheme */
  static const char *sips_uri =
      "OPTIONS sips:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sips:bob@$UA>\n"
      "Call-ID: $CID\n"
      "CSeq: 1 OPTIONS\n"
      "Content-Length: 0\n\n";
  static const char *tel_uri =
      "OPTIONS tel:+15551234 SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <tel:+15551234>\n"
      "Call-ID: $CID\n"
      "CSeq: 1 OPTIONS\n"
      "Content-Length: 0\n\n";
  /* Not SIP at all: over TCP the stream cannot be SIP, so it is closed. */
  static const char *http =
      "GET / HTTP/1.1\n"
      "Host: 127.0.0.1\n\n";
  setup();
  for (int i = 0; i < 2; i++) {
    outcome_tmpl(both[i], "start line without URI", no_uri, 400);
    outcome_tmpl(both[i], "bad Request-URI", bad_uri, 400);
    outcome_tmpl(both[i], "tel: Request-URI", tel_uri, 416);
    outcome_tmpl(both[i], "sips: Request-URI", sips_uri, 416);
  }
  outcome_tmpl(SR_TRANSPORT_UDP, "HTTP request", http, T_DROP);
  outcome_tmpl(SR_TRANSPORT_TCP, "HTTP request", http, T_CLOSE);
  teardown();
}

static void test_content_length_lies(void) {
  static const char *longer =
      "OPTIONS sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>\n"
      "Call-ID: $CID\n"
      "CSeq: 1 OPTIONS\n"
      "Content-Type: text/plain\n"
      "Content-Length: 50\n\n"
      "only ten..";
  static const char *not_a_number =
      "OPTIONS sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>\n"
      "Call-ID: $CID\n"
      "CSeq: 1 OPTIONS\n"
      "Content-Length: ten\n\n";
  static const char *negative =
      "OPTIONS sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>\n"
      "Call-ID: $CID\n"
      "CSeq: 1 OPTIONS\n"
      "Content-Length: -5\n\n";
  /* Not a lie: a multipart body, which libosip2 splits into parts. */
  static const char *multipart =
      "OPTIONS sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>\n"
      "Call-ID: $CID\n"
      "CSeq: 1 OPTIONS\n"
      "Content-Type: multipart/mixed;boundary=xyz\n"
      "Content-Length: $CL\n\n"
      "--xyz\n"
      "Content-Type: text/plain\n\n"
      "first part, a little longer than the second\n"
      "--xyz\n"
      "Content-Type: text/plain\n\n"
      "second\n"
      "--xyz--\n";
  setup();
  for (int i = 0; i < 2; i++)
    outcome_tmpl(both[i], "multipart body", multipart, 200);
  outcome_tmpl(SR_TRANSPORT_UDP, "Content-Length too long", longer, 400);
  outcome_tmpl(SR_TRANSPORT_UDP, "Content-Length not a number", not_a_number,
               400);
  outcome_tmpl(SR_TRANSPORT_UDP, "Content-Length negative", negative, 400);
  /* TCP frames by Content-Length: a longer one waits for bytes that never
   * come; the peer's close must leave nothing behind. */
  tcp_incomplete("Content-Length too long/tcp", longer);
  /* No frame can be cut from a stream without a number: the request is
   * answered from its header block, then the connection closes. */
  outcome_tmpl(SR_TRANSPORT_TCP, "Content-Length not a number", not_a_number,
               T_AND_CLOSE(400));
  CHECK(strstr(last, " 400 Bad Content-Length\r\n") != NULL);
  outcome_tmpl(SR_TRANSPORT_TCP, "Content-Length negative", negative,
               T_AND_CLOSE(400));
  teardown();
}

/* Bytes no SIP message has: control characters and high bytes. */
static size_t garbage(char *out, size_t n, int with_newlines) {
  unsigned s = 12345;
  for (size_t i = 0; i < n; i++) {
    s = s * 1103515245u + 12345u;
    char c = (char)((s >> 16) & 0xff);
    if (!with_newlines && (c == '\r' || c == '\n')) c = 0x7f;
    out[i] = c;
  }
  return n;
}

static void test_binary_garbage(void) {
  static char g[4000];
  setup();
  outcome(SR_TRANSPORT_UDP, "garbage", g, garbage(g, 600, 1), T_DROP);
  outcome(SR_TRANSPORT_TCP, "garbage", g, garbage(g, 600, 1), T_CLOSE);
  /* Without a line end the stream is closed once over the size limit. */
  outcome(SR_TRANSPORT_TCP, "garbage without line ends", g,
          garbage(g, BOB_MAX + 500, 0), T_CLOSE);
  /* A start line that looks right, then binary header bytes. */
  size_t n = (size_t)snprintf(g, sizeof g, "OPTIONS sip:bob@x SIP/2.0\r\n");
  n += garbage(g + n, 300, 1);
  memcpy(g + n, "\r\n\r\n", 4);
  outcome(SR_TRANSPORT_UDP, "SIP start line then garbage", g, n + 4, T_DROP);
  teardown();
}

static void test_oversize(void) {
  static char t[8192];
  /* A well-formed OPTIONS over Bob's limit (a long Subject). */
  strcpy(t, without("Max-Forwards:"));
  char *end = strstr(t, "Content-Length");
  char pad[BOB_MAX + 200];
  memset(pad, 'x', sizeof pad - 1);
  pad[sizeof pad - 1] = 0;
  char tail[64];
  strcpy(tail, end);
  sprintf(end, "Subject: %s\n%s", pad, tail);
  static const char *huge_body =
      "OPTIONS sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>\n"
      "Call-ID: $CID\n"
      "CSeq: 1 OPTIONS\n"
      "Content-Type: text/plain\n"
      "Content-Length: 100000\n\n"
      "the rest never comes";
  /* Over the limit with a short header block and a long body: 513
   * (RFC 3261 §21.5.14) from the header block, over either transport;
   * over TCP its body is read and dropped and the connection goes on,
   * unless the message is over four times the limit. */
  char big[BOB_MAX + 1024];
  strcpy(big, without("Max-Forwards:"));
  end = strstr(big, "Content-Length");
  sprintf(end, "Content-Type: text/plain\nContent-Length: %d\n\n%s",
          (int)sizeof pad - 1, pad);
  char big_response[BOB_MAX + 1024];
  snprintf(big_response, sizeof big_response,
           "SIP/2.0 200 OK\nVia: SIP/2.0/$TP $ME;branch=$BR\n"
           "From: <sip:raw@127.0.0.1>;tag=r1\nTo: <sip:bob@$UA>;tag=b1\n"
           "Call-ID: $CID\nCSeq: 1 OPTIONS\nContent-Type: text/plain\n"
           "Content-Length: %d\n\n%s", (int)sizeof pad - 1, pad);
  setup();
  /* The header block alone is over the limit: nothing to answer from. */
  outcome_tmpl(SR_TRANSPORT_UDP, "oversize", t, T_DROP);
  outcome_tmpl(SR_TRANSPORT_TCP, "oversize", t, T_CLOSE);
  for (int i = 0; i < 2; i++) {
    outcome_tmpl(both[i], "oversize body", big, 513);
    CHECK(strstr(last, "SIP/2.0 513 Message Too Large\r\n") == last);
  }
  /* A response is never answered, however large. */
  outcome_tmpl(SR_TRANSPORT_UDP, "oversize response", big_response, T_DROP);
  outcome_tmpl(SR_TRANSPORT_TCP, "oversize response", big_response, T_IGNORE);
  /* Not waiting for (or storing) a body far over the limit. */
  outcome_tmpl(SR_TRANSPORT_TCP, "oversize Content-Length", huge_body,
               T_AND_CLOSE(513));
  teardown();
}

static void test_nul_bytes(void) {
  /* A NUL inside a header line: not text a SIP header may hold. */
  static const char *in_header =
      "OPTIONS sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>\n"
      "Call-ID: $CID\n"
      "CSeq: 1 OPTIONS\n"
      "Subject: a$0b\n"
      "Content-Length: 0\n\n";
  /* A NUL in the Call-ID: a 400 could not echo it, so none is sent. */
  static const char *in_callid =
      "OPTIONS sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>\n"
      "Call-ID: ab$0cd\n"
      "CSeq: 1 OPTIONS\n"
      "Content-Length: 0\n\n";
  /* A body may be binary: NULs there, counted by Content-Length, are fine. */
  static const char *in_body =
      "OPTIONS sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>\n"
      "Call-ID: $CID\n"
      "CSeq: 1 OPTIONS\n"
      "Content-Type: application/octet-stream\n"
      "Content-Length: $CL\n\n"
      "ab$0$0cd$0";
  setup();
  for (int i = 0; i < 2; i++) {
    outcome_tmpl(both[i], "NUL in a header", in_header, 400);
    outcome_tmpl(both[i], "NUL in the Call-ID", in_callid, T_DROP);
    outcome_tmpl(both[i], "NUL in the body", in_body, 200);
  }
  teardown();
}

static void test_options(void) {
  static const char *opt =
      T_OPTIONS_TO_BOB
      "Accept: application/sdp\n"
      "Content-Length: 0\n\n";
  static const char *methods[] = {"INVITE", "ACK",    "CANCEL", "BYE",
                                  "OPTIONS", "REFER", "NOTIFY"};
  char v[512];
  setup();
  for (int i = 0; i < 2; i++) {
    outcome_tmpl(both[i], "OPTIONS", opt, 200);
    REQUIRE(t_header(last, "Allow", v, sizeof v));
    for (size_t k = 0; k < sizeof methods / sizeof *methods; k++)
      CHECK(t_list_has(v, methods[k]));
    CHECK(!t_list_has(v, "MESSAGE") && !t_list_has(v, "FOO"));
    REQUIRE(t_header(last, "Supported", v, sizeof v));
    CHECK(t_list_has(v, "replaces"));
    CHECK(t_list_has(v, "norefersub"));
    REQUIRE(t_header(last, "To", v, sizeof v));
    CHECK(strstr(v, ";tag=") != NULL);
  }
  teardown();
}

static void test_unknown_methods(void) {
  static const char *foo =
      "FOO sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>\n"
      "Call-ID: $CID\n"
      "CSeq: 1 FOO\n"
      "Max-Forwards: 70\n"
      "Content-Length: 0\n\n";
  static const char *message =
      "MESSAGE sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>\n"
      "Call-ID: $CID\n"
      "CSeq: 1 MESSAGE\n"
      "Max-Forwards: 70\n"
      "Content-Type: text/plain\n"
      "Content-Length: $CL\n\n"
      "hello";
  char v[512];
  setup();
  for (int i = 0; i < 2; i++) {
    outcome_tmpl(both[i], "FOO", foo, 405);
    REQUIRE(t_header(last, "Allow", v, sizeof v));
    CHECK(t_list_has(v, "INVITE") && !t_list_has(v, "FOO"));
    outcome_tmpl(both[i], "MESSAGE", message, 405);
    REQUIRE(t_header(last, "Allow", v, sizeof v));
    CHECK(t_list_has(v, "INVITE") && !t_list_has(v, "MESSAGE"));
  }
  teardown();
}

static void test_no_such_dialog(void) {
  static const char *bye =
      "BYE sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>;tag=nosuchdialog\n"
      "Call-ID: $CID\n"
      "CSeq: 2 BYE\n"
      "Max-Forwards: 70\n"
      "Content-Length: 0\n\n";
  static const char *notify =
      "NOTIFY sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>;tag=nosuchdialog\n"
      "Call-ID: $CID\n"
      "CSeq: 2 NOTIFY\n"
      "Max-Forwards: 70\n"
      "Event: refer\n"
      "Subscription-State: active;expires=60\n"
      "Content-Type: message/sipfrag\n"
      "Content-Length: $CL\n\n"
      "SIP/2.0 100 Trying\r\n";
  static sr_session_state est = SR_SESSION_ESTABLISHED,
                          term = SR_SESSION_TERMINATED;
  setup();
  for (int i = 0; i < 2; i++) {
    outcome_tmpl(both[i], "BYE, no dialog", bye, 481);
    outcome_tmpl(both[i], "NOTIFY, no dialog", notify, 481);
  }
  /* While a call is up, a BYE that gets one of its identifiers wrong
   * matches no dialog, and the call is unharmed. */
  for (int i = 0; i < 2; i++) {
    sr_session_unref(alice_s); /* the last checking call's */
    sr_session_unref(bob_s);
    alice_s = bob_s = NULL;
    REQUIRE(sr_ua_make_inviter(A, t_target(B, "bob", both[i]), NULL,
                               &alice_s) == 0);
    REQUIRE(sr_inviter_invite(alice_s) == 0);
    REQUIRE(t_drive(both_in, &est, 10000));
    sr_session *live_a = alice_s, *live_b = bob_s;
    alice_s = bob_s = NULL;
    const char *cid = sr_session_call_id(live_b),
               *btag = sr_session_local_tag(live_b),
               *atag = sr_session_remote_tag(live_b);
    const char *wrong[3][3] = {{cid, btag, "wrong"}, /* From-tag */
                               {cid, "wrong", atag}, /* To-tag */
                               {"wrong", btag, atag}}; /* Call-ID */
    for (int k = 0; k < 3; k++) {
      char t[1024];
      snprintf(t, sizeof t,
               "BYE sip:bob@$UA SIP/2.0\n"
               "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
               "From: <sip:alice@127.0.0.1>;tag=%s\n"
               "To: <sip:bob@127.0.0.1>;tag=%s\n"
               "Call-ID: %s\n"
               "CSeq: 99 BYE\n"
               "Max-Forwards: 70\n"
               "Content-Length: 0\n\n",
               wrong[k][2], wrong[k][1], wrong[k][0]);
      outcome_tmpl(both[i], "BYE, near miss", t, 481);
      CHECK_INT(sr_session_get_state(live_a), SR_SESSION_ESTABLISHED);
      CHECK_INT(sr_session_get_state(live_b), SR_SESSION_ESTABLISHED);
    }
    CHECK_INT(sr_session_bye(live_a), 0);
    sr_session_unref(alice_s);
    sr_session_unref(bob_s);
    alice_s = live_a;
    bob_s = live_b;
    CHECK(t_drive(both_in, &term, 10000));
  }
  teardown();
}

static void test_refer_out_of_dialog(void) {
  static const char *refer =
      "REFER sip:bob@$UA SIP/2.0\n"
      "Via: SIP/2.0/$TP $ME;branch=$BR;rport\n"
      "From: <sip:raw@127.0.0.1>;tag=r1\n"
      "To: <sip:bob@$UA>\n"
      "Call-ID: $CID\n"
      "CSeq: 1 REFER\n"
      "Max-Forwards: 70\n"
      "Contact: <sip:raw@$ME$TR>\n"
      "Refer-To: <sip:carol@127.0.0.1>\n"
      "Content-Length: 0\n\n";
  char v[512];
  setup();
  for (int i = 0; i < 2; i++) {
    outcome_tmpl(both[i], "REFER out of dialog", refer, 405);
    REQUIRE(t_header(last, "Allow", v, sizeof v));
    CHECK(t_list_has(v, "INVITE") && !t_list_has(v, "REFER"));
  }
  teardown();
}

/* RFC 3261 §8.2, §21.5.7: a request in another SIP version gets 505 over
 * UDP and TCP alike (a stream that names one is still SIP); the version
 * is case-insensitive (§7.1); a response in another version is dropped. */
static void test_sip_version(void) {
  static const char *tmpl =
      "OPTIONS sip:bob@$UA %s\n" T_OPTIONS_HEADERS "Content-Length: 0\n\n";
  static const char *response =
      "SIP/3.0 200 OK\n"
      "Via: SIP/2.0/$TP 127.0.0.1:9;branch=z9hG4bKnosuch\n"
      "From: <sip:bob@127.0.0.1>;tag=x\n"
      "To: <sip:raw@127.0.0.1>;tag=y\n"
      "Call-ID: $CID\n"
      "CSeq: 1 OPTIONS\n"
      "Content-Length: 0\n\n";
  static const struct { const char *v; int expect; } cases[] = {
      {"SIP/3.0", 505}, {"SIP/2.1", 505}, {"SIP/1.0", 505}, {"sip/2.0", 200}};
  char t[1024];
  setup();
  for (int i = 0; i < 2; i++) {
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
      snprintf(t, sizeof t, tmpl, cases[k].v);
      outcome_tmpl(both[i], cases[k].v, t, cases[k].expect);
      CHECK(strncmp(last, "SIP/2.0 ", 8) == 0);
    }
    outcome_tmpl(both[i], "SIP/3.0 response", response, T_DROP);
  }
  teardown();
}

/* A response nobody asked for, malformed or not, is dropped. */
static void test_stray_responses(void) {
  static const char *stray =
      "SIP/2.0 200 OK\n"
      "Via: SIP/2.0/$TP 127.0.0.1:9;branch=z9hG4bKnosuch\n"
      "From: <sip:bob@127.0.0.1>;tag=x\n"
      "To: <sip:raw@127.0.0.1>;tag=y\n"
      "Call-ID: $CID\n"
      "CSeq: 1 INVITE\n"
      "Content-Length: 0\n\n";
  static const char *broken =
      "SIP/2.0 2x0 OK\n"
      "Via: SIP/2.0/$TP 127.0.0.1:9;branch=z9hG4bKnosuch\n"
      "Content-Length: 0\n\n";
  static const char *no_via =
      "SIP/2.0 180 Ringing\n"
      "From: <sip:bob@127.0.0.1>;tag=x\n"
      "To: <sip:raw@127.0.0.1>;tag=y\n"
      "Call-ID: $CID\n"
      "CSeq: 1 INVITE\n"
      "Content-Length: 0\n\n";
  setup();
  for (int i = 0; i < 2; i++) {
    outcome_tmpl(both[i], "stray 200", stray, T_IGNORE);
    outcome_tmpl(both[i], "broken status line", broken, T_DROP);
    outcome_tmpl(both[i], "response without Via", no_via, T_DROP);
  }
  teardown();
}

int main(void) {
  RUN(test_missing_headers);
  RUN(test_missing_headers_invite);
  RUN(test_cseq_mismatch);
  RUN(test_truncated);
  RUN(test_bad_start_line);
  RUN(test_content_length_lies);
  RUN(test_binary_garbage);
  RUN(test_oversize);
  RUN(test_nul_bytes);
  RUN(test_options);
  RUN(test_unknown_methods);
  RUN(test_no_such_dialog);
  RUN(test_refer_out_of_dialog);
  RUN(test_stray_responses);
  RUN(test_sip_version);
  return DONE();
}
