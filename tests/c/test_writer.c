/*
 * test_writer.c — csrc/writer.c writes the same bytes as libosip2's
 * osip_message_to_str: for the receive seed corpus (tests/fuzz/corpus/
 * receive, placeholders filled in), for messages with every header kind
 * libosip2 knows, escapes in each URI part, IPv6 hosts, display names,
 * "Contact: *", unknown headers, bodies (one, large, none) and a
 * multipart; for a message unchanged since parsed (its own bytes back);
 * and it refuses what libosip2 refuses (no Call-ID number, a response
 * without a reason phrase) and a Content-Type libosip2 writes broken.
 *
 * The source tree is found from $SR_ROOT, else from this file's path.
 */
#include <dirent.h>
#include <stdlib.h>

#include "internal.h"
#undef REQUIRE /* libosip2's headers have one of their own */
#include "harness.h"

static int compared;

static int uris_compared;

/* sr__uri_to_str against osip_uri_to_str, for one URI of a message. */
static void same_uri(osip_uri_t *u, const char *what) {
  if (!u) return;
  char *a = NULL, *b = NULL;
  int ra = sr__uri_to_str(u, &a), rb = osip_uri_to_str(u, &b);
  CHECK_INT(ra == 0, rb == 0);
  if (ra == 0 && rb == 0) {
    CHECK_STR(a, b);
    if (strcmp(a, b) != 0) fprintf(stderr, "%s: URI differs\n", what);
    uris_compared++;
  }
  osip_free(a);
  osip_free(b);
}

/* Both writers, from the structure (not a cached copy), byte for byte;
 * and the URIs of its start line, From, To and Contacts alone. */
static void same(osip_message_t *m, const char *what) {
  same_uri(m->req_uri, what);
  if (m->from) same_uri(m->from->url, what);
  if (m->to) same_uri(m->to->url, what);
  osip_list_iterator_t it;
  for (osip_contact_t *c = osip_list_get_first(&m->contacts, &it); c;
       c = osip_list_get_next(&it))
    same_uri(c->url, what);
  char *a = NULL, *b = NULL;
  size_t la = 0, lb = 0;
  osip_message_force_update(m);
  int ra = sr__message_to_str(m, &a, &la);
  osip_message_force_update(m);
  int rb = osip_message_to_str(m, &b, &lb);
  CHECK_INT(ra == 0, rb == 0);
  if (ra == 0 && rb == 0) {
    int eq = la == lb && memcmp(a, b, la) == 0 && a[la] == 0;
    CHECK(eq);
    if (!eq)
      fprintf(stderr, "%s differs:\n--- ours (%zu)\n%s\n--- libosip2 (%zu)\n%s\n",
              what, la, a, lb, b);
    compared++;
  }
  osip_free(a);
  osip_free(b);
}

static osip_message_t *parse(const char *text) {
  osip_message_t *m;
  if (osip_message_init(&m) != 0) return NULL;
  if (osip_message_parse(m, text, strlen(text)) != 0) {
    osip_message_free(m);
    return NULL;
  }
  return m;
}

static void same_text(const char *text, const char *what) {
  osip_message_t *m = parse(text);
  CHECK(m != NULL);
  if (!m) {
    fprintf(stderr, "%s: libosip2 does not parse it\n", what);
    return;
  }
  same(m, what);
  osip_message_free(m);
}

#define HDRS                                                               \
  "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa1;rport\r\n"              \
  "From: \"Alice A\" <sip:alice@127.0.0.1>;tag=f1\r\n"                     \
  "To: <sip:bob@127.0.0.1>\r\n"                                             \
  "Call-ID: c1@127.0.0.1\r\n"

static const char *const cases[] = {
    /* every known header, in an order libosip2 does not write them */
    "INVITE sip:bob@127.0.0.1:5060;transport=udp;lr SIP/2.0\r\n"
    "Content-Type: application/sdp\r\n" HDRS
    "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
    "Contact: <sip:alice@127.0.0.1:5070>;expires=60\r\n"
    "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    "Route: <sip:[2001:db8::1]:5080;lr>\r\n"
    "Via: SIP/2.0/TCP [2001:db8::2]:5090;branch=z9hG4bKb2;received=10.0.0.1 (a comment)\r\n"
    "Allow: INVITE, ACK, BYE\r\nAccept: application/sdp, text/plain;q=0.5\r\n"
    "Accept-Encoding: gzip\r\nAccept-Language: en, fr;q=0.4\r\n"
    "Alert-Info: <http://example.com/ring.wav>\r\n"
    "Call-Info: <http://example.com/alice.png>;purpose=icon\r\n"
    "Error-Info: <sip:not-in-service@example.com>\r\n"
    "Content-Encoding: identity\r\nMime-Version: 1.0\r\n"
    "Authorization: Digest username=\"alice\", realm=\"r\", nonce=\"n\", "
    "uri=\"sip:bob@127.0.0.1\", response=\"0123456789abcdef0123456789abcdef\"\r\n"
    "Proxy-Authorization: Digest username=\"a\", realm=\"p\", nonce=\"m\", "
    "uri=\"sip:bob@127.0.0.1\", response=\"00\"\r\n"
    "Authentication-Info: nextnonce=\"47364c23432d2e131a5fb210812c\"\r\n"
    "Proxy-Authentication-Info: nextnonce=\"1\"\r\n"
    "allow-events: refer\r\nzzz-last: z\r\nx-empty: \r\nSubject: hello world\r\n"
    "Content-Length: 0\r\n\r\n"
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\n",
    /* responses, with and without a body, and their challenges */
    "SIP/2.0 401 Unauthorized\r\n" HDRS "CSeq: 1 INVITE\r\n"
    "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth\", algorithm=MD5\r\n"
    "Content-Length: 0\r\n\r\n",
    "SIP/2.0 407 Proxy Authentication Required\r\n" HDRS "CSeq: 1 INVITE\r\n"
    "Proxy-Authenticate: Digest realm=\"p\", nonce=\"m\", stale=TRUE\r\n"
    "Content-Length: 0\r\n\r\n",
    "SIP/2.0 200 OK\r\n" HDRS "CSeq: 2 NOTIFY\r\nContact: *\r\n"
    "Content-Type: message/sipfrag;version=2.0\r\nContent-Length: 18\r\n\r\n"
    "SIP/2.0 100 Trying",
    /* escapes in every URI part; absolute URIs; URI headers */
    "REFER sip:%61lice%20x:p%40ss@127.0.0.1;maddr=a%3Bb;x=%5B1%5D SIP/2.0\r\n"
    HDRS "CSeq: 3 REFER\r\n"
    "Refer-To: <sip:carol@127.0.0.1?Replaces=c2%40h%3Bto-tag%3D1%3Bfrom-tag%3D2&X-Y=a%20b>\r\n"
    "Contact: \"Al\" <sip:alice@127.0.0.1>\r\n"
    "Route: <tel:+1-555-0100;phone-context=example.com>\r\n"
    "Record-Route: <sip:p.example.com;x-obr=1;lr>\r\n"
    "Content-Length: 0\r\n\r\n",
    "OPTIONS tel:+15550100 SIP/2.0\r\n" HDRS "CSeq: 4 OPTIONS\r\n"
    "Contact: <sip:a@[::1]:5070;transport=tcp>, <sip:b@127.0.0.1>;q=0.5\r\n"
    "Content-Length: 0\r\n\r\n",
    /* Content-Type parameters (quoted, several, upper case) */
    "MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 6 MESSAGE\r\n"
    "Content-Type: Text/Plain ;Charset=\"utf-8\"; x=1 ;Y=two\r\n"
    "Content-Length: 2\r\n\r\nhi",
    /* a multipart body: libosip2 writes it */
    "MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS "CSeq: 5 MESSAGE\r\n"
    "Mime-Version: 1.0\r\n"
    "Content-Type: multipart/mixed;boundary=\"b1\"\r\n\r\n"
    "--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    "--b1\r\nContent-Type: text/plain\r\n\r\nworld\r\n--b1--\r\n",
};

static void test_cases(void) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char what[32];
    snprintf(what, sizeof what, "case %zu", i);
    same_text(cases[i], what);
  }
}

/* A body past the first buffer, and a header past it. */
static void test_large(void) {
  size_t n = 5000;
  char *body = malloc(n + 1), *val = malloc(3001);
  REQUIRE(body && val);
  for (size_t i = 0; i < n; i++) body[i] = (char)('a' + i % 26);
  body[n] = 0;
  memset(val, 'v', 3000);
  val[3000] = 0;
  osip_message_t *m = parse("MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS
                            "CSeq: 6 MESSAGE\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(m);
  CHECK(osip_message_set_header(m, "X-Long", val) == 0);
  CHECK(osip_message_set_body(m, body, n) == 0);
  CHECK(osip_message_set_content_type(m, "text/plain") == 0);
  same(m, "large");
  osip_message_free(m);
  free(body);
  free(val);
}

/* Built, not parsed: raw characters the writer must escape. */
static void test_built(void) {
  osip_message_t *m = parse("BYE sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS
                            "CSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(m);
  osip_uri_t *u = m->req_uri;
  osip_free(u->username);
  u->username = osip_strdup("b o\"b<>%\x01\xe9");
  osip_uri_uparam_add(u, osip_strdup("p q"), osip_strdup("v;w=x"));
  osip_uri_uparam_add(u, osip_strdup("flag"), NULL);
  osip_uri_uheader_add(u, osip_strdup("h&k"), osip_strdup("v?w&\xff"));
  same(m, "built");
  osip_message_free(m);
}

/* Unchanged since parsed: the bytes it was parsed from, as libosip2. */
static void test_unchanged(void) {
  const char *text = "BYE sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS
                     "cseq:   8 BYE\r\nContent-Length:   0\r\n\r\n";
  osip_message_t *m = parse(text);
  REQUIRE(m);
  char *a = NULL, *b = NULL;
  size_t la = 0, lb = 0;
  CHECK_INT(sr__message_to_str(m, &a, &la), 0);
  CHECK_INT(osip_message_to_str(m, &b, &lb), 0);
  CHECK(a && b && la == lb && memcmp(a, b, la) == 0);
  osip_free(a);
  osip_free(b);
  osip_message_free(m);
}

static void test_refused(void) {
  osip_message_t *m = parse("SIP/2.0 200 OK\r\n" HDRS
                            "CSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(m);
  char *a = NULL;
  osip_free(m->reason_phrase);
  m->reason_phrase = NULL;
  osip_message_force_update(m);
  CHECK_INT(sr__message_to_str(m, &a, NULL), SR_EINVAL);
  CHECK(a == NULL);
  m->reason_phrase = osip_strdup("OK");
  osip_free(m->call_id->number);
  m->call_id->number = NULL;
  osip_message_force_update(m);
  CHECK_INT(sr__message_to_str(m, &a, NULL), SR_EINVAL);
  CHECK(a == NULL);
  osip_message_free(m);
  /* A Content-Type parameter without a value: libosip2 writes a broken
   * "Content-Type: Content-Length: ..." line; ours refuses. */
  m = parse("MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\n" HDRS
            "CSeq: 6 MESSAGE\r\nContent-Type: text/plain;flowed\r\n"
            "Content-Length: 2\r\n\r\nhi");
  REQUIRE(m);
  osip_message_force_update(m);
  CHECK_INT(sr__message_to_str(m, &a, NULL), SR_EINVAL);
  CHECK(a == NULL);
  osip_message_free(m);
}

/* The receive seeds, "$NAME" placeholders filled with a token. */
static void test_corpus(void) {
  char root[4096], dir[4200];
  const char *env = getenv("SR_ROOT");
  snprintf(root, sizeof root, "%s", env && *env ? env : __FILE__);
  char *p = env && *env ? NULL : strstr(root, "/tests/c/");
  if (p) *p = 0;
  snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/receive", root);
  DIR *d = opendir(dir);
  REQUIRE(d);
  int parsed = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char path[4500], raw[16384], text[32768];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "rb");
    if (!f) continue;
    size_t n = fread(raw, 1, sizeof raw - 1, f);
    fclose(f);
    size_t k = 0;
    for (size_t i = 1; i < n && k < sizeof text - 16; i++) { /* [0]: mode */
      if (raw[i] == '$' && i + 1 < n && raw[i + 1] >= 'A' && raw[i + 1] <= 'Z') {
        while (i + 1 < n && ((raw[i + 1] >= 'A' && raw[i + 1] <= 'Z') ||
                             raw[i + 1] == '_'))
          i++;
        memcpy(text + k, "h1x", 3);
        k += 3;
      } else {
        text[k++] = raw[i];
      }
    }
    text[k] = 0;
    osip_message_t *m = parse(text);
    if (!m) continue; /* a stream of several, or meant not to parse */
    parsed++;
    same(m, e->d_name);
    osip_message_free(m);
  }
  closedir(d);
  CHECK(parsed >= 20);
}

int main(void) {
  parser_init();
  RUN(test_cases);
  RUN(test_large);
  RUN(test_built);
  RUN(test_unchanged);
  RUN(test_refused);
  RUN(test_corpus);
  fprintf(stderr, "%d messages and %d URIs compared\n", compared, uris_compared);
  CHECK(uris_compared > compared); /* the URI comparison really ran */
  return DONE();
}
