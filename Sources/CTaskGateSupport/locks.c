/* File-lock system calls for Locks/ (see Sources/TaskGateCore/Locks/README.md).
 * Kept in C because the OFD lock commands need _GNU_SOURCE and struct flock,
 * and because every open here must carry the same safety flags. */
#define _GNU_SOURCE
#include "tgsupport.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fault to report instead of calling fcntl (tests of filesystems where
   locking does not work). 0: none. */
static int lock_fault;
void tgs_lock_inject_fault(int err) { __atomic_store_n(&lock_fault, err, __ATOMIC_RELAXED); }

static void fill_info(const struct stat *st, tgs_file_info *info) {
  info->dev = (uint64_t)st->st_dev;
  info->ino = (uint64_t)st->st_ino;
  info->size = (int64_t)st->st_size;
  info->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
  info->mode = (uint32_t)st->st_mode;
  info->uid = (uint32_t)st->st_uid;
  if (S_ISREG(st->st_mode)) info->kind = TGS_FILE_REGULAR;
  else if (S_ISDIR(st->st_mode)) info->kind = TGS_FILE_DIRECTORY;
  else if (S_ISLNK(st->st_mode)) info->kind = TGS_FILE_SYMLINK;
  else if (S_ISFIFO(st->st_mode)) info->kind = TGS_FILE_FIFO;
  else if (S_ISSOCK(st->st_mode)) info->kind = TGS_FILE_SOCKET;
  else info->kind = TGS_FILE_OTHER;
}

int tgs_lock_open(int dirfd, const char *name, int flags, tgs_file_info *info) {
  int oflags = O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
  if (flags & TGS_OPEN_CREATE) oflags |= O_CREAT;
  if (flags & TGS_OPEN_EXCL) oflags |= O_CREAT | O_EXCL;
  /* 0644 is masked by the umask, never widened by it: the process umask is
     left alone, and the file is never writable by others. */
  int fd = openat(dirfd, name, oflags, 0644);
  if (fd < 0) return -errno;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  fill_info(&st, info);
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return TGS_ENOTREG;
  }
  return fd;
}

int tgs_lstat_at(int dirfd, const char *name, tgs_file_info *info) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return -errno;
  fill_info(&st, info);
  return 0;
}

int tgs_fstat_info(int fd, tgs_file_info *info) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  fill_info(&st, info);
  return 0;
}

int tgs_ofd_lock(int fd, int type, int64_t start, int wait) {
  int fault = __atomic_load_n(&lock_fault, __ATOMIC_RELAXED);
  if (fault) return -fault;
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type == TGS_LOCK_WRITE ? F_WRLCK : type == TGS_LOCK_READ ? F_RDLCK : F_UNLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = (off_t)start;
  fl.l_len = 1;
  for (;;) {
    if (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0) return 0;
    if (errno == EINTR) continue;
    return -errno;
  }
}

int tgs_ofd_query(int fd, int type, int64_t start) {
  int fault = __atomic_load_n(&lock_fault, __ATOMIC_RELAXED);
  if (fault) return -fault;
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type == TGS_LOCK_WRITE ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = (off_t)start;
  fl.l_len = 1;
  if (fcntl(fd, F_OFD_GETLK, &fl) != 0) return -errno;
  return fl.l_type == F_WRLCK ? TGS_LOCK_WRITE : fl.l_type == F_RDLCK ? TGS_LOCK_READ : TGS_LOCK_NONE;
}

int tgs_errno_busy(int negerr) { return negerr == -EAGAIN || negerr == -EACCES || negerr == -EWOULDBLOCK; }

int tgs_errno_unsupported(int negerr) {
  return negerr == -ENOLCK || negerr == -EINVAL || negerr == -ENOSYS || negerr == -EOPNOTSUPP ||
         negerr == -EBADF;
}

int64_t tgs_proc_start_time(int32_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  /* The command name may hold spaces and parentheses: count fields after the
     last ')'. Field 3 (state) follows it; starttime is field 22. */
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  p++;
  for (int field = 2; field < 22; field++) {
    while (*p == ' ') p++;
    if (!*p) return -1;
    if (field == 21) break;
    while (*p && *p != ' ') p++;
  }
  char *end;
  long long v = strtoll(p, &end, 10);
  if (end == p) return -1;
  return (int64_t)v;
}

const char *tgs_strerror_neg(int negerr) { return strerror(-negerr); }
