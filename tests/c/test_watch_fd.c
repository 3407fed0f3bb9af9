/*
 * test_watch_fd.c — the application's descriptors in the UA's loop
 * (sr_ua_watch_fd / sr_ua_unwatch_fd): callbacks fire inside run_once,
 * unwatching (or closing the UA) from a callback is safe while the same
 * epoll batch still holds events, and the UA releases its watches.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "uas.h"

#define BOUND_MS 5000 /* only a broken test waits this long */

static int g_in_run; /* set around sr_ua_run_once */

typedef struct rec {
  sr_ua *ua;
  int fd;
  int calls, outside_run, wrong_args;
  int drain;              /* read the byte (else level-triggered repeats) */
  int unwatch_fd[2];      /* unwatched from inside the callback (-1: none) */
  int rewatch;            /* then watch unwatch_fd[0] again with rec2 */
  struct rec *rec2;
  int close_ua, raise;
} rec;

static void on_fd(sr_ua *ua, int fd, void *ud) {
  rec *r = ud;
  r->calls++;
  if (!g_in_run) r->outside_run++;
  if (ua != r->ua || fd != r->fd) r->wrong_args++;
  if (r->drain) {
    char b[16];
    if (read(fd, b, sizeof b) <= 0) r->wrong_args++;
  }
  for (int i = 0; i < 2; i++)
    if (r->unwatch_fd[i] >= 0) CHECK_INT(sr_ua_unwatch_fd(ua, r->unwatch_fd[i]), 0);
  if (r->rewatch)
    CHECK_INT(sr_ua_watch_fd(ua, r->unwatch_fd[0], on_fd, r->rec2), 0);
  if (r->close_ua) sr_ua_close(ua);
  if (r->raise) sr_ua_callback_error(ua);
}

static rec mkrec(sr_ua *ua, int fd) {
  rec r = {.ua = ua, .fd = fd, .drain = 1, .unwatch_fd = {-1, -1}};
  return r;
}

static int run(sr_ua *ua, int timeout_ms) {
  g_in_run = 1;
  int rc = sr_ua_run_once(ua, timeout_ms);
  g_in_run = 0;
  return rc;
}

static sr_ua *new_ua(void) {
  sr_ua_options o;
  sr_ua_options_init(&o);
  o.uri = "sip:watch@127.0.0.1";
  o.log_fn = t_quiet_log;
  sr_ua *ua = NULL;
  return sr_ua_new(&ua, &o) == 0 ? ua : NULL;
}

static void poke(int wfd) { CHECK_INT(write(wfd, "x", 1), 1); }

static void test_bad_args(void) {
  sr_ua *ua = new_ua();
  REQUIRE(ua);
  int p[2];
  REQUIRE(pipe(p) == 0);
  rec r = mkrec(ua, p[0]);
  CHECK_INT(sr_ua_watch_fd(NULL, p[0], on_fd, &r), SR_EINVAL);
  CHECK_INT(sr_ua_watch_fd(ua, p[0], NULL, &r), SR_EINVAL);
  CHECK_INT(sr_ua_watch_fd(ua, -1, on_fd, &r), SR_EINVAL);
  CHECK_INT(sr_ua_unwatch_fd(NULL, p[0]), SR_EINVAL);
  CHECK_INT(sr_ua_unwatch_fd(ua, p[0]), SR_EINVAL); /* not watched */
  CHECK_INT(sr_ua_unwatch_fd(ua, -1), SR_EINVAL);
  /* Descriptors epoll cannot watch: the UA's own, a closed one, a file. */
  CHECK_INT(sr_ua_watch_fd(ua, sr_ua_fd(ua), on_fd, &r), SR_EINVAL);
  int closed = dup(p[0]);
  REQUIRE(closed >= 0);
  close(closed);
  CHECK_INT(sr_ua_watch_fd(ua, closed, on_fd, &r), SR_EINVAL);
  char path[] = "/tmp/sr-watch-XXXXXX";
  int file = mkstemp(path);
  REQUIRE(file >= 0);
  unlink(path);
  CHECK_INT(sr_ua_watch_fd(ua, file, on_fd, &r), SR_EINVAL);
  close(file);
  /* Nothing was left half-registered: a valid watch still works. */
  CHECK_INT(sr_ua_watch_fd(ua, p[0], on_fd, &r), 0);
  CHECK_INT(sr_ua_unwatch_fd(ua, p[0]), 0);
  CHECK_INT(sr_ua_unwatch_fd(ua, p[0]), SR_EINVAL); /* twice */
  sr_ua_unref(ua);
  close(p[0]);
  close(p[1]);
}

/* A library socket is refused too (epoll already holds it). */
static void test_library_socket_refused(void) {
  sr_ua *ua = new_ua();
  REQUIRE(ua);
  REQUIRE(sr_ua_listen(ua, "udp:127.0.0.1:0") == 0);
  /* Find the UA's socket among our descriptors by its bound port. */
  int found = 0, port = sr_ua_local_port(ua, SR_TRANSPORT_UDP);
  for (int fd = 0; fd < 1024 && !found; fd++) {
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    if (getsockname(fd, (struct sockaddr *)&sin, &len) != 0 ||
        sin.sin_family != AF_INET || ntohs(sin.sin_port) != port)
      continue;
    rec r = mkrec(ua, fd);
    CHECK_INT(sr_ua_watch_fd(ua, fd, on_fd, &r), SR_EINVAL);
    found = 1;
  }
  CHECK(found);
  sr_ua_unref(ua);
}

static void test_fires_inside_run_once(void) {
  sr_ua *ua = new_ua();
  REQUIRE(ua);
  int p[2];
  REQUIRE(pipe(p) == 0);
  rec r = mkrec(ua, p[0]);
  REQUIRE(sr_ua_watch_fd(ua, p[0], on_fd, &r) == 0);
  CHECK_INT(run(ua, 0), 0); /* nothing to read */
  CHECK_INT(r.calls, 0);
  poke(p[1]);
  CHECK_INT(r.calls, 0); /* never outside run_once */
  CHECK_INT(run(ua, BOUND_MS), 1);
  CHECK_INT(r.calls, 1);
  CHECK_INT(run(ua, 0), 0); /* drained: quiet again */
  CHECK_INT(r.calls, 1);
  /* Level-triggered: a byte left unread fires on every turn. */
  r.drain = 0;
  poke(p[1]);
  CHECK_INT(run(ua, BOUND_MS), 1);
  CHECK_INT(run(ua, 0), 1);
  CHECK_INT(r.calls, 3);
  /* The end of the stream is reported too (the callback's read gets 0,
   * which it counts in wrong_args). */
  r.drain = 1;
  CHECK_INT(run(ua, 0), 1); /* reads the byte left */
  CHECK_INT(r.wrong_args, 0);
  close(p[1]);
  CHECK_INT(run(ua, BOUND_MS), 1);
  CHECK_INT(r.calls, 5);
  CHECK_INT(r.outside_run, 0);
  CHECK_INT(r.wrong_args, 1);
  /* Unwatched: silent even though the descriptor stays readable. */
  CHECK_INT(sr_ua_unwatch_fd(ua, p[0]), 0);
  CHECK_INT(run(ua, 0), 0);
  CHECK_INT(r.calls, 5);
  sr_ua_unref(ua);
  close(p[0]);
}

static void test_second_watch_is_refused(void) {
  sr_ua *ua = new_ua();
  REQUIRE(ua);
  int p[2];
  REQUIRE(pipe(p) == 0);
  rec r1 = mkrec(ua, p[0]), r2 = mkrec(ua, p[0]);
  REQUIRE(sr_ua_watch_fd(ua, p[0], on_fd, &r1) == 0);
  CHECK_INT(sr_ua_watch_fd(ua, p[0], on_fd, &r2), SR_EINVAL);
  poke(p[1]);
  CHECK_INT(run(ua, BOUND_MS), 1);
  CHECK_INT(r1.calls, 1); /* the first watch stays in force */
  CHECK_INT(r2.calls, 0);
  /* After an unwatch the descriptor can be watched again. */
  CHECK_INT(sr_ua_unwatch_fd(ua, p[0]), 0);
  CHECK_INT(sr_ua_watch_fd(ua, p[0], on_fd, &r2), 0);
  poke(p[1]);
  CHECK_INT(run(ua, BOUND_MS), 1);
  CHECK_INT(r1.calls, 1);
  CHECK_INT(r2.calls, 1);
  /* Closed while watched (a misuse): the number stays watched until
   * unwatched, even when a new descriptor reuses it. */
  int num = p[0];
  close(p[0]);
  close(p[1]);
  REQUIRE(pipe(p) == 0);
  REQUIRE(p[0] == num);
  CHECK_INT(sr_ua_watch_fd(ua, p[0], on_fd, &r1), SR_EINVAL);
  CHECK_INT(sr_ua_unwatch_fd(ua, p[0]), 0);
  CHECK_INT(sr_ua_watch_fd(ua, p[0], on_fd, &r1), 0);
  poke(p[1]);
  CHECK_INT(run(ua, BOUND_MS), 1);
  CHECK_INT(r1.calls, 2);
  CHECK_INT(r2.calls, 1);
  sr_ua_unref(ua);
  close(p[0]);
  close(p[1]);
}

/* Two readable pipes in one epoll batch; whichever callback runs first
 * unwatches both, so the other, still in the batch, must not run. */
static void test_unwatch_inside_callback(void) {
  sr_ua *ua = new_ua();
  REQUIRE(ua);
  int a[2], b[2];
  REQUIRE(pipe(a) == 0 && pipe(b) == 0);
  rec ra = mkrec(ua, a[0]), rb = mkrec(ua, b[0]);
  ra.unwatch_fd[0] = rb.unwatch_fd[0] = a[0];
  ra.unwatch_fd[1] = rb.unwatch_fd[1] = b[0];
  REQUIRE(sr_ua_watch_fd(ua, a[0], on_fd, &ra) == 0);
  REQUIRE(sr_ua_watch_fd(ua, b[0], on_fd, &rb) == 0);
  poke(a[1]);
  poke(b[1]);
  CHECK(run(ua, BOUND_MS) >= 1);
  CHECK_INT(ra.calls + rb.calls, 1);
  CHECK_INT(run(ua, 0), 0);
  CHECK_INT(ra.calls + rb.calls, 1);
  CHECK_INT(sr_ua_unwatch_fd(ua, a[0]), SR_EINVAL); /* gone already */
  sr_ua_unref(ua);
  close(a[0]); close(a[1]); close(b[0]); close(b[1]);
}

/* A callback unwatches another descriptor of the same batch and watches
 * it again: the old watch's pending event must not reach the old
 * callback; the new watch fires on the next turn. */
static void test_rewatch_inside_callback(void) {
  sr_ua *ua = new_ua();
  REQUIRE(ua);
  int a[2], b[2];
  REQUIRE(pipe(a) == 0 && pipe(b) == 0);
  rec ra = mkrec(ua, a[0]), rb = mkrec(ua, b[0]), rb2 = mkrec(ua, b[0]);
  rec ra2 = mkrec(ua, a[0]);
  /* Whichever fires first swaps the other's watch. */
  ra.unwatch_fd[0] = b[0];
  ra.rewatch = 1;
  ra.rec2 = &rb2;
  rb.unwatch_fd[0] = a[0];
  rb.rewatch = 1;
  rb.rec2 = &ra2;
  REQUIRE(sr_ua_watch_fd(ua, a[0], on_fd, &ra) == 0);
  REQUIRE(sr_ua_watch_fd(ua, b[0], on_fd, &rb) == 0);
  poke(a[1]);
  poke(b[1]);
  CHECK(run(ua, BOUND_MS) >= 1);
  CHECK_INT(ra.calls + rb.calls, 1);
  /* The swapped one is still readable and fires through its new watch. */
  for (int i = 0; i < 10 && rb2.calls + ra2.calls == 0; i++) run(ua, BOUND_MS);
  CHECK_INT(rb2.calls + ra2.calls, 1);
  CHECK_INT(ra.calls + rb.calls, 1);
  CHECK_INT(ra.wrong_args + rb.wrong_args + ra2.wrong_args + rb2.wrong_args, 0);
  sr_ua_unref(ua);
  close(a[0]); close(a[1]); close(b[0]); close(b[1]);
}

/* sr_ua_close from a watch callback, other events still in the batch. */
static void test_close_inside_callback(void) {
  sr_ua *ua = new_ua();
  REQUIRE(ua);
  int a[2], b[2];
  REQUIRE(pipe(a) == 0 && pipe(b) == 0);
  rec ra = mkrec(ua, a[0]), rb = mkrec(ua, b[0]);
  ra.close_ua = rb.close_ua = 1;
  REQUIRE(sr_ua_watch_fd(ua, a[0], on_fd, &ra) == 0);
  REQUIRE(sr_ua_watch_fd(ua, b[0], on_fd, &rb) == 0);
  poke(a[1]);
  poke(b[1]);
  CHECK(run(ua, BOUND_MS) >= 1);
  CHECK_INT(ra.calls + rb.calls, 1);
  CHECK_INT(sr_ua_fd(ua), -1);
  CHECK_INT(sr_ua_unwatch_fd(ua, a[0]), SR_ECLOSED);
  CHECK_INT(sr_ua_watch_fd(ua, a[0], on_fd, &ra), SR_ECLOSED);
  CHECK_INT(run(ua, 0), SR_ECLOSED);
  /* The descriptors stay the application's. */
  CHECK(fcntl(a[0], F_GETFD) >= 0 && fcntl(b[0], F_GETFD) >= 0);
  sr_ua_unref(ua);
  close(a[0]); close(a[1]); close(b[0]); close(b[1]);
}

static void test_callback_error_stops_the_turn(void) {
  sr_ua *ua = new_ua();
  REQUIRE(ua);
  int p[2];
  REQUIRE(pipe(p) == 0);
  rec r = mkrec(ua, p[0]);
  r.raise = 1;
  REQUIRE(sr_ua_watch_fd(ua, p[0], on_fd, &r) == 0);
  poke(p[1]);
  CHECK_INT(run(ua, BOUND_MS), SR_ECALLBACK);
  CHECK_INT(r.calls, 1);
  CHECK_INT(run(ua, 0), 0); /* the error was reported once */
  sr_ua_unref(ua);
  close(p[0]);
  close(p[1]);
}

/* The last unref releases live watches (ASan's leak check sees a miss)
 * and leaves the descriptors open. */
static void test_free_releases_watches(void) {
  sr_ua *ua = new_ua();
  REQUIRE(ua);
  int p[2], q[2];
  REQUIRE(pipe(p) == 0 && pipe(q) == 0);
  rec r = mkrec(ua, p[0]), s = mkrec(ua, q[0]);
  REQUIRE(sr_ua_watch_fd(ua, p[0], on_fd, &r) == 0);
  REQUIRE(sr_ua_watch_fd(ua, q[0], on_fd, &s) == 0);
  CHECK_INT(sr_ua_unwatch_fd(ua, q[0]), 0);
  sr_ua_unref(ua);
  CHECK(fcntl(p[0], F_GETFD) >= 0);
  CHECK_INT(write(p[1], "x", 1), 1);
  CHECK_INT(r.calls + s.calls, 0);
  close(p[0]); close(p[1]); close(q[0]); close(q[1]);
}

/* A watched descriptor next to SIP traffic: both are served by one
 * sr_ua_run_once wait. */
static int g_rung;
static void on_state(sr_session *s, sr_session_state st, void *ud) {
  (void)s; (void)ud;
  if (st == SR_SESSION_ESTABLISHED) g_rung = 1;
}
static void on_invite(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua; (void)ud;
  sr_invitation_accept(inv, NULL);
}
static int established(void *ctx) { (void)ctx; return g_rung; }

static void test_alongside_sip(void) {
  sr_ua *a = t_ua("alice", 0, 0, NULL), *b = t_ua("bob", 0, 0, NULL);
  REQUIRE(a && b);
  sr_ua_delegate d = {.on_invite = on_invite};
  sr_ua_set_delegate(b, &d, NULL);
  int p[2];
  REQUIRE(pipe(p) == 0);
  rec r = mkrec(a, p[0]);
  REQUIRE(sr_ua_watch_fd(a, p[0], on_fd, &r) == 0);
  sr_session *s = NULL;
  REQUIRE(sr_ua_make_inviter(a, t_target(b, "bob", SR_TRANSPORT_UDP), NULL,
                             &s) == 0);
  sr_session_delegate sd = {.on_state = on_state};
  sr_session_set_delegate(s, &sd, NULL);
  poke(p[1]);
  REQUIRE(sr_inviter_invite(s) == 0);
  CHECK(t_drive(established, NULL, BOUND_MS));
  CHECK_INT(r.calls, 1);
  sr_session_unref(s);
  t_free_uas();
  close(p[0]);
  close(p[1]);
}

int main(void) {
  RUN(test_bad_args);
  RUN(test_library_socket_refused);
  RUN(test_fires_inside_run_once);
  RUN(test_second_watch_is_refused);
  RUN(test_unwatch_inside_callback);
  RUN(test_rewatch_inside_callback);
  RUN(test_close_inside_callback);
  RUN(test_callback_error_stops_the_turn);
  RUN(test_free_releases_watches);
  RUN(test_alongside_sip);
  return DONE();
}
