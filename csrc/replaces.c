/*
 * replaces.c — the Replaces header on an incoming INVITE (RFC 3891 §3):
 * which of our dialogs it names, and whether it may be replaced.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "text.h"

/* s without the blanks around it, in place. */
static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  char *e = s + strlen(s);
  while (e > s && (e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
  return s;
}

static int all_token(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!is_token((unsigned char)*s)) return 0;
  return 1;
}

/* Splits "callid;to-tag=a;from-tag=b[;early-only]" in place. RFC 3891 §3:
 * exactly one to-tag and one from-tag, each a token. */
static int parse(char *v, char **cid, char **to, char **from, int *early) {
  *cid = *to = *from = NULL;
  *early = 0;
  char *save = NULL, *tok = strtok_r(v, ";", &save);
  if (!tok) return -1;
  *cid = trim(tok);
  while ((tok = strtok_r(NULL, ";", &save))) {
    tok = trim(tok);
    char **slot = strncasecmp(tok, "to-tag=", 7) == 0     ? to
                  : strncasecmp(tok, "from-tag=", 9) == 0 ? from
                                                          : NULL;
    if (slot) {
      if (*slot) return -1; /* twice */
      *slot = trim(tok + (slot == to ? 7 : 9));
      if (!all_token(*slot)) return -1;
    } else if (strcasecmp(tok, "early-only") == 0) {
      *early = 1;
    }
  }
  return **cid && *to && *from ? 0 : -1;
}

int sr__replaces_valid(const char *v) {
  char *d = sr__strdup(v), *cid, *to, *from;
  int early, ok = d && parse(d, &cid, &to, &from, &early) == 0;
  sr__free(d);
  return ok;
}

int sr__replaces_match(sr_ua *ua, osip_message_t *invite,
                       sr_session **replaced) {
  *replaced = NULL;
  osip_header_t *h = NULL, *again = NULL;
  int pos = osip_message_header_get_byname(invite, "replaces", 0, &h);
  if (pos < 0 || !h) return 0;
  if (!h->hvalue) return 400;
  /* the position argument is where the search starts */
  if (osip_message_header_get_byname(invite, "replaces", pos + 1, &again) >= 0)
    return 400; /* more than one */
  char *v = sr__strdup(h->hvalue), *cid, *to, *from;
  int early;
  if (!v) return 500;
  if (parse(v, &cid, &to, &from, &early) < 0) {
    sr__free(v);
    return 400;
  }
  /* to-tag is our local tag, from-tag the peer's. */
  sr_session *s = sr__session_find(ua, cid, to, from);
  int code = 0;
  if (!s || !s->remote_tag || strcmp(s->remote_tag, from) != 0) {
    code = 481;
  } else if (s->state >= SR_SESSION_TERMINATING) {
    code = 603;
  } else if (s->state == SR_SESSION_ESTABLISHED && early) {
    code = 486;
  } else if (s->state != SR_SESSION_ESTABLISHED && s->role == SR_ROLE_INVITATION) {
    code = 481; /* an early dialog we did not initiate (RFC 3891 §3) */
  } else {
    *replaced = s;
  }
  sr__free(v);
  return code;
}
