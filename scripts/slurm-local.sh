#!/usr/bin/env bash
# Start (or stop) a single-node SLURM cluster on this machine, for testing the slurm
# profile for real: Debian's slurm-wlm + munge, one partition "main" with every core.
#   sudo bash scripts/slurm-local.sh start    # install if needed, configure, start; ~20 s
#   sudo bash scripts/slurm-local.sh stop     # stop the daemons this script started
# No accounting database: run Snakemake with `--slurm-status-command squeue`.
set -euo pipefail
STATE=/var/run/ctxscale-slurm
action=${1:-start}

stop() {
  for name in slurmd slurmctld munged; do
    if [ -f "$STATE/$name.pid" ]; then
      kill "$(cat "$STATE/$name.pid")" 2>/dev/null || true
      rm -f "$STATE/$name.pid"
    fi
  done
  echo "slurm-local: stopped"
}

if [ "$action" = stop ]; then stop; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "slurm-local: needs root (apt-get, daemons)" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
fi

mkdir -p "$STATE" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
chown munge:munge /run/munge 2>/dev/null || true
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))

cat > /etc/slurm/slurm.conf <<CONF
ClusterName=ctxscale
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmUser=root
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=30
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/munged.pid"
  cp /run/munge/munged.pid "$STATE/munged.pid"
fi
pgrep -F "$STATE/slurmctld.pid" >/dev/null 2>&1 || slurmctld
pgrep -F "$STATE/slurmd.pid" >/dev/null 2>&1 || slurmd
for _ in $(seq 30); do
  if sinfo -h -o %t 2>/dev/null | grep -q idle; then
    echo "slurm-local: up ($host, $cpus CPUs, ${mem_mb} MB, partition main)"
    exit 0
  fi
  sleep 1
done
echo "slurm-local: the node did not become idle; see /var/log/slurm/" >&2
sinfo >&2 || true
exit 1
