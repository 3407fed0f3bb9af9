/*
 * test_message.c — the read-only views (URI, name-addr, request) and the
 * text helpers of csrc/message.c, including hostile input. Meant to run
 * under ASan/UBSan: every parse result is cleared, so a leak shows.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "message.h"
#include "sipreferral.h"

/* ------------------------------------------------------------------ */
/* URI                                                                 */
/* ------------------------------------------------------------------ */

static void test_uri_basic(void) {
  struct sr_uri u;
  REQUIRE(sr__uri_parse(&u, "sip:alice@example.com") == 0);
  CHECK_STR(sr_uri_scheme(&u), "sip");
  CHECK_STR(sr_uri_user(&u), "alice");
  CHECK_STR(sr_uri_host(&u), "example.com");
  CHECK_INT(sr_uri_port(&u), 0);
  CHECK_INT(sr_uri_param_count(&u), 0);
  CHECK_INT(sr_uri_header_count(&u), 0);
  CHECK_STR(sr_uri_string(&u), "sip:alice@example.com");
  sr__uri_clear(&u);
  CHECK(u.text == NULL && u.scheme == NULL);
  sr__uri_clear(&u); /* twice is harmless */

  REQUIRE(sr__uri_parse(&u, "  SIPS:Bob:secret@Host-1.example.org:5061  ") ==
          0);
  CHECK_STR(sr_uri_scheme(&u), "sips");
  CHECK_STR(sr_uri_user(&u), "Bob");
  CHECK_STR(sr_uri_host(&u), "Host-1.example.org");
  CHECK_INT(sr_uri_port(&u), 5061);
  CHECK_STR(sr_uri_string(&u), "SIPS:Bob:secret@Host-1.example.org:5061");
  sr__uri_clear(&u);

  REQUIRE(sr__uri_parse(&u, "sip:127.0.0.1:5060") == 0);
  CHECK(sr_uri_user(&u) == NULL);
  CHECK_STR(sr_uri_host(&u), "127.0.0.1");
  CHECK_INT(sr_uri_port(&u), 5060);
  sr__uri_clear(&u);

  REQUIRE(sr__uri_parse(&u, "sip:carol@[2001:db8::1]:5080;transport=tcp") ==
          0);
  CHECK_STR(sr_uri_host(&u), "2001:db8::1");
  CHECK_INT(sr_uri_port(&u), 5080);
  CHECK_INT(sr_uri_param_count(&u), 1);
  CHECK_STR(sr_uri_param_name(&u, 0), "transport");
  CHECK_STR(sr_uri_param_value(&u, 0), "tcp");
  sr__uri_clear(&u);

  REQUIRE(sr__uri_parse(&u, "sip:[::1]") == 0);
  CHECK_STR(sr_uri_host(&u), "::1");
  CHECK_INT(sr_uri_port(&u), 0);
  sr__uri_clear(&u);

  /* user part with ';' (telephone-subscriber style) */
  REQUIRE(sr__uri_parse(&u, "sip:+1234;phone-context=x@gw.example;user=phone") ==
          0);
  CHECK_STR(sr_uri_user(&u), "+1234;phone-context=x");
  CHECK_STR(sr_uri_host(&u), "gw.example");
  CHECK_INT(sr_uri_param_count(&u), 1);
  CHECK_STR(sr_uri_param_name(&u, 0), "user");
  sr__uri_clear(&u);
}

static void test_uri_params_headers(void) {
  struct sr_uri u;
  REQUIRE(sr__uri_parse(&u, "sip:bob@b.example;transport=udp;lr;maddr=1.2.3.4"
                            "?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2"
                            "&Subject=hello%20world&X-Empty=&Flag") == 0);
  CHECK_INT(sr_uri_param_count(&u), 3);
  CHECK_STR(sr_uri_param_name(&u, 0), "transport");
  CHECK_STR(sr_uri_param_value(&u, 0), "udp");
  CHECK_STR(sr_uri_param_name(&u, 1), "lr");
  CHECK(sr_uri_param_value(&u, 1) == NULL); /* flag parameter */
  CHECK_STR(sr_uri_param_name(&u, 2), "maddr");
  CHECK_STR(sr_uri_param_value(&u, 2), "1.2.3.4");
  CHECK(sr_uri_param_name(&u, 3) == NULL);
  CHECK(sr_uri_param_name(&u, -1) == NULL);
  CHECK(sr_uri_param_value(&u, 99) == NULL);
  CHECK_INT(sr_uri_header_count(&u), 4);
  CHECK_STR(sr_uri_header_name(&u, 0), "Replaces");
  CHECK_STR(sr_uri_header_value(&u, 0), "abc@host;to-tag=1;from-tag=2");
  CHECK_STR(sr_uri_header_name(&u, 1), "Subject");
  CHECK_STR(sr_uri_header_value(&u, 1), "hello world");
  CHECK_STR(sr_uri_header_value(&u, 2), "");
  CHECK_STR(sr_uri_header_name(&u, 3), "Flag");
  CHECK_STR(sr_uri_header_value(&u, 3), "");
  CHECK(sr_uri_header_name(&u, 4) == NULL);
  CHECK(sr_uri_header_value(&u, -1) == NULL);
  sr__uri_clear(&u);

  /* no params, headers only; empty items skipped */
  REQUIRE(sr__uri_parse(&u, "sip:x@y?a=1&&b=2&") == 0);
  CHECK_INT(sr_uri_param_count(&u), 0);
  CHECK_INT(sr_uri_header_count(&u), 2);
  CHECK_STR(sr_uri_header_value(&u, 1), "2");
  sr__uri_clear(&u);

  /* an unescaped '@' in a header value does not become the userinfo */
  REQUIRE(sr__uri_parse(&u, "sip:host.example?Replaces=call@10.0.0.1") == 0);
  CHECK(sr_uri_user(&u) == NULL);
  CHECK_STR(sr_uri_host(&u), "host.example");
  CHECK_STR(sr_uri_header_value(&u, 0), "call@10.0.0.1");
  sr__uri_clear(&u);
}

static void test_uri_other_schemes(void) {
  struct sr_uri u;
  REQUIRE(sr__uri_parse(&u, "TEL:+1-201-555-0123;phone-context=+1;ext=7") == 0);
  CHECK_STR(sr_uri_scheme(&u), "tel");
  CHECK_STR(sr_uri_user(&u), "+1-201-555-0123");
  CHECK(sr_uri_host(&u) == NULL);
  CHECK_INT(sr_uri_port(&u), 0);
  CHECK_INT(sr_uri_param_count(&u), 2);
  CHECK_STR(sr_uri_param_name(&u, 0), "phone-context");
  CHECK_STR(sr_uri_param_value(&u, 0), "+1");
  CHECK_STR(sr_uri_param_value(&u, 1), "7");
  sr__uri_clear(&u);

  REQUIRE(sr__uri_parse(&u, "http://www.example.com/a?b=c") == 0);
  CHECK_STR(sr_uri_scheme(&u), "http");
  CHECK(sr_uri_user(&u) == NULL);
  CHECK(sr_uri_host(&u) == NULL);
  CHECK_INT(sr_uri_param_count(&u), 0);
  CHECK_INT(sr_uri_header_count(&u), 0);
  CHECK_STR(sr_uri_string(&u), "http://www.example.com/a?b=c");
  sr__uri_clear(&u);

  REQUIRE(sr__uri_parse(&u, "urn:service:sos") == 0);
  CHECK_STR(sr_uri_scheme(&u), "urn");
  sr__uri_clear(&u);
}

static void test_uri_errors(void) {
  static const char *const bad[] = {
      "",
      "   ",
      "alice@example.com",   /* no scheme */
      ":alice@x",            /* empty scheme */
      "1sip:a@b",            /* scheme starts with a digit */
      "sip:",                /* nothing after the scheme */
      "sip:@host",           /* empty user */
      "sip::pw@host",        /* empty user, password only */
      "sip:alice@",          /* no host */
      "sip:alice@host:",     /* empty port */
      "sip:alice@host:99999",
      "sip:alice@host:5060x",
      "sip:alice@host:1234567",
      "sip:alice@[::1",      /* unclosed IPv6 */
      "sip:alice@[]",
      "sip:alice@[1.2.3.4]", /* no ':' inside brackets */
      "sip:alice@[zz::1]",
      "sip:alice@ho st",
      "sip:alice@host;;lr",  /* empty parameter name */
      "sip:alice@host;=x",
      "sip:a@b?x=%zz",       /* bad escape in a header */
      "sip:a@b?x=%4",        /* truncated escape */
      "sip:a@b?x=%",
      "sip:a@b?x=%00",       /* escaped NUL */
      "sip:a@b?=v",          /* empty header name */
      "sip:a@b?%zz=v",
      "sip:a@b\r\nVia: x",   /* line break */
      "sip:a@b\x01",
      "sip:a<b@c",
      "sip:a@b>",
      "sip:\"a\"@b",
      "tel:",
      "tel:;x=1",
      "tel:+1;;x",
      "sip:a@host/x",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct sr_uri u;
    memset(&u, 0x5a, sizeof u); /* garbage in: must come out cleared */
    int rc = sr__uri_parse(&u, bad[i]);
    if (rc != SR_EPARSE) fprintf(stderr, "  accepted: \"%s\"\n", bad[i]);
    CHECK_INT(rc, SR_EPARSE);
    CHECK(u.text == NULL && u.scheme == NULL && u.host == NULL &&
          u.params == NULL && u.headers == NULL && u.nparams == 0);
  }
  struct sr_uri u;
  CHECK_INT(sr__uri_parse(&u, NULL), SR_EINVAL);
  CHECK_INT(sr__uri_parse(NULL, "sip:a@b"), SR_EINVAL);
  sr__uri_clear(NULL);
}

static void test_uri_hostile(void) {
  struct sr_uri u;
  /* 60 KiB user part */
  size_t big = 60 * 1024;
  char *s = malloc(big + 64);
  REQUIRE(s != NULL);
  strcpy(s, "sip:");
  memset(s + 4, 'a', big);
  strcpy(s + 4 + big, "@example.com");
  CHECK_INT(sr__uri_parse(&u, s), 0);
  CHECK_INT(strlen(sr_uri_user(&u)), big);
  sr__uri_clear(&u);

  /* 60 KiB header value, all escaped */
  strcpy(s, "sip:a@b?X=");
  size_t k = strlen(s);
  for (size_t i = 0; i < big / 3; i++) {
    memcpy(s + k, "%41", 3);
    k += 3;
  }
  s[k] = '\0';
  CHECK_INT(sr__uri_parse(&u, s), 0);
  CHECK_INT(strlen(sr_uri_header_value(&u, 0)), big / 3);
  sr__uri_clear(&u);
  /* ... with the last escape truncated: the whole parse fails */
  s[k - 1] = '\0';
  CHECK_INT(sr__uri_parse(&u, s), SR_EPARSE);
  free(s);

  /* 1000 URI headers and 1000 parameters */
  size_t cap = 1000 * 32 + 64;
  s = malloc(cap);
  REQUIRE(s != NULL);
  k = (size_t)sprintf(s, "sip:a@b");
  for (int i = 0; i < 1000; i++) k += (size_t)sprintf(s + k, ";p%d=%d", i, i);
  s[k++] = '?';
  for (int i = 0; i < 1000; i++)
    k += (size_t)sprintf(s + k, "%sh%d=v%%20%d", i ? "&" : "", i, i);
  s[k] = '\0';
  REQUIRE(sr__uri_parse(&u, s) == 0);
  CHECK_INT(sr_uri_param_count(&u), 1000);
  CHECK_INT(sr_uri_header_count(&u), 1000);
  CHECK_STR(sr_uri_param_name(&u, 999), "p999");
  CHECK_STR(sr_uri_header_name(&u, 999), "h999");
  CHECK_STR(sr_uri_header_value(&u, 999), "v 999");
  CHECK(sr_uri_header_value(&u, 1000) == NULL);
  sr__uri_clear(&u);
  free(s);
}

/* ------------------------------------------------------------------ */
/* Escapes                                                             */
/* ------------------------------------------------------------------ */

static void test_escapes(void) {
  char *s = sr__unescape("a%20b%3d%3Dc%25");
  CHECK_STR(s, "a b==c%");
  sr__free(s);
  s = sr__unescape("");
  CHECK_STR(s, "");
  sr__free(s);
  CHECK(sr__unescape("%zz") == NULL);
  CHECK(sr__unescape("%4") == NULL);
  CHECK(sr__unescape("abc%") == NULL);
  CHECK(sr__unescape("%g1") == NULL);
  CHECK(sr__unescape("%00") == NULL);
  CHECK(sr__unescape(NULL) == NULL);

  s = sr__escape_hvalue("12345@192.168.118.3;to-tag=12345;from-tag=5FFE-3994");
  CHECK_STR(s, "12345%40192.168.118.3%3Bto-tag%3D12345%3Bfrom-tag%3D5FFE-3994");
  /* and back */
  char *back = sr__unescape(s);
  CHECK_STR(back, "12345@192.168.118.3;to-tag=12345;from-tag=5FFE-3994");
  sr__free(back);
  sr__free(s);
  s = sr__escape_hvalue("a b&c%d\"e<f>g,h\r\n[i]/?:+$-_.!~*'()");
  CHECK_STR(s, "a%20b%26c%25d%22e%3Cf%3Eg%2Ch%0D%0A[i]/?:+$-_.!~*'()");
  sr__free(s);
  s = sr__escape_hvalue("\xc3\xa9");
  CHECK_STR(s, "%C3%A9");
  sr__free(s);
  s = sr__escape_hvalue("");
  CHECK_STR(s, "");
  sr__free(s);
  CHECK(sr__escape_hvalue(NULL) == NULL);

  /* round trip of every non-NUL byte */
  char all[256];
  for (int i = 1; i < 256; i++) all[i - 1] = (char)i;
  all[255] = '\0';
  s = sr__escape_hvalue(all);
  REQUIRE(s != NULL);
  back = sr__unescape(s);
  CHECK(back && strcmp(back, all) == 0);
  sr__free(back);
  sr__free(s);
}

/* ------------------------------------------------------------------ */
/* name-addr                                                           */
/* ------------------------------------------------------------------ */

static void test_name_addr(void) {
  struct sr_name_addr na;
  REQUIRE(sr__name_addr_parse(&na, "\"Alice \\\"A\\\" Smith\" "
                                   "<sip:alice@a.example;transport=tcp>"
                                   ";tag=abc ; x-flag ;q = 0.5") == 0);
  CHECK_STR(sr_name_addr_display_name(&na), "Alice \"A\" Smith");
  const sr_uri *u = sr_name_addr_uri(&na);
  CHECK_STR(sr_uri_user(u), "alice");
  CHECK_STR(sr_uri_host(u), "a.example");
  CHECK_INT(sr_uri_param_count(u), 1);
  CHECK_STR(sr_uri_param_name(u, 0), "transport");
  CHECK_INT(sr_name_addr_param_count(&na), 3);
  CHECK_STR(sr_name_addr_param_name(&na, 0), "tag");
  CHECK_STR(sr_name_addr_param_value(&na, 0), "abc");
  CHECK_STR(sr_name_addr_param_name(&na, 1), "x-flag");
  CHECK(sr_name_addr_param_value(&na, 1) == NULL);
  CHECK_STR(sr_name_addr_param_name(&na, 2), "q");
  CHECK_STR(sr_name_addr_param_value(&na, 2), "0.5");
  CHECK(sr_name_addr_param_name(&na, 3) == NULL);
  CHECK(sr_name_addr_param_value(&na, -1) == NULL);
  CHECK_STR(sr_name_addr_string(&na),
            "\"Alice \\\"A\\\" Smith\" <sip:alice@a.example;transport=tcp>"
            ";tag=abc ; x-flag ;q = 0.5");
  sr__name_addr_clear(&na);
  CHECK(na.text == NULL && na.uri.text == NULL);

  /* unquoted display name */
  REQUIRE(sr__name_addr_parse(&na, "  Bob Jones   <sip:bob@b.example>  ") == 0);
  CHECK_STR(sr_name_addr_display_name(&na), "Bob Jones");
  CHECK_STR(sr_uri_user(sr_name_addr_uri(&na)), "bob");
  CHECK_INT(sr_name_addr_param_count(&na), 0);
  CHECK_STR(sr_name_addr_string(&na), "Bob Jones   <sip:bob@b.example>");
  sr__name_addr_clear(&na);

  /* bare <uri>, with URI headers inside the brackets */
  REQUIRE(sr__name_addr_parse(
              &na, "<sip:carol@c.example?Replaces=x%40y%3Bto-tag%3D1>") == 0);
  CHECK(sr_name_addr_display_name(&na) == NULL);
  u = sr_name_addr_uri(&na);
  CHECK_INT(sr_uri_header_count(u), 1);
  CHECK_STR(sr_uri_header_name(u, 0), "Replaces");
  CHECK_STR(sr_uri_header_value(u, 0), "x@y;to-tag=1");
  sr__name_addr_clear(&na);

  /* empty quoted display name counts as none; no space before '<' */
  REQUIRE(sr__name_addr_parse(&na, "\"\"<sip:d@d.example>") == 0);
  CHECK(sr_name_addr_display_name(&na) == NULL);
  sr__name_addr_clear(&na);

  /* quoted display containing '<', '>' and ',' */
  REQUIRE(sr__name_addr_parse(&na, "\"a <b>, c\" <sip:e@e.example>") == 0);
  CHECK_STR(sr_name_addr_display_name(&na), "a <b>, c");
  sr__name_addr_clear(&na);

  /* addr-spec: the ;params belong to the header, not the URI */
  REQUIRE(sr__name_addr_parse(&na, "sip:alice@a.example;tag=xyz;lr") == 0);
  CHECK(sr_name_addr_display_name(&na) == NULL);
  u = sr_name_addr_uri(&na);
  CHECK_STR(sr_uri_string(u), "sip:alice@a.example");
  CHECK_INT(sr_uri_param_count(u), 0);
  CHECK_INT(sr_name_addr_param_count(&na), 2);
  CHECK_STR(sr_name_addr_param_name(&na, 0), "tag");
  CHECK_STR(sr_name_addr_param_value(&na, 0), "xyz");
  CHECK_STR(sr_name_addr_param_name(&na, 1), "lr");
  sr__name_addr_clear(&na);

  /* quoted parameter value kept as received; IPv6 value */
  REQUIRE(sr__name_addr_parse(
              &na, "<sip:a@b>;cid=\"x;y\\\"z\";received=[::1]") == 0);
  CHECK_INT(sr_name_addr_param_count(&na), 2);
  CHECK_STR(sr_name_addr_param_value(&na, 0), "\"x;y\\\"z\"");
  CHECK_STR(sr_name_addr_param_value(&na, 1), "[::1]");
  sr__name_addr_clear(&na);

  /* tel: inside a name-addr */
  REQUIRE(sr__name_addr_parse(&na, "<tel:+15550100>") == 0);
  CHECK_STR(sr_uri_scheme(sr_name_addr_uri(&na)), "tel");
  CHECK_STR(sr_uri_user(sr_name_addr_uri(&na)), "+15550100");
  sr__name_addr_clear(&na);

  /* NULL views */
  CHECK(sr_name_addr_display_name(NULL) == NULL);
  CHECK(sr_name_addr_uri(NULL) == NULL);
  CHECK_INT(sr_name_addr_param_count(NULL), 0);
  CHECK(sr_name_addr_param_name(NULL, 0) == NULL);
  CHECK(sr_name_addr_param_value(NULL, 0) == NULL);
  CHECK(sr_name_addr_string(NULL) == NULL);
}

static void test_name_addr_errors(void) {
  static const char *const bad[] = {
      "",
      "\"Alice <sip:alice@a.example>",     /* unbalanced quote */
      "\"Alice\\\" <sip:alice@a.example>", /* the quote is escaped */
      "\"Alice\\",
      "<sip:alice@a.example",              /* no '>' */
      "Alice sip:alice@a.example>",
      "\"Alice\" sip:alice@a.example",     /* quoted display, no '<' */
      "\"A\" \"B\" <sip:a@b>",
      "Al\"ice <sip:a@b>",
      "<<sip:a@b>>",
      "<sip:a@b>>",
      "<>",
      "<sip:a@b> junk",
      "<sip:a@b>;",
      "<sip:a@b>;=x",
      "<sip:a@b>;tag=\"open",
      "<sip:a@b>;tag=a/b",
      "sip:a@b?Replaces=x",                /* addr-spec with headers */
      "sip:a@b,sip:c@d",                   /* addr-spec with a comma */
      ";tag=1",
      "<sip:a@b>\r\n;tag=1",
      "Alice\x01 <sip:a@b>",
      "<sip:a@b?X=%zz>",                   /* bad escape inside */
      "<sip:a@b?X=%4>",
      "<not a uri>",
      "alice@example.com",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct sr_name_addr na;
    memset(&na, 0x5a, sizeof na);
    int rc = sr__name_addr_parse(&na, bad[i]);
    if (rc != SR_EPARSE) fprintf(stderr, "  accepted: \"%s\"\n", bad[i]);
    CHECK_INT(rc, SR_EPARSE);
    CHECK(na.text == NULL && na.display == NULL && na.params == NULL &&
          na.uri.text == NULL);
  }
  struct sr_name_addr na;
  CHECK_INT(sr__name_addr_parse(&na, NULL), SR_EINVAL);
  CHECK_INT(sr__name_addr_parse(NULL, "<sip:a@b>"), SR_EINVAL);
  sr__name_addr_clear(NULL);

  /* 60 KiB display name */
  size_t big = 60 * 1024;
  char *s = malloc(big + 64);
  REQUIRE(s != NULL);
  s[0] = '"';
  memset(s + 1, 'x', big);
  strcpy(s + 1 + big, "\" <sip:a@b>;tag=1");
  REQUIRE(sr__name_addr_parse(&na, s) == 0);
  CHECK_INT(strlen(sr_name_addr_display_name(&na)), big);
  CHECK_STR(sr_name_addr_param_value(&na, 0), "1");
  sr__name_addr_clear(&na);
  /* ... unterminated */
  strcpy(s + 1 + big, " <sip:a@b>");
  CHECK_INT(sr__name_addr_parse(&na, s), SR_EPARSE);
  /* a long run of backslashes ending the string */
  memset(s + 1, '\\', big);
  s[1 + big] = '\0';
  CHECK_INT(sr__name_addr_parse(&na, s), SR_EPARSE);
  free(s);
}

/* ------------------------------------------------------------------ */
/* Header names                                                        */
/* ------------------------------------------------------------------ */

static void test_header_canonical(void) {
  static const char *const map[][2] = {
      {"i", "call-id"},           {"m", "contact"},
      {"e", "content-encoding"},  {"l", "content-length"},
      {"c", "content-type"},      {"f", "from"},
      {"s", "subject"},           {"k", "supported"},
      {"t", "to"},                {"v", "via"},
      {"r", "refer-to"},          {"b", "referred-by"},
      {"o", "event"},             {"u", "allow-events"},
      {"x", "session-expires"},   {"a", "accept-contact"},
      {"j", "reject-contact"},    {"d", "request-disposition"},
      {"y", "identity"},          {"n", "identity-info"},
      {"R", "refer-to"},          {"Refer-To", "refer-to"},
      {"CALL-ID", "call-id"},     {"z", "z"},
      {"X-Custom", "x-custom"},   {"", ""},
  };
  char out[64];
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
    sr__header_canonical(map[i][0], out, sizeof out);
    CHECK_STR(out, map[i][1]);
  }
  char small[4];
  sr__header_canonical("Content-Type", small, sizeof small);
  CHECK_STR(small, "con");
  sr__header_canonical("l", small, sizeof small);
  CHECK_STR(small, "con");
  sr__header_canonical(NULL, out, sizeof out);
  CHECK_STR(out, "");
  sr__header_canonical("x", out, 0); /* no room: writes nothing */
  sr__header_canonical("x", NULL, 10);
}

/* ------------------------------------------------------------------ */
/* Request view                                                        */
/* ------------------------------------------------------------------ */

static const char refer_msg[] =
    "REFER sip:bob@192.0.2.4:5060;transport=udp SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1, SIP/2.0/UDP "
    "proxy.example;branch=z9hG4bK2\r\n"
    "v: SIP/2.0/TCP [2001:db8::9];branch=z9hG4bK3\r\n"
    "Max-Forwards: 70\r\n"
    "f: \"Alice, the first\" <sip:alice@a.example>;tag=1928301774\r\n"
    "t: <sip:bob@b.example>;tag=a6c85cf\r\n"
    "i: a84b4c76e66710@pc33.atlanta.example\r\n"
    "CSeq: 314159 REFER\r\n"
    "m: <sip:alice@192.0.2.1>, \"Other, Name\" <sip:a2@x>;q=0.1\r\n"
    "r: <sip:carol@c.example?Replaces=1%40x%3Bto-tag%3D2%3Bfrom-tag%3D3>\r\n"
    "b: <sip:alice@a.example>\r\n"
    "Supported: replaces,\r\n"
    " norefersub , timer\r\n"
    "Allow: INVITE, ACK,, BYE\r\n"
    "Subject: one, two\r\n"
    "\tthree\r\n"
    "Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n"
    "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\n"
    "X-Empty:\r\n"
    "Refer-Sub:false\r\n"
    "Content-Type: message/sipfrag\r\n"
    "l: 14\r\n"
    "\r\n"
    "SIP/2.0 200 OKtrailing";

static void test_request_basic(void) {
  struct sr_request r;
  REQUIRE(sr__request_init(&r, refer_msg, sizeof refer_msg - 1) == 0);
  CHECK_STR(sr_request_method(&r), "REFER");
  CHECK_STR(sr_request_ruri(&r), "sip:bob@192.0.2.4:5060;transport=udp");
  CHECK_STR(sr_request_text(&r), refer_msg);

  /* Via: two in one line (split) plus a compact line */
  CHECK_INT(sr_request_header_count(&r, "via"), 3);
  CHECK_INT(sr_request_header_count(&r, "V"), 3);
  CHECK_STR(sr_request_header(&r, "Via", 0),
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1");
  CHECK_STR(sr_request_header(&r, "via", 1),
            "SIP/2.0/UDP proxy.example;branch=z9hG4bK2");
  CHECK_STR(sr_request_header(&r, "v", 2),
            "SIP/2.0/TCP [2001:db8::9];branch=z9hG4bK3");
  CHECK(sr_request_header(&r, "via", 3) == NULL);
  CHECK(sr_request_header(&r, "via", -1) == NULL);

  /* From is not split even with a quoted comma */
  CHECK_INT(sr_request_header_count(&r, "from"), 1);
  CHECK_STR(sr_request_header(&r, "FROM", 0),
            "\"Alice, the first\" <sip:alice@a.example>;tag=1928301774");
  CHECK_STR(sr_request_header(&r, "f", 0),
            "\"Alice, the first\" <sip:alice@a.example>;tag=1928301774");
  CHECK_STR(sr_request_header(&r, "To", 0), "<sip:bob@b.example>;tag=a6c85cf");
  CHECK_STR(sr_request_header(&r, "Call-ID", 0),
            "a84b4c76e66710@pc33.atlanta.example");
  CHECK_STR(sr_request_header(&r, "i", 0),
            "a84b4c76e66710@pc33.atlanta.example");
  CHECK_STR(sr_request_header(&r, "cseq", 0), "314159 REFER");

  /* Contact split outside quotes */
  CHECK_INT(sr_request_header_count(&r, "Contact"), 2);
  CHECK_STR(sr_request_header(&r, "contact", 0), "<sip:alice@192.0.2.1>");
  CHECK_STR(sr_request_header(&r, "m", 1),
            "\"Other, Name\" <sip:a2@x>;q=0.1");

  CHECK_INT(sr_request_header_count(&r, "refer-to"), 1);
  CHECK_STR(sr_request_header(&r, "Refer-To", 0),
            "<sip:carol@c.example?Replaces=1%40x%3Bto-tag%3D2%3Bfrom-tag%3D3>");
  CHECK_STR(sr_request_header(&r, "r", 0),
            "<sip:carol@c.example?Replaces=1%40x%3Bto-tag%3D2%3Bfrom-tag%3D3>");
  CHECK_STR(sr_request_header(&r, "Referred-By", 0), "<sip:alice@a.example>");
  CHECK_STR(sr_request_header(&r, "b", 0), "<sip:alice@a.example>");

  /* folded list header, empty items dropped */
  CHECK_INT(sr_request_header_count(&r, "k"), 3);
  CHECK_STR(sr_request_header(&r, "supported", 0), "replaces");
  CHECK_STR(sr_request_header(&r, "supported", 1), "norefersub");
  CHECK_STR(sr_request_header(&r, "supported", 2), "timer");
  CHECK_INT(sr_request_header_count(&r, "allow"), 3);
  CHECK_STR(sr_request_header(&r, "allow", 2), "BYE");

  /* folded, not a list */
  CHECK_INT(sr_request_header_count(&r, "s"), 1);
  CHECK_STR(sr_request_header(&r, "Subject", 0), "one, two three");
  CHECK_INT(sr_request_header_count(&r, "date"), 1);
  CHECK_STR(sr_request_header(&r, "Date", 0), "Sat, 13 Nov 2010 23:29:00 GMT");
  CHECK_INT(sr_request_header_count(&r, "www-authenticate"), 1);
  CHECK_STR(sr_request_header(&r, "X-Empty", 0), "");
  CHECK_STR(sr_request_header(&r, "refer-sub", 0), "false");
  CHECK_STR(sr_request_header(&r, "c", 0), "message/sipfrag");
  CHECK_INT(sr_request_header_count(&r, "x-missing"), 0);
  CHECK(sr_request_header(&r, "x-missing", 0) == NULL);
  CHECK_INT(sr_request_header_count(&r, ""), 0);
  CHECK_INT(sr_request_header_count(&r, NULL), 0);
  CHECK(sr_request_header(&r, NULL, 0) == NULL);

  /* body length per Content-Length (compact "l") */
  CHECK_INT(sr_request_body_length(&r), 14);
  CHECK(memcmp(sr_request_body(&r), "SIP/2.0 200 OK", 14) == 0);
  sr__request_clear(&r);
  CHECK(r.text == NULL && r.hdrs == NULL && r.nhdrs == 0);
  sr__request_clear(&r);
  sr__request_clear(NULL);

  /* NULL views */
  CHECK(sr_request_method(NULL) == NULL);
  CHECK(sr_request_ruri(NULL) == NULL);
  CHECK_INT(sr_request_header_count(NULL, "via"), 0);
  CHECK(sr_request_header(NULL, "via", 0) == NULL);
  CHECK(sr_request_body(NULL) == NULL);
  CHECK_INT(sr_request_body_length(NULL), 0);
  CHECK(sr_request_text(NULL) == NULL);
}

static void test_request_body_rules(void) {
  struct sr_request r;
  /* LF-only line endings, no Content-Length: all remaining bytes */
  const char m1[] = "INVITE sip:b@b SIP/2.0\nVia: SIP/2.0/UDP h\n"
                    "Contact: *\n\nv=0\nbody";
  REQUIRE(sr__request_init(&r, m1, sizeof m1 - 1) == 0);
  CHECK_STR(sr_request_method(&r), "INVITE");
  CHECK_INT(sr_request_header_count(&r, "contact"), 1);
  CHECK_STR(sr_request_header(&r, "contact", 0), "*");
  CHECK_INT(sr_request_body_length(&r), 8);
  CHECK_STR(sr_request_body(&r), "v=0\nbody");
  sr__request_clear(&r);

  /* Content-Length larger than what is there: what is there */
  const char m2[] = "MESSAGE sip:b@b SIP/2.0\r\nContent-Length: 999999999999999999"
                    "9999999999\r\n\r\nabc";
  REQUIRE(sr__request_init(&r, m2, sizeof m2 - 1) == 0);
  CHECK_INT(sr_request_body_length(&r), 3);
  sr__request_clear(&r);

  /* body with NUL bytes */
  const char m3[] = "MESSAGE sip:b@b SIP/2.0\r\nContent-Length: 5\r\n\r\na\0b\0cEXTRA";
  REQUIRE(sr__request_init(&r, m3, sizeof m3 - 1) == 0);
  CHECK_INT(sr_request_body_length(&r), 5);
  CHECK(memcmp(sr_request_body(&r), "a\0b\0c", 5) == 0);
  sr__request_clear(&r);

  /* no blank line at all, Content-Length 0, leading CRLFs */
  const char m4[] = "\r\n\r\nOPTIONS sip:b@b SIP/2.0\r\nContent-Length: 0\r\n";
  REQUIRE(sr__request_init(&r, m4, sizeof m4 - 1) == 0);
  CHECK_STR(sr_request_method(&r), "OPTIONS");
  CHECK_INT(sr_request_body_length(&r), 0);
  CHECK_STR(sr_request_body(&r), "");
  sr__request_clear(&r);

  /* request line only */
  const char m5[] = "BYE sip:b@b SIP/2.0";
  REQUIRE(sr__request_init(&r, m5, sizeof m5 - 1) == 0);
  CHECK_STR(sr_request_ruri(&r), "sip:b@b");
  CHECK_INT(sr_request_header_count(&r, "via"), 0);
  CHECK_INT(sr_request_body_length(&r), 0);
  sr__request_clear(&r);

  /* empty list header keeps one empty value */
  const char m6[] = "OPTIONS sip:b@b SIP/2.0\r\nSupported:\r\nAccept: ,\r\n\r\n";
  REQUIRE(sr__request_init(&r, m6, sizeof m6 - 1) == 0);
  CHECK_INT(sr_request_header_count(&r, "supported"), 1);
  CHECK_STR(sr_request_header(&r, "supported", 0), "");
  CHECK_INT(sr_request_header_count(&r, "accept"), 1);
  sr__request_clear(&r);

  /* Record-Route / Route with URI params containing commas in brackets */
  const char m7[] = "INVITE sip:b@b SIP/2.0\r\n"
                    "Record-Route: <sip:p1;lr;x=a,b>, <sip:p2;lr>\r\n"
                    "Route: <sip:p3;lr>\r\nroute: <sip:p4;lr>,<sip:p5>\r\n\r\n";
  REQUIRE(sr__request_init(&r, m7, sizeof m7 - 1) == 0);
  CHECK_INT(sr_request_header_count(&r, "record-route"), 2);
  CHECK_STR(sr_request_header(&r, "record-route", 0), "<sip:p1;lr;x=a,b>");
  CHECK_INT(sr_request_header_count(&r, "Route"), 3);
  CHECK_STR(sr_request_header(&r, "route", 2), "<sip:p5>");
  sr__request_clear(&r);

  /* two Refer-To values in one line count as two */
  const char m8[] = "REFER sip:b@b SIP/2.0\r\nRefer-To: <sip:a@a>, <sip:c@c>\r\n\r\n";
  REQUIRE(sr__request_init(&r, m8, sizeof m8 - 1) == 0);
  CHECK_INT(sr_request_header_count(&r, "r"), 2);
  sr__request_clear(&r);
}

static void test_request_errors(void) {
  static const struct {
    const char *m;
    size_t n;
  } bad[] = {
#define M(s) {s, sizeof s - 1}
      M(""),
      M("\r\n\r\n"),
      M("INVITE\r\n\r\n"),
      M("INVITE sip:b@b\r\n\r\n"),
      M("INVITE sip:b@b SIP/3.0\r\n\r\n"),
      M("SIP/2.0 200 OK\r\n\r\n"),                      /* a response */
      M(" INVITE sip:b@b SIP/2.0\r\n\r\n"),
      M("INV@TE sip:b@b SIP/2.0\r\n\r\n"),
      M("INVITE sip:b@b SIP/2.0 x\r\n\r\n"),
      M("INVITE sip:b@b SIP/2.0\r\n Via: x\r\n\r\n"),   /* fold, no header */
      M("INVITE sip:b@b SIP/2.0\r\nVia x\r\n\r\n"),     /* no colon */
      M("INVITE sip:b@b SIP/2.0\r\n: x\r\n\r\n"),       /* no name */
      M("INVITE sip:b@b SIP/2.0\r\nV(a): x\r\n\r\n"),   /* bad name */
      M("INVITE sip:b@b SIP/2.0\r\nX: a\rb\r\n\r\n"),   /* bare CR */
      M("INVITE sip:b@b SIP/2.0\r\nX: a\0b\r\n\r\n"),   /* NUL in header */
      M("INVITE sip:b@b SIP/2.0\r\nX: a\x1b[2J\r\n\r\n"),
      M("INVITE sip:b\0@b SIP/2.0\r\n\r\n"),
      M("INVITE sip:b@b SIP/2.0\r\nContent-Length: 12x\r\n\r\n"),
      M("INVITE sip:b@b SIP/2.0\r\nContent-Length: -1\r\n\r\n"),
      M("INVITE sip:b@b SIP/2.0\r\nContent-Length:\r\n\r\n"),
#undef M
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct sr_request r;
    memset(&r, 0x5a, sizeof r);
    int rc = sr__request_init(&r, bad[i].m, bad[i].n);
    if (rc != SR_EPARSE) fprintf(stderr, "  accepted bad request #%zu\n", i);
    CHECK_INT(rc, SR_EPARSE);
    CHECK(r.text == NULL && r.hdrs == NULL && r.method == NULL &&
          r.nhdrs == 0);
  }
  /* An unbalanced list header stays one value, for its reader to reject;
   * the rest of the request stays readable. */
  static const char *unbalanced[] = {
      "INVITE sip:b@b SIP/2.0\r\nContact: \"a <sip:a@a>\r\nX: 1\r\n\r\n",
      "INVITE sip:b@b SIP/2.0\r\nContact: <sip:a@a\r\nX: 1\r\n\r\n",
      "INVITE sip:b@b SIP/2.0\r\nContact: sip:a@a>\r\nX: 1\r\n\r\n",
      "INVITE sip:b@b SIP/2.0\r\nContact: <sip:a, <x\r\nX: 1\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof unbalanced / sizeof unbalanced[0]; i++) {
    struct sr_request u;
    CHECK_INT(sr__request_init(&u, unbalanced[i], strlen(unbalanced[i])), 0);
    CHECK_INT(sr_request_header_count(&u, "contact"), 1);
    CHECK_STR(sr_request_header(&u, "x", 0), "1");
    sr__request_clear(&u);
  }
  struct sr_request r;
  CHECK_INT(sr__request_init(&r, NULL, 0), SR_EINVAL);
  CHECK_INT(sr__request_init(NULL, "x", 1), SR_EINVAL);

  /* the unbalanced quote in a header that is not split does not matter */
  const char ok[] = "INVITE sip:b@b SIP/2.0\r\nSubject: \"open <\r\n\r\n";
  CHECK_INT(sr__request_init(&r, ok, sizeof ok - 1), 0);
  sr__request_clear(&r);
}

static void test_request_hostile(void) {
  struct sr_request r;
  /* a 60 KiB header value */
  size_t big = 60 * 1024;
  char *m = malloc(big + 256);
  REQUIRE(m != NULL);
  size_t k = (size_t)sprintf(m, "INVITE sip:b@b SIP/2.0\r\nX-Big: ");
  memset(m + k, 'q', big);
  k += big;
  k += (size_t)sprintf(m + k, "\r\n\r\n");
  REQUIRE(sr__request_init(&r, m, k) == 0);
  CHECK_INT(strlen(sr_request_header(&r, "x-big", 0)), big);
  sr__request_clear(&r);

  /* a 60 KiB list of commas and a 60 KiB header name */
  k = (size_t)sprintf(m, "INVITE sip:b@b SIP/2.0\r\nAllow: ");
  memset(m + k, ',', big);
  k += big;
  k += (size_t)sprintf(m + k, "\r\n\r\n");
  REQUIRE(sr__request_init(&r, m, k) == 0);
  CHECK_INT(sr_request_header_count(&r, "allow"), 1);
  sr__request_clear(&r);
  k = (size_t)sprintf(m, "INVITE sip:b@b SIP/2.0\r\n");
  memset(m + k, 'N', big);
  k += big;
  k += (size_t)sprintf(m + k, ": v\r\n\r\n");
  REQUIRE(sr__request_init(&r, m, k) == 0);
  CHECK_INT(r.nhdrs, 1);
  CHECK_INT(strlen(r.hdrs[0].name), big);
  sr__request_clear(&r);
  free(m);

  /* 1000 Via values in one line and 1000 folded continuation lines */
  m = malloc(1000 * 40 + 256);
  REQUIRE(m != NULL);
  k = (size_t)sprintf(m, "INVITE sip:b@b SIP/2.0\r\nVia: ");
  for (int i = 0; i < 1000; i++)
    k += (size_t)sprintf(m + k, "%sSIP/2.0/UDP h%d", i ? ", " : "", i);
  k += (size_t)sprintf(m + k, "\r\nX-Fold: a");
  for (int i = 0; i < 1000; i++) k += (size_t)sprintf(m + k, "\r\n b");
  k += (size_t)sprintf(m + k, "\r\n\r\n");
  REQUIRE(sr__request_init(&r, m, k) == 0);
  CHECK_INT(sr_request_header_count(&r, "via"), 1000);
  CHECK_STR(sr_request_header(&r, "via", 999), "SIP/2.0/UDP h999");
  CHECK_INT(strlen(sr_request_header(&r, "x-fold", 0)), 1 + 2 * 1000);
  sr__request_clear(&r);
  free(m);

  /* every truncation of a valid message parses or fails cleanly */
  for (size_t n = 0; n <= sizeof refer_msg - 1; n++) {
    char *copy = malloc(n ? n : 1); /* exact size, so ASan sees overreads */
    REQUIRE(copy != NULL);
    memcpy(copy, refer_msg, n);
    int rc = sr__request_init(&r, copy, n);
    CHECK(rc == 0 || rc == SR_EPARSE);
    if (rc == 0) {
      CHECK(sr_request_body_length(&r) <= n);
      sr__request_clear(&r);
    }
    free(copy);
  }
}

/* ------------------------------------------------------------------ */
/* sipfrag, reason phrases, extra headers, errors                      */
/* ------------------------------------------------------------------ */

static void test_sipfrag(void) {
  int code = 0;
  char *reason = NULL;
  const char b1[] = "SIP/2.0 200 OK\r\nContent-Type: application/sdp\r\n";
  REQUIRE(sr__sipfrag_parse(b1, sizeof b1 - 1, &code, &reason) == 0);
  CHECK_INT(code, 200);
  CHECK_STR(reason, "OK");
  sr__free(reason);
  reason = NULL;

  /* no trailing CRLF, and the buffer is not NUL-terminated */
  char b2[] = {'S', 'I', 'P', '/', '2', '.', '0', ' ', '1', '8', '0',
               ' ', 'R', 'i', 'n', 'g', 'i', 'n', 'g'};
  char *heap = malloc(sizeof b2);
  REQUIRE(heap != NULL);
  memcpy(heap, b2, sizeof b2);
  REQUIRE(sr__sipfrag_parse(heap, sizeof b2, &code, &reason) == 0);
  CHECK_INT(code, 180);
  CHECK_STR(reason, "Ringing");
  sr__free(reason);
  reason = NULL;
  /* prefix "SIP/2.0 180" alone */
  REQUIRE(sr__sipfrag_parse(heap, 11, &code, &reason) == 0);
  CHECK_INT(code, 180);
  CHECK_STR(reason, "");
  sr__free(reason);
  reason = NULL;
  for (size_t n = 0; n < 11; n++)
    CHECK_INT(sr__sipfrag_parse(heap, n, &code, &reason), SR_EPARSE);
  free(heap);

  REQUIRE(sr__sipfrag_parse("SIP/2.0 603 Decline \n", 21, &code, &reason) ==
          0);
  CHECK_INT(code, 603);
  CHECK_STR(reason, "Decline");
  sr__free(reason);
  reason = NULL;
  REQUIRE(sr__sipfrag_parse("\r\nSIP/2.0 100 Trying", 20, &code, &reason) == 0);
  CHECK_INT(code, 100);
  sr__free(reason);
  reason = NULL;
  REQUIRE(sr__sipfrag_parse("SIP/2.0 486 Busy Here\r", 22, &code, &reason) ==
          0);
  CHECK_STR(reason, "Busy Here");
  sr__free(reason);
  reason = NULL;

  static const char *const bad[] = {
      "",
      "SIP/2.0",
      "SIP/2.0 ",
      "SIP/2.0 99 Low",
      "SIP/2.0 700 High",
      "SIP/2.0 099 Low",
      "SIP/2.0 2000 OK",
      "SIP/2.0 20 OK",
      "SIP/2.0  200 OK",
      "SIP/2.0 2x0 OK",
      "SIP/1.0 200 OK",
      "SIP/2.0\t200 OK",
      "INVITE sip:a@b SIP/2.0",
      "SIP/2.0 200 O\x01K",
  };
  code = -1;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_INT(sr__sipfrag_parse(bad[i], strlen(bad[i]), &code, &reason),
              SR_EPARSE);
  }
  CHECK_INT(sr__sipfrag_parse("SIP/2.0 200 O\0K", 15, &code, &reason),
            SR_EPARSE);
  CHECK(code == -1 && reason == NULL); /* untouched on failure */
  CHECK_INT(sr__sipfrag_parse(NULL, 0, &code, &reason), SR_EPARSE);
  CHECK_INT(sr__sipfrag_parse("SIP/2.0 200 OK", 14, NULL, &reason), SR_EINVAL);
  CHECK_INT(sr__sipfrag_parse("SIP/2.0 200 OK", 14, &code, NULL), SR_EINVAL);
}

static void test_reason_phrases(void) {
  CHECK_STR(sr__reason_phrase(100), "Trying");
  CHECK_STR(sr__reason_phrase(180), "Ringing");
  CHECK_STR(sr__reason_phrase(183), "Session Progress");
  CHECK_STR(sr__reason_phrase(200), "OK");
  CHECK_STR(sr__reason_phrase(202), "Accepted");
  CHECK_STR(sr__reason_phrase(302), "Moved Temporarily");
  CHECK_STR(sr__reason_phrase(400), "Bad Request");
  CHECK_STR(sr__reason_phrase(401), "Unauthorized");
  CHECK_STR(sr__reason_phrase(403), "Forbidden");
  CHECK_STR(sr__reason_phrase(404), "Not Found");
  CHECK_STR(sr__reason_phrase(405), "Method Not Allowed");
  CHECK_STR(sr__reason_phrase(407), "Proxy Authentication Required");
  CHECK_STR(sr__reason_phrase(408), "Request Timeout");
  CHECK_STR(sr__reason_phrase(415), "Unsupported Media Type");
  CHECK_STR(sr__reason_phrase(416), "Unsupported URI Scheme");
  CHECK_STR(sr__reason_phrase(420), "Bad Extension");
  CHECK_STR(sr__reason_phrase(429), "Provide Referrer Identity");
  CHECK_STR(sr__reason_phrase(480), "Temporarily Unavailable");
  CHECK_STR(sr__reason_phrase(481), "Call/Transaction Does Not Exist");
  CHECK_STR(sr__reason_phrase(486), "Busy Here");
  CHECK_STR(sr__reason_phrase(487), "Request Terminated");
  CHECK_STR(sr__reason_phrase(488), "Not Acceptable Here");
  CHECK_STR(sr__reason_phrase(489), "Bad Event");
  CHECK_STR(sr__reason_phrase(491), "Request Pending");
  CHECK_STR(sr__reason_phrase(500), "Server Internal Error");
  CHECK_STR(sr__reason_phrase(501), "Not Implemented");
  CHECK_STR(sr__reason_phrase(503), "Service Unavailable");
  CHECK_STR(sr__reason_phrase(504), "Server Time-out");
  CHECK_STR(sr__reason_phrase(600), "Busy Everywhere");
  CHECK_STR(sr__reason_phrase(603), "Decline");
  CHECK_STR(sr__reason_phrase(604), "Does Not Exist Anywhere");
  CHECK_STR(sr__reason_phrase(606), "Not Acceptable");
  CHECK_STR(sr__reason_phrase(299), "Unknown");
  CHECK_STR(sr__reason_phrase(0), "Unknown");
  CHECK_STR(sr__reason_phrase(-1), "Unknown");
  CHECK_STR(sr__reason_phrase(1000000), "Unknown");
}

typedef struct {
  int calls;
  char seen[512];
  int stop_at;
} hctx;

static int collect(const char *name, const char *value, void *ctx) {
  hctx *c = ctx;
  c->calls++;
  size_t k = strlen(c->seen);
  snprintf(c->seen + k, sizeof c->seen - k, "[%s|%s]", name, value);
  return c->stop_at && c->calls == c->stop_at ? -42 : 0;
}

static void test_headers_foreach(void) {
  hctx c = {0};
  CHECK_INT(sr__headers_foreach("X-A: 1\r\nX-B:two  \nSubject :  hi there\r\n"
                                "\r\nX-Empty:\r\nX-Tab:\ta\tb",
                                collect, &c),
            0);
  CHECK_INT(c.calls, 5);
  CHECK_STR(c.seen, "[X-A|1][X-B|two][Subject|hi there][X-Empty|][X-Tab|a\tb]");

  static const char *const bad[] = {
      "X-A: 1\r\nnocolon\r\n",
      "X-A: 1\r\n: novalue\r\n",
      "X-A: 1\r\nX-B: a\rInjected: 1\r\n",  /* bare CR */
      "X-A: 1\r\n folded\r\n",              /* continuation line */
      "X A: 1",                             /* space in name */
      "X-A@: 1",
      "X-\xc3\xa9: 1",                      /* non-token name */
      "X-A: a\x01",
      "X-A: a\x7f",
      "\tX-A: 1",
      "X-A 1",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&c, 0, sizeof c);
    CHECK_INT(sr__headers_foreach(bad[i], collect, &c), SR_EINVAL);
    CHECK_INT(c.calls, 0); /* nothing called when any line is bad */
  }
  memset(&c, 0, sizeof c);
  CHECK_INT(sr__headers_foreach(NULL, collect, &c), 0);
  CHECK_INT(sr__headers_foreach("", collect, &c), 0);
  CHECK_INT(sr__headers_foreach("\r\n\n", collect, &c), 0);
  CHECK_INT(c.calls, 0);
  CHECK_INT(sr__headers_foreach("X: 1", NULL, NULL), SR_EINVAL);

  /* the callback's error stops the walk and is returned */
  memset(&c, 0, sizeof c);
  c.stop_at = 2;
  CHECK_INT(sr__headers_foreach("A: 1\nB: 2\nC: 3", collect, &c), -42);
  CHECK_INT(c.calls, 2);
}

static void test_errors_version(void) {
  static const int codes[] = {SR_OK,        SR_EINVAL,   SR_ENOMEM,
                              SR_ECLOSED,   SR_ESTATE,   SR_EPARSE,
                              SR_EIO,       SR_EADDR,    SR_ETOOBIG,
                              SR_ETRANSPORT, SR_ECALLBACK, SR_ELIMIT,
                              SR_EROLE,     SR_EALREADY};
  const char *unknown = sr_strerror(12345);
  CHECK(unknown != NULL);
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    const char *s = sr_strerror(codes[i]);
    CHECK(s != NULL && *s && strcmp(s, unknown) != 0);
  }
  CHECK_STR(sr_strerror(SR_EPARSE), "parse error");
  CHECK(sr_strerror(-1) != NULL);
  CHECK_STR(sr_version(), SR_VERSION);
}

static void test_null_uri_views(void) {
  CHECK(sr_uri_scheme(NULL) == NULL);
  CHECK(sr_uri_user(NULL) == NULL);
  CHECK(sr_uri_host(NULL) == NULL);
  CHECK_INT(sr_uri_port(NULL), 0);
  CHECK_INT(sr_uri_param_count(NULL), 0);
  CHECK(sr_uri_param_name(NULL, 0) == NULL);
  CHECK(sr_uri_param_value(NULL, 0) == NULL);
  CHECK_INT(sr_uri_header_count(NULL), 0);
  CHECK(sr_uri_header_name(NULL, 0) == NULL);
  CHECK(sr_uri_header_value(NULL, 0) == NULL);
  CHECK(sr_uri_string(NULL) == NULL);
  /* a zeroed (cleared) view answers without crashing */
  struct sr_uri u;
  memset(&u, 0, sizeof u);
  CHECK(sr_uri_param_name(&u, 0) == NULL);
  CHECK(sr_uri_header_value(&u, 0) == NULL);
  struct sr_request r;
  memset(&r, 0, sizeof r);
  CHECK_INT(sr_request_header_count(&r, "via"), 0);
  CHECK(sr_request_header(&r, "via", 0) == NULL);
  CHECK_STR(sr_request_body(&r), "");
}

int main(void) {
  RUN(test_uri_basic);
  RUN(test_uri_params_headers);
  RUN(test_uri_other_schemes);
  RUN(test_uri_errors);
  RUN(test_uri_hostile);
  RUN(test_escapes);
  RUN(test_name_addr);
  RUN(test_name_addr_errors);
  RUN(test_header_canonical);
  RUN(test_request_basic);
  RUN(test_request_body_rules);
  RUN(test_request_errors);
  RUN(test_request_hostile);
  RUN(test_sipfrag);
  RUN(test_reason_phrases);
  RUN(test_headers_foreach);
  RUN(test_errors_version);
  RUN(test_null_uri_views);
  return DONE();
}
