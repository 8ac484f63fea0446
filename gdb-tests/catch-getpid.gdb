# `catch syscall getpid` on idcalls' getpid loop: every call stops at its entry
# and its return (km answers getpid in the guest only while nobody may catch it).
set pagination off
set confirm off
catch syscall getpid
commands 1
silent
continue
end
continue
info breakpoints
