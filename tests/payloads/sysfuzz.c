/* sysfuzz SEED SECONDS MAXCASES DIR [SKIP...]: random syscalls with hostile arguments,
 * for tests/fuzz.rs. Runs in DIR (a scratch directory): every path it gives a call that
 * changes files is relative, without "..", and every descriptor it gives one is DIR's
 * (or standard output or error), so nothing outside DIR is touched; calls
 * aimed at other processes, that end or wedge the program, or that could harm the
 * host (device nodes, huge files, raw network) are left out or given safe values.
 * A periodic SIGALRM interrupts blocking calls and bounds the run to SECONDS; at most
 * MAXCASES calls (0: no limit). Each case is logged to DIR/sysfuzz.log before the call
 * ("case N: nr a0 .. a5") and its result after ("= rc"), so the last line names the
 * call that killed or hung the program. The same SEED replays the same cases.
 * SKIP names argument kinds left out (the fuzz test's list of known open failures):
 *   trunc  pointers into the page past EOF of a truncated MAP_SHARED file mapping
 *   cmsg   cmsg_len/msg_controllen values that do not fit the control buffer
 *   rlimit new RLIMIT_AS, RLIMIT_DATA and RLIMIT_SIGPENDING values (km sets them on
 *          itself, where they limit its own allocations and signals) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define WORK_SIZE (16 * PAGE)
#define ARENA_PAGES 64
#define LOG_FD 1000
#define MAX_FDS 48
#define SA_RESTORER_FLAG 0x04000000ULL

static uint64_t rng_state;
static volatile sig_atomic_t deadline_passed;
static time_t deadline;

static uint64_t next(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t n) { return n ? next() % n : 0; }
static int chance(int percent) { return below(100) < (uint64_t)percent; }

/* Memory the fuzzer owns: work holds crafted structures (rebuilt every case, never
 * unmapped), arena may be unmapped/remapped/protected by the calls themselves. */
static uint8_t *work, *arena, *ro_page, *none_page, *trunc_map;
static uint64_t unmapped, initial_brk;
static int skip_trunc, skip_cmsg, skip_rlimit;
static int fds[MAX_FDS], nfds;
/* Whether the last open was of a scratch path. Only those join the fd pool; any other
 * is closed at once: its number, once reused by the pool (a pool fd closed, then the
 * host file opened in its place), would let fchmod, fchown or mkdirat reach a host
 * file or directory. */
static int opened_scratch;
/* The fuzzer's own semaphore set and message queue (removed at the end). */
static int sem_id = -1, msq_id = -1;

static void add_fd(long fd) {
    if (fd < 0 || fd == LOG_FD || fd > 0xffff)
        return;
    if (nfds < MAX_FDS)
        fds[nfds++] = (int)fd;
    else
        fds[below(MAX_FDS)] = (int)fd;
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 1)
        n = sizeof line - 1;
    if (write(LOG_FD, line, (size_t)n) < 0) {
        /* The log is gone: nothing useful can follow. */
    }
}

/* ---------- argument pools ---------- */

static uint64_t hostile_addr(void) {
    static const uint64_t fixed[] = {
        0, 1, 8, 0xfff, 0x10000,
        0xffff800000000000ULL, 0xffffffff81000000ULL, 0xffffffffff600000ULL,
        0xfffffffffffff000ULL, 0xffffffffffffffffULL, 0x0000800000000000ULL,
        0x00007ffffffff000ULL, 0x8000000000000000ULL,
        /* Where a host process's own text, heap, libraries and stack usually are. */
        0x555555554000ULL, 0x555555558000ULL, 0x7ffff7a00000ULL, 0x7ffff7fc0000ULL,
        0x7ffffffde000ULL, 0x7ffc00000000ULL,
    };
    switch (below(6)) {
    case 0: return fixed[below(sizeof fixed / sizeof fixed[0])];
    case 1: return unmapped + below(PAGE);
    case 2: return (uint64_t)none_page + below(PAGE);
    case 3: return 0x7f0000000000ULL + (below(1 << 20) << 12) + below(PAGE);
    case 4: return 0xffff800000000000ULL + (next() & 0x7fffffffffffULL);
    default: return next() & 0x7fffffffffffULL;
    }
}

static uint64_t trunc_ptr(void) {
    if (skip_trunc || chance(50))
        return (uint64_t)trunc_map + below(PAGE);
    return (uint64_t)trunc_map + PAGE + below(PAGE);
}

/* Any pointer: hostile, or into memory with random content. */
static uint64_t ptr(void) {
    switch (below(10)) {
    case 0: case 1: case 2: return (uint64_t)work + below(WORK_SIZE);
    case 3: return (uint64_t)work + WORK_SIZE - 1 - below(64); /* runs into the guard */
    case 4: return (uint64_t)ro_page + below(PAGE);
    case 5: return trunc_ptr();
    case 6: return (uint64_t)arena + below(ARENA_PAGES * PAGE);
    case 7: return (uint64_t)&next; /* our own text: read-only */
    default: return hostile_addr();
    }
}

/* Whether n bytes at p lie in work, so the fuzzer itself may fill them. */
static int in_work_range(const void *p, size_t n) {
    const uint8_t *b = p;
    return b >= work && n <= WORK_SIZE && b <= work + WORK_SIZE - n;
}

/* A pointer to n bytes of crafted data in work, or a hostile one. */
static uint64_t in_work(size_t n) {
    if (chance(15))
        return ptr();
    if (n > WORK_SIZE)
        n = WORK_SIZE;
    return (uint64_t)work + below((WORK_SIZE - n) / 8) * 8;
}

static uint64_t len(void) {
    static const uint64_t fixed[] = {
        0, 1, 2, 7, 8, 16, 24, 64, 4095, 4096, 4097, 65536, 0x7ffff000,
        0x80000000ULL, 0xffffffffULL, 0x100000000ULL, 0x7fffffffffffffffULL,
        0x8000000000000000ULL, 0xfffffffffffff000ULL, 0xfffffffffffffff0ULL,
        0xffffffffffffffffULL,
    };
    if (chance(40))
        return below(300);
    if (chance(10))
        return next();
    return fixed[below(sizeof fixed / sizeof fixed[0])];
}

/* Addresses for calls that change mappings: the arena, or nothing of ours. */
static uint64_t mem_addr(void) {
    static const uint64_t fixed[] = {
        0, 0xffff800000000000ULL, 0xffffffffff600000ULL, 0xfffffffffffff000ULL,
        0x0000800000000000ULL, 0x8000000000000000ULL,
    };
    switch (below(6)) {
    case 0: case 1: return (uint64_t)arena + below(ARENA_PAGES) * PAGE;
    case 2: return (uint64_t)arena + below(ARENA_PAGES * PAGE);
    case 3: return (uint64_t)none_page;
    case 4: return unmapped;
    default: return fixed[below(sizeof fixed / sizeof fixed[0])];
    }
}

/* A length for a mapping call at addr: within the arena when addr is in it (a call
 * reaching past it would unmap the fuzzer itself), else anything. */
static uint64_t mem_len(uint64_t addr) {
    uint64_t end = (uint64_t)arena + ARENA_PAGES * PAGE;
    if (addr >= (uint64_t)arena && addr < end)
        return below(end - addr + 1);
    if (addr == (uint64_t)none_page || addr == unmapped)
        return below(PAGE + 1);
    if (addr == 0)
        return below(0x10000); /* below any mapping, ours included */
    return len();
}

/* File sizes and offsets: small, or too big to be valid (never a huge sparse file). */
static uint64_t offset(void) {
    static const uint64_t bad[] = {
        -1ULL, -4096ULL, 0x7fffffffffffffffULL, 0x8000000000000000ULL,
        0x7ffffffffffff000ULL,
    };
    if (chance(85))
        return below(1 << 20);
    return bad[below(sizeof bad / sizeof bad[0])];
}

static uint64_t num(void) {
    static const uint64_t fixed[] = {
        0, 1, 2, 3, 4, -1ULL, 0x7fffffff, 0x80000000ULL, 0xffffffffULL, 0x100000000ULL,
        0x8000000000000000ULL,
    };
    switch (below(4)) {
    case 0: return below(64);
    case 1: return next();
    case 2: return 1ULL << below(64);
    default: return fixed[below(sizeof fixed / sizeof fixed[0])];
    }
}

static uint64_t fd(void) {
    static const uint64_t bad[] = {
        -1ULL, (uint64_t)AT_FDCWD, 0, 1023, 1024, 4096, 65535, 1 << 20,
        0x7fffffff, 0x80000000ULL, 0xffffffffULL, 0x100000000ULL, -2ULL,
    };
    if (nfds && chance(75))
        return (uint64_t)fds[below(nfds)];
    if (chance(10))
        return next();
    return bad[below(sizeof bad / sizeof bad[0])];
}

static uint64_t pid(void) {
    static const uint64_t fixed[] = { 0, 0x7ffffff0, -1ULL, 0xffffffffULL };
    if (chance(60))
        return (uint64_t)getpid();
    return fixed[below(sizeof fixed / sizeof fixed[0])];
}

/* Paths inside the scratch directory (any call may change them). */
static uint64_t path(void) {
    static const char *names[] = {
        "f0", "f1", "f2", "d0", "d0/f3", "d0/d1", "fifo", "sock0", "link0",
        ".", "", "./f0", "d0/", "f0/", "nonexistent/f0", "link0/f0", "f1//",
    };
    if (chance(10))
        return hostile_addr();
    if (chance(5))
        return skip_trunc ? (uint64_t)ro_page : trunc_ptr();
    if (chance(5)) {
        /* Longer than PATH_MAX, or ending exactly at the guard page unterminated. */
        size_t n = chance(50) ? 5000 : 300;
        uint8_t *p = chance(50) ? work : work + WORK_SIZE - n;
        memset(p, 'a', n);
        if (p == work)
            p[n - 1] = 0;
        return (uint64_t)p;
    }
    return (uint64_t)names[below(sizeof names / sizeof names[0])];
}

/* Paths for calls that only read: also host files and /proc (never /proc/.../mem). */
static uint64_t read_path(void) {
    static const char *host[] = {
        "/", "/etc/passwd", "/proc/self/maps", "/proc/self/exe", "/proc/self/status",
        "/proc/self/fd", "/proc/self/cmdline", "/proc/self/auxv", "/dev/null",
        "/proc/1/maps", "/nonexistent", "/proc/self/task",
    };
    if (chance(30))
        return (uint64_t)host[below(sizeof host / sizeof host[0])];
    return path();
}

/* An IPC id: ours, or a negative one; never a number that may name another
 * process's object. */
static uint64_t ipc_id(int own) {
    return chance(90) ? (uint64_t)own : (uint64_t)(int64_t)(int32_t)(next() | 0x80000000u);
}

static uint64_t timespec_ptr(void) {
    int64_t *t = (int64_t *)in_work(16);
    if (!in_work_range(t, 16))
        return (uint64_t)t;
    t[0] = chance(90) ? 0 : (int64_t)num();
    t[1] = chance(90) ? (int64_t)below(20 * 1000 * 1000) : (int64_t)num();
    return (uint64_t)t;
}

/* A sigset that leaves SIGALRM deliverable, so blocking calls stay interruptible:
 * crafted, or at an address that cannot be read. */
static uint64_t sigset_ptr(void) {
    uint64_t *s = (uint64_t *)in_work(8);
    if (!in_work_range(s, 8))
        return chance(50) ? (uint64_t)none_page : hostile_addr();
    *s = next() & ~(1ULL << (SIGALRM - 1));
    return (uint64_t)s;
}

static uint64_t sigset_size(void) { return chance(85) ? 8 : len(); }

static uint64_t sockaddr_ptr(void) {
    uint8_t *p = (uint8_t *)in_work(128);
    if (!in_work_range(p, 128))
        return (uint64_t)p;
    memset(p, 0, 128);
    switch (below(4)) {
    case 0: {
        struct sockaddr_un *u = (struct sockaddr_un *)p;
        u->sun_family = AF_UNIX;
        strcpy(u->sun_path, chance(50) ? "sock0" : "d0/sock1");
        break;
    }
    case 1: {
        /* 127.0.0.1, port 0 or 1: never a real peer. */
        p[0] = AF_INET;
        p[3] = (uint8_t)below(2);
        p[4] = 127;
        p[7] = 1;
        break;
    }
    case 2:
        p[0] = AF_INET6;
        p[3] = (uint8_t)below(2);
        p[23] = 1; /* ::1 */
        break;
    default:
        p[0] = (uint8_t)next();
        p[1] = (uint8_t)next();
    }
    return (uint64_t)p;
}

static uint64_t iovec_ptr(uint64_t *count) {
    uint64_t n = chance(80) ? below(8) : (chance(50) ? 1024 + below(3) : below(2000));
    uint64_t *v = (uint64_t *)in_work(n * 16);
    if (n <= 4096 && in_work_range(v, n * 16))
        for (uint64_t i = 0; i < n; i++) {
            /* Mostly readable buffers, so the call goes on to what follows them. */
            v[2 * i] = chance(70) ? (uint64_t)work + below(WORK_SIZE - 256) : ptr();
            v[2 * i + 1] = chance(70) ? below(200) : len();
        }
    *count = chance(85) ? n : num();
    return (uint64_t)v;
}

/* A msghdr with its iovecs and a control buffer of cmsgs (SCM_RIGHTS with our fds and
 * bad ones, SCM_CREDENTIALS, unknown types); lengths sane unless "cmsg" is allowed. */
static uint64_t msghdr_ptr(void) {
    uint64_t *m = (uint64_t *)in_work(56);
    if (!in_work_range(m, 56))
        return (uint64_t)m;
    uint64_t iovlen;
    uint64_t iov = iovec_ptr(&iovlen);
    uint8_t *ctl = work + 8 * below(WORK_SIZE / 16);
    size_t room = (size_t)(work + WORK_SIZE - ctl), used = 0;
    int ncmsg = (int)below(4);
    for (int i = 0; i < ncmsg && used + 64 <= room; i++) {
        uint64_t *h = (uint64_t *)(ctl + used);
        uint32_t *data = (uint32_t *)(h + 2);
        size_t payload = 4 * (1 + below(6));
        uint64_t clen = 16 + payload;
        if (!skip_cmsg && chance(30)) {
            static const uint64_t wild[] = { 0, 1, 15, 16, 0xffffffffffffffffULL,
                                             0xfffffffffffffff0ULL, 0x7fffffffffffffffULL,
                                             0x100000000ULL, 4096 };
            clen = chance(70) ? wild[below(sizeof wild / sizeof wild[0])] : next();
        }
        h[0] = clen;
        ((uint32_t *)h)[2] = chance(80) ? SOL_SOCKET : (uint32_t)next();
        ((uint32_t *)h)[3] = chance(45) ? SCM_RIGHTS : chance(50) ? SCM_CREDENTIALS : (uint32_t)next();
        for (size_t k = 0; k < payload / 4; k++)
            data[k] = chance(60) ? (uint32_t)fd() : (uint32_t)next();
        used += (16 + payload + 7) & ~7UL;
    }
    m[0] = chance(60) ? 0 : sockaddr_ptr();
    m[1] = chance(80) ? 110 : num();
    m[2] = iov;
    m[3] = iovlen;
    m[4] = chance(85) ? (uint64_t)ctl : ptr();
    m[5] = used;
    if (!skip_cmsg && chance(20))
        m[5] = len();
    else if (chance(10))
        m[5] = below(used + 1);
    m[6] = num();
    return (uint64_t)m;
}

static uint64_t epoll_event_ptr(void) {
    uint8_t *e = (uint8_t *)in_work(12);
    if (in_work_range(e, 12)) {
        uint32_t ev = (uint32_t)next();
        memcpy(e, &ev, 4);
    }
    return (uint64_t)e;
}

static uint64_t pollfd_ptr(uint64_t *count) {
    uint64_t n = chance(85) ? below(10) : num();
    uint64_t fill = n < 4096 ? n : 4096;
    int32_t *p = (int32_t *)in_work(fill * 8);
    if (in_work_range(p, fill * 8))
        for (uint64_t i = 0; i < fill; i++) {
            p[2 * i] = (int32_t)fd();
            p[2 * i + 1] = (int32_t)next();
        }
    *count = n;
    return (uint64_t)p;
}

/* An itimerspec (or itimerval): short values, some invalid; a repeating interval is
 * never below 1 ms (1 s for itimerval), as a timer firing every few nanoseconds
 * would bury the program in its own signals (natively too). */
static uint64_t itimerspec_ptr(void) {
    int64_t *t = (int64_t *)in_work(32);
    if (in_work_range(t, 32)) {
        for (int i = 0; i < 4; i += 2) {
            t[i] = chance(90) ? 0 : (int64_t)num();
            t[i + 1] = chance(90) ? (int64_t)below(50 * 1000 * 1000) : (int64_t)num();
        }
        if (t[0] == 0 && t[1] > 0 && t[1] < 1000 * 1000)
            t[1] = 1000 * 1000;
    }
    return (uint64_t)t;
}

/* A sigevent: no notification, or a signal the program catches, or garbage. */
static uint64_t sigevent_ptr(void) {
    uint32_t *s = (uint32_t *)in_work(64);
    if (in_work_range(s, 64)) {
        static const uint32_t sigs[] = { SIGUSR1, SIGUSR2, 40, 0, 65, 0xffffffff };
        s[2] = sigs[below(sizeof sigs / sizeof sigs[0])]; /* sigev_signo */
        s[3] = (uint32_t)below(6);                         /* sigev_notify */
        s[4] = chance(50) ? (uint32_t)syscall(SYS_gettid) : (uint32_t)next();
    }
    return (uint64_t)s;
}

/* A sigaction for a signal whose default is harmless: SIG_DFL or SIG_IGN only. */
static uint64_t sigaction_ptr(void) {
    uint64_t *a = (uint64_t *)in_work(32);
    if (in_work_range(a, 32)) {
        a[0] = below(2);
        a[1] = next() & ~(uint64_t)(SA_ONSTACK | SA_RESTORER_FLAG);
        a[2] = 0;
        a[3] = next();
    }
    return (uint64_t)a;
}

/* A robust list: cycles, hostile next pointers and futex offsets. */
static uint64_t robust_list_ptr(void) {
    uint64_t *h = (uint64_t *)in_work(48);
    if (in_work_range(h, 48)) {
        h[0] = chance(30) ? (uint64_t)h : chance(50) ? (uint64_t)(h + 3) : ptr();
        h[1] = num();
        h[2] = ptr();
        h[3] = chance(50) ? (uint64_t)(h + 3) : ptr();
    }
    return (uint64_t)h;
}

/* clone3 arguments that must be refused (bad size, flags or exit signal, bad
 * pointers): a successful clone would leave two fuzzers on one stack. */
static void clone3_args(uint64_t *a) {
    uint64_t *c = (uint64_t *)in_work(96);
    a[0] = (uint64_t)c;
    a[1] = chance(70) ? 88 : len();
    if (!in_work_range(c, 96))
        return;
    for (int i = 0; i < 12; i++)
        c[i] = chance(50) ? ptr() : num();
    switch (below(4)) {
    case 0: c[0] = 0x00010000; break;             /* CLONE_THREAD without SIGHAND */
    case 1: c[4] = 65 + below(1000); c[0] = 0; break; /* bad exit signal */
    case 2: c[0] = 1ULL << (33 + below(30)); break;   /* unknown flag */
    default: c[9] = 1000 + below(1000); c[0] = 0; c[4] = 0; break; /* set_tid_size */
    }
}

/* ---------- the calls ---------- */

static int protected_fd(uint64_t f) {
    return f == LOG_FD || f <= 2;
}

/* Fills a[] for syscall nr; returns 0 when the call is left out. */
static int make_args(long nr, uint64_t *a) {
    uint64_t n;
    for (int i = 0; i < 6; i++)
        a[i] = chance(60) ? num() : ptr();
    switch (nr) {
    case SYS_read: case SYS_write: case SYS_getdents64:
        a[0] = fd(); a[1] = ptr(); a[2] = len(); break;
    case SYS_pread64: case SYS_pwrite64:
        a[0] = fd(); a[1] = ptr(); a[2] = len(); a[3] = offset(); break;
    case SYS_readv: case SYS_writev:
        a[0] = fd(); a[1] = iovec_ptr(&a[2]); break;
    case SYS_preadv: case SYS_pwritev:
        a[0] = fd(); a[1] = iovec_ptr(&a[2]); a[3] = offset(); a[4] = 0; break;
    case SYS_open: case SYS_openat: {
        int at = nr == SYS_openat;
        uint64_t flags = next() & ~(uint64_t)(O_PATH);
        if (chance(40)) {
            /* A host or /proc path: read-only, never truncating or creating. */
            a[at] = read_path();
            flags &= ~(uint64_t)(O_WRONLY | O_RDWR | O_TRUNC | O_CREAT | O_APPEND | O_TMPFILE);
            opened_scratch = 0;
        } else {
            a[at] = path();
            opened_scratch = 1;
        }
        if (at && chance(30)) {
            a[0] = fd();
            opened_scratch = 0;
        } else if (at) {
            a[0] = (uint64_t)AT_FDCWD;
        }
        a[at + 1] = flags;
        a[at + 2] = below(01000);
        break;
    }
    case SYS_openat2: {
        /* As openat: never writing outside the scratch directory. */
        uint64_t *how = (uint64_t *)in_work(32);
        uint64_t flags = next() & ~(uint64_t)(O_PATH);
        if (chance(40)) {
            a[1] = read_path();
            flags &= ~(uint64_t)(O_WRONLY | O_RDWR | O_TRUNC | O_CREAT | O_APPEND | O_TMPFILE);
            opened_scratch = 0;
        } else {
            a[1] = path();
            opened_scratch = 1;
        }
        a[0] = chance(30) ? fd() : (uint64_t)AT_FDCWD;
        if (a[0] != (uint64_t)AT_FDCWD) {
            opened_scratch = 0;
            flags &= ~(uint64_t)(O_WRONLY | O_RDWR | O_TRUNC | O_CREAT | O_APPEND | O_TMPFILE);
        }
        if (chance(70))
            flags &= 0xffffffffu;
        a[2] = (uint64_t)how;
        if (in_work_range(how, 32)) {
            how[0] = flags;
            how[1] = chance(70) ? below(01000) : num();
            how[2] = chance(80) ? below(0x40) : num();
            how[3] = chance(70) ? 0 : num();
        }
        a[3] = chance(60) ? 24 : chance(50) ? 32 : len();
        break;
    }
    case SYS_semop: case SYS_semtimedop:
        a[0] = ipc_id(sem_id); a[1] = ptr(); a[2] = chance(80) ? below(8) : num(); a[3] = timespec_ptr();
        break;
    case SYS_semctl:
        a[0] = ipc_id(sem_id); a[1] = chance(80) ? below(5) : num();
        a[2] = chance(90) ? 1 + below(20) : num(); a[3] = chance(50) ? ptr() : num();
        break;
    case SYS_msgsnd:
        a[0] = ipc_id(msq_id); a[1] = ptr(); a[2] = chance(50) ? below(300) : len(); a[3] = num();
        break;
    case SYS_msgrcv:
        a[0] = ipc_id(msq_id); a[1] = ptr(); a[2] = chance(50) ? below(300) : len(); a[3] = num(); a[4] = num();
        break;
    case SYS_msgctl:
        a[0] = ipc_id(msq_id); a[1] = chance(90) ? 1 + below(13) : num(); a[2] = ptr();
        break;
    case SYS_creat: a[0] = path(); a[1] = below(01000); break;
    case SYS_close: case SYS_fchdir: case SYS_dup: case SYS_fsync: case SYS_fdatasync:
    case SYS_syncfs:
        a[0] = fd(); break;
    case SYS_close_range:
        a[0] = 3 + below(40);
        a[1] = a[0] + below(20);
        if (a[1] >= LOG_FD)
            a[1] = LOG_FD - 1;
        break;
    case SYS_dup2: case SYS_dup3:
        a[0] = fd(); a[1] = fd(); break;
    case SYS_lseek: a[0] = fd(); a[1] = offset(); a[2] = below(6); break;
    case SYS_fstat: case SYS_fstatfs: a[0] = fd(); a[1] = ptr(); break;
    case SYS_stat: case SYS_lstat: case SYS_statfs:
        a[0] = read_path(); a[1] = ptr(); break;
    case SYS_newfstatat: a[0] = fd(); a[1] = read_path(); a[2] = ptr(); a[3] = num(); break;
    case SYS_statx: a[0] = fd(); a[1] = read_path(); a[2] = num(); a[3] = num(); a[4] = ptr(); break;
    case SYS_access: a[0] = read_path(); a[1] = num(); break;
    case SYS_faccessat: case SYS_faccessat2:
        a[0] = fd(); a[1] = read_path(); a[2] = num(); a[3] = num(); break;
    case SYS_getcwd: a[0] = ptr(); a[1] = len(); break;
    case SYS_chdir: case SYS_rmdir: case SYS_unlink: a[0] = path(); break;
    case SYS_mkdir: case SYS_chmod: a[0] = path(); a[1] = num(); break;
    case SYS_mkdirat: case SYS_unlinkat: a[0] = fd(); a[1] = path(); a[2] = num(); break;
    case SYS_rename: case SYS_symlink: case SYS_link: a[0] = path(); a[1] = path(); break;
    case SYS_renameat: case SYS_renameat2: case SYS_linkat:
        a[0] = fd(); a[1] = path(); a[2] = fd(); a[3] = path(); a[4] = num(); break;
    case SYS_symlinkat: a[0] = path(); a[1] = fd(); a[2] = path(); break;
    case SYS_readlink: a[0] = read_path(); a[1] = ptr(); a[2] = len(); break;
    case SYS_readlinkat: a[0] = fd(); a[1] = read_path(); a[2] = ptr(); a[3] = len(); break;
    case SYS_fcntl: {
        static const uint64_t cmds[] = { F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD,
            F_GETFL, F_SETFL, F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK,
            F_GETPIPE_SZ, F_SETPIPE_SZ, F_ADD_SEALS, F_GET_SEALS, F_SETSIG, F_GETOWN,
            1234, -1ULL };
        a[0] = fd(); a[1] = cmds[below(sizeof cmds / sizeof cmds[0])];
        a[2] = chance(50) ? ptr() : num();
        break;
    }
    case SYS_pipe: a[0] = ptr(); break;
    case SYS_pipe2: a[0] = ptr(); a[1] = num(); break;
    case SYS_ioctl: a[0] = fd(); a[1] = chance(50) ? 0x5401 + below(0x30) : num(); a[2] = ptr(); break;
    case SYS_fchmodat: a[0] = fd(); a[1] = path(); a[2] = num(); a[3] = num(); break;
    case SYS_fchmod: a[0] = fd(); a[1] = num(); break;
    case SYS_ftruncate: a[0] = fd(); a[1] = offset(); break;
    case SYS_truncate: a[0] = path(); a[1] = offset(); break;
    case SYS_umask: a[0] = num(); break;
    case SYS_chown: case SYS_lchown: a[0] = path(); a[1] = num(); a[2] = num(); break;
    case SYS_fchown: a[0] = fd(); a[1] = num(); a[2] = num(); break;
    case SYS_fchownat: a[0] = fd(); a[1] = path(); a[2] = num(); a[3] = num(); a[4] = num(); break;
    case SYS_utimensat: a[0] = fd(); a[1] = chance(20) ? 0 : path(); a[2] = timespec_ptr(); a[3] = num(); break;
    case SYS_utimes: case SYS_utime: a[0] = path(); a[1] = timespec_ptr(); break;
    case SYS_futimesat: a[0] = fd(); a[1] = path(); a[2] = timespec_ptr(); break;
    case SYS_fadvise64: a[0] = fd(); a[1] = offset(); a[2] = offset(); a[3] = num(); break;
    case SYS_readahead: a[0] = fd(); a[1] = offset(); a[2] = len(); break;
    case SYS_flock: a[0] = fd(); a[1] = num(); break;
    case SYS_fallocate: a[0] = fd(); a[1] = num(); a[2] = offset(); a[3] = offset(); break;
    case SYS_sendfile: {
        uint64_t *off = (uint64_t *)in_work(8);
        if (in_work_range(off, 8))
            *off = offset();
        a[0] = fd(); a[1] = fd(); a[2] = chance(30) ? 0 : (uint64_t)off; a[3] = len();
        break;
    }
    case SYS_copy_file_range: {
        uint64_t *off = (uint64_t *)in_work(16);
        if (in_work_range(off, 16)) {
            off[0] = offset();
            off[1] = offset();
        }
        a[0] = fd(); a[1] = chance(30) ? 0 : (uint64_t)off; a[2] = fd();
        a[3] = chance(30) ? 0 : (uint64_t)(off + 1); a[4] = len(); a[5] = num();
        break;
    }
    case SYS_mknod: case SYS_mknodat: {
        /* Never a device node: only FIFOs, sockets, regular files, bad types. */
        static const uint64_t types[] = { S_IFIFO, S_IFSOCK, S_IFREG, 0, 0170000 };
        int at = nr == SYS_mknodat;
        if (at)
            a[0] = fd();
        a[at] = path();
        a[at + 1] = types[below(5)] | below(01000);
        a[at + 2] = num();
        break;
    }
    case SYS_memfd_create: a[0] = path(); a[1] = num(); break;
    case SYS_inotify_add_watch: a[0] = fd(); a[1] = read_path(); a[2] = num(); break;
    case SYS_timerfd_settime: a[0] = fd(); a[1] = num(); a[2] = itimerspec_ptr(); a[3] = ptr(); break;
    /* PRIO_PROCESS or invalid: PRIO_PGRP/PRIO_USER would reach the test's processes. */
    case SYS_getpriority: a[0] = chance(70) ? 0 : 3 + below(100); a[1] = pid(); break;
    case SYS_setpriority: a[0] = chance(70) ? 0 : 3 + below(100); a[1] = pid(); a[2] = num(); break;
    case SYS_sched_getscheduler: a[0] = pid(); break;
    case SYS_sched_getparam: a[0] = pid(); a[1] = ptr(); break;
    case SYS_getxattr: case SYS_lgetxattr: case SYS_listxattr: case SYS_llistxattr:
        a[0] = read_path(); a[1] = chance(50) ? (uint64_t)"user.fuzz" : ptr(); a[2] = ptr(); a[3] = len();
        if (nr == SYS_listxattr || nr == SYS_llistxattr) {
            a[1] = ptr();
            a[2] = len();
        }
        break;
    case SYS_fgetxattr: case SYS_fsetxattr: case SYS_fremovexattr: case SYS_flistxattr:
        a[0] = fd(); a[1] = chance(50) ? (uint64_t)"user.fuzz" : ptr(); a[2] = ptr(); a[3] = len(); a[4] = num();
        if (nr == SYS_flistxattr) {
            a[1] = ptr();
            a[2] = len();
        }
        break;
    case SYS_setxattr: case SYS_lsetxattr: case SYS_removexattr: case SYS_lremovexattr:
        a[0] = path(); a[1] = chance(50) ? (uint64_t)"user.fuzz" : ptr(); a[2] = ptr(); a[3] = len(); a[4] = num();
        break;
    case SYS_wait4: a[0] = pid(); a[1] = ptr(); a[2] = num() | WNOHANG; a[3] = ptr(); break;
    case SYS_waitid: a[0] = below(4); a[1] = pid(); a[2] = ptr(); a[3] = num() | WNOHANG; a[4] = ptr(); break;
    case SYS_setpgid: a[0] = pid(); a[1] = pid(); break;
    case SYS_getpgid: case SYS_getsid: a[0] = pid(); break;
    case SYS_socket: case SYS_socketpair: {
        /* Local and IP sockets only: no netlink or packet sockets as root. */
        static const uint64_t domains[] = { AF_UNIX, AF_INET, AF_INET6, 12345 };
        a[0] = domains[below(4)];
        a[1] = chance(70) ? 1 + below(5) : num();
        if ((a[1] & 0xf) == SOCK_RAW || (a[1] & 0xf) == SOCK_PACKET)
            a[1] = SOCK_STREAM;
        a[2] = chance(80) ? 0 : num();
        if (a[0] != AF_UNIX && a[2] != 0)
            a[2] = 0;
        a[3] = ptr();
        break;
    }
    case SYS_bind: case SYS_connect: a[0] = fd(); a[1] = sockaddr_ptr(); a[2] = chance(70) ? below(130) : len(); break;
    case SYS_listen: case SYS_shutdown: a[0] = fd(); a[1] = num(); break;
    case SYS_accept: case SYS_getsockname: case SYS_getpeername:
        a[0] = fd(); a[1] = ptr(); a[2] = ptr(); break;
    case SYS_accept4: a[0] = fd(); a[1] = ptr(); a[2] = ptr(); a[3] = num(); break;
    case SYS_setsockopt: case SYS_getsockopt:
        a[0] = fd(); a[1] = chance(70) ? SOL_SOCKET : num(); a[2] = below(70); a[3] = ptr(); a[4] = chance(50) ? ptr() : len();
        break;
    case SYS_sendto: a[0] = fd(); a[1] = ptr(); a[2] = len(); a[3] = num() | MSG_DONTWAIT; a[4] = chance(50) ? 0 : sockaddr_ptr(); a[5] = len(); break;
    case SYS_recvfrom: a[0] = fd(); a[1] = ptr(); a[2] = len(); a[3] = num(); a[4] = ptr(); a[5] = ptr(); break;
    case SYS_sendmsg: case SYS_recvmsg: a[0] = fd(); a[1] = msghdr_ptr(); a[2] = num(); break;
    case SYS_sendmmsg: {
        uint64_t cnt = chance(80) ? below(4) : num();
        uint64_t *v = (uint64_t *)in_work(64 * 4);
        if (in_work_range(v, 256))
            for (int i = 0; i < 4; i++) {
                uint64_t m = msghdr_ptr();
                if (in_work_range((void *)m, 56))
                    memcpy(v + 8 * i, (void *)m, 56);
            }
        a[0] = fd(); a[1] = (uint64_t)v; a[2] = cnt; a[3] = num();
        break;
    }
    case SYS_epoll_ctl: a[0] = fd(); a[1] = below(5); a[2] = fd(); a[3] = epoll_event_ptr(); break;
    case SYS_epoll_wait: case SYS_epoll_pwait:
        a[0] = fd(); a[1] = ptr(); a[2] = chance(70) ? below(10) : num(); a[3] = below(10);
        a[4] = sigset_ptr(); a[5] = sigset_size();
        break;
    case SYS_poll: a[0] = pollfd_ptr(&n); a[1] = n; a[2] = below(10); break;
    case SYS_ppoll: a[0] = pollfd_ptr(&n); a[1] = n; a[2] = timespec_ptr(); a[3] = sigset_ptr(); a[4] = sigset_size(); break;
    case SYS_select: case SYS_pselect6: {
        a[0] = chance(70) ? below(70) : num();
        a[1] = ptr(); a[2] = ptr(); a[3] = ptr();
        if (nr == SYS_select) {
            int64_t *tv = (int64_t *)in_work(16);
            if (in_work_range(tv, 16)) {
                tv[0] = 0;
                tv[1] = chance(90) ? (int64_t)below(10000) : (int64_t)num();
            }
            a[4] = (uint64_t)tv;
        } else {
            a[4] = timespec_ptr();
            uint64_t *sm = (uint64_t *)in_work(16);
            if (in_work_range(sm, 16)) {
                sm[0] = chance(30) ? 0 : sigset_ptr();
                sm[1] = sigset_size();
            }
            a[5] = (uint64_t)sm;
        }
        break;
    }
    case SYS_sigaltstack: a[0] = in_work(24); a[1] = ptr(); break;
    case SYS_brk: a[0] = chance(70) ? initial_brk + below(1 << 24) : hostile_addr(); break;
    case SYS_mmap:
        a[0] = mem_addr(); a[1] = mem_len(a[0]); a[2] = num() & 7;
        a[3] = (MAP_PRIVATE | MAP_ANONYMOUS | MAP_SHARED | MAP_SHARED_VALIDATE | MAP_FIXED |
                MAP_FIXED_NOREPLACE | MAP_NORESERVE | MAP_GROWSDOWN | MAP_STACK | MAP_32BIT) & next();
        if (chance(10))
            a[3] = num() & ~(uint64_t)(MAP_POPULATE | MAP_LOCKED | MAP_HUGETLB);
        /* A file mapping past EOF is the "trunc" case. */
        a[4] = chance(50) || skip_trunc ? -1ULL : fd();
        if (skip_trunc)
            a[3] |= MAP_ANONYMOUS;
        a[5] = chance(80) ? below(16) * PAGE : offset();
        break;
    case SYS_munmap: case SYS_mlock: case SYS_munlock: a[0] = mem_addr(); a[1] = mem_len(a[0]); break;
    case SYS_mprotect: case SYS_madvise: case SYS_msync: case SYS_mlock2:
        a[0] = mem_addr(); a[1] = mem_len(a[0]); a[2] = num(); break;
    case SYS_mremap:
        a[0] = mem_addr(); a[1] = mem_len(a[0]); a[4] = mem_addr(); a[2] = mem_len(a[4]);
        a[3] = num() & 7;
        break;
    case SYS_mincore: a[0] = mem_addr(); a[1] = len(); a[2] = ptr(); break;
    case SYS_arch_prctl: a[0] = chance(50) ? 0x1003 + below(2) : 0x1001 + 0x10 * below(4); a[1] = ptr();
        if (a[0] == 0x1002) /* ARCH_SET_FS: would lose our TLS */
            a[0] = 0x1003;
        break;
    case SYS_set_tid_address: a[0] = ptr(); break;
    case SYS_set_robust_list: a[0] = robust_list_ptr(); a[1] = chance(80) ? 24 : len(); break;
    case SYS_get_robust_list: a[0] = pid(); a[1] = ptr(); a[2] = ptr(); break;
    case SYS_futex: {
        uint32_t *w = (uint32_t *)in_work(4);
        a[0] = chance(80) ? (uint64_t)w : ptr(); a[1] = chance(80) ? below(14) | (chance(50) ? 128 : 0) : num();
        a[2] = chance(50) ? num() : 0; a[3] = timespec_ptr(); a[4] = ptr(); a[5] = num();
        break;
    }
    case SYS_sched_getaffinity: case SYS_sched_setaffinity: a[0] = pid(); a[1] = len(); a[2] = ptr(); break;
    case SYS_getrandom: a[0] = ptr(); a[1] = len(); a[2] = num() & ~2ULL; break;
    case SYS_clock_gettime: case SYS_clock_getres: a[0] = chance(80) ? below(12) : num(); a[1] = ptr(); break;
    case SYS_nanosleep: a[0] = timespec_ptr(); a[1] = ptr(); break;
    case SYS_clock_nanosleep: a[0] = below(12); a[1] = chance(80) ? 0 : num(); a[2] = timespec_ptr(); a[3] = ptr(); break;
    case SYS_prlimit64: {
        a[0] = pid(); a[1] = chance(80) ? below(16) : num();
        /* CPU, FSIZE, NOFILE and RTTIME limits would end or cripple the fuzzer itself
         * (SIGKILL past a hard CPU limit); the kernel takes the resource as 32 bits. */
        uint32_t res = (uint32_t)a[1];
        if (res == 0 || res == 1 || res == 7 || res == 15 ||
            (skip_rlimit && (res == 2 || res == 9 || res == 11)))
            a[2] = 0;
        else
            a[2] = chance(50) ? 0 : ptr();
        a[3] = ptr();
        break;
    }
    case SYS_rt_sigaction: {
        static const uint64_t sigs[] = { SIGCHLD, SIGWINCH, SIGURG, SIGKILL, SIGSTOP, 0, 65, -1ULL, 1000 };
        a[0] = sigs[below(sizeof sigs / sizeof sigs[0])];
        a[1] = chance(70) ? sigaction_ptr() : hostile_addr(); a[2] = ptr(); a[3] = sigset_size();
        break;
    }
    case SYS_rt_sigprocmask: a[0] = chance(80) ? below(3) : num(); a[1] = sigset_ptr(); a[2] = ptr(); a[3] = sigset_size(); break;
    case SYS_rt_sigpending: a[0] = ptr(); a[1] = sigset_size(); break;
    case SYS_rt_sigsuspend: a[0] = sigset_ptr(); a[1] = sigset_size(); break;
    case SYS_rt_sigtimedwait: a[0] = sigset_ptr(); a[1] = ptr(); a[2] = timespec_ptr(); a[3] = sigset_size(); break;
    case SYS_kill: a[0] = (uint64_t)getpid(); a[1] = chance(50) ? 0 : 65 + below(100); break;
    case SYS_tkill: a[0] = (uint64_t)syscall(SYS_gettid); a[1] = chance(50) ? 0 : 65 + below(100); break;
    case SYS_tgkill:
        a[0] = (uint64_t)getpid(); a[1] = chance(80) ? (uint64_t)syscall(SYS_gettid) : num();
        a[2] = chance(50) ? 0 : 65 + below(100);
        break;
    case SYS_setitimer: a[0] = 1 + below(3); a[1] = itimerspec_ptr(); a[2] = ptr(); break;
    case SYS_timer_create: a[0] = below(12); a[1] = sigevent_ptr(); a[2] = ptr(); break;
    case SYS_timer_settime: a[0] = chance(80) ? below(4) : num(); a[1] = num(); a[2] = itimerspec_ptr(); a[3] = ptr(); break;
    case SYS_clone3: clone3_args(a); break;
    case SYS_uname: case SYS_sysinfo: case SYS_times: case SYS_time: a[0] = ptr(); break;
    case SYS_gettimeofday: case SYS_getrusage: a[0] = chance(50) ? num() : ptr(); a[1] = ptr(); break;
    /* Left out: ending or replacing the program, blocking with no way out, or
     * touching what keeps the fuzzer running (its SIGALRM timer, TLS, fds 0-2). */
    case SYS_exit: case SYS_exit_group: case SYS_execve: case SYS_execveat:
    case SYS_fork: case SYS_vfork: case SYS_clone: case SYS_rt_sigreturn:
    case SYS_pause: case SYS_alarm: case SYS_reboot: case SYS_setsid:
        return 0;
    default:
        break;
    }
    if ((nr == SYS_close || nr == SYS_dup2 || nr == SYS_dup3) && protected_fd(a[nr == SYS_close ? 0 : 1]))
        return 0;
    return 1;
}

static const long calls[] = {
    SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64, SYS_preadv,
    SYS_pwritev, SYS_open, SYS_openat, SYS_creat, SYS_close, SYS_close_range, SYS_lseek,
    SYS_fstat, SYS_stat, SYS_lstat, SYS_newfstatat, SYS_statx, SYS_access, SYS_faccessat,
    SYS_faccessat2, SYS_getdents64, SYS_getcwd, SYS_chdir, SYS_fchdir, SYS_mkdir,
    SYS_mkdirat, SYS_rmdir, SYS_unlink, SYS_unlinkat, SYS_rename, SYS_renameat,
    SYS_renameat2, SYS_readlink, SYS_readlinkat, SYS_fcntl, SYS_dup, SYS_dup2, SYS_dup3,
    SYS_pipe, SYS_pipe2, SYS_ioctl, SYS_symlink, SYS_symlinkat, SYS_link, SYS_linkat,
    SYS_chmod, SYS_fchmodat, SYS_fchmod, SYS_ftruncate, SYS_truncate, SYS_fsync,
    SYS_fdatasync, SYS_umask, SYS_chown, SYS_lchown, SYS_fchown, SYS_fchownat,
    SYS_utimensat, SYS_utimes, SYS_futimesat, SYS_utime, SYS_fadvise64, SYS_readahead,
    SYS_flock, SYS_fallocate, SYS_sync, SYS_syncfs, SYS_sendfile, SYS_copy_file_range,
    SYS_mknod, SYS_mknodat, SYS_eventfd, SYS_eventfd2, SYS_timerfd_create,
    SYS_timerfd_settime, SYS_timerfd_gettime, SYS_memfd_create, SYS_inotify_init,
    SYS_inotify_init1, SYS_inotify_add_watch, SYS_inotify_rm_watch, SYS_getresuid,
    SYS_getresgid, SYS_getgroups, SYS_getpriority, SYS_setpriority, SYS_sched_getscheduler,
    SYS_sched_getparam, SYS_getrusage, SYS_times, SYS_personality, SYS_prctl, SYS_statfs,
    SYS_fstatfs, SYS_getxattr, SYS_lgetxattr, SYS_fgetxattr, SYS_listxattr, SYS_llistxattr,
    SYS_flistxattr, SYS_setxattr, SYS_lsetxattr, SYS_fsetxattr, SYS_removexattr,
    SYS_lremovexattr, SYS_fremovexattr, SYS_wait4, SYS_waitid, SYS_setpgid, SYS_getpgid,
    SYS_getpgrp, SYS_getsid, SYS_socket, SYS_socketpair, SYS_bind, SYS_connect, SYS_listen,
    SYS_accept, SYS_accept4, SYS_getsockname, SYS_getpeername, SYS_setsockopt,
    SYS_getsockopt, SYS_sendto, SYS_recvfrom, SYS_sendmsg, SYS_sendmmsg, SYS_recvmsg,
    SYS_shutdown, SYS_epoll_create, SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_wait,
    SYS_epoll_pwait, SYS_poll, SYS_ppoll, SYS_select, SYS_pselect6, SYS_sigaltstack,
    SYS_brk, SYS_mmap, SYS_munmap, SYS_mprotect, SYS_mremap, SYS_madvise, SYS_msync,
    SYS_mlock, SYS_mlock2, SYS_munlock, SYS_mincore, SYS_sched_get_priority_max,
    SYS_sched_get_priority_min, SYS_arch_prctl, SYS_set_tid_address, SYS_set_robust_list,
    SYS_uname, SYS_getpid, SYS_gettid, SYS_futex, SYS_get_robust_list,
    SYS_sched_getaffinity, SYS_sched_setaffinity, SYS_getcpu, SYS_getppid, SYS_getrandom,
    SYS_clock_gettime, SYS_clock_getres, SYS_gettimeofday, SYS_time, SYS_nanosleep,
    SYS_clock_nanosleep, SYS_prlimit64, SYS_getrlimit, SYS_sysinfo, SYS_sched_yield,
    SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigpending, SYS_rt_sigsuspend,
    SYS_rt_sigtimedwait, SYS_kill, SYS_tkill, SYS_tgkill, SYS_setitimer, SYS_getitimer,
    SYS_timer_create, SYS_timer_settime, SYS_timer_gettime, SYS_timer_getoverrun,
    SYS_timer_delete, SYS_clone3, SYS_openat2, SYS_semop, SYS_semtimedop, SYS_semctl,
    SYS_msgsnd, SYS_msgrcv, SYS_msgctl,
};

/* km's syscalls, and sometimes a number no kernel has (never one it might serve with
 * unchecked arguments: below 1000 only the table above). */
static long pick_call(void) {
    static const uint64_t none[] = { 0x40000000, 0x7fffffff, 0x80000000ULL, -1ULL, 1ULL << 32 };
    /* The calls that walk nested structures, more often. */
    static const long nested[] = { SYS_sendmsg, SYS_recvmsg, SYS_sendmmsg, SYS_readv,
        SYS_writev, SYS_ppoll, SYS_epoll_ctl, SYS_clone3, SYS_set_robust_list,
        SYS_timer_settime, SYS_pselect6, SYS_rt_sigtimedwait };
    if (chance(10))
        return nested[below(sizeof nested / sizeof nested[0])];
    if (chance(97))
        return calls[below(sizeof calls / sizeof calls[0])];
    return chance(50) ? (long)(1000 + below(100000)) : (long)none[below(5)];
}

static void on_signal(int sig) {
    if (sig == SIGALRM && time(NULL) >= deadline)
        deadline_passed = 1;
}

/* Our own state, restored after calls that may change it. */
static void keep_control(long nr) {
    if (nr == SYS_rt_sigprocmask || nr == SYS_sigaltstack) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
    }
    if (nr == SYS_umask)
        umask(022);
}

static void setup(const char *dir) {
    if (chdir(dir) != 0)
        exit(2);
    int log = open("sysfuzz.log", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (log < 0 || dup2(log, LOG_FD) != LOG_FD)
        exit(2);
    close(log);

    work = mmap(NULL, WORK_SIZE + PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    arena = mmap(NULL, ARENA_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ro_page = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    none_page = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (work == MAP_FAILED || arena == MAP_FAILED || ro_page == MAP_FAILED ||
        none_page == MAP_FAILED)
        exit(2);
    mprotect(work + WORK_SIZE, PAGE, PROT_NONE);
    initial_brk = (uint64_t)sbrk(0);

    /* A two-page file mapped shared, then cut to one page: the second page is past EOF
     * (not cut with "trunc" left out). */
    int t = open("trunc", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (t < 0 || ftruncate(t, 2 * PAGE) != 0)
        exit(2);
    trunc_map = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, t, 0);
    if (trunc_map == MAP_FAILED || (!skip_trunc && ftruncate(t, PAGE) != 0))
        exit(2);
    if (!skip_trunc)
        add_fd(t);

    /* Unmapped last, so no mapping of the set-up reuses the hole. */
    uint8_t *gone = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (gone == MAP_FAILED || munmap(gone, PAGE) != 0)
        exit(2);
    unmapped = (uint64_t)gone;

    int p[2];
    if (pipe(p) == 0) { add_fd(p[0]); add_fd(p[1]); }
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, p) == 0) { add_fd(p[0]); add_fd(p[1]); }
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, p) == 0) { add_fd(p[0]); add_fd(p[1]); }
    add_fd(open(".", O_RDONLY | O_DIRECTORY));
    add_fd(open("f0", O_RDWR | O_CREAT, 0644));
    mkdir("d0", 0755);
    add_fd(syscall(SYS_epoll_create1, 0));
    add_fd(syscall(SYS_eventfd2, 0, 0));
    add_fd(syscall(SYS_timerfd_create, CLOCK_MONOTONIC, 0));
    add_fd(syscall(SYS_memfd_create, "fuzz", 0));
    /* Standard input becomes a scratch file: fchmod(0) must not reach /dev/null. */
    int in = open("stdin", O_RDWR | O_CREAT, 0644);
    if (in < 0 || dup2(in, 0) != 0)
        exit(2);
    close(in);

    sem_id = semget(IPC_PRIVATE, 4, IPC_CREAT | 0600);
    msq_id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);

    /* SIGALRM every 50 ms interrupts blocking calls (no SA_RESTART) and ends the run;
     * other signals timers may raise are caught; SIGPIPE and SIGXFSZ are ignored. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    static const int caught[] = { SIGALRM, SIGUSR1, SIGUSR2, SIGVTALRM, SIGPROF, SIGIO, SIGHUP };
    for (size_t i = 0; i < sizeof caught / sizeof caught[0]; i++)
        sigaction(caught[i], &sa, NULL);
    for (int s = SIGRTMIN; s <= SIGRTMAX; s++)
        sigaction(s, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    struct itimerval every = { { 0, 50000 }, { 0, 50000 } };
    setitimer(ITIMER_REAL, &every, NULL);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: sysfuzz SEED SECONDS MAXCASES DIR [trunc] [cmsg] [rlimit]\n");
        return 2;
    }
    uint64_t seed = strtoull(argv[1], NULL, 0);
    long secs = atol(argv[2]);
    uint64_t max_cases = strtoull(argv[3], NULL, 0);
    for (int i = 5; i < argc; i++) {
        skip_trunc |= strcmp(argv[i], "trunc") == 0;
        skip_cmsg |= strcmp(argv[i], "cmsg") == 0;
        skip_rlimit |= strcmp(argv[i], "rlimit") == 0;
    }
    rng_state = seed;
    deadline = time(NULL) + secs;
    setup(argv[4]);
    for (size_t i = 0; i < WORK_SIZE; i += 8) {
        uint64_t r = next();
        memcpy(work + i, &r, 8);
    }

    uint64_t cases = 0, failed = 0;
    while (!deadline_passed && (max_cases == 0 || cases < max_cases)) {
        /* Fresh random bytes somewhere in work, so outputs do not settle it. */
        size_t at = below(WORK_SIZE / 8 - 64) * 8;
        for (int i = 0; i < 64; i++) {
            uint64_t r = next();
            memcpy(work + at + 8 * i, &r, 8);
        }
        long nr = pick_call();
        uint64_t a[6];
        if (!make_args(nr, a))
            continue;
        cases++;
        logf_("case %llu: %ld %#llx %#llx %#llx %#llx %#llx %#llx\n", (unsigned long long)cases, nr,
              (unsigned long long)a[0], (unsigned long long)a[1], (unsigned long long)a[2],
              (unsigned long long)a[3], (unsigned long long)a[4], (unsigned long long)a[5]);
        long rc = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (nr == SYS_clone3 && rc == 0)
            syscall(SYS_exit, 0);
        logf_("= %ld\n", rc < 0 ? -(long)errno : rc);
        if ((nr == SYS_open || nr == SYS_openat || nr == SYS_openat2) && !opened_scratch && rc >= 0)
            close((int)rc);
        if (rc < 0)
            failed++;
        else if (((nr == SYS_open || nr == SYS_openat || nr == SYS_openat2) && opened_scratch) ||
                 nr == SYS_creat ||
                 nr == SYS_dup ||
                 nr == SYS_socket || nr == SYS_accept || nr == SYS_accept4 ||
                 nr == SYS_epoll_create1 || nr == SYS_eventfd2 || nr == SYS_timerfd_create ||
                 nr == SYS_memfd_create || nr == SYS_inotify_init1)
            add_fd(rc);
        keep_control(nr);
    }
    /* Ours removed (if no fuzzed call removed them first). */
    semctl(sem_id, 0, IPC_RMID);
    msgctl(msq_id, IPC_RMID, NULL);
    logf_("done: seed %llu: %llu calls, %llu failed\n", (unsigned long long)seed,
          (unsigned long long)cases, (unsigned long long)failed);
    return 0;
}
