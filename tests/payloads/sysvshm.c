/* System V shared memory (issue 13, item 7; PostgreSQL needs it): a private
 * segment attached twice, shared with a fork child, its IPC_STAT counts, shmdt and
 * IPC_RMID, and the errors Linux gives; printed for comparison with native. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, long rc) {
    if (rc < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: ok\n", what);
}

static void stat_line(int id) {
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) < 0) {
        show("IPC_STAT", -1);
        return;
    }
    printf("segsz %zu nattch %lu mode %o\n", ds.shm_segsz, (unsigned long)ds.shm_nattch,
           ds.shm_perm.mode & 0777);
}

int main(void) {
    int id = shmget(IPC_PRIVATE, 10000, IPC_CREAT | 0600);
    show("shmget", id);
    char *a = shmat(id, NULL, 0);
    char *b = shmat(id, NULL, SHM_RDONLY);
    show("shmat", a == (void *)-1 ? -1 : 0);
    show("shmat read-only", b == (void *)-1 ? -1 : 0);
    stat_line(id);
    strcpy(a + 9000, "written through a");
    printf("b sees: %s\n", b + 9000);
    pid_t child = fork();
    if (child == 0) {
        strcpy(a, "from the child");
        _exit(0);
    }
    waitpid(child, NULL, 0);
    printf("parent sees: %s\n", a);
    stat_line(id);
    show("shmdt b", shmdt(b));
    show("shmdt b again", shmdt(b));
    show("shmdt inside a", shmdt(a + 4096));
    stat_line(id);
    struct shmid_ds ds;
    shmctl(id, IPC_STAT, &ds);
    ds.shm_perm.mode = 0640;
    show("IPC_SET", shmctl(id, IPC_SET, &ds));
    stat_line(id);
    show("IPC_STAT bad pointer", shmctl(id, IPC_STAT, (void *)8));
    show("shmctl bad command", shmctl(id, 77, &ds));
    show("shmctl IPC_STAT|IPC_64", syscall(SYS_shmctl, id, IPC_STAT | 0x100, &ds));
    show("shmat misaligned", shmat(id, (void *)(a + 1), 0) == (void *)-1 ? -1 : 0);
    char *c = shmat(id, a + 1, SHM_RND | SHM_REMAP);
    printf("SHM_RND|SHM_REMAP over a: %s, reads: %s\n", c == a ? "same address" : "elsewhere", c);
    show("IPC_RMID", shmctl(id, IPC_RMID, NULL));
    printf("still attached reads: %s\n", a);
    show("shmdt a", shmdt(a));
    show("shmat after removal", shmat(id, NULL, 0) == (void *)-1 ? -1 : 0);
    show("shmget missing key", shmget(0x6b6d0001, 10, 0));
    show("shmat bad id", shmat(-1, NULL, 0) == (void *)-1 ? -1 : 0);
    return 0;
}
