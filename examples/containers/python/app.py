"""A small Python application using the interpreter's C libraries (sqlite3, zlib,
hashlib, json), run from an image FROM scratch holding Debian's python3."""
import hashlib
import json
import os
import sqlite3
import sys
import zlib

db = sqlite3.connect(":memory:")
db.execute("create table t (k text, v integer)")
db.executemany("insert into t values (?, ?)", [(f"k{i}", i * i) for i in range(100)])
total = db.execute("select sum(v) from t").fetchone()[0]
data = json.dumps({"total": total, "args": sys.argv[1:]}, sort_keys=True).encode()

print("sysname:", os.uname().sysname)
print("python:", sys.version.split()[0], "sqlite:", sqlite3.sqlite_version)
print("json:", data.decode())
print("sha256:", hashlib.sha256(data).hexdigest())
print("zlib round trip:", zlib.decompress(zlib.compress(data * 50)) == data * 50)
