/* Signal information under gdb (tests/gdb.rs, siginfo.gdb): stops in ready() (a
 * breakpoint), raises SIGUSR1, then writes to address 0x10 (SIGSEGV). An
 * SA_SIGINFO handler passes what it received to handled(), where gdb shows it;
 * after SIGSEGV the payload exits with status 0. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) void ready(void) {
}

__attribute__((noinline)) void handled(int sig, int code, void *addr) {
    (void)sig;
    (void)code;
    (void)addr;
}

static void on_signal(int sig, siginfo_t *info, void *context) {
    (void)context;
    handled(sig, info->si_code, sig == SIGSEGV ? info->si_addr : NULL);
    if (sig == SIGSEGV)
        _exit(0);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    ready();
    raise(SIGUSR1);
    *(volatile int *)0x10 = 1;
    return 1;
}
