#!/usr/bin/env bash
# pip-audit of the runtime dependency set: what `pip install 'seldon-routers[...]'` brings for
# serving (not the test or bench tools). Fails on a known vulnerability unless
# scripts/audit-ignore.txt lists it, each entry with the reason it does not apply.
# Needs a vulnerability service: PyPI's JSON API (the default) or OSV (AUDIT_SERVICE=osv).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${AUDIT_EXTRAS:-server,redis,rules,llm,gateway,flask,canary,graph}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/runtime"
"$work/runtime/bin/pip" install -q --disable-pip-version-check ".[${EXTRAS}]"
"$work/runtime/bin/pip" freeze --exclude-editable | grep -v '^seldon-routers' > "$work/requirements.txt"
python3 -m venv "$work/auditor"  # pip-audit apart, so its own dependencies are not audited
"$work/auditor/bin/pip" install -q --disable-pip-version-check 'pip-audit>=2.7'
ignores=()
while read -r id _; do
  [[ -z "$id" || "$id" == \#* ]] || ignores+=(--ignore-vuln "$id")
done < scripts/audit-ignore.txt
echo "auditing $(wc -l < "$work/requirements.txt") packages of seldon-routers[${EXTRAS}]"
exec "$work/auditor/bin/pip-audit" -r "$work/requirements.txt" --no-deps --disable-pip --strict \
  --vulnerability-service "${AUDIT_SERVICE:-pypi}" "${ignores[@]}"
