#include "parts.h"

static const int squares[] = {0, 1, 4, 9, 16};

int table_entry(int i) { return squares[i % 5]; }
