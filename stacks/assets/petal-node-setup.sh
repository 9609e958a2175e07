#!/bin/sh
# petal node setup: a ParallelCluster OnNodeConfigured action run on every node.
#
# /etc is per node, so the environment profile built onto the software volume (shared
# at /shared) has to be linked into each node's /etc/profile.d. The script installs
# nothing and touches nothing else: OnNodeConfigured has to stay fast, or node
# bootstraps (and with them cluster creation) time out. A node without the profile
# is not an error here; `petal` reports it when it checks the cluster.
set -eu

# Overridable only so the tests can run the script outside a cluster node.
profile="${PETAL_PROFILE:-/shared/petal/profile.sh}"
link="${PETAL_PROFILE_LINK:-/etc/profile.d/petal.sh}"

if [ -r "$profile" ]; then
    ln -sfn "$profile" "$link"
    echo "petal: linked $link -> $profile"
else
    echo "petal: $profile not found, nothing to link" >&2
fi
# csh and tcsh logins read /etc/profile.d/*.csh.
csh_profile="${profile%.sh}.csh"
csh_link="${link%.sh}.csh"
if [ -r "$csh_profile" ]; then
    ln -sfn "$csh_profile" "$csh_link"
    echo "petal: linked $csh_link -> $csh_profile"
fi
exit 0
