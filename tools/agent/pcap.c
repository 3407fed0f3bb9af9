/*
 * pcap.c — --pcap: every SIP message the agent sends or receives, written
 * as a classic pcap file (LINKTYPE_RAW: bare IPv4/IPv6 packets) with
 * synthesized UDP or TCP headers, so that Wireshark, tshark and sngrep
 * show the SIP flow. TCP messages get one segment each (split when over
 * the IP size limit) with per-direction sequence numbers, so stream
 * reassembly and SIP-over-TCP dissection work without a handshake.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "agent.h"

#define LINKTYPE_RAW 101
#define MAX_SEGMENT 60000 /* payload per packet: below IPv4's 65535 */

typedef struct addr {
  int v6;
  uint8_t ip[16];
  uint16_t port;
} addr;

/* A TCP flow: next sequence number each way. */
typedef struct flow {
  struct flow *next;
  addr a, b;
  uint32_t seq_ab, seq_ba;
} flow;

struct agent_pcap {
  FILE *f;
  flow *flows;
  uint16_t ip_id;
};

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v) {
  put16(p, (uint16_t)(v >> 16));
  put16(p + 2, (uint16_t)v);
}

/* "1.2.3.4:5060" or "[::1]:5060" */
static int parse_addr(const char *s, addr *out) {
  char host[64];
  const char *colon;
  memset(out, 0, sizeof *out);
  if (!s) return -1;
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof host) return -1;
    memcpy(host, s + 1, (size_t)(rb - s - 1));
    host[rb - s - 1] = '\0';
    colon = rb + 1;
    out->v6 = 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host) return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
  }
  if (inet_pton(out->v6 ? AF_INET6 : AF_INET, host, out->ip) != 1) return -1;
  out->port = (uint16_t)atoi(colon + 1);
  return 0;
}

static int same_addr(const addr *x, const addr *y) {
  return x->v6 == y->v6 && x->port == y->port &&
         memcmp(x->ip, y->ip, x->v6 ? 16 : 4) == 0;
}

/* The sequence number to use from src to dst, advanced by len. */
static uint32_t next_seq(agent_pcap *p, const addr *src, const addr *dst,
                         size_t len, uint32_t *ack) {
  flow *f;
  for (f = p->flows; f; f = f->next) {
    if (same_addr(&f->a, src) && same_addr(&f->b, dst)) break;
    if (same_addr(&f->a, dst) && same_addr(&f->b, src)) break;
  }
  if (!f) {
    f = calloc(1, sizeof *f);
    if (!f) return 0;
    f->a = *src;
    f->b = *dst;
    f->seq_ab = 1;
    f->seq_ba = 1;
    f->next = p->flows;
    p->flows = f;
  }
  uint32_t *mine = same_addr(&f->a, src) ? &f->seq_ab : &f->seq_ba;
  uint32_t *theirs = mine == &f->seq_ab ? &f->seq_ba : &f->seq_ab;
  uint32_t seq = *mine;
  *mine += (uint32_t)len;
  *ack = *theirs;
  return seq;
}

static uint32_t sum_bytes(uint32_t sum, const uint8_t *d, size_t n) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(d[i] << 8 | d[i + 1]);
  if (n & 1) sum += (uint32_t)(d[n - 1] << 8);
  return sum;
}

static uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

/* Transport checksum over the pseudo-header, the L4 header and payload. */
static uint16_t l4_checksum(const addr *src, const addr *dst, int proto,
                            const uint8_t *hdr, size_t hl, const char *data,
                            size_t len) {
  size_t alen = src->v6 ? 16 : 4;
  uint32_t sum = sum_bytes(0, src->ip, alen);
  sum = sum_bytes(sum, dst->ip, alen);
  sum += (uint32_t)proto;
  sum += (uint32_t)(hl + len) & 0xffff;
  sum += (uint32_t)((hl + len) >> 16);
  sum = sum_bytes(sum, hdr, hl);
  /* hl is even, so the payload starts on a 16-bit boundary */
  sum = sum_bytes(sum, (const uint8_t *)data, len);
  uint16_t c = fold(sum);
  return c ? c : 0xffff;
}

static void write_packet(agent_pcap *p, const addr *src, const addr *dst,
                         int tcp, uint32_t seq, uint32_t ack, const char *data,
                         size_t len) {
  uint8_t ip[40], l4[20];
  size_t iphl = src->v6 ? 40 : 20, l4hl = tcp ? 20 : 8;
  int proto = tcp ? 6 : 17;
  memset(ip, 0, sizeof ip);
  memset(l4, 0, sizeof l4);
  put16(l4, src->port);
  put16(l4 + 2, dst->port);
  if (tcp) {
    put32(l4 + 4, seq);
    put32(l4 + 8, ack);
    l4[12] = 5 << 4;  /* 20-byte header */
    l4[13] = 0x18;    /* PSH, ACK */
    put16(l4 + 14, 65535);
  } else {
    put16(l4 + 4, (uint16_t)(8 + len));
  }
  put16(l4 + (tcp ? 16 : 6),
        l4_checksum(src, dst, proto, l4, l4hl, data, len));
  if (src->v6) {
    ip[0] = 0x60;
    put16(ip + 4, (uint16_t)(l4hl + len));
    ip[6] = (uint8_t)proto;
    ip[7] = 64;
    memcpy(ip + 8, src->ip, 16);
    memcpy(ip + 24, dst->ip, 16);
  } else {
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(20 + l4hl + len));
    put16(ip + 4, p->ip_id++);
    put16(ip + 6, 0x4000); /* don't fragment */
    ip[8] = 64;
    ip[9] = (uint8_t)proto;
    memcpy(ip + 12, src->ip, 4);
    memcpy(ip + 16, dst->ip, 4);
    put16(ip + 10, fold(sum_bytes(0, ip, 20)));
  }
  struct timeval tv;
  gettimeofday(&tv, NULL);
  uint32_t rec[4] = {(uint32_t)tv.tv_sec, (uint32_t)tv.tv_usec,
                     (uint32_t)(iphl + l4hl + len),
                     (uint32_t)(iphl + l4hl + len)};
  fwrite(rec, sizeof rec, 1, p->f);
  fwrite(ip, iphl, 1, p->f);
  fwrite(l4, l4hl, 1, p->f);
  fwrite(data, len, 1, p->f);
}

int agent_pcap_open(agent_pcap **out, const char *path) {
  agent_pcap *p = calloc(1, sizeof *p);
  if (!p) return -1;
  p->f = fopen(path, "wb");
  if (!p->f) {
    free(p);
    return -1;
  }
  /* Native byte order; readers recognise it from the magic number. */
  uint32_t magic = 0xa1b2c3d4, snaplen = 262144, linktype = LINKTYPE_RAW;
  uint16_t major = 2, minor = 4;
  int32_t zone = 0;
  uint32_t sigfigs = 0;
  fwrite(&magic, 4, 1, p->f);
  fwrite(&major, 2, 1, p->f);
  fwrite(&minor, 2, 1, p->f);
  fwrite(&zone, 4, 1, p->f);
  fwrite(&sigfigs, 4, 1, p->f);
  fwrite(&snaplen, 4, 1, p->f);
  fwrite(&linktype, 4, 1, p->f);
  if (fflush(p->f) != 0) {
    fclose(p->f);
    free(p);
    return -1;
  }
  *out = p;
  return 0;
}

void agent_pcap_write(agent_pcap *p, int outgoing, sr_transport tp,
                      const char *local, const char *remote, const char *data,
                      size_t len) {
  addr l, r;
  if (!p || parse_addr(local, &l) < 0 || parse_addr(remote, &r) < 0 ||
      l.v6 != r.v6)
    return;
  const addr *src = outgoing ? &l : &r, *dst = outgoing ? &r : &l;
  int tcp = tp == SR_TRANSPORT_TCP;
  if (!tcp && len > MAX_SEGMENT) return; /* no such UDP datagram exists */
  for (size_t off = 0; off < len || off == 0; off += MAX_SEGMENT) {
    size_t n = len - off < MAX_SEGMENT ? len - off : MAX_SEGMENT;
    uint32_t ack = 0, seq = tcp ? next_seq(p, src, dst, n, &ack) : 0;
    write_packet(p, src, dst, tcp, seq, ack, data + off, n);
    if (len == 0) break;
  }
  /* A killed agent still leaves a readable capture. */
  fflush(p->f);
}

void agent_pcap_close(agent_pcap *p) {
  if (!p) return;
  while (p->flows) {
    flow *f = p->flows;
    p->flows = f->next;
    free(f);
  }
  fclose(p->f);
  free(p);
}
