"""The fleet daemon (`coffer watch`): back up each device when it is plugged in, per policy; its status."""
