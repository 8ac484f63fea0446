/* Clock benchmark: `clock N` reads CLOCK_MONOTONIC N times (km serves it from its
 * vDSO, Linux from its own). */
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    long n = atol(argv[1]);
    struct timespec t;
    long long sum = 0;
    for (long i = 0; i < n; i++) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        sum += t.tv_nsec;
    }
    return sum == 42;
}
