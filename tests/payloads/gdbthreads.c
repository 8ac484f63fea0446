/* Threaded targets for gdb's thread names and write watchpoints (tests/gdb.rs),
 * chosen by argv[1]:
 *   names  prints its own comm as /proc/self/comm and prctl(PR_GET_NAME) read it,
 *          names worker 1 with pthread_setname_np from main, worker 2 names
 *          itself with prctl(PR_SET_NAME), worker 3 keeps the inherited name,
 *          worker 4 takes one with XML markup characters;
 *          main prints each worker's comm as the worker read it from
 *          /proc/self/task/TID/comm, then calls names_set() while the workers
 *          wait (a breakpoint there sees every name); main renames itself last
 *          and prints /proc/self/comm
 *   rawname  a thread names itself with a control character and a byte that is
 *          not UTF-8, then main calls names_set()
 *   many   MANY threads wait while main calls names_set() (gdb's thread list
 *          is longer than one packet)
 *   spin   SPINNERS threads spin on `spin_count` while main, once all spin,
 *          writes `watched` WRITES times in write_watched() (a write watchpoint
 *          must charge each write to main, never to a spinner), then stops them */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define WORKERS 4
#define SPINNERS 4
#define WRITES 20
#define MANY 100

static pthread_barrier_t named, ready, done;
static volatile int stop_spinning;
static volatile long spin_count[SPINNERS];
static volatile int spinning;
int watched;

__attribute__((noinline)) void names_set(void) {
}

__attribute__((noinline)) void write_watched(int v) {
    watched = v;
}

/* Reads the comm that the /proc file `path` shows into `name`. */
static void read_comm(const char *path, char *name, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f || !fgets(name, size, f))
        snprintf(name, size, "(cannot read %s)", path);
    name[strcspn(name, "\n")] = 0;
    if (f)
        fclose(f);
}

static char comms[WORKERS + 1][64];

static void *worker(void *arg) {
    long n = (long)arg;
    char path[64];
    if (n == 2)
        prctl(PR_SET_NAME, "self-named-worker-2");
    if (n == 4)
        prctl(PR_SET_NAME, "<w&\"4'>");
    pthread_barrier_wait(&named);
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", gettid());
    read_comm(path, comms[n], sizeof comms[n]);
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&done);
    return NULL;
}

static int names(void) {
    pthread_t t[WORKERS];
    char name[16] = "";
    prctl(PR_GET_NAME, name);
    printf("main prctl: %s\n", name);
    read_comm("/proc/self/comm", comms[0], sizeof comms[0]);
    printf("main comm: %s\n", comms[0]);
    pthread_barrier_init(&named, NULL, WORKERS + 1);
    pthread_barrier_init(&ready, NULL, WORKERS + 1);
    pthread_barrier_init(&done, NULL, WORKERS + 1);
    for (long i = 0; i < WORKERS; i++)
        pthread_create(&t[i], NULL, worker, (void *)(i + 1));
    pthread_setname_np(t[0], "worker-1");
    pthread_barrier_wait(&named);
    pthread_barrier_wait(&ready);
    pthread_getname_np(t[0], name, sizeof name);
    printf("worker 1 getname: %s\n", name);
    for (int i = 1; i <= WORKERS; i++)
        printf("worker %d comm: %s\n", i, comms[i]);
    names_set();
    pthread_barrier_wait(&done);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(t[i], NULL);
    prctl(PR_SET_NAME, "main-renamed");
    read_comm("/proc/self/comm", comms[0], sizeof comms[0]);
    printf("main comm renamed: %s\n", comms[0]);
    return 0;
}

static void *waiter(void *arg) {
    (void)arg;
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&done);
    return NULL;
}

static void *raw_named(void *arg) {
    (void)arg;
    prctl(PR_SET_NAME, "a\x01\xff&");
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&done);
    return NULL;
}

static int rawname(void) {
    pthread_t t;
    pthread_barrier_init(&ready, NULL, 2);
    pthread_barrier_init(&done, NULL, 2);
    pthread_create(&t, NULL, raw_named, NULL);
    pthread_barrier_wait(&ready);
    names_set();
    pthread_barrier_wait(&done);
    pthread_join(t, NULL);
    return 0;
}

static int many(void) {
    static pthread_t t[MANY];
    pthread_barrier_init(&ready, NULL, MANY + 1);
    pthread_barrier_init(&done, NULL, MANY + 1);
    for (int i = 0; i < MANY; i++)
        pthread_create(&t[i], NULL, waiter, NULL);
    pthread_barrier_wait(&ready);
    names_set();
    pthread_barrier_wait(&done);
    for (int i = 0; i < MANY; i++)
        pthread_join(t[i], NULL);
    return 0;
}

static void *spinner(void *arg) {
    long n = (long)arg;
    __atomic_add_fetch(&spinning, 1, __ATOMIC_SEQ_CST);
    while (!stop_spinning)
        spin_count[n]++;
    return NULL;
}

static int spin(void) {
    pthread_t t[SPINNERS];
    for (long i = 0; i < SPINNERS; i++)
        pthread_create(&t[i], NULL, spinner, (void *)i);
    while (__atomic_load_n(&spinning, __ATOMIC_SEQ_CST) < SPINNERS)
        ;
    for (int v = 1; v <= WRITES; v++)
        write_watched(v);
    stop_spinning = 1;
    for (int i = 0; i < SPINNERS; i++)
        pthread_join(t[i], NULL);
    printf("watched = %d\n", watched);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "names";
    if (!strcmp(mode, "spin"))
        return spin();
    if (!strcmp(mode, "many"))
        return many();
    if (!strcmp(mode, "rawname"))
        return rawname();
    return names();
}
