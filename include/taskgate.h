/*
 * taskgate.h: the C interface of libtaskgate, an embeddable parallel task engine.
 *
 * This header is the contract and the reference documentation. Link with
 * -ltaskgate (pkg-config: taskgate). C99 and C++ compatible.
 *
 * ---------------------------------------------------------------------------
 * THREAD SAFETY
 *   Every function may be called from any thread at any time, concurrently,
 *   unless its comment says otherwise. The exceptions are:
 *     - tg_pool_destroy(): no other call on the same pool may run at the same
 *       time or after it returns TG_OK.
 *     - the tg_task_* functions taking a tg_task_ctx: only from inside the
 *       processor call that received the context, on the thread running it.
 *   A processor may submit to, cancel in and read results of its own pool.
 *   It must not wait on its own pool without a timeout (tg_pool_wait*,
 *   tg_pool_shutdown): the wait would include the calling task itself.
 *
 * OWNERSHIP
 *   - Strings and buffers you pass in are copied before the call returns; you
 *     may free or reuse them right after.
 *   - Pointers the library hands out (in tg_result, tg_strerror, ...) are
 *     owned by the library. Each comment says how long they stay valid. Never
 *     free() them.
 *   - Handles (tg_pool *) are created by tg_pool_create() and released only by
 *     tg_pool_destroy(). Destroy functions accept NULL as a harmless no-op.
 *   - Text the library makes for you (char **out_json parameters, since 0.5)
 *     is yours: release it with tg_free().
 *
 * ERRORS
 *   Fallible functions return int: TG_OK (0) on success, a negative TG_E* code
 *   on failure. tg_strerror(code) gives static text for the code;
 *   tg_last_error() gives a detail string for the most recent failure on the
 *   calling thread (naming the task id, the cycle, the argument...). Codes are
 *   append-only: a code's number and meaning never change.
 *
 * VERSIONED STRUCTS
 *   Every struct passed across starts with `uint32_t struct_size`. Initialise
 *   structs with their *_INIT macro (or set struct_size = sizeof(the struct)):
 *   newer libraries read only the fields an older caller knew about, so the
 *   structs can grow without breaking compiled programs.
 *
 * TIME
 *   Timeouts are milliseconds; a negative timeout means "wait forever" and 0
 *   means "do not wait". Timestamps in results are CLOCK_MONOTONIC nanoseconds.
 * ---------------------------------------------------------------------------
 */
#ifndef TASKGATE_H
#define TASKGATE_H

#include <stddef.h>
#include <stdint.h>

#include "taskgate_plugin.h" /* tg_type, shared with plugin authors */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- versions ------------------------------------------------------------ */

#define TG_VERSION_MAJOR 0
#define TG_VERSION_MINOR 7
#define TG_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH, as tg_version() returns it. */
#define TG_VERSION_NUMBER (TG_VERSION_MAJOR * 10000 + TG_VERSION_MINOR * 100 + TG_VERSION_PATCH)
#define TG_VERSION_STRING "0.7.0"

/* The version of the library actually loaded, as TG_VERSION_NUMBER encodes it.
   Compare with TG_VERSION_NUMBER to detect a header/library mismatch: the
   major numbers must be equal and the library's minor at least the header's. */
int tg_version(void);
/* The loaded library's version as static text, e.g. "0.4.0". */
const char *tg_version_string(void);

/* ---- errors -------------------------------------------------------------- */

/* X(NAME, code, message): the one table of error codes. Append only. */
#define TG_ERROR_TABLE(X)                                                       \
  X(OK, 0, "success")                                                           \
  X(EINVAL, -1, "invalid argument")                                             \
  X(ENOMEM, -2, "out of memory")                                                \
  X(EBADHANDLE, -3, "not a live taskgate handle")                               \
  X(EVERSION, -4, "struct size or version not supported by this library")       \
  X(EDUPLICATE, -5, "a task with this id already exists")                       \
  X(EUNKNOWNDEP, -6, "a dependency names no known task")                        \
  X(ECYCLE, -7, "the dependencies form a cycle")                                \
  X(ESHUTDOWN, -8, "the pool is shut down")                                     \
  X(ETIMEDOUT, -9, "timed out")                                                 \
  X(EBUSY, -10, "work is still in flight")                                      \
  X(ENOTFOUND, -11, "no such task or group")                                    \
  X(EFINISHED, -12, "the task has already finished")                            \
  X(ENOMORE, -13, "no more results will come")                                  \
  X(ERANGE, -14, "value out of range")                                          \
  X(EINTERNAL, -15, "internal error")                                           \
  X(EPLUGIN, -16, "the plugin was refused")                                     \
  X(ETYPE, -17, "an argument does not match the processor's signature")        \
  X(ELIMITED, -18, "a limit or circuit breaker refuses the task now")          \
  X(ELOCKED, -19, "the lock is held by another holder")                         \
  X(ENOLCK, -20, "file locking does not work on this filesystem")              \
  X(EUNSAFE, -21, "refused an unsafe path (a link, FIFO, socket or foreign file)") \
  X(EIO, -22, "an operating system call failed")

typedef enum tg_error {
#define TG_ERROR_ENUM_(name, code, msg) TG_##name = code,
  TG_ERROR_TABLE(TG_ERROR_ENUM_)
#undef TG_ERROR_ENUM_
  TG_ERROR_LAST_ = -22
} tg_error;

/* Static text for an error code ("unknown error" for codes it does not know).
   Never NULL; never free it. */
const char *tg_strerror(int code);
/* The code's name without the TG_ prefix, e.g. "ECYCLE"; static text. */
const char *tg_error_name(int code);
/* Detail of the last failure of a tg_* call on this thread, e.g.
   "task 'b': dependency cycle b -> c -> b". Empty string when the last call
   succeeded. Valid until the next tg_* call on this thread; never NULL. */
const char *tg_last_error(void);

/* ---- types --------------------------------------------------------------- */

/* A worker pool and everything submitted to it. Opaque. */
typedef struct tg_pool tg_pool;
/* The running task, as its processor sees it. Opaque; valid only during the
   processor call. */
typedef struct tg_task_ctx tg_task_ctx;

/* Priorities: higher runs first when workers are contended; FIFO within a level.
   A zeroed field means NORMAL. */
#define TG_PRIORITY_LOW (-1)
#define TG_PRIORITY_NORMAL 0
#define TG_PRIORITY_HIGH 1

/* Task statuses, as tg_result.status reports them. */
typedef enum tg_status {
  TG_STATUS_PENDING = 0,   /* waiting for its dependencies */
  TG_STATUS_QUEUED = 1,    /* ready, waiting for a worker */
  TG_STATUS_RUNNING = 2,
  TG_STATUS_SUCCEEDED = 4,
  TG_STATUS_FAILED = 5,
  TG_STATUS_TIMED_OUT = 6,
  TG_STATUS_CANCELLED = 7,
  TG_STATUS_SKIPPED = 8,   /* a dependency did not succeed; never ran */
  TG_STATUS_REJECTED = 9   /* since 0.4: refused by an open circuit breaker; never ran */
} tg_status;

/* "succeeded", "failed", ...; "unknown" otherwise. Static text. */
const char *tg_status_name(int status);

/* What a processor returns. Under a policy (see "resilience"), FAILED is
   retried unless the policy has TG_RETRY_FAILED_IS_PERMANENT; RETRY always
   may be; PERMANENT never is. Without a policy all three simply fail. */
#define TG_TASK_SUCCEEDED 0
#define TG_TASK_FAILED 1    /* any other non-zero value counts as failed too */
#define TG_TASK_RETRY 2     /* since 0.4: a transient failure (429, 503, a timeout upstream) */
#define TG_TASK_PERMANENT 3 /* since 0.4: retrying cannot help (400, bad input) */

/* A task processor. Called on a worker thread with the task's context and the
   user pointer given at submission. It returns TG_TASK_SUCCEEDED or
   TG_TASK_FAILED; it may attach output and an error message through the
   context. It should poll tg_task_cancelled() in long loops: threads are never
   killed, and a cancelled or timed-out task's late result is discarded. */
typedef int (*tg_processor_fn)(tg_task_ctx *ctx, void *user);

/* A task's end hook (since 0.3), set in tg_task_desc.on_end. Called exactly
   once per task that sets it, after the task has reached its final status
   (any of them: succeeded, failed, timed out, cancelled, skipped) and its
   result is readable with tg_pool_result_at(pool, seq, ...). `user` is the
   task's desc.user. It runs on whichever thread ended the task: a worker, the
   thread that called tg_pool_cancel*, the pool's timeout thread, or, for a
   task skipped at submission because a dependency had already failed, the
   submitting thread before tg_pool_submit* returns. No lock of the pool is
   held during the call. Keep it short: it delays the thread it runs on. It
   may submit, cancel and read results, but must not wait on the pool without
   a timeout, nor shut it down or destroy it. A tg_pool_wait* may return
   before the hooks of the tasks it waited for have returned;
   tg_pool_shutdown() returns only after every hook has. */
typedef void (*tg_end_fn)(tg_pool *pool, uint64_t seq, int status, void *user);

/* ---- values: typed arguments for plugin processors ------------------------- */

/* A plugin processor loaded into a pool (see "plugins" below). Opaque. */
typedef struct tg_processor tg_processor;
/* A loaded plugin. Opaque. */
typedef struct tg_plugin tg_plugin;

/* One argument: a TG_TYPE_* tag and the value in the matching member.
   Integers of every width go in .i (signed) or .u (unsigned), floats and
   doubles in .d, booleans in .i (0 or 1). At submission an integer is
   accepted for any integer type whose range holds it, and for DOUBLE and
   FLOAT; anything else must match the declared type exactly. */
typedef struct tg_value {
  int32_t type;    /* TG_TYPE_* */
  uint32_t reserved;
  union {
    int64_t i;
    uint64_t u;
    double d;
    const char *s; /* NUL-terminated, not NULL */
    struct {
      const void *data; /* may be NULL when len is 0 */
      size_t len;
    } bytes;
  } as;
} tg_value;

/* Constructors, for convenience (and for FFI users such as ctypes). */
tg_value tg_value_i64(tg_type type, int64_t v); /* any integer type, or TG_TYPE_BOOL */
tg_value tg_value_u64(uint64_t v);
tg_value tg_value_double(double v);
tg_value tg_value_bool(int v);                  /* non-zero is true */
tg_value tg_value_string(const char *s);        /* not copied here: at submission */
tg_value tg_value_bytes(const void *data, size_t len);

/* "i32", "u32", "i64", "u64", "double", "bool", "string", "bytes", "float",
   "i8", "u8", "i16", "u16"; "unknown" otherwise. Static text. */
const char *tg_type_name(int type);

/* ---- pools --------------------------------------------------------------- */

/* Let a task reading a path overlap a task writing it (write-write is always
   excluded). */
#define TG_POOL_ALLOW_READ_WRITE_OVERLAP (1u << 0)

/* A clock for policies (see "clocks"). */
typedef struct tg_clock tg_clock;

/* Worker health (since 0.4): called on a worker that has failed
   `unhealthy_after` tasks in a row, the last a plain (fn) task, at most
   `max_recoveries` times per worker, on that worker's thread, with no lock
   held. Reset what could be at fault there (a connection, a cache). Return 0
   when recovered. Plugin tasks call their plugin's recover hook instead. */
typedef int (*tg_recover_fn)(tg_pool *pool, int worker, void *user);

typedef struct tg_pool_options {
  uint32_t struct_size;     /* sizeof(tg_pool_options) */
  uint32_t workers;         /* worker threads; 0: the CPUs this process may use */
  uint32_t max_concurrency; /* tasks running at once; 0: as many as workers */
  uint32_t flags;           /* TG_POOL_* */
  /* Since 0.4. */
  tg_clock *clock;          /* retry delays, breakers, limits, cool-downs run
                               on it; NULL: the monotonic clock. The pool keeps
                               its own reference. Timeouts stay on real time. */
  uint32_t unhealthy_after; /* consecutive failures making a worker unhealthy; 0: 3 */
  uint32_t max_recoveries;  /* recover calls per worker; 0: 5 */
  tg_recover_fn recover;    /* NULL: none */
  void *recover_user;
  /* Since 0.5: cross-process locks for declared paths (see "file locks").
     With lock_dir set, a task with reads or writes takes a shared (read) or
     exclusive (write) file lock per path in that directory before its
     processor runs, so other processes using the same directory exclude it
     too. Its timeout does not cover that wait. NULL: in-process only. */
  const char *lock_dir;          /* copied; created if missing */
  int64_t lock_hold_timeout_ms;  /* in each lock's metadata; 0: 300000; < 0: no limit */
  int64_t lock_wait_ms;          /* waiting for another process's lock; < 0 (or 0):
                                    until the task is cancelled; running out
                                    fails the task, naming the holder */
  /* Since 0.7: the result cache (see "result cache"), kept on disk so it
     outlives the process. NULL: "cache" beside lock_dir when lock_dir is set
     (".taskgate/locks" gives ".taskgate/cache"), else none, and a task that
     declares a cache is refused with TG_EINVAL. Copied; created if missing. */
  const char *cache_dir;
} tg_pool_options;

#define TG_POOL_OPTIONS_INIT { (uint32_t)sizeof(tg_pool_options), 0, 0, 0, NULL, 0, 0, NULL, NULL, NULL, 0, 0, NULL }

/* Creates a pool and starts its workers. opts may be NULL for defaults.
   On success *out receives the handle (release it with tg_pool_destroy).
   Errors: TG_EINVAL (out NULL, workers > 1024), TG_EVERSION (struct_size),
   TG_ENOMEM. */
int tg_pool_create(const tg_pool_options *opts, tg_pool **out);

#define TG_SHUTDOWN_DRAIN 0 /* stop accepting; let everything submitted finish */
#define TG_SHUTDOWN_ABORT 1 /* stop accepting; cancel everything unfinished */

/* Stops accepting submissions (later submits fail with TG_ESHUTDOWN) and
   waits up to timeout_ms for the work to end as mode says: DRAIN runs what
   was submitted; ABORT cancels what has not finished and waits for running
   processors to return. Once everything has ended the workers are joined.
   TG_ETIMEDOUT if work remains after timeout_ms; call again to keep waiting
   (ABORT may follow DRAIN). Errors: TG_EBADHANDLE, TG_EINVAL (mode). */
int tg_pool_shutdown(tg_pool *pool, int mode, int64_t timeout_ms);

/* Frees the pool, its results and every pointer it handed out. NULL is a
   harmless no-op returning TG_OK. With work in flight it refuses with TG_EBUSY
   and leaves the pool untouched: shut down (drain or abort) first, or wait.
   An idle pool that was never shut down is shut down here. */
int tg_pool_destroy(tg_pool *pool);

/* ---- tasks ----------------------------------------------------------------- */

/* Makes the task's group critical. Once any task of a critical group fails
   or times out, the group's unfinished tasks are cancelled (their error names
   the task that failed); failures in other groups are only reported. A group
   is critical from the submission of its first task carrying this flag. */
#define TG_TASK_CRITICAL (1u << 0)

typedef struct tg_task_desc {
  uint32_t struct_size;       /* sizeof(tg_task_desc) */
  int32_t priority;           /* TG_PRIORITY_* */
  const char *id;             /* unique in the pool; NULL: anonymous (cannot be
                                 named by dependencies, waits or lookups) */
  tg_processor_fn fn;         /* required */
  void *user;                 /* passed to fn untouched; you own it */
  const void *payload;        /* copied; the processor reads it back */
  size_t payload_len;
  const char *const *deps;    /* ids of tasks that must succeed first */
  size_t n_deps;
  const char *const *reads;   /* paths the task reads */
  size_t n_reads;
  const char *const *writes;  /* paths the task writes */
  size_t n_writes;
  const char *group;          /* NULL: none */
  uint32_t flags;             /* TG_TASK_* */
  int32_t difficulty;         /* a score for budgets; not used for scheduling */
  int64_t timeout_ms;         /* from the moment it starts; <= 0: none */
  /* Since 0.2: a plugin processor instead of fn (set exactly one of them),
     with its arguments, checked against its signature at submission and
     copied (strings and bytes included). */
  const tg_processor *processor;
  const tg_value *args;
  size_t n_args;
  /* Since 0.3: called once the task has ended (see tg_end_fn); NULL: none.
     Works for fn and plugin tasks alike, with `user` as its argument. */
  tg_end_fn on_end;
  /* Since 0.4: the task's resilience policy; NULL: its group's, else the
     pool's, else none (see tg_pool_set_policy). */
  const struct tg_policy *policy;
  /* The key of its breaker and limits (an API host, say); NULL: a plugin
     task's processor name ("plugin.proc"), else "" (one per policy). */
  const char *key;
  /* Since 0.7: reuse the task's previous result (see "result cache").
     0: no cache; > 0: an entry at most this many ms old is reused;
     TG_CACHE_NO_EXPIRY: any age. The task needs an id and the pool a cache
     directory. */
  int64_t cache_ttl_ms;
  /* What else decides the result, beyond the processor, arguments, payload
     and declared writes (a version of your code, say): a different key
     misses. NULL: "". Copied. */
  const char *cache_key;
} tg_task_desc;

#define TG_CACHE_NO_EXPIRY (-1)

#define TG_TASK_DESC_INIT \
  { (uint32_t)sizeof(tg_task_desc), TG_PRIORITY_NORMAL, NULL, NULL, NULL, NULL, 0, \
    NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0, 0, NULL, NULL, 0, NULL, NULL, NULL, 0, NULL }

/* Submits one task. On success, *out_seq (may be NULL) receives the task's
   submission number: 0 for the pool's first task, then 1, 2, ...
   Dependencies must name tasks already submitted. Declared reads and writes
   are scheduling constraints: two tasks writing one path never run at the
   same time, nor (unless TG_POOL_ALLOW_READ_WRITE_OVERLAP) a reader with a
   writer. Paths are compared after normalisation: relative paths are taken
   from the current directory at submission, "." segments and repeated
   slashes are dropped and ".." is resolved lexically.
   A task whose dependency failed, timed out, was cancelled or skipped ends as
   TG_STATUS_SKIPPED without running.
   Errors: TG_EBADHANDLE, TG_EINVAL (NULL desc or fn, empty id, NULL in a
   list, priority out of range), TG_EVERSION, TG_EDUPLICATE, TG_EUNKNOWNDEP,
   TG_ECYCLE (a task depending on itself), TG_ESHUTDOWN, TG_ENOMEM. */
int tg_pool_submit(tg_pool *pool, const tg_task_desc *task, uint64_t *out_seq);

/* Submits count tasks at once, all or nothing. tasks is an array whose stride
   is tasks[0].struct_size (all elements must carry the same struct_size).
   Dependencies may name tasks earlier or later in the same batch; a cycle
   among them refuses the whole batch with TG_ECYCLE and tg_last_error() names
   the cycle ("a -> b -> a"). On success *out_first_seq (may be NULL) receives
   the first task's submission number; the others follow in order.
   Errors: as tg_pool_submit; on any error nothing was submitted. */
int tg_pool_submit_batch(tg_pool *pool, const tg_task_desc *tasks, size_t count,
                         uint64_t *out_first_seq);

/* Since 0.4: submits one task only if it could start now as far as its
   policy goes: its breaker admits calls and its key's limits have room. The
   task then holds its concurrency slot and rate tokens from now on (it still
   waits for its dependencies and a worker). Otherwise TG_ELIMITED at once,
   nothing submitted, and tg_last_error() says which limit. Errors: as
   tg_pool_submit, and TG_ELIMITED. */
int tg_pool_try_submit(tg_pool *pool, const tg_task_desc *task, uint64_t *out_seq);

/* ---- waiting ------------------------------------------------------------- */

/* Waits until the task has ended (in any status). TG_OK when it has ended,
   TG_ETIMEDOUT when timeout_ms passed first, TG_ENOTFOUND for an unknown id. */
int tg_pool_wait(tg_pool *pool, const char *id, int64_t timeout_ms);
/* Waits until every task submitted so far to the group has ended. */
int tg_pool_wait_group(tg_pool *pool, const char *group, int64_t timeout_ms);
/* Waits until every task submitted so far has ended. */
int tg_pool_wait_all(tg_pool *pool, int64_t timeout_ms);
/* Since 0.3: waits until the tasks numbered first_seq .. first_seq+count-1
   have all ended (a batch from tg_pool_submit_batch, anonymous tasks
   included). count 0 returns TG_OK at once. TG_ETIMEDOUT when timeout_ms
   passed first; TG_ENOTFOUND when the range reaches past the tasks
   submitted. */
int tg_pool_wait_range(tg_pool *pool, uint64_t first_seq, size_t count, int64_t timeout_ms);

/* ---- cancellation ---------------------------------------------------------- */

/* Cancels a task that has not ended: it ends as TG_STATUS_CANCELLED at once,
   its waiters are released and its dependents are skipped. A running
   processor sees tg_task_cancelled() turn true; its late result is discarded,
   and its declared paths stay claimed until it returns.
   TG_EFINISHED if the task had already ended. */
int tg_pool_cancel(tg_pool *pool, const char *id);
/* Since 0.3: the same, by submission number (anonymous tasks included).
   TG_ENOTFOUND when seq >= the number of tasks submitted. */
int tg_pool_cancel_at(tg_pool *pool, uint64_t seq);
/* Cancels the group's unfinished tasks, submitted so far, as one step: none of
   them starts after the call began. *out_count (may be NULL) receives how many
   this call cancelled. A task outside the group that depends on one of them
   ends as TG_STATUS_SKIPPED. */
int tg_pool_cancel_group(tg_pool *pool, const char *group, size_t *out_count);
/* Cancels every unfinished task submitted so far, as one step (none of them
   starts after the call began); the pool stays usable for later submissions.
   A pending task whose dependency is cancelled first may end as
   TG_STATUS_SKIPPED instead, and is then not counted in *out_count. */
int tg_pool_cancel_all(tg_pool *pool, size_t *out_count);

/* ---- results ----------------------------------------------------------------- */

typedef struct tg_result {
  uint32_t struct_size;  /* sizeof(tg_result), set by the caller */
  int32_t status;        /* tg_status; final once >= TG_STATUS_SUCCEEDED */
  uint64_t seq;          /* submission number */
  const char *id;        /* NULL for an anonymous task */
  const char *group;     /* NULL when none */
  const void *output;    /* set by the processor; NULL when none */
  size_t output_len;
  const char *error;     /* why it did not succeed; NULL when it succeeded */
  uint32_t attempts;     /* times the processor was called */
  int32_t worker;        /* worker index that ran it; -1 if it never ran */
  int64_t submit_ns;     /* CLOCK_MONOTONIC ns; 0 where not reached */
  int64_t start_ns;      /* when a worker took it up */
  int64_t end_ns;
  int64_t queue_ns;      /* from ready (dependencies done) to start */
  /* Since 0.4 (policies). */
  uint32_t flags;        /* TG_RESULT_* */
  int32_t status_code;   /* the last one the processor reported; 0: none */
  const int64_t *retry_delays_ns; /* the delay waited before each retry */
  size_t n_retry_delays; /* attempts - 1 for a task that retried (the first 1024); 0: none */
  /* Since 0.7. With TG_RESULT_CACHE_MISS: why the cache could not answer,
     "<code>: <detail>", the code one of absent, expired, definition_changed,
     reads_list_changed, read_changed, corrupt, unreadable, unusable (and
     "; the result was not stored: ..." when storing failed). NULL otherwise. */
  const char *cache_reason;
} tg_result;

#define TG_RESULT_INIT { (uint32_t)sizeof(tg_result), 0, 0, NULL, NULL, NULL, 0, NULL, 0, -1, 0, 0, 0, 0, 0, 0, NULL, 0, NULL }

/* tg_result.flags: why a task under a policy ended as it did. */
#define TG_RESULT_PERMANENT (1u << 0)          /* the processor said retrying cannot help */
#define TG_RESULT_RETRIES_EXHAUSTED (1u << 1)  /* failed on its last allowed attempt */
#define TG_RESULT_BUDGET_EXHAUSTED (1u << 2)   /* the retry budget refused a retry */
#define TG_RESULT_BREAKER_OPEN (1u << 3)       /* its breaker refused the call */
#define TG_RESULT_FALLBACK (1u << 4)           /* the policy's fallback ran instead */
#define TG_RESULT_CREDENTIALS_EXHAUSTED (1u << 5) /* every credential was exhausted */
#define TG_RESULT_EXHAUSTED_RECOVERY (1u << 6) /* failed on a worker whose recoveries are spent */
#define TG_RESULT_LIMITED (1u << 7)            /* waited for a concurrency or rate limit */
#define TG_RESULT_ROTATED (1u << 8)            /* a failure of it rotated the credentials */
#define TG_RESULT_CACHE_HIT (1u << 9)          /* since 0.7: its output came from the result cache; it did not run */
#define TG_RESULT_CACHE_MISS (1u << 10)        /* since 0.7: it declared a cache, found no usable entry
                                                  (cache_reason says why) and ran */

/* Fills *out with the task's current state and, once it has ended, its
   result. The pointers in *out are owned by the pool and stay valid until
   tg_pool_destroy(). Errors: TG_ENOTFOUND, TG_EINVAL, TG_EVERSION. */
int tg_pool_result(tg_pool *pool, const char *id, tg_result *out);
/* The same, by submission number (results in submission order: seq 0, 1, ...).
   TG_ENOTFOUND when seq >= the number of tasks submitted. */
int tg_pool_result_at(tg_pool *pool, uint64_t seq, tg_result *out);
/* Results in the order tasks ended. *cursor starts at 0; each call that
   returns TG_OK fills *out with the next ended task and advances *cursor.
   TG_ETIMEDOUT if none ended within timeout_ms; TG_ENOMORE when every
   submitted task has been returned and the pool is shut down. Several
   readers may use separate cursors. */
int tg_pool_next_completed(tg_pool *pool, uint64_t *cursor, int64_t timeout_ms,
                           tg_result *out);

typedef struct tg_pool_stats {
  uint32_t struct_size;  /* sizeof(tg_pool_stats) */
  uint32_t workers;
  uint64_t submitted;
  uint64_t ended;        /* the sum of the five final counts below */
  uint64_t succeeded;
  uint64_t failed;
  uint64_t timed_out;
  uint64_t cancelled;
  uint64_t skipped;
  uint64_t rejected;     /* since 0.4 (and counted in ended) */
} tg_pool_stats;

#define TG_POOL_STATS_INIT { (uint32_t)sizeof(tg_pool_stats), 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/* Counts so far; a snapshot, not atomic across fields while work runs. */
int tg_pool_stats_get(tg_pool *pool, tg_pool_stats *out);

/* ---- plugins ------------------------------------------------------------ */

/* Loads the plugin at `path` into the pool (taskgate_plugin.h describes what a
   plugin is). The path is used as given: a name without a slash is NOT looked
   up in the library search path nor the current directory; write "./x.so" for
   that. The descriptor is checked before any of the plugin's functions run;
   then its init hook runs. Loading a file that is already loaded in this pool
   (the same file, by device and inode) returns the same handle and counts one
   more load. *out receives the handle, valid until the matching
   tg_plugin_unload() or tg_pool_destroy().
   Errors: TG_EINVAL, TG_EBADHANDLE, TG_ESHUTDOWN, TG_ENOMEM, and TG_EPLUGIN
   with tg_last_error() naming the file and why: no such file, not a loadable
   shared object, no descriptor, bad magic, another ABI major or a newer minor,
   a missing symbol, an unknown argument type, a bad name, a processor name
   already registered by another plugin, init failed. */
int tg_plugin_load(tg_pool *pool, const char *path, tg_plugin **out);

/* Undoes one tg_plugin_load(). The last unload runs the shutdown hook and
   closes the file; it is refused with TG_EBUSY while tasks of the plugin are
   in flight (submitted and not ended, or still running after a cancel or
   timeout). Errors: TG_EINVAL, TG_EBADHANDLE, TG_EBUSY. */
int tg_plugin_unload(tg_pool *pool, tg_plugin *plugin);

typedef struct tg_plugin_info {
  uint32_t struct_size;      /* sizeof(tg_plugin_info), set by the caller */
  uint32_t n_processors;
  const char *name;          /* strings: owned by the pool, valid while loaded */
  const char *version;
  const char *description;   /* "" when none */
  const char *path;          /* the resolved path of the file */
  uint32_t abi_major;
  uint32_t abi_minor;        /* what the plugin was built against */
} tg_plugin_info;
#define TG_PLUGIN_INFO_INIT { (uint32_t)sizeof(tg_plugin_info), 0, NULL, NULL, NULL, NULL, 0, 0 }

int tg_plugin_get_info(const tg_plugin *plugin, tg_plugin_info *out);
/* The plugin's index-th processor (0 .. n_processors-1), in declared order.
   Errors: TG_EINVAL, TG_EBADHANDLE, TG_ERANGE. */
int tg_plugin_processor_at(const tg_plugin *plugin, uint32_t index, const tg_processor **out);
/* Finds a processor by its full name, "<plugin>.<processor>", among the
   plugins loaded in the pool. Errors: TG_ENOTFOUND (naming it), TG_EINVAL. */
int tg_pool_find_processor(tg_pool *pool, const char *name, const tg_processor **out);

#define TG_PROCESSOR_HAS_SETUP (1u << 0)
#define TG_PROCESSOR_HAS_CLEANUP (1u << 1)

typedef struct tg_processor_info {
  uint32_t struct_size;      /* sizeof(tg_processor_info), set by the caller */
  uint32_t n_args;
  const char *name;          /* full name, "text.upper"; owned by the pool */
  const char *description;   /* "" when none */
  const uint8_t *arg_types;  /* n_args TG_TYPE_* values */
  const char *signature;     /* "(string, i32, double)" */
  uint32_t flags;            /* TG_PROCESSOR_* */
  uint32_t reserved;
} tg_processor_info;
#define TG_PROCESSOR_INFO_INIT { (uint32_t)sizeof(tg_processor_info), 0, NULL, NULL, NULL, NULL, 0, 0 }

int tg_processor_get_info(const tg_processor *processor, tg_processor_info *out);

/* ---- inside a processor -------------------------------------------------- */

/* The running task's id (NULL if anonymous); valid during the call. */
const char *tg_task_id(const tg_task_ctx *ctx);
/* The task's payload and its length (*len may be NULL); valid during the call. */
const void *tg_task_payload(const tg_task_ctx *ctx, size_t *len);
/* Non-zero once the task was cancelled or timed out: stop early. */
int tg_task_cancelled(const tg_task_ctx *ctx);
/* The index of the worker running the task, 0 .. workers-1. */
int tg_task_worker(const tg_task_ctx *ctx);
/* Sets the task's output (copied; replaces an earlier one). */
int tg_task_set_output(tg_task_ctx *ctx, const void *data, size_t len);
/* Sets the task's error message (copied; replaces an earlier one). */
int tg_task_set_error(tg_task_ctx *ctx, const char *message);
/* Since 0.4. The attempt being made: 1 for the first call. */
int tg_task_attempt(const tg_task_ctx *ctx);
/* The status code of the service the processor called (429, 503, ...), read
   by retries and credential rotation and shown in tg_result.status_code.
   Recorded for tasks under a policy; ignored otherwise. */
int tg_task_set_status_code(tg_task_ctx *ctx, int32_t code);
/* How long the service asked to wait (its Retry-After), in milliseconds >= 0:
   replaces the computed backoff before the next attempt, and cools a
   rate-limited credential down for that long (at most a year is kept).
   Under a policy only. */
int tg_task_set_retry_after(tg_task_ctx *ctx, int64_t ms);

/* The credential this attempt should use. The strings are owned by the pool
   and valid during the processor call. Never log them. */
typedef struct tg_credential {
  uint32_t struct_size;  /* sizeof(tg_credential) */
  uint32_t index;        /* 0-based position in its ring (when read back) */
  const char *key;
  const char *base_url;  /* NULL when none */
  const char *model;     /* NULL when none */
} tg_credential;
#define TG_CREDENTIAL_INIT { (uint32_t)sizeof(tg_credential), 0, NULL, NULL, NULL }

/* Fills *out with the running attempt's credential. TG_ENOTFOUND when the
   task's policy has no credentials. */
int tg_task_credential(const tg_task_ctx *ctx, tg_credential *out);

/* ---- clocks (since 0.4) --------------------------------------------------- */

/* A virtual clock, for tests: it moves only when tg_clock_advance() says so,
   and pools using it wake their delayed tasks when it does. start_ns is its
   first reading. Release with tg_clock_destroy(); pools keep their own
   reference. Errors: TG_EINVAL, TG_ENOMEM. */
int tg_clock_create_virtual(int64_t start_ns, tg_clock **out);
/* Moves the clock forward by ns (>= 0). TG_EINVAL for a negative ns. */
int tg_clock_advance(tg_clock *clock, int64_t ns);
/* The clock's reading in *out_ns. */
int tg_clock_now(const tg_clock *clock, int64_t *out_ns);
/* Drops the caller's reference. NULL is a harmless no-op. */
int tg_clock_destroy(tg_clock *clock);

/* ---- resilience (since 0.4) ------------------------------------------------ */

/* A policy says how the tasks under it meet failure: retries with backoff
   and a budget, a circuit breaker and limits per key, a ring of credentials.
   It is made in a pool, lives as long as the pool, and is shared by every
   task that names it (tg_task_desc.policy) or inherits it from its group or
   the pool (tg_pool_set_policy). All its times run on the pool's clock.

   Backoff, for the k-th retry (k = 1 after the first failed call):
     raw(k)   = delays_ms[min(k, n) - 1]                  with a list
              = min(max_delay, base_delay * multiplier^(k-1))  otherwise
     delay(k) = jitter(raw(k)), then clamped to [0, max_delay]
   A retry-after the processor reported replaces delay(k). A task waiting
   out its delay holds no worker. Timed-out and cancelled tasks are never
   retried. */

#define TG_JITTER_NONE 0
#define TG_JITTER_PROPORTIONAL 1 /* delay ± delay * jitter_factor (the seeds' 10%) */
#define TG_JITTER_FULL 2         /* uniform in [0, delay] */
#define TG_JITTER_EQUAL 3        /* delay/2 + uniform in [0, delay/2] */
#define TG_JITTER_DECORRELATED 4 /* uniform in [base, 3 * previous delay] */

#define TG_RETRY_FAILED_IS_PERMANENT (1u << 0) /* TG_TASK_FAILED is not retried */
#define TG_RETRY_IGNORE_RETRY_AFTER (1u << 1)  /* always use the computed delay */

typedef struct tg_retry_options {
  uint32_t struct_size;         /* sizeof(tg_retry_options) */
  uint32_t max_attempts;        /* calls in all, the first included; 1: no retries */
  int64_t base_delay_ms;
  double multiplier;            /* >= 1 */
  int64_t max_delay_ms;         /* the cap, after jitter too */
  int32_t jitter;               /* TG_JITTER_* */
  uint32_t flags;               /* TG_RETRY_* */
  double jitter_factor;         /* for TG_JITTER_PROPORTIONAL, 0 .. 1 */
  const int64_t *delays_ms;     /* explicit delays (the last repeats); copied */
  size_t n_delays;              /* 0: the formula */
  /* A retry budget: retries may be at most budget_ratio of the first calls
     of the last budget_window_ms, plus budget_min_per_second retries a
     second; 0: no budget. */
  double budget_ratio;
  int64_t budget_window_ms;
  double budget_min_per_second;
} tg_retry_options;
/* The seeds' defaults: 3 attempts, 1 s doubling to at most 60 s, ±10%. */
#define TG_RETRY_OPTIONS_INIT \
  { (uint32_t)sizeof(tg_retry_options), 3, 1000, 2.0, 60000, TG_JITTER_PROPORTIONAL, 0, 0.1, NULL, 0, \
    0.0, 10000, 10.0 }

#define TG_WINDOW_NONE 0  /* only consecutive failures count */
#define TG_WINDOW_COUNT 1 /* the last window_size calls */
#define TG_WINDOW_TIME 2  /* the calls of the last window_size seconds */

typedef struct tg_breaker_options {
  uint32_t struct_size;         /* sizeof(tg_breaker_options) */
  uint32_t failure_threshold;   /* consecutive failures that open it; 0: off */
  uint32_t success_threshold;   /* successful probes that close it again */
  uint32_t half_open_calls;     /* probes admitted while half-open; 0: success_threshold */
  int64_t open_ms;              /* how long it stays open before probing */
  uint32_t window;              /* TG_WINDOW_* */
  uint32_t window_size;         /* calls, or seconds */
  uint32_t minimum_calls;       /* the window must hold this many before a rate counts */
  uint32_t reserved;
  double failure_rate;          /* 0 .. 1 in the window that opens it; 0: off */
  int64_t slow_call_ms;         /* a call at least this long is slow; 0: off */
  double slow_call_rate;        /* 0 .. 1 of slow calls that opens it; 0: off */
} tg_breaker_options;
/* Seed 004's defaults: 5 failures open it for 60 s; 2 successes close it. */
#define TG_BREAKER_OPTIONS_INIT \
  { (uint32_t)sizeof(tg_breaker_options), 5, 2, 0, 60000, TG_WINDOW_NONE, 0, 10, 0, 0.0, 0, 0.0 }

typedef struct tg_limit_options {
  uint32_t struct_size;         /* sizeof(tg_limit_options) */
  uint32_t max_concurrent;      /* tasks of one key running at once; 0: no limit */
  double requests_per_minute;   /* token refill per minute (seed 002); 0: no rate limit */
  double cost;                  /* tokens one call takes (seed 002 requestCost) */
  double burst;                 /* bucket size; 0: requests_per_minute */
} tg_limit_options;
#define TG_LIMIT_OPTIONS_INIT { (uint32_t)sizeof(tg_limit_options), 0, 0.0, 1.0, 0.0 }

/* A ring of credentials in a pool (owned by it, valid until tg_pool_destroy). */
typedef struct tg_credentials tg_credentials;
/* A policy in a pool (owned by it, valid until tg_pool_destroy). */
typedef struct tg_policy tg_policy;

typedef struct tg_policy_options {
  uint32_t struct_size;               /* sizeof(tg_policy_options) */
  uint32_t reserved;
  const tg_retry_options *retry;      /* NULL: no retries; copied */
  const tg_breaker_options *breaker;  /* NULL: no breaker; copied */
  const tg_limit_options *limit;      /* NULL: no limits; copied */
  tg_credentials *credentials;        /* NULL: none; of the same pool */
  /* While the breaker refuses calls, run this instead of failing fast: fn
     for fn tasks (called with the task's context and user), fallback for
     plugin tasks (same signature; the task's arguments). Either needs a breaker. */
  tg_processor_fn fallback_fn;
  const tg_processor *fallback;
  uint64_t seed;                      /* seeds the jitter: same seed, same delays */
} tg_policy_options;
#define TG_POLICY_OPTIONS_INIT { (uint32_t)sizeof(tg_policy_options), 0, NULL, NULL, NULL, NULL, NULL, NULL, 0 }

/* Makes a policy in the pool. Errors: TG_EINVAL naming the bad field,
   TG_EVERSION, TG_EBADHANDLE, TG_ENOMEM. */
int tg_policy_create(tg_pool *pool, const tg_policy_options *opts, tg_policy **out);
/* The policy of tasks that name none: of `group`, or of the whole pool when
   group is NULL. NULL policy: none. Applies to later submissions. */
int tg_pool_set_policy(tg_pool *pool, const char *group, const tg_policy *policy);

#define TG_BREAKER_CLOSED 0
#define TG_BREAKER_OPEN 1
#define TG_BREAKER_HALF_OPEN 2
#define TG_BREAKER_FORCED_OPEN 3
#define TG_BREAKER_FORCED_CLOSED 4

typedef struct tg_breaker_state {
  uint32_t struct_size;         /* sizeof(tg_breaker_state) */
  int32_t state;                /* TG_BREAKER_*, as of now on the pool's clock */
  uint64_t generation;          /* grows with every change of state */
  uint32_t consecutive_failures;
  uint32_t half_open_successes;
  uint32_t probes_admitted;
  uint32_t window_calls;
  uint32_t window_failures;
  uint32_t window_slow;
  int64_t opened_at_ns;         /* the pool's clock when it last opened */
  uint64_t rejected;            /* calls refused so far */
  uint64_t times_opened;
} tg_breaker_state;
#define TG_BREAKER_STATE_INIT { (uint32_t)sizeof(tg_breaker_state), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/* The breaker of `key` (NULL: "") under the policy. A key no task has used
   yet reads closed. TG_EINVAL when the policy has no breaker. */
int tg_policy_breaker_state(const tg_policy *policy, const char *key, tg_breaker_state *out);

#define TG_BREAKER_RESET 0        /* closed, counts cleared */
#define TG_BREAKER_FORCE_OPEN 1   /* refuses every call until the next command */
#define TG_BREAKER_FORCE_CLOSED 2 /* admits every call until the next command */
int tg_policy_breaker_command(tg_policy *policy, const char *key, int command);

/* A ring made of the given credentials (copied). cooldown_ms: how long a
   credential rests after a 429 with no retry-after (< 0: 60 s). */
int tg_credentials_create(tg_pool *pool, const tg_credential *list, size_t n, int64_t cooldown_ms,
                          tg_credentials **out);
/* A ring read from the environment: PREFIX_1, PREFIX_2, ... up to the first
   missing number, with STEM_BASE_URL_n and STEM_MODEL_n beside them (STEM is
   the prefix without a trailing _API_KEY or _KEY); without PREFIX_1, plain
   PREFIX. TG_ENOTFOUND when none is set. The values are never shown. */
int tg_credentials_from_env(tg_pool *pool, const char *prefix, int64_t cooldown_ms, tg_credentials **out);

typedef struct tg_credentials_status {
  uint32_t struct_size;         /* sizeof(tg_credentials_status) */
  uint32_t count;
  uint32_t current;             /* index the next call tries first */
  uint32_t available;
  uint32_t exhausted;           /* "daily quota": out for good */
  uint32_t cooling_down;        /* rate-limited, back after their retry-after */
} tg_credentials_status;
#define TG_CREDENTIALS_STATUS_INIT { (uint32_t)sizeof(tg_credentials_status), 0, 0, 0, 0, 0 }
int tg_credentials_status_get(const tg_credentials *creds, tg_credentials_status *out);

typedef struct tg_worker_health {
  uint32_t struct_size;         /* sizeof(tg_worker_health) */
  int32_t healthy;              /* consecutive_failures < unhealthy_after */
  uint32_t consecutive_failures;
  uint32_t recovery_attempts;
  uint32_t total_recoveries;
  int32_t last_status_code;     /* of the last failure; 0: none reported */
  uint64_t failures;            /* in all */
} tg_worker_health;
#define TG_WORKER_HEALTH_INIT { (uint32_t)sizeof(tg_worker_health), 0, 0, 0, 0, 0, 0 }

/* Worker `worker`'s health (0 .. workers-1). Errors: TG_ERANGE. */
int tg_pool_worker_health(tg_pool *pool, uint32_t worker, tg_worker_health *out);


/* ---- file locks (since 0.5) ------------------------------------------------ */

/* A cross-process lock on one key (a task id, a path: any text), held
   through a lock file in a directory: one file per key, holding one line of
   JSON about its holder (key, holder_id, pid, start_time, host, acquired_at,
   timeout). The directory is created if missing, with a .gitignore.

   A lock is taken over from its holder only when the holder is provably gone
   (on this host: its pid is gone, or belongs to a process with another start
   time) or held it past its own timeout; a holder on another host is judged
   only by its timeout. Exclusive holders write metadata; shared holders do
   not, and are never taken over (the kernel frees a dead one's lock).
   Lock files are never followed through symbolic links; a FIFO, socket or
   device at a lock path is refused (TG_EUNSAFE) without blocking; a
   filesystem where locking does not work gives TG_ENOLCK.

   A tg_lock is one holder: use it from one thread at a time. Two tg_locks on
   the same key exclude each other, in one process or in two. */
typedef struct tg_lock tg_lock;

#define TG_LOCK_SHARED (1u << 0) /* a shared (read) lock; default exclusive */

typedef struct tg_lock_options {
  uint32_t struct_size;     /* sizeof(tg_lock_options) */
  uint32_t flags;           /* TG_LOCK_* */
  const char *holder_id;    /* in the metadata; copied; NULL: "pid-<pid>" */
  int64_t hold_timeout_ms;  /* after this others may take it over; 0: 300000
                               (5 minutes); < 0: no limit */
} tg_lock_options;

#define TG_LOCK_OPTIONS_INIT { (uint32_t)sizeof(tg_lock_options), 0, NULL, 0 }

/* Makes a lock handle for `key` in `dir` (both copied; opts may be NULL).
   Takes nothing yet. Errors: TG_EINVAL (NULL or empty dir/key), TG_EVERSION,
   TG_ENOTFOUND / TG_EIO (the directory cannot be made or opened), TG_ENOMEM. */
int tg_lock_open(const char *dir, const char *key, const tg_lock_options *opts, tg_lock **out);
/* Takes the lock, waiting up to timeout_ms (0: try once; < 0: forever),
   polling with a growing delay (50 us to 20 ms). TG_ELOCKED when a live
   holder keeps it (tg_last_error() names the holder); TG_EINVAL when this
   handle already holds it; TG_EUNSAFE, TG_ENOLCK, TG_EIO as above. */
int tg_lock_acquire(tg_lock *lock, int64_t timeout_ms);
/* Releases it (the metadata is blanked first; the file stays). TG_EINVAL if not held. */
int tg_lock_release(tg_lock *lock);
/* 1 while this handle holds the lock and its file is still the one at the
   path (0 after a release, or once a takeover past the hold timeout replaced
   it), 0 otherwise or for NULL. */
int tg_lock_held(const tg_lock *lock);
/* 1 when the last acquire took the lock over from a stale holder (dead,
   reused pid, past its timeout); then, if meta_json is not NULL, the old
   holder's metadata as JSON (release with tg_free). 0 otherwise. */
int tg_lock_took_over(const tg_lock *lock, char **meta_json);
/* Releases the lock if held and frees the handle. NULL is a no-op. */
int tg_lock_close(tg_lock *lock);

/* The scoped form: takes the lock (as tg_lock_acquire), calls fn(user),
   releases the lock whatever fn returns, and stores fn's return value in
   *out_result (may be NULL). Returns TG_OK when fn ran, else the acquire error
   (fn not called). */
int tg_lock_with(const char *dir, const char *key, const tg_lock_options *opts, int64_t timeout_ms,
                 int (*fn)(void *user), void *user, int *out_result);

/* The locks in dir, as a JSON array of {"file", "state" ("free", "held",
   "shared", "stale", "unsafe"), and for exclusive holders "key", "holder_id",
   "pid", "host", "acquired_at", "timeout"; "stale_reason" and
   "stale_detail" when stale; "note"}. stale_after_ms judges locks whose
   metadata cannot be read (they are stale once older than that; <= 0:
   never). *out_json is yours (tg_free). */
int tg_locks_list(const char *dir, int64_t stale_after_ms, char **out_json);
/* Removes every lock file in dir that is free or stale (seed 000:
   clean_all_stale_locks), never one a live holder has. *out_cleaned (may be
   NULL) receives the count of stale locks removed; *out_json (may be NULL)
   {"cleaned": [entries as tg_locks_list], "removed_idle": n, "kept": [...]}. */
int tg_locks_clean(const char *dir, int64_t stale_after_ms, size_t *out_cleaned, char **out_json);


/* ---- parallel execution gates (since 0.5) --------------------------------- */

/* Seed 003's gates, over the same conflict model the scheduler runs by:
   paths are normalised as at submission (relative ones from base_dir),
   write-write conflicts are always serialised, read-write ones unless
   TG_GATE_ALLOW_READ_WRITE_OVERLAP (the pool flag's twin), and tasks naming
   one shared-state key never run together. */
typedef struct tg_gate_task {
  uint32_t struct_size;       /* sizeof(tg_gate_task) */
  const char *id;             /* required, unique in the list */
  const char *const *deps;    /* ids it depends on; ids outside the list are
                                 taken as done (reported as external) */
  size_t n_deps;
  const char *const *reads;
  size_t n_reads;
  const char *const *writes;
  size_t n_writes;
  const char *const *shared;  /* shared mutable state keys ("db:orders") */
  size_t n_shared;
  int32_t difficulty;         /* >= 0; summed against max_complexity */
} tg_gate_task;

#define TG_GATE_TASK_INIT { (uint32_t)sizeof(tg_gate_task), NULL, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0 }

#define TG_GATE_ALLOW_READ_WRITE_OVERLAP (1u << 0)
/* Also sample CPU load, memory and open files (validate only). */
#define TG_GATE_CHECK_SYSTEM (1u << 1)

typedef struct tg_gate_options {
  uint32_t struct_size;        /* sizeof(tg_gate_options) */
  uint32_t flags;              /* TG_GATE_* */
  uint32_t max_parallel_tasks; /* 0: 5 (the seed's) */
  uint32_t active_tasks;       /* already running elsewhere */
  int64_t max_complexity;      /* 0: 30 (the seed's) */
  double cpu_threshold;        /* load per CPU; 0: 0.80 */
  double memory_threshold;     /* fraction of RAM in use; 0: 0.70 */
  const char *lock_dir;        /* validate: report paths locked there now; NULL: skip */
  const char *base_dir;        /* relative paths from here; NULL: the current directory */
} tg_gate_options;

#define TG_GATE_OPTIONS_INIT { (uint32_t)sizeof(tg_gate_options), 0, 0, 0, 0, 0.0, 0.0, NULL, NULL }

/* Validates tasks[0 .. n) as one parallel group (array stride:
   tasks[0].struct_size). *out_can_parallel (may be NULL) gets 1 or 0;
   *out_json (may be NULL) the report, seed 003's JSON field for field
   ("can_parallel", "task_count", "file_conflicts" [{"task1", "task2", "file",
   "type": "blocking"|"warning"|"info"}], "circular_dependencies" [[ids, each
   depending on the next, the first repeated]], "lock_issues" [{"task",
   "file"}], "resource_capacity" {"max_parallel_tasks", "requested",
   "available"}, "context_budget" {"total_complexity", "max_complexity",
   "within_budget"}, "recommendations") plus extra fields; yours (tg_free).
   Errors: TG_EINVAL (an empty or duplicate id, a negative difficulty, NULL
   lists with counts; tg_last_error() names the task), TG_EVERSION. */
int tg_gate_validate(const tg_gate_task *tasks, size_t n, const tg_gate_options *opts,
                     int *out_can_parallel, char **out_json);

/* Conflict-free batches for tasks[0 .. n): {"batches": [[ids]], "batch_count",
   "task_count", "external_dependencies", "notes", ...}. Every batch validates
   as parallel (a lone task over the budget gets a batch of its own and a
   note), every task comes after its dependencies, same input, same output.
   TG_ECYCLE when the dependencies form a cycle (named in tg_last_error()). */
int tg_gate_suggest(const tg_gate_task *tasks, size_t n, const tg_gate_options *opts, char **out_json);

/* A cycle check on an integer graph: edge i says node from[i] depends on node
   to[i] (nodes 0 .. n_nodes). *out_cycles gets the number of cyclic strongly
   connected components (0: acyclic); *out_json (may be NULL) one cycle per
   component as [[nodes, first repeated], ...]. TG_ERANGE for a node out of
   range (naming the edge). */
int tg_gate_find_cycles(size_t n_nodes, const uint32_t *from, const uint32_t *to, size_t n_edges,
                        size_t *out_cycles, char **out_json);

/* ---- result cache (since 0.7) ---------------------------------------------

   A task with cache_ttl_ms != 0 may be answered from the pool's cache
   directory instead of running: its processor is not called, it ends
   TG_STATUS_SUCCEEDED with the stored output, attempts 0 and
   TG_RESULT_CACHE_HIT. That happens when an entry for its id exists that
     - is no older than cache_ttl_ms (on CLOCK_REALTIME, so it survives
       restarts),
     - was stored for the same definition: the processor (a plugin
       processor's name and its plugin's version; for a C function only the
       word "fn", since addresses change between runs: put a version in
       cache_key), the arguments, the payload, the declared writes and
       cache_key, and the same list of declared reads,
     - and every declared read file has the mtime and size it had when the
       entry's task started (files changed within 2 s of that are compared by
       content too).
   Otherwise the task runs with TG_RESULT_CACHE_MISS and cache_reason says
   why; when it succeeds (not through a fallback) its output is stored,
   replacing the old entry, by an atomic rename, so concurrent processes
   sharing the directory never read half an entry. The lookup happens on the
   worker once the task's paths (and file locks) are held, so a task writing
   one of its reads cannot run in between. One entry per task id: ids that
   come back run after run are what make a cache useful. */

/* ---- partial failure and aggregation (since 0.6) ------------------------- */

/* A group's policy (seed 002 section 6). A group needs min_required of its
   members to succeed (0: ceil(min_fraction x members) when min_fraction > 0,
   else all of them), counted over the members submitted so far: submit a
   group in one batch, or set min_required, when the count matters early.
   TG_GROUP_CRITICAL: once fewer than required can still succeed (a member
   failed, timed out or was rejected), the group's unfinished members are
   cancelled, their error naming the task that failed; the same as a member
   carrying TG_TASK_CRITICAL, which is this with min_required 0.
   TG_GROUP_CANCEL_ALL (with CRITICAL): cancel every unfinished task of the
   pool instead: the run fails. */
#define TG_GROUP_CRITICAL (1u << 0)
#define TG_GROUP_CANCEL_ALL (1u << 1)

typedef struct tg_group_options {
  uint32_t struct_size;  /* sizeof(tg_group_options) */
  uint32_t flags;        /* TG_GROUP_* */
  uint32_t min_required; /* successes needed; 0: see min_fraction */
  uint32_t reserved;     /* 0 */
  double min_fraction;   /* 0 < f <= 1, used when min_required is 0; 0: all */
} tg_group_options;

#define TG_GROUP_OPTIONS_INIT { (uint32_t)sizeof(tg_group_options), 0, 0, 0, 0.0 }

/* Sets the group's policy, creating the group when no task named it yet. It
   replaces the group's earlier policy (a TG_TASK_CRITICAL member's included)
   and applies from the next member that ends. Thread-safe. Errors: TG_EINVAL
   (empty name, unknown flags, CANCEL_ALL without CRITICAL, min_fraction
   outside 0 .. 1, reserved not 0), TG_EVERSION. */
int tg_pool_set_group(tg_pool *pool, const char *group, const tg_group_options *opts);

typedef enum tg_group_state {
  TG_GROUP_RUNNING = 0,   /* undecided: members still to end could change it */
  TG_GROUP_SUCCEEDED = 1, /* every member ended and at least required succeeded */
  TG_GROUP_FAILED = 2     /* fewer than required can still succeed */
} tg_group_state;

typedef struct tg_group_outcome {
  uint32_t struct_size;  /* sizeof(tg_group_outcome), set by the caller */
  int32_t state;         /* tg_group_state */
  uint32_t total;        /* members submitted so far */
  uint32_t required;     /* successes needed, resolved */
  uint32_t succeeded, failed, timed_out, rejected, cancelled, skipped, unfinished;
  int32_t partial_results; /* 1: succeeded with some members failed */
} tg_group_outcome;

#define TG_GROUP_OUTCOME_INIT { (uint32_t)sizeof(tg_group_outcome), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/* The group's outcome now. *out (may be NULL) gets the counts; *out_json (may
   be NULL) {"group", "state", "success" (null while running),
   "partial_results", "failed_count", "min_required", "critical", the counts,
   "reason" ("insufficient results (k/required): ..." when failed, else null),
   "failures" [{"task", "status", "error"}]}, yours (tg_free).
   TG_ENOTFOUND for a group no task or tg_pool_set_group named. */
int tg_pool_group_outcome(tg_pool *pool, const char *group, tg_group_outcome *out, char **out_json);

/* How outputs combine (seed 002 section 5). Every kind keeps input order:
   items come out in the order of the output, then the item, that first
   gave them. Outputs are JSON texts; a value that is not a list counts as a
   list of one for UNION, INTERSECTION and FREQUENCY. Values compare as JSON
   (object key order and 1 vs 1.0 do not matter). */
typedef enum tg_aggregate_kind {
  TG_AGGREGATE_COLLECT = 0,      /* [each output, or null], in order */
  TG_AGGREGATE_UNION = 1,        /* every item of any output, once */
  TG_AGGREGATE_INTERSECTION = 2, /* the first output's items that all outputs have */
  TG_AGGREGATE_MAJORITY = 3,     /* the output most gave ("votes", "tie"; ties: the first given) */
  TG_AGGREGATE_FREQUENCY = 4     /* [{"pattern", "count", "frequency"}] for items in at
                                    least threshold of the outputs */
} tg_aggregate_kind;

typedef struct tg_aggregate_options {
  uint32_t struct_size;  /* sizeof(tg_aggregate_options) */
  uint32_t kind;         /* tg_aggregate_kind */
  uint32_t min_required; /* outputs needed for a result; 0: no minimum */
  uint32_t reserved;     /* 0 */
  double threshold;      /* FREQUENCY: 0 < t <= 1; 0: 0.4 (the seed's) */
} tg_aggregate_options;

#define TG_AGGREGATE_OPTIONS_INIT { (uint32_t)sizeof(tg_aggregate_options), 0, 0, 0, 0.0 }

/* Aggregates outputs[0 .. n) (NUL-terminated JSON texts; NULL: that task gave
   nothing, a failure). *out_json gets {"kind", "success", "partial_results",
   "failed_count", "inputs", "used", "min_required", "reason", "result",
   ("votes", "tie" for MAJORITY), "failures" [{"task": null, "status",
   "error"}]}, yours (tg_free). With fewer than min_required outputs the
   answer is TG_OK with "success": false and "reason": "insufficient results
   (k/min_required)". Errors: TG_EINVAL (an output that is not JSON: its
   index, line and column in tg_last_error(); a bad kind or threshold),
   TG_EVERSION. */
int tg_aggregate(const char *const *outputs, size_t n, const tg_aggregate_options *opts, char **out_json);

/* The same over the pool's tasks (group NULL: every task submitted so far),
   in submission order: a task that did not succeed, or has not ended, or
   whose output is not JSON text, is a failure named in "failures" with its
   id, status ("failed", "timed_out", ..., "running", "bad_output") and
   error. TG_ENOTFOUND for an unknown group. */
int tg_pool_aggregate(tg_pool *pool, const char *group, const tg_aggregate_options *opts, char **out_json);

/* ---- events and logging (since 0.7) ------------------------------------------

   The library never prints. Register a callback to hear what the engine does;
   with none registered nothing is made. Every record carries trace ids: the
   pool's run id, and for task events the task's id, submission number and
   attempt. The callback runs on the thread where the event happened (a
   worker, a canceller, the timeout thread), synchronously: keep it short. It
   may call any tg_* function except tg_pool_destroy, and must not wait on
   the pool. Events:
     task_started   DEBUG   a worker calls the processor (attempt n)
     task_ended     DEBUG (succeeded), INFO (cancelled, skipped),
                    WARNING (failed, timed_out, rejected)
     task_retry     INFO    an attempt failed and a retry is scheduled
     group_failed   ERROR   a critical group can no longer succeed
     health_alert   WARNING the health monitor's threshold was crossed
     health_cleared INFO    ... and is no longer
   fields_json holds the event's own fields: status, error, attempts, group,
   queue_ms, duration_ms, cache (task_ended); delay_ms, error (task_retry);
   group, cancel_all (group_failed); metric, value, threshold, tasks (health). */

#define TG_LOG_DEBUG 10   /* the numbers are Python logging's */
#define TG_LOG_INFO 20
#define TG_LOG_WARNING 30
#define TG_LOG_ERROR 40

typedef struct tg_log_record {
  uint32_t struct_size;    /* sizeof(tg_log_record) as the library knows it:
                              read only the fields your header has */
  int32_t level;           /* TG_LOG_* */
  const char *event;       /* "task_ended", ... */
  const char *message;     /* one line of English, without a newline */
  const char *run_id;      /* the pool's (tg_pool_set_run_id) */
  const char *task_id;     /* NULL: not about a task, or an anonymous one */
  int64_t seq;             /* the task's submission number; -1: none */
  int32_t attempt;         /* 1 for the first call; 0: none made or no task */
  int32_t worker;          /* -1: none */
  const char *fields_json; /* a JSON object, "{}" when none */
  int64_t time_ns;         /* CLOCK_REALTIME */
} tg_log_record;
/* Every pointer in the record is valid only during the call. */
typedef void (*tg_log_fn)(void *user, const tg_log_record *record);

/* Sends events at min_level and above to fn (NULL: stop). Calls already
   under way when this returns may still reach the previous callback.
   Errors: TG_EBADHANDLE, TG_EINVAL (min_level not one of TG_LOG_*). */
int tg_pool_set_log(tg_pool *pool, int32_t min_level, tg_log_fn fn, void *user);

/* The run id in every event: made at tg_pool_create ("run-<hex time>-<hex
   pid>-<n>"); set your own (1..256 bytes of printable ASCII) to join the
   pool's events to your traces. tg_pool_get_run_id gives a copy (tg_free). */
int tg_pool_set_run_id(tg_pool *pool, const char *run_id);
int tg_pool_get_run_id(tg_pool *pool, char **out);

/* ---- health monitor (since 0.7) ----------------------------------------------

   Watches the tasks that end from now on: the share that failed (failed,
   timed out or rejected), the share that timed out, and the average run time
   of those that ran (cancelled and skipped tasks are not counted). When one
   goes above its threshold (strictly; the seed's defaults 20%, 10% and 5
   minutes) a health_alert event is raised, once, until it falls back to or
   below (health_cleared). With TG_HEALTH_STOP the first alert cancels every
   unfinished task (their error names the alert). Run times are measured on
   the pool's clock when it is a virtual one (tg_pool_options.clock), so
   tests can drive them; otherwise on CLOCK_MONOTONIC. */

#define TG_HEALTH_STOP (1u << 0)

typedef struct tg_health_options {
  uint32_t struct_size;    /* sizeof(tg_health_options) */
  uint32_t flags;          /* TG_HEALTH_* */
  uint32_t min_tasks;      /* no alert before this many tasks are counted; 0: 1 */
  uint32_t reserved;       /* 0 */
  double failure_rate;     /* 0 .. 1 */
  double timeout_rate;     /* 0 .. 1 */
  double avg_duration_ms;  /* >= 0 */
} tg_health_options;

#define TG_HEALTH_OPTIONS_INIT { (uint32_t)sizeof(tg_health_options), 0, 1, 0, 0.2, 0.1, 300000.0 }

/* Starts watching (again, from zero) with opts; NULL stops watching.
   Errors: TG_EBADHANDLE, TG_EINVAL (a threshold out of range: named),
   TG_EVERSION. */
int tg_pool_set_health(tg_pool *pool, const tg_health_options *opts);

#define TG_HEALTH_FAILURE_RATE (1u << 0) /* tg_health_report.active bits */
#define TG_HEALTH_TIMEOUT_RATE (1u << 1)
#define TG_HEALTH_AVG_DURATION (1u << 2)

typedef struct tg_health_report {
  uint32_t struct_size;    /* sizeof(tg_health_report) */
  uint32_t active;         /* TG_HEALTH_* alerts raised now */
  uint64_t counted;        /* tasks counted */
  uint64_t failures;
  uint64_t timeouts;
  uint64_t timed;          /* of them, tasks that ran (in the average) */
  uint64_t alerts_raised;  /* in all, cleared ones included */
  double failure_rate;
  double timeout_rate;
  double avg_duration_ms;
} tg_health_report;

#define TG_HEALTH_REPORT_INIT { (uint32_t)sizeof(tg_health_report), 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0 }

/* Fills *out (may be NULL) and *out_json (may be NULL; yours, tg_free):
   {"report": {...}, "alerts": [{"metric", "raised", "value", "threshold",
   "tasks", "at", "message"}, ...]}, every change in order.
   TG_ENOTFOUND when no monitor is set. */
int tg_pool_health(tg_pool *pool, tg_health_report *out, char **out_json);

/* ---- metrics (since 0.7) ---------------------------------------------------------

   The run so far as Prometheus text (exposition format 0.0.4, no timestamps,
   so a node-exporter textfile collector takes it): taskgate_tasks_submitted_total,
   taskgate_tasks_total{status}, taskgate_task_retries_total,
   taskgate_task_duration_seconds and taskgate_task_queue_wait_seconds
   (histograms), taskgate_worker_tasks_total{worker},
   taskgate_worker_busy_seconds_total{worker}, taskgate_run_duration_seconds,
   taskgate_run_throughput_tasks_per_second, taskgate_cache_lookups_total{result}.
   TG_METRICS_PER_TASK adds taskgate_per_task_duration_seconds{task,status,worker},
   taskgate_per_task_queue_wait_seconds{task} and taskgate_per_task_attempts{task}
   for named tasks (a series per task: keep it for small runs). */

#define TG_METRICS_PER_TASK (1u << 0)

/* *out_text receives the text, yours (tg_free). Errors: TG_EBADHANDLE,
   TG_EINVAL (unknown flags, out_text NULL). */
int tg_pool_metrics(tg_pool *pool, uint32_t flags, char **out_text);

/* Frees text the library made for you (out_json parameters). NULL is fine. */
void tg_free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* TASKGATE_H */
