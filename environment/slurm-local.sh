#!/usr/bin/env bash
# A throwaway single-node Slurm on this machine, for testing `peft sweep --export slurm` as a user would run it.
#   bash environment/slurm-local.sh start DIR   -> installs Debian's slurm + munge if missing (root), writes DIR/slurm.conf,
#                                                 starts a private munged, slurmctld and slurmd; prints `export SLURM_CONF=...`
#   bash environment/slurm-local.sh stop DIR    -> stops exactly the daemons that start wrote PIDs for (DIR/*.pid)
# Everything lives under DIR (config, state, spool, logs, munge socket, PID files) on free ports, so it touches no
# system Slurm or munge and two copies can run side by side. Needs root: slurmd runs jobs as their users.
# Debian's packages cannot start their services here (no systemd; policy-rc.d), so the daemons start directly.
set -euo pipefail
cmd="${1:-}"; dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

stop() {
    # Jobs first (their slurmstepd would outlive slurmd), then the daemons; munged last: the Slurm daemons
    # authenticate through it while shutting down.
    if [ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
        SLURM_CONF="$dir/slurm.conf" scancel --quiet --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 100); do [ -z "$(SLURM_CONF="$dir/slurm.conf" squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
    fi
    for name in slurmd slurmctld munged; do
        local f="$dir/$name.pid"
        [ -f "$f" ] || continue
        local pid; pid="$(cat "$f")"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
        fi
        rm -f "$f"
    done
}

if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "slurm-local: needs root (slurmd runs jobs as their owners)" >&2; exit 3; }

missing=()
for p in slurmctld slurmd slurm-client munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "slurm-local: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -f /etc/munge/munge.key ] || { echo "slurm-local: /etc/munge/munge.key missing (Debian's munge creates it)" >&2; exit 3; }

dir="$(mkdir -p "$dir" && cd "$dir" && pwd)"
chmod 755 "$dir"
install -d -m 755 "$dir/state" "$dir/spool" "$dir/log"
install -d -m 755 -o munge -g munge "$dir/munge"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ctld_port="$(free_port)"; d_port="$(free_port)"
[ "$ctld_port" != "$d_port" ] || d_port="$(free_port)"
host="$(hostname -s)"
node="$(slurmd -C | head -1)"   # NodeName=<host> CPUs=... RealMemory=...
cat > "$dir/slurm.conf" <<CONF
# Written by environment/slurm-local.sh: a single-node test cluster, everything under $dir.
ClusterName=peftlocal
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
KillWait=30
$node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"
trap 'echo "slurm-local: start failed; logs in $dir/log" >&2; stop' ERR
runuser -u munge -- /usr/sbin/munged --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
for _ in $(seq 50); do [ -s "$dir/munge/munged.pid" ] && break; sleep 0.1; done
cp "$dir/munge/munged.pid" "$dir/munged.pid"
/usr/sbin/slurmctld
/usr/sbin/slurmd
# Ready when the node is idle (slurmd registered with slurmctld).
for _ in $(seq 150); do
    state="$(sinfo -h -n "$host" -o %T 2>/dev/null || true)"
    [ "$state" = idle ] && break
    sleep 0.2
done
[ "$state" = idle ] || { echo "slurm-local: node $host is '$state', not idle" >&2; false; }
trap - ERR
echo "export SLURM_CONF=$dir/slurm.conf"
