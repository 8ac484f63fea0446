/* Calls km served as ENOSYS before (issue 13, item 7), each printed with its
 * result or errno so that the output can be compared with native: scheduling
 * parameters, preadv2/pwritev2, splice/tee/vmsplice, pidfds, membarrier, the old
 * getdents, and the errors Linux gives for clock_settime and chroot before any
 * privilege check. Argument: a scratch directory; with a second argument
 * "privileged", only what a payload is never privileged for under km (run natively
 * as root these would succeed), and a call km does not serve. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

static void show(const char *what, long rc) {
    if (rc < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, rc);
}

static void scheduling(void) {
    struct sched_param p = {0};
    show("sched_getscheduler", sched_getscheduler(0));
    show("sched_getparam", sched_getparam(0, &p));
    printf("priority %d\n", p.sched_priority);
    show("sched_setscheduler other", sched_setscheduler(0, SCHED_OTHER, &p));
    show("sched_setparam", sched_setparam(0, &p));
    p.sched_priority = 5;
    show("sched_setscheduler other prio 5", sched_setscheduler(0, SCHED_OTHER, &p));
    show("sched_setscheduler bad policy", sched_setscheduler(0, 77, &p));
    show("sched_setparam NULL", syscall(SYS_sched_setparam, 0, NULL));
    show("sched_getparam -1", sched_getparam(-1, &p));
    struct timespec ts;
    show("sched_rr_get_interval", sched_rr_get_interval(0, &ts));
    show("sched_rr_get_interval bad pointer", syscall(SYS_sched_rr_get_interval, 0, 8));
}

static void vectored2(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/v2", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    char a[] = "hello ", b[] = "world";
    struct iovec w[] = {{a, 6}, {b, 5}};
    show("pwritev2 at 0", pwritev2(fd, w, 2, 0, 0));
    show("pwritev2 at -1 (position)", pwritev2(fd, w, 1, -1, 0));
    show("lseek", lseek(fd, 0, SEEK_CUR));
    char r1[4] = {0}, r2[16] = {0};
    struct iovec r[] = {{r1, 3}, {r2, 15}};
    show("preadv2 at 2", preadv2(fd, r, 2, 2, 0));
    printf("read [%s][%s]\n", r1, r2);
    show("preadv2 RWF_HIPRI", preadv2(fd, r, 2, 0, RWF_HIPRI));
    show("preadv2 bad flags", preadv2(fd, r, 2, 0, 0x4000));
    show("preadv2 at -2", preadv2(fd, r, 2, -2, 0));
    close(fd);
}

static void splicing(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/sp", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    write(fd, "0123456789", 10);
    int p[2], q[2];
    pipe(p);
    pipe(q);
    loff_t off = 3;
    show("splice file->pipe", splice(fd, &off, p[1], NULL, 4, 0));
    printf("offset now %lld\n", (long long)off);
    show("tee", tee(p[0], q[1], 100, 0));
    char buf[16] = {0};
    show("read teed copy", read(q[0], buf, sizeof buf - 1));
    printf("teed [%s]\n", buf);
    off = 0;
    show("splice pipe->file", splice(p[0], NULL, fd, &off, 4, 0));
    char head[11] = {0};
    pread(fd, head, 10, 0);
    printf("file [%s]\n", head);
    struct iovec v = {"vmsplice!", 9};
    show("vmsplice into pipe", vmsplice(p[1], &v, 1, 0));
    char got[10] = {0};
    struct iovec out = {got, 9};
    show("vmsplice out of pipe", vmsplice(p[0], &out, 1, 0));
    printf("vmspliced [%s]\n", got);
    show("splice bad flags", splice(fd, NULL, p[1], NULL, 1, 0x100));
    show("splice file->file", splice(fd, NULL, fd, NULL, 1, 0));
    close(fd);
}

static void pidfds(void) {
    int self = syscall(SYS_pidfd_open, getpid(), 0);
    show("pidfd_open self", self >= 0 ? 0 : -1);
    show("pidfd_open bad flags", syscall(SYS_pidfd_open, getpid(), 1));
    show("pidfd_open 0", syscall(SYS_pidfd_open, 0, 0));
    printf("cloexec %d\n", fcntl(self, F_GETFD) & FD_CLOEXEC);
    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(3);
    }
    int pfd = syscall(SYS_pidfd_open, child, 0);
    struct pollfd pf = {pfd, POLLIN, 0};
    show("poll before exit", poll(&pf, 1, 0));
    show("pidfd_send_signal", syscall(SYS_pidfd_send_signal, pfd, SIGTERM, NULL, 0));
    show("poll after signal", poll(&pf, 1, 10000));
    int status;
    waitpid(child, &status, 0);
    printf("child signalled %d sig %d\n", WIFSIGNALED(status), WTERMSIG(status));
    show("pidfd_send_signal bad flags", syscall(SYS_pidfd_send_signal, pfd, 0, NULL, 8));
    show("pidfd_send_signal on a pipe", syscall(SYS_pidfd_send_signal, 0, 0, NULL, 0));
}

static void mmsg(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    for (int i = 0; i < 3; i++) {
        char m[8];
        int n = snprintf(m, sizeof m, "msg%d", i);
        send(sv[0], m, n, 0);
    }
    char bufs[5][16] = {{0}};
    struct iovec iov[5];
    struct mmsghdr hdrs[5];
    memset(hdrs, 0, sizeof hdrs);
    for (int i = 0; i < 5; i++) {
        iov[i] = (struct iovec){bufs[i], sizeof bufs[i] - 1};
        hdrs[i].msg_hdr.msg_iov = &iov[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(sv[1], hdrs, 5, MSG_WAITFORONE, NULL);
    show("recvmmsg MSG_WAITFORONE", n);
    for (int i = 0; i < n; i++)
        printf("message %d: %s (%u bytes)\n", i, bufs[i], hdrs[i].msg_len);
    show("recvmmsg nothing left", recvmmsg(sv[1], hdrs, 5, MSG_DONTWAIT, NULL));
    struct timespec bad = {0, -1};
    show("recvmmsg bad timeout", recvmmsg(sv[1], hdrs, 5, 0, &bad));
}

struct old_dirent {
    unsigned long ino, off;
    unsigned short reclen;
    char name[];
};

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void old_getdents(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    char buf[4096], *names[64];
    int n = 0;
    long got;
    while ((got = syscall(SYS_getdents, fd, buf, sizeof buf)) > 0) {
        for (long at = 0; at < got;) {
            struct old_dirent *d = (struct old_dirent *)(buf + at);
            char type = buf[at + d->reclen - 1];
            if (n < 64 && asprintf(&names[n], "%s type %d", d->name, type) > 0)
                n++;
            at += d->reclen;
        }
    }
    show("getdents end", got);
    qsort(names, n, sizeof *names, by_name);
    for (int i = 0; i < n; i++)
        printf("entry %s\n", names[i]);
    close(fd);
}

static void refused(void) {
    struct timespec bad = {0, 2000000000};
    show("clock_settime bad nsec", clock_settime(CLOCK_REALTIME, &bad));
    struct timespec ok = {0, 0};
    show("clock_settime monotonic", clock_settime(CLOCK_MONOTONIC, &ok));
    show("clock_settime bad pointer", syscall(SYS_clock_settime, CLOCK_REALTIME, 8));
    show("chroot missing", chroot("/nonexistent/dir"));
    show("chroot a file", chroot("/etc/passwd"));
    show("membarrier query", syscall(SYS_membarrier, 0, 0, 0));
    unsigned char set[8];
    show("rt_sigpending size 4", syscall(SYS_rt_sigpending, set, 4));
    show("rt_sigpending size 8", syscall(SYS_rt_sigpending, set, 8));
    show("rt_sigpending size 9", syscall(SYS_rt_sigpending, set, 9));
    show("openat(-1, absolute)", openat(-1, "/etc/passwd", O_RDONLY) >= 0 ? 0 : -1);
    show("openat(999, absolute)", openat(999, "/etc/passwd", O_RDONLY) >= 0 ? 0 : -1);
    show("openat(-1, relative)", openat(-1, "etc/passwd", O_RDONLY));
    int ro = open("/etc/passwd", O_RDONLY), wo = open("/dev/null", O_WRONLY);
    void *m = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0);
    show("mmap shared writable of a read-only descriptor", m == MAP_FAILED ? -1 : 0);
    m = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro, 0);
    show("mmap private writable of a read-only descriptor", m == MAP_FAILED ? -1 : 0);
    m = mmap(0, 4096, PROT_READ, MAP_PRIVATE, wo, 0);
    show("mmap of a write-only descriptor", m == MAP_FAILED ? -1 : 0);
}

static void privileged(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    show("clock_settime", clock_settime(CLOCK_REALTIME, &now));
    show("sethostname", sethostname("x", 1));
    show("setdomainname", setdomainname("x", 1));
    show("chroot /", chroot("/"));
    int pfd = syscall(SYS_pidfd_open, getpid(), 0);
    show("pidfd_getfd", syscall(438, pfd, 0, 0));
    show("io_uring_setup", syscall(425, 1, NULL));
    void *low = mmap((void *)0x1000, 4096, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    show("mmap fixed below mmap_min_addr", low == MAP_FAILED ? -1 : 0);
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 2 && strcmp(argv[2], "privileged") == 0) {
        privileged();
        return 0;
    }
    scheduling();
    vectored2(argv[1]);
    splicing(argv[1]);
    pidfds();
    old_getdents(argv[1]);
    mmsg();
    refused();
    printf("done\n");
    return 0;
}
