/*
 * test_sdp.c — the default SDP (csrc/sdp.c): our offer, the RFC 3264
 * answer built from an offer (formats from the offer, one m= line per
 * offered one, mirrored direction, rejected streams at port 0, 488 for
 * what cannot be answered), and the o= line kept per session (RFC 3264 §8).
 * Then end to end over UDP: a raw peer calls Bob, who accepts with no body,
 * and re-INVITEs him.
 */
#include "internal.h"
#undef REQUIRE
#include "harness.h"
#include "uas.h"
#include "rawsock.h"

#define HEAD "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"
/* What every answer starts with after its o= line (ip 192.0.2.1). */
#define REST " IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"

static sr__sdp_origin org;
static const char *warn;

/* The answer to offer from a fresh session (NULL on error, rc in last_rc). */
static int last_rc;
static const char *answer_to(const char *offer) {
  sr__free(org.last);
  memset(&org, 0, sizeof org);
  org.id = 42;
  warn = NULL;
  const char *body = NULL;
  last_rc = sr__sdp_default(&org, "192.0.2.1", offer, offer ? strlen(offer) : 0,
                            &body, &warn);
  return last_rc == 0 ? body : NULL;
}

static void test_offer(void) {
  CHECK_STR(answer_to(NULL), "v=0\r\no=- 42 1" REST
                             "m=audio 9 RTP/AVP 0\r\n"
                             "a=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n");
  const char *b = NULL;
  sr__sdp_origin o = {.id = 7};
  CHECK_INT(sr__sdp_default(&o, "2001:db8::1", NULL, 0, &b, NULL), 0);
  CHECK(b && strstr(b, "o=- 7 1 IN IP6 2001:db8::1\r\n") != NULL);
  CHECK(b && strstr(b, "c=IN IP6 2001:db8::1\r\n") != NULL);
  sr__free(o.last);
  o = (sr__sdp_origin){.id = 4294967295UL};
  CHECK_INT(sr__sdp_default(&o, "[::1]", NULL, 0, &b, NULL), 0);
  CHECK(b && strstr(b, "o=- 4294967295 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\n"));
  sr__free(o.last);
  /* The address goes into two lines: nothing may inject lines of its own. */
  o = (sr__sdp_origin){.id = 1};
  CHECK_INT(sr__sdp_default(&o, NULL, NULL, 0, &b, NULL), SR_EINVAL);
  CHECK_INT(sr__sdp_default(&o, "", NULL, 0, &b, NULL), SR_EINVAL);
  CHECK_INT(sr__sdp_default(&o, "1.2.3.4\r\na=evil", NULL, 0, &b, NULL),
            SR_EINVAL);
  CHECK_INT(sr__sdp_default(&o, "1.2.3.4 x", NULL, 0, &b, NULL), SR_EINVAL);
  CHECK(o.last == NULL);
}

/* The audit's case: a G.729-only offer was answered with PCMU. */
static void test_g729_only(void) {
  CHECK_STR(answer_to(HEAD "m=audio 4000 RTP/AVP 18\r\n"
                           "a=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\n"),
            "v=0\r\no=- 42 1" REST "m=audio 9 RTP/AVP 18\r\n"
            "a=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=sendrecv\r\n");
  /* The first format only, without an rtpmap for a static type. */
  CHECK_STR(answer_to(HEAD "m=audio 4000 RTP/AVP 8 0 18\r\n"),
            "v=0\r\no=- 42 1" REST "m=audio 9 RTP/AVP 8\r\na=sendrecv\r\n");
}

/* One m= line per offered one, in order; video is RTP too. */
static void test_audio_video(void) {
  CHECK_STR(answer_to(HEAD "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
                           "m=video 4002 RTP/AVPF 96 97\r\n"
                           "a=rtpmap:97 VP8/90000\r\n"
                           "a=rtpmap:96 H264/90000\r\n"
                           "a=fmtp:97 max-fr=30\r\n"
                           "a=fmtp:96 profile-level-id=42e01f\r\n"
                           "a=rtcp-fb:96 nack\r\n"),
            "v=0\r\no=- 42 1" REST
            "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
            "m=video 9 RTP/AVPF 96\r\na=rtpmap:96 H264/90000\r\n"
            "a=fmtp:96 profile-level-id=42e01f\r\na=sendrecv\r\n");
}

static const char *media_dir(const char *offer_attrs) {
  static char buf[4096];
  snprintf(buf, sizeof buf, "%sm=audio 4000 RTP/AVP 0\r\n%s", HEAD,
           offer_attrs);
  const char *b = answer_to(buf), *a = b ? strstr(b, "a=") : NULL;
  return a ? a : "(none)";
}

/* RFC 3264 §6.1: the direction mirrored, session level applying to every
 * stream unless the stream says otherwise (§5.1). */
static void test_direction(void) {
  CHECK_STR(media_dir("a=sendonly\r\n"), "a=recvonly\r\n");
  CHECK_STR(media_dir("a=recvonly\r\n"), "a=sendonly\r\n");
  CHECK_STR(media_dir("a=inactive\r\n"), "a=inactive\r\n");
  CHECK_STR(media_dir("a=sendrecv\r\n"), "a=sendrecv\r\n");
  CHECK_STR(media_dir("a=ptime:20\r\n"), "a=sendrecv\r\n");
  CHECK_STR(answer_to("v=0\r\ns=-\r\na=sendonly\r\nt=0 0\r\n"
                      "m=audio 1 RTP/AVP 0\r\nm=audio 2 RTP/AVP 0\r\n"
                      "a=inactive\r\n"),
            "v=0\r\no=- 42 1" REST "m=audio 9 RTP/AVP 0\r\na=recvonly\r\n"
            "m=audio 9 RTP/AVP 0\r\na=inactive\r\n");
}

/* RFC 4733 events kept, at the clock rate of the format kept, only when
 * the m= line offers them. */
static void test_telephone_event(void) {
  CHECK_STR(answer_to(HEAD "m=audio 4000 RTP/AVP 8 102 101\r\n"
                           "a=fmtp:101 0-16\r\n"
                           "a=rtpmap:102 telephone-event/16000\r\n"
                           "a=rtpmap:101 telephone-event/8000\r\n"
                           "a=rtpmap:8 PCMA/8000\r\n"
                           "a=sendonly\r\n"),
            "v=0\r\no=- 42 1" REST "m=audio 9 RTP/AVP 8 101\r\n"
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
            "a=fmtp:101 0-16\r\na=recvonly\r\n");
  CHECK_STR(answer_to(HEAD "m=audio 4000 RTP/AVP 111 101 110\r\n"
                           "a=rtpmap:111 opus/48000/2\r\n"
                           "a=rtpmap:101 telephone-event/8000\r\n"
                           "a=rtpmap:110 TELEPHONE-EVENT/48000\r\n"),
            "v=0\r\no=- 42 1" REST "m=audio 9 RTP/AVP 111 110\r\n"
            "a=rtpmap:111 opus/48000/2\r\n"
            "a=rtpmap:110 TELEPHONE-EVENT/48000\r\na=sendrecv\r\n");
  /* the first codec, not telephone-event or comfort noise put first */
  CHECK_STR(answer_to(HEAD "m=audio 4000 RTP/AVP 101 13 96 8\r\n"
                           "a=rtpmap:101 telephone-event/8000\r\n"
                           "a=rtpmap:96 CN/8000\r\n"),
            "v=0\r\no=- 42 1" REST "m=audio 9 RTP/AVP 8 101\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n");
  /* only helpers: the first is all there is */
  CHECK_STR(answer_to(HEAD "m=audio 4000 RTP/AVP 101\r\n"
                           "a=rtpmap:101 telephone-event/8000\r\n"),
            "v=0\r\no=- 42 1" REST "m=audio 9 RTP/AVP 101\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n");
  /* an rtpmap for a type the m= line does not offer is not an offer */
  CHECK_STR(answer_to(HEAD "m=audio 4000 RTP/AVP 0\r\n"
                           "a=rtpmap:101 telephone-event/8000\r\n"),
            "v=0\r\no=- 42 1" REST "m=audio 9 RTP/AVP 0\r\na=sendrecv\r\n");
}

/* Streams we cannot take: port 0, the offer's proto and first format. */
static void test_rejected_streams(void) {
  CHECK_STR(answer_to(HEAD "m=audio 4000 RTP/AVP 0\r\n"
                           "m=image 4002 udptl t38\r\na=T38FaxVersion:0\r\n"
                           "m=application 5000 UDP/BFCP *\r\n"
                           "m=audio 4004 RTP/SAVP 0\r\n"
                           "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n"
                           "m=video 0 RTP/AVP 31\r\n"
                           "m=text 4006/2 RTP/AVP 98\r\n"),
            "v=0\r\no=- 42 1" REST "m=audio 9 RTP/AVP 0\r\na=sendrecv\r\n"
            "m=image 0 udptl t38\r\n"
            "m=application 0 UDP/BFCP *\r\n"
            "m=audio 0 RTP/SAVP 0\r\n"
            "m=video 0 RTP/AVP 31\r\n"
            "m=text 9 RTP/AVP 98\r\na=sendrecv\r\n");
  /* Nothing we can take (a T.38 switch, SRTP only): 488, with why. */
  CHECK(answer_to(HEAD "m=image 4002 udptl t38\r\n") == NULL);
  CHECK_INT(last_rc, SR_EPARSE);
  CHECK(warn && strncmp(warn, "Warning: 302 ", 13) == 0);
  CHECK(answer_to(HEAD "m=audio 4004 RTP/SAVP 0\r\n") == NULL);
  CHECK(org.last == NULL);
  /* Every stream already disabled by the offerer: answered, all port 0. */
  CHECK_STR(answer_to(HEAD "m=audio 0 RTP/AVP 0\r\n"),
            "v=0\r\no=- 42 1" REST "m=audio 0 RTP/AVP 0\r\n");
  /* No stream at all: RFC 3264 §6 allows it, answered with none. */
  CHECK_STR(answer_to(HEAD), "v=0\r\no=- 42 1" REST);
}

/* LF-only offers read as CRLF ones; the answer is CRLF whatever came. */
static void test_line_ends(void) {
  static const char lf[] = "v=0\no=- 1 1 IN IP4 192.0.2.9\ns=-\nt=0 0\n"
                           "m=audio 4000 RTP/AVP 18 101\na=rtpmap:18 G729/8000\n"
                           "a=rtpmap:101 telephone-event/8000\na=recvonly\n"
                           "m=video 4002 RTP/AVP 96\n";
  const char *want = "v=0\r\no=- 42 1" REST "m=audio 9 RTP/AVP 18 101\r\n"
                     "a=rtpmap:18 G729/8000\r\n"
                     "a=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n"
                     "m=video 9 RTP/AVP 96\r\na=sendrecv\r\n";
  CHECK_STR(answer_to(lf), want);
  char crlf[1024], *p = crlf;
  for (const char *s = lf; *s; s++) {
    if (*s == '\n') *p++ = '\r';
    *p++ = *s;
  }
  *p = 0;
  CHECK_STR(answer_to(crlf), want);
  /* without a final line end, and with blank lines */
  CHECK_STR(answer_to("v=0\r\n\r\nm=audio 1 RTP/AVP 0"),
            "v=0\r\no=- 42 1" REST "m=audio 9 RTP/AVP 0\r\na=sendrecv\r\n");
}

static void test_garbage(void) {
  static const char *bad[] = {
      "",
      "hello",
      "v=1\r\nm=audio 4000 RTP/AVP 0\r\n",
      " v=0\r\nm=audio 4000 RTP/AVP 0\r\n",
      "v=0\r\nm=audio\r\n",
      "v=0\r\nm=audio 4000 RTP/AVP\r\n",
      "v=0\r\nm=audio x RTP/AVP 0\r\n",
      "v=0\r\nm=audio 4000/x RTP/AVP 0\r\n",
      "v=0\r\nm=audio 4000 RTP/AVP 0\r\nno equals sign\r\n",
      "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=x\ry\r\n",      /* bare CR */
      "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=\x01\r\n",      /* control */
      "\x89PNG\r\n\x1a\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    CHECK(answer_to(bad[i]) == NULL);
    CHECK_INT(last_rc, SR_EPARSE);
    CHECK(warn && strncmp(warn, "Warning: 399 ", 13) == 0);
    CHECK(org.last == NULL && org.version == 0);
  }
  /* a NUL inside the body's length */
  const char nul[] = "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=x\0y\r\n";
  const char *b;
  sr__sdp_origin o = {.id = 1};
  CHECK_INT(sr__sdp_default(&o, "192.0.2.1", nul, sizeof nul - 1, &b, NULL),
            SR_EPARSE);
  CHECK(o.last == NULL);
}

/* RFC 3264 §8: one sess-id, the version +1 when the body changes and kept
 * when it does not; the last body again as an offer. */
static void test_versions(void) {
  static const char talk[] = HEAD "m=audio 4000 RTP/AVP 0\r\n";
  const char *b1 = answer_to(talk), *b;
  CHECK(b1 && strncmp(b1, "v=0\r\no=- 42 1 IN", 16) == 0);
  CHECK_INT(sr__sdp_default(&org, "192.0.2.1", talk, sizeof talk - 1, &b,
                            NULL), 0);
  CHECK(b == b1 && org.version == 1); /* the same answer: kept */
  static const char hold[] = HEAD "m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
  CHECK_INT(sr__sdp_default(&org, "192.0.2.1", hold, sizeof hold - 1, &b,
                            NULL), 0);
  CHECK(b && strncmp(b, "v=0\r\no=- 42 2 IN", 16) == 0 &&
        strstr(b, "a=recvonly\r\n"));
  const char *held = b;
  CHECK_INT(sr__sdp_default(&org, "192.0.2.1", NULL, 0, &b, NULL), 0);
  CHECK(b == held); /* offerless re-INVITE: the same session again */
  CHECK_INT(sr__sdp_default(&org, "192.0.2.1", "junk", 4, &b, &warn),
            SR_EPARSE);
  CHECK(org.version == 2 && org.last == held); /* a refusal changes nothing */
  CHECK_INT(sr__sdp_default(&org, "192.0.2.1", talk, sizeof talk - 1, &b,
                            NULL), 0);
  CHECK(b && strncmp(b, "v=0\r\no=- 42 3 IN", 16) == 0);
  sr__free(org.last);
  memset(&org, 0, sizeof org);
}

/* ---------------- end to end ---------------- */

static sr_ua *B;
static sr_session *bob_s;
static int bob_accept_rc = 1;
static void bob_on_invite(sr_ua *ua, sr_session *inv, void *ud) {
  (void)ua;
  (void)ud;
  if (bob_s) sr_session_unref(bob_s);
  bob_s = sr_session_ref(inv);
  bob_accept_rc = sr_invitation_accept(inv, NULL);
}

static const char *body_of(const char *msg) {
  const char *e = msg ? strstr(msg, "\r\n\r\n") : NULL;
  return e ? e + 4 : "";
}

/* "sess-id version" of a body's o= line, in out. */
static const char *origin(const char *body, char *out, size_t n) {
  const char *o = strstr(body, "\r\no=- ");
  out[0] = 0;
  if (!o) return out;
  o += 6;
  const char *e = strstr(o, " IN ");
  size_t k = e && (size_t)(e - o) < n ? (size_t)(e - o) : 0;
  memcpy(out, o, k);
  out[k] = 0;
  return out;
}

static char to_hdr[256], last_body[2048];

/* Sends an INVITE (initial when cseq is 1) with body (or none); returns
 * the final status and keeps its body in last_body. */
static int invite(t_raw *r, int cseq, const char *body) {
  char t[4096];
  snprintf(t, sizeof t,
           "INVITE sip:bob@$UA SIP/2.0\nVia: SIP/2.0/UDP $ME;branch=$BR;rport\n"
           "From: <sip:alice@127.0.0.1>;tag=a1\nTo: %s\n"
           "Call-ID: sdp-e2e-%d@127.0.0.1\nCSeq: %d INVITE\n"
           "Contact: <sip:alice@$ME>\nMax-Forwards: 70\n%s"
           "Content-Length: $CL\n\n%s",
           cseq == 1 ? "<sip:bob@127.0.0.1>" : to_hdr, r->port, cseq,
           body ? "Content-Type: application/sdp\n" : "", body ? body : "");
  if (t_raw_sendf(r, t) != 0) return -1;
  const char *m;
  while ((m = t_raw_recv(r, 5000)) && t_status(m) < 200) {
  }
  if (!m) return -1;
  snprintf(last_body, sizeof last_body, "%s", body_of(m));
  if (cseq == 1) t_header(m, "To", to_hdr, sizeof to_hdr);
  int code = t_status(m);
  snprintf(t, sizeof t,
           "ACK sip:bob@$UA SIP/2.0\nVia: SIP/2.0/UDP $ME;branch=$BR;rport\n"
           "From: <sip:alice@127.0.0.1>;tag=a1\nTo: %s\n"
           "Call-ID: sdp-e2e-%d@127.0.0.1\nCSeq: %d ACK\nMax-Forwards: 70\n"
           "Content-Length: 0\n\n",
           to_hdr, r->port, cseq);
  if (code >= 200 && code < 300) t_raw_sendf(r, t);
  return code;
}

#define OFFER                                                               \
  "v=0\no=- 5 5 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"         \
  "m=audio 4000 RTP/AVP 18 101\na=rtpmap:18 G729/8000\n"                    \
  "a=rtpmap:101 telephone-event/8000\n"                                     \
  "m=video 4002 RTP/AVP 96\na=rtpmap:96 H264/90000\n"

static void test_call_end_to_end(void) {
  B = t_ua("bob", 0, 0, NULL);
  REQUIRE(B != NULL);
  sr_ua_delegate d = {.on_invite = bob_on_invite};
  sr_ua_set_delegate(B, &d, NULL);
  t_raw r;
  REQUIRE(t_raw_connect(&r, SR_TRANSPORT_UDP,
                        sr_ua_local_port(B, SR_TRANSPORT_UDP)) == 0);
  char o1[64], o2[64];
  CHECK_INT(invite(&r, 1, OFFER), 200);
  CHECK_INT(bob_accept_rc, 0);
  const char *b = last_body;
  CHECK(strstr(b, "\r\nm=audio 9 RTP/AVP 18 101\r\n") != NULL);
  CHECK(strstr(b, "\r\na=rtpmap:18 G729/8000\r\n") != NULL);
  CHECK(strstr(b, "\r\nm=video 9 RTP/AVP 96\r\n") != NULL);
  CHECK(strstr(b, "c=IN IP4 127.0.0.1\r\n") != NULL);
  CHECK(strstr(b, "RTP/AVP 0") == NULL);
  origin(b, o1, sizeof o1);
  CHECK(o1[0] && strchr(o1, ' ') && strcmp(strchr(o1, ' '), " 1") == 0);

  /* hold: the same sess-id, version 2, recvonly on both streams */
  static const char hold[] =
      "v=0\no=- 5 6 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"
      "a=sendonly\nm=audio 4000 RTP/AVP 18 101\na=rtpmap:18 G729/8000\n"
      "a=rtpmap:101 telephone-event/8000\n"
      "m=video 4002 RTP/AVP 96\na=rtpmap:96 H264/90000\n";
  CHECK_INT(invite(&r, 2, hold), 200);
  origin(last_body, o2, sizeof o2);
  char want[80];
  snprintf(want, sizeof want, "%.*s 2", (int)(strchr(o1, ' ') - o1), o1);
  CHECK_STR(o2, want);
  CHECK(strstr(last_body, "a=sendrecv") == NULL);
  CHECK(strstr(last_body, "a=recvonly\r\nm=video") != NULL);
  CHECK(strstr(last_body, "H264/90000\r\na=recvonly\r\n") != NULL);
  char held[2048];
  snprintf(held, sizeof held, "%s", last_body);

  /* a T.38 switch we cannot take: 488, and the session as it was */
  CHECK_INT(invite(&r, 3, "v=0\no=- 5 7 IN IP4 127.0.0.1\ns=-\nt=0 0\n"
                          "m=image 4000 udptl t38\n"), 488);
  CHECK_INT(sr_session_get_state(bob_s), SR_SESSION_ESTABLISHED);
  /* offerless: our offer is the session as it is, version unchanged */
  CHECK_INT(invite(&r, 4, NULL), 200);
  CHECK_STR(last_body, held);
  t_raw_close(&r);

  /* an initial INVITE whose offer does not read as SDP: 488, not a 200
   * with an offer of our own; accept says why */
  REQUIRE(t_raw_connect(&r, SR_TRANSPORT_UDP,
                        sr_ua_local_port(B, SR_TRANSPORT_UDP)) == 0);
  CHECK_INT(invite(&r, 1, "this is not SDP\n"), 488);
  CHECK_INT(bob_accept_rc, SR_EPARSE);
  CHECK_INT(sr_session_get_state(bob_s), SR_SESSION_TERMINATED);
  t_raw_close(&r);
  sr_session_unref(bob_s);
  bob_s = NULL;
  sr_ua_close(B);
  sr_ua_unref(B);
}

int main(void) {
  (void)t_drive;
  RUN(test_offer);
  RUN(test_g729_only);
  RUN(test_audio_video);
  RUN(test_direction);
  RUN(test_telephone_event);
  RUN(test_rejected_streams);
  RUN(test_line_ends);
  RUN(test_garbage);
  RUN(test_versions);
  RUN(test_call_end_to_end);
  return DONE();
}
