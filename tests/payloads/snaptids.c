// Snapshot payload (tests/snapshot.rs): thread ids across a restore. A worker
// thread holds a robust error-checking mutex and waits; main takes a snapshot
// that ends the payload (KM_SNAPSHOT, 505; natively the call fails with ENOSYS
// and it goes on). Then main signals the worker with pthread_kill, finds the
// mutex busy, and the worker unlocks it (its owner: the C library's cached
// thread id of the worker must be its id after a restore too).
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KM_SNAPSHOT 505

static pthread_mutex_t held;
static sem_t ready, go, signalled;
static pthread_t worker_thread;
static volatile sig_atomic_t on_worker = -1;
static int locked;

static void on_usr1(int sig) {
    (void)sig;
    on_worker = pthread_equal(pthread_self(), worker_thread);
    sem_post(&signalled);
}

static void wait_for(sem_t *s) {
    while (sem_wait(s) != 0 && errno == EINTR) {
    }
}

static void *worker(void *arg) {
    (void)arg;
    locked = pthread_mutex_lock(&held);
    sem_post(&ready);
    wait_for(&go);
    int r = pthread_mutex_unlock(&held);
    printf("worker unlocks the mutex it held across the snapshot: %s\n", strerror(r));
    r = pthread_mutex_unlock(&held);
    printf("worker unlocks it again: %s\n", strerror(r));
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&held, &attr);
    sem_init(&ready, 0, 0);
    sem_init(&go, 0, 0);
    sem_init(&signalled, 0, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_create(&worker_thread, NULL, worker, NULL);
    wait_for(&ready);

    long r = syscall(KM_SNAPSHOT, "tids", NULL, 0);
    printf("snapshot returned %ld%s%s\n", r, r < 0 ? " " : "", r < 0 ? strerror(errno) : "");
    printf("the worker locked the mutex: %s\n", strerror(locked));

    int k = pthread_kill(worker_thread, SIGUSR1);
    printf("pthread_kill to the worker: %s\n", strerror(k));
    if (k == 0) {
        wait_for(&signalled);
        printf("the handler ran on the worker: %s\n", on_worker == 1 ? "yes" : "no");
    }
    r = pthread_mutex_trylock(&held);
    printf("main tries the worker's mutex: %s\n", strerror(r));
    r = pthread_mutex_unlock(&held);
    printf("main unlocks the worker's mutex: %s\n", strerror(r));
    sem_post(&go);
    pthread_join(worker_thread, NULL);
    r = pthread_mutex_lock(&held);
    printf("main locks it after the worker: %s\n", strerror(r));
    r = pthread_mutex_unlock(&held);
    printf("main unlocks it: %s\n", strerror(r));
    printf("done\n");
    return 0;
}
