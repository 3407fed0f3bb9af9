/*
 * challenge.c — answering a 401/407 (RFC 3261 §22.2, §22.3): the same
 * request again with a new branch, the next CSeq, and (Proxy-)Authorization
 * from the UA's credentials. Used for INVITE and REFER.
 *
 * Every challenge in the response gets its answer: a forked request may
 * come back with one per proxy, and a server may offer algorithms we do
 * not do (SHA-256 first, RFC 8760) next to one we do. The request keeps
 * what it already carried for the realms not challenged now (a second
 * proxy on the path challenges after the first accepted), and drops its
 * answers for a realm challenged again (a stale nonce, a wrong password:
 * the caller bounds the retries). A challenge that repeats the nonce we
 * just answered, without stale=true, rejects those credentials: they are
 * not sent again (§22.2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* Realms and nonces as libosip2 keeps them (a quoted string, or a bare
 * token from a lax peer), compared by their text: our answer escapes only
 * what must be, the challenge may escape more. */
static int same_text(const char *a, const char *b) {
  if (!a || !b) return 0;
  size_t la = strlen(a), lb = strlen(b), i = 0, j = 0;
  if (la >= 2 && a[0] == '"' && a[la - 1] == '"') a++, la -= 2;
  if (lb >= 2 && b[0] == '"' && b[lb - 1] == '"') b++, lb -= 2;
  for (; i < la && j < lb; i++, j++) {
    if (a[i] == '\\' && i + 1 < la) i++;
    if (b[j] == '\\' && j + 1 < lb) j++;
    if (a[i] != b[j]) return 0;
  }
  return i == la && j == lb;
}

static int challenged(osip_list_t *chs, const char *realm) {
  for (int i = 0; i < osip_list_size(chs); i++)
    if (same_text(osip_www_authenticate_get_realm(osip_list_get(chs, i)),
                  realm))
      return 1;
  return 0;
}

/* Drops the credentials m carries for a realm that chs challenges. */
static void drop_answered(osip_list_t *auths, osip_list_t *chs) {
  for (int i = 0; i < osip_list_size(auths);) {
    osip_authorization_t *a = osip_list_get(auths, i);
    if (challenged(chs, osip_authorization_get_realm(a))) {
      osip_list_remove(auths, i);
      osip_authorization_free(a);
    } else {
      i++;
    }
  }
}

/* stale=true, in any case, quoted or not (RFC 2617 §3.2.1). */
static int is_stale(osip_www_authenticate_t *ch) {
  const char *v = osip_www_authenticate_get_stale(ch);
  if (!v) return 0;
  if (*v == '"') v++;
  return strncasecmp(v, "true", 4) == 0 && (v[4] == 0 || v[4] == '"');
}

/* The challenge of chs that repeats, without stale=true, the nonce of the
 * credentials sent for its realm: the server rejected them (§22.2). */
static osip_www_authenticate_t *rejected(osip_list_t *auths,
                                         osip_list_t *chs) {
  for (int i = 0; i < osip_list_size(chs); i++) {
    osip_www_authenticate_t *ch = osip_list_get(chs, i);
    const char *realm = osip_www_authenticate_get_realm(ch);
    for (int j = 0; j < osip_list_size(auths); j++) {
      osip_authorization_t *a = osip_list_get(auths, j);
      if (same_text(osip_authorization_get_realm(a), realm) &&
          same_text(osip_authorization_get_nonce(a),
                    osip_www_authenticate_get_nonce(ch)) &&
          !is_stale(ch))
        return ch;
    }
  }
  return NULL;
}

/* Adds m's answer to challenge ch: 0, SR_ENOMEM, or the reason it cannot
 * be answered (SR_EINVAL for an algorithm we do not do, SR_EPARSE). */
static int answer_one(sr_ua *ua, osip_message_t *m, osip_www_authenticate_t *ch,
                      int proxy, const char *uri) {
  char *chs = NULL, *value = NULL;
  osip_www_authenticate_to_str(ch, &chs);
  if (!chs) return SR_ENOMEM;
  int rc = sr__digest_response(chs, m->sip_method, uri, ua->username,
                               ua->password, 1, NULL, &value);
  osip_free(chs);
  if (rc == 0 && (proxy ? osip_message_set_proxy_authorization(m, value)
                        : osip_message_set_authorization(m, value)) != 0)
    rc = SR_ENOMEM;
  sr__free(value);
  return rc;
}

int sr__answer_challenge(sr_ua *ua, osip_message_t *req,
                         osip_message_t *resp, int cseq, sr_transport tp,
                         int family, osip_message_t **out) {
  if (!ua->username || !ua->password) return SR_EINVAL;
  int proxy = resp->status_code == 407;
  osip_list_t *chs = proxy ? &resp->proxy_authenticates : &resp->www_authenticates;
  if (osip_list_size(chs) <= 0) return SR_EPARSE;
  osip_www_authenticate_t *again = rejected(
      proxy ? &req->proxy_authorizations : &req->authorizations, chs);
  if (again) {
    const char *realm = osip_www_authenticate_get_realm(again);
    sr__log(ua, SR_LOG_INFO, "%d for realm %s with the nonce just answered: "
            "credentials rejected", resp->status_code, realm ? realm : "(none)");
    return SR_ESTATE;
  }
  char *uri = NULL;
  osip_message_t *m;
  osip_uri_to_str(req->req_uri, &uri);
  if (!uri) return SR_ENOMEM;
  if (osip_message_clone(req, &m) != 0) {
    osip_free(uri);
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
  drop_answered(proxy ? &m->proxy_authorizations : &m->authorizations, chs);
  int rc = 0, answered = 0;
  for (int i = 0; i < osip_list_size(chs) && rc != SR_ENOMEM; i++) {
    osip_www_authenticate_t *ch = osip_list_get(chs, i);
    rc = answer_one(ua, m, ch, proxy, uri);
    if (rc == 0) {
      answered++;
    } else if (rc != SR_ENOMEM) {
      const char *realm = osip_www_authenticate_get_realm(ch);
      sr__log(ua, SR_LOG_WARNING, "cannot answer the %d challenge for realm %s: %s",
              resp->status_code, realm ? realm : "(none)", sr_strerror(rc));
    }
  }
  osip_free(uri);
  if (rc != SR_ENOMEM && answered) rc = sr__add_via(ua, m, tp, family);
  if (rc < 0) {
    osip_message_free(m);
    return rc;
  }
  *out = m;
  return 0;
}
