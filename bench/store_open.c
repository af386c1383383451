/* store_open.c - how long spy_store_open takes on a full data directory.
 *
 *   store_open [--size=4G] [--object=1M] [--chunk_size=1G] [--keep] DIR
 *
 * Fills DIR (which must hold no chunk files) with objects of --object bytes
 * until --size bytes are stored, closes the store, then:
 *   1. drops the page cache (echo 3 > /proc/sys/vm/drop_caches; needs root,
 *      the line says whether it worked) and reopens: the normal restart,
 *      which walks headers only, up to each chunk's checkpoint;
 *   2. rewrites every chunk's superblock with synced_offset at the data
 *      start (a lost checkpoint), drops the cache again and reopens: every
 *      body byte is read and verified.
 * Prints one key=value line per step. Removes the chunk files at the end
 * unless --keep is given. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chunkserver/chunk.h"
#include "chunkserver/store.h"
#include "common/crc32c.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/status.h"

#define PIECE (1u << 20) /* bytes per put_append, like the server's blocks */

struct bench {
    const char *dir;
    uint64_t size, object, chunk_size;
    int keep;
    uint32_t chunks;
};

/* now -- monotonic seconds. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* open_store -- opens the bench's data directory, exiting on failure. */
static struct spy_store *open_store(const struct bench *b)
{
    struct spy_store_config cfg = {
        .data_dir = b->dir,
        .chunks = b->chunks,
        .chunk_size = b->chunk_size,
        .sync = 0,
        .group_id = 1,
        .wait_ms = 5000,
    };
    struct spy_store *s;
    char err[512];
    if (spy_store_open(&cfg, &s, err, sizeof(err)) != SPY_OK) {
        fprintf(stderr, "store_open: %s\n", err);
        exit(1);
    }
    return s;
}

/* put_one -- one object of b->object bytes from the shared buffer; the
 * first 8 bytes carry the fid so no two bodies are equal. */
static int put_one(struct spy_store *s, const struct bench *b, uint64_t fid, uint8_t *buf)
{
    struct spy_put *p;
    int rc = spy_store_put_begin(s, fid, b->object, &p);
    if (rc != SPY_OK)
        return rc;
    memcpy(buf, &fid, sizeof(fid));
    uint32_t crc = 0;
    for (uint64_t done = 0; done < b->object && rc == SPY_OK;) {
        size_t n = b->object - done < PIECE ? (size_t)(b->object - done) : PIECE;
        rc = spy_store_put_append(p, buf, n);
        crc = spy_crc32c(crc, buf, n);
        done += n;
    }
    if (rc != SPY_OK) {
        spy_store_put_abort(p);
        return rc;
    }
    return spy_store_put_commit(p, crc);
}

/* fill -- writes objects until b->size bytes are stored. */
static void fill(const struct bench *b)
{
    uint8_t *buf = malloc(PIECE);
    if (buf == NULL)
        exit(1);
    for (size_t i = 0; i < PIECE; i++)
        buf[i] = (uint8_t)(rand() >> 7);
    double t0 = now();
    struct spy_store *s = open_store(b);
    uint64_t count = (b->size + b->object - 1) / b->object;
    for (uint64_t fid = 1; fid <= count; fid++) {
        int rc = put_one(s, b, fid, buf);
        if (rc != SPY_OK) {
            fprintf(stderr, "store_open: put of fid %llu: %s\n", (unsigned long long)fid,
                    spy_strerror(rc));
            exit(1);
        }
    }
    double t1 = now();
    spy_store_close(s); /* the last checkpoint fdatasyncs everything */
    double t2 = now();
    printf("step=fill objects=%llu object_bytes=%llu bytes=%llu put_seconds=%.2f "
           "close_seconds=%.2f MBps=%.1f\n",
           (unsigned long long)count, (unsigned long long)b->object,
           (unsigned long long)(count * b->object), t1 - t0, t2 - t1,
           (double)(count * b->object) / 1e6 / (t2 - t0));
    free(buf);
}

/* drop_caches -- empties the page cache so the next open reads the disk.
 * Returns "ok" or why not. */
static const char *drop_caches(void)
{
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0)
        return "no (cannot open /proc/sys/vm/drop_caches)";
    ssize_t n = write(fd, "3\n", 2);
    close(fd);
    return n == 2 ? "ok" : "no (write refused)";
}

/* reopen -- times one open and prints what it found. */
static void reopen(const struct bench *b, const char *step)
{
    const char *dropped = drop_caches();
    struct spy_store *s = open_store(b);
    struct spy_store_stats st;
    spy_store_get_stats(s, &st);
    printf("step=%s drop_caches=%s open_seconds=%.3f objects=%llu chunks=%u damaged=%u\n", step,
           dropped, st.open_seconds, (unsigned long long)st.objects, st.chunks, st.chunks_damaged);
    spy_store_close(s);
}

/* lose_checkpoints -- writes a newer superblock slot with synced_offset at
 * the data start into every chunk, as if no checkpoint had ever been taken. */
static void lose_checkpoints(const struct bench *b)
{
    for (uint32_t id = 1; id <= b->chunks; id++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/chunk_1_%u.chunk", b->dir, id);
        int fd = open(path, O_RDWR);
        uint8_t head[2 * SPY_CHUNK_SLOT];
        struct spy_chunk_sb sb[2];
        if (fd < 0 || pread(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head)) {
            fprintf(stderr, "store_open: cannot read %s\n", path);
            exit(1);
        }
        int ok0 = spy_chunk_sb_decode(head, &sb[0]) == SPY_OK;
        int ok1 = spy_chunk_sb_decode(head + SPY_CHUNK_SLOT, &sb[1]) == SPY_OK;
        struct spy_chunk_sb next = sb[ok0 && ok1 ? sb[1].seq > sb[0].seq : ok1];
        next.seq++;
        next.synced_offset = SPY_CHUNK_DATA;
        uint8_t slot[SPY_CHUNK_SLOT];
        spy_chunk_sb_encode(&next, slot);
        if ((!ok0 && !ok1) ||
            pwrite(fd, slot, sizeof(slot), (off_t)((next.seq % 2) * SPY_CHUNK_SLOT)) !=
                (ssize_t)sizeof(slot)) {
            fprintf(stderr, "store_open: cannot rewrite the superblock of %s\n", path);
            exit(1);
        }
        close(fd);
    }
}

/* remove_chunks -- deletes what the bench created. */
static void remove_chunks(const struct bench *b)
{
    char path[4096];
    for (uint32_t id = 1; id <= b->chunks; id++) {
        snprintf(path, sizeof(path), "%s/chunk_1_%u.chunk", b->dir, id);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/LOCK", b->dir);
    unlink(path);
}

int main(int argc, char **argv)
{
    struct bench b = {0};
    struct spy_flag flags[] = {
        {"size", SPY_FLAG_SIZE, &b.size, "4G", 1 << 20, 1LL << 50, 0, "bytes of objects to store"},
        {"object", SPY_FLAG_SIZE, &b.object, "1M", 1, 1LL << 34, 0, "bytes per object"},
        {"chunk_size", SPY_FLAG_SIZE, &b.chunk_size, "1G", 1 << 20, 1LL << 40, 0,
         "bytes per chunk file"},
        {"keep", SPY_FLAG_BOOL, &b.keep, "0", 0, 0, 0, "leave the chunk files in place"},
    };
    size_t nflags = sizeof(flags) / sizeof(flags[0]);
    char err[256];
    int npos = 0;
    int rc = spy_flags_parse(flags, nflags, argc, argv, &npos, err, sizeof(err));
    if (rc == SPY_FLAGS_HELP || (rc == SPY_FLAGS_OK && npos != 1)) {
        spy_flags_usage(stdout, argv[0], "DIR: time spy_store_open on a filled data directory",
                        flags, nflags);
        return rc == SPY_FLAGS_HELP ? 0 : 2;
    }
    if (rc != SPY_FLAGS_OK) {
        fprintf(stderr, "store_open: %s\n", err);
        return 2;
    }
    b.dir = argv[1];
    /* Room for every record plus one spare chunk, so the fill never waits. */
    uint64_t per_chunk = b.chunk_size - SPY_CHUNK_DATA;
    uint64_t records = (b.size + b.object - 1) / b.object * spy_record_size(b.object);
    b.chunks = (uint32_t)(records / per_chunk + 2);
    spy_log_set_level(SPY_LOG_WARN);
    fill(&b);
    reopen(&b, "open_checkpointed");
    lose_checkpoints(&b);
    reopen(&b, "open_checkpoint_lost");
    reopen(&b, "open_after_recheckpoint");
    if (!b.keep)
        remove_chunks(&b);
    return 0;
}
