/* Clocks through the vDSO: clock_gettime, gettimeofday and time agree with the
 * syscalls, CLOCK_MONOTONIC never goes back, and a fork child's clocks are right
 * too. Prints "vdso: yes|no", its pid and "ok" lines; exits 1 on a wrong clock. With an
 * argument, the parent first sleeps 1.2 s in four steps (km re-anchors the clocks
 * from then on) and checks them once more after another second. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CALLS 10000
/* How far the vDSO may be from the syscall made right after it: coarse clocks
 * tick every few milliseconds, and a loaded machine may preempt the thread between
 * the two reads. A wrong offset or rate would be off by far more. */
#define SLACK_NS 200000000LL

static long long ns(struct timespec t) {
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int check(const char *who) {
    int bad = 0;
    int clocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME,
                    CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_MONOTONIC_RAW};
    for (unsigned i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
        struct timespec v, s;
        clock_gettime(clocks[i], &v);
        syscall(SYS_clock_gettime, clocks[i], &s);
        long long d = ns(v) - ns(s);
        if (d > SLACK_NS || d < -SLACK_NS) {
            printf("%s: clock %d is %lld ns off the syscall\n", who, clocks[i], d);
            bad = 1;
        }
    }
    struct timespec prev = {0}, t;
    for (int i = 0; i < CALLS; i++) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (ns(t) < ns(prev)) {
            printf("%s: CLOCK_MONOTONIC went back by %lld ns\n", who, ns(prev) - ns(t));
            bad = 1;
        }
        prev = t;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long d = tv.tv_sec - time(NULL);
    if (d > 1 || d < -1) {
        printf("%s: gettimeofday and time differ by %ld s\n", who, d);
        bad = 1;
    }
    if (!bad)
        printf("%s: ok\n", who);
    return bad;
}

int main(int argc, char **argv) {
    (void)argv;
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("vdso: %s\n", getauxval(AT_SYSINFO_EHDR) ? "yes" : "no");
    int bad = 0;
    printf("pid: %d\n", (int)getpid());
    if (argc > 1) {
        for (int i = 0; i < 4; i++)
            usleep(300000);
        bad |= check("parent, refreshed");
        sleep(1);
    }
    bad |= check("parent");
    pid_t pid = fork();
    if (pid == 0)
        _exit(check("child"));
    int st;
    waitpid(pid, &st, 0);
    return bad || !WIFEXITED(st) || WEXITSTATUS(st);
}
