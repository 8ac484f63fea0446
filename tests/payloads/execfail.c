#define _GNU_SOURCE
/* Runs each argument in a child (fork + execv) and prints how it went: the errno
 * execv gave, or the child's exit status. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            char *args[] = {argv[i], NULL};
            execv(argv[i], args);
            printf("%s: %s\n", argv[i], strerrorname_np(errno));
            fflush(stdout);
            _exit(99);
        }
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) != pid) {
            perror("fork/waitpid");
            return 1;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
            printf("%s: ran, status %#x\n", argv[i], status);
    }
    return 0;
}
