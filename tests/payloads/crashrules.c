/* What a fault and the alternate signal stack report, and a crash after the
 * payload's own stderr output. argv[1] picks:
 *   codes     si_code and si_addr of faults on a PROT_NONE page, a read-only page
 *             and an unmapped page (the handler jumps back each time)
 *   altstack  sigaltstack's flags off and on the alternate stack, and its errors
 *   stderr    a line on stderr, then a null write (killed by SIGSEGV)
 *   nocore    sets its own RLIMIT_CORE to 0, then a null write */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static sigjmp_buf back;
static volatile int code;
static void *volatile addr;

static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    code = si->si_code;
    addr = si->si_addr;
    siglongjmp(back, 1);
}

static const char *code_name(int c) {
    return c == SEGV_MAPERR ? "SEGV_MAPERR" : c == SEGV_ACCERR ? "SEGV_ACCERR" : "other";
}

/* Touches `p` (writes when `write`), reports the fault it took. */
static void touch(const char *what, volatile char *p, int write) {
    if (sigsetjmp(back, 1) == 0) {
        if (write)
            *p = 1;
        else
            (void)*p;
        printf("%s: no fault\n", what);
        return;
    }
    printf("%s: %s, si_addr %s\n", what, code_name(code),
           addr == (void *)p ? "is the address" : "differs");
}

static int codes(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    char *p = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 1;
    memset(p, 1, 3 * 4096);
    mprotect(p, 4096, PROT_NONE);
    mprotect(p + 4096, 4096, PROT_READ);
    munmap(p + 8192, 4096);
    touch("read PROT_NONE", p + 100, 0);
    touch("write PROT_NONE", p + 200, 1);
    touch("write read-only", p + 4096 + 300, 1);
    touch("read unmapped", p + 8192 + 400, 0);
    char *none = mmap(NULL, 1 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    touch("read PROT_NONE reservation", none + 12345, 0);
    printf("codes done\n");
    return 0;
}

static void show(const char *where, const stack_t *ss, const void *base) {
    printf("%s: flags%s%s%s, sp %s, size %zu\n", where,
           ss->ss_flags == 0 ? " 0" : "",
           ss->ss_flags & SS_ONSTACK ? " SS_ONSTACK" : "",
           ss->ss_flags & SS_DISABLE ? " SS_DISABLE" : "",
           ss->ss_sp == base ? "the stack's" : ss->ss_sp == NULL ? "null" : "other",
           ss->ss_size);
}

/* Prints a call's result and errno (read after the call). */
static void result(const char *what, int r) {
    int e = r < 0 ? errno : 0;
    printf("%s: %d %s\n", what, r, e ? strerror(e) : "ok");
}

static char *alt;
static const size_t alt_size = 64 * 1024;

static void on_usr1(int sig) {
    (void)sig;
    stack_t old;
    int local;
    printf("handler runs on the alternate stack: %s\n",
           (char *)&local > alt && (char *)&local <= alt + alt_size ? "yes" : "no");
    sigaltstack(NULL, &old);
    show("in handler", &old, alt);
    stack_t other = {.ss_sp = malloc(alt_size), .ss_size = alt_size};
    result("changing it in the handler", sigaltstack(&other, &old));
    stack_t off = {.ss_flags = SS_DISABLE};
    result("disabling it in the handler", sigaltstack(&off, NULL));
}

static int altstack(void) {
    stack_t ss;
    sigaltstack(NULL, &ss);
    show("at start", &ss, NULL);
    alt = malloc(alt_size);
    stack_t bad = {.ss_sp = alt, .ss_size = alt_size, .ss_flags = SS_ONSTACK | SS_DISABLE};
    result("flags SS_ONSTACK|SS_DISABLE", sigaltstack(&bad, NULL));
    stack_t small = {.ss_sp = alt, .ss_size = 1024};
    result("1024 bytes", sigaltstack(&small, NULL));
    stack_t good = {.ss_sp = alt, .ss_size = alt_size};
    sigaltstack(&good, NULL);
    sigaltstack(NULL, &ss);
    show("set", &ss, alt);
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    sigaltstack(NULL, &ss);
    show("after the handler", &ss, alt);
    stack_t off = {.ss_flags = SS_DISABLE};
    sigaltstack(&off, &ss);
    show("old when disabling", &ss, alt);
    sigaltstack(NULL, &ss);
    show("disabled", &ss, NULL);
    printf("altstack done\n");
    return 0;
}

static volatile int *volatile nowhere;

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "";
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(how, "codes"))
        return codes();
    if (!strcmp(how, "altstack"))
        return altstack();
    if (!strcmp(how, "nocore")) {
        struct rlimit none = {0, 0};
        setrlimit(RLIMIT_CORE, &none);
        *nowhere = 1;
    }
    if (!strcmp(how, "stderr")) {
        fprintf(stderr, "the payload's own line on stderr\n");
        *nowhere = 1;
    }
    return 2;
}
