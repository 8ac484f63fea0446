// Snapshot payload (tests/snapshot.rs): sets up state km must carry across a
// snapshot, asks for one with KM_SNAPSHOT (505), then shows that state.
//   snapshot FILE live|end|wait [unsupported|timer]
// live: a live snapshot; end: the snapshot ends the payload; wait: waits for
// the file FILE.go (km_cli asks km from outside meanwhile). "unsupported": also holds a timerfd,
// which km cannot restore (the call fails with ENOTSUP and the payload goes on); "timer":
// a POSIX timer (timer_create), likewise.
// Worker 1 sends its result to the main thread through a pipe.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define KM_SNAPSHOT 505
#define WORKERS 3

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int go, ready;
static volatile sig_atomic_t handled;
static int channel[2];

static void on_usr1(int sig) { handled = sig; }

static void *worker(void *arg) {
    // The signals the test sends are the main thread's.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    long n = (long)arg;
    long square = n * n;  // on this thread's stack across the snapshot
    pthread_mutex_lock(&lock);
    ready++;
    pthread_cond_broadcast(&cond);
    while (!go) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    if (n == 1 && write(channel[1], &square, sizeof square) != sizeof square) return NULL;
    return (void *)(square + 100);
}

static void fail(const char *what) {
    printf("%s: %s\n", what, strerror(errno));
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    char *heap = malloc(1 << 20);
    for (int i = 0; i < (1 << 20); i++) heap[i] = 'a' + i % 26;
    int file = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (file < 0 || write(file, "0123456789", 10) != 10 || lseek(file, 4, SEEK_SET) != 4)
        fail("file");
    int listener = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    // A restored copy listens on the same port while this one's connection waits.
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 4)) fail("listen");
    socklen_t len = sizeof addr;
    getsockname(listener, (struct sockaddr *)&addr, &len);
    int efd = eventfd(5, 0);
    signal(SIGUSR1, on_usr1);
    timer_t timer;
    if (argc > 3 && strcmp(argv[3], "timer") == 0) {
        if (timer_create(CLOCK_MONOTONIC, NULL, &timer)) fail("timer_create");
    } else if (argc > 3 && timerfd_create(CLOCK_MONOTONIC, 0) < 0) {
        fail("timerfd");
    }
    if (pipe(channel)) fail("pipe");
    pthread_t threads[WORKERS];
    for (long i = 0; i < WORKERS; i++) pthread_create(&threads[i], NULL, worker, (void *)(i + 1));
    pthread_mutex_lock(&lock);
    while (ready < WORKERS) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);

    long r;
    if (strcmp(argv[2], "wait") == 0) {
        char go_file[4096];
        snprintf(go_file, sizeof go_file, "%s.go", argv[1]);
        printf("waiting\n");
        while (access(go_file, F_OK) != 0) usleep(10000);
        r = 0;
    } else {
        r = syscall(KM_SNAPSHOT, "test", "a snapshot test", strcmp(argv[2], "live") == 0);
        printf("snapshot returned %ld%s%s\n", r, r < 0 ? " " : "", r < 0 ? strerror(errno) : "");
    }

    char buf[16] = {0};
    if (read(file, buf, sizeof buf - 1) < 0) fail("read");
    printf("file from offset 4: %s\n", buf);
    int client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(client, (struct sockaddr *)&addr, sizeof addr)) fail("connect");
    int conn = accept(listener, NULL, NULL);
    printf("listener accepts: %s\n", conn >= 0 ? "yes" : strerror(errno));
    uint64_t count = 0;
    if (read(efd, &count, sizeof count) != sizeof count) fail("eventfd");
    printf("eventfd counter: %llu\n", (unsigned long long)count);
    kill(getpid(), SIGUSR1);
    printf("handler ran for signal %d\n", (int)handled);
    pthread_mutex_lock(&lock);
    go = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    long piped = 0;
    if (read(channel[0], &piped, sizeof piped) != sizeof piped) fail("pipe read");
    printf("through the pipe: %ld\n", piped);
    for (int i = 0; i < WORKERS; i++) {
        void *v;
        pthread_join(threads[i], &v);
        printf("thread %d: %ld\n", i + 1, (long)v);
    }
    long sum = 0;
    for (int i = 0; i < (1 << 20); i++) sum += heap[i];
    printf("heap sum %ld, heap[12345] = %c\n", sum, heap[12345]);
    printf("done\n");
    return 0;
}
