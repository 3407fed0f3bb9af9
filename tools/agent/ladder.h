/*
 * ladder.h — one readable line per SIP message, for the agent's --ladder
 * and the demo. Works on the raw bytes the message hook sees.
 */
#ifndef SR_LADDER_H
#define SR_LADDER_H

#include <stddef.h>
#include <stdio.h>

#include <sipreferral.h>

/* The value of header @p name (or its compact form @p compact, may be NULL)
 * in the message's header block, trimmed, into out. Returns 1 if found. */
int ladder_header(const char *data, size_t len, const char *name,
                  const char *compact, char *out, size_t n);

/* The body after the blank line (pointer into data) and its length. */
const char *ladder_body(const char *data, size_t len, size_t *body_len);

/* "REFER sip:bob@h  Refer-To: <sip:carol@h>" or "202 Accepted (REFER)":
 * the start line plus what matters for transfers. */
void ladder_summary(const char *data, size_t len, char *out, size_t n);

/* "12:00:01.123  FROM -> TO  UDP  summary\n" */
void ladder_print(FILE *f, const char *from, const char *to, sr_transport tp,
                  const char *data, size_t len);

#endif
