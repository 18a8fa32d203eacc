/* The broker's data path in C: the same decisions as libsrv/broker_core.py's BrokerState for
 * every message a request and its reply make, without the Python interpreter on the way.
 *
 * Built on demand by libsrv/data_path_build.py against the libzmq that pyzmq loaded (the same
 * library, so the sockets and the context that Python made are the ones used here), and run
 * on a thread of the broker process by libsrv/broker_compiled.py, which keeps everything that
 * is not a request's path: starting and watching worker processes, killing them, the replies
 * the broker writes itself (INTERNAL, BAD_REQUEST, in the class's languages), the stats and
 * the log. The two talk over an inproc PAIR socket, with the messages listed at `command` and
 * `tell` below. When this file cannot be built, the Python broker does the same work.
 *
 * Message shapes (as in broker_core.py):
 *   client to broker:  [peer, (hop,)* "", request]        at most MAX_HOPS hops
 *   broker to worker:  [worker, peer, key, request]
 *   worker to broker:  [worker, peer, key, reply]   or   [worker, "", READY|WAITING, ...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "zmq_api.h"  /* libzmq's API, declared once for the kit's C files */

/* ---- the broker's constants: given at build time by libsrv/data_path_build.py, from the
 * Python modules that define them (broker_core.py, envelope.py, peers.py): one place each ---- */
#if !defined(MAX_HOPS) || !defined(MAX_ATTEMPTS) || !defined(STOP_GRACE_SECONDS) || \
    !defined(NO_WORKER_ROOM) || !defined(PEER_IN_PROGRESS) || !defined(PEER_BACKLOG_BYTES) || \
    !defined(MAX_ASKS)
#error "build this with libsrv/data_path_build.py, which gives the broker's constants"
#endif
#define KEPT_FRAMES (MAX_HOPS + 4)
#define MSG_FRAMES (KEPT_FRAMES + 2) /* a command: its name, a flag, then a reply */
#define MAX_WORKERS 1024
#define MAX_CREDITS 1024
#define ID_BYTES 256
#define KEY_BYTES 16
#define PEER_BUCKETS 4096

enum phase { STARTING, SERVING, KILLED };

/* A client's message as read (its envelope and request), or a reply to send: frames. */
typedef struct message {
    struct message *next;
    int n;
    int attempts;
    unsigned char key[KEY_BYTES];
    zmq_msg_t f[MSG_FRAMES];
} message;

typedef struct {
    message *head, *tail;
    long count;
} queue;

typedef struct {
    int used;
    int row;
    enum phase phase;
    int credits;
    double progress_at;
    size_t idlen;
    unsigned char id[ID_BYTES];
    queue inflight; /* in the order given */
} worker;

/* What one client connection has in progress (peers.py's PeerQueues, per peer). */
typedef struct peer {
    struct peer *next; /* in its bucket */
    struct peer *prev_all, *next_all;
    size_t idlen;
    unsigned char id[ID_BYTES];
    int in_progress;
    queue backlog;
    size_t backlog_bytes;
    queue blocked; /* replies its socket refused */
} peer;

typedef struct {
    void *frontend, *backend, *control;
    double worker_timeout;
    long poll_ms, blocked_retry_ms;
    worker workers[MAX_WORKERS];
    int nworkers;
    long credits; /* the sum of every serving worker's credits */
    queue pending;
    peer *buckets[PEER_BUCKETS];
    peer *all;
    long nbacklogged, nblocked; /* peers with a backlog, peers with refused replies */
    double stopping_since; /* < 0: not stopping */
    int abort;
    int unstaffed; /* no worker could be started, and one will be tried again */
    long asks; /* replies asked of the Python side (INTERNAL, REFUSE) and not yet given */
    unsigned char key_prefix[8];
    uint64_t next_key;
} broker;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ messages and queues */

static message *message_new(void) {
    message *m = malloc(sizeof(message));
    if (m == NULL) abort();
    m->next = NULL;
    m->n = 0;
    m->attempts = 0;
    return m;
}

static void message_free(message *m) {
    for (int i = 0; i < m->n; i++) zmq_msg_close(&m->f[i]);
    free(m);
}

static size_t frame_size(message *m, int i) { return zmq_msg_size(&m->f[i]); }

static int frame_empty(message *m, int i) { return zmq_msg_size(&m->f[i]) == 0; }

static int frame_is(message *m, int i, const char *text) {
    size_t len = strlen(text);
    return zmq_msg_size(&m->f[i]) == len && memcmp(zmq_msg_data(&m->f[i]), text, len) == 0;
}

static void push_back(queue *q, message *m) {
    m->next = NULL;
    if (q->tail) q->tail->next = m; else q->head = m;
    q->tail = m;
    q->count++;
}

static void push_front(queue *q, message *m) {
    m->next = q->head;
    q->head = m;
    if (q->tail == NULL) q->tail = m;
    q->count++;
}

static message *pop_front(queue *q) {
    message *m = q->head;
    if (m == NULL) return NULL;
    q->head = m->next;
    if (q->head == NULL) q->tail = NULL;
    q->count--;
    m->next = NULL;
    return m;
}

static message *pop_back(queue *q) {
    message *prev = NULL, *m = q->head;
    if (m == NULL) return NULL;
    while (m->next) { prev = m; m = m->next; }
    if (prev) prev->next = NULL; else q->head = NULL;
    q->tail = prev;
    q->count--;
    return m;
}

/* Remove and return the message with `key` (NULL: none). */
static message *take_key(queue *q, const void *key, size_t len) {
    message *prev = NULL;
    for (message *m = q->head; m; prev = m, m = m->next) {
        if (len == KEY_BYTES && memcmp(m->key, key, KEY_BYTES) == 0) {
            if (prev) prev->next = m->next; else q->head = m->next;
            if (q->tail == m) q->tail = prev;
            q->count--;
            m->next = NULL;
            return m;
        }
    }
    return NULL;
}

/* Read one message from `s` (non-blocking): its first `keep` frames into `m`, and how many
 * more were read and dropped. Returns -1 when none is queued. */
static int read_message(void *s, message *m, int keep, int *extra) {
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    if (zmq_msg_recv(&frame, s, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&frame);
        return -1;
    }
    m->n = 0;
    *extra = 0;
    for (;;) {
        int more = zmq_msg_more(&frame);
        if (m->n < keep) {
            zmq_msg_init(&m->f[m->n]);
            zmq_msg_move(&m->f[m->n++], &frame);
        } else {
            (*extra)++;
            zmq_msg_close(&frame);
        }
        if (!more) return 0;
        zmq_msg_init(&frame);
        zmq_msg_recv(&frame, s, 0);
    }
}

/* Send frames f[0..n-1] of `m` (copies: `m` keeps its own), then `last` when given. Returns 0,
 * or the errno of the first frame's refusal (EAGAIN: the peer's queue is full; EHOSTUNREACH:
 * no such peer). A message's later frames cannot be refused once its first was taken. */
static int send_frames(void *s, message *m, int n, zmq_msg_t *last, int flags) {
    for (int i = 0; i < n; i++) {
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, &m->f[i]);
        int more = (i < n - 1 || last != NULL) ? ZMQ_SNDMORE : 0;
        if (zmq_msg_send(&copy, s, flags | more) < 0) {
            int err = zmq_errno();
            zmq_msg_close(&copy);
            return err;
        }
    }
    if (last != NULL) {
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, last);
        if (zmq_msg_send(&copy, s, flags) < 0) {
            int err = zmq_errno();
            zmq_msg_close(&copy);
            return err;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ the control pipe */

/* A message to the Python side: `kind`, then `argc` byte strings, then frames of `m`. */
static void tell(broker *b, const char *kind, int argc, const void **args, const size_t *lens,
                 message *m, int n) {
    int more_after_kind = argc > 0 || n > 0;
    zmq_send(b->control, kind, strlen(kind), more_after_kind ? ZMQ_SNDMORE : 0);
    for (int i = 0; i < argc; i++)
        zmq_send(b->control, args[i], lens[i], (i < argc - 1 || n > 0) ? ZMQ_SNDMORE : 0);
    if (n > 0) send_frames(b->control, m, n, NULL, 0);
}

static void tell_worker(broker *b, const char *kind, worker *w) {
    const void *args[1] = {w->id};
    size_t lens[1] = {w->idlen};
    tell(b, kind, 1, args, lens, NULL, 0);
}

static void warn(broker *b, const char *text, worker *w) {
    const void *args[2] = {text, w ? (const void *)w->id : ""};
    size_t lens[2] = {strlen(text), w ? w->idlen : 0};
    tell(b, "WARN", 2, args, lens, NULL, 0);
}

/* Ask for the INTERNAL reply to `m` (the Python side writes it in the request's language and
 * sends it back with ANSWER). The request stays in progress for its peer until then. */
static void ask_internal(broker *b, message *m, const char *reason) {
    const void *args[1] = {reason};
    size_t lens[1] = {strlen(reason)};
    tell(b, "INTERNAL", 1, args, lens, m, m->n);
    b->asks++;
    message_free(m);
}

/* ------------------------------------------------------------------ peers (flood control) */

static uint32_t hash_bytes(const unsigned char *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static peer *peer_find(broker *b, const void *id, size_t len, int create) {
    if (len > ID_BYTES) len = ID_BYTES;
    uint32_t bucket = hash_bytes(id, len) % PEER_BUCKETS;
    for (peer *p = b->buckets[bucket]; p; p = p->next)
        if (p->idlen == len && memcmp(p->id, id, len) == 0) return p;
    if (!create) return NULL;
    peer *p = calloc(1, sizeof(peer));
    if (p == NULL) abort();
    p->idlen = len;
    memcpy(p->id, id, len);
    p->next = b->buckets[bucket];
    b->buckets[bucket] = p;
    p->next_all = b->all;
    if (b->all) b->all->prev_all = p;
    b->all = p;
    return p;
}

/* Forget `p` when it has nothing in progress, waiting or refused. */
static void peer_tidy(broker *b, peer *p) {
    if (p->in_progress > 0 || p->backlog.count || p->blocked.count) return;
    uint32_t bucket = hash_bytes(p->id, p->idlen) % PEER_BUCKETS;
    peer **link = &b->buckets[bucket];
    while (*link != p) link = &(*link)->next;
    *link = p->next;
    if (p->prev_all) p->prev_all->next_all = p->next_all; else b->all = p->next_all;
    if (p->next_all) p->next_all->prev_all = p->prev_all;
    free(p);
}

static peer *peer_of(broker *b, message *m, int create) {
    return peer_find(b, zmq_msg_data(&m->f[0]), zmq_msg_size(&m->f[0]), create);
}

/* A request arrived: 1 when it is accepted now; 0 when it waits (or, past the backlog, was
 * dropped: `m` is then freed). */
static int peer_admit(broker *b, message *m) {
    peer *p = peer_of(b, m, 1);
    if (p->backlog.count || p->blocked.count || p->in_progress >= PEER_IN_PROGRESS) {
        size_t size = p->backlog_bytes + frame_size(m, m->n - 1);
        if (size > PEER_BACKLOG_BYTES) {
            message_free(m);
            peer_tidy(b, p);
        } else {
            if (p->backlog.count == 0) b->nbacklogged++;
            push_back(&p->backlog, m);
            p->backlog_bytes = size;
        }
        return 0;
    }
    p->in_progress++;
    return 1;
}

static void peer_gone(broker *b, peer *p) {
    message *m;
    if (p->backlog.count) b->nbacklogged--;
    if (p->blocked.count) b->nblocked--;
    while ((m = pop_front(&p->backlog))) message_free(m);
    while ((m = pop_front(&p->blocked))) message_free(m);
    p->backlog_bytes = 0;
    p->in_progress = 0;
    peer_tidy(b, p);
}

/* Hand a reply (frames of `m`, then `last` when given) to the client-facing socket; `m` is
 * consumed. `accepted`: it answers a request counted in progress. A reply the peer's full
 * queue refuses is kept and offered again; one to a peer that went away is dropped. */
static void send_reply(broker *b, message *m, int n, zmq_msg_t *last, int accepted) {
    peer *p = peer_of(b, m, 0);
    if (accepted && p && p->in_progress > 0) p->in_progress--;
    int err = send_frames(b->frontend, m, n, last, ZMQ_DONTWAIT);
    if (err == EAGAIN) {
        if (p == NULL) p = peer_of(b, m, 1);
        message *kept = message_new();
        kept->n = n + (last != NULL);
        for (int i = 0; i < n; i++) {
            zmq_msg_init(&kept->f[i]);
            zmq_msg_copy(&kept->f[i], &m->f[i]);
        }
        if (last) {
            zmq_msg_init(&kept->f[n]);
            zmq_msg_copy(&kept->f[n], last);
        }
        if (p->blocked.count == 0) b->nblocked++;
        push_back(&p->blocked, kept);
        p->in_progress++;
    } else if (err != 0) {
        if (p) peer_gone(b, p);
    } else if (p) {
        peer_tidy(b, p);
    }
    message_free(m);
}

/* Waiting requests that may be accepted now, to the pending queue; then refused replies
 * offered again (a peer refused again gets nothing new until it takes them). */
static void peers_release_and_retry(broker *b) {
    if (b->nbacklogged == 0 && b->nblocked == 0) return;
    for (peer *p = b->all, *next; p; p = next) {
        next = p->next_all;
        if (p->backlog.count && !p->blocked.count) {
            while (p->backlog.count && p->in_progress < PEER_IN_PROGRESS) {
                message *m = pop_front(&p->backlog);
                p->backlog_bytes -= frame_size(m, m->n - 1);
                p->in_progress++;
                memcpy(m->key, b->key_prefix, 8);
                uint64_t k = b->next_key++;
                for (int i = 0; i < 8; i++) m->key[15 - i] = (unsigned char)(k >> (8 * i));
                m->attempts = 0;
                push_back(&b->pending, m);
            }
            if (p->backlog.count == 0) b->nbacklogged--;
        }
    }
    for (peer *p = b->all, *next; p; p = next) {
        next = p->next_all;
        if (!p->blocked.count) continue;
        queue held = p->blocked;
        p->blocked.head = p->blocked.tail = NULL;
        p->blocked.count = 0;
        b->nblocked--;
        message *m;
        int gone = 0;
        while ((m = pop_front(&held))) {
            if (!gone) {
                /* offered again: counted answered, and in progress again if refused again */
                if (p->in_progress > 0) p->in_progress--;
                int err = send_frames(b->frontend, m, m->n, NULL, ZMQ_DONTWAIT);
                if (err == EAGAIN) {
                    if (p->blocked.count == 0) b->nblocked++;
                    push_back(&p->blocked, m);
                    p->in_progress++;
                    continue;
                }
                if (err != 0) gone = 1;
            }
            message_free(m);
        }
        if (gone) peer_gone(b, p);
        else peer_tidy(b, p);
    }
}

/* ------------------------------------------------------------------ workers */

static worker *worker_find(broker *b, const void *id, size_t len) {
    for (int i = 0; i < b->nworkers; i++) {
        worker *w = &b->workers[i];
        if (w->used && w->idlen == len && memcmp(w->id, id, len) == 0) return w;
    }
    return NULL;
}

static int live_workers(broker *b) {
    int n = 0;
    for (int i = 0; i < b->nworkers; i++) n += b->workers[i].used;
    return n;
}

static long room(broker *b) {
    if (b->stopping_since >= 0) return 0;
    /* the Python side owes this many replies: read no more clients until it catches up (a
     * flood of refusable messages is pushed back on, not queued without bound) */
    if (b->asks >= MAX_ASKS) return 0;
    if (live_workers(b) == 0 && b->unstaffed) return NO_WORKER_ROOM;
    return b->credits - b->pending.count;
}

static void new_key(broker *b, message *m) {
    memcpy(m->key, b->key_prefix, 8);
    uint64_t k = b->next_key++;
    for (int i = 0; i < 8; i++) m->key[15 - i] = (unsigned char)(k >> (8 * i));
}

static void worker_started(broker *b, int row, const void *id, size_t len, double now) {
    worker *w = NULL;
    for (int i = 0; i < b->nworkers; i++)
        if (!b->workers[i].used) { w = &b->workers[i]; break; }
    if (w == NULL) {
        if (b->nworkers == MAX_WORKERS) return;
        w = &b->workers[b->nworkers++];
    }
    memset(w, 0, sizeof(*w));
    w->used = 1;
    w->row = row;
    w->phase = STARTING;
    w->progress_at = now;
    w->idlen = len > ID_BYTES ? ID_BYTES : len;
    memcpy(w->id, id, w->idlen);
}

static void worker_died(broker *b, worker *w) {
    if (w->phase == SERVING) b->credits -= w->credits;
    /* its requests back to the front of the queue, in order; one that already killed
     * MAX_ATTEMPTS workers is answered INTERNAL instead */
    message *m;
    while ((m = pop_back(&w->inflight))) {
        if (m->attempts < MAX_ATTEMPTS) push_front(&b->pending, m);
        else ask_internal(b, m, "died");
    }
    w->used = 0;
}

/* The workers' socket refused a message for `w` (it is gone; its death will be seen): its
 * last request goes back to the front, and it gets nothing more. */
static void undeliverable(broker *b, worker *w) {
    message *m = pop_back(&w->inflight);
    if (m == NULL) return;
    m->attempts--;
    push_front(&b->pending, m);
    if (w->phase == SERVING) b->credits -= w->credits;
    w->credits = 0;
}

static int most_room(broker *b) {
    int best = -1, best_room = -2;
    for (int i = 0; i < b->nworkers; i++) {
        worker *w = &b->workers[i];
        if (!w->used) continue;
        int r = w->phase == SERVING ? w->credits : -1;
        if (r > best_room) { best_room = r; best = i; }
    }
    return best;
}

/* Each waiting request to the serving worker with the most room. */
static void dispatch(broker *b, double now) {
    if (b->stopping_since >= 0) return;
    while (b->pending.count && b->credits > 0) {
        int i = most_room(b);
        if (i < 0) return;
        worker *w = &b->workers[i];
        message *m = pop_front(&b->pending);
        if (w->inflight.count == 0) w->progress_at = now;
        m->attempts++;
        push_back(&w->inflight, m);
        w->credits--;
        b->credits--;
        /* [worker, peer, key, request] */
        int err = 0;
        if (zmq_send(b->backend, w->id, w->idlen, ZMQ_SNDMORE) < 0) err = zmq_errno();
        if (!err) {
            zmq_msg_t peer_copy, request_copy;
            zmq_msg_init(&peer_copy);
            zmq_msg_copy(&peer_copy, &m->f[0]);
            zmq_msg_send(&peer_copy, b->backend, ZMQ_SNDMORE);
            zmq_send(b->backend, m->key, KEY_BYTES, ZMQ_SNDMORE);
            zmq_msg_init(&request_copy);
            zmq_msg_copy(&request_copy, &m->f[m->n - 1]);
            zmq_msg_send(&request_copy, b->backend, 0);
        } else {
            undeliverable(b, w);
        }
    }
}

/* A worker that has answered nothing for longer than the worker timeout while requests wait
 * on it is killed (the Python side kills its process); its requests go to others when its
 * death is seen. */
static void kill_stuck(broker *b, double now) {
    for (int i = 0; i < b->nworkers; i++) {
        worker *w = &b->workers[i];
        if (w->used && w->inflight.count && w->phase == SERVING &&
            now - w->progress_at > b->worker_timeout) {
            w->phase = KILLED;
            b->credits -= w->credits;
            tell_worker(b, "KILL", w);
        }
    }
}

/* ------------------------------------------------------------------ events */

static void command(broker *b, message *m, double now);

/* Every command already sent by the Python side. */
static void drain_control(broker *b, double now) {
    int extra;
    for (;;) {
        message *m = message_new();
        if (read_message(b->control, m, MSG_FRAMES, &extra) < 0) { free(m); return; }
        command(b, m, now);
    }
}

static void from_worker(broker *b, message *m, double now) {
    worker *w = m->n ? worker_find(b, zmq_msg_data(&m->f[0]), frame_size(m, 0)) : NULL;
    if (w == NULL && m->n) {
        /* its START may have come while this loop was reading the workers' socket */
        drain_control(b, now);
        w = worker_find(b, zmq_msg_data(&m->f[0]), frame_size(m, 0));
    }
    if (w == NULL) { message_free(m); return; } /* died after sending: its requests re-sent */
    if (m->n == 4 && !frame_empty(m, 1)) {
        if (w->phase == STARTING) {
            warn(b, "sent a reply while starting; ignored", w);
        } else {
            message *request = take_key(&w->inflight, zmq_msg_data(&m->f[2]), frame_size(m, 2));
            if (request == NULL) {
                warn(b, "answered a request it does not hold; ignored", w);
            } else {
                w->credits++;
                if (w->phase == SERVING) b->credits++;
                w->progress_at = now;
                /* the reply: the request's envelope, then the worker's reply frame */
                send_reply(b, request, request->n - 1, &m->f[3], 1);
            }
        }
    } else if (m->n >= 3 && frame_empty(m, 1) && frame_is(m, 2, "WAITING")) {
        if (w->phase == STARTING) warn(b, "sent WAITING while starting; ignored", w);
        else w->progress_at = now;
    } else if (m->n >= 3 && frame_empty(m, 1) && frame_is(m, 2, "READY")) {
        if (w->phase != STARTING) {
            warn(b, "sent READY out of turn; ignored", w);
        } else {
            int credits = 1;
            if (m->n >= 4) {
                char text[16] = {0};
                size_t len = frame_size(m, 3);
                if (len < sizeof(text)) {
                    memcpy(text, zmq_msg_data(&m->f[3]), len);
                    char *end;
                    long value = strtol(text, &end, 10);
                    if (end != text && *end == 0) credits = value < 1 ? 1 : (int)value;
                }
            }
            if (credits > MAX_CREDITS) credits = MAX_CREDITS;
            w->phase = SERVING;
            w->credits = credits;
            b->credits += credits;
            w->progress_at = now;
            tell_worker(b, "READY", w);
        }
    } else {
        warn(b, "sent a message of unknown shape; ignored", w);
    }
    message_free(m);
}

/* The index of the request frame (just after the first empty frame, which must come after the
 * peer and at most MAX_HOPS hops), or -1: not a REQ envelope. As envelope.request_index. */
static int request_index(message *m) {
    if (m->n > 2 && frame_empty(m, 1)) return 2;
    int stop = m->n - 1 < MAX_HOPS + 2 ? m->n - 1 : MAX_HOPS + 2;
    for (int i = 2; i < stop; i++)
        if (frame_empty(m, i)) return i + 1;
    return -1;
}

static void from_client(broker *b, message *m, int extra) {
    int at = request_index(m);
    if (at < 0) { message_free(m); return; } /* no envelope: no way to answer it */
    if (m->n > at + 1 || extra) {
        /* a request is one frame: refused (the Python side writes the refusal) */
        char count[24];
        int len = snprintf(count, sizeof(count), "%d", m->n - at + extra);
        const void *args[1] = {count};
        size_t lens[1] = {(size_t)len};
        tell(b, "REFUSE", 1, args, lens, m, at);
        b->asks++;
        message_free(m);
        return;
    }
    if (peer_admit(b, m)) {
        new_key(b, m);
        m->attempts = 0;
        push_back(&b->pending, m);
    }
}

/* A command from the Python side: START row id | DIED id | ANSWER accepted frames... |
 * UNSTAFFED 0|1 | STOP | ABORT. */
static void command(broker *b, message *m, double now) {
    if (m->n >= 3 && frame_is(m, 0, "START")) {
        char text[16] = {0};
        size_t len = frame_size(m, 1) < 15 ? frame_size(m, 1) : 15;
        memcpy(text, zmq_msg_data(&m->f[1]), len);
        worker_started(b, atoi(text), zmq_msg_data(&m->f[2]), frame_size(m, 2), now);
    } else if (m->n >= 2 && frame_is(m, 0, "DIED")) {
        worker *w = worker_find(b, zmq_msg_data(&m->f[1]), frame_size(m, 1));
        if (w) worker_died(b, w);
    } else if (m->n >= 4 && frame_is(m, 0, "ANSWER")) {
        int accepted = frame_is(m, 1, "1");
        if (b->asks > 0) b->asks--;
        message *reply = message_new();
        reply->n = m->n - 2;
        for (int i = 2; i < m->n; i++) {
            zmq_msg_init(&reply->f[i - 2]);
            zmq_msg_copy(&reply->f[i - 2], &m->f[i]);
        }
        send_reply(b, reply, reply->n, NULL, accepted);
    } else if (m->n >= 2 && frame_is(m, 0, "UNSTAFFED")) {
        b->unstaffed = frame_is(m, 1, "1");
    } else if (m->n >= 1 && frame_is(m, 0, "STOP")) {
        if (b->stopping_since < 0) b->stopping_since = now;
    } else if (m->n >= 1 && frame_is(m, 0, "ABORT")) {
        b->abort = 1;
    }
    message_free(m);
}

static void tick(broker *b, double now) {
    peers_release_and_retry(b);
    if (live_workers(b) == 0 && b->unstaffed) {
        message *m;
        while ((m = pop_front(&b->pending))) ask_internal(b, m, "unstaffed");
    }
    kill_stuck(b, now);
    dispatch(b, now);
}

static int done(broker *b, double now) {
    if (b->abort) return 1;
    if (b->stopping_since < 0) return 0;
    int busy = 0;
    for (int i = 0; i < b->nworkers; i++)
        if (b->workers[i].used && b->workers[i].inflight.count) busy = 1;
    return !busy || now - b->stopping_since > STOP_GRACE_SECONDS;
}

static void free_all(broker *b) {
    message *m;
    while ((m = pop_front(&b->pending))) message_free(m);
    for (int i = 0; i < b->nworkers; i++)
        while ((m = pop_front(&b->workers[i].inflight))) message_free(m);
    while (b->all) {
        peer *p = b->all;
        b->all = p->next_all;
        while ((m = pop_front(&p->backlog))) message_free(m);
        while ((m = pop_front(&p->blocked))) message_free(m);
        free(p);
    }
}

/* Run the data path on sockets made, set up and bound by the Python side, which must not
 * touch them until this returns (after STOP and the grace for replies in flight, or ABORT).
 * Returns 0. */
int libsrv_data_path_run(void *frontend, void *backend, void *control, double worker_timeout,
                         long poll_ms, long blocked_retry_ms) {
    broker *b = calloc(1, sizeof(broker));
    if (b == NULL) return -1;
    b->frontend = frontend;
    b->backend = backend;
    b->control = control;
    b->worker_timeout = worker_timeout;
    b->poll_ms = poll_ms;
    b->blocked_retry_ms = blocked_retry_ms;
    b->stopping_since = -1;
    if (getrandom(b->key_prefix, sizeof(b->key_prefix), 0) != sizeof(b->key_prefix)) {
        uint64_t t = (uint64_t)(now_seconds() * 1e9);
        memcpy(b->key_prefix, &t, sizeof(t));
    }
    message *spare = message_new(); /* the next message read goes here */
    for (;;) {
        double now = now_seconds();
        if (done(b, now)) break;
        zmq_pollitem_t items[3] = {
            {b->control, 0, ZMQ_POLLIN, 0},
            {b->backend, 0, ZMQ_POLLIN, 0},
            {b->frontend, 0, ZMQ_POLLIN, 0},
        };
        long want_frontend = room(b) > 0;
        zmq_poll(items, want_frontend ? 3 : 2, b->nblocked ? b->blocked_retry_ms : b->poll_ms);
        now = now_seconds();
        int extra;
        /* commands first: a worker's START is always read before its READY */
        while (read_message(b->control, spare, MSG_FRAMES, &extra) == 0) {
            command(b, spare, now);
            spare = message_new();
        }
        /* replies before requests: a worker that died may have answered */
        while (read_message(b->backend, spare, 5, &extra) == 0) {
            from_worker(b, spare, now);
            spare = message_new();
        }
        if (want_frontend && (items[2].revents & ZMQ_POLLIN)) {
            for (long left = room(b); left > 0 && b->asks < MAX_ASKS; left--) {
                if (read_message(b->frontend, spare, KEPT_FRAMES, &extra) < 0) break;
                from_client(b, spare, extra);
                spare = message_new();
            }
        }
        tick(b, now);
    }
    free(spare);
    free_all(b);
    free(b);
    return 0;
}
