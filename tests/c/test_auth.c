/*
 * test_auth.c — Digest responses (csrc/auth.c) against known vectors, the
 * challenge parser on hostile input (the default SDP: test_sdp.c).
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "message.h"

/* The value of parameter @p name in a Digest header we built, unquoted, in
 * a static buffer ("" if absent). Good enough for our own output, which
 * never has escaped quotes in these tests unless stated. */
static const char *param(const char *hdr, const char *name) {
  static char buf[256];
  char pat[64];
  buf[0] = '\0';
  snprintf(pat, sizeof pat, " %s=", name);
  const char *p = strstr(hdr, pat);
  if (!p) return buf;
  p += strlen(pat);
  size_t n;
  if (*p == '"') {
    p++;
    n = strcspn(p, "\"");
  } else {
    n = strcspn(p, ",");
  }
  if (n >= sizeof buf) n = sizeof buf - 1;
  memcpy(buf, p, n);
  buf[n] = '\0';
  return buf;
}

static void test_rfc2617_vector(void) {
  /* RFC 2617 section 3.5 */
  const char *chal = "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", "
                     "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", "
                     "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
  char *out = NULL;
  REQUIRE(sr__digest_response(chal, "GET", "/dir/index.html", "Mufasa",
                              "Circle Of Life", 1, "0a4f113b", &out) == 0);
  REQUIRE(out != NULL);
  CHECK_STR(out,
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", "
            "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", "
            "uri=\"/dir/index.html\", "
            "response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, "
            "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", qop=auth, "
            "nc=00000001, cnonce=\"0a4f113b\"");
  CHECK_STR(param(out, "response"), "6629fae49393a05397450978507c4ef1");
  sr__free(out);

  /* the same without qop (RFC 2069 compatibility):
   * MD5(HA1 ":" nonce ":" HA2) */
  const char *chal2 = "Digest realm=\"testrealm@host.com\", "
                      "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\"";
  out = NULL;
  REQUIRE(sr__digest_response(chal2, "GET", "/dir/index.html", "Mufasa",
                              "Circle Of Life", 1, NULL, &out) == 0);
  CHECK_STR(out, "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", "
                 "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", "
                 "uri=\"/dir/index.html\", "
                 "response=\"670fd8c2df070c60b045671b8b24ff02\", "
                 "algorithm=MD5");
  CHECK(strstr(out, "cnonce") == NULL && strstr(out, "qop") == NULL);
  sr__free(out);
}

static void test_sip_vectors(void) {
  /* unquoted token values, algorithm=MD5 in any case, extra params,
   * spacing variants; no qop */
  char *out = NULL;
  REQUIRE(sr__digest_response("digest   realm=biloxi.com ,nonce = abc123,"
                              "algorithm=md5, stale=FALSE, domain=\"sip:x\"",
                              "INVITE", "sip:bob@biloxi.com", "alice",
                              "secret", 1, NULL, &out) == 0);
  CHECK_STR(param(out, "response"), "9b30744fb5a8dcb3955d65b7521cd3ce");
  CHECK_STR(param(out, "realm"), "biloxi.com");
  CHECK_STR(param(out, "nonce"), "abc123");
  CHECK(strstr(out, "opaque") == NULL);
  sr__free(out);

  /* quoted-pair unescaping in the challenge, escaping in the output, nc in
   * hex, a nonce with a comma inside quotes, unquoted qop */
  out = NULL;
  REQUIRE(sr__digest_response("Digest realm=\"r\\\"x\", nonce=\"n,1\", qop=auth",
                              "REGISTER", "sip:x", "a\"b", "pw", 2, "c1",
                              &out) == 0);
  CHECK(strstr(out, "username=\"a\\\"b\"") != NULL);
  CHECK(strstr(out, "realm=\"r\\\"x\"") != NULL);
  CHECK(strstr(out, "nonce=\"n,1\"") != NULL);
  CHECK(strstr(out, "response=\"c193935222280c4191fa913caf84176e\"") != NULL);
  CHECK(strstr(out, ", qop=auth, nc=00000002, cnonce=\"c1\"") != NULL);
  sr__free(out);

  /* nc formatting */
  out = NULL;
  REQUIRE(sr__digest_response("Digest realm=\"r\", nonce=\"n\", qop=\"auth\"",
                              "BYE", "sip:x", "u", "p", 0xabcdefu, "c",
                              &out) == 0);
  CHECK_STR(param(out, "nc"), "00abcdef");
  sr__free(out);
}

static void test_random_cnonce(void) {
  const char *chal = "Digest realm=\"r\", nonce=\"n\", qop=\"auth\"";
  char *a = NULL, *b = NULL;
  REQUIRE(sr__digest_response(chal, "INVITE", "sip:x", "u", "p", 1, NULL,
                              &a) == 0);
  REQUIRE(sr__digest_response(chal, "INVITE", "sip:x", "u", "p", 1, NULL,
                              &b) == 0);
  char ca[64], cb[64];
  snprintf(ca, sizeof ca, "%s", param(a, "cnonce"));
  snprintf(cb, sizeof cb, "%s", param(b, "cnonce"));
  CHECK_INT(strlen(ca), 16);
  CHECK(strspn(ca, "0123456789abcdef") == 16);
  CHECK(strcmp(ca, cb) != 0);
  snprintf(ca, sizeof ca, "%s", param(a, "response"));
  snprintf(cb, sizeof cb, "%s", param(b, "response"));
  CHECK(strcmp(ca, cb) != 0);
  sr__free(a);
  sr__free(b);
}

static void test_digest_errors(void) {
  char *out = (char *)"untouched";
  const char *ok = "Digest realm=\"r\", nonce=\"n\"";
  /* not Digest / not MD5 / qop without auth: SR_EINVAL */
  CHECK_INT(sr__digest_response("Basic realm=\"r\"", "GET", "/", "u", "p", 1,
                                NULL, &out),
            SR_EINVAL);
  /* a scheme merely starting with "Digest" is another scheme */
  CHECK_INT(sr__digest_response("Digestrealm=\"r\", nonce=\"n\"", "GET", "/",
                                "u", "p", 1, NULL, &out),
            SR_EINVAL);
  CHECK_INT(sr__digest_response("Digest realm=\"r\", nonce=\"n\", "
                                "algorithm=SHA-256",
                                "GET", "/", "u", "p", 1, NULL, &out),
            SR_EINVAL);
  CHECK_INT(sr__digest_response("Digest realm=\"r\", nonce=\"n\", "
                                "algorithm=MD5-sess",
                                "GET", "/", "u", "p", 1, NULL, &out),
            SR_EINVAL);
  CHECK_INT(sr__digest_response("Digest realm=\"r\", nonce=\"n\", "
                                "qop=\"auth-int\"",
                                "GET", "/", "u", "p", 1, NULL, &out),
            SR_EINVAL);
  /* arguments */
  CHECK_INT(sr__digest_response(NULL, "GET", "/", "u", "p", 1, NULL, &out),
            SR_EINVAL);
  CHECK_INT(sr__digest_response(ok, NULL, "/", "u", "p", 1, NULL, &out),
            SR_EINVAL);
  CHECK_INT(sr__digest_response(ok, "GET", NULL, "u", "p", 1, NULL, &out),
            SR_EINVAL);
  CHECK_INT(sr__digest_response(ok, "GET", "/", NULL, "p", 1, NULL, &out),
            SR_EINVAL);
  CHECK_INT(sr__digest_response(ok, "GET", "/", "u", NULL, 1, NULL, &out),
            SR_EINVAL);
  CHECK_INT(sr__digest_response(ok, "GET", "/", "u", "p", 1, NULL, NULL),
            SR_EINVAL);
  /* header injection through echoed values */
  CHECK_INT(sr__digest_response(ok, "GET", "/", "u\r\nX: 1", "p", 1, NULL,
                                &out),
            SR_EINVAL);
  CHECK_INT(sr__digest_response(ok, "GET", "/\n", "u", "p", 1, NULL, &out),
            SR_EINVAL);
  CHECK_INT(sr__digest_response(ok, "GET", "/", "u", "p", 1, "c\r\n", &out),
            SR_EINVAL);

  /* malformed challenges: SR_EPARSE */
  static const char *const bad[] = {
      "",
      "   ",
      "Digest",
      "Digest ",
      "Digest realm=\"r\"",                      /* no nonce */
      "Digest nonce=\"n\"",                      /* no realm */
      "Digest realm=\"r, nonce=\"n\"",           /* unbalanced quote */
      "Digest realm=\"r\", nonce=\"n",
      "Digest realm=\"r\", nonce=\"n\\",
      "Digest realm=\"r\", nonce=\"n\" x",
      "Digest realm=\"r\", nonce",
      "Digest realm=\"r\", nonce=",
      "Digest realm=\"r\", =x, nonce=\"n\"",
      "Digest realm=\"r\", nonce=\"n\", realm=\"s\"", /* repeated */
      "Digest realm=\"r\r\n\", nonce=\"n\"",
      "Digest realm=r\x01, nonce=n",
      "Digest realm=\"r\\\x01\", nonce=\"n\"",
      "Digest, realm=\"r\", nonce=\"n\"",
      "Digest realm=a\"b\", nonce=n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = sr__digest_response(bad[i], "GET", "/", "u", "p", 1, "c", &out);
    if (rc != SR_EPARSE) fprintf(stderr, "  bad[%zu] -> %d\n", i, rc);
    CHECK_INT(rc, SR_EPARSE);
  }
  CHECK_STR(out, "untouched");

  /* hostile sizes: a 60 KiB nonce works, a 60 KiB unterminated one fails */
  size_t big = 60 * 1024;
  char *c = malloc(big + 64);
  REQUIRE(c != NULL);
  size_t k = (size_t)sprintf(c, "Digest realm=\"r\", nonce=\"");
  size_t start = k;
  memset(c + k, 'n', big);
  k += big;
  strcpy(c + k, "\"");
  out = NULL;
  CHECK_INT(sr__digest_response(c, "GET", "/", "u", "p", 1, "c", &out), 0);
  CHECK(out && strlen(out) > big);
  sr__free(out);
  c[k] = '\0';
  out = (char *)"untouched";
  CHECK_INT(sr__digest_response(c, "GET", "/", "u", "p", 1, "c", &out),
            SR_EPARSE);
  /* a run of backslashes to the end */
  memset(c + start, '\\', big);
  CHECK_INT(sr__digest_response(c, "GET", "/", "u", "p", 1, "c", &out),
            SR_EPARSE);
  free(c);
  CHECK_STR(out, "untouched");
}

int main(void) {
  RUN(test_rfc2617_vector);
  RUN(test_sip_vectors);
  RUN(test_random_cnonce);
  RUN(test_digest_errors);
  return DONE();
}
