/* The result cache through the C door: a miss that runs and stores, a hit in
 * a new pool (the cache survives the process's pools), TTL expiry, a touched
 * read file, a changed definition (payload, cache_key, writes), a changed
 * read list, failures never stored, the default directory beside lock_dir
 * (made only when a task caches), older struct sizes, and bad input. Pools
 * run at 1, 2, 4 and 8 workers; every wait has a timeout. */
#define _POSIX_C_SOURCE 200809L
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];
static char cache_dir[300];
static char input[300];
static int calls;

/* Output: "<payload> #<call number>", so a reused result is recognisable. */
static int compute(tg_task_ctx *ctx, void *user) {
  (void)user;
  int n = at_add(&calls, 1);
  size_t len = 0;
  const char *p = tg_task_payload(ctx, &len);
  char out[128];
  int k = snprintf(out, sizeof out, "%.*s #%d", (int)len, p ? p : "", n);
  if (len >= 4 && memcmp(p, "fail", 4) == 0) {
    tg_task_set_error(ctx, "asked to fail");
    return 1;
  }
  tg_task_set_output(ctx, out, (size_t)k);
  return 0;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  CHECK(f != NULL, "open %s", path);
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

static tg_pool *cache_pool(uint32_t workers, const char *dir) {
  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.workers = workers;
  o.cache_dir = dir;
  tg_pool *p = NULL;
  CHECK_RC(tg_pool_create(&o, &p), TG_OK);
  return p;
}

typedef struct {
  const char *id;
  const char *payload;
  int64_t ttl_ms;
  const char *key;
  const char *read;
  const char *write;
} spec;

/* Runs one task in the pool and fills *r (pool-owned until destroy). */
static int run_one(tg_pool *p, spec s, tg_result *r) {
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.id = s.id;
  d.fn = compute;
  d.payload = s.payload;
  d.payload_len = strlen(s.payload);
  d.cache_ttl_ms = s.ttl_ms;
  d.cache_key = s.key;
  const char *reads[1] = {s.read};
  const char *writes[1] = {s.write};
  if (s.read) {
    d.reads = reads;
    d.n_reads = 1;
  }
  if (s.write) {
    d.writes = writes;
    d.n_writes = 1;
  }
  int rc = tg_pool_submit(p, &d, NULL);
  if (rc != TG_OK) return rc;
  CHECK_RC(tg_pool_wait(p, s.id, WAIT_MS), TG_OK);
  *r = (tg_result)TG_RESULT_INIT;
  CHECK_RC(tg_pool_result(p, s.id, r), TG_OK);
  return TG_OK;
}

static int output_is(const tg_result *r, const char *want) {
  return r->output && r->output_len == strlen(want) && memcmp(r->output, want, r->output_len) == 0;
}

static int reason_starts(const tg_result *r, const char *code) {
  return r->cache_reason && strncmp(r->cache_reason, code, strlen(code)) == 0;
}

/* One task through fresh pools: miss, hit, and each way to invalidate. */
static void test_hit_and_invalidation(uint32_t workers) {
  char dir[400];
  snprintf(dir, sizeof dir, "%s/w%u", cache_dir, workers);
  at_store(&calls, 0);
  write_file(input, "version 1\n");
  spec s = {"build", "alpha", 60000, "v1", input, NULL};
  tg_result r;

  tg_pool *p = cache_pool(workers, dir);
  CHECK_RC(run_one(p, s, &r), TG_OK);
  CHECK(r.status == TG_STATUS_SUCCEEDED && output_is(&r, "alpha #1"), "first run computes");
  CHECK(r.flags & TG_RESULT_CACHE_MISS, "first run is a miss (flags 0x%x)", r.flags);
  CHECK(!(r.flags & TG_RESULT_CACHE_HIT), "not a hit");
  CHECK(reason_starts(&r, "absent"), "miss says absent: %s", r.cache_reason ? r.cache_reason : "(null)");
  CHECK(r.attempts == 1, "it ran once");
  CHECK_RC(tg_pool_destroy(p), TG_OK);

  /* A new pool reads the entry from disk: a hit, and the processor does not run. */
  p = cache_pool(workers, dir);
  CHECK_RC(run_one(p, s, &r), TG_OK);
  CHECK(r.status == TG_STATUS_SUCCEEDED && output_is(&r, "alpha #1"), "hit gives the stored output (%.*s)",
        (int)r.output_len, r.output ? (const char *)r.output : "");
  CHECK(r.flags & TG_RESULT_CACHE_HIT, "second run is a hit (flags 0x%x)", r.flags);
  CHECK(r.cache_reason == NULL, "a hit has no miss reason");
  CHECK(r.attempts == 0, "a hit makes no attempt (attempts %u)", r.attempts);
  CHECK(r.worker >= 0 && r.worker < (int32_t)workers, "a hit names its worker (%d)", r.worker);
  CHECK(at_load(&calls) == 1, "processor ran once in all (%d)", at_load(&calls));
  CHECK_RC(tg_pool_destroy(p), TG_OK);

  /* Touch the read file: same size, later mtime. */
  struct timespec ts[2] = {{0, UTIME_OMIT}, {0, 0}};
  struct stat st;
  CHECK(stat(input, &st) == 0, "stat input");
  ts[1].tv_sec = st.st_mtim.tv_sec + 10;
  ts[1].tv_nsec = st.st_mtim.tv_nsec;
  CHECK(utimensat(AT_FDCWD, input, ts, 0) == 0, "touch input");
  p = cache_pool(workers, dir);
  CHECK_RC(run_one(p, s, &r), TG_OK);
  CHECK(output_is(&r, "alpha #2") && (r.flags & TG_RESULT_CACHE_MISS), "touched read file: ran again");
  CHECK(reason_starts(&r, "read_changed") && strstr(r.cache_reason, input) != NULL, "reason names the file: %s",
        r.cache_reason ? r.cache_reason : "(null)");
  CHECK_RC(tg_pool_destroy(p), TG_OK);

  /* Rewritten with another size. */
  write_file(input, "version 2, longer\n");
  p = cache_pool(workers, dir);
  CHECK_RC(run_one(p, s, &r), TG_OK);
  CHECK(output_is(&r, "alpha #3") && reason_starts(&r, "read_changed"), "rewritten read file: %s",
        r.cache_reason ? r.cache_reason : "(null)");
  CHECK_RC(run_one(p, (spec){"build-again", "alpha", 60000, "v1", input, NULL}, &r), TG_OK);
  CHECK(reason_starts(&r, "absent"), "entries are per task id");
  CHECK_RC(tg_pool_destroy(p), TG_OK);

  /* The definition: payload, key, writes. */
  spec changed = s;
  changed.payload = "beta";
  p = cache_pool(workers, dir);
  CHECK_RC(run_one(p, changed, &r), TG_OK);
  CHECK(output_is(&r, "beta #5") && reason_starts(&r, "definition_changed"), "changed payload: %s",
        r.cache_reason ? r.cache_reason : "(null)");
  CHECK_RC(tg_pool_destroy(p), TG_OK);
  p = cache_pool(workers, dir);
  CHECK_RC(run_one(p, changed, &r), TG_OK);
  CHECK(output_is(&r, "beta #5") && (r.flags & TG_RESULT_CACHE_HIT), "the new definition hits");
  CHECK_RC(tg_pool_destroy(p), TG_OK);
  changed.key = "v2";
  p = cache_pool(workers, dir);
  CHECK_RC(run_one(p, changed, &r), TG_OK);
  CHECK(reason_starts(&r, "definition_changed"), "changed cache_key misses");
  CHECK_RC(tg_pool_destroy(p), TG_OK);
  char out_path[450];
  snprintf(out_path, sizeof out_path, "%s/out-%u.txt", root, workers);
  changed.write = out_path;
  p = cache_pool(workers, dir);
  CHECK_RC(run_one(p, changed, &r), TG_OK);
  CHECK(reason_starts(&r, "definition_changed"), "changed writes miss");
  CHECK_RC(tg_pool_destroy(p), TG_OK);

  /* The read list. */
  changed.read = NULL;
  p = cache_pool(workers, dir);
  CHECK_RC(run_one(p, changed, &r), TG_OK);
  CHECK(reason_starts(&r, "reads_list_changed"), "dropped read: %s", r.cache_reason ? r.cache_reason : "(null)");
  CHECK_RC(tg_pool_destroy(p), TG_OK);
}

static void test_ttl(void) {
  char dir[400];
  snprintf(dir, sizeof dir, "%s/ttl", cache_dir);
  spec s = {"short", "gamma", 1, NULL, NULL, NULL};
  tg_result r;
  tg_pool *p = cache_pool(2, dir);
  CHECK_RC(run_one(p, s, &r), TG_OK);
  CHECK(reason_starts(&r, "absent"), "first: absent");
  CHECK_RC(tg_pool_destroy(p), TG_OK);
  sleep_us(30000); /* well past the 1 ms TTL: the entry must have expired */
  p = cache_pool(2, dir);
  CHECK_RC(run_one(p, s, &r), TG_OK);
  CHECK(reason_starts(&r, "expired") && (r.flags & TG_RESULT_CACHE_MISS), "1 ms TTL expired: %s",
        r.cache_reason ? r.cache_reason : "(null)");
  CHECK_RC(tg_pool_destroy(p), TG_OK);

  /* The TTL that counts is the task's current one: a long TTL reads the same entry as fresh. */
  s.ttl_ms = 3600 * 1000;
  p = cache_pool(2, dir);
  CHECK_RC(run_one(p, s, &r), TG_OK);
  CHECK(r.flags & TG_RESULT_CACHE_HIT, "same entry under a 1 h TTL hits");
  CHECK_RC(tg_pool_destroy(p), TG_OK);
  s.ttl_ms = TG_CACHE_NO_EXPIRY;
  p = cache_pool(2, dir);
  CHECK_RC(run_one(p, s, &r), TG_OK);
  CHECK(r.flags & TG_RESULT_CACHE_HIT, "TG_CACHE_NO_EXPIRY hits");
  CHECK_RC(tg_pool_destroy(p), TG_OK);
}

static void test_failures_not_stored(void) {
  char dir[400];
  snprintf(dir, sizeof dir, "%s/fail", cache_dir);
  spec s = {"flaky", "fail now", 60000, NULL, NULL, NULL};
  tg_result r;
  for (int round = 0; round < 2; round++) {
    tg_pool *p = cache_pool(1, dir);
    CHECK_RC(run_one(p, s, &r), TG_OK);
    CHECK(r.status == TG_STATUS_FAILED && reason_starts(&r, "absent"), "round %d: failed, nothing stored", round);
    CHECK_RC(tg_pool_destroy(p), TG_OK);
  }
}

/* Many cached tasks at once: all miss, then all hit in a new pool. */
static void test_many(uint32_t workers) {
  char dir[400];
  snprintf(dir, sizeof dir, "%s/many%u", cache_dir, workers);
  enum { N = 64 };
  tg_task_desc d[N];
  char ids[N][16], payloads[N][16];
  for (int round = 0; round < 2; round++) {
    tg_pool *p = cache_pool(workers, dir);
    for (int i = 0; i < N; i++) {
      snprintf(ids[i], sizeof ids[i], "m%d", i);
      snprintf(payloads[i], sizeof payloads[i], "p%d", i);
      d[i] = (tg_task_desc)TG_TASK_DESC_INIT;
      d[i].id = ids[i];
      d[i].fn = compute;
      d[i].payload = payloads[i];
      d[i].payload_len = strlen(payloads[i]);
      d[i].cache_ttl_ms = TG_CACHE_NO_EXPIRY;
    }
    CHECK_RC(tg_pool_submit_batch(p, d, N, NULL), TG_OK);
    CHECK_RC(tg_pool_wait_all(p, WAIT_MS), TG_OK);
    int hits = 0, misses = 0, right = 0;
    for (int i = 0; i < N; i++) {
      tg_result r = TG_RESULT_INIT;
      CHECK_RC(tg_pool_result(p, ids[i], &r), TG_OK);
      hits += (r.flags & TG_RESULT_CACHE_HIT) != 0;
      misses += (r.flags & TG_RESULT_CACHE_MISS) != 0;
      right += r.output && r.output_len > strlen(payloads[i]) && memcmp(r.output, payloads[i], strlen(payloads[i])) == 0 &&
               ((const char *)r.output)[strlen(payloads[i])] == ' ';
    }
    CHECK(right == N, "workers %u round %d: every output is its own (%d)", workers, round, right);
    if (round == 0) CHECK(misses == N && hits == 0, "workers %u: all miss first (%d/%d)", workers, misses, hits);
    else CHECK(hits == N && misses == 0, "workers %u: all hit after (%d/%d)", workers, hits, misses);
    CHECK_RC(tg_pool_destroy(p), TG_OK);
  }
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static void test_default_dir_beside_locks(void) {
  char state[400], locks[450], cache[450];
  snprintf(state, sizeof state, "%s/state", root);
  snprintf(locks, sizeof locks, "%s/locks", state);
  snprintf(cache, sizeof cache, "%s/cache", state);
  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.workers = 2;
  o.lock_dir = locks;
  tg_pool *p = NULL;
  CHECK_RC(tg_pool_create(&o, &p), TG_OK);
  tg_result r;
  CHECK_RC(run_one(p, (spec){"plain", "x", 0, NULL, NULL, NULL}, &r), TG_OK);
  CHECK(!exists(cache), "no cache directory until a task caches");
  CHECK_RC(run_one(p, (spec){"cached", "x", 1000, NULL, NULL, NULL}, &r), TG_OK);
  CHECK(exists(cache), "the cache directory is made beside the lock directory");
  CHECK(reason_starts(&r, "absent"), "first: miss");
  CHECK_RC(tg_pool_destroy(p), TG_OK);
  CHECK_RC(tg_pool_create(&o, &p), TG_OK);
  CHECK_RC(run_one(p, (spec){"cached", "x", 1000, NULL, NULL, NULL}, &r), TG_OK);
  CHECK(r.flags & TG_RESULT_CACHE_HIT, "second pool with the same lock_dir hits");
  CHECK_RC(tg_pool_destroy(p), TG_OK);
}

static void test_old_struct_sizes(void) {
  char dir[400];
  snprintf(dir, sizeof dir, "%s/old", cache_dir);
  tg_pool *p = cache_pool(1, dir);
  /* A 0.6 caller: tg_task_desc without the cache fields, tg_result without cache_reason. */
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.struct_size = (uint32_t)offsetof(tg_task_desc, cache_ttl_ms);
  d.id = "old";
  d.fn = compute;
  d.cache_ttl_ms = 12345; /* beyond the declared size: must be ignored */
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(p, "old", WAIT_MS), TG_OK);
  tg_result r = TG_RESULT_INIT;
  r.struct_size = (uint32_t)offsetof(tg_result, cache_reason);
  r.cache_reason = (const char *)&r; /* must stay untouched */
  CHECK_RC(tg_pool_result(p, "old", &r), TG_OK);
  CHECK(r.status == TG_STATUS_SUCCEEDED && !(r.flags & (TG_RESULT_CACHE_HIT | TG_RESULT_CACHE_MISS)), "old desc: no cache");
  CHECK(r.cache_reason == (const char *)&r, "old result size: cache_reason not written");
  CHECK_RC(tg_pool_destroy(p), TG_OK);

  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.struct_size = (uint32_t)offsetof(tg_pool_options, cache_dir);
  o.workers = 1;
  CHECK_RC(tg_pool_create(&o, &p), TG_OK); /* 0.6 options still accepted */
  CHECK_RC(tg_pool_destroy(p), TG_OK);
}

static void test_bad_input(void) {
  char dir[400];
  snprintf(dir, sizeof dir, "%s/bad", cache_dir);
  tg_pool *p = cache_pool(1, dir);
  tg_result r;
  CHECK_RC(run_one(p, (spec){"neg", "x", -5, NULL, NULL, NULL}, &r), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "cache_ttl_ms is -5") && strstr(tg_last_error(), "'neg'"), "names ttl and task: %s",
        tg_last_error());
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.fn = compute;
  d.cache_ttl_ms = 100;
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "needs an id") != NULL, "anonymous cached task: %s", tg_last_error());
  /* A refused batch leaves nothing behind: the same ids submit fine after. */
  tg_task_desc b[2] = {TG_TASK_DESC_INIT, TG_TASK_DESC_INIT};
  b[0].id = "b0";
  b[0].fn = compute;
  b[0].cache_ttl_ms = 100;
  b[1].id = "b1";
  b[1].fn = compute;
  b[1].cache_ttl_ms = -7;
  CHECK_RC(tg_pool_submit_batch(p, b, 2, NULL), TG_EINVAL);
  b[1].cache_ttl_ms = 100;
  CHECK_RC(tg_pool_submit_batch(p, b, 2, NULL), TG_OK);
  CHECK_RC(tg_pool_wait_all(p, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_destroy(p), TG_OK);

  /* No cache directory at all. */
  p = tap_pool(1, 0, 0);
  CHECK_RC(run_one(p, (spec){"nodir", "x", 100, NULL, NULL, NULL}, &r), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "has none") != NULL && strstr(tg_last_error(), "'nodir'"), "no cache dir: %s",
        tg_last_error());
  CHECK_RC(tg_pool_destroy(p), TG_OK);

  /* cache_dir that is a file. */
  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.cache_dir = input;
  p = NULL;
  int rc = tg_pool_create(&o, &p);
  CHECK(rc != TG_OK && p == NULL, "a file as cache_dir is refused (%d)", rc);
  CHECK(strstr(tg_last_error(), input) != NULL, "names the path: %s", tg_last_error());

  /* A corrupt entry is a miss that says so, and is replaced. */
  char entry[500];
  snprintf(dir, sizeof dir, "%s/corrupt", cache_dir);
  p = cache_pool(1, dir);
  CHECK_RC(run_one(p, (spec){"c", "x", 100000, NULL, NULL, NULL}, &r), TG_OK);
  CHECK_RC(tg_pool_destroy(p), TG_OK);
  snprintf(entry, sizeof entry, "%s/k_c.entry", dir);
  CHECK(exists(entry), "entry file %s", entry);
  write_file(entry, "{\"format\":\"taskgate-cache\",garbage\n");
  p = cache_pool(1, dir);
  CHECK_RC(run_one(p, (spec){"c", "x", 100000, NULL, NULL, NULL}, &r), TG_OK);
  CHECK(reason_starts(&r, "corrupt") && r.status == TG_STATUS_SUCCEEDED, "corrupt entry: %s",
        r.cache_reason ? r.cache_reason : "(null)");
  CHECK_RC(tg_pool_destroy(p), TG_OK);
  p = cache_pool(1, dir);
  CHECK_RC(run_one(p, (spec){"c", "x", 100000, NULL, NULL, NULL}, &r), TG_OK);
  CHECK(r.flags & TG_RESULT_CACHE_HIT, "replaced entry hits");
  CHECK_RC(tg_pool_destroy(p), TG_OK);
}

int main(void) {
  tap_init();
  snprintf(root, sizeof root, "/tmp/tg-cache-XXXXXX");
  if (!mkdtemp(root)) {
    perror("mkdtemp");
    return 1;
  }
  snprintf(cache_dir, sizeof cache_dir, "%s/cache", root);
  snprintf(input, sizeof input, "%s/input.txt", root);
  uint32_t counts[] = {1, 2, 4, 8};
  for (int k = 0; k < 4; k++) {
    test_hit_and_invalidation(counts[k]);
    test_many(counts[k]);
  }
  test_ttl();
  test_failures_not_stored();
  test_default_dir_beside_locks();
  test_old_struct_sizes();
  test_bad_input();
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (tap_failures() == 0 && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
  return tg_test_summary();
}
