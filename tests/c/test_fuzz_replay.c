/*
 * test_fuzz_replay.c — runs the fuzz targets (tests/fuzz/fuzz_*.c) over
 * their seed corpus and over every input a fuzzing run ever crashed on
 * (tests/fuzz/regressions/), with the ordinary compiler: a fixed finding
 * stays fixed, and the targets keep building. A target aborts on a broken
 * invariant, so a failure here is a crash with the input's name above it.
 *
 * The source tree is found from $SR_ROOT, else from this file's path.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LLVMFuzzerTestOneInput fuzz_receive_one
#include "../fuzz/fuzz_receive.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_parse_one
#include "../fuzz/fuzz_parse.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_message_one
#include "../fuzz/fuzz_message.c"
#undef LLVMFuzzerTestOneInput

#undef REQUIRE /* libosip2's header name; harness.h has its own */
#include "harness.h"

static char root[4096];

static void find_root(void) {
  const char *env = getenv("SR_ROOT");
  if (env && *env) {
    snprintf(root, sizeof root, "%s", env);
    return;
  }
  snprintf(root, sizeof root, "%s", __FILE__);
  char *p = strstr(root, "/tests/c/");
  if (p) *p = 0;
  else snprintf(root, sizeof root, ".");
}

static int read_file(const char *path, uint8_t **data, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  size_t cap = 4096, n = 0, k;
  uint8_t *d = malloc(cap);
  while (d && (k = fread(d + n, 1, cap - n, f)) > 0) {
    n += k;
    if (n < cap) continue;
    uint8_t *nd = realloc(d, cap *= 2);
    if (!nd) free(d);
    d = nd;
  }
  fclose(f);
  if (!d) return -1;
  *data = d;
  *len = n;
  return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
  return strcmp((*a)->d_name, (*b)->d_name);
}

/* Runs fn over each file in root/dir; returns how many, -1 if no dir. */
static int replay_dir(const char *dir, int (*fn)(const uint8_t *, size_t)) {
  char path[8192];
  snprintf(path, sizeof path, "%s/%s", root, dir);
  struct dirent **names;
  int n = scandir(path, &names, NULL, by_name), ran = 0;
  if (n < 0) return -1;
  for (int i = 0; i < n; i++) {
    char file[8192 + 256];
    struct stat st;
    snprintf(file, sizeof file, "%s/%s", path, names[i]->d_name);
    uint8_t *data;
    size_t len;
    if (names[i]->d_name[0] != '.' && stat(file, &st) == 0 && S_ISREG(st.st_mode) &&
        read_file(file, &data, &len) == 0) {
      fprintf(stderr, "  %s/%s\n", dir, names[i]->d_name);
      fn(data, len);
      free(data);
      ran++;
    }
    free(names[i]);
  }
  free(names);
  return ran;
}

static void test_receive(void) {
  int seeds = replay_dir("tests/fuzz/corpus/receive", fuzz_receive_one);
  CHECK(seeds > 10);
  replay_dir("tests/fuzz/regressions/receive", fuzz_receive_one);
  /* Every object of those inputs is gone (the target checks each too). */
  sr_stats st;
  sr_global_stats(&st);
  CHECK_INT(st.sessions + st.referrals + st.referrers, 0);
}

static void test_parse(void) {
  int seeds = replay_dir("tests/fuzz/corpus/parse", fuzz_parse_one);
  CHECK(seeds > 5);
  replay_dir("tests/fuzz/regressions/parse", fuzz_parse_one);
}

/* Our parser against libosip2's over every message seed. */
static void test_message(void) {
  int seeds = replay_dir("tests/fuzz/corpus/message", fuzz_message_one);
  CHECK(seeds > 20);
  replay_dir("tests/fuzz/regressions/message", fuzz_message_one);
}

int main(void) {
  find_root();
  RUN(test_receive);
  RUN(test_parse);
  RUN(test_message);
  return DONE();
}
