/* km's vDSO: clock_gettime, gettimeofday and time without leaving the guest.
 *
 * Time is the guest's TSC (rdtsc is not trapped) scaled from a base that km
 * refreshes in `km_vvar` (a page of this image that km writes from the host,
 * under a sequence count). Clocks km does not publish, and any call made while km
 * has not published yet, fall back to the real syscall. Built freestanding by
 * build.rs; the layout of struct km_vvar is mirrored in src/vdso.rs. */
#include <stdint.h>

struct timespec_k { int64_t tv_sec; int64_t tv_nsec; };
struct timeval_k { int64_t tv_sec; int64_t tv_usec; };

#define CLOCKS 12

struct km_vvar {
    uint32_t seq;        /* odd while km writes */
    uint32_t valid;      /* 0: use the syscall */
    uint64_t tsc_base;   /* guest TSC at the base instant */
    uint64_t mult;       /* nanoseconds per tick, << shift */
    uint32_t shift;
    uint32_t published;  /* bit N: clock N is served here */
    int64_t base_ns[CLOCKS]; /* each clock at tsc_base, in ns */
};

__attribute__((section(".km_vvar"), aligned(4096), used))
static const volatile struct km_vvar km_vvar = {0};

static long sys2(long nr, long a, long b) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b) : "rcx", "r11", "memory");
    return ret;
}

static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* Nanoseconds on `clock`, or -1 when km does not serve it. */
static int64_t now_ns(int clock) {
    if (clock < 0 || clock >= CLOCKS)
        return -1;
    for (;;) {
        uint32_t seq = km_vvar.seq;
        if (seq & 1)
            continue;
        __asm__ volatile("" ::: "memory");
        if (!km_vvar.valid || !(km_vvar.published & (1u << clock)))
            return -1;
        uint64_t delta = rdtsc() - km_vvar.tsc_base;
        if ((int64_t)delta < 0)
            delta = 0;
        int64_t ns = km_vvar.base_ns[clock] +
                     (int64_t)(((unsigned __int128)delta * km_vvar.mult) >> km_vvar.shift);
        __asm__ volatile("" ::: "memory");
        if (km_vvar.seq == seq)
            return ns;
    }
}

int __vdso_clock_gettime(int clock, struct timespec_k *ts) {
    int64_t ns = now_ns(clock);
    if (ns < 0)
        return (int)sys2(228 /* clock_gettime */, clock, (long)ts);
    ts->tv_sec = ns / 1000000000;
    ts->tv_nsec = ns % 1000000000;
    return 0;
}

int __vdso_gettimeofday(struct timeval_k *tv, void *tz) {
    int64_t ns = now_ns(0);
    if (ns < 0 || tz)
        return (int)sys2(96 /* gettimeofday */, (long)tv, (long)tz);
    if (tv) {
        tv->tv_sec = ns / 1000000000;
        tv->tv_usec = ns % 1000000000 / 1000;
    }
    return 0;
}

long __vdso_time(long *t) {
    int64_t ns = now_ns(0);
    if (ns < 0)
        return sys2(201 /* time */, (long)t, 0);
    long s = ns / 1000000000;
    if (t)
        *t = s;
    return s;
}

int __vdso_clock_getres(int clock, struct timespec_k *res) {
    return (int)sys2(229 /* clock_getres */, clock, (long)res);
}

int __vdso_getcpu(unsigned *cpu, unsigned *node, void *cache) {
    (void)cache;
    return (int)sys2(309 /* getcpu */, (long)cpu, (long)node);
}

int clock_gettime(int, struct timespec_k *) __attribute__((weak, alias("__vdso_clock_gettime")));
int gettimeofday(struct timeval_k *, void *) __attribute__((weak, alias("__vdso_gettimeofday")));
long time(long *) __attribute__((weak, alias("__vdso_time")));
int clock_getres(int, struct timespec_k *) __attribute__((weak, alias("__vdso_clock_getres")));
int getcpu(unsigned *, unsigned *, void *) __attribute__((weak, alias("__vdso_getcpu")));
