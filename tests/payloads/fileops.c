/* File operations and other descriptors real programs use: creat, chown, utimes,
 * flock, fallocate, sendfile, copy_file_range, preadv/pwritev, mkfifo, eventfd,
 * timerfd, memfd, inotify, and the process's ids, priority, usage and name.
 * Usage: fileops DIR. Every line is deterministic (compared with native). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/times.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <utime.h>

static void say(const char *what, long r) {
    if (r < 0)
        printf("%s: error %s\n", what, strerror(errno));
    else
        printf("%s: %ld\n", what, r);
}

int main(int argc, char **argv) {
    if (argc < 2 || chdir(argv[1]) != 0)
        return 2;
    int fd = creat("a", 0640);
    say("creat", fd >= 0);
    say("write", write(fd, "hello world\n", 12));
    say("fchown to myself", fchown(fd, getuid(), getgid()));
    say("chown to myself", chown("a", -1, getgid()));
    struct stat st;
    struct timespec ts[2] = {{1000000000, 5}, {1200000000, 7}};
    say("utimensat", utimensat(AT_FDCWD, "a", ts, 0));
    stat("a", &st);
    printf("mtime %ld.%09ld atime %ld\n", st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_atim.tv_sec);
    struct timeval tv[2] = {{1300000000, 1}, {1400000000, 2}};
    say("utimes", utimes("a", tv));
    stat("a", &st);
    printf("mtime %ld.%09ld\n", st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct utimbuf ub = {1500000000, 1600000000};
    say("utime", utime("a", &ub));
    stat("a", &st);
    printf("mtime %ld\n", st.st_mtim.tv_sec);
    say("futimens now", futimens(fd, NULL));
    int fd2 = open("a", O_RDWR);
    say("flock ex", flock(fd, LOCK_EX));
    say("flock ex nb on another open", flock(fd2, LOCK_EX | LOCK_NB));
    say("flock un", flock(fd, LOCK_UN));
    say("flock ex nb again", flock(fd2, LOCK_EX | LOCK_NB));
    say("fallocate", fallocate(fd, 0, 0, 8192));
    fstat(fd, &st);
    printf("size after fallocate %ld\n", (long)st.st_size);
    say("posix_fadvise", posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL));
    int out = open("b", O_CREAT | O_RDWR | O_TRUNC, 0600);
    off_t off = 6;
    say("sendfile", sendfile(out, fd2, &off, 5));
    printf("sendfile offset now %ld\n", (long)off);
    loff_t in_off = 0;
    say("copy_file_range", copy_file_range(fd2, &in_off, out, NULL, 5, 0));
    char buf[32] = {0}, more[32] = {0};
    struct iovec iov[2] = {{buf, 5}, {more, 5}};
    say("preadv", preadv(out, iov, 2, 0));
    printf("preadv got [%s][%s]\n", buf, more);
    struct iovec wv[2] = {{"AB", 2}, {"CD", 2}};
    say("pwritev", pwritev(out, wv, 2, 1));
    memset(buf, 0, sizeof buf);
    pread(out, buf, 10, 0);
    printf("after pwritev [%s]\n", buf);
    say("setxattr", setxattr("a", "user.km", "v1", 2, 0));
    say("fsetxattr create existing", fsetxattr(fd, "user.km", "v2", 2, XATTR_CREATE));
    memset(buf, 0, sizeof buf);
    say("getxattr", getxattr("a", "user.km", buf, sizeof buf));
    printf("xattr value [%s]\n", buf);
    say("removexattr", removexattr("a", "user.km"));
    say("removexattr again", removexattr("a", "user.km"));
    say("mkfifo", mkfifo("fifo", 0600));
    lstat("fifo", &st);
    printf("fifo is a fifo: %d\n", S_ISFIFO(st.st_mode));
    sync();
    say("syncfs", syncfs(fd));
    int efd = eventfd(3, EFD_CLOEXEC);
    uint64_t v = 4;
    write(efd, &v, 8);
    read(efd, &v, 8);
    printf("eventfd sum %lu cloexec %d\n", (unsigned long)v, fcntl(efd, F_GETFD));
    int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec its = {{0, 0}, {0, 20 * 1000 * 1000}};
    say("timerfd_settime", timerfd_settime(tfd, 0, &its, NULL));
    read(tfd, &v, 8);
    printf("timerfd expirations %lu\n", (unsigned long)v);
    int mfd = memfd_create("km-test", MFD_CLOEXEC);
    write(mfd, "in memory", 9);
    lseek(mfd, 3, SEEK_SET);
    memset(buf, 0, sizeof buf);
    read(mfd, buf, 6);
    printf("memfd [%s] cloexec %d\n", buf, fcntl(mfd, F_GETFD));
    int ifd = inotify_init1(IN_CLOEXEC);
    int wd = inotify_add_watch(ifd, ".", IN_CREATE);
    close(creat("watched", 0600));
    char ev[256];
    ssize_t n = read(ifd, ev, sizeof ev);
    struct inotify_event *e = (struct inotify_event *)ev;
    printf("inotify: %d event for %s (wd ok %d)\n", n > 0 && (e->mask & IN_CREATE) != 0, n > 0 ? e->name : "-", e->wd == wd);
    say("inotify_rm_watch", inotify_rm_watch(ifd, wd));
    /* select: a pipe becomes readable; an empty one times out. */
    int sp[2];
    pipe(sp);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(sp[0], &rs);
    struct timeval zero = {0, 20000};
    int ready = select(sp[0] + 1, &rs, NULL, NULL, &zero);
    printf("select on an empty pipe: %d, still set %d\n", ready, FD_ISSET(sp[0], &rs));
    write(sp[1], "x", 1);
    FD_SET(sp[0], &rs);
    fd_set ws;
    FD_ZERO(&ws);
    FD_SET(sp[1], &ws);
    ready = select(sp[1] + 1, &rs, &ws, NULL, NULL);
    printf("select readable and writable: %d (%d %d)\n", ready, FD_ISSET(sp[0], &rs), FD_ISSET(sp[1], &ws));
    int gone = dup(0);
    close(gone);
    FD_ZERO(&rs);
    FD_SET(gone, &rs);
    ready = select(gone + 1, &rs, NULL, NULL, &zero);
    printf("select on a closed descriptor: %d %s\n", ready, ready < 0 ? strerror(errno) : "");
    /* A shared file mapping written and synced; locking and residency. */
    int mf = open("mapped", O_CREAT | O_RDWR | O_TRUNC, 0600);
    ftruncate(mf, 4096);
    char *map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, mf, 0);
    memcpy(map, "synced", 6);
    say("msync", msync(map, 4096, MS_SYNC));
    memset(buf, 0, sizeof buf);
    pread(mf, buf, 6, 0);
    printf("file after msync [%s]\n", buf);
    say("mlock", mlock(map, 100));
    say("munlock", munlock(map, 100));
    unsigned char vec[1];
    say("mincore", mincore(map, 4096, vec));
    munmap(map, 4096);
    say("msync unmapped", msync(map, 4096, MS_SYNC));
    say("sched_get_priority_max(SCHED_FIFO)", sched_get_priority_max(SCHED_FIFO));
    uid_t r, eu, s;
    getresuid(&r, &eu, &s);
    printf("getresuid matches getuid: %d\n", r == getuid() && eu == geteuid());
    printf("getgroups count > 0: %d\n", getgroups(0, NULL) > 0);
    errno = 0;
    int prio = getpriority(PRIO_PROCESS, 0);
    printf("getpriority ok: %d\n", errno == 0 && prio >= -20 && prio <= 19);
    struct rusage ru;
    say("getrusage", getrusage(RUSAGE_SELF, &ru));
    struct tms tm;
    printf("times ok: %d\n", times(&tm) != (clock_t)-1);
    say("prctl set name", prctl(PR_SET_NAME, "renamed-thread"));
    char name[16] = {0};
    prctl(PR_GET_NAME, name);
    printf("prctl name [%s]\n", name);
    printf("personality %d\n", personality(0xffffffff));
    return 0;
}
