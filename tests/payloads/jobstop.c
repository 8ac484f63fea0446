/* Job-control stops compared with native runs (tests/payloads.rs): a child that
 * raises SIGSTOP is seen stopped by waitpid(WUNTRACED) and waitid(WSTOPPED|WNOWAIT),
 * its parent gets SIGCHLD with CLD_STOPPED (none under SA_NOCLDSTOP), kill(SIGCONT)
 * gives WIFCONTINUED and CLD_CONTINUED and runs the child's SIGCONT handler; a
 * SIGTSTP with a handler runs the handler; SIGTSTP in an orphaned process group is
 * discarded; a SIGSTOP from the parent stops every thread of a child (its counter
 * thread does not advance), and a child blocked in read is stopped and goes on
 * reading after SIGCONT. With the argument "outside": prints "ready" and waits in
 * sigsuspend() until its SIGCONT handler has run twice, saying so after each, while a
 * test stops it from outside (tests/signals_compat.rs). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t chld_count, chld_code, chld_status, cont_ran, tstp_ran;

static void on_chld(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    chld_count++;
    chld_code = si->si_code;
    chld_status = si->si_status;
}

static void handle_chld(int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | flags;
    sigaction(SIGCHLD, &sa, NULL);
}

static void on_cont(int sig) {
    (void)sig;
    cont_ran = 1;
}

static void on_tstp(int sig) {
    (void)sig;
    tstp_ran = 1;
}

static void pause_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Waits until the SIGCHLD count passes `count` (at most about 5 s). */
static void wait_chld(int count) {
    for (int i = 0; i < 500 && chld_count <= count; i++)
        pause_ms(10);
}

static const char *code_name(int code) {
    switch (code) {
    case CLD_EXITED: return "exited";
    case CLD_STOPPED: return "stopped";
    case CLD_CONTINUED: return "continued";
    case CLD_KILLED: return "killed";
    default: return "other";
    }
}

static void raise_stop(void) {
    handle_chld(0);
    int pipefd[2];
    int go[2];
    if (pipe(pipefd) != 0 || pipe(go) != 0)
        exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGCONT, on_cont);
        raise(SIGSTOP);
        char c = cont_ran ? 'y' : 'n';
        if (write(pipefd[1], &c, 1) != 1)
            _exit(2);
        /* Exits once the parent has seen its CLD_CONTINUED (one SIGCHLD each). */
        if (read(go[0], &c, 1) != 1)
            _exit(2);
        _exit(7);
    }
    int st = 0;
    int count = chld_count;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int rc = waitid(P_PID, pid, &si, WSTOPPED | WNOWAIT);
    printf("raise: waitid %d pid %d code %s status %d\n", rc, si.si_pid == pid,
           code_name(si.si_code), si.si_status);
    pid_t got = waitpid(pid, &st, WUNTRACED);
    printf("raise: waitpid %d stopped %d by %d\n", got == pid, WIFSTOPPED(st), WSTOPSIG(st));
    wait_chld(count);
    printf("raise: sigchld %s status %d\n", code_name(chld_code), chld_status);
    char c = '?';
    count = chld_count;
    kill(pid, SIGCONT);
    got = waitpid(pid, &st, WCONTINUED);
    printf("raise: continued %d %d\n", got == pid, WIFCONTINUED(st));
    wait_chld(count);
    printf("raise: sigchld %s\n", code_name(chld_code));
    if (read(pipefd[0], &c, 1) != 1)
        c = '!';
    printf("raise: child's SIGCONT handler ran: %c\n", c);
    if (write(go[1], "g", 1) != 1)
        exit(1);
    close(go[0]);
    close(go[1]);
    got = waitpid(pid, &st, 0);
    printf("raise: exited %d %d code %d\n", got == pid, WIFEXITED(st), WEXITSTATUS(st));
    close(pipefd[0]);
    close(pipefd[1]);
}

static void nocldstop(void) {
    handle_chld(SA_NOCLDSTOP);
    pid_t pid = fork();
    if (pid == 0) {
        raise(SIGSTOP);
        _exit(3);
    }
    int st = 0;
    int count = chld_count;
    pid_t got = waitpid(pid, &st, WUNTRACED);
    printf("nocldstop: stopped %d %d\n", got == pid, WIFSTOPPED(st));
    kill(pid, SIGCONT);
    got = waitpid(pid, &st, 0);
    printf("nocldstop: exited %d code %d\n", got == pid, WEXITSTATUS(st));
    wait_chld(count);
    printf("nocldstop: sigchld count %d code %s\n", chld_count - count, code_name(chld_code));
    handle_chld(0);
}

static void tstp_handler(void) {
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGTSTP, on_tstp);
        raise(SIGTSTP);
        _exit(tstp_ran ? 4 : 5);
    }
    int st = 0;
    pid_t got = waitpid(pid, &st, WUNTRACED);
    printf("tstp handler: %d exited %d code %d\n", got == pid, WIFEXITED(st), WEXITSTATUS(st));
}

/* The child's grandchild, in a new process group whose only member's parent
 * (the child) is in another session-less relation: after the child exits the
 * group is orphaned, and SIGTSTP to it is discarded by the kernel. */
static void tstp_orphaned(void) {
    int pipefd[2];
    if (pipe(pipefd) != 0)
        exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        if (setsid() < 0)
            _exit(1);
        /* A new session: its group has no parent in another group of the same
         * session, so it is orphaned. */
        raise(SIGTSTP);
        char c = 'r';
        if (write(pipefd[1], &c, 1) != 1)
            _exit(2);
        _exit(6);
    }
    int st = 0;
    pid_t got = waitpid(pid, &st, WUNTRACED);
    char c = '?';
    if (read(pipefd[0], &c, 1) != 1)
        c = '!';
    printf("tstp orphaned: %d exited %d code %d ran on %c\n", got == pid, WIFEXITED(st),
           WEXITSTATUS(st), c);
    close(pipefd[0]);
    close(pipefd[1]);
}

static volatile long *counter;

static void *count_up(void *arg) {
    (void)arg;
    for (;;) {
        (*counter)++;
        pause_ms(1);
    }
    return NULL;
}

static void stop_threads(void) {
    counter = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counter == MAP_FAILED)
        exit(1);
    *counter = 0;
    pid_t pid = fork();
    if (pid == 0) {
        pthread_t t;
        pthread_create(&t, NULL, count_up, NULL);
        for (;;)
            pause_ms(100);
    }
    while (*counter < 20)
        pause_ms(5);
    int st = 0;
    kill(pid, SIGSTOP);
    pid_t got = waitpid(pid, &st, WUNTRACED);
    long at_stop = *counter;
    pause_ms(200);
    long later = *counter;
    printf("threads: stopped %d %d, counter still %d\n", got == pid, WIFSTOPPED(st),
           later == at_stop);
    kill(pid, SIGCONT);
    got = waitpid(pid, &st, WCONTINUED);
    printf("threads: continued %d %d\n", got == pid, WIFCONTINUED(st));
    long resumed = *counter;
    for (int i = 0; i < 500 && *counter < resumed + 20; i++)
        pause_ms(10);
    printf("threads: counting again %d\n", *counter >= resumed + 20);
    kill(pid, SIGKILL);
    got = waitpid(pid, &st, 0);
    printf("threads: killed %d by %d\n", WIFSIGNALED(st), WTERMSIG(st));
    munmap((void *)counter, 4096);
}

/* A child blocked in read: SIGTSTP from the parent stops it, SIGCONT lets it go
 * on reading (the read is not interrupted), a SIGKILL while stopped kills it. */
static void stop_in_read(void) {
    int pipefd[2];
    if (pipe(pipefd) != 0)
        exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        ssize_t n = read(pipefd[0], &c, 1);
        _exit(n == 1 && c == 'x' ? 8 : 9);
    }
    pause_ms(100);
    int st = 0;
    kill(pid, SIGTSTP);
    pid_t got = waitpid(pid, &st, WUNTRACED);
    printf("read: stopped %d %d by %d\n", got == pid, WIFSTOPPED(st), WSTOPSIG(st));
    kill(pid, SIGCONT);
    got = waitpid(pid, &st, WCONTINUED);
    printf("read: continued %d %d\n", got == pid, WIFCONTINUED(st));
    if (write(pipefd[1], "x", 1) != 1)
        exit(1);
    got = waitpid(pid, &st, 0);
    printf("read: exited %d code %d\n", got == pid, WEXITSTATUS(st));

    pid = fork();
    if (pid == 0) {
        char c;
        ssize_t n = read(pipefd[0], &c, 1);
        _exit(n == 1 ? 8 : 9);
    }
    kill(pid, SIGSTOP);
    waitpid(pid, &st, WUNTRACED);
    kill(pid, SIGKILL);
    got = waitpid(pid, &st, 0);
    printf("read: killed while stopped %d by %d\n", WIFSIGNALED(st), WTERMSIG(st));
    close(pipefd[0]);
    close(pipefd[1]);
}

static volatile sig_atomic_t conts;

static void count_cont(int sig) {
    (void)sig;
    conts++;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && strcmp(argv[1], "outside") == 0) {
        /* SIGCONT blocked but in sigsuspend: a stop and continue before the
         * wait begins is not missed. */
        sigset_t cont, none;
        sigemptyset(&cont);
        sigemptyset(&none);
        sigaddset(&cont, SIGCONT);
        sigprocmask(SIG_BLOCK, &cont, NULL);
        signal(SIGCONT, count_cont);
        printf("ready\n");
        while (conts < 2) {
            sigsuspend(&none);
            printf("continued %d\n", (int)conts);
        }
        return 0;
    }
    /* A process group of its own, whose parent (the test) is in another group
     * of the session: not orphaned, so SIGTSTP stops its members however the
     * test was started. */
    if (setpgid(0, 0) != 0)
        return 1;
    raise_stop();
    nocldstop();
    tstp_handler();
    tstp_orphaned();
    stop_threads();
    stop_in_read();
    printf("jobstop done\n");
    return 0;
}
