#!/usr/bin/env bash
# The floor of our design (issue 24): a node's whole provisioning in ONE SSH session through
# the bastion, as `npm run bench:engine -- --peer ansible` runs it. Run as root on the node:
#   tar -c -C <rendered/node> consul keepalived nomad vrrp_password \
#     | ssh <node> sudo bash -c "$(cat floor.sh)" floor NODE OVERLAY_ADDRESS SERVERS_HTTP DATACENTER
# The same rendered files, the same validation binaries (consul validate, nomad config
# validate, keepalived -t), restarts only of what changed, the same join checks as our
# install scripts; none of their preflight checks, restart marker or rollback (the floor is
# the least work the design needs, not a product). Assumes a floating-IP-eligible node.
set -euo pipefail
node=$1 address=$2 servers=$3 dc=$4
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
umask 077
tar -x -C "$stage"

# install_changed SRC DEST MODE: installs and returns 0 when DEST differs, 1 when equal.
install_changed() {
  if cmp -s "$1" "$2"; then return 1; fi
  install -D -m "$3" "$1" "$2"
}
# validate_dir AGENT DIR CMD...: the candidate config dir (installed files + staged ones).
candidate() {
  local agent=$1 dir=$2 c
  c=$(mktemp -d -p "$stage")
  cp -p "$dir"/*.hcl "$c/" 2>/dev/null || true
  rm -f "$c/zz-extra.hcl"
  cp "$stage/$agent/$agent.hcl" "$c/"
  if [[ -f "$stage/$agent/zz-extra.hcl" ]]; then cp "$stage/$agent/zz-extra.hcl" "$c/"; fi
  echo "$c"
}
# place AGENT DIR: installs the agent's config files; prints "changed" when one differed.
place() {
  local agent=$1 dir=$2 changed=false
  install_changed "$stage/$agent/$agent.hcl" "$dir/$agent.hcl" 0640 && changed=true
  if [[ -f "$stage/$agent/zz-extra.hcl" ]]; then
    install_changed "$stage/$agent/zz-extra.hcl" "$dir/zz-extra.hcl" 0640 && changed=true
  elif [[ -e "$dir/zz-extra.hcl" ]]; then
    rm -f "$dir/zz-extra.hcl"
    changed=true
  fi
  echo "$changed"
}
until_ok() { # until_ok WHAT COMMAND...: up to 120 s, as our install scripts wait
  local deadline=$((SECONDS + 120))
  until "${@:2}"; do
    ((SECONDS < deadline)) || { echo "$node: $1 timed out" >&2; exit 1; }
    sleep 2
  done
}

# Consul
c=$(candidate consul /etc/consul.d)
consul validate "$c" >/dev/null
changed=$(place consul /etc/consul.d)
if install_changed "$stage/consul/consul-dns.conf" /etc/systemd/system/consul.service.d/10-dns-port.conf 0644; then
  systemctl daemon-reload
  changed=true
fi
systemctl enable consul
if [[ $changed == true ]]; then systemctl restart consul; else systemctl is-active --quiet consul || systemctl start consul; fi
consul_joined() {
  consul members -http-addr=http://127.0.0.1:8500 -status=alive 2>/dev/null | awk -v n="$node" -v a="$address:" '$1 == n && index($2, a) == 1 { m = 1 } END { exit !m }' &&
    consul catalog nodes -http-addr="$servers" 2>/dev/null | awk -v n="$node" -v a="$address" -v dc="$dc" '$1 == n && $3 == a && $4 == dc { f = 1 } END { exit !f }'
}
until_ok "Consul's join" consul_joined

# keepalived
command -v keepalived >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get -q -y install --no-install-recommends keepalived
getent passwd keepalived_script >/dev/null || useradd --system --no-log-init --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin keepalived_script
install_changed "$stage/keepalived/60-floating-ip.conf" /etc/sysctl.d/60-floating-ip.conf 0644 || true
sysctl -q -p /etc/sysctl.d/60-floating-ip.conf >/dev/null
password=$(<"$stage/vrrp_password")
template=$(<"$stage/keepalived/keepalived.conf")
printf '%s\n' "${template//@@VRRP_PASSWORD@@/"$password"}" >"$stage/keepalived.conf"
awk '$1 == "script_user" { print "  script_user root"; next } { print }' "$stage/keepalived.conf" >"$stage/check.conf"
keepalived -t -f "$stage/check.conf" >/dev/null 2>&1
systemctl enable keepalived
if install_changed "$stage/keepalived.conf" /etc/keepalived/keepalived.conf 0600; then
  if systemctl is-active --quiet keepalived; then systemctl reload keepalived; else systemctl start keepalived; fi
else
  systemctl is-active --quiet keepalived || systemctl start keepalived
fi

# Nomad
c=$(candidate nomad /etc/nomad.d)
nomad config validate "$c" >/dev/null
changed=$(place nomad /etc/nomad.d)
printf 'NOMAD_ADDR=%q\n' "http://$address:4646" >/etc/nomad.d/cli.env
export NOMAD_ADDR="http://$address:4646"
systemctl enable nomad
if [[ $changed == true ]]; then systemctl restart nomad; else systemctl is-active --quiet nomad || systemctl start nomad; fi
nomad_joined() { [[ "$(nomad node status -self -t '{{ .Status }} {{ .HTTPAddr }} {{ .Datacenter }}' 2>/dev/null)" == "ready $address:4646 $dc" ]]; }
until_ok "Nomad's join" nomad_joined
echo "$node: done"
