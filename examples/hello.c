/* hello: prints the uname fields, its arguments and its environment. */
#include <stdio.h>
#include <sys/utsname.h>

int main(int argc, char **argv, char **envp) {
    struct utsname u;
    if (uname(&u) != 0) {
        perror("uname");
        return 1;
    }
    printf("sysname: %s\nnodename: %s\nrelease: %s\nversion: %s\nmachine: %s\n",
           u.sysname, u.nodename, u.release, u.version, u.machine);
    printf("argc: %d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]: %s\n", i, argv[i]);
    for (char **e = envp; *e; e++)
        printf("env: %s\n", *e);
    return 0;
}
