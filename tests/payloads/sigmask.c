/* rt_sigprocmask, which km's landing pad answers in the guest, made with the raw
 * syscall and checked against Linux's rules: old sets, a set that is also the old
 * set, SIGKILL and SIGSTOP never blocked, bad pointers (EFAULT, the mask changed
 * all the same when only the old set is bad), bad arguments (EINVAL), a signal
 * pending for the thread or the process delivered before the unblocking call
 * returns (also one another thread sent while this one ran in the guest), the
 * mask inside a handler and after it, in /proc, in a fork child, around
 * sigsuspend, and on new threads. Prints run-independent lines only, so the
 * output is the same natively and under km. Argument "loop N": N calls (for
 * tracing and counting tests). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIT(sig) (1ull << ((sig) - 1))

static volatile sig_atomic_t got_usr1, got_usr2;
static volatile uint64_t mask_in_handler;
static const uint64_t read_only_word = 0;

static long mask_call(long how, const void *set, void *old, long size) {
    long r = syscall(SYS_rt_sigprocmask, how, set, old, size);
    return r < 0 ? -errno : r;
}

static uint64_t mask_now(void) {
    uint64_t m = 0;
    if (mask_call(SIG_BLOCK, NULL, &m, 8) != 0)
        printf("WRONG: query failed\n");
    return m;
}

static long set_mask(long how, uint64_t set, uint64_t *old) {
    return mask_call(how, &set, old, 8);
}

static void on_usr1(int sig) {
    (void)sig;
    got_usr1++;
    mask_in_handler = mask_now();
}

static void on_usr2(int sig) {
    (void)sig;
    got_usr2++;
}

/* The SigBlk line of /proc/thread-self/status, as a number. */
static uint64_t proc_sigblk(void) {
    FILE *f = fopen("/proc/thread-self/status", "r");
    char line[256];
    uint64_t v = ~0ull;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "SigBlk: %lx", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

static atomic_int sent;
static pthread_t main_thread;

static void *send_usr1(void *arg) {
    (void)arg;
    pthread_kill(main_thread, SIGUSR1);
    atomic_store(&sent, 1);
    return NULL;
}

static void *report_mask(void *arg) {
    *(uint64_t *)arg = mask_now();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "loop") == 0) {
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++)
            set_mask(SIG_BLOCK, BIT(SIGUSR1), NULL);
        printf("done\n");
        return 0;
    }
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, on_usr2);
    set_mask(SIG_SETMASK, 0, NULL);
    uint64_t old = 1234;

    long r = set_mask(SIG_BLOCK, BIT(SIGUSR1), &old);
    printf("block usr1: %ld old %#lx now %#lx\n", r, old, mask_now());
    r = set_mask(SIG_BLOCK, BIT(SIGUSR2) | BIT(SIGKILL) | BIT(SIGSTOP), &old);
    printf("block usr2 kill stop: %ld old %#lx now %#lx\n", r, old, mask_now());
    printf("proc SigBlk %#lx\n", proc_sigblk());
    r = set_mask(SIG_UNBLOCK, BIT(SIGUSR2), &old);
    printf("unblock usr2: %ld old %#lx now %#lx\n", r, old, mask_now());
    r = set_mask(SIG_SETMASK, ~0ull, &old);
    printf("set all: %ld old %#lx now %#lx\n", r, old, mask_now());
    uint64_t both = BIT(SIGTERM);
    r = mask_call(SIG_SETMASK, &both, &both, 8);
    printf("set and old alike: %ld old %#lx now %#lx\n", r, both, mask_now());
    r = mask_call(SIG_SETMASK, NULL, NULL, 8);
    printf("nothing: %ld now %#lx\n", r, mask_now());

    /* Bad arguments. */
    printf("bad set: %ld now %#lx\n", mask_call(SIG_SETMASK, (void *)8, NULL, 8), mask_now());
    printf("noncanonical set: %ld\n",
           mask_call(SIG_SETMASK, (void *)0x8000000000000000ull, NULL, 8));
    uint64_t usr2 = BIT(SIGUSR2);
    r = mask_call(SIG_SETMASK, &usr2, (void *)&read_only_word, 8);
    printf("read-only old: %ld now %#lx\n", r, mask_now());
    r = mask_call(SIG_BLOCK, &usr2, (void *)16, 8);
    printf("unmapped old: %ld now %#lx\n", r, mask_now());
    r = mask_call(SIG_BLOCK, NULL, (void *)16, 8);
    printf("query to unmapped: %ld\n", r);
    printf("bad how: %ld\n", mask_call(3, &usr2, NULL, 8));
    printf("bad how, no set: %ld\n", mask_call(3, NULL, NULL, 8));
    printf("bad size: %ld %ld\n", mask_call(SIG_BLOCK, &usr2, NULL, 4),
           mask_call(SIG_BLOCK, NULL, &old, 16));

    /* A signal pending for the thread runs its handler before the unblocking
     * call returns. */
    set_mask(SIG_SETMASK, BIT(SIGUSR1), NULL);
    got_usr1 = 0;
    syscall(SYS_tgkill, getpid(), gettid(), SIGUSR1);
    printf("pending while blocked: ran %d\n", got_usr1);
    r = set_mask(SIG_UNBLOCK, BIT(SIGUSR1), &old);
    printf("after unblock: %ld ran %d old %#lx handler mask %#lx now %#lx\n", r, got_usr1, old,
           mask_in_handler, mask_now());

    /* One pending for the process. */
    set_mask(SIG_SETMASK, BIT(SIGUSR2), NULL);
    got_usr2 = 0;
    kill(getpid(), SIGUSR2);
    printf("process signal while blocked: ran %d\n", got_usr2);
    r = set_mask(SIG_SETMASK, 0, &old);
    printf("after setmask: %ld ran %d old %#lx\n", r, got_usr2, old);

    /* Sent by another thread while this one runs in the guest. */
    set_mask(SIG_SETMASK, BIT(SIGUSR1), NULL);
    got_usr1 = 0;
    main_thread = pthread_self();
    pthread_t t;
    pthread_create(&t, NULL, send_usr1, NULL);
    while (!atomic_load(&sent))
        ;
    printf("from a thread while blocked: ran %d\n", got_usr1);
    r = set_mask(SIG_UNBLOCK, BIT(SIGUSR1), NULL);
    printf("after unblock: %ld ran %d\n", r, got_usr1);
    pthread_join(t, NULL);

    /* The handler's mask, and the mask a handler leaves (its frame's). */
    set_mask(SIG_SETMASK, BIT(SIGTERM), NULL);
    raise(SIGUSR1);
    printf("in handler %#lx after %#lx\n", mask_in_handler, mask_now());

    /* sigsuspend's temporary mask. */
    set_mask(SIG_SETMASK, BIT(SIGUSR1) | BIT(SIGTERM), NULL);
    got_usr1 = 0;
    raise(SIGUSR1);
    sigset_t none;
    sigemptyset(&none);
    sigaddset(&none, SIGTERM);
    r = sigsuspend(&none);
    printf("sigsuspend: %ld ran %d handler mask %#lx now %#lx\n", r, got_usr1, mask_in_handler,
           mask_now());

    /* Inherited by a new thread and a fork child. */
    set_mask(SIG_SETMASK, BIT(SIGUSR2) | BIT(SIGHUP), NULL);
    uint64_t thread_mask = 0;
    pthread_create(&t, NULL, report_mask, &thread_mask);
    pthread_join(t, NULL);
    printf("new thread's mask %#lx\n", thread_mask);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        printf("fork child's mask %#lx SigBlk %#lx\n", mask_now(), proc_sigblk());
        set_mask(SIG_SETMASK, 0, NULL);
        printf("child unblocked: %#lx\n", mask_now());
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    printf("parent's mask %#lx\n", mask_now());
    printf("done\n");
    return 0;
}
