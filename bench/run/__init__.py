"""The framework every run is built from, whatever its task: the run folder and run.json, the shared
options, input checks, profiles, --dry-run plans, --seeds, provenance and the errors a run reports."""
