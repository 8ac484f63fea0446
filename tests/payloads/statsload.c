/* `statsload N`: calls getppid N times in the main thread, N times in a second
 * thread, then forks a child that calls it N times; prints what the calls saw.
 * tests/stats.rs counts these calls in km --stats. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long n;

/* The number of getppid calls that returned `expect`. */
static long calls(long expect) {
    long same = 0;
    for (long i = 0; i < n; i++)
        same += syscall(SYS_getppid) == expect;
    return same;
}

static void *thread_calls(void *parent) {
    return (void *)calls((long)parent);
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    n = atol(argv[1]);
    long parent = getppid();
    printf("main thread: %ld of %ld\n", calls(parent), n);
    pthread_t t;
    void *same;
    if (pthread_create(&t, NULL, thread_calls, (void *)parent) != 0 || pthread_join(t, &same) != 0)
        return 1;
    printf("second thread: %ld of %ld\n", (long)same, n);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        printf("child: %ld of %ld\n", calls(getppid()), n);
        return 0;
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return 1;
    return WEXITSTATUS(status);
}
