"""Build roost's optional C accelerator; roost falls back to pure Python without it."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "roost.protocol._speedups",
            ["src/roost/protocol/_speedups.c"],
            optional=True,
            extra_compile_args=["-O3"],
        )
    ]
)
