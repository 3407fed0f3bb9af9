/*
 * sdp.c — the minimal SDP offer/answer used when the application gives no
 * body: one PCMU audio stream on the discard port 9, so a peer that never
 * sends media still sees a valid session description.
 */
#include "message.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *sr__sdp_default(const char *ip, unsigned long session_id) {
  if (!ip) return NULL;
  size_t n = strlen(ip);
  /* Accept "[v6]" as well as a bare literal. */
  if (n >= 2 && ip[0] == '[' && ip[n - 1] == ']') {
    ip++;
    n -= 2;
  }
  if (n == 0 || n > 255) return NULL;
  int v6 = 0;
  /* Only address (or host name) characters: the value goes into two SDP
   * lines, and anything else could inject lines of its own. */
  for (size_t i = 0; i < n; i++) {
    char c = ip[i];
    if (c == ':')
      v6 = 1;
    else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
               (c >= 'A' && c <= 'Z') || c == '.' || c == '-'))
      return NULL;
  }
  const char *fam = v6 ? "IP6" : "IP4";
  const char *fmt = "v=0\r\n"
                    "o=- %lu %lu IN %s %.*s\r\n"
                    "s=-\r\n"
                    "c=IN %s %.*s\r\n"
                    "t=0 0\r\n"
                    "m=audio 9 RTP/AVP 0\r\n"
                    "a=rtpmap:0 PCMU/8000\r\n"
                    "a=sendrecv\r\n";
  int len = snprintf(NULL, 0, fmt, session_id, session_id, fam, (int)n, ip,
                     fam, (int)n, ip);
  if (len < 0) return NULL;
  char *out = malloc((size_t)len + 1);
  if (!out) return NULL;
  snprintf(out, (size_t)len + 1, fmt, session_id, session_id, fam, (int)n, ip,
           fam, (int)n, ip);
  return out;
}
