#include <stdio.h>
#include "parts.h"

int main(void) {
    printf("%s sum=%ld", greeting(), sum_to(1000));
    for (int i = 0; i < 5; i++)
        printf(" %d", table_entry(i));
    printf("\n");
    return 0;
}
