# $_siginfo at km's debug stops (tests/gdb.rs), as Linux shows them to gdbserver:
# the first stop (execve's SIGTRAP, SI_USER), a thread stopped because another
# hit a breakpoint (gdbserver's SIGSTOP, SI_TKILL), a single-step (TRAP_TRACE at
# the new pc), a write watchpoint (TRAP_HWBKPT at the pc after the write) and a
# syscall-entry catchpoint (SIGTRAP|0x80).
set pagination off
set confirm off
p $_siginfo.si_signo
p $_siginfo.si_code
break compute
continue
thread 2
p $_siginfo.si_signo
p $_siginfo.si_code
thread 1
stepi
p $_siginfo.si_signo
p $_siginfo.si_code
p $_siginfo._sifields._sigfault.si_addr == $pc
watch counter
continue
p $_siginfo.si_code
p $_siginfo._sifields._sigfault.si_addr == $pc
catch syscall write
continue
p $_siginfo.si_code
delete
continue
