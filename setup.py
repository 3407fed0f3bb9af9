"""Builds the ``sipreferral`` Python package for users: the SWIG module
``sipreferral_core`` from bindings/sipreferral.i with the C library
(csrc/*.c) compiled into it, plus python/sipreferral/.

    /usr/bin/python3 -m venv --system-site-packages .venv
    .venv/bin/pip install .

Needs swig (4.x), a C compiler and libosip2's headers (Debian:
``swig build-essential libosip2-dev python3-dev``); nothing from PyPI.
(CMake builds the same module for the test suites into build/python.)
"""

import os
import re
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
os.chdir(HERE)  # the source paths below are relative to this directory


def rel(*parts):
    return os.path.join(*parts)


def version():
    with open(os.path.join(HERE, "csrc", "include", "sipreferral.h")) as f:
        return re.search(r'#define SR_VERSION "([^"]+)"', f.read()).group(1)


def osip_flags():
    """libosip2's -I/-L/-l from pkg-config (plain -l when it is absent)."""
    try:
        out = subprocess.run(["pkg-config", "--cflags", "--libs", "libosip2"],
                             check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return [], [], ["osipparser2", "osip2"]
    inc = [f[2:] for f in out.split() if f.startswith("-I")]
    libdirs = [f[2:] for f in out.split() if f.startswith("-L")]
    libs = [f[2:] for f in out.split() if f.startswith("-l")]
    return inc, libdirs, libs


class BuildExt(build_ext):
    """Runs swig itself: the wrapper goes to build_temp and the generated
    sipreferral_core.py into the package, which setuptools' own swig step
    (run after build_py) would miss."""

    def swig_sources(self, sources, extension):
        swig = shutil.which(os.environ.get("SWIG", "swig"))
        if swig is None:
            sys.exit("setup.py: swig not found (Debian: apt-get install swig)")
        iface = [s for s in sources if s.endswith(".i")]
        rest = [s for s in sources if not s.endswith(".i")]
        os.makedirs(self.build_temp, exist_ok=True)
        wrapper = os.path.join(self.build_temp, "sipreferralPYTHON_wrap.c")
        pkg_dir = os.path.join(self.build_lib, "sipreferral")
        if self.inplace:
            pkg_dir = os.path.join(HERE, "python", "sipreferral")
        os.makedirs(pkg_dir, exist_ok=True)
        cmd = [swig, "-python", "-Ibindings", "-Icsrc/include",
               "-outdir", os.path.abspath(pkg_dir), "-o", os.path.abspath(wrapper)] + iface
        self.announce(" ".join(cmd), level=2)
        subprocess.run(cmd, check=True, cwd=HERE)
        return rest + [wrapper]


class BuildPy(build_py):
    """build_ext writes sipreferral_core.py into build_lib: build it first."""

    def run(self):
        super().run()
        self.run_command("build_ext")


inc, libdirs, libs = osip_flags()
csrc = sorted(rel("csrc", f) for f in os.listdir(os.path.join(HERE, "csrc"))
              if f.endswith(".c"))

core = Extension(
    "sipreferral._sipreferral_core",
    sources=[rel("bindings", "sipreferral.i")] + csrc,
    include_dirs=[rel("csrc", "include"), "csrc", "bindings"] + inc,
    library_dirs=libdirs,
    libraries=libs,
    define_macros=[("_GNU_SOURCE", None), ("SR_BUILDING_LIBRARY", None)],
    extra_compile_args=["-std=c11", "-fvisibility=hidden"],
    depends=[rel("csrc", "include", "sipreferral.h"), rel("csrc", "internal.h"),
             rel("bindings", "python.i"), rel("bindings", "python_natives.i"),
             rel("bindings", "common.i")],
)

# Out of the way of CMake's build/ and of python/ (git ignores build-*/).
BUILD_BASE = "build-setuptools"
os.makedirs(BUILD_BASE, exist_ok=True)

setup(
    name="sipreferral",
    version=version(),
    description="SIP call transfer (REFER) over a small C user agent core",
    long_description=__doc__,
    license="see the project repository",
    python_requires=">=3.8",
    packages=["sipreferral"],
    package_dir={"": "python"},
    package_data={"sipreferral": ["py.typed", "*.pyi"]},
    ext_modules=[core],
    cmdclass={"build_ext": BuildExt, "build_py": BuildPy},
    zip_safe=False,
    options={"build": {"build_base": BUILD_BASE},
             "egg_info": {"egg_base": BUILD_BASE}},
)
