/* vfork and posix_spawn children share their parent's memory until they exec or
 * exit (tests/vfork.rs), chosen by argv[1]:
 *   missing   posix_spawn of a program that does not exist: its errno.
 *   actions   posix_spawn of this program ("show") with file actions: dup2 of a
 *             pipe onto stdout, close of a descriptor the parent has open, open
 *             of this program at fd 5; prints what came through the pipe.
 *   show      the spawned side: which of descriptors 3..7 are open, and the
 *             first bytes of fd 5.
 *   global    a vfork child writes a global and _exit(3)s: what the parent sees.
 *   threads   a second thread counts while the main thread vforks; the child
 *             waits (bounded) for the counter to move: the other thread runs
 *             while the vforking thread is suspended, which resumes only after
 *             the child has exited.
 *   execs     a vfork child execs this program ("show"): the parent resumes
 *             after the exec, and waitpid gives the program's status.
 *   selfsignals  a vfork child (whose tid is its pid) raises SIGUSR1, whose
 *             handler runs in the child once, then SIGTERM, which kills only it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static volatile int global = 1;
static volatile long counter;
static volatile int stop_counting;
static volatile int child_done;

static int status_of(pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid) {
        printf("waitpid: %s\n", strerror(errno));
        return -1;
    }
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

static int missing(void) {
    char *argv[] = {"/nonexistent/program", NULL};
    pid_t pid = -1;
    int rc = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
    printf("posix_spawn of a missing program: %s\n", rc ? strerror(rc) : "0");
    if (rc == 0)
        printf("its status: %d\n", status_of(pid));
    rc = posix_spawnp(&pid, "no-such-program-anywhere", NULL, NULL, argv, environ);
    printf("posix_spawnp of a missing program: %s\n", rc ? strerror(rc) : "0");
    if (rc == 0)
        printf("its status: %d\n", status_of(pid));
    return 0;
}

static int actions(const char *self) {
    int p[2];
    if (pipe(p))
        return 1;
    /* A descriptor the parent keeps and the child closes. */
    int kept = dup2(2, 6);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    posix_spawn_file_actions_addclose(&fa, p[1]);
    posix_spawn_file_actions_addclose(&fa, kept);
    posix_spawn_file_actions_addopen(&fa, 5, self, O_RDONLY, 0);
    char *argv[] = {(char *)self, "show", NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, self, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (rc) {
        printf("posix_spawn: %s\n", strerror(rc));
        return 1;
    }
    char buf[512];
    ssize_t n, got = 0;
    while ((n = read(p[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += n;
    buf[got] = 0;
    printf("through the pipe:\n%s", buf);
    printf("child status: %d\n", status_of(pid));
    printf("parent's fd 6 still open: %s\n", fcntl(kept, F_GETFD) >= 0 ? "yes" : "no");
    return 0;
}

static int show(void) {
    for (int fd = 3; fd <= 7; fd++)
        printf("fd %d: %s\n", fd, fcntl(fd, F_GETFD) >= 0 ? "open" : "closed");
    char head[4] = {0};
    if (read(5, head, 4) == 4)
        printf("fd 5 starts with %s\n", memcmp(head, "\177ELF", 4) ? "something else" : "ELF");
    return 7;
}

static int vfork_global(void) {
    global = 1;
    pid_t pid = vfork();
    if (pid == 0) {
        global = 42;
        _exit(3);
    }
    if (pid < 0)
        return 1;
    printf("parent sees global = %d\n", global);
    printf("child status: %d\n", status_of(pid));
    return 0;
}

static void *count(void *arg) {
    (void)arg;
    while (!stop_counting)
        counter++;
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int vfork_threads(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, count, NULL))
        return 1;
    while (counter == 0)
        ;
    child_done = 0;
    pid_t pid = vfork();
    if (pid == 0) {
        /* Bounded: a failure is a status, never a hang. */
        long start = counter;
        double limit = now() + 20;
        while (counter < start + 1000 && now() < limit)
            ;
        global = counter >= start + 1000 ? 2 : 0;
        child_done = 1;
        _exit(0);
    }
    int resumed_after_child = child_done;
    stop_counting = 1;
    pthread_join(t, NULL);
    printf("the counting thread ran during the vfork: %s\n", global == 2 ? "yes" : "no");
    printf("the parent resumed after the child: %s\n", resumed_after_child ? "yes" : "no");
    printf("child status: %d\n", status_of(pid));
    return 0;
}

static int vfork_exec(const char *self) {
    global = 1;
    pid_t pid = vfork();
    if (pid == 0) {
        global = 5;
        execl(self, self, "show", (char *)NULL);
        _exit(127);
    }
    int seen = global;
    int status = status_of(pid);
    printf("parent sees global = %d\n", seen);
    printf("child status: %d\n", status);
    return 0;
}

static volatile int usr1_count;

static void on_usr1(int sig) {
    (void)sig;
    usr1_count++;
}

static int vfork_self_signals(void) {
    signal(SIGUSR1, on_usr1);
    pid_t pid = vfork();
    if (pid == 0) {
        if (syscall(SYS_gettid) != getpid())
            _exit(9);
        raise(SIGUSR1);
        raise(SIGTERM);
        _exit(0);
    }
    int status = status_of(pid);
    printf("the child's handler ran %d time(s)\n", usr1_count);
    printf("child status: %d\n", status);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "global";
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(mode, "missing"))
        return missing();
    if (!strcmp(mode, "actions"))
        return actions(argv[0]);
    if (!strcmp(mode, "show"))
        return show();
    if (!strcmp(mode, "global"))
        return vfork_global();
    if (!strcmp(mode, "threads"))
        return vfork_threads();
    if (!strcmp(mode, "execs"))
        return vfork_exec(argv[0]);
    if (!strcmp(mode, "selfsignals"))
        return vfork_self_signals();
    return 2;
}
