// Descriptors across execve: those without FD_CLOEXEC stay at their numbers (fd 3
// among them, where km keeps descriptors of its own), close-on-exec ones are gone,
// and OFD locks stay with their open file. argv[1] is a scratch directory; the
// program re-executes itself with "after". The output must be the same natively
// and under km.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void after(const char *dir) {
    char buf[32] = {0};
    long n = pread(3, buf, sizeof buf - 1, 0);
    printf("fd 3 after exec: %ld %s\n", n, buf);
    struct stat st;
    printf("fd 10 is a pipe: %d\n", fstat(10, &st) == 0 && S_ISFIFO(st.st_mode));
    printf("fd 4 (close-on-exec) gone: %d\n", fcntl(4, F_GETFD) == -1 && errno == EBADF);
    printf("fd 3 flags: %d\n", fcntl(3, F_GETFD));
    char path[4096];
    snprintf(path, sizeof path, "%s/data", dir);
    pid_t child = fork();
    if (child == 0) {
        int fd = open(path, O_RDWR);
        struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        fcntl(fd, F_OFD_GETLK, &l);
        printf("OFD lock after exec: %s\n", l.l_type == F_WRLCK ? "kept" : "gone");
        fflush(stdout);
        _exit(0);
    }
    waitpid(child, NULL, 0);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2)
        return 2;
    if (argc > 2 && strcmp(argv[2], "after") == 0) {
        after(argv[1]);
        printf("execfds done\n");
        return 0;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/data", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    printf("opened at %d\n", fd);
    write(fd, "kept across exec", 16);
    int cloexec = open(path, O_RDONLY | O_CLOEXEC);
    printf("close-on-exec one at %d\n", cloexec);
    int p[2];
    pipe(p);
    dup2(p[0], 10);
    struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    printf("OFD lock: %d\n", fcntl(fd, F_OFD_SETLK, &l));
    execl("/proc/self/exe", argv[0], argv[1], "after", (char *)0);
    printf("execl: %s\n", strerror(errno));
    return 1;
}
