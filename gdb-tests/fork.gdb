# A breakpoint in code both sides of a fork run: gdb stays with the parent, and the
# child (which gdb does not follow) runs without it.
set pagination off
set confirm off
break reader
continue
delete
continue
