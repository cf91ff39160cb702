"""Stand-in for get-pip.py, which ansible-test downloads to bootstrap pip in its venvs.

scripts/sanity.sh copies this file into ansible-test's cache because the download host is
unreachable here. Like get-pip.py it takes pip's install arguments; it installs pip with
ensurepip, then the requested packages from the configured index.
"""

import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")

args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
