/* Processes: fork + waitpid statuses, fork + pipe, execve with argv/envp, exec
 * errors, posix_spawn, system(), and the process's view of itself in /proc.
 * Usage: procs HELLO (a payload that prints its argv and environment). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static int counter = 1;

static void show_handler(int sig) {
    (void)sig;
}

static volatile sig_atomic_t usr1;

static void count_usr1(int sig) {
    (void)sig;
    usr1++;
}

static void show(const char *what, int st) {
    if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by %s\n", what, strsignal(WTERMSIG(st)));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: procs HELLO\n");
        return 2;
    }
    int st;
    /* Exit statuses and memory copies. */
    pid_t pid = fork();
    if (pid == 0) {
        counter = 100;
        _exit(counter + 7);
    }
    printf("waitpid returned the child: %d\n", waitpid(pid, &st, 0) == pid);
    show("child", st);
    printf("parent's counter unchanged: %d\n", counter);
    pid = fork();
    if (pid == 0) {
        kill(getpid(), SIGTERM);
        pause();
    }
    waitpid(pid, &st, 0);
    show("killed child", st);
    /* getppid in the child is the parent's pid. */
    int p[2];
    if (pipe(p) != 0) return 1;
    pid_t parent = getpid();
    pid = fork();
    if (pid == 0) {
        close(p[0]);
        char msg[64];
        int n = snprintf(msg, sizeof msg, "child sees its parent: %d\n", getppid() == parent);
        write(p[1], msg, n);
        _exit(0);
    }
    close(p[1]);
    char buf[128];
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("through the pipe: %s", buf);
    close(p[0]);
    waitpid(pid, &st, 0);
    /* Exec errors come back to the caller. */
    char *none[] = {"none", NULL};
    execve("/nonexistent/program", none, environ);
    printf("exec of a missing file: %s\n", strerror(errno));
    execve("/etc/passwd", none, environ);
    printf("exec of a non-executable file: %s\n", strerror(errno));
    FILE *junk = fopen("junk-program", "w");
    if (junk) {
        fputs("neither ELF nor #!\n", junk);
        fclose(junk);
        chmod("junk-program", 0755);
        char *junk_argv[] = {"junk-program", NULL};
        execve("./junk-program", junk_argv, environ);
        printf("exec of an executable that is no program: %s\n", strerror(errno));
        unlink("junk-program");
    }
    /* execve of another payload with argv and envp, output through a pipe. */
    if (pipe(p) != 0) return 1;
    pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        char *args[] = {"-renamed", "first arg", "second", NULL};
        char *env[] = {"ONLY=this", NULL};
        execve(argv[1], args, env);
        _exit(99);
    }
    close(p[1]);
    FILE *in = fdopen(p[0], "r");
    char line[256];
    while (fgets(line, sizeof line, in))
        if (!strncmp(line, "arg", 3) || !strncmp(line, "env", 3))
            printf("exec'd: %s", line);
    fclose(in);
    waitpid(pid, &st, 0);
    show("exec'd child", st);
    /* vfork: the parent goes on only once the child has exec'd or exited. */
    pid = vfork();
    if (pid == 0) {
        usleep(100 * 1000);
        write(1, "vfork child ran first\n", 22);
        _exit(6);
    }
    printf("vfork parent resumed\n");
    waitpid(pid, &st, 0);
    show("vfork child", st);
    /* execve keeps the signal mask and ignored signals (handled ones go back to
     * the default), as /proc/self/status of the new program shows. */
    pid = fork();
    if (pid == 0) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR2);
        sigprocmask(SIG_BLOCK, &set, NULL);
        signal(SIGUSR1, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);
        signal(SIGHUP, show_handler);
        char *grep[] = {"grep", "-E", "^Sig(Blk|Ign|Cgt)", "/proc/self/status", NULL};
        execve("/bin/grep", grep, environ);
        _exit(99);
    }
    waitpid(pid, &st, 0);
    /* posix_spawn and system(). */
    char *sargs[] = {"sh", "-c", "exit 3", NULL};
    if (posix_spawn(&pid, "/bin/sh", NULL, NULL, sargs, environ) == 0) {
        waitpid(pid, &st, 0);
        show("posix_spawn", st);
    }
    st = system("echo system says hi; exit 4");
    show("system", st);
    /* SIGCHLD ignored: children are reaped on their own, wait finds none. */
    signal(SIGCHLD, SIG_IGN);
    pid = fork();
    if (pid == 0)
        _exit(0);
    usleep(200 * 1000);
    int reaped = waitpid(pid, &st, 0);
    printf("SIGCHLD ignored: waitpid gives %d (%s)\n", reaped, strerror(errno));
    signal(SIGCHLD, SIG_DFL);
    /* close_range: marking close-on-exec, then closing. */
    int a = open("/etc/passwd", O_RDONLY), b = dup(a);
    syscall(SYS_close_range, b, b, 4 /* CLOSE_RANGE_CLOEXEC */);
    printf("close_range CLOEXEC: %d %d\n", fcntl(a, F_GETFD), fcntl(b, F_GETFD));
    syscall(SYS_close_range, a, ~0U, 0);
    printf("close_range closed: %d %d\n", fcntl(a, F_GETFD) == -1 && errno == EBADF,
           fcntl(b, F_GETFD) == -1 && errno == EBADF);
    /* kill(0, sig): every process of the caller's group, the caller once. */
    setpgid(0, 0);
    signal(SIGUSR1, count_usr1);
    sigset_t usr1_set, old_set;
    sigemptyset(&usr1_set);
    sigaddset(&usr1_set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1_set, &old_set);
    if (pipe(p) != 0) return 1;
    pid = fork();
    if (pid == 0) {
        close(p[0]);
        write(p[1], "r", 1);
        while (!usr1)
            sigsuspend(&old_set);
        _exit(usr1);
    }
    close(p[1]);
    read(p[0], buf, 1);
    close(p[0]);
    kill(0, SIGUSR1);
    sigprocmask(SIG_SETMASK, &old_set, NULL);
    waitpid(pid, &st, 0);
    printf("kill(0): parent got %d, child got %d\n", (int)usr1, WEXITSTATUS(st));
    /* The process's view of itself. */
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[len > 0 ? len : 0] = 0;
    char *self = realpath(argv[0], NULL);
    printf("/proc/self/exe is the program: %d\n", self && !strcmp(exe, self));
    FILE *maps = fopen("/proc/self/maps", "r");
    int found = 0;
    while (maps && fgets(line, sizeof line, maps))
        found |= self && strstr(line, self) && strstr(line, "r-xp");
    printf("/proc/self/maps shows the program's text: %d\n", found);
    if (maps) fclose(maps);
    FILE *cmd = fopen("/proc/self/cmdline", "r");
    /* Two paths: longer than buf in a deep build directory. */
    char cmdline[8192];
    len = cmd ? fread(cmdline, 1, sizeof cmdline, cmd) : 0;
    printf("/proc/self/cmdline has argv[1]: %d\n", len > 0 && memmem(cmdline, len, argv[1], strlen(argv[1])) != NULL);
    if (cmd) fclose(cmd);
    return 0;
}
