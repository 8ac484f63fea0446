/* What the payload may do to FILE with its host identity: prints its ids, then
 * the outcome of chown(FILE, 65534, 65534), chmod(FILE, 0666) and reading FILE,
 * then forks a child that execs this program again ("child" mode) and prints its
 * ids, so the identity holds across fork and execve. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *outcome(int r) {
    if (r == 0)
        return "ok";
    switch (errno) {
    case EPERM:
        return "EPERM";
    case EACCES:
        return "EACCES";
    default:
        return strerror(errno);
    }
}

static int read_file(const char *path) {
    char buf[64];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    int n = read(fd, buf, sizeof buf);
    close(fd);
    return n < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
    printf("uid %d gid %d\n", (int)geteuid(), (int)getegid());
    if (argc > 1 && strcmp(argv[1], "child") == 0)
        return 0;
    if (argc < 2)
        return 2;
    printf("chown %s\n", outcome(chown(argv[1], 65534, 65534)));
    printf("chmod %s\n", outcome(chmod(argv[1], 0666)));
    printf("read %s\n", outcome(read_file(argv[1])));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl(argv[0], argv[0], "child", (char *)0);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("child status %d\n", status);
    return 0;
}
