/*
 * message.c — the read-only views (URI, name-addr, incoming request) and
 * the small text helpers of message.h.
 *
 * The parsers are hand-written over (pointer, length) spans rather than
 * NUL-terminated strings, so that a view can be cut out of a larger buffer
 * without copying and so that no step ever depends on a terminator being
 * where it "should" be. Every failure path clears what was built so far;
 * callers get either a complete view or a zeroed one.
 *
 * Character classes are plain ASCII tests, not <ctype.h>: the result must
 * not depend on the process locale, and bytes >= 0x80 must never be passed
 * to a ctype function as a negative int.
 */
#include "message.h"
#include "text.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Character classes and small string helpers                          */
/* ------------------------------------------------------------------ */

static void lower_str(char *s) {
  for (; *s; s++) *s = (char)to_lower((unsigned char)*s);
}

static int ascii_casecmp(const char *a, const char *b) {
  for (;; a++, b++) {
    int ca = to_lower((unsigned char)*a), cb = to_lower((unsigned char)*b);
    if (ca != cb) return ca - cb;
    if (!ca) return 0;
  }
}


/* Trims SP, HT, CR and LF from both ends of a span. */
static void trim_span(const char **s, size_t *n) {
  while (*n && (is_lws((unsigned char)**s) || **s == '\r' || **s == '\n')) {
    (*s)++;
    (*n)--;
  }
  while (*n && (is_lws((unsigned char)(*s)[*n - 1]) || (*s)[*n - 1] == '\r' ||
                (*s)[*n - 1] == '\n'))
    (*n)--;
}

/* ------------------------------------------------------------------ */
/* Growable arrays                                                     */
/* ------------------------------------------------------------------ */

static int grow(void **arr, int *cap, int need, size_t elem) {
  if (need <= *cap) return 0;
  if (*cap > INT_MAX / 2) return SR_ENOMEM;
  int ncap = *cap ? *cap * 2 : 8;
  if ((size_t)ncap > SIZE_MAX / elem) return SR_ENOMEM;
  void *p = sr__realloc(*arr, (size_t)ncap * elem);
  if (!p) return SR_ENOMEM;
  *arr = p;
  *cap = ncap;
  return 0;
}

/* Appends (name, value), taking ownership of both; frees them on failure.
 * A NULL name means the caller's allocation failed. */
static int pair_push(sr__pair **arr, int *n, int *cap, char *name,
                     char *value, int value_expected) {
  if (!name || (value_expected && !value) || *n == INT_MAX) {
    sr__free(name);
    sr__free(value);
    return SR_ENOMEM;
  }
  void *a = *arr;
  if (grow(&a, cap, *n + 1, sizeof(sr__pair))) {
    sr__free(name);
    sr__free(value);
    return SR_ENOMEM;
  }
  *arr = a;
  (*arr)[*n].name = name;
  (*arr)[*n].value = value;
  (*n)++;
  return 0;
}

static void pairs_free(sr__pair *p, int n) {
  for (int i = 0; i < n; i++) {
    sr__free(p[i].name);
    sr__free(p[i].value);
  }
  sr__free(p);
}

/* ------------------------------------------------------------------ */
/* %-escapes                                                           */
/* ------------------------------------------------------------------ */

/* 0, SR_EPARSE (bad or NUL escape) or SR_ENOMEM. */
static int unescape_n(const char *s, size_t n, char **out) {
  char *d = sr__malloc(n + 1);
  if (!d) return SR_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') {
      d[k++] = s[i];
      continue;
    }
    if (n - i < 3) {
      sr__free(d);
      return SR_EPARSE;
    }
    int hi = hex_val((unsigned char)s[i + 1]);
    int lo = hex_val((unsigned char)s[i + 2]);
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
      sr__free(d);
      return SR_EPARSE;
    }
    d[k++] = (char)(hi * 16 + lo);
    i += 2;
  }
  d[k] = '\0';
  *out = d;
  return 0;
}

char *sr__unescape(const char *in) {
  char *out = NULL;
  if (!in) return NULL;
  if (unescape_n(in, strlen(in), &out)) return NULL;
  return out;
}

/* RFC 3261 hnv-unreserved and unreserved, minus nothing: what may stand
 * unescaped in a URI header value. ';', '@', '=' and '&' are not in the set,
 * so they are escaped, as in RFC 3891's Replaces examples. */
static int hvalue_plain(int c) {
  if (is_alnum(c)) return 1;
  switch (c) {
  case '-': case '_': case '.': case '!': case '~': case '*': case '\'':
  case '(': case ')': /* mark */
  case '[': case ']': case '/': case '?': case ':': case '+': case '$':
    return 1;
  default:
    return 0;
  }
}

char *sr__escape_hvalue(const char *in) {
  static const char hex[] = "0123456789ABCDEF";
  if (!in) return NULL;
  size_t n = strlen(in);
  if (n > (SIZE_MAX - 1) / 3) return NULL;
  char *d = sr__malloc(n * 3 + 1);
  if (!d) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)in[i];
    if (hvalue_plain(c)) {
      d[k++] = (char)c;
    } else {
      d[k++] = '%';
      d[k++] = hex[c >> 4];
      d[k++] = hex[c & 15];
    }
  }
  d[k] = '\0';
  return d;
}

/* ------------------------------------------------------------------ */
/* URI                                                                 */
/* ------------------------------------------------------------------ */

void sr__uri_clear(struct sr_uri *u) {
  if (!u) return;
  sr__free(u->text);
  sr__free(u->scheme);
  sr__free(u->user);
  sr__free(u->host);
  pairs_free(u->params, u->nparams);
  pairs_free(u->headers, u->nheaders);
  memset(u, 0, sizeof *u);
}

/* ;name[=value] items from p[*i] while p[*i] == ';'. Values are kept as
 * received. With stop_q, '?' ends the parameters (SIP); tel: has no
 * headers, so there '?' is an ordinary character. */
static int parse_uri_params(struct sr_uri *u, const char *p, size_t n,
                            size_t *pi, int stop_q) {
  size_t i = *pi;
  int cap = 0;
  while (i < n && p[i] == ';') {
    i++;
    size_t ns = i;
    while (i < n && p[i] != '=' && p[i] != ';' && !(stop_q && p[i] == '?'))
      i++;
    if (i == ns) return SR_EPARSE;
    char *name = dupn(p + ns, i - ns);
    char *value = NULL;
    int has_value = 0;
    if (i < n && p[i] == '=') {
      has_value = 1;
      i++;
      size_t vs = i;
      while (i < n && p[i] != ';' && !(stop_q && p[i] == '?')) i++;
      value = dupn(p + vs, i - vs);
    }
    int rc = pair_push(&u->params, &u->nparams, &cap, name, value, has_value);
    if (rc) return rc;
  }
  *pi = i;
  return 0;
}

/* ?name=value&name=value; names and values %-unescaped; a bad escape
 * fails the whole URI. Empty items ("a=1&&b=2", a trailing '?') are
 * skipped; a header with no '=' has the value "". */
static int parse_uri_headers(struct sr_uri *u, const char *p, size_t n) {
  size_t i = 0;
  int cap = 0;
  while (i <= n) {
    size_t s = i;
    while (i < n && p[i] != '&') i++;
    size_t e = i;
    i++; /* past '&' (or past the end, which ends the loop) */
    if (e == s) continue;
    const char *eq = memchr(p + s, '=', e - s);
    size_t nl = eq ? (size_t)(eq - (p + s)) : e - s;
    if (nl == 0) return SR_EPARSE;
    char *name = NULL, *value = NULL;
    int rc = unescape_n(p + s, nl, &name);
    if (rc) return rc;
    if (eq)
      rc = unescape_n(eq + 1, e - s - nl - 1, &value);
    else if (!(value = dupn("", 0)))
      rc = SR_ENOMEM;
    if (rc) {
      sr__free(name);
      return rc;
    }
    rc = pair_push(&u->headers, &u->nheaders, &cap, name, value, 1);
    if (rc) return rc;
  }
  return 0;
}

static int parse_sip_rest(struct sr_uri *u, const char *p, size_t n) {
  /* '@' may not stand unescaped in URI parameters or header values, so the
   * userinfo ends at the first '@'. It is searched for only before the
   * first '?': some agents put raw Call-IDs such as "a@host" into
   * ?Replaces=, and a '?' inside a user part is far rarer than that. */
  const char *q = memchr(p, '?', n);
  size_t qpos = q ? (size_t)(q - p) : n;
  const char *at = memchr(p, '@', qpos);
  size_t i = 0;
  if (at) {
    size_t ui = (size_t)(at - p);
    const char *colon = memchr(p, ':', ui);
    size_t ul = colon ? (size_t)(colon - p) : ui; /* password dropped */
    if (ul == 0) return SR_EPARSE;
    if (!(u->user = dupn(p, ul))) return SR_ENOMEM;
    i = ui + 1;
  }
  if (i >= n) return SR_EPARSE;
  if (p[i] == '[') {
    size_t j = i + 1;
    int colons = 0;
    while (j < n && p[j] != ']') {
      int c = (unsigned char)p[j];
      if (c == ':')
        colons++;
      else if (hex_val(c) < 0 && c != '.')
        return SR_EPARSE;
      j++;
    }
    if (j >= n || colons == 0) return SR_EPARSE;
    if (!(u->host = dupn(p + i + 1, j - i - 1))) return SR_ENOMEM;
    i = j + 1;
  } else {
    size_t j = i;
    while (j < n && (is_alnum((unsigned char)p[j]) || p[j] == '-' ||
                     p[j] == '.' || p[j] == '_'))
      j++;
    if (j == i) return SR_EPARSE;
    if (!(u->host = dupn(p + i, j - i))) return SR_ENOMEM;
    i = j;
  }
  if (i < n && p[i] == ':') {
    i++;
    long port = 0;
    size_t ds = i;
    while (i < n && is_digit((unsigned char)p[i]) && i - ds < 6) {
      port = port * 10 + (p[i] - '0');
      i++;
    }
    if (i == ds || port > 65535) return SR_EPARSE;
    u->port = (int)port;
  }
  if (i < n && p[i] != ';' && p[i] != '?') return SR_EPARSE;
  int rc = parse_uri_params(u, p, n, &i, 1);
  if (rc) return rc;
  if (i < n) {
    if (p[i] != '?') return SR_EPARSE;
    rc = parse_uri_headers(u, p + i + 1, n - i - 1);
  }
  return rc;
}

static int parse_tel_rest(struct sr_uri *u, const char *p, size_t n) {
  const char *semi = memchr(p, ';', n);
  size_t ul = semi ? (size_t)(semi - p) : n;
  if (ul == 0) return SR_EPARSE;
  if (!(u->user = dupn(p, ul))) return SR_ENOMEM;
  size_t i = ul;
  int rc = parse_uri_params(u, p, n, &i, 0);
  if (rc) return rc;
  return i == n ? 0 : SR_EPARSE;
}

/* Parses the span into *u (zeroed by the caller); leaves partial state for
 * the caller to clear on failure. */
static int uri_parse_n(struct sr_uri *u, const char *s, size_t n) {
  trim_span(&s, &n);
  if (n == 0) return SR_EPARSE;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)s[i];
    if (c <= 0x20 || c == 0x7f || c == '<' || c == '>' || c == '"')
      return SR_EPARSE;
  }
  if (!is_alpha((unsigned char)s[0])) return SR_EPARSE;
  size_t i = 1;
  while (i < n && (is_alnum((unsigned char)s[i]) || s[i] == '+' ||
                   s[i] == '-' || s[i] == '.'))
    i++;
  if (i >= n || s[i] != ':' || i + 1 >= n) return SR_EPARSE;
  if (!(u->text = dupn(s, n))) return SR_ENOMEM;
  if (!(u->scheme = dupn(s, i))) return SR_ENOMEM;
  lower_str(u->scheme);
  const char *rest = s + i + 1;
  size_t rn = n - i - 1;
  if (!strcmp(u->scheme, "sip") || !strcmp(u->scheme, "sips"))
    return parse_sip_rest(u, rest, rn);
  if (!strcmp(u->scheme, "tel")) return parse_tel_rest(u, rest, rn);
  return 0;
}

int sr__uri_parse(struct sr_uri *u, const char *text) {
  if (!u) return SR_EINVAL;
  memset(u, 0, sizeof *u);
  if (!text) return SR_EINVAL;
  int rc = uri_parse_n(u, text, strlen(text));
  if (rc) sr__uri_clear(u);
  return rc;
}

/* ------------------------------------------------------------------ */
/* name-addr                                                           */
/* ------------------------------------------------------------------ */

void sr__name_addr_clear(struct sr_name_addr *na) {
  if (!na) return;
  sr__free(na->text);
  sr__free(na->display);
  sr__uri_clear(&na->uri);
  pairs_free(na->params, na->nparams);
  memset(na, 0, sizeof *na);
}

/* Skips a quoted-string starting at s[*pi] == '"'; *pi ends past the
 * closing quote. SR_EPARSE when it does not end. */
static int skip_quoted(const char *s, size_t n, size_t *pi) {
  size_t i = *pi + 1;
  while (i < n) {
    if (s[i] == '\\') {
      if (i + 1 >= n) return SR_EPARSE;
      i += 2;
      continue;
    }
    if (s[i] == '"') {
      *pi = i + 1;
      return 0;
    }
    i++;
  }
  return SR_EPARSE;
}

/* Header parameters: *( LWS ";" LWS token [ LWS "=" LWS gen-value ] ).
 * gen-value = token / host / quoted-string; quoted values are kept with
 * their quotes, as received. */
static int parse_header_params(const char *s, size_t n, size_t i,
                               sr__pair **arr, int *count) {
  int cap = 0;
  for (;;) {
    while (i < n && is_lws((unsigned char)s[i])) i++;
    if (i >= n) return 0;
    if (s[i] != ';') return SR_EPARSE;
    i++;
    while (i < n && is_lws((unsigned char)s[i])) i++;
    size_t ns = i;
    while (i < n && is_token((unsigned char)s[i])) i++;
    if (i == ns) return SR_EPARSE;
    size_t ne = i;
    while (i < n && is_lws((unsigned char)s[i])) i++;
    char *value = NULL;
    int has_value = 0;
    if (i < n && s[i] == '=') {
      i++;
      while (i < n && is_lws((unsigned char)s[i])) i++;
      size_t vs = i;
      if (i < n && s[i] == '"') {
        if (skip_quoted(s, n, &i)) return SR_EPARSE;
      } else {
        while (i < n && (is_token((unsigned char)s[i]) || s[i] == '[' ||
                         s[i] == ']' || s[i] == ':'))
          i++;
      }
      has_value = 1;
      value = dupn(s + vs, i - vs);
    }
    int rc = pair_push(arr, count, &cap, dupn(s + ns, ne - ns), value,
                       has_value);
    if (rc) return rc;
  }
}

static int name_addr_parse_n(struct sr_name_addr *na, const char *s,
                             size_t n) {
  trim_span(&s, &n);
  if (n == 0) return SR_EPARSE;
  for (size_t k = 0; k < n; k++) {
    int c = (unsigned char)s[k];
    if (c != '\t' && is_ctl(c)) return SR_EPARSE;
  }
  if (!(na->text = dupn(s, n))) return SR_ENOMEM;

  size_t i;
  if (s[0] == '"') {
    char *d = sr__malloc(n);
    if (!d) return SR_ENOMEM;
    size_t k = 0;
    i = 1;
    for (;;) {
      if (i >= n) {
        sr__free(d);
        return SR_EPARSE;
      }
      if (s[i] == '\\') {
        if (i + 1 >= n) {
          sr__free(d);
          return SR_EPARSE;
        }
        d[k++] = s[i + 1];
        i += 2;
        continue;
      }
      if (s[i] == '"') {
        i++;
        break;
      }
      d[k++] = s[i++];
    }
    d[k] = '\0';
    if (k)
      na->display = d;
    else
      sr__free(d);
    while (i < n && is_lws((unsigned char)s[i])) i++;
    if (i >= n || s[i] != '<') return SR_EPARSE;
  } else {
    const char *lt = memchr(s, '<', n);
    if (lt) {
      size_t dl = (size_t)(lt - s);
      for (size_t k = 0; k < dl; k++)
        if (s[k] == '"' || s[k] == '>') return SR_EPARSE;
      size_t de = dl;
      while (de && is_lws((unsigned char)s[de - 1])) de--;
      if (de && !(na->display = dupn(s, de))) return SR_ENOMEM;
      i = dl;
    } else {
      /* addr-spec: RFC 3261 §20.10 — every ';' after it starts a header
       * parameter, and a URI with '?', ',' or ';' of its own must be
       * enclosed in angle brackets. */
      const char *semi = memchr(s, ';', n);
      size_t ul = semi ? (size_t)(semi - s) : n;
      if (memchr(s, '?', ul) || memchr(s, ',', ul)) return SR_EPARSE;
      int rc = uri_parse_n(&na->uri, s, ul);
      if (rc) return rc;
      return parse_header_params(s, n, ul, &na->params, &na->nparams);
    }
  }
  /* s[i] == '<' */
  i++;
  const char *gt = memchr(s + i, '>', n - i);
  if (!gt) return SR_EPARSE;
  size_t ue = (size_t)(gt - s);
  int rc = uri_parse_n(&na->uri, s + i, ue - i);
  if (rc) return rc;
  return parse_header_params(s, n, ue + 1, &na->params, &na->nparams);
}

int sr__name_addr_parse(struct sr_name_addr *na, const char *text) {
  if (!na) return SR_EINVAL;
  memset(na, 0, sizeof *na);
  if (!text) return SR_EINVAL;
  int rc = name_addr_parse_n(na, text, strlen(text));
  if (rc) sr__name_addr_clear(na);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Header names                                                        */
/* ------------------------------------------------------------------ */

static const char *compact_expand(int c) {
  switch (to_lower(c)) {
  case 'i': return "call-id";
  case 'm': return "contact";
  case 'e': return "content-encoding";
  case 'l': return "content-length";
  case 'c': return "content-type";
  case 'f': return "from";
  case 's': return "subject";
  case 'k': return "supported";
  case 't': return "to";
  case 'v': return "via";
  case 'r': return "refer-to";
  case 'b': return "referred-by";
  case 'o': return "event";
  case 'u': return "allow-events";
  case 'x': return "session-expires";
  case 'a': return "accept-contact";
  case 'j': return "reject-contact";
  case 'd': return "request-disposition";
  case 'y': return "identity";
  case 'n': return "identity-info";
  default: return NULL;
  }
}

void sr__header_canonical(const char *name, char *out, size_t n) {
  if (!out || n == 0) return;
  out[0] = '\0';
  if (!name) return;
  const char *src = name;
  if (name[0] && !name[1]) {
    const char *e = compact_expand((unsigned char)name[0]);
    if (e) src = e;
  }
  size_t k = 0;
  for (; src[k] && k + 1 < n; k++) out[k] = (char)to_lower((unsigned char)src[k]);
  out[k] = '\0';
}

/* A malloc'd canonical name for a span (compact expanded, lower-cased). */
static char *canonical_dup(const char *s, size_t n) {
  if (n == 1) {
    const char *e = compact_expand((unsigned char)s[0]);
    if (e) return dupn(e, strlen(e));
  }
  char *d = dupn(s, n);
  if (d) lower_str(d);
  return d;
}

/* Does the stored (canonical) name match a caller's name, full or
 * compact, in any case? Avoids a fixed buffer, so no long name can be
 * truncated into a false match. */
static int name_matches(const char *stored, const char *query) {
  if (query[0] && !query[1]) {
    const char *e = compact_expand((unsigned char)query[0]);
    if (e) return strcmp(stored, e) == 0;
  }
  return ascii_casecmp(stored, query) == 0;
}

/* Headers whose grammar is a comma-separated list (RFC 3261 §25 and the
 * extensions that define "x *(COMMA x)"), so one line may carry several
 * values. Headers with free text that may contain commas (Date, Subject,
 * User-Agent, Server, the authentication headers, ...) and unknown headers
 * are never split. */
static const char *const list_headers[] = {
    "via", "contact", "route", "record-route", "allow", "supported",
    "require", "proxy-require", "unsupported", "accept", "accept-encoding",
    "accept-language", "refer-to", "allow-events", "in-reply-to",
    "content-encoding", "content-language",
    /* other list headers of RFC 3261 and its extensions */
    "alert-info", "call-info", "error-info", "warning", "path",
    "service-route", "reason", "p-asserted-identity",
    "p-preferred-identity", "p-associated-uri", "security-client",
    "security-server", "security-verify", "accept-contact", "reject-contact",
    "request-disposition", "history-info", "recv-info",
    "accept-resource-priority", "resource-priority", "geolocation",
    "permission-missing", "trigger-consent", NULL};

static int is_list_header(const char *canon) {
  for (int i = 0; list_headers[i]; i++)
    if (canon[0] == list_headers[i][0] && !strcmp(canon, list_headers[i]))
      return 1;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Request view                                                        */
/* ------------------------------------------------------------------ */

void sr__request_clear(struct sr_request *req) {
  if (!req) return;
  sr__free(req->text);
  sr__free(req->method);
  sr__free(req->ruri);
  for (int i = 0; i < req->nhdrs; i++) sr__free(req->hdrs[i].name);
  sr__free(req->hdrs);
  memset(req, 0, sizeof *req);
}

typedef struct {
  struct sr_request *req;
  int cap;
} hdr_builder;

/* Appends one value (trimmed span) under the canonical name. The name
 * and the value share one block (the value follows the name's NUL): a
 * kept request (a referral's REFER, a session's INVITE) holds half as
 * many blocks, each with its allocator's overhead. */
static int hdr_push(hdr_builder *b, const char *canon, const char *v,
                    size_t vn) {
  struct sr_request *req = b->req;
  if (req->nhdrs == INT_MAX) return SR_ENOMEM;
  void *a = req->hdrs;
  if (grow(&a, &b->cap, req->nhdrs + 1, sizeof(sr__hdr))) return SR_ENOMEM;
  req->hdrs = a;
  size_t nl = strlen(canon);
  if (vn > SIZE_MAX - nl - 2) return SR_ENOMEM;
  char *nm = sr__malloc(nl + 1 + vn + 1);
  if (!nm) return SR_ENOMEM;
  memcpy(nm, canon, nl + 1);
  char *val = nm + nl + 1;
  if (vn) memcpy(val, v, vn);
  val[vn] = '\0';
  req->hdrs[req->nhdrs].name = nm;
  req->hdrs[req->nhdrs].value = val;
  req->nhdrs++;
  return 0;
}

/* Splits at commas outside quoted strings and <...>; empty items are
 * dropped, but an empty header keeps one "" value so it can be seen. */
/* 1 if quotes and <...> balance in v[0..n). */
static int list_balanced(const char *v, size_t n) {
  int inq = 0, depth = 0;
  for (size_t k = 0; k < n; k++) {
    char c = v[k];
    if (inq) {
      if (c == '\\' && k + 1 < n) k++;
      else if (c == '"') inq = 0;
    } else if (c == '"') {
      inq = 1;
    } else if (c == '<') {
      depth++;
    } else if (c == '>' && depth-- == 0) {
      return 0;
    }
  }
  return !inq && !depth;
}

static int hdr_push_list(hdr_builder *b, const char *name, const char *v,
                         size_t n) {
  /* An unbalanced value stays one item: whoever reads it reports it
   * (a REFER's bad Refer-To gets its own 400), the rest of the request
   * is still readable. */
  if (!list_balanced(v, n)) {
    const char *is = v;
    size_t in = n;
    trim_span(&is, &in);
    return hdr_push(b, name, is, in);
  }
  int inq = 0, depth = 0, pushed = 0;
  size_t start = 0;
  for (size_t k = 0; k <= n; k++) {
    if (k < n) {
      char c = v[k];
      if (inq) {
        if (c == '\\' && k + 1 < n)
          k++;
        else if (c == '"')
          inq = 0;
        continue;
      }
      if (c == '"') {
        inq = 1;
        continue;
      }
      if (c == '<') {
        depth++;
        continue;
      }
      if (c == '>') {
        if (depth == 0) return SR_EPARSE;
        depth--;
        continue;
      }
      if (c != ',' || depth) continue;
    } else if (inq || depth) {
      return SR_EPARSE;
    }
    const char *is = v + start;
    size_t in = k - start;
    trim_span(&is, &in);
    if (in) {
      int rc = hdr_push(b, name, is, in);
      if (rc) return rc;
      pushed = 1;
    }
    start = k + 1;
  }
  return pushed ? 0 : hdr_push(b, name, "", 0);
}

/* The value t[vs..ve) with each line fold as one SP, into val; returns
 * its length. */
static size_t unfold(char *val, const char *t, size_t vs, size_t ve) {
  size_t k = 0;
  for (size_t i = vs; i < ve; i++) {
    char c = t[i];
    if (c == '\r' || c == '\n') {
      while (k && is_lws((unsigned char)val[k - 1])) k--;
      while (i + 1 < ve && (t[i + 1] == '\r' || t[i + 1] == '\n' ||
                            is_lws((unsigned char)t[i + 1])))
        i++;
      val[k++] = ' ';
      continue;
    }
    val[k++] = c;
  }
  return k;
}

/* Adds one header line (possibly folded over several physical lines) whose
 * value spans t[vs..ve). Folding (CRLF/LF + SP/HT) becomes a single SP. */
static int hdr_add(hdr_builder *b, const char *t, size_t ns, size_t ne,
                   size_t vs, size_t ve) {
  char *canon = canonical_dup(t + ns, ne - ns);
  if (!canon) return SR_ENOMEM;
  const char *v = t + vs;
  size_t vn = ve - vs;
  char *val = NULL;
  if (memchr(v, '\n', vn) || memchr(v, '\r', vn)) { /* folded */
    if (!(val = sr__malloc(ve - vs + 1))) {
      sr__free(canon);
      return SR_ENOMEM;
    }
    vn = unfold(val, t, vs, ve);
    v = val;
  }
  trim_span(&v, &vn);
  int rc = is_list_header(canon) ? hdr_push_list(b, canon, v, vn)
                                 : hdr_push(b, canon, v, vn);
  sr__free(canon);
  sr__free(val);
  return rc;
}

/* Finds the end of the line starting at i: *le is where its content ends
 * (before CRLF or LF), the return value where the next line starts. *bad
 * is set for a NUL, a bare CR or another control character (HT excepted):
 * header text carries none, and letting one through would hand the
 * application a value that can smuggle a line break or cut a C string. */
static size_t line_end(const char *t, size_t n, size_t i, size_t *le,
                       int *bad) {
  size_t j = i;
  while (j < n && t[j] != '\n') {
    int c = (unsigned char)t[j];
    if (c == '\r') {
      if (!(j + 1 == n || t[j + 1] == '\n')) *bad = 1;
    } else if (c != '\t' && is_ctl(c)) {
      *bad = 1;
    }
    j++;
  }
  size_t e = j;
  if (e > i && t[e - 1] == '\r') e--;
  *le = e;
  return j < n ? j + 1 : n;
}

static int request_parse(struct sr_request *req) {
  const char *t = req->text;
  size_t n = req->len;
  size_t i = 0;
  int bad = 0;
  /* RFC 3261 §7.5: empty lines before the start line are ignored. */
  while (i < n && (t[i] == '\r' || t[i] == '\n')) i++;
  if (i >= n) return SR_EPARSE;

  size_t le;
  size_t next = line_end(t, n, i, &le, &bad);
  if (bad) return SR_EPARSE;
  size_t j = i;
  while (j < le && is_token((unsigned char)t[j])) j++;
  if (j == i || j >= le || t[j] != ' ') return SR_EPARSE;
  size_t me = j;
  while (j < le && t[j] == ' ') j++;
  size_t rs = j;
  while (j < le && t[j] != ' ' && t[j] != '\t') j++;
  size_t re = j;
  if (re == rs || j >= le) return SR_EPARSE;
  while (j < le && t[j] == ' ') j++;
  if (!span_caseeq(t + j, le - j, "SIP/2.0")) return SR_EPARSE;
  if (!(req->method = dupn(t + i, me - i))) return SR_ENOMEM;
  if (!(req->ruri = dupn(t + rs, re - rs))) return SR_ENOMEM;

  hdr_builder b = {req, 0};
  int have = 0;
  size_t ns = 0, ne = 0, vs = 0, ve = 0;
  size_t body = n;
  i = next;
  while (i < n) {
    next = line_end(t, n, i, &le, &bad);
    if (bad) return SR_EPARSE;
    if (le == i) { /* the blank line */
      body = next;
      break;
    }
    if (is_lws((unsigned char)t[i])) {
      if (!have) return SR_EPARSE;
      ve = le; /* folded: the value now spans this line too */
    } else {
      if (have) {
        int rc = hdr_add(&b, t, ns, ne, vs, ve);
        if (rc) return rc;
      }
      size_t k = i;
      while (k < le && is_token((unsigned char)t[k])) k++;
      if (k == i) return SR_EPARSE;
      ns = i;
      ne = k;
      while (k < le && is_lws((unsigned char)t[k])) k++;
      if (k >= le || t[k] != ':') return SR_EPARSE;
      vs = k + 1;
      ve = le;
      have = 1;
    }
    i = next;
  }
  if (have) {
    int rc = hdr_add(&b, t, ns, ne, vs, ve);
    if (rc) return rc;
  }

  size_t avail = n - body;
  req->body = t + body;
  req->body_len = avail;
  for (int h = 0; h < req->nhdrs; h++) {
    if (strcmp(req->hdrs[h].name, "content-length")) continue;
    const char *v = req->hdrs[h].value;
    if (!*v) return SR_EPARSE;
    size_t cl = 0;
    for (; *v; v++) {
      if (!is_digit((unsigned char)*v)) return SR_EPARSE;
      if (cl > avail) continue; /* already past what is there */
      cl = cl > (SIZE_MAX - 9) / 10 ? SIZE_MAX : cl * 10 + (size_t)(*v - '0');
    }
    if (cl < avail) req->body_len = cl;
    break;
  }
  return 0;
}

int sr__request_init(struct sr_request *req, const char *data, size_t len) {
  if (!req) return SR_EINVAL;
  memset(req, 0, sizeof *req);
  if (!data) return SR_EINVAL;
  if (!(req->text = dupn(data, len))) return SR_ENOMEM;
  req->len = len;
  int rc = request_parse(req);
  if (rc) sr__request_clear(req);
  return rc;
}

/* ------------------------------------------------------------------ */
/* message/sipfrag                                                     */
/* ------------------------------------------------------------------ */

int sr__sipfrag_parse(const char *body, size_t len, int *code,
                      char **reason) {
  if (!code || !reason) return SR_EINVAL;
  if (!body) return SR_EPARSE;
  size_t i = 0;
  while (i < len && (body[i] == '\r' || body[i] == '\n')) i++;
  size_t e = i;
  while (e < len && body[e] != '\n' && body[e] != '\r') e++;
  /* the status line: "SIP/2.0" SP 3DIGIT [SP reason] */
  if (e - i < 11 || !span_caseeq(body + i, 7, "SIP/2.0") || body[i + 7] != ' ')
    return SR_EPARSE;
  const char *d = body + i + 8;
  if (!is_digit((unsigned char)d[0]) || !is_digit((unsigned char)d[1]) ||
      !is_digit((unsigned char)d[2]))
    return SR_EPARSE;
  int c = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
  if (c < 100 || c > 699) return SR_EPARSE;
  size_t rs = i + 11;
  if (rs < e && body[rs] != ' ') return SR_EPARSE;
  if (rs < e) rs++;
  for (size_t k = rs; k < e; k++) {
    int ch = (unsigned char)body[k];
    if (ch != '\t' && is_ctl(ch)) return SR_EPARSE;
  }
  const char *r = body + rs;
  size_t rn = e - rs;
  trim_span(&r, &rn);
  char *out = dupn(r, rn);
  if (!out) return SR_ENOMEM;
  *code = c;
  *reason = out;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Extra header lines                                                  */
/* ------------------------------------------------------------------ */

int sr__headers_foreach(const char *lines,
                        int (*fn)(const char *name, const char *value,
                                  void *ctx),
                        void *ctx) {
  if (!fn) return SR_EINVAL;
  if (!lines) return 0;
  size_t n = strlen(lines);
  size_t maxl = 1;
  for (size_t i = 0; i < n; i++)
    if (lines[i] == '\n') maxl++;
  char *buf = dupn(lines, n);
  struct hv {
    const char *name, *value;
  } *items = sr__calloc(maxl, sizeof *items);
  if (!buf || !items) {
    sr__free(buf);
    sr__free(items);
    return SR_ENOMEM;
  }
  /* First pass: validate every line and cut it in place; nothing is called
   * unless all lines are good, so a bad line cannot leave half the headers
   * added. */
  size_t count = 0, i = 0;
  int rc = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && buf[j] != '\n') j++;
    size_t le = j;
    if (le > i && buf[le - 1] == '\r') le--;
    size_t k = i;
    for (; k < le; k++) {
      int c = (unsigned char)buf[k];
      if (c != '\t' && is_ctl(c)) break; /* bare CR or other control */
    }
    if (k < le) {
      rc = SR_EINVAL;
      break;
    }
    if (le > i) {
      k = i;
      while (k < le && is_token((unsigned char)buf[k])) k++;
      size_t ne = k;
      while (k < le && is_lws((unsigned char)buf[k])) k++;
      if (ne == i || k >= le || buf[k] != ':') {
        rc = SR_EINVAL;
        break;
      }
      size_t vs = k + 1, ve = le;
      while (vs < ve && is_lws((unsigned char)buf[vs])) vs++;
      while (ve > vs && is_lws((unsigned char)buf[ve - 1])) ve--;
      buf[ne] = '\0';
      buf[ve] = '\0';
      items[count].name = buf + i;
      items[count].value = buf + vs;
      count++;
    }
    i = j < n ? j + 1 : n;
  }
  for (size_t h = 0; rc == 0 && h < count; h++)
    rc = fn(items[h].name, items[h].value, ctx);
  sr__free(items);
  sr__free(buf);
  return rc;
}

unsigned sr__header_bit(const char *name) {
  /* In SR__H_ bit order; compact forms from RFC 3261 §7.3.3, 3515, 3892. */
  static const struct {
    const char *full;
    char compact;
  } names[] = {{"Via", 'v'}, {"From", 'f'}, {"To", 't'},
               {"Call-ID", 'i'}, {"CSeq", 0}, {"Content-Length", 'l'},
               {"Content-Type", 'c'}, {"Contact", 'm'}, {"Max-Forwards", 0},
               {"User-Agent", 0}, {"Refer-To", 'r'}, {"Referred-By", 'b'},
               {"Refer-Sub", 0}, {"Replaces", 0}};
  size_t n = strlen(name);
  for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
    if (span_caseeq(name, n, names[i].full) ||
        (n == 1 && names[i].compact && to_lower((unsigned char)*name) ==
                                           names[i].compact))
      return 1u << i;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Reason phrases                                                      */
/* ------------------------------------------------------------------ */

const char *sr__reason_phrase(int code) {
  switch (code) {
  case 100: return "Trying";
  case 180: return "Ringing";
  case 181: return "Call Is Being Forwarded";
  case 182: return "Queued";
  case 183: return "Session Progress";
  case 199: return "Early Dialog Terminated";
  case 200: return "OK";
  case 202: return "Accepted";
  case 204: return "No Notification";
  case 300: return "Multiple Choices";
  case 301: return "Moved Permanently";
  case 302: return "Moved Temporarily";
  case 305: return "Use Proxy";
  case 380: return "Alternative Service";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 402: return "Payment Required";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 407: return "Proxy Authentication Required";
  case 408: return "Request Timeout";
  case 410: return "Gone";
  case 412: return "Conditional Request Failed";
  case 413: return "Request Entity Too Large";
  case 414: return "Request-URI Too Long";
  case 415: return "Unsupported Media Type";
  case 416: return "Unsupported URI Scheme";
  case 417: return "Unknown Resource-Priority";
  case 420: return "Bad Extension";
  case 421: return "Extension Required";
  case 422: return "Session Interval Too Small";
  case 423: return "Interval Too Brief";
  case 428: return "Use Identity Header";
  case 429: return "Provide Referrer Identity";
  case 430: return "Flow Failed";
  case 433: return "Anonymity Disallowed";
  case 436: return "Bad Identity-Info";
  case 437: return "Unsupported Certificate";
  case 438: return "Invalid Identity Header";
  case 439: return "First Hop Lacks Outbound Support";
  case 440: return "Max-Breadth Exceeded";
  case 469: return "Bad Info Package";
  case 470: return "Consent Needed";
  case 480: return "Temporarily Unavailable";
  case 481: return "Call/Transaction Does Not Exist";
  case 482: return "Loop Detected";
  case 483: return "Too Many Hops";
  case 484: return "Address Incomplete";
  case 485: return "Ambiguous";
  case 486: return "Busy Here";
  case 487: return "Request Terminated";
  case 488: return "Not Acceptable Here";
  case 489: return "Bad Event";
  case 491: return "Request Pending";
  case 493: return "Undecipherable";
  case 494: return "Security Agreement Required";
  case 500: return "Server Internal Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Server Time-out";
  case 505: return "Version Not Supported";
  case 513: return "Message Too Large";
  case 580: return "Precondition Failure";
  case 600: return "Busy Everywhere";
  case 603: return "Decline";
  case 604: return "Does Not Exist Anywhere";
  case 606: return "Not Acceptable";
  case 607: return "Unwanted";
  case 608: return "Rejected";
  default: return "Unknown";
  }
}

/* ------------------------------------------------------------------ */
/* Public read-only accessors                                          */
/* ------------------------------------------------------------------ */

static const sr__pair *pair_at(const sr__pair *p, int n, int i) {
  if (!p || i < 0 || i >= n) return NULL;
  return &p[i];
}

SR_API const char *sr_uri_scheme(const sr_uri *uri) {
  return uri ? uri->scheme : NULL;
}
SR_API const char *sr_uri_user(const sr_uri *uri) {
  return uri ? uri->user : NULL;
}
SR_API const char *sr_uri_host(const sr_uri *uri) {
  return uri ? uri->host : NULL;
}
SR_API int sr_uri_port(const sr_uri *uri) { return uri ? uri->port : 0; }
SR_API int sr_uri_param_count(const sr_uri *uri) {
  return uri ? uri->nparams : 0;
}
SR_API const char *sr_uri_param_name(const sr_uri *uri, int i) {
  const sr__pair *p = uri ? pair_at(uri->params, uri->nparams, i) : NULL;
  return p ? p->name : NULL;
}
SR_API const char *sr_uri_param_value(const sr_uri *uri, int i) {
  const sr__pair *p = uri ? pair_at(uri->params, uri->nparams, i) : NULL;
  return p ? p->value : NULL;
}
SR_API int sr_uri_header_count(const sr_uri *uri) {
  return uri ? uri->nheaders : 0;
}
SR_API const char *sr_uri_header_name(const sr_uri *uri, int i) {
  const sr__pair *p = uri ? pair_at(uri->headers, uri->nheaders, i) : NULL;
  return p ? p->name : NULL;
}
SR_API const char *sr_uri_header_value(const sr_uri *uri, int i) {
  const sr__pair *p = uri ? pair_at(uri->headers, uri->nheaders, i) : NULL;
  return p ? p->value : NULL;
}
SR_API const char *sr_uri_string(const sr_uri *uri) {
  return uri ? uri->text : NULL;
}

SR_API const char *sr_name_addr_display_name(const sr_name_addr *na) {
  return na ? na->display : NULL;
}
SR_API const sr_uri *sr_name_addr_uri(const sr_name_addr *na) {
  return na ? &na->uri : NULL;
}
SR_API int sr_name_addr_param_count(const sr_name_addr *na) {
  return na ? na->nparams : 0;
}
SR_API const char *sr_name_addr_param_name(const sr_name_addr *na, int i) {
  const sr__pair *p = na ? pair_at(na->params, na->nparams, i) : NULL;
  return p ? p->name : NULL;
}
SR_API const char *sr_name_addr_param_value(const sr_name_addr *na, int i) {
  const sr__pair *p = na ? pair_at(na->params, na->nparams, i) : NULL;
  return p ? p->value : NULL;
}
SR_API const char *sr_name_addr_string(const sr_name_addr *na) {
  return na ? na->text : NULL;
}

SR_API const char *sr_request_method(const sr_request *req) {
  return req ? req->method : NULL;
}
SR_API const char *sr_request_ruri(const sr_request *req) {
  return req ? req->ruri : NULL;
}
SR_API int sr_request_header_count(const sr_request *req, const char *name) {
  if (!req || !name || !req->hdrs) return 0;
  int c = 0;
  for (int i = 0; i < req->nhdrs; i++)
    if (name_matches(req->hdrs[i].name, name)) c++;
  return c;
}
SR_API const char *sr_request_header(const sr_request *req, const char *name,
                                     int index) {
  if (!req || !name || !req->hdrs || index < 0) return NULL;
  for (int i = 0; i < req->nhdrs; i++)
    if (name_matches(req->hdrs[i].name, name) && index-- == 0)
      return req->hdrs[i].value;
  return NULL;
}
SR_API const char *sr_request_body(const sr_request *req) {
  if (!req) return NULL;
  return req->body ? req->body : "";
}
SR_API size_t sr_request_body_length(const sr_request *req) {
  return req ? req->body_len : 0;
}
SR_API const char *sr_request_text(const sr_request *req) {
  return req ? req->text : NULL;
}
