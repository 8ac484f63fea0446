/* Threads: mutex counter, condition variable, __thread, join values, barrier,
 * raw futex wait/wake, 200 threads created and joined in a loop, and what a new
 * thread gets whatever ran before it (km keeps spare host threads and parked
 * vCPUs): fresh __thread values, its own thread pointer (FS base) and its
 * creator's GS base, its creator's signal mask and CPU affinity, and a tid no
 * thread before it had. */
#define _GNU_SOURCE
/* musl-gcc has no kernel headers: the futex ABI numbers. */
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129
/* And arch_prctl's. */
#define ARCH_SET_GS 0x1001
#define ARCH_GET_FS 0x1003
#define ARCH_GET_GS 0x1004
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define THREADS 16
#define ROUNDS 20000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static __thread long mine = -1;

static void *count(void *arg) {
    mine = (long)arg;
    for (int i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    return (void *)(mine * mine);
}

/* Producer/consumer over a one-slot buffer. */
static pthread_cond_t filled = PTHREAD_COND_INITIALIZER, emptied = PTHREAD_COND_INITIALIZER;
static int slot, has_item;

static void *produce(void *arg) {
    (void)arg;
    for (int i = 1; i <= 1000; i++) {
        pthread_mutex_lock(&lock);
        while (has_item)
            pthread_cond_wait(&emptied, &lock);
        slot = i;
        has_item = 1;
        pthread_cond_signal(&filled);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static void *own_tid(void *arg) {
    (void)arg;
    return (void *)(long)syscall(SYS_gettid);
}

static pthread_barrier_t barrier;
static atomic_int arrived;

static void *meet(void *arg) {
    atomic_fetch_add(&arrived, 1);
    int serial = pthread_barrier_wait(&barrier) == PTHREAD_BARRIER_SERIAL_THREAD;
    /* Everyone must see all arrivals once past the barrier. */
    return (void *)(long)(atomic_load(&arrived) == 4 ? 1 + serial : 100);
}

static atomic_int word;

static void *futex_waker(void *arg) {
    (void)arg;
    usleep(20000);
    atomic_store(&word, 1);
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    return NULL;
}

static void *nothing(void *arg) {
    return arg;
}

/* Reports whether its __thread value is fresh and its mask is its creator's
 * (SIGUSR2 blocked, SIGUSR1 not), then blocks SIGUSR1 and dirties the value,
 * which the next thread must not see. */
static void *inherit(void *arg) {
    (void)arg;
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    long ok = mine == -1 && sigismember(&now, SIGUSR2) && !sigismember(&now, SIGUSR1);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &one, NULL);
    mine = 7;
    return (void *)ok;
}

/* The number of CPUs this thread may run on. */
static void *cpus(void *arg) {
    (void)arg;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return (void *)-1L;
    return (void *)(long)CPU_COUNT(&set);
}

static unsigned long expected_gs;

/* 1 when the thread's FS base is its own thread pointer and its GS base its
 * creator's. */
static void *bases(void *arg) {
    (void)arg;
    unsigned long fs = 0, gs = 1;
    syscall(SYS_arch_prctl, ARCH_GET_FS, &fs);
    syscall(SYS_arch_prctl, ARCH_GET_GS, &gs);
    return (void *)(long)(fs == (unsigned long)pthread_self() && gs == expected_gs);
}

/* Creates and joins threads reporting their bases, one alone, then two at a
 * time (so that a vCPU a thread ended on gets a thread on another stack), `n`
 * rounds; returns how many were right. */
static long bases_rounds(int n) {
    long right = 0;
    for (int i = 0; i < n; i++) {
        pthread_t a, b;
        void *r;
        pthread_create(&a, NULL, bases, NULL);
        pthread_join(a, &r);
        right += (long)r;
        pthread_create(&a, NULL, bases, NULL);
        pthread_create(&b, NULL, bases, NULL);
        pthread_join(a, &r);
        right += (long)r;
        pthread_join(b, &r);
        right += (long)r;
    }
    return right;
}

static long run_one(void *(*fn)(void *)) {
    pthread_t t;
    void *r;
    if (pthread_create(&t, NULL, fn, NULL) != 0)
        return -2;
    pthread_join(t, &r);
    return (long)r;
}

int main(void) {
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, count, (void *)i);
    long squares = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        squares += (long)r;
    }
    printf("counter %ld (expected %d), joined squares %ld, main's __thread %ld\n", counter, THREADS * ROUNDS, squares, mine);

    pthread_t p;
    pthread_create(&p, NULL, produce, NULL);
    long total = 0;
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&lock);
        while (!has_item)
            pthread_cond_wait(&filled, &lock);
        total += slot;
        has_item = 0;
        pthread_cond_signal(&emptied);
        pthread_mutex_unlock(&lock);
    }
    pthread_join(p, NULL);
    printf("consumed total %ld\n", total);

    pthread_barrier_init(&barrier, NULL, 4);
    pthread_t b[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&b[i], NULL, meet, NULL);
    long serials = (long)meet(NULL);
    for (int i = 0; i < 3; i++) {
        void *r;
        pthread_join(b[i], &r);
        serials += (long)r;
    }
    printf("barrier: %ld (4 threads, one serial)\n", serials);

    pthread_t w;
    pthread_create(&w, NULL, futex_waker, NULL);
    long rc = 0;
    while (atomic_load(&word) == 0)
        rc = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    pthread_join(w, NULL);
    printf("futex woke: word %d\n", atomic_load(&word));
    struct timespec ts = {0, 1000000};
    rc = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 1, &ts, NULL, 0);
    printf("futex timeout: %ld\n", rc);

    long sum = 0;
    for (long i = 0; i < 200; i++) {
        pthread_t x;
        void *r;
        if (pthread_create(&x, NULL, nothing, (void *)i) != 0) {
            printf("create %ld failed\n", i);
            return 1;
        }
        pthread_join(x, &r);
        sum += (long)r;
    }
    printf("200 threads joined, sum %ld\n", sum);

    /* Threads created one after another never get a tid an ended one had (as
     * Linux, which hands tids out in turn; CPython checks native ids differ). */
    long tids[50];
    int distinct = 0;
    for (int i = 0; i < 50; i++) {
        tids[i] = run_one(own_tid);
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= tids[j] == tids[i];
        distinct += !seen && tids[i] != syscall(SYS_gettid);
    }
    printf("50 threads one after another, distinct tids: %d\n", distinct);

    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, NULL);
    long fresh = 0;
    for (int i = 0; i < 50; i++)
        fresh += run_one(inherit);
    printf("50 threads with fresh __thread and their creator's mask: %ld\n", fresh);

    long right = bases_rounds(10);
    static char gs_area[64];
    expected_gs = (unsigned long)gs_area;
    if (syscall(SYS_arch_prctl, ARCH_SET_GS, expected_gs) != 0) {
        perror("arch_prctl");
        return 1;
    }
    right += bases_rounds(10);
    printf("60 threads with their own thread pointer and their creator's GS base: %ld\n", right);

    /* A thread started after its creator narrowed its affinity has the narrow one. */
    cpu_set_t set;
    sched_getaffinity(0, sizeof set, &set);
    int first = 0;
    while (first < CPU_SETSIZE && !CPU_ISSET(first, &set))
        first++;
    long before = run_one(cpus);
    CPU_ZERO(&set);
    CPU_SET(first, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        perror("sched_setaffinity");
        return 1;
    }
    long after = run_one(cpus);
    printf("new thread's CPUs: as many as its creator's before (%s), 1 after narrowing: %ld\n",
           before >= 1 ? "yes" : "no", after);
    return 0;
}
