# tests/clients/containers.sh - a private configuration for the
# containers/* tools (skopeo, podman, buildah): their storage (vfs, works
# without overlay or fuse), runtime state, registries.conf and signature
# policy all live in the run's temp dir, so the machine's own images and
# settings are never read or touched. Sourced by run.sh.

# containers_setup: writes the configuration and exports the variables the
# tools read it from.
containers_setup() {
  local c="$tmp/containers"
  mkdir -p "$c/graph" "$c/run" "$c/libpod-tmp"
  cat >"$c/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$c/graph"
runroot = "$c/run"
CONF
  cat >"$c/containers.conf" <<CONF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$c/events.log"
tmp_dir = "$c/libpod-tmp"
CONF
  cat >"$c/registries.conf" <<CONF
unqualified-search-registries = []
[[registry]]
location = "$reg"
insecure = true
CONF
  printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$c/policy.json"
  export CONTAINERS_STORAGE_CONF="$c/storage.conf"
  export CONTAINERS_CONF="$c/containers.conf"
  export CONTAINERS_REGISTRIES_CONF="$c/registries.conf"
  export REGISTRIES_CONFIG_PATH="$c/registries.conf"
  policy="$c/policy.json"
}

# have TOOL: the tool is installed; otherwise counts a skip for SECTION.
have() {
  command -v "$1" >/dev/null && return 0
  skip "$1 round trips" "$1 is not installed (Debian package $2)"
  return 1
}
