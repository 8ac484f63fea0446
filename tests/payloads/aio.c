/* Linux AIO through the raw syscalls (tests/aio.rs): a context, writes and reads
 * (plain and vectored) that complete with their byte counts, fsync and fdatasync,
 * a poll on a pipe that completes only once data is there, an eventfd told of each
 * completion, io_cancel of a waiting poll, the errors of bad arguments, and
 * io_destroy. argv[1]: a scratch directory. Prints what it sees. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Linux's <linux/aio_abi.h>, which musl-gcc's headers lack (x86-64 layout). */
typedef unsigned long aio_context_t;
enum { IOCB_CMD_PREAD = 0, IOCB_CMD_PWRITE = 1, IOCB_CMD_FSYNC = 2, IOCB_CMD_FDSYNC = 3,
       IOCB_CMD_POLL = 5, IOCB_CMD_PREADV = 7 };
#define IOCB_FLAG_RESFD 1
struct iocb {
    uint64_t aio_data;
    uint32_t aio_key, aio_rw_flags;
    uint16_t aio_lio_opcode;
    int16_t aio_reqprio;
    uint32_t aio_fildes;
    uint64_t aio_buf, aio_nbytes;
    int64_t aio_offset;
    uint64_t aio_reserved2;
    uint32_t aio_flags, aio_resfd;
};
struct io_event {
    uint64_t data, obj;
    int64_t res, res2;
};

static long io_setup(unsigned n, aio_context_t *c) { return syscall(SYS_io_setup, n, c); }
static long io_destroy(aio_context_t c) { return syscall(SYS_io_destroy, c); }
static long io_submit(aio_context_t c, long n, struct iocb **v) { return syscall(SYS_io_submit, c, n, v); }
static long io_getevents(aio_context_t c, long min, long n, struct io_event *e, struct timespec *t) {
    return syscall(SYS_io_getevents, c, min, n, e, t);
}
static long io_cancel(aio_context_t c, struct iocb *cb, struct io_event *e) {
    return syscall(SYS_io_cancel, c, cb, e);
}

static const char *err(long rc) { return rc < 0 ? strerror(errno) : "ok"; }

static struct iocb cb(int op, int fd, void *buf, size_t n, long long off, uint64_t data) {
    struct iocb c;
    memset(&c, 0, sizeof c);
    c.aio_lio_opcode = op;
    c.aio_fildes = fd;
    c.aio_buf = (uintptr_t)buf;
    c.aio_nbytes = n;
    c.aio_offset = off;
    c.aio_data = data;
    return c;
}

/* Takes `n` events and prints them in data order. */
static void take(aio_context_t ctx, long n, const char *what) {
    struct io_event ev[8];
    long got = io_getevents(ctx, n, 8, ev, NULL);
    printf("%s: %ld events", what, got);
    for (long want = 0; want < 16; want++)
        for (long i = 0; i < got; i++)
            if ((long)ev[i].data == want)
                printf(" [data %lld res %lld]", (long long)ev[i].data, (long long)ev[i].res);
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc != 2 || chdir(argv[1]))
        return 1;
    setvbuf(stdout, NULL, _IONBF, 0);
    aio_context_t ctx = 0;
    long rc = io_setup(16, &ctx);
    printf("io_setup: %s, context %s\n", err(rc), ctx ? "set" : "zero");
    aio_context_t again = ctx;
    printf("io_setup over a set context: %s\n", err(io_setup(16, &again)));
    aio_context_t zero = 0;
    printf("io_setup of 0 events: %s\n", err(io_setup(0, &zero)));

    int fd = open("file", O_RDWR | O_CREAT | O_TRUNC, 0600);
    char a[100], b[50], back[150] = {0};
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    struct iocb w1 = cb(IOCB_CMD_PWRITE, fd, a, sizeof a, 0, 1);
    struct iocb w2 = cb(IOCB_CMD_PWRITE, fd, b, sizeof b, 100, 2);
    struct iocb *ws[] = {&w1, &w2};
    printf("io_submit 2 writes: %ld\n", io_submit(ctx, 2, ws));
    take(ctx, 2, "writes");

    struct iovec iov[2] = {{back, 120}, {back + 120, 30}};
    struct iocb r1 = cb(IOCB_CMD_PREADV, fd, iov, 2, 0, 3);
    struct iocb r2 = cb(IOCB_CMD_PREAD, fd, back, 10, 145, 4);
    struct iocb s1 = cb(IOCB_CMD_FSYNC, fd, NULL, 0, 0, 5);
    struct iocb s2 = cb(IOCB_CMD_FDSYNC, fd, NULL, 0, 0, 6);
    struct iocb *rs[] = {&r1, &r2, &s1, &s2};
    printf("io_submit preadv, pread, fsync, fdatasync: %ld\n", io_submit(ctx, 4, rs));
    take(ctx, 4, "reads and syncs");
    printf("read back: %.5s...%.5s\n", back + 95, back + 145);

    /* A read into memory the payload cannot write completes with -EFAULT. */
    struct iocb bad = cb(IOCB_CMD_PREAD, fd, (void *)8, 10, 0, 7);
    struct iocb *bads[] = {&bad};
    printf("io_submit read to a bad buffer: %ld\n", io_submit(ctx, 1, bads));
    take(ctx, 1, "bad buffer");

    struct timespec none = {0, 0};
    struct io_event ev[4];
    printf("io_getevents with nothing done, no wait: %ld\n", io_getevents(ctx, 1, 4, ev, &none));

    /* A poll completes once the pipe is readable; its eventfd counts it. */
    int p[2];
    pipe(p);
    int efd = eventfd(0, EFD_NONBLOCK);
    struct iocb pl = cb(IOCB_CMD_POLL, p[0], (void *)(uintptr_t)POLLIN, 0, 0, 8);
    pl.aio_flags = IOCB_FLAG_RESFD;
    pl.aio_resfd = efd;
    struct iocb *pls[] = {&pl};
    printf("io_submit poll: %ld\n", io_submit(ctx, 1, pls));
    struct timespec short_wait = {0, 50 * 1000 * 1000};
    printf("poll before data (50 ms): %ld events\n", io_getevents(ctx, 1, 4, ev, &short_wait));
    write(p[1], "x", 1);
    take(ctx, 1, "poll after data");
    uint64_t count = 0;
    rc = read(efd, &count, sizeof count);
    printf("eventfd: %s %llu\n", err(rc), (unsigned long long)count);

    /* A poll still waiting can be cancelled; a finished request cannot. */
    int q[2];
    pipe(q);
    struct iocb pc = cb(IOCB_CMD_POLL, q[0], (void *)(uintptr_t)POLLIN, 0, 0, 9);
    struct iocb *pcs[] = {&pc};
    printf("io_submit poll to cancel: %ld\n", io_submit(ctx, 1, pcs));
    struct io_event res;
    printf("io_cancel waiting poll: %s\n", err(io_cancel(ctx, &pc, &res)));
    take(ctx, 1, "cancelled poll");
    printf("io_cancel finished request: %s\n", err(io_cancel(ctx, &w1, &res)));

    struct iocb unknown = cb(99, fd, NULL, 0, 0, 10);
    struct iocb badfd = cb(IOCB_CMD_PREAD, 999, back, 1, 0, 11);
    struct iocb *u1[] = {&unknown}, *u2[] = {&badfd}, *u3[] = {&w1, &badfd};
    printf("unknown opcode: %s\n", err(io_submit(ctx, 1, u1)));
    printf("bad descriptor: %s\n", err(io_submit(ctx, 1, u2)));
    printf("good then bad: %ld\n", io_submit(ctx, 2, u3));
    take(ctx, 1, "good one");
    printf("io_submit on no context: %s\n", err(io_submit(12345, 1, ws)));
    printf("io_getevents min above nr: %s\n", err(io_getevents(ctx, 3, 2, ev, NULL)));
    printf("io_destroy: %s\n", err(io_destroy(ctx)));
    printf("io_destroy again: %s\n", err(io_destroy(ctx)));
    printf("aio done\n");
    return 0;
}
