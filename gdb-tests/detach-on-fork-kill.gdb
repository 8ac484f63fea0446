# detach-on-fork off: `kill inferiors 2` kills the kept fork child at its
# breakpoint (vKill;<child>); the parent, resumed alone, reaps it killed by
# SIGKILL and exits 3.
set pagination off
set confirm off
set detach-on-fork off
set follow-fork-mode child
break in_child
continue
kill inferiors 2
inferior 1
continue
