/*
 * test_timers.c — the loop's timers (csrc/loop.c): timers fire once, in
 * deadline order, whatever the order they were armed, stopped or moved
 * in; a stopped timer never fires; a callback may arm and stop others;
 * a timeout of a second or more is rounded up to the 64 ms tick (never
 * earlier than asked), so timers armed close together share a deadline.
 */
#include "internal.h"
#undef REQUIRE /* libosip2's headers have one of their own */
#include "harness.h"
#include "uas.h"

enum { N = 300 };

static sr_ua *A;
static sr__timer timers[N];
static uint64_t deadline[N];
static int fired[N], order[N], nfired;

static void on_fire(void *arg) {
  int i = (int)((sr__timer *)arg - timers);
  fired[i]++;
  if (nfired < N) order[nfired++] = i;
}

static void arm(int i, int64_t delay) {
  uint64_t before = sr__now_ms();
  sr__timer_start(A, &timers[i], delay);
  deadline[i] = A->heap[timers[i].slot - 1].when; /* what the heap keeps */
  CHECK(deadline[i] >= before + (uint64_t)delay);
  CHECK(deadline[i] <= sr__now_ms() + (uint64_t)delay);
}

static int count_fired(void *want) { return nfired >= *(int *)want; }

static void reset(void) {
  memset(fired, 0, sizeof fired);
  nfired = 0;
  for (int i = 0; i < N; i++) sr__timer_init(&timers[i], on_fire, &timers[i]);
}

static void test_deadline_rounding(void) {
  CHECK(sr__timer_deadline(1000, 0) == 1000);
  CHECK(sr__timer_deadline(1000, -5) == 1000);
  CHECK(sr__timer_deadline(1001, 999) == 2000); /* short: exact */
  for (uint64_t now = 5000; now < 5200; now += 7) {
    uint64_t w = sr__timer_deadline(now, 1000);
    CHECK(w % SR__TICK_MS == 0);
    CHECK(w >= now + 1000 && w < now + 1000 + SR__TICK_MS);
    uint64_t j = sr__timer_deadline(now, 32000);
    CHECK(j % SR__TICK_MS == 0 && j >= now + 32000);
  }
  /* Long timeouts falling due within one tick share its deadline. */
  CHECK(sr__timer_deadline(6393, 5000) == 11456);
  CHECK(sr__timer_deadline(6456, 5000) == 11456);
  CHECK(sr__timer_deadline(6457, 5000) == 11520);
}

/* Many timers, armed in a scrambled order, some moved, some stopped. */
static void test_order(void) {
  reset();
  unsigned x = 12345;
  for (int i = 0; i < N; i++) {
    x = x * 1103515245u + 12345u;
    arm(i, (int64_t)((x >> 16) % 120));
  }
  int stopped = 0;
  for (int i = 0; i < N; i += 7) { /* moved: later, earlier, same */
    arm(i, (int64_t)(i % 3 == 0 ? 130 : i % 3 == 1 ? 1 : 60));
  }
  for (int i = 3; i < N; i += 10) {
    sr__timer_stop(A, &timers[i]);
    sr__timer_stop(A, &timers[i]); /* twice: harmless */
    stopped++;
  }
  CHECK_INT((int)A->nheap, N - stopped);
  int want = N - stopped;
  CHECK(t_drive(count_fired, &want, 10000));
  CHECK_INT(nfired, want);
  for (int i = 0; i < N; i++)
    CHECK_INT(fired[i], i >= 3 && (i - 3) % 10 == 0 ? 0 : 1);
  for (int k = 1; k < nfired; k++)
    CHECK(deadline[order[k - 1]] <= deadline[order[k]]);
  for (int k = 0; k < nfired; k++) CHECK(timers[order[k]].slot == 0);
  CHECK_INT((int)A->nheap, 0);
}

/* Callbacks that arm and stop other timers while the loop runs them. */
static int chain_left;
static void chain(void *arg) {
  int i = (int)((sr__timer *)arg - timers);
  fired[i]++;
  if (nfired < N) order[nfired++] = i;
  sr__timer_stop(A, &timers[i + 100]); /* a sibling never fires */
  if (--chain_left > 0) sr__timer_start(A, &timers[i + 1], 0);
}

static void test_rearm_from_callback(void) {
  reset();
  for (int i = 0; i < 10; i++) sr__timer_init(&timers[i], chain, &timers[i]);
  for (int i = 100; i < 110; i++) sr__timer_start(A, &timers[i], 200);
  chain_left = 10;
  sr__timer_start(A, &timers[0], 0);
  int want = 10;
  CHECK(t_drive(count_fired, &want, 10000));
  for (int i = 0; i < 10; i++) CHECK_INT(order[i], i);
  CHECK_INT((int)A->nheap, 0);
  for (int i = 100; i < 110; i++) CHECK_INT(fired[i], 0);
}

int main(void) {
  A = t_ua("timers", 0, 0, NULL);
  if (!A || !t_target(A, "timers", SR_TRANSPORT_UDP)) return 1;
  RUN(test_deadline_rounding);
  RUN(test_order);
  RUN(test_rearm_from_callback);
  t_free_uas();
  return DONE();
}
