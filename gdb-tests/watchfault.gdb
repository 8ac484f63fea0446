# A read watchpoint on a constant, then the payload faults (tests/gdb.rs): its
# SIGSEGV reaches gdb and kills it as without the watchpoint.
set pagination off
set confirm off
rwatch ro
continue
continue
bt 1
continue
