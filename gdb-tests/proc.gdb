# `info proc` and `info proc mappings` read the payload's /proc files through the
# stub (not the host's pid 1 or km's own), then `kill` ends it as with gdbserver.
set pagination off
set confirm off
break compute
continue
info proc
info proc mappings
kill
