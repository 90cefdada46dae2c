#!/usr/bin/env bash
# Regenerates configs/<binary>.yaml from each binary's own defaults, so the
# examples can never drift from the code (internal/e2e checks they match).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin}
for b in relay-server tunnel-host tunnel-client tunnel-server wing probe; do
  {
    echo "## Example configuration for $b: every key with its default."
    echo "## Looked up at --config, else ./$b.yaml, \$XDG_CONFIG_HOME/warren/$b.yaml, /etc/warren/$b.yaml."
    echo "## Every key can also be set by env: WARREN_$(echo "$b" | tr 'a-z-' 'A-Z_')_<KEY> (dots become _)."
    echo "## Secrets can be given as <key>_file. Check a file with: $b -c FILE config validate"
    echo
    env -i PATH="$PATH" HOME=/nonexistent XDG_CONFIG_HOME=/nonexistent "$bin/$b" config show
  } > "configs/$b.yaml"
done
echo "configs/*.yaml regenerated"
