# 1000 single-steps from main through printf's system calls (fstat, ioctl, write):
# the payload is still stopped under gdb afterwards (tests/gdb.rs).
set pagination off
set confirm off
break main
continue
stepi 1000
p $pc
kill
