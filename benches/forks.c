/* Process benchmark: `forks N` forks N children one after another; each exits at
 * once and the parent waits for it. `forks exec N`: each child execs this program
 * (static), which exits at once; `forks spawn N`: posix_spawn of this program. */
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    const char *mode = argc > 2 ? argv[1] : "exit";
    long n = atol(argv[argc - 1]);
    char *again[] = {argv[0], "0", NULL};
    for (long i = 0; i < n; i++) {
        pid_t pid;
        if (strcmp(mode, "spawn") == 0) {
            if (posix_spawn(&pid, argv[0], NULL, NULL, again, environ) != 0)
                return 1;
        } else {
            pid = fork();
            if (pid == 0) {
                if (strcmp(mode, "exec") == 0)
                    execve(argv[0], again, environ);
                _exit(0);
            }
        }
        int st;
        if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return 1;
    }
    return 0;
}
