// Lists /proc/self/fd with getdents64 in small pieces and closes each descriptor
// as it is listed (as CPython's subprocess does with close_fds=True): no
// descriptor may be skipped. Also seekdir/telldir on the listing. The output must
// be the same natively and under km.
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define OPENED 60

struct linux_dirent64 {
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static int opened[OPENED];

static void open_many(void) {
    for (int i = 0; i < OPENED; i++)
        opened[i] = open("/dev/null", O_RDONLY);
}

// How many of the descriptors open_many opened are still open.
static int count_open(void) {
    int n = 0;
    for (int i = 0; i < OPENED; i++)
        if (opened[i] >= 0 && fcntl(opened[i], F_GETFD) >= 0)
            n++;
    return n;
}

static void close_while_listing(int pieces) {
    open_many();
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY);
    printf("open before (%d-byte pieces): %d\n", pieces, count_open());
    char buf[256];
    int calls = 0;
    long n;
    while ((n = syscall(SYS_getdents64, dir, buf, pieces)) > 0) {
        calls++;
        for (long off = 0; off < n;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
            int fd = atoi(d->d_name);
            if (d->d_name[0] != '.' && fd > 2 && fd != dir)
                close(fd);
            off += d->d_reclen;
        }
    }
    printf("getdents64 end: %ld, several calls: %d\n", n, calls > 3);
    printf("open after: %d\n", count_open());
    close(dir);
}

static void seek_and_tell(void) {
    int fds[5];
    for (int i = 0; i < 5; i++)
        fds[i] = open("/dev/null", O_RDONLY);
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long mark = -1;
    char after_mark[300] = "";
    while ((e = readdir(d))) {
        if (atoi(e->d_name) == fds[1]) {
            mark = telldir(d);
            e = readdir(d);
            snprintf(after_mark, sizeof after_mark, "%s", e ? e->d_name : "end");
            break;
        }
    }
    close(fds[2]);
    seekdir(d, mark);
    e = readdir(d);
    // fds[2] was listed right after the mark; once closed, the next one is.
    printf("after the mark: was fds[2] %d, now fds[3] %d\n",
           atoi(after_mark) == fds[2], e && atoi(e->d_name) == fds[3]);
    rewinddir(d);
    int entries = 0;
    while ((e = readdir(d)))
        entries++;
    printf("entries after rewind: %d\n", entries);
    closedir(d);
    char small[8];
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY);
    long r = syscall(SYS_getdents64, dir, small, sizeof small);
    printf("buffer too small: %ld\n", r);
    close(dir);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    close_while_listing(64);
    close_while_listing(100);
    seek_and_tell();
    printf("fdlisting done\n");
    return 0;
}
