/*
 * parser.c — received messages into libosip2's osip_message_t, cheaper
 * than osip_message_parse and with the same result.
 *
 * libosip2 copies the whole message, rewrites folded lines in the copy,
 * copies every header name and value twice, hashes each name and looks
 * for commas in every value. Here an ordinary message (CRLF line ends,
 * no folding, no NUL, "Name: value" lines, a SIP/2.0 start line, one
 * non-multipart body) is split in place: each value goes straight to the
 * libosip2 setter libosip2 itself would call for it (the same function on
 * the same string gives the same structure), headers libosip2 does not
 * know are stored without its detours, and a line holding several values
 * goes through libosip2's own splitter. Anything else, and any setter
 * that refuses its value, sends the whole message to osip_message_parse,
 * so odd and bad input behaves exactly as libosip2 makes it behave.
 * tests/c/test_parser.c and tests/fuzz/fuzz_parse.c compare the two.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* libosip2 exports these (osip_parser_cfg.c) without declaring them. */
int __osip_message_is_known_header(const char *hname);

enum { SCRATCH = 512 };

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

/* Bytes of a token (RFC 3261 §25.1), by table: the parser asks per byte. */
static unsigned char token_set[256];

static void init_tokens(void) {
  for (int c = 0; c < 256; c++)
    token_set[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                   (c >= '0' && c <= '9') || (c && strchr("-.!%*_+`'~", c));
}

static inline int is_token(unsigned char c) { return token_set[c]; }

static int plain_uri(osip_uri_t **out, const char *s, const char *e);

/* "METHOD SP uri SP SIP/2.0" or "SIP/2.0 SP 3DIGIT SP reason": what
 * __osip_message_startline_parse keeps of them. */
static int start_line(osip_message_t *m, const char *s, size_t n) {
  static const char ver[] = "SIP/2.0";
  if (n > 8 && memcmp(s, "SIP/2.0 ", 8) == 0) {
    const char *c = s + 8;
    if (n < 12 || c[0] < '1' || c[0] > '9' || c[1] < '0' || c[1] > '9' ||
        c[2] < '0' || c[2] > '9' || c[3] != ' ')
      return -1;
    m->status_code = (c[0] - '0') * 100 + (c[1] - '0') * 10 + (c[2] - '0');
    m->sip_version = osip_strdup(ver);
    m->reason_phrase = osip_malloc(n - 12 + 1);
    if (!m->sip_version || !m->reason_phrase) return -1;
    memcpy(m->reason_phrase, c + 4, n - 12);
    m->reason_phrase[n - 12] = 0;
    return 0;
  }
  size_t k = 0;
  while (k < n && is_token((unsigned char)s[k])) k++;
  if (k == 0 || k >= n || s[k] != ' ') return -1;
  const char *u = s + k + 1;
  const char *e = memchr(u, ' ', n - k - 1);
  /* libosip2 looks for the second space from the URI's second byte on */
  if (!e || e - u < 2 || (size_t)(s + n - e) != 8 ||
      memcmp(e + 1, ver, 7) != 0)
    return -1;
  for (const char *p = u; p < e; p++)
    if ((unsigned char)*p <= ' ' || *p == 0x7f) return -1;
  m->sip_method = osip_malloc(k + 1);
  char *uri = osip_malloc((size_t)(e - u) + 1);
  m->sip_version = osip_strdup(ver);
  int bad = !m->sip_method || !uri || !m->sip_version;
  if (!bad) {
    memcpy(m->sip_method, s, k);
    m->sip_method[k] = 0;
    memcpy(uri, u, (size_t)(e - u));
    uri[e - u] = 0;
    int r = plain_uri(&m->req_uri, u, e);
    bad = r < 0 || (r > 0 && (osip_uri_init(&m->req_uri) != 0 ||
                              osip_uri_parse(m->req_uri, uri) != 0));
  }
  osip_free(uri);
  return bad ? -1 : 0;
}

/* ---- the values every transfer carries, for the plain cases ----
 * Each returns 1 where the plain case does not apply (then the caller
 * hands the value to libosip2's own setter, which decides), 0 or -1. */

static char *dup_n(const char *s, size_t n) {
  char *d = osip_malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = 0;
  }
  return d;
}

static inline int is_plain(unsigned char c) { /* no escapes, quotes, separators */
  return is_token(c) && c != '%';
}

/* ";name[=value]" ... with token names and values, as osip_uri_parse_params
 * and __osip_generic_param_parseall both cut them (no blanks, quotes or
 * escapes, nothing empty). Returns 1 if not that plain. */
static int plain_params(osip_list_t *list, const char *p, const char *e) {
  while (p < e) {
    if (*p != ';') return 1;
    const char *n = ++p;
    while (p < e && is_plain((unsigned char)*p)) p++;
    const char *ne = p, *v = NULL, *ve = NULL;
    if (ne == n) return 1;
    if (p < e && *p == '=') {
      v = ++p;
      while (p < e && is_plain((unsigned char)*p)) p++;
      ve = p;
      if (ve == v) return 1;
    }
    if (p < e && *p != ';') return 1;
    char *name = dup_n(n, (size_t)(ne - n));
    char *val = v ? dup_n(v, (size_t)(ve - v)) : NULL;
    /* what osip_uri_param_add makes (its osip_clrspace has no blanks to
     * take here) */
    osip_uri_param_t *g = name && (!v || val) ? osip_malloc(sizeof *g) : NULL;
    if (g) {
      g->gname = name;
      g->gvalue = val;
    }
    if (!g || osip_list_add(list, g, -1) < 0) {
      osip_free(g);
      osip_free(name);
      osip_free(val);
      return -1;
    }
  }
  return 0;
}

/* "sip:" / "sips:" user@host:port;params, all plain, into a new URI the way
 * osip_uri_parse fills it. 1 if not that plain. */
static int plain_uri(osip_uri_t **out, const char *s, const char *e) {
  size_t sl = (size_t)(e - s) >= 5 && memcmp(s, "sips:", 5) == 0 ? 4
              : (size_t)(e - s) >= 4 && memcmp(s, "sip:", 4) == 0 ? 3
                                                                   : 0;
  if (!sl) return 1;
  /* user@host:port up to the first ';' (the params are checked as cut) */
  const char *p = s + sl + 1, *at = NULL, *colon = NULL, *semi = p;
  for (; semi < e && *semi != ';'; semi++) {
    unsigned char c = (unsigned char)*semi;
    if (c == '@') {
      if (at || colon) return 1; /* a password, or '@' twice */
      at = semi;
    } else if (c == ':') {
      if (colon) return 1;
      colon = semi;
    } else if (!is_plain(c)) {
      return 1;
    }
  }
  const char *host = at ? at + 1 : p;
  const char *he = colon ? colon : semi;
  if (at == p || he == host) return 1;
  if (colon) {
    if (semi - colon < 2 || semi - colon > 6) return 1;
    for (const char *d = colon + 1; d < semi; d++)
      if (*d < '0' || *d > '9') return 1;
  }
  osip_uri_t *u;
  if (osip_uri_init(&u) != 0) return -1;
  u->scheme = dup_n(s, sl);
  if (at) u->username = dup_n(p, (size_t)(at - p));
  u->host = dup_n(host, (size_t)(he - host));
  if (colon) u->port = dup_n(colon + 1, (size_t)(semi - colon - 1));
  int r = !u->scheme || (at && !u->username) || !u->host ||
                  (colon && !u->port)
              ? -1
              : plain_params(&u->url_params, semi, e);
  if (r != 0) {
    osip_uri_free(u);
    return r;
  }
  *out = u;
  return 0;
}

/* `<uri>;params` or `"display" <uri>;params` (display without escapes) into
 * a new osip_from_t as osip_from_parse fills it. 1 if not that plain. */
static int plain_name_addr(osip_from_t **out, const char *s, size_t n) {
  const char *e = s + n, *p = s, *dq = NULL, *dqe = NULL;
  if (p < e && *p == '"') {
    dq = p++;
    while (p < e && *p != '"' && *p != '\\') p++;
    if (p >= e || *p != '"') return 1;
    dqe = ++p;
    while (p < e && *p == ' ') p++;
  }
  if (p >= e || *p != '<') return 1;
  const char *u = ++p, *gt = memchr(u, '>', (size_t)(e - u));
  if (!gt || gt - u < 6) return 1;
  osip_from_t *f;
  if (osip_from_init(&f) != 0) return -1;
  int r = plain_uri(&f->url, u, gt);
  if (r == 0 && dq && !(f->displayname = dup_n(dq, (size_t)(dqe - dq))))
    r = -1;
  if (r == 0) r = plain_params(&f->gen_params, gt + 1, e);
  if (r != 0) {
    osip_from_free(f);
    return r;
  }
  *out = f;
  return 0;
}

/* "SIP/2.0/PROTO host[:port];params" (no comment, no IPv6) into a new Via
 * as osip_via_parse fills it. 1 if not that plain. */
static int plain_via(osip_message_t *m, const char *s, size_t n) {
  const char *e = s + n, *p = s + 8;
  if (n < 10 || memcmp(s, "SIP/2.0/", 8) != 0) return 1;
  while (p < e && *p >= 'A' && *p <= 'Z') p++;
  const char *pe = p;
  if (pe == s + 8 || p >= e || *p != ' ') return 1;
  const char *host = ++p;
  while (p < e && is_plain((unsigned char)*p)) p++;
  const char *he = p, *port = NULL, *porte = NULL;
  if (he == host) return 1;
  if (p < e && *p == ':') {
    port = ++p;
    while (p < e && *p >= '0' && *p <= '9') p++;
    porte = p;
    if (porte == port || porte - port > 5) return 1;
  }
  if (p < e && *p != ';') return 1;
  osip_via_t *v;
  if (osip_via_init(&v) != 0) return -1;
  v->version = dup_n("2.0", 3);
  v->protocol = dup_n(s + 8, (size_t)(pe - s - 8));
  v->host = dup_n(host, (size_t)(he - host));
  if (port) v->port = dup_n(port, (size_t)(porte - port));
  int r = !v->version || !v->protocol || !v->host || (port && !v->port)
              ? -1
              : plain_params(&v->via_params, p, e);
  if (r == 0) {
    m->message_property = 2;
    if (osip_list_add(&m->vias, v, -1) < 0) r = -1;
  }
  if (r != 0) osip_via_free(v);
  return r;
}

/* "digits SP method": osip_cseq_parse's number and method. */
static int plain_cseq(osip_message_t *m, const char *v, size_t n) {
  size_t k = 0;
  while (k < n && v[k] >= '0' && v[k] <= '9') k++;
  if (m->cseq || k == 0 || k > 10 || k + 1 >= n || v[k] != ' ') return 1;
  for (size_t i = k + 1; i < n; i++)
    if (!is_plain((unsigned char)v[i])) return 1;
  osip_cseq_t *c;
  if (osip_cseq_init(&c) != 0) return -1;
  c->number = dup_n(v, k);
  c->method = dup_n(v + k + 1, n - k - 1);
  if (!c->number || !c->method) {
    osip_cseq_free(c);
    return -1;
  }
  m->cseq = c;
  m->message_property = 2;
  return 0;
}

/* "number[@host]" of token bytes: osip_call_id_parse's two parts. */
static int plain_call_id(osip_message_t *m, const char *v, size_t n) {
  const char *at = NULL;
  if (m->call_id) return 1;
  for (size_t i = 0; i < n; i++) {
    if (v[i] == '@' && !at) at = v + i;
    else if (!is_token((unsigned char)v[i])) return 1;
  }
  const char *ne = at ? at : v + n;
  if (ne == v || (at && at + 1 == v + n)) return 1;
  osip_call_id_t *c;
  if (osip_call_id_init(&c) != 0) return -1;
  c->number = dup_n(v, (size_t)(ne - v));
  if (at) c->host = dup_n(at + 1, (size_t)(v + n - at - 1));
  if (!c->number || (at && !c->host)) {
    osip_call_id_free(c);
    return -1;
  }
  m->call_id = c;
  m->message_property = 2;
  return 0;
}

/* From, To: one each. */
static int from_to(osip_message_t *m, osip_from_t **slot, const char *v,
                   size_t n) {
  if (*slot) return 1; /* libosip2's setter refuses a second one */
  osip_from_t *f;
  int r = plain_name_addr(&f, v, n);
  if (r != 0) return r;
  *slot = f;
  m->message_property = 2;
  return 0;
}

/* Contact, Route, Record-Route: one value (no comma), appended. */
static int name_addr_list(osip_message_t *m, osip_list_t *list, const char *v,
                          size_t n) {
  osip_from_t *f;
  if (memchr(v, ',', n)) return 1;
  int r = plain_name_addr(&f, v, n);
  if (r != 0) return r;
  m->message_property = 2;
  if (osip_list_add(list, f, -1) < 0) {
    osip_from_free(f);
    return -1;
  }
  return 0;
}

/* The kinds handled here by name; 1 for the others. */
static int native(osip_message_t *m, const char *name, size_t nl,
                  const char *v, size_t vl) {
  if (!v || vl == 0) return 1;
#define IS(lit) (nl == sizeof lit - 1 && memcmp(name, lit, nl) == 0)
  if (IS("from") || IS("f")) return from_to(m, &m->from, v, vl);
  if (IS("to") || IS("t")) return from_to(m, &m->to, v, vl);
  if (IS("contact") || IS("m"))
    return vl == 1 && *v == '*' ? 1 : name_addr_list(m, &m->contacts, v, vl);
  if (IS("route")) return name_addr_list(m, &m->routes, v, vl);
  if ((IS("via") || IS("v")) && !memchr(v, ',', vl)) {
    int r = plain_via(m, v, vl);
    if (r <= 0) return r;
  }
  if (IS("cseq") || IS("call-id") || IS("i")) {
    int r = IS("cseq") ? plain_cseq(m, v, vl) : plain_call_id(m, v, vl);
    if (r <= 0) return r;
  }
  /* the rest straight to their setter (skipping libosip2's look-up) */
  int (*set)(osip_message_t *, const char *) = NULL;
  if (IS("call-id") || IS("i")) set = osip_message_set_call_id;
  else if (IS("cseq")) set = osip_message_set_cseq;
  else if (IS("content-length") || IS("l")) set = osip_message_set_content_length;
  else if (IS("content-type") || IS("c")) set = osip_message_set_content_type;
  else if ((IS("via") || IS("v")) && !memchr(v, ',', vl)) set = osip_message_set_via;
  if (set && vl < 4 * SCRATCH) {
    char value[4 * SCRATCH];
    memcpy(value, v, vl);
    value[vl] = 0;
    return set(m, value) == 0 ? 0 : -1;
  }
  if (IS("record-route")) return name_addr_list(m, &m->record_routes, v, vl);
#undef IS
  return 1;
}

/* A header libosip2 does not know, stored as osip_message_set_header
 * would store it (name lower-cased by osip_message_set_multiple_header). */
static int generic(osip_message_t *m, const char *name, size_t nl,
                   const char *val, size_t vl) {
  osip_header_t *h;
  if (osip_header_init(&h) != 0) return -1;
  h->hname = osip_malloc(nl + 1);
  h->hvalue = val ? osip_malloc(vl + 1) : NULL;
  if (!h->hname || (val && !h->hvalue)) {
    osip_header_free(h);
    return -1;
  }
  for (size_t i = 0; i < nl; i++) h->hname[i] = lower(name[i]);
  h->hname[nl] = 0;
  if (val) {
    memcpy(h->hvalue, val, vl);
    h->hvalue[vl] = 0;
  }
  m->message_property = 2;
  if (osip_list_add(&m->headers, h, -1) < 0) {
    osip_header_free(h);
    return -1;
  }
  return 0;
}

/* One "name: value" line (without its CRLF). */
static int header_line(osip_message_t *m, const char *s, size_t n) {
  const char *colon = memchr(s, ':', n);
  if (!colon || colon == s) return -1;
  size_t nl = (size_t)(colon - s);
  for (size_t i = 0; i < nl; i++)
    if (!is_token((unsigned char)s[i])) return -1;
  /* the value, trimmed as osip_clrncpy trims; NULL when empty */
  const char *v = colon + 1, *e = s + n;
  while (v < e && (*v == ' ' || *v == '\t')) v++;
  while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
  size_t vl = (size_t)(e - v);
  if (nl >= SCRATCH || vl >= 4 * SCRATCH) return -1;
  char name[SCRATCH];
  for (size_t i = 0; i < nl; i++) name[i] = lower(s[i]);
  name[nl] = 0;
  int r = native(m, name, nl, colon + 1 < s + n ? v : NULL, vl);
  if (r <= 0) return r;
  int known = __osip_message_is_known_header(name) >= 0;
  /* libosip2 hands a value of one byte or more on (even if all blank:
   * then ""), and NULL for "Name:" */
  const char *val = colon + 1 < s + n ? v : NULL;
  if (!known && (!val || !memchr(v, ',', vl)))
    return generic(m, name, nl, val, vl);
  char value[4 * SCRATCH];
  if (val) {
    memcpy(value, v, vl);
    value[vl] = 0;
  }
  return osip_message_set_multiple_header(m, name, val ? value : NULL) == 0
             ? 0
             : -1;
}

/* The body as msg_osip_body_parse would take it; s/rest: after the blank
 * line. */
static int body(osip_message_t *m, const char *s, size_t rest) {
  osip_content_length_t *cl = m->content_length;
  if (cl && !cl->value) return -1;
  size_t want = 0;
  if (cl) {
    const char *p = cl->value;
    size_t k = strlen(p);
    if (k == 0 || k > 9 || strspn(p, "0123456789") != k) return -1;
    want = (size_t)atoi(p);
  }
  int has_body = cl ? want > 0 : rest > 0;
  osip_content_type_t *ct = m->content_type;
  if (has_body && ct && ct->type && ct->subtype) {
    if (osip_strcasecmp(ct->type, "multipart") == 0) return -1;
    if (!cl) want = rest;
    if (rest == 0 || rest < want) return -1;
    if (!cl) {
      char tmp[16];
      snprintf(tmp, sizeof tmp, "%i", (int)want);
      if (osip_message_set_content_length(m, tmp) != 0) return -1;
    }
    if (osip_message_set_body(m, s, want) != 0) return -1;
  }
  if (!m->content_length && osip_message_set_content_length(m, "0") != 0)
    return -1;
  return 0;
}

static int fast(const char *data, size_t len, osip_message_t *m) {
  const char *p = data, *end = data + len;
  int first = 1;
  for (;;) {
    /* one line: no NUL, no CR or LF but its CRLF */
    const char *q = memchr(p, '\r', (size_t)(end - p));
    if (!q || q + 1 >= end || q[1] != '\n') return -1;
    size_t n = (size_t)(q - p);
    if (memchr(p, '\n', n) || memchr(p, 0, n)) return -1;
    const char *next = q + 2;
    /* a folded line (LWS) or a blank-started one: libosip2 rewrites it */
    if (next < end && (*next == ' ' || *next == '\t')) return -1;
    if (first) {
      if (n == 0 || start_line(m, p, n) != 0) return -1;
      first = 0;
    } else if (n == 0) {
      return body(m, next, (size_t)(end - next));
    } else if (header_line(m, p, n) != 0) {
      return -1;
    }
    p = next;
  }
}

int sr__message_parse_fast(const char *data, size_t len, osip_message_t **out) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  osip_message_t *m;
  *out = NULL;
  pthread_once(&once, init_tokens);
  if (osip_message_init(&m) != 0) return -1;
  if (fast(data, len, m) != 0) {
    osip_message_free(m);
    return -1;
  }
  *out = m;
  return 0;
}

int sr__message_parse(const char *data, size_t len, osip_message_t **out) {
  if (sr__message_parse_fast(data, len, out) == 0) return 0;
  osip_message_t *m;
  if (osip_message_init(&m) != 0) return SR_ENOMEM;
  if (osip_message_parse(m, data, len) != 0) {
    osip_message_free(m);
    return SR_EPARSE;
  }
  *out = m;
  return 0;
}
