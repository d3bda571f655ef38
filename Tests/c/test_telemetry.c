/* Events, the health monitor and metrics through the C door: log records
 * with trace ids (run id, task id, seq, attempt) at their levels, retries,
 * group failures; health alerts at exactly the thresholds and one past them
 * on a virtual clock, clearing, and stopping the run; Prometheus text checked
 * against the run; and bad input. Pools run at 1, 2, 4 and 8 workers; every
 * wait has a timeout. */
#define _POSIX_C_SOURCE 200809L
#include "tap.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a log sink that keeps records ------------------------------------------ */

typedef struct {
  int level;
  char event[32];
  char task[32];
  char run[64];
  char fields[512];
  char message[256];
  int64_t seq;
  int attempt;
  int worker;
} rec;

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static rec recs[4096];
static int n_recs;

static void copy(char *dst, size_t cap, const char *src) {
  snprintf(dst, cap, "%s", src ? src : "");
}

static void sink(void *user, const tg_log_record *r) {
  (void)user;
  pthread_mutex_lock(&rec_lock);
  if (n_recs < 4096) {
    rec *x = &recs[n_recs++];
    x->level = r->level;
    copy(x->event, sizeof x->event, r->event);
    copy(x->task, sizeof x->task, r->task_id);
    copy(x->run, sizeof x->run, r->run_id);
    copy(x->fields, sizeof x->fields, r->fields_json);
    copy(x->message, sizeof x->message, r->message);
    x->seq = r->seq;
    x->attempt = r->attempt;
    x->worker = r->worker;
  }
  pthread_mutex_unlock(&rec_lock);
}

static void reset_recs(void) {
  pthread_mutex_lock(&rec_lock);
  n_recs = 0;
  pthread_mutex_unlock(&rec_lock);
}

static const rec *find(const char *event, const char *task) {
  for (int i = 0; i < n_recs; i++)
    if (strcmp(recs[i].event, event) == 0 && (!task || strcmp(recs[i].task, task) == 0)) return &recs[i];
  return NULL;
}

static int count(const char *event) {
  int n = 0;
  for (int i = 0; i < n_recs; i++) n += strcmp(recs[i].event, event) == 0;
  return n;
}

/* ---- processors ------------------------------------------------------------- */

static int ok_fn(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  return 0;
}

static int fail_fn(tg_task_ctx *ctx, void *user) {
  (void)user;
  tg_task_set_error(ctx, "it broke");
  return 1;
}

static int gate_open;
static int wait_gate(tg_task_ctx *ctx, void *user) {
  (void)user;
  while (!at_load(&gate_open) && !tg_task_cancelled(ctx)) sleep_us(200);
  return 0;
}

static tg_clock *vclock;
/* Runs for the number of virtual ms in its payload. */
static int advance_fn(tg_task_ctx *ctx, void *user) {
  (void)user;
  size_t len = 0;
  const char *p = tg_task_payload(ctx, &len);
  char buf[32] = {0};
  memcpy(buf, p, len < 31 ? len : 31);
  tg_clock_advance(vclock, (int64_t)atoll(buf) * 1000000);
  return strstr(buf, "f") ? 1 : 0;
}

static int submit(tg_pool *p, const char *id, tg_processor_fn fn, const char *dep, const char *payload, int prio) {
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.id = id;
  d.fn = fn;
  d.priority = prio;
  const char *deps[1] = {dep};
  if (dep) {
    d.deps = deps;
    d.n_deps = 1;
  }
  if (payload) {
    d.payload = payload;
    d.payload_len = strlen(payload);
  }
  return tg_pool_submit(p, &d, NULL);
}

/* ---- events ------------------------------------------------------------------- */

static void test_events(uint32_t workers) {
  tg_pool *p = tap_pool(workers, 0, 0);
  reset_recs();
  CHECK_RC(tg_pool_set_run_id(p, "trace-42"), TG_OK);
  char *run = NULL;
  CHECK_RC(tg_pool_get_run_id(p, &run), TG_OK);
  CHECK(run && strcmp(run, "trace-42") == 0, "run id round trip");
  tg_free(run);
  CHECK_RC(tg_pool_set_log(p, TG_LOG_DEBUG, sink, NULL), TG_OK);
  CHECK_RC(submit(p, "good", ok_fn, NULL, NULL, TG_PRIORITY_NORMAL), TG_OK);
  CHECK_RC(submit(p, "bad", fail_fn, NULL, NULL, TG_PRIORITY_HIGH), TG_OK);
  CHECK_RC(submit(p, "child", ok_fn, "bad", NULL, TG_PRIORITY_NORMAL), TG_OK);
  CHECK_RC(tg_pool_wait_all(p, WAIT_MS), TG_OK);
  pthread_mutex_lock(&rec_lock);
  const rec *g = find("task_ended", "good");
  const rec *b = find("task_ended", "bad");
  const rec *c = find("task_ended", "child");
  const rec *s = find("task_started", "good");
  CHECK(g && g->level == TG_LOG_DEBUG && strstr(g->fields, "\"status\":\"succeeded\""), "good ended at DEBUG: %s",
        g ? g->fields : "(none)");
  CHECK(b && b->level == TG_LOG_WARNING && strstr(b->fields, "\"error\":\"it broke\"") && strstr(b->message, "it broke"),
        "bad ended at WARNING with its error: %s", b ? b->message : "(none)");
  CHECK(c && c->level == TG_LOG_INFO && strstr(c->fields, "\"status\":\"skipped\"") && c->attempt == 0,
        "child skipped at INFO, no attempt");
  CHECK(s && s->level == TG_LOG_DEBUG && s->attempt == 1 && s->worker >= 0 && s->worker < (int)workers, "good started");
  CHECK(count("task_started") == 2, "two processors called (%d)", count("task_started"));
  int trace_ok = 1;
  for (int i = 0; i < n_recs; i++) {
    if (strcmp(recs[i].run, "trace-42") != 0) trace_ok = 0;
    if (strncmp(recs[i].event, "task_", 5) == 0 && (recs[i].task[0] == 0 || recs[i].seq < 0)) trace_ok = 0;
    if (recs[i].fields[0] != '{') trace_ok = 0;
  }
  CHECK(trace_ok, "every record carries the run id, task events their task id and seq");
  CHECK(g && g->seq == 0 && b && b->seq == 1 && b->attempt == 1, "seq and attempt");
  pthread_mutex_unlock(&rec_lock);

  /* A higher level filters; NULL stops. */
  reset_recs();
  CHECK_RC(tg_pool_set_log(p, TG_LOG_WARNING, sink, NULL), TG_OK);
  CHECK_RC(submit(p, "good2", ok_fn, NULL, NULL, TG_PRIORITY_NORMAL), TG_OK);
  CHECK_RC(submit(p, "bad2", fail_fn, NULL, NULL, TG_PRIORITY_NORMAL), TG_OK);
  CHECK_RC(tg_pool_wait_all(p, WAIT_MS), TG_OK);
  pthread_mutex_lock(&rec_lock);
  CHECK(n_recs == 1 && find("task_ended", "bad2"), "WARNING: only the failure (%d records)", n_recs);
  pthread_mutex_unlock(&rec_lock);
  reset_recs();
  CHECK_RC(tg_pool_set_log(p, 0, NULL, NULL), TG_OK);
  CHECK_RC(submit(p, "bad3", fail_fn, NULL, NULL, TG_PRIORITY_NORMAL), TG_OK);
  CHECK_RC(tg_pool_wait_all(p, WAIT_MS), TG_OK);
  CHECK(n_recs == 0, "no sink, no records");
  CHECK_RC(tg_pool_destroy(p), TG_OK);
}

static void test_retry_and_group_events(void) {
  tg_clock *clk = NULL;
  CHECK_RC(tg_clock_create_virtual(0, &clk), TG_OK);
  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.workers = 2;
  o.clock = clk;
  tg_pool *p = NULL;
  CHECK_RC(tg_pool_create(&o, &p), TG_OK);
  reset_recs();
  CHECK_RC(tg_pool_set_log(p, TG_LOG_INFO, sink, NULL), TG_OK);
  tg_retry_options r = TG_RETRY_OPTIONS_INIT;
  r.max_attempts = 2;
  r.base_delay_ms = 0;
  r.jitter = TG_JITTER_NONE;
  tg_policy_options po = TG_POLICY_OPTIONS_INIT;
  po.retry = &r;
  tg_policy *pol = NULL;
  CHECK_RC(tg_policy_create(p, &po, &pol), TG_OK);
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.id = "flaky";
  d.fn = fail_fn;
  d.policy = pol;
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(p, "flaky", WAIT_MS), TG_OK);
  tg_group_options go = TG_GROUP_OPTIONS_INIT;
  go.flags = TG_GROUP_CRITICAL;
  CHECK_RC(tg_pool_set_group(p, "core", &go), TG_OK);
  tg_task_desc gd = TG_TASK_DESC_INIT;
  gd.id = "core-1";
  gd.fn = fail_fn;
  gd.group = "core";
  CHECK_RC(tg_pool_submit(p, &gd, NULL), TG_OK);
  CHECK_RC(tg_pool_wait_all(p, WAIT_MS), TG_OK);
  pthread_mutex_lock(&rec_lock);
  const rec *rt = find("task_retry", "flaky");
  CHECK(rt && rt->level == TG_LOG_INFO && rt->attempt == 1 && strstr(rt->fields, "\"delay_ms\":0") &&
            strstr(rt->fields, "it broke"),
        "retry event: %s", rt ? rt->fields : "(none)");
  const rec *e = find("task_ended", "flaky");
  CHECK(e && e->attempt == 2, "ended after attempt 2");
  const rec *gf = find("group_failed", "core-1");
  CHECK(gf && gf->level == TG_LOG_ERROR && strstr(gf->fields, "\"group\":\"core\""), "group_failed: %s",
        gf ? gf->message : "(none)");
  CHECK(find("task_started", NULL) == NULL, "INFO filters DEBUG");
  pthread_mutex_unlock(&rec_lock);
  CHECK_RC(tg_pool_destroy(p), TG_OK);
  CHECK_RC(tg_clock_destroy(clk), TG_OK);
}

/* ---- health -------------------------------------------------------------------- */

static tg_pool *health_pool(uint32_t workers, tg_clock **clk) {
  CHECK_RC(tg_clock_create_virtual(0, clk), TG_OK);
  vclock = *clk;
  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.workers = workers;
  o.clock = *clk;
  tg_pool *p = NULL;
  CHECK_RC(tg_pool_create(&o, &p), TG_OK);
  return p;
}

/* One task at a time, so the order of ends is the order of submission. */
static void run_seq(tg_pool *p, const char *id, const char *payload) {
  CHECK_RC(submit(p, id, advance_fn, NULL, payload, TG_PRIORITY_NORMAL), TG_OK);
  CHECK_RC(tg_pool_wait(p, id, WAIT_MS), TG_OK);
}

static void test_health_thresholds(uint32_t workers) {
  tg_clock *clk = NULL;
  tg_pool *p = health_pool(workers, &clk);
  reset_recs();
  CHECK_RC(tg_pool_set_log(p, TG_LOG_INFO, sink, NULL), TG_OK);
  tg_health_options h = TG_HEALTH_OPTIONS_INIT;
  h.min_tasks = 5;
  h.avg_duration_ms = 1000;
  CHECK_RC(tg_pool_set_health(p, &h), TG_OK);
  /* 1 failure in 5 = 20%: at the threshold, no alert. Each ran 1000 virtual ms: avg at the threshold. */
  run_seq(p, "h0", "1000f");
  for (int i = 1; i < 5; i++) {
    char id[8];
    snprintf(id, sizeof id, "h%d", i);
    run_seq(p, id, "1000");
  }
  tg_health_report r = TG_HEALTH_REPORT_INIT;
  CHECK_RC(tg_pool_health(p, &r, NULL), TG_OK);
  CHECK(r.counted == 5 && r.failures == 1 && r.active == 0, "at the thresholds: no alert (counted %llu active %u)",
        (unsigned long long)r.counted, r.active);
  CHECK(fabs(r.failure_rate - 0.2) < 1e-12 && fabs(r.avg_duration_ms - 1000) < 1e-9,
        "rates on virtual time (%.3f, %.3f ms)", r.failure_rate, r.avg_duration_ms);
  CHECK(count("health_alert") == 0, "no alert event");
  /* One more failure: 2 of 6 = 33%. One more ms of run time: average above 1000 ms. */
  run_seq(p, "h5", "1006f");
  CHECK_RC(tg_pool_health(p, &r, NULL), TG_OK);
  CHECK(r.active == (TG_HEALTH_FAILURE_RATE | TG_HEALTH_AVG_DURATION), "failure rate and duration alerts (0x%x)",
        r.active);
  pthread_mutex_lock(&rec_lock);
  CHECK(count("health_alert") == 2, "two alert events (%d)", count("health_alert"));
  const rec *a = find("health_alert", NULL);
  CHECK(a && a->level == TG_LOG_WARNING && strstr(a->run, "run-") == a->run, "alert at WARNING with the run id");
  int saw_rate = 0;
  for (int i = 0; i < n_recs; i++)
    if (strcmp(recs[i].event, "health_alert") == 0 && strstr(recs[i].fields, "\"metric\":\"failure_rate\"") &&
        strstr(recs[i].message, "High failure rate detected: 33.3%"))
      saw_rate = 1;
  CHECK(saw_rate, "the seed's message with the rate");
  pthread_mutex_unlock(&rec_lock);
  /* Successes bring the rate back: 2 of 10 = 20% clears it. */
  for (int i = 6; i < 10; i++) {
    char id[8];
    snprintf(id, sizeof id, "h%d", i);
    run_seq(p, id, "0");
  }
  CHECK_RC(tg_pool_health(p, &r, NULL), TG_OK);
  CHECK(!(r.active & TG_HEALTH_FAILURE_RATE) && r.alerts_raised == 2, "cleared at 20%% (active 0x%x, raised %llu)",
        r.active, (unsigned long long)r.alerts_raised);
  CHECK(count("health_cleared") >= 1, "a cleared event");
  char *json = NULL;
  CHECK_RC(tg_pool_health(p, NULL, &json), TG_OK);
  CHECK(json && strstr(json, "\"alerts\":[") && strstr(json, "\"raised\":false"), "json lists the changes: %s",
        json ? json : "(null)");
  tg_free(json);
  CHECK_RC(tg_pool_set_log(p, 0, NULL, NULL), TG_OK);
  CHECK_RC(tg_pool_destroy(p), TG_OK);
  CHECK_RC(tg_clock_destroy(clk), TG_OK);
}

static void test_health_stop(uint32_t workers) {
  tg_clock *clk = NULL;
  tg_pool *p = health_pool(workers, &clk);
  tg_health_options h = TG_HEALTH_OPTIONS_INIT;
  h.flags = TG_HEALTH_STOP;
  h.failure_rate = 0.5;
  h.min_tasks = 2;
  CHECK_RC(tg_pool_set_health(p, &h), TG_OK);
  at_store(&gate_open, 0);
  /* One batch: with one worker the failures (high priority) go first; with
     more, the waiting tasks are running when the alert cancels them. */
  tg_task_desc d[8];
  char ids[8][16];
  for (int i = 0; i < 8; i++) {
    d[i] = (tg_task_desc)TG_TASK_DESC_INIT;
    snprintf(ids[i], sizeof ids[i], i < 6 ? "wait%d" : "f%d", i < 6 ? i : i - 5);
    d[i].id = ids[i];
    d[i].fn = i < 6 ? wait_gate : fail_fn;
    d[i].priority = i < 6 ? TG_PRIORITY_LOW : TG_PRIORITY_HIGH;
  }
  CHECK_RC(tg_pool_submit_batch(p, d, 8, NULL), TG_OK);
  CHECK_RC(tg_pool_wait_all(p, WAIT_MS), TG_OK); /* the alert cancelled the waiting tasks */
  int cancelled = 0, named = 0;
  for (int i = 0; i < 6; i++) {
    char id[16];
    snprintf(id, sizeof id, "wait%d", i);
    tg_result r = TG_RESULT_INIT;
    CHECK_RC(tg_pool_result(p, id, &r), TG_OK);
    if (r.status == TG_STATUS_CANCELLED) {
      cancelled++;
      named += r.error && strstr(r.error, "health alert") != NULL;
    }
  }
  CHECK(cancelled == 6 && named == 6, "workers %u: every waiting task cancelled by the alert (%d, %d)", workers,
        cancelled, named);
  at_store(&gate_open, 1);
  CHECK_RC(tg_pool_shutdown(p, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_destroy(p), TG_OK);
  CHECK_RC(tg_clock_destroy(clk), TG_OK);
}

/* ---- metrics ------------------------------------------------------------------- */

static double metric(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *l = text; l && *l;) {
    if (strncmp(l, series, n) == 0 && l[n] == ' ') return atof(l + n + 1);
    l = strchr(l, '\n');
    if (l) l++;
  }
  return -1;
}

static void test_metrics(uint32_t workers) {
  tg_pool *p = tap_pool(workers, 0, 0);
  enum { N = 40 };
  for (int i = 0; i < N; i++) {
    char id[16];
    snprintf(id, sizeof id, "m%d", i);
    CHECK_RC(submit(p, id, i % 10 == 0 ? fail_fn : ok_fn, NULL, NULL, TG_PRIORITY_HIGH), TG_OK);
  }
  CHECK_RC(submit(p, "after", ok_fn, "m0", NULL, TG_PRIORITY_NORMAL), TG_OK); /* skipped */
  CHECK_RC(tg_pool_wait_all(p, WAIT_MS), TG_OK);
  char *text = NULL;
  CHECK_RC(tg_pool_metrics(p, 0, &text), TG_OK);
  CHECK(text != NULL, "metrics text");
  if (!text) return;
  CHECK(metric(text, "taskgate_tasks_submitted_total") == N + 1, "submitted %g", metric(text, "taskgate_tasks_submitted_total"));
  CHECK(metric(text, "taskgate_tasks_total{status=\"succeeded\"}") == N - 4, "succeeded");
  CHECK(metric(text, "taskgate_tasks_total{status=\"failed\"}") == 4, "failed");
  CHECK(metric(text, "taskgate_tasks_total{status=\"skipped\"}") == 1, "skipped");
  CHECK(metric(text, "taskgate_task_duration_seconds_count") == N, "one duration per task that ran (%g)",
        metric(text, "taskgate_task_duration_seconds_count"));
  CHECK(metric(text, "taskgate_task_duration_seconds_bucket{le=\"+Inf\"}") == N, "+Inf bucket");
  double per_worker = 0;
  for (uint32_t w = 0; w < workers; w++) {
    char s[64];
    snprintf(s, sizeof s, "taskgate_worker_tasks_total{worker=\"%u\"}", w);
    double v = metric(text, s);
    CHECK(v >= 0, "worker %u has a series", w);
    per_worker += v;
  }
  CHECK(per_worker == N, "per-worker counts add up (%g)", per_worker);
  CHECK(strstr(text, "# TYPE taskgate_task_duration_seconds histogram\n") != NULL, "histogram type line");
  CHECK(strstr(text, "taskgate_per_task_") == NULL, "no per-task series by default");
  tg_free(text);
  CHECK_RC(tg_pool_metrics(p, TG_METRICS_PER_TASK, &text), TG_OK);
  CHECK(text && metric(text, "taskgate_per_task_attempts{task=\"m3\"}") == 1, "per-task attempts");
  tg_free(text);
  CHECK_RC(tg_pool_metrics(p, 0x80, &text), TG_EINVAL);
  CHECK(text == NULL, "nothing on error");
  CHECK_RC(tg_pool_metrics(p, 0, NULL), TG_EINVAL);
  CHECK_RC(tg_pool_destroy(p), TG_OK);
}

/* ---- bad input ----------------------------------------------------------------- */

static void test_bad_input(void) {
  tg_pool *p = tap_pool(1, 0, 0);
  CHECK_RC(tg_pool_set_log(p, 25, sink, NULL), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "min_level 25") != NULL, "names the level: %s", tg_last_error());
  CHECK_RC(tg_pool_set_log(NULL, TG_LOG_INFO, sink, NULL), TG_EINVAL);
  CHECK_RC(tg_pool_set_run_id(p, NULL), TG_EINVAL);
  CHECK_RC(tg_pool_set_run_id(p, ""), TG_EINVAL);
  CHECK_RC(tg_pool_set_run_id(p, "has space"), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "byte 3") != NULL, "names the byte: %s", tg_last_error());
  CHECK_RC(tg_pool_get_run_id(p, NULL), TG_EINVAL);
  char *run = NULL;
  CHECK_RC(tg_pool_get_run_id(p, &run), TG_OK);
  CHECK(run && strncmp(run, "run-", 4) == 0, "a made run id: %s", run ? run : "(null)");
  tg_free(run);

  tg_health_report r = TG_HEALTH_REPORT_INIT;
  CHECK_RC(tg_pool_health(p, &r, NULL), TG_ENOTFOUND);
  tg_health_options h = TG_HEALTH_OPTIONS_INIT;
  h.struct_size = 8;
  CHECK_RC(tg_pool_set_health(p, &h), TG_EVERSION);
  h = (tg_health_options)TG_HEALTH_OPTIONS_INIT;
  h.failure_rate = NAN;
  CHECK_RC(tg_pool_set_health(p, &h), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "failure") != NULL, "names the field: %s", tg_last_error());
  h = (tg_health_options)TG_HEALTH_OPTIONS_INIT;
  h.timeout_rate = -0.5;
  CHECK_RC(tg_pool_set_health(p, &h), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "timeout") != NULL, "names the field: %s", tg_last_error());
  h = (tg_health_options)TG_HEALTH_OPTIONS_INIT;
  h.avg_duration_ms = -1;
  CHECK_RC(tg_pool_set_health(p, &h), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "avg") != NULL, "names the field: %s", tg_last_error());
  h = (tg_health_options)TG_HEALTH_OPTIONS_INIT;
  h.flags = 0x10;
  CHECK_RC(tg_pool_set_health(p, &h), TG_EINVAL);
  h = (tg_health_options)TG_HEALTH_OPTIONS_INIT;
  CHECK_RC(tg_pool_set_health(p, &h), TG_OK);
  r.struct_size = 4;
  CHECK_RC(tg_pool_health(p, &r, NULL), TG_EVERSION);
  CHECK_RC(tg_pool_set_health(p, NULL), TG_OK);
  r = (tg_health_report)TG_HEALTH_REPORT_INIT;
  CHECK_RC(tg_pool_health(p, &r, NULL), TG_ENOTFOUND);
  CHECK_RC(tg_pool_destroy(p), TG_OK);
}

int main(void) {
  tap_init();
  uint32_t counts[] = {1, 2, 4, 8};
  for (int k = 0; k < 4; k++) {
    test_events(counts[k]);
    test_health_thresholds(counts[k]);
    test_health_stop(counts[k]);
    test_metrics(counts[k]);
  }
  test_retry_and_group_events();
  test_bad_input();
  return tg_test_summary();
}
