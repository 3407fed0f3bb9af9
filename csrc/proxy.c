/*
 * proxy.c — the outbound proxy (sr_ua_options.outbound_proxy): the first
 * hop of the requests this UA starts outside a dialog (RFC 3261 §8.1.2).
 * Such a request keeps its target as Request-URI and carries the proxy as
 * its first Route, with ;lr (loose routing, §16.12); the proxy resolves
 * the target's host, so a target may name one. The proxy's own name is
 * resolved once, when the UA is created: the loop never blocks on DNS.
 */
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

struct sr__proxy {
  char *route;      /* "<sip:host:port;transport=tcp;lr>" */
  sr_transport tp;  /* from the URI's transport parameter, else UDP */
  sr__peer v4, v6;  /* the host's first address of each family (addrlen 0:
                       none) */
};

/* Fills the proxy's addresses from a literal, else from getaddrinfo. */
static int resolve(sr__proxy *p, const char *host, int port) {
  sr__peer lit;
  if (strcasecmp(host, "localhost") != 0 &&
      sr__peer_set(&lit, p->tp, host, port) == 0) {
    if (lit.addr.ss_family == AF_INET6) p->v6 = lit;
    else p->v4 = lit;
    return 0;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = p->tp == SR_TRANSPORT_TCP
                                              ? SOCK_STREAM : SOCK_DGRAM};
  struct addrinfo *res = NULL;
  if (getaddrinfo(host, NULL, &hints, &res) != 0) return SR_EADDR;
  for (struct addrinfo *a = res; a; a = a->ai_next) {
    int fam = a->ai_family;
    sr__peer *dst = fam == AF_INET && !p->v4.addrlen    ? &p->v4
                    : fam == AF_INET6 && !p->v6.addrlen ? &p->v6
                                                        : NULL;
    if (!dst || a->ai_addrlen > sizeof dst->addr) continue;
    memset(dst, 0, sizeof *dst);
    dst->tp = p->tp;
    memcpy(&dst->addr, a->ai_addr, a->ai_addrlen);
    dst->addrlen = a->ai_addrlen;
    if (fam == AF_INET)
      ((struct sockaddr_in *)&dst->addr)->sin_port = htons((uint16_t)port);
    else
      ((struct sockaddr_in6 *)&dst->addr)->sin6_port = htons((uint16_t)port);
  }
  freeaddrinfo(res);
  return p->v4.addrlen || p->v6.addrlen ? 0 : SR_EADDR;
}

/* "sip:host[:port][;transport=udp|tcp][;lr]", bare or in <>. */
int sr__proxy_init(sr_ua *ua, const char *spec) {
  if (!spec) return 0;
  size_t sl = strlen(spec);
  int angled = sl > 1 && spec[0] == '<' && spec[sl - 1] == '>';
  char *s = sr__strdup(angled ? spec + 1 : spec);
  if (!s) return SR_ENOMEM;
  if (angled) s[sl - 2] = 0;
  osip_uri_t *u = NULL;
  sr__proxy *p = NULL;
  int rc = SR_EINVAL;
  if (osip_uri_init(&u) != 0) {
    rc = SR_ENOMEM;
    goto out;
  }
  /* sips needs TLS, which this library does not speak; a user part,
   * headers or maddr make no plain proxy address. */
  osip_uri_param_t *tpp = NULL, *lr = NULL, *maddr = NULL;
  if (osip_uri_parse(u, s) != 0 || !u->scheme || strcasecmp(u->scheme, "sip") ||
      !u->host || !u->host[0] || u->username ||
      osip_list_size(&u->url_headers) > 0)
    goto out;
  osip_uri_uparam_get_byname(u, "maddr", &maddr);
  if (maddr) goto out;
  osip_uri_uparam_get_byname(u, "transport", &tpp);
  osip_uri_uparam_get_byname(u, "lr", &lr);
  sr_transport tp = SR_TRANSPORT_UDP;
  if (tpp) {
    if (tpp->gvalue && !strcasecmp(tpp->gvalue, "tcp")) tp = SR_TRANSPORT_TCP;
    else if (!tpp->gvalue || strcasecmp(tpp->gvalue, "udp")) goto out;
  }
  int port = 5060;
  if (u->port) {
    char *end;
    long v = strtol(u->port, &end, 10);
    if (*end || v <= 0 || v > 65535) goto out;
    port = (int)v;
  }
  p = sr__calloc(1, sizeof *p);
  if (p && !lr) {
    /* A failed add may have freed the name or not: it is never freed here
     * (out of memory only). */
    char *name = osip_strdup("lr");
    if (!name || osip_uri_uparam_add(u, name, NULL) != 0) {
      sr__free(p);
      p = NULL;
    }
  }
  if (!p) {
    rc = SR_ENOMEM;
    goto out;
  }
  p->tp = tp;
  rc = resolve(p, u->host, port);
  char *uri = NULL;
  if (rc == 0 && sr__uri_to_str(u, &uri) != 0) rc = SR_ENOMEM;
  if (rc == 0) {
    size_t n = strlen(uri) + 3;
    p->route = sr__malloc(n);
    if (p->route) snprintf(p->route, n, "<%s>", uri);
    else rc = SR_ENOMEM;
  }
  osip_free(uri);
out:
  if (u) osip_uri_free(u);
  sr__free(s);
  if (rc == 0) {
    ua->proxy = p;
  } else if (p) {
    sr__free(p->route);
    sr__free(p);
  }
  return rc;
}

void sr__proxy_free(sr_ua *ua) {
  if (!ua->proxy) return;
  sr__free(ua->proxy->route);
  sr__free(ua->proxy);
  ua->proxy = NULL;
}

/* The proxy's address, over the transport its URI names (its Route says
 * the same), in a family this UA listens on: IPv4 first. Only the first
 * address of each family is kept; there is no failover to another. */
int sr__proxy_peer(sr_ua *ua, sr__peer *out) {
  sr__proxy *p = ua->proxy;
  if (!p) return SR_EINVAL;
  int four = p->v4.addrlen && (!p->v6.addrlen ||
                               sr__transport_listener_for(ua, p->tp, AF_INET) ||
                               !sr__transport_listener_for(ua, p->tp, AF_INET6));
  *out = four ? p->v4 : p->v6;
  out->conn = 0;
  return 0;
}

const char *sr__proxy_route(const sr_ua *ua) {
  return ua->proxy ? ua->proxy->route : NULL;
}
