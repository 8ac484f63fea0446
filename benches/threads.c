/* Thread benchmarks: `create N` creates and joins N threads one after another;
 * `pingpong N` bounces a futex word between two threads N times; `files-T N`
 * opens and closes /dev/null N times in all, spread over T threads. */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129

static atomic_int turn;
static long rounds;

static void *nothing(void *arg) {
    return arg;
}

/* Waits until `turn` is `me`, then hands it to the other side. */
static void play(int me) {
    for (long i = 0; i < rounds; i++) {
        while (atomic_load(&turn) != me)
            syscall(SYS_futex, &turn, FUTEX_WAIT_PRIVATE, !me, NULL, NULL, 0);
        atomic_store(&turn, !me);
        syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
}

static void *other(void *arg) {
    (void)arg;
    play(1);
    return NULL;
}

/* Opens and closes /dev/null `rounds` times. */
static void *open_close(void *arg) {
    (void)arg;
    for (long i = 0; i < rounds; i++)
        close(open("/dev/null", O_RDONLY));
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    long n = atol(argv[2]);
    if (strcmp(argv[1], "create") == 0) {
        for (long i = 0; i < n; i++) {
            pthread_t t;
            pthread_create(&t, NULL, nothing, NULL);
            pthread_join(t, NULL);
        }
    } else if (strncmp(argv[1], "files-", 6) == 0) {
        long threads = atol(argv[1] + 6);
        if (threads < 1 || threads > 64)
            return 2;
        rounds = n / threads;
        pthread_t t[64];
        for (long i = 0; i < threads; i++)
            pthread_create(&t[i], NULL, open_close, NULL);
        for (long i = 0; i < threads; i++)
            pthread_join(t[i], NULL);
    } else {
        rounds = n;
        pthread_t t;
        pthread_create(&t, NULL, other, NULL);
        play(0);
        pthread_join(t, NULL);
    }
    return 0;
}
