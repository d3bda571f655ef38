/*
 * test_plugins.c: the plugin host through the C API, with real .so fixtures
 * (Tests/c/plugins, built by run-c-tests into the folder given as argv[1]).
 *
 *   - every refusal: missing file, not a shared object, bare name, directory,
 *     no descriptor, a function as descriptor, bad magic, another ABI major,
 *     a newer minor, a missing entry or hook symbol, an unknown type, a bad name, a
 *     processor name already registered, init failing; none runs plugin code
 *   - listing processors and signatures; loading twice reuses the handle
 *   - every argument type, promotions, 32 arguments, conversions, and the
 *     refusal of arguments that do not match (count, type, range)
 *   - setup and cleanup on success, failure, setup failure, timeout, cancel
 *   - unload refused while tasks are in flight, allowed after; shutdown hook
 *   - plugin tasks mixed with C tasks and dependencies at 1, 2, 4, 8 workers
 */
#define _POSIX_C_SOURCE 200809L
#include <sys/stat.h>

#include "tap.h"

static char dir[2048];
static char tmpdir[] = "/tmp/tg_plugins_XXXXXX";
static char marker[4096];

static const char *fixture(const char *name) {
  static char buf[4][4096];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static int file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

static char *read_file(const char *p) {
  FILE *f = fopen(p, "r");
  if (!f) return NULL;
  static char buf[65536];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose(f);
  return buf;
}

static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }

/* ---- refusals ---------------------------------------------------------------- */

static void expect_refused(tg_pool *pool, const char *path, const char *why) {
  tg_plugin *pl = (tg_plugin *)(uintptr_t)1;
  int rc = tg_plugin_load(pool, path, &pl);
  char detail[1024];
  snprintf(detail, sizeof detail, "%s", tg_last_error());
  CHECK(rc == TG_EPLUGIN, "%s: load returned %s, expected EPLUGIN (%s)", path, tg_error_name(rc), detail);
  CHECK(pl == NULL, "%s: *out is NULL after a refusal", path);
  CHECK(contains(detail, path), "the error names the file: \"%s\"", detail);
  CHECK(contains(detail, why), "the error says why (\"%s\"): \"%s\"", why, detail);
  CHECK(!file_exists(marker), "%s: no plugin code ran before the refusal", path);
  remove(marker);
}

static void test_refusals(void) {
  tg_pool *pool = tap_pool(2, 0, 0);
  char path[4096];
  snprintf(path, sizeof path, "%s/missing.so", tmpdir);
  expect_refused(pool, path, "no such file");
  snprintf(path, sizeof path, "%s/notes.so", tmpdir);
  FILE *f = fopen(path, "w");
  fputs("this is text, not a shared object\n", f);
  fclose(f);
  expect_refused(pool, path, "not a loadable shared object");
  expect_refused(pool, tmpdir, "not a regular file");
  expect_refused(pool, fixture("r_no_descriptor.so"), "no descriptor");
  expect_refused(pool, fixture("r_function_descriptor.so"), "is a function");
  expect_refused(pool, fixture("r_bad_magic.so"), "bad descriptor magic");
  expect_refused(pool, fixture("r_abi_major.so"), "the major must match");
  expect_refused(pool, fixture("r_abi_minor.so"), "newer than this host");
  expect_refused(pool, fixture("r_missing_entry.so"), "symbol 'no_such_function' not found");
  expect_refused(pool, fixture("r_unknown_type.so"), "type 99");
  expect_refused(pool, fixture("r_missing_recover.so"), "recover hook: symbol 'no_recover_hook' not found");
  expect_refused(pool, fixture("r_bad_name.so"), "plugin name 'bad name!'");

  /* A bare name is not searched for, even when the file is right here. */
  tg_plugin *pl = NULL;
  CHECK_RC(tg_plugin_load(pool, "libgood.so", &pl), TG_EPLUGIN);
  CHECK(contains(tg_last_error(), "not searched for"), "a bare name is refused: %s", tg_last_error());

  /* init runs (it is plugin code, after the checks) and its refusal carries its message. */
  tg_plugin *bad = NULL;
  int rc = tg_plugin_load(pool, fixture("r_init_fails.so"), &bad);
  CHECK(rc == TG_EPLUGIN && contains(tg_last_error(), "init hook failed (7): no licence"), "init failure: %s",
        tg_last_error());
  remove(marker);

  /* Two files registering the same processor names. */
  tg_plugin *good = NULL, *copy = NULL;
  CHECK_RC(tg_plugin_load(pool, fixture("libgood.so"), &good), TG_OK);
  rc = tg_plugin_load(pool, fixture("libgood_copy.so"), &copy);
  CHECK(rc == TG_EPLUGIN && contains(tg_last_error(), "already registered") &&
            contains(tg_last_error(), "libgood.so") && contains(tg_last_error(), "libgood_copy.so"),
        "duplicate processor names refused, naming both files: %s", tg_last_error());

  /* Bad arguments to the calls themselves. */
  CHECK_RC(tg_plugin_load(NULL, fixture("libgood.so"), &pl), TG_EINVAL);
  CHECK_RC(tg_plugin_load(pool, NULL, &pl), TG_EINVAL);
  CHECK_RC(tg_plugin_load(pool, fixture("libgood.so"), NULL), TG_EINVAL);
  CHECK_RC(tg_plugin_load(pool, "", &pl), TG_EINVAL);
  CHECK_RC(tg_plugin_unload(pool, NULL), TG_EINVAL);
  CHECK_RC(tg_plugin_unload(pool, good), TG_OK);
  CHECK_RC(tg_plugin_unload(pool, good), TG_EBADHANDLE);
  tg_plugin_info info = TG_PLUGIN_INFO_INIT;
  CHECK_RC(tg_plugin_get_info(good, &info), TG_EBADHANDLE);
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK_RC(tg_plugin_load(pool, fixture("libgood.so"), &pl), TG_ESHUTDOWN);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* ---- listing ------------------------------------------------------------------ */

static void test_listing(void) {
  tg_pool *pool = tap_pool(1, 0, 0);
  tg_plugin *pl = NULL, *again = NULL;
  CHECK_RC(tg_plugin_load(pool, fixture("libgood.so"), &pl), TG_OK);
  tg_plugin_info info = TG_PLUGIN_INFO_INIT;
  CHECK_RC(tg_plugin_get_info(pl, &info), TG_OK);
  CHECK(strcmp(info.name, "good") == 0 && strcmp(info.version, "1.2.3") == 0, "name and version: %s %s", info.name,
        info.version);
  CHECK(info.n_processors == 5, "5 processors, got %u", info.n_processors);
  CHECK(info.path[0] == '/' && contains(info.path, "libgood.so"), "resolved path: %s", info.path);
  CHECK(info.abi_major == TG_PLUGIN_ABI_MAJOR && info.abi_minor == TG_PLUGIN_ABI_MINOR, "abi %u.%u", info.abi_major,
        info.abi_minor);
  const char *names[] = {"good.all_types", "good.many", "good.none", "good.work", "good.plain_work"};
  for (uint32_t k = 0; k < 5; k++) {
    const tg_processor *q = NULL;
    CHECK_RC(tg_plugin_processor_at(pl, k, &q), TG_OK);
    tg_processor_info pi = TG_PROCESSOR_INFO_INIT;
    CHECK_RC(tg_processor_get_info(q, &pi), TG_OK);
    CHECK(strcmp(pi.name, names[k]) == 0, "processor %u is %s, got %s", k, names[k], pi.name);
    const tg_processor *found = NULL;
    CHECK_RC(tg_pool_find_processor(pool, names[k], &found), TG_OK);
    CHECK(found == q, "find returns the same handle for %s", names[k]);
  }
  const tg_processor *q = NULL;
  CHECK_RC(tg_pool_find_processor(pool, "good.all_types", &q), TG_OK);
  tg_processor_info pi = TG_PROCESSOR_INFO_INIT;
  CHECK_RC(tg_processor_get_info(q, &pi), TG_OK);
  CHECK(strcmp(pi.signature, "(i32, u32, i64, u64, double, bool, string, bytes, float, i8, u8, i16, u16)") == 0,
        "signature: %s", pi.signature);
  CHECK(pi.n_args == 13 && pi.arg_types[7] == TG_TYPE_BYTES && pi.flags == 0, "types");
  CHECK(strcmp(pi.description, "every argument type") == 0, "description: %s", pi.description);
  CHECK_RC(tg_pool_find_processor(pool, "good.work", &q), TG_OK);
  CHECK_RC(tg_processor_get_info(q, &pi), TG_OK);
  CHECK(pi.flags == (TG_PROCESSOR_HAS_SETUP | TG_PROCESSOR_HAS_CLEANUP), "work has setup and cleanup");
  CHECK(strcmp(tg_type_name(TG_TYPE_U16), "u16") == 0 && strcmp(tg_type_name(99), "unknown") == 0, "type names");

  CHECK_RC(tg_pool_find_processor(pool, "good.nope", &q), TG_ENOTFOUND);
  CHECK(contains(tg_last_error(), "good.nope") && contains(tg_last_error(), "good.work"),
        "the error names the processor and lists the loaded ones: %s", tg_last_error());
  CHECK_RC(tg_plugin_processor_at(pl, 5, &q), TG_ERANGE);

  /* The same file again (through another spelling of the path) is the same plugin. */
  char other[4096];
  snprintf(other, sizeof other, "%s/./libgood.so", dir);
  CHECK_RC(tg_plugin_load(pool, other, &again), TG_OK);
  CHECK(again == pl, "loading the same file twice returns the same handle");
  CHECK_RC(tg_plugin_unload(pool, pl), TG_OK);
  CHECK_RC(tg_pool_find_processor(pool, "good.none", &q), TG_OK); /* still loaded once */
  CHECK_RC(tg_plugin_unload(pool, pl), TG_OK);
  CHECK_RC(tg_pool_find_processor(pool, "good.none", &q), TG_ENOTFOUND);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* ---- arguments ------------------------------------------------------------------- */

static int submit_args(tg_pool *pool, const char *id, const tg_processor *q, const tg_value *args, size_t n) {
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.id = id;
  d.processor = q;
  d.args = args;
  d.n_args = n;
  return tg_pool_submit(pool, &d, NULL);
}

static const char *output_of(tg_pool *pool, const char *id) {
  static char buf[2048];
  tg_result r = TG_RESULT_INIT;
  buf[0] = 0;
  if (tg_pool_wait(pool, id, WAIT_MS) != TG_OK || tg_pool_result(pool, id, &r) != TG_OK) return "(no result)";
  if (r.status != TG_STATUS_SUCCEEDED) {
    snprintf(buf, sizeof buf, "(%s: %s)", tg_status_name(r.status), r.error ? r.error : "");
    return buf;
  }
  snprintf(buf, sizeof buf, "%.*s", (int)r.output_len, r.output ? (const char *)r.output : "");
  return buf;
}

static void all_types(tg_value *v) {
  static const unsigned char raw[] = {0x00, 0xff, 0x10};
  v[0] = tg_value_i64(TG_TYPE_I32, -5);
  v[1] = tg_value_i64(TG_TYPE_U32, 4000000000LL);
  v[2] = tg_value_i64(TG_TYPE_I64, -9000000000000000000LL);
  v[3] = tg_value_u64(18000000000000000000ULL);
  v[4] = tg_value_double(0.1);
  v[5] = tg_value_bool(1);
  v[6] = tg_value_string("héllo");
  v[7] = tg_value_bytes(raw, 3);
  v[8] = tg_value_double(1.5);
  v[8].type = TG_TYPE_FLOAT;
  v[9] = tg_value_i64(TG_TYPE_I8, -7);
  v[10] = tg_value_i64(TG_TYPE_U8, 250);
  v[11] = tg_value_i64(TG_TYPE_I16, -30000);
  v[12] = tg_value_i64(TG_TYPE_U16, 65000);
}

static void test_arguments(void) {
  tg_pool *pool = tap_pool(2, 0, 0);
  tg_plugin *pl = NULL;
  CHECK_RC(tg_plugin_load(pool, fixture("libgood.so"), &pl), TG_OK);
  const tg_processor *q = NULL, *many = NULL, *none = NULL;
  CHECK_RC(tg_pool_find_processor(pool, "good.all_types", &q), TG_OK);
  CHECK_RC(tg_pool_find_processor(pool, "good.many", &many), TG_OK);
  CHECK_RC(tg_pool_find_processor(pool, "good.none", &none), TG_OK);

  tg_value v[13];
  all_types(v);
  char s[64];
  strcpy(s, "héllo");
  CHECK_RC(submit_args(pool, "types", q, v, 13), TG_OK);
  strcpy(s, "XXXXX"); /* arguments were copied at submission */
  const char *want = "i32=-5 u32=4000000000 i64=-9000000000000000000 u64=18000000000000000000 "
                     "double=0.10000000000000001 bool=1 string=héllo bytes=3:00ff10 float=1.5 i8=-7 u8=250 "
                     "i16=-30000 u16=65000";
  CHECK(strcmp(output_of(pool, "types"), want) == 0, "all types: %s", output_of(pool, "types"));

  /* Conversions: any integer whose value fits; integers for doubles; a double
     given as a float is rounded to float first. */
  all_types(v);
  v[0] = tg_value_i64(TG_TYPE_I64, -5);
  v[1] = tg_value_u64(4000000000ULL);
  v[4] = tg_value_i64(TG_TYPE_I32, 3);
  v[8] = tg_value_double(0.1);
  v[8].type = TG_TYPE_FLOAT;
  v[10] = tg_value_i64(TG_TYPE_I64, 250);
  CHECK_RC(submit_args(pool, "converted", q, v, 13), TG_OK);
  CHECK(contains(output_of(pool, "converted"), "i32=-5 u32=4000000000") &&
            contains(output_of(pool, "converted"), "double=3 ") &&
            contains(output_of(pool, "converted"), "float=0.100000001 ") &&
            contains(output_of(pool, "converted"), "u8=250 "),
        "conversions: %s", output_of(pool, "converted"));

  /* Empty bytes, empty string. */
  all_types(v);
  v[6] = tg_value_string("");
  v[7] = tg_value_bytes(NULL, 0);
  CHECK_RC(submit_args(pool, "empty", q, v, 13), TG_OK);
  CHECK(contains(output_of(pool, "empty"), "string= bytes=0: float"), "empty values: %s", output_of(pool, "empty"));

  /* 32 arguments: more than fit in registers, a string in the middle. */
  tg_value m[32];
  double sum = 0;
  for (int k = 0; k < 32; k++) {
    if (k == 15) m[k] = tg_value_string("mid");
    else if (k % 2 == 0) { m[k] = tg_value_i64(TG_TYPE_I64, (int64_t)k * 1000000007LL); sum += (double)k * 1000000007.0; }
    else { m[k] = tg_value_double(k + 0.25); sum += k + 0.25; }
  }
  CHECK_RC(submit_args(pool, "many", many, m, 32), TG_OK);
  char expect[128];
  snprintf(expect, sizeof expect, "%.17g mid", sum);
  CHECK(strcmp(output_of(pool, "many"), expect) == 0, "32 arguments: %s, expected %s", output_of(pool, "many"), expect);

  /* No arguments; the task sees its id, attempt, worker, payload and the plugin's state. */
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.id = "none";
  d.processor = none;
  d.payload = "12345";
  d.payload_len = 5;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  const char *o = output_of(pool, "none");
  CHECK(contains(o, "id=none attempt=1 worker=") && contains(o, "payload=5 state=initialised"), "context: %s", o);

  /* Mismatches are refused at submission, naming the task and the argument. */
  all_types(v);
  CHECK_RC(submit_args(pool, "short", q, v, 12), TG_ETYPE);
  CHECK(contains(tg_last_error(), "task 'short'") && contains(tg_last_error(), "takes 13 arguments") &&
            contains(tg_last_error(), "got 12"),
        "count: %s", tg_last_error());
  CHECK_RC(submit_args(pool, "none_with_args", none, v, 1), TG_ETYPE);
  v[0] = tg_value_string("5");
  CHECK_RC(submit_args(pool, "wrongtype", q, v, 13), TG_ETYPE);
  CHECK(contains(tg_last_error(), "task 'wrongtype'") && contains(tg_last_error(), "argument 1 of good.all_types") &&
            contains(tg_last_error(), "expected i32, got string"),
        "type: %s", tg_last_error());
  all_types(v);
  v[0] = tg_value_i64(TG_TYPE_I64, 3000000000LL);
  CHECK_RC(submit_args(pool, "range", q, v, 13), TG_ETYPE);
  CHECK(contains(tg_last_error(), "3000000000 is out of range for i32"), "range: %s", tg_last_error());
  all_types(v);
  v[10] = tg_value_i64(TG_TYPE_I32, -1);
  CHECK_RC(submit_args(pool, "range_u8", q, v, 13), TG_ETYPE);
  CHECK(contains(tg_last_error(), "argument 11") && contains(tg_last_error(), "u8"), "u8 range: %s", tg_last_error());
  all_types(v);
  v[1] = tg_value_i64(TG_TYPE_I32, -1);
  CHECK_RC(submit_args(pool, "neg_u32", q, v, 13), TG_ETYPE);
  all_types(v);
  v[5] = tg_value_i64(TG_TYPE_I32, 1);
  CHECK_RC(submit_args(pool, "int_for_bool", q, v, 13), TG_ETYPE);
  all_types(v);
  v[5].as.i = 2;
  CHECK_RC(submit_args(pool, "bool2", q, v, 13), TG_ETYPE);
  all_types(v);
  v[6].as.s = NULL;
  CHECK_RC(submit_args(pool, "nullstr", q, v, 13), TG_ETYPE);
  CHECK(contains(tg_last_error(), "argument 7") && contains(tg_last_error(), "NULL"), "null string: %s", tg_last_error());
  all_types(v);
  v[7] = tg_value_bytes(NULL, 4);
  CHECK_RC(submit_args(pool, "nullbytes", q, v, 13), TG_ETYPE);
  all_types(v);
  v[2].type = 77;
  CHECK_RC(submit_args(pool, "badtag", q, v, 13), TG_ETYPE);
  CHECK(contains(tg_last_error(), "type tag 77"), "bad tag: %s", tg_last_error());
  all_types(v);
  v[4] = tg_value_string("0.5");
  CHECK_RC(submit_args(pool, "strfordouble", q, v, 13), TG_ETYPE);
  CHECK_RC(submit_args(pool, "nullargs", q, NULL, 13), TG_EINVAL);
  /* Refused tasks do not exist. */
  tg_result r = TG_RESULT_INIT;
  CHECK_RC(tg_pool_result(pool, "wrongtype", &r), TG_ENOTFOUND);

  /* fn and processor together, or neither. */
  tg_task_desc both = TG_TASK_DESC_INIT;
  both.processor = none;
  both.fn = (tg_processor_fn)(uintptr_t)1;
  CHECK_RC(tg_pool_submit(pool, &both, NULL), TG_EINVAL);
  CHECK(contains(tg_last_error(), "both fn and processor"), "both: %s", tg_last_error());

  /* A batch with one bad plugin task is refused whole, and the plugin can
     still be unloaded afterwards (no in-flight count leaked). */
  tg_task_desc b[3];
  tg_value ok1[13], bad1[13];
  all_types(ok1);
  all_types(bad1);
  bad1[3] = tg_value_double(1.0);
  for (int k = 0; k < 3; k++) {
    tg_task_desc z = TG_TASK_DESC_INIT;
    b[k] = z;
    b[k].processor = q;
    b[k].args = k == 2 ? bad1 : ok1;
    b[k].n_args = 13;
  }
  b[0].id = "batch0";
  b[1].id = "batch1";
  b[2].id = "batch2";
  CHECK_RC(tg_pool_submit_batch(pool, b, 3, NULL), TG_ETYPE);
  CHECK(contains(tg_last_error(), "task 'batch2'") && contains(tg_last_error(), "argument 4"), "batch: %s",
        tg_last_error());
  CHECK_RC(tg_pool_result(pool, "batch0", &r), TG_ENOTFOUND);

  /* The 0.1 layout of tg_task_desc (without processor fields) still works. */
  tg_task_desc old = TG_TASK_DESC_INIT;
  old.struct_size = (uint32_t)offsetof(tg_task_desc, processor);
  old.processor = none; /* not read: beyond the old size */
  old.fn = NULL;
  CHECK_RC(tg_pool_submit(pool, &old, NULL), TG_EINVAL);

  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  CHECK_RC(tg_plugin_unload(pool, pl), TG_OK);
  /* A stale processor handle is refused, not called. */
  CHECK_RC(submit_args(pool, "stale", none, NULL, 0), TG_EINVAL);
  CHECK(contains(tg_last_error(), "not a processor of a plugin loaded in this pool"), "stale: %s", tg_last_error());
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* ---- setup, cleanup, unload ------------------------------------------------------- */

static void test_lifecycle(void) {
  tg_pool *pool = tap_pool(2, 0, 0);
  tg_plugin *pl = NULL;
  char log[4096], shutdown_log[4096];
  snprintf(log, sizeof log, "%s/lifecycle.log", tmpdir);
  snprintf(shutdown_log, sizeof shutdown_log, "%s/shutdown.log", tmpdir);
  remove(log);
  remove(shutdown_log);
  setenv("TG_TEST_SHUTDOWN_LOG", shutdown_log, 1);
  CHECK_RC(tg_plugin_load(pool, fixture("libgood.so"), &pl), TG_OK);
  const tg_processor *work = NULL;
  CHECK_RC(tg_pool_find_processor(pool, "good.work", &work), TG_OK);

  struct { const char *id; int mode; int64_t ms; int64_t timeout_ms; int status; } cases[] = {
      {"ok", 0, 0, 0, TG_STATUS_SUCCEEDED},
      {"fails", 1, 0, 0, TG_STATUS_FAILED},
      {"setupfail_1", 0, 0, 0, TG_STATUS_FAILED},
      {"times_out", 2, 20000, 50, TG_STATUS_TIMED_OUT},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    tg_value a[2] = {tg_value_i64(TG_TYPE_I32, cases[k].mode), tg_value_i64(TG_TYPE_I64, cases[k].ms)};
    tg_task_desc d = TG_TASK_DESC_INIT;
    d.id = cases[k].id;
    d.processor = work;
    d.args = a;
    d.n_args = 2;
    d.payload = log;
    d.payload_len = strlen(log);
    d.timeout_ms = cases[k].timeout_ms;
    CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  }
  /* One to cancel while it runs. */
  tg_value a[2] = {tg_value_i64(TG_TYPE_I32, 2), tg_value_i64(TG_TYPE_I64, 20000)};
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.id = "cancelled";
  d.processor = work;
  d.args = a;
  d.n_args = 2;
  d.payload = log;
  d.payload_len = strlen(log);
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  tg_result r = TG_RESULT_INIT;
  int64_t deadline = now_ns() + (int64_t)WAIT_MS * 1000000;
  while (tg_pool_result(pool, "cancelled", &r) == TG_OK && r.status != TG_STATUS_RUNNING && now_ns() < deadline)
    sleep_us(500);
  CHECK(r.status == TG_STATUS_RUNNING, "the task to cancel started");
  /* Running: the plugin cannot go. */
  CHECK_RC(tg_plugin_unload(pool, pl), TG_EBUSY);
  CHECK(contains(tg_last_error(), "in flight"), "busy: %s", tg_last_error());
  CHECK_RC(tg_pool_cancel(pool, "cancelled"), TG_OK);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);

  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    CHECK_RC(tg_pool_result(pool, cases[k].id, &r), TG_OK);
    CHECK(r.status == cases[k].status, "%s ended %s, expected %s", cases[k].id, tg_status_name(r.status),
          tg_status_name(cases[k].status));
  }
  CHECK_RC(tg_pool_result(pool, "setupfail_1", &r), TG_OK);
  CHECK(r.error && strcmp(r.error, "setup refused this task") == 0, "setup's error: %s", r.error ? r.error : "(null)");
  CHECK_RC(tg_pool_result(pool, "fails", &r), TG_OK);
  CHECK(r.error && strcmp(r.error, "work failed on purpose") == 0, "entry's error: %s", r.error ? r.error : "(null)");

  /* A cancelled task's processor may still be returning: unload waits for it
     (refused until then), never unmaps code in use. */
  deadline = now_ns() + (int64_t)WAIT_MS * 1000000;
  int rc;
  while ((rc = tg_plugin_unload(pool, pl)) == TG_EBUSY && now_ns() < deadline) sleep_us(1000);
  CHECK_RC(rc, TG_OK);
  char *text = read_file(log);
  CHECK(contains(text, "setup ok\n") && contains(text, "cleanup ok 4\n"), "success: setup and cleanup: %s", text);
  CHECK(contains(text, "setup fails\n") && contains(text, "cleanup fails 5\n"), "failure: cleanup told FAILED");
  CHECK(contains(text, "setup setupfail_1\n") && contains(text, "cleanup setupfail_1 5\n"),
        "failed setup: cleanup still runs");
  CHECK(contains(text, "cleanup times_out 6\n"), "timeout: cleanup told TIMED_OUT: %s", text);
  CHECK(contains(text, "cleanup cancelled 7\n"), "cancel: cleanup told CANCELLED: %s", text);
  text = read_file(shutdown_log);
  CHECK(contains(text, "shutdown initialised"), "the shutdown hook ran with the init state: %s", text ? text : "(none)");

  /* A task cancelled before it started runs neither setup nor cleanup. */
  remove(log);
  CHECK_RC(tg_plugin_load(pool, fixture("libgood.so"), &pl), TG_OK);
  CHECK_RC(tg_pool_find_processor(pool, "good.work", &work), TG_OK);
  tg_value hold[2] = {tg_value_i64(TG_TYPE_I32, 2), tg_value_i64(TG_TYPE_I64, 20000)};
  const char *ids[] = {"hold1", "hold2", "never"};
  for (int k = 0; k < 3; k++) {
    tg_task_desc h = TG_TASK_DESC_INIT;
    h.id = ids[k];
    h.processor = work;
    h.args = hold;
    h.n_args = 2;
    h.payload = log;
    h.payload_len = strlen(log);
    h.group = k < 2 ? "holders" : "later";
    h.priority = k < 2 ? TG_PRIORITY_HIGH : TG_PRIORITY_LOW;
    CHECK_RC(tg_pool_submit(pool, &h, NULL), TG_OK);
  }
  CHECK_RC(tg_pool_cancel(pool, "never"), TG_OK);
  CHECK_RC(tg_pool_cancel_group(pool, "holders", NULL), TG_OK);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  deadline = now_ns() + (int64_t)WAIT_MS * 1000000;
  while ((rc = tg_plugin_unload(pool, pl)) == TG_EBUSY && now_ns() < deadline) sleep_us(1000);
  CHECK_RC(rc, TG_OK);
  text = read_file(log);
  CHECK(!contains(text, "never"), "a task that never started had no setup or cleanup: %s", text ? text : "");

  /* Plugins still loaded are unloaded by destroy, their shutdown hooks run. */
  remove(shutdown_log);
  CHECK_RC(tg_plugin_load(pool, fixture("libgood.so"), &pl), TG_OK);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
  text = read_file(shutdown_log);
  CHECK(contains(text, "shutdown initialised"), "destroy unloads plugins");
  unsetenv("TG_TEST_SHUTDOWN_LOG");
}

/* ---- mixed with C tasks, at 1, 2, 4, 8 workers ------------------------------------------ */

static int c_task(tg_task_ctx *ctx, void *user) {
  (void)user;
  tg_task_set_output(ctx, "c", 1);
  return TG_TASK_SUCCEEDED;
}

static void test_mixed(uint32_t workers) {
  tg_pool *pool = tap_pool(workers, 0, 0);
  tg_plugin *pl = NULL;
  CHECK_RC(tg_plugin_load(pool, fixture("libgood.so"), &pl), TG_OK);
  const tg_processor *q = NULL;
  CHECK_RC(tg_pool_find_processor(pool, "good.all_types", &q), TG_OK);
  enum { N = 2000 };
  static tg_task_desc d[N];
  static char ids[N][16];
  static const char *deps[N];
  tg_value v[13];
  all_types(v);
  for (int k = 0; k < N; k++) {
    tg_task_desc z = TG_TASK_DESC_INIT;
    d[k] = z;
    snprintf(ids[k], sizeof ids[k], "m%d", k);
    d[k].id = ids[k];
    if (k % 3 == 0) d[k].fn = c_task;
    else { d[k].processor = q; d[k].args = v; d[k].n_args = 13; }
    if (k > 0) { deps[k] = ids[k / 2]; d[k].deps = &deps[k]; d[k].n_deps = 1; }
    d[k].priority = (k % 5 == 0) ? TG_PRIORITY_HIGH : TG_PRIORITY_NORMAL;
  }
  CHECK_RC(tg_pool_submit_batch(pool, d, N, NULL), TG_OK);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  int good = 0;
  for (int k = 0; k < N; k++) {
    tg_result r = TG_RESULT_INIT;
    if (tg_pool_result(pool, ids[k], &r) != TG_OK || r.status != TG_STATUS_SUCCEEDED) continue;
    if (k % 3 == 0) good += r.output_len == 1;
    else good += r.output_len > 100 && memcmp(r.output, "i32=-5 u32=4000000000", 21) == 0;
  }
  CHECK(good == N, "%u workers: %d of %d mixed tasks succeeded with the right output", workers, good, N);
  CHECK_RC(tg_plugin_unload(pool, pl), TG_OK);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

int main(int argc, char **argv) {
  tap_init();
  if (argc < 2) {
    fprintf(stderr, "usage: test_plugins FIXTURE_DIR\n");
    return 2;
  }
  snprintf(dir, sizeof dir, "%s", argv[1]);
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 2;
  }
  snprintf(marker, sizeof marker, "%s/marker", tmpdir);
  setenv("TG_TEST_MARKER", marker, 1);
  test_refusals();
  test_listing();
  test_arguments();
  test_lifecycle();
  uint32_t counts[] = {1, 2, 4, 8};
  for (int k = 0; k < 4; k++) test_mixed(counts[k]);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  return tg_test_summary();
}
