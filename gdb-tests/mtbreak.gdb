# Breakpoints hit by 8 threads at once (tests/gdb.rs, payload mtbreak.c): each of
# the 800 hits of work() is reported once, a conditional breakpoint in cond() stops
# once per thread, an ignore count skips the first 750 hits of skip().
set pagination off
set confirm off
break work
set $n = 0
while $n < 800
  continue
  set $n = $n + 1
end
info breakpoints
delete
break cond if i == 50
set $n = 0
while $n < 8
  continue
  set $n = $n + 1
end
info breakpoints
delete
break skip
ignore 3 750
set $n = 0
while $n < 50
  continue
  set $n = $n + 1
end
info breakpoints
delete
continue
