# quit while the payload is stopped (tests/gdb.rs): gdb kills a payload km started
# for it (-g), as with gdbserver, and detaches from one it attached to.
set pagination off
set confirm off
break compute
continue
quit
