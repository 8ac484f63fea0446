/* brk growth and shrink, and malloc churn on top of it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    char *start = sbrk(0);
    for (int step = 1; step <= 4; step++) {
        if (sbrk(step << 20) == (void *)-1) {
            perror("sbrk");
            return 1;
        }
    }
    char *end = sbrk(0);
    printf("grew by %ld MiB\n", (long)(end - start) >> 20);
    memset(start, 0x5a, end - start);
    unsigned long sum = 0;
    for (char *c = start; c < end; c += 4096)
        sum += (unsigned char)*c;
    printf("touched pages sum %lu\n", sum);
    printf("shrink: %d\n", brk(start + (1 << 20)));
    printf("now %ld MiB above start\n", (long)((char *)sbrk(0) - start) >> 20);
    printf("regrow reads zero: %d\n", sbrk(1 << 20) != (void *)-1 && start[(1 << 20) + 4096] == 0);

    uint64_t check = 0;
    void *blocks[2000];
    for (int i = 0; i < 2000; i++) {
        size_t n = (size_t)(i * 37 % 5000) + 1;
        blocks[i] = malloc(n);
        memset(blocks[i], i & 0xff, n);
        check += n * (i & 0xff);
    }
    for (int i = 0; i < 2000; i += 2)
        free(blocks[i]);
    for (int i = 1; i < 2000; i += 2)
        free(blocks[i]);
    char *big = malloc(64 << 20);
    memset(big, 1, 64 << 20);
    free(big);
    printf("malloc checksum %llu\n", (unsigned long long)check);
    return 0;
}
