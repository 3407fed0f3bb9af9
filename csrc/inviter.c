/*
 * inviter.c — the UAC side of an INVITE session: INVITE, ACK for 2xx
 * (re-sent when the 2xx is), CANCEL, and digest authentication on 401/407.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void sr_inviter_options_init(sr_inviter_options *o) {
  if (o) memset(o, 0, sizeof *o);
}

/* Refused before anything is built: text that would break the INVITE or
 * add header lines, a header the core writes, a target that cannot fit. */
static int check_inviter(sr_ua *ua, const char *target,
                         const sr_inviter_options *o) {
  int rc = sr__check_target(ua, target);
  if (rc == 0 && o) rc = sr__check_headers(ua, o->extra_headers, SR__HDRS_REQUEST);
  if (rc == 0 && o) rc = sr__check_value(ua, "content_type", o->content_type);
  if (rc == 0 && o)
    rc = sr__check_value(ua, "from_display_name", o->from_display_name);
  return rc;
}

int sr_ua_make_inviter(sr_ua *ua, const char *target,
                       const sr_inviter_options *opts, sr_session **out) {
  if (!ua || !target || !out) return SR_EINVAL;
  if (ua->closed) return SR_ECLOSED;
  /* Accept "<sip:...>" as well as a bare URI. */
  char *t = sr__strdup(target[0] == '<' ? target + 1 : target);
  if (!t) return SR_ENOMEM;
  char *gt = strchr(t, '>');
  if (target[0] == '<') {
    if (!gt) {
      sr__free(t);
      return SR_EINVAL;
    }
    *gt = 0;
  }
  int bad = check_inviter(ua, t, opts);
  if (bad < 0) {
    sr__free(t);
    return bad;
  }
  osip_uri_t *u = NULL;
  int ok = osip_uri_init(&u) == 0 && osip_uri_parse(u, t) == 0 && u->scheme &&
           u->host && (!strcasecmp(u->scheme, "sip") || !strcasecmp(u->scheme, "sips"));
  sr__peer probe;
  sr_transport tp = opts ? opts->transport : SR_TRANSPORT_AUTO;
  /* A sips target wants TLS on every hop (RFC 3261 §26.2.2), which this
   * library does not speak: refused rather than sent in the clear. With an
   * outbound proxy the target's host is the proxy's to resolve; without
   * one it must be an address (SR_EADDR: a name). */
  int rc = !ok ? SR_EINVAL
           : !strcasecmp(u->scheme, "sips") ? SR_ETRANSPORT
           : ua->proxy ? sr__proxy_peer(ua, &probe)
                       : sr__peer_from_uri(&probe, u, tp);
  if (u) osip_uri_free(u);
  if (rc < 0) {
    sr__free(t);
    return rc;
  }
  sr_session *s;
  rc = sr__session_new(ua, SR_ROLE_INVITER, &s);
  if (rc < 0) {
    sr__free(t);
    return rc;
  }
  s->target = t;
  s->peer = probe;
  s->tp = probe.tp;
  s->via_proxy = ua->proxy != NULL;
  if (opts) {
    s->iopt = *opts;
    s->iopt_headers = sr__strdup(opts->extra_headers);
    s->iopt_body = sr__strdup(opts->body);
    s->iopt_ctype = sr__strdup(opts->content_type);
    s->iopt_display = sr__strdup(opts->from_display_name);
  }
  *out = s;
  return 0;
}

static void owner_ref(void *o) { sr_session_ref(o); }
static void owner_unref(void *o) { sr_session_unref(o); }

static void tell_watch(sr_session *s, int code, const char *reason) {
  if (s->watch.on_progress)
    s->watch.on_progress(s->watch.ctx, s, code, reason);
}

/* Where in-dialog requests go once the 2xx made the dialog. After the
 * outbound proxy, the hop is the Record-Route or Contact, over the
 * transport its URI names (RFC 3263 §4.1), on a connection of its own. A
 * host name there is not resolved in the loop: the proxy stays the hop. */
static void dialog_hop(sr_session *s) {
  if (!s->via_proxy) {
    sr__session_update_peer(s);
    return;
  }
  sr__peer p;
  if (sr__dialog_hop(s->dialog, SR_TRANSPORT_AUTO, &p) == 0) {
    s->peer = p;
    s->tp = p.tp;
  } else {
    sr__log(s->ua, SR_LOG_DEBUG, "the dialog's next hop names a host: "
            "in-dialog requests go to the outbound proxy");
  }
}

static void on_invite_response(void *owner, sr__txn *t, osip_message_t *r);
static void on_invite_failure(void *owner, sr__txn *t, int code);
static const sr__txn_owner invite_ops = {on_invite_response, on_invite_failure,
                                         owner_ref, owner_unref};

static int send_invite(sr_session *s, osip_message_t *inv) {
  osip_message_t *copy;
  if (osip_message_clone(inv, &copy) != 0) {
    osip_message_free(inv);
    return SR_ENOMEM;
  }
  if (s->invite) osip_message_free(s->invite);
  s->invite = copy;
  sr__txn_unref(s->ict);
  s->ict = NULL;
  return sr__txn_send_request(s->ua, inv, &s->peer, &invite_ops, s, &s->ict);
}

/* "Display" <uri>;tag=t with the display name as an escaped
 * quoted-string (RFC 3261 §25.1); malloc'd. */
static char *name_addr(const char *display, const char *uri, const char *tag) {
  size_t n = strlen(uri) + (tag ? strlen(tag) : 0) + 16 +
             (display ? 2 * strlen(display) : 0);
  char *out = sr__malloc(n), *o = out;
  if (!out) return NULL;
  if (display) {
    *o++ = '"';
    for (const char *d = display; *d; d++) { /* no CR/LF: checked */
      if (*d == '"' || *d == '\\') *o++ = '\\';
      *o++ = *d;
    }
    *o++ = '"';
    *o++ = ' ';
  }
  o += sprintf(o, "<%s>", uri);
  if (tag) sprintf(o, ";tag=%s", tag);
  return out;
}

static int build_invite(sr_session *s, osip_message_t **out) {
  sr_ua *ua = s->ua;
  osip_message_t *m;
  if (osip_message_init(&m) != 0) return SR_ENOMEM;
  osip_message_set_method(m, osip_strdup("INVITE"));
  osip_message_set_version(m, osip_strdup("SIP/2.0"));
  int rc = osip_uri_init(&m->req_uri) == 0 &&
                   osip_uri_parse(m->req_uri, s->target) == 0 ? 0 : SR_EINVAL;
  const char *disp = s->iopt_display ? s->iopt_display : ua->display_name;
  char *from = rc == 0 ? name_addr(disp, ua->uri, s->local_tag) : NULL;
  char *to = rc == 0 ? name_addr(NULL, s->target, NULL) : NULL;
  if (rc == 0 && (!from || !to)) rc = SR_ENOMEM;
  if (rc == 0) rc = osip_message_set_from(m, from) == 0 ? 0 : SR_EINVAL;
  if (rc == 0) rc = osip_message_set_to(m, to) == 0 ? 0 : SR_EINVAL;
  sr__free(from);
  sr__free(to);
  if (rc == 0) rc = osip_message_set_call_id(m, s->call_id) == 0 ? 0 : SR_ENOMEM;
  if (rc == 0) rc = osip_message_set_cseq(m, "1 INVITE") == 0 ? 0 : SR_ENOMEM;
  if (rc == 0) rc = sr__add_via(ua, m, s->tp, s->peer.addr.ss_family);
  if (rc == 0 && sr__proxy_route(ua) &&
      osip_message_set_route(m, sr__proxy_route(ua)) != 0)
    rc = SR_ENOMEM;
  if (rc == 0) rc = sr__add_common(ua, m, s->tp, s->peer.addr.ss_family, 1);
  if (rc == 0) rc = sr__add_headers(m, s->iopt_headers);
  const char *sdp = NULL;
  if (rc == 0 && !s->iopt_body) rc = sr__session_sdp(s, NULL, &sdp, NULL);
  if (rc == 0)
    rc = sr__set_body(m, s->iopt_body ? s->iopt_body : sdp,
                      s->iopt_ctype ? s->iopt_ctype : "application/sdp");
  if (rc != 0) {
    osip_message_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

int sr_inviter_invite(sr_session *s) {
  if (!s) return SR_EINVAL;
  if (s->role != SR_ROLE_INVITER) return SR_EROLE;
  if (s->ua->closed) return SR_ECLOSED;
  if (s->state != SR_SESSION_INITIAL || s->invite) return SR_ESTATE;
  char tag[16], cid[40];
  sr__random_token(s->ua, tag, sizeof tag);
  sr__random_token(s->ua, cid, sizeof cid);
  sr__free(s->local_tag); /* an earlier attempt that failed */
  sr__free(s->call_id);
  s->local_tag = sr__strdup(tag);
  s->call_id = sr__strdup(cid);
  if (!s->local_tag || !s->call_id) return SR_ENOMEM;
  osip_message_t *inv = NULL;
  int rc = build_invite(s, &inv);
  if (rc != 0) {
    tell_watch(s, 503, sr__reason_phrase(503));
    return rc < 0 ? rc : SR_EINVAL;
  }
  sr__session_index(s);
  rc = send_invite(s, inv);
  if (rc < 0) {
    sr__session_unindex(s);
    /* A referral following this Inviter learns it failed locally. */
    tell_watch(s, 503, sr__reason_phrase(503));
    return rc;
  }
  sr__session_set_state(s, SR_SESSION_ESTABLISHING);
  return 0;
}

/* CANCEL (RFC 3261 §9.1): same Request-URI, Call-ID, From, To, CSeq number,
 * top Via and Route as the INVITE. */
static void send_cancel(sr_session *s) {
  osip_message_t *c, *inv = s->invite;
  if (!inv || osip_message_init(&c) != 0) return;
  osip_message_set_method(c, osip_strdup("CANCEL"));
  osip_message_set_version(c, osip_strdup("SIP/2.0"));
  osip_uri_clone(inv->req_uri, &c->req_uri);
  osip_from_clone(inv->from, &c->from);
  osip_to_clone(inv->to, &c->to);
  osip_call_id_clone(inv->call_id, &c->call_id);
  osip_list_clone(&inv->vias, &c->vias, (int (*)(void *, void **))osip_via_clone);
  while (osip_list_size(&c->vias) > 1) {
    osip_via_t *v = osip_list_get(&c->vias, 1);
    osip_list_remove(&c->vias, 1);
    osip_via_free(v);
  }
  char cseq[40];
  snprintf(cseq, sizeof cseq, "%s CANCEL", inv->cseq->number);
  osip_message_set_cseq(c, cseq);
  osip_message_set_max_forwards(c, "70");
  sr__copy_routes(inv, c);
  sr__txn_send_request(s->ua, c, &s->peer, NULL, NULL, NULL);
}

int sr__inviter_cancel(sr_session *s) {
  if (s->canceled) return 0;
  s->canceled = 1;
  /* No CANCEL before a provisional response (§9.1); it goes out then. */
  if (s->remote_tag || s->cancel_pending == 2) send_cancel(s);
  else s->cancel_pending = 1;
  return 0;
}

int sr_inviter_cancel(sr_session *s) {
  if (!s) return SR_EINVAL;
  if (s->role != SR_ROLE_INVITER) return SR_EROLE;
  if (s->ua->closed || s->state >= SR_SESSION_TERMINATING) return SR_ECLOSED;
  if (s->state != SR_SESSION_ESTABLISHING) return SR_ESTATE;
  return sr__inviter_cancel(s);
}

static void send_ack(sr_session *s) {
  if (!s->ack) {
    /* The ACK carries the INVITE's CSeq number (§13.2.2.4). */
    char branch[SR__BRANCH_LEN];
    unsigned long cseq = strtoul(s->invite->cseq->number, NULL, 10);
    if (sr__dialog_write_request(s->ua, s->dialog, s->tp,
                                 s->peer.addr.ss_family, "ACK", cseq, NULL,
                                 NULL, NULL, branch, &s->ack,
                                 &s->ack_len) < 0)
      return;
  }
  sr__transport_send(s->ua, &s->peer, s->ack, s->ack_len);
}

void sr__session_on_2xx_retransmit(sr_session *s) {
  if (s->role == SR_ROLE_INVITER && s->ack) send_ack(s);
}

/* Notes a forked branch's To tag; 1 if it was new. */
static int remember_fork(sr_session *s, const char *tag) {
  size_t n = s->forked_tags ? strlen(s->forked_tags) : 0, k = strlen(tag);
  for (const char *p = s->forked_tags; p && *p;) {
    const char *sp = strchr(p, ' ');
    if ((size_t)(sp - p) == k && memcmp(p, tag, k) == 0) return 0;
    p = sp + 1;
  }
  char *t = sr__realloc(s->forked_tags, n + k + 2);
  if (!t) return 1; /* unremembered: a retransmission gets another BYE */
  memcpy(t + n, tag, k);
  t[n + k] = ' ';
  t[n + k + 1] = '\0';
  s->forked_tags = t;
  return 1;
}

/* RFC 3261 §13.2.2.4: behind a forking proxy, every 2xx to our INVITE is
 * ACKed, each in a dialog of its own; the call keeps the first, so the
 * others are then ended with BYE. A branch's retransmitted 2xx gets its
 * ACK again, not another BYE. */
void sr__inviter_on_forked_2xx(sr_session *s, osip_message_t *r) {
  const char *tag = sr__tag_of(r->to);
  osip_dialog_t *d;
  if (s->role != SR_ROLE_INVITER || !s->dialog || !tag || !r->cseq ||
      !r->cseq->number || osip_dialog_init_as_uac(&d, r) != 0)
    return;
  sr__peer peer = s->peer;
  sr__dialog_peer(d, s->tp, &peer);
  unsigned long cseq = strtoul(r->cseq->number, NULL, 10);
  char branch[SR__BRANCH_LEN], *buf;
  size_t len;
  if (sr__dialog_write_request(s->ua, d, s->tp, peer.addr.ss_family, "ACK",
                               cseq, NULL, NULL, NULL, branch, &buf, &len) == 0) {
    sr__transport_send(s->ua, &peer, buf, len);
    osip_free(buf);
  }
  if (!s->ua->closed && remember_fork(s, tag)) {
    sr__log(s->ua, SR_LOG_INFO,
            "a 2xx from another branch (To tag %s): ACKed, ended with BYE", tag);
    if (sr__dialog_write_request(s->ua, d, s->tp, peer.addr.ss_family, "BYE",
                                 cseq + 1, NULL, NULL, NULL, branch, &buf,
                                 &len) == 0)
      sr__txn_send_wire(s->ua, "BYE", branch, buf, len, &peer, NULL, NULL,
                        NULL);
  }
  osip_dialog_free(d);
}

static int retry_with_auth(sr_session *s, osip_message_t *r) {
  if (s->auth_tries >= 2) return 0;
  osip_message_t *inv;
  /* Same Call-ID and tags, CSeq + 1, a new branch. */
  if (sr__answer_challenge(s->ua, s->invite, r, atoi(s->invite->cseq->number) + 1,
                           s->tp, s->peer.addr.ss_family, &inv) < 0)
    return 0;
  s->auth_tries++;
  return send_invite(s, inv) == 0;
}

static void on_invite_response(void *owner, sr__txn *t, osip_message_t *r) {
  sr_session *s = owner;
  sr_ua *ua = s->ua;
  int code = r->status_code;
  const char *reason = r->reason_phrase ? r->reason_phrase : "";
  if (t != s->ict || s->state >= SR_SESSION_TERMINATING) {
    /* A 2xx to a superseded INVITE: nothing keeps it alive. */
    return;
  }
  sr_session_ref(s);
  if (code < 200) {
    const char *tag = sr__tag_of(r->to);
    if (tag && !s->remote_tag) s->remote_tag = sr__strdup(tag);
    if (s->cancel_pending == 1) {
      s->cancel_pending = 2;
      send_cancel(s);
    } else if (!s->cancel_pending) {
      s->cancel_pending = 2; /* a later cancel may go at once */
    }
    if (s->delegate.on_response) s->delegate.on_response(s, code, reason, s->user_data);
    if (code > 100) tell_watch(s, code, reason);
  } else if (code < 300) {
    if (!s->dialog) {
      if (osip_dialog_init_as_uac(&s->dialog, r) != 0) {
        sr__log(ua, SR_LOG_ERROR, "2xx without a usable dialog (no Contact?)");
        s->dialog = NULL;
      } else {
        ua->ndialogs++;
        s->dialog->local_cseq = atoi(s->invite->cseq->number);
        sr__free(s->remote_tag);
        s->remote_tag = sr__strdup(s->dialog->remote_tag);
        char *c = NULL;
        if (s->dialog->remote_contact_uri && s->dialog->remote_contact_uri->url)
          sr__uri_to_str(s->dialog->remote_contact_uri->url, &c);
        s->remote_target = c ? sr__strdup(c) : NULL;
        osip_free(c);
        char *to = NULL;
        sr__uri_to_str(r->to->url, &to);
        s->remote_identity = to ? sr__strdup(to) : NULL;
        osip_free(to);
        osip_body_t *b = osip_list_get(&r->bodies, 0);
        if (b && b->body) s->remote_body = sr__strdup(b->body);
        dialog_hop(s);
      }
    }
    if (s->dialog) send_ack(s);
    if (s->delegate.on_response) s->delegate.on_response(s, code, reason, s->user_data);
    tell_watch(s, code, reason);
    if (!s->dialog) {
      sr__session_set_state(s, SR_SESSION_TERMINATED);
    } else if (s->canceled) {
      /* CANCEL crossed the 2xx: the call is up; end it (§9.1). */
      sr__session_set_state(s, SR_SESSION_ESTABLISHED);
      sr__session_send_bye(s);
    } else {
      sr__session_set_state(s, SR_SESSION_ESTABLISHED);
    }
  } else {
    if ((code == 401 || code == 407) && !s->canceled && retry_with_auth(s, r)) {
      /* answered by authentication: no progress to report */
    } else {
      if (s->delegate.on_response) s->delegate.on_response(s, code, reason, s->user_data);
      tell_watch(s, code, reason);
      sr__session_set_state(s, SR_SESSION_TERMINATED);
    }
  }
  sr_session_unref(s);
}

static void on_invite_failure(void *owner, sr__txn *t, int code) {
  sr_session *s = owner;
  if (t != s->ict || s->state >= SR_SESSION_TERMINATING) return;
  sr_session_ref(s);
  const char *reason = sr__reason_phrase(code);
  if (s->delegate.on_response) s->delegate.on_response(s, code, reason, s->user_data);
  tell_watch(s, code, reason);
  sr__session_set_state(s, SR_SESSION_TERMINATED);
  sr_session_unref(s);
}
