/* Anonymous and file-backed mappings. argv[1]: a scratch directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GiB (1UL << 30)
#define MiB (1UL << 20)

int main(int argc, char **argv) {
    if (argc != 2 || chdir(argv[1]) != 0)
        return 1;
    unsigned char *p = mmap(NULL, GiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap 1 GiB");
        return 1;
    }
    unsigned long sum = 0, zeroes = 0;
    for (unsigned long off = 0; off < GiB; off += 64 * MiB)
        p[off] = (unsigned char)(off / MiB + 1);
    for (unsigned long off = 0; off < GiB; off += 64 * MiB)
        sum += p[off], zeroes += p[off + 4096] == 0;
    printf("sparse 1 GiB: sum %lu, untouched zero %lu\n", sum, zeroes);
    printf("munmap: %d\n", munmap(p, GiB));

    unsigned char *q = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(q, 7, 3 * 4096);
    printf("munmap middle: %d\n", munmap(q + 4096, 4096));
    printf("ends intact: %d %d\n", q[0], q[2 * 4096]);
    unsigned char *r = mremap(q, 4096, 64 * 4096, MREMAP_MAYMOVE);
    printf("mremap kept data: %d\n", r != MAP_FAILED && r[0] == 7 && r[4095] == 7);
    printf("mprotect: %d\n", mprotect(r, 4096, PROT_READ));

    /* A mapping grown in place into a hole is one mapping to Linux, which the
     * next mremap may grow again; a zero old length duplicates only shared ones. */
    char *m = mmap(NULL, 10 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(m + 2 * MiB, MiB);
    char *g1 = mremap(m + MiB, MiB, 2 * MiB - 8192, MREMAP_MAYMOVE);
    g1[2 * MiB - 8192 - 1] = 'g';
    char *g2 = mremap(m + MiB, 2 * MiB - 8192, 2 * MiB, MREMAP_MAYMOVE);
    printf("grown in place twice: %s %s\n", g1 == m + MiB ? "yes" : "no",
           g2 == m + MiB && g2[2 * MiB - 8192 - 1] == 'g' ? "yes" : strerror(errno));
    errno = 0;
    void *dup = mremap(m, 0, MiB, MREMAP_MAYMOVE);
    printf("zero old length of a private mapping: %s\n", dup == MAP_FAILED ? strerror(errno) : "mapped");
    munmap(m, 10 * MiB);

    int fd = open("file", O_CREAT | O_RDWR | O_TRUNC, 0600);
    char page[8192];
    memset(page, 'a', 4096);
    memset(page + 4096, 'b', 4096);
    if (write(fd, page, sizeof page) != sizeof page)
        return 1;
    char *priv = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("private map: %c %c\n", priv[0], priv[4096]);
    priv[0] = 'X';
    char c;
    pread(fd, &c, 1, 0);
    printf("private write stays private: %c\n", c);
    char *off = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 4096);
    printf("offset map: %c\n", off[0]);
    char *shared = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    shared[1] = 'S';
    pread(fd, &c, 1, 1);
    printf("shared write reaches the file: %c\n", c);
    pwrite(fd, "W", 1, 4097);
    printf("file write reaches the shared map: %c\n", shared[4097]);
    printf("msync-free munmap: %d %d %d\n", munmap(priv, 8192), munmap(off, 4096), munmap(shared, 8192));
    /* MADV_DONTNEED over neighbouring anonymous mappings (a guard page and a
     * stack, as glibc's thread exit advises them): every page reads as zero
     * again, the pages around the range keep their bytes. */
    char *two = mmap(NULL, 6 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(two, 'z', 6 * 4096);
    mprotect(two + 4096, 4096, PROT_READ);
    int advised = madvise(two + 4096, 4 * 4096, MADV_DONTNEED);
    int zeros = 0;
    for (int i = 4096; i < 5 * 4096; i++)
        zeros += two[i] == 0;
    printf("madvise DONTNEED over two mappings: %d, %d zero bytes, kept %c %c\n", advised, zeros,
           two[4095], two[5 * 4096]);
    munmap(two, 6 * 4096);

    printf("bad mmap len 0: %p %s\n", mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), strerror(errno));
    printf("bad fd: %p %s\n", mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 99, 0), strerror(errno));

    close(fd);
    unlink("file");
    return 0;
}
