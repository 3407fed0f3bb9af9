/*
 * demo.h — sipreferral-demo's pieces: the agent child process (spawn.c)
 * and the loop driver shared by the two transfers (demo.c).
 */
#ifndef SR_DEMO_H
#define SR_DEMO_H

#include <sys/types.h>

#include <sipreferral.h>

/* A sipreferral-agent process listening on 127.0.0.1 (UDP, port 0). */
typedef struct demo_agent {
  pid_t pid;
  int pidfd;  /* readable when the process has exited */
  int port;
} demo_agent;

/* Starts PATH with ARGS (NULL-terminated, without --listen/--port-file)
 * and reads the port it bound. Returns 0, or -1 with a message on stderr. */
int demo_agent_start(demo_agent *a, const char *path, const char *const *args);
/* SIGTERM, then waits (bounded) for its exit. Returns its exit status, or
 * -1 if it had to be killed. */
int demo_agent_stop(demo_agent *a, int limit_ms);

/* The agent binary next to this program (both are built into one dir). */
const char *demo_default_agent_path(void);

#endif
