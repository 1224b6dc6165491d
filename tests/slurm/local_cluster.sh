#!/usr/bin/env bash
# A throw-away single-node SLURM cluster (munged + slurmctld + slurmd, all as
# root, no systemd, no cgroups) whose every file lives under one folder, for
# tests of code that submits jobs.
#
#   tests/slurm/local_cluster.sh up DIR     # start it; then: source DIR/env.sh
#   tests/slurm/local_cluster.sh down DIR   # stop it (idempotent)
#
# Exit status of `up`: 0 ready, 3 slurm/munge not installed, 1 anything else.
# Every client command needs SLURM_CONF (DIR/env.sh exports it): without it
# they look for a DNS SRV record and fail.
set -euo pipefail

# The daemons live in sbin, which a non-login shell may not have on PATH.
PATH=$PATH:/usr/sbin:/sbin

NEEDED=(munged mungekey slurmctld slurmd sinfo sbatch srun squeue scontrol scancel)
IDLE_TIMEOUT=30
STOP_TIMEOUT=15

usage() {
    echo "usage: $0 up|down DIR" >&2
    exit 2
}

# pid_alive PID NAME: true while PID is a live (not zombie) process running
# NAME; the name check keeps a recycled PID from being mistaken for ours.
pid_alive() {
    local pid=$1 name=$2 state argv0
    [[ -r /proc/$pid/stat ]] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $state != Z ]] || return 1
    argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1) || return 1
    [[ ${argv0##*/} == "$name" ]]
}

# pid_running PID: true while PID is a live (not zombie) process, whatever it
# runs. Right after `cmd &` the child may still be the forked shell (exec not
# done yet, more so on a loaded machine), so the start-up checks must not ask
# for the daemon's name: that once failed a healthy start.
pid_running() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

# stop_daemon DIR NAME: TERM the PID recorded in DIR/NAME.pid, KILL it if it
# outlives STOP_TIMEOUT, then forget it.
stop_daemon() {
    local pidfile=$1/$2.pid name=$2 pid i
    [[ -f $pidfile ]] || return 0
    pid=$(<"$pidfile")
    if [[ -n $pid ]] && pid_alive "$pid" "$name"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
            pid_alive "$pid" "$name" || break
            sleep 0.1
        done
        if pid_alive "$pid" "$name"; then
            echo "local_cluster.sh: $name ($pid) ignored TERM, killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
    fi
    rm -f "$pidfile"
}

# wait_reaped PID NAME: wait (bounded) until a stopped daemon is gone from the
# process table too. Its parent is init once `up` has exited, and some inits
# (this sandbox's) reap orphans only every second or so.
wait_reaped() {
    local pid=$1 name=$2 i
    for ((i = 0; i < 50; i++)); do
        [[ $(awk '{print $2}' "/proc/$pid/stat" 2>/dev/null) == "($name)" ]] || return 0
        sleep 0.1
    done
}

# Job steps run under slurmstepd processes that outlive slurmd, so running jobs
# are cancelled (and given a few seconds to go) before the daemons stop.
cancel_jobs() {
    local dir=$1 i
    [[ -f $dir/slurmctld.pid ]] && pid_alive "$(<"$dir/slurmctld.pid")" slurmctld || return 0
    export SLURM_CONF=$dir/slurm.conf
    scancel --user="$(id -un)" >/dev/null 2>&1 || return 0
    for ((i = 0; i < STOP_TIMEOUT * 5; i++)); do
        [[ -z $(squeue -h -o %i 2>/dev/null) ]] && return 0
        sleep 0.2
    done
    echo "local_cluster.sh: jobs still listed after ${STOP_TIMEOUT}s, stopping anyway" >&2
}

down() {
    local dir=$1
    [[ -d $dir ]] || return 0
    local name
    local -A stopped=()
    cancel_jobs "$dir"
    for name in slurmd slurmctld munged; do
        [[ -f $dir/$name.pid ]] && stopped[$name]=$(<"$dir/$name.pid")
        stop_daemon "$dir" "$name"
    done
    for name in "${!stopped[@]}"; do
        wait_reaped "${stopped[$name]}" "$name"
    done
}

# free_port START: the first port from START on that nothing on this machine
# listens to, so that two clusters (two test sessions) do not collide.
free_port() {
    local port=$1
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        port=$((port + 1))
    done
    echo "$port"
}

FAIL_REASON=""
STARTED=0
fail() {
    FAIL_REASON=$1
    exit 1
}

# EXIT trap of `up`: on failure show why the daemons died, undo the start and
# end with a one-line reason.
up_exit() {
    local rc=$1 log
    trap - EXIT
    [[ $rc -eq 0 ]] && return 0
    if [[ $STARTED -eq 1 ]]; then
        for log in "$DIR"/log/*.log; do
            [[ -f $log ]] || continue
            echo "--- tail of $log" >&2
            tail -n 20 "$log" >&2
        done
        down "$DIR"
    fi
    echo "local_cluster.sh: up failed: ${FAIL_REASON:-command failed (status $rc)}" >&2
    exit "$rc"
}

up() {
    local missing=() cmd host node mem conf i state ctld_port slurmd_port
    for cmd in "${NEEDED[@]}"; do
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        FAIL_REASON="slurm/munge not installed (no ${missing[*]}); install: apt-get install -y slurm-wlm munge"
        exit 3
    fi
    if [[ -f $DIR/slurmctld.pid ]] && pid_alive "$(<"$DIR/slurmctld.pid")" slurmctld; then
        fail "a cluster is already running in $DIR"
    fi

    STARTED=1
    mkdir -p "$DIR"/{munge,log,state,spool}
    DIR=$(cd "$DIR" && pwd)
    conf=$DIR/slurm.conf
    [[ ${#DIR} -le 80 ]] || fail "DIR is too long for the daemons' socket paths (108 bytes at most): $DIR"
    # munged refuses a key that others can read, and a key folder they can write.
    chmod 711 "$DIR/munge"
    rm -f "$DIR/munge/munge.key"
    mungekey --create --keyfile="$DIR/munge/munge.key" || fail "mungekey failed"
    chmod 600 "$DIR/munge/munge.key"
    # --force: the folders above DIR (e.g. /tmp) are world-writable.
    munged -F --force --socket="$DIR/munge/munge.socket" \
        --key-file="$DIR/munge/munge.key" --log-file="$DIR/log/munged.log" \
        --pid-file="$DIR/munge/munged.pid" --seed-file="$DIR/munge/munge.seed" \
        </dev/null >>"$DIR/log/munged.out.log" 2>&1 &
    echo $! >"$DIR/munged.pid"
    for ((i = 0; i < 50; i++)); do
        [[ -S $DIR/munge/munge.socket ]] && break
        pid_running "$(<"$DIR/munged.pid")" || fail "munged exited at start"
        sleep 0.1
    done
    [[ -S $DIR/munge/munge.socket ]] || fail "munged made no socket in 5s"

    host=$(hostname -s)
    # `slurmd -C` describes this machine as a NodeName line; a little memory is
    # held back so that the node is not drained for having less than it claims.
    node=$(slurmd -C | head -n 1)
    [[ $node == NodeName=* ]] || fail "unexpected 'slurmd -C' output: $node"
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    node=${node/RealMemory=$mem/RealMemory=$((mem * 95 / 100))}
    ctld_port=$(free_port 6817)
    slurmd_port=$(free_port $((ctld_port + 1)))

    cat >"$conf" <<EOF
ClusterName=lcptest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire and the scheduler intervals make a requeued job start again
# after ~12 s instead of ~121 s.
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=10
SchedulerParameters=sched_interval=2,bf_interval=1
JobRequeue=1
ReturnToService=2
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MailProg=/bin/true
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/state/slurmctld.daemon.pid
SlurmdPidFile=$DIR/spool/slurmd.daemon.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF=$conf

    slurmctld -D -f "$conf" </dev/null >>"$DIR/log/slurmctld.out.log" 2>&1 &
    echo $! >"$DIR/slurmctld.pid"
    slurmd -D -f "$conf" </dev/null >>"$DIR/log/slurmd.out.log" 2>&1 &
    echo $! >"$DIR/slurmd.pid"

    state=""
    for ((i = 0; i < IDLE_TIMEOUT * 5; i++)); do
        pid_running "$(<"$DIR/slurmctld.pid")" || fail "slurmctld exited at start"
        pid_running "$(<"$DIR/slurmd.pid")" || fail "slurmd exited at start"
        state=$(sinfo -h -o %T 2>/dev/null || true)
        [[ $state == idle ]] && break
        sleep 0.2
    done
    [[ $state == idle ]] || fail "node not idle after ${IDLE_TIMEOUT}s (state: '${state:-none}')"
    printf 'export SLURM_CONF=%q\n' "$conf" >"$DIR/env.sh"
}

[[ $# -eq 2 ]] || usage
DIR=$2
case $1 in
    up)
        trap 'up_exit $?' EXIT
        up
        ;;
    down) down "$DIR" ;;
    *) usage ;;
esac
