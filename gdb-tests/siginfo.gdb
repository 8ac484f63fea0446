# gdb's $_siginfo (tests/gdb.rs) on the siginfo payload: at a breakpoint (the
# int3's SIGTRAP), at a raised SIGUSR1 (tgkill's SI_TKILL) and at a SIGSEGV
# (its fault address), which gdb then changes before the handler sees it.
set pagination off
set confirm off
break ready
break handled
continue
p $_siginfo.si_signo
p $_siginfo.si_code
continue
p $_siginfo.si_signo
p $_siginfo.si_code
continue
continue
p $_siginfo.si_signo
p $_siginfo.si_code
p $_siginfo._sifields._sigfault.si_addr
set $_siginfo._sifields._sigfault.si_addr = (void *) 0x20
continue
continue
