# A debugging session on examples/gdbdemo.c, run against `km -g` and against
# Debian's gdbserver with the same checks (tests/gdb.rs).
set pagination off
set confirm off
break compute
continue
bt
info threads
next
step
print a
finish
x/4xb $pc
info registers rip fs_base
watch counter
continue
delete
continue
