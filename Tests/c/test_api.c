/*
 * test_api.c: every function of taskgate.h, with every documented error path.
 *
 * Scheduling behaviour (ordering, exclusion, concurrency) is test_sched.c's;
 * this program checks the contract of each call: return codes, the detail in
 * tg_last_error(), the fields of results and stats, and the all-or-nothing
 * rule of batches.
 */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <pthread.h>

#include "tap.h"

/* ---- a configurable processor ------------------------------------------------ */

/* What one task does, and what it saw. Fields written by the processor are read
   by the test only after the task ended (the pool publishes the end). */
typedef struct probe {
  /* set by the test */
  int block;         /* wait for `release` (or cancellation) before finishing */
  int ignore_cancel; /* with block: only `release` ends the wait */
  int release;
  int result;          /* what the processor returns */
  const void *output;  /* set as output when non-NULL */
  size_t output_len;
  const char *error;   /* set as error message when non-NULL */
  const char *error2;  /* then replaced by this one when non-NULL */
  int workers;         /* the pool's worker count, for the range check */
  void *hook;          /* what an end hook writes into (test_end_hooks) */
  /* seen by the processor */
  int runs;
  int started;
  int returned;
  int saw_cancel;
  int cancelled_at_start;
  int worker;
  char id[64];
  size_t payload_len;
  unsigned char payload[64];
  int set_output_rc;
  int set_error_rc;
} probe_t;

static int probe_fn(tg_task_ctx *ctx, void *user) {
  probe_t *p = (probe_t *)user;
  at_add(&p->runs, 1);
  const char *id = tg_task_id(ctx);
  snprintf(p->id, sizeof p->id, "%s", id ? id : "(null)");
  size_t len = 12345;
  const unsigned char *pl = (const unsigned char *)tg_task_payload(ctx, &len);
  p->payload_len = len;
  if (pl && len <= sizeof p->payload) memcpy(p->payload, pl, len);
  (void)tg_task_payload(ctx, NULL); /* len may be NULL */
  p->worker = tg_task_worker(ctx);
  p->cancelled_at_start = tg_task_cancelled(ctx);
  at_store(&p->started, 1);
  if (p->block) {
    int64_t give_up = now_ns() + (int64_t)20 * 1000000000; /* never hang the program */
    while (!at_load(&p->release) && now_ns() < give_up) {
      if (tg_task_cancelled(ctx)) {
        at_store(&p->saw_cancel, 1);
        if (!p->ignore_cancel) break;
      }
      sleep_us(200);
    }
  }
  p->set_output_rc = TG_OK;
  p->set_error_rc = TG_OK;
  if (p->output) {
    /* Set a throwaway output first: the second call must replace it. */
    int rc = tg_task_set_output(ctx, "throwaway", 10);
    if (rc == TG_OK) rc = tg_task_set_output(ctx, p->output, p->output_len);
    p->set_output_rc = rc;
  }
  if (p->error) p->set_error_rc = tg_task_set_error(ctx, p->error);
  if (p->error2 && p->set_error_rc == TG_OK) p->set_error_rc = tg_task_set_error(ctx, p->error2);
  at_store(&p->returned, 1);
  return p->result;
}

static tg_task_desc desc(const char *id, probe_t *p) {
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.id = id;
  d.fn = probe_fn;
  d.user = p;
  return d;
}

static int submit(tg_pool *pool, const char *id, probe_t *p) {
  tg_task_desc d = desc(id, p);
  return tg_pool_submit(pool, &d, NULL);
}

static tg_result result_of(tg_pool *pool, const char *id) {
  tg_result r = TG_RESULT_INIT;
  CHECK_RC(tg_pool_result(pool, id, &r), TG_OK);
  return r;
}

static int contains(const char *haystack, const char *needle) {
  return haystack != NULL && strstr(haystack, needle) != NULL;
}

static int last_error_empty(void) { return tg_last_error()[0] == '\0'; }

/* ---- versions ------------------------------------------------------------ */

static void test_versions(void) {
  CHECK(tg_version() == TG_VERSION_NUMBER, "tg_version() %d vs header %d", tg_version(), TG_VERSION_NUMBER);
  CHECK(tg_version() / 10000 == TG_VERSION_MAJOR, "major of %d", tg_version());
  CHECK(tg_version() / 100 % 100 >= TG_VERSION_MINOR, "minor of %d", tg_version());
  const char *v = tg_version_string();
  CHECK(v != NULL && strcmp(v, TG_VERSION_STRING) == 0, "tg_version_string() '%s' vs '%s'", v ? v : "(null)",
        TG_VERSION_STRING);
  char built[32];
  snprintf(built, sizeof built, "%d.%d.%d", TG_VERSION_MAJOR, TG_VERSION_MINOR, TG_VERSION_PATCH);
  CHECK(strcmp(TG_VERSION_STRING, built) == 0, "TG_VERSION_STRING '%s' agrees with the numbers '%s'",
        TG_VERSION_STRING, built);
  CHECK(tg_version_string() == v, "static text: the same pointer every call");
}

/* ---- the error table -------------------------------------------------------- */

struct code_row {
  const char *name;
  int code;
  int enum_value;
  const char *message;
};

static const struct code_row code_rows[] = {
#define TG_TEST_ROW_(name, code, msg) {#name, code, (int)TG_##name, msg},
    TG_ERROR_TABLE(TG_TEST_ROW_)
#undef TG_TEST_ROW_
};
#define N_CODES (sizeof code_rows / sizeof code_rows[0])

static void test_error_table(void) {
  int lowest = 0;
  for (size_t i = 0; i < N_CODES; i++) {
    const struct code_row *r = &code_rows[i];
    CHECK(r->enum_value == r->code, "enum TG_%s is %d, table says %d", r->name, r->enum_value, r->code);
    /* Codes are 0, -1, -2, ... in table order (append only). */
    CHECK(r->code == -(int)i, "TG_%s is row %zu with code %d", r->name, i, r->code);
    const char *msg = tg_strerror(r->code);
    CHECK(msg != NULL && strcmp(msg, r->message) == 0, "tg_strerror(%d) '%s' vs '%s'", r->code,
          msg ? msg : "(null)", r->message);
    const char *name = tg_error_name(r->code);
    CHECK(name != NULL && strcmp(name, r->name) == 0, "tg_error_name(%d) '%s' vs '%s'", r->code,
          name ? name : "(null)", r->name);
    if (r->code < lowest) lowest = r->code;
  }
  CHECK(TG_ERROR_LAST_ == lowest, "TG_ERROR_LAST_ %d is the last code %d", (int)TG_ERROR_LAST_, lowest);

  const int unknown[] = {1, 42, TG_ERROR_LAST_ - 1, -1000, INT_MIN, INT_MAX};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    int c = unknown[i];
    const char *msg = tg_strerror(c);
    CHECK(msg != NULL && strcmp(msg, "unknown error") == 0, "tg_strerror(%d) '%s'", c, msg ? msg : "(null)");
    const char *name = tg_error_name(c);
    int clash = 0;
    for (size_t k = 0; name != NULL && k < N_CODES; k++) clash |= strcmp(name, code_rows[k].name) == 0;
    CHECK(name != NULL && !clash, "tg_error_name(%d) '%s' is not a known code's name", c, name ? name : "(null)");
  }
}

/* ---- status names ------------------------------------------------------------ */

static void test_status_names(void) {
  const int statuses[] = {TG_STATUS_PENDING,   TG_STATUS_QUEUED,    TG_STATUS_RUNNING,
                          TG_STATUS_SUCCEEDED, TG_STATUS_FAILED,    TG_STATUS_TIMED_OUT,
                          TG_STATUS_CANCELLED, TG_STATUS_SKIPPED, TG_STATUS_REJECTED};
  const size_t n = sizeof statuses / sizeof statuses[0];
  CHECK(strcmp(tg_status_name(TG_STATUS_SUCCEEDED), "succeeded") == 0, "'%s'", tg_status_name(TG_STATUS_SUCCEEDED));
  CHECK(strcmp(tg_status_name(TG_STATUS_FAILED), "failed") == 0, "'%s'", tg_status_name(TG_STATUS_FAILED));
  for (size_t i = 0; i < n; i++) {
    const char *s = tg_status_name(statuses[i]);
    CHECK(s != NULL && s[0] != '\0' && strcmp(s, "unknown") != 0, "tg_status_name(%d) '%s'", statuses[i],
          s ? s : "(null)");
    for (size_t k = 0; s != NULL && k < i; k++)
      CHECK(strcmp(s, tg_status_name(statuses[k])) != 0, "statuses %d and %d share the name '%s'", statuses[i],
            statuses[k], s);
  }
  const int bad[] = {3, 10, -1, 100, INT_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK(strcmp(tg_status_name(bad[i]), "unknown") == 0, "tg_status_name(%d) '%s'", bad[i], tg_status_name(bad[i]));
}

/* ---- handles: NULL and garbage ------------------------------------------------ */

static int dummy_fn(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  return TG_TASK_SUCCEEDED;
}

/* Calls every pool function with `pool` and checks each returns `want`. */
static void every_call_returns(tg_pool *pool, int want, const char *what) {
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.id = "x";
  d.fn = dummy_fn;
  tg_result r = TG_RESULT_INIT;
  tg_pool_stats st = TG_POOL_STATS_INIT;
  uint64_t seq = 0, cursor = 0;
  size_t count = 0;
  fprintf(stderr, "# handles: %s\n", what);
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, 0), want);
  CHECK(!last_error_empty(), "%s: a failure leaves a detail", what);
  CHECK_RC(tg_pool_submit(pool, &d, &seq), want);
  CHECK_RC(tg_pool_submit_batch(pool, &d, 1, &seq), want);
  CHECK_RC(tg_pool_wait(pool, "x", 0), want);
  CHECK_RC(tg_pool_wait_group(pool, "g", 0), want);
  CHECK_RC(tg_pool_wait_all(pool, 0), want);
  CHECK_RC(tg_pool_cancel(pool, "x"), want);
  CHECK_RC(tg_pool_cancel_group(pool, "g", &count), want);
  CHECK_RC(tg_pool_cancel_all(pool, &count), want);
  CHECK_RC(tg_pool_result(pool, "x", &r), want);
  CHECK_RC(tg_pool_result_at(pool, 0, &r), want);
  CHECK_RC(tg_pool_next_completed(pool, &cursor, 0, &r), want);
  CHECK_RC(tg_pool_stats_get(pool, &st), want);
  CHECK(!last_error_empty(), "%s: a failure leaves a detail", what);
}

static void test_handles(void) {
  every_call_returns(NULL, TG_EINVAL, "NULL pool");
  CHECK_RC(tg_pool_destroy(NULL), TG_OK);
  CHECK(last_error_empty(), "destroy(NULL) succeeded");

  /* A pointer to memory that is no pool: a local filled with garbage,
     aligned like any struct. */
  union {
    uint64_t align;
    unsigned char bytes[256];
  } garbage;
  memset(garbage.bytes, 0xA5, sizeof garbage.bytes);
  tg_pool *bad = (tg_pool *)(void *)garbage.bytes;
  every_call_returns(bad, TG_EBADHANDLE, "garbage pool");
  CHECK_RC(tg_pool_destroy(bad), TG_EBADHANDLE);

  /* Zeroed memory is no pool either. */
  memset(garbage.bytes, 0, sizeof garbage.bytes);
  every_call_returns(bad, TG_EBADHANDLE, "zeroed pool");
  CHECK_RC(tg_pool_destroy(bad), TG_EBADHANDLE);
}

/* ---- creating pools -------------------------------------------------------- */

static void test_create(void) {
  tg_pool *pool = NULL;
  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  CHECK(o.struct_size == sizeof(tg_pool_options), "TG_POOL_OPTIONS_INIT sets struct_size");

  CHECK_RC(tg_pool_create(&o, NULL), TG_EINVAL);
  CHECK_RC(tg_pool_create(NULL, NULL), TG_EINVAL);

  o.workers = 1025;
  CHECK_RC(tg_pool_create(&o, &pool), TG_EINVAL);
  CHECK(contains(tg_last_error(), "1025") || contains(tg_last_error(), "workers"), "detail names the argument");
  o.workers = 2;

  const uint32_t bad_sizes[] = {0, (uint32_t)sizeof(tg_pool_options) - 4, (uint32_t)sizeof(tg_pool_options) + 4};
  for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
    tg_pool_options v = o;
    v.struct_size = bad_sizes[i];
    CHECK_RC(tg_pool_create(&v, &pool), TG_EVERSION);
  }

  /* Defaults: NULL options give a pool with one worker per usable CPU. */
  pool = NULL;
  CHECK_RC(tg_pool_create(NULL, &pool), TG_OK);
  CHECK(last_error_empty(), "success clears the detail");
  if (pool) {
    tg_pool_stats st = TG_POOL_STATS_INIT;
    CHECK_RC(tg_pool_stats_get(pool, &st), TG_OK);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK(st.workers >= 1 && (long)st.workers <= cpus, "default workers %u for %ld CPUs", st.workers, cpus);
    CHECK_RC(tg_pool_destroy(pool), TG_OK); /* idle, never shut down: destroy shuts it down */
  }

  /* An explicit worker count. */
  pool = NULL;
  CHECK_RC(tg_pool_create(&o, &pool), TG_OK);
  if (pool) {
    tg_pool_stats st = TG_POOL_STATS_INIT;
    CHECK_RC(tg_pool_stats_get(pool, &st), TG_OK);
    CHECK(st.workers == 2, "workers %u", st.workers);
    CHECK_RC(tg_pool_destroy(pool), TG_OK);
  }

  /* max_concurrency and the overlap flag are accepted. */
  o.workers = 3;
  o.max_concurrency = 1;
  o.flags = TG_POOL_ALLOW_READ_WRITE_OVERLAP;
  pool = NULL;
  CHECK_RC(tg_pool_create(&o, &pool), TG_OK);
  if (pool) {
    tg_pool_stats st = TG_POOL_STATS_INIT;
    CHECK_RC(tg_pool_stats_get(pool, &st), TG_OK);
    CHECK(st.workers == 3, "workers %u", st.workers);
    CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
    CHECK_RC(tg_pool_destroy(pool), TG_OK);
  }
}

/* ---- single submissions -------------------------------------------------------- */

static void test_submit_errors(void) {
  tg_pool *pool = tap_pool(2, 0, 0);
  probe_t p = {0};
  p.workers = 2;
  uint64_t seq = 0;

  CHECK_RC(tg_pool_submit(pool, NULL, &seq), TG_EINVAL);

  tg_task_desc d = desc("ok-0", &p);
  CHECK(d.struct_size == sizeof(tg_task_desc), "TG_TASK_DESC_INIT sets struct_size");
  CHECK(d.priority == TG_PRIORITY_NORMAL && d.timeout_ms == 0 && d.group == NULL, "TG_TASK_DESC_INIT defaults");

  /* struct_size: zero, smaller, larger. */
  const uint32_t bad_sizes[] = {0, (uint32_t)sizeof(tg_task_desc) - 4, (uint32_t)sizeof(tg_task_desc) + 8};
  for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
    tg_task_desc v = d;
    v.struct_size = bad_sizes[i];
    CHECK_RC(tg_pool_submit(pool, &v, &seq), TG_EVERSION);
  }

  tg_task_desc v = d;
  v.fn = NULL;
  CHECK_RC(tg_pool_submit(pool, &v, &seq), TG_EINVAL);
  CHECK(contains(tg_last_error(), "ok-0"), "the detail names the task");

  const int32_t bad_priorities[] = {TG_PRIORITY_HIGH + 1, TG_PRIORITY_LOW - 1, 100, INT32_MIN};
  for (size_t i = 0; i < sizeof bad_priorities / sizeof bad_priorities[0]; i++) {
    v = d;
    v.priority = bad_priorities[i];
    CHECK_RC(tg_pool_submit(pool, &v, &seq), TG_EINVAL);
  }

  v = d;
  v.n_deps = 1; /* deps NULL */
  CHECK_RC(tg_pool_submit(pool, &v, &seq), TG_EINVAL);
  const char *with_null[] = {NULL};
  v = d;
  v.deps = with_null;
  v.n_deps = 1;
  CHECK_RC(tg_pool_submit(pool, &v, &seq), TG_EINVAL);
  v = d;
  v.reads = with_null;
  v.n_reads = 1;
  CHECK_RC(tg_pool_submit(pool, &v, &seq), TG_EINVAL);
  v = d;
  v.writes = with_null;
  v.n_writes = 1;
  CHECK_RC(tg_pool_submit(pool, &v, &seq), TG_EINVAL);
  v = d;
  v.n_reads = 2; /* reads NULL */
  CHECK_RC(tg_pool_submit(pool, &v, &seq), TG_EINVAL);
  v = d;
  v.n_writes = 3; /* writes NULL */
  CHECK_RC(tg_pool_submit(pool, &v, &seq), TG_EINVAL);

  v = d;
  v.id = "";
  CHECK_RC(tg_pool_submit(pool, &v, &seq), TG_EINVAL);

  const char *unknown[] = {"no-such-task"};
  v = d;
  v.deps = unknown;
  v.n_deps = 1;
  CHECK_RC(tg_pool_submit(pool, &v, &seq), TG_EUNKNOWNDEP);
  CHECK(contains(tg_last_error(), "no-such-task"), "the detail names the missing dependency");

  const char *self[] = {"selfish"};
  v = desc("selfish", &p);
  v.deps = self;
  v.n_deps = 1;
  CHECK_RC(tg_pool_submit(pool, &v, &seq), TG_ECYCLE);
  CHECK(contains(tg_last_error(), "selfish"), "the detail names the task");
  tg_result none = TG_RESULT_INIT;
  CHECK_RC(tg_pool_result(pool, "selfish", &none), TG_ENOTFOUND);

  /* None of the refused submissions took a number: the first task is seq 0. */
  CHECK_RC(tg_pool_submit(pool, &d, &seq), TG_OK);
  CHECK(last_error_empty(), "success clears the detail");
  CHECK(seq == 0, "first seq %llu", (unsigned long long)seq);
  tg_task_desc d1 = desc("ok-1", &p);
  CHECK_RC(tg_pool_submit(pool, &d1, NULL), TG_OK); /* out_seq may be NULL */
  tg_task_desc d2 = desc(NULL, &p);                  /* anonymous */
  CHECK_RC(tg_pool_submit(pool, &d2, &seq), TG_OK);
  CHECK(seq == 2, "third seq %llu", (unsigned long long)seq);
  CHECK_RC(tg_pool_submit(pool, &d2, &seq), TG_OK); /* anonymous tasks never clash */
  CHECK(seq == 3, "fourth seq %llu", (unsigned long long)seq);

  CHECK_RC(tg_pool_submit(pool, &d, &seq), TG_EDUPLICATE);
  CHECK(contains(tg_last_error(), "ok-0"), "the detail names the duplicate id");

  /* Every priority in range is fine; so are empty lists with NULL pointers. */
  const int32_t prios[] = {TG_PRIORITY_LOW, TG_PRIORITY_NORMAL, TG_PRIORITY_HIGH};
  const char *prio_ids[] = {"prio-low", "prio-normal", "prio-high"};
  for (int i = 0; i < 3; i++) {
    v = desc(prio_ids[i], &p);
    v.priority = prios[i];
    CHECK_RC(tg_pool_submit(pool, &v, NULL), TG_OK);
  }
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  CHECK(at_load(&p.runs) == 7, "7 tasks ran (%d)", at_load(&p.runs));

  /* Strings and lists are copied: the caller may reuse its buffers at once. */
  char id_buf[32], dep_buf[32];
  const char *deps[] = {dep_buf};
  strcpy(id_buf, "copied-parent");
  v = desc(id_buf, &p);
  CHECK_RC(tg_pool_submit(pool, &v, NULL), TG_OK);
  strcpy(dep_buf, id_buf);
  strcpy(id_buf, "copied-child");
  v = desc(id_buf, &p);
  v.deps = deps;
  v.n_deps = 1;
  CHECK_RC(tg_pool_submit(pool, &v, NULL), TG_OK);
  memset(id_buf, 'z', sizeof id_buf - 1);
  memset(dep_buf, 'z', sizeof dep_buf - 1);
  CHECK_RC(tg_pool_wait(pool, "copied-child", WAIT_MS), TG_OK);
  tg_result r = result_of(pool, "copied-child");
  CHECK(r.id != NULL && strcmp(r.id, "copied-child") == 0, "the id was copied ('%s')", r.id ? r.id : "(null)");
  CHECK(r.status == TG_STATUS_SUCCEEDED, "status %s", tg_status_name(r.status));

  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  v = desc("late", &p);
  CHECK_RC(tg_pool_submit(pool, &v, &seq), TG_ESHUTDOWN);
  CHECK_RC(tg_pool_submit_batch(pool, &v, 1, &seq), TG_ESHUTDOWN);
  CHECK_RC(tg_pool_result(pool, "late", &r), TG_ENOTFOUND);
  /* Results stay readable after shutdown. */
  r = result_of(pool, "ok-0");
  CHECK(r.status == TG_STATUS_SUCCEEDED, "status %s", tg_status_name(r.status));
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* ---- batches ----------------------------------------------------------------- */

/* True when `text` contains the ids in one of the cycle's rotations, in either
   direction, joined by " -> ". */
static int names_cycle(const char *text, const char *const *ids, int n) {
  if (!text) return 0;
  for (int dir = -1; dir <= 1; dir += 2) {
    for (int start = 0; start < n; start++) {
      char want[256] = "";
      for (int k = 0; k <= n; k++) { /* n + 1 names: the first comes back */
        int idx = ((start + dir * k) % n + n) % n;
        if (k) strcat(want, " -> ");
        strcat(want, ids[idx]);
      }
      if (strstr(text, want)) return 1;
    }
  }
  return 0;
}

static uint64_t submitted_count(tg_pool *pool) {
  tg_pool_stats st = TG_POOL_STATS_INIT;
  CHECK_RC(tg_pool_stats_get(pool, &st), TG_OK);
  return st.submitted;
}

/* After a refused batch: none of `ids` exists, and the count did not move. */
static void nothing_submitted(tg_pool *pool, const char *const *ids, int n, uint64_t before) {
  tg_result r = TG_RESULT_INIT;
  for (int i = 0; i < n; i++) {
    if (!ids[i]) continue;
    if (!CHECK_RC(tg_pool_result(pool, ids[i], &r), TG_ENOTFOUND)) fprintf(stderr, "  (id '%s')\n", ids[i]);
    CHECK_RC(tg_pool_wait(pool, ids[i], 0), TG_ENOTFOUND);
  }
  CHECK(submitted_count(pool) == before, "submitted stayed %llu", (unsigned long long)before);
}

static void test_batches(void) {
  tg_pool *pool = tap_pool(2, 0, 0);
  probe_t p = {0};
  p.workers = 2;
  uint64_t first = 0;

  probe_t blocker = {0};
  blocker.block = 1;
  blocker.workers = 2;
  CHECK_RC(submit(pool, "existing", &p), TG_OK); /* seq 0 */
  CHECK_RC(submit(pool, "blocker", &blocker), TG_OK); /* seq 1, keeps parents unfinished */
  uint64_t base = submitted_count(pool);

  tg_task_desc b[5];
  CHECK_RC(tg_pool_submit_batch(pool, NULL, 1, &first), TG_EINVAL);
  b[0] = desc("b0", &p);
  {
    int rc = tg_pool_submit_batch(pool, b, 0, &first);
    CHECK(rc == TG_OK || rc == TG_EINVAL, "an empty batch is harmless (%s)", tg_error_name(rc));
    CHECK(submitted_count(pool) == base, "an empty batch submits nothing");
  }

  /* A duplicate inside the batch. */
  const char *dup_ids[] = {"d-one", "d-two", "d-one"};
  for (int i = 0; i < 3; i++) b[i] = desc(dup_ids[i], &p);
  CHECK_RC(tg_pool_submit_batch(pool, b, 3, &first), TG_EDUPLICATE);
  CHECK(contains(tg_last_error(), "d-one"), "detail names the duplicate");
  nothing_submitted(pool, dup_ids, 2, base);

  /* A duplicate of an older task, after good ones. */
  const char *dup2_ids[] = {"e-one", "e-two", "existing"};
  for (int i = 0; i < 3; i++) b[i] = desc(dup2_ids[i], &p);
  CHECK_RC(tg_pool_submit_batch(pool, b, 3, &first), TG_EDUPLICATE);
  CHECK(contains(tg_last_error(), "existing"), "detail names the duplicate");
  nothing_submitted(pool, dup2_ids, 2, base);

  /* An invalid element (NULL fn) in the middle. */
  const char *inv_ids[] = {"i-one", "i-two", "i-three"};
  for (int i = 0; i < 3; i++) b[i] = desc(inv_ids[i], &p);
  b[1].fn = NULL;
  CHECK_RC(tg_pool_submit_batch(pool, b, 3, &first), TG_EINVAL);
  nothing_submitted(pool, inv_ids, 3, base);
  for (int i = 0; i < 3; i++) b[i] = desc(inv_ids[i], &p);
  b[2].priority = 5;
  CHECK_RC(tg_pool_submit_batch(pool, b, 3, &first), TG_EINVAL);
  nothing_submitted(pool, inv_ids, 3, base);
  for (int i = 0; i < 3; i++) b[i] = desc(inv_ids[i], &p);
  b[1].id = "";
  CHECK_RC(tg_pool_submit_batch(pool, b, 3, &first), TG_EINVAL);
  nothing_submitted(pool, inv_ids, 3, base);

  /* Elements must all carry the same struct_size. */
  for (int i = 0; i < 3; i++) b[i] = desc(inv_ids[i], &p);
  b[2].struct_size = 8;
  CHECK_RC(tg_pool_submit_batch(pool, b, 3, &first), TG_EVERSION);
  nothing_submitted(pool, inv_ids, 3, base);
  for (int i = 0; i < 3; i++) b[i] = desc(inv_ids[i], &p);
  b[0].struct_size = (uint32_t)sizeof(tg_task_desc) + 8;
  CHECK_RC(tg_pool_submit_batch(pool, b, 1, &first), TG_EVERSION);
  nothing_submitted(pool, inv_ids, 1, base);

  /* An unknown dependency in the last element. */
  const char *missing[] = {"nowhere"};
  const char *unk_ids[] = {"u-one", "u-two"};
  for (int i = 0; i < 2; i++) b[i] = desc(unk_ids[i], &p);
  b[1].deps = missing;
  b[1].n_deps = 1;
  CHECK_RC(tg_pool_submit_batch(pool, b, 2, &first), TG_EUNKNOWNDEP);
  CHECK(contains(tg_last_error(), "nowhere"), "detail names the unknown dependency");
  nothing_submitted(pool, unk_ids, 2, base);

  /* A two-task cycle. */
  const char *cyc2_ids[] = {"cy-a", "cy-b"};
  const char *dep_a[] = {"cy-a"}, *dep_b[] = {"cy-b"};
  b[0] = desc("cy-a", &p);
  b[0].deps = dep_b;
  b[0].n_deps = 1;
  b[1] = desc("cy-b", &p);
  b[1].deps = dep_a;
  b[1].n_deps = 1;
  CHECK_RC(tg_pool_submit_batch(pool, b, 2, &first), TG_ECYCLE);
  CHECK(names_cycle(tg_last_error(), cyc2_ids, 2), "detail names the cycle cy-a -> cy-b -> cy-a");
  nothing_submitted(pool, cyc2_ids, 2, base);

  /* A three-task cycle among other tasks: "tail" hangs off the cycle, "root"
     feeds it, "free" is unrelated and the batch's tasks depend on older ones. */
  const char *cyc3[] = {"c3-x", "c3-y", "c3-z"};
  const char *cyc_all[] = {"tail", "c3-x", "root", "c3-y", "c3-z", NULL};
  const char *dx[] = {"c3-z", "root", "existing"}; /* x after z and root */
  const char *dy[] = {"c3-x"};
  const char *dz[] = {"c3-y"};
  const char *dt[] = {"c3-y"};
  b[0] = desc("tail", &p);
  b[0].deps = dt;
  b[0].n_deps = 1;
  b[1] = desc("c3-x", &p);
  b[1].deps = dx;
  b[1].n_deps = 3;
  b[2] = desc("root", &p);
  b[3] = desc("c3-y", &p);
  b[3].deps = dy;
  b[3].n_deps = 1;
  b[4] = desc("c3-z", &p);
  b[4].deps = dz;
  b[4].n_deps = 1;
  CHECK_RC(tg_pool_submit_batch(pool, b, 5, &first), TG_ECYCLE);
  CHECK(names_cycle(tg_last_error(), cyc3, 3), "detail names the cycle of c3-x, c3-y, c3-z");
  nothing_submitted(pool, cyc_all, 5, base);

  /* A self-dependency in a batch. */
  const char *self_ids[] = {"s-ok", "s-self"};
  const char *dself[] = {"s-self"};
  b[0] = desc("s-ok", &p);
  b[1] = desc("s-self", &p);
  b[1].deps = dself;
  b[1].n_deps = 1;
  CHECK_RC(tg_pool_submit_batch(pool, b, 2, &first), TG_ECYCLE);
  CHECK(contains(tg_last_error(), "s-self"), "detail names the task");
  nothing_submitted(pool, self_ids, 2, base);

  /* A refused batch must not leave its group behind either. */
  b[0] = desc("ghost-1", &p);
  b[0].group = "ghost-group";
  b[1] = desc("ghost-1", &p);
  b[1].group = "ghost-group";
  CHECK_RC(tg_pool_submit_batch(pool, b, 2, &first), TG_EDUPLICATE);
  size_t ghosts = 0;
  CHECK_RC(tg_pool_wait_group(pool, "ghost-group", 0), TG_ENOTFOUND);
  CHECK_RC(tg_pool_cancel_group(pool, "ghost-group", &ghosts), TG_ENOTFOUND);

  /* The refused ids can now be submitted, and numbering has no gap. Children
     come before their parents in the batch: dependencies may point forward. */
  const char *fwd[] = {"d-two"};
  const char *old[] = {"blocker"};
  b[0] = desc("d-one", &p);
  b[0].deps = fwd;
  b[0].n_deps = 1;
  b[1] = desc("d-two", &p);
  b[1].deps = old;
  b[1].n_deps = 1;
  b[2] = desc("cy-a", &p);
  b[3] = desc(NULL, &p);
  CHECK_RC(tg_pool_submit_batch(pool, b, 4, &first), TG_OK);
  CHECK(last_error_empty(), "success clears the detail");
  CHECK(first == base, "first seq %llu, expected %llu", (unsigned long long)first, (unsigned long long)base);
  CHECK_RC(tg_pool_submit_batch(pool, b + 2, 1, NULL), TG_EDUPLICATE); /* NULL out ok, but cy-a exists */
  b[4] = desc("last", &p);
  CHECK_RC(tg_pool_submit_batch(pool, b + 3, 2, &first), TG_OK); /* anonymous + "last" */
  CHECK(first == base + 4, "seq continues: %llu", (unsigned long long)first);

  /* d-one and d-two wait for the blocker. */
  CHECK_RC(tg_pool_wait(pool, "d-one", 0), TG_ETIMEDOUT);
  tg_result r = result_of(pool, "d-one");
  CHECK(r.status == TG_STATUS_PENDING, "child of an unfinished parent is pending (%s)", tg_status_name(r.status));
  at_store(&blocker.release, 1);
  CHECK_RC(tg_pool_wait(pool, "d-one", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);

  tg_result d1 = result_of(pool, "d-one"), d2 = result_of(pool, "d-two"), bl = result_of(pool, "blocker");
  CHECK(d1.status == TG_STATUS_SUCCEEDED && d2.status == TG_STATUS_SUCCEEDED, "statuses %s %s",
        tg_status_name(d1.status), tg_status_name(d2.status));
  CHECK(bl.end_ns <= d2.start_ns && d2.end_ns <= d1.start_ns, "forward dependencies were honoured");
  CHECK(d1.seq == base && d2.seq == base + 1, "seqs in batch order");
  for (uint64_t s = 0; s < base + 6; s++) {
    CHECK_RC(tg_pool_result_at(pool, s, &r), TG_OK);
    CHECK(r.seq == s, "result_at(%llu).seq %llu", (unsigned long long)s, (unsigned long long)r.seq);
  }
  CHECK_RC(tg_pool_result_at(pool, base + 6, &r), TG_ENOTFOUND);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* ---- waiting, cancelling, results ------------------------------------------------ */

static void test_wait_and_cancel(void) {
  tg_pool *pool = tap_pool(2, 0, 0);
  probe_t gate = {0}, q = {0}, ok = {0}, g1 = {0}, g2 = {0};
  gate.block = 1;
  gate.workers = q.workers = ok.workers = g1.workers = g2.workers = 2;

  CHECK_RC(tg_pool_wait(pool, NULL, 0), TG_EINVAL);
  CHECK_RC(tg_pool_wait(pool, "nobody", 0), TG_ENOTFOUND);
  CHECK(contains(tg_last_error(), "nobody"), "detail names the id");
  CHECK_RC(tg_pool_wait_group(pool, NULL, 0), TG_EINVAL);
  CHECK_RC(tg_pool_wait_group(pool, "no-group", 0), TG_ENOTFOUND);
  CHECK_RC(tg_pool_cancel(pool, NULL), TG_EINVAL);
  CHECK_RC(tg_pool_cancel(pool, "nobody"), TG_ENOTFOUND);
  size_t n = 99;
  CHECK_RC(tg_pool_cancel_group(pool, NULL, &n), TG_EINVAL);
  CHECK_RC(tg_pool_cancel_group(pool, "no-group", &n), TG_ENOTFOUND);
  CHECK_RC(tg_pool_cancel_group(pool, "no-group", NULL), TG_ENOTFOUND); /* out_count may be NULL */
  CHECK_RC(tg_pool_wait_all(pool, 0), TG_OK); /* nothing submitted: done */
  n = 99;
  CHECK_RC(tg_pool_cancel_all(pool, &n), TG_OK);
  CHECK(n == 0, "cancel_all on an empty pool cancelled %zu", n);

  /* "gate" blocks a worker; "queued" depends on it; group "grp" has one task
     depending on the gate and one free task. */
  tg_task_desc d = desc("gate", &gate);
  d.group = "grp";
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  const char *on_gate[] = {"gate"};
  d = desc("queued", &q);
  d.deps = on_gate;
  d.n_deps = 1;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  d = desc("g-after-gate", &g1);
  d.group = "grp2";
  d.deps = on_gate;
  d.n_deps = 1;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  d = desc("g-free", &g2);
  d.group = "grp2";
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK(wait_flag(&gate.started, 1, WAIT_MS), "gate started");

  CHECK_RC(tg_pool_wait(pool, "gate", 0), TG_ETIMEDOUT);
  CHECK(contains(tg_last_error(), "gate"), "detail names the task");
  CHECK_RC(tg_pool_wait(pool, "gate", 20), TG_ETIMEDOUT);
  CHECK_RC(tg_pool_wait_group(pool, "grp", 20), TG_ETIMEDOUT);
  CHECK_RC(tg_pool_wait_group(pool, "grp2", 0), TG_ETIMEDOUT);
  CHECK_RC(tg_pool_wait_all(pool, 20), TG_ETIMEDOUT);
  CHECK_RC(tg_pool_wait(pool, "g-free", WAIT_MS), TG_OK);
  CHECK(last_error_empty(), "success clears the detail");

  tg_result r = result_of(pool, "gate");
  CHECK(r.status == TG_STATUS_RUNNING, "gate is running (%s)", tg_status_name(r.status));
  CHECK(r.error == NULL && r.output == NULL, "no error or output while running");
  r = result_of(pool, "queued");
  CHECK(r.status == TG_STATUS_PENDING, "queued waits on its parent (%s)", tg_status_name(r.status));

  /* Cancel a task that has not run: it ends at once and never runs. */
  CHECK_RC(tg_pool_cancel(pool, "queued"), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "queued", 0), TG_OK);
  r = result_of(pool, "queued");
  CHECK(r.status == TG_STATUS_CANCELLED, "status %s", tg_status_name(r.status));
  CHECK(r.error != NULL && r.error[0] != '\0', "a cancelled task says why");
  CHECK(r.worker == -1 && r.attempts == 0, "never ran: worker %d attempts %u", r.worker, r.attempts);
  CHECK_RC(tg_pool_cancel(pool, "queued"), TG_EFINISHED);
  CHECK(contains(tg_last_error(), "queued"), "detail names the task");
  CHECK_RC(tg_pool_cancel(pool, "g-free"), TG_EFINISHED);

  /* Cancel a group: only g-after-gate is unfinished there. */
  n = 99;
  CHECK_RC(tg_pool_cancel_group(pool, "grp2", &n), TG_OK);
  CHECK(n == 1, "cancelled %zu of grp2", n);
  CHECK_RC(tg_pool_wait_group(pool, "grp2", 0), TG_OK);
  r = result_of(pool, "g-after-gate");
  CHECK(r.status == TG_STATUS_CANCELLED, "status %s", tg_status_name(r.status));
  r = result_of(pool, "g-free");
  CHECK(r.status == TG_STATUS_SUCCEEDED, "finished member untouched (%s)", tg_status_name(r.status));
  CHECK_RC(tg_pool_cancel_group(pool, "grp2", NULL), TG_OK); /* nothing left, out_count NULL */

  /* Cancel the running gate: waiters are released, the processor sees it. */
  CHECK_RC(tg_pool_cancel(pool, "gate"), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "gate", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_wait_group(pool, "grp", WAIT_MS), TG_OK);
  r = result_of(pool, "gate");
  CHECK(r.status == TG_STATUS_CANCELLED, "status %s", tg_status_name(r.status));
  CHECK(wait_flag(&gate.saw_cancel, 1, WAIT_MS), "the processor saw tg_task_cancelled()");
  CHECK(at_load(&q.runs) == 0 && at_load(&g1.runs) == 0, "cancelled tasks never ran");

  /* out_count may be NULL: the group is still cancelled. */
  probe_t held = {0}, grouped = {0};
  held.block = 1;
  held.workers = grouped.workers = 2;
  CHECK_RC(submit(pool, "held", &held), TG_OK);
  const char *on_held[] = {"held"};
  d = desc("grouped-1", &grouped);
  d.group = "grp-null-count";
  d.deps = on_held;
  d.n_deps = 1;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_cancel_group(pool, "grp-null-count", NULL), TG_OK);
  r = result_of(pool, "grouped-1");
  CHECK(r.status == TG_STATUS_CANCELLED, "cancel_group(out_count NULL) cancelled the member (%s)",
        tg_status_name(r.status));
  /* And cancel_all with out_count NULL cancels everything unfinished. */
  CHECK_RC(tg_pool_cancel_all(pool, NULL), TG_OK);
  r = result_of(pool, "held");
  CHECK(r.status == TG_STATUS_CANCELLED, "cancel_all(out_count NULL) cancelled the running task (%s)",
        tg_status_name(r.status));
  at_store(&held.release, 1); /* in case it was not cancelled */
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  CHECK(at_load(&grouped.runs) == 0, "the cancelled member never ran");

  /* cancel_all with running and pending tasks. A pending task whose parent is
     cancelled first may end skipped instead: either way it never runs, and
     the count is the number of tasks that ended cancelled. */
  probe_t run = {0}, later = {0};
  run.block = 1;
  run.workers = later.workers = 2;
  CHECK_RC(submit(pool, "run-1", &run), TG_OK);
  CHECK(wait_flag(&run.started, 1, WAIT_MS), "run-1 started");
  const char *on_run[] = {"run-1"};
  d = desc("later-1", &later);
  d.deps = on_run;
  d.n_deps = 1;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  d = desc("later-2", &later); /* pending too, and in a group */
  d.deps = on_run;
  d.n_deps = 1;
  d.group = "later";
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  n = 0;
  CHECK_RC(tg_pool_cancel_all(pool, &n), TG_OK);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  size_t cancelled = 0;
  const char *victims[] = {"run-1", "later-1", "later-2"};
  for (int i = 0; i < 3; i++) {
    r = result_of(pool, victims[i]);
    CHECK(r.status == TG_STATUS_CANCELLED || (i > 0 && r.status == TG_STATUS_SKIPPED), "%s: %s", victims[i],
          tg_status_name(r.status));
    cancelled += r.status == TG_STATUS_CANCELLED;
  }
  CHECK(n == cancelled && n >= 1, "cancel_all reported %zu, %zu ended cancelled", n, cancelled);
  CHECK(at_load(&later.runs) == 0, "pending tasks never ran");
  CHECK(wait_flag(&run.saw_cancel, 1, WAIT_MS), "the running task saw the cancel");
  /* The pool stays usable. */
  probe_t after = {0};
  after.workers = 2;
  CHECK_RC(submit(pool, "after-cancel-all", &after), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "after-cancel-all", WAIT_MS), TG_OK);
  r = result_of(pool, "after-cancel-all");
  CHECK(r.status == TG_STATUS_SUCCEEDED, "status %s", tg_status_name(r.status));
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* ---- results and the processor's side ------------------------------------------ */

static void test_results(void) {
  tg_pool *pool = tap_pool(3, 0, 0);
  static const unsigned char binary[] = {0, 1, 2, 0, 255, 'x', 0};
  probe_t out = {0}, failer = {0}, silent_fail = {0}, anon = {0}, ok_with_error = {0};
  out.workers = failer.workers = silent_fail.workers = anon.workers = ok_with_error.workers = 3;
  out.output = binary;
  out.output_len = sizeof binary;
  failer.result = TG_TASK_FAILED;
  failer.error = "first message";
  failer.error2 = "disk on fire";
  failer.output = "partial";
  failer.output_len = 8;
  silent_fail.result = 7; /* any non-zero value is a failure */
  ok_with_error.error = "ignored";

  tg_task_desc d = desc("with-output", &out);
  static const char payload[] = "payload\0with a NUL";
  d.payload = payload;
  d.payload_len = sizeof payload;
  d.group = "results";
  d.difficulty = 42;
  uint64_t seq;
  CHECK_RC(tg_pool_submit(pool, &d, &seq), TG_OK);
  d = desc("failer", &failer);
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  d = desc("silent-fail", &silent_fail);
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  d = desc(NULL, &anon);
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  d = desc("ok-with-error", &ok_with_error);
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);

  tg_result r = TG_RESULT_INIT;
  CHECK(r.struct_size == sizeof(tg_result), "TG_RESULT_INIT sets struct_size");
  CHECK_RC(tg_pool_result(pool, "with-output", NULL), TG_EINVAL);
  CHECK_RC(tg_pool_result(pool, NULL, &r), TG_EINVAL);
  CHECK_RC(tg_pool_result(pool, "nobody", &r), TG_ENOTFOUND);
  tg_result bad = TG_RESULT_INIT;
  bad.struct_size = 16;
  CHECK_RC(tg_pool_result(pool, "with-output", &bad), TG_EVERSION);
  CHECK_RC(tg_pool_result_at(pool, 0, &bad), TG_EVERSION);
  CHECK_RC(tg_pool_result_at(pool, 0, NULL), TG_EINVAL);
  CHECK_RC(tg_pool_result_at(pool, 5, &r), TG_ENOTFOUND);
  CHECK_RC(tg_pool_result_at(pool, UINT64_MAX, &r), TG_ENOTFOUND);

  /* The processor's view. */
  CHECK(strcmp(out.id, "with-output") == 0, "tg_task_id '%s'", out.id);
  CHECK(out.payload_len == sizeof payload && memcmp(out.payload, payload, sizeof payload) == 0,
        "payload round trip (%zu bytes)", out.payload_len);
  CHECK(out.worker >= 0 && out.worker < 3, "tg_task_worker %d in range", out.worker);
  CHECK(out.cancelled_at_start == 0, "tg_task_cancelled is 0 for a live task");
  CHECK(out.set_output_rc == TG_OK && failer.set_error_rc == TG_OK, "set_output/set_error returned OK");
  CHECK(strcmp(anon.id, "(null)") == 0, "anonymous task: tg_task_id NULL ('%s')", anon.id);
  CHECK(anon.payload_len == 0, "no payload: length 0 (%zu)", anon.payload_len);

  /* The result. */
  r = result_of(pool, "with-output");
  CHECK(last_error_empty(), "success clears the detail");
  CHECK(r.status == TG_STATUS_SUCCEEDED, "status %s", tg_status_name(r.status));
  CHECK(r.seq == seq && r.seq == 0, "seq %llu", (unsigned long long)r.seq);
  CHECK(r.id && strcmp(r.id, "with-output") == 0, "id");
  CHECK(r.group && strcmp(r.group, "results") == 0, "group '%s'", r.group ? r.group : "(null)");
  CHECK(r.output_len == sizeof binary && r.output && memcmp(r.output, binary, sizeof binary) == 0,
        "output round trip (%zu bytes): the second set_output replaced the first", r.output_len);
  CHECK(r.error == NULL, "no error when it succeeded");
  CHECK(r.attempts == 1, "attempts %u", r.attempts);
  CHECK(r.worker == out.worker, "worker %d vs %d seen inside", r.worker, out.worker);
  CHECK(r.submit_ns > 0 && r.submit_ns <= r.start_ns && r.start_ns <= r.end_ns && r.end_ns <= now_ns(),
        "timestamps ordered: %lld %lld %lld", (long long)r.submit_ns, (long long)r.start_ns, (long long)r.end_ns);
  CHECK(r.queue_ns >= 0 && r.queue_ns <= r.start_ns - r.submit_ns, "queue_ns %lld", (long long)r.queue_ns);
  const void *kept_output = r.output;

  r = result_of(pool, "failer");
  CHECK(r.status == TG_STATUS_FAILED, "status %s", tg_status_name(r.status));
  CHECK(r.error && strcmp(r.error, "disk on fire") == 0, "error '%s' (the second set_error replaces the first)",
        r.error ? r.error : "(null)");
  CHECK(r.output_len == 8 && r.output && strcmp((const char *)r.output, "partial") == 0,
        "a failed task keeps its output");
  CHECK(r.group == NULL, "no group");
  r = result_of(pool, "silent-fail");
  CHECK(r.status == TG_STATUS_FAILED, "non-zero return fails (%s)", tg_status_name(r.status));
  CHECK(r.error != NULL && r.error[0] != '\0', "a failed task says why, even without set_error");
  CHECK(r.output == NULL && r.output_len == 0, "no output");
  r = result_of(pool, "ok-with-error");
  CHECK(r.status == TG_STATUS_SUCCEEDED && r.error == NULL, "a success reports no error (%s, '%s')",
        tg_status_name(r.status), r.error ? r.error : "(null)");

  CHECK_RC(tg_pool_result_at(pool, 3, &r), TG_OK);
  CHECK(r.id == NULL && r.status == TG_STATUS_SUCCEEDED && r.seq == 3, "anonymous task by seq");

  /* Pointers stay valid (and unchanged) while the pool lives. */
  probe_t more = {0};
  more.workers = 3;
  for (int i = 0; i < 50; i++) {
    d = desc(NULL, &more);
    CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  }
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  r = result_of(pool, "with-output");
  CHECK(r.output == kept_output && memcmp(kept_output, binary, sizeof binary) == 0, "output pointer is stable");
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* ---- next_completed ---------------------------------------------------------------- */

static void test_next_completed(void) {
  tg_pool *pool = tap_pool(2, 0, 0);
  probe_t p = {0}, gate = {0};
  p.workers = gate.workers = 2;
  gate.block = 1;
  enum { N = 12 };
  char ids[N][16];
  for (int i = 0; i < N; i++) {
    snprintf(ids[i], sizeof ids[i], "nc-%d", i);
    CHECK_RC(submit(pool, ids[i], &p), TG_OK);
  }
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);

  tg_result r = TG_RESULT_INIT, bad = TG_RESULT_INIT;
  bad.struct_size = 3;
  uint64_t cursor = 0;
  CHECK_RC(tg_pool_next_completed(pool, NULL, 0, &r), TG_EINVAL);
  CHECK_RC(tg_pool_next_completed(pool, &cursor, 0, NULL), TG_EINVAL);
  CHECK_RC(tg_pool_next_completed(pool, &cursor, 0, &bad), TG_EVERSION);
  CHECK(cursor == 0, "refused calls leave the cursor");

  int seen[N] = {0};
  for (int k = 0; k < N; k++) {
    if (!CHECK_RC(tg_pool_next_completed(pool, &cursor, WAIT_MS, &r), TG_OK)) break;
    CHECK(r.seq < N && r.status == TG_STATUS_SUCCEEDED, "entry %d: seq %llu %s", k, (unsigned long long)r.seq,
          tg_status_name(r.status));
    if (r.seq < N) {
      seen[r.seq]++;
      CHECK(r.id && strcmp(r.id, ids[r.seq]) == 0, "entry %d: id matches seq", k);
    }
  }
  for (int i = 0; i < N; i++) CHECK(seen[i] == 1, "task %d returned %d times", i, seen[i]);
  CHECK(cursor == N, "cursor %llu", (unsigned long long)cursor);
  CHECK_RC(tg_pool_next_completed(pool, &cursor, 0, &r), TG_ETIMEDOUT);
  CHECK_RC(tg_pool_next_completed(pool, &cursor, 20, &r), TG_ETIMEDOUT);
  CHECK(cursor == N, "a timeout leaves the cursor");

  /* A second reader with its own cursor sees the same sequence. */
  uint64_t c2 = 0;
  int count2 = 0;
  while (tg_pool_next_completed(pool, &c2, 0, &r) == TG_OK) count2++;
  CHECK(count2 == N, "second cursor read %d", count2);

  /* A task that ends later is delivered to a waiting reader. */
  CHECK_RC(submit(pool, "late-gate", &gate), TG_OK);
  CHECK(wait_flag(&gate.started, 1, WAIT_MS), "gate started");
  CHECK_RC(tg_pool_next_completed(pool, &cursor, 10, &r), TG_ETIMEDOUT);
  at_store(&gate.release, 1);
  CHECK_RC(tg_pool_next_completed(pool, &cursor, WAIT_MS, &r), TG_OK);
  CHECK(r.id && strcmp(r.id, "late-gate") == 0, "late task delivered");

  /* After shutdown the end of results is announced. */
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_next_completed(pool, &cursor, 0, &r), TG_ENOMORE);
  CHECK_RC(tg_pool_next_completed(pool, &cursor, WAIT_MS, &r), TG_ENOMORE);
  CHECK(!last_error_empty(), "ENOMORE has a detail");
  CHECK(cursor == N + 1, "cursor %llu", (unsigned long long)cursor);
  c2 = 0;
  count2 = 0;
  int rc;
  while ((rc = tg_pool_next_completed(pool, &c2, WAIT_MS, &r)) == TG_OK) count2++;
  CHECK(count2 == N + 1 && rc == TG_ENOMORE, "a fresh cursor reads %d then %s", count2, tg_error_name(rc));
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* ---- stats ---------------------------------------------------------------------- */

static int spin_until_cancelled(tg_task_ctx *ctx, void *user) {
  int64_t give_up = now_ns() + (int64_t)20 * 1000000000;
  while (!tg_task_cancelled(ctx) && now_ns() < give_up) sleep_us(200);
  at_store((int *)user, 1);
  return TG_TASK_SUCCEEDED;
}

static void test_stats(void) {
  tg_pool *pool = tap_pool(2, 0, 0);
  tg_pool_stats st = TG_POOL_STATS_INIT;
  CHECK(st.struct_size == sizeof(tg_pool_stats), "TG_POOL_STATS_INIT sets struct_size");
  CHECK_RC(tg_pool_stats_get(pool, NULL), TG_EINVAL);
  tg_pool_stats bad = TG_POOL_STATS_INIT;
  bad.struct_size = 4;
  CHECK_RC(tg_pool_stats_get(pool, &bad), TG_EVERSION);
  CHECK_RC(tg_pool_stats_get(pool, &st), TG_OK);
  CHECK(st.workers == 2 && st.submitted == 0 && st.ended == 0, "fresh pool: %u workers, %llu submitted", st.workers,
        (unsigned long long)st.submitted);

  probe_t ok = {0}, fail = {0}, gate = {0};
  ok.workers = fail.workers = gate.workers = 2;
  fail.result = TG_TASK_FAILED;
  gate.block = 1;
  int timed_out_returned = 0;
  CHECK_RC(submit(pool, "s-ok1", &ok), TG_OK);
  CHECK_RC(submit(pool, "s-ok2", &ok), TG_OK);
  CHECK_RC(submit(pool, "s-fail", &fail), TG_OK);
  const char *on_fail[] = {"s-fail"};
  tg_task_desc d = desc("s-skip", &ok);
  d.deps = on_fail;
  d.n_deps = 1;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  d = desc("s-timeout", NULL);
  d.fn = spin_until_cancelled;
  d.user = &timed_out_returned;
  d.timeout_ms = 30;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "s-timeout", WAIT_MS), TG_OK);
  CHECK(wait_flag(&timed_out_returned, 1, WAIT_MS), "timed-out processor returned");
  CHECK_RC(submit(pool, "s-gate", &gate), TG_OK);
  const char *on_gate[] = {"s-gate"};
  d = desc("s-cancel", &ok);
  d.deps = on_gate;
  d.n_deps = 1;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_cancel(pool, "s-cancel"), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "s-skip", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "s-ok2", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "s-ok1", WAIT_MS), TG_OK);

  /* While the gate runs only the submission count is exact: a waiter may
     return a moment before the ended counts include its task. */
  CHECK_RC(tg_pool_stats_get(pool, &st), TG_OK);
  CHECK(last_error_empty(), "success clears the detail");
  CHECK(st.submitted == 7, "submitted %llu", (unsigned long long)st.submitted);
  CHECK(st.ended <= 6, "ended %llu (the gate still runs)", (unsigned long long)st.ended);

  at_store(&gate.release, 1);
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_stats_get(pool, &st), TG_OK);
  CHECK(st.submitted == 7, "submitted %llu", (unsigned long long)st.submitted);
  CHECK(st.succeeded == 3, "succeeded %llu", (unsigned long long)st.succeeded);
  CHECK(st.failed == 1, "failed %llu", (unsigned long long)st.failed);
  CHECK(st.skipped == 1, "skipped %llu", (unsigned long long)st.skipped);
  CHECK(st.timed_out == 1, "timed_out %llu", (unsigned long long)st.timed_out);
  CHECK(st.cancelled == 1, "cancelled %llu", (unsigned long long)st.cancelled);
  CHECK(st.ended == 7, "ended %llu", (unsigned long long)st.ended);
  CHECK(st.ended == st.succeeded + st.failed + st.timed_out + st.cancelled + st.skipped, "ended is the sum");
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* ---- shutdown and destroy ------------------------------------------------------------ */

static void test_shutdown_destroy(void) {
  tg_pool *pool = tap_pool(2, 0, 0);
  probe_t stubborn = {0}, p = {0};
  stubborn.block = 1;
  stubborn.workers = p.workers = 2;

  CHECK_RC(tg_pool_shutdown(pool, 2, 0), TG_EINVAL);
  CHECK_RC(tg_pool_shutdown(pool, -1, 0), TG_EINVAL);
  CHECK(contains(tg_last_error(), "-1") || contains(tg_last_error(), "mode"), "detail names the mode");

  CHECK_RC(submit(pool, "stubborn", &stubborn), TG_OK);
  CHECK(wait_flag(&stubborn.started, 1, WAIT_MS), "stubborn started");

  /* Busy: destroy refuses and leaves the pool working. */
  CHECK_RC(tg_pool_destroy(pool), TG_EBUSY);
  CHECK(!last_error_empty(), "EBUSY has a detail");
  CHECK_RC(submit(pool, "still-usable", &p), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "still-usable", WAIT_MS), TG_OK);
  tg_result r = result_of(pool, "still-usable");
  CHECK(r.status == TG_STATUS_SUCCEEDED, "status %s", tg_status_name(r.status));

  /* Drain cannot finish in time; submissions are refused from the first call. */
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, 0), TG_ETIMEDOUT);
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, 30), TG_ETIMEDOUT);
  CHECK_RC(submit(pool, "too-late", &p), TG_ESHUTDOWN);
  CHECK_RC(tg_pool_destroy(pool), TG_EBUSY);
  /* Then release it: drain completes. */
  at_store(&stubborn.release, 1);
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, 0), TG_OK); /* again: already done */
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_ABORT, 0), TG_OK);
  r = result_of(pool, "stubborn");
  CHECK(r.status == TG_STATUS_SUCCEEDED, "drained task succeeded (%s)", tg_status_name(r.status));
  CHECK_RC(tg_pool_destroy(pool), TG_OK);

  /* A processor that ignores cancellation keeps the pool busy after cancel:
     its context points into the pool. */
  pool = tap_pool(2, 0, 0);
  probe_t deaf = {0};
  deaf.block = 1;
  deaf.ignore_cancel = 1;
  deaf.workers = 2;
  CHECK_RC(submit(pool, "deaf", &deaf), TG_OK);
  CHECK(wait_flag(&deaf.started, 1, WAIT_MS), "deaf started");
  CHECK_RC(tg_pool_cancel(pool, "deaf"), TG_OK);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  CHECK(wait_flag(&deaf.saw_cancel, 1, WAIT_MS), "deaf saw the cancel");
  CHECK_RC(tg_pool_destroy(pool), TG_EBUSY);
  /* ABORT waits for running processors to return: time out, then release. */
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_ABORT, 20), TG_ETIMEDOUT);
  at_store(&deaf.release, 1);
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_ABORT, WAIT_MS), TG_OK);
  r = result_of(pool, "deaf");
  CHECK(r.status == TG_STATUS_CANCELLED, "status %s", tg_status_name(r.status));
  CHECK(r.output == NULL, "late output discarded");
  CHECK_RC(tg_pool_destroy(pool), TG_OK);

  /* DRAIN that times out may be followed by ABORT. */
  pool = tap_pool(1, 0, 0);
  probe_t waiter = {0}, queued = {0};
  waiter.block = 1;
  waiter.workers = queued.workers = 1;
  CHECK_RC(submit(pool, "blocking", &waiter), TG_OK);
  CHECK_RC(submit(pool, "behind", &queued), TG_OK);
  CHECK(wait_flag(&waiter.started, 1, WAIT_MS), "blocking started");
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, 10), TG_ETIMEDOUT);
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_ABORT, WAIT_MS), TG_OK);
  r = result_of(pool, "behind");
  CHECK(r.status == TG_STATUS_CANCELLED && at_load(&queued.runs) == 0, "queued task cancelled (%s), ran %d",
        tg_status_name(r.status), at_load(&queued.runs));
  r = result_of(pool, "blocking");
  CHECK(r.status == TG_STATUS_CANCELLED, "running task cancelled (%s)", tg_status_name(r.status));
  CHECK(at_load(&waiter.saw_cancel) == 1, "the running processor saw the abort");
  CHECK_RC(tg_pool_destroy(pool), TG_OK);

  /* An idle pool that was never shut down is shut down by destroy. */
  pool = tap_pool(4, 0, 0);
  probe_t idle = {0};
  idle.workers = 4;
  CHECK_RC(submit(pool, "idle", &idle), TG_OK);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* ---- tg_last_error is per thread --------------------------------------------- */

static void *fail_on_other_thread(void *arg) {
  (void)arg;
  tg_pool_create(NULL, NULL); /* fails with a detail on this thread only */
  return (void *)(intptr_t)(tg_last_error()[0] != '\0');
}

static void test_last_error_thread_local(void) {
  tg_pool_stats st = TG_POOL_STATS_INIT;
  tg_pool *pool = tap_pool(1, 0, 0);
  CHECK_RC(tg_pool_stats_get(pool, &st), TG_OK);
  CHECK(last_error_empty(), "empty after success");
  pthread_t t;
  void *had_detail = NULL;
  CHECK(pthread_create(&t, NULL, fail_on_other_thread, NULL) == 0, "thread");
  pthread_join(t, &had_detail);
  CHECK(had_detail != NULL, "the other thread saw its detail");
  CHECK(last_error_empty(), "this thread's detail is untouched: '%s'", tg_last_error());
  /* A failure is replaced by the next success. */
  CHECK_RC(tg_pool_wait(pool, "nobody", 0), TG_ENOTFOUND);
  CHECK(!last_error_empty(), "detail after failure");
  CHECK_RC(tg_pool_wait_all(pool, 0), TG_OK);
  CHECK(last_error_empty(), "cleared by the next success");
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* ---- end hooks and range waits (0.3) ---------------------------------------- */

/* What one task's end hook saw. */
typedef struct end_log {
  int calls;
  int status;
  int result_status; /* tg_pool_result_at inside the hook */
  int result_rc;
  uint64_t seq;
  pthread_t thread;
  int slow;          /* sleep this many ms inside the hook */
  int finished;      /* set when the hook returns */
  tg_pool *pool_seen;
  tg_pool *submit_into; /* submit one more task from inside the hook */
  int inner_rc;
} end_log;

static int succeed_fn(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  return TG_TASK_SUCCEEDED;
}

static void end_hook(tg_pool *pool, uint64_t seq, int status, void *user) {
  end_log *e = (end_log *)((probe_t *)user)->hook;
  e->seq = seq;
  e->status = status;
  e->pool_seen = pool;
  e->thread = pthread_self();
  tg_result r = TG_RESULT_INIT;
  e->result_rc = tg_pool_result_at(pool, seq, &r);
  e->result_status = r.status;
  if (e->submit_into) {
    tg_task_desc d = TG_TASK_DESC_INIT;
    d.fn = succeed_fn;
    e->inner_rc = tg_pool_submit(e->submit_into, &d, NULL);
  }
  if (e->slow) sleep_us(e->slow * 1000L);
  at_store(&e->finished, 1);
  at_add(&e->calls, 1);
}

/* A probe task whose end hook writes into e. */
static tg_task_desc hooked(const char *id, probe_t *p, end_log *e) {
  p->hook = e;
  tg_task_desc d = desc(id, p);
  d.on_end = end_hook;
  return d;
}

static void test_end_hooks_at(uint32_t workers) {
  tg_pool *pool = tap_pool(workers, 0, 0);
  pthread_t me = pthread_self();
  enum { N = 8 };
  probe_t p[N];
  end_log e[N];
  memset(p, 0, sizeof p);
  memset(e, 0, sizeof e);
  uint64_t seq = 0;

  /* Succeeded and failed: once each, on a worker, with the result readable. */
  tg_task_desc d = hooked("ok", &p[0], &e[0]);
  CHECK_RC(tg_pool_submit(pool, &d, &seq), TG_OK);
  p[1].result = TG_TASK_FAILED;
  d = hooked("bad", &p[1], &e[1]);
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK(wait_flag(&e[0].calls, 1, WAIT_MS) && wait_flag(&e[1].calls, 1, WAIT_MS), "W=%u: hooks of ok and bad ran", workers);
  CHECK(e[0].seq == seq && e[0].status == TG_STATUS_SUCCEEDED, "W=%u: ok hook: seq %llu status %s", workers,
        (unsigned long long)e[0].seq, tg_status_name(e[0].status));
  CHECK(e[0].result_rc == TG_OK && e[0].result_status == TG_STATUS_SUCCEEDED, "W=%u: result final inside the hook (%s)",
        workers, tg_status_name(e[0].result_status));
  CHECK(e[0].pool_seen == pool, "W=%u: the hook gets the pool handle", workers);
  CHECK(!pthread_equal(e[0].thread, me), "W=%u: a worker ran the hook", workers);
  CHECK(e[1].status == TG_STATUS_FAILED && e[1].result_status == TG_STATUS_FAILED, "W=%u: bad hook %s", workers,
        tg_status_name(e[1].status));

  /* Skipped at submission: the hook runs on the submitting thread before submit returns. */
  const char *on_bad[] = {"bad"};
  d = hooked("late-child", &p[2], &e[2]);
  d.deps = on_bad;
  d.n_deps = 1;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK(at_load(&e[2].calls) == 1 && e[2].status == TG_STATUS_SKIPPED, "W=%u: skipped at submission: hook ran in submit (%d calls, %s)",
        workers, at_load(&e[2].calls), tg_status_name(e[2].status));
  CHECK(pthread_equal(e[2].thread, me), "W=%u: on the submitting thread", workers);
  CHECK(p[2].runs == 0, "W=%u: the skipped task never ran", workers);

  /* Cancelled while blocked in its processor, and a dependent skipped by the cascade. */
  p[3].block = 1;
  d = hooked("blocker", &p[3], &e[3]);
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  const char *on_blocker[] = {"blocker"};
  d = hooked("dependent", &p[4], &e[4]);
  d.deps = on_blocker;
  d.n_deps = 1;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK(wait_flag(&p[3].started, 1, WAIT_MS), "W=%u: blocker started", workers);
  CHECK_RC(tg_pool_cancel(pool, "blocker"), TG_OK);
  CHECK(at_load(&e[3].calls) == 1 && e[3].status == TG_STATUS_CANCELLED && pthread_equal(e[3].thread, me),
        "W=%u: cancel runs the hook on the cancelling thread (%s)", workers, tg_status_name(e[3].status));
  CHECK(at_load(&e[4].calls) == 1 && e[4].status == TG_STATUS_SKIPPED, "W=%u: the dependent's hook: %s", workers,
        tg_status_name(e[4].status));
  CHECK(wait_flag(&p[3].returned, 1, WAIT_MS), "W=%u: blocker returned", workers);

  /* Cancel by submission number. */
  probe_t gate2 = {0};
  gate2.block = 1;
  uint64_t gate_seq = 0;
  tg_task_desc g = desc(NULL, &gate2);
  g.on_end = end_hook;
  end_log ge;
  memset(&ge, 0, sizeof ge);
  gate2.hook = &ge;
  CHECK_RC(tg_pool_submit(pool, &g, &gate_seq), TG_OK);
  CHECK(wait_flag(&gate2.started, 1, WAIT_MS), "W=%u: anonymous blocker started", workers);
  CHECK_RC(tg_pool_cancel_at(pool, gate_seq), TG_OK);
  CHECK(at_load(&ge.calls) == 1 && ge.status == TG_STATUS_CANCELLED, "W=%u: cancel_at ran the hook (%s)", workers,
        tg_status_name(ge.status));
  CHECK_RC(tg_pool_cancel_at(pool, gate_seq), TG_EFINISHED);
  CHECK_RC(tg_pool_cancel_at(pool, gate_seq + 1000000), TG_ENOTFOUND);
  CHECK(contains(tg_last_error(), "beyond"), "W=%u: cancel_at detail: %s", workers, tg_last_error());
  CHECK_RC(tg_pool_cancel_at(NULL, 0), TG_EINVAL);
  CHECK(wait_flag(&gate2.returned, 1, WAIT_MS), "W=%u: anonymous blocker returned", workers);

  /* Timed out: the hook comes from the timeout thread. */
  p[5].block = 1;
  d = hooked("slowpoke", &p[5], &e[5]);
  d.timeout_ms = 30;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK(wait_flag(&e[5].calls, 1, WAIT_MS) && e[5].status == TG_STATUS_TIMED_OUT, "W=%u: timeout hook: %s", workers,
        tg_status_name(e[5].status));

  /* A hook may submit; a 0.2-sized description has no hook. */
  e[6].submit_into = pool;
  d = hooked("submitter", &p[6], &e[6]);
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK(wait_flag(&e[6].calls, 1, WAIT_MS) && e[6].inner_rc == TG_OK, "W=%u: submit from a hook: %d", workers, e[6].inner_rc);
  d = hooked("old-size", &p[7], &e[7]);
  d.struct_size = (uint32_t)offsetof(tg_task_desc, on_end);
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "old-size", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  CHECK(at_load(&e[7].calls) == 0, "W=%u: a 0.2 description carries no hook", workers);
  for (int i = 0; i < 7; i++) CHECK(at_load(&e[i].calls) == 1, "W=%u: hook %d called exactly once (%d)", workers, i, at_load(&e[i].calls));

  /* Range waits over an anonymous batch. */
  enum { B = 300 };
  tg_task_desc batch[B];
  for (int i = 0; i < B; i++) {
    tg_task_desc x = TG_TASK_DESC_INIT;
    x.fn = succeed_fn;
    batch[i] = x;
  }
  uint64_t first = 0;
  CHECK_RC(tg_pool_submit_batch(pool, batch, B, &first), TG_OK);
  CHECK_RC(tg_pool_wait_range(pool, first, B, WAIT_MS), TG_OK);
  for (uint64_t k = first; k < first + B; k++) {
    tg_result r = TG_RESULT_INIT;
    if (tg_pool_result_at(pool, k, &r) != TG_OK || r.status != TG_STATUS_SUCCEEDED) {
      CHECK(0, "W=%u: task %llu of the range ended", workers, (unsigned long long)k);
      break;
    }
  }
  CHECK_RC(tg_pool_wait_range(pool, first + B, 0, 0), TG_OK);
  CHECK_RC(tg_pool_wait_range(pool, first, B + 1, 0), TG_ENOTFOUND);
  CHECK(contains(tg_last_error(), "submitted"), "W=%u: detail: %s", workers, tg_last_error());
  CHECK_RC(tg_pool_wait_range(pool, UINT64_MAX, 2, 0), TG_ENOTFOUND);
  CHECK_RC(tg_pool_wait_range(pool, 0, SIZE_MAX, 0), TG_ENOTFOUND);
  CHECK_RC(tg_pool_wait_range(NULL, 0, 1, 0), TG_EINVAL);
  probe_t held = {0};
  held.block = 1;
  tg_task_desc h = desc(NULL, &held);
  CHECK_RC(tg_pool_submit(pool, &h, &seq), TG_OK);
  CHECK_RC(tg_pool_wait_range(pool, first, (size_t)(seq - first + 1), 20), TG_ETIMEDOUT);
  at_store(&held.release, 1);
  CHECK_RC(tg_pool_wait_range(pool, seq, 1, WAIT_MS), TG_OK);

  /* Shutdown returns only after every hook has returned. */
  probe_t last = {0};
  end_log le;
  memset(&le, 0, sizeof le);
  le.slow = 60;
  d = hooked("last", &last, &le);
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK(at_load(&le.finished) == 1, "W=%u: shutdown waited for the slow hook", workers);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

static void test_end_hooks(void) {
  const uint32_t counts[] = {1, 2, 4, 8};
  for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) test_end_hooks_at(counts[i]);
}

int main(void) {
  tap_init();
  test_versions();
  test_error_table();
  test_status_names();
  test_handles();
  test_create();
  test_submit_errors();
  test_batches();
  test_wait_and_cancel();
  test_results();
  test_next_completed();
  test_stats();
  test_shutdown_destroy();
  test_last_error_thread_local();
  test_end_hooks();
  return tg_test_summary();
}
