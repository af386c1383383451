/* index.c - open-addressing hash of fids (index.h). */
#include "chunkserver/index.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"

/* One table slot: 32 bytes. chunk_state packs chunk_id (high 24 bits) and
 * the state (low 8 bits); state EMPTY marks a free slot, so fid 0 is valid. */
struct slot {
    uint64_t fid;
    uint64_t offset;
    uint64_t body_len;
    uint32_t timestamp;
    uint32_t chunk_state;
};
_Static_assert(sizeof(struct slot) == 32, "index entry size is documented");

struct spy_index {
    pthread_rwlock_t lock;
    struct slot *slots;
    uint64_t mask; /* capacity - 1; capacity is a power of two */
    uint64_t used; /* slots not EMPTY */
    uint64_t live;
    uint64_t deleted;
};

#define MIN_CAPACITY 1024u

/* mix -- the splitmix64 finalizer: sequential fids land far apart. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static enum spy_index_state slot_state(const struct slot *s)
{
    return (enum spy_index_state)(s->chunk_state & 0xff);
}

static void slot_set_state(struct slot *s, enum spy_index_state st)
{
    s->chunk_state = (s->chunk_state & ~0xffu) | (uint32_t)st;
}

/* slot_fill -- stores an entry's location and state. */
static void slot_fill(struct slot *s, const struct spy_index_entry *e, enum spy_index_state st)
{
    s->fid = e->fid;
    s->offset = e->offset;
    s->body_len = e->body_len;
    s->timestamp = e->timestamp;
    s->chunk_state = (e->chunk_id & SPY_INDEX_MAX_CHUNK) << 8 | (uint32_t)st;
}

/* slot_copy -- the public view of a slot. */
static void slot_copy(const struct slot *s, struct spy_index_entry *out)
{
    out->fid = s->fid;
    out->offset = s->offset;
    out->body_len = s->body_len;
    out->timestamp = s->timestamp;
    out->chunk_id = s->chunk_state >> 8;
    out->state = slot_state(s);
}

/* find -- the slot holding fid, or the empty slot where it would go. */
static struct slot *find(const struct spy_index *idx, uint64_t fid)
{
    uint64_t i = mix(fid) & idx->mask;
    for (;;) {
        struct slot *s = &idx->slots[i];
        if (slot_state(s) == SPY_INDEX_EMPTY || s->fid == fid)
            return s;
        i = (i + 1) & idx->mask;
    }
}

/* grow -- doubles the table and re-inserts every entry. */
static int grow(struct spy_index *idx)
{
    uint64_t old_cap = idx->mask + 1;
    struct slot *old = idx->slots;
    struct slot *slots = calloc(old_cap * 2, sizeof(*slots));
    if (slots == NULL)
        return SPY_ENOMEM;
    idx->slots = slots;
    idx->mask = old_cap * 2 - 1;
    for (uint64_t i = 0; i < old_cap; i++)
        if (slot_state(&old[i]) != SPY_INDEX_EMPTY)
            *find(idx, old[i].fid) = old[i];
    free(old);
    return SPY_OK;
}

/* insert_slot -- finds fid's slot, growing first if one more entry would
 * pass 3/4 load. *s is EMPTY if fid was absent. */
static int insert_slot(struct spy_index *idx, uint64_t fid, struct slot **s)
{
    if ((idx->used + 1) * 4 > (idx->mask + 1) * 3) {
        int rc = grow(idx);
        if (rc != SPY_OK)
            return rc;
    }
    *s = find(idx, fid);
    return SPY_OK;
}

/* remove_slot -- empties s and shifts later members of its probe run back,
 * so lookups never stop early at the hole (no tombstone slots needed). */
static void remove_slot(struct spy_index *idx, struct slot *s)
{
    uint64_t hole = (uint64_t)(s - idx->slots);
    uint64_t i = hole;
    for (;;) {
        i = (i + 1) & idx->mask;
        struct slot *next = &idx->slots[i];
        if (slot_state(next) == SPY_INDEX_EMPTY)
            break;
        uint64_t home = mix(next->fid) & idx->mask;
        /* next may move to the hole if its home is not in (hole, i]. */
        if (((i - home) & idx->mask) >= ((i - hole) & idx->mask)) {
            idx->slots[hole] = *next;
            hole = i;
        }
    }
    memset(&idx->slots[hole], 0, sizeof(struct slot));
    idx->used--;
}

/* spy_index_create -- capacity: the next power of two above expect / 0.75. */
struct spy_index *spy_index_create(uint64_t expect)
{
    struct spy_index *idx = calloc(1, sizeof(*idx));
    if (idx == NULL)
        return NULL;
    uint64_t cap = MIN_CAPACITY;
    while (cap * 3 / 4 < expect)
        cap *= 2;
    idx->slots = calloc(cap, sizeof(struct slot));
    if (idx->slots == NULL) {
        free(idx);
        return NULL;
    }
    idx->mask = cap - 1;
    pthread_rwlock_init(&idx->lock, NULL);
    return idx;
}

/* spy_index_destroy -- frees the table; no other thread may use it. */
void spy_index_destroy(struct spy_index *idx)
{
    if (idx == NULL)
        return;
    pthread_rwlock_destroy(&idx->lock);
    free(idx->slots);
    free(idx);
}

/* spy_index_reserve -- PENDING insert, refused for any existing fid. */
int spy_index_reserve(struct spy_index *idx, uint64_t fid)
{
    pthread_rwlock_wrlock(&idx->lock);
    struct slot *s;
    int rc = insert_slot(idx, fid, &s);
    if (rc == SPY_OK && slot_state(s) != SPY_INDEX_EMPTY)
        rc = SPY_EEXISTS;
    if (rc == SPY_OK) {
        struct spy_index_entry e = {.fid = fid};
        slot_fill(s, &e, SPY_INDEX_PENDING);
        idx->used++;
    }
    pthread_rwlock_unlock(&idx->lock);
    return rc;
}

/* spy_index_commit -- PENDING -> LIVE with the record's location. */
int spy_index_commit(struct spy_index *idx, const struct spy_index_entry *e)
{
    pthread_rwlock_wrlock(&idx->lock);
    struct slot *s = find(idx, e->fid);
    int rc = SPY_ENOTFOUND;
    if (slot_state(s) == SPY_INDEX_PENDING) {
        slot_fill(s, e, SPY_INDEX_LIVE);
        idx->live++;
        rc = SPY_OK;
    }
    pthread_rwlock_unlock(&idx->lock);
    return rc;
}

/* spy_index_release -- drops a PENDING reservation. */
int spy_index_release(struct spy_index *idx, uint64_t fid)
{
    pthread_rwlock_wrlock(&idx->lock);
    struct slot *s = find(idx, fid);
    int rc = SPY_ENOTFOUND;
    if (slot_state(s) == SPY_INDEX_PENDING) {
        remove_slot(idx, s);
        rc = SPY_OK;
    }
    pthread_rwlock_unlock(&idx->lock);
    return rc;
}

/* spy_index_lookup -- a copy of the entry, whatever its state. */
int spy_index_lookup(struct spy_index *idx, uint64_t fid, struct spy_index_entry *out)
{
    pthread_rwlock_rdlock(&idx->lock);
    struct slot *s = find(idx, fid);
    int rc = SPY_ENOTFOUND;
    if (slot_state(s) != SPY_INDEX_EMPTY) {
        slot_copy(s, out);
        rc = SPY_OK;
    }
    pthread_rwlock_unlock(&idx->lock);
    return rc;
}

/* spy_index_delete -- LIVE -> DELETED, keeping the location. */
int spy_index_delete(struct spy_index *idx, uint64_t fid, struct spy_index_entry *was)
{
    pthread_rwlock_wrlock(&idx->lock);
    struct slot *s = find(idx, fid);
    slot_copy(s, was);
    int rc = SPY_ENOTFOUND;
    if (slot_state(s) == SPY_INDEX_LIVE) {
        slot_set_state(s, SPY_INDEX_DELETED);
        idx->live--;
        idx->deleted++;
        rc = SPY_OK;
    }
    pthread_rwlock_unlock(&idx->lock);
    return rc;
}

/* spy_index_load_put -- a PUT record seen by recovery. */
int spy_index_load_put(struct spy_index *idx, const struct spy_index_entry *e,
                       struct spy_index_entry *was)
{
    pthread_rwlock_wrlock(&idx->lock);
    struct slot *s;
    int rc = insert_slot(idx, e->fid, &s);
    if (rc == SPY_OK) {
        slot_copy(s, was);
        if (was->state == SPY_INDEX_EMPTY) {
            slot_fill(s, e, SPY_INDEX_LIVE);
            idx->used++;
            idx->live++;
        } else {
            if (was->state == SPY_INDEX_DELETED && was->chunk_id == 0)
                slot_fill(s, e, SPY_INDEX_DELETED);
            rc = SPY_EEXISTS;
        }
    }
    pthread_rwlock_unlock(&idx->lock);
    return rc;
}

/* spy_index_load_del -- a DEL record seen by recovery: DELETED wins. */
int spy_index_load_del(struct spy_index *idx, uint64_t fid, struct spy_index_entry *was)
{
    pthread_rwlock_wrlock(&idx->lock);
    struct slot *s;
    int rc = insert_slot(idx, fid, &s);
    if (rc == SPY_OK) {
        slot_copy(s, was);
        if (was->state == SPY_INDEX_EMPTY) {
            struct spy_index_entry e = {.fid = fid};
            slot_fill(s, &e, SPY_INDEX_DELETED);
            idx->used++;
            idx->deleted++;
        } else if (was->state != SPY_INDEX_DELETED) {
            if (was->state == SPY_INDEX_LIVE)
                idx->live--;
            slot_set_state(s, SPY_INDEX_DELETED);
            idx->deleted++;
        }
    }
    pthread_rwlock_unlock(&idx->lock);
    return rc;
}

/* spy_index_counts -- LIVE and DELETED totals. */
void spy_index_counts(struct spy_index *idx, uint64_t *live, uint64_t *deleted)
{
    pthread_rwlock_rdlock(&idx->lock);
    *live = idx->live;
    *deleted = idx->deleted;
    pthread_rwlock_unlock(&idx->lock);
}

/* spy_index_memory -- the table's bytes. */
uint64_t spy_index_memory(struct spy_index *idx)
{
    pthread_rwlock_rdlock(&idx->lock);
    uint64_t bytes = (idx->mask + 1) * sizeof(struct slot);
    pthread_rwlock_unlock(&idx->lock);
    return bytes;
}
