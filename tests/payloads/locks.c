// fcntl beyond descriptor flags: POSIX and OFD record locks between processes and
// descriptors (F_SETLKW interrupted by a signal), pipe sizes, owners, seals,
// F_NOTIFY and leases. argv[1] is a scratch directory. The output must be the same
// natively and under km (no pids are printed, only comparisons).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void result(const char *what, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", what, strerror(errno));
    else
        printf("%s: %ld\n", what, r);
}

static struct flock range(short type, off_t start, off_t len) {
    struct flock l;
    memset(&l, 0, sizeof l);
    l.l_type = type;
    l.l_whence = SEEK_SET;
    l.l_start = start;
    l.l_len = len;
    return l;
}

static void on_alarm(int sig) { (void)sig; }

// The child's view of the parent's write lock on bytes [0, 100).
static void child_checks(const char *path, int ready) {
    int fd = open(path, O_RDWR);
    struct flock l = range(F_WRLCK, 10, 5);
    result("child F_GETLK", fcntl(fd, F_GETLK, &l));
    printf("child sees type %s start %ld len %ld owner is parent %d\n",
           l.l_type == F_WRLCK ? "F_WRLCK" : "other", (long)l.l_start, (long)l.l_len,
           l.l_pid == getppid());
    l = range(F_RDLCK, 0, 1);
    long r = fcntl(fd, F_SETLK, &l);
    result("child F_SETLK conflicting", r == -1 && (errno == EAGAIN || errno == EACCES));
    l = range(F_WRLCK, 200, 10);
    result("child F_SETLK elsewhere", fcntl(fd, F_SETLK, &l));

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; // no SA_RESTART: F_SETLKW ends with EINTR
    sigaction(SIGALRM, &sa, NULL);
    alarm(1);
    l = range(F_WRLCK, 0, 1);
    result("child F_SETLKW interrupted", fcntl(fd, F_SETLKW, &l));
    // Tell the parent, which then unlocks; this F_SETLKW waits for that.
    write(ready, "w", 1);
    l = range(F_WRLCK, 0, 1);
    result("child F_SETLKW after unlock", fcntl(fd, F_SETLKW, &l));
    l = range(F_WRLCK, 0, 0);
    result("child F_GETLK of its own lock", fcntl(fd, F_GETLK, &l));
    printf("child sees its own lock as %s\n", l.l_type == F_UNLCK ? "F_UNLCK" : "held");
}

static void posix_locks(const char *path) {
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    struct flock l = range(F_WRLCK, 0, 100);
    result("F_SETLK write", fcntl(fd, F_SETLK, &l));
    int p[2];
    pipe(p);
    pid_t child = fork();
    if (child == 0) {
        close(p[0]);
        child_checks(path, p[1]);
        _exit(0);
    }
    close(p[1]);
    char c;
    result("child is waiting", read(p[0], &c, 1));
    l = range(F_UNLCK, 0, 0);
    long unlocked = fcntl(fd, F_SETLK, &l);
    int status;
    waitpid(child, &status, 0);
    result("F_SETLK unlock", unlocked);
    result("child exit", WEXITSTATUS(status));

    l = range(F_WRLCK, 0, 0);
    result("F_GETLK after the child", fcntl(fd, F_GETLK, &l));
    printf("after the child: %s\n", l.l_type == F_UNLCK ? "F_UNLCK" : "locked");

    // Closing any descriptor of the file drops the process's locks (POSIX).
    l = range(F_WRLCK, 0, 10);
    fcntl(fd, F_SETLK, &l);
    close(open(path, O_RDONLY));
    child = fork();
    if (child == 0) {
        int cfd = open(path, O_RDWR);
        struct flock q = range(F_WRLCK, 0, 10);
        fcntl(cfd, F_GETLK, &q);
        _exit(q.l_type == F_UNLCK ? 0 : 1);
    }
    waitpid(child, &status, 0);
    result("lock gone after closing another descriptor (0 = gone)", WEXITSTATUS(status));

    l = range(7, 0, 1);
    result("F_SETLK bad type", fcntl(fd, F_SETLK, &l));
    l = range(F_WRLCK, 0, 1);
    l.l_whence = 9;
    result("F_SETLK bad whence", fcntl(fd, F_SETLK, &l));
    l = range(F_UNLCK, 0, 1);
    result("F_GETLK with F_UNLCK", fcntl(fd, F_GETLK, &l));
    l = range(F_WRLCK, -5, 1);
    result("F_SETLK negative start", fcntl(fd, F_SETLK, &l));
    result("F_SETLK bad pointer", fcntl(fd, F_SETLK, (void *)8));
    result("F_GETLK bad pointer", fcntl(fd, F_GETLK, NULL));
    l = range(F_WRLCK, 0, 1);
    result("F_SETLK bad fd", fcntl(99, F_SETLK, &l));
    int ro = open(path, O_RDONLY);
    result("F_SETLK write lock on a read-only descriptor", fcntl(ro, F_SETLK, &l));
    close(ro);
    close(fd);
}

static void ofd_locks(const char *path) {
    int a = open(path, O_RDWR), b = open(path, O_RDWR);
    struct flock l = range(F_WRLCK, 0, 10);
    result("F_OFD_SETLK a", fcntl(a, F_OFD_SETLK, &l));
    l = range(F_WRLCK, 5, 10);
    long r = fcntl(b, F_OFD_SETLK, &l);
    result("F_OFD_SETLK b conflicts", r == -1 && errno == EAGAIN);
    l = range(F_RDLCK, 0, 1);
    result("F_OFD_GETLK b", fcntl(b, F_OFD_GETLK, &l));
    printf("OFD owner: type %s pid %d\n", l.l_type == F_WRLCK ? "F_WRLCK" : "other", l.l_pid);
    l = range(F_WRLCK, 0, 1);
    l.l_pid = 1;
    result("F_OFD_SETLK with l_pid", fcntl(b, F_OFD_SETLK, &l));
    close(a);
    l = range(F_WRLCK, 5, 10);
    result("F_OFD_SETLKW b after a closed", fcntl(b, F_OFD_SETLKW, &l));
    close(b);
}

static void pipes_owners_seals(const char *dir, const char *path) {
    int p[2];
    pipe(p);
    result("F_GETPIPE_SZ", fcntl(p[0], F_GETPIPE_SZ));
    result("F_SETPIPE_SZ", fcntl(p[1], F_SETPIPE_SZ, 200000));
    result("F_GETPIPE_SZ after", fcntl(p[0], F_GETPIPE_SZ));
    int f = open(path, O_RDONLY);
    result("F_GETPIPE_SZ on a file", fcntl(f, F_GETPIPE_SZ));

    result("F_SETOWN pid", fcntl(p[0], F_SETOWN, getpid()));
    result("F_GETOWN is pid", fcntl(p[0], F_GETOWN) == getpid());
    result("F_SETOWN group", fcntl(p[0], F_SETOWN, -getpgrp()));
    result("F_GETOWN is -group", fcntl(p[0], F_GETOWN) == -getpgrp());
    struct f_owner_ex o = {.type = F_OWNER_TID, .pid = (pid_t)syscall(SYS_gettid)};
    result("F_SETOWN_EX tid", fcntl(p[0], F_SETOWN_EX, &o));
    struct f_owner_ex got = {0};
    result("F_GETOWN_EX", fcntl(p[0], F_GETOWN_EX, &got));
    result("F_GETOWN_EX is the tid", got.type == F_OWNER_TID && got.pid == o.pid);
    o.type = 77;
    result("F_SETOWN_EX bad type", fcntl(p[0], F_SETOWN_EX, &o));
    result("F_SETOWN_EX bad pointer", fcntl(p[0], F_SETOWN_EX, (void *)8));
    result("F_GETOWN_EX bad pointer", fcntl(p[0], F_GETOWN_EX, (void *)8));

    int m = memfd_create("sealed", MFD_ALLOW_SEALING);
    write(m, "data", 4);
    result("F_GET_SEALS", fcntl(m, F_GET_SEALS));
    result("F_ADD_SEALS", fcntl(m, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE));
    result("F_GET_SEALS after", fcntl(m, F_GET_SEALS));
    result("write to a sealed memfd", write(m, "x", 1));
    result("ftruncate a sealed memfd", ftruncate(m, 0));
    result("F_ADD_SEALS on a pipe", fcntl(p[0], F_ADD_SEALS, F_SEAL_WRITE));
    result("F_GET_SEALS on a pipe", fcntl(p[0], F_GET_SEALS));

    int d = open(dir, O_RDONLY | O_DIRECTORY);
    result("F_NOTIFY", fcntl(d, F_NOTIFY, DN_CREATE | DN_MULTISHOT));
    result("F_NOTIFY off", fcntl(d, F_NOTIFY, 0));
    result("F_NOTIFY on a file", fcntl(f, F_NOTIFY, DN_CREATE));

    result("F_GETLEASE", fcntl(f, F_GETLEASE));
    result("F_SETLEASE read", fcntl(f, F_SETLEASE, F_RDLCK));
    result("F_GETLEASE after", fcntl(f, F_GETLEASE));
    result("F_SETLEASE off", fcntl(f, F_SETLEASE, F_UNLCK));
    result("F_SETLEASE on a pipe", fcntl(p[0], F_SETLEASE, F_RDLCK));
    result("F_SETLEASE bad type", fcntl(f, F_SETLEASE, 42));
    result("unknown command", fcntl(f, 4242, 0));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2)
        return 2;
    char path[4096];
    snprintf(path, sizeof path, "%s/locked", argv[1]);
    posix_locks(path);
    ofd_locks(path);
    pipes_owners_seals(argv[1], path);
    printf("locks done\n");
    return 0;
}
