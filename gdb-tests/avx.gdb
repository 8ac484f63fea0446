# The YMM registers (tests/gdb.rs): the payload's pattern is visible in the upper
# halves, and a value gdb writes there is what the thread runs with.
set pagination off
set confirm off
break avx_loaded
continue
p/x $ymm0.v4_int64
set var $ymm0.v4_int64[3] = 0x42
stepi
p/x $ymm0.v4_int64
info registers ymm0
continue
