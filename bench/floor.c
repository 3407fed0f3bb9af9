/*
 * floor.c — bench_floor: the least work any libosip2-based user agent does
 * for one transfer, to set the agent's cost against.
 *
 * Input: a pcap of one transfer as the agent saw it (its --pcap, classic
 * pcap, LINKTYPE_RAW IPv4/IPv6 + UDP). The agent's port is the one found in
 * every packet; packets to it were received, packets from it were sent.
 *
 * Per transfer, in a loop:
 *   parse      every message (osip_message_parse), then free it;
 *   serialise  every sent message (osip_message_to_str after a forced
 *              rebuild: libosip2 otherwise hands back the parsed text).
 * With --io, also the socket calls over loopback UDP: sendto of each sent
 * message and recvfrom of each received one, timed one call at a time.
 * With --pool, libosip2 allocates from the library's free lists
 * (csrc/pool.c), as it does inside the agent.
 * With --paced RATE, the same work at RATE transfers a second, woken by
 * datagrams from a peer process as the agent is (see below).
 *
 * Output: one JSON object on stdout. CPU time is the thread's own
 * (CLOCK_THREAD_CPUTIME_ID), as the agent's is its own user+sys time;
 * with --paced, the floor process's user+sys (getrusage), its peer's
 * not counted.
 *
 * --count N runs exactly N transfers (parse and serialise) and nothing
 * else, for counting instructions under callgrind: the difference between
 * two counts divided by the difference in N is the floor in instructions.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <osipparser2/osip_parser.h>

#include "internal.h" /* sr__pool_install */

#define MAX_MSGS 256

typedef struct msg {
  char *data;
  size_t len;
  int sent; /* 1: the agent sent it */
  unsigned sport, dport;
} msg;

static msg g_msgs[MAX_MSGS];
static int g_n;

static uint32_t rd32(const unsigned char *p, int swap) {
  uint32_t v;
  memcpy(&v, p, 4);
  return swap ? __builtin_bswap32(v) : v;
}

/* Reads the UDP payloads of a LINKTYPE_RAW (or Ethernet) pcap. */
static int load_pcap(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "bench_floor: %s: %s\n", path, strerror(errno));
    return -1;
  }
  unsigned char gh[24], rh[16];
  if (fread(gh, 1, 24, f) != 24) goto bad;
  uint32_t magic;
  memcpy(&magic, gh, 4);
  int swap;
  if (magic == 0xa1b2c3d4 || magic == 0xa1b23c4d) swap = 0;
  else if (magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1) swap = 1;
  else goto bad;
  uint32_t link = rd32(gh + 20, swap);
  size_t l2 = link == 1 ? 14 : link == 101 || link == 228 ? 0 : (size_t)-1;
  if (l2 == (size_t)-1) {
    fprintf(stderr, "bench_floor: %s: link type %u not supported\n", path,
            link);
    fclose(f);
    return -1;
  }
  while (fread(rh, 1, 16, f) == 16) {
    uint32_t caplen = rd32(rh + 8, swap);
    if (caplen > 1 << 20) goto bad;
    unsigned char *pkt = malloc(caplen ? caplen : 1);
    if (!pkt || fread(pkt, 1, caplen, f) != caplen) {
      free(pkt);
      goto bad;
    }
    const unsigned char *ip = pkt + l2;
    size_t iplen = caplen > l2 ? caplen - l2 : 0, hl = 0;
    int proto = -1;
    if (iplen >= 20 && (ip[0] >> 4) == 4) {
      hl = (size_t)(ip[0] & 15) * 4;
      proto = ip[9];
    } else if (iplen >= 40 && (ip[0] >> 4) == 6) {
      hl = 40;
      proto = ip[6];
    }
    if (proto == 17 && iplen >= hl + 8 && g_n < MAX_MSGS) {
      const unsigned char *udp = ip + hl;
      msg *m = &g_msgs[g_n];
      m->sport = (unsigned)(udp[0] << 8 | udp[1]);
      m->dport = (unsigned)(udp[2] << 8 | udp[3]);
      m->len = iplen - hl - 8;
      m->data = malloc(m->len + 1);
      if (!m->data) {
        free(pkt);
        goto bad;
      }
      memcpy(m->data, udp + 8, m->len);
      m->data[m->len] = '\0';
      g_n++;
    }
    free(pkt);
  }
  fclose(f);
  return 0;
bad:
  fprintf(stderr, "bench_floor: %s: not a readable pcap file\n", path);
  fclose(f);
  return -1;
}

/* The agent's port is the one every packet has at one end. */
static int mark_directions(void) {
  unsigned cand[2] = {g_msgs[0].sport, g_msgs[0].dport};
  for (int c = 0; c < 2; c++) {
    int all = 1;
    for (int i = 0; i < g_n && all; i++)
      all = g_msgs[i].sport == cand[c] || g_msgs[i].dport == cand[c];
    if (!all) continue;
    for (int i = 0; i < g_n; i++) g_msgs[i].sent = g_msgs[i].sport == cand[c];
    return (int)cand[c];
  }
  return -1;
}

static int64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static volatile size_t g_sink; /* keeps the work from being optimised out */

/* What is done with a serialised message before it is freed: the paced
 * run sends it; the loop only counts its bytes. */
typedef int (*use_fn)(const char *out, size_t len, void *arg);

/* One message's libosip2 work: parse it; with ser and if the agent sent
 * it, also serialise it and hand the text to use (if any). The text is
 * freed before the message, as the floor always did: in the other order
 * glibc's malloc makes the serialise part half as slow again. */
static int one_message(const msg *m, int ser, use_fn use, void *arg) {
  osip_message_t *sip;
  if (osip_message_init(&sip) != 0) return -1;
  int rc = osip_message_parse(sip, m->data, m->len);
  if (rc == 0 && ser && m->sent) {
    char *out;
    size_t outlen;
    osip_message_force_update(sip);
    rc = osip_message_to_str(sip, &out, &outlen);
    if (rc == 0) {
      g_sink += outlen;
      if (use) rc = use(out, outlen, arg);
      osip_free(out);
    }
  }
  osip_message_free(sip);
  return rc == 0 ? 0 : -1;
}

/* One transfer's libosip2 work: parse every message; with ser, also
 * serialise the sent ones. Timed in bulk by the caller. */
static int one_transfer(int ser) {
  for (int i = 0; i < g_n; i++)
    if (one_message(&g_msgs[i], ser, NULL, NULL) < 0) return -1;
  return 0;
}

/* Runs one_transfer(ser) for about budget ns; returns ns per transfer. */
static double per_transfer_ns(int ser, int64_t budget, long *iters) {
  long n = 0;
  int64_t start = cpu_ns(), now;
  do {
    for (int k = 0; k < 100; k++) one_transfer(ser);
    n += 100;
  } while ((now = cpu_ns()) - start < budget);
  *iters = n;
  return (double)(now - start) / n;
}

/* What one cpu_ns() call costs (it is a system call), to take out of the
 * per-call timings of the socket loop. */
static double timer_cost_ns(void) {
  int64_t t0 = cpu_ns();
  for (int i = 0; i < 100000; i++) cpu_ns();
  return (double)(cpu_ns() - t0) / 100001;
}

/* One transfer's socket calls: sendto for sent messages, recvfrom for
 * received ones (their sendto is not counted). */
static int one_transfer_io(int tx, int rx, int64_t *io_ns, int *ncalls) {
  static char buf[65536];
  for (int i = 0; i < g_n; i++) {
    msg *m = &g_msgs[i];
    int64_t t0 = cpu_ns();
    if (send(tx, m->data, m->len, 0) != (ssize_t)m->len) return -1;
    int64_t t1 = cpu_ns();
    ssize_t n = recv(rx, buf, sizeof buf, 0);
    int64_t t2 = cpu_ns();
    if (n != (ssize_t)m->len) return -1;
    *io_ns += m->sent ? t1 - t0 : t2 - t1;
    ++*ncalls;
  }
  return 0;
}

static int udp_pair(int *tx, int *rx) {
  struct sockaddr_in a = {.sin_family = AF_INET};
  socklen_t al = sizeof a;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  *rx = socket(AF_INET, SOCK_DGRAM, 0);
  *tx = socket(AF_INET, SOCK_DGRAM, 0);
  if (*rx < 0 || *tx < 0 || bind(*rx, (struct sockaddr *)&a, sizeof a) ||
      getsockname(*rx, (struct sockaddr *)&a, &al) ||
      connect(*tx, (struct sockaddr *)&a, sizeof a))
    return -1;
  return 0;
}

/* ---------------- --paced: the floor, woken as the agent is ----------------
 *
 * The loop above runs hot: every cache warm, no system call, no sleep. At
 * a moderate rate the agent is woken for a few datagrams at a time, its
 * caches cooled by the peers in between, and pays the kernel for each
 * datagram and each wake-up. --paced RATE runs the floor's same libosip2
 * work under those conditions: a peer process replays the capture's
 * received messages over loopback UDP, RATE transfers a second, each
 * group of them once the floor's answers to the previous one have come
 * back (the order the capture shows); the floor, woken by epoll, parses
 * each datagram, then parses, serialises and sends the messages the agent
 * sent next. Each datagram ends with a 6-byte tag (transfer, message) that
 * is not parsed. The figure is the floor process's own CPU time. */

enum { TAG = 6 };

static void tag_put(unsigned char *t, uint32_t transfer, unsigned idx) {
  memcpy(t, &transfer, 4);
  t[4] = (unsigned char)(idx >> 8);
  t[5] = (unsigned char)idx;
}

static void tag_get(const char *end, uint32_t *transfer, unsigned *idx) {
  const unsigned char *t = (const unsigned char *)end - TAG;
  memcpy(transfer, t, 4);
  *idx = (unsigned)(t[4] << 8 | t[5]);
}

static int send_tagged(int fd, const struct sockaddr_in *to, const char *data,
                       size_t len, uint32_t transfer, unsigned idx) {
  unsigned char t[TAG];
  tag_put(t, transfer, idx);
  struct iovec iov[2] = {{(void *)data, len}, {t, TAG}};
  struct msghdr mh = {.msg_name = (void *)to, .msg_namelen = sizeof *to,
                      .msg_iov = iov, .msg_iovlen = 2};
  return sendmsg(fd, &mh, 0) == (ssize_t)(len + TAG) ? 0 : -1;
}

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sends transfer k's received messages from *pos on, up to the next one
 * the agent sent. */
static void send_group(int fd, const struct sockaddr_in *to, uint32_t k,
                       unsigned short *pos) {
  for (; *pos < g_n && !g_msgs[*pos].sent; ++*pos)
    send_tagged(fd, to, g_msgs[*pos].data, g_msgs[*pos].len, k, *pos);
}

/* The peers: starts a transfer every 1/rate s with its first group, and
 * sends the next group when all the messages the agent sent before it
 * have come back. Ends with a 4-byte datagram: how many transfers
 * completed. */
static int paced_peer(int fd, const struct sockaddr_in *floor_addr,
                      double rate, uint32_t transfers) {
  unsigned short *pos = calloc(transfers, sizeof *pos);
  if (!pos) return 1;
  uint32_t started = 0, done = 0;
  int64_t t0 = mono_ns(), limit = t0 + (int64_t)((transfers / rate + 30) * 1e9);
  static char buf[65536];
  while (done < transfers && mono_ns() < limit) {
    int64_t now = mono_ns();
    while (started < transfers &&
           now >= t0 + (int64_t)(started * 1e9 / rate)) {
      send_group(fd, floor_addr, started, &pos[started]);
      started++;
    }
    int64_t next = started < transfers
                       ? t0 + (int64_t)(started * 1e9 / rate) - now : 100000000;
    if (next < 0) next = 0;
    struct timespec to = {next / 1000000000, next % 1000000000};
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (ppoll(&p, 1, &to, NULL) <= 0) continue;
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) >= TAG) {
      uint32_t k;
      unsigned idx;
      tag_get(buf + n, &k, &idx);
      if (k >= started || idx != pos[k]) continue; /* not awaited */
      pos[k]++;
      send_group(fd, floor_addr, k, &pos[k]);
      if (pos[k] == g_n) done++;
    }
  }
  free(pos);
  send(fd, &done, sizeof done, 0);
  return 0;
}

static double tv_us(struct timeval a, struct timeval b) {
  return (double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_usec - a.tv_usec);
}

typedef struct answer {
  int fd;
  const struct sockaddr_in *to;
  uint32_t transfer;
  unsigned idx;
} answer;

static int send_answer(const char *out, size_t len, void *arg) {
  answer *a = arg;
  return send_tagged(a->fd, a->to, out, len, a->transfer, a->idx);
}

/* The floor's side: woken by epoll, reads until the socket is empty, as
 * the agent does. Prints the JSON result. */
static int paced_floor(double rate, uint32_t transfers) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  int peer = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in fa = {.sin_family = AF_INET}, pa = fa;
  socklen_t al = sizeof fa;
  fa.sin_addr.s_addr = pa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int big = 4 << 20;
  if (fd < 0 || peer < 0 || bind(fd, (struct sockaddr *)&fa, sizeof fa) ||
      getsockname(fd, (struct sockaddr *)&fa, &al) ||
      bind(peer, (struct sockaddr *)&pa, sizeof pa) ||
      getsockname(peer, (struct sockaddr *)&pa, &al) ||
      connect(peer, (struct sockaddr *)&fa, sizeof fa)) {
    fprintf(stderr, "bench_floor: loopback UDP: %s\n", strerror(errno));
    return 1;
  }
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  fflush(stdout);
  pid_t child = fork();
  if (child < 0) {
    fprintf(stderr, "bench_floor: fork: %s\n", strerror(errno));
    return 1;
  }
  if (child == 0) {
    close(fd);
    _exit(paced_peer(peer, &fa, rate, transfers));
  }
  close(peer);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  static char buf[65536];
  long wakeups = 0, datagrams = 0;
  int64_t done = -1, limit = mono_ns() + (int64_t)((transfers / rate + 60) * 1e9);
  const char *failed = NULL;
  while (done < 0 && !failed && mono_ns() < limit) {
    struct epoll_event e;
    if (epoll_wait(ep, &e, 1, 1000) <= 0) continue;
    wakeups++;
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n;
    while (!failed && (n = recvfrom(fd, buf, sizeof buf, 0,
                                    (struct sockaddr *)&from, &fl)) >= 0) {
      fl = sizeof from;
      if (n == sizeof(uint32_t)) { /* the peer's end */
        uint32_t d;
        memcpy(&d, buf, sizeof d);
        done = d;
        break;
      }
      if (n < TAG) continue;
      datagrams++;
      answer a = {.fd = fd, .to = &from};
      tag_get(buf + n, &a.transfer, &a.idx);
      if (a.idx >= (unsigned)g_n || g_msgs[a.idx].sent) continue;
      msg m = g_msgs[a.idx];
      m.data = buf;
      m.len = (size_t)n - TAG;
      if (one_message(&m, 1, NULL, NULL) < 0) failed = "cannot parse";
      for (a.idx++; !failed && a.idx < (unsigned)g_n && g_msgs[a.idx].sent;
           a.idx++)
        if (one_message(&g_msgs[a.idx], 1, send_answer, &a) < 0)
          failed = "cannot write or send";
    }
  }
  getrusage(RUSAGE_SELF, &r1);
  if (failed) kill(child, SIGTERM);
  int status = 0;
  waitpid(child, &status, 0);
  close(fd);
  close(ep);
  if (failed) {
    fprintf(stderr, "bench_floor: --paced: %s a message (%s)\n", failed,
            strerror(errno));
    return 1;
  }
  if (done < 0) {
    fprintf(stderr, "bench_floor: --paced: the peer did not finish\n");
    return 1;
  }
  double user = tv_us(r0.ru_utime, r1.ru_utime);
  double sys = tv_us(r0.ru_stime, r1.ru_stime);
  double per = done ? 1.0 / (double)done : 0;
  printf("{\"messages\": %d, \"rate\": %g, \"transfers\": %u, "
         "\"completed\": %lld, \"paced_us\": %.3f, \"user_us\": %.3f, "
         "\"sys_us\": %.3f, \"wakeups_per_transfer\": %.2f, "
         "\"datagrams_per_transfer\": %.2f, \"switches_per_transfer\": %.2f}\n",
         g_n, rate, transfers, (long long)done, (user + sys) * per,
         user * per, sys * per, (double)wakeups * per,
         (double)datagrams * per,
         (double)(r1.ru_nvcsw - r0.ru_nvcsw + r1.ru_nivcsw - r0.ru_nivcsw) *
             per);
  return done == (int64_t)transfers && WIFEXITED(status) &&
         WEXITSTATUS(status) == 0 ? 0 : 1;
}

static void usage(void) {
  fprintf(stderr,
          "Usage: bench_floor [--seconds S] [--io] [--pool] [--count N] "
          "[--paced RATE [--transfers N]] TRANSFER.pcap\n"
          "Parses (and serialises the sent) SIP messages of one transfer\n"
          "with libosip2 in a loop (--paced: at RATE transfers a second, "
          "over\nloopback UDP); prints CPU microseconds per transfer as "
          "JSON.\n");
}

int main(int argc, char **argv) {
  double seconds = 2.0;
  long count = -1;
  int io = 0, pool = 0;
  double paced = 0;
  long transfers = 2000;
  const char *path = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      seconds = atof(argv[++i]);
    } else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
      count = atol(argv[++i]);
    } else if (strcmp(argv[i], "--paced") == 0 && i + 1 < argc) {
      paced = atof(argv[++i]);
    } else if (strcmp(argv[i], "--transfers") == 0 && i + 1 < argc) {
      transfers = atol(argv[++i]);
    } else if (strcmp(argv[i], "--io") == 0) {
      io = 1;
    } else if (strcmp(argv[i], "--pool") == 0) {
      pool = 1;
    } else if (argv[i][0] == '-') {
      usage();
      return 2;
    } else {
      path = argv[i];
    }
  }
  if (!path || seconds <= 0 || (count < 0 && count != -1) || paced < 0 ||
      transfers < 1 || transfers > 1000000) {
    usage();
    return 2;
  }
  /* Linked with the library, this program got its allocator at load time
   * (pool.c), before anything was allocated: the plain floor is libosip2
   * with malloc. */
  if (pool) sr__pool_install();
  else osip_set_allocators(NULL, NULL, NULL);
  if (load_pcap(path) < 0) return 1;
  if (g_n == 0) {
    fprintf(stderr, "bench_floor: %s: no UDP packets\n", path);
    return 1;
  }
  int port = mark_directions();
  if (port < 0) {
    fprintf(stderr, "bench_floor: %s: no port common to every packet (not "
            "one agent's capture?)\n", path);
    return 1;
  }
  parser_init();

  int nsent = 0;
  size_t bytes = 0;
  for (int i = 0; i < g_n; i++) {
    nsent += g_msgs[i].sent;
    bytes += g_msgs[i].len;
  }

  if (paced > 0) {
    if (g_msgs[0].sent) {
      fprintf(stderr, "bench_floor: --paced: %s starts with a message the "
              "agent sent\n", path);
      return 1;
    }
    for (int i = 0; i < 200; i++) /* the allocator's lists, as below */
      if (one_transfer(1) < 0) return 1;
    int rc = paced_floor(paced, (uint32_t)transfers);
    for (int i = 0; i < g_n; i++) free(g_msgs[i].data);
    return rc;
  }

  if (count >= 0) {
    for (long i = 0; i < count; i++)
      if (one_transfer(1) < 0) {
        fprintf(stderr, "bench_floor: libosip2 could not parse or write a "
                "message of %s\n", path);
        return 1;
      }
    printf("{\"messages\": %d, \"count\": %ld}\n", g_n, count);
    for (int i = 0; i < g_n; i++) free(g_msgs[i].data);
    return 0;
  }

  /* Warm up (allocator, caches), then measure for the asked time. */
  for (int i = 0; i < 200; i++)
    if (one_transfer(1) < 0) {
      fprintf(stderr, "bench_floor: libosip2 could not parse or write a "
              "message of %s\n", path);
      return 1;
    }
  int64_t budget = (int64_t)(seconds * 1e9);
  long iters, iters_parse;
  double parse_ns = per_transfer_ns(0, budget / 3, &iters_parse);
  double floor_ns = per_transfer_ns(1, budget * 2 / 3, &iters);

  long io_iters = 0;
  int64_t io_ns = 0;
  int io_calls = 0;
  double tcost = 0;
  if (io) {
    int tx, rx;
    if (udp_pair(&tx, &rx) < 0) {
      fprintf(stderr, "bench_floor: loopback UDP: %s\n", strerror(errno));
      return 1;
    }
    tcost = timer_cost_ns();
    int64_t start = cpu_ns();
    while (cpu_ns() - start < budget / 2) {
      for (int k = 0; k < 20; k++)
        if (one_transfer_io(tx, rx, &io_ns, &io_calls) < 0) {
          fprintf(stderr, "bench_floor: loopback UDP: %s\n", strerror(errno));
          return 1;
        }
      io_iters += 20;
    }
    close(tx);
    close(rx);
  }

  double parse_us = parse_ns / 1e3, ser_us = (floor_ns - parse_ns) / 1e3;
  double io_us = io_iters ? (io_ns - tcost * io_calls) / 1e3 / io_iters : 0;
  printf("{\"messages\": %d, \"received\": %d, \"sent\": %d, \"bytes\": %zu, "
         "\"agent_port\": %d, \"iterations\": %ld, \"parse_iterations\": %ld, "
         "\"parse_us\": %.3f, \"serialise_us\": %.3f, "
         "\"floor_us\": %.3f",
         g_n, g_n - nsent, nsent, bytes, port, iters, iters_parse, parse_us, ser_us,
         parse_us + ser_us);
  if (io)
    printf(", \"io_iterations\": %ld, \"io_us\": %.3f, "
           "\"floor_with_io_us\": %.3f",
           io_iters, io_us, parse_us + ser_us + io_us);
  printf("}\n");
  for (int i = 0; i < g_n; i++) free(g_msgs[i].data);
  return g_sink ? 0 : 1;
}
