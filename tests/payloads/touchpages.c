/* `touchpages N`: maps N MiB of anonymous memory, writes to every 4 KiB page
 * once and prints a checksum of what it reads back. tests/stats.rs counts the
 * page faults this costs under km. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    long pages = atol(argv[1]) * 256;
    unsigned char *p = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 1;
    for (long i = 0; i < pages; i++)
        p[i * 4096] = (unsigned char)i;
    unsigned long sum = 0;
    for (long i = 0; i < pages; i++)
        sum += p[i * 4096];
    printf("%ld pages, checksum %lu\n", pages, sum);
    return 0;
}
