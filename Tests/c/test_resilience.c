/*
 * test_resilience.c: policies through the C API, on a virtual clock.
 *
 * Retries wait exactly their configured delays (the task does not run one
 * nanosecond early and holds no worker meanwhile), a retry-after replaces
 * the backoff, a permanent failure stops at once, the breaker opens after N
 * failures and lets a probe through exactly at t + open_ms, credentials
 * rotate on 429 and never show in errors, a try-submit says no at once,
 * worker health calls the recover hook, and bad input gets codes. The
 * retry and breaker cases run at 1, 2, 4 and 8 workers.
 */
#define _POSIX_C_SOURCE 200809L
#include "tap.h"

#define MS 1000000LL

typedef struct calls {
  int n;          /* calls so far */
  int fail_until; /* calls 1 .. fail_until fail */
  int rc;         /* what a failing call returns */
  int status;     /* status code a failing call reports */
  int64_t retry_after_ms; /* < 0: none */
} calls;

static int flaky(tg_task_ctx *ctx, void *user) {
  calls *c = user;
  int n = at_add(&c->n, 1);
  CHECK(tg_task_attempt(ctx) >= 1, "attempt numbers start at 1");
  if (n <= c->fail_until) {
    if (c->status) tg_task_set_status_code(ctx, c->status);
    if (c->retry_after_ms >= 0) tg_task_set_retry_after(ctx, c->retry_after_ms);
    tg_task_set_error(ctx, "service unavailable");
    return c->rc;
  }
  tg_task_set_output(ctx, "ok", 2);
  return TG_TASK_SUCCEEDED;
}

/* Lets real time pass while the virtual clock stands still, so a retry that
   ran too early would have run by the next check. */
static void settle_ms(int ms) { sleep_us(ms * 1000L); }

static tg_pool *pool_on(tg_clock *clock, uint32_t workers) {
  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.workers = workers;
  o.clock = clock;
  tg_pool *p = NULL;
  CHECK_RC(tg_pool_create(&o, &p), TG_OK);
  return p;
}

static void test_retry_delays(uint32_t workers) {
  tg_clock *clock = NULL;
  CHECK_RC(tg_clock_create_virtual(1000 * MS, &clock), TG_OK);
  tg_pool *p = pool_on(clock, workers);
  int64_t delays[] = {100, 500};
  tg_retry_options r = TG_RETRY_OPTIONS_INIT;
  r.max_attempts = 3;
  r.jitter = TG_JITTER_NONE;
  r.delays_ms = delays;
  r.n_delays = 2;
  tg_policy_options po = TG_POLICY_OPTIONS_INIT;
  po.retry = &r;
  tg_policy *policy = NULL;
  CHECK_RC(tg_policy_create(p, &po, &policy), TG_OK);

  calls c = {0, 2, TG_TASK_RETRY, 503, -1};
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.id = "t";
  d.fn = flaky;
  d.user = &c;
  d.policy = policy;
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
  CHECK(wait_flag(&c.n, 1, WAIT_MS), "first attempt ran (%d workers)", workers);
  settle_ms(30);
  CHECK(at_load(&c.n) == 1, "no retry before the clock moves (%d calls)", at_load(&c.n));
  CHECK_RC(tg_pool_wait(p, "t", 0), TG_ETIMEDOUT);
  tg_clock_advance(clock, 99 * MS);
  settle_ms(30);
  CHECK(at_load(&c.n) == 1, "still waiting at +99 ms (%d calls)", at_load(&c.n));
  tg_clock_advance(clock, 1 * MS);
  CHECK(wait_flag(&c.n, 2, WAIT_MS), "second attempt exactly at +100 ms");
  tg_clock_advance(clock, 499 * MS);
  settle_ms(30);
  CHECK(at_load(&c.n) == 2, "third attempt not before +500 ms (%d calls)", at_load(&c.n));
  tg_clock_advance(clock, 1 * MS);
  CHECK_RC(tg_pool_wait(p, "t", WAIT_MS), TG_OK);
  tg_result res = TG_RESULT_INIT;
  CHECK_RC(tg_pool_result(p, "t", &res), TG_OK);
  CHECK(res.status == TG_STATUS_SUCCEEDED, "succeeded on the third attempt (status %d)", res.status);
  CHECK(res.attempts == 3, "3 attempts recorded (%u)", res.attempts);
  CHECK(res.n_retry_delays == 2 && res.retry_delays_ns && res.retry_delays_ns[0] == 100 * MS &&
            res.retry_delays_ns[1] == 500 * MS,
        "the delays used are in the result");
  CHECK(res.status_code == 503, "the status code reported is kept (%d)", res.status_code);
  CHECK(res.error == NULL, "a success carries no error from earlier attempts");

  /* A permanent failure stops at once; a plain failure exhausts its attempts. */
  calls perm = {0, 100, TG_TASK_PERMANENT, 400, -1};
  d.id = "perm";
  d.user = &perm;
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(p, "perm", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_result(p, "perm", &res), TG_OK);
  CHECK(res.status == TG_STATUS_FAILED && res.attempts == 1 && (res.flags & TG_RESULT_PERMANENT),
        "permanent: one attempt, flagged (attempts %u, flags 0x%x)", res.attempts, res.flags);
  CHECK(res.error && strcmp(res.error, "service unavailable") == 0, "its error is the processor's");

  /* Retry-after overrides the computed delay. */
  calls ra = {0, 1, TG_TASK_FAILED, 429, 250};
  d.id = "ra";
  d.user = &ra;
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
  CHECK(wait_flag(&ra.n, 1, WAIT_MS), "retry-after: first attempt");
  settle_ms(20);
  tg_clock_advance(clock, 249 * MS);
  settle_ms(30);
  CHECK(at_load(&ra.n) == 1, "retry-after 250 ms: not at +249 ms");
  tg_clock_advance(clock, 1 * MS);
  CHECK_RC(tg_pool_wait(p, "ra", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_result(p, "ra", &res), TG_OK);
  CHECK(res.status == TG_STATUS_SUCCEEDED && res.n_retry_delays == 1 && res.retry_delays_ns[0] == 250 * MS,
        "the retry-after was the delay");

  /* Exhausted: all attempts fail. */
  calls ex = {0, 100, TG_TASK_FAILED, 0, 0};
  d.id = "ex";
  d.user = &ex;
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(p, "ex", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_result(p, "ex", &res), TG_OK);
  CHECK(res.status == TG_STATUS_FAILED && res.attempts == 3 && (res.flags & TG_RESULT_RETRIES_EXHAUSTED),
        "exhausted after 3 attempts (attempts %u, flags 0x%x)", res.attempts, res.flags);

  /* A task waiting out its delay can be cancelled and never runs again. */
  calls cc = {0, 100, TG_TASK_RETRY, 0, -1};
  d.id = "cancel-me";
  d.user = &cc;
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
  CHECK(wait_flag(&cc.n, 1, WAIT_MS), "cancel: first attempt");
  settle_ms(20);
  CHECK_RC(tg_pool_cancel(p, "cancel-me"), TG_OK);
  tg_clock_advance(clock, 10000 * MS);
  settle_ms(30);
  CHECK(at_load(&cc.n) == 1, "a cancelled retry never runs (%d calls)", at_load(&cc.n));

  CHECK_RC(tg_pool_shutdown(p, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_destroy(p), TG_OK);
  CHECK_RC(tg_clock_destroy(clock), TG_OK);
}

static void test_breaker(uint32_t workers) {
  tg_clock *clock = NULL;
  CHECK_RC(tg_clock_create_virtual(0, &clock), TG_OK);
  tg_pool *p = pool_on(clock, workers);
  tg_breaker_options b = TG_BREAKER_OPTIONS_INIT;
  b.failure_threshold = 3;
  b.success_threshold = 1;
  b.open_ms = 5000;
  tg_policy_options po = TG_POLICY_OPTIONS_INIT;
  po.breaker = &b;
  tg_policy *policy = NULL;
  CHECK_RC(tg_policy_create(p, &po, &policy), TG_OK);
  CHECK_RC(tg_pool_set_policy(p, NULL, policy), TG_OK); /* the pool's default */

  calls c = {0, 3, TG_TASK_FAILED, 503, -1};
  char id[32];
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.fn = flaky;
  d.user = &c;
  d.key = "api.example";
  for (int k = 0; k < 3; k++) { /* one at a time: consecutive failures */
    snprintf(id, sizeof id, "f%d", k);
    d.id = id;
    CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
    CHECK_RC(tg_pool_wait(p, id, WAIT_MS), TG_OK);
  }
  tg_breaker_state st = TG_BREAKER_STATE_INIT;
  CHECK_RC(tg_policy_breaker_state(policy, "api.example", &st), TG_OK);
  CHECK(st.state == TG_BREAKER_OPEN && st.times_opened == 1, "open after 3 failures (state %d)", st.state);
  d.id = "rejected";
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(p, "rejected", WAIT_MS), TG_OK);
  tg_result res = TG_RESULT_INIT;
  CHECK_RC(tg_pool_result(p, "rejected", &res), TG_OK);
  CHECK(res.status == TG_STATUS_REJECTED && (res.flags & TG_RESULT_BREAKER_OPEN) && res.attempts == 0,
        "fails fast with its own status (status %d)", res.status);
  CHECK(res.error && strstr(res.error, "api.example"), "the error names the breaker's key (%s)", res.error ? res.error : "");
  CHECK(at_load(&c.n) == 3, "the processor was not called");
  /* Another key is not affected. */
  d.id = "other";
  d.key = "other.example";
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(p, "other", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_result(p, "other", &res), TG_OK);
  CHECK(res.status == TG_STATUS_SUCCEEDED, "a breaker per key");
  d.key = "api.example";
  /* Still open at t + 5000 - 1 ms; a probe goes through at t + 5000 ms. */
  tg_clock_advance(clock, 4999 * MS);
  CHECK_RC(tg_policy_breaker_state(policy, "api.example", &st), TG_OK);
  CHECK(st.state == TG_BREAKER_OPEN, "still open at +4999 ms (state %d)", st.state);
  tg_clock_advance(clock, 1 * MS);
  CHECK_RC(tg_policy_breaker_state(policy, "api.example", &st), TG_OK);
  CHECK(st.state == TG_BREAKER_HALF_OPEN, "half-open at +5000 ms (state %d)", st.state);
  d.id = "probe";
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(p, "probe", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_result(p, "probe", &res), TG_OK);
  CHECK(res.status == TG_STATUS_SUCCEEDED, "the probe ran and succeeded (status %d)", res.status);
  CHECK_RC(tg_policy_breaker_state(policy, "api.example", &st), TG_OK);
  CHECK(st.state == TG_BREAKER_CLOSED, "closed after the probe (state %d)", st.state);
  /* Forced open refuses; reset closes. */
  CHECK_RC(tg_policy_breaker_command(policy, "api.example", TG_BREAKER_FORCE_OPEN), TG_OK);
  d.id = "forced";
  CHECK_RC(tg_pool_try_submit(p, &d, NULL), TG_ELIMITED);
  CHECK(strstr(tg_last_error(), "forced_open") != NULL, "try-submit says why (%s)", tg_last_error());
  CHECK_RC(tg_policy_breaker_command(policy, "api.example", TG_BREAKER_RESET), TG_OK);
  CHECK_RC(tg_pool_try_submit(p, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(p, "forced", WAIT_MS), TG_OK);
  tg_pool_stats stats = TG_POOL_STATS_INIT;
  CHECK_RC(tg_pool_stats_get(p, &stats), TG_OK);
  CHECK(stats.rejected == 1 && stats.ended == stats.submitted, "stats count the rejection (%llu)",
        (unsigned long long)stats.rejected);
  CHECK_RC(tg_pool_shutdown(p, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_destroy(p), TG_OK);
  CHECK_RC(tg_clock_destroy(clock), TG_OK);
}

/* ---- credentials ----------------------------------------------------------- */

static int uses_key(tg_task_ctx *ctx, void *user) {
  (void)user;
  tg_credential c = TG_CREDENTIAL_INIT;
  if (tg_task_credential(ctx, &c) != TG_OK) return TG_TASK_PERMANENT;
  if (strcmp(c.key, "sk-first-SECRET") == 0) {
    tg_task_set_status_code(ctx, 429);
    char msg[128];
    snprintf(msg, sizeof msg, "rate limited for key %s", c.key); /* a careless processor */
    tg_task_set_error(ctx, msg);
    return TG_TASK_RETRY;
  }
  if (strcmp(c.key, "sk-second-SECRET") == 0) {
    tg_task_set_output(ctx, c.model ? c.model : "-", strlen(c.model ? c.model : "-"));
    return TG_TASK_SUCCEEDED;
  }
  return TG_TASK_FAILED;
}

static int leaks_key(tg_task_ctx *ctx, void *user) {
  (void)user;
  tg_credential c = TG_CREDENTIAL_INIT;
  tg_task_credential(ctx, &c);
  char msg[128];
  snprintf(msg, sizeof msg, "daily quota used up for %s", c.key);
  tg_task_set_error(ctx, msg);
  return TG_TASK_PERMANENT;
}

static void test_credentials(void) {
  tg_clock *clock = NULL;
  CHECK_RC(tg_clock_create_virtual(0, &clock), TG_OK);
  tg_pool *p = pool_on(clock, 2);
  tg_credential list[2] = {TG_CREDENTIAL_INIT, TG_CREDENTIAL_INIT};
  list[0].key = "sk-first-SECRET";
  list[1].key = "sk-second-SECRET";
  list[1].model = "model-b";
  tg_credentials *ring = NULL;
  CHECK_RC(tg_credentials_create(p, list, 2, 1000, &ring), TG_OK);
  tg_retry_options r = TG_RETRY_OPTIONS_INIT;
  r.max_attempts = 3;
  r.base_delay_ms = 0;
  tg_policy_options po = TG_POLICY_OPTIONS_INIT;
  po.retry = &r;
  po.credentials = ring;
  tg_policy *policy = NULL;
  CHECK_RC(tg_policy_create(p, &po, &policy), TG_OK);
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.id = "rot";
  d.fn = uses_key;
  d.policy = policy;
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(p, "rot", WAIT_MS), TG_OK);
  tg_result res = TG_RESULT_INIT;
  CHECK_RC(tg_pool_result(p, "rot", &res), TG_OK);
  CHECK(res.status == TG_STATUS_SUCCEEDED && res.attempts == 2, "rotated on 429 and succeeded on the second key (status %d, attempts %u)",
        res.status, res.attempts);
  CHECK(res.output_len == 7 && memcmp(res.output, "model-b", 7) == 0, "the processor saw the second key's model");
  CHECK(res.flags & TG_RESULT_ROTATED, "flagged as rotated (0x%x)", res.flags);
  tg_credentials_status cs = TG_CREDENTIALS_STATUS_INIT;
  CHECK_RC(tg_credentials_status_get(ring, &cs), TG_OK);
  CHECK(cs.count == 2 && cs.cooling_down == 1 && cs.current == 1, "the first key cools down (cooling %u, current %u)",
        cs.cooling_down, cs.current);
  tg_clock_advance(clock, 1000 * MS);
  CHECK_RC(tg_credentials_status_get(ring, &cs), TG_OK);
  CHECK(cs.cooling_down == 0 && cs.available == 2, "and comes back after its cool-down");

  /* "daily quota" exhausts; the secret never shows in the error. */
  d.fn = leaks_key;
  d.id = "leak1";
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(p, "leak1", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_result(p, "leak1", &res), TG_OK);
  CHECK(res.status == TG_STATUS_FAILED && res.error && !strstr(res.error, "SECRET") && strstr(res.error, "[credential"),
        "the secret is redacted (%s)", res.error ? res.error : "(null)");
  d.id = "leak2";
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(p, "leak2", WAIT_MS), TG_OK);
  d.id = "none-left";
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(p, "none-left", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_result(p, "none-left", &res), TG_OK);
  CHECK(res.status == TG_STATUS_FAILED && (res.flags & TG_RESULT_CREDENTIALS_EXHAUSTED) && res.attempts == 0,
        "all exhausted: fails without running (flags 0x%x)", res.flags);
  CHECK(res.error && strstr(res.error, "all 2 credentials are exhausted") && !strstr(res.error, "SECRET"),
        "and says so (%s)", res.error ? res.error : "(null)");
  CHECK_RC(tg_pool_shutdown(p, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_destroy(p), TG_OK);
  tg_clock_destroy(clock);
}

/* ---- limits, health, bad input ---------------------------------------------- */

static int gate;
static int blocker(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  wait_flag(&gate, 1, WAIT_MS);
  return TG_TASK_SUCCEEDED;
}

static int recovered;
static int recover_hook(tg_pool *pool, int worker, void *user) {
  (void)pool;
  (void)worker;
  at_add(user, 1);
  return 0;
}

static int always_fails(tg_task_ctx *ctx, void *user) {
  (void)user;
  tg_task_set_status_code(ctx, 500);
  return TG_TASK_FAILED;
}

static void test_limits_health_and_bad_input(void) {
  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.workers = 1;
  o.unhealthy_after = 2;
  o.max_recoveries = 2;
  o.recover = recover_hook;
  o.recover_user = &recovered;
  tg_pool *p = NULL;
  CHECK_RC(tg_pool_create(&o, &p), TG_OK);
  tg_limit_options l = TG_LIMIT_OPTIONS_INIT;
  l.max_concurrent = 1;
  tg_policy_options po = TG_POLICY_OPTIONS_INIT;
  po.limit = &l;
  tg_policy *policy = NULL;
  CHECK_RC(tg_policy_create(p, &po, &policy), TG_OK);
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.fn = blocker;
  d.policy = policy;
  d.id = "first";
  CHECK_RC(tg_pool_try_submit(p, &d, NULL), TG_OK);
  d.id = "second";
  CHECK_RC(tg_pool_try_submit(p, &d, NULL), TG_ELIMITED);
  CHECK(strstr(tg_last_error(), "no room") != NULL, "the refusal says why (%s)", tg_last_error());
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK); /* a plain submit waits its turn */
  at_store(&gate, 1);
  CHECK_RC(tg_pool_wait_all(p, WAIT_MS), TG_OK);
  tg_result res = TG_RESULT_INIT;
  CHECK_RC(tg_pool_result(p, "second", &res), TG_OK);
  CHECK(res.status == TG_STATUS_SUCCEEDED, "the waiting task ran after the slot freed");

  /* Health: 2 failures in a row make the worker unhealthy: recover runs. */
  tg_task_desc f = TG_TASK_DESC_INIT;
  f.fn = always_fails;
  f.policy = policy;
  for (int k = 0; k < 6; k++) {
    CHECK_RC(tg_pool_submit(p, &f, NULL), TG_OK);
    CHECK_RC(tg_pool_wait_all(p, WAIT_MS), TG_OK);
  }
  tg_worker_health h = TG_WORKER_HEALTH_INIT;
  CHECK_RC(tg_pool_worker_health(p, 0, &h), TG_OK);
  CHECK(at_load(&recovered) == 2 && h.recovery_attempts == 2, "recover ran at most max_recoveries times (%d, %u)",
        at_load(&recovered), h.recovery_attempts);
  CHECK(h.failures == 6 && h.last_status_code == 500, "health counts failures (%llu) and the last code (%d)",
        (unsigned long long)h.failures, h.last_status_code);
  tg_result last = TG_RESULT_INIT;
  CHECK_RC(tg_pool_result_at(p, 7, &last), TG_OK);
  CHECK(last.flags & TG_RESULT_EXHAUSTED_RECOVERY, "results are marked once recovery is spent (0x%x)", last.flags);
  CHECK_RC(tg_pool_worker_health(p, 1, &h), TG_ERANGE);

  /* Bad input. */
  tg_retry_options r = TG_RETRY_OPTIONS_INIT;
  r.multiplier = 0.5;
  po.limit = NULL;
  po.retry = &r;
  tg_policy *bad = NULL;
  CHECK_RC(tg_policy_create(p, &po, &bad), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "multiplier") != NULL, "names the field (%s)", tg_last_error());
  r.multiplier = 2;
  r.jitter = 42;
  CHECK_RC(tg_policy_create(p, &po, &bad), TG_EINVAL);
  r.jitter = TG_JITTER_FULL;
  r.struct_size = 3;
  CHECK_RC(tg_policy_create(p, &po, &bad), TG_EVERSION);
  r.struct_size = sizeof r;
  tg_breaker_options b = TG_BREAKER_OPTIONS_INIT;
  b.half_open_calls = 1;
  b.success_threshold = 2;
  po.breaker = &b;
  CHECK_RC(tg_policy_create(p, &po, &bad), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "never close") != NULL, "an impossible breaker is refused (%s)", tg_last_error());
  po.breaker = NULL;
  po.fallback_fn = always_fails;
  CHECK_RC(tg_policy_create(p, &po, &bad), TG_EINVAL);
  CHECK_RC(tg_policy_create(p, NULL, &bad), TG_EINVAL);
  tg_breaker_state st = TG_BREAKER_STATE_INIT;
  CHECK_RC(tg_policy_breaker_state(policy, NULL, &st), TG_EINVAL); /* no breaker in it */
  CHECK_RC(tg_policy_breaker_command(policy, NULL, 7), TG_EINVAL);
  CHECK_RC(tg_credentials_from_env(p, "TASKGATE_TEST_NO_SUCH_KEY", -1, &(tg_credentials *){NULL}), TG_ENOTFOUND);
  CHECK_RC(tg_credentials_from_env(p, "bad prefix", -1, &(tg_credentials *){NULL}), TG_EINVAL);
  CHECK_RC(tg_clock_advance(NULL, 1), TG_EINVAL);
  tg_clock *c = NULL;
  CHECK_RC(tg_clock_create_virtual(0, &c), TG_OK);
  CHECK_RC(tg_clock_advance(c, -1), TG_EINVAL);
  CHECK_RC(tg_clock_destroy(c), TG_OK);
  CHECK_RC(tg_pool_set_policy(p, "", policy), TG_EINVAL);
  d.id = "try-without-policy";
  d.policy = NULL;
  CHECK_RC(tg_pool_try_submit(p, &d, NULL), TG_EINVAL);
  CHECK_RC(tg_pool_shutdown(p, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_destroy(p), TG_OK);
}

int main(void) {
  tap_init();
  uint32_t counts[] = {1, 2, 4, 8};
  for (int k = 0; k < 4; k++) {
    test_retry_delays(counts[k]);
    test_breaker(counts[k]);
  }
  test_credentials();
  test_limits_health_and_bad_input();
  return tg_test_summary();
}
