"""The training engine both harnesses share: the loop (checkpoints, resume, logs), one step on either
execution path, the data loader per device, and torchrun."""
