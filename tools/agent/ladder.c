/*
 * ladder.c — summaries of raw SIP messages for a ladder diagram. The
 * library hands the message hook bytes, not parsed messages, so this reads
 * the start line and a few headers itself; anything odd is shown as is.
 */
#include "ladder.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

/* End of the header block (the blank line), or len when there is none. */
static size_t header_end(const char *d, size_t len) {
  for (size_t i = 0; i + 1 < len; i++) {
    if (d[i] == '\n' && d[i + 1] == '\n') return i + 1;
    if (i + 3 < len && memcmp(d + i, "\r\n\r\n", 4) == 0) return i + 2;
  }
  return len;
}

static void copy_trimmed(const char *s, size_t n, char *out, size_t cap) {
  while (n && (*s == ' ' || *s == '\t')) s++, n--;
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
  if (cap == 0) return;
  if (n >= cap) n = cap - 1;
  memcpy(out, s, n);
  out[n] = '\0';
}

int ladder_header(const char *data, size_t len, const char *name,
                  const char *compact, char *out, size_t n) {
  size_t end = header_end(data, len);
  const char *p = memchr(data, '\n', end);
  while (p && (size_t)(p - data) + 1 < end) {
    const char *line = p + 1;
    const char *eol = memchr(line, '\n', end - (size_t)(line - data));
    size_t ll = eol ? (size_t)(eol - line) : end - (size_t)(line - data);
    const char *colon = memchr(line, ':', ll);
    if (colon) {
      size_t nl = (size_t)(colon - line);
      while (nl && (line[nl - 1] == ' ' || line[nl - 1] == '\t')) nl--;
      if ((nl == strlen(name) && strncasecmp(line, name, nl) == 0) ||
          (compact && nl == strlen(compact) &&
           strncasecmp(line, compact, nl) == 0)) {
        copy_trimmed(colon + 1, ll - (size_t)(colon - line) - 1, out, n);
        return 1;
      }
    }
    p = eol;
  }
  return 0;
}

const char *ladder_body(const char *data, size_t len, size_t *body_len) {
  size_t end = header_end(data, len);
  if (end < len && data[end] == '\r') end++;
  if (end < len && data[end] == '\n') end++;
  if (end > len) end = len;
  *body_len = len - end;
  return data + end;
}

/* Appends "  Name: value" when the header is present. */
static void add_header(char *out, size_t n, const char *data, size_t len,
                       const char *name, const char *compact) {
  char v[256];
  size_t used = strlen(out);
  if (used + 1 >= n || !ladder_header(data, len, name, compact, v, sizeof v))
    return;
  snprintf(out + used, n - used, "  %s: %s", name, v);
}

void ladder_summary(const char *data, size_t len, char *out, size_t n) {
  if (n == 0) return;
  out[0] = '\0';
  const char *eol = memchr(data, '\n', len);
  size_t sl = eol ? (size_t)(eol - data) : len;
  char start[256];
  copy_trimmed(data, sl, start, sizeof start);
  for (char *c = start; *c; c++)
    if (!isprint((unsigned char)*c)) *c = '?';
  int response = strncmp(start, "SIP/2.0 ", 8) == 0;
  char cseq[64] = "";
  ladder_header(data, len, "CSeq", NULL, cseq, sizeof cseq);
  const char *method = strchr(cseq, ' ');
  method = method ? method + 1 : cseq;
  if (response) {
    snprintf(out, n, "%s (%s)", start + 8, method);
    if (strcasecmp(method, "REFER") == 0)
      add_header(out, n, data, len, "Refer-Sub", NULL);
    return;
  }
  /* "INVITE sip:x SIP/2.0" -> "INVITE sip:x" */
  char *ver = strstr(start, " SIP/2.0");
  if (ver) *ver = '\0';
  snprintf(out, n, "%s", start);
  if (strncasecmp(start, "REFER ", 6) == 0) {
    add_header(out, n, data, len, "Refer-To", "r");
    add_header(out, n, data, len, "Refer-Sub", NULL);
  } else if (strncasecmp(start, "INVITE ", 7) == 0) {
    add_header(out, n, data, len, "Referred-By", "b");
    add_header(out, n, data, len, "Replaces", NULL);
  } else if (strncasecmp(start, "NOTIFY ", 7) == 0) {
    size_t bl;
    const char *b = ladder_body(data, len, &bl);
    const char *bend = memchr(b, '\n', bl);
    char frag[128];
    copy_trimmed(b, bend ? (size_t)(bend - b) : bl, frag, sizeof frag);
    size_t used = strlen(out);
    if (frag[0] && used + 1 < n) snprintf(out + used, n - used, "  [%s]", frag);
    add_header(out, n, data, len, "Subscription-State", NULL);
  }
}

void ladder_print(FILE *f, const char *from, const char *to, sr_transport tp,
                  const char *data, size_t len) {
  struct timeval tv;
  struct tm tm;
  char sum[512];
  gettimeofday(&tv, NULL);
  localtime_r(&tv.tv_sec, &tm);
  ladder_summary(data, len, sum, sizeof sum);
  fprintf(f, "%02d:%02d:%02d.%03ld  %s -> %s  %s  %s\n", tm.tm_hour,
          tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000), from, to,
          tp == SR_TRANSPORT_TCP ? "TCP" : "UDP", sum);
  fflush(f);
}
