/* POSIX record locks held across execve stay held, as on Linux (tests/execlock.rs,
 * issue 13): the program locks a file, execs itself (twice, through "again"), and
 * after each exec another process checks the lock with F_GETLK; then the program
 * unlocks and the check sees no lock. Usage: execlock DIR (the file goes there).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* In another process: what F_GETLK says about bytes 0..9 of `path`. */
static void check(const char *when, const char *path) {
    pid_t me = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(path, O_RDWR);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
        if (fd < 0 || fcntl(fd, F_GETLK, &fl)) {
            printf("%s: F_GETLK: %s\n", when, strerror(errno));
            _exit(1);
        }
        if (fl.l_type == F_UNLCK)
            printf("%s: not locked\n", when);
        else
            printf("%s: %s lock by %s, bytes %ld+%ld\n", when,
                   fl.l_type == F_WRLCK ? "write" : "read",
                   fl.l_pid == me ? "the program" : "someone else", (long)fl.l_start,
                   (long)fl.l_len);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
}

static void exec_self(const char *self, const char *mode, const char *path, int fd) {
    char fdtext[16];
    snprintf(fdtext, sizeof fdtext, "%d", fd);
    execl(self, self, mode, path, fdtext, (char *)NULL);
    printf("execl: %s\n", strerror(errno));
    exit(1);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 2) {
        char path[4096];
        snprintf(path, sizeof path, "%s/locked", argv[1]);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
        if (fd < 0 || fcntl(fd, F_SETLK, &fl)) {
            printf("locking: %s\n", strerror(errno));
            return 1;
        }
        check("before exec", path);
        exec_self(argv[0], "again", path, fd);
    }
    if (argc != 4)
        return 2;
    const char *path = argv[2];
    int fd = atoi(argv[3]);
    if (!strcmp(argv[1], "again")) {
        check("after one exec", path);
        exec_self(argv[0], "held", path, fd);
    }
    check("after two execs", path);
    struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    if (fcntl(fd, F_SETLK, &fl)) {
        printf("unlocking: %s\n", strerror(errno));
        return 1;
    }
    check("after unlocking", path);
    printf("execlock done\n");
    return 0;
}
