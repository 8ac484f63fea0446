# Read and access watchpoints on a global the payload reads in a loop and then
# writes (tests/gdb.rs).
set pagination off
set confirm off
rwatch g
continue
bt 1
continue
delete
awatch g
continue
continue
bt 1
continue
delete
continue
