/*
 * trace.c — the agent's message hook: --ladder lines on stdout, --pcap
 * records, and, during a shutdown, the final NOTIFYs still waiting for
 * their answer. The library calls a referral terminated once its final
 * NOTIFY is sent; the agent waits for the answer before its BYE, so the
 * BYE cannot overtake the NOTIFY. The hook only observes, never drops.
 *
 * The hook costs the library a formatting pass per message, so it is set
 * only when something reads it: from the start for --ladder or --pcap,
 * else when the shutdown begins. Tracking never covered NOTIFYs sent
 * before the shutdown: one still unanswered then is not waited for.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "agent.h"
#include "ladder.h"

#define MAX_WAITING 64

/* "Call-ID CSeq-number" of final NOTIFYs sent and not yet answered. */
static char waiting[MAX_WAITING][160];
static int nwaiting;

static int notify_key(const char *data, size_t len, char *key, size_t n) {
  char cid[128], cseq[64];
  if (!ladder_header(data, len, "Call-ID", "i", cid, sizeof cid) ||
      !ladder_header(data, len, "CSeq", NULL, cseq, sizeof cseq))
    return 0;
  const char *sp = strchr(cseq, ' ');
  if (!sp || strcasecmp(sp + 1, "NOTIFY") != 0) return 0;
  snprintf(key, n, "%s %.*s", cid, (int)(sp - cseq), cseq);
  return 1;
}

static void track_final_notify(int outgoing, const char *data, size_t len) {
  char key[160], state[64];
  if (!notify_key(data, len, key, sizeof key)) return;
  int i;
  for (i = 0; i < nwaiting && strcmp(waiting[i], key) != 0; i++) {
  }
  if (outgoing && strncmp(data, "NOTIFY ", 7) == 0) {
    if (i == nwaiting && nwaiting < MAX_WAITING &&
        ladder_header(data, len, "Subscription-State", NULL, state,
                      sizeof state) &&
        strncasecmp(state, "terminated", 10) == 0)
      snprintf(waiting[nwaiting++], sizeof waiting[0], "%s", key);
  } else if (!outgoing && strncmp(data, "SIP/2.0 ", 8) == 0 && len > 9 &&
             data[8] >= '2' && i < nwaiting) {
    memmove(waiting[i], waiting[i + 1],
            (size_t)(nwaiting - i - 1) * sizeof waiting[0]);
    nwaiting--;
  }
}

int agent_unanswered_final_notifies(void) { return nwaiting; }

static int hook(int outgoing, sr_transport tp, const char *local,
                const char *remote, const char *data, size_t len, void *ud) {
  agent *ag = ud;
  if (ag->o.ladder)
    ladder_print(stdout, outgoing ? local : remote, outgoing ? remote : local,
                 tp, data, len);
  if (ag->pcap)
    agent_pcap_write(ag->pcap, outgoing, tp, local, remote, data, len);
  if (ag->shutdown) track_final_notify(outgoing, data, len);
  return 0;
}

/* Called at start-up and again by begin_shutdown (ag->shutdown set). */
void agent_trace_install(agent *ag) {
  if (ag->o.ladder || ag->pcap || ag->shutdown)
    sr_ua_set_message_hook(ag->ua, hook, ag);
}
