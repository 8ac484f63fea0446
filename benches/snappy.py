# Snapshot benchmark: a python3 that imported json, asyncio, sqlite3, email and
# decimal; with "snap" it takes a snapshot that ends it, and prints "ready" once
# restored (or at once without "snap": the cold start).
import sys
import json, asyncio, sqlite3, email, decimal  # noqa: F401
if sys.argv[1] == "snap":
    sys.path.insert(0, sys.argv[2])
    from kontain import snapshots
    snapshots.take()
print("ready", flush=True)
