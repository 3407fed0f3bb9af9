/*
 * main.c — sipreferral-agent: sets up the user agent from the command line,
 * runs the loop, and shuts down cleanly on SIGINT/SIGTERM, --duration or
 * --max-calls. Signals arrive through a signalfd that the library's loop
 * watches (sr_ua_watch_fd), so no handler ever runs inside the library and
 * each wake-up costs one system call.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

static int g_log_level = SR_LOG_WARNING;
/* While binding, the library's error line is kept for our one-line error
 * instead of being printed as a second line. */
static char *g_capture;
static size_t g_capture_len;

long long agent_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_line(int level, const char *who, const char *msg) {
  static const char *names[] = {"error", "warning", "info", "debug"};
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  localtime_r(&tv.tv_sec, &tm);
  fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s: %s\n", tm.tm_hour, tm.tm_min,
          tm.tm_sec, (long)(tv.tv_usec / 1000), who,
          level >= 0 && level <= 3 ? names[level] : "log", msg);
}

void agent_log_fn(int level, const char *message, void *user_data) {
  (void)user_data;
  if (g_capture && level == SR_LOG_ERROR) {
    snprintf(g_capture, g_capture_len, "%s", message);
    return;
  }
  if (level <= g_log_level) log_line(level, "sipreferral", message);
}

void agent_log(agent *ag, int level, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  (void)ag;
  if (level > g_log_level) return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  log_line(level, "agent", buf);
}

/* ---------------- listening ---------------- */

/* Splits "udp:HOST:PORT" into transport, host (brackets kept) and port. */
static int split_spec(const char *spec, sr_transport *tp, char *host,
                      size_t hn, int *port) {
  *tp = strncasecmp(spec, "tcp:", 4) == 0 ? SR_TRANSPORT_TCP
                                           : SR_TRANSPORT_UDP;
  const char *hp = spec + 4, *colon = strrchr(hp, ':');
  if (!colon || colon == hp || (size_t)(colon - hp) >= hn) return -1;
  if (hp[0] == '[' && colon[-1] != ']') return -1;
  memcpy(host, hp, (size_t)(colon - hp));
  host[colon - hp] = '\0';
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (*end || end == colon + 1 || p < 0 || p > 65535) return -1;
  *port = (int)p;
  return 0;
}

/* Binds every --listen. A port 0 listener reuses the port an earlier port
 * 0 listener of the other transport got on the same host, when free, so
 * that UDP and TCP share one port as SIP peers expect. Writes the bound
 * specs into out (for --port-file). */
static int listen_all(agent *ag, char *out, size_t outn) {
  struct { char host[80]; int port; } got[AGENT_MAX_LISTEN];
  int ngot = 0, nbound = 0;
  size_t used = 0;
  out[0] = '\0';
  for (int i = 0; i < ag->o.nlisten; i++) {
    const char *spec = ag->o.listen[i];
    sr_transport tp;
    char host[80], try_spec[128];
    int port, rc = -1, wanted0;
    if (split_spec(spec, &tp, host, sizeof host, &port) < 0) {
      fprintf(stderr, "sipreferral-agent: --listen '%s': expected "
              "udp:HOST:PORT or tcp:HOST:PORT\n", spec);
      return AGENT_EXIT_USAGE;
    }
    const char *tpn = tp == SR_TRANSPORT_TCP ? "tcp" : "udp";
    char detail[256] = "";
    g_capture = detail;
    g_capture_len = sizeof detail;
    wanted0 = port == 0;
    if (wanted0) {
      for (int j = 0; j < ngot && rc != 0; j++)
        if (strcmp(got[j].host, host) == 0) {
          snprintf(try_spec, sizeof try_spec, "%s:%s:%d", tpn, host,
                   got[j].port);
          rc = sr_ua_listen(ag->ua, try_spec);
          if (rc == 0) port = got[j].port;
        }
    }
    detail[0] = '\0';
    if (rc != 0) rc = sr_ua_listen(ag->ua, spec);
    g_capture = NULL;
    if (rc < 0) {
      if (detail[0])
        fprintf(stderr, "sipreferral-agent: %s\n", detail);
      else
        fprintf(stderr, "sipreferral-agent: cannot listen on %s: %s\n", spec,
                sr_strerror(rc));
      return rc == SR_EINVAL ? AGENT_EXIT_USAGE : AGENT_EXIT_RUNTIME;
    }
    if (port == 0) {
      int p = sr_ua_listener_port(ag->ua, nbound);
      if (p > 0) port = p;
    }
    nbound++;
    if (wanted0 && port > 0 && ngot < AGENT_MAX_LISTEN) {
      snprintf(got[ngot].host, sizeof got[ngot].host, "%s", host);
      got[ngot++].port = port;
    }
    int n = snprintf(out + used, outn - used, "%s%s:%s:%d", used ? " " : "",
                     tpn, host, port);
    if (n > 0 && (size_t)n < outn - used) used += (size_t)n;
  }
  return 0;
}

/* Writes the port line. A FIFO (or other special file) is written in
 * place, so a test can block on it; a regular file is replaced
 * atomically, so a reader never sees half a line. */
static int write_port_file(const char *path, const char *line) {
  struct stat st;
  int special = stat(path, &st) == 0 && !S_ISREG(st.st_mode);
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
  /* Non-blocking: a FIFO nobody reads fails (ENXIO) instead of hanging. */
  int fd = open(special ? path : tmp,
                O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_CLOEXEC, 0644);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) {
    if (fd >= 0) close(fd);
    return -1;
  }
  int ok = fprintf(f, "%s\n", line) > 0;
  ok = fclose(f) == 0 && ok;
  if (!special && (!ok || rename(tmp, path) != 0)) {
    unlink(tmp);
    return -1;
  }
  return ok ? 0 : -1;
}

/* ---------------- setup ---------------- */

/* Each TCP connection is a file descriptor: room for n of them besides
 * the listeners and the agent's own files, as far as the hard limit
 * allows (the library refuses connections over its limit in any case). */
static void fit_open_files(int n) {
  struct rlimit rl;
  rlim_t want = (rlim_t)n + 64;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want) return;
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || want < rl.rlim_max
                    ? want : rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

static int is_sips(const char *target) {
  return strncasecmp(target + (target[0] == '<'), "sips:", 5) == 0;
}

static int make_ua(agent *ag) {
  sr_ua_options uo;
  char uri[256], schemes[512] = "sip";
  sr_ua_options_init(&uo);
  if (ag->o.uri) {
    snprintf(uri, sizeof uri, "%s", ag->o.uri);
  } else {
    sr_transport tp;
    char host[80];
    int port;
    if (split_spec(ag->o.listen[0], &tp, host, sizeof host, &port) < 0)
      snprintf(host, sizeof host, "127.0.0.1");
    snprintf(uri, sizeof uri, "sip:agent@%s", host);
  }
  for (int i = 0; i < ag->o.nschemes; i++) {
    size_t l = strlen(schemes);
    snprintf(schemes + l, sizeof schemes - l, ",%s", ag->o.schemes[i]);
  }
  uo.uri = uri;
  uo.user_agent = "sipreferral-agent/" SR_VERSION;
  uo.username = ag->o.username;
  uo.password = ag->o.password;
  uo.outbound_proxy = ag->o.outbound_proxy;
  if (ag->o.t1_ms) uo.t1_ms = ag->o.t1_ms;
  if (ag->o.max_connections) {
    uo.max_tcp_connections = ag->o.max_connections;
    fit_open_files(ag->o.max_connections);
  }
  uo.log_fn = agent_log_fn;
  uo.log_level = ag->o.log_level;
  uo.allow_out_of_dialog_refer = ag->o.allow_ood_refer;
  uo.allowed_schemes = schemes;
  int rc = sr_ua_new(&ag->ua, &uo);
  if (rc < 0) {
    fprintf(stderr, "sipreferral-agent: cannot create the user agent (%s%s%s): "
            "%s\n", uri, ag->o.outbound_proxy ? ", outbound proxy " : "",
            ag->o.outbound_proxy ? ag->o.outbound_proxy : "", sr_strerror(rc));
    return rc == SR_EINVAL ? AGENT_EXIT_USAGE : AGENT_EXIT_RUNTIME;
  }
  return 0;
}

static void print_stats(const char *what, const sr_stats *s) {
  printf("stats %s: sessions=%d referrals=%d referrers=%d transactions=%d "
         "dialogs=%d connections=%d\n", what, s->sessions, s->referrals,
         s->referrers, s->transactions, s->dialogs, s->connections);
}

/* ---------------- the loop ---------------- */

static int min_wait(int a, long long b) {
  if (b < 0) return a;
  if (b > 1000000) b = 1000000;
  return a < 0 || b < a ? (int)b : a;
}

static int t1_ms(agent *ag) { return ag->o.t1_ms ? ag->o.t1_ms : 500; }

static void begin_shutdown(agent *ag, const char *why) {
  long long bound = 64LL * t1_ms(ag);
  if (bound > 8000) bound = 8000;
  if (bound < 1000) bound = 1000;
  agent_log(ag, SR_LOG_INFO, "shutting down (%s)", why);
  ag->shutdown = 1;
  ag->deadline = agent_now_ms() + bound;
  ag->half_deadline = ag->deadline - bound / 2;
  agent_trace_install(ag); /* before the final NOTIFYs it must track */
  agent_finish_referrals(ag);
}

/* Last step: the calls are over, but transactions still answer
 * retransmissions (a lost 200 to a BYE) and finish a NOTIFY in flight.
 * Over UDP they live on for Timer J/K (64*T1, T4) after the exchange, so
 * the wait is cut at 64*T1 or 2 s: enough for a peer's retransmissions. */
static void begin_linger(agent *ag) {
  long long bound = 64LL * t1_ms(ag);
  if (bound > 2000) bound = 2000;
  ag->shutdown = 3;
  ag->deadline = agent_now_ms() + bound;
}

/* Set by on_signal: the loop returns 0 after the current turn. */
static int g_exit_now;

/* Runs inside sr_ua_run_once when the signalfd is readable. */
static void on_signal(sr_ua *ua, int fd, void *user_data) {
  agent *ag = user_data;
  struct signalfd_siginfo si;
  (void)ua;
  while (!g_exit_now && read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (ag->shutdown == 3) {
      g_exit_now = 1;
    } else if (ag->shutdown && si.ssi_signo == SIGINT) {
      /* A second SIGINT (Ctrl-C again) cuts the shutdown short; more
       * SIGTERMs do not: process managers (and `timeout`, which also
       * signals its process group) may deliver one twice. */
      agent_log(ag, SR_LOG_WARNING, "second SIGINT: exiting now");
      g_exit_now = 1;
    } else if (!ag->shutdown) {
      begin_shutdown(ag, si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
    }
  }
}

/* The loop proper. Returns an exit code. */
static int run_loop(agent *ag) {
  long long end = ag->o.duration_s > 0
                      ? agent_now_ms() + (long long)(ag->o.duration_s * 1000)
                      : 0;
  for (;;) {
    if (g_exit_now) return 0;
    int wait = agent_sweep(ag);
    long long now = agent_now_ms();
    int calls = ag->live_calls, refs = 0;
    if (ag->shutdown) refs = agent_live_referrals(ag);
    switch (ag->shutdown) {
    case 0:
      if (end && now >= end) {
        begin_shutdown(ag, "--duration");
        continue;
      }
      if (ag->o.max_calls && ag->calls_ended >= ag->o.max_calls &&
          !calls && !agent_live_referrals(ag)) {
        agent_log(ag, SR_LOG_INFO, "--max-calls %d reached", ag->o.max_calls);
        begin_linger(ag);
        continue;
      }
      if (end) wait = min_wait(wait, end - now);
      break;
    case 1: /* answering referrals, final NOTIFYs answered */
      if ((refs == 0 && agent_unanswered_final_notifies() == 0) ||
          now >= ag->half_deadline) {
        ag->shutdown = 2;
        agent_end_calls(ag);
        continue;
      }
      wait = min_wait(wait, ag->half_deadline - now);
      break;
    case 2: /* ending calls */
      if (calls == 0 && refs == 0) {
        begin_linger(ag);
        continue;
      }
      if (now >= ag->deadline) {
        agent_log(ag, SR_LOG_WARNING,
                  "shutdown bound reached with %d calls and %d referrals "
                  "still open", calls, refs);
        return 0;
      }
      wait = min_wait(wait, ag->deadline - now);
      break;
    default: { /* lingering */
      sr_stats st;
      sr_ua_get_stats(ag->ua, &st);
      if (st.transactions == 0 || now >= ag->deadline) return 0;
      wait = min_wait(wait, ag->deadline - now);
    }
    }
    /* One wait for sockets, timers and signals: run_once shortens it to
     * the library's next timer itself. */
    int rc = sr_ua_run_once(ag->ua, wait);
    if (rc < 0) {
      agent_log(ag, SR_LOG_ERROR, "loop: %s", sr_strerror(rc));
      return AGENT_EXIT_RUNTIME;
    }
  }
}

/* Runs until the agent is done. Returns an exit code. */
static int run(agent *ag, int sigfd) {
  int rc = sr_ua_watch_fd(ag->ua, sigfd, on_signal, ag);
  if (rc < 0) {
    agent_log(ag, SR_LOG_ERROR, "watching signals: %s", sr_strerror(rc));
    return AGENT_EXIT_RUNTIME;
  }
  rc = run_loop(ag);
  sr_ua_unwatch_fd(ag->ua, sigfd);
  return rc;
}

int main(int argc, char **argv) {
  static agent ag;
  int rc = agent_parse_options(&ag.o, argc, argv);
  if (rc >= 0) return rc;
  g_log_level = ag.o.log_level;
  setvbuf(stdout, NULL, _IOLBF, 0);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  signal(SIGPIPE, SIG_IGN);
  int sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) {
    fprintf(stderr, "sipreferral-agent: signalfd: %s\n", strerror(errno));
    return AGENT_EXIT_RUNTIME;
  }

  char ports[1024];
  rc = make_ua(&ag);
  if (rc == 0) rc = listen_all(&ag, ports, sizeof ports);
  if (rc == 0 && ag.o.script) {
    char err[512];
    if (agent_script_load(&ag, ag.o.script, err, sizeof err) < 0) {
      fprintf(stderr, "sipreferral-agent: %s\n", err);
      rc = AGENT_EXIT_USAGE;
    }
  }
  if (rc == 0 && ag.o.pcap && agent_pcap_open(&ag.pcap, ag.o.pcap) < 0) {
    fprintf(stderr, "sipreferral-agent: cannot write --pcap %s: %s\n",
            ag.o.pcap, strerror(errno));
    rc = AGENT_EXIT_RUNTIME;
  }
  if (rc == 0 && ag.o.port_file && write_port_file(ag.o.port_file, ports) < 0) {
    fprintf(stderr, "sipreferral-agent: cannot write --port-file %s: %s\n",
            ag.o.port_file, strerror(errno));
    rc = AGENT_EXIT_RUNTIME;
  }
  if (rc == 0) {
    agent_install(&ag);
    agent_trace_install(&ag);
    agent_log(&ag, SR_LOG_INFO, "%s listening on %s", sr_ua_uri(ag.ua), ports);
    for (int i = 0; i < ag.o.ncalls && rc == 0; i++) {
      int r = agent_place_call(&ag, ag.o.calls[i]);
      if (r == SR_EINVAL) {
        fprintf(stderr, "sipreferral-agent: --call '%s': not a usable SIP "
                "URI\n", ag.o.calls[i]);
        rc = AGENT_EXIT_USAGE;
      } else if (r == SR_EADDR) {
        fprintf(stderr, "sipreferral-agent: --call '%s': its host is a name "
                "(give an address, or --outbound-proxy)\n", ag.o.calls[i]);
        rc = AGENT_EXIT_USAGE;
      } else if (r == SR_ETRANSPORT && is_sips(ag.o.calls[i])) {
        fprintf(stderr, "sipreferral-agent: --call '%s': sips needs TLS, "
                "which sipreferral does not have\n", ag.o.calls[i]);
        rc = AGENT_EXIT_USAGE;
      } else if (r < 0) {
        agent_log(&ag, SR_LOG_ERROR, "--call %s: %s", ag.o.calls[i],
                  sr_strerror(r));
      }
    }
  }
  if (rc == 0) {
    rc = run(&ag, sigfd);
    if (rc == 0 && ag.placed_failed) rc = AGENT_EXIT_CALL_FAILED;
  }

  agent_free_all(&ag);
  agent_script_free(&ag);
  if (ag.o.stats && ag.ua) {
    sr_stats s;
    sr_ua_get_stats(ag.ua, &s);
    print_stats("ua", &s);
  }
  sr_ua_unref(ag.ua);
  if (ag.o.stats) {
    sr_stats s;
    sr_global_stats(&s);
    print_stats("process", &s);
  }
  agent_pcap_close(ag.pcap);
  close(sigfd);
  return rc;
}
