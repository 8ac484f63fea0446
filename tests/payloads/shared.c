/* Memory a fork child shares with its parent (issue 13, item 9): a MAP_SHARED |
 * MAP_ANONYMOUS mapping sees the child's writes, a MAP_PRIVATE one does not, and
 * the sharing survives mprotect and partial munmap as on Linux. */
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    long page = sysconf(_SC_PAGESIZE);
    int *shared = mmap(0, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int *private = mmap(0, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED || private == MAP_FAILED)
        return 1;
    shared[0] = 1;
    private[0] = 1;
    munmap((char *)shared + 3 * page, page);
    mprotect((char *)shared + 2 * page, page, PROT_READ);
    pid_t child = fork();
    if (child == 0) {
        shared[0] = 42;
        shared[page / sizeof(int)] = 7;
        private[0] = 42;
        _exit(shared[2 * page / sizeof(int)]);
    }
    int status;
    waitpid(child, &status, 0);
    printf("child status %d\n", WEXITSTATUS(status));
    printf("shared page 0: %d, page 1: %d; private: %d\n", shared[0],
           shared[page / sizeof(int)], private[0]);
    /* A second child sees the first one's writes, and the parent sees the second's. */
    if (fork() == 0) {
        shared[0] += 1;
        _exit(0);
    }
    wait(&status);
    printf("after the second child: %d\n", shared[0]);
    return 0;
}
