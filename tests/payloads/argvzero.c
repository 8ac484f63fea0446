/* execve with a null argv (and envp): since 5.18 Linux gives the new program an
 * empty argv[0] rather than argc 0. `argvzero` execs itself that way; the new
 * program prints its argc and argv[0]. */
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc == 0) {
        printf("argc 0\n");
        return 0;
    }
    if (argv[0][0] == '\0') {
        printf("argc %d argv[0] \"%s\"\n", argc, argv[0]);
        return 0;
    }
    /* Through a volatile: glibc's header declares argv non-null. */
    char *const *volatile none = NULL;
    execve("/proc/self/exe", none, none);
    perror("execve");
    return 1;
}
