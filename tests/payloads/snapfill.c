// Snapshot payload (tests/snapshot.rs): changes its memory at once after the
// restore, while km still copies the restored pages in (36 MiB, within the
// background budget): a fork whose child checks every byte, memory unmapped
// and mapped over (anonymous, and a file shared), a mapping moved by mremap,
// the break shrunk and grown again. Natively the snapshot call fails with
// ENOSYS and the rest prints the same.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define KM_SNAPSHOT 505
#define MIB ((size_t)1 << 20)
#define RW (PROT_READ | PROT_WRITE)

static unsigned char pat(size_t i, int k) { return (unsigned char)(i * 13 + i / 4096 + k); }

static void fill(unsigned char *p, size_t len, int k) {
    for (size_t i = 0; i < len; i++) p[i] = pat(i, k);
}

// Bytes of p[0..len) that differ from pattern k from its byte `from` on (k < 0:
// from zero).
static size_t wrong_from(const unsigned char *p, size_t from, size_t len, int k) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += p[i] != (k < 0 ? 0 : pat(from + i, k));
    return n;
}

static size_t wrong(const unsigned char *p, size_t len, int k) { return wrong_from(p, 0, len, k); }

int main(void) {
    unsigned char *a = mmap(NULL, 24 * MIB, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *b = mmap(NULL, 8 * MIB, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *h = sbrk(4 * MIB);
    if (a == MAP_FAILED || b == MAP_FAILED || h == (void *)-1) return 1;
    fill(a, 24 * MIB, 1);
    fill(b, 8 * MIB, 2);
    fill(h, 4 * MIB, 3);
    const char *path = "snapfill-file"; // in the working directory, kept
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, 4 * MIB) != 0) return 1;
    unsigned char *f = mmap(NULL, 4 * MIB, RW, MAP_SHARED, fd, 0);
    if (f == MAP_FAILED) return 1;
    fill(f, 4 * MIB, 5);
    munmap(f, 4 * MIB);
    close(fd);
    long r = syscall(KM_SNAPSHOT, NULL, NULL, 0);
    printf("snapshot returned %ld %s\n", r, r < 0 ? strerror(errno) : "Success");
    fflush(stdout);

    pid_t child = fork();
    if (child == 0)
        _exit(wrong(a, 24 * MIB, 1) + wrong(b, 8 * MIB, 2) + wrong(h, 4 * MIB, 3) != 0);
    int status = -1;
    waitpid(child, &status, 0);
    printf("fork child: %s\n", status == 0 ? "every byte right" : "wrong bytes");

    // The middle of a, unmapped and mapped again: zero.
    munmap(a + 8 * MIB, 4 * MIB);
    unsigned char *m = mmap(a + 8 * MIB, 4 * MIB, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("mapped over: %zu non-zero bytes\n", m == MAP_FAILED ? 1 : wrong(m, 4 * MIB, -1));
    fill(m, 4 * MIB, 4);

    // The end of a, the file mapped shared over it: its contents, left unchanged.
    fd = open(path, O_RDWR);
    struct stat before, after;
    fstat(fd, &before);
    f = mmap(a + 20 * MIB, 4 * MIB, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    printf("file mapped over: %zu wrong bytes\n", f == MAP_FAILED ? 1 : wrong(f, 4 * MIB, 5));
    munmap(f, 4 * MIB);
    fstat(fd, &after);
    printf("file modified: %s\n",
           before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
                   before.st_mtim.tv_nsec == after.st_mtim.tv_nsec
               ? "no"
               : "yes");
    close(fd);

    // b moved and grown: its bytes, then zero.
    unsigned char *moved = mremap(b, 8 * MIB, 16 * MIB, MREMAP_MAYMOVE);
    printf("moved: %zu wrong bytes, %zu non-zero after them\n",
           moved == MAP_FAILED ? 1 : wrong(moved, 8 * MIB, 2),
           moved == MAP_FAILED ? 1 : wrong(moved + 8 * MIB, 8 * MIB, -1));

    // The break shrunk by 2 MiB and grown again: the rest kept, the new part zero.
    sbrk(-(intptr_t)(2 * MIB));
    sbrk(2 * MIB);
    printf("break: %zu wrong bytes, %zu non-zero after them\n", wrong(h, 2 * MIB, 3),
           wrong(h + 2 * MIB, 2 * MIB, -1));

    printf("a: %zu wrong bytes\n",
           wrong(a, 8 * MIB, 1) + wrong(a + 8 * MIB, 4 * MIB, 4) +
               wrong_from(a + 12 * MIB, 12 * MIB, 8 * MIB, 1));
    return 0;
}
