/* The load generator's hot loops in C: what a load process does between two replies, without
 * the Python interpreter on the way (docs/bench.md, "Is the load generator setting the pace?").
 *
 * Built on demand by libsrv_bench/client_loop.py against the libzmq that pyzmq loaded (the
 * sockets Python made are the ones used here), with the layout of the arrays below given as
 * -D definitions from that module: one place for each. When it cannot be built, the Python
 * loops do the same work.
 *
 * bench_loop: the clients of one load process (libsrv_bench/load.py), one REQ socket each.
 *   It sends each client's requests, already drawn and encoded by Python, at the times the
 *   schedule says (closed loop: as soon as the reply is in, plus think time; open loop: at
 *   fixed intended times), and notes every reply: times, attempts, and the reply's bytes in an
 *   arena. It returns to Python when Python has something to do: the timeout scan is due
 *   (TICK), a client has no drawn request left (FRAMES), the record arrays or the arena are
 *   full (GROW), or the run is over (DONE). Python keeps the timeouts, the retries on a fresh
 *   socket, and reading the replies once the run is over.
 *
 * lean_loop: the calibration's client (libsrv_bench/lean.py): one REQ socket, the same frames
 *   over and over, nothing recorded but a count.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "zmq_api.h"  /* libsrv/zmq_api.h: libzmq's API, declared once */

#if !defined(CLIENT_FIELDS) || !defined(RECORD_FIELDS) || !defined(STATUS_DONE) || \
    !defined(C_RECORDS) || !defined(MAX_CLIENTS)
#error "build this with libsrv_bench/client_loop.py, which gives the arrays' layout"
#endif

static int64_t now_ns(void) {  /* CLOCK_MONOTONIC: Python's time.perf_counter_ns() on Linux */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define FIELD(k, name) state[(k) * CLIENT_FIELDS + (name)]

/* Whether client k has a request still to send: its quota is not spent, and (in a run of a
 * duration) its next send is due before the end. */
static int has_work(const int64_t *ctl, const int64_t *state, long k) {
    return FIELD(k, F_QUOTA) != 0 && (ctl[C_END] < 0 || FIELD(k, F_NEXT_AT) < ctl[C_END]);
}

/* Send client k's next request; STATUS_FRAMES (ctl[C_WHO] = k) when Python must draw more. */
static int send_next(int64_t *ctl, int64_t *state, void *const *ptrs, long k) {
    int64_t index = FIELD(k, F_NEXT);
    if (index >= FIELD(k, F_AVAIL)) {
        ctl[C_WHO] = k;
        return STATUS_FRAMES;
    }
    const int64_t *offsets = (const int64_t *)ptrs[k * POINTERS + P_OFFSETS];
    const char *frames = (const char *)ptrs[k * POINTERS + P_FRAMES];
    int64_t at = index - FIELD(k, F_BATCH_BASE);
    /* stamped before it goes: once sent, the server may act on it before this thread runs
     * again, and the verifier must never see an operation start after it took effect */
    int64_t now = now_ns();
    /* blocking, as the Python loop sends: a REQ socket queues at once unless it has no
     * connection at all */
    if (zmq_send(ptrs[k * POINTERS + P_SOCKET], frames + offsets[at],
                 (size_t)(offsets[at + 1] - offsets[at]), 0) < 0) {
        ctl[C_WHO] = k;
        ctl[C_ERRNO] = zmq_errno();
        return STATUS_ERROR;
    }
    FIELD(k, F_CURRENT) = index;
    FIELD(k, F_NEXT) = index + 1;
    FIELD(k, F_SENT) = 1;
    FIELD(k, F_SENT_AT) = now;
    FIELD(k, F_FIRST_SENT) = now;
    FIELD(k, F_ATTEMPTS) = 1;
    if (FIELD(k, F_QUOTA) > 0) FIELD(k, F_QUOTA) -= 1;
    return 0;
}

/* Note client k's reply (received at `now`, its bytes in `msg`) and schedule its next send,
 * as load.py's `_finish` does. STATUS_GROW when the arrays or the arena have no room: the
 * message is then kept in `pending` for the next call. */
static int finish(int64_t *ctl, int64_t *state, int64_t *records, char *arena, long k,
                  int64_t now, zmq_msg_t *msg) {
    size_t size = zmq_msg_size(msg);
    if (ctl[C_RECORDS] >= ctl[C_RECORD_ROOM] ||
        ctl[C_ARENA_USED] + (int64_t)size > ctl[C_ARENA_ROOM]) {
        ctl[C_WHO] = k;
        ctl[C_PENDING_AT] = now;
        ctl[C_NEED] = (int64_t)size;
        return STATUS_GROW;
    }
    int64_t *r = records + ctl[C_RECORDS] * RECORD_FIELDS;
    r[R_CLIENT] = k;
    r[R_INDEX] = FIELD(k, F_CURRENT);
    r[R_INTENDED] = FIELD(k, F_INTENDED);
    r[R_SENT] = FIELD(k, F_FIRST_SENT);
    r[R_RECEIVED] = now;
    r[R_ATTEMPTS] = FIELD(k, F_ATTEMPTS);
    r[R_OFFSET] = ctl[C_ARENA_USED];
    r[R_SIZE] = (int64_t)size;
    memcpy(arena + ctl[C_ARENA_USED], zmq_msg_data(msg), size);
    ctl[C_ARENA_USED] += (int64_t)size;
    ctl[C_RECORDS] += 1;
    FIELD(k, F_SENT) = 0;
    if (ctl[C_INTERVAL] > 0) {
        FIELD(k, F_INTENDED) += ctl[C_INTERVAL];
        FIELD(k, F_NEXT_AT) = FIELD(k, F_INTENDED);
    } else {
        FIELD(k, F_INTENDED) = now + ctl[C_THINK];
        FIELD(k, F_NEXT_AT) = FIELD(k, F_INTENDED);
    }
    return 0;
}

/* After client k's reply: its next request now if it is due (the clock read again, so that a
 * send is never stamped with its reply's instant). */
static int follow(int64_t *ctl, int64_t *state, void *const *ptrs, long k) {
    if (!has_work(ctl, state, k)) return 0;
    int64_t now = now_ns();
    if (FIELD(k, F_NEXT_AT) > now) return 0;
    return send_next(ctl, state, ptrs, k);
}

/* Drive `clients` clients until Python has something to do; returns a STATUS_ code. `ctl`,
 * `state`, `ptrs` and `records` are laid out as libsrv_bench/client_loop.py says; `pending`
 * holds a reply that did not fit (ctl[C_WHO] >= 0 with STATUS_GROW) until the next call. */
int bench_loop(int64_t *ctl, int64_t *state, void *const *ptrs, int64_t *records, char *arena,
               zmq_msg_t *pending, long clients) {
    zmq_pollitem_t items[MAX_CLIENTS];
    if (clients > MAX_CLIENTS) return STATUS_ERROR;
    int status;
    if (ctl[C_WHO] >= 0 && ctl[C_NEED] >= 0) {  /* the reply kept when the arena was full */
        long k = (long)ctl[C_WHO];
        status = finish(ctl, state, records, arena, k, ctl[C_PENDING_AT], pending);
        if (status) return status;
        zmq_msg_close(pending);
        ctl[C_WHO] = -1;
        ctl[C_NEED] = -1;
        if ((status = follow(ctl, state, ptrs, k))) return status;
    }
    ctl[C_WHO] = -1;
    for (long k = 0; k < clients; k++) {
        items[k].socket = ptrs[k * POINTERS + P_SOCKET];
        items[k].fd = 0;
        items[k].events = ZMQ_POLLIN;
        items[k].revents = 0;
    }
    for (;;) {
        int64_t now = now_ns();
        int64_t soonest = INT64_MAX;
        long outstanding = 0;
        for (long k = 0; k < clients; k++) {
            if (FIELD(k, F_SENT)) {
                outstanding++;
            } else if (has_work(ctl, state, k)) {
                if (FIELD(k, F_NEXT_AT) <= now) {
                    if ((status = send_next(ctl, state, ptrs, k))) return status;
                    outstanding++;
                } else if (FIELD(k, F_NEXT_AT) < soonest) {
                    soonest = FIELD(k, F_NEXT_AT);
                }
            }
        }
        if (!outstanding && soonest == INT64_MAX) return STATUS_DONE;
        now = now_ns();
        if (now >= ctl[C_RETURN_AT]) return STATUS_TICK;
        long wait_ms;
        if (soonest < ctl[C_RETURN_AT]) {  /* a send due: wake no later (the last ms is spun) */
            wait_ms = soonest > now ? (long)((soonest - now) / 1000000) : 0;
        } else {  /* only Python's scan is due, which may come a little late */
            wait_ms = (long)((ctl[C_RETURN_AT] - now + 999999) / 1000000);
        }
        if (zmq_poll(items, (int)clients, wait_ms) < 0) {
            if (zmq_errno() == EINTR) continue;
            ctl[C_ERRNO] = zmq_errno();
            return STATUS_ERROR;
        }
        for (long k = 0; k < clients; k++) {
            if (!(items[k].revents & ZMQ_POLLIN)) continue;
            zmq_msg_t msg;
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, items[k].socket, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&msg);
                continue;
            }
            int64_t received = now_ns();
            while (zmq_msg_more(&msg)) {  /* a reply of several frames: the first is kept */
                zmq_msg_t more;
                zmq_msg_init(&more);
                zmq_msg_recv(&more, items[k].socket, 0);
                int again = zmq_msg_more(&more);
                zmq_msg_close(&more);
                if (!again) break;
            }
            if (!FIELD(k, F_SENT)) {  /* a late reply to a request already given up */
                zmq_msg_close(&msg);
                continue;
            }
            status = finish(ctl, state, records, arena, k, received, &msg);
            if (status == STATUS_GROW) {
                zmq_msg_init(pending);
                zmq_msg_move(pending, &msg);
                return status;
            }
            zmq_msg_close(&msg);
            if ((status = follow(ctl, state, ptrs, k))) return status;
        }
    }
}

/* One lean client: send frames[i % count] (concatenated, `offsets` has count + 1 entries) and
 * wait for its reply, until `end` (CLOCK_MONOTONIC ns). The replies counted; *timed_out is 1
 * when a reply did not come within the socket's receive timeout (then the client stops: a
 * REQ socket without its reply cannot send again). */
long lean_loop(void *sock, const char *frames, const int64_t *offsets, long count, int64_t end,
               long *timed_out) {
    char reply[256];  /* only counted: a longer reply is truncated, which zmq_recv allows */
    long replies = 0, i = 0;
    *timed_out = 0;
    while (now_ns() < end) {
        if (zmq_send(sock, frames + offsets[i], (size_t)(offsets[i + 1] - offsets[i]), 0) < 0)
            break;
        if (zmq_recv(sock, reply, sizeof reply, 0) < 0) {
            *timed_out = 1;
            break;
        }
        replies++;
        if (++i == count) i = 0;
    }
    return replies;
}
