# Attached to a running payload (ci/hwkvm/run.sh against `km --gdb-listen`): its
# threads and stack, then detach, leaving it running.
set pagination off
set confirm off
info threads
bt
detach
