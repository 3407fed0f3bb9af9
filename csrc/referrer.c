/*
 * referrer.c — the transferor: REFER in an established session (blind, or
 * attended with ?Replaces=), Referred-By from the UA identity, the answer,
 * and the NOTIFYs of the implicit subscription (answered 200).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "referral.h"

int sr__live_referrers;

void sr_refer_options_init(sr_refer_options *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->refer_sub = 1;
}

sr_referrer *sr_referrer_ref(sr_referrer *r) {
  if (r) r->refs++;
  return r;
}

void sr_referrer_unref(sr_referrer *r) {
  if (!r || --r->refs > 0) return;
  sr_ua *ua = r->ua;
  sr_session_unref(r->session);
  if (r->refer) osip_message_free(r->refer);
  ua->nreferrers--;
  sr__live_referrers--;
  sr__free(r);
  sr__ua_child_del(ua);
}

sr_session *sr_referrer_get_session(const sr_referrer *r) {
  return r ? r->session : NULL;
}
int sr_referrer_get_id(const sr_referrer *r) { return r ? r->id : 0; }
int sr_referrer_is_closed(const sr_referrer *r) { return r ? r->closed : 1; }

/* Ends the referrer: off the session's list, closed event, core ref gone. */
static void close_referrer(sr_referrer *r, int quiet) {
  if (r->closed) return;
  r->closed = 1;
  if (r->linked) {
    for (sr_referrer **pp = &r->session->referrers; *pp; pp = &(*pp)->next)
      if (*pp == r) {
        *pp = r->next;
        break;
      }
    r->linked = 0;
  }
  if (!quiet && r->d.on_closed) r->d.on_closed(r, r->user_data);
  sr_referrer_unref(r); /* the core's */
}

void sr__referrer_session_ended(sr_session *s) {
  while (s->referrers) close_referrer(s->referrers, s->ua->closed);
}

static void ref_owner(void *o) { sr_referrer_ref(o); }
static void unref_owner(void *o) { sr_referrer_unref(o); }

static const sr__txn_owner refer_ops;

/* A 401/407 with credentials configured: the REFER again, authorized, with
 * the next CSeq (which becomes the subscription's id). */
static int retry_with_auth(sr_referrer *r, osip_message_t *resp) {
  sr_session *s = r->session;
  osip_message_t *m;
  if (r->auth_tries >= 2 || !r->refer || !s->dialog ||
      s->state != SR_SESSION_ESTABLISHED)
    return 0;
  if (sr__answer_challenge(r->ua, r->refer, resp, s->dialog->local_cseq + 1,
                           s->tp, s->peer.addr.ss_family, &m) < 0)
    return 0;
  s->dialog->local_cseq++;
  r->auth_tries++;
  r->id = s->dialog->local_cseq;
  osip_message_free(r->refer);
  if (osip_message_clone(m, &r->refer) != 0) r->refer = NULL;
  return sr__session_send(s, m, &refer_ops, r, NULL) == 0;
}

static void on_refer_response(void *owner, sr__txn *t, osip_message_t *m) {
  (void)t;
  sr_referrer *r = owner;
  int code = m->status_code;
  if (code < 200 || r->closed) return;
  if ((code == 401 || code == 407) && retry_with_auth(r, m)) return;
  const char *reason = m->reason_phrase ? m->reason_phrase : "";
  sr_referrer_ref(r);
  if (code < 300) {
    if (r->d.on_accept) r->d.on_accept(r, code, reason, r->user_data);
    osip_header_t *h = NULL;
    osip_message_header_get_byname(m, "refer-sub", 0, &h);
    if (!r->refer_sub || (h && h->hvalue && strcasecmp(h->hvalue, "false") == 0))
      close_referrer(r, 0); /* no subscription: nothing more will come */
  } else {
    if (r->d.on_reject) r->d.on_reject(r, code, reason, r->user_data);
    close_referrer(r, 0);
  }
  sr_referrer_unref(r);
}

static void on_refer_failure(void *owner, sr__txn *t, int code) {
  (void)t;
  sr_referrer *r = owner;
  if (r->closed) return;
  sr_referrer_ref(r);
  if (r->d.on_reject)
    r->d.on_reject(r, code, sr__reason_phrase(code), r->user_data);
  close_referrer(r, 0);
  sr_referrer_unref(r);
}

static const sr__txn_owner refer_ops = {on_refer_response, on_refer_failure,
                                        ref_owner, unref_owner};

static int send_refer(sr_session *s, const char *refer_to,
                      const sr_refer_options *opts,
                      const sr_referrer_delegate *d, void *user_data,
                      sr_referrer **out) {
  if (!s) return SR_EINVAL;
  if (s->ua->closed || s->state >= SR_SESSION_TERMINATING) return SR_ECLOSED;
  if (s->state != SR_SESSION_ESTABLISHED || !s->dialog) return SR_ESTATE;
  sr_refer_options o;
  sr_refer_options_init(&o);
  if (opts) o = *opts;
  sr_ua *ua = s->ua;
  int rc = sr__check_headers(ua, o.extra_headers,
                             SR__HDRS_REQUEST | SR__H_REFER_TO |
                                 SR__H_REFERRED_BY | SR__H_REFER_SUB);
  if (rc < 0) return rc;
  osip_message_t *m;
  rc = sr__session_build_request(s, "REFER", &m);
  if (rc < 0) return rc;
  char rb[300];
  snprintf(rb, sizeof rb, "<%s>", ua->uri);
  osip_message_set_header(m, "Refer-To", refer_to);
  osip_message_set_header(m, "Referred-By", rb);
  if (!o.refer_sub) osip_message_set_header(m, "Refer-Sub", "false");
  if ((rc = sr__add_headers(m, o.extra_headers)) < 0) {
    osip_message_free(m);
    return rc;
  }
  sr_referrer *r = sr__calloc(1, sizeof *r);
  if (!r) {
    osip_message_free(m);
    return SR_ENOMEM;
  }
  r->refs = 1; /* the core's, until closed */
  r->ua = ua;
  r->session = sr_session_ref(s);
  if (d) r->d = *d;
  r->user_data = user_data;
  r->id = atoi(m->cseq->number);
  r->refer_sub = o.refer_sub;
  r->bye_on_success = o.bye_on_success;
  r->next = s->referrers;
  s->referrers = r;
  r->linked = 1;
  sr__ua_child_add(ua);
  ua->nreferrers++;
  sr__live_referrers++;
  if (out) *out = sr_referrer_ref(r);
  if (ua->username && osip_message_clone(m, &r->refer) != 0) r->refer = NULL;
  rc = sr__session_send(s, m, &refer_ops, r, NULL);
  if (rc < 0) close_referrer(r, 1);
  return 0;
}

int sr_session_refer(sr_session *s, const char *target,
                     const sr_refer_options *opts,
                     const sr_referrer_delegate *d, void *user_data,
                     sr_referrer **out) {
  if (!s || !target) return SR_EINVAL;
  if (s->ua->closed) return SR_ECLOSED;
  int bad = sr__check_target(s->ua, target);
  if (bad < 0) return bad;
  osip_uri_t *u = NULL;
  int ok = osip_uri_init(&u) == 0 && osip_uri_parse(u, target) == 0 && u->scheme;
  if (u) osip_uri_free(u);
  if (!ok) return SR_EINVAL;
  char *rt = sr__malloc(strlen(target) + 3);
  if (!rt) return SR_ENOMEM;
  sprintf(rt, "<%s>", target);
  int rc = send_refer(s, rt, opts, d, user_data, out);
  sr__free(rt);
  return rc;
}

int sr_session_refer_session(sr_session *s, sr_session *other,
                             const sr_refer_options *opts,
                             const sr_referrer_delegate *d, void *user_data,
                             sr_referrer **out) {
  if (!s || !other) return SR_EINVAL;
  if (other->state != SR_SESSION_ESTABLISHED || !other->remote_target ||
      !other->remote_tag || !other->local_tag)
    return SR_ESTATE;
  /* Replaces names the other dialog as its far end will see it
   * (RFC 3891 §3): to-tag is theirs, from-tag ours. */
  size_t n = strlen(other->call_id) + strlen(other->remote_tag) +
             strlen(other->local_tag) + 32;
  char *rep = sr__malloc(n);
  if (!rep) return SR_ENOMEM;
  snprintf(rep, n, "%s;to-tag=%s;from-tag=%s", other->call_id,
           other->remote_tag, other->local_tag);
  char *esc = sr__escape_hvalue(rep);
  sr__free(rep);
  if (!esc) return SR_ENOMEM;
  size_t tn = strlen(other->remote_target) + strlen(esc) + 16;
  char *rt = sr__malloc(tn);
  if (!rt) {
    sr__free(esc);
    return SR_ENOMEM;
  }
  snprintf(rt, tn, "<%s%sReplaces=%s>", other->remote_target,
           strchr(other->remote_target, '?') ? "&" : "?", esc);
  sr__free(esc);
  int rc = send_refer(s, rt, opts, d, user_data, out);
  sr__free(rt);
  return rc;
}

int sr__referrer_incoming_notify(sr_session *s, sr__txn *t,
                                 osip_message_t *req) {
  sr_ua *ua = s->ua;
  struct sr_request v;
  if (!ua->cur_data || sr__request_init(&v, ua->cur_data, ua->cur_len) < 0)
    return 0;
  int id = sr__refer_event_id(sr_request_header(&v, "event", 0));
  sr_referrer *r = NULL;
  if (id >= 0)
    for (sr_referrer *x = s->referrers; x; x = x->next)
      if (id == 0 ? !x->next : x->id == id) r = x;
  if (!r) {
    sr__request_clear(&v);
    if (id == -1) {
      sr__txn_reply(t, 489, NULL, NULL, NULL, NULL, NULL);
      return 1;
    }
    return 0;
  }
  const char *state = sr_request_header(&v, "subscription-state", 0);
  char *st = sr__strdup(state ? state : "");
  int code = 0;
  char *reason = NULL;
  if (sr__sipfrag_parse(v.body, v.body_len, &code, &reason) < 0) code = 0;
  sr__request_clear(&v);
  (void)req;
  sr__txn_reply(t, 200, NULL, NULL, NULL, NULL, NULL);
  sr_referrer_ref(r);
  if (r->d.on_notify && st)
    r->d.on_notify(r, code, reason ? reason : "", st, r->user_data);
  if (st && strncasecmp(st, "terminated", 10) == 0) {
    if (r->bye_on_success && code >= 200 && code < 300 && r->session &&
        r->session->state == SR_SESSION_ESTABLISHED)
      sr_session_bye(r->session);
    close_referrer(r, 0);
  }
  sr_referrer_unref(r);
  sr__free(st);
  sr__free(reason);
  return 1;
}
