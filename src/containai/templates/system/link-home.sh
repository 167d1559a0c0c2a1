#!/bin/bash
# containai: the agent's home linked to its state on the data volume (home-links), and
# ~/workspace to the workspace. Two uses, both by the entrypoint:
#
#   sourced, as root: `plan_links HOME STATE WORKSPACE [skel]` finds with bash tests alone
#     (no program started, nothing written) what is missing: nothing, at every start but
#     a container's first. What is, the entrypoint has done as the agent (setpriv): one
#     perl for it all (`APPLY_PERL`), or, when the plan says `shell` (data to move, no
#     perl in the image, /etc/skel with more than plain files), this script:
#   run as the agent: link-home.sh HOME STATE WORKSPACE [skel]
#     STATE: the agent's directory on the volume ('' without a volume); "skel": HOME was
#     just made, /etc/skel goes into it.
#
# Everything that creates, moves or links runs as the agent, never as root: the home and
# the volume are the agent's own, and it may have left links there between starts
# (~/.local -> /, a directory on the volume -> /etc, a dangling link where a file is to
# be made). Followed by root, such a link would make root replace /bin, create files in
# /etc or give the agent a directory there; followed by the agent, it can do nothing the
# agent could not do itself. (Root's plan only names paths; what they lead to is for the
# agent's own system calls.) Every program started costs ~20-60 ms under gVisor.

HOME_LINKS=/etc/containai/home-links # a variable: tests/unit/test_link_home.py sets its own

# entries: the home-links entries in order (comments and blanks dropped, "//" made "/").
# An absolute entry, one with "..", or one inside an entry before it is left out (and
# warned about when $1 is "warn").
read_entries() {
	local warn=${1:-} entry up inside
	local -a lines
	local -A taken=()
	entries=()
	[[ -f $HOME_LINKS ]] || return 0
	mapfile -t lines <"$HOME_LINKS" # whole: a `read` loop costs two system calls a line
	for entry in "${lines[@]}"; do
		entry=${entry%%#*}
		entry=${entry//[[:space:]]/}
		while [[ $entry == *//* ]]; do entry=${entry//\/\//\/}; done
		[[ -n $entry ]] || continue
		if [[ $entry == /* || $entry == *..* ]]; then
			if [[ -n $warn ]]; then log "warning: skipping home-links entry '$entry'"; fi
			continue
		fi
		inside=''
		up=${entry%/}
		while [[ $up == */* ]]; do
			up=${up%/*}
			if [[ -n ${taken[$up]+set} ]]; then inside=1; fi
		done
		if [[ -n $inside ]]; then
			if [[ -n $warn ]]; then log "warning: skipping home-links entry '$entry' (inside an entry linked above)"; fi
			continue
		fi
		entries+=("$entry")
		taken[${entry%/}]=1
	done
}

# Whether link $1 leads to the workspace $2 (or, the workspace missing, leads nowhere
# either: bash cannot read a link, and a dangling link is all ln would make then).
ws_link_ok() { [[ -L $1 ]] && { [[ $1 -ef $2 ]] || [[ ! -e $1 && ! -e $2 ]]; }; }

# The plan (plan_links), for both uses: directories to make (mk, parents first; planned:
# the set of them), per entry its link, target and what to do (srcs, dsts, kinds: link,
# file or move), ws_link, the perl arguments (ops), shell (1: the shell steps must do it).
mk=() srcs=() dsts=() kinds=() ops=()
declare -A planned=()
ws_link=''
shell=0

# Adds $1 and its missing parents to `mk` (parents first), once.
plan_dirs() {
	local d=$1 missing=()
	while [[ -n $d && -z ${planned[$d]+set} && ! -e $d && ! -L $d ]]; do
		missing=("$d" "${missing[@]}")
		planned[$d]=1
		d=${d%/*}
	done
	mk+=("${missing[@]}")
}

# ws_link: ~/workspace when it is to be made (or replaced) as a link to the workspace.
plan_workspace() {
	local link=$1/workspace ws=$2 warn=$3
	ws_link=''
	[[ -n $ws && $ws != "$link" ]] || return 0
	if [[ -L $link || ! -e $link ]]; then
		ws_link_ok "$link" "$ws" || ws_link=$link
	elif [[ -n $warn ]]; then
		log "warning: $link exists and is not a link; not linking the workspace there"
	fi
}

# The /etc/skel files for a new home $1 as perl copies ("c:" arguments), or shell=1 when
# one is anything but a plain file (a directory, a link, an executable: `cp -a` then).
plan_skel() {
	local f
	local -a all
	shopt -s nullglob dotglob
	all=(/etc/skel/*)
	shopt -u nullglob dotglob
	for f in "${all[@]}"; do
		if [[ -L $f || ! -f $f || ! -r $f || -x $f ]]; then
			shell=1
			return 0
		fi
		ops+=("c:$1/${f##*/}" "$f")
	done
}

# plan_links HOME STATE WORKSPACE [skel] [warn]: what is missing, in the variables above.
# Data already in the home where a link goes moves to the volume when the volume has none;
# otherwise it is kept aside, never deleted.
plan_links() {
	local home=$1 state=$2 ws=$3 skel=${4:-} warn=${5:-} entry name src dst i
	mk=() srcs=() dsts=() kinds=() ops=()
	planned=()
	shell=0
	plan_workspace "$home" "$ws" "$warn"
	if [[ -n $state ]]; then read_entries "$warn"; else entries=(); fi
	for entry in "${entries[@]}"; do
		name=${entry%/}
		src=$home/$name
		dst=$state/$name
		if [[ -L $src && -e $dst && $src -ef $dst ]]; then continue; fi # the link is right
		plan_dirs "${src%/*}"
		plan_dirs "${dst%/*}"
		if [[ ! -L $src && -e $src ]]; then
			kinds+=(move)
			shell=1
		elif [[ -e $dst || -L $dst ]]; then # (a dangling link there is the agent's doing)
			kinds+=(link)
		elif [[ $entry == */ ]]; then
			kinds+=(link)
			plan_dirs "$dst"
		else
			kinds+=(file)
		fi
		srcs+=("$src")
		dsts+=("$dst")
	done
	for dst in "${mk[@]}"; do ops+=("d:$dst"); done
	if [[ $skel == skel ]]; then plan_skel "$home"; fi
	for i in "${!kinds[@]}"; do
		dst=${dsts[i]}
		[[ ${kinds[i]} == file ]] || continue
		# an empty mapping: tools refuse an empty JSON file, and aider an empty YAML one
		if [[ $dst == *.json || $dst == *.yml || $dst == *.yaml ]]; then ops+=("j:$dst"); else ops+=("f:$dst"); fi
	done
	for i in "${!srcs[@]}"; do ops+=("l:${srcs[i]}" "${dsts[i]}"); done
	if [[ -n $ws_link ]]; then ops+=("l:$ws_link" "$ws"); fi
	if ((${#ops[@]})) && [[ ! -x /usr/bin/perl ]]; then shell=1; fi
	if ((${#ops[@]} == 0)); then shell=0; fi
}

# What link_home's shell steps do, in one program (Debian's perl-base is essential):
# arguments d:DIR (mkdir; a directory there already is fine, not a link), c:FILE FROM
# (a copy of FROM's content), f:FILE (made empty), j:FILE (made with "{}"), l:LINK TARGET
# (a link there already is replaced). No module is loaded: each file perl opens costs
# under gVisor. Run as the agent, never as root.
# shellcheck disable=SC2016 # perl's variables
readonly APPLY_PERL='
my $bad = 0;
sub problem { print STDERR "containai: warning: $_[0]: $!\n"; $bad = 1 }
while (@ARGV) {
	my ($k, $p) = split /:/, shift(@ARGV), 2;
	if ($k eq "d") {
		next if mkdir $p;
		my $e = $!;
		next if -d $p and not -l $p;
		$! = $e;
		problem("cannot create $p");
	} elsif ($k eq "c") {
		my $from = shift @ARGV;
		my ($in, $out);
		local $/;
		if (open($in, "<", $from) and open($out, ">", $p)) {
			my $data = <$in>;
			print {$out} $data if defined $data;
			close($out) or problem("cannot create $p");
		} else { problem("cannot create $p") }
	} elsif ($k eq "f" or $k eq "j") {
		my $fh;
		if (open($fh, ">", $p)) { print {$fh} "{}\n" if $k eq "j"; close($fh) or problem("cannot create $p") }
		else { problem("cannot create $p") }
	} elsif ($k eq "l") {
		my $t = shift @ARGV;
		unlink $p if -l $p;
		symlink($t, $p) or problem("cannot link $p");
	}
}
exit $bad;
'

# ------------------------------------------------------ run as the agent ----

# What went wrong is said, and the rest is still done (the exit status then is 1): a
# failure here is the agent's own home or state (a link it cannot write through, a full
# volume), and its container had better start, where the agent can repair it.
failed=0
problem() {
	printf 'containai: warning: %s\n' "$*" >&2
	failed=1
}

# mkdir of each directory, in order (one program for all). The volume may be shared by
# containers starting at the same moment (two workspaces' first starts): a directory
# another one made meanwhile is fine, if it is a directory and not a link.
mkdirs() {
	(($#)) || return 0
	mkdir -- "$@" 2>/dev/null && return 0
	local d
	for d in "$@"; do
		[[ -d $d && ! -L $d ]] || mkdir -- "$d" || problem "cannot create $d"
	done
}

# /etc/skel into the new home $1: plain text files with bash alone; anything else (a
# directory, a link, an executable, a file with a NUL byte) makes it one `cp -a`.
copy_skel() {
	local f text
	local -a all
	local -A texts=()
	shopt -s nullglob dotglob
	all=(/etc/skel/*)
	shopt -u nullglob dotglob
	for f in "${all[@]}"; do
		# `read -d ''` succeeds only when it meets a NUL byte before the end of the file
		if [[ -L $f || ! -f $f || ! -r $f || -x $f ]] || IFS= read -r -d '' text <"$f"; then
			cp -a /etc/skel/. "$1"/ 2>/dev/null || true
			return 0
		fi
		texts[${f##*/}]=$text
	done
	for f in "${!texts[@]}"; do
		[[ -e $1/$f || -L $1/$f ]] || printf '%s' "${texts[$f]}" >"$1/$f" || problem "cannot create $1/$f"
	done
}

# The plan's shell steps: one mkdir, mv for each move (an entry whose data could not move
# is not linked: `ln -f` would replace a file), one `ln -sfn -t DIR target...` per
# directory (links keep the targets' names).
link_home() {
	local home=$1 ws=$3 skel=${4:-} src dst i j ts dir
	local -a targets=()
	if [[ $skel == skel ]]; then copy_skel "$home"; fi
	if [[ -n $ws_link ]]; then ln -sfn -- "$ws" "$ws_link" || problem "cannot link $ws_link"; fi
	mkdirs "${mk[@]}"
	for i in "${!kinds[@]}"; do
		src=${srcs[i]}
		dst=${dsts[i]}
		case ${kinds[i]} in
		move)
			if [[ -e $dst ]]; then
				TZ=UTC printf -v ts '%(%Y%m%d%H%M%S)T' -1
				mv -- "$src" "$src.containai-bak.$ts"
			else
				mv -- "$src" "$dst"
			fi || {
				problem "cannot move $src out of the way; not linked"
				srcs[i]=''
			}
			;;
		file)
			if [[ $dst == *.json || $dst == *.yml || $dst == *.yaml ]]; then
				printf '{}\n' >"$dst"
			else
				: >"$dst"
			fi || problem "cannot create $dst"
			;;
		esac
	done
	for i in "${!srcs[@]}"; do
		[[ -n ${srcs[i]} ]] || continue
		dir=${srcs[i]%/*}
		targets=()
		for j in "${!srcs[@]}"; do
			if [[ -n ${srcs[j]} && ${srcs[j]%/*} == "$dir" ]]; then
				targets+=("${dsts[j]}")
				srcs[j]=''
			fi
		done
		ln -sfn -t "$dir" -- "${targets[@]}" || problem "cannot link the agent's state in $dir"
	done
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	log() { printf 'containai: %s\n' "$*"; }
	set -euo pipefail
	umask 022
	if ((EUID == 0)) || (($# < 3)); then
		echo "usage (as the agent, never as root): link-home.sh HOME STATE WORKSPACE [skel]" >&2
		exit 2
	fi
	# the entrypoint warned about what its own plan left out
	plan_links "$1" "$2" "$3" "${4:-}"
	if ((shell)); then
		link_home "$@"
	elif ((${#ops[@]})); then
		/usr/bin/perl -e "$APPLY_PERL" -- "${ops[@]}" || failed=1
	fi
	exit "$failed"
fi
