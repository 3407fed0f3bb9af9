/*
 * session.c — what Inviter and Invitation share: lifetime, the state
 * machine, the Call-ID index, RFC 3261 §12 dialogs (libosip2's
 * osip_dialog), in-dialog requests both ways, and BYE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

int sr__live_sessions;

#define SESSION_NEXT offsetof(sr_session, hnext)

const char *sr__session_key(void *obj) { return ((sr_session *)obj)->call_id; }

const char *sr_session_state_name(sr_session_state st) {
  static const char *n[] = {"initial", "establishing", "established",
                            "terminating", "terminated"};
  return (unsigned)st <= SR_SESSION_TERMINATED ? n[st] : "unknown";
}

int sr__session_new(sr_ua *ua, sr_session_role role, sr_session **out) {
  if (ua->nsessions >= ua->opt.max_sessions) return SR_ELIMIT;
  sr_session *s = sr__calloc(1, sizeof *s);
  if (!s) return SR_ENOMEM;
  s->refs = 1;
  s->ua = ua;
  s->role = role;
  sr__session_timers_init(s);
  sr__ua_child_add(ua);
  ua->nsessions++;
  sr__live_sessions++;
  *out = s;
  return 0;
}

sr_session *sr_session_ref(sr_session *s) {
  if (s) s->refs++;
  return s;
}

static void session_free(sr_session *s) {
  sr_ua *ua = s->ua;
  sr__free(s->call_id);
  sr__free(s->local_tag);
  sr__free(s->remote_tag);
  sr__free(s->remote_target);
  sr__free(s->remote_identity);
  sr__free(s->remote_body);
  sr__free(s->forked_tags);
  sr__free(s->sdp.last);
  sr__free(s->target);
  sr__free(s->iopt_headers);
  sr__free(s->iopt_body);
  sr__free(s->iopt_ctype);
  sr__free(s->iopt_display);
  if (s->invite) osip_message_free(s->invite);
  osip_free(s->ack);
  osip_free(s->answer);
  sr__txn_unref(s->answer_txn);
  if (s->dialog) {
    osip_dialog_free(s->dialog);
    ua->ndialogs--;
  }
  sr__request_clear(&s->request);
  sr__free(s->request_raw);
  if (s->referred_session) {
    if (s->referred_session->referral_inviter == s)
      s->referred_session->referral_inviter = NULL;
    sr_session_unref(s->referred_session);
  }
  if (s->replaces) sr_session_unref(s->replaces);
  sr__txn_unref(s->ict);
  /* The IST can outlive us (waiting for the ACK of a final answer): a
   * CANCEL crossing that answer must not find a freed session. */
  if (s->ist && s->ist->app == s) s->ist->app = NULL;
  sr__txn_unref(s->ist);
  ua->nsessions--;
  sr__live_sessions--;
  sr__free(s);
  sr__ua_child_del(ua);
}

void sr_session_unref(sr_session *s) {
  if (!s || --s->refs > 0) return;
  session_free(s);
}

void sr_session_set_delegate(sr_session *s, const sr_session_delegate *d,
                             void *user_data) {
  if (!s) return;
  if (d) s->delegate = *d;
  else memset(&s->delegate, 0, sizeof s->delegate);
  s->user_data = user_data;
}

sr_session_state sr_session_get_state(const sr_session *s) {
  return s ? s->state : SR_SESSION_TERMINATED;
}
sr_session_role sr_session_get_role(const sr_session *s) {
  return s ? s->role : SR_ROLE_INVITER;
}
sr_ua *sr_session_get_ua(const sr_session *s) {
  return s && !s->ua->closed ? s->ua : NULL;
}
const char *sr_session_call_id(const sr_session *s) { return s ? s->call_id : NULL; }
const char *sr_session_local_tag(const sr_session *s) { return s ? s->local_tag : NULL; }
const char *sr_session_remote_tag(const sr_session *s) { return s ? s->remote_tag : NULL; }
const char *sr_session_remote_target(const sr_session *s) {
  return s ? s->remote_target : NULL;
}
const char *sr_session_remote_identity(const sr_session *s) {
  return s ? s->remote_identity : NULL;
}
const char *sr_session_remote_body(const sr_session *s) {
  return s ? s->remote_body : NULL;
}
sr_session *sr_session_get_referred_session(const sr_session *s) {
  return s ? s->referred_session : NULL;
}
sr_session *sr_session_get_referral_inviter(const sr_session *s) {
  return s ? s->referral_inviter : NULL;
}

/* ---------------- index ---------------- */

void sr__session_index(sr_session *s) {
  if (s->indexed || !s->call_id) return;
  sr__hash_insert(&s->ua->sessions, SESSION_NEXT, sr__session_key, s);
  s->indexed = 1;
  sr_session_ref(s); /* the UA's reference while the session is live */
}

void sr__session_unindex(sr_session *s) {
  if (!s->indexed) return;
  sr__hash_remove(&s->ua->sessions, SESSION_NEXT, sr__session_key, s);
  s->indexed = 0;
  sr_session_unref(s);
}

sr_session *sr__session_find(sr_ua *ua, const char *call_id,
                             const char *local_tag, const char *remote_tag) {
  if (!call_id || !local_tag) return NULL;
  for (sr_session *s = sr__hash_find(&ua->sessions, SESSION_NEXT,
                                     sr__session_key, call_id);
       s; s = sr__hash_next(s, SESSION_NEXT, sr__session_key, call_id)) {
    if (!s->local_tag || strcmp(s->local_tag, local_tag) != 0) continue;
    if (remote_tag && s->remote_tag && strcmp(s->remote_tag, remote_tag) != 0)
      continue;
    return s;
  }
  return NULL;
}

/* ---------------- state ---------------- */

static void stop_timers(sr_session *s) {
  sr__timer_stop(s->ua, &s->rexmit);
  sr__timer_stop(s->ua, &s->ack_wait);
}

/* An ended session keeps only what its getters return. The dialog and the
 * messages kept for retransmission (INVITE, ACK, 2xx: dozens of blocks
 * each) go now, not when the last handle does: a handle held by a
 * garbage-collected binding (Lua) may outlive the call by many calls.
 * Nothing needs them once TERMINATED: the session is out of the index, an
 * in-dialog request finds no dialog (SR_ESTATE), and no 2xx is
 * retransmitted any more (the callee waits for the ACK before a BYE,
 * RFC 3261 §15). */
static void drop_protocol_state(sr_session *s) {
  if (s->invite) osip_message_free(s->invite);
  osip_free(s->ack);
  s->invite = NULL;
  s->ack = NULL;
  sr__session_forget_2xx(s);
  if (s->dialog) {
    osip_dialog_free(s->dialog);
    s->dialog = NULL;
    s->ua->ndialogs--;
  }
}

void sr__session_set_state(sr_session *s, sr_session_state st) {
  if (s->state == st || s->state == SR_SESSION_TERMINATED) return;
  s->state = st;
  sr_session_ref(s);
  if (st == SR_SESSION_TERMINATED) {
    stop_timers(s);
    sr__referral_session_ended(s);
  }
  if (s->delegate.on_state && !s->ua->closed)
    s->delegate.on_state(s, st, s->user_data);
  if (st == SR_SESSION_TERMINATED) {
    sr__session_unindex(s);
    drop_protocol_state(s);
  }
  sr_session_unref(s);
}

void sr__session_close_for_ua(sr_session *s) {
  sr_session_ref(s);
  s->state = SR_SESSION_TERMINATED;
  stop_timers(s);
  sr__referral_session_ended(s);
  sr__session_unindex(s);
  drop_protocol_state(s);
  sr_session_unref(s);
}

/* ---------------- building messages ---------------- */

int sr__add_via(sr_ua *ua, osip_message_t *m, sr_transport tp, int family) {
  sr__listener *l = sr__transport_listener_near(ua, tp, family);
  if (!l) return SR_ETRANSPORT;
  char branch[24], via[sizeof l->via_prefix + sizeof branch + 8];
  sr__random_token(ua, branch, sizeof branch);
  size_t a = strlen(l->via_prefix), b = strlen(branch);
  memcpy(via, l->via_prefix, a);
  memcpy(via + a, branch, b);
  memcpy(via + a + b, ";rport", 7);
  return osip_message_append_via(m, via) == 0 ? 0 : SR_ENOMEM;
}

int sr__add_common(sr_ua *ua, osip_message_t *m, sr_transport tp, int family,
                   int contact) {
  if (contact) {
    char c[sizeof ua->listeners[0]->contact];
    if (sr__contact_for(ua, tp, family, c, sizeof c) < 0) return SR_ETRANSPORT;
    if (osip_message_set_contact(m, c) != 0) return SR_ENOMEM;
  }
  if (MSG_IS_REQUEST(m)) {
    osip_message_set_max_forwards(m, "70");
    osip_message_set_user_agent(m, ua->user_agent);
  }
  if (contact) {
    osip_message_set_allow(m, SR_ALLOW_METHODS);
    osip_message_set_supported(m, SR_SUPPORTED);
  }
  return 0;
}

int sr__peer_from_uri(sr__peer *peer, osip_uri_t *uri, sr_transport tp) {
  if (!uri || !uri->host) return SR_EINVAL;
  if (tp == SR_TRANSPORT_AUTO) {
    osip_uri_param_t *p = NULL;
    osip_uri_uparam_get_byname(uri, "transport", &p);
    tp = p && p->gvalue && strcasecmp(p->gvalue, "tcp") == 0
             ? SR_TRANSPORT_TCP : SR_TRANSPORT_UDP;
  }
  int port = uri->port ? atoi(uri->port) : 5060;
  return sr__peer_set(peer, tp, uri->host, port);
}

/* Builds an in-dialog request from a libosip2 dialog (RFC 3261 §12.2.1.1).
 * Loose routing only: the first Route, if any, is the next hop. */
int sr__dialog_build_request(sr_ua *ua, osip_dialog_t *d, sr_transport tp,
                             int family, const char *method,
                             osip_message_t **out) {
  if (!d || !d->remote_contact_uri || !d->remote_contact_uri->url)
    return SR_ESTATE;
  osip_message_t *m;
  if (osip_message_init(&m) != 0) return SR_ENOMEM;
  osip_message_set_method(m, osip_strdup(method));
  osip_message_set_version(m, osip_strdup("SIP/2.0"));
  int rc = osip_uri_clone(d->remote_contact_uri->url, &m->req_uri);
  if (rc == 0) rc = osip_to_clone(d->remote_uri, &m->to);
  if (rc == 0) rc = osip_from_clone(d->local_uri, &m->from);
  if (rc == 0) rc = osip_message_set_call_id(m, d->call_id);
  if (rc == 0)
    rc = osip_list_clone(&d->route_set, &m->routes,
                         (int (*)(void *, void **))osip_route_clone);
  if (rc == 0) {
    char cseq[48];
    if (strcmp(method, "ACK") != 0) d->local_cseq++;
    if (strlen(method) > 24) rc = SR_EINVAL;
    else sr__put_str(sr__put_str(sr__put_int(cseq, d->local_cseq), " "), method);
    if (rc == 0) rc = osip_message_set_cseq(m, cseq);
  }
  if (rc == 0) rc = sr__add_via(ua, m, tp, family);
  if (rc == 0) rc = sr__add_common(ua, m, tp, family, strcmp(method, "BYE") != 0);
  if (rc != 0) {
    osip_message_free(m);
    return rc < 0 ? rc : SR_ENOMEM;
  }
  *out = m;
  return 0;
}

int sr__session_build_request(sr_session *s, const char *method,
                              osip_message_t **out) {
  return sr__dialog_build_request(s->ua, s->dialog, s->tp,
                                  s->peer.addr.ss_family, method, out);
}

int sr__dialog_hop(osip_dialog_t *d, sr_transport tp, sr__peer *out) {
  osip_uri_t *u = NULL;
  osip_route_t *r = d ? osip_list_get(&d->route_set, 0) : NULL;
  if (r) u = r->url;
  else if (d && d->remote_contact_uri) u = d->remote_contact_uri->url;
  return u ? sr__peer_from_uri(out, u, tp) : SR_EINVAL;
}

/* Next hop of in-dialog requests: first Route, else the remote target. */
void sr__dialog_peer(osip_dialog_t *d, sr_transport tp, sr__peer *peer) {
  sr__peer p;
  if (sr__dialog_hop(d, tp, &p) == 0) {
    /* A TCP dialog keeps using the connection it was set up on. */
    p.conn = peer->conn;
    *peer = p;
  }
}

void sr__session_update_peer(sr_session *s) {
  sr__dialog_peer(s->dialog, s->tp, &s->peer);
}

int sr__session_send(sr_session *s, osip_message_t *req,
                     const sr__txn_owner *ops, void *owner, sr__txn **out) {
  return sr__txn_send_request(s->ua, req, &s->peer, ops, owner, out);
}

/* ---------------- BYE ---------------- */

static void owner_ref(void *o) { sr_session_ref(o); }
static void owner_unref(void *o) { sr_session_unref(o); }

static void bye_done(void *owner, sr__txn *t, osip_message_t *resp) {
  (void)t;
  if (resp->status_code >= 200) sr__session_set_state(owner, SR_SESSION_TERMINATED);
}
static void bye_failed(void *owner, sr__txn *t, int code) {
  (void)t;
  (void)code;
  sr__session_set_state(owner, SR_SESSION_TERMINATED);
}
static const sr__txn_owner bye_ops = {bye_done, bye_failed, owner_ref,
                                      owner_unref};

int sr__session_send_bye(sr_session *s) {
  char branch[SR__BRANCH_LEN], *buf = NULL;
  size_t len = 0;
  osip_dialog_t *d = s->dialog;
  int rc = d ? sr__dialog_write_request(s->ua, d, s->tp, s->peer.addr.ss_family,
                                        "BYE", (unsigned long)++d->local_cseq,
                                        NULL, NULL, NULL, branch, &buf, &len)
             : SR_ESTATE;
  if (rc < 0) {
    sr__session_set_state(s, SR_SESSION_TERMINATED);
    return rc;
  }
  sr__session_set_state(s, SR_SESSION_TERMINATING);
  rc = sr__txn_send_wire(s->ua, "BYE", branch, buf, len, &s->peer, &bye_ops,
                         s, NULL);
  if (rc < 0) sr__session_set_state(s, SR_SESSION_TERMINATED);
  return rc;
}

int sr__inviter_cancel(sr_session *s);
int sr__session_bye_after_ack(sr_session *s);

int sr_session_bye(sr_session *s) {
  if (!s) return SR_EINVAL;
  if (s->ua->closed || s->state >= SR_SESSION_TERMINATING) return SR_ECLOSED;
  if (s->state == SR_SESSION_INITIAL) return SR_ESTATE;
  if (s->state == SR_SESSION_ESTABLISHING && s->role == SR_ROLE_INVITER)
    return sr__inviter_cancel(s);
  return sr__session_bye_after_ack(s);
}

/* ---------------- incoming in-dialog requests ---------------- */

/* RFC 3261 §12.2.2: an accepted target refresh request replaces the
 * remote target with its Contact. In-dialog requests are written from
 * the dialog's remote_contact_uri and sent to s->peer: both follow. */
void sr__session_refresh_target(sr_session *s, osip_message_t *req) {
  osip_contact_t *c = osip_list_get(&req->contacts, 0), *copy;
  char *text = NULL;
  if (!c || !c->url || !s->dialog || sr__uri_to_str(c->url, &text) != 0)
    return;
  if (osip_contact_clone(c, &copy) != 0) {
    osip_free(text);
    return;
  }
  osip_contact_free(s->dialog->remote_contact_uri);
  s->dialog->remote_contact_uri = copy;
  sr__free(s->remote_target);
  s->remote_target = sr__strdup(text);
  osip_free(text);
  sr__session_update_peer(s);
}

/* The 2xx to a re-INVITE (resp, taken): the target refreshed, then sent
 * and kept until its ACK like the first INVITE's. */
static void send_reinvite_2xx(sr_session *s, sr__txn *t, osip_message_t *req,
                              osip_message_t *resp) {
  char *buf;
  size_t len;
  int rc = sr__txn_serialise(resp, &buf, &len);
  osip_message_free(resp);
  if (rc < 0) {
    sr__txn_reply(t, 500, NULL, NULL, NULL, NULL, NULL);
    return;
  }
  sr__session_refresh_target(s, req);
  sr__session_send_2xx(s, t, 200, buf, len);
}

void sr__session_on_request(sr_session *s, sr__txn *t, osip_message_t *req) {
  sr_ua *ua = s->ua;
  const char *m = req->sip_method;
  osip_dialog_t *d = s->dialog;
  if (!d && strcmp(m, "REFER") == 0 && s->state < SR_SESSION_TERMINATING) {
    /* An early dialog: the referral layer answers 403 (validate()). */
    sr__referral_incoming(ua, s, t, req);
    return;
  }
  if (!d && strcmp(m, "BYE") == 0 && sr__invitation_early_bye(s, t, req))
    return;
  if (!d || s->state == SR_SESSION_TERMINATED) {
    sr__ua_reply(ua, t, 481, NULL, NULL);
    return;
  }
  int cseq = atoi(req->cseq->number);
  if (d->remote_cseq > 0 && cseq <= d->remote_cseq) {
    /* RFC 3261 §12.2.2: out of order, unless it is the re-INVITE whose
     * 2xx awaits its ACK, retransmitted. */
    if (!sr__session_resend_2xx(s, t, req))
      sr__txn_reply(t, 500, "Out of Order CSeq", NULL, NULL, NULL, NULL);
    return;
  }
  d->remote_cseq = cseq;
  sr_session_ref(s);
  if (strcmp(m, "BYE") == 0) {
    sr__txn_reply(t, 200, NULL, NULL, NULL, NULL, NULL);
    if (s->delegate.on_bye) s->delegate.on_bye(s, s->user_data);
    sr__session_set_state(s, SR_SESSION_TERMINATED);
  } else if (strcmp(m, "REFER") == 0) {
    sr__referral_incoming(ua, s, t, req);
  } else if (strcmp(m, "SUBSCRIBE") == 0) {
    sr__referral_subscribe(s, t);
  } else if (strcmp(m, "NOTIFY") == 0) {
    if (!sr__referrer_incoming_notify(s, t, req))
      sr__txn_reply(t, 481, "Subscription Does Not Exist", NULL, NULL, NULL,
                    NULL);
  } else if (strcmp(m, "INVITE") == 0) {
    /* A re-INVITE (hold, refresh): keep the session, answer with our SDP. */
    osip_message_t *resp;
    const char *sdp = NULL, *warning = NULL;
    if (sr__session_sdp(s, req, &sdp, &warning) == SR_EPARSE) {
      /* RFC 3261 §14.2: refused, the session stays as it was. */
      sr__txn_reply(t, 488, NULL, warning, NULL, NULL, NULL);
    } else if (sr__build_response(ua, req, 200, NULL, NULL, &resp) == 0) {
      sr__add_common(ua, resp, s->tp, s->peer.addr.ss_family, 1);
      sr__set_body(resp, sdp, "application/sdp");
      send_reinvite_2xx(s, t, req, resp);
    }
  } else if (strcmp(m, "OPTIONS") == 0) {
    sr__ua_options_reply(ua, t);
  } else if (strcmp(m, "INFO") == 0) {
    /* RFC 6086 §4.2.2: this UA receives no Info Package (its Recv-Info is
     * empty); a legacy INFO, without one, is taken and ignored. */
    osip_header_t *pkg = NULL;
    if (osip_message_header_get_byname(req, "info-package", 0, &pkg) >= 0)
      sr__txn_reply(t, 469, "Bad Info Package", "Recv-Info: ", NULL, NULL,
                    NULL);
    else
      sr__txn_reply(t, 200, NULL, NULL, NULL, NULL, NULL);
  } else {
    /* UPDATE among them: not in Allow, so no offer to answer in it. */
    sr__txn_reply(t, 405, NULL, "Allow: " SR_ALLOW_METHODS, NULL, NULL, NULL);
  }
  sr_session_unref(s);
}
