"""Prints environment.yml's pip dependencies, one a line, for `pip install -r`. Conda is not in
this image: a conda package other than python and pip is an error naming it (list it under
`- pip:` or in requirements.txt instead); the image's python is used, whatever version is named."""

import sys

import yaml


def main(path: str) -> int:
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    deps = (doc.get("dependencies") or []) if isinstance(doc, dict) else None
    if not isinstance(deps, list):
        sys.exit(f"{path}: 'dependencies' must be a list")
    conda, pip = [], []
    for dep in deps:
        if isinstance(dep, dict) and "pip" in dep:
            pip.extend(str(p) for p in dep["pip"] or [])
        elif isinstance(dep, str):
            name = dep.split("=")[0].split("<")[0].split(">")[0].strip()
            if name not in ("python", "pip"):
                conda.append(dep)
        else:
            sys.exit(f"{path}: a dependency is neither a conda package nor a '- pip:' list: {dep!r}")
    if conda:
        sys.exit(f"{path}: conda is not in this image, so conda packages cannot be installed: "
                 f"{', '.join(conda)}; list them under '- pip:' or in a requirements.txt instead")
    print("\n".join(pip))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
