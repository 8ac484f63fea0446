# `catch syscall write`: the payload stops at the syscall's entry (RAX = -ENOSYS)
# and at its return (RAX = the bytes written), then runs to its end.
set pagination off
set confirm off
catch syscall write
continue
p $rax
p $orig_rax
continue
p $rax > 0
delete
continue
