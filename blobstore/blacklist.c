/* blacklist.c - failed servers with exponential back-off (see blacklist.h). */
#include "blobstore/blacklist.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 80 /* "[v6 address]:port" fits */

struct entry {
    char name[NAME_MAX_LEN];
    int64_t block_ms;     /* the current back-off step */
    int64_t until_ms;     /* blocked while now < until_ms */
    int64_t forget_at_ms; /* a server quiet this long after its block is forgotten */
};

struct spy_blacklist {
    pthread_mutex_t mu;
    int64_t base_ms, max_ms;
    struct entry *entries;
    size_t n, cap;
    atomic_size_t nonempty; /* n, readable without the lock: spy_blacklist_ok's fast path */
};

/* spy_blacklist_new: an empty blacklist; the bounds are checked here, once. */
struct spy_blacklist *spy_blacklist_new(int64_t base_ms, int64_t max_ms)
{
    if (base_ms < 1 || max_ms < base_ms)
        return NULL;
    struct spy_blacklist *bl = calloc(1, sizeof(*bl));
    if (bl == NULL)
        return NULL;
    pthread_mutex_init(&bl->mu, NULL);
    bl->base_ms = base_ms;
    bl->max_ms = max_ms;
    return bl;
}

/* spy_blacklist_free: frees the entries and the lock. */
void spy_blacklist_free(struct spy_blacklist *bl)
{
    if (bl == NULL)
        return;
    pthread_mutex_destroy(&bl->mu);
    free(bl->entries);
    free(bl);
}

/* find: the entry for name, or NULL; caller holds mu. */
static struct entry *find(struct spy_blacklist *bl, const char *name)
{
    for (size_t i = 0; i < bl->n; i++)
        if (strcmp(bl->entries[i].name, name) == 0)
            return &bl->entries[i];
    return NULL;
}

/* remove_at: drops entry i (order does not matter); caller holds mu. */
static void remove_at(struct spy_blacklist *bl, size_t i)
{
    bl->entries[i] = bl->entries[--bl->n];
    atomic_store(&bl->nonempty, bl->n);
}

/* prune: forgets servers whose block ended long ago; caller holds mu. */
static void prune(struct spy_blacklist *bl, int64_t now_ms)
{
    for (size_t i = 0; i < bl->n;) {
        if (now_ms >= bl->entries[i].forget_at_ms)
            remove_at(bl, i);
        else
            i++;
    }
}

/* add: a new entry for name (NULL if out of memory); caller holds mu. */
static struct entry *add(struct spy_blacklist *bl, const char *name)
{
    if (bl->n == bl->cap) {
        size_t cap = bl->cap == 0 ? 8 : bl->cap * 2;
        struct entry *grown = realloc(bl->entries, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        bl->entries = grown;
        bl->cap = cap;
    }
    struct entry *e = &bl->entries[bl->n++];
    memset(e, 0, sizeof(*e));
    strncpy(e->name, name, sizeof(e->name) - 1);
    atomic_store(&bl->nonempty, bl->n);
    return e;
}

/* spy_blacklist_fail: starts or extends a block: base, then doubling per failed probe, capped. */
int64_t spy_blacklist_fail(struct spy_blacklist *bl, const char *name, int64_t now_ms)
{
    pthread_mutex_lock(&bl->mu);
    prune(bl, now_ms);
    struct entry *e = find(bl, name);
    int64_t block;
    if (e == NULL) {
        e = add(bl, name);
        block = bl->base_ms;
    } else if (now_ms < e->until_ms) {
        block = e->block_ms; /* already blocked: the same outage, seen again */
    } else {
        block = e->block_ms > bl->max_ms / 2 ? bl->max_ms : e->block_ms * 2;
    }
    if (e != NULL) {
        e->block_ms = block;
        if (now_ms + block > e->until_ms)
            e->until_ms = now_ms + block;
        /* Remembered for two max blocks after the last one ends: a server
         * that flaps keeps its long back-off, one that recovered is forgotten
         * on its first success anyway. */
        e->forget_at_ms = e->until_ms + 2 * bl->max_ms;
    }
    pthread_mutex_unlock(&bl->mu);
    return block;
}

/* spy_blacklist_ok: forgets a server that just worked. */
void spy_blacklist_ok(struct spy_blacklist *bl, const char *name)
{
    if (atomic_load(&bl->nonempty) == 0)
        return; /* the common case: nothing to forget, no lock taken */
    pthread_mutex_lock(&bl->mu);
    for (size_t i = 0; i < bl->n; i++) {
        if (strcmp(bl->entries[i].name, name) == 0) {
            remove_at(bl, i);
            break;
        }
    }
    pthread_mutex_unlock(&bl->mu);
}

/* spy_blacklist_blocked: the check writers and readers make before using a server. */
int spy_blacklist_blocked(struct spy_blacklist *bl, const char *name, int64_t now_ms)
{
    if (atomic_load(&bl->nonempty) == 0)
        return 0;
    pthread_mutex_lock(&bl->mu);
    struct entry *e = find(bl, name);
    int blocked = e != NULL && now_ms < e->until_ms;
    pthread_mutex_unlock(&bl->mu);
    return blocked;
}

/* spy_blacklist_count: servers blocked now, for the counters. */
size_t spy_blacklist_count(struct spy_blacklist *bl, int64_t now_ms)
{
    pthread_mutex_lock(&bl->mu);
    size_t count = 0;
    for (size_t i = 0; i < bl->n; i++)
        count += now_ms < bl->entries[i].until_ms;
    pthread_mutex_unlock(&bl->mu);
    return count;
}
