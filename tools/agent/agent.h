/*
 * agent.h — sipreferral-agent's private declarations: its options, its
 * state, and the small modules it is made of (options.c, calls.c, trace.c,
 * pcap.c, ladder.c, script.c, main.c).
 */
#ifndef SR_AGENT_H
#define SR_AGENT_H

#include <stdio.h>

#include <sipreferral.h>

#define AGENT_MAX_LISTEN 8
#define AGENT_MAX_PLACED 16 /* --call */
#define AGENT_MAX_SCHEMES 8

/* Exit codes. */
enum {
  AGENT_EXIT_OK = 0,
  AGENT_EXIT_RUNTIME = 1,   /* cannot bind, cannot open a file, ... */
  AGENT_EXIT_USAGE = 2,     /* bad flag or flag value */
  AGENT_EXIT_CALL_FAILED = 3 /* a --call did not reach Established */
};

typedef enum { INVITE_ANSWER, INVITE_REJECT, INVITE_IGNORE } invite_mode;
typedef enum { REFER_FOLLOW, REFER_ACCEPT, REFER_REJECT } refer_mode;

typedef struct agent_options {
  const char *listen[AGENT_MAX_LISTEN];
  int nlisten;
  const char *uri;
  invite_mode on_invite;
  int invite_code;
  refer_mode on_refer;
  int refer_code;
  int allow_ood_refer;
  const char *schemes[AGENT_MAX_SCHEMES];
  int nschemes;
  const char *script;
  int max_calls;       /* 0: no limit */
  double duration_s;   /* 0: run until a signal */
  double bye_after_s;  /* < 0: never hang up on our own */
  const char *pcap;
  int ladder;
  int log_level;
  const char *calls[AGENT_MAX_PLACED];
  int ncalls;
  const char *username, *password;
  const char *outbound_proxy;
  int t1_ms;
  int max_connections; /* 0: the library's default */
  int stats;
  const char *port_file;
} agent_options;

/* Parses argv into o. Returns -1 to go on, or an exit code (0 after --help
 * or --version; AGENT_EXIT_USAGE after a one-line error on stderr). */
int agent_parse_options(agent_options *o, int argc, char **argv);

/* One call the agent holds (incoming, --call, or one following a REFER).
 * Every event reaches it through its own links: nothing the agent does
 * per message walks all calls or all referrals (10,000 calls up must not
 * cost more per transfer than ten). */
typedef struct agent_call {
  struct agent_call *next, **pprev; /* ag->calls, until the sweep frees it */
  struct agent_call *ended_next;    /* ag->ended, once Terminated */
  struct agent_call *bye_next, **bye_pprev; /* ag->byes while bye_at is set */
  struct agent *ag;
  sr_session *s;   /* our reference */
  int id;
  int counted;     /* an incoming call or a --call: counts for --max-calls */
  int placed;      /* made by --call */
  int established; /* reached Established at least once */
  int ended;       /* Terminated: freed by the next sweep */
  struct agent_referral *kept; /* the kept REFER this call follows, or NULL */
  long long bye_at;/* monotonic ms for --bye-after, 0 when none */
} agent_call;

/* A REFER the agent accepted (or has not decided yet), kept until its
 * subscription is over so that a shutdown can finish it properly. */
typedef struct agent_referral {
  struct agent_referral *next;
  sr_referral *r;  /* our reference */
  agent_call *inviter; /* the call following it, or NULL */
  int notified_final;
} agent_referral;

typedef struct agent_pcap agent_pcap;
typedef struct agent_script agent_script;

typedef struct agent {
  agent_options o;
  sr_ua *ua;
  agent_call *calls;   /* every call not yet freed, newest first */
  agent_call *ended;   /* Terminated since the last sweep */
  agent_call *byes, **byes_tail; /* --bye-after, in order of bye_at */
  int live_calls;      /* calls not ended */
  agent_referral *referrals;
  int nreferrals;      /* kept, finished ones included until a scan */
  int scan_referrals_at; /* the sweep scans them at this many */
  int next_call_id;
  int calls_started;   /* counted calls seen */
  int calls_ended;     /* counted calls ended */
  int placed_failed;   /* --call that never got established */
  int shutdown;        /* 0 running, 1 finishing referrals, 2 ending calls,
                          3 lingering for the last transactions */
  long long deadline;  /* bound of the shutdown, monotonic ms */
  long long half_deadline; /* end of step 1 */
  agent_pcap *pcap;
  agent_script *script;
} agent;

long long agent_now_ms(void);
void agent_log(agent *ag, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void agent_log_fn(int level, const char *message, void *user_data);

/* calls.c */
void agent_install(agent *ag);           /* the UA delegate */
int agent_place_call(agent *ag, const char *target);
void agent_handle_referral(agent *ag, sr_referral *r);
agent_referral *agent_keep_referral(agent *ag, sr_referral *r);
agent_call *agent_add_call(agent *ag, sr_session *s, int counted);
void agent_follow_referral(agent *ag, agent_referral *kr);
/* Frees ended calls and (now and then) finished referrals; fires
 * --bye-after. Returns the ms until the next --bye-after (or -1). */
int agent_sweep(agent *ag);
/* Shutdown steps: 1 answers/finishes referrals, 2 ends every call. */
void agent_finish_referrals(agent *ag);
void agent_end_calls(agent *ag);
int agent_live_referrals(agent *ag); /* walks them: shutdown, --max-calls */
void agent_free_all(agent *ag);

/* trace.c: the message hook (ladder, pcap, final NOTIFYs in flight). */
void agent_trace_install(agent *ag);
/* Final NOTIFYs sent during the shutdown and not answered yet. */
int agent_unanswered_final_notifies(void);

/* pcap.c */
int agent_pcap_open(agent_pcap **out, const char *path);
void agent_pcap_write(agent_pcap *p, int outgoing, sr_transport tp,
                      const char *local, const char *remote, const char *data,
                      size_t len);
void agent_pcap_close(agent_pcap *p);

/* script.c: Lua policy scripts. */
int agent_script_load(agent *ag, const char *path, char *err, size_t errlen);
/* Each returns 1 when the script handled the event, 0 for the flags'
 * behaviour. */
int agent_script_on_invite(agent *ag, sr_session *inv);
int agent_script_on_refer(agent *ag, sr_referral *r);
/* A response to the INVITE of a call following referral r. */
void agent_script_on_notify(agent *ag, sr_referral *r, int code,
                            const char *reason);
void agent_script_free(agent *ag);

#endif
