/*
 * referral.c — an incoming REFER becomes an sr_referral (SIP.js's
 * Referral): validation and policy (RFC 3515 §2.4), the application's
 * decision with a deadline, accept/reject, and makeInviter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "referral.h"

/* One referral per pending REFER: past 1032 bytes it would take a 2 KiB
 * block of the pool (csrc/pool.c's classes) instead of about 1 KiB. */
_Static_assert(sizeof(struct sr_referral) <= 1032,
               "sr_referral outgrew the pool's 16-byte classes");
#include "text.h"

int sr__live_referrals;

sr_referral *sr_referral_ref(sr_referral *r) {
  if (r) r->refs++;
  return r;
}

static void referral_free(sr_referral *r) {
  sr_ua *ua = r->ua;
  sr__request_clear(&r->req);
  sr__name_addr_clear(&r->refer_to);
  sr__free(r->replaces);
  sr__free(r->referred_by);
  if (r->dlg) osip_dialog_free(r->dlg);
  sr__txn_unref(r->stx);
  sr__txn_unref(r->in_flight);
  sr_session_unref(r->inviter);
  sr_session_unref(r->session);
  ua->nreferrals--;
  sr__live_referrals--;
  sr__free(r);
  sr__ua_child_del(ua);
}

void sr_referral_unref(sr_referral *r) {
  if (!r || --r->refs > 0) return;
  referral_free(r);
}

/* ---------------- getters ---------------- */

sr_referral_state sr_referral_get_state(const sr_referral *r) {
  return r ? r->state : SR_REFERRAL_TERMINATED;
}
const sr_name_addr *sr_referral_refer_to(const sr_referral *r) {
  return r ? &r->refer_to : NULL;
}
const char *sr_referral_referred_by(const sr_referral *r) {
  return r ? r->referred_by : NULL;
}
const char *sr_referral_replaces(const sr_referral *r) {
  return r ? r->replaces : NULL;
}
const sr_request *sr_referral_request(const sr_referral *r) {
  return r ? &r->req : NULL;
}
sr_session *sr_referral_get_session(const sr_referral *r) {
  return r ? r->session : NULL;
}
sr_ua *sr_referral_get_ua(const sr_referral *r) {
  return r && !r->ua->closed ? r->ua : NULL;
}
int sr_referral_get_id(const sr_referral *r) { return r ? r->id : 0; }
int sr_referral_get_refer_sub(const sr_referral *r) {
  return r ? r->refer_sub : 1;
}
sr_session *sr_referral_get_inviter(const sr_referral *r) {
  return r ? r->inviter : NULL;
}

/* ---------------- lists and limits ---------------- */

static sr_referral **list_of(sr_referral *r) {
  return r->session ? &r->session->referrals : &r->ua->ood_referrals;
}

static void unlink_referral(sr_referral *r) {
  for (sr_referral **pp = list_of(r); *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      r->next = NULL;
      return;
    }
}

static void uncount_pending(sr_referral *r) {
  if (!r->pending_counted) return;
  r->pending_counted = 0;
  r->ua->nreferrals_pending--;
  if (r->session) r->session->referrals_pending--;
}

/* The referral is over for the core: timers stop, its list and the core's
 * reference go. The application's references stay valid. */
void sr__referral_finish(sr_referral *r, sr_referral_state st) {
  if (r->state != SR_REFERRAL_REJECTED) r->state = st;
  if (!r->core_ref) return;
  sr__timer_stop(r->ua, &r->decide);
  sr__timer_stop(r->ua, &r->expiry);
  uncount_pending(r);
  r->sub_active = 0;
  r->nqueue = 0;
  /* No NOTIFY goes any more: an out-of-dialog subscription's dialog goes
   * now, not with the last handle (see drop_protocol_state in session.c). */
  if (r->dlg) osip_dialog_free(r->dlg);
  r->dlg = NULL;
  unlink_referral(r);
  /* Nothing is left to report: the Inviter lets go of the referral, or
   * the two would hold each other forever when it is never sent. */
  sr_session *inv = r->inviter;
  if (inv && inv->watch_referral == r) {
    inv->watch_referral = NULL;
    inv->watch.on_progress = NULL;
    sr_referral_unref(r); /* the core's reference still holds it */
  }
  r->core_ref = 0;
  sr_referral_unref(r);
}

/* ---------------- responses ---------------- */

static int answer(sr_referral *r, int code, const sr_response_options *o,
                  const char *extra) {
  osip_message_t *req = sr__txn_request(r->stx), *resp;
  if (!req) return SR_ECLOSED;
  if (r->session && !extra && !(o && (o->extra_headers || o->body))) {
    /* In a dialog and nothing of its own: written from the REFER. */
    char *buf;
    size_t len;
    int rc = sr__write_response(req, code, o ? o->reason_phrase : NULL, NULL,
                                &buf, &len);
    return rc < 0 ? rc : sr__txn_respond_wire(r->stx, code, buf, len);
  }
  char tag[16];
  sr__random_token(r->ua, tag, sizeof tag);
  int rc = sr__build_response(r->ua, req, code, o ? o->reason_phrase : NULL,
                              r->session ? NULL : tag, &resp);
  if (rc < 0) return rc;
  if (extra) rc = sr__add_headers(resp, extra);
  if (rc == 0 && o) rc = sr__add_headers(resp, o->extra_headers);
  if (rc == 0 && o) rc = sr__set_body(resp, o->body, o->content_type);
  if (rc == 0 && !r->session && code < 300)
    rc = sr__add_common(r->ua, resp, r->stx->peer.tp,
                        r->stx->peer.addr.ss_family, 1);
  if (rc < 0) {
    osip_message_free(resp);
    return rc;
  }
  if (!r->session && code < 300) {
    /* Out of dialog: the 2xx creates the dialog the NOTIFYs use. */
    if (osip_dialog_init_as_uas(&r->dlg, req, resp) == 0) {
      r->tp = r->stx->peer.tp;
      r->peer = r->stx->peer;
      sr__dialog_peer(r->dlg, r->tp, &r->peer);
    } else {
      r->dlg = NULL;
    }
  }
  return sr__txn_respond(r->stx, resp);
}

static int decided_check(sr_referral *r) {
  if (!r) return SR_EINVAL;
  if (r->ua->closed) return SR_ECLOSED;
  if (r->state == SR_REFERRAL_ACCEPTED || r->state == SR_REFERRAL_REJECTED)
    return SR_EALREADY;
  if (r->state != SR_REFERRAL_PENDING || !sr__txn_pending(r->stx))
    return SR_ECLOSED;
  return 0;
}

static void subscription_expired(void *arg) {
  sr_referral *r = arg;
  if (!r->sub_active) return;
  /* Expired before any final status: end with the last status sent. */
  sr__referral_notify_last(r, "terminated;reason=timeout");
}

int sr_referral_accept(sr_referral *r, const sr_response_options *o) {
  int rc = decided_check(r);
  if (rc == 0)
    rc = sr__check_response(r->ua, o, SR__HDRS_RESPONSE | SR__H_CONTACT |
                                          SR__H_REFER_SUB);
  if (rc < 0) return rc;
  int code = o && o->status_code ? o->status_code : 202;
  if (code < 200 || code > 299) return SR_EINVAL;
  sr_referral_ref(r);
  rc = answer(r, code, o, r->refer_sub ? NULL : "Refer-Sub: false");
  if (rc == 0) {
    r->state = SR_REFERRAL_ACCEPTED;
    sr__timer_stop(r->ua, &r->decide);
    /* It still counts against the limits until its subscription ends:
     * a burst of REFERs cannot start more transfers than that. */
    if (r->refer_sub && (r->session || r->dlg)) {
      r->sub_active = 1;
      sr__referral_expire_in(r, (unsigned)r->ua->opt.refer_expires_s);
      if (r->mode != SR_NOTIFY_NONE)
        sr__referral_notify(r, 100, "Trying", "active");
    } else {
      /* Refer-Sub: false (RFC 4488): no subscription, nothing to keep. */
      sr__referral_finish(r, SR_REFERRAL_ACCEPTED);
    }
  }
  sr_referral_unref(r);
  return rc;
}

int sr_referral_reject(sr_referral *r, const sr_response_options *o) {
  int rc = decided_check(r);
  if (rc == 0) rc = sr__check_response(r->ua, o, SR__HDRS_RESPONSE);
  if (rc < 0) return rc;
  int code = o && o->status_code ? o->status_code : 603;
  if (code < 300 || code > 699) return SR_EINVAL;
  sr_referral_ref(r);
  rc = answer(r, code, o, NULL);
  r->state = SR_REFERRAL_REJECTED;
  sr__referral_finish(r, SR_REFERRAL_REJECTED);
  sr_referral_unref(r);
  return rc;
}

static void decision_deadline(void *arg) {
  sr_referral *r = arg;
  if (r->state != SR_REFERRAL_PENDING) return;
  sr__log(r->ua, SR_LOG_WARNING, "REFER (id %d) not decided in time: rejected",
          r->id);
  sr_response_options o;
  sr_response_options_init(&o);
  o.status_code = 603;
  o.reason_phrase = "Decision Timeout";
  sr_referral_reject(r, &o);
}

int sr_referral_set_notify_mode(sr_referral *r, sr_notify_mode mode) {
  if (!r || mode < SR_NOTIFY_ALL || mode > SR_NOTIFY_NONE) return SR_EINVAL;
  if (r->ua->closed) return SR_ECLOSED;
  r->mode = mode;
  return 0;
}

int sr_referral_notify(sr_referral *r, int code, const char *reason) {
  if (!r || code < 100 || code > 699) return SR_EINVAL;
  if (r->ua->closed) return SR_ECLOSED;
  if (r->state != SR_REFERRAL_ACCEPTED || !r->sub_active) return SR_ESTATE;
  /* The sipfrag body's status line: a CR or LF would add lines to it. */
  if (sr__check_value(r->ua, "reason_phrase", reason) < 0) return SR_EINVAL;
  if (reason && strlen(reason) >= sizeof r->last_reason) {
    sr__log(r->ua, SR_LOG_WARNING, "NOTIFY reason refused: over %zu bytes",
            sizeof r->last_reason - 1);
    return SR_EINVAL; /* it would be cut short in the queue */
  }
  sr__referral_notify(r, code, reason ? reason : sr__reason_phrase(code),
                      code >= 200 ? "terminated;reason=noresource" : "active");
  return 0;
}

/* ---------------- makeInviter ---------------- */

/* The Inviter's responses drive the NOTIFYs (RFC 3515 §2.4.5). */
static void on_inviter_progress(void *ctx, sr_session *inv, int code,
                                const char *reason) {
  sr_referral *r = ctx;
  (void)inv;
  if (!r->sub_active) return;
  if (code < 200 && r->mode != SR_NOTIFY_ALL) return;
  if (r->mode == SR_NOTIFY_NONE) return;
  sr__referral_notify(r, code, reason,
                      code >= 200 ? "terminated;reason=noresource" : "active");
}

/* The Refer-To URI without its headers (and without method=): what the
 * new INVITE goes to. */
static char *inviter_target(sr_referral *r) {
  const struct sr_uri *u = &r->refer_to.uri;
  size_t n = strlen(u->text) + 1;
  char *t = sr__malloc(n), *q = strchr(u->text, '?');
  if (!t) return NULL;
  size_t len = q ? (size_t)(q - u->text) : strlen(u->text);
  memcpy(t, u->text, len);
  t[len] = 0;
  /* drop ;method=... */
  char *m = strcasestr(t, ";method=");
  if (m) {
    char *e = strchr(m + 1, ';');
    memmove(m, e ? e : m + strlen(m), strlen(e ? e : m + strlen(m)) + 1);
  }
  return t;
}

int sr_referral_make_inviter(sr_referral *r, const sr_inviter_options *opts,
                             sr_session **out) {
  if (!r || !out) return SR_EINVAL;
  if (r->ua->closed) return SR_ECLOSED;
  if (r->inviter) {
    *out = r->inviter;
    return 0;
  }
  if (r->state == SR_REFERRAL_REJECTED) return SR_ESTATE;
  /* The core adds Replaces and Referred-By after the caller's headers. */
  if (opts && sr__check_headers(r->ua, opts->extra_headers,
                                SR__HDRS_REQUEST | SR__H_REPLACES |
                                    SR__H_REFERRED_BY) < 0)
    return SR_EINVAL;
  char *target = inviter_target(r);
  if (!target) return SR_ENOMEM;
  /* Caller's headers first, then Replaces and Referred-By. */
  const char *extra = opts && opts->extra_headers ? opts->extra_headers : "";
  const char *rb = r->referred_by;
  char *from_rb = NULL;
  if (!rb) {
    /* No Referred-By in the REFER: name the referrer (its From). */
    const char *f = sr_request_header(&r->req, "from", 0);
    if (f) {
      const char *lt = strchr(f, '<'), *gt = lt ? strchr(lt, '>') : NULL;
      if (lt && gt) {
        from_rb = sr__strndup(lt, (size_t)(gt - lt + 1));
        rb = from_rb;
      }
    }
  }
  size_t n = strlen(extra) + (r->replaces ? strlen(r->replaces) : 0) +
             (rb ? strlen(rb) : 0) + 96;
  char *headers = sr__malloc(n);
  if (!headers) {
    sr__free(target);
    sr__free(from_rb);
    return SR_ENOMEM;
  }
  size_t el = strlen(extra);
  while (el && (extra[el - 1] == '\n' || extra[el - 1] == '\r')) el--;
  int k = snprintf(headers, n, "%.*s", (int)el, extra);
  /* Require too: a target without Replaces (a fork reaching another
   * phone) refuses with 420 rather than ringing a call that replaces
   * nothing. */
  if (r->replaces)
    k += snprintf(headers + k, n - (size_t)k,
                  "%sReplaces: %s\r\nRequire: replaces", k ? "\r\n" : "",
                  r->replaces);
  if (rb)
    snprintf(headers + k, n - (size_t)k, "%sReferred-By: %s", k ? "\r\n" : "", rb);
  sr__free(from_rb);
  sr_inviter_options o;
  sr_inviter_options_init(&o);
  if (opts) o = *opts;
  o.extra_headers = headers;
  sr_session *inv;
  int rc = sr_ua_make_inviter(r->ua, target, &o, &inv);
  sr__free(target);
  sr__free(headers);
  if (rc < 0) return rc;
  r->inviter = inv; /* the referral's reference */
  if (r->core_ref) { /* a subscription to report to */
    inv->watch.on_progress = on_inviter_progress;
    inv->watch.ctx = r;
    inv->watch_referral = sr_referral_ref(r);
  }
  if (r->session) {
    inv->referred_session = sr_session_ref(r->session);
    r->session->referral_inviter = inv;
  }
  *out = inv;
  return 0;
}

/* ---------------- an incoming REFER ---------------- */

static int scheme_allowed(sr_ua *ua, const char *scheme) {
  size_t n = strlen(scheme);
  for (const char *p = ua->schemes; *p;) {
    while (*p == ',' || *p == ' ') p++;
    const char *e = p;
    while (*e && *e != ',' && *e != ' ') e++;
    if ((size_t)(e - p) == n && strncasecmp(p, scheme, n) == 0) return 1;
    p = e;
  }
  return 0;
}

static const char *uri_header(const struct sr_uri *u, const char *name) {
  for (int i = 0; i < u->nheaders; i++)
    if (strcasecmp(u->headers[i].name, name) == 0)
      return u->headers[i].value ? u->headers[i].value : "";
  return NULL;
}

static const char *uri_param(const struct sr_uri *u, const char *name) {
  for (int i = 0; i < u->nparams; i++)
    if (strcasecmp(u->params[i].name, name) == 0)
      return u->params[i].value ? u->params[i].value : "";
  return NULL;
}

static int uri_header_count(const struct sr_uri *u, const char *name) {
  int n = 0;
  for (int i = 0; i < u->nheaders; i++)
    n += strcasecmp(u->headers[i].name, name) == 0;
  return n;
}

/* RFC 3892 §3: at most one Referred-By, a name-addr or addr-spec with
 * parameters. It goes into the new INVITE as it came: 0, or the status. */
static int referred_by(sr_referral *r, const char **why) {
  int n = sr_request_header_count(&r->req, "referred-by");
  if (n == 0) return 0;
  if (n > 1) {
    *why = "Multiple Referred-By";
    return 400;
  }
  const char *v = sr_request_header(&r->req, "referred-by", 0);
  struct sr_name_addr na;
  int rc = sr__name_addr_parse(&na, v);
  sr__name_addr_clear(&na);
  if (rc == SR_ENOMEM) return 500;
  if (rc < 0) {
    *why = "Bad Referred-By";
    return 400;
  }
  return (r->referred_by = sr__strdup(v)) ? 0 : 500;
}

/* Refer-Sub: false, extension parameters allowed (RFC 4488's grammar:
 * refer-sub-value *(SEMI exten)). */
static int refer_sub_false(const char *v) {
  if (!v || strncasecmp(v, "false", 5) != 0) return 0;
  v += 5 + strspn(v + 5, " \t");
  return *v == 0 || *v == ';';
}

/* Does the Refer-To lead back to this UA: one of its listening addresses
 * (host literal, port, transport), or its own identity? Following it would
 * only call ourselves. */
static int refers_to_self(sr_ua *ua, const struct sr_uri *u) {
  if (!u->host) return 0;
  int sips = strcmp(u->scheme, "sips") == 0;
  int port = u->port ? u->port : sips ? 5061 : 5060;
  const char *tpp = uri_param(u, "transport");
  sr_transport tp = tpp && strcasecmp(tpp, "tcp") == 0 ? SR_TRANSPORT_TCP
                                                      : SR_TRANSPORT_UDP;
  sr__peer target, mine;
  if (sr__peer_set(&target, tp, u->host, port) == 0) {
    for (int i = 0; i < ua->nlisteners; i++) {
      sr__listener *l = ua->listeners[i];
      if (l->tp != tp || l->port != port ||
          sr__peer_set(&mine, l->tp, l->host, l->port) < 0 ||
          mine.addr.ss_family != target.addr.ss_family)
        continue;
      if (target.addr.ss_family == AF_INET
              ? ((struct sockaddr_in *)&mine.addr)->sin_addr.s_addr ==
                    ((struct sockaddr_in *)&target.addr)->sin_addr.s_addr
              : memcmp(&((struct sockaddr_in6 *)&mine.addr)->sin6_addr,
                       &((struct sockaddr_in6 *)&target.addr)->sin6_addr,
                       sizeof(struct in6_addr)) == 0)
        return 1;
    }
  }
  osip_uri_t *id = ua->identity;
  int id_port = id->port ? atoi(id->port) : sips ? 5061 : 5060;
  return u->user && id->username && strcmp(u->user, id->username) == 0 &&
         id->host && strcasecmp(u->host, id->host) == 0 && id_port == port;
}

/* RFC 3515 §2.4.1-2 and the UA's policy: 0, or the status to answer. */
static int validate(sr_ua *ua, sr_session *s, sr_referral *r,
                    const char **why) {
  *why = NULL;
  /* An Invitation whose 2xx went out has a confirmed dialog (RFC 3261
   * §12.1.1) even while its ACK is late or lost: the REFER, carrying both
   * tags, shows the peer got the 2xx. Early dialogs (1xx) are not: the
   * subscription would live in a dialog that may never be confirmed; SIP.js
   * too refuses REFER before Established. */
  int confirmed = s && s->dialog && s->state == SR_SESSION_ESTABLISHING;
  if (s && s->state != SR_SESSION_ESTABLISHED && !confirmed) {
    *why = "Session Not Established";
    return 403;
  }
  int n = sr_request_header_count(&r->req, "refer-to");
  if (n == 0) {
    *why = "Missing Refer-To";
    return 400;
  }
  if (n > 1) {
    *why = "Multiple Refer-To";
    return 400;
  }
  if (sr__name_addr_parse(&r->refer_to, sr_request_header(&r->req, "refer-to", 0)) < 0) {
    *why = "Bad Refer-To";
    return 400;
  }
  if (!scheme_allowed(ua, r->refer_to.uri.scheme)) {
    *why = "Unsupported URI Scheme";
    return 416;
  }
  const char *method = uri_param(&r->refer_to.uri, "method");
  if (method && strcasecmp(method, "INVITE") != 0) {
    *why = "Refer Method Not Implemented";
    return 501;
  }
  if (refers_to_self(ua, &r->refer_to.uri)) {
    *why = "Loop Detected";
    return 482;
  }
  const char *rep = uri_header(&r->refer_to.uri, "replaces");
  /* Replaces goes into the new INVITE as a header line: a control
   * character (an escaped CR or LF above all) would end that line and let
   * the referrer add headers of its own. Otherwise it must be the one
   * Replaces RFC 3891 §3 allows, or the target would get it to refuse. */
  if (rep && (find_ctl(rep, 0) || !sr__replaces_valid(rep) ||
              uri_header_count(&r->refer_to.uri, "replaces") > 1)) {
    *why = "Bad Replaces";
    return 400;
  }
  if (rep && !(r->replaces = sr__strdup(rep))) return 500;
  int code = referred_by(r, why);
  if (code) return code;
  r->refer_sub = !refer_sub_false(sr_request_header(&r->req, "refer-sub", 0));
  if (ua->nreferrals_pending >= ua->opt.max_referrals ||
      (s && s->referrals_pending >= ua->opt.max_referrals_per_session)) {
    *why = "Too Many Pending Referrals";
    return 503;
  }
  return 0;
}

void sr__referral_incoming(sr_ua *ua, sr_session *s, sr__txn *t,
                           osip_message_t *req) {
  sr_referral *r = sr__calloc(1, sizeof *r);
  if (!r) {
    sr__ua_reply(ua, t, 500, NULL, NULL);
    return;
  }
  r->refs = 1; /* the core's */
  r->core_ref = 1;
  r->ua = ua;
  r->state = SR_REFERRAL_PENDING;
  r->mode = ua->opt.notify_mode;
  r->refer_sub = 1;
  r->id = atoi(req->cseq->number);
  r->stx = sr__txn_ref(t);
  r->session = s ? sr_session_ref(s) : NULL;
  sr__timer_init(&r->decide, decision_deadline, r);
  sr__timer_init(&r->expiry, subscription_expired, r);
  sr__ua_child_add(ua);
  ua->nreferrals++;
  sr__live_referrals++;
  r->next = *list_of(r);
  *list_of(r) = r;
  int code = 500;
  const char *why = NULL;
  if (ua->cur_data && sr__request_init(&r->req, ua->cur_data, ua->cur_len) == 0)
    code = validate(ua, s, r, &why);
  if (code) {
    sr__log(ua, SR_LOG_INFO, "REFER refused: %d %s", code,
            why ? why : sr__reason_phrase(code));
    sr_response_options o;
    sr_response_options_init(&o);
    o.status_code = code;
    o.reason_phrase = why;
    answer(r, code, &o, code == 503 ? "Retry-After: 5" : NULL);
    r->state = SR_REFERRAL_REJECTED;
    sr__referral_finish(r, SR_REFERRAL_REJECTED);
    return;
  }
  r->pending_counted = 1;
  ua->nreferrals_pending++;
  if (s) s->referrals_pending++;
  sr_referral_ref(r); /* around the callbacks */
  if (ua->delegate.on_refer_policy) {
    int deny = ua->delegate.on_refer_policy(ua, r, ua->user_data);
    if (deny && r->state == SR_REFERRAL_PENDING) {
      sr_response_options o;
      sr_response_options_init(&o);
      o.status_code = deny >= 300 && deny <= 699 ? deny : 403;
      sr_referral_reject(r, &o);
    }
  }
  if (r->state == SR_REFERRAL_PENDING && !ua->closed) {
    void (*ood)(sr_ua *, sr_referral *, void *) = ua->delegate.on_refer;
    if (s && s->delegate.on_refer) {
      s->delegate.on_refer(s, r, s->user_data);
    } else if (!s && ood) {
      ood(ua, r, ua->user_data);
    } else {
      /* No delegate: accept and follow, as SIP.js does. */
      sr_session *inv;
      if (sr_referral_accept(r, NULL) == 0) {
        int rc = sr_referral_make_inviter(r, NULL, &inv);
        if (rc == 0) {
          sr_inviter_invite(inv);
        } else {
          /* No call can be made: the final word. A target out of reach (a
           * host name without a proxy, sips without TLS) is 503, as a
           * transport failure would be (RFC 3261 §8.1.3.1). */
          sr__log(ua, SR_LOG_WARNING, "cannot follow the REFER to %.200s: %s",
                  r->refer_to.uri.text, sr_strerror(rc));
          if (r->sub_active)
            sr_referral_notify(r, rc == SR_ELIMIT || rc == SR_EADDR ||
                                          rc == SR_ETRANSPORT ? 503 : 500,
                               NULL);
        }
      }
    }
  }
  if (r->state == SR_REFERRAL_PENDING && !ua->closed) {
    /* Decide well before the referrer's transaction gives up (64*T1). */
    int limit = 48 * ua->opt.t1_ms, ms = ua->opt.refer_decision_timeout_ms;
    sr__timer_start(ua, &r->decide, ms < limit ? ms : limit);
  }
  sr_referral_unref(r);
}

/* ---------------- endings ---------------- */

void sr__referral_session_ended(sr_session *s) {
  sr_ua *ua = s->ua;
  while (s->referrals) {
    sr_referral *r = s->referrals;
    if (r->state == SR_REFERRAL_PENDING && !ua->closed) {
      sr_response_options o;
      sr_response_options_init(&o);
      o.status_code = 481;
      sr_referral_reject(r, &o);
    } else {
      /* Notifying stops quietly; a new call it made goes on. */
      sr__referral_finish(r, SR_REFERRAL_TERMINATED);
    }
  }
  if (s->watch_referral) {
    sr_referral *r = s->watch_referral;
    s->watch_referral = NULL;
    s->watch.on_progress = NULL;
    sr_referral_unref(r);
  }
  sr__referrer_session_ended(s);
}

void sr__referral_close_for_ua(sr_ua *ua) {
  while (ua->ood_referrals)
    sr__referral_finish(ua->ood_referrals, SR_REFERRAL_TERMINATED);
}
