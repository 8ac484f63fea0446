/* brk growth and shrink, and malloc churn on top of it.
 *
 * The break is moved with the raw brk syscall: musl's sbrk() only answers sbrk(0)
 * and its brk() always fails with ENOMEM, so libc wrappers would test nothing there.
 * The break goes back to where it started before malloc runs, so glibc's cached
 * break (used by its sbrk) stays right. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MiB (1L << 20)

static char *set_brk(char *want) {
    return (char *)syscall(SYS_brk, want);
}

int main(void) {
    char *start = set_brk(0);
    char *end = start;
    for (long step = 1; step <= 4; step++) {
        char *got = set_brk(end + step * MiB);
        if (got != end + step * MiB) {
            printf("brk grow by %ld MiB failed\n", step);
            return 1;
        }
        end = got;
    }
    printf("grew by %ld MiB\n", (long)(end - start) / MiB);
    memset(start, 0x5a, end - start);
    unsigned long sum = 0;
    for (char *c = start; c < end; c += 4096)
        sum += (unsigned char)*c;
    printf("touched pages sum %lu\n", sum);

    char *shrunk = set_brk(start + MiB);
    printf("shrink lands where asked: %d\n", shrunk == start + MiB);
    printf("now %ld MiB above start\n", (long)(set_brk(0) - start) / MiB);
    char *regrown = set_brk(start + 2 * MiB);
    printf("regrow: %d\n", regrown == start + 2 * MiB);
    /* Whole pages above the shrunken break were given back: they read zero again. */
    unsigned long nonzero = 0;
    for (char *c = start + MiB + 4096; c < regrown; c += 4096)
        nonzero += *c != 0;
    printf("regrown pages nonzero: %lu\n", nonzero);
    printf("kept below the break: %d\n", start[0] == 0x5a && start[MiB - 1] == 0x5a);
    printf("below the heap refused: %d\n", set_brk((char *)0x1000) == regrown);
    printf("back to the start: %d\n", set_brk(start) == start);

    uint64_t check = 0;
    static void *blocks[2000];
    for (int i = 0; i < 2000; i++) {
        size_t n = (size_t)(i * 37 % 5000) + 1;
        blocks[i] = malloc(n);
        if (blocks[i] == NULL) {
            printf("malloc %zu failed\n", n);
            return 1;
        }
        memset(blocks[i], i & 0xff, n);
    }
    for (int i = 0; i < 2000; i++) {
        size_t n = (size_t)(i * 37 % 5000) + 1;
        const unsigned char *b = blocks[i];
        for (size_t k = 0; k < n; k += 61)
            check += b[k];
        check += b[n - 1];
    }
    for (int i = 0; i < 2000; i += 2)
        free(blocks[i]);
    for (int i = 1; i < 2000; i += 2)
        free(blocks[i]);
    char *big = malloc(64 * MiB);
    if (big == NULL) {
        printf("malloc 64 MiB failed\n");
        return 1;
    }
    memset(big, 1, 64 * MiB);
    unsigned long ones = 0;
    for (long k = 0; k < 64 * MiB; k += 4096)
        ones += big[k];
    free(big);
    printf("malloc checksum %llu, big block pages %lu\n", (unsigned long long)check, ones);
    return 0;
}
