/*
 * writer.c — a SIP message's bytes from libosip2's osip_message_t: the
 * same bytes as osip_message_to_str, written into one growing buffer.
 *
 * libosip2 formats every header into a buffer of its own with sprintf and
 * copies it into the message (a URI inside a From, twice); that was a
 * third of the agent's instructions. Here the headers every transfer
 * carries (Via, From, To, Route, Record-Route, Call-ID, CSeq, Contact,
 * Allow, Content-Type, the unknown ones, Content-Length) are written in
 * place; the rare ones (credentials, Accept*, Call-Info...) and the bodies
 * go through libosip2's own function for that element, so nothing is
 * written differently. A multipart body is left to osip_message_to_str.
 * tests/c/test_writer.c compares the two byte for byte.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct wbuf {
  char *p;
  size_t n, cap;
  int err;
} wbuf;

/* Grows the buffer: out of line, so put's common path stays a compare
 * and a copy. */
__attribute__((noinline)) static void grow(wbuf *b, size_t k) {
  if (b->err) return;
  size_t cap = b->cap;
  while (cap <= b->n + k) cap *= 2;
  char *q = osip_realloc(b->p, cap);
  if (!q) {
    b->err = SR_ENOMEM;
    return;
  }
  b->p = q;
  b->cap = cap;
}

static inline void put(wbuf *b, const char *s, size_t k) {
  if (b->n + k >= b->cap) {
    grow(b, k);
    if (b->err) return;
  }
  memcpy(b->p + b->n, s, k);
  b->n += k;
}

static void puts_(wbuf *b, const char *s) { put(b, s, strlen(s)); }

static void putc_(wbuf *b, char c) { put(b, &c, 1); }

/* Appends what one of libosip2's xxx_to_str functions makes of h. */
static void put_with(wbuf *b, int (*to_str)(void *, char **), void *h) {
  char *s = NULL;
  if (to_str(h, &s) != 0 || !s) {
    if (!b->err) b->err = SR_EINVAL;
  } else {
    puts_(b, s);
  }
  osip_free(s);
}

/* ---------------- URIs (RFC 3261 §25.1: what is escaped where) -------- */

enum { ESC_USER = 1, ESC_PASSWORD = 2, ESC_PARAM = 4, ESC_HEADER = 8 };

/* For each byte, the URI parts it may appear in unescaped. */
static unsigned char safe[256];

static void mark(const char *chars, unsigned char parts) {
  for (const unsigned char *c = (const unsigned char *)chars; *c; c++)
    safe[*c] |= parts;
}

static void init_safe(void) {
  for (int c = '0'; c <= '9'; c++) safe[c] = 0xf;
  for (int c = 'a'; c <= 'z'; c++) safe[c] = 0xf;
  for (int c = 'A'; c <= 'Z'; c++) safe[c] = 0xf;
  mark("-_.!~*'()", 0xf);         /* mark */
  mark("&=+$,;?/", ESC_USER);     /* user-unreserved */
  mark("&=+$,", ESC_PASSWORD);
  mark("[]/:&+$", ESC_PARAM);     /* param-unreserved */
  mark("[]/?:+$", ESC_HEADER);    /* hnv-unreserved */
}

static void put_escaped(wbuf *b, const char *s, unsigned char part) {
  static const char hex[] = "0123456789ABCDEF";
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    const unsigned char *run = p;
    while (*p && (safe[*p] & part)) p++;
    put(b, (const char *)run, (size_t)(p - run));
    if (*p) {
      char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      put(b, e, 3);
      p++;
    }
  }
}

static void put_host(wbuf *b, const char *host) {
  if (strchr(host, ':')) {
    putc_(b, '[');
    puts_(b, host);
    putc_(b, ']');
  } else {
    puts_(b, host);
  }
}

/* Parameters this libosip2 leaves out of a URI it writes (its own
 * internal ones): left to osip_uri_to_str, whatever its version does. */
static int has_internal_param(const osip_uri_t *u) {
  osip_list_iterator_t it;
  for (osip_uri_param_t *p = osip_list_get_first((osip_list_t *)&u->url_params, &it);
       p; p = osip_list_get_next(&it))
    if (p->gname && (osip_strcasecmp(p->gname, "x-obr") == 0 ||
                     osip_strcasecmp(p->gname, "x-obp") == 0))
      return 1;
  return 0;
}

static void put_uri(wbuf *b, osip_uri_t *u) {
  if (!u || (!u->host && !u->string) || (!u->scheme && u->string) ||
      has_internal_param(u)) {
    put_with(b, (int (*)(void *, char **))osip_uri_to_str, u);
    return;
  }
  puts_(b, u->scheme ? u->scheme : "sip");
  putc_(b, ':');
  if (u->string) { /* an absoluteURI kept as text (tel:, http:...) */
    puts_(b, u->string);
    return;
  }
  if (u->username) {
    put_escaped(b, u->username, ESC_USER);
    if (u->password) {
      putc_(b, ':');
      put_escaped(b, u->password, ESC_PASSWORD);
    }
    putc_(b, '@');
  }
  put_host(b, u->host);
  if (u->port) {
    putc_(b, ':');
    puts_(b, u->port);
  }
  osip_list_iterator_t it;
  for (osip_uri_param_t *p = osip_list_get_first(&u->url_params, &it); p;
       p = osip_list_get_next(&it)) {
    putc_(b, ';');
    put_escaped(b, p->gname ? p->gname : "", ESC_PARAM);
    if (p->gvalue) {
      putc_(b, '=');
      put_escaped(b, p->gvalue, ESC_PARAM);
    }
  }
  int first = 1;
  for (osip_uri_header_t *h = osip_list_get_first(&u->url_headers, &it); h;
       h = osip_list_get_next(&it), first = 0) {
    putc_(b, first ? '?' : '&');
    put_escaped(b, h->gname ? h->gname : "", ESC_HEADER);
    putc_(b, '=');
    put_escaped(b, h->gvalue ? h->gvalue : "", ESC_HEADER);
  }
}

/* ---------------- headers ---------------- */

static void put_params(wbuf *b, osip_list_t *params) {
  osip_list_iterator_t it;
  for (osip_generic_param_t *p = osip_list_get_first(params, &it); p;
       p = osip_list_get_next(&it)) {
    putc_(b, ';');
    puts_(b, p->gname ? p->gname : "");
    if (p->gvalue) {
      putc_(b, '=');
      puts_(b, p->gvalue);
    }
  }
}

/* From, To, Route, Record-Route, Contact: always name-addr form. */
static void put_name_addr(wbuf *b, osip_from_t *h) {
  if (!h->url) {
    if (!b->err) b->err = SR_EINVAL;
    return;
  }
  if (h->displayname) {
    puts_(b, h->displayname);
    putc_(b, ' ');
  }
  putc_(b, '<');
  put_uri(b, h->url);
  putc_(b, '>');
  put_params(b, &h->gen_params);
}

static void put_via(wbuf *b, osip_via_t *v) {
  if (!v->host || !v->version || !v->protocol) {
    if (!b->err) b->err = SR_EINVAL;
    return;
  }
  put(b, "SIP/", 4);
  puts_(b, v->version);
  putc_(b, '/');
  puts_(b, v->protocol);
  putc_(b, ' ');
  put_host(b, v->host);
  if (v->port) {
    putc_(b, ':');
    puts_(b, v->port);
  }
  put_params(b, &v->via_params);
  if (v->comment) {
    put(b, " (", 2);
    puts_(b, v->comment);
    putc_(b, ')');
  }
}

static void put_contact(wbuf *b, osip_contact_t *c) {
  /* "*" and display names keep libosip2's own rules */
  if (c->displayname)
    put_with(b, (int (*)(void *, char **))osip_contact_to_str, c);
  else
    put_name_addr(b, c);
}

static void put_call_id(wbuf *b, osip_call_id_t *c) {
  if (!c->number) {
    if (!b->err) b->err = SR_EINVAL;
    return;
  }
  puts_(b, c->number);
  if (c->host) {
    putc_(b, '@');
    puts_(b, c->host);
  }
}

static void put_cseq(wbuf *b, osip_cseq_t *c) {
  if (!c->number || !c->method) {
    if (!b->err) b->err = SR_EINVAL;
    return;
  }
  puts_(b, c->number);
  putc_(b, ' ');
  puts_(b, c->method);
}

static void put_value(wbuf *b, osip_content_length_t *v) { /* Allow & co */
  if (!v->value) {
    if (!b->err) b->err = SR_EINVAL;
    return;
  }
  puts_(b, v->value);
}

/* "type/subtype" and each parameter as "; name=value", as libosip2 writes
 * them; a parameter without a value (which libosip2 refuses to write) and
 * a missing part keep libosip2's own answer. */
static void put_content_type(wbuf *b, osip_content_type_t *c) {
  osip_list_iterator_t it;
  osip_generic_param_t *p;
  for (p = osip_list_get_first(&c->gen_params, &it); p; p = osip_list_get_next(&it))
    if (!p->gname || !p->gvalue) break;
  if (p || !c->type || !c->subtype) {
    put_with(b, (int (*)(void *, char **))osip_content_type_to_str, c);
    return;
  }
  puts_(b, c->type);
  putc_(b, '/');
  puts_(b, c->subtype);
  for (p = osip_list_get_first(&c->gen_params, &it); p; p = osip_list_get_next(&it)) {
    put(b, "; ", 2);
    puts_(b, p->gname);
    putc_(b, '=');
    puts_(b, p->gvalue);
  }
}

typedef void (*writer_fn)(wbuf *, void *);
typedef int (*to_str_fn)(void *, char **);

/* "Name: value" CRLF for h, written by w or by libosip2's to_str. */
static void header(wbuf *b, const char *name, void *h, writer_fn w,
                   to_str_fn to_str) {
  if (!h) return;
  puts_(b, name);
  if (w) w(b, h);
  else put_with(b, to_str, h);
  put(b, "\r\n", 2);
}

static void list(wbuf *b, const char *name, osip_list_t *l, writer_fn w,
                 to_str_fn to_str) {
  osip_list_iterator_t it;
  for (void *h = osip_list_get_first(l, &it); h; h = osip_list_get_next(&it))
    header(b, name, h, w, to_str);
}

/* An unknown header: its name with the first letter capitalised, as
 * libosip2 writes it. */
static void put_other(wbuf *b, osip_header_t *h) {
  if (!h->hname || !h->hname[0]) {
    if (!b->err) b->err = SR_EINVAL;
    return;
  }
  char c = h->hname[0];
  putc_(b, c >= 'a' && c <= 'z' ? (char)(c - 32) : c);
  puts_(b, h->hname + 1);
  put(b, ": ", 2);
  if (h->hvalue) puts_(b, h->hvalue);
  put(b, "\r\n", 2);
}

static int multipart(const osip_message_t *m) {
  return m->mime_version && m->content_type && m->content_type->type &&
         osip_strcasecmp(m->content_type->type, "multipart") == 0;
}

/* A buffer of cap bytes to write into (the escape table made once). */
static int wbuf_start(wbuf *b, size_t cap) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, init_safe);
  *b = (wbuf){osip_malloc(cap), 0, cap, 0};
  return b->p ? 0 : SR_ENOMEM;
}

/* Hands the text over (terminated), or frees it after an error. */
static int wbuf_end(wbuf *b, char **dest, size_t *len) {
  if (b->err) {
    osip_free(b->p);
    return b->err;
  }
  b->p[b->n] = 0;
  *dest = b->p;
  if (len) *len = b->n;
  return 0;
}

int sr__uri_to_str(osip_uri_t *u, char **dest) {
  *dest = NULL;
  if (!u) return SR_EINVAL;
  wbuf b;
  if (wbuf_start(&b, 128) < 0) return SR_ENOMEM;
  put_uri(&b, u);
  return wbuf_end(&b, dest, NULL);
}

#define W(f) ((writer_fn)(f))
#define S(f) ((to_str_fn)(f))

int sr__message_to_str(osip_message_t *m, char **dest, size_t *len) {
  *dest = NULL;
  if (len) *len = 0;
  if (!m) return SR_EINVAL;
  if (m->message_property == 1 && m->message) {
    /* unchanged since parsed or written: libosip2 hands back those bytes */
    char *copy = osip_malloc(m->message_length + 1);
    if (!copy) return SR_ENOMEM;
    memcpy(copy, m->message, m->message_length);
    copy[m->message_length] = 0;
    *dest = copy;
    if (len) *len = m->message_length;
    return 0;
  }
  if (multipart(m)) {
    size_t n = 0;
    if (osip_message_to_str(m, dest, &n) != 0 || !*dest) return SR_EINVAL;
    if (len) *len = n;
    return 0;
  }
  wbuf b;
  if (wbuf_start(&b, 1024) < 0) return SR_ENOMEM;

  if (m->sip_method) {
    if (!m->req_uri) b.err = SR_EINVAL;
    puts_(&b, m->sip_method);
    putc_(&b, ' ');
    if (m->req_uri) put_uri(&b, m->req_uri);
    putc_(&b, ' ');
    puts_(&b, m->sip_version ? m->sip_version : "SIP/2.0");
  } else if (m->status_code >= 100 && m->status_code <= 699 && m->reason_phrase) {
    char code[4] = {(char)('0' + m->status_code / 100),
                    (char)('0' + m->status_code / 10 % 10),
                    (char)('0' + m->status_code % 10), ' '};
    puts_(&b, m->sip_version ? m->sip_version : "SIP/2.0");
    putc_(&b, ' ');
    put(&b, code, 4);
    puts_(&b, m->reason_phrase);
  } else {
    b.err = SR_EINVAL;
  }
  put(&b, "\r\n", 2);

  /* libosip2's order */
  list(&b, "Via: ", &m->vias, W(put_via), NULL);
  list(&b, "Record-Route: ", &m->record_routes, W(put_name_addr), NULL);
  list(&b, "Route: ", &m->routes, W(put_name_addr), NULL);
  header(&b, "From: ", m->from, W(put_name_addr), NULL);
  header(&b, "To: ", m->to, W(put_name_addr), NULL);
  header(&b, "Call-ID: ", m->call_id, W(put_call_id), NULL);
  header(&b, "CSeq: ", m->cseq, W(put_cseq), NULL);
  list(&b, "Contact: ", &m->contacts, W(put_contact), NULL);
  list(&b, "Authorization: ", &m->authorizations, NULL, S(osip_authorization_to_str));
  list(&b, "WWW-Authenticate: ", &m->www_authenticates, NULL,
       S(osip_www_authenticate_to_str));
  list(&b, "Proxy-Authenticate: ", &m->proxy_authenticates, NULL,
       S(osip_www_authenticate_to_str));
  list(&b, "Proxy-Authorization: ", &m->proxy_authorizations, NULL,
       S(osip_authorization_to_str));
  list(&b, "Call-Info: ", &m->call_infos, NULL, S(osip_call_info_to_str));
  header(&b, "Content-Type: ", m->content_type, W(put_content_type), NULL);
  header(&b, "Mime-Version: ", m->mime_version, W(put_value), NULL);
  list(&b, "Allow: ", &m->allows, W(put_value), NULL);
  list(&b, "Content-Encoding: ", &m->content_encodings, W(put_value), NULL);
  list(&b, "Alert-Info: ", &m->alert_infos, NULL, S(osip_call_info_to_str));
  list(&b, "Error-Info: ", &m->error_infos, NULL, S(osip_call_info_to_str));
  list(&b, "Accept: ", &m->accepts, NULL, S(osip_accept_to_str));
  list(&b, "Accept-Encoding: ", &m->accept_encodings, NULL,
       S(osip_accept_encoding_to_str));
  list(&b, "Accept-Language: ", &m->accept_languages, NULL,
       S(osip_accept_encoding_to_str));
  list(&b, "Authentication-Info: ", &m->authentication_infos, NULL,
       S(osip_authentication_info_to_str));
  list(&b, "Proxy-Authentication-Info: ", &m->proxy_authentication_infos, NULL,
       S(osip_authentication_info_to_str));
  osip_list_iterator_t it;
  for (osip_header_t *h = osip_list_get_first(&m->headers, &it); h;
       h = osip_list_get_next(&it))
    put_other(&b, h);

  /* Content-Length: libosip2 counts the bodies and right-aligns the
   * number in five columns. */
  puts_(&b, "Content-Length: ");
  size_t cl_at = b.n;
  if (osip_list_eol(&m->bodies, 0)) putc_(&b, '0');
  else put(&b, "     ", 5);
  put(&b, "\r\n\r\n", 4);
  size_t body_at = b.n;
  for (osip_body_t *body = osip_list_get_first(&m->bodies, &it); body;
       body = osip_list_get_next(&it)) {
    char *s = NULL;
    size_t n = 0;
    if (osip_body_to_str(body, &s, &n) != 0 || !s) {
      if (!b.err) b.err = SR_EINVAL;
    } else {
      put(&b, s, n);
    }
    osip_free(s);
  }
  if (!b.err && b.n > body_at) {
    size_t size = b.n - body_at;
    char digits[24];
    int k = 0;
    do {
      digits[k++] = (char)('0' + size % 10);
      size /= 10;
    } while (size && k < (int)sizeof digits);
    if (k > 5) b.err = SR_EINVAL; /* libosip2 cannot write it either */
    for (int i = 0; i < k && i < 5; i++) b.p[cl_at + 4 - i] = digits[i];
  }
  return wbuf_end(&b, dest, len);
}

/* Content-Length as libosip2 writes it: "0" without a body, else the
 * size right-aligned in five columns. */
static void put_content_length(wbuf *b, size_t size) {
  puts_(b, "Content-Length: ");
  if (!size) {
    put(b, "0\r\n\r\n", 5);
    return;
  }
  char col[5] = {' ', ' ', ' ', ' ', ' '};
  for (int i = 4; i >= 0 && size; i--, size /= 10) col[i] = (char)('0' + size % 10);
  if (size && !b->err) b->err = SR_EINVAL; /* over five digits */
  put(b, col, 5);
  put(b, "\r\n\r\n", 4);
}

int sr__dialog_write_request(sr_ua *ua, osip_dialog_t *d, sr_transport tp,
                             int family, const char *method,
                             unsigned long cseq, const char *extra,
                             const char *content_type, const char *body,
                             char branch[SR__BRANCH_LEN], char **dest,
                             size_t *len) {
  *dest = NULL;
  if (!d || !d->remote_contact_uri || !d->remote_contact_uri->url ||
      !d->remote_uri || !d->local_uri || !d->call_id)
    return SR_ESTATE;
  sr__listener *l = sr__transport_listener_near(ua, tp, family);
  if (!l) return SR_ETRANSPORT;
  int contact = strcmp(method, "BYE") != 0;
  char num[24];
  sr__put_int(num, (long long)cseq);
  wbuf b;
  if (wbuf_start(&b, 1024) < 0) return SR_ENOMEM;

  puts_(&b, method);
  putc_(&b, ' ');
  put_uri(&b, d->remote_contact_uri->url);
  put(&b, " SIP/2.0\r\nVia: ", 15);
  memcpy(branch, "z9hG4bK", 7);
  sr__random_token(ua, branch + 7, SR__BRANCH_LEN - 7);
  puts_(&b, l->via_prefix);
  puts_(&b, branch + 7);
  put(&b, ";rport\r\n", 8);
  list(&b, "Route: ", &d->route_set, W(put_name_addr), NULL);
  header(&b, "From: ", d->local_uri, W(put_name_addr), NULL);
  header(&b, "To: ", d->remote_uri, W(put_name_addr), NULL);
  put(&b, "Call-ID: ", 9);
  puts_(&b, d->call_id);
  put(&b, "\r\nCSeq: ", 8);
  puts_(&b, num);
  putc_(&b, ' ');
  puts_(&b, method);
  put(&b, "\r\n", 2);
  if (contact) {
    put(&b, "Contact: ", 9);
    puts_(&b, l->contact);
    put(&b, "\r\n", 2);
  }
  if (content_type) {
    put(&b, "Content-Type: ", 14);
    puts_(&b, content_type);
    put(&b, "\r\n", 2);
  }
  if (contact) puts_(&b, "Allow: " SR_ALLOW_METHODS "\r\n");
  puts_(&b, "Max-Forwards: 70\r\nUser-Agent: ");
  puts_(&b, ua->user_agent);
  put(&b, "\r\n", 2);
  if (contact) puts_(&b, "Supported: " SR_SUPPORTED "\r\n");
  if (extra) puts_(&b, extra);
  size_t blen = body ? strlen(body) : 0;
  put_content_length(&b, blen);
  if (blen) put(&b, body, blen);
  return wbuf_end(&b, dest, len);
}

int sr__write_response(osip_message_t *req, int code, const char *reason,
                       const char *to_tag, char **dest, size_t *len) {
  *dest = NULL;
  if (!req || code < 100 || code > 699) return SR_EINVAL;
  if (!reason) reason = sr__reason_phrase(code);
  char status[16];
  sr__put_str(sr__put_int(sr__put_str(status, "SIP/2.0 "), code), " ");
  wbuf b;
  if (wbuf_start(&b, 512) < 0) return SR_ENOMEM;
  puts_(&b, status);
  puts_(&b, reason);
  put(&b, "\r\n", 2);
  list(&b, "Via: ", &req->vias, W(put_via), NULL);
  if (code > 100 && code < 300)
    list(&b, "Record-Route: ", &req->record_routes, W(put_name_addr), NULL);
  header(&b, "From: ", req->from, W(put_name_addr), NULL);
  if (req->to) {
    put(&b, "To: ", 4);
    put_name_addr(&b, req->to);
    osip_generic_param_t *tag = NULL;
    if (code > 100 && to_tag && (osip_to_get_tag(req->to, &tag), !tag)) {
      put(&b, ";tag=", 5);
      puts_(&b, to_tag);
    }
    put(&b, "\r\n", 2);
  }
  header(&b, "Call-ID: ", req->call_id, W(put_call_id), NULL);
  header(&b, "CSeq: ", req->cseq, W(put_cseq), NULL);
  put_content_length(&b, 0);
  return wbuf_end(&b, dest, len);
}
