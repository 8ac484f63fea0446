/* CPU-bound benchmark: prints on stdout the nanoseconds (CLOCK_MONOTONIC) that
 * the work alone took, so the start-up of the process (or of km) is not in it.
 * `alu N` runs N rounds of xorshift64* mixing, each depending on the last, in
 * registers only; `mem N` follows N links of a random cycle through the 64-byte
 * lines of a 64 MiB buffer (written in full, then linked, before the clock
 * starts), so nearly every step misses the caches and the TLB. The buffer is a
 * plain anonymous mapping, with no huge-page advice: what a program gets. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define BUFFER (64L << 20)
#define LINE 64
#define LINES (BUFFER / LINE)

/* Where the result goes, so that the loops are not dead code. */
static volatile uint64_t sink;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dULL;
}

static uint64_t alu(long n) {
    uint64_t s = 88172645463325252ULL, h = 0;
    for (long i = 0; i < n; i++)
        h = (h ^ xorshift(&s)) * 0x9e3779b97f4a7c15ULL + (h >> 29);
    return h;
}

/* The lines in shuffled order, each line's first word holding the index of the
 * next line in that order (the last the first's): one cycle through them all. */
static uint64_t mem(long n) {
    uint64_t *buf = mmap(NULL, BUFFER, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        exit(1);
    memset(buf, 1, BUFFER);
    uint32_t *order = malloc(LINES * sizeof *order);
    if (!order)
        exit(1);
    for (uint32_t i = 0; i < LINES; i++)
        order[i] = i;
    uint64_t s = 2463534242ULL;
    for (uint32_t i = LINES - 1; i > 0; i--) {
        uint32_t j = xorshift(&s) % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (uint32_t i = 0; i < LINES; i++)
        buf[order[i] * (LINE / 8)] = order[(i + 1) % LINES];
    free(order);
    uint64_t start = now_ns(), p = 0;
    for (long i = 0; i < n; i++)
        p = buf[p * (LINE / 8)];
    uint64_t took = now_ns() - start;
    sink = p;
    return took;
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    long n = atol(argv[2]);
    uint64_t took;
    if (strcmp(argv[1], "alu") == 0) {
        uint64_t start = now_ns();
        sink = alu(n);
        took = now_ns() - start;
    } else if (strcmp(argv[1], "mem") == 0) {
        took = mem(n);
    } else {
        return 2;
    }
    printf("%llu\n", (unsigned long long)took);
    return 0;
}
