"""What the support scripts that change a network namespace share: refusing to run
anywhere but in a test's own namespace, and nft. Imported by its neighbours (a script's
own folder is first on Python's path)."""

import os
import subprocess

# The initial namespace's fixed nsfs inode on 6.x (NET_NS_INIT_INO).
NET_NS_INIT_INO = 0xEFFFFFF9


def refuse_host_netns(die, expected=None):
    """Calls die() unless this process is in a namespace of its own: not the initial
    one, not pid 1's, and `expected` (an nsfs inode) when given. Returns the inode."""
    own = os.stat("/proc/self/ns/net").st_ino
    if own == NET_NS_INIT_INO:
        die("refusing to run in the initial network namespace")
    try:
        if own == os.stat("/proc/1/ns/net").st_ino:
            die("refusing to run in the network namespace of pid 1")
    except OSError:
        pass
    if expected is not None and own != expected:
        die(f"running in netns {own}, not in the expected {expected}")
    return own


def nft(script):
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)
