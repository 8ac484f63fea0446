/* Prints what CPUID says for a few leaves, then (without an argument) execs
 * itself once to print them again: a km started by execve must give its
 * payload the CPU its predecessor gave (tests/cli.rs). */
#include <cpuid.h>
#include <stdio.h>
#include <unistd.h>

static void show(const char *when) {
    static const unsigned leaves[][2] = {{0, 0}, {1, 0}, {7, 0}, {0xd, 0}, {0x80000001, 0}};
    for (unsigned i = 0; i < sizeof leaves / sizeof leaves[0]; i++) {
        unsigned a, b, c, d;
        __cpuid_count(leaves[i][0], leaves[i][1], a, b, c, d);
        /* Leaf 1's EBX ends with the APIC id of the CPU that ran the
         * instruction (on an AMD PVM host the guest's CPUID is the host's). */
        if (leaves[i][0] == 1)
            b &= 0x00ffffff;
        printf("%s %#x: %08x %08x %08x %08x\n", when, leaves[i][0], a, b, c, d);
    }
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc > 1) {
        show("after");
        return 0;
    }
    show("before");
    char *again[] = {argv[0], "again", NULL};
    execv("/proc/self/exe", again);
    perror("execv");
    return 1;
}
