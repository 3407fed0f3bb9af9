/*
 * referral.h — private: the incoming REFER (sr_referral) and the outgoing
 * REFER (sr_referrer) objects, shared by referral.c, notify.c, referrer.c.
 */
#ifndef SR_REFERRAL_H
#define SR_REFERRAL_H

#include "internal.h"

/* One NOTIFY waiting for the one in flight to be answered. */
typedef struct sr__notify {
  int code;
  char reason[96];
  const char *state; /* "active", "terminated;reason=noresource", ... */
} sr__notify;

#define SR_NOTIFY_QUEUE 4

struct sr_referral {
  int refs;
  sr_ua *ua;
  sr_session *session;    /* referenced; NULL out of dialog */
  sr__txn *stx;           /* the REFER's server transaction, referenced */
  struct sr_request req;
  struct sr_name_addr refer_to;
  char *replaces, *referred_by;
  int id, refer_sub;
  sr_referral_state state;
  sr_notify_mode mode;
  /* Flags as bytes: the struct stays in the pool's 16-byte classes (at
   * most 1032 bytes; the next class is 2 KiB). */
  unsigned char core_ref;        /* the core holds a reference while live */
  unsigned char pending_counted; /* counted in the pending limits */
  unsigned char sub_active;      /* subscription started, not terminated */
  sr__timer decide, expiry;
  uint64_t expires_at;
  sr_session *inviter;    /* referenced, from make_inviter */
  /* Out of dialog: the subscription's own dialog. */
  osip_dialog_t *dlg;
  sr__peer peer;
  sr_transport tp;
  /* NOTIFYs go one at a time so they arrive in CSeq order. */
  sr__txn *in_flight;
  sr__notify queue[SR_NOTIFY_QUEUE];
  int nqueue;
  /* The last status reported, for the NOTIFY that ends the subscription
   * on its timeout (RFC 3515 §2.4.5: the current status of the request). */
  int last_code;
  char last_reason[sizeof ((sr__notify *)0)->reason];
  struct sr_referral *next; /* in the session's or the UA's list */
};

struct sr_referrer {
  int refs;
  sr_ua *ua;
  sr_session *session; /* referenced */
  sr_referrer_delegate d;
  void *user_data;
  int id, refer_sub, bye_on_success;
  int linked, closed, auth_tries;
  osip_message_t *refer; /* the REFER sent, to answer a 401/407 */
  struct sr_referrer *next; /* in the session's list */
};

/* notify.c: queue a NOTIFY for the referral's subscription. */
void sr__referral_notify(sr_referral *r, int code, const char *reason,
                         const char *state);
/* notify.c: the subscription expires `seconds` from now (started or
 * refreshed). */
void sr__referral_expire_in(sr_referral *r, unsigned seconds);
/* notify.c: a NOTIFY in `state` repeating the last status sent (100
 * Trying before any: SR_NOTIFY_NONE sends none by itself). */
void sr__referral_notify_last(sr_referral *r, const char *state);
/* notify.c: the subscription ended (final NOTIFY sent, or gone). */
void sr__referral_finish(sr_referral *r, sr_referral_state st);

/* notify.c: "refer;id=7" → 7; "refer" → 0 (the first REFER, RFC 3515
 * §2.4.6); -1 for another event package or none; -2 for an id that is
 * not a positive number (no REFER of ours has it). */
int sr__refer_event_id(const char *ev);

/* referrer.c: the session ended; its referrers close. */
void sr__referrer_session_ended(sr_session *s);

#endif
