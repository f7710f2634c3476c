"""Builds the Cython extension `agent._native` from `ext/`."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "agent._native",
        sources=["ext/native.pyx"],
        extra_compile_args=["-O3"],
    )
]

setup(ext_modules=cythonize(extensions, language_level=3, compiler_directives={"boundscheck": False, "wraparound": False}))
