// Snapshot payload (tests/snapshot.rs): state a snapshot carries beyond registers
// and memory. Sets a GS base, leaves signals pending (one for the thread, one for
// the process, two queued real-time ones) and an interval timer armed, takes a
// snapshot that ends it (KM_SNAPSHOT, 505; natively the call fails with ENOSYS
// and it goes on), then shows that state (and its signal dispositions).
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define KM_SNAPSHOT 505
#define TIMER_SECS 600

static volatile sig_atomic_t got[65];
static unsigned long word = 0x1234abcd5678ef00UL;

static void on_signal(int sig) { got[sig]++; }

static unsigned long at_gs(void) {
    unsigned long v;
    __asm__ volatile("movq %%gs:0, %0" : "=r"(v));
    return v;
}

static void *thread_gs(void *arg) {
    (void)arg;
    printf("a new thread's %%gs:0 = %#lx\n", at_gs());
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    int sigs[] = {SIGUSR1, SIGUSR2, SIGRTMIN, SIGALRM};
    for (int i = 0; i < 4; i++) sigaction(sigs[i], &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < 3; i++) sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (syscall(SYS_arch_prctl, ARCH_SET_GS, &word) != 0) {
        printf("ARCH_SET_GS: %s\n", strerror(errno));
        return 1;
    }
    raise(SIGUSR1);           // pending for this thread
    kill(getpid(), SIGUSR2);  // pending for the process
    union sigval value = {.sival_int = 42};
    sigqueue(getpid(), SIGRTMIN, value);
    sigqueue(getpid(), SIGRTMIN, value);
    struct itimerval timer = {{0, 0}, {TIMER_SECS, 0}};
    setitimer(ITIMER_REAL, &timer, NULL);

    long r = syscall(KM_SNAPSHOT, "state", NULL, 0);
    printf("snapshot returned %ld%s%s\n", r, r < 0 ? " " : "", r < 0 ? strerror(errno) : "");

    unsigned long base = 0;
    syscall(SYS_arch_prctl, ARCH_GET_GS, &base);
    printf("GS base: %s, %%gs:0 = %#lx\n", base == (unsigned long)&word ? "the word" : "elsewhere",
           at_gs());
    // Dispositions, asked with the raw call (km's landing pad answers the query
    // from a table that a restored snapshot refills).
    for (int i = 0; i < 4; i++) {
        unsigned long old[4] = {0};
        long q = syscall(SYS_rt_sigaction, sigs[i], NULL, old, 8);
        printf("signal %d: %ld, handler %s\n", sigs[i], q,
               old[0] == (unsigned long)on_signal ? "on_signal" : "another");
    }
    pthread_t t;
    if (pthread_create(&t, NULL, thread_gs, NULL) == 0) pthread_join(t, NULL);
    pid_t child = fork();
    if (child == 0) {
        printf("a fork child's %%gs:0 = %#lx\n", at_gs());
        _exit(0);
    }
    waitpid(child, NULL, 0);
    sigset_t pending;
    sigpending(&pending);
    printf("pending: SIGUSR1 %d, SIGUSR2 %d, SIGRTMIN %d, SIGALRM %d\n",
           sigismember(&pending, SIGUSR1), sigismember(&pending, SIGUSR2),
           sigismember(&pending, SIGRTMIN), sigismember(&pending, SIGALRM));
    getitimer(ITIMER_REAL, &timer);
    long left = timer.it_value.tv_sec;
    printf("interval timer armed, under %d s left: %s\n", TIMER_SECS,
           timer.it_value.tv_usec + left > 0 && left < TIMER_SECS ? "yes" : "no");
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("handled: SIGUSR1 %d, SIGUSR2 %d, SIGRTMIN %d\n", got[SIGUSR1], got[SIGUSR2],
           got[SIGRTMIN]);
    // alarm(0) disarms the timer and says how many seconds it had left.
    unsigned int secs = alarm(0);
    printf("alarm had between 1 and %d s left: %s\n", TIMER_SECS,
           secs >= 1 && secs <= TIMER_SECS ? "yes" : "no");
    return 0;
}
