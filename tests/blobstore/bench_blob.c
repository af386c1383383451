/* bench_blob.c - concurrent uploads and downloads through the blobstore
 * against a local cluster (cluster.h), reporting throughput and the
 * process's peak RSS: the blobstore's share of the registry's memory budget
 * (imageserver peak RSS <= 64 MiB during 8 concurrent 512 MiB uploads).
 *
 *   bench_blob [uploads] [MiB each] [loops] [piece size in KiB]
 *
 * defaults: 8 uploads of 128 MiB on 2 loops (threads), 2048 KiB pieces.
 * Each loop thread runs its share of the uploads at once, feeding slices of
 * 16..256 KiB (the sizes the HTTP layer hands over) from one shared 1 MiB
 * source buffer, then reads every blob back and checks each byte's crc32c.
 * Needs the environment of cluster.h; size the chunkservers with
 * SPY_TEST_CHUNKS / SPY_TEST_CHUNK_SIZE (each server stores about
 * uploads x MiB / 2). Not a ctest: run it by hand. */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "blobstore/blobstore.h"
#include "common/crc32c.h"
#include "common/status.h"
#include "tests/blobstore/cluster.h"

#define SRC_SIZE (1u << 20)

struct upload {
    struct spy_blob_writer *w;
    const uint8_t *src;
    uint64_t len, off;
    size_t inflight;
    uint64_t rng;
    int done, status;
    struct spy_blob_piece *pieces;
    size_t npieces;
    /* read back */
    uint64_t got;
    uint32_t crc, want_crc;
    int read_done, read_status;
};

struct loop_job {
    struct spy_blob *bs;
    const uint8_t *src;
    struct upload *ups;
    size_t nups;
    uint64_t len;
    double write_s, read_s;
    int failed;
};

/* now_s: monotonic seconds. */
static double now_s(void)
{
    return (double)cluster_now_ms() / 1000.0;
}

/* rss_kib: the current resident set (from /proc/self/statm). */
static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* peak_rss_kib: the process's high-water resident set (getrusage). */
static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* orphan: never expected here: printed, so a run with orphans is visible. */
static void orphan(void *arg, uint32_t group_id, uint64_t fid)
{
    (void)arg;
    fprintf(stderr, "bench: orphan fid %llu in group %u\n", (unsigned long long)fid, group_id);
}

/* written: an upload finished; keeps its pieces for the read-back. */
static void written(void *arg, int status, const struct spy_blob_piece *p, size_t n)
{
    struct upload *u = arg;
    u->status = status;
    u->done = 1;
    if (status == SPY_OK) {
        u->pieces = malloc((n > 0 ? n : 1) * sizeof(*p));
        memcpy(u->pieces, p, n * sizeof(*p));
        u->npieces = n;
    }
}

static void feed(struct upload *u);

/* consumed: the slice is out: account its crc, feed the next. */
static void consumed(void *arg, int status)
{
    struct upload *u = arg;
    if (status != SPY_OK) {
        u->status = status;
        u->done = 1;
        spy_blob_write_abort(u->w);
        return;
    }
    u->want_crc = spy_crc32c(u->want_crc, u->src + u->off % SRC_SIZE, u->inflight);
    u->off += u->inflight;
    feed(u);
}

/* feed: the next slice, 16..256 KiB, never crossing the source's end. */
static void feed(struct upload *u)
{
    if (u->off == u->len) {
        spy_blob_write_finish(u->w, written);
        return;
    }
    u->rng ^= u->rng << 13, u->rng ^= u->rng >> 7, u->rng ^= u->rng << 17;
    size_t n = (16u << 10) + (size_t)(u->rng % (240u << 10));
    size_t to_end = SRC_SIZE - (size_t)(u->off % SRC_SIZE);
    if (n > to_end)
        n = to_end;
    if (n > u->len - u->off)
        n = (size_t)(u->len - u->off);
    u->inflight = n;
    spy_blob_write_data(u->w, u->src + u->off % SRC_SIZE, n, consumed);
}

/* sink: crc of what comes back, without keeping it. */
static int sink(void *arg, const uint8_t *data, size_t len)
{
    struct upload *u = arg;
    u->crc = spy_crc32c(u->crc, data, len);
    u->got += len;
    return SPY_BLOB_CONTINUE;
}

/* read_done: a read-back finished. */
static void read_done(void *arg, int status)
{
    struct upload *u = arg;
    u->read_status = status;
    u->read_done = 1;
}

/* all: 1 when every upload's flag at 'offset' is set. */
static int all(const struct loop_job *j, size_t offset)
{
    for (size_t i = 0; i < j->nups; i++)
        if (!*(const int *)((const char *)&j->ups[i] + offset))
            return 0;
    return 1;
}

static void *loop_main(void *arg)
{
    struct loop_job *j = arg;
    h2o_evloop_t *loop = h2o_evloop_create();
    struct spy_blob_loop *lp;
    spy_blob_loop_attach(j->bs, loop, &lp);
    static const struct spy_blob_write_handler h = {.on_orphan = orphan};
    double t0 = now_s();
    for (size_t i = 0; i < j->nups; i++) {
        struct upload *u = &j->ups[i];
        u->src = j->src;
        u->len = j->len;
        u->rng = 0x9E3779B97F4A7C15ull * (i + 1) + (uint64_t)(uintptr_t)j;
        spy_blob_write_begin(lp, &h, u, &u->w);
        feed(u);
    }
    while (!all(j, offsetof(struct upload, done)))
        h2o_evloop_run(loop, 100);
    double t1 = now_s();
    for (size_t i = 0; i < j->nups; i++) {
        struct upload *u = &j->ups[i];
        struct spy_blob_reader *r;
        if (u->status != SPY_OK ||
            spy_blob_read(lp, u->pieces, u->npieces, 0, u->len, sink, read_done, u, &r) != SPY_OK) {
            u->read_done = 1;
            u->read_status = u->status != SPY_OK ? u->status : SPY_EINVAL;
        }
    }
    while (!all(j, offsetof(struct upload, read_done)))
        h2o_evloop_run(loop, 100);
    double t2 = now_s();
    j->write_s = t1 - t0;
    j->read_s = t2 - t1;
    for (size_t i = 0; i < j->nups; i++) {
        struct upload *u = &j->ups[i];
        if (u->status != SPY_OK || u->read_status != SPY_OK || u->got != u->len ||
            u->crc != u->want_crc) {
            fprintf(stderr, "bench: upload failed: write %s, read %s, %llu bytes back\n",
                    spy_strerror(u->status), spy_strerror(u->read_status),
                    (unsigned long long)u->got);
            j->failed = 1;
        }
        free(u->pieces);
    }
    spy_blob_loop_detach(lp);
    h2o_evloop_run(loop, 0); /* h2o frees closed sockets on a later turn */
    h2o_evloop_destroy(loop);
    return NULL;
}

/* run_loops: starts one thread per loop with its share of the uploads and
 * waits for them; returns 1 if any upload or read-back failed. */
static int run_loops(struct spy_blob *bs, const uint8_t *src, size_t uploads, uint64_t mib,
                     size_t loops, double *write_s, double *read_s)
{
    struct loop_job *jobs = calloc(loops, sizeof(*jobs));
    struct upload *ups = calloc(uploads, sizeof(*ups));
    pthread_t *threads = calloc(loops, sizeof(*threads));
    for (size_t l = 0, at = 0; l < loops; l++) {
        size_t n = uploads / loops + (l < uploads % loops);
        jobs[l] =
            (struct loop_job){.bs = bs, .src = src, .ups = ups + at, .nups = n, .len = mib << 20};
        at += n;
        pthread_create(&threads[l], NULL, loop_main, &jobs[l]);
    }
    int failed = 0;
    *write_s = *read_s = 0;
    for (size_t l = 0; l < loops; l++) {
        pthread_join(threads[l], NULL);
        *write_s = jobs[l].write_s > *write_s ? jobs[l].write_s : *write_s;
        *read_s = jobs[l].read_s > *read_s ? jobs[l].read_s : *read_s;
        failed |= jobs[l].failed;
    }
    free(threads);
    free(ups);
    free(jobs);
    return failed;
}

int main(int argc, char **argv)
{
    size_t uploads = argc > 1 ? (size_t)atol(argv[1]) : 8;
    uint64_t mib = argc > 2 ? (uint64_t)atol(argv[2]) : 128;
    size_t loops = argc > 3 ? (size_t)atol(argv[3]) : 2;
    uint64_t piece_kib = argc > 4 ? (uint64_t)atol(argv[4]) : 2048;
    if (uploads == 0 || mib == 0 || loops == 0 || loops > uploads) {
        fprintf(stderr, "usage: bench_blob [uploads] [MiB each] [loops] [piece KiB]\n");
        return 2;
    }
    struct cluster c;
    if (cluster_start(&c) != 0)
        return 1;
    uint8_t *src = malloc(SRC_SIZE);
    for (size_t i = 0; i < SRC_SIZE; i++)
        src[i] = (uint8_t)(i * 2654435761u >> 13);
    struct spy_blob_config cfg;
    spy_blob_config_init(&cfg);
    cfg.master_port = c.master_port;
    cfg.piece_size = piece_kib << 10;
    struct spy_blob *bs;
    if (spy_blob_create(&cfg, &bs) != SPY_OK || spy_blob_wait_ready(bs, 10000) != SPY_OK) {
        cluster_stop(&c);
        return 1;
    }
    long base = rss_kib();
    double write_s, read_s;
    int failed = run_loops(bs, src, uploads, mib, loops, &write_s, &read_s);
    struct spy_blob_stats st;
    spy_blob_stats(bs, &st);
    double total_mib = (double)(uploads * mib);
    printf("%zu uploads x %llu MiB on %zu loops, %llu KiB pieces: write %.2f s (%.0f MiB/s to 2 "
           "replicas), read %.2f s (%.0f MiB/s)\n",
           uploads, (unsigned long long)mib, loops, (unsigned long long)piece_kib, write_s,
           total_mib / write_s, read_s, total_mib / read_s);
    printf("RSS: %ld KiB before the uploads, peak %ld KiB (+%ld KiB); %llu pieces, %llu "
           "connections opened, %llu reuses, %llu retries\n",
           base, peak_rss_kib(), peak_rss_kib() - base, (unsigned long long)st.pieces_written,
           (unsigned long long)st.conns_opened, (unsigned long long)st.conns_reused,
           (unsigned long long)st.piece_retries);
    fflush(stdout);
    spy_blob_destroy(bs);
    cluster_stop(&c);
    free(src);
    return failed ? 1 : 0;
}
