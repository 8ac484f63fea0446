/* Exits with argv[1] via exit(), or returns argv[2] from main when argv[1] is "return". */
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "return") == 0)
        return atoi(argv[2]);
    exit(argc > 1 ? atoi(argv[1]) : 0);
}
