#!/bin/sh
# Makes ROOTFS: this system's python3 (Debian 12: /usr/bin/python3.11), its
# standard library (less tests, IDLE, tkinter and the like) and every shared
# library the interpreter and its extension modules load, at their paths, with the
# dynamic loader. The result runs as an image FROM scratch (Dockerfile beside).
#   make-rootfs.sh ROOTFS
set -eu
[ $# -eq 1 ] || { echo "usage: $0 ROOTFS" >&2; exit 2; }
ROOTFS=$1
PYTHON=$(readlink -f /usr/bin/python3)
VERSION=$(basename "$PYTHON")
STDLIB=/usr/lib/$VERSION

mkdir -p "$ROOTFS/usr/bin" "$ROOTFS/usr/lib" "$ROOTFS/tmp"
cp "$PYTHON" "$ROOTFS$PYTHON"
ln -sf "$VERSION" "$ROOTFS/usr/bin/python3"
tar -C / --exclude=__pycache__ --exclude="$VERSION/test" --exclude="$VERSION/idlelib" \
    --exclude="$VERSION/tkinter" --exclude="$VERSION/turtledemo" \
    --exclude="$VERSION/ensurepip" --exclude="$VERSION/lib2to3" \
    -cf - "${STDLIB#/}" | tar -C "$ROOTFS" -xf -

# The libraries (and the loader) named by ldd for the interpreter and each
# extension module, copied with their links resolved, at the paths ldd gives.
for lib in $( { ldd "$PYTHON"; for so in "$STDLIB"/lib-dynload/*.so; do ldd "$so"; done; } |
              sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p' | sort -u); do
  mkdir -p "$ROOTFS$(dirname "$lib")"
  cp -L "$lib" "$ROOTFS$lib"
done
