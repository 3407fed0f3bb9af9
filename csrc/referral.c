/* referral.c — placeholder until the Referral core lands. */
#include "internal.h"

int sr__live_referrals, sr__live_referrers;

void sr__referral_incoming(sr_ua *ua, sr_session *s, sr__txn *t,
                           osip_message_t *req) {
  (void)s;
  (void)req;
  sr__ua_reply(ua, t, 501, NULL, NULL);
}
int sr__referrer_incoming_notify(sr_session *s, sr__txn *t,
                                 osip_message_t *req) {
  (void)s; (void)t; (void)req;
  return 0;
}
void sr__referral_session_ended(sr_session *s) { (void)s; }
int sr__replaces_match(sr_ua *ua, osip_message_t *invite,
                       sr_session **replaced) {
  (void)ua; (void)invite;
  *replaced = NULL;
  return 0;
}
void sr__referral_close_for_ua(sr_ua *ua) { (void)ua; }
