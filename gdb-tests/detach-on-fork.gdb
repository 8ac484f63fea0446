# detach-on-fork off (follow-fork-mode parent): gdb keeps the fork child as
# inferior 2 on the same connection; with schedule-multiple both run, the child
# stops at a breakpoint only it reaches, and each inferior's pid is the one the
# process reads with getpid(); then one inferior at a time (the parent would
# otherwise reap the child as it exits) runs to its own exit, the parent through
# a breakpoint after it has reaped the child.
set pagination off
set confirm off
set detach-on-fork off
set schedule-multiple on
break in_child
continue
info inferiors
print child_pid
inferior 1
print parent_pid
set schedule-multiple off
inferior 2
continue
inferior 1
break reaped
continue
continue
