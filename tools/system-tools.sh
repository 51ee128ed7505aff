#!/usr/bin/env bash
# The command-line tools the notebooks and the tests run, installed when missing.
#
#   bash tools/system-tools.sh [test|lab]          install what is missing (make system-tools)
#   bash tools/system-tools.sh --check [test|lab]  only look: exit 0 if all present, else 1
#   bash tools/system-tools.sh --list              the table: command, package, ..., why
#
# `lab` is what the notebooks run (`make lab` checks it); `test`, the default, is every
# tool, the tests' too (`make test`, .ci/run). When all are present it only looks them up,
# with no apt call, and prints nothing. Otherwise it prints one line saying what it
# installs and why, and installs with apt-get, quietly and non-interactively: directly as
# root, through passwordless `sudo -n` otherwise. Where it cannot (no apt-get: macOS or
# another Linux; not root and sudo asks a password) it stops with the command to run.
#
# Plain bash 3.2 (macOS's) and builtins only until it installs, so --check works with any
# PATH; tests/test_system_tools.py runs it so, and fails if a notebook or a test runs a
# tool that the table below lacks.
set -eo pipefail # no -u: bash 3.2 calls an empty "${array[@]}" unbound

# command | Debian package | Homebrew package | wanted by | who needs it
# ss is Linux only (macOS has netstat built in), so it has no Homebrew package.
# Chromium: Debian's package; on Ubuntu it is a snap, which containers cannot run.
TOOLS='
nc|netcat-openbsd|netcat|lab test|notebooks 01, 04
telnet|telnet|telnet|lab test|notebooks 01, 04
curl|curl|curl|lab test|notebook 08 on HTTP
ss|iproute2||lab test|notebooks 01, 02
iperf3|iperf3|iperf3|lab test|notebook 12 on performance
chromium|chromium|--cask chromium|test|the browser test
'

usage() { sed -n '2,/^set /s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

mode=install
group="test"
for arg in "$@"; do
	case $arg in
	--check) mode=check ;;
	--list) mode=list ;;
	lab | test) group=$arg ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "system-tools: unknown argument '$arg' (see --help)" >&2
		exit 2
		;;
	esac
done

mac=false
[[ $OSTYPE == darwin* ]] && mac=true

have() {
	command -v "$1" >/dev/null 2>&1 || return 1
	if [[ $1 == nc && $mac == false ]]; then
		# notebook 04 runs `nc -N`: OpenBSD's netcat has it, netcat-traditional and busybox not
		local help re=$'(^|\n)[[:space:]]*-N[[:space:]]' # its help has a line "-N  Shutdown..."
		help=$(nc -h 2>&1 </dev/null || true)
		[[ $help =~ $re ]] || return 1
	fi
}

join() { # join SEPARATOR ITEM...
	local sep=$1 out=$2
	shift 2 || return 0
	for item in "$@"; do out+="$sep$item"; done
	printf '%s' "$out"
}

cmds=() pkgs=() missing=() installing=() formulae=() casks=() present=()
while IFS='|' read -r cmd pkg brew groups why; do
	[[ -n $cmd ]] || continue
	if [[ $mode == list ]]; then
		printf '%s\t%s\t%s\t%s\t%s\n' "$cmd" "$pkg" "${brew:--}" "$groups" "$why"
		continue
	fi
	[[ " $groups " == *" $group "* ]] || continue
	[[ $mac == true && -z $brew ]] && continue # Linux only
	if have "$cmd"; then
		present+=("$cmd")
		continue
	fi
	cmds+=("$cmd")
	pkgs+=("$pkg")
	missing+=("$cmd ($why)")
	if [[ $pkg == "$cmd" ]]; then installing+=("$pkg ($why)"); else installing+=("$pkg ($cmd: $why)"); fi
	case $brew in
	--cask\ *) casks+=("${brew#--cask }") ;;
	*) formulae+=("$brew") ;;
	esac
done <<<"$TOOLS"
[[ $mode == list ]] && exit 0

if [[ ${#missing[@]} -eq 0 ]]; then
	[[ $mode == check ]] && echo "system-tools: all present for '$group': ${present[*]}"
	exit 0
fi

APT_CMD="sudo apt-get install -y --no-install-recommends ${pkgs[*]}"
BREW_CMD=""
[[ ${#formulae[@]} -gt 0 ]] && BREW_CMD="brew install ${formulae[*]}"
[[ ${#casks[@]} -gt 0 ]] && BREW_CMD+="${BREW_CMD:+ && }brew install --cask ${casks[*]}"
WHAT=$(join ', ' "${missing[@]}")

if [[ $mode == check ]]; then
	if [[ $mac == true ]]; then
		echo "system-tools: missing $WHAT. To install them (Homebrew's package names):"
		echo "    $BREW_CMD"
	else
		echo "system-tools: missing $WHAT. To install them: make system-tools, or"
		echo "    $APT_CMD"
	fi
	exit 1
fi

if [[ $mac == true ]]; then
	echo "system-tools: missing $WHAT. Install them with Homebrew (https://brew.sh; these are" \
		"Homebrew's package names, \`brew search NAME\` if one differs), then run make again:" >&2
	echo "    $BREW_CMD" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "system-tools: missing $WHAT, and this system has no apt-get. Install them with its" \
		"package manager (Debian's names: ${pkgs[*]}), then run make again. On Debian/Ubuntu:" >&2
	echo "    $APT_CMD" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [[ $EUID -eq 0 ]]; then
	SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
	SUDO=(sudo -n env DEBIAN_FRONTEND=noninteractive) # sudo drops the environment
else
	echo "system-tools: missing $WHAT; cannot install them here (not root, and sudo is" \
		"absent or asks a password). Run this, then make again:" >&2
	echo "    $APT_CMD" >&2
	exit 1
fi

echo "system-tools: installing $(join ', ' "${installing[@]}") with apt-get"
# Quiet: apt's and dpkg's chatter is kept and shown only if something fails.
apt() { "${SUDO[@]}" apt-get -qq -o DPkg::Lock::Timeout=300 "$@" 2>&1; }
if ! out=$(apt update) || ! out=$(apt install -y --no-install-recommends "${pkgs[@]}"); then
	printf '%s\n' "$out" >&2
	echo "system-tools: apt-get failed (above); the command was:" >&2
	echo "    sudo apt-get update && $APT_CMD" >&2
	exit 1
fi

hash -r
still=()
for cmd in "${cmds[@]}"; do have "$cmd" || still+=("$cmd"); done
if [[ ${#still[@]} -gt 0 ]]; then
	hint=""
	[[ " ${still[*]} " == *" nc "* ]] &&
		hint=" (nc must be OpenBSD's netcat, with -N: sudo update-alternatives --config nc)"
	echo "system-tools: apt-get ran, but ${still[*]} still missing$hint" >&2
	exit 1
fi
