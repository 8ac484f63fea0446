# catch exec stops gdb at the new program's entry; a breakpoint set there in the
# new program is hit.
set pagination off
set confirm off
catch exec
continue
info inferiors
break after_exec
continue
continue
