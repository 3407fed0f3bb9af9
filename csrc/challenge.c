/*
 * challenge.c — answering a 401/407 (RFC 3261 §22.2): the same request
 * again with a new branch, the next CSeq, and (Proxy-)Authorization from
 * the UA's credentials. Used for INVITE and REFER.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int sr__answer_challenge(sr_ua *ua, osip_message_t *req,
                         osip_message_t *resp, int cseq, sr_transport tp,
                         int family, osip_message_t **out) {
  if (!ua->username || !ua->password) return SR_EINVAL;
  int proxy = resp->status_code == 407;
  void *ch = osip_list_get(proxy ? &resp->proxy_authenticates
                                 : &resp->www_authenticates, 0);
  char *chs = NULL, *uri = NULL, *value = NULL;
  if (!ch) return SR_EPARSE;
  if (proxy) osip_proxy_authenticate_to_str(ch, &chs);
  else osip_www_authenticate_to_str(ch, &chs);
  if (!chs) return SR_ENOMEM;
  osip_uri_to_str(req->req_uri, &uri);
  int rc = uri ? sr__digest_response(chs, req->sip_method, uri, ua->username,
                                     ua->password, 1, NULL, &value)
               : SR_ENOMEM;
  osip_free(chs);
  osip_free(uri);
  if (rc < 0) {
    sr__log(ua, SR_LOG_WARNING, "cannot answer the %d challenge: %s",
            resp->status_code, sr_strerror(rc));
    return rc;
  }
  osip_message_t *m;
  if (osip_message_clone(req, &m) != 0) {
    sr__free(value);
    return SR_ENOMEM;
  }
  char num[16];
  snprintf(num, sizeof num, "%d", cseq);
  osip_free(m->cseq->number);
  m->cseq->number = osip_strdup(num);
  /* We are the only Via: replace it to get a new branch. */
  while (osip_list_size(&m->vias) > 0) {
    osip_via_t *v = osip_list_get(&m->vias, 0);
    osip_list_remove(&m->vias, 0);
    osip_via_free(v);
  }
  /* Drop credentials answering an earlier challenge. */
  osip_list_special_free(proxy ? &m->proxy_authorizations : &m->authorizations,
                         proxy ? (void (*)(void *))osip_proxy_authorization_free
                               : (void (*)(void *))osip_authorization_free);
  rc = sr__add_via(ua, m, tp, family);
  if (rc == 0 && (proxy ? osip_message_set_proxy_authorization(m, value)
                         : osip_message_set_authorization(m, value)) != 0)
    rc = SR_ENOMEM;
  sr__free(value);
  if (rc < 0) {
    osip_message_free(m);
    return rc;
  }
  *out = m;
  return 0;
}
