/* A signal from outside (kill of the process) reaching a payload that waits for
 * it (tests/signals_compat.rs, issue 13's lost host signal). argv[1]:
 *   pause       handlers for SIGTERM and SIGUSR2, then pause() in a loop
 *   sigsuspend  both blocked, handlers, then sigsuspend() with an empty mask
 *   threads     as pause, while two threads that block both wait on a futex
 *               and in read() of a pipe
 *   read        handlers, then read() of stdin (a pipe that stays empty)
 * Prints "ready" once it waits; a handler prints "handled N" and exits 3. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int pipefd[2];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

static void on_signal(int sig) {
    char msg[] = "handled NN\n";
    msg[8] = '0' + sig / 10;
    msg[9] = '0' + sig % 10;
    write(1, msg, sizeof msg - 1);
    _exit(3);
}

static void block_both(int how) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(how, &set, NULL);
}

static void *on_futex(void *arg) {
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;)
        pthread_cond_wait(&cond, &lock);
    return NULL;
}

static void *in_read(void *arg) {
    char c;
    (void)arg;
    for (;;)
        read(pipefd[0], &c, 1);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    if (strcmp(argv[1], "read") == 0) {
        char c;
        signal(SIGTERM, on_signal);
        signal(SIGUSR2, on_signal);
        write(1, "ready\n", 6);
        for (;;)
            read(0, &c, 1);
    }
    if (strcmp(argv[1], "threads") == 0) {
        pipe(pipefd);
        block_both(SIG_BLOCK); /* the threads inherit the mask */
        pthread_t a, b;
        pthread_create(&a, NULL, on_futex, NULL);
        pthread_create(&b, NULL, in_read, NULL);
        block_both(SIG_UNBLOCK);
    }
    int suspend = strcmp(argv[1], "sigsuspend") == 0;
    if (suspend)
        block_both(SIG_BLOCK);
    signal(SIGTERM, on_signal);
    signal(SIGUSR2, on_signal);
    write(1, "ready\n", 6);
    sigset_t none;
    sigemptyset(&none);
    for (;;) {
        if (suspend)
            sigsuspend(&none);
        else
            pause();
    }
}
