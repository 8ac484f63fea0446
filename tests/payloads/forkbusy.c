/* Forks while other threads are inside km's calls: one asks waitid about
 * children (without reaping), one opens and closes a file, one polls a
 * signalfd. Each child reads the signalfd (nothing pending), then exits at
 * once and is waited for; a child that stayed stuck (a lock another thread of
 * the parent's held at the fork) would leave the parent waiting, which the
 * alarm turns into a failure. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int done;

static void *asker(void *arg) {
    (void)arg;
    while (!atomic_load(&done)) {
        siginfo_t info;
        waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
    }
    return NULL;
}

static void *opener(void *arg) {
    (void)arg;
    while (!atomic_load(&done))
        close(open("/dev/null", O_RDONLY));
    return NULL;
}

static int sfd;

static void *poller(void *arg) {
    (void)arg;
    while (!atomic_load(&done)) {
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        poll(&p, 1, 0);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 300;
    alarm(120);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sfd = signalfd(-1, &mask, SFD_NONBLOCK);
    if (sfd < 0) {
        perror("signalfd");
        return 1;
    }
    pthread_t t[3];
    pthread_create(&t[0], NULL, asker, NULL);
    pthread_create(&t[1], NULL, opener, NULL);
    pthread_create(&t[2], NULL, poller, NULL);
    for (int i = 0; i < rounds; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            struct signalfd_siginfo si;
            _exit(read(sfd, &si, sizeof si) < 0 ? i % 7 : 99);
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != i % 7) {
            fprintf(stderr, "round %d: child %d status %#x\n", i, pid, st);
            return 1;
        }
    }
    atomic_store(&done, 1);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    pthread_join(t[2], NULL);
    printf("%d forks done\n", rounds);
    return 0;
}
