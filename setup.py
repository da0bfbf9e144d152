"""Package layout only (metadata lives in pyproject.toml).

exporters/ and runtimes/ stay top-level folders in the repository but install under the dehazekit
namespace, as dehazekit.exporters and dehazekit.runtimes: both short names are taken on PyPI, and nothing
but ``dehazekit`` may land at the top of site-packages. setuptools' declarative config cannot combine
package discovery with a package-dir mapping, hence this file.
"""

from setuptools import find_packages, setup

SOURCE_FOLDERS = {
    "dehazekit": "dehazekit",
    "dehazekit.runtimes": "runtimes",
    "dehazekit.exporters": "exporters",
}


def packages_under(namespace: str, folder: str) -> list[str]:
    return [namespace, *(f"{namespace}.{sub}" for sub in find_packages(folder))]


setup(
    package_dir=SOURCE_FOLDERS,
    packages=[
        pkg for namespace, folder in SOURCE_FOLDERS.items() for pkg in packages_under(namespace, folder)
    ],
)
