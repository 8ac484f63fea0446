# `handle SIG nostop noprint pass` for CPU exceptions' signals (tests/gdb.rs), on
# fault.c's `div0` and `null`: SIGFPE goes to the payload without a stop and
# kills it; SIGSEGV is still reported first (gdbserver takes SIGSEGV, SIGILL and
# SIGTRAP for possible breakpoint traps), and gdb passes it on.
set pagination off
set confirm off
set debug remote 1
handle SIGFPE nostop noprint pass
handle SIGSEGV nostop noprint pass
continue
