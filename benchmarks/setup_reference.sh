#!/usr/bin/env bash
# Create benchmarks/.venv-ref: the environment in which benchmarks/compare.py runs our modules and
# the reference implementation (PyPI audioldm==0.1.1) side by side, in one process.
#
# Run it with the Python environment you use for this project active (the one with torch, librosa
# and audioldm-cli installed), or point PYTHON at its interpreter:
#     bash benchmarks/setup_reference.sh            # or: PYTHON=/path/to/python bash ...
#
# The new virtualenv sees that environment's packages (torch is not installed twice) and adds only:
#   * audioldm==0.1.1, installed with --no-deps. Its code is never copied into this repository: its
#     licence is non-commercial. compare.py imports only its model modules (VAE, UNet, HiFi-GAN).
#   * progressbar 2.5 (pure Python), the one package those modules import that this project does not
#     already depend on (audioldm/utils.py imports it).
# It needs network access once, for pip; nothing downloads afterwards.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="$here/.venv-ref"
python="${PYTHON:-python3}"

"$python" -c 'import torch' 2>/dev/null || {
    echo "error: $python cannot import torch; activate the project's environment first" >&2
    exit 1
}

"$python" -m venv --system-site-packages "$venv"

# When $python is itself a virtualenv, --system-site-packages only exposes the *base* interpreter's
# packages. Add the parent environment's site directories through a .pth file; addsitedir (rather
# than a bare path) also processes their .pth files, so an editable install of this project works.
"$python" - "$venv" <<'EOF'
import pathlib, site, sys, sysconfig
venv = pathlib.Path(sys.argv[1])
if sys.prefix != sys.base_prefix:
    dirs = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    child = next(venv.glob("lib/python*/site-packages"))
    lines = [f"import site; site.addsitedir({d!r})" for d in dirs]
    (child / "_audioldm_cli_parent_env.pth").write_text("\n".join(lines) + "\n")
EOF

ref_python="$venv/bin/python"
# --no-deps: the reference pins numpy<=1.23.5 and librosa==0.9.2 and wants gradio, torchvision, ...,
# none of which its model modules need. einops and soundfile come with this project.
"$ref_python" -m pip install --quiet --disable-pip-version-check --no-deps "audioldm==0.1.1" "progressbar==2.5"

# Our project: use the parent's install if it is visible, otherwise install this checkout editable.
if ! "$ref_python" -c 'import audioldm_cli, vocoder' 2>/dev/null; then
    "$ref_python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$root"
fi

"$ref_python" "$here/compare.py" --check-imports
echo "ready: $ref_python benchmarks/compare.py [--quick]"
