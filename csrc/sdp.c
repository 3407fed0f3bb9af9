/*
 * sdp.c — the default SDP, used when the application gives no body: the
 * offer in our INVITE (or in the 200 to an offerless INVITE) and the answer
 * in the 200 to an INVITE or re-INVITE. The library carries no media, so
 * every accepted stream names the discard port 9: a peer sees a valid
 * session and its media goes nowhere.
 *
 * The answer follows RFC 3264 §6: one m= line per offered one, in order.
 * Accepted: a stream offered with a port and proto RTP/AVP or RTP/AVPF,
 * answered with the offer's first codec (not comfort noise or
 * telephone-event; plus telephone-event at the codec's clock rate, when
 * offered), their a=rtpmap/a=fmtp lines, and the mirrored
 * direction (§6.1). Rejected (port 0, the first offered format): any other
 * stream. SRTP (RTP/SAVP, RTP/SAVPF, UDP/TLS/RTP/SAVP...) is rejected too:
 * answering it takes keys (a=crypto, a DTLS fingerprint) we do not have,
 * and an answer without them is not SRTP. An offer with no stream we can
 * accept (T.38 only, SRTP only) gets 488, as does one that does not read
 * as SDP; one with no m= line at all is answered with none (§6 allows it).
 *
 * A line scanner, not libosip2's SDP parser: this runs on every call. It
 * reads each line a bounded number of times and allocates only the body.
 */
#include "internal.h"
#include "text.h"

#include <string.h>

/* ---------------- output buffer ---------------- */

typedef struct {
  char *p; /* NULL once an allocation failed */
  size_t n, cap;
} obuf;

/* Out of line: the common path of put stays a compare and a copy. */
static int grow(obuf *b, size_t k) {
  size_t cap = b->cap * 2 > b->n + k ? b->cap * 2 : b->n + k;
  char *q = sr__realloc(b->p, cap);
  if (!q) {
    sr__free(b->p);
    b->p = NULL;
    return 0;
  }
  b->p = q;
  b->cap = cap;
  return 1;
}

static void put(obuf *b, const char *s, size_t k) {
  if (!b->p || (b->n + k > b->cap && !grow(b, k))) return;
  memcpy(b->p + b->n, s, k);
  b->n += k;
}

#define PUTS(b, lit) put((b), (lit), sizeof(lit) - 1)

typedef struct {
  const char *p;
  size_t n;
} span;

static void put_span(obuf *b, span s) { put(b, s.p, s.n); }

/* A line copied from the offer, ended with CRLF whatever it had. */
static void put_line(obuf *b, span s) {
  put_span(b, s);
  PUTS(b, "\r\n");
}

/* ---------------- reading the offer ---------------- */

/* Is the offer free of control characters but HTAB, LF and a CR that ends
 * a line? Checked once, so that the scans below (each media section is
 * read up to five times) can look for line ends with memchr. */
static int clean_text(const char *p, const char *end) {
  for (; p < end; p++) {
    unsigned char c = (unsigned char)*p;
    if ((c >= 0x20 && c != 0x7f) || c == '\t' || c == '\n') continue;
    if (c == '\r' && (p + 1 == end || p[1] == '\n')) continue;
    return 0;
  }
  return 1;
}

/* The next line of [*cur, end) without its CRLF or LF, in *line; 1, or 0 at
 * the end. */
static int next_line(const char **cur, const char *end, span *line) {
  const char *s = *cur;
  if (s >= end) return 0;
  const char *q = memchr(s, '\n', (size_t)(end - s));
  if (!q) q = end;
  line->p = s;
  line->n = (size_t)(q - s);
  if (line->n && s[line->n - 1] == '\r') line->n--;
  *cur = q < end ? q + 1 : q;
  return 1;
}

/* The next space-separated word of *s, consumed; empty at the end. */
static span word(span *s) {
  size_t i = 0, j;
  while (i < s->n && s->p[i] == ' ') i++;
  for (j = i; j < s->n && s->p[j] != ' '; j++) {
  }
  span w = {s->p + i, j - i};
  s->p += j;
  s->n -= j;
  return w;
}

static int span_eq(span a, span b) {
  return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

static int all_digits(span s) {
  if (!s.n) return 0;
  for (size_t i = 0; i < s.n; i++)
    if (!is_digit((unsigned char)s.p[i])) return 0;
  return 1;
}

/* An RTP payload type (0-127), or -1. */
static int payload_type(span s) {
  if (!all_digits(s) || s.n > 3) return -1;
  int v = 0;
  for (size_t i = 0; i < s.n; i++) v = v * 10 + (s.p[i] - '0');
  return v <= 127 ? v : -1;
}

/* "a=<name>:<pt> <value>" (name given with "a=" and ":"): its payload type
 * word and the value after it; 0 for any other line. */
static int attr_pt(span line, const char *name, size_t k, span *pt,
                   span *value) {
  if (line.n <= k || memcmp(line.p, name, k) != 0) return 0;
  *value = (span){line.p + k, line.n - k};
  *pt = word(value);
  return 1;
}

#define ATTR_PT(line, lit, pt, v) attr_pt((line), (lit), sizeof(lit) - 1, pt, v)

enum dir { SENDRECV, SENDONLY, RECVONLY, INACTIVE };

/* The direction a line sets (RFC 3264 §5.1), or d when it sets none. */
static enum dir direction(span line, enum dir d) {
  static const char *names[] = {"a=sendrecv", "a=sendonly", "a=recvonly",
                                "a=inactive"};
  if (line.n != 10) return d;
  for (int i = 0; i < 4; i++)
    if (memcmp(line.p, names[i], 10) == 0) return (enum dir)i;
  return d;
}

/* §6.1: what we send is what the offerer receives, and the reverse. */
static void put_answer_dir(obuf *b, enum dir offered) {
  static const char *mirror[] = {"a=sendrecv\r\n", "a=recvonly\r\n",
                                 "a=sendonly\r\n", "a=inactive\r\n"};
  put(b, mirror[offered], 12);
}

/* The clock rate of an rtpmap value "<encoding>/<rate>[/<channels>]", and
 * its encoding name in *enc. */
static span rtpmap_rate(span value, span *enc) {
  span w = word(&value);
  size_t i = 0, j;
  while (i < w.n && w.p[i] != '/') i++;
  *enc = (span){w.p, i};
  if (i < w.n) i++;
  for (j = i; j < w.n && w.p[j] != '/'; j++) {
  }
  return (span){w.p + i, j - i};
}

/* One media section of the offer: its m= line and the lines after it. */
typedef struct {
  span media, port, proto, fmt; /* fmt: the first format */
  span fmts;                    /* all formats, fmt first */
  const char *attrs, *end;      /* its other lines */
} section;

/* The first "a=<name>:<pt> ..." line of the section for payload type pt. */
static int find_attr(const section *m, const char *name, size_t k, span pt,
                     span *line) {
  const char *cur = m->attrs;
  span l, p, v;
  while (next_line(&cur, m->end, &l) > 0)
    if (attr_pt(l, name, k, &p, &v) && span_eq(p, pt)) {
      *line = l;
      return 1;
    }
  return 0;
}

#define FIND_ATTR(m, lit, pt, line) \
  find_attr((m), (lit), sizeof(lit) - 1, (pt), (line))

/* The payload type of an offered telephone-event (RFC 4733) at clock rate
 * rate, and its rtpmap line; 0 if there is none. */
static int find_dtmf(const section *m, span rate, span *pt, span *rtpmap) {
  unsigned char offered[16] = {0}; /* the m= line's payload types */
  span f = m->fmts, w;
  while ((w = word(&f)).n) {
    int v = payload_type(w);
    if (v >= 0) offered[v >> 3] |= (unsigned char)(1u << (v & 7));
  }
  const char *cur = m->attrs;
  span l, p, v, enc;
  while (next_line(&cur, m->end, &l) > 0) {
    if (!ATTR_PT(l, "a=rtpmap:", &p, &v)) continue;
    int t = payload_type(p);
    if (t < 0 || !(offered[t >> 3] & (1u << (t & 7))) || span_eq(p, m->fmt))
      continue;
    span r = rtpmap_rate(v, &enc);
    if (span_caseeq(enc.p, enc.n, "telephone-event") && span_eq(r, rate)) {
      *pt = p;
      *rtpmap = l;
      return 1;
    }
  }
  return 0;
}

/* Is format w of the section comfort noise (RFC 3389) or telephone-event
 * (RFC 4733)? Answered alone, either carries no voice. Static types other
 * than 13 (CN) are codecs, so only a dynamic type costs a look-up. */
static int helper_format(const section *m, span w) {
  int pt = payload_type(w);
  if (pt == 13) return 1;
  span l, p, v, enc;
  if (pt < 96 || !FIND_ATTR(m, "a=rtpmap:", w, &l) ||
      !ATTR_PT(l, "a=rtpmap:", &p, &v))
    return 0;
  rtpmap_rate(v, &enc);
  return span_caseeq(enc.p, enc.n, "telephone-event") ||
         span_caseeq(enc.p, enc.n, "CN");
}

/* The format to answer with: the first codec offered (any offered format
 * will do, RFC 3264 §6.1), the first format if all are helpers. */
static void choose_format(section *m) {
  span f = m->fmts, w;
  while ((w = word(&f)).n)
    if (payload_type(w) >= 0 && !helper_format(m, w)) {
      m->fmt = w;
      return;
    }
}

/* "m=<media><port><proto> <first format>", no line end: port is " 9 "
 * (accepted) or " 0 " (rejected). */
static void put_mline(obuf *b, const section *m, const char *port) {
  PUTS(b, "m=");
  put_span(b, m->media);
  put(b, port, 3);
  put_span(b, m->proto);
  PUTS(b, " ");
  put_span(b, m->fmt);
}

/* Answers an accepted RTP stream: port 9, the first format (and DTMF),
 * their rtpmap/fmtp lines, the mirrored direction. */
static void answer_rtp(obuf *b, const section *m, enum dir dir) {
  span map = {0}, fmtp = {0}, dtmf = {0}, dmap = {0}, dfmtp = {0}, l, p, v;
  /* A static payload type without rtpmap: most are 8000 Hz audio. */
  span enc, rate = {"8000", 4};
  const char *cur = m->attrs;
  while (next_line(&cur, m->end, &l) > 0) {
    dir = direction(l, dir);
    if (!map.p && ATTR_PT(l, "a=rtpmap:", &p, &v) && span_eq(p, m->fmt)) {
      map = l;
      rate = rtpmap_rate(v, &enc);
    } else if (!fmtp.p && ATTR_PT(l, "a=fmtp:", &p, &v) &&
               span_eq(p, m->fmt)) {
      fmtp = l;
    }
  }
  if (find_dtmf(m, rate, &dtmf, &dmap)) FIND_ATTR(m, "a=fmtp:", dtmf, &dfmtp);
  put_mline(b, m, " 9 ");
  if (dtmf.p) {
    PUTS(b, " ");
    put_span(b, dtmf);
  }
  PUTS(b, "\r\n");
  if (map.p) put_line(b, map);
  if (fmtp.p) put_line(b, fmtp);
  if (dmap.p) put_line(b, dmap);
  if (dfmtp.p) put_line(b, dfmtp);
  put_answer_dir(b, dir);
}

static void answer_rejected(obuf *b, const section *m) {
  put_mline(b, m, " 0 ");
  PUTS(b, "\r\n");
}

/* Reads "m=<media> <port>[/<count>] <proto> <fmt> ..."; 0 if malformed. */
static int read_mline(span line, section *m) {
  span r = {line.p + 2, line.n - 2};
  m->media = word(&r);
  m->port = word(&r);
  m->proto = word(&r);
  m->fmts = r;
  m->fmt = word(&r);
  span count = {0};
  for (size_t i = 0; i < m->port.n; i++)
    if (m->port.p[i] == '/') {
      count = (span){m->port.p + i + 1, m->port.n - i - 1};
      m->port.n = i;
      if (!all_digits(count)) return 0;
      break;
    }
  return m->media.n && all_digits(m->port) && m->proto.n && m->fmt.n;
}

static int port_zero(span port) {
  for (size_t i = 0; i < port.n; i++)
    if (port.p[i] != '0') return 0;
  return 1;
}

/* 1 when we accept the stream (see the top of the file). */
static int acceptable(const section *m) {
  return !port_zero(m->port) &&
         (span_caseeq(m->proto.p, m->proto.n, "RTP/AVP") ||
          span_caseeq(m->proto.p, m->proto.n, "RTP/AVPF")) &&
         payload_type(m->fmt) >= 0;
}

static const char unreadable[] =
    "Warning: 399 sipreferral \"Unreadable SDP offer\"";
static const char no_stream[] =
    "Warning: 302 sipreferral \"No offered stream is RTP/AVP or RTP/AVPF\"";

/* Appends the media part of the answer to offer; 0, or a Warning line. */
static const char *answer(obuf *b, const char *offer, size_t len) {
  const char *cur = offer, *end = offer + len;
  span l;
  if (!clean_text(offer, end) || next_line(&cur, end, &l) <= 0 ||
      !span_eq(l, (span){"v=0", 3}))
    return unreadable;
  enum dir session_dir = SENDRECV; /* §5.1: applies to every stream */
  section m = {0};
  int in_media = 0, live = 0, accepted = 0, r;
  for (;;) {
    r = next_line(&cur, end, &l);
    if (r > 0 && l.n == 0) continue;
    if (r > 0 && (l.n < 2 || !is_alpha((unsigned char)l.p[0]) || l.p[1] != '='))
      return unreadable;
    if (r > 0 && l.p[0] != 'm') {
      if (!in_media) session_dir = direction(l, session_dir);
      continue;
    }
    if (in_media) { /* the section before this m= line (or the end) */
      m.end = r > 0 ? l.p : end;
      live += !port_zero(m.port);
      if (acceptable(&m)) {
        choose_format(&m);
        answer_rtp(b, &m, session_dir);
        accepted++;
      } else {
        answer_rejected(b, &m);
      }
    }
    if (r == 0) break;
    if (!read_mline(l, &m)) return unreadable;
    m.attrs = cur;
    in_media = 1;
  }
  return live && !accepted ? no_stream : NULL;
}

/* ---------------- the body ---------------- */

/* Room kept before the rest for "v=0\r\no=- <id> <version>". */
#define HEAD_MAX 64

static char *put_ulong(char *p, unsigned long v) {
  char d[24];
  int k = 0;
  do d[k++] = (char)('0' + v % 10);
  while ((v /= 10));
  while (k) *p++ = d[--k];
  return p;
}

/* Checks ip (the value goes into two lines: anything but address or host
 * name characters could inject lines of its own); strips [ ]. */
static int check_ip(const char **ip, size_t *n, int *v6) {
  const char *s = *ip;
  size_t k = strlen(s);
  if (k >= 2 && s[0] == '[' && s[k - 1] == ']') {
    s++;
    k -= 2;
  }
  if (k == 0 || k > 255) return 0;
  *v6 = 0;
  for (size_t i = 0; i < k; i++) {
    char c = s[i];
    if (c == ':')
      *v6 = 1;
    else if (!is_alnum((unsigned char)c) && c != '.' && c != '-')
      return 0;
  }
  *ip = s;
  *n = k;
  return 1;
}

int sr__sdp_default(sr__sdp_origin *o, const char *ip, const char *offer,
                    size_t offer_len, const char **body, const char **warning) {
  size_t n;
  int v6;
  if (!o || !body || !ip || !check_ip(&ip, &n, &v6)) return SR_EINVAL;
  if (!offer && o->last) { /* our offer again: the same session */
    *body = o->last;
    return 0;
  }
  const char *fam = v6 ? " IN IP6 " : " IN IP4 ";
  obuf b = {sr__malloc(HEAD_MAX + 2 * n + offer_len + 96), HEAD_MAX,
            HEAD_MAX + 2 * n + offer_len + 96};
  if (!b.p) return SR_ENOMEM;
  put(&b, fam, 8);
  put(&b, ip, n);
  PUTS(&b, "\r\ns=-\r\nc=");
  put(&b, fam + 1, 7);
  put(&b, ip, n);
  PUTS(&b, "\r\nt=0 0\r\n");
  const char *why = NULL;
  if (offer)
    why = answer(&b, offer, offer_len);
  else
    PUTS(&b, "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n");
  put(&b, "", 1);
  if (!b.p) return SR_ENOMEM;
  if (why) {
    sr__free(b.p);
    if (warning) *warning = why;
    return SR_EPARSE;
  }
  const char *rest = b.p + HEAD_MAX;
  if (o->last && strcmp(o->last + o->head, rest) == 0) {
    sr__free(b.p); /* the same session: the same version (§8) */
    *body = o->last;
    return 0;
  }
  char head[HEAD_MAX], *h = head;
  memcpy(h, "v=0\r\no=- ", 9);
  h = put_ulong(h + 9, o->id);
  *h++ = ' ';
  h = put_ulong(h, o->version + 1);
  size_t k = (size_t)(h - head);
  memmove(b.p + k, rest, b.n - HEAD_MAX);
  memcpy(b.p, head, k);
  sr__free(o->last);
  o->last = b.p;
  o->head = k;
  o->version++;
  *body = o->last;
  return 0;
}

/* The SDP body of req (a part of a multipart one too), or NULL. */
static osip_body_t *sdp_body(osip_message_t *req) {
  osip_body_t *bd;
  for (int i = 0; (bd = osip_list_get(&req->bodies, i)); i++) {
    osip_content_type_t *ct = bd->content_type ? bd->content_type
                                               : req->content_type;
    if (bd->body && ct && ct->type && ct->subtype &&
        osip_strcasecmp(ct->type, "application") == 0 &&
        osip_strcasecmp(ct->subtype, "sdp") == 0)
      return bd;
  }
  return NULL;
}

int sr__session_sdp(sr_session *s, osip_message_t *req, const char **body,
                    const char **warning) {
  sr_ua *ua = s->ua;
  sr__listener *l =
      sr__transport_listener_for(ua, s->tp, s->peer.addr.ss_family);
  /* RFC 4566 §5.2 wants the sess-id unique with the address: a random one
   * per session will do (no clock read per call). */
  if (!s->sdp.id) s->sdp.id = sr__random_u32(ua) & 0x7fffffffu;
  if (!s->sdp.id) s->sdp.id = 1;
  osip_body_t *bd = req ? sdp_body(req) : NULL;
  const char *why = NULL;
  int rc = sr__sdp_default(&s->sdp, l ? l->host : "127.0.0.1",
                           bd ? bd->body : NULL, bd ? bd->length : 0, body,
                           &why);
  if (rc == SR_EPARSE)
    sr__log(ua, SR_LOG_INFO, "SDP offer refused with 488 (%s)", why);
  else if (rc < 0)
    sr__log(ua, SR_LOG_WARNING, "no SDP: %s", sr_strerror(rc));
  if (warning) *warning = why;
  return rc;
}
