/* File I/O round trip in the directory given as argv[1]. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define CHECK(x) do { if (!(x)) { printf("FAILED: %s (errno %s)\n", #x, strerror(errno)); return 1; } } while (0)

int main(int argc, char **argv) {
    CHECK(argc == 2);
    CHECK(chdir(argv[1]) == 0);
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    printf("cwd is argv[1]: %d\n", strcmp(cwd, argv[1]) == 0);

    int fd = open("data.txt", O_CREAT | O_RDWR | O_TRUNC, 0640);
    CHECK(fd >= 0);
    printf("first fd: %d\n", fd);
    const char *text = "hello, file\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    struct iovec iov[2] = {{"vec", 3}, {"tor\n", 4}};
    CHECK(writev(fd, iov, 2) == 7);
    CHECK(pwrite(fd, "HELLO", 5, 0) == 5);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    char buf[64] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    printf("read %zd: %s", n, buf);
    memset(buf, 0, sizeof buf);
    CHECK(pread(fd, buf, 4, 7) == 4);
    printf("pread: %s\n", buf);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    printf("fstat size %lld mode %o regular %d\n", (long long)st.st_size, st.st_mode & 0777, S_ISREG(st.st_mode));
    int fd2 = dup(fd);
    printf("dup: %d\n", fd2);
    CHECK(dup2(fd, 10) == 10);
    CHECK(fcntl(10, F_GETFD) == 0);
    CHECK(fcntl(fd, F_SETFD, FD_CLOEXEC) == 0);
    printf("cloexec: %d\n", fcntl(fd, F_GETFD));
    CHECK(close(fd2) == 0 && close(10) == 0 && close(fd) == 0);
    printf("close again: %d %s\n", close(fd), strerror(errno));

    CHECK(mkdir("sub", 0755) == 0);
    CHECK(rename("data.txt", "sub/moved.txt") == 0);
    CHECK(stat("sub/moved.txt", &st) == 0);
    printf("stat after rename: %lld\n", (long long)st.st_size);
    printf("stat old name: %d %s\n", stat("data.txt", &st), strerror(errno));
    CHECK(symlink("sub/moved.txt", "link") == 0);
    char target[64] = {0};
    printf("readlink: %zd %s\n", readlink("link", target, sizeof target - 1), target);
    CHECK(lstat("link", &st) == 0);
    printf("lstat is link: %d\n", S_ISLNK(st.st_mode));
    printf("access: %d\n", access("sub/moved.txt", R_OK | W_OK));

    DIR *d = opendir("sub");
    CHECK(d != NULL);
    struct dirent *e;
    int entries = 0;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            printf("entry: %s\n", e->d_name), entries++;
    closedir(d);
    printf("entries: %d\n", entries);

    int p[2];
    CHECK(pipe(p) == 0);
    CHECK(write(p[1], "through a pipe", 14) == 14);
    memset(buf, 0, sizeof buf);
    CHECK(read(p[0], buf, sizeof buf) == 14);
    printf("pipe: %s\n", buf);

    FILE *f = fopen("sub/moved.txt", "r");
    CHECK(f != NULL);
    while (fgets(buf, sizeof buf, f))
        printf("line: %s", buf);
    fclose(f);
    CHECK(unlink("link") == 0);
    CHECK(unlink("sub/moved.txt") == 0);
    printf("rmdir: %d\n", rmdir("sub"));
    printf("open missing: %d %s\n", open("missing", O_RDONLY), strerror(errno));
    return 0;
}
