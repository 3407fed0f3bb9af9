/*
 * calls.c — what the agent does with calls and REFERs: the UA and session
 * delegates, --on-invite / --on-refer, --call, --bye-after, and the two
 * steps of a clean shutdown. Objects found ended are freed by a sweep from
 * the main loop rather than inside the library's callbacks.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent.h"

static const char *call_name(sr_session *s) {
  return sr_session_get_role(s) == SR_ROLE_INVITER ? "outgoing" : "incoming";
}

/* ---------------- sessions ---------------- */

/* The --bye-after queue: every call gets the same delay when established,
 * so appending keeps it in order of bye_at. */
static void bye_unlink(agent_call *c) {
  if (!c->bye_pprev) return;
  *c->bye_pprev = c->bye_next;
  if (c->bye_next) c->bye_next->bye_pprev = c->bye_pprev;
  else c->ag->byes_tail = c->bye_pprev;
  c->bye_next = NULL;
  c->bye_pprev = NULL;
  c->bye_at = 0;
}

static void bye_append(agent_call *c, long long at) {
  agent *ag = c->ag;
  bye_unlink(c);
  if (!ag->byes_tail) ag->byes_tail = &ag->byes;
  c->bye_at = at;
  c->bye_pprev = ag->byes_tail;
  *ag->byes_tail = c;
  ag->byes_tail = &c->bye_next;
}

/* A call is over: the next sweep frees it. */
static void call_ended(agent_call *c) {
  if (c->ended) return;
  agent *ag = c->ag;
  c->ended = 1;
  ag->live_calls--;
  bye_unlink(c);
  c->ended_next = ag->ended;
  ag->ended = c;
}

static void on_state(sr_session *s, sr_session_state st, void *ud) {
  agent_call *c = ud;
  agent *ag = c->ag;
  agent_log(ag, SR_LOG_INFO, "call %d (%s): %s", c->id, call_name(s),
            sr_session_state_name(st));
  if (st == SR_SESSION_ESTABLISHED) {
    c->established = 1;
    if (ag->o.bye_after_s >= 0 && !ag->shutdown)
      bye_append(c, agent_now_ms() + (long long)(ag->o.bye_after_s * 1000));
  } else if (st == SR_SESSION_TERMINATED) {
    if (c->placed && !c->established && !c->ended) ag->placed_failed++;
    call_ended(c);
  }
}

static void on_response(sr_session *s, int code, const char *reason,
                        void *ud) {
  agent_call *c = ud;
  (void)s;
  agent_log(c->ag, code >= 300 ? SR_LOG_WARNING : SR_LOG_INFO,
            "call %d: %d %s", c->id, code, reason ? reason : "");
  if (c->kept && c->ag->script)
    agent_script_on_notify(c->ag, c->kept->r, code, reason);
}

static void on_bye(sr_session *s, void *ud) {
  agent_call *c = ud;
  (void)s;
  agent_log(c->ag, SR_LOG_INFO, "call %d: BYE from the peer", c->id);
}

static void on_session_refer(sr_session *s, sr_referral *r, void *ud) {
  (void)s;
  agent_handle_referral(((agent_call *)ud)->ag, r);
}

static const sr_session_delegate session_delegate = {
  .on_state = on_state,
  .on_response = on_response,
  .on_refer = on_session_refer,
  .on_bye = on_bye,
};

agent_call *agent_add_call(agent *ag, sr_session *s, int counted) {
  agent_call *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->ag = ag;
  c->s = sr_session_ref(s);
  c->id = ++ag->next_call_id;
  c->counted = counted;
  if (counted) ag->calls_started++;
  c->next = ag->calls;
  if (c->next) c->next->pprev = &c->next;
  c->pprev = &ag->calls;
  ag->calls = c;
  ag->live_calls++;
  sr_session_set_delegate(s, &session_delegate, c);
  return c;
}

/* ---------------- incoming INVITE ---------------- */

static void on_invite(sr_ua *ua, sr_session *inv, void *ud) {
  agent *ag = ud;
  sr_response_options ro;
  (void)ua;
  sr_response_options_init(&ro);
  /* A Replaces naming no dialog of ours was refused before this. */
  agent_log(ag, SR_LOG_INFO, "INVITE from %s%s",
            sr_session_remote_identity(inv) ? sr_session_remote_identity(inv)
                                            : "?",
            sr_invitation_get_replaced(inv) ? " with Replaces" : "");
  if (ag->shutdown ||
      (ag->o.max_calls && ag->calls_started >= ag->o.max_calls)) {
    ro.status_code = 503;
    ro.extra_headers = "Retry-After: 60";
    sr_invitation_reject(inv, &ro);
    return;
  }
  agent_call *c = agent_add_call(ag, inv, 1);
  if (!c) {
    ro.status_code = 500;
    sr_invitation_reject(inv, &ro);
    return;
  }
  if (ag->script && agent_script_on_invite(ag, inv)) return;
  switch (ag->o.on_invite) {
  case INVITE_ANSWER:
    sr_invitation_progress(inv, NULL);
    if (sr_invitation_accept(inv, NULL) < 0)
      agent_log(ag, SR_LOG_WARNING, "call %d: could not answer", c->id);
    break;
  case INVITE_REJECT:
    ro.status_code = ag->o.invite_code;
    sr_invitation_reject(inv, &ro);
    break;
  case INVITE_IGNORE:
    break;
  }
}

static void on_ood_refer(sr_ua *ua, sr_referral *r, void *ud) {
  (void)ua;
  agent_handle_referral(ud, r);
}

void agent_install(agent *ag) {
  static const sr_ua_delegate d = {
    .on_invite = on_invite,
    .on_refer = on_ood_refer,
  };
  sr_ua_set_delegate(ag->ua, &d, ag);
}

int agent_place_call(agent *ag, const char *target) {
  sr_session *s;
  int rc = sr_ua_make_inviter(ag->ua, target, NULL, &s);
  if (rc < 0) return rc;
  agent_call *c = agent_add_call(ag, s, 1);
  sr_session_unref(s); /* the call holds it now */
  if (!c) return SR_ENOMEM;
  c->placed = 1;
  rc = sr_inviter_invite(s);
  if (rc < 0) {
    call_ended(c);
    ag->placed_failed++;
  }
  agent_log(ag, SR_LOG_INFO, "call %d: INVITE %s", c->id, target);
  return rc;
}

/* ---------------- REFER ---------------- */

/* Called once per referral: the library reports each REFER once. */
agent_referral *agent_keep_referral(agent *ag, sr_referral *r) {
  agent_referral *k = calloc(1, sizeof *k);
  if (!k) return NULL;
  k->r = sr_referral_ref(r);
  k->next = ag->referrals;
  ag->referrals = k;
  ag->nreferrals++;
  return k;
}

static void follow_with(agent_referral *k, agent_call *c) {
  k->inviter = c;
  c->kept = k;
}

/* A final NOTIFY for an accepted referral no call follows. */
static void notify_final(agent *ag, agent_referral *k, int code,
                         const char *reason) {
  if (k->notified_final) return;
  k->notified_final = 1;
  int rc = sr_referral_notify(k->r, code, reason);
  if (rc < 0 && rc != SR_ESTATE && rc != SR_ECLOSED)
    agent_log(ag, SR_LOG_WARNING, "final NOTIFY %d: %s", code,
              sr_strerror(rc));
}

void agent_follow_referral(agent *ag, agent_referral *k) {
  sr_session *inv;
  int rc = sr_referral_make_inviter(k->r, NULL, &inv);
  if (rc < 0) {
    const char *scheme = sr_uri_scheme(
        sr_name_addr_uri(sr_referral_refer_to(k->r)));
    int unsupported = strcasecmp(scheme, "sip") && strcasecmp(scheme, "sips");
    agent_log(ag, SR_LOG_WARNING, "cannot follow the REFER to %s: %s",
              sr_uri_string(sr_name_addr_uri(sr_referral_refer_to(k->r))),
              sr_strerror(rc));
    /* A host name without an outbound proxy, or sips without TLS:
     * unreachable (RFC 3261 §8.1.3.1, RFC 3263 §4.3). */
    int code = unsupported ? 416
               : rc == SR_EADDR || rc == SR_ETRANSPORT ? 503 : 400;
    notify_final(ag, k, code, NULL);
    return;
  }
  agent_call *c = agent_add_call(ag, inv, 0); /* inv is borrowed */
  if (!c) {
    notify_final(ag, k, 500, NULL);
    return;
  }
  follow_with(k, c);
  agent_log(ag, SR_LOG_INFO, "call %d: following the REFER to %s", c->id,
            sr_uri_string(sr_name_addr_uri(sr_referral_refer_to(k->r))));
  rc = sr_inviter_invite(inv);
  if (rc < 0) {
    agent_log(ag, SR_LOG_WARNING, "call %d: INVITE not sent: %s", c->id,
              sr_strerror(rc));
    call_ended(c);
    notify_final(ag, k, 503, NULL);
  }
}

void agent_handle_referral(agent *ag, sr_referral *r) {
  const sr_name_addr *to = sr_referral_refer_to(r);
  sr_response_options ro;
  sr_response_options_init(&ro);
  agent_log(ag, SR_LOG_INFO, "REFER (id %d) to %s%s%s",
            sr_referral_get_id(r), sr_name_addr_string(to),
            sr_referral_replaces(r) ? " with Replaces" : "",
            sr_referral_get_refer_sub(r) ? "" : ", Refer-Sub: false");
  if (ag->shutdown) {
    ro.status_code = 503;
    sr_referral_reject(r, &ro);
    return;
  }
  if (ag->script && agent_script_on_refer(ag, r)) {
    /* The script may decide later: keep it so a shutdown can answer it,
     * and track the call it placed to follow it, if any. */
    if (sr_referral_get_state(r) > SR_REFERRAL_ACCEPTED) return;
    agent_referral *k = agent_keep_referral(ag, r);
    sr_session *inv = sr_referral_get_inviter(r);
    if (k && inv && sr_session_get_state(inv) < SR_SESSION_TERMINATED) {
      agent_call *c = agent_add_call(ag, inv, 0);
      if (c) follow_with(k, c);
    }
    return;
  }
  if (ag->o.on_refer == REFER_REJECT) {
    ro.status_code = ag->o.refer_code;
    int rc = sr_referral_reject(r, &ro);
    if (rc < 0)
      agent_log(ag, SR_LOG_WARNING, "reject: %s", sr_strerror(rc));
    return;
  }
  int rc = sr_referral_accept(r, NULL);
  if (rc < 0) {
    agent_log(ag, SR_LOG_WARNING, "accept: %s", sr_strerror(rc));
    return;
  }
  agent_referral *k = agent_keep_referral(ag, r);
  if (!k) return;
  if (ag->o.on_refer == REFER_FOLLOW) agent_follow_referral(ag, k);
}

/* ---------------- sweeping and shutdown ---------------- */

/* Nothing more will happen: rejected, its subscription over, or accepted
 * with Refer-Sub: false (no subscription at all). */
static int referral_done(agent_referral *k) {
  sr_referral_state st = sr_referral_get_state(k->r);
  return st == SR_REFERRAL_TERMINATED || st == SR_REFERRAL_REJECTED ||
         (st == SR_REFERRAL_ACCEPTED && !sr_referral_get_refer_sub(k->r));
}

static void free_referral(agent_referral *k) {
  if (k->inviter) k->inviter->kept = NULL;
  sr_referral_unref(k->r);
  free(k);
}

/* Frees the finished referrals. A referral says nothing when it finishes,
 * so they are looked at only once their number has doubled since the last
 * look (or during a shutdown): a constant cost per referral, however many
 * are open. Until then a finished one costs its memory only. */
static void scan_referrals(agent *ag) {
  for (agent_referral **pk = &ag->referrals; *pk;) {
    agent_referral *k = *pk;
    if (referral_done(k)) {
      *pk = k->next;
      ag->nreferrals--;
      free_referral(k);
    } else {
      pk = &k->next;
    }
  }
  ag->scan_referrals_at = ag->nreferrals < 32 ? 64 : 2 * ag->nreferrals;
}

int agent_sweep(agent *ag) {
  if (ag->shutdown || ag->nreferrals >= ag->scan_referrals_at)
    scan_referrals(ag);
  while (ag->ended) {
    agent_call *c = ag->ended;
    ag->ended = c->ended_next;
    *c->pprev = c->next;
    if (c->next) c->next->pprev = c->pprev;
    if (c->kept) c->kept->inviter = NULL;
    if (c->counted) ag->calls_ended++;
    sr_session_set_delegate(c->s, NULL, NULL);
    sr_session_unref(c->s);
    free(c);
  }
  long long now = agent_now_ms();
  while (ag->byes && ag->byes->bye_at <= now) {
    agent_call *c = ag->byes;
    bye_unlink(c);
    agent_log(ag, SR_LOG_INFO, "call %d: hanging up", c->id);
    sr_session_bye(c->s);
  }
  if (!ag->byes) return -1;
  return (int)(ag->byes->bye_at - now);
}

int agent_live_referrals(agent *ag) {
  int n = 0;
  for (agent_referral *k = ag->referrals; k; k = k->next)
    if (!referral_done(k)) n++;
  return n;
}

void agent_finish_referrals(agent *ag) {
  for (agent_referral *k = ag->referrals; k; k = k->next) {
    sr_referral_state st = sr_referral_get_state(k->r);
    if (st == SR_REFERRAL_PENDING) {
      sr_referral_reject(k->r, NULL); /* 603 */
    } else if (st == SR_REFERRAL_ACCEPTED) {
      /* A call in progress ends with 487, which becomes the final NOTIFY;
       * one already up has had its 200 NOTIFY. */
      agent_call *c = k->inviter;
      if (c && !c->ended &&
          sr_session_get_state(c->s) == SR_SESSION_ESTABLISHING)
        sr_session_bye(c->s);
      else if (!c || c->ended)
        notify_final(ag, k, 503, "Service Unavailable");
    }
  }
}

void agent_end_calls(agent *ag) {
  sr_response_options ro;
  sr_response_options_init(&ro);
  ro.status_code = 480;
  /* Ended calls stay in the list until the sweep: walking it is safe
   * whatever the callbacks below do. */
  for (agent_call *c = ag->calls; c; c = c->next) {
    if (c->ended) continue;
    bye_unlink(c);
    sr_session_state st = sr_session_get_state(c->s);
    if (st == SR_SESSION_INITIAL &&
        sr_session_get_role(c->s) == SR_ROLE_INVITATION)
      sr_invitation_reject(c->s, &ro);
    else if (st == SR_SESSION_INITIAL)
      call_ended(c); /* an Inviter never sent */
    else if (st < SR_SESSION_TERMINATING)
      sr_session_bye(c->s);
  }
}

void agent_free_all(agent *ag) {
  while (ag->referrals) {
    agent_referral *k = ag->referrals;
    ag->referrals = k->next;
    free_referral(k);
  }
  ag->ended = ag->byes = NULL;
  ag->byes_tail = NULL;
  while (ag->calls) {
    agent_call *c = ag->calls;
    ag->calls = c->next;
    sr_session_set_delegate(c->s, NULL, NULL);
    sr_session_unref(c->s);
    free(c);
  }
}
