/* Faults in a nested call chain: main -> level1 -> level2 -> fault. argv[1] picks
 * it: null, div0, ud2, abort, text, or threads (two threads wait in waiter() while
 * main makes a null write). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile int zero = 0;

__attribute__((noinline)) static int level2(const char *how) {
    if (strcmp(how, "null") == 0)
        *(volatile int *)0 = 1;
    if (strcmp(how, "div0") == 0)
        return 10 / zero;
    if (strcmp(how, "ud2") == 0)
        __builtin_trap();
    if (strcmp(how, "abort") == 0)
        abort();
    if (strcmp(how, "text") == 0)
        *(volatile char *)level2 = 0;
    return 0;
}

__attribute__((noinline)) static int level1(const char *how) {
    return level2(how) + 1;
}

static volatile int started;

__attribute__((noinline)) static void *waiter(void *arg) {
    (void)arg;
    __atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
    for (;;)
        pause();
    return NULL;
}

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "none";
    if (strcmp(how, "threads") == 0) {
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&t[i], NULL, waiter, NULL);
        while (started < 2)
            usleep(1000);
        how = "null";
    }
    return level1(how) - 1;
}
