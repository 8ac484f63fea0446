# `interrupt` while the target is already stopped (tests/gdb.rs): gdb sends Ctrl-C
# to a server that has nothing to interrupt, which ignores it, as gdbserver does;
# `continue` then runs on to the end, with no stop for the Ctrl-C.
set pagination off
set confirm off
break compute
continue
interrupt
continue
info registers rip
p $_siginfo.si_signo
p $_siginfo.si_code
continue
