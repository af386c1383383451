/* chunk.h - one preallocated chunk file: its superblock, appends, reads and
 * the recovery scan over its records (record.h). docs/chunkserver.md has the
 * byte tables.
 *
 * A chunk file is chunk_size bytes, allocated at creation. Bytes 0-4095 are
 * the superblock area: two 512-byte slots at offsets 0 and 512, written
 * alternately (a torn slot write leaves the other one intact); the valid
 * slot with the higher seq is current. Records start at SPY_CHUNK_DATA.
 *
 * Slot bytes (little-endian):
 *
 *     00-07   magic          "SPYCHUNK"
 *     08-11   version        u32  SPY_CHUNK_VERSION
 *     12-15   crc            u32  crc32c of the 512-byte slot with this field 0
 *     16-19   chunk_id       u32  as in the file name
 *     20-23   group_id       u32  as in the file name
 *     24-31   chunk_size     u64  the file's size
 *     32-39   salt           u64  random, chosen at creation, seeds record crcs
 *     40-47   seq            u64  higher wins; slot = seq % 2
 *     48-55   synced_offset  u64  every record below was fdatasync'ed before
 *                                 this slot was written
 *     56-511  zero
 *
 * Threading: a chunk has one appender at a time (the store hands it out);
 * reads run concurrently with it (appends never move data). Superblocks are
 * written by spy_chunk_open, then only by the group-commit thread. */
#ifndef SPY_CHUNK_H
#define SPY_CHUNK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "chunkserver/record.h"

#define SPY_CHUNK_SLOT    512u  /* bytes per superblock slot */
#define SPY_CHUNK_DATA    4096u /* offset of the first record */
#define SPY_CHUNK_VERSION 1u

/* A decoded superblock slot. */
struct spy_chunk_sb {
    uint32_t chunk_id;
    uint32_t group_id;
    uint64_t chunk_size;
    uint64_t salt;
    uint64_t seq;
    uint64_t synced_offset;
};

struct spy_chunk {
    /* Fixed from open to close. */
    int fd;
    uint32_t id;       /* 1-based, as in the file name */
    uint32_t group_id; /* as in the file name */
    uint64_t size;     /* chunk_size */
    uint64_t salt;     /* from the superblock */
    int no_superblock; /* neither slot valid: nothing can be validated or scanned */
    char name[64];     /* file name, for log lines */
    /* Shared between threads. */
    _Atomic uint64_t tail;  /* end of the committed records; only the holder advances it */
    atomic_int damaged;     /* refused for writing (I/O error or corruption) */
    atomic_int sync_failed; /* an fdatasync failed: later ones prove nothing */
    /* Superblock state: spy_chunk_open, then the group-commit thread only. */
    uint64_t sb_seq;    /* seq of the newest slot written */
    uint64_t sb_synced; /* synced_offset in that slot */
    int sb_durable;     /* that slot has been covered by an fdatasync */
    /* Owned by the store, under its lock. */
    int held;         /* a put or delete is appending */
    uint64_t used;    /* bytes of live records */
    uint64_t garbage; /* bytes of deleted records, tombstones, duplicates */
};

/* The system calls under every chunk, replaceable so tests can inject
 * faults (SQLite's SimulateIOError idea). Each behaves like the libc call. */
struct spy_chunk_io {
    ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
    ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
    int (*fdatasync)(int fd);
};

/* Installs 'io' for every chunk of the process (NULL: the real system
 * calls). Test-only; 'io' must outlive its use. Thread-safe (atomic). */
void spy_chunk_set_io(const struct spy_chunk_io *io);

/* Encodes sb into a 512-byte slot, crc included. */
void spy_chunk_sb_encode(const struct spy_chunk_sb *sb, uint8_t *slot);

/* Decodes a slot: SPY_OK if magic, version and crc match and synced_offset is
 * an aligned offset within [SPY_CHUNK_DATA, chunk_size]; else SPY_ECORRUPT. */
int spy_chunk_sb_decode(const uint8_t *slot, struct spy_chunk_sb *sb);

/* Creates dir/name as a chunk file of chunk_size bytes (fallocate, else
 * posix_fallocate) with a fresh random salt and one superblock slot, made
 * durable, under a temporary name renamed into place at the end. SPY_OK, or
 * SPY_EIO with a one-line reason in err. The directory is not fsync'ed. */
int spy_chunk_create(const char *dir, const char *name, uint32_t group_id, uint32_t chunk_id,
                     uint64_t chunk_size, char *err, size_t errlen);

/* Opens dir/name and reads its superblock. A size other than chunk_size, or
 * a valid slot naming another chunk_id, group_id or chunk_size, refuses
 * (SPY_EINVAL, reason in err). With no valid slot: an all-zero start (a
 * creation cut short) is re-initialised; anything else opens the chunk as
 * damaged with no_superblock set. Nothing is scanned yet. */
int spy_chunk_open(const char *dir, const char *name, uint32_t group_id, uint32_t chunk_id,
                   uint64_t chunk_size, struct spy_chunk **out, char *err, size_t errlen);

/* Closes the file and frees the chunk. */
void spy_chunk_close(struct spy_chunk *c);

/* Writes all of buf at off. SPY_OK, or SPY_EIO (logged; the chunk is then
 * damaged: the fsyncgate lesson, a failed write is never retried). */
int spy_chunk_write(struct spy_chunk *c, const void *buf, size_t len, uint64_t off);

/* Reads exactly len bytes at off. SPY_OK, SPY_EIO (logged) or SPY_ECORRUPT
 * if the file ends first. */
int spy_chunk_read(struct spy_chunk *c, void *buf, size_t len, uint64_t off);

/* fdatasync. On failure logs, marks the chunk damaged and sync_failed, and
 * returns SPY_EIO; once sync_failed it returns SPY_EIO without trying. */
int spy_chunk_sync(struct spy_chunk *c);

/* Writes the next superblock slot (seq + 1, slot (seq + 1) % 2) with
 * synced_offset. Not made durable here: the next spy_chunk_sync does that.
 * The caller must be the only superblock writer. SPY_OK or SPY_EIO. */
int spy_chunk_write_super(struct spy_chunk *c, uint64_t synced_offset);

/* Called by spy_chunk_scan for each valid record, in offset order; a
 * nonzero return stops the scan and is returned by it. */
typedef int (*spy_chunk_scan_fn)(void *ctx, struct spy_chunk *c, const struct spy_record_hdr *h);

/* What a scan found. */
struct spy_chunk_scan {
    uint64_t records;       /* valid records passed to the callback */
    uint64_t end;           /* offset after the last valid record: the new tail */
    uint64_t cut_bytes;     /* bytes of a torn tail found at 'end' (a lower bound) */
    int corrupt;            /* stopped by corruption or a read error: chunk damaged */
    uint64_t skipped;       /* records beyond the checkpoint whose body failed its crc,
                               re-labelled PAD on disk by this scan */
    uint64_t skipped_bytes; /* bytes of those and of older PAD records (garbage) */
};

/* Walks the records from SPY_CHUNK_DATA. Below the superblock's
 * synced_offset only headers and tables are read and checked (the header
 * crc); from there on bodies are checked block by block too. It stops at
 * the first invalid record - except a record beyond synced_offset whose
 * header and table are valid but whose body fails a block crc: its extent is
 * known, so it is skipped (logged, counted in out->skipped, never indexed)
 * and the walk goes on, so one bad block never drops the acknowledged
 * records after it. Otherwise: at or beyond synced_offset that is the torn tail
 * (tail = its offset, logged if nonzero bytes are cut), below it is
 * corruption; a read error stops it too. Corruption and read errors are
 * logged and mark the chunk damaged (out->corrupt). Sets c->tail. Returns
 * SPY_OK, SPY_ENOMEM or the callback's code. Chunks with no_superblock:
 * SPY_OK, nothing scanned. */
int spy_chunk_scan(struct spy_chunk *c, spy_chunk_scan_fn fn, void *ctx,
                   struct spy_chunk_scan *out);

#endif
