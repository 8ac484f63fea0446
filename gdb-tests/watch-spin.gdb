# A write watchpoint while several threads spin: each of main's 20 writes is
# charged to main, whose instruction wrote, never to a spinning thread
# (tests/gdb.rs).
set pagination off
set confirm off
break write_watched
continue
delete 1
watch watched
set $i = 0
while $i < 20
  continue
  set $i = $i + 1
end
delete
continue
