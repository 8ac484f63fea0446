/* Bad pointers passed to syscalls: each must fail with EFAULT, as on Linux, and the
 * program must live on. Each line: what, the raw result, the errno name and text. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *errno_name(int e) {
    switch (e) {
    case EFAULT: return "EFAULT";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case ENOENT: return "ENOENT";
    case ENOMEM: return "ENOMEM";
    case ECHILD: return "ECHILD";
    default: return "E?";
    }
}

static void report(const char *what, long r) {
    int e = errno;
    if (r < 0)
        printf("%s: %ld %s (%s)\n", what, r, errno_name(e), strerror(e));
    else
        printf("%s: %ld ok\n", what, r);
}

int main(void) {
    report("write from 0x10", syscall(SYS_write, 1, (void *)0x10, 10));
    report("write from kernel half", syscall(SYS_write, 1, (void *)0xffffffff81000000UL, 10));
    /* Reading fd 0 faults only when there is data to copy (the tests give /dev/null:
     * 0, natively too); a pipe with data in it must fault. */
    report("read fd 0 into unmapped", syscall(SYS_read, 0, (void *)0xdeadbeef000UL, 5));
    int p[2];
    if (pipe(p) != 0 || write(p[1], "data!", 5) != 5)
        return 1;
    report("read pipe into unmapped", syscall(SYS_read, p[0], (void *)0xdeadbeef000UL, 5));
    report("stat / into 0x8", syscall(SYS_stat, "/", (void *)8));
    /* The path is looked up before the result is copied out: ENOENT wins. */
    report("stat missing into 0x8", syscall(SYS_stat, "/nonexistent-km/x", (void *)8));
    report("open path 0x1", syscall(SYS_open, (void *)1, 0));
    report("uname into 0x1000", syscall(SYS_uname, (void *)0x1000));
    report("clock_gettime into 0x20", syscall(SYS_clock_gettime, 0, (void *)0x20));
    report("writev bad iovec", syscall(SYS_writev, 1, (void *)0x30, 1));
    report("getcwd into 0x40", syscall(SYS_getcwd, (void *)0x40, 100));
    report("pipe into 0x50", syscall(SYS_pipe, (void *)0x50));
    /* The child is reaped, then its status cannot be stored: EFAULT, and no child
     * is left to wait for (ECHILD). */
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    report("wait4 status into 0x60", syscall(SYS_wait4, child, (void *)0x60, 0, NULL));
    report("wait4 again", syscall(SYS_wait4, child, NULL, 0, NULL));
    char *argv[] = {"x", (char *)0x70, NULL};
    report("execve argv[1] at 0x70", syscall(SYS_execve, "/bin/true", argv, NULL));
    report("execve path 0x80", syscall(SYS_execve, (void *)0x80, argv, NULL));
    report("unknown syscall 1000", syscall(1000));
    printf("still alive\n");
    return 0;
}
