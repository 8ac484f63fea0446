/* Connects to its own km's gdb stub (km --gdb-listen -gPORT): argv[1] = PORT,
 * argv[2] = what it sends: "nothing", "garbage" or "packet" (a valid '?' packet).
 * Prints "connected", then what the stub did with the connection, then waits to be
 * signalled from outside. */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("connect");
        return 1;
    }
    printf("connected\n");
    fflush(stdout);
    const char *send = strcmp(argv[2], "garbage") == 0  ? "hello stub\n"
                       : strcmp(argv[2], "packet") == 0 ? "+$?#3f"
                                                        : "";
    if (*send && write(s, send, strlen(send)) < 0)
        perror("write");
    char buf[256];
    ssize_t n = read(s, buf, sizeof buf);
    /* A close with our bytes still unread reaches us as a reset (ECONNRESET). */
    int closed = n == 0 || (n < 0 && errno == ECONNRESET);
    printf("%s\n", closed ? "closed by the stub" : n > 0 ? "answered by the stub" : "read failed");
    fflush(stdout);
    for (;;)
        pause();
}
