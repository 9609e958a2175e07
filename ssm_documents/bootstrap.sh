#!/bin/bash
# petal bootstrap: build a seed's Spack software stack onto the software volume.
#
# Runs as root on the builder instance through SSM Run Command: ssm_documents/bootstrap.yaml
# carries this file and bootstrap_helper.py, which it writes next to it, and sets the
# script's input as environment variables (petal never uses SSH).
#   PETAL_VOLUME_ID            the software volume, attached to this instance (vol-...)
#   PETAL_MOUNT_DIR            /shared, fixed: Spack writes absolute paths (RPATHs), and
#                              clusters mount the snapshot there
#   PETAL_SPACK_VERSION        Spack release tag (v0.23.0)
#   PETAL_SPACK_YAML_BASE64    the Spack environment petal rendered (spack.yaml), base64
#   PETAL_BUILD_ID             petal build id
#   PETAL_FINGERPRINT          sha256:<64 hex>, the seed's fingerprint
#   PETAL_HEARTBEAT_SECONDS    heartbeat interval (default 300)
#   PETAL_DEVICE_WAIT_SECONDS  how long to wait for the volume's device (default 120)
#   PETAL_MANIFEST_URL         s3://BUCKET/manifests/<build id>.json: where the manifest's
#                              copy goes, so the CLI reads it without the volume ("": none)
#   PETAL_BUILD_CACHE_URL      s3://BUCKET/PREFIX of the shared build cache ("": none)
#   PETAL_SIGNING_KEY_SECRET   the Secrets Manager secret (ARN) of the cache's signing key
#   PETAL_PARENT_SNAPSHOT      the snapshot the volume was created from ("": an empty one)
# For tests only, never set by the document: PETAL_DISK_BY_ID_DIR (/dev/disk/by-id),
# PETAL_OS_RELEASE (/etc/os-release), PETAL_INSTANCE_IDENTITY (a file in place of the
# instance identity document of IMDS) and PETAL_ROOT_PREFIX, which is put in front of every
# absolute path the script writes, so a test can run it against a directory tree.
# Commands (lsblk, blkid, mount, dnf, git, spack, ...) are found on PATH.
#
# Output contract, parsed by petal/build/log_markers.py (stdout, one marker at the start of a line):
#   PETAL-STEP <name>              device format mount prerequisites spack cache mirrors
#                                  compilers environment concretize install push prune
#                                  modules profile manifest unmount, and finally "done"
#   PETAL-PROGRESS <k>/<n> <spec>  before installing root spec k of n
#   PETAL-HEARTBEAT <unix time>    at start, then every PETAL_HEARTBEAT_SECONDS until the end
#   PETAL-FAILED <step>: <reason>  the last line when the bootstrap fails; <step> is the
#                                  running step, or "parameters" for invalid input
#   PETAL-MANIFEST sha256:<hex>    the manifest's copy is uploaded to PETAL_MANIFEST_URL
#   PETAL-TAIL <line>              on failure, before PETAL-FAILED: its last output lines
# Each marker ends in " PETAL-MAC=<tag>" (see marker); PETAL_LOG_KEY is never printed.
# Exit status: 0 done, 1 a step failed, 2 invalid parameters. (Never 168 or 194, which make
# the SSM agent reboot the instance.)
#
# Re-running on the same volume is safe: an existing ext4 filesystem, a mount, a Spack clone
# at the same tag and installed packages are kept.
#
# The file only defines functions unless executed, so tests can source it and call one step.

readonly STEP_MARKER="PETAL-STEP"
readonly PROGRESS_MARKER="PETAL-PROGRESS"
readonly HEARTBEAT_MARKER="PETAL-HEARTBEAT"
readonly FAILURE_MARKER="PETAL-FAILED"
readonly MANIFEST_MARKER="PETAL-MANIFEST"
readonly TAIL_MARKER="PETAL-TAIL"
readonly MAC_FIELD="PETAL-MAC"
# Lines of its own output the bootstrap repeats, authenticated, when it fails.
readonly TAIL_LINES=20
# The build cache's name in the environment's mirrors while the build runs.
readonly CACHE_MIRROR="petal-build-cache"

readonly SPACK_GIT_URL="https://github.com/spack/spack.git"
readonly VOLUME_LABEL="petal-software"
readonly DNF_PACKAGES=(gcc gcc-c++ gcc-gfortran make patch git python3 unzip bzip2 xz file
    tar gzip findutils)
readonly APT_PACKAGES=(build-essential gfortran git python3 unzip bzip2 xz-utils file)
# What ParallelCluster images carry and MPI must use (petal/seed/spack_environment.py).
readonly SLURM_PREFIX=/opt/slurm
readonly EFA_PREFIX=/opt/amazon/efa

# ---------------------------------------------------------------------------------------
# Output and failure handling
# ---------------------------------------------------------------------------------------

log() {
    printf 'petal: %s\n' "$*"
}

# Print a command before running it: the build log then shows what ran.
run() {
    printf '+ %s\n' "$*"
    "$@"
}

# HMAC-SHA256 (RFC 2104) of $2 under the hex key $1: builtins and sha256sum (coreutils,
# on every image), so the key is in no argv (ps shows it; openssl's -macopt would) and no
# environment; python3 may be missing before prerequisites. Same as log_markers.line_tag.
hmac_sha256() {
    local key="$1" message="$2" inner="" outer="" byte index digest
    for ((index = 0; index < 128; index += 2)); do
        byte=0
        ((index >= ${#key})) || byte=$((16#${key:index:2}))
        printf -v inner '%s\\x%02x' "$inner" $((byte ^ 0x36))
        printf -v outer '%s\\x%02x' "$outer" $((byte ^ 0x5c))
    done
    digest="$({ printf '%b' "$inner"; printf '%s' "$message"; } | sha256sum)"
    digest="${digest%% *}"
    for ((index = 0; index < 64; index += 2)); do
        outer+="\\x${digest:index:2}"
    done
    digest="$(printf '%b' "$outer" | sha256sum)"
    printf '%s' "${digest%% *}"
}

# Print a marker: its text, then " PETAL-MAC=" and the HMAC of "<build id>\n<text>" under
# the log key. Any builder may write this build's log stream; only this one has the key.
# Printable ASCII, so petal reads the text byte for byte. No valid key: no tag (refused).
marker() {
    local LC_ALL=C text="$*"
    text="${text//$'\t'/ }"
    text="${text//[^[:print:]]/?}"
    if [[ ! "${LOG_KEY:-}" =~ ^[0-9a-f]{64}$ ]]; then
        printf '%s\n' "$text"
        return 0
    fi
    printf '%s %s=%s\n' "$text" "$MAC_FIELD" "$(hmac_sha256 "$LOG_KEY" "${BUILD_ID:-}"$'\n'"$text")"
}

begin_step() {
    CURRENT_STEP="$1"
    marker "$STEP_MARKER $1"
}

# A failure reason fits on one line of bounded length.
one_line() {
    local text="${1//$'\n'/ }"
    text="${text//$'\r'/ }"
    printf '%s' "${text:0:400}"
}

# Record why the bootstrap fails; the EXIT trap prints it. The first reason wins: the ERR
# traps that follow only restate its consequence. A file, not a variable, so that a failure
# inside $(...) reaches the main shell.
record_failure() {
    if [[ -z "${FAILURE_FILE:-}" ]]; then
        # Sourced by a test, without main's traps: report at once.
        marker "$FAILURE_MARKER ${CURRENT_STEP:-unknown}: $(one_line "$*")"
    elif [[ ! -s "$FAILURE_FILE" ]]; then
        one_line "$*" >"$FAILURE_FILE"
    fi
}

fail() {
    record_failure "$*"
    exit 1
}

fail_parameters() {
    record_failure "$*"
    exit 2
}

on_err() {
    local status=$? command="$BASH_COMMAND"
    record_failure "command exited with status $status: $command"
}

# A copy of the output, for a failure to repeat its last lines tagged: petal's cause quotes
# no other line. tee may lag by the last moments; the reason comes from FAILURE_FILE.
capture_output() {
    OUTPUT_FILE="$WORK_DIR/output"
    exec > >(tee -a -- "$OUTPUT_FILE") 2> >(tee -a -- "$OUTPUT_FILE" >&2)
}

print_tail() {
    local line
    [[ -s "${OUTPUT_FILE:-}" ]] || return 0
    while IFS= read -r line; do
        marker "$TAIL_MARKER ${line:0:300}"
    done < <(grep -v '^PETAL-' -- "$OUTPUT_FILE" | tail -n "$TAIL_LINES")
}

on_exit() {
    local status=$? reason=""
    trap - ERR
    set +e
    stop_heartbeat
    if ((status != 0)); then
        # Any other status (a command's own, under set -e) becomes 1: see the exit status
        # contract at the top.
        ((status == 2)) || status=1
        if [[ -s "${FAILURE_FILE:-}" ]]; then
            IFS= read -r reason <"$FAILURE_FILE"
        fi
        print_tail
        marker "$FAILURE_MARKER ${CURRENT_STEP:-unknown}: ${reason:-exited with status $status}"
    fi
    [[ -z "${WORK_DIR:-}" ]] || rm -rf -- "$WORK_DIR"
    exit "$status"
}

# ---------------------------------------------------------------------------------------
# Heartbeat: the pipeline takes silence as a dead instance, and one compile (gcc) can print
# nothing for an hour.
# ---------------------------------------------------------------------------------------

heartbeat_loop() {
    local parent="$1" sleeper=""
    trap - ERR EXIT
    set +e
    trap '[[ -z "$sleeper" ]] || kill "$sleeper" 2>/dev/null; exit 0' TERM
    # Stop with the script even if it is killed without running its EXIT trap.
    while kill -0 "$parent" 2>/dev/null; do
        marker "$HEARTBEAT_MARKER $(printf '%(%s)T' -1)"
        # sleep must not hold stdout: SSM waits for the output pipe to close before it
        # reports the command finished.
        sleep "$HEARTBEAT_SECONDS" >/dev/null 2>&1 &
        sleeper=$!
        wait "$sleeper"
    done
}

start_heartbeat() {
    heartbeat_loop "$$" &
    HEARTBEAT_PID=$!
}

stop_heartbeat() {
    if [[ -n "${HEARTBEAT_PID:-}" ]]; then
        kill "$HEARTBEAT_PID" 2>/dev/null || true
        wait "$HEARTBEAT_PID" 2>/dev/null || true
        HEARTBEAT_PID=""
    fi
}

# ---------------------------------------------------------------------------------------
# Settings and parameters
# ---------------------------------------------------------------------------------------

init_settings() {
    VOLUME_ID="${PETAL_VOLUME_ID:-}"
    MOUNT_DIR="${PETAL_MOUNT_DIR:-/shared}"
    SPACK_VERSION="${PETAL_SPACK_VERSION:-}"
    BUILD_ID="${PETAL_BUILD_ID:-}"
    # Not exported: Spack and package builds (which may save their environment) never see it.
    LOG_KEY="${PETAL_LOG_KEY:-}"
    unset PETAL_LOG_KEY
    FINGERPRINT="${PETAL_FINGERPRINT:-}"
    HEARTBEAT_SECONDS="${PETAL_HEARTBEAT_SECONDS:-300}"
    DEVICE_WAIT_SECONDS="${PETAL_DEVICE_WAIT_SECONDS:-120}"
    DISK_BY_ID_DIR="${PETAL_DISK_BY_ID_DIR:-/dev/disk/by-id}"
    OS_RELEASE="${PETAL_OS_RELEASE:-/etc/os-release}"
    ROOT_PREFIX="${PETAL_ROOT_PREFIX:-}"
    MANIFEST_URL="${PETAL_MANIFEST_URL:-}"
    BUILD_CACHE_URL="${PETAL_BUILD_CACHE_URL:-}"
    SIGNING_KEY_SECRET="${PETAL_SIGNING_KEY_SECRET:-}"
    PARENT_SNAPSHOT="${PETAL_PARENT_SNAPSHOT:-}"
    # Paths as Spack and every cluster node see them: written into profile.sh and the
    # manifest...
    SPACK_ROOT_DIR="$MOUNT_DIR/spack"
    PETAL_DIR="$MOUNT_DIR/petal"
    ENV_DIR="$PETAL_DIR/env"
    # ...and where this script reads and writes them: the same, except in tests.
    MOUNT_PATH="$ROOT_PREFIX$MOUNT_DIR"
    SPACK_ROOT_PATH="$ROOT_PREFIX$SPACK_ROOT_DIR"
    PETAL_PATH="$ROOT_PREFIX$PETAL_DIR"
    ENV_PATH="$ROOT_PREFIX$ENV_DIR"
    # Spack's database of the install tree (petal/seed/spack_environment.py INSTALL_ROOT).
    INSTALL_DB="$SPACK_ROOT_PATH/opt/spack/.spack-db/index.json"
}

# The path a node sees for a path this script wrote.
node_path() {
    printf '%s' "${1#"$ROOT_PREFIX"}"
}

# The document's allowedPatterns already hold these; checked again because the script can
# be run by other means (local mode, tests) and a bad value must not reach mkfs.
validate_parameters() {
    local volume_re='^vol-[0-9a-f]{8,17}$' version_re='^v[0-9]+\.[0-9]+\.[0-9]+$'
    local base64_re='^[A-Za-z0-9+/=]+$' build_re='^[A-Za-z0-9-]{1,64}$'
    local fingerprint_re='^sha256:[0-9a-f]{64}$' seconds_re='^[1-9][0-9]{0,5}$'
    local log_key_re='^[0-9a-f]{64}$'

    [[ "$VOLUME_ID" =~ $volume_re ]] ||
        fail_parameters "VolumeId '$VOLUME_ID' is not an EBS volume id"
    [[ "$MOUNT_DIR" == /shared ]] ||
        fail_parameters "MountDir '$MOUNT_DIR' must be /shared (Spack paths are absolute)"
    [[ "$SPACK_VERSION" =~ $version_re ]] ||
        fail_parameters "SpackVersion '$SPACK_VERSION' is not a release tag like v0.23.0"
    [[ "${PETAL_SPACK_YAML_BASE64:-}" =~ $base64_re ]] ||
        fail_parameters "SpackYamlBase64 is empty or not base64"
    [[ "$BUILD_ID" =~ $build_re ]] ||
        fail_parameters "BuildId '$BUILD_ID' is not 1 to 64 letters, digits or '-'"
    [[ "$FINGERPRINT" =~ $fingerprint_re ]] ||
        fail_parameters "Fingerprint '$FINGERPRINT' is not sha256:<64 hex digits>"
    [[ "$LOG_KEY" =~ $log_key_re ]] ||
        fail_parameters "LogKey is not 64 lowercase hex digits (its value is never printed)"
    [[ "$HEARTBEAT_SECONDS" =~ $seconds_re ]] ||
        fail_parameters "heartbeat interval '$HEARTBEAT_SECONDS' is not a number of seconds"
    [[ "$DEVICE_WAIT_SECONDS" =~ $seconds_re ]] ||
        fail_parameters "device wait '$DEVICE_WAIT_SECONDS' is not a number of seconds"
    validate_aws_parameters
    if [[ -n "$ROOT_PREFIX" ]]; then
        [[ "$ROOT_PREFIX" == /?* && "$ROOT_PREFIX" != */ ]] ||
            fail_parameters "PETAL_ROOT_PREFIX must be an absolute path without trailing /"
        log "TEST MODE: every path the script writes is under $ROOT_PREFIX"
    fi

    # Decode now, before any disk is touched, so a bad environment fails fast.
    if ! printf '%s' "$PETAL_SPACK_YAML_BASE64" | base64 -d >"$WORK_DIR/spack.yaml" 2>/dev/null; then
        fail_parameters "SpackYamlBase64 does not decode"
    fi
    grep -q '^spack:' "$WORK_DIR/spack.yaml" ||
        fail_parameters "SpackYamlBase64 is not a Spack environment (no top-level 'spack:')"
}

# The manifest's copy, the build cache and its key: what petal's stack passes (or "").
validate_aws_parameters() {
    local bucket='s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]'
    local manifest_re="^$bucket/manifests/[A-Za-z0-9-]{1,64}\.json\$"
    local cache_re="^$bucket/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*\$"
    local secret_re='^arn:aws:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$'
    local snapshot_re='^snap-[0-9a-f]{8,17}$'
    [[ -z "$MANIFEST_URL" || "$MANIFEST_URL" =~ $manifest_re ]] ||
        fail_parameters "ManifestUrl '$MANIFEST_URL' is not s3://BUCKET/manifests/<build id>.json"
    [[ -z "$BUILD_CACHE_URL" || "$BUILD_CACHE_URL" =~ $cache_re ]] ||
        fail_parameters "BuildCacheUrl '$BUILD_CACHE_URL' is not s3://BUCKET/PREFIX"
    [[ -z "$SIGNING_KEY_SECRET" || "$SIGNING_KEY_SECRET" =~ $secret_re ]] ||
        fail_parameters "SigningKeySecret '$SIGNING_KEY_SECRET' is not a Secrets Manager secret ARN"
    [[ -z "$BUILD_CACHE_URL" || -n "$SIGNING_KEY_SECRET" ]] ||
        fail_parameters "BuildCacheUrl needs SigningKeySecret: the cache's binaries are signed"
    [[ -z "$PARENT_SNAPSHOT" || "$PARENT_SNAPSHOT" =~ $snapshot_re ]] ||
        fail_parameters "ParentSnapshot '$PARENT_SNAPSHOT' is not a snapshot id"
}

# ---------------------------------------------------------------------------------------
# Spack helpers
# ---------------------------------------------------------------------------------------

# Small queries run with Spack's own Python (spack python): bootstrap_helper.py, which
# lies next to this script, in the repository as on the builder (the document writes both).
find_helper() {
    HELPER="$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/bootstrap_helper.py"
    [[ -f "$HELPER" ]] || fail "$HELPER is missing: it must lie next to bootstrap.sh"
}

spack_helper() {
    spack python "$HELPER" "$@"
}

# Read a command's output lines into the named array; no output gives an empty array.
# (mapfile < <(...) would hide the command's failure from set -e.)
read_lines_into() {
    local name="$1" output
    shift
    output="$("$@")"
    mapfile -t "$name" < <(printf '%s' "$output")
}

module_system_enabled() {
    local system
    for system in "${MODULE_SYSTEMS[@]}"; do
        [[ "$system" != "$1" ]] || return 0
    done
    return 1
}

# Seed compilers are installed outside the environment (it cannot be concretized with
# compilers Spack does not know yet), and module files are generated for every installed
# spec, compilers included; `spack -e` would cover only the environment's specs. Both run
# with the environment's configuration exported as a plain configuration scope (-C), so
# they use its mirrors, package requirements (target) and module settings. The compilers
# use a copy without the requirement of the seed's compiler: the system compiler builds
# them, as no compiler can build itself.
export_env_config() {
    local section
    ENV_SCOPE_PATH="$WORK_DIR/env-scope"
    COMPILER_SCOPE_PATH="$WORK_DIR/compiler-scope"
    rm -rf -- "$ENV_SCOPE_PATH" "$COMPILER_SCOPE_PATH"
    mkdir -p -- "$ENV_SCOPE_PATH" "$COMPILER_SCOPE_PATH"
    for section in config mirrors packages concretizer modules; do
        spack -e "$ENV_PATH" config get "$section" >"$ENV_SCOPE_PATH/$section.yaml"
        [[ "$section" == packages ]] || cp -- "$ENV_SCOPE_PATH/$section.yaml" "$COMPILER_SCOPE_PATH/"
    done
    spack_helper without-compiler-requirements \
        "$ENV_SCOPE_PATH/packages.yaml" "$COMPILER_SCOPE_PATH/packages.yaml"
}

# The first match of an extended regular expression's first group in a file's lines.
first_match() {
    local pattern="$1" line
    while IFS= read -r line; do
        if [[ "$line" =~ $pattern ]]; then
            printf '%s' "${BASH_REMATCH[1]}"
            return 0
        fi
    done
    return 1
}

# Slurm's version, from its header: running sinfo on a builder without slurm.conf may fail.
slurm_version() {
    local header="$ROOT_PREFIX$SLURM_PREFIX/include/slurm/slurm_version.h"
    [[ -f "$header" ]] ||
        fail "the environment takes Slurm from the image (petal builds every MPI with it, whether or not the seed names one), but $SLURM_PREFIX/include/slurm/slurm_version.h is missing: build on a ParallelCluster image"
    first_match '^#define[[:space:]]+SLURM_VERSION_STRING[[:space:]]+"([0-9]+(\.[0-9]+)*)"' \
        <"$header" ||
        fail "no SLURM_VERSION_STRING in $SLURM_PREFIX/include/slurm/slurm_version.h"
}

# EFA's libfabric version, as its fi_info reports it ("libfabric: 1.22.0amzn4.0").
libfabric_version() {
    local fi_info="$ROOT_PREFIX$EFA_PREFIX/bin/fi_info" output
    [[ -x "$fi_info" ]] ||
        fail "the environment takes libfabric from the image's EFA installer (petal builds every MPI with it, whether or not the seed names one), but $EFA_PREFIX/bin/fi_info is missing: build on a ParallelCluster image"
    output="$("$fi_info" --version 2>&1)" ||
        fail "$EFA_PREFIX/bin/fi_info --version failed: $(one_line "$output")"
    first_match '^libfabric:[[:space:]]*([0-9]+(\.[0-9]+)*)' <<<"$output" ||
        fail "cannot read the libfabric version from: $(one_line "$output")"
}

# ---------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------

# On Nitro instances the volume is an NVMe device (nvme1n1, ... in attach order) whose
# serial is the volume id; /dev/sdf exists only through Amazon Linux's udev rules. udev
# creates the by-id link some seconds after AttachVolume completes.
step_device() {
    begin_step device
    local serial="vol${VOLUME_ID#vol-}" actual waited=0
    local link="$DISK_BY_ID_DIR/nvme-Amazon_Elastic_Block_Store_$serial"
    until [[ -e "$link" ]]; do
        ((waited < DEVICE_WAIT_SECONDS)) ||
            fail "no device for $VOLUME_ID after ${DEVICE_WAIT_SECONDS}s ($link): is it attached to this (Nitro) instance?"
        sleep 1
        waited=$((waited + 1))
    done
    DEVICE="$(readlink -f -- "$link")"
    actual="$(lsblk --nodeps -no SERIAL "$DEVICE")"
    actual="${actual//[[:space:]]/}"
    [[ "$actual" == "$serial" ]] ||
        fail "$DEVICE has serial '$actual', not $serial: refusing to use it"
    log "volume $VOLUME_ID is $DEVICE"
}

# Format only a blank volume: a re-run finds its own ext4 filesystem and keeps it, and so
# does a build on a parent (a volume created from its snapshot), whose volume is never blank.
step_format() {
    begin_step format
    local probe="" status=0 key value fstype="" pttype=""
    # -p probes the device itself rather than blkid's cache.
    probe="$(blkid -p -o export "$DEVICE")" || status=$?
    case "$status" in
    0) ;;
    2) probe="" ;; # nothing found: blank
    *) fail "blkid could not probe $DEVICE (status $status)" ;;
    esac
    while IFS='=' read -r key value; do
        case "$key" in
        TYPE) fstype="$value" ;;
        PTTYPE) pttype="$value" ;;
        esac
    done <<<"$probe"
    if [[ -n "$pttype" ]]; then
        fail "$DEVICE has a $pttype partition table: not a petal volume, not formatting it"
    elif [[ -z "$fstype" && -n "$PARENT_SNAPSHOT" ]]; then
        fail "$DEVICE is blank, but it was created from the parent snapshot $PARENT_SNAPSHOT: not formatting it (build without --from, or from another snapshot)"
    elif [[ -z "$fstype" ]]; then
        log "$DEVICE is blank: creating an ext4 filesystem labelled $VOLUME_LABEL"
        run mkfs.ext4 -q -L "$VOLUME_LABEL" "$DEVICE"
    elif [[ "$fstype" == ext4 && -n "$PARENT_SNAPSHOT" ]]; then
        log "$DEVICE holds the filesystem of the parent snapshot $PARENT_SNAPSHOT: keeping it"
    elif [[ "$fstype" == ext4 ]]; then
        log "$DEVICE already has an ext4 filesystem (re-run): keeping it"
    else
        fail "$DEVICE has a $fstype filesystem, expected a blank volume or ext4"
    fi
}

step_mount() {
    begin_step mount
    local mounted_from
    run mkdir -p -- "$MOUNT_PATH"
    if mounted_from="$(findmnt -n -o SOURCE --mountpoint "$MOUNT_PATH")"; then
        # Building onto whatever else is mounted there would snapshot an empty volume.
        [[ "$(readlink -f -- "$mounted_from")" == "$DEVICE" ]] ||
            fail "$MOUNT_DIR is already the mount point of $mounted_from, not of $DEVICE"
        log "$DEVICE is already mounted at $MOUNT_DIR (re-run)"
    else
        run mount -t ext4 "$DEVICE" "$MOUNT_PATH"
    fi
    # Cluster users read the stack; only root writes it.
    run chmod 755 -- "$MOUNT_PATH"
}

read_os_release() {
    local key value
    OS_ID=""
    OS_ID_LIKE=""
    OS_VERSION_ID=""
    [[ -r "$OS_RELEASE" ]] || fail "cannot read $OS_RELEASE"
    # Parsed, not sourced: nothing from the file is executed.
    while IFS='=' read -r key value || [[ -n "$key" ]]; do
        value="${value#[\"\']}"
        value="${value%[\"\']}"
        case "$key" in
        ID) OS_ID="$value" ;;
        ID_LIKE) OS_ID_LIKE="$value" ;;
        VERSION_ID) OS_VERSION_ID="$value" ;;
        esac
    done <"$OS_RELEASE"
}

# What Spack needs to build: compilers (C, C++, Fortran), make, patch, git, python3 and
# the archive tools for source tarballs.
step_prerequisites() {
    begin_step prerequisites
    local manager=dnf extra=()
    read_os_release
    log "operating system: ${OS_ID:-unknown} ${OS_VERSION_ID} (like: ${OS_ID_LIKE:-none})"
    # boto3 of the Python Spack runs on (the system's): Spack reads and writes s3://
    # mirrors with it, and the helper uploads the manifest and reads the cache's key.
    extra=(python3-boto3)
    case " $OS_ID $OS_ID_LIKE " in
    *" amzn "* | *" rhel "* | *" rocky "* | *" centos "* | *" fedora "*)
        command -v dnf >/dev/null 2>&1 || manager=yum
        run "$manager" install -y "${DNF_PACKAGES[@]}" "${extra[@]}"
        ;;
    *" ubuntu "* | *" debian "*)
        export DEBIAN_FRONTEND=noninteractive
        # Right after boot, unattended-upgrades may hold the dpkg lock: wait for it.
        run apt-get -o DPkg::Lock::Timeout=600 update -q
        run apt-get -o DPkg::Lock::Timeout=600 install -y -q "${APT_PACKAGES[@]}" "${extra[@]}"
        ;;
    *)
        fail "unsupported operating system '${OS_ID:-unknown}' in $OS_RELEASE (dnf or apt family expected)"
        ;;
    esac
}

# Spack itself, shallow-cloned at the release tag, and the environment definition petal
# rendered. The build calls `spack` (SPACK_ROOT/bin on PATH) and `spack -e DIR` throughout,
# so it needs neither setup-env.sh's shell function nor an activated environment;
# setup-env.sh is for the nodes (profile.sh). Sourcing it here, under set -Eeuo pipefail
# and an ERR trap, would be fragile.
step_spack() {
    begin_step spack
    local tag=""
    if [[ -d "$SPACK_ROOT_PATH/.git" ]]; then
        tag="$(git -C "$SPACK_ROOT_PATH" describe --tags --exact-match HEAD 2>/dev/null)" || tag=""
        [[ "$tag" == "$SPACK_VERSION" ]] ||
            fail "$SPACK_ROOT_DIR holds Spack ${tag:-of an unknown version}, not $SPACK_VERSION: build onto a new volume"
        log "Spack $SPACK_VERSION is already in $SPACK_ROOT_DIR (re-run): not cloning"
    elif [[ -e "$SPACK_ROOT_PATH" ]]; then
        fail "$SPACK_ROOT_DIR exists but is not a Spack clone"
    else
        run git clone --depth 1 --branch "$SPACK_VERSION" -c feature.manyFiles=true \
            "$SPACK_GIT_URL" "$SPACK_ROOT_PATH"
    fi
    SPACK_COMMIT="$(git -C "$SPACK_ROOT_PATH" rev-parse HEAD)"
    export PATH="$SPACK_ROOT_PATH/bin:$PATH"
    run spack --version

    # An environment is a directory holding spack.yaml: `spack -e DIR` needs no env create.
    run mkdir -p -- "$ENV_PATH"
    cp -- "$WORK_DIR/spack.yaml" "$ENV_PATH/spack.yaml"
    chmod 644 -- "$ENV_PATH/spack.yaml"
    read_lines_into MODULE_SYSTEMS spack_helper module-systems "$ENV_PATH/spack.yaml"
    log "module systems: ${MODULE_SYSTEMS[*]:-none}"
}

# The shared build cache (petal:buildCache), first among the mirrors while the build
# runs; its signing key comes from Secrets Manager (the first build that uses the cache
# creates it). The secret key lives in a GnuPG home off the volume: it must never reach
# the snapshot. Also notes what the volume held before this build installed anything.
step_cache() {
    begin_step cache
    local keys="$WORK_DIR/cache-key" status=0
    spack_helper installed-hashes "$INSTALL_DB" >"$WORK_DIR/installed-before"
    if [[ -z "$BUILD_CACHE_URL" ]]; then
        log "no build cache (petal:buildCache is off): binaries come from the seed's mirrors"
        return 0
    fi
    SIGNING_HOME="$WORK_DIR/signing-gpg"
    mkdir -m 700 -- "$keys" "$SIGNING_HOME" "$WORK_DIR/new-gpg"
    spack_helper cache-key-get "$SIGNING_KEY_SECRET" "$keys" || status=$?
    if ((status == 3)); then
        log "the build cache has no signing key yet: creating it"
        SPACK_GNUPGHOME="$WORK_DIR/new-gpg" run spack gpg create \
            --export "$keys/new-public.asc" --export-secret "$keys/new-secret.asc" \
            --comment "signs petal's build cache" "petal build cache" "petal@localhost"
        spack_helper cache-key-put "$SIGNING_KEY_SECRET" "$keys/new-secret.asc" \
            "$keys/new-public.asc"
        status=0
        spack_helper cache-key-get "$SIGNING_KEY_SECRET" "$keys" || status=$?
    fi
    ((status == 0)) || fail "cannot read the build cache's signing key from $SIGNING_KEY_SECRET"
    SPACK_GNUPGHOME="$SIGNING_HOME" run spack gpg trust "$keys/secret.asc"
    # Binaries from the cache are verified against the public key (on the volume: harmless).
    run spack gpg trust "$keys/public.asc"
    rm -f -- "$keys"/*.asc
    spack_helper add-mirror "$ENV_PATH/spack.yaml" "$CACHE_MIRROR" "$BUILD_CACHE_URL"
    log "build cache $BUILD_CACHE_URL comes first among the mirrors"
}

# The mirrors are in the environment's spack.yaml; trusting their keys lets signed
# binaries install without --no-check-signature.
step_mirrors() {
    begin_step mirrors
    local mirrors
    printf '+ %s\n' "spack -e $ENV_PATH mirror list"
    mirrors="$(spack -e "$ENV_PATH" mirror list)" || fail "spack mirror list failed"
    printf '%s\n' "$mirrors"
    # Keys come from binary mirrors ("[sb]" or "[ b]"). With none (official_buildcache
    # false, no mirror of the seed's, no build cache) Spack refuses `buildcache keys`
    # ("Please add a spack mirror"), and there is nothing to trust anyway.
    if grep -q '\[.b\]' <<<"$mirrors"; then
        run spack -e "$ENV_PATH" buildcache keys --install --trust
    else
        log "no binary mirror: no build cache keys to trust"
    fi
    export_env_config
}

step_compilers() {
    begin_step compilers
    local compiler prefix
    # A parent's volume (or a re-run) starts as a fresh one: no compiler registered, every
    # spec implicit until installing it again (compilers, roots) marks it explicit.
    rm -f -- "$SPACK_ROOT_PATH/etc/spack/compilers.yaml"
    run spack -C "$ENV_SCOPE_PATH" mark --implicit --all
    # Compilers are registered in Spack's site scope, $SPACK_ROOT/etc/spack: on the volume,
    # so Spack on the cluster knows them too (not /root/.spack of this instance).
    run spack compiler find --scope site

    read_lines_into SEED_COMPILERS spack_helper seed-compilers "$ENV_PATH/spack.yaml"
    for compiler in "${SEED_COMPILERS[@]}"; do
        log "seed compiler $compiler (from the build cache when it has it)"
        run spack -C "$COMPILER_SCOPE_PATH" install --fail-fast -j "$JOBS" "$compiler" ||
            fail "could not install compiler $compiler"
        prefix="$(spack -C "$COMPILER_SCOPE_PATH" location -i "$compiler")"
        run spack compiler find --scope site "$prefix"
    done

    # The system compilers built the seed compilers: as Lmod core compilers, the seed
    # compilers' own modules land in the Core tree, and loading one reveals its packages.
    spack -e "$ENV_PATH" config get compilers >"$WORK_DIR/compilers.yaml"
    read_lines_into SYSTEM_COMPILERS \
        spack_helper system-compilers "$WORK_DIR/compilers.yaml" "$SPACK_ROOT_PATH"
    ((${#SYSTEM_COMPILERS[@]} > 0)) || fail "spack compiler find found no system compiler"
    log "system compilers: ${SYSTEM_COMPILERS[*]}"
    if module_system_enabled lmod; then
        for compiler in "${SYSTEM_COMPILERS[@]}"; do
            run spack -e "$ENV_PATH" config add "modules:default:lmod:core_compilers:[$compiler]"
        done
    fi
}

# The environment as it will be concretized, printed so the build log records it. The
# image's Slurm and EFA libfabric it declares as externals (petal renders them into every
# environment: MPI may come in through any package) get this builder's versions: the
# rendered ones are placeholders.
step_environment() {
    begin_step environment
    local name version
    local -a externals=() assignments=()
    read_lines_into externals spack_helper external-packages "$ENV_PATH/spack.yaml"
    for name in "${externals[@]}"; do
        case "$name" in
        slurm) version="$(slurm_version)" ;;
        libfabric) version="$(libfabric_version)" ;;
        *) fail "the environment declares an unknown system external '$name'" ;;
        esac
        log "external $name@$version (the image's)"
        assignments+=("$name=$version")
    done
    if ((${#assignments[@]} > 0)); then
        spack_helper set-externals "$ENV_PATH/spack.yaml" "${assignments[@]}"
    fi
    run spack -e "$ENV_PATH" config get
}

step_concretize() {
    begin_step concretize
    run spack -e "$ENV_PATH" concretize -f
    [[ -s "$ENV_PATH/spack.lock" ]] || fail "concretize wrote no $ENV_DIR/spack.lock"
    read_lines_into ROOT_SPECS spack_helper roots "$ENV_PATH/spack.lock"
    ((${#ROOT_SPECS[@]} > 0)) || fail "the environment has no root specs"
    # Found now rather than after hours of building: the lmod stack's profile.sh sources
    # the Lmod that Spack installs (ParallelCluster's images ship environment-modules).
    if module_system_enabled lmod && ! spack_helper has-package "$ENV_PATH/spack.lock" lmod; then
        fail "modules are lmod but lmod is not in the environment: petal must add it to the specs"
    fi
}

# Root by root, so progress can be reported. The environment was concretized as a whole,
# so each dependency is still built once (in parallel with -j), and binaries come from
# the mirrors whenever they have them (Spack's default).
step_install() {
    begin_step install
    local total=${#ROOT_SPECS[@]} done_count=0 spec status
    for spec in "${ROOT_SPECS[@]}"; do
        done_count=$((done_count + 1))
        marker "$PROGRESS_MARKER $done_count/$total $spec"
        status=0
        run spack -e "$ENV_PATH" install --fail-fast -j "$JOBS" "$spec" || status=$?
        ((status == 0)) || fail "spack install $spec failed (status $status)"
    done
    # Whatever no root pulled in, and the environment's view.
    status=0
    run spack -e "$ENV_PATH" install --fail-fast -j "$JOBS" || status=$?
    ((status == 0)) || fail "spack install of the environment failed (status $status)"
}

# Where each installed package came from (built, cache, parent, external), for the
# manifest; what this build built goes to the build cache, signed. Only the package
# itself (--only package): its dependencies were built here too, or came from a mirror.
# --private: the cache is the account's, so recipes that forbid redistribution are pushed
# too. No --update-index: Spack finds a binary by its hash in every mirror without an
# index, and an index would let the concretizer reuse what the cache holds, making the
# lock depend on other builds. A failed push costs later builds time, not this one's
# stack: it is logged, and the build goes on.
step_push() {
    begin_step push
    local -a built=()
    read_lines_into built spack_helper install-sources "$INSTALL_DB" \
        "$WORK_DIR/installed-before" "$WORK_DIR/install-sources.json" "$ROOT_PREFIX"
    log "built here: ${#built[@]} packages"
    [[ -n "$BUILD_CACHE_URL" ]] || return 0
    # The cache's URL must not stay in the stack's environment: cluster users cannot reach it.
    spack_helper remove-mirror "$ENV_PATH/spack.yaml" "$CACHE_MIRROR"
    if ((${#built[@]} == 0)); then
        log "nothing built: nothing to push to the build cache"
        return 0
    fi
    if SPACK_GNUPGHOME="$SIGNING_HOME" run spack -C "$ENV_SCOPE_PATH" buildcache push \
        --signed --only package --private "$BUILD_CACHE_URL" "${built[@]/#//}"; then
        log "pushed ${#built[@]} packages to the build cache $BUILD_CACHE_URL"
    else
        log "WARNING: pushing to the build cache $BUILD_CACHE_URL failed: later builds will build these packages again"
    fi
}

# What a parent's volume holds that this stack does not need goes: gc keeps only the
# explicit specs (step_compilers) and all their dependencies (-b: build ones too, as a
# fresh build has them). `spack -e ENV gc` and a plain `gc` would keep the parent's
# packages: tests/spack/test_incremental.py shows it with the real Spack.
step_prune() {
    begin_step prune
    run spack -C "$ENV_SCOPE_PATH" gc --yes-to-all --keep-build-dependencies
    # The manifest's install sources: what the volume holds now, not what gc removed.
    spack_helper install-sources "$INSTALL_DB" "$WORK_DIR/installed-before" \
        "$WORK_DIR/install-sources.json" "$ROOT_PREFIX" >/dev/null
}

step_modules() {
    begin_step modules
    local system
    if ((${#MODULE_SYSTEMS[@]} == 0)); then
        log "the environment enables no module system: no module files"
        return 0
    fi
    export_env_config # again: it now holds core_compilers
    for system in "${MODULE_SYSTEMS[@]}"; do
        run spack -C "$ENV_SCOPE_PATH" module "$system" refresh --delete-tree -y
    done
}

# Single-quote a value for sh.
sh_quote() {
    local quote="'" escaped="'\\''"
    printf "'%s'" "${1//$quote/$escaped}"
}

# Module directories under a module root, as nodes see them, one per line.
find_module_dirs() {
    local root="$1" pattern="$2" dir
    [[ -d "$root" ]] || return 0
    while IFS= read -r dir; do
        node_path "$dir"
        printf '\n'
    done < <(find "$root" -mindepth "$3" -maxdepth "$3" -type d -path "$pattern" | sort)
}

# /shared/petal/profile.sh and profile.csh: the files a cluster node's shells source (the
# node setup script links them into /etc/profile.d, which is per node). profile.sh is
# POSIX sh, read by sh, dash and bash in login and in non-interactive shells (sbatch
# jobs); profile.csh is for csh and tcsh. Both must never exit, fail or print, and they
# are fast: they set SPACK_ROOT and MODULEPATH and source Lmod's init, which only defines
# `module`. Spack's setup-env.sh (which starts Python, ~2 s) is not sourced: users who
# want the `spack` shell function source it themselves.
step_profile() {
    begin_step profile
    local lmod_init_dir="" module_root
    local -a module_dirs=()
    MODULES_IN_PROFILE=none
    if module_system_enabled lmod; then
        MODULES_IN_PROFILE=lmod
        module_root="$SPACK_ROOT_PATH/share/spack/lmod"
        read_lines_into module_dirs find_module_dirs "$module_root" "*/Core" 2
        lmod_init_dir="$(spack -e "$ENV_PATH" location -i lmod)/lmod/lmod/init"
        [[ -f "$lmod_init_dir/bash" && -f "$lmod_init_dir/sh" && -f "$lmod_init_dir/csh" ]] ||
            fail "no Lmod init scripts (bash, sh, csh) in $lmod_init_dir"
        lmod_init_dir="$(node_path "$lmod_init_dir")"
    elif module_system_enabled tcl; then
        MODULES_IN_PROFILE=tcl
        module_root="$SPACK_ROOT_PATH/share/spack/modules"
        read_lines_into module_dirs find_module_dirs "$module_root" "*" 1
    fi
    if [[ "$MODULES_IN_PROFILE" != none ]] && ((${#module_dirs[@]} == 0)); then
        fail "spack generated no $MODULES_IN_PROFILE module tree under $(node_path "$module_root")"
    fi
    MODULE_DIRS=("${module_dirs[@]}")

    mkdir -p -- "$PETAL_PATH"
    write_file "$PETAL_PATH/profile.sh" sh_profile "$lmod_init_dir"
    write_file "$PETAL_PATH/profile.csh" csh_profile "$lmod_init_dir"
    log "wrote $PETAL_DIR/profile.sh and profile.csh ($MODULES_IN_PROFILE modules)"
}

# Write a file through a temporary one, readable by everyone, from a function's output.
write_file() {
    local path="$1"
    shift
    "$@" >"$path.tmp"
    chmod 644 -- "$path.tmp"
    mv -f -- "$path.tmp" "$path"
}

sh_profile() {
    local lmod_init_dir="$1" dir
    printf '# petal software stack %s (build %s, Spack %s).\n' \
        "$FINGERPRINT" "$BUILD_ID" "$SPACK_VERSION"
    cat <<'PETAL_PROFILE'
# Generated by petal's bootstrap; every node sources it through /etc/profile.d.
# POSIX sh: must never exit, fail or print (it runs in sbatch job shells too). A
# `#!/bin/sh` job on Ubuntu (dash) reads no profile: it starts with `. /etc/profile`.
PETAL_PROFILE
    printf 'SPACK_ROOT=%s\n' "$(sh_quote "$SPACK_ROOT_DIR")"
    printf 'export SPACK_ROOT\n'
    if ((${#MODULE_DIRS[@]} > 0)); then
        printf 'for _petal_dir in'
        for dir in "${MODULE_DIRS[@]}"; do
            printf ' %s' "$(sh_quote "$dir")"
        done
        printf '; do\n'
        cat <<'PETAL_PROFILE'
    # MODULEPATH rather than `module use`: it works before `module` exists, in any
    # shell, and both Lmod and environment-modules read it.
    case ":${MODULEPATH:-}:" in
    *":$_petal_dir:"*) ;;
    *) MODULEPATH="$_petal_dir${MODULEPATH:+:$MODULEPATH}"; export MODULEPATH ;;
    esac
done
unset _petal_dir
PETAL_PROFILE
    fi
    if [[ -n "$lmod_init_dir" ]]; then
        printf '_petal_lmod_bash=%s\n' "$(sh_quote "$lmod_init_dir/bash")"
        printf '_petal_lmod_sh=%s\n' "$(sh_quote "$lmod_init_dir/sh")"
        cat <<'PETAL_PROFILE'
# ParallelCluster's images ship environment-modules: the Lmod Spack built replaces its
# `module`. BASH_ENV keeps Lmod's in non-interactive bash (job scripts), where
# environment-modules' own BASH_ENV would bring its `module` back. The MPI libraries
# and what is built with them appear after `module load <mpi>`: `module spider NAME`
# finds every module.
_petal_lmod_init=$_petal_lmod_sh
if [ -n "${BASH_VERSION:-}" ]; then
    _petal_lmod_init=$_petal_lmod_bash
fi
if [ -f "$_petal_lmod_init" ]; then
    . "$_petal_lmod_init"
    BASH_ENV=$_petal_lmod_bash
    export BASH_ENV
fi
unset _petal_lmod_init _petal_lmod_bash _petal_lmod_sh
PETAL_PROFILE
    fi
    printf ':\n'
}

# csh and tcsh: the same settings. Values are single-quoted; none holds a `'` or `!`
# (node paths under /shared, checked here).
csh_quote() {
    [[ "$1" != *[\'\!\$\`]* && "$1" != *$'\n'* ]] || fail "cannot quote '$1' for csh"
    printf "'%s'" "$1"
}

csh_profile() {
    local lmod_init_dir="$1" dir
    printf '# petal software stack %s (build %s, Spack %s).\n' \
        "$FINGERPRINT" "$BUILD_ID" "$SPACK_VERSION"
    printf '# Generated by petal'"'"'s bootstrap for csh and tcsh; see profile.sh.\n'
    printf 'setenv SPACK_ROOT %s\n' "$(csh_quote "$SPACK_ROOT_DIR")"
    # shellcheck disable=SC2016 # csh expands these on the node
    for dir in "${MODULE_DIRS[@]}"; do
        printf 'if ( ! $?MODULEPATH ) setenv MODULEPATH %s\n' "$(csh_quote "$dir")"
        printf 'if ( ":${MODULEPATH}:" !~ *:%s:* ) setenv MODULEPATH %s":${MODULEPATH}"\n' \
            "$(csh_quote "$dir")" "$(csh_quote "$dir")"
    done
    if [[ -n "$lmod_init_dir" ]]; then
        printf 'if ( -f %s ) source %s\n' \
            "$(csh_quote "$lmod_init_dir/csh")" "$(csh_quote "$lmod_init_dir/csh")"
    fi
}

step_manifest() {
    begin_step manifest
    local lists="$WORK_DIR/manifest-lists"
    [[ -s "$ENV_PATH/spack.lock" ]] || fail "$ENV_DIR/spack.lock is missing"
    mkdir -p -- "$lists"
    printf '%s\n' "${SEED_COMPILERS[@]}" >"$lists/compilers"
    printf '%s\n' "${SYSTEM_COMPILERS[@]}" >"$lists/core_compilers"
    printf '%s\n' "${MODULE_DIRS[@]}" >"$lists/module_paths"
    PETAL_MOUNT_DIR="$MOUNT_DIR" PETAL_FINGERPRINT="$FINGERPRINT" PETAL_BUILD_ID="$BUILD_ID" \
        PETAL_SPACK_VERSION="$SPACK_VERSION" PETAL_OS_ID="$OS_ID" \
        PETAL_OS_VERSION_ID="$OS_VERSION_ID" PETAL_PARENT_SNAPSHOT="$PARENT_SNAPSHOT" \
        PETAL_BUILD_CACHE_URL="$BUILD_CACHE_URL" \
        spack_helper manifest "$PETAL_PATH/manifest.json" "$ENV_PATH/spack.lock" \
        "$lists/compilers" "$lists/core_compilers" "$MODULES_IN_PROFILE" \
        "$lists/module_paths" "$SPACK_COMMIT" "$WORK_DIR/install-sources.json"
    # Older Spack's `spack python` reports a Python exception but still exits 0.
    [[ -s "$PETAL_PATH/manifest.json" ]] || fail "could not write $PETAL_DIR/manifest.json"
    log "wrote $PETAL_DIR/manifest.json"
    upload_manifest
}

# The CLI reads a build's manifest without the volume: a copy goes to the seed bucket,
# and its SHA-256, in a marker line, onto the build record (log_heartbeat), so a copy
# changed later (any builder may write that prefix) is refused.
upload_manifest() {
    local sha sha_re='^sha256:[0-9a-f]{64}$'
    if [[ -z "$MANIFEST_URL" ]]; then
        log "no ManifestUrl: the manifest stays on the volume only"
        return 0
    fi
    sha="$(spack_helper upload-manifest "$PETAL_PATH/manifest.json" "$MANIFEST_URL")"
    [[ "$sha" =~ $sha_re ]] || fail "uploading the manifest to $MANIFEST_URL failed"
    log "uploaded the manifest to $MANIFEST_URL"
    marker "$MANIFEST_MARKER $sha"
}

# GnuPG agents started for the build cache keys keep sockets under SPACK_ROOT, which
# would make the volume busy; those of the signing key's home would outlive the command.
stop_gpg_agents() {
    local home
    command -v gpgconf >/dev/null 2>&1 || return 0
    for home in "$SPACK_ROOT_PATH/opt/spack/gpg" "$SPACK_ROOT_PATH/var/spack/gpg" \
        "$WORK_DIR/signing-gpg" "$WORK_DIR/new-gpg"; do
        [[ -d "$home" ]] || continue
        GNUPGHOME="$home" gpgconf --kill all >/dev/null 2>&1 || true
    done
}

# Flush and unmount: a snapshot of a mounted, written filesystem may be inconsistent.
step_unmount() {
    begin_step unmount
    local attempt
    cd /
    stop_gpg_agents
    run sync -f "$MOUNT_PATH"
    for attempt in 1 2 3 4 5; do
        if run umount "$MOUNT_PATH"; then
            return 0
        fi
        log "umount $MOUNT_DIR failed (attempt $attempt of 5): retrying"
        sleep 3
    done
    fail "cannot unmount $MOUNT_DIR: a process still uses it"
}

main() {
    set -Eeuo pipefail
    shopt -s inherit_errexit
    # Everything on the volume must be readable by cluster users.
    umask 022
    CURRENT_STEP=parameters
    HEARTBEAT_PID=""
    WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/petal-bootstrap.XXXXXX")"
    FAILURE_FILE="$WORK_DIR/failure"
    capture_output
    trap on_err ERR
    trap on_exit EXIT
    trap 'fail "terminated (SIGTERM)"' TERM
    trap 'fail "interrupted (SIGINT)"' INT

    init_settings
    validate_parameters
    # The SSM agent may run commands without HOME; git and Spack read it. Spack's user and
    # system scopes (~/.spack, /etc/spack) of this instance must not shape the build.
    export HOME="${HOME:-/root}" SPACK_DISABLE_LOCAL_CONFIG=1
    JOBS="$(nproc)"
    find_helper
    start_heartbeat

    step_device
    step_format
    step_mount
    step_prerequisites
    step_spack
    step_cache
    step_mirrors
    step_compilers
    step_environment
    step_concretize
    step_install
    step_push
    step_prune
    step_modules
    step_profile
    step_manifest
    step_unmount

    stop_heartbeat
    marker "$STEP_MARKER done"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
