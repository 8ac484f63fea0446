# `handle SIGUSR1 nostop noprint pass` (tests/gdb.rs) on the debuggee's `signals`
# mode: gdb tells the server (QPassSignals) to deliver SIGUSR1 without a stop;
# the handler runs (signalled() sees it) and the remote log shows no SIGUSR1 stop.
set pagination off
set confirm off
set debug remote 1
handle SIGUSR1 nostop noprint pass
break signalled
continue
set debug remote 0
continue
continue
