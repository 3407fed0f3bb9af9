/*
 * loop.c — the one event loop: an epoll set (so a host loop can watch a
 * single fd) and a binary min-heap of timers embedded in their owners
 * (arming a timer allocates nothing; timeouts of a second or more are
 * rounded up to a 64 ms tick so that they expire together). The application may add descriptors
 * of its own (sr_ua_watch_fd) to wait on everything in one system call.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>

#include "internal.h"

/* An application descriptor in the epoll set (sr_ua_watch_fd). An
 * unwatched one stays in the list, dead, until the loop turn ends: the
 * current epoll batch may still point at it. */
struct sr__watch {
  sr__io io;
  sr_ua *ua;
  sr_fd_cb cb;
  void *user_data;
  int dead;
  struct sr__watch *next;
};

uint64_t sr__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void sr__timer_init(sr__timer *t, void (*fn)(void *), void *arg) {
  t->slot = 0;
  t->fn = fn;
  t->arg = arg;
}

/* The heap holds each deadline next to its timer: a sift compares
 * entries of one array instead of reading the struct of every timer on
 * its path (thousands are armed under load, in as many owners). */
static void heap_set(sr_ua *ua, size_t i, sr__heap_entry e) {
  ua->heap[i] = e;
  e.t->slot = i + 1;
}

static void sift_up(sr_ua *ua, size_t i) {
  sr__heap_entry e = ua->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (ua->heap[parent].when <= e.when) break;
    heap_set(ua, i, ua->heap[parent]);
    i = parent;
  }
  heap_set(ua, i, e);
}

static void sift_down(sr_ua *ua, size_t i) {
  sr__heap_entry e = ua->heap[i];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    uint64_t mw = e.when;
    if (l < ua->nheap && ua->heap[l].when < mw) { m = l; mw = ua->heap[l].when; }
    if (r < ua->nheap && ua->heap[r].when < mw) m = r;
    if (m == i) break;
    heap_set(ua, i, ua->heap[m]);
    i = m;
  }
  heap_set(ua, i, e);
}

/* Puts the entry at i back in order after its deadline changed. */
static void reorder(sr_ua *ua, size_t i) {
  if (i > 0 && ua->heap[(i - 1) / 2].when > ua->heap[i].when) sift_up(ua, i);
  else sift_down(ua, i);
}

void sr__timer_stop(sr_ua *ua, sr__timer *t) {
  if (!t->slot) return;
  size_t i = t->slot - 1;
  t->slot = 0;
  ua->nheap--;
  if (i == ua->nheap) return;
  heap_set(ua, i, ua->heap[ua->nheap]);
  reorder(ua, i);
}

uint64_t sr__timer_deadline(uint64_t now, int64_t delay_ms) {
  if (delay_ms < 0) delay_ms = 0;
  uint64_t when = now + (uint64_t)delay_ms;
  /* A timeout of a second or more needs no millisecond precision: on the
   * next tick, the ones falling due together share a wake-up (Timer J, K,
   * D, I... expire at 200 a second under load, each else its own). */
  if (delay_ms >= SR__COARSE_MS)
    when = (when + SR__TICK_MS - 1) / SR__TICK_MS * SR__TICK_MS;
  return when;
}

void sr__timer_start(sr_ua *ua, sr__timer *t, int64_t delay_ms) {
  if (ua->closed) return;
  uint64_t when = sr__timer_deadline(sr__now_ms(), delay_ms);
  if (t->slot) {
    size_t i = t->slot - 1;
    ua->heap[i].when = when;
    reorder(ua, i);
    return;
  }
  if (ua->nheap == ua->capheap) {
    size_t cap = ua->capheap ? ua->capheap * 2 : 64;
    sr__heap_entry *h = sr__realloc(ua->heap, cap * sizeof *h);
    if (!h) {
      sr__log(ua, SR_LOG_ERROR, "timer heap: out of memory");
      return;
    }
    ua->heap = h;
    ua->capheap = cap;
  }
  ua->heap[ua->nheap] = (sr__heap_entry){when, t};
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

static void watch_ready(sr__io *io, uint32_t events) {
  (void)events;
  struct sr__watch *w =
      (struct sr__watch *)((char *)io - offsetof(struct sr__watch, io));
  if (!w->dead) w->cb(w->ua, w->io.fd, w->user_data);
}

/* Frees dead watches; only between loop turns. */
static void watch_reap(sr_ua *ua) {
  struct sr__watch **pp = &ua->watches;
  while (*pp) {
    struct sr__watch *w = *pp;
    if (w->dead) {
      *pp = w->next;
      sr__free(w);
    } else {
      pp = &w->next;
    }
  }
}

static void watch_kill(sr_ua *ua, struct sr__watch *w) {
  w->dead = 1;
  sr__io_del(ua, &w->io);
}

int sr_ua_watch_fd(sr_ua *ua, int fd, sr_fd_cb cb, void *user_data) {
  if (!ua || !cb || fd < 0) return SR_EINVAL;
  if (ua->closed) return SR_ECLOSED;
  for (struct sr__watch *w = ua->watches; w; w = w->next)
    if (!w->dead && w->io.fd == fd) return SR_EINVAL;
  struct sr__watch *w = sr__calloc(1, sizeof *w);
  if (!w) return SR_ENOMEM;
  w->io.fd = fd;
  w->io.on_ready = watch_ready;
  w->ua = ua;
  w->cb = cb;
  w->user_data = user_data;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &w->io};
  if (epoll_ctl(ua->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    int e = errno;
    sr__free(w);
    switch (e) {
    case ENOMEM: case ENOSPC: return SR_ENOMEM;
    /* The caller's mistakes: a library socket (EEXIST), a regular file
     * (EPERM), no such descriptor, the epoll fd itself (EINVAL, ELOOP). */
    case EEXIST: case EPERM: case EBADF: case EINVAL: case ELOOP:
      return SR_EINVAL;
    default: return SR_EIO;
    }
  }
  w->next = ua->watches;
  ua->watches = w;
  return 0;
}

int sr_ua_unwatch_fd(sr_ua *ua, int fd) {
  if (!ua) return SR_EINVAL;
  if (ua->closed) return SR_ECLOSED;
  for (struct sr__watch *w = ua->watches; w; w = w->next)
    if (!w->dead && w->io.fd == fd) {
      watch_kill(ua, w);
      if (ua->depth == 0) watch_reap(ua);
      return 0;
    }
  return SR_EINVAL;
}

void sr__watch_close_all(sr_ua *ua) {
  for (struct sr__watch *w = ua->watches; w; w = w->next)
    if (!w->dead) watch_kill(ua, w);
  if (ua->depth == 0) watch_reap(ua);
}

int sr_ua_fd(sr_ua *ua) { return ua && !ua->closed ? ua->epfd : -1; }

int sr_ua_next_timeout_ms(sr_ua *ua) {
  if (!ua || ua->closed || ua->nheap == 0) return -1;
  uint64_t now = sr__now_ms(), when = ua->heap[0].when;
  if (when <= now) return 0;
  uint64_t d = when - now;
  return d > 0x7fffffff ? 0x7fffffff : (int)d;
}

/* Runs every timer due now. A timer's callback may arm or stop others. */
static int run_timers(sr_ua *ua) {
  int n = 0;
  uint64_t now = sr__now_ms();
  while (!ua->closed && ua->nheap && ua->heap[0].when <= now) {
    sr__timer *t = ua->heap[0].t;
    sr__timer_stop(ua, t);
    t->fn(t->arg);
    n++;
    if (ua->callback_error) break;
  }
  return n;
}

int sr_ua_set_wait_hooks(sr_ua *ua, sr_wait_hook before, sr_wait_hook after,
                         void *user_data) {
  if (!ua || !before != !after) return SR_EINVAL;
  if (ua->closed) return SR_ECLOSED;
  ua->wait_hooks.before = before;
  ua->wait_hooks.after = after;
  ua->wait_hooks.ud = before ? user_data : NULL;
  return 0;
}

int sr_ua_run_once(sr_ua *ua, int timeout_ms) {
  if (!ua) return SR_EINVAL;
  if (ua->closed) return SR_ECLOSED;
  int next = sr_ua_next_timeout_ms(ua);
  if (next >= 0 && (timeout_ms < 0 || next < timeout_ms)) timeout_ms = next;
  struct epoll_event evs[64];
  int n, err;
  if (timeout_ms != 0 && ua->wait_hooks.before) {
    /* A binding unlocks its interpreter here, so the pair is read before:
     * the UA must not be looked at again until after() has run. */
    sr_wait_hook after = ua->wait_hooks.after;
    void *ud = ua->wait_hooks.ud;
    int epfd = ua->epfd;
    ua->wait_hooks.before(ud);
    n = epoll_wait(epfd, evs, 64, timeout_ms);
    err = errno;
    after(ud);
  } else {
    n = epoll_wait(ua->epfd, evs, 64, timeout_ms);
    err = errno;
  }
  if (n < 0) {
    errno = err;
    if (err == EINTR) return 0;
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
  if (ua->depth == 0) watch_reap(ua);
  int rc = handled;
  if (ua->callback_error) {
    ua->callback_error = 0;
    rc = SR_ECALLBACK;
  }
  sr_ua_unref(ua);
  return rc;
}
