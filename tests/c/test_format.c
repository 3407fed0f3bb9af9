/*
 * test_format.c — short texts the core writes by hand instead of with
 * printf. A peer's address (csrc/transport.c), what Via received= and
 * the logs carry: IPv4 octets of every digit count against inet_ntop,
 * IPv6 with brackets in "host:port" and without them as a host. Integers
 * and strings chained with sr__put_int/sr__put_str (csrc/util.c) against
 * snprintf, at the limits of long long.
 */
#include <limits.h>
#include <arpa/inet.h>

#include "internal.h"
#undef REQUIRE /* libosip2's headers have one of their own */
#include "harness.h"

static sr__peer v4(const char *a, int port) {
  sr__peer p = {.tp = SR_TRANSPORT_UDP};
  struct sockaddr_in *s = (struct sockaddr_in *)&p.addr;
  s->sin_family = AF_INET;
  s->sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, a, &s->sin_addr);
  p.addrlen = sizeof *s;
  return p;
}

static void test_ipv4(void) {
  static const char *const addrs[] = {"0.0.0.0", "127.0.0.1", "255.255.255.255",
                                      "10.99.100.9", "192.168.1.254",
                                      "1.22.123.4"};
  for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
    sr__peer p = v4(addrs[i], 5060 + (int)i);
    char host[64], want[80], got[80];
    int port = -1;
    sr__peer_host(&p, host, sizeof host, &port);
    CHECK_STR(host, addrs[i]);
    CHECK_INT(port, 5060 + (int)i);
    snprintf(want, sizeof want, "%s:%d", addrs[i], 5060 + (int)i);
    sr__peer_format(&p, got, sizeof got);
    CHECK_STR(got, want);
  }
  /* every octet value, against inet_ntop */
  for (unsigned v = 0; v < 256; v++) {
    sr__peer p = v4("0.0.0.0", 1);
    struct sockaddr_in *s = (struct sockaddr_in *)&p.addr;
    unsigned char *b = (unsigned char *)&s->sin_addr.s_addr;
    b[0] = (unsigned char)v;
    b[1] = (unsigned char)(255 - v);
    b[2] = (unsigned char)(v * 7);
    b[3] = (unsigned char)(v / 3);
    char host[64], want[INET_ADDRSTRLEN];
    int port;
    sr__peer_host(&p, host, sizeof host, &port);
    inet_ntop(AF_INET, &s->sin_addr, want, sizeof want);
    CHECK_STR(host, want);
  }
}

static void test_ipv6(void) {
  sr__peer p = {.tp = SR_TRANSPORT_TCP};
  struct sockaddr_in6 *s = (struct sockaddr_in6 *)&p.addr;
  s->sin6_family = AF_INET6;
  s->sin6_port = htons(5070);
  inet_pton(AF_INET6, "2001:db8::1", &s->sin6_addr);
  char host[64], got[80];
  int port;
  sr__peer_host(&p, host, sizeof host, &port);
  CHECK_STR(host, "2001:db8::1");
  CHECK_INT(port, 5070);
  sr__peer_format(&p, got, sizeof got);
  CHECK_STR(got, "[2001:db8::1]:5070");
}

static void test_put(void) {
  static const long long vals[] = {0, 7, 10, 99, 100, -1, -42, 2147483647LL,
                                   -2147483648LL, LLONG_MAX, LLONG_MIN};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    char got[64], want[64];
    char *e = sr__put_str(sr__put_int(sr__put_str(got, "id="), vals[i]), ";x");
    snprintf(want, sizeof want, "id=%lld;x", vals[i]);
    CHECK_STR(got, want);
    CHECK_INT((int)(e - got), (int)strlen(want));
  }
}

int main(void) {
  RUN(test_put);
  RUN(test_ipv4);
  RUN(test_ipv6);
  return DONE();
}
