#include "parts.h"

const char *greeting(void) { return "built by make -j2:"; }
