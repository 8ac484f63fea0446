/* kgcc: built by tests/deploy.rs with kontain-gcc (static, -dynamic, -alpine, as a
 * Makefile's CC); prints its arguments, a heap-built string and which C library it
 * was built against, the same natively and under km. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
#ifdef __GLIBC__
    printf("libc: glibc\n");
#else
    printf("libc: not glibc\n");
#endif
    size_t len = 1;
    for (int i = 1; i < argc; i++)
        len += strlen(argv[i]) + 1;
    char *joined = calloc(len, 1);
    if (joined == NULL) {
        perror("calloc");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        strcat(joined, argv[i]);
        strcat(joined, i + 1 < argc ? "," : "");
    }
    printf("args: %s\n", joined);
    free(joined);
    return argc;
}
