/*
 * script.c — --script FILE.lua, the Lua policy. It needs the Lua module
 * (lua/sipreferral.lua over the SWIG core) to hand the script its objects;
 * until that module exists the option is refused with a clear message.
 */
#include <stdio.h>

#include "agent.h"

int agent_script_load(agent *ag, const char *path, char *err, size_t errlen) {
  (void)ag;
  snprintf(err, errlen,
           "--script %s: Lua policy scripts are not available yet (they need "
           "the Lua module)", path);
  return -1;
}

int agent_script_on_invite(agent *ag, sr_session *inv) {
  (void)ag;
  (void)inv;
  return 0;
}

int agent_script_on_refer(agent *ag, sr_referral *r) {
  (void)ag;
  (void)r;
  return 0;
}

void agent_script_free(agent *ag) { (void)ag; }
