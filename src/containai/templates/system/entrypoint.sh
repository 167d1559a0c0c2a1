#!/bin/bash
# containai entrypoint: runs as root under `docker run --init` on every start.
#
# Idempotent: makes the agent user match the host user (CAI_UID/CAI_GID), links
# the workspace and the agent state on the data volume into its home, then
# execs sshd. Everything it creates is owned by the agent; nothing is deleted.
# The agent never has root: no sudo rule, and cai creates the container with
# no-new-privileges (setuid programs do not raise privileges).
#
# Environment (set by cai at `docker create`):
#   CAI_UID, CAI_GID        the agent's ids on the host (never 0: cai picks an
#                           unprivileged uid when it runs as root)
#   CAI_USER                the agent's name (default: agent)
#   CAI_WORKSPACE           absolute host path of the workspace (bind-mounted
#                           at the same path; sessions start there)
#   CAI_SSH_FORWARD_AGENT   "true" allows ssh agent forwarding (ssh.forward_agent)
#   CAI_GIT_NAME, CAI_GIT_EMAIL
#                           the host's git user.name / user.email, written into the
#                           agent's ~/.gitconfig (on the volume) when it has none
# With arguments, it prepares the user and then execs them instead of sshd.
set -euo pipefail
umask 022

log() { printf 'containai: %s\n' "$*"; }
die() {
	printf 'containai: error: %s\n' "$*" >&2
	exit 1
}

readonly DATA=/mnt/agent-data
readonly SSH_DIR=/etc/containai/ssh
readonly DROPINS=/etc/containai/sshd_config.d
readonly HOME_LINKS=/etc/containai/home-links

uid=${CAI_UID:-1000}
gid=${CAI_GID:-$uid}
want=${CAI_USER:-agent}
ws=${CAI_WORKSPACE:-}

[[ $uid =~ ^[0-9]+$ ]] || die "CAI_UID must be a number, got '$uid'"
[[ $gid =~ ^[0-9]+$ ]] || die "CAI_GID must be a number, got '$gid'"
[[ $want =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "CAI_USER is not a valid user name: '$want'"
if [[ -n $ws && $ws != /* ]]; then die "CAI_WORKSPACE must be an absolute path, got '$ws'"; fi
# Root in the container is root on the host for the workspace's files.
if [[ $uid == 0 || $gid == 0 ]]; then die "the agent never runs as uid or gid 0 (CAI_UID=$uid CAI_GID=$gid)"; fi

# ---------------------------------------------------------------- user ----

# An account with a locked password field ("!...") cannot log in over ssh
# without PAM, even with a key: use "*" (no password, not locked).
unlock() {
	local name pw='' rest
	while IFS=: read -r name pw rest; do
		[[ $name == "$1" ]] && break
		pw=''
	done </etc/shadow
	if [[ -z $pw || $pw == '!'* ]]; then usermod -p '*' "$1"; fi
}

{
	# Primary group: reuse whatever group has this gid, else create one.
	group=$(getent group "$gid" | cut -d: -f1 || true)
	if [[ -z $group ]]; then
		if getent group "$want" >/dev/null; then
			groupmod -g "$gid" "$want"
		else
			groupadd -K GID_MIN=1 -K GID_MAX=2147483647 -g "$gid" "$want"
		fi
		group=$want
	fi
	home=/home/$want
	user=$(getent passwd "$uid" | cut -d: -f1 || true)
	if [[ -z $user ]]; then
		if getent passwd "$want" >/dev/null; then
			# The image has a user of that name with another uid: take it over.
			usermod -u "$uid" -g "$gid" -d "$home" -s /bin/bash "$want"
		else
			useradd --no-log-init -K UID_MIN=1 -K UID_MAX=2147483647 -M -u "$uid" -g "$gid" -d "$home" -s /bin/bash "$want"
		fi
		user=$want
	elif [[ $user != "$want" ]] && ! getent passwd "$want" >/dev/null; then
		# Another user has this uid (e.g. "node" in a node image): rename it.
		old_home=$(getent passwd "$user" | cut -d: -f6)
		if [[ $old_home == /home/* && -d $old_home && ! -e $home ]]; then
			usermod -l "$want" -d "$home" -m -g "$gid" -s /bin/bash "$user"
		else
			usermod -l "$want" -d "$home" -g "$gid" -s /bin/bash "$user"
		fi
		user=$want
	else
		# Right name already, or the name is taken by yet another uid (then the
		# existing account with this uid is used as it is, under its own name).
		home=$(getent passwd "$user" | cut -d: -f6)
		cur_gid=$(getent passwd "$user" | cut -d: -f4)
		cur_shell=$(getent passwd "$user" | cut -d: -f7)
		if [[ $cur_gid != "$gid" || $cur_shell != /bin/bash ]]; then
			usermod -g "$gid" -s /bin/bash "$user"
		fi
	fi
	if [[ ! -d $home ]]; then
		mkdir -p "$home"
		cp -a /etc/skel/. "$home"/ 2>/dev/null || true
		chown -R "$uid:$gid" "$home"
	else
		chown "$uid:$gid" "$home"
	fi
	# An older entrypoint gave the agent sudo: never again.
	if [[ -e /etc/sudoers.d/containai-agent ]]; then rm -f /etc/sudoers.d/containai-agent; fi
}
unlock "$user"

# ------------------------------------------------------ links in home ----

# Bash built-ins wherever they do: every program started here costs ~1 ms under
# runc and several under gVisor, and this runs before sshd on every start. What
# the agent must own is collected in `owned` and given to it by one chown.
owned=()
link_dirs=() # a link in link_dirs[i] to link_targets[i] (same name); one ln per directory
link_targets=()
link_srcs=() # the links themselves: an entry below one of them is on the volume already

# mkdir of each directory, in order (one program for all). The volume may be shared by
# containers starting at the same moment (two workspaces' first starts): a directory
# another one made meanwhile is fine, if it is a directory and not a link.
mkdirs() {
	mkdir "$@" 2>/dev/null && return 0
	local d
	for d in "$@"; do
		[[ -d $d && ! -L $d ]] || mkdir "$d" || die "cannot create $d"
	done
}

# mkdir -p whose new directories go to the agent.
mkdir_owned() {
	local d=$1 missing=()
	while [[ -n $d && ! -e $d ]]; do
		missing=("$d" "${missing[@]}")
		d=${d%/*}
	done
	if ((${#missing[@]})); then
		mkdirs "${missing[@]}"
		owned+=("${missing[@]}")
	fi
}

# One `ln -sfn -t DIR target...` per directory (links keep the targets' names).
make_links() {
	local i j dir targets
	for i in "${!link_dirs[@]}"; do
		dir=${link_dirs[$i]}
		[[ -n $dir ]] || continue
		targets=()
		for j in "${!link_dirs[@]}"; do
			if [[ ${link_dirs[$j]} == "$dir" ]]; then
				targets+=("${link_targets[$j]}")
				link_dirs[j]=''
			fi
		done
		ln -sfn -t "$dir" -- "${targets[@]}"
	done
}

link_workspace() {
	local link=$home/workspace
	[[ -n $ws ]] || return 0
	if [[ $ws == "$link" ]]; then return 0; fi
	if [[ -L $link || ! -e $link ]]; then
		if [[ $(readlink "$link" 2>/dev/null || true) != "$ws" ]]; then
			ln -sfn "$ws" "$link"
			chown -h "$uid:$gid" "$link"
		fi
	else
		log "warning: $link exists and is not a link; not linking the workspace there"
	fi
}

# ~/<entry> -> $DATA_HOME/<entry>. Data already in the home moves to
# the volume when the volume has none; otherwise it is kept aside, never deleted.
link_state() {
	local entry=$1 name src dst is_dir=0
	name=${entry%/}
	[[ $entry == */ ]] && is_dir=1
	src=$home/$name
	dst=$DATA_HOME/$name
	mkdir_owned "${src%/*}"
	mkdir_owned "${dst%/*}"
	if [[ -L $src ]]; then
		if [[ -e $dst && $src -ef $dst ]]; then return 0; fi # the link is right
		rm -f "$src"                                        # a link holds no data
	elif [[ -e $src ]]; then
		if [[ -e $dst ]]; then
			mv "$src" "$src.containai-bak.$(date -u +%Y%m%d%H%M%S)"
		else
			mv "$src" "$dst"
		fi
	fi
	if [[ ! -e $dst ]]; then
		if ((is_dir)); then
			mkdirs "$dst"
		elif [[ $dst == *.json || $dst == *.yml || $dst == *.yaml ]]; then
			# an empty mapping: tools refuse an empty JSON file, and aider an empty YAML one
			printf '{}\n' >"$dst"
		else
			: >"$dst"
		fi
		owned+=("$dst")
	fi
	link_dirs+=("${src%/*}")
	link_targets+=("$dst")
	owned+=("$src")
}

# Whether home-links entry $1 lies below one linked before (then it is skipped).
below_a_link() {
	local linked
	for linked in "${link_srcs[@]}"; do
		if [[ $home/${1%/} == "$linked"/* ]]; then return 0; fi
	done
	return 1
}

# The agent state's directory on the volume (domain/host_safety.py state_dir): the
# volume may be shared by containers of several host users, so the volume root stays
# root's and no uid's state is ever chowned to another. `home` belongs to the first
# uid that used it (root-owned content, from an import by root or an older cai whose
# agent was root, is adopted); any other uid keeps its state in `home-<uid>`.
# (find, not stat: coreutils' statx fails under older gVisor releases)
owner_of() { find "$1" -maxdepth 0 -printf '%U' 2>/dev/null || true; }
DATA_HOME=$DATA/home
link_workspace
if [[ -d $DATA ]]; then
	if [[ $(owner_of "$DATA") != 0 ]]; then
		# An older entrypoint gave the volume root to its agent: take it back.
		chown root:root "$DATA"
		chmod 0755 "$DATA"
	fi
	case $(owner_of "$DATA/home") in
	'' | 0 | "$uid") ;;
	*) DATA_HOME=$DATA/home-$uid ;;
	esac
	if [[ -L $DATA_HOME ]]; then die "$DATA_HOME is a symbolic link; the volume was tampered with"; fi
	if [[ ! -d $DATA_HOME ]]; then
		mkdirs "$DATA_HOME"
		owned+=("$DATA_HOME")
	elif [[ $(owner_of "$DATA_HOME") != "$uid" ]]; then
		chown -R "$uid:$gid" "$DATA_HOME" # root's (see above), or this uid's own directory
	fi
	if [[ -f $HOME_LINKS ]]; then
		while IFS= read -r entry || [[ -n $entry ]]; do
			entry=${entry%%#*}
			entry=${entry//[[:space:]]/}
			while [[ $entry == *//* ]]; do entry=${entry//\/\//\/}; done
			[[ -n $entry ]] || continue
			if [[ $entry == /* || $entry == *..* ]]; then
				log "warning: skipping home-links entry '$entry'"
				continue
			fi
			if below_a_link "$entry"; then
				log "warning: skipping home-links entry '$entry' (inside an entry linked above)"
				continue
			fi
			link_srcs+=("$home/${entry%/}")
			link_state "$entry"
		done <"$HOME_LINKS"
		make_links
	fi
fi
if ((${#owned[@]})); then chown -h "$uid:$gid" -- "${owned[@]}"; fi

# ------------------------------------------------------- git identity ----

# The host's user.name/user.email (cai checked them: one line, no control characters)
# where the agent's global git config has none; what an import or the agent set stays.
# Read and written as the agent (never root: the file is on the volume, the agent's).
as_agent() { setpriv --reuid="$uid" --regid="$gid" --clear-groups env HOME="$home" "$@"; }
git_identity() {
	local key value
	[[ -n ${CAI_GIT_NAME:-}${CAI_GIT_EMAIL:-} ]] || return 0
	if ! command -v git >/dev/null || ! command -v setpriv >/dev/null; then
		log "warning: no git or setpriv in the image; the host's git identity is not set"
		return 0
	fi
	for key in name email; do
		if [[ $key == name ]]; then value=${CAI_GIT_NAME:-}; else value=${CAI_GIT_EMAIL:-}; fi
		[[ -n $value ]] || continue
		if ! as_agent git config --global --get "user.$key" >/dev/null 2>&1; then
			as_agent git config --global "user.$key" "$value" ||
				log "warning: could not set git user.$key for $user"
		fi
	done
}
git_identity

# ------------------------------------------------------------ sessions ----

# Single-quote a value for sh.
shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# Per-user installs land on the data volume (home-links: ~/.local/bin, ~/.local/lib,
# the caches), so they survive `cai --fresh`: npm's global prefix is ~/.local, pip
# installs for the user when it cannot write the system's (Debian marks the system
# Python externally managed, PEP 668: a user install does not touch it), and
# ~/.local/bin comes first on PATH. Sessions only: `cai exec --root` and builds keep
# the image's settings, and so does this script, which runs as root: ~/.local/bin is
# the agent's, and a `mv` it leaves there must never run as root at the next start.
session_vars=("PATH=$home/.local/bin:$PATH" "NPM_CONFIG_PREFIX=$home/.local" PIP_BREAK_SYSTEM_PACKAGES=1)

# remoteEnv of the workspace's devcontainer.json (SPEC 18): cai writes it before the
# first start, root's; one entry a line, NAME=VALUE sets, -NAME unsets. It goes first
# into sshd's SetEnv (sshd keeps the first value of a name) and wins over the
# container's environment; every line is checked again here.
readonly REMOTE_ENV=/etc/containai/remote-env
setenv=()
declare -A remote_names=()
session_path=$home/.local/bin:$PATH
if [[ -f $REMOTE_ENV ]]; then
	while IFS= read -r line || [[ -n $line ]]; do
		if [[ $line == -* ]]; then
			name=${line#-}
			value=''
		else
			name=${line%%=*}
			value=${line#*=}
		fi
		[[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ && -z ${remote_names[$name]+set} ]] || continue
		case $name in
		HOSTNAME | HOME | PWD | OLDPWD | SHLVL | _ | TERM | USER | LOGNAME | SHELL | MAIL | SSH_* | CAI_* | CONTAINAI_*) continue ;;
		esac
		if [[ $value == *[\"\\]* || $value == *$'\r'* ]]; then
			log "warning: remoteEnv $name not passed to ssh sessions (quote or backslash in its value)"
			continue
		fi
		remote_names[$name]=1
		[[ $line == -* ]] && continue
		setenv+=("\"$name=$value\"")
		[[ $name == PATH ]] && session_path=$value
	done <"$REMOTE_ENV"
fi

# Login shells: Debian's /etc/profile resets PATH; restore the image's PATH (or
# remoteEnv's) and start interactive logins in the workspace. Root's login shells
# (`cai exec --root -- bash -l`) keep /etc/profile's: the sessions' PATH starts in the
# agent's ~/.local/bin, and remoteEnv's is the repository's.
{
	printf '# containai: written by the entrypoint on each start\n'
	# shellcheck disable=SC2016 # $(id -u) is for the login shell
	printf 'if [ "$(id -u)" != 0 ]; then PATH=%s; export PATH; fi\n' "$(shq "$session_path")"
	if [[ -n $ws ]]; then
		# shellcheck disable=SC2016 # $PWD and $HOME are for the login shell
		printf 'if [ "$PWD" = "$HOME" ] && [ -d %s ]; then cd %s || true; fi\n' "$(shq "$ws")" "$(shq "$ws")"
	fi
} >/etc/profile.d/containai.sh.tmp
mv -f /etc/profile.d/containai.sh.tmp /etc/profile.d/containai.sh

# Every ssh session (also `ssh host cmd`, VS Code) gets the container's
# environment: image ENV (PATH, CA variables) and the -e variables.
# The sessions' own settings come first (sshd keeps the first value of a name).
[[ -d $DROPINS ]] || mkdir -p "$DROPINS"
declare -A env_names=()
while IFS= read -r -d '' kv; do
	name=${kv%%=*}
	value=${kv#*=}
	[[ -z ${env_names[$name]+set} ]] || continue
	env_names[$name]=1
	case $name in
	HOSTNAME | HOME | PWD | OLDPWD | SHLVL | _ | TERM | USER | LOGNAME | SHELL | MAIL | SSH_*) continue ;;
	CAI_GIT_NAME | CAI_GIT_EMAIL) continue ;; # in ~/.gitconfig; never forced on sessions
	esac
	[[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
	[[ -z ${remote_names[$name]+set} ]] || continue # remoteEnv set or unset it
	if [[ $value == *[\"\\]* || $value == *$'\n'* ]]; then
		log "warning: $name not passed to ssh sessions (quote, backslash or newline in its value)"
		continue
	fi
	setenv+=("\"$name=$value\"")
done < <(
	printf '%s\0' "${session_vars[@]}"
	env -0
)
# 0600: -e values may be tokens; sshd reads this as root.
(
	umask 077
	{
		printf '# containai: written by the entrypoint on each start\n'
		if ((${#setenv[@]})); then printf 'SetEnv %s\n' "${setenv[*]}"; fi
	} >"$DROPINS/50-environment.conf.tmp"
)
mv -f "$DROPINS/50-environment.conf.tmp" "$DROPINS/50-environment.conf"
if [[ ${CAI_SSH_FORWARD_AGENT:-} == true ]]; then
	printf 'AllowAgentForwarding yes\n' >"$DROPINS/40-forward-agent.conf"
elif [[ -e $DROPINS/40-forward-agent.conf ]]; then
	rm -f "$DROPINS/40-forward-agent.conf"
fi

# What cai and scripts may read back.
{
	printf 'CAI_USER=%s\nCAI_UID=%s\nCAI_GID=%s\nCAI_HOME=%s\n' "$user" "$uid" "$gid" "$home"
	printf 'CAI_WORKSPACE=%s\n' "$(shq "$ws")"
	printf 'CAI_STATE=%s\n' "$(shq "$DATA_HOME")"
} >/etc/containai/agent.env

log "agent $user uid=$uid gid=$gid home=$home state=$DATA_HOME workspace=${ws:-none}"

if (($#)); then
	exec "$@"
fi

# ----------------------------------------------------------------- sshd ----

[[ -f $SSH_DIR/ssh_host_ed25519_key ]] ||
	die "missing $SSH_DIR/ssh_host_ed25519_key (cai copies it in before the first start)"
[[ -f $SSH_DIR/authorized_keys ]] ||
	die "missing $SSH_DIR/authorized_keys (cai copies it in before the first start)"
chown root:root "$SSH_DIR" "$SSH_DIR/ssh_host_ed25519_key" "$SSH_DIR/authorized_keys"
chmod 0755 "$SSH_DIR"
chmod 0600 "$SSH_DIR/ssh_host_ed25519_key"
chmod 0644 "$SSH_DIR/authorized_keys"
mkdir -p /run/sshd
chmod 0755 /run/sshd

log "starting sshd on port 2222"
# sshd alone gets the TCP_NODELAY shim (tcp-nodelay.c); the sessions it starts get
# the environment it builds for them, without LD_PRELOAD.
nodelay=/usr/local/lib/containai/libtcp-nodelay.so
if [[ -f $nodelay ]]; then
	LD_PRELOAD=$nodelay${LD_PRELOAD:+:$LD_PRELOAD} exec /usr/sbin/sshd -D -e -f /etc/containai/sshd_config
fi
exec /usr/sbin/sshd -D -e -f /etc/containai/sshd_config
