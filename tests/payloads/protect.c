/* Page protections: argv[1] picks what to do with a 3-page mapping.
 *   ro        write to a page made read-only        -> SIGSEGV
 *   none      read a PROT_NONE page                 -> SIGSEGV
 *   unmapped  read an unmapped page                 -> SIGSEGV
 *   rw        read-only then writable again         -> exit 0
 *   other     another thread keeps reading a page that this one makes PROT_NONE:
 *             the reader faults (no vCPU keeps a stale translation) -> SIGSEGV */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile char *page;
static volatile int reading;

static void *reader(void *arg) {
    (void)arg;
    long sum = 0;
    for (;;) {
        sum += *page;
        reading = 1;
    }
    return (void *)sum;
}

int main(int argc, char **argv) {
    char *p = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(p, 1, 3 * 4096);
    const char *how = argc > 1 ? argv[1] : "";
    if (!strcmp(how, "ro")) {
        mprotect(p + 4096, 4096, PROT_READ);
        printf("read-only page still reads %d\n", p[4096]);
        fflush(stdout);
        p[4096] = 2;
    } else if (!strcmp(how, "none")) {
        mprotect(p, 4096, PROT_NONE);
        printf("%d\n", *(volatile char *)p);
    } else if (!strcmp(how, "unmapped")) {
        munmap(p + 8192, 4096);
        printf("%d\n", *(volatile char *)(p + 8192));
    } else if (!strcmp(how, "rw")) {
        mprotect(p + 4096, 4096, PROT_READ);
        mprotect(p + 4096, 4096, PROT_READ | PROT_WRITE);
        p[4096] = 3;
        printf("writable again: %d\n", p[4096]);
    } else if (!strcmp(how, "other")) {
        page = p;
        pthread_t t;
        pthread_create(&t, NULL, reader, NULL);
        while (!reading)
            ;
        mprotect(p, 4096, PROT_NONE);
        sleep(2);
        printf("the reader did not fault\n");
    }
    return 0;
}
