/* The syscalls km's landing pad answers in the guest (getpid, gettid, the user
 * and group ids), made with raw syscalls and checked against what they must
 * equal: /proc/self, /proc/thread-self, the pid fork and vfork return, after
 * set*id calls in a child, on threads, and in a loop of getpid calls a timer
 * signal must interrupt. Prints run-independent lines only, so the output is
 * the same natively and under km. Argument "loop N": N getpid calls (bench). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static long sys(long nr) { return syscall(nr); }

static void ids(const char *who) {
    printf("%s: uid %ld euid %ld gid %ld egid %ld\n", who, sys(SYS_getuid), sys(SYS_geteuid),
           sys(SYS_getgid), sys(SYS_getegid));
}

/* The number /proc/LINK points at the end of ("/proc/123", "/proc/1/task/124"). */
static long proc_link(const char *link) {
    char buf[64];
    ssize_t n = readlink(link, buf, sizeof buf - 1);
    if (n < 0)
        return -1;
    buf[n] = 0;
    char *slash = strrchr(buf, '/');
    return atol(slash ? slash + 1 : buf);
}

static void pid_and_tid(const char *who, long expected_pid) {
    long pid = sys(SYS_getpid), tid = sys(SYS_gettid);
    printf("%s: getpid %s, gettid %s, /proc/self %s\n", who,
           pid == expected_pid ? "as expected" : "WRONG",
           tid == proc_link("/proc/thread-self") ? "is /proc/thread-self" : "WRONG",
           proc_link("/proc/self") == pid ? "matches" : "WRONG");
}

static void *thread_main(void *arg) {
    long tid = sys(SYS_gettid);
    printf("thread: getpid %s, gettid %s, /proc/thread-self %s\n",
           sys(SYS_getpid) == (long)arg ? "is the process's" : "WRONG",
           tid != (long)arg ? "its own" : "WRONG",
           proc_link("/proc/thread-self") == tid ? "matches" : "WRONG");
    /* set_robust_list, which the pad answers in the guest too: glibc registers
     * each thread's list as it starts, musl none. */
    struct robust { void *next; long offset; void *pending; } mine = {&mine, 0, 0};
    void *head = 0, *libc_head = 0;
    size_t len = 0;
    syscall(SYS_get_robust_list, 0, &libc_head, &len);
    printf("thread: robust list %s, len %zu\n", libc_head ? "registered" : "none", len);
    long set = syscall(SYS_set_robust_list, &mine, sizeof mine);
    syscall(SYS_get_robust_list, 0, &head, &len);
    printf("thread: set_robust_list %ld, get_robust_list %s, len %zu\n", set,
           head == &mine ? "gives it back" : "WRONG", len);
    printf("thread: set_robust_list with len 12: %s\n",
           syscall(SYS_set_robust_list, &mine, 12) == -1 && errno == EINVAL ? "EINVAL" : "WRONG");
    syscall(SYS_set_robust_list, libc_head, sizeof mine);
    syscall(SYS_get_robust_list, 0, &head, &len);
    printf("thread: libc's list back %s\n", head == libc_head ? "yes" : "WRONG");
    return 0;
}

static volatile sig_atomic_t alarmed;
static void on_alarm(int sig) { (void)sig; alarmed = 1; }

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "loop") == 0) {
        long n = atol(argv[2]), pid = getpid(), bad = 0;
        for (long i = 0; i < n; i++)
            bad += sys(SYS_getpid) != pid;
        printf("%ld getpid calls, %ld wrong\n", n, bad);
        return bad != 0;
    }
    setvbuf(stdout, 0, _IOLBF, 0);
    long pid = sys(SYS_getpid);
    ids("main");
    pid_and_tid("main", proc_link("/proc/self"));

    pthread_t t;
    pthread_create(&t, 0, thread_main, (void *)pid);
    pthread_join(t, 0);

    /* A fork child: its own pid and tid; set*id changes its own ids only. */
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return 1;
    pid_t child = fork();
    if (child == 0) {
        long mine;
        if (read(pipefd[0], &mine, sizeof mine) != sizeof mine)
            _exit(1);
        pid_and_tid("child", mine);
        printf("child: getppid %s\n", sys(SYS_getppid) == pid ? "is the parent" : "WRONG");
        printf("child: setresgid %s\n", setresgid(65534, 65534, 0) == 0 ? "ok" : "failed");
        printf("child: setresuid %s\n", setresuid(65534, 65534, 0) == 0 ? "ok" : "failed");
        ids("child");
        printf("child: seteuid(0) %s\n", seteuid(0) == 0 ? "ok" : "failed");
        ids("child");
        pthread_create(&t, 0, thread_main, (void *)mine);
        pthread_join(t, 0);
        _exit(0);
    }
    long c = child;
    if (write(pipefd[1], &c, sizeof c) != sizeof c)
        return 1;
    int status;
    waitpid(child, &status, 0);
    printf("child status %d\n", status);
    ids("main after the child");
    pid_and_tid("main after the child", pid);

    /* A vfork child runs in the parent's memory: what it saw comes back here. */
    static volatile long seen_pid, seen_tid;
    child = vfork();
    if (child == 0) {
        seen_pid = sys(SYS_getpid);
        seen_tid = sys(SYS_gettid);
        _exit(0);
    }
    waitpid(child, &status, 0);
    printf("vfork child: getpid %s, gettid %s\n", seen_pid == child ? "its own" : "WRONG",
           seen_tid == child ? "its own" : "WRONG");
    pid_and_tid("main after vfork", pid);

    /* getpid in a loop until a timer signal's handler says stop. */
    signal(SIGALRM, on_alarm);
    struct itimerval it = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_REAL, &it, 0);
    long calls = 0;
    while (!alarmed)
        calls += sys(SYS_getpid) == pid;
    printf("getpid loop interrupted by the timer: %s\n", calls > 0 ? "yes" : "no calls");
    printf("done\n");
    return 0;
}
