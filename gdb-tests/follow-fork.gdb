# follow-fork-mode child: the fork stops gdb (catch fork), gdb detaches the
# parent and follows the child to a breakpoint only the child reaches; the
# inferiors carry the real pids, which the payload reads with getpid().
set pagination off
set confirm off
set follow-fork-mode child
catch fork
break in_child
continue
print parent_pid
info inferiors
continue
print child_pid
info inferiors
continue
