# follow-fork-mode child with posix_spawn (a CLONE_VM|CLONE_VFORK clone): gdb
# follows the spawned child through its exec to a breakpoint in the new
# program; the parent, detached once the child has exec'd, reaps it.
set pagination off
set confirm off
set follow-fork-mode child
catch exec
continue
info inferiors
break after_exec
continue
continue
