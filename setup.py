"""ament_python / pip build of gaussvae_ros, including the compiled rasterizer (C, called via ctypes)."""

from glob import glob
import os

from setuptools import Extension, find_packages, setup

package_name = "gaussvae_ros"


def raster_flags():
    """Compiler flags of the rasterizer: portable by default (the compiler's baseline for the target,
    e.g. x86-64 SSE2, so a binary built on a build farm or in a Docker image runs on any CPU of that
    architecture); ``GAUSSVAE_NATIVE=1`` adds ``-march=native`` for the building machine's CPU only
    (measured in BENCHMARKS.md, "Portable and native rasterizer")."""
    flags = ["-O3", "-ffast-math", "-fopenmp", "-fno-finite-math-only"]
    if os.environ.get("GAUSSVAE_NATIVE") == "1":
        flags.append("-march=native")
    return flags


setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    ext_modules=[
        Extension(
            "gaussvae_ros.core._raster",
            sources=["gaussvae_ros/core/_raster.c"],
            define_macros=[("GS_PYTHON_MODULE", "1")],
            extra_compile_args=raster_flags(),
            extra_link_args=["-fopenmp", "-lm"],
        )
    ],
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
    ],
    package_data={package_name: ["core/_raster.c", "models/*.pt", "models/*.md"]},
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="gaussvae_ros developers",
    maintainer_email="gaussvae-ros@example.com",
    description="Compact, queryable visual memory for robots: 2D Gaussian splats + VAE latents in SQLite.",
    license="MIT",
    entry_points={
        "console_scripts": [
            "gaussvae = gaussvae_ros.cli.main:main",
            "gaussvae_encoder = gaussvae_ros.nodes.encoder_node:main",
            "gaussvae_memory = gaussvae_ros.nodes.memory_node:main",
            "gaussvae_recall = gaussvae_ros.nodes.recall_node:main",
            "gaussvae_encoder_managed = gaussvae_ros.nodes.managed_encoder_node:main",
            "gaussvae_memory_managed = gaussvae_ros.nodes.managed_memory_node:main",
        ],
    },
)
