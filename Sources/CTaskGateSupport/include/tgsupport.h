/*
 * tgsupport.h: what the Swift engine cannot name safely on its own.
 *
 * - Atomics on arena memory. Task records live in large slabs that Swift
 *   allocates; Swift's `Atomic` cannot be placed at an arbitrary address in
 *   such a slab, so the few atomic fields are plain integers operated on by
 *   these inline functions (GCC __atomic builtins, inlined into Swift).
 * - futex(2) wait/wake, the sleep primitive of workers and waiters.
 * - A thread-local buffer for tg_last_error().
 * - The task record itself, so its layout is fixed and its atomic fields are
 *   addressable.
 *
 * Nothing here is exported from libtaskgate.so: the linker version script keeps
 * only tg_* symbols, and everything here is tgs_*.
 */
#ifndef TGSUPPORT_H
#define TGSUPPORT_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- atomics ------------------------------------------------------------ */

#define TGS_ATOMIC_OPS(T, N)                                                           \
  static inline T tgs_load_##N(const T *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); } \
  static inline T tgs_load_relaxed_##N(const T *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); } \
  static inline void tgs_store_##N(T *p, T v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); } \
  static inline void tgs_store_relaxed_##N(T *p, T v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); } \
  static inline T tgs_add_##N(T *p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL); } \
  static inline T tgs_add_sc_##N(T *p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); } \
  static inline T tgs_or_sc_##N(T *p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); } \
  static inline T tgs_and_sc_##N(T *p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); } \
  static inline T tgs_exchange_##N(T *p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL); } \
  static inline int tgs_cas_##N(T *p, T expected, T desired) {                        \
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL,    \
                                       __ATOMIC_ACQUIRE);                             \
  }                                                                                   \
  static inline int tgs_cas_sc_##N(T *p, T expected, T desired) {                     \
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST,    \
                                       __ATOMIC_SEQ_CST);                             \
  }

TGS_ATOMIC_OPS(uint32_t, u32)
TGS_ATOMIC_OPS(int32_t, i32)
TGS_ATOMIC_OPS(int64_t, i64)
TGS_ATOMIC_OPS(uint64_t, u64)

static inline int32_t tgs_load_sc_i32(const int32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void tgs_store_sc_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline void tgs_store_sc_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline int64_t tgs_load_sc_i64(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void tgs_store_sc_i64(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline void *tgs_load_ptr(void *const *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void tgs_store_ptr(void **p, void *v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint8_t tgs_load_u8(const uint8_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void tgs_store_u8(uint8_t *p, uint8_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void tgs_fence_sc(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void tgs_prefetch(const void *p) { __builtin_prefetch(p, 1, 3); }
static inline void tgs_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* ---- futex -------------------------------------------------------------- */

/* Sleeps while *addr == expected, at most timeout_ns (negative: no limit).
   Returns 0 when woken or the value differed, 1 on timeout. Spurious
   wake-ups are possible; callers re-check their condition. */
int tgs_futex_wait(uint32_t *addr, uint32_t expected, int64_t timeout_ns);
/* Wakes up to n threads sleeping on addr. */
void tgs_futex_wake(uint32_t *addr, int n);

/* ---- time, threads ------------------------------------------------------ */

int64_t tgs_monotonic_ns(void);
int tgs_cpu_count(void);

/* ---- tg_last_error() storage -------------------------------------------- */

/* Copies msg (truncated to the buffer) into this thread's error buffer. */
void tgs_set_last_error(const char *msg);
void tgs_clear_last_error(void);
const char *tgs_last_error(void);

/* ---- the task record ---------------------------------------------------- */

/* Task lifecycle, in the `state` field. Values >= TGS_STATE_FINAL_MIN are final
   and equal the public tg_status values. Exactly one thread wins the move to
   TGS_STATE_FINALIZING, writes the result fields, then publishes the final
   status with a release store; readers use an acquire load. */
enum {
  TGS_STATE_PENDING = 0,    /* waiting on parents */
  TGS_STATE_QUEUED = 1,     /* in a queue */
  TGS_STATE_RUNNING = 2,
  TGS_STATE_FINALIZING = 3, /* a thread is writing the result */
  TGS_STATE_FINAL_MIN = 4,
  TGS_STATE_SUCCEEDED = 4,
  TGS_STATE_FAILED = 5,
  TGS_STATE_TIMED_OUT = 6,
  TGS_STATE_CANCELLED = 7,
  TGS_STATE_SKIPPED = 8,
};

enum {
  TGS_EDGE_EMPTY = -1,  /* no dependents yet */
  TGS_EDGE_SEALED = -2, /* the task finished: no more dependents may attach */
};

enum {
  TGS_TASK_CRITICAL = 1u << 0,
  TGS_TASK_HAS_PATHS = 1u << 1,
  TGS_TASK_HAS_TIMEOUT = 1u << 2,
  TGS_TASK_HAS_DEPS = 1u << 3,
  TGS_TASK_PLUGIN = 1u << 4, /* fn is tgp_trampoline, user its argument block */
  TGS_TASK_HAS_ON_END = 1u << 5, /* extra->on_end is called once the task has ended */
  TGS_TASK_HAS_POLICY = 1u << 6, /* extra->policy: retries, breaker, limits, credentials */
  TGS_TASK_CACHED = 1u << 7, /* declares a result cache: see TaskPool.cachedTasks */
};

/* Bits of tgs_task.result_bits: facts about any task's ending. */
enum {
  TGS_RESULT_EXHAUSTED_RECOVERY = 1u << 0, /* failed on a worker whose recoveries are spent */
  TGS_RESULT_CACHE_HIT = 1u << 1,  /* its output came from the result cache */
  TGS_RESULT_CACHE_MISS = 1u << 2, /* it looked in the cache and ran (the reason is in cachedTasks) */
};

/* One record per submitted task, in the pool's task slab: exactly 128 bytes,
   so a slab chunk of 16384 records is one 2 MiB huge page. Fields few tasks
   use (payload, timeout, declared paths, difficulty) live in a tgs_task_extra
   that only those tasks get. The record pointer doubles as the processor's
   tg_task_ctx. */
struct tgs_task_extra;
typedef struct tgs_task {
  /* set at submission, read-only afterwards */
  void *fn;              /*   0 processor: int (*)(tgs_task *ctx, void *user) */
  void *user;            /*   8 */
  const char *id;        /*  16 NUL-terminated; NULL for an anonymous task */
  /* written only by the processor, during its call (malloc'd) */
  void *output;          /*  24 */
  char *error;           /*  32 */
  /* written only by a finalizer that is not the worker (cancel, timeout,
     skip), while it holds TGS_STATE_FINALIZING (malloc'd) */
  char *note;            /*  40 */
  int64_t submit_ns;     /*  48 */
  int64_t ready_ns;      /*  56 */
  int64_t start_ns;      /*  64 relaxed atomic */
  int64_t end_ns;        /*  72 */
  /* atomics */
  uint32_t state;        /*  80 TGS_STATE_* */
  int32_t pending;       /*  84 unfinished parents, plus one while being submitted */
  int32_t dependents;    /*  88 head of the dependents edge list, or TGS_EDGE_* */
  uint32_t signals;      /*  92 TGS_SIGNAL_* bits */
  int32_t cause;         /*  96 index of the parent that made this task skip, or -1 */
  int32_t worker;        /* 100 relaxed atomic */
  uint32_t attempts;     /* 104 relaxed atomic */
  int32_t group;         /* 108 -1: none */
  struct tgs_task_extra *extra; /* 112 NULL for most tasks */
  uint32_t output_len;   /* 120 written by the processor with output */
  uint8_t priority;      /* 124 0 high, 1 normal, 2 low */
  uint8_t flags;         /* 125 TGS_TASK_* */
  uint8_t released;      /* 126 atomic: 1 once the engine will not call fn again */
  uint8_t result_bits;   /* 127 TGS_RESULT_*, written by the worker before the end is published */
} tgs_task;

enum {
  TGS_SIGNAL_CANCEL = 1u << 0, /* the processor should stop (cancelled or timed out) */
  TGS_SIGNAL_WAITED = 1u << 1, /* someone waits on this very task */
};

/* What few tasks carry; written at submission, read-only afterwards. */
typedef struct tgs_task_extra {
  const void *payload;
  uint64_t payload_len;
  int64_t timeout_ns;    /* 0: none */
  int32_t paths_start;   /* into the pool's path-claim slab */
  int32_t paths_count;
  int32_t difficulty;
  int32_t reserved;
  void *on_end;          /* tgs_end_fn, or NULL */
  void *on_end_user;
  struct tgs_task_policy *policy; /* with TGS_TASK_HAS_POLICY */
} tgs_task_extra;

/* A task under a resilience policy: what its attempts need to carry between
   them. Written by the worker running the task (and by the processor through
   its context, during the call); a slot handed over by a limiter is written
   by the releasing thread before it queues the task. */
typedef struct tgs_task_policy {
  void *policy;            /* the Policy (unretained; the pool keeps it) */
  void *key;               /* its KeyState (unretained; the policy keeps it) */
  uint64_t generation;     /* breaker ticket of the running attempt; 0: none */
  int64_t retry_after_ns;  /* reported by the processor in this attempt; -1: none */
  int64_t attempt_start;   /* policy clock when the attempt was admitted */
  int64_t last_delay_ns;   /* the delay before the latest retry */
  int64_t *delays;         /* malloc'd: each retry's delay, n_delays of them */
  const char *cred_key;    /* the credential of the running attempt, or NULL */
  const char *cred_base_url;
  const char *cred_model;
  uint32_t n_delays;
  uint32_t flags;          /* TG_RESULT_* bits of the public header */
  int32_t status_code;     /* the latest one the processor reported; 0: none */
  int32_t credential;      /* ring index of the running attempt; -1: none */
  uint8_t probe;           /* the ticket is a half-open probe */
  uint8_t holds_slot;      /* holds a concurrency slot of its key */
  uint8_t holds_token;     /* its rate tokens were taken at submission */
  uint8_t pad[5];
} tgs_task_policy;

/* The task's policy record, or NULL. */
static inline tgs_task_policy *tgs_policy_of(const tgs_task *t) {
  return (t->flags & TGS_TASK_HAS_POLICY) ? t->extra->policy : NULL;
}

#ifdef __cplusplus
static_assert(sizeof(tgs_task) == 128, "tgs_task must stay 128 bytes");
#else
_Static_assert(sizeof(tgs_task) == 128, "tgs_task must stay 128 bytes");
#endif

/* Big zeroed allocations for slabs and tables: anonymous mappings; with
   `huge` and at least 2 MiB, 2 MiB-aligned and advised for transparent huge
   pages, which cuts page-fault cost several-fold (measured: ~80 ns of faults
   per 128-byte record on 4 KiB pages here, ~11 ns on huge pages). Without
   `huge` only the pages touched are paid for, which suits small pools.
   Sizes are rounded up to pages. NULL when out of memory. */
void *tgs_map(size_t bytes, int huge);
void tgs_unmap(void *p, size_t bytes);
/* Faults in the pages of a tgs_map'ed span on the calling thread (the kernel
   zeroes them here rather than in the thread that writes them first), without
   changing their contents: madvise(MADV_POPULATE_WRITE). A no-op where the
   kernel lacks it. */
void tgs_populate(void *p, size_t bytes);

/* Calls a processor. Kept in C so the call is a plain indirect call. */
typedef int (*tgs_processor_fn)(tgs_task *ctx, void *user);
static inline int tgs_call_processor(tgs_task *t) {
  return ((tgs_processor_fn)t->fn)(t, t->user);
}

/* Calls a processor with another user pointer (a fallback). */
static inline int tgs_call_processor_as(tgs_task *t, void *fn, void *user) {
  return ((tgs_processor_fn)fn)(t, user);
}

/* Tells the host a task has ended: (host's pool handle, seq, status, user). */
typedef void (*tgs_end_fn)(void *pool, uint64_t seq, int32_t status, void *user);
static inline void tgs_call_on_end(const tgs_task_extra *x, void *pool, uint64_t seq, int32_t status) {
  ((tgs_end_fn)x->on_end)(pool, seq, status, x->on_end_user);
}


/* ---- file locks (locks.c) ------------------------------------------------ */

enum { TGS_FILE_REGULAR = 1, TGS_FILE_DIRECTORY, TGS_FILE_SYMLINK, TGS_FILE_FIFO, TGS_FILE_SOCKET, TGS_FILE_OTHER };
typedef struct tgs_file_info {
  uint64_t dev, ino;
  int64_t size, mtime_ns;
  uint32_t mode, uid;
  int32_t kind; /* TGS_FILE_* */
} tgs_file_info;

#define TGS_OPEN_CREATE 1
#define TGS_OPEN_EXCL 2
/* Returned by tgs_lock_open for something that is not a regular file (a FIFO,
   socket, device or directory); *info says what it was. */
#define TGS_ENOTREG (-100000)
/* Opens `name` in `dirfd` read-write, never following a symbolic link (ELOOP),
   never blocking on a FIFO, close-on-exec, created 0644 (masked by the umask)
   with TGS_OPEN_CREATE. Returns the fd, or -errno, or TGS_ENOTREG; *info is
   the opened file's. */
int tgs_lock_open(int dirfd, const char *name, int flags, tgs_file_info *info);
int tgs_lstat_at(int dirfd, const char *name, tgs_file_info *info);
int tgs_fstat_info(int fd, tgs_file_info *info);

enum { TGS_LOCK_NONE = 0, TGS_LOCK_READ = 1, TGS_LOCK_WRITE = 2 };
/* An open-file-description lock (F_OFD_SETLK / F_OFD_SETLKW) on the one byte
   at `start`; type TGS_LOCK_NONE unlocks. 0 or -errno. */
int tgs_ofd_lock(int fd, int type, int64_t start, int wait);
/* Who would block a lock of `type` on byte `start`: TGS_LOCK_* or -errno. */
int tgs_ofd_query(int fd, int type, int64_t start);
int tgs_errno_busy(int negerr);
int tgs_errno_unsupported(int negerr);
/* The process's start time in clock ticks since boot (/proc/PID/stat field
   22), or -1 when there is no such process. */
int64_t tgs_proc_start_time(int32_t pid);
const char *tgs_strerror_neg(int negerr);
/* Tests: make every lock call fail with errno `err` (0 stops it). */
void tgs_lock_inject_fault(int err);

#ifdef __cplusplus
}
#endif
#endif
