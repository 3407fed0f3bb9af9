/*
 * test_wait_hooks.c — sr_ua_set_wait_hooks: the pair brackets the one
 * blocking system call of sr_ua_run_once (never a 0 ms turn), no callback
 * runs between them, an interrupted wait still returns 0 when after()
 * clobbers errno, and the hooks can be replaced and removed.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "harness.h"
#include "sipreferral.h"

#define BOUND_MS 5000 /* only a broken test waits this long */

typedef struct hooks {
  int before, after;
  int waiting;     /* between before() and after() */
  int nested;      /* before() while waiting, or after() while not */
  int cb_in_wait;  /* a watch callback ran between before() and after() */
  int cb_calls;
  int clobber;     /* after() sets errno to 0 */
  int wait_errno;  /* errno as after() found it (before() zeroes it) */
} hooks;

static void before(void *ud) {
  hooks *h = ud;
  if (h->waiting) h->nested++;
  h->waiting = 1;
  h->before++;
  errno = 0;
}

static void after(void *ud) {
  hooks *h = ud;
  if (!h->waiting) h->nested++;
  h->waiting = 0;
  h->after++;
  h->wait_errno = errno;
  if (h->clobber) errno = 0;
}

static void on_fd(sr_ua *ua, int fd, void *ud) {
  (void)ua;
  hooks *h = ud;
  h->cb_calls++;
  if (h->waiting) h->cb_in_wait++;
  char b[16];
  CHECK(read(fd, b, sizeof b) > 0);
}

static void quiet(int level, const char *msg, void *ud) {
  (void)level, (void)msg, (void)ud;
}

static sr_ua *new_ua(void) {
  sr_ua_options o;
  sr_ua_options_init(&o);
  o.uri = "sip:wait@127.0.0.1";
  o.log_fn = quiet;
  sr_ua *ua = NULL;
  return sr_ua_new(&ua, &o) == 0 ? ua : NULL;
}

static void test_bad_args(void) {
  sr_ua *ua = new_ua();
  REQUIRE(ua);
  hooks h = {0};
  CHECK_INT(sr_ua_set_wait_hooks(NULL, before, after, &h), SR_EINVAL);
  CHECK_INT(sr_ua_set_wait_hooks(ua, before, NULL, &h), SR_EINVAL);
  CHECK_INT(sr_ua_set_wait_hooks(ua, NULL, after, &h), SR_EINVAL);
  CHECK_INT(sr_ua_set_wait_hooks(ua, NULL, NULL, NULL), 0);
  sr_ua_close(ua);
  CHECK_INT(sr_ua_set_wait_hooks(ua, before, after, &h), SR_ECLOSED);
  sr_ua_unref(ua);
}

static void test_bracket_the_wait(void) {
  sr_ua *ua = new_ua();
  REQUIRE(ua);
  int p[2];
  REQUIRE(pipe(p) == 0);
  hooks h = {0};
  CHECK_INT(sr_ua_watch_fd(ua, p[0], on_fd, &h), 0);
  CHECK_INT(sr_ua_set_wait_hooks(ua, before, after, &h), 0);

  /* a 0 ms turn does not block: no hooks */
  CHECK_INT(sr_ua_run_once(ua, 0), 0);
  CHECK_INT(h.before, 0);

  /* a blocking turn: one pair, then the callback, outside the pair */
  CHECK_INT(write(p[1], "x", 1), 1);
  CHECK_INT(sr_ua_run_once(ua, BOUND_MS), 1);
  CHECK_INT(h.before, 1);
  CHECK_INT(h.after, 1);
  CHECK_INT(h.cb_calls, 1);
  CHECK_INT(h.cb_in_wait, 0);
  CHECK_INT(h.nested, 0);

  /* a wait that times out gets its pair too */
  CHECK_INT(sr_ua_run_once(ua, 1), 0);
  CHECK_INT(h.before, 2);
  CHECK_INT(h.after, 2);

  /* replaced, then removed */
  hooks h2 = {0};
  CHECK_INT(sr_ua_set_wait_hooks(ua, before, after, &h2), 0);
  CHECK_INT(sr_ua_run_once(ua, 1), 0);
  CHECK_INT(h2.before, 1);
  CHECK_INT(h.before, 2);
  CHECK_INT(sr_ua_set_wait_hooks(ua, NULL, NULL, NULL), 0);
  CHECK_INT(write(p[1], "x", 1), 1);
  CHECK_INT(sr_ua_run_once(ua, BOUND_MS), 1);
  CHECK_INT(h2.before, 1);
  CHECK_INT(h2.after, 1);
  CHECK_INT(h.cb_calls, 2);

  sr_ua_unref(ua);
  close(p[0]);
  close(p[1]);
}

/* ------------------------------------------------ an interrupted wait */

static atomic_int g_stop, g_signals;
static pthread_t g_main;

static void on_usr1(int sig) {
  (void)sig;
  atomic_fetch_add(&g_signals, 1);
}

/* Signals the waiting thread until it has returned: one signal that lands
 * before the wait would not interrupt it, so there is no single right
 * moment to send it. */
static void *pester(void *arg) {
  (void)arg;
  while (!atomic_load(&g_stop)) {
    pthread_kill(g_main, SIGUSR1);
    sched_yield();
  }
  return NULL;
}

static void test_interrupted_wait(void) {
  sr_ua *ua = new_ua();
  REQUIRE(ua);
  hooks h = {.clobber = 1};
  CHECK_INT(sr_ua_set_wait_hooks(ua, before, after, &h), 0);
  struct sigaction sa = {.sa_handler = on_usr1}, old;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: the wait fails with EINTR */
  REQUIRE(sigaction(SIGUSR1, &sa, &old) == 0);
  g_main = pthread_self();
  atomic_store(&g_stop, 0);
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, pester, NULL) == 0);
  /* nothing to do for BOUND_MS: only a signal ends the wait early */
  int rc = sr_ua_run_once(ua, BOUND_MS);
  atomic_store(&g_stop, 1);
  pthread_join(t, NULL);
  sigaction(SIGUSR1, &old, NULL);
  CHECK(atomic_load(&g_signals) > 0);
  CHECK_INT(h.wait_errno, EINTR);
  CHECK_INT(rc, 0); /* not SR_EIO: errno was read before after() ran */
  CHECK_INT(h.before, 1);
  CHECK_INT(h.after, 1);
  CHECK_INT(h.nested, 0);
  sr_ua_unref(ua);
}

int main(void) {
  RUN(test_bad_args);
  RUN(test_bracket_the_wait);
  RUN(test_interrupted_wait);
  return DONE();
}
