# catch vfork stops gdb in the parent; gdb detaches the child (follow-fork-mode
# parent), which execs and exits on its own while the parent waits for it.
set pagination off
set confirm off
catch vfork
continue
continue
