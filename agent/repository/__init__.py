"""The repository format: config, packs, index, snapshots, locks; check, forget and prune."""
