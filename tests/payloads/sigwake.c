/* A thread waiting for a signal wakes as soon as the signal is sent, whatever
 * the moment it comes: sigsuspend, sigwaitinfo, sigtimedwait and a blocking read
 * of a signalfd.
 *
 * A waiter thread (SIGUSR1 blocked) announces each round and waits; the main
 * thread sends it SIGUSR1 with pthread_kill at a random moment 0 to 150 us after
 * the announcement (before the wait began, on its way in, or while it waits) and
 * the waiter notes when its wait returned. Each wait must end by that signal
 * (sigsuspend: the handler ran and the call returned EINTR; the others return
 * the signal), and no later than the bound (argument 2, ms): a wake-up that was
 * lost and only found by a later look is late.
 *
 * Arguments: rounds per wait (default 300), the bound in ms (default 200).
 * stdout is the same natively and under km when every round behaves; the
 * median and 90th percentile wake-up times go to stderr as
 * "KIND: median N us, p90 M us" (the bench reads them). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

enum kind { SUSPEND, WAITINFO, TIMEDWAIT, SIGNALFD, KINDS };
static const char *names[KINDS] = {"sigsuspend", "sigwaitinfo", "sigtimedwait",
                                   "signalfd read"};

static pthread_t waiter;
static int sfd;
static atomic_long go, started, done;
static atomic_long woke_ns;
static atomic_int round_kind;
static atomic_long handled;
/* What the last wait returned: the signal number, or -errno. */
static atomic_long result;

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void on_usr1(int sig) {
    (void)sig;
    atomic_fetch_add(&handled, 1);
}

static long wait_once(int kind, const sigset_t *usr1) {
    switch (kind) {
    case SUSPEND: {
        sigset_t none;
        sigemptyset(&none);
        long before = atomic_load(&handled);
        int r = sigsuspend(&none);
        if (r == -1 && errno == EINTR && atomic_load(&handled) == before + 1)
            return SIGUSR1;
        return r == -1 ? -errno : 0;
    }
    case WAITINFO: {
        siginfo_t si;
        int r = sigwaitinfo(usr1, &si);
        return r < 0 ? -errno : (si.si_signo == r ? r : -1000);
    }
    case TIMEDWAIT: {
        struct timespec t = {5, 0};
        int r = sigtimedwait(usr1, NULL, &t);
        return r < 0 ? -errno : r;
    }
    default: {
        struct signalfd_siginfo si;
        ssize_t n = read(sfd, &si, sizeof si);
        return n == (ssize_t)sizeof si ? (long)si.ssi_signo : n < 0 ? -errno : -1001;
    }
    }
}

static void *waiter_main(void *arg) {
    (void)arg;
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    for (long seen = 0;;) {
        long r;
        while ((r = atomic_load(&go)) == seen)
            ;
        if (r < 0)
            return NULL;
        seen = r;
        atomic_store(&started, r);
        long res = wait_once(atomic_load(&round_kind), &usr1);
        atomic_store(&woke_ns, now_ns());
        atomic_store(&result, res);
        atomic_store(&done, r);
    }
}

/* Waits until `*what` reaches `value`, for 10 s at most. */
static int wait_for(atomic_long *what, long value) {
    long end = now_ns() + 10000000000L;
    for (int spins = 0; atomic_load(what) < value; spins++) {
        if (now_ns() > end)
            return 0;
        if (spins > 2000) {
            struct timespec t = {0, 20000};
            nanosleep(&t, NULL);
        }
    }
    return 1;
}

static uint64_t rng;
static uint64_t next_random(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int by_value(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 300;
    long bound_ns = (argc > 2 ? atol(argv[2]) : 200) * 1000000L;
    if (rounds < 1)
        rounds = 1;
    rng = (uint64_t)now_ns() | 1;
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    signal(SIGUSR1, on_usr1);
    sfd = signalfd(-1, &usr1, SFD_CLOEXEC);
    if (sfd < 0) {
        perror("signalfd");
        return 1;
    }
    long *took = calloc(rounds, sizeof *took);
    pthread_create(&waiter, NULL, waiter_main, NULL);
    int failed = 0;
    long seq = 0;
    for (int kind = 0; kind < KINDS; kind++) {
        long wrong = 0, late = 0;
        atomic_store(&round_kind, kind);
        for (long i = 0; i < rounds; i++) {
            atomic_store(&go, ++seq);
            if (!wait_for(&started, seq)) {
                printf("%s: the waiter did not start round %ld\n", names[kind], i);
                return 1;
            }
            long delay = (long)(next_random() % 150001);
            long until = now_ns() + delay;
            while (now_ns() < until)
                ;
            long sent = now_ns();
            pthread_kill(waiter, SIGUSR1);
            if (!wait_for(&done, seq)) {
                printf("%s: round %ld never ended\n", names[kind], i);
                return 1;
            }
            took[i] = atomic_load(&woke_ns) - sent;
            if (atomic_load(&result) != SIGUSR1) {
                wrong++;
                fprintf(stderr, "%s: round %ld returned %ld\n", names[kind], i,
                        atomic_load(&result));
            }
            if (took[i] > bound_ns) {
                late++;
                fprintf(stderr, "%s: round %ld woke after %ld us\n", names[kind], i,
                        took[i] / 1000);
            }
        }
        qsort(took, rounds, sizeof *took, by_value);
        fprintf(stderr, "%s: median %ld us, p90 %ld us\n", names[kind], took[rounds / 2] / 1000,
                took[rounds * 9 / 10] / 1000);
        if (wrong || late) {
            failed = 1;
            printf("%s: %ld wrong, %ld late in %ld rounds\n", names[kind], wrong, late, rounds);
        } else {
            printf("%s: every wait ended by its signal\n", names[kind]);
        }
    }
    atomic_store(&go, -1);
    pthread_join(waiter, NULL);
    printf("done\n");
    return failed;
}
