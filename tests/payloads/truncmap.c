/* A shared file mapping whose second page lies past the end of the file after a
 * truncate: syscalls given a pointer into that page must fail with EFAULT, and the
 * program's own access to it raises SIGBUS (BUS_ADRERR at the touched address).
 *   truncmap syscalls DIR   each syscall with a pointer into the page: its errno
 *   truncmap touch DIR      reads the page (dies of SIGBUS) after printing where
 *   truncmap handler DIR    reads and writes the page under a SIGBUS handler
 *   truncmap threads DIR    4 threads make such syscalls at the same time
 *   truncmap altstack DIR   takes a signal on an alternate stack ending in the page
 *                           (the frame cannot be written: SIGSEGV)
 * DIR receives the file. MODE-private (syscalls-private, ...) maps it MAP_PRIVATE
 * (its pages not yet copied fault the same way).
 * Output is buffered (stdio to a pipe), so a dying monitor loses it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>

#define FUTEX_WAKE 1 /* <linux/futex.h>, which musl-gcc cannot see */
#include <unistd.h>

static char *page; /* the page past EOF */

static void report(const char *what, long r) {
    int e = errno;
    if (r < 0)
        printf("%s: %s\n", what, e == EFAULT ? "EFAULT" : strerror(e));
    else
        printf("%s: %ld ok\n", what, r);
}

static void map_truncated(const char *dir, int flags) {
    char path[4096];
    snprintf(path, sizeof path, "%s/truncmap.data", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, 2 * 4096) != 0) {
        perror("creating the file");
        exit(2);
    }
    char *map = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (map == MAP_FAILED || ftruncate(fd, 4096) != 0) {
        perror("mapping and truncating");
        exit(2);
    }
    memcpy(map, "first page", 11);
    page = map + 4096;
    close(fd);
}

static void catch_bus(void);
static void caught(const char *how, long offset, int write);

static void syscalls(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    int file = openat(fd, "truncmap.data", O_RDONLY);
    report("getrandom", syscall(SYS_getrandom, page, 16, 0));
    report("newfstatat", syscall(SYS_newfstatat, AT_FDCWD, "/", page, 0));
    report("newfstatat path", syscall(SYS_newfstatat, AT_FDCWD, page, page - 256, 0));
    report("clock_gettime", syscall(SYS_clock_gettime, CLOCK_REALTIME, page));
    report("pread64", syscall(SYS_pread64, file, page, 8, 0));
    report("uname", syscall(SYS_uname, page));
    report("pipe", syscall(SYS_pipe, page));
    report("getcwd", syscall(SYS_getcwd, page, 256));
    report("open", syscall(SYS_open, page, O_RDONLY));
    report("sysinfo", syscall(SYS_sysinfo, page));
    report("read", syscall(SYS_read, file, page, 8));
    report("write", syscall(SYS_write, 1, page, 8));
    report("futex", syscall(SYS_futex, page, FUTEX_WAKE, 1, NULL, NULL, 0));
    /* The page before is intact, the page past EOF still faults (no syscall left a
     * readable page there), and the monitor still serves syscalls. */
    printf("first page: %s\n", page - 4096);
    catch_bus();
    caught("touch after the syscalls", 8, 0);
    printf("done\n");
}

static sigjmp_buf back;
static volatile siginfo_t seen;

static void on_bus(int sig, siginfo_t *info, void *ctx) {
    (void)sig;
    (void)ctx;
    seen = *info;
    siglongjmp(back, 1);
}

static const char *bus_code(int code) {
    switch (code) {
    case BUS_ADRALN: return "BUS_ADRALN";
    case BUS_ADRERR: return "BUS_ADRERR";
    case BUS_OBJERR: return "BUS_OBJERR";
    default: return "other";
    }
}

/* Touches page + offset, reading or writing, under the SIGBUS handler. */
static void caught(const char *how, long offset, int write) {
    volatile char *p = page + offset;
    if (sigsetjmp(back, 1) == 0) {
        if (write)
            *p = 1;
        else
            (void)*p;
        printf("%s: no signal\n", how);
        return;
    }
    printf("%s: signal %d %s at page%+ld\n", how, seen.si_signo, bus_code(seen.si_code),
           (long)((char *)seen.si_addr - page));
}

static void catch_bus(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_bus;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &sa, NULL);
}

static void handler(void) {
    catch_bus();
    caught("read", 123, 0);
    caught("write", 4000, 1);
    caught("read again", 0, 0);
    printf("done\n");
}

#define THREADS 4
#define ROUNDS 200

static void *hammer(void *arg) {
    long efaults = 0;
    for (int i = 0; i < ROUNDS; i++) {
        char *p = page + 64 * ((long)arg + THREADS * (i % 8));
        efaults += syscall(SYS_getrandom, p, 32, 0) < 0 && errno == EFAULT;
        efaults += syscall(SYS_uname, p) < 0 && errno == EFAULT;
    }
    return (void *)efaults;
}

static void threads(void) {
    pthread_t t[THREADS];
    long total = 0;
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, hammer, (void *)i);
    for (int i = 0; i < THREADS; i++) {
        void *n;
        pthread_join(t[i], &n);
        total += (long)n;
    }
    printf("threads: %ld of %d calls got EFAULT\n", total, THREADS * ROUNDS * 2);
    printf("first page: %s\n", page - 4096);
    catch_bus();
    caught("touch after the threads", 0, 0);
    printf("done\n");
}

static void on_usr1(int sig) {
    (void)sig;
    printf("handler ran\n");
}

static void altstack(void) {
    stack_t ss = {.ss_sp = page - 4096, .ss_size = 2 * 4096};
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_ONSTACK;
    if (sigaltstack(&ss, NULL) != 0 || sigaction(SIGUSR1, &sa, NULL) != 0) {
        perror("sigaltstack");
        exit(2);
    }
    printf("raising SIGUSR1\n");
    fflush(stdout);
    raise(SIGUSR1);
    printf("survived\n");
}

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    char *suffix = strstr(argv[1], "-private");
    int private = suffix != NULL;
    if (private)
        *suffix = 0;
    map_truncated(argv[2], private ? MAP_PRIVATE : MAP_SHARED);
    if (strcmp(argv[1], "syscalls") == 0) {
        syscalls(argv[2]);
    } else if (strcmp(argv[1], "touch") == 0) {
        printf("touching page+77 at %p\n", (void *)(page + 77));
        fflush(stdout);
        (void)*(volatile char *)(page + 77);
        printf("survived\n");
    } else if (strcmp(argv[1], "handler") == 0) {
        handler();
    } else if (strcmp(argv[1], "threads") == 0) {
        threads();
    } else if (strcmp(argv[1], "altstack") == 0) {
        altstack();
    } else {
        return 2;
    }
    return 0;
}
