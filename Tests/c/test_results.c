/* Partial failure and aggregation through the C door: groups at exactly
 * min_required and one below, critical groups cancelling their siblings or
 * the whole pool, each aggregation on crafted outputs, and bad input. Pools
 * run at 1, 2, 4 and 8 workers; every wait has a timeout. */
#define _POSIX_C_SOURCE 200809L
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HAS(json, text) CHECK((json) && strstr((json), (text)) != NULL, "has %s: %s", (text), (json) ? (json) : "(null)")

/* ---- tg_aggregate ----------------------------------------------------------- */

static char *agg(const char *const *outs, size_t n, uint32_t kind, uint32_t min_required, double threshold) {
  tg_aggregate_options o = TG_AGGREGATE_OPTIONS_INIT;
  o.kind = kind;
  o.min_required = min_required;
  o.threshold = threshold;
  char *json = NULL;
  CHECK_RC(tg_aggregate(outs, n, &o, &json), TG_OK);
  return json;
}

static void test_aggregate_kinds(void) {
  const char *lists[] = {"[\"numpy\", \"requests\", {\"b\": 2, \"a\": 1}]", "[\"requests\", \"flask\", {\"a\": 1, \"b\": 2.0}]",
                         NULL, "[\"requests\", \"numpy\", \"numpy\"]", "\"requests\""};
  char *j = agg(lists, 5, TG_AGGREGATE_UNION, 0, 0);
  HAS(j, "\"result\":[\"numpy\",\"requests\",{\"b\":2,\"a\":1},\"flask\"]");
  HAS(j, "\"success\":true,\"partial_results\":true,\"failed_count\":1,\"inputs\":5,\"used\":4");
  HAS(j, "\"failures\":[{\"task\":null,\"status\":\"failed\",\"error\":null}]");
  tg_free(j);

  j = agg(lists, 5, TG_AGGREGATE_INTERSECTION, 0, 0);
  HAS(j, "\"result\":[\"requests\"]");
  tg_free(j);
  j = agg(lists, 2, TG_AGGREGATE_INTERSECTION, 0, 0);
  HAS(j, "\"result\":[\"requests\",{\"b\":2,\"a\":1}]"); /* key order and 2 vs 2.0 do not matter */
  tg_free(j);

  /* Frequency at the seed's 40%: of 4 outputs, items in at least 1.6 of them. */
  j = agg(lists, 5, TG_AGGREGATE_FREQUENCY, 0, 0);
  HAS(j, "\"result\":[{\"pattern\":\"numpy\",\"count\":2,\"frequency\":0.5},{\"pattern\":\"requests\",\"count\":4,\"frequency\":1},"
         "{\"pattern\":{\"b\":2,\"a\":1},\"count\":2,\"frequency\":0.5}]");
  tg_free(j);
  /* Threshold exactly at a count: 0.5 of 4 = 2 keeps count 2; 0.75 drops it. */
  j = agg(lists, 5, TG_AGGREGATE_FREQUENCY, 0, 0.5);
  HAS(j, "\"pattern\":\"numpy\"");
  tg_free(j);
  j = agg(lists, 5, TG_AGGREGATE_FREQUENCY, 0, 0.75);
  HAS(j, "\"result\":[{\"pattern\":\"requests\",\"count\":4,\"frequency\":1}]");
  tg_free(j);

  const char *votes[] = {"\"approve\"", "\"reject\"", "\"approve\"", "{\"x\": [1, 2]}", "\"reject\"", "\"approve\""};
  j = agg(votes, 6, TG_AGGREGATE_MAJORITY, 0, 0);
  HAS(j, "\"result\":\"approve\",\"votes\":3,\"tie\":false");
  tg_free(j);
  j = agg(votes, 5, TG_AGGREGATE_MAJORITY, 0, 0);
  HAS(j, "\"result\":\"approve\",\"votes\":2,\"tie\":true"); /* a tie goes to the value given first */
  tg_free(j);

  const char *mixed[] = {"1", NULL, "{\"k\": \"v\"}", "[true, null]"};
  j = agg(mixed, 4, TG_AGGREGATE_COLLECT, 0, 0);
  HAS(j, "\"result\":[1,null,{\"k\":\"v\"},[true,null]]"); /* order kept, the failure a null */
  tg_free(j);

  j = agg(NULL, 0, TG_AGGREGATE_UNION, 0, 0);
  HAS(j, "\"result\":[],\"failures\":[]");
  tg_free(j);
}

static void test_aggregate_min_required(void) {
  const char *outs[] = {"[1]", NULL, "[2]", NULL, "[3]"};
  char *j = agg(outs, 5, TG_AGGREGATE_UNION, 3, 0); /* exactly 3 valid */
  HAS(j, "\"success\":true,\"partial_results\":true,\"failed_count\":2");
  HAS(j, "\"result\":[1,2,3]");
  tg_free(j);
  j = agg(outs, 5, TG_AGGREGATE_UNION, 4, 0); /* one below */
  HAS(j, "\"success\":false");
  HAS(j, "\"reason\":\"insufficient results (3/4)\"");
  HAS(j, "\"result\":null");
  tg_free(j);
}

static void test_aggregate_bad_input(void) {
  tg_aggregate_options o = TG_AGGREGATE_OPTIONS_INIT;
  o.kind = TG_AGGREGATE_UNION;
  char *json = (char *)"untouched";
  const char *bad[] = {"[1]", "[1, 2,]"};
  CHECK_RC(tg_aggregate(bad, 2, &o, &json), TG_EINVAL);
  CHECK(json == NULL, "out_json is NULL after an error");
  CHECK(strstr(tg_last_error(), "outputs[1]") && strstr(tg_last_error(), "line 1, column 7"),
        "the error names the output and where: %s", tg_last_error());
  const char *trailing[] = {"[1] x"};
  CHECK_RC(tg_aggregate(trailing, 1, &o, &json), TG_EINVAL);
  const char *deep_ok[] = {"[[[[[[[[[[1]]]]]]]]]]"};
  CHECK_RC(tg_aggregate(deep_ok, 1, &o, &json), TG_OK);
  tg_free(json);
  /* Nesting past 512 levels is refused, not recursed into. */
  char *deep = malloc(2100);
  memset(deep, '[', 1000);
  deep[1000] = 0;
  const char *deeper[] = {deep};
  CHECK_RC(tg_aggregate(deeper, 1, &o, &json), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "512") != NULL, "names the depth limit: %s", tg_last_error());
  free(deep);
  const char *bad_utf8[] = {"\"\xff\""};
  CHECK_RC(tg_aggregate(bad_utf8, 1, &o, &json), TG_EINVAL);
  const char *lone[] = {"\"\\ud800\""};
  CHECK_RC(tg_aggregate(lone, 1, &o, &json), TG_EINVAL);
  const char *ok1[] = {"[1]"};
  CHECK_RC(tg_aggregate(ok1, 1, &o, NULL), TG_EINVAL);
  CHECK_RC(tg_aggregate(NULL, 2, &o, &json), TG_EINVAL);
  CHECK_RC(tg_aggregate(ok1, 1, NULL, &json), TG_EINVAL);
  o.kind = 5;
  CHECK_RC(tg_aggregate(ok1, 1, &o, &json), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "kind 5") != NULL, "names the kind: %s", tg_last_error());
  o.kind = TG_AGGREGATE_FREQUENCY;
  o.threshold = 1.5;
  CHECK_RC(tg_aggregate(ok1, 1, &o, &json), TG_EINVAL);
  o.threshold = -0.1;
  CHECK_RC(tg_aggregate(ok1, 1, &o, &json), TG_EINVAL);
  o.threshold = 0;
  o.reserved = 1;
  CHECK_RC(tg_aggregate(ok1, 1, &o, &json), TG_EINVAL);
  o.reserved = 0;
  o.struct_size = 8;
  CHECK_RC(tg_aggregate(ok1, 1, &o, &json), TG_EVERSION);
}

/* ---- groups ------------------------------------------------------------------ */

typedef struct {
  int fail;          /* 1: fail at once */
  int *release;      /* others: wait for *release >= 1 (or cancellation) */
  const char *output;
} job;

static int job_fn(tg_task_ctx *ctx, void *user) {
  job *j = user;
  if (j->fail) {
    tg_task_set_error(ctx, "boom");
    return -1;
  }
  int64_t deadline = now_ns() + (int64_t)WAIT_MS * 1000000;
  while (j->release && at_load(j->release) < 1) {
    if (tg_task_cancelled(ctx)) return -1;
    if (now_ns() > deadline) return -1;
    sleep_us(200);
  }
  if (j->output) tg_task_set_output(ctx, j->output, strlen(j->output) + 1);
  return 0;
}

/* Submits n tasks to `group` in one batch: the first n_fail fail at once,
   the rest wait for *release. Ids are PREFIX-i. */
static void submit_group(tg_pool *pool, const char *group, const char *prefix, int n, int n_fail, int *release, job *jobs,
                         char ids[][32]) {
  tg_task_desc d[16];
  for (int i = 0; i < n; i++) {
    snprintf(ids[i], 32, "%s-%d", prefix, i);
    jobs[i].fail = i < n_fail;
    jobs[i].release = release;
    jobs[i].output = NULL;
    tg_task_desc t = TG_TASK_DESC_INIT;
    t.id = ids[i];
    t.fn = job_fn;
    t.user = &jobs[i];
    t.group = group;
    t.priority = jobs[i].fail ? TG_PRIORITY_HIGH : TG_PRIORITY_NORMAL; /* failures first, even on one worker */
    d[i] = t;
  }
  CHECK_RC(tg_pool_submit_batch(pool, d, (size_t)n, NULL), TG_OK);
}

static tg_group_outcome outcome(tg_pool *pool, const char *group, char **json) {
  tg_group_outcome o = TG_GROUP_OUTCOME_INIT;
  CHECK_RC(tg_pool_group_outcome(pool, group, &o, json), TG_OK);
  return o;
}

static void test_min_required(uint32_t workers) {
  tg_pool *pool = tap_pool(workers, 0, 0);
  tg_group_options g = TG_GROUP_OPTIONS_INIT;
  g.min_required = 3;
  CHECK_RC(tg_pool_set_group(pool, "exact", &g), TG_OK);
  CHECK_RC(tg_pool_set_group(pool, "below", &g), TG_OK);
  job jobs[2][5];
  char ids[2][5][32];
  int release = 1;
  submit_group(pool, "exact", "exact", 5, 2, &release, jobs[0], ids[0]); /* 3 of 5 succeed */
  submit_group(pool, "below", "below", 5, 3, &release, jobs[1], ids[1]); /* 2 of 5 */
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  char *json = NULL;
  tg_group_outcome o = outcome(pool, "exact", &json);
  CHECK(o.state == TG_GROUP_SUCCEEDED && o.partial_results == 1 && o.succeeded == 3 && o.failed == 2 && o.required == 3 &&
            o.total == 5 && o.unfinished == 0,
        "W=%u exactly min_required succeeds with partial results: state %d", workers, o.state);
  HAS(json, "\"state\":\"succeeded\",\"success\":true,\"partial_results\":true,\"failed_count\":2,\"min_required\":3");
  HAS(json, "{\"task\":\"exact-0\",\"status\":\"failed\",\"error\":\"boom\"}");
  tg_free(json);
  o = outcome(pool, "below", &json);
  CHECK(o.state == TG_GROUP_FAILED && o.succeeded == 2 && o.partial_results == 0, "W=%u one below fails", workers);
  HAS(json, "\"success\":false");
  HAS(json, "\"reason\":\"insufficient results (2/3): 2 of 5 tasks succeeded, 3 required\"");
  tg_free(json);
  /* Without a policy every member is required. */
  job more[2];
  char mids[2][32];
  submit_group(pool, "plain", "plain", 2, 1, &release, more, mids);
  CHECK_RC(tg_pool_wait_group(pool, "plain", WAIT_MS), TG_OK);
  o = outcome(pool, "plain", NULL);
  CHECK(o.state == TG_GROUP_FAILED && o.required == 2, "W=%u no policy: all required", workers);
  /* min_fraction: half of 5 rounds up to 3. */
  g.min_required = 0;
  g.min_fraction = 0.5;
  CHECK_RC(tg_pool_set_group(pool, "exact", &g), TG_OK);
  o = outcome(pool, "exact", NULL);
  CHECK(o.required == 3 && o.state == TG_GROUP_SUCCEEDED, "W=%u min_fraction 0.5 of 5 needs 3 (got %u)", workers, o.required);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

static void test_critical(uint32_t workers) {
  tg_pool *pool = tap_pool(workers, 0, 0);
  tg_group_options g = TG_GROUP_OPTIONS_INIT;
  g.flags = TG_GROUP_CRITICAL;
  g.min_required = 4;
  CHECK_RC(tg_pool_set_group(pool, "tolerant", &g), TG_OK);
  CHECK_RC(tg_pool_set_group(pool, "doomed", &g), TG_OK);
  int release = 0;
  job jobs[2][6];
  char ids[2][6][32];
  /* 3 of 6 fail: only 3 can succeed, the rest are cancelled. */
  submit_group(pool, "doomed", "doom", 6, 3, &release, jobs[1], ids[1]);
  CHECK_RC(tg_pool_wait_group(pool, "doomed", WAIT_MS), TG_OK);
  tg_group_outcome o = outcome(pool, "doomed", NULL);
  CHECK(o.state == TG_GROUP_FAILED && o.failed == 3 && o.cancelled == 3 && o.succeeded == 0,
        "W=%u a critical group that cannot reach min_required cancels the rest (failed %u cancelled %u)", workers, o.failed,
        o.cancelled);
  tg_result r = TG_RESULT_INIT;
  CHECK_RC(tg_pool_result(pool, "doom-5", &r), TG_OK);
  CHECK(r.status == TG_STATUS_CANCELLED && r.error && strstr(r.error, "critical group 'doomed'"),
        "the cancelled sibling's error names the group: %s", r.error ? r.error : "(null)");
  /* 2 of 6 fail: 4 can still succeed, nothing is cancelled. */
  submit_group(pool, "tolerant", "tol", 6, 2, &release, jobs[0], ids[0]);
  CHECK_RC(tg_pool_wait(pool, "tol-0", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "tol-1", WAIT_MS), TG_OK);
  o = outcome(pool, "tolerant", NULL);
  CHECK(o.state == TG_GROUP_RUNNING && o.cancelled == 0, "W=%u the tolerant group is still running (state %d, cancelled %u)",
        workers, o.state, o.cancelled);
  at_store(&release, 1);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  o = outcome(pool, "tolerant", NULL);
  CHECK(o.state == TG_GROUP_SUCCEEDED && o.succeeded == 4 && o.partial_results == 1, "W=%u tolerant succeeded with 4 of 6", workers);
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

static void test_cancel_all(uint32_t workers) {
  tg_pool *pool = tap_pool(workers, 0, 0);
  tg_group_options g = TG_GROUP_OPTIONS_INIT;
  g.flags = TG_GROUP_CRITICAL | TG_GROUP_CANCEL_ALL;
  CHECK_RC(tg_pool_set_group(pool, "core", &g), TG_OK);
  int release = 0;
  /* One batch: the failing core task (high priority) and three others waiting. */
  job jobs[4] = {{1, &release, NULL}, {0, &release, NULL}, {0, &release, NULL}, {0, &release, NULL}};
  const char *ids[] = {"core-0", "side-0", "side-1", "side-2"};
  tg_task_desc d[4];
  for (int i = 0; i < 4; i++) {
    tg_task_desc t = TG_TASK_DESC_INIT;
    t.id = ids[i];
    t.fn = job_fn;
    t.user = &jobs[i];
    t.group = i == 0 ? "core" : "side";
    t.priority = i == 0 ? TG_PRIORITY_HIGH : TG_PRIORITY_NORMAL;
    d[i] = t;
  }
  CHECK_RC(tg_pool_submit_batch(pool, d, 4, NULL), TG_OK);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  tg_group_outcome o = outcome(pool, "side", NULL);
  CHECK(o.cancelled == 3, "W=%u a CANCEL_ALL critical failure cancels the other groups too (cancelled %u)", workers, o.cancelled);
  tg_result r = TG_RESULT_INIT;
  CHECK_RC(tg_pool_result(pool, "side-2", &r), TG_OK);
  CHECK(r.error && strstr(r.error, "task 'core-0' of critical group 'core' failed"), "names the cause: %s", r.error ? r.error : "(null)");
  /* Cancelled processors may still be returning: drain them first. */
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

static void test_pool_aggregate(uint32_t workers) {
  tg_pool *pool = tap_pool(workers, 0, 0);
  job jobs[4] = {{0, NULL, "[\"a\", \"b\"]"}, {1, NULL, NULL}, {0, NULL, "[\"b\", \"c\"]"}, {0, NULL, "not json"}};
  const char *ids[] = {"t0", "t1", "t2", "t3"};
  for (int i = 0; i < 4; i++) {
    tg_task_desc t = TG_TASK_DESC_INIT;
    t.id = ids[i];
    t.fn = job_fn;
    t.user = &jobs[i];
    t.group = "g";
    CHECK_RC(tg_pool_submit(pool, &t, NULL), TG_OK);
  }
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  tg_aggregate_options o = TG_AGGREGATE_OPTIONS_INIT;
  o.kind = TG_AGGREGATE_UNION;
  o.min_required = 2;
  char *json = NULL;
  CHECK_RC(tg_pool_aggregate(pool, "g", &o, &json), TG_OK);
  HAS(json, "\"result\":[\"a\",\"b\",\"c\"]");
  HAS(json, "\"success\":true,\"partial_results\":true,\"failed_count\":2");
  HAS(json, "{\"task\":\"t1\",\"status\":\"failed\",\"error\":\"boom\"}");
  HAS(json, "{\"task\":\"t3\",\"status\":\"bad_output\",\"error\":\"output is not JSON:");
  tg_free(json);
  o.kind = TG_AGGREGATE_COLLECT;
  o.min_required = 0;
  CHECK_RC(tg_pool_aggregate(pool, NULL, &o, &json), TG_OK);
  HAS(json, "\"result\":[[\"a\",\"b\"],null,[\"b\",\"c\"],null]");
  tg_free(json);
  CHECK_RC(tg_pool_aggregate(pool, "nope", &o, &json), TG_ENOTFOUND);
  CHECK(strstr(tg_last_error(), "nope") != NULL, "names the group: %s", tg_last_error());
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

static void test_group_bad_input(void) {
  tg_pool *pool = tap_pool(1, 0, 0);
  tg_group_options g = TG_GROUP_OPTIONS_INIT;
  CHECK_RC(tg_pool_set_group(NULL, "x", &g), TG_EINVAL);
  CHECK_RC(tg_pool_set_group(pool, NULL, &g), TG_EINVAL);
  CHECK_RC(tg_pool_set_group(pool, "x", NULL), TG_EINVAL);
  CHECK_RC(tg_pool_set_group(pool, "", &g), TG_EINVAL);
  g.flags = TG_GROUP_CANCEL_ALL;
  CHECK_RC(tg_pool_set_group(pool, "x", &g), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "critical") != NULL, "says CANCEL_ALL needs CRITICAL: %s", tg_last_error());
  g.flags = 1u << 7;
  CHECK_RC(tg_pool_set_group(pool, "x", &g), TG_EINVAL);
  g.flags = 0;
  g.min_fraction = 1.5;
  CHECK_RC(tg_pool_set_group(pool, "x", &g), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "'x'") != NULL, "names the group: %s", tg_last_error());
  g.min_fraction = 0;
  g.struct_size = 4;
  CHECK_RC(tg_pool_set_group(pool, "x", &g), TG_EVERSION);
  tg_group_outcome o = TG_GROUP_OUTCOME_INIT;
  CHECK_RC(tg_pool_group_outcome(pool, "never", &o, NULL), TG_ENOTFOUND);
  CHECK_RC(tg_pool_group_outcome(pool, NULL, &o, NULL), TG_EINVAL);
  o.struct_size = 3;
  CHECK_RC(tg_pool_group_outcome(pool, "never", &o, NULL), TG_EVERSION);
  /* A group made by set_group alone has no members yet: running, 0 of 0. */
  g = (tg_group_options)TG_GROUP_OPTIONS_INIT;
  CHECK_RC(tg_pool_set_group(pool, "empty", &g), TG_OK);
  char *json = NULL;
  tg_group_outcome e = outcome(pool, "empty", &json);
  CHECK(e.total == 0 && e.state == TG_GROUP_SUCCEEDED, "an empty group has nothing to fail (state %d)", e.state);
  tg_free(json);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
  tg_aggregate_options a = TG_AGGREGATE_OPTIONS_INIT;
  CHECK_RC(tg_pool_aggregate(NULL, NULL, &a, &json), TG_EINVAL);
}

int main(void) {
  tap_init();
  test_aggregate_kinds();
  test_aggregate_min_required();
  test_aggregate_bad_input();
  const uint32_t ws[] = {1, 2, 4, 8};
  for (int i = 0; i < 4; i++) {
    test_min_required(ws[i]);
    test_critical(ws[i]);
    test_cancel_all(ws[i]);
    test_pool_aggregate(ws[i]);
  }
  test_group_bad_input();
  return tg_test_summary();
}
