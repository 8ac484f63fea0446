/* Signals: handlers via raise and kill, SA_SIGINFO fields, blocking, pending and
 * sigsuspend, alarm and setitimer, sigaltstack, EINTR vs SA_RESTART on a blocking
 * pipe read, pthread_kill to a chosen thread, and a SIGSEGV handler that recovers
 * with siglongjmp. Prints what it saw; the output must be the same as native. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t last, count;
static volatile int info_signo, info_code, info_pid_ok;
static volatile int on_altstack;
static char altstack[64 * 1024];
static sigjmp_buf recover;
static void *volatile fault_addr;
static volatile pthread_t handled_by;

static void plain(int sig) {
    last = sig;
    count++;
}

static void with_info(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    info_signo = si->si_signo;
    info_code = si->si_code;
    info_pid_ok = si->si_pid == getpid();
    last = sig;
}

static void check_stack(int sig) {
    char here;
    on_altstack = &here >= altstack && &here < altstack + sizeof altstack;
    last = sig;
}

static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    fault_addr = si->si_addr;
    siglongjmp(recover, 1);
}

static void record_thread(int sig) {
    last = sig;
    handled_by = pthread_self();
}

static void *sleeper(void *arg) {
    (void)arg;
    while (!handled_by)
        usleep(1000);
    return NULL;
}

static void *write_later(void *arg) {
    usleep(1500000);
    write(*(int *)arg, "x", 1);
    return NULL;
}

static void install(int sig, void (*fn)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigaction(sig, &sa, NULL);
}

int main(void) {
    install(SIGUSR1, plain, 0);
    raise(SIGUSR1);
    printf("raise: handler saw %d\n", last);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = with_info;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR2, &sa, NULL);
    kill(getpid(), SIGUSR2);
    printf("kill: signo %d code %d (SI_USER %d) pid matches %d\n", info_signo, info_code, SI_USER, info_pid_ok);

    sigset_t block, old, pending;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    count = 0;
    raise(SIGUSR1);
    sigpending(&pending);
    printf("blocked: delivered %d, pending %d\n", count, sigismember(&pending, SIGUSR1));
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("unblocked: delivered %d\n", count);

    sigprocmask(SIG_BLOCK, &block, &old);
    count = 0;
    raise(SIGUSR1);
    sigset_t wait_mask = old;
    sigdelset(&wait_mask, SIGUSR1);
    int rc = sigsuspend(&wait_mask);
    sigset_t now;
    sigprocmask(SIG_SETMASK, NULL, &now);
    printf("sigsuspend: %d %s, delivered %d, mask restored %d\n", rc, strerror(errno), count, sigismember(&now, SIGUSR1));
    sigprocmask(SIG_SETMASK, &old, NULL);

    install(SIGALRM, plain, 0);
    last = 0;
    alarm(1);
    pause();
    printf("alarm: %d\n", last);
    struct itimerval it = {{0, 0}, {0, 200000}};
    last = 0;
    setitimer(ITIMER_REAL, &it, NULL);
    while (!last)
        pause();
    printf("setitimer: %d\n", last);

    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    install(SIGUSR1, check_stack, SA_ONSTACK);
    raise(SIGUSR1);
    printf("sigaltstack: handler on the alternate stack %d\n", on_altstack);

    int p[2];
    pipe(p);
    char c;
    install(SIGALRM, plain, 0);
    alarm(1);
    ssize_t n = read(p[0], &c, 1);
    printf("read without SA_RESTART: %zd %s\n", n, strerror(errno));
    install(SIGALRM, plain, SA_RESTART);
    alarm(1);
    /* Something must end the restarted read: a thread writes after the alarm. */
    pthread_t w;
    static int wfd;
    wfd = p[1];
    pthread_create(&w, NULL, write_later, &wfd);
    n = read(p[0], &c, 1);
    pthread_join(w, NULL);
    printf("read with SA_RESTART: %zd '%c' after signal %d\n", n, c, last);

    pthread_t t;
    pthread_create(&t, NULL, sleeper, NULL);
    install(SIGUSR2, record_thread, 0);
    pthread_kill(t, SIGUSR2);
    pthread_join(t, NULL);
    printf("pthread_kill: handled by the target %d\n", pthread_equal(handled_by, t));

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    if (sigsetjmp(recover, 1) == 0)
        *(volatile int *)0x5000 = 1;
    printf("SIGSEGV recovered, si_addr %p\n", fault_addr);
    double x = 1.25;
    for (int i = 0; i < 4; i++)
        x *= 3.0;
    printf("floating point after handlers: %.2f\n", x);
    return 0;
}

