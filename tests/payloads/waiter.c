/* Waits to be signalled from outside. argv[1] = "handler": SIGTERM and SIGINT run a
 * handler that reports and exits 3; otherwise their default action applies. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void on_signal(int sig) {
    const char *msg = sig == SIGTERM ? "handled SIGTERM\n" : "handled SIGINT\n";
    write(1, msg, strlen(msg));
    _exit(3);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "handler") == 0) {
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
    }
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
