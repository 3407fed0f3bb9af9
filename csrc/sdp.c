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
  /* Concatenated: snprintf would cost more than the rest of this. */
  const char *fam = v6 ? " IN IP6 " : " IN IP4 ";
  char id[24];
  size_t idn = 0;
  do id[sizeof id - 1 - idn++] = (char)('0' + session_id % 10);
  while ((session_id /= 10) && idn < sizeof id);
  const char *idp = id + sizeof id - idn;
  static const char head[] = "v=0\r\no=- ", mid[] = "\r\ns=-\r\nc=",
                    tail[] = "\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
                             "a=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";
  size_t len = (sizeof head - 1) + 2 * idn + 1 + 8 + n + (sizeof mid - 1) +
               7 + n + (sizeof tail - 1);
  char *out = sr__malloc(len + 1), *p = out;
#define PUT(s, k) (memcpy(p, (s), (k)), p += (k))
  if (!out) return NULL;
  PUT(head, sizeof head - 1);
  PUT(idp, idn);
  PUT(" ", 1);
  PUT(idp, idn);
  PUT(fam, 8);
  PUT(ip, n);
  PUT(mid, sizeof mid - 1);
  PUT(fam + 1, 7);
  PUT(ip, n);
  PUT(tail, sizeof tail - 1);
#undef PUT
  *p = 0;
  return out;
}
