/*
 * fuzz_parse.c — libFuzzer target: the parsers that read what a REFER
 * carries. The same input goes to each of them:
 *   - sr__uri_parse and sr__name_addr_parse (Refer-To, Referred-By), and
 *     every accessor of the views they build;
 *   - sr__unescape, and sr__escape_hvalue followed by sr__unescape, which
 *     must give the input back;
 *   - sr__request_init over the raw bytes (the request view a referral
 *     keeps), and its header lookups;
 *   - the Replaces header of an INVITE (replaces.c, via sr__replaces_match),
 *     with the input's first line as its value;
 *   - sr__sipfrag_parse (NOTIFY bodies), sr__headers_foreach (extra header
 *     lines), sr__digest_response (a 401/407 challenge);
 *   - sr__sdp_default with the input as an SDP offer: an answer is plain
 *     CRLF lines with one m= line per offered one, and the same offer
 *     again gives the same body (version kept); sr__refer_event_id.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "referral.h"

static volatile size_t fp_sink;

static size_t fp_len(const char *s) { return s ? strlen(s) : 0; }

static void fp_walk_uri(const sr_uri *u) {
  size_t n = fp_len(sr_uri_scheme(u)) + fp_len(sr_uri_user(u)) +
             fp_len(sr_uri_host(u)) + fp_len(sr_uri_string(u)) +
             (size_t)sr_uri_port(u);
  for (int i = -1; i <= sr_uri_param_count(u); i++)
    n += fp_len(sr_uri_param_name(u, i)) + fp_len(sr_uri_param_value(u, i));
  for (int i = -1; i <= sr_uri_header_count(u); i++)
    n += fp_len(sr_uri_header_name(u, i)) + fp_len(sr_uri_header_value(u, i));
  fp_sink += n;
}

static void fp_walk_name_addr(const sr_name_addr *na) {
  size_t n = fp_len(sr_name_addr_display_name(na)) + fp_len(sr_name_addr_string(na));
  for (int i = -1; i <= sr_name_addr_param_count(na); i++)
    n += fp_len(sr_name_addr_param_name(na, i)) + fp_len(sr_name_addr_param_value(na, i));
  fp_sink += n;
  fp_walk_uri(sr_name_addr_uri(na));
}

static void fp_walk_request(const sr_request *q) {
  static const char *names[] = {"refer-to", "r", "referred-by", "b", "replaces",
                                "via", "v", "content-length", "l", "event"};
  size_t n = fp_len(sr_request_method(q)) + fp_len(sr_request_ruri(q));
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    int c = sr_request_header_count(q, names[k]);
    for (int i = -1; i <= c; i++) {
      const char *v = sr_request_header(q, names[k], i);
      n += fp_len(v);
      /* What validate() does with a Refer-To. */
      if (v && k < 4) {
        struct sr_name_addr na;
        if (sr__name_addr_parse(&na, v) == 0) {
          fp_walk_name_addr(&na);
          sr__name_addr_clear(&na);
        }
      }
    }
  }
  const char *b = sr_request_body(q);
  for (size_t i = 0; i < sr_request_body_length(q); i++) n += (unsigned char)b[i];
  fp_sink += n;
}

static int fp_header(const char *name, const char *value, void *ctx) {
  (void)ctx;
  fp_sink += strlen(name) + strlen(value);
  return 0;
}

static sr_ua *fp_ua;

static void fp_free_ua(void) { sr_ua_unref(fp_ua); }

static void fp_log(int level, const char *msg, void *ud) {
  (void)level;
  (void)msg;
  (void)ud;
}

/* The Replaces parser sits behind an INVITE: build one around the line. */
static void fp_replaces(const char *s, size_t n) {
  static const char head[] =
      "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKfp\r\n"
      "From: <sip:a@127.0.0.1>;tag=f1\r\nTo: <sip:bob@127.0.0.1>\r\n"
      "Call-ID: fp@127.0.0.1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
      "Replaces: ";
  static const char tail[] = "\r\nContent-Length: 0\r\n\r\n";
  if (!fp_ua) {
    sr_ua_options o;
    sr_ua_options_init(&o);
    o.uri = "sip:bob@127.0.0.1";
    o.log_fn = fp_log;
    if (sr_ua_new(&fp_ua, &o) != 0) abort();
    atexit(fp_free_ua);
  }
  size_t l = strcspn(s, "\r\n");
  if (l > n) l = n;
  char *m = malloc(sizeof head + l + sizeof tail);
  if (!m) return;
  memcpy(m, head, sizeof head - 1);
  memcpy(m + sizeof head - 1, s, l);
  memcpy(m + sizeof head - 1 + l, tail, sizeof tail);
  osip_event_t *evt = osip_parse(m, strlen(m));
  if (evt && evt->sip) {
    sr_session *replaced = (sr_session *)1;
    int code = sr__replaces_match(fp_ua, evt->sip, &replaced);
    /* No session exists, so nothing may match. */
    if (replaced || (code != 0 && code != 400 && code != 481 && code != 500))
      abort();
    osip_message_free(evt->sip);
  }
  if (evt) osip_free(evt);
  free(m);
}

/* m= lines of an SDP body (lines ending in LF, CR before it optional). */
static int fp_mlines(const char *p, size_t n) {
  int k = 0;
  for (size_t i = 0; i + 1 < n; i++)
    if ((i == 0 || p[i - 1] == '\n') && p[i] == 'm' && p[i + 1] == '=') k++;
  return k;
}

static void fp_sdp(const uint8_t *data, size_t size, const char *s) {
  sr__sdp_origin o = {7, 0, NULL, 0};
  const char *body = NULL, *why = NULL;
  int rc = sr__sdp_default(&o, "192.0.2.1", (const char *)data, size, &body,
                           &why);
  if (rc == SR_EPARSE && !why) abort(); /* a 488 always says why */
  if (rc == 0) {
    size_t n = strlen(body);
    static const char head[] = "v=0\r\no=- 7 1 IN IP4 192.0.2.1\r\n";
    if (strncmp(body, head, sizeof head - 1) != 0) abort();
    for (size_t i = 0; i < n; i++) { /* CRLF lines, nothing else below 0x20 */
      unsigned char c = (unsigned char)body[i];
      if (c == '\r' ? body[i + 1] != '\n' : c == '\n' ? body[i - 1] != '\r'
                                                      : (c < 0x20 && c != '\t'))
        abort();
    }
    if (n < 2 || body[n - 1] != '\n') abort();
    if (fp_mlines(body, n) != fp_mlines((const char *)data, size)) abort();
    const char *again = NULL;
    if (sr__sdp_default(&o, "192.0.2.1", (const char *)data, size, &again,
                        NULL) != 0 || again != body || o.version != 1)
      abort(); /* the same offer, the same answer and version (RFC 3264 §8) */
  }
  sr__free(o.last);
  fp_sink += (size_t)sr__refer_event_id(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) return 0;
  memcpy(s, data, size);
  s[size] = 0; /* a C string up to the first NUL, as the callers pass */

  struct sr_uri u;
  if (sr__uri_parse(&u, s) == 0) {
    fp_walk_uri(&u);
    sr__uri_clear(&u);
  }
  struct sr_name_addr na;
  if (sr__name_addr_parse(&na, s) == 0) {
    fp_walk_name_addr(&na);
    sr__name_addr_clear(&na);
  }

  char *un = sr__unescape(s);
  fp_sink += fp_len(un);
  sr__free(un);
  char *esc = sr__escape_hvalue(s);
  if (!esc) abort();
  char *back = sr__unescape(esc);
  if (!back || strcmp(back, s) != 0) abort(); /* escaping must round-trip */
  sr__free(back);
  sr__free(esc);

  struct sr_request q;
  if (sr__request_init(&q, (const char *)data, size) == 0) {
    fp_walk_request(&q);
    sr__request_clear(&q);
  }

  int code = 0;
  char *reason = NULL;
  if (sr__sipfrag_parse((const char *)data, size, &code, &reason) == 0) {
    if (code < 100 || code > 699 || !reason) abort();
    sr__free(reason);
  }
  sr__headers_foreach(s, fp_header, NULL);
  char canon[40];
  sr__header_canonical(s, canon, sizeof canon);

  char *auth = NULL;
  if (sr__digest_response(s, "INVITE", "sip:bob@127.0.0.1", "alice", "secret", 1,
                          "0a4f113b", &auth) == 0)
    sr__free(auth);

  fp_replaces(s, size);
  fp_sdp(data, size, s);
  free(s);
  return 0;
}
