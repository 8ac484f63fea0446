// A fork child owns its descriptors: what the child and the parent both close is
// closed, even a descriptor another thread of the parent was blocked on at the
// fork. The output must be the same natively and under km.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int pair[2];

// Blocks in read on pair[0] until the parent writes to pair[1].
static void *reader(void *arg) {
    (void)arg;
    char c;
    return (void *)(long)read(pair[0], &c, 1);
}

// A pipe's write end closed by both processes: the reader sees EOF.
static void closed_in_both(void) {
    int p[2], fin[2];
    pipe(p);
    pipe(fin);
    write(p[1], "A", 1);
    pid_t pid = fork();
    if (pid == 0) {
        write(p[1], "B", 1);
        close(p[1]);
        char c;
        read(fin[0], &c, 1); // stays alive until the parent has seen EOF
        _exit(0);
    }
    write(p[1], "C", 1);
    close(p[1]);
    char buf[16];
    int total = 0, n;
    while ((n = read(p[0], buf, sizeof buf)) > 0)
        total += n;
    printf("pipe: read %d bytes, then %d\n", total, n);
    write(fin[1], "!", 1);
    int status;
    waitpid(pid, &status, 0);
    printf("pipe child: %d\n", WEXITSTATUS(status));
}

// A socket another thread was reading at the fork, closed by both processes:
// the peer sees EOF.
static void closed_while_read_by_a_thread(void) {
    socketpair(AF_UNIX, SOCK_STREAM, 0, pair);
    int fin[2];
    pipe(fin);
    pthread_t t;
    pthread_create(&t, NULL, reader, NULL);
    usleep(100 * 1000); // most often the thread is in read by now
    pid_t pid = fork();
    if (pid == 0) {
        close(pair[0]);
        close(pair[1]);
        char c;
        read(fin[0], &c, 1);
        _exit(0);
    }
    write(pair[1], "x", 1);
    void *got;
    pthread_join(t, &got);
    printf("thread read: %ld\n", (long)got);
    close(pair[0]);
    char c;
    printf("peer after both closed: %ld\n", (long)read(pair[1], &c, 1));
    write(fin[1], "!", 1);
    int status;
    waitpid(pid, &status, 0);
    printf("socket child: %d\n", WEXITSTATUS(status));
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    alarm(60); // a descriptor left open would block forever
    closed_in_both();
    closed_while_read_by_a_thread();
    printf("forkfds done\n");
    return 0;
}
