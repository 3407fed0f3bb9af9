/*
 * notify.c — the notifier side of REFER's implicit subscription
 * (RFC 3515 §2.4.4-5, RFC 6665): NOTIFYs carrying message/sipfrag, sent
 * one at a time per referral so they arrive in CSeq order. A NOTIFY
 * that fails ends the subscription quietly (the new call is not touched).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "referral.h"

static void send_next(sr_referral *r);

static void ref_owner(void *o) { sr_referral_ref(o); }
static void unref_owner(void *o) { sr_referral_unref(o); }

/* A NOTIFY that fails ends the subscription: RFC 6665 §4.2.2 requires it
 * for a timeout and for 404, 405, 410, 416, 480-485, 489, 501 and 604;
 * RFC 3265 §3.2.2 did for any failure but one the notifier can retry (a
 * 401/407 it has credentials for, a Retry-After it honours). This notifier
 * retries no NOTIFY, so any final failure (a transport error or timeout
 * comes as 503 or 408) ends it; the dialog and the new call go on. */
static void notify_done(sr_referral *r, int code) {
  sr__txn_unref(r->in_flight);
  r->in_flight = NULL;
  if (code >= 300) {
    if (r->core_ref)
      sr__log(r->ua, SR_LOG_INFO,
              "NOTIFY for REFER id %d answered %d: subscription ended", r->id,
              code);
    sr__referral_finish(r, SR_REFERRAL_TERMINATED);
    return;
  }
  send_next(r);
}

static void on_response(void *owner, sr__txn *t, osip_message_t *resp) {
  sr_referral *r = owner;
  if (resp->status_code < 200 || t != r->in_flight) return;
  notify_done(r, resp->status_code);
}

static void on_failure(void *owner, sr__txn *t, int code) {
  sr_referral *r = owner;
  if (t != r->in_flight) return;
  notify_done(r, code);
}

static const sr__txn_owner notify_ops = {on_response, on_failure, ref_owner,
                                         unref_owner};

/* The NOTIFY's bytes, written straight from the dialog (no message is
 * built: a transfer sends two or three of them). */
static int write_notify(sr_referral *r, const sr__notify *n,
                        char branch[SR__BRANCH_LEN], char **buf,
                        size_t *len, sr__peer **peer) {
  osip_dialog_t *d;
  sr_transport tp;
  int family;
  if (r->session) {
    d = r->session->dialog;
    tp = r->session->tp;
    family = r->session->peer.addr.ss_family;
    *peer = &r->session->peer;
  } else {
    d = r->dlg;
    tp = r->tp;
    family = r->peer.addr.ss_family;
    *peer = &r->peer;
  }
  if (!d) return SR_ESTATE;
  char extra[128], body[24 + sizeof n->reason];
  char *e = sr__put_int(sr__put_str(extra, "Event: refer;id="), r->id);
  e = sr__put_str(e, "\r\nSubscription-State: ");
  if (strcmp(n->state, "active") == 0) {
    uint64_t now = sr__now_ms();
    unsigned left = r->expires_at > now
                        ? (unsigned)((r->expires_at - now + 999) / 1000) : 0;
    e = sr__put_int(sr__put_str(e, "active;expires="), left);
  } else {
    e = sr__put_str(e, n->state);
  }
  sr__put_str(e, "\r\n");
  char *b = sr__put_int(sr__put_str(body, "SIP/2.0 "), n->code);
  sr__put_str(sr__put_str(sr__put_str(b, " "), n->reason), "\r\n");
  return sr__dialog_write_request(r->ua, d, tp, family, "NOTIFY",
                                  (unsigned long)++d->local_cseq, extra,
                                  "message/sipfrag; version=2.0", body,
                                  branch, buf, len);
}

static void send_next(sr_referral *r) {
  while (!r->in_flight && r->nqueue && !r->ua->closed) {
    sr__notify n = r->queue[0];
    memmove(r->queue, r->queue + 1, (size_t)(r->nqueue - 1) * sizeof n);
    r->nqueue--;
    char branch[SR__BRANCH_LEN], *buf;
    size_t len;
    sr__peer *peer;
    int final = strncmp(n.state, "terminated", 10) == 0;
    if (write_notify(r, &n, branch, &buf, &len, &peer) == 0) {
      sr_referral_ref(r);
      if (sr__txn_send_wire(r->ua, "NOTIFY", branch, buf, len, peer,
                            &notify_ops, r, &r->in_flight) < 0) {
        sr__txn_unref(r->in_flight);
        r->in_flight = NULL;
      }
      if (final) sr__referral_finish(r, SR_REFERRAL_TERMINATED);
      sr_referral_unref(r);
    } else if (final) {
      sr__referral_finish(r, SR_REFERRAL_TERMINATED);
    }
  }
}

void sr__referral_notify(sr_referral *r, int code, const char *reason,
                         const char *state) {
  if (!r->sub_active) return;
  int final = strncmp(state, "terminated", 10) == 0;
  if (r->nqueue == SR_NOTIFY_QUEUE) {
    /* Keep the newest: drop the oldest provisional still waiting. */
    memmove(r->queue, r->queue + 1, (SR_NOTIFY_QUEUE - 1) * sizeof r->queue[0]);
    r->nqueue--;
  }
  sr__notify *n = &r->queue[r->nqueue++];
  n->code = code;
  snprintf(n->reason, sizeof n->reason, "%s", reason ? reason : "");
  /* Keep the sipfrag line one line: a reason with CR/LF is cut there. */
  n->reason[strcspn(n->reason, "\r\n")] = 0;
  n->state = state;
  r->last_code = code;
  memcpy(r->last_reason, n->reason, sizeof r->last_reason);
  if (final) {
    r->sub_active = 0;
    sr__timer_stop(r->ua, &r->expiry);
  }
  sr_referral_ref(r);
  send_next(r);
  sr_referral_unref(r);
}

void sr__referral_expire_in(sr_referral *r, unsigned seconds) {
  r->expires_at = sr__now_ms() + (uint64_t)seconds * 1000u;
  sr__timer_start(r->ua, &r->expiry, (int64_t)seconds * 1000);
}

void sr__referral_notify_last(sr_referral *r, const char *state) {
  sr__referral_notify(r, r->last_code ? r->last_code : 100,
                      r->last_code ? r->last_reason : "Trying", state);
}

int sr__refer_event_id(const char *ev) {
  if (!ev) return -1;
  ev += strspn(ev, " \t");
  if (strncasecmp(ev, "refer", 5) != 0) return -1;
  ev += 5 + strspn(ev + 5, " \t");
  if (*ev != 0 && *ev != ';') return -1;
  while (*ev == ';') {
    ev += 1 + strspn(ev + 1, " \t");
    if (strncasecmp(ev, "id", 2) == 0) {
      const char *v = ev + 2 + strspn(ev + 2, " \t");
      if (*v == '=') { /* ours are CSeq numbers: anything else is no id of ours */
        v += 1 + strspn(v + 1, " \t");
        char *end;
        long id = strtol(v, &end, 10);
        end += strspn(end, " \t");
        return end > v && id > 0 && id < 0x7fffffff && (*end == 0 || *end == ';')
                   ? (int)id : -2;
      }
    }
    ev = strchr(ev, ';');
    if (!ev) break;
  }
  return 0;
}

/* The subscription a SUBSCRIBE names: by id, or without one the only
 * subscription the call has (our NOTIFYs always carry the id; RFC 3515
 * §2.4.6 reads a missing id as the first REFER's). A malformed id (-2)
 * names none. */
static sr_referral *subscription_of(sr_session *s, int id) {
  sr_referral *found = NULL;
  int n = 0;
  for (sr_referral *r = s->referrals; r; r = r->next) {
    if (!r->sub_active) continue;
    if (r->id == id) return r;
    found = r;
    n++;
  }
  return id == 0 && n == 1 ? found : NULL;
}

/* A SUBSCRIBE refreshing a REFER's implicit subscription, or ending it
 * with Expires: 0 (RFC 3515 §2.4.4, RFC 6665): the answer gives
 * the time granted, at most refer_expires_s, and a NOTIFY with the last
 * status follows at once, as RFC 6665 wants after any refresh. */
void sr__referral_subscribe(sr_session *s, sr__txn *t) {
  sr_ua *ua = s->ua;
  struct sr_request v;
  if (!ua->cur_data || sr__request_init(&v, ua->cur_data, ua->cur_len) < 0) {
    sr__txn_reply(t, 500, NULL, NULL, NULL, NULL, NULL);
    return;
  }
  int id = sr__refer_event_id(sr_request_header(&v, "event", 0));
  const char *ex = sr_request_header(&v, "expires", 0);
  char *end = NULL;
  long want = ex ? strtol(ex, &end, 10) : ua->opt.refer_expires_s;
  int bad_expires = ex && (end == ex || *end || want < 0);
  sr__request_clear(&v);
  if (id == -1) {
    sr__txn_reply(t, 489, NULL, "Allow-Events: refer", NULL, NULL, NULL);
    return;
  }
  if (bad_expires) {
    sr__txn_reply(t, 400, "Bad Expires", NULL, NULL, NULL, NULL);
    return;
  }
  sr_referral *r = subscription_of(s, id);
  if (!r) {
    sr__txn_reply(t, 481, "Subscription Does Not Exist", NULL, NULL, NULL,
                  NULL);
    return;
  }
  unsigned granted = want < (long)ua->opt.refer_expires_s
                         ? (unsigned)want : (unsigned)ua->opt.refer_expires_s;
  /* SUBSCRIBE refreshes the target too (RFC 6665): its 2xx
   * carries our Contact and its Contact becomes the dialog's target. */
  char extra[32];
  sr__put_int(sr__put_str(extra, "Expires: "), granted);
  osip_message_t *req = sr__txn_request(t), *resp;
  if (!req || sr__build_response(ua, req, 200, NULL, NULL, &resp) < 0) {
    sr__txn_reply(t, 500, NULL, NULL, NULL, NULL, NULL);
    return;
  }
  if (sr__add_common(ua, resp, s->tp, s->peer.addr.ss_family, 1) < 0 ||
      sr__add_headers(resp, extra) < 0) {
    osip_message_free(resp);
    sr__txn_reply(t, 500, NULL, NULL, NULL, NULL, NULL);
    return;
  }
  sr__session_refresh_target(s, req);
  sr__txn_respond(t, resp);
  sr_referral_ref(r);
  if (granted == 0) {
    sr__log(ua, SR_LOG_INFO, "REFER id %d: unsubscribed", r->id);
    sr__referral_notify_last(r, "terminated;reason=timeout");
  } else {
    sr__referral_expire_in(r, granted);
    sr__referral_notify_last(r, "active");
  }
  sr_referral_unref(r);
}
