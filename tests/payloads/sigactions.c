/* rt_sigaction queries (act NULL), which km's landing pad answers in the guest
 * from a table of the process's dispositions, made with the raw syscall and
 * checked against Linux: every signal's disposition at start, after changes with
 * and without SA_RESTORER (a mask naming SIGKILL and SIGSTOP comes back without
 * them, flags without the bits Linux does not know), after a SA_RESETHAND
 * handler ran (only the handler resets), bad
 * pointers (EFAULT) and arguments (EINVAL), a query racing another thread's
 * changes (never a mix of two dispositions), a fork child (its parent's
 * dispositions, its changes its own), a vfork child (its changes not its
 * parent's) and an execve (ignored stay ignored, handled reset). Prints
 * run-independent lines only, so the output is the same natively and under km.
 * Argument "loop N": N queries (for tracing and counting tests). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIT(sig) (1ull << ((sig) - 1))
#define RESTORER 0x04000000ul

struct ksigaction {
    uint64_t handler, flags, restorer, mask;
};

static void on_usr1(int sig) { (void)sig; }
static void on_usr2(int sig) { (void)sig; }
static void restorer(void) {}

static long act_call(long sig, const void *act, void *old, long size) {
    long r = syscall(SYS_rt_sigaction, sig, act, old, size);
    return r < 0 ? -errno : r;
}

static const char *name(uint64_t v) {
    static char buf[4][32];
    static int n;
    char *b = buf[n++ % 4];
    if (v == 0)
        return "0";
    if (v == 1)
        return "SIG_IGN";
    if (v == (uint64_t)on_usr1)
        return "on_usr1";
    if (v == (uint64_t)on_usr2)
        return "on_usr2";
    if (v == (uint64_t)restorer)
        return "restorer";
    snprintf(b, 32, "other");
    return b;
}

static void show(const char *what, int sig) {
    struct ksigaction old;
    memset(&old, 0x5a, sizeof old);
    long r = act_call(sig, NULL, &old, 8);
    if (r != 0) {
        printf("%s %d: %ld\n", what, sig, r);
        return;
    }
    printf("%s %d: handler %s flags %#lx restorer %s mask %#lx\n", what, sig, name(old.handler),
           (unsigned long)old.flags, name(old.restorer), (unsigned long)old.mask);
}

static long set(int sig, void (*h)(int), uint64_t flags, uint64_t mask) {
    struct ksigaction a = {(uint64_t)h, flags, flags & RESTORER ? (uint64_t)restorer : 0, mask};
    return act_call(sig, &a, NULL, 8);
}

static void show_all(const char *what) {
    for (int sig = 1; sig <= 64; sig++)
        show(what, sig);
}

static atomic_int stop;

static void *toggler(void *arg) {
    (void)arg;
    for (int i = 0; !atomic_load(&stop); i++) {
        if (i % 2)
            set(SIGUSR2, on_usr1, SA_RESTART, BIT(SIGINT));
        else
            set(SIGUSR2, on_usr2, SA_SIGINFO | RESTORER, BIT(SIGTERM) | BIT(SIGHUP));
    }
    return NULL;
}

static void race(void) {
    set(SIGUSR2, on_usr1, SA_RESTART, BIT(SIGINT));
    pthread_t t;
    pthread_create(&t, NULL, toggler, NULL);
    int mixed = 0, seen1 = 0, seen2 = 0;
    for (int i = 0; i < 200000 && !(seen1 > 50 && seen2 > 50 && i > 20000); i++) {
        struct ksigaction o;
        if (act_call(SIGUSR2, NULL, &o, 8) != 0) {
            mixed++;
            continue;
        }
        if (o.handler == (uint64_t)on_usr1 && o.flags == SA_RESTART && o.restorer == 0 &&
            o.mask == BIT(SIGINT))
            seen1++;
        else if (o.handler == (uint64_t)on_usr2 && o.flags == (SA_SIGINFO | RESTORER) &&
                 o.restorer == (uint64_t)restorer && o.mask == (BIT(SIGTERM) | BIT(SIGHUP)))
            seen2++;
        else
            mixed++;
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    printf("race: mixed %d, both seen %d\n", mixed, seen1 > 0 && seen2 > 0);
    set(SIGUSR2, SIG_DFL, 0, 0);
}

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "loop") == 0) {
        struct ksigaction o;
        for (int i = atoi(argv[2]); i > 0; i--)
            act_call(SIGINT, NULL, &o, 8);
        printf("done\n");
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "exec") == 0) {
        show_all("after execve");
        printf("done\n");
        return 0;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    show_all("start");

    printf("set usr1: %ld\n", set(SIGUSR1, on_usr1, SA_RESTART | SA_NODEFER, BIT(SIGINT) | BIT(SIGKILL) | BIT(SIGSTOP)));
    printf("set usr2: %ld\n", set(SIGUSR2, on_usr2, SA_SIGINFO | SA_ONSTACK | RESTORER, ~0ull));
    printf("set term: %ld\n", set(SIGTERM, SIG_IGN, 0, 0));
    printf("set rt: %ld\n", set(40, on_usr1, RESTORER, BIT(40)));
    printf("set kill: %ld\n", set(SIGKILL, on_usr1, 0, 0));
    printf("set alrm: %ld\n", set(SIGALRM, on_usr2, 0xffffffff00000000ull | 0xfff | SA_RESTART, 0));
    show("after set", SIGALRM);
    show("after set", SIGUSR1);
    show("after set", SIGUSR2);
    show("after set", SIGTERM);
    show("after set", 40);
    show("after set", SIGKILL);
    show("after set", SIGSTOP);

    /* The old disposition comes back with a change too. */
    struct ksigaction nw = {(uint64_t)on_usr2, SA_RESTART, 0, 0}, old;
    printf("swap: %ld", act_call(SIGUSR1, &nw, &old, 8));
    printf(" old handler %s flags %#lx mask %#lx\n", name(old.handler), (unsigned long)old.flags,
           (unsigned long)old.mask);
    show("after swap", SIGUSR1);

    /* Arguments. */
    struct ksigaction o;
    printf("sig 0: %ld\n", act_call(0, NULL, &o, 8));
    printf("sig 65: %ld\n", act_call(65, NULL, &o, 8));
    printf("sig -1: %ld\n", act_call(-1, NULL, &o, 8));
    printf("sig 1<<32|10: %ld\n", act_call((1l << 32) | 10, NULL, &o, 8));
    printf("size 4: %ld\n", act_call(SIGUSR1, NULL, &o, 4));
    printf("size 16: %ld\n", act_call(SIGUSR1, NULL, &o, 16));
    printf("no old: %ld\n", act_call(SIGUSR1, NULL, NULL, 8));
    printf("no old, sig 0: %ld\n", act_call(0, NULL, NULL, 8));

    /* Pointers. */
    char *pages = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(pages + 4096, 4096, PROT_READ);
    munmap(pages + 2 * 4096, 4096);
    printf("old 1: %ld\n", act_call(SIGUSR1, NULL, (void *)1, 8));
    printf("old read-only: %ld\n", act_call(SIGUSR1, NULL, pages + 4096, 8));
    printf("old unmapped: %ld\n", act_call(SIGUSR1, NULL, pages + 2 * 4096, 8));
    printf("old kernel: %ld\n", act_call(SIGUSR1, NULL, (void *)0xffff800000000000ul, 8));
    printf("old non-canonical: %ld\n", act_call(SIGUSR1, NULL, (void *)0x0000900000000000ul, 8));
    printf("old across into read-only: %ld\n", act_call(SIGUSR1, NULL, pages + 4096 - 16, 8));
    printf("act 1: %ld\n", act_call(SIGUSR1, (void *)1, &o, 8));
    show("after bad pointers", SIGUSR1);

    /* SA_RESETHAND: Linux resets the handler and keeps the rest. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    sigaddset(&sa.sa_mask, SIGHUP);
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    show("after resethand", SIGUSR1);

    race();

    /* A fork child starts with its parent's dispositions; its changes are its own. */
    set(SIGHUP, on_usr1, SA_RESTART, 0);
    pid_t pid = fork();
    if (pid == 0) {
        show("fork child", SIGHUP);
        set(SIGHUP, SIG_IGN, 0, 0);
        show("fork child after set", SIGHUP);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    show("parent after fork child", SIGHUP);

    /* A vfork child shares its parent's memory, not its dispositions. */
    pid = vfork();
    if (pid == 0) {
        set(SIGHUP, on_usr2, SA_SIGINFO, BIT(SIGINT));
        struct ksigaction v;
        long r = act_call(SIGHUP, NULL, &v, 8);
        _exit(r == 0 && v.handler == (uint64_t)on_usr2 && v.flags == SA_SIGINFO ? 7 : 8);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("vfork child saw its change: %d\n", WIFEXITED(status) && WEXITSTATUS(status) == 7);
    show("parent after vfork child", SIGHUP);

    /* execve: handled signals reset, ignored ones stay ignored. */
    set(SIGUSR1, on_usr1, 0, 0);
    set(SIGUSR2, SIG_IGN, 0, 0);
    set(SIGQUIT, SIG_IGN, SA_RESTART, BIT(SIGINT));
    pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", argv[0], "exec", (char *)NULL);
        _exit(127);
    }
    waitpid(pid, &status, 0);
    printf("done\n");
    return 0;
}
