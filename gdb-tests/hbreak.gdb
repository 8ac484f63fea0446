# hbreak (tests/gdb.rs): a hardware breakpoint stops like a software one; a
# software breakpoint at the same address outlives deleting it.
set pagination off
set confirm off
hbreak compute
break compute
continue
delete 1
info breakpoints
delete
continue
