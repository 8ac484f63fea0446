# Thread names from the payload's comm (prctl, pthread_setname_np, inherited) in
# gdb's thread list (tests/gdb.rs).
set pagination off
set confirm off
break names_set
continue
info threads
continue
