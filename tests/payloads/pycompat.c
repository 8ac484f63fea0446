// Linux behaviour CPython's regrtest relies on (issue 13), one case per argument;
// the output must be the same natively and under km.
//   closedstdio: standard descriptors closed before execve (by fork + close, and
//   by posix_spawn's close action) stay closed in the new program, and the next
//   open() takes the lowest of them (test_posix's test_close_file).
//   procpidfd: pidfd_send_signal through a /proc/<pid> directory descriptor
//   signals that process (test_signal's test_pidfd_send_signal); other
//   descriptors are EBADF, a reaped process's directory ESRCH.
//   highfds: descriptors above a soft RLIMIT_NOFILE lowered below them survive
//   a fork child's execve, and the new program can fork and exec in turn
//   (test_subprocess's test_close_fds_when_max_fd_is_lowered).
//   nofile: a lowered soft RLIMIT_NOFILE binds the guest's descriptor numbers
//   as on Linux (EMFILE, dup2 EBADF, F_DUPFD EINVAL, poll EINVAL, SCM_RIGHTS
//   cut with MSG_CTRUNC), prlimit's own errors, /proc/self/limits shows it, and
//   it carries over fork and execve.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void report_stdio(const char *how) {
    struct stat st;
    printf("%s:", how);
    for (int fd = 0; fd <= 2; fd++)
        printf(" fd %d %s", fd, fstat(fd, &st) == 0 ? "open" : strerror(errno));
    printf(", next open() gets %d\n", open("/dev/null", O_RDONLY));
}

static int wait_child(pid_t pid) {
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int closed_stdio(const char *self) {
    pid_t pid = fork();
    if (pid == 0) {
        close(0);
        close(2);
        execl(self, self, "closedstdio-report", "fork, close 0 and 2, exec", (char *)NULL);
        _exit(127);
    }
    printf("fork child status %d\n", wait_child(pid));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addclose(&actions, 0);
    char *argv[] = {(char *)self, "closedstdio-report", "posix_spawn closing 0", NULL};
    int err = posix_spawn(&pid, self, &actions, NULL, argv, environ);
    /* The child's report comes first: the parent prints once it has ended. */
    int status = err == 0 ? wait_child(pid) : -1;
    printf("posix_spawn: %s\n", strerror(err));
    if (err == 0)
        printf("spawned child status %d\n", status);
    printf("closedstdio done\n");
    return 0;
}

static volatile sig_atomic_t usr1_seen;

static void on_usr1(int sig) { usr1_seen = sig; }

static const char *pidfd_signal(int fd, int sig) {
    return syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) == 0 ? "ok" : strerror(errno);
}

static int open_proc_dir(const char *fmt, long a, long b) {
    char path[64];
    snprintf(path, sizeof path, fmt, a, b);
    return open(path, O_RDONLY | O_DIRECTORY);
}

static int proc_pidfd(void) {
    signal(SIGUSR1, on_usr1);
    int self = open_proc_dir("/proc/%ld", getpid(), 0);
    printf("own directory, SIGUSR1: %s", pidfd_signal(self, SIGUSR1));
    printf(", handler ran before return: %d\n", usr1_seen == SIGUSR1);
    long r = syscall(SYS_pidfd_send_signal, self, 0, NULL, 8);
    printf("unknown flag: %s\n", r == 0 ? "ok" : strerror(errno));
    int task = open_proc_dir("/proc/%ld/task/%ld", getpid(), getpid());
    printf("task directory: %s\n", pidfd_signal(task, 0));
    int file = open("/proc/self/status", O_RDONLY);
    printf("regular file: %s\n", pidfd_signal(file, 0));
    printf("closed descriptor: %s\n", pidfd_signal(100, 0));
    int ready[2];
    if (pipe(ready))
        return 1;
    pid_t child = fork();
    if (child == 0) {
        close(ready[0]);
        close(ready[1]);
        pause();
        _exit(0);
    }
    close(ready[1]);
    char c;
    printf("child started: %ld\n", (long)read(ready[0], &c, 1));
    int dir = open_proc_dir("/proc/%ld", child, 0);
    printf("child directory, SIGTERM: %s\n", pidfd_signal(dir, SIGTERM));
    int status = wait_child(child);
    printf("child status %d\n", status);
    printf("reaped child directory: %s\n", pidfd_signal(dir, 0));
    printf("procpidfd done\n");
    return 0;
}

/* errno's name (musl's and glibc's strerror differ for EMFILE). */
static const char *error_name(int e) {
    switch (e) {
    case EMFILE: return "EMFILE";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    default: return strerror(e);
    }
}

static const char *result(long r) { return r >= 0 ? "ok" : error_name(errno); }

static void print_nofile(const char *who) {
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    printf("%s: soft limit %ld, hard limit %s\n", who, (long)lim.rlim_cur,
           lim.rlim_max == RLIM_INFINITY ? "unlimited" : "the same as before");
}

/* Opens /dev/null until that fails: how many, the last number, the error. */
static void fill(const char *who) {
    int count = 0, last = -1, fd;
    while ((fd = open("/dev/null", O_RDONLY)) >= 0) {
        last = fd;
        count++;
    }
    printf("%s: opened %d, the last at %d, then: %s\n", who, count, last, error_name(errno));
}

/* With the soft limit lowered below descriptors it holds (20..39), a fork child
 * execs this program again, which reports them and runs a fork and exec itself. */
static int high_fds(const char *self) {
    for (int fd = 20; fd < 40; fd++)
        if (dup2(1, fd) != fd)
            return 1;
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = 29;
    if (setrlimit(RLIMIT_NOFILE, &lim))
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        execl(self, self, "highfds-report", (char *)NULL);
        printf("exec: %s\n", strerror(errno));
        _exit(127);
    }
    printf("child status %d\n", wait_child(pid));
    printf("highfds done\n");
    return 0;
}

static int report_high_fds(const char *self) {
    struct stat st;
    int open_fds = 0;
    for (int fd = 20; fd < 40; fd++)
        open_fds += fstat(fd, &st) == 0;
    printf("after exec: %d of the 20 descriptors 20..39 open\n", open_fds);
    print_nofile("after exec");
    pid_t pid = fork();
    if (pid == 0) {
        /* As subprocess's close_fds does before its exec. */
        for (int fd = 3; fd < 40; fd++)
            close(fd);
        execl(self, self, "nofile-report", "grandchild", (char *)NULL);
        _exit(127);
    }
    printf("grandchild status %d\n", wait_child(pid));
    return 0;
}

/* Sends `n` descriptors of stdin over `sock` and receives them from `peer`. */
static void pass_rights(int sock, int peer, int n) {
    int fds[4] = {0, 0, 0, 0};
    char data = 'x';
    struct iovec iov = {&data, 1};
    union {
        char buf[CMSG_SPACE(sizeof fds)];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = CMSG_SPACE(n * sizeof(int))};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(n * sizeof(int));
    memcpy(CMSG_DATA(c), fds, n * sizeof(int));
    if (sendmsg(sock, &msg, 0) != 1) {
        printf("sendmsg: %s\n", strerror(errno));
        return;
    }
    memset(&u, 0, sizeof u);
    msg.msg_controllen = sizeof u.buf;
    long got = recvmsg(peer, &msg, 0);
    c = CMSG_FIRSTHDR(&msg);
    printf("%d passed: recvmsg %ld, MSG_CTRUNC %d, control length %zu, descriptors %ld\n", n,
           got, !!(msg.msg_flags & MSG_CTRUNC), (size_t)msg.msg_controllen,
           c ? (long)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)) : 0L);
    if (c)
        for (int *p = (int *)CMSG_DATA(c); (char *)p < (char *)c + c->cmsg_len; p++)
            close(*p);
}

static int nofile(const char *self) {
    struct rlimit lim, saved;
    getrlimit(RLIMIT_NOFILE, &saved);
    lim = saved;
    lim.rlim_cur = lim.rlim_max + 1;
    printf("soft above hard: %s\n", result(setrlimit(RLIMIT_NOFILE, &lim)));
    lim.rlim_cur = 24;
    if (setrlimit(RLIMIT_NOFILE, &lim))
        return 1;
    print_nofile("lowered");
    FILE *limits = fopen("/proc/self/limits", "r");
    char line[256];
    while (limits && fgets(line, sizeof line, limits))
        if (strncmp(line, "Max open files", 14) == 0)
            printf("limits file: %s", line);
    if (limits)
        fclose(limits);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return 1;
    /* Descriptors 3..23 in use but one. */
    int last = -1, fd;
    while ((fd = open("/dev/null", O_RDONLY)) >= 0)
        last = fd;
    close(last);
    pass_rights(sv[0], sv[1], 3);
    fd = open("/dev/null", O_RDONLY);
    pass_rights(sv[0], sv[1], 2);
    printf("open: %s\n", result(open("/dev/null", O_RDONLY)));
    int p[2];
    printf("pipe: %s\n", result(pipe(p)));
    printf("socket: %s\n", result(socket(AF_INET, SOCK_STREAM, 0)));
    printf("dup: %s\n", result(dup(0)));
    printf("F_DUPFD 0: %s\n", result(fcntl(0, F_DUPFD, 0)));
    printf("eventfd: %s\n", result(eventfd(0, 0)));
    printf("epoll_create1: %s\n", result(epoll_create1(0)));
    printf("memfd_create: %s\n", result(memfd_create("x", 0)));
    printf("dup2 to 24: %s\n", result(dup2(0, 24)));
    printf("dup3 to 1000: %s\n", result(dup3(0, 1000, O_CLOEXEC)));
    printf("dup2 to 23: %s\n", result(dup2(0, 23)));
    printf("F_DUPFD 24: %s\n", result(fcntl(0, F_DUPFD, 24)));
    printf("F_DUPFD_CLOEXEC 5000: %s\n", result(fcntl(0, F_DUPFD_CLOEXEC, 5000)));
    printf("F_DUPFD of a closed descriptor, 24: %s\n", result(fcntl(999, F_DUPFD, 24)));
    struct pollfd pfds[25];
    memset(pfds, 0, sizeof pfds);
    for (int i = 0; i < 25; i++)
        pfds[i].fd = -1;
    printf("poll 24: %s\n", result(poll(pfds, 24, 0)));
    printf("poll 25: %s\n", result(poll(pfds, 25, 0)));
    close(fd);
    printf("F_DUPFD 23 after a close: %ld\n", (long)fcntl(0, F_DUPFD, 23));
    for (fd = 3; fd < 24; fd++)
        close(fd);
    pid_t pid = fork();
    if (pid == 0) {
        print_nofile("fork child");
        fill("fork child");
        _exit(0);
    }
    printf("fork child status %d\n", wait_child(pid));
    pid = fork();
    if (pid == 0) {
        execl(self, self, "nofile-report", "exec", (char *)NULL);
        _exit(127);
    }
    printf("exec child status %d\n", wait_child(pid));
    lim.rlim_cur = 8;
    lim.rlim_max = 20;
    printf("hard lowered to 20: %s\n", result(setrlimit(RLIMIT_NOFILE, &lim)));
    print_nofile("lowered twice");
    lim.rlim_max = 21;
    /* EPERM, but for root. */
    printf("hard raised again: %s\n", result(setrlimit(RLIMIT_NOFILE, &lim)));
    struct rlimit old;
    lim.rlim_max = 20;
    printf("prlimit: %s", result(prlimit(0, RLIMIT_NOFILE, &lim, &old)));
    printf(", old soft %ld hard %ld\n", (long)old.rlim_cur, (long)old.rlim_max);
    fill("at 8");
    printf("nofile done\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 2 && strcmp(argv[1], "closedstdio-report") == 0) {
        report_stdio(argv[2]);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "nofile-report") == 0) {
        print_nofile(argv[2]);
        fill(argv[2]);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "highfds-report") == 0)
        return report_high_fds(argv[0]);
    if (argc > 1 && strcmp(argv[1], "highfds") == 0)
        return high_fds(argv[0]);
    if (argc > 1 && strcmp(argv[1], "nofile") == 0)
        return nofile(argv[0]);
    if (argc > 1 && strcmp(argv[1], "closedstdio") == 0)
        return closed_stdio(argv[0]);
    if (argc > 1 && strcmp(argv[1], "procpidfd") == 0)
        return proc_pidfd();
    fprintf(stderr, "usage: pycompat closedstdio|procpidfd|highfds|nofile\n");
    return 2;
}
