/* A chain of execve calls, each program touching memory before it execs the
 * next: what each exec leaves behind shows in the process's memory at the end.
 *
 *   execchain N MIB       closes what its caller left open above stderr,
 *                         touches MIB MiB, then execs itself as `execchain
 *                         N-1 MIB chained` (which closes nothing) until N is
 *                         0; the last program prints "pid P" and waits for
 *                         end of file on stdin.
 *   execchain fork N MIB  closes what its caller left open, touches MIB MiB,
 *                         forks, and the child runs `execchain N 1 chained`;
 *                         the parent waits for it and exits with its status.
 *   execchain exec-fork MIB  closes what its caller left open, touches MIB
 *                         MiB, execs `execchain fork-now`, which forks at
 *                         once: its child is the last program (the parent
 *                         waits for it).
 *
 * Linux frees each program's memory at its exec (and a fork child's copy of its
 * parent's): the last program's resident set is its own. Each program opens
 * /dev/null twice, once with O_CLOEXEC: the next exec closes that one and keeps
 * the other, and the last program prints how many of each it holds
 * ("kept K cloexec C"). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Writes every page of MIB fresh MiB (through a volatile pointer: the writes
 * must happen, though nothing reads them). */
static void touch(long mib) {
    volatile char *p = malloc(mib << 20);
    if (!p) {
        perror("malloc");
        exit(2);
    }
    for (long i = 0; i < mib << 20; i += 4096)
        p[i] = 1;
}

static void exec_self(const char *self, long n, long mib) {
    char count[32], size[32];
    snprintf(count, sizeof count, "%ld", n);
    snprintf(size, sizeof size, "%ld", mib);
    execl(self, "execchain", count, size, "chained", (char *)NULL);
    perror("execl");
    exit(3);
}

/* The chain counts its own descriptors only: those its caller left open go. */
static void close_inherited(void) {
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
}

/* The last program: says what it holds and its pid, then waits for the end of
 * stdin. */
static int last(void) {
    int kept = 0, cloexec = 0;
    for (int fd = 3; fd < 1024; fd++) {
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0)
            flags & FD_CLOEXEC ? cloexec++ : kept++;
    }
    printf("kept %d cloexec %d\npid %d\n", kept, cloexec, getpid());
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {
    }
    return 0;
}

/* Forks; the child goes on with `child` (which does not return), the parent
 * waits for it and returns its status. */
static int fork_and_wait(void (*child)(long), long arg) {
    pid_t pid = fork();
    if (pid == 0)
        child(arg);
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return 4;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 5;
}

static void chain_of(long n) {
    exec_self("/proc/self/exe", n, 1);
}

static void last_of_fork(long unused) {
    (void)unused;
    exit(last());
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "fork") == 0) {
        close_inherited();
        touch(atol(argv[3]));
        return fork_and_wait(chain_of, atol(argv[2]));
    }
    if (argc == 3 && strcmp(argv[1], "exec-fork") == 0) {
        close_inherited();
        touch(atol(argv[2]));
        execl("/proc/self/exe", "execchain", "fork-now", (char *)NULL);
        perror("execl");
        return 3;
    }
    if (argc == 2 && strcmp(argv[1], "fork-now") == 0)
        return fork_and_wait(last_of_fork, 0);
    if (argc == 3)
        close_inherited();
    else if (argc != 4)
        return 2;
    long n = atol(argv[1]), mib = atol(argv[2]);
    touch(mib);
    if (open("/dev/null", O_RDONLY | O_CLOEXEC) < 0 || open("/dev/null", O_RDONLY) < 0)
        return 6;
    if (n > 0)
        exec_self("/proc/self/exe", n - 1, mib);
    return last();
}
