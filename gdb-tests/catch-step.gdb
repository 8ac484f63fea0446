# stepi from a syscall-entry catchpoint runs the syscall and stops right after it.
set pagination off
set confirm off
catch syscall write
continue
delete
stepi
p $rax > 0
continue
