/* Allocates and touches 1 GiB, frees it, and prints this process's VmRSS (KiB) before,
 * during and after, as read from /proc/self/status (under km: km's own RSS). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atol(line + 6);
    if (f)
        fclose(f);
    return kib;
}

int main(void) {
    const size_t size = 1UL << 30;
    long before = rss_kib();
    char *p = malloc(size);
    if (!p)
        return 1;
    for (size_t off = 0; off < size; off += 4096)
        p[off] = 1;
    long during = rss_kib();
    free(p);
    long after = rss_kib();
    printf("before %ld during %ld after %ld\n", before, during, after);
    return 0;
}
