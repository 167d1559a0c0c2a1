#!/bin/bash -p
# containai entrypoint: runs as root under `docker run --init` on every start.
#
# Idempotent: makes the agent user match the host user (CAI_UID/CAI_GID), has the
# workspace and the agent state on the data volume linked into its home (by the agent
# itself: link-home.sh), then execs sshd. Nothing is deleted. The agent never has root:
# no sudo rule, and cai creates the container with no-new-privileges (setuid programs do
# not raise privileges).
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
#                           container's system git config (the agent's own wins)
# With arguments, it prepares the user and then execs them instead of sshd.

# The container's environment as the engine gave it, before this script sets a variable
# (for the sessions' SetEnv below; before `set -u`: some of bash's own are unset arrays).
# Bash alone: under gVisor every program started here costs ~20-60 ms
# (docs/performance.md), so this script starts as few as it can.
start_env=()
_cai_names=()
for _cai_p in {A..Z} {a..z} _; do
	eval "_cai_names=(\${!$_cai_p@})"
	for _cai_n in "${_cai_names[@]}"; do
		if [[ ${!_cai_n@a} == *x* ]]; then start_env+=("$_cai_n=${!_cai_n}"); fi
	done
done
unset _cai_p _cai_n _cai_names
# What the environment could change in this root shell's own behaviour: BASH_COMPAT=42
# turns shq's quoting below into an injection into /etc/profile.d (root login shells);
# a locale name with a '/' makes root's programs load locale files from that path. cai
# refuses these in a repository's containerEnv; this is the second line (and `bash -p`
# above: no functions imported from the environment, no SHELLOPTS/BASHOPTS, ENV or
# BASH_ENV read). Root's perl (the links, below) reads nothing of PERL5OPT, PERL5LIB,
# PERLIO_DEBUG and the like either. The sessions get start_env, as given.
unset -v BASH_COMPAT POSIXLY_CORRECT EXECIGNORE FUNCNEST CDPATH GLOBIGNORE ${!PERL@}
for _cai_n in LANG LANGUAGE ${!LC_@}; do
	if [[ ${!_cai_n-} == */* ]]; then unset -v "$_cai_n"; fi
done
unset _cai_n
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
readonly LINK_HOME=/usr/local/lib/containai/link-home.sh
readonly GIT_IDENTITY=/etc/containai/gitconfig

uid=${CAI_UID:-1000}
gid=${CAI_GID:-$uid}
want=${CAI_USER:-agent}
ws=${CAI_WORKSPACE:-}

[[ $uid =~ ^[0-9]{1,10}$ ]] || die "CAI_UID must be a number, got '$uid'"
[[ $gid =~ ^[0-9]{1,10}$ ]] || die "CAI_GID must be a number, got '$gid'"
[[ $want =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "CAI_USER is not a valid user name: '$want'"
if [[ -n $ws && $ws != /* ]]; then die "CAI_WORKSPACE must be an absolute path, got '$ws'"; fi
# Root in the container is root on the host for the workspace's files ("00" is 0 too).
if ((10#$uid == 0 || 10#$gid == 0)); then die "the agent never runs as uid or gid 0 (CAI_UID=$uid CAI_GID=$gid)"; fi
uid=$((10#$uid))
gid=$((10#$gid))
if ((uid > 2147483647 || gid > 2147483647)); then die "CAI_UID and CAI_GID must be at most 2147483647"; fi

# ---------------------------------------------------------------- user ----

# The accounts are read from /etc/passwd and /etc/group with bash (the name service of a
# container is its files): getent and cut would be two programs per look-up. Files are
# read whole (mapfile) and split in memory: a `read` loop costs two system calls a line,
# each a trap under gVisor's ptrace platform.
# f: the fields of line $1, split at ":".
split_colon() {
	local rest=$1
	f=()
	while [[ $rest == *:* ]]; do
		f+=("${rest%%:*}")
		rest=${rest#*:}
	done
	f+=("$rest")
}
# ent: the fields of the first line of file $1 whose field $2 (0: name, 2: id) is $3.
ent_of() {
	local line
	local -a lines f
	ent=()
	mapfile -t lines <"$1"
	for line in "${lines[@]}"; do
		[[ $line == *"$3"* ]] || continue
		split_colon "$line"
		if [[ ${f[$2]-} == "$3" ]]; then
			ent=("${f[@]}")
			return 0
		fi
	done
	return 1
}

# Appends line $2 to file $1 (after a newline when the file does not end with one).
append_line() {
	local text=''
	IFS= read -r -d '' text <"$1" || true
	if [[ -n $text && $text != *$'\n' ]]; then
		printf '\n%s\n' "$2" >>"$1"
	else
		printf '%s\n' "$2" >>"$1"
	fi
}

# An account with a locked password field ("!...") cannot log in over ssh
# without PAM, even with a key: use "*" (no password, not locked).
unlock() {
	local pw=''
	[[ -f /etc/shadow ]] || return 0
	if ent_of /etc/shadow 0 "$1"; then pw=${ent[1]-}; fi
	if [[ -z $pw || $pw == '!'* ]]; then usermod -p '*' "$1"; fi
}

{
	home=/home/$want
	# Primary group: reuse whatever group has this gid, else make one.
	if ent_of /etc/group 2 "$gid"; then
		:
	elif ent_of /etc/group 0 "$want"; then
		groupmod -g "$gid" "$want"
	else
		# the lines groupadd would write
		append_line /etc/group "$want:x:$gid:"
		if [[ -f /etc/gshadow ]]; then append_line /etc/gshadow "$want:!::"; fi
	fi
	if ! ent_of /etc/passwd 2 "$uid"; then
		if ent_of /etc/passwd 0 "$want"; then
			# The image has a user of that name with another uid: take it over.
			usermod -u "$uid" -g "$gid" -d "$home" -s /bin/bash "$want"
		else
			# No account of that uid or name (a first start): the lines useradd would
			# write, with the password "*" (not locked, see unlock).
			printf -v days '%(%s)T' -1
			if [[ -f /etc/shadow ]]; then
				append_line /etc/passwd "$want:x:$uid:$gid::$home:/bin/bash"
				append_line /etc/shadow "$want:*:$((days / 86400)):0:99999:7:::"
			else
				append_line /etc/passwd "$want:*:$uid:$gid::$home:/bin/bash"
			fi
		fi
		user=$want
	else
		by_uid=("${ent[@]}")
		user=${by_uid[0]}
		if [[ $user != "$want" ]] && ! ent_of /etc/passwd 0 "$want"; then
			# Another user has this uid (e.g. "node" in a node image): rename it.
			old_home=${by_uid[5]-}
			if [[ $old_home == /home/* && -d $old_home && ! -e $home ]]; then
				usermod -l "$want" -d "$home" -m -g "$gid" -s /bin/bash "$user"
			else
				usermod -l "$want" -d "$home" -g "$gid" -s /bin/bash "$user"
			fi
			user=$want
		else
			# Right name already, or the name is taken by yet another uid (then the
			# existing account with this uid is used as it is, under its own name).
			home=${by_uid[5]-}
			if [[ ${by_uid[3]-} != "$gid" || ${by_uid[6]-} != /bin/bash ]]; then
				usermod -g "$gid" -s /bin/bash "$user"
			fi
		fi
	fi
	[[ $home == /* ]] || die "the home of $user is not an absolute path: '$home'"
	# An older entrypoint gave the agent sudo: never again.
	if [[ -e /etc/sudoers.d/containai-agent ]]; then rm -f /etc/sudoers.d/containai-agent; fi
}
unlock "$user"

# ------------------------------------------------------- owners, once ----

# Type, owner, group and mode of every path this script checks, from one `find` (not
# stat: coreutils' statx fails under older gVisor releases). A path that is missing has
# no entry; a link is reported as the link (type l), never followed.
declare -A ftype=() fown=() fgrp=() fmode=()
stat_paths() {
	local t u g m p
	while IFS=' ' read -r -d '' t u g m p; do
		ftype[$p]=$t
		fown[$p]=$u
		fgrp[$p]=$g
		fmode[$p]=$m
	done < <(find "$@" -maxdepth 0 -printf '%y %U %G %m %p\0' 2>/dev/null || true)
}
stat_paths "$home" "$DATA" "$DATA/home" "$DATA/home-$uid" "$SSH_DIR" \
	"$SSH_DIR/ssh_host_ed25519_key" "$SSH_DIR/authorized_keys" /run/sshd
# Whether $1 is root's, of type $2 (find's %y) and mode $3.
root_owned() { [[ ${ftype[$1]-}/${fown[$1]-}/${fgrp[$1]-}/${fmode[$1]-} == "$2/0/0/$3" ]]; }

# ------------------------------------------------------ links in home ----

# The prelude of the links' perl, run as root: `UID GID DIR... --` then APPLY_PERL's
# arguments. Each DIR is made (its missing parents root's, as `install -d` makes them)
# or taken, and given to the agent, 0755, through a handle on the very directory (never
# through a link swapped in: lstat and the handle must agree); then groups, gid and uid
# are set to the agent's (setgroups, setregid, seteuid then setreuid: the saved ids too)
# and read back from the kernel, capabilities included. Exit 3 on any failure, before
# a single path of the agent's is touched.
readonly AS_AGENT_PERL='
my ($uid, $gid) = (shift @ARGV, shift @ARGV);
sub fatal { print STDERR "containai: error: $_[0]\n"; exit 3 }
while (@ARGV) {
	my $d = shift @ARGV;
	last if $d eq "--";
	my $up = "";
	for my $part (grep { length } split(m{/}, $d)) {
		$up .= "/$part";
		mkdir($up, 0755) or -d $up or fatal("cannot create $up: $!");
	}
	open(my $h, "<", $d) or fatal("cannot open $d: $!");
	my @seen = lstat($d);
	my $dir = -d _;
	my @held = stat($h);
	fatal("$d is not a directory of its own (a link?)")
		unless $dir and @held and $seen[0] == $held[0] and $seen[1] == $held[1];
	chown($uid, $gid, $h) and chmod(0755, $h) or fatal("cannot give $d to the agent: $!");
	close($h);
}
$) = "$gid $gid";
$( = $gid;
$> = $uid;
$< = $uid;
my %ids;
open(my $status, "<", "/proc/self/status") or fatal("cannot read /proc/self/status: $!");
while (<$status>) { $ids{$1} = join(" ", split(" ", $2)) if /^(Uid|Gid|Groups|CapPrm|CapEff):(.*)$/ }
close($status);
fatal("could not become uid $uid gid $gid (Uid: $ids{Uid}; Gid: $ids{Gid}; Groups: $ids{Groups})")
	unless $ids{Uid} eq "$uid $uid $uid $uid" and $ids{Gid} eq "$gid $gid $gid $gid"
	and $ids{Groups} eq "$gid" and $ids{CapPrm} =~ /^0+$/ and $ids{CapEff} =~ /^0+$/;
'

new_dirs=() # made for the agent by root (the links' perl, or `install -d`)
skel=''
if [[ ! -d $home ]]; then
	new_dirs+=("$home")
	skel=skel
elif [[ ${fown[$home]-}:${fgrp[$home]-} != "$uid:$gid" ]]; then
	chown "$uid:$gid" "$home"
fi

# The agent state's directory on the volume (domain/host_safety.py state_dir): the
# volume may be shared by containers of several host users, so the volume root stays
# root's and no uid's state is ever chowned to another. `home` belongs to the first
# uid that used it (root-owned content, from an import by root or an older cai whose
# agent was root, is adopted); any other uid keeps its state in `home-<uid>`.
DATA_HOME=$DATA/home
state='' # DATA_HOME when there is a volume
if [[ -d $DATA ]]; then
	if [[ ${fown[$DATA]-} != 0 ]]; then
		# An older entrypoint gave the volume root to its agent: take it back.
		chown root:root "$DATA"
		chmod 0755 "$DATA"
	fi
	case ${fown[$DATA/home]-} in
	'' | 0 | "$uid") ;;
	*) DATA_HOME=$DATA/home-$uid ;;
	esac
	if [[ -L $DATA_HOME ]]; then die "$DATA_HOME is a symbolic link; the volume was tampered with"; fi
	if [[ ! -d $DATA_HOME ]]; then
		new_dirs+=("$DATA_HOME")
	elif [[ ${fown[$DATA_HOME]-} != "$uid" ]]; then
		chown -R "$uid:$gid" "$DATA_HOME" # root's (see above), or this uid's own directory
	fi
	state=$DATA_HOME
fi

# The links themselves are made by the agent (link-home.sh says why), and only when one
# is missing: at a restart, bash's own tests find them all in place. Usually one perl
# does it all: as root it makes the new directories above (in root's /home and volume
# root, where the agent cannot reach), then it becomes the agent for good (checked in
# /proc/self/status before anything else) and makes the links (APPLY_PERL). One
# program where `install`, `setpriv` and perl were three (~60 ms under gVisor). When
# the plan needs link-home.sh's shell steps: `install -d`, then setpriv. (The plan is
# the same before the new directories exist: they are empty, and a "d:" of one that
# exists by then is no error.)
# shellcheck source=link-home.sh
. "$LINK_HOME"
plan_links "$home" "$state" "$ws" "$skel" warn
unlinked="warning: some of the agent's state is not linked into its home (see above)"
if ((${#ops[@]})) && ((!shell)); then
	rc=0
	HOME=$home /usr/bin/perl -e "$AS_AGENT_PERL$APPLY_PERL" -- "$uid" "$gid" "${new_dirs[@]}" \
		-- "${ops[@]}" || rc=$?
	if ((rc == 3)); then die "the agent's directories could not be made, or the agent not become"; fi
	if ((rc)); then log "$unlinked"; fi
else
	if ((${#new_dirs[@]})); then install -d -o "$uid" -g "$gid" -m 0755 -- "${new_dirs[@]}"; fi
	if ((${#ops[@]})); then
		command -v setpriv >/dev/null || die "the image has no setpriv (util-linux): rebuild it with cai image build"
		HOME=$home setpriv --reuid="$uid" --regid="$gid" --clear-groups -- \
			/bin/bash "$LINK_HOME" "$home" "$state" "$ws" "$skel" || log "$unlinked"
	fi
fi

# ------------------------------------------------------- root's files ----

# Writes $2 to file $1 unless it holds exactly that already (a restart writes nothing).
# In place, not through a temporary file and mv (a program): nothing reads these files
# while the container starts, and the next start writes them again.
write_file() {
	local old=''
	if [[ -f $1 ]]; then
		IFS= read -r -d '' old <"$1" || true
		[[ $old != "$2" ]] || return 0
	fi
	printf '%s' "$2" >"$1"
}

# $1 single-quoted for sh, in REPLY.
shq() { printf -v REPLY "'%s'" "${1//\'/\'\\\'\'}"; }

# ------------------------------------------------------- git identity ----

# The host's user.name/user.email (cai checked them: one line, no control characters) in
# the container's system git config: /etc/gitconfig includes this file (the system
# layer's Dockerfile), root's, in the container, never on the volume. git reads the
# agent's ~/.gitconfig after it, so what the agent or an import set there wins, and the
# host's identity applies where it has none. Quoted for git: \ and " escaped.
git_identity() {
	local key value text section=''
	text="# containai: the host's git identity, written by the entrypoint on each start"$'\n'
	for key in name email; do
		if [[ $key == name ]]; then value=${CAI_GIT_NAME:-}; else value=${CAI_GIT_EMAIL:-}; fi
		[[ -n $value ]] || continue
		if [[ $value == *[[:cntrl:]]* ]]; then
			log "warning: the host's git user.$key has a control character; not set"
			continue
		fi
		value=${value//\\/\\\\}
		value=${value//\"/\\\"}
		section+=$'\t'"$key = \"$value\""$'\n'
	done
	if [[ -n $section ]]; then text+=$'[user]\n'$section; fi
	write_file "$GIT_IDENTITY" "$text"
}
git_identity

# ------------------------------------------------------------ sessions ----

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
	mapfile -t remote_lines <"$REMOTE_ENV"
	for line in "${remote_lines[@]}"; do
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
	done
fi

# Login shells: Debian's /etc/profile resets PATH; restore the image's PATH (or
# remoteEnv's) and start interactive logins in the workspace. Root's login shells
# (`cai exec --root -- bash -l`) keep /etc/profile's: the sessions' PATH starts in the
# agent's ~/.local/bin, and remoteEnv's is the repository's.
shq "$session_path"
q_path=$REPLY
shq "$ws"
q_ws=$REPLY
text='# containai: written by the entrypoint on each start'$'\n'
# shellcheck disable=SC2016 # $(id -u) is for the login shell
printf -v line 'if [ "$(id -u)" != 0 ]; then PATH=%s; export PATH; fi\n' "$q_path"
text+=$line
if [[ -n $ws ]]; then
	# shellcheck disable=SC2016 # $PWD and $HOME are for the login shell
	printf -v line 'if [ "$PWD" = "$HOME" ] && [ -d %s ]; then cd %s || true; fi\n' "$q_ws" "$q_ws"
	text+=$line
fi
write_file /etc/profile.d/containai.sh "$text"

# Every ssh session (also `ssh host cmd`, VS Code) gets the container's
# environment: image ENV (PATH, CA variables) and the -e variables.
# The sessions' own settings come first (sshd keeps the first value of a name).
[[ -d $DROPINS ]] || mkdir -p "$DROPINS"
declare -A env_names=()
for kv in "${session_vars[@]}" "${start_env[@]}"; do
	name=${kv%%=*}
	value=${kv#*=}
	[[ -z ${env_names[$name]+set} ]] || continue
	env_names[$name]=1
	case $name in
	HOSTNAME | HOME | PWD | OLDPWD | SHLVL | _ | TERM | USER | LOGNAME | SHELL | MAIL | SSH_*) continue ;;
	CAI_GIT_NAME | CAI_GIT_EMAIL) continue ;; # in the system git config; never forced on sessions
	esac
	[[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
	[[ -z ${remote_names[$name]+set} ]] || continue # remoteEnv set or unset it
	if [[ $value == *[\"\\]* || $value == *$'\n'* ]]; then
		log "warning: $name not passed to ssh sessions (quote, backslash or newline in its value)"
		continue
	fi
	setenv+=("\"$name=$value\"")
done
text='# containai: written by the entrypoint on each start'$'\n'
if ((${#setenv[@]})); then text+="SetEnv ${setenv[*]}"$'\n'; fi
# 0600: -e values may be tokens; sshd reads this as root.
umask 077
write_file "$DROPINS/50-environment.conf" "$text"
umask 022
if [[ ${CAI_SSH_FORWARD_AGENT:-} == true ]]; then
	printf 'AllowAgentForwarding yes\n' >"$DROPINS/40-forward-agent.conf"
elif [[ -e $DROPINS/40-forward-agent.conf ]]; then
	rm -f "$DROPINS/40-forward-agent.conf"
fi

# What cai and scripts may read back.
shq "$DATA_HOME"
q_state=$REPLY
printf -v text 'CAI_USER=%s\nCAI_UID=%s\nCAI_GID=%s\nCAI_HOME=%s\nCAI_WORKSPACE=%s\nCAI_STATE=%s\n' \
	"$user" "$uid" "$gid" "$home" "$q_ws" "$q_state"
write_file /etc/containai/agent.env "$text"

log "agent $user uid=$uid gid=$gid home=$home state=$DATA_HOME workspace=${ws:-none}"

if (($#)); then
	exec "$@"
fi

# ----------------------------------------------------------------- sshd ----

[[ -f $SSH_DIR/ssh_host_ed25519_key ]] ||
	die "missing $SSH_DIR/ssh_host_ed25519_key (cai copies it in before the first start)"
[[ -f $SSH_DIR/authorized_keys ]] ||
	die "missing $SSH_DIR/authorized_keys (cai copies it in before the first start)"
# cai copies them in root's with these modes (services/container_keys.py), and the
# image has /run/sshd: programs only when something is off.
if ! root_owned "$SSH_DIR" d 755 || ! root_owned "$SSH_DIR/ssh_host_ed25519_key" f 600 ||
	! root_owned "$SSH_DIR/authorized_keys" f 644; then
	chown root:root "$SSH_DIR" "$SSH_DIR/ssh_host_ed25519_key" "$SSH_DIR/authorized_keys"
	chmod 0755 "$SSH_DIR"
	chmod 0600 "$SSH_DIR/ssh_host_ed25519_key"
	chmod 0644 "$SSH_DIR/authorized_keys"
fi
if ! root_owned /run/sshd d 755; then
	mkdir -p /run/sshd
	chown root:root /run/sshd
	chmod 0755 /run/sshd
fi

log "starting sshd on port 2222"
# sshd alone gets the TCP_NODELAY shim (tcp-nodelay.c); the sessions it starts get
# the environment it builds for them, without LD_PRELOAD.
nodelay=/usr/local/lib/containai/libtcp-nodelay.so
if [[ -f $nodelay ]]; then
	LD_PRELOAD=$nodelay${LD_PRELOAD:+:$LD_PRELOAD} exec /usr/sbin/sshd -D -e -f /etc/containai/sshd_config
fi
exec /usr/sbin/sshd -D -e -f /etc/containai/sshd_config
