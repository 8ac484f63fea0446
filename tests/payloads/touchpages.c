/* `touchpages N`: maps N MiB of anonymous memory, writes to every 4 KiB page
 * once and prints a checksum of what it reads back. `touchpages N brk`: the
 * same memory comes from the program break, grown 128 KiB at a time (as malloc
 * grows it), then the break goes back by half a step and forward again, and
 * the pages it gave back read zero. tests/stats.rs counts the page faults this
 * costs under km. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define STEP (128L << 10)

static unsigned char *set_brk(unsigned char *want) {
    return (unsigned char *)syscall(SYS_brk, want);
}

/* N MiB from the break, grown STEP bytes at a time; NULL if it cannot grow. */
static unsigned char *grow_brk(long bytes) {
    unsigned char *start = set_brk(0);
    for (long grown = STEP; grown <= bytes; grown += STEP)
        if (set_brk(start + grown) != start + grown)
            return NULL;
    return start;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    long pages = atol(argv[1]) * 256;
    int from_brk = argc > 2 && strcmp(argv[2], "brk") == 0;
    unsigned char *p = from_brk ? grow_brk(pages * 4096)
                                : mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == NULL || p == MAP_FAILED)
        return 1;
    for (long i = 0; i < pages; i++)
        p[i * 4096] = (unsigned char)i;
    unsigned long sum = 0;
    for (long i = 0; i < pages; i++)
        sum += p[i * 4096];
    printf("%ld pages, checksum %lu\n", pages, sum);
    if (from_brk) {
        unsigned char *end = p + pages * 4096;
        if (set_brk(end - STEP / 2) != end - STEP / 2 || set_brk(end) != end)
            return 1;
        unsigned long nonzero = 0;
        for (unsigned char *c = end - STEP / 2; c < end; c += 4096)
            nonzero += *c != 0;
        printf("pages given back and grown again: %lu nonzero, below kept: %d\n", nonzero,
               p[(pages / 2 - 1) * 4096] == (unsigned char)(pages / 2 - 1));
    }
    return 0;
}
