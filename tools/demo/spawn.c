/*
 * spawn.c — runs sipreferral-agent as a child process. Its bound port
 * comes back through --port-file on a pipe (no port is guessed), and its
 * exit is awaited through a pidfd, so nothing here sleeps.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "demo.h"

const char *demo_default_agent_path(void) {
  static char path[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
  if (n <= 0) return "sipreferral-agent";
  path[n] = '\0';
  char *slash = strrchr(path, '/');
  strcpy(slash ? slash + 1 : path, "sipreferral-agent");
  return path;
}

/* Reads one line from fd within limit_ms. */
static int read_line(int fd, char *buf, size_t n, int limit_ms) {
  size_t used = 0;
  while (used + 1 < n) {
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, limit_ms);
    if (r <= 0) return -1;
    ssize_t got = read(fd, buf + used, n - 1 - used);
    if (got <= 0) return -1;
    used += (size_t)got;
    buf[used] = '\0';
    if (strchr(buf, '\n')) return 0;
  }
  return -1;
}

int demo_agent_start(demo_agent *a, const char *path, const char *const *args) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    perror("sipreferral-demo: pipe");
    return -1;
  }
  const char *argv[32];
  int n = 0;
  argv[n++] = path;
  argv[n++] = "--listen";
  argv[n++] = "udp:127.0.0.1:0";
  argv[n++] = "--port-file";
  argv[n++] = "/dev/fd/3";
  for (int i = 0; args[i] && n < 31; i++) argv[n++] = args[i];
  argv[n] = NULL;
  pid_t pid = fork();
  if (pid < 0) {
    perror("sipreferral-demo: fork");
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    /* The agent writes its ports to fd 3 (kept open across exec). */
    if (fds[1] == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(fds[1], 3) < 0)
      _exit(127);
    execv(path, (char *const *)argv);
    fprintf(stderr, "sipreferral-demo: cannot run %s: %s\n", path,
            strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  a->pid = pid;
  a->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  char line[256];
  int rc = read_line(fds[0], line, sizeof line, 10000);
  close(fds[0]);
  const char *colon = rc == 0 ? strrchr(line, ':') : NULL;
  a->port = colon ? atoi(colon + 1) : 0;
  if (a->port <= 0) {
    fprintf(stderr, "sipreferral-demo: %s did not start\n", path);
    demo_agent_stop(a, 2000);
    return -1;
  }
  return 0;
}

int demo_agent_stop(demo_agent *a, int limit_ms) {
  int status = 0, killed = 0;
  if (a->pid <= 0) return -1;
  kill(a->pid, SIGTERM);
  if (a->pidfd >= 0) {
    struct pollfd p = {a->pidfd, POLLIN, 0};
    if (poll(&p, 1, limit_ms) <= 0) {
      kill(a->pid, SIGKILL);
      killed = 1;
    }
  }
  /* Without a pidfd (old kernels) this simply blocks until the exit. */
  if (waitpid(a->pid, &status, 0) < 0) status = -1;
  if (a->pidfd >= 0) close(a->pidfd);
  a->pid = 0;
  a->pidfd = -1;
  if (killed || status < 0 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}
