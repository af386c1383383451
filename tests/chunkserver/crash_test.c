/* crash_test.c - kill -9 spy_server while puts are in flight, restart it on
 * the same data dir, and check that nothing acknowledged was lost.
 *
 * In the style of WiredTiger's test/csuite/random_abort. Writer threads, each
 * with its own connection, put objects whose size and bytes are functions of
 * the fid (so the checker regenerates them), stream some in uneven slices,
 * abort a few and delete a few. A fid is recorded only after the server
 * acknowledged the operation. After a random delay, or a random share of the
 * round's byte budget, the server gets SIGKILL. After the restart:
 *   - every acknowledged put reads back byte-exact and stat gives its length;
 *   - every acknowledged delete or abort is ENOTFOUND, and a deleted fid
 *     refuses a new put (EEXISTS);
 *   - every put or delete in flight at the kill is either whole or ENOTFOUND,
 *     never corrupt, never another error.
 * What the in-flight fids turned out to be is carried into the next rounds,
 * which check everything known so far again on the same data dir.
 *
 * usage: crash_test --server=PATH --sync=0|1 [--rounds=5] [--writers=6] ...
 * The byte budget (--round_bytes, 128 MiB) bounds the data dir; on a machine
 * where puts run at ~1 GB/s it, not the 0.5-2 s delay, picks the kill point.
 * Prints one summary line per round; any violation fails the test. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/flags.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/spy_client.h"
#include "common/status.h"

#define MAX_OBJECT      (3u << 20) /* largest object a writer puts */
#define IO_TIMEOUT_MS   15000      /* per socket operation */
#define READY_TIMEOUT_S 60.0       /* spy_server start-up, recovery included */
#define MAX_REPORTED    20         /* violations printed per round; all are counted */
#define EEXISTS_CHECKS  4          /* deleted fids re-put per round */

/* ---- settings ---------------------------------------------------------- */

struct crash_config {
    const char *server; /* spy_server binary */
    long long sync, rounds, writers, chunks, seed;
    int keep;
    uint64_t chunk_size;
    uint64_t round_bytes; /* bytes of puts started per round, at most */
};

static struct crash_config config;

/* ---- small helpers ----------------------------------------------------- */

/* now_s: monotonic seconds, for delays and the summary only (never for
 * deciding whether the test passed). */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* mix64: the splitmix64 finaliser; every random choice and byte derives from it. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* next_rand: a per-thread generator (state owned by the caller). */
static uint64_t next_rand(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ull;
    return mix64(*state);
}

/* object_size: the body length of fid, from 1 B to MAX_OBJECT, biased to
 * the edges the store cares about: tiny bodies, whole 64 KiB blocks, one
 * byte either side of a block, and whole 1 MiB frames. */
static size_t object_size(uint64_t fid)
{
    uint64_t h = mix64(fid ^ 0x5a5a5a5a5a5a5a5aull);
    uint64_t kind = h % 100, r = h >> 8;
    size_t size;
    if (kind < 30) {
        size = 1 + r % 4096;
    } else if (kind < 45) {
        size = (1 + r % 48) * 65536u;
    } else if (kind < 55) {
        size = (1 + r % 47) * 65536u + ((r >> 16) & 1 ? 1 : (size_t)-1);
    } else if (kind < 60) {
        size = (size_t)SPY_DATA_MAX * (1 + r % 2) + (r >> 16) % 3 - 1;
    } else {
        unsigned exp = (unsigned)(r % 22);
        size = ((size_t)1 << exp) + (size_t)((r >> 8) % ((uint64_t)1 << exp));
    }
    return size > MAX_OBJECT ? MAX_OBJECT : size;
}

/* fill_expected: writes bytes [off, off + n) of fid's body into buf. Byte i
 * is byte i % 8 of mix64(seed + i / 8), so any slice can be made alone. */
static void fill_expected(uint64_t fid, uint64_t off, uint8_t *buf, size_t n)
{
    uint64_t seed = mix64(fid * 0xd6e8feb86659fd93ull);
    while (n > 0) {
        uint64_t word = mix64(seed + off / 8);
        size_t skip = off % 8;
        if (skip == 0 && n >= 8) {
            memcpy(buf, &word, 8);
            buf += 8, off += 8, n -= 8;
            continue;
        }
        size_t take = 8 - skip < n ? 8 - skip : n;
        memcpy(buf, (uint8_t *)&word + skip, take);
        buf += take, off += take, n -= take;
    }
}

/* xrealloc: test memory policy: out of memory ends the test run at once. */
static void *xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size);
    if (q == NULL) {
        fprintf(stderr, "crash_test: out of memory (%zu bytes)\n", size);
        abort();
    }
    return q;
}

/* ---- fid sets (owned by one thread at a time) -------------------------- */

struct fidset {
    uint64_t *v;
    size_t n, cap;
};

static void fidset_add(struct fidset *s, uint64_t fid)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = fid;
}

/* fidset_remove: removes fid if present (order is not kept); 1 if it was. */
static int fidset_remove(struct fidset *s, uint64_t fid)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i] == fid) {
            s->v[i] = s->v[--s->n];
            return 1;
        }
    }
    return 0;
}

static int fidset_has(const struct fidset *s, uint64_t fid)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i] == fid)
            return 1;
    return 0;
}

static void fidset_free(struct fidset *s)
{
    free(s->v);
    memset(s, 0, sizeof(*s));
}

/* ---- the spy_server process --------------------------------------------- */

struct server {
    char root[64]; /* mkdtemp directory: data/, error.log, server.out */
    char data_dir[128], log_path[128], out_path[128];
    int port, master_port;
    pid_t pid; /* 0 when not running */
};

/* free_port: a port nothing listens on right now (bound then released).
 * Returns 0 on failure. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* server_exec: in the forked child: output to server.out, die with the
 * test (PR_SET_PDEATHSIG, so a killed test leaves no daemon), exec. */
static void server_exec(const struct server *s)
{
    char port[32], master_port[32], sync[32], chunks[32], chunk_size[64];
    snprintf(port, sizeof(port), "--port=%d", s->port);
    snprintf(master_port, sizeof(master_port), "--master_port=%d", s->master_port);
    snprintf(sync, sizeof(sync), "--sync=%lld", config.sync);
    snprintf(chunks, sizeof(chunks), "--chunks=%lld", config.chunks);
    snprintf(chunk_size, sizeof(chunk_size), "--chunk_size=%" PRIu64, config.chunk_size);
    char data_dir[160], error_log[160];
    snprintf(data_dir, sizeof(data_dir), "--data_dir=%s", s->data_dir);
    snprintf(error_log, sizeof(error_log), "--error_log=%s", s->log_path);
    char *argv[] = {(char *)config.server,
                    port,
                    "--ip=127.0.0.1",
                    data_dir,
                    error_log,
                    chunks,
                    chunk_size,
                    sync,
                    "--mem_blocks=256",
                    "--master_ip=127.0.0.1",
                    master_port,
                    "--group_id=1",
                    NULL};
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = open(s->out_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    execv(config.server, argv);
    _exit(127);
}

/* server_ping: 1 if the server at s->port answers PING now. */
static int server_ping(const struct server *s)
{
    struct spy_client *c;
    if (spy_client_connect("127.0.0.1", s->port, 1000, &c) != SPY_OK)
        return 0;
    int ok = spy_client_ping(c) == SPY_OK;
    spy_client_close(c);
    return ok;
}

/* server_start: starts spy_server on a fresh port and waits until it answers
 * PING (recovery done). Returns 0, or -1 with the reason in err (the server
 * is not running then). *ready_s gets the start-up time. */
static int server_start(struct server *s, double *ready_s, char *err, size_t errlen)
{
    s->port = free_port();
    if (s->port == 0) {
        snprintf(err, errlen, "no free port: %s", strerror(errno));
        return -1;
    }
    double t0 = now_s();
    s->pid = fork();
    if (s->pid < 0) {
        s->pid = 0;
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (s->pid == 0)
        server_exec(s);
    while (now_s() - t0 < READY_TIMEOUT_S) {
        int wstatus;
        if (waitpid(s->pid, &wstatus, WNOHANG) == s->pid) {
            s->pid = 0;
            snprintf(err, errlen, "spy_server exited (status 0x%x) before answering PING; see %s",
                     wstatus, s->out_path);
            return -1;
        }
        if (server_ping(s)) {
            *ready_s = now_s() - t0;
            return 0;
        }
        usleep(20000);
    }
    snprintf(err, errlen, "spy_server did not answer PING within %.0f s", READY_TIMEOUT_S);
    return -1;
}

/* server_kill: SIGKILL and reap; the crash itself. */
static void server_kill(struct server *s)
{
    if (s->pid == 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* server_stop: the clean way out: SIGTERM, then SIGKILL after 10 s.
 * Returns the wait status (0: exited 0, e.g. no sanitizer report). */
static int server_stop(struct server *s)
{
    if (s->pid == 0)
        return 0;
    kill(s->pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        int wstatus;
        if (waitpid(s->pid, &wstatus, WNOHANG) == s->pid) {
            s->pid = 0;
            return wstatus;
        }
        usleep(10000);
    }
    fprintf(stderr, "crash_test: spy_server ignored SIGTERM for 10 s, killing it\n");
    server_kill(s);
    return SIGKILL;
}

/* print_tail: copies the last bytes of a server log to stderr, to explain a
 * failure without opening files. */
static void print_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char buf[2048];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "---- tail of %s ----\n%s\n----\n", path, buf);
}

/* ---- what the test knows about every fid so far (main thread only) ----- */

struct known {
    struct fidset live;    /* must read back byte-exact */
    struct fidset gone;    /* must be ENOTFOUND */
    struct fidset deleted; /* acknowledged deletes (also in gone): refuse puts */
};

/* ---- writers ----------------------------------------------------------- */

enum pending_kind { PENDING_NONE, PENDING_PUT, PENDING_DELETE };

/* Shared by the writers of one round. */
struct round_ctl {
    int port;
    _Atomic int64_t budget;   /* bytes of puts that may still start */
    _Atomic uint64_t started; /* bytes of puts started */
    _Atomic int finished;     /* writers that left their loop */
};

struct writer {
    pthread_t thread;
    int index;
    struct round_ctl *ctl;
    const struct known *known; /* read-only while writers run */
    uint64_t next_fid, rng;
    uint8_t *buf; /* MAX_OBJECT bytes: the body being put */
    /* Results, read by the main thread after join. */
    struct fidset acked, deleted, aborted;
    enum pending_kind pending; /* operation in flight when the connection broke */
    uint64_t pending_fid;
    uint64_t puts_acked, streamed;
    char error[256]; /* an outcome no crash explains; empty if none */
};

/* fid_owner: which writer may delete an older fid, so two never race. */
static int fid_owner(uint64_t fid)
{
    return (int)(mix64(fid) % (uint64_t)config.writers);
}

/* pick_delete: chooses a live fid this writer may delete: one it put this
 * round, or an older one it owns. Returns 1 with *fid set, or 0. */
static int pick_delete(struct writer *w, uint64_t *fid)
{
    uint64_t r = next_rand(&w->rng);
    if (w->acked.n > 0 && (r & 1)) {
        *fid = w->acked.v[(r >> 1) % w->acked.n];
        return 1;
    }
    const struct fidset *live = &w->known->live;
    if (live->n == 0)
        return 0;
    *fid = live->v[(r >> 1) % live->n];
    return fid_owner(*fid) == w->index && !fidset_has(&w->deleted, *fid);
}

/* finish_op: sorts an operation's result. 0: acknowledged (the caller records
 * it); 1: the connection broke, the operation stays pending (the crash); -1:
 * the server answered with an error no crash explains (w->error is set). */
static int finish_op(struct writer *w, struct spy_client *c, const char *what, int rc)
{
    if (rc == SPY_OK)
        return 0;
    if (spy_client_broken(c))
        return 1;
    snprintf(w->error, sizeof(w->error), "writer %d: %s of fid %#" PRIx64 " returned %s", w->index,
             what, w->pending_fid, spy_strerror(rc));
    return -1;
}

/* writer_delete: deletes one live fid. 0 to go on, 1 to stop. */
static int writer_delete(struct writer *w, struct spy_client *c, uint64_t fid)
{
    w->pending = PENDING_DELETE;
    w->pending_fid = fid;
    int r = finish_op(w, c, "delete", spy_client_delete(c, fid));
    if (r != 0)
        return 1;
    fidset_remove(&w->acked, fid);
    fidset_add(&w->deleted, fid);
    w->pending = PENDING_NONE;
    return 0;
}

/* slice_len: an uneven slice for a streamed put: 1..17 B, up to 4 KiB, or up
 * to one whole DATA frame. */
static size_t slice_len(struct writer *w, size_t left)
{
    uint64_t r = next_rand(&w->rng);
    size_t n;
    switch (r % 3) {
    case 0:
        n = 1 + (r >> 8) % 17;
        break;
    case 1:
        n = 1 + (r >> 8) % 4096;
        break;
    default:
        n = 1 + (r >> 8) % SPY_DATA_MAX;
        break;
    }
    return n < left ? n : left;
}

/* put_streamed: put_begin, put_data in uneven slices, then put_end; or, when
 * abort_after is set, put_abort once that many bytes were sent. Returns the
 * first non-OK status. */
static int put_streamed(struct writer *w, struct spy_client *c, uint64_t fid, size_t size,
                        size_t abort_after, int *aborted)
{
    uint64_t r = next_rand(&w->rng);
    uint64_t max_len = (r & 1) ? size : size + (r >> 1) % 65536;
    int rc = spy_client_put_begin(c, fid, max_len);
    size_t off = 0;
    while (rc == SPY_OK && off < size) {
        if (abort_after > 0 && off >= abort_after) {
            *aborted = 1;
            rc = spy_client_put_abort(c);
            return rc == SPY_EABORTED ? SPY_OK : rc;
        }
        size_t n = slice_len(w, size - off);
        rc = spy_client_put_data(c, w->buf + off, n);
        off += n;
    }
    return rc == SPY_OK ? spy_client_put_end(c) : rc;
}

/* writer_put: puts the next fid, whole or streamed (a few aborted). 0 to go
 * on, 1 to stop (budget spent, connection broken or an error). */
static int writer_put(struct writer *w, struct spy_client *c)
{
    uint64_t fid = w->next_fid++;
    size_t size = object_size(fid);
    if (atomic_fetch_sub(&w->ctl->budget, (int64_t)size) < (int64_t)size)
        return 1;
    atomic_fetch_add(&w->ctl->started, size);
    fill_expected(fid, 0, w->buf, size);
    w->pending = PENDING_PUT;
    w->pending_fid = fid;
    uint64_t r = next_rand(&w->rng) % 100;
    int rc, aborted = 0;
    if (r < 55) {
        rc = spy_client_put(c, fid, w->buf, size);
    } else {
        w->streamed++;
        size_t abort_after = 0;
        if (r < 62 && size > 1)
            abort_after = 1 + next_rand(&w->rng) % (size - 1);
        rc = put_streamed(w, c, fid, size, abort_after, &aborted);
    }
    int result = finish_op(w, c, aborted ? "put_abort" : "put", rc);
    if (result != 0)
        return 1;
    fidset_add(aborted ? &w->aborted : &w->acked, fid);
    w->puts_acked += !aborted;
    w->pending = PENDING_NONE;
    return 0;
}

/* writer_main: one connection; about one operation in eight is a delete.
 * Runs until the budget is spent or the kill breaks the connection. */
static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct spy_client *c;
    int rc = spy_client_connect("127.0.0.1", w->ctl->port, IO_TIMEOUT_MS, &c);
    if (rc != SPY_OK) {
        snprintf(w->error, sizeof(w->error), "writer %d: connect: %s", w->index, spy_strerror(rc));
        atomic_fetch_add(&w->ctl->finished, 1);
        return NULL;
    }
    for (;;) {
        uint64_t fid;
        int stop;
        if (next_rand(&w->rng) % 8 == 0 && pick_delete(w, &fid))
            stop = writer_delete(w, c, fid);
        else
            stop = writer_put(w, c);
        if (stop)
            break;
    }
    spy_client_close(c);
    atomic_fetch_add(&w->ctl->finished, 1);
    return NULL;
}

/* ---- one round: write, kill, merge -------------------------------------- */

struct round_report {
    int round;
    double killed_after_s, ready_s;
    size_t puts_acked, deletes_acked, aborts_acked, streamed;
    size_t inflight_puts, inflight_deletes, inflight_present, inflight_absent;
    size_t verified_live, verified_gone, eexists_checked;
    size_t violations;
};

/* violation: prints one broken promise (the first MAX_REPORTED per round)
 * and counts it; the round fails when any was counted. */
static void violation(struct round_report *rep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void violation(struct round_report *rep, const char *fmt, ...)
{
    if (rep->violations++ >= MAX_REPORTED)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "crash_test: VIOLATION (round %d, sync=%lld, seed=%lld): %s\n", rep->round,
            config.sync, config.seed, msg);
}

/* wait_for_kill_point: sleeps until a random delay (0.5-2 s) passed, a
 * random share (20-90%) of the byte budget was started, or every writer
 * stopped; whichever comes first. */
static void wait_for_kill_point(struct round_ctl *ctl, uint64_t *rng)
{
    double delay = 0.5 + (double)(next_rand(rng) % 1500) / 1000.0;
    uint64_t bytes = config.round_bytes / 100 * (20 + next_rand(rng) % 71);
    double t0 = now_s();
    while (now_s() - t0 < delay && atomic_load(&ctl->started) < bytes &&
           atomic_load(&ctl->finished) < config.writers)
        usleep(2000);
}

/* merge_writer: moves one writer's results into what the test knows; the
 * operation it had in flight goes to unknown_put or unknown_del. */
static void merge_writer(struct writer *w, struct known *k, struct fidset *unknown_put,
                         struct fidset *unknown_del, struct round_report *rep)
{
    if (w->error[0] != '\0')
        violation(rep, "%s", w->error);
    if (w->pending == PENDING_DELETE) {
        fidset_remove(&w->acked, w->pending_fid);
        fidset_remove(&k->live, w->pending_fid);
        fidset_add(unknown_del, w->pending_fid);
    } else if (w->pending == PENDING_PUT) {
        fidset_add(unknown_put, w->pending_fid);
    }
    for (size_t i = 0; i < w->acked.n; i++)
        fidset_add(&k->live, w->acked.v[i]);
    for (size_t i = 0; i < w->deleted.n; i++) {
        fidset_remove(&k->live, w->deleted.v[i]);
        fidset_add(&k->gone, w->deleted.v[i]);
        fidset_add(&k->deleted, w->deleted.v[i]);
    }
    for (size_t i = 0; i < w->aborted.n; i++)
        fidset_add(&k->gone, w->aborted.v[i]);
    rep->puts_acked += w->puts_acked;
    rep->deletes_acked += w->deleted.n;
    rep->aborts_acked += w->aborted.n;
    rep->streamed += w->streamed;
}

/* run_writers: starts the writers against the running server, kills it at a
 * random point, joins them and merges their results. */
static void run_writers(struct server *s, struct known *k, struct fidset *unknown_put,
                        struct fidset *unknown_del, struct round_report *rep, uint64_t *rng)
{
    struct round_ctl ctl = {.port = s->port};
    atomic_store(&ctl.budget, (int64_t)config.round_bytes);
    struct writer *ws = calloc((size_t)config.writers, sizeof(*ws));
    assert_non_null(ws);
    for (int i = 0; i < config.writers; i++) {
        ws[i] = (struct writer){.index = i, .ctl = &ctl, .known = k, .rng = next_rand(rng)};
        ws[i].next_fid = ((uint64_t)rep->round << 40) | ((uint64_t)(i + 1) << 28);
        ws[i].buf = xrealloc(NULL, MAX_OBJECT);
        assert_int_equal(pthread_create(&ws[i].thread, NULL, writer_main, &ws[i]), 0);
    }
    /* Broken connections are the point of this phase: keep the client's
     * warnings about them out of the output. */
    spy_log_set_level(SPY_LOG_ERROR);
    double t0 = now_s();
    wait_for_kill_point(&ctl, rng);
    server_kill(s);
    rep->killed_after_s = now_s() - t0;
    for (int i = 0; i < config.writers; i++) {
        pthread_join(ws[i].thread, NULL);
        merge_writer(&ws[i], k, unknown_put, unknown_del, rep);
        rep->inflight_puts += ws[i].pending == PENDING_PUT;
        rep->inflight_deletes += ws[i].pending == PENDING_DELETE;
        fidset_free(&ws[i].acked);
        fidset_free(&ws[i].deleted);
        fidset_free(&ws[i].aborted);
        free(ws[i].buf);
    }
    free(ws);
    spy_log_set_level(SPY_LOG_INFO);
}

/* ---- checking after the restart ----------------------------------------- */

struct checker {
    int port;
    struct spy_client *c; /* reconnected after any broken call */
    uint8_t *scratch;     /* SPY_DATA_MAX bytes of expected body */
};

/* checker_conn: the checker's connection, (re)made if needed; NULL if the
 * server cannot be reached. */
static struct spy_client *checker_conn(struct checker *ck)
{
    if (ck->c != NULL && spy_client_broken(ck->c)) {
        spy_client_close(ck->c);
        ck->c = NULL;
    }
    if (ck->c == NULL && spy_client_connect("127.0.0.1", ck->port, IO_TIMEOUT_MS, &ck->c) != 0)
        ck->c = NULL;
    return ck->c;
}

struct compare {
    struct checker *ck;
    uint64_t fid, off;
    int64_t mismatch_at; /* -1 while the bytes match */
};

/* compare_sink: compares each arriving DATA frame with the regenerated body;
 * stops the get at the first difference. */
static int compare_sink(void *arg, const uint8_t *data, size_t n)
{
    struct compare *cmp = arg;
    while (n > 0) {
        size_t take = n < SPY_DATA_MAX ? n : SPY_DATA_MAX;
        fill_expected(cmp->fid, cmp->off, cmp->ck->scratch, take);
        if (memcmp(data, cmp->ck->scratch, take) != 0) {
            size_t i = 0;
            while (data[i] == cmp->ck->scratch[i])
                i++;
            cmp->mismatch_at = (int64_t)(cmp->off + i);
            return -1;
        }
        data += take, n -= take, cmp->off += take;
    }
    return 0;
}

enum presence { PRESENT, ABSENT, BROKEN };

/* check_fid: stat and get fid. PRESENT: stat and get agree on the expected
 * length and every byte matched; ABSENT: both said ENOTFOUND; BROKEN: anything
 * else (reported as a violation with 'what' naming the fid's category). */
static enum presence check_fid(struct checker *ck, uint64_t fid, const char *what,
                               struct round_report *rep)
{
    struct spy_client *c = checker_conn(ck);
    if (c == NULL) {
        violation(rep, "cannot connect to the restarted server");
        return BROKEN;
    }
    size_t size = object_size(fid);
    struct spy_stat_resp st;
    int src = spy_client_stat(c, fid, &st);
    struct compare cmp = {.ck = ck, .fid = fid, .mismatch_at = -1};
    uint64_t object_len = 0;
    int grc = spy_client_get(c, fid, 0, 0, compare_sink, &cmp, &object_len);
    if (src == SPY_ENOTFOUND && grc == SPY_ENOTFOUND)
        return ABSENT;
    if (src == SPY_OK && grc == SPY_OK && st.len == size && object_len == size && cmp.off == size)
        return PRESENT;
    if (cmp.mismatch_at >= 0)
        violation(rep, "%s fid %#" PRIx64 " (%zu B): byte %" PRId64 " differs", what, fid, size,
                  cmp.mismatch_at);
    else
        violation(rep,
                  "%s fid %#" PRIx64 ": expected %zu B; stat %s len %" PRIu64
                  ", get %s object_len %" PRIu64 " after %" PRIu64 " B",
                  what, fid, size, spy_strerror(src), src == SPY_OK ? st.len : 0, spy_strerror(grc),
                  object_len, cmp.off);
    return BROKEN;
}

/* check_known: every live fid must be PRESENT, every gone fid ABSENT. */
static void check_known(struct checker *ck, const struct known *k, struct round_report *rep)
{
    for (size_t i = 0; i < k->live.n; i++) {
        enum presence p = check_fid(ck, k->live.v[i], "acknowledged", rep);
        if (p == ABSENT)
            violation(rep, "acknowledged fid %#" PRIx64 " is lost (ENOTFOUND)", k->live.v[i]);
        rep->verified_live += p == PRESENT;
    }
    for (size_t i = 0; i < k->gone.n; i++) {
        enum presence p = check_fid(ck, k->gone.v[i], "deleted or aborted", rep);
        if (p == PRESENT)
            violation(rep, "deleted or aborted fid %#" PRIx64 " is back", k->gone.v[i]);
        rep->verified_gone += p == ABSENT;
    }
}

/* check_unknown: fids in flight at the kill must be whole or ENOTFOUND; what
 * they turned out to be is what later rounds expect. */
static void check_unknown(struct checker *ck, struct known *k, const struct fidset *unknown,
                          struct round_report *rep)
{
    for (size_t i = 0; i < unknown->n; i++) {
        enum presence p = check_fid(ck, unknown->v[i], "in flight", rep);
        if (p == PRESENT) {
            rep->inflight_present++;
            fidset_add(&k->live, unknown->v[i]);
        } else if (p == ABSENT) {
            rep->inflight_absent++;
            fidset_add(&k->gone, unknown->v[i]);
        }
    }
}

/* check_refused: a few acknowledged deletes, put again, must get EEXISTS:
 * the tombstone survived the crash, so fids are never reused. */
static void check_refused(struct checker *ck, const struct known *k, struct round_report *rep,
                          uint64_t *rng)
{
    for (size_t i = 0; i < EEXISTS_CHECKS && k->deleted.n > 0; i++) {
        uint64_t fid = k->deleted.v[next_rand(rng) % k->deleted.n];
        struct spy_client *c = checker_conn(ck);
        if (c == NULL) {
            violation(rep, "cannot connect to the restarted server");
            return;
        }
        uint8_t byte = 0;
        int rc = spy_client_put(c, fid, &byte, 1);
        if (rc != SPY_EEXISTS)
            violation(rep, "put of deleted fid %#" PRIx64 " returned %s, want EEXISTS", fid,
                      spy_strerror(rc));
        rep->eexists_checked++;
    }
}

/* print_report: the one summary line of a round. */
static void print_report(const struct round_report *r, const struct known *k)
{
    printf("crash round %d/%lld sync=%lld: killed after %.2f s; acked %zu puts (%zu streamed "
           "started), %zu deletes, %zu aborts; in flight %zu puts + %zu deletes -> %zu present, "
           "%zu absent; restart %.2f s; verified %zu live + %zu gone (%zu EEXISTS); known live "
           "%zu gone %zu; violations %zu\n",
           r->round, config.rounds, config.sync, r->killed_after_s, r->puts_acked, r->streamed,
           r->deletes_acked, r->aborts_acked, r->inflight_puts, r->inflight_deletes,
           r->inflight_present, r->inflight_absent, r->ready_s, r->verified_live, r->verified_gone,
           r->eexists_checked, k->live.n, k->gone.n, r->violations);
    fflush(stdout);
}

/* ---- the test ------------------------------------------------------------ */

struct crash_state {
    struct server server;
    struct known known;
};

/* remove_entry: nftw callback for removing the temp directory. */
static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int crash_setup(void **state)
{
    struct crash_state *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return -1;
    struct server *s = &st->server;
    strcpy(s->root, "/tmp/spy-crash-XXXXXX");
    if (mkdtemp(s->root) == NULL) {
        free(st);
        return -1;
    }
    snprintf(s->data_dir, sizeof(s->data_dir), "%s/data", s->root);
    snprintf(s->log_path, sizeof(s->log_path), "%s/error.log", s->root);
    snprintf(s->out_path, sizeof(s->out_path), "%s/server.out", s->root);
    s->master_port = free_port(); /* nothing listens there: reports fail harmlessly */
    if (mkdir(s->data_dir, 0755) != 0 || s->master_port == 0) {
        nftw(s->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(st);
        return -1;
    }
    *state = st;
    return 0;
}

static int crash_teardown(void **state)
{
    struct crash_state *st = *state;
    server_kill(&st->server);
    if (config.keep)
        fprintf(stderr, "crash_test: kept %s\n", st->server.root);
    else
        nftw(st->server.root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    fidset_free(&st->known.live);
    fidset_free(&st->known.gone);
    fidset_free(&st->known.deleted);
    free(st);
    return 0;
}

/* start_or_fail: starts the server or fails the test with its output. */
static void start_or_fail(struct server *s, double *ready_s)
{
    char err[256];
    if (server_start(s, ready_s, err, sizeof(err)) != 0) {
        print_tail(s->out_path);
        print_tail(s->log_path);
        fail_msg("%s", err);
    }
}

/* crash_round: one write / kill / restart / verify cycle. */
static void crash_round(struct crash_state *st, int round, uint64_t *rng)
{
    struct round_report rep = {.round = round};
    struct fidset unknown_put = {0}, unknown_del = {0};
    run_writers(&st->server, &st->known, &unknown_put, &unknown_del, &rep, rng);
    start_or_fail(&st->server, &rep.ready_s);
    struct checker ck = {.port = st->server.port, .scratch = xrealloc(NULL, SPY_DATA_MAX)};
    check_known(&ck, &st->known, &rep);
    check_unknown(&ck, &st->known, &unknown_put, &rep);
    check_unknown(&ck, &st->known, &unknown_del, &rep);
    check_refused(&ck, &st->known, &rep, rng);
    if (ck.c != NULL)
        spy_client_close(ck.c);
    free(ck.scratch);
    fidset_free(&unknown_put);
    fidset_free(&unknown_del);
    print_report(&rep, &st->known);
    if (rep.violations > 0) {
        print_tail(st->server.log_path);
        fail_msg("round %d: %zu violations (seed %lld)", round, rep.violations, config.seed);
    }
    if (rep.puts_acked == 0)
        fail_msg("round %d: no put was acknowledged; the test proved nothing", round);
}

/* test_kill_restart_rounds: the whole scenario on one data dir. */
static void test_kill_restart_rounds(void **state)
{
    struct crash_state *st = *state;
    uint64_t rng = (uint64_t)config.seed;
    double ready_s;
    start_or_fail(&st->server, &ready_s);
    for (int round = 1; round <= config.rounds; round++)
        crash_round(st, round, &rng);
    int wstatus = server_stop(&st->server);
    if (wstatus != 0) {
        print_tail(st->server.out_path);
        fail_msg("spy_server did not stop cleanly on SIGTERM (wait status 0x%x)", wstatus);
    }
}

/* parse_config: the command line into 'config'; exits on a bad flag. */
static void parse_config(int argc, char **argv)
{
    struct spy_flag flags[] = {
        {"server", SPY_FLAG_STRING, &config.server, NULL, 0, 0, 1, "spy_server binary"},
        {"sync", SPY_FLAG_INT, &config.sync, "0", 0, 1, 0, "spy_server --sync"},
        {"rounds", SPY_FLAG_INT, &config.rounds, "5", 1, 100, 0, "kill/restart cycles"},
        {"writers", SPY_FLAG_INT, &config.writers, "6", 1, 64, 0, "writer threads"},
        {"chunks", SPY_FLAG_INT, &config.chunks, "8", 1, 200, 0, "spy_server --chunks"},
        {"chunk_size", SPY_FLAG_SIZE, &config.chunk_size, "256M", 0, 0, 0,
         "spy_server --chunk_size"},
        {"round_bytes", SPY_FLAG_SIZE, &config.round_bytes, "128M", 0, 0, 0,
         "bytes of puts started per round, at most"},
        {"seed", SPY_FLAG_INT, &config.seed, "0", 0, 0, 0, "random seed (0: from the clock)"},
        {"keep", SPY_FLAG_BOOL, &config.keep, "0", 0, 0, 0, "keep the temp dir"},
    };
    size_t nflags = sizeof(flags) / sizeof(flags[0]);
    char err[256];
    int rc = spy_flags_parse(flags, nflags, argc, argv, NULL, err, sizeof(err));
    if (rc == SPY_FLAGS_HELP) {
        spy_flags_usage(stdout, argv[0], "kill -9 spy_server mid-put and verify", flags, nflags);
        exit(0);
    }
    if (rc != SPY_FLAGS_OK) {
        fprintf(stderr, "crash_test: %s\n", err);
        exit(2);
    }
    if (config.seed == 0)
        config.seed = (long long)(time(NULL) ^ getpid());
}

int main(int argc, char **argv)
{
    parse_config(argc, argv);
    signal(SIGPIPE, SIG_IGN); /* a write to the killed server must fail, not kill us */
    printf("crash_test: sync=%lld seed=%lld (rerun with --seed=%lld)\n", config.sync, config.seed,
           config.seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill_restart_rounds, crash_setup, crash_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
