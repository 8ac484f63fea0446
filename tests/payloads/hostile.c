// Hostile arguments: crafted structures and lengths a payload hands to the kernel,
// each printed with the result it got, so a run under km can be compared with a
// native one. Structures are raw words and calls are raw syscalls, so the C
// library (glibc or musl) does not rewrite them on the way.
//   hostile cmsg        crafted control messages to sendmsg
//   hostile structs     a table of other crafted structures and lengths
//   hostile overcommit  mappings larger than RAM + swap
//   hostile forklimit   forks until the process limit stops it
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MSG_WORDS 7 // struct msghdr as 64-bit words
#define GIB (1ULL << 30)

static const char *errname(int e) {
    switch (e) {
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case ENOMEM: return "ENOMEM";
    case ENOBUFS: return "ENOBUFS";
    case EMSGSIZE: return "EMSGSIZE";
    case E2BIG: return "E2BIG";
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    default: return "other";
    }
}

static void show(const char *what, long r) {
    if (r < 0)
        printf("%s: %s\n", what, errname(errno));
    else
        printf("%s: ok %ld\n", what, r);
    fflush(stdout);
}

static int sock[2];
static char byte = 'x';

// sendmsg of one byte with `control` (`len` bytes) as its control data.
static long send_control(void *control, uint64_t len) {
    uint64_t iov[2] = {(uint64_t)&byte, 1};
    uint64_t msg[MSG_WORDS] = {0, 0, (uint64_t)iov, 1, (uint64_t)control, len, 0};
    return syscall(SYS_sendmsg, sock[0], msg, MSG_DONTWAIT);
}

// Writes a cmsghdr (len, level, type) at `at`.
static void cmsg(unsigned char *at, uint64_t len, int level, int type) {
    memcpy(at, &len, 8);
    memcpy(at + 8, &level, 4);
    memcpy(at + 12, &type, 4);
}

static void cmsg_cases(void) {
    unsigned char ctl[64] __attribute__((aligned(8)));
    int fd = 0;

    memset(ctl, 0, sizeof ctl);
    cmsg(ctl, 20, SOL_SOCKET, SCM_RIGHTS);
    memcpy(ctl + 16, &fd, 4);
    show("one SCM_RIGHTS", send_control(ctl, 24));

    cmsg(ctl, 8, SOL_SOCKET, SCM_RIGHTS);
    show("cmsg_len below the header", send_control(ctl, 24));

    cmsg(ctl, 40, SOL_SOCKET, SCM_RIGHTS);
    show("cmsg_len past the buffer", send_control(ctl, 24));

    cmsg(ctl, UINT64_MAX, SOL_SOCKET, SCM_RIGHTS);
    show("cmsg_len 2^64-1", send_control(ctl, 24));

    cmsg(ctl, UINT64_MAX - 7, SOL_SOCKET, SCM_RIGHTS);
    show("cmsg_len 2^64-8", send_control(ctl, 24));

    memset(ctl, 0, sizeof ctl);
    cmsg(ctl, 20, SOL_SOCKET, SCM_RIGHTS);
    memcpy(ctl + 16, &fd, 4);
    cmsg(ctl + 24, UINT64_MAX - 15, SOL_SOCKET, SCM_RIGHTS);
    show("second cmsg_len 2^64-16", send_control(ctl, 48));

    show("controllen 2^40", send_control(ctl, 1ULL << 40));
    show("controllen 2^64-1", send_control(ctl, UINT64_MAX));
    show("control unmapped", send_control((void *)0x1000, 24));
    show("after all that, a plain send", send_control(NULL, 0));
}

// A page whose next page is unmapped: structures ending past it fault.
static unsigned char *edge_page(void) {
    unsigned char *p = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(p + 4096, 4096);
    return p;
}

static void struct_cases(void) {
    unsigned char *edge = edge_page();
    uint64_t iov[4] = {(uint64_t)&byte, 1, (uint64_t)&byte, 1};
    uint64_t msg[MSG_WORDS] = {0, 0, (uint64_t)iov, 1, 0, 0, 0};

    // msghdr
    show("sendmsg msghdr unmapped", syscall(SYS_sendmsg, sock[0], 0x1000, 0));
    memcpy(edge + 4096 - 48, msg, 48);
    show("sendmsg msghdr across the end of memory", syscall(SYS_sendmsg, sock[0], edge + 4096 - 48, 0));
    show("sendmsg msghdr at 2^64-8", syscall(SYS_sendmsg, sock[0], UINT64_MAX - 7, 0));
    msg[3] = 1025;
    show("sendmsg iovlen 1025", syscall(SYS_sendmsg, sock[0], msg, MSG_DONTWAIT));
    msg[3] = UINT64_MAX;
    show("sendmsg iovlen 2^64-1", syscall(SYS_sendmsg, sock[0], msg, MSG_DONTWAIT));
    msg[3] = 1;
    msg[0] = (uint64_t)edge;
    msg[1] = 0x80000000u;
    show("sendmsg namelen negative", syscall(SYS_sendmsg, sock[0], msg, MSG_DONTWAIT));
    msg[0] = msg[1] = 0;
    msg[2] = UINT64_MAX - 15;
    show("sendmsg iov at 2^64-16", syscall(SYS_sendmsg, sock[0], msg, MSG_DONTWAIT));
    show("sendmmsg vector at 2^64-64", syscall(SYS_sendmmsg, sock[0], UINT64_MAX - 63, 2, 0));
    show("recvmsg msghdr at 2^64-8", syscall(SYS_recvmsg, sock[1], UINT64_MAX - 7, MSG_DONTWAIT));

    // iovec arrays
    int out = open("/dev/null", O_WRONLY);
    show("writev iovcnt 1025", syscall(SYS_writev, out, iov, 1025));
    show("writev iovcnt -1", syscall(SYS_writev, out, iov, -1));
    show("writev iov at 2^64-16", syscall(SYS_writev, out, UINT64_MAX - 15, 2));
    memcpy(edge + 4096 - 16, iov, 16);
    show("writev iov array across the end of memory", syscall(SYS_writev, out, edge + 4096 - 16, 2));
    uint64_t bad[4] = {0x1000, 10, (uint64_t)&byte, UINT64_MAX};
    show("writev negative length after a bad buffer", syscall(SYS_writev, out, bad, 2));
    int in = open("/dev/null", O_RDONLY);
    show("preadv iovcnt 2^32+1", syscall(SYS_preadv, in, iov, (1ULL << 32) + 1, 0, 0));

    // signal sets
    uint64_t set[2] = {0, 0};
    show("rt_sigprocmask sigsetsize 16", syscall(SYS_rt_sigprocmask, SIG_BLOCK, set, NULL, 16));
    show("rt_sigprocmask sigsetsize 2^64-1", syscall(SYS_rt_sigprocmask, SIG_BLOCK, set, NULL, UINT64_MAX));
    show("rt_sigaction sigsetsize 4", syscall(SYS_rt_sigaction, SIGUSR1, NULL, set, 4));
    show("rt_sigpending sigsetsize 2^63", syscall(SYS_rt_sigpending, set, 1ULL << 63));

    // epoll, poll, select
    int ep = syscall(SYS_epoll_create1, 0);
    show("epoll_wait maxevents 0", syscall(SYS_epoll_wait, ep, edge, 0, 0));
    show("epoll_wait maxevents -1", syscall(SYS_epoll_wait, ep, edge, -1, 0));
    show("epoll_wait maxevents INT_MAX", syscall(SYS_epoll_wait, ep, edge, 0x7fffffff, 0));
    show("epoll_wait maxevents 2^32+1 (an int: 1)", syscall(SYS_epoll_wait, ep, edge, (1ULL << 32) + 1, 0));
    show("epoll_wait events across the end of memory", syscall(SYS_epoll_wait, ep, edge + 4096 - 12, 2, 0));
    show("poll nfds 2^40", syscall(SYS_poll, edge, 1ULL << 40, 0));
    show("poll fds across the end of memory", syscall(SYS_poll, edge + 4096 - 8, 2, 0));
    show("select nfds -1", syscall(SYS_select, -1, NULL, NULL, NULL, NULL));
    long zero[2] = {0, 0};
    show("select nfds 2^30", syscall(SYS_select, 1 << 30, NULL, NULL, NULL, zero));
    show("select fd_set across the end of memory", syscall(SYS_select, 64, edge + 4096 - 4, NULL, NULL, NULL));

    // clone3 (every case fails before a child exists)
    uint64_t args[16] = {0};
    show("clone3 size 8", syscall(SYS_clone3, args, 8));
    show("clone3 size 8192", syscall(SYS_clone3, args, 8192));
    args[12] = 1;
    show("clone3 size 128 with a nonzero unknown field", syscall(SYS_clone3, args, 128));
    args[12] = 0;
    args[6] = 4096;
    show("clone3 stack size without a stack", syscall(SYS_clone3, args, 88));
    args[6] = 0;
    args[5] = (uint64_t)edge;
    show("clone3 stack without a size", syscall(SYS_clone3, args, 88));
    args[5] = 0;
    args[4] = 1000;
    show("clone3 exit signal 1000", syscall(SYS_clone3, args, 88));
    show("clone3 args across the end of memory", syscall(SYS_clone3, edge + 4096 - 32, 64));

    // execve argument arrays (the program exists; the arrays are bad)
    extern char **environ;
    static char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    char *argv[] = {self, NULL};
    show("execve argv unmapped", syscall(SYS_execve, self, 0x1000, environ));
    memcpy(edge + 4096 - 8, argv, 8);
    show("execve argv across the end of memory", syscall(SYS_execve, self, edge + 4096 - 8, environ));
    char *bad_arg[] = {(char *)0x1000, NULL};
    show("execve argv string unmapped", syscall(SYS_execve, self, bad_arg, environ));
    show("execve envp at 2^64-8", syscall(SYS_execve, self, argv, UINT64_MAX - 7));

    // memory calls with lengths that overflow
    show("mremap old length 2^63", syscall(SYS_mremap, edge, 1ULL << 63, 4096, 0, 0));
    show("mremap new length 2^63", syscall(SYS_mremap, edge, 4096, 1ULL << 63, 0, 0));
    show("mlock length 2^64-1 from mid-page", syscall(SYS_mlock, edge + 1, UINT64_MAX));
    show("munmap length 2^64-4096", syscall(SYS_munmap, edge, UINT64_MAX - 4095));
    show("set_robust_list length 1", syscall(SYS_set_robust_list, edge, 1));

    // int and unsigned int arguments: only the low 32 bits count
    static char link[64];
    show("readlink bufsiz 2^32+4 (an int: 4)", syscall(SYS_readlink, "/proc/self/cwd", link, (1ULL << 32) + 4));
    int dir = open("/", O_RDONLY | O_DIRECTORY);
    show("getdents64 count 2^32 (an unsigned int: 0)", syscall(SYS_getdents64, dir, edge, 1ULL << 32));
}

static uint64_t meminfo(const char *field) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    uint64_t kib = 0;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0)
            kib = strtoull(line + n, NULL, 10);
    if (f)
        fclose(f);
    return kib * 1024;
}

static void overcommit_cases(void) {
    char mode = '?';
    FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
    if (f) {
        mode = fgetc(f);
        fclose(f);
    }
    if (mode != '0') {
        printf("overcommit: skipped (vm.overcommit_memory is %c, not 0)\n", mode);
        return;
    }
    // Larger than RAM + swap: Linux's heuristic refuses it in one request.
    uint64_t size = (meminfo("MemTotal:") + meminfo("SwapTotal:") + GIB) & ~(GIB - 1);
    int rw = PROT_READ | PROT_WRITE;
    void *p = mmap(NULL, size, rw, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    show("mmap private writable larger than RAM+swap", p == MAP_FAILED ? -1 : 0);
    p = mmap(NULL, size, rw, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    show("mmap shared anonymous larger than RAM+swap", p == MAP_FAILED ? -1 : 0);
    p = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    show("mmap read-only larger than RAM+swap", p == MAP_FAILED ? -1 : 0);
    if (p != MAP_FAILED) {
        show("mprotect it writable", mprotect(p, size, rw));
        munmap(p, size);
    }
    p = mmap(NULL, size, rw, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    show("mmap MAP_NORESERVE larger than RAM+swap", p == MAP_FAILED ? -1 : 0);
    if (p != MAP_FAILED)
        munmap(p, size);
    void *small = mmap(NULL, 4096, rw, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    show("mremap growing past RAM+swap", syscall(SYS_mremap, small, 4096, size, 1, 0) < 0 ? -1 : 0);
    void *brk0 = (void *)syscall(SYS_brk, 0);
    void *brk1 = (void *)syscall(SYS_brk, (char *)brk0 + size);
    printf("brk past RAM+swap: %s\n", brk1 == brk0 ? "unchanged" : "moved");
    // Still usable afterwards.
    p = mmap(NULL, 1 << 20, rw, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(p, 1, 1 << 20);
    show("mmap 1 MiB afterwards", p == MAP_FAILED ? -1 : 0);
}

// Forks children that wait on a pipe until fork fails; every child must have run.
static void forklimit_case(void) {
    int gate[2];
    if (pipe(gate) != 0)
        return;
    int children = 0;
    for (; children < 500; children++) {
        pid_t pid = fork();
        if (pid < 0)
            break;
        if (pid == 0) {
            char c;
            close(gate[1]);
            read(gate[0], &c, 1); // EOF once the parent closes its end
            _exit(0);
        }
    }
    int err = errno;
    close(gate[1]);
    printf("fork stopped by: %s\n", children == 500 ? "nothing" : errname(err));
    int bad = 0;
    for (int status; wait(&status) > 0;)
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            bad++;
            fprintf(stderr, "a child ended with status %#x\n", status);
        }
    printf("children that did not run: %d\n", bad);
    fprintf(stderr, "%d children\n", children);
}

/* The payload's own address-space and data limits bind its mappings, not km
 * (km kept running its own allocations after them). */
static void rlimit_cases(void) {
    struct rlimit as, data;
    getrlimit(RLIMIT_AS, &as);
    getrlimit(RLIMIT_DATA, &data);
    struct rlimit low = { 512ul << 20, as.rlim_max };
    printf("lower RLIMIT_AS: %d\n", setrlimit(RLIMIT_AS, &low));
    void *p = mmap(0, 1ul << 30, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap 1 GiB: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    p = mmap(0, 16ul << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap 16 MiB: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    struct rlimit bad = { 256ul << 20, 128ul << 20 };
    int rc = setrlimit(RLIMIT_AS, &bad);
    printf("soft above hard: %d %s\n", rc, rc ? errname(errno) : "");
    getrlimit(RLIMIT_AS, &as);
    printf("RLIMIT_AS now: %lu MiB\n", (unsigned long)(as.rlim_cur >> 20));
    struct rlimit data_low = { 64ul << 20, data.rlim_max };
    printf("lower RLIMIT_DATA: %d\n", setrlimit(RLIMIT_DATA, &data_low));
    p = mmap(0, 128ul << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap 128 MiB private writable: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    p = mmap(0, 128ul << 20, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap 128 MiB read-only: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    void *small = malloc(100 << 10);
    printf("malloc 100 KiB: %s\n", small ? "ok" : "NULL");
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sock) != 0)
        return 3;
    if (strcmp(argv[1], "cmsg") == 0)
        cmsg_cases();
    else if (strcmp(argv[1], "structs") == 0)
        struct_cases();
    else if (strcmp(argv[1], "overcommit") == 0)
        overcommit_cases();
    else if (strcmp(argv[1], "forklimit") == 0)
        forklimit_case();
    else if (strcmp(argv[1], "rlimit") == 0)
        rlimit_cases();
    else
        return 2;
    return 0;
}
