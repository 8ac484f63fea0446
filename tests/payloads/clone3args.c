/* clone3 with arguments Linux refuses: each must fail with Linux's errno (E2BIG or
 * EINVAL, EFAULT for an unreadable struct) and create nothing. Found by the syscall
 * fuzzer: km forked for unknown flags, bad exit signals and set_tid sizes. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CLONE_VM 0x100ULL
#define CLONE_SIGHAND 0x800ULL
#define CLONE_THREAD 0x10000ULL
#define CLONE_CLEAR_SIGHAND (1ULL << 32)
#define CLONE_INTO_CGROUP (1ULL << 33)

/* struct clone_args, with room for trailing bytes. */
struct args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
    uint64_t set_tid, set_tid_size, cgroup;
    uint8_t trailing[4096];
};

static struct args a;
static uint64_t stack[512];

static void try(const char *what, void *p, size_t size) {
    long rc = syscall(SYS_clone3, p, size);
    if (rc == 0)
        _exit(0);
    printf("%s: %ld %s\n", what, rc, rc < 0 ? strerror(errno) : "a child");
    memset(&a, 0, sizeof a);
}

int main(void) {
    try("size past a page", &a, 4097);
    try("size below VER0", &a, 63);
    a.trailing[3] = 1;
    try("nonzero trailing byte", &a, 96);
    a.exit_signal = 65;
    try("zero trailing bytes, exit signal 65", &a, 96);
    a.flags = 1ULL << 40;
    try("unknown flag", &a, 88);
    a.flags = SIGCHLD;
    try("CSIGNAL bits in flags", &a, 88);
    a.exit_signal = 1ULL << 32 | SIGCHLD;
    try("exit signal above 32 bits", &a, 88);
    a.set_tid_size = 33;
    try("set_tid_size 33", &a, 88);
    a.set_tid_size = 1;
    try("set_tid_size without set_tid", &a, 88);
    a.set_tid = (uint64_t)stack;
    try("set_tid without set_tid_size", &a, 88);
    a.flags = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD;
    a.exit_signal = SIGCHLD;
    a.stack = (uint64_t)stack;
    a.stack_size = sizeof stack;
    try("thread with an exit signal", &a, 88);
    a.stack = (uint64_t)stack;
    try("stack without a size", &a, 88);
    a.flags = CLONE_VM | CLONE_SIGHAND | CLONE_CLEAR_SIGHAND;
    try("SIGHAND with CLEAR_SIGHAND", &a, 88);
    a.flags = CLONE_INTO_CGROUP;
    a.cgroup = 1ULL << 31;
    try("cgroup above INT_MAX", &a, 88);
    try("unreadable struct", (void *)0x10, 88);
    printf("done\n");
    return 0;
}
