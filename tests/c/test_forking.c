/*
 * test_forking.c — a forking proxy answers Alice's one INVITE with two
 * 2xx from two branches (different To tags, different Contacts): each is
 * ACKed in its own dialog, the second branch's dialog is ended with a BYE
 * (RFC 3261 §13.2.2.4), its retransmitted 2xx gets the ACK again and no
 * second BYE, and the call stays up with the first branch.
 */
#include "harness.h"
#include "uas.h"
#include "rawsock.h"

static sr_ua *A;
static sr_session *inv;
static t_raw proxy; /* both branches answer through it */

static int established(void *ud) {
  (void)ud;
  return sr_session_get_state(inv) == SR_SESSION_ESTABLISHED;
}

/* The next request from Alice whose method is `method`; others are
 * counted in *others (when given). */
static const char *next_request(const char *method, int *others) {
  const char *m;
  char got[32];
  while ((m = t_raw_recv(&proxy, 5000))) {
    if (t_method(m, got, sizeof got) && strcmp(got, method) == 0) return m;
    if (others) (*others)++;
  }
  return NULL;
}

static void send_2xx(const char *invite, const char *tag, const char *contact,
                     char *out, size_t cap) {
  char extra[256];
  snprintf(extra, sizeof extra,
           "Contact: <sip:%s@127.0.0.1:%d>\r\nContent-Type: application/sdp\r\n",
           contact, proxy.port);
  static const char *sdp =
      "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
      "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
  size_t n = t_build_response(invite, 200, "OK", tag, extra, sdp, out, cap);
  CHECK(n > 0 && t_raw_send(&proxy, out, n) == 0);
}

static void test_second_2xx_is_acked_and_ended(void) {
  A = t_ua("alice", 0, 50, NULL);
  REQUIRE(A);
  REQUIRE(t_raw_listen(&proxy, SR_TRANSPORT_UDP) == 0);
  char target[64], to[256];
  snprintf(target, sizeof target, "sip:bob@127.0.0.1:%d", proxy.port);
  REQUIRE(sr_ua_make_inviter(A, target, NULL, &inv) == 0);
  REQUIRE(sr_inviter_invite(inv) == 0);
  static char invite[T_RAW_MAX + 1], first[8192], second[8192];
  const char *m = next_request("INVITE", NULL);
  REQUIRE(m);
  memcpy(invite, m, proxy.msglen + 1);

  send_2xx(invite, "branch1", "bob", first, sizeof first);
  m = next_request("ACK", NULL);
  CHECK(m && t_header(m, "To", to, sizeof to) && strstr(to, "tag=branch1"));
  CHECK(t_drive(established, NULL, 5000));

  /* The second branch: ACKed (to its own Contact's dialog), then BYE. */
  send_2xx(invite, "branch2", "bob2", second, sizeof second);
  m = next_request("ACK", NULL);
  CHECK(m && t_header(m, "To", to, sizeof to) && strstr(to, "tag=branch2"));
  CHECK(m && strncmp(m, "ACK sip:bob2@", 13) == 0);
  m = next_request("BYE", NULL);
  CHECK(m && t_header(m, "To", to, sizeof to) && strstr(to, "tag=branch2"));
  CHECK(m && strncmp(m, "BYE sip:bob2@", 13) == 0);
  static char ok[8192];
  size_t n = m ? t_build_response(m, 200, "OK", NULL, NULL, NULL, ok, sizeof ok)
               : 0;
  CHECK(n && t_raw_send(&proxy, ok, n) == 0);

  /* Its 2xx again: the ACK again, no other BYE. */
  CHECK(t_raw_send(&proxy, second, strlen(second)) == 0);
  int others = 0;
  m = next_request("ACK", &others);
  CHECK(m && t_header(m, "To", to, sizeof to) && strstr(to, "tag=branch2"));
  /* In order on loopback: the call's own BYE, sent now, comes next
   * unless something else (a second BYE to branch2) came first. */
  sr_session_bye(inv);
  m = next_request("BYE", &others);
  CHECK(m && t_header(m, "To", to, sizeof to) && strstr(to, "tag=branch1"));
  CHECK_INT(others, 0);
  CHECK(sr_session_get_state(inv) == SR_SESSION_TERMINATING);

  sr_session_unref(inv);
  inv = NULL;
  t_free_uas();
  t_raw_close(&proxy);
}

int main(void) {
  RUN(test_second_2xx_is_acked_and_ended);
  return DONE();
}
