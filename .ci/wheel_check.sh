#!/usr/bin/env bash
# The package as a user gets it: build the sdist and, from it, the wheel; check both carry the
# zoo, the JSON Schema and the licence; install the wheel into a fresh venv (CPU torch) and use
# it from a folder outside the repository. About 1-2 minutes; called by .ci/run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
fail() { echo "wheel check: $*" >&2; exit 1; }

"$PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
SG="$WORK/venv/bin/skipgraph"
"$VPY" -m pip install -q -c "$ROOT/constraints.txt" torch==2.13.0 build

# sdist first, then the wheel built from the sdist: proves the sdist holds what the wheel needs
"$VPY" -m build -q --outdir "$WORK/dist" "$ROOT" >/dev/null
WHEEL="$(ls "$WORK"/dist/skipgraph-*.whl)"
SDIST="$(ls "$WORK"/dist/skipgraph-*.tar.gz)"
"$VPY" -m zipfile -l "$WHEEL" | awk 'NR > 1 {print $1}' > "$WORK/wheel.txt"
tar -tzf "$SDIST" | sed 's|^[^/]*/||' > "$WORK/sdist.txt"
for spec in "$ROOT"/specs/*.yaml; do
    name="$(basename "$spec")"
    grep -qx "skipgraph/specs/$name" "$WORK/wheel.txt" || fail "wheel lacks skipgraph/specs/$name"
    grep -qx "specs/$name" "$WORK/sdist.txt" || fail "sdist lacks specs/$name"
done
grep -qx "skipgraph/docs/skipgraph.schema.json" "$WORK/wheel.txt" || fail "wheel lacks the schema"
grep -qx "skipgraph/constraints.txt" "$WORK/wheel.txt" || fail "wheel lacks constraints.txt (the extras hints name it)"
grep -q "dist-info/licenses/LICENSE$" "$WORK/wheel.txt" || fail "wheel lacks LICENSE"
grep -qx "docs/skipgraph.schema.json" "$WORK/sdist.txt" || fail "sdist lacks the schema"
grep -qx "LICENSE" "$WORK/sdist.txt" || fail "sdist lacks LICENSE"
for asset in view.js view.css; do  # the `view` page's script and styles
    grep -qx "skipgraph/view/static/$asset" "$WORK/wheel.txt" || fail "wheel lacks $asset"
done

"$VPY" -m pip install -q -c "$ROOT/constraints.txt" "$WHEEL"

# a user's folder, nowhere near the repository
mkdir "$WORK/outside" && cd "$WORK/outside"
"$SG" zoo > zoo.txt
for spec in "$ROOT"/specs/*.yaml; do
    grep -q "^$(basename "$spec" .yaml) " zoo.txt || fail "skipgraph zoo does not list $spec"
done
"$VPY" -c "from skipgraph.extras import constraints_file as c; p = c(); assert p.is_file() and 'site-packages' in str(p), p"
"$SG" build unet_pp --json > build.json
"$VPY" -c "import json; assert json.load(open('build.json'))['params'] == 9041601"
"$SG" render unet_pp -o x.svg >/dev/null
[ -s x.svg ] || fail "render wrote no x.svg"
"$SG" render unet_pp -o x.html >/dev/null
grep -q "sgPage" x.html || fail "render -o x.html lacks the page's script"
"$VPY" -c "import skipgraph; skipgraph.build('unet_pp')"
cat > mine.yaml <<'YAML'
skipgraph: 1
name: my_unet_pp
extends: unet_pp
params: {depth: 3, ds: true}
YAML
"$SG" check mine.yaml
"$VPY" - <<'PY'
import skipgraph
from skipgraph.zoo import schema_file, zoo_dir
assert "site-packages" in str(zoo_dir()) and schema_file().is_file()  # the packaged copies
model = skipgraph.build("mine.yaml")
assert len(model.heads) == 3, model.heads
PY
# a name that matches nothing: exit 2 and a did-you-mean
set +e; "$SG" check unet_ppp 2> err.txt; status=$?; set -e
[ "$status" = 2 ] && grep -q "did you mean" err.txt || fail "unknown zoo name: exit $status"
echo "wheel check: ok ($(basename "$WHEEL"), $(grep -c . "$WORK/wheel.txt") files)"
