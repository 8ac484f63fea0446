/* sendmsg/recvmsg: a descriptor passed in SCM_RIGHTS over a socketpair, a UDP
 * datagram gathered from two buffers with its source address, and sendmmsg. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int main(void) {
    int sv[2], p[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || pipe(p) != 0)
        return 1;
    char ctl[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec iov = {"fd", 2};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &p[1], sizeof(int));
    printf("sendmsg with a descriptor: %zd\n", sendmsg(sv[0], &m, 0));
    char buf[64] = {0}, rctl[CMSG_SPACE(sizeof(int))];
    struct iovec riov = {buf, sizeof buf};
    struct msghdr r = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = rctl, .msg_controllen = sizeof rctl};
    printf("recvmsg: %zd [%s]\n", recvmsg(sv[1], &r, MSG_CMSG_CLOEXEC), buf);
    struct cmsghdr *rc = CMSG_FIRSTHDR(&r);
    int got = -1;
    if (rc && rc->cmsg_type == SCM_RIGHTS)
        memcpy(&got, CMSG_DATA(rc), sizeof(int));
    printf("received descriptor is new: %d, close-on-exec: %d\n", got > p[1], fcntl(got, F_GETFD));
    write(got, "via the passed end", 18);
    memset(buf, 0, sizeof buf);
    read(p[0], buf, sizeof buf);
    printf("pipe read [%s]\n", buf);

    int u1 = socket(AF_INET, SOCK_DGRAM, 0), u2 = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a1 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)}, a2 = a1;
    socklen_t l = sizeof a1;
    bind(u1, (struct sockaddr *)&a1, sizeof a1);
    bind(u2, (struct sockaddr *)&a2, sizeof a2);
    getsockname(u1, (struct sockaddr *)&a1, &l);
    getsockname(u2, (struct sockaddr *)&a2, &l);
    struct iovec parts[2] = {{"gathered ", 9}, {"datagram", 8}};
    struct msghdr s = {.msg_name = &a2, .msg_namelen = sizeof a2, .msg_iov = parts, .msg_iovlen = 2};
    printf("sendmsg datagram: %zd\n", sendmsg(u1, &s, 0));
    struct sockaddr_in from;
    memset(buf, 0, sizeof buf);
    struct msghdr d = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &riov, .msg_iovlen = 1};
    ssize_t n = recvmsg(u2, &d, 0);
    printf("recvmsg datagram: %zd [%s] from the sender: %d\n", n, buf,
           d.msg_namelen == sizeof from && from.sin_port == a1.sin_port);
    struct mmsghdr mm[2] = {{.msg_hdr = s}, {.msg_hdr = s}};
    int sent = sendmmsg(u1, mm, 2, 0);
    printf("sendmmsg: %d sent %u %u\n", sent, mm[0].msg_len, mm[1].msg_len);
    return 0;
}
