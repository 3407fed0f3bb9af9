/*
 * text.h — private: the character classes and small span helpers the
 * hand-written parsers share (message.c, auth.c). Locale-free on purpose.
 */
#ifndef SR_TEXT_H
#define SR_TEXT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static inline int is_alpha(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static inline int is_digit(int c) { return c >= '0' && c <= '9'; }
static inline int is_alnum(int c) { return is_alpha(c) || is_digit(c); }
static inline int is_lws(int c) { return c == ' ' || c == '\t'; }
static inline int is_ctl(int c) { return (c >= 0 && c < 0x20) || c == 0x7f; }
/* The first control character of s (HTAB passed over when tab_ok: header
 * values and reason phrases allow it), or NULL. */
static inline const char *find_ctl(const char *s, int tab_ok) {
  for (; *s; s++)
    if (is_ctl((unsigned char)*s) && !(tab_ok && *s == '\t')) return s;
  return NULL;
}
static inline int to_lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

static inline int hex_val(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* RFC 3261 token: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" /
 * "`" / "'" / "~" */
static inline int is_token(int c) {
  if (is_alnum(c)) return 1;
  switch (c) {
  case '-': case '.': case '!': case '%': case '*':
  case '_': case '+': case '`': case '\'': case '~':
    return 1;
  default:
    return 0;
  }
}

/* A NUL-terminated copy of s[0..n), or NULL. */
static inline char *dupn(const char *s, size_t n) {
  if (n == SIZE_MAX) return NULL;
  char *d = sr__malloc(n + 1);
  if (!d) return NULL;
  if (n) memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

/* s[0..n) equals lit, ignoring ASCII case. */
static inline int span_caseeq(const char *s, size_t n, const char *lit) {
  if (strlen(lit) != n) return 0;
  for (size_t i = 0; i < n; i++)
    if (to_lower((unsigned char)s[i]) != to_lower((unsigned char)lit[i]))
      return 0;
  return 1;
}

#endif
