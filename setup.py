"""Builds the compiled agent join (``dataflows/agent_native.pyx``) and its projections
(``dataflows/projections_native.pyx``); everything else about the package is in
``pyproject.toml``."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(ext_modules=cythonize(
    [Extension("dataflows.agent_native", ["dataflows/agent_native.pyx"], language="c++",
               extra_compile_args=["-O2"]),
     Extension("dataflows.projections_native", ["dataflows/projections_native.pyx"],
               extra_compile_args=["-O2"])],
    compiler_directives={"language_level": "3"}, quiet=True))
