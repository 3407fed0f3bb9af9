/*
 * trace.c — the agent's message hook: --ladder lines on stdout and --pcap
 * records. It only observes; it never drops a message.
 */
#include "agent.h"
#include "ladder.h"

static int hook(int outgoing, sr_transport tp, const char *local,
                const char *remote, const char *data, size_t len, void *ud) {
  agent *ag = ud;
  if (ag->o.ladder)
    ladder_print(stdout, outgoing ? local : remote, outgoing ? remote : local,
                 tp, data, len);
  if (ag->pcap) agent_pcap_write(ag->pcap, outgoing, tp, local, remote, data, len);
  return 0;
}

void agent_trace_install(agent *ag) {
  if (ag->o.ladder || ag->pcap) sr_ua_set_message_hook(ag->ua, hook, ag);
}
