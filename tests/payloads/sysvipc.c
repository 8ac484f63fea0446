/* System V semaphores and message queues, and openat2 (issue 13, item 7), each
 * result printed for comparison with native. Semaphores: GETALL/SETALL and the
 * other semctl commands, a waiter in another process, SEM_UNDO applied when a
 * process exits (and not inherited by its fork child), a blocking semop in a
 * thread while the others run, interrupted by a signal (EINTR, the handler ran),
 * and ended by IPC_RMID (EIDRM). Message queues: by type, MSG_EXCEPT, MSG_NOERROR
 * truncation, E2BIG, IPC_NOWAIT's ENOMSG, MSG_COPY, blocking msgrcv and msgsnd
 * interrupted by a signal. openat2: RESOLVE_BENEATH, RESOLVE_IN_ROOT,
 * RESOLVE_NO_SYMLINKS, RESOLVE_NO_MAGICLINKS, /proc through it, the size and flag
 * checks. Garbage pointers give EFAULT throughout. Argument: a scratch directory.
 * Every IPC object made here is removed before the end. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BAD ((void *)8)
#define SYS_OPENAT2 437
#define SEM_INFO_CMD 19
#define IPC_64_FLAG 0x100
#define MSG_COPY_FLAG 040000

struct how {
    uint64_t flags, mode, resolve;
};
#define R_NO_XDEV 0x01
#define R_NO_MAGICLINKS 0x02
#define R_NO_SYMLINKS 0x04
#define R_BENEATH 0x08
#define R_IN_ROOT 0x10

union semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
};

struct text {
    long mtype;
    char mtext[64];
};

static const char *errname(int e) {
    switch (e) {
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case E2BIG: return "E2BIG";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case EIDRM: return "EIDRM";
    case ENOMSG: return "ENOMSG";
    case EFBIG: return "EFBIG";
    case ERANGE: return "ERANGE";
    case EXDEV: return "EXDEV";
    case ELOOP: return "ELOOP";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EBADF: return "EBADF";
    default: return "other";
    }
}

static void show(const char *what, long rc) {
    if (rc < 0)
        printf("%s: %s\n", what, errname(errno));
    else
        printf("%s: %ld\n", what, rc);
}

static volatile sig_atomic_t handled;
static void on_signal(int sig) { handled = sig; }

static void handle(int sig, int flags) {
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sa.sa_flags = flags;
    sigaction(sig, &sa, NULL);
}

/* A child that sends `sig` to its parent every 20 ms until killed: whenever the
 * parent reaches its blocking call, a signal soon interrupts it. */
static pid_t pinger(int sig) {
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        for (;;) {
            usleep(20000);
            kill(parent, sig);
        }
    }
    return child;
}

static void stop(pid_t child) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
}

/* Waits until `n` processes or threads wait on semaphore `num` of set `id`. */
static void until_waiting(int id, int num, int n) {
    while (semctl(id, num, GETNCNT) != n)
        usleep(1000);
}

static int value(int id, int num) { return semctl(id, num, GETVAL); }

static long semop1(int id, int num, int op, int flags) {
    struct sembuf b = {.sem_num = num, .sem_op = op, .sem_flg = flags};
    return semop(id, &b, 1);
}

static void *thread_waits(void *arg) {
    int id = *(int *)arg;
    long r = semop1(id, 2, -1, 0);
    printf("thread's semop: %ld\n", r);
    return NULL;
}

static void semaphores(void) {
    int id = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
    show("semget", id < 0 ? -1 : 0);
    unsigned short set[3] = {1, 2, 3}, got[3] = {0};
    show("SETALL", semctl(id, 0, SETALL, (union semun){.array = set}));
    show("GETALL", semctl(id, 0, GETALL, (union semun){.array = got}));
    printf("values %d %d %d\n", got[0], got[1], got[2]);
    struct semid_ds ds;
    show("IPC_STAT", semctl(id, 0, IPC_STAT, (union semun){.buf = &ds}));
    printf("nsems %lu mode %o\n", (unsigned long)ds.sem_nsems, ds.sem_perm.mode & 0777);
    ds.sem_perm.mode = 0640;
    show("IPC_SET", semctl(id, 0, IPC_SET, (union semun){.buf = &ds}));
    semctl(id, 0, IPC_STAT, (union semun){.buf = &ds});
    printf("mode now %o\n", ds.sem_perm.mode & 0777);
    show("SETVAL 0 to 5", semctl(id, 0, SETVAL, (union semun){.val = 5}));
    show("GETVAL 0", semctl(id, 0, GETVAL));
    show("SETVAL out of range", semctl(id, 0, SETVAL, (union semun){.val = 40000}));
    show("GETVAL bad number", semctl(id, 7, GETVAL));
    show("GETPID is mine", semctl(id, 0, GETPID) == getpid() ? 1 : 0);
    show("GETZCNT", semctl(id, 0, GETZCNT));
    struct seminfo info;
    long top = semctl(id, 0, IPC_INFO, (union semun){.buf = (void *)&info});
    show("IPC_INFO", top < 0 ? -1 : 0);
    printf("semopm %d semvmx %d\n", info.semopm, info.semvmx);
    show("SEM_INFO", semctl(id, 0, SEM_INFO_CMD, (union semun){.buf = (void *)&info}) < 0 ? -1 : 0);
    show("SEM_STAT of its index", semctl(id & 0x7fff, 0, SEM_STAT, (union semun){.buf = &ds}) == id ? 1 : 0);
    show("GETALL bad pointer", semctl(id, 0, GETALL, (union semun){.array = BAD}));
    show("SETALL bad pointer", semctl(id, 0, SETALL, (union semun){.array = BAD}));
    show("IPC_STAT bad pointer", semctl(id, 0, IPC_STAT, (union semun){.buf = BAD}));
    show("IPC_SET bad pointer", semctl(id, 0, IPC_SET, (union semun){.buf = BAD}));
    show("IPC_INFO bad pointer", semctl(id, 0, IPC_INFO, (union semun){.buf = BAD}));
    show("IPC_STAT|IPC_64", syscall(SYS_semctl, id, 0, IPC_STAT | IPC_64_FLAG, &ds));
    show("bad command", semctl(id, 0, 77));
    show("negative id", semctl(-1, 0, GETVAL));

    /* semop's argument checks, in Linux's order. */
    struct sembuf ops[2] = {{0, -1, 0}, {1, 1, 0}};
    show("semop two", semop(id, ops, 2));
    show("GETVAL 0 after", value(id, 0));
    show("semop none", semop(id, ops, 0));
    struct sembuf *many = calloc(info.semopm + 1, sizeof *many);
    show("semop SEMOPM+1", semop(id, many, info.semopm + 1));
    show("semop SEMOPM+1 bad pointer", semop(id, BAD, info.semopm + 1));
    free(many);
    show("semop bad pointer", semop(id, BAD, 1));
    show("semop bad semaphore", semop1(id, 9, 1, 0));
    show("semop too large", semop1(id, 0, 32767, 0));
    show("semop would block, IPC_NOWAIT", semop1(id, 2, -4, IPC_NOWAIT));
    struct timespec short_wait = {0, 30000000}, bad_ts = {0, 2000000000};
    struct sembuf block = {2, -4, 0};
    show("semtimedop timed out", semtimedop(id, &block, 1, &short_wait));
    show("semtimedop bad timespec", semtimedop(id, &block, 1, &bad_ts));
    show("semtimedop bad timeout pointer", semtimedop(id, &block, 1, BAD));
    show("semtimedop zero", semtimedop(id, &block, 0, BAD));

    /* A waiter in another process, woken by this one. */
    semctl(id, 2, SETVAL, (union semun){.val = 0});
    pid_t child = fork();
    if (child == 0) {
        long r = semop1(id, 2, -1, 0);
        printf("child woken: %ld, value %d\n", r, value(id, 2));
        fflush(stdout);
        _exit(0);
    }
    until_waiting(id, 2, 1);
    show("GETNCNT with the child waiting", semctl(id, 2, GETNCNT));
    long woke = semop1(id, 2, 1, 0);
    waitpid(child, NULL, 0);
    show("wake the child", woke);

    /* SEM_UNDO: the child's adjustment is undone when it exits; its own child
     * inherits none, so that one's exit changes nothing. */
    semctl(id, 1, SETVAL, (union semun){.val = 10});
    child = fork();
    if (child == 0) {
        semop1(id, 1, 5, SEM_UNDO);
        semop1(id, 1, -2, SEM_UNDO);
        printf("child after SEM_UNDO ops: %d\n", value(id, 1));
        pid_t grandchild = fork();
        if (grandchild == 0) {
            semop1(id, 1, 1, 0);
            _exit(0);
        }
        waitpid(grandchild, NULL, 0);
        printf("after its fork child exited: %d\n", value(id, 1));
        fflush(stdout);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    printf("after the child exited: %d\n", value(id, 1));
    /* Killed, too. */
    child = fork();
    if (child == 0) {
        semop1(id, 1, 7, SEM_UNDO);
        for (;;)
            pause();
    }
    while (value(id, 1) != 18)
        usleep(1000);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    printf("after the child was killed: %d\n", value(id, 1));

    /* A thread blocks in semop; the others go on, and release it. */
    pthread_t t;
    pthread_create(&t, NULL, thread_waits, &id);
    until_waiting(id, 2, 1);
    printf("main thread runs while the thread waits\n");
    fflush(stdout);
    semop1(id, 2, 1, 0);
    pthread_join(t, NULL);

    /* Interrupted by a signal: EINTR and the handler ran, with SA_RESTART too. */
    for (int restart = 0; restart < 2; restart++) {
        handle(SIGUSR1, restart ? SA_RESTART : 0);
        handled = 0;
        pid_t p = pinger(SIGUSR1);
        long r = semop1(id, 2, -1, 0);
        stop(p);
        printf("semop under signals%s: %s, handler %s\n", restart ? " (SA_RESTART)" : "",
               r < 0 ? errname(errno) : "returned", handled == SIGUSR1 ? "ran" : "did not run");
    }
    handled = 0;
    pid_t p = pinger(SIGUSR1);
    long r = semtimedop(id, &block, 1, &(struct timespec){30, 0});
    stop(p);
    printf("semtimedop under signals: %s, handler %s\n", r < 0 ? errname(errno) : "returned",
           handled ? "ran" : "did not run");

    /* IPC_RMID while a child waits: EIDRM there. */
    child = fork();
    if (child == 0) {
        long r = semop1(id, 2, -1, 0);
        printf("waiter after IPC_RMID: %s\n", r < 0 ? errname(errno) : "returned");
        fflush(stdout);
        _exit(0);
    }
    until_waiting(id, 2, 1);
    long removed = semctl(id, 0, IPC_RMID);
    waitpid(child, NULL, 0);
    show("IPC_RMID", removed);
    show("semop after IPC_RMID", semop1(id, 0, 1, 0));
}

static long send(int q, long type, const char *s, int flags) {
    struct text m = {.mtype = type};
    strcpy(m.mtext, s);
    return msgsnd(q, &m, strlen(s), flags);
}

static void receive(int q, const char *what, size_t size, long type, int flags) {
    struct text m = {0};
    long n = msgrcv(q, &m, size, type, flags);
    if (n < 0)
        printf("%s: %s\n", what, errname(errno));
    else
        printf("%s: type %ld, %ld bytes: %.*s\n", what, m.mtype, n, (int)n, m.mtext);
}

static void queues(void) {
    int q = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    show("msgget", q < 0 ? -1 : 0);
    show("send 1", send(q, 1, "one", 0));
    show("send 2", send(q, 2, "two", 0));
    show("send 3", send(q, 3, "three", 0));
    show("send 1 again", send(q, 1, "uno", 0));
    receive(q, "type 2", 64, 2, 0);
    receive(q, "any type", 64, 0, 0);
    receive(q, "lowest type up to 3", 64, -3, 0);
    receive(q, "except type 1", 64, 1, MSG_EXCEPT);
    receive(q, "empty, IPC_NOWAIT", 64, 0, IPC_NOWAIT);
    send(q, 5, "hello world", 0);
    receive(q, "too small", 5, 0, 0);
    receive(q, "MSG_NOERROR", 5, 0, MSG_NOERROR);
    send(q, 6, "copied", 0);
    receive(q, "MSG_COPY", 64, 0, MSG_COPY_FLAG | IPC_NOWAIT);
    receive(q, "MSG_COPY without IPC_NOWAIT", 64, 0, MSG_COPY_FLAG);
    receive(q, "MSG_COPY with MSG_EXCEPT", 64, 0, MSG_COPY_FLAG | IPC_NOWAIT | MSG_EXCEPT);
    receive(q, "after the copy", 64, 0, 0);
    struct msqid_ds ds;
    show("IPC_STAT", msgctl(q, IPC_STAT, &ds));
    printf("qnum %lu cbytes %lu lspid mine %d lrpid mine %d\n", (unsigned long)ds.msg_qnum,
           (unsigned long)ds.__msg_cbytes, ds.msg_lspid == getpid(), ds.msg_lrpid == getpid());
    struct msginfo info;
    show("IPC_INFO", msgctl(q, IPC_INFO, (void *)&info) < 0 ? -1 : 0);
    printf("msgmax %d msgmnb %d\n", info.msgmax, info.msgmnb);
    char *big = calloc(1, 8 + info.msgmax + 1);
    *(long *)big = 1;
    show("send MSGMAX+1", msgsnd(q, big, info.msgmax + 1, IPC_NOWAIT));
    show("send MSGMAX", msgsnd(q, big, info.msgmax, IPC_NOWAIT));
    show("receive MSGMAX", msgrcv(q, big, info.msgmax, 0, IPC_NOWAIT));
    free(big);
    show("send type 0", send(q, 0, "x", 0));
    show("send bad pointer", msgsnd(q, BAD, 4, 0));
    show("send negative size", msgsnd(q, &(struct text){.mtype = 1}, (size_t)-1, 0));
    send(q, 7, "lost", 0);
    show("receive into a bad pointer", msgrcv(q, BAD, 64, 0, 0));
    msgctl(q, IPC_STAT, &ds);
    printf("qnum after that %lu\n", (unsigned long)ds.msg_qnum);
    show("receive negative size", msgrcv(q, &ds, (size_t)-1, 0, 0));
    show("IPC_STAT bad pointer", msgctl(q, IPC_STAT, BAD));
    show("IPC_SET bad pointer", msgctl(q, IPC_SET, BAD));
    show("bad command", msgctl(q, 77, &ds));
    show("IPC_STAT|IPC_64", syscall(SYS_msgctl, q, IPC_STAT | IPC_64_FLAG, &ds));
    msgctl(q, IPC_STAT, &ds);
    ds.msg_qbytes = 64;
    show("IPC_SET qbytes 64", msgctl(q, IPC_SET, &ds));
    msgctl(q, IPC_STAT, &ds);
    printf("qbytes now %lu\n", (unsigned long)ds.msg_qbytes);

    /* Blocking msgrcv and msgsnd under signals: EINTR, the handler ran. */
    handle(SIGUSR2, SA_RESTART);
    handled = 0;
    pid_t p = pinger(SIGUSR2);
    struct text m;
    long r = msgrcv(q, &m, sizeof m.mtext, 99, 0);
    stop(p);
    printf("msgrcv under signals: %s, handler %s\n", r < 0 ? errname(errno) : "returned",
           handled ? "ran" : "did not run");
    int sent = 0;
    while (send(q, 1, "0123456789abcdef", IPC_NOWAIT) == 0)
        sent++;
    printf("queue full after %d messages: %s\n", sent, errname(errno));
    handled = 0;
    p = pinger(SIGUSR2);
    r = send(q, 1, "0123456789abcdef", 0);
    stop(p);
    printf("msgsnd under signals: %s, handler %s\n", r < 0 ? errname(errno) : "returned",
           handled ? "ran" : "did not run");
    /* A receiver in another process. */
    pid_t child = fork();
    if (child == 0) {
        struct text m = {0};
        long n = msgrcv(q, &m, sizeof m.mtext, 42, 0);
        printf("child received %ld bytes: %.*s\n", n, (int)n, m.mtext);
        fflush(stdout);
        _exit(0);
    }
    while (msgrcv(q, &m, sizeof m.mtext, 1, IPC_NOWAIT) >= 0)
        ;
    send(q, 42, "for the child", 0);
    waitpid(child, NULL, 0);
    show("IPC_RMID", msgctl(q, IPC_RMID, NULL));
    show("send after IPC_RMID", send(q, 1, "x", IPC_NOWAIT));
}

static long open2(int dir, const char *path, uint64_t flags, uint64_t resolve) {
    struct how h = {.flags = flags, .resolve = resolve};
    return syscall(SYS_OPENAT2, dir, path, &h, sizeof h);
}

static void opened(const char *what, long fd) {
    if (fd < 0) {
        printf("%s: %s\n", what, errname(errno));
        return;
    }
    char buf[64] = {0};
    long n = read(fd, buf, sizeof buf - 1);
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = 0;
    printf("%s: reads %ld: %s\n", what, n, buf);
    close(fd);
}

/* 0 for a descriptor, which is closed; an error as it is. */
static long closed(long fd) {
    if (fd >= 0)
        close(fd);
    return fd < 0 ? fd : 0;
}

static void openat2_calls(const char *scratch) {
    char path[4096];
    snprintf(path, sizeof path, "%s/sub", scratch);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/sub/file", scratch);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    write(fd, "inside\n", 7);
    close(fd);
    snprintf(path, sizeof path, "%s/link", scratch);
    symlink("sub/file", path);
    snprintf(path, sizeof path, "%s/up", scratch);
    symlink("..", path);
    snprintf(path, sizeof path, "%s/abs", scratch);
    symlink("/sub/file", path);
    int dir = open(scratch, O_RDONLY | O_DIRECTORY);

    opened("plain", open2(dir, "sub/file", O_RDONLY, 0));
    opened("beneath", open2(dir, "sub/file", O_RDONLY, R_BENEATH));
    opened("beneath ..", open2(dir, "sub/../link", O_RDONLY, R_BENEATH));
    opened("beneath escaping", open2(dir, "../x", O_RDONLY, R_BENEATH));
    opened("beneath escaping by a link", open2(dir, "up/x", O_RDONLY, R_BENEATH));
    opened("beneath absolute", open2(dir, "/etc/hostname", O_RDONLY, R_BENEATH));
    opened("in root absolute", open2(dir, "/sub/file", O_RDONLY, R_IN_ROOT));
    opened("in root absolute link", open2(dir, "abs", O_RDONLY, R_IN_ROOT));
    opened("in root up", open2(dir, "up/up/sub/file", O_RDONLY, R_IN_ROOT));
    opened("absolute link without", open2(dir, "abs", O_RDONLY, 0));
    opened("no symlinks", open2(dir, "link", O_RDONLY, R_NO_SYMLINKS));
    show("no symlinks, O_PATH|O_NOFOLLOW", closed(open2(dir, "link", O_PATH | O_NOFOLLOW, R_NO_SYMLINKS)));
    opened("no xdev", open2(dir, "link", O_RDONLY, R_NO_XDEV));
    opened("no xdev to /proc", open2(AT_FDCWD, "/proc/self/status", O_RDONLY, R_NO_XDEV));
    opened("no magic links to a file", open2(dir, "link", O_RDONLY, R_NO_MAGICLINKS));
    /* Through /proc: the payload's own files and descriptors. */
    opened("/proc/self/status", open2(AT_FDCWD, "/proc/self/status", O_RDONLY, R_NO_MAGICLINKS));
    int self = open("/proc/self", O_RDONLY | O_DIRECTORY);
    opened("status beneath /proc/self", open2(self, "status", O_RDONLY, R_BENEATH));
    opened("comm in root /proc/self", open2(self, "/comm", O_RDONLY, R_IN_ROOT));
    snprintf(path, sizeof path, "/proc/self/fd/%d", dir);
    char inside[4200];
    snprintf(inside, sizeof inside, "%s/sub/file", path);
    opened("fd link, no magic links", open2(AT_FDCWD, inside, O_RDONLY, R_NO_MAGICLINKS));
    opened("fd link, no symlinks", open2(AT_FDCWD, inside, O_RDONLY, R_NO_SYMLINKS));
    opened("fd link, plain", open2(AT_FDCWD, inside, O_RDONLY, 0));
    int fds = open("/proc/self/fd", O_RDONLY | O_DIRECTORY);
    char name[16];
    snprintf(name, sizeof name, "%d", dir);
    show("fd entry beneath /proc/self/fd", closed(open2(fds, name, O_RDONLY | O_DIRECTORY, R_BENEATH)));
    show("fd entry, plain", closed(open2(fds, name, O_RDONLY | O_DIRECTORY, 0)));
    close(fds);
    close(self);

    /* struct open_how's checks. */
    struct {
        struct how h;
        uint64_t extra;
    } big = {{O_RDONLY, 0, 0}, 0};
    show("size 23", syscall(SYS_OPENAT2, dir, "sub/file", &big, 23));
    show("size 32, zero tail", closed(syscall(SYS_OPENAT2, dir, "sub/file", &big, 32)));
    big.extra = 1;
    show("size 32, non-zero tail", syscall(SYS_OPENAT2, dir, "sub/file", &big, 32));
    char *page = calloc(1, 8192);
    show("size 4097", syscall(SYS_OPENAT2, dir, "sub/file", page, 4097));
    free(page);
    show("how bad pointer", syscall(SYS_OPENAT2, dir, "sub/file", BAD, 24));
    show("path bad pointer", open2(dir, BAD, O_RDONLY, 0));
    show("unknown flag", open2(dir, "sub/file", O_RDONLY | (1ull << 40), 0));
    show("unknown flag bit 28", open2(dir, "sub/file", O_RDONLY | (1u << 28), 0));
    show("unknown resolve", open2(dir, "sub/file", O_RDONLY, 0x40));
    show("beneath and in root", open2(dir, "sub/file", O_RDONLY, R_BENEATH | R_IN_ROOT));
    struct how h = {O_RDONLY, 0600, 0};
    show("mode without O_CREAT", syscall(SYS_OPENAT2, dir, "sub/file", &h, sizeof h));
    h = (struct how){O_RDONLY | O_CREAT, 010600, 0};
    show("mode with a type", syscall(SYS_OPENAT2, dir, "sub/new", &h, sizeof h));
    h = (struct how){O_PATH | O_RDWR, 0, 0};
    show("O_PATH with O_RDWR", syscall(SYS_OPENAT2, dir, "sub/file", &h, sizeof h));
    h = (struct how){O_RDONLY | O_TMPFILE, 0600, 0};
    show("O_TMPFILE read-only", syscall(SYS_OPENAT2, dir, "sub", &h, sizeof h));
    h = (struct how){O_RDONLY | O_TRUNC, 0, 0x20};
    show("RESOLVE_CACHED with O_TRUNC", syscall(SYS_OPENAT2, dir, "sub/file", &h, sizeof h));
    h = (struct how){O_WRONLY | O_CREAT | O_EXCL, 0640, R_BENEATH};
    long r = syscall(SYS_OPENAT2, dir, "sub/new", &h, sizeof h);
    show("create beneath", r < 0 ? r : 0);
    if (r >= 0) {
        struct stat st;
        fstat(r, &st);
        printf("created mode %o\n", st.st_mode & 0777);
        close(r);
    }
    show("bad dirfd", open2(99, "sub/file", O_RDONLY, 0));
    show("bad dirfd, absolute", closed(open2(99, "/dev/null", O_RDONLY, 0)));
    show("bad dirfd, absolute in root", open2(99, "/dev/null", O_RDONLY, R_IN_ROOT));
    close(dir);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: sysvipc SCRATCH\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    semaphores();
    queues();
    openat2_calls(argv[1]);
    printf("done\n");
    return 0;
}
