/* store.c - the storage engine (store.h): the data directory, recovery at
 * open, handing chunks to writers, puts, deletes, verified reads, stats.
 *
 * Locks: store->lock guards chunk hand-out and accounting (held, used,
 * garbage, the write counters); the index has its own rwlock; the syncer
 * its own mutex. No function holds two of them at once. */
#include "chunkserver/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chunkserver/chunk.h"
#include "chunkserver/index.h"
#include "chunkserver/record.h"
#include "chunkserver/syncer.h"
#include "common/clock.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "common/status.h"

#define CHECKPOINT_MS   5000 /* sync=0: how often the checkpoint moves */
#define READ_MAX_BLOCKS 256u /* blocks one spy_store_read call verifies at most */
#define MIN_CHUNK_SIZE  (64u << 10)

struct spy_store {
    char *dir;
    uint64_t chunk_size;
    int sync;
    uint32_t group_id;
    int wait_ms;
    int lock_fd; /* holds the flock on data_dir/LOCK */
    struct spy_chunk **chunks;
    uint32_t nchunks;
    struct spy_index *idx;
    struct spy_syncer *syncer;
    pthread_mutex_t lock;
    pthread_cond_t chunk_free; /* a chunk was released */
    uint32_t writes_active;
    uint32_t writes_pending;
    uint64_t recovered_truncated;
    double open_seconds;
};

struct spy_put {
    struct spy_store *store;
    struct spy_chunk *chunk;
    uint64_t fid;
    uint64_t max_len;
    uint64_t start; /* record offset: the chunk's tail when taken */
    uint64_t written;
    uint64_t timestamp;
    int error; /* sticky: the first append error */
    struct spy_record_sum sum;
    uint8_t *table;
};

/* now_seconds -- monotonic time, for open_seconds. */
static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* chunk_name -- the file name of chunk id of group. */
static void chunk_name(char *out, size_t len, uint32_t group_id, uint32_t id)
{
    snprintf(out, len, "chunk_%u_%u.chunk", group_id, id);
}

/* lock_dir -- creates data_dir if missing and takes an exclusive flock on
 * its LOCK file, so two servers never share a directory. */
static int lock_dir(struct spy_store *s, char *err, size_t errlen)
{
    if (mkdir(s->dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create data_dir %s: %s", s->dir, strerror(errno));
        return SPY_EIO;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/LOCK", s->dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return SPY_EIO;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "data_dir %s is in use by another server (%s is locked)", s->dir,
                 path);
        return errno == EWOULDBLOCK ? SPY_EBUSY : SPY_EIO;
    }
    return SPY_OK;
}

/* parse_chunk_name -- "chunk_<group>_<id>.chunk" in canonical decimal
 * (no sign, no leading zeros); 0 on success. */
static int parse_chunk_name(const char *name, uint32_t *group, uint32_t *id)
{
    unsigned long long g, c;
    int used = 0;
    if (sscanf(name, "chunk_%llu_%llu.chunk%n", &g, &c, &used) != 2 || name[used] != '\0' ||
        g > UINT32_MAX || c == 0 || c > SPY_INDEX_MAX_CHUNK)
        return -1;
    char canon[64];
    chunk_name(canon, sizeof(canon), (uint32_t)g, (uint32_t)c);
    if (strcmp(canon, name) != 0)
        return -1;
    *group = (uint32_t)g;
    *id = (uint32_t)c;
    return 0;
}

/* A growable list of the chunk ids found in data_dir. */
struct id_list {
    uint32_t *ids;
    uint32_t n, cap;
};

/* note_chunk_file -- checks one "chunk_*" name and appends its id. */
static int note_chunk_file(struct spy_store *s, const char *name, struct id_list *found, char *err,
                           size_t errlen)
{
    uint32_t group, id;
    if (parse_chunk_name(name, &group, &id) != 0) {
        snprintf(err, errlen, "data_dir %s holds %s, which is not a chunk file name", s->dir, name);
        return SPY_EINVAL;
    }
    if (group != s->group_id) {
        snprintf(err, errlen, "data_dir %s holds %s of group %u, but group_id is %u", s->dir, name,
                 group, s->group_id);
        return SPY_EINVAL;
    }
    if (found->n == found->cap) {
        uint32_t cap = found->cap ? 2 * found->cap : 64;
        uint32_t *ids = realloc(found->ids, cap * sizeof(*ids));
        if (ids == NULL) {
            snprintf(err, errlen, "out of memory listing data_dir %s", s->dir);
            return SPY_ENOMEM;
        }
        found->ids = ids;
        found->cap = cap;
    }
    found->ids[found->n++] = id;
    return SPY_OK;
}

/* cmp_id -- qsort order for chunk ids. */
static int cmp_id(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* check_sequence -- the sorted ids must be exactly 1..n (names are
 * canonical, so an id cannot appear twice). */
static int check_sequence(struct spy_store *s, struct id_list *found, char *err, size_t errlen)
{
    if (found->n > 0)
        qsort(found->ids, found->n, sizeof(uint32_t), cmp_id);
    for (uint32_t i = 0; i < found->n; i++) {
        if (found->ids[i] != i + 1) {
            char name[64];
            chunk_name(name, sizeof(name), s->group_id, i + 1);
            snprintf(err, errlen, "data_dir %s has chunks up to %u but %s is missing", s->dir,
                     found->ids[found->n - 1], name);
            return SPY_EINVAL;
        }
    }
    return SPY_OK;
}

/* remove_leftover -- a chunk file whose creation was cut short (see
 * spy_chunk_create): never opened, so it only wastes space. */
static void remove_leftover(struct spy_store *s, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", s->dir, name);
    if (unlink(path) == 0)
        spy_warn("removed %s, left by an interrupted chunk creation", path);
    else
        spy_warn("cannot remove %s: %s", path, strerror(errno));
}

/* find_chunks -- counts the chunk files in data_dir: *count = n if they are
 * exactly chunk 1..n of our group, 0 if there are none. Other files are
 * ignored; a foreign or missing chunk refuses. */
static int find_chunks(struct spy_store *s, uint32_t *count, char *err, size_t errlen)
{
    DIR *d = opendir(s->dir);
    if (d == NULL) {
        snprintf(err, errlen, "cannot list data_dir %s: %s", s->dir, strerror(errno));
        return SPY_EIO;
    }
    struct id_list found = {0};
    int rc = SPY_OK;
    struct dirent *e;
    while (rc == SPY_OK && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "chunk_", 6) == 0)
            rc = note_chunk_file(s, e->d_name, &found, err, errlen);
        else if (strncmp(e->d_name, ".creating-chunk_", 16) == 0)
            remove_leftover(s, e->d_name);
    }
    closedir(d);
    if (rc == SPY_OK)
        rc = check_sequence(s, &found, err, errlen);
    *count = found.n;
    free(found.ids);
    return rc;
}

/* sync_dir -- makes the directory entries of new chunk files durable. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* create_chunks -- a fresh data_dir: n preallocated chunk files. */
static int create_chunks(struct spy_store *s, uint32_t n, char *err, size_t errlen)
{
    for (uint32_t id = 1; id <= n; id++) {
        char name[64];
        chunk_name(name, sizeof(name), s->group_id, id);
        int rc = spy_chunk_create(s->dir, name, s->group_id, id, s->chunk_size, err, errlen);
        if (rc != SPY_OK)
            return rc;
    }
    if (sync_dir(s->dir) != 0) {
        snprintf(err, errlen, "cannot fsync data_dir %s: %s", s->dir, strerror(errno));
        return SPY_EIO;
    }
    spy_info("created %u chunk files of %llu bytes in %s", n, (unsigned long long)s->chunk_size,
             s->dir);
    return SPY_OK;
}

/* open_chunks -- opens chunk 1..n and reads their superblocks. */
static int open_chunks(struct spy_store *s, uint32_t n, char *err, size_t errlen)
{
    s->chunks = calloc(n, sizeof(*s->chunks));
    if (s->chunks == NULL) {
        snprintf(err, errlen, "out of memory for %u chunks", n);
        return SPY_ENOMEM;
    }
    for (uint32_t id = 1; id <= n; id++) {
        char name[64];
        chunk_name(name, sizeof(name), s->group_id, id);
        int rc = spy_chunk_open(s->dir, name, s->group_id, id, s->chunk_size, &s->chunks[id - 1],
                                err, errlen);
        if (rc != SPY_OK)
            return rc;
        s->nchunks = id;
    }
    return SPY_OK;
}

/* recover_put -- a PUT record: LIVE unless its fid is already known (a
 * tombstone seen first, or a duplicate that should never exist). */
static int recover_put(struct spy_store *s, struct spy_chunk *c, const struct spy_record_hdr *h)
{
    uint64_t size = spy_record_size(h->body_len);
    struct spy_index_entry was;
    struct spy_index_entry e = {
        .fid = h->fid,
        .offset = h->offset,
        .body_len = h->body_len,
        .timestamp = (uint32_t)h->timestamp,
        .chunk_id = c->id,
    };
    int rc = spy_index_load_put(s->idx, &e, &was);
    if (rc == SPY_OK) {
        c->used += size;
        return SPY_OK;
    }
    if (rc != SPY_EEXISTS)
        return rc;
    if (was.state == SPY_INDEX_LIVE)
        spy_warn("%s: fid %llu at offset %llu is a duplicate of chunk %u offset %llu; the "
                 "first copy is kept",
                 c->name, (unsigned long long)h->fid, (unsigned long long)h->offset, was.chunk_id,
                 (unsigned long long)was.offset);
    c->garbage += size;
    return SPY_OK;
}

/* recover_record -- spy_chunk_scan callback: indexes one valid record and
 * rebuilds the space accounting. A tombstone turns its object's record,
 * wherever it is, into garbage. */
static int recover_record(void *ctx, struct spy_chunk *c, const struct spy_record_hdr *h)
{
    struct spy_store *s = ctx;
    if (h->type == SPY_RECORD_PUT)
        return recover_put(s, c, h);
    struct spy_index_entry was;
    int rc = spy_index_load_del(s->idx, h->fid, &was);
    if (rc != SPY_OK)
        return rc;
    c->garbage += spy_record_size(0);
    if (was.state == SPY_INDEX_LIVE) {
        struct spy_chunk *owner = s->chunks[was.chunk_id - 1];
        owner->used -= spy_record_size(was.body_len);
        owner->garbage += spy_record_size(was.body_len);
    }
    return SPY_OK;
}

/* recover -- scans every chunk in id order, filling the index. */
static int recover(struct spy_store *s, char *err, size_t errlen)
{
    s->idx = spy_index_create(0);
    if (s->idx == NULL) {
        snprintf(err, errlen, "out of memory for the index");
        return SPY_ENOMEM;
    }
    for (uint32_t i = 0; i < s->nchunks; i++) {
        struct spy_chunk_scan scan;
        int rc = spy_chunk_scan(s->chunks[i], recover_record, s, &scan);
        if (rc != SPY_OK) {
            snprintf(err, errlen, "%s: recovery failed: %s", s->chunks[i]->name, spy_strerror(rc));
            return rc;
        }
        s->recovered_truncated += scan.cut_bytes;
        s->chunks[i]->garbage += scan.skipped_bytes;
    }
    return SPY_OK;
}

/* check_config -- refuses settings no chunk layout can satisfy. */
static int check_config(const struct spy_store_config *cfg, char *err, size_t errlen)
{
    if (cfg->data_dir == NULL || cfg->data_dir[0] == '\0') {
        snprintf(err, errlen, "data_dir is not set");
        return SPY_EINVAL;
    }
    if (cfg->chunk_size < MIN_CHUNK_SIZE || cfg->chunk_size % 4096 != 0) {
        snprintf(err, errlen, "chunk_size %llu must be a multiple of 4096 and at least %u",
                 (unsigned long long)cfg->chunk_size, MIN_CHUNK_SIZE);
        return SPY_EINVAL;
    }
    return SPY_OK;
}

/* open_dir -- lock, find or create the chunks, open and recover them. */
static int open_dir(struct spy_store *s, const struct spy_store_config *cfg, char *err,
                    size_t errlen)
{
    uint32_t n = 0;
    int rc = lock_dir(s, err, errlen);
    if (rc == SPY_OK)
        rc = find_chunks(s, &n, err, errlen);
    if (rc == SPY_OK && n == 0) {
        if (cfg->chunks == 0 || cfg->chunks > SPY_INDEX_MAX_CHUNK) {
            snprintf(err, errlen, "chunks must be between 1 and %u", SPY_INDEX_MAX_CHUNK);
            return SPY_EINVAL;
        }
        n = cfg->chunks;
        rc = create_chunks(s, n, err, errlen);
    }
    if (rc == SPY_OK)
        rc = open_chunks(s, n, err, errlen);
    if (rc == SPY_OK)
        rc = recover(s, err, errlen);
    if (rc == SPY_OK)
        rc = spy_syncer_start(s->chunks, s->nchunks, CHECKPOINT_MS, &s->syncer);
    if (rc != SPY_OK && err[0] == '\0')
        snprintf(err, errlen, "cannot start the store: %s", spy_strerror(rc));
    return rc;
}

/* store_free -- releases whatever open_dir got to; the syncer is stopped. */
static void store_free(struct spy_store *s)
{
    spy_index_destroy(s->idx);
    for (uint32_t i = 0; i < s->nchunks; i++)
        spy_chunk_close(s->chunks[i]);
    free(s->chunks);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_cond_destroy(&s->chunk_free);
    pthread_mutex_destroy(&s->lock);
    free(s->dir);
    free(s);
}

/* log_opened -- the one summary line of an open. */
static void log_opened(struct spy_store *s)
{
    uint64_t live, deleted;
    uint32_t damaged = 0;
    spy_index_counts(s->idx, &live, &deleted);
    for (uint32_t i = 0; i < s->nchunks; i++)
        damaged += (uint32_t)atomic_load(&s->chunks[i]->damaged);
    spy_info("store %s: %u chunks (%u damaged), %llu objects, %llu deleted, %llu torn bytes "
             "cut, opened in %.3f s",
             s->dir, s->nchunks, damaged, (unsigned long long)live, (unsigned long long)deleted,
             (unsigned long long)s->recovered_truncated, s->open_seconds);
}

/* spy_store_open -- see store.h. */
int spy_store_open(const struct spy_store_config *cfg, struct spy_store **out, char *err,
                   size_t errlen)
{
    double t0 = now_seconds();
    if (errlen > 0)
        err[0] = '\0';
    int rc = check_config(cfg, err, errlen);
    if (rc != SPY_OK)
        return rc;
    struct spy_store *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->dir = strdup(cfg->data_dir)) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return SPY_ENOMEM;
    }
    s->chunk_size = cfg->chunk_size;
    s->sync = cfg->sync;
    s->group_id = cfg->group_id;
    s->wait_ms = cfg->wait_ms;
    s->lock_fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    spy_cond_init_monotonic(&s->chunk_free);
    rc = open_dir(s, cfg, err, errlen);
    if (rc != SPY_OK) {
        store_free(s);
        return rc;
    }
    s->open_seconds = now_seconds() - t0;
    log_opened(s);
    *out = s;
    return SPY_OK;
}

/* spy_store_close -- the last checkpoint runs inside spy_syncer_stop. */
void spy_store_close(struct spy_store *store)
{
    if (store == NULL)
        return;
    spy_syncer_stop(store->syncer);
    store_free(store);
}

/* spy_store_syncer -- declared in syncer.h, for tests and tools. */
struct spy_syncer *spy_store_syncer(struct spy_store *store)
{
    return store->syncer;
}

/* pick_chunk -- under lock: the fullest free, writable chunk with room for
 * need. Returns it, or NULL with *why = SPY_EBUSY (some could hold it once
 * released), SPY_ENOSPC (none ever could) or SPY_EREADONLY (all damaged). */
static struct spy_chunk *pick_chunk(struct spy_store *s, uint64_t need, int *why)
{
    struct spy_chunk *best = NULL;
    uint64_t best_room = 0;
    int writable = 0, could = 0;
    for (uint32_t i = 0; i < s->nchunks; i++) {
        struct spy_chunk *c = s->chunks[i];
        if (atomic_load(&c->damaged))
            continue;
        writable = 1;
        uint64_t room = c->size - atomic_load(&c->tail);
        if (room < need)
            continue;
        could = 1;
        if (!c->held && (best == NULL || room < best_room)) {
            best = c;
            best_room = room;
        }
    }
    *why = !writable ? SPY_EREADONLY : could ? SPY_EBUSY : SPY_ENOSPC;
    return best;
}

/* take_chunk -- hands a chunk with room for need bytes to one writer,
 * waiting up to wait_ms (counted in writes_pending) while all that fit are
 * held. Appends need no lock after this: the holder is the only writer. */
static int take_chunk(struct spy_store *s, uint64_t need, struct spy_chunk **out)
{
    int wait_ms = s->wait_ms > 0 ? s->wait_ms : 0;
    struct timespec deadline = spy_clock_deadline(wait_ms);
    int rc, pending = 0, timed_out = wait_ms == 0;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        *out = pick_chunk(s, need, &rc);
        if (*out != NULL || rc != SPY_EBUSY || timed_out)
            break;
        if (!pending)
            s->writes_pending++;
        pending = 1;
        timed_out = pthread_cond_timedwait(&s->chunk_free, &s->lock, &deadline) == ETIMEDOUT;
    }
    if (pending)
        s->writes_pending--;
    if (*out != NULL) {
        (*out)->held = 1;
        s->writes_active++;
        rc = SPY_OK;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* release_chunk -- gives the chunk back; new_tail > its tail publishes the
 * holder's committed record. Wakes every waiter: their needs differ. */
static void release_chunk(struct spy_store *s, struct spy_chunk *c, uint64_t new_tail)
{
    pthread_mutex_lock(&s->lock);
    if (new_tail > atomic_load(&c->tail))
        atomic_store(&c->tail, new_tail);
    c->held = 0;
    s->writes_active--;
    pthread_cond_broadcast(&s->chunk_free);
    pthread_mutex_unlock(&s->lock);
}

/* account -- adds record bytes to a chunk's used and garbage counters. */
static void account(struct spy_store *s, struct spy_chunk *c, int64_t used, int64_t garbage)
{
    pthread_mutex_lock(&s->lock);
    c->used += (uint64_t)used;
    c->garbage += (uint64_t)garbage;
    pthread_mutex_unlock(&s->lock);
}

/* make_durable -- sync=1: waits for the group commit covering [.., end).
 * On failure the record's header is zeroed (it lies beyond every checkpoint,
 * see spy_syncer_wait) so a restart does not resurrect what was refused. */
static int make_durable(struct spy_store *s, struct spy_chunk *c, uint64_t start, uint64_t end)
{
    if (!s->sync)
        return SPY_OK;
    int rc = spy_syncer_wait(s->syncer, c, end);
    if (rc != SPY_OK) {
        static const uint8_t zeros[SPY_RECORD_HDR];
        if (spy_chunk_write(c, zeros, sizeof(zeros), start) != SPY_OK)
            spy_error("%s: the refused record at %llu may reappear after a restart", c->name,
                      (unsigned long long)start);
    }
    return rc;
}

/* spy_store_put_begin -- reserve the fid first, so a second put of it is
 * refused at once even while this one waits for a chunk. */
int spy_store_put_begin(struct spy_store *store, uint64_t fid, uint64_t max_len,
                        struct spy_put **out)
{
    uint64_t need = spy_record_size(max_len);
    if (need > store->chunk_size - SPY_CHUNK_DATA)
        return SPY_ENOSPC;
    int rc = spy_index_reserve(store->idx, fid);
    if (rc != SPY_OK)
        return rc;
    struct spy_put *p = calloc(1, sizeof(*p));
    uint64_t table_len = spy_record_table_bytes(max_len);
    uint8_t *table = malloc(table_len ? table_len : 1);
    rc = (p == NULL || table == NULL) ? SPY_ENOMEM : take_chunk(store, need, &p->chunk);
    if (rc != SPY_OK) {
        spy_index_release(store->idx, fid);
        free(table);
        free(p);
        return rc;
    }
    p->store = store;
    p->fid = fid;
    p->max_len = max_len;
    p->start = atomic_load(&p->chunk->tail);
    p->timestamp = (uint64_t)time(NULL);
    p->table = table;
    spy_record_sum_init(&p->sum, table);
    *out = p;
    return SPY_OK;
}

/* spy_store_put_append -- writes in place in the chunk, after the header's
 * room; the crcs are summed from the caller's bytes as they go out. */
int spy_store_put_append(struct spy_put *put, const void *buf, size_t len)
{
    if (put->error != SPY_OK)
        return put->error;
    if (len > put->max_len - put->written) {
        put->error = SPY_ERANGE;
        return SPY_ERANGE;
    }
    int rc = spy_chunk_write(put->chunk, buf, len, put->start + SPY_RECORD_HDR + put->written);
    if (rc != SPY_OK) {
        put->error = rc;
        return rc;
    }
    spy_record_sum_update(&put->sum, buf, len);
    put->written += len;
    return SPY_OK;
}

/* put_free -- frees a finished put. */
static void put_free(struct spy_put *put)
{
    free(put->table);
    free(put);
}

/* spy_store_put_abort -- the tail did not move, so the partial bytes are
 * simply overwritten by the chunk's next record. */
void spy_store_put_abort(struct spy_put *put)
{
    if (put == NULL)
        return;
    release_chunk(put->store, put->chunk, 0);
    spy_index_release(put->store->idx, put->fid);
    put_free(put);
}

/* write_trailer_and_header -- the table, then the header last: a crash in
 * between leaves an invalid header, never a valid one over missing bytes. */
static int write_trailer_and_header(struct spy_put *put)
{
    spy_record_sum_finish(&put->sum);
    uint64_t table_len = spy_record_table_bytes(put->written);
    int rc = spy_chunk_write(put->chunk, put->table, (size_t)table_len,
                             put->start + SPY_RECORD_HDR + put->written);
    if (rc != SPY_OK)
        return rc;
    struct spy_record_hdr h = {
        .type = SPY_RECORD_PUT,
        .fid = put->fid,
        .body_len = put->written,
        .offset = put->start,
        .timestamp = put->timestamp,
    };
    uint8_t hdr[SPY_RECORD_HDR];
    spy_record_encode(&h, put->chunk->salt, put->table, hdr);
    return spy_chunk_write(put->chunk, hdr, sizeof(hdr), put->start);
}

/* spy_store_put_commit -- check, write, publish the tail, release the
 * chunk (so the next writer can append while we wait for the group
 * commit), then index. */
int spy_store_put_commit(struct spy_put *put, uint32_t expect_crc)
{
    struct spy_store *s = put->store;
    struct spy_chunk *c = put->chunk;
    int rc = put->error;
    if (rc == SPY_OK && put->sum.body_crc != expect_crc) {
        spy_warn("fid %llu: body crc32c %08x but the client sent %08x",
                 (unsigned long long)put->fid, put->sum.body_crc, expect_crc);
        rc = SPY_ECHECKSUM;
    }
    if (rc == SPY_OK)
        rc = write_trailer_and_header(put);
    if (rc != SPY_OK) {
        spy_store_put_abort(put);
        return rc;
    }
    uint64_t size = spy_record_size(put->written);
    release_chunk(s, c, put->start + size);
    rc = make_durable(s, c, put->start, put->start + size);
    if (rc == SPY_OK) {
        struct spy_index_entry e = {
            .fid = put->fid,
            .offset = put->start,
            .body_len = put->written,
            .timestamp = (uint32_t)put->timestamp,
            .chunk_id = c->id,
        };
        spy_index_commit(s->idx, &e);
        account(s, c, (int64_t)size, 0);
    } else {
        spy_index_release(s->idx, put->fid);
        account(s, c, 0, (int64_t)size);
    }
    put_free(put);
    return rc;
}

/* write_tombstone -- appends a DEL record for fid; *chunk and *start say
 * where (the chunk is released, its tail past the record). */
static int write_tombstone(struct spy_store *s, uint64_t fid, struct spy_chunk **chunk,
                           uint64_t *start)
{
    struct spy_chunk *c;
    int rc = take_chunk(s, spy_record_size(0), &c);
    if (rc != SPY_OK)
        return rc;
    struct spy_record_hdr h = {
        .type = SPY_RECORD_DEL,
        .fid = fid,
        .offset = atomic_load(&c->tail),
        .timestamp = (uint64_t)time(NULL),
    };
    uint8_t hdr[SPY_RECORD_HDR];
    spy_record_encode(&h, c->salt, NULL, hdr);
    rc = spy_chunk_write(c, hdr, sizeof(hdr), h.offset);
    release_chunk(s, c, rc == SPY_OK ? h.offset + spy_record_size(0) : 0);
    *chunk = c;
    *start = h.offset;
    return rc;
}

/* spy_store_delete -- tombstone first (durable like a put), then the index.
 * Two concurrent deletes of one fid both write a tombstone; the second to
 * finish finds it DELETED and only accounts its own tombstone. */
int spy_store_delete(struct spy_store *store, uint64_t fid)
{
    struct spy_index_entry e;
    if (spy_index_lookup(store->idx, fid, &e) != SPY_OK || e.state != SPY_INDEX_LIVE)
        return SPY_ENOTFOUND;
    struct spy_chunk *c;
    uint64_t start;
    int rc = write_tombstone(store, fid, &c, &start);
    if (rc != SPY_OK)
        return rc;
    account(store, c, 0, (int64_t)spy_record_size(0));
    rc = make_durable(store, c, start, start + spy_record_size(0));
    if (rc != SPY_OK)
        return rc;
    if (spy_index_delete(store->idx, fid, &e) == SPY_OK) {
        int64_t size = (int64_t)spy_record_size(e.body_len);
        account(store, store->chunks[e.chunk_id - 1], -size, size);
    }
    return SPY_OK;
}

/* spy_store_stat -- LIVE entries only: PENDING and DELETED are not found. */
int spy_store_stat(struct spy_store *store, uint64_t fid, struct spy_object_info *info)
{
    struct spy_index_entry e;
    if (spy_index_lookup(store->idx, fid, &e) != SPY_OK || e.state != SPY_INDEX_LIVE)
        return SPY_ENOTFOUND;
    info->fid = e.fid;
    info->len = e.body_len;
    info->chunk_id = e.chunk_id;
    info->offset = e.offset;
    info->timestamp = e.timestamp;
    return SPY_OK;
}

/* check_header -- the fields of the record's header must name exactly the
 * object in info; 'hdr' is its 48 bytes, decoded into *h. */
static int check_header(struct spy_chunk *c, const struct spy_object_info *info, const uint8_t *hdr,
                        struct spy_record_hdr *h)
{
    if (spy_record_decode(hdr, info->offset, c->size, h) != SPY_OK || h->type != SPY_RECORD_PUT ||
        h->fid != info->fid || h->body_len != info->len)
        return SPY_ECORRUPT;
    return SPY_OK;
}

/* verify_blocks -- checks blocks [b0, b0 + k) held at buf against their
 * table entries. Returns how many leading blocks are good; logs the first
 * bad one. */
static uint64_t verify_blocks(struct spy_chunk *c, const struct spy_object_info *info,
                              const uint8_t *buf, uint64_t b0, uint64_t k, const uint32_t *crcs)
{
    for (uint64_t i = 0; i < k; i++) {
        uint64_t first = (b0 + i) * SPY_STORE_BLOCK;
        uint64_t blen = info->len - first < SPY_STORE_BLOCK ? info->len - first : SPY_STORE_BLOCK;
        if (spy_crc32c(0, buf + i * SPY_STORE_BLOCK, blen) != crcs[i]) {
            spy_error("%s: fid %llu block %llu (record at %llu) fails its checksum", c->name,
                      (unsigned long long)info->fid, (unsigned long long)(b0 + i),
                      (unsigned long long)info->offset);
            return i;
        }
    }
    return k;
}

/* serve -- fills *out with the verified bytes from off (at most len), given
 * that 'good' blocks starting at block b0 passed (held at 'blocks', their
 * table crcs in crcs). The crc of a block served whole is its table entry;
 * only a block cut by off or len is summed again. */
static int serve(const struct spy_object_info *info, uint64_t off, uint64_t len,
                 const uint8_t *blocks, uint64_t b0, uint64_t good, const uint32_t *crcs,
                 struct spy_store_slice *out)
{
    if (good == 0)
        return SPY_ECORRUPT;
    uint64_t first = b0 * SPY_STORE_BLOCK;
    uint64_t end = first + good * SPY_STORE_BLOCK;
    if (end > info->len)
        end = info->len;
    if (end - off > len)
        end = off + len;
    uint32_t crc = 0;
    for (uint64_t i = 0; i < good; i++) {
        uint64_t bstart = first + i * SPY_STORE_BLOCK;
        uint64_t bend = bstart + SPY_STORE_BLOCK < info->len ? bstart + SPY_STORE_BLOCK : info->len;
        uint64_t s = bstart > off ? bstart : off, e = bend < end ? bend : end;
        if (s >= e)
            break;
        uint32_t part = s == bstart && e == bend
                            ? crcs[i]
                            : spy_crc32c(0, blocks + (s - first), (size_t)(e - s));
        crc = spy_crc32c_combine(crc, part, e - s);
    }
    out->data = blocks + (off - first);
    out->n = (size_t)(end - off);
    out->crc = crc;
    return SPY_OK;
}

/* read_whole -- a record that fits in buf: one pread, then every check on
 * the bytes in memory. */
static int read_whole(struct spy_chunk *c, const struct spy_object_info *info, uint64_t off,
                      uint64_t len, uint8_t *buf, struct spy_store_slice *out)
{
    uint64_t nb = spy_record_blocks(info->len);
    int rc = spy_chunk_read(c, buf, (size_t)spy_record_extent(info->len), info->offset);
    if (rc != SPY_OK)
        return rc;
    const uint8_t *table = buf + SPY_RECORD_HDR + info->len;
    struct spy_record_hdr h;
    if (check_header(c, info, buf, &h) != SPY_OK ||
        spy_record_verify(c->salt, buf, table, (size_t)(4 * nb)) != SPY_OK) {
        spy_error("%s: fid %llu: record header at %llu fails its checks", c->name,
                  (unsigned long long)info->fid, (unsigned long long)info->offset);
        return SPY_ECORRUPT;
    }
    uint64_t b0 = off / SPY_STORE_BLOCK, k = nb - b0;
    uint32_t crcs[READ_MAX_BLOCKS];
    if (k > READ_MAX_BLOCKS)
        k = READ_MAX_BLOCKS;
    for (uint64_t i = 0; i < k; i++)
        crcs[i] = spy_record_table_get(table, b0 + i);
    const uint8_t *blocks = buf + SPY_RECORD_HDR + b0 * SPY_STORE_BLOCK;
    uint64_t good = verify_blocks(c, info, blocks, b0, k, crcs);
    return serve(info, off, len, blocks, b0, good, crcs, out);
}

/* read_table -- reads the header and streams the whole table through a
 * small buffer to check the header crc, keeping entries [b0, b0 + k). */
static int read_table(struct spy_chunk *c, const struct spy_object_info *info, uint64_t b0,
                      uint64_t k, uint32_t *crcs)
{
    uint8_t hdr[SPY_RECORD_HDR], piece[4096];
    int rc = spy_chunk_read(c, hdr, sizeof(hdr), info->offset);
    if (rc != SPY_OK)
        return rc;
    struct spy_record_hdr h;
    if (check_header(c, info, hdr, &h) != SPY_OK)
        return SPY_ECORRUPT;
    uint64_t nb = spy_record_blocks(info->len);
    uint64_t pos = info->offset + SPY_RECORD_HDR + info->len;
    uint32_t crc = spy_record_crc(c->salt, hdr, NULL, 0);
    for (uint64_t i = 0; i < nb;) {
        uint64_t m = nb - i < sizeof(piece) / 4 ? nb - i : sizeof(piece) / 4;
        rc = spy_chunk_read(c, piece, (size_t)(4 * m), pos + 4 * i);
        if (rc != SPY_OK)
            return rc;
        crc = spy_crc32c(crc, piece, (size_t)(4 * m));
        for (uint64_t j = 0; j < m; j++)
            if (i + j >= b0 && i + j < b0 + k)
                crcs[i + j - b0] = spy_record_table_get(piece, j);
        i += m;
    }
    return crc == h.crc ? SPY_OK : SPY_ECORRUPT;
}

/* read_blocks -- a record larger than buf: as many whole blocks from off's
 * block on as fit (at most READ_MAX_BLOCKS), after the header check. */
static int read_blocks(struct spy_chunk *c, const struct spy_object_info *info, uint64_t off,
                       uint64_t len, uint8_t *buf, size_t cap, struct spy_store_slice *out)
{
    uint64_t nb = spy_record_blocks(info->len);
    uint64_t b0 = off / SPY_STORE_BLOCK, k = cap / SPY_STORE_BLOCK;
    if (k > nb - b0)
        k = nb - b0;
    if (k > READ_MAX_BLOCKS)
        k = READ_MAX_BLOCKS;
    uint32_t crcs[READ_MAX_BLOCKS];
    int rc = read_table(c, info, b0, k, crcs);
    if (rc == SPY_ECORRUPT)
        spy_error("%s: fid %llu: record header at %llu fails its checks", c->name,
                  (unsigned long long)info->fid, (unsigned long long)info->offset);
    if (rc != SPY_OK)
        return rc;
    uint64_t first = b0 * SPY_STORE_BLOCK;
    uint64_t bytes =
        info->len - first < k * SPY_STORE_BLOCK ? info->len - first : k * SPY_STORE_BLOCK;
    rc = spy_chunk_read(c, buf, (size_t)bytes, info->offset + SPY_RECORD_HDR + first);
    if (rc != SPY_OK)
        return rc;
    uint64_t good = verify_blocks(c, info, buf, b0, k, crcs);
    return serve(info, off, len, buf, b0, good, crcs, out);
}

/* spy_store_read -- see store.h. Data never moves once committed, so no
 * lock is needed against writers appending to the same chunk. */
int spy_store_read(struct spy_store *store, const struct spy_object_info *info, uint64_t off,
                   uint64_t len, uint8_t *buf, size_t cap, struct spy_store_slice *out)
{
    if (info == NULL || buf == NULL || out == NULL || len == 0 || cap < 2 * SPY_STORE_BLOCK ||
        info->chunk_id == 0 || info->chunk_id > store->nchunks)
        return SPY_EINVAL;
    if (off >= info->len)
        return SPY_ERANGE;
    struct spy_chunk *c = store->chunks[info->chunk_id - 1];
    if (c->no_superblock || info->offset < SPY_CHUNK_DATA || info->offset > c->size ||
        spy_record_size(info->len) > c->size - info->offset)
        return SPY_EINVAL;
    if (spy_record_extent(info->len) <= cap)
        return read_whole(c, info, off, len, buf, out);
    return read_blocks(c, info, off, len, buf, cap, out);
}

/* spy_store_get_stats -- a consistent snapshot under the store lock. */
void spy_store_get_stats(struct spy_store *store, struct spy_store_stats *st)
{
    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&store->lock);
    for (uint32_t i = 0; i < store->nchunks; i++) {
        struct spy_chunk *c = store->chunks[i];
        st->used += c->used;
        st->garbage += c->garbage;
        if (atomic_load(&c->damaged)) {
            st->chunks_damaged++;
            continue;
        }
        uint64_t room = c->size - atomic_load(&c->tail);
        st->total_free += room;
        if (room >= spy_record_size(0) && spy_record_max_body(room) > st->max_free)
            st->max_free = spy_record_max_body(room);
    }
    st->chunks = store->nchunks;
    st->writes_active = store->writes_active;
    st->writes_pending = store->writes_pending;
    pthread_mutex_unlock(&store->lock);
    spy_index_counts(store->idx, &st->objects, &st->deleted);
    st->recovered_truncated = store->recovered_truncated;
    st->open_seconds = store->open_seconds;
}
