// Linux behaviour CPython's regrtest relies on (issue 13), one case per argument;
// the output must be the same natively and under km.
//   closedstdio: standard descriptors closed before execve (by fork + close, and
//   by posix_spawn's close action) stay closed in the new program, and the next
//   open() takes the lowest of them (test_posix's test_close_file).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void report_stdio(const char *how) {
    struct stat st;
    printf("%s:", how);
    for (int fd = 0; fd <= 2; fd++)
        printf(" fd %d %s", fd, fstat(fd, &st) == 0 ? "open" : strerror(errno));
    printf(", next open() gets %d\n", open("/dev/null", O_RDONLY));
}

static int wait_child(pid_t pid) {
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int closed_stdio(const char *self) {
    pid_t pid = fork();
    if (pid == 0) {
        close(0);
        close(2);
        execl(self, self, "closedstdio-report", "fork, close 0 and 2, exec", (char *)NULL);
        _exit(127);
    }
    printf("fork child status %d\n", wait_child(pid));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addclose(&actions, 0);
    char *argv[] = {(char *)self, "closedstdio-report", "posix_spawn closing 0", NULL};
    int err = posix_spawn(&pid, self, &actions, NULL, argv, environ);
    printf("posix_spawn: %s\n", strerror(err));
    if (err == 0)
        printf("spawned child status %d\n", wait_child(pid));
    printf("closedstdio done\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 2 && strcmp(argv[1], "closedstdio-report") == 0) {
        report_stdio(argv[2]);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "closedstdio") == 0)
        return closed_stdio(argv[0]);
    fprintf(stderr, "usage: pycompat closedstdio\n");
    return 2;
}
