/* Signal semantics real programs rely on (issue 13), one mode per argument; prints
 * what it saw, and the output must be the same as native:
 *   pwait     pselect6/ppoll/epoll_pwait/epoll_pwait2 apply their temporary mask for
 *             the wait only: SIGCHLD blocked, an empty mask passed, a child's exit
 *             interrupts the wait (EINTR) and runs the handler; a bad mask is EFAULT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t chld_seen;

static void on_chld(int sig) {
    (void)sig;
    chld_seen++;
}

static int blocked(int sig) {
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    return sigismember(&now, sig);
}

static void reap(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

/* A child that exits shortly, so that its SIGCHLD most often comes during the wait
 * (the outcome is the same when it comes before). */
static pid_t short_child(void) {
    pid_t pid = fork();
    if (pid == 0) {
        usleep(50 * 1000);
        _exit(0);
    }
    return pid;
}

static long wait_pselect(const sigset_t *mask) {
    struct timespec ts = {30, 0};
    return pselect(0, NULL, NULL, NULL, &ts, mask);
}

static long wait_ppoll(const sigset_t *mask) {
    struct timespec ts = {30, 0};
    return ppoll(NULL, 0, &ts, mask);
}

static int epfd;

static long wait_epoll_pwait(const sigset_t *mask) {
    struct epoll_event ev;
    return epoll_pwait(epfd, &ev, 1, 30000, mask);
}

static long wait_epoll_pwait2(const sigset_t *mask) {
    struct epoll_event ev;
    struct timespec ts = {30, 0};
    return syscall(SYS_epoll_pwait2, epfd, &ev, 1, &ts, mask, 8);
}

/* The wait with an empty temporary mask while SIGCHLD is blocked. */
static void interrupted_by_child(const char *name, long (*wait)(const sigset_t *)) {
    sigset_t empty;
    sigemptyset(&empty);
    chld_seen = 0;
    pid_t pid = short_child();
    long r = wait(&empty);
    int err = errno;
    printf("%s: returned %ld (%s), handler ran %d, SIGCHLD blocked after %d\n", name, r,
           r < 0 ? strerror(err) : "-", (int)chld_seen, blocked(SIGCHLD));
    reap(pid);
    /* The reaped child's SIGCHLD may be pending again: drop it. */
    struct timespec zero = {0, 0};
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    while (sigtimedwait(&chld, NULL, &zero) > 0) {
    }
}

/* A descriptor ready at once: the wait returns it and the own mask is back. */
static void ready_keeps_mask(void) {
    int p[2];
    if (pipe(p) != 0 || write(p[1], "x", 1) != 1)
        exit(1);
    sigset_t empty;
    sigemptyset(&empty);
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    struct timespec ts = {30, 0};
    int n = ppoll(&pfd, 1, &ts, &empty);
    printf("ppoll ready: %d, SIGCHLD blocked after %d\n", n, blocked(SIGCHLD));
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    n = pselect(p[0] + 1, &rd, NULL, NULL, &ts, &empty);
    printf("pselect ready: %d, SIGCHLD blocked after %d\n", n, blocked(SIGCHLD));
    close(p[0]);
    close(p[1]);
}

static void bad_masks(void) {
    struct timespec ts = {0, 0};
    struct {
        void *set;
        size_t size;
    } arg = {(void *)8, 8};
    long r = syscall(SYS_pselect6, 0, NULL, NULL, NULL, &ts, &arg);
    printf("pselect6 bad mask pointer: %ld %s\n", r, r < 0 ? strerror(errno) : "");
    r = syscall(SYS_pselect6, 0, NULL, NULL, NULL, &ts, (void *)8);
    printf("pselect6 bad argument pointer: %ld %s\n", r, r < 0 ? strerror(errno) : "");
    sigset_t empty;
    sigemptyset(&empty);
    arg.set = &empty;
    arg.size = 4;
    r = syscall(SYS_pselect6, 0, NULL, NULL, NULL, &ts, &arg);
    printf("pselect6 mask size 4: %ld %s\n", r, r < 0 ? strerror(errno) : "");
    r = syscall(SYS_ppoll, NULL, 0, &ts, (void *)8, 8);
    printf("ppoll bad mask pointer: %ld %s\n", r, r < 0 ? strerror(errno) : "");
    struct epoll_event ev;
    r = syscall(SYS_epoll_pwait, epfd, &ev, 1, 0, (void *)8, 8);
    printf("epoll_pwait bad mask pointer: %ld %s\n", r, r < 0 ? strerror(errno) : "");
    r = syscall(SYS_epoll_pwait2, epfd, &ev, 1, &ts, &empty, 4);
    printf("epoll_pwait2 mask size 4: %ld %s\n", r, r < 0 ? strerror(errno) : "");
}

static void pwait(void) {
    struct sigaction sa = {.sa_handler = on_chld};
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    epfd = epoll_create1(0);
    interrupted_by_child("pselect", wait_pselect);
    interrupted_by_child("ppoll", wait_ppoll);
    interrupted_by_child("epoll_pwait", wait_epoll_pwait);
    interrupted_by_child("epoll_pwait2", wait_epoll_pwait2);
    ready_keeps_mask();
    bad_masks();
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: sigcompat MODE\n");
        return 2;
    }
    if (strcmp(argv[1], "pwait") == 0)
        pwait();
    else {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }
    printf("done\n");
    return 0;
}
