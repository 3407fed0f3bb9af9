/*
 * options.c — sipreferral-agent's command line. Every error is one line on
 * stderr and exit status 2, so scripts can tell a typo from a failed call.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent.h"

static const char usage[] =
"Usage: sipreferral-agent [OPTION]...\n"
"A SIP user agent that answers calls and handles REFER (call transfer)\n"
"as its flags, or a Lua policy script, say.\n"
"\n"
"Network and identity:\n"
"  --listen SPEC        udp:HOST:PORT or tcp:HOST:PORT (IPv6 as [::1]);\n"
"                       repeatable; default udp and tcp on 127.0.0.1:5060.\n"
"                       Port 0 picks a free port (udp and tcp then share one\n"
"                       when they can); see --port-file\n"
"  --uri SIP-URI        identity; default sip:agent@HOST, HOST of the first\n"
"                       --listen\n"
"  --username NAME      digest username for 401/407 challenges\n"
"  --password SECRET    digest password\n"
"  --outbound-proxy URI send out-of-dialog INVITEs (--call, followed REFERs)\n"
"                       through this proxy, e.g. sip:10.0.0.1;transport=tcp;\n"
"                       targets may then name hosts\n"
"  --t1 MS              SIP timer T1 in milliseconds (default 500)\n"
"  --max-connections N  TCP connections open at once (default 1024); the\n"
"                       open-file limit is raised to fit when it can be\n"
"  --port-file FILE     write the bound listeners, one line:\n"
"                       \"udp:127.0.0.1:PORT tcp:127.0.0.1:PORT\"\n"
"\n"
"Behaviour:\n"
"  --on-invite MODE     answer (default: 180 then 200), reject:CODE\n"
"                       (a final 300-699), or ignore (no answer)\n"
"  --on-refer MODE      follow (default: 202, NOTIFY 100, then INVITE the\n"
"                       Refer-To target, its progress sent as NOTIFYs),\n"
"                       accept (202 and NOTIFY 100 only, no INVITE), or\n"
"                       reject:CODE (a final 300-699)\n"
"  --allow-out-of-dialog-refer\n"
"                       accept REFER outside a call (default: 405)\n"
"  --allow-scheme SCHEME\n"
"                       also allow Refer-To URIs of SCHEME (besides sip;\n"
"                       a sips target gets NOTIFY 503: no TLS); repeatable\n"
"  --script FILE.lua    Lua policy: functions on_invite(invitation),\n"
"                       on_refer(referral), on_notify(...)\n"
"  --call TARGET        place a call to the SIP URI TARGET at start;\n"
"                       repeatable. Exit status 3 if one never connects\n"
"  --bye-after SECONDS  hang up each call this long after it is\n"
"                       established (0: at once); default never\n"
"  --max-calls N        exit after N calls (incoming and --call) have\n"
"                       ended and nothing else is in progress\n"
"  --duration SECONDS   shut down cleanly after this long\n"
"\n"
"Output:\n"
"  --ladder             print each SIP message sent or received as one line\n"
"                       of a ladder diagram on stdout\n"
"  --pcap FILE          write every SIP message to FILE as a pcap capture\n"
"                       (Wireshark, tshark, sngrep)\n"
"  --stats              print the library's live object counts at exit\n"
"  -v, --verbose        more log output on stderr (repeatable)\n"
"  --log-level LEVEL    error, warning (default), info or debug\n"
"  -h, --help           this text\n"
"  -V, --version        the version\n"
"\n"
"SIGINT or SIGTERM shuts down cleanly: undecided REFERs are rejected, open\n"
"transfer subscriptions get their final NOTIFY, calls end with BYE, and\n"
"the exit status is 0 (a second SIGINT cuts this short). Exit status: 0 ok,\n"
"1 runtime error (e.g. an address that cannot be bound), 2 bad command\n"
"line, 3 a --call failed.\n";

enum {
  OPT_LISTEN = 256, OPT_URI, OPT_ON_INVITE, OPT_ON_REFER, OPT_OOD,
  OPT_SCHEME, OPT_SCRIPT, OPT_MAX_CALLS, OPT_DURATION, OPT_PCAP, OPT_LADDER,
  OPT_LOG_LEVEL, OPT_CALL, OPT_BYE_AFTER, OPT_USERNAME, OPT_PASSWORD,
  OPT_T1, OPT_STATS, OPT_PORT_FILE, OPT_MAX_CONNECTIONS, OPT_PROXY
};

static const struct option longopts[] = {
  {"listen", required_argument, NULL, OPT_LISTEN},
  {"uri", required_argument, NULL, OPT_URI},
  {"on-invite", required_argument, NULL, OPT_ON_INVITE},
  {"on-refer", required_argument, NULL, OPT_ON_REFER},
  {"allow-out-of-dialog-refer", no_argument, NULL, OPT_OOD},
  {"allow-scheme", required_argument, NULL, OPT_SCHEME},
  {"script", required_argument, NULL, OPT_SCRIPT},
  {"max-calls", required_argument, NULL, OPT_MAX_CALLS},
  {"duration", required_argument, NULL, OPT_DURATION},
  {"pcap", required_argument, NULL, OPT_PCAP},
  {"ladder", no_argument, NULL, OPT_LADDER},
  {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
  {"verbose", no_argument, NULL, 'v'},
  {"call", required_argument, NULL, OPT_CALL},
  {"bye-after", required_argument, NULL, OPT_BYE_AFTER},
  {"username", required_argument, NULL, OPT_USERNAME},
  {"password", required_argument, NULL, OPT_PASSWORD},
  {"outbound-proxy", required_argument, NULL, OPT_PROXY},
  {"t1", required_argument, NULL, OPT_T1},
  {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
  {"stats", no_argument, NULL, OPT_STATS},
  {"port-file", required_argument, NULL, OPT_PORT_FILE},
  {"help", no_argument, NULL, 'h'},
  {"version", no_argument, NULL, 'V'},
  {NULL, 0, NULL, 0},
};

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "sipreferral-agent: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see --help)\n");
  return AGENT_EXIT_USAGE;
}

/* A whole decimal integer within [lo, hi]. */
static int parse_int(const char *s, long lo, long hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return -1;
  *out = (int)v;
  return 0;
}

static int parse_seconds(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e7) return -1;
  *out = v;
  return 0;
}

/* "reject:CODE" with CODE 300-699; returns the code or -1. */
static int reject_code(const char *v) {
  int code;
  if (strncasecmp(v, "reject:", 7) != 0) return -1;
  if (parse_int(v + 7, 300, 699, &code) < 0) return -1;
  return code;
}

static int parse_level(const char *v, int *out) {
  static const char *names[] = {"error", "warning", "info", "debug"};
  for (int i = 0; i < 4; i++)
    if (strcasecmp(v, names[i]) == 0) {
      *out = i;
      return 0;
    }
  return parse_int(v, 0, 3, out);
}

static int valid_scheme(const char *s) {
  if (!*s || strlen(s) > 32) return 0;
  for (const char *c = s; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
          (*c >= '0' && *c <= '9') || (c > s && strchr("+-.", *c))))
      return 0;
  return 1;
}

int agent_parse_options(agent_options *o, int argc, char **argv) {
  memset(o, 0, sizeof *o);
  o->on_invite = INVITE_ANSWER;
  o->on_refer = REFER_FOLLOW;
  o->bye_after_s = -1;
  o->log_level = SR_LOG_WARNING;
  int verbose = 0, level_set = 0, c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":hVv", longopts, NULL)) != -1) {
    switch (c) {
    case OPT_LISTEN:
      if (o->nlisten >= AGENT_MAX_LISTEN)
        return fail("too many --listen (at most %d)", AGENT_MAX_LISTEN);
      if (strncasecmp(optarg, "udp:", 4) && strncasecmp(optarg, "tcp:", 4))
        return fail("--listen '%s': expected udp:HOST:PORT or tcp:HOST:PORT",
                    optarg);
      o->listen[o->nlisten++] = optarg;
      break;
    case OPT_URI:
      if (strncasecmp(optarg, "sip:", 4) && strncasecmp(optarg, "sips:", 5))
        return fail("--uri '%s': expected a sip: or sips: URI", optarg);
      o->uri = optarg;
      break;
    case OPT_ON_INVITE:
      if (strcasecmp(optarg, "answer") == 0) {
        o->on_invite = INVITE_ANSWER;
      } else if (strcasecmp(optarg, "ignore") == 0) {
        o->on_invite = INVITE_IGNORE;
      } else if ((o->invite_code = reject_code(optarg)) > 0) {
        o->on_invite = INVITE_REJECT;
      } else {
        return fail("--on-invite '%s': expected answer, reject:CODE "
                    "(300-699) or ignore", optarg);
      }
      break;
    case OPT_ON_REFER:
      if (strcasecmp(optarg, "follow") == 0) {
        o->on_refer = REFER_FOLLOW;
      } else if (strcasecmp(optarg, "accept") == 0) {
        o->on_refer = REFER_ACCEPT;
      } else if ((o->refer_code = reject_code(optarg)) > 0) {
        o->on_refer = REFER_REJECT;
      } else {
        return fail("--on-refer '%s': expected follow, accept or reject:CODE "
                    "(300-699)", optarg);
      }
      break;
    case OPT_OOD:
      o->allow_ood_refer = 1;
      break;
    case OPT_SCHEME:
      if (!valid_scheme(optarg))
        return fail("--allow-scheme '%s': not a URI scheme", optarg);
      if (o->nschemes >= AGENT_MAX_SCHEMES)
        return fail("too many --allow-scheme (at most %d)", AGENT_MAX_SCHEMES);
      o->schemes[o->nschemes++] = optarg;
      break;
    case OPT_SCRIPT:
      o->script = optarg;
      break;
    case OPT_MAX_CALLS:
      if (parse_int(optarg, 1, 1000000000, &o->max_calls) < 0)
        return fail("--max-calls '%s': expected a positive integer", optarg);
      break;
    case OPT_DURATION:
      if (parse_seconds(optarg, &o->duration_s) < 0 || o->duration_s <= 0)
        return fail("--duration '%s': expected seconds > 0", optarg);
      break;
    case OPT_BYE_AFTER:
      if (parse_seconds(optarg, &o->bye_after_s) < 0)
        return fail("--bye-after '%s': expected seconds >= 0", optarg);
      break;
    case OPT_PCAP:
      o->pcap = optarg;
      break;
    case OPT_LADDER:
      o->ladder = 1;
      break;
    case OPT_LOG_LEVEL:
      if (parse_level(optarg, &o->log_level) < 0)
        return fail("--log-level '%s': expected error, warning, info or "
                    "debug", optarg);
      level_set = 1;
      break;
    case 'v':
      verbose++;
      break;
    case OPT_CALL:
      if (o->ncalls >= AGENT_MAX_PLACED)
        return fail("too many --call (at most %d)", AGENT_MAX_PLACED);
      o->calls[o->ncalls++] = optarg;
      break;
    case OPT_USERNAME:
      o->username = optarg;
      break;
    case OPT_PASSWORD:
      o->password = optarg;
      break;
    case OPT_PROXY:
      o->outbound_proxy = optarg;
      break;
    case OPT_T1:
      if (parse_int(optarg, 1, 60000, &o->t1_ms) < 0)
        return fail("--t1 '%s': expected milliseconds (1-60000)", optarg);
      break;
    case OPT_MAX_CONNECTIONS:
      if (parse_int(optarg, 1, 1000000, &o->max_connections) < 0)
        return fail("--max-connections '%s': expected a positive integer",
                    optarg);
      break;
    case OPT_STATS:
      o->stats = 1;
      break;
    case OPT_PORT_FILE:
      o->port_file = optarg;
      break;
    case 'h':
      fputs(usage, stdout);
      return AGENT_EXIT_OK;
    case 'V':
      printf("sipreferral-agent %s (libsipreferral %s)\n", SR_VERSION,
             sr_version());
      return AGENT_EXIT_OK;
    case ':':
      if (strncmp(argv[optind - 1], "--", 2) == 0)
        return fail("option '%s' needs a value", argv[optind - 1]);
      return fail("option '-%c' needs a value", optopt);
    default:
      /* optopt: the letter of a bad short option; for a long one, its
       * value when it is known but was given a value it takes none of */
      if (strncmp(argv[optind - 1], "--", 2) != 0)
        return fail("unknown option '-%c'", optopt);
      if (optopt)
        return fail("option '%s' takes no value", argv[optind - 1]);
      return fail("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc)
    return fail("unexpected argument '%s'", argv[optind]);
  if (!level_set) {
    o->log_level += verbose;
    if (o->log_level > SR_LOG_DEBUG) o->log_level = SR_LOG_DEBUG;
  }
  if (!o->username != !o->password)
    return fail("--username and --password go together");
  if (o->nlisten == 0) {
    o->listen[o->nlisten++] = "udp:127.0.0.1:5060";
    o->listen[o->nlisten++] = "tcp:127.0.0.1:5060";
  }
  return -1;
}
