/* Calls getppid() argv[1] times (the syscall-forwarding benchmark payload), or
 * with "getpid" first, getpid() argv[2] times (answered in km's guest). */
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long nr = SYS_getppid;
    if (argc > 2 && strcmp(argv[1], "getpid") == 0) {
        nr = SYS_getpid;
        argv++;
    }
    long n = argc > 1 ? atol(argv[1]) : 0;
    for (long i = 0; i < n; i++)
        syscall(nr);
    return 0;
}
