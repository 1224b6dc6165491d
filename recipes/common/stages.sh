# shellcheck shell=bash
# Shared helpers for the recipes (recipes/*/run.sh), in the style of ESPnet /
# icefall recipes.  Source it from a recipe that runs under `set -euo pipefail`:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/../common/stages.sh"
#   option stage 1 "first stage to run"          # declares --stage, default 1
#   option stop_stage 100 "last stage to run"    # declares --stop-stage
#   option workdir exp "all outputs go here"
#   parse_options "$@"                           # --key value / --key=value
#   init_stages "$workdir"                       # sentinels live in $workdir
#   stage_corpus() { require_cmd python; ...; }
#   run_stage 1 corpus --sig "seed=$seed" stage_corpus
#
# run_stage runs a stage only if it lies in [--stage, --stop-stage] and has no
# sentinel file ($workdir/.done.stageN.NAME); it writes the sentinel when the
# stage succeeds, so a re-run skips finished work.  A stage that does run
# removes the sentinels of all later stages (their inputs changed).  A stage
# runs in a subshell under `set -e`: the first failing command fails the stage
# and the recipe exits non-zero.  Stage functions check their inputs first
# (require_file / require_dir / require_cmd), so that starting at a later
# stage on a fresh work directory fails with a clear message.
#
# Do not call run_stage in a conditional context (`if run_stage ...`,
# `run_stage ... || ...`): bash switches `set -e` off there.

if [[ -z "${BASH_VERSINFO:-}" || "${BASH_VERSINFO[0]}" -lt 4 ]]; then
    echo "recipes/common/stages.sh needs bash >= 4" >&2
    exit 1
fi

RECIPE_NAME=${RECIPE_NAME:-$(basename "$(dirname "$(readlink -f "$0")")")}
_OPTION_NAMES=()
declare -A _OPTION_HELP=()
declare -A _OPTION_DEFAULT=()
declare -A _OPTION_IS_FLAG=()
DRY_RUN=${DRY_RUN:-0}

log() {
    printf '%s (%s) %s\n' "$(date '+%F %T')" "$RECIPE_NAME" "$*" >&2
}

die() {
    printf '%s (%s) ERROR: %s\n' "$(date '+%F %T')" "$RECIPE_NAME" "$*" >&2
    exit 1
}

# option NAME DEFAULT HELP: declare a recipe option --NAME (underscores in
# NAME are written as dashes on the command line) and set $NAME to DEFAULT.
option() {
    [[ $# -eq 3 ]] || die "option: usage: option NAME DEFAULT HELP (got: $*)"
    local name=$1
    [[ $name =~ ^[a-z][a-z0-9_]*$ ]] || die "option: bad option name '$name'"
    _OPTION_NAMES+=("$name")
    _OPTION_DEFAULT[$name]=$2
    _OPTION_HELP[$name]=$3
    printf -v "$name" '%s' "$2"
}

# set_option_default NAME VALUE: another default for a declared option (a
# recipe adapting the common options to itself).
set_option_default() {
    [[ -v "_OPTION_HELP[$1]" ]] || die "set_option_default: no option '$1'"
    _OPTION_DEFAULT[$1]=$2
    printf -v "$1" '%s' "$2"
}

# flag NAME HELP: declare a switch --NAME (no value); $NAME is 0, or 1 when given.
flag() {
    [[ $# -eq 2 ]] || die "flag: usage: flag NAME HELP (got: $*)"
    option "$1" 0 "$2"
    _OPTION_IS_FLAG[$1]=1
}

usage() {
    echo "Usage: $0 [--option value ...]"
    [[ -n "${RECIPE_DESCRIPTION:-}" ]] && printf '\n%s\n' "$RECIPE_DESCRIPTION"
    echo
    echo "Options (default in brackets):"
    local name
    for name in "${_OPTION_NAMES[@]}"; do
        if [[ -v "_OPTION_IS_FLAG[$name]" ]]; then
            printf '  --%-18s %s [%s]\n' "${name//_/-}" "${_OPTION_HELP[$name]}" \
                "$( ((_OPTION_DEFAULT[$name])) && echo on || echo off)"
        else
            printf '  --%-18s %s [%s]\n' "${name//_/-}" "${_OPTION_HELP[$name]}" \
                "${_OPTION_DEFAULT[$name]}"
        fi
    done
}

# parse_options "$@": --key value or --key=value for every declared option,
# --name for a flag; --help / -h prints usage and exits 0; anything else is an
# error.
parse_options() {
    while [[ $# -gt 0 ]]; do
        local arg=$1 key value name
        case $arg in
            -h|--help) usage; exit 0 ;;
            --*=*) key=${arg%%=*}; value=${arg#*=}; shift ;;
            --*)
                key=$arg
                name=${key#--}
                name=${name//-/_}
                if [[ -v "_OPTION_IS_FLAG[$name]" ]]; then
                    value=1; shift
                else
                    [[ $# -ge 2 ]] || die "option $key needs a value (see --help)"
                    value=$2; shift 2
                fi ;;
            *) die "unexpected argument '$arg' (options are --key value; see --help)" ;;
        esac
        name=${key#--}
        name=${name//-/_}
        [[ -v "_OPTION_HELP[$name]" ]] || die "unknown option $key (see --help)"
        if [[ -v "_OPTION_IS_FLAG[$name]" && $value != 0 && $value != 1 ]]; then
            die "$key is a switch: give it alone (or $key=0 / $key=1), got '$value'"
        fi
        printf -v "$name" '%s' "$value"
    done
}

# require_int NAME [MIN]: die unless option $NAME is an integer >= MIN.
require_int() {
    local name=$1 min=${2:-}
    local value=${!name}
    [[ $value =~ ^-?[0-9]+$ ]] || die "--${name//_/-} must be an integer, got '$value'"
    if [[ -n $min ]] && (( value < min )); then
        die "--${name//_/-} must be >= $min, got $value"
    fi
}

# require_number NAME: die unless option $NAME is a (decimal) number.
require_number() {
    local name=$1
    [[ ${!name} =~ ^-?[0-9]+([.][0-9]+)?$ ]] || die "--${name//_/-} must be a number, got '${!name}'"
}

# require_choice NAME CHOICE...: die unless $NAME is one of the choices.
require_choice() {
    local name=$1 c
    shift
    for c in "$@"; do [[ ${!name} == "$c" ]] && return 0; done
    die "--${name//_/-} must be one of: $* (got '${!name}')"
}

# require_file PATH [HINT] / require_dir PATH [HINT]: input checks for stages.
# A dry run checks no inputs: it shows the commands of stages whose inputs
# earlier stages would make.
require_file() {
    (( DRY_RUN )) && return 0
    [[ -f $1 && -s $1 ]] || die "${_CURRENT_STAGE:+stage $_CURRENT_STAGE: }missing input file $1${2:+ -- $2}"
}

require_dir() {
    (( DRY_RUN )) && return 0
    [[ -d $1 ]] || die "${_CURRENT_STAGE:+stage $_CURRENT_STAGE: }missing input directory $1${2:+ -- $2}"
}

# require_cmd CMD [HINT]: die unless CMD is on PATH.
require_cmd() {
    command -v "$1" >/dev/null 2>&1 || die "command '$1' not found on PATH${2:+ -- $2}"
}

# setup_threads N: intra-op threads of torch/OpenMP/MKL for CPU runs.
# OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep instead of spinning.  On a
# shared, oversubscribed machine spinning threads made CPU training 10x slower
# (measured: 600 vs 7000 words/s with 2 threads at load average 6 on 2 cores).
setup_threads() {
    export OMP_NUM_THREADS=$1 MKL_NUM_THREADS=$1 OPENBLAS_NUM_THREADS=$1
    export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
}

# find_plugin_user_dir: the directory to pass to fairseq --user-dir: where
# the installed lightconv_plugin package lives (found with importlib's
# find_spec, which does not import it: importing pulls in fairseq, ~8 s), else
# what `python -m lightconv_plugin --user-dir` prints, else the
# lightconv_plugin/ folder of this repository.
find_plugin_user_dir() {
    local python=${PYTHON:-python} dir
    dir=$("$python" -c 'import importlib.util, os
spec = importlib.util.find_spec("lightconv_plugin")
print(os.path.dirname(spec.origin) if spec and spec.origin else "")' 2>/dev/null || true)
    if [[ -z $dir || ! -f $dir/__init__.py ]]; then
        dir=$("$python" -m lightconv_plugin --user-dir 2>/dev/null | tail -n 1 || true)
    fi
    if [[ -z $dir || ! -d $dir ]]; then
        dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/lightconv_plugin
        [[ -f $dir/__init__.py ]] || die "cannot locate the lightconv_plugin user dir (not importable by $python, and $dir/__init__.py does not exist)"
    fi
    echo "$dir"
}

# run_logged LOGFILE FILTER CMD [ARGS...]: runs CMD with stdout and stderr
# going to LOGFILE; the lines matching the extended regex FILTER are also
# shown on stderr (FILTER '' shows nothing).  The command line is logged
# first.  On failure the last 30 lines of LOGFILE are shown and the exit
# status is returned.
run_logged() {
    local logf=$1 filter=$2 rc
    shift 2
    if (( DRY_RUN )); then
        show_command "$@"
        return 0
    fi
    mkdir -p "$(dirname "$logf")"
    log "running: $(printf '%q ' "$@")"
    # Every command that ran, in order, for the results file.
    if [[ -n ${COMMANDS_LOG:-} ]]; then
        { printf '# stage %s\n' "${_CURRENT_STAGE:-?}"; show_command "$@"; } >> "$COMMANDS_LOG"
    fi
    log "  (full log: $logf)"
    set +e
    if [[ -n $filter ]]; then
        "$@" 2>&1 | tee "$logf" | { grep --line-buffered -E -- "$filter" || true; } >&2
        rc=${PIPESTATUS[0]}
    else
        "$@" > "$logf" 2>&1
        rc=$?
    fi
    set -e
    if (( rc != 0 )); then
        log "command failed (exit status $rc): $1; last lines of $logf:"
        tail -n 30 "$logf" >&2
        return "$rc"
    fi
}

# show_command CMD [ARGS...]: the command as a shell would re-read it, on stdout.
show_command() {
    printf '%q' "$1"
    shift
    (( $# )) && printf ' %q' "$@"
    printf '\n'
}

# init_stages DIR: sentinels (.done.stageN.NAME) are kept in DIR.
init_stages() {
    _STAGE_DIR=$1
    (( DRY_RUN )) || mkdir -p "$_STAGE_DIR"
    require_int stage
    require_int stop_stage
}

_stage_sentinel() {  # N NAME -> path of the existing sentinel of stage N, or ""
    local f=$_STAGE_DIR/.done.stage$1.$2
    if [[ -e $f ]]; then echo "$f"; else echo ""; fi
}

# run_stage N NAME [--sig SIGNATURE] FUNCTION [ARGS...]
#   SIGNATURE: the settings the stage's output depends on.  It is stored in the
#   sentinel; re-using a work directory with different settings fails loudly
#   instead of silently skipping the stage.
#   NAME may carry a scope, BASE@SCOPE (e.g. train@dynamicconv): several models
#   share the data stages of one work directory, and a stage of one scope
#   invalidates the later stages of its own scope and the unscoped ones, not
#   another model's; an unscoped stage invalidates every later stage.
run_stage() {
    local n=$1 name=$2 sig=""
    shift 2
    if [[ ${1:-} == --sig ]]; then sig=$2; shift 2; fi
    [[ $# -ge 1 ]] || die "run_stage $n $name: no stage function given"
    [[ -n ${_STAGE_DIR:-} ]] || die "run_stage: call init_stages first"
    if (( n < stage || n > stop_stage )); then
        return 0
    fi
    if (( DRY_RUN )); then
        # Every command of the stage, none run, no sentinel read or written.
        echo "# stage $n ($name)"
        (
            set -euo pipefail
            _CURRENT_STAGE="$n ($name)"
            "$@"
        ) || die "stage $n ($name): dry run failed"
        return 0
    fi
    local sentinel
    sentinel=$(_stage_sentinel "$n" "$name")
    if [[ -n $sentinel ]]; then
        local old_sig
        old_sig=$(sed -n 's/^sig: //p' "$sentinel")
        if [[ $old_sig != "$sig" ]]; then
            die "stage $n ($name) was already done in $_STAGE_DIR with other settings:
    before: $old_sig
    now:    $sig
  use another --workdir, or delete $sentinel to redo stage $n (later stages are redone too)"
        fi
        log "skipping stage $n ($name): already done ($sentinel)"
        return 0
    fi
    log "stage $n ($name): start"
    local t0=$SECONDS rc later
    # The stage's outputs are about to change: later stages must be redone.
    local scope=""
    [[ $name == *@* ]] && scope=${name##*@}
    for later in "$_STAGE_DIR"/.done.stage*; do
        [[ -e $later ]] || continue
        local m=${later##*/.done.stage} later_scope=""
        [[ $m == *@* ]] && later_scope=${m##*@}
        m=${m%%.*}
        [[ -n $scope && -n $later_scope && $later_scope != "$scope" ]] && continue
        if [[ $m =~ ^[0-9]+$ ]] && (( m > n )); then rm -f "$later"; fi
    done
    set +e
    (
        set -euo pipefail
        _CURRENT_STAGE="$n ($name)"
        "$@"
    )
    rc=$?
    set -e
    if (( rc != 0 )); then
        die "stage $n ($name) failed (exit status $rc)"
    fi
    {
        echo "stage: $n $name"
        echo "date: $(date '+%F %T')"
        echo "seconds: $((SECONDS - t0))"
        echo "sig: $sig"
    } > "$_STAGE_DIR/.done.stage$n.$name"
    log "stage $n ($name): done in $((SECONDS - t0)) s"
}
