# Single-steps from main through pthread_create's system calls (tests/gdb.rs): each
# stepi over a `syscall` instruction stops at the next one.
set pagination off
set confirm off
break main
continue
stepi 300
p $pc
continue
