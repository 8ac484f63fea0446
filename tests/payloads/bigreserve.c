/* Reservations larger than the old 128 GiB mmap area (tests/vfork.rs, issue 13):
 * PROT_NONE, MAP_NORESERVE mappings of 256 GiB and 1 TiB, as Go, V8 and some
 * allocators make, then parts of them made read-write (at the start, far inside,
 * at the end), written and read back, a fork child reading them, and munmap.
 * Then many shared anonymous PROT_NONE reservations (3 to 6 GiB each, about 450
 * GiB in all), one page of the last made read-write and written by a fork child,
 * which the parent must see. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define GIB (1UL << 30)

static int use_part(char *base, size_t off, size_t len, char fill) {
    if (mprotect(base + off, len, PROT_READ | PROT_WRITE)) {
        printf("mprotect +%zu GiB: %s\n", off / GIB, strerror(errno));
        return 1;
    }
    memset(base + off, fill, len);
    int ok = base[off] == fill && base[off + len - 1] == fill;
    printf("part at +%zu GiB: %s\n", off / GIB, ok ? "written and read back" : "wrong");
    return !ok;
}

static int reserve(size_t size) {
    char *base = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        printf("reserve %zu GiB: %s\n", size / GIB, strerror(errno));
        return 1;
    }
    printf("reserve %zu GiB: ok, page aligned %s\n", size / GIB,
           ((uintptr_t)base & 4095) == 0 ? "yes" : "no");
    size_t mib = 1 << 20;
    int bad = use_part(base, 0, 2 * mib, 'a');
    bad |= use_part(base, size / 2 + 3 * GIB, mib, 'b');
    bad |= use_part(base, size - mib, mib, 'c');
    pid_t pid = fork();
    if (pid == 0)
        _exit(base[0] == 'a' && base[size / 2 + 3 * GIB] == 'b' && base[size - 1] == 'c' ? 0 : 1);
    int st;
    waitpid(pid, &st, 0);
    printf("fork child reads the parts: %s\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "yes" : "no");
    /* The rest is still PROT_NONE: touching it faults. */
    pid = fork();
    if (pid == 0) {
        base[GIB] = 1;
        _exit(0);
    }
    waitpid(pid, &st, 0);
    printf("touching the rest: %s\n", WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "no fault");
    if (munmap(base, size)) {
        printf("munmap: %s\n", strerror(errno));
        return 1;
    }
    printf("munmap: ok\n");
    return bad;
}

/* 100 MAP_SHARED|MAP_ANONYMOUS PROT_NONE reservations; a fork child's write to
 * one page of the last, made read-write, reaches the parent. */
static int shared_reservations(void) {
    static char *base[100];
    size_t size = 0;
    for (int i = 0; i < 100; i++) {
        size = (3 + i % 4) * GIB;
        base[i] = mmap(NULL, size, PROT_NONE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (base[i] == MAP_FAILED) {
            printf("shared reservation %d (%zu GiB): %s\n", i, size / GIB, strerror(errno));
            return 1;
        }
    }
    char *last = base[99] + size - 4096;
    if (mprotect(last, 4096, PROT_READ | PROT_WRITE)) {
        printf("mprotect in the last shared reservation: %s\n", strerror(errno));
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        strcpy(last, "from the child");
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("100 shared reservations: ok, the child's write seen %s\n",
           strcmp(last, "from the child") == 0 ? "yes" : "no");
    for (int i = 0; i < 100; i++)
        munmap(base[i], (3 + i % 4) * GIB);
    return 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    /* First, while nothing of the reserve region is in use yet. */
    int bad = shared_reservations();
    bad |= reserve(256 * GIB);
    bad |= reserve(1024 * GIB);
    /* Two at once, and a small mapping after them still works. */
    void *a = mmap(NULL, 200 * GIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *b = mmap(NULL, 200 * GIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    char *small = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("two 200 GiB reservations: %s\n", a != MAP_FAILED && b != MAP_FAILED ? "ok" : strerror(errno));
    if (small != MAP_FAILED)
        small[0] = 1;
    printf("a small mapping after them: %s\n", small != MAP_FAILED ? "ok" : "failed");
    printf("bigreserve done\n");
    return bad;
}
