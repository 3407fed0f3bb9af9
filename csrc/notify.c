/*
 * notify.c — the notifier side of REFER's implicit subscription
 * (RFC 3515 §2.4.4-5, RFC 6665): NOTIFYs carrying message/sipfrag, sent
 * one at a time per referral so they arrive in CSeq order. A 481 or a
 * timeout ends the subscription quietly (the new call is not touched).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "referral.h"

static void send_next(sr_referral *r);

static void ref_owner(void *o) { sr_referral_ref(o); }
static void unref_owner(void *o) { sr_referral_unref(o); }

static void notify_done(sr_referral *r, int code) {
  sr__txn_unref(r->in_flight);
  r->in_flight = NULL;
  if (code == 481 || code == 408 || code == 503) {
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
  if (n->code) {
    char *b = sr__put_int(sr__put_str(body, "SIP/2.0 "), n->code);
    sr__put_str(sr__put_str(sr__put_str(b, " "), n->reason), "\r\n");
  } else {
    /* Expired before any final status: say so with the last word we had. */
    sr__put_str(body, "SIP/2.0 100 Trying\r\n");
  }
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
  if (final) {
    r->sub_active = 0;
    sr__timer_stop(r->ua, &r->expiry);
  }
  sr_referral_ref(r);
  send_next(r);
  sr_referral_unref(r);
}
