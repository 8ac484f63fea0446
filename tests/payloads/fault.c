/* Faults in a nested call chain: main -> level1 -> level2 -> fault. argv[1] picks it. */
#include <stdlib.h>
#include <string.h>

static volatile int zero = 0;

__attribute__((noinline)) static int level2(const char *how) {
    if (strcmp(how, "null") == 0)
        *(volatile int *)0 = 1;
    if (strcmp(how, "div0") == 0)
        return 10 / zero;
    if (strcmp(how, "ud2") == 0)
        __builtin_trap();
    if (strcmp(how, "abort") == 0)
        abort();
    if (strcmp(how, "text") == 0)
        *(volatile char *)level2 = 0;
    return 0;
}

__attribute__((noinline)) static int level1(const char *how) {
    return level2(how) + 1;
}

int main(int argc, char **argv) {
    return level1(argc > 1 ? argv[1] : "none") - 1;
}
