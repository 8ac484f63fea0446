# Signals under gdb (tests/gdb.rs): a signal the payload raises stops gdb before it
# is delivered; continuing passes it to the handler; `signal SIGUSR2` delivers
# the signal gdb names (in gdb's numbering on the wire) into the handler.
set pagination off
set confirm off
handle SIGUSR1 stop print
break signalled
continue
continue
signal SIGUSR2
continue
continue
