/* The part of libzmq's stable C API that the kit's C files use (zmq.h is not shipped with
 * pyzmq, and the files are built against the libzmq pyzmq loaded: libsrv/data_path_build.py).
 * Included by libsrv/data_path.c and libsrv_bench/client_loop.c. */
#ifndef LIBSRV_ZMQ_API_H
#define LIBSRV_ZMQ_API_H
#include <stddef.h>

typedef struct zmq_msg_t {
    unsigned char _[64] __attribute__((aligned(sizeof(void *))));
} zmq_msg_t;
typedef struct {
    void *socket;
    int fd;
    short events;
    short revents;
} zmq_pollitem_t;
int zmq_msg_init(zmq_msg_t *msg);
int zmq_msg_init_size(zmq_msg_t *msg, size_t size);
int zmq_msg_close(zmq_msg_t *msg);
int zmq_msg_copy(zmq_msg_t *dest, zmq_msg_t *src);
int zmq_msg_move(zmq_msg_t *dest, zmq_msg_t *src);
int zmq_msg_recv(zmq_msg_t *msg, void *s, int flags);
int zmq_msg_send(zmq_msg_t *msg, void *s, int flags);
void *zmq_msg_data(zmq_msg_t *msg);
size_t zmq_msg_size(const zmq_msg_t *msg);
int zmq_msg_more(const zmq_msg_t *msg);
int zmq_send(void *s, const void *buf, size_t len, int flags);
int zmq_recv(void *s, void *buf, size_t len, int flags);
int zmq_poll(zmq_pollitem_t *items, int nitems, long timeout);
int zmq_errno(void);
#define ZMQ_DONTWAIT 1
#define ZMQ_SNDMORE 2
#define ZMQ_POLLIN 1

#endif
