/*
 * util.c — logging, random tokens and the chained hash tables the layers
 * index their objects with (transactions by branch, sessions by Call-ID).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *level_names[] = {"error", "warning", "info", "debug"};

void sr__log(sr_ua *ua, int level, const char *fmt, ...) {
  if (!ua || level > ua->opt.log_level) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (ua->opt.log_fn) {
    ua->opt.log_fn(level, buf, ua->opt.log_user_data);
    return;
  }
  fprintf(stderr, "sipreferral %s: %s\n",
          level_names[level < 0 ? 0 : level > 3 ? 3 : level], buf);
}

/* xorshift32: tags and branches need uniqueness, not secrecy; the state is
 * seeded from the OS per UA. */
static inline uint32_t xorshift32(uint32_t x) {
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return x;
}

void sr__random_token(sr_ua *ua, char *out, size_t n) {
  static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  uint32_t x = ua->rand_state;
  for (size_t i = 0; i + 1 < n; i++) {
    x = xorshift32(x);
    out[i] = al[x % 36];
  }
  ua->rand_state = x;
  if (n) out[n - 1] = 0;
}

uint32_t sr__random_u32(sr_ua *ua) {
  return ua->rand_state = xorshift32(ua->rand_state);
}

static uint32_t hash_str(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

#define NEXT(obj, off) (*(void **)((char *)(obj) + (off)))

void *sr__hash_find(sr__hash *h, size_t off, sr__key_fn key, const char *k) {
  if (!h->nbuckets || !k) return NULL;
  for (void *o = h->buckets[hash_str(k) & (h->nbuckets - 1)]; o;
       o = NEXT(o, off))
    if (strcmp(key(o), k) == 0) return o;
  return NULL;
}

void *sr__hash_next(void *obj, size_t off, sr__key_fn key, const char *k) {
  for (void *o = NEXT(obj, off); o; o = NEXT(o, off))
    if (strcmp(key(o), k) == 0) return o;
  return NULL;
}

static int grow(sr__hash *h, size_t off, sr__key_fn key) {
  size_t nb = h->nbuckets ? h->nbuckets * 2 : 64;
  void **b = sr__calloc(nb, sizeof *b);
  if (!b) return SR_ENOMEM;
  for (size_t i = 0; i < h->nbuckets; i++) {
    void *o = h->buckets[i];
    while (o) {
      void *next = NEXT(o, off);
      size_t j = hash_str(key(o)) & (nb - 1);
      NEXT(o, off) = b[j];
      b[j] = o;
      o = next;
    }
  }
  sr__free(h->buckets);
  h->buckets = b;
  h->nbuckets = nb;
  return 0;
}

int sr__hash_insert(sr__hash *h, size_t off, sr__key_fn key, void *obj) {
  if (h->count >= h->nbuckets && grow(h, off, key) < 0 && !h->nbuckets)
    return SR_ENOMEM;
  size_t j = hash_str(key(obj)) & (h->nbuckets - 1);
  NEXT(obj, off) = h->buckets[j];
  h->buckets[j] = obj;
  h->count++;
  return 0;
}

void sr__hash_remove(sr__hash *h, size_t off, sr__key_fn key, void *obj) {
  if (!h->nbuckets) return;
  void **pp = &h->buckets[hash_str(key(obj)) & (h->nbuckets - 1)];
  while (*pp) {
    if (*pp == obj) {
      *pp = NEXT(obj, off);
      NEXT(obj, off) = NULL;
      h->count--;
      return;
    }
    pp = &NEXT(*pp, off);
  }
}

void sr__hash_free(sr__hash *h) {
  sr__free(h->buckets);
  h->buckets = NULL;
  h->nbuckets = h->count = 0;
}

char *sr__put_str(char *out, const char *s) {
  size_t n = strlen(s);
  memcpy(out, s, n + 1);
  return out + n;
}

char *sr__put_int(char *out, long long v) {
  char d[24];
  int k = 0;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do {
    d[k++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) *out++ = '-';
  while (k) *out++ = d[--k];
  *out = '\0';
  return out;
}
