"""Offline stand-in for pip's get-pip.py, used by ansible-test to put pip into its venvs.

ansible-test downloads get-pip.py from ci-files.testing.ansible.com, which this
machine cannot reach; it uses a cached copy under ~/.ansible/test/cache when one
exists. tests/run.py places this file there. Like get-pip.py it is run as
``python get_pip.py [pip options] [--no-setuptools] [--no-wheel] pip==X ...``:
it installs the pip wheel bundled with Python (ensurepip), then lets that pip
install the requested packages (pip==X first) from the package index.
"""

import ensurepip
import os
import subprocess
import sys


def main() -> int:
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    saved = dict(os.environ)
    ensurepip.bootstrap(upgrade=True)
    # ensurepip points PIP_CONFIG_FILE at /dev/null in this process; the machine's
    # pip configuration (index, CA bundle of an intercepting proxy) must apply below.
    os.environ.clear()
    os.environ.update(saved)
    return subprocess.call([sys.executable, "-m", "pip", "install", "--upgrade", "--force-reinstall", *args])


if __name__ == "__main__":
    sys.exit(main())
