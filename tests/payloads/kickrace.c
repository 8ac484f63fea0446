/* A signal sent to a thread at any moment of a blocking call must end the call
 * (EINTR) once it is in progress: km's kick can land after km's look for signals
 * at the syscall's entry and before the host call it makes has begun.
 *
 * A victim thread blocks, round after round, in semop, msgrcv, a long
 * clock_nanosleep and a read of an empty pipe (each made through the stub below,
 * whose `syscall` instruction has a known address), and the main thread sends it
 * SIGUSR1 (handler without SA_RESTART) at a random moment from 0 to 150 us after
 * the victim announced the call: right at its start, inside km's syscall path,
 * or while it waits. The handler tells from the interrupted address whether it
 * ran before the call (Linux then makes the call, which blocks: the signal is
 * sent again) or interrupted it (the call must return EINTR). A signal that ran
 * no handler within the bound (argument 2, ms) is a hang: the victim is then
 * woken by other means (a semaphore post, a message, a byte) and the round
 * counted. Then a few rounds per call with SIGUSR1 blocked: the call must not be
 * interrupted (woken by those other means, it succeeds) and the handler runs once
 * the victim unblocks the signal. Last, the payload, which made no timer, must
 * reach none through the timer calls (km's own, which send kicks again, are not
 * its own).
 *
 * Arguments: rounds per call (default 500), the bound in ms (default 1000).
 * stdout is the same natively and under km when every round behaves; the counts
 * (rounds where the handler ran before the call, hangs) go to stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

/* long kr_syscall(nr, a1, a2, a3, a4): the raw call, returning -errno. */
long kr_syscall(long nr, long a1, long a2, long a3, long a4);
extern char kr_syscall_ret[];
__asm__(".text\n"
        ".globl kr_syscall\n"
        "kr_syscall:\n"
        "  mov %rdi, %rax\n"
        "  mov %rsi, %rdi\n"
        "  mov %rdx, %rsi\n"
        "  mov %rcx, %rdx\n"
        "  mov %r8, %r10\n"
        "  syscall\n"
        ".globl kr_syscall_ret\n"
        "kr_syscall_ret:\n"
        "  ret\n");

enum kind { SEMOP, MSGRCV, NANOSLEEP, PIPEREAD, KINDS };
static const char *names[KINDS] = {"semop", "msgrcv", "clock_nanosleep", "pipe read"};

enum where { NONE, BEFORE, IN_CALL };

static int sem, queue, pipefd[2];
static pthread_t victim;

/* Rounds: the main thread sets `go`; the victim announces `started` just before
 * its call and `done` after it, with the call's result in `result`. */
static atomic_long go, started, done, result;
static atomic_int round_kind, round_blocked;
static atomic_long sleep_ns;
/* Set by the handler: how many ran, and where the last one interrupted. */
static atomic_long handled;
static atomic_int last_where;

struct msg {
    long mtype;
    char mtext[8];
};

static void on_usr1(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)si;
    ucontext_t *uc = ctx;
    char *rip = (char *)uc->uc_mcontext.gregs[REG_RIP];
    atomic_store(&last_where, rip == kr_syscall_ret ? IN_CALL : BEFORE);
    atomic_fetch_add(&handled, 1);
}

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static long call(int kind) {
    switch (kind) {
    case SEMOP: {
        struct sembuf op = {.sem_num = 0, .sem_op = -1, .sem_flg = 0};
        return kr_syscall(SYS_semop, sem, (long)&op, 1, 0);
    }
    case MSGRCV: {
        static struct msg m;
        return kr_syscall(SYS_msgrcv, queue, (long)&m, sizeof m.mtext, 0);
    }
    case NANOSLEEP: {
        long ns = atomic_load(&sleep_ns);
        struct timespec t = {ns / 1000000000L, ns % 1000000000L};
        return kr_syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, (long)&t, 0);
    }
    default: {
        char c;
        return kr_syscall(SYS_read, pipefd[0], (long)&c, 1, 0);
    }
    }
}

static void *victim_main(void *arg) {
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
        int kind = atomic_load(&round_kind);
        int blocked = atomic_load(&round_blocked);
        if (blocked)
            pthread_sigmask(SIG_BLOCK, &usr1, NULL);
        atomic_store(&started, r);
        long res = call(kind);
        atomic_store(&result, res);
        atomic_store(&done, r);
        if (blocked)
            pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
    }
}

/* What wakes the victim without a signal. */
static void wake(int kind) {
    switch (kind) {
    case SEMOP: {
        struct sembuf op = {.sem_num = 0, .sem_op = 1, .sem_flg = 0};
        semop(sem, &op, 1);
        break;
    }
    case MSGRCV: {
        struct msg m = {.mtype = 1, .mtext = "x"};
        msgsnd(queue, &m, 1, 0);
        break;
    }
    case NANOSLEEP:
        break; /* it ends by itself */
    default:
        if (write(pipefd[1], "x", 1) != 1)
            abort();
    }
}

/* Takes back what `wake` left if the call ended otherwise. */
static void drain(void) {
    semctl(sem, 0, SETVAL, 0);
    struct msg m;
    while (msgrcv(queue, &m, sizeof m.mtext, 0, IPC_NOWAIT) >= 0)
        ;
    int n = 0;
    char buf[64];
    if (ioctl(pipefd[0], FIONREAD, &n) == 0 && n > 0 && read(pipefd[0], buf, n) != n)
        abort();
}

static void cleanup(void) {
    semctl(sem, 0, IPC_RMID);
    msgctl(queue, IPC_RMID, NULL);
}

/* Waits until `*what` reaches `value` or `bound_ns` passes; true if reached. */
static int wait_for(atomic_long *what, long value, long bound_ns) {
    long end = now_ns() + bound_ns;
    for (int spins = 0; atomic_load(what) < value; spins++) {
        if (now_ns() > end)
            return 0;
        if (spins > 2000) {
            struct timespec t = {0, 50000};
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

static long seq;

static void start_round(int kind, int blocked, long sleep) {
    atomic_store(&round_kind, kind);
    atomic_store(&round_blocked, blocked);
    atomic_store(&sleep_ns, sleep);
    seq++;
    atomic_store(&go, seq);
    if (!wait_for(&started, seq, 10000000000L)) {
        printf("victim did not start round %ld\n", seq);
        exit(1);
    }
    /* 0 to 150 us: right at the call's start, on km's way into it, or in it. */
    long delay = (long)(next_random() % 150001);
    if (delay > 100000)
        delay = 0;
    long until = now_ns() + delay;
    while (now_ns() < until)
        ;
}

static void end_round(void) {
    if (!wait_for(&done, seq, 10000000000L)) {
        printf("round %ld never ended\n", seq);
        exit(1);
    }
    drain();
}

/* Signals while the victim's call may be in progress; counts hangs and the
 * rounds whose results are wrong. */
static void unblocked_rounds(int kind, long rounds, long bound_ns, long *hangs, long *wrong,
                             long *before) {
    for (long i = 0; i < rounds; i++) {
        start_round(kind, 0, 2000000000L);
        int hung = 0;
        for (;;) {
            long h = atomic_load(&handled);
            pthread_kill(victim, SIGUSR1);
            if (!wait_for(&handled, h + 1, bound_ns)) {
                (*hangs)++;
                hung = 1;
                fprintf(stderr, "%s: round %ld: no handler within the bound\n", names[kind], i);
                wake(kind);
                break;
            }
            if (atomic_load(&last_where) == IN_CALL)
                break;
            /* Ran before the call, which is then made and blocks: again. */
            (*before)++;
            struct timespec t = {0, 200000};
            nanosleep(&t, NULL);
        }
        end_round();
        long r = atomic_load(&result);
        if (!hung && r != -EINTR) {
            (*wrong)++;
            fprintf(stderr, "%s: round %ld: result %ld\n", names[kind], i, r);
        }
    }
}

/* The signal is blocked: it must not interrupt the call, and runs the handler
 * once unblocked. Returns the rounds that went wrong. */
static long blocked_rounds(int kind, long rounds) {
    long wrong = 0;
    for (long i = 0; i < rounds; i++) {
        long h = atomic_load(&handled);
        start_round(kind, 1, 100000000L);
        pthread_kill(victim, SIGUSR1);
        struct timespec t = {0, 5000000};
        nanosleep(&t, NULL);
        /* A sleep ends by itself: its result says whether it was interrupted. */
        if (kind != NANOSLEEP && atomic_load(&done) == seq) {
            wrong++;
            fprintf(stderr, "%s, blocked: round %ld ended early: %ld\n", names[kind], i,
                    atomic_load(&result));
        }
        wake(kind);
        end_round();
        long r = atomic_load(&result);
        if (r < 0) {
            wrong++;
            fprintf(stderr, "%s, blocked: round %ld: result %ld\n", names[kind], i, r);
        }
        if (!wait_for(&handled, h + 1, 10000000000L)) {
            wrong++;
            fprintf(stderr, "%s, blocked: round %ld: no handler after unblocking\n", names[kind],
                    i);
        }
    }
    return wrong;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 500;
    long bound_ns = (argc > 2 ? atol(argv[2]) : 1000) * 1000000L;
    rng = (uint64_t)now_ns() | 1;
    sem = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    queue = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    if (sem < 0 || queue < 0 || pipe(pipefd) != 0) {
        perror("setup");
        return 1;
    }
    atexit(cleanup);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    pthread_create(&victim, NULL, victim_main, NULL);
    long total_hangs = 0;
    for (int kind = 0; kind < KINDS; kind++) {
        long hangs = 0, wrong = 0, before = 0;
        long t0 = now_ns();
        unblocked_rounds(kind, rounds, bound_ns, &hangs, &wrong, &before);
        total_hangs += hangs;
        fprintf(stderr, "%s: %ld rounds in %ld ms, %ld signals ran before the call, %ld hangs\n",
                names[kind], rounds, (now_ns() - t0) / 1000000, before, hangs);
        if (hangs || wrong)
            printf("%s: %ld hangs, %ld wrong results in %ld rounds\n", names[kind], hangs, wrong,
                   rounds);
        else
            printf("%s: every signal ended the call with EINTR\n", names[kind]);
        long bad = blocked_rounds(kind, 10);
        printf("%s, signal blocked: %s\n", names[kind],
               bad ? "WRONG" : "the call was not interrupted, the handler ran after");
    }
    /* The payload made no timer: no timer id is one of its own (km's timers,
     * which send kicks again, are not the payload's; the victim, signalled
     * often, still runs). */
    int reached = 0;
    for (long id = 0; id < 1024; id++) {
        long cur[4];
        if (syscall(SYS_timer_gettime, id, cur) == 0 || errno != EINVAL ||
            syscall(SYS_timer_delete, id) == 0 || errno != EINVAL)
            reached++;
    }
    printf("timer ids 0-1023 reached: %d\n", reached);
    atomic_store(&go, -1);
    pthread_join(victim, NULL);
    printf("done, %s\n", total_hangs ? "with hangs" : "no hangs");
    return total_hangs ? 2 : 0;
}
