#!/usr/bin/env bash
# Replay what mybinder.org does with this repository, without Docker or conda.
#
#   bash tools/binder-check.sh [VENV_DIR]        (default .venv-binder; `make binder-check`)
#
# 1. render: install repo2docker (pinned in binder/check-requirements.txt) in a throwaway
#    venv, render the Dockerfile Binder would build (repo2docker --no-build), save it in
#    artifacts/binder/Dockerfile and check its steps: the pip install of
#    binder/requirements.txt, the apt.txt packages, binder/postBuild, no conda
#    environment.yml from the repo, the Python of binder/runtime.txt.
# 2. base:   read the conda lock of Binder's base environment that this Dockerfile installs
#    (shipped inside repo2docker; tools/binder_base_env.py) and install its Python packages
#    from PyPI, with --no-deps as conda did, into a fresh VENV_DIR.
# 3. binder: run the Dockerfile's own pip command for binder/requirements.txt, parsed from
#    the Dockerfile, then ./binder/postBuild with the venv activated.
# 4. checks: pip check, `jupyter labextension list`, `jupyter server extension list`, the
#    python3 kernelspec is the venv's, JupyterLab's news pop-up is off (postBuild).
# 5. nbval:  every notebook in notebooks/ under nbval, in that environment.
#
# Needs python3 on PATH at the version of binder/runtime.txt. Logs and the rendered
# Dockerfile go to artifacts/binder/. Set ALLOW_NO_NOTEBOOKS=1 to pass while notebooks/
# holds no notebook yet.
set -Eeuo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=${1:-.venv-binder}
[[ $VENV = /* ]] || VENV="$ROOT/$VENV"
ART="$ROOT/artifacts/binder"
PHASE=setup

# This machine's pip.conf names local indexes that may not exist; pip warns once per
# package about them. That warning, and only it, is dropped from what we print.
PIP_NOISE="^WARNING: Location 'file://[^']*' is ignored: it is neither a file nor a directory\.$"

die() {
	echo "binder-check: FAILED ($PHASE): $*" >&2
	if [[ -n ${T_START:-} ]]; then
		echo "binder-check: timings: ${TIMINGS[*]/%/,} $PHASE (failed) $(fmt "$T_PHASE" "$(now)")s; total $(fmt "$T_START" "$(now)")s" >&2
	fi
	exit 1
}
warn() { echo "binder-check: WARNING: $*" >&2; }
trap 'echo "binder-check: FAILED ($PHASE): command failed at line $LINENO" >&2' ERR

# show_log FILE [N]: the last N lines of a log, without the pip.conf noise.
show_log() { { grep -Ev "$PIP_NOISE" "$1" || true; } | tail -n "${2:-40}" >&2; }

now() { date +%s.%N; }
fmt() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
T_START=$(now)
T_PHASE=$T_START
TIMINGS=()
phase() { # phase NAME: close the running phase (printing its time), open the next one
	local t
	t=$(now)
	if [[ $PHASE != setup ]]; then
		TIMINGS+=("$(printf '%-8s %6ss' "$PHASE" "$(fmt "$T_PHASE" "$t")")")
		echo "binder-check: [$PHASE] done in $(fmt "$T_PHASE" "$t")s"
	fi
	PHASE=$1
	T_PHASE=$t
	[[ $PHASE == end ]] || echo "binder-check: == $PHASE"
}

R2D_TMP=$(mktemp -d)
trap 'rm -rf "$R2D_TMP"' EXIT

mkdir -p "$ART"
rm -f "$ART"/*.log "$ART"/Dockerfile "$ART"/base-*.txt "$ART"/*.lock

# ---------------------------------------------------------------------------------------
phase render
PYVER=$(sed -n 's/^python-\([0-9]*\.[0-9]*\).*/\1/p' binder/runtime.txt)
[[ -n $PYVER ]] || die "binder/runtime.txt does not name a python-X.Y"
HAVE=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ $HAVE == "$PYVER" ]] || die "python3 on PATH is $HAVE; binder/runtime.txt asks for $PYVER"

python3 -m venv "$R2D_TMP/r2d"
"$R2D_TMP/r2d/bin/python" -m pip install -q -r binder/check-requirements.txt >"$ART/repo2docker-install.log" 2>&1 ||
	{ show_log "$ART/repo2docker-install.log"; die "cannot install binder/check-requirements.txt"; }
R2D_VERSION=$("$R2D_TMP/r2d/bin/repo2docker" --version)
echo "binder-check: repo2docker $R2D_VERSION"

# --no-build renders the Dockerfile to stdout (no daemon needed); --debug logs the
# decisions to stderr. mybinder.org builds as jovyan, uid 1000 (the default is our uid).
"$R2D_TMP/r2d/bin/repo2docker" --no-build --debug --user-id 1000 --user-name jovyan "$ROOT" \
	>"$ART/Dockerfile" 2>"$ART/repo2docker.log" ||
	{ show_log "$ART/repo2docker.log"; die "repo2docker could not render the Dockerfile"; }
D="$ART/Dockerfile"
grep -q '^FROM ' "$D" || die "repo2docker printed no Dockerfile (see $ART/repo2docker.log)"

# No conda environment from the repo: Binder must take the pip path only.
if grep -nE 'environment\.ya?ml|env (update|create)' "$D" >&2; then
	die "the Dockerfile uses a conda environment.yml from the repo (lines above)"
fi

# The pip step for binder/requirements.txt, in the exact form repo2docker writes it.
mapfile -t PIP_LINES < <(grep -nE '^RUN .*pip install .*binder/requirements\.txt' "$D" || true)
((${#PIP_LINES[@]} == 1)) || die "expected one pip install of binder/requirements.txt in $D, found ${#PIP_LINES[@]}"
PIP_LINENO=${PIP_LINES[0]%%:*}
PIP_LINE=${PIP_LINES[0]#*:}
echo "binder-check: Dockerfile pip step: $PIP_LINE"
PIP_RE='^RUN \$\{KERNEL_PYTHON_PREFIX\}/bin/pip install((( --[a-z][a-z-]*)*)) -r "?binder/requirements\.txt"?$'
[[ $PIP_LINE =~ $PIP_RE ]] ||
	die "the Dockerfile's pip step is not of the form this script replays; update tools/binder-check.sh: $PIP_LINE"
read -r -a PIP_OPTS <<<"${BASH_REMATCH[1]}"

# postBuild runs after that pip step, from the repo root (WORKDIR ${REPO_DIR}).
PB_LINENO=$(grep -nxF 'RUN ./binder/postBuild' "$D" | cut -d: -f1 || true)
[[ -n $PB_LINENO ]] || die "the Dockerfile does not run ./binder/postBuild"
((PB_LINENO > PIP_LINENO)) || die "the Dockerfile runs binder/postBuild before the pip step"
if git ls-files --error-unmatch binder/postBuild >/dev/null 2>&1; then
	MODE=$(git ls-files -s binder/postBuild | cut -d' ' -f1)
	[[ $MODE == 100755 ]] || die "git records binder/postBuild as $MODE, not 100755 (git update-index --chmod=+x)"
else
	[[ -x binder/postBuild ]] || die "binder/postBuild is not executable (chmod +x)"
	warn "binder/postBuild is not tracked by git yet; checked the file's own mode only"
fi

# apt.txt: every package, on the Dockerfile's apt-get install line.
APT_LINE=$(grep -E '^apt-get install --yes --no-install-recommends ' "$D" || true)
[[ -n $APT_LINE ]] || die "the Dockerfile installs no apt.txt package"
mapfile -t APT_PKGS < <(sed 's/#.*//' binder/apt.txt | tr -s ' \t' '\n' | sed '/^$/d')
for p in "${APT_PKGS[@]}"; do
	[[ " $APT_LINE " == *" $p "* ]] || die "apt.txt's $p is not installed by the Dockerfile: $APT_LINE"
done

# The base environment: the lock this Dockerfile copies, for the runtime.txt Python.
LOCK=$("$R2D_TMP/r2d/bin/python" tools/binder_base_env.py --dockerfile "$D" --print-lock)
[[ $(basename "$LOCK") == environment.py-$PYVER-* ]] ||
	die "the Dockerfile's base environment is $(basename "$LOCK"), not Python $PYVER's"
cp "$LOCK" "$ART/"
echo "binder-check: Dockerfile checked: pip step, postBuild, apt (${APT_PKGS[*]}), no environment.yml, base $(basename "$LOCK")"

# ---------------------------------------------------------------------------------------
phase base
"$R2D_TMP/r2d/bin/python" tools/binder_base_env.py --lock "$LOCK" -v \
	>"$ART/base-requirements.txt" 2>"$ART/base-skipped.txt"
tail -n 1 "$ART/base-skipped.txt"
mapfile -t BASE < <(grep -v '^#' "$ART/base-requirements.txt")
((${#BASE[@]} > 50)) || die "only ${#BASE[@]} packages found in $LOCK"

rm -rf "$VENV"
python3 -m venv "$VENV"
VPY="$VENV/bin/python"
# Binder's pip is the lock's: install it first, it is the one that runs the pip step.
BASE_PIP=$(printf '%s\n' "${BASE[@]}" | grep -E '^pip==' || true)
if [[ -n $BASE_PIP ]]; then
	"$VPY" -m pip install -q "$BASE_PIP" >"$ART/base-install.log" 2>&1 ||
		{ show_log "$ART/base-install.log"; die "cannot install $BASE_PIP"; }
fi
BASE_SKIPPED=()
# find_bad REQ...: add to BASE_SKIPPED the requirements that pip cannot install, by
# halving the list (pip install --dry-run), so that a bad one costs ~2*log2(N) runs.
find_bad() {
	(($# > 0)) || return 0
	"$VPY" -m pip install -q --no-deps --dry-run "$@" >>"$ART/base-install.log" 2>&1 && return 0
	if (($# == 1)); then
		warn "$1 (Binder's base environment) does not install from PyPI: skipped"
		BASE_SKIPPED+=("$1")
		return 0
	fi
	local half=$(($# / 2))
	find_bad "${@:1:half}"
	find_bad "${@:half+1}"
}
if ! "$VPY" -m pip install -q --no-deps -r "$ART/base-requirements.txt" >>"$ART/base-install.log" 2>&1; then
	show_log "$ART/base-install.log" 15
	warn "the base list does not install in one go; looking for the packages that fail"
	find_bad "${BASE[@]}"
	GOOD=()
	for req in "${BASE[@]}"; do
		[[ " ${BASE_SKIPPED[*]} " == *" $req "* ]] || GOOD+=("$req")
	done
	if ! "$VPY" -m pip install -q --no-deps "${GOOD[@]}" >>"$ART/base-install.log" 2>&1; then
		warn "the rest still fails together; installing it one by one"
		for req in "${GOOD[@]}"; do
			"$VPY" -m pip install -q --no-deps "$req" >>"$ART/base-install.log" 2>&1 || {
				warn "$req (Binder's base environment) does not install from PyPI: skipped"
				BASE_SKIPPED+=("$req")
			}
		done
	fi
fi
BASE_OK=$((${#BASE[@]} - ${#BASE_SKIPPED[@]}))
echo "binder-check: base environment: $BASE_OK of ${#BASE[@]} packages installed, ${#BASE_SKIPPED[@]} skipped${BASE_SKIPPED[*]:+ (${BASE_SKIPPED[*]})}"
"$VPY" -m pip freeze --all 2>/dev/null | sort -f >"$ART/base-freeze.txt"
if ! "$VPY" -m pip check >"$ART/base-pip-check.log" 2>&1; then
	warn "the base environment alone fails pip check (informational):"
	cat "$ART/base-pip-check.log" >&2
fi

# ---------------------------------------------------------------------------------------
phase binder
# What the Dockerfile runs, as it runs it: ${KERNEL_PYTHON_PREFIX}/bin/pip from the repo
# root, with the environment's bin first on PATH.
PIP_CMD=("$VENV/bin/pip" install "${PIP_OPTS[@]}" -r binder/requirements.txt)
echo "binder-check: running: ${PIP_CMD[*]/#$ROOT\//}"
PATH="$VENV/bin:$PATH" "${PIP_CMD[@]}" >"$ART/pip-requirements.log" 2>&1 ||
	{ show_log "$ART/pip-requirements.log"; die "the Dockerfile's pip step fails"; }
grep -E '^Successfully installed' "$ART/pip-requirements.log" || echo "binder-check: (nothing to install)"
"$VPY" -m pip freeze --all 2>/dev/null | sort -f >"$ART/binder-freeze.txt"
echo "binder-check: base packages that binder/requirements.txt changed:"
"$VPY" - "$ART/base-freeze.txt" "$ART/binder-freeze.txt" <<'EOF'
import re, sys
def load(p):
    out = {}
    for line in open(p):
        if "==" in line:
            n, v = line.strip().split("==", 1)
            out[re.sub(r"[-_.]+", "-", n).lower()] = (n, v)
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
changed = [f"{b[k][0]} {a[k][1]} -> {b[k][1]}" for k in sorted(a) if k in b and a[k][1] != b[k][1]]
print("    " + (", ".join(changed) or "none"))
EOF

echo "binder-check: running ./binder/postBuild"
(
	# shellcheck disable=SC1091
	source "$VENV/bin/activate"
	./binder/postBuild
) >"$ART/postBuild.log" 2>&1 || { show_log "$ART/postBuild.log"; die "binder/postBuild fails"; }
grep -E '^Successfully installed' "$ART/postBuild.log" || true

# ---------------------------------------------------------------------------------------
phase checks
strip_ansi() { sed -E 's/\x1b\[[0-9;]*m//g'; }
"$VPY" -m pip check || die "pip check fails in the Binder environment"

"$VENV/bin/jupyter" labextension list 2>&1 | strip_ansi >"$ART/labextensions.txt" || true
cat "$ART/labextensions.txt"
grep -q '^JupyterLab v' "$ART/labextensions.txt" || die "jupyter labextension list did not run"
if grep -Eni 'incompatible|outdated|conflict|error|exception|traceback|disabled| X( |$)' "$ART/labextensions.txt" >&2; then
	die "a JupyterLab extension is incompatible, disabled or broken (lines above)"
fi
if grep -E '^[[:space:]]+[^[:space:]]+ v[0-9]' "$ART/labextensions.txt" | grep -v ' enabled OK' >&2; then
	die "a JupyterLab extension is not 'enabled OK' (lines above)"
fi
N_LABEXT=$(grep -cE '^[[:space:]]+[^[:space:]]+ v[0-9].* enabled OK' "$ART/labextensions.txt" || true)

"$VENV/bin/jupyter" server extension list 2>&1 | strip_ansi >"$ART/serverextensions.txt" || true
if grep -Eni 'error|exception|traceback|not importable|fail|disabled| X( |$)' "$ART/serverextensions.txt" >&2; then
	die "a Jupyter server extension fails to load (lines above)"
fi
N_SRVEXT=$(grep -c -- '- Validating ' "$ART/serverextensions.txt" || true)
N_SRVOK=$(grep -cE '^[[:space:]]+[^[:space:]-].* OK$' "$ART/serverextensions.txt" || true)
((N_SRVEXT > 0 && N_SRVEXT == N_SRVOK)) ||
	{ cat "$ART/serverextensions.txt" >&2; die "$N_SRVOK of $N_SRVEXT server extensions validate OK"; }
echo "binder-check: $N_LABEXT lab extensions enabled OK, $N_SRVEXT server extensions OK"

# nbval starts the notebooks' kernel, python3: it must be this environment's.
KDIR=$("$VPY" -c 'from jupyter_client.kernelspec import KernelSpecManager as K; print(K().get_kernel_spec("python3").resource_dir)')
[[ $KDIR == "$VENV"/* ]] || die "the python3 kernelspec comes from $KDIR, not from $VENV"

# postBuild put the course's JupyterLab defaults (jupyter/labconfig) where this
# environment's JupyterLab reads them: the news pop-up is off. Computed as the settings
# API computes it (jupyterlab_server), with no JUPYTER_CONFIG_PATH from make's side.
NEWS=$(env -u JUPYTER_CONFIG_PATH "$VPY" -c '
from jupyterlab_server.settings_utils import _get_overrides
from jupyterlab.commands import get_app_dir
import os
overrides, error = _get_overrides(os.path.join(get_app_dir(), "settings"))
print(overrides.get("@jupyterlab/apputils-extension:notification", {}).get("fetchNews"))
if error:
    raise SystemExit(f"a settings overrides file does not parse: {error}")
') || die "cannot read the JupyterLab setting overrides"
[[ $NEWS == false ]] ||
	die "JupyterLab's fetchNews is '$NEWS' in the Binder environment, not false (binder/postBuild)"
echo "binder-check: JupyterLab news pop-up off (fetchNews false, from binder/postBuild)"

versions() {
	"$VPY" - "$@" <<'EOF'
import sys
from importlib.metadata import version
print(", ".join(f"{n} {version(n)}" for n in sys.argv[1:]))
EOF
}
VERSIONS=$(versions jupyterlab notebook ipykernel ipywidgets jupyter_server)
echo "binder-check: final environment: $VERSIONS"

# ---------------------------------------------------------------------------------------
phase nbval
mapfile -t NOTEBOOKS < <(find notebooks -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' \
	-not -path 'notebooks/scratch/*' 2>/dev/null | sort)
if ((${#NOTEBOOKS[@]} == 0)); then
	if [[ ${ALLOW_NO_NOTEBOOKS:-0} == 1 ]]; then
		warn "notebooks/ holds no notebook yet: nbval not run (ALLOW_NO_NOTEBOOKS=1)"
		NBVAL_SUMMARY="no notebooks yet, nbval skipped"
	else
		die "notebooks/ holds no .ipynb: nothing to test (ALLOW_NO_NOTEBOOKS=1 to pass anyway)"
	fi
else
	echo "binder-check: nbval on ${#NOTEBOOKS[@]} notebooks"
	(
		# shellcheck disable=SC1091
		source "$VENV/bin/activate"
		python -m pytest --nbval notebooks/ --ignore=notebooks/scratch \
			--nbval-sanitize-with tests/sanitize.cfg --nbval-cell-timeout=60 -p no:cacheprovider -q
	) || die "nbval fails in the Binder environment"
	NBVAL_SUMMARY="${#NOTEBOOKS[@]} notebooks pass nbval"
fi

phase end
TOTAL=$(fmt "$T_START" "$(now)")
echo "binder-check: timings:"
printf '    %s\n' "${TIMINGS[@]}"
echo "binder-check: OK (repo2docker $R2D_VERSION, base $(basename "$LOCK"): $BASE_OK/${#BASE[@]} installed; $VERSIONS; $NBVAL_SUMMARY; ${TOTAL}s)"
