"""Talking to iPhones and iPads through pymobiledevice3: list, trust state, backup, restore."""
