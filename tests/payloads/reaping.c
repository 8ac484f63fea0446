/* Reaping fork children, compared with native runs (tests/payloads.rs): km answers a
 * wait from the child's exit report before the child's host process has ended, so
 * every case here checks that the payload cannot tell: one SIGCHLD per child, with
 * its siginfo; a reaped child gone for wait, kill and pidfd_open; WNOHANG, WNOWAIT,
 * process groups, stops and continues, children killed by signals, exec'd and
 * vfork children, SIGCHLD ignored and SA_NOCLDWAIT, two threads waiting at once,
 * rusage, and the child's descriptors closed when the wait returns. Children that
 * exec (this program again: `reaping exit N`, `exec2 N`, `forker N`, `pause`) after
 * a fork, a vfork or a posix_spawn report their exit too (the exec'd km inherits
 * the report pipe): each case checks the same. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t chld_count, chld_code, chld_status, chld_pid;

static void on_chld(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    chld_count++;
    chld_code = si->si_code;
    chld_status = si->si_status;
    chld_pid = si->si_pid;
}

static void handle_chld(int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | flags;
    sigaction(SIGCHLD, &sa, NULL);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static pid_t child_exiting(int code, long after_ms) {
    pid_t pid = fork();
    if (pid == 0) {
        if (after_ms)
            sleep_ms(after_ms);
        _exit(code);
    }
    return pid;
}

static const char *err(long rc) {
    if (rc >= 0)
        return "ok";
    switch (errno) {
    case ESRCH:
        return "ESRCH";
    case ECHILD:
        return "ECHILD";
    case EINTR:
        return "EINTR";
    default:
        return "another error";
    }
}

static void basics(void) {
    int st = -1;
    pid_t pid = child_exiting(7, 0);
    pid_t got = waitpid(pid, &st, 0);
    printf("basics: waitpid is the child: %d, exited %d code %d\n", got == pid, WIFEXITED(st),
           WEXITSTATUS(st));
    printf("basics: kill(child, 0): %s\n", err(kill(pid, 0)));
    printf("basics: kill(child, SIGTERM): %s\n", err(kill(pid, SIGTERM)));
    printf("basics: pidfd_open(child): %s\n", err(syscall(SYS_pidfd_open, pid, 0)));
    printf("basics: waitpid(child, WNOHANG) again: %s\n", err(waitpid(pid, &st, WNOHANG)));
    printf("basics: wait(): %s\n", err(wait(&st)));
    printf("basics: waitpid(-1, WNOHANG): %s\n", err(waitpid(-1, &st, WNOHANG)));
}

static void one_sigchld_each(void) {
    handle_chld(0);
    chld_count = 0;
    int right = 1;
    for (int i = 1; i <= 5; i++) {
        int st;
        pid_t pid = child_exiting(10 + i, 0);
        if (waitpid(pid, &st, 0) != pid || WEXITSTATUS(st) != 10 + i)
            right = 0;
        /* The handler ran when waitpid returned: the signal came before. */
        if (chld_count != i || chld_code != CLD_EXITED || chld_status != 10 + i || chld_pid != pid)
            right = 0;
    }
    sleep_ms(300);
    printf("sigchld: one per child, before wait returned, with its siginfo: %d\n", right);
    printf("sigchld: after the children are gone: %d signals\n", (int)chld_count);
    signal(SIGCHLD, SIG_DFL);
}

static void nowait(void) {
    siginfo_t a, b, c;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    pid_t pid = child_exiting(3, 0);
    long r1 = waitid(P_PID, pid, &a, WEXITED | WNOWAIT);
    long r2 = waitid(P_PID, pid, &b, WEXITED | WNOWAIT);
    long r3 = waitid(P_ALL, 0, &c, WEXITED);
    printf("nowait: %s %s %s; same child each time: %d; code %d status %d\n", err(r1), err(r2),
           err(r3), a.si_pid == pid && b.si_pid == pid && c.si_pid == pid, c.si_code,
           c.si_status);
    printf("nowait: then waitid(P_ALL, WNOHANG): %s\n",
           err(waitid(P_ALL, 0, &c, WEXITED | WNOHANG)));
}

static void any_order(void) {
    pid_t pids[3];
    for (int i = 0; i < 3; i++)
        pids[i] = child_exiting(20 + i, 30L * (3 - i));
    int order_ok = 1;
    for (int i = 2; i >= 0; i--) {
        int st;
        pid_t got = wait(&st);
        if (got != pids[i] || WEXITSTATUS(st) != 20 + i)
            order_ok = 0;
    }
    int st;
    printf("wait(-1): each child once, as they ended: %d; then %s\n", order_ok, err(wait(&st)));
}

static void nohang_loop(void) {
    for (int i = 0; i < 3; i++)
        child_exiting(30 + i, 0);
    sleep_ms(300);
    int n = 0, st, sum = 0;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
        n++;
        sum += WEXITSTATUS(st);
    }
    printf("WNOHANG loop: %d children, codes add up to %d, then %s\n", n, sum, err(p));
    /* One running child: WNOHANG says 0 while it runs. */
    pid_t slow = child_exiting(40, 200);
    printf("WNOHANG with a child running: %ld\n", (long)waitpid(-1, &st, WNOHANG));
    printf("then waitpid: %d\n", waitpid(slow, &st, 0) == slow && WEXITSTATUS(st) == 40);
}

static void groups(void) {
    int st;
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        _exit(50);
    }
    setpgid(pid, pid);
    pid_t mine = child_exiting(51, 100);
    pid_t got = waitpid(-pid, &st, 0);
    printf("groups: waitpid(-pgid): %d code %d\n", got == pid, WEXITSTATUS(st));
    got = waitpid(0, &st, 0);
    printf("groups: waitpid(0): %d code %d\n", got == mine, WEXITSTATUS(st));
    siginfo_t si;
    memset(&si, 0, sizeof si);
    pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        _exit(52);
    }
    setpgid(pid, pid);
    long r = waitid(P_PGID, pid, &si, WEXITED);
    printf("groups: waitid(P_PGID): %s %d status %d\n", err(r), si.si_pid == pid, si.si_status);
}

static void killed(void) {
    int st;
    pid_t pid = fork();
    if (pid == 0) {
        pause();
        _exit(1);
    }
    kill(pid, SIGKILL);
    pid_t got = waitpid(pid, &st, 0);
    printf("killed: %d signaled %d by %d\n", got == pid, WIFSIGNALED(st), WTERMSIG(st));
    pid = child_exiting(60, 300);
    kill(pid, SIGSTOP);
    got = waitpid(pid, &st, WUNTRACED);
    printf("stopped: %d stopped %d by %d\n", got == pid, WIFSTOPPED(st), WSTOPSIG(st));
    kill(pid, SIGCONT);
    got = waitpid(pid, &st, WCONTINUED);
    printf("continued: %d continued %d\n", got == pid, WIFCONTINUED(st));
    got = waitpid(pid, &st, 0);
    printf("then exited: %d code %d\n", got == pid, WEXITSTATUS(st));
}

static void exec_and_vfork(void) {
    int st;
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "exit 70", (char *)NULL);
        _exit(127);
    }
    pid_t got = waitpid(pid, &st, 0);
    printf("exec'd child: %d code %d\n", got == pid, WEXITSTATUS(st));
    pid = vfork();
    if (pid == 0)
        _exit(71);
    got = waitpid(pid, &st, 0);
    printf("vfork child: %d code %d\n", got == pid, WEXITSTATUS(st));
    pid = fork();
    if (pid == 0) {
        pid_t grandchild = child_exiting(72, 0);
        int gst;
        if (waitpid(grandchild, &gst, 0) != grandchild)
            _exit(1);
        _exit(WEXITSTATUS(gst) + 1);
    }
    got = waitpid(pid, &st, 0);
    printf("child that reaped its own child: %d code %d\n", got == pid, WEXITSTATUS(st));
}

extern char **environ;
static const char *self;

/* The child of `how` (0 fork, 1 vfork, 2 posix_spawn) running this program with
 * `mode` and `arg`. */
static pid_t start_self(int how, const char *mode, const char *arg) {
    char *argv[] = {(char *)self, (char *)mode, (char *)arg, NULL};
    pid_t pid;
    if (how == 2)
        return posix_spawn(&pid, self, NULL, NULL, argv, environ) == 0 ? pid : -1;
    pid = how == 0 ? fork() : vfork();
    if (pid == 0) {
        execve(self, argv, environ);
        _exit(127);
    }
    return pid;
}

/* An exec'd child's exit seen by waitpid and the SIGCHLD handler, then gone. */
static void exec_case(const char *name, int how, const char *mode, const char *arg, int code) {
    handle_chld(0);
    chld_count = 0;
    int st = -1;
    pid_t pid = start_self(how, mode, arg);
    pid_t got = waitpid(pid, &st, 0);
    int in_time = chld_count == 1 && chld_code == CLD_EXITED && chld_status == code &&
                  chld_pid == pid;
    printf("%s: waitpid is the child %d, exited %d code %d, its SIGCHLD before: %d\n", name,
           got == pid, WIFEXITED(st), WEXITSTATUS(st), in_time);
    printf("%s: then kill %s, waitpid %s, wait(WNOHANG) %s\n", name, err(kill(pid, 0)),
           err(waitpid(pid, &st, WNOHANG)), err(waitpid(-1, &st, WNOHANG)));
    sleep_ms(100);
    printf("%s: %d SIGCHLD in all\n", name, (int)chld_count);
    signal(SIGCHLD, SIG_DFL);
}

static void exec_reports(void) {
    static const char *hows[] = {"fork", "vfork", "posix_spawn"};
    char name[64];
    for (int how = 0; how < 3; how++) {
        snprintf(name, sizeof name, "%s+exec", hows[how]);
        exec_case(name, how, "exit", "73", 73);
        snprintf(name, sizeof name, "%s+exec twice", hows[how]);
        exec_case(name, how, "exec2", "74", 74);
        snprintf(name, sizeof name, "%s+exec of a forker", hows[how]);
        exec_case(name, how, "forker", "3", 3 * 10 + 6);
        int st = -1;
        pid_t pid = start_self(how, "pause", "0");
        sleep_ms(50);
        kill(pid, SIGKILL);
        pid_t got = waitpid(pid, &st, 0);
        printf("%s+exec killed: %d signaled %d by %d; then kill %s, waitpid %s\n", hows[how],
               got == pid, WIFSIGNALED(st), WTERMSIG(st), err(kill(pid, 0)),
               err(waitpid(pid, &st, WNOHANG)));
    }
}

/* This program as an exec'd child: `exit N` ends with N, `exec2 N` execs `exit N`,
 * `forker N` forks N children (each exec'd as `exit I`) and ends with the sum of
 * their codes plus 10 N, `pause` waits for a signal. */
static int as_child(char **argv) {
    int n = atoi(argv[2]);
    if (strcmp(argv[1], "exit") == 0)
        return n;
    if (strcmp(argv[1], "exec2") == 0) {
        char *again[] = {argv[0], "exit", argv[2], NULL};
        execve(argv[0], again, environ);
        return 127;
    }
    if (strcmp(argv[1], "forker") == 0) {
        int sum = 10 * n;
        for (int i = 1; i <= n; i++) {
            char code[16];
            snprintf(code, sizeof code, "%d", i);
            int st;
            pid_t pid = start_self(0, "exit", code);
            if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
                return 126;
            sum += WEXITSTATUS(st);
        }
        if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
            return 125;
        return sum;
    }
    pause();
    return 1;
}

static void ignored(void) {
    int st;
    signal(SIGCHLD, SIG_IGN);
    child_exiting(80, 0);
    child_exiting(81, 50);
    printf("SIGCHLD ignored: wait %s\n", err(wait(&st)));
    signal(SIGCHLD, SIG_DFL);
    handle_chld(SA_NOCLDWAIT);
    chld_count = 0;
    child_exiting(82, 0);
    printf("SA_NOCLDWAIT: wait %s", err(wait(&st)));
    sleep_ms(100);
    printf(", handler ran: %d\n", chld_count > 0);
    signal(SIGCHLD, SIG_DFL);
}

struct waiter {
    pid_t pid;
    pid_t got;
    int code;
};

static void *wait_thread(void *arg) {
    struct waiter *w = arg;
    int st = 0;
    w->got = waitpid(w->pid, &st, 0);
    w->code = WEXITSTATUS(st);
    return NULL;
}

static void threads(void) {
    struct waiter w[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        w[i].pid = child_exiting(90 + i, 40L * (2 - i));
        pthread_create(&t[i], NULL, wait_thread, &w[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    int by_pid = w[0].got == w[0].pid && w[0].code == 90 && w[1].got == w[1].pid && w[1].code == 91;
    pid_t kids[2] = {child_exiting(92, 40), child_exiting(93, 80)};
    for (int i = 0; i < 2; i++) {
        w[i].pid = -1;
        pthread_create(&t[i], NULL, wait_thread, &w[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    int any = ((w[0].got == kids[0] && w[1].got == kids[1]) ||
               (w[0].got == kids[1] && w[1].got == kids[0])) &&
              w[0].code + w[1].code == 185;
    int st;
    printf("threads: each waiting for its child %d, two waiting for any got one each %d; then %s\n",
           by_pid, any, err(wait(&st)));
}

static void usage(void) {
    int st;
    struct rusage ru;
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec start, now;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);
        do
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
        while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 <
               100);
        _exit(0);
    }
    memset(&ru, 0, sizeof ru);
    wait4(pid, &st, 0, &ru);
    long ms = ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000 + ru.ru_stime.tv_sec * 1000 +
              ru.ru_stime.tv_usec / 1000;
    printf("rusage: the child's 100 ms of CPU are in wait4's: %d\n", ms >= 90);
    struct rusage children;
    getrusage(RUSAGE_CHILDREN, &children);
    ms = children.ru_utime.tv_sec * 1000 + children.ru_utime.tv_usec / 1000 +
         children.ru_stime.tv_sec * 1000 + children.ru_stime.tv_usec / 1000;
    printf("rusage: and in RUSAGE_CHILDREN: %d\n", ms >= 90);
}

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static void pidfds(void) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    pid_t pid = child_exiting(100, 50);
    int fd = syscall(SYS_pidfd_open, pid, 0);
    long r = waitid(P_PIDFD, fd, &si, WEXITED);
    printf("pidfd: waitid(P_PIDFD): %s %d status %d\n", err(r), si.si_pid == pid, si.si_status);
    printf("pidfd: again: %s\n", err(waitid(P_PIDFD, fd, &si, WEXITED | WNOHANG)));
    close(fd);
    pid = child_exiting(101, 50);
    fd = syscall(SYS_pidfd_open, pid, 0);
    int st;
    waitpid(pid, &st, 0);
    printf("pidfd: after waitpid, waitid(P_PIDFD): %s\n", err(waitid(P_PIDFD, fd, &si, WEXITED)));
    close(fd);
}

static void descriptors(void) {
    int p[2];
    if (pipe(p) != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        if (write(p[1], "x", 1) != 1)
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    int st;
    waitpid(pid, &st, 0);
    struct pollfd pfd = {p[0], POLLIN, 0};
    int n = poll(&pfd, 1, 0);
    char buf[4];
    ssize_t got = read(p[0], buf, sizeof buf);
    ssize_t end = read(p[0], buf, sizeof buf);
    printf("descriptors: after wait the pipe is ready %d with hangup %d: read %zd then %zd\n", n,
           (pfd.revents & POLLHUP) != 0, got, end);
    close(p[0]);
}

int main(int argc, char **argv) {
    self = argv[0];
    if (argc == 3)
        return as_child(argv);
    setvbuf(stdout, NULL, _IONBF, 0);
    basics();
    one_sigchld_each();
    nowait();
    any_order();
    nohang_loop();
    groups();
    killed();
    exec_and_vfork();
    exec_reports();
    ignored();
    threads();
    usage();
    pidfds();
    descriptors();
    printf("reaping done\n");
    return 0;
}
