/*
 * message.h — private: the read-only views (URI, name-addr, request) and
 * small text helpers shared by the layers. Views own copies of their text,
 * so they stay valid for as long as the object that holds them.
 */
#ifndef SR_MESSAGE_H
#define SR_MESSAGE_H

#include <stddef.h>
#include "sipreferral.h"
#include "alloc.h"

/* One "name[=value]" item: URI parameter, URI header, header parameter. */
typedef struct sr__pair {
  char *name;
  char *value; /* NULL for a flag parameter */
} sr__pair;

struct sr_uri {
  char *text;   /* as received, trimmed */
  char *scheme; /* lower-cased */
  char *user;   /* NULL if none; %-escapes kept as received */
  char *host;   /* without IPv6 brackets; NULL for non-SIP schemes */
  int port;     /* 0 if none */
  int nparams;
  sr__pair *params;
  int nheaders;
  sr__pair *headers; /* values %-unescaped */
};

struct sr_name_addr {
  char *text;    /* the header value as received, trimmed */
  char *display; /* unquoted, NULL if none */
  struct sr_uri uri;
  int nparams;
  sr__pair *params; /* header parameters after '>' (or after addr-spec) */
};

/* One header field value in a request view. */
typedef struct sr__hdr {
  char *name;  /* full name, lower-cased ("refer-to" for "r") */
  char *value; /* trimmed, unfolded; in name's block, after its NUL */
} sr__hdr;

struct sr_request {
  char *text; /* the message as received, NUL-terminated copy */
  size_t len;
  char *method;
  char *ruri;
  int nhdrs;
  sr__hdr *hdrs; /* in order; list headers split at top-level commas */
  const char *body; /* points into text */
  size_t body_len;
};

/* Parses a URI ("sip:", "sips:", or any "scheme:..."). Returns 0 or
 * SR_EPARSE (malformed, bad %-escape in a header) / SR_ENOMEM. On failure
 * *u is left cleared. */
int sr__uri_parse(struct sr_uri *u, const char *text);
void sr__uri_clear(struct sr_uri *u);

/* Parses a name-addr or addr-spec header value (From/To/Refer-To grammar). */
int sr__name_addr_parse(struct sr_name_addr *na, const char *text);
void sr__name_addr_clear(struct sr_name_addr *na);

/* Builds a request view from raw message bytes. 0, SR_EPARSE, SR_ENOMEM. */
int sr__request_init(struct sr_request *req, const char *data, size_t len);
void sr__request_clear(struct sr_request *req);

/* Expands a compact header name ("r" -> "refer-to") and lower-cases it into
 * @p out (size @p n). */
void sr__header_canonical(const char *name, char *out, size_t n);

/* %-unescapes @p in into a new string; NULL on a bad escape (%zz, "%4")
 * or an escaped NUL. */
char *sr__unescape(const char *in);
/* %-escapes what may not stand in a URI header value (RFC 3261 hnv-unreserved
 * kept: ";", "@", "=" are escaped too, as RFC 3891 examples do). */
char *sr__escape_hvalue(const char *in);

/* Parses a message/sipfrag body's status line "SIP/2.0 180 Ringing".
 * 0 with *code and *reason (malloc'd, may be "") or SR_EPARSE. */
int sr__sipfrag_parse(const char *body, size_t len, int *code, char **reason);

/* Splits "Name: value" lines (CRLF or LF separated) for extra headers;
 * calls @p fn for each. SR_EINVAL if a line has no name, no colon, or a
 * bare CR; nothing is called then. */
int sr__headers_foreach(const char *lines,
                        int (*fn)(const char *name, const char *value,
                                  void *ctx),
                        void *ctx);

/* Headers the core writes itself, so an application's extra_headers may
 * not repeat them (two Content-Lengths or CSeqs break the message). */
enum {
  SR__H_VIA = 1 << 0, SR__H_FROM = 1 << 1, SR__H_TO = 1 << 2,
  SR__H_CALL_ID = 1 << 3, SR__H_CSEQ = 1 << 4, SR__H_CONTENT_LENGTH = 1 << 5,
  SR__H_CONTENT_TYPE = 1 << 6, SR__H_CONTACT = 1 << 7,
  SR__H_MAX_FORWARDS = 1 << 8, SR__H_USER_AGENT = 1 << 9,
  SR__H_REFER_TO = 1 << 10, SR__H_REFERRED_BY = 1 << 11,
  SR__H_REFER_SUB = 1 << 12, SR__H_REPLACES = 1 << 13
};
/* Every response: copied from the request, or written with the body. */
#define SR__HDRS_RESPONSE                                                   \
  (SR__H_VIA | SR__H_FROM | SR__H_TO | SR__H_CALL_ID | SR__H_CSEQ |         \
   SR__H_CONTENT_LENGTH | SR__H_CONTENT_TYPE)
/* Every request the core sends (INVITE, REFER). */
#define SR__HDRS_REQUEST                                                    \
  (SR__HDRS_RESPONSE | SR__H_CONTACT | SR__H_MAX_FORWARDS | SR__H_USER_AGENT)

/* The SR__H_ bit of header @p name (full or compact form, any case), or 0
 * for a header the core leaves to the application. */
unsigned sr__header_bit(const char *name);

/* The standard reason phrase of a status code ("Accepted"), or "Unknown". */
const char *sr__reason_phrase(int code);

/* The o= line of a session's default SDP (RFC 3264 §8, RFC 4566 §5.2): one
 * sess-id for the whole session, the version +1 each time the body changes.
 * Zeroed at first; set id before the first use. */
typedef struct sr__sdp_origin {
  unsigned long id;      /* sess-id */
  unsigned long version; /* of last */
  char *last;            /* the body last made (malloc'd), or NULL */
  size_t head;           /* length of last's "v=0...o=- id version" */
} sr__sdp_origin;

/* The default SDP for @p ip (IPv4/IPv6 literal or host name, [v6] too):
 * with an offer (offer_len bytes, not NULL) the RFC 3264 answer to it;
 * without, our offer: the last body again if there is one (an offerless
 * re-INVITE), else one PCMU stream. *body is borrowed from o->last.
 * Returns 0, SR_EINVAL (ip), SR_ENOMEM, or SR_EPARSE: the offer cannot be
 * answered (unreadable, or no stream we can accept) and *warning, if not
 * NULL, is a Warning header line for the 488; o is unchanged then. */
int sr__sdp_default(sr__sdp_origin *o, const char *ip, const char *offer,
                    size_t offer_len, const char **body, const char **warning);

/* Digest (RFC 2617/7616 MD5, qop=auth or none) for a challenge header value
 * ("Digest realm=..., nonce=..."). Writes a malloc'd Authorization /
 * Proxy-Authorization value to *out. 0, SR_EPARSE (challenge), SR_EINVAL
 * (not Digest/MD5), SR_ENOMEM. @p cnonce may be NULL (a random one). */
int sr__digest_response(const char *challenge, const char *method,
                        const char *uri, const char *username,
                        const char *password, unsigned nc, const char *cnonce,
                        char **out);

#endif
