// Linux behaviour CPython's regrtest relies on (issue 13), one case per argument;
// the output must be the same natively and under km.
//   closedstdio: standard descriptors closed before execve (by fork + close, and
//   by posix_spawn's close action) stay closed in the new program, and the next
//   open() takes the lowest of them (test_posix's test_close_file).
//   procpidfd: pidfd_send_signal through a /proc/<pid> directory descriptor
//   signals that process (test_signal's test_pidfd_send_signal); other
//   descriptors are EBADF, a reaped process's directory ESRCH.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
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
    /* The child's report comes first: the parent prints once it has ended. */
    int status = err == 0 ? wait_child(pid) : -1;
    printf("posix_spawn: %s\n", strerror(err));
    if (err == 0)
        printf("spawned child status %d\n", status);
    printf("closedstdio done\n");
    return 0;
}

static volatile sig_atomic_t usr1_seen;

static void on_usr1(int sig) { usr1_seen = sig; }

static const char *pidfd_signal(int fd, int sig) {
    return syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) == 0 ? "ok" : strerror(errno);
}

static int open_proc_dir(const char *fmt, long a, long b) {
    char path[64];
    snprintf(path, sizeof path, fmt, a, b);
    return open(path, O_RDONLY | O_DIRECTORY);
}

static int proc_pidfd(void) {
    signal(SIGUSR1, on_usr1);
    int self = open_proc_dir("/proc/%ld", getpid(), 0);
    printf("own directory, SIGUSR1: %s", pidfd_signal(self, SIGUSR1));
    printf(", handler ran before return: %d\n", usr1_seen == SIGUSR1);
    long r = syscall(SYS_pidfd_send_signal, self, 0, NULL, 8);
    printf("unknown flag: %s\n", r == 0 ? "ok" : strerror(errno));
    int task = open_proc_dir("/proc/%ld/task/%ld", getpid(), getpid());
    printf("task directory: %s\n", pidfd_signal(task, 0));
    int file = open("/proc/self/status", O_RDONLY);
    printf("regular file: %s\n", pidfd_signal(file, 0));
    printf("closed descriptor: %s\n", pidfd_signal(100, 0));
    int ready[2];
    if (pipe(ready))
        return 1;
    pid_t child = fork();
    if (child == 0) {
        close(ready[0]);
        close(ready[1]);
        pause();
        _exit(0);
    }
    close(ready[1]);
    char c;
    printf("child started: %ld\n", (long)read(ready[0], &c, 1));
    int dir = open_proc_dir("/proc/%ld", child, 0);
    printf("child directory, SIGTERM: %s\n", pidfd_signal(dir, SIGTERM));
    int status = wait_child(child);
    printf("child status %d\n", status);
    printf("reaped child directory: %s\n", pidfd_signal(dir, 0));
    printf("procpidfd done\n");
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
    if (argc > 1 && strcmp(argv[1], "procpidfd") == 0)
        return proc_pidfd();
    fprintf(stderr, "usage: pycompat closedstdio|procpidfd\n");
    return 2;
}
