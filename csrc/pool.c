/*
 * pool.c — the allocator libosip2 and the core use: per-thread free lists
 * by size.
 *
 * Parsing or writing one SIP message makes libosip2 allocate and free a
 * hundred small strings and structs; a transfer, about two thousand. With
 * glibc's malloc most of them miss its small per-thread cache (seven
 * blocks per size) and take the slow path, which was a fifth of the
 * agent's CPU. Here a freed block goes onto its thread's list for its
 * size class (16-byte steps up to 1 KiB, then 1 KiB steps up to 16 KiB,
 * at most 64 KiB kept per class) and the next allocation of that class
 * pops it. The 1–16 KiB classes are for message buffers (an INVITE with
 * its SDP is over 1 KiB; osip_message_to_str starts with 8000 bytes):
 * glibc serves those from its bins, not its cache, and consolidates its
 * fast bins to do it. Larger blocks, and blocks beyond the cap, go to
 * malloc/free.
 *
 * Every block carries a 16-byte header (its class, a magic number and
 * its capacity), so a block may be freed on any thread, and a block that
 * is not ours (a magic mismatch) goes to free(). libosip2 takes this allocator for the
 * whole process (osip_set_allocators), before the first UA is made and
 * so before it allocates anything. Under AddressSanitizer nothing is
 * kept: every free reaches ASan, which also catches a block freed with
 * the wrong allocator (the header makes such pointers foreign to it).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define POOL_KEEP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_KEEP 0
#endif
#endif
#ifndef POOL_KEEP
#define POOL_KEEP 1
#endif

/* Classes 1..SMALL: 16-byte steps, 24 to 1032 bytes; SMALL+1..NCLASS-1:
 * 1 KiB steps to 16 KiB. A small class holds SLACK bytes over a multiple
 * of 16 because glibc adds an 8-byte size field to our 16-byte header
 * and rounds the chunk up to 16: those 8 bytes would be padding. */
enum { STEP = 16, SLACK = 8, SMALL = 64, BIG_STEP = 1024,
       NCLASS = SMALL + 16, KEEP_BYTES = 64 * 1024 };

static inline uint32_t class_of(size_t size) {
  if (size <= STEP + SLACK) return 1;
  if (size <= SMALL * STEP + SLACK) return (uint32_t)((size - SLACK + STEP - 1) / STEP);
  if (size <= (NCLASS - SMALL) * BIG_STEP)
    return SMALL + (uint32_t)((size - 1) / BIG_STEP);
  return NCLASS;
}

static inline size_t class_bytes(uint32_t cls) {
  return cls <= SMALL ? (size_t)cls * STEP + SLACK
                      : (size_t)(cls - SMALL + 1) * BIG_STEP;
}

typedef union hdr {
  struct {
    uint32_t cls; /* NCLASS: a large block, straight from malloc */
    uint32_t magic;
    size_t cap;   /* usable bytes after the header */
  } h;
  max_align_t align;
} hdr;

#define MAGIC 0x5352504fu
_Static_assert(sizeof(hdr) % 16 == 0, "the header keeps malloc's alignment");

typedef struct cache {
  union hdr *head[NCLASS]; /* each kept block links to the next */
  uint32_t n[NCLASS];
} cache;

/* Initial-exec: in the dlopen'd Python module the default model calls
 * __tls_get_addr on every access (~70 k instructions per transfer). The
 * static TLS space a dlopen'd library may take is small, so the thread
 * has a pointer there and its cache on the heap. */
static __thread cache *tcp __attribute__((tls_model("initial-exec")));
static pthread_key_t drain_key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* A thread's kept blocks go back to malloc when it ends. */
static void drain(void *arg) {
  cache *c = arg;
  for (int i = 0; i < NCLASS; i++) {
    while (c->head[i]) {
      hdr *h = c->head[i];
      c->head[i] = *(hdr **)(h + 1);
      free(h);
    }
  }
  if (tcp == c) tcp = NULL; /* a later free (another destructor) starts anew */
  free(c);
}

static void *pool_malloc(size_t size) {
  uint32_t cls = class_of(size);
  cache *c = tcp;
  if (c && cls < NCLASS && c->head[cls]) {
    hdr *h = c->head[cls];
    c->head[cls] = *(hdr **)(h + 1);
    c->n[cls]--;
    return h + 1;
  }
  size_t cap = cls < NCLASS ? class_bytes(cls) : size;
  if (cap > SIZE_MAX - sizeof(hdr)) return NULL;
  hdr *h = malloc(sizeof(hdr) + cap);
  if (!h) return NULL;
  h->h.cls = cls;
  h->h.magic = MAGIC;
  h->h.cap = cap;
  return h + 1;
}

/* Everything but a kept block: out of line, so the common path stays a
 * few instructions with no division. */
__attribute__((noinline)) static void free_slow(void *p) {
  hdr *h = (hdr *)p - 1;
  if (h->h.magic != MAGIC) { /* not ours: a plain malloc'd block */
    free(p);
    return;
  }
  uint32_t cls = h->h.cls;
  cache *c = tcp;
  if (POOL_KEEP && !c && cls < NCLASS && (c = calloc(1, sizeof *c))) {
    /* The thread's first kept block: its cache, freed by drain() when
     * the thread ends. */
    tcp = c;
    pthread_setspecific(drain_key, c);
  }
  if (POOL_KEEP && c && cls < NCLASS && c->n[cls] * h->h.cap < KEEP_BYTES) {
    *(hdr **)p = c->head[cls];
    c->head[cls] = h;
    c->n[cls]++;
    return;
  }
  h->h.magic = 0;
  free(h);
}

static void pool_free(void *p) {
  if (!p) return;
  hdr *h = (hdr *)p - 1;
  uint32_t cls = h->h.cls;
  cache *c = tcp;
  if (POOL_KEEP && c && h->h.magic == MAGIC && cls < NCLASS &&
      c->n[cls] * h->h.cap < KEEP_BYTES) {
    *(hdr **)p = c->head[cls];
    c->head[cls] = h; /* the block's start: "still reachable" to valgrind */
    c->n[cls]++;
    return;
  }
  free_slow(p);
}

static void *pool_realloc(void *p, size_t size) {
  if (!p) return pool_malloc(size);
  hdr *h = (hdr *)p - 1;
  if (h->h.magic != MAGIC) return realloc(p, size); /* not ours */
  if (size <= h->h.cap) return p;
  void *q = pool_malloc(size);
  if (!q) return NULL;
  memcpy(q, p, h->h.cap);
  pool_free(p);
  return q;
}

void *sr__malloc(size_t size) { return pool_malloc(size); }
void *sr__realloc(void *p, size_t size) { return pool_realloc(p, size); }
void sr__free(void *p) { pool_free(p); }

void *sr__calloc(size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) return NULL;
  void *p = pool_malloc(n * size);
  if (p) memset(p, 0, n * size); /* a kept block holds its last use */
  return p;
}

char *sr__strndup(const char *s, size_t n) {
  size_t len = strnlen(s, n);
  char *d = pool_malloc(len + 1);
  if (!d) return NULL;
  memcpy(d, s, len);
  d[len] = '\0';
  return d;
}

char *sr__strdup(const char *s) { return s ? sr__strndup(s, SIZE_MAX) : NULL; }

/* Another copy of this library in the process (the Lua or Python module
 * next to a program linked with it) may have installed its pool first:
 * that one stays, as every copy's blocks are alike. Unless that copy has
 * since been unloaded (a Lua state closed, libosip2 kept loaded by
 * someone else): then the pointer leads nowhere, and ours replaces it. */
static void install(void) {
  Dl_info info;
  if (osip_malloc_func && dladdr((void *)osip_malloc_func, &info)) return;
  pthread_key_create(&drain_key, drain);
  osip_set_allocators(pool_malloc, pool_realloc, pool_free);
}

void sr__pool_install(void) { pthread_once(&once, install); }

/* At load time, before anything in the process can allocate through
 * libosip2; sr_ua_new calls it again, which also links this file into
 * programs built against the static library. */
__attribute__((constructor)) static void pool_at_load(void) {
  sr__pool_install();
}
