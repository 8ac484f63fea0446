// Snapshot payload (tests/snapshot.rs): a snapshot of a restored payload. Fills
// MiB (argv[1]) of heap with a pattern, takes a snapshot that ends it, and, once
// restored, another one at once (KM_SNAPSHOT, 505; natively both fail with
// ENOSYS); restored from the second, it checks the pattern: pages the first
// restore had not brought in yet must be in the second snapshot too.
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KM_SNAPSHOT 505

static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + i / 4096); }

int main(int argc, char **argv) {
    size_t len = (size_t)atoi(argc > 1 ? argv[1] : "1") << 20;
    unsigned char *p = malloc(len);
    if (!p) return 1;
    for (size_t i = 0; i < len; i++) p[i] = pattern(i);
    long first = syscall(KM_SNAPSHOT, "first", NULL, 0);
    long second = syscall(KM_SNAPSHOT, "second", NULL, 0);
    size_t wrong = 0;
    for (size_t i = 0; i < len; i++) wrong += p[i] != pattern(i);
    printf("snapshots returned %ld and %ld, %zu bytes differ\n", first, second, wrong);
    return 0;
}
