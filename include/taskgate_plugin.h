/*
 * taskgate_plugin.h: the ABI between taskgate and plugin task processors.
 *
 * A plugin is a shared object (.so) that a host (the taskgate CLI, a C
 * program through tg_plugin_load(), Python through Pool.load_plugin()) opens
 * with dlopen. A plugin does NOT link against libtaskgate: everything it may
 * call on the host comes through the tg_plugin_host table handed to it. This
 * header is all a plugin author needs; it is C99 and C++ compatible.
 *
 * ---------------------------------------------------------------------------
 * THE DESCRIPTOR
 *   The plugin exports one *data* symbol, TG_PLUGIN_DESCRIPTOR_SYMBOL, a
 *   tg_plugin_descriptor. The host reads and checks it field by field before
 *   it calls any function of the plugin (init, setup, entry points):
 *     - magic must be TG_PLUGIN_MAGIC;
 *     - abi_major must equal the host's TG_PLUGIN_ABI_MAJOR, and abi_minor
 *       must not be newer than the host's TG_PLUGIN_ABI_MINOR;
 *     - name: 1-64 characters of [A-Za-z0-9_-]; processor names the same;
 *     - every symbol it names (entry points, setup, cleanup, hooks) must be
 *       found in the plugin;
 *     - every argument type must be a TG_TYPE_* this host knows, at most
 *       TG_PLUGIN_MAX_ARGS per processor.
 *   A processor is known to the host as "<plugin name>.<processor name>";
 *   loading a second plugin file that registers the same name is refused.
 *   Note: dlopen() runs the plugin's ELF constructors before the descriptor
 *   can be read. Keep them empty; do set-up in the init hook.
 *
 * ENTRY POINTS ARE VARIADIC
 *   int entry(tg_plugin_task *task, ...);
 *   The host calls it through libffi with the task's arguments as the
 *   variadic part, in declared order, after C's default argument promotions.
 *   Read them with va_arg as the table below says:
 *
 *     declared type      va_arg type            notes
 *     TG_TYPE_I32        int32_t (int)
 *     TG_TYPE_U32        uint32_t (unsigned)
 *     TG_TYPE_I64        int64_t
 *     TG_TYPE_U64        uint64_t
 *     TG_TYPE_DOUBLE     double
 *     TG_TYPE_FLOAT      double                 promoted; convert back yourself
 *     TG_TYPE_BOOL       int                    promoted; always 0 or 1
 *     TG_TYPE_I8, I16    int                    promoted
 *     TG_TYPE_U8, U16    int                    promoted
 *     TG_TYPE_STRING     const char *           NUL-terminated UTF-8, never NULL
 *     TG_TYPE_BYTES      const void *, size_t   two variadic arguments; the
 *                                               pointer is NULL when the size is 0
 *
 *   Strings and bytes are owned by the host and valid during the call.
 *   Return TG_PLUGIN_OK (0) for success, anything else for failure; set an
 *   error message with task->host->set_error() to say why (a timeout or a
 *   cancellation replaces it with the host's own). An output may hold up to
 *   4 GiB. Every symbol the descriptor names must be a function (the
 *   descriptor itself must be data).
 *
 * THREADS
 *   Entry points, setup and cleanup run on the host's worker threads, several
 *   at once (also the same processor on several threads): they must be
 *   thread-safe. init and shutdown run once each, on the thread loading or
 *   unloading the plugin, never concurrently with a task of the plugin.
 *   Threads are never killed: poll task->host->cancelled(task) in long work
 *   and return early when it says so.
 *
 * SETUP AND CLEANUP (optional, per processor)
 *   setup(task) runs on the worker just before the entry point; a non-zero
 *   return fails the task without calling the entry point. cleanup(task,
 *   outcome) runs after the entry point returned (or after setup failed),
 *   whatever happened: success, failure, timeout or cancellation; `outcome`
 *   is the TG_OUTCOME_* known when the processor returned. task->task_state
 *   is free for setup to leave something for the entry point and cleanup.
 *
 * VERSIONING
 *   Structs the host hands out start with struct_size; fields are only ever
 *   appended, and TG_PLUGIN_ABI_MINOR grows with them. A plugin built against
 *   minor N runs on any host with the same major and minor >= N.
 * ---------------------------------------------------------------------------
 */
#ifndef TASKGATE_PLUGIN_H
#define TASKGATE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TG_PLUGIN_ABI_MAJOR 1
#define TG_PLUGIN_ABI_MINOR 1
#define TG_PLUGIN_MAGIC 0x4c504754u /* "TGPL" read as little-endian bytes */
#define TG_PLUGIN_DESCRIPTOR_SYMBOL "taskgate_plugin_descriptor"
#define TG_PLUGIN_MAX_ARGS 32

/* Argument types. Values are part of the ABI: append only. */
typedef enum tg_type {
  TG_TYPE_I32 = 1,
  TG_TYPE_U32 = 2,
  TG_TYPE_I64 = 3,
  TG_TYPE_U64 = 4,
  TG_TYPE_DOUBLE = 5,
  TG_TYPE_BOOL = 6,
  TG_TYPE_STRING = 7,
  TG_TYPE_BYTES = 8,
  TG_TYPE_FLOAT = 9,
  TG_TYPE_I8 = 10,
  TG_TYPE_U8 = 11,
  TG_TYPE_I16 = 12,
  TG_TYPE_U16 = 13
} tg_type;
#define TG_TYPE_LAST_ 13

/* What cleanup is told about the task (the same numbers as tg_status). */
#define TG_OUTCOME_SUCCEEDED 4
#define TG_OUTCOME_FAILED 5
#define TG_OUTCOME_TIMED_OUT 6
#define TG_OUTCOME_CANCELLED 7

#define TG_PLUGIN_OK 0
#define TG_PLUGIN_FAILED 1    /* retried if the task's policy retries failures */
#define TG_PLUGIN_RETRY 2     /* since ABI 1.1: a transient failure, worth a retry */
#define TG_PLUGIN_PERMANENT 3 /* since ABI 1.1: retrying cannot help */

typedef struct tg_plugin_task tg_plugin_task;

/* Host functions a plugin may call. The table is owned by the host and lives
   as long as the plugin is loaded. Append only. */
typedef struct tg_plugin_host {
  uint32_t struct_size;
  uint32_t abi_minor; /* the host's TG_PLUGIN_ABI_MINOR */
  /* Sets the task's output (copied; replaces an earlier one). 0 or -1. */
  int (*set_output)(tg_plugin_task *task, const void *data, size_t len);
  /* Sets the task's error message (copied; replaces an earlier one). */
  int (*set_error)(tg_plugin_task *task, const char *message);
  /* Non-zero once the task was cancelled or timed out: stop early. */
  int (*cancelled)(const tg_plugin_task *task);
  /* Since ABI 1.1 (check struct_size or abi_minor before calling): the
     status code of the service called (429, 503, ...), which retry and
     credential rotation read; and how long the service asked to wait before
     the next call (milliseconds, >= 0), which replaces the computed backoff.
     Both are recorded for tasks under a policy; 0 or -1 (bad argument). */
  int (*set_status_code)(tg_plugin_task *task, int32_t code);
  int (*set_retry_after)(tg_plugin_task *task, int64_t ms);
} tg_plugin_host;

/* The running task, as the plugin sees it. Built by the host for each call;
   valid during the call (setup, entry and cleanup of one attempt see the same
   one). Read-only for the plugin except task_state. */
struct tg_plugin_task {
  uint32_t struct_size;
  uint32_t attempt;            /* 1 for the first call */
  const char *id;              /* NULL for an anonymous task */
  const void *payload;         /* NULL when none */
  size_t payload_len;
  int32_t worker;              /* index of the worker running it */
  int32_t reserved;
  void *plugin_state;          /* what init stored, else NULL */
  void *task_state;            /* the plugin's own, for setup -> entry -> cleanup */
  const tg_plugin_host *host;  /* host functions */
  void *host_private;          /* the host's; do not touch */
  const char *credential;      /* the key of the credential this attempt should
                                  use (see credential rotation), or NULL */
  /* Since ABI 1.1 (check struct_size): the credential's base URL and model,
     or NULL. Valid during the call. Never log the credential. */
  const char *credential_base_url;
  const char *credential_model;
};

typedef int (*tg_plugin_entry_fn)(tg_plugin_task *task, ...);
typedef int (*tg_plugin_setup_fn)(tg_plugin_task *task);
typedef void (*tg_plugin_cleanup_fn)(tg_plugin_task *task, int outcome);
/* init: called once after the descriptor passed its checks; non-zero refuses
   the plugin (set *plugin_state, or an error text of up to error_cap bytes in
   error, NUL-terminated; error_cap is at least 256). */
typedef int (*tg_plugin_init_fn)(const tg_plugin_host *host, void **plugin_state,
                                 char *error, size_t error_cap);
typedef void (*tg_plugin_shutdown_fn)(void *plugin_state);
/* recover: worker health. Called on a worker that has failed several tasks
   in a row (3 by default), the last of them in this plugin, at most 5 times
   per worker; `worker` is its index. Reset whatever per-worker state could
   be at fault (a connection, a cache). 0: recovered; non-zero: not. */
typedef int (*tg_plugin_recover_fn)(void *plugin_state, int worker);

/* One processor. Symbols are looked up with dlsym in the plugin only. */
typedef struct tg_plugin_processor {
  const char *name;            /* required */
  const char *entry;           /* required: symbol of a tg_plugin_entry_fn */
  const uint8_t *arg_types;    /* n_args TG_TYPE_* values; NULL when n_args is 0 */
  uint32_t n_args;
  uint32_t reserved;
  const char *setup;           /* symbol of a tg_plugin_setup_fn, or NULL */
  const char *cleanup;         /* symbol of a tg_plugin_cleanup_fn, or NULL */
  const char *description;     /* one line for listings, or NULL */
} tg_plugin_processor;

typedef struct tg_plugin_descriptor {
  uint32_t magic;              /* TG_PLUGIN_MAGIC */
  uint16_t abi_major;          /* TG_PLUGIN_ABI_MAJOR */
  uint16_t abi_minor;          /* TG_PLUGIN_ABI_MINOR */
  uint32_t struct_size;        /* sizeof(tg_plugin_descriptor) */
  uint32_t processor_size;     /* sizeof(tg_plugin_processor): the stride */
  const char *name;            /* required */
  const char *version;         /* required, e.g. "1.2.0" */
  const char *description;     /* or NULL */
  const tg_plugin_processor *processors;
  uint32_t n_processors;       /* 1 .. 1024 */
  uint32_t reserved;
  const char *init;            /* symbol of a tg_plugin_init_fn, or NULL */
  const char *shutdown;        /* symbol of a tg_plugin_shutdown_fn, or NULL */
  const char *recover;         /* symbol of a tg_plugin_recover_fn, or NULL */
} tg_plugin_descriptor;

/* Marks the descriptor and entry points for export from the .so. */
#if defined(__GNUC__) || defined(__clang__)
#define TG_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define TG_PLUGIN_EXPORT
#endif

/* Fills in the header fields of a descriptor (in C++, declare it first as
   extern "C" TG_PLUGIN_EXPORT extern const tg_plugin_descriptor
   taskgate_plugin_descriptor; since a const at file scope is internal there):
     TG_PLUGIN_EXPORT const tg_plugin_descriptor taskgate_plugin_descriptor = {
       TG_PLUGIN_DESCRIPTOR_HEAD, "name", "1.0.0", "what it does",
       processors, sizeof processors / sizeof processors[0], 0, NULL, NULL, NULL };
*/
#define TG_PLUGIN_DESCRIPTOR_HEAD                                             \
  TG_PLUGIN_MAGIC, TG_PLUGIN_ABI_MAJOR, TG_PLUGIN_ABI_MINOR,                  \
      (uint32_t)sizeof(tg_plugin_descriptor), (uint32_t)sizeof(tg_plugin_processor)

#ifdef __cplusplus
}
#endif
#endif /* TASKGATE_PLUGIN_H */
