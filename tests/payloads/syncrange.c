/* sync_file_range as PostgreSQL's checkpointer and initdb use it (km served it as
 * ENOSYS, and the server logged "could not flush dirty data"), each call printed
 * with its result or errno to compare with native: a written range, the whole
 * file, every flag Linux knows, unknown flags, negative offsets and lengths, an
 * overflowing range, a pipe, a read-only descriptor and descriptors that are not
 * open. Argument: a scratch directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void show(const char *what, long rc) {
    if (rc < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, rc);
}

static long sfr(int fd, int64_t off, int64_t len, unsigned flags) {
    return syscall(SYS_sync_file_range, fd, off, len, flags);
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    char path[4096];
    snprintf(path, sizeof path, "%s/data", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    char page[8192];
    memset(page, 'p', sizeof page);
    show("write", write(fd, page, sizeof page));
    const unsigned all = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                         SYNC_FILE_RANGE_WAIT_AFTER;
    show("write-out", sfr(fd, 0, sizeof page, SYNC_FILE_RANGE_WRITE));
    show("whole file", sfr(fd, 0, 0, all));
    show("no flags", sfr(fd, 0, 4096, 0));
    show("beyond the end", sfr(fd, 1 << 20, 4096, all));
    show("unknown flag", sfr(fd, 0, 4096, 8));
    show("negative offset", sfr(fd, -1, 4096, SYNC_FILE_RANGE_WRITE));
    show("negative length", sfr(fd, 0, -4096, SYNC_FILE_RANGE_WRITE));
    show("overflowing range", sfr(fd, INT64_MAX - 10, 4096, SYNC_FILE_RANGE_WRITE));
    int ro = open(path, O_RDONLY);
    show("read-only descriptor", sfr(ro, 0, 0, all));
    int p[2];
    show("pipe", pipe(p));
    show("pipe's end", sfr(p[1], 0, 0, SYNC_FILE_RANGE_WRITE));
    show("closed descriptor", sfr(p[1] + 10, 0, 0, SYNC_FILE_RANGE_WRITE));
    show("descriptor -1", sfr(-1, 0, 0, SYNC_FILE_RANGE_WRITE));
    show("descriptor 2^32", syscall(SYS_sync_file_range, 1L << 32 | fd, 0, 0, 0));
    char back[8192];
    show("pread", pread(fd, back, sizeof back, 0));
    printf("same bytes: %d\n", memcmp(back, page, sizeof page) == 0);
    printf("done\n");
    return 0;
}
