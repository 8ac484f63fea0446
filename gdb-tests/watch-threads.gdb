# A write watchpoint set before a thread exists sees that thread's write, and
# names it (tests/gdb.rs).
set pagination off
set confirm off
break watch_armed
continue
watch shared
continue
continue
