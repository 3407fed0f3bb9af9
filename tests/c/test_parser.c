/*
 * test_parser.c — csrc/parser.c builds the same osip_message_t as
 * libosip2's osip_message_parse: both fail or both succeed, and then both
 * structures serialise to the same bytes and agree field by field (start
 * line, every header list's length, each unknown header's name and value,
 * the bodies, the cached-bytes state). Inputs: the fuzz corpus and
 * regressions, hand-written messages and variants of them (every header
 * kind, compact forms, name case, blanks around separators, several values
 * on a line, quoted strings, IPv6, escapes, empty values, bodies with and
 * without Content-Length, LF line ends, truncations). Ordinary messages
 * must take the fast path (no silent fallback).
 *
 * The source tree is found from $SR_ROOT, else from this file's path.
 */
#include <dirent.h>
#include <stdlib.h>

#include "internal.h"
#undef REQUIRE /* libosip2's headers have one of their own */
#include "harness.h"

static int compared, agreed_fail, fast_taken;

static char *to_str(osip_message_t *m, int *rc) {
  char *s = NULL;
  size_t n = 0;
  osip_message_force_update(m); /* really serialise the structure */
  *rc = osip_message_to_str(m, &s, &n);
  return s;
}

static int same_str(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int same_uri(osip_uri_t *a, osip_uri_t *b) {
  if (!a || !b) return !a && !b;
  char *x = NULL, *y = NULL;
  int ra = osip_uri_to_str(a, &x), rb = osip_uri_to_str(b, &y);
  int eq = ra == rb && same_str(x, y) && same_str(a->scheme, b->scheme) &&
           same_str(a->username, b->username) && same_str(a->host, b->host) &&
           same_str(a->port, b->port) &&
           osip_list_size(&a->url_params) == osip_list_size(&b->url_params);
  osip_free(x);
  osip_free(y);
  return eq;
}

/* The fields a writer might normalise, compared one by one. */
static int same_fields(osip_message_t *a, osip_message_t *b) {
  if (!same_str(a->sip_method, b->sip_method) ||
      !same_str(a->sip_version, b->sip_version) ||
      !same_str(a->reason_phrase, b->reason_phrase) ||
      a->status_code != b->status_code || !same_uri(a->req_uri, b->req_uri) ||
      a->message_property != b->message_property || a->message || b->message)
    return 0;
  const osip_list_t *la[] = {
      &a->accepts, &a->accept_encodings, &a->accept_languages,
      &a->alert_infos, &a->allows, &a->authentication_infos,
      &a->authorizations, &a->call_infos, &a->contacts,
      &a->content_encodings, &a->error_infos, &a->proxy_authenticates,
      &a->proxy_authentication_infos, &a->proxy_authorizations,
      &a->record_routes, &a->routes, &a->vias, &a->www_authenticates,
      &a->headers, &a->bodies};
  const osip_list_t *lb[] = {
      &b->accepts, &b->accept_encodings, &b->accept_languages,
      &b->alert_infos, &b->allows, &b->authentication_infos,
      &b->authorizations, &b->call_infos, &b->contacts,
      &b->content_encodings, &b->error_infos, &b->proxy_authenticates,
      &b->proxy_authentication_infos, &b->proxy_authorizations,
      &b->record_routes, &b->routes, &b->vias, &b->www_authenticates,
      &b->headers, &b->bodies};
  for (size_t i = 0; i < sizeof la / sizeof la[0]; i++)
    if (osip_list_size(la[i]) != osip_list_size(lb[i])) return 0;
  for (int i = 0; i < osip_list_size(&a->headers); i++) {
    osip_header_t *x = osip_list_get(&a->headers, i);
    osip_header_t *y = osip_list_get(&b->headers, i);
    if (!same_str(x->hname, y->hname) || !same_str(x->hvalue, y->hvalue))
      return 0;
  }
  for (int i = 0; i < osip_list_size(&a->bodies); i++) {
    osip_body_t *x = osip_list_get(&a->bodies, i);
    osip_body_t *y = osip_list_get(&b->bodies, i);
    if (x->length != y->length || memcmp(x->body, y->body, x->length) != 0)
      return 0;
  }
  if (!a->from != !b->from || !a->to != !b->to || !a->call_id != !b->call_id ||
      !a->cseq != !b->cseq || !a->content_type != !b->content_type ||
      !a->content_length != !b->content_length ||
      !a->mime_version != !b->mime_version)
    return 0;
  if (a->from && !same_uri(a->from->url, b->from->url)) return 0;
  if (a->to && !same_uri(a->to->url, b->to->url)) return 0;
  if (a->content_length &&
      !same_str(a->content_length->value, b->content_length->value))
    return 0;
  return 1;
}

/* Both parsers on one input; returns 1 if ours took its fast path. */
static int compare(const char *data, size_t len, const char *what) {
  osip_message_t *ours = NULL, *theirs = NULL;
  int ro = sr__message_parse(data, len, &ours);
  osip_message_init(&theirs);
  int rt = osip_message_parse(theirs, data, len);
  if (rt != 0) {
    osip_message_free(theirs);
    theirs = NULL;
  }
  CHECK_INT(ro == 0, rt == 0);
  if ((ro == 0) != (rt == 0))
    fprintf(stderr, "%s: ours %d, libosip2 %d:\n%.*s\n", what, ro, rt,
            (int)len, data);
  int fast = 0;
  if (ours && theirs) {
    CHECK_INT(ours->message_property, theirs->message_property);
    CHECK(!ours->message && !theirs->message);
    int ra, rb;
    char *a = to_str(ours, &ra), *b = to_str(theirs, &rb);
    int eq = ra == rb && same_str(a, b);
    CHECK(eq);
    if (!eq)
      fprintf(stderr, "%s differs:\n--- ours\n%s\n--- libosip2\n%s\n", what,
              a ? a : "(none)", b ? b : "(none)");
    osip_free(a);
    osip_free(b);
    /* to_str cached the bytes in both; compare the rest */
    osip_free(ours->message);
    osip_free(theirs->message);
    ours->message = theirs->message = NULL;
    ours->message_property = theirs->message_property = 2;
    int f = same_fields(ours, theirs);
    CHECK(f);
    if (!f) fprintf(stderr, "%s: fields differ\n%.*s\n", what, (int)len, data);
    compared++;
    osip_message_t *m = NULL;
    fast = sr__message_parse_fast(data, len, &m) == 0;
    if (m) osip_message_free(m);
    fast_taken += fast;
  } else if (!ours && !theirs) {
    agreed_fail++;
    osip_message_t *m = NULL;
    CHECK(sr__message_parse_fast(data, len, &m) != 0); /* never "fast ok" */
    if (m) osip_message_free(m);
  }
  if (ours) osip_message_free(ours);
  if (theirs) osip_message_free(theirs);
  return fast;
}

static void compare_str(const char *s, const char *what) {
  compare(s, strlen(s), what);
}

/* The message, every prefix of it, and with LF line ends. */
static void compare_all(const char *s, size_t n, const char *what) {
  compare(s, n, what);
  for (size_t k = 0; k < n; k += k < 64 ? 1 : 7) compare(s, k, what);
  char *lf = malloc(n + 1);
  size_t j = 0;
  for (size_t i = 0; i < n; i++)
    if (!(s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')) lf[j++] = s[i];
  compare(lf, j, what);
  free(lf);
}

#define H_VIA "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa1;rport\r\n"
#define H_FROM "From: \"Alice A\" <sip:alice@127.0.0.1>;tag=f1\r\n"
#define H_TO "To: <sip:bob@127.0.0.1>\r\n"
#define H_CID "Call-ID: c1@127.0.0.1\r\n"
#define HDRS H_VIA H_FROM H_TO H_CID

/* Ordinary messages: each must take the fast path. */
static const char *const ordinary[] = {
    "INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\n" HDRS
    "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
    "Contact: <sip:alice@127.0.0.1:5070>\r\n"
    "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, REFER, NOTIFY\r\n"
    "Supported: replaces, norefersub\r\n"
    "Content-Type: application/sdp\r\nContent-Length: 121\r\n\r\n"
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
    "SIP/2.0 200 OK\r\n" H_VIA H_FROM "To: <sip:bob@127.0.0.1>;tag=t9\r\n" H_CID
    "CSeq: 1 INVITE\r\nContact: <sip:bob@127.0.0.1:5060>\r\n"
    "Record-Route: <sip:p1.example.com;lr>\r\nContent-Length: 0\r\n\r\n",
    "REFER sip:bob@127.0.0.1:5060 SIP/2.0\r\n" HDRS
    "CSeq: 2 REFER\r\nMax-Forwards: 70\r\nContact: <sip:alice@127.0.0.1:5070>\r\n"
    "Refer-To: <sip:carol@127.0.0.1?Replaces=c2%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n"
    "Referred-By: <sip:alice@127.0.0.1>\r\nContent-Length: 0\r\n\r\n",
    "NOTIFY sip:alice@127.0.0.1:5070 SIP/2.0\r\n" HDRS
    "CSeq: 3 NOTIFY\r\nMax-Forwards: 70\r\nEvent: refer;id=2\r\n"
    "Subscription-State: active;expires=60\r\n"
    "Content-Type: message/sipfrag;version=2.0\r\nContent-Length: 20\r\n\r\n"
    "SIP/2.0 100 Trying\r\n",
    "SIP/2.0 202 Accepted\r\n" HDRS "CSeq: 2 REFER\r\nContent-Length: 0\r\n\r\n",
    "BYE sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 4 BYE\r\n\r\n",
    "ACK sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
    "SIP/2.0 180 Ringing\r\n" HDRS "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
};

/* Header lines put into a base request one at a time (and all at once). */
static const char *const lines[] = {
    "Via: SIP/2.0/TCP [2001:db8::2]:5090;branch=z9hG4bKb2;received=10.0.0.1",
    "v: SIP/2.0/UDP h1;branch=z9hG4bK1, SIP/2.0/UDP h2:5062;branch=z9hG4bK2",
    "H_VIA : SIP/2.0/UDP h1;branch=x",
    "Via: SIP/2.0/UDP h1 ; branch = x ; rport",
    "Via:SIP/2.0/UDP h1;branch=x",
    "Via: SIP/2.0/UDP h1;branch=x (comment, with comma)",
    "Via:",
    "Via: ",
    "Contact: <sip:a@[::1]:5070;transport=tcp>, <sip:b@127.0.0.1>;q=0.5",
    "m: \"a, b\" <sip:a@h>;expires=3, sip:c@h",
    "Contact: *",
    "Contact: \"Quote \\\" ,;\" <sip:x@h>",
    "Contact: <sip:a,b@h>",
    "Contact: sip:a@h;p",
    "CONTACT: <sip:%61b%20c@h;a%3Db=c%2Cd>",
    "Contact: <tel:+1-555-0100;phone-context=example.com>",
    "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
    "Route: <sip:[2001:db8::1]:5080;lr>",
    "Route: <sip:p1;lr>,<sip:p2;lr> , <sip:p3;lr>",
    "route: <sip:p1;lr>",
    "Allow: INVITE, ACK, BYE",
    "allow: INVITE,ACK",
    "Accept: application/sdp, text/plain;q=0.5",
    "Accept-Encoding: gzip",
    "Accept-Language: en, fr;q=0.4",
    "Alert-Info: <http://example.com/ring.wav>",
    "Call-Info: <http://example.com/alice.png>;purpose=icon",
    "Error-Info: <sip:not-in-service@example.com>",
    "Content-Encoding: identity",
    "e: gzip",
    "Mime-Version: 1.0",
    "Authorization: Digest username=\"alice\", realm=\"r\", nonce=\"n\", "
    "uri=\"sip:bob@127.0.0.1\", response=\"0123456789abcdef0123456789abcdef\"",
    "Proxy-Authorization: Digest username=\"a\", realm=\"p\", nonce=\"m\", "
    "uri=\"sip:b@h\", response=\"00\"",
    "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth\"",
    "Proxy-Authenticate: Digest realm=\"p\", nonce=\"m\", stale=TRUE",
    "Authentication-Info: nextnonce=\"47364c23432d2e131a5fb210812c\"",
    "Proxy-Authentication-Info: nextnonce=\"1\"",
    "Max-Forwards: 70",
    "Subscription-State: terminated;reason=noresource",
    "Event: refer;id=93809824",
    "o: refer",
    "Refer-To: <sip:c@h?Replaces=a%40b%3Bto-tag%3D1&Require=replaces>",
    "r: sip:c@h",
    "Referred-By: <sip:a@h>",
    "b: <sip:a@h>",
    "Replaces: c2@h;to-tag=1;from-tag=2",
    "Supported: replaces, timer",
    "k: replaces",
    "Require: norefersub,  timer",
    "Allow-Events: refer, dialog",
    "u: refer",
    "Subject: hello, world",
    "s: hi",
    "X-Empty:",
    "X-Blank:    ",
    "X-Comma: a, b, \"c, d\"",
    "X-Tab:\ta\tb\t",
    "x-lower: v",
    "X-UPPER: V",
    "Warning: 399 h \"a, b\", 399 h2 \"c\"",
    "P-Asserted-Identity: \"A, B\" <sip:a@h>, <tel:+15550100>",
    "Reason: SIP;cause=200;text=\"Call completed elsewhere\"",
    "Date: Sat, 13 Nov 2010 23:29:00 GMT",
    "User-Agent: test/1.0 (x; y)",
    "Expires: 60",
    "Timestamp: 54",
    "Organization: a",
};

static const char *const base_head = "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n";
static const char *const base_tail =
    HDRS "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

static void test_ordinary(void) {
  for (size_t i = 0; i < sizeof ordinary / sizeof ordinary[0]; i++) {
    char what[32];
    snprintf(what, sizeof what, "ordinary %zu", i);
    int fast = compare(ordinary[i], strlen(ordinary[i]), what);
    CHECK(fast);
    if (!fast) fprintf(stderr, "%s: not on the fast path\n", what);
    compare_all(ordinary[i], strlen(ordinary[i]), what);
  }
}

static void test_lines(void) {
  char buf[4096];
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
    snprintf(buf, sizeof buf, "%s%s\r\n%s", base_head, lines[i], base_tail);
    compare_str(buf, lines[i]);
    /* at the end, after the mandatory ones, and in a response */
    snprintf(buf, sizeof buf, "SIP/2.0 200 OK\r\n" HDRS "CSeq: 1 OPTIONS\r\n%s\r\n\r\n",
             lines[i]);
    compare_str(buf, lines[i]);
  }
  size_t k = (size_t)snprintf(buf, sizeof buf, "%s", base_head);
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
    k += (size_t)snprintf(buf + k, sizeof buf - k, "%s\r\n", lines[i]);
  snprintf(buf + k, sizeof buf - k, "%s", base_tail);
  compare_str(buf, "all lines");
}

/* Call-ID and CSeq values, into a request without either. */
static const char *const ids[] = {
    "Call-ID: c1@127.0.0.1", "i: abc", "Call-ID: a@b@c", "Call-ID: x@",
    "Call-ID: @h", "Call-ID: a b", "Call-ID: a%41!*~@[::1]", "Call-ID:",
    "CSeq: 1 OPTIONS", "CSeq: 1  OPTIONS", "CSeq: 01 options",
    "CSeq: 4294967296 OPTIONS", "CSeq: 1", "CSeq: OPTIONS", "CSeq: 1 OPT IONS",
    "CSeq: -1 OPTIONS", "CSeq:  7\tOPTIONS",
};

static void test_ids(void) {
  char buf[1024];
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    int cseq = ids[i][1] == 'S';
    snprintf(buf, sizeof buf,
             "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" H_VIA H_FROM H_TO "%s%s\r\n\r\n",
             cseq ? H_CID : "CSeq: 1 OPTIONS\r\n", ids[i]);
    compare_str(buf, ids[i]);
  }
}

/* From and To values (after "From:" / "To:"), into a request with
 * neither; each goes to Contact, Route and Record-Route too. */
static const char *const addrs[] = {
    "\"A\"<sip:a@h>;tag=1", "\"\" <sip:a@h>", "\"A \\\"q\\\"\" <sip:a@h>;tag=1",
    "\"A\"   <sip:a@h>", "A B <sip:a@h>;tag=x", "<sip:a@h>;tag=1;x", "<sip:a@h> ;tag=1",
    "<sip:a@h>;tag=", "<sip:a@h>;tag=\"q;v\"", "sip:a@h;tag=1",
    "<sip:a@h:5060;transport=udp>;tag=1", "<sips:a@h>", "<sip:h>", "<sip:a@h:>",
    "<sip:a@h:123456>", "<sip:a:pw@h>", "<sip:a@h;x=>", "<sip:a@h;;x>",
    "<sip:a@b@h>", "<sip:@h>", "<sip:a@>", "<sip:a@h>x", "<sip:a@h",
    "<sip:a%20b@h>", "<tel:+1555>", "<sip:a@[::1]:5060>", "<SIP:a@h>",
    "<sip:a@h;lr;maddr=1.2.3.4>;expires=5;q=0.5", "<sip:a@h?x=y>", "<sip:a=b@h>",
    "<sip:a@h;x=a:b>", "<sip:a@h;x=a@b>", "<sip:ab>", "<sip:a@h>;tag=1;tag=2",
    "\"A, B\" <sip:a@h>", "<sip:a@h>, <sip:b@h>", "*", "* <sip:a@h>",
};

static void test_addrs(void) {
  static const char *const kinds[] = {"From: ", "f: ", "To: ", "t: ", "Contact: ",
                                      "m: ", "Route: ", "Record-Route: "};
  char buf[1024];
  for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
      int from = kinds[k][0] == 'F' || kinds[k][0] == 'f';
      int to = kinds[k][0] == 'T' || kinds[k][0] == 't';
      snprintf(buf, sizeof buf,
               "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" H_VIA "%s%s%s%s\r\n" H_CID
               "CSeq: 1 OPTIONS\r\n\r\n",
               from ? "" : H_FROM, to ? "" : H_TO, kinds[k], addrs[i]);
      compare_str(buf, addrs[i]);
    }
  }
}

/* Start lines, line ends, folding, bodies, odd framing. */
static const char *const odd[] = {
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\n" HDRS "CSeq: 1 OPTIONS\n\n",
    "\r\n\r\nOPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "Subject: a\r\n b\r\n\tc\r\nCSeq: 1 OPTIONS\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS",
    "OPTIONS sip:bob@127.0.0.1 sip/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/3.0\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "OPTIONS  sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "OPTIONS x SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "OPTIONS bob SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "SIP/2.0 200\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "SIP/2.0 200 \r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "SIP/2.0 2000 Big\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "SIP/2.0 099 Small\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "SIP/2.0 abc OK\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "SIP/2.0 200 OK  with  spaces \r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nNoColon\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\n: v\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nCall-ID: dup\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nCSeq: 2 OPTIONS\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: x\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nFrom: <sip:x@y>\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: garbage\r\n" H_FROM H_TO H_CID "CSeq: 1 OPTIONS\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" H_VIA "From: <sip:a@h\r\n" H_TO H_CID "CSeq: 1 OPTIONS\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nX: a\rb\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nContent-Type: text/plain\r\n\r\nhello",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nhello",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nhello",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nContent-Length: 5\r\n\r\nhello",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\nhello",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nContent-Length: x\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nContent-Length: -1\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nContent-Length:\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\nl: 0\r\n\r\n",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nc: text/plain\r\nl: 2\r\n\r\nhi",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nContent-Type: text/plain\r\n\r\nhi\r\n\r\nthere",
    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\nContent-Type: multipart/mixed;boundary=b1\r\n\r\n"
    "--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1--\r\n",
    "OPTIONS sip:%61lice%20x:p%40ss@127.0.0.1;maddr=a%3Bb;x=%5B1%5D SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "OPTIONS sip:bob@[2001:db8::1]:5060;transport=tcp?h=v&i=w SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "OPTIONS tel:+15550100 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "OPTIONS sip:bob@h;lr;x= SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
    "OPTIONS sip:bob@h:123456789 SIP/2.0\r\n" HDRS "CSeq: 1 OPTIONS\r\n\r\n",
};

static void test_odd(void) {
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    char what[32];
    snprintf(what, sizeof what, "odd %zu", i);
    compare_all(odd[i], strlen(odd[i]), what);
  }
  /* a NUL in the headers, and one in a body */
  static const char nul[] =
      "MESSAGE sip:bob@h SIP/2.0\r\n" HDRS "CSeq: 1 MESSAGE\r\nX: a\0b\r\n"
      "Content-Type: application/octet-stream\r\nContent-Length: 3\r\n\r\na\0b";
  compare(nul, sizeof nul - 1, "nul in header");
  static const char nulb[] =
      "MESSAGE sip:bob@h SIP/2.0\r\n" HDRS "CSeq: 1 MESSAGE\r\n"
      "Content-Type: application/octet-stream\r\nContent-Length: 3\r\n\r\na\0b";
  CHECK(compare(nulb, sizeof nulb - 1, "nul in body"));
}

/* Every ASCII byte at a few places of an ordinary message. */
static void test_bytes(void) {
  const char *s = ordinary[2];
  size_t n = strlen(s);
  char *buf = malloc(n + 1);
  for (size_t at = 0; at < n; at += 13) {
    for (int c = 1; c < 128; c += 3) {
      memcpy(buf, s, n);
      buf[at] = (char)c;
      compare(buf, n, "byte change");
    }
  }
  free(buf);
}

static size_t read_file(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  size_t n = fread(buf, 1, cap, f);
  fclose(f);
  return n;
}

/* "Content-Length: h1x" (a filled $CL) -> the body's real length. */
static void fix_length(char *text, size_t *k) {
  char *cl = strstr(text, "Content-Length: h1x\r\n");
  char *blank = strstr(text, "\r\n\r\n");
  if (!cl || !blank || cl > blank) return;
  size_t body = *k - (size_t)(blank + 4 - text);
  char num[16];
  int w = snprintf(num, sizeof num, "%zu", body);
  char *tail = cl + 16 + 3;
  memmove(cl + 16 + w, tail, strlen(tail) + 1);
  memcpy(cl + 16, num, (size_t)w);
  *k = strlen(text) + 0;
  if (body) *k = (size_t)(strstr(text, "\r\n\r\n") + 4 - text) + body;
}

/* A fuzz corpus directory: skip@ bytes of flag, "@@@@"-separated
 * messages, "$NAME" placeholders filled (and also kept as they are). */
static int corpus_dir(const char *sub, size_t skip) {
  char root[4096], dir[4300];
  const char *env = getenv("SR_ROOT");
  snprintf(root, sizeof root, "%s", env && *env ? env : __FILE__);
  char *p = env && *env ? NULL : strstr(root, "/tests/c/");
  if (p) *p = 0;
  snprintf(dir, sizeof dir, "%s/tests/fuzz/%s", root, sub);
  DIR *d = opendir(dir);
  if (!d) return -1;
  int fast = 0;
  static char raw[65536], text[65536];
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char path[4600];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    size_t n = read_file(path, raw, sizeof raw - 1);
    if (n < skip) continue;
    const char *s = raw + skip, *end = raw + n;
    while (s <= end) {
      const char *sep = memmem(s, (size_t)(end - s), "@@@@", 4);
      const char *stop = sep ? sep : end;
      size_t k = 0;
      for (const char *q = s; q < stop && k < sizeof text - 16; q++) {
        if (*q == '$' && q + 1 < stop && q[1] >= 'A' && q[1] <= 'Z') {
          while (q + 1 < stop && ((q[1] >= 'A' && q[1] <= 'Z') || q[1] == '_'))
            q++;
          memcpy(text + k, "h1x", 3);
          k += 3;
        } else {
          text[k++] = *q;
        }
      }
      text[k] = 0;
      fix_length(text, &k);
      fast += compare(text, k, e->d_name);
      compare_all(text, k, e->d_name);
      compare(s, (size_t)(stop - s), e->d_name);
      if (!sep) break;
      s = sep + 4;
    }
  }
  closedir(d);
  return fast;
}

static void test_corpus(void) {
  int fast = corpus_dir("corpus/receive", 1);
  fprintf(stderr, "receive corpus: %d messages on the fast path\n", fast);
  CHECK(fast >= 20);
  CHECK(corpus_dir("regressions/receive", 1) >= 0);
  CHECK(corpus_dir("corpus/parse", 0) >= 0);
  fast = corpus_dir("corpus/message", 0);
  fprintf(stderr, "message corpus: %d on the fast path\n", fast);
  CHECK(fast >= 40);
}

/* libosip2 prints its parse errors unless given a trace function. */
static void quiet(const char *file, int line, osip_trace_level_t level,
                  const char *fmt, va_list ap) {
  (void)file; (void)line; (void)level; (void)fmt; (void)ap;
}

int main(void) {
  osip_trace_initialize_func(OSIP_FATAL, quiet);
  parser_init();
  RUN(test_ordinary);
  RUN(test_lines);
  RUN(test_ids);
  RUN(test_addrs);
  RUN(test_odd);
  RUN(test_bytes);
  RUN(test_corpus);
  fprintf(stderr, "%d compared (%d on the fast path), %d refused by both\n",
          compared, fast_taken, agreed_fail);
  return DONE();
}
