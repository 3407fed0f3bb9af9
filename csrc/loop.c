/*
 * loop.c — the one event loop: an epoll set (so a host loop can watch a
 * single fd) and a binary min-heap of timers embedded in their owners
 * (arming a timer allocates nothing).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>

#include "internal.h"

uint64_t sr__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void sr__timer_init(sr__timer *t, void (*fn)(void *), void *arg) {
  t->when = 0;
  t->slot = 0;
  t->fn = fn;
  t->arg = arg;
}

static void heap_set(sr_ua *ua, size_t i, sr__timer *t) {
  ua->heap[i] = t;
  t->slot = i + 1;
}

static void sift_up(sr_ua *ua, size_t i) {
  sr__timer *t = ua->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (ua->heap[parent]->when <= t->when) break;
    heap_set(ua, i, ua->heap[parent]);
    i = parent;
  }
  heap_set(ua, i, t);
}

static void sift_down(sr_ua *ua, size_t i) {
  sr__timer *t = ua->heap[i];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    uint64_t mw = t->when;
    if (l < ua->nheap && ua->heap[l]->when < mw) { m = l; mw = ua->heap[l]->when; }
    if (r < ua->nheap && ua->heap[r]->when < mw) m = r;
    if (m == i) break;
    heap_set(ua, i, ua->heap[m]);
    i = m;
  }
  heap_set(ua, i, t);
}

void sr__timer_stop(sr_ua *ua, sr__timer *t) {
  if (!t->slot) return;
  size_t i = t->slot - 1;
  t->slot = 0;
  ua->nheap--;
  if (i == ua->nheap) return;
  ua->heap[i] = ua->heap[ua->nheap];
  ua->heap[i]->slot = i + 1;
  sift_down(ua, i);
  sift_up(ua, ua->heap[i]->slot - 1);
}

void sr__timer_start(sr_ua *ua, sr__timer *t, int64_t delay_ms) {
  if (ua->closed) return;
  if (delay_ms < 0) delay_ms = 0;
  uint64_t when = sr__now_ms() + (uint64_t)delay_ms;
  if (t->slot) {
    t->when = when;
    size_t i = t->slot - 1;
    sift_down(ua, i);
    sift_up(ua, t->slot - 1);
    return;
  }
  if (ua->nheap == ua->capheap) {
    size_t cap = ua->capheap ? ua->capheap * 2 : 64;
    sr__timer **h = realloc(ua->heap, cap * sizeof *h);
    if (!h) {
      sr__log(ua, SR_LOG_ERROR, "timer heap: out of memory");
      return;
    }
    ua->heap = h;
    ua->capheap = cap;
  }
  t->when = when;
  ua->heap[ua->nheap] = t;
  t->slot = ua->nheap + 1;
  ua->nheap++;
  sift_up(ua, ua->nheap - 1);
}

int sr__io_add(sr_ua *ua, sr__io *io, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = io};
  return epoll_ctl(ua->epfd, EPOLL_CTL_ADD, io->fd, &ev) == 0 ? 0 : SR_EIO;
}

int sr__io_mod(sr_ua *ua, sr__io *io, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = io};
  return epoll_ctl(ua->epfd, EPOLL_CTL_MOD, io->fd, &ev) == 0 ? 0 : SR_EIO;
}

void sr__io_del(sr_ua *ua, sr__io *io) {
  if (ua->epfd >= 0 && io->fd >= 0)
    epoll_ctl(ua->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

int sr_ua_fd(sr_ua *ua) { return ua && !ua->closed ? ua->epfd : -1; }

int sr_ua_next_timeout_ms(sr_ua *ua) {
  if (!ua || ua->closed || ua->nheap == 0) return -1;
  uint64_t now = sr__now_ms(), when = ua->heap[0]->when;
  if (when <= now) return 0;
  uint64_t d = when - now;
  return d > 0x7fffffff ? 0x7fffffff : (int)d;
}

/* Runs every timer due now. A timer's callback may arm or stop others. */
static int run_timers(sr_ua *ua) {
  int n = 0;
  uint64_t now = sr__now_ms();
  while (!ua->closed && ua->nheap && ua->heap[0]->when <= now) {
    sr__timer *t = ua->heap[0];
    sr__timer_stop(ua, t);
    t->fn(t->arg);
    n++;
    if (ua->callback_error) break;
  }
  return n;
}

int sr_ua_run_once(sr_ua *ua, int timeout_ms) {
  if (!ua) return SR_EINVAL;
  if (ua->closed) return SR_ECLOSED;
  int next = sr_ua_next_timeout_ms(ua);
  if (next >= 0 && (timeout_ms < 0 || next < timeout_ms)) timeout_ms = next;
  struct epoll_event evs[64];
  int n = epoll_wait(ua->epfd, evs, 64, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return 0;
    return SR_EIO;
  }
  ua->refs++; /* the UA survives a close/unref from inside a callback */
  ua->depth++;
  int handled = 0;
  for (int i = 0; i < n && !ua->closed && !ua->callback_error; i++) {
    sr__io *io = evs[i].data.ptr;
    io->on_ready(io, evs[i].events);
    handled++;
  }
  if (!ua->closed && !ua->callback_error) handled += run_timers(ua);
  ua->depth--;
  sr__transport_reap(ua);
  int rc = handled;
  if (ua->callback_error) {
    ua->callback_error = 0;
    rc = SR_ECALLBACK;
  }
  sr_ua_unref(ua);
  return rc;
}
