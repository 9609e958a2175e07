#!/bin/sh
# petal node setup: ParallelCluster's OnNodeConfigured action, run as root on every node
# once its storage is mounted. The cluster config petal writes passes
#     Args: [--fingerprint, sha256:<64 hex digits>]        (and --strict when asked)
#
# 1. Links the environment profile built onto the software volume into the node's login
#    scripts (/etc is per node): /etc/profile.d/petal.sh for sh, dash and bash, and for
#    csh and tcsh /etc/csh/login.d/petal where tcsh reads that directory (Debian, Ubuntu)
#    or else /etc/profile.d/petal.csh (Amazon Linux, RHEL, Rocky).
# 2. Checks that the volume holds the software the cluster was created for: the
#    fingerprint in /shared/petal/manifest.json must be the expected one. The result goes
#    to /var/log/petal-node-setup.log (and stdout). When it is not verified, every
#    interactive login shell of the node prints a warning (petal-warning files next to
#    the links); a verified run removes them.
#
# It never fails a node's boot (which would fail cluster creation or replace the node)
# unless --strict is given: then a volume that is not verified exits 1 with the reason on
# stderr. It reads /shared and never writes there (the volume may be read-only), installs
# nothing and runs a few small commands: OnNodeConfigured has to stay fast.

# Overridable only so the tests can run the script outside a cluster node.
petal_dir="${PETAL_DIR:-/shared/petal}"
root="${PETAL_ROOT_PREFIX:-}"

profile="$petal_dir/profile.sh"
csh_profile="$petal_dir/profile.csh"
manifest="$petal_dir/manifest.json"
log_file="$root/var/log/petal-node-setup.log"
profile_d="$root/etc/profile.d"
csh_login_d="$root/etc/csh/login.d"
fingerprint_re='sha256:[0-9a-f]\{64\}'

log() {
    line="$(date -u +%Y-%m-%dT%H:%M:%SZ) petal-node-setup: $*"
    printf '%s\n' "$line"
    if ! printf '%s\n' "$line" 2>/dev/null >>"$log_file"; then
        printf 'petal-node-setup: cannot write %s\n' "$log_file" >&2
    fi
}

# csh and tcsh read /etc/csh/login.d on Debian and Ubuntu (their /etc/csh.login), and
# /etc/profile.d/*.csh elsewhere: one place each, so nothing is sourced twice.
csh_target() {
    if [ -d "$csh_login_d" ]; then
        printf '%s/%s' "$csh_login_d" "$1"
    else
        printf '%s/%s.csh' "$profile_d" "$1"
    fi
}

link() {
    if [ ! -r "$1" ]; then
        log "$1 not found: nothing linked to $2"
    elif ln -sfn "$1" "$2" 2>/dev/null; then
        log "linked $2 -> $1"
    else
        log "ERROR: cannot link $2 -> $1 (is /etc read-only?): login shells will not set up the software"
    fi
}

# A string field of the manifest whose value matches a basic regular expression, or
# nothing. sed and grep, which every node image has (jq it may lack). The
# bootstrap writes the manifest with json.dump(indent=2), where a top-level key is a
# line of its own indented by two spaces; nested objects (the whole spack.lock) indent
# further. In any other layout the key counts wherever it is, if its values agree. A key
# inside a JSON string has its quotes escaped, so it never matches.
manifest_field() {
    value="$(sed -n "s/^  \"$1\": \"\($2\)\",\{0,1\}\$/\1/p" "$manifest" 2>/dev/null)"
    if [ -z "$value" ]; then
        value="$(grep -o "\"$1\"[[:space:]]*:[[:space:]]*\"$2\"" "$manifest" 2>/dev/null |
            sed 's/.*"\(.*\)"$/\1/' | sort -u)"
    fi
    case "$value" in
    *"
"*) ;; # two different values: neither is believed
    *) printf '%s' "$value" ;;
    esac
}

# Sets `problem` (empty when verified) and logs the outcome.
verify() {
    problem=""
    if [ "$checked" = 0 ]; then
        log "no --fingerprint in the cluster config's OnNodeConfigured Args: $manifest not checked"
        return
    fi
    if ! printf '%s\n' "$expected" | grep -qx "$fingerprint_re"; then
        problem="the --fingerprint in the cluster config is not sha256:<64 hex digits>, so the software volume cannot be checked"
    elif [ ! -e "$manifest" ]; then
        problem="$manifest is missing: the software volume is not mounted at ${petal_dir%/petal} or holds no petal software stack"
    elif [ ! -r "$manifest" ]; then
        problem="$manifest cannot be read"
    else
        found="$(manifest_field fingerprint "$fingerprint_re")"
        build="$(manifest_field build_id '[A-Za-z0-9-]\{1,64\}')"
        if [ -z "$found" ]; then
            problem="$manifest holds no fingerprint (sha256:<64 hex digits>)"
        elif [ "$found" != "$expected" ]; then
            problem="the software volume holds $found (build ${build:-unknown}), not $expected which this cluster was created for"
        fi
    fi
    if [ -z "$problem" ]; then
        log "verified: the software volume holds $expected (build ${build:-unknown})"
    else
        log "NOT VERIFIED: $problem"
    fi
}

# The files every login shell of this node sources. The message is written single-quoted
# in sh and in csh, so any character that means something there inside quotes (a quote,
# `!`, `\`, a newline) becomes `?`. Printed only by interactive shells: job scripts and
# scp stay quiet.
warn_users() {
    message="$(printf '%s' "petal: WARNING: $problem. Modules may be missing or not the expected ones; see $log_file on this node." |
        tr -c 'A-Za-z0-9 .,:;()<>/_=+@%-' '?')"
    warning_sh="$profile_d/petal-warning.sh"
    warning_csh="$(csh_target petal-warning)"
    if cat 2>/dev/null >"$warning_sh" <<EOF && cat 2>/dev/null >"$warning_csh" <<EOF2; then
# Written by petal-node-setup.sh: this node's software volume is not verified.
case \$- in *i*) printf '%s\\n' '$message' >&2 ;; esac
EOF
# Written by petal-node-setup.sh: this node's software volume is not verified.
if ( \$?prompt ) echo '$message'
EOF2
        chmod 644 "$warning_sh" "$warning_csh" 2>/dev/null
        log "login shells now print: $message"
    else
        log "ERROR: cannot write $warning_sh or $warning_csh: users will not be warned"
    fi
}

expected=""
checked=0
strict=0
while [ $# -gt 0 ]; do
    case "$1" in
    --fingerprint)
        expected="${2:-}"
        checked=1
        [ $# -lt 2 ] || shift
        ;;
    --strict) strict=1 ;;
    *) log "ignoring unknown argument '$1' (known: --fingerprint sha256:..., --strict)" ;;
    esac
    shift
done

link "$profile" "$profile_d/petal.sh"
link "$csh_profile" "$(csh_target petal)"
verify

if [ -z "$problem" ]; then
    rm -f "$profile_d/petal-warning.sh" "$(csh_target petal-warning)" 2>/dev/null
else
    warn_users
fi
if [ "$strict" = 1 ]; then
    if [ "$checked" = 0 ]; then
        problem="--strict needs --fingerprint sha256:... in the OnNodeConfigured Args"
        log "NOT VERIFIED: $problem"
    fi
    if [ -n "$problem" ]; then
        log "strict mode: failing this node's boot"
        printf 'petal node setup (strict): %s. The cluster config asks for --strict, so this node does not start; see %s.\n' \
            "$problem" "$log_file" >&2
        exit 1
    fi
fi
exit 0
