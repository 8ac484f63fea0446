/* Debugging targets for tests/gdb.rs, chosen by argv[1]:
 *   watch  reads a global in a loop and then writes it (read/access watchpoints)
 *   fault  the same, then reads a constant and writes it (SIGSEGV), with a further
 *          argument first through a pointer to unmapped memory (SIGSEGV)
 *   avx    loads a known pattern into ymm0 and stops in avx_loaded()
 *   sleep  blocks in sleep(100) inside nap() (gdb's Ctrl-C)
 *   fork   forks a child; both call reader() (a breakpoint in the parent must not
 *          hit the child, which gdb does not follow), the parent reports the child
 *   linger the parent exits at once, leaving a child that sleeps for 2 s
 *   signals raises SIGUSR1 into a handler, then calls signalled() twice with the
 *          last signal handled (gdb delivers SIGUSR2 at the first call)
 *   watchthreads  stops in watch_armed(), then a thread created after it writes
 *          `shared` while main waits for it (a watchpoint set there must see the
 *          new thread's write, in that thread) */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int g = 5;
int other;
const int ro = 3;

__attribute__((noinline)) int reader(int n) {
    int sum = 0;
    for (int i = 0; i < n; i++)
        sum += g;
    return sum;
}

__attribute__((noinline)) void writer(int v) {
    g = v;
}

__attribute__((noinline)) void avx_loaded(void) {
}

static volatile sig_atomic_t handled;
static int shared;

__attribute__((noinline)) void watch_armed(void) {
}

static void *late_writer(void *arg) {
    (void)arg;
    /* Long enough for main to be blocked in pthread_join: only this thread runs
     * instructions when it writes. */
    usleep(500 * 1000);
    shared = 7;
    return NULL;
}

static void on_signal(int sig) {
    handled = sig;
}

__attribute__((noinline)) void signalled(int last) {
    (void)last;
}

__attribute__((noinline)) void nap(void) {
    sleep(100);
}

static void load_ymm0(void) {
    static const long long pattern = 0x1122334455667788LL;
    __asm__ volatile("vbroadcastsd %0, %%ymm0" : : "m"(pattern) : "xmm0");
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "watch";
    if (!strcmp(mode, "avx")) {
        load_ymm0();
        avx_loaded();
        return 0;
    }
    if (!strcmp(mode, "fork")) {
        pid_t pid = fork();
        int s = reader(2);
        if (pid == 0)
            _exit(s == 10 ? 0 : 1);
        int st;
        waitpid(pid, &st, 0);
        printf("child %s %d\n", WIFEXITED(st) ? "exited" : "killed by signal",
               WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 3;
    }
    if (!strcmp(mode, "watchthreads")) {
        pthread_t t;
        watch_armed();
        pthread_create(&t, NULL, late_writer, NULL);
        pthread_join(t, NULL);
        return shared == 7 ? 0 : 3;
    }
    if (!strcmp(mode, "signals")) {
        signal(SIGUSR1, on_signal);
        signal(SIGUSR2, on_signal);
        raise(SIGUSR1);
        signalled(handled);
        signalled(handled);
        return handled == SIGUSR2 ? 0 : 3;
    }
    if (!strcmp(mode, "linger")) {
        if (fork() == 0)
            sleep(2);
        return 0;
    }
    if (!strcmp(mode, "sleep")) {
        nap();
        return 0;
    }
    other = 1;
    int s = reader(3);
    writer(7);
    s += reader(1);
    printf("sum %d\n", s);
    if (!strcmp(mode, "fault")) {
        other = *(volatile const int *)&ro;
        if (argc > 2)
            *(volatile int *)(long)other = 1;
        *(volatile int *)&ro = other;
    }
    return 0;
}
