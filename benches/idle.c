/* Says hello, then waits for the end of its standard input: its peak resident
 * size can be read while it waits. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    char buf[64];
    puts("hello");
    fflush(stdout);
    while (read(0, buf, sizeof buf) > 0)
        ;
    return 0;
}
