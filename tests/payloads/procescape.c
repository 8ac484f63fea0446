// Tries every way into km's own /proc an attacker would: each must give EACCES
// (or ENOENT) or the payload's own view, never km's memory, mappings or descriptors.
//   procescape            the escapes through the payload's own /proc
//   procescape other PID  another payload's /proc/PID: harmless files only
//   procescape wait       reads stdin to its end (the other payload)
//   procescape exec       what /proc/self/exe re-executes into
//   procescape environ    what /proc/self/environ holds
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *err(int e) {
    switch (e) {
    case 0: return "ok";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case ELOOP: return "ELOOP";
    case EPERM: return "EPERM";
    default: return strerror(e);
    }
}

// Opens with flags and reports ok or the errno; a successful open of anything
// that reads as memory would be a leak, so it also reads a byte at km's usual base.
static void try_open(const char *what, const char *path, int flags) {
    int fd = open(path, flags);
    if (fd < 0) {
        printf("%s: %s\n", what, err(errno));
        return;
    }
    printf("%s: opened\n", what);
    close(fd);
}

static void try_openat(const char *what, int dir, const char *path, int flags) {
    int fd = openat(dir, path, flags);
    printf("%s: %s\n", what, fd < 0 ? err(errno) : "opened");
    if (fd >= 0)
        close(fd);
}

static char *slurp(int fd) {
    static char buf[1 << 20];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += r;
    buf[n] = 0;
    return buf;
}

// Whether the address falls in one of the ranges of a maps text.
static int mapped_in(const char *maps, unsigned long addr) {
    for (const char *line = maps; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : 0) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= addr && addr < hi)
            return 1;
    }
    return 0;
}

static void maps_checks(void) {
    int self = open("/proc/self", O_RDONLY | O_DIRECTORY);
    const char *ways[] = {"/proc/self/./maps", "/proc/./self/maps", "/proc//self/maps",
                          "/proc/thread-self/maps"};
    for (unsigned i = 0; i < sizeof ways / sizeof *ways; i++) {
        int fd = open(ways[i], O_RDONLY);
        char *maps = fd < 0 ? 0 : slurp(fd);
        printf("%s maps the payload's code and stack: %d\n", ways[i],
               maps && mapped_in(maps, (unsigned long)&maps_checks) &&
                   mapped_in(maps, (unsigned long)&self));
        if (fd >= 0)
            close(fd);
    }
    int fd = openat(self, "maps", O_RDONLY);
    char *maps = fd < 0 ? 0 : slurp(fd);
    printf("openat(/proc/self, maps) maps the payload's code: %d\n",
           maps && mapped_in(maps, (unsigned long)&maps_checks));
    // The lines themselves, for the test to hold against km's own executable.
    if (maps)
        printf("maps begin\n%smaps end\n", maps);
    close(fd);
    close(self);
}

static void mem_checks(void) {
    char path[64];
    try_open("/proc/self/mem O_RDWR", "/proc/self/mem", O_RDWR);
    try_open("/proc/self/mem O_RDONLY", "/proc/self/mem", O_RDONLY);
    snprintf(path, sizeof path, "/proc/%d/mem", getpid());
    try_open("/proc/<getpid()>/mem", path, O_RDONLY);
    snprintf(path, sizeof path, "/proc/%ld/mem", (long)syscall(SYS_gettid));
    try_open("/proc/<gettid()>/mem", path, O_RDONLY);
    snprintf(path, sizeof path, "/proc/self/task/%ld/mem", (long)syscall(SYS_gettid));
    try_open("/proc/self/task/<tid>/mem", path, O_RDONLY);
    try_open("/proc/thread-self/mem", "/proc/thread-self/mem", O_RDONLY);
    try_open("/proc//self/mem", "/proc//self/mem", O_RDONLY);
    try_open("/proc/./self/mem", "/proc/./self/mem", O_RDONLY);
    try_open("/proc/self/../self/mem", "/proc/self/../self/mem", O_RDONLY);
    int self = open("/proc/self", O_RDONLY | O_DIRECTORY);
    try_openat("openat(/proc/self, mem)", self, "mem", O_RDONLY);
    int opath = open("/proc/self", O_PATH);
    snprintf(path, sizeof path, "/proc/self/fd/%d/mem", opath);
    try_open("/proc/self/fd/<O_PATH of /proc/self>/mem", path, O_RDONLY);
    close(opath);
    unlink("procescape.link");
    if (symlink("/proc/self/mem", "procescape.link") == 0) {
        try_open("a symlink to /proc/self/mem", "procescape.link", O_RDONLY);
        unlink("procescape.link");
    }
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) && chdir("/proc/self") == 0) {
        try_open("chdir(/proc/self) then mem", "mem", O_RDONLY);
        if (chdir(cwd) != 0)
            printf("chdir back failed\n");
    }
    const char *refused[] = {"pagemap", "syscall", "stack", "map_files", "ns/mnt", "wchan", "mem"};
    for (unsigned i = 0; i < sizeof refused / sizeof *refused; i++) {
        char what[64];
        snprintf(what, sizeof what, "openat(/proc/self, %s)", refused[i]);
        try_openat(what, self, refused[i], O_RDONLY);
    }
    close(self);
}

// Each entry of the fd directory (reached as dir) names one of the payload's own
// files; km's descriptors (KVM, guest memory) must never show.
static void fd_checks(const char *how, int dirfd) {
    DIR *d = fdopendir(dirfd);
    struct dirent *e;
    int entries = 0, leaks = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char target[4096];
        ssize_t n = readlinkat(dirfd, e->d_name, target, sizeof target - 1);
        if (n < 0) {
            printf("%s: readlink %s: %s\n", how, e->d_name, err(errno));
            continue;
        }
        target[n] = 0;
        entries++;
        if (fcntl(atoi(e->d_name), F_GETFD) < 0 || strstr(target, "kvm") || strstr(target, "memfd") ||
            strstr(target, "anon_inode")) {
            printf("%s: LEAK %s -> %s\n", how, e->d_name, target);
            leaks++;
        }
    }
    printf("%s: every entry is a payload descriptor: %d\n", how, entries > 0 && leaks == 0);
    closedir(d);
}

static void descriptor_checks(void) {
    int null = open("/dev/null", O_RDONLY);
    fd_checks("/proc/self/fd", open("/proc/self/fd", O_RDONLY | O_DIRECTORY));
    int self = open("/proc/self", O_RDONLY | O_DIRECTORY);
    fd_checks("openat(/proc/self, fd)", openat(self, "fd", O_RDONLY | O_DIRECTORY));
    fd_checks("/proc/self/./fd", open("/proc/self/./fd", O_RDONLY | O_DIRECTORY));
    close(self);
    // Numbers that are not the payload's name nothing, whatever km has there.
    int hidden = 1;
    for (int n = 0; n < 1024; n++) {
        char path[64], target[4096];
        struct stat st;
        struct statfs fs;
        if (fcntl(n, F_GETFD) >= 0)
            continue;
        snprintf(path, sizeof path, "/proc/self/fd/%d", n);
        if (readlink(path, target, sizeof target) >= 0 || errno != ENOENT || stat(path, &st) == 0 ||
            errno != ENOENT || open(path, O_RDONLY) >= 0 || errno != ENOENT ||
            linkat(AT_FDCWD, path, AT_FDCWD, "procescape.hard", AT_SYMLINK_FOLLOW) == 0 || errno != ENOENT ||
            truncate(path, 0) == 0 || errno != ENOENT || chmod(path, 0600) == 0 || errno != ENOENT ||
            chown(path, -1, -1) == 0 || errno != ENOENT || utimensat(AT_FDCWD, path, 0, 0) == 0 ||
            errno != ENOENT || statfs(path, &fs) == 0 || errno != ENOENT ||
            getxattr(path, "user.x", target, sizeof target) >= 0 || errno != ENOENT ||
            listxattr(path, target, sizeof target) >= 0 || errno != ENOENT ||
            setxattr(path, "user.x", "v", 1, 0) == 0 || errno != ENOENT ||
            removexattr(path, "user.x") == 0 || errno != ENOENT) {
            printf("fd %d that the payload does not have: %s\n", n, err(errno));
            hidden = 0;
        }
        snprintf(path, sizeof path, "/proc/self/fdinfo/%d", n);
        if (open(path, O_RDONLY) >= 0) {
            printf("fdinfo %d that the payload does not have opens\n", n);
            hidden = 0;
        }
    }
    printf("descriptors the payload does not have are not there: %d\n", hidden);
    char path[64], target[64] = {0};
    struct stat st, dn;
    snprintf(path, sizeof path, "/proc/self/fd/%d", null);
    ssize_t n = readlink(path, target, sizeof target - 1);
    printf("readlink /proc/self/fd/<null>: %s\n", n > 0 ? target : err(errno));
    printf("stat /proc/self/fd/<null> is /dev/null: %d\n",
           stat(path, &st) == 0 && stat("/dev/null", &dn) == 0 && st.st_rdev == dn.st_rdev);
    int again = open(path, O_WRONLY);
    printf("reopening /proc/self/fd/<null> for writing: %s\n", again >= 0 ? "ok" : err(errno));
    printf("write to it: %d\n", (int)write(again, "x", 1));
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", null);
    int info = open(path, O_RDONLY);
    printf("fdinfo of it has flags: %d\n", info >= 0 && strstr(slurp(info), "flags:") != 0);
    close(info);
    close(again);
    close(null);
    // A file of the payload's, linked back into the directory through its fd link.
    int file = open("procescape.file", O_CREAT | O_RDWR | O_TRUNC, 0600);
    snprintf(path, sizeof path, "/proc/self/fd/%d", file);
    unlink("procescape.hard");
    int linked = linkat(AT_FDCWD, path, AT_FDCWD, "procescape.hard", AT_SYMLINK_FOLLOW);
    printf("linkat through /proc/self/fd/<file>: %s, links %d\n", linked == 0 ? "ok" : err(errno),
           fstat(file, &st) == 0 ? (int)st.st_nlink : -1);
    unlink("procescape.hard");
    unlink("procescape.file");
    close(file);
    // Creating through the payload's magic links: its cwd, and a directory fd.
    int made = open("/proc/self/cwd/procescape.new", O_CREAT | O_EXCL | O_WRONLY, 0600);
    printf("create through /proc/self/cwd: %s\n", made >= 0 ? "ok" : err(errno));
    int again2 = open("/proc/self/cwd/procescape.new", O_CREAT | O_EXCL | O_WRONLY, 0600);
    printf("again with O_EXCL: %s\n", again2 >= 0 ? "ok" : strerror(errno));
    int here = open(".", O_RDONLY | O_DIRECTORY);
    snprintf(path, sizeof path, "/proc/self/fd/%d/procescape.new2", here);
    int made2 = open(path, O_CREAT | O_WRONLY, 0600);
    printf("create through /proc/self/fd/<dir>: %s\n", made2 >= 0 ? "ok" : err(errno));
    printf("truncate through /proc/self/fd/<dir>/file: %d\n", truncate(path, 0));
    unlink("procescape.new");
    unlink("procescape.new2");
    close(made);
    close(made2);
    close(here);
}

static void *sleeper(void *arg) {
    (void)arg;
    pause();
    return 0;
}

static void task_checks(void) {
    pthread_t t;
    pthread_create(&t, 0, sleeper, 0);
    usleep(10000);
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int tasks = 0, mine = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        tasks++;
        mine += atoi(e->d_name) == (int)syscall(SYS_gettid);
    }
    closedir(d);
    printf("/proc/self/task lists the payload's 2 threads: %d\n", tasks == 2 && mine == 1);
}

static void identity_checks(const char *argv0) {
    struct stat st, exe;
    printf("stat /proc/self/exe is the program: %d\n",
           stat("/proc/self/exe", &st) == 0 && stat(argv0, &exe) == 0 && st.st_ino == exe.st_ino &&
               st.st_dev == exe.st_dev);
    char target[4096];
    ssize_t n = readlink("/proc/self/exe", target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
    printf("readlink /proc/self/exe names the program: %d\n",
           n > 0 && strstr(target, "procescape") != 0);
    int fd = open("/proc/self/exe", O_RDONLY);
    struct stat opened;
    printf("open /proc/self/exe is the program: %d\n",
           fd >= 0 && fstat(fd, &opened) == 0 && opened.st_ino == exe.st_ino);
    close(fd);
    // Fields 26-30 and 45-51 of stat are addresses: km's would show km's layout.
    fd = open("/proc/self/stat", O_RDONLY);
    char *stat_line = fd < 0 ? 0 : slurp(fd);
    char *p = stat_line ? strrchr(stat_line, ')') : 0;
    unsigned long startcode = 1;
    if (p)
        sscanf(p + 2, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
                      "%*s %*s %*s %lu",
               &startcode);
    printf("/proc/self/stat startcode: %lu\n", startcode);
    close(fd);
}

static void other_checks(const char *pid) {
    const char *files[] = {"cmdline", "stat", "status", "comm", "mem", "maps", "smaps", "pagemap", "environ",
                           "auxv", "exe", "fd", "fdinfo", "task", "syscall", "cwd", "root"};
    for (unsigned i = 0; i < sizeof files / sizeof *files; i++) {
        char path[128], what[128];
        snprintf(path, sizeof path, "/proc/%s/%s", pid, files[i]);
        snprintf(what, sizeof what, "other %s", files[i]);
        try_open(what, path, O_RDONLY);
    }
    char path[128], target[4096];
    snprintf(path, sizeof path, "/proc/%s/exe", pid);
    printf("other readlink exe: %s\n", readlink(path, target, sizeof target) >= 0 ? "ok" : err(errno));
    snprintf(path, sizeof path, "/proc/%s/fd/0", pid);
    printf("other readlink fd/0: %s\n", readlink(path, target, sizeof target) >= 0 ? "ok" : err(errno));
    try_open("other fd/0", path, O_RDONLY);
    snprintf(path, sizeof path, "/proc/%s/task/%s/mem", pid, pid);
    try_open("other task mem", path, O_RDONLY);
    snprintf(path, sizeof path, "/proc/%s/task/%s/stat", pid, pid);
    try_open("other task stat", path, O_RDONLY);
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    if (argc > 2 && strcmp(argv[1], "other") == 0) {
        other_checks(argv[2]);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "wait") == 0) {
        printf("waiting\n");
        char c;
        while (read(0, &c, 1) > 0) {
        }
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "environ") == 0) {
        int fd = open("/proc/self/environ", O_RDONLY);
        char *env = fd < 0 ? 0 : slurp(fd);
        size_t n = 0;
        int visible = 0, secret = 0;
        // NUL-separated strings: walk them one by one.
        for (char *e = env; env && *e; e += strlen(e) + 1, n++) {
            visible |= strcmp(e, "PROCESCAPE_VISIBLE=1") == 0;
            secret |= strncmp(e, "PROCESCAPE_SECRET=", 18) == 0;
        }
        printf("environ: %zu strings, visible %d, secret %d\n", n, visible, secret);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "exec") == 0) {
        printf("re-executed through /proc/self/exe\n");
        return 0;
    }
    mem_checks();
    maps_checks();
    descriptor_checks();
    identity_checks(argv[0]);
    task_checks();
    fflush(stdout);
    char *args[] = {argv[0], "exec", 0};
    execv("/proc/self/exe", args);
    printf("execv /proc/self/exe: %s\n", err(errno));
    return 1;
}
