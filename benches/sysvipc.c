/* System V IPC benchmark payload: "semop N" makes N semops on a private set
 * (alternately +1 and -1, none blocks); "msg N" N msgsnd + msgrcv pairs of a
 * 64-byte message on a private queue; "pingpong N" N round trips between this
 * process and a fork child through two semaphores, each side blocking in semop
 * until the other posts. The objects are removed before the end. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/wait.h>
#include <unistd.h>

static void op(int id, int num, int delta) {
    struct sembuf b = {.sem_num = num, .sem_op = delta};
    if (semop(id, &b, 1) != 0)
        exit(1);
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    long n = atol(argv[2]);
    if (strcmp(argv[1], "msg") == 0) {
        int q = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
        struct {
            long type;
            char text[64];
        } m = {.type = 1};
        for (long i = 0; i < n; i++)
            if (msgsnd(q, &m, sizeof m.text, 0) != 0 || msgrcv(q, &m, sizeof m.text, 0, 0) < 0)
                return 1;
        msgctl(q, IPC_RMID, NULL);
        return 0;
    }
    int id = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
    if (strcmp(argv[1], "semop") == 0) {
        for (long i = 0; i < n; i++)
            op(id, 0, i % 2 ? -1 : 1);
    } else {
        pid_t child = fork();
        if (child == 0) {
            for (long i = 0; i < n; i++) {
                op(id, 0, -1);
                op(id, 1, 1);
            }
            _exit(0);
        }
        for (long i = 0; i < n; i++) {
            op(id, 0, 1);
            op(id, 1, -1);
        }
        waitpid(child, NULL, 0);
    }
    semctl(id, 0, IPC_RMID);
    return 0;
}
