"""One module per kind of phone content; each has `generate(builder)` and, where a day of use
changes it, `evolve(builder)`."""
