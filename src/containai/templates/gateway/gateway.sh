#!/bin/bash
# containai egress gateway entrypoint (SPEC section 15), run as the unprivileged
# `proxy` user with no capabilities (cai creates it so, under runc: docs/decisions.md):
#   squid    the egress policy, on port 3128: /etc/containai/squid.conf, written from
#            CAI_SQUID_CONF (base64, handed in at creation) on the first start and
#            replaced (then `squid -k reconfigure`) by cai afterwards;
#   socat    the workspace's SSH port, published on the host's 127.0.0.1, forwarded
#            to its sshd (a container on an internal network publishes nothing);
#   refuse-dns (under socat) a resolver with no upstream, so that a name looked up
#            directly from the workspace fails at once instead of timing out (no DNS
#            tunnel; dnsmasq needs netlink). Port 53 without a capability: cai sets
#            net.ipv4.ip_unprivileged_port_start for this container's namespace.
#   CAI_SSH_TARGET   host:port of the workspace container's sshd
#   CAI_SSH_LISTEN   the port to listen on for SSH
#   CAI_CLIENT_SUBNET  the workspace network's IPv4 subnet (the resolver's only clients)
set -euo pipefail
conf=/etc/containai/squid.conf
if [[ ! -f $conf && -n ${CAI_SQUID_CONF:-} ]]; then
	base64 -d <<<"$CAI_SQUID_CONF" >"$conf.new"
	mv -f "$conf.new" "$conf"
fi
unset CAI_SQUID_CONF
[[ -f $conf ]] || {
	echo "containai-gateway: missing $conf" >&2
	exit 1
}
: "${CAI_SSH_TARGET:?}" "${CAI_SSH_LISTEN:?}" "${CAI_CLIENT_SUBNET:?}"
: >>/var/log/containai/access.log
rm -f /run/squid/squid.pid
# Each helper is restarted if it ever ends; squid is the container's main process
# (its end ends the container, which the engine restarts: --restart unless-stopped).
forever() { while :; do "$@" || true; sleep 0.5; done; }
# Only the workspace's own network may ask (a spoofed source elsewhere gets nothing).
forever socat -T 2 "UDP4-RECVFROM:53,fork,range=${CAI_CLIENT_SUBNET}" \
	EXEC:/usr/local/lib/containai/refuse-dns &
forever socat -ly "TCP-LISTEN:${CAI_SSH_LISTEN},fork,reuseaddr,nodelay" \
	"TCP:${CAI_SSH_TARGET},nodelay" &
exec squid -N -f "$conf"
