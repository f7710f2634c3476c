"""The iOS backup format: Info/Status/Manifest.plist, Manifest.db rows (MBFile records), the encrypted-backup
keybag and per-file keys, backup folders on disk, and the category classifier (domain + path -> category)."""
