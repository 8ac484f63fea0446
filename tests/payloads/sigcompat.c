/* Signal semantics real programs rely on (issue 13), one mode per argument; prints
 * what it saw, and the output must be the same as native:
 *   pwait     pselect6/ppoll/epoll_pwait/epoll_pwait2 apply their temporary mask for
 *             the wait only: SIGCHLD blocked, an empty mask passed, a child's exit
 *             interrupts the wait (EINTR) and runs the handler; a bad mask is EFAULT.
 *   rtqueue   real-time signals queue (each with its siginfo, in order) where standard
 *             ones merge; sigqueue gives SI_QUEUE and its value, to the payload itself
 *             and to a child; Linux's rules on the si_code userspace may claim.
 *   selfkill  a signal a thread sends its own process runs on that thread, before
 *             kill returns, while other threads could take it.
 *   earlykill kill(child, SIGTERM) at once after fork kills the child, whatever it
 *             had reached (waiting in pause, or in execve).
 *   exec      signals blocked across execve stay blocked, pending ones stay pending
 *             and are delivered once the new program unblocks them.
 *   signalfd  signalfd reads pending signals of its mask (sigqueue's value, a child's
 *             exit status), is readable to poll and epoll exactly then, and takes a
 *             new mask.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/signalfd.h>
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

/* What the SA_SIGINFO handler saw, in order. */
#define MAX_SEEN 16
static volatile int seen_sig[MAX_SEEN], seen_code[MAX_SEEN], seen_value[MAX_SEEN];
static volatile int seen_pid_ok[MAX_SEEN];
static volatile sig_atomic_t nseen;

static void record(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    if (nseen < MAX_SEEN) {
        seen_sig[nseen] = sig;
        seen_code[nseen] = si->si_code;
        seen_value[nseen] = si->si_value.sival_int;
        seen_pid_ok[nseen] = si->si_pid == getpid();
        nseen++;
    }
}

static const char *code_name(int code) {
    switch (code) {
    case SI_USER:
        return "SI_USER";
    case SI_QUEUE:
        return "SI_QUEUE";
    case SI_TKILL:
        return "SI_TKILL";
    default:
        return "other";
    }
}

static void print_sig(int sig) {
    if (sig >= SIGRTMIN)
        printf("SIGRTMIN+%d", sig - SIGRTMIN);
    else
        printf("%s", strsignal(sig));
}

static void print_seen(const char *what) {
    printf("%s: %d delivered\n", what, (int)nseen);
    for (int i = 0; i < nseen; i++) {
        printf("  ");
        print_sig(seen_sig[i]);
        printf(" %s", code_name(seen_code[i]));
        if (seen_code[i] == SI_QUEUE)
            printf(" value %d", seen_value[i]);
        printf(" from self %d\n", seen_pid_ok[i]);
    }
    nseen = 0;
}

static void queue_value(int sig, int value) {
    union sigval v = {.sival_int = value};
    if (sigqueue(getpid(), sig, v) != 0)
        printf("sigqueue failed: %s\n", strerror(errno));
}

/* rt_sigqueueinfo/rt_tgsigqueueinfo with a siginfo of our making. */
static long queueinfo(int tid, pid_t pid, int sig, int code, void *info_at) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = sig;
    si.si_code = code;
    si.si_pid = getpid();
    si.si_uid = getuid();
    si.si_value.sival_int = 99;
    void *p = info_at ? info_at : &si;
    long r = tid ? syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, p)
                 : syscall(SYS_rt_sigqueueinfo, pid, sig, p);
    return r < 0 ? -errno : r;
}

static void queue_to_child(void) {
    int sig = SIGRTMIN + 2;
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        siginfo_t si;
        int got = sigwaitinfo(&set, &si);
        printf("child: got SIGRTMIN+%d %s value %d from parent %d\n", got - SIGRTMIN,
               code_name(si.si_code), si.si_value.sival_int, si.si_pid == getppid());
        _exit(0);
    }
    union sigval v = {.sival_int = 42};
    if (sigqueue(pid, sig, v) != 0)
        printf("sigqueue to child: %s\n", strerror(errno));
    reap(pid);
}

static void rtqueue(void) {
    struct sigaction sa = {.sa_sigaction = record, .sa_flags = SA_SIGINFO};
    int sigs[] = {SIGUSR1, SIGRTMIN, SIGRTMIN + 1, SIGRTMIN + 2};
    sigset_t set;
    sigemptyset(&set);
    for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        sigaction(sigs[i], &sa, NULL);
        sigaddset(&set, sigs[i]);
    }
    sigprocmask(SIG_BLOCK, &set, NULL);
    queue_value(SIGRTMIN + 1, 3);
    queue_value(SIGRTMIN, 1);
    kill(getpid(), SIGRTMIN);
    queue_value(SIGRTMIN, 2);
    kill(getpid(), SIGUSR1);
    kill(getpid(), SIGUSR1);
    sigset_t pending;
    sigpending(&pending);
    printf("pending: SIGUSR1 %d SIGRTMIN %d SIGRTMIN+1 %d\n", sigismember(&pending, SIGUSR1),
           sigismember(&pending, SIGRTMIN), sigismember(&pending, SIGRTMIN + 1));
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    print_seen("blocked then unblocked");

    /* Taken by sigtimedwait, one queued signal at a time. */
    sigprocmask(SIG_BLOCK, &set, NULL);
    queue_value(SIGRTMIN, 5);
    queue_value(SIGRTMIN, 6);
    struct timespec zero = {0, 0};
    siginfo_t si;
    sigset_t rtmin;
    sigemptyset(&rtmin);
    sigaddset(&rtmin, SIGRTMIN);
    while (sigtimedwait(&rtmin, &si, &zero) > 0)
        printf("sigtimedwait: value %d\n", si.si_value.sival_int);

    /* Who may claim which si_code. */
    int tid = (int)syscall(SYS_gettid);
    printf("sigqueueinfo SI_USER to parent: %ld\n", queueinfo(0, getppid(), 0, SI_USER, NULL));
    printf("sigqueueinfo SI_TKILL to parent: %ld\n", queueinfo(0, getppid(), 0, SI_TKILL, NULL));
    printf("sigqueueinfo SI_QUEUE to parent: %ld\n", queueinfo(0, getppid(), 0, SI_QUEUE, NULL));
    printf("sigqueueinfo SI_USER to self: %ld\n",
           queueinfo(0, getpid(), SIGRTMIN + 1, SI_USER, NULL));
    printf("sigqueueinfo bad info: %ld\n", queueinfo(0, getpid(), SIGRTMIN, SI_QUEUE, (void *)8));
    printf("sigqueueinfo signal 65: %ld\n", queueinfo(0, getpid(), 65, SI_QUEUE, NULL));
    printf("tgsigqueueinfo to self: %ld\n", queueinfo(tid, getpid(), SIGRTMIN, SI_QUEUE, NULL));
    printf("tgsigqueueinfo SI_TKILL to self: %ld\n",
           queueinfo(tid, getpid(), SIGRTMIN, SI_TKILL, NULL));
    printf("tgsigqueueinfo tgid 0: %ld\n", queueinfo(tid, 0, SIGRTMIN, SI_QUEUE, NULL));
    printf("tgsigqueueinfo bad info: %ld\n", queueinfo(tid, getpid(), SIGRTMIN, SI_QUEUE, (void *)8));
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    print_seen("queued by hand");
    sigprocmask(SIG_BLOCK, &set, NULL);
    queue_to_child();
}

static volatile pid_t handled_on;
static volatile sig_atomic_t stop_spinning;

static void note_thread(int sig) {
    (void)sig;
    handled_on = (pid_t)syscall(SYS_gettid);
}

static void *spinner(void *arg) {
    (void)arg;
    while (!stop_spinning) {
    }
    return NULL;
}

static void *sleeper(void *arg) {
    (void)arg;
    while (!stop_spinning)
        usleep(1000);
    return NULL;
}

static void selfkill(void) {
    struct sigaction sa = {.sa_handler = note_thread};
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t others[3];
    pthread_create(&others[0], NULL, spinner, NULL);
    pthread_create(&others[1], NULL, spinner, NULL);
    pthread_create(&others[2], NULL, sleeper, NULL);
    pid_t me = (pid_t)syscall(SYS_gettid);
    int on_caller = 0, before_return = 0;
    const int rounds = 200;
    for (int i = 0; i < rounds; i++) {
        handled_on = 0;
        kill(getpid(), SIGUSR1);
        pid_t now = handled_on;
        before_return += now != 0;
        on_caller += now == me;
        while (!handled_on) {
        }
        /* Details of a difference go to stderr, which the tests do not compare. */
        if (now != me)
            fprintf(stderr, "selfkill round %d: handled on %d before kill returned, then on %d"
                    " (caller %d)\n", i, (int)now, (int)handled_on, (int)me);
    }
    stop_spinning = 1;
    for (int i = 0; i < 3; i++)
        pthread_join(others[i], NULL);
    printf("selfkill: %d of %d handled before kill returned, %d on the caller\n", before_return,
           rounds, on_caller);
}

static void earlykill(void) {
    const int rounds = 20;
    int killed = 0;
    for (int i = 0; i < rounds; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* Half the children exec a program that pauses, half wait in pause. */
            if (i % 2)
                execl("/proc/self/exe", "sigcompat", "pause", (char *)NULL);
            for (;;)
                pause();
        }
        kill(pid, SIGTERM);
        int status;
        if (waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM)
            killed++;
    }
    printf("earlykill: %d of %d children killed by SIGTERM\n", killed, rounds);
}

static volatile sig_atomic_t exec_seen[4];

static void note_exec_signal(int sig) {
    if (sig == SIGUSR1)
        exec_seen[0]++;
    else if (sig == SIGUSR2)
        exec_seen[1]++;
    else if (sig == SIGRTMIN + 3)
        exec_seen[2]++;
    else
        exec_seen[3]++;
}

static void exec_keeps_signals(char *self) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGRTMIN + 3);
    sigprocmask(SIG_BLOCK, &set, NULL);
    kill(getpid(), SIGUSR1);
    kill(getpid(), SIGRTMIN + 3);
    execl(self, "sigcompat", "afterexec", (char *)NULL);
    printf("execl: %s\n", strerror(errno));
}

static void after_exec(void) {
    int sigs[] = {SIGUSR1, SIGUSR2, SIGRTMIN + 3};
    sigset_t pending;
    sigpending(&pending);
    struct sigaction sa = {.sa_handler = note_exec_signal};
    for (int i = 0; i < 3; i++) {
        printf("after exec: ");
        print_sig(sigs[i]);
        printf(" blocked %d pending %d\n", blocked(sigs[i]), sigismember(&pending, sigs[i]));
        sigaction(sigs[i], &sa, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    printf("after exec: delivered SIGUSR1 %d SIGUSR2 %d SIGRTMIN+3 %d other %d\n",
           (int)exec_seen[0], (int)exec_seen[1], (int)exec_seen[2], (int)exec_seen[3]);
}

static void print_records(int fd) {
    struct signalfd_siginfo rec[4];
    ssize_t n = read(fd, rec, sizeof rec);
    if (n < 0) {
        printf("signalfd read: %s\n", strerror(errno));
        return;
    }
    for (unsigned i = 0; i < n / sizeof rec[0]; i++) {
        printf("signalfd read: ");
        print_sig((int)rec[i].ssi_signo);
        printf(" %s", code_name(rec[i].ssi_code));
        if (rec[i].ssi_code == SI_QUEUE)
            printf(" value %d", rec[i].ssi_int);
        if (rec[i].ssi_signo == SIGCHLD)
            printf(" status %d", rec[i].ssi_status);
        printf(" from self %d\n", rec[i].ssi_pid == (uint32_t)getpid());
    }
}

static int readable(int fd) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, 0);
}

static void signal_fd(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    struct signalfd_siginfo one;
    printf("signalfd: readable %d\n", readable(fd));
    printf("signalfd: empty read %s\n", read(fd, &one, sizeof one) < 0 ? strerror(errno) : "data");
    printf("signalfd: short read %s\n", read(fd, &one, 16) < 0 ? strerror(errno) : "data");
    kill(getpid(), SIGUSR1);
    queue_value(SIGRTMIN, 7);
    queue_value(SIGRTMIN, 8);
    printf("signalfd: readable %d\n", readable(fd));
    print_records(fd);
    printf("signalfd: readable %d after the read\n", readable(fd));

    /* A new mask with SIGCHLD; epoll waits for the child's exit. */
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    printf("signalfd: new mask %d\n", signalfd(fd, &set, 0) == fd);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    pid_t pid = fork();
    if (pid == 0) {
        usleep(50 * 1000);
        _exit(5);
    }
    int n = epoll_wait(ep, &ev, 1, 30000);
    printf("signalfd: epoll_wait %d\n", n);
    print_records(fd);
    reap(pid);
    int bad = signalfd(1, &set, 0);
    printf("signalfd on a non-signalfd: %d %s\n", bad, bad < 0 ? strerror(errno) : "");
    long r = syscall(SYS_signalfd4, -1, &set, 4, 0);
    printf("signalfd4 mask size 4: %ld %s\n", r, r < 0 ? strerror(errno) : "");
    r = syscall(SYS_signalfd4, -1, &set, 8, 0x10);
    printf("signalfd4 bad flags: %ld %s\n", r, r < 0 ? strerror(errno) : "");
    r = syscall(SYS_signalfd4, -1, (void *)8, 8, 0);
    printf("signalfd4 bad mask pointer: %ld %s\n", r, r < 0 ? strerror(errno) : "");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: sigcompat MODE\n");
        return 2;
    }
    if (strcmp(argv[1], "pwait") == 0)
        pwait();
    else if (strcmp(argv[1], "rtqueue") == 0)
        rtqueue();
    else if (strcmp(argv[1], "selfkill") == 0)
        selfkill();
    else if (strcmp(argv[1], "earlykill") == 0)
        earlykill();
    else if (strcmp(argv[1], "signalfd") == 0)
        signal_fd();
    else if (strcmp(argv[1], "pause") == 0)
        for (;;)
            pause();
    else if (strcmp(argv[1], "exec") == 0)
        exec_keeps_signals(argv[0]);
    else if (strcmp(argv[1], "afterexec") == 0)
        after_exec();
    else {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }
    printf("done\n");
    return 0;
}
