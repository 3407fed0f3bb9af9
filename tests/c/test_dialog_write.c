/*
 * test_dialog_write.c — what is written without building a message first
 * is the same bytes as building it and writing that:
 * - sr__dialog_write_request against sr__dialog_build_request (plus the
 *   NOTIFY's Event, Subscription-State and sipfrag body): for dialogs with
 *   and without a route set, display names and quoted names, tag and URI
 *   parameters, IPv6, TCP, a UA with its own User-Agent; for NOTIFY, ACK,
 *   BYE and INFO. Only the Via branch is random: the old bytes get the new
 *   branch before the comparison.
 * - sr__write_response against sr__build_response: requests with several
 *   Vias (received, rport), Record-Routes, with and without a To tag; every
 *   class of status code, with and without a tag to add, own reasons.
 */
#include <stdlib.h>

#include "internal.h"
#undef REQUIRE /* libosip2's headers have one of their own */
#include "harness.h"
#include "uas.h"

/* 200 OK responses to an INVITE we sent: the dialogs (UAC side). */
static const char *const responses[] = {
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa1\r\n"
    "From: <sip:alice@127.0.0.1>;tag=ft1\r\n"
    "To: <sip:bob@127.0.0.1:5080>;tag=tt1\r\n"
    "Call-ID: c1@127.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:bob@127.0.0.1:5080>\r\n"
    "Content-Length: 0\r\n\r\n",

    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa2\r\n"
    "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com:5099;lr;x=y>\r\n"
    "From: \"Alice Smith\" <sip:alice@127.0.0.1>;tag=ft2;x-p=1\r\n"
    "To: Bob <sip:bob@example.com;user=phone>;tag=tt2\r\n"
    "Call-ID: 8b2c1e\r\n"
    "CSeq: 41 INVITE\r\n"
    "Contact: \"Bob\" <sip:bob@192.0.2.7:5090;transport=udp;ob>;expires=60\r\n"
    "Content-Length: 0\r\n\r\n",

    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/TCP [::1]:5070;branch=z9hG4bKa3\r\n"
    "Record-Route: <sip:[2001:db8::1]:5062;transport=tcp;lr>\r\n"
    "From: <sip:%61lice@[::1]>;tag=ft3\r\n"
    "To: \"B \\\"the\\\" ob\" <sip:bob@[::1]:5080;transport=tcp>;tag=tt3\r\n"
    "Call-ID: abc-123@[::1]\r\n"
    "CSeq: 7 INVITE\r\n"
    "Contact: <sip:bob@[::1]:5080;transport=tcp>\r\n"
    "Content-Length: 0\r\n\r\n",
};

static const char *const methods[] = {"NOTIFY", "ACK", "BYE", "INFO"};

static int compared;

static void custom_ua(sr_ua_options *o) { o->user_agent = "PBX test/2 (lab)"; }

/* The old bytes: built, then written. */
static char *old_way(sr_ua *ua, osip_dialog_t *d, sr_transport tp, int fam,
                     const char *method) {
  osip_message_t *m = NULL;
  char *s = NULL;
  if (sr__dialog_build_request(ua, d, tp, fam, method, &m) != 0) return NULL;
  if (strcmp(method, "NOTIFY") == 0) {
    osip_message_set_header(m, "Event", "refer;id=7");
    osip_message_set_header(m, "Subscription-State", "active;expires=60");
    sr__set_body(m, "SIP/2.0 180 Ringing\r\n", "message/sipfrag;version=2.0");
  }
  if (sr__message_to_str(m, &s, NULL) != 0) s = NULL;
  osip_message_free(m);
  return s;
}

static void compare(sr_ua *ua, osip_dialog_t *d, sr_transport tp, int fam,
                    const char *method) {
  int notify = strcmp(method, "NOTIFY") == 0;
  char *old = old_way(ua, d, tp, fam, method); /* moves the CSeq on */
  REQUIRE(old != NULL);
  char branch[SR__BRANCH_LEN], *s = NULL;
  size_t len = 0;
  int rc = sr__dialog_write_request(
      ua, d, tp, fam, method, (unsigned long)d->local_cseq,
      notify ? "Event: refer;id=7\r\nSubscription-State: active;expires=60\r\n"
             : NULL,
      notify ? "message/sipfrag; version=2.0" : NULL,
      notify ? "SIP/2.0 180 Ringing\r\n" : NULL, branch, &s, &len);
  CHECK_INT(rc, 0);
  if (rc == 0) {
    CHECK_INT((long)strlen(s), (long)len);
    CHECK_INT((long)strlen(branch), SR__BRANCH_LEN - 1);
    char *b = strstr(old, "branch=z9hG4bK");
    REQUIRE(b != NULL);
    memcpy(b + 7, branch, SR__BRANCH_LEN - 1);
    CHECK_STR(s, old);
    if (strcmp(s, old) != 0) fprintf(stderr, "%s differs:\n%s\n--- was:\n%s\n", method, s, old);
    compared++;
  }
  osip_free(s);
  osip_free(old);
}

static void test_same_bytes(void) {
  sr_ua *uas[] = {t_ua("agent", 0, 0, NULL), t_ua("agent", 1, 0, NULL),
                  t_ua("svc", 0, 0, custom_ua)};
  for (size_t u = 0; u < sizeof uas / sizeof uas[0]; u++) {
    REQUIRE(uas[u] != NULL);
    int fam = u == 1 ? AF_INET6 : AF_INET;
    for (size_t i = 0; i < sizeof responses / sizeof responses[0]; i++) {
      for (int tp = SR_TRANSPORT_UDP; tp <= SR_TRANSPORT_TCP; tp++) {
        osip_message_t *r = NULL;
        REQUIRE(osip_message_init(&r) == 0);
        REQUIRE(osip_message_parse(r, responses[i], strlen(responses[i])) == 0);
        osip_dialog_t *d = NULL;
        REQUIRE(osip_dialog_init_as_uac(&d, r) == 0);
        for (size_t k = 0; k < sizeof methods / sizeof methods[0]; k++)
          compare(uas[u], d, (sr_transport)tp, fam, methods[k]);
        osip_dialog_free(d);
        osip_message_free(r);
      }
    }
  }
  fprintf(stderr, "  %d requests compared\n", compared);
  CHECK_INT(compared, 3 * 3 * 2 * 4);
}

/* No remote target: refused, as building is. */
static void test_no_target(void) {
  sr_ua *ua = t_ua("agent", 0, 0, NULL);
  REQUIRE(ua != NULL);
  osip_dialog_t *d = NULL;
  osip_message_t *r = NULL;
  REQUIRE(osip_message_init(&r) == 0);
  REQUIRE(osip_message_parse(r, responses[0], strlen(responses[0])) == 0);
  REQUIRE(osip_dialog_init_as_uac(&d, r) == 0);
  osip_contact_free(d->remote_contact_uri);
  d->remote_contact_uri = NULL;
  char branch[SR__BRANCH_LEN], *s = NULL;
  CHECK_INT(sr__dialog_write_request(ua, d, SR_TRANSPORT_UDP, AF_INET, "BYE", 2,
                                     NULL, NULL, NULL, branch, &s, NULL),
            SR_ESTATE);
  CHECK(s == NULL);
  osip_dialog_free(d);
  osip_message_free(r);
}

static const char *const requests[] = {
    "BYE sip:agent@127.0.0.1:5070 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1-7;received=10.0.0.1;rport=5061\r\n"
    "Via: SIP/2.0/TCP [2001:db8::9]:5062;branch=z9hG4bKx;maddr=10.1.1.1\r\n"
    "From: <sip:referrer@127.0.0.1:5060>;tag=r1\r\n"
    "To: \"Agent\" <sip:agent@127.0.0.1>;tag=a1\r\n"
    "Call-ID: 1-2@127.0.0.1\r\n"
    "CSeq: 3 BYE\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Length: 0\r\n\r\n",

    "INVITE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnash;rport\r\n"
    "Record-Route: <sip:p1.example.com;lr>\r\n"
    "Record-Route: <sip:p2.example.com;lr;ftag=x>\r\n"
    "From: Alice <sip:alice@example.com>;tag=9fxced76sl\r\n"
    "To: Bob <sip:bob@example.com;user=phone>\r\n"
    "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@192.0.2.1>\r\n"
    "Content-Length: 0\r\n\r\n",
};

static int responses_compared;

static void same_response(osip_message_t *req, int code, const char *reason,
                          const char *tag) {
  osip_message_t *r = NULL;
  char *old = NULL, *s = NULL;
  size_t len = 0;
  REQUIRE(sr__build_response(NULL, req, code, reason, tag, &r) == 0);
  REQUIRE(sr__message_to_str(r, &old, NULL) == 0);
  osip_message_free(r);
  CHECK_INT(sr__write_response(req, code, reason, tag, &s, &len), 0);
  if (s) {
    CHECK_STR(s, old);
    CHECK_INT((long)strlen(s), (long)len);
    responses_compared++;
  }
  osip_free(s);
  osip_free(old);
}

static void test_response_bytes(void) {
  static const int codes[] = {100, 180, 183, 200, 202, 302, 481, 500, 603};
  for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
    osip_message_t *req = NULL;
    REQUIRE(osip_message_init(&req) == 0);
    REQUIRE(osip_message_parse(req, requests[i], strlen(requests[i])) == 0);
    for (size_t k = 0; k < sizeof codes / sizeof codes[0]; k++) {
      same_response(req, codes[k], NULL, NULL);
      same_response(req, codes[k], NULL, "lt42");
      same_response(req, codes[k], "Call Leg/Transaction Does Not Exist", "lt42");
    }
    osip_message_free(req);
  }
  CHECK_INT(responses_compared, 2 * 9 * 3);
  char *s = NULL;
  CHECK_INT(sr__write_response(NULL, 200, NULL, NULL, &s, NULL), SR_EINVAL);
  CHECK(s == NULL);
}

int main(void) {
  RUN(test_same_bytes);
  RUN(test_response_bytes);
  RUN(test_no_target);
  t_free_uas();
  return DONE();
}
