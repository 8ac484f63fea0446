# Single-stepping through clone3 (pthread_create): the new thread must not inherit
# the stepping thread's trap flag, and the step ends in the parent.
set pagination off
set confirm off
break __clone3
continue
stepi 12
info threads
delete
continue
