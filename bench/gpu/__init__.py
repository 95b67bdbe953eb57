"""The GPU check (scripts/gpu_check.sh): the paper's protocol compressed into minutes, one process per
measurement, each number written as it is measured."""
