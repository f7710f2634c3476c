"""The content generators, one module per kind of phone data.

Each has `generate(builder)` and, where a day of use changes that data, `evolve(builder)`;
`layout` lays out the real phone's skeleton around them; `filler` and `sqlite_common` are
their shared helpers.
"""
