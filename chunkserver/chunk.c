/* chunk.c - chunk files: superblock slots, positional I/O through the
 * replaceable system-call table, and the recovery scan (chunk.h). */
#include "chunkserver/chunk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/log.h"
#include "common/status.h"

#define SB_MAGIC "SPYCHUNK"

/* Byte offsets of the slot fields; see the table in chunk.h. */
enum {
    SB_OFF_MAGIC = 0,
    SB_OFF_VERSION = 8,
    SB_OFF_CRC = 12,
    SB_OFF_CHUNK_ID = 16,
    SB_OFF_GROUP_ID = 20,
    SB_OFF_SIZE = 24,
    SB_OFF_SALT = 32,
    SB_OFF_SEQ = 40,
    SB_OFF_SYNCED = 48,
};

/* Scan buffers: a window for headers and tables, and one for body blocks. */
#define SCAN_WINDOW     (1u << 20)
#define SCAN_SMALL_READ (256u << 10) /* read-ahead while records are small */
#define SCAN_BODY       (16u * SPY_STORE_BLOCK)

/* sys_pread -- the real pread, for the default system-call table. */
static ssize_t sys_pread(int fd, void *buf, size_t len, off_t off)
{
    return pread(fd, buf, len, off);
}

/* sys_pwrite -- the real pwrite. */
static ssize_t sys_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    return pwrite(fd, buf, len, off);
}

/* sys_fdatasync -- the real fdatasync. */
static int sys_fdatasync(int fd)
{
    return fdatasync(fd);
}

static const struct spy_chunk_io sys_io = {sys_pread, sys_pwrite, sys_fdatasync};

/* The process's system-call table: the real calls unless a test replaced it
 * (the one piece of process-wide state here; fault injection needs it). */
static _Atomic(const struct spy_chunk_io *) chunk_io = &sys_io;

/* spy_chunk_set_io -- swaps the table every chunk uses. */
void spy_chunk_set_io(const struct spy_chunk_io *io)
{
    atomic_store(&chunk_io, io ? io : &sys_io);
}

/* spy_chunk_sb_encode -- fields, zero padding, then the crc of the slot. */
void spy_chunk_sb_encode(const struct spy_chunk_sb *sb, uint8_t *slot)
{
    memset(slot, 0, SPY_CHUNK_SLOT);
    memcpy(slot + SB_OFF_MAGIC, SB_MAGIC, 8);
    spy_record_put32(slot + SB_OFF_VERSION, SPY_CHUNK_VERSION);
    spy_record_put32(slot + SB_OFF_CHUNK_ID, sb->chunk_id);
    spy_record_put32(slot + SB_OFF_GROUP_ID, sb->group_id);
    spy_record_put64(slot + SB_OFF_SIZE, sb->chunk_size);
    spy_record_put64(slot + SB_OFF_SALT, sb->salt);
    spy_record_put64(slot + SB_OFF_SEQ, sb->seq);
    spy_record_put64(slot + SB_OFF_SYNCED, sb->synced_offset);
    spy_record_put32(slot + SB_OFF_CRC, spy_crc32c(0, slot, SPY_CHUNK_SLOT));
}

/* spy_chunk_sb_decode -- checks the crc over the slot with its crc field
 * zeroed, then the fields that must make sense on their own. */
int spy_chunk_sb_decode(const uint8_t *slot, struct spy_chunk_sb *sb)
{
    uint8_t copy[SPY_CHUNK_SLOT];
    memcpy(copy, slot, sizeof(copy));
    spy_record_put32(copy + SB_OFF_CRC, 0);
    if (memcmp(slot + SB_OFF_MAGIC, SB_MAGIC, 8) != 0 ||
        spy_record_get32(slot + SB_OFF_VERSION) != SPY_CHUNK_VERSION ||
        spy_record_get32(slot + SB_OFF_CRC) != spy_crc32c(0, copy, sizeof(copy)))
        return SPY_ECORRUPT;
    sb->chunk_id = spy_record_get32(slot + SB_OFF_CHUNK_ID);
    sb->group_id = spy_record_get32(slot + SB_OFF_GROUP_ID);
    sb->chunk_size = spy_record_get64(slot + SB_OFF_SIZE);
    sb->salt = spy_record_get64(slot + SB_OFF_SALT);
    sb->seq = spy_record_get64(slot + SB_OFF_SEQ);
    sb->synced_offset = spy_record_get64(slot + SB_OFF_SYNCED);
    if (sb->synced_offset < SPY_CHUNK_DATA || sb->synced_offset > sb->chunk_size ||
        sb->synced_offset % SPY_RECORD_ALIGN != 0)
        return SPY_ECORRUPT;
    return SPY_OK;
}

/* spy_chunk_write -- pwrite until done; any failure damages the chunk. */
int spy_chunk_write(struct spy_chunk *c, const void *buf, size_t len, uint64_t off)
{
    const struct spy_chunk_io *io = atomic_load(&chunk_io);
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = io->pwrite(c->fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            spy_error("%s: write of %zu bytes at %llu failed: %s; chunk now read-only", c->name,
                      len, (unsigned long long)off, n < 0 ? strerror(errno) : "no progress");
            atomic_store(&c->damaged, 1);
            return SPY_EIO;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return SPY_OK;
}

/* spy_chunk_read -- pread until done; the file ending early means the
 * caller's offsets are wrong, which only corrupt metadata can cause. */
int spy_chunk_read(struct spy_chunk *c, void *buf, size_t len, uint64_t off)
{
    const struct spy_chunk_io *io = atomic_load(&chunk_io);
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = io->pread(c->fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            spy_error("%s: read of %zu bytes at %llu failed: %s", c->name, len,
                      (unsigned long long)off, strerror(errno));
            return SPY_EIO;
        }
        if (n == 0)
            return SPY_ECORRUPT;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return SPY_OK;
}

/* spy_chunk_sync -- fdatasync once; a failure is final (dirty pages may have
 * been dropped, so a later success would prove nothing). */
int spy_chunk_sync(struct spy_chunk *c)
{
    if (atomic_load(&c->sync_failed))
        return SPY_EIO;
    const struct spy_chunk_io *io = atomic_load(&chunk_io);
    if (io->fdatasync(c->fd) != 0) {
        spy_error("%s: fdatasync failed: %s; chunk now read-only", c->name, strerror(errno));
        atomic_store(&c->sync_failed, 1);
        atomic_store(&c->damaged, 1);
        return SPY_EIO;
    }
    return SPY_OK;
}

/* spy_chunk_write_super -- the slot not holding the newest state, so a torn
 * write can only lose the slot being written. */
int spy_chunk_write_super(struct spy_chunk *c, uint64_t synced_offset)
{
    struct spy_chunk_sb sb = {
        .chunk_id = c->id,
        .group_id = c->group_id,
        .chunk_size = c->size,
        .salt = c->salt,
        .seq = c->sb_seq + 1,
        .synced_offset = synced_offset,
    };
    uint8_t slot[SPY_CHUNK_SLOT];
    spy_chunk_sb_encode(&sb, slot);
    int rc = spy_chunk_write(c, slot, sizeof(slot), (sb.seq % 2) * SPY_CHUNK_SLOT);
    if (rc != SPY_OK)
        return rc;
    c->sb_seq = sb.seq;
    c->sb_synced = synced_offset;
    c->sb_durable = 0;
    return SPY_OK;
}

/* new_salt -- 64 random bits; the salt only has to differ between chunks
 * and between re-creations, so a getrandom failure falls back to the clock. */
static uint64_t new_salt(void)
{
    uint64_t salt = 0;
    if (getrandom(&salt, sizeof(salt), 0) != (ssize_t)sizeof(salt)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        salt = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)(uintptr_t)&salt;
    }
    return salt;
}

/* allocate_file -- reserves every block now, so appends never hit ENOSPC
 * and the file never changes size. */
static int allocate_file(int fd, uint64_t size)
{
    if (fallocate(fd, 0, 0, (off_t)size) == 0)
        return 0;
    int rc = posix_fallocate(fd, 0, (off_t)size);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

/* write_first_super -- seq 1 into slot 1, synced_offset at the data start,
 * then fsync (not fdatasync: the file's size and blocks are new too). */
static int write_first_super(int fd, uint32_t group_id, uint32_t chunk_id, uint64_t chunk_size)
{
    struct spy_chunk_sb sb = {
        .chunk_id = chunk_id,
        .group_id = group_id,
        .chunk_size = chunk_size,
        .salt = new_salt(),
        .seq = 1,
        .synced_offset = SPY_CHUNK_DATA,
    };
    uint8_t slot[SPY_CHUNK_SLOT];
    spy_chunk_sb_encode(&sb, slot);
    if (pwrite(fd, slot, sizeof(slot), SPY_CHUNK_SLOT) != (ssize_t)sizeof(slot))
        return -1;
    return fsync(fd);
}

/* spy_chunk_create -- builds the file under ".creating-<name>" so a crash
 * mid-way never leaves a short file under a chunk name. */
int spy_chunk_create(const char *dir, const char *name, uint32_t group_id, uint32_t chunk_id,
                     uint64_t chunk_size, char *err, size_t errlen)
{
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof(tmp), "%s/.creating-%s", dir, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return SPY_EIO;
    }
    const char *step = NULL;
    if (allocate_file(fd, chunk_size) != 0)
        step = "allocate";
    else if (write_first_super(fd, group_id, chunk_id, chunk_size) != 0)
        step = "write the superblock of";
    else if (rename(tmp, path) != 0)
        step = "rename into place";
    if (step != NULL) {
        snprintf(err, errlen, "cannot %s %s (%llu bytes): %s", step, tmp,
                 (unsigned long long)chunk_size, strerror(errno));
        close(fd);
        unlink(tmp);
        return SPY_EIO;
    }
    close(fd);
    return SPY_OK;
}

/* is_zero -- true if all len bytes are zero. */
static int is_zero(const uint8_t *p, size_t len)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w != 0)
            return 0;
    }
    for (; i < len; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

/* pick_slot -- the valid slot with the higher seq; -1 if neither is valid. */
static int pick_slot(const uint8_t *head, struct spy_chunk_sb *best)
{
    struct spy_chunk_sb sb[2];
    int ok0 = spy_chunk_sb_decode(head, &sb[0]) == SPY_OK;
    int ok1 = spy_chunk_sb_decode(head + SPY_CHUNK_SLOT, &sb[1]) == SPY_OK;
    if (!ok0 && !ok1)
        return -1;
    int pick = (ok0 && ok1) ? (sb[1].seq > sb[0].seq) : ok1;
    *best = sb[pick];
    return pick;
}

/* adopt_super -- checks that the winning slot describes this very file. */
static int adopt_super(struct spy_chunk *c, const struct spy_chunk_sb *sb, char *err, size_t errlen)
{
    if (sb->group_id != c->group_id || sb->chunk_id != c->id || sb->chunk_size != c->size) {
        snprintf(err, errlen,
                 "%s: superblock says group %u chunk %u size %llu, expected group %u chunk %u "
                 "size %llu",
                 c->name, sb->group_id, sb->chunk_id, (unsigned long long)sb->chunk_size,
                 c->group_id, c->id, (unsigned long long)c->size);
        return SPY_EINVAL;
    }
    c->salt = sb->salt;
    c->sb_seq = sb->seq;
    c->sb_synced = sb->synced_offset;
    c->sb_durable = 1;
    return SPY_OK;
}

/* no_valid_super -- an all-zero start means creation was cut short before
 * any record could be written: start afresh. Anything else is damage. */
static int no_valid_super(struct spy_chunk *c, const uint8_t *head, size_t len, char *err,
                          size_t errlen)
{
    if (!is_zero(head, len)) {
        spy_error("%s: no valid superblock slot; chunk damaged, not read or written", c->name);
        c->no_superblock = 1;
        atomic_store(&c->damaged, 1);
        return SPY_OK;
    }
    spy_warn("%s: empty superblock on an empty chunk; initialising it", c->name);
    c->salt = new_salt();
    c->sb_seq = 0;
    if (spy_chunk_write_super(c, SPY_CHUNK_DATA) != SPY_OK || spy_chunk_sync(c) != SPY_OK) {
        snprintf(err, errlen, "%s: cannot initialise the superblock", c->name);
        return SPY_EIO;
    }
    c->sb_durable = 1;
    return SPY_OK;
}

/* spy_chunk_open -- opens, checks the size, reads both slots. */
int spy_chunk_open(const char *dir, const char *name, uint32_t group_id, uint32_t chunk_id,
                   uint64_t chunk_size, struct spy_chunk **out, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return SPY_EIO;
    }
    if ((uint64_t)st.st_size != chunk_size) {
        snprintf(err, errlen, "%s is %llu bytes, but chunk_size is %llu", path,
                 (unsigned long long)st.st_size, (unsigned long long)chunk_size);
        close(fd);
        return SPY_EINVAL;
    }
    struct spy_chunk *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory opening %s", path);
        close(fd);
        return SPY_ENOMEM;
    }
    c->fd = fd;
    c->id = chunk_id;
    c->group_id = group_id;
    c->size = chunk_size;
    snprintf(c->name, sizeof(c->name), "%s", name);
    atomic_init(&c->tail, SPY_CHUNK_DATA);
    uint8_t head[SPY_CHUNK_DATA + SPY_RECORD_HDR];
    struct spy_chunk_sb sb;
    int rc = spy_chunk_read(c, head, sizeof(head), 0);
    if (rc != SPY_OK)
        snprintf(err, errlen, "%s: cannot read the superblock", path);
    else if (pick_slot(head, &sb) >= 0)
        rc = adopt_super(c, &sb, err, errlen);
    else
        rc = no_valid_super(c, head, sizeof(head), err, errlen);
    if (rc != SPY_OK) {
        spy_chunk_close(c);
        return rc;
    }
    *out = c;
    return SPY_OK;
}

/* spy_chunk_close -- the chunk must no longer be in use. */
void spy_chunk_close(struct spy_chunk *c)
{
    if (c == NULL)
        return;
    close(c->fd);
    free(c);
}

/* The recovery walk's buffers: 'win' caches [base, base + len) of the file
 * for headers and tables; 'body' holds body blocks being verified
 * (allocated at the first body beyond the checkpoint). */
struct scan {
    struct spy_chunk *c;
    uint8_t *win;
    size_t win_cap; /* grows on demand up to SCAN_WINDOW */
    uint64_t base;
    size_t len;
    size_t read_ahead; /* extra bytes read past a miss */
    uint8_t *body;
};

/* win_get -- points *p at [off, off + n) of the file (n <= SCAN_WINDOW),
 * reading a new window starting at off on a miss. */
static int win_get(struct scan *s, uint64_t off, size_t n, const uint8_t **p)
{
    if (off >= s->base && off + n <= s->base + s->len) {
        *p = s->win + (off - s->base);
        return SPY_OK;
    }
    uint64_t want = (uint64_t)n + s->read_ahead;
    if (want > SCAN_WINDOW)
        want = SCAN_WINDOW;
    if (want > s->c->size - off)
        want = s->c->size - off;
    if (want < n)
        return SPY_ECORRUPT;
    s->len = 0;
    if (want > s->win_cap) {
        uint8_t *win = realloc(s->win, (size_t)want);
        if (win == NULL)
            return SPY_ENOMEM;
        s->win = win;
        s->win_cap = (size_t)want;
    }
    int rc = spy_chunk_read(s->c, s->win, (size_t)want, off);
    if (rc != SPY_OK)
        return rc;
    s->base = off;
    s->len = (size_t)want;
    *p = s->win;
    return SPY_OK;
}

/* check_header_crc -- the header crc over the header bytes and the table,
 * the table read through the window in pieces (it may be large). */
static int check_header_crc(struct scan *s, const uint8_t *hdr, const struct spy_record_hdr *h)
{
    uint64_t left = spy_record_table_bytes(h->body_len);
    uint64_t off = h->offset + SPY_RECORD_HDR + h->body_len;
    uint32_t crc = spy_record_crc(s->c->salt, hdr, NULL, 0);
    while (left > 0) {
        size_t piece = left < SCAN_WINDOW / 2 ? (size_t)left : SCAN_WINDOW / 2;
        const uint8_t *p;
        int rc = win_get(s, off, piece, &p);
        if (rc != SPY_OK)
            return rc;
        crc = spy_crc32c(crc, p, piece);
        off += piece;
        left -= piece;
    }
    return crc == h->crc ? SPY_OK : SPY_ECORRUPT;
}

/* check_body -- reads the body in 1 MiB pieces and compares each block's
 * crc with its table entry. */
static int check_body(struct scan *s, const struct spy_record_hdr *h)
{
    uint64_t body = h->offset + SPY_RECORD_HDR;
    uint64_t table = body + h->body_len;
    if (h->body_len > 0 && s->body == NULL && (s->body = malloc(SCAN_BODY)) == NULL)
        return SPY_ENOMEM;
    for (uint64_t done = 0; done < h->body_len;) {
        size_t n = h->body_len - done < SCAN_BODY ? (size_t)(h->body_len - done) : SCAN_BODY;
        int rc = spy_chunk_read(s->c, s->body, n, body + done);
        if (rc != SPY_OK)
            return rc;
        for (size_t k = 0; k < n; k += SPY_STORE_BLOCK) {
            size_t blen = n - k < SPY_STORE_BLOCK ? n - k : SPY_STORE_BLOCK;
            const uint8_t *entry;
            rc = win_get(s, table + 4 * ((done + k) / SPY_STORE_BLOCK), 4, &entry);
            if (rc != SPY_OK)
                return rc;
            if (spy_crc32c(0, s->body + k, blen) != spy_record_get32(entry))
                return SPY_ECORRUPT;
        }
        done += n;
    }
    return SPY_OK;
}

/* check_record -- validates the record at pos: header fields and crc
 * always, body blocks only at or beyond the checkpoint. SPY_ECORRUPT means
 * "not a valid record here"; SPY_ECHECKSUM "a valid header and table, but
 * the body fails a block crc" (the record's extent is still trusted);
 * SPY_EIO is a read error. */
static int check_record(struct scan *s, uint64_t pos, uint64_t synced, struct spy_record_hdr *h)
{
    const uint8_t *p;
    uint8_t hdr[SPY_RECORD_HDR];
    int rc = win_get(s, pos, SPY_RECORD_HDR, &p);
    if (rc != SPY_OK)
        return rc;
    memcpy(hdr, p, sizeof(hdr));
    if (spy_record_decode(hdr, pos, s->c->size, h) != SPY_OK)
        return SPY_ECORRUPT;
    if (pos < synced && pos + spy_record_size(h->body_len) > synced)
        return SPY_ECORRUPT; /* checkpoints fall between records, never inside one */
    rc = check_header_crc(s, hdr, h);
    if (rc == SPY_OK && pos >= synced && h->type != SPY_RECORD_PAD) {
        rc = check_body(s, h);
        if (rc == SPY_ECORRUPT)
            rc = SPY_ECHECKSUM;
    }
    return rc;
}

/* pad_record -- re-labels the record at h->offset as PAD: the same extent
 * and table under a new header, so no later walk indexes it (not even below
 * a checkpoint taken after this open, where bodies are not re-read). */
static int pad_record(struct scan *s, const struct spy_record_hdr *h)
{
    uint64_t table_len = spy_record_table_bytes(h->body_len);
    uint8_t *table = malloc(table_len ? (size_t)table_len : 1);
    if (table == NULL)
        return SPY_ENOMEM;
    int rc =
        spy_chunk_read(s->c, table, (size_t)table_len, h->offset + SPY_RECORD_HDR + h->body_len);
    if (rc == SPY_OK) {
        struct spy_record_hdr pad = *h;
        pad.type = SPY_RECORD_PAD;
        uint8_t hdr[SPY_RECORD_HDR];
        spy_record_encode(&pad, s->c->salt, table, hdr);
        rc = spy_chunk_write(s->c, hdr, sizeof(hdr), h->offset);
    }
    free(table);
    s->len = 0; /* the window may hold the old header */
    return rc;
}

/* torn_bytes -- a cheap lower bound of what a torn tail at pos held: the
 * whole record if its header still decodes, else the nonzero bytes in the
 * next 64 KiB (not looked for after a zero header right at the checkpoint,
 * the common clean end of a chunk). */
static uint64_t torn_bytes(struct scan *s, uint64_t pos, uint64_t synced)
{
    const uint8_t *p;
    struct spy_record_hdr h;
    if (pos + SPY_RECORD_HDR > s->c->size || win_get(s, pos, SPY_RECORD_HDR, &p) != SPY_OK)
        return 0;
    if (spy_record_decode(p, pos, s->c->size, &h) == SPY_OK)
        return spy_record_size(h.body_len);
    if (pos == synced && is_zero(p, SPY_RECORD_HDR))
        return 0; /* the usual clean end: nothing after the checkpoint */
    uint64_t n = s->c->size - pos < SPY_STORE_BLOCK ? s->c->size - pos : SPY_STORE_BLOCK;
    if (n == 0 || win_get(s, pos, (size_t)n, &p) != SPY_OK)
        return 0;
    while (n >= 8 && is_zero(p + n - 8, 8))
        n -= 8;
    while (n > 0 && p[n - 1] == 0)
        n--;
    return n;
}

/* scan_stopped -- classifies the first invalid record at pos: the torn tail
 * (at or beyond the checkpoint) or corruption (below it, or a read error
 * anywhere). */
static void scan_stopped(struct scan *s, uint64_t pos, uint64_t synced, int rc,
                         struct spy_chunk_scan *out)
{
    struct spy_chunk *c = s->c;
    if (rc == SPY_ECORRUPT && pos >= synced) {
        out->cut_bytes = torn_bytes(s, pos, synced);
        if (out->cut_bytes > 0)
            spy_warn("%s: torn tail at offset %llu cut (%llu bytes or more)", c->name,
                     (unsigned long long)pos, (unsigned long long)out->cut_bytes);
        return;
    }
    spy_error("%s: %s at offset %llu (checkpoint at %llu); chunk read-only, %llu records "
              "before it kept",
              c->name, rc == SPY_ECORRUPT ? "invalid record" : "read error",
              (unsigned long long)pos, (unsigned long long)synced,
              (unsigned long long)out->records);
    atomic_store(&c->damaged, 1);
    out->corrupt = 1;
}

/* walk -- the record loop of spy_chunk_scan. */
static int walk(struct scan *s, spy_chunk_scan_fn fn, void *ctx, struct spy_chunk_scan *out)
{
    uint64_t pos = SPY_CHUNK_DATA, synced = s->c->sb_synced;
    int rc = SPY_OK;
    while (pos + SPY_RECORD_HDR <= s->c->size) {
        struct spy_record_hdr h;
        int valid = check_record(s, pos, synced, &h);
        if (valid == SPY_ENOMEM) {
            rc = valid;
            break;
        }
        if (valid == SPY_ECHECKSUM) {
            uint64_t size = spy_record_size(h.body_len);
            int prc = pad_record(s, &h);
            spy_error("%s: record of fid %llu at offset %llu: body fails its checksum; skipped "
                      "(%llu bytes now garbage%s), the records after it are kept",
                      s->c->name, (unsigned long long)h.fid, (unsigned long long)pos,
                      (unsigned long long)size, prc == SPY_OK ? ", marked PAD" : "");
            if (prc != SPY_OK) { /* cannot mark it: keep the old behaviour, stop here */
                scan_stopped(s, pos, synced, SPY_ECORRUPT, out);
                break;
            }
            out->skipped++;
            out->skipped_bytes += size;
            pos += size;
            continue;
        }
        if (valid == SPY_OK && h.type == SPY_RECORD_PAD) {
            uint64_t size = spy_record_size(h.body_len);
            out->skipped_bytes += size;
            pos += size;
            continue;
        }
        if (valid != SPY_OK) {
            scan_stopped(s, pos, synced, valid, out);
            break;
        }
        rc = fn(ctx, s->c, &h);
        if (rc != SPY_OK)
            break;
        out->records++;
        uint64_t size = spy_record_size(h.body_len);
        s->read_ahead = size < SCAN_SMALL_READ / 8 ? SCAN_SMALL_READ : 4096;
        pos += size;
    }
    out->end = pos;
    atomic_store(&s->c->tail, pos);
    return rc;
}

/* spy_chunk_scan -- walks with buffers grown on demand. (Turning the
 * kernel's read-ahead off with POSIX_FADV_RANDOM for the header walk made
 * no measurable difference, so the default stays.) */
int spy_chunk_scan(struct spy_chunk *c, spy_chunk_scan_fn fn, void *ctx, struct spy_chunk_scan *out)
{
    memset(out, 0, sizeof(*out));
    out->end = SPY_CHUNK_DATA;
    if (c->no_superblock)
        return SPY_OK;
    struct scan s = {.c = c, .read_ahead = 4096};
    int rc = walk(&s, fn, ctx, out);
    free(s.win);
    free(s.body);
    return rc;
}
