/* Fork and exec under gdb (tests/gdb.rs), chosen by argv[1]:
 *   fork    forks; the child runs in_child() (only it does), the parent waits and
 *           reports how the child ended.
 *   vfork   the same with vfork; the child runs before_exec(), then execs this
 *           program with "after".
 *   spawn   posix_spawn()s this program with "after" (glibc: clone with
 *           CLONE_VM|CLONE_VFORK), waits and reports how the child ended.
 *   exec    execs this program with "after", which runs after_exec().
 *   after   what the new program runs: after_exec(), then exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int marker;
/* Read by gdb: the pids as the process itself sees them. */
volatile pid_t parent_pid, child_pid;

__attribute__((noinline)) int in_child(int n) {
    marker = n;
    return n * 2;
}

__attribute__((noinline)) int before_exec(int n) {
    marker = n;
    return n - 1;
}

__attribute__((noinline)) int after_exec(int n) {
    marker = n;
    return n + 1;
}

/* The parent, once it has reaped its child. */
__attribute__((noinline)) int reaped(int status) {
    marker = status;
    return status;
}

static int report(pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return 4;
    reaped(st);
    printf("child %s %d\n", WIFEXITED(st) ? "exited" : "killed by signal",
           WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 3;
}

static void exec_after(const char *self) {
    execl(self, self, "after", (char *)NULL);
    _exit(5);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "fork";
    parent_pid = getpid();
    if (!strcmp(mode, "fork")) {
        pid_t pid = fork();
        if (pid == 0) {
            child_pid = getpid();
            _exit(in_child(21) == 42 ? 0 : 1);
        }
        return report(pid);
    }
    if (!strcmp(mode, "vfork")) {
        pid_t pid = vfork();
        if (pid == 0) {
            before_exec(8);
            exec_after(argv[0]);
        }
        return report(pid);
    }
    if (!strcmp(mode, "spawn")) {
        pid_t pid;
        char *args[] = {argv[0], "after", NULL};
        if (posix_spawn(&pid, argv[0], NULL, NULL, args, NULL) != 0)
            return 6;
        return report(pid);
    }
    if (!strcmp(mode, "exec")) {
        exec_after(argv[0]);
    }
    if (!strcmp(mode, "after")) {
        printf("after exec %d\n", after_exec(6));
        return 0;
    }
    return 2;
}
