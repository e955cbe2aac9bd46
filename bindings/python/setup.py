"""Builds cdp._core with CMake (the pybind11 cmake_example pattern) and packages it with the pure-Python cdp/.

The extension is target `cdp_python` of the libcdp CMake project at ../.. (this file's grandparent directory).

Environment:
  CDP_CMAKE_BUILD_DIR  an existing CMake build directory of libcdp configured with -DCDP_BUILD_PYTHON=ON (and the
                       same Python). When set, only `cmake --build DIR --target cdp_python` runs there: no fresh
                       configure, so a build tree shared with the C++ tests is reused.
  CDP_SOURCE_DIR       the libcdp source tree (default: ../.. from this file).
  CDP_BUILD_JOBS       parallel build jobs (default: 2).
  CMAKE_GENERATOR      default: Ninja.
  CDP_CMAKE_ARGS       extra arguments for the configure step, split on whitespace.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str, sourcedir: Path) -> None:
        super().__init__(name, sources=[])
        self.sourcedir = Path(sourcedir).resolve()


class CMakeBuild(build_ext):
    def build_extension(self, ext: CMakeExtension) -> None:
        source_dir = Path(os.environ.get("CDP_SOURCE_DIR", ext.sourcedir)).resolve()
        if not (source_dir / "CMakeLists.txt").is_file() or not (source_dir / "include" / "cdp").is_dir():
            raise RuntimeError(
                f"libcdp sources not found in {source_dir}: build from a repository checkout "
                "(pip install ./bindings/python, which builds in place) or set CDP_SOURCE_DIR"
            )
        jobs = os.environ.get("CDP_BUILD_JOBS", "2")

        reuse = os.environ.get("CDP_CMAKE_BUILD_DIR")
        if reuse:
            build_dir = Path(reuse).resolve()
            if not (build_dir / "CMakeCache.txt").is_file():
                raise RuntimeError(f"CDP_CMAKE_BUILD_DIR={build_dir} is not a configured CMake build directory")
        else:
            build_dir = Path(self.build_temp).resolve() / "cmake"
            build_dir.mkdir(parents=True, exist_ok=True)
            configure = [
                "cmake",
                "-S", str(source_dir),
                "-B", str(build_dir),
                "-G", os.environ.get("CMAKE_GENERATOR", "Ninja"),
                "-DCMAKE_BUILD_TYPE=Release",
                "-DCDP_BUILD_PYTHON=ON",
                "-DCDP_BUILD_TESTS=OFF",
                "-DCDP_BUILD_BENCHMARKS=OFF",
                "-DCDP_BUILD_SERVER=OFF",
                f"-DPython_EXECUTABLE={sys.executable}",
            ]
            configure += os.environ.get("CDP_CMAKE_ARGS", "").split()
            self._run(configure)

        self._run(["cmake", "--build", str(build_dir), "--target", "cdp_python", "-j", jobs])

        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        built = build_dir / "bindings" / "python" / f"_core{suffix}"
        if not built.is_file():
            found = glob.glob(str(build_dir / "bindings" / "python" / "_core*"))
            raise RuntimeError(
                f"expected {built} after the build; found {found or 'nothing'}. Was {build_dir} configured for "
                f"another Python? (this is {sys.executable}, extension suffix {suffix})"
            )
        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, target)

    @staticmethod
    def _run(cmd) -> None:
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)


setup(
    ext_modules=[CMakeExtension("cdp._core", HERE.parent.parent)],
    cmdclass={"build_ext": CMakeBuild},
)
