# follow-fork-mode child with vfork: gdb follows the vfork child (keeping the
# parent, held in vfork, as inferior 1 until the child execs) to a breakpoint
# before its exec, catches the child's exec, then a breakpoint in the new
# program; the parent, detached, reaps the child.
set pagination off
set confirm off
set follow-fork-mode child
break before_exec
catch exec
continue
info inferiors
continue
info inferiors
break after_exec
continue
continue
