"""What setup.cfg cannot say: the top-level ``configs/`` folder ships inside the package, as ``interceptor/configs/``
(its files: setup.cfg's package_data)."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["interceptor*"]), "interceptor.configs"],
      package_dir={"interceptor.configs": "configs"})
