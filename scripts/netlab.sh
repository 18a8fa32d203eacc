#!/usr/bin/env bash
# A small LAN on one machine, like the class's computers: a server host, two client hosts and a
# host for the bench's coordinator (an ipyparallel controller), each in its own Linux network
# namespace with its own address, joined by veth pairs to a bridge (the "switch", in a fifth
# namespace). Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN).
#
#   sudo scripts/netlab.sh up [PREFIX]            # PREFIX-srv 192.0.2.1, -c1 .2, -c2 .3, -ctl .4
#   sudo ip netns exec lab-srv .venv/bin/python -m libsrv serve --host 192.0.2.1
#   sudo ip netns exec lab-c1 .venv/bin/python -m libsrv call ping --endpoint tcp://192.0.2.1:5555
#   sudo scripts/netlab.sh link c1 down [PREFIX]  # pull c1's cable; "up" plugs it back
#   sudo scripts/netlab.sh down [PREFIX]          # remove the lab and end what runs in it
#
# The addresses are from 192.0.2.0/24 (TEST-NET-1, RFC 5737): they exist only inside the lab,
# which has no route to anything else.
set -euo pipefail

net=192.0.2
usage() { sed -n '2,13p' "$0" >&2; exit 2; }

up() {
  local p=$1 n=1
  ip netns add "$p-lan"
  ip -n "$p-lan" link add br0 type bridge
  ip -n "$p-lan" link set br0 up
  for host in srv c1 c2 ctl; do
    ip netns add "$p-$host"
    ip link add eth0 netns "$p-$host" type veth peer name "$host" netns "$p-lan"
    ip -n "$p-$host" addr add "$net.$n/24" dev eth0
    ip -n "$p-$host" link set lo up
    ip -n "$p-$host" link set eth0 up
    ip -n "$p-lan" link set "$host" master br0
    ip -n "$p-lan" link set "$host" up
    n=$((n + 1))
  done
}

down() {
  local p=$1
  for ns in "$p-srv" "$p-c1" "$p-c2" "$p-ctl" "$p-lan"; do
    # what still runs on a host goes with it (a killed controller's schedulers, say)
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}

case "${1:-}" in
  up) up "${2:-lab}" ;;
  down) down "${2:-lab}" ;;
  link)
    [ $# -ge 3 ] || usage
    ip -n "${4:-lab}-$2" link set eth0 "$3"
    if [ "$3" = up ]; then  # the prefix route comes back with the link; make sure of it
      ip -n "${4:-lab}-$2" route replace "$net.0/24" dev eth0 2>/dev/null || true
    fi
    ;;
  *) usage ;;
esac
