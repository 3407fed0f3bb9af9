/*
 * invitation.c — the UAS side of an INVITE session: 100/18x/2xx/3xx-6xx,
 * the 2xx retransmitted until ACK (RFC 3261 §13.3.1.4), CANCEL (487), and
 * INVITE with Replaces (RFC 3891).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void sr_response_options_init(sr_response_options *o) {
  if (o) memset(o, 0, sizeof *o);
}

static void rexmit_fire(void *arg);
static void ack_timeout(void *arg);
static void stop_waiting(sr_session *s);

static char *uri_string(osip_uri_t *u) {
  char *s = NULL, *out;
  if (!u || sr__uri_to_str(u, &s) != 0) return NULL;
  out = sr__strdup(s);
  osip_free(s);
  return out;
}

/* An INVITE retransmitted after our 2xx ended its IST: answer it again. */
static int absorb_retransmission(sr_ua *ua, sr__txn *t, osip_message_t *req,
                                 const char *cid) {
  const char *ftag = sr__tag_of(req->from);
  for (sr_session *s = sr__hash_find(&ua->sessions, offsetof(sr_session, hnext),
                                     sr__session_key, cid);
       s; s = sr__hash_next(s, offsetof(sr_session, hnext), sr__session_key,
                            cid)) {
    if (s->role != SR_ROLE_INVITATION || !s->remote_tag || !ftag ||
        strcmp(s->remote_tag, ftag) != 0)
      continue;
    /* Otherwise RFC 3261 §8.2.2.2: merged with one already handled. */
    if (!sr__session_resend_2xx(s, t, req))
      sr__txn_reply(t, 482, "Merged Request", NULL, NULL, NULL, NULL);
    return 1;
  }
  return 0;
}

static void invitation_new(sr_ua *ua, sr__txn *t, osip_message_t *req,
                           const char *cid) {
  if (absorb_retransmission(ua, t, req, cid)) return;
  sr_session *replaced = NULL;
  int code = sr__replaces_match(ua, req, &replaced);
  if (code) {
    sr__log(ua, SR_LOG_INFO, "INVITE with Replaces refused: %d", code);
    sr__ua_reply(ua, t, code, NULL, NULL);
    return;
  }
  sr_session *s;
  int rc = sr__session_new(ua, SR_ROLE_INVITATION, &s);
  if (rc < 0) {
    sr__ua_reply(ua, t, 503, rc == SR_ELIMIT ? "Too Many Sessions" : NULL,
                 "Retry-After: 5");
    return;
  }
  char tag[16];
  sr__random_token(ua, tag, sizeof tag);
  s->local_tag = sr__strdup(tag);
  s->call_id = sr__strdup(cid);
  const char *ftag = sr__tag_of(req->from);
  s->remote_tag = ftag ? sr__strdup(ftag) : NULL;
  s->remote_identity = uri_string(req->from->url);
  osip_contact_t *c = osip_list_get(&req->contacts, 0);
  s->remote_target = c ? uri_string(c->url) : NULL;
  osip_body_t *b = osip_list_get(&req->bodies, 0);
  if (b && b->body) s->remote_body = sr__strdup(b->body);
  s->tp = t->peer.tp;
  s->peer = t->peer;
  /* The view is parsed when first asked for: most programs never do. */
  if (ua->cur_data && (s->request_raw = sr__malloc(ua->cur_len + 1))) {
    memcpy(s->request_raw, ua->cur_data, ua->cur_len);
    s->request_raw[ua->cur_len] = 0;
    s->request_raw_len = ua->cur_len;
  }
  s->ist = sr__txn_ref(t);
  t->app = s;
  s->replaces = replaced;
  if (replaced) sr_session_ref(replaced);
  if (!s->local_tag || !s->call_id || !s->remote_tag) {
    sr__txn_reply(t, !s->remote_tag ? 400 : 500,
                  !s->remote_tag ? "Missing From Tag" : NULL, NULL, NULL, NULL,
                  NULL);
    sr_session_unref(s);
    return;
  }
  sr__session_index(s);
  if (ua->delegate.on_invite) {
    sr__txn_ref(t);
    ua->delegate.on_invite(ua, s, ua->user_data);
    /* RFC 3261 §17.2.1: 100 Trying only when the handler did not answer
     * from inside the callback (one datagram less per answered call). */
    if (sr__txn_pending(t) && !t->wire)
      sr__txn_reply(t, 100, NULL, NULL, NULL, NULL, NULL);
    sr__txn_unref(t);
  } else {
    sr_response_options o;
    sr_response_options_init(&o);
    o.status_code = 480;
    sr_invitation_reject(s, &o);
  }
  sr_session_unref(s); /* the UA's index holds it while it is live */
}

void sr__invitation_new(sr_ua *ua, sr__txn *t, osip_message_t *req) {
  char buf[SR__CID_BUF], *tmp;
  const char *cid = sr__call_id_text(req->call_id, buf, sizeof buf, &tmp);
  if (!cid) {
    sr__ua_reply(ua, t, 500, NULL, NULL);
    return;
  }
  invitation_new(ua, t, req, cid);
  sr__free(tmp);
}

static int check(sr_session *s) {
  if (!s) return SR_EINVAL;
  if (s->role != SR_ROLE_INVITATION) return SR_EROLE;
  if (s->ua->closed || s->state >= SR_SESSION_TERMINATING) return SR_ECLOSED;
  if (s->state != SR_SESSION_INITIAL || !sr__txn_pending(s->ist)) return SR_ESTATE;
  return 0;
}

static int build(sr_session *s, int code, const sr_response_options *o,
                 int contact, const char *default_body, osip_message_t **out) {
  osip_message_t *req = sr__txn_request(s->ist), *r;
  if (!req) return SR_ECLOSED;
  int rc = sr__build_response(s->ua, req, code, o ? o->reason_phrase : NULL,
                              s->local_tag, &r);
  if (rc < 0) return rc;
  if (contact) rc = sr__add_common(s->ua, r, s->tp, s->peer.addr.ss_family, 1);
  if (rc == 0 && o) rc = sr__add_headers(r, o->extra_headers);
  if (rc == 0) {
    const char *body = o && o->body ? o->body : default_body;
    const char *ct = o && o->body && o->content_type ? o->content_type
                                                     : "application/sdp";
    rc = sr__set_body(r, body, ct);
  }
  if (rc < 0) {
    osip_message_free(r);
    return rc;
  }
  *out = r;
  return 0;
}

static int respond(sr_session *s, int code, const sr_response_options *o,
                   int contact) {
  osip_message_t *r;
  int rc = build(s, code, o, contact, NULL, &r);
  return rc < 0 ? rc : sr__txn_respond(s->ist, r);
}

/* Progress and accept write Contact; a reject (a 3xx) may carry one. */
#define SR__HDRS_ANSWER (SR__HDRS_RESPONSE | SR__H_CONTACT)

int sr_invitation_progress(sr_session *s, const sr_response_options *o) {
  int rc = check(s);
  if (rc == 0) rc = sr__check_response(s->ua, o, SR__HDRS_ANSWER);
  if (rc < 0) return rc;
  int code = o && o->status_code ? o->status_code : 180;
  if (code < 101 || code > 199) return SR_EINVAL;
  return respond(s, code, o, 1);
}

/* RFC 3261 §13.3.1.3: an offer the default SDP cannot answer gets 488
 * (the application could have answered it with a body of its own). */
static int refuse_offer(sr_session *s, const char *warning) {
  sr_response_options o;
  sr_response_options_init(&o);
  o.status_code = 488;
  o.extra_headers = warning;
  int rc = sr_invitation_reject(s, &o);
  return rc < 0 ? rc : SR_EPARSE;
}

int sr_invitation_accept(sr_session *s, const sr_response_options *o) {
  int rc = check(s);
  if (rc == 0) rc = sr__check_response(s->ua, o, SR__HDRS_ANSWER);
  if (rc < 0) return rc;
  int code = o && o->status_code ? o->status_code : 200;
  if (code < 200 || code > 299) return SR_EINVAL;
  sr_ua *ua = s->ua;
  const char *sdp = NULL, *warning = NULL;
  if (!(o && o->body) &&
      (rc = sr__session_sdp(s, sr__txn_request(s->ist), &sdp, &warning)) < 0)
    return rc == SR_EPARSE ? refuse_offer(s, warning) : rc;
  osip_message_t *r = NULL;
  rc = build(s, code, o, 1, sdp, &r);
  if (rc < 0) return rc;
  /* The dialog and the bytes for retransmissions come first: the IST ends
   * (and frees the INVITE) as soon as it sends a 2xx. */
  char *buf;
  size_t len;
  if ((rc = sr__txn_serialise(r, &buf, &len)) < 0) {
    osip_message_free(r);
    return rc;
  }
  if (osip_dialog_init_as_uas(&s->dialog, sr__txn_request(s->ist), r) == 0) {
    ua->ndialogs++;
    sr__session_update_peer(s);
  } else {
    s->dialog = NULL;
  }
  osip_message_free(r);
  sr_session_ref(s);
  rc = sr__session_send_2xx(s, s->ist, code, buf, len);
  sr__session_set_state(s, SR_SESSION_ESTABLISHING);
  if (s->replaces && s->replaces->state < SR_SESSION_TERMINATING) {
    /* RFC 3891 §3: the replaced dialog ends once this one is accepted. */
    sr_session *old = s->replaces;
    if (old->state == SR_SESSION_ESTABLISHED) sr__session_send_bye(old);
    else sr_session_bye(old);
  }
  sr_session_unref(s);
  return rc;
}

int sr_invitation_reject(sr_session *s, const sr_response_options *o) {
  int rc = check(s);
  if (rc == 0) rc = sr__check_response(s->ua, o, SR__HDRS_RESPONSE);
  if (rc < 0) return rc;
  int code = o && o->status_code ? o->status_code : 480;
  if (code < 300 || code > 699) return SR_EINVAL;
  sr_session_ref(s);
  rc = respond(s, code, o, 0);
  sr__session_set_state(s, SR_SESSION_TERMINATED);
  sr_session_unref(s);
  return rc;
}

const sr_request *sr_invitation_get_request(const sr_session *s) {
  if (!s || s->role != SR_ROLE_INVITATION) return NULL;
  if (s->request_raw) {
    /* Not const underneath: the view is filled in on first use. */
    sr_session *w = (sr_session *)s;
    sr__request_init(&w->request, w->request_raw, w->request_raw_len);
    sr__free(w->request_raw);
    w->request_raw = NULL;
  }
  return &s->request;
}

sr_session *sr_invitation_get_replaced(const sr_session *s) {
  return s ? s->replaces : NULL;
}

/* bye() while our 2xx to an INVITE (the first or a re-INVITE) awaits its
 * ACK: RFC 3261 §15 holds the BYE until the ACK comes, or until 64*T1
 * without one. The call reports "terminating" at once; the 2xx is still
 * sent again meanwhile, or the ACK would never come. */
int sr__session_bye_after_ack(sr_session *s) {
  if (!s->awaiting_ack) return sr__session_send_bye(s);
  s->bye_after_ack = 1;
  sr__session_set_state(s, SR_SESSION_TERMINATING);
  return 0;
}

/* The held BYE goes: the ACK came, or the wait for it ended. */
static void send_held_bye(sr_session *s) {
  sr_session_ref(s);
  stop_waiting(s);
  s->bye_after_ack = 0;
  sr__session_send_bye(s);
  sr_session_unref(s);
}

void sr__session_on_ack(sr_session *s, osip_message_t *ack) {
  if (!s->awaiting_ack || !ack->cseq || !ack->cseq->number ||
      strtoul(ack->cseq->number, NULL, 10) != s->answer_cseq)
    return;
  /* The UAC stopped retransmitting its INVITE: the copy of our 2xx kept
   * for those can go. */
  sr__session_forget_2xx(s);
  if (s->bye_after_ack) {
    send_held_bye(s);
    return;
  }
  if (s->role == SR_ROLE_INVITATION && s->state == SR_SESSION_ESTABLISHING)
    sr__session_set_state(s, SR_SESSION_ESTABLISHED);
}

void sr__session_on_cancel(sr_session *s) {
  if (s->role != SR_ROLE_INVITATION || s->state != SR_SESSION_INITIAL) return;
  sr_session_ref(s);
  respond(s, 487, NULL, 0);
  sr__session_set_state(s, SR_SESSION_TERMINATED);
  sr_session_unref(s);
}

/* RFC 3261 §15: a BYE in our early dialog (it names the To tag of our
 * provisional response) ends the call as a CANCEL would: 200 to it, 487
 * to the INVITE still pending (§15.1.2). 0 if s has no early dialog that
 * the BYE belongs to: it gets 481. */
int sr__invitation_early_bye(sr_session *s, sr__txn *t, osip_message_t *req) {
  const char *ftag = sr__tag_of(req->from);
  osip_message_t *inv = sr__txn_request(s->ist);
  if (s->role != SR_ROLE_INVITATION || s->state != SR_SESSION_INITIAL ||
      !inv || !sr__txn_pending(s->ist) || !ftag || !s->remote_tag ||
      strcmp(ftag, s->remote_tag) != 0)
    return 0;
  /* §12.2.2: the remote CSeq of the early dialog is the INVITE's. */
  if (strtoul(req->cseq->number, NULL, 10) <=
      strtoul(inv->cseq->number, NULL, 10)) {
    sr__txn_reply(t, 500, "Out of Order CSeq", NULL, NULL, NULL, NULL);
    return 1;
  }
  sr__txn_reply(t, 200, NULL, NULL, NULL, NULL, NULL);
  sr__session_on_cancel(s);
  return 1;
}

/* ---------------- a 2xx to an INVITE, until its ACK ---------------- */

/* RFC 3261 §13.3.1.4: the UAS core, not the transaction (which a 2xx
 * ends), retransmits a 2xx to an INVITE over UDP, T1 doubling up to T2,
 * until the ACK; without one in 64*T1 (over TCP too) the dialog ends with
 * a BYE. The same for the first INVITE and for a re-INVITE, whichever
 * side set up the call. */
void sr__session_timers_init(sr_session *s) {
  sr__timer_init(&s->rexmit, rexmit_fire, s);
  sr__timer_init(&s->ack_wait, ack_timeout, s);
}

static void stop_waiting(sr_session *s) {
  s->awaiting_ack = 0;
  sr__timer_stop(s->ua, &s->rexmit);
  sr__timer_stop(s->ua, &s->ack_wait);
}

void sr__session_forget_2xx(sr_session *s) {
  stop_waiting(s);
  osip_free(s->answer);
  s->answer = NULL;
  sr__txn_unref(s->answer_txn);
  s->answer_txn = NULL;
}

int sr__session_send_2xx(sr_session *s, sr__txn *t, int code, char *buf,
                         size_t len) {
  sr_ua *ua = s->ua;
  osip_message_t *req = sr__txn_request(t);
  unsigned long cseq = req && req->cseq && req->cseq->number
                           ? strtoul(req->cseq->number, NULL, 10) : 0;
  char *copy = osip_malloc(len + 1);
  if (copy) memcpy(copy, buf, len + 1);
  int rc = sr__itxn_respond_wire(t, code, buf, len);
  if (rc < 0) {
    osip_free(copy);
    return rc;
  }
  /* A newer re-INVITE's 2xx supersedes one still without its ACK. */
  sr__session_forget_2xx(s);
  s->answer = copy;
  s->answer_len = len;
  s->answer_code = code;
  s->answer_cseq = cseq;
  s->answer_txn = sr__txn_ref(t);
  s->awaiting_ack = 1;
  if (!sr__txn_reliable(t)) {
    s->rexmit_interval = ua->opt.t1_ms;
    sr__timer_start(ua, &s->rexmit, s->rexmit_interval);
  }
  sr__timer_start(ua, &s->ack_wait, 64 * ua->opt.t1_ms);
  return rc;
}

int sr__session_resend_2xx(sr_session *s, sr__txn *t, osip_message_t *req) {
  if (!s->answer || !MSG_IS_INVITE(req) || !req->cseq || !req->cseq->number ||
      strtoul(req->cseq->number, NULL, 10) != s->answer_cseq)
    return 0;
  char *copy = osip_malloc(s->answer_len + 1);
  if (copy) {
    memcpy(copy, s->answer, s->answer_len + 1);
    sr__itxn_respond_wire(t, s->answer_code, copy, s->answer_len);
  }
  return 1;
}

/* A call whose BYE waits for this ACK still waits for it. */
static int still_waiting(const sr_session *s) {
  return s->awaiting_ack &&
         (s->state < SR_SESSION_TERMINATING ||
          (s->bye_after_ack && s->state == SR_SESSION_TERMINATING));
}

/* Both timers hold the session: the message hook or a state callback may
 * close the UA, which lets go of every call. */

static void rexmit_fire(void *arg) {
  sr_session *s = arg;
  if (!still_waiting(s) || !s->answer) return;
  sr_session_ref(s);
  sr__transport_send(s->ua, &s->answer_txn->peer, s->answer, s->answer_len);
  if (s->awaiting_ack && !s->ua->closed) {
    s->rexmit_interval *= 2;
    if (s->rexmit_interval > s->ua->opt.t2_ms)
      s->rexmit_interval = s->ua->opt.t2_ms;
    sr__timer_start(s->ua, &s->rexmit, s->rexmit_interval);
  }
  sr_session_unref(s);
}

static void ack_timeout(void *arg) {
  sr_session *s = arg;
  if (!still_waiting(s)) return;
  sr__log(s->ua, SR_LOG_WARNING, "no ACK for the 2xx: ending the call");
  send_held_bye(s);
}
