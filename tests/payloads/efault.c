/* Bad pointers passed to syscalls: each must fail with EFAULT (or what Linux says). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *what, long r) {
    printf("%s: %ld %s\n", what, r, r < 0 ? strerror(errno) : "ok");
}

int main(void) {
    report("write from 0x10", syscall(SYS_write, 1, (void *)0x10, 10));
    report("write from kernel half", syscall(SYS_write, 1, (void *)0xffffffff81000000UL, 10));
    report("read into unmapped", syscall(SYS_read, 0, (void *)0xdeadbeef000UL, 5));
    report("stat into 0x8", syscall(SYS_stat, "/", (void *)8));
    report("open path 0x1", syscall(SYS_open, (void *)1, 0));
    report("uname into 0x1000", syscall(SYS_uname, (void *)0x1000));
    report("clock_gettime into 0x20", syscall(SYS_clock_gettime, 0, (void *)0x20));
    report("writev bad iovec", syscall(SYS_writev, 1, (void *)0x30, 1));
    report("getcwd into 0x40", syscall(SYS_getcwd, (void *)0x40, 100));
    report("pipe into 0x50", syscall(SYS_pipe, (void *)0x50));
    report("unknown syscall 1000", syscall(1000));
    printf("still alive\n");
    return 0;
}
