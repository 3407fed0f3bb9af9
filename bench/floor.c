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
 *
 * Output: one JSON object on stdout. CPU time is the thread's own
 * (CLOCK_THREAD_CPUTIME_ID), as the agent's is its own user+sys time.
 *
 * --count N runs exactly N transfers (parse and serialise) and nothing
 * else, for counting instructions under callgrind: the difference between
 * two counts divided by the difference in N is the floor in instructions.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

/* One transfer's libosip2 work: parse every message; with ser, also
 * serialise the sent ones. Timed in bulk by the caller. */
static int one_transfer(int ser) {
  for (int i = 0; i < g_n; i++) {
    msg *m = &g_msgs[i];
    osip_message_t *sip;
    if (osip_message_init(&sip) != 0) return -1;
    if (osip_message_parse(sip, m->data, m->len) != 0) {
      osip_message_free(sip);
      return -1;
    }
    if (ser && m->sent) {
      char *out;
      size_t outlen;
      osip_message_force_update(sip);
      if (osip_message_to_str(sip, &out, &outlen) != 0) {
        osip_message_free(sip);
        return -1;
      }
      g_sink += outlen;
      osip_free(out);
    }
    osip_message_free(sip);
  }
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

static void usage(void) {
  fprintf(stderr,
          "Usage: bench_floor [--seconds S] [--io] [--pool] [--count N] "
          "TRANSFER.pcap\n"
          "Parses (and serialises the sent) SIP messages of one transfer\n"
          "with libosip2 in a loop; prints CPU microseconds per transfer "
          "as JSON.\n");
}

int main(int argc, char **argv) {
  double seconds = 2.0;
  long count = -1;
  int io = 0, pool = 0;
  const char *path = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      seconds = atof(argv[++i]);
    } else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
      count = atol(argv[++i]);
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
  if (!path || seconds <= 0 || (count < 0 && count != -1)) {
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
