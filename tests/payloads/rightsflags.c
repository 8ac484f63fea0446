// recvmsg's msg_flags after receiving a descriptor in SCM_RIGHTS, without and with
// MSG_CMSG_CLOEXEC; the output must be the same natively and under km.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void send_fd(int sock, int fd) {
    char byte = 'x';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    sendmsg(sock, &msg, 0);
}

static void receive(int sock, int flags, const char *what) {
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof u.buf};
    long n = recvmsg(sock, &msg, flags);
    int fd = -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (c && c->cmsg_type == SCM_RIGHTS)
        memcpy(&fd, CMSG_DATA(c), sizeof fd);
    printf("%s: received %ld, msg_flags %#x, descriptor %s, FD_CLOEXEC %d\n", what, n,
           msg.msg_flags, fd >= 0 ? "yes" : "no", fd >= 0 ? fcntl(fd, F_GETFD) : -1);
    if (fd >= 0)
        close(fd);
}

int main(void) {
    int s[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, s);
    send_fd(s[0], 1);
    receive(s[1], 0, "plain");
    send_fd(s[0], 1);
    receive(s[1], MSG_CMSG_CLOEXEC, "MSG_CMSG_CLOEXEC");
    printf("rightsflags done\n");
    return 0;
}
