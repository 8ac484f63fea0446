# A payload that faults stops gdb with its signal at the faulting line; continuing
# delivers it (tests/gdb.rs).
set pagination off
set confirm off
continue
bt 1
continue
