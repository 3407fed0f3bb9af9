/*
 * demo.c — sipreferral-demo: three parties on 127.0.0.1 perform a blind
 * and then an attended transfer, with the message ladder and one verdict
 * line each.
 *
 *   Alice  the transferor: a user agent of the library, in this process
 *   Bob    the transferee: a real sipreferral-agent process (follows REFERs)
 *   Carol  the transfer target: a user agent of the library, in this process
 *
 * The verdicts come from what actually happened: the INVITE Carol received
 * from Bob (its Referred-By and Replaces headers, the call it replaced) and
 * the answer and NOTIFYs Alice's REFER got. Exit status 0 when both
 * transfers went as they should.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demo.h"
#include "ladder.h"

#define STEP_LIMIT_MS 10000 /* bounds a broken run; never reached otherwise */

static sr_ua *alice, *carol;
static char alice_addr[64], carol_addr[64], bob_addr[64];
static char bob_uri[96], carol_uri[96];
static demo_agent bob;
static int bob_gone;

/* ---------------- the ladder ---------------- */

static const char *who(const char *addr) {
  if (strcmp(addr, alice_addr) == 0) return "Alice";
  if (strcmp(addr, carol_addr) == 0) return "Carol";
  return "Bob  ";
}

/* Alice and Carol see every message; each is printed once: by its sender
 * when that is Alice or Carol, by its receiver when Bob sent it. */
static int hook(int outgoing, sr_transport tp, const char *local,
                const char *remote, const char *data, size_t len, void *ud) {
  (void)ud;
  if (outgoing || strcmp(who(remote), "Bob  ") == 0)
    ladder_print(stdout, who(outgoing ? local : remote),
                 who(outgoing ? remote : local), tp, data, len);
  return 0;
}

/* ---------------- calls ---------------- */

typedef struct call {
  sr_session *s; /* our reference */
  int established, terminated;
} call;

static void on_state(sr_session *s, sr_session_state st, void *ud) {
  call *c = ud;
  (void)s;
  if (st == SR_SESSION_ESTABLISHED) c->established = 1;
  if (st == SR_SESSION_TERMINATED) c->terminated = 1;
}
static const sr_session_delegate call_delegate = {.on_state = on_state};

static void call_release(call *c) {
  if (!c->s) return;
  sr_session_set_delegate(c->s, NULL, NULL);
  sr_session_unref(c->s);
  c->s = NULL;
}

/* An INVITE Carol received, and what it carried. */
typedef struct incoming {
  call c;
  char from[128], referred_by[160], replaces[200];
  sr_session *replaced; /* the call it replaced (compared, not used) */
} incoming;

#define MAX_IN 4
static incoming carol_in[MAX_IN];
static int ncarol_in;

static void copy_header(const sr_request *rq, const char *name, char *out,
                        size_t n) {
  const char *v = sr_request_header(rq, name, 0);
  snprintf(out, n, "%s", v ? v : "");
}

static void carol_on_invite(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua;
  (void)ud;
  if (ncarol_in == MAX_IN) {
    sr_invitation_reject(inv, NULL);
    return;
  }
  incoming *in = &carol_in[ncarol_in++];
  const sr_request *rq = sr_invitation_get_request(inv);
  in->c.s = sr_session_ref(inv);
  sr_session_set_delegate(inv, &call_delegate, &in->c);
  snprintf(in->from, sizeof in->from, "%s",
           sr_session_remote_identity(inv) ? sr_session_remote_identity(inv)
                                           : "?");
  copy_header(rq, "Referred-By", in->referred_by, sizeof in->referred_by);
  copy_header(rq, "Replaces", in->replaces, sizeof in->replaces);
  in->replaced = sr_invitation_get_replaced(inv);
  /* A call that replaces another is taken at once (RFC 3891); a new one
   * rings first. */
  if (!in->replaced) sr_invitation_progress(inv, NULL);
  sr_invitation_accept(inv, NULL);
}

/* ---------------- Alice's REFER ---------------- */

typedef struct transfer {
  int answer;         /* the REFER's final response */
  char notifies[6][96];
  int nnotify, final_code, closed;
} transfer;

static void ref_accept(sr_referrer *r, int code, const char *reason,
                       void *ud) {
  (void)r;
  (void)reason;
  ((transfer *)ud)->answer = code;
}

static void ref_reject(sr_referrer *r, int code, const char *reason,
                       void *ud) {
  (void)r;
  (void)reason;
  ((transfer *)ud)->answer = code;
}

static void ref_notify(sr_referrer *r, int code, const char *reason,
                       const char *state, void *ud) {
  transfer *t = ud;
  (void)r;
  if (t->nnotify < 6) {
    char st[32];
    snprintf(st, sizeof st, "%s", state ? state : "");
    st[strcspn(st, ";")] = '\0'; /* "active", "terminated" */
    snprintf(t->notifies[t->nnotify++], sizeof t->notifies[0], "%d %s (%s)",
             code, reason ? reason : "", st);
  }
  if (code >= 200) t->final_code = code;
}

static void ref_closed(sr_referrer *r, void *ud) {
  (void)r;
  ((transfer *)ud)->closed = 1;
}

static const sr_referrer_delegate referrer_delegate = {
  ref_accept, ref_reject, ref_notify, ref_closed};

/* ---------------- driving the loop ---------------- */

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Runs Alice's and Carol's loops until cond(ctx) holds (1), the step's
 * bound passes or Bob's process ends (0). */
static int drive(int (*cond)(void *), void *ctx) {
  long end = now_ms() + STEP_LIMIT_MS;
  for (;;) {
    sr_ua_run_once(alice, 0);
    sr_ua_run_once(carol, 0);
    if (cond(ctx)) return 1;
    long left = end - now_ms();
    if (left <= 0 || bob_gone) return 0;
    int wait = (int)left;
    sr_ua *uas[2] = {alice, carol};
    struct pollfd p[3];
    for (int i = 0; i < 2; i++) {
      int t = sr_ua_next_timeout_ms(uas[i]);
      if (t >= 0 && t < wait) wait = t;
      p[i] = (struct pollfd){sr_ua_fd(uas[i]), POLLIN, 0};
    }
    p[2] = (struct pollfd){bob.pidfd, POLLIN, 0};
    if (poll(p, bob.pidfd >= 0 ? 3 : 2, wait) < 0 && errno != EINTR) return 0;
    if (bob.pidfd >= 0 && (p[2].revents & POLLIN)) {
      fprintf(stderr, "sipreferral-demo: the agent (Bob) exited\n");
      bob_gone = 1;
    }
  }
}

static int up_or_down(void *ctx) {
  call *c = ctx;
  return c->established || c->terminated;
}

static int down(void *ctx) { return ((call *)ctx)->terminated; }

/* Alice calls target; 1 when the call is up. */
static int alice_calls(call *c, const char *target) {
  sr_session *s;
  if (sr_ua_make_inviter(alice, target, NULL, &s) < 0) return 0;
  c->s = s;
  sr_session_set_delegate(s, &call_delegate, c);
  if (sr_inviter_invite(s) < 0) return 0;
  return drive(up_or_down, c) && c->established;
}

/* Carol hangs up on Bob once the transfer is checked. */
static void carol_hangs_up(incoming *in) {
  if (in && in->c.s && !in->c.terminated && sr_session_bye(in->c.s) == 0)
    drive(down, &in->c);
}

typedef struct wait_transfer {
  transfer *t;
  call *old;       /* Alice's call with Bob: ends after the 2xx NOTIFY */
  call *replaced;  /* attended: Alice's call with Carol, replaced */
  int first;       /* Carol's INVITE from Bob is carol_in[first] */
} wait_transfer;

static int transfer_done(void *ctx) {
  wait_transfer *w = ctx;
  if (!w->t->closed || !w->old->terminated) return 0;
  if (w->replaced && !w->replaced->terminated) return 0;
  if (w->t->final_code < 200 || w->t->final_code >= 300) return 1;
  return ncarol_in > w->first && carol_in[w->first].c.established;
}

static void list_notifies(const transfer *t, char *out, size_t n) {
  out[0] = '\0';
  for (int i = 0; i < t->nnotify; i++) {
    size_t used = strlen(out);
    snprintf(out + used, n - used, "%s%s", i ? ", " : "", t->notifies[i]);
  }
  if (!t->nnotify) snprintf(out, n, "none");
}

/* ---------------- the two transfers ---------------- */

static int blind_transfer(void) {
  call ab = {0};
  transfer t = {0};
  sr_referrer *rf = NULL;
  int first = ncarol_in, ok = 0;
  printf("\n== Blind transfer: Alice calls Bob, then refers him to Carol\n");
  if (alice_calls(&ab, bob_uri)) {
    sr_refer_options ro;
    sr_refer_options_init(&ro);
    ro.bye_on_success = 1; /* Alice leaves once Carol answered Bob */
    if (sr_session_refer(ab.s, carol_uri, &ro, &referrer_delegate, &t,
                         &rf) == 0) {
      wait_transfer w = {&t, &ab, NULL, first};
      drive(transfer_done, &w);
    }
  }
  incoming *in = ncarol_in > first ? &carol_in[first] : NULL;
  char notifies[512];
  list_notifies(&t, notifies, sizeof notifies);
  ok = t.answer == 202 && t.final_code == 200 && ab.terminated && in &&
       in->c.established && strstr(in->from, "sip:bob@") &&
       strstr(in->referred_by, "sip:alice@") && !in->replaces[0];
  printf("blind transfer: %s  Carol got Bob's INVITE (from %s) with "
         "Referred-By: %s and %s; Alice's REFER got %d, then NOTIFY %s\n",
         ok ? "PASS" : "FAIL", in ? in->from : "-",
         in && in->referred_by[0] ? in->referred_by : "(none)",
         in && in->replaces[0] ? "a Replaces header (unexpected)"
                               : "no Replaces",
         t.answer, notifies);
  carol_hangs_up(in);
  sr_referrer_unref(rf);
  call_release(&ab);
  return ok;
}

static int attended_transfer(void) {
  call ab = {0}, ac = {0};
  transfer t = {0};
  sr_referrer *rf = NULL;
  int ok = 0, consult = ncarol_in, first = ncarol_in + 1;
  printf("\n== Attended transfer: Alice calls Bob, then Carol, then refers "
         "Bob to Carol with Replaces\n");
  if (alice_calls(&ab, bob_uri) && alice_calls(&ac, carol_uri)) {
    sr_refer_options ro;
    sr_refer_options_init(&ro);
    ro.bye_on_success = 1;
    if (sr_session_refer_session(ab.s, ac.s, &ro, &referrer_delegate, &t,
                                 &rf) == 0) {
      wait_transfer w = {&t, &ab, &ac, first};
      drive(transfer_done, &w);
    }
  }
  incoming *in = ncarol_in > first ? &carol_in[first] : NULL;
  incoming *cons = ncarol_in > consult ? &carol_in[consult] : NULL;
  char notifies[512];
  list_notifies(&t, notifies, sizeof notifies);
  int replaced_right = in && cons && in->replaced && in->replaced == cons->c.s;
  ok = t.answer == 202 && t.final_code == 200 && ab.terminated &&
       ac.terminated && in && in->c.established && replaced_right &&
       strstr(in->from, "sip:bob@") && strstr(in->referred_by, "sip:alice@") &&
       in->replaces[0] && cons->c.terminated;
  printf("attended transfer: %s  Carol got Bob's INVITE with Replaces: %s "
         "(%s her call with Alice) and Referred-By: %s; Alice's REFER got "
         "%d, then NOTIFY %s\n",
         ok ? "PASS" : "FAIL",
         in && in->replaces[0] ? in->replaces : "(none)",
         replaced_right ? "it replaced" : "it did NOT replace",
         in && in->referred_by[0] ? in->referred_by : "(none)", t.answer,
         notifies);
  carol_hangs_up(in);
  sr_referrer_unref(rf);
  call_release(&ab);
  call_release(&ac);
  return ok;
}

/* ---------------- setup ---------------- */

static sr_ua *make_party(const char *user, char *addr, size_t n) {
  sr_ua_options o;
  sr_ua *ua;
  char uri[64];
  sr_ua_options_init(&o);
  snprintf(uri, sizeof uri, "sip:%s@127.0.0.1", user);
  o.uri = uri;
  if (sr_ua_new(&ua, &o) < 0) return NULL;
  if (sr_ua_listen(ua, "udp:127.0.0.1:0") < 0) {
    sr_ua_unref(ua);
    return NULL;
  }
  snprintf(addr, n, "127.0.0.1:%d", sr_ua_local_port(ua, SR_TRANSPORT_UDP));
  sr_ua_set_message_hook(ua, hook, NULL);
  return ua;
}

static const char usage[] =
"Usage: sipreferral-demo [--agent PATH]\n"
"Three parties on 127.0.0.1 perform a blind and an attended transfer:\n"
"Alice and Carol are user agents of libsipreferral in this process, Bob\n"
"is a sipreferral-agent process (default: the one next to this program).\n"
"Prints the message ladder and one verdict line per transfer; exit status\n"
"0 when both transfers went as expected.\n";

int main(int argc, char **argv) {
  const char *agent_path = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--agent") == 0 && i + 1 < argc) {
      agent_path = argv[++i];
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(usage, stdout);
      return 0;
    } else {
      fprintf(stderr, "sipreferral-demo: unknown argument '%s' (see --help)\n",
              argv[i]);
      return 2;
    }
  }
  if (!agent_path) agent_path = demo_default_agent_path();
  setvbuf(stdout, NULL, _IOLBF, 0);

  alice = make_party("alice", alice_addr, sizeof alice_addr);
  carol = make_party("carol", carol_addr, sizeof carol_addr);
  if (!alice || !carol) {
    fprintf(stderr, "sipreferral-demo: cannot listen on 127.0.0.1\n");
    return 1;
  }
  static const sr_ua_delegate carol_delegate = {.on_invite = carol_on_invite};
  sr_ua_set_delegate(carol, &carol_delegate, NULL);
  snprintf(carol_uri, sizeof carol_uri, "sip:carol@%s", carol_addr);

  const char *args[] = {"--uri", "sip:bob@127.0.0.1", "--on-refer", "follow",
                        "--log-level", "error", NULL};
  if (demo_agent_start(&bob, agent_path, args) < 0) {
    sr_ua_unref(alice);
    sr_ua_unref(carol);
    return 1;
  }
  snprintf(bob_addr, sizeof bob_addr, "127.0.0.1:%d", bob.port);
  snprintf(bob_uri, sizeof bob_uri, "sip:bob@%s", bob_addr);
  printf("sipreferral demo (libsipreferral %s)\n"
         "  Alice  %-16s  transferor      (the library, this process)\n"
         "  Bob    %-16s  transferee      (sipreferral-agent, pid %d)\n"
         "  Carol  %-16s  transfer target (the library, this process)\n",
         sr_version(), alice_addr, bob_addr, (int)bob.pid, carol_addr);

  int passed = blind_transfer();
  passed += attended_transfer();

  int status = demo_agent_stop(&bob, 10000);
  for (int i = 0; i < ncarol_in; i++) call_release(&carol_in[i].c);
  sr_ua_unref(alice);
  sr_ua_unref(carol);
  printf("\n%d of 2 transfers as expected; the agent exited with status %d\n",
         passed, status);
  return passed == 2 && status == 0 ? 0 : 1;
}
