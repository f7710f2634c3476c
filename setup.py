"""Builds the Cython extensions from `ext/`: `agent._bplist` (the binary plist reader, Python's C API only) and
`agent._native`, linked against the system's libcrypto (OpenSSL) and libzstd: their headers come from libssl-dev
and libzstd-dev on Debian (.ci/setup installs them; README lists the packages for other systems)."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "agent._native",
        sources=["ext/native.pyx"],
        libraries=["crypto", "zstd"],
        extra_compile_args=["-O3"],
    ),
    Extension("agent._bplist", sources=["ext/bplist.pyx"], extra_compile_args=["-O3"]),
]

setup(ext_modules=cythonize(extensions, language_level=3, compiler_directives={"boundscheck": False, "wraparound": False}))
