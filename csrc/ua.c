/*
 * ua.c — the user agent: options, lifetime, and the routing of incoming
 * messages to transactions, sessions and the UA's own answers (OPTIONS,
 * 405, 481, 400).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include "internal.h"
#include "text.h"

/* Process-wide live counts (sr_global_stats). */
extern int sr__live_sessions, sr__live_referrals, sr__live_referrers;

/* Refer-To schemes allowed unless the options say otherwise: sips needs
 * TLS, which this library has not. */
static const char default_schemes[] = "sip";

void sr_ua_options_init(sr_ua_options *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->t1_ms = 500;
  o->t2_ms = 4000;
  o->t4_ms = 5000;
  o->max_message_size = 65536;
  o->log_level = SR_LOG_WARNING;
  o->allowed_schemes = default_schemes;
  o->refer_decision_timeout_ms = 10000;
  o->refer_expires_s = 60;
  o->notify_mode = SR_NOTIFY_ALL;
  o->max_sessions = 100000;
  o->max_referrals = 10000;
  o->max_referrals_per_session = 8;
  o->max_tcp_connections = 1024;
  o->tcp_idle_timeout_ms = 120000;
  o->udp_receive_buffer = 4 << 20;
}

/* The options' text that goes into messages (the password does not). */
static int check_ua_text(sr_ua *ua, const sr_ua_options *o) {
  int rc = sr__check_uri(ua, "uri", o->uri);
  if (rc == 0) rc = sr__check_value(ua, "display_name", o->display_name);
  if (rc == 0) rc = sr__check_value(ua, "user_agent", o->user_agent);
  if (rc == 0) rc = sr__check_value(ua, "username", o->username);
  /* The proxy's URI ("<...>" allowed) is parsed and written anew. */
  if (rc == 0) rc = sr__check_value(ua, "outbound_proxy", o->outbound_proxy);
  return rc;
}

static void ua_free_memory(sr_ua *ua) {
  sr__free(ua->uri);
  sr__free(ua->display_name);
  sr__free(ua->user_agent);
  sr__free(ua->username);
  sr__free(ua->password);
  sr__free(ua->schemes);
  sr__proxy_free(ua);
  if (ua->identity) osip_uri_free(ua->identity);
  sr__free(ua->heap);
  sr__free(ua->rxbuf);
  sr__hash_free(&ua->sessions);
  sr__free(ua);
}

int sr_ua_new(sr_ua **out, const sr_ua_options *opts) {
  if (!out || !opts || !opts->uri) return SR_EINVAL;
  sr__pool_install();
  osip_uri_t *id = NULL;
  if (osip_uri_init(&id) != 0) return SR_ENOMEM;
  if (osip_uri_parse(id, opts->uri) != 0 || !id->scheme || !id->host ||
      (strcasecmp(id->scheme, "sip") && strcasecmp(id->scheme, "sips"))) {
    osip_uri_free(id);
    return SR_EINVAL;
  }
  sr_ua *ua = sr__calloc(1, sizeof *ua);
  if (!ua) {
    osip_uri_free(id);
    return SR_ENOMEM;
  }
  ua->identity = id;
  ua->refs = 1;
  ua->epfd = -1;
  ua->opt = *opts; /* its log handler reports a refusal below */
  if (check_ua_text(ua, opts) < 0) {
    ua_free_memory(ua);
    return SR_EINVAL;
  }
  sr_ua_options defaults;
  sr_ua_options_init(&defaults);
#define DEF(f) if (ua->opt.f <= 0) ua->opt.f = defaults.f
  DEF(t1_ms); DEF(t2_ms); DEF(t4_ms); DEF(refer_decision_timeout_ms);
  DEF(refer_expires_s); DEF(max_sessions); DEF(max_referrals);
  DEF(max_referrals_per_session); DEF(max_tcp_connections);
  DEF(tcp_idle_timeout_ms); DEF(udp_receive_buffer);
#undef DEF
  if (ua->opt.max_message_size < 1024) ua->opt.max_message_size = 65536;
  if (ua->opt.max_message_size > SR__MAX_MESSAGE_CAP)
    ua->opt.max_message_size = SR__MAX_MESSAGE_CAP;
  char uabuf[64];
  snprintf(uabuf, sizeof uabuf, "sipreferral/%s", SR_VERSION);
  ua->uri = sr__strdup(opts->uri);
  ua->display_name = sr__strdup(opts->display_name);
  ua->user_agent = sr__strdup(opts->user_agent ? opts->user_agent : uabuf);
  ua->username = sr__strdup(opts->username);
  ua->password = sr__strdup(opts->password);
  ua->schemes = sr__strdup(opts->allowed_schemes ? opts->allowed_schemes
                                                    : default_schemes);
  ua->rxbuf = sr__malloc(ua->opt.max_message_size + 2);
  ua->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (!ua->uri || !ua->user_agent || !ua->schemes || !ua->rxbuf ||
      ua->epfd < 0 || sr__txn_system_init(ua) < 0) {
    if (ua->epfd >= 0) close(ua->epfd);
    ua_free_memory(ua);
    return SR_ENOMEM;
  }
  int rc = sr__proxy_init(ua, opts->outbound_proxy);
  if (rc < 0) {
    close(ua->epfd);
    ua_free_memory(ua);
    return rc;
  }
  ua->opt.outbound_proxy = sr__proxy_route(ua);
  ua->opt.uri = ua->uri;
  ua->opt.display_name = ua->display_name;
  ua->opt.user_agent = ua->user_agent;
  ua->opt.username = ua->username;
  ua->opt.password = ua->password;
  ua->opt.allowed_schemes = ua->schemes;
  if (getrandom(&ua->rand_state, sizeof ua->rand_state, 0) < 0 ||
      ua->rand_state == 0)
    ua->rand_state = (uint32_t)(uintptr_t)ua ^ 0x9e3779b9u;
  *out = ua;
  return 0;
}

sr_ua *sr_ua_ref(sr_ua *ua) {
  if (ua) ua->refs++;
  return ua;
}

void sr_ua_close(sr_ua *ua) {
  if (!ua || ua->closed) return;
  ua->closed = 1;
  /* Sessions first: they release their transactions and referrals. */
  for (size_t i = 0; i < ua->sessions.nbuckets; i++)
    while (ua->sessions.buckets[i])
      sr__session_close_for_ua(ua->sessions.buckets[i]);
  sr__referral_close_for_ua(ua);
  sr__txn_system_free(ua);
  sr__transport_close_all(ua);
  sr__watch_close_all(ua);
  for (size_t i = 0; i < ua->nheap; i++) ua->heap[i].t->slot = 0;
  ua->nheap = 0;
  if (ua->epfd >= 0) close(ua->epfd);
  ua->epfd = -1;
}

void sr_ua_unref(sr_ua *ua) {
  if (!ua || --ua->refs > 0) return;
  ua->children++; /* children freed during close must not free the UA */
  sr_ua_close(ua);
  if (--ua->children == 0) ua_free_memory(ua);
}

void sr__ua_child_add(sr_ua *ua) { ua->children++; }

void sr__ua_child_del(sr_ua *ua) {
  if (--ua->children == 0 && ua->refs == 0) ua_free_memory(ua);
}

void sr_ua_set_log_handler(sr_ua *ua, sr_log_fn fn, void *user_data,
                           int level) {
  if (!ua) return;
  ua->opt.log_fn = fn;
  ua->opt.log_user_data = user_data;
  ua->opt.log_level = level;
}

void sr_ua_set_delegate(sr_ua *ua, const sr_ua_delegate *d, void *user_data) {
  if (!ua) return;
  if (d) ua->delegate = *d;
  else memset(&ua->delegate, 0, sizeof ua->delegate);
  ua->user_data = user_data;
}

int sr_ua_listen(sr_ua *ua, const char *spec) {
  if (!ua || !spec) return SR_EINVAL;
  if (ua->closed) return SR_ECLOSED;
  return sr__transport_listen(ua, spec);
}

const char *sr_ua_uri(const sr_ua *ua) { return ua ? ua->uri : NULL; }

void sr_ua_set_message_hook(sr_ua *ua, sr_message_hook hook, void *ud) {
  if (!ua) return;
  ua->hook = hook;
  ua->hook_data = ud;
}

void sr_ua_callback_error(sr_ua *ua) {
  if (ua) ua->callback_error = 1;
}

void sr_ua_get_stats(sr_ua *ua, sr_stats *out) {
  if (!out) return;
  memset(out, 0, sizeof *out);
  if (!ua) return;
  out->sessions = ua->nsessions;
  out->referrals = ua->nreferrals;
  out->referrers = ua->nreferrers;
  out->transactions = ua->ntxns;
  out->dialogs = ua->ndialogs;
  out->connections = ua->nconns;
}

void sr_global_stats(sr_stats *out) {
  if (!out) return;
  memset(out, 0, sizeof *out);
  out->sessions = sr__live_sessions;
  out->referrals = sr__live_referrals;
  out->referrers = sr__live_referrers;
}

/* ---------------- contact, responses, headers ---------------- */

int sr__contact_for(sr_ua *ua, sr_transport tp, int family, char *out,
                    size_t n) {
  sr__listener *l = sr__transport_listener_near(ua, tp, family);
  if (!l) return SR_ETRANSPORT;
  size_t len = strlen(l->contact);
  if (len >= n) return SR_ETOOBIG;
  memcpy(out, l->contact, len + 1);
  return 0;
}

int sr__build_response(sr_ua *ua, osip_message_t *req, int code,
                       const char *reason, const char *to_tag,
                       osip_message_t **out) {
  (void)ua;
  osip_message_t *r;
  if (osip_message_init(&r) != 0) return SR_ENOMEM;
  osip_message_set_version(r, osip_strdup("SIP/2.0"));
  osip_message_set_status_code(r, code);
  osip_message_set_reason_phrase(
      r, osip_strdup(reason ? reason : sr__reason_phrase(code)));
  int rc = osip_list_clone(&req->vias, &r->vias,
                           (int (*)(void *, void **))osip_via_clone);
  if (rc >= 0 && req->from) rc = osip_from_clone(req->from, &r->from);
  if (rc >= 0 && req->to) rc = osip_to_clone(req->to, &r->to);
  if (rc >= 0 && req->call_id) rc = osip_call_id_clone(req->call_id, &r->call_id);
  if (rc >= 0 && req->cseq) rc = osip_cseq_clone(req->cseq, &r->cseq);
  if (rc >= 0 && code > 100 && code < 300)
    rc = osip_list_clone(&req->record_routes, &r->record_routes,
                         (int (*)(void *, void **))osip_record_route_clone);
  if (rc < 0) {
    osip_message_free(r);
    return SR_ENOMEM;
  }
  if (r->to && code > 100 && to_tag) {
    osip_generic_param_t *tag = NULL;
    osip_to_get_tag(r->to, &tag);
    if (!tag) osip_to_set_tag(r->to, osip_strdup(to_tag));
  }
  *out = r;
  return 0;
}

static int add_one(const char *name, const char *value, void *ctx) {
  return osip_message_set_header(ctx, name, value) == 0 ? 0 : SR_ENOMEM;
}

int sr__add_headers(osip_message_t *msg, const char *lines) {
  if (!lines || !*lines) return 0;
  return sr__headers_foreach(lines, add_one, msg);
}

int sr__set_body(osip_message_t *msg, const char *body, const char *ctype) {
  if (!body) return 0;
  if (osip_message_set_body(msg, body, strlen(body)) != 0) return SR_ENOMEM;
  if (ctype && osip_message_set_content_type(msg, ctype) != 0) return SR_EINVAL;
  return 0;
}

/* ---------------- application text ---------------- */

static int refuse_char(sr_ua *ua, const char *what, const char *at) {
  sr__log(ua, SR_LOG_WARNING,
          "%s refused: it contains character 0x%02x (a header value or URI "
          "cannot hold it: it would break or add header lines)",
          what, (unsigned char)*at);
  return SR_EINVAL;
}

int sr__check_value(sr_ua *ua, const char *what, const char *s) {
  const char *bad = s ? find_ctl(s, 1) : NULL;
  return bad ? refuse_char(ua, what, bad) : 0;
}

int sr__check_uri(sr_ua *ua, const char *what, const char *s) {
  const char *bad = s ? find_ctl(s, 0) : NULL;
  if (!bad && s) bad = strpbrk(s, " <>\"");
  return bad ? refuse_char(ua, what, bad) : 0;
}

int sr__check_target(sr_ua *ua, const char *target) {
  size_t n = strlen(target);
  if (n > ua->opt.max_message_size) {
    sr__log(ua, SR_LOG_WARNING, "target refused: %zu bytes, over "
            "max_message_size (%zu)", n, ua->opt.max_message_size);
    return SR_ETOOBIG;
  }
  return sr__check_uri(ua, "target", target);
}

typedef struct {
  sr_ua *ua;
  unsigned reserved;
  int named; /* a reserved name was found (and logged) */
} header_check;

static int check_header(const char *name, const char *value, void *ctx) {
  (void)value;
  header_check *c = ctx;
  if (!(sr__header_bit(name) & c->reserved)) return 0;
  sr__log(c->ua, SR_LOG_WARNING,
          "extra_headers refused: %s is written by the library itself", name);
  c->named = 1;
  return SR_EINVAL;
}

int sr__check_headers(sr_ua *ua, const char *lines, unsigned reserved) {
  if (!lines || !*lines) return 0;
  header_check c = {ua, reserved, 0};
  int rc = sr__headers_foreach(lines, check_header, &c);
  if (rc == SR_EINVAL && !c.named)
    sr__log(ua, SR_LOG_WARNING, "extra_headers refused: a line is not "
            "\"Name: value\" or holds a control character");
  return rc;
}

int sr__check_response(sr_ua *ua, const sr_response_options *o,
                       unsigned reserved) {
  if (!o) return 0;
  int rc = sr__check_value(ua, "reason_phrase", o->reason_phrase);
  if (rc == 0) rc = sr__check_value(ua, "content_type", o->content_type);
  if (rc == 0) rc = sr__check_headers(ua, o->extra_headers, reserved);
  return rc;
}

void sr__ua_reply(sr_ua *ua, sr__txn *t, int code, const char *reason,
                  const char *extra) {
  char tag[12];
  sr__random_token(ua, tag, sizeof tag);
  if (sr__txn_reply(t, code, reason, extra, NULL, NULL, tag) < 0)
    sr__log(ua, SR_LOG_WARNING, "could not answer %d", code);
}

/* ---------------- incoming messages ---------------- */

/* One of the headers a response copies from its request, by full or
 * compact name (RFC 3261 §7.3.3); -1 for any other. */
static int needed_header(const char *name, size_t n) {
  static const char *full[] = {"Via", "From", "To", "Call-ID", "CSeq"};
  static const char compact[] = {'v', 'f', 't', 'i', 0};
  for (int i = 0; i < 5; i++) {
    if (strlen(full[i]) == n && strncasecmp(name, full[i], n) == 0) return i;
    if (n == 1 && compact[i] && (name[0] | 0x20) == compact[i]) return i;
  }
  return -1;
}

/* A message libosip2 could not parse (bad start line, cut short, stray
 * bytes in some header), or one TCP cannot frame: answer 400 when its
 * Via, From, To, Call-ID and CSeq lines are all there and clean, so the
 * sender can match the answer; otherwise drop it. Scans the raw lines,
 * because the parsers refuse exactly these messages. */
void sr__ua_refuse(sr_ua *ua, const sr__peer *from, const char *data,
                   size_t len, int code, const char *reason) {
  static const char *canon[] = {"Via", "From", "To", "Call-ID", "CSeq"};
  if (len >= 4 && strncasecmp(data, "SIP/", 4) == 0) return; /* a response */
  if (len >= 4 && memcmp(data, "ACK ", 4) == 0) return;     /* never answered */
  const char *end = data + len, *p = memchr(data, '\n', len);
  if (!p) return;
  p++;
  /* Each needed value: where it starts and ends (the first one; every Via). */
  struct { const char *v, *e; } got[5][8];
  int count[5] = {0}, cur = -1, too_many = 0;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *le = eol ? eol : end, *next = eol ? eol + 1 : end;
    if (le > p && le[-1] == '\r') le--;
    if (le == p) break; /* the blank line */
    if (*p == ' ' || *p == '\t') { /* folded: extends the previous value */
      if (cur >= 0) got[cur][count[cur] - 1].e = le;
      p = next;
      continue;
    }
    cur = -1;
    const char *colon = memchr(p, ':', (size_t)(le - p)), *ne = colon;
    while (ne && ne > p && (ne[-1] == ' ' || ne[-1] == '\t')) ne--;
    int h = ne ? needed_header(p, (size_t)(ne - p)) : -1;
    if (h == 0 && count[0] == 8) too_many = 1; /* cannot copy them all */
    if (h >= 0 && count[h] < (h == 0 ? 8 : 1)) {
      const char *v = colon + 1;
      while (v < le && (*v == ' ' || *v == '\t')) v++;
      got[h][count[h]].v = v;
      got[h][count[h]++].e = le;
      cur = h;
    }
    p = next;
  }
  if (too_many) return;
  /* Each copied line grows by at most its canonical name and a tag. */
  size_t cap = len + 1024, n;
  char *out = sr__malloc(cap), tag[12];
  if (!out) return;
  n = (size_t)snprintf(out, cap, "SIP/2.0 %d %s\r\n", code, reason);
  for (int h = 0; h < 5; h++) {
    if (!count[h]) goto drop;
    for (int i = 0; i < count[h]; i++) {
      size_t vl = (size_t)(got[h][i].e - got[h][i].v);
      for (size_t k = 0; k < vl; k++) {
        unsigned char c = (unsigned char)got[h][i].v[k];
        /* CR/LF here are fold points: sent as spaces */
        if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
          goto drop; /* NUL or other control: cannot be echoed */
      }
      n += (size_t)snprintf(out + n, cap - n, "%s: ", canon[h]);
      for (size_t k = 0; k < vl; k++) {
        char c = got[h][i].v[k];
        out[n++] = c == '\r' || c == '\n' ? ' ' : c;
      }
      out[n] = 0;
      if (h == 2 && !strcasestr(out + n - vl, ";tag=")) { /* §8.2.6.2 */
        sr__random_token(ua, tag, sizeof tag);
        n += (size_t)snprintf(out + n, cap - n, ";tag=%s", tag);
      }
      n += (size_t)snprintf(out + n, cap - n, "\r\n");
    }
  }
  n += (size_t)snprintf(out + n, cap - n, "Content-Length: 0\r\n\r\n");
  sr__peer to = *from;
  sr__transport_send(ua, &to, out, n);
drop:
  sr__free(out);
}

/* RFC 3261 §8.2 (§7.1: case-insensitive): SIP/2.0 only. The fast
 * parser's start lines always are; libosip2 lets any "SIP/x" through. */
static int other_version(const osip_message_t *m) {
  return !m->sip_version || osip_strcasecmp(m->sip_version, "SIP/2.0") != 0;
}

static const char *missing_header(osip_message_t *m) {
  if (!osip_list_size(&m->vias)) return "Missing Via Header";
  if (!m->from || !m->from->url) return "Missing From Header";
  if (!m->to || !m->to->url) return "Missing To Header";
  if (!m->call_id || !m->call_id->number) return "Missing Call-ID Header";
  if (!m->cseq || !m->cseq->number || !m->cseq->method)
    return "Missing CSeq Header";
  return NULL;
}

/* RFC 3261 §8.2.2.1: 416 for a scheme this UA does not serve (sips too:
 * it needs TLS, RFC 3261 §26.2.2, which this UA has not); 400 for a SIP URI
 * libosip2 let through without a usable host or port. */
static int check_request_uri(osip_uri_t *u) {
  if (!u || !u->scheme) return 400;
  if (strcasecmp(u->scheme, "sip")) return 416;
  if (!u->host || !*u->host) return 400;
  for (const char *h = u->host; *h; h++)
    if (!isalnum((unsigned char)*h) && !strchr("-._:[]", *h)) return 400;
  if (u->port) {
    char *e;
    long port = strtol(u->port, &e, 10);
    if (e == u->port || *e || port <= 0 || port > 65535) return 400;
  }
  return 0;
}

/* RFC 3261 §18.3/§20.14: Content-Length is decimal digits, and a body
 * shorter than it is an error. The body is measured on the raw bytes:
 * libosip2 splits a multipart body into parts. */
static const char *check_content_length(osip_message_t *m, const char *data,
                                        size_t len) {
  if (!m->content_length || !m->content_length->value) return NULL;
  const char *v = m->content_length->value;
  unsigned long long cl = 0;
  while (*v == ' ' || *v == '\t') v++;
  if (!isdigit((unsigned char)*v)) return "Bad Content-Length";
  for (; isdigit((unsigned char)*v); v++)
    if ((cl = cl * 10 + (unsigned)(*v - '0')) > len) return "Content-Length Mismatch";
  while (*v == ' ' || *v == '\t') v++;
  if (*v) return "Bad Content-Length";
  if (cl == 0) return NULL; /* most messages: no need to find the body */
  const char *b = memmem(data, len, "\r\n\r\n", 4);
  size_t have = b ? len - (size_t)(b + 4 - data) : 0;
  if (!b && (b = memmem(data, len, "\n\n", 2))) have = len - (size_t)(b + 2 - data);
  return cl > have ? "Content-Length Mismatch" : NULL;
}

void sr__ua_on_bytes(sr_ua *ua, const sr__peer *from, const char *data,
                     size_t len) {
  char who[80];
  osip_message_t *m = NULL;
  osip_event_t *evt = NULL;
  if (sr__message_parse(data, len, &m) == 0 &&
      (evt = osip_malloc(sizeof *evt)) != NULL) {
    memset(evt, 0, sizeof *evt);
    evt->sip = m;
  }
  if (!evt) {
    sr__peer_format(from, who, sizeof who);
    sr__log(ua, SR_LOG_WARNING, "unparsable message (%zu bytes) from %s",
            len, who);
    if (m) osip_message_free(m);
    sr__ua_refuse(ua, from, data, len, 400, "Bad Request");
    return;
  }
  int code = 400;
  const char *why = missing_header(m);
  if (!why && other_version(m)) {
    if (MSG_IS_RESPONSE(m)) { /* §8.2 answers requests; a response: dropped */
      sr__peer_format(from, who, sizeof who);
      sr__log(ua, SR_LOG_WARNING, "response in %s from %s dropped",
              m->sip_version ? m->sip_version : "no SIP version", who);
      osip_message_free(m);
      osip_free(evt);
      return;
    }
    code = 505; /* §21.5.7 */
    why = "Version Not Supported";
  }
  if (!why && MSG_IS_REQUEST(m) &&
      (!m->sip_method || strcmp(m->sip_method, m->cseq->method) != 0))
    why = "CSeq Method Mismatch";
  if (!why && MSG_IS_REQUEST(m) && (code = check_request_uri(m->req_uri)))
    why = code == 416 ? "Unsupported URI Scheme" : "Bad Request-URI";
  if (!why) {
    code = 400;
    why = check_content_length(m, data, len);
  }
  if (why) {
    sr__peer_format(from, who, sizeof who);
    sr__log(ua, SR_LOG_WARNING, "bad message from %s: %s", who, why);
    if (MSG_IS_REQUEST(m) && !MSG_IS_ACK(m) && osip_list_size(&m->vias)) {
      osip_message_t *r;
      sr__peer to = *from;
      char tag[12];
      sr__random_token(ua, tag, sizeof tag);
      if (sr__build_response(ua, m, code, why, tag, &r) == 0) {
        sr__send_stateless(ua, r, &to);
        osip_message_free(r);
      }
    }
    osip_message_free(m);
    osip_free(evt);
    return;
  }
  if (MSG_IS_REQUEST(m)) {
    char host[64];
    int port;
    sr__peer_host(from, host, sizeof host, &port);
    osip_message_fix_last_via_header(m, host, port);
  }
  ua->cur_data = data;
  ua->cur_len = len;
  sr__txn_incoming(ua, evt, from);
  ua->cur_data = NULL;
  ua->cur_len = 0;
}

/* Under overload, work already started (in-dialog requests, CANCEL,
 * ACK, responses, retransmissions absorbed by their transactions) goes
 * on, and what would start more is refused as cheaply as possible: no
 * transaction, no session, one response. A lost 503 costs the client one
 * retransmission, answered the same way. */
int sr__ua_shed(sr_ua *ua, osip_message_t *m, const sr__peer *from) {
  if (MSG_IS_CANCEL(m) || sr__tag_of(m->to)) return 0;
  /* An INVITE retransmitted after its 2xx, or merged: the call's own. */
  char buf[SR__CID_BUF], *tmp;
  const char *cid = sr__call_id_text(m->call_id, buf, sizeof buf, &tmp);
  int known = cid && sr__hash_find(&ua->sessions, offsetof(sr_session, hnext),
                                   sr__session_key, cid);
  sr__free(tmp);
  if (known) return 0;
  osip_message_t *r;
  char tag[12];
  sr__random_token(ua, tag, sizeof tag);
  if (sr__build_response(ua, m, 503, "Overloaded", tag, &r) == 0) {
    sr__peer to = *from;
    if (sr__add_headers(r, "Retry-After: 5") == 0)
      sr__send_stateless(ua, r, &to);
    osip_message_free(r);
  }
  ua->overloaded->shed++;
  return 1;
}

const char *sr__tag_of(osip_from_t *f) {
  osip_generic_param_t *tag = NULL;
  if (f) osip_from_get_tag(f, &tag);
  return tag && tag->gvalue ? tag->gvalue : NULL;
}
#define tag_of sr__tag_of

const char *sr__call_id_text(const osip_call_id_t *c, char *buf, size_t cap,
                             char **tmp) {
  *tmp = NULL;
  if (!c->host) return c->number;
  size_t a = strlen(c->number), b = strlen(c->host);
  char *d = a + b + 2 <= cap ? buf : (*tmp = sr__malloc(a + b + 2));
  if (!d) return NULL;
  memcpy(d, c->number, a);
  d[a] = '@';
  memcpy(d + a + 1, c->host, b + 1);
  return d;
}

/* The session of a message's dialog (Call-ID, local tag, remote tag). */
static sr_session *find_by(sr_ua *ua, osip_message_t *m, const char *local,
                           const char *remote) {
  char buf[SR__CID_BUF], *tmp;
  const char *cid = sr__call_id_text(m->call_id, buf, sizeof buf, &tmp);
  sr_session *s = cid ? sr__session_find(ua, cid, local, remote) : NULL;
  sr__free(tmp);
  return s;
}

/* The Inviter a 2xx from another branch answers: its Call-ID and our
 * From tag, with a To tag the call does not have. */
static sr_session *find_forked(sr_ua *ua, osip_message_t *r) {
  const char *ftag = tag_of(r->from);
  char buf[SR__CID_BUF], *tmp;
  const char *cid = sr__call_id_text(r->call_id, buf, sizeof buf, &tmp);
  sr_session *s = NULL;
  if (cid && ftag)
    for (s = sr__hash_find(&ua->sessions, offsetof(sr_session, hnext),
                           sr__session_key, cid);
         s; s = sr__hash_next(s, offsetof(sr_session, hnext),
                              sr__session_key, cid))
      if (s->role == SR_ROLE_INVITER && s->local_tag &&
          strcmp(s->local_tag, ftag) == 0)
        break;
  sr__free(tmp);
  return s;
}

/* The In-dialog lookup: our tag is To's for requests we receive. */
static sr_session *find_for_request(sr_ua *ua, osip_message_t *req) {
  return find_by(ua, req, tag_of(req->to), tag_of(req->from));
}

static void on_cancel(sr_ua *ua, sr__txn *t, osip_message_t *req) {
  sr__txn *ist = sr__txn_find_invite(ua, req);
  if (!ist || !ist->app) {
    sr__ua_reply(ua, t, 481, NULL, NULL);
    return;
  }
  sr_session *s = ist->app;
  sr__txn_reply(t, 200, NULL, NULL, NULL, NULL, s->local_tag);
  sr__session_on_cancel(s);
}

void sr__ua_options_reply(sr_ua *ua, sr__txn *t) {
  char extra[256];
  snprintf(extra, sizeof extra,
           "Allow: %s\r\nSupported: %s\r\nAccept: application/sdp\r\n"
           "Server: %s", SR_ALLOW_METHODS, SR_SUPPORTED, ua->user_agent);
  sr__ua_reply(ua, t, 200, NULL, extra);
}

/* Is the option tag tag[0..n) one of SR_SUPPORTED's? */
static int option_supported(const char *tag, size_t n) {
  for (const char *p = SR_SUPPORTED; *p;) {
    size_t k = strcspn(p, ", ");
    if (k == n && strncasecmp(p, tag, n) == 0) return 1;
    p += k;
    p += strspn(p, ", ");
  }
  return 0;
}

/* Appends the tags of one Require value that we do not support to
 * out[*len..cap) as "a, b" and counts them in *found; a tag that does not
 * fit is left out of the list, not out of the count. */
static void collect_unsupported(const char *v, char *out, size_t *len,
                                size_t cap, int *found) {
  while (*v) {
    v += strspn(v, ", \t");
    size_t n = strcspn(v, ", \t");
    if (n && !option_supported(v, n)) {
      ++*found;
      if (*len + n + 3 < cap) {
        if (*len) {
          memcpy(out + *len, ", ", 2);
          *len += 2;
        }
        memcpy(out + *len, v, n);
        *len += n;
        out[*len] = 0;
      }
    }
    v += n;
  }
}

/* RFC 3261 §8.2.2.3: a request that requires an extension we do not
 * support gets 420 naming it. Only a walk of the unparsed headers'
 * names when there is no Require. 1 if answered. */
static int refuse_unsupported(sr_ua *ua, sr__txn *t, osip_message_t *req) {
  static const char head[] = "Unsupported: ";
  char extra[sizeof head + 256];
  size_t len = 0;
  int found = 0;
  osip_list_iterator_t it;
  for (osip_header_t *h = osip_list_get_first(&req->headers, &it); h;
       h = osip_list_get_next(&it))
    if (h->hname && (h->hname[0] | 0x20) == 'r' &&
        osip_strcasecmp(h->hname, "require") == 0 && h->hvalue)
      collect_unsupported(h->hvalue, extra + sizeof head - 1, &len,
                          sizeof extra - sizeof head, &found);
  if (!found) return 0;
  /* Tags too long to list still get the 420, with those that fit. */
  memcpy(extra, head, sizeof head - 1);
  sr__log(ua, SR_LOG_INFO, "%s refused: 420, %d unsupported option tag(s)%s%s",
          req->sip_method, found, len ? ": " : "",
          len ? extra + sizeof head - 1 : "");
  sr__ua_reply(ua, t, 420, NULL, len ? extra : NULL);
  return 1;
}

void sr__ua_on_request(sr_ua *ua, sr__txn *t, osip_message_t *req) {
  const char *m = req->sip_method;
  if (strcmp(m, "CANCEL") == 0) {
    on_cancel(ua, t, req);
    return;
  }
  if (refuse_unsupported(ua, t, req)) return;
  if (tag_of(req->to)) {
    sr_session *s = find_for_request(ua, req);
    if (s) sr__session_on_request(s, t, req);
    else sr__ua_reply(ua, t, 481, NULL, NULL);
    return;
  }
  if (strcmp(m, "INVITE") == 0) {
    sr__invitation_new(ua, t, req);
  } else if (strcmp(m, "OPTIONS") == 0) {
    sr__ua_options_reply(ua, t);
  } else if (strcmp(m, "REFER") == 0) {
    if (ua->opt.allow_out_of_dialog_refer) {
      sr__referral_incoming(ua, NULL, t, req);
    } else {
      sr__log(ua, SR_LOG_INFO, "out-of-dialog REFER refused (405)");
      sr__ua_reply(ua, t, 405, NULL,
                   "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY");
    }
  } else if (!strcmp(m, "BYE") || !strcmp(m, "NOTIFY") || !strcmp(m, "INFO") ||
             !strcmp(m, "UPDATE") || !strcmp(m, "PRACK")) {
    sr__ua_reply(ua, t, 481, NULL, NULL);
  } else {
    sr__ua_reply(ua, t, 405, NULL, "Allow: " SR_ALLOW_METHODS);
  }
}

void sr__ua_on_stray(sr_ua *ua, osip_message_t *msg, const sr__peer *from) {
  (void)from;
  if (MSG_IS_ACK(msg)) {
    sr_session *s = find_for_request(ua, msg);
    if (s) sr__session_on_ack(s, msg);
    return;
  }
  if (MSG_IS_RESPONSE(msg) && MSG_IS_STATUS_2XX(msg) &&
      msg->cseq && strcmp(msg->cseq->method, "INVITE") == 0) {
    sr_session *s = find_by(ua, msg, tag_of(msg->from), tag_of(msg->to));
    if (s) sr__session_on_2xx_retransmit(s);
    else if ((s = find_forked(ua, msg))) sr__inviter_on_forked_2xx(s, msg);
  }
}
