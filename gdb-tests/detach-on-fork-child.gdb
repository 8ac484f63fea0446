# detach-on-fork off with follow-fork-mode child: gdb follows the child and
# keeps the parent stopped as inferior 1; continue resumes only the child
# (vCont;c:p<child>.-1) to a breakpoint and to its exit, then the parent runs
# on, reaps it and exits.
set pagination off
set confirm off
set detach-on-fork off
set follow-fork-mode child
break in_child
continue
info inferiors
print child_pid
continue
inferior 1
print parent_pid
continue
