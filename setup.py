"""Builds the Cython extension `agent._native` from `ext/`, linked against the system's libcrypto (OpenSSL) and
libzstd: their headers come from libssl-dev and libzstd-dev on Debian (.ci/setup installs them; README lists
the packages for other systems)."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "agent._native",
        sources=["ext/native.pyx"],
        libraries=["crypto", "zstd"],
        extra_compile_args=["-O3"],
    )
]

setup(ext_modules=cythonize(extensions, language_level=3, compiler_directives={"boundscheck": False, "wraparound": False}))
