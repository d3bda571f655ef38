/*
 * checksum: an example taskgate plugin that hashes files.
 *
 *   checksum.sha256     (string path)                  -> 64 hex characters
 *   checksum.sha256_to  (string in_path, string out)   -> 64 hex characters,
 *                        and writes "<hex>  <in_path>\n" to out (sha256sum's format)
 *   checksum.crc32      (string path)                  -> 8 hex characters
 *
 * SHA-256 is written here from its definition in FIPS 180-4 (sections 4.1.2,
 * 4.2.2, 5.1.1, 5.3.3 and 6.2); CRC-32 is the IEEE one (reflected, polynomial
 * 0xEDB88320, initial value and final xor 0xFFFFFFFF). The init hook checks
 * both against known answers and refuses the plugin if either is wrong.
 *
 * Files are read in 64 KiB blocks from heap buffers (a worker's stack may be
 * small), and the task's cancellation is polled before every block. Nothing
 * is shared between calls except a counter for unique temporary file names,
 * so every entry point is thread-safe.
 *
 * Build:
 *   gcc -std=c99 -O2 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden \
 *       -I include -o libchecksum.so examples/plugins/checksum.c
 */
#define _POSIX_C_SOURCE 200809L

#include "taskgate_plugin.h"
#include "plugin_support.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define BLOCK_SIZE (64 * 1024)

/* ---- files ---------------------------------------------------------------- */

static int open_input(tg_plugin_task *task, const char *path, int *fd) {
  int f;
  do f = open(path, O_RDONLY | O_CLOEXEC);
  while (f < 0 && errno == EINTR);
  if (f < 0) return fail_errno(task, "cannot open", path, errno);
  *fd = f;
  return TG_PLUGIN_OK;
}

static ssize_t read_some(int fd, void *buf, size_t cap) {
  ssize_t n;
  do n = read(fd, buf, cap);
  while (n < 0 && errno == EINTR);
  return n;
}

static int write_all(int fd, const void *data, size_t len) {
  const unsigned char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Process-wide counter: with the pid it makes temporary names unique across
   threads and processes. */
static unsigned long tmp_counter;

/* Writes `data` to `path` atomically: parents made, a temporary file in the
   same directory written and closed, then renamed over `path`. */
static int write_file_atomic(tg_plugin_task *task, const char *path, const void *data, size_t len) {
  if (make_parents(task, path) != TG_PLUGIN_OK) return TG_PLUGIN_FAILED;
  size_t cap = strlen(path) + 64;
  char *tmp = malloc(cap);
  if (!tmp) return fail(task, "out of memory");
  int fd = -1;
  for (int tries = 0; tries < 100 && fd < 0; tries++) {
    unsigned long k = __atomic_add_fetch(&tmp_counter, 1, __ATOMIC_RELAXED);
    snprintf(tmp, cap, "%s.tmp.%ld.%lu", path, (long)getpid(), k);
    do fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    int rc = fail_errno(task, "cannot create", tmp, errno);
    free(tmp);
    return rc;
  }
  int rc = TG_PLUGIN_OK;
  if (write_all(fd, data, len) != 0) rc = fail_errno(task, "cannot write", tmp, errno);
  if (close(fd) != 0 && rc == TG_PLUGIN_OK) rc = fail_errno(task, "cannot close", tmp, errno);
  if (rc == TG_PLUGIN_OK && rename(tmp, path) != 0) rc = fail_errno(task, "cannot rename the temporary file to", path, errno);
  if (rc != TG_PLUGIN_OK) unlink(tmp);
  free(tmp);
  return rc;
}

/* Feeds every byte of the file to `feed`, 64 KiB at a time, polling for
   cancellation before each block. */
typedef void (*feed_fn)(void *ctx, const unsigned char *data, size_t len);

static int stream_file(tg_plugin_task *task, const char *path, feed_fn feed, void *ctx) {
  int fd = -1;
  if (open_input(task, path, &fd) != TG_PLUGIN_OK) return TG_PLUGIN_FAILED;
  unsigned char *buf = malloc(BLOCK_SIZE);
  if (!buf) {
    close(fd);
    return fail(task, "out of memory");
  }
  int rc = TG_PLUGIN_OK;
  for (;;) {
    if (task->host->cancelled(task)) {
      rc = fail_cancelled(task);
      break;
    }
    ssize_t n = read_some(fd, buf, BLOCK_SIZE);
    if (n < 0) {
      rc = fail_errno(task, "cannot read", path, errno);
      break;
    }
    if (n == 0) break;
    feed(ctx, buf, (size_t)n);
  }
  free(buf);
  close(fd);
  return rc;
}

static void to_hex(const unsigned char *bytes, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
  out[2 * n] = '\0';
}

/* ---- SHA-256 (FIPS 180-4) -------------------------------------------------- */

/* 4.2.2: the first 32 bits of the fractional parts of the cube roots of the
   first 64 primes. */
static const uint32_t sha256_k[64] = {
  0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
  0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
  0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
  0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
  0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
  0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
  0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
  0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
};

/* 5.3.3: the first 32 bits of the fractional parts of the square roots of the
   first 8 primes. */
static const uint32_t sha256_h0[8] = {
  0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au, 0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u,
};

typedef struct sha256_ctx {
  uint32_t h[8];           /* the hash value H(i) */
  uint64_t length;         /* message bytes so far */
  unsigned char block[64]; /* a partial message block */
  size_t fill;             /* bytes in block */
} sha256_ctx;

/* 4.1.2 */
static uint32_t rotr32(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }
static uint32_t ch32(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (~x & z); }
static uint32_t maj32(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (x & z) ^ (y & z); }
static uint32_t big_sigma0(uint32_t x) { return rotr32(x, 2) ^ rotr32(x, 13) ^ rotr32(x, 22); }
static uint32_t big_sigma1(uint32_t x) { return rotr32(x, 6) ^ rotr32(x, 11) ^ rotr32(x, 25); }
static uint32_t small_sigma0(uint32_t x) { return rotr32(x, 7) ^ rotr32(x, 18) ^ (x >> 3); }
static uint32_t small_sigma1(uint32_t x) { return rotr32(x, 17) ^ rotr32(x, 19) ^ (x >> 10); }

/* 6.2.2: one 512-bit block M(i), words read big-endian. */
static void sha256_compress(uint32_t h[8], const unsigned char *m) {
  uint32_t w[64];
  for (int t = 0; t < 16; t++) {
    w[t] = (uint32_t)m[4 * t] << 24 | (uint32_t)m[4 * t + 1] << 16 | (uint32_t)m[4 * t + 2] << 8 | (uint32_t)m[4 * t + 3];
  }
  for (int t = 16; t < 64; t++) w[t] = small_sigma1(w[t - 2]) + w[t - 7] + small_sigma0(w[t - 15]) + w[t - 16];

  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int t = 0; t < 64; t++) {
    uint32_t t1 = hh + big_sigma1(e) + ch32(e, f, g) + sha256_k[t] + w[t];
    uint32_t t2 = big_sigma0(a) + maj32(a, b, c);
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
  h[5] += f;
  h[6] += g;
  h[7] += hh;
}

static void sha256_init(sha256_ctx *s) {
  memcpy(s->h, sha256_h0, sizeof s->h);
  s->length = 0;
  s->fill = 0;
}

static void sha256_update(sha256_ctx *s, const unsigned char *p, size_t n) {
  s->length += n;
  if (s->fill > 0) {
    size_t take = 64 - s->fill < n ? 64 - s->fill : n;
    memcpy(s->block + s->fill, p, take);
    s->fill += take;
    p += take;
    n -= take;
    if (s->fill < 64) return;
    sha256_compress(s->h, s->block);
    s->fill = 0;
  }
  for (; n >= 64; p += 64, n -= 64) sha256_compress(s->h, p);
  memcpy(s->block, p, n);
  s->fill = n;
}

/* 5.1.1: a 1 bit, zeros up to 448 mod 512 bits, the length in bits as a
   64-bit big-endian number. */
static void sha256_final(sha256_ctx *s, unsigned char digest[32]) {
  uint64_t bits = s->length * 8;
  s->block[s->fill++] = 0x80;
  if (s->fill > 56) {
    memset(s->block + s->fill, 0, 64 - s->fill);
    sha256_compress(s->h, s->block);
    s->fill = 0;
  }
  memset(s->block + s->fill, 0, 56 - s->fill);
  for (int i = 0; i < 8; i++) s->block[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
  sha256_compress(s->h, s->block);
  for (int i = 0; i < 8; i++) {
    digest[4 * i] = (unsigned char)(s->h[i] >> 24);
    digest[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
    digest[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
    digest[4 * i + 3] = (unsigned char)s->h[i];
  }
}

static void sha256_feed(void *ctx, const unsigned char *data, size_t len) { sha256_update(ctx, data, len); }

/* ---- CRC-32 (IEEE 802.3, reflected) ----------------------------------------- */

typedef struct crc32_ctx {
  uint32_t table[256];
  uint32_t crc;
} crc32_ctx;

/* The table is built per call (2 048 steps, nothing next to reading a file):
   no shared state, no once-guard. */
static void crc32_init(crc32_ctx *c) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t v = i;
    for (int k = 0; k < 8; k++) v = (v & 1) ? 0xEDB88320u ^ (v >> 1) : v >> 1;
    c->table[i] = v;
  }
  c->crc = 0xFFFFFFFFu;
}

static void crc32_update(crc32_ctx *c, const unsigned char *p, size_t n) {
  uint32_t crc = c->crc;
  for (size_t i = 0; i < n; i++) crc = c->table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  c->crc = crc;
}

static uint32_t crc32_final(const crc32_ctx *c) { return c->crc ^ 0xFFFFFFFFu; }

static void crc32_feed(void *ctx, const unsigned char *data, size_t len) { crc32_update(ctx, data, len); }

/* ---- entry points ------------------------------------------------------------- */

TG_PLUGIN_EXPORT int checksum_sha256(tg_plugin_task *task, ...);
TG_PLUGIN_EXPORT int checksum_sha256_to(tg_plugin_task *task, ...);
TG_PLUGIN_EXPORT int checksum_crc32(tg_plugin_task *task, ...);
TG_PLUGIN_EXPORT int checksum_init(const tg_plugin_host *host, void **plugin_state, char *error, size_t error_cap);

static int sha256_file_hex(tg_plugin_task *task, const char *path, char hex[65]) {
  sha256_ctx s;
  sha256_init(&s);
  if (stream_file(task, path, sha256_feed, &s) != TG_PLUGIN_OK) return TG_PLUGIN_FAILED;
  unsigned char digest[32];
  sha256_final(&s, digest);
  to_hex(digest, sizeof digest, hex);
  return TG_PLUGIN_OK;
}

/* sha256(string path) */
int checksum_sha256(tg_plugin_task *task, ...) {
  va_list ap;
  va_start(ap, task);
  const char *path = va_arg(ap, const char *);
  va_end(ap);

  char hex[65];
  if (sha256_file_hex(task, path, hex) != TG_PLUGIN_OK) return TG_PLUGIN_FAILED;
  return set_output(task, hex, 64);
}

/* sha256_to(string in_path, string out_path) */
int checksum_sha256_to(tg_plugin_task *task, ...) {
  va_list ap;
  va_start(ap, task);
  const char *in_path = va_arg(ap, const char *);
  const char *out_path = va_arg(ap, const char *);
  va_end(ap);

  char hex[65];
  if (sha256_file_hex(task, in_path, hex) != TG_PLUGIN_OK) return TG_PLUGIN_FAILED;
  if (task->host->cancelled(task)) return fail_cancelled(task);

  size_t len = 64 + 2 + strlen(in_path) + 1;
  char *line = malloc(len + 1);
  if (!line) return fail(task, "out of memory");
  snprintf(line, len + 1, "%s  %s\n", hex, in_path);
  int rc = write_file_atomic(task, out_path, line, len);
  free(line);
  if (rc != TG_PLUGIN_OK) return rc;
  return set_output(task, hex, 64);
}

/* crc32(string path) */
int checksum_crc32(tg_plugin_task *task, ...) {
  va_list ap;
  va_start(ap, task);
  const char *path = va_arg(ap, const char *);
  va_end(ap);

  crc32_ctx *c = malloc(sizeof *c);
  if (!c) return fail(task, "out of memory");
  crc32_init(c);
  int rc = stream_file(task, path, crc32_feed, c);
  uint32_t crc = crc32_final(c);
  free(c);
  if (rc != TG_PLUGIN_OK) return rc;
  char hex[9];
  snprintf(hex, sizeof hex, "%08lx", (unsigned long)crc);
  return set_output(task, hex, 8);
}

/* ---- self-check (the init hook) ------------------------------------------------- */

static void sha256_hex_of(const void *data, size_t len, size_t chunk, char hex[65]) {
  sha256_ctx s;
  unsigned char digest[32];
  const unsigned char *p = data;
  sha256_init(&s);
  while (len > 0) { /* in pieces, so that update's block joining is tested too */
    size_t n = len < chunk ? len : chunk;
    sha256_update(&s, p, n);
    p += n;
    len -= n;
  }
  sha256_final(&s, digest);
  to_hex(digest, sizeof digest, hex);
}

int checksum_init(const tg_plugin_host *host, void **plugin_state, char *error, size_t error_cap) {
  *plugin_state = NULL;
  if (host->struct_size < sizeof(tg_plugin_host)) {
    snprintf(error, error_cap, "host function table too small (%u bytes, need %u)", (unsigned)host->struct_size,
             (unsigned)sizeof(tg_plugin_host));
    return 1;
  }
  static const struct {
    const char *message;
    const char *hex;
  } known[] = {
    /* FIPS 180-2 appendix B.1 and B.2, and the empty message. */
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
  };
  char hex[65];
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
    size_t chunks[] = {1, 7, 64};
    for (size_t c = 0; c < 3; c++) {
      sha256_hex_of(known[i].message, strlen(known[i].message), chunks[c], hex);
      if (strcmp(hex, known[i].hex) != 0) {
        snprintf(error, error_cap, "self-check failed: SHA-256(\"%s\") gave %s, expected %s", known[i].message, hex,
                 known[i].hex);
        return 1;
      }
    }
  }
  /* FIPS 180-2 appendix B.3: a million 'a'. */
  {
    unsigned char a[1000];
    memset(a, 'a', sizeof a);
    sha256_ctx s;
    unsigned char digest[32];
    sha256_init(&s);
    for (int i = 0; i < 1000; i++) sha256_update(&s, a, sizeof a);
    sha256_final(&s, digest);
    to_hex(digest, sizeof digest, hex);
    if (strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") != 0) {
      snprintf(error, error_cap, "self-check failed: SHA-256 of a million 'a' gave %s", hex);
      return 1;
    }
  }
  {
    crc32_ctx c;
    crc32_init(&c);
    crc32_update(&c, (const unsigned char *)"123456789", 9);
    if (crc32_final(&c) != 0xCBF43926u) {
      snprintf(error, error_cap, "self-check failed: CRC-32(\"123456789\") gave %08lx, expected cbf43926",
               (unsigned long)crc32_final(&c));
      return 1;
    }
  }
  return 0;
}

/* ---- the descriptor ---------------------------------------------------------- */

static const uint8_t one_path[] = {TG_TYPE_STRING};
static const uint8_t in_and_out[] = {TG_TYPE_STRING, TG_TYPE_STRING};

static const tg_plugin_processor processors[] = {
  {"sha256", "checksum_sha256", one_path, 1, 0, NULL, NULL, "SHA-256 of a file as 64 lowercase hex characters"},
  {"sha256_to", "checksum_sha256_to", in_and_out, 2, 0, NULL, NULL,
   "SHA-256 of a file; also writes '<hex>  <in_path>' to out_path atomically"},
  {"crc32", "checksum_crc32", one_path, 1, 0, NULL, NULL, "CRC-32 (IEEE) of a file as 8 lowercase hex characters"},
};

TG_PLUGIN_EXPORT const tg_plugin_descriptor taskgate_plugin_descriptor = {
  TG_PLUGIN_DESCRIPTOR_HEAD,
  "checksum",
  "1.0.0",
  "File digests: SHA-256 and CRC-32",
  processors,
  sizeof processors / sizeof processors[0],
  0,
  "checksum_init",
  NULL,
  NULL,
};
