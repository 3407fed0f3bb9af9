/*
 * test_digest_call.c — an Inviter challenged with 401 (and 407) by a test
 * UAS on a raw socket, over UDP and TCP. The UAS checks the ACK of the
 * challenge, recomputes the digest of the retried INVITE on its own (MD5
 * from libosip2, with the nc and cnonce the client sent), answers 200 and
 * checks the ACK. With wrong credentials the Inviter gives up with 401
 * after a bounded number of tries. Several challenges, in one response or
 * one after another, are answered together (§22.3). A challenge that
 * repeats the nonce just answered, without stale=true, is the final
 * answer (§22.2).
 */
#include "harness.h"
#include "uas.h"
#include "rawsock.h"

#include <stdint.h>

#include <osipparser2/osip_md5.h>

#define USER "alice"
#define PASS "s3cret\"pw" /* a quote, to exercise escaping */
#define REALM "test.example"

static sr_ua *A;
static t_raw uas;
static sr_session *inv;
static const char *password = PASS;
static int codes[16], ncodes;

static void on_response(sr_session *s, int code, const char *r, void *ud) {
  (void)s;
  (void)r;
  (void)ud;
  if (ncodes < 16) codes[ncodes++] = code;
}
static const sr_session_delegate del = {NULL, on_response, NULL, NULL};

static void credentials(sr_ua_options *o) {
  o->username = USER;
  o->password = password;
}

static int saw_code(int code) {
  for (int i = 0; i < ncodes; i++)
    if (codes[i] == code) return 1;
  return 0;
}

/* ---- digest, computed here from RFC 2617 ---- */

static void md5_hex(const char *s, char out[33]) {
  osip_MD5_CTX c;
  unsigned char d[16];
  osip_MD5Init(&c);
  osip_MD5Update(&c, (unsigned char *)(uintptr_t)s, (unsigned)strlen(s));
  osip_MD5Final(d, &c);
  for (int i = 0; i < 16; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

/* Parameter `name` of a "Digest a=b, c="d"" value, unquoted; NULL if
 * absent. */
static const char *auth_param(const char *h, const char *name, char *out,
                              size_t n) {
  const char *p = h;
  if (strncasecmp(p, "Digest ", 7) != 0) return NULL;
  p += 7;
  while (*p) {
    while (*p == ' ' || *p == ',' || *p == '\t') p++;
    const char *ns = p;
    while (*p && *p != '=' && *p != ' ') p++;
    size_t nl = (size_t)(p - ns);
    while (*p == ' ') p++;
    if (*p != '=') return NULL;
    p++;
    while (*p == ' ') p++;
    size_t k = 0;
    if (*p == '"') {
      for (p++; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1]) p++;
        if (k + 1 < n) out[k++] = *p;
      }
      if (*p == '"') p++;
    } else {
      while (*p && *p != ',' && *p != ' ') {
        if (k + 1 < n) out[k++] = *p;
        p++;
      }
    }
    out[k] = 0;
    if (nl == strlen(name) && strncasecmp(ns, name, nl) == 0) return out;
  }
  return NULL;
}

/* The Request-URI of a request. */
static const char *ruri_of(const char *m, char *out, size_t n) {
  const char *sp = strchr(m, ' '), *sp2 = sp ? strchr(sp + 1, ' ') : NULL;
  size_t l = sp2 ? (size_t)(sp2 - sp - 1) : 0;
  if (l >= n) l = n - 1;
  memcpy(out, sp ? sp + 1 : "", l);
  out[l] = 0;
  return out;
}

/* How many `hname` headers m has. */
static int count_headers(const char *m, const char *hname) {
  char v[1024];
  int n = 0;
  while (t_header_n(m, hname, NULL, n, v, sizeof v)) n++;
  return n;
}

/* Checks the credentials `h` (a header value of request `m`) against the
 * challenge with `realm` and `nonce`, with the right password. 1 if the
 * response is right, 0 if wrong; CHECK failures for a malformed value. */
static int digest_value_ok(const char *h, const char *m, const char *realm,
                           const char *nonce) {
  char v[256], uri[256], nc[32], cnonce[128], resp[64];
  char a1[512], ha1[33], a2[512], ha2[33], all[1024], want[33];
  CHECK(auth_param(h, "username", v, sizeof v) && strcmp(v, USER) == 0);
  CHECK(auth_param(h, "realm", v, sizeof v) && strcmp(v, realm) == 0);
  CHECK(auth_param(h, "nonce", v, sizeof v) && strcmp(v, nonce) == 0);
  CHECK(auth_param(h, "opaque", v, sizeof v) && strcmp(v, "0paque") == 0);
  CHECK(!auth_param(h, "algorithm", v, sizeof v) || strcasecmp(v, "MD5") == 0);
  CHECK(auth_param(h, "qop", v, sizeof v) && strcmp(v, "auth") == 0);
  CHECK(auth_param(h, "uri", uri, sizeof uri) &&
        strcmp(uri, ruri_of(m, v, sizeof v)) == 0);
  if (!auth_param(h, "nc", nc, sizeof nc) ||
      !auth_param(h, "cnonce", cnonce, sizeof cnonce) ||
      !auth_param(h, "response", resp, sizeof resp)) {
    CHECK(0);
    return 0;
  }
  CHECK(strlen(nc) == 8);
  CHECK(cnonce[0] != 0);
  snprintf(a1, sizeof a1, "%s:%s:%s", USER, realm, PASS);
  md5_hex(a1, ha1);
  char meth[16];
  snprintf(a2, sizeof a2, "%s:%s", t_method(m, meth, sizeof meth), uri);
  md5_hex(a2, ha2);
  snprintf(all, sizeof all, "%s:%s:%s:%s:auth:%s", ha1, nonce, nc, cnonce,
           ha2);
  md5_hex(all, want);
  return strcmp(resp, want) == 0;
}

/* The `hname` credentials of m for `realm` are right (digest_value_ok),
 * and m has `count` headers `hname` in all. */
static int realm_ok(const char *m, const char *hname, int count,
                    const char *realm, const char *nonce) {
  char h[1024], r[256];
  int n = count_headers(m, hname);
  if (n != count) fprintf(stderr, "  %d %s headers, not %d\n", n, hname, count);
  CHECK_INT(n, count);
  for (int i = 0; t_header_n(m, hname, NULL, i, h, sizeof h); i++)
    if (auth_param(h, "realm", r, sizeof r) && strcmp(r, realm) == 0)
      return digest_value_ok(h, m, realm, nonce);
  fprintf(stderr, "  no %s header for realm %s\n", hname, realm);
  CHECK(0);
  return 0;
}

/* One set of credentials, for `realm`: a retry after a second challenge
 * for the same realm replaces the first answer, it does not add to it. */
static int digest_ok(const char *m, const char *hname, const char *realm,
                     const char *nonce) {
  return realm_ok(m, hname, 1, realm, nonce);
}

/* ---- the test UAS ---- */

static char last_resp[8192];
static size_t last_resp_len;
static char last_branch[128];

static void respond(const char *req, int code, const char *reason,
                    const char *tag, const char *extra, const char *body) {
  last_resp_len = t_build_response(req, code, reason, tag, extra, body,
                                   last_resp, sizeof last_resp);
  CHECK(last_resp_len > 0);
  CHECK(t_raw_send(&uas, last_resp, last_resp_len) == 0);
}

static const char *branch_of(const char *m, char *out, size_t n) {
  char via[512];
  out[0] = 0;
  if (!t_header_n(m, "Via", "v", 0, via, sizeof via)) return out;
  const char *b = strstr(via, "branch=");
  if (!b) return out;
  b += 7;
  size_t l = strcspn(b, ";, ");
  if (l >= n) l = n - 1;
  memcpy(out, b, l);
  out[l] = 0;
  return out;
}

static int inv_terminated(void *ud) {
  (void)ud;
  return sr_session_get_state(inv) == SR_SESSION_TERMINATED;
}

static int inviter_done(t_raw *r) {
  return t_raw_poll_msg(r) ||
         sr_session_get_state(inv) == SR_SESSION_TERMINATED;
}

/* The next request that is not a retransmission of the INVITE last
 * answered (those get the answer again). NULL when none comes (or the
 * Inviter ended first). */
static const char *next_request(void) {
  char br[128], meth[16];
  for (int i = 0; i < 20; i++) {
    if (!t_raw_drive(&uas, inviter_done, 10000) || !uas.msglen) return NULL;
    const char *m = uas.msg;
    t_method(m, meth, sizeof meth);
    if (strcmp(meth, "INVITE") == 0 &&
        strcmp(branch_of(m, br, sizeof br), last_branch) == 0) {
      CHECK(t_raw_send(&uas, last_resp, last_resp_len) == 0);
      continue;
    }
    return m;
  }
  return NULL;
}

static int is_method(const char *m, const char *want) {
  char meth[16];
  return m && strcmp(t_method(m, meth, sizeof meth), want) == 0;
}

static int cseq_num(const char *m) {
  char v[64];
  return t_header(m, "CSeq", v, sizeof v) ? atoi(v) : -1;
}

static void setup(sr_transport tp, const char *pw) {
  password = pw;
  ncodes = 0;
  last_branch[0] = 0;
  last_resp_len = 0;
  A = t_ua("alice", 0, 200, credentials);
  REQUIRE(A);
  REQUIRE(t_raw_listen(&uas, tp) == 0);
  char target[128];
  snprintf(target, sizeof target, "sip:bob@127.0.0.1:%d%s", uas.port,
           tp == SR_TRANSPORT_TCP ? ";transport=tcp" : "");
  REQUIRE(sr_ua_make_inviter(A, target, NULL, &inv) == 0);
  sr_session_set_delegate(inv, &del, NULL);
  REQUIRE(sr_inviter_invite(inv) == 0);
}

static void teardown(void) {
  sr_session_unref(inv);
  inv = NULL;
  t_free_uas();
  t_raw_close(&uas);
  sr_stats st;
  sr_global_stats(&st);
  CHECK_INT(st.sessions, 0);
}

/* A challenge header (with its CRLF) for realm and nonce; algorithm
 * NULL for MD5. */
static const char *chal(char *out, size_t n, int proxy, const char *realm,
                        const char *nonce, const char *algorithm) {
  snprintf(out, n,
           "%s: Digest realm=\"%s\", nonce=\"%s\", "
           "opaque=\"0paque\", qop=\"auth\", algorithm=%s\r\n",
           proxy ? "Proxy-Authenticate" : "WWW-Authenticate", realm, nonce,
           algorithm ? algorithm : "MD5");
  return out;
}

/* Challenges the INVITE `m` with the challenge headers `extra` and checks
 * the ACK for the challenge. */
static void challenge_with(const char *m, int proxy, const char *extra) {
  char first[T_RAW_MAX + 1], br[128], v[256];
  memcpy(first, m, strlen(m) + 1);
  respond(first, proxy ? 407 : 401,
          proxy ? "Proxy Authentication Required" : "Unauthorized", "chal",
          extra, NULL);
  snprintf(last_branch, sizeof last_branch, "%s",
           branch_of(first, br, sizeof br));
  /* The ACK of a non-2xx: same branch, same CSeq number (§17.1.1.3). */
  const char *ack = next_request();
  REQUIRE(is_method(ack, "ACK"));
  CHECK_STR(branch_of(ack, v, sizeof v), last_branch);
  CHECK_INT(cseq_num(ack), cseq_num(first));
  CHECK(t_header(ack, "To", v, sizeof v) && strstr(v, "tag=chal"));
}

/* Challenges the INVITE `m` for one realm (MD5). */
static void challenge(const char *m, int proxy, const char *realm,
                      const char *nonce) {
  char extra[512];
  challenge_with(m, proxy, chal(extra, sizeof extra, proxy, realm, nonce, NULL));
}

/* Answers the INVITE `m` (branch br) with 200, checks the ACK and the
 * Inviter's view, then ends the call with a BYE from the Inviter. */
static void answer_and_end(const char *m, sr_transport tp, const char *br) {
  char v[512], contact[160], sdp[256];
  int cseq = cseq_num(m); /* m is the receive buffer: read it before */
  snprintf(contact, sizeof contact,
           "Contact: <sip:bob@127.0.0.1:%d%s>\r\n"
           "Content-Type: application/sdp\r\n",
           uas.port, tp == SR_TRANSPORT_TCP ? ";transport=tcp" : "");
  snprintf(sdp, sizeof sdp,
           "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
           "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n");
  respond(m, 200, "OK", "bobtag", contact, sdp);
  snprintf(last_branch, sizeof last_branch, "%s", br);

  /* The ACK of the 2xx: its own transaction, to the Contact. */
  const char *ack = next_request();
  REQUIRE(is_method(ack, "ACK"));
  CHECK_INT(cseq_num(ack), cseq);
  CHECK(strcmp(branch_of(ack, v, sizeof v), br) != 0);
  CHECK(t_header(ack, "To", v, sizeof v) && strstr(v, "tag=bobtag"));
  CHECK_INT(sr_session_get_state(inv), SR_SESSION_ESTABLISHED);
  CHECK(!saw_code(401) && !saw_code(407));
  CHECK(ncodes >= 1 && codes[ncodes - 1] == 200);

  /* And it ends normally. */
  CHECK_INT(sr_session_bye(inv), 0);
  m = next_request();
  REQUIRE(is_method(m, "BYE"));
  respond(m, 200, "OK", NULL, NULL, NULL);
  CHECK(t_drive(inv_terminated, NULL, 10000));
}


static void challenged_call(sr_transport tp, int proxy) {
  const char *hname = proxy ? "Proxy-Authorization" : "Authorization";
  char v[512], cid[256], ftag[256], br1[128], br2[128];
  setup(tp, PASS);
  const char *m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  CHECK(!t_header(m, "Authorization", v, sizeof v));
  CHECK(!t_header(m, "Proxy-Authorization", v, sizeof v));
  int cseq1 = cseq_num(m);
  REQUIRE(t_header(m, "Call-ID", cid, sizeof cid));
  REQUIRE(t_header(m, "From", ftag, sizeof ftag));
  branch_of(m, br1, sizeof br1);
  challenge(m, proxy, REALM, "n0nce-1");

  /* The retry: same Call-ID and From, next CSeq, a new branch. */
  m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  CHECK(t_header(m, "Call-ID", v, sizeof v) && strcmp(v, cid) == 0);
  CHECK(t_header(m, "From", v, sizeof v) && strcmp(v, ftag) == 0);
  CHECK_INT(cseq_num(m), cseq1 + 1);
  CHECK(strcmp(branch_of(m, br2, sizeof br2), br1) != 0);
  CHECK(digest_ok(m, hname, REALM, "n0nce-1"));
  CHECK(!t_header(m, proxy ? "Authorization" : "Proxy-Authorization", v,
                  sizeof v));

  answer_and_end(m, tp, br2);
  teardown();
}

static void test_401_udp(void) { challenged_call(SR_TRANSPORT_UDP, 0); }
static void test_401_tcp(void) { challenged_call(SR_TRANSPORT_TCP, 0); }
static void test_407_udp(void) { challenged_call(SR_TRANSPORT_UDP, 1); }

/* A proxy challenges (407, its realm), then the UAS (401, another realm):
 * the last INVITE answers both, the proxy's credentials kept as they were. */
static void test_407_then_401_tcp(void) {
  char br[128];
  setup(SR_TRANSPORT_TCP, PASS);
  const char *m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  challenge(m, 1, "proxy.example", "p-n0nce");
  m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  CHECK(digest_ok(m, "Proxy-Authorization", "proxy.example", "p-n0nce"));
  challenge(m, 0, REALM, "u-n0nce");
  m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  CHECK(digest_ok(m, "Proxy-Authorization", "proxy.example", "p-n0nce"));
  CHECK(digest_ok(m, "Authorization", REALM, "u-n0nce"));
  answer_and_end(m, SR_TRANSPORT_TCP, branch_of(m, br, sizeof br));
  teardown();
}

/* Two proxies on the path, one after the other (§22.3): the second 407
 * adds its realm's credentials, the first proxy's stay as they were. */
static void test_two_proxies_udp(void) {
  char br[128];
  setup(SR_TRANSPORT_UDP, PASS);
  const char *m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  challenge(m, 1, "a.example", "a-n0nce");
  m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  CHECK(realm_ok(m, "Proxy-Authorization", 1, "a.example", "a-n0nce"));
  challenge(m, 1, "b.example", "b-n0nce");
  m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  CHECK(realm_ok(m, "Proxy-Authorization", 2, "a.example", "a-n0nce"));
  CHECK(realm_ok(m, "Proxy-Authorization", 2, "b.example", "b-n0nce"));
  CHECK_INT(count_headers(m, "Authorization"), 0);
  answer_and_end(m, SR_TRANSPORT_UDP, branch_of(m, br, sizeof br));
  teardown();
}

/* A realm challenged again (a stale nonce), as the proxy escapes it: the
 * retry replaces its answer for that realm, it does not add a second. */
static void test_rechallenged_realm_udp(void) {
  char br[128];
  setup(SR_TRANSPORT_UDP, PASS);
  const char *m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  challenge(m, 1, "a\\.example", "a-n0nce-1");
  m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  CHECK(realm_ok(m, "Proxy-Authorization", 1, "a.example", "a-n0nce-1"));
  challenge(m, 1, "a\\.example", "a-n0nce-2");
  m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  CHECK(realm_ok(m, "Proxy-Authorization", 1, "a.example", "a-n0nce-2"));
  answer_and_end(m, SR_TRANSPORT_UDP, branch_of(m, br, sizeof br));
  teardown();
}

/* One 401 with several challenges: one the library cannot answer
 * (SHA-256, offered first as RFC 8760 servers do), and two realms it
 * can. The retry answers those two, and not the first. */
static void test_several_challenges_tcp(void) {
  char br[128], extra[1536], a[512], b[512], c[512];
  setup(SR_TRANSPORT_TCP, PASS);
  const char *m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  snprintf(extra, sizeof extra, "%s%s%s",
           chal(a, sizeof a, 0, "sha.example", "s-n0nce", "SHA-256"),
           chal(b, sizeof b, 0, REALM, "u-n0nce", NULL),
           chal(c, sizeof c, 0, "other.example", "o-n0nce", NULL));
  challenge_with(m, 0, extra);
  m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  CHECK(realm_ok(m, "Authorization", 2, REALM, "u-n0nce"));
  CHECK(realm_ok(m, "Authorization", 2, "other.example", "o-n0nce"));
  answer_and_end(m, SR_TRANSPORT_TCP, branch_of(m, br, sizeof br));
  teardown();
}

/* Only what the library cannot answer: the Inviter gives up with the 401
 * rather than send credentials that cannot be right. */
static void test_unanswerable_challenge_udp(void) {
  char extra[512];
  setup(SR_TRANSPORT_UDP, PASS);
  const char *m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  challenge_with(m, 0, chal(extra, sizeof extra, 0, REALM, "s-n0nce", "SHA-256"));
  CHECK(t_drive(inv_terminated, NULL, 10000));
  CHECK(ncodes >= 1 && codes[ncodes - 1] == 401);
  teardown();
}

/* Wrong password: every retry is wrong, every retry is challenged again;
 * the Inviter must give up with 401, not loop. */
static void wrong_credentials(sr_transport tp) {
  setup(tp, "not the password");
  int invites = 0, with_auth = 0;
  const char *m;
  char nonce[32], v[16];
  while ((m = next_request()) != NULL && invites < 10) {
    REQUIRE(is_method(m, "INVITE"));
    invites++;
    if (invites > 1) {
      snprintf(nonce, sizeof nonce, "n0nce-%d", invites - 1);
      with_auth++;
      CHECK(!digest_ok(m, "Authorization", REALM, nonce));
    } else {
      CHECK(!t_header(m, "Authorization", v, sizeof v));
    }
    snprintf(nonce, sizeof nonce, "n0nce-%d", invites);
    challenge(m, 0, REALM, nonce);
  }
  CHECK_INT(sr_session_get_state(inv), SR_SESSION_TERMINATED);
  CHECK(with_auth >= 1 && with_auth <= 2);
  CHECK(ncodes >= 1 && codes[ncodes - 1] == 401);
  teardown();
}

/* The nonce just answered, challenged again without stale=true: the
 * credentials were rejected; they are not sent again (§22.2), the 401 is
 * the final answer. */
static void test_same_nonce_udp(void) {
  setup(SR_TRANSPORT_UDP, "not the password");
  int invites = 0;
  const char *m;
  while ((m = next_request()) != NULL && invites < 10) {
    REQUIRE(is_method(m, "INVITE"));
    invites++;
    challenge(m, 0, REALM, "n0nce-1");
  }
  CHECK_INT(invites, 2);
  CHECK_INT(sr_session_get_state(inv), SR_SESSION_TERMINATED);
  CHECK(ncodes >= 1 && codes[ncodes - 1] == 401);
  teardown();
}

/* The same nonce with stale=true: the credentials were right, the nonce
 * expired; the retry answers it again. */
static void test_stale_nonce_udp(void) {
  char br[128], extra[512];
  setup(SR_TRANSPORT_UDP, PASS);
  const char *m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  challenge(m, 1, REALM, "n0nce-1");
  m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  CHECK(digest_ok(m, "Proxy-Authorization", REALM, "n0nce-1"));
  snprintf(extra, sizeof extra,
           "Proxy-Authenticate: Digest realm=\"%s\", nonce=\"n0nce-1\", "
           "opaque=\"0paque\", qop=\"auth\", stale=TRUE\r\n", REALM);
  challenge_with(m, 1, extra);
  m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  CHECK(digest_ok(m, "Proxy-Authorization", REALM, "n0nce-1"));
  answer_and_end(m, SR_TRANSPORT_UDP, branch_of(m, br, sizeof br));
  teardown();
}

static void test_wrong_password_udp(void) {
  wrong_credentials(SR_TRANSPORT_UDP);
}
static void test_wrong_password_tcp(void) {
  wrong_credentials(SR_TRANSPORT_TCP);
}

/* REFER is answered with credentials too: the retried REFER has the next
 * CSeq, which becomes the subscription's id. */
static int refer_accepted, refer_rejected;
static void ref_accept(sr_referrer *r, int code, const char *reason, void *ud) {
  (void)r; (void)code; (void)reason; (void)ud;
  refer_accepted++;
}
static void ref_reject(sr_referrer *r, int code, const char *reason, void *ud) {
  (void)r; (void)code; (void)reason; (void)ud;
  refer_rejected++;
}
static int refer_decided(void *ud) {
  (void)ud;
  return refer_accepted || refer_rejected;
}

/* Alice calls the raw UAS (password pw), which answers; the ACK comes. */
static void answered_call(sr_transport tp, const char *pw) {
  char br[128], contact[160];
  setup(tp, pw);
  const char *m = next_request();
  REQUIRE(is_method(m, "INVITE"));
  snprintf(contact, sizeof contact, "Contact: <sip:bob@127.0.0.1:%d%s>\r\n",
           uas.port, tp == SR_TRANSPORT_TCP ? ";transport=tcp" : "");
  branch_of(m, br, sizeof br);
  respond(m, 200, "OK", "bobtag", contact, NULL);
  snprintf(last_branch, sizeof last_branch, "%s", br);
  REQUIRE(is_method(next_request(), "ACK"));
}

/* Alice hangs up; the raw UAS answers the BYE. */
static void hang_up(void) {
  CHECK_INT(sr_session_bye(inv), 0);
  const char *m = next_request();
  REQUIRE(is_method(m, "BYE"));
  respond(m, 200, "OK", NULL, NULL, NULL);
  CHECK(t_drive(inv_terminated, NULL, 10000));
  teardown();
}

static void refer_challenged(sr_transport tp) {
  char v[512];
  answered_call(tp, PASS);
  REQUIRE(sr_session_get_state(inv) == SR_SESSION_ESTABLISHED);

  refer_accepted = refer_rejected = 0;
  sr_referrer_delegate d = {ref_accept, ref_reject, NULL, NULL};
  sr_referrer *ref = NULL;
  REQUIRE(sr_session_refer(inv, "sip:carol@127.0.0.1:9", NULL, &d, NULL, &ref) == 0);
  const char *m = next_request();
  REQUIRE(is_method(m, "REFER"));
  int cseq1 = cseq_num(m);
  CHECK_INT(sr_referrer_get_id(ref), cseq1);
  char extra[256];
  snprintf(extra, sizeof extra,
           "WWW-Authenticate: Digest realm=\"%s\", nonce=\"n-refer\", "
           "opaque=\"0paque\", qop=\"auth\"\r\n", REALM);
  respond(m, 401, "Unauthorized", NULL, extra, NULL);
  m = next_request();
  REQUIRE(is_method(m, "REFER"));
  CHECK_INT(cseq_num(m), cseq1 + 1);
  CHECK(t_header(m, "Refer-To", v, sizeof v) && strstr(v, "sip:carol@127.0.0.1:9"));
  CHECK(digest_ok(m, "Authorization", REALM, "n-refer"));
  respond(m, 202, "Accepted", NULL, NULL, NULL);
  CHECK(t_drive(refer_decided, NULL, 10000));
  CHECK_INT(refer_accepted, 1);
  CHECK_INT(refer_rejected, 0);
  CHECK_INT(sr_referrer_get_id(ref), cseq1 + 1);
  sr_referrer_unref(ref);
  hang_up();
}
static void test_refer_401_udp(void) { refer_challenged(SR_TRANSPORT_UDP); }

/* A REFER or the decision on it. */
static int refer_or_decided(t_raw *r) {
  return t_raw_poll_msg(r) || refer_decided(NULL);
}

/* The REFER's credentials rejected (the same nonce, not stale): the 401
 * is the referrer's answer after one retry, not a third REFER. */
static void test_refer_same_nonce_udp(void) {
  char extra[256];
  answered_call(SR_TRANSPORT_UDP, "not the password");

  refer_accepted = refer_rejected = 0;
  sr_referrer_delegate d = {ref_accept, ref_reject, NULL, NULL};
  sr_referrer *ref = NULL;
  REQUIRE(sr_session_refer(inv, "sip:carol@127.0.0.1:9", NULL, &d, NULL, &ref) == 0);
  snprintf(extra, sizeof extra,
           "WWW-Authenticate: Digest realm=\"%s\", nonce=\"n-refer\", "
           "opaque=\"0paque\", qop=\"auth\"\r\n", REALM);
  int refers = 0;
  while (refers < 10 && t_raw_drive(&uas, refer_or_decided, 10000) &&
         uas.msglen) {
    REQUIRE(is_method(uas.msg, "REFER"));
    refers++;
    respond(uas.msg, 401, "Unauthorized", NULL, extra, NULL);
  }
  CHECK_INT(refers, 2);
  CHECK_INT(refer_rejected, 1);
  CHECK_INT(refer_accepted, 0);
  sr_referrer_unref(ref);
  hang_up();
}
static void test_refer_401_tcp(void) { refer_challenged(SR_TRANSPORT_TCP); }

int main(void) {
  (void)t_target; /* uas.h's; the UAS here is a raw socket */
  RUN(test_401_udp);
  RUN(test_401_tcp);
  RUN(test_407_udp);
  RUN(test_407_then_401_tcp);
  RUN(test_two_proxies_udp);
  RUN(test_rechallenged_realm_udp);
  RUN(test_several_challenges_tcp);
  RUN(test_unanswerable_challenge_udp);
  RUN(test_same_nonce_udp);
  RUN(test_stale_nonce_udp);
  RUN(test_wrong_password_udp);
  RUN(test_wrong_password_tcp);
  RUN(test_refer_401_udp);
  RUN(test_refer_401_tcp);
  RUN(test_refer_same_nonce_udp);
  return DONE();
}
