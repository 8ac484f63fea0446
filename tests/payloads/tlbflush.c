/* The translation flush after mprotect and munmap (tests/tlbflush.rs, ci/hwkvm): a
 * page read or written just before must fault right after its protection drops or
 * it goes away, on the thread that changed it and on another thread that had read
 * it (whose vCPU may cache the old translation). Each access runs under a SIGSEGV
 * handler that jumps back, so the program prints what faulted and goes on. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define PAGE 4096UL
#define HUGE (2UL << 20)

static __thread sigjmp_buf *landing;

static void on_segv(int sig) {
    (void)sig;
    siglongjmp(*landing, 1);
}

/* 1 if reading (write = 0) or writing (write = 1) *p faults, else 0. */
static int faults(volatile char *p, int write) {
    sigjmp_buf here;
    landing = &here;
    if (sigsetjmp(here, 1))
        return 1;
    if (write)
        *p = 2;
    else
        (void)*p;
    return 0;
}

static void report(const char *what, int faulted) {
    printf("%s: %s\n", what, faulted ? "fault" : "ok");
}

static void same_thread(void) {
    char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    report("write fresh page", faults(p, 1));
    mprotect(p, PAGE, PROT_READ);
    report("read after PROT_READ", faults(p, 0));
    report("write after PROT_READ", faults(p, 1));
    mprotect(p, PAGE, PROT_NONE);
    report("read after PROT_NONE", faults(p, 0));
    mprotect(p, PAGE, PROT_READ | PROT_WRITE);
    report("write after PROT_READ|PROT_WRITE", faults(p, 1));
    report("read neighbour", faults(p + PAGE, 0));
    munmap(p + PAGE, PAGE);
    report("read after munmap", faults(p + PAGE, 0));
    report("read page kept", faults(p, 0));
    munmap(p, PAGE);
}

/* A 2 MiB-aligned block written whole (one large guest page where km maps one),
 * then one 4 KiB page in its middle made PROT_NONE: only that page faults. */
static void split_block(void) {
    char *raw = mmap(NULL, 2 * HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *block = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
    memset(block, 1, HUGE);
    char *mid = block + HUGE / 2;
    mprotect(mid, PAGE, PROT_NONE);
    report("block: read protected page", faults(mid, 0));
    report("block: read page before", faults(mid - PAGE, 0));
    report("block: write page after", faults(mid + PAGE, 1));
    munmap(block + PAGE, PAGE);
    report("block: read unmapped page", faults(block + PAGE, 0));
    report("block: read first page", faults(block, 0));
    munmap(raw, 2 * HUGE);
}

static pthread_barrier_t step;
static volatile char *shared_page;
static int other_results[3];

/* Reads the page, then, after each change main makes, accesses it again. */
static void *other(void *arg) {
    (void)arg;
    (void)faults(shared_page, 0);
    pthread_barrier_wait(&step); /* main: PROT_READ */
    pthread_barrier_wait(&step);
    other_results[0] = faults(shared_page, 1);
    pthread_barrier_wait(&step); /* main: PROT_NONE */
    pthread_barrier_wait(&step);
    other_results[1] = faults(shared_page, 0);
    pthread_barrier_wait(&step); /* main: munmap */
    pthread_barrier_wait(&step);
    other_results[2] = faults(shared_page, 0);
    return NULL;
}

static void other_thread(void) {
    shared_page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    shared_page[0] = 1;
    pthread_barrier_init(&step, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, other, NULL);
    pthread_barrier_wait(&step);
    mprotect((void *)shared_page, PAGE, PROT_READ);
    pthread_barrier_wait(&step);
    pthread_barrier_wait(&step);
    mprotect((void *)shared_page, PAGE, PROT_NONE);
    pthread_barrier_wait(&step);
    pthread_barrier_wait(&step);
    munmap((void *)shared_page, PAGE);
    pthread_barrier_wait(&step);
    pthread_join(t, NULL);
    report("other thread: write after PROT_READ", other_results[0]);
    report("other thread: read after PROT_NONE", other_results[1]);
    report("other thread: read after munmap", other_results[2]);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sa.sa_flags = SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    same_thread();
    split_block();
    other_thread();
    printf("done\n");
    return 0;
}
