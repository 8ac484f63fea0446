/* execve from a multi-threaded process: threads blocked in sleep and one spinning
 * on syscalls are gone when the new program starts (Linux's de_thread). */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *sleeper(void *arg) {
    sleep(100);
    return arg;
}

static void *spinner(void *arg) {
    for (;;)
        getppid();
    return arg;
}

int main(void) {
    pthread_t t;
    for (int i = 0; i < 3; i++)
        pthread_create(&t, NULL, sleeper, NULL);
    pthread_create(&t, NULL, spinner, NULL);
    usleep(50 * 1000);
    char *argv[] = {"echo", "exec'd from a process with 5 threads", NULL};
    execv("/bin/echo", argv);
    perror("execv");
    return 1;
}
