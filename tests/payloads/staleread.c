/* A second thread reads a page, then this thread changes the mapping under it;
 * the reader's next read must see the change (no vCPU keeps a stale translation):
 *   munmap  the page is unmapped          -> the reader dies by SIGSEGV
 *   brk     the heap shrinks below it     -> SIGSEGV
 *   fixed   a fresh anonymous MAP_FIXED   -> the reader sees 0
 *   file    a file MAP_FIXED over it      -> the reader sees the file's byte */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile char *page;
static atomic_int reading, changed;

static void *reader(void *arg) {
    (void)arg;
    long sum = 0;
    while (!atomic_load(&changed)) {
        sum += *page;
        atomic_store(&reading, 1);
    }
    printf("after the change: %d\n", *page);
    return (void *)sum;
}

static char *heap_page(void) {
    char *top = sbrk(0);
    char *base = (char *)(((unsigned long)top + 8191) & ~4095UL);
    if (brk(base + 4096) != 0)
        exit(3);
    return base;
}

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "";
    char *p = strcmp(how, "brk") == 0
                  ? heap_page()
                  : mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(p, 7, 4096);
    page = p;
    pthread_t t;
    pthread_create(&t, NULL, reader, NULL);
    while (!atomic_load(&reading))
        ;
    if (strcmp(how, "munmap") == 0)
        munmap(p, 4096);
    else if (strcmp(how, "brk") == 0)
        brk(p);
    else if (strcmp(how, "fixed") == 0)
        mmap(p, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    else if (strcmp(how, "file") == 0) {
        FILE *f = tmpfile();
        fputc(42, f);
        fflush(f);
        mmap(p, 4096, PROT_READ, MAP_PRIVATE | MAP_FIXED, fileno(f), 0);
    } else
        return 2;
    atomic_store(&changed, 1);
    pthread_join(t, NULL);
    return 0;
}
