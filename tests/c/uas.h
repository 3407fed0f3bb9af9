/*
 * uas.h — test support: user agents on 127.0.0.1 port 0 and a driver that
 * runs their loops until a condition holds (bounded, never a fixed sleep).
 */
#ifndef SR_TEST_UAS_H
#define SR_TEST_UAS_H

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sipreferral.h"

#define MAX_UAS 4
static sr_ua *t_uas[MAX_UAS];
static int t_nuas;

static inline void t_quiet_log(int level, const char *msg, void *ud) {
  (void)ud;
  if (getenv("SR_TEST_LOG") || level <= SR_LOG_ERROR)
    fprintf(stderr, "  [log %d] %s\n", level, msg);
}

/* A UA named `user` listening on udp and/or tcp (127.0.0.1 or ::1). */
static inline sr_ua *t_ua(const char *user, int v6, int t1_ms,
                   void (*tweak)(sr_ua_options *)) {
  sr_ua_options o;
  sr_ua_options_init(&o);
  char uri[64];
  snprintf(uri, sizeof uri, "sip:%s@%s", user, v6 ? "[::1]" : "127.0.0.1");
  o.uri = uri;
  /* SR_TEST_T1_MS: a longer T1 for slow runs (valgrind), where 50 ms
   * would bring retransmissions the tests do not expect. */
  const char *t1env = getenv("SR_TEST_T1_MS");
  o.t1_ms = t1_ms ? t1_ms : t1env && atoi(t1env) > 0 ? atoi(t1env) : 50;
  o.log_fn = t_quiet_log;
  o.log_level = getenv("SR_TEST_LOG") ? SR_LOG_DEBUG : SR_LOG_WARNING;
  if (tweak) tweak(&o);
  sr_ua *ua = NULL;
  if (sr_ua_new(&ua, &o) != 0) return NULL;
  const char *h = v6 ? "[::1]" : "127.0.0.1";
  char spec[64];
  snprintf(spec, sizeof spec, "udp:%s:0", h);
  if (sr_ua_listen(ua, spec) != 0) return NULL;
  snprintf(spec, sizeof spec, "tcp:%s:0", h);
  if (sr_ua_listen(ua, spec) != 0) return NULL;
  if (t_nuas < MAX_UAS) t_uas[t_nuas++] = ua;
  return ua;
}

/* "sip:user@127.0.0.1:PORT[;transport=tcp]" for a UA. */
static inline const char *t_target(sr_ua *ua, const char *user,
                                   sr_transport tp) {
  static char buf[4][128];
  static int k;
  char *b = buf[k++ & 3];
  const char *host = sr_ua_local_host(ua, tp);
  int v6 = host && strchr(host, ':');
  snprintf(b, 128, "sip:%s@%s%s%s:%d%s", user, v6 ? "[" : "", host,
           v6 ? "]" : "", sr_ua_local_port(ua, tp),
           tp == SR_TRANSPORT_TCP ? ";transport=tcp" : "");
  return b;
}

static inline long t_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Runs every UA's loop until cond(ctx) is true or `limit_ms` pass.
 * Returns 1 if the condition held. The limit only bounds a broken test. */
static inline int t_drive(int (*cond)(void *), void *ctx, long limit_ms) {
  long end = t_ms() + limit_ms;
  for (;;) {
    for (int i = 0; i < t_nuas; i++)
      if (t_uas[i]) sr_ua_run_once(t_uas[i], 0);
    if (cond && cond(ctx)) return 1;
    long now = t_ms();
    if (now >= end) return 0;
    struct pollfd p[MAX_UAS];
    int n = 0, wait = (int)(end - now);
    for (int i = 0; i < t_nuas; i++) {
      if (!t_uas[i] || sr_ua_fd(t_uas[i]) < 0) continue;
      p[n].fd = sr_ua_fd(t_uas[i]);
      p[n].events = POLLIN;
      n++;
      int to = sr_ua_next_timeout_ms(t_uas[i]);
      if (to >= 0 && to < wait) wait = to;
    }
    poll(p, (nfds_t)n, wait);
  }
}

/* An on_invite that accepts every call and keeps the latest in *ud (an
 * sr_session *, holding a reference). */
static inline void t_accept_keep(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua;
  sr_session **keep = ud;
  sr_session_unref(*keep);
  *keep = sr_session_ref(inv);
  sr_invitation_accept(inv, NULL);
}

static inline void t_free_uas(void) {
  for (int i = 0; i < t_nuas; i++) sr_ua_unref(t_uas[i]);
  t_nuas = 0;
}

#endif
