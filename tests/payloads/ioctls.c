// ioctl requests on pipes, sockets, ptys and network interfaces; the output must
// be the same natively and under km (nothing printed depends on the run: no pids,
// no pty numbers).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER 0x5441
#endif

static void result(const char *what, int r) {
    if (r < 0)
        printf("%s: -1 %s\n", what, strerror(errno));
    else
        printf("%s: %d\n", what, r);
}

static void pipes_and_sockets(void) {
    int p[2], on = 1, off = 0, n = -1;
    char buf[8];
    pipe(p);
    result("FIONBIO on", ioctl(p[0], FIONBIO, &on));
    result("read nonblocking", (int)read(p[0], buf, sizeof buf));
    result("O_NONBLOCK set", !!(fcntl(p[0], F_GETFL) & O_NONBLOCK));
    result("FIONBIO off", ioctl(p[0], FIONBIO, &off));
    result("O_NONBLOCK clear", !(fcntl(p[0], F_GETFL) & O_NONBLOCK));
    write(p[1], "hello", 5);
    result("FIONREAD", ioctl(p[0], FIONREAD, &n));
    printf("FIONREAD pipe: %d\n", n);
    result("FIOASYNC on", ioctl(p[0], FIOASYNC, &on));
    result("O_ASYNC set", !!(fcntl(p[0], F_GETFL) & O_ASYNC));
    result("FIOASYNC off", ioctl(p[0], FIOASYNC, &off));
    result("FIOCLEX", ioctl(p[0], FIOCLEX));
    result("FD_CLOEXEC after FIOCLEX", fcntl(p[0], F_GETFD));
    result("FIONCLEX", ioctl(p[0], FIONCLEX));
    result("FD_CLOEXEC after FIONCLEX", fcntl(p[0], F_GETFD));
    result("FIONREAD bad pointer", ioctl(p[0], FIONREAD, (int *)8));
    result("FIONBIO bad pointer", ioctl(p[0], FIONBIO, (int *)8));
    result("TCGETS on a pipe", ioctl(p[0], TCGETS, buf));
    result("unknown request", ioctl(p[0], 0x12345678, buf));
    result("FIOCLEX bad fd", ioctl(99, FIOCLEX));
    close(p[0]);
    close(p[1]);

    int s[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, s);
    write(s[0], "abcdefg", 7);
    n = -1;
    result("TIOCOUTQ", ioctl(s[0], TIOCOUTQ, &n));
    printf("TIOCOUTQ socket: %d\n", n);
    n = -1;
    result("TIOCINQ", ioctl(s[1], TIOCINQ, &n));
    printf("TIOCINQ socket: %d\n", n);
    close(s[0]);
    close(s[1]);
}

static void session_leader(int peer) {
    signal(SIGHUP, SIG_IGN);
    result("child setsid", setsid() > 0);
    result("child TIOCSCTTY", ioctl(peer, TIOCSCTTY, 0));
    pid_t pgrp = -1;
    result("child TIOCGPGRP", ioctl(peer, TIOCGPGRP, &pgrp));
    result("child foreground is its group", pgrp == getpgrp());
    pgrp = getpgrp();
    result("child TIOCSPGRP", ioctl(peer, TIOCSPGRP, &pgrp));
    result("child TIOCNOTTY", ioctl(peer, TIOCNOTTY));
    result("child TIOCGPGRP after TIOCNOTTY", ioctl(peer, TIOCGPGRP, &pgrp));
}

static void ptys(void) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    result("posix_openpt", master >= 0);
    unsigned int ptn = ~0u;
    result("TIOCGPTN", ioctl(master, TIOCGPTN, &ptn));
    result("pty number set", ptn != ~0u);
    result("grantpt", grantpt(master));
    result("unlockpt", unlockpt(master));
    char name[64];
    result("ptsname_r", ptsname_r(master, name, sizeof name));
    result("named under /dev/pts", strncmp(name, "/dev/pts/", 9) == 0);
    int peer = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    result("TIOCGPTPEER", peer >= 0);
    result("peer close-on-exec", fcntl(peer, F_GETFD));
    result("TIOCGPTPEER bad flags", ioctl(master, TIOCGPTPEER, O_CREAT));
    result("isatty peer", isatty(peer));

    struct termios t;
    result("tcgetattr", tcgetattr(peer, &t));
    result("echo on", !!(t.c_lflag & ECHO));
    cfmakeraw(&t);
    result("tcsetattr TCSANOW", tcsetattr(peer, TCSANOW, &t));
    result("tcsetattr TCSADRAIN", tcsetattr(peer, TCSADRAIN, &t));
    result("tcsetattr TCSAFLUSH", tcsetattr(peer, TCSAFLUSH, &t));
    memset(&t, 0, sizeof t);
    tcgetattr(peer, &t);
    result("raw: echo off", !(t.c_lflag & (ECHO | ICANON)));
    result("TCSETS bad pointer", ioctl(peer, TCSETS, (void *)8));
    result("TCGETS bad pointer", ioctl(peer, TCGETS, (void *)8));

    struct winsize ws = {.ws_row = 33, .ws_col = 101}, got = {0};
    result("TIOCSWINSZ", ioctl(master, TIOCSWINSZ, &ws));
    result("TIOCGWINSZ", ioctl(peer, TIOCGWINSZ, &got));
    printf("winsize %d x %d\n", got.ws_row, got.ws_col);

    write(peer, "ping", 4);
    char buf[16] = {0};
    result("read master", (int)read(master, buf, sizeof buf - 1));
    printf("master read: %s\n", buf);
    int n = -1;
    write(master, "xy", 2);
    // The line discipline moves input to the peer's queue asynchronously: wait
    // for it with poll-free blocking reads instead of asking early.
    result("read peer", (int)read(peer, buf, 1));
    result("TIOCINQ peer", ioctl(peer, TIOCINQ, &n));
    printf("peer queue: %d\n", n);
    result("tcflush", tcflush(peer, TCIFLUSH));
    result("TIOCINQ after flush", ioctl(peer, TIOCINQ, &n));
    printf("peer queue after flush: %d\n", n);
    result("tcflow TCOOFF", tcflow(peer, TCOOFF));
    result("tcflow TCOON", tcflow(peer, TCOON));
    result("tcflow bad action", tcflow(peer, 99));
    n = -1;
    result("TIOCOUTQ peer", ioctl(peer, TIOCOUTQ, &n));
    result("TIOCGPGRP without a controlling tty", ioctl(peer, TIOCGPGRP, &n));
    int lock = 1;
    result("TIOCSPTLCK", ioctl(master, TIOCSPTLCK, &lock));
    result("open locked peer", open(name, O_RDWR | O_NOCTTY));

    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        session_leader(peer);
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    result("child exit", WEXITSTATUS(status));
    close(peer);
    close(master);
}

static void interfaces(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifconf ifc = {.ifc_len = 0, .ifc_buf = NULL};
    result("SIOCGIFCONF length", ioctl(s, SIOCGIFCONF, &ifc));
    int needed = ifc.ifc_len;
    result("length is whole ifreqs", needed > 0 && needed % (int)sizeof(struct ifreq) == 0);
    struct ifreq reqs[64];
    ifc.ifc_len = sizeof reqs;
    ifc.ifc_req = reqs;
    result("SIOCGIFCONF", ioctl(s, SIOCGIFCONF, &ifc));
    result("same length", ifc.ifc_len == needed);
    for (int i = 0; i < ifc.ifc_len / (int)sizeof(struct ifreq); i++) {
        struct sockaddr_in *a = (struct sockaddr_in *)&reqs[i].ifr_addr;
        printf("interface %s %s\n", reqs[i].ifr_name, inet_ntoa(a->sin_addr));
    }
    ifc.ifc_len = sizeof(struct ifreq) + 7;
    result("SIOCGIFCONF one entry", ioctl(s, SIOCGIFCONF, &ifc));
    printf("one entry: %d\n", ifc.ifc_len);
    ifc.ifc_len = -5;
    result("SIOCGIFCONF negative length", ioctl(s, SIOCGIFCONF, &ifc));
    printf("negative length: %d\n", ifc.ifc_len);
    ifc.ifc_len = sizeof reqs;
    ifc.ifc_buf = (char *)8;
    result("SIOCGIFCONF bad buffer", ioctl(s, SIOCGIFCONF, &ifc));
    result("SIOCGIFCONF bad ifconf", ioctl(s, SIOCGIFCONF, (void *)8));

    struct ifreq r;
    memset(&r, 0, sizeof r);
    strcpy(r.ifr_name, "lo");
    result("SIOCGIFINDEX", ioctl(s, SIOCGIFINDEX, &r));
    int index = r.ifr_ifindex;
    result("index matches if_nametoindex", index == (int)if_nametoindex("lo"));
    memset(&r, 0, sizeof r);
    r.ifr_ifindex = index;
    result("SIOCGIFNAME", ioctl(s, SIOCGIFNAME, &r));
    printf("name of lo's index: %s\n", r.ifr_name);
    strcpy(r.ifr_name, "lo");
    result("SIOCGIFFLAGS", ioctl(s, SIOCGIFFLAGS, &r));
    printf("lo up %d loopback %d\n", !!(r.ifr_flags & IFF_UP), !!(r.ifr_flags & IFF_LOOPBACK));
    result("SIOCGIFADDR", ioctl(s, SIOCGIFADDR, &r));
    printf("lo addr %s\n", inet_ntoa(((struct sockaddr_in *)&r.ifr_addr)->sin_addr));
    result("SIOCGIFNETMASK", ioctl(s, SIOCGIFNETMASK, &r));
    printf("lo mask %s\n", inet_ntoa(((struct sockaddr_in *)&r.ifr_netmask)->sin_addr));
    result("SIOCGIFMTU", ioctl(s, SIOCGIFMTU, &r));
    printf("lo mtu %d\n", r.ifr_mtu);
    result("SIOCGIFHWADDR", ioctl(s, SIOCGIFHWADDR, &r));
    printf("lo hw family %d\n", r.ifr_hwaddr.sa_family);
    strcpy(r.ifr_name, "nosuchif0");
    result("SIOCGIFINDEX missing", ioctl(s, SIOCGIFINDEX, &r));
    result("SIOCGIFFLAGS bad pointer", ioctl(s, SIOCGIFFLAGS, (void *)8));
    int p[2];
    pipe(p);
    result("SIOCGIFINDEX on a pipe", ioctl(p[0], SIOCGIFINDEX, &r));
    close(s);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pipes_and_sockets();
    ptys();
    interfaces();
    printf("ioctls done\n");
    return 0;
}
