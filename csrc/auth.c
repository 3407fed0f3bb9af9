/*
 * auth.c — HTTP Digest (RFC 2617, MD5, qop=auth or no qop) for answering
 * 401/407 challenges.
 *
 * The challenge is parsed by hand: auth-params are "name = token" or
 * "name = quoted-string" separated by commas. Quoted values are unescaped
 * before hashing and re-escaped when echoed, so a realm containing a quote
 * survives the round trip and cannot break out of the header we build.
 */
#include "message.h"
#include "text.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <osipparser2/osip_md5.h>

/* ------------------------------------------------------------------ */
/* Challenge                                                           */
/* ------------------------------------------------------------------ */

typedef struct {
  char *realm, *nonce, *opaque, *algorithm, *qop;
} challenge;

static void challenge_free(challenge *c) {
  sr__free(c->realm);
  sr__free(c->nonce);
  sr__free(c->opaque);
  sr__free(c->algorithm);
  sr__free(c->qop);
}

/* A value: quoted-string (unescaped into a new string) or a run of
 * characters up to LWS or ','. Unquoted values are taken more loosely than
 * the token rule because servers send unquoted base64 nonces ("/", "=").
 * Control characters are refused in either form. */
static int parse_value(const char *s, size_t n, size_t *pi, char **out) {
  size_t i = *pi;
  char *d;
  if (i < n && s[i] == '"') {
    d = sr__malloc(n - i);
    if (!d) return SR_ENOMEM;
    size_t k = 0;
    i++;
    for (;;) {
      if (i >= n) {
        sr__free(d);
        return SR_EPARSE;
      }
      char c = s[i];
      if (c == '\\') {
        if (i + 1 >= n) {
          sr__free(d);
          return SR_EPARSE;
        }
        c = s[++i];
      } else if (c == '"') {
        i++;
        break;
      }
      if (is_ctl((unsigned char)c) && c != '\t') {
        sr__free(d);
        return SR_EPARSE;
      }
      d[k++] = c;
      i++;
    }
    d[k] = '\0';
  } else {
    size_t vs = i;
    while (i < n && !is_lws((unsigned char)s[i]) && s[i] != ',' &&
           s[i] != '"') {
      if (is_ctl((unsigned char)s[i])) return SR_EPARSE;
      i++;
    }
    if (i == vs) return SR_EPARSE;
    if (!(d = dupn(s + vs, i - vs))) return SR_ENOMEM;
  }
  *pi = i;
  *out = d;
  return 0;
}

static int parse_challenge(const char *s, challenge *c) {
  size_t n = strlen(s), i = 0;
  while (i < n && is_lws((unsigned char)s[i])) i++;
  size_t ss = i;
  while (i < n && is_token((unsigned char)s[i])) i++;
  if (i == ss) return SR_EPARSE;
  if (!span_caseeq(s + ss, i - ss, "Digest")) return SR_EINVAL;
  if (i >= n || !is_lws((unsigned char)s[i])) return SR_EPARSE;
  for (;;) {
    while (i < n && (is_lws((unsigned char)s[i]) || s[i] == ',')) i++;
    if (i >= n) break;
    size_t ns = i;
    while (i < n && is_token((unsigned char)s[i])) i++;
    size_t ne = i;
    if (ne == ns) return SR_EPARSE;
    while (i < n && is_lws((unsigned char)s[i])) i++;
    if (i >= n || s[i] != '=') return SR_EPARSE;
    i++;
    while (i < n && is_lws((unsigned char)s[i])) i++;
    char *v = NULL;
    int rc = parse_value(s, n, &i, &v);
    if (rc) return rc;
    while (i < n && is_lws((unsigned char)s[i])) i++;
    if (i < n && s[i] != ',') {
      sr__free(v);
      return SR_EPARSE;
    }
    char **slot = NULL;
    const char *nm = s + ns;
    size_t nl = ne - ns;
    if (span_caseeq(nm, nl, "realm"))
      slot = &c->realm;
    else if (span_caseeq(nm, nl, "nonce"))
      slot = &c->nonce;
    else if (span_caseeq(nm, nl, "opaque"))
      slot = &c->opaque;
    else if (span_caseeq(nm, nl, "algorithm"))
      slot = &c->algorithm;
    else if (span_caseeq(nm, nl, "qop"))
      slot = &c->qop;
    if (!slot) { /* domain, stale, charset, userhash, ...: not needed */
      sr__free(v);
      continue;
    }
    if (*slot) { /* a repeated parameter is ambiguous: refuse it */
      sr__free(v);
      return SR_EPARSE;
    }
    *slot = v;
  }
  if (!c->realm || !c->nonce) return SR_EPARSE;
  return 0;
}

/* Does a qop-options list ("auth,auth-int") offer "auth"? */
static int qop_has_auth(const char *q) {
  const char *p = q;
  while (*p) {
    while (*p == ',' || is_lws((unsigned char)*p)) p++;
    const char *s = p;
    while (*p && *p != ',' && !is_lws((unsigned char)*p)) p++;
    if (span_caseeq(s, (size_t)(p - s), "auth")) return 1;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* MD5 and the output                                                  */
/* ------------------------------------------------------------------ */

static void md5_update(osip_MD5_CTX *ctx, const char *s) {
  size_t n = strlen(s);
  while (n) {
    unsigned chunk = n > 0x40000000u ? 0x40000000u : (unsigned)n;
    osip_MD5Update(ctx, (unsigned char *)(uintptr_t)s, chunk);
    s += chunk;
    n -= chunk;
  }
}

/* hex(MD5(parts[0] ":" parts[1] ":" ...)) */
static void md5_hex(const char *const *parts, int nparts, char out[33]) {
  static const char hex[] = "0123456789abcdef";
  osip_MD5_CTX ctx;
  unsigned char dig[16];
  osip_MD5Init(&ctx);
  for (int i = 0; i < nparts; i++) {
    if (i) md5_update(&ctx, ":");
    md5_update(&ctx, parts[i]);
  }
  osip_MD5Final(dig, &ctx);
  for (int i = 0; i < 16; i++) {
    out[2 * i] = hex[dig[i] >> 4];
    out[2 * i + 1] = hex[dig[i] & 15];
  }
  out[32] = '\0';
}

/* 16 random hex digits. /dev/urandom; when that is not available, rand()
 * seeded once per process (the only state kept between calls). */
static void random_cnonce(char out[17]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char b[8];
  size_t got = 0;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    while (got < sizeof b) {
      ssize_t r = read(fd, b + got, sizeof b - got);
      if (r <= 0) break;
      got += (size_t)r;
    }
    close(fd);
  }
  if (got < sizeof b) {
    static int seeded;
    if (!seeded) {
      srand((unsigned)time(NULL) ^ ((unsigned)getpid() << 16));
      seeded = 1;
    }
    for (size_t i = 0; i < sizeof b; i++) b[i] = (unsigned char)(rand() >> 7);
  }
  for (int i = 0; i < 8; i++) {
    out[2 * i] = hex[b[i] >> 4];
    out[2 * i + 1] = hex[b[i] & 15];
  }
  out[16] = '\0';
}

typedef struct {
  char *buf;
  size_t len, cap;
  int oom;
} strbuf;

static void sb_addn(strbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (n > SIZE_MAX - b->len - 1) {
    b->oom = 1;
    return;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    char *p = sr__realloc(b->buf, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->buf = p;
    b->cap = cap;
  }
  memcpy(b->buf + b->len, s, n);
  b->len += n;
  b->buf[b->len] = '\0';
}

static void sb_add(strbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }

/* ", name=\"value\"" with '"' and '\' escaped as quoted-pairs. */
static void sb_quoted(strbuf *b, const char *sep, const char *name,
                      const char *v) {
  sb_add(b, sep);
  sb_add(b, name);
  sb_add(b, "=\"");
  for (const char *p = v; *p; p++) {
    if (*p == '"' || *p == '\\') sb_addn(b, "\\", 1);
    sb_addn(b, p, 1);
  }
  sb_add(b, "\"");
}

int sr__digest_response(const char *challenge_text, const char *method,
                        const char *uri, const char *username,
                        const char *password, unsigned nc,
                        const char *cnonce, char **out) {
  if (!challenge_text || !method || !uri || !username || !password || !out)
    return SR_EINVAL;
  /* These are echoed into a header: no line breaks or other controls. */
  if (!*method || !*uri || find_ctl(method, 0) || find_ctl(uri, 0) ||
      find_ctl(username, 0) || (cnonce && (!*cnonce || find_ctl(cnonce, 0))))
    return SR_EINVAL;

  challenge c = {0};
  int rc = parse_challenge(challenge_text, &c);
  if (rc) {
    challenge_free(&c);
    return rc;
  }
  if (c.algorithm && !span_caseeq(c.algorithm, strlen(c.algorithm), "MD5")) {
    challenge_free(&c);
    return SR_EINVAL; /* MD5-sess, SHA-256, ...: not supported */
  }
  int use_qop = 0;
  if (c.qop) {
    if (!qop_has_auth(c.qop)) { /* auth-int only */
      challenge_free(&c);
      return SR_EINVAL;
    }
    use_qop = 1;
  }

  char cn[17], ncs[9], ha1[33], ha2[33], resp[33];
  if (!cnonce) {
    random_cnonce(cn);
    cnonce = cn;
  }
  snprintf(ncs, sizeof ncs, "%08x", nc ? nc : 1u);

  const char *p1[] = {username, c.realm, password};
  md5_hex(p1, 3, ha1);
  const char *p2[] = {method, uri};
  md5_hex(p2, 2, ha2);
  if (use_qop) {
    const char *p3[] = {ha1, c.nonce, ncs, cnonce, "auth", ha2};
    md5_hex(p3, 6, resp);
  } else {
    const char *p3[] = {ha1, c.nonce, ha2};
    md5_hex(p3, 3, resp);
  }

  strbuf b = {0};
  sb_quoted(&b, "Digest ", "username", username);
  sb_quoted(&b, ", ", "realm", c.realm);
  sb_quoted(&b, ", ", "nonce", c.nonce);
  sb_quoted(&b, ", ", "uri", uri);
  sb_quoted(&b, ", ", "response", resp);
  sb_add(&b, ", algorithm=MD5");
  if (c.opaque) sb_quoted(&b, ", ", "opaque", c.opaque);
  if (use_qop) {
    sb_add(&b, ", qop=auth, nc=");
    sb_add(&b, ncs);
    sb_quoted(&b, ", ", "cnonce", cnonce);
  }
  challenge_free(&c);
  if (b.oom) {
    sr__free(b.buf);
    return SR_ENOMEM;
  }
  *out = b.buf;
  return 0;
}
