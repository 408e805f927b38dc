#!/bin/sh
# make demo: the HA pair of examples/ha-pair.toml, on this machine, in
# network namespaces. Two vipd load balancers (lb1, lb2), three stand-in
# control planes (cp1-cp3: TLS /readyz on 6443, TCP on 50000) and a client
# share one bridge. The demo waits for the election, shows `vipd status`,
# fetches https://VIP:6443/whoami from the client, runs a planned and a
# crash failover drill, and removes everything it created, also on Ctrl-C.
#
# Needs root, iproute2 and Go (to build the stand-in). Environment:
#   VIPD=path/to/vipd   the binary to run (default bin/vipd)
# No traffic leaves the namespaces this script creates.
set -eu

cd "$(dirname "$0")/../.."
VIPD=${VIPD:-$(pwd)/bin/vipd}
case $VIPD in /*) ;; *) VIPD=$(pwd)/$VIPD ;; esac

say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, raw sockets): run sudo make demo"
command -v ip >/dev/null 2>&1 || die "needs iproute2 (ip): apt-get install iproute2"
command -v go >/dev/null 2>&1 || die "needs Go on the PATH to build the stand-in control plane"
[ -x "$VIPD" ] || die "no vipd binary at $VIPD: run make build (or make demo)"

ID=vipd-demo-$$              # every namespace is $ID-<host>
TMP=$(mktemp -d "${TMPDIR:-/tmp}/vipd-demo.XXXXXX")
PIDS=""                      # processes we started, killed by PID on exit
NAMED=""                     # the same as name:pid, to say which one died
NSS=""                       # namespaces we created
T0=$(date +%s)

cleanup() {
	[ -z "${CLEANED:-}" ] || return 0
	CLEANED=1
	trap '' INT TERM HUP     # a second Ctrl-C must not leave half a lab
	set +e
	step "Cleaning up: stopping $(echo $PIDS | wc -w) processes, deleting $(echo $NSS | wc -w) namespaces"
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
	i=0
	while [ $i -lt 40 ]; do
		left=""
		for p in $PIDS; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
		[ -z "$left" ] && break
		sleep 0.1
		i=$((i + 1))
	done
	for p in $left; do kill -KILL "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	for ns in $NSS; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$TMP"
	say "    done: nothing of the demo is left on this machine"
}
trap cleanup EXIT
trap 'say ""; say "demo: interrupted"; exit 130' INT TERM HUP

# ---- helpers ----

# add_host NAME ADDR N: a namespace with eth0 (ADDR/24) on the bridge.
add_host() {
	ns=$ID-$1
	NSS="$NSS $ns"
	ip netns add "$ns"
	ip link add "vd$$h$3" netns "$ns" type veth peer name "vd$$p$3" netns "$ID-sw"
	ip -n "$ns" link set "vd$$h$3" name eth0
	ip -n "$ns" addr add "$2/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" link set lo up
	ip -n "$ID-sw" link set "vd$$p$3" master br0
	ip -n "$ID-sw" link set "vd$$p$3" up
}

# start NAME CMD...: run CMD in NAME's namespace in the background.
start() {
	name=$1
	shift
	ip netns exec "$ID-$name" "$@" >"$TMP/$name.log" 2>&1 &
	PIDS="$PIDS $!"
	NAMED="$NAMED $name:$!"
}

# alive: fail at once, with its log, when a process we started has exited.
alive() {
	for np in $NAMED; do
		if ! kill -0 "${np#*:}" 2>/dev/null; then
			say "demo: ${np%%:*} exited; its log:" >&2
			tail -n 20 "$TMP/${np%%:*}.log" >&2
			exit 1
		fi
	done
}

vstatus() {
	sock=$TMP/$1.sock
	shift
	"$VIPD" status --socket "$sock" "$@" 2>/dev/null
}
# drill NODE ARGS...: run a drill on NODE and print its report.
drill() {
	sock=$TMP/$1.sock
	shift
	out=$("$VIPD" drill failover --socket "$sock" "$@" 2>&1) || die "vipd drill failover $*: $out"
	printf '%s\n' "$out" | sed 's/^/    /'
}
# state NODE: MASTER, BACKUP, INIT, FAULT, or nothing while it starts.
state() { vstatus "$1" | awk '$1 == "vrid-51" { print $3; exit }'; }
# peer_ready NODE PEER: NODE hears PEER's fresh beacon as a ready BACKUP
# (what a drill needs before it hands the VIP over).
peer_ready() {
	vstatus "$1" | awk -v p="$2" '$1 == p && $3 == "BACKUP" && $5 == "true" && !/stale/ { ok = 1 } END { exit !ok }'
}
# healthy NODE: the number of healthy kube-apiserver servers NODE sees.
healthy() { vstatus "$1" | awk '$1 == "kubernetes" { print $NF; exit }'; }

# await SECONDS WHAT CMD...: poll CMD every 0.1 s until it succeeds.
await() {
	limit=$(($1 * 10))
	what=$2
	shift 2
	i=0
	while [ $i -lt $limit ]; do
		alive
		if "$@"; then return 0; fi
		sleep 0.1
		i=$((i + 1))
	done
	say "demo: gave up waiting for: $what" >&2
	for n in lb1 lb2; do
		say "--- last lines of $n's log ---" >&2
		tail -n 15 "$TMP/$n.log" >&2 2>/dev/null
	done
	exit 1
}
is() { [ "$(state "$1")" = "$2" ]; }
master_is() { is "$1" MASTER && is "$2" BACKUP && peer_ready "$1" "$2" && [ "$(healthy "$1")" = 3 ]; }

VIP=192.168.30.30

say "vipd demo: two load balancers, three control planes and a client in network"
say "namespaces on this machine ($ID-*). About 15 seconds; Ctrl-C at any time"
say "removes everything."

step "1/7 Building the stand-in control plane (examples/demo/standin)"
CGO_ENABLED=0 go build -o "$TMP/standin" ./examples/demo/standin
mkdir "$TMP/pki"
"$TMP/standin" pki -dir "$TMP/pki" 192.168.30.31 192.168.30.32 192.168.30.33 "$VIP"
say "    a CA and an apiserver certificate for cp1-cp3 and the VIP: $TMP/pki"

step "2/7 Creating the lab: a bridge and one namespace per host"
NSS="$ID-sw"
ip netns add "$ID-sw"
ip -n "$ID-sw" link add br0 type bridge
ip -n "$ID-sw" link set br0 type bridge stp_state 0 forward_delay 0
ip -n "$ID-sw" link set br0 up
add_host lb1 192.168.30.21 1
add_host lb2 192.168.30.22 2
add_host cp1 192.168.30.31 3
add_host cp2 192.168.30.32 4
add_host cp3 192.168.30.33 5
add_host client 192.168.30.100 6
say "    lb1     192.168.30.21     vipd, priority 150"
say "    lb2     192.168.30.22     vipd, priority 100"
say "    cp1-3   192.168.30.31-33  stand-in kube-apiserver (TLS, /readyz) :6443 and apid :50000"
say "    client  192.168.30.100"
say "    VIP     $VIP         held by whichever vipd is MASTER"
for cp in cp1 cp2 cp3; do
	start "$cp" "$TMP/standin" serve -name "$cp" -dir "$TMP/pki"
done

step "3/7 Starting vipd on lb1 and lb2 with examples/ha-pair.toml"
say "    changed for the lab: the CA path and the control socket, nothing else"
for n in lb1 lb2; do
	sed -e "s|\"/etc/vipd/kubernetes-ca.crt\"|\"$TMP/pki/ca.crt\"|" \
		-e "s|^socket = \"/run/vipd/vipd.sock\"|socket = \"$TMP/$n.sock\"|" \
		examples/ha-pair.toml >"$TMP/$n.toml"
	grep -q "$TMP/pki/ca.crt" "$TMP/$n.toml" && grep -q "$TMP/$n.sock" "$TMP/$n.toml" ||
		die "examples/ha-pair.toml changed: the demo could not set the CA path and socket in it"
done
"$VIPD" check -c "$TMP/lb1.toml" | sed 's/^/    /'
start lb1 "$VIPD" run -c "$TMP/lb1.toml" --node lb1
start lb2 "$VIPD" run -c "$TMP/lb2.toml" --node lb2
say "    waiting for the election and the first health checks..."
await 20 "lb1 MASTER, lb2 BACKUP, 3 healthy servers" master_is lb1 lb2
say "    lb1 is MASTER and holds $VIP; lb2 is BACKUP; all three API servers pass /readyz"

step "4/7 vipd status on both nodes (what an operator sees)"
for n in lb1 lb2; do
	say "---- ip netns exec $ID-$n vipd status"
	vstatus "$n" | sed 's/^/    /'
done

step "5/7 The client reaches the API server through the VIP"
say "    curl https://$VIP:6443/whoami (three times; the stand-in answers with its"
say "    name and the address it saw, which is lb1: the proxy on the master)"
for i in 1 2 3; do
	if command -v curl >/dev/null 2>&1; then
		ip netns exec "$ID-client" curl -sS --max-time 5 --cacert "$TMP/pki/ca.crt" "https://$VIP:6443/whoami"
	else
		ip netns exec "$ID-client" "$TMP/standin" get -ca "$TMP/pki/ca.crt" "https://$VIP:6443/whoami"
	fi | sed 's/^/    /'
done

step "6/7 Planned failover drill on the master: vipd drill failover"
say "    lb1 sends priority 0 and keeps serving until lb2 answers (make before"
say "    break); it probes the VIP every 10 ms and reports what clients saw."
drill lb1 --hold 3s
say "    lb2 is $(state lb2) now; lb1 takes the VIP back after its 3 s hold (preempt = true)..."
await 15 "lb1 MASTER again" master_is lb1 lb2
say "    lb1 is MASTER again"

step "7/7 Crash drill: vipd drill failover --hard"
say "    lb1 stops advertising without a goodbye, as if it crashed: lb2 waits"
say "    3 advert intervals plus a skew (about 0.7 s) before it takes over."
drill lb1 --hard --hold 3s
await 15 "lb1 MASTER again" master_is lb1 lb2
say "    lb1 is MASTER again. Status after the drills:"
say "---- ip netns exec $ID-lb1 vipd status"
vstatus lb1 | sed 's/^/    /'

say ""
say "demo finished in $(($(date +%s) - T0)) s. In the field: install bin/vipd and"
say "examples/vipd.service, copy an examples/*.toml to /etc/vipd/vipd.toml."
