#!/usr/bin/env bash
# Build stage: lint and compile every template the pipeline deploys. The linter's rules and
# levels are in infra/bicepconfig.json; an error-level finding fails the step (and the stage).
#   INFRA_DIR     the infra folder
#   BICEP_OUT_DIR where the compiled ARM JSON goes (published with the infra artifact)
set -euo pipefail
mkdir -p "$BICEP_OUT_DIR"
for template in main.bicep app/eventsubscription.bicep; do
  az bicep lint --file "$INFRA_DIR/$template"
  az bicep build --file "$INFRA_DIR/$template" --outdir "$BICEP_OUT_DIR"
done
