/* gdb on threads (tests/gdb.rs): THREADS threads each call work() CALLS times, then
 * cond() CALLS times, then skip() CALLS times, waiting for each other between the
 * phases, so a breakpoint in one of them is hit THREADS * CALLS times, often by
 * several threads at once, and a script can change breakpoints between phases; main
 * prints the sum of all arguments at the end. */
#include <pthread.h>
#include <stdio.h>

#define THREADS 8
#define CALLS 100

static long total;
static pthread_barrier_t phase;

__attribute__((noinline)) void work(int i) {
    __atomic_add_fetch(&total, i, __ATOMIC_SEQ_CST);
}

__attribute__((noinline)) void cond(int i) {
    __atomic_add_fetch(&total, i, __ATOMIC_SEQ_CST);
}

__attribute__((noinline)) void skip(int i) {
    __atomic_add_fetch(&total, i, __ATOMIC_SEQ_CST);
}

static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < CALLS; i++)
        work(i);
    pthread_barrier_wait(&phase);
    for (int i = 0; i < CALLS; i++)
        cond(i);
    pthread_barrier_wait(&phase);
    for (int i = 0; i < CALLS; i++)
        skip(i);
    return NULL;
}

int main(void) {
    pthread_t t[THREADS];
    pthread_barrier_init(&phase, NULL, THREADS);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("total %ld\n", total);
    return 0;
}
