# Forks while other threads are inside km's calls (forkbusy.c), with gdb attached:
# every thread's syscall asks the debugger's state whether gdb is attached, so a
# fork child km that copied it while another thread held it would hang. gdb
# detaches each child (detach-on-fork, as by default) and the parent runs to its
# exit.
set pagination off
set confirm off
continue
