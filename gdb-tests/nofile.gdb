# gdb started without the executable (tests/gdb.rs): it takes the path from the
# stub (qXfer:exec-file), reads the file through host I/O (vFile), and shows the
# auxiliary vector and the thread names.
set pagination off
set confirm off
info auxv
break compute
continue
info threads
continue
