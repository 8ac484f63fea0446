#!/bin/sh
# Installs km and krun on a node and registers krun as containerd's runtime
# handler `kontain` (the RuntimeClass's handler): the runc shim with krun as its
# binary. Run by the kontain-installer DaemonSet (installer.yaml) with the node's
# /opt/kontain and /etc/containerd mounted under $HOST; by hand, run it with HOST=.
#
# Idempotent: binaries already installed are left alone, the runtime entry is
# added once, and containerd restarts only when its configuration changed.
#   HOST                 where the node's files are mounted (default /host)
#   SRC                  the km and krun to install (default /kontain/bin)
#   PREFIX               where on the node (default /opt/kontain)
#   CONTAINERD_CONFIG    containerd's configuration on the node (default /etc/containerd/config.toml)
#   RESTART_CONTAINERD   how to restart containerd (default: systemctl in the node's namespaces)
set -eu

HOST=${HOST-/host}
SRC=${SRC:-/kontain/bin}
PREFIX=${PREFIX:-/opt/kontain}
CONFIG=$HOST${CONTAINERD_CONFIG:-/etc/containerd/config.toml}
RESTART=${RESTART_CONTAINERD:-nsenter --target 1 --mount --uts --ipc --net --pid -- systemctl restart containerd}

say() { echo "install-kontain: $*"; }

# Copies $1 to $PREFIX/bin unless the same file is there; the new file replaces the
# old one by rename, so a km running from it is not disturbed.
install_binary() {
  dst=$HOST$PREFIX/bin/$1
  if cmp -s "$SRC/$1" "$dst"; then
    say "$PREFIX/bin/$1 is up to date"
    return
  fi
  mkdir -p "$HOST$PREFIX/bin"
  cp "$SRC/$1" "$dst.new"
  chmod 755 "$dst.new"
  mv -f "$dst.new" "$dst"
  say "installed $PREFIX/bin/$1"
}

# containerd's CRI plugin section for the configuration's version (2: containerd
# 1.x; 3: containerd 2.x).
cri_plugin() {
  case "$(sed -n 's/^[[:space:]]*version[[:space:]]*=[[:space:]]*\([0-9]*\).*/\1/p' "$CONFIG" | head -n 1)" in
    2) echo 'io.containerd.grpc.v1.cri' ;;
    3) echo 'io.containerd.cri.v1.runtime' ;;
    *) say "$CONFIG: unsupported configuration version (need version = 2 or 3)" >&2; exit 1 ;;
  esac
}

# Adds the `kontain` runtime to containerd's configuration; returns 1 when it
# was there already.
register_runtime() {
  mkdir -p "$(dirname "$CONFIG")"
  [ -s "$CONFIG" ] || echo 'version = 2' > "$CONFIG"
  plugin=$(cri_plugin)
  table="plugins.\"$plugin\".containerd.runtimes.kontain"
  if grep -qF "[$table]" "$CONFIG"; then
    say "containerd's runtime kontain is already configured"
    return 1
  fi
  cat >> "$CONFIG" <<TOML

# Added by install-kontain.sh: the RuntimeClass kontain runs containers under km.
[$table]
  runtime_type = "io.containerd.runc.v2"
  # krun reads km's options from this annotation of a pod.
  pod_annotations = ["app.kontain.*"]
  container_annotations = ["app.kontain.*"]
[$table.options]
  BinaryName = "$PREFIX/bin/krun"
TOML
  say "added the runtime kontain to $CONFIG"
}

install_binary km
install_binary krun
if register_runtime; then
  say "restarting containerd"
  $RESTART
fi
