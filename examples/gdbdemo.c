/* A small multi-threaded program for debugging sessions: named functions, locals,
 * a global to watch, and two worker threads waiting for main. */
#include <pthread.h>
#include <stdio.h>

int counter;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER;
static int released;

__attribute__((noinline)) int add(int a, int b) {
    int sum = a + b;
    return sum;
}

__attribute__((noinline)) int compute(int n) {
    int base = n * 2;
    int total = add(base, 1);
    return total;
}

__attribute__((noinline)) void bump(void) {
    counter = counter + 1;
}

static void *worker(void *arg) {
    pthread_mutex_lock(&lock);
    while (!released)
        pthread_cond_wait(&go, &lock);
    pthread_mutex_unlock(&lock);
    return arg;
}

int main(void) {
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    int result = compute(3);
    bump();
    printf("compute: %d, counter: %d\n", result, counter);
    pthread_mutex_lock(&lock);
    released = 1;
    pthread_cond_broadcast(&go);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return 0;
}
