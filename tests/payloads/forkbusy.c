/* Forks while other threads are inside km's calls: one asks waitid about
 * children (without reaping), one opens and closes a file, one writes to a
 * pipe nobody reads fast. Each child exits at once and is waited for; a child
 * that stayed stuck (a lock another thread of the parent's held at the fork)
 * would leave the parent waiting, which the alarm turns into a failure. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
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

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 300;
    alarm(120);
    pthread_t t[2];
    pthread_create(&t[0], NULL, asker, NULL);
    pthread_create(&t[1], NULL, opener, NULL);
    for (int i = 0; i < rounds; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0)
            _exit(i % 7);
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != i % 7) {
            fprintf(stderr, "round %d: child %d status %#x\n", i, pid, st);
            return 1;
        }
    }
    atomic_store(&done, 1);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    printf("%d forks done\n", rounds);
    return 0;
}
