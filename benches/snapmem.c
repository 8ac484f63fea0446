// Snapshot benchmark payload: touches MIB mebibytes, takes a snapshot that ends
// it (KM_SNAPSHOT, 505), and once restored from it prints a checksum and exits.
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    size_t len = (size_t)atol(argc > 1 ? argv[1] : "10") << 20;
    unsigned char *p = malloc(len);
    if (!p) return 1;
    for (size_t i = 0; i < len; i += 4096) p[i] = (unsigned char)(i >> 12) | 1;
    long r = syscall(505, "bench", NULL, 0);
    printf("restored %ld, first byte %d\n", r, p[0]);
    return r == 1 ? 0 : 1;
}
