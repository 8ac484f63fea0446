/* First-touch benchmark: `touch N` maps N anonymous pages and writes one byte to
 * each, so every page is a first touch (a page fault natively, under km a fault
 * KVM or the host serves). */
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    long n = atol(argv[1]);
    if (n == 0)
        return 0;
    volatile char *p = mmap(NULL, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 1;
    for (long i = 0; i < n; i++)
        p[i * 4096] = 1;
    return 0;
}
