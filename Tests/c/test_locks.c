/* Cross-process file locks through the C door: real processes (this program
 * re-runs itself as children), real lock files, a sticky world-writable
 * directory for the unsafe-path cases. */
#define _POSIX_C_SOURCE 200809L
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static char self[4096];
static char root[4096];

static pid_t spawn_self(char *const args[]) {
  pid_t pid;
  int rc = posix_spawn(&pid, self, NULL, NULL, args, environ);
  if (rc != 0) {
    fprintf(stderr, "posix_spawn: %s\n", strerror(rc));
    exit(2);
  }
  return pid;
}

static int wait_exit(pid_t pid) {
  int st;
  if (waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *read_file(const char *path) {
  static char buf[8192];
  int fd = open(path, O_RDONLY);
  if (fd < 0) return NULL;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[n < 0 ? 0 : n] = 0;
  return buf;
}

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_TRUNC);
  if (fd < 0 || write(fd, text, strlen(text)) < 0) perror(path);
  close(fd);
}

/* The lock file of a key made of safe characters. */
static void lock_path(char *out, size_t n, const char *dir, const char *key) { snprintf(out, n, "%s/k_%s.lock", dir, key); }

/* ---- children ---------------------------------------------------------- */

/* contend DIR N SENTINEL: N acquisitions; inside each, create the sentinel
   with O_EXCL (fails if another holder is inside), then remove it. */
static int child_contend(const char *dir, int n, const char *sentinel) {
  tg_lock *l = NULL;
  if (tg_lock_open(dir, "contended", NULL, &l) != TG_OK) return 10;
  int overlaps = 0;
  for (int i = 0; i < n; i++) {
    int rc = tg_lock_acquire(l, 60000);
    if (rc != TG_OK) {
      fprintf(stderr, "acquire: %s\n", tg_last_error());
      return 11;
    }
    int fd = open(sentinel, O_CREAT | O_EXCL | O_WRONLY, 0600);
    if (fd < 0) overlaps++;
    else {
      close(fd);
      if (i % 7 == 0) sched_yield();
      unlink(sentinel);
    }
    if (tg_lock_release(l) != TG_OK) return 12;
  }
  tg_lock_close(l);
  return overlaps > 0 ? 20 : 0;
}

/* hold DIR KEY: takes the lock, says "held" on stdout, sleeps until killed. */
static int child_hold(const char *dir, const char *key, const char *hold_ms) {
  tg_lock *l = NULL;
  tg_lock_options o = TG_LOCK_OPTIONS_INIT;
  o.holder_id = "holder-child";
  o.hold_timeout_ms = atoll(hold_ms);
  if (tg_lock_open(dir, key, &o, &l) != TG_OK || tg_lock_acquire(l, 5000) != TG_OK) return 10;
  if (write(1, "held\n", 5) != 5) return 11;
  for (;;) pause();
}

/* ---- helpers for the parent --------------------------------------------- */

/* Starts a child holding `key` and waits until it says so. */
static pid_t start_holder(const char *dir, const char *key, const char *hold_ms) {
  int p[2];
  if (pipe(p) != 0) exit(2);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_addclose(&fa, p[0]);
  char *args[] = {self, "hold", (char *)dir, (char *)key, (char *)hold_ms, NULL};
  pid_t pid;
  if (posix_spawn(&pid, self, &fa, NULL, args, environ) != 0) exit(2);
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  char buf[8] = {0};
  ssize_t n = read(p[0], buf, 5);
  close(p[0]);
  CHECK(n == 5 && strncmp(buf, "held", 4) == 0, "holder child %d took the lock", (int)pid);
  return pid;
}

static void stop(pid_t pid) {
  kill(pid, SIGKILL);
  wait_exit(pid);
}

static long long start_time_of(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  char *s = read_file(path);
  if (!s) return -1;
  char *p = strrchr(s, ')');
  for (int field = 2; p && field < 22; field++) p = strchr(p + 1, ' ');
  return p ? atoll(p + 1) : -1;
}

/* Rewrites the metadata of a lock held by someone else (as a foreign or
   damaged writer would), without taking it. */
static void forge(const char *dir, const char *key, const char *json) {
  char path[4096];
  lock_path(path, sizeof path, dir, key);
  write_file(path, json);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_basic(void) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/basic/locks", root);
  tg_lock *a = NULL, *b = NULL;
  tg_lock_options o = TG_LOCK_OPTIONS_INIT;
  o.holder_id = "worker-0";
  o.hold_timeout_ms = 42000;
  CHECK_RC(tg_lock_open(dir, "task-1", &o, &a), TG_OK);
  CHECK_RC(tg_lock_open(dir, "task-1", NULL, &b), TG_OK);
  char gi[4300];
  snprintf(gi, sizeof gi, "%s/.gitignore", dir);
  char *g = read_file(gi);
  CHECK(g && strcmp(g, "*\n!.gitignore\n") == 0, "the lock directory has the seed's .gitignore");
  CHECK_RC(tg_lock_held(a), 0);
  CHECK_RC(tg_lock_acquire(a, 0), TG_OK);
  CHECK_RC(tg_lock_held(a), 1);
  CHECK_RC(tg_lock_acquire(a, 0), TG_EINVAL);
  /* Metadata, field by field. */
  char path[4300];
  lock_path(path, sizeof path, dir, "task-1");
  char *m = read_file(path);
  char want[256];
  snprintf(want, sizeof want, "\"pid\":%d,", (int)getpid());
  CHECK(m && strstr(m, "\"key\":\"task-1\"") && strstr(m, "\"holder_id\":\"worker-0\"") && strstr(m, want) &&
            strstr(m, "\"host\":\"") && strstr(m, "\"acquired_at\":\"20") && strstr(m, "\"timeout\":42,") &&
            strstr(m, "\"start_time\":"),
        "metadata names key, holder, pid, host, start time, acquired_at, timeout: %s", m ? m : "(none)");
  struct stat st;
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644, "lock file mode is 0644 (not 0%o)", st.st_mode & 0777);
  /* A second holder in the same process is refused, naming the holder. */
  CHECK_RC(tg_lock_acquire(b, 0), TG_ELOCKED);
  CHECK(strstr(tg_last_error(), "worker-0") != NULL, "the refusal names the holder: %s", tg_last_error());
  int64_t t0 = now_ns();
  CHECK_RC(tg_lock_acquire(b, 60), TG_ELOCKED);
  CHECK(now_ns() - t0 >= 55 * 1000000LL, "a timed acquire waits its timeout");
  CHECK_RC(tg_lock_release(a), TG_OK);
  m = read_file(path);
  CHECK(m && strspn(m, " \n") == strlen(m), "release blanks the metadata: [%s]", m ? m : "(none)");
  CHECK(stat(path, &st) == 0 && st.st_size % 256 == 0, "the released file keeps its slot size (%lld)", (long long)st.st_size);
  CHECK_RC(tg_lock_release(a), TG_EINVAL);
  CHECK_RC(tg_lock_acquire(b, 0), TG_OK);
  CHECK_RC(tg_lock_took_over(b, NULL), 0);
  CHECK_RC(tg_lock_close(b), TG_OK);  /* releases */
  CHECK_RC(tg_lock_acquire(a, 0), TG_OK);
  CHECK_RC(tg_lock_close(a), TG_OK);
  /* Shared locks: readers together, a writer apart. */
  tg_lock *r1 = NULL, *r2 = NULL, *w = NULL;
  tg_lock_options so = TG_LOCK_OPTIONS_INIT;
  so.flags = TG_LOCK_SHARED;
  CHECK_RC(tg_lock_open(dir, "/data/file.txt", &so, &r1), TG_OK);
  CHECK_RC(tg_lock_open(dir, "/data/file.txt", &so, &r2), TG_OK);
  CHECK_RC(tg_lock_open(dir, "/data/file.txt", NULL, &w), TG_OK);
  CHECK_RC(tg_lock_acquire(r1, 0), TG_OK);
  CHECK_RC(tg_lock_acquire(r2, 0), TG_OK);
  CHECK_RC(tg_lock_acquire(w, 0), TG_ELOCKED);
  char *list = NULL;
  CHECK_RC(tg_locks_list(dir, 0, &list), TG_OK);
  CHECK(list && strstr(list, "\"state\":\"shared\"") && strstr(list, "h__data_file.txt_"), "list shows the shared lock: %s", list);
  tg_free(list);
  CHECK_RC(tg_lock_release(r1), TG_OK);
  CHECK_RC(tg_lock_acquire(w, 0), TG_ELOCKED);
  CHECK_RC(tg_lock_release(r2), TG_OK);
  CHECK_RC(tg_lock_acquire(w, 0), TG_OK);
  CHECK_RC(tg_lock_acquire(r1, 0), TG_ELOCKED);
  tg_lock_close(w);
  tg_lock_close(r1);
  tg_lock_close(r2);
}

static int scoped_fn(void *user) {
  const char *dir = user;
  tg_lock *other = NULL;
  int rc = -1;
  if (tg_lock_open(dir, "scoped", NULL, &other) == TG_OK) rc = tg_lock_acquire(other, 0);
  tg_lock_close(other);
  return rc == TG_ELOCKED ? 7 : 99;
}

static void test_scoped(void) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/scoped", root);
  int result = 0;
  CHECK_RC(tg_lock_with(dir, "scoped", NULL, 1000, scoped_fn, dir, &result), TG_OK);
  CHECK(result == 7, "inside tg_lock_with the lock is held (fn saw %d)", result);
  tg_lock *l = NULL;
  CHECK_RC(tg_lock_open(dir, "scoped", NULL, &l), TG_OK);
  CHECK_RC(tg_lock_acquire(l, 0), TG_OK);
  result = 0;
  CHECK_RC(tg_lock_with(dir, "scoped", NULL, 0, scoped_fn, dir, &result), TG_ELOCKED);
  CHECK(result == 0, "fn is not called when the lock is not taken");
  tg_lock_close(l);
  CHECK_RC(tg_lock_with(dir, "scoped", NULL, 0, NULL, NULL, NULL), TG_EINVAL);
}

static void test_contention(void) {
  char dir[4200], sentinel[4300];
  snprintf(dir, sizeof dir, "%s/contend", root);
  snprintf(sentinel, sizeof sentinel, "%s/inside", root);
  tg_lock *l = NULL;
  CHECK_RC(tg_lock_open(dir, "contended", NULL, &l), TG_OK);  /* makes the directory */
  tg_lock_close(l);
  enum { PROCS = 8, EACH = 500 };
  pid_t kids[PROCS];
  for (int i = 0; i < PROCS; i++) {
    char *args[] = {self, "contend", dir, "500", sentinel, NULL};
    kids[i] = spawn_self(args);
  }
  int bad = 0;
  for (int i = 0; i < PROCS; i++) {
    int rc = wait_exit(kids[i]);
    if (rc != 0) {
      bad++;
      fprintf(stderr, "child %d exited %d\n", (int)kids[i], rc);
    }
  }
  CHECK(bad == 0, "8 processes x %d acquisitions with an O_EXCL sentinel inside: no overlap, no error (%d bad)", EACH, bad);
}

static void test_dead_and_stale(void) {
  char dir[4200], path[4300];
  snprintf(dir, sizeof dir, "%s/stale", root);
  tg_lock *l = NULL;
  char *meta = NULL;

  /* kill -9 of a holder: the next process takes the lock over. */
  pid_t h = start_holder(dir, "victim", "0");
  CHECK_RC(tg_lock_open(dir, "victim", NULL, &l), TG_OK);
  CHECK_RC(tg_lock_acquire(l, 0), TG_ELOCKED);
  CHECK(strstr(tg_last_error(), "holder-child") != NULL, "busy names the child holder: %s", tg_last_error());
  stop(h);
  CHECK_RC(tg_lock_acquire(l, 5000), TG_OK);
  CHECK_RC(tg_lock_took_over(l, &meta), 1);
  char want[64];
  snprintf(want, sizeof want, "\"pid\":%d,", (int)h);
  CHECK(meta && strstr(meta, want), "took over from the killed holder: %s", meta ? meta : "");
  tg_free(meta);
  meta = NULL;
  tg_lock_close(l);

  /* A live holder is never robbed: its real metadata, any wait. */
  h = start_holder(dir, "live", "0");
  CHECK_RC(tg_lock_open(dir, "live", NULL, &l), TG_OK);
  CHECK_RC(tg_lock_acquire(l, 150), TG_ELOCKED);
  /* The pid reused: the holder's pid now names a process with another start
     time (forged: the metadata claims a live process, ours, started at 1). */
  char forged[512];
  snprintf(forged, sizeof forged,
           "{\"key\":\"live\",\"holder_id\":\"ghost\",\"pid\":%d,\"start_time\":1,\"host\":\"%s\",\"acquired_at_unix\":%lld,\"timeout\":0}\n",
           (int)getpid(), "HOST", (long long)time(NULL));
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  char *at = strstr(forged, "HOST");
  char tmp[512];
  snprintf(tmp, sizeof tmp, "%.*s%s%s", (int)(at - forged), forged, host, at + 4);
  forge(dir, "live", tmp);
  CHECK_RC(tg_lock_acquire(l, 0), TG_OK);
  CHECK_RC(tg_lock_took_over(l, &meta), 1);
  CHECK(meta && strstr(meta, "ghost"), "a reused pid is detected: %s", meta ? meta : "");
  tg_free(meta);
  meta = NULL;
  tg_lock_close(l);
  stop(h);

  /* The same forged holder with its true start time is alive: not stale. */
  h = start_holder(dir, "alive", "0");
  snprintf(tmp, sizeof tmp,
           "{\"key\":\"alive\",\"holder_id\":\"me\",\"pid\":%d,\"start_time\":%lld,\"host\":\"%s\",\"acquired_at_unix\":%lld,\"timeout\":0}\n",
           (int)getpid(), start_time_of(getpid()), host, (long long)time(NULL));
  forge(dir, "alive", tmp);
  CHECK_RC(tg_lock_open(dir, "alive", NULL, &l), TG_OK);
  CHECK_RC(tg_lock_acquire(l, 100), TG_ELOCKED);
  /* Past its own timeout: taken over. */
  snprintf(tmp, sizeof tmp,
           "{\"key\":\"alive\",\"holder_id\":\"slow\",\"pid\":%d,\"start_time\":%lld,\"host\":\"%s\",\"acquired_at_unix\":%lld,\"timeout\":5}\n",
           (int)getpid(), start_time_of(getpid()), host, (long long)time(NULL) - 60);
  forge(dir, "alive", tmp);
  CHECK_RC(tg_lock_acquire(l, 0), TG_OK);
  CHECK_RC(tg_lock_took_over(l, NULL), 1);
  tg_lock_close(l);
  stop(h);

  /* Another host: a dead local pid means nothing, only the timeout counts. */
  h = start_holder(dir, "remote", "0");
  forge(dir, "remote",
        "{\"key\":\"remote\",\"holder_id\":\"far\",\"pid\":999999,\"start_time\":1,\"host\":\"another-host.example\",\"acquired_at_unix\":4102444800,\"timeout\":0}\n");
  CHECK_RC(tg_lock_open(dir, "remote", NULL, &l), TG_OK);
  CHECK_RC(tg_lock_acquire(l, 50), TG_ELOCKED);
  CHECK(strstr(tg_last_error(), "another-host.example") != NULL, "names the remote holder: %s", tg_last_error());
  snprintf(tmp, sizeof tmp,
           "{\"key\":\"remote\",\"holder_id\":\"far\",\"pid\":999999,\"start_time\":1,\"host\":\"another-host.example\",\"acquired_at_unix\":%lld,\"timeout\":10}\n",
           (long long)time(NULL) - 11);
  forge(dir, "remote", tmp);
  CHECK_RC(tg_lock_acquire(l, 0), TG_OK);
  tg_lock_close(l);
  stop(h);

  /* Corrupt and oversized metadata: stale only once older than the timeout. */
  tg_lock_options o = TG_LOCK_OPTIONS_INIT;
  o.hold_timeout_ms = 30000;
  for (int kind = 0; kind < 2; kind++) {
    const char *key = kind ? "oversized" : "corrupt";
    h = start_holder(dir, key, "0");
    static char big[6000];
    if (kind) {
      memset(big, ' ', sizeof big - 1);
      big[sizeof big - 1] = 0;
      memcpy(big, "{\"key\":\"oversized\",\"pid\":1,\"x\":\"", 31);
    }
    forge(dir, key, kind ? big : "{\"key\": \"corrupt\", \"pid\": ");
    CHECK_RC(tg_lock_open(dir, key, &o, &l), TG_OK);
    CHECK_RC(tg_lock_acquire(l, 50), TG_ELOCKED);
    lock_path(path, sizeof path, dir, key);
    struct timespec old[2] = {{time(NULL) - 120, 0}, {time(NULL) - 120, 0}};
    CHECK(utimensat(AT_FDCWD, path, old, 0) == 0, "aged the file");
    CHECK_RC(tg_lock_acquire(l, 0), TG_OK);
    CHECK_RC(tg_lock_took_over(l, NULL), 1);
    tg_lock_close(l);
    stop(h);
  }

  /* list and clean: a held lock stays, stale and idle ones go. */
  h = start_holder(dir, "kept", "0");
  pid_t dead = start_holder(dir, "dead", "0");
  stop(dead);
  char *list = NULL;
  CHECK_RC(tg_locks_list(dir, 0, &list), TG_OK);
  CHECK(list && strstr(list, "\"file\":\"k_kept.lock\",\"state\":\"held\"") && strstr(list, "\"holder_id\":\"holder-child\""),
        "list shows the live holder: %s", list);
  CHECK(list && strstr(list, "\"file\":\"k_dead.lock\",\"state\":\"stale\"") && strstr(list, "\"stale_reason\":\"holder_dead\""),
        "list shows the dead holder's lock as stale");
  tg_free(list);
  size_t cleaned = 0;
  char *report = NULL;
  CHECK_RC(tg_locks_clean(dir, 0, &cleaned, &report), TG_OK);
  CHECK(cleaned == 1, "one stale lock cleaned (%zu): %s", cleaned, report);
  lock_path(path, sizeof path, dir, "dead");
  CHECK(access(path, F_OK) != 0, "the stale lock file is gone");
  lock_path(path, sizeof path, dir, "kept");
  CHECK(access(path, F_OK) == 0, "the live holder's lock file stays");
  tg_free(report);
  CHECK_RC(tg_lock_open(dir, "kept", NULL, &l), TG_OK);
  CHECK_RC(tg_lock_acquire(l, 0), TG_ELOCKED);
  tg_lock_close(l);
  stop(h);
}

static void test_unsafe_paths(void) {
  /* A sticky world-writable directory, like /tmp. */
  char dir[4200], path[4300], target[4300];
  snprintf(dir, sizeof dir, "%s/sticky", root);
  mkdir(dir, 0777);
  chmod(dir, 01777);
  snprintf(target, sizeof target, "%s/precious", root);
  int fd = open(target, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  CHECK(fd >= 0 && write(fd, "keep me", 7) == 7, "made the target file");
  close(fd);
  tg_lock *l = NULL;

  lock_path(path, sizeof path, dir, "link");
  CHECK(symlink(target, path) == 0, "planted a symlink");
  CHECK_RC(tg_lock_open(dir, "link", NULL, &l), TG_OK);
  CHECK_RC(tg_lock_acquire(l, 0), TG_EUNSAFE);
  CHECK(strstr(tg_last_error(), "symbolic link") != NULL, "names the link: %s", tg_last_error());
  CHECK_RC(tg_lock_acquire(l, 200), TG_EUNSAFE);
  char *t = read_file(target);
  CHECK(t && strcmp(t, "keep me") == 0, "the link's target is untouched");
  tg_lock_close(l);

  lock_path(path, sizeof path, dir, "fifo");
  CHECK(mkfifo(path, 0666) == 0, "planted a FIFO");
  CHECK_RC(tg_lock_open(dir, "fifo", NULL, &l), TG_OK);
  int64_t t0 = now_ns();
  CHECK_RC(tg_lock_acquire(l, 0), TG_EUNSAFE);
  CHECK(now_ns() - t0 < 5000000000LL, "a FIFO does not hang the acquire");
  CHECK(strstr(tg_last_error(), "FIFO") != NULL, "names the FIFO: %s", tg_last_error());
  tg_lock_close(l);

  lock_path(path, sizeof path, dir, "sock");
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  int fits = strlen(path) < sizeof a.sun_path;
  if (fits) {
    strcpy(a.sun_path, path);
    CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0, "planted a socket");
    CHECK_RC(tg_lock_open(dir, "sock", NULL, &l), TG_OK);
    CHECK_RC(tg_lock_acquire(l, 0), TG_EUNSAFE);
    tg_lock_close(l);
  }
  close(s);

  /* Another user's regular file in a directory others may write. */
  if (geteuid() == 0) {
    lock_path(path, sizeof path, dir, "foreign");
    fd = open(path, O_CREAT | O_WRONLY, 0666);
    close(fd);
    CHECK(chown(path, 4242, 4242) == 0, "made a file owned by uid 4242");
    CHECK_RC(tg_lock_open(dir, "foreign", NULL, &l), TG_OK);
    CHECK_RC(tg_lock_acquire(l, 0), TG_EUNSAFE);
    CHECK(strstr(tg_last_error(), "4242") != NULL, "names the owner: %s", tg_last_error());
    tg_lock_close(l);
  }
  char *list = NULL;
  CHECK_RC(tg_locks_list(dir, 0, &list), TG_OK);
  CHECK(list && strstr(list, "\"file\":\"k_fifo.lock\",\"state\":\"unsafe\""), "list marks the FIFO unsafe: %s", list);
  tg_free(list);
  size_t cleaned = 9;
  CHECK_RC(tg_locks_clean(dir, 0, &cleaned, NULL), TG_OK);
  lock_path(path, sizeof path, dir, "link");
  struct stat st;
  CHECK(lstat(path, &st) == 0 && S_ISLNK(st.st_mode), "clean leaves the planted link alone");
}

static void test_bad_input(void) {
  tg_lock *l = NULL;
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/bad", root);
  CHECK_RC(tg_lock_open(NULL, "k", NULL, &l), TG_EINVAL);
  CHECK_RC(tg_lock_open(dir, NULL, NULL, &l), TG_EINVAL);
  CHECK_RC(tg_lock_open(dir, "", NULL, &l), TG_EINVAL);
  CHECK_RC(tg_lock_open("", "k", NULL, &l), TG_EINVAL);
  CHECK_RC(tg_lock_open(dir, "k", NULL, NULL), TG_EINVAL);
  tg_lock_options o = TG_LOCK_OPTIONS_INIT;
  o.struct_size = 3;
  CHECK_RC(tg_lock_open(dir, "k", &o, &l), TG_EVERSION);
  o = (tg_lock_options)TG_LOCK_OPTIONS_INIT;
  o.flags = 0x80;
  CHECK_RC(tg_lock_open(dir, "k", &o, &l), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "flags") != NULL, "names the flags: %s", tg_last_error());
  char file[4300];
  snprintf(file, sizeof file, "%s/plainfile", root);
  int fd = open(file, O_CREAT | O_WRONLY, 0644);
  close(fd);
  CHECK_RC(tg_lock_open(file, "k", NULL, &l), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "plainfile") != NULL, "names the path: %s", tg_last_error());
  CHECK_RC(tg_lock_acquire(NULL, 0), TG_EINVAL);
  CHECK_RC(tg_lock_release(NULL), TG_EINVAL);
  CHECK_RC(tg_lock_close(NULL), TG_OK);
  CHECK_RC(tg_lock_held(NULL), 0);
  char *out = (char *)1;
  snprintf(file, sizeof file, "%s/no/such/dir", root);
  CHECK_RC(tg_locks_list(file, 0, &out), TG_ENOTFOUND);
  CHECK(out == NULL, "no text on failure");
  CHECK_RC(tg_locks_list(dir, 0, NULL), TG_EINVAL);
  CHECK_RC(tg_locks_clean(NULL, 0, NULL, NULL), TG_EINVAL);
  tg_free(NULL);
}

/* Pools with a lock directory: two processes each run 40 tasks writing the
   same file; a sentinel made with O_EXCL proves no two ran at once. */
static const char *pool_sentinel;
static int write_shared(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  int fd = open(pool_sentinel, O_CREAT | O_EXCL | O_WRONLY, 0600);
  if (fd < 0) return 1;
  close(fd);
  sleep_us(200);
  unlink(pool_sentinel);
  return 0;
}

static int child_pool(const char *dir, const char *shared, const char *sentinel, const char *workers) {
  pool_sentinel = sentinel;
  tg_pool_options po = TG_POOL_OPTIONS_INIT;
  po.workers = (uint32_t)atoi(workers);
  po.lock_dir = dir;
  tg_pool *p = NULL;
  if (tg_pool_create(&po, &p) != TG_OK) return 10;
  const char *writes[] = {shared};
  for (int i = 0; i < 40; i++) {
    tg_task_desc d = TG_TASK_DESC_INIT;
    d.fn = write_shared;
    d.writes = writes;
    d.n_writes = 1;
    if (tg_pool_submit(p, &d, NULL) != TG_OK) return 11;
  }
  if (tg_pool_wait_all(p, 60000) != TG_OK) return 12;
  tg_pool_stats s = TG_POOL_STATS_INIT;
  int bad = 0;
  if (tg_pool_stats_get(p, &s) != TG_OK || s.succeeded != 40) bad = 1;
  tg_pool_shutdown(p, TG_SHUTDOWN_DRAIN, 10000);
  tg_pool_destroy(p);
  return bad ? 20 : 0;
}

static void test_pools_across_processes(uint32_t workers) {
  char dir[4200], shared[4300], sentinel[4300], w[8];
  snprintf(dir, sizeof dir, "%s/pool-locks", root);
  snprintf(shared, sizeof shared, "%s/shared.txt", root);
  snprintf(sentinel, sizeof sentinel, "%s/pool-inside", root);
  snprintf(w, sizeof w, "%u", workers);
  pid_t kids[2];
  for (int i = 0; i < 2; i++) {
    char *args[] = {self, "pool", dir, shared, sentinel, w, NULL};
    kids[i] = spawn_self(args);
  }
  int rc0 = wait_exit(kids[0]), rc1 = wait_exit(kids[1]);
  CHECK(rc0 == 0 && rc1 == 0, "two processes x 40 tasks writing one file with %u workers: never at once (exits %d, %d)",
        workers, rc0, rc1);
  /* Bad lock directory: the pool refuses, naming it. */
  tg_pool_options po = TG_POOL_OPTIONS_INIT;
  po.lock_dir = "/proc/taskgate-no-such/locks";
  tg_pool *p = NULL;
  CHECK_RC(tg_pool_create(&po, &p), TG_EIO);
  CHECK(strstr(tg_last_error(), "/proc/taskgate-no-such") != NULL, "names the directory: %s", tg_last_error());
}

static int noop_task(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  return 0;
}

/* lock_wait_ms: a task waiting for another holder's lock fails when the
   wait runs out, naming the holder; once the lock is free it runs. */
static void test_pool_lock_wait(void) {
  char dir[4200], path[4300];
  snprintf(dir, sizeof dir, "%s/wait-locks", root);
  snprintf(path, sizeof path, "%s/waited.txt", root);
  tg_lock *l = NULL;
  tg_lock_options lo = TG_LOCK_OPTIONS_INIT;
  lo.holder_id = "the-other-run";
  CHECK_RC(tg_lock_open(dir, path, &lo, &l), TG_OK);
  CHECK_RC(tg_lock_acquire(l, 0), TG_OK);
  tg_pool_options po = TG_POOL_OPTIONS_INIT;
  po.workers = 2;
  po.lock_dir = dir;
  po.lock_wait_ms = 100;
  tg_pool *p = NULL;
  CHECK_RC(tg_pool_create(&po, &p), TG_OK);
  const char *writes[] = {path};
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.fn = noop_task;
  d.id = "blocked";
  d.writes = writes;
  d.n_writes = 1;
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(p, "blocked", WAIT_MS), TG_OK);
  tg_result r = TG_RESULT_INIT;
  CHECK_RC(tg_pool_result(p, "blocked", &r), TG_OK);
  CHECK(r.status == TG_STATUS_FAILED && r.error && strstr(r.error, "the-other-run"),
        "the task fails naming the holder: status %d, %s", r.status, r.error ? r.error : "(no error)");
  tg_lock_close(l);
  d.id = "after";
  CHECK_RC(tg_pool_submit(p, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(p, "after", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_result(p, "after", &r), TG_OK);
  CHECK(r.status == TG_STATUS_SUCCEEDED, "with the lock free the task runs (status %d)", r.status);
  tg_pool_shutdown(p, TG_SHUTDOWN_DRAIN, WAIT_MS);
  tg_pool_destroy(p);
}

int main(int argc, char **argv) {
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 2;
  self[n] = 0;
  if (argc >= 5 && strcmp(argv[1], "contend") == 0) return child_contend(argv[2], atoi(argv[3]), argv[4]);
  if (argc >= 5 && strcmp(argv[1], "hold") == 0) return child_hold(argv[2], argv[3], argv[4]);
  if (argc >= 6 && strcmp(argv[1], "pool") == 0) return child_pool(argv[2], argv[3], argv[4], argv[5]);
  tap_init();
  const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(root, sizeof root, "%s/tg-locks-XXXXXX", base);
  if (!mkdtemp(root)) {
    perror("mkdtemp");
    return 2;
  }
  test_basic();
  test_scoped();
  test_contention();
  test_dead_and_stale();
  test_unsafe_paths();
  test_bad_input();
  uint32_t counts[] = {1, 2, 4, 8};
  for (int k = 0; k < 4; k++) test_pools_across_processes(counts[k]);
  test_pool_lock_wait();
  char cmd[4300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
  return tg_test_summary();
}
