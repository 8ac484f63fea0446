# A dynamically linked payload: gdb learns its shared objects from the stub's
# qXfer:libraries-svr4 reply (the linker's link map), shown raw and as gdb sees it.
set pagination off
set confirm off
break compute
continue
info sharedlibrary
maint packet qXfer:libraries-svr4:read::0,fff
continue
